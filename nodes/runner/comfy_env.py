"""Find a ComfyUI checkout and start it inside this process, with this pack loaded as a custom node.

Where ComfyUI is looked for, in order: the ``--comfyui PATH`` argument, ``$COMFYUI_PATH``, the current folder when it
is a ComfyUI checkout, ``../ComfyUI`` beside the current folder, ``../ComfyUI`` beside this package, and the ComfyUI
this package sits in when it was installed into ``ComfyUI/custom_nodes/``.

Start-up follows ComfyUI's ``main.py`` where it matters for running prompts:

* ``args.cpu`` is set when neither CUDA, MPS nor XPU is available (ComfyUI asserts on CUDA otherwise);
* ``args.base_directory`` only when asked for (otherwise the checkout's own models/, input/, output/ are used),
  and the checkout's ``extra_model_paths.yaml`` is loaded as ``main.py`` does;
* ``utils.extra_config`` is imported before ``nodes`` (``nodes`` puts ``comfy/`` first on ``sys.path``, after which
  ``import utils`` would find ``comfy/utils.py``);
* torchvision must import (``comfy.sd`` imports it at load time); when it does not, the run stops with what to install;
* ``nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False)`` loads comfy_extras and custom nodes;
* sampler progress bars are hooked to the progress registry, as ``main.py`` does.

How this pack gets loaded: when a folder in one of ComfyUI's ``custom_nodes`` paths already is this package (same
real path), or is another copy of it (a ``pyproject.toml`` naming the project ``trackdiffusion``), that one loads as
usual. Otherwise a temporary folder holding one symlink, ``ComfyUI-TrackDiffusion -> <this package>``, is added with
``folder_paths.add_model_folder_path("custom_nodes", ...)``, so ComfyUI's own custom-node loader imports it exactly
as it imports a user's install (and the user's ComfyUI folders are left untouched). Where symlinks cannot be made
(Windows without developer mode) the package folder is passed to ``nodes.load_custom_node`` directly instead.

ComfyUI keeps its state in module globals, so it can be started once per process; a later call with the same path
returns the same :class:`ComfyRuntime`. If ComfyUI is already loaded in this process (a test harness, or ComfyUI
itself), it is reused and this pack is loaded into it if it is missing.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ...data.errors import InvalidInputError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
PROJECT_NAME = "trackdiffusion"
LINK_NAME = "ComfyUI-TrackDiffusion"
MARKER_NODE = "LoadTracklets"
HOW_TO_POINT = ("pass --comfyui PATH (the folder with main.py), or set COMFYUI_PATH; ComfyUI's requirements must be "
                "installed in this Python environment.")

_RUNTIME: ComfyRuntime | None = None


def is_comfyui(path: Path) -> bool:
    return (path / "main.py").is_file() and (path / "nodes.py").is_file() and (path / "comfy").is_dir()


def candidates(explicit: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The places looked at, in order, with where each came from."""
    out = []
    if explicit:
        return [(Path(explicit).expanduser(), "--comfyui")]
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return [(Path(env).expanduser(), "$COMFYUI_PATH")]
    cwd = Path.cwd()
    out.append((cwd, "the current folder"))
    out.append((cwd.parent / "ComfyUI", "../ComfyUI beside the current folder"))
    out.append((PACKAGE_ROOT.parent / "ComfyUI", "../ComfyUI beside the trackdiffusion package"))
    if PACKAGE_ROOT.parent.name == "custom_nodes":
        out.append((PACKAGE_ROOT.parent.parent, "the ComfyUI this package is installed in"))
    return out


def find_comfyui(explicit: str | os.PathLike | None = None) -> Path:
    """The ComfyUI checkout to use; InvalidInputError saying how to point at one when there is none."""
    looked = candidates(explicit)
    for path, _origin in looked:
        if is_comfyui(path):
            return path.resolve()
    if explicit or os.environ.get("COMFYUI_PATH"):
        path, origin = looked[0]
        raise InvalidInputError(f"{path} (from {origin}) is not a ComfyUI checkout: main.py, nodes.py and comfy/ "
                                "are missing.", fix=HOW_TO_POINT)
    places = list(dict.fromkeys(str(p.resolve()) for p, _ in looked))  # each place once
    raise InvalidInputError("ComfyUI not found (looked in " + ", ".join(places) + ").", fix=HOW_TO_POINT)


# ------------------------------------------------------------------------------------------------------ torchvision


def check_torchvision() -> None:
    """ComfyUI imports torchvision when it loads (``comfy.sd``): make sure the user's real one imports, or say what to
    install. The pack never puts anything in its place."""
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (ImportError, or RuntimeError "operator torchvision::nms does not exist")
        import torch

        raise InvalidInputError(
            f"ComfyUI needs torchvision, and it does not import in this Python ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no message'}).",
            fix=f"install the torchvision release built for torch {torch.__version__} into {sys.executable}, from the "
                "same package index your torch came from (pytorch.org lists which torchvision goes with which torch).") from None


# ------------------------------------------------------------------------------------------------------ the runtime


@dataclass
class ComfyRuntime:
    """ComfyUI, started in this process: its ``nodes``, ``execution`` and ``folder_paths`` modules."""

    path: Path
    nodes: types.ModuleType
    execution: types.ModuleType
    folder_paths: types.ModuleType
    pack_dir: Path | None = None
    how_loaded: str = ""
    temp_dirs: list[Path] = field(default_factory=list)

    def node_info(self, node_type: str) -> dict | None:
        """What ``GET /object_info/<node_type>`` returns, or None for an unknown type."""
        cls = self.nodes.NODE_CLASS_MAPPINGS.get(node_type)
        if cls is None:
            return None
        if hasattr(cls, "GET_NODE_INFO_V1"):
            return cls.GET_NODE_INFO_V1()
        inputs = cls.INPUT_TYPES()
        return {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                "output": list(cls.RETURN_TYPES), "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
                "name": node_type, "display_name": self.nodes.NODE_DISPLAY_NAME_MAPPINGS.get(node_type, node_type)}

    def node_infos(self) -> NodeInfos:
        return NodeInfos(self)

    def is_output_node(self, node_type: str) -> bool:
        cls = self.nodes.NODE_CLASS_MAPPINGS.get(node_type)
        return bool(cls is not None and getattr(cls, "OUTPUT_NODE", False) is True)


class NodeInfos(dict):
    """A lazy ``{node type: info}`` over the running ComfyUI (computed on first lookup, like /object_info)."""

    def __init__(self, runtime: ComfyRuntime):
        super().__init__()
        self._runtime = runtime

    def __missing__(self, key):
        info = self._runtime.node_info(key)
        if info is None:
            raise KeyError(key)
        self[key] = info
        return info

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        return self.get(key) is not None


def _no_accelerator() -> bool:
    import torch

    if torch.cuda.is_available():
        return False
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return False
    xpu = getattr(torch, "xpu", None)
    return not (xpu is not None and xpu.is_available())


def _is_this_pack(folder: Path) -> bool:
    try:
        if folder.resolve() == PACKAGE_ROOT:
            return True
        pyproject = folder / "pyproject.toml"
        if (folder / "__init__.py").is_file() and pyproject.is_file():
            import tomllib

            return tomllib.loads(pyproject.read_text()).get("project", {}).get("name") == PROJECT_NAME
    except (OSError, ValueError):
        return False
    return False


def _installed_copy(folder_paths) -> Path | None:
    for base in folder_paths.get_folder_paths("custom_nodes"):
        try:
            entries = sorted(Path(base).iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir() and not entry.name.endswith(".disabled") and _is_this_pack(entry):
                return entry
    return None


@contextmanager
def _log_level(level: int | None):
    root = logging.getLogger()
    old = root.level
    if level is not None:
        root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(old)


def _remove_temp(path: Path) -> None:
    link = path / "custom_nodes" / LINK_NAME
    if link.is_symlink():
        link.unlink()
    shutil.rmtree(path, ignore_errors=True)


def _progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
    """Sampler progress bars -> ComfyUI's progress registry (what main.py's hook does, minus the server)."""
    import comfy.model_management
    from comfy_execution.progress import get_progress_state
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    if node_id is None and context is not None:
        node_id = context.node_id
    comfy.model_management.throw_exception_if_processing_interrupted()
    if node_id is not None:
        get_progress_state().update_progress(node_id, value, total, None)


def start_comfyui(path: str | os.PathLike | None = None, *, base_directory: str | os.PathLike | None = None,
                  cpu: bool | None = None, quiet: bool = True) -> ComfyRuntime:
    """Start ComfyUI in this process (once) with this pack loaded; see the module docstring.

    Args:
        path: the ComfyUI checkout; None = :func:`find_comfyui`'s search.
        base_directory: ComfyUI's ``--base-directory`` (models/, input/, output/, custom_nodes/ under it).
        cpu: force (True) or forbid (False) ComfyUI's ``--cpu``; None = when no accelerator is available.
        quiet: hide ComfyUI's start-up warnings (node modules of other features that fail to import).
    """
    global _RUNTIME
    comfy_path = find_comfyui(path)
    if _RUNTIME is not None:
        if _RUNTIME.path != comfy_path:
            raise InvalidInputError(f"ComfyUI from {_RUNTIME.path} is already running in this process; cannot "
                                    f"start the one at {comfy_path} too.", fix="run one ComfyUI per process.")
        return _RUNTIME
    for module in ("aiohttp", "sqlalchemy", "yaml"):
        if importlib.util.find_spec(module) is None:
            raise InvalidInputError(f"ComfyUI found at {comfy_path}, but its requirements are not installed in this "
                                    f"Python ({module} is missing).", fix=f"run: {sys.executable} -m pip install -r "
                                    f"{comfy_path / 'requirements.txt'}")
    existing = sys.modules.get("nodes")
    if existing is not None and hasattr(existing, "NODE_CLASS_MAPPINGS"):
        _RUNTIME = _adopt_running(comfy_path, existing)
        return _RUNTIME

    check_torchvision()
    if str(comfy_path) not in sys.path:
        sys.path.insert(0, str(comfy_path))
    with _log_level(logging.ERROR if quiet else None):
        from comfy.cli_args import args

        args.cpu = _no_accelerator() if cpu is None else cpu
        if base_directory is not None:
            base = Path(base_directory).resolve()
            # ComfyUI 0.8.0 stops with FileNotFoundError on a base directory without custom_nodes/ (a new one)
            (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
            args.base_directory = str(base)
        args.disable_api_nodes = True
        import folder_paths
        import utils.extra_config  # must precede `import nodes`, which shadows `utils` with comfy/utils.py

        yaml_config = comfy_path / "extra_model_paths.yaml"
        if yaml_config.is_file():
            utils.extra_config.load_extra_path_config(str(yaml_config))

        temp_dirs: list[Path] = []
        installed = _installed_copy(folder_paths)
        link_dir = None
        if installed is not None:
            how = f"already installed as custom node {installed}"
        else:
            temp = Path(tempfile.mkdtemp(prefix="trackdiffusion-runner-"))
            temp_dirs.append(temp)
            atexit.register(_remove_temp, temp)
            (temp / "custom_nodes").mkdir()
            try:
                os.symlink(PACKAGE_ROOT, temp / "custom_nodes" / LINK_NAME, target_is_directory=True)
                folder_paths.add_model_folder_path("custom_nodes", str(temp / "custom_nodes"))
                link_dir = temp / "custom_nodes" / LINK_NAME
                how = f"linked as {link_dir} (a custom_nodes folder added for this run)"
            except OSError:
                how = f"loaded from {PACKAGE_ROOT} with nodes.load_custom_node (symlinks not permitted here)"

        import comfy.utils
        import execution

        import nodes

        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        if installed is None and link_dir is None:
            asyncio.run(nodes.load_custom_node(str(PACKAGE_ROOT)))
        comfy.utils.set_progress_bar_global_hook(_progress_hook)
    if MARKER_NODE not in nodes.NODE_CLASS_MAPPINGS:
        raise InvalidInputError(f"ComfyUI at {comfy_path} started, but did not load this pack's nodes ({how}).",
                                fix="run again with --verbose to see the import error ComfyUI logged.")
    _RUNTIME = ComfyRuntime(comfy_path, nodes, execution, folder_paths, pack_dir=installed or link_dir or PACKAGE_ROOT,
                            how_loaded=how, temp_dirs=temp_dirs)
    logging.getLogger(__name__).info("ComfyUI %s (%s); this pack %s", comfy_path,
                                     "cpu" if args.cpu else "accelerator", how)
    return _RUNTIME


def _adopt_running(comfy_path: Path, nodes) -> ComfyRuntime:
    """ComfyUI is already imported in this process (a test harness, or ComfyUI itself): reuse it."""
    running = Path(nodes.__file__).resolve().parent
    if running != comfy_path:
        raise InvalidInputError(f"ComfyUI from {running} is already loaded in this process; cannot use the one at "
                                f"{comfy_path}.", fix="point --comfyui / COMFYUI_PATH at the loaded one.")
    import comfy.utils
    import execution
    import folder_paths

    if comfy.utils.PROGRESS_BAR_HOOK is None:
        comfy.utils.set_progress_bar_global_hook(_progress_hook)
    how = "already loaded in this process"
    if MARKER_NODE not in nodes.NODE_CLASS_MAPPINGS:
        asyncio.run(nodes.load_custom_node(str(PACKAGE_ROOT)))
        how = f"loaded from {PACKAGE_ROOT} into the running ComfyUI with nodes.load_custom_node"
        if MARKER_NODE not in nodes.NODE_CLASS_MAPPINGS:
            raise InvalidInputError("the running ComfyUI did not load this pack's nodes.",
                                    fix="see the import error ComfyUI logged above.")
    return ComfyRuntime(comfy_path, nodes, execution, folder_paths, pack_dir=None, how_loaded=how)


def current_runtime() -> ComfyRuntime | None:
    return _RUNTIME
