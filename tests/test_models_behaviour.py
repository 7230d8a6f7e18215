"""Behaviour of the conditioning modules: gates, null features, slot/frame regrouping, and `operations` casting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.models import (
    FrameEmbedding,
    GatedCrossAttentionTrackFuse,
    GatedSelfAttentionDense,
    ModelScopePositionNet,
    SVDBoxPositionNet,
    instance_roi_features,
)


def randomise(module: nn.Module, seed: int = 0, scale: float = 0.2) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return module


def set_gates(module: nn.Module, attn: float, dense: float) -> None:
    with torch.no_grad():
        module.alpha_attn.fill_(attn)
        module.alpha_dense.fill_(dense)


# ------------------------------------------------------------------------------------------------------------- fuser


def test_fresh_fuser_is_an_exact_identity():
    fuser = GatedSelfAttentionDense(32, 24, 2, 16)
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        assert fuser(x, torch.randn(2, 5, 24)) is x
    # while training, the zero gate still lets a gradient through (or it could never open), output unchanged
    out = fuser(x, torch.randn(2, 5, 24))
    assert torch.equal(out, x)
    out.sum().backward()
    assert fuser.alpha_attn.grad is not None and fuser.alpha_attn.grad != 0


def test_fuser_zero_gates_or_zero_strength_identity():
    fuser = randomise(GatedSelfAttentionDense(32, 24, 2, 16))
    x, objs = torch.randn(2, 10, 32), torch.randn(2, 5, 24)
    set_gates(fuser, 0.0, 0.0)
    assert torch.equal(fuser(x, objs), x)
    set_gates(fuser, 0.7, -0.3)
    assert fuser(x, objs, strength=0.0) is x
    assert not torch.equal(fuser(x, objs), x)


def test_fuser_single_gate_matches_formula():
    fuser = randomise(GatedSelfAttentionDense(32, 24, 2, 16))
    x, objs = torch.randn(2, 10, 32), torch.randn(2, 5, 24)
    set_gates(fuser, 0.5, 0.0)
    with torch.no_grad():
        tokens = fuser.linear(objs)
        expected = x + torch.tanh(torch.tensor(0.5)) * fuser.attn(fuser.norm1(torch.cat([x, tokens], 1)))[:, :10]
        torch.testing.assert_close(fuser(x, objs), expected)
        torch.testing.assert_close(fuser(x, objs, strength=0.5) - x, 0.5 * (expected - x), atol=1e-6, rtol=1e-5)


def test_fuser_tensor_strength_per_sample():
    fuser = randomise(GatedSelfAttentionDense(32, 24, 2, 16))
    x, objs = torch.randn(2, 10, 32), torch.randn(2, 5, 24)
    with torch.no_grad():
        out = fuser(x, objs, strength=torch.tensor([0.0, 1.0]).view(2, 1, 1))
        assert torch.equal(out[0], x[0])
        torch.testing.assert_close(out[1], fuser(x, objs)[1])


def test_fuser_rejects_mismatched_tokens():
    fuser = GatedSelfAttentionDense(32, 24, 2, 16)
    with pytest.raises(InvalidInputError, match="fuser tokens"):
        fuser(torch.randn(2, 10, 32), torch.randn(3, 5, 24))


# ------------------------------------------------------------------------------------------------------ position nets


def test_svd_position_net_masks_select_null_feature():
    net = randomise(SVDBoxPositionNet(out_dim=48, hidden_dim=32))
    boxes = torch.rand(2, 6, 7)
    masks = torch.tensor([[1, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        out = net(boxes, masks)
        null_token = net.linears(net.null_position_feature)
        other = net(torch.rand(2, 6, 7), masks)
    assert out.shape == (2, 6, 48)
    off = masks == 0
    torch.testing.assert_close(out[off], null_token.expand(int(off.sum()), 48))
    torch.testing.assert_close(other[off], out[off])
    assert not torch.allclose(other[~off], out[~off])
    with torch.no_grad():
        expected = net.linears(net.fourier_embedder(boxes[0, 0]))
    torch.testing.assert_close(out[0, 0], expected)


def test_svd_position_net_validates_shapes():
    net = SVDBoxPositionNet(out_dim=48, hidden_dim=32)
    with pytest.raises(InvalidInputError, match="7"):
        net(torch.rand(1, 4, 4), torch.ones(1, 4))
    with pytest.raises(InvalidInputError, match="masks"):
        net(torch.rand(1, 4, 7), torch.ones(1, 5))


def small_modelscope(**kw) -> ModelScopePositionNet:
    return randomise(ModelScopePositionNet(positive_len=16, out_dim=24, max_objs=3, hidden_dim=20, **kw))


def test_modelscope_position_net_null_and_instance_embedding():
    frames, slots = 2, 3
    net = small_modelscope()
    boxes, positive = torch.rand(1, frames * slots, 4), torch.randn(1, frames * slots, 16)
    masks = torch.tensor([[1, 0, 1, 0, 0, 1]], dtype=torch.float32)
    with torch.no_grad():
        objs, _ = net(boxes, masks, positive, num_frames=frames)
        null = net.linears(torch.cat([net.null_positive_feature, net.null_position_feature]))
        inst = net.instance_embedding.weight
    # Masked slots: null token plus the slot's instance embedding (added to every slot, frame-major f*N + slot).
    for i in range(frames * slots):
        if masks[0, i] == 0:
            torch.testing.assert_close(objs[0, i], null + inst[i % slots])
    with torch.no_grad():
        present = net.linears(torch.cat([positive[0, 2], net.fourier_embedder(boxes[0, 2])]))
    torch.testing.assert_close(objs[0, 2], present + inst[2])


def test_motion_extractor_is_per_slot_across_time():
    frames, slots = 4, 3
    net = small_modelscope()
    boxes, positive = torch.rand(2, frames * slots, 4), torch.randn(2, frames * slots, 16)
    masks = torch.ones(2, frames * slots)
    with torch.no_grad():
        _, track = net(boxes, masks, positive, num_frames=frames)
        moved = boxes.clone()
        moved[1, 2 * slots + 1] += 0.3  # sample 1, frame 2, slot 1
        _, track2 = net(moved, masks, positive, num_frames=frames)
    assert track.shape == (2, frames, slots, 128)
    changed = (track2 - track).abs().amax(-1) > 0
    expected = torch.zeros(2, frames, slots, dtype=torch.bool)
    expected[1, :, 1] = True  # the whole tracklet of that slot (temporal attention), nothing else
    assert torch.equal(changed, expected)
    # Explicit per-sequence computation of one tracklet.
    with torch.no_grad():
        loc = net.fourier_embedder(boxes[0].view(frames, slots, 4)[:, 2])  # [F, 64]
        seq = loc + net.tracklet_attn(net.tracklet_norm(loc)[None])[0]
        torch.testing.assert_close(track[0, :, 2], net.tracklet_linears(seq))


def test_modelscope_position_net_validates_frames():
    net = small_modelscope()
    with pytest.raises(InvalidInputError, match=r"2 \* 3 = 6"):
        net(torch.rand(1, 9, 4), torch.ones(1, 9), torch.randn(1, 9, 16), num_frames=2)
    with pytest.raises(InvalidInputError, match="positive_embeddings"):
        net(torch.rand(1, 6, 4), torch.ones(1, 6), torch.randn(1, 6, 8), num_frames=2)


def test_modelscope_position_net_optional_parts():
    net = small_modelscope(instance_embedding=False, motion_extractor=False)
    objs, track = net(torch.rand(1, 6, 4), torch.ones(1, 6), torch.randn(1, 6, 16), num_frames=2)
    assert objs.shape == (1, 6, 24) and track is None


def test_instance_embedding_starts_at_zero():
    assert torch.count_nonzero(ModelScopePositionNet().instance_embedding.weight) == 0


# ----------------------------------------------------------------------------------------------------------- injector


def test_instance_roi_features_pools_present_slots_only():
    bf, c, h, w = 4, 3, 6, 8
    # Channel k of frame i is the constant 100*i + k, so any box pools to exactly that.
    hidden = (100 * torch.arange(bf).view(bf, 1, 1, 1) + torch.arange(c).view(1, c, 1, 1)).float().expand(bf, c, h, w)
    boxes = torch.rand(bf, 5, 4) * 0.5
    boxes[..., 2:] += 0.5
    masks = (torch.arange(bf * 5).view(bf, 5) % 2).float()
    null = torch.full((1, c), -7.0, dtype=torch.float64)
    out = instance_roi_features(hidden, boxes, masks, null)
    assert out.shape == (bf, 5, c) and out.dtype == torch.float32
    for i in range(bf):
        for s in range(5):
            want = torch.full((c,), -7.0) if masks[i, s] == 0 else 100 * i + torch.arange(c).float()
            torch.testing.assert_close(out[i, s], want)


def test_instance_roi_features_scales_boxes_by_map_size():
    h, w = 4, 8
    ramp_x = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w).expand(1, 1, h, w)
    # Normalised box x 0.25..0.5 -> feature x 2..4, 2 samples at 2.5, 3.5 -> 3.0.
    out = instance_roi_features(ramp_x, torch.tensor([[[0.25, 0.0, 0.5, 0.5]]]), torch.ones(1, 1), torch.zeros(1, 1))
    assert out.item() == pytest.approx(3.0)


def injector_reference(inj, x, roi, track, frames):
    """Loop over videos and slots: temporal self-attention per (video, slot), then gated cross-attention."""
    bf, n, _ = roi.shape
    tokens = inj.linears(torch.cat([roi, track], -1))
    refined = tokens.clone()
    for b in range(bf // frames):
        for s in range(n):
            seq = tokens[b * frames : (b + 1) * frames, s]
            refined[b * frames : (b + 1) * frames, s] = seq + inj.attn1(inj.norm1(seq)[None])[0]
    x = x + torch.tanh(inj.alpha_attn) * inj.attn2(inj.norm2(x), refined)
    return x + torch.tanh(inj.alpha_dense) * inj.ff(inj.norm3(x))


def test_injector_matches_loop_reference_and_regroups_by_video():
    frames, c = 3, 32
    inj = randomise(GatedCrossAttentionTrackFuse(c, track_dim=8, heads=4))
    set_gates(inj, 0.6, -0.4)
    x, roi, track = torch.randn(2 * frames, 10, c), torch.randn(2 * frames, 5, c), torch.randn(2 * frames, 5, 8)
    with torch.no_grad():
        out = inj(x, roi, track, num_frames=frames)
        torch.testing.assert_close(out, injector_reference(inj, x, roi, track, frames))
        # The position net's [B, F, N, D] layout is accepted as is.
        torch.testing.assert_close(inj(x, roi, track.view(2, frames, 5, 8), num_frames=frames), out)
        # Changing an instance in video 1 changes only video 1's frames.
        roi2 = roi.clone()
        roi2[frames + 1, 2] += 1.0
        changed = (inj(x, roi2, track, num_frames=frames) - out).abs().flatten(1).amax(1) > 0
    assert changed.tolist() == [False] * frames + [True] * frames


def test_injector_gates_zero_identity():
    inj = randomise(GatedCrossAttentionTrackFuse(32, track_dim=8, heads=4))
    x, roi, track = torch.randn(4, 10, 32), torch.randn(4, 5, 32), torch.randn(4, 5, 8)
    set_gates(inj, 0.0, 0.0)
    assert torch.equal(inj(x, roi, track, num_frames=2), x)
    set_gates(inj, 0.5, 0.5)
    assert inj(x, roi, track, num_frames=2, strength=0) is x
    assert not torch.equal(inj(x, roi, track, num_frames=2), x)
    with pytest.raises(InvalidInputError, match="num_frames = 3"):
        inj(x, roi, track, num_frames=3)


# ---------------------------------------------------------------------------------------------------- frame embedding


def test_frame_embedding_adds_per_frame_vectors_and_limits_frames():
    emb = FrameEmbedding(16, 8)
    x = torch.zeros(5, 12, 8)
    torch.testing.assert_close(emb(x), emb.weight[:12].detach().expand(5, 12, 8))
    with pytest.raises(InvalidInputError) as err:
        emb(torch.zeros(2, 17, 8))
    assert "17" in str(err.value) and "16" in str(err.value)


# ------------------------------------------------------------------------------------------------ operations casting


class CastCounter:
    calls = 0


class CastLinear(nn.Linear):
    """Stand-in for comfy.ops.manual_cast.Linear: weights cast to the input's dtype/device at every call."""

    def forward(self, x):
        CastCounter.calls += 1
        bias = None if self.bias is None else self.bias.to(x)
        return F.linear(x, self.weight.to(x), bias)


class CastLayerNorm(nn.LayerNorm):
    def forward(self, x):
        CastCounter.calls += 1
        return F.layer_norm(x, self.normalized_shape, self.weight.to(x), self.bias.to(x), self.eps)


class CastEmbedding(nn.Embedding):
    def forward(self, idx):
        CastCounter.calls += 1
        return F.embedding(idx, self.weight)


CAST_OPS = SimpleNamespace(Linear=CastLinear, LayerNorm=CastLayerNorm, Embedding=CastEmbedding)


def cast_cases():
    f, s = 2, 3
    boxes7, boxes4, masks = torch.rand(1, f * s, 7), torch.rand(1, f * s, 4), torch.tensor([[1.0, 0, 1, 1, 0, 1]])
    return [
        (lambda ops: GatedSelfAttentionDense(16, 12, 2, 8, operations=ops),
         lambda m, dt: m(torch.randn(2, 5, 16, dtype=dt), torch.randn(2, 3, 12, dtype=dt))),
        (lambda ops: GatedCrossAttentionTrackFuse(16, track_dim=8, heads=2, operations=ops),
         lambda m, dt: m(torch.randn(4, 5, 16, dtype=dt), torch.randn(4, 3, 16, dtype=dt),
                         torch.randn(4, 3, 8, dtype=dt), num_frames=2)),
        (lambda ops: SVDBoxPositionNet(out_dim=16, hidden_dim=8, operations=ops),
         lambda m, dt: m(boxes7.to(dt), masks.to(dt))),
        (lambda ops: ModelScopePositionNet(positive_len=8, out_dim=16, max_objs=s, hidden_dim=8, operations=ops),
         lambda m, dt: m(boxes4.to(dt), masks.to(dt), torch.randn(1, f * s, 8, dtype=dt), num_frames=f)[0]),
        (lambda ops: FrameEmbedding(4, 16, operations=ops), lambda m, dt: m(torch.randn(3, 4, 16, dtype=dt))),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(5))
def test_operations_are_honoured_and_bare_parameters_cast(case):
    build, call = cast_cases()[case]
    module = randomise(build(CAST_OPS))  # float32 weights, nonzero gates and null features
    CastCounter.calls = 0
    with torch.no_grad():
        torch.manual_seed(1)
        out = call(module, torch.float64)
        assert out.dtype == torch.float64
        assert CastCounter.calls > 0 or isinstance(module, FrameEmbedding)
        reference = build(None)
        reference.load_state_dict(module.state_dict())
        reference.double()
        torch.manual_seed(1)
        torch.testing.assert_close(out, call(reference, torch.float64), atol=1e-5, rtol=1e-5)
    assert all(p.dtype == torch.float32 for p in module.parameters())  # nothing was converted in place
    if not isinstance(module, FrameEmbedding):
        plain = build(None)
        plain.load_state_dict(module.state_dict())
        with pytest.raises(RuntimeError), torch.no_grad():
            torch.manual_seed(1)
            call(plain, torch.float64)  # plain torch.nn layers cannot take float64 inputs with float32 weights
