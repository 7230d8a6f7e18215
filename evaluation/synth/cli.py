"""``trackdiffusion synth``: write SynTrack clips (video, tracklets JSON, point trajectories) to a folder.

    trackdiffusion synth OUT [--split test|val|train] [--tier eval|ci] [--clips N] [--step S] [--flat]
                             [--format npz|png|mp4] [--no-progress]

Per clip: ``<name>.json`` (ground-truth tracklets, our format), ``<name>.npz`` (``video`` unless --format png/mp4,
``points``, ``visibility``, ``component``, ``visible_fraction``) and ``<name>.mp4`` / ``<name>/`` frames for the
other formats; plus ``manifest.json`` for ``trackdiffusion eval clips``. Names are seeds (held-out splits) or
``train-<step>-<i>``. An existing OUT/<name> is never overwritten. A progress bar on stderr counts the clips made and
written; stdout has only the result line.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ...data.errors import InvalidInputError
from ...data.progress import add_progress_flag, cli_progress
from ...data.tracklets import atomic_write_text


def _save_npz(path: Path, **arrays) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def write_clip(clip, folder: Path, name: str, fmt: str = "npz") -> dict:
    """Write one clip; returns its manifest entry."""
    from ...data.visualize import write_frames

    folder.mkdir(parents=True, exist_ok=True)
    targets = [folder / f"{name}.json", folder / f"{name}.npz", folder / f"{name}.mp4", folder / name]
    if any(t.exists() for t in targets):
        raise InvalidInputError("already exists; SynTrack clips are never overwritten.", fix="use an empty folder.",
                                source=str(folder / name))
    arrays = {"points": clip.points.points, "visibility": clip.points.visibility,
              "component": clip.points.component, "visible_fraction": clip.visible_fraction}
    if fmt == "npz":
        arrays["video"] = clip.video
        video = f"{name}.npz"
    elif fmt == "png":
        write_frames(clip.video, folder / name)
        video = name
    else:
        write_frames(clip.video, folder / f"{name}.mp4", fps=clip.tracklets.fps)
        video = f"{name}.mp4"
    _save_npz(folder / f"{name}.npz", **arrays)
    atomic_write_text(folder / f"{name}.json", clip.tracklets.to_json())
    return {"video": video, "gt": f"{name}.json", "scenario": clip.scenario, "seed": clip.seed}


def _cmd_synth(args) -> int:
    from .generator import make_clip, split_seeds, train_batch

    out = Path(args.output)
    if args.split == "train":
        batch = train_batch(args.step, args.clips, args.tier, texture=not args.flat)
        named = ((f"train-{args.step}-{i}", c) for i, c in enumerate(batch))
        total = len(batch)
    else:
        seeds = split_seeds(args.split, args.clips)
        named = ((str(s), make_clip(s, args.tier, texture=not args.flat)) for s in seeds)  # each made, then written
        total = len(seeds)
    manifest = []
    with cli_progress(args, "synth", "clip") as progress:
        progress(0, total)
        for name, clip in named:
            manifest.append(write_clip(clip, out, name, args.format))
            progress(len(manifest), total)
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(manifest)} SynTrack clips to {out} (manifest.json for `trackdiffusion eval clips`)")
    return 0


def add_synth_parser(sub) -> None:
    """Register ``synth`` on the main parser's subcommands."""
    from .generator import TIERS

    p = sub.add_parser("synth", help="write SynTrack synthetic clips with ground-truth tracklets")
    p.add_argument("output", metavar="OUT", help="folder to write the clips into")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="which seeds (default test)")
    p.add_argument("--tier", choices=tuple(TIERS), default="eval", help="clip size tier (default eval: 64x64, 16 "
                   "frames)")
    p.add_argument("--clips", type=int, default=16, help="number of clips (held-out: the first N seeds; default 16)")
    p.add_argument("--step", type=int, default=0, help="train stream step (with --split train)")
    p.add_argument("--flat", action="store_true", help="no checker texture")
    p.add_argument("--format", choices=("npz", "png", "mp4"), default="npz",
                   help="video container (default npz, lossless; mp4 compression changes colours)")
    add_progress_flag(p)
    p.set_defaults(func=_cmd_synth)
