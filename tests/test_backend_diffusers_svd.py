"""The diffusers SVD backend: TrackDiffusion-SVD fusers + position net on a stock UNetSpatioTemporalConditionModel."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.attention import BasicTransformerBlock

from support.tiny_models import TINY_CROSS, tiny_svd_unet
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets.slots import Slots
from trackdiffusion.models import GatedSelfAttentionDense
from trackdiffusion.models.svd import attach_trackdiffusion_svd
from trackdiffusion.models.svd.naming import (
    ATTENTIONS,
    FUSER,
    diffusers_to_comfyui,
    fuser_shapes,
    svd_position_net_shapes,
)

CROSS = TINY_CROSS  # the tiny UNet's cross-attention width
FRAMES = 3


def unet_inputs(batch: int = 2, seed: int = 1) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, FRAMES, 8, 8, 8, generator=gen), torch.tensor([10.0]),
            torch.randn(batch, 1, CROSS, generator=gen), torch.randn(batch, 3, generator=gen))


def run(unet, inputs) -> torch.Tensor:
    with torch.no_grad():
        return unet(*inputs).sample


def tracklets(batch: int = 1, slots: int = 3, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, FRAMES, slots, 2, generator=gen) * 0.5
    boxes = torch.cat([xy, xy + 0.1 + 0.4 * torch.rand(batch, FRAMES, slots, 2, generator=gen)], dim=-1)
    masks = torch.ones(batch, FRAMES, slots)
    masks[:, 0, -1] = 0
    return boxes, masks, torch.rand(batch, slots, 3, generator=gen)


def randomise(att, seed: int = 3, gates: tuple[float, float] = (0.5, -0.4)) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in att.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
            if name.endswith("alpha_attn"):
                p.fill_(gates[0])
            elif name.endswith("alpha_dense"):
                p.fill_(gates[1])


def expected_keys(channels: dict[str, int], context: int) -> dict[str, tuple[int, ...]]:
    keys = dict(svd_position_net_shapes(112, 512, context))
    for path, c in channels.items():
        keys.update({f"{path}.{FUSER}.{k}": v for k, v in fuser_shapes(c, context).items()})
    return keys


# ------------------------------------------------------------------------------------------------- identity


def test_zero_gates_are_bit_identical_to_the_unattached_unet():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    base = run(unet, inputs)
    att = attach_trackdiffusion_svd(unet)
    boxes, masks, colors = tracklets(batch=2)
    with att.conditioned(boxes, masks, colors):
        assert torch.equal(run(unet, inputs), base)
    assert torch.equal(run(unet, inputs), base)  # outside conditioned(): fusers skipped


def test_nonzero_gates_change_the_output_and_masks_matter():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    base = run(unet, inputs)
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    boxes, masks, colors = tracklets()
    with att.conditioned(boxes, masks, colors):
        present = run(unet, inputs)
    with att.conditioned(boxes, torch.zeros_like(masks), colors):
        absent = run(unet, inputs)
    with att.conditioned(boxes, masks, colors, strength=0.0):
        off = run(unet, inputs)
    assert not torch.equal(present, base)
    assert not torch.equal(absent, base)  # null tokens still pass through the fusers (official uncond behaviour)
    assert not torch.equal(present, absent)
    assert torch.equal(off, base)
    assert torch.isfinite(present).all()


def test_per_video_strength_and_batch_broadcast():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    base = run(unet, inputs)
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    boxes, masks, colors = tracklets()
    with att.conditioned(boxes, masks, colors, strength=torch.tensor([0.0, 1.0])):
        mixed = run(unet, inputs)
    with att.conditioned(boxes, masks, colors):
        shared = run(unet, inputs)
    with att.conditioned(boxes.repeat(2, 1, 1, 1), masks.repeat(2, 1, 1), colors.repeat(2, 1, 1)):
        explicit = run(unet, inputs)
    assert torch.equal(mixed[0], base[0]) and not torch.equal(mixed[1], base[1])
    assert torch.allclose(shared, explicit, atol=1e-6)
    with att.conditioned(*tracklets(batch=3)), pytest.raises(InvalidInputError, match="3 video"):
        run(unet, inputs)


def test_slots_input_equals_tensors():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    boxes, masks, colors = tracklets()
    slots = Slots(boxes[0], masks[0], ["a", "b", "c"], colors[0], [1, 2, 3])
    with att.conditioned(slots):
        from_slots = run(unet, inputs)
    with att.conditioned(boxes, masks, colors):
        from_tensors = run(unet, inputs)
    assert torch.equal(from_slots, from_tensors)


def test_detach_restores_the_unet_bit_for_bit():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    base = run(unet, inputs)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    delta = {k: v + 1 for k, v in unet.state_dict().items() if "conv_in" in k or "mix_factor" in k}
    report = att.load_official_state_dict({**att.state_dict(), **delta}, include_unet=True)
    assert len(report.unet_loaded) == len(delta)
    with att.conditioned(*tracklets()):
        assert not torch.equal(run(unet, inputs), base)
    assert any(k.endswith(".fuser.linear.weight") for k in unet.state_dict())  # official layout while attached
    att.detach()
    assert torch.equal(run(unet, inputs), base)
    after = unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in unet.modules())
    assert not hasattr(unet, "position_net")
    with pytest.raises(InvalidInputError, match="detached"):
        att.conditioned(*tracklets()).__enter__()
    again = attach_trackdiffusion_svd(unet, position_net=att.position_net, fusers=att.fusers)  # modules reusable
    assert again.fusers.keys() == att.fusers.keys()
    with pytest.raises(InvalidInputError, match="already"):
        attach_trackdiffusion_svd(unet)


# ------------------------------------------------------------------------------------------------- keys


def test_state_dict_keys_follow_the_official_pattern_for_the_config():
    att = attach_trackdiffusion_svd(tiny_svd_unet(FRAMES))
    channels = {"down_blocks.0.attentions.0": 32, "down_blocks.0.attentions.1": 32, "mid_block.attentions.0": 64,
                **{f"up_blocks.1.attentions.{j}": 32 for j in range(3)}}
    got = {k: tuple(v.shape) for k, v in att.state_dict().items()}
    assert got == expected_keys(channels, CROSS)
    assert list(att.fusers) == [f"{p}.{FUSER}" for p in channels]
    assert all(isinstance(f, GatedSelfAttentionDense) for f in att.fusers.values())


def test_full_size_svd_gives_exactly_the_official_keys():
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()
        att = attach_trackdiffusion_svd(unet)
    got = {k: tuple(v.shape) for k, v in att.state_dict().items()}
    assert len(att.fusers) == 16
    assert got == expected_keys({s.diffusers: s.channels() for s in ATTENTIONS}, 1024)
    # heads: 64-dim (5 / 10 / 20)
    assert [f.attn.heads for f in att.fusers.values()] == [s.channels() // 64 for s in ATTENTIONS]


def test_load_official_state_dict_maps_diffusers_and_comfyui_names():
    src = attach_trackdiffusion_svd(tiny_svd_unet(FRAMES))
    randomise(src, seed=7)
    official = {**src.state_dict(), "conv_in.weight": torch.zeros(1), "down_blocks.0.resnets.0.norm": torch.zeros(1)}
    dst = attach_trackdiffusion_svd(tiny_svd_unet(FRAMES))
    report = dst.load_official_state_dict(official)
    assert report.missing == [] and report.unexpected == [] and len(report.ignored) == 2
    assert all(torch.equal(dst.state_dict()[k], v) for k, v in src.state_dict().items())

    # our converted SVD delta (ComfyUI naming): diffusion_model.<comfy path>.transformer_blocks.0.fuser.*
    delta = {(k if k.startswith("position_net.") else "diffusion_model." + diffusers_to_comfyui(k)): v + 1
             for k, v in src.state_dict().items()}
    assert any(k.startswith("diffusion_model.input_blocks.1.1.") for k in delta)
    dst.load_official_state_dict(delta)
    assert all(torch.equal(dst.state_dict()[k], v + 1) for k, v in src.state_dict().items())

    partial = {k: v for k, v in official.items() if "mid_block" not in k}
    with pytest.raises(InvalidInputError, match="missing"):
        dst.load_official_state_dict(partial)
    assert dst.load_official_state_dict(partial, strict=False).missing
    with pytest.raises(InvalidInputError, match="unexpected"):
        dst.load_official_state_dict({**official, "up_blocks.3.attentions.0.transformer_blocks.0.fuser.x": 1})
    bad = dict(official, **{"position_net.linears.4.weight": torch.zeros(7, 512)})
    with pytest.raises(InvalidInputError, match="wrong shape"):
        dst.load_official_state_dict(bad)


# ------------------------------------------------------------------------------------------------- mechanism


def test_position_net_runs_once_per_conditioned_call():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    calls = {"net": 0, "fuser": 0}
    att.position_net.register_forward_hook(lambda *a: calls.__setitem__("net", calls["net"] + 1))
    for fuser in att.fusers.values():
        fuser.register_forward_hook(lambda *a: calls.__setitem__("fuser", calls["fuser"] + 1))
    with att.conditioned(*tracklets()):
        run(unet, inputs)
        run(unet, inputs)
    assert calls == {"net": 1, "fuser": 2 * len(att.fusers)}


def test_fuser_sits_where_diffusers_gligen_puts_it():
    """Each spatial block equals diffusers' own gated BasicTransformerBlock loaded with the same weights."""
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    path = "up_blocks.1.attentions.1"
    block = unet.get_submodule(f"{path}.transformer_blocks.0")
    seen = {}
    block.register_forward_hook(lambda m, a, kw, out: seen.update(args=a, kwargs=kw, out=out), with_kwargs=True)
    with att.conditioned(*tracklets()):
        run(unet, inputs)
    transformer = unet.get_submodule(path)
    ref = BasicTransformerBlock(transformer.inner_dim, transformer.num_attention_heads,
                                transformer.attention_head_dim, cross_attention_dim=CROSS, attention_type="gated")
    ref.load_state_dict(block.state_dict())  # includes the grafted fuser: the key layout is diffusers' own
    with torch.no_grad():
        expected = ref(seen["args"][0], encoder_hidden_states=seen["kwargs"]["encoder_hidden_states"],
                       cross_attention_kwargs=seen["kwargs"]["cross_attention_kwargs"])
    assert torch.allclose(seen["out"], expected, atol=1e-5)
    assert not torch.allclose(seen["out"], ref(seen["args"][0],
                                               encoder_hidden_states=seen["kwargs"]["encoder_hidden_states"]))


# ------------------------------------------------------------------------------------------------- training


def _train_step(unet, att, stage, inputs, checkpointing=False) -> tuple[set[str], set[str], float]:
    if checkpointing:
        unet.enable_gradient_checkpointing()
    before = {n: p.detach().clone() for n, p in unet.named_parameters()}
    named = att.named_trainable_parameters(stage, freeze=True)
    opt = torch.optim.AdamW([p for _, p in named], lr=1e-2)
    with att.conditioned(*tracklets()):
        loss = unet(*inputs).sample.pow(2).mean()
        loss.backward()
    opt.step()
    changed = {n for n, p in unet.named_parameters() if not torch.equal(p, before[n])}
    return changed, {n for n, _ in named}, float(loss.detach())


def test_one_training_step_changes_only_the_trainable_parameters():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    att = attach_trackdiffusion_svd(unet)
    randomise(att)
    changed, trainable, _ = _train_step(unet, att, 2, inputs)
    assert trainable and changed == trainable
    keywords = ("fuser", "position_net", "time_mixer", "conv_out", "conv_in")
    assert trainable == {n for n, _ in unet.named_parameters() if any(k in n for k in keywords)}
    assert all(p.requires_grad == (n in trainable) for n, p in unet.named_parameters())
    assert any(n.startswith("position_net.") for n in changed) and any(".fuser." in n for n in changed)
    with pytest.raises(InvalidInputError, match="stage"):
        att.trainable_parameters(3)


def test_training_works_with_gradient_checkpointing():
    losses = []
    for checkpointing in (False, True):
        unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
        unet.train()
        att = attach_trackdiffusion_svd(unet)
        randomise(att)
        changed, trainable, loss = _train_step(unet, att, 1, inputs, checkpointing)
        assert changed == trainable
        losses.append(loss)
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_fresh_zero_gates_receive_a_gradient():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    att = attach_trackdiffusion_svd(unet)
    params = att.trainable_parameters(1, freeze=True)
    with att.conditioned(*tracklets()):
        unet(*inputs).sample.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params if p.dim() == 0)


# ------------------------------------------------------------------------------------------------- errors


def test_bad_inputs_raise_invalid_input_error():
    att = attach_trackdiffusion_svd(tiny_svd_unet(FRAMES))
    boxes, masks, colors = tracklets()
    for args, match in [
        ((boxes, None), "masks are required"),
        ((boxes[..., :3], masks), "boxes must have shape"),
        ((boxes, masks[:, :2]), "masks must have shape"),
        ((boxes, masks, colors[:, :2]), "colors must have shape"),
        ((torch.rand(1, FRAMES, 21, 4), torch.ones(1, FRAMES, 21)), "at most 20"),
        ((boxes * float("nan"), masks), "NaN"),
        ((torch.cat([boxes, boxes[..., :3]], -1), masks, colors), "already hold 7"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            att.set_condition(*args)
    with pytest.raises(InvalidInputError, match="strength"):
        att.set_condition(boxes, masks, colors, strength=torch.ones(2, 5))
    with pytest.raises(InvalidInputError, match="TransformerSpatioTemporalModel"):
        attach_trackdiffusion_svd(torch.nn.Linear(2, 2))
