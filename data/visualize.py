"""Drawing tracklets and point trajectories over frames, and writing mp4 / gif / png frames with OpenCV.

Frames here are RGB uint8 numpy arrays [F, H, W, 3]; OpenCV's BGR order only appears at the file boundary.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .atomic import as_ordinary
from .errors import InvalidInputError
from .tracklets.model import color_to_rgb

VIDEO_SUFFIXES = (".mp4", ".gif")


def as_frames(images, num_frames: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Normalise an image batch to RGB uint8 [F, H, W, 3].

    Args:
        images: None (a neutral grey canvas of ``size``), or an array/tensor [H, W, 3] / [F, H, W, 3] / [F, H, W],
            uint8 or float in [0, 1] (ComfyUI IMAGE).
        num_frames: repeat a single image to this many frames.
        size: (width, height) of the blank canvas when ``images`` is None.
    """
    if images is None:
        if size is None or num_frames is None:
            raise InvalidInputError("no images and no canvas size to draw on.", source="visualize")
        w, h = size
        canvas = np.full((h, w, 3), 48, np.uint8)
        canvas[::32, :] = 64  # a faint grid, so motion is readable on an empty canvas
        canvas[:, ::32] = 64
        return np.repeat(canvas[None], num_frames, axis=0)
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[None]
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] not in (3, 4) or 0 in arr.shape:
        raise InvalidInputError(f"images must be [frames, height, width, 3], got shape {list(arr.shape)}.",
                                source="visualize")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if num_frames is not None and arr.shape[0] == 1 and num_frames > 1:
        arr = np.repeat(arr, num_frames, axis=0)
    return np.ascontiguousarray(arr)


def _rgb255(color: str) -> tuple[int, int, int]:
    return tuple(round(c * 255) for c in color_to_rgb(color))  # type: ignore[return-value]


def draw_tracklets(tracklets, images=None, *, trail: bool = True, thickness: int = 2,
                   show_labels: bool = True) -> np.ndarray:
    """Boxes, ids, labels and centre trails of every visible object on every frame.

    The tracklets are resampled to the number of frames given and scaled to the image size, so a 25-frame tracklet
    file can be reviewed over a 14-frame video of another resolution.

    Returns:
        RGB uint8 [F, H, W, 3].
    """
    frames = as_frames(images, tracklets.num_frames, (tracklets.width, tracklets.height)).copy()
    n_frames, height, width = frames.shape[:3]
    dense = tracklets.dense(n_frames)
    scale = np.array([width / tracklets.width, height / tracklets.height] * 2)
    boxes = dense.boxes * scale
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    font_scale = max(0.35, min(width, height) / 900)
    for f in range(n_frames):
        canvas = frames[f]
        for j, oid in enumerate(dense.ids):
            color = _rgb255(dense.colors[j])
            if trail:
                seen = np.flatnonzero(dense.visible[: f + 1, j])
                if len(seen) > 1:
                    pts = np.round(centres[seen, j]).astype(np.int32).reshape(-1, 1, 2)
                    cv2.polylines(canvas, [pts], False, color, max(1, thickness - 1), cv2.LINE_AA)
            if not dense.visible[f, j]:
                continue
            x1, y1, x2, y2 = np.round(boxes[f, j]).astype(int)
            cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), color, thickness, cv2.LINE_AA)
            if show_labels:
                text = f"{oid} {dense.labels[j]}".strip()
                (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
                ty = y1 - 3 if y1 - th - base - 3 >= 0 else y1 + th + 3
                cv2.rectangle(canvas, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 1), color, -1)
                luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
                ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
                cv2.putText(canvas, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, 1, cv2.LINE_AA)
    return frames


def draw_trajectories(trajectories, images=None, *, radius: int = 3, trail: bool = True) -> np.ndarray:
    """Points (one colour per component) with their trails over frames.

    Args:
        trajectories: a ``PointTrajectories`` (points [F, P, 2] pixels, visibility [F, P], component [P]).
    Returns:
        RGB uint8 [F, H, W, 3].
    """
    from .trajectories.render import component_colors

    frames = as_frames(images, trajectories.num_frames, (trajectories.width, trajectories.height)).copy()
    n_frames, height, width = frames.shape[:3]
    if n_frames != trajectories.num_frames:
        raise InvalidInputError(f"{n_frames} images but {trajectories.num_frames} trajectory frames.",
                                fix="give as many images as trajectory frames, or a single image.",
                                source="draw_trajectories")
    scale = np.array([width / trajectories.width, height / trajectories.height])
    pts = np.asarray(trajectories.points, dtype=np.float64) * scale
    vis = np.asarray(trajectories.visibility, dtype=bool)
    palette = component_colors(int(np.max(trajectories.component)) + 1 if len(trajectories.component) else 0)
    for f in range(n_frames):
        for p in range(pts.shape[1]):
            color = tuple(int(c) for c in palette[trajectories.component[p]])
            if trail and f > 0:
                seen = np.flatnonzero(vis[: f + 1, p])
                if len(seen) > 1:
                    cv2.polylines(frames[f], [np.round(pts[seen, p]).astype(np.int32).reshape(-1, 1, 2)], False,
                                  color, 1, cv2.LINE_AA)
            if vis[f, p]:
                cv2.circle(frames[f], tuple(int(v) for v in np.round(pts[f, p])), radius, color, -1, cv2.LINE_AA)
    return frames


def write_frames(frames: np.ndarray, path, fps: float = 8.0) -> Path:
    """Write RGB uint8 frames [F, H, W, 3] as ``.mp4``, ``.gif`` or, for any other path, a folder of PNG frames.

    The output appears whole or not at all: everything is written under a temporary name in the same folder first.
    A PNG folder that already holds files is refused rather than mixed with old frames.
    """
    path = Path(path)
    frames = as_frames(frames)
    if not (np.isfinite(fps) and fps > 0):
        raise InvalidInputError(f"fps must be positive, got {fps!r}.", source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            (_write_mp4 if suffix == ".mp4" else _write_gif)(frames, tmp, fps)
            as_ordinary(tmp)  # mkstemp makes it private; the result is an ordinary file
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise InvalidInputError("already exists and is not an empty folder.",
                                fix="choose a new folder for PNG frames, or a .mp4 / .gif file name.", source=str(path))
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for i, frame in enumerate(frames):
            if not cv2.imwrite(str(tmp_dir / f"frame_{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
                raise InvalidInputError("OpenCV could not write a PNG frame.", source=str(path))
        as_ordinary(tmp_dir)  # mkdtemp makes it private; the result is an ordinary folder
        if path.exists():
            path.rmdir()
        os.replace(tmp_dir, path)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def _write_mp4(frames: np.ndarray, path: Path, fps: float) -> None:
    height, width = frames.shape[1:3]
    # MPEG-4 stores the frame rate as a fraction whose parts must stay under 65536; OpenCV keeps 3 decimals, so
    # above 65 fps (motion resampled to many frames) only a whole number of frames per second can be written
    fps = float(max(1, round(fps))) if fps > 65 else float(fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise InvalidInputError("OpenCV cannot encode mp4 here.", fix="write a .gif or a folder of PNG frames.",
                                source=str(path))
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def _write_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    duration = round(1000 / fps)
    if hasattr(cv2, "imwriteanimation"):  # OpenCV >= 4.11
        animation = cv2.Animation()
        animation.frames = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        animation.durations = [duration] * len(frames)
        if cv2.imwriteanimation(str(path), animation):
            return
    try:
        from PIL import Image
    except ImportError:
        raise InvalidInputError("this OpenCV cannot write GIF and Pillow is not installed.",
                                fix="write a .mp4 or a folder of PNG frames.", source=str(path)) from None
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
