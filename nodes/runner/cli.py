"""``trackdiffusion run``: run a ComfyUI workflow headlessly on a local ComfyUI checkout.

    trackdiffusion run WORKFLOW.json [--comfyui PATH] [--set NODE.INPUT=VALUE ...] [--batch DIR [--shard K/N]]
                                     [--out DIR] [--base-directory DIR] [--cpu] [--verbose]

WORKFLOW is UI format (saved from ComfyUI, e.g. example_workflows/*.json) or API format (Export (API)). NODE is a node
id, title or type (unique); VALUE is parsed as JSON when it parses (4, 2.5, true, "text"), else taken as text.
``--batch DIR`` runs once per tracklet file in DIR with every LoadTracklets node's ``source`` set to it, into
``--out/<file stem>/``. ``--shard K/N`` (K counts from 1) runs only every N-th file from the K-th, in name order;
each item lands in ``--out/<file stem>/`` as soon as it finished, so the N shards can share one ``--out``, and a
re-run skips the items already finished. Exit status: 0 done; 2 bad input, an invalid workflow (unknown node types,
missing model files: one line per node) or no ComfyUI; 1 a node failed while running (its id, type and message).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ...data.errors import InvalidInputError
from .progress import ProgressLine
from .results import WorkflowFailed
from .run import run_batch, run_workflow
from .shards import parse_shard


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``run`` on an ``add_subparsers()`` object; returns its parser. Imports nothing heavy."""
    p = subparsers.add_parser("run", help="run a ComfyUI workflow headlessly (UI or API format)",
                              description="Run a ComfyUI workflow (UI or API format) in-process on a local ComfyUI, "
                              "with this pack loaded; outputs are collected into --out.")
    _add_arguments(p)
    p.set_defaults(func=run_command)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workflow", help="workflow JSON (UI format as saved by ComfyUI, or API format)")
    p.add_argument("--comfyui", metavar="PATH", help="ComfyUI checkout (default: $COMFYUI_PATH, else ../ComfyUI)")
    p.add_argument("--set", dest="overrides", metavar="NODE.INPUT=VALUE", action="append", default=[],
                   help="override an input; NODE = id, title or type; VALUE parsed as JSON when possible")
    p.add_argument("--batch", metavar="DIR", help="run once per tracklet file in DIR (sets LoadTracklets.source)")
    p.add_argument("--shard", metavar="K/N", help="with --batch: run only shard K of N, K counting from 1 (1/4 ... "
                   "4/4): the files sorted by name, every N-th from the K-th. Each item is published to "
                   "--out/<stem>/ as it finishes (the shards share --out; it may exist), and a re-run skips the "
                   "finished items (a half-finished one is redone). Use --shard 1/1 for one resumable run.")
    p.add_argument("--out", metavar="DIR", help="collect outputs here (must be new or empty, except with --shard; "
                   "default: leave them in ComfyUI's output folder)")
    p.add_argument("--base-directory", metavar="DIR", help="ComfyUI's --base-directory (models/, input/, output/)")
    p.add_argument("--cpu", action="store_true", default=None, help="run on the CPU even if a GPU is available")
    p.add_argument("--verbose", action="store_true", help="show ComfyUI's log and tracebacks")


def _setup_logging(verbose: bool) -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def _print_result(result, out_dir) -> None:
    label = f"{result.name}: " if result.name else ""
    where = result.out_dir or out_dir
    if result.skipped:
        print(f"{label}finished earlier, skipped ({len(result.files)} file{'s' if len(result.files) != 1 else ''} "
              f"in {where})")
        return
    for w in result.warnings:
        print(f"warning: {label}{w}", file=sys.stderr)
    print(f"{label}{len(result.files)} file{'s' if len(result.files) != 1 else ''}"
          + (f" in {where}" if where else ""))
    for path in result.files:
        print(f"  {path}")


def run_command(args) -> int:
    _setup_logging(args.verbose)
    progress = ProgressLine()
    try:
        kwargs = {"comfyui": args.comfyui, "overrides": args.overrides, "progress": progress,
                  "base_directory": args.base_directory, "cpu": args.cpu, "quiet": not args.verbose}
        shard = getattr(args, "shard", None)
        if shard is not None:  # checked before anything starts
            if not args.batch:
                raise InvalidInputError("--shard splits a --batch folder; there is none.",
                                        fix="add --batch DIR, or drop --shard.")
            shard = parse_shard(shard)
        if args.batch:
            results = run_batch(args.workflow, args.batch, out=args.out, shard=shard, **kwargs)
        else:
            results = [run_workflow(args.workflow, out=args.out, **kwargs)]
    except InvalidInputError as exc:
        progress.finish()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WorkflowFailed as exc:
        progress.finish()
        if args.verbose and exc.traceback:
            print(exc.traceback, file=sys.stderr, end="" if exc.traceback.endswith("\n") else "\n")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for result in results:
        _print_result(result, args.out)
    if shard is not None:
        skipped = sum(r.skipped for r in results)
        print(f"shard {shard}: {len(results)} item{'s' if len(results) != 1 else ''}, {len(results) - skipped} run, "
              f"{skipped} finished earlier")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trackdiffusion run", description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
