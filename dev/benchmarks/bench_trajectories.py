"""Benchmark of TrackGo point-trajectory building and rendering on CPU.

Scenario: 6 masks on a 1024x576 (W x H) frame, one arrow each, 25 frames (SVD-XT length). Masks span the eq.-10 range
(small, medium, large, plus a non-convex ring and a whole-frame "camera" mask) so every code path is timed.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_trajectories.py [--repeats 30] [--json PATH]

Results (with provenance) go to ``dev/benchmarks/results_trajectories.json`` unless ``--json`` says otherwise.

Prints median / min milliseconds; the build target is < 50 ms median. Exits 0 (timings are reported, not asserted,
because shared CI machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from provenance import add_json_option, write_results

from trackdiffusion.data.trajectories import build_point_trajectories

WIDTH, HEIGHT, FRAMES = 1024, 576, 25
BUILD_TARGET_MS = 50.0


def make_scene() -> tuple[np.ndarray, list[list[list[float]]]]:
    """Six masks [6, H, W] bool and one arrow per mask."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    masks = np.zeros((6, HEIGHT, WIDTH), dtype=bool)
    masks[0] = (xx - 150) ** 2 + (yy - 120) ** 2 < 60**2  # small disc, ~2% -> K = 16
    masks[1, 200:500, 300:700] = True  # ~20% -> K = 32
    masks[2, 50:560, 100:900] = True  # ~69% -> K = 64
    r = np.hypot(xx - 800, yy - 300)
    masks[3] = (r > 150) & (r < 165)  # thin ring: non-convex, exercises the snap
    masks[4] = (xx > 0.6 * yy + 400) & (xx < 0.6 * yy + 520)  # slanted band, ~11%
    masks[5] = True  # whole frame: camera-like motion
    arrows = [
        [[150, 120], [400, 120]],
        [[500, 350], [520, 300], [600, 280], [700, 300]],
        [[500, 300], [480, 300]],
        [[800, 300], [800, 500], [950, 500]],
        [[0, 0], [-200, 100]],
        [[0, 0], [30, 0], [30, 15]],
    ]
    return masks, arrows


def time_ms(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first call pays imports and page faults
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    add_json_option(parser, "trajectories")
    args = parser.parse_args()

    masks, arrows = make_scene()
    traj = build_point_trajectories(masks, arrows, FRAMES, seed=0)
    build = time_ms(lambda: build_point_trajectories(masks, arrows, FRAMES, seed=0), args.repeats)
    render = time_ms(lambda: traj.render(point_size=4), args.repeats)
    tracks = time_ms(traj.to_tracks, args.repeats)

    print(f"TrackGo point trajectories, {masks.shape[0]} masks, {WIDTH}x{HEIGHT}, {FRAMES} frames")
    print(f"  points per mask: {np.bincount(traj.component).tolist()} (P = {traj.num_points})")
    print(f"  CPU: {platform.processor() or platform.machine()}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    results = {}
    for name, ms in (("build", build), ("render (point_size=4)", render), ("to_tracks", tracks)):
        results[name] = {"median_ms": statistics.median(ms), "min_ms": min(ms)}
        print(f"  {name:<22} median {statistics.median(ms):8.2f} ms   min {min(ms):8.2f} ms   ({len(ms)} repeats)")
    verdict = "meets" if statistics.median(build) < BUILD_TARGET_MS else "MISSES"
    print(f"  build {verdict} the {BUILD_TARGET_MS:.0f} ms target")
    write_results(args.json, "trajectories", {"masks": int(masks.shape[0]), "width": WIDTH, "height": HEIGHT,
                                              "frames": FRAMES, "points": int(traj.num_points),
                                              "points_per_mask": np.bincount(traj.component).tolist(),
                                              "repeats": args.repeats, "build_target_ms": BUILD_TARGET_MS},
                  results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
