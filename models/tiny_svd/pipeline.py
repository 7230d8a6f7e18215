"""Image-to-video with the tiny SVD on the diffusers backend, optionally steered by a TrackDiffusion-SVD
attachment: the same computation as ComfyUI's stock SVD workflow (:mod:`trackdiffusion.models.svd.sampling`),
with the first frame prepared as ``SVD_img2vid_Conditioning`` prepares it (centre crop to the aspect ratio, bilinear
resize, 8-bit CLIP input)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..svd.sampling import sample_svd
from .config import FPS, FRAMES, HEIGHT, MOTION_BUCKET, WIDTH
from .files import TinySVD
from .image_encoder import image_embeddings
from .vae import decode, encode_condition


def fit_frame(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 3, height, width]: centre crop to the aspect ratio, then bilinear (ComfyUI's
    ``common_upscale(..., "bilinear", "center")``)."""
    h, w = image.shape[-2:]
    old, new = w / h, width / height
    x = round((w - w * (new / old)) / 2) if old > new else 0
    y = round((h - h * (old / new)) / 2) if old < new else 0
    image = image[..., y:h - y, x:w - x]
    return F.interpolate(image, size=(height, width), mode="bilinear")


def box_condition(attachment: Any, tracklets: Any, frames: int, overflow: str = "error"):
    """``conditioned(is_conditional)`` for :func:`~trackdiffusion.models.svd.sampling.sample_svd`: the tracklets'
    boxes on the conditional half, null boxes (the official no-box state) on the unconditional one."""
    from ..svd.adapter import slots_to_svd_boxes

    slots = tracklets.to_slots(frames, tracklets.width, tracklets.height, attachment.max_objs, overflow=overflow)
    boxes, masks = slots_to_svd_boxes(slots)

    def conditioned(positive: bool):
        return attachment.conditioned(boxes[None], masks[None] if positive else torch.zeros_like(masks)[None])

    return conditioned


@torch.no_grad()
def generate(model: TinySVD, first_frame: np.ndarray, *, tracklets: Any = None, attachment: Any = None,
             frames: int = FRAMES, steps: int = 25, seed: int = 0, min_cfg: float = 1.0, max_cfg: float = 3.0,
             fps: int = FPS, motion_bucket: int = MOTION_BUCKET, augmentation: float = 0.0,
             width: int = WIDTH, height: int = HEIGHT, overflow: str = "error",
             return_latents: bool = False, guidance: Any = None) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
    """A video [F, height, width, 3] uint8 from ``first_frame`` ([H, W, 3] uint8, any size); with ``tracklets`` and
    ``attachment`` (a TrackDiffusion-SVD attachment on ``model.unet``) its objects follow their boxes; ``guidance``
    (SG-I2V attached to ``model.unet``, :func:`~trackdiffusion.models.guidance.sgi2v.diffusers.sgi2v_attached`)
    steers the latent along its own boxes. With ``return_latents`` also the sampled UNet latents [F, 4, h, w]."""
    image = torch.from_numpy(np.ascontiguousarray(first_frame[..., :3])).float().div(255.0).movedim(-1, 0)[None]
    pixels = fit_frame(image, width, height)
    if augmentation > 0:  # ComfyUI adds this noise to [0, 1] pixels, from its unseeded global generator
        pixels = pixels + torch.randn(pixels.shape, generator=torch.Generator().manual_seed(seed)) * augmentation
    image_latent = encode_condition(model.vae, pixels * 2 - 1)[0]
    embedding = image_embeddings(model.image_encoder, image)
    conditioned = None
    if tracklets is not None and attachment is not None:
        conditioned = box_condition(attachment, tracklets, frames, overflow)
    elif tracklets is not None:
        raise ValueError("tracklets need an attachment (the TrackDiffusion-SVD modules) to steer the video")
    latents = sample_svd(model.unet, image_latent, embedding, frames=frames, steps=steps, seed=seed,
                         min_cfg=min_cfg, max_cfg=max_cfg, fps=fps, motion_bucket=motion_bucket,
                         augmentation=augmentation, conditioned=conditioned, guide=guidance)
    video = decode(model.vae, latents)
    out = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(1, -1).numpy()
    return (out, latents) if return_latents else out
