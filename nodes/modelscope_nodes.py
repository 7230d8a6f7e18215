"""TrackDiffusion text-to-video (the official ModelScope / UNet3D version): load the diffusers folder, sample.

Thin wrappers around :class:`~trackdiffusion.models.modelscope.pipeline.ModelScopeTrackDiffusion`: the text-to-video
folder comes from ComfyUI's ``models/diffusers`` (any folder with a ``model_index.json``), the optional official
``modelscope_ft`` UNet file (or its converted adapter) from ``models/trackdiffusion``.
"""

from __future__ import annotations

import os

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..data.errors import InvalidInputError
from ..models.modelscope.pipeline import GUIDANCE_MODES, MAX_FRAMES, SCHEDULERS, ModelScopeTrackDiffusion
from .trackdiffusion_nodes import MODEL_FOLDER  # registers models/trackdiffusion
from .types import CATEGORY, OVERFLOW_CHOICES, Tracklets, overflow_input

DIFFUSERS_FOLDER = "diffusers"
NO_UNET = "none (the folder's UNet)"
DTYPES = ("auto", "fp16", "bf16", "fp32")

ModelScopeTrackDiffusionType = io.Custom("MODELSCOPE_TRACKDIFFUSION")


def diffusers_folders() -> list[str]:
    """Folders under ComfyUI's models/diffusers that hold a diffusers pipeline (``model_index.json``)."""
    found: list[str] = []
    for root in folder_paths.get_folder_paths(DIFFUSERS_FOLDER):
        if not os.path.isdir(root):
            continue
        for here, dirs, files in os.walk(root, followlinks=True):
            if "model_index.json" in files:
                found.append(os.path.relpath(here, root).replace(os.sep, "/"))
                dirs[:] = []  # a pipeline's own subfolders are not pipelines
    return sorted(set(found))


def resolve_diffusers_folder(name: str) -> str:
    for root in folder_paths.get_folder_paths(DIFFUSERS_FOLDER):
        path = os.path.join(root, name)
        if os.path.isfile(os.path.join(path, "model_index.json")):
            return path
    raise InvalidInputError(f"no diffusers folder '{name}' with a model_index.json under models/diffusers.",
                            fix="Put the text-to-video folder (e.g. pengxiang/TrackDiffusion_Pretrain) in "
                                "ComfyUI/models/diffusers and refresh.", source="Load ModelScope TrackDiffusion")


class LoadModelScopeTrackDiffusion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadModelScopeTrackDiffusion",
            display_name="Load ModelScope TrackDiffusion (text-to-video)",
            category=CATEGORY,
            description="TrackDiffusion's text-to-video model (the official ModelScope/UNet3D version): a diffusers "
            "text-to-video folder from models/diffusers (unet, vae, CLIP-L text_encoder, tokenizer, scheduler, e.g. "
            "pengxiang/TrackDiffusion_Pretrain) plus, optionally, the official modelscope_ft UNet file (or its "
            "converted adapter) from models/trackdiffusion.",
            inputs=[
                io.Combo.Input("t2v_folder", options=diffusers_folders(),
                               tooltip="A folder under models/diffusers with a model_index.json."),
                io.Combo.Input("unet_name", options=[NO_UNET, *folder_paths.get_filename_list(MODEL_FOLDER)],
                               default=NO_UNET,
                               tooltip="modelscope_ft/unet/diffusion_pytorch_model.safetensors (keep its config.json "
                               "beside it) or the converted ModelScope adapter; none = the folder's UNet must "
                               "already be TrackDiffusion's."),
                io.Combo.Input("dtype", options=list(DTYPES), default="auto",
                               tooltip="auto: fp16 where ComfyUI would use it, else fp32."),
            ],
            outputs=[ModelScopeTrackDiffusionType.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, t2v_folder, unet_name, dtype) -> io.NodeOutput:
        folder = resolve_diffusers_folder(t2v_folder)
        unet = None if unet_name == NO_UNET else folder_paths.get_full_path_or_raise(MODEL_FOLDER, unet_name)
        if dtype == "auto":
            device = comfy.model_management.get_torch_device()
            dtype = "fp16" if comfy.model_management.should_use_fp16(device) else "fp32"
        pipe = ModelScopeTrackDiffusion.from_folders(folder, unet, dtype=dtype,
                                                     device=comfy.model_management.unet_offload_device())
        return io.NodeOutput(pipe)


class ModelScopeTrackDiffusionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="ModelScopeTrackDiffusionSampler",
            display_name="ModelScope TrackDiffusion Sampler",
            category=CATEGORY,
            description="Text-to-video that follows the tracklets: each object's box per frame, its label as the "
            "category text, its slot (id order) as its identity. At most 16 frames and 20 objects.",
            inputs=[
                ModelScopeTrackDiffusionType.Input("model"),
                Tracklets.Input("tracklets"),
                io.String.Input("prompt", multiline=True, default="", tooltip="The video caption."),
                io.String.Input("negative_prompt", multiline=True, default="",
                                tooltip="Text of the unconditional half (official: empty)."),
                io.Int.Input("num_frames", default=0, min=0, max=MAX_FRAMES,
                             tooltip=f"0 = the tracklets' frame count (at most {MAX_FRAMES}); the motion is "
                             "resampled."),
                io.Int.Input("width", default=384, min=64, max=2048, step=8),
                io.Int.Input("height", default=256, min=64, max=2048, step=8),
                io.Int.Input("steps", default=50, min=1, max=1000),
                io.Float.Input("cfg", default=1.2, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip="Guidance scale; <= 1 = no guidance. The official demo: 1.2 normalized; the "
                               "paper: 5.0."),
                io.Combo.Input("guidance", options=list(GUIDANCE_MODES), default="normalized",
                               tooltip="normalized: the official dynamic scale (s - 1) * |eps_c| / |eps_c - eps_u|; "
                               "standard: eps_u + s * (eps_c - eps_u)."),
                io.Combo.Input("scheduler", options=list(SCHEDULERS), default="pndm",
                               tooltip="default = the folder's scheduler; pndm = the official demo; dpm++ = the paper."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                overflow_input(),
            ],
            outputs=[io.Image.Output(display_name="images")],
        )

    @classmethod
    def execute(cls, model, tracklets, prompt, negative_prompt, num_frames, width, height, steps, cfg, guidance,
                scheduler, seed, more_than_20_objects="error") -> io.NodeOutput:
        if not isinstance(model, ModelScopeTrackDiffusion):
            raise InvalidInputError("the model input is not a ModelScope TrackDiffusion model.",
                                    fix="Connect Load ModelScope TrackDiffusion.")
        mm = comfy.model_management
        device = mm.get_torch_device()
        if device.type != "cpu":
            mm.free_memory(model.memory_bytes() + mm.minimum_inference_memory(), device)
        pbar = comfy.utils.ProgressBar(steps)
        try:
            frames = model.generate(
                prompt, tracklets, negative_prompt=negative_prompt, num_frames=num_frames or None, height=height,
                width=width, steps=steps, guidance_scale=cfg, guidance=guidance, seed=seed,
                callback=lambda step, total: pbar.update_absolute(step, total),
                interrupt=mm.throw_exception_if_processing_interrupted,
                scheduler=scheduler, device=device, offload_device=mm.unet_offload_device(),
                overflow=OVERFLOW_CHOICES[more_than_20_objects])
        finally:
            mm.soft_empty_cache()
        return io.NodeOutput(frames)
