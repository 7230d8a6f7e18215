"""Tracklets -> the fixed slot tensors the TrackDiffusion modules eat.

The official TrackDiffusion convention: a clip has ``max_instances`` (20) slots per frame; the objects' ids, sorted
ascending, are assigned to slots 0, 1, ...; the slot index is the identity. Absent frames (before an object appears,
hidden spans, boxes wholly off-canvas) and padding slots have mask 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from .model import _positive_int, color_to_rgb


@dataclass
class Slots:
    """Attributes:
    boxes: [F, N, 4] float32, xyxy normalised to [0, 1] by the canvas width and height; zeros where unused.
    masks: [F, N] float32, 1 where the slot's object is present in that frame.
    labels: [N] category text, "" for padding slots.
    colors: [N, 3] float32 RGB in [0, 1] (the SVD position net's 3 extra box channels), zeros for padding.
    ids: [N] object id per slot, None for padding.
    """

    boxes: torch.Tensor
    masks: torch.Tensor
    labels: list[str]
    colors: torch.Tensor
    ids: list[int | None]

    @property
    def num_objects(self) -> int:
        return sum(i is not None for i in self.ids)


def tracklets_to_slots(tracklets, num_frames: int, width: int, height: int, max_instances: int = 20, *,
                       keep_largest: bool = False) -> Slots:
    """Expand tracklets to per-frame slot tensors for a model running at ``num_frames`` x ``width`` x ``height``.

    The motion keeps its timing: frame f of the output is time f * (F_src - 1) / (num_frames - 1) of the tracklets.
    Boxes are clamped to the canvas before normalising.

    Args:
        max_instances: number of slots N (20 for the official weights).
        keep_largest: with more objects than slots, keep the N with the largest mean visible area instead of failing.
    """
    num_frames = _positive_int(num_frames, "num_frames", "to_slots()")
    width = _positive_int(width, "width", "to_slots()")
    height = _positive_int(height, "height", "to_slots()")
    max_instances = _positive_int(max_instances, "max_instances", "to_slots()")

    dense = tracklets.dense(num_frames)
    n_obj = len(dense.ids)
    keep = np.arange(n_obj)
    if n_obj > max_instances:
        if not keep_largest:
            raise InvalidInputError(
                f"the tracklets have {n_obj} objects but the model has {max_instances} instance slots.",
                fix=f"remove {n_obj - max_instances} objects, or turn on keep_largest to keep the {max_instances} "
                "largest.",
                source="to_slots()",
            )
        areas = (dense.boxes[..., 2] - dense.boxes[..., 0]) * (dense.boxes[..., 3] - dense.boxes[..., 1])
        mean_area = (areas * dense.visible).sum(0) / num_frames
        # Stable sort: among equal areas, the smaller id wins, so the choice is deterministic.
        keep = np.sort(np.argsort(-mean_area, kind="stable")[:max_instances])

    boxes = np.zeros((num_frames, max_instances, 4), dtype=np.float32)
    masks = np.zeros((num_frames, max_instances), dtype=np.float32)
    colors = np.zeros((max_instances, 3), dtype=np.float32)
    labels = [""] * max_instances
    ids: list[int | None] = [None] * max_instances
    scale = np.array([dense.width, dense.height, dense.width, dense.height], dtype=np.float64)
    for slot, j in enumerate(keep):
        vis = dense.visible[:, j]
        boxes[:, slot] = np.where(vis[:, None], dense.boxes[:, j] / scale, 0.0)
        masks[:, slot] = vis
        colors[slot] = color_to_rgb(dense.colors[j])
        labels[slot] = dense.labels[j]
        ids[slot] = dense.ids[j]
    # Normalised coordinates do not depend on the output canvas: only the aspect of the tracklet canvas matters, and
    # a model canvas of another aspect is a stretch of the same normalised boxes. width/height are validated so that a
    # caller's mistake (0, negative) is caught here rather than deep in a model.
    return Slots(torch.from_numpy(boxes), torch.from_numpy(masks), labels, torch.from_numpy(colors), ids)
