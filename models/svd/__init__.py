"""TrackDiffusion on Stable Video Diffusion, one concept in one place (the ComfyUI patch is ``nodes/patches/svd.py``):

* :mod:`.adapter`: the position net and fusers as a ComfyUI-named delta (:class:`TrackDiffusionSVDAdapter`);
* :mod:`.naming`: the one diffusers <-> ComfyUI naming of the SVD UNet, used by the converter, the training export
  and the backends;
* :mod:`.diffusers`: the same modules attached to a diffusers ``UNetSpatioTemporalConditionModel``
  (:func:`attach_trackdiffusion_svd`; imports diffusers on first use).
"""

from .._lazy import lazy_getattr

_NAMES = {"TrackDiffusionSVDAdapter": "adapter", "attach_trackdiffusion_svd": "diffusers",
          "TrackDiffusionSVDAttachment": "diffusers"}
__all__ = list(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)
