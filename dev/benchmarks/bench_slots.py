"""Expanding 20 tracklets x 25 frames to model slots (budget: 50 ms on the 2-core CI machine).

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_slots.py [--repeats 30] [--json dev/benchmarks/results_slots.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from provenance import add_json_option, write_results

from trackdiffusion.data.tracklets import INTERPOLATIONS, load

BUDGET_MS = 50.0


def make_document(num_objects: int = 20, num_frames: int = 25, seed: int = 0) -> str:
    """20 objects with 6 keyframes each, every interpolation mode, one hidden span each, some boxes off-canvas."""
    rng = np.random.default_rng(seed)
    objects = []
    for i in range(num_objects):
        frames = sorted(rng.choice(num_frames, size=6, replace=False).tolist())
        keyframes = []
        for k, f in enumerate(frames):
            x, y = rng.uniform(-50, 1000), rng.uniform(-50, 550)
            w, h = rng.uniform(20, 200, size=2)
            keyframes.append({"frame": f, "box": [x, y, x + w, y + h], "visible": k != 3})
        objects.append({"id": i, "label": f"object {i}", "interpolation": INTERPOLATIONS[i % len(INTERPOLATIONS)],
                        "keyframes": keyframes})
    return json.dumps({"version": 1, "width": 1024, "height": 576, "num_frames": num_frames, "objects": objects})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    add_json_option(parser, "slots")
    args = parser.parse_args()
    text = make_document()
    timings = {"load (parse + validate)": [], "to_slots 25 frames": [], "to_slots resampled to 14": [],
               "load + to_slots": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        tracklets = load(text)
        t1 = time.perf_counter()
        tracklets.to_slots(25, 1024, 576)
        t2 = time.perf_counter()
        tracklets.to_slots(14, 1024, 576)
        t3 = time.perf_counter()
        timings["load (parse + validate)"].append(t1 - t0)
        timings["to_slots 25 frames"].append(t2 - t1)
        timings["to_slots resampled to 14"].append(t3 - t2)
        timings["load + to_slots"].append(t2 - t0)
    print(f"20 tracklets x 25 frames (6 keyframes each, all interpolation modes), median of {args.repeats} runs:")
    results = {}
    for name, values in timings.items():
        ms = statistics.median(values) * 1000
        results[name] = {"median_ms": ms, "min_ms": min(values) * 1000, "budget_fraction": ms / BUDGET_MS}
        print(f"  {name:<26} {ms:7.2f} ms   ({ms / BUDGET_MS:.2f} of the {BUDGET_MS:.0f} ms budget)")
    write_results(args.json, "slots", {"objects": 20, "frames": 25, "keyframes_per_object": 6, "canvas": [1024, 576],
                                       "resampled_frames": 14, "repeats": args.repeats, "budget_ms": BUDGET_MS},
                  results)


if __name__ == "__main__":
    main()
