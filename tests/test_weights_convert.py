"""Checkpoint inspection, conversion, loading and the ``weights`` CLI, on tiny stand-ins of the official files.

The stand-ins carry the REAL key names (the committed diffusers / ComfyUI lists) with scalar base tensors, and the
TrackDiffusion tensors at small but consistent channel sizes (C = 4, 8, 16 instead of 320, 640, 1280).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors.torch import save_file

import trackdiffusion.models.checkpoints.convert as conv
import trackdiffusion.models.checkpoints.inspect as checkpoint_inspect
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.models.checkpoints import (
    KIND_COMFYUI_SVD,
    KIND_MODELSCOPE_ADAPTER,
    KIND_STOCK_SVD,
    KIND_SVD_DELTA,
    KIND_TD_MODELSCOPE,
    KIND_TD_SVD,
    KIND_UNKNOWN,
    convert_checkpoint,
    convert_modelscope,
    convert_svd,
    inspect_checkpoint,
    load_delta,
)
from trackdiffusion.models.checkpoints.cli import add_weights_parser
from trackdiffusion.models.checkpoints.cli import main as cli_main
from trackdiffusion.models.modelscope.naming import modelscope_adapter_shapes

DATA = Path(__file__).resolve().parent / "data"
DIFFUSERS = {k: tuple(s) for k, s in json.loads((DATA / "svd_diffusers_keys.json").read_text())["keys"]}
COMFY = {k: tuple(s) for k, s in json.loads((DATA / "svd_comfyui_keys.json").read_text())["keys"]}

C0, CTX, HID, POS = 4, 6, 8, 112
MULT = {0: 1, 1: 2, 2: 4}  # channel multiplier of each diffusers block level for the transformers
# GatedSelfAttentionDense sub-keys as in the reference table (3.2), written out independently of the package
FUSER = {
    "linear.weight": lambda c: (c, CTX), "linear.bias": lambda c: (c,),
    "attn.to_q.weight": lambda c: (c, c), "attn.to_k.weight": lambda c: (c, c), "attn.to_v.weight": lambda c: (c, c),
    "attn.to_out.0.weight": lambda c: (c, c), "attn.to_out.0.bias": lambda c: (c,),
    "ff.net.0.proj.weight": lambda c: (8 * c, c), "ff.net.0.proj.bias": lambda c: (8 * c,),
    "ff.net.2.weight": lambda c: (c, 4 * c), "ff.net.2.bias": lambda c: (c,),
    "norm1.weight": lambda c: (c,), "norm1.bias": lambda c: (c,), "norm2.weight": lambda c: (c,),
    "norm2.bias": lambda c: (c,), "alpha_attn": lambda c: (), "alpha_dense": lambda c: (),
}
SVD_ATTN = ([f"down_blocks.{b}.attentions.{j}" for b in range(3) for j in range(2)] + ["mid_block.attentions.0"]
            + [f"up_blocks.{b}.attentions.{j}" for b in (1, 2, 3) for j in range(3)])
N_DELTA = 16 * 17 + 7 + 4 + 38  # fusers, position_net, conv_in/out, mix factors


def _channels(attn: str) -> int:
    if attn.startswith("mid_block"):
        return 4 * C0
    b = int(attn.split(".")[1])
    return C0 * (MULT[b] if attn.startswith("down") else {1: 4, 2: 2, 3: 1}[b])


def delta_source_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {"conv_in.weight": (C0, 8, 3, 3), "conv_in.bias": (C0,), "conv_out.weight": (4, C0, 3, 3),
              "conv_out.bias": (4,)}
    shapes.update({k: (1,) for k in DIFFUSERS if k.endswith("time_mixer.mix_factor")})
    for a in SVD_ATTN:
        shapes.update({f"{a}.transformer_blocks.0.fuser.{k}": f(_channels(a)) for k, f in FUSER.items()})
    shapes.update({"position_net.linears.0.weight": (HID, POS), "position_net.linears.0.bias": (HID,),
                   "position_net.linears.2.weight": (HID, HID), "position_net.linears.2.bias": (HID,),
                   "position_net.linears.4.weight": (CTX, HID), "position_net.linears.4.bias": (CTX,),
                   "position_net.null_position_feature": (POS,)})
    return shapes


def _tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}


def svd_tensors(*, base=True, fusers=True) -> dict[str, torch.Tensor]:
    tensors = {k: torch.zeros(()) for k in DIFFUSERS} if base else {}
    if fusers:
        tensors.update(_tensors(delta_source_shapes()))
    else:
        tensors.update(_tensors({k: s for k, s in delta_source_shapes().items()
                                 if k.startswith(("conv_", "down_", "mid_", "up_")) and ".fuser." not in k}))
    return tensors


def write_ckpt(folder: Path, tensors: dict, config: dict | None = None,
               name: str = "diffusion_pytorch_model.safetensors", metadata: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return path


def svd_config(step: int = 87000, frames: int = 14) -> dict:
    return {"_class_name": "UNetSpatioTemporalConditionModel", "_diffusers_version": "0.24.0.dev0",
            "_name_or_path": f"/data/SVD_Xtend/outputs/checkpoint-{step}", "num_frames": frames, "in_channels": 8}


@pytest.fixture(scope="module")
def stage2(tmp_path_factory) -> Path:
    return write_ckpt(tmp_path_factory.mktemp("hf") / "svd_stage2" / "unet", svd_tensors(), svd_config())


MS_SHAPES = modelscope_adapter_shapes(model_channels=C0, context_dim=CTX, position_dim=8, hidden=HID, slots=3,
                                      attn_dim=4, tracklet_dim=5, frame_positions=3)
MS_BASE = ["conv_in.weight", "transformer_in.proj_in.weight", "down_blocks.0.temp_convs.0.conv1.0.weight",
           "down_blocks.0.temp_attentions.0.proj_in.weight", "up_blocks.1.attentions.0.proj_in.weight"]


@pytest.fixture(scope="module")
def modelscope(tmp_path_factory) -> Path:
    tensors = {k: torch.zeros(()) for k in MS_BASE} | _tensors(MS_SHAPES, seed=1)
    cfg = {"_class_name": "UNet3DConditionModel", "_diffusers_version": "0.21.0.dev0", "attention_type": "gated"}
    return write_ckpt(tmp_path_factory.mktemp("hf") / "modelscope_ft" / "unet", tensors, cfg)


class CountingOpen:
    """Stands in for safe_open and counts the tensors loaded through it."""

    def __init__(self):
        self.loaded: list[str] = []

    def __call__(self, *a, **kw):
        real = safetensors.safe_open(*a, **kw)
        outer = self

        class Handle:
            def __enter__(self):
                self.f = real.__enter__()
                return self

            def __exit__(self, *exc):
                return real.__exit__(*exc)

            def get_tensor(self, k):
                outer.loaded.append(k)
                return self.f.get_tensor(k)

            def __getattr__(self, name):
                return getattr(self.f, name)

        return Handle()


@pytest.fixture
def no_full_loads(monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("a whole checkpoint was loaded")

    for mod, name in ((safetensors.torch, "load_file"), (safetensors.torch, "load"), (torch, "load")):
        monkeypatch.setattr(mod, name, refuse)
    counter = CountingOpen()
    monkeypatch.setattr(conv, "safe_open", counter)  # streaming tensors
    monkeypatch.setattr(checkpoint_inspect, "safe_open", counter)  # reading headers
    return counter


def _message(exc_info) -> str:
    return str(exc_info.value)


# ---- classification ---------------------------------------------------------------------------------------------


def test_inspect_official_svd_stage2_reads_the_header_only(stage2, no_full_loads):
    info = inspect_checkpoint(stage2)
    assert no_full_loads.loaded == []
    assert (info.kind, info.stage, info.frames, info.base) == (KIND_TD_SVD, 2, 14, "svd_img2vid")
    assert "checkpoint-87000" in info.stage_source
    assert info.num_tensors == 1428 + 16 * 17 + 7
    assert inspect_checkpoint(stage2.parent.parent).path == stage2  # the svd_stage2 folder works too
    assert "trackdiffusion_svd" in info.summary()


def test_inspect_stage1_xt_and_names(tmp_path):
    p = write_ckpt(tmp_path / "a", svd_tensors(), svd_config(191500, 25))
    info = inspect_checkpoint(p)
    assert (info.stage, info.frames, info.base) == (1, 25, "svd_img2vid_xt")
    p = write_ckpt(tmp_path / "b", svd_tensors(), None, name="trackdiffusion_stage1.safetensors")
    info = inspect_checkpoint(p)
    assert (info.stage, info.stage_source, info.frames) == (1, "the file name", None)
    assert any("no config.json" in n for n in info.notes)
    p = write_ckpt(tmp_path / "c", svd_tensors(), svd_config(12345))
    info = inspect_checkpoint(p)
    assert info.stage is None and any("checkpoint-12345" in n for n in info.notes)
    p = write_ckpt(tmp_path / "svd_stage2" / "unet", svd_tensors(), None)
    assert inspect_checkpoint(p).stage_source == "the folder name" and inspect_checkpoint(p).stage == 2


def test_inspect_other_kinds(tmp_path, modelscope, stage2):
    assert inspect_checkpoint(modelscope).kind == KIND_TD_MODELSCOPE
    stock = write_ckpt(tmp_path / "stock", {k: torch.zeros(()) for k in DIFFUSERS}, svd_config(frames=25))
    assert inspect_checkpoint(stock).kind == KIND_STOCK_SVD
    comfy = {"model.diffusion_model." + k: torch.zeros(()) for k in COMFY}
    comfy |= {"first_stage_model.decoder.conv_in.weight": torch.zeros(()),
              "conditioner.embedders.0.open_clip.model.visual.proj": torch.zeros(())}
    info = inspect_checkpoint(write_ckpt(tmp_path / "comfy", comfy, name="svd.safetensors"))
    assert info.kind == KIND_COMFYUI_SVD and "all-in-one" in info.description
    unet_only = write_ckpt(tmp_path / "comfy2", {k: torch.zeros(()) for k in COMFY}, name="svd_unet.safetensors")
    assert inspect_checkpoint(unet_only).kind == KIND_COMFYUI_SVD
    assert inspect_checkpoint(write_ckpt(tmp_path / "x", {"a.b": torch.zeros(2)})).kind == KIND_UNKNOWN
    gligen = write_ckpt(tmp_path / "g", {"down_blocks.0.attentions.0.transformer_blocks.0.fuser.alpha_attn":
                                         torch.zeros(()), "position_net.linears.0.weight": torch.zeros(2, 2)})
    info = inspect_checkpoint(gligen)
    assert info.kind == KIND_UNKNOWN and "GLIGEN" in info.description
    d = convert_svd(stage2, tmp_path / "d.safetensors").path
    assert (inspect_checkpoint(d).kind, inspect_checkpoint(d).stage) == (KIND_SVD_DELTA, 2)
    m = convert_modelscope(modelscope, tmp_path / "m.safetensors").path
    assert inspect_checkpoint(m).kind == KIND_MODELSCOPE_ADAPTER


# ---- conversion round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, "fp32"])
def test_svd_round_trip(stage2, tmp_path, no_full_loads, dtype):
    result = convert_svd(stage2, tmp_path / "delta.safetensors", dtype=dtype)
    target = conv._as_dtype(dtype)
    # one get_tensor per delta tensor, never a base tensor, never a full load
    assert sorted(no_full_loads.loaded) == sorted(delta_source_shapes())
    assert result.warnings == [] and result.num_tensors == N_DELTA
    assert result.metadata == {"format": "trackdiffusion.svd_delta", "version": "1", "base": "svd_img2vid",
                               "stage": "2", "source": "diffusion_pytorch_model.safetensors", "head_dim": "64"}
    no_full_loads.loaded.clear()
    tensors, meta = load_delta(result.path)
    assert meta == result.metadata
    src = svd_tensors()
    expected = {k: k if k.startswith("position_net.") else "diffusion_model." + conv.diffusers_to_comfyui(k)
                for k in delta_source_shapes()}
    assert set(tensors) == set(expected.values())
    for k, name in expected.items():
        assert tensors[name].dtype == target
        assert torch.equal(tensors[name], src[k].to(target)), k
    # explicit spot checks of the ComfyUI names
    assert "diffusion_model.input_blocks.0.0.weight" in tensors and "diffusion_model.out.2.bias" in tensors
    assert "diffusion_model.output_blocks.11.1.transformer_blocks.0.fuser.alpha_dense" in tensors
    assert "diffusion_model.middle_block.2.time_mixer.mix_factor" in tensors
    assert tensors["diffusion_model.input_blocks.7.1.transformer_blocks.0.fuser.ff.net.0.proj.weight"].shape == \
        (8 * 4 * C0, 4 * C0)
    # the streamed file is an ordinary safetensors file
    with safetensors.safe_open(str(result.path), framework="pt") as f:
        assert f.metadata() == result.metadata and set(f.keys()) == set(tensors)


def test_head_dim_comes_from_config_json(tmp_path):
    """The fusers use the UNet's attention heads: a UNet of another width records its head size in the delta (the
    real config's 320/5 = 64; here 4/2 = 2), and a config.json that gives no single head size is refused."""
    folder = tmp_path / "svd_stage2" / "unet"
    config = svd_config() | {"block_out_channels": [C0, 2 * C0, 4 * C0, 4 * C0], "num_attention_heads": [2, 4, 8, 8]}
    path = write_ckpt(folder, svd_tensors(), config)
    assert convert_svd(path, tmp_path / "a.safetensors").metadata["head_dim"] == str(C0 // 2)
    (folder / "config.json").write_text(json.dumps(config | {"num_attention_heads": [2, 2, 8, 8]}))
    with pytest.raises(InvalidInputError, match=r"do not give one attention head size"):
        convert_svd(path, tmp_path / "b.safetensors")
    assert not (tmp_path / "b.safetensors").exists()


def test_fuser_and_mix_targets_are_real_comfyui_paths(stage2, tmp_path):
    tensors, _ = load_delta(convert_svd(stage2, tmp_path / "d.safetensors").path)
    unet = [k.removeprefix("diffusion_model.") for k in tensors if k.startswith("diffusion_model.")]
    for k in unet:
        if ".fuser." in k:
            assert k.split(".fuser.")[0] + ".norm1.weight" in COMFY
        else:
            assert k in COMFY
    assert sum(".fuser." in k for k in unet) == 16 * 17 and sum("mix_factor" in k for k in unet) == 38


def test_load_delta_converts_an_official_file_on_the_fly(stage2, tmp_path, no_full_loads):
    on_the_fly, meta = load_delta(stage2, dtype=torch.float16)
    assert len(no_full_loads.loaded) == N_DELTA
    stored, meta2 = load_delta(convert_svd(stage2, tmp_path / "d.safetensors").path)
    assert meta == meta2 and set(on_the_fly) == set(stored)
    assert all(torch.equal(on_the_fly[k], stored[k]) for k in stored)
    kept, _ = load_delta(stage2)  # dtype None keeps the file's fp32
    assert kept["position_net.null_position_feature"].dtype == torch.float32


def test_modelscope_round_trip(modelscope, tmp_path, no_full_loads):
    result = convert_checkpoint(modelscope, tmp_path, dtype="bf16")  # auto kind, folder destination
    assert result.path.name == "trackdiffusion_modelscope_adapter_bf16.safetensors"
    # the added tensors and the base tensors stage 2 fine-tuned (temporal layers, transformer_in); not conv_in or the
    # spatial attentions, which stage 2 left as the pretrain folder has them
    finetuned = [k for k in MS_BASE if "temp_" in k or k.startswith("transformer_in.")]
    assert finetuned and "conv_in.weight" not in finetuned
    assert sorted(no_full_loads.loaded) == sorted([*MS_SHAPES, *finetuned])
    tensors, meta = load_delta(result.path)
    assert meta["format"] == "trackdiffusion.modelscope_adapter" and meta["source"] == modelscope.name
    assert meta["finetuned_base_tensors"] == str(len(finetuned))
    src = _tensors(MS_SHAPES, seed=1)
    assert set(tensors) == set(src) | set(finetuned)
    assert all(torch.equal(tensors[k], src[k].to(torch.bfloat16)) for k in src)


def test_a_modelscope_adapter_without_the_fine_tuned_temporal_layers_is_refused(modelscope, tmp_path):
    """An adapter holding only the added tensors (what older versions converted) would run the pretrain folder's
    un-fine-tuned temporal layers: refused with what to do."""
    tensors, meta = load_delta(convert_modelscope(modelscope, tmp_path / "new.safetensors").path)
    old = {k: v for k, v in tensors.items() if "temp_" not in k and not k.startswith("transformer_in.")
           or k.endswith("time_embedder.weight")}
    save_file(old, str(tmp_path / "old.safetensors"), metadata={k: v for k, v in meta.items()
                                                                 if k != "finetuned_base_tensors"})
    with pytest.raises(InvalidInputError, match=r"not the temporal layers stage 2 fine-tuned.*older version") as info:
        load_delta(tmp_path / "old.safetensors")
    assert "convert the official file again" in str(info.value)


def test_trainable_only_file_converts(tmp_path):
    p = write_ckpt(tmp_path / "svd_stage2", svd_tensors(base=False), svd_config())
    assert convert_svd(p, tmp_path / "d.safetensors").num_tensors == N_DELTA


# ---- warnings --------------------------------------------------------------------------------------------------


def test_stage1_and_xt_are_warnings_not_errors(tmp_path):
    p = write_ckpt(tmp_path / "svd_stage1" / "unet", svd_tensors(), svd_config(191500, 25))
    result = convert_svd(p, tmp_path / "d.safetensors")
    text = " ".join(result.warnings)
    assert "STAGE 1" in text and "box outlines" in text and "svd_xt.safetensors" in text
    assert (result.metadata["stage"], result.metadata["base"]) == ("1", "svd_img2vid_xt")
    _, meta = load_delta(result.path)
    assert "STAGE 1" in meta["warnings"]
    assert result.path.is_file()


def test_unknown_stage_and_frames_default_to_img2vid_with_warnings(tmp_path):
    p = write_ckpt(tmp_path / "plain", svd_tensors(), None, name="td.safetensors")
    result = convert_svd(p, tmp_path / "new" / "folder" / "td_delta.safetensors")  # missing folders are created
    text = " ".join(result.warnings)
    assert "could not tell stage 1 from stage 2" in text and "frame count unknown" in text
    assert (result.metadata["stage"], result.metadata["base"]) == ("unknown", "svd_img2vid")
    assert result.path.is_file()


# ---- writing: atomic, no overwrite ------------------------------------------------------------------------------


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), OSError(28, "No space left on device")])
def test_failure_mid_write_leaves_nothing(stage2, tmp_path, monkeypatch, error):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls = {"n": 0}
    real = conv._tensor_bytes

    def flaky(t):
        calls["n"] += 1
        if calls["n"] == 50:
            raise error
        return real(t)

    monkeypatch.setattr(conv, "_tensor_bytes", flaky)
    with pytest.raises((RuntimeError, InvalidInputError)) as exc:
        convert_svd(stage2, out_dir / "delta.safetensors")
    assert calls["n"] == 50
    assert _listing(out_dir) == []
    if isinstance(error, OSError):
        assert "No space left" in _message(exc)


def test_failure_keeps_the_old_file_when_overwriting(stage2, tmp_path, monkeypatch):
    dst = tmp_path / "delta.safetensors"
    dst.write_bytes(b"old")
    monkeypatch.setattr(conv, "_tensor_bytes", lambda t: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        convert_svd(stage2, dst, overwrite=True)
    assert dst.read_bytes() == b"old" and _listing(tmp_path) == ["delta.safetensors"]


def test_refuses_to_overwrite(stage2, tmp_path):
    dst = tmp_path / "delta.safetensors"
    dst.write_bytes(b"keep me")
    with pytest.raises(InvalidInputError, match="already exists.*--force"):
        convert_svd(stage2, dst)
    assert dst.read_bytes() == b"keep me"
    convert_svd(stage2, dst, overwrite=True)
    assert inspect_checkpoint(dst).kind == KIND_SVD_DELTA
    with pytest.raises(InvalidInputError, match="input file itself"):
        convert_svd(stage2, stage2, overwrite=True)
    with pytest.raises(InvalidInputError, match="must end in .safetensors"):
        convert_svd(stage2, tmp_path / "delta.bin")


def test_folder_destination_gets_a_default_name(stage2, tmp_path):
    assert convert_svd(stage2, tmp_path, dtype="fp32").path.name == "trackdiffusion_svd_stage2_fp32.safetensors"


# ---- errors ------------------------------------------------------------------------------------------------------


def test_missing_keys_lists_the_first_20(tmp_path):
    tensors = svd_tensors()
    dropped = sorted(k for k in tensors if ".fuser." in k)[:30]
    for k in dropped:
        del tensors[k]
    p = write_ckpt(tmp_path / "svd_stage2", tensors, svd_config())
    with pytest.raises(InvalidInputError) as exc:
        convert_svd(p, tmp_path / "d.safetensors")
    msg = _message(exc)
    assert "30 expected keys are missing (first 20:" in msg and "(10 more)" in msg
    listed = msg.split("(first 20: ")[1].split(", ... (10 more)")[0].split(", ")
    assert len(listed) == 20 and set(listed) <= set(dropped)
    assert "\n" not in msg and "another GLIGEN build" in msg
    assert _listing(tmp_path) == ["svd_stage2"]


def test_partial_base_and_unexpected_keys(tmp_path):
    tensors = svd_tensors()
    del tensors["down_blocks.3.resnets.1.spatial_res_block.conv2.bias"]
    tensors["up_blocks.1.attentions.0.transformer_blocks.0.injector.alpha_attn"] = torch.zeros(())
    tensors["up_blocks.1.null_track_feat.weight"] = torch.zeros(1, 16)
    p = write_ckpt(tmp_path / "u", tensors, svd_config())
    with pytest.raises(InvalidInputError) as exc:
        convert_svd(p, tmp_path / "d.safetensors")
    msg = _message(exc)
    assert "1 expected keys are missing" in msg and "conv2.bias" in msg
    assert "2 keys are unexpected" in msg and "null_track_feat" in msg and "--kind modelscope" in msg


def test_wrong_shape_is_an_error(tmp_path):
    tensors = svd_tensors()
    tensors["mid_block.attentions.0.transformer_blocks.0.fuser.attn.to_q.weight"] = torch.zeros(3, 3)
    p = write_ckpt(tmp_path / "w", tensors, svd_config())
    with pytest.raises(InvalidInputError, match=r"1 tensors have the wrong shape .*to_q.weight \[3, 3\] "
                                                r"\(expected \[16, 16\]\)"):
        convert_svd(p, tmp_path / "d.safetensors")


def test_you_probably_have(tmp_path, modelscope, stage2):
    stock = write_ckpt(tmp_path / "stock", svd_tensors(fusers=False), svd_config(frames=25))
    with pytest.raises(InvalidInputError, match=r"stock SVD XT .*stable-video-diffusion-img2vid-xt"):
        convert_svd(stock, tmp_path / "d.safetensors")
    comfy = write_ckpt(tmp_path / "c", {"model.diffusion_model." + k: torch.zeros(()) for k in COMFY}
                       | {"conditioner.embedders.0.x": torch.zeros(())}, name="svd_xt.safetensors")
    with pytest.raises(InvalidInputError, match=r"ComfyUI all-in-one SVD checkpoint.*ImageOnlyCheckpointLoader"):
        convert_checkpoint(comfy, tmp_path / "d.safetensors")
    with pytest.raises(InvalidInputError, match=r"ModelScope \(UNet3D\) checkpoint, not the SVD one.*--kind modelscope"):
        convert_checkpoint(modelscope, tmp_path / "d.safetensors", kind="svd")
    with pytest.raises(InvalidInputError, match=r"SVD checkpoint, not the ModelScope.*--kind svd"):
        convert_checkpoint(stage2, tmp_path / "d.safetensors", kind="modelscope")
    delta = convert_svd(stage2, tmp_path / "delta.safetensors").path
    with pytest.raises(InvalidInputError, match="already converted"):
        convert_svd(delta, tmp_path / "d.safetensors")
    with pytest.raises(InvalidInputError, match="not a TrackDiffusion checkpoint"):
        load_delta(write_ckpt(tmp_path / "x", {"a": torch.zeros(1)}))
    assert not (tmp_path / "d.safetensors").exists()


@pytest.mark.parametrize("content, expected", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 6947000000\n", "Git LFS pointer"),
    (b"PK\x03\x04" + b"\0" * 100, "zip archive"),
    (b"<!DOCTYPE html><html>404</html>", "web page"),
    (b"", "empty or cut off"),
    (b"\xff\xff\x00\x00\x00\x00\x00\x00{}", "cut-off download"),
])
def test_not_safetensors(tmp_path, content, expected):
    p = tmp_path / "diffusion_pytorch_model.safetensors"
    p.write_bytes(content)
    with pytest.raises(InvalidInputError, match=expected):
        inspect_checkpoint(p)


def test_truncated_data_and_pickles(stage2, tmp_path):
    p = tmp_path / "cut.safetensors"
    p.write_bytes(stage2.read_bytes()[:-100])
    with pytest.raises(InvalidInputError, match=r"truncated .* header describes \d+ bytes but the file has \d+"):
        inspect_checkpoint(p)
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="pickles"):
        inspect_checkpoint(tmp_path / "m.bin")
    with pytest.raises(InvalidInputError, match="file not found"):
        inspect_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(InvalidInputError, match="folder without"):
        inspect_checkpoint(tmp_path)


def test_load_delta_checks_a_stored_delta(stage2, tmp_path):
    path = convert_svd(stage2, tmp_path / "d.safetensors").path
    with safetensors.safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        meta = f.metadata()
    del tensors["diffusion_model.middle_block.1.time_mixer.mix_factor"]
    tensors["diffusion_model.input_blocks.1.1.extra"] = torch.zeros(1)
    bad = write_ckpt(tmp_path / "bad", tensors, metadata=meta)
    with pytest.raises(InvalidInputError, match=r"missing .*diffusion_model.middle_block.1.time_mixer.mix_factor.*"
                                                r"unexpected .*diffusion_model.input_blocks.1.1.extra"):
        load_delta(bad)
    newer = write_ckpt(tmp_path / "newer", {"x": torch.zeros(1)}, metadata=meta | {"version": "2"})
    with pytest.raises(InvalidInputError, match="format version '2'"):
        load_delta(newer)


# ---- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_convert_inspect_and_errors(tmp_path, capsys):
    p = write_ckpt(tmp_path / "svd_stage1" / "unet", svd_tensors(), svd_config(191500))
    out = tmp_path / "d.safetensors"
    assert cli_main(["weights", "convert", str(p), str(out), "--dtype", "bf16", "--no-progress"]) == 0
    cap = capsys.readouterr()  # the warning is stderr's first line (the progress bar is tests/test_progress.py's)
    assert "wrote" in cap.out and "stage 1" in cap.out and cap.err.startswith("warning: this is the STAGE 1")
    assert cli_main(["weights", "inspect", str(out)]) == 0
    assert "svd_delta" in capsys.readouterr().out
    assert cli_main(["weights", "convert", str(p), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--force" in err
    assert cli_main(["weights", "convert", str(p), str(out), "--overwrite", "--kind", "modelscope"]) == 2
    assert "--kind svd" in capsys.readouterr().err
    # --force (the spelling every command shares) replaces the existing output
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(str(out)).values()} == {torch.bfloat16}
    assert cli_main(["weights", "convert", str(p), str(out), "--force", "--dtype", "fp32"]) == 0
    assert "wrote" in capsys.readouterr().out and {t.dtype for t in load_file(str(out)).values()} == {torch.float32}


def test_add_weights_parser_plugs_into_a_parent_cli(stage2, capsys):
    parser = argparse.ArgumentParser(prog="trackdiffusion")
    sub = parser.add_subparsers(dest="group", required=True)
    sub.add_parser("tracklets")
    add_weights_parser(sub)
    args = parser.parse_args(["weights", "inspect", str(stage2)])
    assert args.func(args) == 0
    assert "trackdiffusion_svd" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["weights", "convert", "a", "b", "--dtype", "int8"])


def test_inspect_names_the_demo_models_weights(capsys):
    """The shipped demo weights are the pack's own model, not an unknown file."""
    from trackdiffusion.models.checkpoints.inspect import KIND_DEMO
    from trackdiffusion.models.demo.cli import WEIGHTS

    assert inspect_checkpoint(WEIGHTS).kind == KIND_DEMO
    assert cli_main(["weights", "inspect", str(WEIGHTS)]) == 0
    assert "convolution-only demo model" in capsys.readouterr().out
