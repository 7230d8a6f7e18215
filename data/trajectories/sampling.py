"""Choosing the points that represent one mask (TrackGo, AAAI 2025, supplementary A).

TrackGo turns every user mask into a handful of representative points: the number of points ``K`` grows with the
mask's share of the frame (eq. 10), ``3K`` pixels are drawn at random inside the mask, and the ``K`` k-means centres of
those pixels become the points whose trajectories condition the video model.

Coordinates follow the pixel-index convention used across the pack and by ComfyUI ``TRACKS``: ``x`` is the column
and ``y`` the row, so the centre of pixel ``mask[r, c]`` is ``(x, y) = (c, r)``. A float point belongs to the pixel
returned by :func:`pixel_index` (round half up).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "MAX_POINTS",
    "MIN_POINTS",
    "check_seed",
    "kmeans",
    "pixel_index",
    "points_per_mask",
    "sample_mask_points",
]

#: Eq. 10 of the TrackGo supplementary: 16 points for small masks (area ratio < 0.1), 64 for large ones (> 0.4),
#: linear in between.
MIN_POINTS = 16
MAX_POINTS = 64
_LOW_RATIO = 0.1
_HIGH_RATIO = 0.4
_LINEAR_SLOPE = 160.0  # = 16 / 0.1 = 64 / 0.4; one multiplication, one rounding (16 * p / 0.1 has two)

#: Lloyd's iterations are bounded so a pathological sample can never stall a ComfyUI queue; with <= 192 samples the
#: assignment settles in far fewer steps than this in practice.
_MAX_KMEANS_ITERS = 50


def points_per_mask(area_ratio: float) -> int:
    """Number of trajectory points ``K`` for a mask covering ``area_ratio`` of the frame (TrackGo eq. 10).

    ``K = 16`` for ``p < 0.1``, ``K = 64`` for ``p > 0.4`` and ``K = round(16 + 48 (p - 0.1) / 0.3)`` in between,
    rounding halves up so the table does not depend on banker's rounding. ``16 / 0.1 == 64 / 0.4``, so the linear
    piece is just ``160 p`` and the curve is continuous at both ends.

    Args:
        area_ratio: mask area divided by frame area, in ``[0, 1]``.

    Returns:
        ``K`` as a Python ``int`` in ``[16, 64]``. The caller caps it at the mask's pixel count.
    """
    if isinstance(area_ratio, (bool, np.bool_)) or not isinstance(area_ratio, numbers.Real):
        raise InvalidInputError(
            f"area ratio must be a number, got {area_ratio!r}.", fix="Pass mask_area / (H * W) as a float."
        )
    try:
        p = float(area_ratio)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(
            f"area ratio must be a number, got {type(area_ratio).__name__}.", fix="Pass mask_area / (H * W) as a float."
        ) from None
    if not np.isfinite(p) or p < 0.0 or p > 1.0:
        raise InvalidInputError(f"area ratio must lie in [0, 1], got {p!r}.", fix="Pass mask_area / (H * W).")
    if p < _LOW_RATIO:
        return MIN_POINTS
    if p > _HIGH_RATIO:
        return MAX_POINTS
    # 16 + 48 (p - 0.1) / 0.3 simplifies to 160 p; the product form avoids the inexact ``p - 0.1`` so exact halves
    # (e.g. p = 0.103125 -> 16.5) really round up.
    k = _LINEAR_SLOPE * p
    return int(np.floor(k + 0.5))


def check_seed(seed: object) -> int:
    """Validate a user seed: a non-negative integer (ComfyUI seeds are ``0 .. 2**64 - 1``)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer, got {type(seed).__name__}.", fix="Pass an int >= 0.")
    if seed < 0:
        raise InvalidInputError(f"seed must be >= 0, got {seed}.", fix="Pass an int >= 0.")
    return int(seed)


def pixel_index(xy: np.ndarray) -> np.ndarray:
    """Integer pixel ``(col, row)`` a float point ``(x, y)`` falls in: round half up.

    Shapes: ``[..., 2]`` float -> ``[..., 2]`` int64. Used by the in-mask check and by the renderer so both agree on
    which pixel a point occupies.
    """
    return np.floor(np.asarray(xy, dtype=np.float64) + 0.5).astype(np.int64)


def _kmeans_pp_init(samples: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: first centre uniform, then each next one with probability proportional to D(x)^2.

    ``samples`` [N, 2] float64 with at least ``k`` distinct rows -> centres [k, 2].
    """
    n = samples.shape[0]
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(n)
    d2 = np.sum((samples - samples[chosen[0]]) ** 2, axis=1)
    for j in range(1, k):
        total = d2.sum()
        if total <= 0.0:
            # Fewer distinct samples than centres (only reachable from direct kmeans() calls): reuse samples
            # rather than dividing by zero; Lloyd's then leaves the duplicates where they are.
            chosen[j] = rng.integers(n)
        else:
            # Inverse-CDF draw keeps it to one uniform per centre, which keeps the stream (hence output) stable.
            cdf = np.cumsum(d2)
            chosen[j] = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), n - 1)
        d2 = np.minimum(d2, np.sum((samples - samples[chosen[j]]) ** 2, axis=1))
    return samples[chosen].copy()


def kmeans(
    samples: np.ndarray, k: int, rng: np.random.Generator, max_iters: int = _MAX_KMEANS_ITERS
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means (k-means++ init + Lloyd's iterations), deterministic for a given ``rng`` state.

    Args:
        samples: [N, 2] float points, ``N >= k``.
        k: number of centres, ``1 <= k <= N``.
        rng: generator used only for the k-means++ seeding.
        max_iters: upper bound on Lloyd's iterations; stops earlier once assignments no longer change.

    Returns:
        ``(centres, labels)``: [k, 2] float64 centres and [N] int64 cluster index of every sample.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < 1:
        raise InvalidInputError(f"k-means samples must have shape [N, 2], got {list(x.shape)}.")
    if not 1 <= k <= x.shape[0]:
        raise InvalidInputError(f"k-means needs 1 <= k <= {x.shape[0]} samples, got k={k}.")
    centres = _kmeans_pp_init(x, k, rng)
    labels = np.full(x.shape[0], -1, dtype=np.int64)
    for _ in range(max_iters):
        d2 = np.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=2)  # [N, k]
        new_labels = np.argmin(d2, axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=x[:, 0], minlength=k), np.bincount(labels, weights=x[:, 1], minlength=k)],
            axis=1,
        )
        # An empty cluster keeps its previous centre instead of becoming NaN.
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, labels


def sample_mask_points(mask: np.ndarray, seed: int = 0, mask_index: int = 0) -> np.ndarray:
    """TrackGo representative points of one mask: k-means centres of ``3K`` random in-mask pixels.

    The generator is ``np.random.default_rng((seed, mask_index))`` so every mask gets an independent, reproducible
    stream and adding a mask does not reshuffle the others.

    K-means centres are averages, so for a non-convex mask (a ring, a "C", a thin diagonal) a centre can land outside
    the mask. Such a centre is snapped to the nearest in-mask sample of its own draw: the point then still moves with
    the object it was meant to represent, and the choice stays deterministic. Centres inside the mask keep their
    sub-pixel position.

    Args:
        mask: [H, W] bool (other dtypes: ``> 0.5`` is inside), with at least one pixel inside.
        seed: non-negative int.
        mask_index: index of this mask in the stack, mixed into the seed.

    Returns:
        [K, 2] float64 points ``(x, y)`` in pixels, ``K = min(points_per_mask(area / (H * W)), area)``.
    """
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        mask = mask > 0.5
    if mask.ndim != 2 or mask.size == 0:
        raise InvalidInputError(
            f"mask {mask_index} must be a non-empty [H, W] array, got shape {list(mask.shape)}.", source="masks"
        )
    flat = np.flatnonzero(mask)
    area = flat.size
    if area == 0:
        raise InvalidInputError(
            f"mask {mask_index} is empty (no pixel inside).",
            fix="Draw the object's mask, or remove the mask and its arrow.",
            source="masks",
        )
    h, w = mask.shape
    k = min(points_per_mask(area / (h * w)), area)
    rng = np.random.default_rng((check_seed(seed), int(mask_index)))
    n_samples = 3 * k
    if area <= n_samples:
        # Tiny mask: every pixel is a sample; there is nothing to gain from drawing duplicates.
        picked = flat
    else:
        picked = flat[rng.choice(area, size=n_samples, replace=False)]
    rows, cols = np.divmod(picked, w)
    samples = np.stack([cols, rows], axis=1).astype(np.float64)  # [N, 2] (x, y)
    centres, _ = kmeans(samples, k, rng)

    ij = pixel_index(centres)
    inside = mask[ij[:, 1].clip(0, h - 1), ij[:, 0].clip(0, w - 1)]
    if not inside.all():
        # The samples are in-mask pixel centres, so the nearest one is a valid stand-in for an escaped centre.
        out = np.flatnonzero(~inside)
        d2 = np.sum((centres[out, None, :] - samples[None, :, :]) ** 2, axis=2)
        centres[out] = samples[np.argmin(d2, axis=1)]
    return centres
