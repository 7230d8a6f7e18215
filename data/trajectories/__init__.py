"""TrackGo point trajectories: masks + arrows -> point tracks and the conditioning video (AAAI 2025, supp. A).

Typical use::

    traj = build_point_trajectories(masks, arrows_json, num_frames=25, seed=0)  # masks [M, H, W]
    video = traj.render(point_size=4)  # [F, H, W, 3] uint8, input of the TrackAdapter
    tracks = traj.to_tracks()  # ComfyUI core TRACKS dict
"""

from .builder import (
    MAX_ABS_COORD,
    MAX_FRAMES,
    PointTrajectories,
    arc_length_offsets,
    as_mask_stack,
    build_point_trajectories,
    parse_arrows,
)
from .render import DEFAULT_PALETTE, component_colors, render_point_video
from .sampling import MAX_POINTS, MIN_POINTS, check_seed, kmeans, pixel_index, points_per_mask, sample_mask_points

__all__ = [
    "DEFAULT_PALETTE",
    "MAX_ABS_COORD",
    "MAX_FRAMES",
    "MAX_POINTS",
    "MIN_POINTS",
    "PointTrajectories",
    "arc_length_offsets",
    "as_mask_stack",
    "build_point_trajectories",
    "check_seed",
    "component_colors",
    "kmeans",
    "parse_arrows",
    "pixel_index",
    "points_per_mask",
    "render_point_video",
    "sample_mask_points",
]
