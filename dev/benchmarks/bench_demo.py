"""Wall time of one demo-model run on the CPU: what the TrackDiffusion Demo node and ``trackdiffusion demo`` do per
clip.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_demo.py [--repeats 7] [--json dev/benchmarks/results_demo.json]

Times ``trackdiffusion.models.demo.sampling.generate`` (box conditioning + DDIM sampling + conversion to uint8 frames) on the
first frame and tracklets of SynTrack test clip 20000 (the demo's default), 16 frames at 64x64, 20 steps, after one
warm-up run; loading the committed weights is timed separately. One thread unless OMP_NUM_THREADS says otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from provenance import add_json_option, write_results

from trackdiffusion.evaluation.synth import make_clip
from trackdiffusion.models.demo.cli import WEIGHTS, load_demo_model
from trackdiffusion.models.demo.sampling import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clip", type=int, default=20000)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    add_json_option(parser, "demo")
    args = parser.parse_args()
    clip = make_clip(args.clip, "eval")
    t0 = time.perf_counter()
    model = load_demo_model()
    load_s = time.perf_counter() - t0
    first = clip.video[0]
    generate(model, first, clip.tracklets, num_frames=args.frames, steps=args.steps, seed=0)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        video = generate(model, first, clip.tracklets, num_frames=args.frames, steps=args.steps, seed=0)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"demo model, clip {args.clip}, {args.frames} frames at {first.shape[1]}x{first.shape[0]}, {args.steps} "
          f"steps, {torch.get_num_threads()} thread(s): load {load_s:.2f} s, run median {median:.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {args.repeats} runs)")
    settings = {"clip": args.clip, "frames": args.frames, "height": int(first.shape[0]), "width": int(first.shape[1]),
                "steps": args.steps, "seed": 0, "repeats": args.repeats, "threads": torch.get_num_threads(),
                "output_shape": list(video.shape)}
    write_results(args.json, "demo", settings, {"run_s": median, "run_min_s": min(times), "run_max_s": max(times),
                                                "runs_s": times, "load_s": load_s}, weights=[WEIGHTS])


if __name__ == "__main__":
    main()
