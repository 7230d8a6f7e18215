"""Loading for :class:`~trackdiffusion.models.modelscope.pipeline.ModelScopeTrackDiffusion`: the diffusers
text-to-video folder (checked component by component), the official TrackDiffusion UNet3D (a diffusers folder or one
safetensors file) or our converted adapter, the TrackDiffusion attachment, the VAE, text encoder, tokenizer and
scheduler (:func:`load_components`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data.errors import InvalidInputError
from .naming import stage2_finetuned

SOURCE = "ModelScope TrackDiffusion"
COMPONENTS: dict[str, str] = {
    "unet": "the UNet3D (config.json + diffusion_pytorch_model.safetensors)",
    "vae": "the VAE (config.json + weights)",
    "text_encoder": "the CLIP text encoder (config.json + weights)",
    "tokenizer": "the CLIP tokenizer (vocab.json + merges.txt, or tokenizer.json)",
    "scheduler": "the noise scheduler (scheduler_config.json)",
}
_FOLDER_FIX = ("Use a complete diffusers text-to-video folder (TextToVideoSDPipeline layout: unet, vae, text_encoder, "
               "tokenizer, scheduler), e.g. pengxiang/TrackDiffusion_Pretrain.")
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                 "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.fp16.safetensors.index.json",
                 "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")


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


@dataclass
class Components:
    """What :func:`load_components` loaded: the parts of a ModelScopeTrackDiffusion, and where to put them."""

    unet: nn.Module
    attachment: Any
    vae: nn.Module
    text_encoder: nn.Module
    tokenizer: Any
    scheduler: Any
    source: str  #: where the TrackDiffusion tensors came from
    warnings: list[str]
    device: torch.device | None  #: the ``device`` asked for (None: leave on the CPU)


def load_components(t2v_folder: str | os.PathLike, unet: str | os.PathLike | None = None, *,
                    dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
                    require_trackdiffusion: bool = True) -> Components:
    """Load the parts of a pipeline on the CPU (arguments: :meth:`.pipeline.ModelScopeTrackDiffusion.from_folders`);
    ``device`` is only checked and returned, the caller moves the parts there."""
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
                missing = sorted(k for k in base.state_dict() if stage2_finetuned(k) and k not in adapter)
                if missing:
                    raise InvalidInputError(
                        f"{up.name} lacks {len(missing)} of the temporal tensors stage 2 fine-tuned (e.g. "
                        f"{', '.join(missing[:3])}): the pretrain folder's would run in their place.",
                        fix="convert the official modelscope_ft UNet again with `trackdiffusion weights convert`, "
                            "or load that file directly.", source=str(up))
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
        # a converted adapter also carries the temporal layers stage 2 fine-tuned: they replace the pretrain folder's
        attachment.load_official_state_dict(added, strict=True, include_unet=adapter is not None)
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
    return Components(base, attachment, vae, text_encoder, tokenizer, scheduler, source, warnings, target)
