"""Training clips for ``trackdiffusion train``: SynTrack, or a dataset folder read through the tracklet importers.

A *source* hands out the clips of one training step, ``source.clips(step, batch, seed)``; what a step gets depends
only on ``(seed, step)``, never on what earlier steps drew, so a resumed run sees exactly the clips an uninterrupted
one would have seen.

* ``syntrack``: :func:`trackdiffusion.evaluation.synth.train_batch` rendered directly at the training size and frame count.
* a folder in **MOT** layout: sequences ``SEQ/seqinfo.ini`` + ``SEQ/gt/gt.txt`` + ``SEQ/<imDir>/`` (``img1`` by
  default), found in the folder itself, its sub-folders and their sub-folders (``MOT17/train/SEQ``); what
  :func:`trackdiffusion.data.dataset.write_tracking_sequence` writes. ``gt.txt`` rows whose confidence column is 0 (MOT17's
  "ignore" boxes) are left out.
* a folder in **YouTube-VIS** layout: a ``.json`` holding ``videos`` and ``annotations`` (in the folder, its
  ``annotations/`` sub-folder or one level down) whose ``file_names`` resolve beside the json, under ``JPEGImages/``
  next to it or one level up, or under the folder itself.

Sampling (folders): a sequence is drawn uniformly; ``F`` frames are taken with a random stride of 1-4 (as far as the
sequence allows) from a random start, or spread over the whole sequence when it is shorter than ``F``; frames are
resized (stretched) to the training size and the boxes follow (they are kept normalised to the source canvas, which
a stretch leaves unchanged). At most :data:`MAX_OBJS` objects per clip: those present in the window, the largest
kept when there are more, in id order (slot index = identity, as in the official loader).
"""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.errors import InvalidInputError
from ..data.tracklets.formats import read_mot, read_ytvis
from ..data.tracklets.model import PALETTE, Tracklets, color_to_rgb, parse_tracklets_dict
from ..data.trajectories import PointTrajectories

SOURCE = "trackdiffusion train data"
#: slots per frame (the official ``fixed_objs``)
MAX_OBJS = 20
#: slot colours: the tracklet editor's 20-colour palette, shuffled per clip (the official loader shuffles a 29-colour
#: palette the same way; slot i gets colour i, in the box channels 4:7 and in the stage-1 outlines)
SLOT_PALETTE = np.array([color_to_rgb(c) for c in PALETTE], dtype=np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_STRIDE = 4
#: box-rigid points per object for the TrackGo trajectory video of dataset clips (fractions of the box)
BOX_POINTS_UV = np.array([[0.5, 0.5], [0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75],
                          [0.5, 0.2], [0.2, 0.5], [0.8, 0.5]], dtype=np.float32)
#: an object "moves" (TrackGo moving mask) when its centre or size changes by more than this fraction of the frame
MOVING_THRESHOLD = 0.02


@dataclass
class Clip:
    """One training clip at the training size.

    Attributes:
        video: [F, H, W, 3] uint8 RGB.
        boxes: [F, N, 4] float32 xyxy normalised to [0, 1]; 0 where absent. N <= MAX_OBJS, slot order = id order.
        present: [F, N] bool.
        points: point trajectories in the clip's pixels (TrackGo's conditioning), or None to derive them from the boxes.
        name: where the clip came from (for messages).
    """

    video: np.ndarray
    boxes: np.ndarray
    present: np.ndarray
    points: PointTrajectories | None = None
    name: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return int(self.video.shape[2]), int(self.video.shape[1])


def step_rng(seed: int, step: int, *extra: int) -> np.random.Generator:
    """The numpy generator of one step (and sub-stream): independent of every other step."""
    return np.random.default_rng([int(seed), int(step), *map(int, extra)])


# ------------------------------------------------------------------------------------------------------- SynTrack


class SynTrackSource:
    """SynTrack's training stream at ``width`` x ``height`` x ``frames`` (clips are rendered at that size)."""

    kind = "syntrack"

    def __init__(self, width: int, height: int, frames: int) -> None:
        from ..evaluation.synth import as_tier

        self.tier = as_tier((width, height, frames))
        self.description = f"SynTrack training stream ({width}x{height}, {frames} frames)"

    def clips(self, step: int, batch: int, seed: int = 0) -> list[Clip]:
        from ..evaluation.synth import train_batch

        # train_batch(s) draws from default_rng(s).spawn(batch): one stream per (seed, step), never a val/test clip
        clips = train_batch(int(seed) * 1_000_000_007 + int(step), batch, self.tier)
        out = []
        w, h, _ = self.tier
        scale = np.array([w, h, w, h], dtype=np.float64)
        for i, c in enumerate(clips):
            present = ~np.isnan(c.boxes).any(-1)
            boxes = np.where(present[..., None], np.nan_to_num(c.boxes) / scale, 0.0).astype(np.float32)
            boxes, present = _limit_objects(boxes, present)
            out.append(Clip(c.video, boxes, present, c.points, name=f"syntrack step {step} clip {i}"))
        return out


# ------------------------------------------------------------------------------------------------------- folders


@dataclass
class Sequence:
    """One video of a dataset folder: its frame files and tracklets (canvas = the source frames)."""

    name: str
    frames: list[Path]
    tracklets: Tracklets
    _dense: object = field(default=None, repr=False)

    @property
    def length(self) -> int:
        return min(len(self.frames), self.tracklets.num_frames)

    def dense(self):
        if self._dense is None:
            self._dense = self.tracklets.dense()
        return self._dense


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def _mot_text(text: str) -> str:
    """gt.txt without the rows whose confidence (7th column) is 0: MOT17 marks ignored boxes that way."""
    kept = []
    for line in text.splitlines():
        cols = [c for c in line.replace(",", " ").split() if c]
        if len(cols) >= 7:
            try:
                if float(cols[6]) == 0.0:
                    continue
            except ValueError:
                pass
        kept.append(line)
    return "\n".join(kept) + "\n"


def _load_mot(seq: Path) -> Sequence | None:
    ini = configparser.ConfigParser()
    try:
        ini.read_string((seq / "seqinfo.ini").read_text(encoding="utf-8"))
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        raise InvalidInputError(f"unreadable seqinfo.ini ({exc}).", source=str(seq / "seqinfo.ini")) from None
    sec = ini["Sequence"] if ini.has_section("Sequence") else {}
    im_dir = seq / sec.get("imDir", "img1").strip()
    if not im_dir.is_dir():
        raise InvalidInputError(f"the frames folder {im_dir.name}/ named by seqinfo.ini (imDir) is missing.",
                                source=str(seq))
    frames = _images(im_dir)
    if not frames:
        raise InvalidInputError(f"{im_dir.name}/ holds no images.", source=str(seq))

    def number(key: str) -> int | None:
        value = str(sec.get(key, "")).strip()
        return int(value) if value.isdigit() else None

    width, height = number("imWidth"), number("imHeight")
    if width is None or height is None:
        probe = cv2.imread(str(frames[0]), cv2.IMREAD_COLOR)
        if probe is None:
            raise InvalidInputError("cannot be read as an image.", source=str(frames[0]))
        height, width = probe.shape[:2]
    length = number("seqLength") or len(frames)
    gt = seq / "gt" / "gt.txt"
    text = _mot_text(gt.read_text(encoding="utf-8-sig"))
    if not text.strip():
        return None
    try:
        fps = float(sec.get("frameRate", 8.0))
    except ValueError:
        fps = 8.0
    doc = read_mot(text, width=width, height=height, num_frames=max(length, 1), fps=fps, source=str(gt))
    return Sequence(seq.name, frames, parse_tracklets_dict(doc, source=str(gt)))


def _mot_sequences(root: Path) -> list[Path]:
    level0 = [root]
    level1 = _subdirs(root)
    level2 = [d for sub in level1 for d in _subdirs(sub)]
    return [d for d in level0 + level1 + level2 if (d / "seqinfo.ini").is_file() and (d / "gt" / "gt.txt").is_file()]


def _ytvis_jsons(root: Path) -> list[tuple[Path, dict]]:
    candidates = []
    for folder in [root, root / "annotations", *_subdirs(root)]:
        if folder.is_dir():
            candidates += sorted(p for p in folder.glob("*.json") if p.is_file())
    found, seen = [], set()
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        try:
            with open(path, encoding="utf-8-sig") as fh:
                head = fh.read(1)
                if head != "{":
                    continue
                data = json.loads(head + fh.read())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("videos"), list) and isinstance(data.get("annotations"),
                                                                                          list):
            found.append((path, data))
    return found


def _frame_roots(json_path: Path, root: Path) -> list[Path]:
    here = json_path.parent
    out = [here, here / "JPEGImages", here.parent / "JPEGImages", root, root / "JPEGImages",
           root / "train" / "JPEGImages", root / "valid" / "JPEGImages"]
    unique = []
    for p in out:
        if p not in unique:
            unique.append(p)
    return unique


def _load_ytvis(json_path: Path, data: dict, root: Path) -> list[Sequence]:
    by_video: dict[object, list] = {}
    for ann in data["annotations"]:
        if isinstance(ann, dict):
            by_video.setdefault(ann.get("video_id"), []).append(ann)
    videos = [v for v in data["videos"] if isinstance(v, dict) and isinstance(v.get("file_names"), list)
              and v["file_names"] and by_video.get(v.get("id"))]
    if not videos:  # e.g. a validation json without annotations
        return []
    first = str(videos[0]["file_names"][0])
    roots = _frame_roots(json_path, root)
    base = next((r for r in roots if (r / first).is_file()), None)
    if base is None:
        raise InvalidInputError(
            f"found the YouTube-VIS json {json_path.name} but not its frames: looked for {first} under "
            + ", ".join(str(r) for r in roots) + ".",
            fix="put the frames folder (JPEGImages/) beside the json, or give the folder that holds both.",
            source=str(json_path))
    sequences = []
    categories = data.get("categories") or []
    for video in videos:
        anns = by_video[video.get("id")]
        doc = read_ytvis({"videos": [video], "annotations": anns, "categories": categories}, source=str(json_path))
        tracklets = parse_tracklets_dict(doc, source=str(json_path))
        if not tracklets.objects:
            continue
        frames = [base / str(f) for f in video["file_names"]]
        name = str(video.get("name") or video.get("id"))
        sequences.append(Sequence(name, frames, tracklets))
    return sequences


def discover(root: str | Path) -> tuple[str, list[Sequence]]:
    """The layout (``"mot"`` or ``"ytvis"``) and sequences of a dataset folder, or an error naming what was looked for.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise InvalidInputError("the dataset folder does not exist.",
                                fix="give a folder of MOT sequences or a YouTube-VIS dataset, or --data syntrack.",
                                source=str(root))
    if not root.is_dir():
        raise InvalidInputError("--data must be a folder (or 'syntrack'), not a file.",
                                fix="give the folder that holds the sequences or the YouTube-VIS json.",
                                source=str(root))
    mot = _mot_sequences(root)
    if mot:
        sequences = [s for s in (_load_mot(d) for d in mot) if s is not None and s.tracklets.objects]
        if not sequences:
            raise InvalidInputError(f"found {len(mot)} MOT sequence(s) but none has a box to train on.",
                                    source=str(root))
        return "mot", sequences
    jsons = _ytvis_jsons(root)
    if jsons:
        sequences = [s for path, data in jsons for s in _load_ytvis(path, data, root)]
        if not sequences:
            raise InvalidInputError(
                f"found YouTube-VIS json(s) ({', '.join(p.name for p, _ in jsons)}) but no video with annotations.",
                source=str(root))
        return "ytvis", sequences
    raise InvalidInputError(
        "not a dataset layout this command reads. Looked for: MOT sequences (a folder with seqinfo.ini, gt/gt.txt "
        "and img1/) in this folder, its sub-folders and theirs; and a YouTube-VIS json (a .json with \"videos\" and "
        "\"annotations\") in this folder, its annotations/ sub-folder and its sub-folders.",
        fix="use --data syntrack, export sequences with `trackdiffusion dataset`, or point --data at the folder "
            "that holds them.", source=str(root))


def _read_frame(path: Path, width: int, height: int) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError("cannot be read as an image.", source=str(path))
    h, w = bgr.shape[:2]
    if (w, h) != (width, height):
        shrink = w * h > width * height
        bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frame_window(rng: np.random.Generator, length: int, frames: int) -> np.ndarray:
    """``frames`` source frame indices: a strided window at a random start, or spread over a short sequence."""
    if length < frames:
        return np.round(np.linspace(0, max(length - 1, 0), frames)).astype(np.int64)
    max_stride = 1 if frames == 1 else max(1, min(MAX_STRIDE, (length - 1) // (frames - 1)))
    stride = int(rng.integers(1, max_stride + 1))
    span = (frames - 1) * stride
    start = int(rng.integers(0, length - span))
    return start + stride * np.arange(frames)


def _limit_objects(boxes: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Objects present in the clip, at most MAX_OBJS (the largest by mean visible area), in their original order."""
    keep = np.flatnonzero(present.any(0))
    if keep.size > MAX_OBJS:
        area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) * present).mean(0)
        keep = np.sort(keep[np.argsort(-area[keep], kind="stable")[:MAX_OBJS]])
    return boxes[:, keep].astype(np.float32), present[:, keep]


class FolderSource:
    """Clips from a dataset folder (MOT or YouTube-VIS layout; see the module docstring)."""

    kind = "folder"

    def __init__(self, root: str | Path, width: int, height: int, frames: int) -> None:
        self.root = Path(root).expanduser().resolve()
        self.layout, self.sequences = discover(self.root)
        self.width, self.height, self.frames = int(width), int(height), int(frames)
        names = {"mot": "MOT", "ytvis": "YouTube-VIS"}
        self.description = (f"{names[self.layout]} folder {self.root} ({len(self.sequences)} sequences), clips of "
                            f"{frames} frames at {width}x{height}")

    def clip(self, sequence: Sequence, indices: np.ndarray, name: str = "") -> Clip:
        dense = sequence.dense()
        scale = np.array([dense.width, dense.height, dense.width, dense.height], dtype=np.float64)
        present = dense.visible[indices]
        boxes = np.where(present[..., None], np.clip(dense.boxes[indices] / scale, 0.0, 1.0), 0.0)
        boxes, present = _limit_objects(boxes, present)
        video = np.stack([_read_frame(sequence.frames[int(i)], self.width, self.height) for i in indices])
        return Clip(video, boxes, present, None, name=name or sequence.name)

    def clips(self, step: int, batch: int, seed: int = 0) -> list[Clip]:
        out = []
        for i in range(batch):
            rng = step_rng(seed, step, 1, i)
            seq = self.sequences[int(rng.integers(len(self.sequences)))]
            indices = frame_window(rng, seq.length, self.frames)
            out.append(self.clip(seq, indices, name=f"{seq.name} frames {indices[0]}-{indices[-1]}"))
        return out


def open_source(data: str | Path, width: int, height: int, frames: int):
    """``"syntrack"`` -> :class:`SynTrackSource`; a folder -> :class:`FolderSource`."""
    if str(data).strip().lower() == "syntrack":
        return SynTrackSource(width, height, frames)
    return FolderSource(data, width, height, frames)


# ------------------------------------------------------------------------------------------------------- tensors


def slot_colors(rng: np.random.Generator, slots: int = MAX_OBJS) -> np.ndarray:
    """[slots, 3] RGB in [0, 1]: the palette shuffled (per clip), slot i gets entry i."""
    order = rng.permutation(len(SLOT_PALETTE))
    return SLOT_PALETTE[order[np.arange(slots) % len(order)]]


def draw_outlines(video: np.ndarray, boxes: np.ndarray, present: np.ndarray, colors: np.ndarray,
                  thickness: int | None = None) -> np.ndarray:
    """Stage-1 target: each present box drawn as an outline of its slot colour into every frame except frame 0.

    The official loader draws 4-px outlines at 1024x576; ``thickness`` defaults to that scaled to the clip's width.
    """
    f, h, w = video.shape[:3]
    if thickness is None:
        thickness = max(1, round(4 * w / 1024))
    out = video.copy()
    for t in range(1, f):
        frame = np.ascontiguousarray(out[t])
        for j in np.flatnonzero(present[t]):
            x1, y1, x2, y2 = boxes[t, j] * np.array([w, h, w, h])
            p1 = (int(np.rint(x1)), int(np.rint(y1)))
            p2 = (max(int(np.rint(x2)) - 1, p1[0]), max(int(np.rint(y2)) - 1, p1[1]))
            color = tuple(int(np.rint(float(c) * 255)) for c in colors[j])
            cv2.rectangle(frame, p1, p2, color, thickness)
        out[t] = frame
    return out


def box_points(boxes: np.ndarray, present: np.ndarray, width: int, height: int) -> PointTrajectories:
    """Point trajectories rigid with each box (8 points per object, :data:`BOX_POINTS_UV`), in pixels."""
    f, n = present.shape
    k = len(BOX_POINTS_UV)
    px = boxes[..., 0:1] + BOX_POINTS_UV[None, None, :, 0] * (boxes[..., 2:3] - boxes[..., 0:1])  # [F, N, K]
    py = boxes[..., 1:2] + BOX_POINTS_UV[None, None, :, 1] * (boxes[..., 3:4] - boxes[..., 1:2])
    points = np.stack([px * width, py * height], axis=-1).reshape(f, n * k, 2)
    visible = np.repeat(present, k, axis=1)
    component = np.repeat(np.arange(n), k)
    return PointTrajectories(points, visible, component, width, height)


def trajectory_video(clip: Clip, width: int, height: int, point_size: int = 4) -> np.ndarray:
    """TrackGo's conditioning video P of a clip at ``width`` x ``height`` (8x the latent): [F, H, W, 3] uint8."""
    w, h = clip.size
    points = clip.points if clip.points is not None else box_points(clip.boxes, clip.present, w, h)
    scaled = PointTrajectories(points.points * np.array([width / w, height / h], dtype=np.float32),
                               points.visibility, points.component, width, height)
    return scaled.render(point_size=point_size)


def moving_mask(clip: Clip) -> np.ndarray:
    """TrackGo's moving-part mask [H, W] float32: the union over the clip of the boxes of the objects that move.

    An object moves when its box centre or size changes by more than :data:`MOVING_THRESHOLD` of the frame between
    any two frames where it is present.
    """
    w, h = clip.size
    mask = np.zeros((h, w), dtype=np.float32)
    for j in range(clip.boxes.shape[1]):
        on = clip.present[:, j]
        if on.sum() < 2:
            continue
        b = clip.boxes[on, j].astype(np.float64)
        centre = (b[:, :2] + b[:, 2:]) / 2
        size = b[:, 2:] - b[:, :2]
        spread = max(np.ptp(centre, axis=0).max(), np.ptp(size, axis=0).max())
        if spread <= MOVING_THRESHOLD:
            continue
        for x1, y1, x2, y2 in b * np.array([w, h, w, h]):
            mask[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = 1.0
    return mask
