"""TrackGo's TrackAdapter on ComfyUI's real SVD UNet (tiny width, real layout), sampled with ComfyUI's sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.trajectories import build_point_trajectories
from trackdiffusion.models.trackgo.adapter import TrackGoAdapter

FRAMES = 4
SIZE = 64  # pixels; the latent is 8x8


def trajectories(frames=FRAMES, size=SIZE):
    masks = np.zeros((2, size, size), bool)
    masks[0, 8:24, 8:24] = True
    masks[1] = True  # a whole-frame mask: camera motion
    return build_point_trajectories(masks, [[[16, 16], [48, 40]], [[0, 0], [4, 0]]], frames)


def adapter_file(model, seed=0, trained_steps=10):
    """A TrackAdapter for the tiny SVD as the training command saves it: state dict + metadata."""
    from trackdiffusion.models.trackgo.adapter import TRACKGO_FORMAT
    from trackdiffusion.nodes.patches.svd import _spatial_video_transformers

    svts = _spatial_video_transformers(model.get_model_object("diffusion_model"))
    layers = [(name, svt.time_stack[0].attn1.to_q.weight.shape[0]) for name, svt in svts]
    torch.manual_seed(seed)
    adapter = TrackGoAdapter(layers, level_channels=(32, 64, 128, 128))
    for name, svt in svts:
        attn = svt.time_stack[0].attn1
        adapter.layer_for(name).init_from(attn.to_q.weight, attn.to_k.weight)
    with torch.no_grad():
        for p in adapter.encoder.parameters():
            p.normal_(0, 0.3)
    metadata = {"format": TRACKGO_FORMAT, "config": json.dumps(adapter.config()), "trained_steps": str(trained_steps)}
    return adapter.state_dict(), metadata


def bundle_for(model, **kwargs):
    from trackdiffusion.nodes.patches.trackgo import load_trackgo_adapter

    return load_trackgo_adapter(*adapter_file(model, **kwargs))


def sample(model, frames=FRAMES, cfg=2.5, seed=0):
    import comfy.sample

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(frames, 4, SIZE // 8, SIZE // 8, generator=g)
    concat = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=g)
    embed = torch.randn(1, 1, 64, generator=g)
    extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    positive = [[embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    return comfy.sample.sample(model, noise, 2, cfg, "euler", "karras", positive, negative, torch.zeros_like(noise),
                               disable_pbar=True, seed=seed)


def test_strength_zero_is_bit_identical_and_unpatch_restores(tiny_svd):
    from trackdiffusion.nodes.patches.trackgo import apply_trackgo

    reference = sample(tiny_svd)
    bundle = bundle_for(tiny_svd)
    assert torch.equal(sample(apply_trackgo(tiny_svd, bundle, trajectories(), strength=0.0)), reference)
    out = sample(apply_trackgo(tiny_svd, bundle, trajectories(), strength=1.0))
    assert torch.isfinite(out).all() and not torch.equal(out, reference)
    assert torch.equal(sample(tiny_svd), reference)


def test_tau_settings_give_three_different_videos(comfy):
    """TrackGo fig. 5's three settings (0, -100, -10000) are three different behaviours in ComfyUI too (the rule is
    tested against a hand computation in tests/test_trackgo_diffusers.py; the ComfyUI patch equals the diffusers
    backend in tests/integration/test_backend_parity.py). A UNet whose temporal attention is not already uniform:
    the conftest model's 0.05-scale weights give logits near 0, where any temperature changes nothing."""
    from support import tiny_svd as tiny
    from trackdiffusion.nodes.patches.trackgo import apply_trackgo

    model = tiny.load_comfy_model(tiny.diffusers_unet(frames=FRAMES, seed=0, scale=2.0))
    bundle = bundle_for(model)
    outs = [sample(apply_trackgo(model, bundle, trajectories(), tau=tau)) for tau in (0.0, -100.0, -1e4)]
    assert all(torch.isfinite(o).all() for o in outs)
    assert (outs[0] - outs[1]).abs().mean() > 1e-5 and (outs[1] - outs[2]).abs().mean() > 1e-5


def test_clear_errors(tiny_svd):
    from trackdiffusion.nodes.patches.trackgo import apply_trackgo, load_trackgo_adapter

    bundle = bundle_for(tiny_svd)
    with pytest.raises(InvalidInputError, match="latent has 4 frames but the trajectories have 6"):
        sample(apply_trackgo(tiny_svd, bundle, trajectories(frames=6)))
    with pytest.raises(InvalidInputError, match="trajectory video is 96x96 but the latent is for 64x64"):
        sample(apply_trackgo(tiny_svd, bundle, trajectories(size=96)))
    with pytest.raises(InvalidInputError, match="TrackGo released no weights"):
        apply_trackgo(tiny_svd, None, trajectories())
    with pytest.raises(InvalidInputError, match="never trained"):
        load_trackgo_adapter(*adapter_file(tiny_svd, trained_steps=0))
    _, meta = adapter_file(tiny_svd)
    config = json.loads(meta["config"])
    config["layers"] = [[name, c * 2] for name, c in config["layers"]]
    other = TrackGoAdapter.from_config(config)
    meta["config"] = json.dumps(config)
    wrong = load_trackgo_adapter(other.state_dict(), meta)
    with pytest.raises(InvalidInputError, match="has 32 channels, the adapter 64"):
        apply_trackgo(tiny_svd, wrong, trajectories())


def test_nodes_load_a_trackadapter_file_and_patch(comfy, tiny_svd):
    import os

    import folder_paths
    from safetensors.torch import save_file

    from trackdiffusion.nodes.patches.trackgo import apply_trackgo

    folder = folder_paths.get_folder_paths("trackdiffusion")[0]
    os.makedirs(folder, exist_ok=True)
    state, metadata = adapter_file(tiny_svd)
    save_file({k: v.contiguous() for k, v in state.items()}, f"{folder}/tiny_trackadapter.safetensors", metadata)
    bundle = comfy.node_class("LoadTrackDiffusionAdapter").execute(adapter_name="tiny_trackadapter.safetensors")
    bundle = bundle.result[0]
    patch = comfy.node_class("TrackAdapterPatch")
    patched = patch.execute(model=tiny_svd, trajectories=trajectories(), adapter=bundle, tau=0.0, alpha=0.2,
                            strength=1.0, point_size=4).result[0]
    assert torch.equal(sample(patched), sample(apply_trackgo(tiny_svd, bundle_for(tiny_svd), trajectories())))
    with pytest.raises(ValueError,  # the pack's own copy of our error (ComfyUI imports it under the folder name)
                        match="TrackGo released no weights"):
        patch.execute(model=tiny_svd, trajectories=trajectories(), tau=0.0, alpha=0.2, strength=1.0, point_size=4)
    box_patch = comfy.node_class("InstanceEnhancerPatch")
    with pytest.raises(ValueError,  # the pack's own copy of our error (ComfyUI imports it under the folder name)
                        match="not a TrackDiffusion"):
        box_patch.execute(model=tiny_svd, adapter=bundle, tracklets=None, strength=1.0, start_percent=0.0,
                          end_percent=1.0)
