"""The pack as users install it: registry metadata, the package mapping, no ComfyUI import outside ComfyUI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import tomllib

from support.comfyui import unavailable

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SKIP_DIRS = {"tests", "dev", ".venv", ".git", "build", "node_modules"}


def test_requirements_match_project_dependencies():
    lines = [ln.strip() for ln in (REPO / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines == PYPROJECT["project"]["dependencies"]


def test_registry_fields_present():
    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    assert project["name"] == "trackdiffusion"
    assert project["version"].count(".") == 2
    assert project["description"] and project["license"]
    for key in ("PublisherId", "DisplayName", "Icon"):
        assert key in comfy
    import trackdiffusion

    assert trackdiffusion.__version__ == project["version"]


def test_every_subpackage_is_listed_for_setuptools():
    """A new folder with an __init__.py must be added to pyproject's packages, or pip installs would miss it."""
    found = {"trackdiffusion"}
    for init in REPO.rglob("__init__.py"):
        rel = init.parent.relative_to(REPO)
        if rel.parts and (rel.parts[0] in SKIP_DIRS or rel.parts[0].startswith(".")):
            continue
        found.add(".".join(("trackdiffusion", *rel.parts)) if rel.parts else "trackdiffusion")
    assert found == set(PYPROJECT["tool"]["setuptools"]["packages"])


def test_import_outside_comfyui_imports_no_comfyui():
    code = ("import sys, trackdiffusion, trackdiffusion.data.tracklets, trackdiffusion.data.trajectories, "
            "trackdiffusion.data.visualize, trackdiffusion.data.cli\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'nodes')]\n"
            "assert not bad, bad\n"
            "assert trackdiffusion.WEB_DIRECTORY == './js'\n"
            "import inspect; assert inspect.iscoroutinefunction(trackdiffusion.comfy_entrypoint)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def test_module_and_console_script_run():
    out = subprocess.run([sys.executable, "-m", "trackdiffusion", "tracklets", "--help"], capture_output=True,
                         text=True, check=True, cwd="/")
    assert "convert" in out.stdout and "render" in out.stdout
    script = Path(sys.executable).with_name("trackdiffusion")
    if not script.exists():
        unavailable("console script not installed in this environment (pip install -e . makes it)")
    out = subprocess.run([str(script), "tracklets", "show", str(REPO / "example_workflows/input/tracklets/street.json")],
                         capture_output=True, text=True, check=True)
    assert "3 objects" in out.stdout


def _comfy_cli() -> Path:
    comfy = Path(sys.executable).with_name("comfy")
    if not comfy.exists():
        unavailable("comfy-cli is not installed (pip install -e '.[dev]')")
    return comfy


def test_comfy_node_validate_passes():
    out = subprocess.run([str(_comfy_cli()), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
                         cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout + out.stderr


def test_comfy_node_pack_leaves_dev_files_out(tmp_path):
    if shutil.which("git") is None:
        unavailable("git not available")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    # Pack what the working tree has now (tracked or not yet committed), as the registry would after a commit.
    for path in subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.splitlines():
        if (REPO / path).is_file():
            (clone / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / path, clone / path)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    out = subprocess.run([str(_comfy_cli()), "--skip-prompt", "--no-enable-telemetry", "node", "pack"], cwd=clone,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    names = zipfile.ZipFile(clone / "node.zip").namelist()
    assert "__init__.py" in names and "nodes/extension.py" in names and "data/tracklets/model.py" in names
    assert "LICENSE" in names and "requirements.txt" in names and "example_workflows/input/tracklets/street.json" in names
    assert not [n for n in names if n.startswith(("tests/", "dev/", ".ci/"))]


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        unavailable("ruff is not installed (pip install -e '.[dev]')")
    out = subprocess.run([str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout


def test_readme_public_import_paths_import_without_comfyui():
    """README's list of the library's public import paths is true (and pulls in no ComfyUI)."""
    text = (REPO / "README.md").read_text()
    block = text.split("Public import paths of the library", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    code = textwrap.dedent(block) + ("\nimport sys\nbad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', "
                    "'folder_paths')]\nassert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")
