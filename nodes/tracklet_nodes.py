"""Nodes that load, convert and show tracklets."""

from __future__ import annotations

import os

from comfy_api.latest import io

from ..data.tracklets import FORMATS, load
from ..data.tracklets.formats import write_tracks
from ..data.visualize import draw_tracklets
from .convert import image_to_numpy, numpy_to_image
from .types import CATEGORY, Tracklets, Tracks


def _resolve_path(text: str) -> str:
    """A relative file name is looked up in ComfyUI's input folder first; anything else is passed through as text."""
    stripped = text.strip()
    if stripped and "\n" not in stripped and not stripped.startswith(("{", "[")) and not os.path.isabs(stripped):
        import folder_paths

        candidate = os.path.join(folder_paths.get_input_directory(), stripped)
        if os.path.isfile(candidate):
            return candidate
    return stripped


class LoadTracklets(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadTracklets",
            display_name="Load Tracklets",
            category=CATEGORY,
            description="Tracklets (boxes per object per frame) from a file or pasted text: our JSON, MOT gt.txt, "
            "YouTube-VIS JSON, core TRACKS JSON or KJNodes spline coordinates.",
            inputs=[
                io.String.Input("source", multiline=True, default="",
                                tooltip="A file path (relative paths are looked up in ComfyUI's input folder) or the "
                                "file's text."),
                io.Combo.Input("format", options=["auto", *FORMATS], default="auto"),
                io.Int.Input("width", default=0, min=0, max=16384,
                             tooltip="Canvas width for formats without one (MOT, TRACKS, KJNodes); 0 = from file."),
                io.Int.Input("height", default=0, min=0, max=16384, tooltip="Canvas height; 0 = from the file."),
                io.Int.Input("num_frames", default=0, min=0, max=4096,
                             tooltip="Resample the motion to this many frames; 0 = as in the file."),
                io.String.Input("video", default="", tooltip="YouTube-VIS video id or name, if the file has many."),
                io.Float.Input("box_size", default=64.0, min=1.0, max=4096.0,
                               tooltip="Box size in pixels for point formats (TRACKS, KJNodes)."),
                io.Boolean.Input("strict", default=False,
                                 tooltip="Boxes outside the canvas are an error instead of being clamped."),
            ],
            outputs=[
                Tracklets.Output(display_name="tracklets"),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
                io.Int.Output(display_name="num_frames"),
            ],
        )

    @classmethod
    def execute(cls, source, format, width, height, num_frames, video, box_size, strict) -> io.NodeOutput:
        tracklets = load(_resolve_path(source), None if format == "auto" else format, strict=strict,
                         width=width or None, height=height or None, num_frames=num_frames or None,
                         video=video or None, box_size=box_size)
        return io.NodeOutput(tracklets, tracklets.width, tracklets.height, tracklets.num_frames)


class TrackletsToTracks(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackletsToTracks",
            display_name="Tracklets to TRACKS",
            category=CATEGORY,
            description="Box centres and visibility as ComfyUI's core TRACKS (for WanMove and other track nodes).",
            inputs=[
                Tracklets.Input("tracklets"),
                io.Int.Input("num_frames", default=0, min=0, max=4096, tooltip="0 = the tracklets' frame count."),
            ],
            outputs=[Tracks.Output(display_name="tracks")],
        )

    @classmethod
    def execute(cls, tracklets, num_frames) -> io.NodeOutput:
        return io.NodeOutput(write_tracks(tracklets, num_frames or None))


class VisualizeTracklets(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="VisualizeTracklets",
            display_name="Visualize Tracklets",
            category=CATEGORY,
            description="Draw boxes, ids, labels and trails over an image batch (or a grey canvas).",
            inputs=[
                Tracklets.Input("tracklets"),
                io.Image.Input("images", optional=True,
                               tooltip="Frames to draw on; one image is repeated; none = grey canvas."),
                io.Boolean.Input("trail", default=True),
                io.Int.Input("thickness", default=2, min=1, max=16),
                io.Boolean.Input("labels", default=True),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, tracklets, trail, thickness, labels, images=None) -> io.NodeOutput:
        frames = draw_tracklets(tracklets, None if images is None else image_to_numpy(images), trail=trail,
                                thickness=thickness, show_labels=labels)
        return io.NodeOutput(numpy_to_image(frames))
