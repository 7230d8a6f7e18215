"""The embedded demo model: box raster, shapes, a training smoke test, and the committed weights generating a clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trackdiffusion.demo import BoxVideoDenoiser, box_raster
from trackdiffusion.demo.train import loss_on
from trackdiffusion.errors import InvalidInputError
from trackdiffusion.synth import make_clip, train_batch
from trackdiffusion.tracklets import load


def test_box_raster_puts_each_slot_in_its_box_and_hides_absent_frames():
    t = load({"version": 1, "width": 128, "height": 64, "num_frames": 3, "objects": [
        {"id": 9, "keyframes": [{"frame": 0, "box": [0, 0, 64, 32]}, {"frame": 2, "box": [0, 0, 64, 32],
                                                                       "visible": False}]},
        {"id": 2, "keyframes": [{"frame": 1, "box": [64, 32, 128, 64]}]}]})
    r = box_raster(t, 3, 32, 64)  # half the canvas size
    assert r.shape == (4, 3, 32, 64)
    # slot 0 = id 2 (ids ascending): appears at frame 1 in the bottom-right quarter
    assert r[0, 0].sum() == 0 and r[0, 1, 16:, 32:].all() and r[0, 1].sum() == 16 * 32
    # slot 1 = id 9: top-left quarter, hidden from frame 2
    assert r[1, 0, :16, :32].all() and r[1, 2].sum() == 0
    assert r[2:].sum() == 0


def test_model_shapes_and_size_check():
    model = BoxVideoDenoiser(width=16)
    out = model(torch.randn(2, 3, 4, 32, 32), torch.rand(2), torch.randn(2, 3, 32, 32), torch.zeros(2, 4, 4, 32, 32))
    assert out.shape == (2, 3, 4, 32, 32)
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        model(torch.randn(1, 3, 2, 36, 36), torch.rand(1), torch.randn(1, 3, 36, 36), torch.zeros(1, 4, 2, 36, 36))


def test_training_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = BoxVideoDenoiser(width=16)
    clips = train_batch(0, 2, "ci")
    from trackdiffusion.demo.data import clip_tensors

    frames, boxes = (torch.stack(x) for x in zip(*(clip_tensors(c.video, c.tracklets) for c in clips)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = loss_on(model, frames, boxes, torch.Generator().manual_seed(1))  # same noise: a fixed objective
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    print(f"demo smoke training: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    assert losses[-1] < 0.5 * losses[0]


def test_committed_weights_generate_a_clip_that_follows_the_boxes(tmp_path):
    from trackdiffusion.demo.cli import WEIGHTS, load_demo_model
    from trackdiffusion.demo.sampling import generate
    from trackdiffusion.metrics import evaluate_clips

    if not WEIGHTS.exists():
        pytest.fail(f"the demo weights {WEIGHTS} must be committed")
    model = load_demo_model()
    clip = make_clip(20000, "eval")
    video = generate(model, clip.video[0], clip.tracklets, steps=10)
    assert video.shape == clip.video.shape and video.dtype == np.uint8
    np.testing.assert_array_equal(video[0], clip.video[0])
    assert np.array_equal(generate(model, clip.video[0], clip.tracklets, steps=10), video)  # deterministic
    score = evaluate_clips([video], [clip], point_tracker=None)["metrics"]
    assert score["mIoU"] > 0.3  # a model ignoring its boxes scores ~0.2 on SynTrack (the unrelated-clip floor)
