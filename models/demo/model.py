"""BoxVideoDenoiser: a small factorised (2-D spatial + 1-D temporal convolution) video UNet that predicts clean
frames x0 from noisy frames, the first frame and the box conditioning of :mod:`.data` (per-slot box masks, a
category per slot painted into its box through a learned embedding, and the first frame's object crops pasted into
their boxes).

Shapes: videos are [B, C, F, H, W]. Everything runs in a pixel-unshuffled space (4x4 pixels -> 48 channels), which
makes a 64x64x16 clip a 16x16x16 grid: small enough to train on a CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data.errors import InvalidInputError
from .data import LABELS, SLOTS

UNSHUFFLE = 4


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1]: [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class FactorisedBlock(nn.Module):
    """Residual block: spatial 3x3 conv per frame, then a temporal 3-tap conv per pixel, with a time embedding."""

    def __init__(self, channels_in: int, channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels_in)
        self.spatial1 = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.temporal = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm3 = nn.GroupNorm(8, channels)
        self.spatial2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels, 1) if channels_in != channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
        """x: [(B F), C, H, W]; emb: [B, E]."""
        h = self.spatial1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb).repeat_interleave(frames, dim=0)[..., None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        bf, c, hh, ww = h.shape
        # temporal mixing: [(B F), C, H, W] -> [(B H W), C, F]
        t = F.silu(h).reshape(bf // frames, frames, c, hh, ww).permute(0, 3, 4, 2, 1).reshape(-1, c, frames)
        t = self.temporal(t).reshape(bf // frames, hh, ww, c, frames).permute(0, 4, 3, 1, 2).reshape(bf, c, hh, ww)
        h = h + t
        h = self.spatial2(F.silu(self.norm3(h)))
        return self.skip(x) + h


class BoxVideoDenoiser(nn.Module):
    """x0-predicting denoiser.

    Args:
        width: channels at the top level (twice that one level down).
        slots: instance slots of the box conditioning.
    """

    #: channels of the category embedding painted into each box
    CATEGORY_DIM = 4

    def __init__(self, width: int = 64, slots: int = SLOTS, emb_dim: int = 128, num_labels: int = len(LABELS)
                 ) -> None:
        super().__init__()
        self.slots = slots
        px = UNSHUFFLE * UNSHUFFLE
        # noisy frames, first frame, box masks, pasted appearance, painted categories
        in_channels = 3 * px * 2 + slots * px + 3 * px + self.CATEGORY_DIM * px
        self.category_emb = nn.Embedding(num_labels + 1, self.CATEGORY_DIM)  # row 0: no / unknown label
        self.emb = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.emb_dim = emb_dim
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        self.down1 = nn.ModuleList([FactorisedBlock(width, width, emb_dim), FactorisedBlock(width, width, emb_dim)])
        self.downsample = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([FactorisedBlock(2 * width, 2 * width, emb_dim),
                                  FactorisedBlock(2 * width, 2 * width, emb_dim)])
        self.upsample = nn.Conv2d(2 * width, width, 3, padding=1)
        self.up1 = nn.ModuleList([FactorisedBlock(2 * width, width, emb_dim), FactorisedBlock(width, width, emb_dim)])
        self.norm_out = nn.GroupNorm(8, width)
        self.conv_out = nn.Conv2d(width, 3 * px, 3, padding=1)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, first: torch.Tensor, boxes: torch.Tensor,
                appearance: torch.Tensor | None = None, categories: torch.Tensor | None = None) -> torch.Tensor:
        """Predict x0.

        Args:
            noisy: [B, 3, F, H, W] noisy frames.
            t: [B] noise level in [0, 1].
            first: [B, 3, H, W] the clean first frame.
            boxes: [B, slots, F, H, W] box masks.
            appearance: [B, 3, F, H, W] pasted first-frame crops (None: zeros).
            categories: [B, slots] int64 category per slot (None: all unknown).
        Returns:
            [B, 3, F, H, W].
        """
        b, _, f, h, w = noisy.shape
        if h % (2 * UNSHUFFLE) or w % (2 * UNSHUFFLE):
            raise InvalidInputError(f"frame size {w}x{h} must be a multiple of {2 * UNSHUFFLE}.",
                                    fix="generate at 64x64 (the size the demo model was trained at).")
        if boxes.shape[1] != self.slots:
            raise InvalidInputError(f"{boxes.shape[1]} box slots given, the model has {self.slots}.")

        def frames_first(v):  # [B, C, F, H, W] -> [(B F), C, H, W]
            return v.permute(0, 2, 1, 3, 4).reshape(b * f, v.shape[1], h, w)

        if appearance is None:
            appearance = torch.zeros_like(noisy)
        if categories is None:
            categories = torch.zeros(b, self.slots, dtype=torch.int64, device=noisy.device)
        # each slot's category vector painted over its box: [B, slots, E] x [B, slots, F, H, W] -> [B, E, F, H, W]
        painted = torch.einsum("bke,bkfhw->befhw", self.category_emb(categories).to(boxes.dtype), boxes)
        x = torch.cat([frames_first(noisy), frames_first(first[:, :, None].expand(-1, -1, f, -1, -1)),
                       frames_first(boxes), frames_first(appearance), frames_first(painted)], dim=1)
        x = F.pixel_unshuffle(x, UNSHUFFLE)
        emb = self.emb(timestep_embedding(t, self.emb_dim))
        x = self.conv_in(x)
        for block in self.down1:
            x = block(x, emb, f)
        skip = x
        x = self.downsample(x)
        for block in self.mid:
            x = block(x, emb, f)
        x = self.upsample(F.interpolate(x, scale_factor=2, mode="nearest"))
        x = torch.cat([x, skip], dim=1)
        for block in self.up1:
            x = block(x, emb, f)
        x = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(x))), UNSHUFFLE)
        return x.reshape(b, f, 3, h, w).permute(0, 2, 1, 3, 4)

    def forward_conditioned(self, noisy: torch.Tensor, t: torch.Tensor, first: torch.Tensor, cond) -> torch.Tensor:
        """:meth:`forward` with a batched :class:`~.data.BoxConditioning`."""
        return self(noisy, t, first, cond.masks, cond.appearance, cond.categories)


def widen_input(old_state: dict, model: BoxVideoDenoiser) -> dict:
    """A state dict of the box-mask-only model (no appearance or category inputs) made loadable into ``model``: the
    new input channels of ``conv_in`` start at zero (so the widened model computes exactly what the old one did)
    and the category embedding takes the model's initial values."""
    state = dict(old_state)
    new = model.state_dict()
    w_old, w_new = state["conv_in.weight"], new["conv_in.weight"]
    if w_old.shape[1] < w_new.shape[1]:
        pad = torch.zeros(w_old.shape[0], w_new.shape[1] - w_old.shape[1], *w_old.shape[2:], dtype=w_old.dtype)
        state["conv_in.weight"] = torch.cat([w_old, pad], dim=1)
    for k in new:
        if k.startswith("category_emb.") and k not in state:
            state[k] = new[k].clone()
    return state
