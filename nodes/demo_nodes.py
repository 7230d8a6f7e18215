"""The embedded demo model in ComfyUI: a clip whose objects follow their boxes, on the CPU, with nothing to download.

A thin wrapper around :mod:`trackdiffusion.models.demo` (the small box-conditioned image-to-video model trained on SynTrack
that ships with the pack). Whatever is not connected comes from a SynTrack test clip, so the node runs on its own.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from comfy_api.latest import io

from ..data.errors import InvalidInputError
from .convert import image_to_numpy, numpy_to_image
from .types import CATEGORY, Tracklets

SIZE = 64  # the demo model was trained on 64x64 SynTrack clips
MAX_FRAMES = 64
SOURCE = "TrackDiffusion Demo"

_cache: dict = {}  # {"key": (weights path, mtime_ns, size), "model": the loaded model}
_cache_lock = threading.Lock()


def _weights_path() -> Path:
    from ..models import demo

    return Path(demo.__file__).resolve().parent / "weights" / "demo_box_i2v.safetensors"


def demo_model():
    """The demo model, loaded once per process and again only when its weights file changes (retrained weights)."""
    from ..models.demo.cli import load_demo_model

    path = _weights_path()
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None  # missing: load_demo_model says so, with the fix
    with _cache_lock:
        if key is None or _cache.get("key") != key:
            _cache.clear()
            model = load_demo_model()
            if key is None:
                return model
            _cache.update(key=key, model=model)
        return _cache["model"]


def first_frame_64(image) -> np.ndarray:
    """The first image of an IMAGE batch as RGB uint8 [64, 64, 3] (area interpolation)."""
    import cv2

    if image.dim() != 4 or image.shape[0] < 1 or image.shape[1] < 1 or image.shape[2] < 1:
        raise InvalidInputError(f"first_frame must be an image batch [B, H, W, C], got shape {list(image.shape)}.",
                                fix="connect an IMAGE output (e.g. Load Image).", source=SOURCE)
    frame = image_to_numpy(image[:1])[0]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    if frame.shape[:2] != (SIZE, SIZE):
        frame = cv2.resize(frame, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(frame)


class TrackDiffusionDemo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackDiffusionDemo",
            display_name="TrackDiffusion Demo (CPU, no download)",
            category=CATEGORY,
            description="Generates a small clip (64x64) whose objects follow their boxes, with the demo model that "
            "ships inside this pack: nothing to download, and it always runs on the CPU whatever device ComfyUI "
            "uses (a few seconds). It is a tiny box-conditioned image-to-video model trained on SynTrack (coloured "
            "shapes), not TrackDiffusion itself. A SynTrack test clip supplies the first frame and/or the tracklets "
            "that are not connected. The model has 4 object slots: tracklets with more objects are refused (none at all: the "
            "model's box-free mode).",
            inputs=[
                io.Image.Input("first_frame", optional=True,
                               tooltip="The first frame to animate (the first image of the batch), resized to 64x64 "
                               "with area interpolation (aspect ratio not kept). Not connected: the SynTrack "
                               "clip's first frame."),
                Tracklets.Input("tracklets", optional=True,
                                tooltip="The boxes to follow, on any canvas size (scaled to the frame). Not "
                                "connected: the SynTrack clip's own tracklets."),
                io.Int.Input("syntrack_clip", default=20000, min=0, max=2**31 - 1,
                             tooltip="SynTrack clip (seeds 20000 and up are the test split) that supplies the first "
                             "frame and/or the tracklets not connected."),
                io.Int.Input("frames", default=0, min=0, max=MAX_FRAMES,
                             tooltip=f"Frames to generate: 0 = the tracklets' own count, else 2..{MAX_FRAMES} (the "
                             "motion is resampled over the same duration)."),
                io.Int.Input("steps", default=20, min=1, max=200, tooltip="Denoising steps (DDIM)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Int.Input("upscale", default=4, min=1, max=8,
                             tooltip="Nearest-neighbour enlargement of the 64 px output, so it can be looked at."),
            ],
            outputs=[
                io.Image.Output(display_name="frames"),
                Tracklets.Output(display_name="tracklets",
                                 tooltip="The tracklets the clip followed (on the generated frame count): connect "
                                 "them to Visualize Tracklets or Save Tracking Dataset."),
            ],
        )

    @classmethod
    def execute(cls, syntrack_clip, frames, steps, seed, upscale, first_frame=None, tracklets=None) -> io.NodeOutput:
        import torch

        from ..models.demo.sampling import generate

        if frames == 1 or not 0 <= frames <= MAX_FRAMES:
            raise InvalidInputError(f"frames must be 0 (the tracklets' own count) or 2..{MAX_FRAMES}, got {frames}.",
                                    fix="set frames to 0 or to at least 2.", source=SOURCE)
        if not 1 <= steps <= 200 or not 1 <= upscale <= 8:
            raise InvalidInputError(f"steps must be 1..200 and upscale 1..8, got {steps} and {upscale}.",
                                    source=SOURCE)
        clip = None
        if first_frame is None or tracklets is None:
            from ..evaluation.synth import make_clip

            clip = make_clip(int(syntrack_clip), "eval")
        first = clip.video[0] if first_frame is None else first_frame_64(first_frame)
        if tracklets is None:
            tracklets = clip.tracklets
        num_frames = frames or tracklets.num_frames
        if not 2 <= num_frames <= MAX_FRAMES:
            raise InvalidInputError(f"the tracklets have {tracklets.num_frames} frames; the demo makes 2..{MAX_FRAMES}.",
                                    fix=f"set frames to a count from 2 to {MAX_FRAMES}.", source=SOURCE)
        model = demo_model()
        slots = int(getattr(model, "slots", 4))
        if len(tracklets.objects) > slots:
            raise InvalidInputError(f"the tracklets have {len(tracklets.objects)} objects; the demo model follows at "
                                    f"most {slots}.", fix=f"keep {slots} objects or fewer (delete some in the "
                                    "Tracklet Editor or the tracklets file).", source=SOURCE)
        # The demo model is tiny and float32: it runs on the CPU whatever device ComfyUI uses.
        with torch.inference_mode():
            video = generate(model, first, tracklets, num_frames=num_frames, steps=int(steps), seed=int(seed))
        if upscale > 1:
            video = np.repeat(np.repeat(video, upscale, axis=1), upscale, axis=2)
        used = tracklets if num_frames == tracklets.num_frames else tracklets.resample(num_frames)
        return io.NodeOutput(numpy_to_image(video), used)
