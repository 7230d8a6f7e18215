"""Motion from a real clip, measured where the truth is known: SynTrack test clips tracked by the pack's weight-free
trackers (:mod:`trackdiffusion.data.video_tracking`) from what a user would give them.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_track_from_video.py [--clips 64]
        [--json dev/benchmarks/results_track_from_video.json]

- Boxes (Track From Video): each object's true box on its first visible frame, nothing else. Per object, over the
  frames where it is truly visible: mean IoU of the followed box with its true (amodal) box (0 where the tracker
  shows nothing); identity kept: the share of those frames where the followed box overlaps its own object at IoU >= 0.5
  and no other object more; visibility agreement over all frames (a lost object should be hidden, not wild).
- Points (Point Trajectories From Video): SynTrack's analytic points on frame 0, followed with LK and the
  forward-backward check. End-point error in pixels where the point is truly visible and the tracker still follows
  it; the share of truly visible point-frames it still follows; the share of followed point-frames that are truly
  hidden (occluded or gone).

Per-clip values; 95 % bootstrap intervals over clips.
"""

from __future__ import annotations

import argparse
import datetime
import time
from dataclasses import replace

import numpy as np
from provenance import default_json, provenance, write_json

from trackdiffusion.data.tracklets.model import Keyframe, Tracklets
from trackdiffusion.data.video_tracking import follow_points, track_boxes
from trackdiffusion.evaluation.metrics.bootstrap import bootstrap_ci
from trackdiffusion.evaluation.synth import make_split


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = (a[..., 2:] - a[..., :2]).prod(-1) + (b[..., 2:] - b[..., :2]).prod(-1) - inter
    return inter / np.maximum(area, 1e-9)


def first_boxes(truth: Tracklets) -> Tracklets:
    """What the user draws: each object's true box on its first visible frame."""
    dense = truth.dense(clamp=False)
    objects = []
    for j, obj in enumerate(sorted(truth.objects, key=lambda o: o.id)):
        seen = np.flatnonzero(dense.visible[:, j])
        if len(seen):
            f = int(seen[0])
            objects.append(replace(obj, keyframes=(Keyframe(f, tuple(float(v) for v in dense.boxes[f, j])),)))
    return Tracklets(truth.width, truth.height, truth.num_frames, objects, fps=truth.fps)


def box_scores(clip) -> dict:
    tracked, _ = track_boxes(clip.video, first_boxes(clip.tracklets))
    truth, got = clip.tracklets.dense(clamp=False), tracked.dense(clamp=False)
    ious, kept, agree = [], [], []
    for j, oid in enumerate(got.ids):
        t = truth.ids.index(oid)
        shown = truth.visible[:, t]
        if not shown.any():
            continue
        own = np.where(got.visible[:, j], iou(got.boxes[:, j], truth.boxes[:, t]), 0.0)
        others = [np.where(got.visible[:, j] & truth.visible[:, k], iou(got.boxes[:, j], truth.boxes[:, k]), 0.0)
                  for k in range(len(truth.ids)) if k != t]
        best_other = np.max(others, axis=0) if others else np.zeros_like(own)
        ious.append(own[shown].mean())
        kept.append(((own >= 0.5) & (own >= best_other))[shown].mean())
        agree.append((got.visible[:, j] == shown).mean())
    return {"box_mIoU": float(np.mean(ious)), "identity_kept": float(np.mean(kept)),
            "visibility_agreement": float(np.mean(agree))}


def point_scores(clip) -> dict:
    truth = clip.points
    size = float(np.median((clip.boxes[0, :, 2:] - clip.boxes[0, :, :2]).min(-1)[np.isfinite(clip.boxes[0, :, 0])])
                 if np.isfinite(clip.boxes[0, :, 0]).any() else 16.0)
    points, visible = follow_points(clip.video, truth.points[0], size)
    later = slice(1, None)
    both = (visible & truth.visibility)[later]
    error = np.linalg.norm(points - truth.points, axis=-1)[later][both]
    return {"point_EPE_px": float(error.mean()) if error.size else float("nan"),
            "points_followed": float(both.sum() / max(truth.visibility[later].sum(), 1)),
            "points_followed_while_hidden": float((visible & ~truth.visibility)[later].sum()
                                                  / max(visible[later].sum(), 1))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(default_json("track_from_video")), help="results file ('-': none)")
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    clips = make_split("test", "eval", n=args.clips)
    t0 = time.time()
    per_clip = [box_scores(c) | point_scores(c) for c in clips]
    seconds = time.time() - t0
    metrics = {}
    for name in per_clip[0]:
        values = np.array([c[name] for c in per_clip], np.float64)
        values = values[np.isfinite(values)]
        metrics[name] = bootstrap_ci(values, n=args.bootstrap, seed=args.seed)
        print(f"{name}: {metrics[name]['estimate']:.3f} [{metrics[name]['lo']:.3f}, {metrics[name]['hi']:.3f}]")
    print(f"{args.clips} clips in {seconds:.1f} s")
    if args.json != "-":
        write_json(args.json, {"provenance": provenance([], started), "clips": args.clips,
                               "bootstrap": args.bootstrap, "seed": args.seed, "metrics": metrics,
                               "seconds": seconds, "per_clip": per_clip})


if __name__ == "__main__":
    main()
