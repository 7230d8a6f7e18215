"""SVD's image embedding input: the first frame as a CLIP image encoder's ``pixel_values``, prepared exactly as
ComfyUI's ``CLIPVisionEncode`` / ``SVD_img2vid_Conditioning`` prepare it (so the diffusers backend, training and
ComfyUI feed the encoder the same numbers): the shorter side resized to ``size`` (bicubic, antialiased), a centred
``size`` x ``size`` crop, values rounded to 8 bits, then normalised by the encoder's mean and std."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_pixel_values(images: torch.Tensor, size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                      std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """images [N, 3, H, W] in [0, 1] -> pixel_values [N, 3, size, size]."""
    x = images.float()
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        x = F.interpolate(x, size=(round(scale * h), round(scale * w)), mode="bicubic", antialias=True)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top:top + size, left:left + size]
    x = (x * 255.0).clamp(0, 255).round() / 255.0
    m = torch.tensor(list(mean), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(list(std), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s
