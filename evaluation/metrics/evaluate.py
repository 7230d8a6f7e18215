"""``evaluate_clips``: every controllability metric of a set of videos against their conditioning tracklets.

The tracker runs on each video; its tracks are scored against the ground-truth tracklets with YouTube-VIS TrackAP /
AP50 / AP75 (category-aware and class-agnostic), and frame-level association gives mIoU, centre error (CTE) with its
miss rate, and identity switches. With ground-truth point trajectories, a point tracker gives ObjMC. Results come
per scenario too, with optional bootstrap CIs over clips, and keep per-clip records so two runs on the same clips can
be compared with :func:`paired_bootstrap` (even after a JSON round trip).

Conventions: ground-truth boxes are the tracklets' boxes clamped to the canvas (amodal: an occluded object keeps its
full box); frame-level metrics count ground-truth boxes with visible fraction >= ``min_visible`` (every present box
when no visible fraction is known).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data.errors import InvalidInputError
from ...data.progress import ProgressCallback, report
from ...data.tracklets import Tracklets, load
from ...data.visualize import as_frames
from .ap import THRESHOLDS, APTable, ClipDetections, st_iou
from .assoc import AssocStats, associate
from .bootstrap import bootstrap_weights, percentile_ci
from .objmc import LKPointTracker, ObjMCStats, objmc_stats, track_points
from .tracks import ColorBlobTracker, PrecomputedTracker, stack_boxes, tracks_from_tracklets

METRICS = ("TrackAP", "AP50", "AP75", "TrackAP_agnostic", "AP50_agnostic", "AP75_agnostic", "mIoU", "CTE_px",
           "CTE_diag", "miss_rate", "IDSW", "ObjMC_px", "ObjMC_diag")


@dataclass
class ClipResult:
    clip: object
    scenario: str
    detections: ClipDetections
    assoc: AssocStats
    objmc: ObjMCStats | None

    def to_dict(self) -> dict:
        return {"clip": self.clip, "scenario": self.scenario, "detections": self.detections.to_dict(),
                "assoc": self.assoc.to_dict(), "objmc": None if self.objmc is None else self.objmc.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ClipResult:
        try:
            return cls(d.get("clip"), str(d.get("scenario", "all")), ClipDetections.from_dict(d["detections"]),
                       AssocStats(**d["assoc"]), None if d.get("objmc") is None else ObjMCStats(**d["objmc"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a per-clip record of evaluate_clips ({exc}).",
                                    fix="pass the result dict of evaluate_clips(..., per_clip=True).",
                                    source="evaluation result") from None


# ------------------------------------------------------------------------------------------------------- inputs
def _videos(videos) -> list[np.ndarray]:
    if isinstance(videos, np.ndarray) and videos.ndim == 5:
        return [as_frames(v) for v in videos]
    if hasattr(videos, "ndim") and getattr(videos, "ndim", 0) == 5:  # a torch tensor batch
        return [as_frames(v) for v in videos]
    return [as_frames(v) for v in videos]


def _gt_entry(item, shape):
    """(tracklets, points, visible_fraction, scenario, clip id) of one ground-truth item."""
    if hasattr(item, "tracklets") and hasattr(item, "video"):  # a SynTrack clip
        return item.tracklets, item.points, item.visible_fraction, item.scenario, item.seed
    if isinstance(item, Tracklets):
        return item, None, None, None, None
    h, w = shape[1:3]
    if isinstance(item, (str, Path, dict, list)):
        return load(item, width=w, height=h, num_frames=None), None, None, None, None
    raise InvalidInputError(f"ground truth must be Tracklets, a SynTrack clip, a file or a dict, got "
                            f"{type(item).__name__}.", source="evaluate_clips")


def _as_tracker(tracker):
    if tracker is None:
        return ColorBlobTracker()
    if callable(tracker):
        return tracker
    if isinstance(tracker, Sequence):
        return PrecomputedTracker(tracker)
    raise InvalidInputError("tracker must be a Tracker (callable), a list of per-clip predictions, or None.",
                            source="evaluate_clips")


def eligible_boxes(gt: np.ndarray, visible_fraction, min_visible: float, *, source: str, clip_id=None) -> np.ndarray:
    """[F, G] bool: the ground-truth boxes ``gt`` [G, F, 4] (NaN where absent) that frame-level metrics count: present,
    and visible by at least ``min_visible`` where the visible fraction [F, G] is known."""
    eligible = ~np.isnan(gt[..., 0]).T
    if visible_fraction is not None:
        vf = np.asarray(visible_fraction, dtype=np.float64)
        if vf.shape != eligible.shape:
            raise InvalidInputError(f"visible_fraction has shape {list(vf.shape)}, expected {list(eligible.shape)} "
                                    "(frames, objects in id order).", source=source, obj=clip_id)
        eligible &= vf >= min_visible
    return eligible


def evaluate_clip(video: np.ndarray, gt_item, tracker, index: int = 0, *, point_tracker=None, points=None,
                  visible_fraction=None, scenario: str | None = None, min_visible: float = 0.3,
                  keep_iou: float = 0.5) -> ClipResult:
    """Score one video (see :func:`evaluate_clips`)."""
    video = as_frames(video)
    n_frames, height, width = video.shape[:3]
    tracklets, g_points, g_vis, g_scenario, clip_id = _gt_entry(gt_item, video.shape)
    points = g_points if points is None else points
    visible_fraction = g_vis if visible_fraction is None else visible_fraction
    scenario = scenario or g_scenario or "all"
    gt_tracks = tracks_from_tracklets(tracklets, n_frames, width, height)
    pred_tracks = tracker(video, index)
    gt = stack_boxes(gt_tracks, n_frames)
    pred = stack_boxes(pred_tracks, n_frames)

    detections = ClipDetections(np.array([t.score for t in pred_tracks], dtype=np.float64),
                                [t.label for t in pred_tracks], [t.label for t in gt_tracks], st_iou(pred, gt))
    eligible = eligible_boxes(gt, visible_fraction, min_visible, source="evaluate_clips", clip_id=clip_id)
    diag = math.hypot(width, height)
    assoc = associate(gt, pred, [t.track_id for t in pred_tracks], eligible, diag, keep_iou=keep_iou)

    objmc = None
    if point_tracker is not None and points is not None:
        if (points.num_frames, points.width, points.height) != (n_frames, width, height):
            raise InvalidInputError(f"point trajectories are {points.width}x{points.height}x{points.num_frames}, the "
                                    f"video {width}x{height}x{n_frames}.", source="evaluate_clips", obj=clip_id)
        pred_pts, gt_pts, vis = track_points(point_tracker, video, points)
        objmc = objmc_stats(pred_pts, gt_pts, vis, diag)
    return ClipResult(clip_id if clip_id is not None else index, scenario, detections, assoc, objmc)


# ------------------------------------------------------------------------------------------------------ summaries
class _Summary:
    """Metrics of any clip weighting [B, n_clips] from per-clip records."""

    def __init__(self, clips: list[ClipResult]) -> None:
        self.clips = clips
        dets = [c.detections for c in clips]
        self.ap = APTable(dets)
        self.ap_agnostic = APTable(dets, class_agnostic=True)
        a = [c.assoc for c in clips]
        self.n_eligible = np.array([s.n_eligible for s in a], np.float64)
        self.n_matched = np.array([s.n_matched for s in a], np.float64)
        self.iou_sum = np.array([s.iou_sum for s in a])
        self.cte_px = np.array([s.cte_sum_px for s in a])
        self.cte_diag = np.array([s.cte_sum_diag for s in a])
        self.idsw = np.array([s.idsw for s in a], np.float64)
        m = [c.objmc or ObjMCStats() for c in clips]
        self.has_objmc = any(c.objmc is not None for c in clips)
        self.n_points = np.array([s.n_points for s in m], np.float64)
        self.objmc_px = np.array([s.sum_px for s in m])
        self.objmc_diag = np.array([s.sum_diag for s in m])

    def __call__(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        w = np.atleast_2d(weights)

        def ratio(num, den):
            d = w @ den
            return np.divide(w @ num, d, out=np.full(d.shape, np.nan), where=d > 0)

        out = dict(self.ap.summary(w))
        out.update({f"{k}_agnostic": v for k, v in self.ap_agnostic.summary(w).items()})
        out["mIoU"] = ratio(self.iou_sum, self.n_eligible)
        out["CTE_px"] = ratio(self.cte_px, self.n_matched)
        out["CTE_diag"] = ratio(self.cte_diag, self.n_matched)
        out["miss_rate"] = 1.0 - ratio(self.n_matched, self.n_eligible)
        out["IDSW"] = w @ self.idsw
        nan = np.full(w.shape[0], np.nan)
        out["ObjMC_px"] = ratio(self.objmc_px, self.n_points) if self.has_objmc else nan
        out["ObjMC_diag"] = ratio(self.objmc_diag, self.n_points) if self.has_objmc else nan
        return out

    def point(self, mask: np.ndarray | None = None) -> dict:
        w = np.ones(len(self.clips)) if mask is None else mask.astype(np.float64)
        values = {k: _num(v[0]) for k, v in self(w).items()}
        values["IDSW"] = None if values["IDSW"] is None else round(values["IDSW"])
        sel = [c for c, keep in zip(self.clips, w) if keep]
        values["n_clips"] = len(sel)
        values["n_gt_tracks"] = sum(len(c.detections.gt_labels) for c in sel)
        values["n_pred_tracks"] = sum(len(c.detections.pred_labels) for c in sel)
        values["n_eligible_boxes"] = sum(c.assoc.n_eligible for c in sel)
        values["n_points"] = sum((c.objmc.n_points if c.objmc else 0) for c in sel)
        return values


def _num(x) -> float | None:
    x = float(x)
    return None if not math.isfinite(x) else x


def _settings(min_visible, keep_iou) -> dict:
    return {"thresholds": [float(t) for t in THRESHOLDS], "recall_points": 101, "max_dets": 100,
            "ap_iou": "box spatio-temporal IoU (YouTube-VIS)", "gt_boxes": "amodal, clamped to the canvas",
            "min_visible": min_visible, "keep_iou": keep_iou,
            "objmc": "flat mean over visible GT points, start frame included"}


def summarize(clips: list[ClipResult], *, bootstrap: int = 0, seed: int = 0, level: float = 0.95) -> dict:
    """Overall and per-scenario metrics of per-clip records, with bootstrap CIs when ``bootstrap`` > 0."""
    if not clips:
        raise InvalidInputError("no clips to summarise.", source="evaluate_clips")
    s = _Summary(clips)
    out = {"metrics": s.point()}
    scenarios = sorted({c.scenario for c in clips})
    if scenarios != ["all"]:
        out["per_scenario"] = {sc: s.point(np.array([c.scenario == sc for c in clips])) for sc in scenarios}
    if bootstrap:
        samples = s(bootstrap_weights(len(clips), bootstrap, seed))
        out["ci"] = {k: percentile_ci(samples[k], out["metrics"][k] if out["metrics"][k] is not None else np.nan,
                                      level, n=bootstrap, seed=seed) for k in METRICS}
        for ci in out["ci"].values():
            for key in ("estimate", "lo", "hi"):
                ci[key] = _num(ci[key])
    return out


def evaluate_clips(videos, gt_tracklets, tracker=None, *, point_tracker="lk", scenarios=None, points=None,
                   visible_fraction=None, min_visible: float = 0.3, keep_iou: float = 0.5, bootstrap: int = 0,
                   seed: int = 0, per_clip: bool = True, reference_videos=None, extractor=None,
                   progress: ProgressCallback | None = None) -> dict:
    """Every controllability metric of ``videos`` against their conditioning ``gt_tracklets``.

    Args:
        videos: a list of [F, H, W, 3] videos (uint8, or float in [0, 1]) or one [N, F, H, W, 3] array.
        gt_tracklets: one ground truth per video: a :class:`~trackdiffusion.evaluation.synth.SynClip` (brings scenario, point
            trajectories and visible fractions), :class:`Tracklets`, or anything ``tracklets.load`` reads. Tracklets
            are resampled to the video's frame count and size.
        tracker: a :class:`~.tracks.Tracker` (default: :class:`~.tracks.ColorBlobTracker`, the SynTrack detector), or a
            list of per-clip predictions (files, Tracklets, YouTube-VIS results, Track lists).
        point_tracker: ``"lk"`` (OpenCV Lucas-Kanade), any ``f(video, start_points, start_frames)``, or None (no
            ObjMC). ObjMC needs point trajectories (SynTrack clips bring theirs, or pass ``points``).
        scenarios, points, visible_fraction: per-clip overrides (lists) of what the ground truth brings.
        bootstrap: number of bootstrap resamples over clips for 95 % CIs (0: none); ``seed`` seeds them.
        per_clip: keep per-clip records in the result (needed by :func:`paired_bootstrap`).
        reference_videos: when given, also the Frechet distance between ``videos`` and these, with ``extractor``
            (default: the weight-free :class:`~.frechet.HandcraftedVideoFeatures`).
        progress: ``progress(done, total)``, the clips scored (see :mod:`trackdiffusion.data.progress`).

    Returns:
        A JSON-ready dict: ``metrics`` (TrackAP, AP50, AP75, their ``_agnostic`` versions, mIoU, CTE_px, CTE_diag,
        miss_rate, IDSW (total), ObjMC_px, ObjMC_diag, counts), ``per_scenario``, ``ci`` (with ``bootstrap``),
        ``per_clip``, the tracker names and the settings. Undefined values are None.
    """
    vids = _videos(videos)
    gts = list(gt_tracklets)
    if len(vids) != len(gts):
        raise InvalidInputError(f"{len(vids)} videos but {len(gts)} ground truths.", source="evaluate_clips")
    if not vids:
        raise InvalidInputError("no videos to evaluate.", source="evaluate_clips")
    for name, extra in (("scenarios", scenarios), ("points", points), ("visible_fraction", visible_fraction)):
        if extra is not None and len(extra) != len(vids):
            raise InvalidInputError(f"{name} has {len(extra)} entries for {len(vids)} videos.",
                                    source="evaluate_clips")
    tracker = _as_tracker(tracker)
    if isinstance(point_tracker, str):
        if point_tracker != "lk":
            raise InvalidInputError(f"unknown point tracker {point_tracker!r}.", fix="use \"lk\", a callable or None.",
                                    source="evaluate_clips")
        point_tracker = LKPointTracker()
    clips = []
    report(progress, 0, len(vids))
    for i, (v, g) in enumerate(zip(vids, gts)):
        clips.append(evaluate_clip(v, g, tracker, i, point_tracker=point_tracker,
                                   points=None if points is None else points[i],
                                   visible_fraction=None if visible_fraction is None else visible_fraction[i],
                                   scenario=None if scenarios is None else scenarios[i], min_visible=min_visible,
                                   keep_iou=keep_iou))
        report(progress, i + 1, len(vids))
    result = {"n_clips": len(clips), "tracker": getattr(tracker, "name", type(tracker).__name__),
              "point_tracker": None if point_tracker is None else getattr(point_tracker, "name",
                                                                         type(point_tracker).__name__),
              "settings": _settings(min_visible, keep_iou)}
    result.update(summarize(clips, bootstrap=bootstrap, seed=seed))
    if reference_videos is not None:
        from .frechet import video_frechet_distance

        result["frechet"] = video_frechet_distance(_videos(reference_videos), vids, extractor)
    if per_clip:
        result["per_clip"] = [c.to_dict() for c in clips]
    return result


def paired_bootstrap(result_a: dict, result_b: dict, metrics: Sequence[str] = METRICS, *, n: int = 1000,
                     seed: int = 0, level: float = 0.95) -> dict:
    """CIs of ``metric(a) - metric(b)`` for two evaluations of the same clips, on shared bootstrap resamples.

    Works for every metric, TrackAP included (recomputed on each resample from the per-clip records). Each entry has
    ``estimate``, ``lo``, ``hi`` and ``p_le_0`` / ``p_ge_0``; claim "a > b" only when ``lo > 0``.
    """
    recs = []
    for name, res in (("a", result_a), ("b", result_b)):
        if not isinstance(res, dict) or not isinstance(res.get("per_clip"), list):
            raise InvalidInputError(f"result {name} has no per-clip records.", fix="evaluate with per_clip=True.",
                                    source="paired_bootstrap")
        recs.append([ClipResult.from_dict(d) for d in res["per_clip"]])
    ra, rb = recs
    if len(ra) != len(rb) or [c.clip for c in ra] != [c.clip for c in rb]:
        raise InvalidInputError("the two results are not on the same clips (in the same order).",
                                source="paired_bootstrap")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InvalidInputError(f"unknown metrics {unknown}.", fix=f"use some of {', '.join(METRICS)}.",
                                source="paired_bootstrap")
    sa, sb = _Summary(ra), _Summary(rb)
    w = bootstrap_weights(len(ra), n, seed)
    pa, pb = sa(np.ones(len(ra))), sb(np.ones(len(rb)))
    ba, bb = sa(w), sb(w)
    out = {}
    for m in metrics:
        diff = ba[m] - bb[m]
        ci = percentile_ci(diff, float(pa[m][0] - pb[m][0]), level, n=n, seed=seed)
        finite = diff[np.isfinite(diff)]
        ci["p_le_0"] = float((finite <= 0).mean()) if len(finite) else None
        ci["p_ge_0"] = float((finite >= 0).mean()) if len(finite) else None
        for key in ("estimate", "lo", "hi"):
            ci[key] = _num(ci[key])
        out[m] = ci
    return out
