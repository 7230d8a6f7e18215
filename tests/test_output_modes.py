"""Every output follows the umask, as ordinary open() / mkdir() would: videos, frame folders, atomically written
files and dataset sequences (the temporary files they are made from are private, 0600 / 0700)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from trackdiffusion.data.atomic import atomic_write_text
from trackdiffusion.data.dataset import write_tracking_sequence
from trackdiffusion.data.tracklets import load
from trackdiffusion.data.visualize import write_frames

STATE = {"format": "trackdiffusion.tracklets", "version": 1, "width": 32, "height": 32, "num_frames": 4,
         "objects": [{"id": 1, "keyframes": [{"frame": 0, "box": [2, 2, 12, 12]}, {"frame": 3, "box": [10, 10, 20, 20]}]}]}


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_outputs_follow_the_umask(umask, tmp_path):
    import json

    frames = np.zeros((4, 32, 32, 3), np.uint8)
    frames[:, 8:16, 8:16] = 255
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    assert mode(write_frames(frames, tmp_path / "a.gif")) == file_mode
    assert mode(write_frames(frames, tmp_path / "a.mp4")) == file_mode
    assert mode(write_frames(frames, tmp_path / "pngs")) == dir_mode
    assert mode(atomic_write_text(tmp_path / "t.json", "{}")) == file_mode
    seq = write_tracking_sequence(frames, load(json.dumps(STATE)), tmp_path / "ds", "seq")
    assert mode(seq) == dir_mode and mode(seq / "img1") == dir_mode
    assert mode(seq / "gt" / "gt.txt") == file_mode
