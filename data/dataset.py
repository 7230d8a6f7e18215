"""Generated videos + their conditioning tracklets -> tracker training data: a MOT Challenge sequence (img1/,
gt/gt.txt, seqinfo.ini) with a YouTube-VIS json beside it.

Written atomically: everything goes into a hidden temporary folder next to the target, renamed at the end, so an
interrupted run leaves no half sequence; an existing sequence is never overwritten.

Several writers may fill one dataset root at once (shards of ``trackdiffusion run --batch --shard``, two ComfyUI
servers on one output folder): a sequence name is *claimed* before anything is written, by creating the empty folder
``root/name`` with ``mkdir`` (atomic and exclusive, also on NFS), and the finished sequence replaces that empty
folder in one rename. Until then the folder is empty (no ``seqinfo.ini``): readers take it for no sequence, and a
writer killed outright leaves only that empty folder, whose name is then skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .atomic import as_ordinary
from .errors import InvalidInputError
from .progress import ProgressCallback, report
from .tracklets.formats import write_mot, write_ytvis
from .visualize import as_frames

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_sequence_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise InvalidInputError(f"sequence name {name!r} is not a plain folder name.",
                                fix="use letters, digits, '.', '_' and '-' (e.g. synth-0001).")
    return name


def next_free_name(root: Path, prefix: str) -> str:
    """``prefix_00001``, ``prefix_00002``, ...: the first that does not exist under ``root``. Only a hint when other
    writers share ``root`` (one may take the name right after); :func:`claim_next_sequence_name` is race-free."""
    check_sequence_name(prefix)
    taken = {p.name for p in root.iterdir()} if root.is_dir() else set()
    for i in range(1, 100_000):
        name = f"{prefix}_{i:05d}"
        if name not in taken:
            return name
    raise InvalidInputError(f"no free sequence name left for {prefix!r} in {root}.", fix="use another prefix.")


def claim_sequence_folder(root, name: str) -> Path:
    """Create the empty folder ``root/name`` exclusively: from then on the name is this writer's (see the module
    docstring). An existing folder of that name is refused."""
    root = Path(root)
    target = root / check_sequence_name(name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        target.mkdir()
    except FileExistsError:
        raise InvalidInputError("already exists; an existing sequence is never overwritten.",
                                fix="choose another name or remove the old sequence.", source=str(target)) from None
    return target


def claim_next_sequence_name(root, prefix: str) -> str:
    """Claim the first free ``prefix_NNNNN`` under ``root`` (its empty folder is created) and return it; write the
    sequence with ``write_tracking_sequence(..., name, claimed=True)``. Two writers never get the same name: the
    listing only skips names known to be taken, the exclusive ``mkdir`` decides."""
    check_sequence_name(prefix)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in root.iterdir()}
    for i in range(1, 100_000):
        name = f"{prefix}_{i:05d}"
        if name in taken:
            continue
        try:
            (root / check_sequence_name(name)).mkdir()
        except FileExistsError:
            continue  # another writer took it after the listing
        return name
    raise InvalidInputError(f"no free sequence name left for {prefix!r} in {root}.", fix="use another prefix.")


def _publish(tmp: Path, target: Path) -> None:
    """Move the finished sequence ``tmp`` onto its claimed, empty folder ``target`` in one step."""
    try:
        os.replace(tmp, target)  # POSIX rename(2) replaces an empty folder atomically; a non-empty one fails
    except OSError:
        if os.name != "nt" or any(target.iterdir()):
            raise InvalidInputError("was written into by someone else meanwhile; nothing was replaced.",
                                    source=str(target)) from None
        target.rmdir()  # Windows renames onto no existing folder: give the claim up just before taking the name
        os.rename(tmp, target)


def write_tracking_sequence(frames, tracklets, root, name: str, fps: float | None = None,
                            image_format: str = "jpg", *, claimed: bool = False,
                            progress: ProgressCallback | None = None) -> Path:
    """Write ``root/name`` as a MOT sequence plus ``ytvis.json``; returns the folder.

    The tracklets are resampled to the frames' count and scaled to their size, so what is written matches the
    pixels. Boxes are clamped to the image (MOT tools expect boxes inside it); hidden frames have no row.
    ``claimed``: ``root/name`` is the empty folder :func:`claim_next_sequence_name` made for this write (else the
    name is claimed here, and an existing folder is refused). On failure the claim is given up.
    ``progress(done, total)`` counts the frames written (see :mod:`.progress`).
    """
    root = Path(root)
    name = check_sequence_name(name)
    target = root / name
    if claimed and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInputError("is not an empty claimed folder; an existing sequence is never overwritten.",
                                fix="claim the name with claim_next_sequence_name first.", source=str(target))
    try:  # bad input is refused before a name is taken (and gives a caller's claim up)
        if image_format not in ("jpg", "png"):
            raise InvalidInputError(f"image_format must be jpg or png, got {image_format!r}.")
        frames = as_frames(frames)
    except BaseException:
        if claimed:
            _give_up_claim(target)
        raise
    if not claimed:
        claim_sequence_folder(root, name)
    n_frames, height, width = frames.shape[:3]
    tmp = None
    try:
        fitted = tracklets.resample(num_frames=n_frames, width=width, height=height)
        clamped = _clamped(fitted)
        fps = float(fps or tracklets.fps)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        (tmp / "img1").mkdir()
        (tmp / "gt").mkdir()
        file_names = []
        report(progress, 0, n_frames)
        for i, frame in enumerate(frames):
            file_name = f"img1/{i + 1:06d}.{image_format}"
            if not cv2.imwrite(str(tmp / file_name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise InvalidInputError("OpenCV could not write a frame.", source=str(target))
            file_names.append(file_name)
            report(progress, i + 1, n_frames)
        (tmp / "gt" / "gt.txt").write_text(write_mot(clamped), encoding="utf-8")
        (tmp / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps:g}\nseqLength={n_frames}\nimWidth={width}\n"
            f"imHeight={height}\nimExt=.{image_format}\n", encoding="utf-8")
        ytvis = write_ytvis(clamped, video_name=name, file_names=file_names)
        (tmp / "ytvis.json").write_text(json.dumps(ytvis), encoding="utf-8")
        (tmp / "tracklets.json").write_text(fitted.to_json(), encoding="utf-8")
        as_ordinary(tmp)  # mkdtemp makes it private; the result is an ordinary folder
        _publish(tmp, target)
    except BaseException:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        _give_up_claim(target)
        raise
    return target


def _give_up_claim(target: Path) -> None:
    """Remove a claimed folder that is still empty (a published sequence is never removed: rmdir refuses it)."""
    try:
        target.rmdir()
    except OSError:
        pass


def _clamped(tracklets):
    """Per-frame keyframes with boxes clamped to the canvas and hidden where nothing is left inside."""
    from .tracklets.formats.common import keyframes_from_presence, tracklets_dict
    from .tracklets.model import parse_tracklets_dict

    dense = tracklets.dense()
    objects = []
    for j, oid in enumerate(dense.ids):
        if dense.visible[:, j].any():
            objects.append({"id": oid, "label": dense.labels[j], "color": dense.colors[j],
                            "keyframes": keyframes_from_presence(dense.boxes[:, j], dense.visible[:, j])})
    doc = tracklets_dict(tracklets.width, tracklets.height, tracklets.num_frames, tracklets.fps, objects)
    return parse_tracklets_dict(doc, strict=True, source="dataset export")


def read_frames(path) -> np.ndarray:
    """A folder of images (sorted by name) or a video file -> RGB uint8 [F, H, W, 3]."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))
        if not files:
            raise InvalidInputError("holds no images (png, jpg, webp, bmp).", source=str(path))
        images = []
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                raise InvalidInputError("cannot be read as an image.", source=str(f))
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if len({im.shape for im in images}) > 1:
            raise InvalidInputError("images of different sizes.", fix="give frames of one size.", source=str(path))
        return np.stack(images)
    if not path.is_file():
        raise InvalidInputError("not found.", fix="give a folder of frames or a video file.", source=str(path))
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise InvalidInputError("no frames could be decoded.", fix="give a folder of frames or an mp4.",
                                source=str(path))
    return np.stack(frames)
