"""How two versions of a pipeline document differ, in plain words.

The versions panel shows what restoring a version would change, or what one
save changed: steps added, removed and changed (with the fields: params,
command, ports, position…), connections added and removed, notes, triggers
and the pipeline's own fields. Items are matched by what names them (a
step's and a note's id, a port's name, an edge's two ends), so reordering a
list is no change, and every change says its before and after values.
"""

from __future__ import annotations

import json
from typing import Any

_ABSENT = object()
STEP_FIELDS = ("runtime", "title", "description", "source", "command", "params", "inputs", "outputs", "timeout",
               "retries", "cache", "env", "position")
PORT_FIELDS = ("file", "format", "path", "key", "normal")
_SHORT = 60


def diff_documents(before: Any, after: Any) -> dict:
    """{same, summary, changes: [{what, id, change, title, fields: [{field, before, after}], text}]}: what going
    from `before` to `after` changes."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    changes: list[dict] = []
    fields = _fields(before, after, ("name", "description", "retention", "version"))
    if fields:
        changes.append(_change("pipeline", None, "changed", None, fields))
    changes += _steps(before.get("nodes"), after.get("nodes"))
    changes += _edges(before.get("edges"), after.get("edges"))
    changes += _keyed("note", before.get("notes"), after.get("notes"), ("text", "position"))
    changes += _keyed("trigger", before.get("triggers"), after.get("triggers"), None)
    return {"same": not changes, "summary": summary(changes), "changes": changes}


def summary(changes: list[dict]) -> str:
    """"2 steps changed, 1 step added and 1 connection removed", or "no changes"."""
    counts: dict[tuple[str, str], int] = {}
    for c in changes:
        counts[(c["what"], c["change"])] = counts.get((c["what"], c["change"]), 0) + 1
    nouns = {"step": "step", "connection": "connection", "note": "note", "trigger": "trigger"}
    parts = []
    for what in ("step", "connection", "note", "trigger"):
        for change in ("added", "removed", "changed"):
            n = counts.get((what, change))
            if n:
                parts.append(f"{n} {nouns[what]}{'' if n == 1 else 's'} {change}")
    if counts.get(("pipeline", "changed")):
        parts.insert(0, "the pipeline's own fields changed")
    if not parts:
        return "no changes"
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


# ------------------------------------------------------------ the parts


def _by_id(items: Any, ident) -> dict:
    out: dict = {}
    for item in items if isinstance(items, list) else []:
        key = ident(item)
        if key is not None and key not in out:
            out[key] = item
    return out


def _steps(before: Any, after: Any) -> list[dict]:
    ident = (lambda n: n.get("id") if isinstance(n, dict) and isinstance(n.get("id"), str) else None)
    old, new = _by_id(before, ident), _by_id(after, ident)
    out = []
    for sid, node in new.items():
        title = node.get("title") if isinstance(node.get("title"), str) else None
        if sid not in old:
            out.append(_change("step", sid, "added", title, [], f"{node.get('runtime') or 'no'} runtime"))
            continue
        fields = _step_fields(old[sid], node)
        if fields:
            out.append(_change("step", sid, "changed", title, fields))
    for sid, node in old.items():
        if sid not in new:
            out.append(_change("step", sid, "removed", node.get("title") if isinstance(node.get("title"), str) else None, []))
    return out


def _step_fields(old: dict, new: dict) -> list[dict]:
    out = []
    for name in STEP_FIELDS + tuple(k for k in list(old) + list(new) if k not in STEP_FIELDS and k != "id"):
        a, b = old.get(name, _ABSENT), new.get(name, _ABSENT)
        if _same(a, b):
            continue
        if name in ("params", "env") and isinstance(a if a is not _ABSENT else {}, dict) \
                and isinstance(b if b is not _ABSENT else {}, dict):
            out += _nested(name, {} if a is _ABSENT else a, {} if b is _ABSENT else b)
        elif name in ("inputs", "outputs"):
            out += _ports(name[:-1], a, b)
        else:
            out.append(_field(name, a, b))
    return out


def _nested(prefix: str, a: dict, b: dict) -> list[dict]:
    out = []
    for key in list(a) + [k for k in b if k not in a]:
        x, y = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if _same(x, y):
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            out += _nested(f"{prefix}.{key}", x, y)
        else:
            out.append(_field(f"{prefix}.{key}", x, y))
    return out


def _port(p: Any) -> dict | None:
    if isinstance(p, str):
        return {"name": p}
    return p if isinstance(p, dict) and isinstance(p.get("name"), str) else None


def _ports(kind: str, a: Any, b: Any) -> list[dict]:
    ident = (lambda p: (_port(p) or {}).get("name"))
    old, new = _by_id(a if a is not _ABSENT else [], ident), _by_id(b if b is not _ABSENT else [], ident)
    out = []
    for name, p in new.items():
        p = _port(p)
        if name not in old:
            out.append({"field": f"{kind} {name}", "before": None, "after": p, "change": "added"})
            continue
        q = _port(old[name])
        for f in PORT_FIELDS:
            x, y = q.get(f, _ABSENT), p.get(f, _ABSENT)
            if not _same(x, y):
                out.append(_field(f"{kind} {name} {f}", x, y))
    for name, p in old.items():
        if name not in new:
            out.append({"field": f"{kind} {name}", "before": _port(p), "after": None, "change": "removed"})
    return out


def _edges(before: Any, after: Any) -> list[dict]:
    def ident(e):
        if isinstance(e, dict) and isinstance(e.get("from"), str) and isinstance(e.get("to"), str):
            return f"{e['from']} → {e['to']}"
        return None
    old, new = _by_id(before, ident), _by_id(after, ident)
    out = [_change("connection", k, "added", None, []) for k in new if k not in old]
    out += [_change("connection", k, "removed", None, []) for k in old if k not in new]
    return out


def _keyed(what: str, before: Any, after: Any, names: tuple | None) -> list[dict]:
    ident = (lambda n: n.get("id") if isinstance(n, dict) and isinstance(n.get("id"), str) else None)
    old, new = _by_id(before, ident), _by_id(after, ident)
    out = []
    for key, item in new.items():
        if key not in old:
            out.append(_change(what, key, "added", None, [], _short(item.get("text")) if what == "note" else None))
            continue
        fields = _fields(old[key], item, names or tuple(k for k in list(old[key]) + list(item) if k != "id"))
        if fields:
            out.append(_change(what, key, "changed", None, fields))
    out += [_change(what, key, "removed", None, [], _short(item.get("text")) if what == "note" else None)
            for key, item in old.items() if key not in new]
    return out


def _fields(a: dict, b: dict, names) -> list[dict]:
    seen, out = set(), []
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        x, y = a.get(name, _ABSENT), b.get(name, _ABSENT)
        if not _same(x, y):
            out.append(_field(name, x, y))
    return out


# ------------------------------------------------------------ words


def _field(name: str, a: Any, b: Any) -> dict:
    change = "added" if a is _ABSENT else "removed" if b is _ABSENT else "changed"
    return {"field": name, "before": None if a is _ABSENT else a, "after": None if b is _ABSENT else b,
            "change": change}


def _change(what: str, ident: str | None, change: str, title: str | None, fields: list[dict],
            detail: str | None = None) -> dict:
    return {"what": what, "id": ident, "change": change, "title": title, "fields": fields,
            "text": _sentence(what, ident, change, title, fields, detail)}


def _sentence(what: str, ident, change: str, title, fields: list[dict], detail) -> str:
    name = {"pipeline": "The pipeline", "step": f"Step “{title or ident}”", "connection": f"Connection {ident}",
            "note": f"Note “{ident}”", "trigger": f"Trigger “{ident}”"}[what]
    if change != "changed":
        return f"{name} {change}" + (f" ({detail})" if detail else "")
    return f"{name}: " + "; ".join(_say(f) for f in fields)


def _say(f: dict) -> str:
    name, change = f["field"], f["change"]
    if name == "position":
        return "moved on the canvas"
    for prefix, word in (("params.", "param "), ("env.", "env ")):
        if name.startswith(prefix):
            name = word + name[len(prefix):]
    if change == "added":
        return f"{name} added" + ("" if isinstance(f["after"], dict) and "name" in f["after"] else f" ({_short(f['after'])})")
    if change == "removed":
        return f"{name} removed"
    return f"{name} {_short(f['before'])} → {_short(f['after'])}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = " ".join(str(text).split())
    return text if len(text) <= _SHORT else text[:_SHORT - 1] + "…"


def _same(a: Any, b: Any) -> bool:
    if a is _ABSENT or b is _ABSENT:
        return a is b
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
