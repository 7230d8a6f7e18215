"""The progress display of ``trackdiffusion train``: a tqdm bar when tqdm is installed, else a plain text line."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """tqdm when installed, else a plain text line (rewritten in place on a terminal, every ~2% otherwise)."""

    def __init__(self, total: int, start: int, enabled: bool, stream: Any = None) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.t0 = time.monotonic()
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, initial=start, unit="step", file=self.stream, dynamic_ncols=True,
                                desc="train")
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = max(1, (total - start) // 50)

    def update(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        shown = {k: f"{v:.4g}" for k, v in values.items() if k in ("loss", "noise", "attention")}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
            return
        done = step - self.start
        rate = (time.monotonic() - self.t0) / max(done, 1)
        eta = int(rate * (self.total - step))
        line = (f"step {step}/{self.total}  " + "  ".join(f"{k} {v}" for k, v in shown.items())
                + f"  lr {values.get('lr', 0):.2e}  {rate:.2f} s/step  eta {eta // 3600}:{eta // 60 % 60:02d}:"
                f"{eta % 60:02d}")
        if self.tty:
            print("\r" + line, end="", file=self.stream, flush=True)
        elif done % self.every == 0 or step == self.total:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.tty:
            print(file=self.stream, flush=True)
