"""Provenance of a benchmark result, and the one way benchmarks write their results JSON.

Every results file (``dev/benchmarks/results_<what>.json``) has a ``provenance`` object:

- ``git_commit`` (40 hex digits), ``git_dirty`` (uncommitted changes in the tree when it ran) and ``dirty_paths``;
- ``command``: the exact command line, as one shell string that reruns it from the repository root (the threading
  variables that were set come first, e.g. ``OMP_NUM_THREADS=1 python dev/benchmarks/bench_slots.py --json ...``), and
  ``argv``, the raw ``sys.argv``;
- ``date_utc``;
- ``machine``: CPU count (and the CPUs this process may use), CPU model, load average when it started, Python, torch
  and numpy versions, torch's thread count and the device (``cpu`` or the CUDA device's name);
- ``weights``: one ``{"path", "sha256", "bytes"}`` per weights file the run read (``path`` relative to the repository
  when it lies inside it; a file from elsewhere, e.g. official weights on a GPU machine, also has ``"external": true``
  and ``source``);
- ``reconstructed``: false here. Results measured before this helper existed carry ``true`` and say how their
  provenance was pieced together (``reconstructed_from``).

``tests/test_readme_results.py`` checks these fields, and that each in-repository weights file still has the recorded
sha256.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO / "dev" / "benchmarks"
#: environment variables that change what a benchmark measures; recorded in front of the command when set
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "COMFYUI_PATH")


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state() -> dict:
    """The commit checked out and whether the working tree differed from it (ignored files aside)."""
    commit = (_git("rev-parse", "HEAD") or "").strip() or None
    status = _git("status", "--porcelain", "--untracked-files=normal")
    dirty_paths = sorted(line[3:] for line in (status or "").splitlines() if line.strip())
    return {"git_commit": commit, "git_dirty": bool(dirty_paths) if status is not None else None,
            "dirty_paths": dirty_paths}


def _relative(path: str) -> str:
    """``path`` relative to the repository when it lies inside it, else unchanged."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return path


def command_line(argv: list[str] | None = None) -> str:
    """``sys.argv`` as a command that reruns from the repository root: the threading variables that were set,
    ``python``, and the script and path arguments relative to the repository."""
    argv = list(sys.argv if argv is None else argv)
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in ENV_VARS if k in os.environ]
    script = [_relative(os.path.abspath(argv[0]))] if argv and argv[0] not in ("-c", "-m") else argv[:1]
    words = ["python", *script, *(_relative(a) if os.path.isabs(a) else a for a in argv[1:])]
    return " ".join([*env, shlex.join(words)])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    out = {"cpu_count": os.cpu_count(), "cpu_model": _cpu_model(), "python": platform.python_version(),
           "platform": platform.platform()}
    if hasattr(os, "sched_getaffinity"):
        out["cpus_usable"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        out["load_average_1m"] = round(os.getloadavg()[0], 2)
    try:
        import numpy

        out["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_threads"] = torch.get_num_threads()
        out["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    except ImportError:
        out["device"] = "cpu"
    return out


def weights_entry(path: Path | str, source: str | None = None) -> dict:
    """What provenance records about one weights file: its path, sha256 and size."""
    p = Path(path).resolve()
    try:
        entry = {"path": str(p.relative_to(REPO))}
    except ValueError:
        entry = {"path": str(p), "external": True, "source": source or "outside the repository"}
    entry.update(sha256=sha256_file(p), bytes=p.stat().st_size)
    return entry


def provenance(weights=(), started: datetime.datetime | None = None, **extra) -> dict:
    """The provenance object of a run that read the files ``weights`` (paths); ``extra`` adds fields."""
    now = started or datetime.datetime.now(datetime.timezone.utc)
    return {**git_state(), "command": command_line(), "argv": list(sys.argv),
            "date_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(),
            "weights": [weights_entry(w) for w in weights], "reconstructed": False, **extra}


def default_json(name: str) -> Path:
    return RESULTS_DIR / f"results_{name}.json"


def add_json_option(parser, name: str) -> None:
    """``--json PATH`` (default ``dev/benchmarks/results_<name>.json``); ``--json -`` writes nothing."""
    parser.add_argument("--json", default=str(default_json(name)),
                        help=f"results file (default: dev/benchmarks/results_{name}.json; '-' = none)")


def write_results(path: Path | str | None, benchmark: str, settings: dict, results: dict, weights=(),
                  started: datetime.datetime | None = None, **extra) -> Path | None:
    """Write ``{"benchmark", "provenance", "settings", "results", **extra}`` to ``path`` (atomically; nothing when
    ``path`` is None or '-') and return the path."""
    if path is None or str(path) == "-":
        return None
    doc = {"benchmark": benchmark, "provenance": provenance(weights, started), "settings": settings,
           "results": results, **extra}
    return write_json(path, doc)


def write_json(path: Path | str, doc: dict) -> Path:
    """Write ``doc`` to ``path`` atomically (a temporary name, then renamed), indented one space per level."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"wrote {_relative(str(path))}", file=sys.stderr)
    return path
