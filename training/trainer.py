"""The :class:`Trainer` of one run: it builds the UNet with its attachment, latent codec and image encoder, turns a
step's clips into tensors, computes the losses, takes optimizer steps, and saves and restores its state; the recipe
is described in :mod:`.train`, whose :func:`~.train.train` drives it."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.errors import InvalidInputError
from ..models.checkpoints.inspect import FRAMES_TO_BASE, TINY_SVD_BASE, is_tiny_svd
from ..models.svd.clip_image import clip_pixel_values
from . import checkpoints as ckpt
from .config import SOURCE, TrainConfig
from .data import (
    MAX_OBJS,
    Clip,
    draw_outlines,
    object_masks,
    open_source,
    outline_thickness,
    point_seed,
    slot_colors,
    stack_object_masks,
    step_rng,
    trajectory_video,
)
from .distributed import (
    AcceleratedProcesses,
    SingleProcess,
    gathered_optimizer_state,
    gathered_tensors,
    load_gathered_state,
    whole_parameters,
)
from .export import adapter_path, export_adapter
from .latents import PixelLatents, VAELatents, _to_float
from .loading import (
    _load_safetensors,
    base_signature,
    describe_base,
    load_base_unet,
    load_image_encoder,
    load_vae,
    tiny_unet_config,
)
from .trackgo_losses import sample_sigmas

FPS_ID, MOTION_BUCKET = 7.0, 127.0
COND_P_MEAN, COND_P_STD = -3.0, 0.5


def step_generator(seed: int, step: int) -> torch.Generator:
    """The torch generator of one step (CPU): seeded from (seed, step) only."""
    value = int(np.random.SeedSequence([int(seed), int(step), 7]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(value & (2 ** 63 - 1))


class _LossModule(torch.nn.Module):
    """The trainer's loss as one module that holds every trained tensor (the UNet's, and a TrackGo adapter's, which
    is not a UNet submodule), for DistributedDataParallel to wrap (its forward is the one it hooks to average those
    tensors' gradients over the processes) or FSDP to shard (its forward gathers the trained tensors)."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.unet = trainer.unet
        if trainer.is_trackgo:
            self.adapter = trainer.attachment.adapter
        self.losses = trainer._losses  # a bound method, not a module: not registered

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.losses(batch)


class Trainer:
    """Model, data, optimizer and schedule of one run; :func:`train` drives it (tests may drive it directly).

    ``processes``: this process's place in a multi-process run (:mod:`.distributed`; default: alone). Each process
    trains on its share of every step's batch (:meth:`micro_batches`), and the gradients are averaged over all of them.
    """

    def __init__(self, config: TrainConfig, say: Callable[[str], None] | None = None,
                 processes: SingleProcess | AcceleratedProcesses | None = None) -> None:
        cfg = config.resolved()
        self.config = cfg
        self.say = say or (lambda message: None)
        self.processes = processes if processes is not None else SingleProcess(torch.device(cfg.device))
        self.device = self.processes.device
        shares = self.processes.count * cfg.gradient_accumulation
        if cfg.batch % shares:
            raise InvalidInputError(
                f"the global batch of {cfg.batch} clips does not split into {self.processes.count} process(es) x "
                f"{cfg.gradient_accumulation} accumulated micro-batch(es) of equal size.",
                fix=f"use a --batch that is a multiple of {shares}, or change --gradient-accumulation or the number "
                    "of processes.", source=SOURCE)
        #: clips per micro-batch: the batch each forward pass sees
        self.micro_batch = cfg.batch // shares
        self.width, self.height = cfg.size
        self.frames = cfg.frames
        self.is_svd = cfg.model == "trackdiffusion-svd"
        self.is_base = cfg.model == "svd-base"  #: the whole UNet, no attachment (a base model trained from scratch)
        self.is_trackgo = cfg.model == "trackgo"
        self.source = open_source(cfg.data, self.width, self.height, self.frames)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self._build_models(cfg)
        self._check_sizes()
        #: sharded (FSDP): the loss module whose parameters are the shards; None when each process holds them whole
        self._sharded: _LossModule | None = None
        if self.processes.sharding is not None:
            self._shard()
        self.optimizer = torch.optim.AdamW(self._parameter_groups(cfg), lr=cfg.lr, betas=(0.9, 0.999),
                                           weight_decay=cfg.weight_decay, eps=1e-8)
        warmup, total = cfg.warmup, cfg.steps

        def lr_lambda(step: int) -> float:  # diffusers' "linear" schedule
            if step < warmup:
                return step / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda)
        # several processes: the loss goes through DistributedDataParallel (which also starts every process from the
        # main process's trained tensors) or the sharded loss module; alone: straight to _losses, as ever
        if self._sharded is not None:
            self._loss_forward = self._sharded
        else:
            self._loss_forward = (self.processes.wrap(_LossModule(self)) if self.processes.count > 1
                                  else self._losses)

    # ---- construction -------------------------------------------------------------------------------------------

    def _build_models(self, cfg: TrainConfig) -> None:
        from diffusers import UNetSpatioTemporalConditionModel

        if cfg.tiny is not None:
            unet = UNetSpatioTemporalConditionModel(**tiny_unet_config(cfg.tiny, cfg.latent_channels, cfg.frames))
            self.base_name = f"tiny-{cfg.tiny}"
        else:
            unet = load_base_unet(cfg.base)
            frames = getattr(unet.config, "num_frames", None)
            self.base_name = (TINY_SVD_BASE if is_tiny_svd(unet.config)
                              else FRAMES_TO_BASE.get(frames, "custom"))
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
        if self.is_base:
            self.attachment = None
            self.unet.requires_grad_(True)
            named = list(self.unet.named_parameters())
        elif self.is_svd:
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
        if self.is_svd and cfg.base_lr == 0:  # the base's own layers frozen: only the added modules train
            for name, p in named:
                p.requires_grad_(self._is_added(name))
            named = [(name, p) for name, p in named if self._is_added(name)]
        self.named_parameters = named
        self.parameters = [p for _, p in named]

    def _shard(self) -> None:
        """Shard the trained tensors over the processes (FSDP, :meth:`.distributed.AcceleratedProcesses.wrap`) and
        read them back as shards. Units: the whole UNet (``svd-base``) is gathered block by block (each of its down,
        mid and up blocks, then the rest); the adapters (TrackDiffusion's modules, a TrackAdapter) are small, one unit
        gathered for the whole step."""
        module = _LossModule(self)
        name_of = {id(p): name for name, p in module.named_parameters()}
        #: trained parameter -> its name in the sharded loss module (the names of its state dicts)
        self._sharded_names = {name: name_of[id(p)] for name, p in self.named_parameters}
        units = [*self.unet.down_blocks, self.unet.mid_block, *self.unet.up_blocks] if self.is_base else []
        self._sharded = self.processes.wrap(module, self.parameters, units)
        shards = dict(self._sharded.named_parameters())
        self.named_parameters = [(name, shards[self._sharded_names[name]]) for name, _ in self.named_parameters]
        self.parameters = [p for _, p in self.named_parameters]

    def _parameter_groups(self, cfg: TrainConfig) -> list[dict[str, Any]]:
        """The optimizer's groups: the added modules (position net, fusers) at ``lr`` first (the LR the loss log
        reports), then the base UNet's own trained layers at ``base_lr`` where that differs."""
        if not self.is_svd or cfg.base_lr == cfg.lr:
            return [{"params": self.parameters}]
        added = [p for name, p in self.named_parameters if self._is_added(name)]
        own = [p for name, p in self.named_parameters if not self._is_added(name)]
        return [{"params": added}] + ([{"params": own, "lr": cfg.base_lr}] if own else [])

    def _is_added(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to a module the attachment added (not to the base UNet's own layers)."""
        return any(m in name for m in self.attachment.ADDED_MARKERS)

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
        extra = ["noise", "attention"] if self.is_trackgo else []
        return ["step", "loss", *extra, "lr", "seconds"]

    def clips(self, step: int, first: int = 0, count: int | None = None) -> list[Clip]:
        """Clips ``first .. first + count - 1`` of the step's batch (default: the whole batch)."""
        count = self.config.batch if count is None else count
        return self.source.clips(step, count, self.config.seed, first=first)

    def micro_batches(self, step: int) -> list[dict[str, Any]]:
        """This process's share of the step's batch, as its ``gradient_accumulation`` micro-batches: process ``r``
        takes the rows ``r * A * m ..`` (``m`` clips per micro-batch, ``A`` micro-batches). Alone and without
        accumulation, the whole batch: exactly what a single-process run has always prepared."""
        m, accumulate = self.micro_batch, self.config.gradient_accumulation
        firsts = [(self.processes.index * accumulate + a) * m for a in range(accumulate)]
        return [self.prepare(self.clips(step, first, m), step, first=first, global_batch=self.config.batch)
                for first in firsts]

    def train_step(self, step: int) -> dict[str, float]:
        """Prepare and take optimizer step ``step`` (0-based); returns its losses (over the global batch) and LR."""
        return self.optimize(self.micro_batches(step))

    def prepare(self, clips: list[Clip], step: int, *, dropout: bool = True, first: int = 0,
                global_batch: int | None = None) -> dict[str, Any]:
        """Tensors of one step from its clips; every random draw comes from ``(seed, step)``.

        ``clips`` may be a share of the step's batch: its rows ``first .. first + len(clips) - 1`` out of
        ``global_batch`` (default: ``clips`` is the whole batch). Every draw is then made for the whole global batch,
        in the same order, and the share's rows are kept, so a clip gets the same noise, sigma and dropout whichever
        process or micro-batch prepares it.
        """
        cfg = self.config
        gen = step_generator(cfg.seed, step)
        b, f = len(clips), clips[0].num_frames
        total = b if global_batch is None else int(global_batch)
        if not 0 <= first <= total - b:
            raise InvalidInputError(f"rows {first}..{first + b - 1} are not in a batch of {total}.", source=SOURCE)
        rows = slice(first, first + b)
        boxes = np.zeros((b, f, MAX_OBJS, 4), np.float32)
        masks = np.zeros((b, f, MAX_OBJS), np.float32)
        colors = np.stack([slot_colors(step_rng(cfg.seed, step, 3, first + i)) for i in range(b)])
        targets = []
        for i, clip in enumerate(clips):
            n = clip.boxes.shape[1]
            boxes[i, :, :n] = clip.boxes
            masks[i, :, :n] = clip.present
            if self.is_svd and cfg.stage == 1:
                targets.append(draw_outlines(clip.video, clip.boxes, clip.present, colors[i, :n],
                                             thickness=outline_thickness(self.codec.scale)))
            else:
                targets.append(clip.video)
        video = np.stack([c.video for c in clips])
        pixels = _to_float(np.stack(targets)).flatten(0, 1)
        frame0 = _to_float(video[:, 0])
        sigma_c = (torch.randn(total, generator=gen) * COND_P_STD + COND_P_MEAN).exp()[rows]
        cond = frame0 + sigma_c.view(b, 1, 1, 1) * torch.randn((total, *frame0.shape[1:]), generator=gen)[rows]
        posterior_noise = self.codec.posterior_noise(total * f, self.height, self.width, gen)
        if posterior_noise is not None:
            posterior_noise = posterior_noise[first * f:(first + b) * f]
        latents = self.codec.encode(pixels.to(self.device), noise=posterior_noise).reshape(b, f, *self._latent_shape())
        image_latents = self.codec.encode_condition(cond.to(self.device))
        embeddings = self._embed(frame0)
        time_ids = torch.stack([torch.full((b,), FPS_ID), torch.full((b,), MOTION_BUCKET), sigma_c], dim=1)
        r = torch.rand(total, generator=gen)[rows] if dropout else torch.ones(b)
        keep_embedding = (r >= 0.2).float().to(self.device)
        keep_image = (~((r >= 0.1) & (r < 0.3))).float().to(self.device)
        batch = {
            "latents": latents,
            "image_latents": image_latents * keep_image.view(b, 1, 1, 1),
            "image_embeddings": embeddings * keep_embedding.view(b, 1, 1),
            "added_time_ids": time_ids.to(self.device),
            "sigma": sample_sigmas(total, gen)[rows].to(self.device),
            "noise": torch.randn((total, *latents.shape[1:]), generator=gen)[rows].to(self.device),
            "boxes": torch.from_numpy(boxes), "masks": torch.from_numpy(masks),
            "colors": torch.from_numpy(colors.astype(np.float32)),
        }
        if self.is_trackgo:
            # TrackGo: the builder's k-means points of each moving object's mask, following its box (seeded from
            # (seed, step, clip)), rendered at 8x the latent; and the per-object, per-frame masks M_i [B, O, F, h, w]
            # area-averaged to the latent grid (every temporal layer's grid divides it, see _check_sizes, so the
            # loss's own area average to each layer is the same average as from the clip's pixels)
            tw, th = 8 * self.latent_size[0], 8 * self.latent_size[1]
            traj = np.stack([trajectory_video(c, tw, th, point_seed(cfg.seed, step, i))
                             for i, c in enumerate(clips, start=first)])
            # where both image conditions are dropped the clip is the unconditional state inference's CFG uses:
            # an empty (black) trajectory video too, and no moving parts
            keep_traj = (~((r >= 0.1) & (r < 0.2))).float()
            batch["video"] = torch.from_numpy(traj).permute(0, 1, 4, 2, 3).float().div_(255.0) \
                * keep_traj.view(b, 1, 1, 1, 1)
            masks = stack_object_masks([object_masks(c, self.latent_size) for c in clips])
            batch["moving_mask"] = torch.from_numpy(masks).to(self.device) \
                * keep_traj.view(b, 1, 1, 1, 1).to(self.device)
        return batch

    def _latent_shape(self) -> tuple[int, int, int]:
        return self.codec.channels, self.latent_size[1], self.latent_size[0]

    @torch.no_grad()
    def _embed(self, frame0: torch.Tensor) -> torch.Tensor:
        b = frame0.shape[0]
        if self.image_encoder is None:
            return torch.zeros(b, 1, self.cross_dim, device=self.device)
        # as ComfyUI's SVD conditioning prepares the first frame (the nodes users sample with)
        pixels = clip_pixel_values((frame0.to(self.device) + 1) / 2, int(self.image_encoder.config.image_size))
        ref = next(self.image_encoder.parameters())
        embeds = self.image_encoder(pixel_values=pixels.to(ref)).image_embeds
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
        """The step's loss(es) (with the graph), as 0-dim float32 tensors; ``"loss"`` is what is minimised. Sharded:
        every process must call it (the trained tensors are gathered)."""
        if self._sharded is not None:
            self.processes.gather(self._sharded)
            with self._conditioned(batch):
                return self._sharded(batch)
        with self._conditioned(batch):
            return self._losses(batch)

    def _losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if self.is_trackgo:
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

    def optimize(self, batches: dict[str, Any] | list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step on ``batches``: one batch, or this process's equal-sized micro-batches of the step
        (:meth:`micro_batches`), whose gradients add up (each loss divided by their number); with several processes
        DistributedDataParallel averages the gradients over them. Returns the losses, means over every micro-batch of
        every process (the global batch), and the learning rate it used."""
        batches = [batches] if isinstance(batches, dict) else list(batches)
        lr = float(self.optimizer.param_groups[0]["lr"])
        alone = self.processes.count == 1
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            if self._sharded is not None:  # the position net runs in _conditioned, before the loss module's forward
                self.processes.gather(self._sharded)
            with self.processes.gradient_sync(self._loss_forward, sync=last), self._conditioned(batch):
                losses = self._loss_forward(batch)
                loss = losses["loss"]
                # several processes must all take the backward pass (it holds the all-reduce): they check the mean
                # loss together, below
                if alone and not bool(torch.isfinite(loss)):
                    self._diverged(float(loss))
                (loss / len(batches) if len(batches) > 1 else loss).backward()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach())
        values = {k: v / len(batches) for k, v in totals.items()} if len(batches) > 1 else totals
        values = self.processes.mean(values)
        if not math.isfinite(values["loss"]):
            self._diverged(values["loss"])
        if self._sharded is not None:
            self.processes.average_whole_gradients(self.parameters)
            if self.config.grad_clip > 0:  # the norm of the whole gradient, over every process's shards
                self.processes.clip_gradients(self.parameters, self.config.grad_clip)
        elif self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {**values, "lr": lr}

    @staticmethod
    def _diverged(loss: float) -> None:
        raise InvalidInputError(f"the loss is {loss} (the run diverged).",
                                fix="resume from the last checkpoint with a lower --lr.", source=SOURCE)

    @torch.no_grad()
    def evaluate(self, batch: dict[str, Any]) -> dict[str, float]:
        """The losses on ``batch`` without training (same sigma and noise as stored in the batch)."""
        return {k: float(v) for k, v in self.losses(batch).items()}

    # ---- state --------------------------------------------------------------------------------------------------

    def trainable_state(self, everywhere: bool = False) -> dict[str, torch.Tensor]:
        """The trained tensors by name, whole, on the CPU. Sharded: gathered from every process's shards (every
        process must call it), to the main process only (the others get an empty dict) unless ``everywhere``."""
        if self._sharded is None:
            return {name: p.detach().cpu().clone() for name, p in self.named_parameters}
        gathered = gathered_tensors(self._sharded, everywhere=everywhere)
        return {name: gathered[key] for name, key in self._sharded_names.items()} if gathered else {}

    def _optimizer_keys(self) -> list[str]:
        """The sharded loss module's name of each parameter, in the optimizer's order (its state dict's indices)."""
        key_of = {id(p): self._sharded_names[name] for name, p in self.named_parameters}
        return [key_of[id(p)] for group in self.optimizer.param_groups for p in group["params"]]

    def optimizer_state(self) -> dict[str, Any]:
        """``optimizer.state_dict()``, whole. Sharded: the moments gathered from every process's shards to the main
        process (the others get an empty dict; every process must call it), in the same single-process form: state
        and parameter groups by parameter index."""
        if self._sharded is None:
            return self.optimizer.state_dict()
        gathered = gathered_optimizer_state(self._sharded, self.optimizer)
        if not gathered:
            return {}
        index = {key: i for i, key in enumerate(self._optimizer_keys())}
        return {"state": {index[key]: value for key, value in gathered["state"].items()},
                "param_groups": [{**{k: v for k, v in group.items() if k != "params"},
                                  "params": [index[key] for key in group["params"]]}
                                 for group in gathered["param_groups"]]}

    def state(self, step: int) -> dict[str, Any]:
        """What a checkpoint holds (sharded: every process must call it; the main process's is the one to write)."""
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"step": int(step), "config": self.config.settings(), "base": self.base_description,
                "base_signature": self.base_signature, "trainable": self.trainable_state(),
                "optimizer": self.optimizer_state(), "scheduler": self.scheduler.state_dict(), "rng": rng,
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
        if self._sharded is not None:  # every process keeps its shards of the whole tensors it read
            keys = self._optimizer_keys()
            optimizer = state["optimizer"]
            load_gathered_state(
                self._sharded, {key: saved[name] for name, key in self._sharded_names.items()}, self.optimizer,
                {"state": {keys[int(i)]: value for i, value in optimizer["state"].items()},
                 "param_groups": [{**{k: v for k, v in group.items() if k != "params"},
                                   "params": [keys[int(i)] for i in group["params"]]}
                                  for group in optimizer["param_groups"]]})
            for group, saved_group in zip(self.optimizer.param_groups, optimizer["param_groups"], strict=True):
                # the settings as written (torch.distributed.checkpoint hands tuples such as betas back as lists)
                group.update({k: v for k, v in saved_group.items() if k != "params"})
        else:
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
        return adapter_path(self.config, out)

    def export(self, out: str | Path, step: int) -> Path:
        """Write the adapter file the ComfyUI nodes load (atomically; the main process only, the others hold the same
        tensors or, sharded, send it their shards: every process must call it then); returns its path."""
        if self._sharded is not None:
            return self._export(out, step, self.trainable_state())
        if not self.processes.is_main:
            return self.adapter_path(out)
        return export_adapter(self.unet if self.is_base else self.attachment, self.config, out, step,
                              base=self.base_name)

    def _export(self, out: str | Path, step: int, trainable: dict[str, torch.Tensor]) -> Path:
        """Sharded: the main process writes the adapter file from the gathered ``trainable`` tensors."""
        if not self.processes.is_main:
            return self.adapter_path(out)
        whole = {self._sharded_names[name]: tensor for name, tensor in trainable.items()}
        with whole_parameters(self._sharded, whole):
            return export_adapter(self.unet if self.is_base else self.attachment, self.config, out, step,
                                  base=self.base_name)

    def save(self, out: str | Path, step: int) -> Path:
        """Write the step's checkpoint and the adapter file (the main process only; sharded, every process must call
        it: the tensors are gathered from all); returns the checkpoint's path."""
        if self._sharded is not None:
            state = self.state(step)
            if not self.processes.is_main:
                return ckpt.checkpoint_path(out, step)
            path = ckpt.save_checkpoint(out, state, keep=self.config.keep)
            self._export(out, step, state["trainable"])
            return path
        if not self.processes.is_main:
            return ckpt.checkpoint_path(out, step)
        path = ckpt.save_checkpoint(out, self.state(step), keep=self.config.keep)
        self.export(out, step)
        return path
