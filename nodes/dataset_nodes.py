"""Generated frames + their tracklets -> tracker training data."""

from __future__ import annotations

import os
import re
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..data.dataset import claim_next_sequence_name, write_tracking_sequence
from ..data.errors import InvalidInputError
from .convert import image_to_numpy
from .progress import comfy_progress
from .types import CATEGORY, Tracklets

#: one folder of the dataset path (under ComfyUI's output folder)
_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*")


def check_folder_part(part: str) -> bool:
    """'..' (checked against the output folder after resolving), or a plain name of at most 100 characters."""
    return part == ".." or (len(part) <= 100 and _FOLDER.fullmatch(part) is not None)


class SaveTrackingDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SaveTrackingDataset",
            display_name="Save Tracking Dataset",
            category=CATEGORY,
            description="Writes the frames and the tracklets that conditioned them as a MOT Challenge sequence "
            "(img1/, gt/gt.txt, seqinfo.ini) plus a YouTube-VIS json, under ComfyUI's output folder. Each run gets a "
            "new numbered sequence; nothing is overwritten and an interrupted run leaves no half sequence.",
            inputs=[
                io.Image.Input("images"),
                Tracklets.Input("tracklets"),
                io.String.Input("dataset", default="trackdiffusion_dataset",
                                tooltip="Folder under ComfyUI's output folder."),
                io.String.Input("sequence_prefix", default="synth"),
                io.Combo.Input("image_format", options=["jpg", "png"]),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, images, tracklets, dataset, sequence_prefix, image_format) -> io.NodeOutput:
        parts = [p for p in str(dataset).replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or any(not check_folder_part(p) for p in parts):
            raise InvalidInputError(f"dataset folder {dataset!r:.80} is not a folder name.",
                                    fix="give a relative folder name such as trackdiffusion_dataset (letters, digits, "
                                    "'.', '_', '-', at most 100 characters per folder).")
        output_dir = os.path.realpath(folder_paths.get_output_directory())
        root = os.path.realpath(os.path.join(output_dir, *parts))
        if os.path.commonpath([root, output_dir]) != output_dir:
            raise InvalidInputError(f"dataset folder {dataset!r} leaves ComfyUI's output folder.",
                                    fix="give a relative folder name such as trackdiffusion_dataset.")
        frames = image_to_numpy(images)
        try:
            # claimed, not just looked up: another process (a shard, a second server) may fill the same folder
            name = claim_next_sequence_name(Path(root), sequence_prefix)
            target = write_tracking_sequence(frames, tracklets, root, name, image_format=image_format, claimed=True,
                                             progress=comfy_progress())
        except OSError as exc:
            raise InvalidInputError(f"could not write the dataset ({exc.strerror or type(exc).__name__}).",
                                    fix="check the output folder's space and permissions.", source=dataset[:80]) from None
        return io.NodeOutput(ui=ui.PreviewText(f"wrote {target}"))
