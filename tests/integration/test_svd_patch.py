"""TrackDiffusion-SVD on ComfyUI's real SVD UNet (tiny width, real 16-transformer layout), sampled with ComfyUI's
own sampler: zero gates are exact, unpatching restores, clones are independent, cond/uncond get the right tokens."""

from __future__ import annotations

import pytest
import torch

from support import tiny_svd as tiny_svd_sizes
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load
from trackdiffusion.models.svd.adapter import TrackDiffusionSVDAdapter

FRAMES = 4
CONTEXT_DIM = tiny_svd_sizes.CONTEXT  # the tiny SVD's cross-attention width
HEAD_DIM = tiny_svd_sizes.HEAD_DIM


def tracklets(num_frames=FRAMES, objects=2):
    objs = [{"id": i + 1, "label": "car", "keyframes": [
        {"frame": 0, "box": [4 + 8 * i, 8, 20 + 8 * i, 30]},
        {"frame": num_frames - 1, "box": [30 + 4 * i, 20, 50 + 4 * i, 40]}]} for i in range(objects)]
    return load({"version": 1, "width": 64, "height": 64, "num_frames": num_frames, "objects": objs})


def adapter_delta(model, gate: float, seed: int = 1, base_patch: bool = False) -> dict:
    """A random adapter for the tiny SVD in the converted-delta naming (what `weights convert` writes)."""
    from trackdiffusion.nodes.patches.svd import _spatial_video_transformers

    blocks = [(name, svt.in_channels) for name, svt in
              _spatial_video_transformers(model.get_model_object("diffusion_model"))]
    torch.manual_seed(seed)
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=CONTEXT_DIM, head_dim=HEAD_DIM)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.1)
        for fuser in adapter.fusers.values():
            fuser.alpha_attn.fill_(gate)
            fuser.alpha_dense.fill_(gate)
    delta = adapter.delta_state_dict()
    if base_patch:
        weight = model.model.state_dict()["diffusion_model.out.2.bias"]
        delta["diffusion_model.out.2.bias"] = weight + 0.5
    return delta


def bundle_for(model, **kwargs):
    from trackdiffusion.nodes.patches.svd import load_svd_adapter

    return load_svd_adapter(adapter_delta(model, **kwargs), {"head_dim": str(HEAD_DIM)})


def sample(model, frames=FRAMES, cfg=2.5, seed=0):
    import comfy.sample

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(frames, 4, 8, 8, generator=g)
    latent = torch.zeros_like(noise)
    concat = torch.randn(1, 4, 8, 8, generator=g)
    image_embed = torch.randn(1, 1, CONTEXT_DIM, generator=g)
    extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    positive = [[image_embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(image_embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    return comfy.sample.sample(model, noise, 2, cfg, "euler", "karras", positive, negative, latent,
                               disable_pbar=True, seed=seed)


def test_zero_gates_are_bit_identical_and_nonzero_gates_change(tiny_svd):
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    reference = sample(tiny_svd)
    zero = apply_trackdiffusion_svd(tiny_svd, bundle_for(tiny_svd, gate=0.0), tracklets())
    assert torch.equal(sample(zero), reference)
    active = apply_trackdiffusion_svd(tiny_svd, bundle_for(tiny_svd, gate=0.5), tracklets())
    out = sample(active)
    assert not torch.equal(out, reference) and torch.isfinite(out).all()
    # the base model is untouched once the patched clone has run
    assert torch.equal(sample(tiny_svd), reference)


def test_strength_0_and_steps_outside_the_window_are_the_official_no_box_state(tiny_svd):
    """strength 0, and every step outside [start, end], run the TrackDiffusion model with every slot null (what the
    official model computes without boxes): exactly the output of the same patch given tracklets without objects.
    Strength between 0 and 1 lies between the no-box and the boxed result."""
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    bundle = bundle_for(tiny_svd, gate=0.5)
    empty = load({"version": 1, "width": 64, "height": 64, "num_frames": FRAMES, "objects": []})
    no_boxes = sample(apply_trackdiffusion_svd(tiny_svd, bundle, empty))
    assert not torch.equal(no_boxes, sample(tiny_svd))  # the fusers still run (null tokens, trained gates)
    assert torch.equal(sample(apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(), strength=0.0)), no_boxes)
    outside = apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(), start_percent=1.0, end_percent=1.0)
    assert torch.equal(sample(outside), no_boxes)
    boxed = sample(apply_trackdiffusion_svd(tiny_svd, bundle, tracklets()))
    half = sample(apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(), strength=0.5))
    assert 0 < (half - no_boxes).abs().mean() < (boxed - no_boxes).abs().mean()
    # the window counts: boxes in the first half of the schedule only differ from both extremes
    first_half = sample(apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(), start_percent=0.0, end_percent=0.5))
    assert not torch.equal(first_half, boxed) and not torch.equal(first_half, no_boxes)


def test_clones_are_independent_and_base_weight_patches_unpatch(tiny_svd):
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    reference = sample(tiny_svd)
    bias_before = tiny_svd.model.state_dict()["diffusion_model.out.2.bias"].clone()
    a = apply_trackdiffusion_svd(tiny_svd, bundle_for(tiny_svd, gate=0.5, base_patch=True), tracklets())
    b = apply_trackdiffusion_svd(tiny_svd, bundle_for(tiny_svd, gate=0.5, seed=2), tracklets())
    out_a = sample(a)
    out_b = sample(b)
    assert not torch.equal(out_a, out_b)
    assert torch.equal(sample(a), out_a)  # a is unaffected by b having run
    assert torch.equal(sample(tiny_svd), reference)
    assert torch.equal(tiny_svd.model.state_dict()["diffusion_model.out.2.bias"], bias_before)


def test_fusers_run_in_spatial_blocks_only_with_cond_and_null_uncond_tokens(tiny_svd):
    from trackdiffusion.models.svd.adapter import slots_to_svd_boxes
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    bundle = bundle_for(tiny_svd, gate=0.5)
    seen = []
    for fuser in bundle.adapter.fusers.values():
        original = fuser.forward

        def recording(x, objs, strength=1.0, _original=original):
            seen.append((tuple(x.shape), objs.detach().clone()))
            return _original(x, objs, strength=strength)

        fuser.forward = recording
    t = tracklets()
    sample(apply_trackdiffusion_svd(tiny_svd, bundle, t), cfg=2.5)
    # 2 steps x 1 batched (cond + uncond) call x 16 spatial transformers; never a temporal call, although at the
    # 2x2 level frames == h*w, where a shape test could not tell them apart.
    assert len(seen) == 2 * 16
    assert all(shape[0] == 2 * FRAMES for shape, _ in seen)
    boxes, masks = slots_to_svd_boxes(t.to_slots(FRAMES, 64, 64, 20))
    with torch.no_grad():
        cond = bundle.adapter.box_tokens(boxes[None], masks[None])
        null = bundle.adapter.box_tokens(boxes[None], torch.zeros_like(masks[None]))
    objs = seen[0][1]
    chunks = [objs[:FRAMES], objs[FRAMES:]]
    assert sum(torch.allclose(c, cond, atol=1e-6) for c in chunks) == 1
    assert sum(torch.allclose(c, null, atol=1e-6) for c in chunks) == 1


def test_frame_count_mismatch_and_too_many_objects_are_clear_errors(tiny_svd):
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    bundle = bundle_for(tiny_svd, gate=0.5)
    patched = apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(num_frames=6))
    with pytest.raises(InvalidInputError, match="latent has 4 frames but the tracklets have 6"):
        sample(patched)
    with pytest.raises(InvalidInputError, match="21 objects but the model has 20"):
        apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(objects=21))
    # the official behaviour, asked for: the first 20 by id (object 21 dropped, with a warning)
    first20 = sample(apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(objects=21), overflow="first"))
    assert torch.equal(first20, sample(apply_trackdiffusion_svd(tiny_svd, bundle, tracklets(objects=20))))


def test_nodes_load_a_delta_file_and_patch_the_model(comfy, tiny_svd):
    """LoadTrackDiffusionAdapter reads models/trackdiffusion/<file>; InstanceEnhancerPatch patches the MODEL."""
    import folder_paths
    from safetensors.torch import save_file

    from trackdiffusion.models.checkpoints import SVD_DELTA_FORMAT

    folder = folder_paths.get_folder_paths("trackdiffusion")[0]
    path = f"{folder}/tiny_delta.safetensors"
    import os

    os.makedirs(folder, exist_ok=True)
    delta = {k: v.contiguous() for k, v in adapter_delta(tiny_svd, gate=0.5).items()}
    # A complete delta also carries conv_in, conv_out and every mix factor; here they equal the base's.
    base = tiny_svd.model.state_dict()
    for key, value in base.items():
        if key.endswith("time_mixer.mix_factor") or key.startswith(("diffusion_model.input_blocks.0.0.",
                                                                     "diffusion_model.out.2.")):
            delta[key] = value.clone().contiguous()
    save_file(delta, path, metadata={"format": SVD_DELTA_FORMAT, "version": "1", "base": "svd_img2vid",
                                     "stage": "2", "head_dim": str(HEAD_DIM)})
    loader = comfy.node_class("LoadTrackDiffusionAdapter")
    assert "tiny_delta.safetensors" in loader.GET_NODE_INFO_V1()["input"]["required"]["adapter_name"][1]["options"]
    bundle = loader.execute(adapter_name="tiny_delta.safetensors").result[0]
    patch = comfy.node_class("InstanceEnhancerPatch")
    patched = patch.execute(model=tiny_svd, adapter=bundle, tracklets=tracklets(), strength=1.0, start_percent=0.0,
                            end_percent=1.0).result[0]
    direct = apply_direct(tiny_svd, gate=0.5)
    assert torch.equal(sample(patched), sample(direct))
    off = patch.execute(model=tiny_svd, adapter=bundle, tracklets=tracklets(), strength=1.0, start_percent=1.0,
                        end_percent=1.0).result[0]
    assert not torch.equal(sample(off), sample(patched))


def apply_direct(model, gate):
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    return apply_trackdiffusion_svd(model, bundle_for(model, gate=gate), tracklets())


def test_another_packs_object_patch_on_the_same_block_is_chained(tiny_svd):
    import types

    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd

    calls = []
    other = tiny_svd.clone()
    block = other.get_model_object("diffusion_model").input_blocks[1][1].time_stack[0]

    def other_forward(self, x, context=None, transformer_options={}):  # noqa: B006
        calls.append(x.shape)
        return type(self).forward(self, x, context=context, transformer_options=transformer_options) * 1.0

    key = "diffusion_model.input_blocks.1.1.time_stack.0.forward"
    other.add_object_patch(key, types.MethodType(other_forward, block))
    reference = sample(other)
    n_alone = len(calls)
    assert n_alone > 0
    ours = apply_trackdiffusion_svd(other, bundle_for(tiny_svd, gate=0.0), tracklets())
    assert torch.equal(sample(ours), reference)
    assert len(calls) == 2 * n_alone  # the other pack's forward still ran under ours
