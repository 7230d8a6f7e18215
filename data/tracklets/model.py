"""The tracklet data model and its versioned JSON format.

A *tracklet* is one object's boxes over time. Users give keyframes; every other frame is interpolated. The JSON
written by the Tracklet Editor and read by every node is::

    {
      "format": "trackdiffusion.tracklets", "version": 1,
      "width": 1024, "height": 576, "num_frames": 14, "fps": 7,
      "objects": [
        {"id": 1, "label": "car", "color": "#e6194b", "interpolation": "linear",
         "keyframes": [{"frame": 0, "box": [x1, y1, x2, y2], "visible": true}, ...]}
      ]
    }

Boxes are in canvas pixels, frames are 0-based. Object ids are non-negative integers; the model slot order is the ids
sorted ascending (the official TrackDiffusion convention).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InvalidInputError
from .interpolation import INTERPOLATIONS, interpolate_boxes

FORMAT_NAME = "trackdiffusion.tracklets"
FORMAT_VERSION = 1

# Bounds that keep every later computation finite and every allocation small; far beyond any real video.
MAX_FRAMES = 100_000
MAX_CANVAS = 65_536
MAX_COORD = 1e7  # pixels, either side of the canvas
MAX_ID = 2**53 - 1  # exact in a float, so ids survive JSON readers of other languages

# A qualitative palette (distinct on both dark and light backgrounds); object i without a colour gets entry i % 20.
PALETTE = (
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe",
    "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#808080",
)  # fmt: skip


def default_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def color_to_rgb(color: str) -> tuple[float, float, float]:
    """'#rrggbb' -> (r, g, b) in [0, 1]."""
    return tuple(int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


@dataclass(frozen=True)
class Keyframe:
    frame: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in canvas pixels
    visible: bool = True
    #: the MOT columns after the box, as read from a MOT file (gt: consider flag, class, visibility; MOT15: conf and
    #: world x, y, z), written back by the MOT writer; carried through JSON, the editor and resampling
    mot: tuple[float, ...] | None = None


@dataclass(frozen=True)
class TrackletObject:
    id: int
    keyframes: tuple[Keyframe, ...]
    label: str = ""
    color: str = PALETTE[0]
    interpolation: str = "linear"

    def evaluate(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes [T, 4] (xyxy pixels, unclamped) and visibility [T] at the given frame times."""
        frames = np.array([k.frame for k in self.keyframes], dtype=np.float64)
        boxes = np.array([k.box for k in self.keyframes], dtype=np.float64)
        visible = np.array([k.visible for k in self.keyframes], dtype=bool)
        return interpolate_boxes(frames, boxes, visible, self.interpolation, times)


@dataclass
class DenseTracklets:
    """Per-frame boxes of every object, in id order.

    Attributes:
        ids: [N] object ids, ascending.
        labels: [N] category text.
        colors: [N] '#rrggbb'.
        boxes: [F, N, 4] float64 xyxy canvas pixels.
        visible: [F, N] bool; False before an object appears, in its hidden spans, and (when clamped) where its box
            lies wholly outside the canvas.
    """

    ids: list[int]
    labels: list[str]
    colors: list[str]
    boxes: np.ndarray
    visible: np.ndarray
    width: int
    height: int
    fps: float


@dataclass
class Tracklets:
    """Boxes per object per frame, as keyframes. See the module docstring for the JSON format."""

    width: int
    height: int
    num_frames: int
    objects: list[TrackletObject]
    fps: float = 8.0
    # Non-fatal findings of the last validation (boxes reaching outside the canvas, which get clamped).
    warnings: list[str] = field(default_factory=list, compare=False)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "width": self.width,
            "height": self.height,
            "num_frames": self.num_frames,
            "fps": self.fps,
            "objects": [
                {
                    "id": o.id,
                    "label": o.label,
                    "color": o.color,
                    "interpolation": o.interpolation,
                    "keyframes": [_keyframe_dict(k) for k in o.keyframes],
                }
                for o in self.objects
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: object, *, strict: bool = False, source: str = "tracklets JSON") -> Tracklets:
        return parse_tracklets_dict(data, strict=strict, source=source)

    @classmethod
    def from_json(cls, text: str, *, strict: bool = False, source: str = "tracklets JSON") -> Tracklets:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: also ints over 4300 digits
            raise InvalidInputError(
                f"not valid JSON ({exc}).", fix="check the file is the tracklets JSON the editor saves.", source=source
            ) from None
        return parse_tracklets_dict(data, strict=strict, source=source)

    # ------------------------------------------------------------------ views
    def sorted_objects(self) -> list[TrackletObject]:
        return sorted(self.objects, key=lambda o: o.id)

    def dense(self, num_frames: int | None = None, *, clamp: bool = True) -> DenseTracklets:
        """Expand keyframes to one box per frame for every object (ids ascending).

        Args:
            num_frames: evaluate at this many frames spread over the same duration (default: ``self.num_frames``).
                Resampling evaluates the interpolation at fractional source times, so no keyframe is rounded.
            clamp: clamp boxes to the canvas and hide frames whose box lies wholly outside it.
        """
        f_out = self.num_frames if num_frames is None else _positive_int(num_frames, "num_frames", "dense()")
        times = _resample_times(self.num_frames, f_out)
        objs = self.sorted_objects()
        boxes = np.zeros((f_out, len(objs), 4), dtype=np.float64)
        visible = np.zeros((f_out, len(objs)), dtype=bool)
        for j, obj in enumerate(objs):
            boxes[:, j], visible[:, j] = obj.evaluate(times)
        if clamp:
            boxes, visible = clamp_boxes(boxes, visible, self.width, self.height)
        return DenseTracklets(
            ids=[o.id for o in objs],
            labels=[o.label for o in objs],
            colors=[o.color for o in objs],
            boxes=boxes,
            visible=visible,
            width=self.width,
            height=self.height,
            fps=self.fps,
        )

    def resample(
        self, num_frames: int | None = None, width: int | None = None, height: int | None = None
    ) -> Tracklets:
        """The same motion on another frame count and/or canvas size.

        Keyframes keep their structure when their frames map to distinct new frames; an object whose keyframes would
        collide (down-sampling) is re-keyed at every new frame from its exact interpolated path.
        """
        f_new = self.num_frames if num_frames is None else _positive_int(num_frames, "num_frames", "resample()")
        w_new = self.width if width is None else _positive_int(width, "width", "resample()")
        h_new = self.height if height is None else _positive_int(height, "height", "resample()")
        sx, sy = w_new / self.width, h_new / self.height
        scale = np.array([sx, sy, sx, sy])
        time_scale = (f_new - 1) / (self.num_frames - 1) if self.num_frames > 1 else 0.0
        new_objects = []
        for obj in self.objects:
            mapped = [round(k.frame * time_scale) for k in obj.keyframes]
            if f_new > 1 and len(set(mapped)) == len(mapped):
                kfs = tuple(
                    Keyframe(f, tuple(float(v) for v in np.asarray(k.box) * scale), k.visible, k.mot)
                    for f, k in zip(mapped, obj.keyframes)
                )
                new_objects.append(replace(obj, keyframes=kfs))
            else:
                boxes, vis = obj.evaluate(_resample_times(self.num_frames, f_new))
                kfs = tuple(Keyframe(f, tuple(float(v) for v in boxes[f] * scale), bool(vis[f])) for f in range(f_new))
                new_objects.append(replace(obj, keyframes=kfs, interpolation="linear"))
        # The clip keeps its duration, so the frame rate follows the frame count.
        fps = self.fps * time_scale if time_scale > 0 else self.fps
        return Tracklets(w_new, h_new, f_new, new_objects, fps=fps)

    def to_slots(
        self, num_frames: int, width: int, height: int, max_instances: int = 20, *, keep_largest: bool = False,
        overflow: str = "error",
    ):
        """What the models eat; see :func:`trackdiffusion.data.tracklets.slots.tracklets_to_slots`."""
        from .slots import tracklets_to_slots

        return tracklets_to_slots(self, num_frames, width, height, max_instances, keep_largest=keep_largest,
                                  overflow=overflow)


def _resample_times(f_src: int, f_out: int) -> np.ndarray:
    """Source frame times of ``f_out`` frames spread over the same duration as ``f_src`` frames."""
    if f_out == 1 or f_src == 1:
        return np.zeros(f_out) if f_src == 1 else np.zeros(1)
    return np.arange(f_out, dtype=np.float64) * ((f_src - 1) / (f_out - 1))


def clamp_boxes(boxes: np.ndarray, visible: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clamp xyxy boxes [..., 4] to the canvas; a box with no area left inside it becomes invisible."""
    out = boxes.copy()
    out[..., 0::2] = np.clip(out[..., 0::2], 0, width)
    out[..., 1::2] = np.clip(out[..., 1::2], 0, height)
    inside = (out[..., 2] > out[..., 0]) & (out[..., 3] > out[..., 1])
    return out, visible & inside


# ---------------------------------------------------------------------------------------------------------- parsing
def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def bounded_number(v: object, limit: float) -> float | None:
    """``v`` as a float when it is a real number with ``|v| <= limit``, else None (never raises, even for 10**400)."""
    if not _is_number(v):
        return None
    if isinstance(v, int):
        return float(v) if -limit <= v <= limit else None
    return v if math.isfinite(v) and -limit <= v <= limit else None


def bounded_int(v: object, name: str, source: str, low: int, high: int, **where) -> int:
    """An integer (a whole float is accepted) within [low, high], or a clear error."""
    f = bounded_number(v, max(-low, high))
    if f is None or not f.is_integer() or not low <= f <= high:
        raise InvalidInputError(f"{name} must be an integer from {low} to {high}, got {v!r:.60}.", source=source,
                                **where)
    return int(f)


def _positive_int(v: object, name: str, source: str, high: int = MAX_FRAMES) -> int:
    return bounded_int(v, name, source, 1, high)


def parse_tracklets_dict(data: object, *, strict: bool = False, source: str = "tracklets JSON") -> Tracklets:
    """Validate an untrusted dict in our JSON format and build :class:`Tracklets`.

    Structural problems always raise :class:`InvalidInputError`. Boxes reaching outside the canvas are recorded in
    ``Tracklets.warnings`` (and clamped when expanded), or raise when ``strict``.
    """
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"expected a JSON object at the top level, got {type(data).__name__}.",
            fix="save the tracklets with the Tracklet Editor or `trackdiffusion tracklets convert`.",
            source=source,
        )
    fmt = data.get("format", FORMAT_NAME)
    if fmt != FORMAT_NAME:
        raise InvalidInputError(f"unknown format {fmt!r}.", fix=f"expected \"format\": \"{FORMAT_NAME}\".",
                                source=source)
    version = data.get("version")
    if version is None:
        raise InvalidInputError("missing \"version\".", fix=f"add \"version\": {FORMAT_VERSION}.", source=source)
    if bounded_number(version, 1e9) != FORMAT_VERSION:
        raise InvalidInputError(
            f"unsupported version {version!r}; this pack reads version {FORMAT_VERSION}.",
            fix="update the trackdiffusion pack, or re-export the file from a matching version.",
            source=source,
        )
    width = _positive_int(data.get("width"), "width", source, MAX_CANVAS)
    height = _positive_int(data.get("height"), "height", source, MAX_CANVAS)
    num_frames = _positive_int(data.get("num_frames"), "num_frames", source)
    fps = data.get("fps", 8.0)
    fps = bounded_number(fps, 1000.0)
    if fps is None or fps <= 0:
        raise InvalidInputError(f"fps must be a number in (0, 1000], got {data.get('fps')!r:.60}.", fix="set fps, "
                                "e.g. 8.", source=source)
    raw_objects = data.get("objects")
    if not isinstance(raw_objects, list):
        raise InvalidInputError("\"objects\" must be a list.", fix="add \"objects\": [] with one entry per object.",
                                source=source)

    warnings: list[str] = []
    objects: list[TrackletObject] = []
    seen_ids: set[int] = set()
    for index, raw in enumerate(raw_objects):
        obj = _parse_object(raw, index, width, height, num_frames, strict, source, warnings)
        if obj.id in seen_ids:
            raise InvalidInputError(f"duplicate object id {obj.id}.", fix="give every object its own id.",
                                    source=source, obj=obj.id)
        seen_ids.add(obj.id)
        objects.append(obj)
    return Tracklets(width, height, num_frames, objects, fps=float(fps), warnings=warnings)


def _parse_object(raw, index, width, height, num_frames, strict, source, warnings) -> TrackletObject:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"object #{index} must be a JSON object, got {type(raw).__name__}.", source=source)
    oid = raw.get("id")
    f = bounded_number(oid, MAX_ID)
    if f is None or not f.is_integer() or f < 0:
        raise InvalidInputError(f"object #{index} has id {oid!r:.60}; ids must be integers from 0 to {MAX_ID}.",
                                fix="number the objects 0, 1, 2, ...", source=source)
    oid = int(f)
    label = raw.get("label", "")
    if not isinstance(label, str):
        raise InvalidInputError(f"label must be text, got {label!r}.", source=source, obj=oid)
    color = raw.get("color", default_color(index))
    if not (isinstance(color, str) and len(color) == 7 and color[0] == "#"
            and all(c in "0123456789abcdefABCDEF" for c in color[1:])):
        raise InvalidInputError(f"color must look like \"#rrggbb\", got {color!r}.", source=source, obj=oid)
    interp = raw.get("interpolation", "linear")
    if interp not in INTERPOLATIONS:
        raise InvalidInputError(f"unknown interpolation {interp!r}.", fix=f"use one of {', '.join(INTERPOLATIONS)}.",
                                source=source, obj=oid)
    raw_kfs = raw.get("keyframes")
    if not isinstance(raw_kfs, list) or not raw_kfs:
        raise InvalidInputError("has no keyframes.", fix="give every object at least one keyframe with a box.",
                                source=source, obj=oid)
    keyframes = []
    for raw_kf in raw_kfs:
        keyframes.append(_parse_keyframe(raw_kf, oid, width, height, num_frames, strict, source, warnings))
    keyframes.sort(key=lambda k: k.frame)
    for a, b in itertools.pairwise(keyframes):
        if a.frame == b.frame:
            raise InvalidInputError("has two keyframes on the same frame.", fix="keep one keyframe per frame.",
                                    source=source, obj=oid, frame=a.frame)
    return TrackletObject(id=oid, keyframes=tuple(keyframes), label=label, color=color.lower(), interpolation=interp)


def _parse_keyframe(raw, oid, width, height, num_frames, strict, source, warnings) -> Keyframe:
    if not isinstance(raw, dict):
        raise InvalidInputError(f"keyframe must be a JSON object, got {raw!r}.", source=source, obj=oid)
    frame = raw.get("frame")
    f = bounded_number(frame, MAX_FRAMES)
    if f is None or not f.is_integer():
        raise InvalidInputError(f"keyframe frame must be an integer, got {frame!r:.60}.", source=source, obj=oid)
    frame = int(f)
    if not 0 <= frame < num_frames:
        raise InvalidInputError(
            f"keyframe frame {frame} is outside 0..{num_frames - 1} (num_frames is {num_frames}).",
            fix="raise num_frames or move the keyframe.", source=source, obj=oid, frame=frame,
        )
    box = raw.get("box")
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise InvalidInputError(f"box must be [x1, y1, x2, y2] numbers, got {box!r}.", source=source, obj=oid,
                                frame=frame)
    coords = [bounded_number(v, MAX_COORD) for v in box]
    if any(c is None for c in coords):
        raise InvalidInputError(f"box {box!r:.120} has a coordinate that is not finite or beyond +-{MAX_COORD:g} px.",
                                source=source, obj=oid, frame=frame)
    x1, y1, x2, y2 = coords
    if x2 <= x1 or y2 <= y1:
        raise InvalidInputError(
            f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] has x2 <= x1 or y2 <= y1.",
            fix="boxes are [left, top, right, bottom] in pixels with right > left and bottom > top.",
            source=source, obj=oid, frame=frame,
        )
    visible = raw.get("visible", True)
    if not isinstance(visible, bool):
        raise InvalidInputError(f"visible must be true or false, got {visible!r}.", source=source, obj=oid,
                                frame=frame)
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        message = (f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] reaches outside the {width}x{height} canvas")
        if strict:
            raise InvalidInputError(message + ".", fix="move the box inside the canvas, or load without strict mode "
                                    "to clamp it.", source=source, obj=oid, frame=frame)
        warnings.append(f"object {oid}, frame {frame}: {message}; clamped to the canvas.")
    return Keyframe(frame, (x1, y1, x2, y2), visible, _parse_mot_columns(raw.get("mot"), source, oid, frame))


#: at most this many MOT columns after the box (MOT15 has 4, MOT16-20 3)
MAX_MOT_COLUMNS = 16


def _parse_mot_columns(raw, source, oid, frame) -> tuple[float, ...] | None:
    if raw is None:
        return None
    if not (isinstance(raw, (list, tuple)) and len(raw) <= MAX_MOT_COLUMNS and all(_is_number(v) for v in raw)):
        raise InvalidInputError(f"mot must be a list of up to {MAX_MOT_COLUMNS} numbers (the MOT columns after the "
                                f"box), got {raw!r:.80}.", source=source, obj=oid, frame=frame)
    values = [bounded_number(v, MAX_COORD) for v in raw]
    if any(v is None for v in values):
        raise InvalidInputError(f"mot {raw!r:.80} has a value that is not finite or beyond +-{MAX_COORD:g}.",
                                source=source, obj=oid, frame=frame)
    return tuple(float(v) for v in values)


def _keyframe_dict(k: Keyframe) -> dict:
    out = {"frame": k.frame, "box": list(k.box), "visible": k.visible}
    if k.mot is not None:
        out["mot"] = list(k.mot)
    return out
