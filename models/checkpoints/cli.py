"""``trackdiffusion weights ...``: inspect and convert the official TrackDiffusion checkpoints.

    trackdiffusion weights inspect SRC
    trackdiffusion weights convert SRC DST [--kind auto|svd|modelscope] [--dtype fp16|bf16|fp32] [--force]
                                   [--no-progress]

SRC is the official ``diffusion_pytorch_model.safetensors`` (or its ``unet`` folder); DST a ``.safetensors`` file or
a folder. Bad input exits with status 2 and one ``error:`` line; warnings go to stderr as ``warning:`` lines, and so
does the progress bar of ``convert`` (stdout has only the result line).
Torch and safetensors are imported only when a command runs, so registering the parser is cheap.
"""

from __future__ import annotations

import argparse
import sys

from ...data.errors import InvalidInputError
from ...data.progress import add_progress_flag, cli_progress

DTYPES = ("fp16", "bf16", "fp32")


def _run(fn, args) -> int:
    try:
        return fn(args)
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _cmd_inspect(args) -> int:
    from .convert import inspect_checkpoint

    print(inspect_checkpoint(args.src).summary())
    return 0


def _cmd_convert(args) -> int:
    from .convert import convert_checkpoint

    with cli_progress(args, "convert", "tensor") as progress:
        result = convert_checkpoint(args.src, args.dst, kind=args.kind, dtype=args.dtype, overwrite=args.overwrite,
                                    progress=progress)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {result.path} ({result.kind}, {result.num_tensors} tensors, {result.num_bytes / 1e6:.1f} MB, "
          f"base {result.metadata.get('base')}, stage {result.metadata.get('stage', '-')})")
    return 0


def add_weights_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``weights`` command group on an ``add_subparsers()`` object; returns its parser."""
    weights = subparsers.add_parser("weights", help="inspect / convert the official TrackDiffusion checkpoints")
    wsub = weights.add_subparsers(dest="command", required=True)

    ins = wsub.add_parser("inspect", help="what a checkpoint is (reads the safetensors header only)")
    ins.add_argument("src", help="a .safetensors file (or a diffusers unet folder)")
    ins.set_defaults(func=lambda a: _run(_cmd_inspect, a))

    conv = wsub.add_parser("convert", help="official diffusers UNet -> ComfyUI delta (SVD) or adapter (ModelScope)")
    conv.add_argument("src", help="the official diffusion_pytorch_model.safetensors (or its unet folder)")
    conv.add_argument("dst", help="output .safetensors file, or a folder (a default name is used)")
    conv.add_argument("--kind", choices=("auto", "svd", "modelscope"), default="auto",
                      help="what SRC must be (default: detected from its keys)")
    conv.add_argument("--dtype", choices=DTYPES, default="fp16", help="output precision (default fp16)")
    conv.add_argument("--force", "--overwrite", dest="overwrite", action="store_true",
                      help="replace DST if it exists (like every other command's --force; never the input itself)")
    add_progress_flag(conv)
    conv.set_defaults(func=lambda a: _run(_cmd_convert, a))
    return weights


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m trackdiffusion.models.checkpoints.cli weights ...``)."""
    parser = argparse.ArgumentParser(prog="trackdiffusion")
    add_weights_parser(parser.add_subparsers(dest="group", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
