"""Session-wide guard: the tests never write into the ComfyUI tree they run (``../shared/ComfyUI`` is read-only in CI;
ComfyUI runs with a temporary ``--base-directory``). Any file created or modified there during the session fails it."""

from __future__ import annotations

import os
import time

from support.comfyui import find_comfyui

_WATCH: dict = {}


def _snapshot(root) -> dict[str, float]:
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git",)]
        for name in files:
            path = os.path.join(folder, name)
            try:
                out[path] = os.lstat(path).st_mtime
            except OSError:
                pass
    return out


def pytest_sessionstart(session):
    root = find_comfyui()
    if root is not None:
        _WATCH.update(root=root, files=_snapshot(root), started=time.time())


def pytest_sessionfinish(session, exitstatus):
    if not _WATCH:
        return
    before, after = _WATCH["files"], _snapshot(_WATCH["root"])
    changed = sorted(p for p, mtime in after.items() if before.get(p) != mtime)
    if changed:
        listing = "\n  ".join(changed[:20]) + (f"\n  ... {len(changed) - 20} more" if len(changed) > 20 else "")
        session.config.get_terminal_writer().line(
            f"\nFAILED: the tests wrote into the ComfyUI tree {_WATCH['root']} (it must stay untouched; run ComfyUI "
            f"with a temporary --base-directory):\n  {listing}", red=True)
        session.exitstatus = 1
