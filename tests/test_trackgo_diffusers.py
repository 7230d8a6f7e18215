"""TrackGo's TrackAdapter on a stock diffusers UNetSpatioTemporalConditionModel (backends.diffusers_trackgo)."""

from __future__ import annotations

import json

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


def test_tau_acts_only_through_the_masked_logits():
    unet, inputs, video = tiny_svd_unet(FRAMES), unet_inputs(), trajectory_video()
    att = attach_trackgo(unet)
    randomise_encoder(att)
    alpha = 0.3  # above 1/F = 0.25: a row of A' is never entirely above it, but can be partly
    a_primes = _a_primes(att, unet, inputs, video)
    masked = torch.cat([(a_primes[k] >= alpha).flatten(0, 1) for k in att.layer_names])  # [rows, T, T]
    mixed = masked.any(-1) & ~masked.all(-1)  # query rows where some keys are masked
    print(f"A' >= {alpha}: {masked.float().mean():.3f} of entries, mixed rows {mixed.float().mean():.3f}")
    assert 0 < mixed.float().mean() < 1

    # alpha above 1: no A' reaches it, the mask is tau everywhere, a shift every softmax row ignores
    out_0, att_0 = _recorded(att, unet, inputs, video, alpha=1.5, tau=0.0)
    out_100, att_100 = _recorded(att, unet, inputs, video, alpha=1.5, tau=-100.0)
    never = max((att_0[k] - att_100[k]).abs().max().item() for k in att_0)
    assert never < 1e-5 and torch.allclose(out_0, out_100, atol=1e-4)

    # some A' >= alpha: those logits get -1e4 and tau weighs the others against them. Compared at the first
    # temporal layer, whose input does not depend on tau (later layers see the earlier layers' changes).
    first = att.layer_names[0]
    masked, mixed = masked[: a_primes[first].flatten(0, 1).shape[0]], mixed[: a_primes[first].flatten(0, 1).shape[0]]
    rows = {}
    for tau in (0.0, -100.0, -1e4):
        rows[tau] = _recorded(att, unet, inputs, video, alpha=alpha, tau=tau)[1][first].flatten(0, 1)
    d_100 = (rows[0.0] - rows[-100.0]).abs().amax(-1)  # [rows, T]
    d_1e4 = (rows[0.0] - rows[-1e4]).abs().amax(-1)
    print(f"{first}: mixed rows {mixed.float().mean():.3f}; tau 0 vs -1e2: max {d_100.max():.2e}; tau 0 vs -1e4: "
          f"mixed rows max {d_1e4[mixed].max():.2e}, other rows max {d_1e4[~mixed].max():.2e}")
    assert 0 < mixed.float().mean() < 1
    # masked entries sit 1e4 below the others: their weight is 0 ...
    assert torch.all(rows[0.0][masked] < 1e-30)
    # ... so moving the others by tau = -1e2 changes nothing beyond float rounding; it matters only near -1e4
    assert d_100.max() < 1e-5
    # at tau = -1e4 the mask is a constant shift again: exactly the rows it split change (the others only by the
    # float32 rounding of logits near -1e4, whose spacing is ~1e-3)
    assert d_1e4[~mixed].max() < 2e-3 and d_1e4[mixed].max() > 0.1
