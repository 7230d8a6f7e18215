"""The tracklet data model: JSON round trip, dense expansion, visibility, clamping, resampling, slots.

Expected values are derived by hand from the documented semantics (see tracklets/model.py, interpolation.py, slots.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import (
    FORMAT_NAME,
    FORMAT_VERSION,
    INTERPOLATIONS,
    Tracklets,
    load,
    parse_tracklets_dict,
)


# ---------------------------------------------------------------------------------------------------------- helpers
def kf(frame, box, visible=True):
    return {"frame": frame, "box": list(box), "visible": visible}


def obj(oid, keyframes, interpolation="linear", **extra):
    return {"id": oid, "interpolation": interpolation, "keyframes": keyframes, **extra}


def doc(objects, width=200, height=100, num_frames=11, fps=8.0):
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "width": width, "height": height,
            "num_frames": num_frames, "fps": fps, "objects": objects}


def make(objects, **kw) -> Tracklets:
    return parse_tracklets_dict(doc(objects, **kw))


def track(t: Tracklets, oid: int, clamp: bool = True, num_frames=None):
    d = t.dense(num_frames, clamp=clamp)
    j = d.ids.index(oid)
    return d.boxes[:, j], d.visible[:, j]


def lerp(a, b, u):
    return [x + (y - x) * u for x, y in zip(a, b)]


# ---------------------------------------------------------------------------------------------------------- JSON
def test_json_round_trip_is_lossless():
    t = make([
        obj(4, [kf(0, [1.5, 2.25, 30, 40]), kf(5, [10, 12, 50, 60], False), kf(9, [20, 22, 60.125, 70])],
            "catmull-rom", label="car", color="#FF8000"),
        obj(1, [kf(3, [0, 0, 10, 10])], "hold", label="person"),
        obj(2, [kf(0, [5, 5, 15, 15]), kf(10, [100, 50, 150, 90])], "ease-in-out"),
    ], fps=7.5)
    text = t.to_json()
    data = json.loads(text)
    assert data["format"] == FORMAT_NAME and data["version"] == FORMAT_VERSION
    back = load(text)
    assert back == t
    assert Tracklets.from_json(text) == t
    assert load(t.to_dict()) == t
    # colours are normalised to lower case; file order of objects is kept
    assert [o.id for o in back.objects] == [4, 1, 2]
    assert back.objects[0].color == "#ff8000"
    assert back.fps == 7.5


def test_json_round_trip_detects_a_change():
    t = make([obj(1, [kf(0, [0, 0, 10, 10]), kf(4, [5, 5, 20, 20])])])
    d = json.loads(t.to_json())
    d["objects"][0]["keyframes"][1]["box"][2] = 21
    assert load(d) != t


def test_keyframes_given_out_of_order_are_sorted():
    t = make([obj(1, [kf(8, [20, 0, 30, 10]), kf(0, [0, 0, 10, 10])])])
    assert [k.frame for k in t.objects[0].keyframes] == [0, 8]
    boxes, _ = track(t, 1)
    np.testing.assert_allclose(boxes[4], [10, 0, 20, 10])


# ---------------------------------------------------------------------------------------------------------- dense
def test_linear_interpolation_midpoint_and_fractions():
    a, b = [0, 0, 10, 20], [20, 10, 50, 40]
    t = make([obj(1, [kf(0, a), kf(10, b)], "linear")])
    boxes, vis = track(t, 1)
    assert boxes.shape == (11, 4)
    assert vis.all()
    np.testing.assert_allclose(boxes[5], [10, 5, 30, 30])
    for f in range(11):
        np.testing.assert_allclose(boxes[f], lerp(a, b, f / 10), atol=1e-9)


def test_hold_keeps_previous_box_until_next_keyframe():
    a, b, c = [0, 0, 10, 10], [50, 20, 70, 40], [100, 50, 120, 90]
    t = make([obj(1, [kf(0, a), kf(4, b), kf(8, c)], "hold")])
    boxes, vis = track(t, 1)
    assert vis.all()
    for f in range(11):
        expected = a if f < 4 else b if f < 8 else c
        np.testing.assert_array_equal(boxes[f], expected)


def test_ease_in_out_is_symmetric_and_slower_at_the_ends():
    t = make([obj(1, [kf(0, [0, 0, 10, 10]), kf(10, [100, 40, 110, 50])], "ease-in-out")])
    boxes, _ = track(t, 1)
    x1 = boxes[:, 0]
    # smoothstep s(u) = u^2 (3 - 2u): s(0.1) = 0.028, s(0.4) = 0.352, s(0.5) = 0.5
    assert x1[1] == pytest.approx(2.8)
    assert x1[4] == pytest.approx(35.2)
    assert x1[5] == pytest.approx(50.0)
    for f in range(11):
        assert x1[f] + x1[10 - f] == pytest.approx(100.0)  # symmetric about the midpoint
    steps = np.diff(x1)
    assert steps[0] < 10 < steps[4]  # linear would step 10 every frame
    assert steps[0] < steps[1] < steps[2] < steps[3] < steps[4]
    assert np.all(steps > 0)
    # y follows the same easing; width/height stay 10
    assert boxes[5, 1] == pytest.approx(20.0)
    np.testing.assert_allclose(boxes[:, 2] - boxes[:, 0], 10)


def _cr_tracklets():
    # centres (10, 10) @0, (50, 30) @4, (60, 10) @10; sizes (10, 10), (20, 10), (30, 30)
    return make([obj(1, [kf(0, [5, 5, 15, 15]), kf(4, [40, 25, 60, 35]), kf(10, [45, -5, 75, 25])],
                     "catmull-rom")], width=200, height=100)


def test_catmull_rom_passes_through_keyframes():
    t = _cr_tracklets()
    boxes, _ = track(t, 1, clamp=False)
    for k in t.objects[0].keyframes:
        np.testing.assert_allclose(boxes[k.frame], k.box, atol=1e-9)


def test_catmull_rom_centre_follows_the_spline_and_sizes_are_linear():
    t = _cr_tracklets()
    o = t.objects[0]
    b, _ = o.evaluate(np.array([2.0, 7.0]))
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = b[:, 2:] - b[:, :2]
    # Hermite on [0, 4] at u = 0.5: 0.5 p0 + 0.125*4*m0 + 0.5 p1 - 0.125*4*m1 with
    # m0 = (p1 - p0) / 4 = (10, 5) (one-sided end), m1 = (p2 - p0) / 10 = (5, 0) (central) -> (32.5, 22.5)
    np.testing.assert_allclose(centre[0], [32.5, 22.5], atol=1e-9)
    assert not np.allclose(centre[0], [30, 20])  # not the straight line
    # sizes linear: (10,10)->(20,10) at u=.5 is (15,10); (20,10)->(30,30) at u=.5 is (25,20)
    np.testing.assert_allclose(size[0], [15, 10], atol=1e-9)
    np.testing.assert_allclose(size[1], [25, 20], atol=1e-9)


def test_catmull_rom_is_smooth_at_interior_keyframes():
    o = _cr_tracklets().objects[0]
    h = 1e-5
    b, _ = o.evaluate(np.array([4 - h, 4.0, 4 + h]))
    c = (b[:, :2] + b[:, 2:]) / 2
    left = (c[1] - c[0]) / h
    right = (c[2] - c[1]) / h
    # the tangent at the interior key is (p2 - p0) / (t2 - t0) = ((60 - 10) / 10, (10 - 10) / 10) = (5, 0)
    np.testing.assert_allclose(left, [5, 0], atol=1e-3)
    np.testing.assert_allclose(right, [5, 0], atol=1e-3)
    # a linear interpolation would have a kink there: slopes (10, 5) then (5/3, -10/3)
    lin = make([obj(1, [kf(k.frame, k.box) for k in o.keyframes], "linear")]).objects[0]
    bl, _ = lin.evaluate(np.array([4 - h, 4.0, 4 + h]))
    cl = (bl[:, :2] + bl[:, 2:]) / 2
    assert np.abs((cl[1] - cl[0]) / h - (cl[2] - cl[1]) / h).max() > 1


def test_catmull_rom_on_uniform_straight_motion_is_linear():
    t = make([obj(1, [kf(0, [0, 0, 10, 10]), kf(5, [10, 5, 20, 15]), kf(10, [20, 10, 30, 20])], "catmull-rom")])
    boxes, _ = track(t, 1)
    for f in range(11):
        np.testing.assert_allclose(boxes[f], lerp([0, 0, 10, 10], [20, 10, 30, 20], f / 10), atol=1e-9)


def test_catmull_rom_with_two_keyframes_is_linear():
    a, b = [0, 0, 10, 10], [40, 20, 80, 60]
    t = make([obj(1, [kf(0, a), kf(10, b)], "catmull-rom")])
    boxes, _ = track(t, 1)
    np.testing.assert_allclose(boxes[3], lerp(a, b, 0.3), atol=1e-9)


@pytest.mark.parametrize("mode", INTERPOLATIONS)
def test_single_keyframe_holds_everywhere_after_it(mode):
    t = make([obj(1, [kf(3, [10, 10, 20, 30])], mode)])
    boxes, vis = track(t, 1)
    assert vis.tolist() == [False] * 3 + [True] * 8
    np.testing.assert_array_equal(boxes[3:], np.tile([10, 10, 20, 30], (8, 1)))


# ---------------------------------------------------------------------------------------------------------- visibility
def test_visibility_gaps_and_reappearance():
    t = make([obj(1, [kf(3, [0, 0, 10, 10]), kf(6, [30, 0, 40, 10], False), kf(8, [50, 0, 60, 10]),
                      kf(10, [70, 0, 80, 10])])], num_frames=14)
    boxes, vis = track(t, 1)
    expected = [False] * 3 + [True] * 3 + [False] * 2 + [True] * 6
    assert vis.tolist() == expected
    # reappearance lands exactly on its keyframe box, and after the last keyframe the last box holds
    np.testing.assert_array_equal(boxes[8], [50, 0, 60, 10])
    for f in (10, 11, 12, 13):
        np.testing.assert_array_equal(boxes[f], [70, 0, 80, 10])


def test_hidden_last_keyframe_stays_hidden():
    t = make([obj(1, [kf(0, [0, 0, 10, 10]), kf(4, [10, 0, 20, 10], False)])])
    _, vis = track(t, 1)
    assert vis.tolist() == [True] * 4 + [False] * 7


def test_visibility_is_a_step_function_for_every_mode():
    for mode in INTERPOLATIONS:
        t = make([obj(1, [kf(2, [0, 0, 10, 10]), kf(5, [20, 0, 30, 10], False), kf(7, [40, 0, 50, 10])], mode)])
        _, vis = track(t, 1)
        assert vis.tolist() == [False, False, True, True, True, False, False, True, True, True, True], mode


# ---------------------------------------------------------------------------------------------------------- clamping
def test_partly_outside_box_is_clamped_with_a_warning():
    t = make([obj(7, [kf(3, [-10, 5, 30, 160])])], width=200, height=100)
    assert len(t.warnings) == 1
    assert "object 7" in t.warnings[0] and "frame 3" in t.warnings[0]
    boxes, vis = track(t, 7)
    np.testing.assert_array_equal(boxes[3], [0, 5, 30, 100])
    assert vis[3]
    raw, _ = track(t, 7, clamp=False)
    np.testing.assert_array_equal(raw[3], [-10, 5, 30, 160])


def test_inside_boxes_give_no_warning():
    t = make([obj(1, [kf(0, [0, 0, 200, 100]), kf(5, [10, 10, 20, 20])])])
    assert t.warnings == []


def test_strict_raises_naming_object_and_frame():
    with pytest.raises(InvalidInputError) as info:
        parse_tracklets_dict(doc([obj(7, [kf(0, [0, 0, 10, 10]), kf(3, [190, 5, 230, 50])])]), strict=True)
    msg = str(info.value)
    assert "object 7" in msg and "frame 3" in msg
    assert info.value.obj == 7 and info.value.frame == 3
    assert "canvas" in msg and info.value.fix


@pytest.mark.parametrize("box", [[-1, 0, 10, 10], [0, -1, 10, 10], [190, 0, 201, 10], [0, 90, 10, 101]])
def test_each_canvas_edge_is_checked(box):
    assert len(make([obj(1, [kf(0, box)])]).warnings) == 1
    with pytest.raises(InvalidInputError):
        parse_tracklets_dict(doc([obj(1, [kf(0, box)])]), strict=True)


def test_strict_load_raises_too():
    with pytest.raises(InvalidInputError):
        load(doc([obj(1, [kf(0, [-1, 0, 10, 10])])]), strict=True)


def test_wholly_outside_box_is_invisible_in_dense():
    t = make([obj(1, [kf(0, [10, 10, 20, 20]), kf(2, [250, 10, 300, 20]), kf(4, [10, 10, 20, 20])], "hold")])
    _, vis = track(t, 1)
    assert vis.tolist() == [True, True, False, False] + [True] * 7
    _, raw_vis = track(t, 1, clamp=False)
    assert raw_vis.all()


def test_box_touching_the_edge_from_outside_is_invisible():
    t = make([obj(1, [kf(0, [200, 10, 250, 20])])])
    boxes, vis = track(t, 1)
    assert not vis.any()
    np.testing.assert_array_equal(boxes[0], [200, 10, 200, 20])


# ---------------------------------------------------------------------------------------------------------- resample
def test_resample_frames_keeps_timing():
    a, b = [0, 0, 10, 20], [100, 40, 120, 80]
    t = make([obj(1, [kf(0, a), kf(10, b)])], num_frames=11, fps=10.0)
    r = t.resample(num_frames=21)
    assert r.num_frames == 21 and (r.width, r.height) == (200, 100)
    rb, rv = track(r, 1)
    np.testing.assert_allclose(rb[0], a)
    np.testing.assert_allclose(rb[20], b)
    np.testing.assert_allclose(rb[10], lerp(a, b, 0.5))
    np.testing.assert_allclose(rb[5], lerp(a, b, 0.25))
    assert rv.all()
    # the clip keeps its duration: (F - 1) / fps
    assert (r.num_frames - 1) / r.fps == pytest.approx((t.num_frames - 1) / t.fps)


def test_resample_canvas_scales_boxes():
    t = make([obj(1, [kf(0, [10, 20, 50, 60]), kf(10, [100, 0, 180, 40])])])
    r = t.resample(width=400, height=50)
    assert (r.width, r.height, r.num_frames) == (400, 50, 11)
    rb, _ = track(r, 1)
    np.testing.assert_allclose(rb[0], [20, 10, 100, 30])
    np.testing.assert_allclose(rb[10], [200, 0, 360, 20])
    ob, _ = track(t, 1)
    np.testing.assert_allclose(rb, ob * [2, 0.5, 2, 0.5])


def test_resample_down_with_colliding_keyframes_rekeys_per_frame():
    t = make([
        obj(1, [kf(0, [0, 0, 10, 10]), kf(1, [5, 2, 20, 12]), kf(5, [40, 30, 60, 50], False),
                kf(10, [100, 50, 130, 90])], "catmull-rom"),
        obj(2, [kf(0, [0, 0, 10, 10]), kf(10, [50, 50, 60, 60])], "ease-in-out"),
    ], num_frames=11)
    r = t.resample(num_frames=3)
    o1 = next(o for o in r.objects if o.id == 1)
    o2 = next(o for o in r.objects if o.id == 2)
    # frames 0 and 1 both map to new frame 0 -> per-frame keys from the exact path
    assert [k.frame for k in o1.keyframes] == [0, 1, 2]
    assert o1.interpolation == "linear"
    # non-colliding object keeps its structure
    assert [k.frame for k in o2.keyframes] == [0, 2]
    assert o2.interpolation == "ease-in-out"
    dr, dt = r.dense(), t.dense(3)
    np.testing.assert_allclose(dr.boxes, dt.boxes, atol=1e-9)
    np.testing.assert_array_equal(dr.visible, dt.visible)
    # times 0, 5, 10 of the source: visible, hidden, visible
    assert dr.visible[:, dr.ids.index(1)].tolist() == [True, False, True]
    np.testing.assert_allclose(dr.boxes[2, dr.ids.index(1)], [100, 50, 130, 90])


@pytest.mark.parametrize("bad", [0, -3, 2.5, "4", None, float("nan")])
def test_resample_rejects_bad_frame_counts(bad):
    t = make([obj(1, [kf(0, [0, 0, 10, 10])])])
    if bad is None:
        assert t.resample(num_frames=None).num_frames == 11
        return
    with pytest.raises(InvalidInputError):
        t.resample(num_frames=bad)


def test_dense_with_other_frame_count_evaluates_fractional_times():
    a, b = [0, 0, 10, 10], [90, 0, 100, 10]
    t = make([obj(1, [kf(0, a), kf(9, b)])], num_frames=10)
    boxes, _ = track(t, 1, num_frames=4)  # source times 0, 3, 6, 9
    np.testing.assert_allclose(boxes[:, 0], [0, 30, 60, 90])


# ---------------------------------------------------------------------------------------------------------- slots
def _three_objects():
    # file order 5, 2, 9; canvas 100 x 50
    return make([
        obj(5, [kf(0, [10, 5, 30, 25]), kf(4, [20, 10, 40, 30])], label="car", color="#ff8000"),
        obj(2, [kf(2, [50, 0, 100, 50])], label="person", color="#00ff00"),
        obj(9, [kf(0, [0, 0, 20, 20]), kf(2, [0, 0, 20, 20], False), kf(3, [10, 10, 30, 30])], color="#0000ff"),
    ], width=100, height=50, num_frames=5)


def test_to_slots_shapes_and_order():
    s = _three_objects().to_slots(num_frames=5, width=1024, height=576)
    assert tuple(s.boxes.shape) == (5, 20, 4) and tuple(s.masks.shape) == (5, 20)
    assert tuple(s.colors.shape) == (20, 3)
    assert s.boxes.dtype == torch.float32 and s.masks.dtype == torch.float32
    assert s.ids == [2, 5, 9] + [None] * 17
    assert s.labels[:4] == ["person", "car", "", ""]
    assert s.num_objects == 3


def test_to_slots_boxes_masks_colors():
    s = _three_objects().to_slots(num_frames=5, width=1024, height=576)
    boxes, masks = s.boxes.numpy(), s.masks.numpy()
    # object 5 (slot 1): [10, 5, 30, 25] / [100, 50, 100, 50]
    np.testing.assert_allclose(boxes[0, 1], [0.1, 0.1, 0.3, 0.5], atol=1e-6)
    np.testing.assert_allclose(boxes[2, 1], [0.15, 0.15, 0.35, 0.55], atol=1e-6)
    assert masks[:, 1].tolist() == [1] * 5
    # object 2 (slot 0): appears at frame 2
    assert masks[:, 0].tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(boxes[:2, 0], 0)
    np.testing.assert_allclose(boxes[2, 0], [0.5, 0, 1, 1], atol=1e-6)
    # object 9 (slot 2): hidden at frame 2 only
    assert masks[:, 2].tolist() == [1, 1, 0, 1, 1]
    np.testing.assert_array_equal(boxes[2, 2], 0)
    # padding slots are empty
    np.testing.assert_array_equal(masks[:, 3:], 0)
    np.testing.assert_array_equal(boxes[:, 3:], 0)
    np.testing.assert_array_equal(s.colors[3:].numpy(), 0)
    # colours from '#rrggbb'
    np.testing.assert_allclose(s.colors[0].numpy(), [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(s.colors[1].numpy(), [1, 128 / 255, 0], atol=1e-6)
    np.testing.assert_allclose(s.colors[2].numpy(), [0, 0, 1], atol=1e-6)


def test_to_slots_resamples_time():
    t = make([obj(1, [kf(0, [0, 0, 10, 10]), kf(10, [100, 0, 110, 10])])], width=200, height=100)
    s = t.to_slots(num_frames=6, width=512, height=256, max_instances=4)
    assert tuple(s.boxes.shape) == (6, 4, 4)
    # output frame k is source time 2k -> x1 = 20k px -> 0.1 k normalised
    np.testing.assert_allclose(s.boxes[:, 0, 0].numpy(), [0, 0.1, 0.2, 0.3, 0.4, 0.5], atol=1e-6)


def test_to_slots_clamps_partly_outside_boxes():
    t = make([obj(1, [kf(0, [-50, -10, 50, 120])])], width=100, height=100, num_frames=2)
    s = t.to_slots(num_frames=2, width=64, height=64)
    np.testing.assert_allclose(s.boxes[0, 0].numpy(), [0, 0, 0.5, 1], atol=1e-6)


def test_to_slots_too_many_objects_names_the_count():
    t = make([obj(i, [kf(0, [i, 0, i + 10, 10])]) for i in range(21)])
    with pytest.raises(InvalidInputError) as info:
        t.to_slots(num_frames=11, width=64, height=64)
    msg = str(info.value)
    assert "21" in msg and "20" in msg and info.value.fix
    # and with 20 it is fine
    make([obj(i, [kf(0, [i, 0, i + 10, 10])]) for i in range(20)]).to_slots(11, 64, 64)


def test_to_slots_keep_largest_by_mean_visible_area():
    num_frames = 10
    sides = {i: (7 * i) % 22 + 5 for i in range(22)}  # distinct sides 5..26
    objects = [obj(i, [kf(0, [0, 0, s, s])]) for i, s in sides.items() if i != 5]
    # object 5: a 12 x 12 box seen in the last frame only -> mean visible area 144 / 10 = 14.4
    objects.append(obj(5, [kf(9, [0, 0, 12, 12])]))
    t = make(objects, width=100, height=100, num_frames=num_frames)
    mean_area = {i: float(s * s) for i, s in sides.items()}
    mean_area[5] = 144 / num_frames
    expected = sorted(sorted(mean_area, key=lambda i: -mean_area[i])[:20])
    assert 5 not in expected and 0 not in expected  # by hand: 14.4 and 5*5 are the two smallest
    s = t.to_slots(num_frames=num_frames, width=64, height=64, keep_largest=True)
    assert s.ids == expected
    # each kept slot carries its own object's box
    for slot, oid in enumerate(s.ids):
        side = sides[oid] / 100
        np.testing.assert_allclose(s.boxes[0, slot].numpy(), [0, 0, side, side], atol=1e-6)


def test_to_slots_official_first_20_by_id_with_a_warning(caplog):
    """The error stays the default; overflow="first" is the official loaders' behaviour: the 20 smallest ids (the
    first 20 slots), and a warning naming the dropped ids. Ids are not in input order here, so "first" means by id."""
    ids = [40, 3, 17, 8, 25, 1, 33, 12, 9, 50, 2, 30, 7, 14, 21, 5, 11, 44, 19, 28, 6, 60]  # 22 objects
    t = make([obj(i, [kf(0, [n, 0, n + 10, 10])]) for n, i in enumerate(ids)])
    with pytest.raises(InvalidInputError, match="22 objects"):
        t.to_slots(11, 64, 64)
    with caplog.at_level("WARNING"):
        s = t.to_slots(11, 64, 64, overflow="first")
    assert s.ids == sorted(ids)[:20]
    assert "dropped the objects with ids 50, 60" in caplog.text and "first 20 by id" in caplog.text
    largest = t.to_slots(11, 64, 64, overflow="largest")  # same sizes: ties keep the smaller ids
    assert largest.ids == sorted(ids)[:20]
    with pytest.raises(InvalidInputError, match="unknown overflow mode"):
        t.to_slots(11, 64, 64, overflow="last")


@pytest.mark.parametrize("kw", [{"num_frames": 0}, {"width": -1}, {"height": 1.5}, {"max_instances": 0}])
def test_to_slots_rejects_bad_sizes(kw):
    args = {"num_frames": 5, "width": 64, "height": 64, **kw}
    with pytest.raises(InvalidInputError):
        _three_objects().to_slots(**args)


def test_empty_tracklets_give_empty_slots():
    s = make([]).to_slots(num_frames=3, width=64, height=64)
    assert s.num_objects == 0
    assert float(s.masks.sum()) == 0
