"""Shared helper for the import-only torchvision stand-in used in tests.

ComfyUI imports torchvision at module load time (comfy.sd -> cosmos/ace models,
comfy_extras.nodes_wanmove) but our tests never run those code paths, and no
CPU torchvision build matches the pinned torch. Importing works; using anything
fails loudly instead of silently doing the wrong thing.
"""
import importlib


class StandInUnavailable(ImportError):
    """Raised when test code reaches real torchvision functionality."""


def make_getattr(module_name, submodules=()):
    def __getattr__(name):
        # Submodules are imported lazily so `from torchvision import transforms`
        # and `torchvision.transforms.functional` resolve to the stand-in modules.
        if name in submodules:
            return importlib.import_module(f"{module_name}.{name}")
        # Private/dunder probes (copy, pickle, inspect, pytest) expect AttributeError.
        if name.startswith("_"):
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        raise StandInUnavailable(
            f"torchvision is an import-only stand-in in tests: "
            f"{module_name}.{name} is not available"
        )

    return __getattr__
