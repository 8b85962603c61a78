"""Writing a pipeline document: canonical key order, and YAML whose ports, edges, commands and positions
take one line each and whose multi-line notes are `|` blocks, so reviews of a pipeline file stay readable."""

from __future__ import annotations

import json
from typing import Any

from ..model import EDGE_KEYS, NODE_KEYS, NOTE_KEYS, PORT_KEYS, TOP_KEYS


def canonical(doc: dict) -> dict:
    """Reorder a raw document's keys canonically, keeping unknown keys at the end."""
    def order(d: dict, keys: tuple) -> dict:
        out = {k: d[k] for k in keys if k in d}
        out.update({k: v for k, v in d.items() if k not in out})
        return out

    out = order(doc, TOP_KEYS)
    if isinstance(out.get("nodes"), list):
        nodes = []
        for n in out["nodes"]:
            if isinstance(n, dict):
                n = order(n, NODE_KEYS)
                for kind in ("inputs", "outputs"):
                    if isinstance(n.get(kind), list):
                        n[kind] = [order(pt, PORT_KEYS) if isinstance(pt, dict) else pt for pt in n[kind]]
            nodes.append(n)
        out["nodes"] = nodes
    if isinstance(out.get("edges"), list):
        out["edges"] = [order(e, EDGE_KEYS) if isinstance(e, dict) else e for e in out["edges"]]
    if isinstance(out.get("notes"), list):
        out["notes"] = [order(n, NOTE_KEYS) if isinstance(n, dict) else n for n in out["notes"]]
    return out


class _FlowList(list):
    pass


def _flow_list(dumper, data: _FlowList):
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


def _flow_map(dumper, data: "_FlowMap"):
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


class _FlowMap(dict):
    pass


class _Block(str):
    pass


def _block(dumper, data: "_Block"):
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


def _note_text(text: Any) -> Any:
    """A note of several lines is written as a `|` block, line for line, instead of one escaped string."""
    if isinstance(text, str) and "\n" in text.rstrip("\n") and not any(c in text for c in "\t\r") \
            and text == text.rstrip(" ") and not text.startswith(" "):
        return _Block(text)
    return text


_Dumper: Any = None


def _make_dumper() -> None:
    """The YAML dumper with compact one-line ports, edges and commands, and notes as blocks (made on first use,
    with PyYAML)."""
    global _Dumper
    if _Dumper is None:
        import yaml

        class Dumper(yaml.SafeDumper):
            pass

        Dumper.add_representer(_FlowList, _flow_list)
        Dumper.add_representer(_FlowMap, _flow_map)
        Dumper.add_representer(_Block, _block)
        _Dumper = Dumper


def dump_document(doc: dict, *, json_syntax: bool) -> str:
    """Serialise a document with canonical key order; ports, edges, commands
    and positions use compact one-line forms so reviews stay readable."""
    doc = canonical(doc)
    if json_syntax:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    _make_dumper()
    pretty = dict(doc)
    if isinstance(pretty.get("nodes"), list):
        nodes = []
        for n in pretty["nodes"]:
            if isinstance(n, dict):
                n = dict(n)
                for kind in ("inputs", "outputs"):
                    if isinstance(n.get(kind), list):
                        n[kind] = [_FlowMap(p) if isinstance(p, dict) else p for p in n[kind]]
                if isinstance(n.get("command"), list):
                    n["command"] = _FlowList(n["command"])
                if isinstance(n.get("position"), dict):
                    n["position"] = _FlowMap(n["position"])
            nodes.append(n)
        pretty["nodes"] = nodes
    if isinstance(pretty.get("edges"), list):
        pretty["edges"] = [_FlowMap(e) if isinstance(e, dict) else e for e in pretty["edges"]]
    if isinstance(pretty.get("notes"), list):
        notes = []
        for n in pretty["notes"]:
            if isinstance(n, dict):
                n = dict(n)
                if isinstance(n.get("position"), dict):
                    n["position"] = _FlowMap(n["position"])
                if "text" in n:
                    n["text"] = _note_text(n["text"])
            notes.append(n)
        pretty["notes"] = notes
    import yaml

    return yaml.dump(pretty, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
