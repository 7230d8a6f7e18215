"""The data model and the pack's shared basics (no ComfyUI, no diffusers):

* :mod:`.tracklets`: per-frame boxes per object (our JSON v1, interpolation, visibility, slots for the models) and
  their file formats (MOT, YouTube-VIS, core TRACKS, KJNodes);
* :mod:`.trajectories`: TrackGo's point trajectories from masks and arrows, and the conditioning video;
* :mod:`.editor_state`: the canvas editors' saved state; :mod:`.visualize`: annotated videos; :mod:`.dataset`:
  tracker training data (MOT sequence + YouTube-VIS json);
* :mod:`.errors` (:class:`~.errors.InvalidInputError`: one line of what was wrong and what to do) and :mod:`.atomic`
  (files appear whole or not at all);
* :mod:`.cli`: ``trackdiffusion tracklets`` and ``trackdiffusion dataset``.
"""
