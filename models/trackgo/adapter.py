"""TrackGo (AAAI 2025): the point-trajectory encoder and the TrackAdapter branch of SVD's temporal self-attention.

TrackGo released no code; this follows the paper ("Injecting Motion Conditions via TrackAdapter", supplementary A):

- encoder E (Animate-Anyone style): six conv layers and two pooling layers turn the point-trajectory video P into a
  feature map at latent resolution (1/8), a final fully connected layer gives f; f is down-sampled to the resolution
  of every temporal self-attention layer. Because Q' = f W'q with W'q initialised from the layer's own Wq, f must have
  that layer's width: the final FC is one linear map per UNet resolution (320/640/1280/1280 channels for SVD);
- TrackAdapter, in every temporal self-attention: A' = softmax(Q'K'^T / sqrt(d)) with Q' = f W'q, K' = f W'k;
  A_M = -1e4 where A' >= alpha (0.2), else tau (0 in training; 0, -1e2 or -1e4 at inference, TrackGo fig. 5);
  A = softmax(QK^T / sqrt(d) + A_M); O = (A + strength * A') V, then the layer's to_out.
- tau, as the paper documents it (Inference paragraph, fig. 5): tau sets how much the *unspecified* area (the tokens
  whose trajectory attention stays below alpha) may move: 0 lets it move freely, -1e2 partly suppresses it, -1e4
  keeps it static. Taken literally in float32 the formula cannot do that: a softmax ignores a constant added to a
  whole row, so tau = 0 and -1e2 give identical outputs and -1e4 only erases the mask. The paper's behaviour most
  likely comes from its float16 computation, where adding tau rounds the logits to float16's grid at |tau| (spacing
  about |tau| / 2**10: 0.06 at -1e2, 8 at -1e4) and so coarsens them; that effect is dtype-dependent and not even
  monotone (a spacing of 8 flattens small logit spreads but can sharpen large ones). We give tau the documented
  behaviour deterministically and in every dtype instead, as a calibrated stand-in: the logits of the unmasked
  entries are divided by the temperature ``1 + |tau| / 1024`` (:func:`tau_temperature`: 1 at tau = 0, 1.1 at -1e2,
  10.8 at -1e4, the float16 spacing at |tau| in logit units), which flattens the temporal attention towards a uniform
  average over the frames, and a uniform temporal average holds an area still; the masked entries stay at -1e4:
  A = softmax(QK^T / (sqrt(d) * T(tau)) + M), M = -1e4 where A' >= alpha, else 0. The temperature applies to every
  query (the tracked parts' unmasked entries too). Training uses tau = 0 (T = 1), so trained adapters see the formula
  unchanged;
- attention loss (Eq. 8): the squared diagonal A(i, i) of the original branch inside each moving object's mask on
  every frame (down-sampled to the layer), summed over objects and queries (:func:`attention_diagonal_loss`: averaged
  over heads and divided by the layer's query count), summed over the temporal layers, added to the noise loss with a
  weight lambda.

Shapes: temporal attention runs on tokens [N, T, C] with N = batch * h * w and T = frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data.errors import InvalidInputError
from ..ops import resolve_operations

MASK_VALUE = -1e4
#: float16 has 10 significand bits: |tau| / 1024 is about the grid spacing that adding tau imposes on the logits
TAU_SCALE = 1024.0
SVD_LEVEL_CHANNELS = (320, 640, 1280, 1280)  # temporal attention width at 1/8, 1/16, 1/32, 1/64 of the image

#: the "format" metadata of a TrackAdapter file (what training writes and Load TrackDiffusion Adapter reads)
TRACKGO_FORMAT = "trackdiffusion.trackgo_adapter"


class TrajectoryEncoder(nn.Module):
    """E: conditioning video P -> f at each UNet resolution.

    Args:
        level_channels: output width at 1/8, 1/16, 1/32, 1/64 of the input (the UNet's temporal attention widths).
        hidden: widths of the three conv pairs.
    """

    def __init__(self, level_channels: Sequence[int] = SVD_LEVEL_CHANNELS, hidden: Sequence[int] = (16, 32, 96),
                 operations: Any | None = None, device=None, dtype=None) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        h1, h2, h3 = hidden
        kw = {"device": device, "dtype": dtype}
        self.convs = nn.ModuleList([
            ops.Conv2d(3, h1, 3, padding=1, **kw), ops.Conv2d(h1, h1, 3, padding=1, **kw),        # then pool /2
            ops.Conv2d(h1, h2, 3, padding=1, **kw), ops.Conv2d(h2, h2, 3, padding=1, **kw),        # then pool /4
            ops.Conv2d(h2, h3, 3, padding=1, **kw), ops.Conv2d(h3, h3, 3, padding=1, stride=2, **kw),  # /8
        ])
        self.heads = nn.ModuleList([ops.Linear(h3, c, **kw) for c in level_channels])
        self.level_channels = tuple(level_channels)
        if operations is None and device != "meta":
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """He initialisation of the convs: P is mostly black, and with PyTorch's default init the trunk comes out
        near 1e-2, A' is uniform and the adapter starts on a plateau with gradients around 1e-8."""
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def trunk(self, video: torch.Tensor) -> torch.Tensor:
        """video [N, 3, H, W] in [0, 1] (N = batch * frames) -> [N, hidden[-1], H/8, W/8]."""
        x = video
        for i, conv in enumerate(self.convs):
            x = F.silu(conv(x))
            if i in (1, 3):
                x = F.avg_pool2d(x, 2)
        return x

    def level_features(self, trunk: torch.Tensor, level: int, size: tuple[int, int]) -> torch.Tensor:
        """f at one UNet resolution: [N, C_level, h, w] from the trunk [N, C, H/8, W/8]."""
        if level >= len(self.heads):
            raise InvalidInputError(f"the UNet has a temporal attention at resolution level {level} but the "
                                    f"TrackAdapter was built for {len(self.heads)} levels.",
                                    fix="use a TrackAdapter trained for this base model.")
        pooled = trunk if tuple(trunk.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(trunk, size)
        return self.heads[level](pooled.movedim(1, -1)).movedim(-1, 1)


class TrackAdapterLayer(nn.Module):
    """W'q and W'k of one temporal self-attention (initialised from that layer's Wq and Wk)."""

    def __init__(self, channels: int, operations: Any | None = None, device=None, dtype=None) -> None:
        super().__init__()
        ops = resolve_operations(operations)
        self.to_q = ops.Linear(channels, channels, bias=False, device=device, dtype=dtype)
        self.to_k = ops.Linear(channels, channels, bias=False, device=device, dtype=dtype)

    @torch.no_grad()
    def init_from(self, to_q_weight: torch.Tensor, to_k_weight: torch.Tensor) -> None:
        self.to_q.weight.copy_(to_q_weight)
        self.to_k.weight.copy_(to_k_weight)

    def trajectory_attention(self, f_tokens: torch.Tensor, heads: int) -> torch.Tensor:
        """A' = softmax(Q'K'^T / sqrt(d)): f_tokens [N, T, C] -> [N, heads, T, T] (float32)."""
        q = _split_heads(self.to_q(f_tokens), heads).float()
        k = _split_heads(self.to_k(f_tokens), heads).float()
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, c = x.shape
    return x.reshape(n, t, heads, c // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, h, t, d = x.shape
    return x.transpose(1, 2).reshape(n, t, h * d)


def tau_temperature(tau: float) -> float:
    """The temperature that divides the unmasked temporal-attention logits: ``1 + |tau| / 1024`` (module docstring)."""
    return 1.0 + abs(float(tau)) / TAU_SCALE


def trackgo_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a_prime: torch.Tensor, heads: int, *,
    alpha: float = 0.2, tau: float = 0.0, strength: float = 1.0,
    masked_attention: Callable | None = None, return_attention: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """O = (A + strength * A') V, before the layer's output projection.

    Args:
        q, k, v: the original branch's projections, [N, T, C].
        a_prime: the trajectory attention A', [N, heads, T, T].
        alpha: A' threshold above which the original branch is masked with -1e4.
        tau: how much the unspecified area may move: 0 = freely, -1e2 = partly suppressed, -1e4 = static (its
            logits are divided by :func:`tau_temperature`; see the module docstring).
        masked_attention: ``fn(q, k, v, heads, mask) -> [N, T, C]`` for the original branch (ComfyUI passes its own
            optimized attention); None computes it here.
        return_attention: also return A [N, heads, T, T] (for the attention loss; computed explicitly).
    """
    mask = torch.where(a_prime >= alpha, torch.full_like(a_prime, MASK_VALUE), torch.zeros_like(a_prime))
    temperature = tau_temperature(tau)
    v_heads = _split_heads(v, heads)
    trajectory = _merge_heads((a_prime.to(v.dtype)) @ v_heads)
    if masked_attention is not None and not return_attention:  # q / T divides every logit by T; -1e4 stays out
        base = masked_attention(q / temperature if temperature != 1.0 else q, k, v, heads, mask.to(q.dtype))
        return base + strength * trajectory
    qh, kh = _split_heads(q, heads).float(), _split_heads(k, heads).float()
    logits = qh @ kh.transpose(-1, -2) / (math.sqrt(qh.shape[-1]) * temperature)
    attention = torch.softmax(logits + mask, dim=-1)
    out = _merge_heads(attention.to(v.dtype) @ v_heads) + strength * trajectory
    return (out, attention) if return_attention else out


def attention_diagonal_loss(attention: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """TrackGo's attention loss (Eq. 8) on one temporal layer: the squared diagonal of the original branch's attention
    inside each moving object's mask, normalised per query position.

    ``L = 1 / (heads * N * T) * sum_i sum_n sum_t sum_head (M_i[n, t] * A_head[n, t, t]) ** 2``

    Eq. 8 sums ``(M_i * diag(A)) ** 2`` over the objects ``i`` and the query positions ``(n, t)`` (token ``n`` of
    ``N = batch * h * w`` at frame ``t``). The sum is averaged over the heads (each head has its own A) and divided by
    the layer's number of query positions ``N * T``, so that the weight lambda does not depend on the resolution or
    the frame count (a plain sum grows with both: 4x the tokens at the 1/8 layers than at 1/16, T times the diagonal
    entries). It is not a mean over the moving tokens: the loss grows with the share of the frame that moves, as
    Eq. 8's sum does. ``M_i`` enters squared, as written (0 / 1 masks are unchanged; area-averaged edges count
    ``M_i ** 2``).

    Args:
        attention: A [N, heads, T, T] with N = batch * h * w (rows in (b, h, w) order).
        masks: the masks down-sampled to this layer (:func:`trackdiffusion.training.layer_mask`): [N, O, T] (object,
            frame), [N, T] (one object per frame) or [N] (one object on every frame), values in [0, 1].
    Returns:
        0-dim float32; 0 when every mask is empty.
    """
    diag_sq = torch.diagonal(attention, dim1=-2, dim2=-1).float().pow(2).mean(1)  # [N, T], mean over heads
    n, t = diag_sq.shape
    weight = masks.float()
    if weight.dim() == 1:
        weight = weight[:, None, None]
    elif weight.dim() == 2:
        weight = weight[:, None, :]
    if weight.dim() != 3 or weight.shape[0] != n or weight.shape[-1] not in (1, t):
        raise InvalidInputError(f"masks {list(masks.shape)} do not fit the attention {list(attention.shape)}.",
                                fix="Pass [N, O, T], [N, T] or [N] weights (N = batch * h * w).")
    per_query = weight.pow(2).sum(1)  # [N, T] (or [N, 1]): sum over the objects of M_i^2
    return (per_query * diag_sq).sum() / (n * t)


class TrackGoAdapter(nn.Module):
    """The encoder E plus one TrackAdapterLayer per temporal self-attention.

    Args:
        layers: (ComfyUI SpatialVideoTransformer path, channels) per temporal attention, e.g. ("input_blocks.1.1", 320).
        level_channels: encoder output widths per resolution level (1/8 .. 1/64).
    """

    def __init__(self, layers: Sequence[tuple[str, int]], level_channels: Sequence[int] = SVD_LEVEL_CHANNELS,
                 operations: Any | None = None, device=None, dtype=None) -> None:
        super().__init__()
        self.encoder = TrajectoryEncoder(level_channels, operations=operations, device=device, dtype=dtype)
        self.layer_names = [name for name, _ in layers]
        self.layers = nn.ModuleDict({name.replace(".", "_"): TrackAdapterLayer(c, operations, device, dtype)
                                     for name, c in layers})

    def layer_for(self, name: str) -> TrackAdapterLayer | None:
        return self.layers[name.replace(".", "_")] if name in self.layer_names else None

    def config(self) -> dict:
        return {"layers": [[n, int(self.layers[n.replace(".", "_")].to_q.weight.shape[0])] for n in self.layer_names],
                "level_channels": list(self.encoder.level_channels)}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> TrackGoAdapter:
        return cls([tuple(x) for x in config["layers"]], config["level_channels"], **kwargs)


def video_to_tokens(features: torch.Tensor, frames: int) -> torch.Tensor:
    """[(B T), C, h, w] -> [(B h w), T, C]: the token layout of ComfyUI's and diffusers' temporal attention."""
    bt, c, h, w = features.shape
    return features.reshape(bt // frames, frames, c, h, w).permute(0, 3, 4, 1, 2).reshape(-1, frames, c)
