"""The example workflows, named by key: the one place the tests turn an example's key (``demo_cpu``,
``svd_trackdiffusion``, ...) into its file. The file name is the card title in ComfyUI's template browser
(``example_workflows/<title>.json`` and ``.jpg``), written for users; the keys and titles are
``dev/make_example_workflows.py``'s TITLES, read from there so the two cannot differ."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .comfyui import REPO

FOLDER = REPO / "example_workflows"


def _generator_titles() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("_make_example_workflows", REPO / "dev" / "make_example_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # cheap: the generator imports only json and pathlib at module level
    return dict(module.TITLES)


#: key -> title (the file name without .json/.jpg)
TITLES = _generator_titles()
_KEYS = {title: key for key, title in TITLES.items()}


def example(key: str) -> Path:
    """The workflow file of the example ``key``."""
    return FOLDER / f"{TITLES[key]}.json"


def key_of(path: Path) -> str:
    """The key of an example workflow file (its stem if the generator does not know it)."""
    return _KEYS.get(Path(path).stem, Path(path).stem)


def all_examples() -> list[Path]:
    """Every workflow in example_workflows/, in a stable order."""
    return sorted(FOLDER.glob("*.json"))
