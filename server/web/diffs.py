"""What a step did to its records, for the studio's "What changed" section: GET /api/runs/<run>/nodes/<node>/diff."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from server.engine.errors import UsageError

from .api import _state, int_arg

diffs = Blueprint("diffs", __name__, url_prefix="/api")


def _page() -> tuple[str, int, int]:
    """The kind of records asked for and the page: (kind, offset, limit)."""
    from server.engine.data.diff import KINDS

    kind = request.args.get("kind") or "dropped"
    if kind not in KINDS:
        raise UsageError(f"`kind` must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind, int_arg("offset", 0), int_arg("limit", 50, low=1, high=500)


def _pipeline_of(run_id: str):
    from server.engine.data.stepdiff import pipeline_of_run

    st = _state()
    return pipeline_of_run(st.workspace, st.store.get_run(run_id))


def _answer(ids: dict, d, kind: str, offset: int, limit: int):
    return jsonify({**ids, **d.to_dict(), "kind": kind, "offset": offset,
                    "items": d.items(kind, offset, limit), "total": d.counts[kind]})


@diffs.get("/runs/<run_id>/nodes/<node_id>/diff")
def step_diff_route(run_id: str, node_id: str):
    """{input, output, key, key_inferred, method, note, counts, kind, items, total} for one kind, paged."""
    from server.engine.data.stepdiff import step_diff

    kind, offset, limit = _page()
    st = _state()
    d, ports = step_diff(st.workspace, st.store, _pipeline_of(run_id), run_id, node_id,
                         input=request.args.get("input") or None, output=request.args.get("output") or None)
    return _answer(ports, d, kind, offset, limit)


@diffs.get("/diff")
def run_diff_route():
    """How one output differs between two runs: ?a=RUN&b=RUN&node=NODE&port=PORT&kind=&offset=&limit=."""
    from server.engine.data.stepdiff import run_diff

    args = {name: request.args.get(name) or "" for name in ("a", "b", "node", "port")}
    missing = [name for name, value in args.items() if not value]
    if missing:
        raise UsageError(f"missing {', '.join(f'`{m}`' for m in missing)}: "
                         "/api/diff?a=RUN&b=RUN&node=NODE&port=PORT (a is the earlier run)")
    kind, offset, limit = _page()
    st = _state()
    d, ids = run_diff(st.workspace, st.store, _pipeline_of(args["b"]), args["a"], args["b"], args["node"], args["port"])
    return _answer(ids, d, kind, offset, limit)


@diffs.get("/runs/<run_id>/story")
def story_route(run_id: str):
    """The run as one self-contained HTML page (the studio's "Share as a page"), as a download."""
    from server.engine.story import build_story

    st = _state()
    text = build_story(st.workspace, st.store, run_id)
    name = f"pipeloom-{run_id}.html"
    return Response(text, content_type="text/html; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
