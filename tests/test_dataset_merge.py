"""``trackdiffusion dataset merge``: shard outputs -> one dataset with unique sequence names, track ids and json ids,
readable by our own readers; an existing OUT is refused, and a failed merge leaves nothing."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import numpy as np
import pytest

from trackdiffusion.__main__ import main
from trackdiffusion.data import dataset_merge
from trackdiffusion.data.dataset import write_tracking_sequence
from trackdiffusion.data.dataset_merge import find_sequences, merge_datasets
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[1]
STREET = REPO / "example_workflows" / "input" / "tracklets" / "street.json"
HORSES = {"format": "trackdiffusion.tracklets", "version": 1, "width": 64, "height": 36, "num_frames": 5, "fps": 7,
          "objects": [{"id": 4, "label": "horse", "keyframes": [{"frame": 0, "box": [2, 2, 20, 20]},
                                                                {"frame": 4, "box": [30, 10, 50, 30]}]},
                      {"id": 9, "label": "car", "keyframes": [{"frame": 1, "box": [40, 5, 60, 25]},
                                                              {"frame": 3, "box": [20, 5, 40, 25]}]}]}


def frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 36, 64, 3), dtype=np.uint8)


def shard_outputs(tmp_path: Path) -> tuple[Path, Path]:
    """Two shards' --out folders as the runner leaves them (out/<stem>/trackdiffusion_dataset/synth_00001/, each
    numbering from 1), with the leftovers of writes in progress that a merge must skip."""
    one, two = tmp_path / "shard1", tmp_path / "shard2"
    write_tracking_sequence(frames(6, 0), load(STREET), one / "a" / "trackdiffusion_dataset", "synth_00001")
    write_tracking_sequence(frames(5, 1), load(HORSES), one / "c" / "trackdiffusion_dataset", "synth_00001")
    write_tracking_sequence(frames(4, 2), load(STREET), two / "b" / "trackdiffusion_dataset", "synth_00001",
                            image_format="png")
    write_tracking_sequence(frames(5, 3), load(HORSES), two / "b" / "trackdiffusion_dataset", "synth_00002")
    (two / "b" / "trackdiffusion_dataset" / "synth_00003").mkdir()  # a claimed name, its sequence still being written
    (two / ".d.partial-0123abcd" / "trackdiffusion_dataset" / "synth_00001").mkdir(parents=True)  # a running item
    (two / ".d.partial-0123abcd" / "trackdiffusion_dataset" / "synth_00001" / "seqinfo.ini").write_text("[Sequence]\n")
    return one, two


def test_finds_the_sequences_and_skips_writes_in_progress(tmp_path):
    one, two = shard_outputs(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in find_sequences(one) + find_sequences(two)] == [
        "shard1/a/trackdiffusion_dataset/synth_00001", "shard1/c/trackdiffusion_dataset/synth_00001",
        "shard2/b/trackdiffusion_dataset/synth_00001", "shard2/b/trackdiffusion_dataset/synth_00002"]
    seq = one / "a" / "trackdiffusion_dataset" / "synth_00001"
    assert find_sequences(seq) == [seq]  # a sequence folder is a source too


def test_merge_gives_unique_names_and_ids_and_round_trips_through_our_readers(tmp_path):
    one, two = shard_outputs(tmp_path)
    sources = find_sequences(one) + find_sequences(two)
    result = merge_datasets(tmp_path / "merged", [one, two])
    out = tmp_path / "merged"
    names = [f"synth_{i:05d}" for i in range(1, 5)]
    assert [n for n, _ in result.sequences] == names and [s for _, s in result.sequences] == sources
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "cocovid.json", "merge.json", "seqmap.txt",
                                                            "ytvis.json"])
    assert (out / "seqmap.txt").read_text() == "name\n" + "".join(f"{n}\n" for n in names)
    manifest = json.loads((out / "merge.json").read_text())
    ytvis = json.loads((out / "ytvis.json").read_text())
    cocovid = json.loads((out / "cocovid.json").read_text())

    all_tracks = []
    for name, source in zip(names, sources):
        seq = out / name
        ini = configparser.ConfigParser()
        ini.read(seq / "seqinfo.ini")
        assert ini["Sequence"]["name"] == name
        assert sorted(p.name for p in (seq / "img1").iterdir()) == sorted(p.name for p in (source / "img1").iterdir())
        entry = next(e for e in manifest["sequences"] if e["name"] == name)
        assert entry["source"] == str(source.resolve()) and entry["source_name"] == source.name
        id_map = {int(old): new for old, new in entry["track_ids"].items()}

        before = load(source / "gt" / "gt.txt")  # MOT, canvas from seqinfo.ini
        for after in (load(seq / "gt" / "gt.txt"), load(seq / "ytvis.json"), load(out / "ytvis.json", video=name),
                      load(out / "cocovid.json", video=name)):
            dense_before, dense_after = before.dense(), after.dense()
            assert dense_after.ids == [id_map[i] for i in dense_before.ids], name
            np.testing.assert_allclose(dense_after.boxes, dense_before.boxes, atol=1e-6)
            assert (dense_after.visible == dense_before.visible).all()
        labels_before = load(source / "ytvis.json").dense()
        assert load(out / "ytvis.json", video=name).dense().labels == labels_before.labels  # categories by name
        tracklets_before, tracklets_after = load(source / "tracklets.json"), load(seq / "tracklets.json")
        assert sorted(o.id for o in tracklets_after.objects) == sorted(id_map[o.id] for o in tracklets_before.objects)
        # gt.txt: only the id column changes
        rows_before = [line.split(",") for line in (source / "gt" / "gt.txt").read_text().splitlines()]
        rows_after = [line.split(",") for line in (seq / "gt" / "gt.txt").read_text().splitlines()]
        assert [r[:1] + r[2:] for r in rows_after] == [r[:1] + r[2:] for r in rows_before]
        all_tracks += sorted(id_map.values())

    assert all_tracks == list(range(1, len(all_tracks) + 1)) and result.tracks == len(all_tracks)  # unique, 1..T
    assert [v["id"] for v in ytvis["videos"]] == [1, 2, 3, 4] and [v["name"] for v in ytvis["videos"]] == names
    assert sorted(a["id"] for a in ytvis["annotations"]) == all_tracks
    assert ytvis["videos"][2]["file_names"][0] == "synth_00003/img1/000001.png"
    assert all((out / f).is_file() for v in ytvis["videos"] for f in v["file_names"])
    for key in ("videos", "images", "annotations"):
        ids = [item["id"] for item in cocovid[key]]
        assert len(ids) == len(set(ids)), key
    assert {a["instance_id"] for a in cocovid["annotations"]} == set(all_tracks)
    assert [c["name"] for c in ytvis["categories"]] == ["car", "person", "dog", "horse"]
    assert all(json.loads((out / n / "ytvis.json").read_text())["categories"] == ytvis["categories"] for n in names)


def test_merge_refuses_an_existing_out_and_replaces_it_only_with_force(tmp_path):
    one, two = shard_outputs(tmp_path)
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="already exists.*--force"):
        merge_datasets(out, [one])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    merge_datasets(out, [two], force=True)
    assert sorted(p.name for p in out.iterdir())[:2] == ["cocovid.json", "merge.json"]
    assert not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "shard1", "shard2"]  # nothing hidden left
    empty = tmp_path / "empty"
    empty.mkdir()
    merge_datasets(empty, [one])  # an empty folder is no dataset to lose
    for out_inside in (one / "merged", one):  # OUT inside a source, or a source itself: --force would destroy it
        with pytest.raises(InvalidInputError, match="overlap"):
            merge_datasets(out_inside, [one], force=True)
    with pytest.raises(InvalidInputError, match="overlap"):  # a source inside OUT
        merge_datasets(tmp_path, [one], force=True)
    with pytest.raises(InvalidInputError, match="found twice"):
        merge_datasets(tmp_path / "twice", [one, one / "a"])


def test_a_failed_merge_leaves_nothing_and_keeps_the_old_out(tmp_path, monkeypatch):
    one, two = shard_outputs(tmp_path)

    def disk_full(ytvis):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset_merge, "ytvis_to_cocovid", disk_full)
    with pytest.raises(OSError):
        merge_datasets(tmp_path / "merged", [one, two])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard1", "shard2"]
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "old.txt").write_text("old")
    with pytest.raises(OSError):
        merge_datasets(tmp_path / "merged", [one, two], force=True)
    assert [p.name for p in (tmp_path / "merged").iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "shard1", "shard2"]


def test_incomplete_or_missing_sources_are_refused(tmp_path):
    one, _ = shard_outputs(tmp_path)
    with pytest.raises(InvalidInputError, match="nothing: is not a folder"):
        merge_datasets(tmp_path / "m", [one, tmp_path / "nothing"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InvalidInputError, match="holds no MOT sequence"):
        merge_datasets(tmp_path / "m", [one, tmp_path / "nothing"])
    (one / "a" / "trackdiffusion_dataset" / "synth_00001" / "gt" / "gt.txt").unlink()
    with pytest.raises(InvalidInputError, match="incomplete sequence.*no gt/gt.txt"):
        merge_datasets(tmp_path / "m", [one])
    assert not (tmp_path / "m").exists()


def test_merge_command(tmp_path, capsys):
    one, two = shard_outputs(tmp_path)
    out = tmp_path / "merged"
    assert main(["dataset", "merge", str(out), str(one), str(two), "--prefix", "gen", "--link"]) == 0
    assert capsys.readouterr().out.strip() == (f"wrote {out} (4 sequences, 10 tracks; ytvis.json, cocovid.json, "
                                               "seqmap.txt, merge.json)")
    frame = out / "gen_00001" / "img1" / "000001.jpg"
    assert frame.samefile(one / "a" / "trackdiffusion_dataset" / "synth_00001" / "img1" / "000001.jpg")  # linked
    assert main(["dataset", "merge", str(out), str(one)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == f"error: {out}: already exists. Fix: pass --force to replace it, or give " \
                                       "another path."
    assert main(["dataset", "merge", str(out), str(one), "--force"]) == 0
    assert len(json.loads((out / "merge.json").read_text())["sequences"]) == 2
