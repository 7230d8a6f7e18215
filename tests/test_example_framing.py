"""Every example opens framed (issue 19: the top nodes were hidden under the menu bar): the view the workflow stores
(``extra.ds``, which the frontend restores at load; screen = (graph + offset) x scale) shows every node, its title bar
included, inside a 1600x900 window below the frontend's menu bar, right of its side bar and clear of the minimap in
the bottom right corner, at a readable scale."""

from __future__ import annotations

import json

import pytest

from support.examples import all_examples, key_of

WINDOW = (1600, 900)
MENU_BAR = 90  # screen pixels at the top the frontend's menu and tabs may cover
SIDE_BAR = 59  # screen pixels at the left its side bar covers
MINIMAP = (1343, 642, 1600, 900)  # the bottom right corner its minimap and zoom buttons cover (x1, y1, x2, y2)
TITLE = 30  # a node's title bar, above its pos (graph units)


def screen_box(node: dict, ds: dict) -> tuple[float, float, float, float]:
    (x, y), (w, h), (ox, oy), s = node["pos"], node["size"], ds["offset"], ds["scale"]
    return (x + ox) * s, (y - TITLE + oy) * s, (x + w + ox) * s, (y + h + oy) * s


@pytest.mark.parametrize("path", all_examples(), ids=key_of)
def test_example_opens_with_every_node_in_view_below_the_menu_bar(path):
    workflow = json.loads(path.read_text())
    ds = workflow["extra"]["ds"]
    assert 0.5 <= ds["scale"] <= 1.0
    for node in workflow["nodes"]:
        x1, y1, x2, y2 = screen_box(node, ds)
        inside = x1 >= SIDE_BAR and y1 >= MENU_BAR and x2 <= WINDOW[0] and y2 <= WINDOW[1]
        assert inside, (node["type"], (x1, y1, x2, y2))
        assert not (x2 > MINIMAP[0] and y2 > MINIMAP[1]), ("under the minimap", node["type"], (x1, y1, x2, y2))


def test_the_old_framing_hid_the_top_row():
    node = {"pos": [0, 0], "size": [320, 160]}
    assert screen_box(node, {"scale": 0.8, "offset": [0, 0]})[1] < MENU_BAR


def test_a_view_40_px_from_the_left_hid_the_left_edge_under_the_side_bar():
    node = {"pos": [0, 0], "size": [340, 260]}
    assert screen_box(node, {"scale": 0.9, "offset": [44.4, 152.2]})[0] < SIDE_BAR
