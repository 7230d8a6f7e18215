"""What the user sees while a prompt runs: the one-line progress display, the stand-in server that forwards
ComfyUI's progress events to it, and the filter that keeps ComfyUI's own error logs quiet (the runner reports them)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable


class ProgressLine:
    """Draws ``[k/n] #id Type  step/total`` on one terminal line (or one line per node when not a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.prompt: dict = {}
        self.total = 0
        self.done = 0
        self.label = ""
        self.current: str | None = None
        self.dirty = False

    def start(self, prompt: dict, total: int, label: str = "") -> None:
        self.prompt, self.total, self.done, self.label, self.current = prompt, total, 0, label, None

    def _show(self, text: str) -> None:
        prefix = f"{self.label}: " if self.label else ""
        if self.tty:
            self.stream.write("\r\x1b[K" + prefix + text)
            self.dirty = True
        else:
            self.stream.write(prefix + text + "\n")
        self.stream.flush()

    def _node(self, node_id) -> str:
        entry = self.prompt.get(str(node_id)) or {}
        return f"#{node_id} {entry.get('class_type', '?')}"

    def __call__(self, event: str, data) -> None:
        if not isinstance(data, dict):
            return
        if event == "execution_cached":
            self.done += len([n for n in data.get("nodes", []) if n in self.prompt])
        elif event == "executing" and data.get("node") is not None:
            self.current = data["node"]
            self.done += 1
            self._show(f"[{min(self.done, self.total)}/{self.total}] {self._node(self.current)}")
        elif event == "progress_state" and self.tty:
            for node_id, state in (data.get("nodes") or {}).items():
                if state.get("state") == "running" and (state.get("max") or 0) > 1:
                    self._show(f"[{min(self.done, self.total)}/{self.total}] {self._node(node_id)}  "
                               f"{int(state['value'])}/{int(state['max'])}")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            self.finish()

    def finish(self) -> None:
        if self.tty and self.dirty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.dirty = False


class StubServer:
    """What ``PromptExecutor`` and its progress handler use of a ``PromptServer``; events go to ``callback``."""

    def __init__(self, callback: Callable[[str, object], None] | None = None):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}
        self.callback = callback

    def send_sync(self, event, data, sid=None):
        if self.callback is not None and isinstance(event, str):
            self.callback(event, data)

    def queue_updated(self):
        pass


class _DropComfyExecutionLogs(logging.Filter):
    """ComfyUI logs validation errors and node tracebacks from execution.py; the runner reports them itself."""

    def filter(self, record):
        return not (record.levelno >= logging.WARNING and os.path.basename(record.pathname) == "execution.py")


@contextlib.contextmanager
def quiet_execution_logs(enabled: bool):
    if not enabled:
        yield
        return
    flt = _DropComfyExecutionLogs()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


__all__ = ["ProgressLine", "StubServer", "quiet_execution_logs"]
