"""The CPU-runnable example workflows, executed end to end by `trackdiffusion run` inside real ComfyUI with tiny
random models placed under the names the workflows use (the SVD ones need real checkpoints: they are validated only,
in test_example_workflows.py / test_runner_workflows.py). demo_cpu.json needs no model file at all: it runs end to
end in test_demo_node.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.tiny_models import build_tiny_t2v_folder

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
SMALL = ["ModelScopeTrackDiffusionSampler.width=64", "ModelScopeTrackDiffusionSampler.height=64",
         "ModelScopeTrackDiffusionSampler.steps=2", "ModelScopeTrackDiffusionSampler.num_frames=4",
         "LoadModelScopeTrackDiffusion.unet_name=none (the folder's UNet)"]


@pytest.fixture(scope="module")
def tiny_pretrain(comfy):
    """A tiny text-to-video folder at models/diffusers/TrackDiffusion_Pretrain, the name the examples load."""
    import folder_paths

    folder = Path(folder_paths.get_folder_paths("diffusers")[0]) / "TrackDiffusion_Pretrain"
    build_tiny_t2v_folder(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_modelscope_example_runs_end_to_end(comfy, tiny_pretrain, tmp_path):
    from trackdiffusion.runner.run import run_workflow

    out = tmp_path / "t2v"
    run_workflow(EXAMPLES / "modelscope_trackdiffusion.json", comfyui=comfy.path, overrides=SMALL, out=out)
    written = sorted(p.name for p in out.rglob("*.webp"))
    assert any(name.startswith("trackdiffusion_t2v_boxes") for name in written)
    assert any(name.startswith("trackdiffusion_t2v_0") for name in written)


def test_dataset_example_makes_one_sequence_per_tracklet_file(comfy, tiny_pretrain, tmp_path):
    from trackdiffusion.runner.run import run_batch

    batch = tmp_path / "tracklets"
    batch.mkdir()
    for name in ("a", "b"):
        shutil.copy(REPO / "examples" / "tracklets" / "street.json", batch / f"{name}.json")
    run_batch(EXAMPLES / "dataset_from_tracklets.json", batch, out=tmp_path / "out", comfyui=comfy.path,
              overrides=SMALL)
    # the runner gathers everything a job wrote under ComfyUI's output folder into out/<tracklet file stem>/
    sequences = sorted((tmp_path / "out").glob("*/trackdiffusion_dataset/synth_*"))
    assert [s.parent.parent.name for s in sequences] == ["a", "b"]
    for seq in sequences:
        assert (seq / "gt" / "gt.txt").read_text().startswith("1,")
        assert len(list((seq / "img1").iterdir())) == 4 and (seq / "seqinfo.ini").exists()
