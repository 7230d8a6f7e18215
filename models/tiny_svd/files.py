"""The tiny SVD's files: one folder in diffusers' layout (``unet/``, ``vae/``, ``image_encoder/``, each a
``config.json`` and fp16 safetensors weights), read by both backends.

* :func:`init_folder` writes a fresh one (a randomly initialised UNet, a trained VAE, the stand-in image encoder):
  what ``trackdiffusion train svd-base`` trains;
* :func:`load` gives the diffusers / transformers modules (the diffusers backend, training);
* :func:`comfyui_parts` gives the state dicts ComfyUI builds its native MODEL / VAE / CLIP_VISION from.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...data.errors import InvalidInputError
from .config import UNET_CONFIG

WEIGHTS = Path(__file__).resolve().parent / "weights"  #: the folder shipped in the pack
#: TrackDiffusion trained on the tiny SVD, converted by ``trackdiffusion weights convert`` from its official-layout
#: ``svd_stage2/unet``; ComfyUI lists this folder under ``models/trackdiffusion`` (Load TrackDiffusion Adapter)
ADAPTERS = Path(__file__).resolve().parent / "adapters"
TRACKDIFFUSION_ADAPTER = "tiny_svd_trackdiffusion_stage2_fp16.safetensors"
PARTS = ("unet", "vae", "image_encoder")
SOURCE = "tiny SVD"


@dataclass
class TinySVD:
    unet: Any  #: diffusers UNetSpatioTemporalConditionModel
    vae: Any  #: diffusers AutoencoderTiny
    image_encoder: Any  #: transformers CLIPVisionModelWithProjection
    folder: Path


def init_folder(out: str | Path, vae_folder: str | Path, seed: int = 0) -> Path:
    """Write ``out`` with a fresh UNet (diffusers' initialisation under ``seed``), the VAE of ``vae_folder`` and the
    stand-in image encoder, all in float32 (training reads them); refuses an existing ``out/unet``."""
    from diffusers import UNetSpatioTemporalConditionModel

    from .image_encoder import build_image_encoder

    out = Path(out)
    if (out / "unet").exists():
        raise InvalidInputError("already holds a unet/ folder.", fix="choose another folder.", source=str(out))
    vae_folder = Path(vae_folder)
    if not (vae_folder / "config.json").is_file():
        raise InvalidInputError("no config.json: not a VAE folder.", source=str(vae_folder))
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetSpatioTemporalConditionModel(**UNET_CONFIG)
    unet.save_pretrained(str(out / "unet"), safe_serialization=True)
    shutil.copytree(vae_folder, out / "vae", dirs_exist_ok=True)
    build_image_encoder().save_pretrained(str(out / "image_encoder"), safe_serialization=True)
    return out


def write_fp16(model: Any, folder: Path) -> None:
    """``save_pretrained`` in float16 (the shipped files), leaving ``model`` as it was."""
    dtype = next(model.parameters()).dtype
    model.to(torch.float16).save_pretrained(str(folder), safe_serialization=True)
    model.to(dtype)


def write_shipped(unet_folder: str | Path, vae_folder: str | Path, image_encoder_folder: str | Path,
                  out: str | Path = WEIGHTS) -> Path:
    """The shipped folder (``out``) from trained parts: each written in float16 beside it, then renamed into place."""
    from diffusers import AutoencoderTiny, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionModelWithProjection

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaders = {"unet": (UNetSpatioTemporalConditionModel, unet_folder), "vae": (AutoencoderTiny, vae_folder),
               "image_encoder": (CLIPVisionModelWithProjection, image_encoder_folder)}
    for part, (cls, folder) in loaders.items():
        model = cls.from_pretrained(str(folder), local_files_only=True)
        tmp, target, old = out / f".{part}.tmp", out / part, out / f".{part}.old"
        shutil.rmtree(tmp, ignore_errors=True)
        write_fp16(model, tmp)
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    return out


def _check(folder: Path) -> None:
    missing = [p for p in PARTS if not (folder / p / "config.json").is_file()]
    if missing:
        raise InvalidInputError(f"not a tiny SVD folder: {', '.join(m + '/config.json' for m in missing)} missing.",
                                fix="give the folder holding unet/, vae/ and image_encoder/.", source=str(folder))


def load(folder: str | Path = WEIGHTS, dtype: torch.dtype = torch.float32) -> TinySVD:
    """The three modules of the folder, in ``dtype``, in eval mode."""
    from diffusers import AutoencoderTiny, UNetSpatioTemporalConditionModel
    from diffusers.utils import logging as diffusers_logging
    from transformers import CLIPVisionModelWithProjection
    from transformers.utils import logging as transformers_logging

    folder = Path(folder)
    _check(folder)
    # diffusers' advice about `accelerate` and fp32 modules concerns big models, not these: keep the console clean
    levels = diffusers_logging.get_verbosity(), transformers_logging.get_verbosity()
    bar = transformers_logging.is_progress_bar_enabled()
    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        unet = UNetSpatioTemporalConditionModel.from_pretrained(str(folder / "unet"), local_files_only=True)
        vae = AutoencoderTiny.from_pretrained(str(folder / "vae"), local_files_only=True)
        enc = CLIPVisionModelWithProjection.from_pretrained(str(folder / "image_encoder"), local_files_only=True)
        modules = [m.to(dtype).eval().requires_grad_(False) for m in (unet, vae, enc)]
    finally:
        diffusers_logging.set_verbosity(levels[0])
        transformers_logging.set_verbosity(levels[1])
        if bar:
            transformers_logging.enable_progress_bar()
    return TinySVD(*modules, folder)


def _safetensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if len(files) != 1:
        raise InvalidInputError(f"expected one .safetensors file, found {len(files)}.", source=str(folder))
    return load_file(str(files[0]))


def comfyui_parts(folder: str | Path = WEIGHTS) -> dict[str, Any]:
    """What ComfyUI needs, without importing it: ``unet`` (the UNet's state dict in ComfyUI naming, under
    ``model.diffusion_model.``), ``vae`` (TAESD layout) and ``clip_vision`` (state dict) with
    ``clip_vision_config`` (the path of the JSON config ComfyUI's ``ClipVisionModel`` reads). Needs no diffusers:
    ComfyUI does not install it."""
    from ..svd.naming import diffusers_to_comfyui
    from .vae import comfyui_state_dict

    folder = Path(folder)
    _check(folder)
    unet = {"model.diffusion_model." + diffusers_to_comfyui(k): v for k, v in _safetensors(folder / "unet").items()}
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    vae = comfyui_state_dict(_safetensors(folder / "vae"), float(vae_config["scaling_factor"]))
    clip = {k: v for k, v in _safetensors(folder / "image_encoder").items() if not k.endswith("position_ids")}
    config = json.loads((folder / "unet" / "config.json").read_text())
    return {"unet": unet, "vae": vae, "clip_vision": clip,
            "clip_vision_config": str(folder / "image_encoder" / "config.json"), "unet_config": config}
