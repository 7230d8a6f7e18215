"""Values computed by the Python side that the JS mirrors must reproduce (tests/js/*.test.js read the JSON).

Run ``python tests/js/make_python_reference.py`` after changing interpolation, resampling or the MOT / TRACKS
writers; ``tests/js/test_python_reference.py`` fails while the committed file is stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trackdiffusion.data.tracklets import load
from trackdiffusion.data.tracklets.formats import write_mot, write_tracks
from trackdiffusion.data.trajectories import arc_length_offsets, points_per_mask

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "python_reference.json"

DOC = {
    "format": "trackdiffusion.tracklets", "version": 1, "width": 640, "height": 360, "num_frames": 12, "fps": 8,
    "objects": [
        {"id": 3, "label": "car", "color": "#e6194b", "interpolation": "linear", "keyframes": [
            {"frame": 0, "box": [10, 20, 110, 80], "visible": True},
            {"frame": 5, "box": [200, 40, 330, 120], "visible": True},
            {"frame": 9, "box": [600, 200, 700, 300], "visible": False}]},
        {"id": 1, "label": "pedestrian", "color": "#3cb44b", "interpolation": "catmull-rom", "keyframes": [
            {"frame": 1, "box": [50, 50, 90, 150], "visible": True},
            {"frame": 4, "box": [150, 60, 200, 170], "visible": True},
            {"frame": 6, "box": [180, 100, 220, 180], "visible": True},
            {"frame": 11, "box": [400, 90, 450, 200], "visible": True}]},
        {"id": 7, "label": "", "color": "#ffe119", "interpolation": "ease-in-out", "keyframes": [
            {"frame": 2, "box": [-30, 10, 40, 60], "visible": True},
            {"frame": 10, "box": [300, 250, 380, 340], "visible": True}]},
        {"id": 4, "label": "bicycle", "color": "#4363d8", "interpolation": "hold", "keyframes": [
            {"frame": 0, "box": [5, 5, 25, 25], "visible": True},
            {"frame": 3, "box": [30, 30, 60, 60], "visible": False},
            {"frame": 7, "box": [70, 70, 90, 95], "visible": True}]},
    ],
}
TIMES = [0, 0.5, 1, 2.25, 3, 4, 4.75, 5, 6, 7.5, 9, 10.2, 11]


def build() -> dict:
    tracklets = load(json.dumps(DOC), "json")
    evaluated = {}
    for obj in tracklets.objects:
        boxes, vis = obj.evaluate(np.array(TIMES, dtype=np.float64))
        evaluated[str(obj.id)] = {"boxes": boxes.tolist(), "visible": vis.tolist()}
    tracks = write_tracks(tracklets)
    return {
        "doc": DOC,
        "times": TIMES,
        "evaluated": evaluated,
        "to_dict": tracklets.to_dict(),
        "resampled_up": tracklets.resample(23, 1280, 720).to_dict(),
        "resampled_down": tracklets.resample(4).to_dict(),
        "mot": write_mot(tracklets),
        "tracks": {"track_path": tracks["track_path"].tolist(), "track_visibility": tracks["track_visibility"].tolist()},
        "warnings": tracklets.warnings,
        "points_per_mask": {str(p): points_per_mask(p) for p in (0.0, 0.05, 0.1, 0.103125, 0.25, 0.4, 0.41, 1.0)},
        "arc_offsets": arc_length_offsets(np.array([[0, 0], [30, 40], [30, 100]], dtype=np.float64), 6).tolist(),
    }


def main() -> None:
    REFERENCE.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    main()
