"""SynTrack clips: coloured shapes on known tracklets, defined entirely by a seed.

Coordinates are continuous canvas pixels, the convention of our tracklet JSON: pixel column ``i`` covers
``[i, i + 1)`` and its centre is ``i + 0.5``. A shape covers the pixels whose centres fall inside it (no
anti-aliasing), so a detector's box of the covered pixels differs from the analytic box by at most half a pixel per
side; that quantisation is what caps AP75 at small resolutions.

A clip is sampled from one ``numpy.random.Generator`` into a :class:`ClipSpec` (every random choice, noise seed
included), then rendered by :func:`render_spec`; corruptions that need a re-render (identity swaps) edit the spec.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from ...data.errors import InvalidInputError
from ...data.progress import ProgressCallback, report
from ...data.tracklets.formats.common import keyframes_from_presence, tracklets_dict
from ...data.tracklets.model import Tracklets, parse_tracklets_dict
from ...data.trajectories import PointTrajectories

#: Category names (the tracklet labels) and their saturated render colours; the colour is also the identity cue.
CATEGORIES = ("red", "green", "blue", "yellow", "magenta", "cyan")
PALETTE_RGB = np.array(
    [[220, 30, 30], [30, 200, 40], [40, 70, 230], [230, 210, 20], [210, 40, 210], [20, 200, 210]], dtype=np.uint8
)
SHAPES = ("square", "disc", "triangle")
SCENARIOS = ("linear", "cross", "appear", "scale", "occlude")

#: Fixed held-out splits: first seed and clip count.
SPLITS = {"val": (10000, 256), "test": (20000, 512)}
POINTS_PER_OBJECT = 8
MAX_OBJECTS = 4  # model slots; clips hold 1-3 objects
SIZE_RANGE = (0.18, 0.32)  # object side as a fraction of the frame side
TEXTURE_DARK = 0.6  # value factor of the dark checker cells (hue and saturation unchanged)
TEXTURE_CELLS = 4  # checker cells per object side
NOISE_SIGMA = 3.0
FPS = 8.0


class Tier(NamedTuple):
    width: int
    height: int
    num_frames: int


TIERS = {"ci": Tier(32, 32, 8), "eval": Tier(64, 64, 16)}


def as_tier(tier) -> Tier:
    """``"ci"`` (32x32x8), ``"eval"`` (64x64x16) or a ``(width, height, num_frames)`` triple."""
    if isinstance(tier, str):
        if tier not in TIERS:
            raise InvalidInputError(f"unknown SynTrack tier {tier!r}.", fix=f"use one of {', '.join(TIERS)} or "
                                    "(width, height, frames).", source="SynTrack")
        return TIERS[tier]
    try:
        w, h, f = (int(v) for v in tier)
    except (TypeError, ValueError):
        raise InvalidInputError(f"tier must be a name or (width, height, frames), got {tier!r:.60}.",
                                source="SynTrack") from None
    if not (16 <= w <= 1024 and 16 <= h <= 1024 and 2 <= f <= 256):
        raise InvalidInputError(f"tier {w}x{h}x{f} is outside 16..1024 px and 2..256 frames.", source="SynTrack")
    return Tier(w, h, f)


def split_seeds(split: str, n: int | None = None) -> list[int]:
    """The seeds of a held-out split (``val``: 10000-10255, ``test``: 20000-20511), optionally the first ``n``."""
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}.", fix=f"use one of {', '.join(SPLITS)}; the train "
                                "stream is train_batch(step).", source="SynTrack")
    first, count = SPLITS[split]
    if n is not None:
        if not 1 <= n <= count:
            raise InvalidInputError(f"split {split} has {count} clips, asked for {n}.", source="SynTrack")
        count = n
    return list(range(first, first + count))


# ------------------------------------------------------------------------------------------------------------ spec
@dataclass
class ObjectSpec:
    category: int  # index into CATEGORIES
    shape: str
    boxes: np.ndarray  # [F, 4] float64 xyxy, amodal, inside the canvas
    present: np.ndarray  # [F] bool
    points_uv: np.ndarray  # [K, 2] positions inside the shape, as fractions of the box
    colors: np.ndarray  # [F] palette index used to paint each frame (== category unless corrupted)


@dataclass
class ClipSpec:
    """Every random choice of a clip; objects are listed back to front (later ones are drawn on top)."""

    scenario: str
    tier: Tier
    objects: list[ObjectSpec]
    background: float  # grey level
    gradient: float  # horizontal ramp amplitude, +- grey levels
    noise_seed: int
    texture: bool = False
    seed: int | None = None


@dataclass
class SynClip:
    """One rendered clip with its ground truth.

    Attributes:
        video: [F, H, W, 3] uint8 RGB.
        tracklets: ground truth in our JSON model; ids 1..N back to front, labels = colour category names.
        points: analytic point trajectories (K per object, rigid with the box); visibility False where the object is
            absent, the point is covered by a nearer object, or it lies outside the frame.
        visible_fraction: [F, N] share of each object's (amodal) pixels that are not covered; 0 when absent.
        boxes: [F, N, 4] amodal xyxy boxes, NaN where absent.
        spec: the sampled parameters (re-render with :func:`render_spec`).
    """

    seed: int | None
    scenario: str
    video: np.ndarray
    tracklets: Tracklets
    points: PointTrajectories
    visible_fraction: np.ndarray
    boxes: np.ndarray
    labels: list[str]
    spec: ClipSpec = field(repr=False)

    @property
    def tier(self) -> Tier:
        return self.spec.tier

    def digest(self) -> str:
        """sha256 of the video, the tracklets JSON and the point trajectories (the determinism check)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.video).tobytes())
        h.update(self.tracklets.to_json(indent=None).encode())
        h.update(np.ascontiguousarray(self.points.points).tobytes())
        h.update(np.ascontiguousarray(self.points.visibility).tobytes())
        return h.hexdigest()


# ------------------------------------------------------------------------------------------------------- geometry
def _boxes(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    half = np.asarray(sizes, dtype=np.float64).reshape(-1, 1) / 2.0
    return np.concatenate([centres - half, centres + half], axis=1)


def _inside(shape: str, boxes: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points (x, y) lie inside the shape drawn in ``boxes``; all arguments broadcast together.

    ``boxes`` is [..., 4] and gets broadcast as its four columns; the half-open convention ``x1 <= x < x2``
    makes adjacent shapes tile without double coverage.
    """
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    w, h = x2 - x1, y2 - y1
    if shape == "square":
        return (x >= x1) & (x < x2) & (y >= y1) & (y < y2)
    if shape == "disc":
        u = (x - (x1 + x2) / 2) / (w / 2)
        v = (y - (y1 + y2) / 2) / (h / 2)
        return u * u + v * v <= 1.0
    if shape == "triangle":  # apex at the top centre, base along the bottom edge
        depth = (y - y1) / h
        return (y >= y1) & (y < y2) & (np.abs(x - (x1 + x2) / 2) <= (w / 2) * depth)
    raise InvalidInputError(f"unknown shape {shape!r}.", source="SynTrack")


def _checker(boxes: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Value factor of the object-anchored checker texture (moves and scales with the box)."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    u = np.floor((x - x1) / (x2 - x1) * TEXTURE_CELLS)
    v = np.floor((y - y1) / (y2 - y1) * TEXTURE_CELLS)
    return np.where((u + v) % 2 == 0, 1.0, TEXTURE_DARK)


def _sample_uv(rng: np.random.Generator, shape: str, k: int) -> np.ndarray:
    """``k`` points uniformly inside the shape, in box fractions, kept 0.1 away from the box edges."""
    out = np.empty((0, 2))
    unit = np.array([0.0, 0.0, 1.0, 1.0])
    while len(out) < k:
        cand = rng.uniform(0.1, 0.9, size=(4 * k, 2))
        keep = _inside(shape, unit, cand[:, 0], cand[:, 1])
        # stay clear of the slanted / curved edges too: the point shrunk towards the centre must also be inside
        shrunk = 0.5 + (cand - 0.5) * 1.15
        keep &= _inside(shape, unit, shrunk[:, 0], shrunk[:, 1])
        out = np.concatenate([out, cand[keep]])
    return out[:k]


# -------------------------------------------------------------------------------------------------------- motion
def _fit_velocity(anchor: np.ndarray, velocity: np.ndarray, t_anchor: float, num_frames: int, lo: np.ndarray,
                  hi: np.ndarray) -> np.ndarray:
    """Shrink ``velocity`` so the path ``anchor + (t - t_anchor) * velocity`` stays within [lo, hi] on every frame."""
    scale = 1.0
    for t in (0.0, num_frames - 1.0):
        dt = t - t_anchor
        if dt == 0:
            continue
        end = anchor + dt * velocity
        for d in range(2):
            step = dt * velocity[d]
            if end[d] > hi[d] and step > 0:
                scale = min(scale, (hi[d] - anchor[d]) / step)
            elif end[d] < lo[d] and step < 0:
                scale = min(scale, (lo[d] - anchor[d]) / step)
    return velocity * max(scale, 0.0)


def _path(anchor, velocity, t_anchor, num_frames) -> np.ndarray:
    t = np.arange(num_frames, dtype=np.float64)[:, None]
    return anchor[None, :] + (t - t_anchor) * velocity[None, :]


def _linear(rng, tier: Tier, size: float) -> np.ndarray:
    """Centres [F, 2] of a straight constant-speed path that keeps a ``size`` box inside the canvas."""
    side = min(tier.width, tier.height)
    lo = np.array([size / 2, size / 2])
    hi = np.array([tier.width - size / 2, tier.height - size / 2])
    start = rng.uniform(lo, hi)
    angle = rng.uniform(0, 2 * np.pi)
    length = rng.uniform(0.15, 0.5) * side
    velocity = np.array([np.cos(angle), np.sin(angle)]) * length / (tier.num_frames - 1)
    velocity = _fit_velocity(start, velocity, 0.0, tier.num_frames, lo, hi)
    return _path(start, velocity, 0.0, tier.num_frames)


def _size(rng, tier: Tier) -> float:
    return float(rng.uniform(*SIZE_RANGE) * min(tier.width, tier.height))


def _through(rng, tier: Tier, size: float, anchor: np.ndarray, t_anchor: float, direction: np.ndarray,
             length: float) -> np.ndarray:
    """Centres of a straight path passing ``anchor`` at frame ``t_anchor``, travelling about ``length`` px."""
    lo = np.array([size / 2, size / 2])
    hi = np.array([tier.width - size / 2, tier.height - size / 2])
    anchor = np.clip(anchor, lo, hi)
    velocity = direction / np.linalg.norm(direction) * length / (tier.num_frames - 1)
    velocity = _fit_velocity(anchor, velocity, t_anchor, tier.num_frames, lo, hi)
    return _path(anchor, velocity, t_anchor, tier.num_frames)


def _scenario_objects(rng, scenario: str, tier: Tier) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(centres [F, 2], sizes [F], present [F]) per object, back to front."""
    f = tier.num_frames
    side = min(tier.width, tier.height)
    always = np.ones(f, dtype=bool)
    objs = []
    if scenario in ("linear", "appear"):
        for _ in range(int(rng.integers(1, 4))):
            s = _size(rng, tier)
            objs.append([_linear(rng, tier, s), np.full(f, s), always.copy()])
        if scenario == "appear":
            chosen = rng.random(len(objs)) < 0.5
            chosen[int(rng.integers(len(objs)))] = True
            for obj, pick in zip(objs, chosen):
                if not pick:
                    continue
                t_in = int(rng.integers(0, f // 3 + 1))
                t_out = int(rng.integers((2 * f + 2) // 3, f + 1))
                if t_in == 0 and t_out == f:
                    t_in = max(1, f // 4)
                obj[2] = (np.arange(f) >= t_in) & (np.arange(f) < t_out)
    elif scenario == "cross":
        if rng.random() < 0.4:  # a bystander behind the pair
            s = _size(rng, tier)
            objs.append([_linear(rng, tier, s), np.full(f, s), always.copy()])
        meet = rng.uniform(0.35, 0.65, size=2) * np.array([tier.width, tier.height])
        t_mid = (f - 1) / 2
        pair = []
        for sign in (1.0, -1.0):  # one travels right, the other left: they swap sides and meet at mid-clip
            s = _size(rng, tier)
            direction = np.array([sign, rng.uniform(-0.5, 0.5)])
            pair.append([_through(rng, tier, s, meet, t_mid, direction, rng.uniform(0.45, 0.75) * side),
                         np.full(f, s), always.copy()])
        if rng.random() < 0.5:
            pair.reverse()
        objs += pair
    elif scenario == "scale":
        for _ in range(int(rng.integers(1, 3))):
            gamma = rng.uniform(0.4, 1.0) * (1 if rng.random() < 0.5 else -1)  # total log-size change
            s0 = rng.uniform(0.14, 0.2) * side if gamma > 0 else rng.uniform(0.3, 0.5) * side
            sizes = s0 * np.exp(gamma * np.arange(f) / (f - 1))
            big = float(sizes.max())
            lo = np.array([big / 2, big / 2])
            hi = np.array([tier.width - big / 2, tier.height - big / 2])
            start = rng.uniform(lo, hi)
            angle = rng.uniform(0, 2 * np.pi)
            velocity = np.array([np.cos(angle), np.sin(angle)]) * rng.uniform(0.0, 0.25) * side / (f - 1)
            velocity = _fit_velocity(start, velocity, 0.0, f, lo, hi)
            objs.append([_path(start, velocity, 0.0, f), sizes, always.copy()])
    elif scenario == "occlude":
        if rng.random() < 0.3:
            s = _size(rng, tier)
            objs.append([_linear(rng, tier, s), np.full(f, s), always.copy()])
        s_back = _size(rng, tier)
        spot = rng.uniform(0.3, 0.7, size=2) * np.array([tier.width, tier.height])
        objs.append([np.repeat(spot[None], f, axis=0), np.full(f, s_back), always.copy()])
        s_front = max(_size(rng, tier), s_back)
        t_mid = rng.uniform(0.35, 0.65) * (f - 1)
        offset = rng.uniform(-0.2, 0.2, size=2) * s_back
        angle = rng.uniform(0, 2 * np.pi)
        objs.append([_through(rng, tier, s_front, spot + offset, t_mid, np.array([np.cos(angle), np.sin(angle)]),
                              rng.uniform(0.5, 0.8) * side), np.full(f, s_front), always.copy()])
    else:
        raise InvalidInputError(f"unknown scenario {scenario!r}.", fix=f"use one of {', '.join(SCENARIOS)}.",
                                source="SynTrack")
    return [tuple(o) for o in objs]


def sample_spec(rng: np.random.Generator, tier="eval", scenario: str | None = None, texture: bool = True,
                seed: int | None = None) -> ClipSpec:
    """Draw every parameter of one clip from ``rng`` (scenario uniform over :data:`SCENARIOS` when None)."""
    tier = as_tier(tier)
    if scenario is None:
        scenario = SCENARIOS[int(rng.integers(len(SCENARIOS)))]
    raw = _scenario_objects(rng, scenario, tier)
    categories = rng.choice(len(CATEGORIES), size=len(raw), replace=False)
    objects = []
    for (centres, sizes, present), cat in zip(raw, categories):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        boxes = _boxes(centres, sizes)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, tier.width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, tier.height)
        objects.append(ObjectSpec(int(cat), shape, boxes, present, _sample_uv(rng, shape, POINTS_PER_OBJECT),
                                  np.full(tier.num_frames, int(cat))))
    return ClipSpec(scenario=scenario, tier=tier, objects=objects, background=float(rng.uniform(90, 130)),
                    gradient=float(rng.uniform(-15, 15)), noise_seed=int(rng.integers(2**63)), texture=bool(texture),
                    seed=seed)


# ------------------------------------------------------------------------------------------------------ rendering
def render_spec(spec: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """Video [F, H, W, 3] uint8 and visible fraction [F, N] of a spec."""
    w, h, f = spec.tier
    xs = np.arange(w, dtype=np.float64) + 0.5
    ys = np.arange(h, dtype=np.float64) + 0.5
    ramp = spec.background + spec.gradient * (2.0 * xs / w - 1.0)
    frame = np.empty((f, h, w, 3), dtype=np.float64)
    frame[...] = ramp[None, None, :, None]
    top = np.full((f, h, w), -1, dtype=np.int16)
    amodal = np.zeros((f, len(spec.objects)))
    gx, gy = xs[None, None, :], ys[None, :, None]
    for j, obj in enumerate(spec.objects):
        b = obj.boxes[:, None, None, :]  # [F, 1, 1, 4]
        mask = _inside(obj.shape, b, gx, gy) & obj.present[:, None, None]
        amodal[:, j] = mask.sum(axis=(1, 2))
        fi, yi, xi = np.nonzero(mask)
        paint = PALETTE_RGB[obj.colors[fi]].astype(np.float64)  # [n, 3]
        if spec.texture:
            paint *= _checker(obj.boxes[fi], xs[xi], ys[yi])[:, None]
        frame[fi, yi, xi] = paint
        top[fi, yi, xi] = j
    noise = np.random.default_rng(spec.noise_seed).normal(0.0, NOISE_SIGMA, size=frame.shape)
    video = np.clip(np.rint(frame + noise), 0, 255).astype(np.uint8)
    shown = np.stack([(top == j).sum(axis=(1, 2)) for j in range(len(spec.objects))], axis=1) if spec.objects else \
        np.zeros((f, 0))
    visible_fraction = np.divide(shown, amodal, out=np.zeros_like(amodal), where=amodal > 0)
    return video, visible_fraction


def spec_masks(spec: ClipSpec) -> np.ndarray:
    """Each object's amodal shape mask per frame: [F, N, H, W] bool, False where the object is absent.

    A pixel belongs to an object when its centre falls inside the object's shape (the rule :func:`render_spec`
    paints with), whether or not a nearer object covers it; objects are in spec order (back to front).
    """
    w, h, f = spec.tier
    gx = (np.arange(w, dtype=np.float64) + 0.5)[None, None, :]
    gy = (np.arange(h, dtype=np.float64) + 0.5)[None, :, None]
    out = np.zeros((f, len(spec.objects), h, w), dtype=bool)
    for j, obj in enumerate(spec.objects):
        out[:, j] = _inside(obj.shape, obj.boxes[:, None, None, :], gx, gy) & obj.present[:, None, None]
    return out


def spec_points(spec: ClipSpec) -> PointTrajectories:
    """Analytic point trajectories: each object's K points follow its box rigidly (translation and scale)."""
    w, h, f = spec.tier
    pts, vis, comp = [], [], []
    for j, obj in enumerate(spec.objects):
        x1, y1, x2, y2 = (obj.boxes[:, i][:, None] for i in range(4))
        px = x1 + obj.points_uv[None, :, 0] * (x2 - x1)  # [F, K]
        py = y1 + obj.points_uv[None, :, 1] * (y2 - y1)
        v = obj.present[:, None] & (px >= 0) & (px < w) & (py >= 0) & (py < h)
        for front in spec.objects[j + 1:]:
            covered = _inside(front.shape, front.boxes[:, None, :], px, py) & front.present[:, None]
            v &= ~covered
        pts.append(np.stack([px, py], axis=-1))
        vis.append(v)
        comp.append(np.full(px.shape[1], j))
    if not pts:
        return PointTrajectories(np.zeros((f, 0, 2)), np.zeros((f, 0), bool), np.zeros(0, np.int64), w, h)
    return PointTrajectories(np.concatenate(pts, axis=1), np.concatenate(vis, axis=1), np.concatenate(comp), w, h)


def _rgb_hex(index: int) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in PALETTE_RGB[index])


def _compress(keyframes: list[dict]) -> list[dict]:
    """Drop visible keyframes that lie on the straight line between their visible neighbours (exact paths stay)."""
    out = list(keyframes)
    i = 1
    while i < len(out) - 1:
        a, k, b = out[i - 1], out[i], out[i + 1]
        if a["visible"] and k["visible"] and b["visible"]:
            u = (k["frame"] - a["frame"]) / (b["frame"] - a["frame"])
            line = [pa + u * (pb - pa) for pa, pb in zip(a["box"], b["box"])]
            if max(abs(x - y) for x, y in zip(line, k["box"])) <= 1e-9:
                del out[i]
                continue
        i += 1
    return out


def spec_tracklets(spec: ClipSpec) -> Tracklets:
    """Ground-truth tracklets in our JSON model (ids 1..N back to front, labels = category names)."""
    w, h, f = spec.tier
    objects = []
    for j, obj in enumerate(spec.objects):
        kfs = _compress(keyframes_from_presence(obj.boxes, obj.present))
        objects.append({"id": j + 1, "label": CATEGORIES[obj.category], "color": _rgb_hex(obj.category),
                        "interpolation": "linear", "keyframes": kfs})
    return parse_tracklets_dict(tracklets_dict(w, h, f, FPS, objects), strict=True, source="SynTrack")


def clip_from_spec(spec: ClipSpec) -> SynClip:
    video, visible_fraction = render_spec(spec)
    f = spec.tier.num_frames
    boxes = np.full((f, len(spec.objects), 4), np.nan)
    for j, obj in enumerate(spec.objects):
        boxes[obj.present, j] = obj.boxes[obj.present]
    return SynClip(seed=spec.seed, scenario=spec.scenario, video=video, tracklets=spec_tracklets(spec),
                   points=spec_points(spec), visible_fraction=visible_fraction, boxes=boxes,
                   labels=[CATEGORIES[o.category] for o in spec.objects], spec=spec)


# ------------------------------------------------------------------------------------------------------ entry points
def make_clip(seed: int, tier="eval", *, scenario: str | None = None, texture: bool = True) -> SynClip:
    """The clip of ``seed``: drawn from ``numpy.random.default_rng(seed)``.

    The scenario defaults to ``SCENARIOS[seed % 5]``, so every run of consecutive seeds (the val and test splits) is
    balanced across scenarios. ``texture`` paints objects with a value-only checker (hue kept, so box metrics do
    not change); point trackers need it (flat shapes suffer the aperture problem).
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r:.40}.", source="SynTrack")
    if scenario is None:
        scenario = SCENARIOS[int(seed) % len(SCENARIOS)]
    rng = np.random.default_rng(int(seed))
    return clip_from_spec(sample_spec(rng, tier, scenario, texture, seed=int(seed)))


def make_split(split: str, tier="eval", n: int | None = None, *, texture: bool = True,
               progress: ProgressCallback | None = None) -> list[SynClip]:
    """The clips of a held-out split (``val`` or ``test``), optionally the first ``n``; ``progress(done, total)``
    counts the clips made (see :mod:`trackdiffusion.data.progress`)."""
    seeds = split_seeds(split, n)
    clips: list[SynClip] = []
    report(progress, 0, len(seeds))
    for seed in seeds:
        clips.append(make_clip(seed, tier, texture=texture))
        report(progress, len(clips), len(seeds))
    return clips


def train_batch(step: int, batch_size: int = 4, tier="ci", *, texture: bool = True,
                progress: ProgressCallback | None = None) -> list[SynClip]:
    """Training clips of one step: clip ``i`` is drawn from ``default_rng(step).spawn(batch_size)[i]``.

    The spawned streams differ from ``default_rng(seed)`` itself, so no training clip ever repeats a val/test clip,
    whatever the step number. Scenarios are drawn uniformly. ``progress(done, total)`` counts the clips made.
    """
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 0:
        raise InvalidInputError(f"step must be a non-negative integer, got {step!r:.40}.", source="SynTrack")
    if not 1 <= int(batch_size) <= 4096:
        raise InvalidInputError(f"batch_size must be 1..4096, got {batch_size!r}.", source="SynTrack")
    streams = np.random.default_rng(int(step)).spawn(int(batch_size))
    clips: list[SynClip] = []
    report(progress, 0, len(streams))
    for rng in streams:
        clips.append(clip_from_spec(sample_spec(rng, tier, None, texture)))
        report(progress, len(clips), len(streams))
    return clips


def with_colors(spec: ClipSpec, colors: list[np.ndarray]) -> ClipSpec:
    """A copy of ``spec`` whose objects are painted with the given per-frame palette indices."""
    objects = [replace(o, colors=np.asarray(c, dtype=np.int64)) for o, c in zip(spec.objects, colors)]
    return replace(spec, objects=objects)
