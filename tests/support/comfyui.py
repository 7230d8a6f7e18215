"""The one place that finds ComfyUI for the tests, the benchmarks and ``dev/setup.sh``.

Looked for, in order: ``$COMFYUI_PATH``, ``../ComfyUI`` beside the repository, ``../shared/ComfyUI`` (the read-only
upstream tree CI provides). A folder counts when it has ``main.py``, ``nodes.py`` and ``comfy/``.

Under CI (``CI=true``) a missing piece (ComfyUI, its requirements, node, Chromium, playwright-core) fails the test
instead of skipping it: a green CI must mean the ComfyUI layer ran. Elsewhere it skips with the reason.

``python tests/support/comfyui.py`` prints the path found (nothing, exit 1, when there is none); it needs only the
standard library, so the set-up script can call it before any virtual environment exists.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "tests" / "stubs"
#: modules a ComfyUI install needs that the pack alone does not (checked before ComfyUI is imported)
REQUIREMENT_MODULES = ("aiohttp", "sqlalchemy", "av", "yaml", "transformers", "requests", "comfyui_frontend_package")
HOW_TO_INSTALL = "dev/setup.sh installs them (dev/install_comfyui_deps.sh PYTHON COMFYUI_DIR)"


def is_comfyui(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "nodes.py").is_file() and (path / "comfy").is_dir()


def candidates() -> list[tuple[Path, str]]:
    """Where ComfyUI is looked for, in order, each with where that place comes from (absolute paths)."""
    env = os.environ.get("COMFYUI_PATH")
    out = [(Path(env).expanduser().resolve(), "$COMFYUI_PATH")] if env else []
    out.append(((REPO.parent / "ComfyUI").resolve(), "../ComfyUI"))
    out.append(((REPO.parent / "shared" / "ComfyUI").resolve(), "../shared/ComfyUI"))
    return out


def find_comfyui() -> Path | None:
    """The first ComfyUI checkout of :func:`candidates`, or None. ``$COMFYUI_PATH``, when set, must be one."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        path = Path(env).expanduser().resolve()
        return path if is_comfyui(path) else None
    return next((path for path, _ in candidates() if is_comfyui(path)), None)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Skip the test with ``reason``; under CI, fail it instead (nothing may skip for lack of a real part there)."""
    import pytest

    if in_ci():
        pytest.fail(f"CI=true, and {reason}", pytrace=False)
    pytest.skip(reason)


def missing_requirement(modules=REQUIREMENT_MODULES) -> str | None:
    """The first module of ComfyUI's requirements that this Python cannot import, or None."""
    return next((m for m in modules if importlib.util.find_spec(m) is None), None)


def require_comfyui(modules=REQUIREMENT_MODULES) -> Path:
    """The ComfyUI checkout with its requirements installed, or :func:`unavailable` saying what is missing."""
    path = find_comfyui()
    if path is None:
        looked = ", ".join(f"{p} ({origin})" for p, origin in candidates())
        unavailable(f"real ComfyUI not found (looked in {looked}): set COMFYUI_PATH or place a checkout at "
                    "../ComfyUI")
    module = missing_requirement(modules)
    if module is not None:
        unavailable(f"ComfyUI found at {path}, but its requirements are not installed in {sys.executable} "
                    f"({module} is missing): {HOW_TO_INSTALL}")
    return path


def real_torchvision() -> bool:
    """Whether a real torchvision imports here (not the test stand-in, which in-process tests put on sys.path)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.origin or STUBS in Path(spec.origin).resolve().parents:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (a build not matching torch: RuntimeError "operator torchvision::nms ...")
        return False
    return True


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ComfyUI child process: one thread, no bytecode written into the (read-only) ComfyUI
    tree, and the import-only torchvision stand-in on PYTHONPATH when no real torchvision imports here (test-only:
    ``comfy.sd`` imports torchvision at load time; nothing the pack runs uses it)."""
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    if not real_torchvision():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(STUBS), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def put_stand_in_on_path() -> None:
    """In this process: the torchvision stand-in first on sys.path when no real torchvision imports (test-only)."""
    if not real_torchvision() and str(STUBS) not in sys.path:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.path.insert(0, str(STUBS))


if __name__ == "__main__":
    found = find_comfyui()
    if found is None:
        sys.exit(1)
    print(found)
