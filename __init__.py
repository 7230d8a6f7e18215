"""TrackDiffusion for ComfyUI: tracklet- and trajectory-controlled video generation.

This folder is both a ComfyUI custom-node package (ComfyUI imports it under whatever folder name it was installed as,
so everything inside uses relative imports) and the Python package ``trackdiffusion`` (``pip install -e .``).
Importing it never imports ComfyUI: the nodes load only when ComfyUI calls ``comfy_entrypoint``.
"""

__version__ = "0.1.0"

# ComfyUI serves these JavaScript files to the frontend.
WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    """ComfyUI V3 entry point: returns the extension listing this pack's nodes."""
    from .nodes.extension import TrackDiffusionExtension

    return TrackDiffusionExtension()


__all__ = ["WEB_DIRECTORY", "__version__", "comfy_entrypoint"]
