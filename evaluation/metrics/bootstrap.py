"""Bootstrap confidence intervals over clips (percentile method), plain and paired.

A resample draws ``n_clips`` clips with replacement; it is represented by the multiplicity of every clip (a weight
vector), so metrics that are not per-clip means (TrackAP, ratio metrics such as mIoU) are recomputed exactly on each
resample by weighting their per-clip sums. Paired comparisons use the *same* resamples for both runs, which cancels
the clip-difficulty variance that dominates small benchmarks.
"""

from __future__ import annotations

import numpy as np

from ...data.errors import InvalidInputError


def bootstrap_weights(n_items: int, n: int = 1000, seed: int = 0) -> np.ndarray:
    """[n, n_items] clip multiplicities of ``n`` resamples (each row sums to ``n_items``), from ``default_rng(seed)``."""
    if n_items < 1 or n < 1:
        raise InvalidInputError(f"bootstrap needs at least one item and one resample, got {n_items} and {n}.",
                                source="bootstrap")
    idx = np.random.default_rng(seed).integers(0, n_items, size=(n, n_items))
    flat = (idx + n_items * np.arange(n)[:, None]).ravel()
    return np.bincount(flat, minlength=n * n_items).reshape(n, n_items).astype(np.float64)


def percentile_ci(samples, estimate: float, level: float = 0.95, *, n: int, seed: int) -> dict:
    samples = np.asarray(samples, dtype=np.float64)
    finite = samples[np.isfinite(samples)]
    alpha = (1.0 - level) / 2.0
    lo, hi = (np.quantile(finite, [alpha, 1.0 - alpha]) if len(finite) else (np.nan, np.nan))
    return {"estimate": float(estimate), "lo": float(lo), "hi": float(hi), "level": level, "n": int(n),
            "seed": int(seed)}


def _values(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.isfinite(v).all():
        raise InvalidInputError(f"{name} must be a non-empty list of finite numbers.", source="bootstrap")
    return v


def bootstrap_ci(values, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile CI of the mean of per-clip ``values``: ``{"estimate", "lo", "hi", "level", "n", "seed"}``."""
    v = _values(values, "values")
    w = bootstrap_weights(len(v), n, seed)
    return percentile_ci(w @ v / len(v), v.mean(), level, n=n, seed=seed)


def paired_bootstrap_ci(a, b, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile CI of ``mean(a) - mean(b)`` over paired per-clip values (same clips, same resamples).

    Adds ``p_le_0`` / ``p_ge_0``: the share of resamples where the difference is <= 0 / >= 0 (one-sided bootstrap
    p-values for "a > b" / "a < b"). Claim an ordering only when the interval excludes 0.
    """
    va, vb = _values(a, "a"), _values(b, "b")
    if va.shape != vb.shape:
        raise InvalidInputError(f"paired values need the same clips: {va.size} vs {vb.size} values.",
                                source="bootstrap")
    d = va - vb
    w = bootstrap_weights(len(d), n, seed)
    samples = w @ d / len(d)
    out = percentile_ci(samples, d.mean(), level, n=n, seed=seed)
    out["p_le_0"] = float((samples <= 0).mean())
    out["p_ge_0"] = float((samples >= 0).mean())
    return out
