"""Object persistence: does a generated video keep the first frame's objects, wherever it moves them?

A base image-to-video model cannot know where the objects of its first frame go, so box metrics against the true
tracklets mostly measure luck. What it must do, and what a box adapter on top of it needs, is keep every object as
itself: the same colour, about the same size, in every frame. This metric counts that and ignores positions.

For each ground-truth object visible in frame ``f`` (visible fraction >= ``min_visible`` where known, else present),
the object is *kept* in that frame when the tracker finds its category there with a box whose area is within a
factor ``area_ratio`` of the true box's area. Persistence is the kept fraction over frames 1.. (frame 0 is the
conditioning image); ``per_frame`` gives it frame by frame, frame 0 included, which shows when objects fade.
"""

from __future__ import annotations

import numpy as np

from ...data.errors import InvalidInputError
from .evaluate import _as_tracker, _gt_entry, _videos, eligible_boxes
from .tracks import stack_boxes, tracks_from_tracklets


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]).clip(min=0) * (boxes[..., 3] - boxes[..., 1]).clip(min=0)


def clip_persistence(video: np.ndarray, gt_item, tracker, index: int = 0, *, min_visible: float = 0.3,
                     area_ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(kept [F, G] bool, eligible [F, G] bool) of one video against its ground truth."""
    n_frames, height, width = video.shape[:3]
    tracklets, _, visible_fraction, _, clip_id = _gt_entry(gt_item, video.shape)
    gt_tracks = tracks_from_tracklets(tracklets, n_frames, width, height)
    gt = stack_boxes(gt_tracks, n_frames)  # [G, F, 4]
    eligible = eligible_boxes(gt, visible_fraction, min_visible, source="object_persistence", clip_id=clip_id)
    pred_tracks = tracker(video, index)
    pred = stack_boxes(pred_tracks, n_frames)  # [P, F, 4]
    gt_area, pred_area = _areas(gt).T, _areas(pred).T  # [F, G], [F, P] (NaN where absent)
    kept = np.zeros_like(eligible)
    for g, gt_track in enumerate(gt_tracks):
        same = [p for p, t in enumerate(pred_tracks) if t.label == gt_track.label]
        if not same:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = pred_area[:, same] / gt_area[:, g, None]
            close = (ratio >= 1 / area_ratio) & (ratio <= area_ratio)  # NaN (absent) compares False
        kept[:, g] = close.any(axis=1)
    return kept & eligible, eligible


def object_persistence(videos, gt_items, tracker=None, *, min_visible: float = 0.3, area_ratio: float = 2.0) -> dict:
    """Object persistence of ``videos`` ([F, H, W, 3] uint8 each) against their ground truth (SynTrack clips,
    Tracklets or files; see :func:`~trackdiffusion.evaluation.metrics.evaluate_clips`).

    Returns ``{"persistence": kept fraction over frames 1.., "per_frame": [F] kept fraction per frame,
    "per_clip": [kept fraction over frames 1.. per clip (None where nothing was visible)], "objects": visible
    object-frames counted over frames 1..}``.
    """
    videos = _videos(videos)
    if not videos:
        raise InvalidInputError("no videos to measure.", source="object_persistence")
    if len(videos) != len(gt_items):
        raise InvalidInputError(f"{len(videos)} videos but {len(gt_items)} ground truths.",
                                fix="give one ground truth per video, in the same order.", source="object_persistence")
    if not area_ratio >= 1:
        raise InvalidInputError(f"area_ratio must be >= 1, got {area_ratio!r}.", source="object_persistence")
    tracker = _as_tracker(tracker)
    n_frames = {v.shape[0] for v in videos}
    if len(n_frames) > 1:
        raise InvalidInputError(f"videos have different frame counts {sorted(n_frames)}.",
                                fix="compare videos of one length.", source="object_persistence")
    kept_f, eligible_f, per_clip = 0, 0, []
    for i, (video, item) in enumerate(zip(videos, gt_items)):
        kept, eligible = clip_persistence(video, item, tracker, i, min_visible=min_visible, area_ratio=area_ratio)
        kept_f = kept_f + kept.sum(axis=1)
        eligible_f = eligible_f + eligible.sum(axis=1)
        later = eligible[1:].sum()
        per_clip.append(float(kept[1:].sum() / later) if later else None)
    kept_f, eligible_f = np.asarray(kept_f, dtype=np.float64), np.asarray(eligible_f, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_frame = np.where(eligible_f > 0, kept_f / eligible_f, np.nan)
    later = float(eligible_f[1:].sum())
    return {"persistence": float(kept_f[1:].sum() / later) if later else None,
            "per_frame": [None if np.isnan(x) else float(x) for x in per_frame],
            "per_clip": per_clip, "objects": int(later)}
