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
from trackdiffusion.data.trajectories import (
    PointTrajectories,
    build_point_trajectories,
    pixel_index,
    points_per_mask,
    sample_mask_points,
)
from trackdiffusion.evaluation.synth import make_clip, spec_masks, train_batch
from trackdiffusion.models.svd.naming import module_names
from trackdiffusion.training.checkpoints import to_comfyui
from trackdiffusion.training.data import (
    MAX_OBJS,
    Clip,
    FolderSource,
    SynTrackSource,
    box_mask,
    discover,
    draw_outlines,
    moving_objects,
    object_masks,
    open_source,
    outline_thickness,
    point_seed,
    stack_object_masks,
    training_points,
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


def test_stage1_outlines_are_half_a_latent_cell_wide_whatever_the_frame_size():
    # the official 4 px at 1024x576 for SVD's 8x VAE; a 64-px clip scaled by width would get 1 px, which an 8x VAE
    # erases from the latent (stage 1 would then teach nothing)
    assert outline_thickness(8) == 4 and outline_thickness(2) == 1 and outline_thickness(1) == 1
    video = np.full((2, 64, 64, 3), 128, np.uint8)
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]]] * 2, np.float32)
    out = draw_outlines(video, boxes, np.ones((2, 1), bool), np.array([[0.0, 0.0, 1.0]]),
                        thickness=outline_thickness(8))
    ring = (out[1] != 128).any(-1)
    assert ring[32, 14:18].all() and not ring[32, 19] and not ring[32, 13]  # 4 px centred on the box edge at x=16


def box_clip() -> Clip:
    """A dataset-like clip (boxes only), 32x32, 5 frames, in pixels / 32:

    * object 0: a 20x20 box at (2, 4) on frame 0, its top-left corner moving 1 px right per frame and its side growing
      by 1 px per frame (24 px on frame 4): 400 / 1024 of the frame, K = round(160 * 0.390625) = 63 points;
    * object 1: still (no points, no mask);
    * object 2: absent on frames 0-1, then a 6x6 box at (24, 20) moving 5 px down per frame, out of the frame by 4 px
      on frame 4 (K = 16).
    """
    f = 5
    boxes = np.zeros((f, 3, 4), np.float32)
    present = np.ones((f, 3), bool)
    for t in range(f):
        boxes[t, 0] = np.array([2 + t, 4, 2 + t + 20 + t, 4 + 20 + t]) / 32
        boxes[t, 1] = np.array([26, 2, 30, 6]) / 32
        boxes[t, 2] = np.array([24, 20 + 5 * (t - 2), 30, 26 + 5 * (t - 2)]) / 32 if t >= 2 else 0
    present[:2, 2] = False
    return Clip(np.zeros((f, 32, 32, 3), np.uint8), boxes, present, name="boxes")


def test_trackgo_points_are_the_builders_points_following_the_box():
    clip, seed = box_clip(), 123
    assert moving_objects(clip) == [(0, 0), (2, 2)]  # (slot, first frame); the still object gets nothing
    points = training_points(clip, seed)
    counts = np.bincount(points.component).tolist()
    assert counts == [points_per_mask(400 / 1024), 16] == [63, 16]  # TrackGo's area rule, not 8 per object
    first = points.points[:, points.component == 0]
    mask = np.zeros((32, 32), bool)
    mask[4:24, 2:22] = True  # the pixel centres inside the box on frame 0
    np.testing.assert_array_equal(box_mask(clip.boxes[0, 0] * 32, 32, 32), mask)
    # on its first frame, the object's points are what the builder makes of its mask with the same seed
    built = build_point_trajectories(mask[None], [[[0, 0], [1, 0]]], 5, seed)
    np.testing.assert_array_equal(first[0], built.points[0])
    later = np.zeros((32, 32), bool)
    later[20:26, 24:30] = True
    np.testing.assert_array_equal(points.points[2, points.component == 1],
                                  sample_mask_points(later, seed, 1).astype(np.float32))  # object index 1
    # then they follow the box, scale included: frame 4's box has its corner at (6, 4) and 24/20 the size
    p0 = first[0].astype(np.float64)
    np.testing.assert_allclose(first[4], np.array([6, 4]) - 0.5 + (p0 + 0.5 - [2, 4]) * 1.2, atol=1e-4)
    for t in range(5):
        corner, size = clip.boxes[t, 0, :2] * 32, (clip.boxes[t, 0, 2:] - clip.boxes[t, 0, :2]) * 32
        np.testing.assert_allclose((first[t] + 0.5 - corner) / size, (p0 + 0.5 - [2, 4]) / 20, atol=1e-5)
    np.testing.assert_allclose(points.points[3, points.component == 1] - points.points[2, points.component == 1],
                               np.tile([0.0, 5.0], (16, 1)), atol=1e-4)  # a translation moves every point as much
    # visible: the object present and the point inside the frame
    vis = points.visibility[:, points.component == 1]
    assert not vis[:2].any() and vis[2:4].all()
    np.testing.assert_array_equal(vis[4], points.points[4, points.component == 1, 1] < 32)
    assert 0 < vis[4].sum() < 16 and points.visibility[:, points.component == 0].all()
    # seeded: the same seed the same points, another seed others
    assert np.array_equal(training_points(clip, seed).points, points.points)
    assert not np.array_equal(training_points(clip, seed + 1).points, points.points)
    assert point_seed(0, 3, 1) == point_seed(0, 3, 1) != point_seed(0, 4, 1) != point_seed(0, 3, 0)


def test_trackgo_points_of_syntrack_clips_come_from_the_shape_masks():
    width = height = 32
    found_scale = False
    for step in range(6):
        clip = SynTrackSource(width, height, 6).clips(step, 1, seed=0)[0]
        spec = train_batch(step, 1, (width, height, 6))[0].spec  # the stream of seed 0
        assert clip.masks.shape == (6, clip.boxes.shape[1], height, width)
        np.testing.assert_array_equal(clip.masks, spec_masks(spec)[:, clip.present.any(0)])
        seed = point_seed(0, step, 0)
        points = training_points(clip, seed)
        objects = moving_objects(clip)
        assert objects and np.bincount(points.component).tolist() == [
            min(points_per_mask(clip.masks[t0, slot].mean()), int(clip.masks[t0, slot].sum())) for slot, t0 in objects]
        for j, (slot, t0) in enumerate(objects):
            mine = points.points[:, points.component == j]
            np.testing.assert_array_equal(mine[t0], sample_mask_points(clip.masks[t0, slot], seed, j).astype(np.float32))
            # the shape scales with the box, so the points stay on the object: inside its mask on every frame
            ij = pixel_index(mine).clip(0, width - 1)
            on = clip.masks[np.arange(6)[:, None], slot, ij[..., 1], ij[..., 0]]
            assert on.mean() > 0.9, on.mean(axis=1)
            size = clip.boxes[:, slot, 2] - clip.boxes[:, slot, 0]
            found_scale |= abs(np.log(size.max() / size.min())) > 0.2
        video = trajectory_video(clip, 64, 64, seed)
        assert video.shape == (6, 64, 64, 3) and video.max() > 0
    assert found_scale  # a scaling object was among them


def test_object_masks_follow_each_moving_object():
    clip = box_clip()
    masks = object_masks(clip)
    assert masks.shape == (2, 5, 32, 32) and masks.dtype == np.float32  # the two moving objects, every frame
    for t in range(5):
        want = np.zeros((32, 32), np.float32)
        want[4:24 + t, 2 + t:22 + 2 * t] = 1  # object 0's box on frame t
        np.testing.assert_array_equal(masks[0, t], want)
    assert not masks[1, :2].any()  # object 2 absent
    want = np.zeros((32, 32), np.float32)
    want[30:32, 24:30] = 1  # frame 4: the part inside the frame
    np.testing.assert_array_equal(masks[1, 4], want)
    # down-sampled by area average (the latent grid)
    small = object_masks(clip, (8, 8))
    np.testing.assert_allclose(small, masks.reshape(2, 5, 8, 4, 8, 4).mean(axis=(3, 5)), atol=1e-7)
    # padded over the batch: O = the most objects of a clip (at least 1), zeros elsewhere
    still = Clip(clip.video, clip.boxes[:, 1:2], clip.present[:, 1:2])
    assert object_masks(still).shape == (0, 5, 32, 32) and training_points(still, 0).num_points == 0
    stacked = stack_object_masks([object_masks(still), masks])
    assert stacked.shape == (2, 2, 5, 32, 32) and not stacked[0].any() and np.array_equal(stacked[1], masks)
    assert stack_object_masks([object_masks(still)]).shape == (1, 1, 5, 32, 32)
    assert not trajectory_video(still, 64, 64, 0).any()
    # SynTrack: the shape masks themselves
    syn = SynTrackSource(32, 32, 6).clips(1, 1)[0]
    slots = [slot for slot, _ in moving_objects(syn)]
    np.testing.assert_array_equal(object_masks(syn), syn.masks[:, slots].transpose(1, 0, 2, 3).astype(np.float32))


def test_trajectory_video_renders_the_training_points_at_the_latent_scale():
    clip, seed = box_clip(), 5
    points = training_points(clip, seed)
    video = trajectory_video(clip, 128, 128, seed, point_size=4)
    scaled = PointTrajectories((points.points + 0.5) * 4 - 0.5, points.visibility, points.component, 128, 128)
    np.testing.assert_array_equal(video, scaled.render(point_size=4))
    assert video.shape == (5, 128, 128, 3) and video[0].any()


def test_comfyui_names_match_the_svd_key_map():
    from diffusers import UNetSpatioTemporalConditionModel

    from trackdiffusion.models.svd.naming import ATTENTIONS, RESNETS, svd_delta_key_map

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # the real SVD layout, no memory
    names = module_names(unet)
    assert all(names[s.diffusers] == s.comfyui for s in ATTENTIONS + RESNETS)
    assert all(to_comfyui(k, names) == v for k, v in svd_delta_key_map().items())
