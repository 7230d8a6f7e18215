"""`trackdiffusion train` on tiny models (CPU): learning, exact resumption, refusals, atomic checkpoints, exports."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.training import checkpoints as ckpt
from trackdiffusion.training.cli import main as cli_main
from trackdiffusion.training.train import TrainConfig, Trainer, train

SVD = "trackdiffusion-svd"
# 16x16 pixels -> an 8x8x12 stand-in latent; TrackGo needs > 5 frames (a uniform A' must stay below alpha = 0.2)
TINY = {"data": "syntrack", "tiny": "small", "size": (16, 16), "batch": 1, "progress": False}
FRAMES = {SVD: 4, "trackgo": 6}


def config(model, out, **kw) -> TrainConfig:
    return TrainConfig(model=model, out=str(out), **{**TINY, "frames": FRAMES[model], **kw})


def loss_rows(out):
    with open(out / "loss.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Stop(Exception):
    pass


def interrupt_at(step, exc=KeyboardInterrupt):
    def callback(done, values):
        if done == step:
            raise exc()

    return callback


@pytest.mark.parametrize("model,lr,steps,factor", [(SVD, 3e-3, 30, 0.5), ("trackgo", 3e-3, 40, 0.99)])
def test_loss_falls_on_a_fixed_batch(tmp_path, model, lr, steps, factor):
    trainer = Trainer(config(model, tmp_path, steps=steps, lr=lr, warmup=0))
    batch = trainer.prepare(trainer.clips(1), 1, dropout=False)  # fixed clips, sigma, noise
    frozen = {k: v.clone() for k, v in trainer.unet.state_dict().items() if not any(
        n in k for n in ("fuser", "position_net", "time_mixer", "conv_in", "conv_out"))}
    before = trainer.evaluate(batch)
    for _ in range(steps):
        trainer.optimize(batch)
    after = trainer.evaluate(batch)
    print(f"{model}: loss on a fixed batch {before} -> {after} after {steps} steps")
    assert after["loss"] < factor * before["loss"]
    if model == "trackgo":
        assert after["noise"] < before["noise"]
    # only the official trainable set moved (TrackGo: only the adapter, which is not part of the UNet)
    assert all(torch.equal(v, trainer.unet.state_dict()[k]) for k, v in frozen.items())


BASE_LAYERS = ("time_mixer", "conv_in", "conv_out")


def test_base_lr_sets_the_base_layers_own_rate_and_zero_freezes_them(tmp_path):
    def moved(trainer, steps=3):
        batch = trainer.prepare(trainer.clips(1), 1, dropout=False)
        before = {k: v.clone() for k, v in trainer.attachment.unet.named_parameters()}
        for _ in range(steps):
            trainer.optimize(batch)
        after = dict(trainer.attachment.unet.named_parameters())
        return {k for k, v in before.items() if not torch.equal(v, after[k])}

    frozen = Trainer(config(SVD, tmp_path / "a", steps=10, lr=1e-3, base_lr=0, warmup=0))
    changed = moved(frozen)
    assert changed and not any(n in k for k in changed for n in BASE_LAYERS)  # only fusers / position net moved
    assert [g["initial_lr"] for g in frozen.optimizer.param_groups] == [1e-3]
    slow = Trainer(config(SVD, tmp_path / "b", steps=10, lr=1e-3, base_lr=1e-5, warmup=0))
    added, own = slow.optimizer.param_groups
    assert (added["initial_lr"], own["initial_lr"]) == (1e-3, 1e-5)
    names = {id(p): n for n, p in slow.named_parameters}
    assert all(any(n in names[id(p)] for n in BASE_LAYERS) for p in own["params"])
    assert not any(any(n in names[id(p)] for n in BASE_LAYERS) for p in added["params"])
    assert any(n in k for k in moved(slow) for n in BASE_LAYERS)
    # one LR for all (the default, as officially): one group, and the settings a checkpoint keeps are as before
    same = config(SVD, tmp_path / "c", steps=10, lr=1e-3).resolved()
    assert same.base_lr == 1e-3 and "base_lr" not in same.settings()
    assert config(SVD, tmp_path / "c", steps=10, lr=1e-3, base_lr=1e-5).resolved().settings()["base_lr"] == 1e-5
    with pytest.raises(InvalidInputError, match="--base-lr applies to trackdiffusion-svd only"):
        config("trackgo", tmp_path / "d", base_lr=1e-5).resolved()
    with pytest.raises(InvalidInputError, match="base_lr must be a finite number"):
        config(SVD, tmp_path / "d", base_lr=-1.0).resolved()


@pytest.mark.parametrize("model", [SVD, "trackgo"])
def test_resume_after_interruption_continues_exactly(tmp_path, model):
    steps = 5
    whole = train(config(model, tmp_path / "whole", steps=steps, save_every=2, lr=1e-3))
    cut = config(model, tmp_path / "cut", steps=steps, save_every=2, lr=1e-3)
    with pytest.raises(KeyboardInterrupt):
        train(cut, callback=interrupt_at(3))  # after step 3, whose checkpoint (step 2) is the last one
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "cut")] == [2]
    assert len(loss_rows(tmp_path / "cut")) == 3
    resumed = train(cut, resume=True)
    assert resumed.step == steps and [r["step"] for r in resumed.losses] == [3, 4, 5]
    a = ckpt.load_checkpoint(whole.checkpoint)
    b = ckpt.load_checkpoint(resumed.checkpoint)
    assert a["step"] == b["step"] == steps and a["trainable"].keys() == b["trainable"].keys()
    assert all(torch.equal(a["trainable"][k], b["trainable"][k]) for k in a["trainable"])  # bit for bit
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert a["scheduler"] == b["scheduler"]
    assert loss_rows(tmp_path / "whole") == [{**r, "seconds": w["seconds"]} for r, w in
                                             zip(loss_rows(tmp_path / "cut"), loss_rows(tmp_path / "whole"))]
    fa, fb = load_file(whole.adapter), load_file(resumed.adapter)
    assert all(torch.equal(fa[k], fb[k]) for k in fa)


def test_trackgo_batches_condition_on_the_builders_points_and_per_object_masks(tmp_path):
    from trackdiffusion.data.trajectories import points_per_mask
    from trackdiffusion.training.data import (
        moving_objects,
        object_masks,
        point_seed,
        stack_object_masks,
        training_points,
        trajectory_video,
    )

    trainer = Trainer(config("trackgo", tmp_path, steps=1, batch=2, seed=3))
    clips = trainer.clips(2)
    batch = trainer.prepare(clips, 2, dropout=False)
    # P: the training points of each clip (seeded from (seed, step, clip)) rendered at 8x the 8x8 latent
    want = np.stack([trajectory_video(c, 64, 64, point_seed(3, 2, i)) for i, c in enumerate(clips)])
    assert torch.equal(batch["video"], torch.from_numpy(want).permute(0, 1, 4, 2, 3).float() / 255)
    for i, clip in enumerate(clips):
        counts = np.bincount(training_points(clip, point_seed(3, 2, i)).component).tolist()
        assert counts == [min(points_per_mask(clip.masks[t0, slot].mean()), int(clip.masks[t0, slot].sum()))
                          for slot, t0 in moving_objects(clip)]
    # M_i: [B, O, F, h, w] per moving object and frame, area-averaged to the latent grid, zero-padded
    masks = batch["moving_mask"]
    assert masks.shape == (2, max(1, *(len(moving_objects(c)) for c in clips)), 6, 8, 8)
    assert torch.equal(masks, torch.from_numpy(stack_object_masks([object_masks(c, (8, 8)) for c in clips])))
    full = object_masks(clips[0])  # 16x16: the latent grid is its 2x2 average
    np.testing.assert_allclose(masks[0, :len(full)].numpy(), full.reshape(len(full), 6, 8, 2, 8, 2).mean((3, 5)))
    assert trainer.evaluate(batch)["attention"] > 0


def test_resume_refuses_other_settings_and_another_base(tmp_path):
    out = tmp_path / "run"
    train(config(SVD, out, steps=2, lr=1e-3))
    with pytest.raises(InvalidInputError, match="already holds a training run"):
        train(config(SVD, out, steps=2, lr=1e-3))
    with pytest.raises(InvalidInputError, match=r"lr: checkpoint 0\.001, now 0\.002.*batch|batch.*lr") as err:
        train(config(SVD, out, steps=2, lr=2e-3, batch=2), resume=True)
    assert "batch: checkpoint 1, now 2" in str(err.value)
    with pytest.raises(InvalidInputError, match="stage: checkpoint 1, now 2"):
        train(config(SVD, out, steps=2, lr=1e-3, stage=2), resume=True)
    # another base (4-channel stand-in latent: conv_in / conv_out differ): both bases are named
    with pytest.raises(InvalidInputError, match="another base") as err:
        train(config(SVD, out, steps=2, lr=1e-3, latent_channels=4), resume=True)
    message = str(err.value)
    assert "in_channels 24" in message and "in_channels 8" in message and "conv_in.weight" in message
    # a delta of another base as --init: the shapes of both are named
    delta = out / "trackdiffusion_svd_stage1.safetensors"
    with pytest.raises(InvalidInputError, match=r"another base.*in_channels 8.*conv_in.weight: file \[32, 24"):
        Trainer(config(SVD, tmp_path / "other", steps=2, latent_channels=4, init=str(delta)))


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = config(SVD, out, steps=8, save_every=2, lr=1e-3)
    with pytest.raises(Stop):
        train(cfg, callback=interrupt_at(4, Stop))  # stopped after step 4: checkpoints 2 and 4
    assert [s for s, _ in ckpt.list_checkpoints(out)] == [2, 4]
    before = {p.name: digest(p) for _, p in ckpt.list_checkpoints(out)}
    real_save = torch.save

    def crash_midway(obj, fh, *args, **kwargs):  # half the bytes reach the disk, then the process "dies"
        import io

        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, resume=True)  # resumes at 4, crashes writing step 6
    monkeypatch.undo()
    assert {p.name: digest(p) for _, p in ckpt.list_checkpoints(out)} == before
    assert not [p for p in ckpt.checkpoint_dir(out).iterdir() if p.name.endswith(".tmp")]
    # a kill -9 during a write leaves a temporary file behind: ignored and removed on the next start
    stale = ckpt.checkpoint_dir(out) / ".step-00000006.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    result = train(cfg, resume=True)
    assert result.step == 8 and not stale.exists()
    assert [s for s, _ in ckpt.list_checkpoints(out)] == [4, 6, 8]  # the newest 3 are kept
    assert [int(r["step"]) for r in loss_rows(out)] == list(range(1, 9))
    whole = train(config(SVD, tmp_path / "whole", steps=8, save_every=2, lr=1e-3))
    a, b = (ckpt.load_checkpoint(p)["trainable"] for p in (whole.checkpoint, result.checkpoint))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_exported_files_load_with_the_pack_loaders(tmp_path):
    from trackdiffusion.models.checkpoints import SVD_DELTA_FORMAT, load_delta
    from trackdiffusion.models.svd.adapter import TrackDiffusionSVDAdapter
    from trackdiffusion.models.trackgo.adapter import TRACKGO_FORMAT, TrackGoAdapter
    from trackdiffusion.models.trackgo.diffusers import attach_trackgo

    # TrackDiffusion-SVD, real SVD block layout at tiny widths: load_delta's full key check passes
    run = train(config(SVD, tmp_path / "svd", steps=1, lr=1e-3, tiny="svd-layout", stage=2))
    tensors, metadata = load_delta(run.adapter)
    assert metadata["format"] == SVD_DELTA_FORMAT and metadata["version"] == "1" and metadata["stage"] == "2"
    assert metadata["head_dim"] == "16" and metadata["base"] == "tiny-svd-layout" and metadata["trained_steps"] == "1"
    adapter_sd, base = TrackDiffusionSVDAdapter.split_delta(tensors)
    blocks, context = TrackDiffusionSVDAdapter.blocks_from_state_dict(adapter_sd)
    assert len(blocks) == 16 and context == 32 and len(base) == 2 + 2 + 38  # conv_in, conv_out, mix factors
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=context, head_dim=int(metadata["head_dim"]))
    adapter.load_state_dict(adapter_sd, strict=True)

    # the small tiny layout (2 levels) is not SVD's: load_delta refuses it, the adapter class loads it
    small = train(config(SVD, tmp_path / "small", steps=2, lr=1e-3))
    with pytest.raises(InvalidInputError):
        load_delta(small.adapter)
    with safe_open(str(small.adapter), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(small.adapter)
    adapter_sd, base = TrackDiffusionSVDAdapter.split_delta(tensors)
    blocks, context = TrackDiffusionSVDAdapter.blocks_from_state_dict(adapter_sd)
    assert {b for b, _ in blocks} == {"input_blocks.1.1", "middle_block.1", "output_blocks.2.1", "output_blocks.3.1"}
    assert meta["stage"] == "1"
    TrackDiffusionSVDAdapter(blocks, context_dim=context, head_dim=int(meta["head_dim"])).load_state_dict(
        adapter_sd, strict=True)
    # ... and it starts stage 2 (--init): the trained tensors are loaded into the attachment and the UNet
    stage2 = Trainer(config(SVD, tmp_path / "stage2", steps=2, stage=2, init=str(small.adapter)))
    trained = ckpt.load_checkpoint(small.checkpoint)["trainable"]
    assert all(torch.equal(p.detach(), trained[k]) for k, p in stage2.named_parameters)

    # TrackGo: the adapter file of diffusers_trackgo.adapter_file, with its trained steps
    go = train(config("trackgo", tmp_path / "go", steps=2, lr=1e-3))
    with safe_open(str(go.adapter), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == TRACKGO_FORMAT and meta["trained_steps"] == "2"
    adapter = TrackGoAdapter.from_config(json.loads(meta["config"]))
    adapter.load_state_dict(load_file(go.adapter), strict=True)
    trainer = Trainer(config("trackgo", tmp_path / "go2", steps=1))
    trainer.attachment.detach()
    attach_trackgo(trainer.unet, adapter=adapter).detach()  # fits the UNet it was trained on


def test_dataset_folder_training_and_the_cli(tmp_path, capsys):
    from trackdiffusion.data.dataset import write_tracking_sequence
    from trackdiffusion.evaluation.synth import make_clip

    clip = make_clip(20002, "ci")
    write_tracking_sequence(clip.video, clip.tracklets, tmp_path / "data", "seq", image_format="png")
    out = tmp_path / "out"
    argv = ["train", "trackgo", "--data", str(tmp_path / "data"), "--out", str(out), "--tiny", "--steps", "2",
            "--frames", "6", "--size", "16x16", "--save-every", "1", "--lr", "1e-3", "--no-progress"]
    assert cli_main(argv) == 0
    assert (out / "trackgo_adapter.safetensors").is_file() and len(loss_rows(out)) == 2
    assert json.loads((out / "run.json").read_text())["data"].startswith("MOT folder")
    assert cli_main(argv) == 2 and "--resume" in capsys.readouterr().err
    assert cli_main([*argv, "--resume", "--steps", "3"]) == 2  # steps set the LR schedule: refused
    assert cli_main(["train", "trackgo", "--data", str(tmp_path), "--out", str(tmp_path / "x"), "--tiny",
                     "--frames", "4"]) == 2
    assert "more than 5 frames" in capsys.readouterr().err


def test_a_local_svd_folder_with_vae_and_image_encoder(tmp_path):
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from trackdiffusion.training.train import tiny_unet_config

    root = tmp_path / "svd"  # a diffusers SVD model folder in miniature: 4-channel latents need the VAE
    torch.manual_seed(0)
    UNetSpatioTemporalConditionModel(**tiny_unet_config("small", 4, 4)).save_pretrained(root / "unet")
    AutoencoderKLTemporalDecoder(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                                 latent_channels=4, layers_per_block=1).save_pretrained(root / "vae")
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                   num_attention_heads=2, patch_size=32, projection_dim=32)
                                  ).save_pretrained(root / "image_encoder")
    base = {"data": "syntrack", "base": str(root), "size": (32, 32), "frames": 4, "progress": False}
    run = train(TrainConfig(model=SVD, out=str(tmp_path / "run"), steps=2, lr=1e-4, vae=str(root),
                            image_encoder=str(root), **base))
    assert run.step == 2 and run.adapter.is_file()
    trainer = Trainer(TrainConfig(model=SVD, out=str(tmp_path / "x"), vae=str(root), image_encoder=str(root),
                                  **base))
    batch = trainer.prepare(trainer.clips(0), 0, dropout=False)
    assert batch["latents"].shape == (1, 4, 4, 16, 16) and batch["image_embeddings"].abs().sum() > 0
    with pytest.raises(InvalidInputError, match="needs its VAE"):
        Trainer(TrainConfig(model=SVD, out=str(tmp_path / "y"), **base))
    with pytest.raises(InvalidInputError, match="not an SVD VAE|AutoencoderKLTemporalDecoder folder"):
        Trainer(TrainConfig(model=SVD, out=str(tmp_path / "z"), **{**base, "base": str(root / "vae")}))


def test_plain_progress_line_without_tqdm(monkeypatch):
    import io
    import sys

    from trackdiffusion.training.train import Progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # "not installed"
    stream = io.StringIO()
    progress = Progress(total=4, start=0, enabled=True, stream=stream)
    for step in range(1, 5):
        progress.update(step, {"loss": 0.5, "lr": 1e-4})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert progress.bar is None and lines[-1].startswith("step 4/4  loss 0.5  lr 1.00e-04")


@pytest.mark.parametrize("model", [SVD, "trackgo"])
def test_gradient_checkpointing_takes_the_same_step(tmp_path, model):
    # the spatial blocks (fusers included) are recomputed during backward: the condition must still be active
    states = []
    for checkpointing in (False, True):
        trainer = Trainer(config(model, tmp_path, steps=2, gradient_checkpointing=checkpointing))
        trainer.optimize(trainer.prepare(trainer.clips(0), 0))
        states.append(trainer.trainable_state())
    assert all(torch.allclose(states[0][k], states[1][k], atol=1e-6) for k in states[0])


def test_trackgo_trains_the_unconditional_state_inference_uses(tmp_path, monkeypatch):
    """Inference's CFG gives TrackGo's unconditional half an empty (black) trajectory video with the image conditions
    dropped; training shows that state: where both image conditions are dropped the video is black and nothing is a
    moving part, and only there."""
    import trackdiffusion.training.trainer as trainer_module

    trainer = Trainer(config("trackgo", tmp_path, batch=4))
    clips = trainer.clips(0)
    reference = trainer.prepare(clips, 0, dropout=False)
    # the dropout draw: both dropped, image latent only, nothing, embedding only
    draws = torch.tensor([0.15, 0.25, 0.5, 0.05])
    real_rand = torch.rand
    monkeypatch.setattr(trainer_module.torch, "rand", lambda *a, **k: draws.clone() if a == (4,) else real_rand(*a, **k))
    batch = trainer.prepare(clips, 0)
    assert batch["video"][0].abs().sum() == 0 and batch["moving_mask"][0].abs().sum() == 0
    assert reference["video"][0].abs().sum() > 0 and reference["moving_mask"][0].abs().sum() > 0
    assert torch.equal(batch["video"][1:], reference["video"][1:])
    assert torch.equal(batch["moving_mask"][1:], reference["moving_mask"][1:])
