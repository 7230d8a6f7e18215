"""A shared ComfyUI server: whoever can queue a workflow sets node inputs, so Load Tracklets reads files inside
ComfyUI's input folder only. Absolute paths, '..' and symlinks out are refused through ComfyUI's executor with the
same words whether or not the outside file exists; what the file holds never reaches the outputs or the error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STREET = json.loads((REPO / "example_workflows" / "input" / "tracklets" / "street.json").read_text())
SECRET = "do-not-leak-this-label"


def _load(source: str) -> dict:
    return {"1": {"class_type": "LoadTracklets", "inputs": {
        "source": source, "format": "auto", "width": 0, "height": 0, "num_frames": 0, "video": "", "box_size": 64.0,
        "strict": False}}, "2": {"class_type": "TDTestProbe", "inputs": {"value": ["1", 0]}}}


def _error(comfy, source: str) -> str:
    outputs, messages, success = comfy.run_prompt(_load(source))
    assert not success, f"{source!r} was read: {outputs}"
    errors = [data for event, data in messages if event == "execution_error"]
    assert errors and errors[0]["node_id"] == "1" and errors[0]["exception_type"].endswith("InvalidInputError")
    return errors[0]["exception_message"]


@pytest.fixture(scope="module")
def files(comfy_with_probe, tmp_path_factory):
    import folder_paths

    inside = Path(folder_paths.get_input_directory())
    (inside / "confinement" / "nested").mkdir(parents=True, exist_ok=True)
    (inside / "confinement" / "nested" / "ok.json").write_text(json.dumps(STREET))
    outside = tmp_path_factory.mktemp("outside")
    secret = dict(STREET, objects=[dict(STREET["objects"][0], label=SECRET)])
    (outside / "secret.json").write_text(json.dumps(secret))
    link = inside / "confinement" / "link.json"
    if not link.exists():
        os.symlink(outside / "secret.json", link)
    return inside, outside


def test_a_file_in_the_input_folder_loads(comfy_with_probe, files):
    outputs, messages, success = comfy_with_probe.run_prompt(_load("confinement/nested/ok.json"))
    assert success, messages
    assert outputs["2"]["probe"][0]["tracklets"]["objects"][0]["label"] == STREET["objects"][0]["label"]


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "home"])
def test_paths_leaving_the_input_folder_are_refused_alike(comfy_with_probe, files, kind):
    inside, outside = files
    existing = {"absolute": str(outside / "secret.json"),
                "dotdot": os.path.relpath(outside / "secret.json", inside),
                "symlink": "confinement/link.json",
                "home": "~/secret.json"}[kind]
    missing = {"absolute": str(outside / "missing.json"),
               "dotdot": os.path.relpath(outside / "missing.json", inside),
               "symlink": "confinement/no-link.json",
               "home": "~/missing.json"}[kind]
    message = _error(comfy_with_probe, existing)
    assert SECRET not in message
    assert "input folder" in message
    # the same words for a file that does not exist: nothing tells the outside file is there
    assert message.replace(existing[:80], "X") == _error(comfy_with_probe, missing).replace(missing[:80], "X")


def test_pasted_text_still_loads(comfy_with_probe):
    _outputs, messages, success = comfy_with_probe.run_prompt(_load(json.dumps(STREET)))
    assert success, messages


def test_the_input_folders_tracklet_files_are_offered_as_a_list(comfy_with_probe, files):
    """As core loaders list their files: the node's 'file' choices are the input folder's tracklet files (hidden ones
    and other kinds left out); a listed file loads; a name that is not in the list fails ComfyUI's validation."""
    inside, _ = files
    (inside / "confinement" / ".hidden.json").write_text(json.dumps(STREET))
    (inside / "confinement" / "picture.png").write_bytes(b"not tracklets")
    node = comfy_with_probe.node_class("LoadTracklets")
    options = node.GET_SCHEMA().inputs[-1].options
    assert options[0] == "(source text)" and "confinement/nested/ok.json" in options
    assert "tracklets/street.json" in options  # the example inputs the pack copied
    assert not any(name.endswith((".png", ".hidden.json")) for name in options)
    prompt = _load("")
    prompt["1"]["inputs"]["file"] = "confinement/nested/ok.json"
    outputs, messages, success = comfy_with_probe.run_prompt(prompt)
    assert success, messages
    assert outputs["2"]["probe"][0]["tracklets"]["objects"][0]["label"] == STREET["objects"][0]["label"]
    prompt["1"]["inputs"]["file"] = "../../etc/passwd"
    with pytest.raises(AssertionError, match="prompt invalid"):
        comfy_with_probe.run_prompt(prompt)
