"""Draws the pack's registry icon and banner: boxes following a trajectory, as the pack's nodes make a video do.

    python dev/make_icon.py

Writes docs/icon.png (400 x 400, square: the Comfy registry's icon limit) and docs/banner.png (1260 x 540, the
registry's 21:9 banner). pyproject.toml's [tool.comfy] Icon and Banner point at their raw GitHub URLs;
tests/test_packaging.py checks both files. Deterministic: the same Pillow draws the same pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
ICON, BANNER = REPO / "docs" / "icon.png", REPO / "docs" / "banner.png"
SUPERSAMPLE = 4  # drawn at 4x, then reduced: smooth edges without an anti-aliasing renderer

BACKGROUND = (24, 27, 38)
TRAIL = (120, 130, 160)
#: one colour per box along the path, the way Visualize Tracklets colours objects
BOX_COLOURS = [(66, 135, 245), (52, 199, 138), (250, 190, 50), (240, 82, 82)]


def _path_point(t: float, width: float, height: float) -> tuple[float, float]:
    """An S-curve from the lower left to the upper right of a width x height area, t in [0, 1]."""
    x = width * (0.17 + 0.62 * t)
    y = height * (0.76 - 0.52 * t + 0.08 * math.sin(2 * math.pi * t))
    return x, y


def _draw_motif(image: Image.Image, width: float, height: float, unit: float) -> Image.Image:
    """The trajectory (dotted trail, arrow head) and four boxes along it, each larger than the one before; ``unit``
    is one output pixel in drawing pixels. Layers are composited, so the trail shows through the boxes' fill."""
    trail = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(trail)
    steps = 48
    points = [_path_point(i / steps, width, height) for i in range(steps + 1)]
    dot = 3.2 * unit
    for x, y in points:
        draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=(*TRAIL, 255))
    (x0, y0), (x1, y1) = points[-2], points[-1]
    angle = math.atan2(y1 - y0, x1 - x0)
    tip = (x1 + 24 * unit * math.cos(angle), y1 + 24 * unit * math.sin(angle))
    left = (x1 + 12 * unit * math.cos(angle + 2.2), y1 + 12 * unit * math.sin(angle + 2.2))
    right = (x1 + 12 * unit * math.cos(angle - 2.2), y1 + 12 * unit * math.sin(angle - 2.2))
    draw.polygon([tip, left, right], fill=(*TRAIL, 255))
    image = Image.alpha_composite(image, trail)
    for i, colour in enumerate(BOX_COLOURS):
        boxes = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(boxes)
        cx, cy = _path_point(i / (len(BOX_COLOURS) - 1) * 0.92, width, height)
        half_w = (24 + 9 * i) * unit
        half_h = half_w * 0.7
        draw.rounded_rectangle([cx - half_w, cy - half_h, cx + half_w, cy + half_h], radius=5 * unit,
                               fill=(*colour, 60), outline=(*colour, 255), width=round(5 * unit))
        draw.ellipse([cx - 5 * unit, cy - 5 * unit, cx + 5 * unit, cy + 5 * unit], fill=(*colour, 255))
        image = Image.alpha_composite(image, boxes)
    return image


def render(width: int, height: int, title: str | None = None) -> Image.Image:
    """The icon (no title: the motif fills a square) or the banner (the motif on the left, the title beside it)."""
    unit = SUPERSAMPLE * min(width, height) / 400
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    image = Image.new("RGBA", (big_w, big_h), (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle([0, 0, big_w - 1, big_h - 1], radius=round(56 * unit),
                                            fill=(*BACKGROUND, 255))
    image = _draw_motif(image, big_h if title is not None else big_w, big_h, unit)
    if title is not None:
        draw = ImageDraw.Draw(image)
        x, y = big_h * 1.02, big_h * 0.28
        draw.text((x, y), title, font=ImageFont.load_default(size=round(64 * unit)), fill=(236, 239, 244))
        small = ImageFont.load_default(size=round(27 * unit))
        for i, line in enumerate(("tracklet- and trajectory-controlled", "video generation for ComfyUI")):
            draw.text((x, y + (100 + 40 * i) * unit), line, font=small, fill=(160, 170, 190))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def main() -> None:
    ICON.parent.mkdir(exist_ok=True)
    render(400, 400).save(ICON, optimize=True)
    render(1260, 540, title="TrackDiffusion").save(BANNER, optimize=True)
    print(f"wrote {ICON} and {BANNER}")


if __name__ == "__main__":
    main()
