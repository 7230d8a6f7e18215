"""The pack in the real ComfyUI server, over HTTP on loopback: installed under an odd folder name, its nodes listed by
/object_info, API prompts queued with POST /prompt and followed through /history (a run that writes images, and one
that fails in our node), and UI workflows converted with the server's own /object_info (the comfy-cli route)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from support.examples import TITLES, all_examples, example, key_of
from support.server import PACK_FOLDER_NAME
from support.workflows import LOAD, SAVE, VIS, ui
from trackdiffusion.nodes.runner.convert import combo_options, to_api_prompt


@pytest.fixture(scope="module")
def server(comfy_server):
    return comfy_server


def tracklets(width: int, height: int, frames: int, box=(2, 2, 12, 12)) -> str:
    return json.dumps({"format": "trackdiffusion.tracklets", "version": 1, "width": width, "height": height,
                       "num_frames": frames, "objects": [{"id": 1, "keyframes": [
                           {"frame": 0, "box": list(box)}, {"frame": frames - 1, "box": [b + 6 for b in box]}]}]})


def api_workflow(source: str, prefix: str) -> dict:
    return {"1": {"class_type": "LoadTracklets",
                  "inputs": {"source": source, "format": "auto", "width": 0, "height": 0, "num_frames": 0,
                             "video": "", "box_size": 64.0, "strict": False}},
            "2": {"class_type": "VisualizeTracklets",
                  "inputs": {"tracklets": ["1", 0], "trail": True, "thickness": 2, "labels": True}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}}}


def test_pack_loads_under_an_odd_folder_name(server):
    status, info = server.request("/object_info/LoadTracklets")
    assert status == 200 and info["LoadTracklets"]["output"] == ["TRACKLETS", "INT", "INT", "INT"]
    assert info["LoadTracklets"]["python_module"] == f"custom_nodes.{PACK_FOLDER_NAME}"


def test_prompt_runs_and_writes_images(server):
    entry = server.run(api_workflow(tracklets(40, 24, 3), "srv"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = entry["outputs"]["3"]["images"]
    assert [i["filename"] for i in images] == ["srv_00001_.png", "srv_00002_.png", "srv_00003_.png"]
    for image in images:
        assert (server.base / "output" / image["subfolder"] / image["filename"]).is_file()
    query = urllib.parse.urlencode({"filename": images[0]["filename"], "subfolder": "", "type": "output"})
    status, body = server.request(f"/view?{query}")
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"


def test_failing_prompt_reports_our_node_and_message(server):
    bad = tracklets(40, 24, 3, box=(30, 20, 10, 5))
    entry = server.run(api_workflow(bad, "bad"))
    assert entry["status"]["status_str"] == "error"
    errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
    assert errors[0]["node_id"] == "1" and errors[0]["node_type"] == "LoadTracklets"
    assert "x2 <= x1" in errors[0]["exception_message"]


def test_invalid_prompt_is_refused_with_node_errors(server):
    prompt = api_workflow(tracklets(40, 24, 3), "x")
    prompt["2"]["inputs"]["thickness"] = 99
    status, reply = server.request("/prompt", {"prompt": prompt})
    assert status == 400 and reply["error"]["type"] == "prompt_outputs_failed_validation"
    assert reply["node_errors"]["2"]["errors"][0]["type"] == "value_bigger_than_max"


def test_template_browser_lists_and_serves_the_examples_under_their_titles(server):
    """The frontend's template browser asks /api/workflow_templates for each pack's template names (the file stems,
    which it shows as the card titles) and fetches <name>.json and <name>.jpg under /api/workflow_templates/<pack>/:
    names with spaces, commas and dashes, URL-encoded."""
    listed = server.get("/api/workflow_templates")
    assert sorted(listed[PACK_FOLDER_NAME]) == sorted(TITLES.values()) == sorted(p.stem for p in all_examples())
    path = example("svd_boxes_training_free")
    assert " " in path.stem and "," in path.stem
    base = f"/api/workflow_templates/{urllib.parse.quote(PACK_FOLDER_NAME)}/{urllib.parse.quote(path.stem)}"
    assert server.get(base + ".json") == json.loads(path.read_text())
    status, thumbnail = server.request(base + ".jpg")
    assert status == 200 and thumbnail == path.with_suffix(".jpg").read_bytes()


# Example workflows (by key, support.examples) that run with no model file installed -> the ids of their save nodes.
NEEDS_NO_MODEL_FILES = {"demo_cpu": ("2", "4"), "motion_from_video": ("7", "8"),
                        "tiny_svd_trackdiffusion_cpu": ("11", "12")}


def test_ui_workflows_converted_with_the_servers_object_info(server):
    status, object_info = server.request("/object_info")
    assert status == 200
    # Our nodes in a UI workflow with a bypassed node: converted, queued, run.
    load = {**LOAD, "widgets": [tracklets(24, 24, 2), "auto", 0, 0, 0, "", 64.0, False]}
    invert = {"id": 4, "type": "ImageInvert", "mode": 4, "inputs": [("image", "IMAGE")]}
    workflow = ui([load, VIS, {**SAVE, "widgets": ["ui"]}, invert],
                       [(1, 1, 0, 2, "tracklets", "TRACKLETS"), (2, 2, 0, 4, "image", "IMAGE"),
                        (3, 4, 0, 3, "images", "IMAGE")])
    entry = server.run(to_api_prompt(workflow, object_info))
    assert entry["status"]["status_str"] == "success"
    assert len(entry["outputs"]["3"]["images"]) == 2
    # The example workflows: the server refuses them only for the model (and image) files that are not installed;
    # those that need none (the embedded demo model on the CPU, the example inputs the pack copies into input/) run.
    for path in all_examples():
        prompt = to_api_prompt(json.loads(path.read_text()), object_info)
        if key_of(path) in NEEDS_NO_MODEL_FILES:
            entry = server.run(prompt, timeout=300)
            assert entry["status"]["status_str"] == "success", (path.name, entry["status"])
            saves = NEEDS_NO_MODEL_FILES[key_of(path)]
            assert [len(entry["outputs"][n]["images"]) for n in saves] == [1] * len(saves), path.name
            continue
        status, reply = server.request("/prompt", {"prompt": prompt})
        assert status == 400 and reply["node_errors"], path.name
        for node_id, entry in reply["node_errors"].items():
            for error in entry["errors"]:
                assert _missing_file(object_info[entry["class_type"]], error), (path.name, node_id, error)


def _missing_file(info: dict, error: dict) -> bool:
    """A combo value not offered because the file is absent (a file name, or anything when nothing is installed),
    or LoadImage's "Invalid image file"."""
    if error["type"] == "custom_validation_failed":
        return "Invalid image file" in error["details"]
    if error["type"] != "value_not_in_list":
        return False
    specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    value, options = error["extra_info"]["received_value"], combo_options(specs[error["extra_info"]["input_name"]])
    return isinstance(value, str) and (value.endswith((".safetensors", ".ckpt", ".pt", ".pth")) or not options)
