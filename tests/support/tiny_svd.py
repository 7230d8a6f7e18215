"""One tiny Stable Video Diffusion, two implementations: a diffusers ``UNetSpatioTemporalConditionModel`` in the real
SVD img2vid layout (4 levels, 16 spatio-temporal transformers, ``added_time_ids``) at 1/10 of the width, and the same
weights as a ComfyUI SVD ``MODEL`` (renamed with the pack's diffusers -> ComfyUI map, loaded through ComfyUI's own
state-dict detection). Random weights: for plumbing and equivalence, not for pictures.

Also the parts of a whole ``svd.safetensors`` (img2vid checkpoint) at that size, for running the example workflows
with ComfyUI's stock Image Only Checkpoint Loader: a TAESD-architecture VAE (ComfyUI's own small 4-channel VAE) and a
tiny CLIP ViT image encoder. ComfyUI picks a CLIP vision config by layer count only (ViT-L/H/G), so
:func:`tiny_detection` teaches it, for the test session, the tiny SVD's UNet width and a tiny CLIP vision config.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

CHANNELS = 32  #: UNet model_channels (real: 320)
CONTEXT = 64  #: image-embedding width = cross-attention dim (real: 1024)
HEAD_DIM = 16  #: attention head width (real: 64)
#: the diffusers config of the tiny SVD UNet (num_frames is set per instance)
DIFFUSERS_CONFIG = {
    "sample_size": 8, "in_channels": 8, "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    "block_out_channels": tuple(CHANNELS * m for m in (1, 2, 4, 4)), "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768, "layers_per_block": 2, "cross_attention_dim": CONTEXT,
    "transformer_layers_per_block": 1, "num_attention_heads": tuple(CHANNELS * m // HEAD_DIM for m in (1, 2, 4, 4)),
}
#: a CLIP ViT config in the form ComfyUI's ClipVisionModel reads (clip_vision_config_h.json, shrunk)
CLIP_VISION_CONFIG = {
    "attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 32, "image_size": 32,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 64, "layer_norm_eps": 1e-5,
    "model_type": "clip_vision_model", "num_attention_heads": 2, "num_channels": 3, "num_hidden_layers": 2,
    "patch_size": 16, "projection_dim": CONTEXT, "torch_dtype": "float32",
}
CLIP_VISION_PREFIX = "conditioner.embedders.0.open_clip.model.visual."


def diffusers_unet(frames: int = 14, seed: int = 0, scale: float = 1.0):
    """The tiny diffusers SVD UNet with seeded random weights (``scale`` multiplies every non-norm tensor: the
    default init keeps the output near the input, so tests that want a busy UNet raise it)."""
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(**DIFFUSERS_CONFIG, num_frames=frames).eval()
    if scale != 1.0:
        with torch.no_grad():
            for name, p in unet.named_parameters():
                if "norm" not in name:
                    p.mul_(scale)
    return unet


def comfy_unet_state_dict(unet, prefix: str = "model.diffusion_model.") -> dict[str, torch.Tensor]:
    """The diffusers UNet's base weights in ComfyUI naming (any grafted TrackDiffusion modules are left out)."""
    from trackdiffusion.models.svd.naming import diffusers_to_comfyui, svd_diffusers_keys

    base = set(svd_diffusers_keys())
    state = unet.state_dict()
    missing = base - set(state)
    assert not missing, f"the tiny UNet lacks {sorted(missing)[:5]}"
    return {prefix + diffusers_to_comfyui(k): v.detach().clone() for k, v in state.items() if k in base}


def _tiny_config_class():
    import comfy.supported_models

    base = comfy.supported_models.SVD_img2vid

    class TinySVD(base):
        unet_config = dict(base.unet_config, model_channels=CHANNELS, context_dim=CONTEXT)  # noqa: RUF012
        # attention in the model's own dtype: SVD's float32 upcast would make a float64 comparison a float32 one
        unet_extra_config = dict(base.unet_extra_config, num_head_channels=HEAD_DIM, attn_precision=None)  # noqa: RUF012

    return TinySVD


@contextlib.contextmanager
def tiny_detection(clip_vision_json: Path | None = None):
    """While open: ComfyUI's model detection knows the tiny SVD (a supported-model entry at this width) and, given
    ``clip_vision_json``, builds a CLIP vision model with that config from a checkpoint whose encoder has the tiny
    layout. Test-only; everything else goes through ComfyUI unchanged."""
    import comfy.clip_vision
    import comfy.supported_models

    tiny = _tiny_config_class()
    comfy.supported_models.models.insert(0, tiny)
    original = comfy.clip_vision.load_clipvision_from_sd

    def load_clipvision_from_sd(sd, prefix="", convert_keys=False):
        clip = original(sd, prefix, convert_keys)
        if clip is not None or clip_vision_json is None:
            return clip
        converted = comfy.clip_vision.convert_to_transformers(sd, prefix) if convert_keys else sd
        width = converted.get("vision_model.encoder.layers.0.layer_norm1.weight")
        if width is None or width.shape[0] != CLIP_VISION_CONFIG["hidden_size"]:
            return None
        clip = comfy.clip_vision.ClipVisionModel(str(clip_vision_json))
        missing, _ = clip.load_sd(converted)
        assert not missing, f"tiny CLIP vision: missing {missing[:5]}"
        return clip

    comfy.clip_vision.load_clipvision_from_sd = load_clipvision_from_sd
    try:
        yield tiny
    finally:
        comfy.clip_vision.load_clipvision_from_sd = original
        comfy.supported_models.models.remove(tiny)


def load_comfy_model(unet, dtype: torch.dtype | None = None):
    """A ComfyUI SVD ModelPatcher holding the diffusers UNet's weights, loaded by ComfyUI's own detection (in
    ``dtype`` when given, as a user's ``weight_dtype`` choice would)."""
    import comfy.sd

    with tiny_detection():
        model = comfy.sd.load_diffusion_model_state_dict(comfy_unet_state_dict(unet),
                                                         model_options={"dtype": dtype} if dtype else {})
    assert type(model.model).__name__ == "SVD_img2vid", type(model.model).__name__
    return model


def write_clip_vision_json(path: Path) -> Path:
    path.write_text(json.dumps(CLIP_VISION_CONFIG))
    return path


def _open_clip_visual(seed: int) -> dict[str, torch.Tensor]:
    """A tiny CLIP ViT in open_clip's key layout (what an SVD checkpoint stores under its image embedder)."""
    g = torch.Generator().manual_seed(seed)
    c, ff = CLIP_VISION_CONFIG["hidden_size"], CLIP_VISION_CONFIG["intermediate_size"]
    grid = CLIP_VISION_CONFIG["image_size"] // CLIP_VISION_CONFIG["patch_size"]
    p = CLIP_VISION_CONFIG["patch_size"]

    def rand(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    sd = {"conv1.weight": rand(c, 3, p, p), "class_embedding": rand(c), "positional_embedding": rand(grid * grid + 1, c),
          "ln_pre.weight": torch.ones(c), "ln_pre.bias": torch.zeros(c), "ln_post.weight": torch.ones(c),
          "ln_post.bias": torch.zeros(c), "proj": rand(c, CLIP_VISION_CONFIG["projection_dim"], std=0.2)}
    for i in range(CLIP_VISION_CONFIG["num_hidden_layers"]):
        r = f"transformer.resblocks.{i}."
        sd.update({r + "ln_1.weight": torch.ones(c), r + "ln_1.bias": torch.zeros(c),
                   r + "ln_2.weight": torch.ones(c), r + "ln_2.bias": torch.zeros(c),
                   r + "attn.in_proj_weight": rand(3 * c, c, std=0.2), r + "attn.in_proj_bias": torch.zeros(3 * c),
                   r + "attn.out_proj.weight": rand(c, c, std=0.2), r + "attn.out_proj.bias": torch.zeros(c),
                   r + "mlp.c_fc.weight": rand(ff, c, std=0.2), r + "mlp.c_fc.bias": torch.zeros(ff),
                   r + "mlp.c_proj.weight": rand(c, ff, std=0.2), r + "mlp.c_proj.bias": torch.zeros(c)})
    return sd


def _taesd_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """ComfyUI's TAESD at 4 latent channels with seeded weights (its layers skip initialisation: fill them here)."""
    import comfy.taesd.taesd

    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in comfy.taesd.taesd.TAESD(latent_channels=4).state_dict().items():
        if key in ("vae_scale", "vae_shift"):
            out[key] = value
        elif value.dim() > 1:  # conv weight: a scale that keeps activations finite and of order 1
            out[key] = torch.randn(value.shape, generator=g) * (0.5 / value[0].numel()) ** 0.5
        else:
            out[key] = torch.zeros(value.shape)
    return out


def write_svd_checkpoint(path: Path, unet=None, seed: int = 0) -> Path:
    """A whole img2vid checkpoint (``model.diffusion_model.*``, ``first_stage_model.*`` and the image encoder) for the
    tiny SVD, loadable by ComfyUI's Image Only Checkpoint Loader inside :func:`tiny_detection`."""
    from safetensors.torch import save_file

    unet = unet if unet is not None else diffusers_unet(seed=seed, scale=2.0)
    sd = {k: v.half() for k, v in comfy_unet_state_dict(unet).items()}  # fp16 as the real file; half the bytes
    sd.update({f"first_stage_model.{k}": v for k, v in _taesd_state_dict(seed).items()})
    sd.update({CLIP_VISION_PREFIX + k: v for k, v in _open_clip_visual(seed).items()})
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


#: config.json's ``_name_or_path`` of the official stage checkpoints (the converter reads the stage from it)
STAGE_NAME = {1: "svd_stage1/checkpoint-191500", 2: "svd_stage2/checkpoint-87000"}


def write_official_trackdiffusion(folder: Path, base_unet, *, seed: int = 1, gate: float = 0.5, stage: int = 2,
                                  finetune: bool = True):
    """Write what the official release holds for SVD (``svd_stage2/unet``: a whole diffusers UNet with the
    TrackDiffusion position net and fusers at their official keys, and ``config.json``), made from ``base_unet``:
    random TrackDiffusion modules with gates ``gate`` and, with ``finetune``, conv_in / conv_out / mix factors moved
    off the base (as the official fine-tune did). Returns (the safetensors path, the fine-tuned diffusers UNet with
    its attachment still on)."""
    import copy

    from safetensors.torch import save_file

    from trackdiffusion.models.svd import attach_trackdiffusion_svd

    unet = copy.deepcopy(base_unet)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if finetune:
            for name, p in unet.named_parameters():
                if name.startswith(("conv_in.", "conv_out.")) or name.endswith("mix_factor"):
                    p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
        attachment = attach_trackdiffusion_svd(unet, hidden_dim=64)
        for name, p in attachment.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")):
                p.fill_(gate)
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "diffusion_pytorch_model.safetensors"
    save_file({k: v.detach().contiguous() for k, v in unet.state_dict().items()}, str(path))
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(unet.config).items()}
    config.update(_class_name="UNetSpatioTemporalConditionModel", _name_or_path=STAGE_NAME[stage])
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return path, unet, attachment
