"""The example workflows' input files (``example_workflows/input/``: first frames, tracklet files) copied into
ComfyUI's input folder when ComfyUI loads the pack, so that a loaded example finds what its Load Image / Load
Tracklets nodes name. A file already there is never replaced (a user's file of the same name wins); nothing is
copied when ``TRACKDIFFUSION_NO_EXAMPLE_INPUTS=1`` (e.g. a shared server whose input folder is managed), or when
the pack has no ``example_workflows/input`` (an installation without the examples)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import folder_paths

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_workflows" / "input"
OPT_OUT = "TRACKDIFFUSION_NO_EXAMPLE_INPUTS"
log = logging.getLogger(__name__)


def copy_example_inputs(source: Path = EXAMPLE_INPUTS, input_dir: str | None = None) -> list[Path]:
    """Copy every file under ``source`` that ComfyUI's input folder lacks (same relative path); the copied paths.
    Problems (a read-only input folder) are logged in one line, never raised: the nodes work without the files."""
    if os.environ.get(OPT_OUT, "").strip() not in ("", "0") or not source.is_dir():
        return []
    target = Path(input_dir or folder_paths.get_input_directory())
    copied = []
    try:
        for path in sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith(".")):
            dest = target / path.relative_to(source)
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(f".{dest.name}.partial")
            shutil.copyfile(path, partial)
            os.replace(partial, dest)
            copied.append(dest)
    except OSError as exc:
        log.warning("[trackdiffusion] could not copy the example inputs into %s (%s); copy %s there by hand "
                    "to run the example workflows.", target, exc.strerror or exc, source)
    return copied
