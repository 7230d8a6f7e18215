"""ComfyUI socket types of this pack. Only imported inside ComfyUI."""

from comfy_api.latest import io

# Our tracklets (trackdiffusion.data.tracklets.Tracklets) between nodes.
Tracklets = io.Custom("TRACKLETS")
# TrackGo point trajectories (trackdiffusion.data.trajectories.PointTrajectories).
PointTrajectories = io.Custom("POINT_TRAJECTORIES")
# ComfyUI core TRACKS ({"track_path": [F, N, 2], "track_visibility": [F, N]}); older ComfyUI has no io.Tracks.
Tracks = getattr(io, "Tracks", None) or io.Custom("TRACKS")

CATEGORY = "TrackDiffusion"

#: the "more than 20 objects" choice of the nodes that fill TrackDiffusion's 20 instance slots -> to_slots' overflow
OVERFLOW_CHOICES = {"error": "error", "keep the first 20 by id (official)": "first", "keep the 20 largest": "largest"}


def overflow_input() -> io.Combo.Input:
    """The optional widget that says what to do with more than 20 objects (the default keeps the clear error)."""
    return io.Combo.Input("more_than_20_objects", options=list(OVERFLOW_CHOICES), default="error", optional=True,
                          tooltip="TrackDiffusion has 20 instance slots. error: say so and stop (default). keep the "
                          "first 20 by id: what the official code does (a warning names the dropped ids). keep the "
                          "20 largest: by mean visible area.")
