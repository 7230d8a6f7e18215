"""Browser tests: headless Debian Chromium driven by playwright-core (npm), on pages served from 127.0.0.1.

Both are installed by dev/install_browser_test_deps.sh; without them every test here skips with the reason (under
CI=true it fails).
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.comfyui import unavailable

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def browser_skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the browser tests drive Chromium from node)"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM}: run dev/install_browser_test_deps.sh (apt-get install chromium)"
    if not (REPO / "node_modules" / "playwright-core" / "package.json").is_file():
        return "node_modules/playwright-core is missing: run dev/install_browser_test_deps.sh (npm ci)"
    return None


@pytest.fixture(scope="session")
def browser_ready():
    reason = browser_skip_reason()
    if reason:
        unavailable(reason)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@pytest.fixture(scope="session")
def static_server(browser_ready):
    """The repository root over HTTP on 127.0.0.1 (ES modules do not load from file:// URLs)."""
    handler = functools.partial(_QuietHandler, directory=str(REPO))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
