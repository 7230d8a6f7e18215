"""``run --batch --shard K/N`` without ComfyUI: the partition, the refusals of bad --shard values (exit 2, one line,
nothing started), and when an item counts as finished. The runs themselves (two shards into one --out, a re-run) are
in tests/integration/test_runner_sharded_runs.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.nodes.runner import comfy_env
from trackdiffusion.nodes.runner.cli import main
from trackdiffusion.nodes.runner.shards import (
    FINISHED_MARKER,
    Shard,
    finished_files,
    parse_shard,
    publish_item,
    remove_leftovers,
    shard_files,
    write_finished_marker,
)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 10, 13, 25])
def test_shards_are_disjoint_cover_everything_and_are_balanced(count):
    files = [Path(f"tracks/clip_{i:03d}.json") for i in range(23)][::-1]  # any listing order: sorted by name inside
    shards = [shard_files(files, Shard(k, count)) for k in range(1, count + 1)]
    names = [p.name for shard in shards for p in shard]
    assert len(names) == len(set(names)) == len(files)  # disjoint, and together every file
    assert sorted(names) == sorted(p.name for p in files)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    # deterministic: the same shard of the same folder, listed in another order, is the same files
    assert shards[0] == shard_files(sorted(files), Shard(1, count))


def test_shard_k_takes_every_nth_file_from_the_kth_in_name_order():
    files = [Path(n) for n in ("d.json", "a.json", "c.json", "b.json", "e.json")]
    assert [p.name for p in shard_files(files, parse_shard("1/2"))] == ["a.json", "c.json", "e.json"]
    assert [p.name for p in shard_files(files, parse_shard("2/2"))] == ["b.json", "d.json"]
    assert shard_files(files, parse_shard("5/7")) == [Path("e.json")]
    assert shard_files(files, parse_shard("6/7")) == []  # more shards than files: the last ones are empty


@pytest.mark.parametrize(("value", "message"), [
    ("0/4", "K counts from 1, so 0 is no shard"),
    ("5/4", "K must be between 1 and 4"),
    ("-1/4", "K must be between 1 and 4"),
    ("1/0", "the number of shards N must be at least 1"),
    ("2", "is not K/N"),
    ("a/b", "is not K/N"),
    ("1/2/3", "is not K/N"),
    ("", "is not K/N"),
])
def test_bad_shard_values(value, message):
    with pytest.raises(InvalidInputError, match=message) as err:
        parse_shard(value)
    assert "Fix: give --shard K/N with 1 <= K <= N" in str(err.value)
    assert "SLURM_ARRAY_TASK_ID + 1" in str(err.value)  # what to do with a 0-based array index


def test_good_shard_values():
    assert parse_shard("3/4") == Shard(3, 4) and str(parse_shard(" 1 / 1 ")) == "1/1"
    assert parse_shard((2, 5)) == Shard(2, 5)


def _no_comfyui_anywhere(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(comfy_env, "PACKAGE_ROOT", tmp_path / "pkg")


@pytest.mark.parametrize(("shard", "message"), [
    ("0/3", "--shard 0/3: K counts from 1"),
    ("4/3", "--shard 4/3: K must be between 1 and 3"),
    ("x", "--shard 'x' is not K/N"),
])
def test_cli_refuses_bad_shards_with_one_line_and_exit_2(tmp_path, monkeypatch, capsys, shard, message):
    _no_comfyui_anywhere(tmp_path, monkeypatch)  # ComfyUI is never looked for: the value is checked first
    (tmp_path / "wf.json").write_text(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
    (tmp_path / "tracks").mkdir()
    (tmp_path / "tracks" / "a.json").write_text("{}")
    code = main([str(tmp_path / "wf.json"), "--batch", str(tmp_path / "tracks"), "--out", str(tmp_path / "out"),
                 "--shard", shard])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {message}"), captured.err
    assert "Fix:" in err[0] and "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_shard_without_a_batch(tmp_path, monkeypatch, capsys):
    _no_comfyui_anywhere(tmp_path, monkeypatch)
    (tmp_path / "wf.json").write_text(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
    assert main([str(tmp_path / "wf.json"), "--shard", "1/2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --shard splits a --batch folder; there is none.")


def test_cli_rerun_of_a_finished_shard_needs_no_comfyui(tmp_path, monkeypatch, capsys):
    """Everything of the shard finished: the re-run says so and starts nothing (here there is no ComfyUI at all)."""
    _no_comfyui_anywhere(tmp_path, monkeypatch)
    (tmp_path / "wf.json").write_text(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
    tracks, out = tmp_path / "tracks", tmp_path / "out"
    tracks.mkdir()
    for name in ("a", "b", "c"):
        (tracks / f"{name}.json").write_text(f'{{"name": "{name}"}}')
    for name in ("a", "c"):  # shard 1/2
        _finished_item(out, name, tracks / f"{name}.json")
    args = [str(tmp_path / "wf.json"), "--batch", str(tracks), "--out", str(out)]
    assert main([*args, "--shard", "1/2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"a: finished earlier, skipped (1 file in {out.absolute() / 'a'})"
    assert lines[-1] == "shard 1/2: 2 items, 0 run, 2 finished earlier"
    assert main([*args, "--shard", "2/2"]) == 2  # b is not finished: ComfyUI is needed, and there is none
    assert "ComfyUI not found" in capsys.readouterr().err


def _finished_item(out: Path, name: str, source: Path) -> Path:
    """An item as the runner publishes it: staged, marker last, renamed into place."""
    staging = out / f".{name}.partial-0123abcd"
    staging.mkdir(parents=True)
    (staging / "frame.png").write_bytes(b"png")
    (staging / "prompt.json").write_text("{}")
    (staging / "outputs.json").write_text("{}")
    write_finished_marker(staging, source, Shard(1, 2), [staging / "frame.png"])
    publish_item(staging, out / name)
    return out / name


def test_finished_means_a_valid_marker_for_the_same_input(tmp_path):
    source = tmp_path / "a.json"
    source.write_text('{"v": 1}')
    item = _finished_item(tmp_path / "out", "a", source)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]  # no staging folder left
    marker = json.loads((item / FINISHED_MARKER).read_text())
    assert marker["files"] == ["frame.png"] and marker["shard"] == "1/2"
    assert finished_files(item, source) == [item / "frame.png"]
    (item / "prompt.json").unlink()  # the record of what ran is part of a finished item
    assert finished_files(item, source) is None
    (item / "prompt.json").write_text("{}")

    (item / "frame.png").unlink()  # a listed file is gone: not finished
    assert finished_files(item, source) is None
    (item / "frame.png").write_bytes(b"png")
    source.write_text('{"v": 2}')  # the tracklet file changed since: its outputs are stale
    assert finished_files(item, source) is None
    source.write_text('{"v": 1}')
    (item / FINISHED_MARKER).write_text('{"format": "trackdiffusion.batch-it')  # a marker cut short
    assert finished_files(item, source) is None
    (item / FINISHED_MARKER).unlink()  # a folder of files, no marker: half-finished
    assert finished_files(item, source) is None


def test_publishing_replaces_a_half_finished_item_and_leftovers_go(tmp_path):
    out = tmp_path / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "half.png").write_bytes(b"x")  # a half-finished item (no marker)
    (out / ".a.partial-deadbeef").mkdir()  # what a killed run of item a left
    (out / ".a.partial-x.partial-deadbeef").mkdir()  # item "a.partial-x"'s: not a's to remove
    remove_leftovers(out, "a")
    assert sorted(p.name for p in out.iterdir()) == [".a.partial-x.partial-deadbeef", "a"]
    source = tmp_path / "a.json"
    source.write_text("{}")
    item = _finished_item(out, "a", source)
    assert sorted(p.name for p in item.iterdir()) == [FINISHED_MARKER, "frame.png", "outputs.json", "prompt.json"]
    assert sorted(p.name for p in out.iterdir()) == [".a.partial-x.partial-deadbeef", "a"]
