"""``--set NODE.INPUT=VALUE`` overrides on an API prompt: parsing the value, finding the node by id, title or type,
checking the input exists."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from ...data.errors import InvalidInputError
from .convert import input_names


def parse_value(text: str):
    """``--set`` values: JSON when they parse as JSON (numbers, true/false, lists, quoted strings), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def find_node(prompt: Mapping, selector: str) -> str:
    """The id of the node a selector names: its id, else its title, else its type; each must be unique."""
    if selector in prompt:
        return selector
    for key, label in ((lambda e: (e.get("_meta") or {}).get("title"), "title"), (lambda e: e.get("class_type"),
                                                                                    "type")):
        hits = [node_id for node_id, entry in prompt.items() if key(entry) == selector]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidInputError(f"{len(hits)} nodes have the {label} {selector!r} (ids {', '.join(hits)}).",
                                    fix="use the node id instead.", source="--set")
    raise InvalidInputError(f"no node has the id, title or type {selector!r}.",
                            fix="nodes: " + ", ".join(f"{i} {e.get('class_type')}" for i, e in prompt.items()),
                            source="--set")


def apply_overrides(prompt: dict, overrides: Iterable[str], node_infos: Mapping | None = None) -> dict:
    """Apply ``NODE.INPUT=VALUE`` overrides in place (and return the prompt).

    NODE is a node id, title or type (unique); the split between NODE and INPUT is the first ``.`` after which the
    left part names a node, so titles with dots work. With ``node_infos`` the input must exist on the node.
    """
    for text in overrides:
        target, sep, raw = text.partition("=")
        if not sep or "." not in target:
            raise InvalidInputError(f"{text!r} is not NODE.INPUT=VALUE.", fix="e.g. --set KSampler.steps=4 or "
                                    "--set 3.source=tracks.json.", source="--set")
        node_id = name = None
        error = None
        for i, ch in enumerate(target):
            if ch != ".":
                continue
            try:
                node_id, name = find_node(prompt, target[:i]), target[i + 1:]
                break
            except InvalidInputError as exc:
                error = error or exc
        if node_id is None:
            raise error
        entry = prompt[node_id]
        info = node_infos.get(entry["class_type"]) if node_infos is not None else None
        if info is not None:
            names = input_names(info)
            if name not in names:
                raise InvalidInputError(f"node {node_id} ({entry['class_type']}) has no input {name!r}.",
                                        fix=f"its inputs: {', '.join(names)}.", source="--set")
        value = parse_value(raw)
        entry.setdefault("inputs", {})[name] = {"__value__": value} if isinstance(value, list) else value
    return prompt


__all__ = ["apply_overrides", "find_node", "parse_value"]
