"""The progress display of ``trackdiffusion train``: the command line's :class:`~trackdiffusion.data.progress.Progress`
(a tqdm bar when tqdm is installed, else a plain text line) with the training values (loss, lr) beside the step."""

from __future__ import annotations

from typing import Any

from ..data.progress import Progress as _Progress


class Progress(_Progress):
    """``Progress(total, start, enabled)``: shown from the start; ``update(step, values)`` after each step shows the
    loss terms (and, on the plain line, the learning rate)."""

    SHOWN = ("loss", "noise", "attention")

    def __init__(self, total: int, start: int, enabled: bool, stream: Any = None) -> None:
        super().__init__(total, start, enabled, stream, desc="train", unit="step")
        self._open()  # the first step may take long (model loading is done, compiling is not): show the bar now

    def _postfix(self) -> dict[str, str]:
        return {k: f"{v:.4g}" for k, v in self.values.items() if k in self.SHOWN}

    def _line(self, done: int) -> str:
        rate, eta = self._timing(done)
        return (f"step {done}/{self.total}  " + "  ".join(f"{k} {v}" for k, v in self._postfix().items())
                + f"  lr {self.values.get('lr', 0):.2e}  {rate:.2f} s/step  eta {eta // 3600}:{eta // 60 % 60:02d}:"
                f"{eta % 60:02d}")


__all__ = ["Progress"]
