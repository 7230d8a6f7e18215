"""The canvas editors' nodes: Tracklet Editor (boxes per object per frame) and Point Trajectory Editor (TrackGo).

The editors themselves are JavaScript (``js/tracklet_editor.js`` registers both; ``js/tracklet_widget.js`` and
``js/trajectory_widget.js`` build on the base in ``js/editor_ui.js``). Their whole state lives in one declared STRING
input per node, which the JS hides and rewrites on every edit; the canvas DOM widget is
never serialised. So a saved workflow runs headless, converts to API format, and a hand-written JSON works too:

- ``TrackletEditor.tracklets_json`` is exactly our tracklet JSON v1 (see ``trackdiffusion.data.tracklets.model``), parsed
  with ``trackdiffusion.data.tracklets.load``: Python is the one source of truth for interpolation, the JS only previews.
- ``PointTrajectoryEditor.trajectory_json`` is ``{"format": "trackdiffusion.trajectory_editor", "version": 1,
  "width", "height", "components": [{"label", "mask": RLE, "arrow": [[x, y], ...]}, ...]}``. A mask is a row-major
  run-length code ``{"size": [H, W], "counts": [zeros, ones, zeros, ...]}`` (first run counts zeros and may be 0);
  an arrow has >= 2 points, and a component without one stays still.

Both nodes send the background frames back to the canvas after a run (JPEGs in ComfyUI's temp folder, ``ui`` key
``td_background``), so the editor can show the upstream IMAGE at any frame while scrubbing.
"""

from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np
import torch
from comfy_api.latest import io

from ..data.editor_state import box_masks, parse_editor_tracklets, parse_trajectory_state
from ..data.limits import check_output, check_state
from ..data.tracklets.formats import write_tracks
from ..data.trajectories import build_point_trajectories
from ..data.visualize import as_frames, draw_tracklets, draw_trajectories
from .convert import image_to_numpy, numpy_to_image
from .types import CATEGORY, PointTrajectories, Tracks
from .types import Tracklets as TrackletsType

PREVIEW_MAX_SIDE = 1024  # background JPEGs for the canvas; the editor's coordinates stay in width x height pixels
PREVIEW_SUBFOLDER = "trackdiffusion_editor"


# ----------------------------------------------------------------------------------------------------- helpers
def _preview_refs(frames: np.ndarray, count: int) -> list[dict]:
    """Write ``count`` editor frames (background frames spread over them) as temp JPEGs; /view references.

    Identical frames (a single still image) are written once; the file name is the content hash, so re-running
    the same background rewrites nothing new.
    """
    import folder_paths

    folder = os.path.join(folder_paths.get_temp_directory(), PREVIEW_SUBFOLDER)
    os.makedirs(folder, exist_ok=True)
    b = frames.shape[0]
    h, w = frames.shape[1:3]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
    refs, written = [], {}
    for f in range(count):
        src = round(f * (b - 1) / (count - 1)) if count > 1 and b > 1 else 0
        if src not in written:
            img = frames[src]
            if scale < 1.0:
                img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                                 interpolation=cv2.INTER_AREA)
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise RuntimeError("OpenCV could not encode a preview JPEG")
            name = f"bg_{hashlib.sha1(jpg.tobytes()).hexdigest()[:20]}.jpg"
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                with open(path, "wb") as fh:
                    fh.write(jpg.tobytes())
            written[src] = {"filename": name, "subfolder": PREVIEW_SUBFOLDER, "type": "temp"}
        refs.append(written[src])
    return refs


# ------------------------------------------------------------------------------------------------------- nodes
class TrackletEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackletEditor",
            display_name="Tracklet Editor",
            category=CATEGORY,
            description="Draw boxes per object over time on a canvas: keyframes, interpolation, appear/disappear, "
            "import/export. Outputs the tracklets, core TRACKS, one mask per object per frame and a preview.",
            is_output_node=True,  # runs (and sends the background to the canvas) even before anything is wired
            inputs=[
                io.String.Input("tracklets_json", multiline=False, default="", socketless=True,
                                tooltip="The editor's state: tracklet JSON v1 (the canvas writes it; hidden when "
                                "the editor is loaded). Empty = no objects."),
                io.Int.Input("width", default=1024, min=8, max=16384, tooltip="Canvas width in pixels."),
                io.Int.Input("height", default=576, min=8, max=16384, tooltip="Canvas height in pixels."),
                io.Int.Input("num_frames", default=14, min=1, max=4096),
                io.Image.Input("background", optional=True,
                               tooltip="Frames to draw over (one image or a video batch); shown in the editor after "
                               "a run."),
            ],
            outputs=[
                TrackletsType.Output(display_name="tracklets"),
                Tracks.Output(display_name="tracks"),
                io.Mask.Output(display_name="masks",
                               tooltip="[objects * frames, H, W]: object n's frame f is at n * num_frames + f "
                               "(objects by id)."),
                io.Image.Output(display_name="preview"),
            ],
        )

    @classmethod
    def execute(cls, tracklets_json, width, height, num_frames, background=None) -> io.NodeOutput:
        check_state(tracklets_json, "editor state", "Tracklet Editor")
        check_output("preview", (num_frames, height, width, 3), 4, "Tracklet Editor")
        tracklets = parse_editor_tracklets(tracklets_json, width, height, num_frames)
        check_output("masks output", (len(tracklets.objects), num_frames, height, width), 4, "Tracklet Editor")
        images = None if background is None else image_to_numpy(background)
        if images is not None and images.shape[0] > 1 and images.shape[0] != num_frames:
            # Draw on the background frame each editor frame shows (the editor maps frames the same way).
            idx = np.round(np.arange(num_frames) * ((images.shape[0] - 1) / max(num_frames - 1, 1))).astype(int)
            images = images[idx]
        preview = draw_tracklets(tracklets, images)
        ui = {"td_info": [{"width": width, "height": height, "num_frames": num_frames,
                           "objects": len(tracklets.objects), "warnings": tracklets.warnings[:20]}]}
        if images is not None:
            ui["td_background"] = _preview_refs(images, num_frames)
        return io.NodeOutput(tracklets, write_tracks(tracklets), torch.from_numpy(box_masks(tracklets)),
                             numpy_to_image(preview), ui=ui)


class PointTrajectoryEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PointTrajectoryEditor",
            display_name="Point Trajectory Editor (TrackGo)",
            category=CATEGORY,
            description="TrackGo on a canvas: brush a mask per moving part on the first frame and draw its arrow. "
            "Same outputs as Point Trajectory Builder, plus the mask batch.",
            is_output_node=True,
            inputs=[
                io.String.Input("trajectory_json", multiline=False, default="", socketless=True,
                                tooltip="The editor's state: masks (run-length) and arrows per component (the canvas "
                                "writes it; hidden when the editor is loaded)."),
                io.Int.Input("width", default=1024, min=8, max=16384),
                io.Int.Input("height", default=576, min=8, max=16384),
                io.Int.Input("num_frames", default=14, min=1, max=1024),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed of the k-means point sampling (fixed: the same mask gives the same points)."),
                io.Int.Input("point_size", default=4, min=1, max=64,
                             tooltip="Square size of each point in the conditioning video (TrackGo uses 4)."),
                io.Image.Input("background", optional=True, tooltip="The first frame to paint on."),
            ],
            outputs=[
                PointTrajectories.Output(display_name="trajectories"),
                Tracks.Output(display_name="tracks"),
                io.Image.Output(display_name="trajectory_video"),
                io.Mask.Output(display_name="masks", tooltip="One mask per component, [M, H, W]."),
                io.Image.Output(display_name="preview",
                                tooltip="The points with their trails over the background (a grey canvas without one), "
                                "to look at; trajectory_video is TrackGo's input, points on black."),
            ],
        )

    @classmethod
    def execute(cls, trajectory_json, width, height, num_frames, seed, point_size, background=None) -> io.NodeOutput:
        check_state(trajectory_json, "editor state", "Point Trajectory Editor")
        check_output("trajectory video", (num_frames, height, width, 3), 4, "Point Trajectory Editor")
        masks, arrows = parse_trajectory_state(trajectory_json, width, height)
        trajectories = build_point_trajectories(masks, [a.tolist() for a in arrows], num_frames, seed=seed)
        video = numpy_to_image(trajectories.render(point_size=point_size))
        first = None
        if background is not None:  # at the canvas size, as the trajectory video
            first = cv2.resize(as_frames(image_to_numpy(background[:1]))[0], (width, height),
                               interpolation=cv2.INTER_AREA)[None]
        preview = numpy_to_image(draw_trajectories(trajectories, first))
        ui = {"td_points": [{"points": np.round(trajectories.points[0].astype(np.float64), 2).tolist(),
                             "component": trajectories.component.tolist()}]}
        if background is not None:
            ui["td_background"] = _preview_refs(as_frames(image_to_numpy(background[:1])), 1)
        return io.NodeOutput(trajectories, trajectories.to_tracks(), video,
                             torch.from_numpy(masks.astype(np.float32)), preview, ui=ui)


EDITOR_NODES: list[type[io.ComfyNode]] = [TrackletEditor, PointTrajectoryEditor]
__all__ = ["EDITOR_NODES", "PointTrajectoryEditor", "TrackletEditor"]
