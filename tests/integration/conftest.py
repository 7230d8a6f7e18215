"""Real ComfyUI for the integration tests: in process (``comfy``: ComfyUI's own ``PromptExecutor``) and as a server
(``comfy_server``: ``main.py`` over HTTP on loopback).

ComfyUI is found by :mod:`support.comfyui` ($COMFYUI_PATH, ../ComfyUI, ../shared/ComfyUI). Without it every test here
skips with the reason, except under CI (``CI=true``), where that is a failure. The pack is installed into a
throw-away base directory under a folder name that is NOT "trackdiffusion", the way a user's clone or a registry
install would be, so relative imports are proven; nothing is written into the ComfyUI tree.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

from support.comfyui import REPO, put_stand_in_on_path, real_torchvision, require_comfyui
from support.server import comfy_server as start_comfy_server

PACK_FOLDER_NAME = "ComfyUI-TrackDiffusion-main"


class StubServer:
    """The attributes PromptExecutor and its progress handler touch on a PromptServer."""

    client_id = None
    last_node_id = None
    last_prompt_id = None
    sockets_metadata: ClassVar[dict] = {}

    def send_sync(self, event, data, sid=None):
        pass

    def queue_updated(self):
        pass


class ComfyHarness:
    def __init__(self, path: Path, base: Path):
        self.path = path
        self.base = base
        import execution

        import nodes

        self.nodes = nodes
        self.execution = execution

    def node_class(self, node_id: str):
        return self.nodes.NODE_CLASS_MAPPINGS[node_id]

    def run_prompt(self, prompt: dict) -> tuple[dict, list]:
        """Validate and execute an API-format prompt. Returns (outputs per node id, status messages)."""
        pid = str(uuid.uuid4())
        valid, error, outputs, node_errors = asyncio.run(self.execution.validate_prompt(pid, prompt, None))
        if not valid:
            raise AssertionError(f"prompt invalid: {error} {node_errors}")
        ex = self.execution.PromptExecutor(StubServer(), cache_type=self.execution.CacheType.CLASSIC,
                                           cache_args={"lru": 0, "ram": 0})
        ex.execute(prompt, pid, {}, outputs)
        return ex.history_result.get("outputs", {}), ex.status_messages, ex.success


@pytest.fixture(scope="session")
def comfy(tmp_path_factory) -> ComfyHarness:
    path = require_comfyui()
    sys.dont_write_bytecode = True  # nothing is written into the ComfyUI tree (read-only in CI)
    if not real_torchvision():
        # diffusers and transformers decide once, at first import, whether torchvision is usable; import the parts
        # the pack uses before the stand-in exists, so they take the no-torchvision paths.
        import diffusers
        import transformers

        _ = (diffusers.UNet3DConditionModel, diffusers.AutoencoderKL, diffusers.DDIMScheduler,
             diffusers.UNetSpatioTemporalConditionModel, transformers.CLIPTextModel, transformers.CLIPTokenizer)
    put_stand_in_on_path()  # comfy.sd imports torchvision; test-only, and only when no real one imports here
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    os.symlink(REPO, base / "custom_nodes" / PACK_FOLDER_NAME, target_is_directory=True)
    sys.path.insert(0, str(path))
    from comfy.cli_args import args

    args.cpu = True
    args.base_directory = str(base)
    args.disable_api_nodes = True
    import utils.extra_config  # noqa: F401  (must precede `import nodes`, which shadows `utils` with comfy/utils.py)

    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if "LoadTracklets" not in nodes.NODE_CLASS_MAPPINGS:
        pytest.fail("ComfyUI did not register this pack's nodes; see the import error in the log above")
    return ComfyHarness(path, base)


def describe(value) -> dict:
    """A JSON-able description of a node output, for assertions on values that are not images."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    if hasattr(value, "objects") and hasattr(value, "num_frames"):
        return {"tracklets": value.to_dict()}
    return {"repr": repr(value)[:200]}


class ProbeNode:
    """A V1 output node that reports what reached it, registered only in tests."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {})}}

    RETURN_TYPES = ()
    FUNCTION = "probe"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True

    def probe(self, value):
        return {"ui": {"probe": [describe(value)]}}


@pytest.fixture(scope="session")
def comfy_with_probe(comfy):
    comfy.nodes.NODE_CLASS_MAPPINGS["TDTestProbe"] = ProbeNode
    return comfy


@pytest.fixture(scope="session")
def tiny_svd(comfy):
    """A ComfyUI SVD with the real 16-transformer layout at 1/10 the width (support.tiny_svd's sizes), loaded through
    ComfyUI's own state-dict detection and loader (random weights, seeded)."""
    import comfy.ops
    import comfy.sd
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from support.tiny_svd import CHANNELS, CONTEXT, HEAD_DIM, tiny_detection
    from trackdiffusion.nodes.patches.svd import svd_unet_config

    config = svd_unet_config(CHANNELS, CONTEXT, HEAD_DIM)
    unet = UNetModel(**config, device="cpu", operations=comfy.ops.disable_weight_init)
    generator = torch.Generator().manual_seed(0)
    state_dict = {f"model.diffusion_model.{k}": torch.randn(v.shape, generator=generator) * 0.05
                  for k, v in unet.state_dict().items()}
    with tiny_detection():
        model = comfy.sd.load_diffusion_model_state_dict(state_dict)
    assert type(model.model).__name__ == "SVD_img2vid"
    return model


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory):
    """ComfyUI's own server (``main.py --cpu``, its bundled frontend) with this pack, shared by the HTTP and browser
    tests of the whole session."""
    path = require_comfyui()
    with start_comfy_server(path, tmp_path_factory.mktemp("comfy_server")) as server:
        yield server
