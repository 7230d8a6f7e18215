"""The ``trackdiffusion`` command line (also ``python -m trackdiffusion``).

    trackdiffusion demo [OUT.mp4] [--clip SEED] [--tracklets FILE] [--image FIRST_FRAME]
    trackdiffusion tracklets convert IN OUT [--from FMT] [--to json|mot|ytvis] [--width W --height H --frames N
                                            --video NAME --box-size PX --strict]
    trackdiffusion tracklets show IN [same input options]
    trackdiffusion tracklets render IN OUT.mp4|OUT.gif|FOLDER [--image PATH] [--fps F] [same input options]
    trackdiffusion dataset FRAMES TRACKLETS OUT --name NAME
    trackdiffusion dataset merge OUT SRC [SRC ...] [--force] [--prefix P] [--link]
    trackdiffusion weights inspect|convert ...
    trackdiffusion run WORKFLOW.json [--comfyui PATH] [--set NODE.INPUT=VALUE ...] [--batch DIR [--shard K/N]]
                       [--out DIR]
    trackdiffusion train {trackdiffusion-svd,trackgo,svd-base} --data syntrack|PATH --out DIR (--base UNET [--vae VAE]
                         [--image-encoder ENC] | --tiny [small|svd-layout]) [--stage 1|2] [--steps N] [--resume] ...
    trackdiffusion synth OUT [--split test|val|train] [--tier eval|ci] [--clips N] [--flat] [--format npz|png|mp4]
    trackdiffusion eval syntrack [--videos DIR] [--corrupt NAME] [--bootstrap N] | eval clips MANIFEST.json |
                        eval compare A.json B.json

Bad input exits with status 2 and one line saying what was wrong and what to do; no output file is left half-written.
"""


from __future__ import annotations

import argparse
import signal
import sys


def build_parser() -> argparse.ArgumentParser:
    """The root parser; each room adds its own subcommands."""
    from .data.cli import add_tracklets_parsers
    from .evaluation.metrics.cli import add_eval_parser
    from .evaluation.synth.cli import add_synth_parser
    from .models.checkpoints.cli import add_weights_parser
    from .models.demo.cli import add_demo_parser
    from .nodes.runner.cli import add_run_parser
    from .training.cli import add_train_parser

    parser = argparse.ArgumentParser(prog="trackdiffusion", description="Tracklet- and trajectory-controlled video "
                                     "generation tools (the ComfyUI nodes' core, from the command line).")
    sub = parser.add_subparsers(dest="group", required=True)
    add_tracklets_parsers(sub)
    add_weights_parser(sub)
    add_demo_parser(sub)
    add_run_parser(sub)
    add_eval_parser(sub)
    add_synth_parser(sub)
    add_train_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data.errors import InvalidInputError

    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # the bare command lists the commands
        return 0
    args = parser.parse_args(argv)
    previous = _sigterm_as_interrupt()
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C or kill: the writers have removed their partial files on the way out
        print("interrupted; no output was left half-written.", file=sys.stderr)
        return 130
    except InvalidInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `trackdiffusion ... | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError) as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt():
    """``kill`` (SIGTERM) stops a command as Ctrl-C does, so every writer's clean-up runs (temporary files removed,
    training names its last checkpoint). Returns the previous handler (None off the main thread)."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return None


if __name__ == "__main__":
    sys.exit(main())
