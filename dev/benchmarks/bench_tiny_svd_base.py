"""The tiny SVD without boxes, measured on the SynTrack test split: its VAE's round trip (the ceiling any model
decoded by it can reach) and the base model's own videos (what it does with a first frame alone).

    OMP_NUM_THREADS=2 python dev/benchmarks/bench_tiny_svd_base.py [--clips 64] [--steps 25] [--weights FOLDER]
        [--vae-log RUN/loss.csv] [--base-log RUN1/loss.csv RUN2/loss.csv ...] [--json dev/benchmarks/results_tiny_svd_base.json]

Every video is scored against its clip's true tracklets with the SynTrack metric stack (colour-blob tracker). The
base model cannot know where objects go, so its tracking scores measure how much of the first frame it keeps and
moves plausibly, not control: they are the floor the TrackDiffusion adapter starts from. Object persistence
(:mod:`trackdiffusion.evaluation.metrics.persistence`) measures the first part alone: the fraction of visible
objects found in frames 1-15 in their colour at about their size, wherever they are; a box adapter can only move
objects the base keeps. Also: frame-0 PSNR (how
faithfully the first frame is kept), the tracks found per true object, and the training runs' steps, wall time and
loss curves (every 250 steps, mean of the preceding 250) read from their loss.csv logs (a step over 10x the median
time was the process paused or starved by another job: it counts at the median and the excess is reported).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import time
from pathlib import Path

import numpy as np
import torch
from provenance import default_json, provenance, write_json

from trackdiffusion.evaluation.metrics import evaluate_clips, object_persistence
from trackdiffusion.evaluation.synth import make_split
from trackdiffusion.models.tiny_svd import files, pipeline
from trackdiffusion.models.tiny_svd.vae import decode, encode
from trackdiffusion.training.latents import _to_float

METRICS = ("TrackAP", "AP50", "AP75", "mIoU", "CTE_px", "IDSW", "n_gt_tracks", "n_pred_tracks")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def curve(path: Path | None, every: int = 250) -> dict | None:
    if path is None or not path.is_file():
        return None
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("step")]
    loss = np.array([float(r["loss"]) for r in rows])
    seconds = np.array([float(r.get("seconds") or 0) for r in rows])
    # a step that took over 10x the median was the process paused (SIGSTOP while the test suite had the CPU) or
    # starved by another job on the 2 cores:
    # counted at the median, and the pause reported
    median = float(np.median(seconds)) if len(seconds) else 0.0
    paused = seconds > 10 * median
    points = [{"step": int(rows[min(i + every, len(rows)) - 1]["step"]), "loss": float(loss[i:i + every].mean())}
              for i in range(0, len(rows), every)]
    return {"steps": int(rows[-1]["step"]), "train_hours": float(np.where(paused, median, seconds).sum() / 3600),
            "paused_seconds_excluded": float((seconds[paused] - median).sum()), "loss_curve": points}


def shipped(folder: Path) -> dict:
    """What the pack ships: the weights' size on disk and the UNet's parameter count."""
    from safetensors import safe_open

    files_ = sorted(folder.glob("*/*.safetensors"))
    with safe_open(str(folder / "unet" / "diffusion_pytorch_model.safetensors"), framework="pt") as handle:
        params = sum(int(np.prod(handle.get_slice(k).get_shape())) for k in handle.keys())  # noqa: SIM118 (not a dict)
    return {"megabytes": sum(f.stat().st_size for f in files_) / 1e6, "unet_parameters_millions": params / 1e6}


def summary(result: dict, persistence: dict) -> dict:
    return {"metrics": {k: result["metrics"].get(k) for k in METRICS}, "ci": result.get("ci"),
            "persistence": persistence["persistence"], "persistence_per_frame": persistence["per_frame"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", type=Path, default=files.WEIGHTS)
    p.add_argument("--vae-log", type=Path)
    p.add_argument("--base-log", type=Path, nargs="+", default=[],
                   help="the base's runs' loss.csv, in training order (each run continues from the one before)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--json", type=Path, default=default_json("tiny_svd_base"))
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    model = files.load(args.weights)
    clips = make_split("test", "eval", n=args.clips)
    round_trip, generated, t0 = [], [], time.time()
    with torch.no_grad():
        for c in clips:
            frames = decode(model.vae, encode(model.vae, _to_float(c.video))).clamp(-1, 1)
            round_trip.append(((frames.movedim(1, -1) + 1) * 127.5).round().to(torch.uint8).numpy())
    vae_s = time.time() - t0
    t0 = time.time()
    for i, c in enumerate(clips):
        generated.append(pipeline.generate(model, c.video[0], steps=args.steps, seed=args.seed + i))
    base_s = time.time() - t0
    videos = {"vae round trip": round_trip, "base, no boxes": generated, "ground truth": [c.video for c in clips]}
    results = {"vae round trip": evaluate_clips(round_trip, clips, bootstrap=args.bootstrap, seed=args.seed,
                                                point_tracker=None),
               "base, no boxes": evaluate_clips(generated, clips, bootstrap=args.bootstrap, seed=args.seed,
                                                point_tracker=None),
               "ground truth": evaluate_clips([c.video for c in clips], clips, point_tracker=None)}
    doc = {
        "provenance": provenance(sorted(args.weights.glob("*/*.safetensors")), started),
        "clips": args.clips, "steps": args.steps, "seed": args.seed, "bootstrap": args.bootstrap,
        "conditions": {name: summary(r, object_persistence(videos[name], clips)) for name, r in results.items()},
        "vae_round_trip_psnr_db": float(np.mean([psnr(r, c.video) for r, c in zip(round_trip, clips)])),
        "base_frame0_psnr_db": float(np.mean([psnr(g[0], c.video[0]) for g, c in zip(generated, clips)])),
        "base_last_frame_psnr_db": float(np.mean([psnr(g[-1], c.video[-1]) for g, c in zip(generated, clips)])),
        "seconds": {"vae_round_trip": vae_s, "base_generate": base_s},
        "training": {"vae": curve(args.vae_log), "base_runs": [curve(log) for log in args.base_log]},
        "shipped": shipped(args.weights),
    }
    for name, r in doc["conditions"].items():
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                      for k, v in r["metrics"].items()) + f", persistence {r['persistence']:.3f}")
    print({k: v for k, v in doc.items() if k.endswith("_db")})
    if str(args.json) != "-":
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
