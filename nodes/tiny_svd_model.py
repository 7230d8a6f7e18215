"""The tiny SVD as ComfyUI's native objects: ``MODEL`` (an SVD_img2vid ModelPatcher), ``CLIP_VISION`` and ``VAE``.

Everything goes through ComfyUI's own loaders, so every stock node treats them as it treats the real SVD:

* the UNet: ``comfy.sd.load_diffusion_model_state_dict`` with ComfyUI's own detection; ComfyUI's list of supported
  models knows SVD at width 320 only, so for the duration of the call (under a lock) it also holds
  :func:`_tiny_svd_config`, an ``SVD_img2vid`` entry at the tiny width that matches nothing else;
* the VAE: ``comfy.sd.VAE`` on the TAESD-layout state dict (ComfyUI's TAESD VAE);
* the image encoder: ``comfy.clip_vision.ClipVisionModel`` built from the encoder's own ``config.json``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..data.errors import InvalidInputError

SOURCE = "Load Tiny SVD"
_detection_lock = threading.Lock()
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


def load_model(parts: dict[str, Any]) -> Any:
    """The UNet as an SVD_img2vid ModelPatcher (ComfyUI picks its dtype and devices as for any model)."""
    import comfy.sd
    import comfy.supported_models

    entry = _tiny_svd_config(parts["unet_config"])
    with _detection_lock:
        comfy.supported_models.models.insert(0, entry)
        try:
            model = comfy.sd.load_diffusion_model_state_dict(dict(parts["unet"]))
        finally:
            comfy.supported_models.models.remove(entry)
    if model is None or type(model.model).__name__ != "SVD_img2vid":
        raise InvalidInputError("ComfyUI did not recognise the tiny SVD UNet as an SVD img2vid model.",
                                fix="update ComfyUI, or report the ComfyUI version.", source=SOURCE)
    return model


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
