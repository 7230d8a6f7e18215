"""The tiny SVD that ships with the pack, as ComfyUI's native MODEL, CLIP_VISION and VAE (nothing to download)."""

from __future__ import annotations

from comfy_api.latest import io

from .types import CATEGORY


class LoadTinySVD(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadTinySVD",
            display_name="Load Tiny SVD (CPU, no download)",
            category=CATEGORY,
            description="The tiny Stable Video Diffusion trained on SynTrack (coloured shapes) that ships inside this "
            "pack: SVD's UNet architecture at a small width (8 M parameters), a TAESD-architecture VAE and a tiny "
            "CLIP image encoder. Its outputs are ComfyUI's own MODEL, CLIP_VISION and VAE, so the stock SVD nodes "
            "(SVD_img2vid_Conditioning, VideoLinearCFGGuidance, KSampler, VAE Decode) and this pack's patches and "
            "sampler work on it unchanged. It makes 64x64 videos of 16 frames at 8 fps; a few seconds on a CPU.",
            inputs=[],
            outputs=[io.Model.Output(display_name="MODEL"), io.ClipVision.Output(display_name="CLIP_VISION"),
                     io.Vae.Output(display_name="VAE")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        from .tiny_svd_model import load_tiny_svd

        model, clip_vision, vae = load_tiny_svd()
        return io.NodeOutput(model, clip_vision, vae)
