"""Official TrackDiffusion checkpoints: inspection, conversion to a ComfyUI-named delta, loading.

See :mod:`.convert` (API) and :mod:`.svd_keys` (the diffusers <-> ComfyUI SVD key map).
"""

from .convert import (
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
    ConvertResult,
    convert_checkpoint,
    convert_modelscope,
    convert_svd,
    inspect_checkpoint,
    load_delta,
)

__all__ = [
    "FORMAT_VERSION", "KIND_COMFYUI_SVD", "KIND_MODELSCOPE_ADAPTER", "KIND_STOCK_SVD", "KIND_STOCK_UNET3D",
    "KIND_SVD_DELTA", "KIND_TD_MODELSCOPE", "KIND_TD_SVD", "KIND_UNKNOWN", "MODELSCOPE_ADAPTER_FORMAT",
    "SVD_DELTA_FORMAT", "CheckpointInfo", "ConvertResult", "convert_checkpoint", "convert_modelscope", "convert_svd",
    "inspect_checkpoint", "load_delta",
]
