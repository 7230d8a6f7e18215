"""Training clips for ``trackdiffusion train``: SynTrack, or a dataset folder read through the tracklet importers.

A *source* hands out the clips of one training step, ``source.clips(step, batch, seed)``; what a step gets depends
only on ``(seed, step)``, never on what earlier steps drew, so a resumed run sees exactly the clips an uninterrupted
one would have seen. Clip ``i`` of a step depends on ``(seed, step, i)`` alone, so ``clips(step, n, seed, first=k)``
is clips ``k .. k + n - 1`` of the step's batch, whatever its size: each process of a multi-process run (and each
micro-batch of gradient accumulation) makes only its share of the step's clips.

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

TrackGo inputs (what inference sees, built the same way): every object that moves in the clip
(:data:`MOVING_THRESHOLD`) gets a mask on its first present frame (SynTrack: its exact shape; dataset clips: its box
rasterised), ``K`` points from that mask by :func:`~trackdiffusion.data.trajectories.sample_mask_points` (the
builder's seeded k-means and area rule, 16-64 points; object ``j`` among the moving ones is ``mask_index = j``), and
every point follows its object: its position relative to the object's box on that frame is carried to every frame's
box (translation and scale). :func:`training_points` / :func:`trajectory_video` give the points and the conditioning
video P, :func:`object_masks` the per-frame masks M_i of the moving objects for the attention loss.
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
from ..data.trajectories import PointTrajectories, sample_mask_points

SOURCE = "trackdiffusion train data"
#: slots per frame (the official ``fixed_objs``)
MAX_OBJS = 20
#: slot colours: the tracklet editor's 20-colour palette, shuffled per clip (the official loader shuffles a 29-colour
#: palette the same way; slot i gets colour i, in the box channels 4:7 and in the stage-1 outlines)
SLOT_PALETTE = np.array([color_to_rgb(c) for c in PALETTE], dtype=np.float32)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_STRIDE = 4
#: an object "moves" (TrackGo: it gets points and a mask M_i) when its box centre or size changes by more than this
#: fraction of the frame between two frames where it is present
MOVING_THRESHOLD = 0.02


@dataclass
class Clip:
    """One training clip at the training size.

    Attributes:
        video: [F, H, W, 3] uint8 RGB.
        boxes: [F, N, 4] float32 xyxy normalised to [0, 1]; 0 where absent. N <= MAX_OBJS, slot order = id order.
        present: [F, N] bool.
        masks: [F, N, H, W] bool, each object's amodal shape mask per frame (False where absent; SynTrack), or None:
            the boxes rasterised stand in (dataset clips). Slot j is the object of ``boxes[:, j]``.
        name: where the clip came from (for messages).
    """

    video: np.ndarray
    boxes: np.ndarray
    present: np.ndarray
    masks: np.ndarray | None = None
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

    def clips(self, step: int, batch: int, seed: int = 0, first: int = 0) -> list[Clip]:
        from ..evaluation.synth import clip_from_spec, sample_spec, spec_masks, train_batch

        # train_batch(s) draws clip i from default_rng(s).spawn(batch)[i]: one stream per (seed, step), never a val/test
        # clip. Spawned stream i does not depend on how many are spawned, so a share of the batch (first > 0) is the
        # same clips without rendering the ones before it (tests/test_training_distributed.py holds the two equal).
        stream_seed = int(seed) * 1_000_000_007 + int(step)
        if first == 0:
            clips = train_batch(stream_seed, batch, self.tier)
        else:
            streams = np.random.default_rng(stream_seed).spawn(first + batch)[first:]
            clips = [clip_from_spec(sample_spec(rng, self.tier, None, True)) for rng in streams]
        out = []
        w, h, _ = self.tier
        scale = np.array([w, h, w, h], dtype=np.float64)
        for i, c in enumerate(clips, start=first):
            present = ~np.isnan(c.boxes).any(-1)
            boxes = np.where(present[..., None], np.nan_to_num(c.boxes) / scale, 0.0).astype(np.float32)
            boxes, present, keep = _limit_objects(boxes, present)
            # the exact shapes (not SynTrack's analytic points: TrackGo's points come from these masks, as at inference)
            masks = spec_masks(c.spec)[:, keep]
            out.append(Clip(c.video, boxes, present, masks, name=f"syntrack step {step} clip {i}"))
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


def _limit_objects(boxes: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objects present in the clip, at most MAX_OBJS (the largest by mean visible area), in their original order:
    their boxes, presence and indices (to select anything else per object the same way)."""
    keep = np.flatnonzero(present.any(0))
    if keep.size > MAX_OBJS:
        area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) * present).mean(0)
        keep = np.sort(keep[np.argsort(-area[keep], kind="stable")[:MAX_OBJS]])
    return boxes[:, keep].astype(np.float32), present[:, keep], keep


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
        boxes, present, _ = _limit_objects(boxes, present)
        video = np.stack([_read_frame(sequence.frames[int(i)], self.width, self.height) for i in indices])
        return Clip(video, boxes, present, None, name=name or sequence.name)

    def clips(self, step: int, batch: int, seed: int = 0, first: int = 0) -> list[Clip]:
        out = []
        for i in range(first, first + batch):
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
                  thickness: int) -> np.ndarray:
    """Stage-1 target: each present box drawn as an outline of its slot colour, ``thickness`` pixels wide, into every
    frame except frame 0. The trainer passes :func:`outline_thickness` of its latent: half a latent cell, as the
    official 4 px at 1024x576 for SVD's 8x VAE (scaled by frame width instead, a 64-px clip would get 1 px, which a
    VAE erases, and stage 1 would teach nothing).
    """
    f, h, w = video.shape[:3]
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


def outline_thickness(latent_scale: int) -> int:
    """The stage-1 outline width in pixels for a latent at 1/``latent_scale`` of the frame: half a latent cell, as the
    official 4 px for SVD's 8x VAE (at any frame size), at least 1 px."""
    return max(1, int(latent_scale) // 2)


def point_seed(seed: int, step: int, index: int) -> int:
    """The k-means seed of clip ``index`` of step ``step`` (from ``(seed, step, index)`` only): a different draw of
    points every step, the same one when a run is resumed."""
    state = np.random.SeedSequence([int(seed), int(step), 4, int(index)]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def box_mask(box: np.ndarray, width: int, height: int) -> np.ndarray:
    """[H, W] bool: the pixels whose centres fall inside ``box`` (xyxy in pixels, half-open ``x1 <= x < x2``, the rule
    SynTrack paints its squares with)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    c0, c1 = (min(max(int(np.ceil(v - 0.5)), 0), width) for v in (x1, x2))
    r0, r1 = (min(max(int(np.ceil(v - 0.5)), 0), height) for v in (y1, y2))
    mask = np.zeros((height, width), dtype=bool)
    mask[r0:r1, c0:c1] = True
    return mask


def _object_mask(clip: Clip, slot: int, frame: int) -> np.ndarray:
    """[H, W] bool mask of one object on one frame: its shape (``clip.masks``) or its box; empty where absent."""
    w, h = clip.size
    if not clip.present[frame, slot]:
        return np.zeros((h, w), dtype=bool)
    if clip.masks is not None:
        return np.asarray(clip.masks[frame, slot], dtype=bool)
    return box_mask(clip.boxes[frame, slot].astype(np.float64) * np.array([w, h, w, h]), w, h)


def _moves(clip: Clip, slot: int) -> bool:
    on = clip.present[:, slot]
    if on.sum() < 2:
        return False
    b = clip.boxes[on, slot].astype(np.float64)
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = b[:, 2:] - b[:, :2]
    return max(np.ptp(centre, axis=0).max(), np.ptp(size, axis=0).max()) > MOVING_THRESHOLD


def moving_objects(clip: Clip) -> list[tuple[int, int]]:
    """``(slot, first frame)`` of every object TrackGo conditions on, in slot order.

    An object counts when it moves (its box centre or size changes by more than :data:`MOVING_THRESHOLD` of the frame
    between two frames where it is present) and its mask has a pixel on some present frame; the first frame is the
    first present one whose mask has a pixel (its first present frame unless that box covers no pixel centre).
    """
    out = []
    for slot in range(clip.boxes.shape[1]):
        if not _moves(clip, slot):
            continue
        first = next((int(t) for t in np.flatnonzero(clip.present[:, slot]) if _object_mask(clip, slot, t).any()),
                     None)
        if first is not None:
            out.append((slot, first))
    return out


def training_points(clip: Clip, seed: int) -> PointTrajectories:
    """TrackGo's point trajectories of a clip, in its pixels, sampled as inference samples them.

    Object ``j`` of :func:`moving_objects` gets ``sample_mask_points(mask, seed, j)`` (the points
    :func:`~trackdiffusion.data.trajectories.build_point_trajectories` gives mask ``j`` with this seed: K from the
    mask's area ratio, k-means centres) on its first frame ``t0``; each point keeps its position relative to the
    object's box: ``p_t = p_t0 + (c_t - c_t0) + (p_t0 + 0.5 - c_t0) * (s_t / s_t0 - 1)`` per axis, with ``c`` the
    box's top-left corner and ``s`` its size (pixel ``i`` covers ``[i, i + 1)``, the points are in the builder's
    pixel-index convention), so at ``t0`` the points are the sampled ones exactly. Visible where the object is
    present and the point inside the frame (the builder's test); on absent frames a point stays at its ``t0``
    position, invisible. Component ``j`` (the builder's mask order, hence its colours).
    """
    w, h = clip.size
    f = clip.num_frames
    scale = np.array([w, h, w, h], dtype=np.float64)
    starts, offsets, present, comps = [], [], [], []
    for j, (slot, t0) in enumerate(moving_objects(clip)):
        start = sample_mask_points(_object_mask(clip, slot, t0), seed=seed, mask_index=j)  # [K, 2] float64
        on = clip.present[:, slot]
        boxes = clip.boxes[:, slot].astype(np.float64) * scale  # [F, 4]
        corner, size = boxes[:, :2], boxes[:, 2:] - boxes[:, :2]
        ratio = size / size[t0]  # the box at t0 holds a pixel centre: its size is positive
        rel = start + 0.5 - corner[t0]  # [K, 2], from the box corner
        offset = (corner - corner[t0])[:, None, :] + rel[None] * (ratio - 1.0)[:, None, :]  # [F, K, 2]
        offset[~on] = 0.0
        starts.append(start)
        offsets.append(offset)
        present.append(np.repeat(on[:, None], len(start), axis=1))
        comps.append(np.full(len(start), j, dtype=np.int64))
    if not starts:
        return PointTrajectories(np.zeros((f, 0, 2), np.float32), np.zeros((f, 0), bool), np.zeros(0, np.int64), w, h)
    points = (np.concatenate(starts)[None] + np.concatenate(offsets, axis=1)).astype(np.float32)  # [F, P, 2]
    x, y = points[..., 0], points[..., 1]
    visibility = np.concatenate(present, axis=1) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
    return PointTrajectories(points, visibility, np.concatenate(comps), w, h)


def trajectory_video(clip: Clip, width: int, height: int, seed: int, point_size: int = 4) -> np.ndarray:
    """TrackGo's conditioning video P of a clip at ``width`` x ``height`` (8x the latent): [F, H, W, 3] uint8, the
    :func:`training_points` rendered (scaled from the clip's pixels: pixel ``i`` covers ``[i, i + 1)``)."""
    w, h = clip.size
    points = training_points(clip, seed)
    factor = np.array([width / w, height / h], dtype=np.float64)
    scaled = ((points.points.astype(np.float64) + 0.5) * factor - 0.5).astype(np.float32)
    return PointTrajectories(scaled, points.visibility, points.component, width, height).render(point_size=point_size)


def _area_average(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = mask.shape
    m = mask.astype(np.float32)
    if (w, h) == (width, height):
        return m
    if w % width == 0 and h % height == 0:
        return m.reshape(height, h // height, width, w // width).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    return cv2.resize(m, (width, height), interpolation=cv2.INTER_AREA)


def object_masks(clip: Clip, size: tuple[int, int] | None = None) -> np.ndarray:
    """The masks M_i of TrackGo's attention loss: [O, F, h, w] float32, one per object of :func:`moving_objects` (same
    order as the points' components), per frame: its shape (SynTrack) or its box, 0 where it is absent.

    Args:
        size: ``(w, h)`` to area-average the masks to (e.g. the latent grid: the loss area-averages to every layer's
            grid, and when the grids divide evenly, averaging in two steps is the same average); None: the clip's
            pixels, 0 / 1.
    """
    w, h = clip.size
    gw, gh = (w, h) if size is None else (int(size[0]), int(size[1]))
    objects = moving_objects(clip)
    out = np.zeros((len(objects), clip.num_frames, gh, gw), dtype=np.float32)
    for j, (slot, _) in enumerate(objects):
        for t in np.flatnonzero(clip.present[:, slot]):
            out[j, t] = _area_average(_object_mask(clip, slot, int(t)), gw, gh)
    return out


def stack_object_masks(masks: list[np.ndarray]) -> np.ndarray:
    """Per-clip [O_i, F, h, w] masks -> [B, O, F, h, w], zero-padded to O = max(1, max O_i) objects (a zero mask adds
    nothing to the loss)."""
    count = max([1, *(m.shape[0] for m in masks)])
    out = np.zeros((len(masks), count, *masks[0].shape[1:]), dtype=np.float32)
    for i, m in enumerate(masks):
        out[i, :m.shape[0]] = m
    return out
