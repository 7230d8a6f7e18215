"""``trackdiffusion train``: the command line of :func:`trackdiffusion.training.train.train`.

    trackdiffusion train {trackdiffusion-svd,trackgo,svd-base} --data syntrack|PATH --out DIR
                         (--base UNET_FOLDER [--vae VAE_FOLDER] [--image-encoder FOLDER] | --tiny [small|svd-layout])
                         [--stage 1|2] [--init FILE] [--steps N] [--batch B] [--lr LR] [--base-lr LR] [--frames F]
                         [--size WxH]
                         [--resume] [--seed S] [--save-every N] [--device cpu|cuda] [--warmup N]
                         [--lambda-attn L] [--latent-channels 4|12] [--gradient-checkpointing]
                         [--mixed-precision no|bf16] [--gradient-accumulation A] [--process-timeout SECONDS]
                         [--no-progress]
    accelerate launch --multi_gpu --num_processes N -m trackdiffusion train ...   (data parallel; the same options)
    accelerate launch --use_fsdp --num_processes N -m trackdiffusion train ...    (sharded: FSDP; the same options)

Writes DIR/checkpoints/step-*.pt (the newest 3), DIR/loss.csv, DIR/run.json and the adapter the ComfyUI nodes load:
DIR/trackdiffusion_svd_stage<N>.safetensors or DIR/trackgo_adapter.safetensors. Ctrl-C (or a kill) between steps
loses nothing but the steps since the last checkpoint; continue with the same command plus --resume.
"""

from __future__ import annotations

import argparse
import signal
import sys

EPILOG = """examples:
  trackdiffusion train trackdiffusion-svd --data syntrack --out runs/smoke --tiny --steps 200 --frames 8
  trackdiffusion train trackdiffusion-svd --data datasets/ytvis --out runs/td1 --stage 1 \\
      --base svd/unet --vae svd/vae --image-encoder svd/image_encoder --size 512x320 --frames 8 --device cuda
  trackdiffusion train trackdiffusion-svd --data datasets/ytvis --out runs/td2 --stage 2 \\
      --init runs/td1/trackdiffusion_svd_stage1.safetensors --base svd/unet --vae svd/vae --device cuda
  trackdiffusion train trackgo --data datasets/mot17 --out runs/go --base svd/unet --vae svd/vae --frames 14
  accelerate launch --multi_gpu --num_processes 4 -m trackdiffusion train trackgo --data datasets/mot17 \
      --out runs/go4 --base svd/unet --vae svd/vae --frames 14 --batch 8 --device cuda   (2 clips per GPU)
  accelerate launch --use_fsdp --fsdp_version 2 --num_processes 4 -m trackdiffusion train svd-base \
      --data datasets/ytvis --out runs/base4 --base svd/unet --vae svd/vae --batch 8 --device cuda   (UNet sharded)
"""


def add_train_parser(sub) -> None:
    """Register ``train`` on the main parser's subcommands."""
    from .config import MODELS, TINY_KINDS

    p = sub.add_parser("train", help="train the TrackDiffusion-SVD modules or the TrackGo TrackAdapter",
                       description="Train on a diffusers Stable Video Diffusion UNet (or a tiny random one). See "
                                   "trackdiffusion.training.train for the recipe.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=MODELS, help="trackdiffusion-svd: position net + fusers (+ conv_in/conv_out/mix "
                   "factors, the official set); trackgo: the TrackAdapter only; svd-base: the whole UNet (a base "
                   "model, e.g. the tiny SVD's)")
    p.add_argument("--data", required=True, help="'syntrack' (synthetic, no download), or a dataset folder: MOT "
                   "sequences (seqinfo.ini, gt/gt.txt, img1/) or YouTube-VIS (json + frames)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, loss.csv, run.json, the adapter file")
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--base", help="a local diffusers UNetSpatioTemporalConditionModel folder (the SVD model's "
                      "unet/, or the model folder holding it)")
    base.add_argument("--tiny", nargs="?", const="small", choices=TINY_KINDS,
                      help="a small random UNet for smoke tests (default small; svd-layout = SVD's block layout at "
                      "tiny widths), on a pixel-space stand-in latent (no VAE)")
    p.add_argument("--vae", help="the SVD VAE folder (vae/); needed with a real SVD --base")
    p.add_argument("--image-encoder", dest="image_encoder", help="the SVD CLIP image encoder folder (image_encoder/);"
                   " without it the image embeddings are zeros")
    p.add_argument("--init", help="start from this adapter file (stage 2: the stage-1 delta; trackgo: an adapter)")
    p.add_argument("--stage", type=int, choices=(1, 2), help="trackdiffusion-svd: 1 = coloured box outlines drawn "
                   "into the targets (default), 2 = clean targets")
    p.add_argument("--steps", type=int, default=1000, help="total optimizer steps (default 1000)")
    p.add_argument("--batch", type=int, default=1, help="the global batch: clips per optimizer step, split evenly "
                   "over the processes and --gradient-accumulation micro-batches (default 1)")
    p.add_argument("--gradient-accumulation", dest="gradient_accumulation", type=int, default=1,
                   help="micro-batches per process and step, their gradients summed: less memory, the same step "
                   "(default 1)")
    p.add_argument("--lr", type=float, help="learning rate (default: stage 1 2e-4, stage 2 3e-5, trackgo 1e-4)")
    p.add_argument("--base-lr", dest="base_lr", type=float,
                   help="trackdiffusion-svd: learning rate of the base UNet's own trained layers (conv_in, conv_out, "
                   "mix factors; default: --lr, as officially; 0 freezes them)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default 8; TrackGo needs > 5)")
    p.add_argument("--size", help="WIDTHxHEIGHT of the clips (default 512x320; --tiny 32x32)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint "
                   "(the settings must match)")
    p.add_argument("--seed", type=int, default=0, help="seeds the data stream, noise and tiny model (default 0)")
    p.add_argument("--save-every", dest="save_every", type=int, default=500,
                   help="checkpoint (and adapter export) every N steps, and at the end (default 500)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--warmup", type=int, help="linear LR warmup steps (default min(750, steps/10))")
    p.add_argument("--lambda-attn", dest="lambda_attn", type=float, default=None,
                   help="trackgo: weight of the attention loss (default 0.1)")
    p.add_argument("--latent-channels", dest="latent_channels", type=int, choices=(4, 12),
                   help="--tiny: stand-in latent channels, 12 = RGB PixelUnshuffle(2) (default), 4 = grey")
    p.add_argument("--gradient-checkpointing", dest="gradient_checkpointing", action="store_true",
                   help="trade compute for memory (real SVD on one GPU)")
    p.add_argument("--mixed-precision", dest="mixed_precision", choices=("no", "bf16"), default=None,
                   help="bf16 autocast on CUDA (default: what accelerate launch was given, else no: fp32)")
    p.add_argument("--process-timeout", dest="process_timeout", type=float, default=None,
                   help="several processes: seconds one waits for the others before the run fails (default: torch's, "
                   "30 minutes on CPUs, 10 with NCCL)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from ..data.errors import InvalidInputError
    from .distributed import TrainingProcessLost, launched_rank
    from .train import TrainConfig, train

    keys = ("model", "data", "out", "base", "tiny", "vae", "image_encoder", "init", "stage", "steps", "batch", "lr",
            "base_lr", "frames", "size", "resume", "seed", "save_every", "device", "warmup", "latent_channels",
            "gradient_checkpointing", "mixed_precision", "gradient_accumulation", "process_timeout", "progress")
    values = {k: getattr(args, k) for k in keys}
    if args.lambda_attn is not None:
        values["lambda_attn"] = args.lambda_attn
    previous = _stop_on_sigterm()
    try:
        train(TrainConfig(**values), say=lambda message: print(message, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        return 130
    except TrainingProcessLost as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except InvalidInputError:
        if launched_rank() != 0:  # every process finds the same problem: the main one reports it, once
            return 2
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _stop_on_sigterm():
    """``kill`` (SIGTERM) stops the run like Ctrl-C: the message names the last checkpoint. Returns the old handler.

    Once a process of a multi-process run has found another one gone, the SIGTERM the launcher then sends is ignored:
    the process is already stopping with its one-line report."""
    from .distributed import stopping

    def handler(signum, frame):
        if not stopping.is_set():
            raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not the main thread
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m trackdiffusion.training.cli train ...``: the main ``trackdiffusion`` command (same parser, same
    error handling)."""
    from ..__main__ import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
