"""A shared server lets anyone set every node input: a fuzz over the pack's nodes, every widget drawn within its
declared bounds (numbers anywhere in [min, max], strings random or JSON-like, combos from their options), the linked
inputs from small valid fixtures. A node either runs or raises the pack's own InvalidInputError (one clear line),
never anything else. The output limit is lowered (TRACKDIFFUSION_MAX_OUTPUT_GB=0.05), so that inputs at their
bounds are refused by it rather than allocated; counts that only cost time (denoising steps) are drawn small.

Not fuzzed here: the nodes that need a trained model beyond the shipped ones or a sampler's conditioning (the
patches, the samplers, the ModelScope loader): their own tests cover bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
STREET = (REPO / "example_workflows" / "input" / "tracklets" / "street.json").read_text()
FUZZED = ["LoadTracklets", "TrackletsToTracks", "VisualizeTracklets", "PointTrajectoryBuilder", "TrackletEditor",
          "PointTrajectoryEditor", "SaveTrackingDataset", "TrackDiffusionDemo", "TrackFromVideo",
          "PointTrajectoriesFromVideo", "LoadTrackDiffusionAdapter"]
#: inputs that only cost time: drawn from [min, CHEAP] instead of [min, max]
CHEAP = {"steps": 2, "sgi2v_iterations": 2}
JSONISH = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", "{}", "[]", "null", "tracklets/street.json", "../x.json", "/etc/passwd", "~/x", STREET,
                     STREET.replace('"width": 1024', '"width": -1'), '{"version": 1, "width": 1e400}',
                     '[[[1, 2], [3, 4]]]', '{"masks": [], "arrows": []}']),
)


def _fixtures():
    from trackdiffusion.data.tracklets import load
    from trackdiffusion.data.trajectories import build_point_trajectories

    image = torch.rand(3, 24, 32, 3)
    mask = torch.zeros(2, 24, 32)
    mask[0, 4:10, 4:12] = 1
    mask[1, 12:20, 16:28] = 1
    trajectories = build_point_trajectories(mask.numpy() > 0.5, [[[8, 7], [20, 9]], [[22, 16], [10, 16]]], 3)
    return {"IMAGE": image, "MASK": mask, "TRACKLETS": load(STREET), "POINT_TRAJECTORIES": trajectories,
            "TRACKS": trajectories.to_tracks()}


def _strategy(spec: dict):
    kind = spec["type"]
    if kind == "INT":
        low, high = int(spec.get("min", -(2**31))), int(spec.get("max", 2**31 - 1))
        if spec["name"] in CHEAP:
            high = min(high, max(low, CHEAP[spec["name"]]))
        return st.one_of(st.sampled_from(sorted({low, high, min(max(0, low), high)})), st.integers(low, high))
    if kind == "FLOAT":
        low, high = float(spec.get("min", -1e6)), float(spec.get("max", 1e6))
        return st.one_of(st.sampled_from([low, high]), st.floats(low, high, allow_nan=False))
    if kind == "BOOLEAN":
        return st.booleans()
    if kind == "COMBO":
        return st.sampled_from(list(spec["options"]) or [""])
    if kind == "STRING":
        return JSONISH
    return None


def _specs(node_class) -> list[dict]:
    """(name, type, bounds, options, optional) of every input, from the node's V3 schema."""
    out = []
    for inp in node_class.GET_SCHEMA().inputs:
        kind = getattr(inp, "io_type", None) or type(inp).__qualname__.split(".")[0].upper()
        out.append({"name": inp.id, "type": str(kind).upper(), "min": getattr(inp, "min", None),
                    "max": getattr(inp, "max", None), "options": getattr(inp, "options", None) or [],
                    "optional": bool(getattr(inp, "optional", False))})
    return [{k: v for k, v in s.items() if v is not None} for s in out]


@pytest.fixture(scope="module")
def fuzz_env(comfy_with_probe, tmp_path_factory):
    import folder_paths

    mp = pytest.MonkeyPatch()
    mp.setenv("TRACKDIFFUSION_MAX_OUTPUT_GB", "0.05")
    # Save Tracking Dataset writes into the output folder: a temporary one for the fuzz
    mp.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path_factory.mktemp("fuzz_output")))
    yield comfy_with_probe, _fixtures()
    mp.undo()


@pytest.mark.parametrize("node_id", FUZZED)
def test_nodes_only_raise_their_own_errors(fuzz_env, node_id):
    import sys

    comfy, fixtures = fuzz_env
    node_class = comfy.node_class(node_id)
    # the pack as ComfyUI imported it (under its folder's name), not the `trackdiffusion` package of the tests
    pack = node_class.__module__.rsplit(".nodes.", 1)[0]
    InvalidInputError = sys.modules[f"{pack}.data.errors"].InvalidInputError
    specs = _specs(node_class)
    strategies = {}
    for spec in specs:
        widget = _strategy(spec)
        if widget is not None:
            strategies[spec["name"]] = widget
        elif spec["type"] in fixtures:
            value = st.just(fixtures[spec["type"]])
            strategies[spec["name"]] = st.one_of(st.none(), value) if spec.get("optional") else value
        else:
            pytest.fail(f"{node_id}: no fixture for input {spec['name']} of type {spec['type']}")

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.fixed_dictionaries(strategies))
    def run(kwargs):
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            node_class.execute(**kwargs)
        except InvalidInputError as exc:
            assert str(exc).count("\n") <= 3 and len(str(exc)) < 5000, str(exc)[:300]

    run()
