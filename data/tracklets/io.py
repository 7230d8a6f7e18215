"""Loading any supported tracklet format (guessing it when not given) and saving atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import InvalidInputError
from .formats import (
    find_seqinfo,
    is_cocovid,
    read_cocovid,
    read_kj,
    read_mot,
    read_seqinfo,
    read_tracks,
    read_ytvis,
    write_cocovid,
    write_mot,
    write_ytvis,
)
from .model import FORMAT_NAME, MAX_FRAMES, Tracklets, bounded_int, parse_tracklets_dict

FORMATS = ("json", "mot", "ytvis", "cocovid", "tracks", "kj")
EXPORT_FORMATS = ("json", "mot", "ytvis", "cocovid")


def guess_format(data) -> str:
    """Format name of parsed JSON data (dict/list) or of raw text."""
    if isinstance(data, dict):
        if data.get("format") == FORMAT_NAME or "objects" in data:
            return "json"
        if "videos" in data and "annotations" in data:
            return "cocovid" if is_cocovid(data) else "ytvis"
        if "track_path" in data:
            return "tracks"
    elif isinstance(data, list):
        return "kj"
    elif isinstance(data, str):
        return "mot"
    raise InvalidInputError(
        "could not tell the tracklet format.",
        fix=f"pass format= one of {', '.join(FORMATS)} (CLI: --from).", source="tracklets input")


PATH_SUFFIXES = (".json", ".txt", ".csv")


def _as_existing_file(text: str) -> Path | None:
    """The file ``text`` names, if it is one (a name too long for the file system is simply not a file)."""
    if "\n" in text or len(text) > 4096:
        return None
    try:
        path = Path(text)
        return path if path.is_file() else None
    except (OSError, ValueError):
        return None


def looks_like_path(text: str) -> bool:
    """A missing file the user meant to name, as opposed to a one-line document (say, a single MOT row)."""
    stripped = text.strip()
    return ("\n" not in stripped and not stripped.startswith(("{", "["))
            and (stripped.lower().endswith(PATH_SUFFIXES) or ("/" in stripped and "," not in stripped)))


def _a_folder(path: Path) -> InvalidInputError:
    return InvalidInputError("this is a folder, not a tracklets file.",
                             fix="give one file in it (our JSON, MOT gt.txt, YouTube-VIS / COCO-VID JSON, ...).",
                             source=str(path))


def load(path_or_text, format: str | None = None, *, strict: bool = False, width=None, height=None,
         num_frames=None, fps=None, video=None, box_size=64.0, text_is_never_a_path: bool = False) -> Tracklets:
    """Read tracklets from a file path, a text, a parsed dict/list, a TRACKS dict or a ``Tracklets``.

    Args:
        format: one of ``FORMATS``; guessed from the content when None.
        strict: boxes reaching outside the canvas raise instead of being clamped and reported.
        width, height: canvas size, needed for MOT (unless seqinfo.ini is beside the file), TRACKS and KJNodes.
        num_frames: frame count; for MOT the default is the last frame, for KJNodes the spline resamples to it.
        video: YouTube-VIS video id or name when the file holds several.
        box_size: box size in pixels for point formats (TRACKS, KJNodes).
        text_is_never_a_path: a ``str`` is always the document's text, never a file name (a server node passes
            the files it has confined to its folders as ``Path`` objects and everything else as text).
    """
    if format is not None and format not in FORMATS:
        raise InvalidInputError(f"unknown format {format!r}.", fix=f"use one of {', '.join(FORMATS)}.",
                                source="tracklets input")
    if isinstance(path_or_text, Tracklets):
        return path_or_text
    if num_frames is not None:
        num_frames = bounded_int(num_frames, "num_frames", "tracklets input", 1, MAX_FRAMES)
    source = "tracklets input"
    text = None
    seqinfo = {}
    path = None
    if isinstance(path_or_text, os.PathLike):
        path = Path(path_or_text)
        if path.is_dir():
            raise _a_folder(path)
        if not path.is_file():
            raise InvalidInputError("file not found.", fix="check the path (relative paths start from the current "
                                    "folder).", source=str(path))
    elif isinstance(path_or_text, str) and text_is_never_a_path:
        text = path_or_text
    elif isinstance(path_or_text, str):
        path = _as_existing_file(path_or_text)
        if path is None and looks_like_path(path_or_text) and Path(path_or_text.strip()).expanduser().is_dir():
            raise _a_folder(Path(path_or_text.strip()))
        if path is None and looks_like_path(path_or_text):
            raise InvalidInputError("file not found.", fix="check the path (relative paths start from the current "
                                    "folder), or paste the file's text instead.", source=path_or_text.strip())
        if path is None:
            text = path_or_text
    if path is not None:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (UnicodeDecodeError, OSError) as exc:
            raise InvalidInputError(f"cannot read the file as UTF-8 text ({exc}).", source=source) from None
        ini = find_seqinfo(path)
        if ini is not None and format in (None, "mot") and path.suffix.lower() == ".txt":
            seqinfo = read_seqinfo(ini)
    data = path_or_text if text is None else None

    if text is not None:
        stripped = text.lstrip()
        if format in ("mot", "kj"):
            data = text  # these readers parse text themselves (KJNodes strings may use single quotes)
        elif stripped.startswith(("{", "[")):
            try:
                data = json.loads(text)
            except (ValueError, RecursionError) as exc:  # ValueError: also ints over 4300 digits
                raise InvalidInputError(f"not valid JSON ({exc}).", fix="check the text is a complete JSON "
                                        "document (tracklets, YouTube-VIS, TRACKS or KJNodes coordinates).",
                                        source=source) from None
        else:
            data = text
    fmt = format or guess_format(data)

    if fmt == "json":
        tracklets = parse_tracklets_dict(data, strict=strict, source=source)
        return tracklets if num_frames is None else tracklets.resample(num_frames=num_frames)
    if fmt == "mot":
        if not isinstance(data, str):
            raise InvalidInputError("MOT input must be text.", source=source)
        d = read_mot(data, width=width if width is not None else seqinfo.get("width"),
                     height=height if height is not None else seqinfo.get("height"),
                     num_frames=num_frames if num_frames is not None else seqinfo.get("num_frames"),
                     fps=fps if fps is not None else seqinfo.get("fps"), source=source)
        return parse_tracklets_dict(d, strict=strict, source=source)
    if fmt == "ytvis":
        if not isinstance(data, dict):
            raise InvalidInputError("YouTube-VIS input must be a JSON object.", source=source)
        tracklets = parse_tracklets_dict(read_ytvis(data, video=video, fps=fps, source=source), strict=strict,
                                         source=source)
    elif fmt == "cocovid":
        if not isinstance(data, dict):
            raise InvalidInputError("COCO-VID input must be a JSON object.", source=source)
        tracklets = parse_tracklets_dict(read_cocovid(data, video=video, fps=fps, source=source), strict=strict,
                                         source=source)
    elif fmt == "tracks":
        tracklets = parse_tracklets_dict(read_tracks(data, width=width, height=height, box_size=box_size, fps=fps,
                                                     source=source), strict=strict, source=source)
    else:
        tracklets = parse_tracklets_dict(read_kj(data, width=width, height=height, box_size=box_size, fps=fps,
                                                 source=source), strict=strict, source=source)
    return tracklets if num_frames is None else tracklets.resample(num_frames=num_frames)


def dumps(tracklets: Tracklets, format: str = "json") -> str:
    """Text of ``tracklets`` in an export format."""
    if format == "json":
        return tracklets.to_json()
    if format == "mot":
        return write_mot(tracklets)
    if format == "ytvis":
        return json.dumps(write_ytvis(tracklets), indent=1)
    if format == "cocovid":
        return json.dumps(write_cocovid(tracklets), indent=1)
    raise InvalidInputError(f"cannot export to {format!r}.", fix=f"use one of {', '.join(EXPORT_FORMATS)}.",
                            source="export")


def save(tracklets: Tracklets, path, format: str | None = None) -> Path:
    """Write ``tracklets`` to ``path`` (format from ``format`` or the suffix: .txt -> MOT, else our JSON)."""
    path = Path(path)
    fmt = format or ("mot" if path.suffix.lower() == ".txt" else "json")
    atomic_write_text(path, dumps(tracklets, fmt))
    return path
