"""Run a ComfyUI workflow headlessly: load (UI or API format), override inputs, validate, execute, collect outputs.

>>> result = run_workflow("example_workflows/svd_trackdiffusion.json", overrides=["KSampler.steps=4"], out="out")
>>> results = run_batch("workflow.json", "tracklets/", out="out")     # out/<file stem>/ per tracklet file

Validation is ComfyUI's own ``execution.validate_prompt``; any node error refuses the whole run (ComfyUI would run
the outputs that did validate). Execution is ComfyUI's ``execution.PromptExecutor`` with a stand-in for the server
that forwards progress to a callback (the CLI draws one terminal line). With ``out``, ComfyUI's output and temp
folders point into a hidden staging folder beside ``out`` while the workflow runs; the files the output nodes write
(images, animations, latents, previews under ``previews/``) plus ``prompt.json`` (the API prompt that ran) and
``outputs.json`` (what each output node reported, file paths relative to the folder) are moved into place, and the
staging folder is renamed to ``out`` only when everything succeeded. An ``out`` that exists and is not empty is
refused before anything runs. Without ``out`` the files stay where ComfyUI writes them (its output folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ...data.errors import InvalidInputError, TrackDiffusionError
from .convert import input_names, is_api_format, to_api_prompt

TRACKLETS_NODE = "LoadTracklets"
TRACKLETS_INPUT = "source"
CLIENT_ID = "trackdiffusion-runner"
PREVIEWS = "previews"


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
    """One executed prompt: the API prompt, each output node's UI output, the files written."""

    prompt: dict
    outputs: dict
    files: list[Path] = field(default_factory=list)
    out_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    name: str = ""


# ------------------------------------------------------------------------------------------- loading and overrides


def load_workflow(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InvalidInputError("file not found.", fix="check the workflow path.", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read the file ({exc}).", source=str(path)) from None
    except ValueError as exc:
        raise InvalidInputError(f"not valid JSON ({exc}).", fix="give a workflow saved or exported from ComfyUI.",
                                source=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidInputError("not a ComfyUI workflow (the JSON is not an object).", source=str(path))
    return data


def parse_value(text: str):
    """``--set`` values: JSON when they parse as JSON (numbers, true/false, lists, quoted strings), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def find_node(prompt: Mapping, selector: str) -> str:
    """The id of the node a selector names: its id, else its title, else its type; each must be unique."""
    if selector in prompt:
        return selector
    for key, label in ((lambda e: (e.get("_meta") or {}).get("title"), "title"), (lambda e: e.get("class_type"),
                                                                                    "type")):
        hits = [node_id for node_id, entry in prompt.items() if key(entry) == selector]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidInputError(f"{len(hits)} nodes have the {label} {selector!r} (ids {', '.join(hits)}).",
                                    fix="use the node id instead.", source="--set")
    raise InvalidInputError(f"no node has the id, title or type {selector!r}.",
                            fix="nodes: " + ", ".join(f"{i} {e.get('class_type')}" for i, e in prompt.items()),
                            source="--set")


def apply_overrides(prompt: dict, overrides: Iterable[str], node_infos: Mapping | None = None) -> dict:
    """Apply ``NODE.INPUT=VALUE`` overrides in place (and return the prompt).

    NODE is a node id, title or type (unique); the split between NODE and INPUT is the first ``.`` after which the
    left part names a node, so titles with dots work. With ``node_infos`` the input must exist on the node.
    """
    for text in overrides:
        target, sep, raw = text.partition("=")
        if not sep or "." not in target:
            raise InvalidInputError(f"{text!r} is not NODE.INPUT=VALUE.", fix="e.g. --set KSampler.steps=4 or "
                                    "--set 3.source=tracks.json.", source="--set")
        node_id = name = None
        error = None
        for i, ch in enumerate(target):
            if ch != ".":
                continue
            try:
                node_id, name = find_node(prompt, target[:i]), target[i + 1:]
                break
            except InvalidInputError as exc:
                error = error or exc
        if node_id is None:
            raise error
        entry = prompt[node_id]
        info = node_infos.get(entry["class_type"]) if node_infos is not None else None
        if info is not None:
            names = input_names(info)
            if name not in names:
                raise InvalidInputError(f"node {node_id} ({entry['class_type']}) has no input {name!r}.",
                                        fix=f"its inputs: {', '.join(names)}.", source="--set")
        value = parse_value(raw)
        entry.setdefault("inputs", {})[name] = {"__value__": value} if isinstance(value, list) else value
    return prompt


# ------------------------------------------------------------------------------------------------------ progress


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
def _quiet_execution_logs(enabled: bool):
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


# -------------------------------------------------------------------------------------------------------- runner


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _file_entries(ui: Mapping) -> list[dict]:
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


def _move_tree(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    for item in sorted(src.rglob("*")):
        if item.is_file() or item.is_symlink():
            target = dst / item.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(item), str(target))
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True, exist_ok=True)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError("the output folder exists and is not empty.", fix="give a new folder (or empty "
                                "this one); nothing was run.", source=str(out))


class Runner:
    """Validates and executes API prompts on a started ComfyUI (:func:`comfy_env.start_comfyui`)."""

    def __init__(self, runtime, progress: Callable[[str, object], None] | None = None, quiet: bool = True):
        self.runtime = runtime
        self.progress = progress
        self.quiet = quiet

    # -- preparation
    def prepare(self, workflow: Mapping, overrides: Iterable[str] = ()) -> tuple[dict, list[str]]:
        """UI or API workflow + overrides -> API prompt (and conversion warnings)."""
        warnings: list[str] = []
        infos = self.runtime.node_infos()
        prompt = to_api_prompt(workflow, infos, warnings)
        apply_overrides(prompt, overrides, infos)
        return prompt, warnings

    def validate(self, prompt: dict, source: str | None = None) -> list[str]:
        """ComfyUI's validation; the output node ids, or WorkflowInvalid listing every node error."""
        import asyncio

        unknown = [(node_id, entry.get("class_type"), f"unknown node type {entry.get('class_type')!r}")
                   for node_id, entry in prompt.items()
                   if entry.get("class_type") not in self.runtime.nodes.NODE_CLASS_MAPPINGS]
        if unknown:
            raise WorkflowInvalid(unknown, fix=f"install the custom node packs that provide them into the ComfyUI at "
                                  f"{self.runtime.path}.", source=source)
        with _quiet_execution_logs(self.quiet):
            valid, error, outputs, node_errors = asyncio.run(
                self.runtime.execution.validate_prompt(str(uuid.uuid4()), prompt, None))
        if valid and not node_errors:
            return list(outputs)
        problems, errors = [], []
        for node_id, entry in sorted(node_errors.items(), key=lambda kv: str(kv[0])):
            for err in entry.get("errors", []):
                details = f": {err['details']}" if err.get("details") else ""
                problems.append((str(node_id), entry.get("class_type"), f"{err.get('message')}{details}"))
                errors.append((str(node_id), entry.get("class_type"), err))
        if not problems and error:
            if error.get("type") == "prompt_no_outputs":
                message = ("the workflow has no output node (SaveImage, SaveAnimatedWEBP, SaveLatent, PreviewImage, ...): "
                           "nothing would run.")
                problems.append((None, None, message))
            else:
                problems.append((None, None, f"{error.get('message')}: {error.get('details')}".rstrip(": ")))
        missing_files = any("not in" in m or "Invalid image file" in m for _, _, m in problems)
        fix = ("put the missing model files in ComfyUI's models folders (and images in its input folder), or pick "
               "installed ones with --set NODE.INPUT=VALUE.") if missing_files else None
        raise WorkflowInvalid(problems, fix=fix, source=source, errors=errors)

    def _reachable(self, prompt: dict, outputs: list[str]) -> int:
        seen, stack = set(), list(outputs)
        while stack:
            node_id = stack.pop()
            if node_id in seen or node_id not in prompt:
                continue
            seen.add(node_id)
            for value in (prompt[node_id].get("inputs") or {}).values():
                if isinstance(value, list) and len(value) == 2:
                    stack.append(str(value[0]))
        return len(seen)

    def execute(self, executor, prompt: dict, outputs: list[str], label: str = "",
                source: str | None = None) -> tuple[dict, set[str]]:
        """Run one validated prompt; (UI outputs per node, ids of nodes served from the cache)."""
        events: list[tuple[str, object]] = []
        line = self.progress if isinstance(self.progress, ProgressLine) else None
        if line is not None:
            line.start(prompt, self._reachable(prompt, outputs), label)

        def forward(event, data):
            events.append((event, data))
            if self.progress is not None:
                self.progress(event, data)

        executor.server.callback = forward
        with _quiet_execution_logs(self.quiet):
            executor.execute(prompt, str(uuid.uuid4()), {"client_id": CLIENT_ID}, outputs)
        if line is not None:
            line.finish()
        for event, data in executor.status_messages:
            if event == "execution_error":
                raise WorkflowFailed(str(data.get("node_id")), str(data.get("node_type")),
                                     str(data.get("exception_message", "")),
                                     exception_type=str(data.get("exception_type", "")),
                                     traceback="".join(data.get("traceback") or []), source=source)
            if event == "execution_interrupted":
                raise WorkflowFailed(str(data.get("node_id")), str(data.get("node_type")), "interrupted",
                                     source=source)
        cached = set()
        for event, data in executor.status_messages:
            if event == "execution_cached":
                cached |= {str(n) for n in data.get("nodes", [])}
        return dict(executor.history_result.get("outputs", {})), cached

    def new_executor(self):
        execution = self.runtime.execution
        return execution.PromptExecutor(StubServer(), cache_type=execution.CacheType.CLASSIC,
                                        cache_args={"lru": 0, "ram": 0})

    # -- whole runs
    def run(self, jobs: list[tuple[str, dict, list[str]]], out: Path | None,
            subfolders: bool) -> list[RunResult]:
        """Validate every job, then execute them in order with one executor (models load once).

        jobs: ``(name, workflow, overrides)``; with ``subfolders`` each job's files go to ``out/<name>/``.
        """
        if out is not None:
            _check_out(out)
        prepared = []
        for name, workflow, overrides in jobs:
            prompt, warnings = self.prepare(workflow, overrides)
            prepared.append((name, prompt, warnings))
        # Every job is validated before the first one runs.
        validated = [(name, prompt, warnings, self.validate(prompt, source=name or None))
                     for name, prompt, warnings in prepared]
        if out is None:
            return [self._run_in_place(name, prompt, warnings, outputs) for name, prompt, warnings, outputs in
                    validated]
        return self._run_staged(validated, out, subfolders)

    def _run_in_place(self, name, prompt, warnings, outputs) -> RunResult:
        executor = self.new_executor()
        ui, _ = self.execute(executor, prompt, outputs, label=name, source=name or None)
        fp = self.runtime.folder_paths
        files = []
        for entries in ui.values():
            for entry in _file_entries(entries):
                root = fp.get_temp_directory() if entry.get("type") == "temp" else fp.get_output_directory()
                files.append(Path(root) / entry.get("subfolder", "") / entry["filename"])
        return RunResult(prompt, ui, files, None, warnings, name)

    def _run_staged(self, validated, out: Path, subfolders: bool) -> list[RunResult]:
        fp = self.runtime.folder_paths
        out = out.absolute()
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        comfy_out, comfy_temp = staging / ".comfy_output", staging / ".comfy_temp"
        comfy_out.mkdir(parents=True)
        comfy_temp.mkdir()
        saved = fp.get_output_directory(), fp.get_temp_directory()
        results = []
        previous: dict[str, list[tuple[Path, Path]]] = {}  # node id -> (file, path relative to its job folder)
        try:
            fp.set_output_directory(str(comfy_out))
            fp.set_temp_directory(str(comfy_temp))
            executor = self.new_executor()
            for name, prompt, warnings, outputs in validated:
                job_dir = staging / name if subfolders else staging
                job_dir.mkdir(parents=True, exist_ok=True)
                ui, cached = self.execute(executor, prompt, outputs, label=name, source=name or None)
                _move_tree(comfy_out, job_dir)
                _move_tree(comfy_temp, job_dir / PREVIEWS)
                record, files = {}, []
                for node_id, node_ui in ui.items():
                    node_files = []
                    for entry in _file_entries(node_ui):
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
                                       "files": [r.as_posix() for _, r in node_files], "ui": _json_safe(node_ui)}
                (job_dir / "prompt.json").write_text(json.dumps(prompt, indent=1) + "\n")
                (job_dir / "outputs.json").write_text(json.dumps(record, indent=1) + "\n")
                results.append(RunResult(prompt, ui, files, job_dir, warnings, name))
            shutil.rmtree(comfy_out, ignore_errors=True)
            shutil.rmtree(comfy_temp, ignore_errors=True)
            _check_out(out)
            if out.exists():
                out.rmdir()
            staging.rename(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            fp.set_output_directory(saved[0])
            fp.set_temp_directory(saved[1])
        for result in results:
            result.out_dir = out / result.out_dir.relative_to(staging)
            result.files = [out / p.relative_to(staging) for p in result.files]
        return results


# ------------------------------------------------------------------------------------------------ the entry points


def _workflow(workflow) -> tuple[dict, str]:
    if isinstance(workflow, (str, os.PathLike)):
        return load_workflow(workflow), str(workflow)
    if not isinstance(workflow, Mapping):
        raise InvalidInputError("the workflow must be a path or a parsed JSON object.")
    return dict(workflow), "workflow"


def batch_files(folder: str | os.PathLike) -> list[Path]:
    """The tracklet files of a ``--batch`` folder (non-hidden regular files, sorted); stems must be unique."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError("not a folder.", fix="give a folder of tracklet files.", source=str(folder))
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InvalidInputError("the folder holds no files.", fix="put tracklet files in it.", source=str(folder))
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise InvalidInputError(f"{stems[p.stem].name} and {p.name} would share the output folder {p.stem}/.",
                                    fix="rename one of them.", source=str(folder))
        stems[p.stem] = p
    return files


def run_workflow(workflow, *, comfyui=None, overrides: Iterable[str] = (), out=None, progress=None,
                 base_directory=None, cpu: bool | None = None, quiet: bool = True) -> RunResult:
    """Run a workflow (path or parsed JSON, UI or API format) once. See the module docstring."""
    from .comfy_env import start_comfyui

    data, _name = _workflow(workflow)
    if out is not None:
        _check_out(Path(out))
    runtime = start_comfyui(comfyui, base_directory=base_directory, cpu=cpu, quiet=quiet)
    runner = Runner(runtime, progress, quiet)
    return runner.run([("", data, list(overrides))], None if out is None else Path(out), subfolders=False)[0]


def run_batch(workflow, tracklets_dir, *, out, comfyui=None, overrides: Iterable[str] = (), progress=None,
              base_directory=None, cpu: bool | None = None, quiet: bool = True) -> list[RunResult]:
    """Run a workflow once per tracklet file in ``tracklets_dir``, with every LoadTracklets node's ``source`` set to
    that file; outputs go to ``out/<file stem>/``. All runs validate before the first one executes; if one fails,
    nothing is written."""
    from .comfy_env import start_comfyui

    if out is None:
        raise InvalidInputError("a batch run needs an output folder.", fix="add --out DIR.")
    data, _name = _workflow(workflow)
    files = batch_files(tracklets_dir)
    _check_out(Path(out))
    runtime = start_comfyui(comfyui, base_directory=base_directory, cpu=cpu, quiet=quiet)
    runner = Runner(runtime, progress, quiet)
    prompt, _ = runner.prepare(data, ())
    targets = [node_id for node_id, entry in prompt.items() if entry.get("class_type") == TRACKLETS_NODE]
    if not targets:
        raise InvalidInputError(f"the workflow has no {TRACKLETS_NODE} node, so --batch has nothing to set.",
                                fix=f"add a {TRACKLETS_NODE} node feeding the tracklets.", source=_name)
    jobs = [(f.stem, data, [*overrides, *(f"{t}.{TRACKLETS_INPUT}={json.dumps(str(f.resolve()))}"
                                          for t in targets)]) for f in files]
    return runner.run(jobs, Path(out), subfolders=True)


__all__ = ["ProgressLine", "RunResult", "Runner", "StubServer", "WorkflowFailed", "WorkflowInvalid",
           "apply_overrides", "batch_files", "find_node", "is_api_format", "load_workflow", "parse_value",
           "run_batch", "run_workflow"]
