"""TrackDiffusion-SVD patch: sampling-step time, FLOPs and peak memory, patched over unpatched, interleaved in one
process on ComfyUI's SVD UNet with random weights (the patch code runs exactly as in a workflow).

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_svd_patch.py                                  # tiny width, CPU
    python dev/benchmarks/bench_svd_patch.py --real --frames 14 --height 576 --width 1024        # on a GPU

The FLOP floor of the fusers at the real size is about +34%; the measured time ratio should stay within 10% of the
FLOP ratio. Needs a ComfyUI checkout (found as the tests find it).
Results (with provenance) go to ``dev/benchmarks/results_svd_patch.json`` (``results_svd_patch_real.json`` with
``--real``) unless ``--json`` says otherwise; README's table is rendered from them (``dev/benchmarks/readme_tables.py``).
"""

from __future__ import annotations

import torch
from comfy_svd_harness import build_svd, compare, parse_patch_args, patch_settings, setup_comfyui
from provenance import write_results


def main() -> None:
    args = parse_patch_args("svd_patch")
    setup_comfyui()
    from trackdiffusion.data.tracklets import load
    from trackdiffusion.models.svd.adapter import TrackDiffusionSVDAdapter
    from trackdiffusion.nodes.patches.svd import (
        _spatial_video_transformers,
        apply_trackdiffusion_svd,
        load_svd_adapter,
    )

    model, context = build_svd(args.real)
    blocks = [(n, s.in_channels) for n, s in _spatial_video_transformers(model.get_model_object("diffusion_model"))]
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=context, head_dim=64 if args.real else 16)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.02)
        for fuser in adapter.fusers.values():
            fuser.alpha_attn.fill_(0.5)
            fuser.alpha_dense.fill_(0.5)
    bundle = load_svd_adapter(adapter.delta_state_dict(), {"head_dim": "64" if args.real else "16"})
    objects = [{"id": i, "keyframes": [{"frame": 0, "box": [4 * i, 4, 4 * i + 20, 30]}]} for i in range(8)]
    tracklets = load({"version": 1, "width": args.width, "height": args.height, "num_frames": args.frames,
                      "objects": objects})
    patched = apply_trackdiffusion_svd(model, bundle, tracklets)
    results = compare("TrackDiffusion-SVD patch" + (" (real width)" if args.real else " (tiny width, 32 channels)"),
                      {"unpatched": model, "patched": patched}, args.frames, args.height, args.width, context,
                      args.repeats)
    write_results(args.json, "svd_patch", patch_settings(args), results)


if __name__ == "__main__":
    main()
