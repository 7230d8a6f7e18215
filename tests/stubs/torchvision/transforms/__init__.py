"""Import-only stand-in for torchvision.transforms."""
from .._standin import make_getattr

__getattr__ = make_getattr(__name__, submodules=("functional",))
