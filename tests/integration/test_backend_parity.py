"""The ComfyUI patches and the diffusers backends are two implementations of one method: held equal here.

One tiny SVD (the real 16-transformer layout at 1/10 width, :mod:`support.tiny_svd`) exists twice: as a diffusers
``UNetSpatioTemporalConditionModel`` and, with the same weights, as a ComfyUI ``MODEL``. The same adapter weights go
into each:

* TrackDiffusion: an official-layout fine-tuned UNet (``svd_stage2/unet`` shape: fusers, position net, conv_in/out
  and mix factors moved) -> ``weights convert`` -> Load TrackDiffusion Adapter's loader -> TrackDiffusion Patch on
  the ComfyUI side; the same fine-tuned diffusers UNet with its modules in diffusers' own GLIGEN slot
  (``BasicTransformerBlock.fuser``), an independent reference for where the fusers sit, on the other.
* TrackGo: one TrackAdapter file -> TrackAdapter Patch on ComfyUI; the same adapter attached by the diffusers
  backend.

ComfyUI runs its own sampler (one Euler step with CFG, so the UNet sees the cond and the uncond chunks in one batch);
a ``model_function_wrapper`` records exactly what the UNet was given and returned. The diffusers UNets are then run
on those inputs, and the patch's effect (patched minus stock, per chunk) must agree within 1e-4 relative. Everything
runs in float64 except the noise-level and added-time embeddings, which both libraries compute in float32: that
floor alone makes the stock models differ by about 1.5e-5 relative here (in float32 throughout, by about 1e-4). An
object that appears late and the null tokens of the unconditional chunk are part of the input.
"""

from __future__ import annotations

import pytest
import torch

from support import tiny_svd

FRAMES = 4
SIZE = 64  # pixels; the latent is 8x8
SIGMA = 2.0  # the one sampling step's noise level (a mid-schedule sigma: x and the image both matter)
CFG = 2.5
TOLERANCE = 1e-4
DTYPE = torch.float64
FPS, MOTION, AUG = 6, 127, 0.0


def tracklets():
    from trackdiffusion.data.tracklets import load

    return load({"version": 1, "width": SIZE, "height": SIZE, "num_frames": FRAMES, "objects": [
        {"id": 1, "label": "car", "color": "#e6194b", "keyframes": [
            {"frame": 0, "box": [4, 8, 28, 30]}, {"frame": FRAMES - 1, "box": [30, 20, 56, 44]}]},
        {"id": 2, "label": "person", "color": "#3cb44b", "keyframes": [  # appears at frame 2
            {"frame": 0, "box": [40, 4, 60, 24], "visible": False},
            {"frame": 2, "box": [40, 4, 60, 24]}, {"frame": FRAMES - 1, "box": [36, 30, 58, 58]}]}]})


def record_unet_calls(model) -> tuple[object, list[dict]]:
    """A clone of ``model`` whose UNet calls (inputs, sigma, conditioning, chunk order, output) are recorded."""
    calls: list[dict] = []

    def wrapper(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        calls.append({"x": args["input"].detach().clone(), "sigma": args["timestep"].detach().clone(),
                      "c": {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in args["c"].items()},
                      "cond_or_uncond": list(args["cond_or_uncond"]), "out": out.detach().clone()})
        return out

    m = model.clone()
    m.set_model_unet_function_wrapper(wrapper)
    return m, calls


def sample_once(model) -> list[dict]:
    """One Euler step at SIGMA with CFG through ComfyUI's sampler; returns the recorded UNet calls."""
    import comfy.sample

    m, calls = record_unet_calls(model)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(FRAMES, 4, SIZE // 8, SIZE // 8, generator=g, dtype=DTYPE)
    concat = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=g, dtype=DTYPE)
    embed = torch.randn(1, 1, tiny_svd.CONTEXT, generator=g, dtype=DTYPE)
    extra = {"motion_bucket_id": MOTION, "fps": FPS, "augmentation_level": AUG}
    positive = [[embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    comfy.sample.sample(m, noise, 1, CFG, "euler", "karras", positive, negative, torch.zeros_like(noise),
                        disable_pbar=True, seed=0, sigmas=torch.tensor([SIGMA, 0.0], dtype=DTYPE))
    assert calls and all(sorted(c["cond_or_uncond"]) == [0, 1] for c in calls), "cond and uncond in one batch"
    return calls


def diffusers_denoised(unet, call: dict, model_sampling) -> torch.Tensor:
    """What ComfyUI's SVD model returns for ``call``, computed with the diffusers UNet: the same EDM input scaling,
    image concat, noise-level embedding and added time ids, and the same denoised output."""
    x, sigma, c = call["x"], call["sigma"], call["c"]
    chunks = x.shape[0] // FRAMES
    xc = torch.cat([model_sampling.calculate_input(sigma, x), c["c_concat"]], dim=1)
    timestep = model_sampling.timestep(sigma).to(DTYPE)[::FRAMES]
    ids = torch.tensor([[FPS - 1, MOTION, AUG]], dtype=DTYPE).expand(chunks, 3)
    # ComfyUI embeds the same three numbers into y: the two sides must agree on it before anything else
    embedded = unet.add_time_proj(ids.flatten()).reshape(chunks, -1)
    torch.testing.assert_close(embedded.float(), c["y"][::FRAMES].float())  # ComfyUI embeds them in float32
    with torch.no_grad():
        out = unet(xc.reshape(chunks, FRAMES, *xc.shape[1:]), timestep, c["c_crossattn"][::FRAMES],
                   added_time_ids=ids).sample
    return model_sampling.calculate_denoised(sigma, out.reshape(x.shape), x)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def assert_same_effect(effect_comfy: torch.Tensor, effect_diffusers: torch.Tensor, output: torch.Tensor) -> None:
    """Per chunk: the effect is real (not lost in rounding) and both implementations give the same one."""
    for chunk in range(effect_diffusers.shape[0] // FRAMES):
        part = slice(chunk * FRAMES, (chunk + 1) * FRAMES)
        assert float(effect_diffusers[part].norm() / output[part].norm()) > 1e-3, f"chunk {chunk}: no effect"
        assert relative(effect_comfy[part], effect_diffusers[part]) <= TOLERANCE, (
            chunk, relative(effect_comfy[part], effect_diffusers[part]))


@pytest.fixture(scope="module")
def base(comfy):
    """The stock tiny SVD twice: diffusers and ComfyUI, and the recorded stock UNet call."""
    unet = tiny_svd.diffusers_unet(frames=FRAMES, seed=0, scale=2.0).to(DTYPE)
    model = tiny_svd.load_comfy_model(unet, DTYPE)
    assert model.model.get_dtype() == DTYPE
    (call,) = sample_once(model)
    model_sampling = model.get_model_object("model_sampling")
    stock = diffusers_denoised(unet, call, model_sampling)
    # the two implementations of the stock model agree before any patch (same weights, same inputs)
    assert relative(call["out"], stock) <= TOLERANCE, relative(call["out"], stock)
    return {"unet": unet, "model": model, "call": call, "stock": stock, "model_sampling": model_sampling}


@pytest.mark.parametrize("strength", [1.0, 0.5, 0.0])
def test_trackdiffusion_patch_equals_the_diffusers_backend(base, tmp_path, strength):
    from trackdiffusion.models.checkpoints import convert_svd, load_delta
    from trackdiffusion.nodes.patches.svd import apply_trackdiffusion_svd, load_svd_adapter

    official, finetuned, attachment = tiny_svd.write_official_trackdiffusion(tmp_path / "svd_stage2" / "unet",
                                                                             base["unet"], gate=0.5)
    result = convert_svd(official, tmp_path / "delta.safetensors", dtype=DTYPE)
    tensors, metadata = load_delta(result.path)
    assert metadata["head_dim"] == str(tiny_svd.HEAD_DIM) and metadata["stage"] == "2"
    patched = apply_trackdiffusion_svd(base["model"], load_svd_adapter(tensors, metadata), tracklets(),
                                       strength=strength)
    (call,) = sample_once(patched)
    torch.testing.assert_close(call["x"], base["call"]["x"])  # one step from the same noise: same UNet input

    slots = tracklets().to_slots(FRAMES, SIZE, SIZE, 20)
    order = call["cond_or_uncond"]  # 0 = cond (the boxes), 1 = uncond (the official null tokens)
    boxes = slots.boxes[None].expand(len(order), -1, -1, -1)
    masks = torch.stack([slots.masks if kind == 0 else torch.zeros_like(slots.masks) for kind in order])
    with attachment.conditioned(boxes, masks, slots.colors, box_strength=strength):  # the node's strength
        reference = diffusers_denoised(finetuned, call, base["model_sampling"])
    assert_same_effect(call["out"] - base["call"]["out"], reference - base["stock"], reference)
    if strength == 0.0:
        return  # the no-box state: both chunks see null tokens
    # the late object and the null tokens both matter: cond and uncond chunks moved differently
    cond = order.index(0) * FRAMES
    uncond = order.index(1) * FRAMES
    effect = reference - base["stock"]
    assert relative(effect[cond:cond + FRAMES], effect[uncond:uncond + FRAMES]) > 1e-2


def test_trackgo_patch_equals_the_diffusers_backend(base):
    import numpy as np

    from trackdiffusion.data.trajectories import build_point_trajectories
    from trackdiffusion.models.trackgo import attach_trackgo
    from trackdiffusion.models.trackgo.diffusers import adapter_file
    from trackdiffusion.nodes.patches.trackgo import apply_trackgo, load_trackgo_adapter, trajectory_video_tensor

    unet = base["unet"]
    attachment = attach_trackgo(unet)  # W'q / W'k from the UNet's own temporal attention, as TrackGo initialises
    try:
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in attachment.adapter.parameters():
                p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
        tensors, metadata = adapter_file(attachment.adapter, trained_steps=1)
        masks = np.zeros((2, SIZE, SIZE), bool)
        masks[0, 8:28, 8:28] = True
        masks[1, 40:60, 36:60] = True
        trajectories = build_point_trajectories(masks, [[[18, 18], [46, 40]], [[48, 50], [20, 50]]], FRAMES)
        settings = {"tau": -100.0, "alpha": 0.2, "strength": 1.0}
        patched = apply_trackgo(base["model"], load_trackgo_adapter(tensors, metadata), trajectories, **settings)
        (call,) = sample_once(patched)
        torch.testing.assert_close(call["x"], base["call"]["x"])

        video = trajectory_video_tensor(trajectories)  # [F, 3, H, W]; the uncond chunk sees a black video
        per_chunk = torch.stack([video if kind == 0 else torch.zeros_like(video) for kind in call["cond_or_uncond"]])
        with attachment.conditioned(per_chunk, **settings):
            reference = diffusers_denoised(unet, call, base["model_sampling"])
    finally:
        attachment.detach()
    assert_same_effect(call["out"] - base["call"]["out"], reference - base["stock"], reference)
