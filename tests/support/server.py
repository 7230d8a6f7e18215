"""A real ComfyUI server (``main.py``) on a free loopback port, for the tests that go over HTTP or through a browser.

The pack is linked into a throw-away ``--base-directory`` under a folder name that is not ``trackdiffusion`` (so
relative imports are proven), the database lives in memory, nothing is written into the ComfyUI tree, and another
frontend can be served with ``--front-end-root``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

from .comfyui import REPO, subprocess_env

#: the pack's folder name in custom_nodes/: dots, a dash and an underscore, not "trackdiffusion" (the in-process
#: harness uses another name)
PACK_FOLDER_NAME = "TrackDiffusion.pack-dev_2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """A running server: its URL, base directory and log, and JSON requests against it."""

    def __init__(self, url: str, base: Path, log: Path, frontend: str):
        self.url, self.base, self.log, self.frontend = url, base, log, frontend

    def request(self, path: str, body: dict | None = None, timeout: float = 30) -> tuple[int, object]:
        """(HTTP status, decoded JSON or raw bytes) of GET ``path``, or POST of ``body`` as JSON."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw, status, kind = resp.read(), resp.status, resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, (json.loads(raw or b"null") if "json" in kind else raw)

    def get(self, path: str):
        status, reply = self.request(path)
        assert status == 200, (path, status, reply)
        return reply

    def run(self, prompt: dict, timeout: float = 60) -> dict:
        """Queue an API-format prompt and wait for its /history entry (success or error)."""
        status, reply = self.request("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
        assert status == 200, reply
        prompt_id = reply["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, history = self.request(f"/history/{prompt_id}")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry and (entry["status"].get("completed") or entry["status"].get("status_str") == "error"):
                return entry
            time.sleep(0.1)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s; log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@contextmanager
def comfy_server(comfyui: Path, base: Path, *, front_end_root: Path | None = None, frontend: str = "bundled",
                 start_timeout: float = 120):
    """Start ``main.py --cpu`` from ``comfyui`` with this pack in ``base/custom_nodes``; yield a :class:`ComfyServer`;
    stop it on exit."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "input").mkdir(exist_ok=True)
    os.symlink(REPO, base / "custom_nodes" / PACK_FOLDER_NAME, target_is_directory=True)
    port = free_port()
    log = base / "server.log"
    cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory",
           str(base), "--disable-api-nodes", "--database-url", "sqlite:///:memory:", "--log-stdout"]
    if front_end_root is not None:
        cmd += ["--front-end-root", str(front_end_root)]
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=comfyui, env=subprocess_env(), stdout=sink, stderr=subprocess.STDOUT)
    server = ComfyServer(f"http://127.0.0.1:{port}", base, log, frontend)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"ComfyUI exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if server.request("/system_stats", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"ComfyUI did not answer in {start_timeout} s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
