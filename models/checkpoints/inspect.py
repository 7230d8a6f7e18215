"""Read a safetensors header (and the ``config.json`` beside it) and tell what the file is.

:func:`inspect_checkpoint` classifies a file (official TrackDiffusion SVD / ModelScope UNet, stock UNet, ComfyUI
checkpoint, our converted delta / adapter) without loading a tensor, and explains files that are not safetensors at
all (pickles, Git LFS pointers, web pages, cut-off downloads). The format names and kinds live here.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError, safe_open

from ...data.errors import InvalidInputError
from ..tiny_svd.config import UNET_CONFIG as TINY_SVD_UNET_CONFIG

SVD_DELTA_FORMAT = "trackdiffusion.svd_delta"
MODELSCOPE_ADAPTER_FORMAT = "trackdiffusion.modelscope_adapter"
FORMAT_VERSION = "1"

# what a file can be
KIND_TD_SVD = "trackdiffusion_svd"  #: official TrackDiffusion SVD UNet (diffusers naming, fusers + position_net)
KIND_TD_MODELSCOPE = "trackdiffusion_modelscope"  #: official TrackDiffusion ModelScope UNet3D
KIND_STOCK_SVD = "stock_svd_diffusers"  #: a diffusers SVD UNet without TrackDiffusion
KIND_STOCK_UNET3D = "stock_unet3d_diffusers"  #: a diffusers UNet3D (ModelScope T2V) without TrackDiffusion
KIND_COMFYUI_SVD = "comfyui_svd"  #: a ComfyUI / SGM-format SVD checkpoint (``model.diffusion_model.*``)
KIND_SVD_DELTA = "svd_delta"  #: our converted SVD delta
KIND_MODELSCOPE_ADAPTER = "modelscope_adapter"  #: our converted ModelScope adapter
KIND_DEMO = "demo_model"  #: the convolution-only demo model's weights (`trackdiffusion demo`)
KIND_UNKNOWN = "unknown"
#: metadata format of the demo model's weights (written by models/demo/train.py)
DEMO_FORMAT = "trackdiffusion.demo_box_i2v"

OFFICIAL_REPO = "pengxiang/trackdiffusion_ytvis"
OFFICIAL_SVD_FILE = f"{OFFICIAL_REPO}: svd_stage2/unet/diffusion_pytorch_model.safetensors (6.95 GB)"
OFFICIAL_MODELSCOPE_FILE = f"{OFFICIAL_REPO}: modelscope_ft/unet/diffusion_pytorch_model.safetensors"

#: training step in config.json ``_name_or_path`` of the released SVD files -> stage
STAGE_CHECKPOINTS = {191500: 1, 87000: 2}
FRAMES_TO_BASE = {14: "svd_img2vid", 25: "svd_img2vid_xt"}
#: the pack's own tiny SVD (``models/tiny_svd``, Load Tiny SVD): told apart from SVD by its config's widths
TINY_SVD_BASE = "tiny_svd"
BASE_TO_FRAMES = {**{v: k for k, v in FRAMES_TO_BASE.items()}, TINY_SVD_BASE: 16}


def is_tiny_svd(config) -> bool:
    """Whether a diffusers SVD UNet config (a dict or diffusers' FrozenDict) is the pack's tiny SVD's."""
    return (list(config.get("block_out_channels") or ()) == list(TINY_SVD_UNET_CONFIG["block_out_channels"])
            and config.get("num_frames") == TINY_SVD_UNET_CONFIG["num_frames"])


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
    if fmt == DEMO_FORMAT:
        return KIND_DEMO, (f"the pack's convolution-only demo model (`trackdiffusion demo`, {metadata.get('steps', '?')} "
                           "training steps): not a UNet to convert")
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
    m = re.search(r"svd_stage([12])(?![0-9])", name)  # the release's own names, and `trackdiffusion train`'s
    if m:
        return int(m.group(1)), f"config.json: {name}"
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
        if is_tiny_svd(config):
            info.base = TINY_SVD_BASE
    if kind in (KIND_TD_SVD, KIND_STOCK_SVD):
        info.stage, info.stage_source = _stage(config, p, notes) if kind == KIND_TD_SVD else (None, None)
        if config is None:
            notes.append("no config.json beside the file: stage and frame count (img2vid 14 / XT 25) unknown.")
    return info
