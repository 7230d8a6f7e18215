"""The TrackDiffusion-SVD adapter container, without ComfyUI: delta naming, block lookup, tokens per chunk."""

from __future__ import annotations

import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.models.svd.adapter import (
    SVD_ATTENTION_BLOCKS,
    TrackDiffusionSVDAdapter,
    block_key,
    slots_to_svd_boxes,
    tokens_for_chunks,
)

TINY_BLOCKS = [("input_blocks.1.1", 32), ("middle_block.1", 64), ("output_blocks.11.1", 32)]


def tiny_adapter(seed=0):
    torch.manual_seed(seed)
    adapter = TrackDiffusionSVDAdapter(TINY_BLOCKS, context_dim=16, head_dim=16)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.1)
    return adapter


def test_block_keys_match_comfyui_block_ids():
    assert block_key("input_blocks.4.1") == ("input", 4)
    assert block_key("middle_block.1") == ("middle", 0)
    assert block_key("output_blocks.11.1") == ("output", 11)
    assert len(SVD_ATTENTION_BLOCKS) == 16 and len({block_key(b) for b in SVD_ATTENTION_BLOCKS}) == 16


def test_real_svd_adapter_has_official_delta_names():
    with torch.device("meta"):
        adapter = TrackDiffusionSVDAdapter()
    keys = adapter.delta_state_dict().keys()
    assert "diffusion_model.input_blocks.1.1.transformer_blocks.0.fuser.linear.weight" in keys
    assert "diffusion_model.output_blocks.11.1.transformer_blocks.0.fuser.alpha_dense" in keys
    assert "position_net.null_position_feature" in keys
    assert sum(k.endswith("fuser.alpha_attn") for k in keys) == 16
    assert adapter.fuser_for(("middle", 0)).linear.weight.shape == (1280, 1024)
    assert adapter.fuser_for(("output", 2)) is None  # output_blocks.2 has no transformer in SVD


def test_delta_round_trip_and_split_of_base_weights():
    adapter = tiny_adapter()
    delta = adapter.delta_state_dict()
    delta["diffusion_model.out.2.bias"] = torch.ones(4)
    adapter_sd, base = TrackDiffusionSVDAdapter.split_delta(delta)
    assert set(base) == {"diffusion_model.out.2.bias"}
    blocks, context = TrackDiffusionSVDAdapter.blocks_from_state_dict(adapter_sd)
    assert blocks == TINY_BLOCKS and context == 16
    rebuilt = TrackDiffusionSVDAdapter(blocks, context_dim=context, head_dim=16)
    rebuilt.load_state_dict(adapter_sd)
    for (k, a), (k2, b) in zip(adapter.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    with pytest.raises(InvalidInputError, match="unexpected key"):
        TrackDiffusionSVDAdapter.split_delta({"model.diffusion_model.x": torch.zeros(1)})


def test_box_tokens_masks_and_chunk_order():
    t = load({"version": 1, "width": 100, "height": 50, "num_frames": 3, "objects": [
        {"id": 5, "color": "#ff0000", "keyframes": [{"frame": 0, "box": [0, 0, 50, 25]},
                                                    {"frame": 2, "box": [50, 25, 100, 50], "visible": False}]}]})
    boxes, masks = slots_to_svd_boxes(t.to_slots(3, 100, 50, 20))
    assert boxes.shape == (3, 20, 7) and masks.shape == (3, 20)
    assert boxes[0, 0].tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.0]
    assert masks[:, 0].tolist() == [1.0, 1.0, 0.0]
    adapter = tiny_adapter()
    cond = adapter.box_tokens(boxes[None], masks[None])
    null = adapter.box_tokens(boxes[None], torch.zeros_like(masks[None]))
    assert cond.shape == (3, 20, 16)
    assert torch.equal(cond[2], null[2])  # hidden frame = null tokens
    assert not torch.equal(cond[0], null[0])
    batch = tokens_for_chunks(cond, null, [1, 0])
    assert torch.equal(batch[:3], null) and torch.equal(batch[3:], cond)
    with pytest.raises(InvalidInputError, match="trained with 20"):
        adapter.box_tokens(boxes[None, :, :5], masks[None, :, :5])
