"""Several tracker datasets -> one: ``trackdiffusion dataset merge OUT SRC [SRC ...]``.

A source is a sequence folder, a dataset root, or anything holding them at any depth, such as the ``--out`` folder of
``trackdiffusion run --batch --shard`` (``out/<stem>/trackdiffusion_dataset/synth_00001/``). A *sequence* is a folder
with a ``seqinfo.ini`` (MOT layout: ``img1/``, ``gt/gt.txt``; our writer adds ``ytvis.json`` and ``tracklets.json``,
see :mod:`.dataset`). Hidden folders are skipped: they are writes in progress (staging, temporary folders), and so are
empty claimed folders, which hold no ``seqinfo.ini`` yet.

Every shard numbers its sequences and tracks from 1, so the merge renames and renumbers, in a fixed order (sources as
given, sequences by their path in the source, track ids ascending):

* sequence ``n`` becomes ``OUT/<prefix>_<n>/`` (``name=`` in its ``seqinfo.ini`` too) and video ``n`` in the json;
* track ids become 1.. across the whole merge, in ``gt/gt.txt`` (no other column changes), ``ytvis.json`` (annotation
  id = track id) and ``tracklets.json`` (object id), so no two sequences share a track id;
* categories are one table by name (ids by first appearance), the same in every file.

Beside the sequences: ``ytvis.json`` (every video; file names relative to OUT), ``cocovid.json`` (the same as COCO-VID:
image and annotation ids unique across the merge, ``instance_id`` = track id), ``seqmap.txt`` (the names, a
TrackEval seqmap) and ``merge.json`` (where each sequence came from and how its ids were renumbered).

Atomic: everything is written into a hidden folder beside OUT and renamed to OUT at the end; a failure leaves OUT as
it was. An existing OUT is refused unless ``force``, and OUT may never be a source, inside one or hold one.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import as_ordinary
from .dataset import check_sequence_name
from .errors import InvalidInputError
from .progress import ProgressCallback, report

SEQINFO = "seqinfo.ini"
GT = Path("gt") / "gt.txt"
MERGE_FORMAT = "trackdiffusion.dataset-merge"
#: what the merge writes (or rewrites) in a sequence; anything else there is left out, with a warning
KNOWN_ENTRIES = {SEQINFO, "gt", "ytvis.json", "tracklets.json"}
CATEGORY_FALLBACK = "object"

_SPLIT = re.compile(r"\s*,\s*|\s+")


@dataclass
class SourceSequence:
    """One sequence as read from a source, before renaming."""

    folder: Path
    source: Path
    name: str  # as its seqinfo.ini names it
    seqinfo: configparser.ConfigParser
    image_dir: str
    gt_rows: list[tuple[list[str], int]]  # (columns, track id) per row
    ytvis: dict
    tracklets: dict | None
    track_ids: list[int] = field(default_factory=list)


@dataclass
class MergeResult:
    out: Path
    #: (new name, the source sequence folder) in merge order
    sequences: list[tuple[str, Path]]
    tracks: int
    warnings: list[str]


def find_sequences(source: Path) -> list[Path]:
    """The sequence folders under ``source`` (itself included), sorted by their path in it; hidden folders and
    links are not followed."""
    if (source / SEQINFO).is_file():
        return [source]
    found = []
    for folder, dirs, files in os.walk(source):
        if SEQINFO in files and Path(folder) != source:
            found.append(Path(folder))
            dirs[:] = []  # a sequence holds no sequences
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(source).parts)


def _read_seqinfo(folder: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # imWidth, not imwidth: MOT tools read the keys as written
    try:
        parser.read_string((folder / SEQINFO).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise InvalidInputError(f"unreadable {SEQINFO} ({exc}).", source=str(folder / SEQINFO)) from None
    if not parser.has_section("Sequence"):
        raise InvalidInputError(f"{SEQINFO} has no [Sequence] section.", source=str(folder / SEQINFO))
    return parser


def _read_gt(folder: Path) -> list[tuple[list[str], int]]:
    path = folder / GT
    if not path.is_file():
        raise InvalidInputError("is an incomplete sequence: it has a seqinfo.ini but no gt/gt.txt.",
                                fix="let its writer finish, or remove the folder from the source.", source=str(folder))
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = [c for c in _SPLIT.split(line) if c]
        try:
            track = float(cols[1]) if len(cols) >= 6 else None
        except ValueError:
            track = None
        if track is None or not track.is_integer():
            raise InvalidInputError("is not a MOT row (frame, id, left, top, width, height, ...).", source=str(path),
                                    line=line_no)
        rows.append((cols, int(track)))
    return rows


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"unreadable JSON ({exc}).", source=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidInputError("is not a JSON object.", source=str(path))
    return data


def _ytvis_of(folder: Path, image_dir: str) -> dict:
    """The sequence's YouTube-VIS dict: its ``ytvis.json``, else made from gt.txt (a plain MOT sequence)."""
    path = folder / "ytvis.json"
    data = _read_json(path)
    if data is None:
        from .tracklets import load
        from .tracklets.formats import write_ytvis

        images = sorted(p.name for p in (folder / image_dir).iterdir() if p.is_file())
        return write_ytvis(load(folder / GT), video_name=folder.name,
                           file_names=[f"{image_dir}/{name}" for name in images])
    videos, annotations = data.get("videos"), data.get("annotations")
    if not isinstance(videos, list) or len(videos) != 1 or not isinstance(videos[0], dict) \
            or not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise InvalidInputError("is not the one-video YouTube-VIS json a sequence holds.", source=str(path))
    for ann in annotations:
        if isinstance(ann.get("id"), bool) or not isinstance(ann.get("id"), int):
            raise InvalidInputError(f"annotation id {ann.get('id')!r} is not a track id.", source=str(path))
    return data


def read_sequence(folder: Path, source: Path) -> SourceSequence:
    seqinfo = _read_seqinfo(folder)
    image_dir = seqinfo["Sequence"].get("imDir", "img1")
    if not image_dir or Path(image_dir).name != image_dir or image_dir in (".", ".."):
        raise InvalidInputError(f"imDir {image_dir!r} is not a folder of the sequence.", source=str(folder / SEQINFO))
    if not (folder / image_dir).is_dir():
        raise InvalidInputError(f"is an incomplete sequence: it has no {image_dir}/ folder.",
                                fix="let its writer finish, or remove the folder from the source.", source=str(folder))
    rows = _read_gt(folder)
    ytvis = _ytvis_of(folder, image_dir)
    tracklets = _read_json(folder / "tracklets.json")
    ids = {track for _, track in rows} | {a["id"] for a in ytvis["annotations"]}
    if tracklets is not None:
        objects = tracklets.get("objects")
        if not isinstance(objects, list) or not all(isinstance(o, dict) and isinstance(o.get("id"), int)
                                                    and not isinstance(o.get("id"), bool) for o in objects):
            raise InvalidInputError("is not our tracklets JSON (objects with integer ids).",
                                    source=str(folder / "tracklets.json"))
        ids |= {o["id"] for o in objects}
    return SourceSequence(folder, source, seqinfo["Sequence"].get("name", folder.name), seqinfo, image_dir, rows,
                          ytvis, tracklets, sorted(ids))


def _check_paths(out: Path, sources: list[Path], force: bool) -> None:
    if not sources:
        raise InvalidInputError("nothing to merge.", fix="give one or more SRC folders.")
    real_out = out.resolve()
    for src in sources:
        if not src.is_dir():
            raise InvalidInputError("is not a folder.", fix="give dataset folders (or run --out folders).",
                                    source=str(src))
        real_src = src.resolve()
        if real_out == real_src or real_out in real_src.parents or real_src in real_out.parents:
            raise InvalidInputError(f"OUT {out} and the source {src} overlap (one is, or holds, the other): writing "
                                    "OUT would change what is read.", fix="give OUT outside every SRC.",
                                    source=str(out))
    if (out.exists() or out.is_symlink()) and not (out.is_dir() and not any(out.iterdir())) and not force:
        raise InvalidInputError("already exists.", fix="pass --force to replace it, or give another path.",
                                source=str(out))


def _seqinfo_text(parser: configparser.ConfigParser, name: str) -> str:
    """The sequence's seqinfo.ini as ``key=value`` lines (as MOT writes them), with its new name."""
    lines = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        values = dict(parser[section].items())
        if section == "Sequence":
            values["name"] = name
        lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy does the same
        shutil.copy2(src, dst)
    return dst


def merge_datasets(out, sources, *, force: bool = False, prefix: str = "synth", link: bool = False,
                   progress: ProgressCallback | None = None) -> MergeResult:
    """Merge the sequences found under ``sources`` into the new dataset ``out`` (see the module docstring).
    ``link``: hard-link the frames instead of copying them (falls back to a copy across file systems).
    ``progress(done, total)`` counts the sequences written (see :mod:`.progress`)."""
    out = Path(out)
    sources = [Path(s) for s in sources]
    _check_paths(out, sources, force)
    folders: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for src in sources:
        found = find_sequences(src)
        if not found:
            raise InvalidInputError("holds no MOT sequence (a folder with seqinfo.ini, gt/gt.txt and its frames).",
                                    fix="give the dataset folders the runs wrote (a run's --out is fine).",
                                    source=str(src))
        for folder in found:
            real = folder.resolve()
            if real in seen:
                raise InvalidInputError(f"is found twice (under {seen[real]} and {src}).",
                                        fix="give each source once, and no source inside another.", source=str(folder))
            seen[real] = src
            folders.append((folder, src))
    read = [read_sequence(folder, src) for folder, src in folders]

    width = max(5, len(str(len(read))))
    names = [check_sequence_name(f"{prefix}_{n:0{width}d}") for n in range(1, len(read) + 1)]
    categories: dict[str, int] = {}  # one table for every file: label -> id, by first appearance
    for seq in read:
        for label in [*_category_names(seq.ytvis).values(), *map(_label_finder(seq.ytvis), seq.ytvis["annotations"])]:
            categories.setdefault(label, len(categories) + 1)
    track_maps, next_track = [], 1
    for seq in read:
        track_maps.append({old: next_track + i for i, old in enumerate(seq.track_ids)})
        next_track += len(seq.track_ids)

    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.merge-", dir=out.absolute().parent))
    warnings: list[str] = []
    try:
        videos, annotations, manifest = [], [], []
        report(progress, 0, len(read))
        for video_id, (seq, name, ids) in enumerate(zip(read, names, track_maps), start=1):
            video, own = _write_sequence(seq, tmp / name, name, video_id, ids, categories, link, warnings)
            report(progress, video_id, len(read))
            videos.append({**video, "file_names": [f"{name}/{f}" for f in video.get("file_names") or []]})
            annotations += own
            manifest.append({"name": name, "video_id": video_id, "source": str(seq.folder.resolve()),
                             "source_name": seq.name,
                             "track_ids": {str(old): new for old, new in ids.items()}})
        category_list = [{"id": cid, "name": name} for name, cid in categories.items()]
        ytvis = {"videos": videos, "annotations": annotations, "categories": category_list}
        (tmp / "ytvis.json").write_text(json.dumps(ytvis), encoding="utf-8")
        (tmp / "cocovid.json").write_text(json.dumps(ytvis_to_cocovid(ytvis)), encoding="utf-8")
        (tmp / "seqmap.txt").write_text("name\n" + "".join(f"{n}\n" for n in names), encoding="utf-8")
        (tmp / "merge.json").write_text(json.dumps(
            {"format": MERGE_FORMAT, "version": 1, "sources": [str(s.resolve()) for s in sources],
             "sequences": manifest, "tracks": next_track - 1, "categories": category_list}, indent=1) + "\n",
            encoding="utf-8")
        as_ordinary(tmp)  # mkdtemp makes it private; the result is an ordinary folder
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MergeResult(out, [(n, s.folder) for n, s in zip(names, read)], next_track - 1, warnings)


def _write_sequence(seq: SourceSequence, target: Path, name: str, video_id: int, ids: dict[int, int],
                    categories: dict[str, int], link: bool, warnings: list[str]) -> tuple[dict, list[dict]]:
    """Write one renamed, renumbered sequence; its YouTube-VIS video and annotations (file names in the sequence)."""
    target.mkdir()
    shutil.copytree(seq.folder / seq.image_dir, target / seq.image_dir,
                    copy_function=_link_or_copy if link else shutil.copy2)
    (target / "gt").mkdir()
    (target / GT).write_text("".join(",".join([cols[0], str(ids[track]), *cols[2:]]) + "\n"
                                     for cols, track in seq.gt_rows), encoding="utf-8")
    (target / SEQINFO).write_text(_seqinfo_text(seq.seqinfo, name), encoding="utf-8")

    label_of = _label_finder(seq.ytvis)
    video = {**seq.ytvis["videos"][0], "id": video_id, "name": name}
    own = [{**ann, "id": ids[ann["id"]], "video_id": video_id, "category_id": categories[label_of(ann)]}
           for ann in seq.ytvis["annotations"]]
    per_sequence = {**seq.ytvis, "videos": [video], "annotations": own,
                    "categories": [{"id": cid, "name": n} for n, cid in categories.items()]}
    (target / "ytvis.json").write_text(json.dumps(per_sequence), encoding="utf-8")
    if seq.tracklets is not None:
        objects = [{**o, "id": ids[o["id"]]} for o in seq.tracklets["objects"]]
        (target / "tracklets.json").write_text(json.dumps({**seq.tracklets, "objects": objects}, indent=2),
                                               encoding="utf-8")
    left_out = sorted(p.name for p in seq.folder.iterdir() if p.name not in KNOWN_ENTRIES | {seq.image_dir})
    left_out += sorted(f"gt/{p.name}" for p in (seq.folder / "gt").iterdir() if p.name != "gt.txt")
    if left_out:
        warnings.append(f"{seq.folder}: left out {', '.join(left_out)} (the merge rewrites only the files it "
                        "knows: their names and track ids would be stale).")
    return video, own


def _category_names(ytvis: dict) -> dict:
    return {c.get("id"): str(c.get("name", c.get("id"))) for c in ytvis.get("categories") or []
            if isinstance(c, dict) and isinstance(c.get("id"), (int, str))}


def _label_finder(ytvis: dict):
    """annotation -> its category's name (``object`` when its category is not listed)."""
    names = _category_names(ytvis)

    def label(ann: dict) -> str:
        category = ann.get("category_id")
        return names.get(category, CATEGORY_FALLBACK) if isinstance(category, (int, str)) else CATEGORY_FALLBACK

    return label


def ytvis_to_cocovid(ytvis: dict) -> dict:
    """A YouTube-VIS dict -> COCO-VID: one image per frame, one annotation per visible box, ids unique across the
    file; ``instance_id`` is the YouTube-VIS annotation (track) id."""
    images, annotations, image_of = [], [], {}
    for video in ytvis["videos"]:
        for frame, file_name in enumerate(video.get("file_names") or []):
            images.append({"id": len(images) + 1, "video_id": video["id"], "frame_id": frame, "file_name": file_name,
                           "width": video.get("width"), "height": video.get("height")})
            image_of[video["id"], frame] = len(images)
    tracks_of: dict[object, list[dict]] = {}
    for ann in ytvis["annotations"]:
        tracks_of.setdefault(ann["video_id"], []).append(ann)
    for video in ytvis["videos"]:
        tracks = tracks_of.get(video["id"], [])
        for frame in range(len(video.get("file_names") or [])):
            for track in tracks:
                boxes = track.get("bboxes") or []
                box = boxes[frame] if frame < len(boxes) else None
                if box is None:
                    continue
                annotations.append({"id": len(annotations) + 1, "image_id": image_of[video["id"], frame],
                                    "video_id": video["id"], "instance_id": track["id"],
                                    "category_id": track.get("category_id"), "bbox": box,
                                    "area": float(box[2]) * float(box[3]), "iscrowd": 0})
    videos = [{k: v for k, v in video.items() if k != "file_names"} for video in ytvis["videos"]]
    return {"videos": videos, "images": images, "annotations": annotations, "categories": ytvis["categories"]}


def _replace(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``; an existing ``out`` (checked and allowed before) is moved aside first
    and removed only once the new one is in place."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.absolute().parent / f".{out.name}.replaced-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


__all__ = ["MergeResult", "find_sequences", "merge_datasets", "read_sequence", "ytvis_to_cocovid"]
