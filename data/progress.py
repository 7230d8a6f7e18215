"""The command line's progress display, and the callback convention of the core's long-running functions.

The core functions that take noticeable time (converting a checkpoint, writing a dataset sequence, merging datasets,
making and scoring SynTrack clips, SG-I2V's latent optimisation) accept ``progress``: ``None`` or a callable
``progress(done, total)``, called with ``done`` rising from 0 (the work has started) to ``total`` (it is finished).
The callback knows nothing of who shows it: :class:`Progress` draws it on the command line (stderr), the ComfyUI layer
drives ComfyUI's progress bar with it (``nodes/progress.py``).

:class:`Progress` is a tqdm bar when tqdm is installed, else a plain text line (rewritten in place on a terminal, one
line every ~2% otherwise). It writes to stderr only: a command's stdout stays what it was, for scripts that parse it.
``trackdiffusion train`` uses it through :mod:`trackdiffusion.training.progress` (its loss/lr line).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

#: the callback the core's long-running functions accept: ``progress(done, total)``
ProgressCallback = Callable[[int, int], None]


def report(progress: ProgressCallback | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when there is a callback (the core's one-liner)."""
    if progress is not None:
        progress(done, total)


class Progress:
    """A progress display on ``stream`` (default stderr): tqdm when installed, else a plain text line.

    Use it as the core's callback (``progress(done, total)``) or call :meth:`update` with the absolute position.
    Nothing is drawn before the first update, so a command that fails before its work starts prints only its error;
    ``enabled=False`` (``--no-progress``) draws nothing at all. :meth:`close` (or leaving a ``with`` block) ends the
    line.
    """

    def __init__(self, total: int = 0, start: int = 0, enabled: bool = True, stream: Any = None, *,
                 desc: str = "", unit: str = "it") -> None:
        self.total, self.start, self.enabled = int(total), int(start), bool(enabled)
        self.desc, self.unit = desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.bar = None
        self.opened = False
        self.values: dict[str, Any] = {}
        self.last_printed: int | None = None
        self.t0 = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    # ---- drawing ---------------------------------------------------------------------------------------------------
    def _open(self) -> None:
        if self.opened or not self.enabled:
            return
        self.opened = True
        self.t0 = time.monotonic()
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=self.total, initial=self.start, unit=self.unit, file=self.stream, dynamic_ncols=True,
                        desc=self.desc or None)

    @property
    def every(self) -> int:
        """Without a terminal, the plain line is printed every this many units (about 2% of the work)."""
        return max(1, (self.total - self.start) // 50)

    def _postfix(self) -> dict[str, str]:
        """What follows the count (the tqdm postfix): the values given to :meth:`update`."""
        return {k: f"{v:.4g}" if isinstance(v, float) else str(v) for k, v in self.values.items()}

    def _timing(self, done: int) -> tuple[float, int]:
        """Seconds per unit so far, and the estimated seconds left."""
        rate = (time.monotonic() - self.t0) / max(done - self.start, 1)
        return rate, int(rate * max(self.total - done, 0))

    def _line(self, done: int) -> str:
        """The plain text line for position ``done`` (the timing once there is one)."""
        shown = "".join(f"  {k} {v}" for k, v in self._postfix().items())
        line = f"{self.desc}: " if self.desc else ""
        line += f"{done}/{self.total} {self.unit}{shown}"
        if done > self.start:
            rate, eta = self._timing(done)
            line += f"  {rate:.2f} s/{self.unit}  eta {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}"
        return line

    def update(self, done: int, values: dict[str, Any] | None = None, total: int | None = None) -> None:
        """Show position ``done`` (absolute, of ``total`` when given, else of the total so far), with ``values``
        after the count."""
        if not self.enabled:
            return
        if total is not None:
            self.total = int(total)
        self.values = dict(values or {})
        self._open()
        if self.bar is not None:
            if self.bar.total != self.total:
                self.bar.total = self.total
            if self.values:
                self.bar.set_postfix(self._postfix(), refresh=False)
            self.bar.update(int(done) - self.bar.n)
            return
        done = int(done)
        if self.tty:
            print("\r" + self._line(done), end="", file=self.stream, flush=True)
        elif done != self.last_printed and ((done - self.start) % self.every == 0 or done >= self.total):
            print(self._line(done), file=self.stream, flush=True)
        self.last_printed = done

    def __call__(self, done: int, total: int) -> None:
        """The core's callback: ``progress(done, total)``."""
        self.update(done, total=total)

    def close(self) -> None:
        """End the display (the bar stays on screen; the plain line gets its newline). Safe to call twice."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.opened and self.tty:
            print(file=self.stream, flush=True)
        self.opened = False  # a later update starts a new display

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_progress_flag(parser) -> None:
    """``--no-progress`` (every command with a progress display has it; ``args.progress`` is the switch)."""
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar on stderr (stdout is the same either way)")


def cli_progress(args, desc: str, unit: str = "it") -> Progress:
    """The progress display of a command whose parser has :func:`add_progress_flag` (on unless --no-progress)."""
    return Progress(enabled=getattr(args, "progress", True), desc=desc, unit=unit)


__all__ = ["Progress", "ProgressCallback", "add_progress_flag", "cli_progress", "report"]
