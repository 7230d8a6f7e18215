"""TrackDiffusion on native SVD: load the converted official weights, patch a MODEL with tracklets."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from ..data.errors import InvalidInputError
from ..models.checkpoints import MODELSCOPE_ADAPTER_FORMAT, SVD_DELTA_FORMAT, load_delta
from ..models.tiny_svd import files as tiny_svd_files
from ..models.trackgo.adapter import TRACKGO_FORMAT
from .patches.svd import SVDAdapterBundle, apply_trackdiffusion_svd, load_svd_adapter
from .patches.trackgo import TrackGoAdapterBundle, apply_trackgo, load_trackgo_adapter
from .progress import comfy_progress
from .types import CATEGORY, OVERFLOW_CHOICES, PointTrajectories, Tracklets, overflow_input

MODEL_FOLDER = "trackdiffusion"
# models/trackdiffusion/ holds converted deltas (or the official files, converted on load); the pack's own adapter
# for the tiny SVD is listed beside them (appended to the folder list, so a user's file of the same name wins).
if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (
        [os.path.join(folder_paths.models_dir, MODEL_FOLDER)], {".safetensors", ".sft"})
if str(tiny_svd_files.ADAPTERS) not in folder_paths.folder_names_and_paths[MODEL_FOLDER][0]:
    folder_paths.folder_names_and_paths[MODEL_FOLDER][0].append(str(tiny_svd_files.ADAPTERS))

TrackDiffusionAdapter = io.Custom("TRACKDIFFUSION_ADAPTER")


def _file_metadata(path: str) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # noqa: BLE001 (any unreadable file: load_delta explains what is wrong with it)
        return {}


def _file_format(path: str) -> str | None:
    return _file_metadata(path).get("format")


class LoadTrackDiffusionAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadTrackDiffusionAdapter",
            display_name="Load TrackDiffusion Adapter",
            category=CATEGORY,
            description="Adapter weights from models/trackdiffusion: the TrackDiffusion box modules (a delta made by "
            "`trackdiffusion weights convert`, or the official svd_stage2 UNet file, converted while loading), or a "
            "trained TrackGo TrackAdapter.",
            inputs=[io.Combo.Input("adapter_name", options=folder_paths.get_filename_list(MODEL_FOLDER))],
            outputs=[TrackDiffusionAdapter.Output(display_name="adapter")],
        )

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        path = folder_paths.get_full_path(MODEL_FOLDER, adapter_name)
        if path is None:  # removed since the list was made, or a name the list never had
            raise InvalidInputError(f"no adapter {adapter_name!r:.120} in models/{MODEL_FOLDER}.",
                                    fix="put the converted file there (trackdiffusion weights convert) and refresh "
                                    "the node's list.", source="Load TrackDiffusion Adapter")
        if _file_format(path) == TRACKGO_FORMAT:
            from safetensors.torch import load_file

            return io.NodeOutput(load_trackgo_adapter(load_file(path), _file_metadata(path)))
        tensors, metadata = load_delta(path, progress=comfy_progress())  # an official file is converted here
        if metadata.get("format") == MODELSCOPE_ADAPTER_FORMAT:
            raise InvalidInputError("this is the ModelScope (text-to-video) adapter; the patch here is for SVD.",
                                    fix="load the file converted from svd_stage2 instead.", source=adapter_name)
        if metadata.get("format") != SVD_DELTA_FORMAT:
            raise InvalidInputError(f"unrecognised adapter format {metadata.get('format')!r}.",
                                    fix="convert the official checkpoint with `trackdiffusion weights convert`.",
                                    source=adapter_name)
        return io.NodeOutput(load_svd_adapter(tensors, metadata))


class InstanceEnhancerPatch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="InstanceEnhancerPatch",
            display_name="TrackDiffusion Patch (SVD)",
            category=CATEGORY,
            description="Makes an SVD MODEL follow the tracklets: box tokens (position + colour per instance) fused "
            "into every spatial transformer. Frames, canvas and colours come from the tracklets; the latent must "
            "have the tracklets' frame count.",
            inputs=[
                io.Model.Input("model"),
                TrackDiffusionAdapter.Input("adapter"),
                Tracklets.Input("tracklets"),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="How strongly the boxes steer: 1 = as trained; 0 = the official no-box state "
                               "(the TrackDiffusion model with every box slot null); between, the box tokens are "
                               "blended towards the null ones."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Where in the schedule the boxes start to act (0 = first step); before it, "
                               "the no-box state."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Where the boxes stop acting; after it, the no-box state."),
                overflow_input(),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, adapter, tracklets, strength, start_percent, end_percent,
                more_than_20_objects="error") -> io.NodeOutput:
        if not isinstance(adapter, SVDAdapterBundle):
            raise InvalidInputError("this adapter is not a TrackDiffusion (box) adapter.",
                                    fix="connect it to TrackAdapter Patch (TrackGo) instead.")
        return io.NodeOutput(apply_trackdiffusion_svd(model, adapter, tracklets, strength=strength,
                                                      start_percent=start_percent, end_percent=end_percent,
                                                      overflow=OVERFLOW_CHOICES[more_than_20_objects]))


class TrackAdapterPatch(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackAdapterPatch",
            display_name="TrackAdapter Patch (TrackGo)",
            category=CATEGORY,
            description="TrackGo: the masked parts follow their arrows through a TrackAdapter in SVD's temporal "
            "self-attention. Needs a trained TrackAdapter: TrackGo released no weights.",
            inputs=[
                io.Model.Input("model"),
                PointTrajectories.Input("trajectories"),
                TrackDiffusionAdapter.Input("adapter", optional=True),
                io.Float.Input("tau", default=0.0, min=-10000.0, max=0.0, step=1.0,
                               tooltip="How much the unspecified area (outside the trajectories) may move, "
                               "TrackGo fig. 5: 0 = freely, -100 = partly suppressed, -10000 = static. It flattens "
                               "the temporal attention (unmasked logits divided by 1 + |tau| / 1024)."),
                io.Float.Input("alpha", default=0.2, min=0.0, max=1.0, step=0.01,
                               tooltip="Trajectory attention above which the original temporal attention is "
                               "masked out."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Scales the trajectory attention; 0 = the unpatched model."),
                io.Int.Input("point_size", default=4, min=1, max=64,
                             tooltip="Square size of each point in the conditioning video (as trained)."),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, trajectories, tau, alpha, strength, point_size, adapter=None) -> io.NodeOutput:
        if adapter is not None and not isinstance(adapter, TrackGoAdapterBundle):
            raise InvalidInputError("this adapter is a TrackDiffusion (box) adapter, not a TrackGo TrackAdapter.",
                                    fix="connect it to TrackDiffusion Patch (SVD) instead.")
        return io.NodeOutput(apply_trackgo(model, adapter, trajectories, tau=tau, alpha=alpha, strength=strength,
                                           point_size=point_size))
