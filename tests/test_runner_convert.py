"""The UI -> API workflow converter, on committed node definitions (no ComfyUI needed).

The node definitions are support.workflows.NODE_INFOS (checked against the real ones by the integration tests).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from support.examples import example
from support.workflows import NODE_INFOS, SAVE, TRACKS, VIS, chain, node_info, ui
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.nodes.runner.convert import is_api_format, to_api_prompt, widget_slots

REPO = Path(__file__).resolve().parents[1]
# Saved UI workflows whose shape the tests below pin (widgets converted to linked inputs, a builder node with a
# seed): frozen copies of earlier example workflows, so the examples themselves can change.
FIXTURES = {name: json.loads((REPO / "tests" / "data" / f"ui_workflow_{name}.json").read_text())
            for name in ("svd_linked_widgets", "svd_trackgo_builder")}


# ----------------------------------------------------------------------------------------------- example workflows


def test_svd_trackdiffusion_example_converts_like_the_frontend():
    prompt = to_api_prompt(FIXTURES["svd_linked_widgets"], NODE_INFOS)
    assert set(prompt) == {str(i) for i in range(1, 13)}
    assert prompt["1"] == {"inputs": {"ckpt_name": "svd.safetensors"}, "class_type": "ImageOnlyCheckpointLoader",
                           "_meta": {"title": "Image Only Checkpoint Loader (img2vid model)"}}
    assert prompt["2"]["inputs"] == {"image": "example.png"}  # the upload button's "image" is not an input
    assert prompt["8"]["inputs"] == {"seed": 42, "steps": 25, "cfg": 3.0, "sampler_name": "euler",
                                     "scheduler": "karras", "denoise": 1.0, "model": ["6", 0],
                                     "positive": ["7", 0], "negative": ["7", 1], "latent_image": ["7", 2]}
    # width/height/video_frames are widgets fed by links: the links win over the saved values
    cond = prompt["7"]["inputs"]
    assert cond["width"] == ["3", 1] and cond["height"] == ["3", 2] and cond["video_frames"] == ["3", 3]
    assert cond["motion_bucket_id"] == 127 and cond["fps"] == 8 and cond["init_image"] == ["2", 0]
    assert prompt["3"]["inputs"]["source"].startswith("{") and prompt["3"]["inputs"]["box_size"] == 64.0
    assert prompt["12"]["inputs"] == {"filename_prefix": "trackdiffusion_boxes", "fps": 8.0, "lossless": False,
                                      "quality": 90, "method": "default", "images": ["10", 0]}
    assert prompt["11"]["_meta"]["title"] == "SaveAnimatedWEBP"  # no display name: the type


def test_svd_trackgo_example_and_legacy_seed_control_value():
    workflow = FIXTURES["svd_trackgo_builder"]
    prompt = to_api_prompt(workflow, NODE_INFOS)
    assert prompt["3"]["inputs"] == {"arrows": "[[[380, 300], [560, 300], [700, 260]]]", "num_frames": 14,
                                     "seed": 0, "point_size": 4, "masks": ["2", 1]}
    assert prompt["5"]["inputs"]["adapter"] == ["4", 0] and prompt["5"]["inputs"]["tau"] == -100.0
    # The current frontend adds a control_after_generate widget to any INT named "seed" and saves its value.
    with_control = copy.deepcopy(workflow)
    node = next(n for n in with_control["nodes"] if n["id"] == 3)
    node["widgets_values"].insert(3, "randomize")
    assert to_api_prompt(with_control, NODE_INFOS) == prompt


def test_demo_cpu_example_converts_with_nothing_to_download():
    prompt = to_api_prompt(json.loads(example("demo_cpu").read_text()), NODE_INFOS)
    assert prompt["1"] == {"inputs": {"syntrack_clip": 20000, "frames": 0, "steps": 20, "seed": 0, "upscale": 4},
                           "class_type": "TrackDiffusionDemo",
                           "_meta": {"title": "TrackDiffusion Demo (CPU, no download)"}}
    assert prompt["2"]["inputs"]["images"] == ["1", 0] and prompt["3"]["inputs"]["tracklets"] == ["1", 1]
    assert prompt["3"]["inputs"]["images"] == ["1", 0] and prompt["4"]["inputs"]["images"] == ["3", 0]


def test_seed_control_and_upload_values_are_optional():
    sampler = {"id": 8, "type": "KSampler", "widgets": [7, "fixed", 20, 8.0, "euler", "karras", 1.0]}
    without = {**sampler, "widgets": [7, 20, 8.0, "euler", "karras", 1.0]}
    load_image = {"id": 9, "type": "LoadImage", "widgets": ["cat.png", "image"]}
    a = to_api_prompt(ui([sampler, load_image], []), NODE_INFOS)
    b = to_api_prompt(ui([without, {**load_image, "widgets": ["cat.png"]}], []), NODE_INFOS)
    assert a == b
    assert a["8"]["inputs"] == {"seed": 7, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "karras",
                                "denoise": 1.0}
    assert a["9"]["inputs"] == {"image": "cat.png"}
    slots = widget_slots(NODE_INFOS["KSampler"])
    assert [(s.name, s.kind) for s in slots[:2]] == [("seed", "widget"), ("seed", "control")]


# ------------------------------------------------------------------------------------------------ graph handling


def test_links_and_titles():
    prompt = to_api_prompt(chain({**SAVE, "id": 4, "title": "Boxes"}, links=[(2, 2, 0, 3, "images", "IMAGE"),
                                                                              (3, 2, 0, 4, "images", "IMAGE")]),
                           NODE_INFOS)
    assert prompt["2"]["inputs"] == {"trail": True, "thickness": 2, "labels": True, "tracklets": ["1", 0]}
    assert prompt["3"]["inputs"] == {"filename_prefix": "td", "images": ["2", 0]}
    assert prompt["4"]["_meta"] == {"title": "Boxes"} and prompt["3"]["_meta"] == {"title": "Save Image"}


def test_muted_node_is_left_out_and_its_consumers_lose_the_input():
    vis = {**VIS, "mode": 2}
    prompt = to_api_prompt(chain(links=[(2, 2, 0, 3, "images", "IMAGE")], vis=vis), NODE_INFOS)
    assert set(prompt) == {"1", "3"}
    assert prompt["3"]["inputs"] == {"filename_prefix": "td"}  # validation will then report the missing input


def test_bypassed_node_passes_its_input_of_the_same_type_through():
    invert = {"id": 4, "type": "ImageInvert", "mode": 4, "inputs": [("image", "IMAGE")]}
    links = [(2, 2, 0, 4, "image", "IMAGE"), (3, 4, 0, 3, "images", "IMAGE")]
    prompt = to_api_prompt(chain(invert, links=links), NODE_INFOS)
    assert "4" not in prompt and prompt["3"]["inputs"]["images"] == ["2", 0]


def test_bypass_picks_the_first_input_whose_type_fits_and_chains():
    # VisualizeTracklets bypassed: its IMAGE output (slot 0) is fed by its IMAGE input (slot 1), not by slot 0.
    invert = {"id": 4, "type": "ImageInvert", "inputs": [("image", "IMAGE")]}
    invert2 = {"id": 5, "type": "ImageInvert", "mode": 4, "inputs": [("image", "IMAGE")]}
    links = [(2, 4, 0, 2, "images", "IMAGE"), (3, 2, 0, 5, "image", "IMAGE"), (4, 5, 0, 3, "images", "IMAGE")]
    prompt = to_api_prompt(chain(invert, invert2, links=links, vis={**VIS, "mode": 4}), NODE_INFOS)
    assert set(prompt) == {"1", "3", "4"}
    assert prompt["3"]["inputs"]["images"] == ["4", 0]


def test_bypass_without_a_fitting_input_drops_the_consumer_input():
    links = [(2, 2, 0, 3, "images", "IMAGE")]  # VisualizeTracklets' IMAGE input is not connected
    prompt = to_api_prompt(chain(links=links, vis={**VIS, "mode": 4}), NODE_INFOS)
    assert "images" not in prompt["3"]["inputs"]


def test_reroutes_primitives_and_notes():
    reroute1 = {"id": 4, "type": "Reroute", "inputs": [("", "*")]}
    reroute2 = {"id": 5, "type": "Reroute", "inputs": [("", "*")]}
    primitive = {"id": 6, "type": "PrimitiveNode", "widgets": [5, "fixed"]}
    note = {"id": 7, "type": "Note", "widgets": ["remember the milk"]}
    vis = {**VIS, "inputs": [*VIS["inputs"], ("thickness", "INT", "thickness")]}
    links = [(2, 2, 0, 4, "", "IMAGE"), (3, 4, 0, 5, "", "*"), (4, 5, 0, 3, "images", "IMAGE"),
             (5, 6, 0, 2, "thickness", "INT")]
    prompt = to_api_prompt(chain(reroute1, reroute2, primitive, note, links=links, vis=vis), NODE_INFOS)
    assert set(prompt) == {"1", "2", "3"}
    assert prompt["3"]["inputs"]["images"] == ["2", 0]
    assert prompt["2"]["inputs"]["thickness"] == 5  # the primitive's value, not the saved widget value 2


def test_group_nodes_and_subgraphs_are_refused_with_the_node_named():
    workflow = chain({"id": 9, "type": "workflow>My group", "widgets": []})
    with pytest.raises(InvalidInputError, match=r"node 9 \(workflow>My group\) is a group node.*back to plain nodes"):
        to_api_prompt(workflow, NODE_INFOS)
    subgraph_id = "a1b2c3d4-0000-4000-8000-000000000000"
    workflow = chain({"id": 10, "type": subgraph_id})
    workflow["definitions"] = {"subgraphs": [{"id": subgraph_id, "nodes": []}]}
    with pytest.raises(InvalidInputError, match=rf"node 10 \({subgraph_id}\) is a subgraph"):
        to_api_prompt(workflow, NODE_INFOS)


def test_unknown_node_types_are_listed_together():
    workflow = chain({"id": 7, "type": "FancyUpscale"}, {"id": 8, "type": "OtherThing"},
                     {"id": 9, "type": "MutedUnknown", "mode": 2})
    with pytest.raises(InvalidInputError) as err:
        to_api_prompt(workflow, NODE_INFOS)
    message = str(err.value)
    assert "node 7 (FancyUpscale)" in message and "node 8 (OtherThing)" in message
    assert "MutedUnknown" not in message and "install" in message


def test_api_format_passes_through_unchanged():
    api = {"1": {"class_type": "LoadTracklets", "inputs": {"source": TRACKS}},
           "2": {"class_type": "Whatever", "inputs": {"x": ["1", 0]}}}
    assert is_api_format(api)
    out = to_api_prompt(api, {})
    assert out == api and out is not api
    assert to_api_prompt({"prompt": api, "client_id": "x"}, {}) == api


def test_widget_value_count_mismatch_names_thenode_info():
    with pytest.raises(InvalidInputError, match=r"node 2 \(VisualizeTracklets\): 5 saved widget values"):
        to_api_prompt(chain(vis={**VIS, "widgets": [True, 2, True, 1, 2]}), NODE_INFOS)
    warnings: list[str] = []
    prompt = to_api_prompt(chain(vis={**VIS, "widgets": [False]}), NODE_INFOS, warnings)
    assert prompt["2"]["inputs"] == {"trail": False, "thickness": 2, "labels": True, "tracklets": ["1", 0]}
    assert warnings == ["node 2 (VisualizeTracklets): no saved value for thickness, labels; using the default."]


def test_list_values_are_wrapped_and_dict_widget_values_map_by_name():
    infos = {"ListNode": node_info("List", [], True, required={"points": ["STRING", {}], "n": ["INT", {"default": 3}]})}
    prompt = to_api_prompt(ui([{"id": 1, "type": "ListNode", "widgets": [[1, 2], 4]}], []), infos)
    assert prompt["1"]["inputs"] == {"points": {"__value__": [1, 2]}, "n": 4}
    prompt = to_api_prompt(ui([{"id": 1, "type": "ListNode", "widgets": {"points": "a", "extra": 1}}], []), infos)
    assert prompt["1"]["inputs"] == {"points": "a", "n": 3}


def test_input_order_force_input_widget_type_and_legacy_noise_seed():
    info = {"display_name": "X", "output": ["INT"],
            "input": {"required": {"b": ["INT", {}], "a": ["FLOAT", {}], "sock": ["INT", {"forceInput": True}]},
                      "optional": {"noise_seed": ["INT", {}], "custom": ["MYTYPE", {"widgetType": "STRING"}],
                                   "no_seed_control": ["INT", {"control_after_generate": False}]}},
            "input_order": {"required": ["a", "b", "sock"], "optional": ["noise_seed", "custom", "no_seed_control"]}}
    assert [(s.name, s.kind) for s in widget_slots(info)] == [
        ("a", "widget"), ("b", "widget"), ("noise_seed", "widget"), ("noise_seed", "control"), ("custom", "widget"),
        ("no_seed_control", "widget")]
    node = {"id": 4, "type": "X", "widgets": [0.5, 2, 11, "increment", "txt", 9],
            "inputs": [("sock", "INT")]}
    prompt = to_api_prompt(ui([node, {"id": 5, "type": "X", "widgets": [1.0, 1, 1, "fixed", "", 1]}],
                              [(1, 5, 0, 4, "sock", "INT")]), {"X": info})
    assert prompt["4"]["inputs"] == {"a": 0.5, "b": 2, "noise_seed": 11, "custom": "txt", "no_seed_control": 9,
                                     "sock": ["5", 0]}


def test_schema_v1_link_objects():
    workflow = chain(links=[(2, 2, 0, 3, "images", "IMAGE")])
    workflow["links"] = [{"id": lk[0], "origin_id": lk[1], "origin_slot": lk[2], "target_id": lk[3],
                          "target_slot": lk[4], "type": lk[5]} for lk in workflow["links"]]
    assert to_api_prompt(workflow, NODE_INFOS)["3"]["inputs"]["images"] == ["2", 0]


def test_not_a_workflow():
    for bad in ({}, {"nodes": "x"}, {"1": {"inputs": {}}}):
        with pytest.raises(InvalidInputError):
            to_api_prompt(bad, NODE_INFOS)
