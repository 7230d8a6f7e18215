"""Evaluation: SynTrack (seed-defined synthetic clips with known tracklets and trajectories) and the metrics that
score generated videos against tracklets."""
