"""A run as one self-contained HTML page to share: the graph, every step in plain words, samples and diffs.

`build_story(workspace, store, run_id)` returns the page's text. It needs
nothing else to open: styles are inline, the graph is inline SVG, there is no
script and no link to fetch, so it opens from disk (or an e-mail) and prints
well. It carries samples, never whole outputs: a few records per connection
and a few examples of what each step dropped, changed or added.
"""

from __future__ import annotations

import html
import json
import textwrap
import time
from pathlib import Path
from typing import Any

from .data.stepdiff import pipeline_of_run
from .errors import PipeloomError

SAMPLE_RECORDS = 5
DIFF_EXAMPLES = 3
CELL_CHARS = 60
CARD_W, CARD_H = 230, 92
# Sticky notes, drawn as the studio draws them: 220 wide, 14px words, in a row above the steps when the
# file gives no place. A note within NOTE_REACH of a step's card sits beside that step (as Tidy up reads it).
NOTE_W, NOTE_GAP, NOTE_ABOVE = 220, 24, 120
NOTE_PAD, NOTE_LINE_H, NOTE_CHARS, NOTE_MAX_LINES = 10, 19, 25, 16
NOTE_REACH = 120

STATUS_WORDS = {"succeeded": "Succeeded", "cached": "Reused", "failed": "Failed", "timed_out": "Timed out",
                "cancelled": "Cancelled", "skipped": "Skipped", "interrupted": "Interrupted", "running": "Running",
                "pending": "Waiting"}
STATUS_COLOURS = {"succeeded": "#1a7f37", "cached": "#1a7f37", "failed": "#cf222e", "timed_out": "#bc4c00",
                  "interrupted": "#bc4c00"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _change(field: dict) -> str:
    """"before → after" for a changed field; when the two would read the same (the text "18.2" that became the
    number 18.2), both as JSON, so the quotes show what changed."""
    was = "absent" if field["was"] == "absent" else _short(field["before"])
    now = "absent" if field["now"] == "absent" else _short(field["after"])
    if was == now and field["was"] != "absent" and field["now"] != "absent":
        was, now = (_short(json.dumps(v, ensure_ascii=False)) for v in (field["before"], field["after"]))
    return f"{was} → {now}"


def _duration(s: float | None) -> str:
    if s is None:
        return ""
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {s % 60:.0f} s"


def _records(n: int | None) -> str:
    if n is None:
        return ""
    return f"{n:,} record" + ("" if n == 1 else "s")


# ------------------------------------------------------------ the graph


def _layout(pipeline) -> dict[str, tuple[float, float]]:
    """Each step's top-left corner: its saved position, else a column per dependency depth."""
    depth = {nid: 0 for nid in pipeline.node_ids}
    for _ in pipeline.node_ids:  # longest path from a source, enough passes for any DAG
        for e in pipeline.edges:
            depth[e.dst_node] = max(depth[e.dst_node], depth[e.src_node] + 1)
    rows: dict[int, int] = {}
    out = {}
    for nid in pipeline.node_ids:
        node = pipeline.node(nid)
        if node.position:
            out[nid] = (float(node.position["x"]), float(node.position["y"]))
        else:
            d = depth[nid]
            out[nid] = (40 + d * 320, 40 + rows.get(d, 0) * 150)
            rows[d] = rows.get(d, 0) + 1
    return out


def _note_lines(text: str) -> list[str]:
    """A note's words wrapped as the studio wraps them (about 25 characters to a line of its 220px note)."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        lines.extend(textwrap.wrap(para, NOTE_CHARS, break_long_words=True, break_on_hyphens=False) or [""])
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    if len(lines) > NOTE_MAX_LINES:  # the page's list below has every word
        lines = lines[:NOTE_MAX_LINES]
        lines[-1] = lines[-1][: NOTE_CHARS - 1].rstrip() + "…"
    return lines


def _notes(pipeline, pos: dict[str, tuple[float, float]]) -> list[dict]:
    """Every note with its rectangle and wrapped lines, in reading order (rows top to bottom, each left to
    right), numbered; `beside` is the step whose card it sits beside, if any. A note without a place goes
    in a row above the steps, as the studio puts it."""
    left = min((x for x, _ in pos.values()), default=40.0)
    top = min((y for _, y in pos.values()), default=160.0) - NOTE_ABOVE
    out, row = [], 0
    for note in pipeline.notes:
        if note.position:
            x, y = float(note.position["x"]), float(note.position["y"])
        else:
            x, y = left + (NOTE_W + NOTE_GAP) * row, top
            row += 1
        lines = _note_lines(note.text)
        h = max(44, NOTE_PAD * 2 + NOTE_LINE_H * len(lines) + 2)
        out.append({"id": note.id, "text": note.text, "x": x, "y": y, "w": NOTE_W, "h": h, "lines": lines,
                    "beside": _beside((x, y, NOTE_W, h), pipeline, pos) if note.position else None})
    out.sort(key=lambda n: n["y"])
    rows: list[list[dict]] = []
    for n in out:  # notes whose tops are within 40px of a row's first are read as one row
        if rows and n["y"] - rows[-1][0]["y"] <= 40:
            rows[-1].append(n)
        else:
            rows.append([n])
    ordered = [n for r in rows for n in sorted(r, key=lambda n: n["x"])]
    for i, n in enumerate(ordered, 1):
        n["number"] = i
    return ordered


def _studio_card(node) -> tuple[float, float]:
    """About the size of the step's card in the studio, where the notes were placed: a title of one or two
    lines, up to three lines of description, a row per port."""
    title = node.title or node.id
    title_lines = 1 if len(title) <= 18 else 2
    desc = len(node.description or "")
    desc_h = min(3, -(-desc // 32)) * 18 + 8 if desc else 0
    rows = len(node.inputs) + len(node.outputs)
    return 240.0, 26 + 18 * title_lines + desc_h + (rows * 24 + 12 if rows else 0) + 32


def _beside(rect, pipeline, pos: dict[str, tuple[float, float]]) -> str | None:
    """The step whose card (at its size in the studio) is nearest the note `rect`, if one is within NOTE_REACH."""
    x, y, w, h = rect
    best, near = None, float(NOTE_REACH)
    for nid, (cx, cy) in pos.items():
        cw, ch = _studio_card(pipeline.node(nid))
        dx = max(0.0, cx - (x + w), x - (cx + cw))
        dy = max(0.0, cy - (y + h), y - (cy + ch))
        gap = (dx * dx + dy * dy) ** 0.5
        if gap <= near:
            best, near = nid, gap
    return best


def _runtime_label(name: str) -> str:
    """The runtime's name as the studio's badge shows it ("Node.js", not "node")."""
    from .runtimes import get_runtime

    runtime = get_runtime(name)
    return getattr(runtime, "label", None) or name


def _note_svg(n: dict) -> str:
    x, y, w, h = n["x"], n["y"], n["w"], n["h"]
    spans = "".join(f'<tspan x="{x + 12:.0f}" y="{y + NOTE_PAD + 14 + i * NOTE_LINE_H:.0f}">{esc(line)}</tspan>'
                    for i, line in enumerate(n["lines"]))
    return (f'<g class="note" data-note-id="{esc(n["id"])}">'
            f'<rect x="{x + 1:.0f}" y="{y + 3:.0f}" width="{w}" height="{h:.0f}" rx="4" class="note-shadow"/>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{w}" height="{h:.0f}" rx="4" class="note-paper"/>'
            f'<circle cx="{x + w:.0f}" cy="{y:.0f}" r="10" class="note-pin"/>'
            f'<text class="note-number" x="{x + w:.0f}" y="{y + 4:.0f}">{n["number"]}</text>'
            f'<text class="note-text">{spans}</text></g>')


def _svg(pipeline, run: dict, pos: dict[str, tuple[float, float]], notes: list[dict]) -> str:
    rects = [(x, y, CARD_W, CARD_H) for x, y in pos.values()] + [(n["x"], n["y"], n["w"], n["h"]) for n in notes]
    rects = rects or [(0, 0, CARD_W, CARD_H)]
    x0, y0 = min(r[0] for r in rects) - 30, min(r[1] for r in rects) - 30
    w = max(r[0] + r[2] for r in rects) - x0 + 30
    h = max(r[1] + r[3] for r in rects) - y0 + 30
    nodes = run.get("nodes") or {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{x0:.0f} {y0:.0f} {w:.0f} {h:.0f}" '
             f'role="img" aria-label="The pipeline as a graph of its steps" class="graph">']
    labels = []  # drawn after every connection, so no line from the same port runs through a label
    for e in pipeline.edges:
        (sx, sy), (dx, dy) = pos[e.src_node], pos[e.dst_node]
        ax, ay, bx, by = sx + CARD_W, sy + CARD_H / 2, dx, dy + CARD_H / 2
        mid = (ax + bx) / 2
        parts.append(f'<path d="M{ax:.0f},{ay:.0f} C{mid:.0f},{ay:.0f} {mid:.0f},{by:.0f} {bx:.0f},{by:.0f}" '
                     f'class="edge"/>')
        art = ((nodes.get(e.src_node) or {}).get("artifacts") or {}).get(e.src_port) or {}
        label = _records(art.get("records")) or e.src_port
        lx, ly = (ax + bx) / 2, (ay + by) / 2
        labels.append(f'<g class="edge-label"><rect x="{lx - 52:.0f}" y="{ly - 11:.0f}" width="104" height="22" rx="6"/>'
                      f'<text x="{lx:.0f}" y="{ly + 4:.0f}">{esc(label)}</text></g>')
    parts.extend(labels)
    parts.extend(_note_svg(n) for n in notes)  # above the connections, below the steps, as in the studio
    for nid in pipeline.node_ids:
        node = pipeline.node(nid)
        x, y = pos[nid]
        info = nodes.get(nid) or {}
        status = info.get("status") or ""
        colour = STATUS_COLOURS.get(status, "#57606a")
        word = STATUS_WORDS.get(status, "Not in this run") if status else "Not in this run"
        title = node.title or nid
        parts.append(f'<g class="card"><rect x="{x:.0f}" y="{y:.0f}" width="{CARD_W}" height="{CARD_H}" rx="10"/>'
                     f'<rect x="{x:.0f}" y="{y:.0f}" width="5" height="{CARD_H}" rx="2" fill="{colour}"/>'
                     f'<text x="{x + 16:.0f}" y="{y + 24:.0f}" class="card-runtime">{esc(_runtime_label(node.runtime))}</text>'
                     f'<text x="{x + 16:.0f}" y="{y + 48:.0f}" class="card-title">{esc(_short(title)[:30])}</text>'
                     f'<text x="{x + 16:.0f}" y="{y + 76:.0f}" class="card-status" fill="{colour}">'
                     f'{esc(word)}{esc(" · " + _duration(info.get("duration_s"))) if status == "succeeded" else ""}'
                     f'</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------ samples and diffs


def _sample(path: str, fmt: str) -> str:
    from .data.preview import preview_file

    try:
        page = preview_file(path, fmt, offset=0, limit=SAMPLE_RECORDS)
    except (PipeloomError, OSError) as exc:
        return f'<p class="muted">No sample: {esc(exc)}</p>'
    kind = page.get("kind")
    if kind == "table":
        cols = page.get("columns") or []
        head = "".join(f"<th>{esc(c)}</th>" for c in cols)
        rows = "".join("<tr>" + "".join(f"<td>{esc(_short(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                       for r in page.get("items") or [])
        more = ""
        if page.get("total") and page["total"] > len(page.get("items") or []):
            more = f'<p class="muted">The first {len(page["items"])} of {page["total"]:,}.</p>'
        return f'<table class="sample"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}'
    if kind == "text":
        return "<pre>" + esc("\n".join(_short(x) for x in page.get("items") or [])) + "</pre>"
    if kind == "tree":
        text = json.dumps((page.get("items") or [None])[0], ensure_ascii=False, indent=1)
        return "<pre>" + esc(text[:1200] + ("…" if len(text) > 1200 else "")) + "</pre>"
    return '<p class="muted">Binary data (not shown).</p>'


def _diff_html(workspace, store, pipeline, run_id: str, nid: str) -> str:
    from .data.diff import DiffError
    from .data.stepdiff import step_diff

    try:
        d, ports = step_diff(workspace, store, pipeline, run_id, nid)
    except DiffError:
        return ""  # not a records step: nothing to say
    except (PipeloomError, OSError) as exc:
        return f'<p class="muted">What changed could not be worked out: {esc(exc)}</p>'
    c = d.counts
    sentence = d.said
    out = [f'<p class="diff"><strong>What it did to the records:</strong> it {esc(sentence)}.</p>']
    for kind in ("dropped", "changed", "added"):
        if not c[kind]:
            continue
        items = d.items(kind, 0, DIFF_EXAMPLES)
        lis = []
        for it in items:
            key = f"{', '.join(d.key)} {_short(it['key'])}" if d.key else "a record"
            if kind == "changed":
                what = "; ".join(f"{f['field']}: {_change(f)}" for f in it["fields"])
            else:
                what = ", ".join(f"{k}: {_short(v)}" for k, v in it["record"].items())
                if it.get("reason"):
                    what = f"{it['reason']} ({what})"
            lis.append(f"<li><strong>{esc(key)}</strong>: {esc(what)}</li>")
        more = f" (the first {len(items)} of {c[kind]:,})" if c[kind] > len(items) else ""
        out.append(f'<p class="diff-kind">{esc(kind.capitalize())}{esc(more)}:</p><ul>{"".join(lis)}</ul>')
    return "".join(out)


# ------------------------------------------------------------ the page

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0; background: #fff; }
main { max-width: 960px; margin: 0 auto; padding: 28px 24px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 6px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
.muted { color: #57606a; } .lede { font-size: 16px; margin: 6px 0 14px; }
.facts { color: #57606a; font-size: 13px; margin: 0 0 12px; }
.graph { width: 100%; height: auto; border: 1px solid #d6dce3; border-radius: 10px; background: #f6f8fa; }
.graph .edge { fill: none; stroke: #7d8690; stroke-width: 2; }
.graph .edge-label rect { fill: #fff; stroke: #d6dce3; } .graph .edge-label text { font-size: 12px; text-anchor: middle; }
.graph .card rect:first-child { fill: #fff; stroke: #b9c1ca; }
.graph .card-runtime { font-size: 11px; fill: #57606a; text-transform: uppercase; letter-spacing: .04em; }
.graph .card-title { font-size: 15px; font-weight: 600; fill: #1f2328; }
.graph .card-status { font-size: 13px; font-weight: 600; }
.graph .note-paper { fill: #fff4b8; stroke: #d9c25a; } .graph .note-shadow { fill: #1f2328; opacity: .08; }
.graph .note-text { font-size: 14px; fill: #3b3000; } .graph .note-pin { fill: #fff; stroke: #d9c25a; }
.graph .note-number { font-size: 11px; font-weight: 600; fill: #6b5a00; text-anchor: middle; }
ol.notes { margin: 8px 0 0; padding-left: 26px; }
ol.notes li { font-size: 14px; margin: 0 0 8px; padding: 8px 12px; background: #fff4b8; color: #3b3000;
  border: 1px solid #d9c25a; border-radius: 4px; max-width: 620px; page-break-inside: avoid; }
ol.notes li::marker { color: #6b5a00; font-weight: 600; }
.note-words { white-space: pre-wrap; overflow-wrap: anywhere; }
.note-where { display: block; margin-top: 2px; font-size: 12px; color: #6b5a00; } .note-where a { color: inherit; }
section.step { border-top: 1px solid #d6dce3; margin-top: 26px; padding-top: 4px; page-break-inside: avoid; }
.status { font-weight: 600; } .runtime { font-size: 12px; color: #57606a; }
table.sample { border-collapse: collapse; font-size: 12px; margin: 6px 0; display: block; overflow-x: auto; }
table.sample th, table.sample td { border: 1px solid #d6dce3; padding: 3px 7px; text-align: left; white-space: nowrap; }
table.sample th { background: #f3f5f7; }
pre { background: #f6f8fa; border: 1px solid #d6dce3; border-radius: 6px; padding: 8px; font-size: 12px; overflow-x: auto; }
ul { margin: 2px 0 8px; padding-left: 22px; } li { font-size: 13px; }
.diff-kind { margin: 6px 0 0; font-size: 13px; font-weight: 600; }
footer { margin-top: 40px; color: #57606a; font-size: 12px; }
@media print { main { max-width: none; padding: 0; } .graph { break-inside: avoid; } }
"""


def build_story(workspace: str | Path, store, run_id: str) -> str:
    """The run `run_id` as one self-contained HTML page."""
    workspace = Path(workspace)
    run = store.get_run(run_id)
    pipeline = pipeline_of_run(workspace, run)
    nodes = run.get("nodes") or {}
    status = run.get("status") or ""
    started = run.get("started_at") or ""
    counts: dict[str, int] = {}
    for info in nodes.values():
        counts[info.get("status") or ""] = counts.get(info.get("status") or "", 0) + 1
    summary = ", ".join(f"{n} {STATUS_WORDS.get(s, s).lower()}" for s, n in counts.items() if s)
    body = [f"<h1>{esc(pipeline.name)}</h1>"]
    if pipeline.description:
        body.append(f'<p class="lede">{esc(pipeline.description)}</p>')
    body.append(f'<p class="facts">Run {esc(run_id)} · {esc(STATUS_WORDS.get(status, status))} · started '
                f'{esc(str(started).replace("T", " ")[:19])} UTC'
                + (f" · took {esc(_duration(run.get('duration_s')))}" if run.get("duration_s") is not None else "")
                + (f" · steps: {esc(summary)}" if summary else "") + "</p>")
    pos = _layout(pipeline)
    notes = _notes(pipeline, pos)
    body.append(_svg(pipeline, run, pos, notes))
    if notes:
        body.append(_notes_html(pipeline, notes))
    body.append("<h2>Step by step</h2>")
    for nid in _order(pipeline):
        node = pipeline.node(nid)
        info = nodes.get(nid) or {}
        st = info.get("status") or ""
        word = STATUS_WORDS.get(st, "Not in this run") if st else "Not in this run"
        colour = STATUS_COLOURS.get(st, "#57606a")
        took = f" in {_duration(info.get('duration_s'))}" if st == "succeeded" else ""
        parts = [f'<section class="step" id="step-{esc(nid)}"><h3>{esc(node.title or nid)} '
                 f'<span class="runtime">{esc(_runtime_label(node.runtime))} · step id {esc(nid)}</span></h3>',
                 f'<p class="status" style="color:{colour}">{esc(word)}{esc(took)}</p>']
        if node.description:
            parts.append(f"<p>{esc(node.description)}</p>")
        if info.get("message") and st not in ("succeeded",):
            parts.append(f'<p class="muted">{esc(info["message"])}</p>')
        ins = [e for e in pipeline.edges if e.dst_node == nid]
        if ins:
            names = ", ".join(f"{pipeline.node(e.src_node).title or e.src_node} ({e.src_port})" for e in ins)
            parts.append(f'<p class="muted">Takes its data from {esc(names)}.</p>')
        if st in ("succeeded", "cached"):
            parts.append(_diff_html(workspace, store, pipeline, run_id, nid))
            for port, art in (info.get("artifacts") or {}).items():
                size = _records(art.get("records")) or f"{art.get('size', 0):,} bytes"
                parts.append(f"<p><strong>Output {esc(port)}</strong> ({esc(art.get('format'))}, {esc(size)}):</p>")
                parts.append(_sample(art["path"], art.get("format") or "binary")
                             if art.get("path") and Path(art["path"]).is_file()
                             else '<p class="muted">No longer on disk.</p>')
        parts.append("</section>")
        body.append("".join(parts))
    body.append(f'<footer>Made by Pipeloom on {esc(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))} from run '
                f'{esc(run_id)}. Samples only: the whole outputs stay in the workspace.</footer>')
    title = f"{pipeline.name} · run {run_id}"
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body><main>"
            + "\n".join(body) + "</main></body></html>\n")


def _notes_html(pipeline, notes: list[dict]) -> str:
    """The notes as a numbered list in reading order, numbered as on the graph, each naming the step it sits
    beside (a link to that step's part of the page)."""
    items = []
    for n in notes:
        where = ""
        if n["beside"]:
            title = pipeline.node(n["beside"]).title or n["beside"]
            where = (f'<span class="note-where">Beside the step <a href="#step-{esc(n["beside"])}">'
                     f'{esc(title)}</a></span>')
        items.append(f'<li id="note-{esc(n["id"])}"><span class="note-words">{esc(n["text"])}</span>{where}</li>')
    return ('<h2>Notes from the authors</h2><p class="muted">The yellow notes on the graph, in reading order.</p>'
            f'<ol class="notes">{"".join(items)}</ol>')


def _order(pipeline) -> list[str]:
    from .runner import topo_order

    return topo_order(pipeline)
