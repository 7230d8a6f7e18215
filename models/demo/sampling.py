"""Noise schedule and deterministic DDIM sampling for the demo model (x0 prediction)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .data import BoxConditioning, box_conditioning


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule: signal fraction at noise level t in [0, 1]."""
    return torch.cos((t + 0.008) / 1.008 * math.pi / 2).clamp(min=1e-5) ** 2


def add_noise(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    a = alpha_bar(t).reshape(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


@torch.no_grad()
def sample(model, first: torch.Tensor, cond: BoxConditioning, num_frames: int, steps: int = 20,
           generator: torch.Generator | None = None,
           before_step: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """DDIM (eta 0) from pure noise. first [B, 3, H, W] in [-1, 1]; cond batched. Returns [B, 3, F, H, W] in [-1, 1],
    frame 0 replaced by the given first frame.

    ``before_step(i, t, x) -> x`` may replace the noisy video before step ``i`` (noise level ``t``) is denoised: the
    hook of training-free guidance (:mod:`.guidance`)."""
    b, _, h, w = first.shape
    x = torch.randn(b, 3, num_frames, h, w, generator=generator)
    levels = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        t, t_next = levels[i], levels[i + 1]
        if before_step is not None:
            x = before_step(i, t, x)
        x0 = model.forward_conditioned(x, t.expand(b), first, cond).clamp(-1, 1)
        a, a_next = alpha_bar(t), alpha_bar(t_next)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    x[:, :, 0] = first
    return x


def generate(model, first_frame: np.ndarray, tracklets, num_frames: int | None = None, steps: int = 20,
             seed: int = 0) -> np.ndarray:
    """A clip from a first frame (uint8 [H, W, 3]) whose objects follow ``tracklets``: uint8 [F, H, W, 3]."""
    num_frames = num_frames or tracklets.num_frames
    if np.ndim(first_frame) != 3 or np.shape(first_frame)[2] != 3:
        from ...data.errors import InvalidInputError

        raise InvalidInputError(f"the first frame must be an RGB image [H, W, 3], got shape {list(np.shape(first_frame))}.")
    first = torch.from_numpy(np.ascontiguousarray(first_frame)).permute(2, 0, 1).float()[None] / 127.5 - 1.0
    cond = BoxConditioning.stack([box_conditioning(tracklets, first[0], num_frames, model.slots)])
    video = sample(model, first, cond, num_frames, steps, torch.Generator().manual_seed(seed))
    return ((video[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy()
