"""``trackdiffusion run`` as a user runs it: a fresh process that finds ComfyUI, starts it in-process with this pack
linked in as a custom node, runs a UI-format workflow
over a folder of tracklet files, and leaves nothing behind but --out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from support.comfyui import require_comfyui, subprocess_env
from support.workflows import LOAD, SAVE, VIS, ui

REPO = Path(__file__).resolve().parents[2]


def tracklets(width: int, height: int, frames: int) -> str:
    return json.dumps({"format": "trackdiffusion.tracklets", "version": 1, "width": width, "height": height,
                       "num_frames": frames, "objects": [{"id": 1, "keyframes": [
                           {"frame": 0, "box": [2, 2, 12, 12]}, {"frame": frames - 1, "box": [8, 8, 20, 20]}]}]})


def test_run_command_batch_over_a_folder_in_a_fresh_process(tmp_path):
    comfy = require_comfyui()
    workflow = ui([{**LOAD, "title": "Boxes"}, VIS, SAVE],
                  [(1, 1, 0, 2, "tracklets", "TRACKLETS"), (2, 2, 0, 3, "images", "IMAGE")])
    (tmp_path / "wf.json").write_text(json.dumps(workflow))
    folder = tmp_path / "tracks"
    folder.mkdir()
    (folder / "one.json").write_text(tracklets(40, 24, 3))
    (folder / "two.json").write_text(tracklets(24, 40, 4))
    (tmp_path / "tmp").mkdir()
    # As a user runs it: no COMFYUI_PATH; torchvision is whatever this Python has (the test-only stand-in on
    # PYTHONPATH where no real one imports: the runner itself never fakes it).
    env = subprocess_env(TMPDIR=str(tmp_path / "tmp"))
    cmd = [sys.executable, "-m", "trackdiffusion.nodes.runner", "wf.json", "--comfyui", str(comfy), "--batch", "tracks",
           "--out", "results", "--set", "Boxes.num_frames=2", "--set", "SaveImage.filename_prefix=\"frame\"",
           "--base-directory", "new_base"]  # a base directory that does not exist yet (ComfyUI needs custom_nodes/)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "one: 2 files in" in proc.stdout and "two: 2 files in" in proc.stdout
    assert "[3/3] #3 SaveImage" in proc.stderr
    for stem, size in (("one", (40, 24)), ("two", (24, 40))):
        files = sorted((tmp_path / "results" / stem).iterdir())
        assert [p.name for p in files] == ["frame_00001_.png", "frame_00002_.png", "outputs.json", "prompt.json"]
        assert Image.open(files[0]).size == size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new_base", "results", "tmp", "tracks", "wf.json"]
    assert list((tmp_path / "tmp").glob("trackdiffusion-runner-*")) == []  # the temporary custom_nodes link is gone
