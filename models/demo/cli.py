"""`trackdiffusion demo`: generate a clip with the embedded demo model on the CPU, no download, no ComfyUI."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).resolve().parent / "weights" / "demo_box_i2v.safetensors"
#: instance slots per model: the demo model's (models/demo/data.py SLOTS) and TrackDiffusion's (the official 20)
MAX_OBJECTS = {"conv": 4, "trackdiffusion": 20}


def load_demo_model(path: Path | str = WEIGHTS):
    from safetensors.torch import load_file

    from ...data.errors import InvalidInputError
    from .model import BoxVideoDenoiser, widen_input

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("the demo weights are missing.", fix="reinstall the pack (they ship with it), or "
                                "train them: python -m trackdiffusion.models.demo.train --out demo/weights", source=str(path))
    model = BoxVideoDenoiser()
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    expected = model.state_dict()
    try:
        # weights of the first demo model (box masks only) load as the same function of the boxes
        model.load_state_dict(widen_input(state, model))
    except (KeyError, RuntimeError):
        missing = sorted(set(expected) - set(state))[:5]
        wrong = sorted(k for k in set(expected) & set(state) if k != "conv_in.weight"
                       and expected[k].shape != state[k].shape)[:5]
        raise InvalidInputError(f"these are not demo-model weights (missing {missing}, other shapes {wrong}).",
                                fix="use the file that ships in demo/weights, or one written by "
                                "python -m trackdiffusion.models.demo.train.", source=str(path)) from None
    return model.eval().requires_grad_(False)


def _first_frame(args, clip):
    if not args.image:
        return clip.video[0]
    import cv2

    from ...data.errors import InvalidInputError

    bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InvalidInputError("cannot read this image.", fix="give a PNG or JPEG file.", source=args.image)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _cmd_demo(args) -> int:
    from ...data.errors import InvalidInputError
    from ...data.tracklets import load
    from ...data.visualize import draw_tracklets, write_frames
    from ...evaluation.synth import make_clip

    started = time.time()
    clip = make_clip(args.clip, "eval")
    tracklets = clip.tracklets if args.tracklets is None else load(
        Path(args.tracklets), args.fmt, width=args.width, height=args.height, video=args.video,
        box_size=args.box_size)
    first = _first_frame(args, clip)
    if args.method is not None:
        if args.model == "conv":
            raise InvalidInputError(f"--method {args.method} runs on the tiny SVD, not on the convolution-only demo "
                                    "model.", fix="leave out --model conv (--method implies --model tiny-svd).",
                                    source="trackdiffusion demo")
        if args.method == "sgi2v" and args.adapter:
            raise InvalidInputError("--method sgi2v is training-free: it takes no --adapter.",
                                    fix="leave out --adapter, or use --method trackdiffusion.",
                                    source="trackdiffusion demo")
    args.model = args.model or ("tiny-svd" if args.method else "conv")
    method = args.method or ("trackdiffusion" if args.model == "tiny-svd" else None)
    slots = MAX_OBJECTS.get(method or args.model)
    if slots is not None and len(tracklets.objects) > slots:
        print(f"warning: the tracklets have {len(tracklets.objects)} objects and this model has {slots} slots: only "
              f"the first {slots} (lowest ids) are animated; the boxes drawn on the right are all of them.",
              file=sys.stderr)
    if method == "sgi2v":
        from ..tiny_svd import demo as tiny_demo

        tiny_demo.warn_if_cropped(first, tracklets)
        frames = args.frames or tiny_demo.FRAMES
        video = tiny_demo.generate_sgi2v(first, tracklets, frames=frames, steps=args.steps or 25, seed=args.seed)
        what = "the stock tiny SVD steered by SG-I2V (training-free)"
    elif method == "trackdiffusion":
        from ..tiny_svd import demo as tiny_demo

        tiny_demo.warn_if_cropped(first, tracklets)
        model = tiny_demo.load_with_adapter(adapter=args.adapter)
        frames = args.frames or tiny_demo.FRAMES
        video = tiny_demo.generate(first, tracklets.resample(num_frames=frames), frames=frames,
                                   steps=args.steps or 25, seed=args.seed, model_and_attachment=model,
                                   overflow="first")
        what = "the tiny SVD with TrackDiffusion"
    else:
        import cv2

        from .sampling import generate

        if args.image:
            first = cv2.resize(first, (64, 64), interpolation=cv2.INTER_AREA)
        video = generate(load_demo_model(), first, tracklets, num_frames=args.frames or tracklets.num_frames,
                         steps=args.steps or 20, seed=args.seed)
        what = "the convolution-only demo model"
    boxes = draw_tracklets(tracklets.resample(num_frames=video.shape[0], width=video.shape[2],
                                              height=video.shape[1]), video, thickness=1, show_labels=False)
    side_by_side = np.concatenate([video, boxes], axis=2)
    big = np.repeat(np.repeat(side_by_side, 4, axis=1), 4, axis=2)  # 64 px is small to look at
    out = write_frames(big, args.output, fps=8)
    print(f"wrote {out} ({video.shape[0]} frames by {what}; left: generated, right: with the conditioning boxes) in "
          f"{time.time() - started:.1f} s")
    return 0


def _count(low: int, high: int):
    """An argparse type: an integer in [low, high] (argparse then names the option and the value)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def add_demo_parser(sub) -> None:
    from ...data.tracklets import FORMATS

    p = sub.add_parser("demo", help="generate a clip whose objects follow their boxes, with the embedded demo model")
    p.add_argument("output", nargs="?", default="out/demo.mp4", help="video file (.mp4/.gif) or PNG folder (default out/demo.mp4)")
    p.add_argument("--clip", type=int, default=20000, help="SynTrack test clip giving the first frame and boxes (default 20000)")
    p.add_argument("--tracklets", help="tracklets file to follow instead of the clip's own (any supported format)")
    p.add_argument("--image", help="first frame instead of the clip's (resized to 64x64)")
    p.add_argument("--from", dest="fmt", choices=FORMATS, help="--tracklets format (default: guessed from the content)")
    p.add_argument("--width", type=int, help="--tracklets canvas width (MOT without seqinfo.ini, TRACKS, KJNodes)")
    p.add_argument("--height", type=int, help="--tracklets canvas height")
    p.add_argument("--video", help="--tracklets video id or name (YouTube-VIS / COCO-VID files holding several)")
    p.add_argument("--box-size", type=float, default=64.0, help="box size for point formats (default 64)")
    p.add_argument("--frames", type=_count(2, 64), help="frame count, 2..64 (default: the tracklets')")
    p.add_argument("--steps", type=_count(1, 200), help="denoising steps, 1..200 (default: 25 tiny SVD, 20 conv)")
    p.add_argument("--model", choices=("conv", "tiny-svd"),
                   help="conv: the convolution-only demo model; tiny-svd: TrackDiffusion on the tiny SVD (the "
                   "method's own modules, diffusers backend) (default conv)")
    p.add_argument("--method", choices=("trackdiffusion", "sgi2v"),
                   help="the control method, on the tiny SVD: trackdiffusion (the trained adapter; what --model "
                   "tiny-svd runs) or sgi2v (training-free SG-I2V guidance of the stock model, about 2-3x slower)")
    p.add_argument("--adapter", help="with --method trackdiffusion: a converted TrackDiffusion adapter for the tiny "
                   "SVD (default: the one that ships in models/tiny_svd/adapters)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.set_defaults(func=_cmd_demo)
