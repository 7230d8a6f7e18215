"""Benchmark of the SynTrack metric stack on CPU: seconds per 128 clips at each tier.

Stages, each timed on the same 128 test clips (median of ``--repeats`` runs):

- render: generating the clips (video, tracklets, point trajectories);
- tracker: the colour-blob detector + tracker;
- boxes: stIoU + frame association (mIoU, CTE, IDSW) given the tracks;
- objmc: Lucas-Kanade point tracking + ObjMC;
- evaluate: ``evaluate_clips`` end to end (tracker + boxes + ObjMC + summaries);
- bootstrap: 1000 resamples of every metric (TrackAP re-accumulated per resample);
- fd-hand: hand-crafted video features of 128 clips + a Frechet distance.

    python dev/benchmarks/bench_metrics.py [--repeats 3] [--clips 128]

Timings are reported, not asserted (shared CI machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from trackdiffusion.evaluation.metrics import (
    ColorBlobTracker,
    HandcraftedVideoFeatures,
    LKPointTracker,
    associate,
    evaluate_clips,
    frechet_distance,
    objmc_stats,
    st_iou,
    summarize,
    track_points,
)
from trackdiffusion.evaluation.metrics.evaluate import evaluate_clip
from trackdiffusion.evaluation.metrics.tracks import stack_boxes, tracks_from_tracklets
from trackdiffusion.evaluation.synth import make_split


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_tier(tier: str, n: int, repeats: int) -> dict[str, float]:
    out = {"render": _time(lambda: make_split("test", tier, n), repeats)}
    clips = make_split("test", tier, n)
    videos = [c.video for c in clips]
    tracker, lk = ColorBlobTracker(), LKPointTracker()
    out["tracker"] = _time(lambda: [tracker(v) for v in videos], repeats)
    preds = [tracker(v) for v in videos]
    gts = [stack_boxes(tracks_from_tracklets(c.tracklets), v.shape[0]) for c, v in zip(clips, videos)]

    def boxes():
        for g, p, c, v in zip(gts, preds, clips, videos):
            pb = stack_boxes(p, v.shape[0])
            st_iou(pb, g)
            eligible = ~np.isnan(g[..., 0]).T & (c.visible_fraction >= 0.3)
            associate(g, pb, [t.track_id for t in p], eligible, 90.0)

    out["boxes"] = _time(boxes, repeats)

    def objmc():
        for c in clips:
            objmc_stats(*track_points(lk, c.video, c.points), 90.0)

    out["objmc"] = _time(objmc, repeats)
    out["evaluate"] = _time(lambda: evaluate_clips(videos, clips, per_clip=False), repeats)
    records = [evaluate_clip(v, c, tracker, i, point_tracker=lk) for i, (v, c) in enumerate(zip(videos, clips))]
    out["bootstrap"] = _time(lambda: summarize(records, bootstrap=1000, seed=0), repeats) - \
        _time(lambda: summarize(records), repeats)
    feats = HandcraftedVideoFeatures()
    out["fd-hand"] = _time(lambda: frechet_distance(feats(videos[: n // 2]), feats(videos[n // 2:])), repeats)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clips", type=int, default=128)
    args = p.parse_args(argv)
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cpus, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {args.clips} clips, median of {args.repeats}")
    stages = None
    rows = {}
    for tier in ("ci", "eval"):
        rows[tier] = bench_tier(tier, args.clips, args.repeats)
        stages = list(rows[tier])
    print(f"{'seconds':<10}" + "".join(f"{s:>11}" for s in stages))
    for tier, r in rows.items():
        print(f"{tier:<10}" + "".join(f"{r[s]:>11.3f}" for s in stages))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
