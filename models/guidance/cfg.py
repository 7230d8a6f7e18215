"""Classifier-free guidance rules of TrackDiffusion (shared by the SVD sampler node and the ModelScope pipeline)."""

from __future__ import annotations

import torch


def standard_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_u + s * (eps_c - eps_u)``."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def normalized_guidance(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """The official (ModelScope) dynamic CFG: ``eps_u + w * (eps_c - eps_u)``, ``w = (s - 1) * ||eps_c|| /
    ||eps_c - eps_u||``.

    The norms are Frobenius norms over the whole tensors (every video, frame and channel), so ``w`` is one scalar;
    where ``eps_c == eps_u`` the result is ``eps_u``. (The official pipeline applies no guidance at all at s <= 1:
    callers follow it by using ``eps_c`` there.)
    """
    diff = eps_cond - eps_uncond
    den = torch.linalg.vector_norm(diff.float())
    num = torch.linalg.vector_norm(eps_cond.float())
    w = torch.where(den > 0, (scale - 1.0) * num / den.clamp_min(torch.finfo(torch.float32).tiny), den.new_zeros(()))
    return eps_uncond + w.to(diff.dtype) * diff


def guidance_weight(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> float:
    """The scalar ``w`` :func:`normalized_guidance` uses (for logging and tests)."""
    den = float(torch.linalg.vector_norm((eps_cond - eps_uncond).float()))
    return 0.0 if den == 0 else (scale - 1.0) * float(torch.linalg.vector_norm(eps_cond.float())) / den
