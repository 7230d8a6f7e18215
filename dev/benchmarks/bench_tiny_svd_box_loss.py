"""Does a trained TrackDiffusion adapter use WHERE its boxes are? The tiny SVD's denoising loss with the adapter on
held-out draws of the SynTrack training stream, with each clip's true boxes, another clip's boxes (shuffled: same
count and kind of boxes, wrong places) and no boxes (every slot null, TrackDiffusion's no-box state), at fixed noise
levels; the same clips, noise, sigma and conditioning in every condition. A model that reads only that boxes exist
scores true = shuffled < none; one that reads their positions, true < shuffled.

    OMP_NUM_THREADS=2 python dev/benchmarks/bench_tiny_svd_box_loss.py [--adapter FILE] [--stage 1|2] [--batches 6]
        [--json dev/benchmarks/results_tiny_svd_box_loss.json]

``--stage 2`` (default) scores the clean clips (what sampling must produce); ``--stage 1`` the stage-1 targets (box
outlines drawn in). The adapter is read as ``trackdiffusion train --init`` reads it (a converted adapter or a
training export). Clips: the stream's draws for seed 12345 (the shipped adapter trained on seeds 4 and 5), batches of
8 clips of 16 frames at 64x64, no conditioning dropout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from provenance import default_json, provenance, write_json

from trackdiffusion.models.tiny_svd import files
from trackdiffusion.training.config import TrainConfig
from trackdiffusion.training.trainer import Trainer

SIGMAS = (0.5, 2.0, 8.0)
CONDITIONS = ("true boxes", "shuffled boxes", "no boxes")
SEED = 12345


def condition_batch(batch: dict, condition: str) -> dict:
    out = dict(batch)
    if condition == "shuffled boxes":  # clip i gets clip i+1's boxes and presence
        out["boxes"], out["masks"] = batch["boxes"].roll(-1, 0), batch["masks"].roll(-1, 0)
    elif condition == "no boxes":
        out["masks"] = torch.zeros_like(batch["masks"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", type=Path, default=files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER)
    p.add_argument("--stage", type=int, choices=(1, 2), default=2)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--json", type=Path, default=default_json("tiny_svd_box_loss"))
    args = p.parse_args()
    if not args.adapter.is_file():
        raise SystemExit(f"error: {args.adapter}: no such adapter file. Train one "
                         "(dev/train_tiny_svd_trackdiffusion.sh) or pass --adapter FILE.")
    weights = files.WEIGHTS
    cfg = TrainConfig(model="trackdiffusion-svd", data="syntrack", out=str(Path("/nonexistent")),
                      base=str(weights / "unet"), vae=str(weights / "vae"), image_encoder=str(weights / "image_encoder"),
                      init=str(args.adapter), stage=args.stage, size="64x64", frames=16, batch=8, seed=SEED,
                      progress=False)
    trainer = Trainer(cfg)
    trainer.unet.eval()
    losses = {c: {s: [] for s in SIGMAS} for c in CONDITIONS}
    for step in range(args.batches):
        batch = trainer.prepare(trainer.clips(step), step, dropout=False)
        for sigma in SIGMAS:
            batch["sigma"] = torch.full((cfg.batch,), sigma)
            for condition in CONDITIONS:
                losses[condition][sigma].append(trainer.evaluate(condition_batch(batch, condition))["loss"])
    table = {}
    for sigma in SIGMAS:
        true, shuffled, none = (np.array(losses[c][sigma]) for c in CONDITIONS)
        table[str(sigma)] = {
            **{c: float(np.mean(losses[c][sigma])) for c in CONDITIONS},
            "true - shuffled": float(np.mean(true - shuffled)),
            "batches true < shuffled": int((true < shuffled).sum()),
            "true - none": float(np.mean(true - none)),
            "batches true < none": int((true < none).sum()),
        }
        row = table[str(sigma)]
        print(f"sigma {sigma}: true {row['true boxes']:.4f}, shuffled {row['shuffled boxes']:.4f}, none "
              f"{row['no boxes']:.4f} (true < shuffled in {row['batches true < shuffled']}/{args.batches} batches)")
    doc = {"provenance": provenance([args.adapter]), "adapter": str(args.adapter.name), "stage_targets": args.stage,
           "clips": args.batches * cfg.batch, "batches": args.batches, "seed": SEED, "sigmas": list(SIGMAS),
           "per_batch": {c: {str(s): v for s, v in losses[c].items()} for c in CONDITIONS}, "loss": table}
    if str(args.json) != "-":
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
