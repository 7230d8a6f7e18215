"""What a trained TrackDiffusion adapter lets through, read from the file alone: the fusers' gates (GLIGEN's
``alpha_attn`` / ``alpha_dense``, which start at 0 and scale the box tokens' contribution by tanh(alpha)) and the
training that made it (its stages' loss logs).

    python dev/benchmarks/bench_adapter_gates.py [--adapter FILE] [--log STAGE_CSV ...]
        [--json dev/benchmarks/results_tiny_svd_trackdiffusion_training.json]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from provenance import default_json, provenance, write_json
from safetensors.torch import load_file

from trackdiffusion.models.tiny_svd import files

LOGS = Path(__file__).resolve().parent / "training_logs"


def gate_summary(state: dict) -> dict:
    gates = {k: float(v.float().reshape(-1)[0]) for k, v in state.items() if k.endswith((".alpha_attn", ".alpha_dense"))}
    if not gates:
        raise SystemExit("error: no fuser gates (alpha_attn / alpha_dense) in this file. Give a converted "
                         "TrackDiffusion adapter.")
    tanh = [abs(math.tanh(v)) for v in gates.values()]
    return {"count": len(gates), "max_abs_alpha": max(abs(v) for v in gates.values()),
            "mean_abs_tanh_alpha": sum(tanh) / len(tanh), "max_abs_tanh_alpha": max(tanh), "gates": gates}


def log_summary(path: Path) -> dict:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    last = rows[-min(100, len(rows)):]
    return {"log": str(path.name), "steps": int(rows[-1]["step"]),
            "train_hours": sum(float(r["seconds"]) for r in rows) / 3600,
            "final_loss_mean_last_100": sum(float(r["loss"]) for r in last) / len(last)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", type=Path, default=files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER)
    p.add_argument("--log", type=Path, nargs="*", default=[LOGS / "tiny_svd_td_stage1_loss.csv",
                                                          LOGS / "tiny_svd_td_stage2_loss.csv"])
    p.add_argument("--json", type=Path, default=default_json("tiny_svd_trackdiffusion_training"))
    args = p.parse_args()
    if not args.adapter.is_file():
        raise SystemExit(f"error: {args.adapter}: no such adapter file. Train one "
                         "(dev/train_tiny_svd_trackdiffusion.sh) or pass --adapter FILE.")
    doc = {"provenance": provenance([args.adapter]), "adapter_megabytes": args.adapter.stat().st_size / 1e6,
           "gates": gate_summary(load_file(str(args.adapter))), "stages": [log_summary(p) for p in args.log]}
    g = doc["gates"]
    print(f"{g['count']} gates: max |alpha| {g['max_abs_alpha']:.3f}, mean |tanh(alpha)| {g['mean_abs_tanh_alpha']:.3f}; "
          + ", ".join(f"{s['steps']} steps in {s['train_hours']:.2f} h" for s in doc["stages"]))
    if str(args.json) != "-":
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
