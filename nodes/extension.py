"""The pack's ComfyUI extension: the list of its V3 nodes. Imported only by ComfyUI (through the package's
``comfy_entrypoint``); node ids are the workflow identity and stay stable."""

from comfy_api.latest import ComfyExtension, io

from .dataset_nodes import SaveTrackingDataset
from .demo_nodes import TrackDiffusionDemo
from .editor_nodes import EDITOR_NODES
from .example_inputs import copy_example_inputs
from .modelscope_nodes import LoadModelScopeTrackDiffusion, ModelScopeTrackDiffusionSampler
from .sampler_nodes import TrackDiffusionSampler
from .tiny_svd_nodes import LoadTinySVD
from .trackdiffusion_nodes import InstanceEnhancerPatch, LoadTrackDiffusionAdapter, TrackAdapterPatch
from .tracklet_nodes import LoadTracklets, TrackletsToTracks, VisualizeTracklets
from .trajectory_nodes import PointTrajectoryBuilder
from .video_tracking_nodes import PointTrajectoriesFromVideo, TrackFromVideo

NODES: list[type[io.ComfyNode]] = [LoadTracklets, TrackletsToTracks, VisualizeTracklets, PointTrajectoryBuilder,
                                   LoadTrackDiffusionAdapter, InstanceEnhancerPatch, TrackAdapterPatch,
                                   TrackDiffusionSampler, SaveTrackingDataset, LoadModelScopeTrackDiffusion,
                                   ModelScopeTrackDiffusionSampler, TrackDiffusionDemo, LoadTinySVD, TrackFromVideo,
                                   PointTrajectoriesFromVideo, *EDITOR_NODES]


class TrackDiffusionExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI calls this once, when it loads the pack (v0.8.0 never calls ComfyExtension.on_load)
        copy_example_inputs()
        return list(NODES)
