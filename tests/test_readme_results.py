"""README's measured figures match the committed evidence.

(a) Every results block of README.md (``<!-- results: PATHS render=NAME -->...<!-- /results -->``) equals what
    ``dev/benchmarks/readme_tables.py`` renders from its results files (fix: re-run the benchmark, then
    ``python dev/benchmarks/readme_tables.py --write``).
(b) Every results file (``dev/benchmarks/results_*.json``, ``tests/data/syntrack_ceiling.json`` and any file README names)
    carries provenance (``dev/benchmarks/provenance.py``): the git commit, the command (whose script exists), the date,
    and for each weights file it names a sha256 equal to that file's current one (the file must exist; a file from
    outside the repository must say so, ``"external": true``, and where it comes from). Provenance pieced together
    after the fact says so (``"reconstructed": true`` and how). Figures a benchmark derived from its stored numbers
    (``derived``) must still follow from them.
(c) Measured figures:
    - inside a results block, every number (tokens such as ``0.802``, ``+0.084``, ``x1.29``, ``2.68x``, ``21``;
      dimensions like ``64x64`` and digits inside names like ``AP50`` are not numbers) must be found in the block's
      results files, to the precision printed;
    - outside results blocks (code spans, code blocks and comments aside), a number that looks measured is an error
      unless its paragraph names its source with a bare ``<!-- results: PATHS -->`` comment (the number must then be
      found in those files) or it is listed in ``NOT_MEASURED`` with the reason it is not a measurement here (a
      setting, a goal, a third-party file's size). Looks measured: a number with a unit of time (ms, s, minutes,
      hours), of size (KB, MB, GB, GiB, ...), a ratio (``x1.2``, ``2.6x``), a percentage, a count of parameters
      (``25 M parameters``), identity switches or pixels, or one following a metric name (TrackAP, AP50, AP75, mIoU,
      IDSW, ObjMC, FVD, centre error); also durations in words ("an hour and a half").
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
sys.path.insert(0, str(REPO / "dev" / "benchmarks"))

import readme_tables  # dev/benchmarks/ is not a package: imported from its folder

#: phrases whose numbers are not measurements made here, and why
NOT_MEASURED = {
    "6.95 GB": "the official svd_stage2 UNet's size on Hugging Face: a fact about a third-party file",
    "7 GB file": "the same official file",
    "24 GB card": "a GPU's memory, an example value of a setting",
    "10-40 %": "SG-I2V's band of guided steps, a setting",
    "95 %": "the level of the bootstrap intervals, a setting",
    "64 px, enlarged 4x": "the demo's output size and its upscaling, settings",
    "50 ms budgets": "the budget the slot and trajectory benchmarks are held to, a goal",
    "default 4 GiB per output": "the default of TRACKDIFFUSION_MAX_OUTPUT_GB, a setting",
}

NUMBER = re.compile(r"(?:(?<![\w.])|(?<=x)(?<![\w.]x))(?P<num>[+-]?\d+(?:\.\d+)?)(?:(?=x(?!\w))|(?!\w)(?!\.\d))")
_NUM = r"\d+(?:\.\d+)?"
_LEFT = r"(?<![\w.])"
MEASURED = {
    "time": rf"{_LEFT}{_NUM}\s?(?:ms|s|sec|seconds?|min|minutes?|h|hours?)\b",
    "time in words": r"\b(?:an?|one|two|three|four|five|ten|a few|half an?)\s+(?:hours?|minutes?|seconds?)\b",
    "size": rf"{_LEFT}{_NUM}\s?(?:[KMGT]i?B|bytes)\b",
    "ratio": rf"{_LEFT}x{_NUM}\b|{_LEFT}{_NUM}x(?!\w)",
    "percentage": rf"{_LEFT}{_NUM}\s?%",
    "parameters": rf"{_LEFT}{_NUM}\s?[kMB]\b[- ]?param",
    "count": rf"{_LEFT}{_NUM}\s?(?:identity switches|ID switches|px)\b",
    "metric": r"\b(?:TrackAP|AP50|AP75|mIoU|IDSW|ObjMC(?:-LK)?|FVD|FID|centre error)\s*(?:of|=|:)?\s*"
              r"[+-]?\d+(?:\.\d+)?",
}
MEASURED_RE = re.compile("|".join(f"(?P<{k.replace(' ', '_')}>{v})" for k, v in MEASURED.items()))


# ------------------------------------------------------------------------------------------------------- helpers
def readme() -> str:
    return README.read_text()


def named_results() -> set[str]:
    """The results files README's comments name (outside code)."""
    return {p for m in readme_tables.TAG.finditer(strip_code(readme())) for p in readme_tables.paths_of(m["paths"])}


def results_files() -> list[Path]:
    named = {REPO / p for p in named_results()}
    found = set(REPO.glob("dev/benchmarks/results_*.json")) | {REPO / "tests" / "data" / "syntrack_ceiling.json"} | named
    return sorted(found)


def json_numbers(doc) -> list[float]:
    if isinstance(doc, bool) or doc is None or isinstance(doc, str):
        return []
    if isinstance(doc, (int, float)):
        return [float(doc)]
    values = doc.values() if isinstance(doc, dict) else doc
    return [n for v in values for n in json_numbers(v)]


def number_tokens(text: str) -> list[str]:
    return [m["num"] for m in NUMBER.finditer(text)]


def found_in(token: str, numbers: list[float]) -> bool:
    """Whether ``token`` (as printed: ``0.802``, ``+0.084``, ``21``) is one of ``numbers`` at its precision."""
    decimals = len(token.split(".")[1]) if "." in token else 0
    value, tolerance = float(token), 0.5 * 10 ** -decimals + 1e-9
    return any(abs(n - value) <= tolerance for n in numbers)


def strip_code(text: str) -> str:
    text = re.sub(r"```.*?```", lambda m: "\n" * m[0].count("\n"), text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "``", text)


def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of every ``## `` section; the text before the first is ``""``."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return [("", parts[0])] + [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]


def untagged_figures(text: str) -> list[tuple[str, str, str, list[str]]]:
    """(section, figure, paragraph, sources) of every measured-looking figure outside results blocks that is neither
    in ``NOT_MEASURED`` nor found in the results files its paragraph names (``sources``)."""
    text = readme_tables.BLOCK.sub(" ", strip_code(text))
    out = []
    for heading, body in sections(text):
        for paragraph in re.split(r"\n\s*\n", body):
            sources = [p for m in readme_tables.TAG.finditer(paragraph) if not m["name"]
                       for p in readme_tables.paths_of(m["paths"])]
            plain = re.sub(r"<!--.*?-->", " ", paragraph, flags=re.DOTALL)
            allowed = [(m.start(), m.end()) for phrase in NOT_MEASURED
                       for m in re.finditer(re.escape(phrase), plain)]
            numbers = [n for p in sources for n in json_numbers(readme_tables.load(p))]
            for m in MEASURED_RE.finditer(plain):
                if any(a <= m.start() and m.end() <= b for a, b in allowed):
                    continue
                tokens = number_tokens(m[0])
                if sources and tokens and all(found_in(t, numbers) for t in tokens):
                    continue
                out.append((heading, m[0], " ".join(plain.split())[:160], sources))
    return out


def _script_path(command: str) -> str:
    """The repository path of the script a recorded command ran (``python X.py`` or ``python -m trackdiffusion...``)."""
    words = shlex.split(command)
    words = words[next(i for i, w in enumerate(words) if w == "python" or w.endswith("/python")) + 1:]
    if words[0] != "-m":
        return words[0]
    parts = words[1].split(".")
    parts = parts[1:] if parts[0] == "trackdiffusion" else parts  # the repository root is the package
    return "/".join(parts)


def _script_exists(command: str, commit: str | None = None) -> bool:
    """Whether the command's script exists at ``commit`` (the one the results were measured at: files move later),
    else in the working tree."""
    path = _script_path(command)
    candidates = [path] if path.endswith(".py") else [f"{path}.py", f"{path}/__init__.py"]
    if commit and not _shallow():
        return any(subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}:{c}"], capture_output=True,
                                  check=False).returncode == 0 for c in candidates)
    return any((REPO / c).is_file() for c in candidates)


def _shallow() -> bool:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return True
    return out != "false"


def provenance_problems(doc: dict, check_commit_exists: bool = False) -> list[str]:
    """What is missing or wrong in a results file's provenance (empty when it is complete)."""
    prov = doc.get("provenance")
    if not isinstance(prov, dict):
        return ["no provenance object"]
    bad = []
    if not re.fullmatch(r"[0-9a-f]{40}", str(prov.get("git_commit"))):
        bad.append(f"git_commit is not a commit id: {prov.get('git_commit')!r}")
    elif check_commit_exists and subprocess.run(["git", "-C", str(REPO), "cat-file", "-e",
                                                 prov["git_commit"] + "^{commit}"], capture_output=True,
                                                check=False).returncode:
        bad.append(f"git_commit {prov['git_commit']} is not in this repository's history")
    command = prov.get("command")
    if not isinstance(command, str) or "python" not in command:
        bad.append(f"command is not a python command line: {command!r}")
    elif not (prov.get("reconstructed") and not check_commit_exists) and \
            not _script_exists(command, prov.get("git_commit") if check_commit_exists else None):
        bad.append(f"the command's script does not exist: {command!r}")
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(prov.get("date_utc"))):
        bad.append(f"date_utc is not a UTC timestamp: {prov.get('date_utc')!r}")
    if not isinstance(prov.get("reconstructed"), bool):
        bad.append("reconstructed must be true or false")
    elif prov["reconstructed"]:
        if not prov.get("reconstructed_from"):
            bad.append("reconstructed provenance must say how it was reconstructed (reconstructed_from)")
    else:
        machine = prov.get("machine") or {}
        if not isinstance(prov.get("git_dirty"), bool):
            bad.append("git_dirty must be true or false")
        if not machine.get("cpu_count") or not machine.get("device"):
            bad.append(f"machine lacks cpu_count or device: {machine!r}")
    weights = prov.get("weights")
    if not isinstance(weights, list):
        return [*bad, "weights must be a list (empty when no weights file was read)"]
    for w in weights:
        sha = w.get("sha256", "")
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            bad.append(f"weights {w.get('path')!r}: sha256 {sha!r} is not a sha256")
        elif w.get("external"):
            if not w.get("source"):
                bad.append(f"external weights {w.get('path')!r} must say where they come from (source)")
        else:
            path = REPO / w.get("path", "")
            if not path.is_file():
                bad.append(f"weights file {w.get('path')!r} does not exist")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                bad.append(f"weights file {w.get('path')!r} has changed since the run: its sha256 is not {sha}")
    return bad


# ---------------------------------------------------------------------------------------------------------- (a)
def test_readme_results_blocks_equal_their_rendering():
    text = readme()
    blocks = readme_tables.blocks(text)
    assert len(blocks) >= 10, "README lost its results blocks"
    tags = list(readme_tables.TAG.finditer(strip_code(text)))
    assert len([t for t in tags if t["name"]]) == len(blocks), "a results comment with render= has no closing " \
        "<!-- /results -->, or a block is malformed"
    stale = [f"{b['name']} ({', '.join(b['paths'])}):\n  README:   {b['body']!r}\n  rendered: {b['expected']!r}"
             for b in blocks if b["body"] != b["expected"]]
    assert not stale, ("README's figures differ from the results files; re-run the benchmark and then "
                       "`python dev/benchmarks/readme_tables.py --write`:\n" + "\n".join(stale))


def test_every_named_results_file_exists():
    missing = sorted(p for p in named_results() if not (REPO / p).is_file())
    assert not missing, f"README names results files that do not exist: {missing}"


# ---------------------------------------------------------------------------------------------------------- (b)
@pytest.mark.parametrize("path", results_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_results_file_has_provenance_and_current_weights(path):
    doc = json.loads(path.read_text())
    assert provenance_problems(doc, check_commit_exists=not _shallow()) == []


#: results files whose derived figures come from their own benchmark (its own goal), not bench_controllability's
DERIVED_BY = {"results_tiny_svd_trackdiffusion.json": "bench_tiny_svd_trackdiffusion",
              "results_tiny_svd_sgi2v.json": "bench_tiny_svd_sgi2v"}


def test_derived_figures_follow_from_the_stored_ones():
    import importlib

    checked = 0
    for path in results_files():
        doc = json.loads(path.read_text())
        if "conditions" in doc and "differences" in doc:
            bench = importlib.import_module(DERIVED_BY.get(path.name, "bench_controllability"))
            assert doc.get("derived") == bench.derived(doc), path.name
            checked += 1
    assert checked >= 3


def test_provenance_helper_writes_what_the_checks_need(tmp_path):
    import provenance

    if provenance.git_state()["git_commit"] is None:
        pytest.skip("not a git checkout: the helper has no commit to record")
    weights = REPO / "models" / "demo" / "weights" / "demo_box_i2v.safetensors"
    out = provenance.write_results(tmp_path / "results_x.json", "x", {"n": 1}, {"value": 2.5}, weights=[weights])
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "x" and doc["results"] == {"value": 2.5}
    prov = doc["provenance"]
    assert prov["weights"][0]["path"] == "models/demo/weights/demo_box_i2v.safetensors"
    assert prov["reconstructed"] is False and prov["machine"]["cpu_count"] >= 1
    assert provenance_problems(doc) == [], prov["command"]
    # a weights file that changed afterwards, or is gone, is caught
    doc["provenance"]["weights"][0]["sha256"] = "0" * 64
    assert any("has changed" in p for p in provenance_problems(doc))
    doc["provenance"]["weights"][0]["path"] = "models/demo/weights/nothing.safetensors"
    assert any("does not exist" in p for p in provenance_problems(doc))


# ---------------------------------------------------------------------------------------------------------- (c)
def test_numbers_in_results_blocks_are_in_their_results_files():
    bad = []
    for b in readme_tables.blocks(readme()):
        numbers = [n for p in b["paths"] for n in json_numbers(readme_tables.load(p))]
        body = re.sub(r"<!--.*?-->", " ", b["body"], flags=re.DOTALL)
        bad += [f"{b['name']}: {t}" for t in number_tokens(body) if not found_in(t, numbers)]
    assert not bad, f"numbers in README's results blocks that no results file of the block holds: {bad}"


def test_measured_figures_outside_results_blocks_have_a_source():
    bad = [f"[{heading or 'top'}] {figure!r} in: {paragraph}" for heading, figure, paragraph, _ in
           untagged_figures(readme())]
    assert not bad, ("measured-looking figures with no results file behind them (put them in a results block, "
                     "name their source with <!-- results: PATH --> in the paragraph, or, if they are not "
                     "measurements, add them to NOT_MEASURED with the reason):\n" + "\n".join(bad))


def test_the_checks_catch_what_they_should():
    """The rules themselves: a changed figure, an untagged measurement and a settings phrase."""
    numbers = [0.80236, 16.0, 1.2941, 2.6849]
    assert found_in("0.802", numbers) and found_in("16", numbers) and found_in("1.29", numbers)
    assert not found_in("0.803", numbers) and not found_in("1.28", [1.2941]) and not found_in("17", numbers)
    assert number_tokens("x1.29 / 2.68x at 64x64, AP50 **0.802** [+0.740, -0.874]; SG-I2V 21 min.") == [
        "1.29", "2.68", "0.802", "+0.740", "-0.874", "21"]
    text = "## Speed\n\nOne run takes 3 s, about an hour and a half in all; AP50 0.9, x1.5, 4 M parameters.\n"
    assert [f for _, f, _, _ in untagged_figures(text)] == ["3 s", "an hour", "AP50 0.9", "x1.5", "4 M param"]
    assert untagged_figures("## Set\n\nThe band 10-40 % of a 24 GB card.\n") == []
    assert untagged_figures("## Code\n\n`--minutes 40` and\n```\n3 s\n```\n") == []
