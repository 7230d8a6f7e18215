"""One sampler for tracklet-conditioned video: ComfyUI's KSampler with the guidance TrackDiffusion expects."""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io
from comfy_extras.nodes_video_model import VideoLinearCFGGuidance

import nodes

from ..models.guidance.cfg import normalized_guidance
from ..models.guidance.sgi2v import DEFAULT_LAYERS
from .patches.sgi2v import apply_sgi2v
from .progress import comfy_progress
from .types import CATEGORY, Tracklets

GUIDANCE_MODES = ("linear per frame (SVD)", "normalized (TrackDiffusion ModelScope)")
TRAJECTORY_MODES = ("off", "SG-I2V boxes (training-free)")
LAYERS_DEFAULT = ", ".join(DEFAULT_LAYERS)


class TrackDiffusionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackDiffusionSampler",
            display_name="TrackDiffusion Sampler",
            category=CATEGORY,
            description="Samples a (patched or plain) video MODEL. Linear per-frame CFG from min_cfg on the first "
            "frame to max_cfg on the last (SVD's own), or TrackDiffusion's normalized CFG. The unconditional half "
            "runs on null boxes when the model carries a TrackDiffusion patch. trajectory_guidance 'SG-I2V' steers "
            "the tracklets' boxes on stock SVD without any adapter (SG-I2V, ICLR 2025): slower (about 2-2.5x with "
            "the defaults) and it needs the tracklets input.",
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
                # Optional, so that workflows saved before these inputs existed still validate and run unchanged.
                io.Combo.Input("trajectory_guidance", options=list(TRAJECTORY_MODES), default=TRAJECTORY_MODES[0],
                               optional=True, tooltip="SG-I2V: optimise the noisy latent so that each box's "
                               "features follow its track (no adapter needed). Needs tracklets."),
                Tracklets.Input("tracklets", optional=True, tooltip="the boxes to follow (SG-I2V mode)"),
                io.Float.Input("sgi2v_start", default=0.1, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip="first guided step, as a fraction of the steps (SG-I2V: 0.1 = step 5 of 50)"),
                io.Float.Input("sgi2v_end", default=0.4, min=0.0, max=1.0, step=0.01, optional=True,
                               tooltip="last guided step, as a fraction of the steps (SG-I2V: 0.4 = step 20 of 50)"),
                io.Int.Input("sgi2v_iterations", default=5, min=0, max=100, optional=True,
                             tooltip="AdamW updates of the latent per guided step (0 = off)"),
                io.Float.Input("sgi2v_lr", default=0.21, min=0.0, max=10.0, step=0.01, optional=True),
                io.Float.Input("sgi2v_fft_ratio", default=0.5, min=0.0, max=1.0, step=0.05, optional=True,
                               tooltip="Butterworth ratio: the optimised latent keeps only frequencies below it"),
                io.Float.Input("sgi2v_heatmap_sigma", default=0.4, min=0.01, max=10.0, step=0.05, optional=True,
                               tooltip="Gaussian box weighting, in box half-sizes"),
                io.String.Input("sgi2v_layers", default=LAYERS_DEFAULT, optional=True,
                                tooltip="up-path transformers whose self-attention gets frame-0 keys/values"),
                io.Float.Input("sgi2v_memory_budget_gb", default=0.0, min=0.0, max=1024.0, step=1.0, optional=True,
                               tooltip="GPU memory the optimisation may use; 0 = what is free. Layers are "
                               "recomputed (activation checkpointing) when it would not fit."),
            ],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, seed, steps, min_cfg, max_cfg, guidance, sampler_name,
                scheduler, denoise, trajectory_guidance=TRAJECTORY_MODES[0], tracklets=None, sgi2v_start=0.1,
                sgi2v_end=0.4, sgi2v_iterations=5, sgi2v_lr=0.21, sgi2v_fft_ratio=0.5, sgi2v_heatmap_sigma=0.4,
                sgi2v_layers=LAYERS_DEFAULT, sgi2v_memory_budget_gb=0.0) -> io.NodeOutput:
        for name, value, options in (("guidance", guidance, GUIDANCE_MODES),
                                     ("trajectory_guidance", trajectory_guidance, TRAJECTORY_MODES)):
            if value not in options:  # ComfyUI checks combos in the UI and API, not in a direct call
                from ..data.errors import InvalidInputError

                raise InvalidInputError(f"unknown {name} {value!r}.", fix=f"use one of: {', '.join(options)}.")
        if guidance == GUIDANCE_MODES[0]:
            guided = VideoLinearCFGGuidance().patch(model, min_cfg)[0]
        else:
            guided = model.clone()
            # The official pipeline applies no guidance at a scale <= 1: the conditional prediction alone.
            guided.set_model_sampler_cfg_function(
                lambda args: args["cond"] if args["cond_scale"] <= 1.0
                else normalized_guidance(args["uncond"], args["cond"], args["cond_scale"]))
        if trajectory_guidance == TRAJECTORY_MODES[1]:
            if tracklets is None:
                from ..data.errors import InvalidInputError

                raise InvalidInputError("trajectory_guidance SG-I2V needs the tracklets input.",
                                        fix="connect Load Tracklets (or the Tracklet Editor) to tracklets.")
            guided = apply_sgi2v(guided, tracklets, layers=sgi2v_layers, start_percent=sgi2v_start,
                                 end_percent=sgi2v_end, iterations=sgi2v_iterations, lr=sgi2v_lr,
                                 fft_ratio=sgi2v_fft_ratio, heatmap_sigma=sgi2v_heatmap_sigma,
                                 memory_budget_gb=sgi2v_memory_budget_gb or None,
                                 progress=comfy_progress())  # the optimisation iterations (the sampler shows steps)
        # common_ksampler brings ComfyUI's noise, progress bar, previews and interruption.
        latent = nodes.common_ksampler(guided, seed, steps, max_cfg, sampler_name, scheduler, positive, negative,
                                       latent_image, denoise=denoise)[0]
        return io.NodeOutput(latent)
