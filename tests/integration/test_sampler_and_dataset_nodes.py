"""TrackDiffusion Sampler and Save Tracking Dataset inside real ComfyUI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[2]
FRAMES = 4


def conditioning(seed=0):
    g = torch.Generator().manual_seed(seed)
    concat = torch.randn(1, 4, 8, 8, generator=g)
    embed = torch.randn(1, 1, 64, generator=g)
    extra = {"motion_bucket_id": 127, "fps": 8, "augmentation_level": 0.0}
    positive = [[embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    return positive, negative, {"samples": torch.zeros(FRAMES, 4, 8, 8)}


def run_sampler(comfy, model, guidance, min_cfg=1.0, max_cfg=3.0):
    positive, negative, latent = conditioning()
    node = comfy.node_class("TrackDiffusionSampler")
    return node.execute(model=model, positive=positive, negative=negative, latent_image=latent, seed=7, steps=2,
                        min_cfg=min_cfg, max_cfg=max_cfg, guidance=guidance, sampler_name="euler",
                        scheduler="karras", denoise=1.0).result[0]["samples"]


def test_sampler_linear_cfg_is_svds_and_normalized_cfg_follows_the_official_rule(comfy, tiny_svd):
    import nodes

    positive, negative, latent = conditioning()
    linear = run_sampler(comfy, tiny_svd, "linear per frame (SVD)")
    # reference: the core nodes a user would chain by hand
    from comfy_extras.nodes_video_model import VideoLinearCFGGuidance

    guided = VideoLinearCFGGuidance().patch(tiny_svd, 1.0)[0]
    reference = nodes.common_ksampler(guided, 7, 2, 3.0, "euler", "karras", positive, negative, latent)[0]["samples"]
    assert torch.equal(linear, reference)
    # normalized CFG at scale <= 1: as the official pipeline, no guidance (the conditional prediction alone)
    normalized_1 = run_sampler(comfy, tiny_svd, "normalized (TrackDiffusion ModelScope)", max_cfg=1.0)
    cond_only = tiny_svd.clone()
    cond_only.set_model_sampler_cfg_function(lambda args: args["cond"])
    reference_1 = nodes.common_ksampler(cond_only, 7, 2, 1.0, "euler", "karras", positive, negative,
                                        latent)[0]["samples"]
    assert torch.equal(normalized_1, reference_1)
    normalized_3 = run_sampler(comfy, tiny_svd, "normalized (TrackDiffusion ModelScope)")
    assert not torch.equal(normalized_3, linear) and torch.isfinite(normalized_3).all()


def test_sampler_refuses_an_unknown_mode_in_one_line(comfy, tiny_svd):
    """A direct call (the API or another node pack) bypasses the UI's combo check: a misspelt mode must not fall
    through to another one (an unknown trajectory_guidance once sampled unguided)."""
    # the pack runs under ComfyUI's own module name: its InvalidInputError is the ValueError subclass of that copy
    with pytest.raises(ValueError, match="unknown guidance 'linear'.*one of: linear per frame"):
        run_sampler(comfy, tiny_svd, "linear")
    positive, negative, latent = conditioning()
    node = comfy.node_class("TrackDiffusionSampler")
    with pytest.raises(ValueError, match="unknown trajectory_guidance 'SG-I2V'"):
        node.execute(model=tiny_svd, positive=positive, negative=negative, latent_image=latent, seed=7, steps=2,
                     min_cfg=1.0, max_cfg=3.0, guidance="linear per frame (SVD)", sampler_name="euler",
                     scheduler="karras", denoise=1.0, trajectory_guidance="SG-I2V")


def test_save_tracking_dataset_numbers_sequences_and_stays_in_output(comfy):
    import folder_paths

    t = load(REPO / "example_workflows" / "input" / "tracklets" / "street.json")
    images = torch.rand(14, 72, 128, 3)
    node = comfy.node_class("SaveTrackingDataset")
    node.execute(images=images, tracklets=t, dataset="ds_test", sequence_prefix="synth", image_format="png")
    node.execute(images=images, tracklets=t, dataset="ds_test", sequence_prefix="synth", image_format="png")
    root = Path(folder_paths.get_output_directory()) / "ds_test"
    assert sorted(p.name for p in root.iterdir()) == ["synth_00001", "synth_00002"]
    assert len(list((root / "synth_00001" / "img1").glob("*.png"))) == 14
    with pytest.raises(ValueError, match="leaves ComfyUI's output folder"):
        node.execute(images=images, tracklets=t, dataset="../../escape", sequence_prefix="synth",
                     image_format="png")
