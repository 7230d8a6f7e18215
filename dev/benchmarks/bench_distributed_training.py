"""Training throughput, 1 process vs 2 (Hugging Face Accelerate, DDP), at the same global batch, on this machine.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_distributed_training.py [--steps 12] [--skip 2] [--repeats 2]
        [--json dev/benchmarks/results_distributed_training.json]

Each run is the real command: ``python -m trackdiffusion train ...`` for one process, ``accelerate launch --multi_gpu
--num_processes 2 -m trackdiffusion train ...`` for two (on a machine without GPUs: two CPU processes, gloo), with
``OMP_NUM_THREADS`` as given (1: one thread per process, so two processes use two cores). The tiny TrackDiffusion-SVD
UNet on SynTrack, global batch ``--batch``. Throughput = global batch / the median step time in ``loss.csv``
(the main process's wall time per step, all-reduce waits included) over the steps after the first ``--skip``;
start-up (imports, process group) is reported apart. The runs alternate (1, 2, 1, 2, ...) so that a change in the
machine's load hits both alike; the load average around every run is recorded. The two curves' largest relative
loss difference is stored too (the same global batch gives the same losses).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import REPO, add_json_option, write_results

SETTINGS_NOTE = ("measured on this project's shared 2-core CPU while another training job ran (see the load averages): "
                 "the numbers say how the two processes share this machine, not how GPUs scale")


def command(processes: int, out: Path, args: argparse.Namespace) -> list[str]:
    train = ["-m", "trackdiffusion", "train", "trackdiffusion-svd", "--data", "syntrack", "--out", str(out),
             "--tiny", args.tiny, "--size", args.size, "--frames", str(args.frames), "--steps", str(args.steps),
             "--batch", str(args.batch), "--save-every", str(args.steps), "--lr", "1e-3", "--device", "cpu",
             "--no-progress"]
    if processes == 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            *train]


def run_once(processes: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        out = Path(tmp) / "run"
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        done = subprocess.run(command(processes, out, args), cwd=REPO, capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
        if done.returncode != 0:
            raise SystemExit(f"{processes}-process run failed:\n{done.stderr[-3000:]}")
        with open(out / "loss.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    seconds = [float(r["seconds"]) for r in rows]
    step = statistics.median(seconds[args.skip:])
    return {"step_seconds_median": round(step, 4), "samples_per_second": round(args.batch / step, 3),
            "training_seconds": round(sum(seconds), 2), "startup_seconds": round(wall - sum(seconds), 2),
            "losses": [float(r["loss"]) for r in rows], "load_average_1m_before": round(load_before, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run (default 12)")
    parser.add_argument("--skip", type=int, default=2, help="first steps left out of the median (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each (alternating; default 2)")
    parser.add_argument("--batch", type=int, default=4, help="the global batch (default 4)")
    parser.add_argument("--tiny", default="small", choices=("small", "svd-layout"))
    parser.add_argument("--size", default="32x32")
    parser.add_argument("--frames", type=int, default=8)
    add_json_option(parser, "distributed_training")
    args = parser.parse_args()
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for processes in (1, 2):
            result = run_once(processes, args)
            runs[processes].append(result)
            print(f"repeat {repeat + 1}: {processes} process(es): {result['samples_per_second']:.2f} samples/s "
                  f"(median step {result['step_seconds_median']:.3f} s, start-up {result['startup_seconds']:.1f} s, "
                  f"load {result['load_average_1m_before']:.1f})", file=sys.stderr, flush=True)
    summary = {}
    for processes, results in runs.items():
        summary[f"{processes}_process" + ("es" if processes > 1 else "")] = {
            "samples_per_second": round(statistics.median(r["samples_per_second"] for r in results), 2),
            "step_seconds_median": round(statistics.median(r["step_seconds_median"] for r in results), 3),
            "startup_seconds_median": round(statistics.median(r["startup_seconds"] for r in results), 1),
            "runs": results}
    one, two = summary["1_process"], summary["2_processes"]
    worst = max(abs(a - b) / abs(a) for r1, r2 in zip(runs[1], runs[2], strict=True)
                for a, b in zip(r1["losses"], r2["losses"], strict=True))
    results = {**summary, "speedup": round(two["samples_per_second"] / one["samples_per_second"], 2),
               "max_relative_loss_difference": float(f"{worst:.2g}")}
    settings = {"model": "trackdiffusion-svd", "tiny": args.tiny, "size": args.size, "frames": args.frames,
                "global_batch": args.batch, "steps": args.steps, "skipped_steps": args.skip, "repeats": args.repeats,
                "threads_per_process": os.environ.get("OMP_NUM_THREADS", "unset"), "note": SETTINGS_NOTE}
    print(f"1 process {one['samples_per_second']:.2f} samples/s, 2 processes {two['samples_per_second']:.2f} "
          f"samples/s (x{results['speedup']:.2f}); largest relative loss difference {worst:.2g}", file=sys.stderr)
    write_results(args.json, "distributed_training", settings, results)


if __name__ == "__main__":
    main()
