"""Tracker training data export: MOT sequence + YouTube-VIS json, atomic and never overwriting."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import numpy as np
import pytest

from trackdiffusion.__main__ import main
from trackdiffusion.data.dataset import next_free_name, write_tracking_sequence
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[1]
STREET = REPO / "example_workflows" / "input" / "tracklets" / "street.json"


def frames(n=14, h=288, w=512):
    return np.random.default_rng(0).integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def test_sequence_layout_and_boxes_match_the_pixels(tmp_path):
    t = load(STREET)  # 1024x576 canvas, written for 512x288 frames: boxes are halved
    seq = write_tracking_sequence(frames(), t, tmp_path, "synth-01")
    assert sorted(p.name for p in seq.iterdir()) == ["gt", "img1", "seqinfo.ini", "tracklets.json", "ytvis.json"]
    assert len(list((seq / "img1").iterdir())) == 14
    ini = configparser.ConfigParser()
    ini.read(seq / "seqinfo.ini")
    assert ini["Sequence"]["imWidth"] == "512" and ini["Sequence"]["seqLength"] == "14"
    # read back the MOT file with our importer (it finds seqinfo.ini beside gt/)
    back = load(seq / "gt" / "gt.txt")
    expected = t.dense(clamp=True)
    got = back.dense()
    car = expected.ids.index(1)
    np.testing.assert_allclose(got.boxes[:, back.dense().ids.index(1)], expected.boxes[:, car] / 2, atol=1e-6)
    # the dog leaves: frames where it is hidden have no MOT row, and boxes never leave the image
    assert got.visible.sum() == expected.visible.sum()
    assert (got.boxes[got.visible][:, 2] <= 512).all()
    ytvis = json.loads((seq / "ytvis.json").read_text())
    assert ytvis["videos"][0]["file_names"][0] == "img1/000001.jpg"
    assert {c["name"] for c in ytvis["categories"]} == {"car", "person", "dog"}


def test_never_overwrites_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    t = load(STREET)
    write_tracking_sequence(frames(), t, tmp_path, "seq")
    before = sorted(p.name for p in (tmp_path / "seq" / "img1").iterdir())
    with pytest.raises(InvalidInputError, match="never overwritten"):
        write_tracking_sequence(frames(), t, tmp_path, "seq")
    assert sorted(p.name for p in (tmp_path / "seq" / "img1").iterdir()) == before

    import trackdiffusion.data.dataset as ds

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ds, "write_ytvis", broken)
    with pytest.raises(RuntimeError):
        write_tracking_sequence(frames(), t, tmp_path, "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"]  # no half sequence, no temp folder


def test_names_are_checked_and_numbered(tmp_path):
    with pytest.raises(InvalidInputError, match="plain folder name"):
        write_tracking_sequence(frames(2), load(STREET), tmp_path, "../escape")
    (tmp_path / "synth_00001").mkdir()
    assert next_free_name(tmp_path, "synth") == "synth_00002"


def test_dataset_command_from_a_video(tmp_path, capsys):
    from trackdiffusion.data.visualize import write_frames

    video = write_frames(frames(), tmp_path / "clip.mp4", fps=7)
    assert main(["dataset", str(video), str(STREET), str(tmp_path / "data"), "--name", "clip"]) == 0
    assert (tmp_path / "data" / "clip" / "gt" / "gt.txt").read_text().startswith("1,1,")
    assert main(["dataset", str(video), str(STREET), str(tmp_path / "data"), "--name", "clip"]) == 2
    assert "never overwritten" in capsys.readouterr().err
