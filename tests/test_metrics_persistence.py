"""Object persistence: an object counts as kept in a frame when its category is found there at about its size,
wherever it is; checked with hand-made trackers (exact answers) and with SynTrack renders under the colour-blob
tracker."""

from __future__ import annotations

import numpy as np
import pytest

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.evaluation.metrics import GroundTruthTracker, Track, evaluate_clips, object_persistence
from trackdiffusion.evaluation.synth import make_split
from trackdiffusion.evaluation.synth.corrupt import freeze, shift, unrelated


@pytest.fixture(scope="module")
def clips():
    return make_split("test", "eval", n=10)


def _videos(clips):
    return [c.video for c in clips]


class EditedTruth:
    """The true tracks, each box scaled about its centre by ``side`` (area x side^2), relabelled or cut after a
    frame: a tracker whose answer is known exactly."""

    name = "edited truth"

    def __init__(self, clips, *, side=1.0, label=None, until=None):
        self.inner = GroundTruthTracker([c.tracklets for c in clips])
        self.side, self.label, self.until = side, label, until

    def __call__(self, video, index=0):
        tracks = []
        for t in self.inner(video, index):
            boxes = t.boxes.copy()
            centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2 * self.side
            boxes = np.concatenate([centre - half, centre + half], axis=1)
            if self.until is not None:
                boxes[self.until:] = np.nan
            tracks.append(Track(boxes, self.label or t.label, 1.0, t.track_id))
        return tracks


def test_true_tracks_are_all_kept(clips):
    r = object_persistence(_videos(clips), clips, EditedTruth(clips))
    assert r["persistence"] == 1.0
    assert r["per_frame"] == [1.0] * 16 and r["per_clip"] == [1.0] * len(clips)
    assert r["objects"] > 10 * 15  # every clip holds at least one visible object in most frames


def test_size_tolerance_is_a_factor_of_two_in_area(clips):
    assert object_persistence(_videos(clips), clips, EditedTruth(clips, side=1.35))["persistence"] == 1.0  # 1.82x
    assert object_persistence(_videos(clips), clips, EditedTruth(clips, side=0.75))["persistence"] == 1.0  # 0.56x
    assert object_persistence(_videos(clips), clips, EditedTruth(clips, side=1.45))["persistence"] == 0.0  # 2.10x
    assert object_persistence(_videos(clips), clips, EditedTruth(clips, side=0.69))["persistence"] == 0.0  # 0.48x
    loose = object_persistence(_videos(clips), clips, EditedTruth(clips, side=1.45), area_ratio=2.2)
    assert loose["persistence"] == 1.0


def test_wrong_category_is_not_kept(clips):
    assert object_persistence(_videos(clips), clips, EditedTruth(clips, label="not a colour"))["persistence"] == 0.0


def test_objects_lost_midway_show_per_frame(clips):
    r = object_persistence(_videos(clips), clips, EditedTruth(clips, until=6))
    assert r["per_frame"][:6] == [1.0] * 6 and r["per_frame"][6:] == [0.0] * 10
    eligible_before = 5 / 15  # frames 1..5 of 1..15 count, weighted by the objects visible in them
    assert 0.2 < r["persistence"] < 0.5 and abs(r["persistence"] - eligible_before) < 0.1


def test_renders_keep_their_objects_wherever_they_are(clips):
    """The colour-blob tracker on real renders: the true video keeps (almost) everything; the same video moved by
    7 px or frozen at frame 0 (wrong positions, same objects) still keeps most, where box AP50 drops."""
    truth = object_persistence(_videos(clips), clips)["persistence"]
    moved = [shift(c.video, 6, 4) for c in clips]
    moved_p = object_persistence(moved, clips)["persistence"]
    frozen_p = object_persistence([freeze(c.video) for c in clips], clips)["persistence"]
    assert truth >= 0.95
    assert moved_p >= 0.9 and frozen_p >= 0.75
    ap_true = evaluate_clips(_videos(clips), clips, point_tracker=None)["metrics"]["AP50"]
    ap_moved = evaluate_clips(moved, clips, point_tracker=None)["metrics"]["AP50"]
    assert ap_moved < ap_true - 0.3  # box metrics see the move; persistence does not


def test_objects_erased_after_frame_0_are_lost(clips):
    erased = []
    for c in clips:
        v = c.video.copy()
        v[1:] = np.median(c.video[0].reshape(-1, 3), axis=0).astype(np.uint8)  # the background's grey
        erased.append(v)
    r = object_persistence(erased, clips)
    assert r["persistence"] == 0.0 and r["per_frame"][0] >= 0.95


def test_other_clips_objects_mostly_do_not_count(clips):
    assert object_persistence([unrelated(c) for c in clips], clips)["persistence"] < 0.5


def test_bad_input_is_refused(clips):
    with pytest.raises(InvalidInputError, match="ground truths"):
        object_persistence(_videos(clips)[:3], clips)
    with pytest.raises(InvalidInputError, match="area_ratio"):
        object_persistence(_videos(clips), clips, area_ratio=0.5)
    with pytest.raises(InvalidInputError, match="no videos"):
        object_persistence([], [])
    with pytest.raises(InvalidInputError, match="frame counts"):
        object_persistence([clips[0].video, clips[1].video[:8]], clips[:2])
