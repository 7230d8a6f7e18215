"""Box interpolation between keyframes, evaluated at any (fractional) frame time.

Evaluating at fractional times is what lets ``to_slots`` resample a 25-frame tracklet to a 14-frame model exactly,
without first rounding keyframes to integer frames.

Visibility is a step function: a keyframe's ``visible`` flag holds until the next keyframe, so appear/disappear is a
gap in visibility, never a deleted object. Before its first keyframe an object has not appeared yet; after its last
keyframe it holds the last box and the last visibility.
"""

from __future__ import annotations

import numpy as np

INTERPOLATIONS = ("linear", "hold", "ease-in-out", "catmull-rom")


def _segment(frames: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each time, the index i of the keyframe segment [frames[i], frames[i+1]] and the local parameter u in [0,1].

    Times before the first keyframe get (0, 0) and times after the last get (last-1, 1) (or (0, 0) with one keyframe).
    """
    n = len(frames)
    if n == 1:
        return np.zeros(len(times), dtype=np.int64), np.zeros(len(times), dtype=np.float64)
    idx = np.clip(np.searchsorted(frames, times, side="right") - 1, 0, n - 2)
    start = frames[idx]
    span = frames[idx + 1] - start
    u = np.clip((times - start) / span, 0.0, 1.0)
    return idx, u


def _catmull_rom(frames: np.ndarray, values: np.ndarray, idx: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Cubic Hermite through the keyframes with Catmull-Rom tangents for non-uniform keyframe spacing.

    Args:
        frames: [K] keyframe times, strictly increasing.
        values: [K, D] keyframe values.
        idx, u: segment index and local parameter per evaluated time, [T].
    Returns:
        [T, D] interpolated values.
    """
    k = len(frames)
    # Tangents in value-per-frame: central differences inside, one-sided at the ends.
    tangents = np.empty_like(values)
    tangents[1:-1] = (values[2:] - values[:-2]) / (frames[2:] - frames[:-2])[:, None]
    tangents[0] = (values[1] - values[0]) / (frames[1] - frames[0])
    tangents[-1] = (values[k - 1] - values[k - 2]) / (frames[k - 1] - frames[k - 2])
    span = (frames[idx + 1] - frames[idx])[:, None]
    u = u[:, None]
    u2, u3 = u * u, u * u * u
    h00 = 2 * u3 - 3 * u2 + 1
    h10 = u3 - 2 * u2 + u
    h01 = -2 * u3 + 3 * u2
    h11 = u3 - u2
    return h00 * values[idx] + h10 * span * tangents[idx] + h01 * values[idx + 1] + h11 * span * tangents[idx + 1]


def interpolate_boxes(
    frames: np.ndarray, boxes: np.ndarray, visible: np.ndarray, mode: str, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate one object's track at the given times.

    Args:
        frames: [K] keyframe frame indices, strictly increasing.
        boxes: [K, 4] keyframe boxes, xyxy pixels, x2 > x1 and y2 > y1.
        visible: [K] keyframe visibility flags.
        mode: one of ``INTERPOLATIONS``.
        times: [T] frame times to evaluate at (may be fractional).
    Returns:
        boxes [T, 4] float64 xyxy pixels, visible [T] bool.
    """
    frames = np.asarray(frames, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if mode not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {mode!r}")  # callers validate first; this is a programming error
    idx, u = _segment(frames, times)
    if len(frames) == 1 or mode == "hold":
        # "hold" keeps the previous keyframe's box until the next keyframe, reaching it exactly at that frame.
        at_next = (u >= 1.0) & (len(frames) > 1)
        out = np.where(at_next[:, None], boxes[np.minimum(idx + 1, len(frames) - 1)], boxes[idx])
    elif mode == "catmull-rom" and len(frames) > 2:
        # The centre follows the spline; width and height are interpolated linearly so that a spline overshoot can
        # never turn a box inside out.
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = boxes[:, 2:] - boxes[:, :2]
        c = _catmull_rom(frames, centres, idx, u)
        s = sizes[idx] + (sizes[idx + 1] - sizes[idx]) * u[:, None]
        out = np.concatenate([c - s / 2, c + s / 2], axis=1)
        # Centre -/+ half size rounds; a keyframe must reproduce its box exactly.
        out = np.where((u == 0.0)[:, None], boxes[idx], np.where((u == 1.0)[:, None], boxes[idx + 1], out))
    else:
        if mode == "ease-in-out":
            u = u * u * (3.0 - 2.0 * u)
        # (1-u)a + ub, not a + (b-a)u: the second misses b at u = 1 by rounding and overflows for huge coordinates.
        out = (1.0 - u)[:, None] * boxes[idx] + u[:, None] * boxes[idx + 1]

    # Step visibility: the flag of the last keyframe at or before t; nothing before the first keyframe.
    last_at_or_before = np.searchsorted(frames, times, side="right") - 1
    vis = np.asarray(visible, dtype=bool)[np.clip(last_at_or_before, 0, None)] & (last_at_or_before >= 0)
    return out, vis
