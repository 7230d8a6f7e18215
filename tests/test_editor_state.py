"""The editors' state parsing, without ComfyUI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trackdiffusion.data.editor_state import (
    TRAJECTORY_FORMAT,
    box_masks,
    parse_editor_tracklets,
    parse_trajectory_state,
    rle_decode,
    rle_encode,
)
from trackdiffusion.data.errors import InvalidInputError


@pytest.mark.parametrize("first", [False, True])
def test_rle_round_trip(first):
    mask = np.random.default_rng(0).random((7, 9)) > 0.5
    mask[0, 0] = first
    assert np.array_equal(rle_decode(rle_encode(mask), "m"), mask)
    with pytest.raises(InvalidInputError, match="add up"):
        rle_decode({"size": [7, 9], "counts": [1, 2]}, "m")


def test_box_masks_are_object_major_and_hidden_frames_empty():
    t = parse_editor_tracklets(json.dumps({"version": 1, "width": 8, "height": 4, "num_frames": 2, "objects": [
        {"id": 1, "keyframes": [{"frame": 0, "box": [0, 0, 4, 2]}, {"frame": 1, "box": [0, 0, 4, 2],
                                                                   "visible": False}]},
        {"id": 0, "keyframes": [{"frame": 0, "box": [4, 2, 8, 4]}]}]}), 8, 4, 2)
    m = box_masks(t)
    assert m.shape == (4, 4, 8)
    assert m[0, 2:, 4:].all() and m[1, 2:, 4:].all()  # id 0 (slot 0) both frames
    assert m[2, :2, :4].all() and m[3].sum() == 0  # id 1, hidden at frame 1


def test_editor_json_is_resampled_to_the_node_inputs_and_empty_text_is_no_objects():
    assert parse_editor_tracklets("", 64, 32, 5).objects == []
    text = json.dumps({"version": 1, "width": 100, "height": 50, "num_frames": 3,
                       "objects": [{"id": 1, "keyframes": [{"frame": 2, "box": [50, 0, 100, 50]}]}]})
    t = parse_editor_tracklets(text, 200, 100, 5)
    assert (t.width, t.height, t.num_frames) == (200, 100, 5)
    assert t.objects[0].keyframes[0].frame == 4 and t.objects[0].keyframes[0].box == (100.0, 0.0, 200.0, 100.0)


def test_trajectory_state_masks_arrows_and_errors():
    mask = np.zeros((10, 20), bool)
    mask[2:5, 3:8] = True
    state = {"format": TRAJECTORY_FORMAT, "version": 1, "width": 20, "height": 10,
             "components": [{"mask": rle_encode(mask), "arrow": [[5, 3], [15, 3]]}, {"mask": rle_encode(mask)}]}
    masks, arrows = parse_trajectory_state(json.dumps(state), 40, 20)  # the node canvas is twice the state's
    assert masks.shape == (2, 20, 40) and masks[0, 4:10, 6:16].all()
    np.testing.assert_allclose(arrows[0], [[10, 6], [30, 6]])
    assert np.allclose(arrows[1][0], arrows[1][1])  # no arrow: the part stays still
    with pytest.raises(InvalidInputError, match="no components"):
        parse_trajectory_state(json.dumps({"format": TRAJECTORY_FORMAT, "components": []}), 20, 10)
    state["components"][0]["mask"] = rle_encode(np.zeros((10, 20), bool))
    with pytest.raises(InvalidInputError, match="empty mask"):
        parse_trajectory_state(json.dumps(state), 20, 10)
