"""TrackDiffusion text-to-video (ModelScope UNet3D) pipeline on a tiny random diffusers folder."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

# Real imports at collection time (the pipeline imports them lazily): the ComfyUI integration tests, when they run
# first, put an import-only torchvision stand-in on sys.path that transformers' model modules trip over.
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel  # noqa: F401
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

from support.tiny_models import COMPONENTS, build_tiny_t2v_folder
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import Tracklets
from trackdiffusion.models.guidance.cfg import guidance_weight, normalized_guidance, standard_guidance
from trackdiffusion.models.modelscope import GenerationInterrupted, ModelScopeTrackDiffusion
from trackdiffusion.models.modelscope import pipeline as ms

SIZE = 64
FRAMES = 4
GEN = {"height": SIZE, "width": SIZE, "steps": 2, "guidance_scale": 3.0, "seed": 7}


def make_tracklets(frames: int = FRAMES, shift: float = 0.0) -> Tracklets:
    return Tracklets.from_dict({
        "format": "trackdiffusion.tracklets", "version": 1, "width": SIZE, "height": SIZE, "num_frames": frames,
        "objects": [
            {"id": 1, "label": "car", "keyframes": [{"frame": 0, "box": [2 + shift, 2, 30 + shift, 30]},
                                                    {"frame": frames - 1, "box": [30, 30, 60, 60]}]},
            {"id": 5, "label": "dog", "keyframes": [{"frame": 1, "box": [10, 8, 40, 50]}]},
        ],
    })


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_t2v_folder(tmp_path_factory.mktemp("t2v") / "tiny_t2v")


@pytest.fixture(scope="module")
def pipe(folder):
    return ModelScopeTrackDiffusion.from_folders(folder)


@pytest.fixture(scope="module")
def baseline(pipe):
    return pipe.generate("a car and a dog", make_tracklets(), **GEN)


# ------------------------------------------------------------------------------------------------- generation


def test_generate_shape_range_and_progress(pipe, baseline):
    seen = []
    out = pipe.generate("a car and a dog", make_tracklets(), **{**GEN, "steps": 3},
                        callback=lambda step, total: seen.append((step, total)))
    assert out.shape == (FRAMES, SIZE, SIZE, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and torch.isfinite(out).all()
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert baseline.shape == (FRAMES, SIZE, SIZE, 3)
    assert pipe.generate("x", make_tracklets(), **{**GEN, "height": 32, "width": 48}, num_frames=2).shape == (
        2, 32, 48, 3)


def test_same_seed_same_frames_other_seed_or_tracklets_differ(pipe, baseline):
    assert torch.equal(pipe.generate("a car and a dog", make_tracklets(), **GEN), baseline)
    assert not torch.equal(pipe.generate("a car and a dog", make_tracklets(), **{**GEN, "seed": 8}), baseline)
    assert not torch.equal(pipe.generate("a car and a dog", make_tracklets(shift=10), **GEN), baseline)


def test_uncond_gets_empty_prompt_and_all_masks_zero(pipe, monkeypatch):
    calls, texts = [], []
    real_conditioned, real_encode = pipe.attachment.conditioned, pipe.encode_text

    def spy_conditioned(boxes, masks=None, positive_embeddings=None, strength=1.0):
        calls.append((boxes.clone(), masks.clone(), positive_embeddings.clone()))
        return real_conditioned(boxes, masks, positive_embeddings, strength)

    def spy_encode(t, device):
        texts.append(list(t))
        return real_encode(t, device)

    monkeypatch.setattr(pipe.attachment, "conditioned", spy_conditioned)
    monkeypatch.setattr(pipe, "encode_text", spy_encode)
    tracklets = make_tracklets()
    pipe.generate("a car and a dog", tracklets, **GEN)
    slots = tracklets.to_slots(FRAMES, SIZE, SIZE, 20)
    assert len(calls) == 1 and len(texts) == 1  # position net and text encoder: once per call
    boxes, masks, positive = calls[0]
    assert boxes.shape == (2, FRAMES, 20, 4) and masks.shape == (2, FRAMES, 20)
    assert torch.equal(masks[0], torch.zeros(FRAMES, 20))  # uncond: every box masked
    assert torch.equal(masks[1], slots.masks) and masks[1].sum() > 0
    assert torch.equal(boxes[1], slots.boxes)
    assert texts[0][:2] == ["a car and a dog", ""]  # uncond prompt "" (official)
    assert set(texts[0][2:]) == {"car", "dog", ""}  # one pooled embedding per label, "" for padding slots
    _, pooled = real_encode(["car", "dog", ""], torch.device("cpu"))
    assert positive.shape == (20, pooled.shape[1])
    assert torch.allclose(positive[0], pooled[0], atol=1e-5) and torch.allclose(positive[1], pooled[1], atol=1e-5)
    assert torch.allclose(positive[2:], pooled[2].expand(18, -1), atol=1e-5)

    calls.clear()
    pipe.generate("a car", tracklets, **{**GEN, "guidance_scale": 1.0})  # no CFG: one conditioned video
    assert calls[0][1].shape == (1, FRAMES, 20) and torch.equal(calls[0][1][0], slots.masks)


def test_pooled_label_embedding_does_not_depend_on_padding(pipe):
    tok, enc = pipe.tokenizer, pipe.text_encoder
    inputs = tok(["car", "a red fire truck", ""], padding=True, return_tensors="pt")  # official: pad to longest
    official = enc(**inputs).pooler_output
    _, ours = pipe.encode_text(["car", "a red fire truck", ""], torch.device("cpu"))
    assert torch.allclose(official, ours, atol=1e-5)


# ------------------------------------------------------------------------------------------------- guidance


def test_normalized_guidance_matches_a_hand_computation():
    eps_u = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    eps_c = torch.tensor([[2.0, 0.0], [0.5, 2.0]])
    s = 1.2
    norm_c = (2.0**2 + 0.0 + 0.5**2 + 2.0**2) ** 0.5  # ||eps_c|| = 2.872281
    norm_d = (1.0**2 + 2.0**2 + 0.0 + 2.0**2) ** 0.5  # ||eps_c - eps_u|| = 3
    w = (s - 1) * norm_c / norm_d
    expected = torch.tensor([[1.0 + w * 1.0, -2.0 + w * 2.0], [0.5, 0.0 + w * 2.0]])
    assert torch.allclose(normalized_guidance(eps_u, eps_c, s), expected, atol=1e-6)
    assert guidance_weight(eps_u, eps_c, s) == pytest.approx(w)
    assert torch.allclose(standard_guidance(eps_u, eps_c, 5.0), eps_u + 5.0 * (eps_c - eps_u))
    assert torch.equal(normalized_guidance(eps_c, eps_c, 3.0), eps_c)  # no division by zero


def test_generate_uses_the_chosen_guidance(pipe, monkeypatch, baseline):
    used = []
    for name in ("normalized_guidance", "standard_guidance"):
        real = getattr(ms, name)
        monkeypatch.setattr(ms, name, lambda u, c, s, _r=real, _n=name: used.append((_n, s)) or _r(u, c, s))
    pipe.generate("a car and a dog", make_tracklets(), **GEN, guidance="normalized")
    pipe.generate("a car and a dog", make_tracklets(), **GEN, guidance="standard")
    assert used == [("normalized_guidance", 3.0)] * 2 + [("standard_guidance", 3.0)] * 2
    with pytest.raises(InvalidInputError, match="guidance"):
        pipe.generate("x", make_tracklets(), **GEN, guidance="fancy")


# ------------------------------------------------------------------------------------------------- errors


def test_more_than_16_frames_raise_naming_both_numbers(pipe):
    with pytest.raises(InvalidInputError, match=r"17 frames.*16"):
        pipe.generate("x", make_tracklets(), **GEN, num_frames=17)
    with pytest.raises(InvalidInputError, match=r"20 frames.*16"):
        pipe.generate("x", make_tracklets(frames=20), **GEN)
    assert pipe.generate("x", make_tracklets(frames=20), **{**GEN, "steps": 1}, num_frames=16).shape[0] == 16


def test_bad_sizes_and_interrupt(pipe):
    with pytest.raises(InvalidInputError, match="multiple of 8"):
        pipe.generate("x", make_tracklets(), **{**GEN, "width": 60})
    seen = []
    with pytest.raises(GenerationInterrupted):
        pipe.generate("x", make_tracklets(), **GEN, callback=lambda s, t: seen.append(s), interrupt=lambda: seen)
    assert seen == [1]  # stopped before the second step


@pytest.mark.parametrize("component", COMPONENTS)
def test_folder_missing_a_component_names_it(folder, tmp_path, component):
    broken = shutil.copytree(folder, tmp_path / "broken")
    shutil.rmtree(broken / component)
    with pytest.raises(InvalidInputError, match=f"'{component}'"):
        ModelScopeTrackDiffusion.from_folders(broken)


def test_incomplete_component_and_missing_folder(folder, tmp_path):
    broken = shutil.copytree(folder, tmp_path / "broken")
    (broken / "tokenizer" / "vocab.json").unlink()
    (broken / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(InvalidInputError, match="tokenizer lacks vocab.json"):
        ModelScopeTrackDiffusion.from_folders(broken)
    with pytest.raises(InvalidInputError, match="does not exist"):
        ModelScopeTrackDiffusion.from_folders(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------- UNet sources


def test_official_unet_as_folder_or_file_gives_the_same_model(folder, tmp_path, baseline):
    stock = build_tiny_t2v_folder(tmp_path / "stock", trackdiffusion=False)  # same VAE, CLIP, base
    with pytest.raises(InvalidInputError, match="no TrackDiffusion tensors"):
        ModelScopeTrackDiffusion.from_folders(stock)
    plain = ModelScopeTrackDiffusion.from_folders(stock, require_trackdiffusion=False)
    assert plain.warnings and "no effect" in plain.warnings[0]
    assert plain.generate("a car", make_tracklets(), **GEN).shape == (FRAMES, SIZE, SIZE, 3)

    # the released layout: modelscope_ft/unet/{config.json, diffusion_pytorch_model.safetensors}
    ft = tmp_path / "modelscope_ft"
    shutil.copytree(folder / "unet", ft / "unet")
    bare = tmp_path / "bare" / "td_unet.safetensors"  # the file alone: the folder's UNet config is used
    bare.parent.mkdir()
    shutil.copy(ft / "unet" / "diffusion_pytorch_model.safetensors", bare)
    for source in (ft, ft / "unet", ft / "unet" / "diffusion_pytorch_model.safetensors", bare):
        pipe = ModelScopeTrackDiffusion.from_folders(stock, unet=source)
        assert torch.equal(pipe.generate("a car and a dog", make_tracklets(), **GEN), baseline), source

    # a config.json that does not record cross_attention_dim (diffusers' default 1024): read from the tensors
    config = json.loads((ft / "unet" / "config.json").read_text())
    del config["cross_attention_dim"]
    (ft / "unet" / "config.json").write_text(json.dumps(config))
    pipe = ModelScopeTrackDiffusion.from_folders(stock, unet=ft)
    assert pipe.unet.config.cross_attention_dim == 32
    assert torch.equal(pipe.generate("a car and a dog", make_tracklets(), **GEN), baseline)

    from safetensors.torch import load_file

    saved = load_file(str(bare))
    assert all(torch.equal(v, saved[k]) for k, v in pipe.attachment.state_dict().items())
    assert all(pipe.unet.get_submodule(p).transformer_blocks[0].attn1.heads == 8
               for p in ("down_blocks.0.attentions.0", "up_blocks.1.attentions.0"))


def test_converted_adapter_is_attached_to_the_folder_unet(folder, tmp_path, baseline, monkeypatch):
    """The adapter route on the stock pretrain folder gives the official model: the adapter carries the temporal
    layers stage 2 fine-tuned, and they replace the folder's (here the stock folder's temporal layers differ, as the
    real pretrain folder's do from modelscope_ft's)."""
    from safetensors.torch import load_file, save_file

    from trackdiffusion.models.checkpoints import convert
    from trackdiffusion.models.modelscope.naming import stage2_finetuned

    stock = build_tiny_t2v_folder(tmp_path / "stock", trackdiffusion=False)
    stock_file = stock / "unet" / "diffusion_pytorch_model.safetensors"
    pretrain = load_file(str(stock_file))
    g = torch.Generator().manual_seed(9)
    save_file({k: (v + 0.05 * torch.randn(v.shape, generator=g) if stage2_finetuned(k) else v).contiguous()
               for k, v in pretrain.items()}, str(stock_file))
    tensors = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    metadata = {"format": convert.MODELSCOPE_ADAPTER_FORMAT, "version": convert.FORMAT_VERSION}
    # load_delta checks the full-size key list; the tiny adapter has the tiny layout's keys
    monkeypatch.setattr(convert, "load_delta", lambda path, dtype=None: (load_file(str(path)), dict(metadata)))
    adapter = tmp_path / "adapter.safetensors"
    save_file({k: v for k, v in tensors.items() if ms._is_added(k) or stage2_finetuned(k)}, str(adapter),
              metadata=metadata)
    assert convert.inspect_checkpoint(adapter).kind == convert.KIND_MODELSCOPE_ADAPTER
    pipe = ModelScopeTrackDiffusion.from_folders(stock, unet=adapter)
    assert torch.equal(pipe.generate("a car and a dog", make_tracklets(), **GEN), baseline)
    # without all of the fine-tuned temporal layers (older conversions held none) it would be another model: refused
    finetuned = sorted(k for k in tensors if stage2_finetuned(k) and not ms._is_added(k))
    partial = tmp_path / "partial.safetensors"
    save_file({k: v for k, v in tensors.items() if ms._is_added(k) or k in finetuned[::2]}, str(partial),
              metadata=metadata)
    with pytest.raises(InvalidInputError, match=rf"lacks {len(finetuned[1::2])} of the temporal tensors"):
        ModelScopeTrackDiffusion.from_folders(stock, unet=partial)


def test_wrong_unet_files_are_explained(folder, tmp_path):
    from safetensors.torch import load_file, save_file

    stock_file = tmp_path / "stock_unet.safetensors"
    tensors = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({k: v for k, v in tensors.items() if not ms._is_added(k)}, str(stock_file))
    with pytest.raises(InvalidInputError, match="stock UNet3D"):
        ModelScopeTrackDiffusion.from_folders(folder, unet=stock_file)
    with pytest.raises(InvalidInputError, match="does not exist"):
        ModelScopeTrackDiffusion.from_folders(folder, unet=tmp_path / "missing.safetensors")
