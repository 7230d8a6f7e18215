"""What the tests and benchmarks share: where ComfyUI is (:mod:`support.comfyui`), tiny random models
(:mod:`support.tiny_models`), UI-workflow builders (:mod:`support.workflows`) and a real ComfyUI server
(:mod:`support.server`). ``tests/`` is on ``sys.path`` (pytest's ``pythonpath``), so tests import ``support.*``."""
