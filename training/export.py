"""The adapter file a run exports (what the ComfyUI nodes load): its name in the output folder and writing it
(atomically) from the trained attachment; the file formats themselves are in :mod:`.checkpoints`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from . import checkpoints as ckpt
from .config import TrainConfig


def adapter_path(config: TrainConfig, out: str | Path) -> Path:
    """The adapter file of a run with these (resolved) settings in the output folder ``out``."""
    if config.model == "svd-base":
        return Path(out) / "unet"  # the whole trained UNet, a diffusers folder
    name = (f"trackdiffusion_svd_stage{config.stage}.safetensors" if config.model == "trackdiffusion-svd"
            else "trackgo_adapter.safetensors")
    return Path(out) / name


def export_unet(unet: Any, folder: Path) -> Path:
    """``unet.save_pretrained(folder)`` written beside it and renamed into place (a reader never sees half of it)."""
    return _write_folder(folder, lambda tmp: unet.save_pretrained(str(tmp), safe_serialization=True))


def _write_folder(folder: Path, write: Any) -> Path:
    """``write(tmp)`` fills a temporary folder beside ``folder``, which then replaces ``folder`` by renames."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def official_layout_path(out: str | Path, stage: int) -> Path:
    """Where a TrackDiffusion-SVD run also writes its model in the official release layout."""
    return Path(out) / f"svd_stage{int(stage)}" / "unet"


def export_official_layout(unet: Any, out: str | Path, stage: int, step: int) -> Path:
    """The whole UNet with its TrackDiffusion modules at their official keys, as the official release ships it
    (``svd_stage<N>/unet``: ``config.json`` whose ``_name_or_path`` names the stage and step, and
    ``diffusion_pytorch_model.safetensors``): the file ``trackdiffusion weights convert`` takes."""
    import json

    folder = official_layout_path(out, stage)
    folder.parent.mkdir(parents=True, exist_ok=True)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items()
              if not k.startswith("_")}
    config.update(_class_name="UNetSpatioTemporalConditionModel",
                  _name_or_path=f"svd_stage{int(stage)}/checkpoint-{int(step)}")

    def write(tmp: Path) -> None:
        ckpt.write_safetensors(tmp / "diffusion_pytorch_model.safetensors", dict(unet.state_dict()), {"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=1, default=str), encoding="utf-8")

    return _write_folder(folder, write)


def export_adapter(attachment: Any, config: TrainConfig, out: str | Path, step: int, base: str) -> Path:
    """Write the adapter file of ``attachment`` after ``step`` steps on the base named ``base``; returns its path.
    ``svd-base``: ``attachment`` is the trained UNet, written as a diffusers folder."""
    if config.model == "svd-base":
        return export_unet(attachment, adapter_path(config, out))
    if config.model == "trackdiffusion-svd":
        tensors, metadata = ckpt.svd_delta(attachment, stage=config.stage, trained_steps=step, base=base)
        if step >= config.steps:  # the whole UNet (GBs for the real SVD): once, when the run is done
            export_official_layout(attachment.unet, out, config.stage, step)
    else:
        from ..models.trackgo.diffusers import adapter_file

        tensors, metadata = adapter_file(attachment.adapter, trained_steps=step)
    return ckpt.write_safetensors(adapter_path(config, out), tensors, metadata)
