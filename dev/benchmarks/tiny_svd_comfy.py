"""What the tiny-SVD benchmarks share: running an example workflow through real ComfyUI (the headless runner:
ComfyUI's own validation and PromptExecutor, in this process) on SynTrack clips, one job per clip, and reading back
the decoded videos they saved.

Each benchmark says which nodes it sets (``--set``-style overrides per clip); this module gives the first frames
(``bench/clip_NNN.png`` in ComfyUI's input folder), extra model files (copied under ``models/<folder>/``), the run and
the videos (lossless WEBP, so scoring sees exactly the decoded frames).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

REPO = Path(__file__).resolve().parents[2]


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


def node_id(workflow: dict, kind: str, prefix: str | None = None) -> str:
    """The id of the one node of type ``kind`` (for SaveAnimatedWEBP: the one saving with ``prefix``)."""
    found = [str(n["id"]) for n in workflow["nodes"] if n["type"] == kind
             and (prefix is None or n["widgets_values"][0] == prefix)]
    if len(found) != 1:
        sys.exit(f"error: the workflow has {len(found)} {kind} nodes{f' saving {prefix}' if prefix else ''}; "
                 "expected one.")
    return found[0]


def clip_image(i: int) -> str:
    """The first frame of clip ``i`` as Load Image names it."""
    return f"bench/clip_{i:03d}.png"


def add_run_arguments(parser) -> None:
    """The options every tiny-SVD ComfyUI benchmark takes: clips, steps, seed, bootstrap resamples, ComfyUI."""
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--comfyui", help="the ComfyUI checkout (default: COMFYUI_PATH, ../ComfyUI, ../shared/ComfyUI)")


def clip_overrides(ids: dict[str, str], video: str, i: int, tracklets, args) -> list[str]:
    """What every benchmark sets for clip ``i``: its first frame (Load Image), ``tracklets`` in the Tracklet Editor,
    the sampler's seed (seed + i) and steps, and lossless output from the SaveAnimatedWEBP ``video``."""
    sampler = ids["TrackDiffusionSampler"]
    return [f"{ids['LoadImage']}.image={json.dumps(clip_image(i))}",
            f"{ids['TrackletEditor']}.tracklets_json={json.dumps(tracklets.to_json(indent=None))}",
            f"{sampler}.seed={args.seed + i}", f"{sampler}.steps={args.steps}", f"{video}.lossless=true"]


class TinySVDRuns:
    """A ComfyUI started on a temporary base directory holding the clips' first frames and ``models`` (folder ->
    {name: file} copied to ``models/<folder>/<name>``; a name other than the pack's shipped files' keeps the choice
    unambiguous); :meth:`videos` runs one job per clip."""

    def __init__(self, tmp: Path, clips, comfyui: str | None,
                 models: dict[str, dict[str, Path]] | None = None) -> None:
        from trackdiffusion.nodes.runner.comfy_env import start_comfyui
        from trackdiffusion.nodes.runner.executor import Runner

        self.tmp = Path(tmp)
        base = self.tmp / "comfyui"
        (base / "input" / "bench").mkdir(parents=True)
        for folder, paths in (models or {}).items():
            (base / "models" / folder).mkdir(parents=True, exist_ok=True)
            for name, path in paths.items():
                shutil.copyfile(path, base / "models" / folder / name)
        for i, c in enumerate(clips):
            Image.fromarray(c.video[0]).save(base / "input" / clip_image(i))
        self.runner = Runner(start_comfyui(comfyui or default_comfyui(), base_directory=base, cpu=True))

    def videos(self, name: str, workflow: dict, overrides: list[list[str]], prefix: str) -> tuple[list, float]:
        """Run ``workflow`` once per clip with that clip's ``overrides``; the videos saved by the SaveAnimatedWEBP
        with ``prefix`` (one per clip, in clip order) and the wall time in seconds."""
        jobs = [(f"clip_{i:03d}", workflow, sets) for i, sets in enumerate(overrides)]
        out = self.tmp / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        t0 = time.time()
        runs = self.runner.run(jobs, out, subfolders=True)
        seconds = time.time() - t0
        videos = []
        for run in runs:
            webp = [f for f in run.files if re.fullmatch(re.escape(prefix) + r"_\d+_\.webp", f.name)]
            if len(webp) != 1:
                sys.exit(f"error: {run.name}: expected one {prefix} video, found {[f.name for f in webp]}")
            videos.append(read_webp(webp[0]))
        return videos, seconds
