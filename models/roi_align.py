"""ROIAlign in plain torch, with torchvision's ``ops.roi_align`` semantics (no torchvision dependency).

Semantics reproduced (torchvision's CPU/CUDA kernels, "aligned=False" being the Mask R-CNN original):

* box corners are scaled by ``spatial_scale`` and shifted by ``-0.5`` when ``aligned``;
* when not ``aligned`` the ROI width/height is at least 1 feature pixel;
* each of the ``oh x ow`` bins is sampled on a regular ``gh x gw`` grid at the sub-cell centres, with
  ``gh = sampling_ratio`` if ``> 0`` else ``ceil(roi_h / oh)`` (per ROI; likewise ``gw``);
* bilinear sampling: a sample with ``y < -1`` or ``y > H`` (or ``x < -1`` or ``x > W``) contributes 0; otherwise
  negative coordinates are clamped to 0 and coordinates at or past the last row/column use that row/column alone;
* a bin's value is the sum of its samples divided by ``max(gh * gw, 1)`` (out-of-map samples still count).

Implementation: bilinear weights factorise into a row part and a column part (and so does the out-of-map rule), so
the sum over a bin's sample grid equals ``Ay @ feature @ Ax.T`` with ``Ay [oh, H]`` and ``Ax [ow, W]`` the summed
per-axis weights. ROIs are grouped per image into a padded batch, so everything is a few batched matmuls with no
Python loop over ROIs, bins or samples.
"""

from __future__ import annotations

import torch

from ..data.errors import InvalidInputError

# Adaptive sampling grids beyond this many samples per bin side mean a broken box, not a real ROI.
_MAX_GRID = 1 << 16


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise InvalidInputError(
            f"output_size must be an int or a pair (height, width), got {size!r}.", fix="Pass e.g. 1 or (7, 7)."
        )
    return int(size[0]), int(size[1])


def _axis_weights(
    start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, n_bins: int, size: int
) -> torch.Tensor:
    """Summed bilinear weights of every bin's samples along one axis.

    Args:
        start: ROI start coordinate ``[K]``.
        bin_size: bin length ``[K]``.
        grid: samples per bin along this axis ``[K]`` (int64, may be 0).
        n_bins: bins along this axis.
        size: feature-map length along this axis.

    Returns:
        ``[K, n_bins, size]``: entry ``[k, p, i]`` is the total weight of feature row/column ``i`` over the samples of
        bin ``p`` of ROI ``k`` along this axis.
    """
    k = start.shape[0]
    weights = start.new_zeros(k, n_bins, size)
    max_grid = int(grid.max()) if k else 0
    if max_grid == 0:
        return weights
    p = torch.arange(n_bins, device=start.device, dtype=start.dtype).view(1, n_bins, 1)
    i = torch.arange(max_grid, device=start.device).view(1, 1, max_grid)
    start, bin_size, grid_k = start.view(k, 1, 1), bin_size.view(k, 1, 1), grid.view(k, 1, 1)
    # Same evaluation order as torchvision: start + p*bin + (i + .5) * bin / grid.
    pos = start + p * bin_size + (i.to(start.dtype) + 0.5) * bin_size / grid_k.clamp(min=1).to(start.dtype)
    valid = (i < grid_k) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    low = pos.floor().clamp(max=size - 1)
    at_end = low >= size - 1
    frac = torch.where(at_end, torch.zeros_like(pos), pos - low)
    low_idx = torch.nan_to_num(low).long().clamp(0, size - 1)
    high_idx = torch.where(at_end, low_idx, low_idx + 1).clamp(max=size - 1)
    zero = torch.zeros_like(pos)
    w_low = torch.where(valid, 1.0 - frac, zero)
    w_high = torch.where(valid, frac, zero)
    weights.scatter_add_(2, low_idx.expand(k, n_bins, max_grid), w_low.expand(k, n_bins, max_grid))
    weights.scatter_add_(2, high_idx.expand(k, n_bins, max_grid), w_high.expand(k, n_bins, max_grid))
    return weights


def roi_align(
    features: torch.Tensor,
    boxes: torch.Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """Average-pool each box of ``features`` into an ``output_size`` grid with bilinear sampling.

    Args:
        features: ``[B, C, H, W]``.
        boxes: ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)``; times ``spatial_scale`` they are in feature
            pixels, where feature ``[i, j]`` sits at ``(x=j, y=i)`` (``aligned=False``) or ``(j + 0.5, i + 0.5)``
            (``aligned=True``).
        output_size: ``oh`` or ``(oh, ow)``.
        spatial_scale: factor mapping box coordinates to feature pixels.
        sampling_ratio: samples per bin along each axis; ``<= 0`` for adaptive ``ceil(roi_size / bins)``.
        aligned: shift boxes by -0.5 pixel (and allow ROIs smaller than a pixel).

    Returns:
        ``[K, C, oh, ow]`` in ``features``' dtype.
    """
    if features.dim() != 4:
        raise InvalidInputError(
            f"roi_align features must be [batch, channels, height, width], got {list(features.shape)}.",
            fix="Pass a 4-D feature map.",
        )
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise InvalidInputError(
            f"roi_align boxes must be [K, 5] rows (batch_index, x1, y1, x2, y2), got {list(boxes.shape)}.",
            fix="Prepend the image index to every xyxy box.",
        )
    oh, ow = _pair(output_size)
    n_img, channels, height, width = features.shape
    k = boxes.shape[0]
    if k == 0:
        return features.new_zeros(0, channels, oh, ow)

    cdtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    rois = boxes.to(device=features.device, dtype=cdtype)
    img = rois[:, 0].long()  # torchvision truncates the index to int
    lo, hi = int(img.min()), int(img.max())
    if lo < 0 or hi >= n_img:
        raise InvalidInputError(
            f"roi_align batch indices must lie in [0, {n_img - 1}], got values from {lo} to {hi}.",
            fix="Use the index of the image each box belongs to in the features batch.",
        )
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / oh, roi_w / ow
    if sampling_ratio > 0:
        grid_h = torch.full((k,), sampling_ratio, dtype=torch.long, device=features.device)
        grid_w = grid_h
    else:
        grid_h = torch.ceil(roi_h / oh)
        grid_w = torch.ceil(roi_w / ow)
        biggest = float(torch.nan_to_num(torch.maximum(grid_h, grid_w), nan=float("inf")).max())
        if biggest > _MAX_GRID:
            raise InvalidInputError(
                f"roi_align would need {biggest:g} samples per bin side (a box is non-finite or far larger than the "
                f"{height}x{width} feature map).",
                fix="Check the box coordinates and spatial_scale, or pass a positive sampling_ratio.",
            )
        grid_h, grid_w = grid_h.clamp(min=0).long(), grid_w.clamp(min=0).long()
    count = (grid_h * grid_w).clamp(min=1).to(cdtype)

    a_y = _axis_weights(y1, bin_h, grid_h, oh, height)  # [K, oh, H]
    a_x = _axis_weights(x1, bin_w, grid_w, ow, width)  # [K, ow, W]

    # Pad ROIs into [n_img, per_img] so each image's ROIs are contracted with that image only.
    counts = torch.bincount(img, minlength=n_img)
    per_img = int(counts.max())
    sorted_img, order = torch.sort(img, stable=True)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(k, device=img.device) - first[sorted_img]
    slot = torch.empty_like(img)
    slot[order] = sorted_img * per_img + rank
    pad_y = a_y.new_zeros(n_img * per_img, oh, height).index_copy_(0, slot, a_y).to(features.dtype)
    pad_x = a_x.new_zeros(n_img * per_img, ow, width).index_copy_(0, slot, a_x).to(features.dtype)
    pad_y = pad_y.view(n_img, per_img, oh, height)
    pad_x = pad_x.view(n_img, per_img, ow, width)
    rows = torch.einsum("bkoh,bchw->bkocw", pad_y, features)  # [n_img, per_img, oh, C, W]
    pooled = torch.einsum("bkocw,bkpw->bkcop", rows, pad_x)  # [n_img, per_img, C, oh, ow]
    out = pooled.reshape(n_img * per_img, channels, oh, ow)[slot]
    return out / count.to(out.dtype).view(k, 1, 1, 1)
