"""SG-I2V on ComfyUI's real SVD UNet (tiny width, real 16-transformer layout), sampled with ComfyUI's own sampler:
guidance off is bit-identical, the alignment loss falls, the forward stops early, only spatial attn1 is patched,
invalid boxes raise our error, inference-mode weights work, and it composes with the TrackDiffusion patch."""

from __future__ import annotations

import pytest
import torch

from support import tiny_svd as tiny_svd_sizes
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.data.tracklets import load

FRAMES = 4
CONTEXT_DIM = tiny_svd_sizes.CONTEXT
LATENT = 16  # 16x16 latent (128x128 canvas): output_blocks.7/8 run at 8x8
STEPS = 8
GUIDED = {"start_step": 4, "end_step": 5}  # SG-I2V's lr 0.21, 5 iterations


@pytest.fixture(scope="module")
def sharp_svd(tiny_svd):
    """tiny_svd with identity norms and 4x spatial attn1 queries/keys. tiny_svd's random 0.05-scale norm gains wash
    out all spatial variation (its up-path features are constant over the picture, so every box already matches its
    template); this one has features that vary, like a trained SVD's, so the alignment loss means something."""
    import comfy.model_patcher

    base = tiny_svd.model
    model = type(base)(base.model_config, device=torch.device("cpu"))
    norms = {n for n, mod in base.named_modules() if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm))}
    state = {}
    for key, value in base.state_dict().items():
        if key.rsplit(".", 1)[0] in norms:
            state[key] = torch.ones_like(value) if key.endswith("weight") else torch.zeros_like(value)
        elif ".transformer_blocks." in key and (".attn1.to_q." in key or ".attn1.to_k." in key):
            state[key] = value * 4
        else:
            state[key] = value.clone()
    model.load_state_dict(state)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model.eval(), load_device=cpu, offload_device=cpu)


def assert_loss_falls(report, steps=(4, 5), factor=1.0):
    assert [r["step"] for r in report] == list(steps)
    for r in report:
        assert len(r["losses"]) == 5
        assert r["losses"][-1] < factor * r["losses"][0], r["losses"]


def tracklets(objects=None, size=LATENT * 8, frames=FRAMES):
    if objects is None:
        objects = [{"id": 1, "keyframes": [{"frame": 0, "box": [16, 16, 64, 64]},
                                           {"frame": frames - 1, "box": [56, 40, 104, 88]}]}]
    return load({"version": 1, "width": size, "height": size, "num_frames": frames, "objects": objects})


def sample(model, steps=STEPS, cfg=2.5, seed=0, frames=FRAMES, sampler="euler"):
    import comfy.sample

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(frames, 4, LATENT, LATENT, generator=g)
    concat = torch.randn(1, 4, LATENT, LATENT, generator=g)
    embed = torch.randn(1, 1, CONTEXT_DIM, generator=g)
    extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    positive = [[embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    return comfy.sample.sample(model, noise, steps, cfg, sampler, "karras", positive, negative,
                               torch.zeros_like(noise), disable_pbar=True, seed=seed)



def test_guidance_off_is_bit_identical(tiny_svd):
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    reference = sample(tiny_svd)
    assert torch.equal(sample(apply_sgi2v(tiny_svd, tracklets(), iterations=0)), reference)
    # a band past the last step: patches and wrappers run, nothing is optimised
    assert torch.equal(sample(apply_sgi2v(tiny_svd, tracklets(), start_step=10, end_step=12)), reference)


def test_guided_loss_falls_output_changes_and_base_is_untouched(sharp_svd):
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    reference = sample(sharp_svd)
    report = []
    out = sample(apply_sgi2v(sharp_svd, tracklets(), report=report, **GUIDED))
    assert_loss_falls(report, factor=0.9)
    assert torch.isfinite(out).all() and not torch.equal(out, reference)
    assert torch.equal(sample(sharp_svd), reference)  # the base model is untouched


def test_activation_checkpointing_gives_the_same_result(sharp_svd):
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    reports = {}
    outs = {}
    for mode in ("off", "all"):
        reports[mode] = []
        outs[mode] = sample(apply_sgi2v(sharp_svd, tracklets(), checkpointing=mode, report=reports[mode], **GUIDED))
    torch.testing.assert_close(outs["all"], outs["off"], rtol=1e-5, atol=1e-5)
    for a, b in zip(reports["off"], reports["all"]):
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-5)


def test_only_spatial_attn1_of_the_chosen_layers_is_patched(tiny_svd):
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    m = apply_sgi2v(tiny_svd, tracklets(), checkpointing="off")
    assert sorted(m.object_patches) == [
        "diffusion_model.output_blocks.7.1.transformer_blocks.0.attn1.forward",
        "diffusion_model.output_blocks.8.1.transformer_blocks.0.attn1.forward"]
    with pytest.raises(InvalidInputError, match="no spatial transformer"):
        apply_sgi2v(tiny_svd, tracklets(), layers="output_blocks.7.1, output_blocks.99.1")
    # checkpointing adds pass-through patches on the SpatialVideoTransformer forwards, never on time_stack
    keys = apply_sgi2v(tiny_svd, tracklets()).object_patches
    assert len(keys) == 2 + 16 and not any("time_stack" in k for k in keys)


def test_forward_stops_after_the_last_recorded_layer(tiny_svd):
    """The guided steps add forwards that never reach the layers after output_blocks.8.1's attn1."""
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    dm = tiny_svd.get_model_object("diffusion_model")
    calls = {"out": 0, "attn2_8": 0, "attn1_7": 0}

    def counter(key):
        def hook(*_):
            calls[key] += 1
        return hook

    handles = [dm.out.register_forward_hook(counter("out")),
               dm.output_blocks[8][1].transformer_blocks[0].attn2.register_forward_hook(counter("attn2_8")),
               dm.output_blocks[7][1].transformer_blocks[0].attn1.register_forward_pre_hook(counter("attn1_7"))]
    try:
        sample(apply_sgi2v(tiny_svd, tracklets(), **GUIDED))
    finally:
        for h in handles:
            h.remove()
    optimisation_forwards = 2 * 5
    assert calls["out"] == STEPS and calls["attn2_8"] == STEPS  # one batched cond+uncond call per step, no more
    assert calls["attn1_7"] == STEPS + optimisation_forwards


def _frame0_reference(attn1, x, frames):
    """softmax(q_f k_0^T / sqrt(d)) v_0 per head, by hand: SG-I2V's pre-projection feature, [F, hw, C]."""
    heads = attn1.heads
    q, k, v = attn1.to_q(x), attn1.to_k(x[0:1]), attn1.to_v(x[0:1])

    def split(t):  # [n, hw, C] -> [n, heads, hw, d]
        return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)

    qh, kh, vh = split(q), split(k), split(v)
    weights = torch.softmax(qh @ kh.transpose(-1, -2) / qh.shape[-1] ** 0.5, dim=-1)
    return (weights @ vh).transpose(1, 2).reshape(frames, x.shape[1], -1)


def _capture_call(attn1, x, capture):
    from trackdiffusion.nodes.patches.sgi2v import CAPTURE_KEY, _attn1_forward

    return _attn1_forward("output_blocks.7.1", None)(attn1, x, transformer_options={
        CAPTURE_KEY: capture, "activations_shape": [FRAMES, x.shape[-1], 8, 8]})


def test_recording_is_a_side_branch_before_the_output_projection(tiny_svd):
    """As SG-I2V's official code: attn1's own output is unchanged while recording (bit for bit), and the recorded
    feature is frame 0's key/value attention *before* to_out, checked against a hand computation."""
    from trackdiffusion.nodes.patches.sgi2v import _attn1_forward, _Capture

    attn1 = tiny_svd.get_model_object("diffusion_model").output_blocks[7][1].transformer_blocks[0].attn1
    torch.manual_seed(0)
    x = torch.randn(FRAMES, 64, attn1.to_q.in_features)
    plain = attn1(x)
    capture = _Capture(("output_blocks.7.1",), "output_blocks.8.1", FRAMES)
    assert torch.equal(_capture_call(attn1, x, capture), plain)
    feature = capture.features["output_blocks.7.1"]  # [F, C, h, w]
    assert feature.shape == (FRAMES, attn1.to_q.out_features, 8, 8)
    reference = _frame0_reference(attn1, x, FRAMES)
    torch.testing.assert_close(feature.permute(0, 2, 3, 1).reshape(FRAMES, 64, -1), reference, rtol=1e-5, atol=1e-5)
    projected = attn1.to_out(reference)  # what the old code recorded: clearly not the same tensor
    assert not torch.allclose(feature.permute(0, 2, 3, 1).reshape(FRAMES, 64, -1), projected, atol=1e-3)
    # without a capture (normal denoising) the patched forward is the original
    assert torch.equal(_attn1_forward("output_blocks.7.1", None)(attn1, x, transformer_options={}), plain)


def test_no_gradient_reaches_frame_0_through_keys_and_values(tiny_svd):
    from trackdiffusion.nodes.patches.sgi2v import _Capture

    attn1 = tiny_svd.get_model_object("diffusion_model").output_blocks[7][1].transformer_blocks[0].attn1
    x = torch.randn(FRAMES, 64, attn1.to_q.in_features, generator=torch.Generator().manual_seed(1), requires_grad=True)
    capture = _Capture(("output_blocks.7.1",), "output_blocks.8.1", FRAMES)
    with torch.enable_grad():
        _capture_call(attn1, x, capture)
        capture.features["output_blocks.7.1"][1:].pow(2).sum().backward()  # the loss never reads frame 0's feature
    assert torch.count_nonzero(x.grad[0]) == 0  # frame 0 enters only through its detached keys and values
    assert all(torch.count_nonzero(x.grad[f]) > 0 for f in range(1, FRAMES))


def test_recording_on_leaves_the_unet_output_bit_identical(tiny_svd):
    """Every UNet call of a whole sampling run records features in both layers (the forward not stopped): the
    sampled latent equals the unpatched model's bit for bit."""
    from trackdiffusion.nodes.patches.sgi2v import CAPTURE_KEY, _Capture, apply_sgi2v

    reference = sample(tiny_svd)
    layers = ("output_blocks.7.1", "output_blocks.8.1")
    recorded = []

    def wrapper(apply_model, args):
        c = dict(args["c"])
        capture = _Capture(layers, layers[-1], FRAMES, stop=False)
        c["transformer_options"] = {**c["transformer_options"], CAPTURE_KEY: capture}
        out = apply_model(args["input"], args["timestep"], **c)
        recorded.append(sorted(capture.features))
        return out

    m = apply_sgi2v(tiny_svd, tracklets(), iterations=0, checkpointing="off")
    m.set_model_unet_function_wrapper(wrapper)
    assert torch.equal(sample(m), reference)
    assert recorded and all(r == list(layers) for r in recorded)


def test_late_objects_and_changing_sizes(sharp_svd):
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    objects = [
        {"id": 1, "keyframes": [{"frame": 0, "box": [8, 8, 40, 40]}, {"frame": 3, "box": [40, 24, 120, 104]}]},
        {"id": 2, "keyframes": [{"frame": 0, "box": [80, 80, 100, 100], "visible": False},
                                {"frame": 1, "box": [80, 80, 100, 100]}, {"frame": 3, "box": [60, 20, 120, 60]}]},
    ]
    report = []
    out = sample(apply_sgi2v(sharp_svd, tracklets(objects), report=report, **GUIDED))
    assert torch.isfinite(out).all()
    assert_loss_falls(report)


@pytest.mark.parametrize("objects, match", [
    ([{"id": 1, "keyframes": [{"frame": 0, "box": [2000, 2000, 2100, 2100]}]}], "wholly outside"),
    ([{"id": 1, "keyframes": [{"frame": 0, "box": [8, 8, 40, 40], "visible": False}]}], "never visible"),
])
def test_invalid_boxes_raise_our_error(tiny_svd, objects, match):
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    with pytest.raises(InvalidInputError, match=match):
        sample(apply_sgi2v(tiny_svd, tracklets(objects), **GUIDED))
    with pytest.raises(InvalidInputError, match="no objects"):
        apply_sgi2v(tiny_svd, tracklets([]))
    with pytest.raises(InvalidInputError):
        apply_sgi2v(tiny_svd, tracklets(), start_percent=0.5, end_percent=0.2)


def test_inference_mode_weights(sharp_svd):
    """On a GPU ComfyUI loads the weights inside torch.inference_mode: autograd must still work."""
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v

    originals = [(module, name, p) for module in sharp_svd.model.modules()
                 for name, p in module._parameters.items() if p is not None]
    try:
        with torch.inference_mode():
            for module, name, p in originals:
                module._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=False)
            assert next(sharp_svd.model.parameters()).is_inference()
            reference = sample(sharp_svd)
            report = []
            out = sample(apply_sgi2v(sharp_svd, tracklets(), report=report, **GUIDED))
    finally:
        for module, name, p in originals:
            module._parameters[name] = p
    assert torch.isfinite(out).all() and not torch.equal(out, reference)
    assert_loss_falls(report)


def test_composes_with_trackdiffusion(sharp_svd):
    from trackdiffusion.models.svd.adapter import TrackDiffusionSVDAdapter
    from trackdiffusion.nodes.patches.sgi2v import apply_sgi2v
    from trackdiffusion.nodes.patches.svd import (
        _spatial_video_transformers,
        apply_trackdiffusion_svd,
        load_svd_adapter,
    )

    blocks = [(name, svt.in_channels) for name, svt in
              _spatial_video_transformers(sharp_svd.get_model_object("diffusion_model"))]
    torch.manual_seed(1)
    adapter = TrackDiffusionSVDAdapter(blocks, context_dim=CONTEXT_DIM, head_dim=16)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.1)
        for fuser in adapter.fusers.values():
            fuser.alpha_attn.fill_(0.5)
            fuser.alpha_dense.fill_(0.5)
    t = tracklets()
    patched = apply_trackdiffusion_svd(sharp_svd, load_svd_adapter(adapter.delta_state_dict(), {"head_dim": "16"}), t)
    td_only = sample(patched)
    assert torch.equal(sample(apply_sgi2v(patched, t, iterations=0)), td_only)
    report = []
    out = sample(apply_sgi2v(patched, t, report=report, **GUIDED))
    assert torch.isfinite(out).all() and not torch.equal(out, td_only)
    assert_loss_falls(report)
