"""SG-I2V settings, validated once, and the choice of the sampling steps that get the latent optimisation.

Step convention: index 0 is the first (noisiest) sampling step. SG-I2V's reference code counts its steps *down*
(``t = num_steps - i``) and optimises at ``t`` in 30..45 of 50, which is step indices 5..20 here: the fractions
0.1..0.4 of the schedule, the defaults, so the band scales with the step count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ....data.errors import InvalidInputError

# ComfyUI names of SG-I2V's layers: diffusers up_blocks[2].attentions[1] and [2] (640 channels, 1/16 of the image).
DEFAULT_LAYERS: tuple[str, ...] = ("output_blocks.7.1", "output_blocks.8.1")


@dataclass(frozen=True)
class SGI2VConfig:
    """Attributes:
    layers: spatial transformers (ComfyUI module paths) whose first spatial self-attention (attn1) gets frame-0
        keys and values and whose output feeds the loss; the forward stops after the last one while optimising.
    start_percent, end_percent: the band of the schedule (fractions of the step count, inclusive) with latent
        optimisation; ignored when ``start_step``/``end_step`` are given.
    start_step, end_step: the band as 0-based step indices (inclusive).
    iterations: AdamW updates of the latent per guided step (0 = guidance off).
    lr: AdamW learning rate.
    weight_decay: AdamW weight decay (torch's default, as in SG-I2V).
    fft_ratio: Butterworth half-power radius of the high-frequency reset, as a fraction of Nyquist (0 = keep only
        the original latent, i.e. no effect; see :mod:`.fft`).
    heatmap_sigma: Gaussian centre weighting, in units of the box half-size.
    """

    layers: tuple[str, ...] = DEFAULT_LAYERS
    start_percent: float = 0.1
    end_percent: float = 0.4
    start_step: int | None = None
    end_step: int | None = None
    iterations: int = 5
    lr: float = 0.21
    weight_decay: float = 0.01
    fft_ratio: float = 0.5
    heatmap_sigma: float = 0.4

    def __post_init__(self) -> None:
        layers = self.layers
        if isinstance(layers, str):
            layers = tuple(p.strip() for p in layers.replace(";", ",").split(",") if p.strip())
        layers = tuple(layers)
        if not layers or not all(isinstance(p, str) and p for p in layers):
            raise InvalidInputError(f"layers must name at least one transformer, got {self.layers!r}.",
                                    fix=f"use e.g. {', '.join(DEFAULT_LAYERS)}.")
        if len(set(layers)) != len(layers):
            raise InvalidInputError(f"layers lists a transformer twice: {layers!r}.")
        object.__setattr__(self, "layers", layers)
        for name in ("start_percent", "end_percent"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise InvalidInputError(f"{name} must be a fraction in [0, 1], got {v!r}.")
        if self.start_percent > self.end_percent:
            raise InvalidInputError(f"start_percent ({self.start_percent}) is after end_percent ({self.end_percent}).")
        if (self.start_step is None) != (self.end_step is None):
            raise InvalidInputError("give both start_step and end_step, or neither (then the percents are used).")
        if self.start_step is not None:
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in (self.start_step, self.end_step)):
                raise InvalidInputError(f"start_step/end_step must be step indices >= 0, got {self.start_step!r}, "
                                        f"{self.end_step!r}.")
            if self.start_step > self.end_step:
                raise InvalidInputError(f"start_step ({self.start_step}) is after end_step ({self.end_step}).")
        if not (isinstance(self.iterations, int) and not isinstance(self.iterations, bool)
                and 0 <= self.iterations <= 1000):
            raise InvalidInputError(f"iterations must be an integer from 0 to 1000, got {self.iterations!r}.")
        for name, low, high in (("lr", 0.0, 1e3), ("weight_decay", 0.0, 1e3), ("fft_ratio", 0.0, 2.0),
                                ("heatmap_sigma", 1e-3, 1e3)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and low <= v <= high):
                raise InvalidInputError(f"{name} must be a number in [{low:g}, {high:g}], got {v!r}.")

    def guided_steps(self, num_steps: int) -> list[int]:
        """0-based indices of the steps (of a ``num_steps``-step run) whose latent is optimised, ascending.

        >>> SGI2VConfig().guided_steps(50)[0], SGI2VConfig().guided_steps(50)[-1], len(SGI2VConfig().guided_steps(50))
        (5, 20, 16)
        """
        if self.iterations == 0 or num_steps <= 0:
            return []
        if self.start_step is not None:
            first, last = self.start_step, self.end_step
        else:
            first = math.ceil(self.start_percent * num_steps - 1e-9)
            last = math.floor(self.end_percent * num_steps + 1e-9)
        return list(range(max(first, 0), min(last, num_steps - 1) + 1))
