"""TrackGo's TrackAdapter on a stock diffusers UNetSpatioTemporalConditionModel (backends.diffusers_trackgo)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from support.tiny_models import TINY_CROSS, tiny_svd_unet
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.trajectories import build_point_trajectories
from trackdiffusion.models.svd.adapter import SVD_ATTENTION_BLOCKS
from trackdiffusion.models.svd.naming import ATTENTIONS
from trackdiffusion.models.trackgo.adapter import TRACKGO_FORMAT, TrackGoAdapter
from trackdiffusion.models.trackgo.diffusers import TrackGoAttnProcessor, adapter_file, attach_trackgo

CROSS = TINY_CROSS  # the tiny UNet's cross-attention width
FRAMES = 4
LATENT = 8
PIXELS = 8 * LATENT
# the tiny UNet's transformers: 2 down (level 0), the middle (level 1), 3 up (level 0)
TINY_LAYERS = ["input_blocks.1.1", "input_blocks.2.1", "middle_block.1",
               "output_blocks.3.1", "output_blocks.4.1", "output_blocks.5.1"]


def unet_inputs(batch: int = 2, seed: int = 1) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, FRAMES, 8, LATENT, LATENT, generator=gen), torch.tensor([10.0]),
            torch.randn(batch, 1, CROSS, generator=gen), torch.randn(batch, 3, generator=gen))


def trajectory_video(batch: int = 2, seed: int = 2) -> torch.Tensor:
    """[B, F, 3, H, W] in [0, 1]: random coloured squares moving right."""
    gen = torch.Generator().manual_seed(seed)
    video = torch.zeros(batch, FRAMES, 3, PIXELS, PIXELS)
    for b in range(batch):
        for _ in range(6):
            y, x = (int(v) for v in torch.randint(0, PIXELS - 24, (2,), generator=gen))
            color = torch.rand(3, 1, 1, generator=gen)
            for f in range(FRAMES):
                video[b, f, :, y:y + 8, x + 4 * f:x + 4 * f + 8] = color
    return video


def run(unet, inputs) -> torch.Tensor:
    with torch.no_grad():
        return unet(*inputs).sample


def randomise_encoder(att, seed: int = 3, std: float = 0.3) -> None:
    """Untrained encoders give A' close to uniform; larger weights make it peaky (some entries >= alpha)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in att.adapter.encoder.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)


def temporal_attns(unet):
    return {name: block.attn1 for name, m in unet.named_modules() if hasattr(m, "temporal_transformer_blocks")
            for block in m.temporal_transformer_blocks}


# ------------------------------------------------------------------------------------------------- identity


def test_strength_zero_is_bit_identical_and_nonzero_changes_the_output():
    unet, inputs, video = tiny_svd_unet(FRAMES), unet_inputs(), trajectory_video()
    reference = run(unet, inputs)
    att = attach_trackgo(unet)
    assert torch.equal(run(unet, inputs), reference)  # attached, not conditioned
    with att.conditioned(video, strength=0.0):
        assert torch.equal(run(unet, inputs), reference)
    with att.conditioned(video, strength=1.0):
        out = run(unet, inputs)
    diff = (out - reference).abs().max().item()
    print(f"strength 1 vs unattached: max |diff| {diff:.3e}")
    assert torch.isfinite(out).all() and diff > 1e-3


def test_detach_restores_processors_and_output():
    unet, inputs, video = tiny_svd_unet(FRAMES), unet_inputs(), trajectory_video()
    reference = run(unet, inputs)
    before = {n: a.processor for n, a in temporal_attns(unet).items()}
    keys = set(unet.state_dict())
    att = attach_trackgo(unet)
    assert all(isinstance(a.processor, TrackGoAttnProcessor) for a in temporal_attns(unet).values())
    assert set(unet.state_dict()) == keys  # nothing grafted
    with att.conditioned(video):
        run(unet, inputs)
    att.detach()
    att.detach()
    assert {n: a.processor for n, a in temporal_attns(unet).items()} == before
    assert torch.equal(run(unet, inputs), reference)
    with pytest.raises(InvalidInputError, match="detached"), att.conditioned(video):
        pass
    again = attach_trackgo(unet, adapter=att.adapter)  # the trained adapter re-attaches
    with pytest.raises(InvalidInputError, match="already"):
        attach_trackgo(unet)
    again.detach()
    assert torch.equal(run(unet, inputs), reference)


# ------------------------------------------------------------------------------------------------- structure


def test_adapter_layers_are_initialised_from_the_temporal_attention():
    unet = tiny_svd_unet(FRAMES)
    att = attach_trackgo(unet)
    assert att.layer_names == TINY_LAYERS
    assert att.adapter.encoder.level_channels == (32, 64)
    for slot in att.slots:
        attn = unet.get_submodule(slot.diffusers).temporal_transformer_blocks[0].attn1
        layer = att.adapter.layer_for(slot.comfyui)
        assert torch.equal(layer.to_q.weight, attn.to_q.weight) and torch.equal(layer.to_k.weight, attn.to_k.weight)
        assert layer.to_q.weight.data_ptr() != attn.to_q.weight.data_ptr()  # a copy, trained separately
        assert slot.channels == attn.to_q.weight.shape[0]


def test_state_dict_uses_comfyui_block_names_and_round_trips():
    att = attach_trackgo(tiny_svd_unet(FRAMES))
    state = att.adapter.state_dict()
    layer_keys = {k for k in state if k.startswith("layers.")}
    assert layer_keys == {f"layers.{n.replace('.', '_')}.to_{w}.weight" for n in TINY_LAYERS for w in "qk"}
    assert all(k.startswith(("encoder.convs.", "encoder.heads.")) for k in set(state) - layer_keys)
    assert set(TINY_LAYERS) <= set(SVD_ATTENTION_BLOCKS)
    tensors, metadata = adapter_file(att.adapter, trained_steps=5)
    assert metadata["format"] == TRACKGO_FORMAT and metadata["trained_steps"] == "5"
    config = json.loads(metadata["config"])
    assert config == {"layers": [[n, 64 if n.startswith("middle") else 32] for n in TINY_LAYERS],
                      "level_channels": [32, 64]}
    loaded = TrackGoAdapter.from_config(config)
    loaded.load_state_dict(tensors, strict=True)  # what the ComfyUI loader does
    again = attach_trackgo(tiny_svd_unet(FRAMES), adapter=loaded)
    assert again.layer_names == TINY_LAYERS
    with pytest.raises(InvalidInputError, match="another UNet"):
        attach_trackgo(tiny_svd_unet(FRAMES), adapter=TrackGoAdapter([("input_blocks.1.1", 32)], (32, 64)))


def test_real_svd_layout_on_meta_device():
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # the diffusers defaults are SVD's
    att = attach_trackgo(unet)
    assert att.layer_names == list(SVD_ATTENTION_BLOCKS)
    assert [(s.diffusers, s.comfyui, s.level) for s in att.slots] == [(a.diffusers, a.comfyui, a.level)
                                                                      for a in ATTENTIONS]
    assert att.adapter.encoder.level_channels == (320, 640, 1280, 1280)
    layers = sum(p.numel() for p in att.adapter.layers.parameters())
    encoder = sum(p.numel() for p in att.adapter.encoder.parameters())
    total = layers + encoder
    print(f"TrackGo adapter for SVD: {total:,} parameters ({layers:,} W'q/W'k, {encoder:,} encoder)")
    assert 24_000_000 <= total <= 30_000_000
    assert next(att.adapter.parameters()).device.type == "meta"


# ------------------------------------------------------------------------------------------------- conditioning


def test_encoder_trunk_runs_once_per_call_and_each_level_head_once():
    unet, inputs, video = tiny_svd_unet(FRAMES), unet_inputs(), trajectory_video()
    att = attach_trackgo(unet)
    counts = {"trunk": 0, "head0": 0, "head1": 0}

    def counter(key):
        def hook(*_):
            counts[key] += 1
        return hook

    enc = att.adapter.encoder
    enc.convs[0].register_forward_hook(counter("trunk"))
    enc.heads[0].register_forward_hook(counter("head0"))
    enc.heads[1].register_forward_hook(counter("head1"))
    with att.conditioned(video):
        run(unet, inputs)
        assert counts == {"trunk": 1, "head0": 1, "head1": 1}  # 6 layers, 2 levels
        run(unet, inputs)
    assert counts == {"trunk": 1, "head0": 1, "head1": 1}
    with att.conditioned(video, strength=0.0):
        run(unet, inputs)
    assert counts["trunk"] == 1  # strength 0 encodes nothing


def test_uint8_point_trajectory_video_is_shared_over_the_batch():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    masks = np.zeros((1, PIXELS, PIXELS), bool)
    masks[0, 16:40, 16:40] = True
    traj = build_point_trajectories(masks, [[[28, 28], [52, 40]]], FRAMES)
    rendered = traj.render()  # [F, H, W, 3] uint8
    att = attach_trackgo(unet)
    randomise_encoder(att)
    with att.conditioned(rendered):
        from_uint8 = run(unet, inputs)
    as_float = torch.from_numpy(rendered).permute(0, 3, 1, 2).float().div(255)[None]
    with att.conditioned(as_float):
        from_float = run(unet, inputs)
    with att.conditioned(traj):
        from_object = run(unet, inputs)
    assert torch.equal(from_uint8, from_float) and torch.equal(from_uint8, from_object)
    with att.conditioned(as_float.expand(2, -1, -1, -1, -1)):  # one video per UNet video: the same result
        per_video = run(unet, inputs)
    assert torch.allclose(per_video, from_uint8, atol=1e-5)


def test_clear_errors():
    unet, inputs = tiny_svd_unet(FRAMES), unet_inputs()
    att = attach_trackgo(unet)
    with pytest.raises(InvalidInputError, match="frame"), att.conditioned(trajectory_video()[:, :3]):
        run(unet, inputs)
    with pytest.raises(InvalidInputError, match="batch"), att.conditioned(trajectory_video(batch=3)):
        run(unet, inputs)
    with pytest.raises(InvalidInputError, match="level"), att.conditioned(trajectory_video()[..., ::2, ::2]):
        run(unet, inputs)  # a video at half the pixel size puts the layers on the wrong level
    with pytest.raises(InvalidInputError, match="uint8"):
        att.set_condition(torch.zeros(2, FRAMES, 3, PIXELS, PIXELS, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match="finite"):
        att.set_condition(trajectory_video(), tau=float("nan"))
    assert att.condition is None
    with pytest.raises(InvalidInputError, match="TransformerSpatioTemporalModel"):
        attach_trackgo(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------- tau and alpha


def _recorded(att, unet, inputs, video, **kwargs):
    with att.conditioned(video, record_attention=True, **kwargs):
        out = run(unet, inputs)
    return out, {k: r.attention.clone() for k, r in att.recorded_attention.items()}


def _a_primes(att, unet, inputs, video):
    """A' of every layer, captured from inside the processors."""
    captured = {}
    for name in att.layer_names:
        layer = att.adapter.layer_for(name)
        original = layer.trajectory_attention

        def wrapped(f, heads, _orig=original, _name=name):
            a = _orig(f, heads)
            captured[_name] = a.detach().clone()
            return a

        layer.trajectory_attention = wrapped
    with att.conditioned(video):
        run(unet, inputs)
    return captured


def test_tau_follows_trackgo_fig5_monotonically():
    """TrackGo's inference knob (fig. 5): tau = 0 lets the unspecified area move, -1e2 partly suppresses it, -1e4
    keeps it static. Checked on the attention rule against a hand computation of
    softmax(QK^T / (sqrt(d) (1 + |tau| / 1024)) + M) V + strength A'V (M = -1e4 where A' >= alpha), and by what it
    does: in rows where no A' reaches alpha (the unspecified area) the output changes less and less over the frames,
    ending near a uniform average; masked entries stay out at every tau."""
    from trackdiffusion.models.trackgo.adapter import MASK_VALUE, tau_temperature, trackgo_attention

    g = torch.Generator().manual_seed(0)
    n, t, heads, c = 6, 8, 2, 16
    q, k, v = (torch.randn(n, t, c, generator=g) * 2 for _ in range(3))
    a_prime = torch.softmax(torch.randn(n, heads, t, t, generator=g), -1)
    a_prime[:3] = 1.0 / t  # rows 0-2: no trajectory there (A' uniform, below alpha): the unspecified area
    alpha = 0.3
    change, attention = {}, {}
    for tau in (0.0, -100.0, -1e4):
        out, att = trackgo_attention(q, k, v, a_prime, heads, alpha=alpha, tau=tau, strength=0.5, return_attention=True)
        qh, kh, vh = (x.reshape(n, t, heads, -1).transpose(1, 2) for x in (q, k, v))
        logits = qh @ kh.transpose(-1, -2) / (math.sqrt(c // heads) * tau_temperature(tau))
        expected_att = torch.softmax(logits + torch.where(a_prime >= alpha, MASK_VALUE, 0.0), -1)
        expected = ((expected_att + 0.5 * a_prime) @ vh).transpose(1, 2).reshape(n, t, c)
        torch.testing.assert_close(att, expected_att, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        assert float(att[a_prime >= alpha].max()) < 1e-30  # masked entries stay out, whatever tau
        base = out[:3] - 0.5 * (a_prime[:3] @ vh[:3]).transpose(1, 2).reshape(3, t, c)  # the original branch
        change[tau] = float((base[:, 1:] - base[:, :-1]).abs().mean())  # frame-to-frame change, unspecified area
        attention[tau] = att[:3]
    assert change[0.0] > change[-100.0] > change[-1e4]
    assert change[-1e4] < 0.2 * change[0.0]  # static: close to the uniform temporal average
    spread = {tau: float((a - 1.0 / t).abs().max()) for tau, a in attention.items()}  # distance from uniform
    assert spread[-1e4] < 0.25 * spread[0.0] and spread[-1e4] < spread[-100.0] < spread[0.0]
    assert tau_temperature(0.0) == 1.0  # training (tau = 0) sees the formula unchanged


def test_tau_in_the_unet_three_settings_three_results():
    unet, inputs, video = tiny_svd_unet(FRAMES), unet_inputs(), trajectory_video()
    att = attach_trackgo(unet)
    randomise_encoder(att)
    outs = {}
    for tau in (0.0, -100.0, -1e4):
        with att.conditioned(video, tau=tau):
            outs[tau] = run(unet, inputs)
    assert not torch.equal(outs[0.0], outs[-100.0]) and not torch.equal(outs[-100.0], outs[-1e4])
    # the fp32 literal formula gave tau = 0 and -100 the same output (a constant shift per softmax row)
    assert (outs[0.0] - outs[-100.0]).abs().max() > 1e-4
