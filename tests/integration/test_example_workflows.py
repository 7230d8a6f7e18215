"""Every example workflow (UI format) against real ComfyUI's node definitions: known node types, one saved value per
widget in the node's widget order and type, links whose types match both ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def node_inputs(cls) -> dict:
    info = cls.GET_NODE_INFO_V1()["input"] if hasattr(cls, "GET_NODE_INFO_V1") else cls.INPUT_TYPES()
    return {**info.get("required", {}), **info.get("optional", {})}


def node_outputs(cls) -> list[str]:
    if hasattr(cls, "GET_NODE_INFO_V1"):
        return list(cls.GET_NODE_INFO_V1()["output"])
    return list(cls.RETURN_TYPES)


def expected_widget_values(inputs: dict) -> list[tuple[str, object]]:
    """(input name, type or options) for every saved widget value, in order."""
    out = []
    for name, spec in inputs.items():
        kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
        if isinstance(kind, list) or kind in WIDGET_TYPES:
            out.append((name, kind if not isinstance(kind, list) else "COMBO"))
            if options.get("control_after_generate"):
                out.append((f"{name} control", "CONTROL"))
            # the frontend adds its upload button (saved as "image") after image, animated-image and video combos
            if any(options.get(k) for k in ("image_upload", "animated_image_upload", "video_upload")):
                out.append((f"{name} upload", "UPLOAD"))
    return out


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_example_workflow_matches_node_definitions(comfy, path):
    workflow = json.loads(path.read_text())
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node in workflow["nodes"]:
        cls = comfy.nodes.NODE_CLASS_MAPPINGS.get(node["type"])
        assert cls is not None, f"{path.name}: unknown node type {node['type']}"
        expected = expected_widget_values(node_inputs(cls))
        values = node["widgets_values"]
        assert len(values) == len(expected), f"{node['type']}: {values} vs {[e[0] for e in expected]}"
        for value, (name, kind) in zip(values, expected, strict=True):
            checks = {"INT": lambda v: isinstance(v, int) and not isinstance(v, bool),
                      "FLOAT": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                      "STRING": lambda v: isinstance(v, str), "BOOLEAN": lambda v: isinstance(v, bool),
                      "COMBO": lambda v: isinstance(v, str), "CONTROL": lambda v: v in ("fixed", "increment",
                                                                                        "decrement", "randomize"),
                      "UPLOAD": lambda v: v == "image"}
            assert checks[kind](value), f"{node['type']}.{name}: {value!r} is not {kind}"
    for link_id, src, slot, dst, to_slot, typ in workflow["links"]:
        src_cls = comfy.nodes.NODE_CLASS_MAPPINGS[nodes[src]["type"]]
        assert node_outputs(src_cls)[slot] == typ, f"link {link_id}"
        dst_input = nodes[dst]["inputs"][to_slot]
        assert dst_input["link"] == link_id
        spec = node_inputs(comfy.nodes.NODE_CLASS_MAPPINGS[nodes[dst]["type"]])[dst_input["name"]]
        assert spec[0] == typ, f"link {link_id}: {typ} into {nodes[dst]['type']}.{dst_input['name']} ({spec[0]})"
    # the embedded tracklets parse, and fit the SVD conditioning they drive
    from trackdiffusion.data.tracklets import load

    for node in workflow["nodes"]:
        if node["type"] == "LoadTracklets":
            source = node["widgets_values"][0]
            # a file name refers to ComfyUI's input folder; the examples ship under examples/ with the same path
            t = load(source if source.lstrip().startswith("{") else REPO / "example_workflows" / "input" / source)
            assert t.num_frames >= 1 and t.width % 8 == 0 and t.height % 8 == 0
