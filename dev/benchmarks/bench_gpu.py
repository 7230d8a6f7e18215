"""The GPU goals in one prepared run: SVD's real size (14 frames x 576x1024, latents 14x4x72x128, fp16 on CUDA) with
random weights, no network and no model files; about 8 minutes on an H100. ``--tiny`` runs the same parts on the CPU
at a tiny size in float32: a dry run that proves the script works, not a measurement of the goals.

Parts (each guarded: a part that fails records its error and traceback and the others still run; on CUDA each runs in
a process of its own, so its peak memory is its own and a crash stays in it; ``--budget-s`` bounds the whole run):

- ``svd_patch``: the TrackDiffusion-SVD patch, one sampling step (euler, cfg 2.5, cond + uncond batched) patched over
  unpatched on ComfyUI's SVD UNet: time, FLOPs and peak memory, interleaved (``bench_svd_patch.py``'s set-up and
  ``comfy_svd_harness.compare``). Goal: the time ratio at most 1.1 x the FLOP ratio.
- ``trackgo_patch``: the TrackGo TrackAdapter patch, likewise (``bench_trackgo_patch.py``'s set-up). Goal: at most
  +5 % time.
- ``syncs``: host-device synchronisations per sampling step with ``torch.profiler`` (CUDA: cudaStreamSynchronize /
  cudaDeviceSynchronize / cudaEventSynchronize and Memcpy DtoH; everywhere: ``aten::item`` and
  ``aten::_local_scalar_dense``, the CPU's proxy), for the unpatched model, TrackDiffusion with open gates and with
  zero gates (the fusers' zero-gate check reads each gate: ``models/ops.py`` ``tanh_gate``) and TrackGo. Per step =
  count of a 2-step run - count of a 1-step run; each scalar read is also attributed to the line of code that made it (a
  dispatch mode), so the zero-gate check's share is counted on its own.
- ``fp16_trackgo_attention``: TrackGo's masked temporal attention (``trackgo_attention``) in fp16 through ComfyUI's
  attention (as the patch runs it) and through the explicit path (training, diffusers), against fp32, at the level-0
  size (2 x 72 x 128 tokens, 14 frames, 320 channels), tau 0 / -100 / -10000: max abs and rel differences.
- ``fp16_sgi2v_loss``: SG-I2V's alignment-loss gradient on the latent through the real-width UNet's partial forward
  (the pack's frame-0 attn1 patches, stopped after the last layer), fp16 with the guidance's loss scaling
  (``LossScaler``) and without, against fp32: max abs and rel differences, underflowed entries, overflows.
- ``sgi2v``: SG-I2V guided sampling over unguided (50 euler steps, 16 guided x 5 AdamW iterations) with the memory
  budget option (``apply_sgi2v(memory_budget_gb=...)``, the node's ``sgi2v_memory_budget_gb``) at 24, through
  ``bench_sgi2v.py``'s own child processes. Goals: guided time at most 2x, peak allocated at most 24 GB.
- ``train_trackdiffusion``, ``train_trackgo``: ``trackdiffusion train`` steps (``training.Trainer``'s own ``prepare``
  and ``optimize``) at 14 frames x 1024x576, batch 1, gradient checkpointing, bf16 autocast, on a random SVD UNet and
  VAE (SVD's configs, built on the GPU) and SynTrack clips: time and peak memory per step.

Timings: ``--warmup`` untimed runs first (2), then ``--repeats`` timed ones (median), ``torch.cuda.synchronize``
around each, peak memory from ``torch.cuda.max_memory_allocated`` (reset before each). Goals are judged only on a GPU
at the real size; a CPU dry run records the values with ``"pass": null``.

On the device machine (the image's ``python3`` has torch, numpy and safetensors but not diffusers or torchsde; the
repository's ``.venv`` is a CPU build and is not carried; ComfyUI beside the checkout does not travel):

    bash dev/benchmarks/gpu_bundle.sh     # here, once: .gpu_bundle/ (git-ignored) = ComfyUI + pure-Python wheels
    # device tool: run(command="bash -c 'PYTHONUNBUFFERED=1 python3 dev/benchmarks/bench_gpu.py --out $OUT'",
    #                  carry=[".gpu_bundle"], timeout_s=600)

The script sets itself up from ``.gpu_bundle/`` (wheels unpacked to a temporary folder at the end of ``sys.path``,
ComfyUI unpacked and named in ``COMFYUI_PATH``, the repository importable as ``trackdiffusion`` through a temporary
link): no ``pip install`` is needed there. It writes ``$OUT/results_gpu.json`` and ``$OUT/bench_gpu.log``; copy the
JSON to ``dev/benchmarks/results_gpu.json``. Without ``--out`` it writes ``dev/benchmarks/results_gpu.json``, with
``--tiny`` ``results_gpu_cpu_dryrun.json``; ``--json`` names the file. The CPU dry run:

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_gpu.py --tiny

Exit status: 0 when every part ran, 3 when one failed or was skipped (the JSON is written either way).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUNDLE = REPO / ".gpu_bundle"
TMP = Path(tempfile.gettempdir())
PARTS = ("svd_patch", "trackgo_patch", "syncs", "fp16_trackgo_attention", "fp16_sgi2v_loss", "sgi2v",
         "train_trackdiffusion", "train_trackgo")
#: the goals the parts are judged by on a GPU at the real size (numbers here, so the results file carries them)
GOALS = {
    "svd_patch": {"max_time_ratio_over_flop_ratio": 1.1},
    "trackgo_patch": {"max_time_overhead_percent": 5},
    "sgi2v": {"max_time_ratio": 2, "max_peak_gb": 24},
}
SGI2V_MEMORY_BUDGET_GB = 24.0
#: SVD's VAE (AutoencoderKLTemporalDecoder of stabilityai/stable-video-diffusion-img2vid), for the training parts
SVD_VAE_CONFIG = {"in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
                  "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4,
                  "sample_size": 768, "scaling_factor": 0.18215, "force_upcast": True}
#: the dry run's VAE: SVD's layout (4 levels, so latents at 1/8) at 32 channels
TINY_VAE_CONFIG = {**SVD_VAE_CONFIG, "block_out_channels": (32, 32, 32, 32), "layers_per_block": 1, "sample_size": 64}


def say(message: str) -> None:
    print(f"[bench_gpu] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------ set-up
def _unpack_bundle() -> dict:
    """What ``.gpu_bundle/`` provides (see ``gpu_bundle.sh``): its wheels unpacked into a temporary folder appended to
    ``sys.path`` (packages already installed win), ComfyUI unpacked and named in ``COMFYUI_PATH`` when none is
    found. Both are also put in the environment, for the child processes."""
    info: dict = {}
    if str(REPO / "tests") not in sys.path:
        sys.path.insert(0, str(REPO / "tests"))  # support.comfyui: where ComfyUI is
    if not BUNDLE.is_dir():
        return info
    wheels = sorted(BUNDLE.glob("wheels/*.whl"))
    if wheels:
        site = TMP / "bench_gpu_site"
        for wheel in wheels:
            marker = site / f".{wheel.name}.done"
            if not marker.exists():
                with zipfile.ZipFile(wheel) as z:
                    z.extractall(site)
                marker.touch()
        if str(site) not in sys.path:
            sys.path.append(str(site))
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(site) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([*paths, str(site)])
        info["wheels"] = [w.name for w in wheels]
    archive = BUNDLE / "ComfyUI.tar.gz"
    from support.comfyui import find_comfyui

    if archive.is_file() and find_comfyui() is None:
        target = TMP / "bench_gpu_comfyui"
        if not (target / "ComfyUI" / "main.py").is_file():
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(target, filter="data")
                else:
                    tar.extractall(target)  # our own archive (gpu_bundle.sh)
        os.environ["COMFYUI_PATH"] = str(target / "ComfyUI")
        info["comfyui_from_bundle"] = True
    return info


def _importable_package() -> str | None:
    """Make ``import trackdiffusion`` load this checkout (the repository root is the package): through a link named
    ``trackdiffusion`` in a temporary folder when it is not installed from here. Returns that folder, if made."""
    import importlib.util

    spec = importlib.util.find_spec("trackdiffusion")
    if spec is not None and spec.origin and Path(spec.origin).resolve() == REPO / "__init__.py":
        return None
    folder = TMP / f"bench_gpu_pkg_{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "trackdiffusion"
    if not (link.is_symlink() and link.resolve() == REPO):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(folder))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *paths])
    for name in [m for m in sys.modules if m == "trackdiffusion" or m.startswith("trackdiffusion.")]:
        del sys.modules[name]
    return str(folder)


def bootstrap() -> dict:
    info = _unpack_bundle()
    link = _importable_package()
    if link:
        info["package_link"] = link
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # ComfyUI's tree may be read-only (CI's ../shared)
    # diffusers before ComfyUI: the tests' torchvision stand-in (put on the path when torchvision does not import)
    # would otherwise make diffusers import half of its torchvision-dependent modules
    with contextlib.suppress(Exception):
        import diffusers  # noqa: F401
        from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel  # noqa: F401
    return info


# ------------------------------------------------------------------------------------------------------ sizes
@dataclass
class Size:
    tiny: bool
    frames: int
    height: int
    width: int
    sgi2v_frames: int
    sgi2v_height: int
    sgi2v_width: int
    sgi2v_steps: int
    train_frames: int
    train_width: int
    train_height: int

    @property
    def real_width(self) -> bool:
        return not self.tiny

    def settings(self) -> dict:
        out = dict(self.__dict__)
        out["latent_shape"] = [self.frames, 4, self.height // 8, self.width // 8]
        out["model_channels"] = 32 if self.tiny else 320
        return out


def make_size(args) -> Size:
    if args.tiny:
        return Size(True, 4, 64, 64, 4, 64, 64, args.sgi2v_steps or 10, 8, 64, 64)
    return Size(False, 14, 576, 1024, 14, 576, 1024, args.sgi2v_steps or 50, 14, 1024, 576)


@dataclass
class Context:
    args: argparse.Namespace
    size: Size
    deadline: float

    @property
    def cuda(self) -> bool:
        import torch

        return torch.cuda.is_available() and not self.args.tiny

    @property
    def device(self):
        import torch

        return torch.device("cuda" if self.cuda else "cpu")

    def remaining(self) -> float:
        return self.deadline - time.time()


def sync(ctx: Context) -> None:
    import torch

    if ctx.cuda:
        torch.cuda.synchronize()


def reset_peak(ctx: Context) -> None:
    import torch

    if ctx.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak(ctx: Context) -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if ctx.cuda else None


def goal(value: float, limit: float, what: str) -> dict:
    return {"what": what, "value": value, "max": limit, "pass": bool(value <= limit)}


def diff_stats(value, reference) -> dict:
    """max abs difference, and max rel = max abs / max |reference| (elementwise ratios explode near zero)."""
    d = (value.double() - reference.double()).abs()
    scale = float(reference.double().abs().max())
    max_abs = float(d.max())
    return {"max_abs": max_abs, "max_rel": max_abs / scale if scale > 0 else None, "mean_abs": float(d.mean()),
            "reference_max_abs": scale, "finite": bool(value.isfinite().all())}


# ------------------------------------------------------------------------------------------------ the patches
def _comfy():
    from comfy_svd_harness import setup_comfyui

    setup_comfyui()


def trackdiffusion_patched(model, context: int, size: Size, gate: float):
    """bench_svd_patch.py's TrackDiffusion-SVD patch on ``model`` (random fusers, both gates at ``gate``)."""
    import torch

    from trackdiffusion.data.tracklets import load
    from trackdiffusion.models.svd.adapter import TrackDiffusionSVDAdapter
    from trackdiffusion.nodes.patches.svd import _spatial_video_transformers, apply_trackdiffusion_svd, load_svd_adapter

    head = "16" if size.tiny else "64"
    blocks = [(n, s.in_channels) for n, s in _spatial_video_transformers(model.get_model_object("diffusion_model"))]
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=context, head_dim=int(head))
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.02)
        for fuser in adapter.fusers.values():
            fuser.alpha_attn.fill_(gate)
            fuser.alpha_dense.fill_(gate)
    bundle = load_svd_adapter(adapter.delta_state_dict(), {"head_dim": head})
    objects = [{"id": i, "keyframes": [{"frame": 0, "box": [4 * i, 4, 4 * i + 20, 30]}]} for i in range(8)]
    tracklets = load({"version": 1, "width": size.width, "height": size.height, "num_frames": size.frames,
                      "objects": objects})
    return apply_trackdiffusion_svd(model, bundle, tracklets)


def trackgo_patched(model, size: Size):
    """bench_trackgo_patch.py's TrackGo patch on ``model`` (random TrackAdapter, tau -100)."""
    from bench_trackgo_patch import random_trackgo_patch

    return random_trackgo_patch(model, size.width, size.height, size.frames, real=not size.tiny)


def model_dtype(model) -> str:
    inner = model.model
    return f"{inner.get_dtype()}" + (f" (manual cast {inner.manual_cast_dtype})" if inner.manual_cast_dtype else "")


def patch_part(ctx: Context, which: str) -> dict:
    from comfy_svd_harness import build_svd, compare, sample_once

    _comfy()
    s = ctx.size
    model, context = build_svd(s.real_width)
    patched = trackdiffusion_patched(model, context, s, 0.5) if which == "svd" else trackgo_patched(model, s)
    variants = {"unpatched": model, "patched": patched}
    for _ in range(max(0, ctx.args.warmup - 1)):  # compare() warms each variant up once more itself
        for m in variants.values():
            sample_once(m, s.frames, s.height, s.width, context)
    title = "TrackDiffusion-SVD patch" if which == "svd" else "TrackGo TrackAdapter patch"
    res = compare(title, variants, s.frames, s.height, s.width, context, ctx.args.repeats)
    ratio = res["ratio"]
    metrics = {**res, "dtype": model_dtype(model), "warmup": ctx.args.warmup, "repeats": ctx.args.repeats}
    if which == "svd":
        limit = GOALS["svd_patch"]["max_time_ratio_over_flop_ratio"]
        goals = {"time_ratio_over_flop_ratio": goal(ratio["time"] / ratio["flops"], limit,
                                                    "patched/unpatched step time ratio divided by the FLOP ratio")}
    else:
        limit = GOALS["trackgo_patch"]["max_time_overhead_percent"]
        goals = {"time_overhead_percent": goal(100 * (ratio["time"] - 1), limit,
                                               "patched over unpatched step time, percent added")}
    return {"metrics": metrics, "goals": goals}


def part_svd_patch(ctx: Context) -> dict:
    return patch_part(ctx, "svd")


def part_trackgo_patch(ctx: Context) -> dict:
    return patch_part(ctx, "trackgo")


# ------------------------------------------------------------------------------------------------------ syncs
SYNC_EVENTS = ("aten::item", "aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
               "cudaEventSynchronize", "cudaMemcpy")


def sample_steps(model, size: Size, context: int, steps: int):
    import comfy.sample
    import torch
    from comfy_svd_harness import svd_inputs

    noise, positive, negative = svd_inputs(size.frames, size.height, size.width, context)
    return comfy.sample.sample(model, noise, steps, 2.5, "euler", "karras", positive, negative, torch.zeros_like(noise),
                               disable_pbar=True, seed=0)


def profile_counts(ctx: Context, run) -> Counter:
    """The synchronising events torch.profiler records (by name) while ``run()`` runs."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.cuda else [])
    sync(ctx)
    with profile(activities=activities) as prof:
        run()
        sync(ctx)
    counts: Counter = Counter()
    for e in prof.events():
        name = e.name
        if name in SYNC_EVENTS[:5] or name.startswith("cudaMemcpy"):
            counts[name] += 1
        elif "DtoH" in name:
            counts["Memcpy DtoH"] += 1
    return counts


def _site() -> str:
    """The innermost frame of this repository's code (else ComfyUI's, else any) below the current one."""
    fallback = None
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = Path(frame.filename)
        try:
            rel = path.resolve().relative_to(REPO)
        except ValueError:
            if fallback is None and "comfy" in frame.filename:
                fallback = f"{frame.filename.split('ComfyUI/')[-1]}:{frame.lineno} {frame.name}"
            continue
        if rel.parts[:2] == ("dev", "benchmarks") or rel.parts[0] in ("tests", ".venv", ".gpu_bundle") or \
                "site-packages" in rel.parts:
            continue
        return f"{rel}:{frame.lineno} {frame.name}"
    return fallback or "other"


def scalar_sites(run) -> Counter:
    """Every ``aten::_local_scalar_dense`` (``.item()``, ``float(t)``, ``bool(t)``) during ``run()``, by the code line
    that made it and the tensor's device (a CUDA one is a host-device sync)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    target = torch.ops.aten._local_scalar_dense.default
    counts: Counter = Counter()

    class Reads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is target:
                counts[f"{_site()} [{args[0].device.type}]"] += 1
            return func(*args, **(kwargs or {}))

    with Reads():
        run()
    return counts


def part_syncs(ctx: Context) -> dict:
    from comfy_svd_harness import build_svd

    _comfy()
    s = ctx.size
    model, context = build_svd(s.real_width)
    variants = {"unpatched": model, "trackdiffusion": trackdiffusion_patched(model, context, s, 0.5),
                "trackdiffusion_zero_gates": trackdiffusion_patched(model, context, s, 0.0),
                "trackgo": trackgo_patched(model, s)}
    out = {}
    for name, m in variants.items():
        sample_steps(m, s, context, 1)  # warm-up: loads the model and the adapter

        def run(steps, m=m):
            return lambda: sample_steps(m, s, context, steps)

        one, two = profile_counts(ctx, run(1)), profile_counts(ctx, run(2))
        sites1, sites2 = scalar_sites(run(1)), scalar_sites(run(2))  # apart: the mode doubles the profiler's counts
        per_step = {k: two[k] - one[k] for k in sorted(set(one) | set(two))}
        per_run = {k: one[k] - per_step[k] for k in per_step}
        sites = {k: sites2[k] - sites1[k] for k in sorted(set(sites1) | set(sites2))}
        sites = {k: v for k, v in sites.items() if v}
        syncs = sum(per_step.get(k, 0) for k in SYNC_EVENTS[2:5]) if ctx.cuda else \
            per_step.get("aten::_local_scalar_dense", 0)
        out[name] = {
            "syncs_per_step": syncs,
            "syncs_measure": "cuda*Synchronize events" if ctx.cuda else
                             "aten::_local_scalar_dense calls (CPU proxy: each is a sync when its tensor is on a GPU)",
            "events_per_step": per_step, "events_per_run_outside_steps": per_run,
            "scalar_reads_per_step_by_site": sites,
            "zero_gate_check_reads_per_step": sum(v for k, v in sites.items() if "tanh_gate" in k),
            "device_scalar_reads_per_step": sum(v for k, v in sites.items() if not k.endswith("[cpu]")),
        }
        say(f"syncs {name}: {syncs:g} per step, zero-gate check {out[name]['zero_gate_check_reads_per_step']:g}")
    return {"metrics": {"variants": out, "method": "per step = 2-step run - 1-step run, euler, cfg 2.5 "
                        "(one batched UNet call per step); sites from a TorchDispatchMode on _local_scalar_dense"},
            "goals": {}}


# ------------------------------------------------------------------------------------------------- precision
def part_fp16_trackgo_attention(ctx: Context) -> dict:
    import torch

    from trackdiffusion.models.trackgo.adapter import trackgo_attention

    dev, s = ctx.device, ctx.size
    frames = 14  # SVD's frame count also at the tiny size: fewer frames make A' >= alpha everywhere
    tokens = 2 * (s.height // 8) * (s.width // 8)
    channels, heads = (32, 2) if s.tiny else (320, 5)
    masked, attention_name = None, "explicit (ComfyUI not importable)"
    try:
        _comfy()
        from comfy.ldm.modules import attention

        def masked(q, k, v, h, mask):
            return attention.optimized_attention_masked(q, k, v, h, mask)

        attention_name = getattr(attention.optimized_attention_masked, "__name__", "?")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 (recorded; the explicit path still runs)
        attention_name += f": {exc}"
    g = torch.Generator(device=dev).manual_seed(0)
    q, k, v = (torch.randn(tokens, frames, channels, generator=g, device=dev) for _ in range(3))
    a_prime = torch.softmax(3 * torch.randn(tokens, heads, frames, frames, generator=g, device=dev), -1)
    half = [t.half() for t in (q, k, v)]
    out = {}
    for tau in (0.0, -100.0, -10000.0):
        ref = trackgo_attention(q, k, v, a_prime, heads, tau=tau)
        row = {"fp16_explicit": diff_stats(trackgo_attention(*half, a_prime, heads, tau=tau).float(), ref)}
        if masked is not None:
            row["fp16_comfy_attention"] = diff_stats(
                trackgo_attention(*half, a_prime, heads, tau=tau, masked_attention=masked).float(), ref)
            row["fp32_comfy_attention"] = diff_stats(
                trackgo_attention(q, k, v, a_prime, heads, tau=tau, masked_attention=masked), ref)
        out[f"tau={tau:g}"] = row
        say(f"fp16 trackgo attention tau {tau:g}: " + ", ".join(f"{k} max abs {r['max_abs']:.3g} rel "
                                                               f"{r['max_rel']:.3g}" for k, r in row.items()))
    return {"metrics": {"tokens": tokens, "frames": frames, "channels": channels, "heads": heads, "alpha": 0.2,
                        "masked_fraction": float((a_prime >= 0.2).float().mean()),
                        "comfy_attention": attention_name, "reference": "fp32, explicit path", "by_tau": out},
            "goals": {}}


def _init_unet_(unet, seed: int = 0) -> None:
    """Random weights of a usual scale: matrices N(0, 1/fan_in), norm weights 1, biases and the rest 0."""
    import torch

    g = torch.Generator(device=next(unet.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, p[0].numel() ** -0.5, generator=g)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


def part_fp16_sgi2v_loss(ctx: Context) -> dict:
    import copy

    import torch

    _comfy()
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from trackdiffusion.data.tracklets import load
    from trackdiffusion.models.guidance.sgi2v import (
        DEFAULT_LAYERS,
        LossScaler,
        alignment_loss,
        build_alignment_targets,
        latent_boxes_from_tracklets,
    )
    from trackdiffusion.nodes.patches.sgi2v import (
        CAPTURE_KEY,
        _attn1_forward,
        _Capture,
        _StopForward,
        _svt_forward,
        _transformer_scales,
        plan_checkpointing,
    )
    from trackdiffusion.nodes.patches.svd import svd_unet_config

    dev, s = ctx.device, ctx.size
    channels, context_dim, head = (32, 64, 16) if s.tiny else (320, 1024, 64)
    with torch.device("meta"):
        meta = UNetModel(**svd_unet_config(channels, context_dim, head), operations=comfy.ops.disable_weight_init)
    unet32 = meta.to_empty(device=dev).float().eval().requires_grad_(False)
    _init_unet_(unet32)
    unet16 = copy.deepcopy(unet32).half()
    frames, h, w = s.frames, s.height // 8, s.width // 8
    layers = list(DEFAULT_LAYERS)
    last = layers[-1]
    checkpoint = plan_checkpointing(_transformer_scales(unet32), last, frames, h, w, 4, 0.0,
                                    "all" if ctx.cuda else "off")
    for unet in (unet32, unet16):
        for layer in layers:
            attn1 = unet.get_submodule(f"{layer}.transformer_blocks.0.attn1")
            attn1.forward = _attn1_forward(layer, None).__get__(attn1)
        for name in checkpoint:
            svt = unet.get_submodule(name)
            svt.forward = _svt_forward(name, None).__get__(svt)
    g = torch.Generator(device=dev).manual_seed(1)
    z0 = torch.randn(frames, 4, h, w, generator=g, device=dev)
    concat = torch.randn(1, 4, h, w, generator=g, device=dev).expand(frames, -1, -1, -1)
    kwargs = {"timesteps": torch.full((frames,), 0.25 * math.log(5.0), device=dev),
              "context": torch.randn(frames, 1, context_dim, generator=g, device=dev),
              "y": torch.randn(frames, 768, generator=g, device=dev), "num_video_frames": frames,
              "image_only_indicator": torch.zeros(1, frames, device=dev)}
    pw, ph = s.width, s.height
    objects = [{"id": 1, "keyframes": [{"frame": 0, "box": [pw * 0.1, ph * 0.2, pw * 0.35, ph * 0.6]},
                                       {"frame": frames - 1, "box": [pw * 0.55, ph * 0.3, pw * 0.85, ph * 0.75]}]}]
    tracklets = load({"version": 1, "width": pw, "height": ph, "num_frames": frames, "objects": objects})
    targets = build_alignment_targets(latent_boxes_from_tracklets(tracklets, frames, h, w), 0.4).to(dev)

    def loss_and_grad(unet, dtype, scale: float):
        capture = _Capture(tuple(layers), last, frames=frames, checkpoint=frozenset(checkpoint))
        z = z0.clone().requires_grad_(True)
        with torch.enable_grad():
            x = torch.cat([z, concat], 1).to(dtype)
            args = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in kwargs.items()}
            try:
                unet(x, transformer_options={CAPTURE_KEY: capture}, **args)
            except _StopForward:
                pass
            loss = alignment_loss([capture.features[n] for n in layers], targets)
            (grad,) = torch.autograd.grad(loss * scale, z)
        return float(loss.detach()), grad / scale

    loss32, grad32 = loss_and_grad(unet32, torch.float32, 1.0)
    scaler = LossScaler(torch.float16)
    initial = scaler.scale
    for _ in range(32):
        loss16, grad16 = loss_and_grad(unet16, torch.float16, scaler.scale)
        if bool(torch.isfinite(grad16).all()) or scaler.scale <= scaler.min_scale:
            break
        scaler.backoff()
    loss16u, grad16u = loss_and_grad(unet16, torch.float16, 1.0)
    nonzero = grad32 != 0

    def compare_grad(grad) -> dict:
        cos = torch.nn.functional.cosine_similarity(grad.double().flatten(), grad32.double().flatten(), dim=0)
        return {**diff_stats(grad, grad32), "cosine": float(cos),
                "underflowed_fraction": float(((grad == 0) & nonzero).sum()) / max(1, int(nonzero.sum()))}

    metrics = {"loss_fp32": loss32, "loss_fp16": loss16, "loss_rel_diff": abs(loss16 - loss32) / max(abs(loss32), 1e-30),
               "grad_fp32_max_abs": float(grad32.abs().max()),
               "fp16_loss_scaled": {**compare_grad(grad16), "initial_scale": initial, "scale_used": scaler.scale,
                                    "overflows": scaler.overflows},
               "fp16_unscaled": compare_grad(grad16u), "loss_fp16_unscaled": loss16u,
               "layers": layers, "checkpointed": sorted(checkpoint), "latent_shape": list(z0.shape),
               "weights": "random: matrices N(0, 1/fan_in), norm weights 1, biases 0 (same values in both dtypes)"}
    say(f"fp16 sgi2v loss: scaled grad max rel {metrics['fp16_loss_scaled']['max_rel']:.3g}, unscaled "
        f"{metrics['fp16_unscaled']['max_rel']:.3g} (underflowed {metrics['fp16_unscaled']['underflowed_fraction']:.3g})")
    return {"metrics": metrics, "goals": {}}


# ------------------------------------------------------------------------------------------------------ SG-I2V
_CHILDREN: dict = {}  #: pid -> (Popen, whether it leads a process group of its own)
_NEW_GROUPS = [True]  #: the top-level run puts each child in a group of its own; a part's process does not


def _kill_children(signum=None, frame=None) -> None:
    """Kill the children still running (their whole process groups where they lead one), then exit on a signal."""
    for pid, (proc, group) in list(_CHILDREN.items()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL) if group else proc.kill()
        _CHILDREN.pop(pid, None)
    if signum is not None:
        sys.exit(128 + signum)


def run_child(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int | None, str, str]:
    """Run ``cmd``; on timeout kill it with its own children. The top-level run starts each child as the leader of a
    process group (in the same session, so whatever ends this run's session ends it too) and kills that group; a
    part's process keeps its children in its own group, so that killing the part kills them as well. Returns
    (returncode, or None on timeout, stdout, stderr)."""
    group = _NEW_GROUPS[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO),
                            process_group=0 if group else None)
    _CHILDREN[proc.pid] = (proc, group)
    try:
        out, err = proc.communicate(timeout=max(1.0, timeout))
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        _kill_children()
        out, err = proc.communicate()
        return None, out, err
    finally:
        _CHILDREN.pop(proc.pid, None)


def part_sgi2v(ctx: Context) -> dict:
    s = ctx.size
    base = [sys.executable, str(HERE / "bench_sgi2v.py"), "--json", "-", "--frames", str(s.sgi2v_frames),
            "--height", str(s.sgi2v_height), "--width", str(s.sgi2v_width), "--steps", str(s.sgi2v_steps),
            "--repeats", "1", "--iterations", "5", "--memory-budget-gb", f"{SGI2V_MEMORY_BUDGET_GB:g}"]
    if not s.tiny:
        base.append("--real")
    env = dict(os.environ)
    results = {}
    for variant in ("unguided", "guided"):
        rc, out, err = run_child([*base, "--child", variant], ctx.remaining() - 5, env)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if rc != 0 or not lines:
            why = "timed out (the time budget)" if rc is None else f"exited with {rc}"
            raise RuntimeError(f"bench_sgi2v.py --child {variant} {why}:\n{err[-3000:]}")
        results[variant] = json.loads(lines[-1])
        say(f"sgi2v {variant}: {results[variant]['time']:.2f} s, peak {results[variant]['peak'] / 2**30:.2f} GiB")
    u, g = results["unguided"], results["guided"]
    ratio = g["time"] / u["time"]
    limits = GOALS["sgi2v"]
    metrics = {"unguided": u, "guided": g, "time_ratio": ratio, "memory_budget_gb": SGI2V_MEMORY_BUDGET_GB,
               "memory_budget_option": "apply_sgi2v(memory_budget_gb=...) / node input sgi2v_memory_budget_gb",
               "peak": "CUDA max_memory_allocated of the timed run" if g["device"] != "cpu" else
                       "peak RSS above the process's size before sampling (CPU)",
               "frames": s.sgi2v_frames, "height": s.sgi2v_height, "width": s.sgi2v_width, "steps": s.sgi2v_steps,
               "iterations": 5, "warmup": "1 unguided step (bench_sgi2v.py)", "repeats": 1}
    goals = {"time_ratio": goal(ratio, limits["max_time_ratio"], "guided over unguided sampling time"),
             "peak_gb": goal(g["peak"] / 1e9, limits["max_peak_gb"], "guided run's peak allocated memory, GB (1e9)")}
    return {"metrics": metrics, "goals": goals}


# ---------------------------------------------------------------------------------------------------- training
@contextlib.contextmanager
def random_svd_loaders(device, unet_config: dict, vae_config: dict):
    """Training on a random SVD: the Trainer's base-UNet and VAE loaders return freshly built models of these configs
    (built on ``device``, nothing read from disk)."""
    import torch

    from trackdiffusion.training import trainer as trainer_module

    def unet(path):
        from diffusers import UNetSpatioTemporalConditionModel

        with torch.device(device):
            return UNetSpatioTemporalConditionModel(**unet_config)

    def vae(path):
        from diffusers import AutoencoderKLTemporalDecoder

        with torch.device(device):
            return AutoencoderKLTemporalDecoder(**vae_config)

    saved = trainer_module.load_base_unet, trainer_module.load_vae
    trainer_module.load_base_unet, trainer_module.load_vae = unet, vae
    try:
        yield
    finally:
        trainer_module.load_base_unet, trainer_module.load_vae = saved


def train_part(ctx: Context, model: str) -> dict:
    from trackdiffusion.training import TrainConfig, Trainer
    from trackdiffusion.training.loading import tiny_unet_config

    s = ctx.size
    timed = max(1, min(ctx.args.repeats, 2))
    steps = ctx.args.warmup + timed
    with tempfile.TemporaryDirectory() as out:
        common = {"model": model, "data": "syntrack", "out": out, "frames": s.train_frames, "batch": 1,
                  "size": (s.train_width, s.train_height), "steps": steps, "save_every": 10**6, "progress": False,
                  "gradient_checkpointing": True, "device": ctx.device.type,
                  "mixed_precision": "bf16" if ctx.cuda else "no"}
        # the same path at both sizes: a base UNet and its VAE (random, built by the patched loaders), VAE latents
        if s.tiny:
            unet_config, vae_config = tiny_unet_config("svd-layout", 4, s.train_frames), TINY_VAE_CONFIG
        else:
            unet_config, vae_config = {"num_frames": 14}, SVD_VAE_CONFIG
        cfg = TrainConfig(**common, base="random-svd-unet", vae="random-svd-vae")
        t0 = time.perf_counter()
        with random_svd_loaders(ctx.device, unet_config, vae_config):
            trainer = Trainer(cfg)
        build_s = time.perf_counter() - t0
        rows = []
        for step in range(steps):
            reset_peak(ctx)
            t0 = time.perf_counter()
            clips = trainer.clips(step)
            t1 = time.perf_counter()
            batch = trainer.prepare(clips, step)
            sync(ctx)
            t2 = time.perf_counter()
            values = trainer.optimize(batch)
            sync(ctx)
            t3 = time.perf_counter()
            rows.append({"step": step + 1, "timed": step >= ctx.args.warmup, "data_s": t1 - t0, "prepare_s": t2 - t1,
                         "optimize_s": t3 - t2, "peak_bytes": peak(ctx), "losses": values})
            say(f"train {model} step {step + 1}: optimize {t3 - t2:.2f} s, prepare {t2 - t1:.2f} s")
        timed_rows = [r for r in rows if r["timed"]]
        med = {k: statistics.median(r[k] for r in timed_rows) for k in ("data_s", "prepare_s", "optimize_s")}
        peaks = [r["peak_bytes"] for r in timed_rows if r["peak_bytes"] is not None]
        metrics = {"step_s": med["data_s"] + med["prepare_s"] + med["optimize_s"], **med,
                   "peak_bytes": max(peaks) if peaks else None, "build_s": build_s, "steps": rows,
                   "trainable_parameters": sum(p.numel() for p in trainer.parameters),
                   "base": trainer.base_description, "frames": s.train_frames,
                   "size": [s.train_width, s.train_height], "batch": 1, "gradient_checkpointing": True,
                   "mixed_precision": cfg.mixed_precision, "warmup": ctx.args.warmup, "timed": timed,
                   "finite": all(math.isfinite(r["losses"]["loss"]) for r in rows),
                   "weights": "random SVD UNet and VAE (diffusers default init, SVD's configs)" if not s.tiny else
                              "random tiny svd-layout UNet (4 latent channels) and a small 4-level VAE"}
        del trainer
    return {"metrics": metrics, "goals": {}}


def part_train_trackdiffusion(ctx: Context) -> dict:
    return train_part(ctx, "trackdiffusion-svd")


def part_train_trackgo(ctx: Context) -> dict:
    return train_part(ctx, "trackgo")


PART_FUNCS = {name: globals()[f"part_{name}"] for name in PARTS}


# ---------------------------------------------------------------------------------------------------- running
def cleanup(ctx: Context) -> None:
    import torch

    if "comfy.model_management" in sys.modules:
        with contextlib.suppress(Exception):
            import comfy.model_management as mm

            mm.unload_all_models()
            mm.soft_empty_cache()
    gc.collect()
    if ctx.cuda:
        torch.cuda.empty_cache()


def run_in_process(name: str, ctx: Context) -> dict:
    import torch

    entry: dict = {"status": "ok"}
    t0 = time.perf_counter()
    try:
        if ctx.cuda:
            torch.cuda.reset_peak_memory_stats()
            entry["allocated_at_start_bytes"] = int(torch.cuda.memory_allocated())
        if ctx.args.fail == name:
            raise RuntimeError(f"failure injected with --fail {name}")
        entry.update(PART_FUNCS[name](ctx))
        if ctx.cuda:
            entry["part_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    except (Exception, SystemExit) as exc:  # noqa: BLE001 (a part's failure is recorded; the others run)
        entry = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:4000],
                 "traceback": traceback.format_exc()[-8000:]}
    finally:
        with contextlib.suppress(Exception):
            cleanup(ctx)
    entry["seconds"] = time.perf_counter() - t0
    return entry


def child_argv(ctx: Context, name: str, path: str) -> list[str]:
    a = ctx.args
    argv = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--part-json", path,
            "--deadline", repr(ctx.deadline), "--warmup", str(a.warmup), "--repeats", str(a.repeats)]
    if a.sgi2v_steps:
        argv += ["--sgi2v-steps", str(a.sgi2v_steps)]
    if a.tiny:
        argv.append("--tiny")
    if a.fail:
        argv += ["--fail", a.fail]
    return argv


def run_isolated(name: str, ctx: Context, log) -> dict:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "part.json")
        rc, out, err = run_child(child_argv(ctx, name, path), ctx.remaining(), dict(os.environ))
        if log is not None:
            log.write(f"===== {name} (exit {rc})\n{out}\n{err}\n")
            log.flush()
        if os.path.exists(path):
            entry = json.loads(Path(path).read_text())
        else:
            why = "timed out (the time budget)" if rc is None else f"exited with {rc} and wrote no result"
            entry = {"status": "error", "error": f"the part's process {why}", "stderr_tail": err[-4000:]}
    entry["returncode"] = rc
    entry["wall_seconds"] = time.perf_counter() - t0
    return entry


def judge(entry: dict, ctx: Context) -> None:
    """Goals count only on a GPU at the real size."""
    for g in entry.get("goals", {}).values():
        if not ctx.cuda or ctx.size.tiny:
            g["pass"] = None
            g["note"] = "not judged: CPU dry run at a tiny size, not a GPU measurement"


def environment(info: dict) -> dict:
    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "python": sys.version.split()[0], "bootstrap": info}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(device_name=p.name, capability=f"{p.major}.{p.minor}", total_memory_bytes=int(p.total_memory),
                   multiprocessors=p.multi_processor_count, cudnn=torch.backends.cudnn.version(),
                   matmul_tf32=torch.backends.cuda.matmul.allow_tf32, cudnn_tf32=torch.backends.cudnn.allow_tf32)
    else:
        env["device_name"] = "cpu"
    with contextlib.suppress(Exception):
        import diffusers

        env["diffusers"] = diffusers.__version__
    with contextlib.suppress(Exception):
        from support.comfyui import find_comfyui

        path = find_comfyui()
        env["comfyui_path"] = str(path)
        found = re.search(r"__version__\s*=\s*[\"']([^\"']+)", (path / "comfyui_version.py").read_text())
        env["comfyui_version"] = found[1] if found else None
    return env


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="CPU dry run at a tiny size, float32")
    p.add_argument("--out", help="folder for results_gpu.json (results_gpu_cpu_dryrun.json with --tiny) and the log")
    p.add_argument("--json", help="results file (default: dev/benchmarks/results_gpu.json, "
                   "results_gpu_cpu_dryrun.json with --tiny; '-' = none)")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS))
    p.add_argument("--budget-s", type=float, help="time budget of the whole run (default 480 on a GPU, 1800 --tiny); "
                   "a part that would start after it is skipped, one that runs past it is stopped (isolated parts)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (training: at most 2)")
    p.add_argument("--sgi2v-steps", type=int, help="SG-I2V sampling steps (default 50; --tiny 10)")
    p.add_argument("--isolate", choices=("auto", "on", "off"), default="auto",
                   help="each part in its own process (auto: on CUDA)")
    p.add_argument("--fail", choices=PARTS, help="testing: make this part raise, to check that the others still run")
    p.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    p.add_argument("--part-json", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in args.parts if x not in PARTS]
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    return args


def results_path(args) -> str | None:
    if args.json:
        return args.json
    name = "results_gpu_cpu_dryrun.json" if args.tiny else "results_gpu.json"
    return str(Path(args.out) / name) if args.out else str(HERE / name)


def main(argv=None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _kill_children)
    info = bootstrap()
    import torch

    size = make_size(args)
    if args.part:  # a child: one part, its entry to --part-json
        _NEW_GROUPS[0] = False
        ctx = Context(args, size, args.deadline or time.time() + 3600)
        entry = run_in_process(args.part, ctx)
        Path(args.part_json).write_text(json.dumps(entry, default=str))
        return 0
    if not args.tiny and not torch.cuda.is_available():
        print("no CUDA device: the real size needs a GPU; --tiny runs the CPU dry run", file=sys.stderr)
        return 2
    budget = args.budget_s if args.budget_s is not None else (1800.0 if args.tiny else 480.0)
    started = time.time()
    ctx = Context(args, size, started + budget)
    isolate = args.isolate == "on" or (args.isolate == "auto" and ctx.cuda)
    log = None
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        log = open(Path(args.out) / "bench_gpu.log", "w")  # noqa: SIM115 (open for the whole run)
    results = {}
    for name in PARTS:
        if name not in args.parts:
            continue
        if ctx.remaining() < (5 if args.tiny else 20):
            results[name] = {"status": "skipped", "error": f"time budget of {budget:g} s spent", "seconds": 0.0}
            say(f"{name}: skipped (budget)")
            continue
        say(f"{name}: running" + (" in its own process" if isolate else ""))
        entry = run_isolated(name, ctx, log) if isolate else run_in_process(name, ctx)
        judge(entry, ctx)
        results[name] = entry
        say(f"{name}: {entry['status']} in {entry.get('seconds', 0):.1f} s" +
            (f" ({entry['error'].splitlines()[0]})" if entry["status"] != "ok" else ""))
        if log is not None and entry["status"] != "ok":
            log.write(f"===== {name}: {entry.get('error')}\n{entry.get('traceback', '')}\n")
    goals = {f"{part}.{g}": v["pass"] for part, e in results.items() for g, v in e.get("goals", {}).items()}
    summary = {"parts_ok": [n for n, e in results.items() if e["status"] == "ok"],
               "parts_failed": [n for n, e in results.items() if e["status"] == "error"],
               "parts_skipped": [n for n, e in results.items() if e["status"] == "skipped"],
               "goals_passed": [g for g, v in goals.items() if v is True],
               "goals_missed": [g for g, v in goals.items() if v is False],
               "goals_not_judged": [g for g, v in goals.items() if v is None],
               "wall_seconds": time.time() - started}
    settings = {**size.settings(), "device": ctx.device.type, "dtype": "float16 (ComfyUI's choice on CUDA)" if ctx.cuda
                else "float32", "weights": "random (no model files)", "warmup": args.warmup,
                "repeats": args.repeats, "budget_s": budget, "isolated_parts": isolate, "parts": args.parts,
                "goals": GOALS, "sgi2v_memory_budget_gb": SGI2V_MEMORY_BUDGET_GB,
                "measurement": "GPU" if ctx.cuda else "CPU dry run (tiny size): not a GPU measurement"}
    from provenance import write_results

    path = results_path(args)
    write_results(None if path == "-" else path, "gpu", settings, results, started=None,
                  environment=environment(info), summary=summary)
    if log is not None:
        log.write(json.dumps(summary, indent=1) + "\n")
        log.close()
    print(json.dumps(summary, indent=1))
    return 0 if not summary["parts_failed"] and not summary["parts_skipped"] else 3


if __name__ == "__main__":
    sys.exit(main())
