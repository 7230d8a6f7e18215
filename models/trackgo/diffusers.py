"""TrackGo's TrackAdapter on a stock diffusers ``UNetSpatioTemporalConditionModel`` (training and inference).

What is attached (see :mod:`trackdiffusion.models.trackgo.adapter` for the math):

* one :class:`~trackdiffusion.models.trackgo.adapter.TrackAdapterLayer` per ``TransformerSpatioTemporalModel`` (its
  ``temporal_transformer_blocks[i].attn1``; 16 in the real SVD), W'q / W'k initialised from that attn1's to_q / to_k;
* a :class:`~trackdiffusion.models.trackgo.adapter.TrajectoryEncoder` whose per-level widths are the UNet's
  ``block_out_channels``.

Both live in a :class:`~trackdiffusion.models.trackgo.adapter.TrackGoAdapter` whose layers are named the ComfyUI way
(``input_blocks.1.1`` ... ``middle_block.1`` ... ``output_blocks.11.1``), so ``adapter.state_dict()`` plus
``adapter.config()`` (see :func:`adapter_file`) load unchanged in :mod:`trackdiffusion.nodes.patches.trackgo`.

Mechanism: diffusers' own attention-processor slot. Each temporal attn1 gets a :class:`TrackGoAttnProcessor`
(``attn.set_processor``; the previous processor is kept and restored by :meth:`TrackGoAttachment.detach`). Outside
:meth:`TrackGoAttachment.conditioned`, or with ``strength == 0``, it calls the previous processor unchanged (bit for
bit the stock UNet). Inside, it computes A' from the trajectory features, the masked original branch and
O = (A + strength A') V, then the layer's own to_out. The temporal tokens are ``[B*h*w, F, C]`` and do not carry
their grid, so a forward-pre-hook on every ``TransformerSpatioTemporalModel`` records the ``(h, w)`` of the
``hidden_states`` entering it; that transformer's processors read it. As in the ComfyUI patch, a layer's resolution
level is ``round(log2(trunk_h / h))`` (the trunk is the encoder's 1/8 feature map), checked against the level of the
block the layer sits in. When the transformers have depth > 1, all temporal blocks of one transformer share its layer
(as the ComfyUI patch does); the real SVD has depth 1.

The adapter is not grafted into the UNet (``unet.state_dict()`` is unchanged): move it with ``attachment.to(...)``.

Usage::

    att = attach_trackgo(unet)                      # or attach_trackgo(unet, adapter=trained_adapter)
    with att.conditioned(video, moving_mask, record_attention=True):   # video: [B,F,3,H,W] in [0,1] or uint8 [B,F,H,W,3]
        pred = unet(x, t, image_embeddings, added_time_ids).sample   # moving_mask: M_i, [B, O, F, H, W]
        l_attn = training.attention_loss(att, moving_mask)
    tensors, metadata = adapter_file(att.adapter, trained_steps=step)   # safetensors.torch.save_file(...)
    att.detach()

The trunk is encoded once per ``conditioned()`` call and shared by every layer and every forward inside it; when
training, enter ``conditioned()`` once per step (its encoding is part of that step's graph).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel
from torch import nn

from ...data.errors import InvalidInputError
from ..attachment import first_param, hidden_arg, iter_named
from ..svd.naming import build_slots, layout_of
from .adapter import TRACKGO_FORMAT, TrackGoAdapter, trackgo_attention, video_to_tokens

SOURCE = "diffusers TrackGo backend"
DEFAULT_ALPHA = 0.2


# --------------------------------------------------------------------------------------------------- naming


@dataclass(frozen=True)
class TemporalSlot:
    """One ``TransformerSpatioTemporalModel`` of the UNet and what TrackGo needs to know about it."""

    diffusers: str  #: module path, e.g. ``down_blocks.0.attentions.1``
    comfyui: str  #: ComfyUI path (the adapter layer name), e.g. ``input_blocks.2.1``
    level: int  #: resolution level of the block it sits in (0 = 1/8 of the image)
    channels: int  #: temporal attention width


def _comfyui_paths(unet: nn.Module) -> dict[str, tuple[str, int]]:
    """diffusers transformer path -> (ComfyUI path, level), from the UNet's own block structure (the one naming map,
    :mod:`trackdiffusion.models.svd.naming`)."""
    attentions, _ = build_slots(layout_of(unet))
    return {s.diffusers: (s.comfyui, s.level) for s in attentions}


def _check_attention(attn: nn.Module, where: str) -> int:
    """The temporal attn1 must be a plain square self-attention (true in every SVD); returns its width."""
    weight = getattr(getattr(attn, "to_q", None), "weight", None)
    if weight is None or weight.dim() != 2 or weight.shape[0] != weight.shape[1]:
        raise InvalidInputError(f"{where}: the temporal attention's to_q is not a square linear map "
                                f"({None if weight is None else list(weight.shape)}).",
                                fix="Pass a stock diffusers UNetSpatioTemporalConditionModel.", source=SOURCE)
    channels, heads = int(weight.shape[0]), int(attn.heads)
    extras = [n for n in ("spatial_norm", "group_norm", "norm_q", "norm_k") if getattr(attn, n, None) is not None]
    scale = getattr(attn, "scale", None)
    if extras or channels % heads or scale is None or abs(scale - (channels // heads) ** -0.5) > 1e-6 * scale:
        raise InvalidInputError(f"{where}: unsupported temporal attention (extra {extras}, {heads} heads of width "
                                f"{channels}, scale {scale}).",
                                fix="Pass a stock diffusers UNetSpatioTemporalConditionModel.", source=SOURCE)
    return channels


# --------------------------------------------------------------------------------------------------- inputs


def _finite_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not math.isfinite(float(value)):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r:.40}.", fix=f"Pass a float {name}.",
                                source=SOURCE)
    return float(value)


def video_tensor(video: Any) -> torch.Tensor:
    """The conditioning video P as ``[B, F, 3, H, W]`` float in [0, 1].

    Accepts ``[B, F, 3, H, W]`` / ``[F, 3, H, W]`` floats in [0, 1], ``[B, F, H, W, 3]`` / ``[F, H, W, 3]`` uint8
    (what :meth:`~trackdiffusion.data.trajectories.PointTrajectories.render` returns), numpy arrays, or a
    ``PointTrajectories`` (rendered with its default point size).
    """
    if hasattr(video, "render") and callable(video.render):
        video = video.render()
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, torch.Tensor):
        raise InvalidInputError(f"the trajectory video must be a tensor or array, got {type(video).__name__}.",
                                fix="Pass PointTrajectories.render() or a [B, F, 3, H, W] tensor.", source=SOURCE)
    if video.dim() == 4:
        video = video.unsqueeze(0)
    if video.dtype == torch.uint8:
        if video.dim() != 5 or video.shape[-1] != 3:
            raise InvalidInputError(f"a uint8 trajectory video must be [B, F, H, W, 3], got {list(video.shape)}.",
                                    fix="Pass PointTrajectories.render() (stacked over the batch).", source=SOURCE)
        video = video.permute(0, 1, 4, 2, 3).float() / 255.0
    elif video.is_floating_point():
        if video.dim() != 5 or video.shape[2] != 3:
            raise InvalidInputError(f"a float trajectory video must be [B, F, 3, H, W], got {list(video.shape)}.",
                                    fix="Pass RGB frames channel-first, values in [0, 1].", source=SOURCE)
        if not bool(torch.isfinite(video).all()):
            raise InvalidInputError("the trajectory video holds NaN or infinite values.", fix="Pass values in [0, 1].",
                                    source=SOURCE)
    else:
        raise InvalidInputError(f"the trajectory video must be uint8 or float, got {video.dtype}.",
                                fix="Pass uint8 [B, F, H, W, 3] or float [B, F, 3, H, W] in [0, 1].", source=SOURCE)
    if min(video.shape[-2:]) < 8 or video.shape[1] < 1:
        raise InvalidInputError(f"the trajectory video is {video.shape[-1]}x{video.shape[-2]} with {video.shape[1]} "
                                "frames; it must be at least 8x8 pixels (the encoder works at 1/8).",
                                fix="Render the trajectories at the video's pixel size.", source=SOURCE)
    return video


def mask_tensor(mask: Any) -> torch.Tensor:
    """The masks M_i of the moving objects as float: ``[B, O, F, H, W]`` (object i on frame t), or one object:
    ``[B, F, H, W]`` per frame, ``[B, H, W]`` on every frame; ``[H, W]`` gets B = 1. Kept as given (the attention
    loss reads every form)."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise InvalidInputError(f"moving_mask must be a tensor or array, got {type(mask).__name__}.",
                                fix="Pass [B, O, F, H, W] with 1 on object i on frame t.", source=SOURCE)
    mask = mask.float()
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() not in (3, 4, 5) or min(mask.shape) < 1:
        raise InvalidInputError(f"moving_mask must be [B, O, F, H, W] (or [B, F, H, W], [B, H, W]), got "
                                f"{list(mask.shape)}.", fix="Pass the masks of the moving objects per video.",
                                source=SOURCE)
    return mask


# --------------------------------------------------------------------------------------------------- condition


@dataclass
class AttentionRecord:
    """The original branch's attention A of one layer in the last forward, for the attention loss."""

    attention: torch.Tensor  #: [B*h*w, heads, F, F] float32 (rows in (b, h, w) order)
    height: int
    width: int

    @property
    def batch(self) -> int:
        return self.attention.shape[0] // (self.height * self.width)

    @property
    def frames(self) -> int:
        return self.attention.shape[-1]


@dataclass
class TrackGoCondition:
    """Everything the processors use inside one ``conditioned()`` call (the trunk is encoded once, here)."""

    trunk: torch.Tensor | None  #: [B*F, C, H/8, W/8]; None with strength 0
    batch: int
    frames: int
    alpha: float
    tau: float
    strength: float
    record: bool
    moving_mask: torch.Tensor | None
    records: dict[str, AttentionRecord] = field(default_factory=dict)
    cache: dict[Any, torch.Tensor] = field(default_factory=dict)

    def tokens(self, encoder: nn.Module, level: int, height: int, width: int, rows: int, frames: int
               ) -> torch.Tensor:
        """f at one layer as temporal tokens ``[rows*h*w, F, C]`` (computed once per level and grid)."""
        if frames != self.frames:
            raise InvalidInputError(f"the UNet runs {frames} frames but the trajectory video has {self.frames}.",
                                    fix="Render the trajectories with the UNet's frame count.", source=SOURCE)
        if rows != self.batch and self.batch != 1:
            raise InvalidInputError(f"the trajectory video holds {self.batch} videos but the UNet batch is {rows}.",
                                    fix="Pass one trajectory video per UNet video (under CFG, e.g. a black one for "
                                        "the unconditional half), or a single video to share.", source=SOURCE)
        key = (level, height, width, rows)
        if key not in self.cache:
            base = (level, height, width, self.batch)
            if base not in self.cache:
                features = encoder.level_features(self.trunk, level, (height, width))
                self.cache[base] = video_to_tokens(features, self.frames)
            if rows != self.batch:
                self.cache[key] = self.cache[base].repeat(rows, 1, 1)
        return self.cache[key]


# --------------------------------------------------------------------------------------------------- processor


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor) -> torch.Tensor:
    """The original branch with the additive mask A_M: ``[N, T, C]`` x3 -> ``[N, T, C]``."""
    n, t, c = q.shape
    qh, kh, vh = (x.reshape(n, t, heads, c // heads).transpose(1, 2) for x in (q, k, v))
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
    return out.transpose(1, 2).reshape(n, t, c)


class TrackGoAttnProcessor:
    """diffusers attention processor of one temporal self-attention with the TrackAdapter branch.

    Not an ``nn.Module`` (so it adds nothing to the UNet's module tree or state dict). Falls through to
    ``previous`` outside ``conditioned()``, with ``strength == 0``, or for calls TrackGo does not touch
    (cross-attention, an attention mask).
    """

    def __init__(self, attachment: TrackGoAttachment, slot: TemporalSlot, previous: Any) -> None:
        self.attachment = attachment
        self.slot = slot
        self.previous = previous

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, **kwargs: Any
                 ) -> torch.Tensor:
        att = self.attachment
        cond = att.condition
        if cond is None or cond.trunk is None or encoder_hidden_states is not None or attention_mask is not None \
                or temb is not None or kwargs or hidden_states.dim() != 3:
            if temb is not None:
                kwargs["temb"] = temb
            return self.previous(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 attention_mask=attention_mask, **kwargs)
        grid = att._grids.get(self.slot.diffusers)
        n, frames, _ = hidden_states.shape
        if grid is None or n % (grid[0] * grid[1]):
            raise InvalidInputError(f"{self.slot.diffusers}: cannot tell the token grid of the temporal attention "
                                    f"({n} rows, recorded grid {grid}).",
                                    fix="Call the UNet (or its TransformerSpatioTemporalModel) as diffusers does.",
                                    source=SOURCE)
        h, w = grid
        level = max(0, round(math.log2(cond.trunk.shape[-2] / h)))
        if level != self.slot.level:
            raise InvalidInputError(
                f"{self.slot.comfyui}: the trajectory video gives level {level} for a {h}x{w} grid, but the layer "
                f"sits at level {self.slot.level}.", fix="Render the trajectories at 8x the latent size.", source=SOURCE)
        adapter = att.adapter
        f_tokens = cond.tokens(adapter.encoder, level, h, w, n // (h * w), frames)
        layer = adapter.layer_for(self.slot.comfyui)
        f_tokens = f_tokens.to(device=layer.to_q.weight.device, dtype=layer.to_q.weight.dtype)
        a_prime = layer.trajectory_attention(f_tokens, attn.heads).to(hidden_states.device)
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        out = trackgo_attention(q, k, v, a_prime, attn.heads, alpha=cond.alpha, tau=cond.tau, strength=cond.strength,
                                masked_attention=_sdpa, return_attention=cond.record)
        if cond.record:
            out, attention = out
            cond.records[self.slot.comfyui] = AttentionRecord(attention, h, w)
        out = attn.to_out[1](attn.to_out[0](out.to(q.dtype)))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


# --------------------------------------------------------------------------------------------------- attachment


class TrackGoAttachment(nn.Module):
    """A :class:`~trackdiffusion.models.trackgo.adapter.TrackGoAdapter` attached to a diffusers SVD UNet.

    ``adapter`` is the only submodule (``attachment.parameters()`` are the adapter's); the UNet is referenced, not
    owned. Build it with :func:`attach_trackgo`.
    """

    def __init__(self, unet: nn.Module, adapter: TrackGoAdapter, slots: list[tuple[TemporalSlot, list[nn.Module]]],
                 transformers: dict[str, nn.Module]) -> None:
        super().__init__()
        self.adapter = adapter
        object.__setattr__(self, "_unet", unet)
        object.__setattr__(self, "slots", [s for s, _ in slots])
        object.__setattr__(self, "_saved", [])  # (attn, previous processor, ours)
        object.__setattr__(self, "_handles", [])
        object.__setattr__(self, "_grids", {})
        object.__setattr__(self, "_condition", None)
        object.__setattr__(self, "_records", {})
        object.__setattr__(self, "_moving_mask", None)
        object.__setattr__(self, "_attached", True)
        try:
            for path, transformer in transformers.items():
                self._handles.append(transformer.register_forward_pre_hook(self._grid_hook(path), with_kwargs=True))
            for slot, attns in slots:
                for attn in attns:
                    previous = attn.processor
                    if isinstance(previous, TrackGoAttnProcessor):
                        raise InvalidInputError(f"{slot.diffusers} already has a TrackGo processor.",
                                                fix="detach() the previous attachment first.", source=SOURCE)
                    ours = TrackGoAttnProcessor(self, slot, previous)
                    attn.set_processor(ours)
                    self._saved.append((attn, previous, ours))
        except Exception:
            self.detach()
            raise

    def _grid_hook(self, path: str):
        grids = self._grids

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            grids[path] = tuple(int(s) for s in hidden_arg(args, kwargs).shape[-2:])

        return hook

    @property
    def unet(self) -> nn.Module:
        return self._unet

    @property
    def attached(self) -> bool:
        return self._attached

    @property
    def layer_names(self) -> list[str]:
        """ComfyUI paths of the adapted temporal attentions, in UNet forward order."""
        return [s.comfyui for s in self.slots]

    @property
    def condition(self) -> TrackGoCondition | None:
        return self._condition

    @property
    def recorded_attention(self) -> dict[str, AttentionRecord]:
        """Layer name -> the original branch's attention of the last forward run with ``record_attention=True``
        (kept after the ``conditioned()`` block ends, until the next recording call or :meth:`clear_records`)."""
        return self._records

    @property
    def moving_mask(self) -> torch.Tensor | None:
        """The moving-object masks (as :func:`mask_tensor` keeps them) of the last ``conditioned()`` call that had
        them."""
        return self._moving_mask

    def clear_records(self) -> None:
        object.__setattr__(self, "_records", {})

    # ---- conditioning -------------------------------------------------------------------------------------------

    def set_condition(self, video: Any, moving_mask: Any = None, *, alpha: float = DEFAULT_ALPHA, tau: float = 0.0,
                      strength: float = 1.0, record_attention: bool = False) -> TrackGoCondition:
        """Encode ``video`` now and condition every following UNet forward on it (prefer :meth:`conditioned`)."""
        if not self._attached:
            raise InvalidInputError("this attachment was detached from its UNet.",
                                    fix="attach_trackgo(unet, adapter=attachment.adapter) again.", source=SOURCE)
        alpha, tau = _finite_number(alpha, "alpha"), _finite_number(tau, "tau")
        strength = _finite_number(strength, "strength")
        frames_video = video_tensor(video)
        batch, frames = frames_video.shape[:2]
        mask = None if moving_mask is None else mask_tensor(moving_mask)
        trunk = None
        if strength != 0.0:
            encoder = self.adapter.encoder
            ref = first_param(encoder)
            x = frames_video.reshape(batch * frames, *frames_video.shape[2:]).to(device=ref.device, dtype=ref.dtype)
            trunk = encoder.trunk(x)
        cond = TrackGoCondition(trunk, batch, frames, alpha, tau, strength, bool(record_attention), mask)
        object.__setattr__(self, "_condition", cond)
        if cond.record:
            object.__setattr__(self, "_records", cond.records)
        if mask is not None:
            object.__setattr__(self, "_moving_mask", mask)
        return cond

    def clear_condition(self) -> None:
        object.__setattr__(self, "_condition", None)

    @contextlib.contextmanager
    def conditioned(self, video: Any, moving_mask: Any = None, *, alpha: float = DEFAULT_ALPHA, tau: float = 0.0,
                    strength: float = 1.0, record_attention: bool = False) -> Iterator[TrackGoCondition]:
        """Context manager: every UNet forward inside it follows these point trajectories.

        Args:
            video: the conditioning video P, ``[B, F, 3, H, W]`` float in [0, 1] or ``[B, F, H, W, 3]`` uint8 (or
                without B, or a ``PointTrajectories``), at the pixel size of the video (8x the latent). ``B`` is the
                UNet batch or 1 (shared).
            moving_mask: the masks M_i of the moving objects for the attention loss, ``[B, O, F, H, W]`` (1 on
                object i on frame t; or ``[B, F, H, W]`` / ``[B, H, W]``: one object), or None.
            alpha: A' threshold above which the original branch is masked with -1e4 (0.2 in the paper).
            tau: how much the unspecified area may move (0 in training; at inference 0 = freely, -1e2 = partly
                suppressed, -1e4 = static: :func:`~trackdiffusion.models.trackgo.adapter.tau_temperature`).
            strength: scales A' V; 0 skips the branch entirely (the stock UNet, bit for bit; nothing is encoded).
            record_attention: keep each layer's original-branch attention A (computed explicitly, float32) for
                :func:`trackdiffusion.training.attention_loss`.
        """
        previous = self._condition
        cond = self.set_condition(video, moving_mask, alpha=alpha, tau=tau, strength=strength,
                                  record_attention=record_attention)
        try:
            yield cond
        finally:
            object.__setattr__(self, "_condition", previous)

    # ---- detach -------------------------------------------------------------------------------------------------

    def detach(self) -> None:
        """Restore every attn1's previous processor and remove the hooks: the UNet is bit-identical to before.

        The attachment keeps its adapter (re-attach with ``attach_trackgo(unet, adapter=att.adapter)``). Harmless
        twice.
        """
        for handle in reversed(self._handles):
            handle.remove()
        self._handles.clear()
        for attn, previous, ours in reversed(self._saved):
            if attn.processor is ours:
                attn.set_processor(previous)
        self._saved.clear()
        self._grids.clear()
        object.__setattr__(self, "_condition", None)
        object.__setattr__(self, "_records", {})
        object.__setattr__(self, "_attached", False)

    def extra_repr(self) -> str:
        return f"layers={len(self.slots)}, attached={self._attached}"


def adapter_file(adapter: TrackGoAdapter, trained_steps: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a TrackAdapter file, as :func:`~trackdiffusion.nodes.patches.trackgo.
    load_trackgo_adapter` reads it: ``safetensors.torch.save_file(tensors, path, metadata=metadata)``."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in adapter.state_dict().items()}
    metadata = {"format": TRACKGO_FORMAT, "config": json.dumps(adapter.config()), "trained_steps": str(int(trained_steps))}
    return tensors, metadata


def attach_trackgo(
    unet: nn.Module,
    adapter: TrackGoAdapter | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> TrackGoAttachment:
    """Attach a TrackGo adapter to a diffusers ``UNetSpatioTemporalConditionModel`` (tiny configs too).

    Args:
        unet: the diffusers SVD UNet (only its temporal attn1 processors change, and back on ``detach()``).
        adapter: a (trained) adapter to reuse; its layer names and widths must match this UNet. None builds one:
            encoder level widths = ``block_out_channels``, W'q / W'k copied from each layer's to_q / to_k.
        device, dtype: of a new adapter (default: the UNet's).
    """
    transformers = dict(iter_named(unet, TransformerSpatioTemporalModel))
    if not transformers:
        raise InvalidInputError(f"{type(unet).__name__} has no TransformerSpatioTemporalModel.",
                                fix="Pass a diffusers UNetSpatioTemporalConditionModel (SVD).", source=SOURCE)
    names = _comfyui_paths(unet)
    level_channels = tuple(int(c) for c in getattr(getattr(unet, "config", None), "block_out_channels", ()) or ())
    plan: list[tuple[TemporalSlot, list[nn.Module]]] = []
    for path, transformer in transformers.items():
        if path not in names:
            raise InvalidInputError(f"the TransformerSpatioTemporalModel at {path} is outside the SVD block layout.",
                                    fix="Pass a diffusers UNetSpatioTemporalConditionModel.", source=SOURCE)
        comfy, level = names[path]
        attns = [block.attn1 for block in transformer.temporal_transformer_blocks]
        widths = {_check_attention(a, path) for a in attns}
        channels = widths.pop()
        if widths or not level_channels or level >= len(level_channels) or level_channels[level] != channels:
            raise InvalidInputError(f"{path}: temporal attention width {channels} does not match block_out_channels "
                                    f"{list(level_channels)} at level {level}.",
                                    fix="Pass a diffusers UNetSpatioTemporalConditionModel.", source=SOURCE)
        plan.append((TemporalSlot(path, comfy, level, channels), attns))
    if adapter is None:
        ref = first_param(unet)
        device = device if device is not None else (ref.device if ref is not None else None)
        dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
        adapter = TrackGoAdapter([(s.comfyui, s.channels) for s, _ in plan], level_channels, device=device,
                                 dtype=dtype)
        for slot, attns in plan:
            adapter.layer_for(slot.comfyui).init_from(attns[0].to_q.weight, attns[0].to_k.weight)
    else:
        want = {s.comfyui: s.channels for s, _ in plan}
        have = {n: c for n, c in adapter.config()["layers"]}
        if want != have or tuple(adapter.encoder.level_channels)[:len(level_channels)] != level_channels:
            diff = sorted(set(want.items()) ^ set(have.items()))[:4]
            raise InvalidInputError(f"the TrackAdapter was made for another UNet (layers differ: {diff}; encoder "
                                    f"levels {list(adapter.encoder.level_channels)} vs {list(level_channels)}).",
                                    fix="Use a TrackAdapter trained on this SVD model.", source=SOURCE)
    return TrackGoAttachment(unet, adapter, plan, transformers)
