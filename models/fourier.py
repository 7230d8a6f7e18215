"""GLIGEN's Fourier embedding of box coordinates (and, for TrackDiffusion-SVD, box colours)."""

from __future__ import annotations

import torch
from torch import nn


class FourierBoxEmbedder(nn.Module):
    """Sine/cosine features of each input channel at ``num_freqs`` log-spaced frequencies.

    Frequencies are ``temperature ** (k / num_freqs)`` for ``k = 0 .. num_freqs-1`` (1 to ~56 for the defaults), with
    no ``2*pi`` factor. For an input ``[..., D]`` the output is ``[..., num_freqs * 2 * D]`` laid out per frequency:
    the ``D`` sines, then the ``D`` cosines, i.e. flat index ``k*2*D + s*D + c`` (``s`` = 0 for sin, 1 for cos).
    That is diffusers' ``get_fourier_embeds_from_boundingbox`` layout for ``D = 4`` (64 features for an xyxy box)
    and TrackDiffusion-SVD's for ``D = 7`` (xyxy + RGB, 112 features).

    The product and the sin/cos are computed in at least float32 (arguments reach ~56, where fp16 would lose two
    decimal digits) and the result is returned in the input's (floating) dtype, so the caller picks the dtype the following
    layers run in. No state is registered, so the module adds no state-dict keys.

    Args:
        num_freqs: number of frequencies (8 in TrackDiffusion).
        temperature: base of the frequency progression (100 in TrackDiffusion).
    """

    def __init__(self, num_freqs: int = 8, temperature: float = 100.0) -> None:
        super().__init__()
        self.num_freqs = num_freqs
        self.temperature = temperature

    def out_dim(self, in_dim: int) -> int:
        """Output width for ``in_dim`` input channels: ``num_freqs * 2 * in_dim``."""
        return self.num_freqs * 2 * in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D] -> [..., num_freqs * 2 * D]``."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        freqs = self.temperature ** (torch.arange(self.num_freqs, device=x.device, dtype=dtype) / self.num_freqs)
        args = freqs[:, None] * x.to(dtype).unsqueeze(-2)  # [..., K, D]
        emb = torch.stack((args.sin(), args.cos()), dim=-2).flatten(-3)  # [..., K, 2, D] -> [..., K*2*D]
        return emb.to(x.dtype if x.is_floating_point() else dtype)
