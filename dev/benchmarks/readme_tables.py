"""README's measured figures, rendered from the committed results files, so README and JSON cannot drift.

In README.md every table or sentence of measured figures sits in a results block:

    <!-- results: dev/benchmarks/results_controllability_demo.json render=controllability -->
    | condition | TrackAP | ... |
    <!-- /results -->

``render=NAME`` names a renderer below, the paths before it (one or more, relative to the repository) the results
files it reads, in the order it expects them. A block whose opening comment ends its line holds whole lines (tables,
paragraphs); one that continues on the same line is inline text. ``tests/test_readme_results.py`` checks that every
block equals its rendering; after re-running a benchmark,

    python dev/benchmarks/readme_tables.py --write      # rewrite README's blocks from the JSON files
    python dev/benchmarks/readme_tables.py              # list the blocks and whether each is up to date (exit 1 if not)

Renderers print only numbers stored in the results files (settings, results, and ``derived`` values the benchmark
computed and stored), at the precision shown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

BLOCK = re.compile(r"<!-- results: (?P<paths>[^>]*?) render=(?P<name>[\w-]+) -->(?P<body>.*?)<!-- /results -->",
                   re.DOTALL)
#: any results comment, with or without render= (a bare one names the source of the paragraph it sits in)
TAG = re.compile(r"<!-- results: (?P<paths>[^>]*?)(?: render=(?P<name>[\w-]+))? -->")

METRIC_COLUMNS = (("TrackAP", "TrackAP", 3), ("AP50", "AP50", 3), ("AP75", "AP75", 3), ("mIoU", "mIoU", 3),
                  ("CTE_px", "centre error px", 2), ("IDSW", "ID switches", 0))


def load(path: str | Path) -> dict:
    return json.loads((REPO / path).read_text())


def paths_of(text: str) -> list[str]:
    return [p for p in re.split(r"[\s,]+", text.strip()) if p]


# ------------------------------------------------------------------------------------------------ formatting helpers
def _cell(result: dict, metric: str, digits: int, bold: bool = False) -> str:
    value = result["metrics"][metric]
    if digits == 0:
        return f"{round(value)}"
    text = f"{value:.{digits}f}"
    text = f"**{text}**" if bold else text
    ci = (result.get("ci") or {}).get(metric)
    if ci:
        lo, hi = f"{ci['lo']:.{digits}f}", f"{ci['hi']:.{digits}f}"
        if lo != hi:
            text += f" [{lo}, {hi}]"
    return text


def _metric_table(doc: dict, rows: list[tuple[str, str]], first_column: str, bold: tuple = ()) -> str:
    head = f"| {first_column} | " + " | ".join(label for _, label, _ in METRIC_COLUMNS) + " |"
    lines = [head, "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    for key, label in rows:
        result = doc["conditions"][key]
        cells = [_cell(result, m, d, bold=(key, m) in bold) for m, _, d in METRIC_COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _diff(doc: dict, pair: str, metric: str, bold: bool = False) -> str:
    d = doc["differences"][pair][metric]
    est = f"{d['estimate']:+.3f}"
    return f"{f'**{est}**' if bold else est} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _supported(doc: dict, pair: str, metric: str) -> bool:
    d = doc["differences"][pair][metric]
    return d["lo"] > 0 or d["hi"] < 0


# ------------------------------------------------------------------------------------------------------- renderers
def controllability(docs) -> str:
    """The demo model with true, shuffled and no boxes (dev/benchmarks/results_controllability_demo.json)."""
    (doc,) = docs
    return _metric_table(doc, [("true boxes", "true boxes"), ("shuffled boxes", "boxes shuffled across clips"),
                               ("no boxes", "no boxes")], "condition", bold=(("true boxes", "AP50"),))


def controllability_differences(docs) -> str:
    (doc,) = docs
    goal = doc["derived"]["goal"]
    return (f"Paired differences: true - shuffled AP50 {_diff(doc, 'true boxes - shuffled boxes', 'AP50', True)}, "
            f"TrackAP {_diff(doc, 'true boxes - shuffled boxes', 'TrackAP')}; true - no boxes AP50 "
            f"{_diff(doc, 'true boxes - no boxes', 'AP50')}. The goal (AP50 with true boxes at least "
            f"{goal['AP50_true_at_least']:g} and at least {goal['AP50_over_shuffled_at_least']:g} above shuffled "
            f"boxes) is {'met' if goal['met'] else 'NOT met'}.")


def ablation(docs) -> str:
    """The inference-time ablation of the conditioning (dev/benchmarks/results_controllability_demo.json)."""
    (doc,) = docs
    return _metric_table(doc, [("box masks only", "box masks only"), ("masks + category", "masks + category"),
                               ("masks + appearance", "masks + first-frame appearance"),
                               ("true boxes", "all three (= true boxes)")], "conditioning")


def ablation_differences(docs) -> str:
    (doc,) = docs
    steps = [("masks + category - box masks only", "+ category over masks only AP50"),
             ("masks + appearance - box masks only", "+ appearance over masks only"),
             ("true boxes - masks + appearance", "all three over masks + appearance")]
    every = all(_supported(doc, pair, "AP50") and doc["differences"][pair]["AP50"]["estimate"] > 0
                for pair, _ in steps)
    lead = "Every step up is supported by its paired interval" if every else \
        "Not every step up is supported by its paired interval (an interval that includes 0 supports none)"
    return lead + ": " + "; ".join(f"{label} {_diff(doc, pair, 'AP50')}" for pair, label in steps) + "."


def controllability_minutes(docs) -> str:
    """Inline: the generation time of the controllability run and of the guidance run."""
    control, guidance = docs
    return (f"{control['derived']['generate_minutes']:.0f} minutes of generation for the two tables below; the "
            f"guidance run of the SG-I2V section took {guidance['derived']['generate_minutes']:.0f}")


def guidance(docs) -> str:
    """SG-I2V latent optimisation on the demo model (dev/benchmarks/results_guidance_demo.json)."""
    (doc,) = docs
    table = _metric_table(doc, [("no boxes", "no boxes"), ("no boxes + SG-I2V guidance", "no boxes + SG-I2V"),
                                ("true boxes", "true boxes"), ("true boxes + SG-I2V guidance", "true boxes + SG-I2V")],
                          "condition")
    cost = doc["derived"]["guidance_cost_x"]
    nb, tb = "no boxes + SG-I2V guidance - no boxes", "true boxes + SG-I2V guidance - true boxes"
    return (table + "\n\nPaired differences, guided - unguided: without boxes mIoU " + _diff(doc, nb, "mIoU") +
            ", AP50 " + _diff(doc, nb, "AP50") + "; on top of the true boxes AP50 " + _diff(doc, tb, "AP50") +
            ", mIoU " + _diff(doc, tb, "mIoU") + f". Cost: {cost['no boxes']:.1f}x the generation time of plain "
            f"sampling without boxes, {cost['true boxes']:.1f}x with them, on this CPU (the optimisation runs clip by "
            "clip, plain sampling in batches).")


def ceiling(docs) -> str:
    """Inline: the SynTrack ceiling (tests/data/syntrack_ceiling.json)."""
    (doc,) = docs
    s, c = doc["settings"], doc["ceiling"]
    tier = "x".join(str(v) for v in s["tier"])
    return (f"({s['n_clips']} {s['split']} clips, {tier}): TrackAP {c['TrackAP']:.3f}, AP50 {c['AP50']:.3f}, "
            f"AP75 {c['AP75']:.3f}, mIoU {c['mIoU']:.3f}, centre error {c['CTE_px']:.2f} px, {c['IDSW']} identity "
            f"switches, ObjMC-LK {c['ObjMC_px']:.2f} px")


def ceiling_short(docs) -> str:
    (doc,) = docs
    c = doc["ceiling"]
    return f"TrackAP {c['TrackAP']:.3f} / AP50 {c['AP50']:.3f}"


def demo_time(docs) -> str:
    """Inline: one demo run on the CPU (dev/benchmarks/results_demo.json)."""
    (doc,) = docs
    s, r = doc["settings"], doc["results"]
    threads = "one CPU thread" if s["threads"] == 1 else f"{s['threads']} CPU threads"
    cores = doc["provenance"]["machine"]["cpu_count"]
    return (f"One run ({s['frames']} frames, {s['steps']} steps) takes {r['run_s']:.1f} s on {threads} (median of "
            f"{s['repeats']} runs, fastest {r['run_min_s']:.1f} s, on this project's shared {cores}-core machine)")


def sgi2v_cost(docs) -> str:
    """SG-I2V's cost: measured on the CPU with the tiny UNet, estimated from FLOPs at the real size."""
    cpu, flops = docs
    s, r = cpu["settings"], cpu["results"]
    f, v = flops["settings"], flops["results"]["variants"]
    budget = f"{f['memory_budget_gb']:g}"
    recomputed = flops["results"]["checkpointed_count"]
    return (f"Cost: on this CPU (tiny model, {s['frames']} frames at {s['width']}x{s['height']}, {s['steps']} steps "
            f"of which {r['guided']['guided_steps']} guided, median of {s['repeats']}) "
            f"{r['ratio']['time']:.2f}x the unguided time; estimated from FLOP counts at {f['height']}x{f['width']}, "
            f"{f['frames']} frames, {f['steps']} steps ({f['guided_steps']} guided): "
            f"{v['no recomputation, 5 iterations']['ratio']:.2f}x without recomputation, "
            f"{v[f'within {budget} GB, 5 iterations']['ratio']:.2f}x within {budget} GB (recomputing "
            f"{recomputed} of the transformers), {v['no recomputation, 4 iterations']['ratio']:.2f}x with 4 "
            "iterations.")


def patch_cost(docs) -> str:
    """The patches' cost per sampling step (results_svd_patch.json, results_trackgo_patch.json)."""
    svd, trackgo = docs
    s = svd["settings"]
    width = "real width" if s["real_width"] else f"tiny width ({s['model_channels']} channels)"
    device = svd["provenance"]["machine"]["device"]
    device = "the CPU" if device == "cpu" else device
    caption = (f"Patched over unpatched, one sampling step (cond + uncond batched) of ComfyUI's SVD UNet at {width} "
               f"with random weights, {s['frames']} frames at {s['width']}x{s['height']}, "
               f"on {device}, median of {s['repeats']} interleaved repeats:")
    lines = [caption, "", "| patch | time | FLOPs |", "|---|---|---|"]
    for label, doc in (("TrackDiffusion (fusers + box position net)", svd), ("TrackGo TrackAdapter", trackgo)):
        ratio = doc["results"]["ratio"]
        lines.append(f"| {label} | x{ratio['time']:.2f} | x{ratio['flops']:.2f} |")
    return "\n".join(lines)


def slots(docs) -> str:
    """Inline: expanding tracklets to model slots (dev/benchmarks/results_slots.json)."""
    (doc,) = docs
    s, r = doc["settings"], doc["results"]
    return (f"loading {s['objects']} tracklets x {s['frames']} frames and expanding them to slots takes "
            f"{r['load + to_slots']['median_ms']:.1f} ms (median of {s['repeats']}; budget {s['budget_ms']:g} ms)")


def trajectories(docs) -> str:
    """Inline: building and rendering TrackGo point trajectories (dev/benchmarks/results_trajectories.json)."""
    (doc,) = docs
    s, r = doc["settings"], doc["results"]
    return (f"{s['masks']} masks at {s['width']}x{s['height']}, {s['frames']} frames: building takes "
            f"{r['build']['median_ms']:.1f} ms, rendering P {r['render (point_size=4)']['median_ms']:.1f} ms (median "
            f"of {s['repeats']}; target {s['build_target_ms']:g} ms)")


def svd_delta_size(docs) -> str:
    (doc,) = docs
    return f"about {doc['results']['svd_delta']['megabytes_fp16']:.0f} MB in fp16"


def trackgo_params(docs) -> str:
    (doc,) = docs
    return f"{doc['results']['trackgo_adapter']['millions']:.1f} M parameters for SVD"


def demo_params(docs) -> str:
    (doc,) = docs
    return f"{doc['results']['demo_model']['millions']:.1f} M-parameter"


def tiny_svd_base(docs) -> str:
    """The tiny SVD without boxes: its VAE's round trip and the base model (dev/benchmarks/results_tiny_svd_base.json)."""
    (doc,) = docs
    table = _metric_table(doc, [("ground truth", "the clips themselves"),
                                ("vae round trip", "VAE round trip (encode, decode)"),
                                ("base, no boxes", "the base model, first frame only")], "video")
    train = doc["training"]
    runs = train.get("base_runs") or [train["base"]]
    base = " then ".join(f"{r['steps']} steps in {r['train_hours']:.1f} h" for r in runs)
    text = (f"Frame-0 PSNR of the base model's videos {doc['base_frame0_psnr_db']:.1f} dB (the VAE round trip: "
            f"{doc['vae_round_trip_psnr_db']:.1f} dB over whole clips). Training on this project's 2-core CPU: the VAE "
            f"{train['vae']['steps']} steps in {train['vae']['train_hours']:.1f} h, the base {base} (batches of 8 "
            "clips; the second run from the first's weights with a fresh schedule).")
    kept = {name: c.get("persistence") for name, c in doc["conditions"].items()}
    if all(v is not None for v in kept.values()):
        text += (" Object persistence (visible objects found in their colour at about their size in every frame "
                 f"after the first, wherever they are): the base model {kept['base, no boxes']:.2f}, the VAE round trip "
                 f"{kept['vae round trip']:.2f}, the clips themselves {kept['ground truth']:.2f}.")
    if "shipped" in doc:
        text += (f" Shipped: {doc['shipped']['megabytes']:.1f} MB in fp16, the UNet "
                 f"{doc['shipped']['unet_parameters_millions']:.2f} M parameters.")
    return table + "\n\n" + text


def tiny_svd_trackdiffusion(docs) -> str:
    """TrackDiffusion trained on the tiny SVD, sampled in ComfyUI with true, shuffled and no boxes
    (dev/benchmarks/results_tiny_svd_trackdiffusion.json)."""
    (doc,) = docs
    table = _metric_table(doc, [("true boxes", "true boxes"), ("shuffled boxes", "shuffled boxes (another clip's)"),
                                ("no boxes", "no boxes (strength 0)")], "boxes given")
    diffs = ["| paired difference | TrackAP | AP50 | mIoU |", "|---|---|---|---|"]
    for pair in doc["differences"]:
        diffs.append(f"| {pair} | " + " | ".join(_diff(doc, pair, m, bold=_supported(doc, pair, m))
                                                 for m in ("TrackAP", "AP50", "mIoU")) + " |")
    goal = doc["derived"]["goal"]
    text = (f"{doc['clips']} SynTrack test clips, {doc['steps']} sampling steps, the same first frames and seeds in every "
            f"condition; {doc['derived']['generate_minutes']:.0f} minutes of sampling on this CPU. Goal (AP50 at least "
            f"{goal['AP50_true_at_least']} with true boxes and at least {goal['AP50_over_shuffled_at_least']} above "
            f"shuffled boxes): {'met' if goal['met'] else 'not met'}.")
    return table + "\n\n" + "\n".join(diffs) + "\n\n" + text


def tiny_svd_trackdiffusion_training(docs) -> str:
    """The shipped tiny-SVD adapter's training and gates (dev/benchmarks/results_tiny_svd_trackdiffusion_training.json)."""
    (doc,) = docs
    stages = ", then ".join(f"stage {i} {s['steps']} steps in {s['train_hours']:.1f} h"
                            for i, s in enumerate(doc["stages"], 1))
    g = doc["gates"]
    return (f"{doc['adapter_megabytes']:.1f} MB; {stages} on this CPU. Its {g['count']} fuser gates (0 at the "
            f"start): |alpha| at most {g['max_abs_alpha']:.2f}, mean |tanh(alpha)| {g['mean_abs_tanh_alpha']:.3f}")


def tiny_svd_box_loss(docs) -> str:
    """The shipped adapter's denoising loss with true, shuffled and no boxes (dev/benchmarks/results_tiny_svd_box_loss.json)."""
    (doc,) = docs
    rows = ["| noise level sigma | true boxes | shuffled boxes | no boxes | batches with true < shuffled |",
            "|---|---|---|---|---|"]
    for sigma in doc["sigmas"]:
        r = doc["loss"][str(sigma)]
        rows.append(f"| {sigma:g} | {r['true boxes']:.4f} | {r['shuffled boxes']:.4f} | {r['no boxes']:.4f} | "
                    f"{r['batches true < shuffled']} of {doc['batches']} |")
    return "\n".join(rows) + (f"\n\n{doc['clips']} held-out clips of the training stream (seed {doc['seed']}), stage-"
                              f"{doc['stage_targets']} targets, the same noise in every condition.")


def tiny_svd_sgi2v(docs) -> str:
    """SG-I2V on the stock tiny SVD (and on top of the TrackDiffusion patch), sampled in ComfyUI
    (dev/benchmarks/results_tiny_svd_sgi2v.json)."""
    (doc,) = docs
    labels = {"plain": "plain (no guidance)", "SG-I2V, true boxes": "SG-I2V, true boxes",
              "SG-I2V, shuffled boxes": "SG-I2V, shuffled boxes (another clip's)",
              "TrackDiffusion + SG-I2V, true boxes": "TrackDiffusion adapter + SG-I2V, true boxes"}
    table = _metric_table(doc, [(k, v) for k, v in labels.items() if k in doc["conditions"]], "sampling")
    diffs = ["| paired difference | TrackAP | AP50 | mIoU |", "|---|---|---|---|"]
    for pair in doc["differences"]:
        diffs.append(f"| {pair} | " + " | ".join(_diff(doc, pair, m, bold=_supported(doc, pair, m))
                                                 for m in ("TrackAP", "AP50", "mIoU")) + " |")
    ratios = "; ".join(f"{k} {v:.1f}x" for k, v in doc["derived"]["time_ratio_over_plain"].items())
    text = (f"{doc['clips']} SynTrack test clips, {doc['steps']} sampling steps, the same first frames and seeds in every "
            f"condition; SG-I2V layers: {doc['sgi2v_layers']}. "
            + (f"Wall time over plain sampling: {ratios} " if ratios else "")
            + f"({doc['derived']['generate_minutes']:.0f} minutes of sampling on this CPU).")
    return table + "\n\n" + "\n".join(diffs) + "\n\n" + text


def track_from_video(docs) -> str:
    """Track From Video and Point Trajectories From Video on SynTrack (dev/benchmarks/results_track_from_video.json)."""
    (doc,) = docs
    names = [("box_mIoU", "boxes: mean IoU with the true box over its visible frames"),
             ("identity_kept", "boxes: share of visible frames on its own object (IoU >= 0.5, no other closer)"),
             ("visibility_agreement", "boxes: shown exactly when the object is visible"),
             ("point_EPE_px", "points: end-point error, px"),
             ("points_followed", "points: share of truly visible point-frames still followed"),
             ("points_followed_while_hidden", "points: share of followed point-frames that are truly hidden")]
    rows = ["| measure | value [CI] |", "|---|---|"]
    for key, label in names:
        m = doc["metrics"][key]
        rows.append(f"| {label} | {m['estimate']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}] |")
    return "\n".join(rows) + f"\n\n{doc['clips']} clips in {doc['seconds']:.1f} s on one CPU thread."


RENDERERS: dict[str, Callable[[list[dict]], str]] = {f.__name__: f for f in (tiny_svd_base, tiny_svd_trackdiffusion,
    tiny_svd_trackdiffusion_training, tiny_svd_box_loss, tiny_svd_sgi2v, track_from_video, controllability, controllability_differences, ablation, ablation_differences,
    controllability_minutes, guidance, ceiling, ceiling_short, demo_time, sgi2v_cost, patch_cost, slots, trajectories,
    svd_delta_size, trackgo_params, demo_params)}


def render(name: str, paths: list[str]) -> str:
    """The text of a results block: renderer ``name`` on the results files ``paths``."""
    if name not in RENDERERS:
        raise KeyError(f"no renderer {name!r}; known: {', '.join(RENDERERS)}")
    return RENDERERS[name]([load(p) for p in paths])


def wrap(text: str, width: int = 120) -> str:
    """Paragraph lines wrapped at ``width`` (README's line length); table rows and blank lines as they are."""
    return "\n".join(line if line.startswith("|") or not line.strip() else
                     textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                     for line in text.split("\n"))


def expected_body(body: str, rendered: str) -> str:
    """What a block's body must be: whole lines (paragraphs wrapped) when the opening comment ends its line, else
    inline text."""
    return f"\n{wrap(rendered)}\n" if body.startswith("\n") else rendered


def blocks(text: str) -> list[dict]:
    """Every results block of ``text``: ``{"paths", "name", "body", "expected", "start", "end"}``."""
    out = []
    for m in BLOCK.finditer(text):
        paths = paths_of(m["paths"])
        out.append({"paths": paths, "name": m["name"], "body": m["body"],
                    "expected": expected_body(m["body"], render(m["name"], paths)), "start": m.start("body"),
                    "end": m.end("body")})
    return out


def rewrite(text: str) -> str:
    """``text`` with every results block re-rendered."""
    for b in reversed(blocks(text)):
        text = text[:b["start"]] + b["expected"] + text[b["end"]:]
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md's results blocks in place")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    stale = 0
    for b in blocks(text):
        ok = b["body"] == b["expected"]
        stale += not ok
        print(f"{'ok   ' if ok else 'STALE'} {b['name']:<28} {', '.join(b['paths'])}")
    if args.write:
        new = rewrite(text)
        if new != text:
            args.readme.write_text(new)
            print(f"rewrote {stale} block(s) of {args.readme}")
        return 0
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
