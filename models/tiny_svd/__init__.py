"""The tiny Stable Video Diffusion trained here: SVD's UNet architecture at a small width, a TAESD-architecture VAE
and a tiny CLIP image encoder (:mod:`.config` has the sizes). Shipped in ``weights/`` as diffusers folders; ComfyUI
loads the same files as native ``MODEL``, ``CLIP_VISION`` and ``VAE``."""
