"""TrackDiffusion position nets: per-slot box (and text) features -> grounding tokens for the fusers.

Slots are flattened frame-major: index ``f * max_objs + slot``; the slot index is the instance identity. A slot with
mask 0 (absent in that frame, padding, or the unconditional CFG half) has its Fourier embedding (and text embedding)
replaced by a learned null feature: ``emb * m + null * (1 - m)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.errors import InvalidInputError
from .attention import Attention
from .fourier import FourierBoxEmbedder
from .ops import cast_like, resolve_operations


def _mlp(
    in_dim: int, hidden_dim: int, out_dim: int, ops: Any, device: Any, dtype: Any, depth: int = 3
) -> nn.Sequential:
    """``Linear, SiLU, Linear, (SiLU, Linear)``: keys ``0, 2(, 4)``."""
    dims = [in_dim] + [hidden_dim] * (depth - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i in range(depth):
        if i:
            layers.append(nn.SiLU())
        layers.append(ops.Linear(dims[i], dims[i + 1], device=device, dtype=dtype))
    return nn.Sequential(*layers)


def _check_boxes_masks(boxes: torch.Tensor, masks: torch.Tensor, box_dim: int, source: str) -> None:
    if boxes.dim() != 3 or boxes.shape[-1] != box_dim:
        raise InvalidInputError(
            f"boxes must have shape [batch, frames*slots, {box_dim}], got {list(boxes.shape)}.",
            fix=f"Pass one row of {box_dim} numbers per (frame, slot), flattened frame-major.",
            source=source,
        )
    if tuple(masks.shape) != tuple(boxes.shape[:2]):
        raise InvalidInputError(
            f"masks must have shape {list(boxes.shape[:2])} (one value per box), got {list(masks.shape)}.",
            fix="Pass a 0/1 mask per (frame, slot) in the same order as the boxes.",
            source=source,
        )


class SVDBoxPositionNet(nn.Module):
    """TrackDiffusion-SVD ``position_net``: coloured boxes -> ``out_dim`` tokens (no text, no instance embedding).

    State dict (defaults): ``linears.0`` ``[512, 112]``, ``linears.2`` ``[512, 512]``, ``linears.4`` ``[1024, 512]``
    (each with bias), ``null_position_feature`` ``[112]`` (zero-initialised).

    Args:
        box_dim: channels per box (7 = x1, y1, x2, y2, r, g, b, all in [0, 1]).
        out_dim: token width (1024 = SVD cross-attention dim).
        hidden_dim: MLP width (512).
        num_freqs, temperature: Fourier embedding (8, 100); position_dim = ``num_freqs * 2 * box_dim``.
        operations, device, dtype: see :mod:`.ops`.
    """

    def __init__(
        self,
        box_dim: int = 7,
        out_dim: int = 1024,
        hidden_dim: int = 512,
        num_freqs: int = 8,
        temperature: float = 100.0,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        self.box_dim = box_dim
        self.out_dim = out_dim
        self.fourier_embedder = FourierBoxEmbedder(num_freqs, temperature)
        self.position_dim = self.fourier_embedder.out_dim(box_dim)
        self.linears = _mlp(self.position_dim, hidden_dim, out_dim, ops, device, dtype)
        self.null_position_feature = nn.Parameter(torch.zeros(self.position_dim, device=device, dtype=dtype))

    def forward(self, boxes: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Grounding tokens.

        Args:
            boxes: ``[B, F*N, box_dim]`` normalised xyxy + RGB, frame-major. Their dtype is the compute dtype of
                the net (any with ``comfy.ops.manual_cast``; the weights' dtype with plain ``torch.nn``).
            masks: ``[B, F*N]``, 1 = box present, 0 = null token.

        Returns:
            ``[B, F*N, out_dim]``; the caller regroups it to ``[B*F, N, out_dim]`` for the fusers.
        """
        _check_boxes_masks(boxes, masks, self.box_dim, "SVD position net")
        emb = self.fourier_embedder(boxes)  # [B, F*N, position_dim]
        m = masks.to(emb).unsqueeze(-1)
        emb = emb * m + cast_like(self.null_position_feature, emb) * (1 - m)
        return self.linears(emb)


class ModelScopePositionNet(nn.Module):
    """TrackDiffusion main-branch (ModelScope/UNet3D) ``position_net``: box + category text -> location tokens,
    plus the instance embedding and the motion extractor ("tracklet" branch).

    State dict (defaults, ``[out, in]``):

    ========================================  ===================
    ``linears.0`` / ``.2`` / ``.4``           ``[512, 832]`` / ``[512, 512]`` / ``[768, 512]`` (+ bias)
    ``null_positive_feature``                 ``[768]``
    ``null_position_feature``                 ``[64]``
    ``instance_embedding.weight``             ``[20, 768]`` (zero-initialised)
    ``tracklet_norm.{weight,bias}``           ``[64]``
    ``tracklet_attn.to_{q,k,v}.weight``       ``[128, 64]``
    ``tracklet_attn.to_out.0.{weight,bias}``  ``[64, 128]`` / ``[64]``
    ``tracklet_linears.0`` / ``.2``           ``[128, 64]`` / ``[128, 128]`` (+ bias)
    ========================================  ===================

    Args:
        positive_len: width of the per-slot text embedding (768, CLIP-L pooled output).
        out_dim: token width (768, the UNet's cross-attention dim).
        max_objs: slots per frame (20, fixed by the checkpoint's ``instance_embedding``).
        hidden_dim: MLP width (512).
        num_freqs, temperature: Fourier embedding of the 4 box coordinates (8, 100 -> 64 features).
        track_dim: motion-extractor output width (128).
        tracklet_heads, tracklet_dim_head: motion-extractor attention (4 x 32).
        instance_embedding: build ``instance_embedding`` (env ``ADD_INS_EMBED=true`` in the official code).
        motion_extractor: build the ``tracklet_*`` modules (env ``injector_on`` containing ``fuse``).
        operations, device, dtype: see :mod:`.ops`.
    """

    def __init__(
        self,
        positive_len: int = 768,
        out_dim: int = 768,
        max_objs: int = 20,
        hidden_dim: int = 512,
        num_freqs: int = 8,
        temperature: float = 100.0,
        track_dim: int = 128,
        tracklet_heads: int = 4,
        tracklet_dim_head: int = 32,
        instance_embedding: bool = True,
        motion_extractor: bool = True,
        operations: Any | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        self.positive_len = positive_len
        self.out_dim = out_dim
        self.max_objs = max_objs
        self.track_dim = track_dim
        self.fourier_embedder = FourierBoxEmbedder(num_freqs, temperature)
        self.position_dim = self.fourier_embedder.out_dim(4)
        self.linears = _mlp(positive_len + self.position_dim, hidden_dim, out_dim, ops, device, dtype)
        self.null_positive_feature = nn.Parameter(torch.zeros(positive_len, device=device, dtype=dtype))
        self.null_position_feature = nn.Parameter(torch.zeros(self.position_dim, device=device, dtype=dtype))
        self.instance_embedding = None
        if instance_embedding:
            self.instance_embedding = ops.Embedding(max_objs, out_dim, device=device, dtype=dtype)
            with torch.no_grad():
                self.instance_embedding.weight.zero_()
        self.tracklet_norm = self.tracklet_attn = self.tracklet_linears = None
        if motion_extractor:
            self.tracklet_norm = ops.LayerNorm(self.position_dim, device=device, dtype=dtype)
            self.tracklet_attn = Attention(
                self.position_dim, tracklet_heads, tracklet_dim_head, operations=operations, device=device, dtype=dtype
            )
            self.tracklet_linears = _mlp(self.position_dim, track_dim, track_dim, ops, device, dtype, depth=2)

    def forward(
        self,
        boxes: torch.Tensor,
        masks: torch.Tensor,
        positive_embeddings: torch.Tensor,
        num_frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Location tokens and motion features.

        Args:
            boxes: ``[B, F*N, 4]`` normalised xyxy, frame-major (``N = max_objs``); their dtype is the compute
                dtype (as for :class:`SVDBoxPositionNet`).
            masks: ``[B, F*N]``, 1 = box present.
            positive_embeddings: ``[B, F*N, positive_len]`` category text embedding per slot.
            num_frames: ``F``.

        Returns:
            ``objs`` ``[B, F*N, out_dim]`` (regroup to ``[B*F, N, out_dim]`` for the fusers) and ``track_objs``
            ``[B, F, N, track_dim]`` (``None`` without the motion extractor).
        """
        source = "ModelScope position net"
        _check_boxes_masks(boxes, masks, 4, source)
        batch, slots = boxes.shape[:2]
        if num_frames < 1 or slots != num_frames * self.max_objs:
            raise InvalidInputError(
                f"boxes hold {slots} slots per sample, expected num_frames * max_objs = "
                f"{num_frames} * {self.max_objs} = {num_frames * self.max_objs}.",
                fix=f"Pad every frame to exactly {self.max_objs} slots (mask 0 for unused ones).",
                source=source,
            )
        if tuple(positive_embeddings.shape) != (batch, slots, self.positive_len):
            raise InvalidInputError(
                f"positive_embeddings must have shape {[batch, slots, self.positive_len]}, "
                f"got {list(positive_embeddings.shape)}.",
                fix="Pass one text embedding per (frame, slot), in the same order as the boxes.",
                source=source,
            )
        loc = self.fourier_embedder(boxes)  # [B, F*N, 64]
        m = masks.to(loc).unsqueeze(-1)
        loc = loc * m + cast_like(self.null_position_feature, loc) * (1 - m)
        positive = positive_embeddings.to(loc)
        positive = positive * m + cast_like(self.null_positive_feature, positive) * (1 - m)
        objs = self.linears(torch.cat([positive, loc], dim=-1))  # [B, F*N, out_dim]
        if self.instance_embedding is not None:
            slot_ids = torch.arange(self.max_objs, device=objs.device)
            inst = cast_like(self.instance_embedding(slot_ids), objs)  # [N, out_dim]
            objs = objs + inst.repeat(num_frames, 1)  # every slot of every frame, masked or not

        track_objs = None
        if self.tracklet_attn is not None:
            # One sequence per slot across time: [B, F*N, P] -> [B*N, F, P].
            seq = loc.unflatten(1, (num_frames, self.max_objs)).transpose(1, 2).flatten(0, 1)
            seq = seq + self.tracklet_attn(self.tracklet_norm(seq))
            track = self.tracklet_linears(seq)  # [B*N, F, track_dim]
            track_objs = track.unflatten(0, (batch, self.max_objs)).transpose(1, 2)  # [B, F, N, track_dim]
        return objs, track_objs
