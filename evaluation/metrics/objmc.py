"""ObjMC: how far a point tracker finds the requested trajectories in a video (MotionCtrl / DragAnything / TrackGo).

``ObjMC = mean over (video, point, frame) of ||p_hat - p||_2``, a *flat* mean over every scored point of every video
(videos with more points weigh more), in pixels; the start frame is included (it contributes 0). We also report it
divided by the frame diagonal, because pixel values depend on the resolution.

Scored are the frames where the ground-truth point is visible (object present, not covered by a nearer object,
inside the frame); each point is tracked forward from its first visible frame, starting at its requested position.

Without learned weights the point tracker is OpenCV's pyramidal Lucas-Kanade (:class:`LKPointTracker`), a stand-in
for CoTracker with a non-zero floor even on ground-truth videos: always report ``ObjMC(GT video)`` beside a model.
Any callable ``tracker(video, start_points, start_frames) -> [F, P, 2]`` can replace it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


class LKPointTracker:
    """Pyramidal Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``), frame to frame; a lost point keeps its last position.

    Positions are continuous pixel coordinates (pixel ``i`` covers ``[i, i + 1)``, the tracklet convention); OpenCV's
    pixel-centre coordinates are converted on the way in and out.
    """

    def __init__(self, window: int = 9, levels: int = 2, iterations: int = 30, epsilon: float = 0.01) -> None:
        self.window, self.levels = int(window), int(levels)
        self.criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(iterations), float(epsilon))
        self.name = f"opencv-lk(win={self.window},levels={self.levels})"

    def __call__(self, video: np.ndarray, start_points: np.ndarray, start_frames: np.ndarray) -> np.ndarray:
        video = np.asarray(video)
        n_frames = video.shape[0]
        start_points = np.asarray(start_points, dtype=np.float64).reshape(-1, 2)
        start_frames = np.asarray(start_frames, dtype=np.int64).reshape(-1)
        out = np.full((n_frames, len(start_points), 2), np.nan)
        gray = [cv2.cvtColor(np.ascontiguousarray(fr), cv2.COLOR_RGB2GRAY) for fr in video]
        for t in range(n_frames):
            new = start_frames == t
            out[t, new] = start_points[new]
            active = start_frames < t
            if t == 0 or not active.any():
                continue
            prev = (out[t - 1, active] - 0.5).astype(np.float32).reshape(-1, 1, 2)
            nxt, status, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], prev, None,
                                                      winSize=(self.window, self.window), maxLevel=self.levels - 1,
                                                      criteria=self.criteria)
            moved = nxt.reshape(-1, 2).astype(np.float64) + 0.5
            ok = (status.reshape(-1) == 1) & np.isfinite(moved).all(axis=1)
            out[t, active] = np.where(ok[:, None], moved, out[t - 1, active])
        return out


@dataclass
class ObjMCStats:
    n_points: int = 0  # scored (point, frame) pairs
    sum_px: float = 0.0
    sum_diag: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def objmc_stats(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, diag: float) -> ObjMCStats:
    """Sums of the point errors of one clip: pred, gt [F, P, 2], scored where ``visible`` [F, P] (and pred finite)."""
    scored = np.asarray(visible, dtype=bool) & np.isfinite(pred).all(axis=-1)
    err = np.linalg.norm(np.where(scored[..., None], pred - gt, 0.0), axis=-1)
    total = float(err[scored].sum())
    return ObjMCStats(int(scored.sum()), total, total / diag)


def track_points(tracker, video: np.ndarray, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run a point tracker from each ground-truth point's first visible frame.

    Args:
        points: a :class:`~trackdiffusion.data.trajectories.PointTrajectories` (positions [F, P, 2], visibility [F, P]).

    Returns:
        (predicted [F, P, 2], ground truth [F, P, 2], scored [F, P]); points never visible are not scored.
    """
    gt = np.asarray(points.points, dtype=np.float64)
    vis = np.asarray(points.visibility, dtype=bool)
    ever = vis.any(axis=0)
    start = np.where(ever, vis.argmax(axis=0), gt.shape[0])
    cols = np.flatnonzero(ever)
    pred = np.full(gt.shape, np.nan)
    if len(cols):
        pred[:, cols] = tracker(video, gt[start[cols], cols], start[cols])
    return pred, gt, vis
