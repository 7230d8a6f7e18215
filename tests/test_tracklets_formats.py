"""Importers, exporters, format guessing, atomic saving and the error messages of bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import trackdiffusion.data.tracklets.io as tio
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Tracklets,
    dumps,
    guess_format,
    load,
    parse_tracklets_dict,
    save,
)
from trackdiffusion.data.tracklets.formats import (
    read_cocovid,
    read_kj,
    read_ytvis,
    write_cocovid,
    write_mot,
    write_tracks,
    write_ytvis,
)


# ---------------------------------------------------------------------------------------------------------- helpers
def kf(frame, box, visible=True):
    return {"frame": frame, "box": list(box), "visible": visible}


def doc(objects, width=200, height=100, num_frames=11, fps=8.0):
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "width": width, "height": height,
            "num_frames": num_frames, "fps": fps, "objects": objects}


def assert_same_dense(a: Tracklets, b: Tracklets, clamp: bool = True, visible_only: bool = False):
    """Same canvas, ids, labels, visibility and boxes (within 1e-6 of the canvas); ``visible_only``: boxes of hidden
    frames may differ (exporters write nothing for them)."""
    tol = 1e-6 * max(a.width, a.height)
    assert (a.width, a.height, a.num_frames) == (b.width, b.height, b.num_frames)
    da, db = a.dense(clamp=clamp), b.dense(clamp=clamp)
    assert da.ids == db.ids and da.labels == db.labels
    np.testing.assert_array_equal(da.visible, db.visible)
    diff = np.abs(da.boxes - db.boxes).max(axis=-1) if da.boxes.size else np.zeros(da.visible.shape)
    if visible_only:
        diff = np.where(da.visible, diff, 0.0)
    assert (diff <= tol).all()


def assert_json_round_trip(a: Tracklets) -> Tracklets:
    b = load(a.to_json())
    assert_same_dense(a, b)
    assert_same_dense(a, b, clamp=False)
    assert b == a
    return b


def assert_matches_source(t: Tracklets, source: dict[tuple[int, int], list[float]]):
    """``source``: (object id, 0-based frame) -> xyxy box; every other (object, frame) must be invisible."""
    tol = 1e-6 * max(t.width, t.height)
    d = t.dense(clamp=False)
    assert sorted(d.ids) == sorted({oid for oid, _ in source})
    for j, oid in enumerate(d.ids):
        for f in range(t.num_frames):
            if (oid, f) in source:
                assert d.visible[f, j], (oid, f)
                assert np.abs(d.boxes[f, j] - source[oid, f]).max() <= tol, (oid, f)
            else:
                assert not d.visible[f, j], (oid, f)


def mot_rows(text: str) -> dict[tuple[int, int], list[float]]:
    rows = {}
    for line in text.splitlines():
        if line.strip():
            c = [float(v) for v in line.split(",")]
            rows[int(c[0]), int(c[1])] = c[2:6]
    return rows


# ---------------------------------------------------------------------------------------------------------- MOT
MOT_TEXT = """\
# frame, id, left, top, width, height, conf, class, vis
1,1,10,20,30,40,1,1,1
2,1,12.5,22,30,40,1,1,0.5
4,1,16,26,30,40,1,1,1

1, 2, 50, 60, 20, 10
3 2 52 61 20.25 10
"""
MOT_SOURCE = {  # 0-based frames, xyxy
    (1, 0): [10, 20, 40, 60], (1, 1): [12.5, 22, 42.5, 62], (1, 3): [16, 26, 46, 66],
    (2, 0): [50, 60, 70, 70], (2, 2): [52, 61, 72.25, 71],
}


def test_mot_import_round_trips():
    a = load(MOT_TEXT, format="mot", width=200, height=100)
    assert (a.width, a.height, a.num_frames) == (200, 100, 4)  # num_frames defaults to the last frame
    assert_matches_source(a, MOT_SOURCE)
    labels = {o.id: o.label for o in a.objects}
    assert labels == {1: "pedestrian", 2: ""}
    assert_json_round_trip(a)


def test_mot_is_guessed_from_text_and_num_frames_extends():
    a = load(MOT_TEXT, width=200, height=100, num_frames=6)
    assert a.num_frames == 6
    assert_matches_source(a, MOT_SOURCE)


def test_mot_seqinfo_beside_gt_is_picked_up(tmp_path):
    seq = tmp_path / "MOT17-02"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=MOT17-02\nimDir=img1\nframeRate=25\nseqLength=10\n"
                                     "imWidth=640\nimHeight=480\nimExt=.jpg\n")
    gt = seq / "gt" / "gt.txt"
    gt.write_text(MOT_TEXT)
    a = load(gt)
    assert (a.width, a.height, a.num_frames, a.fps) == (640, 480, 10, 25.0)
    assert_matches_source(a, MOT_SOURCE)
    b = load(str(gt))
    assert b == a
    # explicit arguments win over seqinfo.ini
    c = load(gt, width=1000, height=500)
    assert (c.width, c.height, c.num_frames) == (1000, 500, 10)
    assert_json_round_trip(a)


def test_mot_export_reads_back_equal_rows():
    t = parse_tracklets_dict(doc([
        {"id": 3, "label": "car", "keyframes": [kf(0, [10, 10, 30, 30]), kf(4, [50, 30, 90, 70]),
                                                 kf(6, [50, 30, 90, 70], False), kf(8, [0, 0, 8, 8])]},
        {"id": 1, "keyframes": [kf(2, [-5, 5, 20, 25]), kf(10, [100, 5, 150, 25])], "interpolation": "ease-in-out"},
    ]))
    text = write_mot(t)
    assert dumps(t, "mot") == text
    rows = mot_rows(text)
    d = t.dense(clamp=False)
    expected = {}
    for j, oid in enumerate(d.ids):
        for f in range(t.num_frames):
            if d.visible[f, j]:
                x1, y1, x2, y2 = d.boxes[f, j]
                expected[f + 1, oid] = [x1, y1, x2 - x1, y2 - y1]
    assert set(rows) == set(expected)
    for key in rows:
        np.testing.assert_allclose(rows[key], expected[key], atol=1e-9)
    # the class column follows MOT class names
    assert all(line.split(",")[7] == "3" for line in text.splitlines() if line.split(",")[1] == "3")
    back = load(text, format="mot", width=t.width, height=t.height, num_frames=t.num_frames)
    assert mot_rows(write_mot(back)).keys() == rows.keys()
    for key, row in mot_rows(write_mot(back)).items():
        np.testing.assert_allclose(row, rows[key], atol=1e-9)


def test_mot_export_of_unlabelled_objects_keeps_empty_labels():
    t = parse_tracklets_dict(doc([{"id": 1, "keyframes": [kf(0, [10, 10, 30, 30])]}]))
    back = load(write_mot(t), format="mot", width=200, height=100)
    assert back.objects[0].label == ""


# ---------------------------------------------------------------------------------------------------------- YouTube-VIS
def ytvis_doc():
    return {
        "videos": [{"id": 7, "name": "clip_a", "width": 320, "height": 240, "length": 5,
                    "file_names": [f"clip_a/{i:05d}.jpg" for i in range(5)]},
                   {"id": 8, "name": "clip_b", "width": 64, "height": 48, "length": 2}],
        "annotations": [
            {"id": 11, "video_id": 7, "category_id": 2,
             "bboxes": [[10, 20, 30, 40], None, [14, 24, 30, 40.5], [16, 26, 31, 41], None]},
            {"id": 4, "video_id": 7, "category_id": 1, "bboxes": [None, None, [100, 50, 20, 10], None, None]},
            {"id": 12, "video_id": 7, "category_id": 1, "bboxes": [None] * 5},
            {"id": 5, "video_id": 8, "category_id": 1, "bboxes": [[1, 1, 5, 5], [2, 2, 5, 5]]},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
    }


YTVIS_SOURCE_A = {(11, 0): [10, 20, 40, 60], (11, 2): [14, 24, 44, 64.5], (11, 3): [16, 26, 47, 67],
                  (4, 2): [100, 50, 120, 60]}


def test_ytvis_import_round_trips():
    a = load(ytvis_doc(), video=7)
    assert (a.width, a.height, a.num_frames) == (320, 240, 5)
    assert_matches_source(a, YTVIS_SOURCE_A)  # annotation 12 has no box at all and is dropped
    assert {o.id: o.label for o in a.objects} == {11: "dog", 4: "person"}
    assert_json_round_trip(a)


def test_ytvis_picks_video_by_name_or_id_and_single_video_needs_none():
    by_name = load(ytvis_doc(), video="clip_b")
    by_id = load(json.dumps(ytvis_doc()), video="8")
    assert by_name == by_id
    assert_matches_source(by_name, {(5, 0): [1, 1, 6, 6], (5, 1): [2, 2, 7, 7]})
    single = ytvis_doc()
    single["videos"] = single["videos"][:1]
    assert load(single) == load(ytvis_doc(), video=7)


def test_ytvis_export_reads_back_equal():
    t = parse_tracklets_dict(doc([
        {"id": 2, "label": "cat", "keyframes": [kf(1, [10, 10, 30, 30]), kf(5, [50, 30, 90, 70], False),
                                                 kf(7, [0, 0, 8, 8])]},
        {"id": 0, "label": "dog", "interpolation": "catmull-rom",
         "keyframes": [kf(0, [0, 5, 20, 25]), kf(4, [30, 5, 60, 45]), kf(10, [100, 5, 150, 25])]},
    ]))
    data = write_ytvis(t)
    assert json.loads(dumps(t, "ytvis")) == json.loads(json.dumps(data))
    back = parse_tracklets_dict(read_ytvis(data))
    assert_same_dense(t, back, visible_only=True)
    assert_same_dense(t, back, clamp=False, visible_only=True)
    assert {o.id: o.label for o in back.objects} == {2: "cat", 0: "dog"}
    ann = {a["id"]: a for a in data["annotations"]}
    assert ann[2]["bboxes"][0] is None and ann[2]["bboxes"][5] is None
    np.testing.assert_allclose(ann[2]["bboxes"][1], [10, 10, 20, 20])


# ---------------------------------------------------------------------------------------------------------- TRACKS
def tracks_input():
    path = torch.tensor([[[20.0, 30.0], [100.0, 50.0], [5.0, 5.0]],
                         [[24.0, 31.0], [101.5, 52.0], [6.0, 5.0]],
                         [[28.0, 32.0], [103.0, 54.0], [7.0, 5.0]],
                         [[32.0, 33.0], [104.5, 56.0], [8.0, 5.0]]])  # [F=4, N=3, 2]
    vis = torch.tensor([[True, True, False], [True, False, False], [False, True, False], [True, True, False]])
    return path, vis


def tracks_source(box_w, box_h):
    path, vis = tracks_input()
    src = {}
    for f in range(4):
        for n in range(3):
            if vis[f, n]:
                cx, cy = path[f, n].tolist()
                src[n, f] = [cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2]
    return src


def test_tracks_import_round_trips():
    path, vis = tracks_input()
    a = load({"track_path": path, "track_visibility": vis}, width=256, height=128, box_size=20)
    assert (a.width, a.height, a.num_frames) == (256, 128, 4)
    assert_matches_source(a, tracks_source(20, 20))  # track 2 is never visible and is dropped
    assert_json_round_trip(a)


def test_tracks_with_batch_dim_and_box_tuple():
    path, vis = tracks_input()
    a = load({"track_path": path[None], "track_visibility": vis[None]}, format="tracks", width=256, height=128,
             box_size=(16, 8))
    assert_matches_source(a, tracks_source(16, 8))
    b = load({"track_path": path.numpy(), "track_visibility": vis.numpy()}, width=256, height=128, box_size=(16, 8))
    assert a == b
    assert_json_round_trip(a)


def test_tracks_without_visibility_are_all_visible():
    path, _ = tracks_input()
    a = load({"track_path": path.tolist()}, width=256, height=128, box_size=10)
    d = a.dense(clamp=False)
    assert d.ids == [0, 1, 2] and d.visible.all()


def test_write_tracks_centres():
    t = parse_tracklets_dict(doc([
        {"id": 5, "keyframes": [kf(0, [10, 20, 30, 40]), kf(10, [110, 20, 130, 60])]},
        {"id": 1, "keyframes": [kf(2, [0, 0, 4, 4]), kf(6, [0, 0, 4, 4], False)]},
    ]))
    out = write_tracks(t)
    p, v = out["track_path"].numpy(), out["track_visibility"].numpy()
    assert p.shape == (11, 2, 2) and v.shape == (11, 2)
    # slot 0 is id 1, slot 1 is id 5
    np.testing.assert_allclose(p[:, 1, 0], [20 + 10 * f for f in range(11)], atol=1e-4)
    np.testing.assert_allclose(p[:, 1, 1], [30 + f for f in range(11)], atol=1e-4)
    assert v[:, 0].tolist() == [False, False, True, True, True, True] + [False] * 5
    np.testing.assert_allclose(p[2, 0], [2, 2])
    # resampled: 3 frames = source times 0, 5, 10
    out3 = write_tracks(t, num_frames=3)
    np.testing.assert_allclose(out3["track_path"][:, 1].numpy(), [[20, 30], [70, 35], [120, 40]], atol=1e-4)
    # and back again as TRACKS: the centres survive
    back = load({"track_path": out["track_path"], "track_visibility": out["track_visibility"]}, width=200,
                height=100, box_size=4)
    db = back.dense(clamp=False)
    centres = (db.boxes[..., :2] + db.boxes[..., 2:]) / 2
    np.testing.assert_allclose(centres[:, 1], p[:, 1], atol=1e-4)


# ---------------------------------------------------------------------------------------------------------- KJNodes
KJ_ONE = '[{"x": 10, "y": 20}, {"x": 15.5, "y": 22}, {"x": 21, "y": 24}]'
KJ_ONE_SOURCE = {(0, 0): [6, 16, 14, 24], (0, 1): [11.5, 18, 19.5, 26], (0, 2): [17, 20, 25, 28]}


def test_kj_one_spline_round_trips():
    a = load(KJ_ONE, format="kj", width=128, height=64, box_size=8)
    assert a.num_frames == 3
    assert_matches_source(a, KJ_ONE_SOURCE)
    assert_json_round_trip(a)
    assert load(json.loads(KJ_ONE), width=128, height=64, box_size=8) == a


def test_kj_single_quoted_text_via_read_kj():
    # parse_kj_points accepts Python-repr style single quotes
    a = parse_tracklets_dict(read_kj(KJ_ONE.replace('"', "'"), width=128, height=64, box_size=8))
    assert_matches_source(a, KJ_ONE_SOURCE)


def test_kj_single_quoted_text_via_load():
    a = load(KJ_ONE.replace('"', "'"), format="kj", width=128, height=64, box_size=8)
    assert_matches_source(a, KJ_ONE_SOURCE)


def test_kj_list_of_splines_round_trips():
    splines = [[{"x": 10, "y": 20}, {"x": 12, "y": 20}], [{"x": 50, "y": 40}, {"x": 40, "y": 30}]]
    a = load(splines, width=128, height=64, box_size=(10, 4))  # a list is guessed as KJNodes
    assert_matches_source(a, {(0, 0): [5, 18, 15, 22], (0, 1): [7, 18, 17, 22],
                              (1, 0): [45, 38, 55, 42], (1, 1): [35, 28, 45, 32]})
    b = load(json.dumps(splines), width=128, height=64, box_size=(10, 4))
    assert a == b
    assert_json_round_trip(a)


# ---------------------------------------------------------------------------------------------------------- guessing
def test_guess_format():
    assert guess_format(doc([])) == "json"
    assert guess_format({"objects": []}) == "json"
    assert guess_format(ytvis_doc()) == "ytvis"
    assert guess_format({"track_path": []}) == "tracks"
    assert guess_format([{"x": 1, "y": 2}]) == "kj"
    assert guess_format("1,1,1,1,1,1\n") == "mot"
    with pytest.raises(InvalidInputError) as info:
        guess_format({"hello": 1})
    assert info.value.fix


def test_load_from_path_text_dict_and_tracklets(tmp_path):
    t = parse_tracklets_dict(doc([{"id": 1, "keyframes": [kf(0, [0, 0, 10, 10]), kf(9, [50, 50, 70, 90])]}]))
    p = tmp_path / "t.json"
    p.write_text(t.to_json())
    assert load(p) == t
    assert load(str(p)) == t
    assert load(t.to_json()) == t
    assert load("  \n" + t.to_json(indent=None)) == t
    assert load(t.to_dict()) == t
    assert load(t) is t
    r = load(p, num_frames=21)
    assert r.num_frames == 21 and r == t.resample(num_frames=21)


def test_load_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InvalidInputError) as info:
        load(tmp_path / "nope.json")
    assert "nope.json" in str(info.value) and "not found" in str(info.value)
    with pytest.raises(InvalidInputError):
        load(doc([]), format="xml")
    with pytest.raises(InvalidInputError):
        dumps(parse_tracklets_dict(doc([])), "tracks")


# ---------------------------------------------------------------------------------------------------------- save
def _t(x: float) -> Tracklets:
    return parse_tracklets_dict(doc([{"id": 1, "keyframes": [kf(0, [x, 0, x + 10, 10])]}]))


def test_save_json_and_mot(tmp_path):
    p = save(_t(1), tmp_path / "sub" / "a.json")
    assert load(p) == _t(1)
    q = save(_t(2), tmp_path / "b.txt")
    assert q.read_text() == write_mot(_t(2))
    save(_t(3), p)  # overwrite
    assert load(p) == _t(3)
    assert sorted(os.listdir(tmp_path)) == ["b.txt", "sub"]
    assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_save_failure_in_dumps_keeps_previous_file(tmp_path, monkeypatch):
    p = save(_t(1), tmp_path / "a.json")
    before = p.read_text()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tio, "dumps", boom)
    with pytest.raises(RuntimeError):
        save(_t(2), p)
    assert p.read_text() == before
    assert os.listdir(tmp_path) == ["a.json"]


def test_save_failure_in_replace_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    p = save(_t(1), tmp_path / "a.json")
    before = p.read_text()
    calls = []

    def bad_replace(src, dst):
        calls.append((src, dst))
        assert os.path.exists(src)  # the new text is in a temp file beside the target
        raise OSError("replace failed")

    monkeypatch.setattr(tio.os, "replace", bad_replace)
    with pytest.raises(OSError):
        save(_t(2), p)
    assert calls and os.path.dirname(calls[0][0]) == str(tmp_path)
    assert p.read_text() == before
    assert os.listdir(tmp_path) == ["a.json"]


def test_save_failure_while_writing_keeps_previous_file(tmp_path, monkeypatch):
    p = save(_t(1), tmp_path / "a.json")
    before = p.read_text()
    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError("no space left on device")

    monkeypatch.setattr(tio.os, "fdopen", lambda *a, **k: Failing(real_fdopen(*a, **k)))
    with pytest.raises(OSError):
        save(_t(2), p)
    assert p.read_text() == before
    assert os.listdir(tmp_path) == ["a.json"]


# ---------------------------------------------------------------------------------------------------------- bad input
def test_malformed_json():
    with pytest.raises(InvalidInputError) as info:
        Tracklets.from_json('{"format": "trackdiffusion.tracklets", "version": ')
    assert "not valid JSON" in str(info.value) and info.value.fix
    with pytest.raises(InvalidInputError) as info:
        load('{"format": "trackdiffusion.tracklets", "version": ')
    assert "not valid JSON" in str(info.value)


def test_malformed_json_via_load_says_what_to_do():
    with pytest.raises(InvalidInputError) as info:
        load('{"format": "trackdiffusion.tracklets", "version": ')
    assert info.value.fix


def test_unknown_version():
    d = doc([])
    d["version"] = 2
    with pytest.raises(InvalidInputError) as info:
        load(d)
    assert "version 2" in str(info.value) and info.value.fix
    del d["version"]
    with pytest.raises(InvalidInputError) as info:
        load(d)
    assert "version" in str(info.value)


def test_inverted_box_names_object_and_frame():
    d = doc([{"id": 3, "keyframes": [kf(0, [0, 0, 10, 10]), kf(2, [30, 0, 10, 10])]}])
    with pytest.raises(InvalidInputError) as info:
        load(d)
    msg = str(info.value)
    assert "object 3" in msg and "frame 2" in msg and "x2 <= x1" in msg
    assert info.value.obj == 3 and info.value.frame == 2 and info.value.fix


def test_keyframe_beyond_num_frames():
    d = doc([{"id": 1, "keyframes": [kf(11, [0, 0, 10, 10])]}], num_frames=11)
    with pytest.raises(InvalidInputError) as info:
        load(d)
    msg = str(info.value)
    assert "object 1" in msg and "frame 11" in msg and "num_frames" in msg and info.value.fix


def test_duplicate_ids_and_frames():
    with pytest.raises(InvalidInputError) as info:
        load(doc([{"id": 1, "keyframes": [kf(0, [0, 0, 1, 1])]}, {"id": 1, "keyframes": [kf(0, [0, 0, 1, 1])]}]))
    assert "object 1" in str(info.value)
    with pytest.raises(InvalidInputError) as info:
        load(doc([{"id": 1, "keyframes": [kf(2, [0, 0, 1, 1]), kf(2, [0, 0, 2, 2])]}]))
    assert "object 1" in str(info.value) and "frame 2" in str(info.value)


def test_mot_line_with_four_columns_names_the_line():
    text = "1,1,10,10,5,5\n# comment\n2,1,10,10\n"
    with pytest.raises(InvalidInputError) as info:
        load(text, format="mot", width=100, height=100)
    assert info.value.line == 3 and "line 3" in str(info.value)
    assert "4 columns" in str(info.value) and "6" in str(info.value)


def test_mot_negative_id():
    with pytest.raises(InvalidInputError) as info:
        load("1,1,10,10,5,5\n2,-1,10,10,5,5\n", format="mot", width=100, height=100)
    assert info.value.line == 2 and "negative" in str(info.value) and info.value.fix


def test_mot_without_canvas():
    with pytest.raises(InvalidInputError) as info:
        load("1,1,10,10,5,5\n2,1,10,10,5,5\n", format="mot")
    msg = str(info.value)
    assert "canvas" in msg and "width" in msg and "height" in msg


def test_mot_frame_beyond_num_frames():
    with pytest.raises(InvalidInputError) as info:
        load("1,1,10,10,5,5\n9,4,10,10,5,5\n", format="mot", width=100, height=100, num_frames=5)
    assert info.value.obj == 4 and "num_frames 5" in str(info.value)


def test_kj_splines_of_different_lengths():
    with pytest.raises(InvalidInputError) as info:
        load([[{"x": 1, "y": 1}, {"x": 2, "y": 2}], [{"x": 1, "y": 1}, {"x": 2, "y": 2}, {"x": 3, "y": 3}]],
             width=64, height=64)
    assert "[2, 3]" in str(info.value) and info.value.fix


def test_kj_without_canvas():
    with pytest.raises(InvalidInputError) as info:
        load(KJ_ONE, format="kj")
    assert "width" in str(info.value)


def test_ytvis_many_videos_need_video():
    with pytest.raises(InvalidInputError) as info:
        load(ytvis_doc())
    msg = str(info.value)
    assert "2 videos" in msg and "clip_a" in msg and "clip_b" in msg and "video" in info.value.fix
    with pytest.raises(InvalidInputError) as info:
        load(ytvis_doc(), video="clip_z")
    assert "clip_z" in str(info.value)


def test_text_is_never_a_path_never_opens_a_file(tmp_path):
    """A server node passes confined files as Path objects and all else as text: a file name given as text is then
    parsed as a (bad) document, never opened."""
    from trackdiffusion.data.tracklets import load

    doc = {"version": 1, "width": 64, "height": 64, "num_frames": 2, "objects": [
        {"id": 1, "label": "secret-label", "keyframes": [{"frame": 0, "box": [1, 1, 9, 9]}]}]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    assert load(str(path)).objects[0].label == "secret-label"  # the command line reads any path it is given
    with pytest.raises(InvalidInputError) as info:
        load(str(path), text_is_never_a_path=True)
    assert "secret-label" not in str(info.value)
    assert load(path, text_is_never_a_path=True).objects[0].label == "secret-label"  # a Path is a file


def cocovid_doc() -> dict:
    """mmtracking's COCO-VID shape: two videos, frames counted from 1, a box per annotation, an instance missing
    from a frame, a zero-size box (absent), boxes of another video interleaved."""
    images = [{"id": 100 + f, "video_id": 7, "frame_id": f + 1, "file_name": f"v7/{f}.jpg", "width": 320,
               "height": 240} for f in range(4)]
    images += [{"id": 200 + f, "video_id": 8, "frame_id": f, "file_name": f"v8/{f}.jpg"} for f in range(2)]
    ann = [{"image_id": 100, "instance_id": 11, "category_id": 2, "bbox": [10, 20, 30, 40]},
           {"image_id": 200, "instance_id": 5, "category_id": 1, "bbox": [1, 1, 5, 5]},
           {"image_id": 102, "instance_id": 11, "category_id": 2, "bbox": [14, 24, 30, 40.5]},
           {"image_id": 103, "instance_id": 11, "category_id": 2, "bbox": [16, 26, 31, 41]},
           {"image_id": 102, "instance_id": 4, "category_id": 1, "bbox": [100, 50, 20, 10]},
           {"image_id": 103, "instance_id": 4, "category_id": 1, "bbox": [100, 50, 0, 10]}]
    for i, a in enumerate(ann):
        a.update(id=i + 1, iscrowd=0)
    return {"videos": [{"id": 7, "name": "clip_a", "width": 320, "height": 240}, {"id": 8, "name": "clip_b",
                                                                                  "width": 64, "height": 48}],
            "images": images, "annotations": ann,
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}]}


def test_cocovid_is_read_and_told_apart_from_youtube_vis():
    """Frames from frame_id (counted from 1 here), objects from instance_id, the canvas from the video (or its
    images), a zero-size box absent; --video picks a video; the format is guessed."""
    assert tio.guess_format(cocovid_doc()) == "cocovid" and tio.guess_format(ytvis_doc()) == "ytvis"
    with pytest.raises(InvalidInputError, match="holds 2 videos"):
        load(cocovid_doc())
    a = load(cocovid_doc(), video="clip_a")
    assert (a.width, a.height, a.num_frames) == (320, 240, 4)
    assert_matches_source(a, {(11, 0): [10, 20, 40, 60], (11, 2): [14, 24, 44, 64.5], (11, 3): [16, 26, 47, 67],
                              (4, 2): [100, 50, 120, 60]})
    assert {o.id: o.label for o in a.objects} == {11: "dog", 4: "person"}
    b = load(json.dumps(cocovid_doc()), video="8", format="cocovid")
    assert (b.width, b.height, b.num_frames) == (64, 48, 2)
    assert_matches_source(b, {(5, 0): [1, 1, 6, 6]})


def test_cocovid_export_reads_back_equal():
    t = parse_tracklets_dict(doc([
        {"id": 2, "label": "cat", "keyframes": [kf(1, [10, 10, 30, 30]), kf(5, [50, 30, 90, 70], False),
                                                 kf(7, [0, 0, 8, 8])]},
        {"id": 0, "label": "dog", "interpolation": "catmull-rom",
         "keyframes": [kf(0, [0, 5, 20, 25]), kf(4, [30, 5, 60, 45]), kf(10, [100, 5, 150, 25])]},
    ]))
    data = write_cocovid(t)
    assert json.loads(dumps(t, "cocovid")) == json.loads(json.dumps(data))
    assert len(data["images"]) == t.num_frames and all(a["instance_id"] in (0, 2) for a in data["annotations"])
    back = parse_tracklets_dict(read_cocovid(data))
    assert_same_dense(t, back, clamp=False, visible_only=True)
    assert {o.id: o.label for o in back.objects} == {2: "cat", 0: "dog"}
    assert load(json.dumps(data)) == back  # guessed as COCO-VID


def test_errors_quote_only_a_short_excerpt_of_what_was_read():
    """A value read from a file is quoted in the error, never more than a short excerpt of it (on a shared server the
    message reaches whoever queued the workflow)."""
    secret = ["x" * 50] * 10_000
    bad = {"version": 1, "width": 64, "height": 64, "num_frames": 2,
           "objects": [{"id": 1, "keyframes": [{"frame": 0, "box": secret}]}]}
    with pytest.raises(InvalidInputError) as caught:
        load(json.dumps(bad))
    assert len(str(caught.value)) < 3000 and "more characters" in str(caught.value)
