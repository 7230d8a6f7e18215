"""``trackdiffusion train``: train the TrackDiffusion-SVD modules or the TrackGo TrackAdapter on a diffusers SVD UNet.

What is trained (reference ``trackdiffusion_official.md`` section 5.2; ``evaluation.md`` sections 3.6-3.7):

* ``trackdiffusion-svd``: the position net and fusers attached by
  :func:`~trackdiffusion.models.svd.diffusers.attach_trackdiffusion_svd`, plus the UNet's conv_in, conv_out and
  ``time_mixer`` mix factors: the official trainable set (names containing fuser / position_net / time_mixer / conv_out
  / conv_in). Stage 1: the target video has each box drawn as a coloured outline (its slot colour; half a latent cell wide, as
  the official 4 px for an 8x VAE, :func:`~trackdiffusion.training.data.outline_thickness`) into every frame
  but frame 0; stage 2: clean targets (start it from the stage-1 delta with ``init``). Boxes are never dropped (as
  in the official SVD training).
* ``trackgo``: only the TrackAdapter (:func:`~trackdiffusion.models.trackgo.diffusers.attach_trackgo`), with
  :func:`~trackdiffusion.training.trackgo_losses` (noise loss + lambda * attention loss). The conditioning video P is
  made as inference makes it: every object that moves in the clip gets a mask on its first present frame (SynTrack:
  its exact shape; dataset clips: its box), K = 16-64 points from it by the trajectory builder's seeded k-means
  (:func:`~trackdiffusion.data.trajectories.sample_mask_points`, K from the mask's area; seeded from (seed, step,
  clip)), each following its object's box (translation and scale), rendered at 8x the latent size
  (:func:`~trackdiffusion.training.data.training_points`). The attention loss (Eq. 8) uses each moving object's mask
  on every frame, M_i (:func:`~trackdiffusion.training.data.object_masks`), and is normalised per query position.

* ``svd-base``: a whole SVD UNet from ``--base`` (e.g. a fresh one from
  :func:`trackdiffusion.models.tiny_svd.files.init_folder`), every parameter trained, on clean targets: how the tiny
  SVD's base model is trained (``dev/train_tiny_svd.sh``). Exported as a diffusers ``unet/`` folder.

Objective (all three): the SVD EDM loss of SVD_Xtend. sigma ~ LogNormal(0.7, 1.6); the conditioning image is the clean
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

Several processes (``accelerate launch --multi_gpu --num_processes N -m trackdiffusion train ...``; :mod:`.distributed`):
``batch`` is the global batch, the clips of one optimizer step, split evenly over the processes and, within each, over
``gradient_accumulation`` micro-batches; clip ``i`` of step ``s`` and all its random draws come from ``(seed, s, i)``
whoever prepares it, and the gradients are averaged over the whole batch, so the loss curve depends on ``batch`` and
``seed``, not on how the work is shared (up to float rounding). A step is one optimizer step at the global batch:
``steps``, the LR schedule and the checkpoints count those. The main process alone writes the checkpoints, the loss
log, ``run.json`` and the adapter; every process reads the checkpoint it resumes from (``out`` must be on a file
system they all see). ``resume`` continues a run with any number of processes and any accumulation as long as the
global batch is the one it was trained with (the settings check refuses another): step ``s + 1`` after checkpoint
``s`` gets the clips and noise the uninterrupted run would have given it. When a process dies, the others stop at
their next collective operation with one line naming the last checkpoint (and ``accelerate launch`` stops the rest).
With an accelerate config that asks for FSDP (``accelerate launch --use_fsdp ...``) the trained tensors, their
gradients and optimizer state are sharded over the processes (:mod:`.distributed`); the step, the checkpoints (whole
tensors, gathered to the main process) and the adapter file are the same, so a run resumes with or without FSDP.

Modules: :mod:`.config` (:class:`TrainConfig`), :mod:`.loading` (base UNet, VAE, image encoder, tiny UNets),
:mod:`.latents` (the latent codecs), :mod:`.trainer` (:class:`Trainer`, one step), :mod:`.progress`, :mod:`.export`
(the adapter file), :mod:`.checkpoints`, :mod:`.data`, :mod:`.distributed` (several processes); this module runs the
loop (:func:`train`) and re-exports their public names.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.errors import InvalidInputError
from ..models.svd.clip_image import CLIP_MEAN, CLIP_STD
from . import checkpoints as ckpt
from .config import (
    DEFAULT_LR,
    DEFAULT_SIZE,
    MODELS,
    OFFICIAL_WARMUP,
    RESUMABLE,
    SOURCE,
    TINY_KINDS,
    TRACKGO_ALPHA,
    TrainConfig,
    parse_size,
)
from .distributed import AcceleratedProcesses, SingleProcess, reporting_lost_processes, training_processes
from .latents import PixelLatents, VAELatents
from .loading import base_signature, describe_base, load_base_unet, load_image_encoder, load_vae, tiny_unet_config
from .progress import Progress
from .trainer import COND_P_MEAN, COND_P_STD, FPS_ID, MOTION_BUCKET, Trainer, step_generator

__all__ = ["CLIP_MEAN", "CLIP_STD", "COND_P_MEAN", "COND_P_STD", "DEFAULT_LR", "DEFAULT_SIZE", "FPS_ID", "MODELS",
           "MOTION_BUCKET", "OFFICIAL_WARMUP", "RESUMABLE", "SOURCE", "TINY_KINDS", "TRACKGO_ALPHA", "PixelLatents",
           "Progress", "TrainConfig", "TrainResult", "Trainer", "VAELatents", "base_signature", "describe_base",
           "load_base_unet", "load_image_encoder", "load_vae", "parse_size", "step_generator", "tiny_unet_config",
           "train"]


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
        callback: called as ``callback(step, losses)`` after every step (and after that step's checkpoint, if any),
            in every process of a multi-process run; raising from it stops the run (a KeyboardInterrupt is reported
            like Ctrl-C).
        say: where messages go (default: stderr when ``config.progress``, else nowhere; in a multi-process run the
            main process's only).
    Output folder: ``checkpoints/``, ``loss.csv``, ``run.json`` and the adapter file (:meth:`Trainer.adapter_path`).
    A folder that already holds a run is refused unless ``resume`` (which continues from its newest checkpoint,
    refusing other settings or another base; with no checkpoint yet it starts afresh). Launched as one of several
    processes, this process trains its share of every step (module docstring).
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
    processes = training_processes(cfg.device, cfg.process_timeout)
    if not processes.is_main:  # the main process speaks for all of them and writes every file
        say = _silent
    if processes.is_main:
        out.mkdir(parents=True, exist_ok=True)
    with ckpt.run_lock(out) if processes.is_main else contextlib.nullcontext():
        result = _train(cfg, out, say, callback, processes)
    processes.wait_for_everyone()  # every process returns once the main one has written the last files
    return result


def _silent(message: str) -> None:
    pass


def _train(cfg: TrainConfig, out: Path, say: Callable[[str], None],
           callback: Callable[[int, dict[str, float]], None] | None,
           processes: SingleProcess | AcceleratedProcesses) -> TrainResult:
    main = processes.is_main
    if main:
        ckpt.remove_stale_temporaries(out)
    existing = ckpt.list_checkpoints(out)
    if existing and not cfg.resume:
        raise InvalidInputError(f"this folder already holds a training run (checkpoint step {existing[-1][0]}).",
                                fix="pass --resume to continue it, or choose another --out.", source=str(out))
    trainer = Trainer(cfg, say=say, processes=processes)
    if processes.count > 1 or cfg.gradient_accumulation > 1:
        say(f"{processes.describe()}: global batch {cfg.batch} = {trainer.micro_batch} clip(s) x {processes.count} "
            f"process(es) x {cfg.gradient_accumulation} accumulated micro-batch(es).")
    log = ckpt.LossLog(out / ckpt.LOSS_LOG, trainer.log_fields)
    start, last = 0, None
    if cfg.resume:
        # the main process picks the checkpoint (the newest readable one) and every process loads that very file
        found = ckpt.latest_checkpoint(out, warn=say) if main else None
        chosen = processes.from_main(None if found is None else str(found[1]))
        if chosen is None:
            say(f"nothing to resume in {out}: starting a new run.")
        else:
            last = Path(chosen)
            state = found[0] if main else ckpt.load_checkpoint(last)
            start = trainer.load_state(state, source=str(last))
            say(f"resuming from {last.name} (step {start} of {cfg.steps}).")
    if main:
        log.truncate(start)
        run = {"settings": cfg.settings(), "base": trainer.base_description, "data": trainer.source.description,
               "adapter": trainer.adapter_path(out).name}
        if processes.count > 1 or cfg.gradient_accumulation > 1:
            run["shared"] = {"processes": processes.count, "gradient_accumulation": cfg.gradient_accumulation,
                             "micro_batch": trainer.micro_batch}
            if processes.sharding is not None:
                run["shared"]["sharded"] = processes.sharding.asked
        run_json = json.dumps(run, indent=1, default=str).encode("utf-8")
        ckpt.atomic_write(out / "run.json", lambda fh: fh.write(run_json))
    say(f"training {cfg.model} on {trainer.source.description}; base {trainer.base_description}; "
        f"{len(trainer.parameters)} tensors / {sum(p.numel() for p in trainer.parameters):,} parameters trained.")
    history: list[dict[str, float]] = []
    if start >= cfg.steps:
        adapter = trainer.export(out, start)
        say(f"already trained {start} steps; wrote {adapter}.")
        return TrainResult(out, start, adapter, last, history)
    progress = Progress(cfg.steps, start, cfg.progress and main)
    step = start

    def where() -> str:
        kept = ckpt.list_checkpoints(out)
        return f"the run stopped during step {step + 1}; " + (
            f"the last checkpoint is step {kept[-1][0]}: continue with --resume (with any number of processes)."
            if kept else "no checkpoint was written yet.")

    try:
        with reporting_lost_processes(processes, where):
            for step in range(start, cfg.steps):
                t0 = time.monotonic()
                values = trainer.train_step(step)
                values["seconds"] = time.monotonic() - t0
                done = step + 1
                if main:
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

