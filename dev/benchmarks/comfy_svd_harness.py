"""Shared by the patch benchmarks: real ComfyUI, an SVD UNet with random weights loaded through ComfyUI's own loader,
seeded sampling inputs, their command-line options, and one interleaved timing loop of single sampling steps (so the
patches run exactly as in a user's workflow). bench_sgi2v.py uses the UNet and the inputs too."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[2]


def parse_patch_args(name: str) -> argparse.Namespace:
    """The patch benchmarks' options: the UNet width, the sampled video's size and the results file (default
    ``dev/benchmarks/results_<name>.json``, ``results_<name>_real.json`` with ``--real``)."""
    from provenance import default_json

    parser = argparse.ArgumentParser()
    parser.add_argument("--real", action="store_true", help="the real SVD width (320 channels, context 1024)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help=f"results file (default: dev/benchmarks/results_{name}.json, "
                        f"results_{name}_real.json with --real; '-' = none)")
    args = parser.parse_args()
    if args.json is None:
        args.json = str(default_json(f"{name}_real" if args.real else name))
    return args


def patch_settings(args: argparse.Namespace) -> dict:
    """The settings a patch benchmark's results file records."""
    return {"real_width": args.real, "model_channels": 320 if args.real else 32, "frames": args.frames,
            "height": args.height, "width": args.width, "repeats": args.repeats,
            "sampling": "1 euler step, cfg 2.5, cond + uncond batched; median of interleaved repeats",
            "weights": "random (seed 0), fp16 state dict through ComfyUI's loader"}


def setup_comfyui() -> Path:
    """Put ComfyUI (found as the tests find it: ``$COMFYUI_PATH``, ``../ComfyUI``, ``../shared/ComfyUI``) on the path,
    without writing bytecode into its tree, and return where it is."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.comfyui import candidates, find_comfyui

    path = find_comfyui()
    if path is None:
        sys.exit("ComfyUI not found (looked in " + ", ".join(f"{p} ({o})" for p, o in candidates()) +
                 "): set COMFYUI_PATH")
    sys.dont_write_bytecode = True  # the checkout may be read-only (CI's ../shared/ComfyUI)
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):  # absent, or a CUDA-only build on a CPU torch
        sys.path.insert(0, str(REPO / "tests" / "stubs"))
    sys.path.insert(0, str(path))
    from comfy.cli_args import args

    args.cpu = not torch.cuda.is_available()
    return path


def build_svd(real: bool):
    """A ComfyUI SVD ModelPatcher: the real layout at the real width (real=True) or at 1/10 of it."""
    import comfy.ops
    import comfy.sd
    import comfy.supported_models
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    base = comfy.supported_models.SVD_img2vid
    channels, context, head = (320, 1024, 64) if real else (32, 64, 16)

    class BenchSVD(base):
        unet_config = dict(base.unet_config, model_channels=channels, context_dim=context)  # noqa: RUF012
        unet_extra_config = dict(base.unet_extra_config, num_head_channels=head)  # noqa: RUF012

    from trackdiffusion.nodes.patches.svd import svd_unet_config

    config = svd_unet_config(channels, context, head)
    with torch.device("meta"):
        unet = UNetModel(**config, operations=comfy.ops.disable_weight_init)
    generator = torch.Generator().manual_seed(0)
    state_dict = {f"model.diffusion_model.{k}": torch.randn(v.shape, generator=generator, dtype=torch.float16) * 0.02
                  for k, v in unet.state_dict().items()}
    comfy.supported_models.models.insert(0, BenchSVD)
    try:
        return comfy.sd.load_diffusion_model_state_dict(state_dict), context
    finally:
        comfy.supported_models.models.remove(BenchSVD)


def svd_inputs(frames: int, height: int, width: int, context_dim: int, fps: int = 8) -> tuple:
    """Seeded random sampling inputs for an SVD model: ``(noise, positive, negative)`` for ``comfy.sample.sample``."""
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(frames, 4, height // 8, width // 8, generator=g)
    concat = torch.randn(1, 4, height // 8, width // 8, generator=g)
    embed = torch.randn(1, 1, context_dim, generator=g)
    extra = {"motion_bucket_id": 127, "fps": fps, "augmentation_level": 0.02}
    positive = [[embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    return noise, positive, negative


def sample_once(model, frames: int, height: int, width: int, context_dim: int):
    import comfy.sample

    noise, positive, negative = svd_inputs(frames, height, width, context_dim)
    # 1 euler step with CFG: one batched UNet call (cond + uncond), as every step of a real run.
    return comfy.sample.sample(model, noise, 1, 2.5, "euler", "karras", positive, negative, torch.zeros_like(noise),
                               disable_pbar=True, seed=0)


def compare(title: str, variants: dict, frames: int, height: int, width: int, context_dim: int,
            repeats: int) -> dict:
    """Interleaved timings, FLOPs and (on CUDA) peak memory of each variant, printed with ratios against the first;
    returns them: ``{name: {"time_s", "times_s", "flops", "peak_bytes"}, "ratio": {"time", "flops", "peak"}}``."""
    cuda = torch.cuda.is_available()
    flops = {}
    for name, model in variants.items():
        sample_once(model, frames, height, width, context_dim)  # warm-up (loads the model and the adapter)
        with FlopCounterMode(display=False) as counter:
            sample_once(model, frames, height, width, context_dim)
        flops[name] = counter.get_total_flops()
    times = {name: [] for name in variants}
    peaks = dict.fromkeys(variants, 0)
    for _ in range(repeats):
        for name, model in variants.items():  # interleaved: machine noise hits every variant alike
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            sample_once(model, frames, height, width, context_dim)
            if cuda:
                torch.cuda.synchronize()
                peaks[name] = max(peaks[name], torch.cuda.max_memory_allocated())
            times[name].append(time.perf_counter() - t0)
    first = next(iter(variants))
    print(f"{title}: {frames} frames, {width}x{height}, {'cuda' if cuda else 'cpu'}, median of {repeats} "
          "interleaved sampling steps (cond + uncond batched)")
    for name in variants:
        t = statistics.median(times[name])
        line = (f"  {name:<12} {t * 1000:9.1f} ms  x{t / statistics.median(times[first]):.3f}   "
                f"{flops[name] / 1e9:9.2f} GFLOP  x{flops[name] / flops[first]:.3f}")
        if cuda:
            line += f"   peak {peaks[name] / 2**30:6.2f} GiB  x{peaks[name] / peaks[first]:.3f}"
        print(line)
    out: dict = {name: {"time_s": statistics.median(times[name]), "times_s": times[name], "flops": flops[name],
                        "peak_bytes": peaks[name] if cuda else None} for name in variants}
    last = list(variants)[-1]
    out["ratio"] = {"time": out[last]["time_s"] / out[first]["time_s"], "flops": flops[last] / flops[first],
                    "peak": peaks[last] / peaks[first] if cuda else None}
    return out
