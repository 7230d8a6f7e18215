"""Tensors the demo model eats: frames in [-1, 1] and the box conditioning derived from tracklets + first frame.

The conditioning (:class:`BoxConditioning`) is a fixed, weight-free function of what a user gives - the first frame
and the tracklets - in three parts:

- ``masks`` [slots, F, H, W]: 1 inside the box of the object in slot ``k`` (ids ascending) at frame ``f``;
- ``categories`` [slots]: the index of each object's label in :data:`LABELS` plus one (0: no object or a label the
  model was not trained on), the demo's analogue of TrackDiffusion's category embedding;
- ``appearance`` [3, F, H, W]: the first frame's content inside each object's frame-0 box, resized into its box at
  every frame (0 elsewhere, and for objects not visible in the first frame), the plain-tensor analogue of
  TrackDiffusion's ROI-aligned instance features. Slots are pasted in id order, so in SynTrack (ids back to front)
  nearer objects land on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SLOTS = 4  # instance slots (SynTrack has at most 3 objects per clip)
#: Labels the demo model knows (SynTrack's colour categories); any other label gets the null category.
LABELS = ("red", "green", "blue", "yellow", "magenta", "cyan")


@dataclass
class BoxConditioning:
    """masks [slots, F, H, W] float, categories [slots] int64, appearance [3, F, H, W] float (batched: a leading B)."""

    masks: torch.Tensor
    categories: torch.Tensor
    appearance: torch.Tensor

    @staticmethod
    def empty(slots: int, num_frames: int, height: int, width: int) -> BoxConditioning:
        """No boxes at all (the model's box-free mode)."""
        return BoxConditioning(torch.zeros(slots, num_frames, height, width), torch.zeros(slots, dtype=torch.int64),
                               torch.zeros(3, num_frames, height, width))

    @staticmethod
    def stack(items) -> BoxConditioning:
        items = list(items)
        return BoxConditioning(*(torch.stack([getattr(c, k) for c in items])
                                 for k in ("masks", "categories", "appearance")))


def _slot_boxes(tracklets, num_frames: int, height: int, width: int, slots: int):
    """(boxes [F, K, 4] in output pixels, visible [F, K], labels) of the first ``slots`` objects (ids ascending)."""
    dense = tracklets.dense(num_frames)
    k = min(slots, len(dense.ids))
    scale = np.array([width / tracklets.width, height / tracklets.height] * 2)
    return dense.boxes[:, :k] * scale, dense.visible[:, :k], list(dense.labels[:k])


def _pixel_range(lo: float, hi: float, size: int) -> tuple[int, int]:
    return max(int(np.floor(lo)), 0), max(min(int(np.ceil(hi)), size), 0)


def box_raster(tracklets, num_frames: int, height: int, width: int, slots: int = SLOTS) -> torch.Tensor:
    """[slots, F, H, W] float: 1 inside the box of the object in slot k at frame f (ids ascending), else 0."""
    boxes, visible, _ = _slot_boxes(tracklets, num_frames, height, width, slots)
    return _raster(boxes, visible, height, width, slots)


def _raster(boxes: np.ndarray, visible: np.ndarray, height: int, width: int, slots: int) -> torch.Tensor:
    num_frames = boxes.shape[0]
    raster = np.zeros((slots, num_frames, height, width), np.float32)
    for k in range(boxes.shape[1]):
        for f in range(num_frames):
            if visible[f, k]:
                (c1, c2), (r1, r2) = (_pixel_range(boxes[f, k, 0], boxes[f, k, 2], width),
                                      _pixel_range(boxes[f, k, 1], boxes[f, k, 3], height))
                raster[k, f, r1:r2, c1:c2] = 1.0
    return torch.from_numpy(raster)


def label_categories(labels, slots: int = SLOTS) -> torch.Tensor:
    """[slots] int64: 1 + index in :data:`LABELS` per label, 0 for unknown labels and empty slots."""
    out = torch.zeros(slots, dtype=torch.int64)
    for k, label in enumerate(list(labels)[:slots]):
        name = str(label).strip().lower()
        out[k] = LABELS.index(name) + 1 if name in LABELS else 0
    return out


def appearance_raster(first: torch.Tensor, boxes: np.ndarray, visible: np.ndarray, masks: torch.Tensor) -> torch.Tensor:
    """Paste each object's first-frame crop into its box at every frame.

    Args:
        first: [3, H, W] the first frame in [-1, 1].
        boxes: [F, K, 4] xyxy boxes in pixels of ``first``; visible: [F, K] bool.
        masks: [slots, F, H, W] the box raster (where each slot is pasted).
    Returns:
        [3, F, H, W], 0 outside every pasted box.
    """
    _, h, w = first.shape
    num_frames = boxes.shape[0]
    out = torch.zeros(3, num_frames, h, w)
    xs = (torch.arange(w, dtype=torch.float64) + 0.5)[None, :].expand(h, w)
    ys = (torch.arange(h, dtype=torch.float64) + 0.5)[:, None].expand(h, w)
    for k in range(boxes.shape[1]):
        if not visible[0, k]:
            continue  # the first frame does not show it: nothing to copy
        a1, b1, a2, b2 = (float(v) for v in boxes[0, k])
        if a2 - a1 <= 0 or b2 - b1 <= 0:
            continue
        frames = [f for f in range(num_frames) if visible[f, k] and boxes[f, k, 2] > boxes[f, k, 0]
                  and boxes[f, k, 3] > boxes[f, k, 1]]
        if not frames:
            continue
        grids = []
        for f in frames:
            c1, d1, c2, d2 = (float(v) for v in boxes[f, k])
            sx = a1 + (xs - c1) * (a2 - a1) / (c2 - c1)  # same relative position in the frame-0 box
            sy = b1 + (ys - d1) * (b2 - b1) / (d2 - d1)
            grids.append(torch.stack([sx / w * 2 - 1, sy / h * 2 - 1], dim=-1))
        grid = torch.stack(grids).float()  # [n, H, W, 2]
        warped = F.grid_sample(first[None].expand(len(frames), -1, -1, -1), grid, mode="bilinear",
                               padding_mode="border", align_corners=False)  # [n, 3, H, W]
        sel = torch.tensor(frames)
        m = masks[k, sel][:, None]  # [n, 1, H, W]
        out[:, sel] = (out[:, sel].permute(1, 0, 2, 3) * (1 - m) + warped * m).permute(1, 0, 2, 3)
    return out


def box_conditioning(tracklets, first: torch.Tensor, num_frames: int, slots: int = SLOTS) -> BoxConditioning:
    """The conditioning of one clip. first: [3, H, W] in [-1, 1] (the frame the video starts from)."""
    _, h, w = first.shape
    boxes, visible, labels = _slot_boxes(tracklets, num_frames, h, w, slots)
    masks = _raster(boxes, visible, h, w, slots)
    return BoxConditioning(masks, label_categories(labels, slots), appearance_raster(first.float(), boxes, visible,
                                                                                     masks))


def frames_tensor(video: np.ndarray) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float [3, F, H, W] in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2).float() / 127.5 - 1.0


def clip_tensors(video: np.ndarray, tracklets, slots: int = SLOTS) -> tuple[torch.Tensor, BoxConditioning]:
    """(frames [3, F, H, W] in [-1, 1], conditioning) for one clip."""
    frames = frames_tensor(video)
    return frames, box_conditioning(tracklets, frames[:, 0], frames.shape[1], slots)
