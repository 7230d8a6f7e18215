"""The tiny SVD's VAE: TAESD's architecture (diffusers ``AutoencoderTiny``) at 32 channels, and its two homes.

Latent conventions (the same numbers as ComfyUI's SVD path, so both backends feed the UNet alike):

* ``e = encoder(x)`` for frames ``x`` in [-1, 1]: the encoder's own output;
* the UNet's latent ``z = e * scaling_factor`` (the config's ``scaling_factor``, chosen when the VAE was trained so
  that ``z`` has unit standard deviation over SynTrack frames); the decoder takes ``z / scaling_factor``;
* the image latent SVD concatenates is the unscaled VAE latent, ``z / 0.18215``: ComfyUI's ``VAE.encode`` output,
  which its SVD model concatenates as it is (``SVD_img2vid.extra_conds`` applies no latent format), as the official
  pipeline concatenates ``latent_dist.mode()``; only the noisy latent is ``z`` (SD's format: times 0.18215).

ComfyUI loads the same weights as its TAESD VAE (:func:`comfyui_state_dict`): the 32 channels are embedded in TAESD's
fixed 64 (the extra channels' weights and biases are zero, so they stay zero through every ReLU and skip), and
``vae_scale = 0.18215 / scaling_factor`` makes ComfyUI's ``VAE.encode`` return exactly ``z / 0.18215``.
"""

from __future__ import annotations

from typing import Any

import torch

from .config import SD_SCALE_FACTOR, VAE_CONFIG

TAESD_CHANNELS = 64  #: ComfyUI's TAESD width (fixed in its architecture)


def build_vae(scaling_factor: float = 1.0) -> Any:
    from diffusers import AutoencoderTiny

    return AutoencoderTiny(**VAE_CONFIG, scaling_factor=float(scaling_factor))


def encode(vae: Any, frames: torch.Tensor) -> torch.Tensor:
    """frames [N, 3, H, W] in [-1, 1] -> the UNet's latents z [N, 4, H/8, W/8]."""
    ref = next(vae.parameters())
    return vae.encoder(frames.to(ref)).float() * float(vae.config.scaling_factor)


def encode_condition(vae: Any, frames: torch.Tensor) -> torch.Tensor:
    """frames [N, 3, H, W] in [-1, 1] -> the image latent SVD concatenates (the unscaled VAE latent, z / 0.18215)."""
    return encode(vae, frames) / SD_SCALE_FACTOR


def decode(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The UNet's latents z [N, 4, h, w] -> frames [N, 3, 8h, 8w] in [-1, 1] (not clamped)."""
    ref = next(vae.parameters())
    return vae.decoder((latents / float(vae.config.scaling_factor)).to(ref)).float()


def _pad(t: torch.Tensor, out_width: int | None, in_width: int | None) -> torch.Tensor:
    """Zero-pad dim 0 to ``out_width`` and dim 1 to ``in_width`` (None: keep)."""
    shape = list(t.shape)
    if out_width is not None:
        shape[0] = out_width
    if in_width is not None and t.dim() > 1:
        shape[1] = in_width
    out = torch.zeros(shape, dtype=t.dtype)
    out[tuple(slice(0, s) for s in t.shape)] = t
    return out


def comfyui_state_dict(vae: Any, scaling_factor: float | None = None) -> dict[str, torch.Tensor]:
    """The VAE in ComfyUI's TAESD layout (``taesd_encoder.*``, ``taesd_decoder.*``, ``vae_scale``, ``vae_shift``).

    ``vae``: a diffusers ``AutoencoderTiny``, or its state dict with ``scaling_factor`` (its config's): key renames and
    zero padding only, so ComfyUI's loader needs no diffusers (ComfyUI does not install it)."""
    if isinstance(vae, dict):
        if scaling_factor is None:
            raise ValueError("a VAE state dict needs its config's scaling_factor")
        state = vae
    else:
        state = vae.state_dict()
        scaling_factor = float(vae.config.scaling_factor)
    width = TAESD_CHANNELS
    enc_last = max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    dec_last = max(int(k.split(".")[2]) for k in state if k.startswith("decoder.layers."))
    out = {}
    for key, value in state.items():
        part, _, index, *rest = key.split(".")
        i = int(index)
        if part == "encoder":
            name = f"taesd_encoder.{i}"
            first, last = i == 0, i == enc_last
        else:  # ComfyUI's decoder starts with its Clamp module: one index later
            name = f"taesd_decoder.{i + 1}"
            first, last = i == 0, i == dec_last
        out_w = None if last else width  # the last conv keeps its 4 (encoder) / 3 (decoder) outputs
        in_w = None if first else width  # the first conv keeps its 3 / 4 inputs
        out[".".join([name, *rest])] = _pad(value.detach().float(), out_w, in_w if value.dim() > 1 else None)
    out["vae_scale"] = torch.tensor(SD_SCALE_FACTOR / float(scaling_factor))
    out["vae_shift"] = torch.tensor(0.0)
    return out
