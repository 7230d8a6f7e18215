"""TrackDiffusion on the tiny SVD, measured through real ComfyUI sampling: the example workflow
``example_workflows/TrackDiffusion - tiny SVD on the CPU.json`` run by the headless runner (ComfyUI's own validation
and PromptExecutor, in this process) on SynTrack test clips, every video scored against its clip's TRUE tracklets.

    OMP_NUM_THREADS=2 python dev/benchmarks/bench_tiny_svd_trackdiffusion.py [--clips 64] [--steps 25]
        [--adapter FILE] [--comfyui PATH] [--json dev/benchmarks/results_tiny_svd_trackdiffusion.json]

Conditions, each on the same clips with the same first frame (Load Image) and the same sampler seed (seed + clip
index), so they differ only in what the TrackDiffusion Patch gets:

- true boxes: the clip's own tracklets in the Tracklet Editor;
- shuffled boxes: clip i gets clip i+1's tracklets (objects are asked to be where nothing in the first frame is);
- no boxes: the patch at strength 0, TrackDiffusion's own no-box state (every box slot null).

The workflow runs unchanged but for these overrides: the first frame, the editor's tracklets, the seed, the steps, the
patch strength (no boxes) and lossless WEBP output (so scoring sees exactly the decoded frames). Intervals: 95 %
bootstrap over clips; differences are paired (same resamples). The goal of issue 15: AP50 at least 0.6 with the true
boxes and at least 0.4 above shuffled boxes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

from provenance import default_json, provenance, write_json
from tiny_svd_comfy import TinySVDRuns, add_run_arguments, clip_overrides, node_id

from trackdiffusion.evaluation.metrics import evaluate_clips, paired_bootstrap
from trackdiffusion.evaluation.synth import make_split
from trackdiffusion.models.tiny_svd import files
from trackdiffusion.nodes.runner.run import load_workflow

REPO = Path(__file__).resolve().parents[2]
#: the tiny_svd_trackdiffusion_cpu example (its title is its file name: TITLES in dev/make_example_workflows.py)
WORKFLOW = REPO / "example_workflows" / "TrackDiffusion - tiny SVD on the CPU.json"
METRICS = ("TrackAP", "AP50", "AP75", "mIoU", "CTE_px", "IDSW")
GOAL_AP50, GOAL_MARGIN = 0.6, 0.4
VIDEO_PREFIX = "tiny_svd_trackdiffusion"  # the generated video's SaveAnimatedWEBP (the other one saves the boxes)


def derived(doc: dict) -> dict:
    """Figures computed from the stored ones: the goal and whether it is met."""
    true_ap50 = doc["conditions"]["true boxes"]["metrics"]["AP50"]
    margin = doc["differences"]["true boxes - shuffled boxes"]["AP50"]["estimate"]
    return {"generate_minutes": sum(c["generate_s"] for c in doc["conditions"].values()) / 60,
            "goal": {"AP50_true_at_least": GOAL_AP50, "AP50_over_shuffled_at_least": GOAL_MARGIN,
                     "met": bool(true_ap50 >= GOAL_AP50 and margin >= GOAL_MARGIN)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(p)
    p.add_argument("--adapter", type=Path, help="a converted adapter to measure instead of the shipped one")
    p.add_argument("--json", type=Path, default=default_json("tiny_svd_trackdiffusion"))
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    adapter = args.adapter or files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER
    if not adapter.is_file():
        sys.exit(f"error: {adapter}: no such adapter file. Train one (dev/train_tiny_svd_trackdiffusion.sh) or pass "
                 "--adapter FILE.")
    workflow = load_workflow(WORKFLOW)
    ids = {kind: node_id(workflow, kind) for kind in ("LoadImage", "TrackletEditor", "TrackDiffusionSampler",
                                                      "InstanceEnhancerPatch", "LoadTrackDiffusionAdapter")}
    video = node_id(workflow, "SaveAnimatedWEBP", VIDEO_PREFIX)
    clips = make_split("test", "eval", n=args.clips)
    true = [c.tracklets for c in clips]
    conditions = {"true boxes": (true, 1.0), "shuffled boxes": (true[1:] + true[:1], 1.0),
                  "no boxes": (true, 0.0)}
    adapter_name = files.TRACKDIFFUSION_ADAPTER if args.adapter is None else "bench_" + adapter.name
    with tempfile.TemporaryDirectory(prefix="bench_tiny_svd_td_") as tmp:
        runs = TinySVDRuns(Path(tmp), clips, args.comfyui,
                           models={"trackdiffusion": {adapter_name: adapter}} if args.adapter is not None else None)
        results, seconds = {}, {}
        for name, (sources, strength) in conditions.items():
            overrides = [[*clip_overrides(ids, video, i, tracklets, args),
                          f"{ids['InstanceEnhancerPatch']}.strength={strength}",
                          f"{ids['LoadTrackDiffusionAdapter']}.adapter_name={json.dumps(adapter_name)}"]
                         for i, tracklets in enumerate(sources)]
            videos, seconds[name] = runs.videos(name, workflow, overrides, VIDEO_PREFIX)
            results[name] = evaluate_clips(videos, clips, bootstrap=args.bootstrap, seed=args.seed)
            m = results[name]["metrics"]
            print(f"{name}: " + ", ".join(f"{k} {m[k]:.3f}" for k in METRICS) + f" ({seconds[name]:.0f} s)", flush=True)
    diffs = {f"{a} - {b}": paired_bootstrap(results[a], results[b], ("TrackAP", "AP50", "mIoU"),
                                            n=args.bootstrap, seed=args.seed)
             for a, b in (("true boxes", "shuffled boxes"), ("true boxes", "no boxes"))}
    for key, d in diffs.items():
        print(f"{key}: " + "; ".join(f"{m} {v['estimate']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}]"
                                     for m, v in d.items()))
    weights = sorted(files.WEIGHTS.glob("*/*.safetensors")) + [adapter]
    doc = {"provenance": provenance(weights, started),
           "backend": "ComfyUI (the headless runner: validate_prompt + PromptExecutor), workflow "
                      f"{WORKFLOW.relative_to(REPO)}, Load Tiny SVD + Load TrackDiffusion Adapter ({adapter_name})",
           "conditions": {name: {"metrics": r["metrics"], "ci": r.get("ci"), "generate_s": seconds[name]}
                          for name, r in results.items()},
           "differences": diffs, "clips": args.clips, "steps": args.steps, "seed": args.seed,
           "bootstrap": args.bootstrap}
    doc["derived"] = derived(doc)
    print(f"goal (AP50 >= {GOAL_AP50} with true boxes, >= {GOAL_MARGIN} above shuffled): "
          f"{'met' if doc['derived']['goal']['met'] else 'not met'}")
    if str(args.json) != "-":
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
