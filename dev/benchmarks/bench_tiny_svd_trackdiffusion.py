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
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence
from provenance import default_json, provenance, write_json

from trackdiffusion.evaluation.metrics import evaluate_clips, paired_bootstrap
from trackdiffusion.evaluation.synth import make_split
from trackdiffusion.models.tiny_svd import files
from trackdiffusion.nodes.runner.comfy_env import start_comfyui
from trackdiffusion.nodes.runner.executor import Runner
from trackdiffusion.nodes.runner.run import load_workflow

REPO = Path(__file__).resolve().parents[2]
#: the tiny_svd_trackdiffusion_cpu example (its title is its file name: TITLES in dev/make_example_workflows.py)
WORKFLOW = REPO / "example_workflows" / "TrackDiffusion - tiny SVD on the CPU.json"
METRICS = ("TrackAP", "AP50", "AP75", "mIoU", "CTE_px", "IDSW")
GOAL_AP50, GOAL_MARGIN = 0.6, 0.4
VIDEO_PREFIX = "tiny_svd_trackdiffusion"  # the generated video's SaveAnimatedWEBP (the other one saves the boxes)


def node_ids(workflow: dict) -> dict[str, str]:
    """node type -> id, for the nodes the benchmark sets; SaveAnimatedWEBP: the one that saves the video."""
    ids = {}
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind == "SaveAnimatedWEBP":
            if node["widgets_values"][0] == VIDEO_PREFIX:
                ids[kind] = str(node["id"])
        elif kind in ("LoadImage", "TrackletEditor", "TrackDiffusionSampler", "InstanceEnhancerPatch",
                      "LoadTrackDiffusionAdapter"):
            ids[kind] = str(node["id"])
    return ids


def default_comfyui() -> str | None:
    """The test suite's search (COMFYUI_PATH, then ../ComfyUI, then ../shared/ComfyUI beside the repository). Like
    the tests, a machine without a real torchvision gets the tests' import-only stand-in (``comfy.sd`` imports
    torchvision when it loads; nothing sampled here uses it)."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.comfyui import find_comfyui, put_stand_in_on_path

    put_stand_in_on_path()
    found = find_comfyui()
    return None if found is None else str(found)


def read_webp(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(im)])


def derived(doc: dict) -> dict:
    """Figures computed from the stored ones: the goal and whether it is met."""
    true_ap50 = doc["conditions"]["true boxes"]["metrics"]["AP50"]
    margin = doc["differences"]["true boxes - shuffled boxes"]["AP50"]["estimate"]
    return {"generate_minutes": sum(c["generate_s"] for c in doc["conditions"].values()) / 60,
            "goal": {"AP50_true_at_least": GOAL_AP50, "AP50_over_shuffled_at_least": GOAL_MARGIN,
                     "met": bool(true_ap50 >= GOAL_AP50 and margin >= GOAL_MARGIN)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=64)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--adapter", type=Path, help="a converted adapter to measure instead of the shipped one")
    p.add_argument("--comfyui", help="the ComfyUI checkout (default: COMFYUI_PATH, ../ComfyUI, ../shared/ComfyUI)")
    p.add_argument("--json", type=Path, default=default_json("tiny_svd_trackdiffusion"))
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    adapter = args.adapter or files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER
    if not adapter.is_file():
        sys.exit(f"error: {adapter}: no such adapter file. Train one (dev/train_tiny_svd_trackdiffusion.sh) or pass "
                 "--adapter FILE.")
    workflow = load_workflow(WORKFLOW)
    ids = node_ids(workflow)
    clips = make_split("test", "eval", n=args.clips)
    true = [c.tracklets for c in clips]
    conditions = {"true boxes": (true, 1.0), "shuffled boxes": (true[1:] + true[:1], 1.0),
                  "no boxes": (true, 0.0)}
    with tempfile.TemporaryDirectory(prefix="bench_tiny_svd_td_") as tmp:
        base = Path(tmp) / "comfyui"
        (base / "input" / "bench").mkdir(parents=True)
        (base / "models" / "trackdiffusion").mkdir(parents=True)
        adapter_name = files.TRACKDIFFUSION_ADAPTER
        if args.adapter is not None:
            adapter_name = "bench_" + adapter.name
            shutil.copyfile(adapter, base / "models" / "trackdiffusion" / adapter_name)
        for i, c in enumerate(clips):
            Image.fromarray(c.video[0]).save(base / "input" / "bench" / f"clip_{i:03d}.png")
        runtime = start_comfyui(args.comfyui or default_comfyui(), base_directory=base, cpu=True)
        runner = Runner(runtime)
        results, seconds = {}, {}
        for name, (sources, strength) in conditions.items():
            jobs = []
            for i, tracklets in enumerate(sources):
                jobs.append((f"clip_{i:03d}", workflow, [
                    f"{ids['LoadImage']}.image={json.dumps(f'bench/clip_{i:03d}.png')}",
                    f"{ids['TrackletEditor']}.tracklets_json={json.dumps(tracklets.to_json(indent=None))}",
                    f"{ids['TrackDiffusionSampler']}.seed={args.seed + i}",
                    f"{ids['TrackDiffusionSampler']}.steps={args.steps}",
                    f"{ids['InstanceEnhancerPatch']}.strength={strength}",
                    f"{ids['LoadTrackDiffusionAdapter']}.adapter_name={json.dumps(adapter_name)}",
                    f"{ids['SaveAnimatedWEBP']}.lossless=true"]))
            out = Path(tmp) / name.replace(" ", "_")
            t0 = time.time()
            runs = runner.run(jobs, out, subfolders=True)
            seconds[name] = time.time() - t0
            videos = []
            for run in runs:
                webp = [f for f in run.files if re.fullmatch(re.escape(VIDEO_PREFIX) + r"_\d+_\.webp", f.name)]
                if len(webp) != 1:
                    sys.exit(f"error: {run.name}: expected one {VIDEO_PREFIX} video, found {[f.name for f in webp]}")
                videos.append(read_webp(webp[0]))
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
