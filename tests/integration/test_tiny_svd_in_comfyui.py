"""The tiny SVD that ships with the pack, in real ComfyUI: Load Tiny SVD gives ComfyUI's native MODEL, CLIP_VISION
and VAE, the stock SVD nodes run on them, and the sampled video equals the diffusers backend's for the same seed.

Reference for the equality: :mod:`trackdiffusion.models.tiny_svd.pipeline` (diffusers UNet, AutoencoderTiny,
transformers CLIP) against ComfyUI's own ``SVD_img2vid_Conditioning`` -> TrackDiffusion Sampler (linear per-frame CFG,
euler, karras) -> ``VAEDecode``: two independent implementations of the conditioning, the EDM parametrisation, the
Karras schedule, the per-frame CFG, the Euler steps and the decoder.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trackdiffusion.models.tiny_svd import config as tiny
from trackdiffusion.models.tiny_svd import files, pipeline

#: what the two backends hold, in float32 on the CPU, after STEPS Euler steps: the UNet latents' relative L2
#: difference, and the decoded frames' largest absolute difference (in [0, 1] units). Measured: see the test.
LATENT_TOLERANCE = 2e-3
PIXEL_TOLERANCE = 2 / 255
STEPS = 10
SEED = 7


@pytest.fixture(scope="module")
def comfy_tiny_svd(comfy):
    # ComfyUI runs every node under inference mode, and Load Tiny SVD caches what it loaded (an earlier test's
    # workflow may have loaded it there): the ComfyUI side of these tests runs as ComfyUI runs it.
    node = comfy.node_class("LoadTinySVD")
    with torch.inference_mode():
        model, clip_vision, vae = node.execute().result
    return model, clip_vision, vae


@pytest.fixture(scope="module")
def first_frame():
    from trackdiffusion.evaluation.synth import make_split

    return make_split("test", "eval", 1)[0].video[0]


def comfy_sample(comfy, parts, first_frame, *, steps=STEPS, seed=SEED, tracklets=None, adapter=None,
                 sgi2v=None):
    """The stock SVD graph in process: SVD_img2vid_Conditioning -> (TrackDiffusion Patch) -> TrackDiffusion Sampler
    (with SG-I2V along ``sgi2v``, tracklets, when given) -> VAEDecode; returns (samples as the UNet sees them,
    frames in [0, 1])."""
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    with torch.inference_mode():  # as ComfyUI runs its nodes
        model, clip_vision, vae = parts
        image = torch.from_numpy(first_frame).float()[None] / 255.0
        positive, negative, latent = SVD_img2vid_Conditioning().encode(
            clip_vision, image, vae, tiny.WIDTH, tiny.HEIGHT, tiny.FRAMES, tiny.MOTION_BUCKET, tiny.FPS, 0.0)
        if tracklets is not None:
            model = comfy.node_class("InstanceEnhancerPatch").execute(model, adapter, tracklets, 1.0, 0.0, 1.0).result[0]
        sampler = comfy.node_class("TrackDiffusionSampler")
        guidance = {} if sgi2v is None else {"trajectory_guidance": "SG-I2V boxes (training-free)", "tracklets": sgi2v}
        out = sampler.execute(model, positive, negative, latent, seed, steps, 1.0, 3.0, "linear per frame (SVD)",
                              "euler", "karras", 1.0, **guidance).result[0]
        frames = comfy.nodes.VAEDecode().decode(vae, out)[0]
    return out["samples"] * tiny.SD_SCALE_FACTOR, frames.detach().float()


def test_loader_returns_comfyui_native_objects(comfy_tiny_svd):
    import comfy.clip_vision
    import comfy.model_patcher
    import comfy.sd

    model, clip_vision, vae = comfy_tiny_svd
    assert isinstance(model, comfy.model_patcher.ModelPatcher)
    assert type(model.model).__name__ == "SVD_img2vid"
    assert isinstance(clip_vision, comfy.clip_vision.ClipVisionModel)
    assert isinstance(vae, comfy.sd.VAE)
    assert type(vae.first_stage_model).__name__ == "TAESD"
    # ComfyUI's own list of supported models is left as it was
    import comfy.supported_models

    assert all(getattr(m, "__name__", "") != "TinySVD" for m in comfy.supported_models.models)


def test_vae_round_trip_equals_the_diffusers_vae(comfy_tiny_svd, first_frame):
    """ComfyUI's TAESD holding the padded weights encodes and decodes exactly as diffusers' AutoencoderTiny."""
    from trackdiffusion.models.tiny_svd.vae import decode, encode_condition

    _, _, vae = comfy_tiny_svd
    ref = files.load()
    image = torch.from_numpy(first_frame).float()[None] / 255.0
    with torch.inference_mode():
        latent = vae.encode(image)
        decoded = vae.decode(latent)[0]
    expected = encode_condition(ref.vae, image.movedim(-1, 1) * 2 - 1)
    assert (latent - expected).abs().max() <= 1e-4 * expected.abs().max()
    expected_pixels = ((decode(ref.vae, expected * tiny.SD_SCALE_FACTOR) + 1) / 2).clamp(0, 1)[0].movedim(0, -1)
    assert (decoded - expected_pixels).abs().max() <= 1e-4


def test_sampled_video_equals_the_diffusers_backend(comfy, comfy_tiny_svd, first_frame):
    z_comfy, frames_comfy = comfy_sample(comfy, comfy_tiny_svd, first_frame)
    video, z = pipeline.generate(files.load(), first_frame, steps=STEPS, seed=SEED, return_latents=True)
    relative = float((z_comfy - z).norm() / z.norm())
    assert relative <= LATENT_TOLERANCE, relative
    pixels = float((frames_comfy - torch.from_numpy(video).float() / 255.0).abs().max())
    # the diffusers side rounds to uint8 (half a level), ComfyUI keeps floats
    assert pixels <= PIXEL_TOLERANCE + 0.5 / 255, pixels
    # a different seed is a different video (the comparison above can fail)
    other = pipeline.generate(files.load(), first_frame, steps=STEPS, seed=SEED + 1)
    assert np.abs(other.astype(float) - video.astype(float)).mean() > 1.0


def test_trackdiffusion_on_the_tiny_svd_equals_the_diffusers_backend(comfy, comfy_tiny_svd, first_frame):
    """The shipped adapter (trained here, exported as svd_stage2/unet, converted by `weights convert`): Load
    TrackDiffusion Adapter -> TrackDiffusion Patch (SVD) in ComfyUI against the diffusers backend with the same file
    (attach_trackdiffusion_svd + the official state dict), same seed and boxes; and the boxes change the video."""
    from trackdiffusion.evaluation.synth import make_split
    from trackdiffusion.models.checkpoints import load_delta
    from trackdiffusion.models.svd.diffusers import attach_trackdiffusion_svd

    clip = make_split("test", "eval", 1)[0]
    adapter = comfy.node_class("LoadTrackDiffusionAdapter").execute(files.TRACKDIFFUSION_ADAPTER).result[0]
    z_comfy, frames_comfy = comfy_sample(comfy, comfy_tiny_svd, first_frame, tracklets=clip.tracklets,
                                         adapter=adapter)
    model = files.load()
    attachment = attach_trackdiffusion_svd(model.unet)
    attachment.load_official_state_dict(load_delta(files.ADAPTERS / files.TRACKDIFFUSION_ADAPTER)[0],
                                        include_unet=True)
    video, z = pipeline.generate(model, first_frame, tracklets=clip.tracklets, attachment=attachment, steps=STEPS,
                                 seed=SEED, return_latents=True)
    relative = float((z_comfy - z).norm() / z.norm())
    assert relative <= LATENT_TOLERANCE, relative
    pixels = float((frames_comfy - torch.from_numpy(video).float() / 255.0).abs().max())
    assert pixels <= PIXEL_TOLERANCE + 0.5 / 255, pixels
    attachment.detach()
    plain = pipeline.generate(files.load(), first_frame, steps=STEPS, seed=SEED)
    assert np.abs(plain.astype(float) - video.astype(float)).mean() > 1.0, "the boxes leave the video as it was"


def test_sgi2v_on_the_tiny_svd_equals_the_diffusers_backend(comfy, comfy_tiny_svd, first_frame):
    """SG-I2V on the stock tiny SVD: the TrackDiffusion Sampler's trajectory guidance in ComfyUI (the ComfyUI patch)
    against the diffusers backend's (models.guidance.sgi2v.diffusers), same seed, boxes and default settings; and the
    guidance changes the video, while the UNet is left as it was."""
    from trackdiffusion.evaluation.synth import make_split
    from trackdiffusion.models.guidance.sgi2v.diffusers import sgi2v_attached

    clip = make_split("test", "eval", 1)[0]
    z_comfy, frames_comfy = comfy_sample(comfy, comfy_tiny_svd, first_frame, sgi2v=clip.tracklets)
    model, report = files.load(), []
    with sgi2v_attached(model.unet, clip.tracklets, report=report) as guidance:
        video, z = pipeline.generate(model, first_frame, steps=STEPS, seed=SEED, guidance=guidance,
                                     return_latents=True)
    assert [r["step"] for r in report] == [1, 2, 3, 4]  # 10 steps, the band 0.1..0.4
    assert all(len(r["losses"]) == 5 for r in report)
    relative = float((z_comfy - z).norm() / z.norm())
    assert relative <= LATENT_TOLERANCE, relative
    pixels = float((frames_comfy - torch.from_numpy(video).float() / 255.0).abs().max())
    assert pixels <= PIXEL_TOLERANCE + 0.5 / 255, pixels
    plain = pipeline.generate(model, first_frame, steps=STEPS, seed=SEED)  # the processors are restored
    assert np.abs(plain.astype(float) - video.astype(float)).mean() > 0.5, "the guidance leaves the video as it was"
    reference = pipeline.generate(files.load(), first_frame, steps=STEPS, seed=SEED)
    assert np.array_equal(plain, reference)
