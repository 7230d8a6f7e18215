"""Sampling a diffusers SVD UNet the way ComfyUI's stock SVD workflow does, number for number: ``SVD_img2vid_
Conditioning`` -> ``VideoLinearCFGGuidance`` (or the TrackDiffusion Sampler's linear per-frame CFG) -> ``KSampler``
with ``euler`` / ``karras``. Used by the diffusers backend (``trackdiffusion demo``) so that it and ComfyUI give the
same video for the same seed (on the CPU in float32 within the tolerance ``tests/integration/test_tiny_svd_in_comfyui.py``
states: the operations are the same, their float rounding is not always).

What ComfyUI does, and this module repeats:

* noise: ``torch.manual_seed(seed)`` then one ``torch.randn`` of the latent's shape ``[F, 4, h, w]`` (float32, CPU);
  the first latent is that noise times ``sqrt(1 + sigma_max^2)`` (ComfyUI's ``max_denoise`` case);
* sigmas: Karras (rho 7) from SVD's sigma_max 700 to sigma_min 0.002, plus a final 0;
* the model: v-prediction EDM (``c_in = 1 / sqrt(s^2 + 1)``, ``c_out = -s / sqrt(s^2 + 1)``, ``c_skip = 1 / (s^2 + 1)``,
  ``c_noise = log(s) / 4``) on ``[noisy latent, image latent]``, the added time ids ``[fps - 1, motion bucket,
  augmentation]``;
* CFG per frame: ``uncond + scale_f * (cond - uncond)`` with ``scale_f`` linear from ``min_cfg`` (frame 0) to
  ``max_cfg`` (last frame); the unconditional half has a zero image embedding and a zero image latent. At
  ``max_cfg`` 1 ComfyUI skips the unconditional half and its per-frame CFG then gives ``scale_f * cond``: so here;
* Euler steps ``x += (x - denoised) / s * (s_next - s)``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch

SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 700.0, 7.0


def karras_sigmas(steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> torch.Tensor:
    """``steps + 1`` sigmas, decreasing, the last 0 (k-diffusion's ``get_sigmas_karras``, as ComfyUI)."""
    ramp = torch.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def comfyui_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The initial noise ComfyUI's samplers draw for ``seed`` (``comfy.sample.prepare_noise``)."""
    generator = torch.manual_seed(int(seed))
    return torch.randn(shape, dtype=torch.float32, layout=torch.strided, generator=generator, device="cpu")


def linear_cfg(frames: int, min_cfg: float, max_cfg: float) -> torch.Tensor:
    """[F, 1, 1, 1] guidance scales, linear from ``min_cfg`` on frame 0 to ``max_cfg`` on the last frame."""
    return torch.linspace(min_cfg, max_cfg, frames).reshape(frames, 1, 1, 1)


def edm_denoise(unet: Any, x: torch.Tensor, sigma: float, image_latent: torch.Tensor, embedding: torch.Tensor,
                time_ids: torch.Tensor) -> torch.Tensor:
    """The denoised latent ``[F, C, h, w]`` for the noisy ``x`` at ``sigma`` (one video)."""
    ref = next(unet.parameters())
    s = float(sigma)
    c_in, c_out, c_skip = 1 / math.sqrt(s * s + 1), -s / math.sqrt(s * s + 1), 1 / (s * s + 1)
    sample = torch.cat([x * c_in, image_latent.expand_as(x)], dim=1).unsqueeze(0)
    timestep = torch.tensor([0.25 * math.log(s)])
    out = unet(sample.to(ref), timestep.to(ref), encoder_hidden_states=embedding.to(ref),
               added_time_ids=time_ids.to(ref)).sample[0].float()
    return x * c_skip + out * c_out


@torch.no_grad()
def sample_svd(unet: Any, image_latent: torch.Tensor, embedding: torch.Tensor, *, frames: int, steps: int = 25,
               seed: int = 0, min_cfg: float = 1.0, max_cfg: float = 3.0, fps: int = 6, motion_bucket: int = 127,
               augmentation: float = 0.0,
               conditioned: Callable[[bool], Any] | None = None,
               callback: Callable[[int, torch.Tensor], None] | None = None,
               guide: Any = None) -> torch.Tensor:
    """The sampled UNet latents ``[F, C, h, w]``.

    Args:
        image_latent: ``[C, h, w]``, the unscaled VAE latent of the first frame (what ``SVD_img2vid_Conditioning``
            puts in ``concat_latent_image``; SVD's model concatenates it as it is, without SD's 0.18215).
        embedding: ``[1, 1, D]`` the CLIP image embedding of the first frame.
        conditioned: ``conditioned(is_conditional)`` returns the context manager each half runs in (e.g. a
            TrackDiffusion attachment's boxes for the conditional half, null boxes for the other).
        guide: latent guidance (SG-I2V, :class:`~trackdiffusion.models.guidance.sgi2v.diffusers.SGI2VDiffusers`):
            at each step in ``guide.guided_steps(steps)``, before that step's evaluations, the latent becomes
            ``guide.guide(i, sigma, x, evaluate)``, where ``evaluate(z)`` is the conditional half's model evaluation
            (as ComfyUI's ``PREDICT_NOISE`` wrapper replaces the sampler's latent in place).
    """
    conditioned = conditioned or (lambda positive: contextlib.nullcontext())
    c, h, w = image_latent.shape
    sigmas = karras_sigmas(steps)
    x = comfyui_noise((frames, c, h, w), seed) * math.sqrt(1.0 + float(sigmas[0]) ** 2)
    time_ids = torch.tensor([[fps - 1, motion_bucket, augmentation]], dtype=torch.float32)
    scales = linear_cfg(frames, min_cfg, max_cfg)
    zero_latent, zero_embedding = torch.zeros_like(image_latent), torch.zeros_like(embedding)
    guided = guide.guided_steps(steps) if guide is not None else set()
    for i in range(steps):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        if i in guided:
            def evaluate(z: torch.Tensor, s: float = s) -> torch.Tensor:
                with conditioned(True):
                    return edm_denoise(unet, z, s, image_latent, embedding, time_ids)

            x = guide.guide(i, s, x, evaluate)
        with conditioned(True):
            cond = edm_denoise(unet, x, s, image_latent, embedding, time_ids)
        if math.isclose(max_cfg, 1.0):  # ComfyUI's cfg-1 shortcut: no unconditional half, "uncond" is 0
            denoised = scales * cond
        else:
            with conditioned(False):
                uncond = edm_denoise(unet, x, s, zero_latent, zero_embedding, time_ids)
            denoised = uncond + scales * (cond - uncond)
        x = x + (x - denoised) / s * (s_next - s)
        if callback is not None:
            callback(i, x)
    return x
