"""TrackGo: masks + arrows -> point trajectories."""

from __future__ import annotations

from comfy_api.latest import io

from ..data.limits import check_output
from ..data.trajectories import build_point_trajectories
from .convert import numpy_to_image
from .types import CATEGORY, PointTrajectories, Tracks


class PointTrajectoryBuilder(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PointTrajectoryBuilder",
            display_name="Point Trajectory Builder (TrackGo)",
            category=CATEGORY,
            description="TrackGo: K k-means points per mask (16..64 by area), moved along that mask's arrow split "
            "over the frames. Outputs the trajectories, core TRACKS and the conditioning video P.",
            inputs=[
                io.Mask.Input("masks", tooltip="One mask per moving part, [M, H, W]; a whole-frame mask moves the "
                              "camera."),
                io.String.Input("arrows", multiline=True, default="[]",
                                tooltip="One polyline per mask, in pixels: [[[x, y], [x, y], ...], ...] or KJNodes "
                                "[[{\"x\":..,\"y\":..}, ...], ...]."),
                io.Int.Input("num_frames", default=14, min=1, max=1024),
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
    def execute(cls, masks, arrows, num_frames, seed, point_size) -> io.NodeOutput:
        check_output("trajectory video", (num_frames, *masks.shape[-2:], 3), 4, "Point Trajectory Builder")
        trajectories = build_point_trajectories(masks, arrows, num_frames, seed=seed)
        video = numpy_to_image(trajectories.render(point_size=point_size))
        return io.NodeOutput(trajectories, trajectories.to_tracks(), video)
