"""TrackDiffusion conditioning modules in plain torch (no ComfyUI, no diffusers, no torchvision).

State-dict keys and shapes match the official checkpoints (``pengxiang/trackdiffusion_ytvis``): the SVD
``position_net`` and fusers, and the main-branch (ModelScope) position net, fusers, injectors and frame embeddings.
Every module takes ``operations=None`` (see :mod:`.ops`) so ComfyUI can pass its casting layers.
"""

from .attention import GEGLU, Attention, FeedForward
from .fourier import FourierBoxEmbedder
from .frame_embedding import FrameEmbedding
from .fuser import SVD_FUSER_CHANNELS, GatedSelfAttentionDense
from .injector import GatedCrossAttentionTrackFuse, instance_roi_features
from .ops import TORCH_OPERATIONS, cast_like, count_parameters, resolve_operations, tanh_gate
from .position_net import ModelScopePositionNet, SVDBoxPositionNet
from .roi_align import roi_align

__all__ = [
    "GEGLU",
    "SVD_FUSER_CHANNELS",
    "TORCH_OPERATIONS",
    "Attention",
    "FeedForward",
    "FourierBoxEmbedder",
    "FrameEmbedding",
    "GatedCrossAttentionTrackFuse",
    "GatedSelfAttentionDense",
    "ModelScopePositionNet",
    "SVDBoxPositionNet",
    "cast_like",
    "count_parameters",
    "instance_roi_features",
    "resolve_operations",
    "roi_align",
    "tanh_gate",
]
