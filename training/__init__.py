"""Training for the pack's adapters (diffusers backends; no ComfyUI).

* :mod:`.trackgo_losses`: TrackGo's SVD EDM noise loss plus the attention loss of the TrackAdapter (Eq. 8 over the
  moving objects' per-frame masks, normalised per query position).
* :mod:`.train`: ``trackdiffusion train`` (``training.train.train(config)``, the loop and the recipe): the
  TrackDiffusion-SVD modules or the TrackGo TrackAdapter on a diffusers SVD UNet; :mod:`.config` (:class:`TrainConfig`),
  :mod:`.loading` (base UNet / VAE / image encoder, tiny UNets), :mod:`.latents` (pixel stand-in and VAE latents),
  :mod:`.trainer` (:class:`Trainer`: model, optimizer, one step), :mod:`.progress`, :mod:`.export` (the adapter file),
  :mod:`.data` (SynTrack / MOT / YouTube-VIS clips), :mod:`.checkpoints` (atomic checkpoints, loss log, exported
  adapter files), :mod:`.distributed` (several processes through Hugging Face Accelerate), :mod:`.cli`.
"""

from typing import Any

from .trackgo_losses import DEFAULT_LAMBDA_ATTN, attention_loss, layer_mask, sample_sigmas, trackgo_losses

__all__ = ["DEFAULT_LAMBDA_ATTN", "TrainConfig", "TrainResult", "Trainer", "attention_loss", "layer_mask",
           "sample_sigmas", "trackgo_losses"]

_LAZY = ("TrainConfig", "TrainResult", "Trainer")


def __getattr__(name: str) -> Any:  # the trainer imports diffusers: load it on first use only
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(".train", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
