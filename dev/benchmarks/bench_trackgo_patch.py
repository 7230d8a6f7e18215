"""TrackGo TrackAdapter patch: sampling-step time, FLOPs and peak memory with the adapter over without, interleaved in
one process on ComfyUI's SVD UNet with random weights.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_trackgo_patch.py                              # tiny width, CPU
    python dev/benchmarks/bench_trackgo_patch.py --real --frames 14 --height 576 --width 1024   # on a GPU

The FLOP floor of the TrackAdapter is about +2%; the goal is at most +5% time on a GPU.
Results (with provenance) go to ``dev/benchmarks/results_trackgo_patch.json`` (``results_trackgo_patch_real.json`` with
``--real``) unless ``--json`` says otherwise; README's table is rendered from them (``dev/benchmarks/readme_tables.py``).
"""

from __future__ import annotations

import json

import numpy as np
import torch
from comfy_svd_harness import build_svd, compare, parse_patch_args, patch_settings, setup_comfyui
from provenance import write_results


def random_trackgo_patch(model, width: int, height: int, frames: int, real: bool):
    """``model`` patched with a random TrackAdapter (level widths SVD's when ``real``, a tenth otherwise) following
    two masks' trajectories (a moving square and a still background), tau -100."""
    from trackdiffusion.data.trajectories import build_point_trajectories
    from trackdiffusion.models.trackgo.adapter import SVD_LEVEL_CHANNELS, TRACKGO_FORMAT, TrackGoAdapter
    from trackdiffusion.nodes.patches.svd import _spatial_video_transformers
    from trackdiffusion.nodes.patches.trackgo import apply_trackgo, load_trackgo_adapter

    svts = _spatial_video_transformers(model.get_model_object("diffusion_model"))
    layers = [(name, svt.time_stack[0].attn1.to_q.weight.shape[0]) for name, svt in svts]
    levels = SVD_LEVEL_CHANNELS if real else tuple(c // 10 for c in SVD_LEVEL_CHANNELS)
    adapter = TrackGoAdapter(layers, level_channels=levels)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.05)
    bundle = load_trackgo_adapter(adapter.state_dict(), {"format": TRACKGO_FORMAT,
                                                         "config": json.dumps(adapter.config()), "trained_steps": "1"})
    masks = np.zeros((2, height, width), bool)
    masks[0, height // 4: height // 2, width // 4: width // 2] = True
    masks[1] = True
    arrows = [[[width // 3, height // 3], [2 * width // 3, height // 2]], [[0, 0], [8, 0]]]
    return apply_trackgo(model, bundle, build_point_trajectories(masks, arrows, frames), tau=-100.0)


def main() -> None:
    args = parse_patch_args("trackgo_patch")
    setup_comfyui()
    model, context = build_svd(args.real)
    patched = random_trackgo_patch(model, args.width, args.height, args.frames, args.real)
    results = compare("TrackGo TrackAdapter patch" + (" (real width)" if args.real else " (tiny width)"),
                      {"unpatched": model, "patched": patched}, args.frames, args.height, args.width, context,
                      args.repeats)
    write_results(args.json, "trackgo_patch", patch_settings(args), results)


if __name__ == "__main__":
    main()
