"""Tracklets -> the fixed slot tensors the TrackDiffusion modules eat.

The official TrackDiffusion convention: a clip has ``max_instances`` (20) slots per frame; the objects' ids, sorted
ascending, are assigned to slots 0, 1, ...; the slot index is the identity. Absent frames (before an object appears,
hidden spans, boxes wholly off-canvas) and padding slots have mask 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from .model import _positive_int, color_to_rgb

log = logging.getLogger(__name__)


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


#: what to do with more objects than slots: fail (the default), keep the first N by id (the official loaders), or keep
#: the N largest by mean visible area
OVERFLOW_MODES = ("error", "first", "largest")


def tracklets_to_slots(tracklets, num_frames: int, width: int, height: int, max_instances: int = 20, *,
                       keep_largest: bool = False, overflow: str = "error") -> Slots:
    """Expand tracklets to per-frame slot tensors for a model running at ``num_frames`` x ``width`` x ``height``.

    The motion keeps its timing: frame f of the output is time f * (F_src - 1) / (num_frames - 1) of the tracklets.
    Boxes are clamped to the canvas before normalising.

    Args:
        max_instances: number of slots N (20 for the official weights).
        overflow: with more objects than slots: "error" (a clear error, the default), "first" (keep the first N by
            id, as the official code does, and log a warning naming the dropped ids) or "largest" (keep the N with the
            largest mean visible area, also with the warning).
        keep_largest: the same as ``overflow="largest"``.
    """
    if overflow not in OVERFLOW_MODES:
        raise InvalidInputError(f"unknown overflow mode {overflow!r}.", fix=f"use one of {', '.join(OVERFLOW_MODES)}.",
                                source="to_slots()")
    if keep_largest and overflow not in ("error", "largest"):
        raise InvalidInputError(f"keep_largest=True and overflow={overflow!r} ask for different things.",
                                fix="give one of them (keep_largest is the same as overflow='largest').",
                                source="to_slots()")
    overflow = "largest" if keep_largest else overflow
    num_frames = _positive_int(num_frames, "num_frames", "to_slots()")
    width = _positive_int(width, "width", "to_slots()")
    height = _positive_int(height, "height", "to_slots()")
    max_instances = _positive_int(max_instances, "max_instances", "to_slots()")

    dense = tracklets.dense(num_frames)
    n_obj = len(dense.ids)
    keep = np.arange(n_obj)
    if n_obj > max_instances:
        if overflow == "error":
            raise InvalidInputError(
                f"the tracklets have {n_obj} objects but the model has {max_instances} instance slots.",
                fix=f"remove {n_obj - max_instances} objects, or choose to keep the first {max_instances} by id (as "
                f"the official code does) or the {max_instances} largest.",
                source="to_slots()",
            )
        if overflow == "first":  # slots follow ascending ids: the first N ids
            keep = np.arange(max_instances)
        else:
            areas = (dense.boxes[..., 2] - dense.boxes[..., 0]) * (dense.boxes[..., 3] - dense.boxes[..., 1])
            mean_area = (areas * dense.visible).sum(0) / num_frames
            # Stable sort: among equal areas, the smaller id wins, so the choice is deterministic.
            keep = np.sort(np.argsort(-mean_area, kind="stable")[:max_instances])
        dropped = [dense.ids[j] for j in range(n_obj) if j not in set(keep.tolist())]
        log.warning("the tracklets have %d objects, the model %d instance slots: kept the %s, dropped the objects "
                    "with ids %s.", n_obj, max_instances,
                    f"first {max_instances} by id" if overflow == "first" else f"{max_instances} largest",
                    ", ".join(map(str, dropped)))

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
