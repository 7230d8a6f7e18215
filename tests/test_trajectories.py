"""Tests of the TrackGo point-trajectory builder (trackdiffusion.data.trajectories)."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.trajectories import (
    DEFAULT_PALETTE,
    PointTrajectories,
    arc_length_offsets,
    build_point_trajectories,
    kmeans,
    parse_arrows,
    pixel_index,
    points_per_mask,
    render_point_video,
    sample_mask_points,
)

H, W = 48, 64


def rect_mask(y0, y1, x0, x1, h=H, w=W):
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def ring_mask(h=240, w=240, r=100):
    """1-pixel-wide circle: k-means centres of its arcs fall inside the circle, off the mask."""
    m = np.zeros((h, w), dtype=bool)
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    m[np.rint(h / 2 + r * np.sin(t)).astype(int), np.rint(w / 2 + r * np.cos(t)).astype(int)] = True
    return m


def assert_in_mask(points_xy, mask):
    ij = pixel_index(points_xy)
    h, w = mask.shape
    assert ((ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)).all()
    assert mask[ij[:, 1], ij[:, 0]].all()


# ------------------------------------------------------------------------------------------------- eq. 10 (K)
@pytest.mark.parametrize(
    ("ratio", "k"),
    [
        (0.0, 16),
        (0.05, 16),
        (0.0999, 16),
        (0.1, 16),
        (0.175, 28),
        (0.2, 32),
        (0.25, 40),
        (0.3, 48),
        (0.35, 56),
        (0.4, 64),
        (0.41, 64),
        (1.0, 64),
        (0.10625, 17),  # 16 + 48 * 0.00625 / 0.3 = 17.0
        (0.103125, 17),  # 16.5 exactly: halves round up, not to even
    ],
)
def test_points_per_mask_table(ratio, k):
    assert points_per_mask(ratio) == k
    assert isinstance(points_per_mask(ratio), int)


def test_points_per_mask_monotone():
    ks = [points_per_mask(p) for p in np.linspace(0, 1, 1001)]
    assert ks[0] == 16 and ks[-1] == 64
    assert all(a <= b for a, b in itertools.pairwise(ks))
    assert set(range(16, 65)) <= set(ks)  # every K in the linear range is reachable


@pytest.mark.parametrize("bad", [-0.01, 1.01, float("nan"), float("inf"), "0.2", None, True])
def test_points_per_mask_rejects(bad):
    with pytest.raises(InvalidInputError):
        points_per_mask(bad)


def test_k_follows_area_and_is_capped():
    frame = H * W
    # 0.25 of the frame -> 40 points; the whole frame -> 64; a tiny mask -> 16.
    quarter = rect_mask(0, H // 2, 0, W // 2)
    assert quarter.sum() / frame == 0.25
    assert sample_mask_points(quarter).shape == (40, 2)
    assert sample_mask_points(np.ones((H, W), bool)).shape == (64, 2)
    assert sample_mask_points(rect_mask(0, 10, 0, 10)).shape == (16, 2)
    # Fewer pixels than K: one point per pixel, exactly on the pixels.
    few = np.zeros((H, W), bool)
    few[[1, 5, 9, 20, 40], [2, 60, 30, 7, 0]] = True
    pts = sample_mask_points(few)
    assert pts.shape == (5, 2)
    assert {tuple(p) for p in pts.astype(int)} == {(2, 1), (60, 5), (30, 9), (7, 20), (0, 40)}


# ------------------------------------------------------------------------------------------------ sampling
def test_determinism_and_seed_dependence():
    masks = np.stack([rect_mask(5, 30, 5, 40), rect_mask(20, 45, 30, 60)])
    arrows = [[[0, 0], [10, 5]], [[3, 3], [3, 20], [10, 20]]]
    a = build_point_trajectories(masks, arrows, 9, seed=7)
    b = build_point_trajectories(masks, arrows, 9, seed=7)
    c = build_point_trajectories(masks, arrows, 9, seed=8)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.visibility, b.visibility)
    assert a.points.shape == c.points.shape
    assert not np.array_equal(a.points, c.points)
    # Each mask has its own stream: mask 0's points do not depend on what follows it.
    solo = build_point_trajectories(masks[:1], arrows[:1], 9, seed=7)
    np.testing.assert_array_equal(solo.points, a.points[:, a.component == 0])


@pytest.mark.parametrize(
    "mask",
    [
        rect_mask(3, 40, 2, 60),
        ring_mask(),
        # "C" shape: the centroid region of the opening is outside the mask.
        rect_mask(0, 48, 0, 64) & ~rect_mask(8, 40, 16, 64),
        # thin anti-diagonal line
        np.fliplr(np.eye(64, dtype=bool)[:48]),
    ],
    ids=["rect", "ring", "c-shape", "diagonal"],
)
def test_points_lie_in_mask_at_frame_0(mask):
    traj = build_point_trajectories(mask, [[[0, 0], [5, 5]]], 4, seed=3)
    assert_in_mask(traj.points[0].astype(np.float64), mask)


def test_ring_needs_snapping():
    # Guard for the test above: raw k-means centres of a 1-px ring do leave the mask, so in-mask points prove the
    # snap works rather than k-means being lucky.
    mask = ring_mask()
    rows, cols = np.nonzero(mask)
    samples = np.stack([cols, rows], 1).astype(float)
    centres, labels = kmeans(samples, 16, np.random.default_rng(0))
    ij = pixel_index(centres)
    assert not mask[ij[:, 1], ij[:, 0]].all()
    assert labels.shape == (samples.shape[0],) and set(labels) == set(range(16))


def test_kmeans_recovers_clusters():
    rng = np.random.default_rng(0)
    true = np.array([[10.0, 10.0], [100.0, 10.0], [50.0, 90.0]])
    samples = np.concatenate([c + rng.normal(0, 1.0, (40, 2)) for c in true])
    centres, _ = kmeans(samples, 3, np.random.default_rng(1))
    order = np.argsort(centres[:, 0] + 0.01 * centres[:, 1])
    np.testing.assert_allclose(centres[order], true[[0, 2, 1]], atol=0.5)


# -------------------------------------------------------------------------------------------------- motion
def test_last_frame_displacement_and_frame_0():
    masks = np.stack([rect_mask(5, 30, 5, 40), rect_mask(20, 45, 30, 60)])
    arrows = [[[4, 4], [9, 1], [14.5, 7.25]], [[50, 40], [10, 40]]]
    traj = build_point_trajectories(masks, arrows, 14, seed=0)
    start = traj.points[0]
    for m, arrow in enumerate(arrows):
        sel = traj.component == m
        disp = np.subtract(arrow[-1], arrow[0])
        np.testing.assert_allclose(traj.points[-1, sel] - start[sel], np.broadcast_to(disp, (sel.sum(), 2)), atol=1e-4)
    # frame-0 points are the sampled points, untouched by the arrows
    np.testing.assert_allclose(start[traj.component == 0], sample_mask_points(masks[0], 0, 0), atol=1e-4)


def test_arc_length_split_on_l_shape():
    # Length 60 (30 right, then 30 down): 5 frames advance 15 px of path each, turning the corner at frame 2.
    arrow = [[100, 200], [130, 200], [130, 230]]
    off = arc_length_offsets(np.array(arrow, float), 5)
    np.testing.assert_allclose(off, [[0, 0], [15, 0], [30, 0], [30, 15], [30, 30]])
    traj = build_point_trajectories(rect_mask(10, 20, 10, 20), [arrow], 5)
    np.testing.assert_allclose(
        traj.points - traj.points[:1], np.broadcast_to(off[:, None], traj.points.shape), atol=1e-4
    )
    # Uneven segments: 3 frames on a 10 + 30 path put the middle frame 10 px into the second segment.
    np.testing.assert_allclose(arc_length_offsets(np.array([[0, 0], [10, 0], [10, -30]], float), 3)[1], [10, -10])


def test_degenerate_motion():
    assert not arc_length_offsets(np.array([[1.0, 2.0], [9.0, 9.0]]), 1).any()  # one frame: nothing moves
    assert not arc_length_offsets(np.array([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]]), 6).any()  # zero-length arrow
    # repeated vertex inside the path
    off = arc_length_offsets(np.array([[0.0, 0.0], [0.0, 0.0], [8.0, 0.0]]), 5)
    np.testing.assert_allclose(off[:, 0], [0, 2, 4, 6, 8])
    traj = build_point_trajectories(rect_mask(0, 5, 0, 5), [[[0, 0], [30, 0]]], 1)
    assert traj.num_frames == 1 and traj.visibility.all()


def test_visibility_off_screen():
    traj = build_point_trajectories(rect_mask(10, 30, 20, 40), [[[0, 0], [-60, 0]]], 7)
    x, y = traj.points[..., 0], traj.points[..., 1]
    assert traj.visibility[0].all()
    assert not traj.visibility[-1].any()  # shifted 60 px left from x < 40
    np.testing.assert_array_equal(traj.visibility, (x >= 0) & (x < W) & (y >= 0) & (y < H))
    assert (~traj.visibility).any() and traj.visibility.any()
    down = build_point_trajectories(rect_mask(10, 30, 20, 40), [[[0, 0], [0, 100]]], 3)
    assert not down.visibility[-1].any()


def test_whole_frame_mask_is_camera_motion():
    traj = build_point_trajectories(np.ones((H, W), np.float32), [[[0, 0], [12, -6]]], 4)
    assert traj.num_points == 64
    np.testing.assert_allclose(traj.points[-1] - traj.points[0], np.broadcast_to([12, -6], (64, 2)), atol=1e-4)


def test_torch_and_list_masks_match_numpy():
    masks = np.stack([rect_mask(5, 30, 5, 40), rect_mask(20, 45, 30, 60)])
    arrows = [[[0, 0], [1, 1]], [[0, 0], [2, 2]]]
    ref = build_point_trajectories(masks, arrows, 3, seed=2)
    as_float = torch.from_numpy(masks.astype(np.float32) * 0.9)  # ComfyUI MASK style, > 0.5 inside
    for variant in (as_float, as_float.half(), list(masks), [torch.from_numpy(m) for m in masks]):
        np.testing.assert_array_equal(build_point_trajectories(variant, arrows, 3, seed=2).points, ref.points)
    # a float mask at exactly 0.5 is outside
    half = np.full((H, W), 0.5, np.float32)
    half[0, 0] = 0.51
    assert build_point_trajectories(half, [[[0, 0], [1, 1]]], 2).num_points == 1


# ---------------------------------------------------------------------------------------------- exports
def test_to_tracks():
    traj = build_point_trajectories(rect_mask(5, 30, 5, 40), [[[0, 0], [-50, 0]]], 6)
    tracks = traj.to_tracks()
    assert set(tracks) == {"track_path", "track_visibility"}
    assert tracks["track_path"].dtype == torch.float32 and tracks["track_path"].shape == (6, traj.num_points, 2)
    assert tracks["track_visibility"].dtype == torch.bool and tracks["track_visibility"].shape == (6, traj.num_points)
    np.testing.assert_array_equal(tracks["track_path"].numpy(), traj.points)
    np.testing.assert_array_equal(tracks["track_visibility"].numpy(), traj.visibility)
    tracks["track_path"].add_(1)  # the export does not alias the trajectories
    assert not np.array_equal(tracks["track_path"].numpy(), traj.points)


def _single(x, y, comp=0, visible=True, w=32, h=24, frames=1):
    return PointTrajectories(
        points=np.tile(np.array([[[x, y]]], np.float32), (frames, 1, 1)),
        visibility=np.full((frames, 1), visible),
        component=np.array([comp]),
        width=w,
        height=h,
    )


@pytest.mark.parametrize(
    ("size", "rows", "cols"), [(4, (19, 23), (8, 12)), (3, (20, 23), (9, 12)), (1, (21, 22), (10, 11))]
)
def test_render_square(size, rows, cols):
    video = _single(10.2, 20.7, comp=2, h=32).render(point_size=size)
    assert video.shape == (1, 32, 32, 3) and video.dtype == np.uint8
    lit = video[0].any(-1)
    expected = np.zeros_like(lit)
    expected[rows[0] : rows[1], cols[0] : cols[1]] = True
    np.testing.assert_array_equal(lit, expected)
    assert (video[0][lit] == DEFAULT_PALETTE[2]).all()


def test_render_colours_visibility_and_clipping():
    masks = np.stack([rect_mask(0, 10, 0, 10), rect_mask(30, 40, 40, 50)])
    traj = build_point_trajectories(masks, [[[0, 0], [0, 0]], [[0, 0], [30, 0]]], 3)
    video = traj.render(point_size=2)
    assert video.shape == (3, H, W, 3)
    colours = {tuple(c) for c in video.reshape(-1, 3)}
    assert colours == {(0, 0, 0), tuple(DEFAULT_PALETTE[0]), tuple(DEFAULT_PALETTE[1])}
    # component 1 has moved off the right border at the last frame: only component-0 pixels remain
    assert not traj.visibility[-1, traj.component == 1].any()
    assert {tuple(c) for c in video[-1].reshape(-1, 3)} == {(0, 0, 0), tuple(DEFAULT_PALETTE[0])}
    # custom colours, cycled
    custom = traj.render(point_size=2, colors=[[1, 2, 3]])
    assert {tuple(c) for c in custom.reshape(-1, 3)} == {(0, 0, 0), (1, 2, 3)}
    # invisible points are not drawn; squares at the border are clipped, not wrapped
    assert not _single(10, 10, visible=False).render().any()
    corner = _single(0, 0).render(point_size=4)[0].any(-1)
    assert corner.sum() == 4 and corner[:2, :2].all()
    assert not corner[:, -2:].any() and not corner[-2:].any()


def test_render_overlap_higher_component_on_top():
    traj = PointTrajectories(
        points=np.array([[[5, 5], [5, 5]]], np.float32),
        visibility=np.ones((1, 2), bool),
        component=np.array([3, 1]),
        width=10,
        height=10,
    )
    assert tuple(traj.render()[0, 5, 5]) == tuple(DEFAULT_PALETTE[3])


def test_render_rejects_bad_arguments():
    t = _single(3, 3)
    for bad in (0, -1, 2.5, True, 10_000):
        with pytest.raises(InvalidInputError):
            t.render(point_size=bad)
    for bad in ([[300, 0, 0]], [[1, 2]], "red", [[float("nan"), 0, 0]], []):
        with pytest.raises(InvalidInputError):
            t.render(colors=bad)
    with pytest.raises(InvalidInputError):
        render_point_video(np.zeros((2, 3, 2)), np.ones((2, 4), bool), np.zeros(3, int), 8, 8)


# ------------------------------------------------------------------------------------------------- arrows
def test_parse_arrows_forms_agree():
    ref = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0], [7.0, 8.0], [9.5, -1.0]])]
    forms = [
        "[[[1, 2], [3, 4]], [[5, 6], [7, 8], [9.5, -1]]]",
        '[[{"x": 1, "y": 2}, {"x": 3, "y": 4}], [{"x": 5, "y": 6}, {"x": 7, "y": 8}, {"x": 9.5, "y": -1}]]',
        '{"arrows": [{"points": [[1, 2], [3, 4]]}, {"points": [[5, 6], [7, 8], [9.5, -1]]}]}',
        [np.array([[1, 2], [3, 4]]), torch.tensor([[5, 6], [7, 8], [9.5, -1]])],
        b"[[[1, 2], [3, 4]], [[5, 6], [7, 8], [9.5, -1]]]",
    ]
    for form in forms:
        got = parse_arrows(form, num_masks=2)
        assert len(got) == 2
        for g, r in zip(got, ref):
            assert g.dtype == np.float64
            np.testing.assert_array_equal(g, r)
    single = parse_arrows('[{"x": 0, "y": 0}, {"x": 10, "y": 5}]')  # one KJNodes spline
    assert len(single) == 1 and single[0].shape == (2, 2)


@pytest.mark.parametrize(
    ("arrows", "needle"),
    [
        ("[[[0, 0], [1, 1]]", "malformed JSON"),
        ("", "empty"),
        ("[[[0, 0]]]", "arrow 0 has 1 point"),
        ("[[[0, 0], [1, 1]], [[0, 0], [NaN, 1]]]", "arrow 1, point 1: x"),
        ('[[[0, 0], [1, "2"]]]', "arrow 0, point 1: y must be a number"),
        ("[[[0, 0], [1, 1e400]]]", "arrow 0, point 1: y"),
        ("[[[0, 0], [1, 2, 3]]]", "arrow 0, point 1 must be"),
        ('{"points": []}', '"arrows"'),
        ("42", "list of polylines"),
        ('[[{"x": 1}, {"x": 2, "y": 2}]]', 'arrow 0, point 0: object needs "x" and "y"'),
        ("[[[0, true], [1, 1]]]", "must be a number"),
        ("[[[0, 0], [2000000, 0]]]", "within"),
    ],
)
def test_parse_arrows_errors_name_the_arrow(arrows, needle):
    with pytest.raises(InvalidInputError) as info:
        parse_arrows(arrows)
    assert needle in str(info.value)
    assert "Fix:" in str(info.value)


def test_parse_arrows_count_mismatch():
    with pytest.raises(InvalidInputError, match=r"got 1 arrow\(s\) for 2 mask\(s\)"):
        parse_arrows("[[[0, 0], [1, 1]]]", num_masks=2)


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("masks", "arrows", "frames", "needle"),
    [
        (np.stack([rect_mask(0, 5, 0, 5), np.zeros((H, W), bool)]), [[[0, 0], [1, 1]]] * 2, 4, "mask 1 is empty"),
        (np.ones((2, 2, 4, 4), bool), [[[0, 0], [1, 1]]] * 2, 4, "[M, H, W] or [H, W]"),
        (np.ones(5, bool), [[[0, 0], [1, 1]]], 4, "[M, H, W] or [H, W]"),
        (np.ones((1, 0, 5), bool), [[[0, 0], [1, 1]]], 4, "zero size"),
        (np.ones((0, 5, 5), bool), [], 4, "zero size"),
        ([], [], 4, "no masks"),
        ([np.ones((4, 4)), np.ones((4, 5))], [[[0, 0], [1, 1]]] * 2, 4, "mask 1 has size"),
        (np.array([["a"]]), [[[0, 0], [1, 1]]], 4, "bool or numeric"),
        (np.ones((2, 4, 4)), [[[0, 0], [1, 1]]], 4, "got 1 arrow(s) for 2 mask(s)"),
        (np.ones((4, 4)), [[[0, 0], [1, 1]]], 0, "num_frames"),
        (np.ones((4, 4)), [[[0, 0], [1, 1]]], 2.5, "num_frames"),
        (np.ones((4, 4)), [[[0, 0], [1, 1]]], True, "num_frames"),
        (np.ones((4, 4)), [[[0, 0], [1, 1]]], "25", "num_frames"),
        (np.ones((4, 4)), "[[[0, 0], [1, 1]]", 4, "malformed JSON"),
        (np.ones((4, 4)), [[[0, 0], [float("inf"), 1]]], 4, "arrow 0, point 1"),
    ],
)
def test_build_rejects_bad_input(masks, arrows, frames, needle):
    with pytest.raises(InvalidInputError) as info:
        build_point_trajectories(masks, arrows, frames)
    assert needle in str(info.value)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_build_rejects_bad_seed(seed):
    with pytest.raises(InvalidInputError, match="seed"):
        build_point_trajectories(np.ones((4, 4)), [[[0, 0], [1, 1]]], 2, seed=seed)


# --------------------------------------------------------------------------------------------------- properties
_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)
)
_json_like = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["x", "y", "points", "arrows", "q"]), inner, max_size=3)
    ),
    max_leaves=24,
)
_point = st.one_of(
    st.lists(st.floats(-1e7, 1e7) | st.integers(-(10**7), 10**7), min_size=2, max_size=2),
    st.fixed_dictionaries({"x": st.floats(-1e3, 1e3), "y": st.floats(-1e3, 1e3)}),
)
_nearly_valid_arrows = st.lists(st.lists(_point, min_size=0, max_size=4), min_size=0, max_size=3)
_arrows_input = st.one_of(
    _json_like,
    _nearly_valid_arrows,
    _nearly_valid_arrows.map(json.dumps),
    _json_like.map(lambda o: json.dumps(o)),
    st.text(max_size=30),
    st.builds(lambda a: {"arrows": [{"points": p} for p in a]}, _nearly_valid_arrows),
)
# database=None: no example cache written into the checkout. Raise the example count for a soak run with
# TRACKDIFFUSION_HYPOTHESIS_EXAMPLES=5000.
_PROPS = settings(
    max_examples=int(os.environ.get("TRACKDIFFUSION_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_PROPS
@given(arrows=_arrows_input, num_masks=st.none() | st.integers(0, 3))
def test_parse_arrows_only_raises_invalid_input(arrows, num_masks):
    try:
        out = parse_arrows(arrows, num_masks=num_masks)
    except InvalidInputError:
        return
    assert num_masks is None or len(out) == num_masks
    for a in out:
        assert a.ndim == 2 and a.shape[0] >= 2 and a.shape[1] == 2 and np.isfinite(a).all()


_masks_input = st.one_of(
    hnp.arrays(
        dtype=st.sampled_from([np.bool_, np.uint8, np.int64, np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    ),
    st.lists(hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)), max_size=3),
    _json_like,
)


_frames_input = st.one_of(st.integers(-2, 12), st.floats(allow_nan=True), st.none(), st.booleans())
_seed_input = st.one_of(st.integers(-3, 2**70), st.none(), st.floats())


@st.composite
def _near_valid_case(draw):
    """Matching mask / arrow counts with random contents, so many draws get past validation into the builder."""
    m = draw(st.integers(1, 3))
    masks = draw(
        hnp.arrays(
            st.sampled_from([np.bool_, np.float32, np.uint8]),
            st.tuples(st.just(m), st.integers(1, 8), st.integers(1, 8)),
            elements=st.sampled_from([0, 1]) if draw(st.booleans()) else None,
        )
    )
    arrows = draw(st.lists(st.lists(_point, min_size=2, max_size=4), min_size=m, max_size=m))
    num_frames = draw(st.one_of(st.integers(1, 12), _frames_input))
    seed = draw(st.one_of(st.integers(0, 2**64 - 1), _seed_input))
    return masks, arrows, num_frames, seed


@_PROPS
@given(
    case=st.one_of(st.tuples(_masks_input, _arrows_input, _frames_input, _seed_input), _near_valid_case()),
)
def test_build_only_raises_invalid_input(case):
    masks, arrows, num_frames, seed = case
    try:
        traj = build_point_trajectories(masks, arrows, num_frames, seed=seed)
    except InvalidInputError:
        return
    assert traj.points.shape == (num_frames, traj.num_points, 2) and traj.points.dtype == np.float32
    assert np.isfinite(traj.points).all()
    traj.render(point_size=2)


@_PROPS
@given(
    mask=hnp.arrays(np.bool_, st.tuples(st.integers(1, 24), st.integers(1, 24))),
    arrow=st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=2, max_size=5),
    num_frames=st.integers(1, 12),
    seed=st.integers(0, 2**32),
)
def test_valid_inputs_invariants(mask, arrow, num_frames, seed):
    if not mask.any():
        with pytest.raises(InvalidInputError, match="mask 0 is empty"):
            build_point_trajectories(mask, [arrow], num_frames, seed=seed)
        return
    traj = build_point_trajectories(mask, [arrow], num_frames, seed=seed)
    h, w = mask.shape
    k = min(points_per_mask(mask.sum() / (h * w)), int(mask.sum()))
    assert traj.num_points == k and (traj.width, traj.height) == (w, h)
    assert_in_mask(traj.points[0].astype(np.float64), mask)
    disp = np.subtract(arrow[-1], arrow[0]) if num_frames > 1 else np.zeros(2)
    np.testing.assert_allclose(traj.points[-1] - traj.points[0], np.broadcast_to(disp, (k, 2)), atol=1e-3)
    assert traj.visibility[0].all()
    x, y = traj.points[..., 0], traj.points[..., 1]
    np.testing.assert_array_equal(traj.visibility, (x >= 0) & (x < w) & (y >= 0) & (y < h))


def test_point_trajectories_validates_fields():
    with pytest.raises(InvalidInputError, match="inconsistent shapes"):
        PointTrajectories(np.zeros((2, 3, 2)), np.ones((2, 4), bool), np.zeros(3, int), 8, 8)
    with pytest.raises(InvalidInputError):
        PointTrajectories(np.zeros((1, 1, 2)), np.ones((1, 1), bool), np.zeros(1, int), 0, 8)
    with pytest.raises(InvalidInputError):
        PointTrajectories([["a", "b"]], np.ones((1, 1), bool), np.zeros(1, int), 8, 8)
    # far off-frame points flagged visible are clipped away, not wrapped around by an integer overflow
    far = _single(1e30, -1e30).render()
    assert not far.any()
