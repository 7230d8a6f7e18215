"""TrackDiffusion-SVD on a stock diffusers ``UNetSpatioTemporalConditionModel``, without forking diffusers.

What is attached (reference sections 1.2 and 3.3):

* ``position_net``: :class:`~trackdiffusion.models.SVDBoxPositionNet` (7 numbers per box: xyxy + RGB; out_dim = the
  UNet's ``cross_attention_dim``);
* one fuser (:meth:`GatedSelfAttentionDense.svd`, heads of the transformer's own ``attention_head_dim``) in the spatial
  ``BasicTransformerBlock`` of every ``TransformerSpatioTemporalModel``, at ``<attention>.transformer_blocks.<i>.fuser``
  (16 in the real SVD; the ``temporal_transformer_blocks`` are untouched).

Mechanism (why hooks): diffusers' ``BasicTransformerBlock`` already has GLIGEN's fuser slot, after the attn1 residual
and before attn2, driven by ``cross_attention_kwargs["gligen"]["objs"]`` and a ``fuser`` attribute. But in the
installed diffusers ``TransformerSpatioTemporalModel.forward`` has no ``cross_attention_kwargs`` parameter and calls
its spatial blocks with ``encoder_hidden_states`` only (``UNetSpatioTemporalConditionModel.forward`` takes none
either), so nothing can reach that slot through the public call chain. We therefore graft our fuser as the block's
``fuser`` attribute and add a forward-pre-hook on each spatial block that injects ``gligen`` objs (one tensor computed
once per :meth:`~TrackDiffusionSVDAttachment.conditioned` call). That keeps diffusers' exact placement, touches no
diffusers code, works with gradient checkpointing (the hook sees positional calls too), and :meth:`detach` undoes it.

Usage::

    att = attach_trackdiffusion_svd(unet)
    # the official whole UNet (safetensors.torch.load_file) or our delta (weights.convert.load_delta(path)[0]);
    # include_unet=True also loads the trained conv_in / conv_out / mix factors (restored by detach())
    att.load_official_state_dict(state_dict, include_unet=True)
    with att.conditioned(slots):                    # or boxes [B,F,N,4], masks [B,F,N], colors [B,N,3]
        noise_pred = unet(latents, t, image_embeddings, added_time_ids).sample
    att.detach()

Under CFG pass a batch of 2 videos (unconditional first, with masks 0, as the official pipeline) or one video to
share between both halves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel
from torch import nn

from ...data.errors import InvalidInputError
from ...data.tracklets.slots import Slots
from .. import GatedSelfAttentionDense, SVDBoxPositionNet
from ..attachment import (
    Condition,
    UNetAttachment,
    as_float_tensor,
    batch_first,
    first_param,
    iter_named,
    normalise_strength,
    pad_slots,
)
from .adapter import blend_box_tokens
from .naming import ATTENTIONS, RESNETS, TOP_LEVEL_MAP, longest_module_prefix

SOURCE = "diffusers SVD backend"
#: slots per frame of the official model (``fixed_objs``); fewer are padded with null slots
MAX_OBJS = 20
#: colour used when none is given: the official web demo's (1, 0, 0)
DEFAULT_COLOR = (1.0, 0.0, 0.0)
#: parameter-name keywords trained in both official SVD stages (``train_svd_tracklet.py``)
SVD_TRAIN_KEYWORDS = ("fuser", "position_net", "time_mixer", "conv_out", "conv_in")

_COMFY_TO_DIFFUSERS = {s.comfyui: s.diffusers for s in ATTENTIONS + RESNETS}
_COMFY_TO_DIFFUSERS.update({v: k for k, v in TOP_LEVEL_MAP.items()})


def comfyui_to_diffusers(key: str) -> str:
    """ComfyUI-named SVD UNet key (no ``diffusion_model.`` prefix) of a fuser / conv / mix factor -> diffusers name.

    Covers what our SVD delta holds (see :mod:`trackdiffusion.models.checkpoints.convert`); other keys come back unchanged.
    """
    module = longest_module_prefix(key, _COMFY_TO_DIFFUSERS)
    return key if module is None else _COMFY_TO_DIFFUSERS[module] + key[len(module):]


class TrackDiffusionSVDAttachment(UNetAttachment):
    """The TrackDiffusion-SVD modules attached to a diffusers SVD UNet (see the module docstring).

    ``state_dict()`` keys: ``position_net.*`` and ``<attention>.transformer_blocks.<i>.fuser.*`` (the official
    diffusers keys). ``fusers``: fuser path -> module. Use :func:`attach_trackdiffusion_svd` to build one.
    """

    SOURCE: ClassVar[str] = SOURCE
    STAGE_KEYWORDS: ClassVar[Mapping[Any, tuple[str, ...]]] = {1: SVD_TRAIN_KEYWORDS, 2: SVD_TRAIN_KEYWORDS}
    STAGE_ALIASES: ClassVar[Mapping[Any, Any]] = {"1": 1, "2": 2, "stage1": 1, "stage2": 2}
    ADDED_MARKERS: ClassVar[tuple[str, ...]] = (".fuser.", "position_net.")

    def __init__(self, unet: nn.Module, position_net: nn.Module,
                 plan: list[tuple[str, nn.Module, nn.Module]], max_objs: int = MAX_OBJS) -> None:
        super().__init__(unet)
        self.max_objs = max_objs
        try:
            self._graft("position_net", position_net)
            for path, block, fuser in plan:
                self._install_fuser(block, fuser, path)
        except Exception:
            self.detach()
            raise

    def conditioned(self, boxes: Any, masks: Any = None, colors: Any = None, strength: Any = 1.0,
                    box_strength: float = 1.0) -> Any:
        """Context manager: every UNet forward inside it is conditioned on these tracklets.

        The position net runs once, here; all fusers of all following forwards reuse its tokens.

        Args:
            boxes: ``[B, F, N, 4]`` (or ``[F, N, 4]``) normalised xyxy, or ``[B, F, N, 7]`` with RGB already in the
                last 3 channels, or a :class:`~trackdiffusion.data.tracklets.slots.Slots` (then ``masks``/``colors``
                default to its own). ``N`` <= ``max_objs`` (20); fewer slots are padded with null slots.
            masks: ``[B, F, N]`` (or ``[F, N]``), 1 where the object is present; 0 gives the null token.
            colors: ``[B, N, 3]`` or ``[N, 3]`` RGB in [0, 1] per slot (default (1, 0, 0), the official demo's).
            strength: multiplies every fuser gate (a low-level knob: 0 skips the fusers): a number, or per video
                ``[B]`` / per video and frame ``[B, F]``.
            box_strength: what the ComfyUI node's ``strength`` means: the tokens blended towards the null tokens
                (:func:`~trackdiffusion.models.svd.adapter.blend_box_tokens`; 0 = the official no-box state).

        Batch: ``B`` must equal the UNet batch, or be 1 (shared by every video of the batch).
        """
        return self._conditioned(boxes, masks, colors, strength, box_strength)

    def _make_condition(self, boxes: Any, masks: Any = None, colors: Any = None, strength: Any = 1.0,
                        box_strength: float = 1.0) -> Condition:
        if isinstance(boxes, Slots):
            masks = boxes.masks if masks is None else masks
            colors = boxes.colors if colors is None else colors
            boxes = boxes.boxes
        if masks is None:
            raise InvalidInputError("masks are required with box tensors.",
                                    fix="Pass masks [B, F, N] (1 = present), or a Slots object.", source=SOURCE)
        boxes = as_float_tensor(boxes, "boxes", SOURCE)
        masks = as_float_tensor(masks, "masks", SOURCE)
        boxes, masks = batch_first(boxes, masks, (4, 7), SOURCE)
        batch, frames, slots, box_dim = boxes.shape
        if slots > self.max_objs:
            raise InvalidInputError(f"{slots} slots per frame, but the model takes at most {self.max_objs}.",
                                    fix=f"Keep at most {self.max_objs} objects.", source=SOURCE)
        if not bool(torch.isfinite(boxes).all()):
            raise InvalidInputError("boxes contain NaN or infinite values.", fix="Pass finite coordinates.",
                                    source=SOURCE)
        if box_dim == 4:
            rgb = as_float_tensor(DEFAULT_COLOR, "colors", SOURCE).expand(slots, 3) if colors is None else \
                as_float_tensor(colors, "colors", SOURCE)
            if rgb.dim() == 2:
                rgb = rgb.unsqueeze(0)
            if rgb.dim() != 3 or rgb.shape[0] not in (1, batch) or tuple(rgb.shape[1:]) != (slots, 3):
                raise InvalidInputError(f"colors must have shape [{batch}, {slots}, 3] or [{slots}, 3], "
                                        f"got {list(rgb.shape)}.", fix="Pass one RGB colour in [0, 1] per slot.",
                                        source=SOURCE)
            rgb = rgb.to(boxes).expand(batch, slots, 3)
            boxes = torch.cat([boxes, rgb[:, None].expand(batch, frames, slots, 3)], dim=-1)
        elif colors is not None:
            raise InvalidInputError("boxes already hold 7 numbers (xyxy + RGB) and colors were given too.",
                                    fix="Pass 4-number boxes with colors, or 7-number boxes alone.", source=SOURCE)
        boxes = pad_slots(boxes, self.max_objs, 2)
        masks = pad_slots(masks, self.max_objs, 2)
        slots = self.max_objs
        net = self.position_net
        ref = first_param(net)
        boxes = boxes.to(device=ref.device, dtype=ref.dtype)
        masks = masks.to(device=ref.device, dtype=ref.dtype)
        objs = net(boxes.reshape(batch, frames * slots, 7), masks.reshape(batch, frames * slots))
        if box_strength != 1.0:
            null = net(boxes.reshape(batch, frames * slots, 7), torch.zeros_like(masks).reshape(batch, frames * slots))
            objs = blend_box_tokens(objs, null, float(box_strength))
        objs = objs.reshape(batch * frames, slots, objs.shape[-1])
        return Condition(objs, frames, normalise_strength(strength, frames, SOURCE), source=SOURCE)

    def _normalise_key(self, key: str) -> str:
        # ComfyUI naming: our converted SVD delta (``diffusion_model.``) or a ComfyUI checkpoint.
        for prefix in ("model.diffusion_model.", "diffusion_model."):
            if key.startswith(prefix):
                return comfyui_to_diffusers(key[len(prefix):])
        return super()._normalise_key(key)


def _cross_attention_dim(unet: nn.Module) -> int:
    dim = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
    if isinstance(dim, (list, tuple)) and len(set(dim)) == 1:
        dim = dim[0]
    if not isinstance(dim, int):
        raise InvalidInputError(f"cannot size the position net from cross_attention_dim={dim!r}.",
                                fix="Pass position_net= explicitly.", source=SOURCE)
    return dim


def attach_trackdiffusion_svd(
    unet: nn.Module,
    position_net: nn.Module | None = None,
    fusers: Mapping[str, nn.Module] | None = None,
    *,
    max_objs: int = MAX_OBJS,
    hidden_dim: int = 512,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> TrackDiffusionSVDAttachment:
    """Attach the TrackDiffusion-SVD position net and fusers to a diffusers ``UNetSpatioTemporalConditionModel``.

    Modules are sized from the UNet itself (block channels, ``attention_head_dim``, ``cross_attention_dim``), so tiny
    test configs work; new ones are freshly initialised (gates 0: the UNet output is unchanged until trained or loaded).

    Args:
        unet: the diffusers SVD UNet (not modified beyond grafted modules and hooks; see ``detach()``).
        position_net: reuse this position net (its ``out_dim`` sets the fusers' context dim).
        fusers: reuse these fusers, keyed by fuser path ``<attention>.transformer_blocks.<i>.fuser`` (or by the
            attention path when it has one block); missing ones are created.
        max_objs: slots per frame (20 in the official model).
        hidden_dim: position-net MLP width (512 official).
        device, dtype: of new modules (default: the UNet's).
    """
    transformers = list(iter_named(unet, TransformerSpatioTemporalModel))
    if not transformers:
        raise InvalidInputError(f"{type(unet).__name__} has no TransformerSpatioTemporalModel.",
                                fix="Pass a diffusers UNetSpatioTemporalConditionModel.", source=SOURCE)
    ref = first_param(unet)
    device = device if device is not None else (ref.device if ref is not None else None)
    dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
    if position_net is None:
        position_net = SVDBoxPositionNet(out_dim=_cross_attention_dim(unet), hidden_dim=hidden_dim,
                                         device=device, dtype=dtype)
    context = getattr(position_net, "out_dim", None)
    if not isinstance(context, int):
        raise InvalidInputError("position_net has no integer out_dim.", fix="Pass an SVDBoxPositionNet.",
                                source=SOURCE)
    given = dict(fusers or {})
    plan = []
    for path, transformer in transformers:
        blocks = transformer.transformer_blocks
        for i, block in enumerate(blocks):
            fpath = f"{path}.transformer_blocks.{i}.fuser"
            fuser = given.pop(fpath, None)
            if fuser is None and len(blocks) == 1:
                fuser = given.pop(path, None)
            channels = transformer.inner_dim
            if fuser is None:
                fuser = GatedSelfAttentionDense.svd(channels, context_dim=context,
                                                    head_dim=transformer.attention_head_dim,
                                                    device=device, dtype=dtype)
            if getattr(fuser, "query_dim", None) != channels or getattr(fuser, "context_dim", None) != context:
                raise InvalidInputError(
                    f"the fuser for {fpath} has query/context dims {getattr(fuser, 'query_dim', None)}/"
                    f"{getattr(fuser, 'context_dim', None)}, the block needs {channels}/{context}.",
                    fix="Pass fusers made for this UNet configuration.", source=SOURCE)
            plan.append((fpath, block, fuser))
    if given:
        raise InvalidInputError(f"fusers given for paths this UNet does not have: {sorted(given)[:3]}.",
                                fix="Key fusers by '<attention>.transformer_blocks.<i>.fuser'.", source=SOURCE)
    return TrackDiffusionSVDAttachment(unet, position_net, plan, max_objs=max_objs)
