"""Sizes of the tiny Stable Video Diffusion: one place for the UNet, VAE and image-encoder configs.

The UNet is SVD img2vid's architecture (``UNetSpatioTemporalConditionModel``: 4 levels, 2 residual blocks down and 3
up, 16 spatio-temporal transformers with ``time_stack`` and learned mix factors, the image embedding as cross-attention
context, fps / motion bucket / augmentation as added time ids embedded at 256 each) at width 32 with channel
multipliers (1, 1, 2, 4) instead of (1, 2, 4, 4): 7.9 M parameters instead of 1.5 G, 16 MB in fp16. 32 is the
smallest width SVD's 32-group GroupNorm allows. The widest level is the 1x1 bottom (8x8 latents): with 2 channels
per group there, GroupNorm of two numbers is nearly a sign function, which turned float rounding (1e-5) into 2 %
differences between ComfyUI's and diffusers' outputs; 4 channels per group bring that to 1e-4.

The VAE is TAESD's architecture (diffusers ``AutoencoderTiny``; ComfyUI loads it as its own TAESD VAE) at 32 channels:
frames in [-1, 1] -> 4 latent channels at 1/8 of the size, as SD's VAE, so ComfyUI's stock SVD nodes size it right.

The image encoder is a CLIP ViT (``CLIPVisionModelWithProjection``; ComfyUI's ``ClipVisionModel`` with this config),
2 layers of width 64 on 32x32 pixels, projecting to the UNet's 64-wide context: a fixed stand-in (seeded random
weights, never trained), see :mod:`.image_encoder`.

Frames: 64x64 pixels, 16 frames at 8 fps (SynTrack's ``eval`` tier), so the latent video is 16 x 4 x 8 x 8.
"""

from __future__ import annotations

WIDTH = HEIGHT = 64
FRAMES = 16
FPS = 8  #: SynTrack's frame rate; ComfyUI's SVD conditioning node passes fps - 1 as the first added time id
MOTION_BUCKET = 127
LATENT_CHANNELS = 4
LATENT_SCALE = 8  #: pixels per latent cell, per side
#: SVD's latent format: ComfyUI multiplies a VAE latent by this before the UNet (``comfy.latent_formats.SD15``)
SD_SCALE_FACTOR = 0.18215

MODEL_CHANNELS = 32
CHANNEL_MULT = (1, 1, 2, 4)
HEAD_DIM = 16
CONTEXT_DIM = 64

#: the diffusers ``UNetSpatioTemporalConditionModel`` config
UNET_CONFIG = {
    "sample_size": WIDTH // LATENT_SCALE,
    "in_channels": 2 * LATENT_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    "block_out_channels": tuple(MODEL_CHANNELS * m for m in CHANNEL_MULT),
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 3 * 256,
    "layers_per_block": 2,
    "cross_attention_dim": CONTEXT_DIM,
    "transformer_layers_per_block": 1,
    "num_attention_heads": tuple(MODEL_CHANNELS * m // HEAD_DIM for m in CHANNEL_MULT),
    "num_frames": FRAMES,
}

VAE_CHANNELS = 32
#: the diffusers ``AutoencoderTiny`` config (``scaling_factor`` is set from the data after the VAE is trained)
VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": LATENT_CHANNELS,
    "encoder_block_out_channels": (VAE_CHANNELS,) * 4, "decoder_block_out_channels": (VAE_CHANNELS,) * 4,
    "num_encoder_blocks": (1, 3, 3, 3), "num_decoder_blocks": (3, 3, 3, 1),
}

#: the CLIP vision config, in the keys both transformers' ``CLIPVisionConfig`` and ComfyUI's ``ClipVisionModel`` read
CLIP_VISION_CONFIG = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "image_size": 32, "patch_size": 8, "projection_dim": CONTEXT_DIM, "num_channels": 3, "hidden_act": "gelu",
    "layer_norm_eps": 1e-5, "attention_dropout": 0.0, "dropout": 0.0, "initializer_range": 0.02,
    "initializer_factor": 1.0, "model_type": "clip_vision_model",
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
}
IMAGE_ENCODER_SEED = 20261207
