"""UI-format (canvas) workflow -> API-format prompt, from ComfyUI's node definitions.

ComfyUI saves two JSON shapes. The *UI format* (what "Save" writes, and what ``example_workflows/`` holds) is the
canvas: ``nodes`` with positional ``widgets_values``, ``links`` as ``[id, from_node, from_slot, to_node, to_slot,
type]`` and per-node ``mode``. The *API format* (what ``POST /prompt`` and ``execution.PromptExecutor`` take) is
``{node_id: {"class_type", "inputs": {name: value | [from_node_id, slot]}, "_meta": {"title"}}}``.

:func:`to_api_prompt` does what the frontend does when it queues a canvas, using only the node definitions as
``/object_info`` reports them (V1 ``INPUT_TYPES`` / V3 ``GET_NODE_INFO_V1()``), given as a plain mapping
``{node_type: info}``:

* widget values are mapped in order onto the node's widget inputs (required then optional, in ``input_order``);
  an input is a widget when its type is INT, FLOAT, STRING, BOOLEAN or a combo and it is not ``forceInput``;
* the extra saved values that are not inputs are skipped: the ``control_after_generate`` value after a seed (INT
  inputs with ``control_after_generate``, or named ``seed``/``noise_seed`` unless it is explicitly False) and the
  upload button's value after an ``image_upload``/``video_upload``/... combo; workflows saved with or without them
  both convert, and values missing at the end (older workflow) take the input's default;
* list values are wrapped as ``{"__value__": [...]}`` (a bare list would mean a link);
* links become ``[node_id, slot]``; a widget input that has a link (a "converted widget") takes the link;
* muted nodes (mode 2) are left out, and inputs fed by them are dropped;
* bypassed nodes (mode 4) are left out, and each consumer is fed by the bypassed node's input of the same type
  (the input at the output's slot index when its type fits, else the first input whose type fits);
* ``Reroute`` nodes are followed, ``PrimitiveNode`` values are written into the inputs they feed, ``Note`` and
  ``MarkdownNote`` are ignored;
* group nodes (``workflow>...``) and subgraphs are refused with an error saying how to flatten them;
* an API-format prompt (or ``{"prompt": <api prompt>}``) is returned unchanged.

Every error is an :class:`~trackdiffusion.data.errors.InvalidInputError` naming the node id and type.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from ...data.errors import InvalidInputError

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
UPLOAD_VALUES = frozenset({"image", "video", "audio", "file", "upload"})
LEGACY_SEED_NAMES = ("seed", "noise_seed")
MODE_MUTED = 2
MODE_BYPASS = 4
FRONTEND_ONLY_TYPES = frozenset({"Note", "MarkdownNote"})
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
SOURCE = "UI workflow"
FLATTEN_FIX = ("open it in ComfyUI, convert the group node / subgraph back to plain nodes (right-click it) and save "
               "again, or export it with Workflow > Export (API).")


@dataclass(frozen=True)
class WidgetSlot:
    """One saved widget value: an input's value, or an extra value the frontend saves after it."""

    name: str
    kind: str  # "widget", "control" (control_after_generate) or "upload" (upload button)
    spec: tuple = ()

    @property
    def default(self):
        options = self.spec[1] if len(self.spec) > 1 and isinstance(self.spec[1], dict) else {}
        if "default" in options:
            return options["default"]
        combo = combo_options(self.spec)
        return combo[0] if combo else None


def is_api_format(data) -> bool:
    """True for ``{node_id: {"class_type": ..., "inputs": ...}}``."""
    return (isinstance(data, dict) and bool(data) and "nodes" not in data
            and all(isinstance(v, dict) and "class_type" in v for v in data.values()))


def is_ui_format(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def combo_options(spec) -> list | None:
    if not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        return list(spec[1].get("options", []))
    return None


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def widget_type(name: str, spec) -> str | None:
    """The widget an input gets in the frontend (INT, FLOAT, STRING, BOOLEAN, COMBO), or None for a socket only."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    options = _options(spec)
    if options.get("forceInput"):
        return None
    if isinstance(spec[0], list):
        return "COMBO"
    if spec[0] in WIDGET_TYPES:
        return spec[0]
    if options.get("widgetType") in WIDGET_TYPES:
        return options["widgetType"]
    return None


def _as_spec(spec) -> tuple:
    """An input spec as a tuple ``(type, options?)``; V1 allows a bare type string."""
    return (spec,) if isinstance(spec, str) else tuple(spec) if isinstance(spec, (list, tuple)) else ()


def _input_items(info: Mapping) -> list[tuple[str, tuple]]:
    """(name, spec) of the required then optional inputs, in the node's declared order."""
    inputs = info.get("input") or {}
    order = info.get("input_order") or {}
    items = []
    for section in ("required", "optional"):
        specs = inputs.get(section) or {}
        names = order.get(section) or list(specs)
        items += [(name, _as_spec(specs[name])) for name in names if name in specs]
    return items


def input_names(info: Mapping) -> list[str]:
    return [name for name, _ in _input_items(info)]


def widget_slots(info: Mapping) -> list[WidgetSlot]:
    """The values the frontend saves in ``widgets_values`` for a node, in order."""
    slots = []
    for name, spec in _input_items(info):
        kind = widget_type(name, spec)
        if kind is None:
            continue
        slots.append(WidgetSlot(name, "widget", spec))
        options = _options(spec)
        control = options.get("control_after_generate")
        if control or (control is None and kind == "INT" and name in LEGACY_SEED_NAMES):
            slots.append(WidgetSlot(name, "control", spec))
        if any(key.endswith("_upload") and value for key, value in options.items()):
            slots.append(WidgetSlot(name, "upload", spec))
    return slots


def _node_label(node: Mapping) -> str:
    return f"node {node.get('id')} ({node.get('type')})"


def map_widget_values(node: Mapping, info: Mapping, warnings: list[str] | None = None) -> dict:
    """``{input name: value}`` from a UI node's ``widgets_values`` (a list, or a dict keyed by widget name)."""
    slots = widget_slots(info)
    widgets = [s for s in slots if s.kind == "widget"]
    values = node.get("widgets_values")
    if values is None:
        values = []
    label = _node_label(node)
    if isinstance(values, dict):
        return {s.name: values.get(s.name, s.default) for s in widgets}
    if not isinstance(values, list):
        raise InvalidInputError(f"{label}: widgets_values is neither a list nor an object.", source=SOURCE)
    extras = len(slots) - len(widgets)
    if len(values) == len(slots):
        take_extras = "all"
    elif len(values) == len(widgets):
        take_extras = "none"
    elif len(values) > len(slots):
        raise InvalidInputError(
            f"{label}: {len(values)} saved widget values, but the node's definition has {len(widgets)} widgets "
            f"({', '.join(s.name for s in widgets) or 'none'}) and {extras} extra saved values.",
            fix="the node pack may be a different version than the one that saved the workflow, or a frontend "
            "extension added widgets: open and re-save it in ComfyUI, or export it with Workflow > Export (API).",
            source=SOURCE)
    else:
        take_extras = "guess"
    mapped, pos, missing = {}, 0, []
    for index, slot in enumerate(slots):
        if slot.kind != "widget":
            if pos >= len(values):
                continue
            if take_extras == "all":
                pos += 1
            elif take_extras == "guess":
                value = values[pos]
                looks = value in CONTROL_VALUES if slot.kind == "control" else (value in UPLOAD_VALUES or value is None)
                widgets_left = sum(1 for s in slots[index + 1:] if s.kind == "widget")
                if looks and len(values) - pos > widgets_left:
                    pos += 1
            continue
        if pos < len(values):
            mapped[slot.name] = values[pos]
            pos += 1
        else:
            mapped[slot.name] = slot.default
            missing.append(slot.name)
    if pos < len(values):
        raise InvalidInputError(
            f"{label}: the saved widget values {values[pos:]!r} match no widget of the node "
            f"({', '.join(s.name for s in widgets) or 'none'}).",
            fix="open and re-save the workflow in ComfyUI, or export it with Workflow > Export (API).", source=SOURCE)
    if missing and warnings is not None:
        warnings.append(f"{label}: no saved value for {', '.join(missing)}; using the default.")
    return mapped


def _wrap(value):
    return {"__value__": value} if isinstance(value, list) else value


def _types_fit(a, b) -> bool:
    if a in (None, "", "*") or b in (None, "", "*"):
        return True
    if a == b:
        return True
    return bool(set(str(a).split(",")) & set(str(b).split(",")))


class _Graph:
    def __init__(self, workflow: Mapping, node_infos: Mapping):
        self.infos = node_infos
        nodes = workflow.get("nodes")
        if not isinstance(nodes, list):
            raise InvalidInputError("this is not a ComfyUI workflow: no 'nodes' list and not in API format.",
                                    fix="give a workflow saved from ComfyUI (UI format) or exported with "
                                    "Export (API).", source=SOURCE)
        self.nodes: dict = {}
        for node in nodes:
            if not isinstance(node, dict) or "id" not in node or "type" not in node:
                raise InvalidInputError(f"a node entry has no id or type: {str(node)[:80]}", source=SOURCE)
            self.nodes[node["id"]] = node
        self.links: dict = {}
        for link in workflow.get("links") or []:
            if link is None:
                continue
            if isinstance(link, dict):
                entry = (link.get("origin_id"), link.get("origin_slot"), link.get("target_id"),
                         link.get("target_slot"), link.get("type"))
                self.links[link.get("id")] = entry
            elif isinstance(link, list) and len(link) >= 5:
                self.links[link[0]] = (link[1], link[2], link[3], link[4], link[5] if len(link) > 5 else None)
            else:
                raise InvalidInputError(f"malformed link entry {link!r}.", source=SOURCE)
        extra = workflow.get("extra") or {}
        self.group_types = set((extra.get("groupNodes") or {}) if isinstance(extra, dict) else ())
        definitions = workflow.get("definitions") or {}
        subgraphs = definitions.get("subgraphs") if isinstance(definitions, dict) else None
        self.subgraph_types = {s.get("id") for s in subgraphs or [] if isinstance(s, dict)}

    def check_flat(self) -> None:
        for node in self.nodes.values():
            t = node["type"]
            if isinstance(t, str) and (t.startswith(("workflow>", "workflow/")) or t in self.group_types):
                raise InvalidInputError(f"{_node_label(node)} is a group node, which this runner does not expand.",
                                        fix=FLATTEN_FIX, source=SOURCE)
            if t in self.subgraph_types:
                raise InvalidInputError(f"{_node_label(node)} is a subgraph, which this runner does not expand.",
                                        fix=FLATTEN_FIX, source=SOURCE)

    def included(self, node) -> bool:
        return (node.get("mode", 0) not in (MODE_MUTED, MODE_BYPASS)
                and node["type"] not in (REROUTE, PRIMITIVE) and node["type"] not in FRONTEND_ONLY_TYPES)

    def resolve(self, link_id, want_type, consumer, warnings, depth=0):
        """Follow a link to the node output that really feeds it: ('link', [id, slot]) or ('value', v) or None."""
        if depth > len(self.nodes) + 1:
            raise InvalidInputError(f"{_node_label(consumer)}: its input links form a cycle through reroutes or "
                                    "bypassed nodes.", source=SOURCE)
        link = self.links.get(link_id)
        if link is None:
            warnings.append(f"{_node_label(consumer)}: link {link_id} does not exist; input left unconnected.")
            return None
        origin_id, origin_slot, _target, _slot, link_type = link
        origin = self.nodes.get(origin_id)
        if origin is None:
            warnings.append(f"{_node_label(consumer)}: link {link_id} comes from missing node {origin_id}.")
            return None
        want = link_type if link_type not in (None, "", "*") else want_type
        kind = origin["type"]
        if kind == PRIMITIVE:
            values = origin.get("widgets_values") or []
            if not values:
                raise InvalidInputError(f"{_node_label(origin)} has no value.", source=SOURCE)
            return ("value", values[0])
        if kind == REROUTE:
            inputs = origin.get("inputs") or []
            upstream = inputs[0].get("link") if inputs else None
            return None if upstream is None else self.resolve(upstream, want, consumer, warnings, depth + 1)
        mode = origin.get("mode", 0)
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASS:
            inputs = origin.get("inputs") or []
            chosen = None
            if origin_slot is not None and origin_slot < len(inputs) and _types_fit(inputs[origin_slot].get("type"),
                                                                                     want):
                chosen = inputs[origin_slot]
            else:
                exact = [i for i in inputs if i.get("type") == want]
                fitting = [i for i in inputs if _types_fit(i.get("type"), want)]
                chosen = (exact or fitting or [None])[0]
            if chosen is None or chosen.get("link") is None:
                return None
            return self.resolve(chosen["link"], want, consumer, warnings, depth + 1)
        if kind in FRONTEND_ONLY_TYPES:
            return None
        return ("link", [str(origin_id), origin_slot])


def to_api_prompt(workflow: Mapping, node_infos: Mapping[str, Mapping],
                  warnings: list[str] | None = None) -> dict:
    """Convert a UI-format workflow to an API-format prompt (see the module docstring for the rules).

    Args:
        workflow: the parsed workflow JSON; an API-format prompt is returned unchanged (a deep copy).
        node_infos: ``{node type: info}`` as ``GET /object_info`` returns it; only the types in the workflow are
            looked up, so a lazy mapping works.
        warnings: if given, non-fatal notes (defaults filled in, dangling links) are appended to it.
    """
    if isinstance(workflow, Mapping) and "prompt" in workflow and is_api_format(workflow["prompt"]):
        workflow = workflow["prompt"]
    if is_api_format(workflow):
        return copy.deepcopy(dict(workflow))
    if not is_ui_format(workflow):
        raise InvalidInputError("this is not a ComfyUI workflow: neither UI format (a 'nodes' list) nor API format "
                                "({id: {class_type, inputs}}).", fix="save the workflow from ComfyUI, or export it "
                                "with Workflow > Export (API).", source=SOURCE)
    notes: list[str] = [] if warnings is None else warnings
    graph = _Graph(workflow, node_infos)
    graph.check_flat()
    included = [n for n in graph.nodes.values() if graph.included(n)]
    unknown = [n for n in included if node_infos.get(n["type"]) is None]
    if unknown:
        listing = ", ".join(_node_label(n) for n in unknown)
        raise InvalidInputError(f"unknown node type{'s' if len(unknown) > 1 else ''}: {listing}.",
                                fix="install the custom node packs that provide them into this ComfyUI (or mute "
                                "those nodes).", source=SOURCE)
    prompt: dict = {}
    for node in sorted(included, key=lambda n: (n.get("order") or 0, str(n["id"]))):
        info = node_infos[node["type"]]
        declared = set(input_names(info))
        inputs = {name: _wrap(value) for name, value in map_widget_values(node, info, notes).items()}
        for inp in node.get("inputs") or []:
            widget = inp.get("widget")
            name = widget.get("name") if isinstance(widget, dict) and widget.get("name") else inp.get("name")
            link = inp.get("link")
            if link is None:
                continue
            if name not in declared:
                notes.append(f"{_node_label(node)}: input {name!r} is not in the node's definition; its link is "
                             "dropped.")
                continue
            resolved = graph.resolve(link, inp.get("type"), node, notes)
            if resolved is None:
                inputs.pop(name, None)
            elif resolved[0] == "value":
                inputs[name] = _wrap(resolved[1])
            else:
                inputs[name] = resolved[1]
        title = node.get("title") or info.get("display_name") or node["type"]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"], "_meta": {"title": title}}
    # A link to a node that is not in the prompt (muted, unknown) is not sent, as the frontend does.
    for entry in prompt.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in prompt:
                del entry["inputs"][name]
    return prompt
