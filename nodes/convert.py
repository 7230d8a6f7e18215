"""Translation between ComfyUI tensors (IMAGE [B, H, W, C] float 0..1, MASK [B, H, W]) and the core's numpy arrays."""

from __future__ import annotations

import numpy as np
import torch


def image_to_numpy(image: torch.Tensor) -> np.ndarray:
    """IMAGE [B, H, W, C] float -> RGB uint8 [B, H, W, 3]."""
    arr = image[..., :3].detach().cpu().float().clamp(0, 1).numpy()
    return (arr * 255.0 + 0.5).astype(np.uint8)


def numpy_to_image(frames: np.ndarray) -> torch.Tensor:
    """RGB uint8 [B, H, W, 3] -> IMAGE float32 [B, H, W, 3] in 0..1."""
    return torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0
