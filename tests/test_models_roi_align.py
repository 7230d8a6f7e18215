"""roi_align: torchvision semantics, checked by hand-computed values and a scalar loop written from the semantics."""

from __future__ import annotations

import math

import pytest
import torch

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.models import roi_align

H, W = 4, 5


def ramp(h: int = H, w: int = W, channels: int = 1) -> torch.Tensor:
    """f(y, x) = x + 10*y (bilinear interpolation is exact on it inside the map), per channel times (c+1)."""
    ys = torch.arange(h, dtype=torch.float64).view(h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, w)
    base = xs + 10 * ys
    return torch.stack([base * (c + 1) for c in range(channels)]).unsqueeze(0)


def run(features, rows, output_size=1, **kw):
    return roi_align(features, torch.tensor(rows, dtype=features.dtype), output_size, **kw)


def test_constant_map_inside():
    f = torch.full((1, 3, H, W), 2.5)
    out = run(f, [[0, 0.3, 0.7, 3.9, 2.2], [0, 1, 1, 2, 2]], output_size=(2, 3))
    assert out.shape == (2, 3, 2, 3)
    torch.testing.assert_close(out, torch.full_like(out, 2.5))


def test_samples_past_the_border_are_zero_but_counted():
    # roi_w = 6 -> 6 samples at x = 2.5 .. 7.5; only x <= W (=5) count: 2.5, 3.5, 4.5 -> mean 3/6.
    f = torch.ones(1, 1, H, W, dtype=torch.float64)
    assert run(f, [[0, 2, 0, 8, 1]]).item() == pytest.approx(3 / 6)
    # y samples -1.5 (< -1, zero) and -0.5 (clamped to row 0): mean 1/2.
    assert run(f, [[0, 0, -2, 1, 0]], sampling_ratio=2).item() == pytest.approx(0.5)


def test_linear_ramp_is_exact():
    f = ramp()
    # Box x 1..3, y 1..2: samples x = 1.5, 2.5 and y = 1.5 -> mean 2 + 15.
    assert run(f, [[0, 1, 1, 3, 2]]).item() == pytest.approx(17.0)
    out = run(f, [[0, 0, 0, 2, 2]], output_size=2)[0, 0]
    torch.testing.assert_close(out, torch.tensor([[5.5, 6.5], [15.5, 16.5]], dtype=torch.float64))


def test_borders_clamp_to_first_and_last_row():
    f = ramp()
    # y = 3.5 >= H-1: row 3 only; x = 0.5 -> 30.5.
    assert run(f, [[0, 0, 3, 1, 4]]).item() == pytest.approx(30.5)
    # y = -0.5 -> clamped to 0; x = 4.5 >= W-1 -> column 4: 4.
    assert run(f, [[0, 4, -1, 5, 0]]).item() == pytest.approx(4.0)
    # y = -1.5: outside -> 0.
    assert run(f, [[0, 0, -2, 1, -1]]).item() == 0.0
    # x exactly W is still inside (clamped to the last column), x just past W is not.
    assert run(f, [[0, 4.5, 0, 5.5, 1]]).item() == pytest.approx(4 + 5)
    assert run(f, [[0, 4.6, 0, 5.6, 1]]).item() == 0.0


def test_rois_smaller_than_a_pixel():
    f = ramp()
    # Not aligned: the ROI grows to 1x1 from its start -> one sample at (1.5, 1.5).
    assert run(f, [[0, 1, 1, 1.2, 1.2]]).item() == pytest.approx(16.5)
    # Aligned: start 0.5, size 0.2, one sample at 0.6 -> 0.6 + 6.
    assert run(f, [[0, 1, 1, 1.2, 1.2]], aligned=True).item() == pytest.approx(6.6)
    # Aligned, zero size: no samples at all -> 0.
    assert run(f, [[0, 1, 1, 1, 1]], aligned=True).item() == 0.0


def test_spatial_scale_and_sampling_ratio():
    f = ramp()
    # Box in "image" pixels at scale 1/4 -> feature box 1..3 x 1..2 -> 17 (linear, any sampling grid).
    assert run(f, [[0, 4, 4, 12, 8]], spatial_scale=0.25, sampling_ratio=3).item() == pytest.approx(17.0)


def test_batch_index_routing_and_order():
    f = torch.arange(1, 4, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 2, H, W).contiguous()
    rows = [[2, 0, 0, 2, 2], [0, 1, 1, 3, 3], [1, 0, 0, 1, 1], [2, 1, 0, 4, 3], [0, 0, 0, 5, 4]]
    out = run(f, rows)
    assert out.shape == (5, 2, 1, 1)
    torch.testing.assert_close(out[:, 0, 0, 0], torch.tensor([3.0, 1.0, 2.0, 3.0, 1.0]))


def loop_reference(f, rois, oh, ow, scale, ratio, aligned):
    """Direct transcription of the semantics, one sample at a time."""
    _, c, h, w = f.shape
    out = torch.zeros(len(rois), c, oh, ow, dtype=f.dtype)

    def sample(img, y, x):
        if y < -1.0 or y > h or x < -1.0 or x > w:
            return torch.zeros(c, dtype=f.dtype)
        y, x = max(y, 0.0), max(x, 0.0)
        yl, xl = int(y), int(x)
        if yl >= h - 1:
            yh = yl = h - 1
            y = float(yl)
        else:
            yh = yl + 1
        if xl >= w - 1:
            xh = xl = w - 1
            x = float(xl)
        else:
            xh = xl + 1
        ly, lx = y - yl, x - xl
        hy, hx = 1 - ly, 1 - lx
        return (
            hy * hx * f[img, :, yl, xl]
            + hy * lx * f[img, :, yl, xh]
            + ly * hx * f[img, :, yh, xl]
            + ly * lx * f[img, :, yh, xh]
        )

    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / oh, rw / ow
        gh = ratio if ratio > 0 else math.ceil(rh / oh)
        gw = ratio if ratio > 0 else math.ceil(rw / ow)
        count = max(gh * gw, 1)
        for ph in range(oh):
            for pw in range(ow):
                acc = torch.zeros(c, dtype=f.dtype)
                for iy in range(gh):
                    y = sy + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + pw * bw + (ix + 0.5) * bw / gw
                        acc = acc + sample(int(b), y, x)
                out[k, :, ph, pw] = acc / count
    return out


@pytest.mark.parametrize(
    ("oh", "ow", "scale", "ratio", "aligned"),
    [(1, 1, 1.0, -1, False), (2, 3, 0.5, -1, True), (3, 2, 1.0, 2, False), (2, 2, 0.25, 0, True)],
)
def test_matches_scalar_reference_on_random_boxes(oh, ow, scale, ratio, aligned):
    gen = torch.Generator().manual_seed(oh * 10 + ow)
    f = torch.randn(3, 2, 6, 7, generator=gen, dtype=torch.float64)
    xy = torch.rand(12, 4, generator=gen, dtype=torch.float64) * 9 / scale - 1 / scale
    x1, x2 = torch.minimum(xy[:, 0], xy[:, 2]), torch.maximum(xy[:, 0], xy[:, 2])
    y1, y2 = torch.minimum(xy[:, 1], xy[:, 3]), torch.maximum(xy[:, 1], xy[:, 3])
    b = torch.randint(0, 3, (12,), generator=gen).to(torch.float64)
    rois = torch.stack([b, x1, y1, x2, y2], dim=1)
    ours = roi_align(f, rois, (oh, ow), spatial_scale=scale, sampling_ratio=ratio, aligned=aligned)
    ref = loop_reference(f, rois.tolist(), oh, ow, scale, ratio, aligned)
    torch.testing.assert_close(ours, ref, atol=1e-10, rtol=1e-10)


def test_empty_and_invalid_inputs():
    f = torch.zeros(2, 3, H, W)
    assert roi_align(f, torch.zeros(0, 5), 2).shape == (0, 3, 2, 2)
    with pytest.raises(InvalidInputError, match="batch indices"):
        roi_align(f, torch.tensor([[2.0, 0, 0, 1, 1]]), 1)
    with pytest.raises(InvalidInputError, match=r"\[K, 5\]"):
        roi_align(f, torch.zeros(3, 4), 1)
    with pytest.raises(InvalidInputError, match="samples per bin"):
        roi_align(f, torch.tensor([[0.0, 0, 0, float("inf"), 1]]), 1)


def test_gradients_flow_to_features():
    f = torch.randn(1, 2, H, W, requires_grad=True)
    roi_align(f, torch.tensor([[0.0, 0.5, 0.5, 3, 3]]), 2).sum().backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
