"""SynTrack: a seed-defined synthetic benchmark of coloured shapes on known tracklets (no weights, CPU-fast).

>>> clip = make_clip(20000, "eval")        # 64x64x16, scenario SCENARIOS[20000 % 5]
>>> clip.video.shape, clip.tracklets.objects[0].label
((16, 64, 64, 3), 'red')
>>> test = make_split("test", "eval", n=128)  # seeds 20000-20127

Splits: val = seeds 10000-10255, test = 20000-20511; the train stream is :func:`train_batch` (``default_rng(step)``).
Tiers: ``"ci"`` 32x32x8 (smoke tests), ``"eval"`` 64x64x16 (reported numbers).
"""

from .corrupt import CORRUPTIONS, corrupt, freeze, shift, swap_identities, unrelated
from .generator import (
    CATEGORIES,
    PALETTE_RGB,
    POINTS_PER_OBJECT,
    SCENARIOS,
    SHAPES,
    SPLITS,
    TIERS,
    ClipSpec,
    ObjectSpec,
    SynClip,
    Tier,
    as_tier,
    clip_from_spec,
    make_clip,
    make_split,
    render_spec,
    sample_spec,
    spec_masks,
    split_seeds,
    train_batch,
)

__all__ = [
    "CATEGORIES", "CORRUPTIONS", "PALETTE_RGB", "POINTS_PER_OBJECT", "SCENARIOS", "SHAPES", "SPLITS", "TIERS",
    "ClipSpec", "ObjectSpec", "SynClip", "Tier", "as_tier", "clip_from_spec", "corrupt", "freeze", "make_clip",
    "make_split", "render_spec", "sample_spec", "shift", "spec_masks", "split_seeds", "swap_identities",
    "train_batch", "unrelated",
]
