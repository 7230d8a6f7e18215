"""The SynTrack positive control: ground-truth renders through the metric stack give a fixed ceiling, and corrupted
renders score lower. ``python -m trackdiffusion.evaluation.metrics.control`` prints them. The committed numbers, with their
provenance, are ``tests/data/syntrack_ceiling.json``, written by ``dev/benchmarks/bench_syntrack_ceiling.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .evaluate import METRICS, evaluate_clips

DEFAULTS = {"split": "test", "tier": "eval", "n_clips": 128, "n_corrupted": 64, "texture": True}
CORRUPTIONS = ("shift-s", "shift-m", "shift-l", "swap", "freeze", "unrelated")


def _metrics(result: dict) -> dict:
    return {k: result["metrics"][k] for k in (*METRICS, "n_gt_tracks", "n_pred_tracks", "n_points")}


def positive_control(*, split: str = "test", tier="eval", n_clips: int = 128, n_corrupted: int = 64,
                     texture: bool = True, corruptions=CORRUPTIONS) -> dict:
    """Metrics of the clean renders of the first ``n_clips`` clips (the ceiling, per scenario too) and of each
    corruption on the first ``n_corrupted`` of them (colour-blob tracker, Lucas-Kanade ObjMC)."""
    from ..synth import corrupt, make_split

    clips = make_split(split, tier, n_clips, texture=texture)
    clean = evaluate_clips([c.video for c in clips], clips, per_clip=False)
    sub = clips[:n_corrupted]
    out = {
        "settings": {"split": split, "tier": list(clips[0].tier), "n_clips": n_clips, "n_corrupted": n_corrupted,
                     "texture": texture, "tracker": clean["tracker"], "point_tracker": clean["point_tracker"]},
        "ceiling": _metrics(clean),
        "ceiling_per_scenario": {k: {m: v[m] for m in ("TrackAP", "AP50", "mIoU", "IDSW", "ObjMC_px")}
                                 for k, v in clean["per_scenario"].items()},
        "corrupted": {},
    }
    for name in corruptions:
        res = evaluate_clips([corrupt(c, name) for c in sub], sub, per_clip=False)
        out["corrupted"][name] = _metrics(res)
    if n_corrupted != n_clips:
        out["corrupted"]["gt"] = _metrics(evaluate_clips([c.video for c in sub], sub, per_clip=False))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=DEFAULTS["n_clips"])
    p.add_argument("--corrupted", type=int, default=DEFAULTS["n_corrupted"])
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    print(json.dumps(positive_control(n_clips=args.clips, n_corrupted=args.corrupted), indent=1))
    print(f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
