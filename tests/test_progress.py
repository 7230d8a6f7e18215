"""Progress of the long-running work: the core functions call ``progress(done, total)`` with ``done`` rising from 0 to
``total``; the command line draws it on stderr (tqdm, or the plain line without it), never on stdout, and not at
all with --no-progress."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trackdiffusion.__main__ import main
from trackdiffusion.data.dataset import write_tracking_sequence
from trackdiffusion.data.dataset_merge import merge_datasets
from trackdiffusion.data.progress import Progress
from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[1]
STREET = REPO / "example_workflows" / "input" / "tracklets" / "street.json"


class Calls(list):
    """A progress callback that records its calls."""

    def __call__(self, done, total):
        self.append((done, total))


def assert_counts_up(calls: list, total: int) -> None:
    """0, 1, ..., total, always of ``total``."""
    assert calls == [(i, total) for i in range(total + 1)], calls


def frames(n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 18, 32, 3), dtype=np.uint8)


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` raises ImportError


# ---- the display ---------------------------------------------------------------------------------------------------


def test_plain_line_draws_nothing_before_the_first_update_and_nothing_when_disabled(no_tqdm):
    stream = io.StringIO()
    progress = Progress(enabled=True, stream=stream, desc="convert", unit="tensor")
    assert stream.getvalue() == ""  # a command that fails before its work prints only its error
    for done in range(101):
        progress(done, 100)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("convert: 0/100 tensor") and lines[-1].startswith("convert: 100/100 tensor")
    assert 50 <= len(lines) <= 52 and "eta 0:00:00" in lines[-1]  # every ~2% in a log, and the end
    quiet = io.StringIO()
    off = Progress(enabled=False, stream=quiet, desc="convert")
    off(0, 3), off(3, 3), off.close()
    assert quiet.getvalue() == ""


def test_tqdm_bar_follows_absolute_positions_and_a_changing_total():
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    with Progress(stream=stream, desc="eval", unit="clip") as progress:
        progress(0, 2)
        progress(2, 2)
        progress(3, 5)
        assert progress.bar.n == 3 and progress.bar.total == 5
    assert re.search(r"eval: .*3/5", stream.getvalue())


def test_train_keeps_its_line_through_the_compatible_import(no_tqdm):
    from trackdiffusion.training.progress import Progress as TrainProgress
    from trackdiffusion.training.train import Progress as FromTrain

    assert FromTrain is TrainProgress and issubclass(TrainProgress, Progress)
    stream = io.StringIO()
    progress = TrainProgress(total=2, start=0, enabled=True, stream=stream)
    progress.update(1, {"loss": 0.25, "lr": 1e-4, "seconds": 1.0})
    progress.update(2, {"loss": 0.125, "lr": 1e-4})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("step 1/2  loss 0.25  lr 1.00e-04  ") and lines[1].startswith("step 2/2  loss 0.125")


# ---- the core's callbacks ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    """A stand-in of the official svd_stage2 UNet file (test_weights_convert's)."""
    from test_weights_convert import svd_config, svd_tensors, write_ckpt

    return write_ckpt(tmp_path_factory.mktemp("hf") / "svd_stage2" / "unet", svd_tensors(), svd_config())


def test_convert_and_load_count_the_tensors(official, tmp_path):
    from trackdiffusion.models.checkpoints import convert_checkpoint, load_delta

    calls = Calls()
    result = convert_checkpoint(official, tmp_path / "d.safetensors", progress=calls)
    assert_counts_up(calls, result.num_tensors)
    for path in (official, result.path):  # converted while loading, and a converted file
        calls = Calls()
        tensors, _ = load_delta(path, progress=calls)
        assert_counts_up(calls, len(tensors))


def test_dataset_export_counts_the_frames_and_merge_the_sequences(tmp_path):
    calls = Calls()
    write_tracking_sequence(frames(5), load(STREET), tmp_path / "a", "synth_00001", progress=calls)
    assert_counts_up(calls, 5)
    write_tracking_sequence(frames(3, 1), load(STREET), tmp_path / "b", "synth_00001")
    calls = Calls()
    merge_datasets(tmp_path / "merged", [tmp_path / "a", tmp_path / "b"], progress=calls)
    assert_counts_up(calls, 2)


def test_syntrack_clips_and_evaluation_count_the_clips():
    from trackdiffusion.evaluation.metrics.evaluate import evaluate_clips
    from trackdiffusion.evaluation.synth import corrupt, make_split
    from trackdiffusion.evaluation.synth.generator import train_batch

    calls = Calls()
    clips = make_split("val", "ci", 3, progress=calls)
    assert_counts_up(calls, 3)
    calls = Calls()
    train_batch(0, 2, progress=calls)
    assert_counts_up(calls, 2)
    calls = Calls()
    evaluate_clips([corrupt(c, "gt") for c in clips], clips, point_tracker=None, progress=calls)
    assert_counts_up(calls, 3)


def _sgi2v_targets(box_at_end):
    from trackdiffusion.models.guidance.sgi2v import build_alignment_targets, latent_boxes_from_tracklets

    t = load({"version": 1, "width": 128, "height": 64, "num_frames": 4, "objects": [
        {"id": 1, "keyframes": [{"frame": 0, "box": [8, 8, 40, 40]}, {"frame": 3, "box": box_at_end}]}]})
    return build_alignment_targets(latent_boxes_from_tracklets(t, 4, 8, 16))


def test_sgi2v_optimisation_counts_its_iterations():
    from trackdiffusion.models.guidance.sgi2v import optimise_latent

    targets = _sgi2v_targets([60, 20, 92, 52])
    calls = Calls()
    result = optimise_latent(torch.randn(4, 4, 8, 16), lambda z: [torch.tanh(z)], targets, iterations=4,
                             progress=calls)
    assert len(result.losses) == 4
    assert_counts_up(calls, 4)


def test_sgi2v_optimisation_that_ends_early_still_ends_at_its_total(monkeypatch):
    from trackdiffusion.models.guidance.sgi2v import optimize

    monkeypatch.setattr(optimize, "alignment_loss", lambda feats, targets: None)  # no box pairs: nothing to do
    calls = Calls()
    result = optimize.optimise_latent(torch.randn(4, 4, 8, 16), lambda z: [z], _sgi2v_targets([60, 20, 92, 52]),
                                      iterations=3, progress=calls)
    assert result.losses == [] and calls == [(0, 3), (3, 3)]


# ---- the command line ----------------------------------------------------------------------------------------------


def run_cli(capsys, argv: list[str]) -> tuple[str, str]:
    assert main(argv) == 0, capsys.readouterr().err
    cap = capsys.readouterr()
    return cap.out, cap.err


def bar_line(desc: str, total: int) -> re.Pattern:
    """tqdm's ``desc: 100%|...| 3/3`` or the plain ``desc: 3/3 unit``."""
    return re.compile(rf"(^|[\r\n]){re.escape(desc)}: [^\n]*\b{total}/{total}\b")


def check_command(capsys, make_argv, bars: list[tuple[str, int]]):
    """The command twice, with and without --no-progress, each into its own output (``make_argv(tag)``): the bars on
    stderr only with progress, stdout the same (with the output names swapped)."""
    out_on, err_on = run_cli(capsys, make_argv("with_bar"))
    out_off, err_off = run_cli(capsys, [*make_argv("no_bar"), "--no-progress"])
    for desc, total in bars:
        assert bar_line(desc, total).search(err_on), err_on
        assert not bar_line(desc, total).search(err_off), err_off
    assert out_on.replace("with_bar", "TAG") == out_off.replace("no_bar", "TAG")
    assert "%|" not in out_on and "/s]" not in out_on and out_on.strip()
    return out_on, err_off


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_weights_convert(official, tmp_path, capsys, monkeypatch, tqdm_installed):
    if tqdm_installed:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)
    from trackdiffusion.models.checkpoints import convert_checkpoint

    n = convert_checkpoint(official, tmp_path / "reference.safetensors").num_tensors
    out, err_off = check_command(capsys, lambda tag: ["weights", "convert", str(official),
                                                      str(tmp_path / f"{tag}.safetensors")], [("convert", n)])
    assert out.startswith(f"wrote {tmp_path / 'with_bar.safetensors'} (svd_delta, {n} tensors")
    assert err_off == ""
    # bad input: the one error line, no bar
    assert main(["weights", "convert", str(official), str(tmp_path / "with_bar.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_dataset_commands(tmp_path, capsys):
    source = tmp_path / "frames"
    source.mkdir()
    import cv2

    for i, frame in enumerate(frames(6)):
        cv2.imwrite(str(source / f"{i:03d}.png"), frame)
    check_command(capsys, lambda tag: ["dataset", str(source), str(STREET), str(tmp_path / tag), "--name", "clip"],
                  [("dataset", 6)])
    check_command(capsys, lambda tag: ["dataset", "merge", str(tmp_path / f"merged_{tag}"),
                                       str(tmp_path / "with_bar"), str(tmp_path / "no_bar")], [("merge", 2)])


def test_eval_and_synth_commands(tmp_path, capsys):
    check_command(capsys, lambda tag: ["synth", str(tmp_path / tag), "--split", "val", "--tier", "ci", "--clips", "2"],
                  [("synth", 2)])
    check_command(capsys, lambda tag: ["eval", "syntrack", "--split", "val", "--tier", "ci", "--clips", "2",
                                       "--videos", str(tmp_path / "with_bar"), "--out", str(tmp_path / f"{tag}.json")],
                  [("clips", 2), ("videos", 2), ("eval", 2)])
    check_command(capsys, lambda tag: ["eval", "clips", str(tmp_path / "with_bar" / "manifest.json"), "--out",
                                       str(tmp_path / f"c_{tag}.json")], [("videos", 2), ("eval", 2)])


def test_train_and_run_keep_their_progress_displays():
    from trackdiffusion.__main__ import build_parser

    parser = build_parser()
    train = parser.parse_args(["train", "trackdiffusion-svd", "--data", "syntrack", "--out", "x", "--tiny", "small",
                               "--no-progress"])
    assert train.progress is False
    from trackdiffusion.nodes.runner import cli as runner_cli
    from trackdiffusion.nodes.runner.progress import ProgressLine

    assert runner_cli.ProgressLine is ProgressLine
    stream = io.StringIO()
    line = ProgressLine(stream)
    line.start({"3": {"class_type": "SaveTrackingDataset"}}, 1)
    line("executing", {"node": "3"})
    assert stream.getvalue() == "[1/1] #3 SaveTrackingDataset\n"
