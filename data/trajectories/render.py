"""Rasterising point trajectories into TrackGo's conditioning video ``P`` (supplementary A).

TrackGo feeds the motion to its TrackAdapter as a video: black background, every visible trajectory point drawn as a
small solid square, and all points of one object (one mask) in that object's colour. The drawing here is a single
scatter into a flat ``[F * H * W, 3]`` buffer, so its cost grows with the number of points, not with Python loops.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from .sampling import pixel_index

__all__ = ["DEFAULT_PALETTE", "component_colors", "render_point_video"]

#: One colour per component (mask), cycled past 16. Saturated hues first so the first objects are maximally
#: distinct, then lighter tints; none is black, which is the background. The values are this pack's fixed choice:
#: what matters for the conditioning is that a component keeps the same colour in every frame and every run.
DEFAULT_PALETTE = np.array(
    [
        (255, 0, 0),
        (0, 255, 0),
        (0, 0, 255),
        (255, 255, 0),
        (255, 0, 255),
        (0, 255, 255),
        (255, 128, 0),
        (128, 0, 255),
        (0, 255, 128),
        (255, 0, 128),
        (0, 128, 255),
        (128, 255, 0),
        (255, 128, 128),
        (128, 255, 128),
        (128, 128, 255),
        (255, 255, 128),
    ],
    dtype=np.uint8,
)
DEFAULT_PALETTE.setflags(write=False)

_MAX_POINT_SIZE = 256


def component_colors(num_components: int, colors: object = None) -> np.ndarray:
    """Colour table for ``num_components`` components: [C, 3] uint8, palette cycled when it is shorter.

    Args:
        num_components: number of components ``C`` to colour.
        colors: ``None`` for :data:`DEFAULT_PALETTE`, else an array-like of RGB triples in ``[0, 255]``.
    """
    if colors is None:
        table = DEFAULT_PALETTE
    else:
        try:
            table = np.asarray(colors, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInputError(
                "colors must be a list of [r, g, b] triples.", fix="Pass e.g. [[255, 0, 0], [0, 255, 0]]."
            ) from None
        if table.ndim == 1 and table.shape[0] == 3:
            table = table[None]  # a single colour for every component
        if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] == 0:
            raise InvalidInputError(
                f"colors must have shape [C, 3], got {list(table.shape)}.",
                fix="Pass a list of [r, g, b] triples.",
            )
        if not np.all(np.isfinite(table)) or table.min() < 0 or table.max() > 255:
            raise InvalidInputError("colors must be finite RGB values in [0, 255].", fix="Use 0..255 per channel.")
        table = np.floor(table + 0.5).astype(np.uint8)
    return table[np.arange(max(int(num_components), 0)) % table.shape[0]]


def render_point_video(
    points: np.ndarray,
    visibility: np.ndarray,
    component: np.ndarray,
    width: int,
    height: int,
    point_size: int = 4,
    colors: object = None,
) -> np.ndarray:
    """Draw the TrackGo conditioning video.

    Each visible point becomes a ``point_size x point_size`` square centred on the pixel it falls in (for even sizes
    the extra row/column is on the top/left side: pixels ``c - s//2 .. c - s//2 + s - 1``), clipped at the frame
    border. Where squares overlap, the higher component index is drawn on top, so the result is deterministic.

    Args:
        points: [F, P, 2] float ``(x, y)`` pixels.
        visibility: [F, P] bool; invisible points are not drawn.
        component: [P] int, the mask each point belongs to (indexes the colour table).
        width: ``W`` of the video.
        height: ``H`` of the video.
        point_size: side of the square in pixels, ``1 .. 256``.
        colors: ``None`` for :data:`DEFAULT_PALETTE`, or [C, 3] RGB triples in ``[0, 255]`` (cycled).

    Returns:
        [F, H, W, 3] uint8 video, black where no point is drawn.
    """
    if isinstance(point_size, (bool, np.bool_)) or not isinstance(point_size, (int, np.integer)):
        raise InvalidInputError(f"point_size must be an integer, got {type(point_size).__name__}.")
    if not 1 <= point_size <= _MAX_POINT_SIZE:
        raise InvalidInputError(f"point_size must be in 1..{_MAX_POINT_SIZE}, got {point_size}.")
    try:
        points = np.asarray(points, dtype=np.float64)
        visibility = np.asarray(visibility, dtype=bool)
        component = np.asarray(component, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInputError(f"render inputs must be numeric arrays ({exc}).") from None
    if visibility.ndim != 2 or points.shape != (*visibility.shape, 2) or component.shape != visibility.shape[1:]:
        raise InvalidInputError(
            f"render needs points [F, P, 2], visibility [F, P] and component [P]; got {list(points.shape)}, "
            f"{list(visibility.shape)} and {list(component.shape)}."
        )
    if component.size and component.min() < 0:
        raise InvalidInputError("component indices must be >= 0.")
    width, height, s = int(width), int(height), int(point_size)
    if width < 1 or height < 1:
        raise InvalidInputError(f"video size must be positive, got {width}x{height}.")
    num_frames = visibility.shape[0]

    num_components = int(component.max()) + 1 if component.size else 0
    table = component_colors(num_components, colors)

    video = np.zeros((num_frames * height * width, 3), dtype=np.uint8)
    f_idx, p_idx = np.nonzero(visibility & np.isfinite(points).all(axis=-1))
    if f_idx.size:
        # Stable sort by component: NumPy applies repeated-index writes in order, so higher components end on top.
        order = np.argsort(component[p_idx], kind="stable")
        f_idx, p_idx = f_idx[order], p_idx[order]
        # Clamp far-off points first (their squares stay fully off-frame) so the integer cast cannot overflow.
        far = float(max(width, height) + s + 1)
        ij = pixel_index(np.clip(points[f_idx, p_idx], -far, far))  # [N, 2] (col, row)
        d = np.arange(s) - s // 2
        xs = ij[:, 0, None, None] + d[None, None, :]  # [N, 1, s]
        ys = ij[:, 1, None, None] + d[None, :, None]  # [N, s, 1]
        inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)  # [N, s, s]
        flat = (f_idx[:, None, None] * height + ys) * width + xs  # [N, s, s]
        rgb = np.broadcast_to(table[component[p_idx]][:, None, None, :], (*inside.shape, 3))
        video[flat[inside]] = rgb[inside]
    return video.reshape(num_frames, height, width, 3)
