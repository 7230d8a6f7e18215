"""The pack as users install it: registry metadata, the package mapping, no ComfyUI import outside ComfyUI."""

from __future__ import annotations

import re
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
    for key in ("PublisherId", "DisplayName", "Icon", "Banner", "requires-comfyui"):
        assert isinstance(comfy.get(key), str) and comfy[key].strip(), f"[tool.comfy] {key} is empty"
    import trackdiffusion

    assert trackdiffusion.__version__ == project["version"]


# The registry spec's version syntax and classifier values (docs.comfy.org/registry/specifications; comfy-cli's
# config_parser drops a field that does not match them, with only a warning).
VERSION_PART = re.compile(r"^(?:(==|>=|<=|!=|~=|>|<|<>|=)\s*)?\d+\.\d+\.\d+(?:-[a-zA-Z0-9]+)?$")
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}


def test_registry_versions_and_classifiers_are_what_the_registry_reads():
    required = PYPROJECT["tool"]["comfy"]["requires-comfyui"]
    assert all(VERSION_PART.match(part.strip()) for part in required.split(",")), required
    # the range starts at the oldest core issue 19 asks for (0.3.64) and includes the one CI tests (v0.8.0)
    assert ">=0.3.64" in required.replace(" ", "").split(","), required
    classifiers = PYPROJECT["project"]["classifiers"]
    systems = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    accelerators = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert systems and all(s.startswith(OS_PREFIXES) for s in systems), systems
    assert accelerators and set(accelerators) <= ACCELERATORS, accelerators


def _raw_file(url: str) -> Path:
    """The repository file a raw.githubusercontent.com URL of this repository (per [project.urls]) names."""
    repo = PYPROJECT["project"]["urls"]["Repository"].removeprefix("https://github.com/").strip("/")
    prefix = f"https://raw.githubusercontent.com/{repo}/main/"
    assert url.startswith(prefix), f"{url} is not a raw URL of {repo}'s main branch"
    return REPO / url.removeprefix(prefix)


def test_registry_icon_and_banner_are_committed_images_of_the_sizes_the_registry_wants():
    from PIL import Image

    comfy = PYPROJECT["tool"]["comfy"]
    icon, banner = _raw_file(comfy["Icon"]), _raw_file(comfy["Banner"])
    for path in (icon, banner):
        assert path.is_file(), f"{path} is missing (python dev/make_icon.py draws it)"
        if shutil.which("git") and (REPO / ".git").exists():
            tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path.relative_to(REPO))], cwd=REPO,
                                     capture_output=True, check=False)
            assert tracked.returncode == 0, f"{path} is not in git: its raw URL would be a 404"
        with Image.open(path) as image:
            image.verify()  # a valid file of its format, not just the right name
    with Image.open(icon) as image:
        assert image.format == "PNG" and image.width == image.height <= 400, image.size  # square, at most 400 px
    with Image.open(banner) as image:
        assert image.format == "PNG" and abs(image.width / image.height - 21 / 9) < 0.01, image.size  # 21:9


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
