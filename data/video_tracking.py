"""Motion from a real clip: boxes and points followed through a reference video by weight-free trackers built on
the ``opencv-python`` the pack already needs (pyramidal Lucas-Kanade; no ``opencv-contrib``, no model download).

* :func:`track_boxes`: each object's box, from the keyframes a user drew (at least one, usually on frame 0), is
  followed as a median-flow tracker does: feature points inside the box are tracked to the next frame with LK and
  back again; points whose round trip misses by more than a pixel are dropped; the box moves by the median motion
  of the rest and scales by the median ratio of their pairwise distances. With too few reliable points the object
  is *lost*: its frames become a hidden span (never a wild box) until the first frame's template of the object is
  found again with a high correlation. A visible keyframe the user placed overrides the tracker on its frame, and
  tracking restarts from it. Returns the tracklets and a per-frame confidence (the share of points that held).
* :func:`track_points`: point trajectories for TrackGo: K points per first-frame mask (the trajectory builder's
  seeded k-means, :func:`~trackdiffusion.data.trajectories.sampling.sample_mask_points`) tracked with LK and a
  forward-backward check; a point that fails it (or leaves the frame) is invisible from then on.

Frames: ``[F, H, W, 3]`` uint8 RGB (or ``[F, H, W]`` grey); boxes and points in the frames' pixels.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .errors import InvalidInputError

SOURCE = "track from video"
#: a round trip (forward then backward LK) may miss by this much and the point still counts
FB_MAX_PX = 1.0
#: the share of a box's points that must hold for the box to count as tracked in a frame
MIN_KEPT = 0.3
#: correlation at which a lost object's template counts as found again
REACQUIRE_NCC = 0.75
#: largest change of a box's size from one frame to the next (guards against a few points scaling it wildly)
MAX_SCALE_STEP = 1.25


def _grey(frames) -> np.ndarray:
    import cv2

    video = np.asarray(frames)
    if video.ndim == 3:
        video = video[..., None]
    if video.ndim != 4 or video.shape[-1] not in (1, 3) or video.shape[0] < 2:
        raise InvalidInputError(f"a reference clip must be [frames, height, width, 3] with at least 2 frames, got "
                                f"shape {tuple(video.shape)}.", fix="give a video of 2 frames or more.", source=SOURCE)
    if video.dtype != np.uint8:
        video = np.clip(np.asarray(video, np.float32) * (255.0 if video.max() <= 1.0 else 1.0), 0, 255)
        video = video.astype(np.uint8)
    if video.shape[-1] == 1:
        return np.ascontiguousarray(video[..., 0])
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in video])


def _lk_params(size: float) -> dict:
    import cv2

    win = int(np.clip(round(size / 3) | 1, 5, 21))
    return {"winSize": (win, win), "maxLevel": 3,
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}


def _forward_backward(prev: np.ndarray, nxt: np.ndarray, points: np.ndarray, size: float):
    """Points [P, 2] tracked prev -> nxt; (new points [P, 2], held [P] bool)."""
    import cv2

    p0 = points.reshape(-1, 1, 2).astype(np.float32)
    params = _lk_params(size)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, p0, None, **params)
    p0b, st2, _ = cv2.calcOpticalFlowPyrLK(nxt, prev, p1, None, **params)
    fb = np.linalg.norm((p0 - p0b).reshape(-1, 2), axis=1)
    held = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= FB_MAX_PX)
    return p1.reshape(-1, 2), held


def _box_points(grey: np.ndarray, box: np.ndarray, count: int = 10) -> np.ndarray:
    """Points to follow inside ``box``: corners found in it, topped up with a regular grid (flat objects)."""
    import cv2

    h, w = grey.shape
    x1, y1, x2, y2 = box
    inner = np.array([x1 + 0.1 * (x2 - x1), y1 + 0.1 * (y2 - y1), x2 - 0.1 * (x2 - x1), y2 - 0.1 * (y2 - y1)])
    xs = np.linspace(inner[0], inner[2], count)
    ys = np.linspace(inner[1], inner[3], count)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    mask = np.zeros((h, w), np.uint8)
    a, b = np.clip(np.floor(inner[:2]), 0, [w, h]).astype(int), np.clip(np.ceil(inner[2:]), 0, [w, h]).astype(int)
    mask[a[1]:b[1], a[0]:b[0]] = 255
    corners = None
    if mask.any():
        corners = cv2.goodFeaturesToTrack(grey, maxCorners=count * count, qualityLevel=0.01, minDistance=1,
                                          mask=mask)
    points = grid if corners is None else np.concatenate([corners.reshape(-1, 2), grid])
    inside = (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)
    return points[inside].astype(np.float32)


def _median_scale(p0: np.ndarray, p1: np.ndarray, limit: int = 400) -> float:
    n = len(p0)
    if n < 2:
        return 1.0
    i, j = np.triu_indices(n, 1)
    if len(i) > limit:
        pick = np.linspace(0, len(i) - 1, limit).astype(int)
        i, j = i[pick], j[pick]
    d0 = np.linalg.norm(p0[i] - p0[j], axis=1)
    d1 = np.linalg.norm(p1[i] - p1[j], axis=1)
    ok = d0 > 1e-3
    return float(np.median(d1[ok] / d0[ok])) if ok.any() else 1.0


def _template(grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    h, w = grey.shape
    x1, y1, x2, y2 = np.round(box).astype(int)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 3 or y2 - y1 < 3:
        return None
    return grey[y1:y2, x1:x2].copy()


def _find(grey: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Where the template matches best in the frame: (box, normalised correlation)."""
    import cv2

    th, tw = template.shape
    if th > grey.shape[0] or tw > grey.shape[1] or float(template.std()) < 1.0:
        return None
    scores = cv2.matchTemplate(grey, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (x, y) = cv2.minMaxLoc(scores)
    return np.array([x, y, x + tw, y + th], np.float64), float(best)


def track_boxes(frames, tracklets, num_frames: int | None = None, width: int | None = None,
                height: int | None = None):
    """Follow every object of ``tracklets`` (its visible keyframes, in the clip's pixels and frames) through
    ``frames``. Returns ``(tracklets, confidence)``: one keyframe per frame (hidden where the object is not tracked),
    then resampled to ``num_frames`` / ``width`` / ``height`` when given; ``confidence`` [F, N] in [0, 1] at the
    clip's frame count (objects in id order; 0 where not tracked)."""
    from .tracklets.model import Keyframe, Tracklets

    grey = _grey(frames)
    n_frames, h, w = grey.shape
    if (tracklets.width, tracklets.height) != (w, h) or tracklets.num_frames != n_frames:
        tracklets = tracklets.resample(num_frames=n_frames, width=w, height=h)
    objects = sorted(tracklets.objects, key=lambda o: o.id)
    if not objects:
        raise InvalidInputError("no boxes to follow.", fix="draw a box around each object on the reference clip's "
                                "first frame.", source=SOURCE)
    confidence = np.zeros((n_frames, len(objects)), np.float32)
    tracked = []
    for j, obj in enumerate(objects):
        given = {k.frame: np.asarray(k.box, np.float64) for k in obj.keyframes if k.visible}
        if not given:
            raise InvalidInputError("this object has no visible box to start from.", fix="draw its box on a frame "
                                    "where it is visible.", source=SOURCE, obj=obj.id)
        boxes = np.zeros((n_frames, 4))
        visible = np.zeros(n_frames, bool)
        box, points, template = None, None, None
        for f in range(n_frames):
            if f in given:  # the user's box wins; tracking restarts from it
                box = given[f]
                template = _template(grey[f], box)
                visible[f], confidence[f, j] = True, 1.0
            elif box is not None and points is not None and len(points):
                new, held = _forward_backward(grey[f - 1], grey[f], points, min(box[2] - box[0], box[3] - box[1]))
                share = float(held.mean())
                if held.sum() >= 3 and share >= MIN_KEPT:
                    move = np.median(new[held] - points[held], axis=0)
                    scale = float(np.clip(_median_scale(points[held], new[held]), 1 / MAX_SCALE_STEP,
                                          MAX_SCALE_STEP))
                    centre = (box[:2] + box[2:]) / 2 + move
                    half = (box[2:] - box[:2]) / 2 * scale
                    box = np.concatenate([centre - half, centre + half])
                    on_canvas = box[2] > 0 and box[3] > 0 and box[0] < w and box[1] < h
                    visible[f], confidence[f, j] = on_canvas, share if on_canvas else 0.0
                    if not on_canvas:
                        box = None
                else:
                    box = None  # lost: hidden until the template is found again
            elif template is not None:
                found = _find(grey[f], template)
                if found is not None and found[1] >= REACQUIRE_NCC:
                    box = found[0]
                    visible[f], confidence[f, j] = True, found[1]
            if visible[f]:
                boxes[f] = box
                points = _box_points(grey[f], box)
            else:
                points = None
        keyframes = []
        for f in range(n_frames):
            if visible[f]:
                keyframes.append(Keyframe(f, tuple(float(v) for v in boxes[f]), True))
            elif keyframes and keyframes[-1].visible:
                keyframes.append(Keyframe(f, keyframes[-1].box, False))
        if keyframes:
            tracked.append(replace(obj, keyframes=tuple(keyframes), interpolation="linear"))
    result = Tracklets(w, h, n_frames, tracked, fps=tracklets.fps)
    if num_frames is not None or width is not None or height is not None:
        result = result.resample(num_frames=num_frames, width=width, height=height)
    return result, confidence


def track_points(frames, masks, seed: int = 0):
    """TrackGo's point trajectories from a reference clip: K points per first-frame mask ``masks`` [M, H, W] (the
    builder's seeded k-means), followed with LK and a forward-backward check. A point that fails the check or leaves
    the frame is invisible from then on (its position stays where it was last seen)."""
    from .trajectories.builder import PointTrajectories, as_mask_stack
    from .trajectories.sampling import sample_mask_points

    grey = _grey(frames)
    _, h, w = grey.shape
    stack = as_mask_stack(masks)
    if stack.shape[1:] != (h, w):
        raise InvalidInputError(f"the masks are {stack.shape[2]}x{stack.shape[1]} and the clip {w}x{h}.",
                                fix="draw the masks on the clip's first frame (same size).", source=SOURCE)
    starts = [sample_mask_points(m, seed, i) for i, m in enumerate(stack)]
    component = np.concatenate([np.full(len(p), i) for i, p in enumerate(starts)]).astype(np.int64)
    size = float(np.sqrt(stack.sum(axis=(1, 2)).mean()))
    points, visible = follow_points(grey, np.concatenate(starts), size)
    return PointTrajectories(points, visible, component, w, h)


def follow_points(frames, start: np.ndarray, size: float = 16.0) -> tuple[np.ndarray, np.ndarray]:
    """Points ``start`` [P, 2] on frame 0 followed through ``frames``: (points [F, P, 2], visible [F, P]). ``size``:
    the objects' typical size in pixels (sets the LK window)."""
    grey = frames if np.asarray(frames).ndim == 3 and np.asarray(frames).dtype == np.uint8 else _grey(frames)
    n_frames, h, w = grey.shape
    points = np.zeros((n_frames, len(start), 2), np.float32)
    visible = np.zeros((n_frames, len(start)), bool)
    points[0] = start
    visible[0] = (start[:, 0] >= 0) & (start[:, 0] < w) & (start[:, 1] >= 0) & (start[:, 1] < h)
    for f in range(1, n_frames):
        alive = visible[f - 1]
        points[f] = points[f - 1]
        if alive.any():
            new, held = _forward_backward(grey[f - 1], grey[f], points[f - 1][alive], size)
            inside = (new[:, 0] >= 0) & (new[:, 0] < w) & (new[:, 1] >= 0) & (new[:, 1] < h)
            idx = np.flatnonzero(alive)
            points[f, idx[held & inside]] = new[held & inside]
            visible[f, idx[held & inside]] = True
    return points, visible
