"""The adapter file a run exports (what the ComfyUI nodes load): its name in the output folder and writing it
(atomically) from the trained attachment; the file formats themselves are in :mod:`.checkpoints`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import checkpoints as ckpt
from .config import TrainConfig


def adapter_path(config: TrainConfig, out: str | Path) -> Path:
    """The adapter file of a run with these (resolved) settings in the output folder ``out``."""
    name = (f"trackdiffusion_svd_stage{config.stage}.safetensors" if config.model == "trackdiffusion-svd"
            else "trackgo_adapter.safetensors")
    return Path(out) / name


def export_adapter(attachment: Any, config: TrainConfig, out: str | Path, step: int, base: str) -> Path:
    """Write the adapter file of ``attachment`` after ``step`` steps on the base named ``base``; returns its path."""
    if config.model == "trackdiffusion-svd":
        tensors, metadata = ckpt.svd_delta(attachment, stage=config.stage, trained_steps=step, base=base)
    else:
        from ..models.trackgo.diffusers import adapter_file

        tensors, metadata = adapter_file(attachment.adapter, trained_steps=step)
    return ckpt.write_safetensors(adapter_path(config, out), tensors, metadata)
