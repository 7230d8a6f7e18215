"""Writes example_workflows/*.json in ComfyUI's UI (canvas) format from compact node lists.

    python scripts/make_example_workflows.py

Widget values are listed in each node's widget order (KSampler's seed is followed by its control_after_generate
value, as the frontend saves it). tests/integration/test_example_workflows.py checks the result against real
ComfyUI's node definitions.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STREET = json.loads((REPO / "examples" / "tracklets" / "street.json").read_text())


# TrackDiffusionSampler's optional SG-I2V widgets, in order: trajectory_guidance, sgi2v_start, sgi2v_end,
# sgi2v_iterations, sgi2v_lr, sgi2v_fft_ratio, sgi2v_heatmap_sigma, sgi2v_layers, sgi2v_memory_budget_gb.
SGI2V_OFF = ["off", 0.1, 0.4, 5, 0.21, 0.5, 0.4, "output_blocks.7.1, output_blocks.8.1", 0.0]
SGI2V_ON = ["SG-I2V boxes (training-free)", *SGI2V_OFF[1:]]


def build(nodes: list[dict], links: list[tuple]) -> dict:
    """nodes: {id, type, pos, widgets, inputs: [(name, type, widget?)], outputs: [(name, type)]};
    links: (from_id, from_slot, to_id, to_input_name)."""
    by_id = {n["id"]: n for n in nodes}
    ui_links, out_nodes = [], []
    for link_id, (src, slot, dst, name) in enumerate(links, start=1):
        dst_inputs = by_id[dst]["inputs"]
        to_slot = next(i for i, inp in enumerate(dst_inputs) if inp[0] == name)
        ui_links.append([link_id, src, slot, dst, to_slot, by_id[src]["outputs"][slot][1]])
    for order, n in enumerate(nodes):
        inputs = []
        for name, typ, *widget in n["inputs"]:
            link = next((lk[0] for lk in ui_links if lk[3] == n["id"] and lk[4] == len(inputs)), None)
            entry = {"name": name, "type": typ, "link": link}
            if widget:
                entry["widget"] = {"name": name}
            inputs.append(entry)
        outputs = [{"name": name, "type": typ, "slot_index": i,
                    "links": [lk[0] for lk in ui_links if lk[1] == n["id"] and lk[2] == i]}
                   for i, (name, typ) in enumerate(n["outputs"])]
        out_nodes.append({"id": n["id"], "type": n["type"], "pos": n["pos"], "size": n.get("size", [320, 160]),
                          "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                          "properties": {"Node name for S&R": n["type"]}, "widgets_values": n["widgets"]})
    return {"last_node_id": max(by_id), "last_link_id": len(ui_links), "nodes": out_nodes, "links": ui_links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def svd_trackdiffusion() -> dict:
    nodes = [
        {"id": 1, "type": "ImageOnlyCheckpointLoader", "pos": [0, 0], "widgets": ["svd.safetensors"], "inputs": [],
         "outputs": [("MODEL", "MODEL"), ("CLIP_VISION", "CLIP_VISION"), ("VAE", "VAE")]},
        {"id": 2, "type": "LoadImage", "pos": [0, 200], "widgets": ["example.png", "image"], "inputs": [],
         "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]},
        # The Tracklet Editor draws over the input image; its state is the tracklet JSON (here the street example).
        {"id": 3, "type": "TrackletEditor", "pos": [0, 560], "size": [620, 620],
         "widgets": [json.dumps(STREET), 1024, 576, 14], "inputs": [("background", "IMAGE")],
         "outputs": [("tracklets", "TRACKLETS"), ("tracks", "TRACKS"), ("masks", "MASK"), ("preview", "IMAGE")]},
        {"id": 4, "type": "LoadTrackDiffusionAdapter", "pos": [420, 0],
         "widgets": ["trackdiffusion_svd_stage2_fp16.safetensors"], "inputs": [],
         "outputs": [("adapter", "TRACKDIFFUSION_ADAPTER")]},
        {"id": 5, "type": "InstanceEnhancerPatch", "pos": [780, 0], "widgets": [1.0, 0.0, 1.0],
         "inputs": [("model", "MODEL"), ("adapter", "TRACKDIFFUSION_ADAPTER"), ("tracklets", "TRACKLETS")],
         "outputs": [("MODEL", "MODEL")]},
        # fps 8: ComfyUI passes fps-1 = 7, the value TrackDiffusion-SVD was trained with.
        # width, height and frames match the editor's (the patch checks the frame count and says so if it differs)
        {"id": 7, "type": "SVD_img2vid_Conditioning", "pos": [420, 300], "widgets": [1024, 576, 14, 127, 8, 0.02],
         "inputs": [("clip_vision", "CLIP_VISION"), ("init_image", "IMAGE"), ("vae", "VAE")],
         "outputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")]},
        {"id": 8, "type": "TrackDiffusionSampler", "pos": [1120, 200],
         "widgets": [42, "fixed", 25, 1.0, 3.0, "linear per frame (SVD)", "euler", "karras", 1.0, *SGI2V_OFF],
         "inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                    ("latent_image", "LATENT")], "outputs": [("LATENT", "LATENT")]},
        {"id": 9, "type": "VAEDecode", "pos": [1460, 200], "widgets": [],
         "inputs": [("samples", "LATENT"), ("vae", "VAE")], "outputs": [("IMAGE", "IMAGE")]},
        {"id": 10, "type": "VisualizeTracklets", "pos": [1460, 400], "widgets": [True, 2, True],
         "inputs": [("tracklets", "TRACKLETS"), ("images", "IMAGE")], "outputs": [("images", "IMAGE")]},
        {"id": 11, "type": "SaveAnimatedWEBP", "pos": [1800, 200], "widgets": ["trackdiffusion", 8.0, False, 90, "default"],
         "inputs": [("images", "IMAGE")], "outputs": []},
        {"id": 12, "type": "SaveAnimatedWEBP", "pos": [1800, 500],
         "widgets": ["trackdiffusion_boxes", 8.0, False, 90, "default"], "inputs": [("images", "IMAGE")],
         "outputs": []},
    ]
    links = [(1, 0, 5, "model"), (4, 0, 5, "adapter"), (3, 0, 5, "tracklets"), (2, 0, 3, "background"),
             (1, 1, 7, "clip_vision"), (2, 0, 7, "init_image"), (1, 2, 7, "vae"), (5, 0, 8, "model"),
             (7, 0, 8, "positive"),
             (7, 1, 8, "negative"), (7, 2, 8, "latent_image"), (8, 0, 9, "samples"), (1, 2, 9, "vae"),
             (9, 0, 11, "images"), (3, 0, 10, "tracklets"), (9, 0, 10, "images"), (10, 0, 12, "images")]
    return build(nodes, links)


def trajectory_state() -> str:
    """The Point Trajectory Editor's state for the example: one painted part and its arrow."""
    import numpy as np

    from trackdiffusion.editor_state import TRAJECTORY_FORMAT, rle_encode

    mask = np.zeros((576, 1024), bool)
    mask[230:370, 300:460] = True
    return json.dumps({"format": TRAJECTORY_FORMAT, "version": 1, "width": 1024, "height": 576, "components": [
        {"label": "part 1", "mask": rle_encode(mask), "arrow": [[380, 300], [560, 300], [700, 260]]}]})


def svd_trackgo() -> dict:
    nodes = [
        {"id": 1, "type": "ImageOnlyCheckpointLoader", "pos": [0, 0], "widgets": ["svd.safetensors"], "inputs": [],
         "outputs": [("MODEL", "MODEL"), ("CLIP_VISION", "CLIP_VISION"), ("VAE", "VAE")]},
        {"id": 2, "type": "LoadImage", "pos": [0, 200], "widgets": ["example.png", "image"], "inputs": [],
         "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]},
        # Paint each moving part on the first frame and draw its arrow in the Point Trajectory Editor.
        {"id": 3, "type": "PointTrajectoryEditor", "pos": [380, 420], "size": [620, 620],
         "widgets": [trajectory_state(), 1024, 576, 14, 0, 4], "inputs": [("background", "IMAGE")],
         "outputs": [("trajectories", "POINT_TRAJECTORIES"), ("tracks", "TRACKS"), ("trajectory_video", "IMAGE"),
                     ("masks", "MASK")]},
        {"id": 4, "type": "LoadTrackDiffusionAdapter", "pos": [380, 0], "widgets": ["trackadapter_svd.safetensors"],
         "inputs": [], "outputs": [("adapter", "TRACKDIFFUSION_ADAPTER")]},
        {"id": 5, "type": "TrackAdapterPatch", "pos": [760, 0], "widgets": [-100.0, 0.2, 1.0, 4],
         "inputs": [("model", "MODEL"), ("trajectories", "POINT_TRAJECTORIES"),
                    ("adapter", "TRACKDIFFUSION_ADAPTER")], "outputs": [("MODEL", "MODEL")]},
        {"id": 6, "type": "VideoLinearCFGGuidance", "pos": [1100, 0], "widgets": [1.0],
         "inputs": [("model", "MODEL")], "outputs": [("MODEL", "MODEL")]},
        {"id": 7, "type": "SVD_img2vid_Conditioning", "pos": [380, 200], "widgets": [1024, 576, 14, 127, 8, 0.02],
         "inputs": [("clip_vision", "CLIP_VISION"), ("init_image", "IMAGE"), ("vae", "VAE")],
         "outputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")]},
        {"id": 8, "type": "KSampler", "pos": [1100, 200], "widgets": [42, "fixed", 25, 2.5, "euler", "karras", 1.0],
         "inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                    ("latent_image", "LATENT")], "outputs": [("LATENT", "LATENT")]},
        {"id": 9, "type": "VAEDecode", "pos": [1440, 200], "widgets": [],
         "inputs": [("samples", "LATENT"), ("vae", "VAE")], "outputs": [("IMAGE", "IMAGE")]},
        {"id": 10, "type": "SaveAnimatedWEBP", "pos": [1780, 200], "widgets": ["trackgo", 8.0, False, 90, "default"],
         "inputs": [("images", "IMAGE")], "outputs": []},
        {"id": 11, "type": "SaveAnimatedWEBP", "pos": [760, 420],
         "widgets": ["trackgo_trajectories", 8.0, True, 90, "default"], "inputs": [("images", "IMAGE")],
         "outputs": []},
    ]
    links = [(2, 0, 3, "background"), (1, 0, 5, "model"), (3, 0, 5, "trajectories"), (4, 0, 5, "adapter"),
             (5, 0, 6, "model"), (1, 1, 7, "clip_vision"), (2, 0, 7, "init_image"), (1, 2, 7, "vae"),
             (6, 0, 8, "model"), (7, 0, 8, "positive"), (7, 1, 8, "negative"), (7, 2, 8, "latent_image"),
             (8, 0, 9, "samples"), (1, 2, 9, "vae"), (9, 0, 10, "images"), (3, 2, 11, "images")]
    return build(nodes, links)


def modelscope_trackdiffusion() -> dict:
    io_t = [("tracklets", "TRACKLETS"), ("width", "INT"), ("height", "INT"), ("num_frames", "INT")]
    nodes = [
        {"id": 1, "type": "LoadModelScopeTrackDiffusion", "pos": [0, 0], "inputs": [],
         "outputs": [("model", "MODELSCOPE_TRACKDIFFUSION")],
         "widgets": ["TrackDiffusion_Pretrain", "modelscope_ft/unet/diffusion_pytorch_model.safetensors", "auto"]},
        {"id": 2, "type": "LoadTracklets", "pos": [0, 200], "size": [400, 300], "inputs": [], "outputs": io_t,
         "widgets": [json.dumps(STREET, indent=1), "auto", 0, 0, 0, "", 64.0, False]},
        {"id": 3, "type": "ModelScopeTrackDiffusionSampler", "pos": [440, 0], "size": [360, 420],
         "inputs": [("model", "MODELSCOPE_TRACKDIFFUSION"), ("tracklets", "TRACKLETS")],
         "outputs": [("images", "IMAGE")],
         "widgets": ["a car and a person on a city street", "", 0, 384, 256, 50, 1.2, "normalized", "pndm", 42,
                     "fixed"]},
        {"id": 4, "type": "VisualizeTracklets", "pos": [840, 300], "widgets": [True, 2, True],
         "inputs": [("tracklets", "TRACKLETS"), ("images", "IMAGE")], "outputs": [("images", "IMAGE")]},
        {"id": 5, "type": "SaveAnimatedWEBP", "pos": [840, 0], "widgets": ["trackdiffusion_t2v", 8.0, False, 90,
                                                                           "default"],
         "inputs": [("images", "IMAGE")], "outputs": []},
        {"id": 6, "type": "SaveAnimatedWEBP", "pos": [1180, 300],
         "widgets": ["trackdiffusion_t2v_boxes", 8.0, False, 90, "default"], "inputs": [("images", "IMAGE")],
         "outputs": []},
    ]
    return build(nodes, [(1, 0, 3, "model"), (2, 0, 3, "tracklets"), (3, 0, 5, "images"), (2, 0, 4, "tracklets"),
                         (3, 0, 4, "images"), (4, 0, 6, "images")])


def dataset_from_tracklets() -> dict:
    """Run with `trackdiffusion run dataset_from_tracklets.json --batch DIR`: one MOT sequence per tracklet file."""
    io_t = [("tracklets", "TRACKLETS"), ("width", "INT"), ("height", "INT"), ("num_frames", "INT")]
    nodes = [
        {"id": 1, "type": "LoadModelScopeTrackDiffusion", "pos": [0, 0], "inputs": [],
         "outputs": [("model", "MODELSCOPE_TRACKDIFFUSION")],
         "widgets": ["TrackDiffusion_Pretrain", "modelscope_ft/unet/diffusion_pytorch_model.safetensors", "auto"]},
        {"id": 2, "type": "LoadTracklets", "pos": [0, 200], "size": [400, 200], "inputs": [], "outputs": io_t,
         "widgets": ["tracklets/street.json", "auto", 0, 0, 0, "", 64.0, False]},
        {"id": 3, "type": "ModelScopeTrackDiffusionSampler", "pos": [440, 0], "size": [360, 420],
         "inputs": [("model", "MODELSCOPE_TRACKDIFFUSION"), ("tracklets", "TRACKLETS")],
         "outputs": [("images", "IMAGE")],
         "widgets": ["a street scene, multi-object tracking video", "", 0, 384, 256, 50, 1.2, "normalized", "pndm",
                     0, "increment"]},
        {"id": 4, "type": "SaveTrackingDataset", "pos": [840, 0], "size": [320, 160],
         "inputs": [("images", "IMAGE"), ("tracklets", "TRACKLETS")], "outputs": [],
         "widgets": ["trackdiffusion_dataset", "synth", "jpg"]},
    ]
    return build(nodes, [(1, 0, 3, "model"), (2, 0, 3, "tracklets"), (3, 0, 4, "images"), (2, 0, 4, "tracklets")])


def svd_boxes_training_free() -> dict:
    """Stock SVD steered along Tracklet Editor boxes by SG-I2V (no adapter): SG-I2V's 50 euler steps, fps 7."""
    nodes = [
        {"id": 1, "type": "ImageOnlyCheckpointLoader", "pos": [0, 0], "widgets": ["svd.safetensors"], "inputs": [],
         "outputs": [("MODEL", "MODEL"), ("CLIP_VISION", "CLIP_VISION"), ("VAE", "VAE")]},
        {"id": 2, "type": "LoadImage", "pos": [0, 200], "widgets": ["example.png", "image"], "inputs": [],
         "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]},
        {"id": 3, "type": "TrackletEditor", "pos": [0, 560], "size": [620, 620],
         "widgets": [json.dumps(STREET), 1024, 576, 14], "inputs": [("background", "IMAGE")],
         "outputs": [("tracklets", "TRACKLETS"), ("tracks", "TRACKS"), ("masks", "MASK"), ("preview", "IMAGE")]},
        {"id": 4, "type": "SVD_img2vid_Conditioning", "pos": [420, 300], "widgets": [1024, 576, 14, 127, 7, 0.02],
         "inputs": [("clip_vision", "CLIP_VISION"), ("init_image", "IMAGE"), ("vae", "VAE")],
         "outputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")]},
        {"id": 5, "type": "TrackDiffusionSampler", "pos": [780, 200], "size": [360, 560],
         "widgets": [817, "fixed", 50, 1.0, 3.0, "linear per frame (SVD)", "euler", "karras", 1.0, *SGI2V_ON],
         "inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                    ("latent_image", "LATENT"), ("tracklets", "TRACKLETS")], "outputs": [("LATENT", "LATENT")]},
        {"id": 6, "type": "VAEDecode", "pos": [1180, 200], "widgets": [],
         "inputs": [("samples", "LATENT"), ("vae", "VAE")], "outputs": [("IMAGE", "IMAGE")]},
        {"id": 7, "type": "VisualizeTracklets", "pos": [1180, 400], "widgets": [True, 2, True],
         "inputs": [("tracklets", "TRACKLETS"), ("images", "IMAGE")], "outputs": [("images", "IMAGE")]},
        {"id": 8, "type": "SaveAnimatedWEBP", "pos": [1520, 200], "widgets": ["sgi2v", 7.0, False, 90, "default"],
         "inputs": [("images", "IMAGE")], "outputs": []},
        {"id": 9, "type": "SaveAnimatedWEBP", "pos": [1520, 500],
         "widgets": ["sgi2v_boxes", 7.0, False, 90, "default"], "inputs": [("images", "IMAGE")], "outputs": []},
    ]
    links = [(2, 0, 3, "background"), (1, 1, 4, "clip_vision"), (2, 0, 4, "init_image"), (1, 2, 4, "vae"),
             (1, 0, 5, "model"), (4, 0, 5, "positive"), (4, 1, 5, "negative"), (4, 2, 5, "latent_image"),
             (3, 0, 5, "tracklets"), (5, 0, 6, "samples"), (1, 2, 6, "vae"), (6, 0, 8, "images"),
             (3, 0, 7, "tracklets"), (6, 0, 7, "images"), (7, 0, 9, "images")]
    return build(nodes, links)


def demo_cpu() -> dict:
    """The embedded demo model on the CPU, nothing to download: a SynTrack test clip's first frame and boxes."""
    nodes = [
        # widgets: syntrack_clip, frames (0 = the tracklets'), steps, seed + its control value, upscale
        {"id": 1, "type": "TrackDiffusionDemo", "pos": [0, 0], "size": [340, 260], "widgets": [20000, 0, 20, 0,
                                                                                               "fixed", 4],
         "inputs": [("first_frame", "IMAGE"), ("tracklets", "TRACKLETS")],
         "outputs": [("frames", "IMAGE"), ("tracklets", "TRACKLETS")]},
        {"id": 2, "type": "SaveAnimatedWEBP", "pos": [400, 0], "widgets": ["trackdiffusion_demo", 8.0, False, 90,
                                                                           "default"],
         "inputs": [("images", "IMAGE")], "outputs": []},
        {"id": 3, "type": "VisualizeTracklets", "pos": [400, 300], "widgets": [True, 1, False],
         "inputs": [("tracklets", "TRACKLETS"), ("images", "IMAGE")], "outputs": [("images", "IMAGE")]},
        {"id": 4, "type": "SaveAnimatedWEBP", "pos": [740, 300],
         "widgets": ["trackdiffusion_demo_boxes", 8.0, False, 90, "default"], "inputs": [("images", "IMAGE")],
         "outputs": []},
    ]
    return build(nodes, [(1, 0, 2, "images"), (1, 1, 3, "tracklets"), (1, 0, 3, "images"), (3, 0, 4, "images")])


def preview_tracklets(path: Path) -> None:
    """The template browser's thumbnail: the example tracklets drawn over a grey canvas, middle frame."""
    import cv2

    from trackdiffusion.tracklets import load
    from trackdiffusion.visualize import draw_tracklets

    frames = draw_tracklets(load(STREET), thickness=4)
    frame = cv2.resize(frames[len(frames) // 2], (512, 288), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def preview_trajectories(path: Path) -> None:
    import cv2
    import numpy as np

    from trackdiffusion.trajectories import build_point_trajectories
    from trackdiffusion.visualize import draw_trajectories

    mask = np.zeros((576, 1024), bool)
    mask[230:370, 300:460] = True
    traj = build_point_trajectories(mask[None], [[[380, 300], [560, 300], [700, 260]]], 14)
    frame = draw_trajectories(traj, radius=5)[-1]
    frame = cv2.resize(frame, (512, 288), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def preview_demo(path: Path) -> None:
    """The demo workflow's own result: its middle generated frame, plain and with the boxes it followed."""
    import cv2
    import numpy as np

    from trackdiffusion.demo.cli import load_demo_model
    from trackdiffusion.demo.sampling import generate
    from trackdiffusion.synth import make_clip
    from trackdiffusion.visualize import draw_tracklets

    clip = make_clip(20000, "eval")
    video = generate(load_demo_model(), clip.video[0], clip.tracklets, steps=20, seed=0)
    video = np.repeat(np.repeat(video, 4, axis=1), 4, axis=2)
    middle = len(video) // 2
    boxes = draw_tracklets(clip.tracklets, video, thickness=1, show_labels=False)
    canvas = np.full((288, 512, 3), 32, np.uint8)
    canvas[16:272, :256], canvas[16:272, 256:] = video[middle], boxes[middle]
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


WORKFLOWS = {"svd_trackdiffusion": (svd_trackdiffusion, preview_tracklets),
             "svd_trackgo": (svd_trackgo, preview_trajectories),
             "modelscope_trackdiffusion": (modelscope_trackdiffusion, preview_tracklets),
             "dataset_from_tracklets": (dataset_from_tracklets, preview_tracklets),
             "svd_boxes_training_free": (svd_boxes_training_free, preview_tracklets),
             "demo_cpu": (demo_cpu, preview_demo)}


def main() -> None:
    folder = REPO / "example_workflows"
    folder.mkdir(exist_ok=True)
    for name, (make, preview) in WORKFLOWS.items():
        out = folder / f"{name}.json"
        out.write_text(json.dumps(make(), indent=1) + "\n")
        preview(folder / f"{name}.jpg")
        print(f"wrote {out} and its preview")


if __name__ == "__main__":
    main()
