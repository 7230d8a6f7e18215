"""Track From Video and Point Trajectories From Video in real ComfyUI: a SynTrack clip as IMAGE, its first-frame
boxes (or masks), and the followed motion out, resampled to the generation's frames and canvas."""

from __future__ import annotations

import json

import numpy as np
import torch


def _clip():
    from trackdiffusion.evaluation.synth import make_split

    return make_split("test", "eval", 1)[0]


def test_track_from_video_follows_a_clips_boxes(comfy):
    from trackdiffusion.data.tracklets import load

    clip = _clip()
    dense = clip.tracklets.dense(clamp=False)
    start = json.loads(clip.tracklets.to_json())
    for j, obj in enumerate(sorted(start["objects"], key=lambda o: o["id"])):
        f = int(np.flatnonzero(dense.visible[:, j])[0])
        obj["keyframes"] = [{"frame": f, "box": dense.boxes[f, j].tolist()}]
    # the boxes drawn on a 1024x576 editor canvas over the 64x64 clip: scaled to the clip, then to the output
    boxes = load(json.dumps(start)).resample(width=1024, height=576)
    video = torch.from_numpy(clip.video).float() / 255
    tracklets, preview, confidence = comfy.node_class("TrackFromVideo").execute(video, boxes, 32, 0, 0).result
    assert (tracklets.num_frames, tracklets.width, tracklets.height) == (32, 1024, 576)
    assert sorted(o.id for o in tracklets.objects) == dense.ids
    assert tuple(preview.shape) == (16, 64, 64, 3)
    assert np.array(json.loads(confidence)).shape == (16, len(dense.ids))
    got = tracklets.resample(num_frames=16, width=64, height=64).dense(clamp=False)
    both = got.visible & dense.visible
    assert np.median(np.abs(got.boxes - dense.boxes)[both]) < 2.0


def test_point_trajectories_from_video(comfy):
    clip = _clip()
    masks = torch.zeros(1, 64, 64)
    x1, y1, x2, y2 = np.round(clip.boxes[0, 0]).astype(int)
    masks[0, max(y1, 0):y2, max(x1, 0):x2] = 1.0
    trajectories, tracks, video = comfy.node_class("PointTrajectoriesFromVideo").execute(
        torch.from_numpy(clip.video).float() / 255, masks, 0, 4).result
    assert trajectories.points.shape[0] == 16 and trajectories.visibility[0].all()
    assert tuple(video.shape[:3]) == (16, 64, 64)
    assert tracks is not None
