"""Shared helpers of the importers: per-frame presence -> keyframes, strict number parsing."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError
from ..model import FORMAT_NAME, FORMAT_VERSION, MAX_CANVAS, MAX_COORD, bounded_int, bounded_number, default_color


def keyframes_from_presence(boxes: np.ndarray, present: np.ndarray, mot: dict | None = None) -> list[dict]:
    """One object's per-frame boxes -> keyframe dicts of our JSON format.

    Args:
        boxes: [F, 4] xyxy pixels (rows where ``present`` is False are ignored).
        present: [F] bool.
        mot: frame -> the MOT columns after the box, kept on that frame's keyframe (``"mot"``).
    Every present frame becomes a visible keyframe (so the boxes round-trip exactly); the first absent frame after a
    present one becomes a hidden keyframe holding the last box, which encodes a disappearance as a visibility gap.
    """
    keyframes = []
    last_box = None
    for f in range(len(present)):
        if present[f]:
            last_box = [float(v) for v in boxes[f]]
            keyframes.append({"frame": f, "box": last_box, "visible": True})
            if mot and f in mot:
                keyframes[-1]["mot"] = list(mot[f])
        elif last_box is not None and keyframes[-1]["visible"]:
            keyframes.append({"frame": f, "box": last_box, "visible": False})
    return keyframes


def tracklets_dict(width: int, height: int, num_frames: int, fps: float, objects: list[dict]) -> dict:
    """Our JSON dict around importer-built objects (each with id, label, keyframes); colours by slot order."""
    objects = sorted(objects, key=lambda o: o["id"])
    for index, obj in enumerate(objects):
        obj.setdefault("color", default_color(index))
        obj.setdefault("interpolation", "linear")
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "width": width, "height": height,
            "num_frames": num_frames, "fps": fps, "objects": objects}


def require_canvas(width, height, what: str, source: str) -> tuple[int, int]:
    for name, value in (("width", width), ("height", height)):
        if value is None:
            raise InvalidInputError(
                f"{what} carry no canvas size.", fix="pass width and height (CLI: --width W --height H).",
                source=source,
            )
    return (bounded_int(width, "width", source, 1, MAX_CANVAS), bounded_int(height, "height", source, 1, MAX_CANVAS))


def finite_float(value, what: str, source: str, **where) -> float:
    """A number (or numeric text) within +-MAX_COORD, else a clear error; never raises anything else."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInputError(f"{what} must be a number, got {value!r:.60}.", source=source, **where) from None
    number = bounded_number(value, MAX_COORD)
    if number is None:
        raise InvalidInputError(f"{what} must be a finite number within +-{MAX_COORD:g}, got {value!r:.60}.",
                                source=source, **where)
    return float(number)


def fmt_number(v: float) -> str:
    """Shortest text that reads back to the same float, without a trailing '.0' for whole numbers."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))
