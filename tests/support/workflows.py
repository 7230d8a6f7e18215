"""UI-format workflows for the converter and runner tests: a builder (:func:`ui`), three small nodes (LOAD, VIS,
SAVE) and NODE_INFOS, what ComfyUI 0.8.0's /object_info reports for the node types used (tooltips dropped, long combo
lists cut to three entries). tests/integration/test_runner_workflows.py checks NODE_INFOS against the real
definitions, so the unit tests that use it need no ComfyUI."""

from __future__ import annotations


def node_info(display_name, output, output_node=False, required=None, optional=None) -> dict:
    inputs = {"required": required or {}}
    if optional:
        inputs["optional"] = optional
    return {"display_name": display_name, "output": output, "output_node": output_node, "input": inputs}


# fmt: off
NODE_INFOS = {
    "ImageOnlyCheckpointLoader": node_info("Image Only Checkpoint Loader (img2vid model)", ["MODEL", "CLIP_VISION", "VAE"],
        required={
            "ckpt_name": [[]],
        },
    ),
    "LoadImage": node_info("Load Image", ["IMAGE", "MASK"],
        required={
            "image": [["example.png"], {"image_upload": True}],
        },
    ),
    "LoadTracklets": node_info("Load Tracklets", ["TRACKLETS", "INT", "INT", "INT"],
        required={
            "source": ["STRING", {"default": "", "multiline": True}],
            "format": ["COMBO", {"default": "auto", "options": ["auto", "json", "mot"]}],
            "width": ["INT", {"default": 0, "min": 0, "max": 16384}],
            "height": ["INT", {"default": 0, "min": 0, "max": 16384}],
            "num_frames": ["INT", {"default": 0, "min": 0, "max": 4096}],
            "video": ["STRING", {"default": "", "multiline": False}],
            "box_size": ["FLOAT", {"default": 64.0, "min": 1.0, "max": 4096.0}],
            "strict": ["BOOLEAN", {"default": False}],
        },
        optional={
            "file": ["COMBO", {"default": "(source text)", "options": ["(source text)"]}],
        },
    ),
    "LoadTrackDiffusionAdapter": node_info("Load TrackDiffusion Adapter", ["TRACKDIFFUSION_ADAPTER"],
        required={
            "adapter_name": ["COMBO", {"options": []}],
        },
    ),
    "InstanceEnhancerPatch": node_info("TrackDiffusion Patch (SVD)", ["MODEL"],
        required={
            "model": ["MODEL"], "adapter": ["TRACKDIFFUSION_ADAPTER"], "tracklets": ["TRACKLETS"],
            "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0}],
            "start_percent": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0}],
            "end_percent": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}],
        },
        optional={
            "more_than_20_objects": ["COMBO", {"default": "error", "options": [
                "error", "keep the first 20 by id (official)", "keep the 20 largest"]}],
        },
    ),
    "VideoLinearCFGGuidance": node_info("VideoLinearCFGGuidance", ["MODEL"],
        required={
            "model": ["MODEL"], "min_cfg": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0}],
        },
    ),
    "SVD_img2vid_Conditioning": node_info("SVD_img2vid_Conditioning", ["CONDITIONING", "CONDITIONING", "LATENT"],
        required={
            "clip_vision": ["CLIP_VISION"], "init_image": ["IMAGE"], "vae": ["VAE"],
            "width": ["INT", {"default": 1024, "min": 16, "max": 16384}],
            "height": ["INT", {"default": 576, "min": 16, "max": 16384}],
            "video_frames": ["INT", {"default": 14, "min": 1, "max": 4096}],
            "motion_bucket_id": ["INT", {"default": 127, "min": 1, "max": 1023}],
            "fps": ["INT", {"default": 6, "min": 1, "max": 1024}],
            "augmentation_level": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0}],
        },
    ),
    "KSampler": node_info("KSampler", ["LATENT"],
        required={
            "model": ["MODEL"],
            "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}],
            "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
            "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}],
            "sampler_name": [["euler", "euler_cfg_pp", "euler_ancestral"]],
            "scheduler": [["simple", "sgm_uniform", "karras"]], "positive": ["CONDITIONING"],
            "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
            "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}],
        },
    ),
    "VAEDecode": node_info("VAE Decode", ["IMAGE"],
        required={
            "samples": ["LATENT"], "vae": ["VAE"],
        },
    ),
    "VisualizeTracklets": node_info("Visualize Tracklets", ["IMAGE"],
        required={
            "tracklets": ["TRACKLETS"], "trail": ["BOOLEAN", {"default": True}],
            "thickness": ["INT", {"default": 2, "min": 1, "max": 16}], "labels": ["BOOLEAN", {"default": True}],
        },
        optional={
            "images": ["IMAGE"],
        },
    ),
    "SaveAnimatedWEBP": node_info(None, [], output_node=True,
        required={
            "images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI", "multiline": False}],
            "fps": ["FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0}],
            "lossless": ["BOOLEAN", {"default": True}], "quality": ["INT", {"default": 80, "min": 0, "max": 100}],
            "method": ["COMBO", {"options": ["default", "fastest", "slowest"]}],
        },
    ),
    "PointTrajectoryBuilder": node_info("Point Trajectory Builder (TrackGo)", ["POINT_TRAJECTORIES", "TRACKS", "IMAGE"],
        required={
            "masks": ["MASK"], "arrows": ["STRING", {"default": "[]", "multiline": True}],
            "num_frames": ["INT", {"default": 14, "min": 1, "max": 1024}],
            "seed": ["INT", {"default": 0, "min": 0, "max": 2147483647}],
            "point_size": ["INT", {"default": 4, "min": 1, "max": 64}],
        },
    ),
    "TrackAdapterPatch": node_info("TrackAdapter Patch (TrackGo)", ["MODEL"],
        required={
            "model": ["MODEL"], "trajectories": ["POINT_TRAJECTORIES"],
            "tau": ["FLOAT", {"default": 0.0, "min": -10000.0, "max": 0.0}],
            "alpha": ["FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0}],
            "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0}],
            "point_size": ["INT", {"default": 4, "min": 1, "max": 64}],
        },
        optional={
            "adapter": ["TRACKDIFFUSION_ADAPTER"],
        },
    ),
    "SaveImage": node_info("Save Image", [], output_node=True,
        required={
            "images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}],
        },
    ),
    "PreviewImage": node_info("Preview Image", [], output_node=True,
        required={
            "images": ["IMAGE"],
        },
    ),
    "TrackDiffusionDemo": node_info("TrackDiffusion Demo (CPU, no download)", ["IMAGE", "TRACKLETS"],
        required={
            "syntrack_clip": ["INT", {"default": 20000, "min": 0, "max": 2147483647}],
            "frames": ["INT", {"default": 0, "min": 0, "max": 64}],
            "steps": ["INT", {"default": 20, "min": 1, "max": 200}],
            "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}],
            "upscale": ["INT", {"default": 4, "min": 1, "max": 8}],
        },
        optional={
            "first_frame": ["IMAGE"], "tracklets": ["TRACKLETS"],
        },
    ),
    "ImageInvert": node_info("Invert Image", ["IMAGE"],
        required={
            "image": ["IMAGE"],
        },
    ),
}

# fmt: on


def ui(nodes: list[dict], links: list[tuple]) -> dict:
    """A UI-format workflow. nodes: {id, type, widgets, inputs: [(name, type[, widget name])], mode, title};
    links: (link_id, from_id, from_slot, to_id, to_input_name, type)."""
    by_id = {n["id"]: n for n in nodes}
    out_nodes, ui_links = [], []
    for link_id, src, slot, dst, name, typ in links:
        names = [i[0] for i in by_id[dst]["inputs"]]
        ui_links.append([link_id, src, slot, dst, names.index(name), typ])
    for order, n in enumerate(nodes):
        inputs = []
        for slot, (name, typ, *widget) in enumerate(n.get("inputs", [])):
            link = next((lk[0] for lk in ui_links if lk[3] == n["id"] and lk[4] == slot), None)
            entry = {"name": name, "type": typ, "link": link}
            if widget:
                entry["widget"] = {"name": widget[0]}
            inputs.append(entry)
        node = {"id": n["id"], "type": n["type"], "order": order, "mode": n.get("mode", 0), "inputs": inputs,
                "outputs": [], "widgets_values": n.get("widgets", [])}
        if "title" in n:
            node["title"] = n["title"]
        out_nodes.append(node)
    return {"last_node_id": max(by_id), "nodes": out_nodes, "links": ui_links, "version": 0.4}


TRACKS = '{"format": "trackdiffusion.tracklets", "objects": []}'
LOAD = {"id": 1, "type": "LoadTracklets", "widgets": [TRACKS, "auto", 0, 0, 0, "", 64.0, False, "(source text)"]}
VIS = {"id": 2, "type": "VisualizeTracklets", "widgets": [True, 2, True],
       "inputs": [("tracklets", "TRACKLETS"), ("images", "IMAGE")]}
SAVE = {"id": 3, "type": "SaveImage", "widgets": ["td"], "inputs": [("images", "IMAGE")]}


def chain(*extra_nodes, links=(), vis=VIS, save=SAVE) -> dict:
    return ui([LOAD, vis, save, *extra_nodes], [(1, 1, 0, 2, "tracklets", "TRACKLETS"), *links])
