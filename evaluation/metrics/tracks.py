"""Box tracks, the tracker protocol, the weight-free colour-blob tracker of SynTrack, and user-supplied predictions.

A :class:`Track` is one object's boxes over the clip: [F, 4] xyxy pixels (the tracklet convention), NaN where the
object is absent, plus a category label and a confidence score.

Trackers follow the :class:`Tracker` protocol: ``tracker(video, index) -> list[Track]`` with ``video`` RGB uint8
[F, H, W, 3] and ``index`` the clip's position in the evaluated list. :class:`ColorBlobTracker` is the reference
detector/tracker of SynTrack; :class:`PrecomputedTracker` serves predictions made elsewhere (a real tracker such as
QDTrack run on generated videos), read through our importers: MOT text, YouTube-VIS dataset JSON, our tracklets JSON,
or a YouTube-VIS *results* list (which carries scores).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ...data.errors import InvalidInputError
from ...data.tracklets import Tracklets, load


@dataclass
class Track:
    boxes: np.ndarray  # [F, 4] float64 xyxy, NaN rows where absent
    label: str = ""
    score: float = 1.0
    track_id: int = 0

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64)
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise InvalidInputError(f"track boxes must be [frames, 4], got shape {list(self.boxes.shape)}.",
                                    source="tracks", obj=self.track_id)
        self.score = float(self.score)

    @property
    def present(self) -> np.ndarray:
        return ~np.isnan(self.boxes).any(axis=1)


@runtime_checkable
class Tracker(Protocol):
    """Anything with a ``name`` that maps (video [F, H, W, 3] uint8, clip index) to a list of :class:`Track`."""

    name: str

    def __call__(self, video: np.ndarray, index: int = 0) -> list[Track]: ...


def stack_boxes(tracks: Sequence[Track], num_frames: int) -> np.ndarray:
    """[N, F, 4] boxes of ``tracks`` (NaN where absent), checking every track spans ``num_frames``."""
    out = np.full((len(tracks), num_frames, 4), np.nan)
    for i, t in enumerate(tracks):
        if t.boxes.shape[0] != num_frames:
            raise InvalidInputError(f"a track has {t.boxes.shape[0]} frames, the clip {num_frames}.",
                                    fix="give predictions for every frame of the video (NaN where absent).",
                                    source="tracks", obj=t.track_id)
        out[i] = t.boxes
    return out


def tracks_from_tracklets(tracklets: Tracklets, num_frames: int | None = None, width: int | None = None,
                          height: int | None = None, *, score: float = 1.0) -> list[Track]:
    """Tracks of every object, resampled to ``num_frames`` and rescaled to ``width`` x ``height`` when given.

    Boxes are clamped to the canvas and absent (NaN) where the object is hidden or wholly outside it.
    """
    if (num_frames, width, height) != (None, None, None):
        tracklets = tracklets.resample(num_frames=num_frames, width=width, height=height)
    dense = tracklets.dense(clamp=True)
    out = []
    for j, oid in enumerate(dense.ids):
        boxes = np.where(dense.visible[:, j, None], dense.boxes[:, j], np.nan)
        out.append(Track(boxes, dense.labels[j], score, oid))
    return out


# ------------------------------------------------------------------------------------------------ colour blobs
def classify_colors(video: np.ndarray, palette: np.ndarray, min_saturation: float = 0.45,
                    min_value: float = 60.0) -> np.ndarray:
    """Per-pixel palette index [F, H, W] uint8, 255 for background.

    A pixel is foreground when its saturation ``(max - min) / max`` exceeds ``min_saturation`` and ``max`` exceeds
    ``min_value``; it then takes the palette colour nearest in chromaticity (RGB divided by its maximum), which
    ignores brightness, so value-only textures keep their colour.
    """
    v = np.asarray(video)
    r, g, b = v[..., 0], v[..., 1], v[..., 2]  # channel-wise max/min: much faster than reducing a length-3 axis
    mx = np.maximum(np.maximum(r, g), b).astype(np.float32)
    mn = np.minimum(np.minimum(r, g), b).astype(np.float32)
    fg = (mx > min_value) & (mx - mn > min_saturation * mx)
    out = np.full(mx.shape, 255, dtype=np.uint8)
    if fg.any():
        chroma = v[fg].astype(np.float32) / mx[fg][:, None]
        pal = palette.astype(np.float32)
        pal = pal / pal.max(axis=1, keepdims=True)
        d = ((chroma[:, None, :] - pal[None, :, :]) ** 2).sum(axis=-1)
        out[fg] = d.argmin(axis=1).astype(np.uint8)
    return out


class ColorBlobTracker:
    """Weight-free detector + tracker for SynTrack: one track per palette colour, its largest blob per frame.

    Detection: pixels classified by :func:`classify_colors`, 8-connected components per colour
    (``cv2.connectedComponentsWithStats``) of at least ``min_area`` pixels; the box covers the component's pixels.
    Tracking: colour identity, i.e. one track per colour per clip, taking the largest component in each frame.
    Score: mean colour purity over the detected frames, purity = component pixels / foreground pixels in its box.
    """

    def __init__(self, palette=None, names=None, *, min_saturation: float = 0.45, min_value: float = 60.0,
                 min_area: int = 3) -> None:
        if palette is None:
            from ..synth.generator import CATEGORIES, PALETTE_RGB

            palette, names = PALETTE_RGB, CATEGORIES if names is None else names
        self.palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        self.names = list(names) if names is not None else [f"color{i}" for i in range(len(self.palette))]
        if len(self.names) != len(self.palette) or not 1 <= len(self.palette) < 255:
            raise InvalidInputError("give one name per palette colour (1 to 254 colours).", source="ColorBlobTracker")
        self.min_saturation, self.min_value, self.min_area = min_saturation, min_value, int(min_area)
        self.name = f"color-blob(sat>{min_saturation:g},max>{min_value:g},area>={self.min_area})"

    def __call__(self, video: np.ndarray, index: int = 0) -> list[Track]:
        video = np.asarray(video)
        classes = classify_colors(video, self.palette, self.min_saturation, self.min_value)
        fg = classes != 255
        integral = np.zeros((video.shape[0], video.shape[1] + 1, video.shape[2] + 1), dtype=np.int64)
        integral[:, 1:, 1:] = fg.cumsum(axis=1).cumsum(axis=2)
        counts = np.bincount(classes.ravel(), minlength=256)
        tracks = []
        n_frames, height, width = classes.shape
        # one connected-components pass per colour over all frames stacked with a blank row between frames
        tall = np.zeros((n_frames, height + 1, width), dtype=np.uint8)
        for c in np.flatnonzero(counts[: len(self.palette)] >= self.min_area):
            tall[:, :height] = classes == c
            _, _, stats, _ = cv2.connectedComponentsWithStats(tall.reshape(-1, width), connectivity=8)
            stats = stats[1:]
            stats = stats[stats[:, cv2.CC_STAT_AREA] >= self.min_area]
            if len(stats) == 0:
                continue
            frame = stats[:, cv2.CC_STAT_TOP] // (height + 1)
            # largest component per frame (ties: the first in OpenCV's raster order)
            order = np.lexsort((-stats[:, cv2.CC_STAT_AREA], frame))
            first = np.ones(len(order), dtype=bool)
            first[1:] = frame[order][1:] != frame[order][:-1]
            best = stats[order[first]]
            frames = frame[order[first]]
            boxes = np.full((n_frames, 4), np.nan)
            x, w, h = best[:, cv2.CC_STAT_LEFT], best[:, cv2.CC_STAT_WIDTH], best[:, cv2.CC_STAT_HEIGHT]
            y = best[:, cv2.CC_STAT_TOP] - frames * (height + 1)
            boxes[frames] = np.stack([x, y, x + w, y + h], axis=1)
            total = (integral[frames, y + h, x + w] - integral[frames, y, x + w] - integral[frames, y + h, x]
                     + integral[frames, y, x])
            purity = best[:, cv2.CC_STAT_AREA] / np.maximum(total, 1)
            tracks.append(Track(boxes, self.names[c], float(purity.mean()), int(c)))
        return tracks


class GroundTruthTracker:
    """Returns the ground-truth tracks themselves (score 1): the metric code's own ceiling, AP = 1 exactly."""

    name = "ground-truth"

    def __init__(self, gt_tracklets: Sequence[Tracklets]) -> None:
        self.gt = list(gt_tracklets)

    def __call__(self, video: np.ndarray, index: int = 0) -> list[Track]:
        f, h, w = np.asarray(video).shape[:3]
        return tracks_from_tracklets(self.gt[index], f, w, h)


# ------------------------------------------------------------------------------------------- user predictions
def tracks_from_ytvis_results(results: list, video_id, num_frames: int, categories: dict | None = None
                              ) -> list[Track]:
    """Tracks of one video from a YouTube-VIS *results* list ``[{"video_id", "category_id", "score", "bboxes"}]``.

    ``bboxes`` are per-frame ``[left, top, width, height]`` or null; ``categories`` maps category ids to names
    (default: the id as text).
    """
    tracks = []
    for i, r in enumerate(results):
        if not isinstance(r, dict) or r.get("video_id") != video_id:
            continue
        bboxes = r.get("bboxes")
        if not isinstance(bboxes, list) or len(bboxes) > num_frames:
            raise InvalidInputError(f"result #{i} needs a \"bboxes\" list of at most {num_frames} entries.",
                                    source="YouTube-VIS results")
        boxes = np.full((num_frames, 4), np.nan)
        for f, b in enumerate(bboxes):
            if b is None:
                continue
            try:
                x, y, w, h = (float(v) for v in b)
            except (TypeError, ValueError):
                raise InvalidInputError(f"box must be [left, top, width, height] or null, got {b!r:.60}.",
                                        source="YouTube-VIS results", obj=i, frame=f) from None
            if w > 0 and h > 0 and np.isfinite([x, y, w, h]).all():
                boxes[f] = (x, y, x + w, y + h)
        cid = r.get("category_id")
        label = (categories or {}).get(cid, "" if cid is None else str(cid))
        score = r.get("score", 1.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
            raise InvalidInputError(f"score must be a finite number, got {score!r:.40}.", source="YouTube-VIS results",
                                    obj=i)
        tracks.append(Track(boxes, label, float(score), int(r.get("id", i)) if isinstance(r.get("id", i), int) else i))
    return tracks


def load_predictions(source, *, num_frames: int, width: int, height: int, video=None, format: str | None = None,
                     categories: dict | None = None) -> list[Track]:
    """One clip's predicted tracks from a file, text, dict/list, :class:`Tracklets` or a list of :class:`Track`.

    Everything our tracklet importers read works (MOT, YouTube-VIS dataset JSON, our JSON; their score is 1). A
    YouTube-VIS results list keeps its scores; pass ``video`` (its ``video_id``) when it holds several videos.
    """
    if isinstance(source, list) and all(isinstance(t, Track) for t in source):
        return source
    data = source
    if isinstance(source, (str, Path)) and Path(str(source)).suffix.lower() == ".json" and Path(source).is_file():
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read predictions ({exc}).", source=str(source)) from None
    if isinstance(data, list) and data and all(isinstance(r, dict) and "bboxes" in r for r in data):
        ids = {r.get("video_id") for r in data}
        if video is None and len(ids) > 1:
            raise InvalidInputError(f"results hold {len(ids)} videos; say which one.", fix="pass video=<video_id>.",
                                    source="YouTube-VIS results")
        vid = video if video is not None else next(iter(ids))
        return tracks_from_ytvis_results(data, vid, num_frames, categories)
    tracklets = load(source if data is source else data, format, width=width, height=height, video=video)
    return tracks_from_tracklets(tracklets, num_frames, width, height)


class PrecomputedTracker:
    """Predictions made elsewhere, one entry per clip (anything :func:`load_predictions` reads)."""

    def __init__(self, predictions: Sequence, name: str = "precomputed", *, format: str | None = None,
                 categories: dict | None = None) -> None:
        self.predictions = list(predictions)
        self.name = name
        self.format = format
        self.categories = categories

    def __call__(self, video: np.ndarray, index: int = 0) -> list[Track]:
        if not 0 <= index < len(self.predictions):
            raise InvalidInputError(f"no predictions for clip {index} ({len(self.predictions)} given).",
                                    source=self.name)
        f, h, w = np.asarray(video).shape[:3]
        return load_predictions(self.predictions[index], num_frames=f, width=w, height=h, format=self.format,
                                categories=self.categories)
