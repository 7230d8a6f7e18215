"""The canvas editors' state, parsed without ComfyUI (the nodes in ``nodes/editor_nodes.py`` only translate).

- The Tracklet Editor's state is exactly our tracklet JSON v1 (see ``trackdiffusion.data.tracklets.model``).
- The Point Trajectory Editor's state is ``{"format": "trackdiffusion.trajectory_editor", "version": 1, "width",
  "height", "components": [{"label", "mask": RLE, "arrow": [[x, y], ...]}, ...]}``. A mask is a row-major run-length
  code ``{"size": [H, W], "counts": [zeros, ones, zeros, ...]}`` (the first run counts zeros and may be 0); an arrow
  has >= 2 points, and a component without one stays still.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from .errors import InvalidInputError
from .limits import check_output
from .tracklets import Tracklets, load

TRAJECTORY_FORMAT = "trackdiffusion.trajectory_editor"


def box_masks(tracklets: Tracklets) -> np.ndarray:
    """One mask per object per frame, object-major: [N * F, H, W] float32 (object n, frame f at n * F + f).

    Objects in id order (the slot order); a pixel is inside when its centre is inside the clamped box; hidden frames
    are empty. With no objects, F empty masks (so downstream nodes always get a batch).
    """
    dense = tracklets.dense()
    n_frames, n_obj = dense.visible.shape
    h, w = tracklets.height, tracklets.width
    out = np.zeros((max(n_obj, 1) * n_frames, h, w), dtype=np.float32)
    for j in range(n_obj):
        for f in range(n_frames):
            if dense.visible[f, j]:
                x1, y1, x2, y2 = np.floor(dense.boxes[f, j] + 0.5).astype(int)
                out[j * n_frames + f, y1:y2, x1:x2] = 1.0
    return out


def rle_decode(rle: object, what: str) -> np.ndarray:
    """Row-major run-length mask ``{"size": [H, W], "counts": [...]}`` -> bool [H, W]."""
    source = "trajectory editor JSON"
    if not isinstance(rle, dict) or not isinstance(rle.get("size"), list) or not isinstance(rle.get("counts"), list):
        raise InvalidInputError(f"{what}: mask must be {{\"size\": [H, W], \"counts\": [...]}}.", source=source)
    size, counts = rle["size"], rle["counts"]
    if (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384 for v in size)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
        raise InvalidInputError(f"{what}: mask size must be two ints in 1..16384 and counts non-negative ints.",
                                source=source)
    h, w = size
    if sum(counts) != h * w:
        raise InvalidInputError(f"{what}: mask runs add up to {sum(counts)} pixels, not {h}x{w}.",
                                fix="re-draw the mask in the editor.", source=source)
    values = np.arange(len(counts)) % 2 == 1  # runs alternate zeros, ones, zeros, ...
    return np.repeat(values, counts).reshape(h, w)


def rle_encode(mask: np.ndarray) -> dict:
    """bool [H, W] -> the run-length dict :func:`rle_decode` reads (used by tests and example workflows)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def parse_editor_tracklets(text: str, width: int, height: int, num_frames: int) -> Tracklets:
    """The editor's JSON (empty text = no objects yet), resampled to the node's width, height and num_frames."""
    if not text or not text.strip():
        return Tracklets(width, height, num_frames, [])
    tracklets = load(text, "json", strict=False)
    if (tracklets.width, tracklets.height, tracklets.num_frames) != (width, height, num_frames):
        # The INT inputs win (an API user may change them without the editor); the motion keeps its shape.
        warnings = tracklets.warnings
        tracklets = tracklets.resample(num_frames, width, height)
        tracklets.warnings = warnings
    return tracklets


def parse_trajectory_state(text: str, width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The trajectory editor's JSON -> masks bool [M, height, width] and one arrow per mask (pixels)."""
    source = "trajectory editor JSON"
    try:
        data = json.loads(text) if text and text.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"not valid JSON ({exc}).", fix="reset the editor or paste a saved state.",
                                source=source) from None
    if not isinstance(data, dict) or data.get("format", TRAJECTORY_FORMAT) != TRAJECTORY_FORMAT:
        raise InvalidInputError(f"expected a {TRAJECTORY_FORMAT} object.", source=source)
    comps = data.get("components", [])
    if isinstance(comps, list):
        check_output("masks output", (len(comps), height, width), 4, source)  # before any mask is decoded
    if not isinstance(comps, list) or not comps:
        raise InvalidInputError("no components yet.", fix="paint a mask on the first frame and draw its arrow "
                                "(one component per moving part).", source=source)
    masks, arrows = [], []
    for i, comp in enumerate(comps):
        if not isinstance(comp, dict):
            raise InvalidInputError(f"component {i} must be an object.", source=source)
        mask = rle_decode(comp.get("mask"), f"component {i}")
        mh, mw = mask.shape
        if (mh, mw) != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        if not mask.any():
            raise InvalidInputError(f"component {i} has an empty mask.", fix="paint its mask, or delete the "
                                    "component.", source=source)
        arrow = comp.get("arrow") or []
        if isinstance(arrow, list) and len(arrow) >= 2:
            pts = np.asarray(arrow, dtype=np.float64) if all(isinstance(p, list) and len(p) == 2 for p in arrow) \
                else None
            if pts is None or not np.isfinite(pts).all():
                raise InvalidInputError(f"component {i}: arrow must be [[x, y], ...] numbers.", source=source)
            pts = pts * [width / mw, height / mh]
        else:
            ys, xs = np.nonzero(mask)
            pts = np.array([[xs.mean(), ys.mean()]] * 2)  # no arrow: a zero-length one, the part stays still
        masks.append(mask)
        arrows.append(pts)
    return np.stack(masks), arrows
