"""YouTube-VIS / COCO-VID style JSON: ``videos``, ``annotations`` (``bboxes`` per frame, null when absent),
``categories``. Boxes are ``[left, top, width, height]`` in pixels; one file holds many videos."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError
from ..model import MAX_FRAMES
from .common import finite_float, keyframes_from_presence, require_canvas, tracklets_dict


def _video_names(video: dict) -> set[str]:
    names = {str(video.get("id"))}
    if isinstance(video.get("name"), str):
        names.add(video["name"])
    files = video.get("file_names")
    if isinstance(files, list) and files and isinstance(files[0], str) and "/" in files[0]:
        names.add(files[0].rsplit("/", 1)[0])
    return names


def choose_video(videos: list[dict], video, source: str) -> dict:
    """The entry of ``videos`` that ``video`` names (id or name); the only one when ``video`` is None."""
    if video is None:
        if len(videos) > 1:
            listed = ", ".join(sorted(n for v in videos[:10] for n in _video_names(v)))
            raise InvalidInputError(f"holds {len(videos)} videos; say which one.",
                                    fix=f"pass video=<id or name> (CLI: --video), e.g. one of: {listed}.",
                                    source=source)
        return videos[0]
    matches = [v for v in videos if str(video) in _video_names(v)]
    if not matches:
        raise InvalidInputError(f"has no video {video!r}.", fix="check --video against the file's video ids "
                                "and names.", source=source)
    return matches[0]


def categories_of(data: dict, source: str) -> dict:
    """``categories`` -> {id: name} (only int/str ids can be referenced by an annotation)."""
    raw_categories = data.get("categories") or []
    if not isinstance(raw_categories, list):
        raise InvalidInputError("\"categories\" must be a list of {\"id\", \"name\"}.", source=source)
    return {cat["id"]: str(cat.get("name", cat["id"])) for cat in raw_categories
            if isinstance(cat, dict) and isinstance(cat.get("id"), (int, str))}


def read_ytvis(data: dict, *, video=None, fps=None, source: str = "YouTube-VIS JSON") -> dict:
    """One video of a YouTube-VIS dict -> our JSON dict. ``video`` picks it by id or name (needed when several)."""
    videos = data.get("videos")
    annotations = data.get("annotations")
    if not isinstance(videos, list) or not videos or not isinstance(annotations, list):
        raise InvalidInputError("needs a non-empty \"videos\" list and an \"annotations\" list.", source=source)
    if not all(isinstance(v, dict) for v in videos):
        raise InvalidInputError("every entry of \"videos\" must be an object.", source=source)
    chosen = choose_video(videos, video, source)
    width, height = chosen.get("width"), chosen.get("height")
    width, height = require_canvas(width, height, f"video {chosen.get('id')!r}", source)
    categories = categories_of(data, source)

    own = [a for a in annotations if isinstance(a, dict) and a.get("video_id") == chosen.get("id")]
    length = chosen.get("length")
    if isinstance(length, int) and not isinstance(length, bool) and length > MAX_FRAMES:
        raise InvalidInputError(f"video {chosen.get('id')!r} has length {length}; at most {MAX_FRAMES} frames are "
                                "supported.", source=source)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        lengths = [len(a["bboxes"]) for a in own if isinstance(a.get("bboxes"), list)]
        if not lengths:
            raise InvalidInputError(f"video {chosen.get('id')!r} has no length and no annotations.", source=source)
        length = max(lengths)
    objects = []
    for index, ann in enumerate(own):
        oid = ann.get("id", index)
        if isinstance(oid, bool) or not isinstance(oid, int) or oid < 0:
            raise InvalidInputError(f"annotation id {oid!r} must be a non-negative integer.", source=source)
        bboxes = ann.get("bboxes")
        if not isinstance(bboxes, list):
            raise InvalidInputError("annotation has no \"bboxes\" list.", source=source, obj=oid)
        if len(bboxes) > length:
            raise InvalidInputError(f"has {len(bboxes)} per-frame boxes but the video has {length} frames.",
                                    source=source, obj=oid, frame=length)
        boxes = np.zeros((length, 4))
        present = np.zeros(length, dtype=bool)
        for f, b in enumerate(bboxes):
            if b is None:
                continue
            if not isinstance(b, list) or len(b) != 4:
                raise InvalidInputError(f"box must be [left, top, width, height] or null, got {b!r}.",
                                        source=source, obj=oid, frame=f)
            x, y, w, h = (finite_float(v, "box value", source, obj=oid, frame=f) for v in b)
            if w <= 0 or h <= 0:
                # YouTube-VIS stores degenerate boxes for frames where the mask is empty: treat them as absent.
                continue
            boxes[f], present[f] = (x, y, x + w, y + h), True
        if present.any():
            cid = ann.get("category_id")
            label = categories.get(cid, "") if isinstance(cid, (int, str)) else ""
            objects.append({"id": oid, "label": label, "keyframes": keyframes_from_presence(boxes, present)})
    return tracklets_dict(width, height, length, 8.0 if fps is None else fps, objects)


CATEGORY_FALLBACK = "object"


def write_ytvis(tracklets, *, video_id: int = 1, video_name: str = "video", file_names=None) -> dict:
    """Our tracklets -> a one-video YouTube-VIS dict (categories numbered by first appearance of each label)."""
    dense = tracklets.dense(clamp=False)
    n_frames = dense.boxes.shape[0]
    names = list(file_names) if file_names is not None else [f"{video_name}/{f:05d}.jpg" for f in range(n_frames)]
    categories: dict[str, int] = {}
    annotations = []
    for j, oid in enumerate(dense.ids):
        label = dense.labels[j] or CATEGORY_FALLBACK
        cid = categories.setdefault(label, len(categories) + 1)
        bboxes, areas = [], []
        for f in range(n_frames):
            if dense.visible[f, j]:
                x1, y1, x2, y2 = (float(v) for v in dense.boxes[f, j])
                bboxes.append([x1, y1, x2 - x1, y2 - y1])
                areas.append((x2 - x1) * (y2 - y1))
            else:
                bboxes.append(None)
                areas.append(None)
        annotations.append({"id": oid, "video_id": video_id, "category_id": cid, "bboxes": bboxes, "areas": areas,
                            "iscrowd": 0})
    return {
        "videos": [{"id": video_id, "name": video_name, "width": dense.width, "height": dense.height,
                    "length": n_frames, "file_names": names}],
        "annotations": annotations,
        "categories": [{"id": cid, "name": name} for name, cid in categories.items()],
    }
