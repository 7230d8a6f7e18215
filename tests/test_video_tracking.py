"""Motion from a real clip: boxes and points followed through a video by the weight-free trackers, checked on clips
whose truth is known (a textured square moving on a textured background, SynTrack)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trackdiffusion.__main__ import main
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.data.video_tracking import follow_points, track_boxes, track_points


def moving_square(frames=12, size=96, step=(3, 1), start=(10, 20), side=20, seed=0):
    """A checkered square moving by ``step`` per frame over a noisy background; (video, true boxes [F, 4])."""
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    tile = np.kron((np.indices((5, 5)).sum(0) % 2), np.ones((4, 4)))[:side, :side]
    square = np.stack([tile * 200 + 30] * 3, -1).astype(np.uint8)
    video, boxes = [], []
    for f in range(frames):
        x, y = start[0] + step[0] * f, start[1] + step[1] * f
        frame = background.copy()
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, size), min(y + side, size)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = square[y0 - y:y1 - y, x0 - x:x1 - x]
        video.append(frame)
        boxes.append([x, y, x + side, y + side])
    return np.stack(video), np.array(boxes, float)


def start_boxes(box, frames, size, frame=0, extra=()):
    keyframes = [{"frame": frame, "box": list(map(float, box))}, *extra]
    return load(json.dumps({"version": 1, "width": size, "height": size, "num_frames": frames,
                            "objects": [{"id": 7, "label": "square", "keyframes": keyframes}]}))


def test_a_moving_square_is_followed():
    video, truth = moving_square()
    tracked, confidence = track_boxes(video, start_boxes(truth[0], 12, 96))
    got = tracked.dense(clamp=False)
    assert got.ids == [7] and got.visible.all()
    assert np.abs(got.boxes[:, 0] - truth).max() < 1.5  # pixels, every frame
    assert confidence.shape == (12, 1) and (confidence[1:] > 0.5).all()


def test_a_square_that_leaves_becomes_hidden_not_a_wild_box():
    video, truth = moving_square(frames=16, step=(8, 0), start=(30, 30))  # gone past the right edge by frame 9
    tracked, confidence = track_boxes(video, start_boxes(truth[0], 16, 96))
    got = tracked.dense(clamp=False)
    inside = truth[:, 0] < 96 - 10  # at least half the square still shows
    assert got.visible[inside].all() and not got.visible[truth[:, 0] >= 96].any()
    assert (confidence[truth[:, 0] >= 96] == 0).all()


def test_a_box_the_user_places_later_overrides_the_tracker():
    video, truth = moving_square()
    placed = [12.0, 22.0, 34.0, 44.0]  # on frame 6, away from the truth: the user's box wins and tracking goes on
    tracked, _ = track_boxes(video, start_boxes(truth[0], 12, 96, extra=[{"frame": 6, "box": placed}]))
    got = tracked.dense(clamp=False).boxes[:, 0]
    assert np.allclose(got[6], placed)
    assert np.abs((got[7] - got[6]) - (truth[7] - truth[6])).max() < 1.5  # moves on with the square from there


def test_resampled_to_the_generations_frames_and_canvas():
    video, truth = moving_square()
    tracked, _ = track_boxes(video, start_boxes(truth[0], 12, 96), num_frames=25, width=192, height=192)
    assert (tracked.num_frames, tracked.width, tracked.height) == (25, 192, 192)
    assert np.allclose(tracked.dense(clamp=False).boxes[-1, 0], truth[-1] * 2, atol=3)


def test_points_follow_the_square_and_a_synthetic_clips_truth():
    from trackdiffusion.evaluation.synth import make_split

    video, truth = moving_square()
    mask = np.zeros((1, 96, 96), bool)
    mask[0, 22:38, 12:28] = True
    trajectories = track_points(video, mask)
    moved = trajectories.points[-1] - trajectories.points[0]
    held = trajectories.visibility[-1]
    assert held.mean() > 0.5 and np.abs(np.median(moved[held], axis=0) - (truth[-1, :2] - truth[0, :2])).max() < 1
    clip = make_split("test", "eval", 1)[0]
    points, visible = follow_points(clip.video, clip.points.points[0], 12.0)
    both = visible & clip.points.visibility
    assert np.median(np.linalg.norm(points - clip.points.points, axis=-1)[both]) < 1.0


@pytest.mark.parametrize("video, message", [(np.zeros((1, 32, 32, 3), np.uint8), "at least 2 frames"),
                                            (np.zeros((4, 32), np.uint8), "must be")])
def test_bad_clips_are_one_clear_line(video, message):
    with pytest.raises(InvalidInputError, match=message):
        track_boxes(video, start_boxes([1, 1, 8, 8], 2, 32))


def test_no_boxes_is_one_clear_line():
    video, _ = moving_square()
    empty = load(json.dumps({"version": 1, "width": 96, "height": 96, "num_frames": 12, "objects": []}))
    with pytest.raises(InvalidInputError, match="no boxes to follow"):
        track_boxes(video, empty)


def test_the_command_line_follows_boxes_through_a_video_file(tmp_path, capsys):
    import cv2

    video, truth = moving_square()
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, frame in enumerate(video):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(start_boxes(truth[0], 12, 96).to_json())
    out, conf = tmp_path / "out.json", tmp_path / "conf.json"
    assert main(["tracklets", "track", str(folder), str(out), "--boxes", str(boxes), "--confidence", str(conf)]) == 0
    assert "object 7: followed in 12 of 12 frames" in capsys.readouterr().out
    assert np.abs(load(out).dense(clamp=False).boxes[:, 0] - truth).max() < 1.5
    assert json.loads(conf.read_text())["ids"] == [7]
    assert main(["tracklets", "track", str(folder / "000.png"), str(tmp_path / "x.json"), "--boxes",
                 str(boxes)]) == 2
    assert "at least 2" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_an_unreadable_video_is_one_clear_line(tmp_path, capsys):
    _, truth = moving_square()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(start_boxes(truth[0], 12, 96).to_json())
    assert main(["tracklets", "track", str(bad), str(tmp_path / "o.json"), "--boxes", str(boxes)]) == 2
    err = capsys.readouterr().err
    assert "no frames could be decoded" in err and "Traceback" not in err and not (tmp_path / "o.json").exists()
