"""SG-I2V's feature-alignment loss: features inside each frame's box should match the object's template-frame box
features resized to that box, weighted by a Gaussian around the box centre.

The geometry is precomputed once per run as a flat list of *points* (:class:`AlignmentTargets`): one per latent cell
inside a (frame, object) box, excluding each object's template frame and its invalid frames. For every point we keep

- where to read the frame's feature: the cell centre, in ``grid_sample`` coordinates;
- where to read the template: the same relative position inside the template-frame box (both boxes taken as their
  floored cells, so this is SG-I2V's crop of the template box resized bilinearly to the frame's box; a box that
  changes size is handled by construction);
- a weight: SG-I2V's official heatmap, built on the box's floored cells (``floor(x1) .. floor(x2) - 1``, at least
  one): ``exp(-((dx / (sigma * half_w))**2 + (dy / (sigma * half_h))**2) / 2)`` with the centre and half-sizes of
  that cell box, scaled so that its largest value over the whole box is 1, then cropped to the picture (a box partly
  off-screen keeps the weights its visible cells have in the whole box); 0 where the template position falls outside
  the picture (template box partly off-screen).

Feature maps of any resolution (SVD's up-path layers run at 1/2 or 1/4 of the latent) are sampled bilinearly at
those latent positions, which is exactly reading a bilinear upsampling of them to the latent size (SG-I2V's
``F.interpolate`` of every layer), without building it.

    loss = sum_p w_p * mean_c (f[frame_p, c, at p] - stopgrad(f[template_p, c, at template position p]))**2 / sum_p w_p

with the channel mean taken over all layers' channels together (SG-I2V concatenates the upsampled layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .geometry import LatentBoxes


@dataclass
class AlignmentTargets:
    """Attributes (P points in all; F frames; S and T the largest point count of one frame / one template frame):
    src_grid: [F, S, 2] float32 (x, y) in [-1, 1] (``align_corners=False``), each frame's points, zero-padded.
    src_index: [P] int64 into the flattened [F * S] of ``src_grid``.
    tmpl_grid: [F, T, 2] the template positions, grouped by template frame, zero-padded.
    tmpl_index: [P] int64 into the flattened [F * T].
    weight: [P] float32 Gaussian weights (0 for template positions outside the picture).
    frame: [P] int64, the frame of each point; obj: [P] int64 its object (diagnostics and tests).
    """

    src_grid: torch.Tensor
    src_index: torch.Tensor
    tmpl_grid: torch.Tensor
    tmpl_index: torch.Tensor
    weight: torch.Tensor
    frame: torch.Tensor
    obj: torch.Tensor
    height: int
    width: int

    @property
    def num_points(self) -> int:
        return int(self.weight.numel())

    def to(self, device) -> AlignmentTargets:
        move = {k: getattr(self, k).to(device) for k in ("src_grid", "src_index", "tmpl_grid", "tmpl_index", "weight",
                                                            "frame", "obj")}
        return AlignmentTargets(**move, height=self.height, width=self.width)


def _cell_span(lo: float, hi: float) -> tuple[int, int]:
    """Cells [a, b) of a box edge pair, unclipped: edges floored (as SG-I2V's official code), at least one cell."""
    a = math.floor(lo)
    return a, max(math.floor(hi), a + 1)


def _log_gaussian(a: int, b: int, sigma: float) -> torch.Tensor:
    """log of the official heatmap along one axis of the floored cell box [a, b): a Gaussian centred on the box with
    ``sigma`` times its half-size, at the cell centres."""
    centres = torch.arange(a, b, dtype=torch.float64) + 0.5
    half = (b - a) / 2
    return -0.5 * ((centres - (a + half)) / (sigma * half)) ** 2


def build_alignment_targets(boxes: LatentBoxes, heatmap_sigma: float = 0.4) -> AlignmentTargets:
    """The loss geometry of ``boxes`` (see the module docstring). An object valid in one frame only adds no point."""
    h, w = boxes.height, boxes.width
    num_frames = boxes.num_frames
    b = boxes.boxes.to(torch.float64)
    per_frame: list[list[torch.Tensor]] = [[] for _ in range(num_frames)]  # src grids per frame
    per_tmpl: list[list[torch.Tensor]] = [[] for _ in range(num_frames)]  # template grids per template frame
    rows = []  # (frame, slot in frame, template frame, slot in template frame, count, weight, obj)
    counts_src = [0] * num_frames
    counts_tmpl = [0] * num_frames
    for n in range(boxes.num_objects):
        t = int(boxes.template_frame[n])
        ta_x, tb_x = _cell_span(b[t, n, 0].item(), b[t, n, 2].item())  # the template's floored cell box
        ta_y, tb_y = _cell_span(b[t, n, 1].item(), b[t, n, 3].item())
        for f in range(num_frames):
            if f == t or not bool(boxes.valid[f, n]):
                continue
            x1, y1, x2, y2 = b[f, n].tolist()
            a_x, b_x = _cell_span(x1, x2)
            a_y, b_y = _cell_span(y1, y2)
            # the heatmap of the whole floored box, its peak 1 (computed in log space: a hair-thin box stays finite),
            # then cropped to the picture, as SG-I2V's official code does
            log_w = _log_gaussian(a_y, b_y, heatmap_sigma)[:, None] + _log_gaussian(a_x, b_x, heatmap_sigma)[None, :]
            log_w = log_w - log_w.max()
            c0, c1, r0, r1 = max(a_x, 0), min(b_x, w), max(a_y, 0), min(b_y, h)
            if c1 <= c0 or r1 <= r0:
                continue
            weight = log_w[r0 - a_y:r1 - a_y, c0 - a_x:c1 - a_x].exp().reshape(-1)
            cy, cx = torch.meshgrid(torch.arange(r0, r1, dtype=torch.float64) + 0.5,
                                    torch.arange(c0, c1, dtype=torch.float64) + 0.5, indexing="ij")
            cx, cy = cx.reshape(-1), cy.reshape(-1)
            # the template's cell box resized to this one (bilinear, align_corners=False, as F.interpolate): each cell
            # centre reads the template at the same relative position
            u, v = (cx - a_x) / (b_x - a_x), (cy - a_y) / (b_y - a_y)
            px, py = ta_x + u * (tb_x - ta_x), ta_y + v * (tb_y - ta_y)
            weight = weight * ((px >= 0) & (px <= w) & (py >= 0) & (py <= h))
            src = torch.stack([2 * cx / w - 1, 2 * cy / h - 1], -1)
            tmpl = torch.stack([2 * px / w - 1, 2 * py / h - 1], -1)
            count = src.shape[0]
            per_frame[f].append(src)
            per_tmpl[t].append(tmpl)
            rows.append((f, counts_src[f], t, counts_tmpl[t], count, weight, n))
            counts_src[f] += count
            counts_tmpl[t] += count
    s_max, t_max = max(counts_src + [1]), max(counts_tmpl + [1])
    src_grid = torch.zeros(num_frames, s_max, 2, dtype=torch.float32)
    tmpl_grid = torch.zeros(num_frames, t_max, 2, dtype=torch.float32)
    for f in range(num_frames):
        if per_frame[f]:
            grid = torch.cat(per_frame[f])
            src_grid[f, : grid.shape[0]] = grid.float()
        if per_tmpl[f]:
            grid = torch.cat(per_tmpl[f])
            tmpl_grid[f, : grid.shape[0]] = grid.float()
    src_index, tmpl_index, weights, frames, objs = [], [], [], [], []
    for f, s0, t, t0, count, weight, n in rows:
        src_index.append(f * s_max + s0 + torch.arange(count))
        tmpl_index.append(t * t_max + t0 + torch.arange(count))
        weights.append(weight.float())
        frames.append(torch.full((count,), f))
        objs.append(torch.full((count,), n))

    def cat(parts, dtype):
        return torch.cat(parts).to(dtype) if parts else torch.zeros(0, dtype=dtype)

    return AlignmentTargets(src_grid, cat(src_index, torch.int64), tmpl_grid, cat(tmpl_index, torch.int64),
                            cat(weights, torch.float32), cat(frames, torch.int64), cat(objs, torch.int64), h, w)


def _sample(feature: torch.Tensor, grid: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``feature`` [F, C, h, w] at ``grid`` [F, K, 2], picked by ``index`` [P]: [P, C]."""
    out = F.grid_sample(feature.float(), grid[:, None].float(), mode="bilinear", padding_mode="border",
                        align_corners=False)  # [F, C, 1, K], in float32 whatever the model's dtype
    out = out[:, :, 0].permute(0, 2, 1).reshape(-1, feature.shape[1])  # [F * K, C]
    return out.index_select(0, index)


def alignment_loss(features, targets: AlignmentTargets) -> torch.Tensor | None:
    """The weighted alignment loss (a float32 scalar), or None when there is nothing to align.

    Args:
        features: a list of feature maps ``[F, C_l, h_l, w_l]`` (one per recorded layer, any resolution and dtype),
            for the frames of the latent, in frame order. The template side is detached here.
    """
    if targets.num_points == 0 or float(targets.weight.sum()) <= 0.0:
        return None
    device = features[0].device
    if targets.weight.device != device:
        targets = targets.to(device)
    total = torch.zeros(targets.num_points, dtype=torch.float32, device=device)
    channels = 0
    for feature in features:
        src = _sample(feature, targets.src_grid, targets.src_index)
        with torch.no_grad():
            tmpl = _sample(feature.detach(), targets.tmpl_grid, targets.tmpl_index)
        total = total + (src - tmpl).pow(2).sum(1)
        channels += feature.shape[1]
    weight = targets.weight
    return (weight * total).sum() / (channels * weight.sum())
