"""How big a node's output may get: anyone who can queue a workflow on a shared ComfyUI server sets every input, and
a Tracklet Editor at 16384 x 16384 x 4096 frames would need terabytes for its masks. Nodes estimate each output
from their inputs and call :func:`check_output` before allocating it; an output over the limit is refused with one
line naming the sizes.

The limit: ``TRACKDIFFUSION_MAX_OUTPUT_GB`` (default 4) per output tensor, read when a node runs, so a machine with
the memory can raise it. The editors' state strings are limited to :data:`MAX_STATE_CHARS`.
"""

from __future__ import annotations

import math
import os

from .errors import InvalidInputError

DEFAULT_MAX_OUTPUT_GB = 4.0
ENV = "TRACKDIFFUSION_MAX_OUTPUT_GB"
MAX_STATE_CHARS = 16 * 2**20  #: the editors' JSON state: far above any drawn one (a 4096-frame, 20-object file is ~5 MB)


def max_output_bytes() -> int:
    try:
        gb = float(os.environ.get(ENV, DEFAULT_MAX_OUTPUT_GB))
    except ValueError:
        gb = DEFAULT_MAX_OUTPUT_GB
    return int(max(gb, 0.0) * 2**30)


def check_output(what: str, shape: tuple[int, ...], itemsize: int, source: str) -> None:
    """Refuse an output of ``shape`` x ``itemsize`` bytes over the limit, before it is allocated."""
    size = math.prod(int(s) for s in shape) * int(itemsize)
    limit = max_output_bytes()
    if size > limit:
        dims = " x ".join(str(int(s)) for s in shape)
        raise InvalidInputError(
            f"the {what} would be {dims} values ({size / 2**30:.1f} GiB), over this pack's limit of "
            f"{limit / 2**30:.1f} GiB per output.",
            fix=f"lower the size, frame count or number of objects (or set {ENV} higher on a machine with the "
                "memory).", source=source)


def check_state(text: str, what: str, source: str) -> None:
    if text is not None and len(text) > MAX_STATE_CHARS:
        raise InvalidInputError(f"the {what} is {len(text):,} characters, over the limit of {MAX_STATE_CHARS:,}.",
                                fix="reset the editor, or load large tracklet files with Load Tracklets.",
                                source=source)
