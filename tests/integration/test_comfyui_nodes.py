"""The pack inside real ComfyUI: registration from an arbitrary folder name, and API-format prompts executed by
ComfyUI's own PromptExecutor, wired to core nodes (SolidMask, WanMoveConcatTrack)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STREET = (REPO / "example_workflows" / "input" / "tracklets" / "street.json").read_text()
OUR_NODES = ("LoadTracklets", "TrackletsToTracks", "VisualizeTracklets", "PointTrajectoryBuilder")


def _load_node(source: str, **overrides) -> dict:
    inputs = {"source": source, "format": "auto", "width": 0, "height": 0, "num_frames": 0, "video": "",
              "box_size": 64.0, "strict": False}
    inputs.update(overrides)
    return {"class_type": "LoadTracklets", "inputs": inputs}


def test_pack_registers_from_any_folder_name(comfy):
    for node_id in OUR_NODES:
        cls = comfy.node_class(node_id)
        # ComfyUI imported our package under the folder name it was installed as, not as "trackdiffusion".
        assert "ComfyUI-TrackDiffusion-main" in cls.__module__.replace("_x_", ".")
    info = comfy.node_class("LoadTracklets").GET_NODE_INFO_V1()
    assert info["output"] == ["TRACKLETS", "INT", "INT", "INT"]
    assert info["category"] == "TrackDiffusion"
    builder = comfy.node_class("PointTrajectoryBuilder").GET_NODE_INFO_V1()
    assert builder["output"] == ["POINT_TRAJECTORIES", "TRACKS", "IMAGE"]
    assert builder["input"]["required"]["masks"][0] == "MASK"


def test_prompt_runs_tracklets_and_trajectories_end_to_end(comfy_with_probe):
    prompt = {
        "1": _load_node(STREET, num_frames=10),
        "2": {"class_type": "VisualizeTracklets",
              "inputs": {"tracklets": ["1", 0], "trail": True, "thickness": 2, "labels": True}},
        "3": {"class_type": "TDTestProbe", "inputs": {"value": ["2", 0]}},
        "4": {"class_type": "TrackletsToTracks", "inputs": {"tracklets": ["1", 0], "num_frames": 0}},
        "5": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 96, "height": 64}},
        "6": {"class_type": "PointTrajectoryBuilder",
              "inputs": {"masks": ["5", 0], "arrows": json.dumps([[[10, 10], [40, 20]]]), "num_frames": 10,
                         "seed": 0, "point_size": 4}},
        "9": {"class_type": "TDTestProbe", "inputs": {"value": ["6", 2]}},
        "10": {"class_type": "TDTestProbe", "inputs": {"value": ["1", 3]}},
        "11": {"class_type": "TDTestProbe", "inputs": {"value": ["4", 0]}},
    }
    # A core node that consumes TRACKS (ComfyUI after 0.3.64; older cores have none): ours must be accepted as the
    # core type. Without it, our TRACKS are checked as they leave our node.
    core_consumer = "WanMoveConcatTrack" in comfy_with_probe.nodes.NODE_CLASS_MAPPINGS
    if core_consumer:
        prompt["7"] = {"class_type": "WanMoveConcatTrack", "inputs": {"tracks_1": ["4", 0], "tracks_2": ["6", 1]}}
        prompt["8"] = {"class_type": "TDTestProbe", "inputs": {"value": ["7", 0]}}
    outputs, messages, success = comfy_with_probe.run_prompt(prompt)
    assert success, messages
    assert outputs["3"]["probe"][0] == {"shape": [10, 576, 1024, 3], "dtype": "torch.float32"}
    assert outputs["11"]["probe"][0]["track_path"]["shape"] == [10, 3, 2]
    if core_consumer:
        concat = outputs["8"]["probe"][0]
        # 3 tracklet objects + 64 points of a whole-frame mask (p = 1 > 0.4), over the 10 resampled frames.
        assert concat["track_path"]["shape"] == [10, 3 + 64, 2]
        assert concat["track_visibility"] == {"shape": [10, 3 + 64], "dtype": "torch.bool"}
    assert outputs["9"]["probe"][0]["shape"] == [10, 64, 96, 3]
    assert outputs["10"]["probe"][0] == {"repr": "10"}


def test_bad_tracklets_fail_the_node_with_our_message(comfy_with_probe):
    bad = json.loads(STREET)
    bad["objects"][0]["keyframes"][1]["box"] = [700, 320, 600, 460]  # x2 < x1
    prompt = {"1": _load_node(json.dumps(bad)), "2": {"class_type": "TDTestProbe", "inputs": {"value": ["1", 0]}}}
    _outputs, messages, success = comfy_with_probe.run_prompt(prompt)
    assert not success
    errors = [data for event, data in messages if event == "execution_error"]
    assert errors and errors[0]["node_id"] == "1"
    assert "object 1, frame 13" in errors[0]["exception_message"]
    assert "x2 <= x1" in errors[0]["exception_message"]
