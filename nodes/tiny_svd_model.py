"""The tiny SVD as ComfyUI's native objects: ``MODEL`` (an SVD_img2vid ModelPatcher), ``CLIP_VISION`` and ``VAE``.

Built with ComfyUI's own pieces, so every stock node treats them as it treats the real SVD:

* the UNet: ComfyUI's detection reads the UNet config from the state dict (``detect_unet_config``), an
  ``SVD_img2vid`` model config at the tiny width (:func:`_tiny_svd_config`; ComfyUI's own list knows SVD at width 320
  only, and is left untouched) builds the model, and ComfyUI picks its dtype and devices as its own loader does;
* the VAE: ``comfy.sd.VAE`` on the TAESD-layout state dict (ComfyUI's TAESD VAE);
* the image encoder: ``comfy.clip_vision.ClipVisionModel`` built from the encoder's own ``config.json``.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

from ..data.errors import InvalidInputError

SOURCE = "Load Tiny SVD"
PREFIX = "model.diffusion_model."
_cache: dict = {}
_cache_lock = threading.Lock()


def _tiny_svd_config(unet_config: dict) -> type:
    import comfy.supported_models

    base = comfy.supported_models.SVD_img2vid
    width = int(unet_config["block_out_channels"][0])
    context = int(unet_config["cross_attention_dim"])
    head_dim = width // int(unet_config["num_attention_heads"][0])

    class TinySVD(base):
        unet_config = dict(base.unet_config, model_channels=width, context_dim=context)  # noqa: RUF012
        unet_extra_config = dict(base.unet_extra_config, num_head_channels=head_dim)  # noqa: RUF012

    return TinySVD


def _call(fn, *args, **kwargs):
    """``fn`` with the keyword arguments its signature (in this ComfyUI version) accepts."""
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return fn(*args, **kwargs)


def load_model(parts: dict[str, Any]) -> Any:
    """The UNet as an SVD_img2vid ModelPatcher, dtype and devices chosen by ComfyUI as for any diffusion model."""
    import comfy.model_detection
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.utils

    sd = {k[len(PREFIX):]: v for k, v in parts["unet"].items() if k.startswith(PREFIX)}
    detected = _call(comfy.model_detection.detect_unet_config, sd, "")
    config_class = _tiny_svd_config(parts["unet_config"])
    if detected is None or not config_class.matches(detected):
        raise InvalidInputError("ComfyUI does not read the tiny SVD UNet as an SVD img2vid model.",
                                fix="update ComfyUI, or report the ComfyUI version.", source=SOURCE)
    model_config = config_class(detected)
    load_device, offload_device = mm.get_torch_device(), mm.unet_offload_device()
    weight_dtype = comfy.utils.weight_dtype(sd) if hasattr(comfy.utils, "weight_dtype") else None
    dtype = _call(mm.unet_dtype, model_params=comfy.utils.calculate_parameters(sd),
                  supported_dtypes=list(model_config.supported_inference_dtypes), weight_dtype=weight_dtype)
    manual_cast = mm.unet_manual_cast(dtype, load_device, model_config.supported_inference_dtypes)
    model_config.set_inference_dtype(dtype, manual_cast)
    model = model_config.get_model(sd, "").to(offload_device)
    model.load_model_weights(sd, "")
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def load_vae(parts: dict[str, Any]) -> Any:
    import comfy.sd

    return comfy.sd.VAE(sd=dict(parts["vae"]))


def load_clip_vision(parts: dict[str, Any]) -> Any:
    import comfy.clip_vision

    clip = comfy.clip_vision.ClipVisionModel(parts["clip_vision_config"])
    missing, _ = clip.load_sd(dict(parts["clip_vision"]))
    if missing:
        raise InvalidInputError(f"the image encoder's weights lack {missing[:3]}.", source=SOURCE)
    return clip


def load_tiny_svd(folder: str | Path | None = None) -> tuple[Any, Any, Any]:
    """(MODEL, CLIP_VISION, VAE) of the tiny SVD in ``folder`` (default: the pack's); cached per folder and file
    times, so a second workflow run reuses the loaded models."""
    from ..models.tiny_svd.files import WEIGHTS, comfyui_parts

    folder = Path(folder or WEIGHTS)
    try:
        key = (str(folder), *(p.stat().st_mtime_ns for p in sorted(folder.glob("*/*.safetensors"))))
    except OSError:
        key = None
    with _cache_lock:
        if key is not None and _cache.get("key") == key:
            return _cache["models"]
        parts = comfyui_parts(folder)
        models = (load_model(parts), load_clip_vision(parts), load_vae(parts))
        if key is not None:
            _cache.clear()
            _cache.update(key=key, models=models)
        return models
