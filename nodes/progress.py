"""ComfyUI's progress bar for the core's ``progress(done, total)`` callbacks (see ``trackdiffusion.data.progress``).

The bar is ``comfy.utils.ProgressBar`` (it reports to the executing node through ComfyUI's global progress hook),
looked up when a node runs: a ComfyUI without it, or without ``update_absolute``, gets no bar and the work runs the
same.
"""

from __future__ import annotations

from collections.abc import Callable


def comfy_progress() -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback that drives a ``comfy.utils.ProgressBar`` made on its first call (so its
    total is the core's), or None when this ComfyUI has no such bar."""
    try:
        import comfy.utils
    except ImportError:
        return None
    bar_class = getattr(comfy.utils, "ProgressBar", None)
    if not callable(bar_class) or not callable(getattr(bar_class, "update_absolute", None)):
        return None
    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(bar_class(total))
        bars[0].update_absolute(done, total)

    return progress


__all__ = ["comfy_progress"]
