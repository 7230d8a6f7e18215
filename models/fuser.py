"""GLIGEN's gated self-attention "fuser": visual tokens attend to themselves plus the frame's grounding tokens.

One fuser sits in every spatial transformer block, after the self-attention residual and before the text/image
cross-attention. TrackDiffusion-SVD has 16 (context 1024, 64-dim heads); the main branch has 16 (context 768, 8 heads).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.errors import InvalidInputError
from .attention import Attention, FeedForward
from .ops import resolve_operations, tanh_gate

#: Channels of the 16 SVD fusers in ComfyUI ``transformer_index`` order (reference section 7.2): down 0-2 x 2,
#: mid, up 1-3 x 3.
SVD_FUSER_CHANNELS: tuple[int, ...] = (320,) * 2 + (640,) * 2 + (1280,) * 6 + (640,) * 3 + (320,) * 3


class GatedSelfAttentionDense(nn.Module):
    """Gated self-attention over ``[x ; linear(objs)]`` followed by a gated GEGLU feed-forward.

    State dict (``C = query_dim``, ``[out, in]``): ``linear`` ``[C, context_dim]`` + bias;
    ``attn.to_{q,k,v}`` ``[heads*dim_head, C]``; ``attn.to_out.0`` ``[C, heads*dim_head]`` + bias;
    ``ff.net.0.proj`` ``[8C, C]`` + bias; ``ff.net.2`` ``[C, 4C]`` + bias; ``norm1``, ``norm2`` ``[C]``;
    ``alpha_attn``, ``alpha_dense`` 0-dim, initialised to 0 (so a fresh fuser is an exact identity).

    Args:
        query_dim: visual channels ``C``.
        context_dim: grounding-token width (1024 for SVD, 768 for the main branch).
        heads, dim_head: attention heads; SVD uses ``C // 64`` heads of 64, the main branch 8 heads of ``C // 8``
            (see :meth:`svd` and :meth:`modelscope`).
        operations, device, dtype: see :mod:`.ops`.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int,
        heads: int,
        dim_head: int,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        kw = {"device": device, "dtype": dtype}
        self.query_dim = query_dim
        self.context_dim = context_dim
        self.linear = ops.Linear(context_dim, query_dim, **kw)
        self.attn = Attention(query_dim, heads, dim_head, operations=operations, **kw)
        self.ff = FeedForward(query_dim, operations=operations, **kw)
        self.norm1 = ops.LayerNorm(query_dim, **kw)
        self.norm2 = ops.LayerNorm(query_dim, **kw)
        self.alpha_attn = nn.Parameter(torch.zeros((), **kw))
        self.alpha_dense = nn.Parameter(torch.zeros((), **kw))

    @classmethod
    def svd(cls, channels: int, context_dim: int = 1024, head_dim: int = 64, **kwargs: Any) -> GatedSelfAttentionDense:
        """The TrackDiffusion-SVD fuser for a block of ``channels``: ``channels // 64`` heads of 64."""
        return cls(channels, context_dim, channels // head_dim, head_dim, **kwargs)

    @classmethod
    def modelscope(
        cls, channels: int, context_dim: int = 768, heads: int = 8, **kwargs: Any
    ) -> GatedSelfAttentionDense:
        """The main-branch (ModelScope) fuser for a block of ``channels``: 8 heads of ``channels // 8``."""
        return cls(channels, context_dim, heads, channels // heads, **kwargs)

    def forward(self, x: torch.Tensor, objs: torch.Tensor, strength: float | torch.Tensor = 1.0) -> torch.Tensor:
        """Fuse the grounding tokens into the visual tokens.

        Args:
            x: visual tokens ``[B*F, HW, C]``.
            objs: grounding tokens of each frame ``[B*F, N, context_dim]`` (cast to ``x``'s dtype/device).
            strength: multiplies both gates; a float, or a tensor broadcastable to ``x`` (e.g. ``[B*F, 1, 1]``).

        Returns:
            ``[B*F, HW, C]``; ``x`` itself (same object) when both gates are zero or ``strength == 0``.
        """
        if objs.dim() != 3 or objs.shape[0] != x.shape[0] or objs.shape[-1] != self.context_dim:
            raise InvalidInputError(
                f"fuser tokens must have shape [{x.shape[0]}, slots, {self.context_dim}] to match visual tokens "
                f"{list(x.shape)}, got {list(objs.shape)}.",
                fix="Regroup the position-net output to [batch*frames, slots, dim], frame-major.",
                source="gated self-attention fuser",
            )
        gate = tanh_gate(self.alpha_attn, strength, x)
        if gate is not None:
            n_visual = x.shape[1]
            tokens = self.linear(objs.to(x))
            x = x + gate * self.attn(self.norm1(torch.cat([x, tokens], dim=1)))[:, :n_visual]
        gate = tanh_gate(self.alpha_dense, strength, x)
        if gate is not None:
            x = x + gate * self.ff(self.norm2(x))
        return x
