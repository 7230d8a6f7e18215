"""`trackdiffusion train` in several processes (Hugging Face Accelerate, DDP on CPU with gloo), and the shares of a
step's batch that make it so.

Two processes are started by ``accelerate launch --multi_gpu --num_processes 2`` (on a machine without GPUs it runs
them on the CPU with gloo). The tiny models train a few steps, so each launch takes seconds (most of it imports).
This file is also the script those processes run (``python tests/test_training_distributed.py JOBS.json``): it trains
each job of the list and leaves, beside the run, the trained tensors of every process (``process-<rank>.pt``).

Tolerance: a share of the batch sums the same numbers in another order (batch-of-2 convolutions, an all-reduce), so
the two-process losses equal the one-process ones to float32 rounding. Measured after 3-4 Adam steps at lr 1e-3: the
losses agree to the 6 digits loss.csv keeps (largest relative difference 1.1e-6, a TrackGo attention term), the
trained tensors to 1.2e-7; the tests allow ``LOSS_RTOL`` and ``WEIGHT_ATOL``, about 100 times more. Both processes'
tensors must be bit-identical (DDP gives both the same averaged gradient).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SVD = "trackdiffusion-svd"
TINY = {"data": "syntrack", "tiny": "small", "size": (16, 16), "progress": False, "lr": 1e-3, "device": "cpu"}
FRAMES = {SVD: 4, "trackgo": 6}
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5
#: a launch that has not finished by then is hung: the test fails (and its processes are stopped)
LAUNCH_TIMEOUT_S = 600


def settings(model: str, out: Path | str, **kw) -> dict:
    return {"model": model, "out": str(out), **TINY, "frames": FRAMES[model], **kw}


def loss_rows(out: Path) -> list[dict[str, float]]:
    with open(out / "loss.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


def accelerate_or_skip() -> None:
    if importlib.util.find_spec("accelerate") is None:
        from support.comfyui import unavailable

        unavailable("accelerate is not installed (pip install -e '.[multi-gpu]'): multi-process training untested")


def launch_command(*args: str) -> list[str]:
    # port 0: torchrun picks a free one, so parallel test sessions never collide
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            *args]


def launch_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}


def launch_jobs(tmp_path: Path, jobs: list[dict]) -> None:
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps(jobs))
    done = subprocess.run(launch_command(__file__, str(spec)), env=launch_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-4000:]


def assert_close_runs(one: Path, two: Path) -> None:
    """Same loss curve (LOSS_RTOL) and trained tensors (WEIGHT_ATOL); the processes of ``two`` hold equal tensors."""
    from trackdiffusion.training import checkpoints as ckpt

    a, b = loss_rows(one), loss_rows(two)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for row_a, row_b in zip(a, b, strict=True):
        for key in row_a:
            assert row_b[key] == pytest.approx(row_a[key], rel=LOSS_RTOL), (key, row_a, row_b)
    single = ckpt.load_checkpoint(ckpt.list_checkpoints(one)[-1][1])["trainable"]
    shared = ckpt.load_checkpoint(ckpt.list_checkpoints(two)[-1][1])["trainable"]
    worst = max(float((single[k] - shared[k]).abs().max()) for k in single)
    assert worst < WEIGHT_ATOL, worst
    by_process = [torch.load(two / f"process-{rank}.pt") for rank in (0, 1)]
    assert by_process[0].keys() == by_process[1].keys() == shared.keys()
    assert all(torch.equal(by_process[0][k], by_process[1][k]) for k in shared)  # gradients were synchronised
    assert all(torch.equal(by_process[0][k], shared[k]) for k in shared)  # the checkpoint is the main process's


# ----------------------------------------------------------------------------------------------- shares, one process


@pytest.mark.parametrize("source", ["syntrack", "folder"])
def test_a_share_of_a_steps_clips_is_those_rows_of_the_whole_batch(tmp_path, source):
    from trackdiffusion.training.data import open_source

    if source == "folder":
        from trackdiffusion.data.dataset import write_tracking_sequence
        from trackdiffusion.evaluation.synth import make_clip

        clip = make_clip(20002, "ci")
        write_tracking_sequence(clip.video, clip.tracklets, tmp_path / "data", "seq", image_format="png")
        source = str(tmp_path / "data")
    data = open_source(source, 16, 16, 4)
    whole = data.clips(7, 4, seed=3)
    for first, count in ((0, 2), (1, 2), (3, 1)):
        share = data.clips(7, count, seed=3, first=first)
        for a, b in zip(whole[first:first + count], share, strict=True):
            assert np.array_equal(a.video, b.video) and np.array_equal(a.boxes, b.boxes) and a.name == b.name


def _tiny_vae_base(root: Path) -> Path:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

    from trackdiffusion.training.train import tiny_unet_config

    torch.manual_seed(0)
    UNetSpatioTemporalConditionModel(**tiny_unet_config("small", 4, 4)).save_pretrained(root / "unet")
    AutoencoderKLTemporalDecoder(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                                 latent_channels=4, layers_per_block=1).save_pretrained(root / "vae")
    return root


@pytest.mark.parametrize("model", [SVD, "trackgo", "vae"])
def test_a_share_of_a_steps_batch_is_those_rows_of_the_whole_batch(tmp_path, model):
    """Every draw (clips, colours, conditioning noise, VAE posterior noise, dropout, sigma, noise, TrackGo points) is
    made for the global batch and sliced: a process preparing rows 2..3 gets exactly rows 2..3 of the whole batch."""
    from trackdiffusion.training.train import TrainConfig, Trainer

    if model == "vae":
        root = _tiny_vae_base(tmp_path / "svd")
        config = TrainConfig(model=SVD, out=str(tmp_path), data="syntrack", base=str(root), vae=str(root),
                             size=(32, 32), frames=4, batch=4, progress=False)
    else:
        config = TrainConfig(**settings(model, tmp_path, batch=4))
    trainer = Trainer(config)
    whole = trainer.prepare(trainer.clips(5), 5)
    share = trainer.prepare(trainer.clips(5, first=2, count=2), 5, first=2, global_batch=4)
    assert whole.keys() == share.keys()
    for key, value in whole.items():
        if key == "moving_mask":  # zero-padded to the most moving objects of the clips at hand
            value = value[:, :share[key].shape[1]]
            assert not whole[key][2:, share[key].shape[1]:].any()
        assert torch.allclose(value[2:4], share[key], atol=1e-6, rtol=1e-5), key
    if model == "vae":  # the posterior is sampled: the share draws the same noise as the whole batch
        assert torch.allclose(whole["latents"][2:4], share["latents"], atol=1e-5)


@pytest.mark.parametrize("model", [SVD, "trackgo"])
def test_gradient_accumulation_takes_the_same_steps(tmp_path, model):
    from trackdiffusion.training.train import TrainConfig, train

    one = train(TrainConfig(**settings(model, tmp_path / "one", batch=4, steps=3)))
    four = train(TrainConfig(**settings(model, tmp_path / "four", batch=4, steps=3, gradient_accumulation=4)))
    for a, b in zip(one.losses, four.losses, strict=True):
        assert all(b[k] == pytest.approx(a[k], rel=LOSS_RTOL) for k in a if k != "seconds")
    # how the batch was shared is not a setting of the run: the accumulated run's checkpoint is accepted without it
    assert train(TrainConfig(**settings(model, tmp_path / "four", batch=4, steps=3)), resume=True).step == 3


def test_refusals_are_one_line(tmp_path, monkeypatch):
    from trackdiffusion.data.errors import InvalidInputError
    from trackdiffusion.training.train import TrainConfig, Trainer, train

    with pytest.raises(InvalidInputError, match=r"global batch of 3 clips does not split into 1 process\(es\) x 2"):
        Trainer(TrainConfig(**settings(SVD, tmp_path, batch=3, gradient_accumulation=2)))
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    with pytest.raises(InvalidInputError, match="fp16 mixed precision, which needs loss scaling"):
        TrainConfig(**settings(SVD, tmp_path)).resolved()
    assert TrainConfig(**settings(SVD, tmp_path, mixed_precision="no")).resolved().mixed_precision == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # adopted: and bf16 needs CUDA
    with pytest.raises(InvalidInputError, match="bf16 mixed precision needs --device cuda"):
        TrainConfig(**settings(SVD, tmp_path)).resolved()
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    monkeypatch.setenv("ACCELERATE_USE_MEGATRON_LM", "true")  # DeepSpeed's and FSDP's: tests/test_training_fsdp.py
    with pytest.raises(InvalidInputError, match="asks for Megatron-LM, which trackdiffusion train does not support"):
        train(TrainConfig(**settings(SVD, tmp_path / "megatron", steps=1)))
    monkeypatch.delenv("ACCELERATE_USE_MEGATRON_LM")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setitem(sys.modules, "accelerate", None)  # "not installed"
    with pytest.raises(InvalidInputError, match="one of 2 processes, but Hugging Face Accelerate is not installed") \
            as err:
        train(TrainConfig(**settings(SVD, tmp_path / "alone", steps=1)))
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------------- two processes


def test_two_processes_train_as_one_and_resume_a_one_process_run(tmp_path):
    """(a) same global batch and seed: the 2-process loss curve and weights equal the 1-process ones (TrackDiffusion,
    and TrackGo whose adapter is not a UNet submodule, with accumulation too); (b) both processes hold identical
    trained tensors; (d) a 1-process checkpoint resumes in 2 processes and continues the 1-process curve."""
    accelerate_or_skip()
    from trackdiffusion.training import checkpoints as ckpt
    from trackdiffusion.training.train import TrainConfig, train

    svd = settings(SVD, "", batch=4, steps=4, save_every=2)
    go = settings("trackgo", "", batch=4, steps=3, save_every=3)
    train(TrainConfig(**{**svd, "out": str(tmp_path / "svd-1")}))
    train(TrainConfig(**{**go, "out": str(tmp_path / "go-1")}))
    cut = TrainConfig(**{**svd, "out": str(tmp_path / "svd-resumed")})

    def stop_after_step_2(done, values):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cut, callback=stop_after_step_2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "svd-resumed")] == [2]

    launch_jobs(tmp_path, [{**svd, "out": str(tmp_path / "svd-2")},
                           {**go, "out": str(tmp_path / "go-2"), "gradient_accumulation": 2},
                           {**svd, "out": str(tmp_path / "svd-resumed"), "resume": True}])
    assert_close_runs(tmp_path / "svd-1", tmp_path / "svd-2")
    assert_close_runs(tmp_path / "go-1", tmp_path / "go-2")
    assert_close_runs(tmp_path / "svd-1", tmp_path / "svd-resumed")
    shared = json.loads((tmp_path / "go-2" / "run.json").read_text())["shared"]
    assert shared == {"processes": 2, "gradient_accumulation": 2, "micro_batch": 1}


def _children_with_rank(pid: int, rank: str) -> list[int]:
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.environ().get("RANK") == rank and "trackdiffusion" in " ".join(child.cmdline()):
                found.append(child.pid)
    return found


def test_a_killed_process_stops_the_run_with_one_line_and_an_intact_checkpoint(tmp_path):
    """(c) kill -9 one of two processes mid-run: the run fails within the timeout (no hang), the survivor says in one
    line what happened and which checkpoint is the last, and that checkpoint loads and resumes."""
    accelerate_or_skip()
    from safetensors.torch import load_file

    from trackdiffusion.training import checkpoints as ckpt
    from trackdiffusion.training.train import TrainConfig, train

    out = tmp_path / "run"
    argv = ["-m", "trackdiffusion", "train", SVD, "--data", "syntrack", "--out", str(out), "--tiny", "--size", "16x16",
            "--frames", "4", "--steps", "100000", "--batch", "2", "--save-every", "2", "--lr", "1e-3", "--device",
            "cpu", "--no-progress", "--process-timeout", "60"]
    stderr = tmp_path / "stderr.txt"
    with open(stderr, "w") as err:
        launcher = subprocess.Popen(launch_command(*argv), env=launch_env(), stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True)
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while not ckpt.list_checkpoints(out) and launcher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ckpt.list_checkpoints(out), stderr.read_text()[-3000:]
        victims = _children_with_rank(launcher.pid, "1")
        assert len(victims) == 1, victims
        os.kill(victims[0], signal.SIGKILL)
        killed_at = time.monotonic()
        returncode = launcher.wait(timeout=120)
        stopped_after = time.monotonic() - killed_at
    finally:
        if launcher.poll() is None:  # hung: stop the launcher's session (its workers with it), then fail
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    text = stderr.read_text()
    assert returncode != 0
    ours = [line for line in text.splitlines()
            if line.startswith(("error: process 0 of 2: another training process", "interrupted during step"))]
    assert len(ours) == 1, text[-3000:]
    last = ckpt.list_checkpoints(out)[-1][0]
    assert re.search(rf"the last checkpoint is step {last}: continue with --resume", ours[0]), ours[0]
    print(f"stopped {stopped_after:.1f} s after the kill: {ours[0]}")
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(out, last))
    assert state["step"] == last
    load_file(out / "trackdiffusion_svd_stage1.safetensors")
    resumed = []
    config = TrainConfig(**settings(SVD, out, batch=2, steps=100000, save_every=2, resume=True))

    def stop_after_one(done, values):
        resumed.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, callback=stop_after_one)  # one process, from the two-process run's last checkpoint
    assert resumed == [last + 1]


# ----------------------------------------------------------------------------------------------- the launched script


def _run_jobs(spec: str) -> None:
    """Train each job of ``spec`` (a JSON list of TrainConfig settings) in this process; beside each run, this
    process's trained tensors at its last checkpoint (``process-<rank>.pt``)."""
    from trackdiffusion.training import trainer as trainer_module
    from trackdiffusion.training.train import TrainConfig, train

    save = trainer_module.Trainer.save

    def save_and_keep_this_process_tensors(self, out, step):
        path = save(self, out, step)
        torch.save(self.trainable_state(), Path(out) / f"process-{self.processes.index}.pt")
        return path

    trainer_module.Trainer.save = save_and_keep_this_process_tensors
    for job in json.loads(Path(spec).read_text()):
        if "size" in job:
            job["size"] = tuple(job["size"])
        train(TrainConfig(**job))


if __name__ == "__main__":
    _run_jobs(sys.argv[1])
