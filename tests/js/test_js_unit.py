"""Runs the editors' JS unit tests (node's built-in runner) inside the pytest suite; skips without node (fails under CI=true)."""

import shutil
import subprocess
from pathlib import Path

from support.comfyui import unavailable

REPO = Path(__file__).resolve().parents[2]


def test_node_unit_tests_pass():
    if shutil.which("node") is None:
        unavailable("node is not installed: the JS unit tests need node >= 20 (node --test tests/js/)")
    proc = subprocess.run(["node", "--test", "tests/js/"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
