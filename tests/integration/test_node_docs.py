"""Every node the pack registers has its help page (js/docs/<node id>.md, the frontend's node-library help), and each
page's inputs and outputs are what dev/make_node_docs.py makes from the node's schema now; the server serves the
pages where the frontend fetches them."""

from __future__ import annotations

import importlib.util
import urllib.request
from pathlib import Path

import pytest

from support.server import PACK_FOLDER_NAME

REPO = Path(__file__).resolve().parents[2]
FIX = "run `python dev/make_node_docs.py` (it keeps the hand-written text above the marker)"


def _make_node_docs():
    spec = importlib.util.spec_from_file_location("make_node_docs", REPO / "dev" / "make_node_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOCS = _make_node_docs()


@pytest.fixture(scope="module")
def infos(comfy):
    module = comfy.node_class("LoadTracklets").GET_NODE_INFO_V1()["python_module"]  # custom_nodes.<pack folder>
    found = DOCS.pack_node_infos(comfy.nodes.NODE_CLASS_MAPPINGS, module.removeprefix("custom_nodes."))
    assert "LoadTracklets" in found and "TrackletEditor" in found
    return found


def test_every_registered_node_has_a_page_and_every_page_a_node(infos):
    pages = {p.stem for p in DOCS.PAGES.glob("*.md")}
    assert sorted(set(infos) - pages) == [], f"nodes without a help page: {FIX}"
    assert sorted(pages - set(infos)) == [], "help pages for nodes the pack does not register"


def test_each_page_has_a_written_summary_and_the_schema_inputs_and_outputs(infos):
    for node_id, info in sorted(infos.items()):
        text = DOCS.page_path(node_id).read_text()
        title, prose, generated = DOCS.split_page(text)
        assert title == f"# {info['display_name']}", node_id
        assert len(prose.split()) >= 25, f"{node_id}: the page needs a short hand-written 'what it does'"
        assert generated == DOCS.generated_part(info), f"{node_id}: the inputs and outputs differ from the schema: {FIX}"
        assert text == DOCS.render_page(info, prose)


def test_every_input_and_output_is_listed_with_its_type(infos):
    """Independent of the renderer: each input and output of the schema, in order, is an item with its name and type."""
    for node_id, info in infos.items():
        items = [line for line in DOCS.page_path(node_id).read_text().splitlines() if line.startswith("- **`")]
        documented = [(item.split("`")[1], item.split(" · ")[1].split(":")[0].split()[0].rstrip(",")) for item in items]
        expected = []
        for section in ("required", "optional"):
            for name in info["input_order"].get(section, []):
                kind = info["input"][section][name][0]
                expected.append((name, kind if isinstance(kind, str) else "COMBO"))
        expected += list(zip(info["output_name"], info["output"], strict=True))
        assert documented == expected, node_id


def test_the_server_serves_each_page_where_the_frontend_asks_for_it(comfy_server):
    """The frontend (NodeHelpService) fetches /extensions/<folder>/docs/<node id>.md for a custom node and refuses a
    reply whose content type is text/html."""
    object_info = comfy_server.get("/object_info")
    ours = sorted(k for k, v in object_info.items() if v.get("python_module") == f"custom_nodes.{PACK_FOLDER_NAME}")
    assert "LoadTracklets" in ours
    for node_id in ours:
        url = f"{comfy_server.url}/extensions/{PACK_FOLDER_NAME}/docs/{node_id}.md"
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.status == 200, url
            assert "text/html" not in reply.headers.get("Content-Type", ""), reply.headers
            assert reply.read() == DOCS.page_path(node_id).read_bytes(), node_id
