"""One sampler for tracklet-conditioned video: ComfyUI's KSampler with the guidance TrackDiffusion expects."""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io
from comfy_extras.nodes_video_model import VideoLinearCFGGuidance

import nodes

from ..guidance import normalized_guidance
from .types import CATEGORY

GUIDANCE_MODES = ("linear per frame (SVD)", "normalized (TrackDiffusion ModelScope)")


class TrackDiffusionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackDiffusionSampler",
            display_name="TrackDiffusion Sampler",
            category=CATEGORY,
            description="Samples a (patched or plain) video MODEL. Linear per-frame CFG from min_cfg on the first "
            "frame to max_cfg on the last (SVD's own), or TrackDiffusion's normalized CFG. The unconditional half "
            "runs on null boxes when the model carries a TrackDiffusion patch.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive"),
                io.Conditioning.Input("negative"),
                io.Latent.Input("latent_image"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Int.Input("steps", default=25, min=1, max=10000),
                io.Float.Input("min_cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01),
                io.Float.Input("max_cfg", default=3.0, min=0.0, max=100.0, step=0.1, round=0.01),
                io.Combo.Input("guidance", options=list(GUIDANCE_MODES)),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="karras"),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01),
            ],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed, steps, min_cfg, max_cfg, guidance, sampler_name,
                scheduler, denoise) -> io.NodeOutput:
        if guidance == GUIDANCE_MODES[0]:
            guided = VideoLinearCFGGuidance().patch(model, min_cfg)[0]
        else:
            guided = model.clone()
            # The official pipeline applies no guidance at a scale <= 1: the conditional prediction alone.
            guided.set_model_sampler_cfg_function(
                lambda args: args["cond"] if args["cond_scale"] <= 1.0
                else normalized_guidance(args["uncond"], args["cond"], args["cond_scale"]))
        # common_ksampler brings ComfyUI's noise, progress bar, previews and interruption.
        latent = nodes.common_ksampler(guided, seed, steps, max_cfg, sampler_name, scheduler, positive, negative,
                                       latent_image, denoise=denoise)[0]
        return io.NodeOutput(latent)
