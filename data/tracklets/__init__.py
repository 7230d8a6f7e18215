"""Tracklets: boxes per object per frame, as keyframes, with importers/exporters and slot expansion.

>>> t = load("example_workflows/input/tracklets/two_objects.json")          # any supported format, guessed
>>> slots = t.to_slots(num_frames=14, width=1024, height=576)  # boxes [14, 20, 4], masks [14, 20]
"""

from .interpolation import INTERPOLATIONS, interpolate_boxes
from .io import EXPORT_FORMATS, FORMATS, atomic_write_text, dumps, guess_format, load, save
from .model import (
    FORMAT_NAME,
    FORMAT_VERSION,
    PALETTE,
    DenseTracklets,
    Keyframe,
    TrackletObject,
    Tracklets,
    color_to_rgb,
    default_color,
    parse_tracklets_dict,
)
from .slots import Slots, tracklets_to_slots

__all__ = [
    "EXPORT_FORMATS", "FORMATS", "FORMAT_NAME", "FORMAT_VERSION", "INTERPOLATIONS", "PALETTE", "DenseTracklets",
    "Keyframe", "Slots", "TrackletObject", "Tracklets", "atomic_write_text", "color_to_rgb", "default_color", "dumps",
    "guess_format", "interpolate_boxes", "load", "parse_tracklets_dict", "save", "tracklets_to_slots",
]
