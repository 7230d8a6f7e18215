"""Where ComfyUI's frontend (comfyui-frontend-package 1.35) draws a workflow's nodes, title bars included, when it
loads and once each node that shows a picture shows it: the growth rules measured in headless Chromium
(tests/browser/test_example_layout_in_browser.py checks them against the real frontend) and the example workflows' picture
sizes. tests/test_example_layout.py uses them to check that nothing in an example overlaps, in either renderer,
before or after a run.

The classic canvas (LiteGraph) draws a node at its saved ``pos`` and ``size`` with a 30 unit title bar above. When a
Save Animated WEBP shows its result it adds a picture widget at least 50 high under its widgets and grows the node to
196 if it is shorter; a Load Image's picture (shown as soon as its file is there) gets at least 220, the node 314. The
picture is shrunk into whatever room the node has, so a node already that big is left alone whatever the picture.

Nodes 2.0 (the Vue renderer, ``Comfy.VueNodes.Enabled``) scales a classic workflow by 1.2 about its top left (less 10)
when it loads it, adds the 30 px header to each height, and lays a node out as HTML: at least 225.6 wide, and as tall
as its content. A picture is shown at the node's full width less 16 px, in the picture's own aspect, under the widgets
with 8 px above and a 27 px size caption below, so the node grows by the picture's height at that width; a node whose
saved height already holds it is left alone.
"""

from __future__ import annotations

#: the picture each example node shows (width, height in pixels): a Save Animated WEBP its run's frames (by its
#: filename_prefix), a Load Image its file (example.png: the user's own, laid out for SVD's 16:9)
FRAMES = {
    # SaveAnimatedWEBP filename_prefix -> the frames it gets
    "trackdiffusion_demo": (256, 256), "trackdiffusion_demo_boxes": (256, 256),  # SynTrack's 64 x 64, upscale 4
    "trackdiffusion": (1024, 576), "trackdiffusion_boxes": (1024, 576),  # SVD_img2vid_Conditioning's size
    "tiny_svd_trackdiffusion": (64, 64), "tiny_svd_trackdiffusion_boxes": (64, 64),
    "sgi2v": (1024, 576), "sgi2v_boxes": (1024, 576),
    "trackgo": (1024, 576), "trackgo_trajectories": (1024, 576),  # the editor's width and height
    "trackdiffusion_t2v": (384, 256), "trackdiffusion_t2v_boxes": (384, 256),  # the sampler's width and height
    "motion_from_video": (130, 64),  # the 64 x 64 clip and the generated one, stitched 2 px apart
    "motion_from_video_tracked": (64, 64),
    # LoadImage file -> its picture
    "example.png": (1024, 576), "tiny_svd_first_frame.png": (64, 64),
}

TITLE = 30  # the classic title bar, above pos
#: nodes that show a picture, and when: a Load Image as soon as it loads (its file is there), a Save after a run
SHOWN_AT_LOAD = {"LoadImage"}
SHOWN_AFTER_RUN = {"SaveAnimatedWEBP"}
#: the classic canvas: the least height a node gets once it shows its picture
CLASSIC_PICTURE_MIN = {"SaveAnimatedWEBP": 196, "LoadImage": 314}
#: Nodes 2.0: the layout scale, the header, the least node width, the picture's inset (px-2 each side)
VUE_SCALE, VUE_HEADER, VUE_MIN_WIDTH, VUE_PICTURE_INSET = 1.2, 30, 225.6, 16
#: Nodes 2.0: a picture node's height less the picture's (header, widgets, 8 px above the picture, caption below)
VUE_PICTURE_BODY = {"SaveAnimatedWEBP": 275.7, "LoadImage": 173.4}
#: Nodes 2.0: the scaled layout's origin is the nodes' top left pos less this
VUE_ORIGIN_PAD = 10

STATES = ("load", "after")
RENDERERS = ("classic", "vue")


def picture(node: dict) -> tuple[int, int] | None:
    """The picture ``node`` shows (width, height), if it shows one; KeyError for one not in FRAMES."""
    if node["type"] == "SaveAnimatedWEBP":
        return FRAMES[node["widgets_values"][0]]
    if node["type"] == "LoadImage":
        return FRAMES[node["widgets_values"][0]]
    return None


def shows_picture(node: dict, state: str) -> bool:
    """Whether ``node`` shows its picture in ``state``: "load", "after" (a run), or "saved" (as saved: none)."""
    if state == "saved":
        return False
    return node["type"] in SHOWN_AT_LOAD or (state == "after" and node["type"] in SHOWN_AFTER_RUN)


def classic_height(node: dict, state: str) -> float:
    h = node["size"][1]
    return max(h, CLASSIC_PICTURE_MIN[node["type"]]) if shows_picture(node, state) else h


def vue_size(node: dict, state: str) -> tuple[float, float]:
    """The node's width and height in Nodes 2.0, header included (its own pixels at scale 1)."""
    w, h = node["size"]
    width = max(VUE_SCALE * w, VUE_MIN_WIDTH)
    height = VUE_SCALE * h + VUE_HEADER
    if shows_picture(node, state):
        fw, fh = picture(node)
        height = max(height, VUE_PICTURE_BODY[node["type"]] + (width - VUE_PICTURE_INSET) * fh / fw)
    return width, height


def rects(workflow: dict, renderer: str, state: str) -> dict[str, tuple[float, float, float, float]]:
    """Each node's rectangle (x1, y1, x2, y2), title bar or header included, in ``renderer``'s graph units."""
    nodes = workflow["nodes"]
    out = {}
    if renderer == "classic":
        for n in nodes:
            (x, y), w = n["pos"], n["size"][0]
            out[str(n["id"])] = (x, y - TITLE, x + w, y + classic_height(n, state))
        return out
    ox = min(n["pos"][0] for n in nodes) - VUE_ORIGIN_PAD
    oy = min(n["pos"][1] for n in nodes) - VUE_ORIGIN_PAD
    for n in nodes:
        x, y = ox + VUE_SCALE * (n["pos"][0] - ox), oy + VUE_SCALE * (n["pos"][1] - oy)
        w, h = vue_size(n, state)
        out[str(n["id"])] = (x, y - VUE_HEADER, x + w, y - VUE_HEADER + h)
    return out


def overlaps(boxes: dict[str, tuple[float, float, float, float]]) -> list[tuple[str, str]]:
    """The pairs of rectangles that share more than an edge."""
    items = sorted(boxes.items())
    return [(a, b) for i, (a, (ax1, ay1, ax2, ay2)) in enumerate(items) for b, (bx1, by1, bx2, by2) in items[i + 1:]
            if ax1 < bx2 and bx1 < ax2 and ay1 < by2 and by1 < ay2]
