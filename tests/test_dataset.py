"""Tracker training data export: MOT sequence + YouTube-VIS json, atomic and never overwriting."""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trackdiffusion.__main__ import main
from trackdiffusion.data.dataset import claim_next_sequence_name, next_free_name, write_tracking_sequence
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


def test_a_claimed_name_is_never_handed_out_again(tmp_path):
    """Looking a name up is not taking it: two writers that both looked would both get synth_00001. A claim (the
    exclusive mkdir) takes it; the sequence later replaces the empty claimed folder, a failed write gives it up."""
    assert next_free_name(tmp_path, "synth") == next_free_name(tmp_path, "synth") == "synth_00001"
    first, second = claim_next_sequence_name(tmp_path, "synth"), claim_next_sequence_name(tmp_path, "synth")
    assert (first, second) == ("synth_00001", "synth_00002")
    assert list((tmp_path / first).iterdir()) == []  # claimed, nothing written yet: no seqinfo.ini, no sequence
    seq = write_tracking_sequence(frames(3, 36, 64), load(STREET), tmp_path, first, claimed=True)
    assert (seq / "seqinfo.ini").is_file() and sorted(p.name for p in tmp_path.iterdir()) == [first, second]
    with pytest.raises(InvalidInputError, match="not an empty claimed folder"):
        write_tracking_sequence(frames(3, 36, 64), load(STREET), tmp_path, first, claimed=True)
    with pytest.raises(InvalidInputError, match="image_format"):
        write_tracking_sequence(frames(3, 36, 64), load(STREET), tmp_path, second, image_format="gif", claimed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first]  # the failed write gave its claim up


WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from trackdiffusion.data.dataset import claim_next_sequence_name, write_tracking_sequence
from trackdiffusion.data.tracklets import load
root, go, street, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
tracklets = load(street)
video = np.zeros((2, 36, 64, 3), np.uint8)
while not go.exists():
    time.sleep(0.005)
for _ in range(count):
    name = claim_next_sequence_name(root, "synth")
    write_tracking_sequence(video, tracklets, root, name, claimed=True)
    print(name)
"""


def test_concurrent_writers_into_one_dataset_root_never_collide(tmp_path):
    """Three processes (three shards, or servers) fill one dataset root at the same moment: every sequence gets its
    own name and is complete."""
    root, go = tmp_path / "dataset", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(go), str(STREET), "6"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(0.5)
    go.touch()  # start together: the first names are contended
    outputs = [w.communicate(timeout=120) for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outputs]
    names = [n for out, _ in outputs for n in out.split()]
    assert len(names) == len(set(names)) == 18
    assert sorted(p.name for p in root.iterdir()) == sorted(names)  # no temporary folder, no stray claim
    for name in names:
        ini = configparser.ConfigParser()
        ini.read(root / name / "seqinfo.ini")
        assert ini["Sequence"]["name"] == name and len(list((root / name / "img1").iterdir())) == 2
