"""The canvas editors in headless Chromium on a standalone page (no ComfyUI): real mouse and keyboard input must
produce state that the Python side reads into the intended boxes, masks and arrows."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trackdiffusion.data.tracklets import dumps, load
from trackdiffusion.data.trajectories import build_point_trajectories

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def driven(static_server, tmp_path_factory):
    """Run the scripted session once; its output is checked by the tests below."""
    shots = os.environ.get("TD_SCREENSHOT_DIR") or str(tmp_path_factory.mktemp("shots"))
    proc = subprocess.run(["node", str(HERE / "drive_harness.mjs"), static_server, shots], check=False, capture_output=True,
                          text=True, timeout=180, cwd=HERE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["errors"] == [], result["errors"]
    return result


def test_two_objects_three_keyframes_parse_to_the_drawn_boxes(driven):
    tracklets = load(driven["tracklets"])
    assert (tracklets.width, tracklets.height, tracklets.num_frames) == (640, 360, 9)
    assert tracklets.warnings == []
    dense = tracklets.dense()
    assert dense.ids == [1, 2]
    assert dense.labels == ["", "car"]
    car, walker = dense.boxes[:, 1], dense.boxes[:, 0]
    # Object 1, linear: drawn at frame 0, moved right at 4, moved down at 8.
    np.testing.assert_allclose(walker[0], [50, 60, 150, 160])
    np.testing.assert_allclose(walker[2], [150, 60, 250, 160])
    np.testing.assert_allclose(walker[4], [250, 60, 350, 160])
    np.testing.assert_allclose(walker[6], [250, 130, 350, 230])
    np.testing.assert_allclose(walker[8], [250, 200, 350, 300])
    assert dense.visible[:, 0].all()
    # Object 2, hold: resized by its corner at 4, hidden at 6, typed in (and visible again) at 8.
    for f in range(4):
        np.testing.assert_allclose(car[f], [400, 50, 480, 130])
    np.testing.assert_allclose(car[4], [400, 50, 520, 150])
    np.testing.assert_allclose(car[5], [400, 50, 520, 150])
    np.testing.assert_allclose(car[8], [500, 200, 600, 330])
    assert dense.visible[:, 1].tolist() == [True] * 6 + [False, False, True]
    assert tracklets.objects[1].interpolation == "hold"


def test_outside_box_is_flagged_and_undo_redo_restore(driven):
    assert driven["warningsWithOutside"] == "1"
    assert "outside the image" in driven["warningText"]
    assert driven["warningsAfterUndo"] == "0"
    assert driven["objectCountAfterUndo"] == 2


def test_state_widget_hidden_and_canvas_not_serialised(driven):
    assert driven["stateHidden"] is True
    assert driven["stateRowHeight"] == 0  # no empty row above the first widget on frontends that lay hidden ones out
    assert driven["domWidgetSerialize"] is False
    assert driven["frameAfterScrub"] == 3


def test_trajectory_editor_mask_and_arrow_feed_the_builder(driven):
    state = json.loads(driven["trajectory"])
    (comp,) = state["components"]
    h, w = comp["mask"]["size"]
    assert (h, w) == (200, 320)
    counts = comp["mask"]["counts"]
    assert sum(counts) == h * w
    mask = np.repeat(np.arange(len(counts)) % 2 == 1, counts).reshape(h, w)
    ys, xs = np.nonzero(mask)
    # A 20 px brush dragged from (60, 60) to (100, 60): a rounded stroke about 60 x 20 px.
    assert 48 <= xs.min() <= 52 and 108 <= xs.max() <= 112 and 48 <= ys.min() <= 52 and 68 <= ys.max() <= 72
    assert comp["arrow"] == [[80, 60], [200, 140], [260, 60]]
    # After a run the status line names the node's exact points (no further input needed to refresh it).
    before, after = driven["trajectoryStatus"]
    assert "preview" in before and "exact (last run)" in after
    assert "preview" in driven["statusAfterEdit"]  # until the next edit, no longer
    traj = build_point_trajectories(mask[None], [comp["arrow"]], 8, seed=0)
    end_shift = traj.points[-1] - traj.points[0]
    np.testing.assert_allclose(end_shift, np.broadcast_to([180, 0], end_shift.shape), atol=1e-3)


def test_copy_paste_keyframe_export_and_import(driven):
    pasted = load(driven["afterPaste"])
    walker = next(o for o in pasted.objects if o.id == 1)
    assert walker.keyframes[-1].frame == 8
    np.testing.assert_allclose(walker.keyframes[-1].box, [200, 60, 300, 160])  # frame 3's interpolated box
    # The exported gt.txt is what the Python writer makes of the same state.
    assert driven["exportedMot"] == dumps(pasted, "mot")
    imported = load(driven["afterImport"])
    assert imported.num_frames == 2 and [o.id for o in imported.objects] == [7]
    assert imported.objects[0].label == "car"
    np.testing.assert_allclose(imported.dense().boxes[1, 0], [12, 10, 32, 30])
    frames, state = driven["afterImportUndo"]
    assert frames == 9 and load(state).to_dict() == pasted.to_dict()


def test_tracklet_editor_controls_read_clearly(driven):
    """Issue 19: an empty object list, uncaptioned coordinate fields that cut values off, the hint under the boxes,
    tiny undo glyphs."""
    assert driven["emptyObjectSelect"] == "no objects"
    assert driven["deselectedObjectSelect"] == "(none)"
    fields = driven["coordinateFields"]
    assert [f["caption"] for f in fields] == ["x1", "y1", "x2", "y2"]
    assert [f["value"] for f in fields] == ["250", "200", "350", "300"]
    assert all(f["fits"] for f in fields), fields
    hint = driven["hint"]
    assert "connect an image" in hint["text"] and hint["visible"]
    assert hint["top"] >= hint["imageBottom"] - 0.5, hint  # below the image: no box covers it
    assert min(driven["glyphFontPx"]) >= 15


def test_wheel_over_the_editor_leaves_it_for_the_graph(driven):
    """The editors do not use the wheel: it bubbles out of the editor, or goes to the wheel target (the graph's
    canvas in ComfyUI) exactly once."""
    wheel = driven["wheel"]
    assert [(w["at"], w["deltaY"]) for w in wheel["free"]] == [("editor", 120)]
    assert [(w["at"], w["deltaY"]) for w in wheel["forwarded"]] == [("target", 120)]


def test_trajectory_editor_brush_label_outline_and_part_list(driven):
    assert driven["emptyPartSelect"] == "no parts"
    assert driven["brushLabel"] == {"text": "size 20 px", "visible": True}
    assert driven["hoverRing"] > 20  # the brush outline follows the pointer with no button down
    assert driven["ringAfterLeave"] == 0  # and goes when the pointer leaves the canvas


def test_trajectory_editor_fits_a_node_at_its_minimum_height(driven):
    small = driven["smallNode"]
    assert small["rootBottom"] <= small["nodeBottom"] + 0.5, small
    assert small["statusBottom"] <= small["nodeBottom"] + 0.5, small  # the status line is not below the node
    assert small["stageHeight"] >= 120, small
