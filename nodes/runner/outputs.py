"""Collecting what output nodes wrote: the file entries in their UI output, moving ComfyUI's output and temp folders
into a job folder (temp files under ``previews/``), ``prompt.json`` and ``outputs.json`` beside them, and the check
that an ``out`` folder is new or empty."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from ...data.errors import InvalidInputError

PREVIEWS = "previews"


def json_safe(value):
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def file_entries(ui: Mapping) -> list[dict]:
    """The ``{"filename", "subfolder", "type"}`` dicts anywhere in a node's UI output."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if isinstance(value.get("filename"), str) and "type" in value:
                found.append(value)
            else:
                for v in value.values():
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(ui)
    return found


def move_tree(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    for item in sorted(src.rglob("*")):
        if item.is_file() or item.is_symlink():
            target = dst / item.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(item), str(target))
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True, exist_ok=True)


def check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError("the output folder exists and is not empty.", fix="give a new folder (or empty "
                                "this one); nothing was run.", source=str(out))


def in_place_files(ui: Mapping, folder_paths) -> list[Path]:
    """Where ComfyUI wrote the files of a run without ``out``: its output folder (its temp folder for previews)."""
    files = []
    for entries in ui.values():
        for entry in file_entries(entries):
            root = (folder_paths.get_temp_directory() if entry.get("type") == "temp"
                    else folder_paths.get_output_directory())
            files.append(Path(root) / entry.get("subfolder", "") / entry["filename"])
    return files


def collect_job(job_dir: Path, comfy_out: Path, comfy_temp: Path, prompt: dict, ui: dict, cached: set[str],
                previous: dict[str, list[tuple[Path, Path]]]) -> list[Path]:
    """Move one job's files from ComfyUI's (redirected) output and temp folders into ``job_dir`` and write its
    ``prompt.json`` and ``outputs.json``; the files, in output-node order.

    ``previous``: node id -> (file, path relative to its job folder) of the jobs before, updated here; a node served
    from the cache wrote nothing this time, so its files are copied from the job that wrote them.
    """
    move_tree(comfy_out, job_dir)
    move_tree(comfy_temp, job_dir / PREVIEWS)
    record, files = {}, []
    for node_id, node_ui in ui.items():
        node_files = []
        for entry in file_entries(node_ui):
            rel = Path(PREVIEWS if entry.get("type") == "temp" else "") / entry.get("subfolder", "") \
                / entry["filename"]
            path = job_dir / rel
            if not path.exists() and node_id in cached:
                # Served from the cache: the file was written for an earlier job; copy it.
                source = next((p for p, r in previous.get(node_id, []) if r == rel), None)
                if source is not None and source.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, path)
            node_files.append((path, rel))
        previous[node_id] = node_files
        files += [p for p, _ in node_files]
        entry = prompt.get(node_id, {})
        record[node_id] = {"class_type": entry.get("class_type"),
                           "title": (entry.get("_meta") or {}).get("title"),
                           "files": [r.as_posix() for _, r in node_files], "ui": json_safe(node_ui)}
    (job_dir / "prompt.json").write_text(json.dumps(prompt, indent=1) + "\n")
    (job_dir / "outputs.json").write_text(json.dumps(record, indent=1) + "\n")
    return files


__all__ = ["PREVIEWS", "check_out", "collect_job", "file_entries", "in_place_files", "json_safe", "move_tree"]
