"""TrackDiffusion on ComfyUI's native SVD UNet, through ModelPatcher only (unpatching restores the model exactly).

How the pieces reach the UNet (see ../shared/reference/comfyui_integration.md, verified on ComfyUI 0.8.0):

- the fusers run as a ``middle_patch`` (after attn1's residual, before attn2: the GLIGEN position). ComfyUI also
  calls middle patches inside the temporal ``time_stack`` blocks, with the same block ids; an object patch on each
  ``time_stack[i].forward`` marks those calls with a flag, so the fuser never runs on temporal tokens (a shape test
  would be ambiguous when frames == h*w);
- the adapter weights are a separate ModelPatcher built from ``comfy.ops.manual_cast`` layers and registered as an
  additional model, so ComfyUI loads, offloads and lowvram-casts them with the UNet;
- per-call data (the box tokens of each cond/uncond chunk at this step: blended towards the null tokens by
  ``strength``, all null outside the start/end window) is put into the call's ``transformer_options`` by a keyed
  ``DIFFUSION_MODEL`` wrapper; the tokens are computed once per sampling run and reused by every layer and step;
- the official checkpoint also fine-tuned conv_in, conv_out and the mix factors: those are weight "set" patches.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import torch

from ...data.errors import InvalidInputError
from ...models.svd.adapter import TrackDiffusionSVDAdapter, blend_box_tokens, slots_to_svd_boxes, tokens_for_chunks

PATCH_KEY = "trackdiffusion_svd"
TEMPORAL_FLAG = "trackdiffusion_temporal"


@dataclass
class SVDAdapterBundle:
    """A loaded TrackDiffusion-SVD adapter: its ModelPatcher, the base-weight replacements and the file's metadata."""

    patcher: object  # comfy.model_patcher.ModelPatcher around a TrackDiffusionSVDAdapter
    base_patches: dict[str, torch.Tensor]
    metadata: dict = field(default_factory=dict)

    @property
    def adapter(self) -> TrackDiffusionSVDAdapter:
        return self.patcher.model


def load_svd_adapter(tensors: dict[str, torch.Tensor], metadata: dict | None = None, *, head_dim: int | None = None
                     ) -> SVDAdapterBundle:
    """Build the adapter from a converted delta (see ``trackdiffusion.models.checkpoints.load_delta``) as a ComfyUI model."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops

    metadata = dict(metadata or {})
    adapter_sd, base = TrackDiffusionSVDAdapter.split_delta(tensors)
    blocks, context_dim = TrackDiffusionSVDAdapter.blocks_from_state_dict(adapter_sd)
    head_dim = head_dim or int(metadata.get("head_dim", 64))
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=context_dim, head_dim=head_dim,
                                       hidden_dim=TrackDiffusionSVDAdapter.hidden_dim_from_state_dict(adapter_sd),
                                       operations=comfy.ops.manual_cast, device="cpu")
    try:
        missing, unexpected = adapter.load_state_dict(adapter_sd, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        missing, unexpected = [str(exc).splitlines()[-1].strip()], []
    if missing or unexpected:
        raise InvalidInputError(
            f"the adapter file does not fit the TrackDiffusion-SVD modules: missing {sorted(missing)[:20]}, "
            f"unexpected {sorted(unexpected)[:20]}.", fix="convert the official svd_stage2 checkpoint again.")
    adapter.eval().requires_grad_(False)
    patcher = comfy.model_patcher.ModelPatcher(adapter, load_device=mm.get_torch_device(),
                                               offload_device=mm.unet_offload_device())
    return SVDAdapterBundle(patcher, base, metadata)


def svd_unet_config(model_channels: int = 320, context_dim: int = 1024, head_dim: int = 64) -> dict:
    """ComfyUI ``UNetModel`` kwargs of an SVD img2vid UNet (what ComfyUI's detection derives from a real checkpoint),
    at any width: the real layout of 16 spatio-temporal transformers; tests and benchmarks shrink the width."""
    import torch as _torch

    return {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
            "num_classes": "sequential", "out_channels": 4, "num_res_blocks": [2, 2, 2, 2],
            "channel_mult": [1, 2, 4, 4], "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
            "transformer_depth_middle": 1, "extra_ff_mix_layer": True, "use_spatial_context": True,
            "merge_strategy": "learned_with_images", "merge_factor": 0.0, "video_kernel_size": [3, 1, 1],
            "disable_temporal_crossattention": False, "model_channels": model_channels, "in_channels": 8,
            "use_linear_in_transformer": True, "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
            "context_dim": context_dim, "adm_in_channels": 768, "use_temporal_attention": True,
            "use_temporal_resblock": True, "num_heads": -1, "num_head_channels": head_dim,
            "attn_precision": _torch.float32}


def _temporal_forward(previous):
    """time_stack[i].forward that flags its calls, then runs the previous forward (another pack's, or the class's)."""

    def forward(self, x, context=None, transformer_options={}):  # noqa: B006 (ComfyUI's own signature)
        options = dict(transformer_options)
        options[TEMPORAL_FLAG] = True
        if previous is not None:
            return previous(x, context=context, transformer_options=options)
        return type(self).forward(self, x, context=context, transformer_options=options)

    return forward


def _spatial_video_transformers(diffusion_model):
    from comfy.ldm.modules.attention import SpatialVideoTransformer

    return [(name, m) for name, m in diffusion_model.named_modules() if isinstance(m, SpatialVideoTransformer)]


def apply_trackdiffusion_svd(model, bundle: SVDAdapterBundle, tracklets, strength: float = 1.0,
                             start_percent: float = 0.0, end_percent: float = 1.0, overflow: str = "error"):
    """A clone of ``model`` (a ComfyUI SVD ModelPatcher) whose video follows ``tracklets``.

    Args:
        strength: how strongly the boxes steer (:func:`~trackdiffusion.models.svd.adapter.blend_box_tokens`): 0 = the
            official no-box state (the fine-tuned UNet, fusers fed null tokens), 1 = as trained.
        start_percent, end_percent: the part of the sampling schedule (0 = first step) where the boxes act; outside
            it the model is in the same no-box state.
        overflow: more than 20 objects: "error" (default), "first" (the official code's first 20 by id) or "largest"
            (see :func:`~trackdiffusion.data.tracklets.slots.tracklets_to_slots`).
    Raises:
        InvalidInputError: a model that is not SVD, too many objects, or (during sampling) a latent whose frame count
            differs from the tracklets'.
    """
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise InvalidInputError(f"start/end must satisfy 0 <= start <= end <= 1, got {start_percent}, {end_percent}.")
    from comfy.patcher_extension import WrappersMP

    m = model.clone()
    diffusion_model = m.get_model_object("diffusion_model")
    svts = _spatial_video_transformers(diffusion_model)
    if not svts:
        raise InvalidInputError("this MODEL has no spatio-temporal transformers: TrackDiffusion-SVD needs a Stable "
                                "Video Diffusion model.", fix="load svd.safetensors (img2vid) with Image Only "
                                "Checkpoint Loader.")
    adapter = bundle.adapter
    missing = [name for name, _ in svts if name not in adapter.block_names]
    if missing:
        raise InvalidInputError(f"the adapter has no fuser for {missing[:5]}: it was made for another UNet.",
                                fix="use the adapter converted from the TrackDiffusion checkpoint of this SVD.")
    slots = tracklets.to_slots(tracklets.num_frames, tracklets.width, tracklets.height, adapter.max_objs,
                               overflow=overflow)
    boxes, masks = slots_to_svd_boxes(slots)
    num_frames = tracklets.num_frames

    for name, svt in svts:
        for i, block in enumerate(svt.time_stack):
            key = f"diffusion_model.{name}.time_stack.{i}.forward"
            previous = m.object_patches.get(key)  # chain another pack's patch instead of replacing it
            m.add_object_patch(key, types.MethodType(_temporal_forward(previous), block))

    model_sampling = m.get_model_object("model_sampling")
    sigma_start = float(model_sampling.percent_to_sigma(start_percent))
    sigma_end = float(model_sampling.percent_to_sigma(end_percent))
    cache: dict = {}

    def chunk_tokens(device, dtype, cond_or_uncond, box_strength):
        key = (device, dtype)
        layout = (tuple(cond_or_uncond), box_strength)
        if key in cache and layout in cache[key][2]:
            return cache[key][2][layout]
        if key not in cache:
            with torch.no_grad():
                b = boxes[None].to(device=device, dtype=torch.float32)
                mk = masks[None].to(device=device, dtype=torch.float32)
                cond = adapter.box_tokens(b, mk)
                null = adapter.box_tokens(b, torch.zeros_like(mk))
            cache.clear()  # one device/dtype at a time: the adapter moved, the old tokens are stale
            cache[key] = (cond, null, {})
        cond, null, assembled = cache[key]
        assembled[layout] = tokens_for_chunks(blend_box_tokens(cond, null, box_strength).to(dtype), null.to(dtype),
                                              cond_or_uncond)
        return assembled[layout]

    def diffusion_model_wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        frames = int(kwargs.get("num_video_frames", x.shape[0]))
        if frames != num_frames:
            raise InvalidInputError(f"the latent has {frames} frames but the tracklets have {num_frames}.",
                                    fix="set video_frames in SVD_img2vid_Conditioning to the tracklets' frame "
                                    "count, or resample the tracklets (Load Tracklets: num_frames).")
        chunks = x.shape[0] // frames
        cond_or_uncond = list(transformer_options.get("cond_or_uncond") or [0] * chunks)
        sigma = transformer_options.get("sigmas")
        active = True
        if sigma is not None:
            s = float(sigma.max())
            active = sigma_end <= s <= sigma_start
        options = dict(transformer_options)
        options[PATCH_KEY] = chunk_tokens(x.device, x.dtype, cond_or_uncond, strength if active else 0.0)
        return executor(x, timesteps, context, y, control, options, **kwargs)

    def middle_patch(x, extra_options):
        tokens = extra_options.get(PATCH_KEY)
        if tokens is None or extra_options.get(TEMPORAL_FLAG):
            return x
        fuser = adapter.fuser_for(extra_options.get("block", ()))
        if fuser is None:
            return x
        return fuser(x, tokens.to(x))

    m.set_model_patch(middle_patch, "middle_patch")
    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, PATCH_KEY, diffusion_model_wrapper)
    m.set_additional_models(PATCH_KEY, [bundle.patcher])
    if bundle.base_patches:
        m.add_patches({k: ("set", (v,)) for k, v in bundle.base_patches.items()}, 1.0)
    return m
