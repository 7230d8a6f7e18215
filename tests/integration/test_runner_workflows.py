"""The headless runner on real ComfyUI, in process: the converter against the real node definitions, the example
workflows through ComfyUI's validation, and end-to-end runs of our nodes on the CPU (single, UI format, batch,
failing) with the files they write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support.examples import all_examples, example, key_of
from support.workflows import LOAD, NODE_INFOS, SAVE, VIS, ui
from trackdiffusion.nodes.runner.cli import main
from trackdiffusion.nodes.runner.comfy_env import start_comfyui
from trackdiffusion.nodes.runner.convert import combo_options, widget_slots
from trackdiffusion.nodes.runner.executor import Runner
from trackdiffusion.nodes.runner.results import WorkflowFailed, WorkflowInvalid
from trackdiffusion.nodes.runner.run import run_batch, run_workflow

EXAMPLES = all_examples()


def tracklets(width: int, height: int, frames: int, box=(4, 4, 20, 20)) -> str:
    return json.dumps({"format": "trackdiffusion.tracklets", "version": 1, "width": width, "height": height,
                       "num_frames": frames, "fps": 7, "objects": [
                           {"id": 1, "label": "car", "interpolation": "linear", "keyframes": [
                               {"frame": 0, "box": list(box), "visible": True},
                               {"frame": frames - 1, "box": [b + 8 for b in box], "visible": True}]}]})


BAD = ('{"format": "trackdiffusion.tracklets", "version": 1, "width": 64, "height": 48, "num_frames": 3, '
       '"objects": [{"id": 1, "keyframes": [{"frame": 0, "box": [30, 30, 10, 10]}]}]}')


def api_workflow(source: str, prefix: str = "td") -> dict:
    return {"1": {"class_type": "LoadTracklets", "_meta": {"title": "Boxes"},
                  "inputs": {"source": source, "format": "auto", "width": 0, "height": 0, "num_frames": 0,
                             "video": "", "box_size": 64.0, "strict": False}},
            "2": {"class_type": "VisualizeTracklets",
                  "inputs": {"tracklets": ["1", 0], "trail": True, "thickness": 2, "labels": True}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}}}


@pytest.fixture(scope="module")
def runtime(comfy):
    rt = start_comfyui(comfy.path)  # adopts the harness's ComfyUI (same process)
    assert rt.nodes is comfy.nodes
    return rt


def _pngs(folder: Path) -> list[tuple[int, int]]:
    return [Image.open(p).size for p in sorted(folder.glob("*.png"))]


def test_node_info_fixture_matches_the_real_definitions(runtime):
    """The unit tests' committed node infos are what this ComfyUI reports, in every detail the converter uses."""
    for node_type, fixture in NODE_INFOS.items():
        real = runtime.node_info(node_type)
        assert real is not None, node_type
        assert list(real["output"]) == fixture["output"], node_type
        assert bool(real.get("output_node")) == fixture["output_node"], node_type
        assert [(s.name, s.kind, s.default if not combo_options(s.spec) else None) for s in widget_slots(real)] == \
               [(s.name, s.kind, s.default if not combo_options(s.spec) else None) for s in widget_slots(fixture)]
        for section in ("required", "optional"):
            real_specs, fixed_specs = real["input"].get(section, {}), fixture["input"].get(section, {})
            assert list(real_specs) == list(fixed_specs), (node_type, section)
            for name, spec in real_specs.items():
                kind = "COMBO" if combo_options(spec) is not None else spec[0]
                assert kind == ("COMBO" if combo_options(fixed_specs[name]) is not None else fixed_specs[name][0])


FILE_NAME = re.compile(r"\.(safetensors|sft|ckpt|pt|pth|bin|gguf|png|jpe?g|webp)$", re.IGNORECASE)


def missing_file(info: dict, error: dict) -> str | None:
    """The file (or folder) name a validation error says is missing, or None when the error is anything else: a
    combo value that is not offered because the file is absent (a file name, or any name when nothing is
    installed), or LoadImage's "Invalid image file"."""
    extra = error.get("extra_info") or {}
    name = extra.get("input_name")
    if error["type"] == "custom_validation_failed" and "Invalid image file" in error.get("details", ""):
        return error["details"].split("Invalid image file: ")[-1]
    if error["type"] != "value_not_in_list" or not name:
        return None
    specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    value, options = extra.get("received_value"), combo_options(specs[name]) or []
    return value if isinstance(value, str) and (FILE_NAME.search(value) or not options) else None


# Example workflows that need no model file at all (the embedded demo model; the shipped tiny SVD and its adapter;
# their inputs are the pack's example inputs, copied into the input folder when ComfyUI loads the pack): they
# validate as they are.
NO_DOWNLOAD = {"demo_cpu", "motion_from_video", "tiny_svd_trackdiffusion_cpu"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[key_of(p) for p in EXAMPLES])
def test_example_workflows_validate_except_for_the_absent_model_files(runtime, path, tmp_path):
    runner = Runner(runtime)
    prompt, warnings = runner.prepare(json.loads(path.read_text()))
    assert warnings == []
    if key_of(path) in NO_DOWNLOAD:
        outputs = runner.validate(prompt)
        assert outputs and all(runtime.is_output_node(prompt[o]["class_type"]) for o in outputs)
        return
    with pytest.raises(WorkflowInvalid) as err:
        runner.validate(prompt)
    missing = []
    for node_id, class_type, error in err.value.errors:
        name = missing_file(runtime.node_info(class_type), error)
        assert name, f"{path.name}: not a missing-file error: node {node_id} ({class_type}): {error}"
        missing.append(name)
    if path.stem.startswith("svd_"):
        # the SVD checkpoint and, where the workflow has one, the adapter file: nothing else is missing
        expected = {prompt["1"]["inputs"]["ckpt_name"]} | {
            entry["inputs"]["adapter_name"] for entry in prompt.values()
            if entry["class_type"] == "LoadTrackDiffusionAdapter"}
        assert {n for n in missing if n.endswith(".safetensors")} == expected
    if not all(FILE_NAME.search(n) for n in missing):
        return  # a missing folder: its loader's listing rules are its own

    # With (empty) files of those names in place, the workflow validates completely: nothing else is wrong with it.
    fp = runtime.folder_paths
    models, image_dir = tmp_path / "models", Path(fp.get_input_directory())
    created = []
    for name in missing:
        target = image_dir / name if name.lower().endswith((".png", ".jpg", ".jpeg", ".webp")) else models / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent == image_dir:
                Image.new("RGB", (8, 8)).save(target)
            else:
                target.write_bytes(b"")
            created.append(target)
    folders = [f for f in fp.folder_names_and_paths if f != "custom_nodes"]
    for folder in folders:
        fp.add_model_folder_path(folder, str(models))
    try:
        outputs = runner.validate(runner.prepare(json.loads(path.read_text()))[0])
        assert outputs and all(runtime.is_output_node(prompt[o]["class_type"]) for o in outputs)
    finally:
        for folder in folders:
            fp.folder_names_and_paths[folder][0].remove(str(models))
            fp.filename_list_cache.pop(folder, None)  # else the listing with our empty files stays cached
        for target in created:
            if target.parent == image_dir:
                target.unlink()


def test_api_workflow_runs_end_to_end(runtime, tmp_path):
    out = tmp_path / "out"
    result = run_workflow(api_workflow(tracklets(64, 48, 3)), comfyui=runtime.path, out=out)
    assert result.out_dir == out and sorted(p.name for p in result.files) == [f"td_0000{i}_.png" for i in (1, 2, 3)]
    assert _pngs(out) == [(64, 48)] * 3
    assert sorted(p.name for p in out.iterdir()) == ["outputs.json", "prompt.json", "td_00001_.png",
                                                     "td_00002_.png", "td_00003_.png"]
    record = json.loads((out / "outputs.json").read_text())
    assert record["3"]["class_type"] == "SaveImage" and record["3"]["files"] == [p.name for p in result.files]
    assert json.loads((out / "prompt.json").read_text())["2"]["class_type"] == "VisualizeTracklets"
    frames = np.asarray(Image.open(out / "td_00001_.png"))
    assert frames.std() > 0  # boxes were drawn
    assert not list(tmp_path.glob(".out.partial-*"))


def test_ui_workflow_with_bypass_primitive_and_override_runs(runtime, tmp_path):
    load = {**LOAD, "widgets": [tracklets(48, 32, 4), "auto", 0, 0, 0, "", 64.0, False], "title": "Boxes"}
    vis = {**VIS, "inputs": [*VIS["inputs"], ("thickness", "INT", "thickness")]}
    invert = {"id": 4, "type": "ImageInvert", "mode": 4, "inputs": [("image", "IMAGE")]}
    primitive = {"id": 5, "type": "PrimitiveNode", "widgets": [3, "fixed"]}
    preview = {"id": 6, "type": "PreviewImage", "mode": 2, "inputs": [("images", "IMAGE")]}
    workflow = ui([load, vis, SAVE, invert, primitive, preview],
                       [(1, 1, 0, 2, "tracklets", "TRACKLETS"), (2, 2, 0, 4, "image", "IMAGE"),
                        (3, 4, 0, 3, "images", "IMAGE"), (4, 5, 0, 2, "thickness", "INT"),
                        (5, 2, 0, 6, "images", "IMAGE")])
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(workflow))
    result = run_workflow(path, comfyui=runtime.path, out=tmp_path / "out", overrides=["Boxes.num_frames=2"])
    assert set(result.prompt) == {"1", "2", "3"}
    assert result.prompt["3"]["inputs"]["images"] == ["2", 0] and result.prompt["2"]["inputs"]["thickness"] == 3
    assert _pngs(tmp_path / "out") == [(48, 32)] * 2


def test_batch_runs_once_per_tracklet_file(runtime, tmp_path):
    folder = tmp_path / "tracks"
    folder.mkdir()
    (folder / "wide.json").write_text(tracklets(64, 32, 3))
    (folder / "tall.json").write_text(tracklets(32, 64, 2))
    results = run_batch(api_workflow("replaced by --batch"), folder, out=tmp_path / "out", comfyui=runtime.path)
    assert [r.name for r in results] == ["tall", "wide"]
    assert _pngs(tmp_path / "out" / "tall") == [(32, 64)] * 2
    assert _pngs(tmp_path / "out" / "wide") == [(64, 32)] * 3
    prompt = json.loads((tmp_path / "out" / "wide" / "prompt.json").read_text())
    assert prompt["1"]["inputs"]["source"] == str((folder / "wide.json").resolve())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tall", "wide"]


def test_batch_reuses_cached_output_files(runtime, tmp_path):
    """An output node served from the cache in a later batch item still gets its files in that item's folder."""
    folder = tmp_path / "tracks"
    folder.mkdir()
    (folder / "a.json").write_text(tracklets(32, 32, 2))
    (folder / "b.json").write_text(tracklets(32, 32, 2, box=(2, 2, 12, 12)))
    workflow = api_workflow("x")
    workflow["4"] = {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 16, "height": 8}}
    workflow["5"] = {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}}
    workflow["6"] = {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "mask"}}
    run_batch(workflow, folder, out=tmp_path / "out", comfyui=runtime.path)
    for item in ("a", "b"):
        names = sorted(p.name for p in (tmp_path / "out" / item).glob("*.png"))
        assert names == ["mask_00001_.png", "td_00001_.png", "td_00002_.png"], item
        assert json.loads((tmp_path / "out" / item / "outputs.json").read_text())["6"]["files"] == ["mask_00001_.png"]


def test_failing_workflow_names_the_node_and_writes_nothing(runtime, tmp_path):
    with pytest.raises(WorkflowFailed) as err:
        run_workflow(api_workflow(BAD), comfyui=runtime.path, out=tmp_path / "out")
    assert (err.value.node_id, err.value.node_type) == ("1", "LoadTracklets")
    assert "x2 <= x1" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_cli_exit_status_and_messages(runtime, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(api_workflow(BAD)))
    assert main([str(bad), "--comfyui", str(runtime.path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: node 1 (LoadTracklets) failed: tracklets input, object 1, frame 0: box")
    assert not (tmp_path / "out").exists()

    svd = example("svd_trackdiffusion")
    assert main([str(svd), "--comfyui", str(runtime.path), "--set", "TrackDiffusionSampler.steps=2"]) == 2
    err = capsys.readouterr().err
    assert "error: the workflow does not validate" in err
    assert "node 1 (ImageOnlyCheckpointLoader): Value not in list: ckpt_name: 'svd.safetensors' not in" in err

    good = tmp_path / "good.json"
    good.write_text(json.dumps(api_workflow(tracklets(32, 32, 2))))
    assert main([str(good), "--comfyui", str(runtime.path), "--out", str(tmp_path / "ok")]) == 0
    assert "2 files in" in capsys.readouterr().out
