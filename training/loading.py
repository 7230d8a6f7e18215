"""Loading the models a run trains on or with: the base SVD UNet, its VAE and CLIP image encoder from diffusers
folders, the tiny random UNets' configs, safetensors files (``--init``), and the base's signature and description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..data.errors import InvalidInputError


def tiny_unet_config(kind: str, channels: int, frames: int) -> dict[str, Any]:
    """A small random ``UNetSpatioTemporalConditionModel`` config for smoke tests (``evaluation.md`` 3.6).

    ``small``: 2 levels (32, 64), attention at the first level only, 1 layer per block. ``svd-layout``: the real SVD
    block layout (4 levels, 2 resnets down / 3 up, 16 transformers) at widths (32, 64, 128, 128), so its deltas pass
    :func:`trackdiffusion.models.checkpoints.load_delta`'s full key check. Heads of 16 channels, cross-attention width 32.
    """
    common = {"in_channels": 2 * channels, "out_channels": channels, "addition_time_embed_dim": 8,
              "projection_class_embeddings_input_dim": 24, "cross_attention_dim": 32, "num_frames": frames}
    if kind == "small":
        return {**common, "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
                "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
                "block_out_channels": (32, 64), "layers_per_block": 1, "num_attention_heads": (2, 4)}
    return {**common, "block_out_channels": (32, 64, 128, 128), "num_attention_heads": (2, 4, 8, 8),
            "layers_per_block": 2}


def _model_folder(path: str, sub: str, what: str, fix: str) -> Path:
    p = Path(path)
    for candidate in (p, p / sub):
        if (candidate / "config.json").is_file():
            return candidate
    raise InvalidInputError(f"no config.json in this folder (nor in {sub}/): not a diffusers {what} folder.",
                            fix=fix, source=str(p))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"unreadable config.json ({exc}).", source=str(path)) from None
    return data if isinstance(data, dict) else {}


def load_base_unet(path: str) -> Any:
    from diffusers import UNetSpatioTemporalConditionModel

    folder = _model_folder(path, "unet", "UNet", "give the unet/ folder of a diffusers Stable Video Diffusion model "
                           "(config.json + diffusion_pytorch_model.safetensors).")
    cls = _read_json(folder / "config.json").get("_class_name")
    if cls != "UNetSpatioTemporalConditionModel":
        raise InvalidInputError(f"this is a {cls or 'unknown'} folder; training needs a diffusers "
                                "UNetSpatioTemporalConditionModel (Stable Video Diffusion).",
                                fix="give the unet/ folder of stabilityai/stable-video-diffusion-img2vid(-xt).",
                                source=str(folder))
    try:
        return UNetSpatioTemporalConditionModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"could not load the UNet ({str(exc)[:300]}).", source=str(folder)) from None


def load_vae(path: str) -> Any:
    import diffusers

    folder = _model_folder(path, "vae", "VAE", "give the vae/ folder of the SVD model.")
    cls = _read_json(folder / "config.json").get("_class_name")
    if cls not in ("AutoencoderKLTemporalDecoder", "AutoencoderKL", "AutoencoderTiny"):
        raise InvalidInputError(f"this is a {cls or 'unknown'} folder, not an SVD VAE.",
                                fix="give the vae/ folder of the SVD model (AutoencoderKLTemporalDecoder).",
                                source=str(folder))
    try:
        return getattr(diffusers, cls).from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"could not load the VAE ({str(exc)[:300]}).", source=str(folder)) from None


def load_image_encoder(path: str) -> Any:
    from transformers import CLIPVisionModelWithProjection

    folder = _model_folder(path, "image_encoder", "CLIP image encoder", "give the image_encoder/ folder of the SVD "
                           "model.")
    try:
        return CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"could not load the image encoder ({str(exc)[:300]}).", source=str(folder)) from None


def base_signature(unet: Any) -> dict[str, Any]:
    """The UNet's architecture (its config without names, sample size and frame count): what a checkpoint fits."""
    out = {}
    for key, value in dict(unet.config).items():
        if key.startswith("_") or key in ("sample_size", "num_frames"):
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return json.loads(json.dumps(out, default=str))


def describe_base(unet: Any, name: str) -> str:
    c = unet.config
    return (f"{name} (in_channels {c.in_channels}, out_channels {c.out_channels}, block_out_channels "
            f"{list(c.block_out_channels)}, cross_attention_dim {c.cross_attention_dim})")


def _load_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            names = list(fh.keys())
            return {k: fh.get_tensor(k) for k in names}, dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInputError(f"not a readable safetensors file ({exc}).", source=path) from None
