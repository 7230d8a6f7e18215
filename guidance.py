"""Classifier-free guidance rules of TrackDiffusion that ComfyUI does not have."""

from __future__ import annotations

import torch


def normalized_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float, eps: float = 1e-12) -> torch.Tensor:
    """TrackDiffusion's (ModelScope) "dynamic" CFG: w = (scale - 1) * ||cond|| / ||cond - uncond||, one scalar over
    the whole batch, then uncond + w * (cond - uncond). At scale 1 it returns ``uncond``, as the official code."""
    diff = cond - uncond
    weight = (scale - 1.0) * cond.float().norm() / diff.float().norm().clamp_min(eps)
    return uncond + weight.to(cond.dtype) * diff
