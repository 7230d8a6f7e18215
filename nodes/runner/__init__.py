"""Headless workflow runner: run ComfyUI workflows (UI or API format) in-process, from Python or ``trackdiffusion
run``.

* :mod:`.convert` - UI-format (canvas) workflow -> API-format prompt from node definitions (no ComfyUI needed);
* :mod:`.comfy_env` - find ComfyUI and start it in this process with this pack loaded as a custom node;
* :mod:`.run` - the entry points: :func:`run_workflow` and :func:`run_batch` (batches over tracklet files);
* :mod:`.overrides` - ``--set NODE.INPUT=VALUE`` on an API prompt;
* :mod:`.executor` - :class:`Runner`: validation and execution on a started ComfyUI, the staging folder;
* :mod:`.progress` - the progress line and the stand-in server that feeds it;
* :mod:`.outputs` - collecting the files output nodes wrote (``prompt.json``, ``outputs.json``);
* :mod:`.results` - :class:`RunResult`, :class:`WorkflowInvalid`, :class:`WorkflowFailed`;
* :mod:`.cli` - the ``run`` command.

Importing this package never imports ComfyUI or torch; ComfyUI starts on the first run.
"""

from .convert import is_api_format, is_ui_format, to_api_prompt
from .overrides import apply_overrides
from .results import RunResult, WorkflowFailed, WorkflowInvalid
from .run import load_workflow, run_batch, run_workflow

__all__ = ["RunResult", "WorkflowFailed", "WorkflowInvalid", "apply_overrides", "is_api_format", "is_ui_format",
           "load_workflow", "run_batch", "run_workflow", "to_api_prompt"]
