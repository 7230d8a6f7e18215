"""TrackGo's TrackAdapter in ComfyUI's native SVD, through ModelPatcher only.

Only temporal self-attention is patched, and nothing in ``transformer_options`` tells temporal from spatial calls, so
the patch is an object patch on each ``time_stack[i].attn1.forward`` (restored on unpatch, survives clone). The
original branch keeps ComfyUI's own attention function, given the mask A_M (and tau's temperature); the trajectory
branch A' V is added before the layer's output projection. The encoded trajectories are computed once per sampling run (per
device/dtype) and reused at every layer and step; the unconditional chunk sees an empty (black) trajectory video.
"""

from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass, field

import numpy as np
import torch

from ...data.errors import InvalidInputError
from ...models.trackgo.adapter import TRACKGO_FORMAT, TrackGoAdapter, trackgo_attention, video_to_tokens
from .svd import _spatial_video_transformers

PATCH_KEY = "trackdiffusion_trackgo"
NO_WEIGHTS_HELP = ("TrackGo released no weights: train a TrackAdapter on your data (see the README, 'TrackGo'), put "
                   "the .safetensors in models/trackdiffusion and load it with Load TrackDiffusion Adapter.")


@dataclass
class TrackGoAdapterBundle:
    patcher: object  # comfy.model_patcher.ModelPatcher around a TrackGoAdapter
    metadata: dict = field(default_factory=dict)

    @property
    def adapter(self) -> TrackGoAdapter:
        return self.patcher.model


def load_trackgo_adapter(tensors: dict[str, torch.Tensor], metadata: dict) -> TrackGoAdapterBundle:
    """A TrackAdapter file (state dict + metadata {"format", "config" (JSON), "trained_steps"}) as a ComfyUI model."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.ops

    if metadata.get("format") != TRACKGO_FORMAT:
        raise InvalidInputError(f"not a TrackAdapter file (format {metadata.get('format')!r}).", fix=NO_WEIGHTS_HELP)
    if str(metadata.get("trained_steps", "0")) in ("", "0"):
        raise InvalidInputError("this TrackAdapter was never trained: it would only add noise to the video.",
                                fix=NO_WEIGHTS_HELP)
    try:
        config = json.loads(metadata["config"])
    except (KeyError, ValueError):
        raise InvalidInputError("the TrackAdapter file has no readable \"config\" metadata.",
                                fix="save adapters with the pack's training command.") from None
    adapter = TrackGoAdapter.from_config(config, operations=comfy.ops.manual_cast, device="cpu")
    missing, unexpected = adapter.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise InvalidInputError(f"the TrackAdapter weights do not match its config: missing {sorted(missing)[:20]}, "
                                f"unexpected {sorted(unexpected)[:20]}.", fix="save the adapter again.")
    adapter.eval().requires_grad_(False)
    patcher = comfy.model_patcher.ModelPatcher(adapter, load_device=mm.get_torch_device(),
                                               offload_device=mm.unet_offload_device())
    return TrackGoAdapterBundle(patcher, dict(metadata))


def trajectory_video_tensor(trajectories, point_size: int = 4) -> torch.Tensor:
    """PointTrajectories -> the conditioning video P as [F, 3, H, W] float in [0, 1]."""
    video = trajectories.render(point_size=point_size)
    return torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float() / 255.0


def _attn1_forward(layer, previous):
    """time_stack attn1.forward with the TrackAdapter branch; falls through to the previous forward when inactive."""
    from comfy.ldm.modules.attention import optimized_attention_masked

    def forward(self, x, context=None, value=None, mask=None, transformer_options={}):  # noqa: B006
        state = transformer_options.get(PATCH_KEY)
        if state is None or state["strength"] == 0.0 or context is not None or mask is not None:
            if previous is not None:
                return previous(x, context=context, value=value, mask=mask, transformer_options=transformer_options)
            return type(self).forward(self, x, context=context, value=value, mask=mask,
                                      transformer_options=transformer_options)
        h, w = transformer_options["activations_shape"][-2:]
        frames = x.shape[1]
        features = state["features"](h, w)  # [(chunks T), C, h, w]
        f_tokens = video_to_tokens(features, frames).to(x)
        a_prime = layer.trajectory_attention(f_tokens, self.heads)
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)

        def original_branch(q_, k_, v_, heads, additive_mask):
            return optimized_attention_masked(q_, k_, v_, heads, additive_mask, attn_precision=self.attn_precision,
                                              transformer_options=transformer_options)

        out = trackgo_attention(q, k, v, a_prime, self.heads, alpha=state["alpha"], tau=state["tau"],
                                strength=state["strength"], masked_attention=original_branch)
        return self.to_out(out)

    return forward


def apply_trackgo(model, bundle: TrackGoAdapterBundle | None, trajectories, tau: float = 0.0, alpha: float = 0.2,
                  strength: float = 1.0, point_size: int = 4):
    """A clone of ``model`` (ComfyUI SVD) whose masked parts follow the TrackGo point trajectories.

    Args:
        tau: how much the unspecified area (trajectory attention below ``alpha``) may move, TrackGo fig. 5: 0 freely,
            -100 partly suppressed, -10000 static (see :func:`trackdiffusion.models.trackgo.adapter.tau_temperature`).
        alpha: threshold on A' above which the original temporal attention is masked out.
        strength: scales A' (0 = the unpatched model, bit for bit).
    """
    if bundle is None:
        raise InvalidInputError("no TrackAdapter connected.", fix=NO_WEIGHTS_HELP)
    if not (math.isfinite(tau) and math.isfinite(alpha) and math.isfinite(strength)):
        raise InvalidInputError(f"tau, alpha and strength must be finite, got {tau}, {alpha}, {strength}.")
    from comfy.patcher_extension import WrappersMP

    m = model.clone()
    svts = _spatial_video_transformers(m.get_model_object("diffusion_model"))
    if not svts:
        raise InvalidInputError("this MODEL has no temporal attention: TrackGo needs Stable Video Diffusion.")
    adapter = bundle.adapter
    for name, svt in svts:
        layer = adapter.layer_for(name)
        channels = svt.time_stack[0].attn1.to_q.weight.shape[0]
        if layer is None or layer.to_q.weight.shape[0] != channels:
            have = None if layer is None else layer.to_q.weight.shape[0]
            raise InvalidInputError(f"the TrackAdapter was trained for another base: at {name} the model's temporal "
                                    f"attention has {channels} channels, the adapter {have}.",
                                    fix="use a TrackAdapter trained on this SVD model.")
        for i, block in enumerate(svt.time_stack):
            key = f"diffusion_model.{name}.time_stack.{i}.attn1.forward"
            previous = m.object_patches.get(key)
            m.add_object_patch(key, types.MethodType(_attn1_forward(layer, previous), block.attn1))

    video = trajectory_video_tensor(trajectories, point_size)  # [F, 3, H, W]
    num_frames, _, height, width = video.shape
    cache: dict = {}

    def encoded(device, dtype):
        key = (device, dtype)
        if key not in cache:
            cache.clear()
            with torch.no_grad():
                v = video.to(device=device, dtype=dtype)
                cache[key] = {"trunk": {0: adapter.encoder.trunk(v), 1: adapter.encoder.trunk(torch.zeros_like(v))},
                              "levels": {}, "assembled": {}}
        return cache[key]

    def diffusion_model_wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        frames = int(kwargs.get("num_video_frames", x.shape[0]))
        if frames != num_frames:
            raise InvalidInputError(f"the latent has {frames} frames but the trajectories have {num_frames}.",
                                    fix="build the trajectories with num_frames equal to the video's frame count.")
        if (x.shape[-2] * 8, x.shape[-1] * 8) != (height, width):
            raise InvalidInputError(f"the trajectory video is {width}x{height} but the latent is for "
                                    f"{x.shape[-1] * 8}x{x.shape[-2] * 8}.",
                                    fix="draw the masks at the video's size (the SVD conditioning width/height).")
        chunks = x.shape[0] // frames
        cond_or_uncond = list(transformer_options.get("cond_or_uncond") or [0] * chunks)
        enc = encoded(x.device, x.dtype)
        trunk_h = enc["trunk"][0].shape[-2]

        def features(h, w):
            # 16 temporal layers share 4 resolutions: the batch for a layout is assembled once per run
            assembled_key = (tuple(cond_or_uncond), h, w)
            if assembled_key in enc["assembled"]:
                return enc["assembled"][assembled_key]
            level = max(0, round(math.log2(trunk_h / h)))
            per_kind = []
            for kind in cond_or_uncond:
                key = (kind, level, h, w)
                if key not in enc["levels"]:
                    with torch.no_grad():
                        enc["levels"][key] = adapter.encoder.level_features(enc["trunk"][kind], level, (h, w))
                per_kind.append(enc["levels"][key])
            enc["assembled"][assembled_key] = torch.cat(per_kind, dim=0)
            return enc["assembled"][assembled_key]

        options = dict(transformer_options)
        options[PATCH_KEY] = {"features": features, "alpha": float(alpha), "tau": float(tau),
                              "strength": float(strength)}
        return executor(x, timesteps, context, y, control, options, **kwargs)

    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, PATCH_KEY, diffusion_model_wrapper)
    m.set_additional_models(PATCH_KEY, [bundle.patcher])
    return m
