"""ComfyUI socket types of this pack. Only imported inside ComfyUI."""

from comfy_api.latest import io

# Our tracklets (trackdiffusion.data.tracklets.Tracklets) between nodes.
Tracklets = io.Custom("TRACKLETS")
# TrackGo point trajectories (trackdiffusion.data.trajectories.PointTrajectories).
PointTrajectories = io.Custom("POINT_TRAJECTORIES")
# ComfyUI core TRACKS ({"track_path": [F, N, 2], "track_visibility": [F, N]}); older ComfyUI has no io.Tracks.
Tracks = getattr(io, "Tracks", None) or io.Custom("TRACKS")

CATEGORY = "TrackDiffusion"
