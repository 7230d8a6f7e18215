"""The canvas editors' nodes: Tracklet Editor (boxes per object per frame) and Point Trajectory Editor (TrackGo).

The editors themselves are JavaScript (``js/tracklet_editor.js``, ``js/trajectory_editor.js``). Their whole state
lives in one declared STRING input per node, which the JS hides and rewrites on every edit; the canvas DOM widget is
never serialised. So a saved workflow runs headless, converts to API format, and a hand-written JSON works too:

- ``TrackletEditor.tracklets_json`` is exactly our tracklet JSON v1 (see ``trackdiffusion.tracklets.model``), parsed
  with ``trackdiffusion.tracklets.load``: Python is the one source of truth for interpolation, the JS only previews.
- ``PointTrajectoryEditor.trajectory_json`` is ``{"format": "trackdiffusion.trajectory_editor", "version": 1,
  "width", "height", "components": [{"label", "mask": RLE, "arrow": [[x, y], ...]}, ...]}``. A mask is a row-major
  run-length code ``{"size": [H, W], "counts": [zeros, ones, zeros, ...]}`` (first run counts zeros and may be 0);
  an arrow has >= 2 points, and a component without one stays still.

Both nodes send the background frames back to the canvas after a run (JPEGs in ComfyUI's temp folder, ``ui`` key
``td_background``), so the editor can show the upstream IMAGE at any frame while scrubbing.
"""

from __future__ import annotations

import hashlib
import json
import os

import cv2
import numpy as np
import torch
from comfy_api.latest import io

from ..errors import InvalidInputError
from ..tracklets import Tracklets, load
from ..tracklets.formats import write_tracks
from ..trajectories import build_point_trajectories
from ..visualize import as_frames, draw_tracklets
from .convert import image_to_numpy, numpy_to_image
from .types import CATEGORY, PointTrajectories, Tracks
from .types import Tracklets as TrackletsType

TRAJECTORY_FORMAT = "trackdiffusion.trajectory_editor"
PREVIEW_MAX_SIDE = 1024  # background JPEGs for the canvas; the editor's coordinates stay in width x height pixels
PREVIEW_SUBFOLDER = "trackdiffusion_editor"


# ----------------------------------------------------------------------------------------------------- helpers
def box_masks(tracklets: Tracklets) -> np.ndarray:
    """One mask per object per frame, object-major: [N * F, H, W] float32 (object n, frame f at n * F + f).

    Objects in id order (the slot order); a pixel is inside when its centre is inside the clamped box; hidden frames
    are empty. With no objects, F empty masks (so downstream nodes always get a batch).
    """
    dense = tracklets.dense()
    n_frames, n_obj = dense.visible.shape
    h, w = tracklets.height, tracklets.width
    out = np.zeros((max(n_obj, 1) * n_frames, h, w), dtype=np.float32)
    for j in range(n_obj):
        for f in range(n_frames):
            if dense.visible[f, j]:
                x1, y1, x2, y2 = np.floor(dense.boxes[f, j] + 0.5).astype(int)
                out[j * n_frames + f, y1:y2, x1:x2] = 1.0
    return out


def rle_decode(rle: object, what: str) -> np.ndarray:
    """Row-major run-length mask ``{"size": [H, W], "counts": [...]}`` -> bool [H, W]."""
    source = "trajectory editor JSON"
    if not isinstance(rle, dict) or not isinstance(rle.get("size"), list) or not isinstance(rle.get("counts"), list):
        raise InvalidInputError(f"{what}: mask must be {{\"size\": [H, W], \"counts\": [...]}}.", source=source)
    size, counts = rle["size"], rle["counts"]
    if (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384 for v in size)
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)):
        raise InvalidInputError(f"{what}: mask size must be two ints in 1..16384 and counts non-negative ints.",
                                source=source)
    h, w = size
    if sum(counts) != h * w:
        raise InvalidInputError(f"{what}: mask runs add up to {sum(counts)} pixels, not {h}x{w}.",
                                fix="re-draw the mask in the editor.", source=source)
    values = np.arange(len(counts)) % 2 == 1  # runs alternate zeros, ones, zeros, ...
    return np.repeat(values, counts).reshape(h, w)


def rle_encode(mask: np.ndarray) -> dict:
    """bool [H, W] -> the run-length dict :func:`rle_decode` reads (used by tests and example workflows)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}


def _preview_refs(frames: np.ndarray, count: int) -> list[dict]:
    """Write ``count`` editor frames (background frames spread over them) as temp JPEGs; /view references.

    Identical frames (a single still image) are written once; the file name is the content hash, so re-running
    the same background rewrites nothing new.
    """
    import folder_paths

    folder = os.path.join(folder_paths.get_temp_directory(), PREVIEW_SUBFOLDER)
    os.makedirs(folder, exist_ok=True)
    b = frames.shape[0]
    h, w = frames.shape[1:3]
    scale = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
    refs, written = [], {}
    for f in range(count):
        src = round(f * (b - 1) / (count - 1)) if count > 1 and b > 1 else 0
        if src not in written:
            img = frames[src]
            if scale < 1.0:
                img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))),
                                 interpolation=cv2.INTER_AREA)
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise RuntimeError("OpenCV could not encode a preview JPEG")
            name = f"bg_{hashlib.sha1(jpg.tobytes()).hexdigest()[:20]}.jpg"
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                with open(path, "wb") as fh:
                    fh.write(jpg.tobytes())
            written[src] = {"filename": name, "subfolder": PREVIEW_SUBFOLDER, "type": "temp"}
        refs.append(written[src])
    return refs


def parse_editor_tracklets(text: str, width: int, height: int, num_frames: int) -> Tracklets:
    """The editor's JSON (empty text = no objects yet), resampled to the node's width, height and num_frames."""
    if not text or not text.strip():
        return Tracklets(width, height, num_frames, [])
    tracklets = load(text, "json", strict=False)
    if (tracklets.width, tracklets.height, tracklets.num_frames) != (width, height, num_frames):
        # The INT inputs win (an API user may change them without the editor); the motion keeps its shape.
        warnings = tracklets.warnings
        tracklets = tracklets.resample(num_frames, width, height)
        tracklets.warnings = warnings
    return tracklets


def parse_trajectory_state(text: str, width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The trajectory editor's JSON -> masks bool [M, height, width] and one arrow per mask (pixels)."""
    source = "trajectory editor JSON"
    try:
        data = json.loads(text) if text and text.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"not valid JSON ({exc}).", fix="reset the editor or paste a saved state.",
                                source=source) from None
    if not isinstance(data, dict) or data.get("format", TRAJECTORY_FORMAT) != TRAJECTORY_FORMAT:
        raise InvalidInputError(f"expected a {TRAJECTORY_FORMAT} object.", source=source)
    comps = data.get("components", [])
    if not isinstance(comps, list) or not comps:
        raise InvalidInputError("no components yet.", fix="paint a mask on the first frame and draw its arrow "
                                "(one component per moving part).", source=source)
    masks, arrows = [], []
    for i, comp in enumerate(comps):
        if not isinstance(comp, dict):
            raise InvalidInputError(f"component {i} must be an object.", source=source)
        mask = rle_decode(comp.get("mask"), f"component {i}")
        mh, mw = mask.shape
        if (mh, mw) != (height, width):
            mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        if not mask.any():
            raise InvalidInputError(f"component {i} has an empty mask.", fix="paint its mask, or delete the "
                                    "component.", source=source)
        arrow = comp.get("arrow") or []
        if isinstance(arrow, list) and len(arrow) >= 2:
            pts = np.asarray(arrow, dtype=np.float64) if all(isinstance(p, list) and len(p) == 2 for p in arrow) \
                else None
            if pts is None or not np.isfinite(pts).all():
                raise InvalidInputError(f"component {i}: arrow must be [[x, y], ...] numbers.", source=source)
            pts = pts * [width / mw, height / mh]
        else:
            ys, xs = np.nonzero(mask)
            pts = np.array([[xs.mean(), ys.mean()]] * 2)  # no arrow: a zero-length one, the part stays still
        masks.append(mask)
        arrows.append(pts)
    return np.stack(masks), arrows


# ------------------------------------------------------------------------------------------------------- nodes
class TrackletEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TrackletEditor",
            display_name="Tracklet Editor",
            category=CATEGORY,
            description="Draw boxes per object over time on a canvas: keyframes, interpolation, appear/disappear, "
            "import/export. Outputs the tracklets, core TRACKS, one mask per object per frame and a preview.",
            is_output_node=True,  # runs (and sends the background to the canvas) even before anything is wired
            inputs=[
                io.String.Input("tracklets_json", multiline=False, default="", socketless=True,
                                tooltip="The editor's state: tracklet JSON v1 (the canvas writes it; hidden when "
                                "the editor is loaded). Empty = no objects."),
                io.Int.Input("width", default=1024, min=8, max=16384, tooltip="Canvas width in pixels."),
                io.Int.Input("height", default=576, min=8, max=16384, tooltip="Canvas height in pixels."),
                io.Int.Input("num_frames", default=14, min=1, max=4096),
                io.Image.Input("background", optional=True,
                               tooltip="Frames to draw over (one image or a video batch); shown in the editor after "
                               "a run."),
            ],
            outputs=[
                TrackletsType.Output(display_name="tracklets"),
                Tracks.Output(display_name="tracks"),
                io.Mask.Output(display_name="masks",
                               tooltip="[objects * frames, H, W]: object n's frame f is at n * num_frames + f "
                               "(objects by id)."),
                io.Image.Output(display_name="preview"),
            ],
        )

    @classmethod
    def execute(cls, tracklets_json, width, height, num_frames, background=None) -> io.NodeOutput:
        tracklets = parse_editor_tracklets(tracklets_json, width, height, num_frames)
        images = None if background is None else image_to_numpy(background)
        if images is not None and images.shape[0] > 1 and images.shape[0] != num_frames:
            # Draw on the background frame each editor frame shows (the editor maps frames the same way).
            idx = np.round(np.arange(num_frames) * ((images.shape[0] - 1) / max(num_frames - 1, 1))).astype(int)
            images = images[idx]
        preview = draw_tracklets(tracklets, images)
        ui = {"td_info": [{"width": width, "height": height, "num_frames": num_frames,
                           "objects": len(tracklets.objects), "warnings": tracklets.warnings[:20]}]}
        if images is not None:
            ui["td_background"] = _preview_refs(images, num_frames)
        return io.NodeOutput(tracklets, write_tracks(tracklets), torch.from_numpy(box_masks(tracklets)),
                             numpy_to_image(preview), ui=ui)


class PointTrajectoryEditor(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PointTrajectoryEditor",
            display_name="Point Trajectory Editor (TrackGo)",
            category=CATEGORY,
            description="TrackGo on a canvas: brush a mask per moving part on the first frame and draw its arrow. "
            "Same outputs as Point Trajectory Builder, plus the mask batch.",
            is_output_node=True,
            inputs=[
                io.String.Input("trajectory_json", multiline=False, default="", socketless=True,
                                tooltip="The editor's state: masks (run-length) and arrows per component (the canvas "
                                "writes it; hidden when the editor is loaded)."),
                io.Int.Input("width", default=1024, min=8, max=16384),
                io.Int.Input("height", default=576, min=8, max=16384),
                io.Int.Input("num_frames", default=14, min=1, max=1024),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Seed of the k-means point sampling (fixed: the same mask gives the same points)."),
                io.Int.Input("point_size", default=4, min=1, max=64,
                             tooltip="Square size of each point in the conditioning video (TrackGo uses 4)."),
                io.Image.Input("background", optional=True, tooltip="The first frame to paint on."),
            ],
            outputs=[
                PointTrajectories.Output(display_name="trajectories"),
                Tracks.Output(display_name="tracks"),
                io.Image.Output(display_name="trajectory_video"),
                io.Mask.Output(display_name="masks", tooltip="One mask per component, [M, H, W]."),
            ],
        )

    @classmethod
    def execute(cls, trajectory_json, width, height, num_frames, seed, point_size, background=None) -> io.NodeOutput:
        masks, arrows = parse_trajectory_state(trajectory_json, width, height)
        trajectories = build_point_trajectories(masks, [a.tolist() for a in arrows], num_frames, seed=seed)
        video = numpy_to_image(trajectories.render(point_size=point_size))
        ui = {"td_points": [{"points": np.round(trajectories.points[0].astype(np.float64), 2).tolist(),
                             "component": trajectories.component.tolist()}]}
        if background is not None:
            ui["td_background"] = _preview_refs(as_frames(image_to_numpy(background[:1])), 1)
        return io.NodeOutput(trajectories, trajectories.to_tracks(), video,
                             torch.from_numpy(masks.astype(np.float32)), ui=ui)


EDITOR_NODES: list[type[io.ComfyNode]] = [TrackletEditor, PointTrajectoryEditor]
__all__ = ["EDITOR_NODES", "PointTrajectoryEditor", "TrackletEditor", "box_masks",
           "parse_editor_tracklets", "parse_trajectory_state", "rle_decode", "rle_encode"]
