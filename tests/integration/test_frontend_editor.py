"""The canvas editors in the real ComfyUI frontend: a real server with this pack, headless Chromium, the mouse.

Every frontend of :func:`support.frontends.frontends` is tested: the one ComfyUI's requirements installed (served by
the session's server, ``main.py --cpu`` on a free loopback port, the pack under an odd folder name; see
tests/support/server.py) and the newest pinned release (``support.frontends.NEWEST``, installed outside
site-packages by dev/install_browser_test_deps.sh, served by a second server with ``--front-end-root``), each in
both renderers: the classic LiteGraph canvas and the Vue nodes ("Nodes 2.0"). The driver adds LoadImage -> Tracklet
Editor, draws a box, keys a second frame, queues the prompt, and the test checks what the server executed (GET
/history); the Point Trajectory Editor gets a brushed mask and an arrow. Test ids read
``[frontend-VERSION-RENDERER]``. Skips without ComfyUI, Chromium, playwright-core or the pinned frontend (fails under
CI). Set TD_SCREENSHOT_DIR to keep the screenshots, one folder per frontend (docs/ has the README's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from support.comfyui import require_comfyui, unavailable
from support.frontends import Frontend, frontends
from support.server import comfy_server as start_comfy_server
from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "browser" / "drive_comfyui.mjs"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IMAGE = "td_background.png"
FIRST_IMAGE = "td_first.png"  # the LoadImage starts on it; the driver then picks IMAGE in the LoadImage's widget
FRONTENDS = [pytest.param(f, id=f"frontend-{f.version}") for f in frontends()]


def _browser_missing() -> str | None:
    if shutil.which("node") is None or not Path(CHROMIUM).is_file():
        return f"node or Chromium ({CHROMIUM}) missing: run dev/install_browser_test_deps.sh"
    if not (REPO / "node_modules" / "playwright-core").is_dir():
        return "node_modules/playwright-core missing: run dev/install_browser_test_deps.sh"
    return None


def _get(url: str, data: bytes | None = None, timeout: float = 10):
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def _prepared(comfy_server) -> str:
    """The server's URL, once it has the background images in its input folder and the tutorial dismissed."""
    import cv2

    yy, xx = np.mgrid[0:360, 0:640]
    img = np.stack([np.full_like(xx, 120), yy * 255 // 360, xx * 255 // 640], axis=-1).astype(np.uint8)  # BGR
    cv2.circle(img, (200, 180), 60, (255, 255, 255), -1)
    cv2.imwrite(str(comfy_server.base / "input" / IMAGE), img)
    cv2.imwrite(str(comfy_server.base / "input" / FIRST_IMAGE), np.ascontiguousarray(img[::-1, ::-1]))
    url = comfy_server.url
    info = _get(f"{url}/object_info/TrackletEditor")
    assert "TrackletEditor" in info, (
        "the server does not list TrackletEditor: nodes/extension.py must register nodes.editor_nodes.EDITOR_NODES")
    _get(f"{url}/settings/Comfy.TutorialCompleted", data=b"true")  # no template browser over the canvas
    return url


class Served:
    """A ComfyUI server serving one frontend."""

    def __init__(self, url: str, frontend: Frontend):
        self.url, self.frontend = url, frontend


@pytest.fixture(scope="module")
def newest_server(tmp_path_factory):
    """A second ComfyUI server for this module, serving the pinned newest frontend (``--front-end-root``)."""
    newest = next(f for f in frontends() if not f.bundled)  # requested only for a frontend that is not bundled
    if newest.missing:
        unavailable(newest.missing)
    base = tmp_path_factory.mktemp(f"comfy_server_frontend_{newest.version}")
    with start_comfy_server(require_comfyui(), base, front_end_root=newest.root, frontend=newest.version) as server:
        yield server


@pytest.fixture(scope="module", params=FRONTENDS)
def served(request) -> Served:
    """The server for the frontend of this test's id: the session's for the bundled one, else ``newest_server``."""
    reason = _browser_missing()
    if reason:
        unavailable(reason)
    frontend = request.param
    server = request.getfixturevalue("comfy_server" if frontend.bundled else "newest_server")
    return Served(_prepared(server), frontend)


def _drive(served: Served, editor: str, renderer: str, num_frames: int, tmp_path, first_image: str = "") -> dict:
    shots = Path(os.environ.get("TD_SCREENSHOT_DIR") or tmp_path) / f"frontend-{served.frontend.version}"
    shots.mkdir(parents=True, exist_ok=True)
    args = [served.url, IMAGE, str(shots), editor, renderer, str(num_frames)] + ([first_image] if first_image else [])
    proc = subprocess.run(["node", str(DRIVER), *args], check=False, capture_output=True, text=True, timeout=300,
                          cwd=DRIVER.parent)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    # The page ran the intended frontend and renderer, and the editor sits in that renderer's node, uncovered.
    if served.frontend.version != "bundled":  # "bundled": the venv has no comfyui-frontend-package metadata
        assert result["frontendVersion"] == served.frontend.version
    assert result["vueNodes"] is (renderer == "vue")
    assert result["host"] == ("vue-node" if renderer == "vue" else "dom-widget")
    assert result["editorUncovered"] is True
    # The editor, its status line last, stays inside the node's border, also (classic) at the node's minimum size;
    # the canvas gives way instead.
    for where in ("inNode", "inNodeAtMinimum") if renderer == "classic" else ("inNode",):
        fit = result[where]
        assert fit["rootBottom"] <= fit["nodeBottom"] + 1 and fit["statusBottom"] <= fit["nodeBottom"] + 1, (where, fit)
        assert fit["stageHeight"] >= 100, (where, fit)
    # The wheel over the editor zooms (or pans) the graph as it does over the empty canvas; the editor has no use
    # for it.
    wheel = result["wheel"]
    assert wheel["overCanvas"] is not None, wheel
    assert wheel["overEditor"] != wheel["before"], wheel
    assert wheel["overEditor"]["scale"] == pytest.approx(wheel["overCanvas"]["scale"]), wheel
    return result


def _executed(server, node_inputs: dict, class_type: str = "TrackletEditor") -> dict:
    """The /history entry whose prompt sent exactly these editor inputs."""
    for entry in _get(f"{server}/history").values():
        for node_id, node in entry["prompt"][2].items():
            if node["class_type"] == class_type and node["inputs"] == node_inputs:
                return {"node_id": node_id, **entry}
    raise AssertionError("the prompt is not in /history")


@pytest.mark.parametrize(("renderer", "num_frames"), [pytest.param("classic", 5, id="classic"),
                                                      pytest.param("vue", 7, id="vue")])
def test_draw_queue_and_execute_in_the_real_frontend(served, renderer, num_frames, tmp_path):
    result = _drive(served, "tracklets", renderer, num_frames, tmp_path, FIRST_IMAGE)
    server = served.url
    assert result["errors"] == []
    # The editor showed the LoadImage's picture, and followed when the user picked another file in that node.
    assert result["firstBackground"] == FIRST_IMAGE
    assert result["picked"] == {"value": IMAGE, "background": IMAGE}
    # The state input is hidden; keys went to the editor, never to the graph (Delete did not remove a node).
    assert result["stateHidden"] is True
    assert result["nodeCountAfterKeys"] == result["nodeCountBeforeKeys"] == 2
    # Delete removed the only keyframe (and so the object); Ctrl+Z brought it back (ComfyUI's graph undo did not
    # run instead: the node instance survived, or the state would be empty).
    assert json.loads(result["stateAfterUndo"])["objects"][0]["keyframes"][0]["box"] == [100, 80, 260, 200]

    # Saved workflow: exactly the declared widgets (state, width, height, num_frames), no canvas entry, so
    # widgets_values maps positionally onto /object_info (comfy-cli's workflow -> API conversion).
    state = result["state"]
    assert result["widgets_values"] == [state, 640, 360, num_frames]
    assert sorted(result["api"]["inputs"]) == ["background", "height", "num_frames", "tracklets_json", "width"]

    entry = _executed(server, result["api"]["inputs"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    info = entry["outputs"][entry["node_id"]]["td_info"][0]
    assert info == {"width": 640, "height": 360, "num_frames": num_frames, "objects": 1, "warnings": []}
    assert len(result["backgroundAfterRun"]) == num_frames
    assert result["framesLoaded"] == num_frames

    # What ran is what was drawn: frame 0 dragged from (100, 80) to (260, 200), the last frame moved 100 px right.
    dense = load(entry["prompt"][2][entry["node_id"]]["inputs"]["tracklets_json"]).dense()
    np.testing.assert_allclose(dense.boxes[0, 0], [100, 80, 260, 200])
    np.testing.assert_allclose(dense.boxes[-1, 0], [200, 80, 360, 200])
    np.testing.assert_allclose(dense.boxes[(num_frames - 1) // 2, 0], [150, 80, 310, 200])
    assert dense.visible.all()
    # A saved workflow reloads into a new node whose editor shows the same document and the run's frames.
    assert result["reloaded"] == {"fresh": True, "objects": 1, "state": state, "backgroundFrames": num_frames}


@pytest.mark.parametrize("renderer", ["classic", "vue"])
def test_trajectory_editor_in_the_real_frontend(served, renderer, tmp_path):
    result = _drive(served, "trajectory", renderer, 6, tmp_path)
    assert result["errors"] == []
    assert result["nodeCount"] == 2
    assert result["widgets_values"][1:] == [640, 360, 6, 0, 4]
    entry = _executed(served.url, result["api"]["inputs"], "PointTrajectoryEditor")
    assert entry["status"]["status_str"] == "success", entry["status"]
    points = entry["outputs"][entry["node_id"]]["td_points"][0]
    assert len(points["points"]) == 16 and set(points["component"]) == {0}
    assert "exact (last run)" in result["status"]  # the canvas shows the node's sampled points after the run
    state = json.loads(result["api"]["inputs"]["trajectory_json"])
    assert result["widgets_values"][0] == result["api"]["inputs"]["trajectory_json"]
    (comp,) = state["components"]
    counts = comp["mask"]["counts"]
    mask = np.repeat(np.arange(len(counts)) % 2 == 1, counts).reshape(comp["mask"]["size"])
    ys, xs = np.nonzero(mask)
    assert 150 < xs.mean() < 250 and 160 < ys.mean() < 200  # brushed over (170..230, 170..190)
    np.testing.assert_allclose(comp["arrow"], [[200, 180], [480, 120]], atol=1)
    # The sampled points start inside the brushed mask.
    px = np.round(np.array(points["points"])).astype(int)
    assert mask[px[:, 1], px[:, 0]].all()


# ----------------------------------------------------------------------------------------------------------------
# Headless: the editors' state is plain declared inputs, so API-format prompts run without any JavaScript.
def _rle(mask: np.ndarray) -> dict:
    flat = mask.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def _registered(comfy, node_id: str):
    assert node_id in comfy.nodes.NODE_CLASS_MAPPINGS, (
        f"{node_id} is not registered: nodes/extension.py must list nodes.editor_nodes.EDITOR_NODES")


def test_editor_nodes_schemas(comfy):
    for node_id in ("TrackletEditor", "PointTrajectoryEditor"):
        _registered(comfy, node_id)
    tracklet = comfy.node_class("TrackletEditor").GET_NODE_INFO_V1()
    assert tracklet["output"] == ["TRACKLETS", "TRACKS", "MASK", "IMAGE"]
    assert tracklet["input_order"]["required"] == ["tracklets_json", "width", "height", "num_frames"]
    assert tracklet["input"]["required"]["tracklets_json"][1]["socketless"] is True
    assert tracklet["input"]["optional"]["background"][0] == "IMAGE"
    traj = comfy.node_class("PointTrajectoryEditor").GET_NODE_INFO_V1()
    # preview came last: saved workflows link outputs by index, so the first four keep theirs
    assert traj["output"] == ["POINT_TRAJECTORIES", "TRACKS", "IMAGE", "MASK", "IMAGE"]
    assert traj["input_order"]["required"] == ["trajectory_json", "width", "height", "num_frames", "seed",
                                               "point_size"]


def test_editors_run_headless_from_api_prompts(comfy_with_probe):
    _registered(comfy_with_probe, "TrackletEditor")
    doc = {"format": "trackdiffusion.tracklets", "version": 1, "width": 64, "height": 32, "num_frames": 4, "fps": 8,
           "objects": [
               {"id": 2, "label": "b", "color": "#3cb44b", "interpolation": "linear", "keyframes": [
                   {"frame": 0, "box": [40, 4, 60, 20], "visible": True},
                   {"frame": 2, "box": [40, 4, 60, 20], "visible": False}]},
               {"id": 1, "label": "a", "color": "#e6194b", "interpolation": "linear", "keyframes": [
                   {"frame": 0, "box": [0, 0, 10, 10], "visible": True},
                   {"frame": 3, "box": [30, 0, 40, 10], "visible": True}]}]}
    mask = np.zeros((32, 64), bool)
    mask[8:20, 8:24] = True
    state = {"format": "trackdiffusion.trajectory_editor", "version": 1, "width": 64, "height": 32,
             "components": [{"label": "", "mask": _rle(mask), "arrow": [[10, 10], [40, 10]]}]}
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 32, "batch_size": 2, "color": 0x336699}},
        "2": {"class_type": "TrackletEditor", "inputs": {"tracklets_json": json.dumps(doc), "width": 64, "height": 32,
                                                         "num_frames": 4, "background": ["1", 0]}},
        "3": {"class_type": "TDTestProbe", "inputs": {"value": ["2", 2]}},
        "4": {"class_type": "TDTestProbe", "inputs": {"value": ["2", 1]}},
        "5": {"class_type": "TDTestProbe", "inputs": {"value": ["2", 3]}},
        "6": {"class_type": "PointTrajectoryEditor", "inputs": {"trajectory_json": json.dumps(state), "width": 64,
                                                                "height": 32, "num_frames": 6, "seed": 0,
                                                                "point_size": 2}},
        "7": {"class_type": "TDTestProbe", "inputs": {"value": ["6", 3]}},
        "8": {"class_type": "TDTestProbe", "inputs": {"value": ["6", 2]}},
        "9": {"class_type": "TDTestProbe", "inputs": {"value": ["6", 1]}},
        "12": {"class_type": "TDTestProbe", "inputs": {"value": ["6", 4]}},
        # An untouched editor (empty state) is valid: no objects yet.
        "10": {"class_type": "TrackletEditor", "inputs": {"tracklets_json": "", "width": 16, "height": 8,
                                                          "num_frames": 3}},
        "11": {"class_type": "TDTestProbe", "inputs": {"value": ["10", 2]}},
    }
    outputs, messages, success = comfy_with_probe.run_prompt(prompt)
    assert success, messages
    assert outputs["3"]["probe"][0] == {"shape": [2 * 4, 32, 64], "dtype": "torch.float32"}
    assert outputs["4"]["probe"][0]["track_path"]["shape"] == [4, 2, 2]
    assert outputs["5"]["probe"][0]["shape"] == [4, 32, 64, 3]
    assert outputs["2"]["td_info"][0]["objects"] == 2
    assert len(outputs["2"]["td_background"]) == 4  # 2 background frames spread over 4 editor frames
    assert outputs["7"]["probe"][0] == {"shape": [1, 32, 64], "dtype": "torch.float32"}
    assert outputs["8"]["probe"][0]["shape"] == [6, 32, 64, 3]
    assert outputs["9"]["probe"][0]["track_path"]["shape"][0] == 6
    assert outputs["12"]["probe"][0]["shape"] == [6, 32, 64, 3]  # the readable preview, beside the conditioning
    points = outputs["6"]["td_points"][0]
    assert len(points["points"]) == len(points["component"]) == 16  # K = 16 for a mask under 10 % of the frame
    assert outputs["11"]["probe"][0] == {"shape": [3, 8, 16], "dtype": "torch.float32"}
    # the preview is readable (grey canvas, coloured points moving right along the arrow), the video points on black
    result = comfy_with_probe.node_class("PointTrajectoryEditor").execute(json.dumps(state), 64, 32, 6, 0, 2).result
    video, preview = result[2], result[4]
    assert float(video.mean()) < 0.05 and float(preview.mean()) > 0.15
    coloured = (preview.max(-1).values - preview.min(-1).values) > 0.3  # [F, H, W] saturated pixels: the points
    xs = [float(np.nonzero(coloured[f].numpy())[1].mean()) for f in (0, 5)]
    assert coloured[0].any() and xs[1] > xs[0] + 15  # the arrow moves the part 30 px right over the clip


def test_tracklet_editor_masks_follow_the_boxes(comfy):
    _registered(comfy, "TrackletEditor")
    from importlib import import_module

    module = import_module(comfy.node_class("TrackletEditor").__module__)
    doc = {"format": "trackdiffusion.tracklets", "version": 1, "width": 20, "height": 10, "num_frames": 3,
           "objects": [{"id": 5, "keyframes": [{"frame": 0, "box": [2, 1, 6, 4]},
                                               {"frame": 1, "box": [2, 1, 6, 4], "visible": False},
                                               {"frame": 2, "box": [18, 8, 30, 20]}]}]}
    t = module.parse_editor_tracklets(json.dumps(doc), 20, 10, 3)
    masks = module.box_masks(t)
    assert masks.shape == (3, 10, 20)
    assert masks[0].sum() == 4 * 3 and masks[0, 1:4, 2:6].all()
    assert masks[1].sum() == 0  # hidden
    assert masks[2].sum() == 2 * 2 and masks[2, 8:10, 18:20].all()  # clamped to the canvas
    # The INT inputs win over the JSON's own size: the motion is resampled, as Tracklets.resample does.
    t2 = module.parse_editor_tracklets(json.dumps(doc), 40, 20, 5)
    assert (t2.width, t2.height, t2.num_frames) == (40, 20, 5)
    assert t2.objects[0].keyframes[-1].frame == 4
    with pytest.raises(ValueError, match="empty mask"):
        module.parse_trajectory_state(json.dumps({"components": [{"mask": _rle(np.zeros((4, 4), bool))}]}), 4, 4)
