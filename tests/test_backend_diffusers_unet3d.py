"""The diffusers UNet3D backend: TrackDiffusion's main-branch (ModelScope) layout on a stock UNet3DConditionModel."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet3DConditionModel

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets.slots import Slots
from trackdiffusion.models import instance_roi_features
from trackdiffusion.models.modelscope import (
    attach_trackdiffusion_unet3d,
    build_trackdiffusion_unet3d,
    use_official_spatial_heads,
)
from trackdiffusion.models.modelscope.naming import (
    injector_shapes,
    modelscope_adapter_shapes,
    position_net_shapes,
)
from trackdiffusion.models.svd.naming import fuser_shapes

CROSS = 32
FRAMES = 3
TINY = {
    "sample_size": 8, "block_out_channels": (32, 64), "down_block_types": ("CrossAttnDownBlock3D", "DownBlock3D"),
    "up_block_types": ("UpBlock3D", "CrossAttnUpBlock3D"), "cross_attention_dim": CROSS, "attention_head_dim": 8,
    "layers_per_block": 1,
}
SPATIAL = {"down_blocks.0.attentions.0": 32, "mid_block.attentions.0": 64, "up_blocks.1.attentions.0": 32,
           "up_blocks.1.attentions.1": 32}
TEMPORAL = {"transformer_in": 32, "down_blocks.0.temp_attentions.0": 32, "mid_block.temp_attentions.0": 64,
            "up_blocks.1.temp_attentions.0": 32, "up_blocks.1.temp_attentions.1": 32}


def tiny_unet(seed: int = 0) -> UNet3DConditionModel:
    torch.manual_seed(seed)
    return build_trackdiffusion_unet3d(TINY).eval()


def unet_inputs(batch: int = 2, frames: int = FRAMES, seed: int = 1) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, frames, 8, 8, generator=gen), torch.tensor([10]),
            torch.randn(batch, 5, CROSS, generator=gen))


def run(unet, inputs) -> torch.Tensor:
    with torch.no_grad():
        return unet(*inputs).sample


def tracklets(batch: int = 1, slots: int = 3, frames: int = FRAMES, seed: int = 2) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, frames, slots, 2, generator=gen) * 0.5
    boxes = torch.cat([xy, xy + 0.2 + 0.3 * torch.rand(batch, frames, slots, 2, generator=gen)], dim=-1)
    masks = torch.ones(batch, frames, slots)
    masks[:, 0, -1] = 0
    return boxes, masks, torch.randn(batch, slots, CROSS, generator=gen)


def randomise(att, seed: int = 3, fuser: tuple[float, float] = (0.5, -0.4),
              injector: tuple[float, float] = (0.6, 0.3)) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in att.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            gates = injector if ".injector." in name else fuser
            if name.endswith("alpha_attn"):
                p.fill_(gates[0])
            elif name.endswith("alpha_dense"):
                p.fill_(gates[1])


# ------------------------------------------------------------------------------------------------- layout


def test_build_uses_eight_spatial_heads_and_keeps_the_weights():
    unet = tiny_unet()
    for path in SPATIAL:
        block = unet.get_submodule(f"{path}.transformer_blocks.0")
        assert block.attn1.heads == 8 and block.attn2.heads == 8
        assert isinstance(unet.get_submodule(path).proj_in, torch.nn.Linear)
    assert unet.get_submodule("down_blocks.0.temp_attentions.0.transformer_blocks.0").attn1.heads == 32 // 8
    torch.manual_seed(0)
    stock = UNet3DConditionModel(**TINY)
    weights = dict(stock.named_parameters())
    use_official_spatial_heads(stock)
    assert all(p is weights[n] for n, p in stock.named_parameters())  # same tensors, new head split


def test_state_dict_keys_follow_the_official_pattern_for_the_config():
    att = attach_trackdiffusion_unet3d(tiny_unet())
    expected = position_net_shapes(CROSS, 64, 512, 20, 128, 128)
    for path, c in SPATIAL.items():
        expected.update({f"{path}.transformer_blocks.0.fuser.{k}": v for k, v in fuser_shapes(c, CROSS).items()})
        if path.startswith("up_blocks."):
            expected.update({f"{path}.transformer_blocks.0.injector.{k}": v for k, v in injector_shapes(c, 128).items()})
    expected["up_blocks.1.null_track_feat.weight"] = (1, 32)
    expected.update({f"{path}.time_embedder.weight": (16, c) for path, c in TEMPORAL.items()})
    assert {k: tuple(v.shape) for k, v in att.state_dict().items()} == expected
    assert all(f.attn.heads == 8 for f in att.fusers.values())


def test_full_size_unet3d_gives_exactly_the_official_modelscope_keys():
    with torch.device("meta"):
        att = attach_trackdiffusion_unet3d(build_trackdiffusion_unet3d())
    assert {k: tuple(v.shape) for k, v in att.state_dict().items()} == modelscope_adapter_shapes()
    assert len(att.fusers) == 16 and len(att.injectors) == 9 and len(att.frame_embeddings) == 17


# ------------------------------------------------------------------------------------------------- identity


def test_zero_gates_and_zero_frame_embeddings_are_bit_identical():
    unet, inputs = tiny_unet(), unet_inputs()
    base = run(unet, inputs)
    att = attach_trackdiffusion_unet3d(unet, zero_init_frame_embedding=True)
    with att.conditioned(*tracklets(batch=2)):
        assert torch.equal(run(unet, inputs), base)
    assert torch.equal(run(unet, inputs), base)


def test_official_frame_embedding_init_is_not_an_identity():
    unet, inputs = tiny_unet(), unet_inputs()
    base = run(unet, inputs)
    attach_trackdiffusion_unet3d(unet)  # N(0, 1) frame embeddings, like the official (never zero) ones
    assert not torch.equal(run(unet, inputs), base)


def test_nonzero_gates_change_the_output_and_masks_matter():
    unet, inputs = tiny_unet(), unet_inputs()
    att = attach_trackdiffusion_unet3d(unet)
    randomise(att, fuser=(0.0, 0.0), injector=(0.0, 0.0))
    base = run(unet, inputs)
    boxes, masks, text = tracklets()
    with att.conditioned(boxes, masks, text):
        assert torch.equal(run(unet, inputs), base)
    randomise(att)
    with att.conditioned(boxes, masks, text):
        present = run(unet, inputs)
    with att.conditioned(boxes, torch.zeros_like(masks), text):
        absent = run(unet, inputs)
    with att.conditioned(boxes, masks, text, strength=0.0):
        assert torch.equal(run(unet, inputs), base)
    assert not torch.equal(present, base) and not torch.equal(present, absent)
    # the injectors alone (fusers off) also change it
    for fuser in att.fusers.values():
        with torch.no_grad():
            fuser.alpha_attn.zero_()
            fuser.alpha_dense.zero_()
    with att.conditioned(boxes, masks, text):
        assert not torch.equal(run(unet, inputs), base)


def test_detach_restores_the_unet_bit_for_bit():
    unet, inputs = tiny_unet(), unet_inputs()
    base = run(unet, inputs)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    att = attach_trackdiffusion_unet3d(unet)
    randomise(att)
    assert "up_blocks.1.null_track_feat.weight" in unet.state_dict()  # official layout while attached
    with att.conditioned(*tracklets()):
        assert not torch.equal(run(unet, inputs), base)
    att.detach()
    assert torch.equal(run(unet, inputs), base)
    after = unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in unet.modules())


def test_slots_input_and_shared_text_embeddings():
    unet, inputs = tiny_unet(), unet_inputs()
    att = attach_trackdiffusion_unet3d(unet)
    randomise(att)
    boxes, masks, text = tracklets()
    with att.conditioned(Slots(boxes[0], masks[0], ["a", "b", "c"], torch.zeros(3, 3), [1, 2, 3]),
                         positive_embeddings=text[0]):
        from_slots = run(unet, inputs)
    with att.conditioned(boxes, masks, text[:, None].expand(1, FRAMES, 3, CROSS)):
        from_tensors = run(unet, inputs)
    assert torch.equal(from_slots, from_tensors)


# ------------------------------------------------------------------------------------------------- mechanism


def test_position_net_runs_once_per_conditioned_call():
    unet, inputs = tiny_unet(), unet_inputs()
    att = attach_trackdiffusion_unet3d(unet)
    randomise(att)
    calls = {"net": 0, "injector": 0}
    att.position_net.register_forward_hook(lambda *a: calls.__setitem__("net", calls["net"] + 1))
    for injector in att.injectors.values():
        injector.register_forward_hook(lambda *a: calls.__setitem__("injector", calls["injector"] + 1))
    with att.conditioned(*tracklets()):
        run(unet, inputs)
        run(unet, inputs)
    assert calls == {"net": 1, "injector": 2 * len(att.injectors)}


def test_up_block_matches_the_official_order_of_operations():
    """attn1 residual -> fuser -> injector(ROI of the transformer input, motion features) -> attn2 -> ff."""
    unet, inputs = tiny_unet(), unet_inputs()
    att = attach_trackdiffusion_unet3d(unet)
    randomise(att)
    path = "up_blocks.1.attentions.1"
    transformer, block = unet.get_submodule(path), unet.get_submodule(f"{path}.transformer_blocks.0")
    seen = {}
    transformer.register_forward_pre_hook(lambda m, a: seen.update(feature_map=a[0]))
    block.register_forward_hook(lambda m, a, kw, out: seen.update(x=a[0], kwargs=kw, out=out), with_kwargs=True)
    with att.conditioned(*tracklets()) as cond:
        run(unet, inputs)
    bf = seen["x"].shape[0]
    objs, boxes, masks, track = (cond.expand(t, bf, n) for n, t in [("objs", cond.objs), *cond.extra.items()])
    null = unet.get_submodule("up_blocks.1.null_track_feat").weight
    with torch.no_grad():
        x = seen["x"]
        h = block.attn1(block.norm1(x)) + x
        h = block.fuser(h, objs)
        h = block.injector(h, instance_roi_features(seen["feature_map"], boxes, masks, null), track, FRAMES)
        h = block.attn2(block.norm2(h), encoder_hidden_states=seen["kwargs"]["encoder_hidden_states"]) + h
        h = block.ff(block.norm3(h)) + h
    assert torch.allclose(seen["out"], h, atol=1e-5)


# ------------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("stage", ["geo", "temp"])
def test_one_training_step_changes_only_the_trainable_parameters(stage):
    unet, inputs = tiny_unet(), unet_inputs()
    att = attach_trackdiffusion_unet3d(unet)
    randomise(att)
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    named = att.named_trainable_parameters(stage, freeze=True)
    trainable = {n for n, _ in named}
    opt = torch.optim.AdamW([p for _, p in named], lr=1e-2)
    with att.conditioned(*tracklets()):
        unet(*inputs).sample.pow(2).mean().backward()
    opt.step()
    changed = {n for n, p in unet.named_parameters() if not torch.equal(p, before[n])}
    assert trainable and changed <= trainable
    if stage == "geo":
        assert changed == trainable
        assert all(".fuser." in n or n.startswith("position_net.") for n in trainable)
    else:
        # what the official stage 2 trains; null_track_feat matches no keyword and stays untrained (as released)
        assert any(".injector." in n for n in changed) and "transformer_in.time_embedder.weight" in changed
        assert {"position_net.instance_embedding.weight", "position_net.tracklet_norm.weight"} <= changed
        frozen = (".fuser.", "null_track_feat", "position_net.linears", "position_net.null_")
        assert not any(k in n for n in trainable for k in frozen)


def test_load_official_state_dict_round_trip():
    src = attach_trackdiffusion_unet3d(tiny_unet())
    randomise(src, seed=9)
    official = {**src.state_dict(), **{k: v + 1 for k, v in src.unet.state_dict().items() if "conv_out" in k}}
    unet = tiny_unet(seed=5)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    dst = attach_trackdiffusion_unet3d(unet)
    report = dst.load_official_state_dict(official, include_unet=True)
    assert report.missing == [] and report.unexpected == [] and report.unet_loaded == ["conv_out.bias",
                                                                                        "conv_out.weight"]
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in src.state_dict().items())
    dst.detach()
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in before.items())


# ------------------------------------------------------------------------------------------------- errors


def test_more_than_16_frames_raise_naming_both_numbers():
    unet = tiny_unet()
    att = attach_trackdiffusion_unet3d(unet)
    with pytest.raises(InvalidInputError, match=r"17 frames.*16"):
        att.set_condition(*tracklets(frames=17))
    with pytest.raises(InvalidInputError, match=r"17 frames.*16"):
        run(unet, unet_inputs(batch=1, frames=17))
    run(unet, unet_inputs(batch=1, frames=16))


def test_bad_inputs_raise_invalid_input_error():
    att = attach_trackdiffusion_unet3d(tiny_unet())
    boxes, masks, text = tracklets()
    with pytest.raises(InvalidInputError, match="positive_embeddings"):
        att.set_condition(boxes, masks)
    with pytest.raises(InvalidInputError, match="positive_embeddings must have shape"):
        att.set_condition(boxes, masks, text[..., :5])
    with pytest.raises(InvalidInputError, match="at most|has 20"):
        att.set_condition(*tracklets(slots=21))
    with pytest.raises(InvalidInputError, match="already"):
        attach_trackdiffusion_unet3d(att.unet)
