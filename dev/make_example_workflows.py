"""Writes example_workflows/*.json in ComfyUI's UI (canvas) format from compact node lists.

    python dev/make_example_workflows.py [--no-preview] [NAME ...]

NAME is an example's key (demo_cpu, svd_trackdiffusion, ...: see WORKFLOWS). Its file is
example_workflows/<TITLES[NAME]>.json, with a same-named .jpg thumbnail (--no-preview: the workflows only, the
thumbnails and input files left as they are): the file name is the title ComfyUI's template
browser shows on the card, so it is written for users. The tests name the examples by key (tests/support/examples.py
reads TITLES from here).

Widget values are listed in each node's widget order (KSampler's seed is followed by its control_after_generate
value, as the frontend saves it). tests/integration/test_example_workflows.py checks the result against real
ComfyUI's node definitions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STREET = json.loads((REPO / "example_workflows" / "input" / "tracklets" / "street.json").read_text())


#: the tiny SVD example: SynTrack validation clip 6 (three objects crossing), its first frame in example_workflows/input
TINY_CLIP = 6
TINY_FIRST_FRAME = "tiny_svd_first_frame.png"

# TrackDiffusionSampler's optional SG-I2V widgets, in order: trajectory_guidance, sgi2v_start, sgi2v_end,
# sgi2v_iterations, sgi2v_lr, sgi2v_fft_ratio, sgi2v_heatmap_sigma, sgi2v_layers, sgi2v_memory_budget_gb.
SGI2V_OFF = ["off", 0.1, 0.4, 5, 0.21, 0.5, 0.4, "output_blocks.7.1, output_blocks.8.1", 0.0]
SGI2V_ON = ["SG-I2V boxes (training-free)", *SGI2V_OFF[1:]]

# Where the model files the examples load can be downloaded: a loader node's properties.models, as ComfyUI's own
# templates write it ({name, url, directory}: the file name the widget holds, its URL with ?download=true as theirs,
# the models/ folder). The frontend's missing-models dialog offers each one whose file is absent (only from
# huggingface.co or civitai.com, only .safetensors/.sft). Files without a public download are left out: the
# TrackDiffusion delta (made locally by `trackdiffusion weights convert`), a TrackGo TrackAdapter (TrackGo released no
# weights) and the ModelScope text-to-video folder (a diffusers folder, not one file). tests/test_example_models.py
# checks every loader node of every example.
SVD_MODEL = {"name": "svd.safetensors", "directory": "checkpoints",
             "url": "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid/resolve/main/svd.safetensors"
                    "?download=true"}
MODELSCOPE_FT_MODEL = {"name": "modelscope_ft/unet/diffusion_pytorch_model.safetensors", "directory": "trackdiffusion",
                       "url": "https://huggingface.co/pengxiang/trackdiffusion_ytvis/resolve/main/modelscope_ft/unet/"
                              "diffusion_pytorch_model.safetensors?download=true"}


def build(nodes: list[dict], links: list[tuple]) -> dict:
    """nodes: {id, type, pos, size, widgets, inputs: [(name, type, widget?)], outputs: [(name, type)]};
    links: (from_id, from_slot, to_id, to_input_name). Checks that no two nodes overlap, title bars included."""
    by_id = {n["id"]: n for n in nodes}
    check_no_overlap(nodes)
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
        properties = {"Node name for S&R": n["type"]}
        if n.get("models"):
            properties["models"] = n["models"]
        out_nodes.append({"id": n["id"], "type": n["type"], "pos": n["pos"], "size": n["size"],
                          "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                          "properties": properties, "widgets_values": n["widgets"]})
    return {"last_node_id": max(by_id), "last_link_id": len(ui_links), "nodes": out_nodes, "links": ui_links,
            "groups": [], "config": {}, "extra": {"ds": framing(out_nodes)}, "version": 0.4}


#: the view a workflow is framed for at load: a 1600x900 browser window, screen pixels
VIEW_WIDTH, VIEW_HEIGHT = 1600, 900
#: screen margins: room for the top menu bar (and its tabs), the left side bar (59 px wide) and a little air on the
#: right and at the bottom
VIEW_TOP, VIEW_LEFT, VIEW_MARGIN = 110, 80, 40
#: the bottom right corner the frontend's minimap and zoom buttons cover (x1, y1, x2, y2), screen pixels
VIEW_CORNER = (1330, 630, 1600, 900)
#: LiteGraph draws a node's title bar this far above its ``pos`` (graph units)
TITLE_HEIGHT = 30
#: never zoom in past ComfyUI's usual working scale, however small the graph; never out past a readable one
MAX_SCALE, MIN_SCALE = 0.9, 0.5


def framing(nodes: list[dict]) -> dict:
    """``extra.ds`` (LiteGraph's scale and offset, which the frontend restores when it loads a workflow) that frames
    every node, title bars included, below the menu bar, right of the side bar and clear of the minimap's corner:
    screen = (graph + offset) x scale."""
    x1 = min(n["pos"][0] for n in nodes)
    y1 = min(n["pos"][1] for n in nodes) - TITLE_HEIGHT
    x2 = max(n["pos"][0] + n["size"][0] for n in nodes)
    y2 = max(n["pos"][1] + n["size"][1] for n in nodes)
    scale = min(MAX_SCALE, (VIEW_WIDTH - VIEW_LEFT - VIEW_MARGIN) / (x2 - x1),
                (VIEW_HEIGHT - VIEW_TOP - VIEW_MARGIN) / (y2 - y1))
    scale = math.floor(scale * 1000) / 1000  # three decimals, rounded down: still inside

    def in_corner(s: float) -> bool:  # the graph's top left at (VIEW_LEFT, VIEW_TOP): does a node reach the corner?
        cx, cy = VIEW_CORNER[0] / s - VIEW_LEFT / s + x1, VIEW_CORNER[1] / s - VIEW_TOP / s + y1
        return any(n["pos"][0] + n["size"][0] > cx and n["pos"][1] + n["size"][1] > cy for n in nodes)

    while in_corner(scale):  # zoom out until the minimap covers nothing (a layout leaves that corner free)
        scale = round(scale - 0.005, 3)
        if scale < MIN_SCALE:
            raise ValueError("a node sits in the minimap's corner at every readable scale: move it")
    return {"scale": scale, "offset": [round(VIEW_LEFT / scale - x1, 1), round(VIEW_TOP / scale - y1, 1)]}


def check_no_overlap(nodes: list[dict]) -> None:
    """No two nodes' rectangles (title bars included) meet."""
    def box(n):
        (x, y), (w, h) = n["pos"], n["size"]
        return x, y - TITLE_HEIGHT, x + w, y + h

    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = box(a), box(b)
            if ax1 < bx2 and bx1 < ax2 and ay1 < by2 and by1 < ay2:
                raise ValueError(f"nodes {a['id']} ({a['type']}) and {b['id']} ({b['type']}) overlap")


#: Each node's size (graph units, below its title bar): at least what ComfyUI's frontend (1.35) gives it when the
#: workflow loads, in either renderer, so that nothing grows at load. Measured in headless Chromium: the classic
#: canvas widens a node to its widgets (LGraphNode.computeSize); Nodes 2.0 (the Vue renderer) scales a classic
#: workflow by 1.2, adds the 30 px header and then grows a node to its content, so a height here is at least
#: (content - 30) / 1.2. Nodes that show a picture (Load Image, Save Animated WEBP) are sized by :func:`pictured`.
SIZES = {"ImageOnlyCheckpointLoader": [360, 110], "LoadTinySVD": [320, 90], "LoadImage": [320, 100],
         "TrackletEditor": [620, 620], "PointTrajectoryEditor": [620, 620], "LoadTrackDiffusionAdapter": [320, 80],
         "InstanceEnhancerPatch": [320, 200], "TrackAdapterPatch": [320, 200], "VideoLinearCFGGuidance": [320, 80],
         "SVD_img2vid_Conditioning": [320, 250], "TrackDiffusionSampler": [360, 600], "KSampler": [320, 280],
         "VAEDecode": [320, 70], "VisualizeTracklets": [320, 150], "SaveAnimatedWEBP": [320, 190],
         "LoadModelScopeTrackDiffusion": [370, 140], "LoadTracklets": [400, 430],
         "ModelScopeTrackDiffusionSampler": [360, 450], "SaveTrackingDataset": [320, 160],
         "TrackDiffusionDemo": [340, 210], "LoadVideo": [320, 280], "GetVideoComponents": [320, 90],
         "TrackFromVideo": [320, 170], "ImageStitch": [320, 180]}

#: How the frontend (1.35) fits a picture into a node, measured: the classic canvas shows a Save Animated WEBP's
#: result in a widget at least 50 high under its widgets (the node grows to 196 if shorter) and a Load Image's picture
#: in one at least 220 high (the node grows to 314), shrinking the picture into whatever room the node has; Nodes 2.0
#: shows it at the node's full width (1.2 x width - 16 px) in its own aspect, with 8 px above and a 24 px size caption
#: below, and grows the node to fit. PICTURE_FRAME is that frame in graph units (40 / 1.2), rounded up, with room to
#: spare; a picture node's height is its widgets' (SIZES) + the frame + the picture at the node's width.
PICTURE_FRAME = 40
CLASSIC_PICTURE_MIN = {"SaveAnimatedWEBP": 196, "LoadImage": 314}


def pictured(n: dict, frame: tuple[int, int]) -> dict:
    """Size ``n``, a node that shows a picture of ``frame`` = (width, height) pixels (a Save Animated WEBP its result,
    a Load Image its input), so that the picture fits in either renderer without the node growing over another."""
    w, h = n["size"]
    n["size"] = [w, max(CLASSIC_PICTURE_MIN[n["type"]] + 10, h + PICTURE_FRAME + math.ceil(w * frame[1] / frame[0]))]
    return n


#: room between nodes (graph units): beside each other, and between one's bottom and the next one's title bar
GAP_X, GAP_Y = 40, 40


def right_of(*nodes: dict) -> int:
    """The x of a column right of ``nodes``."""
    return max(n["pos"][0] + n["size"][0] for n in nodes) + GAP_X


def below(*nodes: dict) -> int:
    """The y (a pos: below the title bar) of a node under ``nodes``."""
    return max(n["pos"][1] + n["size"][1] for n in nodes) + GAP_Y + TITLE_HEIGHT


def column(x: int, y: int, *nodes: dict) -> None:
    """Stack ``nodes`` from top to bottom at ``x``, the first at ``y``."""
    for n in nodes:
        n["pos"] = [x, y]
        y = below(n)


def node(id: int, type: str, pos: list | None, widgets: list, inputs: list = (), outputs: list = (),
         size: list | None = None, models: list | None = None) -> dict:
    """One node for build(); pos: where it goes (None: placed later, e.g. by column()); size: SIZES[type] unless
    given; models: its downloads (see SVD_MODEL), each named by one of the widget values."""
    n = {"id": id, "type": type, "pos": pos, "widgets": widgets, "inputs": list(inputs), "outputs": list(outputs),
         "size": list(size or SIZES[type])}
    if models:
        assert all(m["name"] in widgets for m in models), (type, models)
        n["models"] = [dict(m) for m in models]
    return n


def svd_checkpoint(id: int, pos: list | None) -> dict:
    return node(id, "ImageOnlyCheckpointLoader", pos, ["svd.safetensors"],
                outputs=[("MODEL", "MODEL"), ("CLIP_VISION", "CLIP_VISION"), ("VAE", "VAE")], models=[SVD_MODEL])


def tiny_svd_loader(id: int, pos: list | None) -> dict:
    """Load Tiny SVD: the same three outputs as Image Only Checkpoint Loader, from the files the pack ships."""
    return node(id, "LoadTinySVD", pos, [], outputs=[("MODEL", "MODEL"), ("CLIP_VISION", "CLIP_VISION"),
                                                    ("VAE", "VAE")])


def load_image(id: int, pos: list | None, file: str = "example.png", frame: tuple[int, int] = (1024, 576)) -> dict:
    """Load Image, sized to show its picture of ``frame`` pixels (example.png: the user's own, SVD's 16:9 assumed)."""
    return pictured(node(id, "LoadImage", pos, [file, "image"], outputs=[("IMAGE", "IMAGE"), ("MASK", "MASK")]), frame)


def tracklet_editor(id: int, pos: list | None, state: dict = STREET) -> dict:
    """The Tracklet Editor drawing over the input image; its state is the tracklet JSON (the street example)."""
    return node(id, "TrackletEditor", pos, [json.dumps(state), state["width"], state["height"], state["num_frames"]],
                [("background", "IMAGE")],
                [("tracklets", "TRACKLETS"), ("tracks", "TRACKS"), ("masks", "MASK"), ("preview", "IMAGE")])


def load_adapter(id: int, pos: list | None, file: str) -> dict:
    return node(id, "LoadTrackDiffusionAdapter", pos, [file], outputs=[("adapter", "TRACKDIFFUSION_ADAPTER")])


def svd_conditioning(id: int, pos: list | None, fps: int, size: tuple = (1024, 576, 14),
                     augmentation: float = 0.02) -> dict:
    """1024x576, 14 frames (the editors'), motion bucket 127, augmentation 0.02; ComfyUI passes fps-1 to SVD."""
    return node(id, "SVD_img2vid_Conditioning", pos, [*size, 127, fps, augmentation],
                [("clip_vision", "CLIP_VISION"), ("init_image", "IMAGE"), ("vae", "VAE")],
                [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")])


SAMPLER_INPUTS = [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                  ("latent_image", "LATENT")]


def trackdiffusion_sampler(id: int, pos: list | None, seed: int, steps: int, sgi2v: list,
                           tracklets_input: bool = False) -> dict:
    inputs = SAMPLER_INPUTS + ([("tracklets", "TRACKLETS")] if tracklets_input else [])
    return node(id, "TrackDiffusionSampler", pos,
                [seed, "fixed", steps, 1.0, 3.0, "linear per frame (SVD)", "euler", "karras", 1.0, *sgi2v],
                inputs, [("LATENT", "LATENT")])


def vae_decode(id: int, pos: list | None) -> dict:
    return node(id, "VAEDecode", pos, [], [("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")])


def visualize_tracklets(id: int, pos: list | None, widgets: list = (True, 2, True)) -> dict:
    return node(id, "VisualizeTracklets", pos, list(widgets), [("tracklets", "TRACKLETS"), ("images", "IMAGE")],
                [("images", "IMAGE")])


def save_webp(id: int, pos: list | None, prefix: str, frame: tuple[int, int], fps: float = 8.0,
              lossless: bool = False) -> dict:
    """Save Animated WEBP of frames ``frame`` = (width, height) pixels, sized to show them (see pictured())."""
    return pictured(node(id, "SaveAnimatedWEBP", pos, [prefix, fps, lossless, 90, "default"], [("images", "IMAGE")]),
                    frame)


def load_modelscope(id: int, pos: list | None) -> dict:
    return node(id, "LoadModelScopeTrackDiffusion", pos,
                ["TrackDiffusion_Pretrain", MODELSCOPE_FT_MODEL["name"], "auto"],
                outputs=[("model", "MODELSCOPE_TRACKDIFFUSION")], models=[MODELSCOPE_FT_MODEL])


def load_tracklets(id: int, pos: list | None, source: str) -> dict:
    return node(id, "LoadTracklets", pos, [source, "auto", 0, 0, 0, "", 64.0, False, "(source text)"],
                outputs=[("tracklets", "TRACKLETS"), ("width", "INT"), ("height", "INT"), ("num_frames", "INT")])


def modelscope_sampler(id: int, pos: list | None, prompt: str, seed: int, control: str) -> dict:
    return node(id, "ModelScopeTrackDiffusionSampler", pos,
                [prompt, "", 0, 384, 256, 50, 1.2, "normalized", "pndm", seed, control, "error"],
                [("model", "MODELSCOPE_TRACKDIFFUSION"), ("tracklets", "TRACKLETS")], [("images", "IMAGE")])


def svd_trackdiffusion(tiny: bool = False) -> dict:
    """TrackDiffusion on SVD; ``tiny``: the same graph on the tiny SVD the pack ships (its loader, a SynTrack
    validation clip's first frame and tracklets, 64x64, 16 frames, no augmentation: what it was trained on)."""
    if tiny:
        from trackdiffusion.evaluation.synth import make_split
        from trackdiffusion.models.tiny_svd.files import TRACKDIFFUSION_ADAPTER

        state = json.loads(make_split("val", "eval", n=TINY_CLIP + 1)[TINY_CLIP].tracklets.to_json())
    frame = (64, 64) if tiny else (1024, 576)  # the first frame, the decoded video and the boxes drawn on it
    nodes = [
        loader := tiny_svd_loader(1, None) if tiny else svd_checkpoint(1, None),
        image := load_image(2, None, TINY_FIRST_FRAME if tiny else "example.png", frame),
        editor := tracklet_editor(3, None, state if tiny else STREET),
        adapter := load_adapter(4, None,
                                TRACKDIFFUSION_ADAPTER if tiny else "trackdiffusion_svd_stage2_fp16.safetensors"),
        patch := node(5, "InstanceEnhancerPatch", None, [1.0, 0.0, 1.0, "error"],
                      [("model", "MODEL"), ("adapter", "TRACKDIFFUSION_ADAPTER"), ("tracklets", "TRACKLETS")],
                      [("MODEL", "MODEL")]),
        # fps 8: ComfyUI passes fps-1 = 7, the value TrackDiffusion-SVD was trained with.
        # width, height and frames match the editor's (the patch checks the frame count and says so if it differs)
        conditioning := svd_conditioning(7, None, fps=8,
                                         **({"size": (64, 64, 16), "augmentation": 0.0} if tiny else {})),
        sampler := trackdiffusion_sampler(8, None, seed=42, steps=25, sgi2v=SGI2V_OFF),
        decode := vae_decode(9, None),
        boxes := visualize_tracklets(10, None, [True, 1, False] if tiny else (True, 2, True)),
        save := save_webp(11, None, "tiny_svd_trackdiffusion" if tiny else "trackdiffusion", frame),
        save_boxes := save_webp(12, None, "tiny_svd_trackdiffusion_boxes" if tiny else "trackdiffusion_boxes", frame),
    ]
    # Inputs on the left (the editor under the adapter, whose patch sits above it), then sampling, decoding and the
    # two results; the bottom right stays free for the minimap.
    column(0, 0, loader, image)
    column(right_of(loader, image), 0, adapter, conditioning, editor)
    column(right_of(adapter, conditioning), 0, patch)
    column(right_of(patch, editor), 0, sampler)
    column(right_of(sampler), 0, decode, boxes, save_boxes)
    column(right_of(decode, boxes, save_boxes), 0, save)
    links = [(1, 0, 5, "model"), (4, 0, 5, "adapter"), (3, 0, 5, "tracklets"), (2, 0, 3, "background"),
             (1, 1, 7, "clip_vision"), (2, 0, 7, "init_image"), (1, 2, 7, "vae"), (5, 0, 8, "model"),
             (7, 0, 8, "positive"),
             (7, 1, 8, "negative"), (7, 2, 8, "latent_image"), (8, 0, 9, "samples"), (1, 2, 9, "vae"),
             (9, 0, 11, "images"), (3, 0, 10, "tracklets"), (9, 0, 10, "images"), (10, 0, 12, "images")]
    return build(nodes, links)


def trajectory_state() -> str:
    """The Point Trajectory Editor's state for the example: one painted part and its arrow."""
    import numpy as np

    from trackdiffusion.data.editor_state import TRAJECTORY_FORMAT, rle_encode

    mask = np.zeros((576, 1024), bool)
    mask[230:370, 300:460] = True
    return json.dumps({"format": TRAJECTORY_FORMAT, "version": 1, "width": 1024, "height": 576, "components": [
        {"label": "part 1", "mask": rle_encode(mask), "arrow": [[380, 300], [560, 300], [700, 260]]}]})


def svd_trackgo() -> dict:
    nodes = [
        loader := svd_checkpoint(1, None),
        image := load_image(2, None),
        # Paint each moving part on the first frame and draw its arrow in the Point Trajectory Editor.
        editor := node(3, "PointTrajectoryEditor", None, [trajectory_state(), 1024, 576, 14, 0, 4],
                       [("background", "IMAGE")],
                       [("trajectories", "POINT_TRAJECTORIES"), ("tracks", "TRACKS"), ("trajectory_video", "IMAGE"),
                        ("masks", "MASK"), ("preview", "IMAGE")]),
        adapter := load_adapter(4, None, "trackadapter_svd.safetensors"),
        patch := node(5, "TrackAdapterPatch", None, [-100.0, 0.2, 1.0, 4],
                      [("model", "MODEL"), ("trajectories", "POINT_TRAJECTORIES"),
                       ("adapter", "TRACKDIFFUSION_ADAPTER")], [("MODEL", "MODEL")]),
        cfg := node(6, "VideoLinearCFGGuidance", None, [1.0], [("model", "MODEL")], [("MODEL", "MODEL")]),
        conditioning := svd_conditioning(7, None, fps=8),
        sampler := node(8, "KSampler", None, [42, "fixed", 25, 2.5, "euler", "karras", 1.0], SAMPLER_INPUTS,
                        [("LATENT", "LATENT")]),
        decode := vae_decode(9, None),
        save := save_webp(10, None, "trackgo", (1024, 576)),
        save_video := save_webp(11, None, "trackgo_trajectories", (1024, 576), lossless=True),
    ]
    # Inputs on the left (the editor under the adapter, whose patch sits above it), then guidance and sampling with
    # the editor's conditioning video right of it, then decoding and the result; the bottom right stays free.
    column(0, 0, loader, image)
    column(right_of(loader, image), 0, adapter, conditioning, editor)
    column(right_of(adapter, conditioning), 0, patch)
    column(right_of(patch), 0, cfg, sampler)
    column(right_of(editor), below(sampler), save_video)
    column(right_of(cfg, sampler, save_video), 0, decode, save)
    links = [(2, 0, 3, "background"), (1, 0, 5, "model"), (3, 0, 5, "trajectories"), (4, 0, 5, "adapter"),
             (5, 0, 6, "model"), (1, 1, 7, "clip_vision"), (2, 0, 7, "init_image"), (1, 2, 7, "vae"),
             (6, 0, 8, "model"), (7, 0, 8, "positive"), (7, 1, 8, "negative"), (7, 2, 8, "latent_image"),
             (8, 0, 9, "samples"), (1, 2, 9, "vae"), (9, 0, 10, "images"), (3, 4, 11, "images")]  # the editor's preview: points over the first frame
    return build(nodes, links)


def modelscope_trackdiffusion() -> dict:
    nodes = [
        loader := load_modelscope(1, None),
        tracklets := load_tracklets(2, None, json.dumps(STREET, indent=1)),
        sampler := modelscope_sampler(3, None, "a car and a person on a city street", 42, "fixed"),
        boxes := visualize_tracklets(4, None),
        save := save_webp(5, None, "trackdiffusion_t2v", (384, 256)),
        save_boxes := save_webp(6, None, "trackdiffusion_t2v_boxes", (384, 256)),
    ]
    column(0, 0, loader, tracklets)
    column(right_of(loader, tracklets), 0, sampler)
    column(right_of(sampler), 0, boxes, save)
    column(right_of(boxes, save), 0, save_boxes)
    return build(nodes, [(1, 0, 3, "model"), (2, 0, 3, "tracklets"), (3, 0, 5, "images"), (2, 0, 4, "tracklets"),
                         (3, 0, 4, "images"), (4, 0, 6, "images")])


def dataset_from_tracklets() -> dict:
    """Run with `trackdiffusion run "example_workflows/Dataset - synthetic tracking data from tracklets.json"
    --batch DIR`: one MOT sequence per tracklet file."""
    nodes = [
        loader := load_modelscope(1, None),
        tracklets := load_tracklets(2, None, "tracklets/street.json"),
        sampler := modelscope_sampler(3, None, "a street scene, multi-object tracking video", 0, "increment"),
        save := node(4, "SaveTrackingDataset", None, ["trackdiffusion_dataset", "synth", "jpg"],
                     [("images", "IMAGE"), ("tracklets", "TRACKLETS")]),
    ]
    column(0, 0, loader, tracklets)
    column(right_of(loader, tracklets), 0, sampler)
    column(right_of(sampler), 0, save)
    return build(nodes, [(1, 0, 3, "model"), (2, 0, 3, "tracklets"), (3, 0, 4, "images"), (2, 0, 4, "tracklets")])


def svd_boxes_training_free() -> dict:
    """Stock SVD steered along Tracklet Editor boxes by SG-I2V (no adapter): SG-I2V's 50 euler steps, fps 7."""
    nodes = [
        loader := svd_checkpoint(1, None),
        image := load_image(2, None),
        editor := tracklet_editor(3, None),
        conditioning := svd_conditioning(4, None, fps=7),
        sampler := trackdiffusion_sampler(5, None, seed=817, steps=50, sgi2v=SGI2V_ON, tracklets_input=True),
        decode := vae_decode(6, None),
        boxes := visualize_tracklets(7, None),
        save := save_webp(8, None, "sgi2v", (1024, 576), fps=7.0),
        save_boxes := save_webp(9, None, "sgi2v_boxes", (1024, 576), fps=7.0),
    ]
    column(0, 0, loader, image)
    column(right_of(loader, image), 0, conditioning, editor)
    column(right_of(conditioning, editor), 0, sampler)
    column(right_of(sampler), 0, decode, boxes, save_boxes)
    column(right_of(decode, boxes, save_boxes), 0, save)
    links = [(2, 0, 3, "background"), (1, 1, 4, "clip_vision"), (2, 0, 4, "init_image"), (1, 2, 4, "vae"),
             (1, 0, 5, "model"), (4, 0, 5, "positive"), (4, 1, 5, "negative"), (4, 2, 5, "latent_image"),
             (3, 0, 5, "tracklets"), (5, 0, 6, "samples"), (1, 2, 6, "vae"), (6, 0, 8, "images"),
             (3, 0, 7, "tracklets"), (6, 0, 7, "images"), (7, 0, 9, "images")]
    return build(nodes, links)


def demo_cpu() -> dict:
    """The embedded demo model on the CPU, nothing to download: a SynTrack test clip's first frame and boxes."""
    nodes = [
        # widgets: syntrack_clip, frames (0 = the tracklets'), steps, seed + its control value, upscale
        demo := node(1, "TrackDiffusionDemo", None, [20000, 0, 20, 0, "fixed", 4],
                     [("first_frame", "IMAGE"), ("tracklets", "TRACKLETS")],
                     [("frames", "IMAGE"), ("tracklets", "TRACKLETS")]),
        save := save_webp(2, None, "trackdiffusion_demo", (256, 256)),  # SynTrack's 64 x 64, upscaled x4
        boxes := visualize_tracklets(3, None, [True, 1, False]),
        save_boxes := save_webp(4, None, "trackdiffusion_demo_boxes", (256, 256)),
    ]
    column(0, 0, demo)
    column(right_of(demo), 0, boxes, save)
    column(right_of(boxes, save), 0, save_boxes)
    return build(nodes, [(1, 0, 2, "images"), (1, 1, 3, "tracklets"), (1, 0, 3, "images"), (3, 0, 4, "images")])


#: the motion-from-video example: SynTrack validation clip 10 (two objects crossing the frame), as an mp4 in
#: example_workflows/input, its first-frame boxes in the Tracklet Editor
REFERENCE_CLIP, REFERENCE_FILE = 10, "reference_clip.mp4"


def reference_clip():
    from trackdiffusion.evaluation.synth import make_split

    return make_split("val", "eval", n=REFERENCE_CLIP + 1)[REFERENCE_CLIP]


def first_frame_boxes(clip) -> dict:
    """What a user draws: each object's box on the clip's first frame (objects not yet visible left out)."""
    state = json.loads(clip.tracklets.to_json())
    dense = clip.tracklets.dense(clamp=False)
    objects = []
    for j, obj in enumerate(sorted(state["objects"], key=lambda o: o["id"])):
        if dense.visible[0, j]:
            objects.append({**obj, "keyframes": [{"frame": 0, "box": dense.boxes[0, j].tolist(), "visible": True}]})
    return {**state, "objects": objects}


def motion_from_video() -> dict:
    """Load Video -> boxes drawn on its first frame -> Track From Video -> the CPU demo model animates the first
    frame along the copied motion -> reference and generated side by side."""
    nodes = [
        video := node(1, "LoadVideo", None, [REFERENCE_FILE, "image"], outputs=[("VIDEO", "VIDEO")]),
        frames := node(2, "GetVideoComponents", None, [], [("video", "VIDEO")],
                       [("images", "IMAGE"), ("audio", "AUDIO"), ("fps", "FLOAT")]),
        editor := tracklet_editor(3, None, first_frame_boxes(reference_clip())),
        track := node(4, "TrackFromVideo", None, [0, 0, 0], [("video", "IMAGE"), ("boxes", "TRACKLETS")],
                      [("tracklets", "TRACKLETS"), ("preview", "IMAGE"), ("confidence", "STRING")]),
        demo := node(5, "TrackDiffusionDemo", None, [20000, 0, 20, 0, "fixed", 1],
                     [("first_frame", "IMAGE"), ("tracklets", "TRACKLETS")],
                     [("frames", "IMAGE"), ("tracklets", "TRACKLETS")]),
        stitch := node(6, "ImageStitch", None, ["right", True, 2, "white"],
                       [("image1", "IMAGE"), ("image2", "IMAGE")], [("IMAGE", "IMAGE")]),
        # the 64 x 64 clip: side by side with the generated one (2 px apart), and alone with its followed boxes
        save := save_webp(7, None, "motion_from_video", (130, 64)),
        save_tracked := save_webp(8, None, "motion_from_video_tracked", (64, 64)),
    ]
    column(0, 0, video, frames, editor)
    column(right_of(video, frames, editor), 0, track, save_tracked)
    column(right_of(track, save_tracked), 0, demo)
    column(right_of(demo), 0, stitch)
    column(right_of(stitch), 0, save)
    links = [(1, 0, 2, "video"), (2, 0, 3, "background"), (2, 0, 4, "video"), (3, 0, 4, "boxes"),
             (2, 0, 5, "first_frame"), (4, 0, 5, "tracklets"), (4, 1, 6, "image1"), (5, 0, 6, "image2"),
             (6, 0, 7, "images"), (4, 1, 8, "images")]
    return build(nodes, links)


def preview_motion_from_video(path: Path) -> None:
    """The reference clip (written here into example_workflows/input) with the followed boxes, and the demo model's
    clip along them: the middle frame of each."""
    import numpy as np

    from trackdiffusion.data.tracklets import load
    from trackdiffusion.data.video_tracking import track_boxes
    from trackdiffusion.data.visualize import draw_tracklets, write_frames
    from trackdiffusion.models.demo.cli import load_demo_model
    from trackdiffusion.models.demo.sampling import generate

    clip = reference_clip()
    out = REPO / "example_workflows" / "input" / REFERENCE_FILE
    out.unlink(missing_ok=True)
    write_frames(clip.video, out, fps=8)
    tracked, _ = track_boxes(clip.video, load(json.dumps(first_frame_boxes(clip))))
    reference = draw_tracklets(tracked, clip.video, thickness=1, show_labels=False)
    video = generate(load_demo_model(), clip.video[0], tracked, steps=20, seed=0)
    middle = len(video) // 2
    def big(v):
        return np.repeat(np.repeat(v, 4, axis=0), 4, axis=1)

    canvas = np.full((288, 512, 3), 32, np.uint8)
    canvas[:256, :256], canvas[:256, 256:] = big(reference[middle]), big(video[middle])
    write_thumbnail(path, canvas, "Copy a clip's motion (CPU demo model)")


def preview_tiny_svd(path: Path) -> None:
    """The tiny SVD workflow's own result (the diffusers backend, which ComfyUI's sampling equals): its middle frame,
    plain and with the boxes it followed; and its first frame, the workflow's Load Image input."""
    import cv2
    import numpy as np

    from trackdiffusion.data.visualize import draw_tracklets
    from trackdiffusion.evaluation.synth import make_split
    from trackdiffusion.models.tiny_svd import demo

    clip = make_split("val", "eval", n=TINY_CLIP + 1)[TINY_CLIP]
    cv2.imwrite(str(REPO / "example_workflows" / "input" / TINY_FIRST_FRAME),
                cv2.cvtColor(clip.video[0], cv2.COLOR_RGB2BGR))
    video = demo.generate(clip.video[0], clip.tracklets, seed=42)
    video = np.repeat(np.repeat(video, 4, axis=1), 4, axis=2)
    middle = len(video) // 2
    boxes = draw_tracklets(clip.tracklets.resample(width=256, height=256), video, thickness=2, show_labels=False)
    canvas = np.full((288, 512, 3), 32, np.uint8)
    canvas[16:272, :256], canvas[16:272, 256:] = video[middle], boxes[middle]
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def write_thumbnail(path: Path, picture, caption: str) -> None:
    """The template browser's card picture: ``picture`` (RGB, 288 x 512) with ``caption`` on a band along its bottom
    (the frontend titles a custom node's template by its file name, so the picture says what the workflow is)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8))
    assert image.size == (512, 288), image.size
    draw = ImageDraw.Draw(image, "RGBA")
    draw.rectangle([0, 252, 511, 287], fill=(16, 18, 26, 225))
    font = ImageFont.load_default(size=21)  # legible on the card, where the picture is about 280 px wide
    assert draw.textlength(caption, font=font) <= 492, caption
    draw.text((10, 257), caption, font=font, fill=(236, 239, 244))
    image.save(path, "JPEG", quality=85)


def _fit(frame, width: int, height: int):
    import cv2

    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def preview_svd_trackdiffusion(path: Path) -> None:
    """What the workflow's Visualize Tracklets draws (its settings: trail, thickness 2, labels) without a first
    frame: the Tracklet Editor's boxes on the middle frame of 14, with the paths they took."""
    from trackdiffusion.data.tracklets import load
    from trackdiffusion.data.visualize import draw_tracklets

    frames = draw_tracklets(load(STREET), thickness=4)
    write_thumbnail(path, _fit(frames[len(frames) // 2], 512, 288),
                    "SVD + TrackDiffusion: video follows drawn boxes")


def preview_svd_boxes_training_free(path: Path) -> None:
    """What SG-I2V optimises in this workflow: on SVD's 72 x 128 latent, each box's Gaussian weight map (the
    sampler's sgi2v_heatmap_sigma) on the middle frame, in its object's colour, under the boxes."""
    import numpy as np

    from trackdiffusion.data.tracklets import load
    from trackdiffusion.data.visualize import draw_tracklets
    from trackdiffusion.models.guidance.sgi2v.geometry import latent_boxes_from_tracklets
    from trackdiffusion.models.guidance.sgi2v.loss import build_alignment_targets

    tracklets, frames, (h, w) = load(STREET), STREET["num_frames"], (576 // 8, 1024 // 8)
    middle, sigma = frames // 2, SGI2V_ON[6]
    targets = build_alignment_targets(latent_boxes_from_tracklets(tracklets, frames, h, w), sigma)
    colours = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in tracklets.dense(frames).colors], float)
    heat = np.zeros((h, w, 3))
    s_max = targets.src_grid.shape[1]
    for index, weight, frame, obj in zip(targets.src_index.tolist(), targets.weight.tolist(), targets.frame.tolist(),
                                         targets.obj.tolist(), strict=True):
        if frame != middle:
            continue
        gx, gy = targets.src_grid[frame, index - frame * s_max].tolist()
        col, row = int((gx + 1) / 2 * w), int((gy + 1) / 2 * h)  # the cell whose centre this point is
        heat[row, col] = np.maximum(heat[row, col], weight * colours[obj])
    heat = np.repeat(np.repeat(24 + 0.9 * heat, 8, axis=0), 8, axis=1).clip(0, 255).astype(np.uint8)
    drawn = draw_tracklets(tracklets, np.repeat(heat[None], frames, axis=0), thickness=3, show_labels=False)
    write_thumbnail(path, _fit(drawn[middle], 512, 288), "SVD + SG-I2V: boxes steer SVD, no extra weights")


def preview_modelscope_trackdiffusion(path: Path) -> None:
    """The text-to-video sampler's boxes on its 384 x 256 video, first and last frame, each box labelled with the
    category text it is generated from."""
    import numpy as np

    from trackdiffusion.data.tracklets import load
    from trackdiffusion.data.visualize import draw_tracklets

    frames = draw_tracklets(load(STREET).resample(width=384, height=256), thickness=2)
    canvas = np.full((288, 512, 3), 32, np.uint8)
    canvas[43:213, :255], canvas[43:213, 257:] = _fit(frames[0], 255, 170), _fit(frames[-1], 255, 170)
    write_thumbnail(path, canvas, "Text to video along boxes (ModelScope)")


def preview_dataset_from_tracklets(path: Path) -> None:
    """Tracker training data: the first and last frame's ground-truth boxes (ids and labels) at the workflow's
    384 x 256, beside the sequence Save Tracking Dataset writes for them (written here into a temporary folder)."""
    import tempfile

    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from trackdiffusion.data.dataset import write_tracking_sequence
    from trackdiffusion.data.tracklets import load
    from trackdiffusion.data.visualize import draw_tracklets

    tracklets = load(STREET).resample(width=384, height=256)
    frames = draw_tracklets(tracklets, thickness=2)
    canvas = np.full((288, 512, 3), 32, np.uint8)
    canvas[0:128, 0:192], canvas[128:256, 0:192] = _fit(frames[0], 192, 128), _fit(frames[-1], 192, 128)
    with tempfile.TemporaryDirectory() as tmp:
        grey = np.full((len(frames), 256, 384, 3), 96, np.uint8)
        folder = write_tracking_sequence(grey, tracklets, tmp, "synth_00001", image_format="jpg")
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        first_gt = (folder / "gt" / "gt.txt").read_text().splitlines()[0]
    images = [f for f in files if f.startswith("img1/")]
    lines = ["trackdiffusion_dataset/", "  synth_00001/", f"    img1/  {len(images)} frames", "    gt/gt.txt",
             *[f"    {f}" for f in files if "/" not in f], "gt.txt: frame,id,x,y,w,h,...",
             "  " + ",".join(v.split(".")[0] for v in first_gt.split(","))]
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=17)
    for i, line in enumerate(lines):
        assert draw.textlength(line, font=font) <= 300, line
        draw.text((204, 6 + 26 * i), line, font=font, fill=(200, 206, 220))
    write_thumbnail(path, np.asarray(image), "Tracker training data: MOT + YouTube-VIS")


def preview_trajectories(path: Path) -> None:
    import cv2
    import numpy as np

    from trackdiffusion.data.trajectories import build_point_trajectories
    from trackdiffusion.data.visualize import draw_trajectories

    mask = np.zeros((576, 1024), bool)
    mask[230:370, 300:460] = True
    traj = build_point_trajectories(mask[None], [[[380, 300], [560, 300], [700, 260]]], 14)
    frame = draw_trajectories(traj, radius=5)[-1]
    frame = cv2.resize(frame, (512, 288), interpolation=cv2.INTER_AREA)
    write_thumbnail(path, frame, "SVD + TrackGo: painted parts follow arrows")


def preview_demo(path: Path) -> None:
    """The demo workflow's own result: its middle generated frame, plain and with the boxes it followed."""
    import numpy as np

    from trackdiffusion.data.visualize import draw_tracklets
    from trackdiffusion.evaluation.synth import make_clip
    from trackdiffusion.models.demo.cli import load_demo_model
    from trackdiffusion.models.demo.sampling import generate

    clip = make_clip(20000, "eval")
    video = generate(load_demo_model(), clip.video[0], clip.tracklets, steps=20, seed=0)
    video = np.repeat(np.repeat(video, 4, axis=1), 4, axis=2)
    middle = len(video) // 2
    boxes = draw_tracklets(clip.tracklets, video, thickness=1, show_labels=False)
    canvas = np.full((288, 512, 3), 32, np.uint8)
    canvas[:256, :256], canvas[:256, 256:] = video[middle], boxes[middle]
    write_thumbnail(path, canvas, "CPU demo, nothing to download")


#: key -> file name without .json/.jpg: the card title in ComfyUI's template browser (the frontend titles a custom
#: node's templates by file name), so it says what the workflow does
TITLES = {"svd_trackdiffusion": "TrackDiffusion - boxes steer SVD",
          "tiny_svd_trackdiffusion_cpu": "TrackDiffusion - tiny SVD on the CPU",
          "svd_trackgo": "TrackGo - masks and arrows steer SVD",
          "svd_boxes_training_free": "SG-I2V - boxes steer stock SVD, no training",
          "modelscope_trackdiffusion": "TrackDiffusion - boxes steer ModelScope text-to-video",
          "demo_cpu": "Demo - boxes steer a tiny model on the CPU",
          "motion_from_video": "Motion from a video - track boxes and points",
          "dataset_from_tracklets": "Dataset - synthetic tracking data from tracklets"}

#: key -> (the workflow, its thumbnail)
WORKFLOWS = {"svd_trackdiffusion": (svd_trackdiffusion, preview_svd_trackdiffusion),
             "svd_trackgo": (svd_trackgo, preview_trajectories),
             "modelscope_trackdiffusion": (modelscope_trackdiffusion, preview_modelscope_trackdiffusion),
             "dataset_from_tracklets": (dataset_from_tracklets, preview_dataset_from_tracklets),
             "svd_boxes_training_free": (svd_boxes_training_free, preview_svd_boxes_training_free),
             "demo_cpu": (demo_cpu, preview_demo),
             "motion_from_video": (motion_from_video, preview_motion_from_video),
             "tiny_svd_trackdiffusion_cpu": (lambda: svd_trackdiffusion(tiny=True), preview_tiny_svd)}


def tiny_adapter_exists() -> bool:
    from trackdiffusion.models.tiny_svd.files import ADAPTERS, TRACKDIFFUSION_ADAPTER

    return (ADAPTERS / TRACKDIFFUSION_ADAPTER).is_file()


def main(names: list[str] | None = None, previews: bool = True) -> None:
    """Write every example (or those named on the command line) and, unless ``previews`` is false, its preview."""
    folder = REPO / "example_workflows"
    folder.mkdir(exist_ok=True)
    unknown = sorted(set(names or ()) - set(WORKFLOWS))
    if unknown:
        raise SystemExit(f"error: no example {unknown}; known: {', '.join(WORKFLOWS)}")
    for name, (make, preview) in WORKFLOWS.items():
        if names and name not in names:
            continue
        if name.startswith("tiny_svd") and not tiny_adapter_exists():
            print(f"skipped {name}: the tiny SVD's TrackDiffusion adapter is not trained yet "
                  "(bash dev/train_tiny_svd_trackdiffusion.sh RUNS)")
            continue
        out = folder / f"{TITLES[name]}.json"
        out.write_text(json.dumps(make(), indent=1) + "\n")
        if previews:
            preview(folder / f"{TITLES[name]}.jpg")
        print(f"wrote {out}" + (" and its preview" if previews else ""))


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    main([a for a in args if a != "--no-preview"], previews="--no-preview" not in args)
