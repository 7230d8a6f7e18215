"""The long-running nodes report to ComfyUI's progress bar: ComfyUI's global progress hook
(``comfy.utils.set_progress_bar_global_hook``) receives each node's ``(done, total)`` from 0 to the total: Save
Tracking Dataset (frames written; also inside ComfyUI's own PromptExecutor), Load TrackDiffusion Adapter (an official
file converted while loading, tensor by tensor) and TrackDiffusion Sampler in SG-I2V mode (optimisation
iterations)."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import torch

from trackdiffusion.data.tracklets import load

REPO = Path(__file__).resolve().parents[2]
STREET = REPO / "example_workflows" / "input" / "tracklets" / "street.json"


@contextlib.contextmanager
def progress_hook():
    """ComfyUI's global progress hook, recording (value, total) while the block runs."""
    import comfy.utils

    seen: list[tuple[int, int]] = []
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        yield seen
    finally:
        comfy.utils.set_progress_bar_global_hook(old)


def counts_up(total: int) -> list[tuple[int, int]]:
    return [(i, total) for i in range(total + 1)]


def test_save_tracking_dataset_reports_its_frames(comfy):
    node = comfy.node_class("SaveTrackingDataset")
    with progress_hook() as seen:
        node.execute(images=torch.rand(5, 36, 64, 3), tracklets=load(STREET),
                     dataset=f"progress_{uuid.uuid4().hex[:8]}", sequence_prefix="synth", image_format="png")
    assert seen == counts_up(5)


def test_save_tracking_dataset_reports_inside_the_prompt_executor(comfy):
    prompt = {
        "1": {"class_type": "LoadTracklets",
              "inputs": {"source": STREET.read_text(), "format": "auto", "width": 0, "height": 0, "num_frames": 0,
                         "video": "", "box_size": 64.0, "strict": False}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 36, "batch_size": 3, "color": 0}},
        "3": {"class_type": "SaveTrackingDataset",
              "inputs": {"images": ["2", 0], "tracklets": ["1", 0], "dataset": f"progress_{uuid.uuid4().hex[:8]}",
                         "sequence_prefix": "synth", "image_format": "jpg"}},
    }
    with progress_hook() as seen:
        _, messages, success = comfy.run_prompt(prompt)
    assert success, messages
    assert seen == counts_up(3)


def test_load_adapter_reports_the_conversion_of_an_official_file(comfy, tmp_path):
    import shutil

    import folder_paths

    from support.tiny_svd import diffusers_unet, write_official_trackdiffusion

    folder = Path(folder_paths.get_folder_paths("trackdiffusion")[0])
    name = f"progress_{uuid.uuid4().hex[:8]}"
    official, _, _ = write_official_trackdiffusion(folder / name / "svd_stage2" / "unet", diffusers_unet(seed=0))
    try:
        from trackdiffusion.models.checkpoints import KIND_TD_SVD, inspect_checkpoint

        assert inspect_checkpoint(official).kind == KIND_TD_SVD  # the official layout, not a converted delta
        loader = comfy.node_class("LoadTrackDiffusionAdapter")
        adapter_name = official.relative_to(folder).as_posix()
        with progress_hook() as seen:
            bundle = loader.execute(adapter_name=adapter_name).result[0]
        assert bundle is not None
        total = seen[-1][1]
        assert total > 50 and seen == counts_up(total)  # every TrackDiffusion tensor, converted while loading
    finally:
        shutil.rmtree(folder / name, ignore_errors=True)


def test_sgi2v_sampler_reports_its_optimisation_iterations(comfy, tiny_svd):
    g = torch.Generator().manual_seed(0)
    concat = torch.randn(1, 4, 8, 8, generator=g)
    embed = torch.randn(1, 1, 64, generator=g)
    extra = {"motion_bucket_id": 127, "fps": 8, "augmentation_level": 0.0}
    positive = [[embed, dict(extra, concat_latent_image=concat)]]
    negative = [[torch.zeros_like(embed), dict(extra, concat_latent_image=torch.zeros_like(concat))]]
    tracklets = load({"version": 1, "width": 64, "height": 64, "num_frames": 4, "objects": [
        {"id": 1, "keyframes": [{"frame": 0, "box": [8, 8, 32, 32]}, {"frame": 3, "box": [28, 20, 52, 44]}]}]})
    node = comfy.node_class("TrackDiffusionSampler")
    with progress_hook() as seen:
        node.execute(model=tiny_svd, positive=positive, negative=negative,
                     latent_image={"samples": torch.zeros(4, 4, 8, 8)}, seed=7, steps=2, min_cfg=1.0, max_cfg=2.0,
                     guidance="linear per frame (SVD)", sampler_name="euler", scheduler="karras", denoise=1.0,
                     trajectory_guidance="SG-I2V boxes (training-free)", tracklets=tracklets, sgi2v_start=0.0,
                     sgi2v_end=1.0, sgi2v_iterations=3)
    # 2 guided steps x 3 iterations, beside the sampler's own 2 steps
    assert [s for s in seen if s[1] == 6] == counts_up(6)
    assert [s for s in seen if s[1] == 2][-1] == (2, 2)
