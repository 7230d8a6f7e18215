"""The runner without ComfyUI: --set overrides, batch folders, finding ComfyUI, the progress line, and the command's
refusals (exit 2, one error line, nothing started or written)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trackdiffusion.data.errors import InvalidInputError
from trackdiffusion.nodes.runner import comfy_env
from trackdiffusion.nodes.runner.cli import main
from trackdiffusion.nodes.runner.overrides import apply_overrides, parse_value
from trackdiffusion.nodes.runner.progress import ProgressLine
from trackdiffusion.nodes.runner.run import batch_files

INFOS = {"KSampler": {"input": {"required": {"seed": ["INT", {}], "steps": ["INT", {}], "model": ["MODEL"]}}},
         "SaveImage": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {}]}}}}


def prompt() -> dict:
    return {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}, "_meta": {"title": "Sampler v1.5"}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "a"}, "_meta": {"title": "Out"}},
            "10": {"class_type": "SaveImage", "inputs": {"filename_prefix": "b"}, "_meta": {"title": "Out2"}}}


def test_overrides_by_id_title_and_unique_type_with_json_values():
    p = apply_overrides(prompt(), ["3.seed=42", "Sampler v1.5.steps=4", "Out.filename_prefix=x/y",
                                   "10.filename_prefix=\"007\"", "KSampler.model=[1, 2]"], INFOS)
    assert p["3"]["inputs"] == {"seed": 42, "steps": 4, "model": {"__value__": [1, 2]}}
    assert p["9"]["inputs"]["filename_prefix"] == "x/y" and p["10"]["inputs"]["filename_prefix"] == "007"
    assert parse_value("true") is True and parse_value("2.5") == 2.5 and parse_value("a b") == "a b"


@pytest.mark.parametrize(("override", "message"), [
    ("SaveImage.filename_prefix=z", r"2 nodes have the type 'SaveImage' \(ids 9, 10\)"),
    ("3.sed=1", r"node 3 \(KSampler\) has no input 'sed'.*seed, steps, model"),
    ("Nope.x=1", "no node has the id, title or type 'Nope'"),
    ("3seed=1", "is not NODE.INPUT=VALUE"),
    ("3.seed", "is not NODE.INPUT=VALUE"),
])
def test_bad_overrides(override, message):
    with pytest.raises(InvalidInputError, match=message):
        apply_overrides(prompt(), [override], INFOS)


def test_batch_files(tmp_path):
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / ".hidden").write_text("")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in batch_files(tmp_path)] == ["a.txt", "b.json"]
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="would share the output folder a/"):
        batch_files(tmp_path)
    with pytest.raises(InvalidInputError, match="holds no files"):
        batch_files(tmp_path / "sub")


def _no_comfyui_anywhere(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(comfy_env, "PACKAGE_ROOT", tmp_path / "pkg")


def test_find_comfyui_order_and_messages(tmp_path, monkeypatch):
    _no_comfyui_anywhere(tmp_path, monkeypatch)
    with pytest.raises(InvalidInputError, match="ComfyUI not found.*--comfyui PATH.*COMFYUI_PATH"):
        comfy_env.find_comfyui()
    fake = tmp_path / "ComfyUI"
    (fake / "comfy").mkdir(parents=True)
    (fake / "main.py").write_text("")
    (fake / "nodes.py").write_text("")
    assert comfy_env.find_comfyui() == fake.resolve()  # ../ComfyUI beside the package
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path / "elsewhere"))
    with pytest.raises(InvalidInputError, match=r"elsewhere \(from \$COMFYUI_PATH\) is not a ComfyUI checkout"):
        comfy_env.find_comfyui()
    assert comfy_env.find_comfyui(fake) == fake.resolve()  # --comfyui wins over the environment


def _workflow(tmp_path) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
    return path


def test_cli_without_comfyui_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    _no_comfyui_anywhere(tmp_path, monkeypatch)
    assert main([str(_workflow(tmp_path))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ComfyUI not found") and "--comfyui" in err[0]


def test_cli_refuses_bad_input_before_starting_comfyui(tmp_path, monkeypatch, capsys):
    _no_comfyui_anywhere(tmp_path, monkeypatch)
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json: file not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main([str(tmp_path / "bad.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.png").write_text("x")
    assert main([str(_workflow(tmp_path)), "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert main([str(_workflow(tmp_path)), "--batch", str(tmp_path)]) == 2
    assert "needs an output folder" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.png"]


def test_progress_line_on_a_terminal_and_in_a_log():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    p = {"1": {"class_type": "LoadTracklets"}, "8": {"class_type": "KSampler"}}
    for stream in (Tty(), io.StringIO()):
        line = ProgressLine(stream)
        line.start(p, 2, "clip")
        line("execution_cached", {"nodes": ["1"]})
        line("executing", {"node": "8"})
        line("progress_state", {"nodes": {"8": {"state": "running", "value": 3, "max": 25}}})
        line("execution_success", {})
        text = stream.getvalue()
        assert "clip: [2/2] #8 KSampler" in text
        assert ("3/25" in text) == isinstance(stream, Tty)
        assert text.endswith("\r\x1b[K" if isinstance(stream, Tty) else "\n")


def test_a_broken_torchvision_is_named_with_what_to_install_and_never_faked(tmp_path, monkeypatch):
    """The runner uses the user's torchvision: when it cannot import, the run stops with one line saying what to
    install, before ComfyUI starts, and nothing stands in for it."""
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` raises ImportError
    with pytest.raises(InvalidInputError, match=r"needs torchvision.*install the torchvision release built for torch"):
        comfy_env.check_torchvision()
    # A fresh process whose torchvision is the usual broken kind (a build for another torch).
    fake = tmp_path / "ComfyUI"
    (fake / "comfy").mkdir(parents=True)
    (fake / "main.py").write_text("")
    (fake / "nodes.py").write_text("")
    broken = tmp_path / "site" / "torchvision"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    env = {k: v for k, v in os.environ.items() if k not in ("COMFYUI_PATH", "PYTHONPATH")}
    env.update(PYTHONPATH=str(tmp_path / "site"), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "trackdiffusion.nodes.runner", str(_workflow(tmp_path)), "--comfyui",
                           str(fake)], env=env, capture_output=True, text=True, timeout=120, check=False)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "ComfyUI needs torchvision" in err[0] and "operator torchvision::nms" in err[0] and "install" in err[0]
