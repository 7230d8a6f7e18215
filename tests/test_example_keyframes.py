"""Every example opens without the Tracklet Editor's red "keyframe(s) outside the image" warning (issue 19): each
keyframe of each editor (and of the tracklet files the examples read) lies inside its canvas, the rule of
``outsideWarnings`` in js/tracklet_model.js. A box that leaves the frame is still allowed in users' files: it is
clamped when run; the examples just should not open with a warning."""

from __future__ import annotations

import json

import pytest

from support.comfyui import REPO
from support.examples import all_examples, key_of


def outside_keyframes(doc: dict) -> list[tuple]:
    return [(o["id"], k["frame"], k["box"]) for o in doc["objects"] for k in o["keyframes"]
            if k["box"][0] < 0 or k["box"][1] < 0 or k["box"][2] > doc["width"] or k["box"][3] > doc["height"]]


def editor_documents(workflow: dict) -> list[dict]:
    docs = []
    for node in workflow["nodes"]:
        if node["type"] == "TrackletEditor":
            docs += [json.loads(v) for v in node.get("widgets_values", []) if isinstance(v, str) and v.startswith("{")]
    return docs


@pytest.mark.parametrize("path", all_examples(), ids=key_of)
def test_example_editors_open_with_every_keyframe_inside_the_canvas(path):
    for doc in editor_documents(json.loads(path.read_text())):
        assert outside_keyframes(doc) == []


def test_tracklet_files_the_examples_read_are_inside_their_canvas():
    files = sorted((REPO / "example_workflows" / "input" / "tracklets").glob("*.json"))
    assert files
    for path in files:
        assert outside_keyframes(json.loads(path.read_text())) == [], path.name


def test_the_rule_flags_a_box_past_the_right_edge():
    doc = {"width": 100, "height": 50, "objects": [{"id": 1, "keyframes": [{"frame": 0, "box": [90, 0, 101, 10]}]}]}
    assert outside_keyframes(doc) == [(1, 0, [90, 0, 101, 10])]
