"""State-dict keys and shapes of the conditioning modules against the official checkpoints (reference sections 1 and 3).

Real-size modules are built on the meta device: only shapes are checked, nothing is allocated.
"""

from __future__ import annotations

import pytest
import torch

from trackdiffusion.models import (
    SVD_FUSER_CHANNELS,
    FrameEmbedding,
    GatedCrossAttentionTrackFuse,
    GatedSelfAttentionDense,
    ModelScopePositionNet,
    SVDBoxPositionNet,
    count_parameters,
)

META = torch.device("meta")


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def fuser_shapes(c: int, ctx: int, inner: int) -> dict[str, tuple[int, ...]]:
    return {
        "linear.weight": (c, ctx),
        "linear.bias": (c,),
        "attn.to_q.weight": (inner, c),
        "attn.to_k.weight": (inner, c),
        "attn.to_v.weight": (inner, c),
        "attn.to_out.0.weight": (c, inner),
        "attn.to_out.0.bias": (c,),
        "ff.net.0.proj.weight": (8 * c, c),
        "ff.net.0.proj.bias": (8 * c,),
        "ff.net.2.weight": (c, 4 * c),
        "ff.net.2.bias": (c,),
        "norm1.weight": (c,),
        "norm1.bias": (c,),
        "norm2.weight": (c,),
        "norm2.bias": (c,),
        "alpha_attn": (),
        "alpha_dense": (),
    }


@pytest.mark.parametrize("c", [320, 640, 1280])
def test_svd_fuser_keys(c):
    fuser = GatedSelfAttentionDense.svd(c, device=META)
    assert shapes(fuser) == fuser_shapes(c, 1024, c)
    assert fuser.attn.heads == c // 64 and fuser.attn.dim_head == 64


def test_svd_fuser_320_spot_checks():
    sd = shapes(GatedSelfAttentionDense.svd(320, device=META))
    assert sd["linear.weight"] == (320, 1024)
    assert sd["ff.net.0.proj.weight"] == (2560, 320)
    assert sd["ff.net.2.weight"] == (320, 1280)


@pytest.mark.parametrize("c", [320, 640, 1280])
def test_modelscope_fuser_keys(c):
    fuser = GatedSelfAttentionDense.modelscope(c, device=META)
    assert shapes(fuser) == fuser_shapes(c, 768, c)
    assert fuser.attn.heads == 8 and fuser.attn.dim_head == c // 8


def test_svd_position_net_keys():
    assert shapes(SVDBoxPositionNet(device=META)) == {
        "linears.0.weight": (512, 112),
        "linears.0.bias": (512,),
        "linears.2.weight": (512, 512),
        "linears.2.bias": (512,),
        "linears.4.weight": (1024, 512),
        "linears.4.bias": (1024,),
        "null_position_feature": (112,),
    }


def test_modelscope_position_net_keys():
    # Reference section 3.2, position_net rows.
    assert shapes(ModelScopePositionNet(device=META)) == {
        "linears.0.weight": (512, 832),
        "linears.0.bias": (512,),
        "linears.2.weight": (512, 512),
        "linears.2.bias": (512,),
        "linears.4.weight": (768, 512),
        "linears.4.bias": (768,),
        "null_positive_feature": (768,),
        "null_position_feature": (64,),
        "instance_embedding.weight": (20, 768),
        "tracklet_norm.weight": (64,),
        "tracklet_norm.bias": (64,),
        "tracklet_attn.to_q.weight": (128, 64),
        "tracklet_attn.to_k.weight": (128, 64),
        "tracklet_attn.to_v.weight": (128, 64),
        "tracklet_attn.to_out.0.weight": (64, 128),
        "tracklet_attn.to_out.0.bias": (64,),
        "tracklet_linears.0.weight": (128, 64),
        "tracklet_linears.0.bias": (128,),
        "tracklet_linears.2.weight": (128, 128),
        "tracklet_linears.2.bias": (128,),
    }


def test_modelscope_position_net_without_optional_parts():
    keys = set(shapes(ModelScopePositionNet(instance_embedding=False, motion_extractor=False, device=META)))
    assert keys == {
        "linears.0.weight", "linears.0.bias", "linears.2.weight", "linears.2.bias", "linears.4.weight",
        "linears.4.bias", "null_positive_feature", "null_position_feature",
    }  # fmt: skip


@pytest.mark.parametrize("c", [320, 640, 1280])
def test_injector_keys(c):
    sd = shapes(GatedCrossAttentionTrackFuse(c, device=META))
    expected = {
        "linears.0.weight": (c, c + 128),
        "linears.0.bias": (c,),
        "linears.2.weight": (c, c),
        "linears.2.bias": (c,),
        "linears.4.weight": (c, c),
        "linears.4.bias": (c,),
        "ff.net.0.proj.weight": (8 * c, c),
        "ff.net.0.proj.bias": (8 * c,),
        "ff.net.2.weight": (c, 4 * c),
        "ff.net.2.bias": (c,),
        "alpha_attn": (),
        "alpha_dense": (),
    }
    for a in ("attn1", "attn2"):
        expected |= {f"{a}.to_{p}.weight": (c, c) for p in "qkv"}
        expected |= {f"{a}.to_out.0.weight": (c, c), f"{a}.to_out.0.bias": (c,)}
    for i in (1, 2, 3):
        expected |= {f"norm{i}.weight": (c,), f"norm{i}.bias": (c,)}
    assert sd == expected


def test_frame_embedding_key():
    assert shapes(FrameEmbedding(16, 320, device=META)) == {"weight": (16, 320)}


def test_parameter_count_svd_adapter():
    """16 real-size SVD fusers + the SVD position net: ~212 M parameters (reference section 3.3 size check)."""
    assert len(SVD_FUSER_CHANNELS) == 16
    assert sorted(SVD_FUSER_CHANNELS).count(320) == 5 and SVD_FUSER_CHANNELS.count(1280) == 6
    fusers = torch.nn.ModuleList(GatedSelfAttentionDense.svd(c, device=META) for c in SVD_FUSER_CHANNELS)
    position_net = SVDBoxPositionNet(device=META)
    total = count_parameters(fusers) + count_parameters(position_net)
    # Per fuser: linear C*1024+C, attention 4C^2+C, GEGLU 12C^2+9C, two LayerNorms 4C, two gates.
    formula = sum(16 * c * c + 1039 * c + 2 for c in SVD_FUSER_CHANNELS)
    formula += (112 * 512 + 512) + (512 * 512 + 512) + (512 * 1024 + 1024) + 112
    print(f"16 SVD fusers + position net: {total:,} parameters ({total / 1e6:.2f} M; formula {formula:,})")
    assert abs(total - formula) <= 0.01 * formula
    assert total == formula
    assert 211e6 < total < 213e6
