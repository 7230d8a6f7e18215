"""KJNodes SplineEditor coordinate strings: ``[{"x":..,"y":..}, ...]`` for one spline or a list of such lists.

Each point is one frame (KJNodes samples ``points_to_sample`` points per spline = frames); each spline is an object.
"""

from __future__ import annotations

import json

import numpy as np

from ...errors import InvalidInputError
from .common import finite_float, keyframes_from_presence, require_canvas, tracklets_dict
from .tracks import _box_size


def parse_kj_points(data, source: str = "KJNodes coordinates") -> list[np.ndarray]:
    """JSON text or parsed list -> one [n_i, 2] float array per spline."""
    if isinstance(data, str):
        try:
            data = json.loads(data.replace("'", '"'))
        except (ValueError, RecursionError) as exc:
            raise InvalidInputError(f"not valid JSON ({exc}).", fix="paste the SplineEditor's coordinates output.",
                                    source=source) from None
    if not isinstance(data, list) or not data:
        raise InvalidInputError("expected a non-empty list of {\"x\", \"y\"} points or of such lists.",
                                source=source)
    splines = [data] if isinstance(data[0], dict) else data
    out = []
    for s, spline in enumerate(splines):
        if not isinstance(spline, list) or not spline:
            raise InvalidInputError(f"spline {s} must be a non-empty list of points.", source=source, obj=s)
        pts = np.zeros((len(spline), 2))
        for i, p in enumerate(spline):
            if not isinstance(p, dict) or "x" not in p or "y" not in p:
                raise InvalidInputError(f"point {i} must be {{\"x\": .., \"y\": ..}}, got {p!r}.", source=source,
                                        obj=s, frame=i)
            pts[i] = (finite_float(p["x"], "x", source, obj=s, frame=i), finite_float(p["y"], "y", source, obj=s,
                                                                                       frame=i))
        out.append(pts)
    return out


def read_kj(data, *, width=None, height=None, box_size=64.0, fps=None, source: str = "KJNodes coordinates") -> dict:
    """Spline coordinates -> our JSON dict (all splines must have the same number of points: one per frame)."""
    width, height = require_canvas(width, height, "KJNodes coordinates", source)
    splines = parse_kj_points(data, source)
    counts = sorted({len(s) for s in splines})
    if len(counts) > 1:
        raise InvalidInputError(
            f"splines have different point counts {counts}; each point is a frame, so they must match.",
            fix="set the same points_to_sample for every spline.", source=source)
    n_frames = counts[0]
    bw, bh = _box_size(box_size, source)
    objects = []
    for s, pts in enumerate(splines):
        boxes = np.concatenate([pts - [bw / 2, bh / 2], pts + [bw / 2, bh / 2]], axis=1)
        objects.append({"id": s, "label": "", "keyframes": keyframes_from_presence(boxes, np.ones(n_frames, bool))})
    return tracklets_dict(width, height, n_frames, 8.0 if fps is None else fps, objects)
