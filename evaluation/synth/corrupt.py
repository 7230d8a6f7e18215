"""Corrupted versions of SynTrack clips: the negative controls of the metric stack.

Each corruption maps a :class:`~.generator.SynClip` to a video of the same shape, to be scored against the clip's
*original* ground truth. Their scores must fall below the clean render's (the positive control):

- ``shift-s`` / ``shift-m`` / ``shift-l``: the whole video moved right by side/32, side/16, side/8 px
  (2 / 4 / 8 px at 64x64), edge pixels repeated;
- ``swap``: from mid-clip on, objects 1 and 2 trade colours (a lone object takes an unused colour), i.e. an
  identity switch with the layout untouched;
- ``freeze``: the first frame held for the whole clip (no motion);
- ``unrelated``: the video of another clip (seed + 1,000,000), the unconditional floor.
"""

from __future__ import annotations

import numpy as np

from ...data.errors import InvalidInputError
from .generator import CATEGORIES, SynClip, make_clip, render_spec, with_colors

UNRELATED_OFFSET = 1_000_000


def shift(video: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """Translate every frame by (dx, dy) whole pixels, repeating the edge pixels into the uncovered border."""
    video = np.asarray(video)
    h, w = video.shape[1:3]
    if abs(dx) >= w or abs(dy) >= h:
        raise InvalidInputError(f"shift ({dx}, {dy}) is not smaller than the {w}x{h} frame.", source="corrupt")
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0))
    padded = np.pad(video, pad, mode="edge")
    y0, x0 = max(-dy, 0), max(-dx, 0)
    return np.ascontiguousarray(padded[:, y0:y0 + h, x0:x0 + w])


def freeze(video: np.ndarray) -> np.ndarray:
    """The first frame repeated over the whole clip."""
    video = np.asarray(video)
    return np.ascontiguousarray(np.repeat(video[:1], video.shape[0], axis=0))


def swap_identities(clip: SynClip, from_frame: int | None = None) -> np.ndarray:
    """Re-render ``clip`` with objects 1 and 2 trading colours from ``from_frame`` (default mid-clip) on.

    A clip with one object instead repaints it in the first palette colour the clip does not use.
    """
    spec = clip.spec
    f = spec.tier.num_frames
    start = f // 2 if from_frame is None else int(from_frame)
    colors = [o.colors.copy() for o in spec.objects]
    if len(colors) >= 2:
        a, b = spec.objects[0].category, spec.objects[1].category
        colors[0][start:], colors[1][start:] = b, a
    elif len(colors) == 1:
        spare = next(c for c in range(len(CATEGORIES)) if c != spec.objects[0].category)
        colors[0][start:] = spare
    video, _ = render_spec(with_colors(spec, colors))
    return video


def unrelated(clip: SynClip) -> np.ndarray:
    """The video of an unrelated clip of the same tier and texture (seed + 1,000,000)."""
    seed = (clip.seed or 0) + UNRELATED_OFFSET
    return make_clip(seed, clip.spec.tier, texture=clip.spec.texture).video


def _shift_frac(div: int):
    def apply(clip: SynClip) -> np.ndarray:
        return shift(clip.video, max(1, round(min(clip.spec.tier.width, clip.spec.tier.height) / div)))
    return apply


CORRUPTIONS = {
    "gt": lambda clip: clip.video,
    "shift-s": _shift_frac(32),
    "shift-m": _shift_frac(16),
    "shift-l": _shift_frac(8),
    "swap": swap_identities,
    "freeze": lambda clip: freeze(clip.video),
    "unrelated": unrelated,
}


def corrupt(clip: SynClip, name: str) -> np.ndarray:
    """The video of ``clip`` under corruption ``name`` (one of :data:`CORRUPTIONS`; ``gt`` is the clean render)."""
    if name not in CORRUPTIONS:
        raise InvalidInputError(f"unknown corruption {name!r}.", fix=f"use one of {', '.join(CORRUPTIONS)}.",
                                source="corrupt")
    return CORRUPTIONS[name](clip)
