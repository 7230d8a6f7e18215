"""The diffusers -> ComfyUI SVD key map, checked against the REAL module trees of both libraries.

``tests/data/svd_diffusers_keys.json`` / ``svd_comfyui_keys.json`` were listed from
``diffusers.UNetSpatioTemporalConditionModel()`` and from ComfyUI's ``UNetModel`` with the ``SVD_img2vid`` config
(both on the meta device) by ``tests/data/make_svd_key_lists.py``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from trackdiffusion.models.modelscope.naming import modelscope_adapter_shapes
from trackdiffusion.models.svd.naming import (
    ATTENTIONS,
    RESNETS,
    diffusers_to_comfyui,
    fuser_shapes,
    svd_delta_key_map,
    svd_diffusers_keys,
    svd_position_net_shapes,
)

DATA = Path(__file__).resolve().parent / "data"


def _key_list(name: str) -> dict[str, tuple[int, ...]]:
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    keys = {k: tuple(s) for k, s in doc["keys"]}
    assert len(keys) == doc["count"]
    return keys


DIFFUSERS = _key_list("svd_diffusers_keys.json")
COMFY = _key_list("svd_comfyui_keys.json")


def test_real_lists_are_the_svd_unet():
    assert len(DIFFUSERS) == len(COMFY) == 1428
    assert DIFFUSERS["conv_in.weight"] == COMFY["input_blocks.0.0.weight"] == (320, 8, 3, 3)
    assert sum("mix_factor" in k for k in DIFFUSERS) == sum("mix_factor" in k for k in COMFY) == 38


def test_structural_key_set_equals_the_real_diffusers_list():
    generated = svd_diffusers_keys()
    assert len(generated) == len(set(generated)) == 1428
    assert set(generated) == set(DIFFUSERS)


def test_full_map_is_a_bijection_onto_comfyui_with_equal_shapes():
    mapped = {k: diffusers_to_comfyui(k) for k in DIFFUSERS}
    assert len(set(mapped.values())) == len(mapped)
    assert set(mapped.values()) == set(COMFY)
    wrong = [(k, v) for k, v in mapped.items() if COMFY[v] != DIFFUSERS[k]]
    assert not wrong


def test_brief_formulas():
    for b in range(3):
        for j in range(2):
            assert diffusers_to_comfyui(f"down_blocks.{b}.attentions.{j}.norm.weight") == \
                f"input_blocks.{3 * b + j + 1}.1.norm.weight"
    for b in range(4):
        for r in range(2):
            assert diffusers_to_comfyui(f"down_blocks.{b}.resnets.{r}.time_mixer.mix_factor") == \
                f"input_blocks.{3 * b + r + 1}.0.time_mixer.mix_factor"
        for r in range(3):
            assert diffusers_to_comfyui(f"up_blocks.{b}.resnets.{r}.time_mixer.mix_factor") == \
                f"output_blocks.{3 * b + r}.0.time_mixer.mix_factor"
    for b in (1, 2, 3):
        for j in range(3):
            assert diffusers_to_comfyui(f"up_blocks.{b}.attentions.{j}.time_mixer.mix_factor") == \
                f"output_blocks.{3 * b + j}.1.time_mixer.mix_factor"
    assert diffusers_to_comfyui("mid_block.attentions.0.proj_in.weight") == "middle_block.1.proj_in.weight"
    assert diffusers_to_comfyui("mid_block.resnets.1.time_mixer.mix_factor") == "middle_block.2.time_mixer.mix_factor"
    assert diffusers_to_comfyui("conv_out.bias") == "out.2.bias"
    with pytest.raises(KeyError):
        diffusers_to_comfyui("position_net.linears.0.weight")


def test_delta_targets_exist_in_comfyui_with_the_same_shape():
    m = svd_delta_key_map()
    assert len(m) == 4 + 38
    assert sum(k.endswith("mix_factor") and ".resnets." in k for k in m) == 22
    assert sum(k.endswith("mix_factor") and ".attentions." in k for k in m) == 16
    for src, dst in m.items():
        assert dst in COMFY, dst
        assert COMFY[dst] == DIFFUSERS[src], src
    assert m["conv_in.weight"] == "input_blocks.0.0.weight" and m["conv_out.weight"] == "out.2.weight"


def test_fuser_targets_hang_under_real_spatial_transformer_blocks():
    assert len(ATTENTIONS) == 16 and len(RESNETS) == 22
    for s in ATTENTIONS:
        target = diffusers_to_comfyui(f"{s.diffusers}.transformer_blocks.0.fuser.linear.weight")
        assert target == f"{s.comfyui}.transformer_blocks.0.fuser.linear.weight"
        parent = f"{s.comfyui}.transformer_blocks.0"
        c = s.channels()
        # the spatial block exists, has channel C, and the fuser is new there
        assert COMFY[f"{parent}.norm1.weight"] == (c,)
        assert COMFY[f"{parent}.attn1.to_q.weight"] == (c, c)
        assert COMFY[f"{parent}.attn2.to_k.weight"] == (c, 1024)  # fuser context dim == cross-attention dim
        assert DIFFUSERS[f"{s.diffusers}.transformer_blocks.0.norm1.weight"] == (c,)
        assert not any(k.startswith(f"{parent}.fuser.") for k in COMFY)
    assert [s.channels() for s in ATTENTIONS] == [320, 320, 640, 640, 1280, 1280, 1280] + [1280] * 3 + [640] * 3 + \
        [320] * 3


def test_attention_order_is_comfyui_transformer_index_order():
    def forward_rank(path: str) -> tuple[int, int]:
        kind, n = re.match(r"(input_blocks|middle_block|output_blocks)\.(\d+)", path).groups()
        return ({"input_blocks": 0, "middle_block": 1, "output_blocks": 2}[kind], int(n))

    comfy_attn = sorted({m.group(0) for k in COMFY if (m := re.match(r"^\w+\.(\d+\.)?\d+(?=\.time_stack\.0\.)", k))},
                        key=forward_rank)
    assert [s.comfyui for s in ATTENTIONS] == comfy_attn
    assert [s.index for s in ATTENTIONS] == list(range(16))


def test_parameter_count_matches_the_released_file_size():
    """Reference 3.3: base + 16 fusers + position_net ~ 1.7367 B params = 6.947 GB fp32 (HF lists 6.95 GB)."""
    base = sum(math.prod(s) for s in DIFFUSERS.values())
    fusers = sum(math.prod(v) for s in ATTENTIONS for v in fuser_shapes(s.channels(), 1024).values())
    pos = sum(math.prod(v) for v in svd_position_net_shapes().values())
    assert abs(base / 1e9 - 1.5246) < 0.001
    assert abs(fusers / 1e6 - 211.2) < 0.1 and abs(pos / 1e6 - 0.85) < 0.01
    assert abs((base + fusers + pos) * 4 / 1e9 - 6.947) < 0.002


def test_modelscope_added_keys_follow_the_reference_table():
    s = modelscope_adapter_shapes()
    assert s["position_net.linears.0.weight"] == (512, 832)
    assert s["position_net.instance_embedding.weight"] == (20, 768)
    assert s["position_net.tracklet_attn.to_out.0.weight"] == (64, 128)
    assert s["up_blocks.1.attentions.2.transformer_blocks.0.injector.linears.0.weight"] == (1280, 1408)
    assert s["up_blocks.3.null_track_feat.weight"] == (1, 320)
    assert s["transformer_in.time_embedder.weight"] == (16, 320)
    assert s["mid_block.temp_attentions.0.time_embedder.weight"] == (16, 1280)
    assert s["down_blocks.1.attentions.0.transformer_blocks.0.fuser.linear.weight"] == (640, 768)
    assert sum(".fuser." in k for k in s) == 16 * 17
    assert sum(".injector." in k for k in s) == 9 * 28
    assert sum("time_embedder" in k for k in s) == 17
