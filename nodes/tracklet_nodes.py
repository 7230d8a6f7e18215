"""Nodes that load, convert and show tracklets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from comfy_api.latest import io

from ..data.errors import InvalidInputError
from ..data.limits import check_output
from ..data.tracklets import FORMATS, load
from ..data.tracklets.formats import write_tracks
from ..data.tracklets.io import looks_like_path
from ..data.visualize import draw_tracklets
from .convert import image_to_numpy, numpy_to_image
from .types import CATEGORY, Tracklets, Tracks


def _resolve_source(text: str, trusted: tuple[Path, ...] = ()) -> str | Path:
    """A file name -> the file inside ComfyUI's input folder (a ``Path``); anything else stays text.

    Anyone who can queue a workflow sets this input, so a name never leaves the input folder: absolute paths, ``..``
    and symlinks pointing outside are refused with the same words as a missing file (nothing tells whether a file
    outside exists). A single line that is not JSON and names no file in the folder is parsed as text (a MOT row).
    ``trusted``: folders whose files may also be named by absolute path (:attr:`LoadTracklets.trusted_folders`).
    """
    import folder_paths

    stripped = text.strip()
    if not stripped or "\n" in stripped or "\x00" in stripped or stripped.startswith(("{", "[")):
        return stripped  # text (a NUL byte cannot be in a file name: the OS would refuse the path)
    if trusted and os.path.isabs(stripped):
        candidate = Path(os.path.realpath(stripped))
        if candidate.is_file() and any(candidate.is_relative_to(folder) for folder in trusted):
            return candidate
    root = Path(os.path.realpath(folder_paths.get_input_directory()))
    inside = not os.path.isabs(stripped) and not stripped.startswith("~")
    if inside:
        candidate = Path(os.path.realpath(root / stripped))
        inside = candidate.is_relative_to(root)
        if inside and candidate.is_file():
            return candidate
    if not inside or looks_like_path(stripped):
        raise InvalidInputError("no such file in ComfyUI's input folder.",
                                fix="put the file in the input folder (or a subfolder) and give its name relative "
                                "to it, or paste the file's text.", source=stripped[:80])
    return stripped


#: the file list's first entry: read ``source`` (a pasted text or a file name typed there) instead of a listed file
FROM_SOURCE = "(source text)"
TRACKLET_SUFFIXES = (".json", ".txt", ".csv")
MAX_LISTED = 2000


def input_tracklet_files() -> list[str]:
    """Tracklet-like files in ComfyUI's input folder and its subfolders (two levels), as names relative to it, the
    way core loaders list theirs; hidden files and folders are left out."""
    import folder_paths

    root = Path(folder_paths.get_input_directory())
    found = []
    for depth in ("*", "*/*", "*/*/*"):
        for path in root.glob(depth):
            rel = path.relative_to(root)
            if (path.is_file() and path.suffix.lower() in TRACKLET_SUFFIXES
                    and not any(part.startswith(".") for part in rel.parts)):
                found.append(rel.as_posix())
            if len(found) >= MAX_LISTED:
                return sorted(found)
    return sorted(found)


class LoadTracklets(io.ComfyNode):
    #: folders besides the input folder whose files may be named by absolute path: set only in-process, by the
    #: headless runner for the tracklet folder of its ``--batch`` (a workflow queued on a server cannot set it)
    trusted_folders: ClassVar[tuple[Path, ...]] = ()

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
                                tooltip="A file in ComfyUI's input folder (its name relative to that folder; "
                                "files elsewhere are refused) or the file's text."),
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
                io.Combo.Input("file", options=[FROM_SOURCE, *input_tracklet_files()], default=FROM_SOURCE,
                               optional=True, tooltip="A tracklets file in ComfyUI's input folder (.json, .txt, "
                               ".csv; refresh to list new ones); the first entry reads 'source' instead."),
            ],
            outputs=[
                Tracklets.Output(display_name="tracklets"),
                io.Int.Output(display_name="width"),
                io.Int.Output(display_name="height"),
                io.Int.Output(display_name="num_frames"),
            ],
        )

    @classmethod
    def execute(cls, source, format, width, height, num_frames, video, box_size, strict,
                file=FROM_SOURCE) -> io.NodeOutput:
        chosen = source if not file or file == FROM_SOURCE else file  # a listed name is confined like a typed one
        tracklets = load(_resolve_source(chosen, cls.trusted_folders), None if format == "auto" else format, strict=strict,
                         width=width or None, height=height or None, num_frames=num_frames or None,
                         video=video or None, box_size=box_size, text_is_never_a_path=True)
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
        if images is None:
            check_output("image output", (tracklets.num_frames, tracklets.height, tracklets.width, 3), 4,
                         "Visualize Tracklets")
        frames = draw_tracklets(tracklets, None if images is None else image_to_numpy(images), trail=trail,
                                thickness=thickness, show_labels=labels)
        return io.NodeOutput(numpy_to_image(frames))
