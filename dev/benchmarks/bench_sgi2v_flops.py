"""SG-I2V box guidance at SVD's real size, estimated from FLOP counts (no GPU, no weights): how much longer a guided
sampling run takes than an unguided one if time follows FLOPs.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_sgi2v_flops.py [--json dev/benchmarks/results_sgi2v_flops.json]

ComfyUI's SVD UNet at the real width (320 channels, context 1024) is built on the meta device, so nothing is
allocated, and ``torch.utils.flop_counter`` counts:

- one sampling step: the UNet forward on the CFG batch (cond + uncond, 2 x 14 frames of 72x128 latents);
- one SG-I2V iteration: the optimisation forward on the conditional half, with the pack's own patches (frame-0 keys
  and values in the attn1 of ``output_blocks.7.1`` / ``8.1``, the forward stopped after the last of them, and, when
  the plan asks for it, activation checkpointing of the largest transformers), plus its backward to the latent.

A run of ``steps`` steps with ``iterations`` iterations at each guided step (SG-I2V's band: 16 of 50 steps) then costs
``steps * step + guided * iterations * iteration`` against ``steps * step`` unguided. Variants: no recomputation; the
plan :func:`trackdiffusion.nodes.patches.sgi2v.plan_checkpointing` makes for a 24 GB card (the UNet's fp16 weights
and 1 GiB of slack already taken, as on CUDA); and 4 iterations instead of 5. The loss, AdamW and the FFT reset are
left out (negligible next to the UNet). ``--tiny`` counts the 32-channel UNet at 4 frames, 64x64 instead, to check the
counter against the CPU benchmarks' FlopCounterMode figures (``bench_svd_patch.py``: 1.50 GFLOP per step). A GPU
measurement (``bench_sgi2v.py --real``) supersedes this estimate.
"""

from __future__ import annotations

import argparse
import math
import types

import torch
from comfy_svd_harness import setup_comfyui
from provenance import default_json, write_results
from torch.utils.flop_counter import FlopCounterMode

LATENT_CHANNELS = 4


def use_sdpa() -> None:
    """Attention through PyTorch SDPA, ComfyUI's choice on a GPU (on the CPU it picks sub-quadratic attention, which
    asks the device for free memory)."""
    from comfy.ldm.modules import attention

    attention.optimized_attention = attention.attention_pytorch
    attention.optimized_attention_masked = attention.attention_pytorch


def build_meta_unet(real: bool):
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from trackdiffusion.nodes.patches.svd import svd_unet_config

    channels, context, head = (320, 1024, 64) if real else (32, 64, 16)
    with torch.device("meta"):
        unet = UNetModel(**svd_unet_config(channels, context, head), operations=comfy.ops.disable_weight_init)
    return unet.eval().requires_grad_(False), context


def unet_inputs(frames: int, height: int, width: int, context_dim: int, chunks: int):
    n = chunks * frames
    kw = {"device": "meta"}
    x = torch.empty(n, 2 * LATENT_CHANNELS, height // 8, width // 8, **kw)
    return x, {"timesteps": torch.empty(n, **kw), "context": torch.empty(n, 1, context_dim, **kw),
               "y": torch.empty(n, 768, **kw), "num_video_frames": frames,
               "image_only_indicator": torch.zeros(chunks, frames, **kw)}


def step_flops(unet, frames: int, height: int, width: int, context_dim: int) -> int:
    """FLOPs of one sampling step: the UNet forward on the CFG batch (cond + uncond)."""
    x, kwargs = unet_inputs(frames, height, width, context_dim, chunks=2)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(x, transformer_options={}, **kwargs)
    return counter.get_total_flops()


def iteration_flops(unet, frames: int, height: int, width: int, context_dim: int, layers, checkpoint) -> int:
    """FLOPs of one SG-I2V iteration: the patched optimisation forward on the conditional half and the backward to
    the latent, with the transformers in ``checkpoint`` recomputed."""
    from trackdiffusion.nodes.patches.sgi2v import CAPTURE_KEY, _attn1_forward, _Capture, _StopForward, _svt_forward

    last = layers[-1]
    saved = []
    for layer in layers:
        attn1 = unet.get_submodule(f"{layer}.transformer_blocks.0.attn1")
        saved.append((attn1, "forward"))
        attn1.forward = types.MethodType(_attn1_forward(layer, None), attn1)
    for name in checkpoint:
        svt = unet.get_submodule(name)
        saved.append((svt, "forward"))
        svt.forward = types.MethodType(_svt_forward(name, None), svt)
    capture = _Capture(tuple(layers), last, frames=frames, checkpoint=frozenset(checkpoint))
    try:
        x, kwargs = unet_inputs(frames, height, width, context_dim, chunks=1)
        z = torch.empty(frames, LATENT_CHANNELS, height // 8, width // 8, device="meta", requires_grad=True)
        with torch.enable_grad(), FlopCounterMode(display=False) as counter:
            inp = torch.cat([z, x[:, LATENT_CHANNELS:]], 1)
            try:
                unet(inp, transformer_options={CAPTURE_KEY: capture}, **kwargs)
            except _StopForward:
                pass
            loss = sum(capture.features[n].float().square().mean() for n in layers)
            torch.autograd.grad(loss, z)
        return counter.get_total_flops()
    finally:
        for module, attr in saved:
            module.__dict__.pop(attr, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the 32-channel UNet at 4 frames, 64x64 (counter check)")
    parser.add_argument("--json", help="results file (default: dev/benchmarks/results_sgi2v_flops.json, "
                        "results_sgi2v_flops_tiny.json with --tiny; '-' = none)")
    args = parser.parse_args()
    if args.json is None:
        args.json = str(default_json("sgi2v_flops_tiny" if args.tiny else "sgi2v_flops"))
    setup_comfyui()
    from trackdiffusion.models.guidance.sgi2v import DEFAULT_LAYERS, SGI2VConfig
    from trackdiffusion.nodes.patches.sgi2v import _transformer_scales, plan_checkpointing

    use_sdpa()
    real = not args.tiny
    frames, height, width, steps = (14, 576, 1024, 50) if real else (4, 64, 64, 10)
    budget_gb = 24.0
    unet, context = build_meta_unet(real)
    weights_bytes = 2 * sum(p.numel() for p in unet.parameters())  # fp16 on the card
    layers = list(DEFAULT_LAYERS)
    guided = len(SGI2VConfig().guided_steps(steps))
    scales = _transformer_scales(unet)
    budget = budget_gb * 2**30 - weights_bytes - 2**30  # as _activation_budget on CUDA with memory_budget_gb
    plan = sorted(plan_checkpointing(scales, layers[-1], frames, height // 8, width // 8, 2, budget, "auto"))
    activations = sorted(plan_checkpointing(scales, layers[-1], frames, height // 8, width // 8, 2, 0.0, "all"))

    step = step_flops(unet, frames, height, width, context)
    plain = iteration_flops(unet, frames, height, width, context, layers, [])
    recomputed = iteration_flops(unet, frames, height, width, context, layers, plan) if plan else plain
    print(f"SG-I2V FLOP estimate ({'real' if real else 'tiny'} width): {frames} frames, {width}x{height}, {steps} "
          f"steps, {guided} guided")
    print(f"  sampling step (cond + uncond)   {step / 1e12:9.3f} TFLOP")
    print(f"  iteration, no recomputation     {plain / 1e12:9.3f} TFLOP  ({plain / step:.2f} steps)")
    print(f"  iteration, {budget_gb:g} GB plan           {recomputed / 1e12:9.3f} TFLOP  ({recomputed / step:.2f} "
          f"steps; recomputes {', '.join(plan) or 'nothing'})")

    def ratio(iteration: int, iterations: int) -> float:
        return (steps * step + guided * iterations * iteration) / (steps * step)

    variants = {
        "no recomputation, 5 iterations": {"iterations": 5, "checkpoint": [], "ratio": ratio(plain, 5)},
        f"within {budget_gb:g} GB, 5 iterations": {"iterations": 5, "checkpoint": plan, "ratio": ratio(recomputed, 5)},
        "no recomputation, 4 iterations": {"iterations": 4, "checkpoint": [], "ratio": ratio(plain, 4)},
        f"within {budget_gb:g} GB, 4 iterations": {"iterations": 4, "checkpoint": plan, "ratio": ratio(recomputed, 4)},
    }
    for name, v in variants.items():
        print(f"  guided / unguided, {name:<30} x{v['ratio']:.2f}")
    settings = {"real_width": real, "model_channels": 320 if real else 32, "frames": frames, "height": height,
                "width": width, "steps": steps, "guided_steps": guided, "layers": layers,
                "memory_budget_gb": budget_gb, "weights_bytes_fp16": weights_bytes,
                "activation_budget_bytes": budget,
                "all_transformers_before_stop": activations,
                "method": "torch.utils.flop_counter on the meta device; time assumed proportional to FLOPs"}
    results = {"step_flops": step, "iteration_flops": plain, "iteration_flops_recomputed": recomputed,
               "checkpointed": plan, "checkpointed_count": len(plan), "variants": variants,
               "iteration_in_steps": plain / step, "iteration_recomputed_in_steps": recomputed / step}
    assert math.isfinite(step) and step > 0
    write_results(args.json, "sgi2v_flops", settings, results)


if __name__ == "__main__":
    main()
