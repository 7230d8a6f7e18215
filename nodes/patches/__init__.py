"""Patches for ComfyUI's models. Functions here take and return ComfyUI ``ModelPatcher`` objects and import ComfyUI
only when called, so the package stays importable (and its pure parts testable) without ComfyUI."""
