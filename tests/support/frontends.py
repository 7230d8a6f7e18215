"""The ComfyUI frontends the canvas editors are tested on, and where each one's static files are.

``bundled`` is the ``comfyui-frontend-package`` that ComfyUI's requirements put into the virtual environment (the one
``main.py`` serves by default). ``NEWEST`` is the newest release on the package index when this was last bumped; it
is installed OUTSIDE site-packages (so it does not replace the bundled one) by dev/install_browser_test_deps.sh,
which reads the version from here (``python tests/support/frontends.py newest`` prints it, ``... dir`` the install
folder). Bump it here, and only here.

Standard library only: the set-up script runs this file before anything else is imported.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "comfyui-frontend-package"
#: the newest comfyui-frontend-package tested (pip index versions comfyui-frontend-package)
NEWEST = "1.58.1"
#: where the install script puts it: pip install --no-deps --target FRONTENDS_DIR/comfyui-frontend-package-X.Y.Z
FRONTENDS_DIR = REPO / ".venv" / "frontends"


@dataclass(frozen=True)
class Frontend:
    """One frontend to test: its version, and the folder to pass as ``--front-end-root`` (None: the bundled one)."""

    version: str
    root: Path | None
    bundled: bool

    @property
    def missing(self) -> str | None:
        """Why this frontend cannot be served, or None."""
        if self.bundled or (self.root is not None and (self.root / "index.html").is_file()):
            return None
        return (f"{PACKAGE} {self.version} is not installed at {self.root}: run dev/install_browser_test_deps.sh "
                f"(pip install --no-deps --target {install_dir(self.version)} {PACKAGE}=={self.version})")


def install_dir(ver: str) -> Path:
    return FRONTENDS_DIR / f"{PACKAGE}-{ver}"


def static_root(ver: str) -> Path:
    """The ``--front-end-root`` of a frontend installed by the script."""
    return install_dir(ver) / "comfyui_frontend_package" / "static"


def bundled_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "bundled"


def frontends() -> list[Frontend]:
    """The bundled frontend, then the pinned newest (unless they are the same release)."""
    out = [Frontend(bundled_version(), None, True)]
    if NEWEST != out[0].version:
        out.append(Frontend(NEWEST, static_root(NEWEST), False))
    return out


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "newest"
    print({"newest": NEWEST, "dir": str(install_dir(NEWEST)), "root": str(static_root(NEWEST))}[what])
