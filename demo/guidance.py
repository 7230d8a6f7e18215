"""SG-I2V's latent optimisation on the demo model: the training-free guidance of ``trackdiffusion.guidance_sgi2v``
measured where a CPU can measure it.

The demo model has no attention, so SG-I2V's other half (frame-0 keys and values in spatial self-attention) has no
counterpart here; what runs is the part that moves objects: at the guided DDIM steps, the noisy video is optimised so
that the decoder features inside each frame's box match the template-frame features resized to that box, then its
high frequencies are reset (:func:`~..guidance_sgi2v.optimise_latent`, the very function the ComfyUI sampler uses).
The "latent" is the video itself ([F, 3, 64, 64] pixels), the feature maps the outputs of ``up1`` (16x16).
"""

from __future__ import annotations

import torch

from ..guidance_sgi2v import SGI2VConfig, build_alignment_targets, latent_boxes_from_tracklets, optimise_latent
from .data import BoxConditioning
from .sampling import alpha_bar

#: the demo model's blocks whose outputs feed the alignment loss (its decoder, at 1/4 of the frame size)
DEMO_FEATURE_BLOCKS = ("up1.0", "up1.1")


def _clip_features(model, first: torch.Tensor, cond: BoxConditioning, t: torch.Tensor, blocks):
    """``z [F, 3, H, W] -> [features [F, C, h, w] per block]`` for one clip (batched conditioning of size 1)."""
    modules = dict(model.named_modules())
    missing = [b for b in blocks if b not in modules and b != "x0"]
    if missing:
        raise ValueError(f"the demo model has no blocks {missing}")

    def features(z: torch.Tensor) -> list[torch.Tensor]:
        recorded: list[torch.Tensor] = []
        hooks = [modules[b].register_forward_hook(lambda _m, _i, out: recorded.append(out)) for b in blocks
                 if b != "x0"]
        try:
            x0 = model.forward_conditioned(z.permute(1, 0, 2, 3)[None], t.expand(1), first, cond)
        finally:
            for h in hooks:
                h.remove()
        if "x0" in blocks:  # the predicted clean frames themselves
            recorded.append(x0[0].permute(1, 0, 2, 3))
        return recorded  # each [F, C, h, w]: frames in order

    return features


def sample_guided(model, first: torch.Tensor, cond: BoxConditioning, guide_tracklets, num_frames: int,
                  steps: int = 20, config: SGI2VConfig | None = None, generator: torch.Generator | None = None,
                  blocks=None, losses: list | None = None) -> torch.Tensor:
    """DDIM sampling as :func:`~.sampling.sample`, with SG-I2V latent optimisation at the config's step band.

    Args:
        cond: the model's own conditioning (batched), e.g. ``BoxConditioning.empty`` for a box-free model.
        guide_tracklets: one Tracklets per clip, the boxes the guidance pulls the objects along.
        blocks: the modules whose outputs feed the loss (default :data:`DEMO_FEATURE_BLOCKS`).
        losses: if given, gets one list of per-iteration alignment losses per guided (step, clip).
    Returns:
        [B, 3, F, H, W] in [-1, 1], frame 0 replaced by the first frame.
    """
    config = config or SGI2VConfig()
    blocks = tuple(blocks or DEMO_FEATURE_BLOCKS)
    b, _, h, w = first.shape
    targets = [build_alignment_targets(latent_boxes_from_tracklets(t, num_frames, h, w), config.heatmap_sigma)
               for t in guide_tracklets]
    guided = set(config.guided_steps(steps))
    x = torch.randn(b, 3, num_frames, h, w, generator=generator)
    levels = torch.linspace(1.0, 0.0, steps + 1)
    for i in range(steps):
        t, t_next = levels[i], levels[i + 1]
        if i in guided:
            for k in range(b):
                one = BoxConditioning(*(getattr(cond, a)[k:k + 1] for a in ("masks", "categories", "appearance")))
                result = optimise_latent(x[k].permute(1, 0, 2, 3), _clip_features(model, first[k:k + 1], one, t,
                                                                                   blocks),
                                         targets[k], iterations=config.iterations, lr=config.lr,
                                         weight_decay=config.weight_decay, fft_ratio=config.fft_ratio)
                x[k] = result.latent.permute(1, 0, 2, 3)
                if losses is not None:
                    losses.append(result.losses)
        with torch.no_grad():
            x0 = model.forward_conditioned(x, t.expand(b), first, cond).clamp(-1, 1)
        a, a_next = alpha_bar(t), alpha_bar(t_next)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    x[:, :, 0] = first
    return x
