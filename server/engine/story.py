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
import time
from pathlib import Path
from typing import Any

from .data.stepdiff import pipeline_of_run
from .errors import PipeloomError

SAMPLE_RECORDS = 5
DIFF_EXAMPLES = 3
CELL_CHARS = 60
CARD_W, CARD_H = 230, 92

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


def _svg(pipeline, run: dict) -> str:
    pos = _layout(pipeline)
    xs = [x for x, _ in pos.values()] or [0]
    ys = [y for _, y in pos.values()] or [0]
    x0, y0 = min(xs) - 30, min(ys) - 30
    w, h = max(xs) - x0 + CARD_W + 30, max(ys) - y0 + CARD_H + 30
    nodes = run.get("nodes") or {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{x0:.0f} {y0:.0f} {w:.0f} {h:.0f}" '
             f'role="img" aria-label="The pipeline as a graph of its steps" class="graph">']
    for e in pipeline.edges:
        (sx, sy), (dx, dy) = pos[e.src_node], pos[e.dst_node]
        ax, ay, bx, by = sx + CARD_W, sy + CARD_H / 2, dx, dy + CARD_H / 2
        mid = (ax + bx) / 2
        parts.append(f'<path d="M{ax:.0f},{ay:.0f} C{mid:.0f},{ay:.0f} {mid:.0f},{by:.0f} {bx:.0f},{by:.0f}" '
                     f'class="edge"/>')
        art = ((nodes.get(e.src_node) or {}).get("artifacts") or {}).get(e.src_port) or {}
        label = _records(art.get("records")) or e.src_port
        lx, ly = (ax + bx) / 2, (ay + by) / 2
        parts.append(f'<g class="edge-label"><rect x="{lx - 52:.0f}" y="{ly - 11:.0f}" width="104" height="22" rx="6"/>'
                     f'<text x="{lx:.0f}" y="{ly + 4:.0f}">{esc(label)}</text></g>')
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
                     f'<text x="{x + 16:.0f}" y="{y + 24:.0f}" class="card-runtime">{esc(node.runtime)}</text>'
                     f'<text x="{x + 16:.0f}" y="{y + 48:.0f}" class="card-title">{esc(_short(title)[:30])}</text>'
                     f'<text x="{x + 16:.0f}" y="{y + 76:.0f}" class="card-status" fill="{colour}">'
                     f'{esc(word)}{esc(" · " + _duration(info.get("duration_s"))) if status == "succeeded" else ""}'
                     f'</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------ samples and diffs


def _sample(path: str, fmt: str) -> str:
    from .preview import preview_file

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
                what = "; ".join(f"{f['field']}: {'absent' if f['was'] == 'absent' else _short(f['before'])} → "
                                 f"{'absent' if f['now'] == 'absent' else _short(f['after'])}" for f in it["fields"])
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
    body.append(_svg(pipeline, run))
    body.append("<h2>Step by step</h2>")
    for nid in _order(pipeline):
        node = pipeline.node(nid)
        info = nodes.get(nid) or {}
        st = info.get("status") or ""
        word = STATUS_WORDS.get(st, "Not in this run") if st else "Not in this run"
        colour = STATUS_COLOURS.get(st, "#57606a")
        took = f" in {_duration(info.get('duration_s'))}" if st == "succeeded" else ""
        parts = [f'<section class="step" id="step-{esc(nid)}"><h3>{esc(node.title or nid)} '
                 f'<span class="runtime">{esc(node.runtime)} · step id {esc(nid)}</span></h3>',
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


def _order(pipeline) -> list[str]:
    from .runner import topo_order

    return topo_order(pipeline)
