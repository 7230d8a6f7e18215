"""SG-I2V on a diffusers ``UNetSpatioTemporalConditionModel``: the second implementation of
``trackdiffusion.nodes.patches.sgi2v`` (the ComfyUI patch), used by the diffusers backend (``trackdiffusion demo
--method sgi2v``); ``tests/integration/test_tiny_svd_in_comfyui.py`` holds the two equal on the tiny SVD.

The same procedure, module for module:

- **the features**: the spatial ``transformer_blocks[0].attn1`` of the chosen up-path transformers (named as ComfyUI
  names them, ``output_blocks.7.1`` = diffusers ``up_blocks.2.attentions.1``) get a processor that, only while a
  capture is active, records a side branch: every frame's queries attend to frame 0's keys and values (detached),
  the output taken before ``to_out``, as ``[F, C, h, w]``. The layer's own output is what its previous processor
  computes, so recording changes nothing, and outside a capture the processor is the previous one.
- **the optimisation forward**: the conditional half of the sampler's evaluation (first-frame latent, image
  embedding, and whatever ``conditioned(True)`` adds, e.g. TrackDiffusion's boxes), stopped after the last recorded
  layer.
- **the latent update**: at each guided step, before that step's model evaluations, the sampler's latent is replaced
  by :func:`~.optimise_latent`'s result (AdamW on the alignment loss, then the high-frequency reset).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ....data.errors import InvalidInputError
from ...svd.naming import build_slots, layout_of
from .config import SGI2VConfig
from .geometry import latent_boxes_from_tracklets
from .loss import build_alignment_targets
from .optimize import optimise_latent

SOURCE = "diffusers SG-I2V"


class _StopForward(Exception):
    """Raised after the last recorded layer to end the optimisation forward; never escapes this module."""


@dataclass(eq=False)
class _Capture:
    layers: tuple[str, ...]
    last: str
    frames: int
    shapes: dict = field(default_factory=dict)  # layer -> (h, w) of its transformer's input
    features: dict = field(default_factory=dict)
    active: bool = False


class Frame0Processor:
    """attn1's processor: the previous processor's output always; while the capture is active, also SG-I2V's
    frame-0 key/value side branch recorded for ``layer`` (and the forward stopped after the last layer)."""

    def __init__(self, layer: str, capture: _Capture, previous) -> None:
        self.layer, self.capture, self.previous = layer, capture, previous

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        capture = self.capture
        if capture.active and self.layer in capture.layers:
            capture.features[self.layer] = self.frame0_branch(attn, hidden_states)
            if self.layer == capture.last:
                raise _StopForward
        return self.previous(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)

    def frame0_branch(self, attn, x: torch.Tensor) -> torch.Tensor:
        """softmax(q_f k_0^T / sqrt(d)) v_0 per head, frame 0's keys and values detached; [F, C, h, w]."""
        frames = self.capture.frames
        bt, hw, _ = x.shape
        if bt != frames:
            raise InvalidInputError(f"the optimisation forward has {bt} frames of tokens, expected {frames}.",
                                    source=SOURCE)
        q = attn.to_q(x)
        k, v = attn.to_k(x[:1].detach()), attn.to_v(x[:1].detach())
        heads, c = attn.heads, q.shape[-1]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(t.shape[0], -1, heads, c // heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k).expand(bt, -1, -1, -1),
                                             split(v).expand(bt, -1, -1, -1))
        out = out.transpose(1, 2).reshape(bt, hw, c)
        h, w = self.capture.shapes[self.layer]
        return out.reshape(bt, h, w, c).permute(0, 3, 1, 2)


class SGI2VDiffusers:
    """SG-I2V attached to a diffusers SVD UNet (its attn1 processors; :meth:`detach` restores them).

    ``guide(step, sigma, x, evaluate)`` is the sampler hook (see
    :func:`trackdiffusion.models.svd.sampling.sample_svd`'s ``guide``): ``evaluate(z)`` runs the conditional
    model evaluation at ``sigma`` on ``z`` (its result is ignored: the forward stops at the last recorded layer).
    """

    def __init__(self, unet: torch.nn.Module, tracklets, config: SGI2VConfig | None = None, *,
                 report: list | None = None) -> None:
        self.config = config or SGI2VConfig()
        if not getattr(tracklets, "objects", None):
            raise InvalidInputError("the tracklets have no objects, so there is nothing to guide.",
                                    fix="give at least one box.", source=SOURCE)
        self.unet, self.tracklets, self.report = unet, tracklets, report
        attentions, _ = build_slots(layout_of(unet))
        by_comfyui = {s.comfyui: s.diffusers for s in attentions}
        available = [n for n in by_comfyui if n.startswith("output_blocks.")]
        missing = [n for n in self.config.layers if n not in by_comfyui]
        if missing:
            raise InvalidInputError(f"this UNet has no spatial transformer {missing[0]!r}.",
                                    fix=f"use transformers of the UNet's up path: {', '.join(available) or 'none'}.",
                                    source=SOURCE)
        order = [s.comfyui for s in attentions]
        last = max(self.config.layers, key=order.index)
        self.capture = _Capture(tuple(self.config.layers), last, frames=0)
        self._restore: list[tuple[Any, Any]] = []
        self._hooks = []
        for layer in self.config.layers:
            transformer = unet.get_submodule(by_comfyui[layer])
            attn1 = transformer.transformer_blocks[0].attn1
            self._restore.append((attn1, attn1.processor))
            attn1.set_processor(Frame0Processor(layer, self.capture, attn1.processor))
            self._hooks.append(transformer.register_forward_pre_hook(self._shape_hook(layer)))
        self._targets: dict = {}

    def _shape_hook(self, layer: str):
        def hook(_module, args):
            self.capture.shapes[layer] = tuple(args[0].shape[-2:])

        return hook

    def detach(self) -> None:
        for attn1, processor in self._restore:
            attn1.set_processor(processor)
        for h in self._hooks:
            h.remove()
        self._restore, self._hooks = [], []

    def guided_steps(self, steps: int) -> set[int]:
        return set(self.config.guided_steps(steps))

    def guide(self, step: int, sigma: float, x: torch.Tensor, evaluate: Callable[[torch.Tensor], Any]) -> torch.Tensor:
        """The optimised latent for ``x`` ``[F, C, h, w]`` at a guided step."""
        frames, _, h, w = x.shape
        key = tuple(x.shape)
        if key not in self._targets:
            boxes = latent_boxes_from_tracklets(self.tracklets, frames, h, w)
            self._targets[key] = build_alignment_targets(boxes, self.config.heatmap_sigma).to(x.device)
        capture = self.capture

        def features(z: torch.Tensor) -> list[torch.Tensor]:
            capture.features.clear()
            capture.frames, capture.active = frames, True
            try:
                evaluate(z)
            except _StopForward:
                pass
            finally:
                capture.active = False
            return [capture.features[n] for n in capture.layers]

        frozen = [p for p in self.unet.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            with torch.enable_grad():
                result = optimise_latent(x.detach().clone(), features, self._targets[key],
                                         iterations=self.config.iterations, lr=self.config.lr,
                                         weight_decay=self.config.weight_decay, fft_ratio=self.config.fft_ratio)
        finally:
            for p in frozen:
                p.requires_grad_(True)
            capture.features.clear()
        if self.report is not None:
            self.report.append({"step": step, "sigma": float(sigma), "losses": list(result.losses)})
        return result.latent


@contextlib.contextmanager
def sgi2v_attached(unet: torch.nn.Module, tracklets, config: SGI2VConfig | None = None, *, report: list | None = None):
    """``with sgi2v_attached(unet, tracklets) as guidance: sample_svd(..., guide=guidance)``; the UNet's processors
    are restored on exit."""
    guidance = SGI2VDiffusers(unet, tracklets, config, report=report)
    try:
        yield guidance
    finally:
        guidance.detach()
