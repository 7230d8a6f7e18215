"""Inspect and convert the official TrackDiffusion checkpoints (HF ``pengxiang/trackdiffusion_ytvis``).

The official files are whole diffusers UNets in fp32 (6.95 GB for SVD). ComfyUI cannot load a diffusers SVD UNet,
and it already has the base model, so we keep only what TrackDiffusion trained, in ComfyUI naming:

* SVD delta (``format`` ``trackdiffusion.svd_delta``): the 16 fusers
  ``diffusion_model.<attention>.transformer_blocks.0.fuser.*``, ``position_net.*``, conv_in
  (``diffusion_model.input_blocks.0.0.*``), conv_out (``diffusion_model.out.2.*``) and the 38
  ``diffusion_model.<...>.time_mixer.mix_factor`` scalars; metadata ``format``, ``version``, ``base``
  (``svd_img2vid`` / ``svd_img2vid_xt``), ``stage`` (``1`` / ``2`` / ``unknown``), ``source`` (file name) and, when
  there was something to warn about, ``warnings`` (newline-separated).
* ModelScope adapter (``format`` ``trackdiffusion.modelscope_adapter``): the keys TrackDiffusion adds to the UNet3D
  (see :mod:`.modelscope_keys`), in diffusers naming.

Everything here reads the safetensors header only (:func:`inspect_checkpoint`) or loads one tensor at a time
through ``safe_open`` and streams it to the output, so converting a 7 GB file needs about one tensor of memory.
Output files are written to a temporary file in the destination folder and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ...data.atomic import atomic_write
from ...data.errors import InvalidInputError
from ..modelscope.naming import INJECTOR, modelscope_adapter_shapes
from ..svd.naming import (
    ATTENTIONS,
    CHANNEL_MULT,
    FUSER,
    MIX_FACTOR,
    RESNETS,
    diffusers_to_comfyui,
    fuser_shapes,
    svd_diffusers_keys,
    svd_position_net_shapes,
)

SVD_DELTA_FORMAT = "trackdiffusion.svd_delta"
MODELSCOPE_ADAPTER_FORMAT = "trackdiffusion.modelscope_adapter"
FORMAT_VERSION = "1"
UNET_PREFIX = "diffusion_model."

# what a file can be
KIND_TD_SVD = "trackdiffusion_svd"  #: official TrackDiffusion SVD UNet (diffusers naming, fusers + position_net)
KIND_TD_MODELSCOPE = "trackdiffusion_modelscope"  #: official TrackDiffusion ModelScope UNet3D
KIND_STOCK_SVD = "stock_svd_diffusers"  #: a diffusers SVD UNet without TrackDiffusion
KIND_STOCK_UNET3D = "stock_unet3d_diffusers"  #: a diffusers UNet3D (ModelScope T2V) without TrackDiffusion
KIND_COMFYUI_SVD = "comfyui_svd"  #: a ComfyUI / SGM-format SVD checkpoint (``model.diffusion_model.*``)
KIND_SVD_DELTA = "svd_delta"  #: our converted SVD delta
KIND_MODELSCOPE_ADAPTER = "modelscope_adapter"  #: our converted ModelScope adapter
KIND_UNKNOWN = "unknown"

OFFICIAL_REPO = "pengxiang/trackdiffusion_ytvis"
OFFICIAL_SVD_FILE = f"{OFFICIAL_REPO}: svd_stage2/unet/diffusion_pytorch_model.safetensors (6.95 GB)"
OFFICIAL_MODELSCOPE_FILE = f"{OFFICIAL_REPO}: modelscope_ft/unet/diffusion_pytorch_model.safetensors"

#: training step in config.json ``_name_or_path`` of the released SVD files -> stage
STAGE_CHECKPOINTS = {191500: 1, 87000: 2}
FRAMES_TO_BASE = {14: "svd_img2vid", 25: "svd_img2vid_xt"}
BASE_TO_FRAMES = {v: k for k, v in FRAMES_TO_BASE.items()}
SVD_POSITION_DIM = 112  # 8 Fourier frequencies x (sin, cos) x 7 box numbers (xyxy + rgb)
SVD_HEAD_DIM = 64  # the official SVD's attention head width (block_out_channels / num_attention_heads)
LIST_LIMIT = 20

_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
_ST_NAMES = {v: k for k, v in _ST_DTYPES.items()}
_DTYPE_ALIASES = {
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
}


# ----------------------------------------------------------------------------------------------------------------
# inspection


@dataclass
class CheckpointInfo:
    """What a safetensors file is, read from its header (and the ``config.json`` beside it) only."""

    path: Path
    kind: str
    description: str
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]  #: key -> safetensors dtype name ("F32", "F16", ...)
    metadata: dict[str, str]
    file_size: int
    config: dict | None = None
    stage: int | None = None
    stage_source: str | None = None
    frames: int | None = None
    base: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_tensors(self) -> int:
        return len(self.shapes)

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    def summary(self) -> str:
        dtype_counts = Counter(self.dtypes.values())
        lines = [
            f"{self.path}",
            f"  kind:    {self.kind}: {self.description}",
            f"  tensors: {self.num_tensors} ({self.num_params / 1e6:.1f} M parameters; "
            + ", ".join(f"{n} {d}" for d, n in sorted(dtype_counts.items())) + f"), {self.file_size / 1e9:.2f} GB",
            f"  stage:   {self.stage if self.stage else 'unknown'}"
            + (f" (from {self.stage_source})" if self.stage_source else ""),
            f"  base:    {self.base or 'unknown'}" + (f" ({self.frames} frames)" if self.frames else ""),
        ]
        fmt = {k: v for k, v in self.metadata.items() if k != "warnings"}
        if fmt:
            lines.append("  metadata: " + ", ".join(f"{k}={v}" for k, v in sorted(fmt.items())))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _first(items: Iterable[str], limit: int = LIST_LIMIT) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def _resolve_source(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        found = [c for c in (p / "diffusion_pytorch_model.safetensors", p / "unet" / "diffusion_pytorch_model.safetensors")
                 if c.is_file()]
        if not found:
            raise InvalidInputError(
                "this is a folder without a diffusion_pytorch_model.safetensors (nor unet/ one) in it.",
                fix=f"give the .safetensors file itself, e.g. {OFFICIAL_SVD_FILE}.", source=str(p))
        return found[0]
    if not p.is_file():
        raise InvalidInputError("file not found.", fix="check the path.", source=str(p))
    if p.suffix.lower() in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
        raise InvalidInputError(
            f"'{p.suffix}' files are Python pickles; only .safetensors files are read (pickles can run code).",
            fix=f"download the .safetensors version, e.g. {OFFICIAL_SVD_FILE}.", source=str(p))
    return p


def _not_safetensors(p: Path, exc: Exception) -> InvalidInputError:
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(64)
    fix = f"download the file again (the official SVD file is {OFFICIAL_SVD_FILE})."
    if head.startswith(b"version https://git-lfs"):
        problem = "this is a Git LFS pointer (a 130-byte text stub), not the weights."
        fix = "download the real file, e.g. with `huggingface-cli download` or `git lfs pull`."
    elif head.startswith(b"PK\x03\x04"):
        problem = "this is a zip archive (a PyTorch .bin/.ckpt pickle), not a safetensors file."
        fix = "download the .safetensors version of the checkpoint."
    elif head.lstrip()[:1] == b"<":
        problem = "this is a web page (HTML), not a safetensors file; the download saved the page instead of the file."
        fix = "download the file through its 'resolve' link or `huggingface-cli download`."
    elif size < 8:
        problem = f"the file is {size} bytes long: empty or cut off before the safetensors header."
    else:
        header_len = int.from_bytes(head[:8], "little")
        detail = str(exc).strip()
        if 8 + header_len > size and header_len < 100_000_000:
            problem = (f"not a readable safetensors file: its header claims {header_len} bytes but the file is only "
                       f"{size} bytes (a cut-off download).")
        elif "not fully covered" in detail or "incomplete" in detail:
            expected = _expected_size(p, header_len)
            extra = f" the header describes {expected} bytes but the file has {size}" if expected else ""
            problem = f"the safetensors file is truncated (a cut-off download?):{extra}."
        else:
            problem = f"not a readable safetensors file ({detail})."
    return InvalidInputError(problem, fix=fix, source=str(p))


def _expected_size(p: Path, header_len: int) -> int | None:
    try:
        with open(p, "rb") as fh:
            fh.seek(8)
            header = json.loads(fh.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return 8 + header_len + end
    except (ValueError, KeyError, TypeError, OSError):
        return None


def _read_header(p: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str], dict[str, str]]:
    try:
        with safe_open(str(p), framework="pt") as f:
            shapes, dtypes = {}, {}
            names = f.keys()
            for k in names:
                sl = f.get_slice(k)
                shapes[k] = tuple(int(n) for n in sl.get_shape())
                dtypes[k] = str(sl.get_dtype()) if hasattr(sl, "get_dtype") else "?"
            metadata = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise _not_safetensors(p, exc) from None
    return shapes, dtypes, metadata


def _read_config(p: Path, notes: list[str]) -> dict | None:
    cfg = p.parent / "config.json"
    if not cfg.is_file():
        return None
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"config.json beside the file could not be read ({exc}); ignored.")
        return None
    return data if isinstance(data, dict) else None


def _has(keys: Iterable[str], *needles: str) -> bool:
    return any(n in k for k in keys for n in needles)


def _classify(shapes: dict[str, tuple[int, ...]], metadata: dict[str, str]) -> tuple[str, str]:
    keys = list(shapes)
    fmt = metadata.get("format", "")
    if fmt == SVD_DELTA_FORMAT:
        return KIND_SVD_DELTA, f"converted TrackDiffusion SVD delta (from {metadata.get('source', '?')})"
    if fmt == MODELSCOPE_ADAPTER_FORMAT:
        return KIND_MODELSCOPE_ADAPTER, f"converted TrackDiffusion ModelScope adapter (from {metadata.get('source', '?')})"
    if not keys:
        return KIND_UNKNOWN, "an empty safetensors file (no tensors)"
    comfy = [k for k in keys if k.startswith(("model.diffusion_model.", "diffusion_model.", "input_blocks."))]
    if comfy:
        video = _has(comfy, ".time_stack.", ".time_mixer.")
        if _has(comfy, ".fuser.") and not _has(keys, "model.diffusion_model."):
            return KIND_UNKNOWN, ("ComfyUI-named TrackDiffusion tensors without our metadata (a delta whose "
                                  "metadata was lost?)")
        if video:
            extra = " all-in-one (UNet + VAE + CLIP vision)" if _has(keys, "first_stage_model.", "conditioner.") else ""
            return KIND_COMFYUI_SVD, f"ComfyUI/SGM-format SVD{extra} checkpoint: a base model, not TrackDiffusion"
        return KIND_UNKNOWN, "a ComfyUI/SGM-format image model checkpoint (no temporal layers), not SVD"
    unet3d = _has(keys, ".temp_attentions.", ".temp_convs.", "transformer_in.")
    svd = _has(keys, ".temporal_transformer_blocks.", ".time_mixer.", ".spatial_res_block.")
    tracking = _has(keys, ".fuser.") or any(k.startswith("position_net.") for k in keys)
    if tracking and unet3d:
        return KIND_TD_MODELSCOPE, "official TrackDiffusion ModelScope (UNet3D) checkpoint, diffusers naming"
    if tracking and svd:
        return KIND_TD_SVD, "official TrackDiffusion SVD UNet, diffusers naming"
    if tracking:
        return KIND_UNKNOWN, "GLIGEN-style tensors (fuser / position_net) without temporal layers: an image GLIGEN UNet?"
    if svd:
        return KIND_STOCK_SVD, "stock SVD UNet in diffusers naming, without TrackDiffusion's fusers"
    if unet3d:
        return KIND_STOCK_UNET3D, "stock UNet3D (ModelScope text-to-video) in diffusers naming, without TrackDiffusion"
    return KIND_UNKNOWN, "not a UNet this pack knows"


def _stage(config: dict | None, p: Path, notes: list[str]) -> tuple[int | None, str | None]:
    name = str((config or {}).get("_name_or_path", ""))
    m = re.search(r"checkpoint-(\d+)", name)
    if m:
        step = int(m.group(1))
        if step in STAGE_CHECKPOINTS:
            return STAGE_CHECKPOINTS[step], f"config.json: checkpoint-{step}"
        notes.append(f"config.json names checkpoint-{step}, which is neither released stage "
                     f"(stage 1: checkpoint-191500, stage 2: checkpoint-87000).")
        return None, None
    # no usable config.json: the HF folder layout (svd_stage2/unet/...) or a file name such as td_stage2.safetensors
    for part in p.parts[-3:-1]:
        if part.lower() in ("svd_stage1", "svd_stage2"):
            return int(part[-1]), "the folder name"
    m = re.search(r"stage[ _-]?([12])(?![0-9])", p.stem.lower())
    if m:
        return int(m.group(1)), "the file name"
    return None, None


def inspect_checkpoint(path: str | os.PathLike) -> CheckpointInfo:
    """Classify a safetensors file from its header and the ``config.json`` beside it. Loads no tensor.

    Raises InvalidInputError for a missing file, a pickle, an LFS pointer, a web page or a truncated file.
    """
    p = _resolve_source(path)
    shapes, dtypes, metadata = _read_header(p)
    kind, description = _classify(shapes, metadata)
    notes: list[str] = []
    config = _read_config(p, notes) if kind not in (KIND_SVD_DELTA, KIND_MODELSCOPE_ADAPTER) else None
    info = CheckpointInfo(path=p, kind=kind, description=description, shapes=shapes, dtypes=dtypes,
                          metadata=metadata, file_size=p.stat().st_size, config=config, notes=notes)
    if kind in (KIND_SVD_DELTA, KIND_MODELSCOPE_ADAPTER):
        stage = metadata.get("stage", "unknown")
        info.stage = int(stage) if stage in ("1", "2") else None
        info.stage_source = "metadata" if info.stage else None
        info.base = metadata.get("base")
        info.frames = BASE_TO_FRAMES.get(info.base or "")
        return info
    if config is not None:
        cls = config.get("_class_name")
        if cls:
            notes.append(f"config.json: {cls}")
        frames = config.get("num_frames")
        if isinstance(frames, int):
            info.frames = frames
            info.base = FRAMES_TO_BASE.get(frames)
    if kind in (KIND_TD_SVD, KIND_STOCK_SVD):
        info.stage, info.stage_source = _stage(config, p, notes) if kind == KIND_TD_SVD else (None, None)
        if config is None:
            notes.append("no config.json beside the file: stage and frame count (img2vid 14 / XT 25) unknown.")
    return info


# ----------------------------------------------------------------------------------------------------------------
# what each kind must contain


@dataclass
class _Plan:
    """Which source tensors go to which output names, and what to write in the metadata."""

    items: list[tuple[str, str]]  # (source key, output key), sorted by output key
    metadata: dict[str, str]
    warnings: list[str]


def _dim(shapes: dict[str, tuple[int, ...]], key: str, axis: int, default: int) -> int:
    s = shapes.get(key)
    return s[axis] if s is not None and len(s) > axis else default


def _refuse(info: CheckpointInfo, wanted: str) -> InvalidInputError:
    """The error for a file of the wrong kind, naming what the user most likely has."""
    name = info.path.name
    xt = {25: " XT (25-frame)", 14: " img2vid (14-frame)"}.get(info.frames or 0, "")
    svd_fix = f"convert the official TrackDiffusion SVD UNet instead: {OFFICIAL_SVD_FILE}."
    if info.kind == KIND_STOCK_SVD:
        return InvalidInputError(
            f"this is a stock SVD{xt} UNet without TrackDiffusion: it has no fuser or position_net tensors (you "
            f"probably have stabilityai/stable-video-diffusion-img2vid{'-xt' if info.frames == 25 else ''}'s unet).",
            fix=f"use ComfyUI's svd.safetensors as the base model, and {svd_fix}", source=name)
    if info.kind == KIND_COMFYUI_SVD:
        return InvalidInputError(
            f"this is a ComfyUI all-in-one SVD checkpoint ({info.description}): the base model (svd.safetensors "
            "or svd_xt.safetensors), not TrackDiffusion.",
            fix=f"load it with ImageOnlyCheckpointLoader as the base model, and {svd_fix}", source=name)
    if info.kind == KIND_STOCK_UNET3D:
        return InvalidInputError(
            "this is a stock UNet3D (ModelScope text-to-video) without TrackDiffusion's fuser / position_net tensors.",
            fix=f"convert {OFFICIAL_MODELSCOPE_FILE} (or, for SVD, {OFFICIAL_SVD_FILE}).", source=name)
    if info.kind == KIND_TD_MODELSCOPE and wanted == "svd":
        return InvalidInputError(
            "this is TrackDiffusion's ModelScope (UNet3D) checkpoint, not the SVD one.",
            fix=f"convert it with --kind modelscope (convert_modelscope), or {svd_fix}", source=name)
    if info.kind == KIND_TD_SVD and wanted == "modelscope":
        return InvalidInputError(
            "this is TrackDiffusion's SVD checkpoint, not the ModelScope (UNet3D) one.",
            fix="convert it with --kind svd (convert_svd).", source=name)
    if info.kind in (KIND_SVD_DELTA, KIND_MODELSCOPE_ADAPTER):
        return InvalidInputError(
            f"this file is already converted ({info.description}).",
            fix="use it as it is; convert only the official diffusers-format file.", source=name)
    return InvalidInputError(
        f"this is not a TrackDiffusion checkpoint: {info.description}.",
        fix=svd_fix if wanted == "svd" else f"convert {OFFICIAL_MODELSCOPE_FILE}.", source=name)


def _key_error(name: str, what: str, missing: list[str], unexpected: list[str],
               wrong: list[str], hint: str) -> InvalidInputError:
    parts = []
    if missing:
        parts.append(f"{len(missing)} expected keys are missing (first {LIST_LIMIT}: {_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} keys are unexpected (first {LIST_LIMIT}: {_first(unexpected)})")
    if wrong:
        parts.append(f"{len(wrong)} tensors have the wrong shape (first {LIST_LIMIT}: {_first(wrong)})")
    return InvalidInputError(f"this is not a complete {what}: " + "; ".join(parts) + ".", fix=hint, source=name)


def _guess_from_keys(missing: list[str], unexpected: list[str], default: str) -> str:
    if _has(unexpected, ".injector.", ".temp_attentions.", "null_track_feat", "transformer_in."):
        return "the extra keys belong to TrackDiffusion's ModelScope (UNet3D) model: convert it with --kind modelscope."
    if _has(unexpected, "model.diffusion_model.", "input_blocks.", "time_stack"):
        return "the extra keys are ComfyUI/SGM-named: this looks like a ComfyUI checkpoint, not the diffusers UNet."
    if missing and all(".fuser." in k or k.startswith("position_net.") for k in missing):
        return (f"TrackDiffusion tensors are missing: the file is from another GLIGEN build or was cut; "
                f"use {default}.")
    return f"download the official file again: {default}."


def _check_shapes(shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]],
                  show=lambda k: k) -> list[str]:
    return [f"{show(k)} {list(shapes[k])} (expected {list(v)})" for k, v in expected.items()
            if k in shapes and tuple(shapes[k]) != tuple(v)]


def _svd_expected(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """diffusers key -> expected shape of every tensor an SVD delta takes, sized from the file's own channels."""
    c0 = _dim(shapes, f"{ATTENTIONS[0].diffusers}.{FUSER}.norm1.weight", 0, _dim(shapes, "conv_in.weight", 0, 320))
    context = _dim(shapes, "position_net.linears.4.weight", 0,
                   _dim(shapes, f"{ATTENTIONS[0].diffusers}.{FUSER}.linear.weight", 1, 1024))
    pos = _dim(shapes, "position_net.null_position_feature", 0, SVD_POSITION_DIM)
    hidden = _dim(shapes, "position_net.linears.0.weight", 0, 512)
    in_ch = _dim(shapes, "conv_in.weight", 1, 8)
    out_ch = _dim(shapes, "conv_out.weight", 0, 4)
    expected: dict[str, tuple[int, ...]] = {
        "conv_in.weight": (c0, in_ch, 3, 3), "conv_in.bias": (c0,),
        "conv_out.weight": (out_ch, c0, 3, 3), "conv_out.bias": (out_ch,),
    }
    expected.update({f"{s.diffusers}.{MIX_FACTOR}": (1,) for s in RESNETS + ATTENTIONS})
    for s in ATTENTIONS:
        c = c0 * CHANNEL_MULT[s.level]
        expected.update({f"{s.diffusers}.{FUSER}.{k}": v for k, v in fuser_shapes(c, context).items()})
    expected.update(svd_position_net_shapes(pos, hidden, context))
    return expected


_SVD_BASE_KEYS = frozenset(svd_diffusers_keys())


def _svd_output_key(key: str) -> str:
    return key if key.startswith("position_net.") else UNET_PREFIX + diffusers_to_comfyui(key)


def _svd_check(info: CheckpointInfo, *, delta_naming: bool = False) -> tuple[list[str], list[str]]:
    """Validate an official SVD UNet (or, with delta_naming, a stored delta). Returns (diffusers keys, warnings)."""
    shapes = info.shapes
    if delta_naming:
        inverse = {_svd_output_key(k): k for k in _svd_expected({})}
        shapes = {inverse.get(k, k): v for k, v in shapes.items()}
    expected = _svd_expected(shapes)
    warnings: list[str] = []
    extra_pos = sorted(k for k in shapes if k.startswith("position_net.") and k not in expected)
    if extra_pos:
        warnings.append(f"position_net holds {len(extra_pos)} tensors this pack does not use "
                        f"({_first(extra_pos)}); they are copied but ignored.")
    missing = [k for k in expected if k not in shapes]
    if delta_naming:
        allowed = set(expected)
    else:
        base = _SVD_BASE_KEYS - set(expected)
        present_base = base & set(shapes)
        if present_base:  # a whole UNet: every base key must be there; else a "trained tensors only" file
            missing += sorted(base - present_base)
        allowed = set(expected) | base
    unexpected = sorted(k for k in shapes if k not in allowed and k not in extra_pos)
    show = (lambda k: _svd_output_key(k) if k in expected else k) if delta_naming else (lambda k: k)
    wrong = _check_shapes(shapes, expected, show)
    if missing or unexpected or wrong:
        if delta_naming:  # report in the file's own naming
            raise _key_error(info.path.name, "TrackDiffusion SVD delta", [show(k) for k in missing],
                             [show(k) for k in unexpected], wrong,
                             "the delta was edited or written by another tool: convert the official file again "
                             f"({OFFICIAL_SVD_FILE}).")
        raise _key_error(info.path.name, "TrackDiffusion SVD UNet", missing, unexpected, wrong,
                         _guess_from_keys(missing, unexpected, OFFICIAL_SVD_FILE))
    pos = shapes["position_net.null_position_feature"][0]
    if pos != SVD_POSITION_DIM:
        warnings.append(f"position_net takes {pos // 16} numbers per box, not 7 (xyxy + rgb) like the official "
                        "SVD model; this pack's SVD nodes will not be able to use it.")
    return sorted(expected) + extra_pos, warnings


def _svd_head_dim(info: CheckpointInfo) -> int:
    """The attention head width of the UNet's transformers (the fusers use the same heads): from config.json
    (block_out_channels / num_attention_heads, one value for every level), else the official SVD's 64."""
    config = info.config or {}
    channels, heads = config.get("block_out_channels"), config.get("num_attention_heads")
    if channels is None or heads is None:
        return SVD_HEAD_DIM
    heads = list(heads) if isinstance(heads, (list, tuple)) else [heads] * len(channels)
    try:
        dims = {int(c) // int(h) for c, h in zip(channels, heads, strict=True) if int(h) > 0 and int(c) % int(h) == 0}
    except (TypeError, ValueError):
        dims = set()
    if len(dims) != 1:
        raise InvalidInputError(f"{info.path.parent / 'config.json'}: block_out_channels {channels} and "
                                f"num_attention_heads {heads} do not give one attention head size.",
                                fix="use the config.json that came with the checkpoint.")
    return dims.pop()


def _svd_plan(info: CheckpointInfo) -> _Plan:
    if info.kind != KIND_TD_SVD:
        raise _refuse(info, "svd")
    keys, warnings = _svd_check(info)
    if info.stage == 1:
        warnings.append(f"this is the STAGE 1 checkpoint ({info.stage_source}): it was trained to paint coloured box "
                        "outlines into the video. For clean video use svd_stage2/unet from " + OFFICIAL_REPO + ".")
    elif info.stage is None:
        warnings.append("could not tell stage 1 from stage 2 (no config.json with the training step beside the "
                        "file). Stage 1 paints box outlines; the one to use is " + OFFICIAL_SVD_FILE + ".")
    base = info.base or FRAMES_TO_BASE[14]
    if info.frames is None:
        warnings.append("frame count unknown (no num_frames in config.json): assuming the 14-frame SVD img2vid base "
                        "like the official release; load svd.safetensors (not svd_xt) as the base model.")
    elif info.base is None:
        warnings.append(f"config.json says num_frames {info.frames}, neither 14 (img2vid) nor 25 (XT): assuming the "
                        "img2vid base (svd.safetensors).")
    elif base == "svd_img2vid_xt":
        warnings.append("config.json says num_frames 25: this UNet was fine-tuned from SVD-XT, so load "
                        "svd_xt.safetensors as the base model (the official release is img2vid, 14 frames).")
    metadata = {
        "format": SVD_DELTA_FORMAT, "version": FORMAT_VERSION, "base": base,
        "stage": str(info.stage) if info.stage else "unknown", "source": info.path.name,
        "head_dim": str(_svd_head_dim(info)),
    }
    if warnings:
        metadata["warnings"] = "\n".join(warnings)
    items = sorted(((k, _svd_output_key(k)) for k in keys), key=lambda kv: kv[1])
    return _Plan(items, metadata, warnings)


_MODELSCOPE_ADDED = (".fuser.", f".{INJECTOR.rsplit('.', 1)[1]}.", "position_net.", "null_track_feat", "time_embedder")


def _modelscope_expected(shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    p = "position_net."
    fuser0 = f"{ATTENTIONS[0].diffusers}.{FUSER}"
    return modelscope_adapter_shapes(
        model_channels=_dim(shapes, f"{fuser0}.norm1.weight", 0, _dim(shapes, "conv_in.weight", 0, 320)),
        context_dim=_dim(shapes, p + "linears.4.weight", 0, _dim(shapes, f"{fuser0}.linear.weight", 1, 768)),
        position_dim=_dim(shapes, p + "null_position_feature", 0, 64),
        hidden=_dim(shapes, p + "linears.0.weight", 0, 512),
        slots=_dim(shapes, p + "instance_embedding.weight", 0, 20),
        attn_dim=_dim(shapes, p + "tracklet_attn.to_q.weight", 0, 128),
        tracklet_dim=_dim(shapes, p + "tracklet_linears.2.weight", 0, 128),
        frame_positions=_dim(shapes, "transformer_in.time_embedder.weight", 0, 16),
    )


def _modelscope_plan(info: CheckpointInfo, *, stored: bool = False) -> _Plan:
    if info.kind != (KIND_MODELSCOPE_ADAPTER if stored else KIND_TD_MODELSCOPE):
        raise _refuse(info, "modelscope")
    shapes = info.shapes
    expected = _modelscope_expected(shapes)
    missing = [k for k in expected if k not in shapes]
    # the base UNet3D keys are not checked one by one; every TrackDiffusion-added key must be known
    unexpected = sorted(k for k in shapes if k not in expected and (stored or _has([k], *_MODELSCOPE_ADDED)))
    wrong = _check_shapes(shapes, expected)
    if missing or unexpected or wrong:
        what = "TrackDiffusion ModelScope adapter" if stored else "TrackDiffusion ModelScope checkpoint"
        raise _key_error(info.path.name, what, missing, unexpected, wrong,
                         f"download the official file again: {OFFICIAL_MODELSCOPE_FILE}.")
    metadata = {"format": MODELSCOPE_ADAPTER_FORMAT, "version": FORMAT_VERSION, "base": "modelscope_t2v",
                "source": info.metadata.get("source", info.path.name) if stored else info.path.name}
    return _Plan([(k, k) for k in sorted(expected)], metadata, [])


# ----------------------------------------------------------------------------------------------------------------
# streaming, writing


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        if dtype is not None and not dtype.is_floating_point:
            raise InvalidInputError(f"dtype {dtype} is not a floating-point type.", fix="use fp16, bf16 or fp32.")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPE_ALIASES:
        raise InvalidInputError(f"unknown dtype '{dtype}'.", fix="use fp16, bf16 or fp32.")
    return _DTYPE_ALIASES[key]


def _target_dtype(src: str, dtype: torch.dtype | None) -> torch.dtype:
    t = _ST_DTYPES.get(src)
    if t is None:
        raise InvalidInputError(f"unsupported tensor dtype {src} in the file.", fix="use an fp32/fp16/bf16 file.")
    return dtype if dtype is not None and t.is_floating_point else t


def _stream(path: Path, plan: _Plan, dtype: torch.dtype | None) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (output key, tensor) one at a time, each loaded alone through safe_open and cast."""
    with safe_open(str(path), framework="pt") as f:
        for src, dst in plan.items:
            t = f.get_tensor(src)
            if dtype is not None and t.is_floating_point() and t.dtype != dtype:
                t = t.to(dtype)
            yield dst, t


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")


def _write_stream(fh, entries: list[tuple[str, torch.dtype, tuple[int, ...]]],
                  tensors: Iterator[tuple[str, torch.Tensor]], metadata: dict[str, str]) -> int:
    """Write a safetensors file: the header from known names/dtypes/shapes, then each tensor as it arrives."""
    header: dict[str, object] = {}
    offset = 0
    for name, dt, shape in entries:
        n = math.prod(shape) * dt.itemsize
        header[name] = {"dtype": _ST_NAMES[dt], "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    fh.write(len(raw).to_bytes(8, "little"))
    fh.write(raw)
    for (name, dt, shape), (got, t) in zip(entries, tensors, strict=True):
        if got != name or t.dtype != dt or tuple(t.shape) != tuple(shape):
            raise RuntimeError(f"internal error: {got} {t.dtype} {tuple(t.shape)} != {name} {dt} {shape}")
        fh.write(_tensor_bytes(t))
    return 8 + len(raw) + offset


def _resolve_destination(dst: str | os.PathLike, src: Path, default_name: str, overwrite: bool) -> Path:
    d = Path(dst).expanduser()
    if d.is_dir() or (not d.exists() and not d.suffix):  # an existing folder, or a new one (no file suffix)
        d = d / default_name
    if d.suffix.lower() != ".safetensors":
        raise InvalidInputError("the output file name must end in .safetensors.",
                                fix=f"e.g. {d.with_suffix('.safetensors').name}.", source=str(d))
    if d.exists():
        if d.resolve() == src.resolve():
            raise InvalidInputError("the output is the input file itself.", fix="choose another output name.",
                                    source=str(d))
        if not overwrite:
            raise InvalidInputError("the output file already exists; not overwriting it.",
                                    fix="choose another name, or pass --overwrite (overwrite=True).", source=str(d))
    return d


def _atomic_write(dst: Path, write, size: int) -> None:
    """Write through a temporary file in dst's folder, then rename it into place; no partial file is ever left."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dst.parent).free
    if free < size:
        raise InvalidInputError(f"not enough disk space: {size / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free.",
                                fix="free some space or write to another folder.", source=str(dst))
    try:
        atomic_write(dst, write)
    except OSError as exc:
        raise InvalidInputError(f"could not write the output ({exc.strerror or exc}).",
                                fix="check the folder's permissions and free space.", source=str(dst)) from exc


@dataclass
class ConvertResult:
    path: Path  #: the file written
    kind: str  #: KIND_SVD_DELTA or KIND_MODELSCOPE_ADAPTER
    metadata: dict[str, str]
    warnings: list[str]
    num_tensors: int
    num_bytes: int
    source: CheckpointInfo


def _convert(info: CheckpointInfo, plan: _Plan, kind: str, dst: str | os.PathLike, dtype, overwrite: bool,
             default_name: str) -> ConvertResult:
    dt = _as_dtype(dtype)
    out = _resolve_destination(dst, info.path, default_name, overwrite)
    entries = [(o, _target_dtype(info.dtypes[s], dt), info.shapes[s]) for s, o in plan.items]
    size = 8 + sum(math.prod(sh) * d.itemsize for _, d, sh in entries) + 4096 + 64 * len(entries)
    written = {}

    def write(fh):
        written["bytes"] = _write_stream(fh, entries, _stream(info.path, plan, dt), plan.metadata)

    _atomic_write(out, write, size)
    return ConvertResult(out, kind, dict(plan.metadata), list(plan.warnings), len(entries), written["bytes"], info)


def _dtype_tag(dtype) -> str:
    dt = _as_dtype(dtype)
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}.get(dt, "src")


def convert_svd(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | str = torch.float16, *,
                overwrite: bool = False) -> ConvertResult:
    """Write the ComfyUI-named SVD delta of an official TrackDiffusion SVD UNet (see the module docstring).

    ``dst`` may be a folder (the file is then named ``trackdiffusion_svd_stage<N>_<dtype>.safetensors``). Stage 1,
    unknown stage and an XT base are reported in ``result.warnings`` (and stored in the file's metadata).
    """
    info = inspect_checkpoint(src)
    plan = _svd_plan(info)
    stage = f"_stage{info.stage}" if info.stage else ""
    name = f"trackdiffusion_svd{stage}_{_dtype_tag(dtype)}.safetensors"
    return _convert(info, plan, KIND_SVD_DELTA, dst, dtype, overwrite, name)


def convert_modelscope(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | str = torch.float16, *,
                       overwrite: bool = False) -> ConvertResult:
    """Write our ModelScope adapter file: TrackDiffusion's added UNet3D tensors, diffusers naming."""
    info = inspect_checkpoint(src)
    plan = _modelscope_plan(info)
    name = f"trackdiffusion_modelscope_adapter_{_dtype_tag(dtype)}.safetensors"
    return _convert(info, plan, KIND_MODELSCOPE_ADAPTER, dst, dtype, overwrite, name)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, kind: str = "auto",
            dtype: torch.dtype | str = torch.float16, *, overwrite: bool = False) -> ConvertResult:
    """:func:`convert_svd` or :func:`convert_modelscope`; ``kind`` "auto" picks from the file's keys."""
    if kind not in ("auto", "svd", "modelscope"):
        raise InvalidInputError(f"unknown kind '{kind}'.", fix="use auto, svd or modelscope.")
    if kind == "auto":
        kind = "modelscope" if inspect_checkpoint(src).kind == KIND_TD_MODELSCOPE else "svd"
    fn = convert_modelscope if kind == "modelscope" else convert_svd
    return fn(src, dst, dtype, overwrite=overwrite)


def load_delta(path: str | os.PathLike, dtype: torch.dtype | str | None = None
               ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a converted SVD delta / ModelScope adapter, or convert an official file on the fly (in memory).

    Returns (tensors, metadata); the tensors are named as in the converted file, ``dtype`` None keeps the stored
    dtype. Warnings of an on-the-fly conversion are in ``metadata["warnings"]`` (newline-separated), as in a file.
    """
    info = inspect_checkpoint(path)
    dt = _as_dtype(dtype)
    if info.kind in (KIND_SVD_DELTA, KIND_MODELSCOPE_ADAPTER):
        version = info.metadata.get("version")
        if version != FORMAT_VERSION:
            raise InvalidInputError(f"this converted file has format version {version!r}; this pack reads "
                                    f"version {FORMAT_VERSION}.",
                                    fix="update the pack, or convert the official file again.", source=info.path.name)
        if info.kind == KIND_SVD_DELTA:
            keys, _ = _svd_check(info, delta_naming=True)
            plan = _Plan([(k, k) for k in sorted(_svd_output_key(k) for k in keys)], dict(info.metadata), [])
        else:
            plan = _modelscope_plan(info, stored=True)
            plan.metadata = dict(info.metadata)
    elif info.kind == KIND_TD_MODELSCOPE:
        plan = _modelscope_plan(info)
    else:
        plan = _svd_plan(info)
    return dict(_stream(info.path, plan, dt)), dict(plan.metadata)
