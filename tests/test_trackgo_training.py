"""TrackGo training objective (training.trackgo_losses) on a tiny diffusers SVD UNet."""

from __future__ import annotations

import math

import pytest
import torch

from support.tiny_models import TINY_CROSS, tiny_svd_unet
from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.models.trackgo.adapter import attention_diagonal_loss
from trackdiffusion.models.trackgo.diffusers import attach_trackgo
from trackdiffusion.training import DEFAULT_LAMBDA_ATTN, attention_loss, layer_mask, sample_sigmas, trackgo_losses

CROSS = TINY_CROSS  # the tiny UNet's cross-attention width
FRAMES = 8  # > 1/alpha: a uniform A' (1/8) stays below alpha = 0.2, as with SVD's 14 or 25 frames
LATENT = 8
PIXELS = 8 * LATENT


def variance_preserving_encoder_init(att, seed: int = 3) -> None:
    """He-normal convs and unit-gain heads, zero biases.

    With PyTorch's default init the trunk shrinks the mostly black trajectory video to ~1e-2 (f varies across frames
    by ~3e-5), so A' is exactly uniform and the adapter's gradients are ~1e-8: training sits on a plateau for its
    first steps. This init gives f of order 0.3 and A' up to ~0.3 (some entries >= alpha).
    """
    gen = torch.Generator().manual_seed(seed)
    enc = att.adapter.encoder
    with torch.no_grad():
        for module, gain in [(c, 2.0) for c in enc.convs] + [(h, 1.0) for h in enc.heads]:
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * gain / math.sqrt(fan_in))
            module.bias.zero_()


def make_batch(batch: int = 2, seed: int = 1, sigma=1.0) -> dict:
    """A fixed batch: latents, SVD conditioning, a trajectory video of a square moving right (and, from the second
    video on, a smaller one moving down), their masks M_i per frame [B, 2, F, H, W] (zero-padded in video 0)."""
    gen = torch.Generator().manual_seed(seed)
    video = torch.zeros(batch, FRAMES, 3, PIXELS, PIXELS)
    mask = torch.zeros(batch, 2, FRAMES, PIXELS, PIXELS)
    for b in range(batch):
        y, x = 8 + 8 * b, 8
        for f in range(FRAMES):
            mask[b, 0, f, y:y + 24, x + 6 * f:x + 6 * f + 24] = 1
            video[b, f, :, y:y + 24, x + 6 * f:x + 6 * f + 24] = torch.tensor([1.0, 0.5, 0.0])[:, None, None]
            if b > 0:
                mask[b, 1, f, 4 + 3 * f:16 + 3 * f, 48:60] = 1
                video[b, f, :, 4 + 3 * f:16 + 3 * f, 48:60] = torch.tensor([0.0, 0.5, 1.0])[:, None, None]
    out = {
        "latents": torch.randn(batch, FRAMES, 4, LATENT, LATENT, generator=gen),
        "image_latents": torch.randn(batch, 4, LATENT, LATENT, generator=gen),
        "image_embeddings": torch.randn(batch, 1, CROSS, generator=gen),
        "added_time_ids": torch.tensor([[7.0, 127.0, 0.02]]).expand(batch, 3),
        "video": video, "moving_mask": mask,
        "noise": torch.randn(batch, FRAMES, 4, LATENT, LATENT, generator=gen),
    }
    if sigma is not None:
        out["sigma"] = sigma
    return out


def test_noise_loss_is_the_svd_edm_objective():
    unet = tiny_svd_unet(FRAMES)
    att = attach_trackgo(unet)
    batch = make_batch(sigma=torch.tensor([0.5, 3.0]))
    with torch.no_grad():
        losses = trackgo_losses(unet, att, batch, strength=0.0)  # strength 0: the plain UNet
        x, n = batch["latents"], batch["noise"]
        s = torch.tensor([0.5, 3.0]).view(2, 1, 1, 1, 1)
        noisy = x + s * n
        inp = torch.cat([noisy / (s**2 + 1).sqrt(), batch["image_latents"][:, None].expand(-1, FRAMES, -1, -1, -1)], 2)
        out = unet(inp, 0.25 * torch.log(s.flatten()), batch["image_embeddings"], batch["added_time_ids"]).sample
        denoised = out * (-s / (s**2 + 1).sqrt()) + noisy / (s**2 + 1)
        expected = ((1 + s**2) / s**2 * (denoised - x) ** 2).mean()
    assert torch.allclose(losses["noise"], expected, rtol=1e-5)
    assert losses["attention"].item() == 0.0 and torch.equal(losses["total"], losses["noise"])


def test_sigma_sampling_is_lognormal_0p7_1p6():
    s = sample_sigmas(200_000, torch.Generator().manual_seed(0))
    logs = s.log()
    assert abs(logs.mean().item() - 0.7) < 0.02 and abs(logs.std().item() - 1.6) < 0.02
    with pytest.raises(InvalidInputError, match="sigma"):
        trackgo_losses(tiny_svd_unet(FRAMES), attach_trackgo(tiny_svd_unet(FRAMES)), make_batch(sigma=-1.0))


def test_layer_mask_follows_the_token_layout():
    mask = torch.zeros(2, 16, 16)
    mask[0, :8, :8] = 1  # top-left quarter of video 0
    mask[1, 8:, 12:] = 1  # half of the bottom-right cell of video 1
    w = layer_mask(mask, 2, 2, batch=2, frames=3)
    assert w.tolist() == [1, 0, 0, 0, 0, 0, 0, 0.5]  # rows (b, h, w)
    shared = layer_mask(mask[:1], 2, 2, batch=3, frames=3)
    assert shared.tolist() == [1, 0, 0, 0] * 3
    per_frame = layer_mask(mask[:, None].expand(-1, 3, -1, -1), 2, 2, batch=2, frames=3)
    assert torch.equal(per_frame, w[:, None].expand(-1, 3))
    # per object and frame: [B, O, F, H, W] -> [B*h*w, O, F]
    objects = torch.zeros(2, 2, 3, 16, 16)
    objects[:, 0] = mask[:, None]  # object 0 still
    objects[1, 1, 2, :8, 8:] = 1  # object 1 of video 1, top-right cell, frame 2 only
    per_object = layer_mask(objects, 2, 2, batch=2, frames=3)
    assert per_object.shape == (8, 2, 3) and torch.equal(per_object[:, 0], per_frame)
    assert per_object[:, 1].nonzero().tolist() == [[5, 2]]  # row (b=1, h=0, w=1), frame 2
    with pytest.raises(InvalidInputError, match="videos"):
        layer_mask(mask, 2, 2, batch=3, frames=3)
    with pytest.raises(InvalidInputError, match="frames"):
        layer_mask(objects, 2, 2, batch=2, frames=4)


def eq8_by_hand(attention: torch.Tensor, masks: torch.Tensor, height: int, width: int) -> float:
    """TrackGo Eq. 8 on one layer, written out: the sum over the objects i, the frames t, the heads and the grid of
    (M_i * diag(A))^2, M_i area-averaged to the grid, divided by heads * (batch * h * w) * frames."""
    a = attention.detach().double().numpy()
    m = masks.double().numpy()
    batch, objects, frames, big_h, big_w = m.shape
    heads = a.shape[1]
    total = 0.0
    for b in range(batch):
        for i in range(objects):
            for t in range(frames):
                cell = m[b, i, t].reshape(height, big_h // height, width, big_w // width).mean(axis=(1, 3))
                for head in range(heads):
                    diag = a[b * height * width:(b + 1) * height * width, head, t, t].reshape(height, width)
                    total += float(((cell * diag) ** 2).sum())
    return total / (heads * batch * height * width * frames)


def test_attention_diagonal_loss_is_eq8_per_query_position():
    # 2 tokens, 2 heads, 2 frames; only the diagonal matters
    diagonal = torch.tensor([[[0.5, 1.0], [0.1, 0.2]], [[0.3, 0.4], [0.6, 0.8]]])  # [N, heads, T]
    attention = torch.diag_embed(diagonal) + 0.3 * (1 - torch.eye(2))  # off-diagonal entries play no part
    masks = torch.tensor([[[1.0, 0.0], [0.0, 0.5]],  # token 0: object 0 on frame 0, object 1 (half) on frame 1
                          [[0.0, 0.0], [1.0, 1.0]]])  # token 1: object 1 on both frames        -> [N, O, T]
    # object 0: 0.5^2 + 0.1^2 = 0.26; object 1: 0.5^2 * (1.0^2 + 0.2^2) + (0.3^2 + 0.6^2) + (0.4^2 + 0.8^2)
    # = 0.26 + 0.45 + 0.8; sum 1.77 over heads * N * T = 8 query positions and heads
    assert attention_diagonal_loss(attention, masks).item() == pytest.approx(1.77 / 8, rel=1e-6)
    # the normalisation makes it a per-query-position quantity: the same clip repeated (more tokens) keeps it
    assert attention_diagonal_loss(attention.repeat(3, 1, 1, 1), masks.repeat(3, 1, 1)).item() == pytest.approx(
        1.77 / 8, rel=1e-6)
    # one object: [N, T] and [N] weights are O = 1
    assert torch.allclose(attention_diagonal_loss(attention, masks[:, 1]), attention_diagonal_loss(
        attention, masks[:, 1:]))
    assert torch.allclose(attention_diagonal_loss(attention, torch.tensor([1.0, 0.0])),
                          attention_diagonal_loss(attention, torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])))
    assert attention_diagonal_loss(attention, torch.zeros(2, 3, 2)).item() == 0.0
    with pytest.raises(InvalidInputError, match="fit"):
        attention_diagonal_loss(attention, torch.zeros(3, 2))


def test_attention_loss_sums_the_layers_with_the_mask_at_each_grid():
    unet = tiny_svd_unet(FRAMES)
    att = attach_trackgo(unet)
    batch = make_batch()
    losses = trackgo_losses(unet, att, batch, lambda_attn=0.5)
    records = att.recorded_attention
    assert list(records) == att.layer_names
    grids = {name: (r.height, r.width, r.batch, r.frames) for name, r in records.items()}
    assert grids["middle_block.1"] == (4, 4, 2, FRAMES) and grids["input_blocks.1.1"] == (8, 8, 2, FRAMES)
    expected = sum(attention_diagonal_loss(r.attention, layer_mask(batch["moving_mask"], r.height, r.width, 2,
                                                                   FRAMES)) for r in records.values())
    assert torch.allclose(losses["attention"], expected)
    # Eq. 8 by hand on the recorded attention of every layer, summed over the layers
    by_hand = sum(eq8_by_hand(r.attention, batch["moving_mask"], r.height, r.width) for r in records.values())
    assert losses["attention"].item() == pytest.approx(by_hand, rel=1e-5) and by_hand > 0
    assert torch.allclose(attention_loss(att), expected)  # after the block, with the mask given to conditioned()
    assert torch.allclose(losses["total"], losses["noise"] + 0.5 * losses["attention"])
    # one object: [B, H, W] (every frame) and [B, F, H, W] are [B, 1, F, H, W]
    union = batch["moving_mask"][:, 0].amax(1)
    one = union[:, None, None].expand(-1, 1, FRAMES, -1, -1)
    assert torch.allclose(attention_loss(att, union), attention_loss(att, one))
    assert torch.allclose(attention_loss(att, one[:, 0]), attention_loss(att, one))
    # objects add up; zero-padded objects add nothing
    first, second = batch["moving_mask"][:, :1], batch["moving_mask"][:, 1:]
    assert torch.allclose(attention_loss(att, first) + attention_loss(att, second), expected)
    assert torch.allclose(attention_loss(att, torch.cat([batch["moving_mask"], torch.zeros_like(first)], 1)), expected)
    # no moving part: nothing to penalise
    assert attention_loss(att, torch.zeros(2, PIXELS, PIXELS)).item() == 0.0
    att.clear_records()
    with pytest.raises(InvalidInputError, match="recorded"):
        attention_loss(att)


def test_attention_loss_reaches_the_adapter_only_through_earlier_layers():
    """A layer's A depends on its own A' only through the hard threshold A' >= alpha (no gradient); the adapter gets
    attention-loss gradient through the hidden states that earlier layers' trajectory branches changed."""
    unet = tiny_svd_unet(FRAMES)
    att = attach_trackgo(unet)
    variance_preserving_encoder_init(att)
    batch = make_batch()
    losses = trackgo_losses(unet, att, batch)
    first = att.layer_names[0]
    record = att.recorded_attention[first]
    first_loss = attention_diagonal_loss(record.attention, layer_mask(batch["moving_mask"], record.height,
                                                                      record.width, 2, FRAMES))
    adapter_params = list(att.adapter.parameters())
    grads = torch.autograd.grad(first_loss, adapter_params, allow_unused=True, retain_graph=True)
    assert all(g is None for g in grads)
    grads = torch.autograd.grad(losses["attention"], adapter_params, allow_unused=True, retain_graph=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    to_q = unet.down_blocks[0].attentions[0].temporal_transformer_blocks[0].attn1.to_q.weight
    (g_q,) = torch.autograd.grad(first_loss, [to_q], retain_graph=True)
    assert g_q.abs().sum() > 0  # it does train the UNet's own temporal attention, when that is trained
    noise_grads = torch.autograd.grad(losses["noise"], adapter_params, allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in noise_grads)


def test_gradient_checkpointing_keeps_the_losses_and_gradients():
    """diffusers checkpoints the resnets and spatial blocks; the temporal blocks (and the recorded A) keep their graph."""
    unet = tiny_svd_unet(FRAMES)
    att = attach_trackgo(unet)
    variance_preserving_encoder_init(att)
    batch = make_batch()
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            unet.enable_gradient_checkpointing()
        losses = trackgo_losses(unet, att, batch)
        grads = torch.autograd.grad(losses["total"], list(att.adapter.parameters()))
        results.append((losses, grads))
    (plain, g_plain), (ckpt, g_ckpt) = results
    assert all(torch.allclose(plain[k], ckpt[k], rtol=1e-5) for k in plain)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-8) for a, b in zip(g_plain, g_ckpt, strict=True))


def test_total_loss_decreases_training_only_the_adapter():
    unet = tiny_svd_unet(FRAMES).requires_grad_(False)
    att = attach_trackgo(unet)
    variance_preserving_encoder_init(att)
    batch = make_batch(sigma=1.0)
    optimizer = torch.optim.AdamW(att.adapter.parameters(), lr=1e-3, weight_decay=1e-2)
    frozen = {k: v.clone() for k, v in unet.state_dict().items()}
    history = []
    for _ in range(40):
        losses = trackgo_losses(unet, att, batch, lambda_attn=DEFAULT_LAMBDA_ATTN)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], history[-1]
    print(f"TrackGo loss over {len(history)} AdamW steps (lambda {DEFAULT_LAMBDA_ATTN}): total {first['total']:.4f} "
          f"-> {last['total']:.4f} (noise {first['noise']:.4f} -> {last['noise']:.4f}, attention "
          f"{first['attention']:.4f} -> {last['attention']:.4f})")
    assert all(math.isfinite(h["total"]) for h in history)
    assert last["total"] < first["total"] - 0.01 and last["noise"] < first["noise"]
    assert last["total"] < min(h["total"] for h in history[:10])
    assert all(torch.equal(v, frozen[k]) for k, v in unet.state_dict().items())  # the UNet did not move
