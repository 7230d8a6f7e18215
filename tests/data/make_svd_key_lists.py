"""Regenerate the real SVD UNet key lists used by the weight-converter tests.

    cd /work/main && OMP_NUM_THREADS=1 .venv/bin/python tests/data/make_svd_key_lists.py [--comfyui /path/to/ComfyUI]

Writes two files beside this script, each ``{"generator": ..., "source": ..., "count": N, "keys": [[name, shape], ...]}``
in state-dict order:

* ``svd_diffusers_keys.json``: ``diffusers.UNetSpatioTemporalConditionModel()`` with its default config (which is the
  real SVD / SVD-XT UNet config), built on the meta device, so no weights are needed and nothing is allocated.
* ``svd_comfyui_keys.json``: ComfyUI's SVD UNet (``comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel``),
  built on the meta device from ``comfy.supported_models.SVD_img2vid`` (its matching ``unet_config`` plus
  ``unet_extra_config``), the layout ``comfy.model_detection.detect_unet_config`` derives for a real SVD checkpoint
  (residual blocks, channel multipliers, transformer depths) and the video extras it adds when temporal keys are
  present. As a self-check the script runs ComfyUI's own detection on the built state dict and insists it comes back
  as ``SVD_img2vid`` with the same config.

Only this script needs ComfyUI (``--comfyui``, else found as the tests find it: tests/support/comfyui.py)
and diffusers; the tests read the committed JSON files. The torchvision stand-in from ``tests/stubs`` is put first on
``sys.path`` so that ComfyUI imports without the real torchvision.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _dump(path: Path, source: str, state_dict) -> int:
    keys = [[name, list(t.shape)] for name, t in state_dict.items()]
    doc = {"generator": "tests/data/make_svd_key_lists.py", "source": source, "count": len(keys), "keys": keys}
    # one key per line: small, diff-friendly, still plain JSON
    body = ",\n".join(json.dumps(k, separators=(",", ":")) for k in keys)
    head = json.dumps({k: v for k, v in doc.items() if k != "keys"}, separators=(",", ":"))[:-1]
    path.write_text(head + ',"keys":[\n' + body + "\n]}\n", encoding="utf-8")
    json.loads(path.read_text(encoding="utf-8"))  # sanity: it parses
    return len(keys)


def diffusers_keys() -> tuple[str, dict]:
    import diffusers
    import torch

    with torch.device("meta"):
        model = diffusers.UNetSpatioTemporalConditionModel()
    return f"diffusers {diffusers.__version__} UNetSpatioTemporalConditionModel() default config", model.state_dict()


def comfyui_svd_config(comfy_supported_models) -> dict:
    """The full UNetModel kwargs ComfyUI uses for a real SVD img2vid checkpoint."""
    svd = comfy_supported_models.SVD_img2vid
    config = {
        # detect_unet_config's fixed entries
        "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "num_classes": "sequential", "out_channels": 4,
        # what detection reads from a real SVD state dict (2 res blocks per level, depth-1 transformers)
        "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4],
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "transformer_depth_middle": 1,
        # the video extras detection adds when time_stack keys are present (time_stack attn2 exists in SVD)
        "extra_ff_mix_layer": True, "use_spatial_context": True, "merge_strategy": "learned_with_images",
        "merge_factor": 0.0, "video_kernel_size": [3, 1, 1], "disable_temporal_crossattention": False,
    }
    config.update(svd.unet_config)
    config.update(svd.unet_extra_config)
    return config


def comfyui_keys(comfy_root: Path) -> tuple[str, dict]:
    sys.path[:0] = [str(REPO / "tests" / "stubs"), str(comfy_root)]
    from comfy.cli_args import args

    args.cpu = True
    import comfy.model_detection
    import comfy.ops
    import comfy.supported_models
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = comfyui_svd_config(comfy.supported_models)
    with torch.device("meta"):
        unet = UNetModel(**config, device="meta", operations=comfy.ops.disable_weight_init)
    sd = unet.state_dict()

    detected = comfy.model_detection.model_config_from_unet(sd, "")
    if type(detected).__name__ != "SVD_img2vid":
        raise SystemExit(f"ComfyUI detects the built UNet as {type(detected).__name__}, not SVD_img2vid")
    differing = {k for k in detected.unet_config if detected.unet_config[k] != config.get(k, detected.unet_config[k])}
    if differing:
        raise SystemExit(f"ComfyUI's detected config differs from the one used here in {sorted(differing)}")
    version = "?"
    vfile = comfy_root / "comfyui_version.py"
    if vfile.is_file():
        for line in vfile.read_text().splitlines():
            if line.startswith("__version__"):
                version = line.split("=", 1)[1].strip().strip("\"'")
    return (f"ComfyUI {version} openaimodel.UNetModel, SVD_img2vid config (detected back as SVD_img2vid), "
            "state_dict() without the 'model.diffusion_model.' prefix"), sd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sys.path.insert(0, str(REPO / "tests"))
    from support.comfyui import find_comfyui

    default = find_comfyui()
    ap.add_argument("--comfyui", default=default, required=default is None,
                    help=f"ComfyUI checkout (default: {default}, found as the tests find it)")
    a = ap.parse_args()
    src, sd = diffusers_keys()
    print("diffusers:", _dump(HERE / "svd_diffusers_keys.json", src, sd), "keys")
    src, sd = comfyui_keys(Path(a.comfyui))
    print("ComfyUI:", _dump(HERE / "svd_comfyui_keys.json", src, sd), "keys")


if __name__ == "__main__":
    main()
