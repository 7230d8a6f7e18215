"""Layer factories and casting helpers shared by every TrackDiffusion module.

Every module in this package takes ``operations=None``: a namespace with ``Linear``, ``LayerNorm`` and ``Embedding``
classes that have ``torch.nn``'s constructor signatures (``device=`` and ``dtype=`` keywords included). ``None`` means
plain ``torch.nn``. ComfyUI passes ``comfy.ops.manual_cast`` (or another ``comfy.ops`` family) whose layers cast their
weights to the input's dtype and device inside ``forward``; that is what makes fp16/bf16 inference and lowvram
offloading work without converting the state dict.

Layers built from ``operations`` cast themselves. Bare ``nn.Parameter`` s (tanh gates, null features, frame embeddings)
are not layers, so the modules cast them at the point of use with :func:`cast_like` (``param.to(x)``), never in
``__init__`` or with ``.to()`` on the module.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

#: The default layer factory: plain ``torch.nn`` layers (weights must already match the input dtype/device).
TORCH_OPERATIONS = SimpleNamespace(Linear=nn.Linear, LayerNorm=nn.LayerNorm, Embedding=nn.Embedding, Conv2d=nn.Conv2d)


def resolve_operations(operations: Any | None) -> Any:
    """Return ``operations`` itself, or :data:`TORCH_OPERATIONS` when it is ``None``."""
    return TORCH_OPERATIONS if operations is None else operations


def cast_like(tensor: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``tensor`` with the dtype and device of ``reference`` (a no-op when they already match).

    Used for bare parameters, so that weights kept in fp32 on the CPU (lowvram/offload) still work on an fp16 GPU input.
    """
    return tensor.to(reference)


def tanh_gate(alpha: torch.Tensor, strength: float | torch.Tensor, reference: torch.Tensor) -> torch.Tensor | None:
    """The residual gate ``strength * tanh(alpha)``, or ``None`` when it is exactly zero.

    ``None`` tells the caller to skip the branch and keep its input tensor untouched, so a zero gate (the initial value
    of every TrackDiffusion gate) or ``strength == 0`` gives a bit-identical output instead of ``x + 0.0 * y``
    (which is not an identity when ``y`` holds inf/NaN, and costs the whole branch).

    Args:
        alpha: 0-dim gate parameter.
        strength: a Python number, or a tensor broadcastable to the residual (e.g. ``[B*F, 1, 1]``); a tensor is never
            treated as zero (checking it would need a device sync per sample).
        reference: the tensor the gated branch is added to; the gate is cast to its dtype and device.

    Returns:
        0-dim (or broadcastable) tensor, or ``None``.
    """
    if not isinstance(strength, torch.Tensor) and float(strength) == 0.0:
        return None
    # While training, a zero gate must still carry a gradient, or a freshly initialised gate could never open.
    training = torch.is_grad_enabled() and alpha.requires_grad
    if not training and alpha.device.type != "meta" and float(alpha.detach()) == 0.0:
        return None
    gate = torch.tanh(cast_like(alpha, reference))
    if isinstance(strength, torch.Tensor):
        return gate * cast_like(strength, reference)
    return gate if float(strength) == 1.0 else gate * float(strength)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (works on the ``meta`` device: only shapes are read)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
