"""The settings of a ``trackdiffusion train`` run: :class:`TrainConfig`, its defaults and the checks that turn the
command line's values into a resolved configuration (or an InvalidInputError naming what is wrong)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.errors import InvalidInputError
from . import checkpoints as ckpt
from .distributed import launcher_mixed_precision
from .trackgo_losses import DEFAULT_LAMBDA_ATTN

SOURCE = "trackdiffusion train"
MODELS = ("trackdiffusion-svd", "trackgo", "svd-base")
TINY_KINDS = ("small", "svd-layout")
OFFICIAL_WARMUP = 750
#: TrackGo's A' threshold (``backends.diffusers_trackgo.DEFAULT_ALPHA``, the paper's 0.2)
TRACKGO_ALPHA = 0.2
DEFAULT_LR = {1: 2e-4, 2: 3e-5, "trackgo": 1e-4, "svd-base": 2e-4}
DEFAULT_SIZE = {"tiny": (32, 32), "base": (512, 320)}
#: settings that may change between a run and its resumption (everything else must match). How the global batch
#: (``batch``) is shared, over processes and accumulated micro-batches, is not a setting of the run: its clips, noise
#: and gradients are the same (see :mod:`.distributed`)
RESUMABLE = ("out", "resume", "save_every", "device", "progress", "keep", "gradient_checkpointing",
             "gradient_accumulation", "process_timeout")


def parse_size(size: Any) -> tuple[int, int]:
    """``"512x320"`` / ``(512, 320)`` -> (width, height)."""
    if isinstance(size, str):
        parts = size.lower().replace("*", "x").split("x")
        try:
            w, h = (int(p) for p in parts)
        except ValueError:
            raise InvalidInputError(f"size {size!r} is not WIDTHxHEIGHT.", fix="e.g. --size 512x320.",
                                    source=SOURCE) from None
    else:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError):
            raise InvalidInputError(f"size {size!r} is not (width, height).", source=SOURCE) from None
    if not (8 <= w <= 4096 and 8 <= h <= 4096):
        raise InvalidInputError(f"size {w}x{h} is outside 8..4096 pixels.", source=SOURCE)
    return w, h


def _positive_int(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}.", source=SOURCE)
    return int(value)


@dataclass
class TrainConfig:
    """Settings of one training run (the CLI's options; see :func:`train`)."""

    model: str
    data: str
    out: str
    base: str | None = None
    tiny: str | None = None
    vae: str | None = None
    image_encoder: str | None = None
    init: str | None = None
    stage: int | None = None
    steps: int = 1000
    #: the global batch: clips per optimizer step, over every process and micro-batch
    batch: int = 1
    #: micro-batches per process and step, whose gradients add up (``batch`` / (processes x this) clips each)
    gradient_accumulation: int = 1
    lr: float | None = None
    #: trackdiffusion-svd: learning rate of the base UNet's own layers in the trainable set (``conv_in``,
    #: ``conv_out``, mix factors); None: ``lr``, as officially (one LR for all); 0 freezes them (fusers and position
    #: net only). A lower one keeps a small base's appearance while the new modules learn at ``lr``.
    base_lr: float | None = None
    frames: int = 8
    size: Any = None
    seed: int = 0
    save_every: int = 500
    device: str | None = None
    resume: bool = False
    warmup: int | None = None
    lambda_attn: float = DEFAULT_LAMBDA_ATTN
    latent_channels: int | None = None
    grad_clip: float = 1.0
    weight_decay: float = 1e-2
    #: "no" or "bf16"; None: what ``accelerate launch`` was given, else "no"
    mixed_precision: str | None = None
    gradient_checkpointing: bool = False
    progress: bool = True
    keep: int = ckpt.KEEP
    #: several processes: seconds one waits for the others (a collective) before the run fails; None: torch's default
    process_timeout: float | None = None

    def resolved(self) -> TrainConfig:
        """A copy with defaults filled in and every value checked (InvalidInputError otherwise)."""
        c = replace(self)
        if c.model not in MODELS:
            raise InvalidInputError(f"unknown model {c.model!r}.", fix=f"use one of {', '.join(MODELS)}.",
                                    source=SOURCE)
        if (c.base is None) == (c.tiny is None):
            raise InvalidInputError("give exactly one of --base (a diffusers SVD unet folder) and --tiny.",
                                    source=SOURCE)
        if c.tiny is not None and c.tiny not in TINY_KINDS:
            raise InvalidInputError(f"unknown tiny model {c.tiny!r}.", fix=f"use one of {', '.join(TINY_KINDS)}.",
                                    source=SOURCE)
        if c.tiny is not None and (c.vae or c.image_encoder):
            raise InvalidInputError("--tiny trains on the pixel stand-in latent; --vae / --image-encoder need --base.",
                                    source=SOURCE)
        if c.latent_channels is not None and c.tiny is None:
            raise InvalidInputError("--latent-channels only applies to --tiny (a --base fixes its own channels).",
                                    source=SOURCE)
        if c.tiny is not None:
            c.latent_channels = 12 if c.latent_channels is None else c.latent_channels
            if c.latent_channels not in (4, 12):
                raise InvalidInputError(f"latent_channels must be 4 or 12, got {c.latent_channels!r}.",
                                        source=SOURCE)
        if c.model == "trackdiffusion-svd":
            c.stage = 1 if c.stage is None else c.stage
            if isinstance(c.stage, str) and c.stage.strip().isdigit():
                c.stage = int(c.stage)
            if c.stage not in (1, 2):
                raise InvalidInputError(f"stage must be 1 or 2, got {c.stage!r}.", source=SOURCE)
        elif c.stage is not None:
            raise InvalidInputError("--stage applies to trackdiffusion-svd only.", source=SOURCE)
        if c.model == "svd-base" and (c.base is None or c.vae is None):
            raise InvalidInputError("svd-base trains a whole SVD UNet on its VAE's latents: give --base (the unet/ "
                                    "folder to train, e.g. a fresh one from 'trackdiffusion tiny-svd init') and --vae.",
                                    source=SOURCE)
        c.steps = _positive_int(c.steps, "steps")
        c.batch = _positive_int(c.batch, "batch")
        c.gradient_accumulation = _positive_int(c.gradient_accumulation, "gradient_accumulation")
        c.frames = _positive_int(c.frames, "frames", 2)
        if c.model == "trackgo" and c.frames * TRACKGO_ALPHA <= 1:
            raise InvalidInputError(
                f"TrackGo needs more than {int(1 / TRACKGO_ALPHA)} frames: with {c.frames} a uniform trajectory "
                f"attention (1/{c.frames}) already reaches the mask threshold alpha = {TRACKGO_ALPHA} and masks the "
                "whole original branch.", fix="use --frames 8 or more (SVD: 14 or 25).", source=SOURCE)
        c.seed = _positive_int(c.seed, "seed", 0)
        c.save_every = _positive_int(c.save_every, "save_every")
        c.keep = _positive_int(c.keep, "keep")
        c.size = parse_size(c.size if c.size is not None else DEFAULT_SIZE["tiny" if c.tiny else "base"])
        default_lr = DEFAULT_LR[c.stage if c.model == "trackdiffusion-svd" else c.model]
        c.lr = float(default_lr if c.lr is None else c.lr)
        if c.base_lr is not None and c.model != "trackdiffusion-svd":
            raise InvalidInputError("--base-lr applies to trackdiffusion-svd only (its conv_in, conv_out and mix "
                                    "factors).", fix="leave out --base-lr.", source=SOURCE)
        c.base_lr = c.lr if c.base_lr is None and c.model == "trackdiffusion-svd" else c.base_lr
        for name in ("lr", "base_lr", "lambda_attn", "grad_clip", "weight_decay"):
            if getattr(c, name) is None:
                continue
            value = float(getattr(c, name))
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise InvalidInputError(f"{name} must be a finite number >= 0 (lr > 0), got {value!r}.",
                                        source=SOURCE)
            setattr(c, name, value)
        c.warmup = min(OFFICIAL_WARMUP, c.steps // 10) if c.warmup is None else _positive_int(c.warmup, "warmup", 0)
        if c.mixed_precision is None:
            launcher = launcher_mixed_precision()
            if launcher not in (None, "no", "bf16"):
                raise InvalidInputError(f"accelerate launch asks for {launcher} mixed precision, which needs loss "
                                        "scaling that this trainer does not do.", fix="use bf16 (or no): "
                                        "accelerate launch --mixed_precision bf16, or --mixed-precision bf16.",
                                        source=SOURCE)
            c.mixed_precision = launcher or "no"
        if c.mixed_precision not in ("no", "bf16"):
            raise InvalidInputError(f"mixed_precision must be no or bf16, got {c.mixed_precision!r}.", source=SOURCE)
        if c.process_timeout is not None:
            c.process_timeout = float(c.process_timeout)
            if not math.isfinite(c.process_timeout) or c.process_timeout <= 0:
                raise InvalidInputError(f"process_timeout must be a positive number of seconds, got "
                                        f"{c.process_timeout!r}.", source=SOURCE)
        c.device = c.device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(c.device)
        except (RuntimeError, TypeError):
            raise InvalidInputError(f"unknown device {c.device!r}.", fix="use cpu or cuda.", source=SOURCE) from None
        if device.type not in ("cpu", "cuda"):
            raise InvalidInputError(f"unsupported device {c.device!r}.", fix="use cpu or cuda.", source=SOURCE)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidInputError("--device cuda, but no CUDA GPU is available.", fix="use --device cpu.",
                                    source=SOURCE)
        if c.mixed_precision == "bf16" and device.type != "cuda":
            raise InvalidInputError("bf16 mixed precision needs --device cuda.", source=SOURCE)
        c.data = "syntrack" if str(c.data).strip().lower() == "syntrack" else str(Path(c.data).expanduser().resolve())
        for name in ("base", "vae", "image_encoder", "init"):
            value = getattr(c, name)
            if value is not None:
                setattr(c, name, str(Path(value).expanduser().resolve()))
        c.out = str(Path(c.out).expanduser())
        return c

    def settings(self) -> dict[str, Any]:
        """The settings a resumed run must share with its checkpoint (JSON-able)."""
        out = {}
        for f in fields(self):
            if f.name in RESUMABLE:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if out.get("base_lr") is not None and out["base_lr"] == out.get("lr"):
            del out["base_lr"]  # one LR for all, as before the option existed: older checkpoints resume unchanged
        return out
