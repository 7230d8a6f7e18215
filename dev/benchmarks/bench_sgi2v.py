"""SG-I2V box guidance: wall time and peak memory of a guided SVD sampling run against the same run unguided, on
ComfyUI's SVD UNet with random weights (the guidance code runs exactly as in a workflow, under inference_mode).

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_sgi2v.py          # tiny width, 4 frames, 128x128, 10 steps: CPU guard
    python dev/benchmarks/bench_sgi2v.py --real                      # 576x1024, 14 frames, 50 euler steps: on a GPU
    python dev/benchmarks/bench_sgi2v.py --real --memory-budget-gb 24   # plan activation checkpointing for a 24 GB card

Defaults are SG-I2V's: steps 5..20 of 50 (fractions 0.1..0.4) with 5 AdamW iterations each, layers
output_blocks.7.1 and 8.1. Each variant runs in its own process, so peak memory is that variant's alone: on CUDA the
allocator's peak (max_memory_allocated), on CPU the process's peak RSS above its size before the first sampling.
Goal on a GPU at the real size: guided <= 2x the unguided time and <= 24 GB. Needs a ComfyUI checkout (found as the
tests find it). Results go to ``dev/benchmarks/results_sgi2v.json`` (``results_sgi2v_real.json`` with ``--real``) unless
``--json`` says otherwise; ``bench_sgi2v_flops.py`` estimates the real-size ratio from FLOP counts without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(args) -> None:
    sys.path.insert(0, HERE)
    from comfy_svd_harness import build_svd, setup_comfyui, svd_inputs

    setup_comfyui()
    import comfy.sample

    from trackdiffusion.data.tracklets import load
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    cuda = torch.cuda.is_available()
    model, context = build_svd(args.real)
    w, h, frames = args.width, args.height, args.frames
    objects = [{"id": 1, "keyframes": [{"frame": 0, "box": [w * 0.1, h * 0.2, w * 0.35, h * 0.6]},
                                       {"frame": frames - 1, "box": [w * 0.55, h * 0.3, w * 0.85, h * 0.75]}]},
               {"id": 2, "keyframes": [{"frame": 0, "box": [w * 0.6, h * 0.05, w * 0.8, h * 0.3]},
                                       {"frame": frames - 1, "box": [w * 0.3, h * 0.1, w * 0.45, h * 0.3]}]}]
    tracklets = load({"version": 1, "width": w, "height": h, "num_frames": frames, "objects": objects})
    report: list = []
    variant = model
    if args.child == "guided":
        variant = apply_sgi2v(model, tracklets, iterations=args.iterations, checkpointing=args.checkpointing,
                              memory_budget_gb=args.memory_budget_gb, report=report)

    noise, positive, negative = svd_inputs(frames, h, w, context, fps=6)

    def run(m, steps):
        with torch.inference_mode():  # as ComfyUI executes nodes: the model is loaded to the device in here
            return comfy.sample.sample(m, noise, steps, 2.5, "euler", "karras", positive, negative,
                                       torch.zeros_like(noise), disable_pbar=True, seed=0)

    base_rss = _rss_bytes()
    run(model, 1)  # warm-up: loads the model
    times = []
    for _ in range(args.repeats):
        report.clear()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = run(variant, args.steps)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if cuda else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
    losses = [(r["losses"][0], r["losses"][-1]) for r in report if r["losses"]]
    print(json.dumps({"time": statistics.median(times), "peak": peak, "finite": bool(torch.isfinite(out).all()),
                      "guided_steps": len(report), "losses": losses,
                      "device": torch.cuda.get_device_name() if cuda else "cpu"}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", action="store_true", help="the real SVD width at 576x1024, 14 frames, 50 steps")
    parser.add_argument("--frames", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, help="timed runs per variant process (median)")
    parser.add_argument("--checkpointing", choices=("auto", "all", "off"), default="auto")
    parser.add_argument("--memory-budget-gb", type=float, help="device memory the guided run may use (default: free)")
    parser.add_argument("--json", help="results file (default: dev/benchmarks/results_sgi2v.json, results_sgi2v_real.json "
                        "with --real; '-' = none)")
    parser.add_argument("--child", choices=("guided", "unguided"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    real_defaults = (14, 576, 1024, 50, 1) if args.real else (4, 128, 128, 10, 3)
    for name, value in zip(("frames", "height", "width", "steps", "repeats"), real_defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.child:
        child(args)
        return
    sys.path.insert(0, HERE)
    from provenance import default_json, write_results

    if args.json is None:
        args.json = str(default_json("sgi2v_real" if args.real else "sgi2v"))
    results = {}
    for variant in ("unguided", "guided"):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", variant, "--json", "-"] + sys.argv[1:]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            sys.exit(f"{variant} run failed:\n{proc.stderr[-4000:]}")
        results[variant] = json.loads(lines[-1])
    u, g = results["unguided"], results["guided"]
    unit, scale = ("GiB", 2**30)
    print(f"SG-I2V guidance ({'real width' if args.real else 'tiny width, 32 channels'}): {args.frames} frames, "
          f"{args.width}x{args.height}, {args.steps} euler steps, {g['guided_steps']} guided x {args.iterations} "
          f"iterations, checkpointing {args.checkpointing}"
          f"{'' if args.memory_budget_gb is None else f' (budget {args.memory_budget_gb:g} GB)'}, {u['device']}, "
          f"median of {args.repeats}")
    mem = "peak allocated" if u["device"] != "cpu" else "peak RSS above baseline"
    for name, r in (("unguided", u), ("guided", g)):
        print(f"  {name:<9} {r['time']:9.2f} s   {mem} {r['peak'] / scale:7.3f} {unit}   finite={r['finite']}")
    print(f"  ratio     time x{g['time'] / u['time']:.2f}   memory x{g['peak'] / max(u['peak'], 1):.2f}")
    if g["losses"]:
        first, last = g["losses"][0], g["losses"][-1]
        print(f"  alignment loss (random weights): first guided step {first[0]:.4g} -> {first[1]:.4g}, last {last[0]:.4g} -> "
              f"{last[1]:.4g}")
    if args.real and u["device"] != "cpu":
        ok_t, ok_m = g["time"] <= 2 * u["time"], g["peak"] <= 24e9
        print(f"  goal: time <= 2x {'met' if ok_t else 'MISSED'}, peak <= 24 GB {'met' if ok_m else 'MISSED'}")
    settings = {"real_width": args.real, "model_channels": 320 if args.real else 32, "frames": args.frames,
                "height": args.height, "width": args.width, "steps": args.steps, "sampler": "euler, karras, cfg 2.5",
                "iterations": args.iterations, "checkpointing": args.checkpointing,
                "memory_budget_gb": args.memory_budget_gb, "repeats": args.repeats,
                "memory": "peak allocated (CUDA)" if u["device"] != "cpu" else "peak RSS above the baseline (CPU)",
                "weights": "random (seed 0)"}
    ratio = {"time": g["time"] / u["time"], "memory": g["peak"] / max(u["peak"], 1)}
    write_results(args.json, "sgi2v", settings, {"unguided": u, "guided": g, "ratio": ratio})


if __name__ == "__main__":
    main()
