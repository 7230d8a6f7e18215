"""The TrackDiffusion Demo node inside real ComfyUI (CPU, the embedded demo model, nothing downloaded): through
ComfyUI's own PromptExecutor with nothing connected, with an odd-sized IMAGE and tracklets on another canvas, with
bad input, and the demo_cpu example workflow end to end through the headless runner."""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from support.examples import example

EXAMPLE = example("demo_cpu")


class DigestNode:
    """A V1 output node that reports an IMAGE's shape, a digest of its values and its first frame's mean colour."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {})}}

    RETURN_TYPES = ()
    FUNCTION = "digest"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def digest(self, images):
        arr = images.detach().cpu().float().numpy()
        return {"ui": {"digest": [{"shape": list(arr.shape), "sha": hashlib.sha256(arr.tobytes()).hexdigest(),
                                   "first_mean": [float(v) for v in arr[0].reshape(-1, arr.shape[-1]).mean(0)]}]}}


@pytest.fixture(scope="module")
def comfy_demo(comfy_with_probe):
    comfy_with_probe.nodes.NODE_CLASS_MAPPINGS["TDTestDigest"] = DigestNode
    yield comfy_with_probe
    comfy_with_probe.nodes.NODE_CLASS_MAPPINGS.pop("TDTestDigest", None)


def demo(frames=0, steps=2, seed=0, upscale=4, clip=20000, **links) -> dict:
    return {"class_type": "TrackDiffusionDemo",
            "inputs": {"syntrack_clip": clip, "frames": frames, "steps": steps, "seed": seed, "upscale": upscale,
                       **links}}


def tracklets_json(width: int, height: int, frames: int, objects: int) -> str:
    return json.dumps({"format": "trackdiffusion.tracklets", "version": 1, "width": width, "height": height,
                       "num_frames": frames, "objects": [
                           {"id": i + 1, "label": "red", "keyframes": [
                               {"frame": 0, "box": [10 + 30 * i, 20, 60 + 30 * i, 80]},
                               {"frame": frames - 1, "box": [100 + 30 * i, 120, 150 + 30 * i, 180]}][:min(frames, 2)]}
                           for i in range(objects)]})


def load_tracklets(source: str) -> dict:
    return {"class_type": "LoadTracklets",
            "inputs": {"source": source, "format": "auto", "width": 0, "height": 0, "num_frames": 0, "video": "",
                       "box_size": 64.0, "strict": False}}


def run(comfy, prompt: dict) -> dict:
    outputs, messages, success = comfy.run_prompt(prompt)
    assert success, [m for m in messages if m[0] == "execution_error"]
    return outputs


def test_registered_in_the_pack_category(comfy):
    info = comfy.node_class("TrackDiffusionDemo").GET_NODE_INFO_V1()
    assert info["category"] == "TrackDiffusion" and info["output"] == ["IMAGE", "TRACKLETS"]
    assert set(info["input"]["optional"]) == {"first_frame", "tracklets"}
    assert "CPU" in info["display_name"] and "no download" in info["display_name"]


def test_nothing_connected_makes_the_syntrack_clip_deterministically(comfy_demo):
    def once(seed):
        outputs = run(comfy_demo, {"1": demo(seed=seed), "2": {"class_type": "TDTestDigest",
                                                                "inputs": {"images": ["1", 0]}},
                                   "3": {"class_type": "TDTestProbe", "inputs": {"value": ["1", 1]}}})
        return outputs["2"]["digest"][0], outputs["3"]["probe"][0]["tracklets"]

    (a, tracks), (b, _), (c, _) = once(0), once(0), once(1)
    assert a["shape"] == [16, 256, 256, 3]
    assert a["sha"] == b["sha"] and a["sha"] != c["sha"]
    assert (tracks["width"], tracks["height"], tracks["num_frames"]) == (64, 64, 16) and tracks["objects"]


def test_odd_sized_image_and_tracklets_on_another_canvas(comfy_demo):
    red = {"class_type": "EmptyImage", "inputs": {"width": 100, "height": 70, "batch_size": 2, "color": 0xFF0000}}
    prompt = {"1": red, "2": load_tracklets(tracklets_json(320, 240, 8, 2)),
              "3": demo(first_frame=["1", 0], tracklets=["2", 0], upscale=2),
              "4": {"class_type": "TDTestDigest", "inputs": {"images": ["3", 0]}},
              "5": {"class_type": "TDTestProbe", "inputs": {"value": ["3", 1]}},
              # the frame count resampled: the tracklets output follows it
              "6": demo(frames=12, first_frame=["1", 0], tracklets=["2", 0], upscale=1),
              "7": {"class_type": "TDTestDigest", "inputs": {"images": ["6", 0]}},
              "8": {"class_type": "TDTestProbe", "inputs": {"value": ["6", 1]}},
              # and drawn by the pack's Visualize Tracklets over the generated frames
              "9": {"class_type": "VisualizeTracklets",
                    "inputs": {"tracklets": ["6", 1], "images": ["6", 0], "trail": True, "thickness": 1,
                               "labels": False}},
              "10": {"class_type": "TDTestDigest", "inputs": {"images": ["9", 0]}}}
    outputs = run(comfy_demo, prompt)
    out = outputs["4"]["digest"][0]
    assert out["shape"] == [8, 128, 128, 3]
    # frame 0 is the given first frame (resized): red
    assert out["first_mean"][0] > 0.95 and max(out["first_mean"][1:]) < 0.05
    tracks = outputs["5"]["probe"][0]["tracklets"]
    assert (tracks["width"], tracks["height"], tracks["num_frames"], len(tracks["objects"])) == (320, 240, 8, 2)
    assert outputs["7"]["digest"][0]["shape"] == [12, 64, 64, 3]
    assert outputs["8"]["probe"][0]["tracklets"]["num_frames"] == 12
    assert outputs["10"]["digest"][0]["shape"] == [12, 64, 64, 3]


@pytest.mark.parametrize(("case", "expected"), [
    ("frames=1", "frames must be 0 (the tracklets' own count) or 2..64, got 1"),
    ("five objects", "the tracklets have 5 objects; the demo model follows at most 4"),
    ("one-frame tracklets", "the tracklets have 1 frames; the demo makes 2..64"),
])
def test_bad_input_fails_the_node_with_our_message(comfy_demo, case, expected):
    if case == "frames=1":
        prompt = {"1": demo(frames=1)}
    else:
        source = tracklets_json(320, 240, 8, 5) if case == "five objects" else tracklets_json(64, 64, 1, 1)
        prompt = {"1": demo(tracklets=["2", 0]), "2": load_tracklets(source)}
    prompt["9"] = {"class_type": "TDTestDigest", "inputs": {"images": ["1", 0]}}
    _outputs, messages, success = comfy_demo.run_prompt(prompt)
    assert not success
    errors = [data for event, data in messages if event == "execution_error"]
    assert errors and errors[0]["node_id"] == "1" and errors[0]["node_type"] == "TrackDiffusionDemo"
    assert errors[0]["exception_type"].endswith("errors.InvalidInputError")
    assert expected in errors[0]["exception_message"] and "Fix:" in errors[0]["exception_message"]


def test_model_is_cached_and_reloaded_when_the_weights_change(comfy, monkeypatch, tmp_path):
    module = sys.modules[comfy.node_class("TrackDiffusionDemo").__module__]
    weights = tmp_path / "demo_box_i2v.safetensors"
    weights.write_bytes(module._weights_path().read_bytes())  # load_demo_model() reads the shipped file
    monkeypatch.setattr(module, "_weights_path", lambda: weights)
    monkeypatch.setattr(module, "_cache", {})
    first = module.demo_model()
    assert module.demo_model() is first and not first.training
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert module.demo_model() is not first


def test_demo_example_workflow_runs_end_to_end_headless(comfy, tmp_path):
    from trackdiffusion.nodes.runner.run import run_workflow

    out = tmp_path / "demo"
    result = run_workflow(EXAMPLE, comfyui=comfy.path, out=out)
    written = sorted(p.name for p in result.files)
    assert written == ["trackdiffusion_demo_00001_.webp", "trackdiffusion_demo_boxes_00001_.webp"]
    for name in written:
        with Image.open(out / name) as webp:
            assert webp.size == (256, 256) and webp.n_frames == 16
            webp.seek(webp.n_frames - 1)
            assert np.asarray(webp.convert("RGB")).std() > 0
