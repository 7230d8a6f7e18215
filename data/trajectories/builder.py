"""TrackGo point trajectories from masks and arrows (TrackGo, AAAI 2025, supplementary A).

The user gives one mask and one arrow (a polyline) per object. Every mask is reduced to ``K`` representative points
(:mod:`.sampling`), and every point of object ``m`` follows arrow ``m`` rigidly: at frame ``f`` it is offset by the
position reached after travelling ``L * f / (F - 1)`` along the arrow (arc length ``L``), minus the arrow's start. So
the motion speed is constant along the drawn path, corners included, and the last frame lands exactly on the arrow's
end. Only the arrow's *displacement* matters: the arrow does not need to start inside its mask.

A mask covering the whole frame is allowed; its points then sweep the whole scene, which reads as a camera pan.
"""

from __future__ import annotations

import json
import numbers
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .render import render_point_video
from .sampling import check_seed, sample_mask_points

__all__ = [
    "PointTrajectories",
    "arc_length_offsets",
    "as_mask_stack",
    "build_point_trajectories",
    "parse_arrows",
]

#: Arrows are drawn on the image; a coordinate a million pixels away is a unit mistake, and bounding it keeps the
#: arc-length arithmetic far from float overflow.
MAX_ABS_COORD = 1e6
#: Video models condition tens of frames; the bound only stops a typo from allocating gigabytes.
MAX_FRAMES = 10_000

_ARROWS_FIX = 'Give one polyline per mask, e.g. [[[x0, y0], [x1, y1]], ...] or [[{"x": x0, "y": y0}, ...], ...].'


# ----------------------------------------------------------------------------------------------------------- arrows
def _plain(obj: Any) -> Any:
    """numpy arrays / torch tensors -> nested Python lists, so one parser handles every container."""
    if isinstance(obj, np.ndarray) or (sys.modules.get("torch") is not None and _is_tensor(obj)):
        return obj.tolist()
    return obj


def _is_tensor(obj: Any) -> bool:
    return isinstance(obj, sys.modules["torch"].Tensor)


def _coordinate(value: Any, arrow: int, point: int, axis: str, source: str) -> float:
    # bool is an int subclass; "true" as a coordinate is always a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"arrow {arrow}, point {point}: {axis} must be a number, got {type(value).__name__} {value!r:.40}.",
            fix=_ARROWS_FIX,
            source=source,
        )
    try:
        v = float(value)
    except (OverflowError, TypeError, ValueError):
        v = float("inf")
    if not np.isfinite(v) or abs(v) > MAX_ABS_COORD:
        raise InvalidInputError(
            f"arrow {arrow}, point {point}: {axis} = {value!r:.40} is not a finite pixel coordinate "
            f"within +-{MAX_ABS_COORD:g}.",
            fix="Use finite pixel coordinates of the conditioning image.",
            source=source,
        )
    return v


def _polyline(raw: Any, arrow: int, source: str) -> np.ndarray:
    raw = _plain(raw)
    if isinstance(raw, dict):
        if "points" not in raw:
            raise InvalidInputError(
                f'arrow {arrow} is an object without a "points" list.', fix=_ARROWS_FIX, source=source
            )
        raw = _plain(raw["points"])
    if not isinstance(raw, (list, tuple)):
        raise InvalidInputError(
            f"arrow {arrow} must be a list of [x, y] points, got {type(raw).__name__}.", fix=_ARROWS_FIX, source=source
        )
    if len(raw) < 2:
        raise InvalidInputError(
            f"arrow {arrow} has {len(raw)} point(s); an arrow needs at least 2 (start and end).",
            fix="Add an end point to the arrow, or give a zero-length arrow [[x, y], [x, y]] for a still object.",
            source=source,
        )
    out = np.empty((len(raw), 2), dtype=np.float64)
    for j, pt in enumerate(raw):
        pt = _plain(pt)
        if isinstance(pt, dict):
            if "x" not in pt or "y" not in pt:
                raise InvalidInputError(
                    f'arrow {arrow}, point {j}: object needs "x" and "y" keys, got {sorted(map(str, pt))[:4]}.',
                    fix=_ARROWS_FIX,
                    source=source,
                )
            x, y = pt["x"], pt["y"]
        elif isinstance(pt, (list, tuple)) and len(pt) == 2:
            x, y = pt
        else:
            raise InvalidInputError(
                f'arrow {arrow}, point {j} must be [x, y] or {{"x": .., "y": ..}}, got {pt!r:.60}.',
                fix=_ARROWS_FIX,
                source=source,
            )
        out[j, 0] = _coordinate(x, arrow, j, "x", source)
        out[j, 1] = _coordinate(y, arrow, j, "y", source)
    return out


def _is_xy_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and "x" in obj and "y" in obj


def parse_arrows(text_or_obj: Any, num_masks: int | None = None) -> list[np.ndarray]:
    """Parse user arrows (one polyline per mask) from JSON text or Python objects.

    Accepted forms (as JSON text or the equivalent Python / numpy objects):

    - ``[[[x, y], [x, y], ...], ...]``: a list of polylines of ``[x, y]`` pairs;
    - ``[[{"x": .., "y": ..}, ...], ...]``: KJNodes spline-editor coordinates, one list per spline; a single flat list
      ``[{"x": .., "y": ..}, ...]`` is one arrow;
    - ``{"arrows": [{"points": [[x, y], ...]}, ...]}``.

    Args:
        text_or_obj: JSON string (or bytes), or an already-decoded object of one of the forms above.
        num_masks: if given, the number of arrows must equal it.

    Returns:
        One float64 array [n_i, 2] (``x, y`` pixels, ``n_i >= 2``) per arrow, in input order.

    Raises:
        InvalidInputError: malformed JSON, unknown layout, an arrow with fewer than 2 points, a non-numeric or
            non-finite coordinate, or an arrow count different from ``num_masks``.
    """
    source = "arrows"
    obj = text_or_obj
    if isinstance(obj, (bytes, bytearray)):
        try:
            obj = obj.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInputError("arrows bytes are not UTF-8 text.", fix=_ARROWS_FIX, source=source) from None
    if isinstance(obj, str):
        source = "arrows JSON"
        if not obj.strip():
            raise InvalidInputError("arrows text is empty.", fix=_ARROWS_FIX, source=source)
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"malformed JSON: {exc.msg} (column {exc.colno}).", fix=_ARROWS_FIX, source=source, line=exc.lineno
            ) from None
        except (ValueError, RecursionError) as exc:  # e.g. integer literals past Python's digit limit, deep nesting
            raise InvalidInputError(f"unreadable JSON: {exc}.", fix=_ARROWS_FIX, source=source) from None
    obj = _plain(obj)

    if isinstance(obj, dict):
        if "arrows" not in obj:
            raise InvalidInputError(
                f'arrows object needs an "arrows" list, got keys {sorted(map(str, obj))[:6]}.',
                fix=_ARROWS_FIX,
                source=source,
            )
        items = _plain(obj["arrows"])
        if not isinstance(items, (list, tuple)):
            raise InvalidInputError('"arrows" must be a list.', fix=_ARROWS_FIX, source=source)
    elif isinstance(obj, (list, tuple)):
        # A flat list of {"x", "y"} dicts is a single KJNodes spline, not a list of arrows.
        items = [obj] if obj and all(_is_xy_dict(p) for p in obj) else obj
    else:
        raise InvalidInputError(
            f"arrows must be a list of polylines, got {type(obj).__name__}.", fix=_ARROWS_FIX, source=source
        )

    arrows = [_polyline(raw, i, source) for i, raw in enumerate(items)]
    if num_masks is not None and len(arrows) != num_masks:
        raise InvalidInputError(
            f"got {len(arrows)} arrow(s) for {num_masks} mask(s); every mask needs exactly one arrow, in mask order.",
            fix="Draw one arrow per mask (a zero-length arrow keeps an object still), or remove the extra arrows.",
            source=source,
        )
    return arrows


# ------------------------------------------------------------------------------------------------------------ masks
def _mask_array(obj: Any, what: str) -> np.ndarray:
    if sys.modules.get("torch") is not None and _is_tensor(obj):
        t = obj.detach().cpu()
        if t.is_complex():
            raise InvalidInputError(f"{what} must be bool or real-valued, got {t.dtype}.", source="masks")
        # half / bfloat16 have no numpy equivalent (bfloat16) or gain nothing from staying narrow.
        arr = t.numpy() if t.dtype == sys.modules["torch"].bool else t.float().numpy()
    else:
        try:
            arr = np.asarray(obj)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInputError(
                f"{what} is not an array ({exc}).", fix="Pass a numpy array or torch tensor.", source="masks"
            ) from None
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"{what} must be bool or numeric, got dtype {arr.dtype}.",
            fix="Pass a bool mask, or floats where > 0.5 is inside.",
            source="masks",
        )
    return arr


def as_mask_stack(masks: Any) -> np.ndarray:
    """Normalise user masks to a bool stack.

    Args:
        masks: [M, H, W] or [H, W] numpy array / torch tensor, bool or numeric (``> 0.5`` is inside, as for ComfyUI
            ``MASK``), or a list of [H, W] masks of one size.

    Returns:
        [M, H, W] bool, ``M, H, W >= 1``.
    """
    if isinstance(masks, (list, tuple)):
        if len(masks) == 0:
            raise InvalidInputError("no masks given.", fix="Pass at least one [H, W] mask.", source="masks")
        parts = [_mask_array(m, f"mask {i}") for i, m in enumerate(masks)]
        if all(p.ndim <= 1 for p in parts):
            # A nested Python list of rows is one [H, W] mask, not a list of masks.
            arr = _mask_array(masks, "masks")
        else:
            for i, p in enumerate(parts):
                if p.ndim != 2:
                    raise InvalidInputError(f"mask {i} must be 2-D [H, W], got shape {list(p.shape)}.", source="masks")
                if p.shape != parts[0].shape:
                    raise InvalidInputError(
                        f"mask {i} has size {list(p.shape)} but mask 0 has {list(parts[0].shape)}; "
                        "all masks must match the video size.",
                        fix="Resize the masks to one [H, W].",
                        source="masks",
                    )
            arr = np.stack(parts)
    else:
        arr = _mask_array(masks, "masks")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InvalidInputError(
            f"masks must be [M, H, W] or [H, W], got {arr.ndim}-D shape {list(arr.shape)}.",
            fix="Pass a ComfyUI MASK batch [M, H, W] or a single [H, W] mask.",
            source="masks",
        )
    if arr.size == 0:
        raise InvalidInputError(
            f"masks have zero size (shape {list(arr.shape)}).", fix="Pass at least one non-empty mask.", source="masks"
        )
    return arr if arr.dtype == np.bool_ else arr > 0.5


# ----------------------------------------------------------------------------------------------------------- motion
def arc_length_offsets(arrow: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-frame translation along a polyline at constant speed.

    Offset at frame ``f`` = point at arc length ``L * f / (F - 1)`` along the arrow minus the arrow's start; frame 0 is
    ``(0, 0)`` and the last frame exactly ``end - start``. One frame, or a zero-length arrow, means no motion.

    Args:
        arrow: [n, 2] float ``(x, y)`` points, ``n >= 2``.
        num_frames: ``F >= 1``.

    Returns:
        [F, 2] float64 offsets.
    """
    pts = np.asarray(arrow, dtype=np.float64)
    offsets = np.zeros((num_frames, 2), dtype=np.float64)
    seg = np.hypot(*np.diff(pts, axis=0).T)  # [n-1]
    cum = np.concatenate([[0.0], np.cumsum(seg)])  # [n], non-decreasing
    length = cum[-1]
    if num_frames == 1 or length == 0.0:
        return offsets
    t = length * np.arange(num_frames, dtype=np.float64) / (num_frames - 1)
    # np.interp clamps beyond cum[-1] and handles zero-length segments (repeated cum values map to the same point).
    offsets[:, 0] = np.interp(t, cum, pts[:, 0]) - pts[0, 0]
    offsets[:, 1] = np.interp(t, cum, pts[:, 1]) - pts[0, 1]
    offsets[-1] = pts[-1] - pts[0]  # exact end, independent of rounding in the cumulative sum
    return offsets


@dataclass(eq=False)
class PointTrajectories:
    """Point tracks of every mask.

    Attributes:
        points: [F, P, 2] float32 ``(x, y)`` pixel positions.
        visibility: [F, P] bool, False where the point is outside ``[0, W) x [0, H)``.
        component: [P] int64, index of the mask (and arrow) each point belongs to.
        width: ``W`` of the frame in pixels.
        height: ``H`` of the frame in pixels.
    """

    points: np.ndarray
    visibility: np.ndarray
    component: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        try:
            self.points = np.asarray(self.points, dtype=np.float32)
            self.visibility = np.asarray(self.visibility, dtype=bool)
            self.component = np.asarray(self.component, dtype=np.int64)
            self.width, self.height = int(self.width), int(self.height)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInputError(f"PointTrajectories fields must be numeric arrays and ints ({exc}).") from None
        f_p = self.visibility.shape
        if (
            self.points.ndim != 3
            or self.points.shape[2] != 2
            or f_p != self.points.shape[:2]
            or self.component.shape != (self.points.shape[1],)
        ):
            raise InvalidInputError(
                f"inconsistent shapes: points {list(self.points.shape)} (want [F, P, 2]), visibility {list(f_p)} "
                f"(want [F, P]), component {list(self.component.shape)} (want [P])."
            )
        if self.width < 1 or self.height < 1:
            raise InvalidInputError(f"frame size must be positive, got {self.width}x{self.height}.")

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def to_tracks(self) -> dict[str, Any]:
        """ComfyUI core ``TRACKS``: ``{"track_path": float32 [F, P, 2], "track_visibility": bool [F, P]}`` tensors."""
        import torch  # imported here so sampling / rendering work without paying torch's import time

        return {
            "track_path": torch.from_numpy(np.ascontiguousarray(self.points, dtype=np.float32).copy()),
            "track_visibility": torch.from_numpy(np.ascontiguousarray(self.visibility, dtype=bool).copy()),
        }

    def render(self, point_size: int = 4, colors: Any = None) -> np.ndarray:
        """TrackGo conditioning video ``P``: [F, H, W, 3] uint8; see :func:`.render.render_point_video`."""
        return render_point_video(
            self.points, self.visibility, self.component, self.width, self.height, point_size=point_size, colors=colors
        )


def _check_num_frames(num_frames: Any) -> int:
    if isinstance(num_frames, (bool, np.bool_)) or not isinstance(num_frames, (int, np.integer)):
        raise InvalidInputError(
            f"num_frames must be an integer, got {type(num_frames).__name__} {num_frames!r:.40}.",
            fix="Pass the video length as an int, e.g. 14 or 25 for SVD.",
        )
    if not 1 <= num_frames <= MAX_FRAMES:
        raise InvalidInputError(
            f"num_frames must be in 1..{MAX_FRAMES}, got {num_frames}.", fix="Pass the video length, e.g. 25."
        )
    return int(num_frames)


def build_point_trajectories(masks: Any, arrows: Any, num_frames: int, seed: int = 0) -> PointTrajectories:
    """TrackGo point trajectories: ``K`` k-means points per mask, moved along that mask's arrow.

    Args:
        masks: [M, H, W] or [H, W] numpy array / torch tensor (bool, or numeric where ``> 0.5`` is inside), or a list
            of [H, W] masks.
        arrows: ``M`` polylines, one per mask in the same order, each ``>= 2`` ``[x, y]`` pixel points; or any form
            :func:`parse_arrows` accepts (JSON text included).
        num_frames: ``F >= 1``.
        seed: non-negative int; mask ``m`` samples with ``np.random.default_rng((seed, m))``.

    Returns:
        :class:`PointTrajectories` with ``P = sum_m K_m`` points ordered by mask, ``W`` and ``H`` from the masks.

    Raises:
        InvalidInputError: bad masks (not 2-/3-D, zero size, an empty mask), arrows (see :func:`parse_arrows`), a count
            mismatch, or a bad ``num_frames`` / ``seed``.
    """
    num_frames = _check_num_frames(num_frames)
    seed = check_seed(seed)
    stack = as_mask_stack(masks)
    num_masks, height, width = stack.shape
    polylines = parse_arrows(arrows, num_masks=num_masks)

    starts, comps = [], []
    for m in range(num_masks):
        pts = sample_mask_points(stack[m], seed=seed, mask_index=m)  # [K_m, 2]
        starts.append(pts)
        comps.append(np.full(pts.shape[0], m, dtype=np.int64))
    start = np.concatenate(starts)  # [P, 2]
    component = np.concatenate(comps)  # [P]

    offsets = np.stack([arc_length_offsets(a, num_frames) for a in polylines])  # [M, F, 2]
    points = (start[None, :, :] + offsets.transpose(1, 0, 2)[:, component, :]).astype(np.float32)  # [F, P, 2]
    # Tested on the float32 values that are returned, so visibility never disagrees with the stored positions.
    x, y = points[..., 0], points[..., 1]
    visibility = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return PointTrajectories(points=points, visibility=visibility, component=component, width=width, height=height)
