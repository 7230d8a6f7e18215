"""Training-free box-trajectory guidance for stock SVD (SG-I2V, Namekata et al., ICLR 2025), written from the paper
and following the official code's procedure (frame-0 key/value side branch, floored boxes, its heatmap, loss scaling).

The model-independent parts (no ComfyUI import):

- :mod:`.geometry`: boxes from Tracklets (or tensors) in latent units, validated (:class:`LatentBoxes`);
- :mod:`.loss`: the Gaussian-weighted alignment loss against box-resized template features;
- :mod:`.fft`: the Butterworth high-frequency reset;
- :mod:`.optimize`: one latent optimisation (AdamW, then the reset);
- :mod:`.config`: the settings and the guided-step band;
- :mod:`.demo_model`: the same optimisation in the embedded demo model's sampler.

The model-dependent side (frame-0 key/value attention, the forward that stops after the last recorded layer, the
sampler hook) has two implementations held equal by a test: ComfyUI's (``trackdiffusion.nodes.patches.sgi2v``) and
the diffusers backend's (:mod:`.diffusers`, for ``trackdiffusion demo --method sgi2v``).
"""

from .config import DEFAULT_LAYERS, SGI2VConfig
from .fft import butterworth_lowpass, frequency_radius, high_frequency_reset
from .geometry import LatentBoxes, latent_boxes_from_tensors, latent_boxes_from_tracklets
from .loss import AlignmentTargets, alignment_loss, build_alignment_targets
from .optimize import LossScaler, OptimisationResult, optimise_latent

__all__ = [
    "DEFAULT_LAYERS", "AlignmentTargets", "LatentBoxes", "LossScaler", "OptimisationResult", "SGI2VConfig",
    "alignment_loss", "build_alignment_targets", "butterworth_lowpass", "frequency_radius", "high_frequency_reset",
    "latent_boxes_from_tensors", "latent_boxes_from_tracklets", "optimise_latent",
]
