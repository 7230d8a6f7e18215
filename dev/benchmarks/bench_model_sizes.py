"""Sizes the README quotes, counted from the code and the committed weights (no download, nothing allocated):

- the converted TrackDiffusion SVD delta: every tensor ``trackdiffusion weights convert`` takes from the official
  stage-2 UNet (16 fusers, the box position net, conv_in, conv_out, 38 mix factors), shapes from the converter's own
  expected layout, bytes in fp16;
- the TrackGo TrackAdapter for SVD (trajectory encoder + one adapter per temporal attention of the 16
  spatio-temporal transformers), built on the meta device;
- the embedded demo model: parameters in ``models/demo/weights/demo_box_i2v.safetensors`` and the training steps its
  metadata records.

    OMP_NUM_THREADS=1 python dev/benchmarks/bench_model_sizes.py [--json dev/benchmarks/results_model_sizes.json]
"""

from __future__ import annotations

import argparse
import math

import torch
from provenance import add_json_option, write_results

from trackdiffusion.models.demo.cli import WEIGHTS


def svd_delta() -> dict:
    from trackdiffusion.models.checkpoints.convert import _svd_expected
    from trackdiffusion.models.svd.adapter import SVD_ATTENTION_BLOCKS, TrackDiffusionSVDAdapter

    shapes = _svd_expected({})
    params = sum(math.prod(s) for s in shapes.values())
    with torch.device("meta"):
        adapter = TrackDiffusionSVDAdapter()
    return {"tensors": len(shapes), "parameters": params, "bytes_fp16": 2 * params, "megabytes_fp16": 2 * params / 1e6,
            "fusers": len(SVD_ATTENTION_BLOCKS), "mix_factors": sum(1 for k in shapes if k.endswith("mix_factor")),
            "adapter_parameters": sum(p.numel() for p in adapter.parameters())}


def trackgo_adapter() -> dict:
    from trackdiffusion.models.svd.adapter import SVD_ATTENTION_BLOCKS, SVD_FUSER_CHANNELS
    from trackdiffusion.models.trackgo.adapter import TrackGoAdapter

    with torch.device("meta"):
        adapter = TrackGoAdapter(list(zip(SVD_ATTENTION_BLOCKS, SVD_FUSER_CHANNELS, strict=True)))
    params = sum(p.numel() for p in adapter.parameters())
    return {"layers": len(adapter.layer_names), "parameters": params, "millions": params / 1e6,
            "encoder_parameters": sum(p.numel() for p in adapter.encoder.parameters())}


def demo_model() -> dict:
    from safetensors import safe_open

    with safe_open(str(WEIGHTS), "pt") as f:
        names = f.keys()  # safe_open is not iterable
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in names)
        metadata = dict(f.metadata() or {})
    return {"parameters": params, "millions": params / 1e6, "file_bytes": WEIGHTS.stat().st_size,
            "training_steps": int(metadata.get("steps", 0)), "metadata": metadata}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_json_option(parser, "model_sizes")
    args = parser.parse_args()
    results = {"svd_delta": svd_delta(), "trackgo_adapter": trackgo_adapter(), "demo_model": demo_model()}
    d, t, m = results["svd_delta"], results["trackgo_adapter"], results["demo_model"]
    print(f"TrackDiffusion SVD delta: {d['tensors']} tensors, {d['parameters']:,} parameters, "
          f"{d['megabytes_fp16']:.1f} MB in fp16")
    print(f"TrackGo TrackAdapter for SVD: {t['layers']} layers, {t['parameters']:,} parameters")
    print(f"demo model: {m['parameters']:,} parameters, {m['file_bytes']:,} bytes, {m['training_steps']} steps")
    write_results(args.json, "model_sizes", {"svd": "the real SVD layout (320 channels, context 1024)",
                                             "fp16_bytes_per_parameter": 2}, results, weights=[WEIGHTS])


if __name__ == "__main__":
    main()
