"""The tiny SVD's image encoder: a 2-layer CLIP ViT (:data:`~.config.CLIP_VISION_CONFIG`) with seeded random
weights, frozen. A documented fixed stand-in, not a trained encoder: it is a fixed function of the first frame that
gives the UNet's cross-attention an image embedding of the right shape and that ComfyUI's stock nodes can compute
(``CLIPVisionEncode``, ``SVD_img2vid_Conditioning``). What the tiny SVD knows of the first frame it learns from the
concatenated image latent; the embedding adds a global summary the UNet may use.

Its weights are the transformers ``CLIPVisionModelWithProjection`` keys, which are also the keys of ComfyUI's
``ClipVisionModel`` built from the same ``config.json`` (its mean and std are CLIP's, ComfyUI's defaults).
"""

from __future__ import annotations

from typing import Any

import torch

from ..svd.clip_image import clip_pixel_values
from .config import CLIP_VISION_CONFIG, IMAGE_ENCODER_SEED

#: keys of the config that are ComfyUI's, not transformers' (preprocessing)
_PREPROCESS_KEYS = ("image_mean", "image_std")


def build_image_encoder(seed: int = IMAGE_ENCODER_SEED) -> Any:
    """The stand-in with its seeded weights (transformers' own initialisation under ``torch.manual_seed(seed)``)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(**{k: v for k, v in CLIP_VISION_CONFIG.items()
                                 if k not in (*_PREPROCESS_KEYS, "model_type")})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(config)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def image_embeddings(encoder: Any, images: torch.Tensor) -> torch.Tensor:
    """images [N, 3, H, W] in [0, 1] (ComfyUI's IMAGE range) -> the UNet's context [N, 1, projection_dim]."""
    ref = next(encoder.parameters())
    size = int(encoder.config.image_size)
    pixels = clip_pixel_values(images.float(), size, CLIP_VISION_CONFIG["image_mean"], CLIP_VISION_CONFIG["image_std"])
    return encoder(pixel_values=pixels.to(ref)).image_embeds.float().unsqueeze(1)


def comfyui_state_dict(encoder: Any) -> dict[str, torch.Tensor]:
    """The encoder's weights as ComfyUI's ``ClipVisionModel`` loads them (transformers names, no position ids)."""
    return {k: v.detach().float() for k, v in encoder.state_dict().items() if not k.endswith("position_ids")}
