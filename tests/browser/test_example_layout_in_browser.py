"""The example workflows in the real ComfyUI frontend (the bundled one, served by a real server with this pack) in
headless Chromium, in the classic canvas and in Nodes 2.0: every node's rectangle, title bar included, read from the
page when the workflow has loaded and once every output shows its result. The CPU demo runs for real (its embedded
model, seconds on the CPU); the other examples need models this machine has not, so the test hands the frontend the
results a run reports (an "executed" message naming a file of the run's picture size in the output folder).

Nothing may overlap, and every rectangle must be where tests/support/layout.py says: that model of the frontend's
growth rules is what tests/test_example_layout.py checks every example with. A last case shrinks the picture nodes so
that they must grow, and checks the rules themselves."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from support import layout
from support.comfyui import require_comfyui
from support.examples import all_examples, example, key_of
from support.server import comfy_server

HERE = Path(__file__).resolve().parent
RUN_FOR_REAL = {"demo_cpu"}
TOLERANCE = 1.5  # graph units: the page's rectangles are read through the canvas transform, rounded to 0.1


def _picture(path: Path, size: tuple[int, int]) -> None:
    """A two-frame animated WEBP (or a PNG) of ``size`` pixels."""
    first, second = Image.new("RGB", size, (200, 60, 60)), Image.new("RGB", size, (60, 60, 200))
    if path.suffix == ".webp":
        first.save(path, save_all=True, append_images=[second], duration=125, loop=0)
    else:
        first.save(path)


def _outputs(workflow: dict) -> dict:
    """The "executed" output of each Save Animated WEBP: a file of its run's frame size."""
    return {str(n["id"]): {"images": [{"filename": f"{n['widgets_values'][0]}.webp", "subfolder": "",
                                       "type": "output"}], "animated": [True]}
            for n in workflow["nodes"] if n["type"] == "SaveAnimatedWEBP"}


def _rule_workflow() -> dict:
    """The CPU demo with its Save Animated WEBPs back at 320 x 160 (one gets a 16:9 result) and two Load Images at
    320 x 100 (a 16:9 and a square picture): each must grow to hold its picture."""
    workflow = copy.deepcopy(json.loads(example("demo_cpu").read_text()))
    for node in workflow["nodes"]:
        if node["type"] == "SaveAnimatedWEBP":
            node["size"] = [320, 160]
    (load,) = [n for n in json.loads(example("tiny_svd_trackdiffusion_cpu").read_text())["nodes"]
               if n["type"] == "LoadImage"]
    for i, file in enumerate(("example.png", "tiny_svd_first_frame.png")):
        node = copy.deepcopy(load)
        node.update(id=100 + i, pos=[1200 + 400 * i, 0], size=[320, 100], widgets_values=[file, "image"])
        for output in node["outputs"]:
            output["links"] = []
        workflow["nodes"].append(node)
    workflow["last_node_id"] = 101
    return workflow


RULE_OUTPUTS = {"2": "trackdiffusion_demo", "4": "trackgo"}  # node id -> the prefix whose frames it shows


@pytest.fixture(scope="module")
def driven(browser_ready, tmp_path_factory):
    comfyui = require_comfyui()
    base = tmp_path_factory.mktemp("comfy_server_layout")
    (base / "input").mkdir()
    (base / "output").mkdir()
    for name, size in layout.FRAMES.items():
        if name.endswith(".png"):
            if not (Path(__file__).parents[2] / "example_workflows" / "input" / name).exists():
                _picture(base / "input" / name, size)  # the user's picture (the pack copies its own inputs)
        else:
            _picture(base / "output" / f"{name}.webp", size)
    shots = os.environ.get("TD_SCREENSHOT_DIR")
    cases, workflows = [], {}
    for path in all_examples():
        key = key_of(path)
        workflows[key] = json.loads(path.read_text())
        for renderer in layout.RENDERERS:
            real = key in RUN_FOR_REAL
            cases.append({"name": f"{key}:{renderer}", "renderer": renderer, "workflow": workflows[key], "run": real,
                          "outputs": {} if real else _outputs(workflows[key]),
                          "shown": [str(n["id"]) for n in workflows[key]["nodes"] if n["type"] in layout.SHOWN_AT_LOAD],
                          "screenshot": f"{shots}/example_layout_{key}_{renderer}.png" if shots else None})
    workflows["rule"] = _rule_workflow()
    for renderer in layout.RENDERERS:
        outputs = _outputs(workflows["rule"])
        for node_id, prefix in RULE_OUTPUTS.items():
            outputs[node_id]["images"][0]["filename"] = f"{prefix}.webp"
        cases.append({"name": f"rule:{renderer}", "renderer": renderer, "workflow": workflows["rule"], "run": False,
                      "outputs": outputs, "shown": ["100", "101"], "screenshot": None})
    (base / "cases.json").write_text(json.dumps(cases))
    with comfy_server(comfyui, base, start_timeout=600) as server:
        server.request("/settings/Comfy.TutorialCompleted", True)  # no template browser over the canvas
        server.request("/settings/Comfy.Workflow.ShowMissingModelsWarning", False)  # no dialog over it either
        proc = subprocess.run(["node", str(HERE / "drive_example_layout.mjs"), server.url, str(base / "cases.json")],
                              check=False, capture_output=True, text=True, timeout=2400, cwd=HERE)
        log = server.log_tail()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:] + log
    result = json.loads(proc.stdout)
    result["workflows"], result["log"] = workflows, log
    return result


def _measured(driven, name: str, state: str) -> dict[str, tuple]:
    return {n["id"]: tuple(n["rect"]) for n in driven["cases"][name][state]}


EXAMPLE_CASES = [f"{key_of(p)}:{r}" for p in all_examples() for r in layout.RENDERERS]


def test_no_page_errors(driven):
    assert driven["errors"] == []


@pytest.mark.parametrize("renderer", layout.RENDERERS)
def test_the_cpu_demo_runs_and_shows_its_256_pixel_frames(driven, renderer):
    case = driven["cases"][f"demo_cpu:{renderer}"]
    assert case["history"]["status"]["status_str"] == "success", (case["history"], driven["log"])
    prefixes = {str(n["id"]): n["widgets_values"][0] for n in driven["workflows"]["demo_cpu"]["nodes"]}
    assert set(case["history"]["outputs"]) == {"2", "4"}
    assert {i: tuple(s) for i, s in case["shown"].items()} == {i: layout.FRAMES[prefixes[i]] for i in ("2", "4")}


@pytest.mark.parametrize("name", EXAMPLE_CASES)
@pytest.mark.parametrize("state", layout.STATES)
def test_nothing_overlaps(driven, name, state):
    assert layout.overlaps(_measured(driven, name, state)) == []


@pytest.mark.parametrize("name", EXAMPLE_CASES)
@pytest.mark.parametrize("state", layout.STATES)
def test_every_node_is_where_the_model_says(driven, name, state):
    """At load and after the run, each node's rectangle is the model's: for these layouts that is the saved one (the
    frontend neither widened a node at load nor grew one for its picture)."""
    key, renderer = name.split(":")
    model = layout.rects(driven["workflows"][key], renderer, state)
    measured = _measured(driven, name, state)
    assert set(measured) == set(model)
    off = {i: (measured[i], tuple(round(v, 1) for v in model[i])) for i in model
           if max(abs(a - b) for a, b in zip(measured[i], model[i])) > TOLERANCE}
    assert off == {}


@pytest.mark.parametrize("name", [n for n in EXAMPLE_CASES if n.split(":")[0] not in RUN_FOR_REAL])
def test_each_output_showed_its_picture(driven, name):
    key = name.split(":")[0]
    nodes = {str(n["id"]): n for n in driven["workflows"][key]["nodes"]}
    shown = driven["cases"][name]["shown"]
    assert {i: tuple(s) if s else None for i, s in shown.items()} == {
        i: layout.picture(nodes[i]) for i in shown}


@pytest.mark.parametrize("renderer", layout.RENDERERS)
def test_the_growth_rules_match_the_frontend(driven, renderer):
    """Nodes too small for their pictures grow as the model says: Save Animated WEBP (a square and a 16:9 result)
    and Load Image (a 16:9 and a square picture)."""
    workflow = copy.deepcopy(driven["workflows"]["rule"])
    for node in workflow["nodes"]:  # what each shows: the model reads a Save's picture size from its prefix
        if str(node["id"]) in RULE_OUTPUTS:
            node["widgets_values"] = [RULE_OUTPUTS[str(node["id"])], *node["widgets_values"][1:]]
    model = layout.rects(workflow, renderer, "after")
    measured = _measured(driven, f"rule:{renderer}", "after")
    pictures = [str(n["id"]) for n in workflow["nodes"] if layout.picture(n) is not None]
    assert sorted(pictures) == ["100", "101", "2", "4"]
    saved = layout.rects(workflow, renderer, "saved")
    for i in pictures:
        assert measured[i][3] - measured[i][1] > saved[i][3] - saved[i][1] + 20, (i, "did not grow")
        assert max(abs(a - b) for a, b in zip(measured[i], model[i])) <= TOLERANCE, (i, measured[i], model[i])
