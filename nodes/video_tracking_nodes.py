"""Motion from a real clip: boxes and point trajectories followed through a reference video (weight-free trackers
of opencv-python; see :mod:`trackdiffusion.data.video_tracking`)."""

from __future__ import annotations

from comfy_api.latest import io

from ..data.limits import check_output
from ..data.video_tracking import track_boxes, track_points
from ..data.visualize import draw_tracklets
from .convert import image_to_numpy, numpy_to_image
from .types import CATEGORY, PointTrajectories, Tracklets, Tracks


class TrackFromVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackFromVideo",
            display_name="Track From Video",
            category=CATEGORY,
            description="Copies the motion of a reference clip: the boxes drawn on its first frame (a Tracklet Editor "
            "with the clip as background) are followed through the clip by a median-flow tracker (Lucas-Kanade, no "
            "model download). A lost object becomes hidden until it is found again; a box you place on a later frame "
            "overrides the tracker there.",
            inputs=[
                io.Image.Input("video", tooltip="The reference clip's frames (e.g. Load Video -> Get Video "
                               "Components)."),
                Tracklets.Input("boxes", tooltip="Each object's box where it starts (any canvas: scaled to the "
                                "clip)."),
                io.Int.Input("num_frames", default=0, min=0, max=4096,
                             tooltip="Resample the motion to this many frames (0 = the clip's)."),
                io.Int.Input("width", default=0, min=0, max=16384, tooltip="Output canvas (0 = the boxes' canvas)."),
                io.Int.Input("height", default=0, min=0, max=16384, tooltip="Output canvas (0 = the boxes' canvas)."),
            ],
            outputs=[
                Tracklets.Output(display_name="tracklets"),
                io.Image.Output(display_name="preview", tooltip="The clip with the followed boxes drawn."),
                io.String.Output(display_name="confidence",
                                 tooltip="JSON: per frame, per object (id order), the share of points that held."),
            ],
        )

    @classmethod
    def execute(cls, video, boxes, num_frames, width, height) -> io.NodeOutput:
        import json

        frames = image_to_numpy(video)
        tracked, confidence = track_boxes(frames, boxes)
        preview = draw_tracklets(tracked, frames, thickness=max(1, frames.shape[2] // 256), show_labels=False)
        out = tracked.resample(num_frames=num_frames or None, width=width or boxes.width,
                               height=height or boxes.height)
        return io.NodeOutput(out, numpy_to_image(preview), json.dumps(confidence.round(3).tolist()))


class PointTrajectoriesFromVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PointTrajectoriesFromVideo",
            display_name="Point Trajectories From Video (TrackGo)",
            category=CATEGORY,
            description="TrackGo's trajectories from a reference clip: K k-means points per first-frame mask, "
            "followed by pyramidal Lucas-Kanade with a forward-backward check; a point that fails it is invisible "
            "from then on.",
            inputs=[
                io.Image.Input("video", tooltip="The reference clip's frames."),
                io.Mask.Input("masks", tooltip="One mask per moving part on the clip's first frame, [M, H, W]."),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1),
                io.Int.Input("point_size", default=4, min=1, max=64,
                             tooltip="Square size of each point in the conditioning video (TrackGo uses 4)."),
            ],
            outputs=[
                PointTrajectories.Output(display_name="trajectories"),
                Tracks.Output(display_name="tracks"),
                io.Image.Output(display_name="trajectory_video"),
            ],
        )

    @classmethod
    def execute(cls, video, masks, seed, point_size) -> io.NodeOutput:
        frames = image_to_numpy(video)
        check_output("trajectory video", (*frames.shape[:3], 3), 4, "Point Trajectories From Video")
        trajectories = track_points(frames, masks, seed=seed)
        return io.NodeOutput(trajectories, trajectories.to_tracks(),
                             numpy_to_image(trajectories.render(point_size=point_size)))
