"""Tensors the demo model eats: frames in [-1, 1] and per-slot box masks."""

from __future__ import annotations

import numpy as np
import torch

SLOTS = 4  # instance slots (SynTrack has at most 3 objects per clip)


def box_raster(tracklets, num_frames: int, height: int, width: int, slots: int = SLOTS) -> torch.Tensor:
    """[slots, F, H, W] float: 1 inside the box of the object in slot k at frame f (ids ascending), else 0."""
    dense = tracklets.dense(num_frames)
    sx, sy = width / tracklets.width, height / tracklets.height
    raster = np.zeros((slots, num_frames, height, width), np.float32)
    for k in range(min(slots, len(dense.ids))):
        for f in range(num_frames):
            if not dense.visible[f, k]:
                continue
            x1, y1, x2, y2 = dense.boxes[f, k]
            c1, c2 = int(np.floor(x1 * sx)), int(np.ceil(x2 * sx))
            r1, r2 = int(np.floor(y1 * sy)), int(np.ceil(y2 * sy))
            raster[k, f, max(r1, 0):max(r2, 0), max(c1, 0):max(c2, 0)] = 1.0
    return torch.from_numpy(raster)


def clip_tensors(video: np.ndarray, tracklets, slots: int = SLOTS) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames [3, F, H, W] in [-1, 1], boxes [slots, F, H, W]) for one clip."""
    frames = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2).float() / 127.5 - 1.0
    _, f, h, w = frames.shape
    return frames, box_raster(tracklets, f, h, w, slots)
