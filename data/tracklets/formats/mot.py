"""MOT Challenge text files (gt.txt, tracker results): ``frame, id, left, top, width, height, conf, class, vis``
(MOT16-20; in gt files ``conf`` is the consider flag) or ``..., conf, x, y, z`` (MOT15, world coordinates).

Frames are 1-based; columns after ``height`` are optional. Our JSON is 0-based, so frame f of MOT is frame f-1 here.
The columns after the box are kept on each keyframe (``"mot"``) and written back as they were, so MOT -> our JSON ->
MOT gives every row and every column back.
"""

from __future__ import annotations

import configparser
import math
import re
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError
from ..model import MAX_FRAMES, MAX_MOT_COLUMNS
from .common import finite_float, fmt_number, keyframes_from_presence, require_canvas, tracklets_dict

# MOT16/17/20 class ids.
MOT_CLASSES = {
    1: "pedestrian", 2: "person on vehicle", 3: "car", 4: "bicycle", 5: "motorbike", 6: "non motorized vehicle",
    7: "static person", 8: "distractor", 9: "occluder", 10: "occluder on the ground", 11: "occluder full",
    12: "reflection",
}
MOT_CLASS_IDS = {name: cid for cid, name in MOT_CLASSES.items()}

_SPLIT = re.compile(r"\s*,\s*|\s+")


def read_seqinfo(path: Path) -> dict:
    """imWidth / imHeight / seqLength / frameRate from a MOT ``seqinfo.ini`` (missing keys are left out)."""
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"unreadable seqinfo.ini ({exc}).", source=str(path)) from None
    if not parser.has_section("Sequence"):
        return {}
    sec = parser["Sequence"]
    out = {}
    for key, name in (("imWidth", "width"), ("imHeight", "height"), ("seqLength", "num_frames")):
        if key in sec and sec[key].strip().isdigit():
            out[name] = int(sec[key])
    if "frameRate" in sec:
        try:
            out["fps"] = float(sec["frameRate"])
        except ValueError:
            pass
    return out


def find_seqinfo(path: Path) -> Path | None:
    """MOT layout: ``SEQ/seqinfo.ini`` beside ``SEQ/gt/gt.txt`` or ``SEQ/det/det.txt``."""
    for candidate in (path.parent / "seqinfo.ini", path.parent.parent / "seqinfo.ini"):
        if candidate.is_file():
            return candidate
    return None


def read_mot(text: str, *, width=None, height=None, num_frames=None, fps=None, strict: bool = False,
             source: str = "MOT file") -> dict:
    """Parse MOT text into our JSON dict (validate it with ``parse_tracklets_dict``)."""
    width, height = require_canvas(width, height, "MOT files", source)
    rows: dict[int, dict[int, list[float]]] = {}
    classes: dict[int, int] = {}
    extras: dict[int, dict[int, list[float]]] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = [c for c in _SPLIT.split(line) if c != ""]
        if len(cols) < 6:
            raise InvalidInputError(
                f"has {len(cols)} columns; a MOT line needs at least 6: frame, id, left, top, width, height "
                "(then optional conf, class, visibility).", source=source, line=line_no)
        if len(cols) > 6 + MAX_MOT_COLUMNS:
            raise InvalidInputError(f"has {len(cols)} columns; at most {6 + MAX_MOT_COLUMNS} are read.",
                                    source=source, line=line_no)
        nums = [finite_float(c, f"column {i + 1}", source, line=line_no) for i, c in enumerate(cols)]
        frame, tid, left, top, w, h = nums[:6]
        if not frame.is_integer() or not 1 <= frame <= MAX_FRAMES:
            raise InvalidInputError(f"frame {cols[0]} is not a 1-based frame number up to {MAX_FRAMES}.",
                                    source=source, line=line_no)
        if not tid.is_integer():
            raise InvalidInputError(f"track id {cols[1]} is not an integer.", source=source, line=line_no)
        if tid < 0:
            raise InvalidInputError(
                f"track id {cols[1]} is negative: this looks like a detection file without identities.",
                fix="run a tracker first, or convert a gt.txt / tracker result with real ids.",
                source=source, line=line_no)
        if w <= 0 or h <= 0:
            raise InvalidInputError(f"box width/height {cols[4]}x{cols[5]} must be positive.", source=source,
                                    line=line_no, obj=int(tid), frame=int(frame) - 1)
        f0, tid = int(frame) - 1, int(tid)
        per_frame = rows.setdefault(tid, {})
        if f0 in per_frame:
            raise InvalidInputError("the same track id appears twice in one frame.", fix="keep one row per id "
                                    "and frame.", source=source, line=line_no, obj=tid, frame=f0)
        per_frame[f0] = [left, top, left + w, top + h]
        extras.setdefault(tid, {})[f0] = nums[6:]  # also none: the row is written back with 6 columns
        if len(nums) >= 8 and nums[7].is_integer():
            classes.setdefault(tid, int(nums[7]))
    if not rows:
        raise InvalidInputError("has no tracks.", fix="check this is a MOT gt.txt or tracker result.", source=source)
    last_frame = max(f for per in rows.values() for f in per) + 1
    if num_frames is None:
        num_frames = last_frame
    elif last_frame > num_frames:
        tid = next(t for t, per in rows.items() if max(per) + 1 == last_frame)
        raise InvalidInputError(f"frame {last_frame} is beyond num_frames {num_frames}.",
                                fix="raise --frames or cut the file.", source=source, obj=tid, frame=last_frame - 1)
    objects = []
    for tid, per in rows.items():
        boxes = np.zeros((num_frames, 4))
        present = np.zeros(num_frames, dtype=bool)
        for f, box in per.items():
            boxes[f], present[f] = box, True
        cid = classes.get(tid)
        label = "" if cid is None or cid < 1 else MOT_CLASSES.get(cid, f"class {cid}")
        objects.append({"id": tid, "label": label,
                        "keyframes": keyframes_from_presence(boxes, present, extras.get(tid))})
    return tracklets_dict(width, height, num_frames, 8.0 if fps is None else fps, objects)


def _extent(low: float, high: float) -> str:
    """``high - low`` as MOT text, rounded to 15 significant digits of the coordinates (their float precision), so a
    width that was read comes back as written (794.2 + 71.2 - 794.2 is 71.20000000000005 in floats)."""
    digits = 14 - math.floor(math.log10(max(abs(low), abs(high), 1.0)))
    return fmt_number(round(float(high) - float(low), digits))


def write_mot(tracklets) -> str:
    """MOT gt.txt text: one row per visible (object, frame), unclamped boxes, 1-based frames, ids as they are.

    The columns after the box are the keyframe's own (``"mot"``, as read from a MOT file) where it has them, else
    ``1, class, 1`` with the class from the label when it names a MOT class (else -1).
    """
    dense = tracklets.dense(clamp=False)
    columns = {(o.id, k.frame): k.mot for o in tracklets.objects for k in o.keyframes if k.mot is not None}
    lines = []
    for f in range(dense.boxes.shape[0]):
        for j, oid in enumerate(dense.ids):
            if not dense.visible[f, j]:
                continue
            x1, y1, x2, y2 = dense.boxes[f, j]
            kept = columns.get((oid, f))
            rest = ([fmt_number(v) for v in kept] if kept is not None
                    else ["1", str(MOT_CLASS_IDS.get(dense.labels[j], -1)), "1"])
            lines.append(",".join([str(f + 1), str(oid), fmt_number(x1), fmt_number(y1), _extent(x1, x2),
                                   _extent(y1, y2), *rest]))
    return "\n".join(lines) + ("\n" if lines else "")
