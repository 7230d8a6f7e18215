"""Import-only stand-in for torchvision.transforms.functional."""
from .._standin import make_getattr

__getattr__ = make_getattr(__name__)
