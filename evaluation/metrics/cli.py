"""``trackdiffusion eval``: controllability metrics from the command line.

    trackdiffusion eval syntrack [--split test] [--tier eval] [--clips 128] [--flat] [--videos DIR]
                                 [--corrupt NAME] [--bootstrap N] [--seed S] [--out RESULT.json] [--no-progress]
    trackdiffusion eval clips MANIFEST.json [--bootstrap N] [--seed S] [--out RESULT.json] [--no-progress]
    trackdiffusion eval compare A.json B.json [--metric TrackAP ...] [--bootstrap N] [--seed S]

``syntrack`` scores videos generated for SynTrack clips (``DIR/<seed>.npy``, ``<seed>.npz`` with a ``video`` array,
``<seed>.mp4`` or a ``<seed>/`` frame folder); without ``--videos`` it scores the clips' own renders (the positive
control), optionally corrupted. ``clips`` scores real videos listed in a manifest
``[{"video": ..., "gt": ..., "pred": ..., "scenario": ...}]`` (``pred``: MOT / YouTube-VIS / our JSON predictions of
your tracker; without it the SynTrack colour-blob tracker runs). ``compare`` gives paired bootstrap CIs of the
differences of two results on the same clips. ``syntrack`` and ``clips`` show progress bars on stderr (clips made,
videos read, clips scored); stdout has only the results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...data.errors import InvalidInputError
from ...data.progress import add_progress_flag, cli_progress

SHOWN = ("TrackAP", "AP50", "AP75", "TrackAP_agnostic", "mIoU", "CTE_px", "CTE_diag", "miss_rate", "IDSW",
         "ObjMC_px", "ObjMC_diag")


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))


def format_result(result: dict) -> str:
    """A plain-text table: overall, per scenario, and CIs when present."""
    rows = [("all", result["metrics"])] + sorted(result.get("per_scenario", {}).items())
    lines = [f"{result['n_clips']} clips, tracker {result['tracker']}, point tracker {result['point_tracker']}",
             "scenario   " + " ".join(f"{k:>10.10}" for k in SHOWN)]
    for name, m in rows:
        lines.append(f"{name:<10} " + " ".join(f"{_fmt(m.get(k)):>10}" for k in SHOWN))
    for k, ci in result.get("ci", {}).items():
        lines.append(f"  {k}: {_fmt(ci['estimate'])} [{_fmt(ci['lo'])}, {_fmt(ci['hi'])}] ({ci['level']:.0%} CI, "
                     f"{ci['n']} resamples)")
    return "\n".join(lines)


def read_video(path: Path) -> np.ndarray:
    """Frames of a ``.npy`` / ``.npz`` (array ``video``) file, a video file or a frame folder, RGB uint8."""
    from ...data.dataset import read_frames
    from ...data.visualize import as_frames

    if path.suffix.lower() == ".npy":
        return as_frames(np.load(path, allow_pickle=False))
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "video" not in data:
                raise InvalidInputError("has no \"video\" array.", source=str(path))
            return as_frames(data["video"])
    return read_frames(path)


def _find_video(folder: Path, seed: int) -> Path:
    for candidate in (folder / f"{seed}.npy", folder / f"{seed}.npz", folder / f"{seed}.mp4", folder / str(seed)):
        if candidate.exists():
            return candidate
    raise InvalidInputError(f"no video for seed {seed}.", fix="name generated videos <seed>.npy / .npz / .mp4 or "
                            "<seed>/ frame folders.", source=str(folder))


def _read_videos(paths: list[Path], args) -> list[np.ndarray]:
    """The videos at ``paths``, with a progress bar (``--no-progress``: none)."""
    videos = []
    with cli_progress(args, "videos", "video") as progress:
        progress(0, len(paths))
        for path in paths:
            videos.append(read_video(path))
            progress(len(videos), len(paths))
    return videos


def _write(result: dict, out) -> None:
    if out:
        from ...data.tracklets import atomic_write_text

        atomic_write_text(out, json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")


def _cmd_syntrack(args) -> int:
    from ..synth import corrupt, make_split
    from .evaluate import evaluate_clips

    with cli_progress(args, "clips", "clip") as progress:
        clips = make_split(args.split, args.tier, args.clips, texture=not args.flat, progress=progress)
    if args.videos:
        folder = Path(args.videos)
        videos = _read_videos([_find_video(folder, c.seed) for c in clips], args)
    else:
        videos = [corrupt(c, args.corrupt) for c in clips]
    with cli_progress(args, "eval", "clip") as progress:
        result = evaluate_clips(videos, clips, bootstrap=args.bootstrap, seed=args.seed, progress=progress)
    result["syntrack"] = {"split": args.split, "tier": list(clips[0].tier), "texture": not args.flat,
                          "videos": args.videos or f"rendered ({args.corrupt})"}
    print(format_result(result))
    _write(result, args.out)
    return 0


def _cmd_clips(args) -> int:
    from ...data.tracklets import load
    from .evaluate import evaluate_clips

    manifest = Path(args.manifest)
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the manifest ({exc}).", source=str(manifest)) from None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "video" in e and "gt" in e
                                                               for e in entries):
        raise InvalidInputError("must be a non-empty list of {\"video\", \"gt\"[, \"pred\", \"scenario\"]}.",
                                source=str(manifest))
    base = manifest.parent
    videos = _read_videos([base / e["video"] for e in entries], args)
    gts = [load(base / e["gt"], width=v.shape[2], height=v.shape[1]) for e, v in zip(entries, videos)]
    has_pred = [("pred" in e) for e in entries]
    if any(has_pred) and not all(has_pred):
        raise InvalidInputError("give \"pred\" for every entry or for none.", source=str(manifest))
    tracker = [str(base / e["pred"]) for e in entries] if all(has_pred) else None
    scenarios = [str(e.get("scenario", "all")) for e in entries]
    with cli_progress(args, "eval", "clip") as progress:
        result = evaluate_clips(videos, gts, tracker, scenarios=scenarios, point_tracker=None,
                                bootstrap=args.bootstrap, seed=args.seed, progress=progress)
    print(format_result(result))
    _write(result, args.out)
    return 0


def _cmd_compare(args) -> int:
    from .evaluate import METRICS, paired_bootstrap

    results = []
    for p in (args.a, args.b):
        try:
            results.append(json.loads(Path(p).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read the result ({exc}).", source=p) from None
    metrics = args.metric or [m for m in METRICS if results[0]["metrics"].get(m) is not None]
    diff = paired_bootstrap(results[0], results[1], metrics, n=args.bootstrap, seed=args.seed)
    print(f"A - B over {results[0]['n_clips']} paired clips ({args.bootstrap} resamples, seed {args.seed}):")
    for m, ci in diff.items():
        verdict = "A > B" if (ci["lo"] or 0) > 0 else "A < B" if (ci["hi"] or 0) < 0 else "not resolved"
        print(f"  {m:<18} {_fmt(ci['estimate']):>9}  [{_fmt(ci['lo'])}, {_fmt(ci['hi'])}]  {verdict}")
    return 0


def add_eval_parser(sub) -> None:
    """Register ``eval`` on the main parser's subcommands."""
    from ..synth import CORRUPTIONS, SPLITS, TIERS

    ev = sub.add_parser("eval", help="controllability metrics: SynTrack, real videos, paired comparisons")
    esub = ev.add_subparsers(dest="command", required=True)

    syn = esub.add_parser("syntrack", help="score videos generated for SynTrack clips (or the clips' own renders)")
    syn.add_argument("--split", choices=tuple(SPLITS), default="test", help="SynTrack split (default test)")
    syn.add_argument("--tier", choices=tuple(TIERS), default="eval", help="clip size tier (default eval: 64x64, 16 "
                     "frames)")
    syn.add_argument("--clips", type=int, default=128, help="the first N clips of the split (default 128)")
    syn.add_argument("--flat", action="store_true", help="clips without the checker texture")
    syn.add_argument("--videos", help="folder of generated videos named by seed")
    syn.add_argument("--corrupt", choices=tuple(CORRUPTIONS), default="gt",
                     help="without --videos: score the renders under this corruption (default gt: the ceiling)")
    _common(syn)
    syn.set_defaults(func=_cmd_syntrack)

    clips = esub.add_parser("clips", help="score real videos listed in a manifest JSON")
    clips.add_argument("manifest", help="JSON list of {\"video\", \"gt\"[, \"pred\", \"scenario\"]}, paths relative to it")
    _common(clips)
    clips.set_defaults(func=_cmd_clips)

    cmp_ = esub.add_parser("compare", help="paired bootstrap CIs of A - B (two results on the same clips)")
    cmp_.add_argument("a", help="a results JSON of `eval` (with per-clip records)")
    cmp_.add_argument("b", help="another, on the same clips: the difference is a - b")
    cmp_.add_argument("--metric", action="append", help="metric to compare (repeatable; default all)")
    cmp_.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    cmp_.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    cmp_.set_defaults(func=_cmd_compare)


def _common(p) -> None:
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for 95%% CIs (e.g. 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--out", help="write the full result (per-clip records included) to this JSON file")
    add_progress_flag(p)
