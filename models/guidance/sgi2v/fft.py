"""SG-I2V's high-frequency reset: keep the optimised latent's low spatial frequencies, restore the original's high ones.

The low-pass is a Butterworth response over the 2-D spatial frequency radius ``d`` (``d = 1`` at the Nyquist
frequency of each axis, as in SG-I2V's shifted-grid formula ``(2h/H - 1)``)::

    L(d) = 1 / (1 + (d / ratio) ** (2 * order))          (order 4, ratio 0.5 by default: L = 1/2 at d = ratio)

truncated to exactly zero from ``d >= 2 * ratio`` on (where the plain response is already below ``1 / (1 + 4**order)``,
0.4 % at order 4). Above that cut-off the result's spectrum is the original latent's, exactly up to FFT round-off.
"""

from __future__ import annotations

import torch

from ....data.errors import InvalidInputError

STOP_FACTOR = 2.0  # the low-pass is exactly 0 from radius STOP_FACTOR * ratio on


def frequency_radius(height: int, width: int, *, device=None, onesided: bool = True) -> torch.Tensor:
    """Normalised spatial frequency radius, ``[H, W//2 + 1]`` (rfft2 layout) or ``[H, W]`` (fft2 layout, unshifted).

    Each axis runs over ``2 * f`` with ``f`` in cycles per sample, so ``[-1, 1)``; the radius reaches ``sqrt(2)`` at
    the corners.
    """
    fy = torch.fft.fftfreq(height, device=device, dtype=torch.float64) * 2
    fx = (torch.fft.rfftfreq(width, device=device, dtype=torch.float64) if onesided
          else torch.fft.fftfreq(width, device=device, dtype=torch.float64)) * 2
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def butterworth_lowpass(height: int, width: int, ratio: float = 0.5, order: int = 4, *, device=None,
                        onesided: bool = True) -> torch.Tensor:
    """The truncated Butterworth low-pass, float32 ``[H, W//2 + 1]`` (``onesided``) or ``[H, W]``, values in [0, 1]."""
    if not (ratio >= 0.0 and order >= 1):
        raise InvalidInputError(f"the FFT low-pass needs ratio >= 0 and order >= 1, got {ratio!r}, {order!r}.")
    d = frequency_radius(height, width, device=device, onesided=onesided)
    if ratio == 0.0:
        return torch.zeros_like(d, dtype=torch.float32)
    mask = 1.0 / (1.0 + (d / ratio) ** (2 * order))
    mask[d >= STOP_FACTOR * ratio] = 0.0
    return mask.to(torch.float32)


def high_frequency_reset(original: torch.Tensor, optimised: torch.Tensor, ratio: float = 0.5,
                         order: int = 4) -> torch.Tensor:
    """``original + lowpass(optimised - original)`` over the last two (H, W) axes.

    That is the FFT mix ``L * F(optimised) + (1 - L) * F(original)`` written so that an unchanged latent comes back
    bit-identical. Any leading shape (``[F, C, H, W]`` for SVD latents); computed in float32, returned in
    ``original``'s dtype. ``ratio == 0`` returns ``original`` itself.
    """
    if original.shape != optimised.shape:
        raise InvalidInputError(f"high_frequency_reset needs equal shapes, got {tuple(original.shape)} and "
                                f"{tuple(optimised.shape)}.")
    if ratio == 0.0:
        return original
    h, w = original.shape[-2:]
    mask = butterworth_lowpass(h, w, ratio, order, device=original.device)
    delta = optimised.float() - original.float()
    spectrum = torch.fft.rfft2(delta, dim=(-2, -1)) * mask
    low = torch.fft.irfft2(spectrum, s=(h, w), dim=(-2, -1))
    return (original.float() + low).to(original.dtype)
