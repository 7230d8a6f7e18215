"""The embedded demo model: a small box-conditioned image-to-video denoiser trained here on SynTrack.

It is not TrackDiffusion: it is small enough to train on a CPU and to run anywhere, so a fresh machine without
ComfyUI or a GPU can generate a clip whose objects follow their boxes (`trackdiffusion demo`), and the controllability
metrics have a model to measure. Conditioning: the first frame, one mask channel per instance slot per frame (the
box of the object in slot k, slots in ascending id order, as TrackDiffusion's), a category per slot, and the first
frame's crop of each object pasted into its box at every frame (see :mod:`.data`).
"""

from .data import LABELS, SLOTS, BoxConditioning, box_conditioning, box_raster, clip_tensors
from .model import BoxVideoDenoiser
from .sampling import generate

__all__ = ["LABELS", "SLOTS", "BoxConditioning", "BoxVideoDenoiser", "box_conditioning", "box_raster", "clip_tensors",
           "generate"]
