"""Import-only torchvision stand-in for tests (see _standin.py for why)."""
from ._standin import StandInUnavailable, make_getattr

__version__ = "0.0.0+standin"

__getattr__ = make_getattr(__name__, submodules=("transforms",))
