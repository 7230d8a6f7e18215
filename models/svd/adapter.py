"""The TrackDiffusion-SVD adapter: the box position net plus one gated self-attention fuser per spatial transformer.

Blocks are named the ComfyUI way (``input_blocks.4.1``); the official diffusers names map onto them in
:mod:`trackdiffusion.models.svd.naming`. The adapter knows nothing of ComfyUI: the patch in
:mod:`trackdiffusion.nodes.patches.svd` asks it for a block's fuser and for the box tokens of a clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...data.errors import InvalidInputError
from ..fuser import SVD_FUSER_CHANNELS, GatedSelfAttentionDense
from ..position_net import SVDBoxPositionNet

# The 16 spatio-temporal transformers of the SVD UNet, in forward (transformer_index) order.
SVD_ATTENTION_BLOCKS: tuple[str, ...] = (
    *(f"input_blocks.{i}.1" for i in (1, 2, 4, 5, 7, 8)),
    "middle_block.1",
    *(f"output_blocks.{i}.1" for i in range(3, 12)),
)
DELTA_UNET_PREFIX = "diffusion_model."
DELTA_FUSER_INFIX = ".transformer_blocks.0.fuser."


def block_key(name: str) -> tuple[str, int]:
    """ComfyUI module path -> the ``transformer_options["block"]`` it runs under.

    ``"input_blocks.4.1"`` -> ``("input", 4)``, ``"middle_block.1"`` -> ``("middle", 0)``,
    ``"output_blocks.3.1"`` -> ``("output", 3)``.
    """
    parts = name.split(".")
    if parts[0] == "middle_block":
        return ("middle", 0)
    return (parts[0].split("_")[0], int(parts[1]))


def slots_to_svd_boxes(slots) -> tuple[torch.Tensor, torch.Tensor]:
    """Slots -> the SVD position net's input: boxes [F, N, 7] (xyxy + RGB, all in [0, 1]) and masks [F, N].

    The colour channels carry each slot's colour on every frame, as the official SVD training data does; a slot's
    box is zero where its mask is 0 (the null feature replaces it anyway).
    """
    f = slots.boxes.shape[0]
    colors = slots.colors[None].expand(f, -1, -1)
    return torch.cat([slots.boxes, colors], dim=-1), slots.masks


class TrackDiffusionSVDAdapter(nn.Module):
    """Position net + fusers for SVD.

    Args:
        blocks: (ComfyUI module path, channels) per spatial transformer; the real SVD by default. Tiny test models
            pass their own.
        context_dim: width of the box tokens (SVD's cross-attention width, 1024).
        head_dim: fuser attention head size (64 for SVD: heads = channels / 64).
        max_objs: instance slots per frame (20 in the official weights).
        hidden_dim: the position net's MLP width (512 in the official weights).
    """

    def __init__(
        self,
        blocks: Sequence[tuple[str, int]] | None = None,
        context_dim: int = 1024,
        head_dim: int = 64,
        max_objs: int = 20,
        hidden_dim: int = 512,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if blocks is None:
            blocks = list(zip(SVD_ATTENTION_BLOCKS, SVD_FUSER_CHANNELS, strict=True))
        self.block_names = [name for name, _ in blocks]
        self.max_objs = max_objs
        self.context_dim = context_dim
        self.position_net = SVDBoxPositionNet(out_dim=context_dim, hidden_dim=hidden_dim, operations=operations,
                                              device=device, dtype=dtype)
        self.fusers = nn.ModuleDict({
            name.replace(".", "_"): GatedSelfAttentionDense.svd(channels, context_dim=context_dim, head_dim=head_dim,
                                                                operations=operations, device=device, dtype=dtype)
            for name, channels in blocks
        })
        self._by_block = {block_key(name): name.replace(".", "_") for name in self.block_names}

    def fuser_for(self, block: tuple[str, int]) -> GatedSelfAttentionDense | None:
        """The fuser of the spatial transformer running under ``transformer_options["block"]``, if it has one."""
        key = self._by_block.get(tuple(block))
        return None if key is None else self.fusers[key]

    def box_tokens(self, boxes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Box tokens per frame.

        Args:
            boxes: [B, F, N, 7] xyxy + RGB in [0, 1].
            masks: [B, F, N], 1 where the slot is present.
        Returns:
            [B*F, N, context_dim], frame-major like the UNet's ``(b t)`` batch.
        """
        b, f, n, _ = boxes.shape
        if n != self.max_objs:
            raise InvalidInputError(f"boxes have {n} slots but the adapter was trained with {self.max_objs}.",
                                    fix=f"expand the tracklets with max_instances={self.max_objs}.")
        objs = self.position_net(boxes.reshape(b, f * n, -1), masks.reshape(b, f * n))
        return objs.reshape(b * f, n, -1)

    # ------------------------------------------------------------------------------------------ converted deltas
    @staticmethod
    def split_delta(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """A converted SVD delta -> (adapter state dict, base-model replacements).

        Fuser keys ``diffusion_model.<block>.transformer_blocks.0.fuser.<p>`` become ``fusers.<block_>.<p>``;
        ``position_net.*`` stays; everything else under ``diffusion_model.`` (conv_in, conv_out, mix factors) is a
        replacement of a base UNet weight, keyed as in ComfyUI's model state dict.
        """
        adapter, base = {}, {}
        for key, value in tensors.items():
            if key.startswith("position_net."):
                adapter[key] = value
            elif key.startswith(DELTA_UNET_PREFIX) and DELTA_FUSER_INFIX in key:
                block, param = key[len(DELTA_UNET_PREFIX):].split(DELTA_FUSER_INFIX, 1)
                adapter[f"fusers.{block.replace('.', '_')}.{param}"] = value
            elif key.startswith(DELTA_UNET_PREFIX):
                base[key] = value
            else:
                raise InvalidInputError(f"unexpected key {key!r} in an SVD delta.",
                                        fix="convert the official checkpoint again with `trackdiffusion weights "
                                        "convert`.")
        return adapter, base

    def delta_state_dict(self) -> dict[str, torch.Tensor]:
        """This adapter's weights in the converted-delta naming (the inverse of :meth:`split_delta`), so adapters
        trained here load in the ComfyUI nodes like converted official ones."""
        out = {}
        for key, value in self.state_dict().items():
            if key.startswith("fusers."):
                block, param = key[len("fusers."):].split(".", 1)
                path = next(name for name in self.block_names if name.replace(".", "_") == block)
                out[f"{DELTA_UNET_PREFIX}{path}{DELTA_FUSER_INFIX}{param}"] = value
            else:
                out[key] = value
        return out

    @staticmethod
    def hidden_dim_from_state_dict(state_dict: dict[str, torch.Tensor]) -> int:
        """The position net's MLP width in a state dict (from :meth:`split_delta`); 512 when it holds none."""
        weight = state_dict.get("position_net.linears.0.weight")
        return 512 if weight is None else int(weight.shape[0])

    @staticmethod
    def blocks_from_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[list[tuple[str, int]], int]:
        """(blocks, context_dim) of the adapter a state dict (from :meth:`split_delta`) belongs to."""
        blocks = []
        for key, value in state_dict.items():
            if key.startswith("fusers.") and key.endswith(".linear.weight"):
                name = key[len("fusers."):-len(".linear.weight")]
                parts = name.split("_")  # input_blocks_4_1 -> input_blocks.4.1 ; middle_block_1 -> middle_block.1
                path = "_".join(parts[:2]) + "." + ".".join(parts[2:])
                blocks.append((path, int(value.shape[0]), int(value.shape[1])))
        if not blocks:
            raise InvalidInputError("the adapter has no fusers.", fix="load a converted TrackDiffusion SVD delta.")
        contexts = {c for _, _, c in blocks}
        order = {name: i for i, name in enumerate(SVD_ATTENTION_BLOCKS)}
        blocks.sort(key=lambda b: (order.get(b[0], len(order)), b[0]))
        return [(name, channels) for name, channels, _ in blocks], contexts.pop()


def blend_box_tokens(box_tokens: torch.Tensor, null_tokens: torch.Tensor, strength: float) -> torch.Tensor:
    """What TrackDiffusion-SVD's ``strength`` means: the box tokens moved towards the null tokens.

    ``null + strength * (box - null)``: 0 is the official no-box state (every slot null: what the official model
    computes for its unconditional half and for a video without boxes), 1 the boxes as trained, between a weaker pull,
    above 1 a stronger one. The fusers keep their trained gates either way, so the fine-tuned UNet never runs without
    them (it was trained with them).
    """
    if strength == 1.0:
        return box_tokens
    if strength == 0.0:
        return null_tokens
    return null_tokens + strength * (box_tokens - null_tokens)


def tokens_for_chunks(cond_tokens: torch.Tensor, uncond_tokens: torch.Tensor, cond_or_uncond: Sequence[int]
                      ) -> torch.Tensor:
    """Box tokens for a batch that ComfyUI assembled from cond (0) and uncond (1) chunks, in that order.

    Args:
        cond_tokens, uncond_tokens: [F, N, C] (uncond: every slot null, as the official pipeline's CFG).
        cond_or_uncond: one entry per chunk of F frames.
    Returns:
        [chunks*F, N, C].
    """
    return torch.cat([uncond_tokens if c == 1 else cond_tokens for c in cond_or_uncond], dim=0)
