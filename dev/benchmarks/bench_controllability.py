"""Measured controllability of the embedded demo model on the SynTrack test split: one command, every table.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_controllability.py [--clips 64] [--no-ablation] [--no-guidance]
        [--only "NAME,NAME"] [--json dev/benchmarks/results_controllability_demo.json]

The committed results: ``--no-guidance --json dev/benchmarks/results_controllability_demo.json`` (about 20 minutes on
one thread) and ``--only "no boxes,true boxes,no boxes + SG-I2V guidance,true boxes + SG-I2V guidance" --json
dev/benchmarks/results_guidance_demo.json`` (about 40). The file holds the provenance (``provenance.py``: commit,
command, the weights' sha256) and, under ``derived``, the figures computed from the stored ones (:func:`derived`).

Conditions, all on the same clips, same first frames, same noise, every video scored against its clip's TRUE
tracklets with the SynTrack metric stack (so a model that ignores its boxes scores the same everywhere):

- controllability: the clip's true tracklets; tracklets shuffled across clips (clip i gets clip i+1's boxes, its
  appearance and categories then come from where those boxes sit in clip i's first frame); no boxes;
- ablation of the conditioning, in the shape of TrackDiffusion's Table 2, at inference time on the one trained model
  (it was trained with each part dropped at random, so every subset is a mode it knows): box masks only; + category
  (instance tokens); + pasted appearance (instance features); all three (= true boxes);
- training-free guidance (issue 8): SG-I2V's latent optimisation (:mod:`trackdiffusion.models.guidance.sgi2v.demo_model`) pulling the
  box-free model along the true tracklets, and on top of the true boxes.

Intervals: 95 % bootstrap over clips; differences are paired (same resamples). Claim an ordering only where the
interval of the difference excludes 0.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch
from provenance import default_json, provenance, write_json

from trackdiffusion.evaluation.metrics import evaluate_clips, paired_bootstrap
from trackdiffusion.evaluation.synth import make_split
from trackdiffusion.models.demo.cli import WEIGHTS, load_demo_model
from trackdiffusion.models.demo.data import BoxConditioning, box_conditioning
from trackdiffusion.models.demo.sampling import sample
from trackdiffusion.models.guidance.sgi2v import SGI2VConfig
from trackdiffusion.models.guidance.sgi2v.demo_model import sample_guided

METRICS = ("TrackAP", "AP50", "AP75", "mIoU", "CTE_px", "IDSW")
#: SG-I2V settings for the demo model (chosen on the val split; the 20-step band 0.1-0.4 is SG-I2V's default)
GUIDANCE = SGI2VConfig(iterations=5, lr=0.21)
#: the controllability goal: AP50 with the true boxes at least this, and at least GOAL_MARGIN above shuffled boxes
GOAL_AP50, GOAL_MARGIN = 0.5, 0.4


def derived(doc: dict) -> dict:
    """Figures computed from a results file's stored ones (the README quotes them; the README test recomputes them):
    total generation minutes, the guidance's cost against plain sampling, and whether the goal is met."""
    conditions = doc["conditions"]
    out: dict = {"generate_minutes": sum(c["generate_s"] for c in conditions.values()) / 60}
    cost = {base: conditions[f"{base} + SG-I2V guidance"]["generate_s"] / conditions[base]["generate_s"]
            for base in ("no boxes", "true boxes") if base in conditions and f"{base} + SG-I2V guidance" in conditions}
    if cost:
        out["guidance_cost_x"] = cost
    if "true boxes" in conditions and "shuffled boxes" in conditions:
        true_ap50 = conditions["true boxes"]["metrics"]["AP50"]
        margin = doc["differences"]["true boxes - shuffled boxes"]["AP50"]["estimate"]
        out["goal"] = {"AP50_true_at_least": GOAL_AP50, "AP50_over_shuffled_at_least": GOAL_MARGIN,
                       "met": bool(true_ap50 >= GOAL_AP50 and margin >= GOAL_MARGIN)}
    return out


def conditioning(model, tracklets, first, num_frames: int, parts=("masks", "categories", "appearance")):
    """The model's conditioning from ``tracklets`` (None: no boxes), keeping only ``parts``."""
    _, h, w = first.shape
    if tracklets is None:
        return BoxConditioning.empty(model.slots, num_frames, h, w)
    full = box_conditioning(tracklets, first, num_frames, model.slots)
    return BoxConditioning(full.masks, full.categories if "categories" in parts else torch.zeros_like(full.categories),
                           full.appearance if "appearance" in parts else torch.zeros_like(full.appearance))


def generate_all(model, clips, box_sources, steps: int, seed: int, parts=("masks", "categories", "appearance"),
                 guide=None, batch: int = 8):
    videos = []
    for start in range(0, len(clips), batch):
        part = clips[start:start + batch]
        first = torch.stack([torch.from_numpy(c.video[0]).permute(2, 0, 1).float() / 127.5 - 1 for c in part])
        f = part[0].video.shape[0]
        cond = BoxConditioning.stack([conditioning(model, t, im, f, parts)
                                      for t, im in zip(box_sources[start:start + batch], first)])
        generator = torch.Generator().manual_seed(seed + start)
        if guide is None:
            out = sample(model, first, cond, f, steps, generator)
        else:
            out = sample_guided(model, first, cond, [c.tracklets for c in part], f, steps, guide, generator)
        videos += [((v.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8).numpy() for v in out]
    return videos


def print_table(title: str, results: dict, names) -> None:
    names = [n for n in names if n in results]
    if not names:
        return
    print(f"\n{title}")
    print("| condition | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for name in names:
        res = results[name]
        cells = []
        for m in METRICS:
            v = res["metrics"].get(m)
            ci = (res.get("ci") or {}).get(m)
            cells.append("-" if v is None else (f"{v:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]" if ci and m != "IDSW"
                                                else f"{v:.3f}" if m != "IDSW" else f"{int(v)}"))
        print(f"| {name} | " + " | ".join(cells) + " |")


def compare(results: dict, a: str, b: str, n: int, seed: int, diffs: dict) -> None:
    if a not in results or b not in results:
        return
    d = paired_bootstrap(results[a], results[b], ("TrackAP", "AP50", "mIoU"), n=n, seed=seed)
    diffs[f"{a} - {b}"] = d
    print(f"{a} - {b}: " + "; ".join(f"{m} {v['estimate']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}]"
                                     for m, v in d.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--weights", type=Path, help="demo weights (default: the committed ones)")
    parser.add_argument("--no-ablation", action="store_true")
    parser.add_argument("--no-guidance", action="store_true")
    parser.add_argument("--only", help="comma-separated condition names to run (default: all)")
    parser.add_argument("--json", type=Path, default=default_json("controllability_demo"),
                        help="results file (default: dev/benchmarks/results_controllability_demo.json; '-' = none)")
    args = parser.parse_args()
    started = time.time()
    started_utc = datetime.datetime.now(datetime.timezone.utc)
    weights = args.weights or WEIGHTS
    model = load_demo_model(weights)
    clips = make_split("test", "eval", n=args.clips)
    true = [c.tracklets for c in clips]
    runs = {"true boxes": {"sources": true}, "shuffled boxes": {"sources": true[1:] + true[:1]},
            "no boxes": {"sources": [None] * len(clips)}}
    if not args.no_ablation:
        runs |= {"box masks only": {"sources": true, "parts": ("masks",)},
                 "masks + category": {"sources": true, "parts": ("masks", "categories")},
                 "masks + appearance": {"sources": true, "parts": ("masks", "appearance")}}
    if not args.no_guidance:
        runs |= {"no boxes + SG-I2V guidance": {"sources": [None] * len(clips), "guide": GUIDANCE},
                 "true boxes + SG-I2V guidance": {"sources": true, "guide": GUIDANCE}}
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in runs]
        if unknown:
            parser.error(f"unknown conditions {unknown}; choose from {list(runs)}")
        runs = {n: r for n, r in runs.items() if n in wanted}
    results, seconds = {}, {}
    for name, run in runs.items():
        t0 = time.time()
        videos = generate_all(model, clips, run["sources"], args.steps, args.seed, run.get("parts", (
            "masks", "categories", "appearance")), run.get("guide"))
        seconds[name] = time.time() - t0
        results[name] = evaluate_clips(videos, clips, bootstrap=args.bootstrap, seed=args.seed)
        print(f"{name}: AP50 {results[name]['metrics']['AP50']:.3f} ({seconds[name]:.0f} s to generate)", flush=True)
    print(f"\nDemo model on SynTrack test (first {args.clips} clips, 64x64x16, DDIM {args.steps}), scored against the "
          f"true tracklets; 95 % bootstrap CI over clips ({time.time() - started:.0f} s in all)")
    diffs: dict = {}
    print_table("Controllability", results, ("true boxes", "shuffled boxes", "no boxes"))
    compare(results, "true boxes", "shuffled boxes", args.bootstrap, args.seed, diffs)
    compare(results, "true boxes", "no boxes", args.bootstrap, args.seed, diffs)
    if not args.no_ablation:
        order = ("box masks only", "masks + category", "masks + appearance", "true boxes")
        print_table("Ablation of the conditioning (inference time; true boxes = masks + category + appearance)",
                    results, order)
        for a, b in (("masks + category", "box masks only"), ("masks + appearance", "box masks only"),
                     ("true boxes", "masks + appearance")):
            compare(results, a, b, args.bootstrap, args.seed, diffs)
    if not args.no_guidance:
        print_table(f"Training-free guidance (SG-I2V latent optimisation, {GUIDANCE.iterations} AdamW iterations at "
                    f"lr {GUIDANCE.lr} on steps {GUIDANCE.guided_steps(args.steps)[0]}-"
                    f"{GUIDANCE.guided_steps(args.steps)[-1]})", results,
                    ("no boxes", "no boxes + SG-I2V guidance", "true boxes", "true boxes + SG-I2V guidance"))
        compare(results, "no boxes + SG-I2V guidance", "no boxes", args.bootstrap, args.seed, diffs)
        compare(results, "true boxes + SG-I2V guidance", "true boxes", args.bootstrap, args.seed, diffs)
        if "no boxes + SG-I2V guidance" in seconds and "no boxes" in seconds:
            print(f"guidance cost: {seconds['no boxes + SG-I2V guidance'] / seconds['no boxes']:.2f}x the generation "
                  "time of plain sampling")
    if str(args.json) != "-":
        summary = {name: {"metrics": r["metrics"], "ci": r.get("ci"), "generate_s": seconds[name]}
                   for name, r in results.items()}
        doc = {"provenance": provenance([weights], started_utc), "conditions": summary, "differences": diffs,
               "clips": args.clips, "steps": args.steps, "seed": args.seed, "bootstrap": args.bootstrap}
        doc["derived"] = derived(doc)
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
