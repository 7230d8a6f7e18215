"""TrackDiffusion main branch ("ModelScope" version) on a stock diffusers ``UNet3DConditionModel``.

Base layout (reference section 1.1), :func:`build_trackdiffusion_unet3d` / :func:`use_official_spatial_heads`:
the stock diffusers UNet3D already has linear ``proj_in``/``proj_out`` in its spatial transformers, temporal
transformers of ``C/64`` heads of 64 and an 8-head ``transformer_in``; the official spatial transformers use **8 heads
of C/8** instead (same tensors, different head split), which ``use_official_spatial_heads`` sets by rebuilding each
spatial ``Transformer2DModel`` with 8 heads around the same weights (diffusers' config does not record it: apply it
again after ``from_pretrained``).

Attached modules (:func:`attach_trackdiffusion_unet3d`; keys = the official ``modelscope_ft`` names, section 3.2):

* ``position_net``: :class:`~trackdiffusion.models.ModelScopePositionNet` (box + per-slot text embedding, instance
  embedding, motion extractor);
* ``<attention>.transformer_blocks.<i>.fuser``: a GLIGEN fuser (8 heads of C/8) in every spatial block, run through
  diffusers' GLIGEN branch (after the attn1 residual, before attn2) by a forward-pre-hook, as in
  :mod:`.diffusers_svd` (the UNet3D forwards ``cross_attention_kwargs`` to its temporal blocks too, which have no
  fuser, so passing ``gligen`` through ``unet(..., cross_attention_kwargs=...)`` would fail there);
* ``up_blocks.<b>.null_track_feat`` (Embedding(1, C), N(0, 1) like the never-trained official one) and
  ``<up attention>.transformer_blocks.<i>.injector`` in every up block with attentions: a pre-hook on the spatial
  transformer keeps its input hidden states (after resnet + temporal conv), and a forward hook on the fuser runs the
  injector right after it on :func:`~trackdiffusion.models.instance_roi_features` of those hidden states and the
  motion features;
* ``transformer_in.time_embedder`` and ``<temp attention>.time_embedder``: a
  :class:`~trackdiffusion.models.FrameEmbedding` (16 frames) added right after the temporal GroupNorm, by a pre-hook
  on the temporal ``proj_in``. It is part of the base network and stays on outside ``conditioned()``; it is **not**
  gated (N(0, 1) init as in the official code), so a fresh attachment changes the output unless it is loaded or
  created with ``zero_init_frame_embedding=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from diffusers import UNet3DConditionModel
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from torch import nn

from ...data.errors import InvalidInputError
from ...data.tracklets.slots import Slots
from .. import (
    FrameEmbedding,
    GatedCrossAttentionTrackFuse,
    GatedSelfAttentionDense,
    ModelScopePositionNet,
    instance_roi_features,
    tanh_gate,
)
from ..attachment import (
    Condition,
    UNetAttachment,
    as_float_tensor,
    batch_first,
    first_param,
    hidden_arg,
    iter_named,
    normalise_strength,
    pad_slots,
)

SOURCE = "diffusers UNet3D backend"
MAX_OBJS = 20
MAX_FRAMES = 16
SPATIAL_HEADS = 8

#: The official base network (``dev/t2v.sh`` / demo: diffusers-0.21 UNet3D layout, CLIP-L 768 context).
OFFICIAL_UNET3D_CONFIG: dict[str, Any] = {
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
    "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "cross_attention_dim": 768,
    "attention_head_dim": 64,
}

#: ``train_for_vis.py --train_mode``: geo (stage 1) and temp (stage 2) parameter-name keywords
UNET3D_STAGE_KEYWORDS = {
    1: ("fuser", "position_net"),
    2: ("temp", "tracklet", "instance_embedding", "transformer_in", "injector"),
}


def _replace(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    if isinstance(parent, (nn.ModuleList, nn.Sequential)) and name.isdigit():
        parent[int(name)] = module
    else:
        setattr(parent, name, module)


def use_official_spatial_heads(unet: nn.Module, heads: int = SPATIAL_HEADS) -> nn.Module:
    """Give every spatial ``Transformer2DModel`` of ``unet`` ``heads`` heads of ``C/heads`` (official: 8), in place.

    Each transformer is rebuilt from its config with the new head split and takes over the very same weight tensors
    (no copy, no change of values, dtype or device). Returns ``unet``.
    """
    for path, module in list(iter_named(unet, Transformer2DModel)):
        cfg = dict(module.config)
        if cfg["num_attention_heads"] == heads:
            continue
        channels = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        if channels % heads:
            raise InvalidInputError(f"{path} has {channels} channels, not divisible into {heads} heads.",
                                    fix=f"Use block channels divisible by {heads}.", source=SOURCE)
        cfg.update(num_attention_heads=heads, attention_head_dim=channels // heads)
        cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
        with torch.device("meta"):
            new = Transformer2DModel.from_config(cfg)
        new.load_state_dict(module.state_dict(keep_vars=True), assign=True)
        new.train(module.training)
        left = [n for n, t in list(new.named_parameters()) + list(new.named_buffers()) if t.device.type == "meta"]
        if left and any(t.device.type != "meta" for t in module.parameters()):
            raise InvalidInputError(f"could not move {left[:3]} of {path} to the new head layout.",
                                    fix="Report this with your diffusers version.", source=SOURCE)
        _replace(unet, path, new)
    return unet


def build_trackdiffusion_unet3d(config_overrides: Mapping[str, Any] | None = None, *,
                                spatial_heads: int = SPATIAL_HEADS) -> UNet3DConditionModel:
    """A diffusers ``UNet3DConditionModel`` with the official TrackDiffusion base layout (randomly initialised).

    ``config_overrides`` update :data:`OFFICIAL_UNET3D_CONFIG` (e.g. tiny ``block_out_channels`` for tests). Build
    under ``torch.device("meta")`` to get the full-size layout without allocating it. Attach the TrackDiffusion
    modules with :func:`attach_trackdiffusion_unet3d`.
    """
    unet = UNet3DConditionModel(**{**OFFICIAL_UNET3D_CONFIG, **dict(config_overrides or {})})
    return use_official_spatial_heads(unet, spatial_heads)


class TrackDiffusionUNet3DAttachment(UNetAttachment):
    """The TrackDiffusion main-branch modules attached to a diffusers UNet3D (see the module docstring).

    ``state_dict()`` keys are the official ``modelscope_ft`` added keys. Build with :func:`attach_trackdiffusion_unet3d`.
    """

    SOURCE: ClassVar[str] = SOURCE
    STAGE_KEYWORDS: ClassVar[Mapping[Any, tuple[str, ...]]] = UNET3D_STAGE_KEYWORDS
    STAGE_ALIASES: ClassVar[Mapping[Any, Any]] = {"geo": 1, "temp": 2, "1": 1, "2": 2}
    ADDED_MARKERS: ClassVar[tuple[str, ...]] = (".fuser.", ".injector.", "position_net.", "null_track_feat",
                                                "time_embedder")

    def __init__(self, unet: nn.Module, position_net: ModelScopePositionNet,
                 fusers: list[tuple[str, nn.Module, nn.Module]],
                 injectors: list[tuple[str, str, str, nn.Module]],
                 null_feats: list[tuple[str, nn.Module, list[tuple[str, nn.Module]]]],
                 frame_embeddings: list[tuple[str, nn.Module, FrameEmbedding]],
                 max_objs: int = MAX_OBJS, max_frames: int = MAX_FRAMES) -> None:
        super().__init__(unet)
        self.max_objs = max_objs
        self.max_frames = max_frames
        try:
            self._graft("position_net", position_net)
            for path, block, fuser in fusers:
                self._install_fuser(block, fuser, path)
            for path, null, transformers in null_feats:
                self._graft(path, null)
                for tpath, transformer in transformers:
                    self._hook(transformer.register_forward_pre_hook(self._capture_hook(tpath), with_kwargs=True))
            for path, fuser_path, tpath, injector in injectors:
                self._graft(path, injector)
                fuser = self._tree_get(fuser_path)
                null = self._tree_get(tpath.rsplit(".attentions.", 1)[0] + ".null_track_feat")
                self._hook(fuser.register_forward_hook(self._injector_hook(tpath, injector, null),
                                                       with_kwargs=True))
            for path, temporal, emb in frame_embeddings:
                self._graft(path, emb)
                self._hook(temporal.proj_in.register_forward_pre_hook(self._frame_hook(emb)))
        except Exception:
            self.detach()
            raise

    # ---- hooks --------------------------------------------------------------------------------------------------

    def _capture_hook(self, tpath: str) -> Any:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            cond = self._condition
            if cond is not None:
                cond.cache[("roi_in", tpath)] = hidden_arg(args, kwargs)

        return hook

    def _injector_hook(self, tpath: str, injector: GatedCrossAttentionTrackFuse, null: nn.Embedding) -> Any:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor | None:
            cond = self._condition
            if cond is None:
                return None
            x = output
            bf = x.shape[0]
            strength = cond.strength_for(x)
            track = cond.expand(cond.extra["track"], bf, "track")
            if tanh_gate(injector.alpha_attn, strength, x) is not None:
                hidden = cond.cache.get(("roi_in", tpath))
                if hidden is None or hidden.shape[0] != bf:
                    raise InvalidInputError(f"no hidden states were seen for {tpath} in this forward.",
                                            fix="Call the whole UNet, not a single block.", source=SOURCE)
                roi = instance_roi_features(hidden, cond.expand(cond.extra["boxes"], bf, "boxes"),
                                            cond.expand(cond.extra["masks"], bf, "masks"), null.weight)
            else:  # the cross-attention branch is off: its instance tokens are not needed
                roi = x.new_zeros(bf, track.shape[1], injector.query_dim)
            return injector(x, roi, track, cond.frames, strength=strength)

        return hook

    @staticmethod
    def _frame_hook(emb: FrameEmbedding) -> Any:
        def hook(module: nn.Module, args: tuple) -> tuple:
            return (emb(args[0]),) + tuple(args[1:])

        return hook

    # ---- conditioning -------------------------------------------------------------------------------------------

    def conditioned(self, boxes: Any, masks: Any = None, positive_embeddings: Any = None, strength: Any = 1.0
                    ) -> Any:
        """Context manager: every UNet forward inside it is conditioned on these tracklets.

        The position net (location tokens + motion features) runs once, here.

        Args:
            boxes: ``[B, F, N, 4]`` (or ``[F, N, 4]``) normalised xyxy, or a
                :class:`~trackdiffusion.data.tracklets.slots.Slots` (then ``masks`` defaults to its own). ``F`` <= 16,
                ``N`` <= 20; fewer slots are padded with null slots.
            masks: ``[B, F, N]`` (or ``[F, N]``), 1 where the object is present.
            positive_embeddings: the category text embedding of each slot (official: CLIP-L ``pooler_output``,
                768-d): ``[B, F, N, P]``, ``[B, N, P]`` (same for every frame) or ``[N, P]``. Required.
            strength: multiplies every fuser and injector gate: a number, ``[B]`` or ``[B, F]``.
        """
        return self._conditioned(boxes, masks, positive_embeddings, strength)

    def _make_condition(self, boxes: Any, masks: Any = None, positive_embeddings: Any = None,
                        strength: Any = 1.0) -> Condition:
        if isinstance(boxes, Slots):
            masks = boxes.masks if masks is None else masks
            boxes = boxes.boxes
        if masks is None:
            raise InvalidInputError("masks are required with box tensors.",
                                    fix="Pass masks [B, F, N] (1 = present), or a Slots object.", source=SOURCE)
        if positive_embeddings is None:
            raise InvalidInputError(
                "the ModelScope position net needs a text embedding per slot (positive_embeddings).",
                fix="Encode each slot's category with the CLIP-L text encoder (pooler_output) and pass it.",
                source=SOURCE)
        boxes, masks = batch_first(as_float_tensor(boxes, "boxes", SOURCE), as_float_tensor(masks, "masks", SOURCE),
                                   (4,), SOURCE)
        batch, frames, slots, _ = boxes.shape
        if frames > self.max_frames:
            raise InvalidInputError(f"{frames} frames requested, but the frame embeddings know at most "
                                    f"{self.max_frames}.", fix=f"Generate at most {self.max_frames} frames.",
                                    source=SOURCE)
        if slots > self.max_objs:
            raise InvalidInputError(f"{slots} slots per frame, but the model has {self.max_objs}.",
                                    fix=f"Keep at most {self.max_objs} objects.", source=SOURCE)
        if not bool(torch.isfinite(boxes).all()):
            raise InvalidInputError("boxes contain NaN or infinite values.", fix="Pass finite coordinates.",
                                    source=SOURCE)
        net: ModelScopePositionNet = self.position_net
        pos = as_float_tensor(positive_embeddings, "positive_embeddings", SOURCE)
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        if pos.dim() == 3:
            pos = pos.unsqueeze(1)
        if (pos.dim() != 4 or pos.shape[0] not in (1, batch) or pos.shape[1] not in (1, frames)
                or pos.shape[2] != slots or pos.shape[3] != net.positive_len):
            raise InvalidInputError(
                f"positive_embeddings must have shape [{batch}, {frames}, {slots}, {net.positive_len}], "
                f"[{batch}, {slots}, {net.positive_len}] or [{slots}, {net.positive_len}], got "
                f"{list(as_float_tensor(positive_embeddings, 'positive_embeddings', SOURCE).shape)}.",
                fix="Pass one text embedding per slot.", source=SOURCE)
        pos = pos.expand(batch, frames, slots, net.positive_len)
        n = self.max_objs
        boxes, masks, pos = pad_slots(boxes, n, 2), pad_slots(masks, n, 2), pad_slots(pos, n, 2)
        ref = first_param(net)
        kw = {"device": ref.device, "dtype": ref.dtype}
        boxes, masks, pos = boxes.to(**kw), masks.to(**kw), pos.to(**kw)
        objs, track = net(boxes.reshape(batch, frames * n, 4), masks.reshape(batch, frames * n),
                          pos.reshape(batch, frames * n, net.positive_len), num_frames=frames)
        extra = {"boxes": boxes.reshape(batch * frames, n, 4), "masks": masks.reshape(batch * frames, n)}
        if track is not None:
            extra["track"] = track.flatten(0, 1)  # [B*F, N, T]
        return Condition(objs.reshape(batch * frames, n, objs.shape[-1]), frames,
                         normalise_strength(strength, frames, SOURCE), extra=extra, source=SOURCE)

    def _unet_key_selected(self, key: str) -> bool:
        # The official modelscope_ft file is a whole fine-tuned UNet (no public stock base): load all of it.
        return True

    @property
    def injectors(self) -> dict[str, nn.Module]:
        """Injector path -> injector."""
        return {n: m for n, m in self.named_modules() if n.endswith(".injector")}

    @property
    def frame_embeddings(self) -> dict[str, FrameEmbedding]:
        """``time_embedder`` path -> frame embedding."""
        return {n: m for n, m in self.named_modules() if n.endswith("time_embedder")}


def attach_trackdiffusion_unet3d(
    unet: nn.Module,
    position_net: ModelScopePositionNet | None = None,
    fusers: Mapping[str, nn.Module] | None = None,
    injectors: Mapping[str, nn.Module] | None = None,
    *,
    max_objs: int = MAX_OBJS,
    max_frames: int = MAX_FRAMES,
    hidden_dim: int = 512,
    zero_init_frame_embedding: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> TrackDiffusionUNet3DAttachment:
    """Attach the TrackDiffusion main-branch modules to a diffusers ``UNet3DConditionModel``.

    Sized from the UNet (block channels, ``cross_attention_dim``), so tiny configs work. For the official layout
    build the base with :func:`build_trackdiffusion_unet3d` (or call :func:`use_official_spatial_heads`).

    Args:
        position_net: reuse this :class:`ModelScopePositionNet` (default: positive_len = out_dim =
            ``cross_attention_dim``, ``max_objs`` slots, instance embedding and motion extractor on).
        fusers, injectors: reuse these, keyed by module path (``<attention>.transformer_blocks.<i>.fuser`` /
            ``.injector``); missing ones are created (gates 0).
        max_objs: slots per frame (20). max_frames: frame-embedding positions (16).
        hidden_dim: position-net MLP width (512).
        zero_init_frame_embedding: start the frame embeddings at 0 (exact identity) instead of N(0, 1).
        device, dtype: of new modules (default: the UNet's).
    """
    spatial = list(iter_named(unet, Transformer2DModel))
    temporal = list(iter_named(unet, TransformerTemporalModel))
    if not spatial or not temporal:
        raise InvalidInputError(f"{type(unet).__name__} has no spatial Transformer2DModel / TransformerTemporalModel.",
                                fix="Pass a diffusers UNet3DConditionModel.", source=SOURCE)
    ref = first_param(unet)
    device = device if device is not None else (ref.device if ref is not None else None)
    dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
    kw = {"device": device, "dtype": dtype}
    if position_net is None:
        dim = getattr(getattr(unet, "config", None), "cross_attention_dim", None)
        if not isinstance(dim, int):
            raise InvalidInputError(f"cannot size the position net from cross_attention_dim={dim!r}.",
                                    fix="Pass position_net= explicitly.", source=SOURCE)
        position_net = ModelScopePositionNet(positive_len=dim, out_dim=dim, max_objs=max_objs, hidden_dim=hidden_dim,
                                             **kw)
    if not isinstance(position_net, ModelScopePositionNet) or position_net.max_objs != max_objs:
        raise InvalidInputError("position_net must be a ModelScopePositionNet with max_objs slots.",
                                fix=f"Build it with max_objs={max_objs}.", source=SOURCE)
    context = position_net.out_dim
    given_f, given_i = dict(fusers or {}), dict(injectors or {})

    fuser_plan, injector_plan = [], []
    null_plan: dict[str, tuple[nn.Module, list[tuple[str, nn.Module]]]] = {}
    for tpath, transformer in spatial:
        channels = transformer.inner_dim
        block_path = tpath.rsplit(".attentions.", 1)[0]
        with_injector = block_path.startswith("up_blocks.") and block_path.count(".") == 1
        if with_injector:
            if position_net.tracklet_attn is None:
                raise InvalidInputError("the injectors need the position net's motion extractor.",
                                        fix="Use a ModelScopePositionNet with motion_extractor=True.", source=SOURCE)
            if block_path not in null_plan:
                null = nn.Embedding(1, channels, **kw)
                null_plan[block_path] = (null, [])
            null_plan[block_path][1].append((tpath, transformer))
        for i, block in enumerate(transformer.transformer_blocks):
            fpath = f"{tpath}.transformer_blocks.{i}.fuser"
            fuser = given_f.pop(fpath, None)
            if fuser is None:
                fuser = GatedSelfAttentionDense.modelscope(channels, context_dim=context, heads=SPATIAL_HEADS, **kw)
            if fuser.query_dim != channels or fuser.context_dim != context:
                raise InvalidInputError(f"the fuser for {fpath} has dims {fuser.query_dim}/{fuser.context_dim}, the "
                                        f"block needs {channels}/{context}.",
                                        fix="Pass fusers made for this UNet configuration.", source=SOURCE)
            fuser_plan.append((fpath, block, fuser))
            if with_injector:
                ipath = f"{tpath}.transformer_blocks.{i}.injector"
                injector = given_i.pop(ipath, None)
                if injector is None:
                    injector = GatedCrossAttentionTrackFuse(channels, track_dim=position_net.track_dim,
                                                            heads=SPATIAL_HEADS, **kw)
                if injector.query_dim != channels or injector.track_dim != position_net.track_dim:
                    raise InvalidInputError(f"the injector for {ipath} does not fit the block ({channels} channels).",
                                            fix="Pass injectors made for this UNet configuration.", source=SOURCE)
                injector_plan.append((ipath, fpath, tpath, injector))
    if given_f or given_i:
        raise InvalidInputError(f"modules given for paths this UNet does not have: {sorted({**given_f, **given_i})[:3]}.",
                                fix="Key them by '<attention>.transformer_blocks.<i>.fuser' / '.injector'.",
                                source=SOURCE)
    frame_plan = []
    for tpath, transformer in temporal:
        emb = FrameEmbedding(max_frames, transformer.proj_in.in_features, **kw)
        if zero_init_frame_embedding:
            with torch.no_grad():
                emb.weight.zero_()
        frame_plan.append((f"{tpath}.time_embedder", transformer, emb))
    nulls = [(f"{p}.null_track_feat", null, ts) for p, (null, ts) in null_plan.items()]
    return TrackDiffusionUNet3DAttachment(unet, position_net, fuser_plan, injector_plan, nulls, frame_plan,
                                          max_objs=max_objs, max_frames=max_frames)
