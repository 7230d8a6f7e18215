"""One SG-I2V latent optimisation: a few AdamW steps on the noisy latent against the alignment loss, then the
high-frequency reset. Model-agnostic: the caller supplies ``features(z)``, a differentiable forward that returns the
recorded feature maps for latent ``z``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ....data.progress import ProgressCallback, report
from .fft import high_frequency_reset
from .loss import AlignmentTargets, alignment_loss

log = logging.getLogger(__name__)


class LossScaler:
    """Dynamic loss scaling for a float16 forward (float32 / bfloat16 ones use scale 1), as a gradient scaler does:
    gradients come back unscaled; an iteration whose gradient is not finite makes no update (it is skipped, not
    retried) and halves the scale for the next ones. One per guided step, starting at 2**16 like SG-I2V's official
    ``GradScaler``."""

    def __init__(self, dtype: torch.dtype, initial: float = 2.0**16, min_scale: float = 1.0):
        self.scale = initial if dtype == torch.float16 else 1.0
        self.min_scale = min_scale
        self.overflows = 0

    def backoff(self) -> None:
        """After an overflow: halve the scale (not below ``min_scale``)."""
        self.overflows += 1
        self.scale = max(self.scale / 2, self.min_scale)


@dataclass
class OptimisationResult:
    """latent: the optimised latent after the high-frequency reset (the input's dtype, detached).
    losses: the alignment loss measured at each iteration that made an update, before that update (float)."""

    latent: torch.Tensor
    losses: list[float] = field(default_factory=list)


def optimise_latent(latent: torch.Tensor, features: Callable[[torch.Tensor], list[torch.Tensor]],
                    targets: AlignmentTargets, *, iterations: int = 5, lr: float = 0.21, weight_decay: float = 0.01,
                    fft_ratio: float = 0.5, scaler: LossScaler | None = None,
                    check_interrupt: Callable[[], None] | None = None,
                    progress: ProgressCallback | None = None) -> OptimisationResult:
    """Optimise ``latent`` [F, C, H, W] so that the features of each box match its template (SG-I2V).

    Runs under ``torch.enable_grad``; call it outside ``torch.inference_mode`` (the latent is cloned into a normal
    tensor here). The latent and AdamW's state stay in the latent's dtype; the forward runs in whatever dtype the
    model computes in. The model's own parameters must not require grad (only the latent is differentiated).

    Args:
        features: ``z -> [feature maps [F, C_l, h_l, w_l]]`` (graph attached to ``z``).
        fft_ratio: the high-frequency reset's Butterworth ratio (0: return the original latent, see :mod:`.fft`).
        scaler: the loss scaling of this guided step (needed for a float16 forward).
        check_interrupt: called before every iteration (ComfyUI's cancel button).
        progress: ``progress(done, iterations)`` after each iteration (from 0 at the start; an optimisation that stops
            early reports ``iterations`` as it ends), see :mod:`trackdiffusion.data.progress`.
    """
    original = latent.detach().clone()
    losses: list[float] = []
    if iterations <= 0:
        return OptimisationResult(original, losses)
    scaler = scaler or LossScaler(torch.float32)
    report(progress, 0, iterations)
    with torch.enable_grad():
        z = original.clone().requires_grad_(True)
        optimizer = torch.optim.AdamW([z], lr=lr, weight_decay=weight_decay)

        def iterate() -> bool:
            """One iteration; False when the optimisation ends here."""
            if check_interrupt is not None:
                check_interrupt()
            feats = features(z)
            loss = alignment_loss(feats, targets)
            if loss is None:  # no box overlaps two frames: nothing to optimise
                return False
            (grad,) = torch.autograd.grad(loss * scaler.scale, z)
            del feats
            if not bool(torch.isfinite(grad).all()):
                scaler.backoff()  # skip this update, as a gradient scaler does
                log.info("SG-I2V: gradient overflow, update skipped, loss scale lowered to %g", scaler.scale)
                return True
            value = float(loss.detach())
            if not math.isfinite(value):
                return False
            losses.append(value)
            z.grad = grad / scaler.scale
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return True

        reached = 0
        for done in range(1, iterations + 1):
            if not iterate():
                break
            reached = done
            report(progress, done, iterations)
    if reached < iterations:  # stopped early: the remaining iterations are not needed
        report(progress, iterations, iterations)
    optimised = z.detach()
    result = high_frequency_reset(original, optimised, fft_ratio) if fft_ratio > 0 else original
    return OptimisationResult(result.to(latent.dtype), losses)
