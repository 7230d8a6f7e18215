"""SG-I2V core (no ComfyUI): box geometry in latent units, the alignment loss, the FFT reset, the optimisation loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.models.guidance.sgi2v import (
    SGI2VConfig,
    alignment_loss,
    build_alignment_targets,
    butterworth_lowpass,
    frequency_radius,
    high_frequency_reset,
    latent_boxes_from_tensors,
    latent_boxes_from_tracklets,
    optimise_latent,
)
from trackdiffusion.models.guidance.sgi2v.fft import STOP_FACTOR


def tracklets(objects, width=128, height=64, frames=4):
    return load({"version": 1, "width": width, "height": height, "num_frames": frames, "objects": objects})


MOVING = {"id": 7, "keyframes": [{"frame": 0, "box": [0, 0, 32, 16]}, {"frame": 3, "box": [48, 24, 112, 56]}]}
LATE = {"id": 9, "keyframes": [{"frame": 0, "box": [8, 8, 24, 24], "visible": False},
                               {"frame": 2, "box": [8, 8, 24, 24]}]}


# ------------------------------------------------------------------------------------------------------ config
def test_guided_steps_match_sg_i2v():
    """SG-I2V optimises at t = 50 - i in 30..45: step indices 5..20 of 50 (16 steps)."""
    assert SGI2VConfig().guided_steps(50) == list(range(5, 21))
    assert SGI2VConfig().guided_steps(25) == list(range(3, 11))
    assert SGI2VConfig(start_step=2, end_step=99).guided_steps(10) == list(range(2, 10))
    assert SGI2VConfig(iterations=0).guided_steps(50) == []
    assert SGI2VConfig(layers="output_blocks.7.1; output_blocks.8.1").layers == ("output_blocks.7.1",
                                                                                   "output_blocks.8.1")


@pytest.mark.parametrize("kwargs", [
    {"start_percent": 0.5, "end_percent": 0.2}, {"start_percent": -0.1}, {"iterations": -1}, {"iterations": 2.5},
    {"lr": float("nan")}, {"fft_ratio": -1.0}, {"heatmap_sigma": 0.0}, {"start_step": 3}, {"layers": ()},
    {"layers": ("a", "a")}, {"start_step": 5, "end_step": 2},
])
def test_bad_config_raises_our_error(kwargs):
    with pytest.raises(InvalidInputError):
        SGI2VConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------- geometry
def test_latent_boxes_scale_and_late_objects():
    boxes = latent_boxes_from_tracklets(tracklets([MOVING, LATE]), num_frames=4, height=8, width=16)
    assert boxes.boxes.shape == (4, 2, 4) and boxes.valid.shape == (4, 2)
    torch.testing.assert_close(boxes.boxes[0, 0], torch.tensor([0.0, 0.0, 4.0, 2.0]))  # /8 on a 128x64 canvas
    torch.testing.assert_close(boxes.boxes[3, 0], torch.tensor([6.0, 3.0, 14.0, 7.0]))  # and it grows
    assert boxes.valid[:, 1].tolist() == [False, False, True, True]
    assert boxes.template_frame.tolist() == [0, 2]
    assert boxes.ids == [7, 9]
    # a latent that is not 8x the canvas, and resampled frames
    other = latent_boxes_from_tracklets(tracklets([MOVING]), num_frames=7, height=16, width=16)
    torch.testing.assert_close(other.boxes[6, 0], torch.tensor([6.0, 6.0, 14.0, 14.0]))


def test_box_leaving_the_picture_is_invalid_there_only():
    leaving = {"id": 1, "keyframes": [{"frame": 0, "box": [96, 8, 120, 32]}, {"frame": 3, "box": [160, 8, 184, 32]}]}
    boxes = latent_boxes_from_tracklets(tracklets([leaving]), 4, 8, 16)
    assert boxes.valid[:, 0].tolist() == [True, True, False, False]


@pytest.mark.parametrize("box, visible, match", [
    ([[[2.0, 2.0, 2.0, 5.0]]], [[True]], "empty"),
    ([[[2.0, 5.0, 4.0, 1.0]]], [[True]], "empty"),
    ([[[float("nan"), 0.0, 1.0, 1.0]]], [[True]], "not finite"),
    ([[[20.0, 20.0, 30.0, 30.0]]], [[True]], "wholly outside"),
    ([[[-9.0, 1.0, 0.0, 2.0]]], [[True]], "wholly outside"),
    ([[[1.0, 1.0, 3.0, 3.0]]], [[False]], "never visible"),
])
def test_invalid_boxes_raise_our_error(box, visible, match):
    with pytest.raises(InvalidInputError, match=match):
        latent_boxes_from_tensors(torch.tensor(box), torch.tensor(visible), 8, 16)


def test_invalid_tracklets_raise_our_error():
    with pytest.raises(InvalidInputError, match="no objects"):
        latent_boxes_from_tracklets(tracklets([]), 4, 8, 16)
    outside = {"id": 1, "keyframes": [{"frame": 0, "box": [500, 500, 600, 600]}]}
    with pytest.raises(InvalidInputError, match="wholly outside") as info:
        latent_boxes_from_tracklets(tracklets([MOVING, outside]), 4, 8, 16)
    assert info.value.obj == 1
    with pytest.raises(InvalidInputError, match="empty"):
        latent_boxes_from_tensors([[[1.0, 1.0, 0.5, 2.0]]], [[True]], 8, 8)
    with pytest.raises(InvalidInputError):
        latent_boxes_from_tensors(torch.zeros(2, 1, 3), torch.ones(2, 1, dtype=torch.bool), 8, 8)


# -------------------------------------------------------------------------------------------------- loss targets
def test_targets_skip_hidden_frames_and_template_frames():
    boxes = latent_boxes_from_tracklets(tracklets([MOVING, LATE]), 4, 8, 16)
    targets = build_alignment_targets(boxes)
    late = targets.frame[targets.obj == 1]
    assert set(late.tolist()) == {3}  # visible at 2 (its template) and 3; frames 0-1 hidden contribute nothing
    assert set(targets.frame[targets.obj == 0].tolist()) == {1, 2, 3}
    assert (targets.weight > 0).all() and targets.weight.max() <= 1


def test_template_is_resized_to_the_box():
    """A box that doubles in size reads the template at the matching relative positions."""
    boxes = latent_boxes_from_tensors(torch.tensor([[[2.0, 2.0, 4.0, 4.0]], [[4.0, 2.0, 8.0, 6.0]]]),
                                      torch.ones(2, 1, dtype=torch.bool), 8, 16)
    t = build_alignment_targets(boxes)
    assert t.num_points == 16  # the 4x4 cells of the frame-1 box
    src = t.src_grid.reshape(-1, 2)[t.src_index]
    tmpl = t.tmpl_grid.reshape(-1, 2)[t.tmpl_index]
    # back to latent units: frame-1 cell centres x in 4.5..7.5 map to 2.25..3.75 in the frame-0 box
    sx, tx = (src[:, 0] + 1) * 16 / 2, (tmpl[:, 0] + 1) * 16 / 2
    torch.testing.assert_close(tx, 2 + (sx - 4) / 2)
    sy, ty = (src[:, 1] + 1) * 8 / 2, (tmpl[:, 1] + 1) * 8 / 2
    torch.testing.assert_close(ty, 2 + (sy - 2) / 2)
    # Gaussian: sigma = 0.4 of the half-size (2 cells here) around the cell box's centre (6, 4); the box is cell
    # aligned, so the peak over its cells is exp(-0.5 * 2 * (0.5 / 0.8) ** 2), scaled to 1
    expected = torch.exp(-0.5 * (((sx - 6) / 0.8) ** 2 + ((sy - 4) / 0.8) ** 2))
    torch.testing.assert_close(t.weight, expected / expected.max())


def test_heatmap_is_the_official_one_on_the_floored_cell_box():
    """As SG-I2V's official code: a box from x 2.6 to 5.6 covers cells 2, 3, 4 (floored edges; rounding would give
    3, 4, 5) and its Gaussian is centred on that cell box (3.5, not the continuous 4.1), peaking at 1; a box partly
    off-screen keeps the weights its visible cells have in the whole box (not renormalised to 1); a hair-thin box
    stays finite."""
    boxes = latent_boxes_from_tensors(torch.tensor([[[1.0, 1.0, 4.0, 4.0], [8.0, 1.0, 12.0, 5.0]],
                                                    [[2.6, 2.3, 5.6, 5.3], [-6.0, 2.0, 2.0, 6.0]]]),
                                      torch.ones(2, 2, dtype=torch.bool), 8, 16)
    t = build_alignment_targets(boxes)
    cells = ((t.src_grid.reshape(-1, 2)[t.src_index] + 1) * torch.tensor([16, 8]) / 2 - 0.5).round().long()
    first = cells[t.obj == 0]
    assert sorted(set(first[:, 0].tolist())) == [2, 3, 4] and sorted(set(first[:, 1].tolist())) == [2, 3, 4]
    centre_cell = (first[:, 0] == 3) & (first[:, 1] == 3)
    assert t.weight[t.obj == 0][centre_cell].item() == pytest.approx(1.0)
    expected = torch.exp(-0.5 * (((first[:, 0] + 0.5 - 3.5) / 0.6) ** 2 + ((first[:, 1] + 0.5 - 3.5) / 0.6) ** 2))
    torch.testing.assert_close(t.weight[t.obj == 0], expected.float())
    # object 1 in frame 1: cells -6..1 in x (centre -2, half-width 4), only 0 and 1 on screen
    second = cells[t.obj == 1]
    assert sorted(set(second[:, 0].tolist())) == [0, 1]
    row = (second[:, 1] == 3) | (second[:, 1] == 4)  # the two rows nearest the box's centre row (4)
    gx = torch.exp(-0.5 * ((second[row, 0] + 0.5 - (-2.0)) / 1.6) ** 2)
    gy = torch.exp(-0.5 * ((second[row, 1] + 0.5 - 4.0) / 0.8) ** 2)
    peak = math.exp(-0.5 * (0.5 / 1.6) ** 2) * math.exp(-0.5 * (0.5 / 0.8) ** 2)  # at the cells nearest the centre
    torch.testing.assert_close(t.weight[t.obj == 1][row], (gx * gy / peak).float())
    assert t.weight[t.obj == 1].max() < 0.4
    thin = latent_boxes_from_tensors(torch.tensor([[[3.0, 3.0, 5.0, 5.0]], [[3.99, 3.0, 4.01, 5.0]]]),
                                     torch.ones(2, 1, dtype=torch.bool), 8, 16)
    w = build_alignment_targets(thin).weight
    assert torch.isfinite(w).all() and w.max() == pytest.approx(1.0)


def test_partly_offscreen_template_positions_get_no_weight():
    boxes = latent_boxes_from_tensors(torch.tensor([[[-2.0, 0.0, 2.0, 4.0]], [[4.0, 0.0, 8.0, 4.0]]]),
                                      torch.ones(2, 1, dtype=torch.bool), 8, 16)
    t = build_alignment_targets(boxes)
    sx = (t.src_grid.reshape(-1, 2)[t.src_index][:, 0] + 1) * 8
    assert (t.weight[sx < 6] == 0).all() and (t.weight[sx > 6] > 0).all()


# ---------------------------------------------------------------------------------------------------------- loss
def moving_features(shift: int, frames=3, channels=5, size=(8, 16), seed=0):
    """Features whose frame f is frame 0 translated right by f * shift cells."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, channels, *size, generator=g)
    return torch.cat([torch.roll(base, f * shift, dims=-1) for f in range(frames)])


def test_loss_is_zero_when_the_content_follows_the_boxes():
    boxes = latent_boxes_from_tensors(torch.tensor([[[2.0, 2.0, 6.0, 6.0]], [[5.0, 2.0, 9.0, 6.0]],
                                                    [[8.0, 2.0, 12.0, 6.0]]]), torch.ones(3, 1, dtype=torch.bool),
                                      8, 16)
    targets = build_alignment_targets(boxes)
    assert alignment_loss([moving_features(3)], targets).item() == pytest.approx(0.0, abs=1e-10)
    assert alignment_loss([moving_features(0)], targets).item() > 0.1
    # several layers, one at half the latent resolution (as SVD's up path): content that follows the boxes at both
    fine = moving_features(2, size=(16, 32))
    coarse = F.avg_pool2d(fine, 2)
    boxes2 = latent_boxes_from_tensors(torch.tensor([[[2.0, 2.0, 6.0, 6.0]], [[4.0, 2.0, 8.0, 6.0]],
                                                     [[6.0, 2.0, 10.0, 6.0]]]), torch.ones(3, 1, dtype=torch.bool),
                                       16, 32)
    targets2 = build_alignment_targets(boxes2)
    assert alignment_loss([coarse, fine], targets2).item() == pytest.approx(0.0, abs=1e-10)
    assert alignment_loss([F.avg_pool2d(moving_features(0, size=(16, 32)), 2)], targets2).item() > 0.1


def test_loss_template_side_is_detached():
    boxes = latent_boxes_from_tensors(torch.tensor([[[2.0, 2.0, 6.0, 6.0]], [[5.0, 2.0, 9.0, 6.0]]]),
                                      torch.ones(2, 1, dtype=torch.bool), 8, 16)
    feats = torch.randn(2, 3, 8, 16, requires_grad=True)
    alignment_loss([feats], build_alignment_targets(boxes)).backward()
    assert feats.grad[0].abs().sum() == 0 and feats.grad[1].abs().sum() > 0


def test_no_pairs_means_no_loss():
    boxes = latent_boxes_from_tensors(torch.tensor([[[2.0, 2.0, 6.0, 6.0]], [[0.0, 0.0, 1.0, 1.0]]]),
                                      torch.tensor([[True], [False]]), 8, 16)
    assert alignment_loss([torch.randn(2, 3, 8, 16)], build_alignment_targets(boxes)) is None


# ------------------------------------------------------------------------------------------------------------ FFT
@pytest.mark.parametrize("size", [(8, 16), (9, 12), (72, 128)])
@pytest.mark.parametrize("ratio", [0.25, 0.5])
def test_high_frequency_reset_keeps_the_originals_high_frequencies(size, ratio):
    g = torch.Generator().manual_seed(1)
    original = torch.randn(3, 4, *size, generator=g) * 10
    optimised = original + torch.randn(3, 4, *size, generator=g) * 5
    out = high_frequency_reset(original, optimised, ratio)
    assert out.shape == original.shape and out.dtype == original.dtype
    d = frequency_radius(*size, onesided=False)
    spec_out, spec_orig = torch.fft.fft2(out.double()), torch.fft.fft2(original.double())
    spec_opt = torch.fft.fft2(optimised.double())
    high = d >= STOP_FACTOR * ratio
    assert high.any()
    scale = spec_orig.abs().max()
    assert ((spec_out - spec_orig)[..., high].abs().max() / scale) < 1e-6  # the original's, to float round-off
    assert ((spec_out - spec_opt)[..., 0, 0].abs().max() / scale) < 1e-6  # DC: the optimised latent's
    mask = butterworth_lowpass(*size, ratio, onesided=False).double()
    torch.testing.assert_close(spec_out, mask * spec_opt + (1 - mask) * spec_orig, rtol=0, atol=1e-4 * scale.item())


def test_high_frequency_reset_edge_cases():
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(high_frequency_reset(x, x.clone(), 0.5), x)  # unchanged latent comes back bit-identical
    assert high_frequency_reset(x, x + 1, 0.0) is x
    mask = butterworth_lowpass(8, 8, 0.5)
    assert mask[0, 0] == 1 and mask.min() == 0 and mask.shape == (8, 5)
    assert butterworth_lowpass(8, 8, 0.5, onesided=False)[4, 0] == 0.0  # radius 1 = 2 * ratio: stop band
    assert math.isclose(float(butterworth_lowpass(8, 8, 0.5, onesided=False)[2, 0]), 0.5, rel_tol=1e-6)
    with pytest.raises(InvalidInputError):
        high_frequency_reset(x, x[:1], 0.5)


# --------------------------------------------------------------------------------------------------- optimisation
def test_optimisation_loss_falls_with_a_toy_model():
    """A frozen conv 'model': the latent is pushed so that the box content moves along the boxes."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 8, 3, padding=1).requires_grad_(False)
    boxes = latent_boxes_from_tracklets(tracklets([MOVING, LATE]), 4, 8, 16)
    targets = build_alignment_targets(boxes)
    latent = torch.randn(4, 4, 8, 16)

    def features(z):
        return [torch.tanh(conv(z)), F.avg_pool2d(torch.tanh(conv(z)), 2)]

    result = optimise_latent(latent, features, targets, iterations=8, lr=0.21, fft_ratio=0.5)
    assert len(result.losses) == 8
    assert result.losses[-1] < 0.8 * result.losses[0], result.losses
    assert result.latent.shape == latent.shape and result.latent.dtype == latent.dtype
    assert not torch.equal(result.latent, latent)
    off = optimise_latent(latent, features, targets, iterations=0)
    assert torch.equal(off.latent, latent) and off.losses == []


def test_an_overflowing_fp16_step_is_skipped_not_retried():
    """As a gradient scaler: an iteration whose (scaled) gradient is not finite makes no update and lowers the scale;
    the run still makes exactly ``iterations`` forward passes."""
    from trackdiffusion.models.guidance.sgi2v import LossScaler

    boxes = latent_boxes_from_tracklets(tracklets([MOVING]), 4, 8, 16)
    targets = build_alignment_targets(boxes)
    latent = torch.randn(4, 4, 8, 16)
    calls = []

    def features(z):
        calls.append(1)
        f = torch.tanh(z)
        if len(calls) == 2:  # the second forward overflows
            f = f * torch.tensor(float("inf"))
        return [f]

    scaler = LossScaler(torch.float16)
    start = scaler.scale
    result = optimise_latent(latent, features, targets, iterations=4, scaler=scaler, fft_ratio=0.0)
    assert len(calls) == 4 and len(result.losses) == 3
    assert scaler.scale == start / 2 and scaler.overflows == 1


# ------------------------------------------------------------------------------------------- checkpointing plan
SVD_SCALES = [("input_blocks.1.1", 320, 1), ("input_blocks.2.1", 320, 1), ("input_blocks.4.1", 640, 2),
              ("input_blocks.5.1", 640, 2), ("input_blocks.7.1", 1280, 4), ("input_blocks.8.1", 1280, 4),
              ("middle_block.1", 1280, 8), ("output_blocks.3.1", 1280, 4), ("output_blocks.4.1", 1280, 4),
              ("output_blocks.5.1", 1280, 4), ("output_blocks.6.1", 640, 2), ("output_blocks.7.1", 640, 2),
              ("output_blocks.8.1", 640, 2), ("output_blocks.9.1", 320, 1), ("output_blocks.10.1", 320, 1),
              ("output_blocks.11.1", 320, 1)]


def test_checkpointing_plan():
    from trackdiffusion.nodes.patches.sgi2v import plan_checkpointing

    def plan(gib, mode="auto"):
        return plan_checkpointing(SVD_SCALES, "output_blocks.8.1", 14, 72, 128, 2,
                                  None if gib is None else gib * 2**30, mode)

    assert plan(None) == frozenset() and plan(80) == frozenset()
    twenty = plan(20)
    assert {"input_blocks.1.1", "input_blocks.2.1"} <= twenty  # the level-0 transformers go first
    assert len(plan(8)) > len(twenty) and "output_blocks.8.1" not in plan(1)
    assert plan(1, "all") == frozenset(n for n, _, _ in SVD_SCALES[:12]) and plan(1, "off") == frozenset()
