"""Run a ComfyUI workflow headlessly: load (UI or API format), override inputs, validate, execute, collect outputs.

>>> result = run_workflow("example_workflows/TrackDiffusion - boxes steer SVD.json", overrides=["KSampler.steps=4"],
...                       out="out")
>>> results = run_batch("workflow.json", "tracklets/", out="out")     # out/<file stem>/ per tracklet file
>>> results = run_batch("workflow.json", "tracklets/", out="out", shard="2/4")   # every 4th file from the 2nd

Validation is ComfyUI's own ``execution.validate_prompt``; any node error refuses the whole run (ComfyUI would run
the outputs that did validate). Execution is ComfyUI's ``execution.PromptExecutor`` with a stand-in for the server
that forwards progress to a callback (the CLI draws one terminal line). With ``out``, ComfyUI's output and temp
folders point into a hidden staging folder beside ``out`` while the workflow runs; the files the output nodes write
(images, animations, latents, previews under ``previews/``) plus ``prompt.json`` (the API prompt that ran) and
``outputs.json`` (what each output node reported, file paths relative to the folder) are moved into place, and the
staging folder is renamed to ``out`` only when everything succeeded. An ``out`` that exists and is not empty is
refused before anything runs. Without ``out`` the files stay where ComfyUI writes them (its output folder).

A batch with ``shard`` runs only that shard's files (:mod:`.shards`: sorted by name, dealt round-robin, K from 1) and
publishes each item to ``out/<stem>/`` as soon as it finished, with a completion marker written last; ``out`` may
already hold other shards' items, and items finished by an earlier run are skipped (a half-finished one is redone).

This module holds the two entry points and their inputs (workflow files, batch folders); the pieces they use:
:mod:`.overrides` (``--set``), :mod:`.executor` (:class:`Runner`: validation, execution, staging), :mod:`.progress`
(the progress line, the stand-in server), :mod:`.outputs` (collecting the files), :mod:`.results` (the result and
the two failures). Their public names are importable from here too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ...data.errors import InvalidInputError
from .convert import is_api_format
from .executor import Runner
from .outputs import check_out
from .overrides import apply_overrides, find_node, parse_value
from .progress import ProgressLine, StubServer
from .results import RunResult, WorkflowFailed, WorkflowInvalid
from .shards import Shard, finished_files, parse_shard, shard_files

TRACKLETS_NODE = "LoadTracklets"
TRACKLETS_INPUT = "source"


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
        check_out(Path(out))
    runtime = start_comfyui(comfyui, base_directory=base_directory, cpu=cpu, quiet=quiet)
    runner = Runner(runtime, progress, quiet)
    return runner.run([("", data, list(overrides))], None if out is None else Path(out), subfolders=False)[0]


def run_batch(workflow, tracklets_dir, *, out, comfyui=None, overrides: Iterable[str] = (), progress=None,
              base_directory=None, cpu: bool | None = None, quiet: bool = True,
              shard: Shard | str | None = None) -> list[RunResult]:
    """Run a workflow once per tracklet file in ``tracklets_dir``, with every LoadTracklets node's ``source`` set to
    that file; outputs go to ``out/<file stem>/``. All runs validate before the first one executes; if one fails,
    nothing is written.

    ``shard`` (``"K/N"``, K from 1, or a :class:`Shard`): only that shard's files, each item published as it
    finishes, finished items skipped (see the module docstring). Its results list every file of the shard, in
    order; the skipped ones have ``skipped=True``."""
    from .comfy_env import start_comfyui

    if out is None:
        raise InvalidInputError("a batch run needs an output folder.", fix="add --out DIR.")
    if shard is not None:
        shard = parse_shard(shard)
    data, _name = _workflow(workflow)
    files = batch_files(tracklets_dir)
    finished: dict[str, list[Path]] = {}
    if shard is None:
        check_out(Path(out))
    else:
        if Path(out).exists() and not Path(out).is_dir():
            raise InvalidInputError("the output folder is a file.", fix="give a folder (shards share it).",
                                    source=str(out))
        files = shard_files(files, shard)
        for f in files:
            done = finished_files(Path(out) / f.stem, f)
            if done is not None:
                finished[f.stem] = done
        if len(finished) == len(files):  # nothing left to run: ComfyUI need not even start
            return [_skipped(f.stem, Path(out), finished) for f in files]
    runtime = start_comfyui(comfyui, base_directory=base_directory, cpu=cpu, quiet=quiet)
    runner = Runner(runtime, progress, quiet)
    prompt, _ = runner.prepare(data, ())
    targets = [node_id for node_id, entry in prompt.items() if entry.get("class_type") == TRACKLETS_NODE]
    if not targets:
        raise InvalidInputError(f"the workflow has no {TRACKLETS_NODE} node, so --batch has nothing to set.",
                                fix=f"add a {TRACKLETS_NODE} node feeding the tracklets.", source=_name)
    jobs = [(f.stem, data, [*overrides, *(f"{t}.{TRACKLETS_INPUT}={json.dumps(str(f.resolve()))}"
                                          for t in targets)]) for f in files if f.stem not in finished]
    # Load Tracklets reads only ComfyUI's input folder (a server's safety); the batch folder is the local user's own
    # choice, so it is trusted for this run, in this process only
    loader = runtime.nodes.NODE_CLASS_MAPPINGS[TRACKLETS_NODE]
    before = loader.trusted_folders
    loader.trusted_folders = (*before, Path(os.path.realpath(tracklets_dir)))
    try:
        if shard is None:
            return runner.run(jobs, Path(out), subfolders=True)
        ran = {r.name: r for r in runner.run_items(jobs, Path(out), {f.stem: f for f in files}, shard)}
    finally:
        loader.trusted_folders = before
    return [ran[f.stem] if f.stem in ran else _skipped(f.stem, Path(out), finished) for f in files]


def _skipped(name: str, out: Path, finished: dict[str, list[Path]]) -> RunResult:
    return RunResult({}, {}, finished[name], (out / name).absolute(), [], name, skipped=True)


__all__ = ["ProgressLine", "RunResult", "Runner", "Shard", "StubServer", "WorkflowFailed", "WorkflowInvalid",
           "apply_overrides", "batch_files", "find_node", "is_api_format", "load_workflow", "parse_shard",
           "parse_value", "run_batch", "run_workflow", "shard_files"]
