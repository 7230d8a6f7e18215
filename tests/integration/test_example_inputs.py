"""The example workflows' input files reach ComfyUI's input folder when ComfyUI loads the pack (so a loaded example
finds its first frame and tracklets); a file already there is never replaced, the copy can be turned off, and a
folder that cannot be written costs one warning line, not the pack."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "example_workflows" / "input"
EXPECTED = sorted(p.relative_to(SOURCE) for p in SOURCE.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def example_inputs(comfy):
    extension = sys.modules[comfy.node_class("LoadTinySVD").__module__.rsplit(".", 1)[0] + ".example_inputs"]
    return extension


def test_loading_the_pack_copied_every_example_input(comfy):
    import folder_paths

    inside = Path(folder_paths.get_input_directory())
    assert Path("tiny_svd_first_frame.png") in EXPECTED and Path("tracklets/street.json") in EXPECTED
    for rel in EXPECTED:
        assert (inside / rel).read_bytes() == (SOURCE / rel).read_bytes(), rel


def test_a_file_already_there_is_kept_and_opt_out_copies_nothing(example_inputs, tmp_path, monkeypatch):
    target = tmp_path / "input"
    (target / "tracklets").mkdir(parents=True)
    (target / "tracklets" / "street.json").write_text("mine")
    copied = example_inputs.copy_example_inputs(SOURCE, str(target))
    assert (target / "tracklets" / "street.json").read_text() == "mine"
    assert sorted(p.relative_to(target) for p in copied) == [r for r in EXPECTED if r != Path("tracklets/street.json")]
    assert not list(target.rglob(".*.partial"))
    monkeypatch.setenv("TRACKDIFFUSION_NO_EXAMPLE_INPUTS", "1")
    assert example_inputs.copy_example_inputs(SOURCE, str(tmp_path / "other")) == []
    assert not (tmp_path / "other").exists()


def test_an_unwritable_input_folder_costs_one_warning(example_inputs, tmp_path, caplog):
    target = tmp_path / "input"
    target.write_text("a file where the folder should be")  # fails for root too, unlike a read-only folder
    with caplog.at_level(logging.WARNING):
        assert example_inputs.copy_example_inputs(SOURCE, str(target)) == []
    assert len(caplog.records) == 1 and "could not copy the example inputs" in caplog.records[0].getMessage()
    assert target.read_text() == "a file where the folder should be"
