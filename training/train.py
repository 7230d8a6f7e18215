"""``trackdiffusion train``: train the TrackDiffusion-SVD modules or the TrackGo TrackAdapter on a diffusers SVD UNet.

What is trained (reference ``trackdiffusion_official.md`` section 5.2; ``evaluation.md`` sections 3.6-3.7):

* ``trackdiffusion-svd``: the position net and fusers attached by
  :func:`~trackdiffusion.models.svd.diffusers.attach_trackdiffusion_svd`, plus the UNet's conv_in, conv_out and
  ``time_mixer`` mix factors: the official trainable set (names containing fuser / position_net / time_mixer / conv_out
  / conv_in). Stage 1: the target video has each box drawn as a coloured outline (its slot colour) into every frame
  but frame 0; stage 2: clean targets (start it from the stage-1 delta with ``init``). Boxes are never dropped (as
  in the official SVD training).
* ``trackgo``: only the TrackAdapter (:func:`~trackdiffusion.models.trackgo.diffusers.attach_trackgo`), with
  :func:`~trackdiffusion.training.trackgo_losses` (noise loss + lambda * attention loss). The conditioning video P is
  the clip's point trajectories (SynTrack's analytic points; 8 box-rigid points per object for dataset clips) rendered
  at 8x the latent size; the moving mask is the union of the boxes of the objects that move
  (:func:`~trackdiffusion.training.data.moving_mask`).

Objective (both): the SVD EDM loss of SVD_Xtend. sigma ~ LogNormal(0.7, 1.6); the conditioning image is the clean
frame 0 plus noise of sigma_c ~ LogNormal(-3, 0.5) (also the third added time id, after fps 7 and motion bucket 127);
conditioning dropout: with r ~ U(0, 1) the image embedding is zeroed for r < 0.2 and the image latent for
0.1 <= r < 0.3. AdamW (0.9, 0.999, weight decay 1e-2), gradient clipping 1.0, linear LR schedule with warmup
(official 750 steps; default here min(750, steps / 10)). Default LR: stage 1 2e-4, stage 2 3e-5 (official);
TrackGo 1e-4 (our choice).

Latent space:

* a real SVD base needs its VAE (``vae``): latents = VAE sample x scaling factor (targets), VAE mode (the
  conditioning image), as SVD_Xtend; the image embedding is CLIP's (``image_encoder``) or zeros when none is given
  (the official dropout case, so the model still trains, but pass it for the official recipe);
* ``tiny`` (and a ``base`` whose ``out_channels`` is 12) use a **pixel-space stand-in latent, no VAE weights**:
  frames in [-1, 1] through ``PixelUnshuffle(2)``, i.e. a lossless 12-channel grid at half the resolution (RGB), or
  with ``latent_channels=4`` a 4-channel grid of the grey image (Rec. 601 luma; colour is lost, so stage-1 outline
  colours are too). The UNet takes ``2 x`` those channels (noisy latent + image latent, as SVD). Image embeddings are
  zeros. TrackGo's trajectory video is then rendered at 4x the frame size (8x the latent, what its encoder expects).

Determinism and resuming: the clips, sigmas, noises and dropouts of step ``s`` come from generators seeded with
``(seed, s)`` alone, so a run resumed from a checkpoint repeats exactly what the uninterrupted run would have done
(bit for bit on the CPU). See :mod:`.checkpoints` for what a checkpoint holds and how it is written.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.errors import InvalidInputError
from . import checkpoints as ckpt
from .data import MAX_OBJS, Clip, draw_outlines, moving_mask, open_source, slot_colors, step_rng, trajectory_video
from .trackgo_losses import DEFAULT_LAMBDA_ATTN, sample_sigmas

SOURCE = "trackdiffusion train"
MODELS = ("trackdiffusion-svd", "trackgo")
TINY_KINDS = ("small", "svd-layout")
FPS_ID, MOTION_BUCKET = 7.0, 127.0
COND_P_MEAN, COND_P_STD = -3.0, 0.5
OFFICIAL_WARMUP = 750
#: TrackGo's A' threshold (``backends.diffusers_trackgo.DEFAULT_ALPHA``, the paper's 0.2)
TRACKGO_ALPHA = 0.2
DEFAULT_LR = {1: 2e-4, 2: 3e-5, "trackgo": 1e-4}
DEFAULT_SIZE = {"tiny": (32, 32), "base": (512, 320)}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: settings that may change between a run and its resumption (everything else must match)
RESUMABLE = ("out", "resume", "save_every", "device", "progress", "keep", "gradient_checkpointing")


# --------------------------------------------------------------------------------------------------- config


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
    batch: int = 1
    lr: float | None = None
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
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    progress: bool = True
    keep: int = ckpt.KEEP

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
        c.steps = _positive_int(c.steps, "steps")
        c.batch = _positive_int(c.batch, "batch")
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
        default_lr = DEFAULT_LR["trackgo" if c.model == "trackgo" else c.stage]
        c.lr = float(default_lr if c.lr is None else c.lr)
        for name in ("lr", "lambda_attn", "grad_clip", "weight_decay"):
            value = float(getattr(c, name))
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise InvalidInputError(f"{name} must be a finite number >= 0 (lr > 0), got {value!r}.",
                                        source=SOURCE)
            setattr(c, name, value)
        c.warmup = min(OFFICIAL_WARMUP, c.steps // 10) if c.warmup is None else _positive_int(c.warmup, "warmup", 0)
        if c.mixed_precision not in ("no", "bf16"):
            raise InvalidInputError(f"mixed_precision must be no or bf16, got {c.mixed_precision!r}.", source=SOURCE)
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
        return out


# --------------------------------------------------------------------------------------------------- models


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
    if cls not in ("AutoencoderKLTemporalDecoder", "AutoencoderKL"):
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


class PixelLatents:
    """The pixel-space stand-in latent: frames in [-1, 1] -> ``PixelUnshuffle(2)`` (12 channels RGB, 4 grey)."""

    scale = 2

    def __init__(self, channels: int) -> None:
        if channels not in (4, 12):
            raise InvalidInputError(f"the pixel stand-in latent has 4 or 12 channels, the UNet wants {channels}.",
                                    fix="use a UNet with out_channels 12 (or 4 with --tiny), or give --vae.",
                                    source=SOURCE)
        self.channels = channels

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels == 4:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        return F.pixel_unshuffle(x, 2)

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._unshuffle(x)

    def encode_condition(self, x: torch.Tensor) -> torch.Tensor:
        return self._unshuffle(x)


class VAELatents:
    """SVD's VAE: targets are posterior samples times the scaling factor, the conditioning image the posterior mode."""

    def __init__(self, vae: Any, chunk: int = 8) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.scale = 2 ** (len(vae.config.block_out_channels) - 1)  # 8 for SVD's VAE
        self.channels = int(vae.config.latent_channels)
        self.factor = float(getattr(vae.config, "scaling_factor", 0.18215))
        self.chunk = chunk

    @torch.no_grad()
    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        ref = next(self.vae.parameters())
        parts = [self.vae.encode(x[i:i + self.chunk].to(ref)).latent_dist.sample(generator)
                 for i in range(0, x.shape[0], self.chunk)]
        return torch.cat(parts).float() * self.factor

    @torch.no_grad()
    def encode_condition(self, x: torch.Tensor) -> torch.Tensor:
        ref = next(self.vae.parameters())
        return self.vae.encode(x.to(ref)).latent_dist.mode().float()


def _to_float(video: np.ndarray) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(video)).float().div_(127.5).sub_(1.0)
    return t.movedim(-1, -3)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The torch generator of one step (CPU): seeded from (seed, step) only."""
    value = int(np.random.SeedSequence([int(seed), int(step), 7]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(value & (2 ** 63 - 1))


def _load_safetensors(path: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as fh:
            names = list(fh.keys())
            return {k: fh.get_tensor(k) for k in names}, dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidInputError(f"not a readable safetensors file ({exc}).", source=path) from None


# --------------------------------------------------------------------------------------------------- trainer


class Trainer:
    """Model, data, optimizer and schedule of one run; :func:`train` drives it (tests may drive it directly)."""

    def __init__(self, config: TrainConfig, say: Callable[[str], None] | None = None) -> None:
        cfg = config.resolved()
        self.config = cfg
        self.say = say or (lambda message: None)
        self.device = torch.device(cfg.device)
        self.width, self.height = cfg.size
        self.frames = cfg.frames
        self.is_svd = cfg.model == "trackdiffusion-svd"
        self.source = open_source(cfg.data, self.width, self.height, self.frames)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self._build_models(cfg)
        self._check_sizes()
        self.optimizer = torch.optim.AdamW(self.parameters, lr=cfg.lr, betas=(0.9, 0.999),
                                           weight_decay=cfg.weight_decay, eps=1e-8)
        warmup, total = cfg.warmup, cfg.steps

        def lr_lambda(step: int) -> float:  # diffusers' "linear" schedule
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda)

    # ---- construction -------------------------------------------------------------------------------------------

    def _build_models(self, cfg: TrainConfig) -> None:
        from diffusers import UNetSpatioTemporalConditionModel

        if cfg.tiny is not None:
            unet = UNetSpatioTemporalConditionModel(**tiny_unet_config(cfg.tiny, cfg.latent_channels, cfg.frames))
            self.base_name = f"tiny-{cfg.tiny}"
        else:
            unet = load_base_unet(cfg.base)
            frames = getattr(unet.config, "num_frames", None)
            self.base_name = {14: "svd_img2vid", 25: "svd_img2vid_xt"}.get(frames, "custom")
        unet.requires_grad_(False)
        self.unet = unet.to(self.device).train()
        if cfg.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.base_description = describe_base(unet, "tiny " + cfg.tiny if cfg.tiny else cfg.base)
        self.base_signature = {"tiny": cfg.tiny, **base_signature(unet)}
        out_ch, in_ch = int(unet.config.out_channels), int(unet.config.in_channels)
        if cfg.vae is not None:
            self.codec = VAELatents(load_vae(cfg.vae).to(self.device))
            if self.codec.channels != out_ch or in_ch != 2 * out_ch:
                raise InvalidInputError(
                    f"the VAE has {self.codec.channels} latent channels but the UNet takes {in_ch} and returns "
                    f"{out_ch} (it needs 2x / 1x the latent channels).", fix="give the VAE of this SVD model.",
                    source=cfg.vae)
        else:
            if cfg.tiny is None and out_ch != 12:
                raise InvalidInputError(
                    f"this UNet works on {out_ch}-channel latents (a real SVD): training it needs its VAE.",
                    fix="pass --vae (the vae/ folder of the SVD model); the pixel stand-in latent is for --tiny "
                        "and 12-channel pixel-space UNets.", source=cfg.base)
            if in_ch != 2 * out_ch:
                raise InvalidInputError(f"the UNet takes {in_ch} channels; SVD concatenates the image latent, so it "
                                        f"needs 2 x {out_ch}.", source=cfg.base or "tiny")
            self.codec = PixelLatents(out_ch)
        self.image_encoder = None
        cross = unet.config.cross_attention_dim
        self.cross_dim = int(cross[0] if isinstance(cross, (list, tuple)) else cross)
        if cfg.image_encoder is not None:
            encoder = load_image_encoder(cfg.image_encoder)
            dim = int(encoder.config.projection_dim)
            if dim != self.cross_dim:
                raise InvalidInputError(f"the image encoder makes {dim}-dim embeddings, the UNet's cross-attention "
                                        f"takes {self.cross_dim}.", fix="give the image encoder of this SVD model.",
                                        source=cfg.image_encoder)
            self.image_encoder = encoder.to(self.device).eval().requires_grad_(False)
        elif cfg.tiny is None:
            self.say("note: no --image-encoder: the image embeddings are zeros (the official recipe's dropped-"
                     "embedding case); pass the SVD image_encoder/ folder for the official recipe.")
        if self.is_svd:
            from ..models.svd.diffusers import attach_trackdiffusion_svd

            self.attachment = attach_trackdiffusion_svd(self.unet, max_objs=MAX_OBJS)
            if cfg.init is not None:
                self._init_svd(cfg.init)
            named = self.attachment.named_trainable_parameters(cfg.stage, freeze=True)
        else:
            from ..models.trackgo.diffusers import attach_trackgo

            adapter = self._init_trackgo(cfg.init) if cfg.init is not None else None
            self.attachment = attach_trackgo(self.unet, adapter=adapter)
            self.attachment.adapter.to(self.device)
            self.attachment.adapter.requires_grad_(True)
            named = list(self.attachment.adapter.named_parameters())
        self.named_parameters = named
        self.parameters = [p for _, p in named]

    def _init_svd(self, path: str) -> None:
        tensors, metadata = _load_safetensors(path)
        from ..models.checkpoints.convert import SVD_DELTA_FORMAT

        if metadata.get("format") == SVD_DELTA_FORMAT:
            tensors = ckpt.delta_to_diffusers(tensors, self.unet)
        try:
            self.attachment.load_official_state_dict(tensors, include_unet=True)
        except InvalidInputError as exc:
            made_for = metadata.get("base", "an unknown base")
            raise InvalidInputError(
                f"--init was made for another base ({made_for}) than this run's {self.base_description}: "
                f"{exc.problem}", fix="start from a delta trained on this base UNet.", source=path) from None

    def _init_trackgo(self, path: str) -> Any:
        from ..models.trackgo.adapter import TRACKGO_FORMAT, TrackGoAdapter

        tensors, metadata = _load_safetensors(path)
        if metadata.get("format") != TRACKGO_FORMAT:
            raise InvalidInputError(f"not a TrackAdapter file (format {metadata.get('format')!r}).", source=path)
        adapter = TrackGoAdapter.from_config(json.loads(metadata["config"]))
        missing, unexpected = adapter.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise InvalidInputError(f"the TrackAdapter weights do not match its config (missing {missing[:3]}, "
                                    f"unexpected {unexpected[:3]}).", source=path)
        return adapter

    def _check_sizes(self) -> None:
        levels = len(self.unet.config.block_out_channels)
        step = self.codec.scale * 2 ** (levels - 1)
        if self.width % step or self.height % step:
            raise InvalidInputError(
                f"size {self.width}x{self.height}: this UNet ({levels} levels) on a latent at 1/{self.codec.scale} "
                f"needs width and height divisible by {step}.", fix=f"e.g. --size {step * max(1, self.width // step)}"
                f"x{step * max(1, self.height // step)}.", source=SOURCE)
        self.latent_size = (self.width // self.codec.scale, self.height // self.codec.scale)

    # ---- data ---------------------------------------------------------------------------------------------------

    @property
    def log_fields(self) -> list[str]:
        extra = [] if self.is_svd else ["noise", "attention"]
        return ["step", "loss", *extra, "lr", "seconds"]

    def clips(self, step: int) -> list[Clip]:
        return self.source.clips(step, self.config.batch, self.config.seed)

    def prepare(self, clips: list[Clip], step: int, *, dropout: bool = True) -> dict[str, Any]:
        """Tensors of one step from its clips; every random draw comes from ``(seed, step)``."""
        cfg = self.config
        gen = step_generator(cfg.seed, step)
        b, f = len(clips), clips[0].num_frames
        boxes = np.zeros((b, f, MAX_OBJS, 4), np.float32)
        masks = np.zeros((b, f, MAX_OBJS), np.float32)
        colors = np.stack([slot_colors(step_rng(cfg.seed, step, 3, i)) for i in range(b)])
        targets = []
        for i, clip in enumerate(clips):
            n = clip.boxes.shape[1]
            boxes[i, :, :n] = clip.boxes
            masks[i, :, :n] = clip.present
            if self.is_svd and cfg.stage == 1:
                targets.append(draw_outlines(clip.video, clip.boxes, clip.present, colors[i, :n]))
            else:
                targets.append(clip.video)
        video = np.stack([c.video for c in clips])
        pixels = _to_float(np.stack(targets)).flatten(0, 1)
        frame0 = _to_float(video[:, 0])
        sigma_c = (torch.randn(b, generator=gen) * COND_P_STD + COND_P_MEAN).exp()
        cond = frame0 + sigma_c.view(b, 1, 1, 1) * torch.randn(frame0.shape, generator=gen)
        latents = self.codec.encode(pixels.to(self.device), gen).reshape(b, f, *self._latent_shape())
        image_latents = self.codec.encode_condition(cond.to(self.device))
        embeddings = self._embed(frame0)
        time_ids = torch.stack([torch.full((b,), FPS_ID), torch.full((b,), MOTION_BUCKET), sigma_c], dim=1)
        r = torch.rand(b, generator=gen) if dropout else torch.ones(b)
        keep_embedding = (r >= 0.2).float().to(self.device)
        keep_image = (~((r >= 0.1) & (r < 0.3))).float().to(self.device)
        batch = {
            "latents": latents,
            "image_latents": image_latents * keep_image.view(b, 1, 1, 1),
            "image_embeddings": embeddings * keep_embedding.view(b, 1, 1),
            "added_time_ids": time_ids.to(self.device),
            "sigma": sample_sigmas(b, gen).to(self.device),
            "noise": torch.randn(latents.shape, generator=gen).to(self.device),
            "boxes": torch.from_numpy(boxes), "masks": torch.from_numpy(masks),
            "colors": torch.from_numpy(colors.astype(np.float32)),
        }
        if not self.is_svd:
            tw, th = 8 * self.latent_size[0], 8 * self.latent_size[1]
            traj = np.stack([trajectory_video(c, tw, th) for c in clips])
            batch["video"] = torch.from_numpy(traj).permute(0, 1, 4, 2, 3).float().div_(255.0)
            batch["moving_mask"] = torch.from_numpy(np.stack([moving_mask(c) for c in clips]))
        return batch

    def _latent_shape(self) -> tuple[int, int, int]:
        return self.codec.channels, self.latent_size[1], self.latent_size[0]

    @torch.no_grad()
    def _embed(self, frame0: torch.Tensor) -> torch.Tensor:
        b = frame0.shape[0]
        if self.image_encoder is None:
            return torch.zeros(b, 1, self.cross_dim, device=self.device)
        x = (frame0.to(self.device) + 1) / 2
        x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        ref = next(self.image_encoder.parameters())
        embeds = self.image_encoder(pixel_values=((x - mean) / std).to(ref)).image_embeds
        return embeds.float().unsqueeze(1)

    # ---- losses and steps ---------------------------------------------------------------------------------------

    def _autocast(self):
        enabled = self.config.mixed_precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _conditioned(self, batch: dict[str, Any]) -> Any:
        """TrackDiffusion: the boxes' condition, kept open through the backward pass too (gradient checkpointing
        re-runs the spatial blocks, fusers included, during backward). TrackGo's losses condition themselves."""
        if self.is_svd:
            return self.attachment.conditioned(batch["boxes"], batch["masks"], batch["colors"])
        return contextlib.nullcontext()

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The step's loss(es) (with the graph), as 0-dim float32 tensors; ``"loss"`` is what is minimised."""
        with self._conditioned(batch):
            return self._losses(batch)

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if not self.is_svd:
            from .trackgo_losses import trackgo_losses

            with self._autocast():
                out = trackgo_losses(self.unet, self.attachment, batch, lambda_attn=self.config.lambda_attn)
            return {"loss": out["total"], "noise": out["noise"], "attention": out["attention"]}
        x = batch["latents"].float()
        b, f = x.shape[:2]
        s = batch["sigma"].float().view(b, 1, 1, 1, 1)
        noisy = x + batch["noise"].float() * s
        image = batch["image_latents"].float().unsqueeze(1).expand(-1, f, -1, -1, -1)
        sample = torch.cat([noisy / (s * s + 1).sqrt(), image], dim=2)
        timesteps = 0.25 * batch["sigma"].float().log()
        with self._autocast():
            out = self.unet(sample, timesteps, encoder_hidden_states=batch["image_embeddings"],
                            added_time_ids=batch["added_time_ids"]).sample
        denoised = out.float() * (-s / (s * s + 1).sqrt()) + noisy / (s * s + 1)
        weight = (1 + s * s) / (s * s)
        return {"loss": (weight * (denoised - x) ** 2).reshape(b, -1).mean(1).mean()}

    def optimize(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimizer step on ``batch``; returns the losses and the learning rate it used."""
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.zero_grad(set_to_none=True)
        with self._conditioned(batch):
            losses = self._losses(batch)
            loss = losses["loss"]
            if not bool(torch.isfinite(loss)):
                raise InvalidInputError(f"the loss is {float(loss)} (the run diverged).",
                                        fix="resume from the last checkpoint with a lower --lr.", source=SOURCE)
            loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {**{k: float(v.detach()) for k, v in losses.items()}, "lr": lr}

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Any]) -> dict[str, float]:
        """The losses on ``batch`` without training (same sigma and noise as stored in the batch)."""
        return {k: float(v) for k, v in self.losses(batch).items()}

    # ---- state --------------------------------------------------------------------------------------------------

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().cpu().clone() for name, p in self.named_parameters}

    def state(self, step: int) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": int(step), "config": self.config.settings(), "base": self.base_description,
                "base_signature": self.base_signature, "trainable": self.trainable_state(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rng": rng,
                "torch_version": str(torch.__version__)}

    def load_state(self, state: dict[str, Any], source: str = "checkpoint") -> int:
        """Restore a checkpoint (refusing another base or other settings); returns its step."""
        saved = state.get("trainable", {})
        own = dict(self.named_parameters)
        wrong = [f"{k} checkpoint {list(saved[k].shape)} vs model {list(p.shape)}" for k, p in own.items()
                 if k in saved and tuple(saved[k].shape) != tuple(p.shape)]
        missing = sorted(set(own) - set(saved))
        if wrong or missing or state.get("base_signature") != self.base_signature:
            detail = "; ".join(wrong[:3]) or (f"{len(missing)} trained tensors missing, e.g. {missing[:2]}"
                                             if missing else "the architectures differ")
            raise InvalidInputError(
                f"this checkpoint was trained on another base: {state.get('base')} (checkpoint) vs "
                f"{self.base_description} (this run): {detail}.",
                fix="resume with the base the run started with, or start a new run in another --out.", source=source)
        differences = ckpt.config_differences(state.get("config", {}), self.config.settings())
        if differences:
            raise InvalidInputError(
                "the settings differ from the checkpoint's, so the run would not continue as it started: "
                + "; ".join(differences) + ".",
                fix="resume with the original settings (see run.json), or start a new run in another --out.",
                source=source)
        with torch.no_grad():
            for name, p in self.named_parameters:
                p.copy_(saved[name].to(p))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        return int(state["step"])

    # ---- outputs ------------------------------------------------------------------------------------------------

    def adapter_path(self, out: str | Path) -> Path:
        name = (f"trackdiffusion_svd_stage{self.config.stage}.safetensors" if self.is_svd
                else "trackgo_adapter.safetensors")
        return Path(out) / name

    def export(self, out: str | Path, step: int) -> Path:
        """Write the adapter file the ComfyUI nodes load (atomically); returns its path."""
        if self.is_svd:
            tensors, metadata = ckpt.svd_delta(self.attachment, stage=self.config.stage, trained_steps=step,
                                               base=self.base_name)
        else:
            from ..models.trackgo.diffusers import adapter_file

            tensors, metadata = adapter_file(self.attachment.adapter, trained_steps=step)
        return ckpt.write_safetensors(self.adapter_path(out), tensors, metadata)

    def save(self, out: str | Path, step: int) -> Path:
        path = ckpt.save_checkpoint(out, self.state(step), keep=self.config.keep)
        self.export(out, step)
        return path


# --------------------------------------------------------------------------------------------------- progress


class Progress:
    """tqdm when installed, else a plain text line (rewritten in place on a terminal, every ~2% otherwise)."""

    def __init__(self, total: int, start: int, enabled: bool, stream: Any = None) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.t0 = time.monotonic()
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=start, unit="step", file=self.stream, dynamic_ncols=True,
                                desc="train")
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = max(1, (total - start) // 50)

    def update(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        shown = {k: f"{v:.4g}" for k, v in values.items() if k in ("loss", "noise", "attention")}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
            return
        done = step - self.start
        rate = (time.monotonic() - self.t0) / max(done, 1)
        eta = int(rate * (self.total - step))
        line = (f"step {step}/{self.total}  " + "  ".join(f"{k} {v}" for k, v in shown.items())
                + f"  lr {values.get('lr', 0):.2e}  {rate:.2f} s/step  eta {eta // 3600}:{eta // 60 % 60:02d}:"
                f"{eta % 60:02d}")
        if self.tty:
            print("\r" + line, end="", file=self.stream, flush=True)
        elif done % self.every == 0 or step == self.total:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.tty:
            print(file=self.stream, flush=True)


# --------------------------------------------------------------------------------------------------- entry point


@dataclass
class TrainResult:
    out: Path
    step: int  #: the last step trained (== config.steps when finished)
    adapter: Path  #: the exported adapter file
    checkpoint: Path | None
    losses: list[dict[str, float]] = field(default_factory=list)  #: this call's steps


def train(config: TrainConfig | None = None, *, callback: Callable[[int, dict[str, float]], None] | None = None,
          say: Callable[[str], None] | None = None, **kwargs: Any) -> TrainResult:
    """Run (or resume) a training run; see the module docstring and ``trackdiffusion train --help``.

    Args:
        config: the settings, or pass them as keyword arguments (``train(model=..., data=..., out=..., tiny=...)``).
        callback: called as ``callback(step, losses)`` after every step (and after that step's checkpoint, if any);
            raising from it stops the run (a KeyboardInterrupt is reported like Ctrl-C).
        say: where messages go (default: stderr when ``config.progress``, else nowhere).
    Output folder: ``checkpoints/``, ``loss.csv``, ``run.json`` and the adapter file (:meth:`Trainer.adapter_path`).
    A folder that already holds a run is refused unless ``resume`` (which continues from its newest checkpoint,
    refusing other settings or another base; with no checkpoint yet it starts afresh).
    """
    if config is None:
        config = TrainConfig(**kwargs)
    elif kwargs:
        config = replace(config, **kwargs)
    cfg = config.resolved()
    if say is None:
        say = (lambda message: print(message, file=sys.stderr, flush=True)) if cfg.progress else (lambda m: None)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError("--out is a file, not a folder.", source=str(out))
    out.mkdir(parents=True, exist_ok=True)
    with ckpt.run_lock(out):
        return _train(cfg, out, say, callback)


def _train(cfg: TrainConfig, out: Path, say: Callable[[str], None],
           callback: Callable[[int, dict[str, float]], None] | None) -> TrainResult:
    ckpt.remove_stale_temporaries(out)
    existing = ckpt.list_checkpoints(out)
    if existing and not cfg.resume:
        raise InvalidInputError(f"this folder already holds a training run (checkpoint step {existing[-1][0]}).",
                                fix="pass --resume to continue it, or choose another --out.", source=str(out))
    trainer = Trainer(cfg, say=say)
    log = ckpt.LossLog(out / ckpt.LOSS_LOG, trainer.log_fields)
    start, last = 0, None
    if cfg.resume:
        found = ckpt.latest_checkpoint(out, warn=say)
        if found is None:
            say(f"nothing to resume in {out}: starting a new run.")
        else:
            state, last = found
            start = trainer.load_state(state, source=str(last))
            say(f"resuming from {last.name} (step {start} of {cfg.steps}).")
    log.truncate(start)
    run = {"settings": cfg.settings(), "base": trainer.base_description, "data": trainer.source.description,
           "adapter": trainer.adapter_path(out).name}
    run_json = json.dumps(run, indent=1, default=str).encode("utf-8")
    ckpt.atomic_write(out / "run.json", lambda fh: fh.write(run_json))
    say(f"training {cfg.model} on {trainer.source.description}; base {trainer.base_description}; "
        f"{len(trainer.parameters)} tensors / {sum(p.numel() for p in trainer.parameters):,} parameters trained.")
    history: list[dict[str, float]] = []
    if start >= cfg.steps:
        adapter = trainer.export(out, start)
        say(f"already trained {start} steps; wrote {adapter}.")
        return TrainResult(out, start, adapter, last, history)
    progress = Progress(cfg.steps, start, cfg.progress)
    step = start
    try:
        for step in range(start, cfg.steps):
            t0 = time.monotonic()
            values = trainer.optimize(trainer.prepare(trainer.clips(step), step))
            values["seconds"] = time.monotonic() - t0
            done = step + 1
            log.append({"step": done, **values})
            history.append({"step": done, **values})
            progress.update(done, values)
            if done % cfg.save_every == 0 or done == cfg.steps:
                last = trainer.save(out, done)
            if callback is not None:
                callback(done, values)
    except KeyboardInterrupt:
        progress.close()
        kept = ckpt.list_checkpoints(out)
        say(f"interrupted during step {step + 1}; " + (f"the last checkpoint is step {kept[-1][0]}: continue with "
                                                       "--resume." if kept else "no checkpoint was written yet."))
        raise
    progress.close()
    adapter = trainer.adapter_path(out)
    say(f"trained {cfg.steps} steps: adapter {adapter}, checkpoints in {ckpt.checkpoint_dir(out)}, loss log "
        f"{out / ckpt.LOSS_LOG}.")
    return TrainResult(out, cfg.steps, adapter, last, history)

