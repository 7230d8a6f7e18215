"""Train the tiny SVD's VAE (:mod:`trackdiffusion.models.tiny_svd.vae`) on SynTrack frames; resumable.

    python -m trackdiffusion.training.tiny_svd_vae --out runs/tiny_vae --steps 1500

Each step takes ``batch`` training clips of SynTrack's train stream (64x64, 16 frames; clips seeded from
``(seed, step)``) and ``frames_per_clip`` random frames of each. Loss: L1 + MSE of the reconstruction, plus
``latent_l2`` x the mean square of the encoder's output (keeps the latents in the range the decoder's tanh clamp
passes), with the decoder fed the latent plus Gaussian noise of std ``latent_noise`` (so small errors of a diffusion
model's latents decode to small changes). AdamW, cosine decay to 10 %.

Output: ``OUT/checkpoints/`` (every ``save_every`` steps, the newest 3 kept), ``OUT/loss.csv`` and, at the end,
``OUT/vae/`` (a diffusers ``AutoencoderTiny`` folder) whose latents are centred and scaled per channel, and whose
``scaling_factor`` makes the UNet's latents unit-variance, over 32 SynTrack validation clips
(:func:`normalize_latents`).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..data.errors import InvalidInputError
from ..models.tiny_svd import config as tiny
from ..models.tiny_svd.vae import build_vae
from . import checkpoints as ckpt
from .data import SynTrackSource, step_rng
from .latents import _to_float

SOURCE = "tiny SVD VAE training"


def frames_of_step(source: SynTrackSource, step: int, batch: int, per_clip: int, seed: int) -> torch.Tensor:
    """[batch * per_clip, 3, H, W] in [-1, 1]: random frames of the step's clips."""
    rng = step_rng(seed, step, 11)
    picked = []
    for clip in source.clips(step, batch, seed):
        idx = rng.choice(clip.video.shape[0], size=per_clip, replace=False)
        picked.append(clip.video[idx])
    return _to_float(np.concatenate(picked))


@torch.no_grad()
def pooling_init(vae) -> None:
    """Start the autoencoder as 8x8 average pooling and nearest upsampling (a jointly random start sits for
    thousands of steps at the per-image mean, SynTrack's objects being small): the encoder copies RGB (and their mean
    as the 4th channel) through its convolutions, each stride-2 convolution averages 2x2, the last one centres the
    values; the decoder undoes the centring and copies through its upsampling. Every residual block starts as the
    identity (its last convolution zero, its first two random, so it learns a correction from the first step)."""
    def copy(conv, channels, taps, value):
        conv.weight.zero_()
        for c in range(channels):
            for ty, tx in taps:
                conv.weight[c, c, ty, tx] = value
        if conv.bias is not None:
            conv.bias.zero_()

    enc, dec = list(vae.encoder.layers), list(vae.decoder.layers)
    convs_e = [m for m in enc if isinstance(m, torch.nn.Conv2d)]
    convs_d = [m for m in dec if isinstance(m, torch.nn.Conv2d)]
    first = convs_e[0]
    first.weight.zero_()
    first.bias.zero_()
    for c in range(3):
        first.weight[c, c, 1, 1] = 1.0
        first.weight[3, c, 1, 1] = 1.0 / 3
    for conv in convs_e[1:-1]:  # stride 2: the four taps of the 2x2 cell at (2i, 2j)
        copy(conv, 4, [(1, 1), (1, 2), (2, 1), (2, 2)], 0.25)
    copy(convs_e[-1], 4, [(1, 1)], 1.0)
    convs_e[-1].bias.fill_(-0.5)
    copy(convs_d[0], 4, [(1, 1)], 1.0)
    convs_d[0].bias[:4] = 0.5
    for conv in convs_d[1:-1]:
        copy(conv, 4, [(1, 1)], 1.0)
    copy(convs_d[-1], 3, [(1, 1)], 1.0)
    for module in vae.modules():
        if type(module).__name__ == "AutoencoderTinyBlock":
            module.conv[4].weight.zero_()
            module.conv[4].bias.zero_()


def reconstruction_losses(vae, x: torch.Tensor, generator: torch.Generator, latent_noise: float,
                          latent_l2: float) -> dict[str, torch.Tensor]:
    e = vae.encoder(x)
    noisy = e + latent_noise * torch.randn(e.shape, generator=generator)
    y = vae.decoder(noisy)
    l1 = (y - x).abs().mean()
    mse = (y - x).pow(2).mean()
    reg = e.pow(2).mean()
    return {"loss": l1 + mse + latent_l2 * reg, "l1": l1, "mse": mse, "latent_ms": reg}


@torch.no_grad()
def normalize_latents(vae, clips: int = 32) -> float:
    """Make the UNet's latents zero-mean and unit-variance per channel over ``clips`` SynTrack validation clips, and
    return the ``scaling_factor`` that does it.

    Diffusion (EDM with sigma_data 1) wants centred, unit latents; the trained encoder's channels have means of
    -2.5 to -3.5 of their own std (its start is centred average pooling, which training moved). ComfyUI's TAESD has
    one scalar shift, so the per-channel affine map ``e' = a_c e + b_c`` is folded into the encoder's last
    convolution and undone in the decoder's first one (which reads ``e'`` through TAESD's tanh clamp: at these
    magnitudes, below 0.35, the clamp is the identity within 0.2 %); every channel keeps the mean std, so the
    values stay that small. ``scaling_factor`` is then 1 / that std."""
    from ..evaluation.synth import make_split

    videos = [c.video for c in make_split("val", "eval", clips)]
    e = torch.cat([vae.encoder(_to_float(v)) for v in videos])
    mean, std = e.mean((0, 2, 3)), e.std((0, 2, 3))
    target = float(std.mean())
    a, b = target / std, -mean * target / std
    enc_last = [m for m in vae.encoder.layers if isinstance(m, torch.nn.Conv2d)][-1]
    dec_first = next(m for m in vae.decoder.layers if isinstance(m, torch.nn.Conv2d))
    enc_last.weight.mul_(a.view(-1, 1, 1, 1))
    enc_last.bias.mul_(a).add_(b)
    # decoder: W e + c = W (e' - b) / a + c
    dec_first.bias.sub_((dec_first.weight * (b / a).view(1, -1, 1, 1)).sum((1, 2, 3)))
    dec_first.weight.div_(a.view(1, -1, 1, 1))
    return float(f"{1.0 / target:.4g}")


def train_vae(out: str | Path, steps: int = 1500, batch: int = 8, frames_per_clip: int = 4, lr: float = 1e-3,
              seed: int = 0, save_every: int = 100, latent_noise: float = 0.0, latent_l2: float = 0.0,
              say=None) -> Path:
    """Train (or resume, from ``OUT``'s newest checkpoint) and write ``OUT/vae``; returns that folder."""
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"steps": steps, "batch": batch, "frames_per_clip": frames_per_clip, "lr": lr, "seed": seed,
                "latent_noise": latent_noise, "latent_l2": latent_l2, "vae_config": tiny.VAE_CONFIG}
    settings = json.loads(json.dumps(settings))
    with ckpt.run_lock(out):
        torch.manual_seed(seed)
        vae = build_vae().train()
        pooling_init(vae)
        opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        start = 0
        found = ckpt.latest_checkpoint(out, warn=say)
        if found is not None:
            state, path = found
            diff = ckpt.config_differences(state.get("config", {}), settings)
            if diff:
                raise InvalidInputError("the settings differ from the checkpoint's: " + "; ".join(diff) + ".",
                                        fix="resume with the original settings or choose another --out.",
                                        source=str(path))
            vae.load_state_dict(state["trainable"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start = int(state["step"])
            say(f"resuming from {path.name} (step {start} of {steps}).")
        log = ckpt.LossLog(out / ckpt.LOSS_LOG, ["loss", "l1", "mse", "latent_ms", "lr", "seconds"])
        log.truncate(start)
        source = SynTrackSource(tiny.WIDTH, tiny.HEIGHT, tiny.FRAMES)
        t_start = time.monotonic()
        for step in range(start, steps):
            t0 = time.monotonic()
            x = frames_of_step(source, step, batch, frames_per_clip, seed)
            gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + step)
            losses = reconstruction_losses(vae, x, gen, latent_noise, latent_l2)
            cur_lr = float(opt.param_groups[0]["lr"])
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
            opt.step()
            sched.step()
            done = step + 1
            log.append({"step": done, **{k: float(v.detach()) for k, v in losses.items()}, "lr": cur_lr,
                        "seconds": time.monotonic() - t0})
            if done % save_every == 0 or done == steps:
                ckpt.save_checkpoint(out, {"step": done, "config": settings, "trainable": vae.state_dict(),
                                           "optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
            if done % 25 == 0:
                say(f"step {done}/{steps}  loss {float(losses['loss']):.4f}  mse {float(losses['mse']):.5f}  "
                    f"{(time.monotonic() - t_start) / max(1, done - start):.2f} s/step")
        vae.eval()
        scale = normalize_latents(vae)
        vae.register_to_config(scaling_factor=scale)
        folder = out / "vae"
        tmp = out / ".vae.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        vae.save_pretrained(str(tmp), safe_serialization=True)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        say(f"wrote {folder} (scaling_factor {scale}).")
        return folder


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--latent-noise", type=float, default=0.0, help="std of the noise added to the decoder's input")
    p.add_argument("--latent-l2", type=float, default=0.0, help="weight of the latents' mean square in the loss")
    a = p.parse_args(argv)
    try:
        train_vae(a.out, a.steps, a.batch, lr=a.lr, seed=a.seed, save_every=a.save_every,
                  latent_noise=a.latent_noise, latent_l2=a.latent_l2)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
