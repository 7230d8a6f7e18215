"""SG-I2V (training-free box guidance) on the tiny SVD, measured through real ComfyUI sampling: the example workflow
``example_workflows/TrackDiffusion - tiny SVD on the CPU.json`` run by the headless runner on SynTrack test clips,
every video scored against its clip's TRUE tracklets.

    OMP_NUM_THREADS=2 python dev/benchmarks/bench_tiny_svd_sgi2v.py [--clips 64] [--steps 25]
        [--layers "output_blocks.7.1, output_blocks.8.1"] [--comfyui PATH]
        [--json dev/benchmarks/results_tiny_svd_sgi2v.json]

Conditions, each on the same clips with the same first frame and sampler seed (seed + clip index):

The workflow runs with the Tracklet Editor also linked to the sampler's ``tracklets`` input (what SG-I2V follows)
and these overrides: the first frame, the editor's tracklets, the seed, the steps, the sampler's SG-I2V mode (and
layers) and lossless WEBP output (so scoring sees exactly the decoded frames).

- plain: the stock tiny SVD (the TrackDiffusion Patch bypassed, as a user bypasses a node), SG-I2V off;
- SG-I2V, true boxes: the stock tiny SVD, the TrackDiffusion Sampler's SG-I2V mode with the clip's own tracklets;
- SG-I2V, shuffled boxes: the same with clip i+1's tracklets (the first frame's objects asked to go elsewhere);
- TrackDiffusion + SG-I2V, true boxes: the shipped TrackDiffusion adapter patched in, and SG-I2V on top.

SG-I2V's settings are the sampler's defaults (the paper's: steps 10 % to 40 %, 5 iterations each, lr 0.21, the
high-frequency half kept) except ``--layers``. Intervals: 95 % bootstrap over clips; differences are paired (same
resamples). Issue 16 asks for the same metrics as the TrackDiffusion table and the wall-time ratio guided / plain.
"""

from __future__ import annotations

import argparse
import datetime
import json
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
VIDEO_PREFIX = "tiny_svd_trackdiffusion"
SGI2V = "SG-I2V boxes (training-free)"
CHUNK = 8  #: clips per turn of the conditions
MODE_BYPASS = 4  # a node's mode when the user bypasses it (ComfyUI's Ctrl+B)
#: condition -> (tracklets: "true" / "shuffled", the TrackDiffusion Patch on, SG-I2V on)
CONDITIONS = {"plain": ("true", False, False),
              "SG-I2V, true boxes": ("true", False, True),
              "SG-I2V, shuffled boxes": ("shuffled", False, True),
              "TrackDiffusion + SG-I2V, true boxes": ("true", True, True)}
PAIRS = (("SG-I2V, true boxes", "SG-I2V, shuffled boxes"), ("SG-I2V, true boxes", "plain"))


def for_sgi2v(workflow: dict, ids: dict[str, str], bypass_patch: bool) -> dict:
    """A copy of ``workflow`` with the Tracklet Editor's tracklets also fed to the TrackDiffusion Sampler (what its
    SG-I2V mode follows; a user draws that link) and, with ``bypass_patch``, the TrackDiffusion Patch bypassed (its
    MODEL input passed straight through: the stock tiny SVD)."""
    out = json.loads(json.dumps(workflow))
    nodes = {str(n["id"]): n for n in out["nodes"]}
    editor, sampler = nodes[ids["TrackletEditor"]], nodes[ids["TrackDiffusionSampler"]]
    slot = next(i for i, o in enumerate(editor["outputs"]) if o["type"] == "TRACKLETS")
    link = max([int(entry[0]) for entry in out["links"]] + [int(out.get("last_link_id") or 0)]) + 1
    out["links"].append([link, editor["id"], slot, sampler["id"], len(sampler["inputs"]), "TRACKLETS"])
    out["last_link_id"] = link
    sampler["inputs"].append({"name": "tracklets", "type": "TRACKLETS", "link": link})
    editor["outputs"][slot].setdefault("links", []).append(link)
    if bypass_patch:
        nodes[ids["InstanceEnhancerPatch"]]["mode"] = MODE_BYPASS
    return out


def derived(doc: dict) -> dict:
    """Figures computed from the stored ones: sampling minutes and the wall-time ratios against plain."""
    c = doc["conditions"]
    plain = c.get("plain", {}).get("generate_s")
    return {"generate_minutes": sum(v["generate_s"] for v in c.values()) / 60,
            "time_ratio_over_plain": {k: v["generate_s"] / plain for k, v in c.items() if k != "plain" and plain}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(p)
    p.add_argument("--layers", help="SG-I2V's feature layers (default: the sampler's, the paper's)")
    p.add_argument("--conditions", nargs="*", choices=list(CONDITIONS), default=list(CONDITIONS))
    p.add_argument("--json", type=Path, default=default_json("tiny_svd_sgi2v"))
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    workflow = load_workflow(WORKFLOW)
    ids = {kind: node_id(workflow, kind) for kind in ("LoadImage", "TrackletEditor", "TrackDiffusionSampler",
                                                      "InstanceEnhancerPatch")}
    video = node_id(workflow, "SaveAnimatedWEBP", VIDEO_PREFIX)
    graphs = {False: for_sgi2v(workflow, ids, bypass_patch=True), True: for_sgi2v(workflow, ids, bypass_patch=False)}
    clips = make_split("test", "eval", n=args.clips)
    true = [c.tracklets for c in clips]
    sources = {"true": true, "shuffled": true[1:] + true[:1]}
    results, seconds, videos = {}, dict.fromkeys(args.conditions, 0.0), {name: [] for name in args.conditions}
    with tempfile.TemporaryDirectory(prefix="bench_tiny_svd_sgi2v_") as tmp:
        runs = TinySVDRuns(Path(tmp), clips, args.comfyui)
        # the conditions take turns on chunks of clips, so a change in the machine's load touches them alike (the
        # wall-time ratios are part of the result)
        for start in range(0, len(clips), CHUNK):
            for name in args.conditions:
                which, patched, guided = CONDITIONS[name]
                s = ids["TrackDiffusionSampler"]
                overrides = [[*clip_overrides(ids, video, i, sources[which][i], args),
                              f"{s}.trajectory_guidance={json.dumps(SGI2V if guided else 'off')}",
                              *([f"{s}.sgi2v_layers={json.dumps(args.layers)}"] if args.layers else [])]
                             for i in range(start, min(start + CHUNK, len(clips)))]
                got, took = runs.videos(f"{name} {start}", graphs[patched], overrides, VIDEO_PREFIX)
                videos[name] += got
                seconds[name] += took
        for name in args.conditions:
            results[name] = evaluate_clips(videos[name], clips, bootstrap=args.bootstrap, seed=args.seed)
            m = results[name]["metrics"]
            print(f"{name}: " + ", ".join(f"{k} {m[k]:.3f}" for k in METRICS) + f" ({seconds[name]:.0f} s)", flush=True)
    diffs = {f"{a} - {b}": paired_bootstrap(results[a], results[b], ("TrackAP", "AP50", "mIoU"),
                                            n=args.bootstrap, seed=args.seed)
             for a, b in PAIRS if a in results and b in results}
    for key, d in diffs.items():
        print(f"{key}: " + "; ".join(f"{m} {v['estimate']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}]"
                                     for m, v in d.items()))
    weights = sorted(files.WEIGHTS.glob("*/*.safetensors"))
    if "TrackDiffusion + SG-I2V, true boxes" in results:
        weights.append(files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER)
    doc = {"provenance": provenance(weights, started),
           "backend": "ComfyUI (the headless runner: validate_prompt + PromptExecutor), workflow "
                      f"{WORKFLOW.relative_to(REPO)}: Load Tiny SVD, the TrackDiffusion Patch bypassed (stock base) "
                      "or with the shipped adapter, the TrackDiffusion Sampler's SG-I2V mode",
           "sgi2v_layers": args.layers or "the sampler's default",
           "conditions": {name: {"metrics": r["metrics"], "ci": r.get("ci"), "generate_s": seconds[name]}
                          for name, r in results.items()},
           "differences": diffs, "clips": args.clips, "steps": args.steps, "seed": args.seed,
           "bootstrap": args.bootstrap}
    doc["derived"] = derived(doc)
    if str(args.json) != "-":
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
