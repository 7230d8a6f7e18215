"""Training objectives for the pack's adapters (diffusers backends; no ComfyUI).

* :mod:`.trackgo_losses`: TrackGo's SVD EDM noise loss plus the attention loss of the TrackAdapter.
"""

from .trackgo_losses import (
    DEFAULT_LAMBDA_ATTN,
    attention_loss,
    layer_mask,
    sample_sigmas,
    trackgo_losses,
)

__all__ = ["DEFAULT_LAMBDA_ATTN", "attention_loss", "layer_mask", "sample_sigmas", "trackgo_losses"]
