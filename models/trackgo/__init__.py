"""TrackGo's TrackAdapter (the ComfyUI patch is ``nodes/patches/trackgo.py``):

* :mod:`.adapter`: the trajectory encoder and the per-layer W'q / W'k (:class:`TrackGoAdapter`), the attention rule,
  and the adapter file format;
* :mod:`.diffusers`: the adapter attached to a diffusers SVD UNet (:func:`attach_trackgo`; imports diffusers on first
  use), and :func:`adapter_file`, what training writes.
"""

from .._lazy import lazy_getattr

_NAMES = {"TrackGoAdapter": "adapter", "TRACKGO_FORMAT": "adapter", "attach_trackgo": "diffusers",
          "TrackGoAttachment": "diffusers", "adapter_file": "diffusers"}
__all__ = list(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)
