"""TrackDiffusion-SVD patch: UNet step time, FLOPs and peak memory, patched over unpatched, measured interleaved in
one process on ComfyUI's real SVD UNet (random weights).

    OMP_NUM_THREADS=1 python benchmarks/bench_svd_patch.py               # tiny width, CPU: a regression guard
    python benchmarks/bench_svd_patch.py --real --frames 14 --height 576 --width 1024   # on a GPU

Needs a ComfyUI checkout (COMFYUI_PATH, else ../ComfyUI).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]


def setup_comfyui():
    path = Path(os.environ.get("COMFYUI_PATH", REPO.parent / "ComfyUI"))
    if not (path / "comfy").is_dir():
        sys.exit(f"ComfyUI not found at {path}: set COMFYUI_PATH")
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):  # absent, or a CUDA-only build on a CPU torch
        sys.path.insert(0, str(REPO / "tests" / "stubs"))
    sys.path.insert(0, str(path))
    from comfy.cli_args import args

    args.cpu = not torch.cuda.is_available()


def build_unet(channels: int, context_dim: int, head_dim: int, device):
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = {"use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
              "num_classes": "sequential", "out_channels": 4, "num_res_blocks": [2, 2, 2, 2],
              "channel_mult": [1, 2, 4, 4], "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
              "transformer_depth_middle": 1, "extra_ff_mix_layer": True, "use_spatial_context": True,
              "merge_strategy": "learned_with_images", "merge_factor": 0.0, "video_kernel_size": [3, 1, 1],
              "disable_temporal_crossattention": False, "model_channels": channels, "in_channels": 8,
              "use_linear_in_transformer": True, "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
              "context_dim": context_dim, "adm_in_channels": 768, "use_temporal_attention": True,
              "use_temporal_resblock": True, "num_heads": -1, "num_head_channels": head_dim,
              "attn_precision": torch.float32}
    unet = UNetModel(**config, device=device, operations=comfy.ops.manual_cast)
    with torch.no_grad():
        for p in unet.parameters():
            p.normal_(0, 0.02)
    return unet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", action="store_true", help="the real SVD width (320 channels, context 1024)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    setup_comfyui()
    from trackdiffusion.models.svd_adapter import TrackDiffusionSVDAdapter, slots_to_svd_boxes
    from trackdiffusion.patching.comfy_svd import PATCH_KEY, TEMPORAL_FLAG, _spatial_video_transformers
    from trackdiffusion.tracklets import load

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    channels, context, head = (320, 1024, 64) if args.real else (32, 64, 16)
    unet = build_unet(channels, context, head, device).to(dtype)
    blocks = [(name, svt.in_channels) for name, svt in _spatial_video_transformers(unet)]
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=context, head_dim=head, device=device, dtype=dtype)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.02)
        for f in adapter.fusers.values():
            f.alpha_attn.fill_(0.5)
            f.alpha_dense.fill_(0.5)
    objects = [{"id": i, "keyframes": [{"frame": 0, "box": [10 * i, 10, 10 * i + 100, 200]}]} for i in range(8)]
    t = load({"version": 1, "width": args.width, "height": args.height, "num_frames": args.frames,
              "objects": objects}, strict=False)
    boxes, masks = slots_to_svd_boxes(t.to_slots(args.frames, args.width, args.height))
    with torch.no_grad():
        tokens = adapter.box_tokens(boxes[None].to(device, dtype), masks[None].to(device, dtype))

    def middle_patch(x, extra):
        if extra.get(TEMPORAL_FLAG):
            return x
        fuser = adapter.fuser_for(extra["block"])
        return x if fuser is None else fuser(x, extra[PATCH_KEY]["tokens"])

    # The same hooks the ComfyUI patch installs, on a bare UNet so both variants run in this process.
    originals = {}
    for name, svt in _spatial_video_transformers(unet):
        for block in svt.time_stack:
            def flagged(x, context=None, transformer_options={}, _b=block):  # noqa: B006
                return type(_b).forward(_b, x, context=context,
                                        transformer_options={**transformer_options, TEMPORAL_FLAG: True})
            originals[block] = flagged

    f, h, w = args.frames, args.height // 8, args.width // 8
    x = torch.randn(f, 8, h, w, device=device, dtype=dtype)
    ts = torch.full((f,), 0.5, device=device, dtype=dtype)
    ctx = torch.randn(f, 1, context, device=device, dtype=dtype)
    y = torch.randn(f, 768, device=device, dtype=dtype)

    def run(patched: bool):
        options = {}
        if patched:
            options = {"patches": {"middle_patch": [middle_patch]}, PATCH_KEY: {"tokens": tokens}}
            for block, fn in originals.items():
                block.forward = fn
        try:
            with torch.no_grad():
                return unet(x, ts, ctx, y, transformer_options=options, num_video_frames=f)
        finally:
            for block in originals:
                block.__dict__.pop("forward", None)

    def timed(patched):
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        run(patched)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, (torch.cuda.max_memory_allocated() if device.type == "cuda" else 0)

    flops = {}
    for patched in (False, True):
        with FlopCounterMode(display=False) as counter:
            run(patched)
        flops[patched] = counter.get_total_flops()
    run(False), run(True)  # warm-up
    times = {False: [], True: []}
    memory = {False: 0, True: 0}
    for _ in range(args.repeats):
        for patched in (False, True):  # interleaved, so machine noise hits both alike
            seconds, peak = timed(patched)
            times[patched].append(seconds)
            memory[patched] = max(memory[patched], peak)
    base, ours = statistics.median(times[False]), statistics.median(times[True])
    print(f"SVD UNet {'real width' if args.real else 'tiny width (32 channels)'}, {f} frames, "
          f"{args.height}x{args.width}, {device.type} {dtype}, median of {args.repeats} interleaved steps")
    print(f"  unpatched {base * 1000:8.1f} ms   patched {ours * 1000:8.1f} ms   time ratio {ours / base:.3f}")
    print(f"  FLOPs     {flops[False] / 1e9:8.2f} G    patched {flops[True] / 1e9:8.2f} G   "
          f"FLOP ratio {flops[True] / flops[False]:.3f}")
    if device.type == "cuda":
        print(f"  peak memory unpatched {memory[False] / 2**30:.2f} GiB, patched {memory[True] / 2**30:.2f} GiB, "
              f"ratio {memory[True] / memory[False]:.3f}")


if __name__ == "__main__":
    main()
