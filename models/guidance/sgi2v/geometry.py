"""Boxes in latent units for SG-I2V, from Tracklets or raw tensors, validated.

Coordinates are continuous latent cells: x in [0, W_lat], y in [0, H_lat]; cell (r, c) covers [c, c+1] x [r, r+1] and
has its centre at (c + 0.5, r + 0.5). A canvas of W x H pixels maps onto the latent by ``x * W_lat / W`` (and y
likewise), so a canvas that is not exactly 8x the latent still lines up.

Each object's *template frame* is the first frame where it is visible inside the latent: frame 0 for everything in
the input image, a later frame for an object that appears later. Frames where an object is hidden, or where its box
lies wholly outside the picture (it left the frame), contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ....data.errors import InvalidInputError


@dataclass
class LatentBoxes:
    """Attributes:
    boxes: [F, N, 4] float32, (x1, y1, x2, y2) in latent cells, unclamped (a box may reach outside the latent).
    valid: [F, N] bool: the object is visible in that frame and its box overlaps the latent.
    template_frame: [N] int64, the first valid frame of each object.
    height, width: the latent size (H_lat, W_lat).
    ids: [N] object ids (for messages).
    """

    boxes: torch.Tensor
    valid: torch.Tensor
    template_frame: torch.Tensor
    height: int
    width: int
    ids: list

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.boxes.shape[1])


def latent_boxes_from_tensors(boxes, visible, height: int, width: int, *, ids=None,
                              source: str = "SG-I2V boxes") -> LatentBoxes:
    """Validate boxes already in latent units.

    Args:
        boxes: [F, N, 4] (x1, y1, x2, y2) latent cells, any float dtype (tensor or array).
        visible: [F, N] bool, False where the object is hidden (its box there is ignored and may be anything).
        height, width: latent size.
    Raises:
        InvalidInputError: wrong shapes, no objects, a visible box that is empty (x2 <= x1 or y2 <= y1) or not
            finite, or an object whose box never overlaps the latent (wholly outside, or never visible).
    """
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64) if not torch.is_tensor(boxes) else boxes)
    visible = torch.as_tensor(np.asarray(visible, dtype=bool) if not torch.is_tensor(visible) else visible)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise InvalidInputError(f"the latent size must be positive integers, got {height!r} x {width!r}.",
                                source=source)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or visible.shape != boxes.shape[:2]:
        raise InvalidInputError(f"boxes must be [frames, objects, 4] with visible [frames, objects], got "
                                f"{tuple(boxes.shape)} and {tuple(visible.shape)}.", source=source)
    num_frames, num_objects = boxes.shape[:2]
    if num_frames == 0 or num_objects == 0:
        raise InvalidInputError("there are no boxes to guide (no objects or no frames).",
                                fix="draw at least one box in the Tracklet Editor.", source=source)
    ids = list(range(num_objects)) if ids is None else list(ids)
    boxes = boxes.to(torch.float64)
    visible = visible.to(torch.bool)
    for f, n in zip(*torch.nonzero(visible, as_tuple=True)):
        x1, y1, x2, y2 = (float(v) for v in boxes[f, n])
        if not all(np.isfinite([x1, y1, x2, y2])):
            raise InvalidInputError(f"box {[x1, y1, x2, y2]} is not finite.", source=source, obj=ids[n],
                                    frame=int(f))
        if x2 <= x1 or y2 <= y1:
            raise InvalidInputError(f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is empty (x2 <= x1 or y2 <= y1).",
                                    fix="boxes are [left, top, right, bottom] with right > left and bottom > top.",
                                    source=source, obj=ids[n], frame=int(f))
    inside = (boxes[..., 2] > 0) & (boxes[..., 0] < width) & (boxes[..., 3] > 0) & (boxes[..., 1] < height)
    valid = visible & inside
    for n in range(num_objects):
        if not bool(valid[:, n].any()):
            what = "is never visible" if not bool(visible[:, n].any()) else "lies wholly outside the picture"
            raise InvalidInputError(f"the box {what} in every frame, so there is nothing to guide.",
                                    fix="move the box onto the image (or delete the object).", source=source,
                                    obj=ids[n])
    template = valid.to(torch.int8).argmax(0).to(torch.int64)  # first True per object
    return LatentBoxes(boxes.to(torch.float32), valid, template, height, width, ids)


def latent_boxes_from_tracklets(tracklets, num_frames: int, height: int, width: int) -> LatentBoxes:
    """The tracklets' boxes on a ``height`` x ``width`` latent of ``num_frames`` frames.

    The tracklets are evaluated at ``num_frames`` frames spread over their duration (``Tracklets.dense``), unclamped,
    so a box that leaves the picture keeps its size; its frames outside the picture are invalid.

    Raises:
        InvalidInputError: see :func:`latent_boxes_from_tensors`.
    """
    source = "SG-I2V tracklets"
    if num_frames < 1:
        raise InvalidInputError(f"the latent has {num_frames} frames.", source=source)
    if not tracklets.objects:
        raise InvalidInputError("the tracklets have no objects, so there is nothing to guide.",
                                fix="draw at least one box in the Tracklet Editor.", source=source)
    dense = tracklets.dense(num_frames, clamp=False)
    scale = np.array([width / dense.width, height / dense.height] * 2)
    return latent_boxes_from_tensors(dense.boxes * scale, dense.visible, height, width, ids=dense.ids,
                                     source=source)
