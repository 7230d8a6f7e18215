"""The ComfyUI layer: everything that imports ComfyUI, on top of the ComfyUI-free core (data, models, training,
evaluation).

* the V3 nodes (``*_nodes.py``; :mod:`.extension` lists them for ComfyUI), thin wrappers that translate ComfyUI types
  to and from the core;
* :mod:`.patches`: the model patches (TrackDiffusion, TrackGo, SG-I2V) on ComfyUI's SVD, through ``ModelPatcher``;
* :mod:`.runner`: ``trackdiffusion run``, workflows executed headlessly inside a ComfyUI checkout.

Importing this package imports no ComfyUI module: each node module does, when ComfyUI loads the extension.
"""
