"""Sharded, resumable batches (``trackdiffusion run --batch DIR --shard K/N``): which tracklet files a shard runs, and
when an item counts as finished.

* The partition: the batch folder's files sorted by name are dealt round-robin, file ``i`` (0-based, in that order)
  to shard ``i % N + 1``. K counts from 1 (``1/4`` ... ``4/4``). Every shard lists the same folder, so the shards of
  one N are disjoint and together cover every file, whatever machine runs them.
* An item ``out/<stem>/`` is *finished* when its completion marker (:data:`FINISHED_MARKER`) is there, names the
  same tracklet file content (sha256) and every file it lists still exists. The marker is written last, atomically,
  into the item's staging folder, which is then renamed to ``out/<stem>/`` in one step; a folder without a valid
  marker (a copy cut short, an older run's leftovers) is half-finished and gets redone.

Nothing here imports ComfyUI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...data.atomic import atomic_write_text
from ...data.errors import InvalidInputError

#: the completion marker inside a finished item's folder (hidden: the item's own files are what a user looks at)
FINISHED_MARKER = ".finished.json"
MARKER_FORMAT = "trackdiffusion.batch-item"
#: prefixes of the hidden folders beside the items: a running item's staging folder, a half-finished one on its way out
STAGING_TAG, STALE_TAG = ".partial-", ".stale-"

_SHARD = re.compile(r"^\s*(-?\d+)\s*/\s*(-?\d+)\s*$")
_FIX = ("give --shard K/N with 1 <= K <= N, e.g. --shard 1/4 ... --shard 4/4 (K counts from 1; with a 0-based index "
        "such as Slurm's --array=0-3 pass $((SLURM_ARRAY_TASK_ID + 1))/4).")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text) -> Shard:
    """``"K/N"`` -> :class:`Shard`; anything else, K outside 1..N included, is an :class:`InvalidInputError` that says
    what to pass."""
    if isinstance(text, Shard):
        return text
    if isinstance(text, tuple) and len(text) == 2:
        text = f"{text[0]}/{text[1]}"
    found = _SHARD.match(str(text)) if isinstance(text, str) else None
    if found is None:
        raise InvalidInputError(f"--shard {str(text)[:40]!r} is not K/N.", fix=_FIX)
    index, count = int(found[1]), int(found[2])
    if count < 1:
        raise InvalidInputError(f"--shard {index}/{count}: the number of shards N must be at least 1.", fix=_FIX)
    if index == 0:
        raise InvalidInputError(f"--shard 0/{count}: K counts from 1, so 0 is no shard.", fix=_FIX)
    if not 1 <= index <= count:
        raise InvalidInputError(f"--shard {index}/{count}: K must be between 1 and {count}.", fix=_FIX)
    return Shard(index, count)


def shard_files(files: list[Path], shard: Shard) -> list[Path]:
    """The files of ``shard``: sorted by name, every N-th from the K-th (round-robin keeps the shards' sizes within
    one of each other)."""
    ordered = sorted(files, key=lambda p: p.name)
    return ordered[shard.index - 1::shard.count]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def finished_files(item_dir: Path, source: Path) -> list[Path] | None:
    """The files of a finished item (see the module docstring), or None when ``item_dir`` is not finished."""
    try:
        record = json.loads((item_dir / FINISHED_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != MARKER_FORMAT:
        return None
    files = record.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    try:
        if record.get("sha256") != file_sha256(source):
            return None  # the tracklet file changed since: the item's outputs are of another input
    except OSError:
        return None
    paths = [item_dir / f for f in files]
    if not all(p.is_file() for p in [*paths, item_dir / "prompt.json", item_dir / "outputs.json"]):
        return None
    return paths


def write_finished_marker(item_dir: Path, source: Path, shard: Shard | None, files: list[Path]) -> None:
    """Write the completion marker into ``item_dir`` (the item's staging folder), after everything else. ``files``:
    what the output nodes wrote, in their order (``prompt.json`` and ``outputs.json`` are required beside them)."""
    listed = dict.fromkeys(p.relative_to(item_dir).as_posix() for p in files)  # a cached node's file: once
    record = {"format": MARKER_FORMAT, "version": 1, "source": source.name, "sha256": file_sha256(source),
              "shard": None if shard is None else str(shard), "files": list(listed)}
    atomic_write_text(item_dir / FINISHED_MARKER, json.dumps(record, indent=1) + "\n")


def staging_folder(out: Path, name: str) -> Path:
    return out / f".{name}{STAGING_TAG}{uuid.uuid4().hex[:8]}"


def scratch_folder(out: Path, shard: Shard | None) -> Path:
    """Where a shard's run points ComfyUI's output and temp folders: one per shard, so only a killed run of the same
    shard can have left it (and the next run of that shard removes it)."""
    return out / (".scratch" if shard is None else f".shard-{shard.index}-of-{shard.count}.scratch")


def remove_leftovers(out: Path, name: str) -> None:
    """Remove what a killed run of item ``name`` left beside the items (its staging folders). Only the shard that
    owns the item ever writes them, so they are never another process's work in progress."""
    # the whole name must match: item "a"'s leftovers are never item "a.partial-b"'s
    own = re.compile(re.escape(f".{name}") + f"({re.escape(STAGING_TAG)}|{re.escape(STALE_TAG)})[0-9a-f]{{8}}")
    for entry in out.iterdir() if out.is_dir() else ():
        if own.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def publish_item(staging: Path, target: Path) -> None:
    """Rename a finished item's staging folder to ``target``; a half-finished ``target`` is moved aside first and
    removed after."""
    stale = None
    if target.exists() or target.is_symlink():
        stale = target.parent / f".{target.name}{STALE_TAG}{uuid.uuid4().hex[:8]}"
        os.rename(target, stale)
    try:
        os.rename(staging, target)
    except OSError:
        raise InvalidInputError("appeared while this item ran: is the same shard running twice?",
                                fix="run each shard once at a time; the other run's result was kept.",
                                source=str(target)) from None
    if stale is not None:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


__all__ = ["FINISHED_MARKER", "Shard", "file_sha256", "finished_files", "parse_shard", "publish_item",
           "remove_leftovers", "scratch_folder", "shard_files", "staging_folder", "write_finished_marker"]
