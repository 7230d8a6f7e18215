"""`trackdiffusion train` sharded over processes (FSDP: torch's ``fully_shard``), and the launch settings it reads.

Two CPU processes joined by gloo are started by ``accelerate launch --use_fsdp --num_processes 2`` (the trainer
shards the trained tensors itself, with FSDP2's ``fully_shard``, on CPUs as on GPUs). As in
tests/test_training_distributed.py the tiny models train a few steps, and this file is also the script the launched
processes run (``python tests/test_training_fsdp.py JOBS.json``): it trains each job and leaves, beside the run, what
each process held at its last checkpoint (``process-<rank>.pt``): the trained tensors gathered from every shard, its
own shards of them, and its shares of the optimizer's moments.

Tolerance: as for data parallel, the two-process losses and tensors equal the one-process ones to float32 rounding
(the gradients are summed in another order: reduce-scattered per micro-batch, clipped by a norm taken over shards).
Measured after 2-4 Adam steps at lr 1e-3 (TrackDiffusion and TrackGo on the tiny UNet, the whole tiny UNet for
svd-base): losses equal to the 6 digits loss.csv keeps (largest relative difference 1.1e-6), trained tensors to
1.2e-7 (svd-base: on the elements whose gradient is not float noise, see :func:`assert_same_curve`); the tests allow
the data-parallel tests' ``LOSS_RTOL`` and ``WEIGHT_ATOL``, about 100 times more.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_training_distributed import (
    LAUNCH_TIMEOUT_S,
    LOSS_RTOL,
    SVD,
    WEIGHT_ATOL,
    _tiny_vae_base,
    accelerate_or_skip,
    launch_env,
    loss_rows,
    settings,
)

#: what the launch tells Accelerate: FSDP with accelerate launch's defaults (version 1, FULL_SHARD, and
#: sync_module_states, which Accelerate's own FSDP refuses on CPUs)
FSDP_LAUNCH = ("--use_fsdp",)
#: largest differences between 1 and 2 processes in this run (relative, per loss value; absolute, per tensor element)
MEASURED = {"loss": 0.0, "weights": 0.0}
#: a gradient element smaller than this is float noise (svd-base's biases before GroupNorm): see assert_same_curve
NOISE_FLOOR = 1e-6


def fsdp_launch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", *FSDP_LAUNCH, "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            *args]


def launch_fsdp_jobs(tmp_path: Path, jobs: list[dict]) -> None:
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps(jobs))
    done = subprocess.run(fsdp_launch_command(__file__, str(spec)), env=launch_env(), capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-4000:]


def assert_same_curve(one: Path, two: Path, step: int | None = None) -> None:
    """Same loss curve (LOSS_RTOL), and at checkpoint ``step`` (default: the last) the same trained tensors
    (WEIGHT_ATOL) and optimizer state.

    Where the one-process gradient of an element is float noise (a bias before a GroupNorm, whose gradient is 0 but
    for rounding: svd-base), Adam's first step divides it by its own size (plus eps 1e-8) and moves it by up to the
    LR whichever way the noise points, in one process as in two (measured for svd-base at lr 1e-3: 3e-4 with FSDP and
    DDP alike). So the tensors are compared at step 1 on the elements whose gradient is at least ``NOISE_FLOOR``."""
    from trackdiffusion.training import checkpoints as ckpt

    a, b = loss_rows(one), loss_rows(two)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for row_a, row_b in zip(a, b, strict=True):
        for key in row_a:
            assert row_b[key] == pytest.approx(row_a[key], rel=LOSS_RTOL), (key, row_a, row_b)
            if row_a[key] and key != "step":
                MEASURED["loss"] = max(MEASURED["loss"], abs(row_b[key] / row_a[key] - 1))
    step = ckpt.list_checkpoints(one)[-1][0] if step is None else step
    single = ckpt.load_checkpoint(ckpt.checkpoint_path(one, step))
    shared = ckpt.load_checkpoint(ckpt.checkpoint_path(two, step))
    assert single["trainable"].keys() == shared["trainable"].keys()
    order = {name: i for i, name in enumerate(single["trainable"])}  # the optimizer's order: one group here
    worst = 0.0
    for name, tensor in single["trainable"].items():
        real = torch.ones_like(tensor, dtype=torch.bool)
        if step == 1:  # Adam's second moment after one step: (1 - 0.999) g^2
            real = (single["optimizer"]["state"][order[name]]["exp_avg_sq"] / 1e-3).sqrt() >= NOISE_FLOOR
        if real.any():
            worst = max(worst, float((tensor - shared["trainable"][name])[real].abs().max()))
    MEASURED["weights"] = max(MEASURED["weights"], worst)
    assert worst < WEIGHT_ATOL, worst
    # the optimizer state is written in the single-process form: same indices, groups and steps
    s_opt, f_opt = single["optimizer"], shared["optimizer"]
    assert s_opt["param_groups"] == f_opt["param_groups"]
    assert s_opt["state"].keys() == f_opt["state"].keys()
    for i, state in s_opt["state"].items():
        assert state.keys() == f_opt["state"][i].keys()
        assert float(state["step"]) == float(f_opt["state"][i]["step"])
        for moment in ("exp_avg", "exp_avg_sq"):  # atol: elements whose gradient is float noise (see above)
            assert torch.allclose(state[moment], f_opt["state"][i][moment], rtol=1e-3, atol=1e-6), (i, moment)


def assert_sharded(run: Path, checkpoint: dict) -> None:
    """Both processes gathered the same whole tensors, the checkpoint's; each held about half of every tensor and of
    its optimizer moments (its shard), and the two shards make the whole."""
    by_process = [torch.load(run / f"process-{rank}.pt") for rank in (0, 1)]
    trained = checkpoint["trainable"]
    for held in by_process:
        assert held["gathered"].keys() == trained.keys()
        assert all(torch.equal(held["gathered"][k], trained[k]) for k in trained)
    total = sum(t.numel() for t in trained.values())
    for held in by_process:
        own = sum(t.numel() for t in held["shards"].values())  # the 0-dim tensors (fusers' gates) are whole
        assert 0.4 * total < own < 0.6 * total, (own, total)
        moments = sum(held["moments"].values())
        assert 0.4 * 2 * total < moments < 0.6 * 2 * total, (moments, total)
    for name, whole in trained.items():  # dimension 0 split in order: rank 0's rows, then rank 1's
        if whole.dim() == 0:
            assert all(torch.equal(held["shards"][name], whole) for held in by_process), name
            continue
        rows = torch.cat([by_process[0]["shards"][name], by_process[1]["shards"][name]])
        assert torch.equal(rows, whole), name


# ----------------------------------------------------------------------------------------------- launch settings


def test_the_fsdp_settings_accelerate_exports_are_read_or_refused_in_one_line(monkeypatch):
    from trackdiffusion.data.errors import InvalidInputError
    from trackdiffusion.training.distributed import launched_sharding

    for name in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_SHARDING_STRATEGY", "FSDP_RESHARD_AFTER_FORWARD",
                 "FSDP_OFFLOAD_PARAMS", "FSDP_ACTIVATION_CHECKPOINTING"):
        monkeypatch.delenv(name, raising=False)
    assert launched_sharding() is None
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert launched_sharding().reshard_after_forward  # accelerate's defaults: version 1, FULL_SHARD
    for strategy, reshard in (("SHARD_GRAD_OP", False), ("2", False), ("FULL_SHARD", True), ("1", True)):
        monkeypatch.setenv("FSDP_SHARDING_STRATEGY", strategy)
        assert launched_sharding().reshard_after_forward is reshard, strategy
    for strategy, message in (("NO_SHARD", "NO_SHARD .plain data parallel."), ("3", "NO_SHARD"),
                              ("HYBRID_SHARD", "HYBRID_SHARD, which trackdiffusion train does not support")):
        monkeypatch.setenv("FSDP_SHARDING_STRATEGY", strategy)
        with pytest.raises(InvalidInputError, match=message) as err:
            launched_sharding()
        assert "\n" not in str(err.value)
    monkeypatch.delenv("FSDP_SHARDING_STRATEGY")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setenv("FSDP_RESHARD_AFTER_FORWARD", "false")
    assert launched_sharding().reshard_after_forward is False
    monkeypatch.setenv("FSDP_RESHARD_AFTER_FORWARD", "FULL_SHARD")
    with pytest.raises(InvalidInputError, match="use true or false"):
        launched_sharding()
    monkeypatch.setenv("FSDP_RESHARD_AFTER_FORWARD", "true")
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "true")
    with pytest.raises(InvalidInputError, match="parameter offload"):
        launched_sharding()
    monkeypatch.setenv("FSDP_OFFLOAD_PARAMS", "false")
    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "true")
    with pytest.raises(InvalidInputError, match="pass --gradient-checkpointing"):
        launched_sharding()
    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "false")
    monkeypatch.setenv("FSDP_VERSION", "3")
    with pytest.raises(InvalidInputError, match="FSDP version '3'"):
        launched_sharding()


def test_deepspeed_is_refused_in_one_line_naming_fsdp(tmp_path, monkeypatch):
    from trackdiffusion.data.errors import InvalidInputError
    from trackdiffusion.training.train import TrainConfig, train

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(InvalidInputError, match="asks for DeepSpeed, which trackdiffusion train does not support") \
            as err:
        train(TrainConfig(**settings(SVD, tmp_path / "ds", steps=1)))
    assert "\n" not in str(err.value) and "--use_fsdp" in str(err.value)


def test_one_process_asked_for_fsdp_trains_alone(tmp_path, monkeypatch):
    """FSDP over one process is that process: the plain run, exactly."""
    from trackdiffusion.training.train import TrainConfig, train

    plain = train(TrainConfig(**settings(SVD, tmp_path / "plain", batch=2, steps=2)))
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("WORLD_SIZE", "1")
    alone = train(TrainConfig(**settings(SVD, tmp_path / "alone", batch=2, steps=2)))
    assert [r["loss"] for r in plain.losses] == [r["loss"] for r in alone.losses]


# ----------------------------------------------------------------------------------------------- two processes


def test_fsdp_trains_as_one_process_and_resumes_across_fsdp_and_world_size(tmp_path):
    """Two processes with FSDP against one, same global batch and seed: (a) the same loss curve, tensors and
    optimizer state (TrackDiffusion; TrackGo with accumulation; svd-base, the whole UNet sharded block by block);
    (b) each process holds half of the trained tensors and moments, and both gather the same whole tensors, the
    checkpoint's; (c) a one-process checkpoint resumes with FSDP, and an FSDP checkpoint resumes in one process, both
    continuing the one-process curve; (d) the exported adapter is the one-process run's, in the same format."""
    accelerate_or_skip()
    from safetensors.torch import load_file

    from trackdiffusion.training import checkpoints as ckpt
    from trackdiffusion.training.train import TrainConfig, train

    root = _tiny_vae_base(tmp_path / "svd")
    svd = settings(SVD, "", batch=4, steps=4, save_every=2)
    go = settings("trackgo", "", batch=4, steps=3, save_every=3)
    base = {**settings(SVD, "", batch=2, steps=2, save_every=1), "model": "svd-base", "tiny": None,
            "base": str(root / "unet"), "vae": str(root / "vae"), "size": (32, 32)}
    train(TrainConfig(**{**svd, "out": str(tmp_path / "svd-1")}))
    train(TrainConfig(**{**go, "out": str(tmp_path / "go-1")}))
    train(TrainConfig(**{**base, "out": str(tmp_path / "base-1")}))

    def stop_after_step_2(done, values):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**{**svd, "out": str(tmp_path / "1-then-fsdp")}), callback=stop_after_step_2)

    launch_fsdp_jobs(tmp_path, [{**svd, "out": str(tmp_path / "svd-fsdp")},
                                         {**go, "out": str(tmp_path / "go-fsdp"), "gradient_accumulation": 2},
                                         {**base, "out": str(tmp_path / "base-fsdp")},
                                         {**svd, "out": str(tmp_path / "1-then-fsdp"), "resume": True}])
    for one, two in (("svd-1", "svd-fsdp"), ("go-1", "go-fsdp"), ("svd-1", "1-then-fsdp")):
        assert_same_curve(tmp_path / one, tmp_path / two)
    assert_same_curve(tmp_path / "base-1", tmp_path / "base-fsdp", step=1)
    for run in ("svd-fsdp", "go-fsdp", "base-fsdp"):
        assert_sharded(tmp_path / run, ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path / run)[-1][1]))
    shared = json.loads((tmp_path / "go-fsdp" / "run.json").read_text())["shared"]
    assert shared == {"processes": 2, "gradient_accumulation": 2, "micro_batch": 1,
                      "sharded": "FSDP1 FULL_SHARD, run as FSDP2"}

    # (d) the adapter files: same tensors, names and metadata as the one-process run's
    for one, two, name in (("svd-1", "svd-fsdp", "trackdiffusion_svd_stage1.safetensors"),
                           ("go-1", "go-fsdp", "trackgo_adapter.safetensors")):
        from safetensors import safe_open

        a, b = load_file(tmp_path / one / name), load_file(tmp_path / two / name)
        assert a.keys() == b.keys()
        assert max(float((a[k] - b[k]).abs().max()) for k in a) < WEIGHT_ATOL
        with safe_open(tmp_path / one / name, "pt") as fa, safe_open(tmp_path / two / name, "pt") as fb:
            assert fa.metadata() == fb.metadata()
    # svd-base: the same diffusers folder, holding the gathered tensors (compared with one process above, at step 1)
    a = load_file(tmp_path / "base-1" / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "base-fsdp" / "unet" / "diffusion_pytorch_model.safetensors")
    gathered = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "base-fsdp", 2))["trainable"]
    assert a.keys() == b.keys() == gathered.keys() and all(torch.equal(b[k], gathered[k]) for k in b)
    assert (tmp_path / "base-1" / "unet" / "config.json").read_text() == \
        (tmp_path / "base-fsdp" / "unet" / "config.json").read_text()

    # (c) the FSDP run's step-2 checkpoint, resumed in one process, continues the one-process curve
    fsdp_then_1 = tmp_path / "fsdp-then-1"
    shutil.copytree(tmp_path / "svd-fsdp", fsdp_then_1)
    ckpt.checkpoint_path(fsdp_then_1, 4).unlink()
    train(TrainConfig(**{**svd, "out": str(fsdp_then_1), "resume": True}))
    assert_same_curve(tmp_path / "svd-1", fsdp_then_1)
    print(f"largest differences, 2 FSDP processes vs 1: loss {MEASURED['loss']:.2e} (relative), "
          f"tensors {MEASURED['weights']:.2e}")


# ----------------------------------------------------------------------------------------------- the launched script


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a sharded tensor (a DTensor); a tensor kept whole is all local."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _run_jobs(spec: str) -> None:
    """Train each job of ``spec`` (a JSON list of TrainConfig settings) in this process; beside each run, what this
    process held at its last checkpoint (``process-<rank>.pt``): the whole trained tensors it gathers, its shards of
    them, and the sizes of its shards of the optimizer's moments."""
    from trackdiffusion.training import trainer as trainer_module
    from trackdiffusion.training.train import TrainConfig, train

    save = trainer_module.Trainer.save

    def save_and_keep_this_process_tensors(self, out, step):
        path = save(self, out, step)
        held = {"gathered": self.trainable_state(everywhere=True),
                "shards": {name: _local(p).detach().clone() for name, p in self.named_parameters},
                "moments": {f"{i}.{k}": _local(v).numel()
                            for i, (p, state) in enumerate(self.optimizer.state.items())
                            for k, v in state.items() if k in ("exp_avg", "exp_avg_sq")}}
        torch.save(held, Path(out) / f"process-{self.processes.index}.pt")
        return path

    trainer_module.Trainer.save = save_and_keep_this_process_tensors
    for job in json.loads(Path(spec).read_text()):
        if "size" in job:
            job["size"] = tuple(job["size"])
        train(TrainConfig(**job))


if __name__ == "__main__":
    _run_jobs(sys.argv[1])
