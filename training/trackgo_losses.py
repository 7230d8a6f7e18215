"""TrackGo training objective on a diffusers SVD UNet with a :class:`~trackdiffusion.models.trackgo.diffusers.
TrackGoAttachment`: the SVD EDM denoising loss plus lambda times the attention loss.

* noise loss: the official SVD fine-tuning objective (SVD_Xtend, as TrackDiffusion-SVD trains; reference section 5.2):
  sigma ~ LogNormal(0.7, 1.6), noisy = x + sigma n, UNet input = [noisy / sqrt(sigma^2 + 1) ; image latent],
  timestep = 0.25 ln sigma, denoised = out * (-sigma / sqrt(sigma^2 + 1)) + noisy / (sigma^2 + 1),
  loss = mean((1 + sigma^2) / sigma^2 * (denoised - x)^2);
* attention loss (TrackGo Eq. 8): for every temporal layer, the sum over the moving objects i and the query positions
  of (M_i * diag(A))^2, A the layer's original-branch attention and M_i object i's mask on each frame, area-averaged
  to the layer's grid (:func:`layer_mask`); averaged over the heads and divided by the layer's number of query
  positions (batch * h * w * frames), so that lambda does not depend on the resolution or the frame count
  (:func:`~trackdiffusion.models.trackgo.adapter.attention_diagonal_loss`); summed over the layers.

Gradients: a layer's A = softmax(QK^T/sqrt(d) + A_M) depends on that layer's own A' only through the hard threshold
A' >= alpha, which has no gradient. The attention loss reaches the adapter only through the hidden states that the
earlier layers' trajectory branches changed (and reaches the UNet's temporal Wq / Wk directly, if those are trained).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.errors import InvalidInputError
from ..models.trackgo.adapter import attention_diagonal_loss

SOURCE = "TrackGo training"
#: weight of the attention loss (the paper's lambda). Our default, not a published value. It was set when each layer's
#: term was a mean over the moving tokens only (at 1.0 the term's mask-flip jumps then dominated the EDM loss early
#: on); per query position (Eq. 8's sum over the objects, divided by all batch*h*w*frames positions) each layer's term
#: is smaller by about the share of the frame that moves, so 0.1 now weighs the attention loss less than before. Kept
#: unchanged until a full-size run shows what the new normalisation needs.
DEFAULT_LAMBDA_ATTN = 0.1
#: sigma ~ LogNormal(P_MEAN, P_STD) (SVD_Xtend)
P_MEAN, P_STD = 0.7, 1.6


def _as_mask(mask: Any) -> torch.Tensor:
    from ..models.trackgo.diffusers import mask_tensor

    return mask_tensor(mask)


def layer_mask(mask: torch.Tensor, height: int, width: int, batch: int, frames: int) -> torch.Tensor:
    """Masks -> token weights at one layer's grid, area-averaged (``adaptive_avg_pool2d``) per object and frame.

    ``[B, O, F, H, W]`` (object, frame) -> ``[batch*h*w, O, F]``; ``[B, F, H, W]`` (one object, per frame) ->
    ``[batch*h*w, F]``; ``[B, H, W]`` (one object, every frame) -> ``[batch*h*w]``. Rows follow the temporal tokens'
    ``(b, h, w)`` order; the masks of one video are repeated over the batch.
    """
    dims = mask.dim()
    if dims not in (3, 4, 5):
        raise InvalidInputError(f"the moving-object masks must be [B, O, F, H, W], [B, F, H, W] or [B, H, W], got "
                                f"{list(mask.shape)}.", fix="Pass one mask per object and frame.", source=SOURCE)
    b = mask.shape[0]
    if b not in (1, batch):
        raise InvalidInputError(f"the moving mask holds {b} videos but the UNet batch is {batch}.",
                                fix="Pass one mask per video (or one to share).", source=SOURCE)
    if dims > 3 and mask.shape[-3] != frames:
        raise InvalidInputError(f"the moving mask has {mask.shape[-3]} frames, the UNet {frames}.",
                                fix="Pass [B, O, F, H, W] with F the UNet's frames (or [B, H, W] for every frame).",
                                source=SOURCE)
    flat = mask.reshape(-1, 1, *mask.shape[-2:])
    pooled = F.adaptive_avg_pool2d(flat, (height, width)).reshape(*mask.shape[:-2], height, width)
    if dims == 3:
        weights = pooled.reshape(-1)
    elif dims == 4:
        weights = pooled.permute(0, 2, 3, 1).reshape(b * height * width, frames)
    else:
        weights = pooled.permute(0, 3, 4, 1, 2).reshape(b * height * width, mask.shape[1], frames)
    return weights.repeat((batch // b,) + (1,) * (weights.dim() - 1)) if b != batch else weights


def attention_loss(attachment: Any, moving_mask: Any = None) -> torch.Tensor:
    """TrackGo's attention loss (Eq. 8), summed over the temporal layers.

    Per layer: ``sum_i sum_(n, t) (M_i[n, t] * A[n, t, t])^2``, averaged over the heads and divided by the layer's
    ``batch * h * w * frames`` query positions (see
    :func:`~trackdiffusion.models.trackgo.adapter.attention_diagonal_loss`), with the masks M_i area-averaged to the
    layer's grid (:func:`layer_mask`).

    Args:
        attachment: a TrackGoAttachment whose last forward ran inside ``conditioned(..., record_attention=True)``.
        moving_mask: the masks M_i of the moving objects, ``[B, O, F, H, W]`` (1 on object i on frame t, any
            resolution; zero-padded objects add nothing); ``[B, F, H, W]`` or ``[B, H, W]`` are one object (per
            frame / on every frame); None: the mask given to ``conditioned()``.
    Returns:
        0-dim float32 tensor (with the graph of the recorded attention).
    """
    records = attachment.recorded_attention
    if not records:
        raise InvalidInputError("no attention was recorded.",
                                fix="Run the UNet inside attachment.conditioned(..., record_attention=True) with "
                                    "strength != 0.", source=SOURCE)
    mask = attachment.moving_mask if moving_mask is None else _as_mask(moving_mask)
    if mask is None:
        raise InvalidInputError("no moving mask.", fix="Pass moving_mask here or to conditioned().", source=SOURCE)
    total = None
    for record in records.values():
        weights = layer_mask(mask.to(record.attention.device), record.height, record.width, record.batch,
                             record.frames)
        loss = attention_diagonal_loss(record.attention, weights)
        total = loss if total is None else total + loss
    return total


def sample_sigmas(batch: int, generator: torch.Generator | None = None, device: Any = None) -> torch.Tensor:
    """sigma ~ LogNormal(0.7, 1.6), ``[batch]`` float32."""
    normal = torch.randn(batch, generator=generator, device=generator.device if generator is not None else None)
    return (normal * P_STD + P_MEAN).exp().to(device)


def _sigmas(value: Any, batch: int, device: torch.device) -> torch.Tensor:
    sigma = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(batch)
    if sigma.numel() != batch or not bool((sigma > 0).all() & torch.isfinite(sigma).all()):
        raise InvalidInputError(f"sigma must be one positive number or one per sample ({batch}), got "
                                f"{sigma.tolist()[:4]}.", fix="Pass sigma > 0.", source=SOURCE)
    return sigma


def trackgo_losses(
    unet: nn.Module,
    attachment: Any,
    batch: dict[str, Any],
    *,
    lambda_attn: float = DEFAULT_LAMBDA_ATTN,
    alpha: float = 0.2,
    tau: float = 0.0,
    strength: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One TrackGo training loss evaluation (a UNet forward inside ``attachment.conditioned``).

    Args:
        batch: ``latents`` [B, F, 4, h, w] (clean, VAE-scaled); ``image_latents`` [B, 4, h, w] (the conditioning frame's
            latent for the channel concat; or [B, F, 4, h, w]); ``image_embeddings`` [B, 1, D]; ``added_time_ids``
            [B, 3]; ``video`` the trajectory video (see ``conditioned``); ``moving_mask`` the masks M_i of the moving
            objects, [B, O, F, H, W] (or [B, F, H, W] / [B, H, W]: one object), or None (then the attention loss is
            0); optional ``sigma`` (a number or [B]; default LogNormal(0.7, 1.6) samples) and
            ``noise`` (like latents; default standard normal). Conditioning dropout and noise augmentation of the
            image are the caller's (they are part of how the batch is made).
        lambda_attn: weight of the attention loss.
        alpha, tau, strength: as in ``conditioned`` (tau 0 in training).
        generator: for sigma and noise when not given.
    Returns:
        ``{"noise": ..., "attention": ..., "total": noise + lambda_attn * attention}``, 0-dim float32 tensors.
    """
    for key in ("latents", "image_latents", "image_embeddings", "added_time_ids", "video"):
        if key not in batch:
            raise InvalidInputError(f"the batch has no {key!r}.", fix="See trackgo_losses' docstring for the keys.",
                                    source=SOURCE)
    x = batch["latents"]
    if not isinstance(x, torch.Tensor) or x.dim() != 5:
        raise InvalidInputError("latents must be a [B, F, C, h, w] tensor.", fix="Stack the VAE latents per video.",
                                source=SOURCE)
    b, frames = x.shape[:2]
    x = x.float()
    sigma = batch.get("sigma")
    sigma = sample_sigmas(b, generator, x.device) if sigma is None else _sigmas(sigma, b, x.device)
    noise = batch.get("noise")
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, device=generator.device if generator is not None else None)
    noise = noise.to(x)
    s = sigma.view(b, 1, 1, 1, 1)
    noisy = x + noise * s
    image = batch["image_latents"]
    if image.dim() == 4:
        image = image.unsqueeze(1).expand(-1, frames, -1, -1, -1)
    ref = next(unet.parameters())
    sample = torch.cat([noisy / (s * s + 1).sqrt(), image.to(x)], dim=2).to(ref.dtype)
    timesteps = (0.25 * sigma.log()).to(ref.dtype)
    mask = batch.get("moving_mask")
    record = mask is not None and float(strength) != 0.0
    with attachment.conditioned(batch["video"], mask, alpha=alpha, tau=tau, strength=strength,
                                record_attention=record):
        out = unet(sample, timesteps, encoder_hidden_states=batch["image_embeddings"].to(ref.dtype),
                   added_time_ids=batch["added_time_ids"].to(ref.dtype)).sample
        attention = attention_loss(attachment, mask) if record else x.new_zeros(())
    denoised = out.float() * (-s / (s * s + 1).sqrt()) + noisy / (s * s + 1)
    weight = (1 + s * s) / (s * s)
    noise_loss = (weight * (denoised - x) ** 2).reshape(b, -1).mean(1).mean()
    attention = attention.float()
    return {"noise": noise_loss, "attention": attention, "total": noise_loss + float(lambda_attn) * attention}
