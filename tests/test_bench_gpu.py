"""dev/benchmarks/bench_gpu.py, the prepared GPU run, at its smallest size on the CPU: every part runs and its results
file has the schema the GPU session will read (provenance, settings, environment, one entry per part with its goals,
a summary); a part that fails is recorded with its error while the others still run, in-process and with each part in
a process of its own; a spent time budget skips parts instead of running them; goals are never judged on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.comfyui import find_comfyui, unavailable

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "dev" / "benchmarks" / "bench_gpu.py"
sys.path.insert(0, str(SCRIPT.parent))

import bench_gpu  # dev/benchmarks/ is not a package; the module imports only the standard library
from test_readme_results import provenance_problems

SMALLEST = ("--tiny", "--warmup", "1", "--repeats", "1", "--sgi2v-steps", "5")


@pytest.fixture(scope="module")
def comfyui():
    if find_comfyui() is None:
        unavailable("ComfyUI not found: the patch parts of bench_gpu.py run on it")


def run(tmp_path: Path, *args: str, timeout: float = 900) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "results.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), *SMALLEST, "--json", str(out), *args], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=REPO, check=False)
    assert out.is_file(), f"no results file (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc, json.loads(out.read_text())


def check_schema(doc: dict, parts: list[str]) -> None:
    assert doc["benchmark"] == "gpu"
    assert provenance_problems(doc) == []
    assert "bench_gpu.py" in doc["provenance"]["command"] and "--tiny" in doc["provenance"]["command"]
    settings = doc["settings"]
    assert settings["tiny"] is True and settings["device"] == "cpu" and settings["dtype"] == "float32"
    assert settings["latent_shape"] == [4, 4, 8, 8] and settings["goals"] == bench_gpu.GOALS
    assert "not a GPU measurement" in settings["measurement"]
    env = doc["environment"]
    assert env["torch"] and env["device_name"] == "cpu" and "cuda" in env
    results = doc["results"]
    assert list(results) == [p for p in bench_gpu.PARTS if p in parts]
    for name, entry in results.items():
        assert entry["status"] in ("ok", "error", "skipped"), name
        assert isinstance(entry["seconds"], float), name
        if entry["status"] == "ok":
            assert isinstance(entry["metrics"], dict) and entry["metrics"], name
            assert set(entry["goals"]) == {"svd_patch": {"time_ratio_over_flop_ratio"},
                                           "trackgo_patch": {"time_overhead_percent"},
                                           "sgi2v": {"time_ratio", "peak_gb"}}.get(name, set()), name
            for g in entry["goals"].values():
                assert {"what", "value", "max", "pass", "note"} <= set(g)
                assert g["pass"] is None  # a CPU dry run judges no goal
                assert isinstance(g["value"], float) and g["max"] > 0
        else:
            assert entry["error"], name
    summary = doc["summary"]
    assert sorted(summary["parts_ok"] + summary["parts_failed"] + summary["parts_skipped"]) == sorted(results)
    assert summary["goals_passed"] == summary["goals_missed"] == []
    assert summary["goals_not_judged"] == [f"{p}.{g}" for p, e in results.items() for g in e.get("goals", {})]


def test_every_part_runs_and_a_failing_one_is_recorded(tmp_path, comfyui):
    proc, doc = run(tmp_path, "--isolate", "off", "--fail", "trackgo_patch")
    check_schema(doc, list(bench_gpu.PARTS))
    results = doc["results"]
    failed = results["trackgo_patch"]
    assert failed["status"] == "error" and "--fail trackgo_patch" in failed["error"]
    assert "RuntimeError" in failed["traceback"]
    ok = {n: e.get("error") for n, e in results.items() if n != "trackgo_patch" and e["status"] != "ok"}
    assert ok == {}, ok  # the parts after the failing one ran too
    assert doc["summary"]["parts_failed"] == ["trackgo_patch"] and proc.returncode == 3

    m = results["svd_patch"]["metrics"]
    assert m["ratio"]["flops"] > 1 and m["patched"]["flops"] > m["unpatched"]["flops"]
    syncs = results["syncs"]["metrics"]["variants"]
    assert set(syncs) == {"unpatched", "trackdiffusion", "trackdiffusion_zero_gates", "trackgo"}
    # the fusers' zero-gate check reads both gates of each of the 16 fusers once per step, open or closed
    assert syncs["trackdiffusion"]["zero_gate_check_reads_per_step"] == 32
    assert syncs["trackdiffusion_zero_gates"]["zero_gate_check_reads_per_step"] == 32
    assert syncs["unpatched"]["zero_gate_check_reads_per_step"] == 0
    attention = results["fp16_trackgo_attention"]["metrics"]["by_tau"]
    assert set(attention) == {"tau=0", "tau=-100", "tau=-10000"}
    assert all(r["finite"] and r["max_rel"] < 0.05 for row in attention.values() for r in row.values())
    loss = results["fp16_sgi2v_loss"]["metrics"]
    assert loss["fp16_loss_scaled"]["finite"] and loss["fp16_loss_scaled"]["cosine"] > 0.9
    sgi2v = results["sgi2v"]["metrics"]
    assert sgi2v["memory_budget_gb"] == 24 and sgi2v["guided"]["guided_steps"] > 0
    for name in ("train_trackdiffusion", "train_trackgo"):
        t = results[name]["metrics"]
        assert t["finite"] and t["optimize_s"] > 0 and t["trainable_parameters"] > 0


def test_parts_in_their_own_processes_keep_going_after_a_failure(tmp_path, comfyui):
    parts = "fp16_trackgo_attention,fp16_sgi2v_loss"
    proc, doc = run(tmp_path, "--isolate", "on", "--parts", parts, "--fail", "fp16_trackgo_attention")
    check_schema(doc, parts.split(","))
    failed, ok = doc["results"]["fp16_trackgo_attention"], doc["results"]["fp16_sgi2v_loss"]
    assert failed["status"] == "error" and "--fail fp16_trackgo_attention" in failed["error"]
    assert ok["status"] == "ok" and ok["returncode"] == 0 and doc["settings"]["isolated_parts"] is True
    assert proc.returncode == 3


def test_a_spent_budget_skips_parts(tmp_path):
    proc, doc = run(tmp_path, "--budget-s", "0", "--parts", "svd_patch,fp16_trackgo_attention")
    assert {e["status"] for e in doc["results"].values()} == {"skipped"}
    assert doc["summary"]["parts_skipped"] == ["svd_patch", "fp16_trackgo_attention"] and proc.returncode == 3


def test_where_results_go():
    assert bench_gpu.results_path(bench_gpu.parse_args([])) == str(SCRIPT.parent / "results_gpu.json")
    assert bench_gpu.results_path(bench_gpu.parse_args(["--tiny"])) == str(
        SCRIPT.parent / "results_gpu_cpu_dryrun.json")
    assert bench_gpu.results_path(bench_gpu.parse_args(["--out", "/o"])) == "/o/results_gpu.json"
    assert bench_gpu.results_path(bench_gpu.parse_args(["--out", "/o", "--json", "x.json"])) == "x.json"
    with pytest.raises(SystemExit):
        bench_gpu.parse_args(["--parts", "svd_patch,nonsense"])


def test_the_documented_device_command_matches_the_script():
    doc = bench_gpu.__doc__
    assert "python3 dev/benchmarks/bench_gpu.py --out $OUT" in doc and 'carry=[".gpu_bundle"]' in doc
    bundle = (SCRIPT.parent / "gpu_bundle.sh").read_text()
    assert "python3 dev/benchmarks/bench_gpu.py --out $OUT" in bundle and ".gpu_bundle/wheels" in bundle
