"""SG-I2V's latent optimisation on the demo model (issue 8, item 5): off is plain sampling, on lowers the loss."""

from __future__ import annotations

import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.evaluation.synth import make_clip
from trackdiffusion.models.demo import BoxConditioning, BoxVideoDenoiser
from trackdiffusion.models.demo.sampling import sample
from trackdiffusion.models.guidance.sgi2v import SGI2VConfig
from trackdiffusion.models.guidance.sgi2v.demo_model import sample_guided


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = BoxVideoDenoiser(width=16).eval().requires_grad_(False)
    clip = make_clip(20001, "ci")  # 32x32x8
    first = torch.from_numpy(clip.video[0]).permute(2, 0, 1).float()[None] / 127.5 - 1
    empty = BoxConditioning.stack([BoxConditioning.empty(4, 8, 32, 32)])
    return model, clip, first, empty


def test_zero_iterations_is_bit_identical_to_plain_sampling(setup):
    model, clip, first, empty = setup
    plain = sample(model, first, empty, 8, 6, torch.Generator().manual_seed(3))
    off = sample_guided(model, first, empty, [clip.tracklets], 8, 6, SGI2VConfig(iterations=0),
                        torch.Generator().manual_seed(3))
    assert torch.equal(plain, off)


def test_guidance_lowers_the_alignment_loss_and_changes_the_video(setup):
    model, clip, first, empty = setup
    losses: list = []
    plain = sample(model, first, empty, 8, 6, torch.Generator().manual_seed(3))
    guided = sample_guided(model, first, empty, [clip.tracklets], 8, 6,
                           SGI2VConfig(start_step=1, end_step=2, iterations=6, lr=0.05),
                           torch.Generator().manual_seed(3), losses=losses)
    assert len(losses) == 2 and all(len(run) == 6 for run in losses)
    assert all(run[-1] < 0.8 * run[0] for run in losses), losses
    assert not torch.equal(plain, guided)
    assert torch.equal(guided[:, :, 0], first)


def test_a_box_outside_the_frame_is_our_error(setup):
    model, _, first, empty = setup
    outside = load({"version": 1, "width": 32, "height": 32, "num_frames": 8, "objects": [
        {"id": 1, "keyframes": [{"frame": 0, "box": [40, 40, 50, 50]}]}]})
    with pytest.raises(InvalidInputError, match="outside the picture"):
        sample_guided(model, first, empty, [outside], 8, 4, SGI2VConfig(), torch.Generator().manual_seed(0))
