"""Write an edited pipeline back over its file with the smallest possible diff.

The studio sends a whole document; writing it out fresh would drop the
user's comments and reformat every line. Instead the new document is merged
into the file's own parse tree (ruamel.yaml's round-trip mode): unchanged
values keep their exact spelling (`6.0` stays `6.0`), comments and quoting
survive, nodes and ports are matched by id and name rather than position,
and new items copy the style of their siblings.
"""

from __future__ import annotations

import difflib
import io
import json
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from .model import EDGE_KEYS, NODE_KEYS, NOTE_KEYS, PORT_KEYS, TOP_KEYS
from .pipeline.write import canonical, dump_document

_ORDER = {"top": TOP_KEYS, "node": NODE_KEYS, "port": PORT_KEYS, "edge": EDGE_KEYS, "note": NOTE_KEYS}


def render_document(doc: dict, old_text: str | None, *, json_syntax: bool) -> str:
    """The text to write for `doc`, keeping as much of `old_text` as still applies."""
    if not old_text or not old_text.strip():
        return dump_document(doc, json_syntax=json_syntax)
    if json_syntax:
        try:
            old = json.loads(old_text)
        except json.JSONDecodeError:
            return dump_document(doc, json_syntax=True)
        if not isinstance(old, dict):
            return dump_document(doc, json_syntax=True)
        merged = _merge(old, canonical(doc), "top")
        return json.dumps(merged, indent=_json_indent(old_text), ensure_ascii=False) + "\n"
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long description line the user wrote on one line
    try:
        _, _indent, block_seq_indent = load_yaml_guess_indent(old_text)
        old = yaml.load(old_text)
    except YAMLError:
        return dump_document(doc, json_syntax=False)
    if not isinstance(old, CommentedMap):
        return dump_document(doc, json_syntax=False)
    merged = _merge(old, canonical(doc), "top")
    offset = block_seq_indent or 0
    yaml.indent(mapping=_mapping_indent(old_text), sequence=offset + 2, offset=offset)
    out = io.StringIO()
    yaml.dump(merged, out)
    return _restore_spacing(old_text, out.getvalue())


def _restore_spacing(old_text: str, new_text: str) -> str:
    """Put back the user's own spacing on lines whose content did not change
    (ruamel normalises `key:   value` alignment)."""
    old_lines = old_text.splitlines(keepends=True)
    new_lines = new_text.splitlines(keepends=True)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace" and (i2 - i1) == (j2 - j1):
            for a, b in zip(old_lines[i1:i2], new_lines[j1:j2]):
                out.append(a if a.split() == b.split() and _indent(a) == _indent(b) else b)
        else:
            out.extend(new_lines[j1:j2])
    return "".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _mapping_indent(text: str) -> int:
    """How far a nested mapping is indented under its key (the first example found), default 2."""
    lines = text.splitlines()
    for a, b in zip(lines, lines[1:]):
        sa, sb = a.lstrip(" "), b.lstrip(" ")
        if (sa.endswith(":") and not sa.startswith(("-", "#")) and sb and not sb.startswith(("-", "#"))
                and len(b) - len(sb) > len(a) - len(sa)):
            return (len(b) - len(sb)) - (len(a) - len(sa))
    return 2


def _json_indent(text: str) -> int:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and len(stripped) != len(line):
            return len(line) - len(stripped)
    return 2


def _kind_of_list(parent_kind: str, key: str) -> str | None:
    if parent_kind == "top" and key == "nodes":
        return "node"
    if parent_kind == "top" and key == "edges":
        return "edge"
    if parent_kind == "top" and key == "notes":
        return "note"
    if parent_kind == "node" and key in ("inputs", "outputs"):
        return "port"
    return None


def _identity(item: Any, kind: str | None) -> Any:
    if not isinstance(item, dict):
        return None
    if kind in ("node", "note"):
        return item.get("id")
    if kind == "port":
        return item.get("name")
    if kind == "edge":
        return (item.get("from"), item.get("to"))
    return None


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new or (isinstance(old, bool) and isinstance(new, bool) and old == new)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return old == new
    if isinstance(old, str):
        return old == new  # a quoted or plain ruamel string equals the plain str it spells
    return type(old) is type(new) and old == new


def _merge(old: Any, new: Any, kind: str | None) -> Any:
    """`new`, built from the pieces of `old` wherever they are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [k for k in old if k not in new]:
            del old[key]
        order = _ORDER.get(kind or "", ())
        for key, value in new.items():
            if key in old:
                child_kind = _kind_of_list(kind or "", key)
                merged = _merge(old[key], value, child_kind)
                if merged is not old[key]:
                    old[key] = _text_block(merged) if kind == "note" and key == "text" else merged
            else:
                value = _fresh(value, True if key == "position" else _sibling_style(old))
                if kind == "note" and key == "text":
                    value = _text_block(value)
                pos = _insert_position(old, key, order)
                if isinstance(old, CommentedMap) and pos is not None:
                    old.insert(pos, key, value)
                else:
                    old[key] = value
        return old
    if isinstance(old, list) and isinstance(new, list):
        by_key = {}
        for item in old:
            ident = _identity(item, kind)
            if ident is not None and ident not in by_key:
                by_key[ident] = item
        items = []
        style = _sibling_style(old)
        if style is None and kind in ("port", "edge"):
            style = True  # the compact one-line form Pipeloom writes for ports and edges
        for i, item in enumerate(new):
            ident = _identity(item, kind)
            if ident is not None and ident in by_key:
                items.append(_merge(by_key.pop(ident), item, kind))
            elif ident is None and kind is None and i < len(old):
                items.append(_merge(old[i], item, None))
            else:
                items.append(_fresh(item, style))
        if len(items) == len(old) and all(a is b for a, b in zip(items, old)):
            return old
        if isinstance(old, CommentedSeq):
            flow = old.fa.flow_style()
            seq = CommentedSeq(items)
            if flow:
                seq.fa.set_flow_style()
            return seq
        return items
    return old if _same(old, new) else new


def _text_block(text):
    """A note's text of several lines as a `|` block, as pipeline/write.py writes it."""
    if isinstance(text, str) and "\n" in text.rstrip("\n") and not any(c in text for c in "\t\r"):
        return LiteralScalarString(text)
    return text


def _sibling_style(container: Any) -> bool | None:
    """Whether mappings inside `container` are written in flow style ({a: 1}), if any are."""
    values = container.values() if isinstance(container, dict) else container
    for v in values:
        if isinstance(v, CommentedMap):
            return bool(v.fa.flow_style())
    return None


def _fresh(value: Any, flow: bool | None) -> Any:
    """A new value as ruamel objects, styled like its siblings."""
    if isinstance(value, dict):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _fresh(v, True if k == "position" else None)
            if k == "text" and "id" in value and "runtime" not in value:
                m[k] = _text_block(v)
            if k in ("inputs", "outputs") and isinstance(v, list):
                m[k] = CommentedSeq([_fresh(p, True) for p in v])
        if flow:
            m.fa.set_flow_style()
        return m
    if isinstance(value, list):
        s = CommentedSeq([_fresh(v, None) for v in value])
        if value and all(not isinstance(v, (dict, list)) for v in value):
            s.fa.set_flow_style()
        return s
    return value


def _insert_position(old: dict, key: str, order: tuple) -> int | None:
    """Where a new key goes so the canonical field order holds."""
    if key not in order:
        return None
    rank = order.index(key)
    for i, existing in enumerate(old):
        if existing in order and order.index(existing) > rank:
            return i
    return None
