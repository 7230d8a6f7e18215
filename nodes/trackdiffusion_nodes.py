"""TrackDiffusion on native SVD: load the converted official weights, patch a MODEL with tracklets."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io

from ..errors import InvalidInputError
from ..patching.comfy_svd import apply_trackdiffusion_svd, load_svd_adapter
from ..weights import MODELSCOPE_ADAPTER_FORMAT, SVD_DELTA_FORMAT, load_delta
from .types import CATEGORY, Tracklets

MODEL_FOLDER = "trackdiffusion"
# models/trackdiffusion/ holds converted deltas (or the official files, converted on load).
if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
    folder_paths.folder_names_and_paths[MODEL_FOLDER] = (
        [os.path.join(folder_paths.models_dir, MODEL_FOLDER)], {".safetensors", ".sft"})

TrackDiffusionAdapter = io.Custom("TRACKDIFFUSION_ADAPTER")


class LoadTrackDiffusionAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadTrackDiffusionAdapter",
            display_name="Load TrackDiffusion Adapter",
            category=CATEGORY,
            description="The TrackDiffusion box modules from models/trackdiffusion: a delta made by `trackdiffusion "
            "weights convert`, or the official svd_stage2 UNet file (converted while loading).",
            inputs=[io.Combo.Input("adapter_name", options=folder_paths.get_filename_list(MODEL_FOLDER))],
            outputs=[TrackDiffusionAdapter.Output(display_name="adapter")],
        )

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        tensors, metadata = load_delta(folder_paths.get_full_path_or_raise(MODEL_FOLDER, adapter_name))
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
                               tooltip="Scales the fuser gates; 0 = the unpatched model."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, adapter, tracklets, strength, start_percent, end_percent) -> io.NodeOutput:
        return io.NodeOutput(apply_trackdiffusion_svd(model, adapter, tracklets, strength=strength,
                                                      start_percent=start_percent, end_percent=end_percent))
