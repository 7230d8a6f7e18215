"""Positive control of the metric stack on SynTrack: clean renders reproduce the committed ceiling to 1e-6, and
corrupted renders (shifted, identities swapped, frozen, unrelated) score lower in the expected order."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trackdiffusion.evaluation.metrics import METRICS
from trackdiffusion.evaluation.metrics.control import positive_control

CEILING = Path(__file__).resolve().parent / "data" / "syntrack_ceiling.json"


@pytest.fixture(scope="module")
def committed():
    return json.loads(CEILING.read_text())


@pytest.fixture(scope="module")
def measured(committed):
    s = committed["settings"]
    return positive_control(split=s["split"], tier=tuple(s["tier"]), n_clips=s["n_clips"],
                            n_corrupted=s["n_corrupted"], texture=s["texture"])


def _same(got: dict, want: dict) -> list[str]:
    bad = []
    for k, w in want.items():
        g = got[k]
        if w is None or g is None:
            if g is not w:
                bad.append(f"{k}: {g} != {w}")
        elif not math.isclose(g, w, rel_tol=0, abs_tol=1e-6):
            bad.append(f"{k}: {g!r} != {w!r}")
    return bad


def test_gt_renders_reproduce_the_committed_ceiling(measured, committed):
    assert measured["settings"] == committed["settings"]
    assert _same(measured["ceiling"], committed["ceiling"]) == []
    for scenario, values in committed["ceiling_per_scenario"].items():
        assert _same(measured["ceiling_per_scenario"][scenario], values) == [], scenario
    c = measured["ceiling"]
    assert c["IDSW"] == 0 and c["miss_rate"] == 0.0 and c["AP50"] > 0.95 and c["mIoU"] > 0.85
    assert set(METRICS) <= set(c)


def test_corrupted_renders_reproduce_and_score_lower_in_order(measured, committed):
    for name, values in committed["corrupted"].items():
        assert _same(measured["corrupted"][name], values) == [], name
    m = {k: v for k, v in measured["corrupted"].items()}
    gt = m["gt"]
    ap = {k: v["TrackAP"] for k, v in m.items()}
    # larger shifts, worse layout
    assert ap["gt"] > ap["shift-s"] > ap["shift-m"] > ap["shift-l"]
    assert gt["mIoU"] > m["shift-s"]["mIoU"] > m["shift-m"]["mIoU"] > m["shift-l"]["mIoU"]
    assert gt["CTE_px"] < m["shift-s"]["CTE_px"] < m["shift-m"]["CTE_px"] < m["shift-l"]["CTE_px"]
    # the reference table's order: clean > 2 px shift > identity swap > frozen > unrelated
    assert ap["gt"] > ap["shift-s"] > ap["swap"] > ap["freeze"] > ap["unrelated"]
    assert m["freeze"]["AP50"] > m["unrelated"]["AP50"] and m["freeze"]["mIoU"] > m["unrelated"]["mIoU"]
    # only TrackAP and IDSW see identity swaps; mIoU and CTE are blind to them
    assert abs(m["swap"]["mIoU"] - gt["mIoU"]) < 0.01 and abs(m["swap"]["CTE_px"] - gt["CTE_px"]) < 0.1
    assert gt["IDSW"] == 0 and m["swap"]["IDSW"] > 50
    # no motion / wrong content: objects get missed, and the point tracker drifts
    assert gt["miss_rate"] < m["freeze"]["miss_rate"] < m["unrelated"]["miss_rate"]
    assert gt["ObjMC_px"] < m["swap"]["ObjMC_px"] < m["freeze"]["ObjMC_px"] < m["unrelated"]["ObjMC_px"]
