"""The reference values the JS unit tests compare against are still what the Python code computes."""

import json

from make_python_reference import REFERENCE, build  # tests/js is on sys.path via rootdir-relative import


def test_js_reference_is_current():
    assert json.loads(REFERENCE.read_text()) == json.loads(json.dumps(build())), (
        "the Python side changed: run `python tests/js/make_python_reference.py` and make the JS mirrors "
        "(js/interpolation_preview.js, js/tracklet_model.js, js/trajectory_model.js) agree again")
