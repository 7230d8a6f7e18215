"""``run --batch --shard K/N`` on real ComfyUI, in process: two shards fill one --out without touching each other's
items, a re-run skips the finished items and redoes a half-finished one, and the shards' tracker datasets merge into
one with unique names and ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trackdiffusion.data.dataset_merge import merge_datasets
from trackdiffusion.data.tracklets import load
from trackdiffusion.nodes.runner.cli import main
from trackdiffusion.nodes.runner.comfy_env import start_comfyui
from trackdiffusion.nodes.runner.run import run_batch
from trackdiffusion.nodes.runner.shards import FINISHED_MARKER


def tracklets(frames: int, shift: int) -> str:
    return json.dumps({"format": "trackdiffusion.tracklets", "version": 1, "width": 32, "height": 24,
                       "num_frames": frames, "fps": 7, "objects": [
                           {"id": 3, "label": "car", "keyframes": [{"frame": 0, "box": [2 + shift, 2, 12 + shift, 12]},
                                                                   {"frame": frames - 1, "box": [10, 8, 20, 18]}]},
                           {"id": 8, "label": "person", "keyframes": [{"frame": 0, "box": [14, 4, 22, 20]}]}]})


def workflow(save: dict) -> dict:
    return {"1": {"class_type": "LoadTracklets",
                  "inputs": {"source": "set by --batch", "format": "auto", "width": 0, "height": 0, "num_frames": 0,
                             "video": "", "box_size": 64.0, "strict": False}},
            "2": {"class_type": "VisualizeTracklets",
                  "inputs": {"tracklets": ["1", 0], "trail": True, "thickness": 1, "labels": False}},
            "3": save}


SAVE_IMAGES = {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "td"}}
SAVE_DATASET = {"class_type": "SaveTrackingDataset",
                "inputs": {"images": ["2", 0], "tracklets": ["1", 0], "dataset": "trackdiffusion_dataset",
                           "sequence_prefix": "synth", "image_format": "png"}}


@pytest.fixture(scope="module")
def runtime(comfy):
    return start_comfyui(comfy.path)  # adopts the harness's ComfyUI (same process)


@pytest.fixture
def batch(tmp_path) -> Path:
    folder = tmp_path / "tracks"
    folder.mkdir()
    for i, stem in enumerate(("e", "a", "d", "b", "c")):
        (folder / f"{stem}.json").write_text(tracklets(2 + i % 2, i))
    return folder


def test_two_shards_share_one_out_and_a_rerun_skips_what_finished(runtime, batch, tmp_path, capsys):
    out = tmp_path / "out"
    first = run_batch(workflow(SAVE_IMAGES), batch, out=out, comfyui=runtime.path, shard="1/2")
    assert [(r.name, r.skipped) for r in first] == [("a", False), ("c", False), ("e", False)]
    assert sorted(p.name for p in out.iterdir()) == ["a", "c", "e"]  # shard 1's items, each as it finished
    # shard 2 into the same --out, through the command
    assert main([str(_saved(tmp_path, workflow(SAVE_IMAGES))), "--comfyui", str(runtime.path), "--batch",
                 str(batch), "--out", str(out), "--shard", "2/2"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "shard 2/2: 2 items, 2 run, 0 finished earlier"
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "d", "e"]  # no staging folder left
    for stem in "abcde":
        assert (out / stem / FINISHED_MARKER).is_file()
        prompt = json.loads((out / stem / "prompt.json").read_text())
        assert prompt["1"]["inputs"]["source"] == str((batch / f"{stem}.json").resolve())

    # c is half-finished (its marker never came: a copy cut short, a run killed before the rename of an older
    # version), and a killed run left a staging folder for it; a is finished and must be left alone
    (out / "c" / FINISHED_MARKER).unlink()
    (out / "c" / "junk.png").write_bytes(b"half")
    (out / ".c.partial-0badf00d").mkdir()
    a_files = {p.name: p.stat().st_mtime_ns for p in (out / "a").iterdir()}
    again = run_batch(workflow(SAVE_IMAGES), batch, out=out, comfyui=runtime.path, shard="1/2")
    assert [(r.name, r.skipped) for r in again] == [("a", True), ("c", False), ("e", True)]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "a").iterdir()} == a_files
    assert again[1].files == first[1].files == [out.absolute() / "c" / f"td_0000{i}_.png" for i in (1, 2)]
    assert sorted(p.name for p in (out / "c").iterdir()) == [FINISHED_MARKER, "outputs.json", "prompt.json",
                                                             "td_00001_.png", "td_00002_.png"]  # junk.png gone
    assert again[0].files == first[0].files  # a skipped item reports the files it has
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "d", "e"]


def _saved(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(data))
    return path


def test_sharded_dataset_runs_merge_into_one_dataset(runtime, batch, tmp_path):
    """The dataset workflow in 3 shards into one --out: every item numbers its sequence synth_00001; the merge names
    them uniquely, renumbers the tracks across items, and our readers read the result back."""
    out = tmp_path / "out"
    for k in (1, 2, 3):
        run_batch(workflow(SAVE_DATASET), batch, out=out, comfyui=runtime.path, shard=f"{k}/3")
    sequences = sorted(out.glob("*/trackdiffusion_dataset/synth_*"))
    assert [s.relative_to(out).as_posix() for s in sequences] == [
        f"{stem}/trackdiffusion_dataset/synth_00001" for stem in "abcde"]
    result = merge_datasets(tmp_path / "merged", [out])
    names = [name for name, _ in result.sequences]
    assert names == [f"synth_{i:05d}" for i in range(1, 6)] and result.tracks == 10
    ytvis = json.loads((tmp_path / "merged" / "ytvis.json").read_text())
    assert sorted(a["id"] for a in ytvis["annotations"]) == list(range(1, 11))
    for name, source in result.sequences:
        before, after = load(source / "gt" / "gt.txt").dense(), load(tmp_path / "merged" / "ytvis.json",
                                                                      video=name).dense()
        assert len(after.ids) == 2 and after.labels == ["car", "person"]
        assert (after.boxes == before.boxes).all()


def test_a_failing_item_stops_the_shard_and_the_rerun_goes_on_from_it(runtime, tmp_path):
    from trackdiffusion.nodes.runner.results import WorkflowFailed

    folder, out = tmp_path / "tracks", tmp_path / "out"
    folder.mkdir()
    (folder / "a.json").write_text(tracklets(2, 0))
    (folder / "b.json").write_text(tracklets(2, 0).replace("[2, 2, 12, 12]", "[12, 2, 2, 12]"))  # x2 < x1
    (folder / "c.json").write_text(tracklets(2, 1))
    with pytest.raises(WorkflowFailed, match="node 1 \\(LoadTracklets\\) failed"):
        run_batch(workflow(SAVE_IMAGES), folder, out=out, comfyui=runtime.path, shard="1/1")
    assert sorted(p.name for p in out.iterdir()) == ["a"]  # a stays finished; b's staging and the scratch are gone
    (folder / "b.json").write_text(tracklets(2, 2))
    again = run_batch(workflow(SAVE_IMAGES), folder, out=out, comfyui=runtime.path, shard="1/1")
    assert [(r.name, r.skipped) for r in again] == [("a", True), ("b", False), ("c", False)]
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c"]
