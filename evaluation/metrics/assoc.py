"""Frame-level association of predicted tracks to ground truth: mIoU, centre error (CTE), miss rate, ID switches.

Per frame, the *eligible* ground-truth boxes are those present with a visible fraction >= ``min_visible`` (0.3). They
are associated to the predicted boxes of that frame class-agnostically, CLEAR-MOT style:

1. a ground truth keeps the prediction it was last matched to while their IoU stays >= ``keep_iou`` (0.5);
2. the rest are matched by maximum-total-IoU assignment (Hungarian); a pair needs IoU > 0.

Then, over all eligible ground-truth boxes: mIoU is the mean IoU with a miss counting 0; CTE is the mean L2 distance
between matched box centres (px, and divided by the frame diagonal); the miss rate is the unmatched share; an
identity switch is a ground truth matched to a different prediction than at its previous matched frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .ap import pairwise_iou


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular cost matrix: (rows, cols), one pair per row or column.

    Shortest-augmenting-path Hungarian method with potentials, O(n^2 m); ``cost`` must be finite.
    """
    cost = np.asarray(cost, dtype=np.float64)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: 1-based row assigned to column j (column 0 is a sentinel)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        dist = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < dist[1:])
            dist[1:][better] = reduced[better]
            way[1:][better] = j0
            cand = np.where(free, dist[1:], np.inf)
            j1 = int(cand.argmin()) + 1
            delta = cand[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            dist[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:]) if m else np.zeros(0, np.int64)
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    return (cols, rows) if transposed else (rows, cols)


@dataclass
class AssocStats:
    """Sums over one clip (or any set of clips); the metrics are ratios of these."""

    n_eligible: int = 0  # eligible ground-truth boxes
    n_matched: int = 0
    iou_sum: float = 0.0
    cte_sum_px: float = 0.0
    cte_sum_diag: float = 0.0
    idsw: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def associate(gt: np.ndarray, pred: np.ndarray, pred_ids, eligible: np.ndarray, diag: float, *,
              keep_iou: float = 0.5) -> AssocStats:
    """Association statistics of one clip.

    Args:
        gt: [G, F, 4] ground-truth boxes (NaN = absent).
        pred: [P, F, 4] predicted boxes (NaN = absent).
        pred_ids: [P] identities of the predictions (a switch is a change of this id).
        eligible: [F, G] bool, the ground-truth boxes that count.
        diag: the frame diagonal in px, for the normalised centre error.
    """
    stats = AssocStats()
    n_gt = gt.shape[0]
    last = [None] * n_gt  # last matched prediction id per ground truth
    pred_ids = list(pred_ids)
    all_iou = pairwise_iou(gt.transpose(1, 0, 2), pred.transpose(1, 0, 2))  # [F, G, P], every frame at once
    present = ~np.isnan(pred[..., 0]).T if pred.shape[0] else np.zeros((gt.shape[1], 0), dtype=bool)  # [F, P]
    for f in range(gt.shape[1]):
        g_idx = np.flatnonzero(eligible[f])
        if len(g_idx) == 0:
            continue
        stats.n_eligible += len(g_idx)
        p_idx = np.flatnonzero(present[f])
        if len(p_idx) == 0:
            continue
        iou = all_iou[f][np.ix_(g_idx, p_idx)]  # [g, p]
        match = {}
        used = set()
        for a, g in enumerate(g_idx):  # continuity first
            if last[g] is None:
                continue
            for b, p in enumerate(p_idx):
                if pred_ids[p] == last[g] and b not in used and iou[a, b] >= keep_iou:
                    match[a] = b
                    used.add(b)
                    break
        rest_g = [a for a in range(len(g_idx)) if a not in match]
        rest_p = [b for b in range(len(p_idx)) if b not in used]
        if rest_g and rest_p:
            sub = iou[np.ix_(rest_g, rest_p)]
            rows, cols = linear_sum_assignment(-sub)
            for r, c in zip(rows, cols):
                if sub[r, c] > 0:
                    match[rest_g[r]] = rest_p[c]
        for a, b in match.items():
            g, p = g_idx[a], p_idx[b]
            gb, pb = gt[g, f], pred[p, f]
            dist = float(np.hypot(((gb[0] - pb[0]) + (gb[2] - pb[2])) / 2, ((gb[1] - pb[1]) + (gb[3] - pb[3])) / 2))
            stats.n_matched += 1
            stats.iou_sum += float(iou[a, b])
            stats.cte_sum_px += dist
            stats.cte_sum_diag += dist / diag
            if last[g] is not None and last[g] != pred_ids[p]:
                stats.idsw += 1
            last[g] = pred_ids[p]
    return stats
