"""Drawing and writing frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.data.trajectories import build_point_trajectories
from trackdiffusion.data.visualize import as_frames, draw_tracklets, draw_trajectories, write_frames

DOC = {"version": 1, "width": 100, "height": 50, "num_frames": 5, "objects": [
    {"id": 4, "color": "#00ff00", "keyframes": [{"frame": 0, "box": [10, 10, 30, 30]},
                                                {"frame": 3, "box": [10, 10, 30, 30], "visible": False}]}]}


def test_as_frames_accepts_comfy_images_and_repeats_single():
    img = torch.rand(1, 8, 6, 3)
    out = as_frames(img, num_frames=4)
    assert out.shape == (4, 8, 6, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], out[3])
    with pytest.raises(InvalidInputError, match="frames, height, width"):
        as_frames(np.zeros((2, 3)))


def test_draw_tracklets_draws_only_visible_frames_and_scales_to_image():
    t = load(DOC)
    frames = draw_tracklets(t, np.zeros((5, 100, 200, 3), np.uint8), trail=False, show_labels=False)
    # image is twice the canvas: the box's left edge x=10 lands at x=20; rows 20..60
    assert frames[0][40, 20, 1] == 255 and frames[0][40, 20, 0] == 0
    assert frames[2][40, 20, 1] == 255
    assert frames[3].max() == 0 and frames[4].max() == 0  # hidden from frame 3 on


def test_draw_trajectories_marks_points():
    mask = np.zeros((40, 60), bool)
    mask[10:20, 10:20] = True
    traj = build_point_trajectories(mask[None], [[[0, 0], [20, 0]]], 3)
    frames = draw_trajectories(traj, trail=False)
    x, y = np.round(traj.points[2, 0]).astype(int)
    assert frames[2][y, x].tolist() != frames[0][0, 0].tolist()  # a dot where the first point is on the last frame


@pytest.mark.parametrize("name", ["v.mp4", "v.gif", "pngs"])
def test_write_frames_formats_and_no_temp_leftovers(tmp_path, name):
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 24, 3), dtype=np.uint8)
    out = write_frames(frames, tmp_path / name, fps=8)
    assert out.exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert out.stat().st_mode & 0o044 == 0o044  # readable by others, like any file the user writes (not 0600)
    if name == "pngs":
        assert len(list(out.iterdir())) == 4


def test_write_frames_refuses_non_empty_folder(tmp_path):
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        write_frames(np.zeros((1, 4, 4, 3), np.uint8), tmp_path / "pngs")
    assert (tmp_path / "pngs" / "keep.txt").read_text() == "mine"
