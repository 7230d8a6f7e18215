"""ComfyUI core ``TRACKS``: ``{"track_path": [F, N, 2] pixels, "track_visibility": [F, N] bool}``.

A track is a point; importing makes it a box of a given size centred on the point, exporting takes box centres.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import InvalidInputError
from ..model import MAX_COORD, MAX_FRAMES
from .common import keyframes_from_presence, require_canvas, tracklets_dict


def _as_array(value, what: str, source: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInputError(f"{what} must be a numeric array.", source=source) from None
    return arr


def read_tracks(tracks, *, width=None, height=None, box_size=64.0, fps=None, source: str = "TRACKS") -> dict:
    """TRACKS dict -> our JSON dict. ``box_size``: a number or (w, h) in pixels."""
    width, height = require_canvas(width, height, "TRACKS", source)
    if not isinstance(tracks, dict) or "track_path" not in tracks:
        raise InvalidInputError("expected a dict with \"track_path\" [F, N, 2] (and \"track_visibility\" [F, N]).",
                                source=source)
    path = _as_array(tracks["track_path"], "track_path", source)
    if path.ndim == 4 and path.shape[0] == 1:
        path = path[0]  # WanMove batches carry a leading batch axis of 1
    if path.ndim != 3 or path.shape[2] != 2 or path.shape[0] < 1 or path.shape[1] < 1:
        raise InvalidInputError(f"track_path must have shape [frames, tracks, 2], got {list(path.shape)}.",
                                source=source)
    if not (np.isfinite(path).all() and (np.abs(path) <= MAX_COORD).all()):
        raise InvalidInputError(f"track_path has coordinates that are not finite or beyond +-{MAX_COORD:g} px.",
                                source=source)
    if path.shape[0] > MAX_FRAMES:
        raise InvalidInputError(f"track_path has {path.shape[0]} frames; at most {MAX_FRAMES} are supported.",
                                source=source)
    n_frames, n_tracks = path.shape[:2]
    vis_raw = tracks.get("track_visibility")
    if vis_raw is None:
        visible = np.ones((n_frames, n_tracks), dtype=bool)
    else:
        visible = _as_array(vis_raw, "track_visibility", source)
        if visible.ndim == 3 and visible.shape[0] == 1:
            visible = visible[0]
        if visible.shape != (n_frames, n_tracks):
            raise InvalidInputError(f"track_visibility has shape {list(visible.shape)} but track_path has "
                                    f"{n_frames} frames and {n_tracks} tracks.", source=source)
        visible = visible > 0.5
    bw, bh = _box_size(box_size, source)
    objects = []
    for n in range(n_tracks):
        c = path[:, n]
        boxes = np.concatenate([c - [bw / 2, bh / 2], c + [bw / 2, bh / 2]], axis=1)
        if visible[:, n].any():
            objects.append({"id": n, "label": "", "keyframes": keyframes_from_presence(boxes, visible[:, n])})
    return tracklets_dict(width, height, n_frames, 8.0 if fps is None else fps, objects)


def _box_size(box_size, source: str) -> tuple[float, float]:
    try:
        size = np.broadcast_to(np.asarray(box_size, dtype=np.float64), (2,))
    except (TypeError, ValueError):
        raise InvalidInputError(f"box_size must be a number or (width, height), got {box_size!r}.",
                                source=source) from None
    if not np.isfinite(size).all() or (size <= 0).any() or (size > MAX_COORD).any():
        raise InvalidInputError(f"box_size must be positive, got {box_size!r}.", source=source)
    return float(size[0]), float(size[1])


def write_tracks(tracklets, num_frames: int | None = None) -> dict:
    """Our tracklets -> core TRACKS (box centres, unclamped; visibility from the tracklets), as torch tensors."""
    dense = tracklets.dense(num_frames, clamp=False)
    centres = (dense.boxes[..., :2] + dense.boxes[..., 2:]) / 2
    return {"track_path": torch.from_numpy(centres.astype(np.float32)),
            "track_visibility": torch.from_numpy(dense.visible.copy())}
