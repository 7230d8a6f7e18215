"""The latent codecs of a run: :class:`PixelLatents` (the pixel-space stand-in latent, no VAE weights) and
:class:`VAELatents` (SVD's VAE), both taking frames as float tensors in [-1, 1]."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.errors import InvalidInputError
from .config import SOURCE


class PixelLatents:
    """The pixel-space stand-in latent: frames in [-1, 1] -> ``PixelUnshuffle(2)`` (12 channels RGB, 4 grey)."""

    scale = 2

    def __init__(self, channels: int) -> None:
        if channels not in (4, 12):
            raise InvalidInputError(f"the pixel stand-in latent has 4 or 12 channels, the UNet wants {channels}.",
                                    fix="use a UNet with out_channels 12 (or 4 with --tiny), or give --vae.",
                                    source=SOURCE)
        self.channels = channels

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 4:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        return F.pixel_unshuffle(x, 2)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        return self._unshuffle(x)

    def posterior_noise(self, frames: int, height: int, width: int, generator: torch.Generator) -> None:
        """Deterministic: no draws, None (see :meth:`VAELatents.posterior_noise`)."""

    def encode_condition(self, x: torch.Tensor) -> torch.Tensor:
        return self._unshuffle(x)


class VAELatents:
    """SVD's VAE: targets are posterior samples times the scaling factor, the conditioning image the posterior mode.
    A TAESD-architecture VAE (``AutoencoderTiny``, the tiny SVD's) is deterministic: see
    :mod:`trackdiffusion.models.tiny_svd.vae` for its two latents."""

    def __init__(self, vae: Any, chunk: int = 8) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.tiny = type(vae).__name__ == "AutoencoderTiny"
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)  # 8 for SVD's VAE
        self.channels = int(vae.config.latent_channels)
        self.factor = float(getattr(vae.config, "scaling_factor", 0.18215))
        self.chunk = chunk

    @torch.no_grad()
    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Frames [N, 3, H, W] -> latents; the posterior is sampled with ``noise`` (from :meth:`posterior_noise`)
        when given, else with draws from ``generator``."""
        if self.tiny:
            from ..models.tiny_svd.vae import encode

            return torch.cat([encode(self.vae, x[i:i + self.chunk]) for i in range(0, x.shape[0], self.chunk)])
        ref = next(self.vae.parameters())
        parts = []
        for i in range(0, x.shape[0], self.chunk):
            posterior = self.vae.encode(x[i:i + self.chunk].to(ref)).latent_dist
            if noise is None:
                parts.append(posterior.sample(generator))
            else:  # what DiagonalGaussianDistribution.sample computes from its draw
                parts.append(posterior.mean + posterior.std * noise[i:i + self.chunk])
        return torch.cat(parts).float() * self.factor

    def posterior_noise(self, frames: int, height: int, width: int, generator: torch.Generator
                        ) -> torch.Tensor | None:
        """The standard-normal draws :meth:`encode` would take from ``generator`` for ``frames`` frames of
        ``width`` x ``height`` pixels (chunk by chunk, as diffusers' posterior ``sample`` draws them), or None for a
        deterministic VAE. A process that encodes only its share of a step's frames takes its rows of these, so its
        latents are those a single process encoding every frame would make."""
        if self.tiny:
            return None
        from diffusers.utils.torch_utils import randn_tensor

        ref = next(self.vae.parameters())
        shape = (self.channels, height // self.scale, width // self.scale)
        return torch.cat([randn_tensor((min(self.chunk, frames - i), *shape), generator=generator, device=ref.device,
                                       dtype=ref.dtype) for i in range(0, frames, self.chunk)])

    @torch.no_grad()
    def encode_condition(self, x: torch.Tensor) -> torch.Tensor:
        if self.tiny:
            from ..models.tiny_svd.vae import encode_condition

            return encode_condition(self.vae, x)
        ref = next(self.vae.parameters())
        return self.vae.encode(x.to(ref)).latent_dist.mode().float()


def _to_float(video: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(video)).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3)
