"""Every workflow in example_workflows/ executed end to end by `trackdiffusion run` (ComfyUI's own validation and
PromptExecutor, in process), with tiny random models placed under the file names the workflows use:

- ``models/checkpoints/svd.safetensors``: a whole tiny SVD img2vid checkpoint (UNet, TAESD-architecture VAE, tiny CLIP
  vision), loaded by ComfyUI's stock Image Only Checkpoint Loader (:func:`support.tiny_svd.tiny_detection`);
- ``models/trackdiffusion/trackdiffusion_svd_stage2_fp16.safetensors``: made the way a user makes it, by
  ``trackdiffusion weights convert`` (:func:`trackdiffusion.models.checkpoints.convert_svd`) from a tiny official-layout
  ``svd_stage2/unet`` fine-tuned from that SVD;
- ``models/trackdiffusion/trackadapter_svd.safetensors``: a TrackGo TrackAdapter for that SVD, saved as training
  saves it;
- ``models/diffusers/TrackDiffusion_Pretrain``: a tiny text-to-video folder with a *stock* UNet3D, and
  ``models/trackdiffusion/modelscope_ft/unet``: the tiny TrackDiffusion UNet3D in the released layout (so the
  ModelScope workflows cannot run unless they load it: the stock folder alone is refused);
- ``input/example.png`` (``input/tracklets/street.json`` is there already: the pack copies its example inputs when
  ComfyUI loads it).

Overrides only make the runs small (canvas, frames, steps); no model name and no mode is changed. Each run checks
the files the workflow writes (frame counts, sizes, content), and the SVD ones check that what they add acts: the
SG-I2V optimisation runs its guided step and changes the video, the TrackDiffusion and TrackGo adapters change it
against strength 0.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from support.examples import all_examples, example, key_of
from support.tiny_models import build_tiny_t2v_folder, tiny_trackdiffusion_unet3d

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = all_examples()
FRAMES = 4
SVD_SIZE = (128, 64)  # width, height: latent 16x8, still divisible down the SVD UNet's 3 downsamplings
T2V_SIZE = (64, 64)

#: per node type, the inputs set on every node of that type: small canvases, FRAMES frames, few steps. The SG-I2V
#: band (0.1..0.4 of 3 steps) is step 1: one guided step with 2 optimisation iterations.
SMALL = {
    "SVD_img2vid_Conditioning": {"width": SVD_SIZE[0], "height": SVD_SIZE[1], "video_frames": FRAMES},
    "TrackletEditor": {"width": SVD_SIZE[0], "height": SVD_SIZE[1], "num_frames": FRAMES},
    "PointTrajectoryEditor": {"width": SVD_SIZE[0], "height": SVD_SIZE[1], "num_frames": FRAMES},
    "KSampler": {"steps": 2},
    "TrackDiffusionSampler": {"steps": 3, "sgi2v_iterations": 2},
    "ModelScopeTrackDiffusionSampler": {"width": T2V_SIZE[0], "height": T2V_SIZE[1], "steps": 2,
                                        "num_frames": FRAMES},
    "TrackDiffusionDemo": {"frames": FRAMES, "steps": 2},
}
DEMO_SIZE = (64 * 4, 64 * 4)  # the demo's 64 px frames, upscale 4 as saved
#: examples already sized for the CPU (64x64 clips of 16 frames): run at their own size, only with fewer steps
NATIVE = {"motion_from_video": {"TrackDiffusionDemo": {"steps": 2}},
          "tiny_svd_trackdiffusion_cpu": {"TrackDiffusionSampler": {"steps": 4}}}
NATIVE_FRAMES = 16

#: the animations each example (by key, support.examples) saves: file name prefix -> (width, height) of its FRAMES frames. A workflow not listed
#: here still runs, with the generic checks only (it wrote files, every file its output nodes report exists).
EXPECTED = {
    "demo_cpu": {"trackdiffusion_demo": DEMO_SIZE, "trackdiffusion_demo_boxes": DEMO_SIZE},
    "modelscope_trackdiffusion": {"trackdiffusion_t2v": T2V_SIZE, "trackdiffusion_t2v_boxes": T2V_SIZE},
    "svd_boxes_training_free": {"sgi2v": SVD_SIZE, "sgi2v_boxes": SVD_SIZE},
    "svd_trackdiffusion": {"trackdiffusion": SVD_SIZE, "trackdiffusion_boxes": SVD_SIZE},
    "svd_trackgo": {"trackgo": SVD_SIZE, "trackgo_trajectories": SVD_SIZE},
    "dataset_from_tracklets": {},  # a MOT sequence, checked in check_dataset
    # the reference clip with its followed boxes, stitched (2 px apart) to the demo model's clip along them
    "motion_from_video": {"motion_from_video": (64 + 2 + 64, 64), "motion_from_video_tracked": (64, 64)},
    # the shipped tiny SVD and its trained adapter, at their own 64x64
    "tiny_svd_trackdiffusion_cpu": {"tiny_svd_trackdiffusion": (64, 64), "tiny_svd_trackdiffusion_boxes": (64, 64)},
}
#: where an added model or guidance is the point of the example: the override that takes it away (strength 0, SG-I2V
#: off) for a second, reference run; the generated video must differ from it
ABLATION = {
    "svd_boxes_training_free": "TrackDiffusionSampler.trajectory_guidance=off",
    "svd_trackdiffusion": "InstanceEnhancerPatch.strength=0",
    "svd_trackgo": "TrackAdapterPatch.strength=0",
    "tiny_svd_trackdiffusion_cpu": "InstanceEnhancerPatch.strength=0",
}


def small_overrides(workflow: dict, key: str = "") -> list[str]:
    """SMALL (NATIVE's for a CPU-sized example) for every node of the workflow (by node id, so several nodes of one
    type are all made small)."""
    table = NATIVE.get(key, SMALL)
    return [f"{node['id']}.{key}={json.dumps(value)}" for node in workflow["nodes"]
            for key, value in table.get(node["type"], {}).items()]


# ----------------------------------------------------------------------------------------------- the tiny files


def _svd_files(checkpoints: Path, adapters: Path, scratch: Path) -> dict[str, Path]:
    from safetensors.torch import save_file

    from support.tiny_svd import diffusers_unet, write_official_trackdiffusion, write_svd_checkpoint
    from trackdiffusion.models.checkpoints import convert_svd
    from trackdiffusion.models.trackgo.diffusers import adapter_file, attach_trackgo

    base = diffusers_unet(seed=0, scale=2.0)  # a busy UNet: the random weights move the latent visibly
    files = {"svd": write_svd_checkpoint(checkpoints / "svd.safetensors", base)}

    # the official svd_stage2/unet release, then `trackdiffusion weights convert` as the README tells users
    official, _, _ = write_official_trackdiffusion(scratch / "svd_stage2" / "unet", base)
    result = convert_svd(official, adapters, dtype=torch.float16)
    assert result.path.name == "trackdiffusion_svd_stage2_fp16.safetensors", result.path
    files["trackdiffusion"] = result.path

    # a TrackAdapter for this SVD as training saves it (W'q/W'k from the base; a trained-looking random encoder)
    attachment = attach_trackgo(base)
    attachment.detach()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in attachment.adapter.encoder.parameters():
            p.normal_(0, 0.3, generator=generator)
    tensors, metadata = adapter_file(attachment.adapter, trained_steps=10)
    save_file(tensors, str(adapters / "trackadapter_svd.safetensors"), metadata=metadata)
    files["trackgo"] = adapters / "trackadapter_svd.safetensors"
    return files


@pytest.fixture(scope="module")
def example_models(comfy, tmp_path_factory):
    """Every model and input file the examples name, tiny, under those names; ComfyUI's detection knows the tiny SVD
    while the module runs. Removed afterwards."""
    import folder_paths

    from support.tiny_svd import tiny_detection, write_clip_vision_json

    scratch = tmp_path_factory.mktemp("example_models")
    folders = {kind: Path(folder_paths.get_folder_paths(kind)[0]) for kind in ("checkpoints", "trackdiffusion",
                                                                               "diffusers")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    inputs = Path(folder_paths.get_input_directory())
    created = [folders["checkpoints"] / "svd.safetensors",
               folders["trackdiffusion"] / "trackdiffusion_svd_stage2_fp16.safetensors",
               folders["trackdiffusion"] / "trackadapter_svd.safetensors",
               folders["trackdiffusion"] / "modelscope_ft", folders["diffusers"] / "TrackDiffusion_Pretrain",
               inputs / "example.png"]
    assert not any(p.exists() for p in created), "another test left files under the examples' names"
    # the pack itself copied example_workflows/input/ into the input folder when ComfyUI loaded it (the workflows'
    # tracklet files and first frames); example.png is the user's own picture in svd_*.json, so it is made here
    assert (inputs / "tracklets" / "street.json").read_bytes() == (
        REPO / "example_workflows" / "input" / "tracklets" / "street.json").read_bytes()

    files = _svd_files(folders["checkpoints"], folders["trackdiffusion"], scratch)
    # ModelScope: the stock text-to-video folder, and the released modelscope_ft/unet (config.json beside it)
    build_tiny_t2v_folder(folders["diffusers"] / "TrackDiffusion_Pretrain", trackdiffusion=False)
    tiny_trackdiffusion_unet3d(seed=0).save_pretrained(str(folders["trackdiffusion"] / "modelscope_ft" / "unet"))
    shutil.copy(comfy.path / "input" / "example.png", inputs / "example.png")
    try:
        with tiny_detection(write_clip_vision_json(scratch / "clip_vision_tiny.json")):
            yield files
    finally:
        for path in created:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------------ helpers


def run(comfy, path: Path, out: Path, overrides: list[str]):
    """run_workflow, turning a file the fixtures do not provide into a clear failure."""
    from trackdiffusion.nodes.runner.run import WorkflowInvalid, run_workflow

    try:
        return run_workflow(path, comfyui=comfy.path, overrides=overrides, out=out)
    except WorkflowInvalid as exc:
        problems = [(node_id, node_type, f"{err.get('message')}: {err.get('details')}")
                    for node_id, node_type, err in exc.errors]
        missing = [f"node {node_id} ({node_type}) {text}" for node_id, node_type, text in problems
                   if "not in list" in text or "Invalid image file" in text]
        if not missing:
            raise
    pytest.fail(f"{path.name} needs a file that the example_models fixture of {Path(__file__).name} does not "
                "provide; add a tiny one under that name:\n  " + "\n  ".join(missing), pytrace=False)


def saved(result, prefix: str) -> list[Path]:
    """The files of ComfyUI's ``<prefix>_00001_.webp`` kind that the run wrote."""
    pattern = re.compile(re.escape(prefix) + r"_\d{5}_\.(webp|png|gif)")
    return [p for p in result.files if pattern.fullmatch(p.name)]


def frames_of(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        out = []
        for i in range(getattr(image, "n_frames", 1)):
            image.seek(i)
            out.append(np.asarray(image.convert("RGB"), dtype=np.float32))
    return np.stack(out)


def check_files(result, expected: dict, frames: int = FRAMES) -> dict[str, np.ndarray]:
    """The run wrote files, and every file its output nodes reported exists; each expected prefix is one animation of
    FRAMES frames of the expected size, not all one colour. Returns the frames per prefix."""
    written = [p for p in result.out_dir.rglob("*") if p.is_file() and p.name not in ("prompt.json", "outputs.json")]
    assert written, "the workflow wrote no files"
    for path in result.files:
        assert path.is_file() and path.stat().st_size > 0, path
    out = {}
    for prefix, size in expected.items():
        files = saved(result, prefix)
        assert len(files) == 1, (prefix, [p.name for p in result.files])
        video = frames_of(files[0])
        assert video.shape == (frames, size[1], size[0], 3), (prefix, video.shape)
        assert video.std() > 1.0, f"{prefix}: a flat picture"
        out[prefix] = video
    return out


def check_dataset(out: Path, jobs: tuple[str, ...] = ()) -> None:
    """One MOT sequence per run (per batch job: ``out/<job>/``): FRAMES images of the sampler's size, gt.txt,
    seqinfo.ini."""
    sequences = sorted(out.glob(("*/" if jobs else "") + "trackdiffusion_dataset/synth_*"))
    assert [s.parent.parent.name for s in sequences] == (list(jobs) or [out.name]), sequences
    for seq in sequences:
        assert (seq / "gt" / "gt.txt").read_text().startswith("1,")
        images = sorted((seq / "img1").iterdir())
        assert len(images) == FRAMES and (seq / "seqinfo.ini").exists()
        with Image.open(images[0]) as first:
            assert first.size == T2V_SIZE


# -------------------------------------------------------------------------------------------------------- tests


def test_every_example_has_expectations():
    """EXPECTED and ABLATION name only existing examples (a renamed example would silently lose its checks)."""
    assert set(EXPECTED) <= {key_of(p) for p in WORKFLOWS}
    assert set(ABLATION) <= set(EXPECTED)


@pytest.mark.parametrize("path", WORKFLOWS, ids=[key_of(p) for p in WORKFLOWS])
def test_example_runs_end_to_end(comfy, example_models, path, tmp_path, caplog):
    workflow, key = json.loads(path.read_text()), key_of(path)
    overrides = small_overrides(workflow, key)
    frames = NATIVE_FRAMES if key in NATIVE else FRAMES
    with caplog.at_level(logging.INFO):
        result = run(comfy, path, tmp_path / "run", overrides)
    sgi2v_steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("SG-I2V step")]
    videos = check_files(result, EXPECTED.get(key, {}), frames)
    prompt_types = {entry["class_type"] for entry in result.prompt.values()}
    if "SaveTrackingDataset" in prompt_types:
        check_dataset(tmp_path / "run")

    modes = [e["inputs"].get("trajectory_guidance") for e in result.prompt.values()
             if e["class_type"] == "TrackDiffusionSampler"]
    if "SG-I2V boxes (training-free)" in modes:
        # the node logs one line per guided step: step 1 of 3, its alignment loss before and after the 2 AdamW
        # iterations (SG-I2V's optimisation of the latent ran, and pulled the features towards the boxes)
        assert len(sgi2v_steps) == 1, sgi2v_steps
        found = re.fullmatch(r"SG-I2V step 1 \(sigma .*\): alignment loss (\S+) -> (\S+) over 2 iterations",
                             sgi2v_steps[0])
        assert found and float(found[2]) < float(found[1]), sgi2v_steps
    else:
        assert not sgi2v_steps

    ablation = ABLATION.get(key)
    if ablation is not None:
        reference = check_files(run(comfy, path, tmp_path / "ablated", [*overrides, ablation]),
                                EXPECTED[key], frames)
        prefix = next(iter(EXPECTED[key]))  # the generated video (the others draw on it)
        difference = np.abs(videos[prefix] - reference[prefix]).mean()
        assert difference > 0.5, f"{ablation} leaves the video as it was (mean difference {difference:.3f})"


def test_dataset_example_makes_one_sequence_per_tracklet_file(comfy, example_models, tmp_path):
    from trackdiffusion.nodes.runner.run import run_batch

    path = example("dataset_from_tracklets")
    batch = tmp_path / "tracklets"
    batch.mkdir()
    for name in ("a", "b"):
        shutil.copy(REPO / "example_workflows" / "input" / "tracklets" / "street.json", batch / f"{name}.json")
    run_batch(path, batch, out=tmp_path / "out", comfyui=comfy.path,
              overrides=small_overrides(json.loads(path.read_text())))
    # the runner gathers everything a job wrote under ComfyUI's output folder into out/<tracklet file stem>/
    check_dataset(tmp_path / "out", ("a", "b"))
    # the batch folder (outside the input folder) was readable for that run only: Load Tracklets is confined again
    assert comfy.node_class("LoadTracklets").trusted_folders == ()

