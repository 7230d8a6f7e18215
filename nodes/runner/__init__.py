"""Headless workflow runner: run ComfyUI workflows (UI or API format) in-process, from Python or ``trackdiffusion
run``.

* :mod:`.convert` - UI-format (canvas) workflow -> API-format prompt from node definitions (no ComfyUI needed);
* :mod:`.comfy_env` - find ComfyUI and start it in this process with this pack loaded as a custom node;
* :mod:`.run` - overrides, validation, execution, output collection, batches over tracklet files;
* :mod:`.cli` - the ``run`` command.

Importing this package never imports ComfyUI or torch; ComfyUI starts on the first run.
"""

from .convert import is_api_format, is_ui_format, to_api_prompt
from .run import RunResult, WorkflowFailed, WorkflowInvalid, apply_overrides, load_workflow, run_batch, run_workflow

__all__ = ["RunResult", "WorkflowFailed", "WorkflowInvalid", "apply_overrides", "is_api_format", "is_ui_format",
           "load_workflow", "run_batch", "run_workflow", "to_api_prompt"]
