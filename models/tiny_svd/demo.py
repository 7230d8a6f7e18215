"""`trackdiffusion demo` on the tiny SVD: TrackDiffusion's own path without ComfyUI. The shipped adapter (trained
here, exported as ``svd_stage2/unet``, converted by ``trackdiffusion weights convert``) is attached to the tiny SVD's
diffusers UNet (:func:`~trackdiffusion.models.svd.diffusers.attach_trackdiffusion_svd`, the official state dict) and
sampled by the diffusers backend, which repeats ComfyUI's graph (:mod:`.pipeline`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import files
from .config import FRAMES, HEIGHT, WIDTH


def adapter_path() -> Path:
    return files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER


def load_with_adapter(weights: Path | str = files.WEIGHTS, adapter: Path | str | None = None):
    """The tiny SVD (float32) with the TrackDiffusion modules attached and loaded: (model, attachment)."""
    from ...data.errors import InvalidInputError
    from ..checkpoints import load_delta
    from ..svd.diffusers import attach_trackdiffusion_svd

    adapter = Path(adapter) if adapter is not None else adapter_path()
    if not adapter.is_file():
        raise InvalidInputError("the tiny SVD's TrackDiffusion adapter is missing.",
                                fix="train it (bash dev/train_tiny_svd_trackdiffusion.sh RUNS writes it there) or "
                                "pass --adapter FILE (a converted svd_stage2 of the tiny SVD).", source=str(adapter))
    model = files.load(weights)
    attachment = attach_trackdiffusion_svd(model.unet)
    tensors, _ = load_delta(adapter)
    attachment.load_official_state_dict(tensors, include_unet=True)
    return model, attachment


def warn_if_cropped(image: np.ndarray, tracklets) -> None:
    """The first frame is centre-cropped to the model's square (as ComfyUI's SVD conditioning node does) while the
    boxes are scaled from their canvas: say so when the aspect ratios differ."""
    h, w = image.shape[:2]
    canvas = tracklets.width / tracklets.height
    if abs(w / h - canvas) > 0.01 * canvas:
        print(f"warning: the image is {w}x{h} and the tracklets' canvas {tracklets.width}x{tracklets.height}: the "
              f"image is centre-cropped to {WIDTH}x{HEIGHT} while the boxes are scaled, so they may not sit on the "
              "objects.", file=sys.stderr)


def generate(first_frame: np.ndarray, tracklets, *, frames: int = FRAMES, steps: int = 25, seed: int = 0,
             model_and_attachment=None, overflow: str = "error") -> np.ndarray:
    """A video [frames, 64, 64, 3] uint8 whose objects follow ``tracklets`` (resampled to ``frames``)."""
    from . import pipeline

    model, attachment = model_and_attachment or load_with_adapter()
    return pipeline.generate(model, first_frame, tracklets=tracklets, attachment=attachment, frames=frames,
                             steps=steps, seed=seed, overflow=overflow)


def generate_sgi2v(first_frame: np.ndarray, tracklets, *, frames: int = FRAMES, steps: int = 25, seed: int = 0,
                   model=None, config=None, report: list | None = None) -> np.ndarray:
    """A video [frames, 64, 64, 3] uint8 from the stock tiny SVD (no adapter) whose latent SG-I2V steers along
    ``tracklets`` (resampled to ``frames``); ``config`` an :class:`~trackdiffusion.models.guidance.sgi2v.SGI2VConfig`
    (default: SG-I2V's own settings, as the TrackDiffusion Sampler's)."""
    from ..guidance.sgi2v.diffusers import sgi2v_attached
    from . import pipeline

    model = model or files.load()
    tracklets = tracklets.resample(num_frames=frames)
    with sgi2v_attached(model.unet, tracklets, config, report=report) as guidance:
        return pipeline.generate(model, first_frame, frames=frames, steps=steps, seed=seed, guidance=guidance)
