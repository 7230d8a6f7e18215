"""SynTrack: deterministic seed-defined clips whose ground truth (tracklets, points, visibility) matches the pixels."""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np
import pytest

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.evaluation.metrics import classify_colors
from trackdiffusion.evaluation.synth import (
    CATEGORIES,
    PALETTE_RGB,
    POINTS_PER_OBJECT,
    SCENARIOS,
    corrupt,
    freeze,
    make_clip,
    make_split,
    shift,
    spec_masks,
    split_seeds,
    train_batch,
)
from trackdiffusion.evaluation.synth.cli import add_synth_parser

# sha256 of video + tracklets JSON + point trajectories; update only with an intended generator change.
GOLDEN = {
    (20000, "ci", True):
        "9d9ca2d4cdcf9fc17dfb02c4af22ecfcce13f571a77e3cb58a1a1d2f9456f165",
    (20001, "ci", True):
        "fb4ed885d535f599c39c221ed74fdad6c9fa23a61e4dc60d56ef463364af4779",
    (20002, "eval", True):
        "1ab628e1e073b98ddb202368bc5fd2cde422dc6449d87fcf9efb7641a8321ebc",
    (20003, "eval", False):
        "bf4b344dfee0867f0b5b7fdac97aced01fd23855597a538222f196a42f184de3",
    (10004, "eval", True):
        "4b80d7aa1c50bc22adad59c8badb1ffb010d5dd10adef3ee867d54fef02ae900",
}


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_rendering_is_deterministic_and_matches_the_committed_hashes(key):
    seed, tier, texture = key
    clip = make_clip(seed, tier, texture=texture)
    assert clip.digest() == make_clip(seed, tier, texture=texture).digest()
    assert clip.digest() == GOLDEN[key]


def test_splits_tiers_and_scenario_balance():
    assert split_seeds("val")[0] == 10000 and split_seeds("val")[-1] == 10255 and len(split_seeds("val")) == 256
    assert split_seeds("test")[0] == 20000 and split_seeds("test")[-1] == 20511
    clips = make_split("val", "ci", 20)
    assert [c.seed for c in clips] == list(range(10000, 10020))
    assert Counter(c.scenario for c in clips) == {s: 4 for s in SCENARIOS}
    assert clips[0].video.shape == (8, 32, 32, 3) and clips[0].video.dtype == np.uint8
    assert make_clip(20000, "eval").video.shape == (16, 64, 64, 3)
    assert make_clip(7, (48, 40, 5)).video.shape == (5, 40, 48, 3)
    for bad in (lambda: make_clip(-1), lambda: make_clip(1, "huge"), lambda: split_seeds("train"),
                lambda: split_seeds("val", 300), lambda: train_batch(-2), lambda: make_clip(1, scenario="spin")):
        with pytest.raises(InvalidInputError):
            bad()


def test_train_stream_is_deterministic_and_never_repeats_held_out_clips():
    a, b = train_batch(10000, 3), train_batch(10000, 3)
    assert [c.digest() for c in a] == [c.digest() for c in b]
    assert len({c.digest() for c in a}) == 3
    held_out = make_clip(10000, "ci", scenario=a[0].scenario)
    assert a[0].digest() != held_out.digest()
    assert train_batch(1, 2)[0].digest() != a[0].digest()


def test_ground_truth_matches_the_pixels():
    for clip in make_split("test", "eval", 10):
        dense = clip.tracklets.dense()
        present = ~np.isnan(clip.boxes[..., 0])
        np.testing.assert_array_equal(dense.visible, present)
        np.testing.assert_allclose(dense.boxes[present], clip.boxes[present], atol=1e-9)
        assert dense.labels == clip.labels and set(clip.labels) <= set(CATEGORIES)
        assert not clip.tracklets.warnings and 1 <= len(clip.labels) <= 3
        # JSON round trip through our loader
        again = load(clip.tracklets.to_json()).dense()
        np.testing.assert_allclose(again.boxes[present], clip.boxes[present], atol=1e-9)
        classes = classify_colors(clip.video, PALETTE_RGB)
        for j, label in enumerate(clip.labels):
            cat = CATEGORIES.index(label)
            for f in np.flatnonzero(present[:, j]):
                if clip.visible_fraction[f, j] == 1.0:  # unoccluded: the colour blob spans the box to 1 px
                    ys, xs = np.nonzero(classes[f] == cat)
                    x1, y1, x2, y2 = clip.boxes[f, j]
                    assert abs(xs.min() - x1) <= 1 and abs(xs.max() + 1 - x2) <= 1
                    assert abs(ys.min() - y1) <= 1.01 * max(1.0, 0.1 * (y2 - y1)) and abs(ys.max() + 1 - y2) <= 1
            assert not (classes[~present[:, j]] == cat).any()
        # visible analytic points lie on their object's colour (within a pixel: shapes cover pixel centres)
        pts, vis = clip.points.points, clip.points.visibility
        assert pts.shape == (16, POINTS_PER_OBJECT * len(clip.labels), 2)
        exact = []
        for f, p in zip(*np.nonzero(vis)):
            x, y = (int(v) for v in pts[f, p])
            cat = CATEGORIES.index(clip.labels[clip.points.component[p]])
            exact.append(classes[f, y, x] == cat)
            assert (classes[f, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] == cat).any()
        assert np.mean(exact) > 0.95


def test_spec_masks_are_the_amodal_shapes_the_renderer_paints():
    for clip in make_split("test", "eval", 10):
        masks = spec_masks(clip.spec)
        f, n = clip.visible_fraction.shape
        assert masks.shape == (f, n, 64, 64) and masks.dtype == bool
        present = ~np.isnan(clip.boxes[..., 0])
        assert not masks[~present].any() and masks.any(axis=(2, 3))[present].all()
        # render_spec's visible fractions, recomputed from the masks (a later object covers an earlier one): exact
        top = np.full((f, 64, 64), -1)
        for j in range(n):
            top[masks[:, j]] = j
        amodal = masks.sum(axis=(2, 3)).astype(np.float64)
        shown = np.stack([(top == j).sum(axis=(1, 2)) for j in range(n)], axis=1)
        np.testing.assert_array_equal(np.divide(shown, amodal, out=np.zeros_like(amodal), where=amodal > 0),
                                      clip.visible_fraction)
        # each mask lies in its box and the front object's mask carries its colour
        for j in range(n):
            for t in np.flatnonzero(present[:, j]):
                ys, xs = np.nonzero(masks[t, j])
                x1, y1, x2, y2 = clip.boxes[t, j]
                assert xs.min() + 0.5 >= x1 and xs.max() + 0.5 < x2 and ys.min() + 0.5 >= y1 and ys.max() + 0.5 < y2
        classes = classify_colors(clip.video, PALETTE_RGB)
        assert (classes[masks[:, -1]] == CATEGORIES.index(clip.labels[-1])).mean() > 0.95


def test_scenarios_do_what_they_say():
    clips = make_split("test", "eval", 25)
    by = {s: [c for c in clips if c.scenario == s] for s in SCENARIOS}
    for c in by["appear"]:
        assert (~np.isnan(c.boxes[..., 0])).sum(axis=0).min() < 16  # some object is absent for a while
    for c in by["occlude"]:
        assert c.visible_fraction.min() < 0.7  # the static object gets covered
    for c in by["scale"]:
        w = c.boxes[..., 2] - c.boxes[..., 0]
        assert (np.abs(np.log(w[-1] / w[0])) >= 0.4 - 1e-9).all()
    for c in by["cross"]:
        x = (c.boxes[..., 0] + c.boxes[..., 2]) / 2  # the last two objects swap sides
        assert np.sign(x[0, -1] - x[0, -2]) == -np.sign(x[-1, -1] - x[-1, -2])


def test_texture_changes_value_only():
    flat, tex = make_clip(20004, "eval", texture=False), make_clip(20004, "eval", texture=True)
    np.testing.assert_array_equal(classify_colors(flat.video, PALETTE_RGB), classify_colors(tex.video, PALETTE_RGB))
    assert not np.array_equal(flat.video, tex.video)


def test_corruptions():
    clip = make_clip(20001, "eval")  # "cross": two objects
    np.testing.assert_array_equal(shift(clip.video, 2)[:, :, 2:], clip.video[:, :, :-2])
    np.testing.assert_array_equal(shift(clip.video, -3, 1)[:, 1:, :-3], clip.video[:, :-1, 3:])
    assert (freeze(clip.video) == clip.video[:1]).all()
    swapped = corrupt(clip, "swap")
    np.testing.assert_array_equal(swapped[:8], clip.video[:8])
    a, b = (CATEGORIES.index(lab) for lab in clip.labels[:2])  # objects 1 and 2 trade colours from frame 8
    before = classify_colors(clip.video[8:], PALETTE_RGB)
    after = classify_colors(swapped[8:], PALETTE_RGB)
    assert ((before == a) == (after == b)).all() and ((before == b) == (after == a)).all()
    assert not np.array_equal(corrupt(clip, "unrelated"), clip.video)
    assert corrupt(clip, "shift-s").shape == clip.video.shape
    with pytest.raises(InvalidInputError):
        corrupt(clip, "blur")


def test_synth_command_writes_clips_and_manifest(tmp_path):
    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers(dest="group", required=True))
    args = parser.parse_args(["synth", str(tmp_path / "out"), "--split", "val", "--tier", "ci", "--clips", "2"])
    assert args.func(args) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [m["seed"] for m in manifest] == [10000, 10001]
    clip = make_clip(10000, "ci")
    with np.load(tmp_path / "out" / "10000.npz") as data:
        np.testing.assert_array_equal(data["video"], clip.video)
        np.testing.assert_array_equal(data["points"], clip.points.points)
    assert load(tmp_path / "out" / "10000.json").to_dict() == clip.tracklets.to_dict()
    with pytest.raises(InvalidInputError):  # never overwrites
        args.func(args)
