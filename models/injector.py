"""TrackDiffusion's temporal instance enhancer + gated cross-attention ("injector"), main branch only.

In the official UNet3D it lives in ``up_blocks.{1,2,3}.attentions.{0,1,2}.transformer_blocks.0.injector`` (right after
the fuser), fed by 1x1 ROIAlign features of the current hidden states (:func:`instance_roi_features`, with the up
block's ``null_track_feat`` ``[1, C]`` for absent slots) and by the position net's motion features ``track_objs``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.errors import InvalidInputError
from .attention import Attention, FeedForward
from .ops import cast_like, resolve_operations, tanh_gate
from .roi_align import roi_align


def instance_roi_features(
    hidden: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor, null_track_feat: torch.Tensor
) -> torch.Tensor:
    """Per-slot 1x1 ROIAlign features of a feature map, ``null_track_feat`` where the slot is absent.

    ROIAlign settings are the official ones: boxes scaled to feature pixels by ``(w, h)``, output 1x1,
    ``spatial_scale=1``, ``sampling_ratio=-1``, ``aligned=False``. Slots with ``mask > 0.5`` (the official code
    tests ``mask == 1``; masks are 0/1) get their pooled feature, the others ``null_track_feat``.

    Args:
        hidden: ``[B*F, C, h, w]`` hidden states of the up block (after resnet + temporal conv).
        boxes: ``[B*F, N, 4]`` normalised xyxy.
        masks: ``[B*F, N]``.
        null_track_feat: ``[1, C]`` (the up block's ``null_track_feat.weight``) or ``[C]``; cast to ``hidden``.

    Returns:
        ``[B*F, N, C]`` in ``hidden``'s dtype.
    """
    if hidden.dim() != 4:
        raise InvalidInputError(
            f"hidden states must be [batch*frames, channels, h, w], got {list(hidden.shape)}.",
            fix="Pass the up block's 4-D hidden states.",
            source="instance ROI features",
        )
    bf, channels, h, w = hidden.shape
    if boxes.dim() != 3 or boxes.shape[0] != bf or boxes.shape[-1] != 4 or tuple(masks.shape) != tuple(boxes.shape[:2]):
        raise InvalidInputError(
            f"boxes must be [{bf}, slots, 4] and masks [{bf}, slots] to match hidden states {list(hidden.shape)}, "
            f"got boxes {list(boxes.shape)} and masks {list(masks.shape)}.",
            fix="Regroup the boxes and masks to [batch*frames, slots, ...], frame-major.",
            source="instance ROI features",
        )
    null = cast_like(null_track_feat, hidden).reshape(-1)
    if null.numel() != channels:
        raise InvalidInputError(
            f"null_track_feat has {null.numel()} values, the hidden states {channels} channels.",
            fix="Pass the null_track_feat of the up block these hidden states come from.",
            source="instance ROI features",
        )
    n = boxes.shape[1]
    # Every slot is pooled (static shapes, no device sync on the mask), then absent ones are replaced; the pooled
    # value of a present slot does not depend on the other boxes.
    scale = torch.tensor([w, h, w, h], device=hidden.device, dtype=torch.float32)
    flat = boxes.reshape(bf * n, 4).to(device=hidden.device, dtype=torch.float32) * scale
    img = torch.arange(bf, device=hidden.device, dtype=torch.float32).repeat_interleave(n)
    pooled = roi_align(hidden, torch.cat([img[:, None], flat], dim=1), 1).reshape(bf, n, channels)
    present = (masks.to(hidden.device) > 0.5).unsqueeze(-1)
    return torch.where(present, pooled, null.view(1, 1, channels))


class GatedCrossAttentionTrackFuse(nn.Module):
    """Instance tokens (ROI feature + motion feature) refined by temporal self-attention, then injected into the
    visual tokens through gated cross-attention and a gated GEGLU feed-forward.

    State dict (``C = query_dim``, ``[out, in]``): ``linears.0`` ``[C, C+track_dim]``, ``linears.2`` and
    ``linears.4`` ``[C, C]`` (each + bias); ``attn1``/``attn2``: ``to_{q,k,v}`` ``[C, C]``, ``to_out.0`` ``[C, C]`` +
    bias; ``ff.net.0.proj`` ``[8C, C]``, ``ff.net.2`` ``[C, 4C]`` (+ bias); ``norm1..3`` ``[C]``; ``alpha_attn``,
    ``alpha_dense`` 0-dim, initialised to 0.

    Args:
        query_dim: visual channels ``C``.
        track_dim: motion-feature width (128).
        heads: attention heads (8, of ``C // heads`` dims).
        operations, device, dtype: see :mod:`.ops`.
    """

    def __init__(
        self,
        query_dim: int,
        track_dim: int = 128,
        heads: int = 8,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        kw = {"device": device, "dtype": dtype}
        self.query_dim = query_dim
        self.track_dim = track_dim
        dim_head = query_dim // heads
        self.attn1 = Attention(query_dim, heads, dim_head, operations=operations, **kw)
        self.attn2 = Attention(query_dim, heads, dim_head, operations=operations, **kw)
        self.ff = FeedForward(query_dim, operations=operations, **kw)
        self.norm1 = ops.LayerNorm(query_dim, **kw)
        self.norm2 = ops.LayerNorm(query_dim, **kw)
        self.norm3 = ops.LayerNorm(query_dim, **kw)
        self.alpha_attn = nn.Parameter(torch.zeros((), **kw))
        self.alpha_dense = nn.Parameter(torch.zeros((), **kw))
        self.linears = nn.Sequential(
            ops.Linear(query_dim + track_dim, query_dim, **kw),
            nn.SiLU(),
            ops.Linear(query_dim, query_dim, **kw),
            nn.SiLU(),
            ops.Linear(query_dim, query_dim, **kw),
        )

    def instance_tokens(self, roi_feats: torch.Tensor, track_objs: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``linears(cat[roi, track])`` then temporal self-attention per instance: ``[B*F, N, C]``."""
        bf, n = roi_feats.shape[:2]
        tokens = self.linears(torch.cat([roi_feats, track_objs.to(roi_feats)], dim=-1))  # [B*F, N, C]
        seq = tokens.unflatten(0, (bf // num_frames, num_frames)).transpose(1, 2).flatten(0, 1)  # [B*N, F, C]
        seq = seq + self.attn1(self.norm1(seq))
        return seq.unflatten(0, (bf // num_frames, n)).transpose(1, 2).flatten(0, 1)  # [B*F, N, C]

    def forward(
        self,
        x: torch.Tensor,
        roi_feats: torch.Tensor,
        track_objs: torch.Tensor,
        num_frames: int,
        strength: float | torch.Tensor = 1.0,
    ) -> torch.Tensor:
        """Inject the instance tokens into the visual tokens.

        Args:
            x: visual tokens ``[B*F, HW, C]``.
            roi_feats: ``[B*F, N, C]`` from :func:`instance_roi_features`.
            track_objs: ``[B*F, N, track_dim]`` (or the position net's ``[B, F, N, track_dim]``).
            num_frames: ``F``.
            strength: multiplies both gates (float, or tensor broadcastable to ``x``).

        Returns:
            ``[B*F, HW, C]``; ``x`` itself when both gates are zero or ``strength == 0``.
        """
        source = "gated cross-attention injector"
        if track_objs.dim() == 4:
            track_objs = track_objs.flatten(0, 1)
        bf = x.shape[0]
        if num_frames < 1 or bf % num_frames:
            raise InvalidInputError(
                f"visual tokens hold {bf} frames in all, not a multiple of num_frames = {num_frames}.",
                fix="Pass the number of frames per video.",
                source=source,
            )
        if roi_feats.dim() != 3 or roi_feats.shape[0] != bf or roi_feats.shape[-1] != self.query_dim:
            raise InvalidInputError(
                f"roi_feats must be [{bf}, slots, {self.query_dim}], got {list(roi_feats.shape)}.",
                fix="Use instance_roi_features on this block's hidden states.",
                source=source,
            )
        if tuple(track_objs.shape) != (bf, roi_feats.shape[1], self.track_dim):
            raise InvalidInputError(
                f"track_objs must be [{bf}, {roi_feats.shape[1]}, {self.track_dim}], got {list(track_objs.shape)}.",
                fix="Pass the position net's motion features regrouped to [batch*frames, slots, dim].",
                source=source,
            )
        gate = tanh_gate(self.alpha_attn, strength, x)
        if gate is not None:
            tokens = self.instance_tokens(roi_feats.to(x), track_objs, num_frames)
            x = x + gate * self.attn2(self.norm2(x), context=tokens)
        gate = tanh_gate(self.alpha_dense, strength, x)
        if gate is not None:
            x = x + gate * self.ff(self.norm3(x))
        return x
