"""TrackDiffusion text-to-video (the official ``main`` branch, "ModelScope" version) as a self-contained sampler.

:class:`ModelScopeTrackDiffusion` loads a diffusers text-to-video folder (``TextToVideoSDPipeline`` layout: ``unet``,
``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``) and the TrackDiffusion UNet (reference sections 1.1, 2.1,
4.1), and generates a clip that follows tracklets:

* the UNet is a diffusers ``UNet3DConditionModel`` with the official 8-head spatial layout
  (:func:`~trackdiffusion.models.modelscope.use_official_spatial_heads`) and the TrackDiffusion modules attached
  (:func:`~trackdiffusion.models.modelscope.attach_trackdiffusion_unet3d`), loaded from the official ``modelscope_ft`` UNet
  (a diffusers UNet3D folder or safetensors file) or our converted ModelScope adapter
  (:func:`~trackdiffusion.models.checkpoints.load_delta`);
* each slot's category text is the CLIP ``pooler_output`` of its label ("" for padding slots); boxes and masks come
  from ``tracklets.to_slots(num_frames, width, height, 20)``;
* classifier-free guidance as in the official pipeline: the unconditional half gets the negative prompt ("" by
  default) **and** all box masks 0; ``guidance="normalized"`` is the official dynamic scale
  ``w = (s - 1) * ||eps_c|| / ||eps_c - eps_u||`` (norms over the whole batch tensor), ``"standard"`` the usual
  ``eps_u + s * (eps_c - eps_u)``; no guidance at ``s <= 1`` (as the official ``guidance_scale > 1`` test).

Nothing here imports ComfyUI. The text encoder runs once per :meth:`ModelScopeTrackDiffusion.generate` call (prompt,
negative prompt and every distinct label in one batch); the VAE decodes ``decode_chunk_size`` frames at a time.
Loading lives in :mod:`.loading`, the per-call text and tracklet conditioning in :mod:`.conditioning`; this module is
the sampler.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ...data.errors import InvalidInputError, TrackDiffusionError
from ..guidance.cfg import normalized_guidance, standard_guidance
from .conditioning import build_conditioning, encode_texts
from .loading import (
    COMPONENTS,
    SOURCE,
    _is_added,  # noqa: F401  (importable from here as before the split)
    load_components,
)

__all__ = ["COMPONENTS", "GUIDANCE_MODES", "MAX_FRAMES", "MAX_OBJS", "SCHEDULERS", "SOURCE", "GenerationInterrupted",
           "ModelScopeTrackDiffusion"]

log = logging.getLogger(__name__)

MAX_FRAMES = 16
MAX_OBJS = 20
GUIDANCE_MODES = ("normalized", "standard")
#: scheduler name -> diffusers class name ("default" = the folder's own scheduler)
SCHEDULERS: dict[str, str | None] = {
    "default": None,
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",  # the official demo (SD-1.5 default scheduler)
    "dpm++": "DPMSolverMultistepScheduler",  # the paper: DPM-Solver, 50 steps
    "euler": "EulerDiscreteScheduler",
}


class GenerationInterrupted(TrackDiffusionError):
    """The ``interrupt`` check of :meth:`ModelScopeTrackDiffusion.generate` asked to stop."""


# --------------------------------------------------------------------------------------------------- pipeline


class ModelScopeTrackDiffusion:
    """TrackDiffusion text-to-video: components, attachment and the sampling loop. Build with :meth:`from_folders`.

    Attributes: ``unet`` (diffusers UNet3D, TrackDiffusion modules grafted), ``attachment``
    (:class:`~trackdiffusion.models.modelscope.TrackDiffusionUNet3DAttachment`), ``vae``, ``text_encoder``, ``tokenizer``,
    ``scheduler``, ``dtype``, ``source`` (where the TrackDiffusion tensors came from), ``warnings``.
    """

    def __init__(self, unet: nn.Module, attachment: Any, vae: nn.Module, text_encoder: nn.Module, tokenizer: Any,
                 scheduler: Any, *, source: str = "", warnings: list[str] | None = None) -> None:
        self.unet = unet
        self.attachment = attachment
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.source = source
        self.warnings = list(warnings or [])
        self.dtype = next(unet.parameters()).dtype
        width = getattr(text_encoder.config, "hidden_size", None)
        if width != unet.config.cross_attention_dim:
            raise InvalidInputError(
                f"the text encoder gives {width}-d embeddings, the UNet expects cross_attention_dim "
                f"{unet.config.cross_attention_dim}.",
                fix="TrackDiffusion uses the CLIP ViT-L/14 text encoder (768): use a folder with it (e.g. "
                    "pengxiang/TrackDiffusion_Pretrain, or the SD-1.5 text_encoder/tokenizer).", source=SOURCE)

    def __repr__(self) -> str:
        return (f"ModelScopeTrackDiffusion(unet={self.num_params() / 1e6:.0f}M params, dtype={self.dtype}, "
                f"source={self.source!r})")

    def num_params(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    def memory_bytes(self) -> int:
        """Bytes of all weights (UNet with the TrackDiffusion modules, VAE, text encoder)."""
        mods = (self.unet, self.vae, self.text_encoder)
        return sum(p.numel() * p.element_size() for m in mods for p in m.parameters())

    # ---- loading ------------------------------------------------------------------------------------------------

    @classmethod
    def from_folders(cls, t2v_folder: str | os.PathLike, unet: str | os.PathLike | None = None, *,
                     dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
                     require_trackdiffusion: bool = True) -> ModelScopeTrackDiffusion:
        """Load a text-to-video folder and the TrackDiffusion UNet.

        Args:
            t2v_folder: diffusers ``TextToVideoSDPipeline`` folder (``unet``, ``vae``, ``text_encoder``,
                ``tokenizer``, ``scheduler``). Its UNet is used when ``unet`` is None (it must then carry the
                TrackDiffusion tensors) or as the base for a converted adapter.
            unet: the official ``modelscope_ft`` UNet: a diffusers UNet3D folder (``.../modelscope_ft/unet`` or its
                parent), or a safetensors file holding the whole TrackDiffusion UNet (its ``config.json`` beside it,
                else the folder's UNet config is used), or our converted ModelScope adapter (attached to the
                folder's UNet).
            dtype: torch dtype or "auto"/"fp16"/"bf16"/"fp32" (auto: fp16 on CUDA, else fp32).
            device: where to put the components now (default: leave on the CPU; ``generate`` moves them).
            require_trackdiffusion: without TrackDiffusion tensors, raise (default) instead of running the base
                text-to-video model with zero-gated modules (the tracklets then have no effect).
        """
        parts = load_components(t2v_folder, unet, dtype=dtype, device=device,
                                require_trackdiffusion=require_trackdiffusion)
        pipe = cls(parts.unet, parts.attachment, parts.vae, parts.text_encoder, parts.tokenizer, parts.scheduler,
                   source=parts.source, warnings=parts.warnings)
        for w in parts.warnings:
            log.warning("%s: %s", SOURCE, w)
        if parts.device is not None:
            pipe.to(parts.device)
        return pipe

    def to(self, device: torch.device | str) -> ModelScopeTrackDiffusion:
        for m in (self.unet, self.vae, self.text_encoder):
            m.to(device)
        return self

    # ---- pieces of generate ---------------------------------------------------------------------------------------

    def encode_text(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One text-encoder forward for all ``texts`` (padded to the tokenizer's max length, no attention mask, as
        diffusers' prompt encoding). Returns ``(last_hidden_state [T, L, D], pooler_output [T, D])``.

        ``pooler_output`` (the final-LayerNorm EOS token) is the same as with the official ``padding=True`` +
        attention mask: the causal mask keeps the EOS token from seeing the padding after it.
        """
        return encode_texts(self.tokenizer, self.text_encoder, texts, device)

    def make_scheduler(self, name: str = "default") -> Any:
        """A fresh scheduler (no state shared between calls): the folder's, or ``name`` from :data:`SCHEDULERS`."""
        import diffusers

        if name not in SCHEDULERS:
            raise InvalidInputError(f"unknown scheduler {name!r}.", fix=f"Use one of {', '.join(SCHEDULERS)}.",
                                    source=SOURCE)
        cls_name = SCHEDULERS[name]
        cls = type(self.scheduler) if cls_name is None else getattr(diffusers, cls_name)
        extra = {"skip_prk_steps": True} if cls_name == "PNDMScheduler" else {}
        return cls.from_config(self.scheduler.config, **extra)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def decode(self, latents: torch.Tensor, chunk: int = 4) -> torch.Tensor:
        """Latents ``[1, C, F, h, w]`` -> frames ``[F, H, W, 3]`` float32 CPU in [0, 1], ``chunk`` frames at a time."""
        z = latents[0].permute(1, 0, 2, 3) / self.vae.config.scaling_factor
        vae_dtype = next(self.vae.parameters()).dtype
        out = []
        for i in range(0, z.shape[0], max(1, int(chunk))):
            img = self.vae.decode(z[i:i + chunk].to(vae_dtype)).sample
            out.append((img.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu())
        return torch.cat(out)

    # ---- generate -----------------------------------------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        tracklets: Any,
        negative_prompt: str = "",
        num_frames: int | None = None,
        height: int = 256,
        width: int = 384,
        steps: int = 50,
        guidance_scale: float = 1.2,
        guidance: str = "normalized",
        seed: int = 0,
        callback: Callable[[int, int], Any] | None = None,
        interrupt: Callable[[], Any] | None = None,
        *,
        scheduler: str = "default",
        device: torch.device | str | None = None,
        offload_device: torch.device | str | None = None,
        decode_chunk_size: int = 4,
        overflow: str = "error",
    ) -> torch.Tensor:
        """Generate a clip following ``tracklets``. Returns frames ``[F, H, W, 3]`` float32 (CPU) in [0, 1].

        Args:
            prompt: the video caption. negative_prompt: text of the unconditional half ("" = official).
            tracklets: :class:`~trackdiffusion.data.tracklets.Tracklets` (motion resampled to ``num_frames``; at most 20
                objects; each object's ``label`` is its category text).
            num_frames: at most 16 (the frame embeddings); default the tracklets' frame count.
            height, width: multiples of the VAE scale factor (8). Defaults: the official demo's 384 x 256.
            steps, guidance_scale, guidance: "normalized" (official dynamic CFG, the demo uses 1.2) or "standard"
                (the paper's CFG 5.0); no guidance at ``guidance_scale <= 1``.
            seed: initial noise (drawn on the CPU, so the same on every device).
            callback: ``callback(step, total)`` after every denoising step.
            interrupt: called before every step; it may raise, or return True to stop with
                :class:`GenerationInterrupted`.
            scheduler: "default" (the folder's) or a name of :data:`SCHEDULERS`.
            device: where to compute (default: where the UNet is). offload_device: if given, each component is moved
                to ``device`` only for its phase (text encoder, UNet, VAE) and back here afterwards.
            decode_chunk_size: frames the VAE decodes at once.
            overflow: more than 20 objects: "error" (default), "first" (the official code's first 20 by id) or
                "largest" (see :func:`~trackdiffusion.data.tracklets.slots.tracklets_to_slots`).
        """
        if guidance not in GUIDANCE_MODES:
            raise InvalidInputError(f"unknown guidance mode {guidance!r}.", fix="Use 'normalized' or 'standard'.",
                                    source=SOURCE)
        frames = int(num_frames) if num_frames else int(getattr(tracklets, "num_frames", 0) or 0)
        if frames > MAX_FRAMES:
            raise InvalidInputError(
                f"{frames} frames requested, but TrackDiffusion's ModelScope UNet has frame embeddings for at most "
                f"{MAX_FRAMES}.", fix=f"Set num_frames to {MAX_FRAMES} or fewer (the motion is resampled).",
                source=SOURCE)
        if frames < 1:
            raise InvalidInputError(f"num_frames must be at least 1, got {frames}.", fix="Pass 1 to 16 frames.",
                                    source=SOURCE)
        factor = self.vae_scale_factor
        if height < factor or width < factor or height % factor or width % factor:
            raise InvalidInputError(f"{width}x{height} is not a positive multiple of {factor}.",
                                    fix=f"Use a width and height divisible by {factor}.", source=SOURCE)
        steps = int(steps)
        if steps < 1:
            raise InvalidInputError(f"steps must be at least 1, got {steps}.", fix="Use 1 or more steps.",
                                    source=SOURCE)
        slots = tracklets.to_slots(frames, width, height, MAX_OBJS, overflow=overflow)
        dev = torch.device(device) if device is not None else next(self.unet.parameters()).device
        off = torch.device(offload_device) if offload_device is not None else None
        sched = self.make_scheduler(scheduler)
        do_cfg = guidance_scale > 1.0
        combine = normalized_guidance if guidance == "normalized" else standard_guidance

        def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            with self._on(self.text_encoder, dev, off):
                return self.encode_text(texts, dev)

        with torch.no_grad():
            cond = build_conditioning(encode, prompt, negative_prompt, slots, do_cfg)
            context, positive, boxes, masks = cond.context.to(dev, self.dtype), cond.positive, cond.boxes, cond.masks

            # ---- noise
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            shape = (1, self.unet.config.in_channels, frames, height // factor, width // factor)
            latents = torch.randn(shape, generator=gen, dtype=torch.float32).to(dev)
            sched.set_timesteps(steps, device=dev)
            latents = latents * sched.init_noise_sigma
            step_kwargs = {"generator": gen} if "generator" in inspect.signature(sched.step).parameters else {}
            timesteps = sched.timesteps
            total = len(timesteps)

            with self._on(self.unet, dev, off), self.attachment.conditioned(boxes, masks, positive.to(dev)):
                for i, t in enumerate(timesteps):
                    if interrupt is not None and interrupt():
                        raise GenerationInterrupted("generation interrupted.")
                    x = torch.cat([latents] * 2) if do_cfg else latents
                    x = sched.scale_model_input(x, t)
                    eps = self.unet(x.to(self.dtype), t, encoder_hidden_states=context).sample.float()
                    if do_cfg:
                        eps_u, eps_c = eps.chunk(2)
                        eps = combine(eps_u, eps_c, float(guidance_scale))
                    b, c, f, h, w = latents.shape
                    flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
                    eps = eps.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
                    flat = sched.step(eps, t, flat, **step_kwargs).prev_sample
                    latents = flat.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
                    if callback is not None:
                        callback(i + 1, total)

            with self._on(self.vae, dev, off):
                return self.decode(latents, decode_chunk_size)

    @staticmethod
    @contextlib.contextmanager
    def _on(module: nn.Module, device: torch.device, offload: torch.device | None) -> Iterator[None]:
        """``module`` on ``device`` for the block; back to ``offload`` afterwards when given."""
        module.to(device)
        try:
            yield
        finally:
            if offload is not None:
                module.to(offload)
