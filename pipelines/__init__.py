"""End-to-end samplers built on the backends (no ComfyUI).

* :mod:`.modelscope`: TrackDiffusion text-to-video (official ``main`` branch, "ModelScope" UNet3D) from a diffusers
  text-to-video folder (:class:`ModelScopeTrackDiffusion`).

Importing this package does not import diffusers; the public names are loaded lazily from the submodules.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "GenerationInterrupted",
    "ModelScopeTrackDiffusion",
    "normalized_guidance",
    "standard_guidance",
]

_LAZY = {name: "modelscope" for name in __all__}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
