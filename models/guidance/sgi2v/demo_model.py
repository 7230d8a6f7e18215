"""SG-I2V's latent optimisation on the demo model: the training-free guidance of ``trackdiffusion.models.guidance.sgi2v``
measured where a CPU can measure it.

The demo model has no attention, so SG-I2V's other half (frame-0 keys and values in spatial self-attention) has no
counterpart here; what runs is the part that moves objects: at the guided DDIM steps, the noisy video is optimised so
that the decoder features inside each frame's box match the template-frame features resized to that box, then its
high frequencies are reset (:func:`~.optimise_latent`, the very function the ComfyUI sampler uses).
The "latent" is the video itself ([F, 3, 64, 64] pixels), the feature maps the outputs of ``up1`` (16x16).
"""

from __future__ import annotations

import torch

from ...demo.data import BoxConditioning
from ...demo.sampling import sample
from . import SGI2VConfig, build_alignment_targets, latent_boxes_from_tracklets, optimise_latent

#: the demo model's blocks whose outputs feed the alignment loss (its decoder, at 1/4 of the frame size)
DEMO_FEATURE_BLOCKS = ("up1.0", "up1.1")


def _clip_features(model, modules: dict, first: torch.Tensor, cond: BoxConditioning, t: torch.Tensor):
    """``z [F, 3, H, W] -> [features [F, C, h, w] per recorded module]`` for one clip (batched conditioning of size 1).

    ``modules`` maps names to the modules whose outputs are recorded; the name ``"x0"`` stands for the predicted clean
    frames themselves."""

    def features(z: torch.Tensor) -> list[torch.Tensor]:
        recorded: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: recorded.append(out)) for m in modules.values()
                 if m is not None]
        try:
            x0 = model.forward_conditioned(z.permute(1, 0, 2, 3)[None], t.expand(1), first, cond)
        finally:
            for h in hooks:
                h.remove()
        if "x0" in modules:
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
        blocks: the modules whose outputs feed the loss (default :data:`DEMO_FEATURE_BLOCKS`; ``"x0"``: the
            predicted clean frames).
        losses: if given, gets one list of per-iteration alignment losses per guided (step, clip).
    Returns:
        [B, 3, F, H, W] in [-1, 1], frame 0 replaced by the first frame.
    """
    config = config or SGI2VConfig()
    named = dict(model.named_modules())
    modules = {name: None if name == "x0" else named.get(name) for name in (blocks or DEMO_FEATURE_BLOCKS)}
    missing = [name for name, m in modules.items() if m is None and name != "x0"]
    if missing:
        raise ValueError(f"the demo model has no blocks {missing}")
    b, _, h, w = first.shape
    targets = [build_alignment_targets(latent_boxes_from_tracklets(t, num_frames, h, w), config.heatmap_sigma)
               for t in guide_tracklets]
    clip_conds = [BoxConditioning(cond.masks[k:k + 1], cond.categories[k:k + 1], cond.appearance[k:k + 1])
                  for k in range(b)]
    guided = set(config.guided_steps(steps))

    def optimise(i: int, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if i not in guided:
            return x
        for k in range(b):
            result = optimise_latent(x[k].permute(1, 0, 2, 3),
                                     _clip_features(model, modules, first[k:k + 1], clip_conds[k], t), targets[k],
                                     iterations=config.iterations, lr=config.lr, weight_decay=config.weight_decay,
                                     fft_ratio=config.fft_ratio)
            x[k] = result.latent.permute(1, 0, 2, 3)
            if losses is not None:
                losses.append(result.losses)
        return x

    return sample(model, first, cond, num_frames, steps, generator, before_step=optimise)
