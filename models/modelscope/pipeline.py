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
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data.errors import InvalidInputError, TrackDiffusionError
from ..guidance.cfg import normalized_guidance, standard_guidance

log = logging.getLogger(__name__)

SOURCE = "ModelScope TrackDiffusion"
MAX_FRAMES = 16
MAX_OBJS = 20
COMPONENTS: dict[str, str] = {
    "unet": "the UNet3D (config.json + diffusion_pytorch_model.safetensors)",
    "vae": "the VAE (config.json + weights)",
    "text_encoder": "the CLIP text encoder (config.json + weights)",
    "tokenizer": "the CLIP tokenizer (vocab.json + merges.txt, or tokenizer.json)",
    "scheduler": "the noise scheduler (scheduler_config.json)",
}
GUIDANCE_MODES = ("normalized", "standard")
#: scheduler name -> diffusers class name ("default" = the folder's own scheduler)
SCHEDULERS: dict[str, str | None] = {
    "default": None,
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",  # the official demo (SD-1.5 default scheduler)
    "dpm++": "DPMSolverMultistepScheduler",  # the paper: DPM-Solver, 50 steps
    "euler": "EulerDiscreteScheduler",
}
_FOLDER_FIX = ("Use a complete diffusers text-to-video folder (TextToVideoSDPipeline layout: unet, vae, text_encoder, "
               "tokenizer, scheduler), e.g. pengxiang/TrackDiffusion_Pretrain.")
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.fp16.safetensors.index.json",
                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")


class GenerationInterrupted(TrackDiffusionError):
    """The ``interrupt`` check of :meth:`ModelScopeTrackDiffusion.generate` asked to stop."""


# --------------------------------------------------------------------------------------------------- guidance


# --------------------------------------------------------------------------------------------------- loading


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise InvalidInputError(f"the text-to-video folder {folder} does not exist or is not a folder.",
                                fix=_FOLDER_FIX, source=SOURCE)
    checks = {
        "unet": [("config.json",)],
        "vae": [("config.json",)],
        "text_encoder": [("config.json",)],
        "tokenizer": [("vocab.json", "merges.txt"), ("tokenizer.json",)],
        "scheduler": [("scheduler_config.json",)],
    }
    for name, alternatives in checks.items():
        sub = folder / name
        if not sub.is_dir():
            raise InvalidInputError(f"{folder} has no '{name}' folder: {COMPONENTS[name]} is missing.",
                                    fix=_FOLDER_FIX, source=str(folder))
        if not any(all((sub / f).is_file() for f in files) for files in alternatives):
            wanted = " or ".join(" + ".join(files) for files in alternatives)
            raise InvalidInputError(f"{folder}/{name} lacks {wanted}: {COMPONENTS[name]} is incomplete.",
                                    fix=_FOLDER_FIX, source=str(folder))


def _weight_files(unet_dir: Path) -> tuple[list[Path], str | None]:
    """The UNet folder's weight files (shards resolved) and the diffusers ``variant`` they need."""
    for name in _WEIGHT_NAMES:
        p = unet_dir / name
        if not p.is_file():
            continue
        variant = "fp16" if ".fp16." in name else None
        if name.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads(p.read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                raise InvalidInputError(f"{p} is not a valid shard index ({exc}).",
                                        fix="Download the UNet folder again.", source=str(unet_dir)) from None
            return [unet_dir / s for s in shards], variant
        return [p], variant
    raise InvalidInputError(f"{unet_dir} has a config.json but no weights (looked for {', '.join(_WEIGHT_NAMES[:2])}, "
                            "sharded or .bin).", fix=_FOLDER_FIX, source=str(unet_dir))


def _safetensors_keys(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118


def _read_tensors(files: Mapping[str, Path], keys: list[str]) -> dict[str, torch.Tensor]:
    """``keys`` (key -> file in ``files``) loaded one at a time."""
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for k in keys:
        by_file.setdefault(files[k], []).append(k)
    for path, ks in by_file.items():
        with safe_open(str(path), framework="pt") as handle:
            for k in ks:
                out[k] = handle.get_tensor(k)
    return out


def _added_markers() -> tuple[str, ...]:
    from .diffusers import TrackDiffusionUNet3DAttachment

    return TrackDiffusionUNet3DAttachment.ADDED_MARKERS


def _is_added(key: str) -> bool:
    return any(m in key for m in _added_markers())


def _hidden_dim(shapes: Mapping[str, tuple[int, ...]], default: int = 512) -> int:
    shape = shapes.get("position_net.linears.0.weight")
    return int(shape[0]) if shape else default


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """diffusers lists every TrackDiffusion tensor it does not know as 'not used': we load those ourselves."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(level)


def _component_error(name: str, where: Path, exc: Exception) -> InvalidInputError:
    return InvalidInputError(f"could not load {COMPONENTS.get(name, name)} from {where}: "
                             f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                             fix=_FOLDER_FIX, source=str(where))


_CROSS_KEY = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"


def _unet_config(config_dir: Path, shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, Any]:
    from diffusers import UNet3DConditionModel

    cfg = dict(UNet3DConditionModel.load_config(str(config_dir)))
    # the released config.json may not record the text width (CLIP-L: 768; diffusers' default is 1024): take it from
    # the file's own tensors
    if shapes and _CROSS_KEY in shapes:
        cfg["cross_attention_dim"] = int(shapes[_CROSS_KEY][1])
    return cfg


def _load_unet_folder(unet_dir: Path, dtype: torch.dtype) -> tuple[nn.Module, dict[str, torch.Tensor], dict]:
    """A diffusers UNet3D folder: base via ``from_pretrained`` plus its TrackDiffusion tensors (if any)."""
    from diffusers import UNet3DConditionModel

    files, variant = _weight_files(unet_dir)
    where: dict[str, Path] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        if f.suffix == ".safetensors":
            for k, s in _safetensors_keys(f).items():
                where[k], shapes[k] = f, s
    added = sorted(k for k in where if _is_added(k))
    try:
        # a config.json that does not record the text width (diffusers' default is 1024): take it from the tensors
        cross = _unet_config(unet_dir, shapes).get("cross_attention_dim")
        overrides = {"cross_attention_dim": cross} if cross is not None else {}
        with _quiet_diffusers():
            unet = UNet3DConditionModel.from_pretrained(str(unet_dir), variant=variant, torch_dtype=dtype,
                                                        local_files_only=True, **overrides)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise _component_error("unet", unet_dir, exc) from exc
    return unet, _read_tensors(where, added), shapes


def _load_unet_file(path: Path, config_dir: Path, dtype: torch.dtype) -> tuple[nn.Module, dict[str, torch.Tensor],
                                                                                dict]:
    """A whole TrackDiffusion UNet3D in one safetensors file (config from beside it, else ``config_dir``)."""
    from diffusers import UNet3DConditionModel

    shapes = _safetensors_keys(path)
    cfg_dir = path.parent if (path.parent / "config.json").is_file() else config_dir
    cfg = {k: v for k, v in _unet_config(cfg_dir, shapes).items() if not k.startswith("_")}
    with _quiet_diffusers():
        unet = UNet3DConditionModel.from_config(cfg).to(dtype)
    own = unet.state_dict(keep_vars=True)
    base = [k for k in shapes if not _is_added(k)]
    missing = sorted(k for k in own if k not in shapes)
    unknown = sorted(k for k in base if k not in own)
    wrong = [f"{k}: file {list(shapes[k])} vs model {list(own[k].shape)}" for k in base
             if k in own and tuple(own[k].shape) != shapes[k]]
    if missing or unknown or wrong:
        raise InvalidInputError(
            f"{path.name} does not fit the UNet3D config of {cfg_dir}: {len(missing)} missing key(s) {missing[:3]}, "
            f"{len(unknown)} unknown key(s) {unknown[:3]}, {len(wrong)} wrong shape(s) {wrong[:2]}.",
            fix="Put the official modelscope_ft/unet/config.json beside the file, or use a text-to-video folder "
                "whose UNet has the same configuration.", source=str(path))
    from safetensors import safe_open

    with torch.no_grad(), safe_open(str(path), framework="pt") as handle:
        for k in base:
            own[k].copy_(handle.get_tensor(k))
    where = dict.fromkeys(shapes, path)
    return unet, _read_tensors(where, sorted(k for k in shapes if _is_added(k))), shapes


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp32": torch.float32, "float32": torch.float32}
    if dtype in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in names:
        raise InvalidInputError(f"unknown dtype {dtype!r}.", fix="Use auto, fp16, bf16 or fp32.", source=SOURCE)
    return names[dtype]


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
        import diffusers
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel, CLIPTokenizer

        from .diffusers import attach_trackdiffusion_unet3d, use_official_spatial_heads

        folder = Path(t2v_folder).expanduser()
        _check_folder(folder)
        target = torch.device(device) if device is not None else None
        dt = _resolve_dtype(dtype, target or torch.device("cpu"))
        warnings: list[str] = []

        # ---- UNet (+ TrackDiffusion tensors)
        adapter: dict[str, torch.Tensor] | None = None
        if unet is None:
            base, added, shapes = _load_unet_folder(folder / "unet", dt)
            source = str(folder / "unet")
        else:
            up = Path(unet).expanduser()
            if up.is_dir():
                unet_dir = up if (up / "config.json").is_file() else up / "unet"
                if not (unet_dir / "config.json").is_file():
                    raise InvalidInputError(f"{up} is neither a diffusers UNet folder (config.json) nor holds one in "
                                            "'unet/'.", fix="Pass the modelscope_ft/unet folder or its file.",
                                            source=str(up))
                base, added, shapes = _load_unet_folder(unet_dir, dt)
            elif up.is_file():
                from ..checkpoints.convert import (
                    KIND_MODELSCOPE_ADAPTER,
                    KIND_STOCK_UNET3D,
                    KIND_TD_MODELSCOPE,
                    inspect_checkpoint,
                    load_delta,
                )

                info = inspect_checkpoint(up)
                if info.kind == KIND_MODELSCOPE_ADAPTER:
                    adapter, _ = load_delta(up)
                    base, _unused, _ = _load_unet_folder(folder / "unet", dt)
                    if _unused:
                        warnings.append(f"the folder's UNet has its own TrackDiffusion tensors; {up.name} replaces "
                                        "them.")
                    added, shapes = adapter, {k: tuple(v.shape) for k, v in adapter.items()}
                elif info.kind == KIND_TD_MODELSCOPE:
                    base, added, shapes = _load_unet_file(up, folder / "unet", dt)
                elif info.kind == KIND_STOCK_UNET3D:
                    raise InvalidInputError(f"{up.name} is a stock UNet3D without TrackDiffusion's tensors.",
                                            fix="Use the official modelscope_ft UNet (pengxiang/trackdiffusion_ytvis) "
                                                "or its converted adapter.", source=str(up))
                else:
                    raise InvalidInputError(f"{up.name}: {info.description}; expected TrackDiffusion's ModelScope "
                                            "UNet3D or its converted adapter.",
                                            fix="Use modelscope_ft/unet/diffusion_pytorch_model.safetensors from "
                                                "pengxiang/trackdiffusion_ytvis, or a file made by "
                                                "`trackdiffusion weights convert --kind modelscope`.", source=str(up))
            else:
                raise InvalidInputError(f"the UNet path {up} does not exist.",
                                        fix="Pass the modelscope_ft UNet folder or file.", source=SOURCE)
            source = str(up)
        base.eval().requires_grad_(False)
        if added:
            use_official_spatial_heads(base)  # TrackDiffusion's spatial transformers: 8 heads of C/8
        else:
            if require_trackdiffusion:
                raise InvalidInputError(
                    f"the UNet from {source} has no TrackDiffusion tensors (position_net, fusers, injectors).",
                    fix="Load the official modelscope_ft UNet (pengxiang/trackdiffusion_ytvis) as the UNet, or "
                        "its converted adapter.", source=SOURCE)
            warnings.append("no TrackDiffusion weights: the base text-to-video model (its own head layout) with "
                            "zero-gated modules; the tracklets have no effect.")
        attachment = attach_trackdiffusion_unet3d(base, hidden_dim=_hidden_dim(shapes),
                                                  zero_init_frame_embedding=not added)
        if added:
            attachment.load_official_state_dict(added, strict=True)
        attachment.requires_grad_(False)
        del added, adapter

        # ---- the other components
        try:
            with _quiet_diffusers():
                vae = AutoencoderKL.from_pretrained(str(folder / "vae"), torch_dtype=dt, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise _component_error("vae", folder / "vae", exc) from exc
        try:
            text_encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), local_files_only=True).to(dt)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise _component_error("text_encoder", folder / "text_encoder", exc) from exc
        try:
            tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise _component_error("tokenizer", folder / "tokenizer", exc) from exc
        try:
            config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
            scheduler_cls = getattr(diffusers, str(config.get("_class_name")), None)
            if scheduler_cls is None:
                raise ValueError(f"unknown scheduler class {config.get('_class_name')!r}")
            scheduler = scheduler_cls.from_config(config)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise _component_error("scheduler", folder / "scheduler", exc) from exc
        for m in (vae, text_encoder):
            m.eval().requires_grad_(False)
        pipe = cls(base, attachment, vae, text_encoder, tokenizer, scheduler, source=source, warnings=warnings)
        for w in warnings:
            log.warning("%s: %s", SOURCE, w)
        if target is not None:
            pipe.to(target)
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
        ids = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
        out = self.text_encoder(ids)
        return out.last_hidden_state, out.pooler_output

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
        slots = tracklets.to_slots(frames, width, height, MAX_OBJS)
        dev = torch.device(device) if device is not None else next(self.unet.parameters()).device
        off = torch.device(offload_device) if offload_device is not None else None
        sched = self.make_scheduler(scheduler)
        do_cfg = guidance_scale > 1.0
        combine = normalized_guidance if guidance == "normalized" else standard_guidance

        with torch.no_grad():
            # ---- text: prompt, negative prompt, every distinct label: one forward
            labels = list(slots.labels)
            unique = list(dict.fromkeys(labels))
            texts = [prompt, negative_prompt, *unique] if do_cfg else [prompt, *unique]
            with self._on(self.text_encoder, dev, off):
                hidden, pooled = self.encode_text(texts, dev)
            n_prompts = 2 if do_cfg else 1
            context = hidden[:n_prompts].flip(0) if do_cfg else hidden[:1]  # [uncond, cond] as the official order
            per_label = dict(zip(unique, pooled[n_prompts:]))
            positive = torch.stack([per_label[label] for label in labels])  # [N, D]
            context = context.to(dev, self.dtype)

            # ---- tracklets: uncond half = all masks 0 (official)
            boxes = slots.boxes.unsqueeze(0)
            masks = slots.masks.unsqueeze(0)
            if do_cfg:
                boxes = torch.cat([boxes, boxes])
                masks = torch.cat([torch.zeros_like(masks), masks])

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
