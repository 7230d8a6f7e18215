"""Training data of `trackdiffusion train`: SynTrack, MOT and YouTube-VIS folders, stage-1 outlines, TrackGo inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from trackdiffusion.data.dataset import write_tracking_sequence
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets.formats import write_ytvis
from trackdiffusion.evaluation.synth import make_clip
from trackdiffusion.models.svd.naming import module_names
from trackdiffusion.training.checkpoints import to_comfyui
from trackdiffusion.training.data import (
    MAX_OBJS,
    FolderSource,
    SynTrackSource,
    discover,
    draw_outlines,
    moving_mask,
    open_source,
    trajectory_video,
)

SEEDS = (20000, 20001)  # SynTrack test clips: 64x64, 16 frames, 1-3 objects


def expected_boxes(clip, indices):
    """The clip's boxes at ``indices``, clamped to the canvas and normalised, NaN where absent."""
    w, h = clip.spec.tier.width, clip.spec.tier.height
    return np.clip(clip.boxes[indices] / np.array([w, h, w, h]), 0, 1)


@pytest.fixture(scope="module")
def mot_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mot")
    for seed in SEEDS:
        clip = make_clip(seed, "eval")
        write_tracking_sequence(clip.video, clip.tracklets, root / "train", f"syn-{seed}", image_format="png")
    return root


def test_syntrack_source_is_deterministic_per_seed_and_step():
    src = SynTrackSource(32, 16, 5)
    a, b = src.clips(3, 2, seed=1), src.clips(3, 2, seed=1)
    assert [c.video.shape for c in a] == [(5, 16, 32, 3)] * 2
    assert all(np.array_equal(x.video, y.video) and np.array_equal(x.boxes, y.boxes) for x, y in zip(a, b))
    assert not np.array_equal(src.clips(4, 1, seed=1)[0].video, a[0].video)
    assert not np.array_equal(src.clips(3, 1, seed=2)[0].video, a[0].video)
    clip = a[0]
    assert clip.boxes.shape[1] <= MAX_OBJS and clip.boxes.min() >= 0 and clip.boxes.max() <= 1
    assert clip.present.any() and (clip.boxes[~clip.present] == 0).all()


def test_mot_folder_loads_and_boxes_follow_the_resize(mot_root):
    layout, sequences = discover(mot_root)  # sequences two levels down: root/train/SEQ
    assert layout == "mot" and sorted(s.name for s in sequences) == [f"syn-{s}" for s in SEEDS]
    src = FolderSource(mot_root, 32, 24, 6)
    seq = next(s for s in src.sequences if s.name == f"syn-{SEEDS[0]}")
    indices = np.arange(2, 8)
    clip = src.clip(seq, indices)
    truth = make_clip(SEEDS[0], "eval")
    assert clip.video.shape == (6, 24, 32, 3)
    want = expected_boxes(truth, indices)
    present = ~np.isnan(want).any(-1)
    keep = present.any(0)
    np.testing.assert_array_equal(clip.present, present[:, keep])
    np.testing.assert_allclose(clip.boxes[clip.present], want[:, keep][present[:, keep]], atol=1e-5)
    # the frames are the sequence's, resized (the mean colour survives a resize)
    assert abs(clip.video.mean() - truth.video[indices].mean()) < 2.0
    # random windows: F frames, any stride, always inside the sequence
    batch = src.clips(step=5, batch=3, seed=0)
    assert [c.video.shape for c in batch] == [(6, 24, 32, 3)] * 3
    again = src.clips(step=5, batch=3, seed=0)
    assert all(np.array_equal(x.video, y.video) for x, y in zip(batch, again))


def test_mot_ignore_rows_are_left_out(mot_root, tmp_path):
    seq = tmp_path / "seq"
    shutil.copytree(mot_root / "train" / f"syn-{SEEDS[0]}", seq)
    gt = seq / "gt" / "gt.txt"
    lines = gt.read_text().splitlines()
    first_id = lines[0].split(",")[1]
    gt.write_text("\n".join(",".join(c if i != 6 else "0" for i, c in enumerate(line.split(",")))
                            if line.split(",")[1] == first_id else line for line in lines) + "\n")
    _, sequences = discover(seq)  # the folder is itself a sequence
    assert int(first_id) not in [o.id for o in sequences[0].tracklets.objects]


def test_youtube_vis_folders_load(mot_root, tmp_path):
    # 1) what the exporter writes, without the MOT files: ytvis.json beside img1/
    seq = tmp_path / "one"
    shutil.copytree(mot_root / "train" / f"syn-{SEEDS[0]}", seq)
    shutil.rmtree(seq / "gt")
    (seq / "seqinfo.ini").unlink()
    layout, sequences = discover(seq)
    assert layout == "ytvis" and len(sequences) == 1 and len(sequences[0].frames) == 16
    src = FolderSource(seq, 16, 16, 4)
    clip = src.clip(sequences[0], np.arange(4))
    want = expected_boxes(make_clip(SEEDS[0], "eval"), np.arange(4))
    present = ~np.isnan(want).any(-1)
    np.testing.assert_allclose(clip.boxes[clip.present], want[:, present.any(0)][present[:, present.any(0)]],
                               atol=1e-4)
    # 2) the YouTube-VIS release layout: annotations/*.json with several videos, frames under JPEGImages/<video>/
    root = tmp_path / "ytvis"
    videos, annotations, categories = [], [], []
    for vid, seed in enumerate(SEEDS, start=1):
        clip = make_clip(seed, "eval")
        name = f"video{vid}"
        (root / "JPEGImages" / name).mkdir(parents=True)
        files = []
        for f, frame in enumerate(clip.video):
            import cv2

            cv2.imwrite(str(root / "JPEGImages" / name / f"{f:05d}.png"), frame[..., ::-1])
            files.append(f"{name}/{f:05d}.png")
        doc = write_ytvis(clip.tracklets, video_id=vid, video_name=name, file_names=files)
        videos += doc["videos"]
        annotations += [{**a, "id": 100 * vid + a["id"]} for a in doc["annotations"]]
        categories = doc["categories"]
    (root / "annotations").mkdir()
    (root / "annotations" / "train.json").write_text(json.dumps(
        {"videos": videos, "annotations": annotations, "categories": categories}))
    layout, sequences = discover(root)
    assert layout == "ytvis" and [s.name for s in sequences] == ["video1", "video2"]
    clips = open_source(root, 16, 16, 4).clips(0, 2)
    assert [c.video.shape for c in clips] == [(4, 16, 16, 3)] * 2


def test_unknown_layouts_say_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.json").write_text('{"a": 1}')
    with pytest.raises(InvalidInputError, match="seqinfo.ini.*gt/gt.txt.*YouTube-VIS") as err:
        discover(tmp_path)
    assert "syntrack" in str(err.value)
    with pytest.raises(InvalidInputError, match="does not exist"):
        open_source(tmp_path / "missing", 16, 16, 4)
    # a YouTube-VIS json whose frames are nowhere: the error lists where they were looked for
    video = {"id": 1, "width": 8, "height": 8, "length": 1, "file_names": ["v/0.jpg"]}
    (tmp_path / "train.json").write_text(json.dumps({"videos": [video], "annotations": []}))
    with pytest.raises(InvalidInputError, match="no video with annotations"):
        discover(tmp_path)
    box = {"id": 1, "video_id": 1, "category_id": 1, "bboxes": [[1, 1, 4, 4]]}
    (tmp_path / "train.json").write_text(json.dumps({"videos": [video], "annotations": [box]}))
    with pytest.raises(InvalidInputError, match="not its frames.*JPEGImages"):
        discover(tmp_path)


def test_stage1_outlines_are_slot_coloured_and_spare_frame_0():
    video = np.full((3, 32, 32, 3), 128, np.uint8)
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]]] * 3, np.float32)
    present = np.ones((3, 1), bool)
    out = draw_outlines(video, boxes, present, np.array([[1.0, 0.0, 0.0]]), thickness=1)
    assert np.array_equal(out[0], video[0])
    assert (out[1, 8, 8:24] == [255, 0, 0]).all() and (out[2, 8:24, 23] == [255, 0, 0]).all()
    assert (out[1, 16, 16] == 128).all()  # only the outline


def test_trackgo_inputs_follow_the_moving_objects():
    clip = SynTrackSource(32, 32, 6).clips(0, 1)[0]
    video = trajectory_video(clip, 64, 64)
    assert video.shape == (6, 64, 64, 3) and video.max() > 0
    mask = moving_mask(clip)
    assert mask.shape == (32, 32) and 0 < mask.mean() < 1
    clip.points = None  # dataset clips: box-rigid points
    assert trajectory_video(clip, 64, 64).max() > 0


def test_comfyui_names_match_the_svd_key_map():
    from diffusers import UNetSpatioTemporalConditionModel

    from trackdiffusion.models.svd.naming import ATTENTIONS, RESNETS, svd_delta_key_map

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # the real SVD layout, no memory
    names = module_names(unet)
    assert all(names[s.diffusers] == s.comfyui for s in ATTENTIONS + RESNETS)
    assert all(to_comfyui(k, names) == v for k, v in svd_delta_key_map().items())
