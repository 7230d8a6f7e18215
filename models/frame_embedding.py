"""Learnable frame-position embedding of the main branch's temporal transformers (``time_embedder``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.errors import InvalidInputError


class FrameEmbedding(nn.Module):
    """Adds a learned vector per frame index to temporal-attention tokens.

    Has ``nn.Embedding`` semantics and state: a single key ``weight`` ``[num_frames, dim]``, initialised N(0, 1) (the
    official weights are trained, not zero). The containing temporal transformer names it ``time_embedder`` (so the
    checkpoint key is ``...time_embedder.weight``); it is added right after the GroupNorm, before ``proj_in``.

    The weight is a bare parameter cast to the input's dtype/device at use, so it works with offloaded weights.
    ``operations`` is accepted for a uniform constructor and is not needed.

    Args:
        num_frames: the most frames the checkpoint supports (16).
        dim: channels ``C`` of the temporal transformer's input.
    """

    def __init__(
        self,
        num_frames: int = 16,
        dim: int = 320,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        del operations
        self.num_frames = num_frames
        self.dim = dim
        self.weight = nn.Parameter(torch.empty(num_frames, dim, device=device, dtype=dtype))
        nn.init.normal_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., F, C]`` (e.g. ``[B*h*w, F, C]``) plus ``weight[:F]``.

        Raises:
            InvalidInputError: when ``F > num_frames`` or the channels differ.
        """
        frames, channels = x.shape[-2], x.shape[-1]
        if frames > self.num_frames:
            raise InvalidInputError(
                f"the video has {frames} frames but the frame embedding only knows {self.num_frames}.",
                fix=f"Generate at most {self.num_frames} frames with this model.",
                source="frame embedding",
            )
        if channels != self.dim:
            raise InvalidInputError(
                f"the frame embedding has {self.dim} channels, the tokens {channels}.",
                fix="Use the frame embedding of the temporal transformer these tokens belong to.",
                source="frame embedding",
            )
        return x + self.weight[:frames].to(x)
