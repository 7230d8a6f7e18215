"""Numerical parity with diffusers where it has the same module (diffusers is only a test reference)."""

from __future__ import annotations

import diffusers.models.attention as diffusers_attention
import diffusers.models.attention_processor as diffusers_processor
import diffusers.models.embeddings as diffusers_embeddings
import pytest
import torch

from trackdiffusion.models import (
    Attention,
    FeedForward,
    FourierBoxEmbedder,
    GatedSelfAttentionDense,
    ModelScopePositionNet,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}


def randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Fill every parameter (gates and null features included) with non-trivial values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def load_same(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    randomise(ours)
    theirs.load_state_dict(ours.state_dict(), strict=True)


def test_fourier_matches_diffusers_for_boxes():
    boxes = torch.rand(2, 40, 4) * 1.2 - 0.1
    ours = FourierBoxEmbedder(num_freqs=8, temperature=100)(boxes)
    theirs = diffusers_embeddings.get_fourier_embeds_from_boundingbox(8, boxes)
    assert ours.shape == theirs.shape == (2, 40, 64)
    torch.testing.assert_close(ours, theirs, **TOL)


def test_fourier_layout_for_seven_channels():
    x = torch.rand(3, 5, 7)
    out = FourierBoxEmbedder()(x)
    assert out.shape == (3, 5, 112)
    for k in range(8):
        f = 100 ** (k / 8)
        for s, fn in enumerate((torch.sin, torch.cos)):
            for c in range(7):
                torch.testing.assert_close(out[..., k * 14 + s * 7 + c], fn(f * x[..., c]), **TOL)


def test_fourier_computes_in_float32_and_returns_the_input_dtype():
    boxes = torch.rand(1, 20, 4).half()
    out = FourierBoxEmbedder()(boxes)
    assert out.dtype == torch.float16
    assert torch.equal(out, FourierBoxEmbedder()(boxes.float()).half())


@pytest.mark.parametrize("context_dim", [None, 48])
def test_attention_matches_diffusers(context_dim):
    ours = Attention(64, heads=4, dim_head=32, context_dim=context_dim)
    theirs = diffusers_processor.Attention(query_dim=64, cross_attention_dim=context_dim, heads=4, dim_head=32)
    load_same(ours, theirs)
    x = torch.randn(3, 11, 64)
    ctx = None if context_dim is None else torch.randn(3, 7, context_dim)
    torch.testing.assert_close(ours(x, ctx), theirs(x, encoder_hidden_states=ctx), **TOL)


def test_feedforward_matches_diffusers():
    ours = FeedForward(40)
    theirs = diffusers_attention.FeedForward(40, activation_fn="geglu")
    load_same(ours, theirs)
    x = torch.randn(2, 9, 40)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)


@pytest.mark.parametrize(("c", "ctx", "heads", "dim_head"), [(128, 96, 2, 64), (64, 32, 8, 8)])
def test_fuser_matches_diffusers(c, ctx, heads, dim_head):
    ours = GatedSelfAttentionDense(c, ctx, heads, dim_head)
    theirs = diffusers_attention.GatedSelfAttentionDense(c, ctx, heads, dim_head)
    load_same(ours, theirs)
    assert float(ours.alpha_attn.detach()) != 0 and float(ours.alpha_dense.detach()) != 0
    x, objs = torch.randn(4, 30, c), torch.randn(4, 20, ctx)
    torch.testing.assert_close(ours(x, objs), theirs(x, objs), **TOL)


def test_real_size_fuser_state_dict_loads_into_diffusers():
    ours = GatedSelfAttentionDense.svd(320)
    theirs = diffusers_attention.GatedSelfAttentionDense(320, 1024, 5, 64)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_modelscope_position_net_objs_match_diffusers_gligen_projection():
    """Without the instance embedding, the location tokens are diffusers' text-only GLIGEN projection."""
    frames, slots = 3, 5
    ours = ModelScopePositionNet(positive_len=32, out_dim=48, max_objs=slots, hidden_dim=40)
    theirs = diffusers_embeddings.GLIGENTextBoundingboxProjection(positive_len=32, out_dim=48, feature_type="text-only")
    theirs.linears[0] = torch.nn.Linear(32 + 64, 40)
    theirs.linears[2] = torch.nn.Linear(40, 40)
    theirs.linears[4] = torch.nn.Linear(40, 48)
    randomise(ours)
    shared = {k: v for k, v in ours.state_dict().items() if not k.startswith(("instance_", "tracklet_"))}
    theirs.load_state_dict(shared, strict=True)
    boxes = torch.rand(2, frames * slots, 4)
    masks = (torch.rand(2, frames * slots) > 0.4).float()
    positive = torch.randn(2, frames * slots, 32)
    objs, track = ours(boxes, masks, positive, num_frames=frames)
    expected = theirs(boxes, masks, positive_embeddings=positive)
    inst = ours.instance_embedding.weight.detach()
    torch.testing.assert_close(objs - inst.repeat(frames, 1), expected, **TOL)
    assert track.shape == (2, frames, slots, 128)
