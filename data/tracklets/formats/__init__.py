"""Readers and writers of the tracklet formats found in the wild (MOT, YouTube-VIS, COCO-VID, core TRACKS,
KJNodes)."""

from .cocovid import is_cocovid, read_cocovid, write_cocovid
from .kjnodes import parse_kj_points, read_kj
from .mot import MOT_CLASSES, find_seqinfo, read_mot, read_seqinfo, write_mot
from .tracks import read_tracks, write_tracks
from .ytvis import read_ytvis, write_ytvis

__all__ = [
           "MOT_CLASSES",
           "find_seqinfo",
           "is_cocovid",
           "parse_kj_points",
           "read_cocovid",
           "read_kj",
           "read_mot",
           "read_seqinfo",
           "read_tracks",
           "read_ytvis",
           "write_cocovid",
           "write_mot",
           "write_tracks",
           "write_ytvis",
]
