"""The layering, checked on every module's syntax tree (imports inside functions included): only the ComfyUI layer
(``nodes/``) imports ComfyUI or the ComfyUI layer itself. The core (``data/``, ``models/``, ``training/``,
``evaluation/``) stays importable and testable without ComfyUI; the two root files are the only doors into the
ComfyUI layer: ``__init__.py`` registers the extension and ``__main__.py`` offers ``trackdiffusion run``."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMFY_LAYER = "nodes"
#: top-level modules of a ComfyUI install
COMFYUI_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "comfy_config", "folder_paths",
                   "execution", "server", "nodes", "latent_preview", "node_helpers", "app", "utils"}
#: root file -> the ComfyUI-layer modules it may import (its entry points)
DOORS = {"__init__.py": {"nodes.extension"}, "__main__.py": {"nodes.runner.cli"}}
CORE_ROOMS = ("data", "models", "training", "evaluation")
NOT_PACKAGE = {"tests", "dev", ".venv", "node_modules", "js", "example_workflows", "docs", ".git", "build"}


def package_modules() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.py") if p.relative_to(REPO).parts[0] not in NOT_PACKAGE
                  and not any(part.endswith(".egg-info") for part in p.relative_to(REPO).parts))


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, package-relative or absolute module name, is it the pack's own) of every import in ``path``: import
    statements (inside functions too) and ``importlib.import_module`` / ``__import__`` calls with a literal name."""
    rel = path.relative_to(REPO)
    package = list(rel.parts[:-1])
    out = []

    def absolute(line: int, name: str, names=()):
        own = name == "trackdiffusion" or name.startswith("trackdiffusion.")
        base = name.removeprefix("trackdiffusion").lstrip(".") if own else name
        if own and not base and names:  # from trackdiffusion import nodes: each name may be a room
            out.extend((line, n, True) for n in names)
        else:
            out.append((line, base, own))

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                absolute(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: max(len(package) - (node.level - 1), 0)]
                name = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if node.module is None:  # from . import x, y: each name may be a module
                    out += [(node.lineno, f"{name}.{a.name}" if name else a.name, True) for a in node.names]
                    continue
                out.append((node.lineno, name, True))
            else:
                absolute(node.lineno, node.module or "", [a.name for a in node.names])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and not node.args[0].value.startswith("."):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in ("import_module", "__import__"):
                absolute(node.lineno, node.args[0].value)
    return out


def violations(path: Path) -> list[str]:
    rel = path.relative_to(REPO)
    if rel.parts[0] == COMFY_LAYER:
        return []
    bad = []
    for line, name, own in imports(path):
        top = name.split(".")[0]
        if own and top == COMFY_LAYER and not any(name == d or name.startswith(d + ".")
                                                  for d in DOORS.get(str(rel), ())):
            bad.append(f"{rel}:{line} imports the ComfyUI layer ({name})")
        elif not own and top in COMFYUI_MODULES:
            bad.append(f"{rel}:{line} imports ComfyUI ({name})")
    return bad


def test_only_the_comfyui_layer_imports_comfyui():
    modules = package_modules()
    assert len(modules) > 60 and any(p.parts[-2] == "patches" for p in modules)
    bad = [v for p in modules for v in violations(p)]
    assert not bad, "\n".join(bad)


def test_the_top_level_is_the_architecture():
    """Registration and the command line at the root, the ComfyUI layer, the core rooms, and nothing loose."""
    loose = sorted(p.name for p in REPO.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]
    packages = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted([COMFY_LAYER, *CORE_ROOMS])


@pytest.mark.parametrize(("source", "expected"), [
    ("import comfy.sd\n", "imports ComfyUI (comfy.sd)"),
    ("def f():\n    from folder_paths import get_full_path\n", "imports ComfyUI (folder_paths)"),
    ("from ...nodes.patches.svd import apply_trackdiffusion_svd\n", "imports the ComfyUI layer (nodes.patches.svd)"),
    ("from trackdiffusion.nodes import runner\n", "imports the ComfyUI layer (nodes)"),
    ("from ... import nodes\n", "imports the ComfyUI layer (nodes)"),
    ("from trackdiffusion import data, nodes\n", "imports the ComfyUI layer (nodes)"),
    ("import importlib\nm = importlib.import_module('comfy.sd')\n", "imports ComfyUI (comfy.sd)"),
    ("m = __import__('folder_paths')\n", "imports ComfyUI (folder_paths)"),
    ("from .. import svd\nfrom ..fuser import GatedSelfAttentionDense\nimport torch\n", None),
])
def test_the_check_catches_what_it_should(tmp_path, monkeypatch, source, expected):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    path = tmp_path / "models" / "svd" / "bad.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert [v.split(" ", 1)[1] for v in violations(path)] == ([expected] if expected else [])
