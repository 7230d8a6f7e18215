"""Nothing in an example overlaps, before or after a run (issue 19: after a run the CPU demo's first Save Animated
WEBP grew over Visualize Tracklets, and in the TrackGo example one covered the Point Trajectory Editor). Each node's
rectangle, title bar included, is computed as ComfyUI's frontend draws it (tests/support/layout.py: the growth rules
measured in headless Chromium, which tests/browser/test_example_layout.py checks against the real frontend), in the
classic canvas and in Nodes 2.0, when the workflow loads and once every node shows its picture at the size it will
really have."""

from __future__ import annotations

import json

import pytest

from support import layout
from support.examples import all_examples, example, key_of

CASES = [(path, renderer) for path in all_examples() for renderer in layout.RENDERERS]


def _id(case) -> str:
    path, renderer = case
    return f"{key_of(path)}-{renderer}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
@pytest.mark.parametrize("state", layout.STATES)
def test_no_two_nodes_overlap(case, state):
    path, renderer = case
    workflow = json.loads(path.read_text())
    assert layout.overlaps(layout.rects(workflow, renderer, state)) == []


@pytest.mark.parametrize("path", all_examples(), ids=key_of)
def test_every_picture_is_known(path):
    """Each Save Animated WEBP and Load Image is laid out for a picture size the test knows (tests/support/layout.py
    FRAMES: a new example's output must be added there, with the size its run really gives)."""
    for node in json.loads(path.read_text())["nodes"]:
        if node["type"] in layout.SHOWN_AT_LOAD | layout.SHOWN_AFTER_RUN:
            assert node["widgets_values"][0] in layout.FRAMES, (node["type"], node["widgets_values"][0])


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_picture_nodes_already_hold_their_pictures(case):
    """The frontend leaves every node where and as big as the workflow puts it: a picture node is saved big enough
    for its picture (so the classic canvas shows it large, and nothing moves when it arrives)."""
    path, renderer = case
    workflow = json.loads(path.read_text())
    saved = layout.rects(workflow, renderer, "saved")
    assert layout.rects(workflow, renderer, "load") == saved
    assert layout.rects(workflow, renderer, "after") == saved


def test_the_old_cpu_demo_overlapped_after_a_run():
    """The CPU demo as it was: Save Animated WEBP (320 x 160) above Visualize Tracklets. Nodes 2.0 shows the 256 x 256
    result at the node's width and grows the node over Visualize Tracklets; the classic canvas does not (it grows it
    by 36 to 196)."""
    demo = json.loads(example("demo_cpu").read_text())
    old = {1: ([0, 0], [340, 260]), 2: ([400, 0], [320, 160]), 3: ([400, 300], [320, 160]), 4: ([740, 300], [320, 160])}
    for node in demo["nodes"]:
        node["pos"], node["size"] = old[node["id"]]
    assert layout.overlaps(layout.rects(demo, "vue", "load")) == []
    assert layout.overlaps(layout.rects(demo, "vue", "after")) == [("2", "3")]
    assert layout.overlaps(layout.rects(demo, "classic", "after")) == []
    assert layout.rects(demo, "classic", "after")["2"][3] == 196


def test_a_picture_grows_with_the_node_width_in_nodes_2():
    node = {"id": 1, "type": "SaveAnimatedWEBP", "pos": [0, 0], "size": [320, 160], "widgets_values": ["trackgo"]}
    w, h = layout.vue_size(node, "after")
    assert w == 384 and h == pytest.approx(275.7 + (384 - 16) * 576 / 1024)
    assert layout.vue_size(node, "load") == (384, 222)
    assert layout.vue_size(dict(node, size=[320, 500]), "after") == (384, 630)  # big enough: left alone
