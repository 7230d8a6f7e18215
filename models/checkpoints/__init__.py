"""Official TrackDiffusion checkpoints: inspection, conversion to a ComfyUI-named delta, loading.

See :mod:`.inspect` (what a file is), :mod:`.plans` (what each kind must contain), :mod:`.convert` (streaming
conversion and :func:`load_delta`) and :mod:`trackdiffusion.models.svd.naming` (the diffusers <-> ComfyUI SVD key map).
"""

from .convert import ConvertResult, convert_checkpoint, convert_modelscope, convert_svd, load_delta
from .inspect import (
    FORMAT_VERSION,
    KIND_COMFYUI_SVD,
    KIND_MODELSCOPE_ADAPTER,
    KIND_STOCK_SVD,
    KIND_STOCK_UNET3D,
    KIND_SVD_DELTA,
    KIND_TD_MODELSCOPE,
    KIND_TD_SVD,
    KIND_UNKNOWN,
    MODELSCOPE_ADAPTER_FORMAT,
    SVD_DELTA_FORMAT,
    CheckpointInfo,
    inspect_checkpoint,
)

__all__ = [
    "FORMAT_VERSION", "KIND_COMFYUI_SVD", "KIND_MODELSCOPE_ADAPTER", "KIND_STOCK_SVD", "KIND_STOCK_UNET3D",
    "KIND_SVD_DELTA", "KIND_TD_MODELSCOPE", "KIND_TD_SVD", "KIND_UNKNOWN", "MODELSCOPE_ADAPTER_FORMAT",
    "SVD_DELTA_FORMAT", "CheckpointInfo", "ConvertResult", "convert_checkpoint", "convert_modelscope", "convert_svd",
    "inspect_checkpoint", "load_delta",
]
