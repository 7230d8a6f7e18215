"""TrackDiffusion text-to-video on the ModelScope UNet3D (the official ``main`` branch):

* :mod:`.naming`: the added modules' keys and shapes;
* :mod:`.diffusers`: the layout built on / attached to a diffusers ``UNet3DConditionModel``;
* :mod:`.loading`: the diffusers text-to-video folder, the official UNet or our adapter, the other components;
* :mod:`.conditioning`: the per-call text embeddings and tracklet boxes / masks;
* :mod:`.pipeline`: the sampler from a diffusers text-to-video folder (:class:`ModelScopeTrackDiffusion`).

Importing this package does not import diffusers; the public names are loaded from the submodules on first use.
"""

from .._lazy import lazy_getattr

_NAMES = {
    "attach_trackdiffusion_unet3d": "diffusers", "build_trackdiffusion_unet3d": "diffusers",
    "TrackDiffusionUNet3DAttachment": "diffusers", "use_official_spatial_heads": "diffusers",
    "GenerationInterrupted": "pipeline", "ModelScopeTrackDiffusion": "pipeline",
}
__all__ = list(_NAMES)
__getattr__ = lazy_getattr(__name__, _NAMES)
