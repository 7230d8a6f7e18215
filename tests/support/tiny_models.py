"""Tiny randomly initialised diffusers folders for tests (no downloads).

* :func:`write_clip_tokenizer`: a ``CLIPTokenizer`` folder (vocab.json + merges.txt of single byte-level characters),
  so any text tokenizes without a hub file.
* :func:`tiny_svd_unet`: a 2-level ``UNetSpatioTemporalConditionModel`` (the SVD UNet class), 8 latent channels in.
* :func:`build_tiny_t2v_folder`: a ``TextToVideoSDPipeline`` folder (model_index.json, unet, vae, text_encoder,
  tokenizer, scheduler) whose UNet3D carries the TrackDiffusion tensors in the official layout (as the released
  ``modelscope_ft/unet``), with non-zero gates so the tracklets change the output.

Shared by the unit tests and the real-ComfyUI integration tests (which import this file by path).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

TINY_CROSS = 32  #: text width = UNet cross-attention dim
TINY_UNET3D = {
    "sample_size": 8, "block_out_channels": (32, 64), "down_block_types": ("CrossAttnDownBlock3D", "DownBlock3D"),
    "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D"), "cross_attention_dim": TINY_CROSS,
    "attention_head_dim": 8, "layers_per_block": 1, "norm_num_groups": 8,
}
#: :func:`tiny_svd_unet`'s ``UNetSpatioTemporalConditionModel`` config, less ``num_frames``
TINY_SVD_UNET = {
    "sample_size": 8, "in_channels": 8, "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    "block_out_channels": (32, 64), "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 24,
    "layers_per_block": 2, "cross_attention_dim": TINY_CROSS, "num_attention_heads": (2, 4),
}
TINY_HIDDEN = 64  #: position-net MLP width
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def _bytes_to_unicode() -> list[str]:
    """The 256 printable characters GPT-2/CLIP byte-level BPE uses for the bytes 0..255."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_clip_tokenizer(folder: str | Path):
    """Write and return a tiny ``CLIPTokenizer`` (vocab: the 256 byte characters, each also with ``</w>``)."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77,
                        pad_token="<|endoftext|>")
    tok.save_pretrained(str(folder))
    return tok


def tiny_text_encoder(tokenizer, dim: int = TINY_CROSS, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=dim, intermediate_size=2 * dim,
                            num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                            projection_dim=dim, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return CLIPTextModel(config).eval()


def tiny_vae(seed: int = 0):
    """An AutoencoderKL with 4 levels (scale factor 8, as SD), 8 channels wide."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8),
                         down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                         layers_per_block=1, norm_num_groups=4, sample_size=64).eval()


def tiny_trackdiffusion_unet3d(seed: int = 0, *, trackdiffusion: bool = True, gates: float = 0.5):
    """A tiny UNet3D in the official layout; with ``trackdiffusion`` the added modules are attached (random, gates
    ``gates``), so ``save_pretrained`` writes them like the released ``modelscope_ft/unet``. Returns the UNet."""
    from trackdiffusion.models.modelscope import attach_trackdiffusion_unet3d, build_trackdiffusion_unet3d

    torch.manual_seed(seed)
    unet = build_trackdiffusion_unet3d(TINY_UNET3D).eval()
    if trackdiffusion:
        att = attach_trackdiffusion_unet3d(unet, hidden_dim=TINY_HIDDEN)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for name, p in att.named_parameters():
                if name.endswith(("alpha_attn", "alpha_dense")):
                    p.fill_(gates)
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return unet


def tiny_svd_unet(frames: int, seed: int = 0):
    """A random tiny ``UNetSpatioTemporalConditionModel`` (:data:`TINY_SVD_UNET`) for ``frames`` frames, in eval mode."""
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(seed)
    return UNetSpatioTemporalConditionModel(**TINY_SVD_UNET, num_frames=frames).eval()


def tiny_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def build_tiny_t2v_folder(folder: str | Path, *, trackdiffusion: bool = True, seed: int = 0,
                          skip: tuple[str, ...] = ()) -> Path:
    """Write a tiny ``TextToVideoSDPipeline`` folder at ``folder`` (created); ``skip`` leaves components out.

    Written component by component (``save_pretrained`` + ``model_index.json``), without importing the diffusers
    pipeline class (which needs torchvision, absent inside the test ComfyUI).
    """
    import diffusers

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = write_clip_tokenizer(folder / "tokenizer")
    parts = {"unet": tiny_trackdiffusion_unet3d(seed, trackdiffusion=trackdiffusion), "vae": tiny_vae(seed),
             "text_encoder": tiny_text_encoder(tokenizer, seed=seed), "scheduler": tiny_scheduler()}
    for name, part in parts.items():
        part.save_pretrained(str(folder / name))
    index = {"_class_name": "TextToVideoSDPipeline", "_diffusers_version": diffusers.__version__,
             "unet": ["diffusers", "UNet3DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", type(parts["scheduler"]).__name__]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    for name in skip:
        shutil.rmtree(folder / name)
    return folder
