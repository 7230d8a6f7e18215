"""``trackdiffusion tracklets`` and ``trackdiffusion dataset``: the data model's command line.

    trackdiffusion tracklets convert IN OUT [--from FMT] [--to json|mot|ytvis] [--width W --height H --frames N
                                            --video NAME --box-size PX --strict]
    trackdiffusion tracklets show IN [same input options]
    trackdiffusion tracklets render IN OUT.mp4|OUT.gif|FOLDER [--image PATH] [--fps F] [same input options]
    trackdiffusion dataset FRAMES TRACKLETS OUT --name NAME [--no-progress]
    trackdiffusion dataset merge OUT SRC [SRC ...] [--force] [--prefix P] [--link] [--no-progress]

``dataset`` shows a progress bar on stderr (frames written, sequences merged); stdout has only the result line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .errors import InvalidInputError
from .progress import add_progress_flag, cli_progress
from .tracklets import EXPORT_FORMATS, FORMATS, load, save


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="fmt", choices=FORMATS, help="input format (default: guessed from the content)")
    p.add_argument("--width", type=int, help="canvas width in pixels (MOT without seqinfo.ini, TRACKS, KJNodes)")
    p.add_argument("--height", type=int, help="canvas height in pixels")
    p.add_argument("--frames", type=int, help="resample the motion to this many frames (every format; the clip's "
                   "duration is kept, so its fps scales with the count; default: as in the file)")
    p.add_argument("--video", help="YouTube-VIS / COCO-VID video id or name, when the file holds several")
    p.add_argument("--box-size", type=float, default=64.0, help="box size in pixels for point formats (default 64)")
    p.add_argument("--strict", action="store_true", help="boxes outside the canvas are an error, not clamped")


def _load(args) -> object:
    return load(Path(args.input), args.fmt, strict=args.strict, width=args.width, height=args.height,
                num_frames=args.frames, video=args.video, box_size=args.box_size)


def _spans(flags: np.ndarray) -> str:
    """[F] bool -> '0-4, 9-13' (or 'never')."""
    spans, start = [], None
    for f, on in enumerate(list(flags) + [False]):
        if on and start is None:
            start = f
        elif not on and start is not None:
            spans.append(f"{start}" if f - 1 == start else f"{start}-{f - 1}")
            start = None
    return ", ".join(spans) or "never"


def summarize(tracklets) -> str:
    """Human-readable summary: canvas, frames, objects with their visible spans and out-of-frame frames."""
    raw = tracklets.dense(clamp=False)
    clamped = tracklets.dense()
    lines = [(f"canvas {tracklets.width}x{tracklets.height}, {tracklets.num_frames} frames at {tracklets.fps:g} fps, "
             f"{len(raw.ids)} objects")]
    for j, obj in enumerate(tracklets.sorted_objects()):
        b = raw.boxes[:, j]
        outside = raw.visible[:, j] & ((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > tracklets.width)
                                       | (b[:, 3] > tracklets.height))
        gone = raw.visible[:, j] & ~clamped.visible[:, j]
        line = (f"  id {obj.id:>3}  {obj.label or '(no label)':<16} {obj.interpolation:<12} "
                f"{len(obj.keyframes):>3} keyframes  visible {_spans(clamped.visible[:, j])}")
        if outside.any():
            line += f"  | partly out of frame {_spans(outside & ~gone)}" if (outside & ~gone).any() else ""
            line += f"  | wholly out of frame {_spans(gone)}" if gone.any() else ""
        lines.append(line)
    return "\n".join(lines)


def condense_warnings(warnings: list[str], per_object: int = 3, objects: int = 20) -> list[str]:
    """One line per object (how many of its boxes were clamped, the first few) instead of one per frame: a real
    MOT file can clamp thousands of boxes."""
    import re

    groups: dict[str, list[str]] = {}
    for w in warnings:
        m = re.match(r"object (\S+), frame (\d+): (.*)$", w)
        key, detail = (m.group(1), f"frame {m.group(2)}: {m.group(3)}") if m else ("", w)
        groups.setdefault(key, []).append(detail)
    out = []
    for key, details in list(groups.items())[:objects]:
        if not key:
            out += details[:per_object]
            continue
        shown = "; ".join(d.rstrip(".") for d in details[:per_object])
        more = f" (and {len(details) - per_object} more)" if len(details) > per_object else ""
        out.append(f"object {key}: {len(details)} box{'es' if len(details) > 1 else ''} clamped to the canvas: "
                   f"{shown}{more}.")
    if len(groups) > objects:
        out.append(f"... and {len(groups) - objects} more objects with clamped boxes.")
    return out


def check_output(output: str | Path, inputs: list[str | Path], force: bool, *, folder_ok: bool = False) -> Path:
    """Refuse an output that is one of the inputs (also through links: writing it would destroy the input, even
    with --force), a folder where a file is written, or an existing file without ``force``."""
    out = Path(output)
    for given in inputs:
        try:
            same = Path(given).exists() and out.exists() and out.samefile(given)
        except OSError:
            same = False
        if same:
            raise InvalidInputError("the output is the input file; writing it would destroy the input.",
                                    fix="give another output path.", source=str(out))
    if out.is_dir() and not folder_ok:
        raise InvalidInputError("the output is a folder.", fix="give a file name (for example out.json).",
                                source=str(out))
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not force:
        raise InvalidInputError("the output already exists.", fix="pass --force to replace it, or give another "
                                "path.", source=str(out))
    return out


def _cmd_convert(args) -> int:
    check_output(args.output, [args.input], args.force)
    tracklets = _load(args)
    out = save(tracklets, args.output, args.to)
    print(f"wrote {out} ({len(tracklets.objects)} objects, {tracklets.num_frames} frames)")
    return 0


def _cmd_show(args) -> int:
    import sys

    tracklets = _load(args)
    print(summarize(tracklets))
    for line in condense_warnings(tracklets.warnings):  # stderr: the summary on stdout stays clean to pipe
        print(f"warning: {line}", file=sys.stderr)
    return 0


def warn_size(width: int, height: int, canvas_w: int, canvas_h: int) -> None:
    """The boxes are drawn scaled from the canvas to the image: say so when the two differ (and loudly when the aspect
    ratio differs, since the boxes are then stretched)."""
    if (width, height) == (canvas_w, canvas_h):
        return
    stretched = abs(width / height - canvas_w / canvas_h) > 0.01 * (canvas_w / canvas_h)
    print(f"warning: the image is {width}x{height}, the tracklets' canvas {canvas_w}x{canvas_h}: the boxes are scaled "
          f"to the image{' and STRETCHED (another aspect ratio)' if stretched else ''}; for boxes as drawn, give an "
          f"image of {canvas_w}x{canvas_h}.", file=sys.stderr)


def _cmd_render(args) -> int:
    from .visualize import draw_tracklets, write_frames

    check_output(args.output, [args.input, *([args.image] if args.image else [])], args.force,
                 folder_ok=not str(args.output).lower().endswith((".mp4", ".gif")))
    tracklets = _load(args)
    images = None
    if args.image:
        import cv2

        bgr = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InvalidInputError("cannot read this image.", fix="give a PNG or JPEG file.", source=args.image)
        images = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        warn_size(images.shape[1], images.shape[0], tracklets.width, tracklets.height)
    frames = draw_tracklets(tracklets, images)
    out = write_frames(frames, args.output, args.fps or tracklets.fps)
    print(f"wrote {out} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]})")
    return 0


def _cmd_track(args) -> int:
    import json

    from .atomic import atomic_write_text
    from .dataset import read_frames
    from .video_tracking import track_boxes

    check_output(args.output, [args.video, args.boxes], args.force)
    if args.confidence:
        check_output(args.confidence, [args.video, args.boxes, args.output], args.force)
    frames = read_frames(args.video)
    if len(frames) < 2:
        raise InvalidInputError(f"the clip has {len(frames)} frame; following boxes needs at least 2.",
                                source=args.video)
    args.input = args.boxes
    tracked, confidence = track_boxes(frames, _load(args), args.out_frames, args.out_width, args.out_height)
    save(tracked, args.output, "json")
    if args.confidence:
        atomic_write_text(args.confidence, json.dumps({"ids": sorted(o.id for o in tracked.objects),
                                                       "confidence": confidence.round(4).tolist()}))
    for j, oid in enumerate(sorted(o.id for o in tracked.objects)):
        held = confidence[:, j] > 0
        print(f"  object {oid}: followed in {int(held.sum())} of {len(held)} frames, mean confidence "
              f"{float(confidence[held, j].mean()) if held.any() else 0.0:.2f}")
    print(f"wrote {args.output} ({len(tracked.objects)} objects, {tracked.num_frames} frames, "
          f"{tracked.width}x{tracked.height})")
    return 0


def _cmd_dataset(args) -> int:
    from .dataset import read_frames, write_tracking_sequence

    args.input = args.tracklets
    tracklets = _load(args)
    frames = read_frames(args.frames_path)
    with cli_progress(args, "dataset", "frame") as progress:
        target = write_tracking_sequence(frames, tracklets, args.output, args.name, fps=args.fps,
                                         image_format=args.image_format, progress=progress)
    print(f"wrote {target} (MOT sequence: img1/, gt/gt.txt, seqinfo.ini; ytvis.json)")
    return 0


def _cmd_merge(args) -> int:
    from .dataset_merge import merge_datasets

    with cli_progress(args, "merge", "sequence") as progress:
        result = merge_datasets(args.output, args.sources, force=args.force, prefix=args.prefix, link=args.link,
                                progress=progress)
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"wrote {result.out} ({len(result.sequences)} sequence{'s' if len(result.sequences) != 1 else ''}, "
          f"{result.tracks} track{'s' if result.tracks != 1 else ''}; ytvis.json, cocovid.json, seqmap.txt, "
          "merge.json)")
    return 0


class DatasetParser(argparse.ArgumentParser):
    """``dataset FRAMES TRACKLETS OUT --name NAME`` (one sequence) beside ``dataset merge OUT SRC ...``: argparse has
    no subcommand next to positionals, so the first word picks the parser and the older form keeps working."""

    merge_parser: argparse.ArgumentParser | None = None

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        if self.merge_parser is not None and args[:1] == ["merge"]:
            return self.merge_parser.parse_known_args(args[1:], namespace)
        return super().parse_known_args(args, namespace)


def _add_merge_parser(ds: DatasetParser) -> None:
    merge = argparse.ArgumentParser(
        prog=f"{ds.prog} merge", description="Merge tracker datasets (the --out folders of sharded runs, dataset "
        "roots, single sequences) into one: sequences renamed PREFIX_00001..., track ids unique across the merge, "
        "one ytvis.json and cocovid.json for all (unique video, image and annotation ids), seqmap.txt and merge.json "
        "(where each sequence came from). Written into a temporary folder and renamed: never half a dataset.")
    merge.add_argument("output", metavar="OUT", help="the merged dataset (new; an existing one only with --force)")
    merge.add_argument("sources", metavar="SRC", nargs="+", help="folders holding MOT sequences at any depth "
                       "(folders with seqinfo.ini; hidden folders, i.e. writes in progress, are skipped)")
    merge.add_argument("--force", action="store_true", help="replace OUT if it exists (never a source)")
    merge.add_argument("--prefix", default="synth", help="sequence names: PREFIX_00001, ... (default synth)")
    merge.add_argument("--link", action="store_true", help="hard-link the frames instead of copying them "
                       "(a copy where links are impossible)")
    add_progress_flag(merge)
    merge.set_defaults(func=_cmd_merge)
    ds.merge_parser = merge


def add_tracklets_parsers(sub) -> None:
    """Add ``tracklets`` and ``dataset`` to the ``trackdiffusion`` command's subparsers."""
    tr = sub.add_parser("tracklets", help="convert, inspect and render tracklet files")
    tsub = tr.add_subparsers(dest="command", required=True)

    conv = tsub.add_parser("convert", help="convert between MOT, YouTube-VIS, TRACKS, KJNodes and our JSON")
    conv.add_argument("input", help="the tracklets file to read (any supported format)")
    conv.add_argument("output", help="the file to write (never the input; an existing one only with --force)")
    conv.add_argument("--to", choices=EXPORT_FORMATS, help="output format (default: .txt -> mot, else json)")
    conv.add_argument("--force", action="store_true", help="replace OUT if it exists (never the input itself)")
    _add_input_options(conv)
    conv.set_defaults(func=_cmd_convert)

    show = tsub.add_parser("show", help="summary: objects, frame spans, boxes out of frame")
    show.add_argument("input", help="the tracklets file to describe (any supported format)")
    _add_input_options(show)
    show.set_defaults(func=_cmd_show)

    render = tsub.add_parser("render", help="draw the tracklets as an annotated video (.mp4, .gif or PNG folder)")
    render.add_argument("input", help="the tracklets file to draw (any supported format)")
    render.add_argument("output", help="a .mp4 or .gif file, or a folder for PNG frames")
    render.add_argument("--image", help="background image (default: a grey grid)")
    render.add_argument("--fps", type=float, help="frame rate (default: the tracklets' fps)")
    render.add_argument("--force", action="store_true", help="replace OUT if it exists (never an input itself)")
    _add_input_options(render)
    render.set_defaults(func=_cmd_render)

    track = tsub.add_parser("track", help="follow boxes drawn on a reference clip's first frame through the clip "
                            "(motion from a real video; no model download)")
    track.add_argument("video", help="the reference clip: a video file or a folder of frames")
    track.add_argument("output", help="the tracklets JSON to write (an existing one only with --force)")
    track.add_argument("--boxes", required=True, help="where each object starts: a tracklets file (any supported "
                       "format; usually one box per object on frame 0, any canvas: scaled to the clip)")
    track.add_argument("--out-frames", type=int, help="resample the motion to this many frames (default: the clip's)")
    track.add_argument("--out-width", type=int, help="output canvas width (default: the clip's)")
    track.add_argument("--out-height", type=int, help="output canvas height (default: the clip's)")
    track.add_argument("--confidence", help="also write the per-frame, per-object confidence (JSON) here")
    track.add_argument("--force", action="store_true", help="replace OUT if it exists (never an input itself)")
    _add_input_options(track)
    track.set_defaults(func=_cmd_track)

    ds = sub.add_parser("dataset", help="video frames + tracklets -> a MOT sequence and YouTube-VIS json; "
                        "'dataset merge OUT SRC...' merges datasets",
                        usage="%(prog)s FRAMES TRACKLETS OUT --name NAME [options]\n"
                        "       %(prog)s merge OUT SRC [SRC ...] [--force] [--prefix P] [--link] [--no-progress]",
                        epilog="'%(prog)s merge --help' describes the merge.")
    ds.__class__ = DatasetParser  # the subparsers action makes plain parsers; this one also dispatches 'merge'
    _add_merge_parser(ds)
    ds.add_argument("frames_path", metavar="FRAMES", help="a folder of frames or a video file")
    ds.add_argument("tracklets", metavar="TRACKLETS", help="the conditioning tracklets (any supported format)")
    ds.add_argument("output", metavar="OUT", help="dataset root; the sequence goes to OUT/NAME (never overwritten)")
    ds.add_argument("--name", required=True, help="sequence name")
    ds.add_argument("--fps", type=float, help="frame rate written to seqinfo.ini (default: the tracklets')")
    ds.add_argument("--image-format", choices=("jpg", "png"), default="jpg", help="img1/ frame files (default jpg)")
    add_progress_flag(ds)
    _add_input_options(ds)
    ds.set_defaults(func=_cmd_dataset)
