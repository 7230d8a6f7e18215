"""Key names TrackDiffusion's ModelScope (UNet3D, ``main`` branch) checkpoint adds to a diffusers UNet3D.

The UNet3D uses the same block positions as SVD (see :mod:`.svd_keys`): spatial transformers at
``down_blocks.{0,1,2}.attentions.{0,1}``, ``mid_block.attentions.0`` and ``up_blocks.{1,2,3}.attentions.{0,1,2}``, each
followed by a temporal transformer at the same place under ``temp_attentions``. Added tensors (default build of the
official code; D = text context dim 768, C = block channels, P = Fourier position dim 64, T = tracklet dim 128,
F = frame positions 16, S = slots 20):

* ``position_net.*``: ``linears.{0,2,4}`` [H, D+P], [H, H], [D, H]; ``null_positive_feature`` [D];
  ``null_position_feature`` [P]; ``instance_embedding.weight`` [S, D]; ``tracklet_norm`` [P];
  ``tracklet_attn.to_{q,k,v}.weight`` [A, P], ``tracklet_attn.to_out.0`` [P, A]; ``tracklet_linears.{0,2}`` [T, P], [T, T]
* 16 fusers ``<attention>.transformer_blocks.0.fuser.*`` (the GLIGEN sub-keys, context D)
* 9 injectors ``up_blocks.{1,2,3}.attentions.{0,1,2}.transformer_blocks.0.injector.*``
* ``up_blocks.{1,2,3}.null_track_feat.weight`` [1, C]
* ``transformer_in.time_embedder.weight`` [F, 320] and ``<temp attention>.time_embedder.weight`` [F, C] (16)
"""

from __future__ import annotations

from ..svd.naming import ATTENTIONS, CHANNEL_MULT, FUSER, fuser_shapes

INJECTOR = "transformer_blocks.0.injector"
#: name parts of the base UNet3D tensors the official stage 2 fine-tuned (``--train_mode temp``: every temporal
#: convolution and attention, ``transformer_in``); the converted adapter carries them with the added tensors
STAGE2_FINETUNED = ("temp_convs", "temp_attentions", "transformer_in")
UP_ATTENTIONS = tuple(s for s in ATTENTIONS if s.diffusers.startswith("up_blocks."))


def stage2_finetuned(key: str) -> bool:
    """Whether ``key`` is a base UNet3D tensor the official stage 2 fine-tuned (so the stock pretrain folder's value
    is not the one TrackDiffusion was trained with)."""
    return any(part in key for part in STAGE2_FINETUNED)


def temp_attention(diffusers_attention: str) -> str:
    """``down_blocks.0.attentions.1`` -> ``down_blocks.0.temp_attentions.1``."""
    return diffusers_attention.replace(".attentions.", ".temp_attentions.")


def injector_shapes(c: int, tracklet_dim: int) -> dict[str, tuple[int, ...]]:
    """Sub-key -> shape of one ``GatedCrossAttentionTrackFuse`` injector for block channels C."""
    shapes: dict[str, tuple[int, ...]] = {
        "linears.0.weight": (c, c + tracklet_dim), "linears.0.bias": (c,),
        "linears.2.weight": (c, c), "linears.2.bias": (c,),
        "linears.4.weight": (c, c), "linears.4.bias": (c,),
    }
    for a in ("attn1", "attn2"):
        shapes.update({f"{a}.to_q.weight": (c, c), f"{a}.to_k.weight": (c, c), f"{a}.to_v.weight": (c, c),
                       f"{a}.to_out.0.weight": (c, c), f"{a}.to_out.0.bias": (c,)})
    shapes.update({"ff.net.0.proj.weight": (8 * c, c), "ff.net.0.proj.bias": (8 * c,),
                   "ff.net.2.weight": (c, 4 * c), "ff.net.2.bias": (c,)})
    for n in ("1", "2", "3"):
        shapes.update({f"norm{n}.weight": (c,), f"norm{n}.bias": (c,)})
    shapes.update({"alpha_attn": (), "alpha_dense": ()})
    return shapes


def position_net_shapes(context_dim: int, position_dim: int, hidden: int, slots: int, attn_dim: int,
                        tracklet_dim: int) -> dict[str, tuple[int, ...]]:
    p = "position_net."
    return {
        p + "linears.0.weight": (hidden, context_dim + position_dim), p + "linears.0.bias": (hidden,),
        p + "linears.2.weight": (hidden, hidden), p + "linears.2.bias": (hidden,),
        p + "linears.4.weight": (context_dim, hidden), p + "linears.4.bias": (context_dim,),
        p + "null_positive_feature": (context_dim,),
        p + "null_position_feature": (position_dim,),
        p + "instance_embedding.weight": (slots, context_dim),
        p + "tracklet_norm.weight": (position_dim,), p + "tracklet_norm.bias": (position_dim,),
        p + "tracklet_attn.to_q.weight": (attn_dim, position_dim),
        p + "tracklet_attn.to_k.weight": (attn_dim, position_dim),
        p + "tracklet_attn.to_v.weight": (attn_dim, position_dim),
        p + "tracklet_attn.to_out.0.weight": (position_dim, attn_dim),
        p + "tracklet_attn.to_out.0.bias": (position_dim,),
        p + "tracklet_linears.0.weight": (tracklet_dim, position_dim), p + "tracklet_linears.0.bias": (tracklet_dim,),
        p + "tracklet_linears.2.weight": (tracklet_dim, tracklet_dim), p + "tracklet_linears.2.bias": (tracklet_dim,),
    }


def modelscope_adapter_shapes(model_channels: int = 320, context_dim: int = 768, position_dim: int = 64,
                              hidden: int = 512, slots: int = 20, attn_dim: int = 128, tracklet_dim: int = 128,
                              frame_positions: int = 16) -> dict[str, tuple[int, ...]]:
    """Every added key of the ModelScope checkpoint (diffusers naming) -> its expected shape."""
    shapes = position_net_shapes(context_dim, position_dim, hidden, slots, attn_dim, tracklet_dim)
    shapes["transformer_in.time_embedder.weight"] = (frame_positions, model_channels)
    for s in ATTENTIONS:
        c = model_channels * CHANNEL_MULT[s.level]
        shapes.update({f"{s.diffusers}.{FUSER}.{k}": v for k, v in fuser_shapes(c, context_dim).items()})
        shapes[f"{temp_attention(s.diffusers)}.time_embedder.weight"] = (frame_positions, c)
    for s in UP_ATTENTIONS:
        c = model_channels * CHANNEL_MULT[s.level]
        shapes.update({f"{s.diffusers}.{INJECTOR}.{k}": v for k, v in injector_shapes(c, tracklet_dim).items()})
        block = s.diffusers.rsplit(".attentions.", 1)[0]
        shapes[f"{block}.null_track_feat.weight"] = (1, c)
    return shapes
