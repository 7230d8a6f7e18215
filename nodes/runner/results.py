"""What a run hands back: :class:`RunResult` for each executed prompt, or one of the two failures (the workflow does
not validate, a node raised while it ran)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...data.errors import InvalidInputError, TrackDiffusionError


class WorkflowInvalid(InvalidInputError):
    """ComfyUI's validation refused the prompt. ``problems``: ``[(node_id, class_type, message)]``; ``errors``: the
    same as ``[(node_id, class_type, ComfyUI's error dict)]`` (type, message, details, extra_info)."""

    def __init__(self, problems: list[tuple[str | None, str | None, str]], *, fix: str | None = None,
                 source: str | None = None, errors: list[tuple[str | None, str | None, dict]] | None = None):
        self.problems = problems
        self.errors = errors or []
        lines = [f"node {n} ({t}): {m}" if n is not None else m for n, t, m in problems]
        super().__init__(f"the workflow does not validate ({len(problems)} problem"
                         f"{'s' if len(problems) != 1 else ''}):\n  " + "\n  ".join(lines), fix=fix, source=source)


class WorkflowFailed(TrackDiffusionError):
    """A node raised while the workflow ran."""

    def __init__(self, node_id: str, node_type: str, message: str, *, exception_type: str = "",
                 traceback: str = "", source: str | None = None):
        self.node_id, self.node_type, self.message = node_id, node_type, message
        self.exception_type, self.traceback, self.source = exception_type, traceback, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}node {node_id} ({node_type}) failed: {message.strip()}")


@dataclass
class RunResult:
    """One executed prompt: the API prompt, each output node's UI output, the files written. ``skipped``: a
    ``--shard`` item finished by an earlier run, not run again (``prompt`` and ``outputs`` are then empty; ``files``
    are the finished item's)."""

    prompt: dict
    outputs: dict
    files: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    name: str = ""
    skipped: bool = False


__all__ = ["RunResult", "WorkflowFailed", "WorkflowInvalid"]
