"""Train the demo model on the SynTrack train stream (CPU-friendly; resumable; atomic checkpoints).

    python -m trackdiffusion.models.demo.train --out demo/weights --minutes 40

Objective: x0 prediction under a cosine schedule, noise level t ~ U(0, 1), MSE on frames 1..F-1 (frame 0 is the
given first frame). The whole box conditioning is dropped for 10 % of the clips (so the model also runs box-free);
the pasted appearance and the categories are each dropped for another 15 % (so it copes with objects it cannot see
in the first frame and with labels it does not know).

``--init FILE`` starts from an earlier model's weights (e.g. one without the appearance and category inputs, widened
by :func:`~.model.widen_input`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ...evaluation.synth import train_batch
from ..checkpoints.inspect import DEMO_FORMAT
from .data import BoxConditioning, clip_tensors
from .model import BoxVideoDenoiser, widen_input
from .sampling import add_noise

WEIGHTS_NAME = "demo_box_i2v.safetensors"


def batch_tensors(step: int, batch_size: int, tier: str = "eval"):
    clips = train_batch(step, batch_size, tier)
    frames, conds = zip(*(clip_tensors(c.video, c.tracklets) for c in clips))
    return torch.stack(frames), BoxConditioning.stack(conds)


def loss_on(model, frames, cond: BoxConditioning, generator) -> torch.Tensor:
    b = frames.shape[0]
    t = torch.rand(b, generator=generator)
    noise = torch.randn(frames.shape, generator=generator)
    keep_all, keep_look, keep_cat = (torch.rand(3, b, generator=generator) > torch.tensor([[0.1], [0.15], [0.15]]))
    view = (b, 1, 1, 1, 1)
    pred = model(add_noise(frames, t, noise), t, frames[:, :, 0], cond.masks * keep_all.float().reshape(view),
                 cond.appearance * (keep_all & keep_look).float().reshape(view),
                 cond.categories * (keep_all & keep_cat).long()[:, None])
    return (pred[:, :, 1:] - frames[:, :, 1:]).pow(2).mean()


def _atomic_save(tensors: dict, path: Path, metadata: dict | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def train(out: Path, minutes: float, batch_size: int = 4, lr: float = 2e-3, seed: int = 0, log_every: int = 25,
          save_every: int = 100, max_steps: int | None = None, init: Path | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = BoxVideoDenoiser()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    state_path, weights_path = out / "train_state.pt", out / WEIGHTS_NAME
    step = 0
    if state_path.exists():  # resume
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(load_file(str(out / "last.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    elif init is not None:  # a fresh run from earlier weights; the data stream goes on from their step count
        from safetensors import safe_open

        with safe_open(str(init), "pt") as f:
            step = int((f.metadata() or {}).get("steps", 0))
        model.load_state_dict(widen_input({k: v.float() for k, v in load_file(str(init)).items()}, model))
    generator = torch.Generator().manual_seed(seed + step)
    started, log = time.time(), (out / "loss.csv").open("a")
    running = []
    while time.time() - started < minutes * 60 and (max_steps is None or step < max_steps):
        frames, boxes = batch_tensors(step, batch_size)
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50)
        loss = loss_on(model, frames, boxes, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        running.append(float(loss.detach()))
        if step % log_every == 0:
            log.write(f"{step},{sum(running) / len(running):.5f},{time.time() - started:.0f}\n")
            log.flush()
            print(f"step {step} loss {sum(running) / len(running):.4f} ({time.time() - started:.0f} s)", flush=True)
            running = []
        if step % save_every == 0:
            _save(model, optimizer, step, out)
    _save(model, optimizer, step, out)
    half = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    _atomic_save(half, weights_path, {"format": DEMO_FORMAT, "version": "2", "steps": str(step),
                                      "data": "SynTrack train stream, eval tier 64x64x16"})
    (out / "train_info.json").write_text(json.dumps({"steps": step, "batch": batch_size, "lr": lr}))
    return weights_path


def _save(model, optimizer, step, out: Path) -> None:
    _atomic_save({k: v.contiguous() for k, v in model.state_dict().items()}, out / "last.safetensors")
    tmp = out / ".train_state.pt.tmp"
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp)
    os.replace(tmp, out / "train_state.pt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--init", type=Path, help="start a new run from these weights (ignored when resuming)")
    args = parser.parse_args()
    print(f"wrote {train(args.out, args.minutes, args.batch, args.lr, init=args.init)}")


if __name__ == "__main__":
    main()
