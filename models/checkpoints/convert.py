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

This module streams and writes; :mod:`.inspect` reads headers and classifies files, :mod:`.plans` knows what each
kind must contain.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from ...data.atomic import atomic_write
from ...data.errors import InvalidInputError
from ...data.progress import ProgressCallback, report
from ..svd.naming import diffusers_to_comfyui  # noqa: F401  (importable from here as before the split)
from .inspect import (
    FORMAT_VERSION,
    KIND_COMFYUI_SVD,
    KIND_MODELSCOPE_ADAPTER,
    KIND_STOCK_SVD,
    KIND_STOCK_UNET3D,
    KIND_SVD_DELTA,
    KIND_TD_MODELSCOPE,
    KIND_TD_SVD,
    KIND_UNKNOWN,
    MODELSCOPE_ADAPTER_FORMAT,
    SVD_DELTA_FORMAT,
    CheckpointInfo,
    inspect_checkpoint,
)
from .plans import (
    _modelscope_plan,
    _Plan,
    _svd_check,
    _svd_expected,  # noqa: F401  (importable from here as before the split)
    _svd_output_key,
    _svd_plan,
)

__all__ = [
    "FORMAT_VERSION", "KIND_COMFYUI_SVD", "KIND_MODELSCOPE_ADAPTER", "KIND_STOCK_SVD", "KIND_STOCK_UNET3D",
    "KIND_SVD_DELTA", "KIND_TD_MODELSCOPE", "KIND_TD_SVD", "KIND_UNKNOWN", "MODELSCOPE_ADAPTER_FORMAT",
    "SVD_DELTA_FORMAT", "CheckpointInfo", "ConvertResult", "convert_checkpoint", "convert_modelscope", "convert_svd",
    "inspect_checkpoint", "load_delta",
]

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


def _stream(path: Path, plan: _Plan, dtype: torch.dtype | None, progress: ProgressCallback | None = None
            ) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (output key, tensor) one at a time, each loaded alone through safe_open and cast; ``progress(done,
    total)`` counts the tensors (0 when the first is read, ``total`` after the last)."""
    total = len(plan.items)
    with safe_open(str(path), framework="pt") as f:
        report(progress, 0, total)
        for i, (src, dst) in enumerate(plan.items, start=1):
            t = f.get_tensor(src)
            if dtype is not None and t.is_floating_point() and t.dtype != dtype:
                t = t.to(dtype)
            yield dst, t
            report(progress, i, total)


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
                                    fix="choose another name, or pass --force (overwrite=True).", source=str(d))
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
             default_name: str, progress: ProgressCallback | None = None) -> ConvertResult:
    dt = _as_dtype(dtype)
    out = _resolve_destination(dst, info.path, default_name, overwrite)
    entries = [(o, _target_dtype(info.dtypes[s], dt), info.shapes[s]) for s, o in plan.items]
    size = 8 + sum(math.prod(sh) * d.itemsize for _, d, sh in entries) + 4096 + 64 * len(entries)
    written = {}

    def write(fh):
        written["bytes"] = _write_stream(fh, entries, _stream(info.path, plan, dt, progress), plan.metadata)

    _atomic_write(out, write, size)
    return ConvertResult(out, kind, dict(plan.metadata), list(plan.warnings), len(entries), written["bytes"], info)


def _dtype_tag(dtype) -> str:
    dt = _as_dtype(dtype)
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}.get(dt, "src")


def convert_svd(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | str = torch.float16, *,
                overwrite: bool = False, progress: ProgressCallback | None = None) -> ConvertResult:
    """Write the ComfyUI-named SVD delta of an official TrackDiffusion SVD UNet (see the module docstring).

    ``dst`` may be a folder (the file is then named ``trackdiffusion_svd_stage<N>_<dtype>.safetensors``). Stage 1,
    unknown stage and an XT base are reported in ``result.warnings`` (and stored in the file's metadata).
    ``progress(done, total)`` counts the tensors written (see :mod:`trackdiffusion.data.progress`).
    """
    info = inspect_checkpoint(src)
    plan = _svd_plan(info)
    stage = f"_stage{info.stage}" if info.stage else ""
    name = f"trackdiffusion_svd{stage}_{_dtype_tag(dtype)}.safetensors"
    return _convert(info, plan, KIND_SVD_DELTA, dst, dtype, overwrite, name, progress)


def convert_modelscope(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | str = torch.float16, *,
                       overwrite: bool = False, progress: ProgressCallback | None = None) -> ConvertResult:
    """Write our ModelScope adapter file: TrackDiffusion's added UNet3D tensors, diffusers naming (``progress`` as in
    :func:`convert_svd`)."""
    info = inspect_checkpoint(src)
    plan = _modelscope_plan(info)
    name = f"trackdiffusion_modelscope_adapter_{_dtype_tag(dtype)}.safetensors"
    return _convert(info, plan, KIND_MODELSCOPE_ADAPTER, dst, dtype, overwrite, name, progress)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, kind: str = "auto",
            dtype: torch.dtype | str = torch.float16, *, overwrite: bool = False,
            progress: ProgressCallback | None = None) -> ConvertResult:
    """:func:`convert_svd` or :func:`convert_modelscope`; ``kind`` "auto" picks from the file's keys."""
    if kind not in ("auto", "svd", "modelscope"):
        raise InvalidInputError(f"unknown kind '{kind}'.", fix="use auto, svd or modelscope.")
    if kind == "auto":
        kind = "modelscope" if inspect_checkpoint(src).kind == KIND_TD_MODELSCOPE else "svd"
    fn = convert_modelscope if kind == "modelscope" else convert_svd
    return fn(src, dst, dtype, overwrite=overwrite, progress=progress)


def load_delta(path: str | os.PathLike, dtype: torch.dtype | str | None = None, *,
               progress: ProgressCallback | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a converted SVD delta / ModelScope adapter, or convert an official file on the fly (in memory).

    Returns (tensors, metadata); the tensors are named as in the converted file, ``dtype`` None keeps the stored
    dtype. Warnings of an on-the-fly conversion are in ``metadata["warnings"]`` (newline-separated), as in a file.
    ``progress(done, total)`` counts the tensors read (the whole work of an on-the-fly conversion).
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
    return dict(_stream(info.path, plan, dt, progress)), dict(plan.metadata)
