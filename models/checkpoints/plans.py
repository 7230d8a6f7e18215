"""What each checkpoint kind must contain, and the conversion plan built from it.

For an official SVD UNet, a stored SVD delta, an official ModelScope UNet3D or a stored ModelScope adapter: the
expected keys and shapes (sized from the file's own channels), the errors naming what is missing, unexpected or
mis-shaped (and what the user most likely has instead), and the :class:`_Plan` (source key -> output key, metadata,
warnings) that :mod:`.convert` streams.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...data.errors import InvalidInputError
from ..modelscope.naming import INJECTOR, modelscope_adapter_shapes, stage2_finetuned
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
from .inspect import (
    FORMAT_VERSION,
    FRAMES_TO_BASE,
    KIND_COMFYUI_SVD,
    KIND_MODELSCOPE_ADAPTER,
    KIND_STOCK_SVD,
    KIND_STOCK_UNET3D,
    KIND_SVD_DELTA,
    KIND_TD_MODELSCOPE,
    KIND_TD_SVD,
    MODELSCOPE_ADAPTER_FORMAT,
    OFFICIAL_MODELSCOPE_FILE,
    OFFICIAL_REPO,
    OFFICIAL_SVD_FILE,
    SVD_DELTA_FORMAT,
    TINY_SVD_BASE,
    CheckpointInfo,
    _has,
)

UNET_PREFIX = "diffusion_model."
SVD_POSITION_DIM = 112  # 8 Fourier frequencies x (sin, cos) x 7 box numbers (xyxy + rgb)
SVD_HEAD_DIM = 64  # the official SVD's attention head width (block_out_channels / num_attention_heads)
LIST_LIMIT = 20


def _first(items: Iterable[str], limit: int = LIST_LIMIT) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


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
    mult = _channel_mult(shapes, c0)
    for s in ATTENTIONS:
        c = c0 * mult[s.level]
        expected.update({f"{s.diffusers}.{FUSER}.{k}": v for k, v in fuser_shapes(c, context).items()})
    expected.update(svd_position_net_shapes(pos, hidden, context))
    return expected


def _channel_mult(shapes: dict[str, tuple[int, ...]], c0: int) -> tuple[int, ...]:
    """The file's channel multiplier per level (SVD's (1, 2, 4, 4) where the file does not say): from a level's first
    residual block, else from a fuser of that level."""
    mult = []
    for level, default in enumerate(CHANNEL_MULT):
        channels = _dim(shapes, f"down_blocks.{level}.resnets.0.spatial_res_block.conv1.weight", 0, 0)
        if not channels:
            fusers = [s for s in ATTENTIONS if s.level == level]
            channels = next((shapes[k][0] for s in fusers if (k := f"{s.diffusers}.{FUSER}.norm1.weight") in shapes
                             and shapes[k]), 0)
        mult.append(channels // c0 if channels and c0 and channels % c0 == 0 else default)
    return tuple(mult)



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
        base = frozenset(svd_diffusers_keys(_channel_mult(shapes, _dim(shapes, "conv_in.weight", 0, 320)))) \
            - set(expected)
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
    elif base == TINY_SVD_BASE:
        pass  # the pack's tiny SVD: Load Tiny SVD gives the base model, nothing to warn about
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
    """The added TrackDiffusion tensors plus the base tensors the official stage 2 fine-tuned (every temporal layer and
    ``transformer_in``), so that the adapter on the stock pretrain folder is the model TrackDiffusion trained."""
    if info.kind != (KIND_MODELSCOPE_ADAPTER if stored else KIND_TD_MODELSCOPE):
        raise _refuse(info, "modelscope")
    shapes = info.shapes
    expected = _modelscope_expected(shapes)
    finetuned = sorted(k for k in shapes if k not in expected and stage2_finetuned(k))
    missing = [k for k in expected if k not in shapes]
    # the base UNet3D keys are not checked one by one; every TrackDiffusion-added key must be known
    unexpected = sorted(k for k in shapes if k not in expected and not stage2_finetuned(k)
                        and (stored or _has([k], *_MODELSCOPE_ADDED)))
    wrong = _check_shapes(shapes, expected)
    if missing or unexpected or wrong:
        what = "TrackDiffusion ModelScope adapter" if stored else "TrackDiffusion ModelScope checkpoint"
        raise _key_error(info.path.name, what, missing, unexpected, wrong,
                         f"download the official file again: {OFFICIAL_MODELSCOPE_FILE}.")
    if not finetuned:
        raise InvalidInputError(
            f"{info.path.name} holds TrackDiffusion's added tensors but not the temporal layers stage 2 fine-tuned "
            "(temp_convs, temp_attentions, transformer_in): on the stock pretrain folder it would run un-fine-tuned "
            "temporal layers." + (" It was converted by an older version of this pack." if stored else ""),
            fix=f"convert the official file again: trackdiffusion weights convert {OFFICIAL_MODELSCOPE_FILE} "
                "ComfyUI/models/trackdiffusion/ (or load that file directly).", source=str(info.path))
    metadata = {"format": MODELSCOPE_ADAPTER_FORMAT, "version": FORMAT_VERSION, "base": "modelscope_t2v",
                "source": info.metadata.get("source", info.path.name) if stored else info.path.name,
                "finetuned_base_tensors": str(len(finetuned))}
    return _Plan([(k, k) for k in sorted([*expected, *finetuned])], metadata, [])