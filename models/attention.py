"""Multi-head attention and the GEGLU feed-forward, with diffusers' state-dict key names.

Key layout (identical to diffusers ``Attention`` / ``FeedForward(activation_fn="geglu")``, and to ComfyUI's
``CrossAttention`` / ``FeedForward(glu=True)``, so the official TrackDiffusion checkpoints load unchanged):

=====================  ============================  ==================================
module                 key                           shape ``[out, in]``
=====================  ============================  ==================================
``Attention``          ``to_q.weight``               ``[heads*dim_head, query_dim]``
                       ``to_k.weight``, ``to_v``     ``[heads*dim_head, context_dim]``
                       ``to_out.0.weight`` / bias    ``[query_dim, heads*dim_head]`` / ``[query_dim]``
``FeedForward``        ``net.0.proj.weight`` / bias  ``[2*inner, dim]`` / ``[2*inner]``
                       ``net.2.weight`` / bias       ``[dim_out, inner]`` / ``[dim_out]``
=====================  ============================  ==================================
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .ops import resolve_operations


class Attention(nn.Module):
    """Scaled dot-product multi-head attention (self-attention, or cross-attention when ``context`` is given).

    Args:
        query_dim: channels of the queries and of the output.
        heads: number of heads.
        dim_head: channels per head; the inner width is ``heads * dim_head``.
        context_dim: channels of the keys/values source; ``None`` means ``query_dim`` (self-attention).
        out_bias: whether ``to_out.0`` has a bias (the q/k/v projections never do).
        operations: layer factory (see :mod:`.ops`); ``None`` for ``torch.nn``.
        device, dtype: where and in what dtype to create the weights.
    """

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None = None,
        out_bias: bool = True,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        context_dim = query_dim if context_dim is None else context_dim
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = ops.Linear(query_dim, inner, bias=False, device=device, dtype=dtype)
        self.to_k = ops.Linear(context_dim, inner, bias=False, device=device, dtype=dtype)
        self.to_v = ops.Linear(context_dim, inner, bias=False, device=device, dtype=dtype)
        # Index 1 would be diffusers' Dropout(0.0); it has no parameters, so only `to_out.0` appears in the state dict.
        self.to_out = nn.ModuleList([ops.Linear(inner, query_dim, bias=out_bias, device=device, dtype=dtype)])

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # [B, L, heads*dim_head] -> [B, heads, L, dim_head]
        return t.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` to ``context`` (or to ``x`` itself).

        Args:
            x: queries ``[B, Lq, query_dim]``.
            context: keys/values source ``[B, Lk, context_dim]``; ``None`` for self-attention.
            attn_mask: optional mask broadcastable to ``[B, heads, Lq, Lk]`` (bool: True = attend; float: added).

        Returns:
            ``[B, Lq, query_dim]``.
        """
        context = x if context is None else context
        q = self._split_heads(self.to_q(x))
        k = self._split_heads(self.to_k(context))
        v = self._split_heads(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.to_out[0](out.transpose(1, 2).flatten(2))


class GEGLU(nn.Module):
    """GELU-gated linear unit: ``proj(x) = [h ; g]`` (first half value, second half gate) -> ``h * gelu(g)``.

    Shapes: ``[..., dim_in] -> [..., dim_out]``; key ``proj`` is ``[2*dim_out, dim_in]``.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        self.proj = ops.Linear(dim_in, 2 * dim_out, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward ``[..., dim] -> [..., dim_out]`` with inner width ``mult * dim``.

    Keys: ``net.0.proj`` ``[2*inner, dim]``, ``net.2`` ``[dim_out, inner]`` (``net.1`` is a parameter-free identity
    standing in for diffusers' dropout, kept so the indices match).
    """

    def __init__(
        self,
        dim: int,
        dim_out: int | None = None,
        mult: int = 4,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        inner = int(dim * mult)
        dim_out = dim if dim_out is None else dim_out
        self.net = nn.Sequential(
            GEGLU(dim, inner, operations=operations, device=device, dtype=dtype),
            nn.Identity(),
            ops.Linear(inner, dim_out, device=device, dtype=dtype),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
