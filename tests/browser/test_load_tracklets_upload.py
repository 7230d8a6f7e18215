"""Load Tracklets' upload button (js/load_tracklets_upload.js) in the real ComfyUI frontend: a server with this pack
(the bundled frontend, a temporary --base-directory), headless Chromium, a real click on the button and the file
chooser it opens. The button is never saved, the file lands in input/tracklets/ byte for byte, the node's `file`
widget names it, and the queued prompt loads it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.comfyui import require_comfyui
from support.server import comfy_server

HERE = Path(__file__).resolve().parent
NAME = "td_upload_tracks.json"
#: the Python schema's widgets, in order; the button must not add a value
SCHEMA_WIDGETS = ["source", "format", "width", "height", "num_frames", "video", "box_size", "strict", "file"]
DEFAULTS = ["", "auto", 0, 0, 0, "", 64.0, False, "(source text)"]  # nodes.tracklet_nodes.FROM_SOURCE


def _doc(x: int) -> bytes:
    return json.dumps({"version": 1, "width": 64, "height": 48, "num_frames": 3, "objects": [
        {"id": 1, "label": "car", "keyframes": [{"frame": 0, "box": [x, 4, x + 16, 20]},
                                                {"frame": 2, "box": [x + 20, 8, x + 36, 24]}]}]}).encode()


@pytest.fixture(scope="module")
def driven(browser_ready, tmp_path_factory):
    comfyui = require_comfyui()
    files = tmp_path_factory.mktemp("upload")
    first, second = files / "first" / NAME, files / "second" / NAME
    for path, x in ((first, 2), (second, 10)):
        path.parent.mkdir()
        path.write_bytes(_doc(x))
    base = tmp_path_factory.mktemp("comfy_server_upload")
    with comfy_server(comfyui, base) as server:
        server.request("/settings/Comfy.TutorialCompleted", True)  # no template browser over the canvas
        proc = subprocess.run(["node", str(HERE / "drive_load_tracklets.mjs"), server.url, str(first), str(second)],
                              check=False, capture_output=True, text=True, timeout=300, cwd=HERE)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        result = json.loads(proc.stdout)
        result["history"] = server.get("/history")
        result["log"] = server.log_tail()
    result["base"], result["paths"] = base, (first, second)
    return result


def test_button_is_added_and_never_serialised(driven):
    assert driven["errors"] == []
    added = driven["added"]
    assert added["widgetNames"][: len(SCHEMA_WIDGETS)] == SCHEMA_WIDGETS
    assert "upload tracklets file" in added["widgetNames"]
    assert added["button"]["type"] == "button" and added["button"]["serialize"] is False
    # One hidden picker per node, gone with the node.
    assert driven["pickersAfterAdd"] == driven["pickersBefore"] + 1
    assert driven["pickersAfterRemove"] == driven["pickersBefore"]
    before = driven["before"]
    assert before["widgets_values"] == DEFAULTS  # 9 values, positionally the schema's: no entry for the button
    assert before["nodeSerialize"] == DEFAULTS
    assert sorted(before["api"]) == sorted(SCHEMA_WIDGETS)


def test_upload_sets_file_and_lands_in_the_input_folder(driven):
    first, second = driven["first"], driven["second"]
    assert first["accept"] == ".json,.txt,.csv"
    assert first["done"] and first["value"] == f"tracklets/{NAME}"
    renamed = NAME.replace(".json", " (1).json")  # same name, other bytes: the server keeps both
    assert second["done"] and second["value"] == f"tracklets/{renamed}"
    assert {f"tracklets/{NAME}", f"tracklets/{renamed}"} <= set(second["listed"])
    folder = driven["base"] / "input" / "tracklets"
    assert (folder / NAME).read_bytes() == driven["paths"][0].read_bytes()
    assert (folder / renamed).read_bytes() == driven["paths"][1].read_bytes()
    after = driven["after"]
    assert after["widgets_values"] == DEFAULTS[:-1] + [f"tracklets/{renamed}"]
    assert after["api"]["file"] == f"tracklets/{renamed}"


def test_queued_prompt_loads_the_uploaded_file(driven):
    assert driven["queued"] is True and driven["ran"] is True, driven["log"]
    (entry,) = driven["history"].values()
    assert entry["status"]["status_str"] == "success", (entry["status"], driven["log"])
    prompt = entry["prompt"][2]
    (load_id,) = [i for i, n in prompt.items() if n["class_type"] == "LoadTracklets"]
    assert prompt[load_id]["inputs"]["file"] == f"tracklets/{NAME.replace('.json', ' (1).json')}"
    (images,) = [o["images"] for o in entry["outputs"].values() if "images" in o]
    assert len(images) == 3  # Visualize Tracklets drew the uploaded file's 3 frames
