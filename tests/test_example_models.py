"""The example workflows' model metadata: every node that loads a model file names, in ``properties.models``, the
download the frontend's missing-models dialog offers ({name, url, directory}, as ComfyUI's own templates write it),
unless the file has no public download (listed here, with why). Also: the templates' thumbnails are distinct, and
their file names (the cards' titles) are the generator's."""

from __future__ import annotations

import hashlib
import json

import pytest

from support.examples import TITLES, all_examples, key_of

WORKFLOWS = all_examples()

#: node type -> {widget index: the models/ folder of the file it names}
MODEL_WIDGETS = {
    "ImageOnlyCheckpointLoader": {0: "checkpoints"},
    "CheckpointLoaderSimple": {0: "checkpoints"},
    "LoadTrackDiffusionAdapter": {0: "trackdiffusion"},
    "LoadModelScopeTrackDiffusion": {0: "diffusers", 1: "trackdiffusion"},
}
#: widget values that name no downloadable file, and why
NO_DOWNLOAD = {
    "trackdiffusion_svd_stage2_fp16.safetensors": "made locally from the official file by `trackdiffusion weights "
                                                  "convert`",
    "trackadapter_svd.safetensors": "TrackGo released no weights; a TrackAdapter comes from training",
    "TrackDiffusion_Pretrain": "a diffusers folder: the dialog downloads single files",
    "none (the folder's UNet)": "not a file",
}
# the dialog's own rules (comfyui-frontend-package 1.35.9, MissingModelsWarning): other sources and suffixes are refused
ALLOWED_SOURCES = ("https://huggingface.co/", "https://civitai.com/")
ALLOWED_SUFFIXES = (".safetensors", ".sft")


def shipped_with_the_pack(value: str) -> bool:
    """Model files inside the pack (the tiny SVD's adapters, listed beside models/trackdiffusion) need no download."""
    from trackdiffusion.models.tiny_svd.files import ADAPTERS, TRACKDIFFUSION_ADAPTER

    return value == TRACKDIFFUSION_ADAPTER or (ADAPTERS / value).is_file()


@pytest.mark.parametrize("path", WORKFLOWS, ids=[key_of(p) for p in WORKFLOWS])
def test_every_model_loader_names_its_download(path):
    workflow = json.loads(path.read_text())
    for node in workflow["nodes"]:
        models = node.get("properties", {}).get("models", [])
        values = node.get("widgets_values") or []
        for model in models:
            assert set(model) == {"name", "url", "directory"}, model
            assert model["name"] in values, f"{path.name} {node['type']}: {model['name']} is no widget value, so " \
                                            "the frontend ignores it"
            assert model["url"].startswith(ALLOWED_SOURCES) and model["name"].endswith(ALLOWED_SUFFIXES), model
            # the URL downloads the file the name says (the last path part, before any query)
            assert model["url"].split("?")[0].endswith("/" + model["name"]), model
        for index, folder in MODEL_WIDGETS.get(node["type"], {}).items():
            value = values[index]
            if value in NO_DOWNLOAD or shipped_with_the_pack(value):
                assert not [m for m in models if m["name"] == value], f"{value}: {NO_DOWNLOAD.get(value)}"
                continue
            named = [m for m in models if m["name"] == value]
            assert len(named) == 1, f"{path.name} {node['type']} loads {value} but gives no download for it"
            assert named[0]["directory"] == folder, named[0]


#: loaders of things that are not model downloads: inputs (copied into ComfyUI's input folder with the pack) and the
#: tiny SVD, which ships inside the pack
NOT_MODEL_LOADERS = {"LoadImage", "LoadVideo", "LoadTracklets", "LoadTinySVD"}


def test_the_examples_load_models_through_known_loaders_only():
    """A new loader type in an example must be added to MODEL_WIDGETS (or it would go unchecked)."""
    loaders = {n["type"] for p in WORKFLOWS for n in json.loads(p.read_text())["nodes"] if "Load" in n["type"]}
    assert loaders - NOT_MODEL_LOADERS <= set(MODEL_WIDGETS), loaders


def test_each_template_has_its_own_thumbnail():
    """The template browser shows example_workflows/<name>.jpg on the card: one per workflow, no two the same."""
    digests = {}
    for path in WORKFLOWS:
        thumbnail = path.with_suffix(".jpg")
        assert thumbnail.is_file(), f"{thumbnail.name} is missing (python dev/make_example_workflows.py makes it)"
        digests.setdefault(hashlib.sha256(thumbnail.read_bytes()).hexdigest(), []).append(thumbnail.name)
    assert not [names for names in digests.values() if len(names) > 1]


def test_the_examples_are_the_generators_under_their_titles():
    """The template browser titles a card by its file name: example_workflows/ holds exactly the workflows
    dev/make_example_workflows.py names in TITLES (no file left under an old name), titles fit for a card."""
    assert sorted(p.stem for p in WORKFLOWS) == sorted(TITLES.values())
    assert sorted(p.stem for p in WORKFLOWS[0].parent.glob("*.jpg")) == sorted(TITLES.values())
    for title in TITLES.values():
        assert title == title.strip() and "_" not in title and len(title) <= 60, title
