"""The per-call conditioning of :meth:`ModelScopeTrackDiffusion.generate
<trackdiffusion.models.modelscope.pipeline.ModelScopeTrackDiffusion.generate>`, from the prompt and the tracklets.

One text-encoder forward gives the prompt's hidden states (the UNet's cross-attention context) and each slot's
category embedding (the CLIP ``pooler_output`` of its label, "" for padding slots); the boxes and masks come from the
tracklets' slots. With classifier-free guidance the batch is ``[uncond, cond]``: the unconditional half gets the
negative prompt **and** all box masks 0, as in the official pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Conditioning:
    """What the UNet is conditioned on for one generate call."""

    context: torch.Tensor  #: prompt hidden states [B, L, D] (B = 2 with guidance: [uncond, cond]; else 1)
    positive: torch.Tensor  #: one pooled label embedding per slot [N, D]
    boxes: torch.Tensor  #: [B, F, N, 4]
    masks: torch.Tensor  #: [B, F, N] (all 0 in the unconditional half)


def encode_texts(tokenizer: Any, text_encoder: nn.Module, texts: list[str], device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One text-encoder forward for all ``texts`` (padded to the tokenizer's max length, no attention mask, as
    diffusers' prompt encoding). Returns ``(last_hidden_state [T, L, D], pooler_output [T, D])``."""
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(device)
    out = text_encoder(ids)
    return out.last_hidden_state, out.pooler_output


def build_conditioning(encode: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]], prompt: str,
                       negative_prompt: str, slots: Any, do_cfg: bool) -> Conditioning:
    """The conditioning from ``slots`` (``Tracklets.to_slots``): ``encode(texts)`` is called once with the prompt,
    the negative prompt (with guidance only) and every distinct label."""
    # ---- text: prompt, negative prompt, every distinct label: one forward
    labels = list(slots.labels)
    unique = list(dict.fromkeys(labels))
    texts = [prompt, negative_prompt, *unique] if do_cfg else [prompt, *unique]
    hidden, pooled = encode(texts)
    n_prompts = 2 if do_cfg else 1
    context = hidden[:n_prompts].flip(0) if do_cfg else hidden[:1]  # [uncond, cond] as the official order
    per_label = dict(zip(unique, pooled[n_prompts:]))
    positive = torch.stack([per_label[label] for label in labels])  # [N, D]

    # ---- tracklets: uncond half = all masks 0 (official)
    boxes = slots.boxes.unsqueeze(0)
    masks = slots.masks.unsqueeze(0)
    if do_cfg:
        boxes = torch.cat([boxes, boxes])
        masks = torch.cat([torch.zeros_like(masks), masks])
    return Conditioning(context, positive, boxes, masks)
