"""No input can make a node allocate without bound: outputs are estimated from the inputs and refused over the
documented limit (TRACKDIFFUSION_MAX_OUTPUT_GB, default 4 GiB per output) before anything is allocated, through
ComfyUI's executor; peak memory stays small."""

from __future__ import annotations

import json
import resource

import pytest

BOX = {"version": 1, "width": 64, "height": 64, "num_frames": 2, "objects": [
    {"id": 1, "label": "a", "keyframes": [{"frame": 0, "box": [1, 1, 20, 20]}]}]}


def _editor(width, height, frames, state=""):
    return {"class_type": "TrackletEditor", "inputs": {"tracklets_json": state, "width": width, "height": height,
                                                        "num_frames": frames}}


def _run_error(comfy, prompt) -> str:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _outputs, messages, success = comfy.run_prompt(prompt)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert not success
    errors = [data for event, data in messages if event == "execution_error"]
    assert errors and errors[0]["exception_type"].endswith("InvalidInputError"), errors
    assert grown_mb < 200, f"peak memory grew by {grown_mb:.0f} MB before the refusal"
    return errors[0]["exception_message"]


def test_the_largest_tracklet_editor_is_refused_before_allocating(comfy_with_probe):
    prompt = {"1": _editor(16384, 16384, 4096)}
    message = _run_error(comfy_with_probe, prompt)
    assert "4096 x 16384 x 16384 x 3" in message and "limit of 4.0 GiB" in message


def test_masks_are_counted_per_object(comfy_with_probe, monkeypatch):
    # the preview fits a 0.1 GiB limit, the masks of 40 objects do not
    monkeypatch.setenv("TRACKDIFFUSION_MAX_OUTPUT_GB", "0.1")
    objects = [dict(BOX["objects"][0], id=i) for i in range(1, 41)]
    state = json.dumps(dict(BOX, width=1024, height=1024, num_frames=8, objects=objects))
    message = _run_error(comfy_with_probe, {"1": _editor(1024, 1024, 8, state)})
    assert "masks output would be 40 x 8 x 1024 x 1024" in message


def test_an_ordinary_editor_runs(comfy_with_probe):
    prompt = {"1": _editor(256, 128, 4, json.dumps(BOX)),
              "2": {"class_type": "TDTestProbe", "inputs": {"value": ["1", 2]}}}
    outputs, messages, success = comfy_with_probe.run_prompt(prompt)
    assert success, messages
    assert outputs["2"]["probe"][0]["shape"] == [4, 128, 256]


@pytest.mark.parametrize("node", ["VisualizeTracklets", "PointTrajectoryBuilder"])
def test_other_nodes_with_sized_outputs(comfy_with_probe, node):
    if node == "VisualizeTracklets":
        big = dict(BOX, width=16384, height=16384, num_frames=4096)
        prompt = {"1": {"class_type": "LoadTracklets", "inputs": {
            "source": json.dumps(big), "format": "auto", "width": 0, "height": 0, "num_frames": 0, "video": "",
            "box_size": 64.0, "strict": False}},
            "2": {"class_type": "VisualizeTracklets", "inputs": {"tracklets": ["1", 0], "trail": True,
                                                                 "thickness": 2, "labels": True}},
            "3": {"class_type": "TDTestProbe", "inputs": {"value": ["2", 0]}}}
    else:
        prompt = {"1": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 4096, "height": 4096}},
                  "2": {"class_type": "PointTrajectoryBuilder", "inputs": {
                      "masks": ["1", 0], "arrows": json.dumps([[[10, 10], [40, 20]]]), "num_frames": 1024, "seed": 0,
                      "point_size": 4}},
                  "3": {"class_type": "TDTestProbe", "inputs": {"value": ["2", 2]}}}
    message = _run_error(comfy_with_probe, prompt)
    assert "over this pack's limit" in message


def test_an_oversized_editor_state_is_refused(comfy_with_probe):
    huge = " " * (16 * 2**20 + 1)
    message = _run_error(comfy_with_probe, {"1": _editor(64, 64, 2, huge)})
    assert "editor state is 16,777,217 characters" in message
