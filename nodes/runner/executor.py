"""The :class:`Runner`: on a started ComfyUI, turns workflows into API prompts, validates them with ComfyUI's
``execution.validate_prompt`` (any node error refuses the whole run) and executes them with its ``PromptExecutor``,
in ComfyUI's output folder or in a staging folder that becomes ``out`` only when every job succeeded."""

from __future__ import annotations

import inspect
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .convert import to_api_prompt
from .outputs import check_out, collect_job, in_place_files
from .overrides import apply_overrides
from .progress import ProgressLine, StubServer, quiet_execution_logs
from .results import RunResult, WorkflowFailed, WorkflowInvalid
from .shards import (
    Shard,
    publish_item,
    remove_leftovers,
    scratch_folder,
    staging_folder,
    write_finished_marker,
)

CLIENT_ID = "trackdiffusion-runner"


def executor_options(execution) -> dict:
    """The keyword arguments for this ComfyUI's ``PromptExecutor``: the classic cache (outputs kept until the graph
    changes) with no LRU and no RAM-pressure cache, asked for in whatever form this version takes. ``cache_args``
    came after ComfyUI 0.3.64 (whose executor takes ``cache_type`` and ``cache_size``); an argument this version
    does not know is not passed, so its default (the classic cache, unbounded) applies."""
    params = inspect.signature(execution.PromptExecutor.__init__).parameters
    options: dict = {}
    cache_type = getattr(execution, "CacheType", None)
    if "cache_type" in params and cache_type is not None and hasattr(cache_type, "CLASSIC"):
        options["cache_type"] = cache_type.CLASSIC
    if "cache_args" in params:
        options["cache_args"] = {"lru": 0, "ram": 0}
    return options


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
        with quiet_execution_logs(self.quiet):
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
        with quiet_execution_logs(self.quiet):
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
        return execution.PromptExecutor(StubServer(), **executor_options(execution))

    # -- whole runs
    def run(self, jobs: list[tuple[str, dict, list[str]]], out: Path | None,
            subfolders: bool) -> list[RunResult]:
        """Validate every job, then execute them in order with one executor (models load once).

        jobs: ``(name, workflow, overrides)``; with ``subfolders`` each job's files go to ``out/<name>/``.
        """
        if out is not None:
            check_out(out)
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

    def run_items(self, jobs: list[tuple[str, dict, list[str]]], out: Path, sources: dict[str, Path],
                  shard: Shard | None = None) -> list[RunResult]:
        """Validate every job, then execute them in order, each published as ``out/<name>/`` the moment it finished,
        with its completion marker (:mod:`.shards`): what ``--shard`` runs do, where several processes fill one
        ``out`` and a later run skips the finished items. A failure stops the run; the items before it stay.

        sources: job name -> its tracklet file (recorded, with its sha256, in the marker).
        """
        prepared = [(name, *self.prepare(workflow, overrides)) for name, workflow, overrides in jobs]
        validated = [(name, prompt, warnings, self.validate(prompt, source=name))
                     for name, prompt, warnings in prepared]
        fp = self.runtime.folder_paths
        out = out.absolute()
        out.mkdir(parents=True, exist_ok=True)
        # ComfyUI's output and temp folders for the whole run: save nodes keep the folder they were made with, and
        # the executor keeps the nodes (and the models) from item to item. Each item's files move from here to its
        # own staging folder. The folder is this shard's; what a killed run of it left is removed first.
        scratch = scratch_folder(out, shard)
        shutil.rmtree(scratch, ignore_errors=True)
        comfy_out, comfy_temp = scratch / "output", scratch / "temp"
        saved = fp.get_output_directory(), fp.get_temp_directory()
        results = []
        previous: dict[str, list[tuple[Path, Path]]] = {}  # node id -> (file, path relative to its job folder)
        try:
            comfy_out.mkdir(parents=True)
            comfy_temp.mkdir()
            fp.set_output_directory(str(comfy_out))
            fp.set_temp_directory(str(comfy_temp))
            executor = self.new_executor()
            for name, prompt, warnings, outputs in validated:
                remove_leftovers(out, name)
                staging = staging_folder(out, name)
                target = out / name
                try:
                    staging.mkdir()
                    ui, cached = self.execute(executor, prompt, outputs, label=name, source=name)
                    files = collect_job(staging, comfy_out, comfy_temp, prompt, ui, cached, previous)
                    write_finished_marker(staging, sources[name], shard, files)  # last: the item is complete
                    publish_item(staging, target)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise

                def moved(path: Path, staging=staging, target=target) -> Path:
                    return target / path.relative_to(staging) if path.is_relative_to(staging) else path

                # a later item served from the cache copies this item's files: they now live in out/<name>/
                previous = {node: [(moved(p), rel) for p, rel in entries] for node, entries in previous.items()}
                results.append(RunResult(prompt, ui, [moved(p) for p in files], target, warnings, name))
        finally:
            fp.set_output_directory(saved[0])
            fp.set_temp_directory(saved[1])
            shutil.rmtree(scratch, ignore_errors=True)
        return results

    def _run_in_place(self, name, prompt, warnings, outputs) -> RunResult:
        executor = self.new_executor()
        ui, _ = self.execute(executor, prompt, outputs, label=name, source=name or None)
        return RunResult(prompt, ui, in_place_files(ui, self.runtime.folder_paths), None, warnings, name)

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
                files = collect_job(job_dir, comfy_out, comfy_temp, prompt, ui, cached, previous)
                results.append(RunResult(prompt, ui, files, job_dir, warnings, name))
            shutil.rmtree(comfy_out, ignore_errors=True)
            shutil.rmtree(comfy_temp, ignore_errors=True)
            check_out(out)
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


__all__ = ["CLIENT_ID", "Runner"]
