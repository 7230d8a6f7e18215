"""The ModelScope TrackDiffusion nodes inside real ComfyUI: a tiny random text-to-video folder under
models/diffusers, loaded and sampled by the node classmethods and by ComfyUI's own PromptExecutor."""

from __future__ import annotations

import importlib
import shutil
import uuid
from pathlib import Path

import pytest

# Import the model classes at collection time, before the comfy fixture puts the import-only torchvision stand-in on
# sys.path: transformers' model modules import torchvision.transforms when they think it is installed.
from diffusers import AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, UNet3DConditionModel  # noqa: F401
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

from support.tiny_models import build_tiny_t2v_folder

REPO = Path(__file__).resolve().parents[2]
STREET = (REPO / "example_workflows" / "input" / "tracklets" / "street.json").read_text()
NODE_IDS = ("LoadModelScopeTrackDiffusion", "ModelScopeTrackDiffusionSampler")


@pytest.fixture(scope="module")
def pack_nodes(comfy):
    """This pack's modelscope_nodes module, imported under the package name ComfyUI gave the pack."""
    package = comfy.node_class("LoadTracklets").__module__.rsplit(".nodes.", 1)[0]
    return importlib.import_module(f"{package}.nodes.modelscope_nodes")


@pytest.fixture(scope="module")
def tiny_folder(comfy):
    import folder_paths

    root = Path(folder_paths.get_folder_paths("diffusers")[0])
    name = f"td_test_t2v_{uuid.uuid4().hex[:8]}"
    folder = build_tiny_t2v_folder(root / name)
    yield name
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def registered(comfy_with_probe, pack_nodes):
    """The two nodes in NODE_CLASS_MAPPINGS (added here when the pack's node list does not have them yet)."""
    comfy = comfy_with_probe
    mappings = comfy.nodes.NODE_CLASS_MAPPINGS
    added = []
    for node_id in NODE_IDS:
        if node_id not in mappings:
            mappings[node_id] = getattr(pack_nodes, node_id)
            added.append(node_id)
    yield comfy
    for node_id in added:
        mappings.pop(node_id, None)


def test_nodes_generate_an_image_batch(comfy, pack_nodes, tiny_folder):
    package = pack_nodes.__name__.rsplit(".nodes.", 1)[0]
    tracklets_mod = importlib.import_module(f"{package}.data.tracklets")
    assert tiny_folder in pack_nodes.diffusers_folders()
    info = pack_nodes.LoadModelScopeTrackDiffusion.GET_NODE_INFO_V1()
    assert info["output"] == ["MODELSCOPE_TRACKDIFFUSION"]
    combo = info["input"]["required"]["t2v_folder"]
    assert tiny_folder in (combo[1]["options"] if combo[0] == "COMBO" else combo[0])

    model = pack_nodes.LoadModelScopeTrackDiffusion.execute(tiny_folder, pack_nodes.NO_UNET, "auto").result[0]
    tracklets = tracklets_mod.load(STREET)
    steps_seen = []
    import comfy.utils

    old_hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: steps_seen.append(value))
    try:
        out = pack_nodes.ModelScopeTrackDiffusionSampler.execute(
            model, tracklets, "a street", "", 6, 64, 32, 2, 3.0, "normalized", "default", 5).result[0]
    finally:
        comfy.utils.set_progress_bar_global_hook(old_hook)
    assert tuple(out.shape) == (6, 32, 64, 3) and str(out.dtype) == "torch.float32"
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert steps_seen == [1, 2]
    again = pack_nodes.ModelScopeTrackDiffusionSampler.execute(
        model, tracklets, "a street", "", 6, 64, 32, 2, 3.0, "normalized", "default", 5).result[0]
    assert (again == out).all()

    import comfy.model_management as mm

    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            pack_nodes.ModelScopeTrackDiffusionSampler.execute(
                model, tracklets, "a street", "", 2, 64, 32, 2, 3.0, "standard", "ddim", 5)
    finally:
        mm.interrupt_current_processing(False)


def test_prompt_executes_loader_and_sampler(registered, tiny_folder):
    prompt = {
        "1": {"class_type": "LoadTracklets",
              "inputs": {"source": STREET, "format": "auto", "width": 0, "height": 0, "num_frames": 0, "video": "",
                         "box_size": 64.0, "strict": False}},
        "2": {"class_type": "LoadModelScopeTrackDiffusion",
              "inputs": {"t2v_folder": tiny_folder, "unet_name": "none (the folder's UNet)", "dtype": "fp32"}},
        "3": {"class_type": "ModelScopeTrackDiffusionSampler",
              "inputs": {"model": ["2", 0], "tracklets": ["1", 0], "prompt": "cars", "negative_prompt": "",
                         "num_frames": 4, "width": 64, "height": 64, "steps": 2, "cfg": 1.2,
                         "guidance": "normalized", "scheduler": "dpm++", "seed": 1}},
        "4": {"class_type": "TDTestProbe", "inputs": {"value": ["3", 0]}},
    }
    outputs, messages, success = registered.run_prompt(prompt)
    assert success, messages
    assert outputs["4"]["probe"][0] == {"shape": [4, 64, 64, 3], "dtype": "torch.float32"}

