"""Property tests: malformed input anywhere must come out as InvalidInputError (nothing else); random valid tracklets
expand to finite, clamped, positive-area boxes and reproduce their keyframes.

The regression cases at the bottom are the crashes these fuzzers found (integers beyond the float range, frame counts
in the trillions, unhashable YouTube-VIS category ids, ...), pinned as plain examples.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import (
    FORMAT_NAME,
    FORMAT_VERSION,
    FORMATS,
    INTERPOLATIONS,
    Tracklets,
    load,
    parse_tracklets_dict,
)
from trackdiffusion.data.tracklets.formats import (
    parse_kj_points,
    read_cocovid,
    read_kj,
    read_tracks,
    read_ytvis,
    write_cocovid,
    write_ytvis,
)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])


def only_invalid_input(fn, *args, **kwargs):
    """Call ``fn``; InvalidInputError is fine (returns None), any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except InvalidInputError as exc:
        assert str(exc)  # a message, at least
        return None


# ---------------------------------------------------------------------------------------------------------- strategies
SPECIAL_NUMBERS = st.sampled_from([0, -1, 1, 1.5, -0.0, 1e308, -1e308, 5e-324, 2**53 + 1, 2**63, -(2**63),
                                   float("nan"), float("inf"), float("-inf"), 1e20, 10**15, 10**400, -(10**400),
                                   10**13, 100_001, 65_537])
NUMBERS = st.one_of(st.integers(-(2**63), 2**63), st.floats(allow_nan=True, allow_infinity=True), SPECIAL_NUMBERS)
SMALL_INTS = st.integers(-10_000, 10_000)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=8))


def json_values(leaves=SCALARS):
    return st.recursive(leaves, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                                       max_size=4), max_leaves=16)


GARBAGE = json_values()
# Garbage of the kinds real files hold (small integers, floats with inf/nan, short text): more of it lands on the paths
# the parsers check value by value, where the full GARBAGE's huge integers mostly fail the first check.
SANE_GARBAGE = json_values(st.one_of(st.none(), st.booleans(), SMALL_INTS, st.floats(allow_nan=True,
                                                                                     allow_infinity=True),
                                     st.text(max_size=8)))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _get(node, path):
    for k in path:
        node = node[k]
    return node


@st.composite
def mutated(draw, base, garbage, protect=lambda path: None):
    """``base`` with 1-3 random edits: replace a value by garbage, delete a key/item, insert garbage, wrap a value.

    ``protect(path)`` may return a strategy to use instead of ``garbage`` at that path (no wrapping there).
    """
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        special = protect(path)
        op = draw(st.sampled_from(["replace", "delete", "insert", "wrap"] if special is None else
                                  ["replace", "delete"]))
        value_strategy = garbage if special is None else special
        if not path:
            if op == "replace":
                doc = draw(value_strategy)
            elif op == "wrap":
                doc = [doc]
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(value_strategy)
        elif op == "delete":
            del parent[key]
        elif op == "insert":
            target = parent[key]
            if isinstance(target, dict):
                target[draw(st.text(max_size=6))] = draw(garbage)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(garbage))
            else:
                parent[key] = draw(garbage)
        else:
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, [[parent[key]]]]))
    return doc


VALID_DOC = {
    "format": FORMAT_NAME, "version": FORMAT_VERSION, "width": 320, "height": 240, "num_frames": 12, "fps": 8,
    "objects": [
        {"id": 3, "label": "car", "color": "#e6194b", "interpolation": "catmull-rom",
         "keyframes": [{"frame": 0, "box": [10, 20, 60, 80], "visible": True},
                       {"frame": 5, "box": [100, 40, 160, 120], "visible": False},
                       {"frame": 11, "box": [200, 100, 300, 230], "visible": True}]},
        {"id": 0, "interpolation": "hold", "keyframes": [{"frame": 2, "box": [0, 0, 30, 30]}]},
    ],
}

VALID_YTVIS = {
    "videos": [{"id": 1, "name": "a", "width": 64, "height": 48, "length": 4, "file_names": ["a/0.jpg"]},
               {"id": 2, "name": "b", "width": 32, "height": 32, "length": 3}],
    "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "bboxes": [[1, 2, 10, 12], None, [3, 4, 10, 12],
                                                                           None]},
                    {"id": 2, "video_id": 2, "category_id": 2, "bboxes": [None, [0, 0, 5, 5], [1, 1, 5, 5]]}],
    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
}


# ---------------------------------------------------------------------------------------------------------- load fuzz
@FUZZ
@given(text=st.text(max_size=200), fmt=st.sampled_from((None,) + FORMATS),
       size=st.sampled_from([None, 64, 0, 1.5]))
def test_random_text_into_load(text, fmt, size):
    only_invalid_input(load, text, format=fmt, width=size, height=size)


@FUZZ
@given(prefix=st.sampled_from(["{", "[", "[{", '{"format": "trackdiffusion.tracklets", "version": 1, ', "[[",
                               '{"videos": [', '{"objects": ']),
       rest=st.text(max_size=60))
def test_json_like_text_into_load(prefix, rest):
    only_invalid_input(load, prefix + rest)
    only_invalid_input(Tracklets.from_json, prefix + rest)


@FUZZ
@given(value=GARBAGE, fmt=st.sampled_from((None,) + FORMATS))
def test_random_json_values_into_load(value, fmt):
    if isinstance(value, (dict, list)):
        only_invalid_input(load, value, format=fmt, width=64, height=48)
    text = json.dumps(value)  # NaN/Infinity are written as JS literals, which json.loads reads back
    only_invalid_input(load, text if "\n" in text or text.lstrip()[:1] in "{[" else text + "\n", format=fmt,
                       width=64, height=48)
    only_invalid_input(parse_tracklets_dict, value)


@FUZZ
@given(d=mutated(VALID_DOC, GARBAGE), strict=st.booleans(), as_text=st.booleans())
def test_mutated_tracklets_documents(d, strict, as_text):
    t = only_invalid_input(load, json.dumps(d) if as_text else d, strict=strict)
    if t is not None:
        assert isinstance(t, Tracklets)
        ids = [o.id for o in t.objects]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i >= 0 for i in ids)
        for o in t.objects:
            assert o.interpolation in INTERPOLATIONS and o.keyframes
            assert [k.frame for k in o.keyframes] == sorted({k.frame for k in o.keyframes})
            for k in o.keyframes:
                assert 0 <= k.frame < t.num_frames
                x1, y1, x2, y2 = k.box
                assert all(math.isfinite(v) for v in k.box) and x2 > x1 and y2 > y1
                if strict:
                    assert x1 >= 0 and y1 >= 0 and x2 <= t.width and y2 <= t.height


@FEW
@given(d=mutated(VALID_DOC, GARBAGE), frames=st.one_of(st.none(), st.integers(-2, 30), st.floats(allow_nan=True)))
def test_mutated_documents_with_resample_on_load(d, frames):
    only_invalid_input(load, d, num_frames=frames)


# ---------------------------------------------------------------------------------------------------------- MOT fuzz
NON_DIGIT_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=4)
MOT_TOKENS = st.one_of(
    st.integers(-3, 300).map(str), st.floats(-1e3, 1e3).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e2", "1.5", "-1", "0", "1_0", "0x10", "", "abc", "1,", "#", "1e13",
                     "9" * 30, "1" + "0" * 400, "100001"]),
    NON_DIGIT_TEXT,
)


@st.composite
def mot_texts(draw):
    lines = []
    # half of the files are well-formed apart from their numbers, so that parsing gets past the first line
    kinds = ["row", "good", "good", "comment", "blank"] if draw(st.booleans()) else ["good", "good", "comment"]
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(kinds))
        if kind == "row":
            sep = draw(st.sampled_from([",", ", ", " ", "\t", " , "]))
            lines.append(sep.join(draw(st.lists(MOT_TOKENS, min_size=0, max_size=10))))
        elif kind == "good":
            f, i = draw(st.integers(1, 20)), draw(st.integers(0, 5))
            x, y = (draw(st.floats(-50, 500)) for _ in range(2))
            w, h = (draw(st.sampled_from([0, -1.5])) if draw(st.integers(0, 9)) == 0 else draw(st.floats(0.5, 300))
                    for _ in range(2))
            extra = draw(st.lists(st.sampled_from(["1", "-1", "0.5", "3", "99"]), max_size=3))
            lines.append(",".join([str(f), str(i), repr(x), repr(y), repr(w), repr(h)] + extra))
        elif kind == "comment":
            lines.append("# " + draw(st.text(max_size=10)).replace("\n", " "))
        else:
            lines.append("   ")
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=mot_texts(), size=st.sampled_from([None, 0, -5, 1.5, 64, 640, True, "640", float("nan"), 10**400]),
       frames=st.sampled_from([None, 1, 5, 400, 2.5, 0, "5", 10**13]), strict=st.booleans())
def test_mot_text_into_load(text, size, frames, strict):
    t = only_invalid_input(load, text, format="mot", width=size, height=size, num_frames=frames, strict=strict)
    if t is not None:
        assert t.width == t.height == int(size)
        d = t.dense()
        assert np.isfinite(d.boxes).all()


# ---------------------------------------------------------------------------------------------------------- YouTube-VIS
@FUZZ
@given(d=st.one_of(mutated(VALID_YTVIS, SANE_GARBAGE), mutated(VALID_YTVIS, GARBAGE)),
       video=st.sampled_from([None, 1, 2, "a", "b", "2", 3, 1.0, "", True]))
def test_mutated_ytvis(d, video):
    only_invalid_input(load, d, format="ytvis", video=video)
    if isinstance(d, dict):
        only_invalid_input(read_ytvis, d, video=video)


VALID_COCOVID = {
    "videos": [{"id": 1, "name": "a", "width": 64, "height": 48}, {"id": 2, "name": "b", "width": 32, "height": 32}],
    "images": [{"id": 10, "video_id": 1, "frame_id": 0}, {"id": 11, "video_id": 1, "frame_id": 1},
               {"id": 20, "video_id": 2, "frame_id": 0}],
    "annotations": [{"id": 1, "image_id": 10, "instance_id": 3, "category_id": 1, "bbox": [1, 2, 10, 12]},
                    {"id": 2, "image_id": 11, "instance_id": 3, "category_id": 1, "bbox": [2, 2, 10, 12]},
                    {"id": 3, "image_id": 20, "instance_id": 4, "category_id": 2, "bbox": [0, 0, 5, 5]}],
    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
}


@FUZZ
@given(d=st.one_of(mutated(VALID_COCOVID, SANE_GARBAGE), mutated(VALID_COCOVID, GARBAGE)),
       video=st.sampled_from([None, 1, 2, "a", "b", "2", 3, 1.0, "", True]))
def test_mutated_cocovid(d, video):
    only_invalid_input(load, d, format="cocovid", video=video)
    if isinstance(d, dict):
        only_invalid_input(read_cocovid, d, video=video)


# ---------------------------------------------------------------------------------------------------------- TRACKS
FLOAT_ARRAYS = hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
                          elements=st.floats(allow_nan=True, allow_infinity=True, width=64))


@st.composite
def tracks_inputs(draw):
    path = draw(st.one_of(FLOAT_ARRAYS, GARBAGE, hnp.arrays(np.float64, st.tuples(st.integers(1, 5),
                                                                                  st.integers(1, 3), st.just(2)),
                                                            elements=st.floats(-200, 400))))
    vis = draw(st.one_of(st.none(), FLOAT_ARRAYS, GARBAGE, hnp.arrays(np.bool_, hnp.array_shapes(max_dims=3,
                                                                                                  max_side=5))))
    if isinstance(path, np.ndarray) and draw(st.booleans()):
        path = torch.from_numpy(path.copy())
    if isinstance(vis, np.ndarray) and draw(st.booleans()):
        vis = torch.from_numpy(vis.copy())
    data = {"track_path": path}
    if vis is not None or draw(st.booleans()):
        data["track_visibility"] = vis
    return data


@FUZZ
@given(data=tracks_inputs(), size=st.sampled_from([None, 64, 0, 2.5]),
       box=st.sampled_from([64, 0, -1, (10, 5), (1, 2, 3), "a", None, float("nan"), 1e308, [3.0]]))
def test_random_tracks(data, size, box):
    only_invalid_input(load, data, format="tracks", width=size, height=size, box_size=box)
    only_invalid_input(read_tracks, data, width=size, height=size, box_size=box)


# ---------------------------------------------------------------------------------------------------------- KJNodes
KJ_VALUES = st.one_of(st.none(), st.booleans(), NUMBERS, st.floats(allow_nan=True),
                      st.text(max_size=5), st.just([1]), st.just({}))
KJ_POINT = st.one_of(st.fixed_dictionaries({"x": KJ_VALUES, "y": KJ_VALUES}),
                     st.fixed_dictionaries({"x": st.floats(-100, 300), "y": st.floats(-100, 300)}), SCALARS)
KJ_GOOD_POINT = st.fixed_dictionaries({"x": st.floats(-100, 300), "y": st.floats(-100, 300)})
KJ_INPUTS = st.one_of(st.lists(KJ_POINT, max_size=5), st.lists(st.lists(KJ_POINT, max_size=4), max_size=3), GARBAGE,
                      st.lists(KJ_GOOD_POINT, min_size=1, max_size=5),
                      st.lists(st.lists(KJ_GOOD_POINT, min_size=2, max_size=2), min_size=1, max_size=3))


@FUZZ
@given(data=KJ_INPUTS, as_text=st.booleans(), size=st.sampled_from([None, 64, 0]),
       box=st.sampled_from([8, (4, 2), 0, "x"]))
def test_random_kj(data, as_text, size, box):
    payload = json.dumps(data) if as_text else data
    if as_text and not payload.lstrip().startswith(("{", "[")):
        payload += "\n"
    only_invalid_input(load, payload, format="kj", width=size, height=size, box_size=box)
    only_invalid_input(read_kj, data, width=size, height=size, box_size=box)
    only_invalid_input(parse_kj_points, json.dumps(data) if as_text else data)


# ---------------------------------------------------------------------------------------------------------- valid
@st.composite
def valid_tracklets(draw, max_objects=6, max_frames=30):
    width, height = draw(st.integers(1, 2000)), draw(st.integers(1, 2000))
    num_frames = draw(st.integers(1, max_frames))
    n = draw(st.integers(0, max_objects))
    ids = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n, unique=True))
    objects = []
    for oid in ids:
        frames = draw(st.lists(st.integers(0, num_frames - 1), min_size=1, max_size=min(num_frames, 6), unique=True))
        keyframes = []
        for f in frames:
            x1 = draw(st.floats(-width, 2 * width))
            y1 = draw(st.floats(-height, 2 * height))
            bw = draw(st.floats(0.01, 2 * width + 1))
            bh = draw(st.floats(0.01, 2 * height + 1))
            keyframes.append({"frame": f, "box": [x1, y1, x1 + bw, y1 + bh], "visible": draw(st.booleans())})
        objects.append({"id": oid, "label": draw(st.text(max_size=5)),
                        "interpolation": draw(st.sampled_from(INTERPOLATIONS)), "keyframes": keyframes})
    return parse_tracklets_dict({"format": FORMAT_NAME, "version": FORMAT_VERSION, "width": width,
                                 "height": height, "num_frames": num_frames, "objects": objects})


def _check_dense(t: Tracklets, num_frames=None):
    d = t.dense(num_frames)
    f = t.num_frames if num_frames is None else num_frames
    assert d.boxes.shape == (f, len(t.objects), 4) and d.visible.shape == (f, len(t.objects))
    assert d.ids == sorted(o.id for o in t.objects)
    b = d.boxes
    assert np.isfinite(b).all()
    assert (b[..., 0::2] >= 0).all() and (b[..., 0::2] <= t.width).all()
    assert (b[..., 1::2] >= 0).all() and (b[..., 1::2] <= t.height).all()
    v = d.visible
    assert (b[..., 2][v] > b[..., 0][v]).all() and (b[..., 3][v] > b[..., 1][v]).all()


@FUZZ
@given(t=valid_tracklets(), frames=st.integers(1, 40))
def test_dense_of_valid_tracklets(t, frames):
    _check_dense(t)
    _check_dense(t, frames)
    raw = t.dense(clamp=False)
    assert np.isfinite(raw.boxes).all()
    # clamping only hides, never reveals
    assert not (t.dense().visible & ~raw.visible).any()


@FUZZ
@given(t=valid_tracklets(max_objects=24, max_frames=12), frames=st.integers(1, 16), size=st.integers(1, 1024),
       slots=st.integers(1, 25), keep_largest=st.booleans())
def test_to_slots_of_valid_tracklets(t, frames, size, slots, keep_largest):
    n = len(t.objects)
    s = only_invalid_input(t.to_slots, frames, size, size, slots, keep_largest=keep_largest)
    if s is None:
        assert n > slots and not keep_largest
        return
    boxes, masks = s.boxes.numpy(), s.masks.numpy()
    assert boxes.shape == (frames, slots, 4) and masks.shape == (frames, slots)
    assert np.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= 1).all()
    assert set(np.unique(masks)) <= {0.0, 1.0}
    assert (boxes[masks == 0] == 0).all()
    on = masks == 1
    assert (boxes[..., 2][on] >= boxes[..., 0][on]).all() and (boxes[..., 3][on] >= boxes[..., 1][on]).all()
    kept = [i for i in s.ids if i is not None]
    assert len(kept) == min(n, slots) and kept == sorted(kept)
    assert s.ids[len(kept):] == [None] * (slots - len(kept))
    if n <= slots:
        assert kept == sorted(o.id for o in t.objects)
    assert (s.colors.numpy() >= 0).all() and (s.colors.numpy() <= 1).all()


@FUZZ
@given(t=valid_tracklets())
def test_keyframes_are_reproduced_under_every_mode(t):
    for o in t.objects:
        frames = np.array([k.frame for k in o.keyframes], dtype=np.float64)
        for mode in INTERPOLATIONS:
            boxes, vis = o.__class__(o.id, o.keyframes, interpolation=mode).evaluate(frames)
            assert vis.tolist() == [k.visible for k in o.keyframes]
            for i, k in enumerate(o.keyframes):
                assert tuple(boxes[i]) == k.box, (mode, i)  # bit-exact
            # and dense() agrees where the keyframe box lies inside the canvas
            d = t.dense(clamp=False)
            j = d.ids.index(o.id)
            for k in o.keyframes:
                if o.interpolation == mode:
                    assert tuple(d.boxes[k.frame, j]) == k.box


@FEW
@given(t=valid_tracklets(), sx=st.integers(1, 4), sy=st.integers(1, 4))
def test_resample_canvas_scales_dense(t, sx, sy):
    r = t.resample(width=t.width * sx, height=t.height * sy)
    a, b = t.dense(clamp=False), r.dense(clamp=False)
    np.testing.assert_array_equal(a.visible, b.visible)
    np.testing.assert_allclose(b.boxes, a.boxes * [sx, sy, sx, sy], rtol=1e-12, atol=1e-9)


@FEW
@given(t=valid_tracklets(), frames=st.integers(1, 40))
def test_resample_frames_gives_valid_tracklets(t, frames):
    r = t.resample(num_frames=frames)
    assert r.num_frames == frames
    back = load(r.to_json())  # resampled keyframes still validate
    assert back == r
    _check_dense(r)
    # keyframes on the first and the last frame stay there, with their boxes and visibility
    a, b = t.dense(clamp=False), r.dense(clamp=False)
    tol = 1e-9 * max(t.width, t.height)
    for j, o in enumerate(t.sorted_objects()):
        ends = [(0, 0)] + ([(t.num_frames - 1, frames - 1)] if t.num_frames > 1 and frames > 1 else [])
        for src, dst in ends:
            if any(k.frame == src for k in o.keyframes):
                assert a.visible[src, j] == b.visible[dst, j]
                np.testing.assert_allclose(a.boxes[src, j], b.boxes[dst, j], rtol=0, atol=tol)


# ---------------------------------------------------------------------------------------------------------- regressions
# Crashes and wrong results the fuzzers above found, pinned as plain examples.

@pytest.mark.parametrize("where", ["width", "fps", "id", "frame", "box"])
def test_huge_int_in_tracklets_json(where):
    # was: OverflowError from math.isfinite()/float() on ints beyond the float range
    d = copy.deepcopy(VALID_DOC)
    if where in ("width", "fps"):
        d[where] = 10**400
    elif where == "id":
        d["objects"][0]["id"] = 10**400
    elif where == "frame":
        d["objects"][0]["keyframes"][0]["frame"] = 10**400
    else:
        d["objects"][0]["keyframes"][0]["box"][2] = 10**400
    with pytest.raises(InvalidInputError):
        load(d)


@pytest.mark.parametrize("call", ["load", "from_json", "kj"])
def test_int_over_4300_digits_in_json_text(call):
    # was: plain ValueError from json.loads (int string conversion limit)
    text = '{"format": "trackdiffusion.tracklets", "version": 1, "width": ' + "1" * 5000 + "}"
    with pytest.raises(InvalidInputError):
        if call == "load":
            load(text)
        elif call == "from_json":
            Tracklets.from_json(text)
        else:
            parse_kj_points('[{"x": ' + "9" * 5000 + ', "y": 1}]')


@pytest.mark.parametrize("which", ["kj", "ytvis"])
def test_huge_int_in_importers(which):
    # was: OverflowError in formats/common.py finite_float
    with pytest.raises(InvalidInputError):
        if which == "kj":
            load([{"x": 10**400, "y": 1}], width=64, height=64)
        else:
            d = copy.deepcopy(VALID_YTVIS)
            d["annotations"][0]["bboxes"][0][2] = 10**400
            load(d, video=1)


@pytest.mark.parametrize("case", ["category id", "annotation category_id", "categories not a list"])
def test_ytvis_odd_categories(case):
    # was: TypeError (unhashable list id; iterating an int)
    d = copy.deepcopy(VALID_YTVIS)
    if case == "category id":
        d["categories"][0]["id"] = [1]
    elif case == "annotation category_id":
        d["annotations"][0]["category_id"] = [1]
    else:
        d["categories"] = 5
    try:
        t = load(d, video=1)
    except InvalidInputError:
        return
    assert t.objects[0].label == ""  # an unusable category names nothing


@pytest.mark.parametrize("which", ["mot", "ytvis", "json"])
def test_huge_frame_counts(which):
    # was: MemoryError from np.zeros((frames, 4)) / dense()
    with pytest.raises(InvalidInputError):
        if which == "mot":
            load("1e13,1,0,0,5,5\n", format="mot", width=64, height=64)
        elif which == "ytvis":
            d = copy.deepcopy(VALID_YTVIS)
            d["videos"][0]["length"] = 10**13
            load(d, video=1)
        else:
            load({**VALID_DOC, "num_frames": 10**13}).dense()


def test_long_single_line_text():
    # was: OSError(ENAMETOOLONG) from Path.is_file()
    with pytest.raises(InvalidInputError):
        load("a" * 300)
    with pytest.raises(InvalidInputError):
        load("a" * 300, format="mot", width=64, height=64)


@pytest.mark.parametrize("frames", [2.5, 0, "5", 10**13])
def test_mot_bad_num_frames(frames):
    # was: TypeError from np.zeros((2.5, 4)); num_frames goes unvalidated to read_mot
    with pytest.raises(InvalidInputError):
        load("1,1,0,0,5,5\n2,1,0,0,5,5\n", format="mot", width=64, height=64, num_frames=frames)


def test_one_line_mot_text():
    # was: taken for a path -> "file not found"
    t = load("1,1,0,0,5,5", format="mot", width=64, height=64)
    assert t.num_frames == 1
    np.testing.assert_array_equal(t.dense().boxes[0, 0], [0, 0, 5, 5])


def test_finite_huge_boxes_never_give_nan():
    # was: NaN in dense() from (b - a) overflowing to inf, times u = 0
    try:
        t = load({**VALID_DOC, "objects": [{"id": 1, "keyframes": [
            {"frame": 0, "box": [-1e308, 0, 1e308, 10]}, {"frame": 4, "box": [1e308, 0, 1.7e308, 10]}]}]})
    except InvalidInputError:
        return
    assert np.isfinite(t.dense().boxes).all() and np.isfinite(t.dense(clamp=False).boxes).all()


@pytest.mark.parametrize("mode", INTERPOLATIONS)
def test_keyframes_bit_exact(mode):
    # was: 17.9 -> 17.899999999999977 at the last keyframe (a + (b - a) * 1); catmull-rom 0.1 -> 0.09999999999999998
    keys = [(0, (0.1, 0.3, 0.7, 1.1)), (2, (1e-3, 0.2, 1e3, 3.3)), (4, (0.3, 0.1, 17.9, 10.7))]
    o = parse_tracklets_dict({**VALID_DOC, "objects": [{"id": 1, "interpolation": mode, "keyframes": [
        {"frame": f, "box": list(b)} for f, b in keys]}]}).objects[0]
    boxes, _ = o.evaluate(np.array([0.0, 2.0, 4.0]))
    assert [tuple(b) for b in boxes] == [b for _, b in keys]


def test_resample_to_one_frame_keeps_late_objects_hidden():
    # was: a single keyframe at frame k > 0 moved to frame 0 by resample(num_frames=1)
    t = parse_tracklets_dict({**VALID_DOC, "objects": [{"id": 1, "keyframes": [{"frame": 5, "box": [0, 0, 9, 9]}]}]})
    assert not t.dense(1).visible[0, 0]
    assert not t.resample(num_frames=1).dense().visible[0, 0]


@FUZZ
@given(t=valid_tracklets(), fmt=st.sampled_from(["ytvis", "cocovid"]))
def test_video_json_round_trips_keep_every_visible_box(t, fmt):
    """Our tracklets -> YouTube-VIS or COCO-VID -> our tracklets: canvas, frame count, ids, labels (an empty one
    becomes "object"), visibility and every visible box (unclamped) come back."""
    write, read = (write_ytvis, read_ytvis) if fmt == "ytvis" else (write_cocovid, read_cocovid)
    back = parse_tracklets_dict(read(json.loads(json.dumps(write(t)))))
    a, b = t.dense(clamp=False), back.dense(clamp=False)
    shown = [j for j in range(len(a.ids)) if a.visible[:, j].any()]  # an object never visible is not written
    assert (back.width, back.height, back.num_frames) == (t.width, t.height, t.num_frames)
    assert b.ids == [a.ids[j] for j in shown]
    assert b.labels == [a.labels[j] or "object" for j in shown]
    np.testing.assert_array_equal(b.visible, a.visible[:, shown])
    tol = 1e-9 * max(t.width, t.height) * 8
    assert np.all(np.abs(b.boxes - a.boxes[:, shown])[b.visible] <= tol)


@st.composite
def mot_files(draw):
    """MOT gt files as the MOT Challenge writes them: rows of distinct (frame, id), boxes with up to 2 decimals,
    then 3 columns (MOT16-20: consider flag, class, visibility) or 4 (MOT15: conf, world x, y, z), or none."""
    tail = draw(st.sampled_from([0, 3, 4]))
    keys = draw(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 40)), min_size=1, max_size=40, unique=True))
    rows = []
    decimal = st.integers(-5000, 90000).map(lambda v: v / 100)
    for frame, tid in keys:
        x, y = draw(decimal), draw(decimal)
        w, h = (draw(st.integers(1, 40000).map(lambda v: v / 100)) for _ in range(2))
        rest = [draw(st.sampled_from([0, 1])), draw(st.integers(1, 12)), draw(st.integers(0, 100000).map(
            lambda v: v / 100000))] if tail == 3 else [draw(st.sampled_from([-1, 1, 0.875]))] + [
            draw(st.sampled_from([-1, 12.5, -3.25])) for _ in range(3)] if tail == 4 else []
        rows.append([frame, tid, x, y, w, h, *rest])
    return rows


@FUZZ
@given(rows=mot_files())
def test_mot_round_trip_gives_every_row_and_column_back(rows):
    """MOT -> our JSON (text) -> MOT: the same set of rows, every column equal (the box, the consider flag, class,
    visibility; MOT15's conf and world coordinates), nothing added, nothing dropped."""
    from trackdiffusion.data.tracklets import dumps

    text = "".join(",".join(str(v) for v in row) + "\n" for row in rows)
    tracklets = load(load(text, format="mot", width=1920, height=1080).to_json())
    back = [[float(v) for v in line.split(",")] for line in dumps(tracklets, "mot").splitlines()]
    assert sorted(back) == sorted([float(v) for v in row] for row in rows)
