"""The embedded demo model: box raster, shapes, a training smoke test, and the committed weights generating a clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.evaluation.synth import make_clip, train_batch
from trackdiffusion.models.demo import BoxConditioning, BoxVideoDenoiser, box_conditioning, box_raster
from trackdiffusion.models.demo.data import LABELS, label_categories
from trackdiffusion.models.demo.model import widen_input
from trackdiffusion.models.demo.train import loss_on


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


def _two_box_tracklets():
    # id 1: a 16x16 box moving right and doubling in size; id 2: appears at frame 2 (not in the first frame)
    return load({"version": 1, "width": 64, "height": 64, "num_frames": 3, "objects": [
        {"id": 1, "label": "Blue", "keyframes": [{"frame": 0, "box": [8, 8, 24, 24]},
                                                 {"frame": 2, "box": [32, 8, 64, 40]}]},
        {"id": 2, "label": "car", "keyframes": [{"frame": 0, "box": [0, 40, 8, 48], "visible": False},
                                                {"frame": 2, "box": [0, 40, 8, 48]}]}]})


def test_appearance_pastes_the_first_frame_crop_into_each_later_box():
    first = torch.full((3, 64, 64), -1.0)
    first[:, 8:16, 8:24] = 0.5  # top half of object 1's frame-0 box
    first[:, 16:24, 8:24] = -0.5  # bottom half
    cond = box_conditioning(_two_box_tracklets(), first, 3)
    app = cond.appearance
    assert app.shape == (3, 3, 64, 64)
    # frame 2: box [32, 8, 64, 40] is the frame-0 crop scaled 2x: top half 0.5, bottom half -0.5, nothing elsewhere
    assert torch.allclose(app[:, 2, 9:23, 33:63], torch.tensor(0.5))
    assert torch.allclose(app[:, 2, 25:39, 33:63], torch.tensor(-0.5))
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[8:40, 32:64] = False
    assert app[:, 2][:, outside].abs().max() == 0
    # object 2 is not in the first frame: its box gets a mask but no pasted appearance
    assert cond.masks[1, 2, 40:48, 0:8].all() and app[:, 2, 40:48, 0:8].abs().max() == 0
    # frame 0 reproduces the crop in place
    assert torch.equal(app[:, 0, 8:24, 8:24], first[:, 8:24, 8:24])


def test_categories_know_the_demo_labels_case_insensitively_and_null_the_rest():
    cond = box_conditioning(_two_box_tracklets(), torch.zeros(3, 64, 64), 3)
    assert cond.categories.tolist() == [LABELS.index("blue") + 1, 0, 0, 0]
    assert label_categories(["cyan", "", "red"]).tolist() == [LABELS.index("cyan") + 1, 0, 1, 0]


def test_widened_old_weights_compute_exactly_what_the_box_only_model_did():
    torch.manual_seed(0)
    model = BoxVideoDenoiser(width=16)
    old = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("category_emb.")}
    old["conv_in.weight"] = old["conv_in.weight"][:, :3 * 16 * 2 + 4 * 16].clone()  # the box-mask-only input
    model.load_state_dict(widen_input(old, BoxVideoDenoiser(width=16)))
    args = (torch.randn(1, 3, 2, 32, 32), torch.rand(1), torch.randn(1, 3, 32, 32), torch.rand(1, 4, 2, 32, 32).round())
    with torch.no_grad():
        plain = model(*args)
        loaded = model(*args, torch.randn(1, 3, 2, 32, 32), torch.tensor([[1, 2, 3, 4]]))
        model.conv_in.weight[:, 3 * 16 * 2 + 4 * 16:] += 0.1
        changed = model(*args, torch.randn(1, 3, 2, 32, 32), torch.tensor([[1, 2, 3, 4]]))
    assert torch.equal(plain, loaded)  # new channels at zero: appearance and categories have no effect yet
    assert not torch.allclose(plain, changed)


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
    from trackdiffusion.models.demo.data import clip_tensors

    frames, conds = zip(*(clip_tensors(c.video, c.tracklets) for c in clips))
    frames, boxes = torch.stack(frames), BoxConditioning.stack(conds)
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
    from trackdiffusion.evaluation.metrics import evaluate_clips
    from trackdiffusion.models.demo.cli import WEIGHTS, load_demo_model
    from trackdiffusion.models.demo.sampling import generate

    if not WEIGHTS.exists():
        pytest.fail(f"the demo weights {WEIGHTS} must be committed")
    model = load_demo_model()
    clip = make_clip(20000, "eval")
    video = generate(model, clip.video[0], clip.tracklets, steps=10)
    assert video.shape == clip.video.shape and video.dtype == np.uint8
    np.testing.assert_array_equal(video[0], clip.video[0])
    assert np.array_equal(generate(model, clip.video[0], clip.tracklets, steps=10), video)  # deterministic
    score = evaluate_clips([video], [clip], point_tracker=None)["metrics"]
    assert score["mIoU"] > 0.5  # a model ignoring its boxes scores ~0.2 on SynTrack (the unrelated-clip floor)
    assert score["AP50"] > 0.5  # and keeps each object's colour, so the colour-blob tracker finds its track
    # the same first frame with no boxes does not follow them
    from trackdiffusion.data.tracklets import Tracklets

    empty = Tracklets(width=clip.tracklets.width, height=clip.tracklets.height, num_frames=clip.tracklets.num_frames,
                      objects=[])
    free = evaluate_clips([generate(model, clip.video[0], empty, steps=10)], [clip], point_tracker=None)["metrics"]
    assert free["mIoU"] < score["mIoU"] - 0.2


def test_loading_weights_of_another_model_says_so(tmp_path):
    from safetensors.torch import save_file

    from trackdiffusion.models.demo.cli import load_demo_model

    path = tmp_path / "other.safetensors"
    save_file({"conv_in.weight": torch.zeros(8, 3, 3, 3), "time_embed.0.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(InvalidInputError, match="not demo-model weights"):
        load_demo_model(path)
