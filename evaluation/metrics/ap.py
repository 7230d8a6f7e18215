"""YouTube-VIS style video AP on box tracks (TrackAP, AP50, AP75), written from the benchmark's definition.

- Spatio-temporal IoU of two tracks: ``sum_t |d_t & g_t| / sum_t |d_t | g_t|``; a frame where only one track is
  present adds its area to the union, frames where neither is present add nothing.
- Matching, per clip and category (all tracks one category when class-agnostic): predictions sorted by score
  (stable), at most ``max_dets``; each takes the unmatched ground truth of highest stIoU if that is >= the threshold
  (true positive), else it is a false positive; unmatched ground truth are misses.
- Accumulation over clips per category and threshold: precision made monotone (running maximum from the right),
  sampled at the 101 recall points 0, 0.01, ..., 1 (0 beyond the highest recall reached); AP is their mean.
- TrackAP = mean over thresholds 0.50:0.05:0.95 and over the categories that have ground truth; AP50 / AP75 the same
  at one threshold.

Accumulation takes per-clip weights, so subsets (per scenario) and bootstrap resamples (clip multiplicities) are the
same computation; a weight-w clip counts as w copies of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100
_CHUNK = 1024


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Area of xyxy boxes [..., 4]; 0 where absent (NaN)."""
    w = np.clip(boxes[..., 2] - boxes[..., 0], 0, None)
    h = np.clip(boxes[..., 3] - boxes[..., 1], 0, None)
    return np.nan_to_num(w * h)


def pairwise_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of boxes a [..., Na, 4] and b [..., Nb, 4] -> [..., Na, Nb]; 0 where either is NaN."""
    a, b = a[..., :, None, :], b[..., None, :, :]
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return np.nan_to_num(np.clip(w, 0, None) * np.clip(h, 0, None))


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame IoU of boxes a [..., Na, 4] and b [..., Nb, 4] -> [..., Na, Nb] (0 where either is absent)."""
    inter = pairwise_intersection(a, b)
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def st_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Spatio-temporal box IoU of tracks pred [Np, F, 4] and gt [Ng, F, 4] (NaN = absent) -> [Np, Ng]."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape[0] == 0 or gt.shape[0] == 0:
        return np.zeros((pred.shape[0], gt.shape[0]))
    p = pred.transpose(1, 0, 2)  # [F, Np, 4]
    g = gt.transpose(1, 0, 2)
    inter = pairwise_intersection(p, g).sum(axis=0)  # [Np, Ng]
    union = box_area(p).sum(axis=0)[:, None] + box_area(g).sum(axis=0)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def greedy_match(iou: np.ndarray, threshold: float) -> np.ndarray:
    """True-positive flags of predictions (rows, already in score order) matched greedily at ``threshold``."""
    n_pred, n_gt = iou.shape
    tp = np.zeros(n_pred, dtype=bool)
    taken = np.zeros(n_gt, dtype=bool)
    for i in range(n_pred):
        if taken.all():
            break
        row = np.where(taken, -1.0, iou[i])
        j = int(row.argmax())
        if row[j] >= threshold:
            tp[i] = True
            taken[j] = True
    return tp


@dataclass
class ClipDetections:
    """What AP needs from one clip: scores and labels of predictions, labels of ground truth, their stIoU."""

    scores: np.ndarray  # [Np]
    pred_labels: list[str]
    gt_labels: list[str]
    iou: np.ndarray  # [Np, Ng] class-agnostic stIoU

    def to_dict(self) -> dict:
        return {"scores": [float(s) for s in self.scores], "pred_labels": list(self.pred_labels),
                "gt_labels": list(self.gt_labels), "st_iou": self.iou.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> ClipDetections:
        n_p, n_g = len(d["pred_labels"]), len(d["gt_labels"])
        iou = np.asarray(d["st_iou"], dtype=np.float64).reshape(n_p, n_g)
        return cls(np.asarray(d["scores"], dtype=np.float64), list(d["pred_labels"]), list(d["gt_labels"]), iou)


class APTable:
    """Per-clip matches at every threshold, accumulated on demand for any clip weighting.

    Args:
        clips: one :class:`ClipDetections` per clip.
        class_agnostic: all tracks one category (YTVIS ``useCats=0``).
    """

    def __init__(self, clips: list[ClipDetections], *, class_agnostic: bool = False,
                 thresholds: np.ndarray = THRESHOLDS, max_dets: int = MAX_DETS) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.n_clips = len(clips)
        cats = sorted({lab for c in clips for lab in c.gt_labels}) if not class_agnostic else ["*"]
        self.categories = cats
        index = {c: i for i, c in enumerate(cats)}
        self.n_gt = np.zeros((self.n_clips, len(cats)))
        rows = []  # (clip, category, score, tp per threshold)
        for k, clip in enumerate(clips):
            gl = ["*"] * len(clip.gt_labels) if class_agnostic else clip.gt_labels
            pl = ["*"] * len(clip.pred_labels) if class_agnostic else clip.pred_labels
            for lab in set(gl):
                self.n_gt[k, index[lab]] = gl.count(lab)
            for lab in set(pl):
                if lab not in index:
                    continue  # a category with no ground truth anywhere has no AP (COCO: -1); its tracks are moot
                p_idx = np.array([i for i, x in enumerate(pl) if x == lab])
                g_idx = np.array([j for j, x in enumerate(gl) if x == lab], dtype=np.int64)
                order = p_idx[np.argsort(-clip.scores[p_idx], kind="mergesort")][:max_dets]
                sub = clip.iou[np.ix_(order, g_idx)] if len(g_idx) else np.zeros((len(order), 0))
                tps = np.stack([greedy_match(sub, t) for t in self.thresholds], axis=1)  # [n, T]
                for r, i in enumerate(order):
                    rows.append((k, index[lab], clip.scores[i], tps[r]))
        self._per_cat = []
        for c in range(len(cats)):
            sel = [r for r in rows if r[1] == c]
            scores = np.array([r[2] for r in sel], dtype=np.float64)
            order = np.argsort(-scores, kind="mergesort")
            clip_idx = np.array([sel[i][0] for i in order], dtype=np.int64)
            tp = np.array([sel[i][3] for i in order], dtype=np.float64).reshape(len(sel), len(self.thresholds))
            self._per_cat.append((clip_idx, tp))

    def ap(self, weights: np.ndarray | None = None) -> np.ndarray:
        """AP [B, T, C] for clip weights [B, n_clips] (default: every clip once); NaN where a category has no GT."""
        if weights is None:
            weights = np.ones((1, self.n_clips))
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if weights.shape[0] > _CHUNK:  # keeps the row offsets of _interpolated_ap far below float resolution
            return np.concatenate([self.ap(weights[i:i + _CHUNK]) for i in range(0, weights.shape[0], _CHUNK)])
        n_b = weights.shape[0]
        out = np.full((n_b, len(self.thresholds), len(self.categories)), np.nan)
        for c, (clip_idx, tp) in enumerate(self._per_cat):
            n_gt = weights @ self.n_gt[:, c]  # [B]
            has = n_gt > 0
            if not has.any():
                continue
            if len(clip_idx) == 0:
                out[has, :, c] = 0.0
                continue
            w = weights[:, clip_idx]  # [B, M]
            for t in range(len(self.thresholds)):
                tpc = np.cumsum(w * tp[:, t], axis=1)
                fpc = np.cumsum(w * (1.0 - tp[:, t]), axis=1)
                out[:, t, c] = _interpolated_ap(tpc, fpc, n_gt)
            out[~has, :, c] = np.nan
        return out

    def summary(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """TrackAP, AP50, AP75 per weighting row (NaN when no category has ground truth)."""
        ap = self.ap(weights)
        i50 = int(np.argmin(np.abs(self.thresholds - 0.5)))
        i75 = int(np.argmin(np.abs(self.thresholds - 0.75)))
        with np.errstate(invalid="ignore"), _quiet():
            return {"TrackAP": np.nanmean(ap.reshape(ap.shape[0], -1), axis=1),
                    "AP50": np.nanmean(ap[:, i50, :], axis=1),
                    "AP75": np.nanmean(ap[:, i75, :], axis=1)}


def _interpolated_ap(tpc: np.ndarray, fpc: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """101-point interpolated AP per row of cumulative TP/FP counts [B, M] with ground-truth counts [B]."""
    n_b, m = tpc.shape
    safe = np.where(n_gt > 0, n_gt, 1.0)[:, None]
    recall = tpc / safe
    precision = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).tiny)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    # first index whose recall reaches each recall point, per row, in one searchsorted over row-offset values
    offsets = 2.0 * np.arange(n_b)[:, None]
    flat = (recall + offsets).ravel()
    queries = (RECALL_POINTS[None, :] + offsets).ravel()
    idx = np.searchsorted(flat, queries - 1e-12, side="left").reshape(n_b, -1) - np.arange(n_b)[:, None] * m
    valid = idx < m
    rows = np.repeat(np.arange(n_b)[:, None], len(RECALL_POINTS), axis=1)
    q = np.where(valid, envelope[rows, np.minimum(idx, m - 1)], 0.0)
    return q.mean(axis=1)


class _quiet:
    """Silence numpy's 'mean of empty slice' warnings for all-NaN rows (those stay NaN, by design)."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def track_ap(clips: list[ClipDetections], *, class_agnostic: bool = False) -> dict[str, float]:
    """TrackAP / AP50 / AP75 of a list of clips (each clip once)."""
    s = APTable(clips, class_agnostic=class_agnostic).summary()
    return {k: float(v[0]) for k, v in s.items()}
