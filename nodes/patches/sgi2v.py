"""SG-I2V (training-free box guidance) on ComfyUI's native SVD MODEL, through ModelPatcher only.

Where it hooks in, and why:

- **the latent update** is a keyed ``PREDICT_NOISE`` wrapper. It runs once per model evaluation with the sampler's
  own latent ``x``; at a guided step it optimises a copy of ``x`` (the conditional half of the CFG batch only, see
  below), applies the high-frequency reset and writes the result back into ``x`` *in place* before the normal
  prediction. The sampler then continues from the guided latent, exactly as SG-I2V's pipeline does before its
  scheduler step, with any k-diffusion sampler and with ``nodes.common_ksampler`` unchanged (so TrackDiffusion
  Sampler only has to patch its MODEL). First-order samplers (euler, the default, euler_ancestral, dpmpp_2m, ...) see
  the guided latent exactly; samplers that evaluate twice per step are guided at their first evaluation of each
  scheduled sigma. A keyed ``SAMPLER_SAMPLE`` wrapper creates the per-run state (the sigma schedule, which steps are
  done) and refuses latents with a noise mask (their ``x`` is a copy the sampler never sees).
- **the features** come from object patches on ``attn1.forward`` of the *spatial* ``transformer_blocks[0]`` of the
  chosen output-block transformers (``output_blocks.7.1`` and ``output_blocks.8.1`` = diffusers up_blocks[2]
  attentions 1 and 2). Those modules are only ever called for spatial tokens, so the temporal ``time_stack`` blocks
  are untouched. As in SG-I2V's official code, the feature is a side branch: every frame's queries attend to frame
  0's keys and values (detached), and that attention's output is recorded before ``to_out``; attn1 itself then runs
  with its own keys and values, so recording changes nothing downstream. The patch is inert unless the call's
  ``transformer_options`` carries this run's capture object, which only the optimisation forward adds: normal
  denoising, and the model with guidance off, compute exactly what the unpatched model computes.
- **the optimisation forward** is ``comfy.samplers.calc_cond_batch`` on the positive conds only, so conds,
  ``num_video_frames``, hooks, other packs' wrappers and patches (e.g. TrackDiffusion's) apply as in a normal call.
  After the last recorded layer a private exception ends the forward (the rest of the UNet never runs).
- **autograd inside ComfyUI**: sampling runs under ``torch.inference_mode``; the optimisation leaves it locally and
  enables grad. Weights loaded to the GPU during sampling are inference tensors that autograd cannot save, so those
  (only those) are swapped, one at a time, for normal tensors with the same values (no second copy of the UNet stays);
  weights that require grad are frozen for the optimisation and restored after. The forward runs in the model's own
  dtype (fp16/bf16 on GPU, with dynamic loss scaling for fp16); the latent and AdamW's state stay float32.
- **memory**: at 576x1024x14 the activations autograd keeps for the partial forward are about 30 GiB in fp16 (mostly
  the level-0/1 spatio-temporal transformers). With ``checkpointing="auto"`` the transformers whose estimated
  activations do not fit the memory budget (free device memory, or ``memory_budget_gb``) run under non-reentrant
  ``torch.utils.checkpoint`` during the optimisation forward only (largest first; an object patch on each
  ``SpatialVideoTransformer.forward`` that passes through otherwise), trading recomputation for memory as SG-I2V's
  gradient checkpointing does.
"""

from __future__ import annotations

import functools
import logging
import math
import types
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ...data.errors import InvalidInputError
from ...models.guidance.sgi2v import (
    DEFAULT_LAYERS,
    LossScaler,
    SGI2VConfig,
    build_alignment_targets,
    latent_boxes_from_tracklets,
    optimise_latent,
)

log = logging.getLogger(__name__)

PATCH_KEY = "trackdiffusion_sgi2v"
RUN_KEY = "trackdiffusion_sgi2v_run"  # per-run state, in the sampler's model_options["transformer_options"]
CAPTURE_KEY = "trackdiffusion_sgi2v_capture"  # present only in the optimisation forward's transformer_options


class _StopForward(Exception):
    """Raised by the last recorded layer to end the optimisation forward early; never escapes this module."""


@dataclass(eq=False)
class _Capture:
    """What the patched attn1 layers read and write during one optimisation forward (a plain object, so that
    ComfyUI's nested-dict merges of transformer_options keep it by reference)."""

    layers: tuple[str, ...]
    last: str
    frames: int
    features: dict = field(default_factory=dict)
    stop: bool = True  # end the forward after the last recorded layer (False: run the whole UNet, tests)
    checkpoint: frozenset = frozenset()  # spatio-temporal transformers recomputed in the backward


@dataclass(eq=False)
class _Run:
    sigmas: list[float]
    guided: set[int]
    cursor: int = 0
    done: set[int] = field(default_factory=set)
    targets: dict = field(default_factory=dict)
    checkpoint: frozenset | None = None
    iterations_done: int = 0  # optimisation iterations of this run so far, for ``progress``
    iterations_total: int = 0

    def step_of(self, sigma: float) -> int | None:
        """The index of the scheduled step whose sigma this is (searching forward from the last one found)."""
        for i in range(self.cursor, len(self.sigmas) - 1):
            s = self.sigmas[i]
            if abs(s - sigma) <= 1e-5 * max(1.0, abs(s)):
                self.cursor = i
                return i
        return None


def _attn1_forward(layer: str, previous):
    """Spatial attn1.forward. While a capture is active, a side branch attends every frame's queries to frame 0's
    keys and values (detached, as SG-I2V's official code) and records that attention's output before ``to_out``;
    then attn1 runs as usual (the previous forward: another pack's patch, or the class's own), so recording never
    changes what the UNet computes."""

    def run_attn1(self, x, context, value, mask, transformer_options):
        if previous is not None:
            return previous(x, context=context, value=value, mask=mask, transformer_options=transformer_options)
        return type(self).forward(self, x, context=context, value=value, mask=mask,
                                  transformer_options=transformer_options)

    def forward(self, x, context=None, value=None, mask=None, transformer_options={}):  # noqa: B006 (ComfyUI's)
        capture = transformer_options.get(CAPTURE_KEY)
        if capture is None or layer not in capture.layers:
            return run_attn1(self, x, context, value, mask, transformer_options)
        capture.features[layer] = _frame0_branch(self, x, context, value, mask, capture.frames, transformer_options)
        if capture.stop and layer == capture.last:
            raise _StopForward  # the loss has every feature; the rest of the UNet does not affect it
        return run_attn1(self, x, context, value, mask, transformer_options)

    return forward


def _frame0_branch(attn, x, context, value, mask, frames: int, transformer_options: dict) -> torch.Tensor:
    """SG-I2V's feature: softmax(q_f k_0^T) v_0 with frame 0's keys and values detached (no gradient reaches frame 0
    through them), before the output projection; averaged over the CFG chunks present. Returns [F, C, h, w]."""
    from comfy.ldm.modules import attention

    bt, hw, _ = x.shape
    chunks = bt // frames
    ctx = x if context is None else context
    val = ctx if value is None else value
    q = attn.to_q(x)
    # frame 0 of every chunk, [chunks, hw, c], detached: no gradient reaches it through the keys and values
    k = attn.to_k(ctx.reshape(chunks, frames, *ctx.shape[1:])[:, 0].detach())
    v = attn.to_v(val.reshape(chunks, frames, *val.shape[1:])[:, 0].detach())
    if mask is None:
        out = attention.optimized_attention(q.reshape(chunks, frames * hw, q.shape[-1]), k, v, attn.heads,
                                            attn_precision=attn.attn_precision,
                                            transformer_options=transformer_options)
    else:  # keep the caller's mask shape: repeat frame 0's keys and values per frame
        out = attention.optimized_attention_masked(q, k.repeat_interleave(frames, 0), v.repeat_interleave(frames, 0),
                                                   attn.heads, mask, attn_precision=attn.attn_precision,
                                                   transformer_options=transformer_options)
    h, w = transformer_options["activations_shape"][-2:]
    return out.reshape(chunks, frames, h, w, out.shape[-1]).mean(0).permute(0, 3, 1, 2)


def _svt_forward(name: str, previous):
    """SpatialVideoTransformer.forward that runs under activation checkpointing in the optimisation forward when the
    run's plan says so; otherwise exactly the previous forward."""

    def forward(self, x, context=None, time_context=None, timesteps=None, image_only_indicator=None,
                transformer_options={}):  # noqa: B006 (ComfyUI's signature)
        call = previous if previous is not None else functools.partial(type(self).forward, self)
        capture = transformer_options.get(CAPTURE_KEY)
        if capture is not None and name in capture.checkpoint and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(call, x, context, time_context, timesteps, image_only_indicator, transformer_options,
                              use_reentrant=False)
        return call(x, context, time_context, timesteps, image_only_indicator, transformer_options)

    return forward


# Activations autograd keeps for one SpatialVideoTransformer (spatial + temporal block, flash-style attention), in
# units of its input tensor (frames x tokens x channels); measured on SVD's layout. Res blocks add about 30 %.
SVT_SAVED_FACTOR = 56.0
RESBLOCK_OVERHEAD = 1.3


def _transformer_scales(diffusion_model) -> list[tuple[str, int, int]]:
    """(name, channels, downsampling factor) of every SpatialVideoTransformer, in execution order."""
    from comfy.ldm.modules.attention import SpatialVideoTransformer
    from comfy.ldm.modules.diffusionmodules.openaimodel import Downsample, Upsample

    out, ds = [], 1
    groups = [("input_blocks", diffusion_model.input_blocks), ("middle_block", [diffusion_model.middle_block]),
              ("output_blocks", diffusion_model.output_blocks)]
    for prefix, blocks in groups:
        for i, block in enumerate(blocks):
            for j, layer in enumerate(block):
                if isinstance(layer, SpatialVideoTransformer):
                    name = f"middle_block.{j}" if prefix == "middle_block" else f"{prefix}.{i}.{j}"
                    out.append((name, layer.in_channels, ds))
                elif isinstance(layer, Downsample):
                    ds *= 2
                elif isinstance(layer, Upsample):
                    ds = max(ds // 2, 1)
    return out


def plan_checkpointing(scales, stop: str, frames: int, height: int, width: int, element_size: int,
                       budget: float | None, mode: str = "auto") -> frozenset:
    """Which transformers to recompute in the backward so that the optimisation forward's activations fit ``budget``
    bytes ("auto"; largest first), all of them ("all") or none ("off"). ``stop``, the transformer where the forward
    ends, is never checkpointed. Returns the names."""
    names = [n for n, _, _ in scales]
    if mode == "off" or stop not in names:
        return frozenset()
    run = scales[: names.index(stop)]  # the ones before the stop run completely
    if mode == "all":
        return frozenset(n for n, _, _ in run)
    sizes = {n: SVT_SAVED_FACTOR * frames * math.ceil(height / ds) * math.ceil(width / ds) * c * element_size
             for n, c, ds in run}
    total = RESBLOCK_OVERHEAD * sum(sizes.values())
    if budget is None or total <= budget:
        return frozenset()
    chosen: list[str] = []
    for n in sorted(sizes, key=sizes.get, reverse=True):
        chosen.append(n)
        if total - sum(sizes[c] for c in chosen) + max(sizes[c] for c in chosen) <= budget:
            break
    return frozenset(chosen)


def _activation_budget(device, memory_budget_gb: float | None) -> float | None:
    """Bytes the optimisation forward may keep: the budget minus what is allocated now (CUDA), or 90 % of the free
    device memory; None (no limit) on the CPU without a budget."""
    if device.type == "cuda":
        allocated = torch.cuda.memory_allocated(device)
        if memory_budget_gb is not None:
            return memory_budget_gb * 2**30 - allocated - 2**30
        import comfy.model_management

        return 0.9 * comfy.model_management.get_free_memory(device)
    if memory_budget_gb is not None:
        return memory_budget_gb * 2**30
    return None


def _resolve_layers(diffusion_model, layers: tuple[str, ...]) -> tuple[list[tuple[str, torch.nn.Module]], str]:
    """(layer, its spatial attn1) for each requested transformer, and the layer the forward reaches last."""
    from comfy.ldm.modules.attention import SpatialTransformer

    order = {}
    for index, (name, module) in enumerate(diffusion_model.named_modules()):
        if isinstance(module, SpatialTransformer):
            order[name] = (index, module)
    available = [n for n in order if n.startswith("output_blocks.")]
    out = []
    for layer in layers:
        if layer not in order:
            raise InvalidInputError(f"this MODEL has no spatial transformer {layer!r}.",
                                    fix=f"use transformers of the UNet's up path: {', '.join(available) or 'none'} "
                                    f"(SG-I2V's are {', '.join(DEFAULT_LAYERS)}).", source="SG-I2V layers")
        out.append((layer, order[layer][1].transformer_blocks[0].attn1))
    last = max(layers, key=lambda n: order[n][0])
    return out, last


def _modules_of(guider) -> list[torch.nn.Module]:
    modules, seen = [], set()
    for m in [guider.inner_model] + [getattr(p, "model", None) for p in getattr(guider, "loaded_models", []) or []]:
        if isinstance(m, torch.nn.Module) and id(m) not in seen:
            seen.add(id(m))
            modules.append(m)
    return modules


@contextmanager
def _autograd_ready(modules):
    """Freeze the weights for the optimisation (restored after) and replace inference-tensor weights and buffers
    (loaded to the GPU under ComfyUI's inference_mode) by normal tensors with the same values, one at a time.
    Call outside inference mode."""
    frozen = []
    for root in modules:
        for module in root.modules():
            for name, p in list(module._parameters.items()):
                if p is None:
                    continue
                if p.is_inference():
                    module._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=False)
                elif p.requires_grad:
                    p.requires_grad_(False)
                    frozen.append(p)
            for name, b in list(module._buffers.items()):
                if b is not None and b.is_inference():
                    module._buffers[name] = b.clone()
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _differentiable_attention(options: dict) -> None:
    """SageAttention has no backward: route the optimisation forward's attention through PyTorch SDPA instead."""
    from comfy.ldm.modules import attention

    if "optimized_attention_override" in options:
        return
    if getattr(attention.optimized_attention, "__name__", "") in ("attention_sage", "attention3_sage"):
        options["optimized_attention_override"] = lambda func, *args, **kwargs: attention.attention_pytorch(
            *args, **kwargs)


def apply_sgi2v(model, tracklets, *, layers=DEFAULT_LAYERS, start_percent: float = 0.1, end_percent: float = 0.4,
                start_step: int | None = None, end_step: int | None = None, iterations: int = 5, lr: float = 0.21,
                fft_ratio: float = 0.5, heatmap_sigma: float = 0.4, weight_decay: float = 0.01,
                checkpointing: str = "auto", memory_budget_gb: float | None = None, report: list | None = None,
                progress=None):
    """A clone of ``model`` (a ComfyUI SVD ModelPatcher, plain or already patched, e.g. by
    ``apply_trackdiffusion_svd``) whose sampling steers the objects of ``tracklets`` along their boxes (SG-I2V).

    Args:
        layers: spatial transformers whose attn1 gets frame-0 keys/values and feeds the loss (a list, or a
            comma-separated string).
        start_percent, end_percent: the guided band as fractions of the step count (defaults = SG-I2V's steps 5..20
            of 50); ``start_step``/``end_step`` (0-based, inclusive) override them.
        iterations, lr, weight_decay: AdamW updates per guided step (0 = off: output bit-identical to ``model``'s).
        fft_ratio: Butterworth ratio of the high-frequency reset (0 = keep the original latent).
        heatmap_sigma: Gaussian centre weighting in box half-sizes.
        checkpointing: "auto" (recompute the largest transformers in the backward when the optimisation forward's
            activations would not fit the memory budget), "all" or "off".
        memory_budget_gb: the device memory the whole run may use (default: what is free); "auto" plans with it.
        report: if given, one dict per guided step is appended: ``{"step", "sigma", "losses"}``.
        progress: ``progress(done, total)`` over the optimisation iterations of each sampling run (total = guided
            steps x iterations): 0 when sampling starts, ``total`` when it ends (see ``trackdiffusion.data.progress``).
    Raises:
        InvalidInputError: bad settings, a MODEL without the named layers, invalid boxes (at sampling time, when the
            latent's size is known: empty boxes, objects wholly outside the picture), or a latent with a noise mask.
    """
    config = SGI2VConfig(layers=layers, start_percent=start_percent, end_percent=end_percent, start_step=start_step,
                         end_step=end_step, iterations=iterations, lr=lr, weight_decay=weight_decay,
                         fft_ratio=fft_ratio, heatmap_sigma=heatmap_sigma)
    if checkpointing not in ("auto", "all", "off"):
        raise InvalidInputError(f"checkpointing must be auto, all or off, got {checkpointing!r}.")
    if memory_budget_gb is not None and not (isinstance(memory_budget_gb, (int, float)) and memory_budget_gb > 0):
        raise InvalidInputError(f"memory_budget_gb must be a positive number, got {memory_budget_gb!r}.")
    if not getattr(tracklets, "objects", None):
        raise InvalidInputError("the tracklets have no objects, so there is nothing to guide.",
                                fix="draw at least one box in the Tracklet Editor.", source="SG-I2V tracklets")
    import comfy.model_management
    import comfy.samplers
    from comfy.patcher_extension import WrappersMP

    m = model.clone()
    diffusion_model = m.get_model_object("diffusion_model")
    resolved, last = _resolve_layers(diffusion_model, config.layers)
    for layer, _ in resolved:
        key = f"diffusion_model.{layer}.transformer_blocks.0.attn1.forward"
        previous = m.object_patches.get(key)  # chain another pack's patch instead of replacing it
        attn1 = diffusion_model.get_submodule(f"{layer}.transformer_blocks.0.attn1")
        m.add_object_patch(key, types.MethodType(_attn1_forward(layer, previous), attn1))
    scales = _transformer_scales(diffusion_model)
    if checkpointing != "off":
        for name, _, _ in scales:
            key = f"diffusion_model.{name}.forward"
            previous = m.object_patches.get(key)
            m.add_object_patch(key, types.MethodType(_svt_forward(name, previous), diffusion_model.get_submodule(name)))

    def targets_for(run: _Run, x: torch.Tensor):
        key = (tuple(x.shape), x.device)
        if key not in run.targets:
            frames, _, h, w = x.shape
            boxes = latent_boxes_from_tracklets(tracklets, frames, h, w)
            run.targets[key] = build_alignment_targets(boxes, config.heatmap_sigma).to(x.device)
        return run.targets[key]

    def run_progress(run: _Run, done: int, total: int) -> None:
        """One guided step's ``optimise_latent`` progress, as this run's: its iterations after the earlier steps'."""
        if done:
            progress(min(run.iterations_done + done, run.iterations_total), run.iterations_total)

    def guide(guider, run: _Run, step: int, x: torch.Tensor, timestep, model_options: dict) -> torch.Tensor:
        conds = guider.conds.get("positive")
        if conds is None:
            raise InvalidInputError("SG-I2V needs the positive conditioning, and this sampler has none.")
        dtype = guider.inner_model.manual_cast_dtype or guider.inner_model.get_dtype()
        if run.checkpoint is None:
            frames, _, h, w = x.shape
            run.checkpoint = plan_checkpointing(scales, last, frames, h, w,
                                                torch.finfo(dtype).bits // 8,
                                                _activation_budget(x.device, memory_budget_gb), checkpointing)
            if run.checkpoint:
                log.info("SG-I2V: activation checkpointing in %s", ", ".join(sorted(run.checkpoint)))
        capture = _Capture(config.layers, last, frames=x.shape[0], checkpoint=run.checkpoint)
        options = dict(model_options)
        transformer_options = dict(options.get("transformer_options", {}))
        transformer_options[CAPTURE_KEY] = capture
        _differentiable_attention(transformer_options)
        options["transformer_options"] = transformer_options
        modules = _modules_of(guider)

        with torch.inference_mode(False), torch.enable_grad(), _autograd_ready(modules):
            sigma = timestep.detach().clone()
            targets = targets_for(run, x)  # built here: grid_sample saves its grid, which must not be an inference tensor

            def features(z):
                capture.features.clear()
                try:
                    comfy.samplers.calc_cond_batch(guider.inner_model, [conds], z, sigma, options)
                except _StopForward:
                    pass
                missing = [n for n in config.layers if n not in capture.features]
                if missing:
                    raise InvalidInputError(f"SG-I2V could not record {missing}: another node replaces the "
                                            "self-attention of these layers.",
                                            fix="choose other layers, or remove the conflicting attention patch.")
                return [capture.features[n] for n in config.layers]

            result = optimise_latent(x.detach().clone(), features, targets, iterations=config.iterations,
                                     lr=config.lr, weight_decay=config.weight_decay, fft_ratio=config.fft_ratio,
                                     scaler=LossScaler(dtype),  # a fresh scale per guided step, as official
                                     check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
                                     progress=None if progress is None else functools.partial(run_progress, run))
            capture.features.clear()
            run.iterations_done = min(run.iterations_done + config.iterations, run.iterations_total)
        if result.losses:
            log.info("SG-I2V step %d (sigma %.4g): alignment loss %.5g -> %.5g over %d iterations", step,
                     run.sigmas[step], result.losses[0], result.losses[-1], len(result.losses))
        if report is not None:
            report.append({"step": step, "sigma": run.sigmas[step], "losses": list(result.losses)})
        return result.latent

    def sampler_sample(executor, model_wrap, sigmas, extra_args, callback, noise, latent_image=None,
                       denoise_mask=None, disable_pbar=False):
        schedule = [float(s) for s in sigmas]
        run = _Run(schedule, set(config.guided_steps(len(schedule) - 1)))
        run.iterations_total = len(run.guided) * config.iterations
        if run.guided and denoise_mask is not None:
            raise InvalidInputError("SG-I2V guidance cannot run on a latent with a noise mask.",
                                    fix="remove the noise mask, or sample without trajectory guidance.")
        model_options = dict(extra_args.get("model_options", {}))
        transformer_options = dict(model_options.get("transformer_options", {}))
        transformer_options[RUN_KEY] = run
        model_options["transformer_options"] = transformer_options
        extra_args = dict(extra_args, model_options=model_options)
        if progress is not None and run.iterations_total:
            progress(0, run.iterations_total)
        out = executor(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        if progress is not None and run.iterations_done < run.iterations_total:  # a guided step was never reached
            progress(run.iterations_total, run.iterations_total)
        return out

    def predict_noise(executor, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        run = model_options.get("transformer_options", {}).get(RUN_KEY)
        if run is not None and run.guided:
            step = run.step_of(float(timestep.reshape(-1)[0]))
            if step is not None and step in run.guided and step not in run.done:
                run.done.add(step)
                guided = guide(executor.class_obj, run, step, x, timestep, model_options)
                x.copy_(guided)  # the sampler's own latent: it continues from the guided one
        return executor(x, timestep, model_options, seed)

    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, PATCH_KEY, sampler_sample)
    m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, PATCH_KEY, predict_noise)
    return m


__all__ = ["PATCH_KEY", "apply_sgi2v", "plan_checkpointing"]
