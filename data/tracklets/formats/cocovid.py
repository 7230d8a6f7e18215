"""COCO-VID JSON (what mmtracking's conversions and TAO use): ``videos``, ``images`` (one per frame, with
``video_id`` and ``frame_id``), ``annotations`` (one per box, with ``image_id``, ``instance_id`` and ``bbox`` =
``[left, top, width, height]`` in pixels), ``categories``. One file holds many videos; ``video`` picks one."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidInputError
from ..model import MAX_FRAMES
from .common import finite_float, keyframes_from_presence, require_canvas, tracklets_dict
from .ytvis import CATEGORY_FALLBACK, categories_of, choose_video


def is_cocovid(data: dict) -> bool:
    """COCO-VID rather than YouTube-VIS: per-frame ``images`` and per-box annotations."""
    return isinstance(data.get("images"), list) and any(
        isinstance(a, dict) and "image_id" in a for a in (data.get("annotations") or [])[:50])


def _is_key(value) -> bool:
    """An id an image can be referenced by (JSON numbers and strings; lists and objects cannot)."""
    return isinstance(value, (int, str, float)) and not isinstance(value, bool)


def _int(value, name: str, source: str, **where) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}.", source=source, **where)
    return value


def read_cocovid(data: dict, *, video=None, fps=None, source: str = "COCO-VID JSON") -> dict:
    """One video of a COCO-VID dict -> our JSON dict. Frames are the images' ``frame_id`` (from 0; when absent, the
    images' order by id); objects are ``instance_id`` (``track_id`` in some exports, else each box its own)."""
    videos, images, annotations = data.get("videos"), data.get("images"), data.get("annotations")
    if not isinstance(videos, list) or not videos or not isinstance(images, list) or not isinstance(annotations, list):
        raise InvalidInputError("needs non-empty \"videos\", an \"images\" and an \"annotations\" list.",
                                source=source)
    if not all(isinstance(v, dict) for v in videos) or not all(isinstance(i, dict) for i in images):
        raise InvalidInputError("every entry of \"videos\" and \"images\" must be an object.", source=source)
    chosen = choose_video(videos, video, source)
    own_images = sorted((i for i in images if i.get("video_id") == chosen.get("id") and _is_key(i.get("id"))),
                        key=lambda i: (i.get("frame_id", 0) if isinstance(i.get("frame_id"), int) else 0,
                                       str(i.get("id"))))
    if not own_images:
        raise InvalidInputError(f"video {chosen.get('id')!r} has no images.", source=source)
    if all("frame_id" in i for i in own_images):
        frame_of = {i.get("id"): _int(i["frame_id"], "frame_id", source) for i in own_images}
    else:
        frame_of = {i.get("id"): f for f, i in enumerate(own_images)}
    first = min(frame_of.values())
    frame_of = {k: v - first for k, v in frame_of.items()}  # some exports count frames from 1
    length = max(frame_of.values()) + 1
    if length > MAX_FRAMES:
        raise InvalidInputError(f"video {chosen.get('id')!r} has {length} frames; at most {MAX_FRAMES} are "
                                "supported.", source=source)
    width = chosen.get("width", own_images[0].get("width"))
    height = chosen.get("height", own_images[0].get("height"))
    width, height = require_canvas(width, height, f"video {chosen.get('id')!r}", source)
    categories = categories_of(data, source)

    tracks: dict[int, dict] = {}
    for n, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not _is_key(ann.get("image_id")) or ann["image_id"] not in frame_of:
            continue
        frame = frame_of[ann["image_id"]]
        raw_id = ann.get("instance_id", ann.get("track_id", ann.get("id", n)))
        oid = _int(raw_id, "instance_id", source, frame=frame)
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4:
            raise InvalidInputError(f"bbox must be [left, top, width, height], got {box!r}.", source=source,
                                    obj=oid, frame=frame)
        x, y, w, h = (finite_float(v, "box value", source, obj=oid, frame=frame) for v in box)
        track = tracks.setdefault(oid, {"boxes": np.zeros((length, 4)), "present": np.zeros(length, dtype=bool),
                                        "category": ann.get("category_id")})
        if track["present"][frame]:
            raise InvalidInputError("two boxes of one instance in one frame.", source=source, obj=oid, frame=frame)
        if w > 0 and h > 0:
            track["boxes"][frame], track["present"][frame] = (x, y, x + w, y + h), True
    objects = []
    for oid in sorted(tracks):
        track = tracks[oid]
        if track["present"].any():
            cid = track["category"]
            label = categories.get(cid, "") if isinstance(cid, (int, str)) else ""
            objects.append({"id": oid, "label": label,
                            "keyframes": keyframes_from_presence(track["boxes"], track["present"])})
    return tracklets_dict(width, height, length, 8.0 if fps is None else fps, objects)


def write_cocovid(tracklets, *, video_id: int = 1, video_name: str = "video", file_names=None) -> dict:
    """Our tracklets -> a one-video COCO-VID dict: an image per frame, an annotation per visible box (instance_id =
    the object's id; categories numbered by first appearance of each label)."""
    dense = tracklets.dense(clamp=False)
    n_frames = dense.boxes.shape[0]
    names = list(file_names) if file_names is not None else [f"{video_name}/{f:06d}.jpg" for f in range(n_frames)]
    images = [{"id": f + 1, "video_id": video_id, "frame_id": f, "file_name": names[f], "width": dense.width,
               "height": dense.height} for f in range(n_frames)]
    categories: dict[str, int] = {}
    annotations = []
    for f in range(n_frames):
        for j, oid in enumerate(dense.ids):
            if not dense.visible[f, j]:
                continue
            cid = categories.setdefault(dense.labels[j] or CATEGORY_FALLBACK, len(categories) + 1)
            x1, y1, x2, y2 = (float(v) for v in dense.boxes[f, j])
            annotations.append({"id": len(annotations) + 1, "image_id": f + 1, "video_id": video_id,
                                "instance_id": int(oid), "category_id": cid, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    return {"videos": [{"id": video_id, "name": video_name, "width": dense.width, "height": dense.height}],
            "images": images, "annotations": annotations,
            "categories": [{"id": cid, "name": name} for name, cid in categories.items()]}
