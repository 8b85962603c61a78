"""What a step received, and queries over previews: the inspector's "Came in" and its sortable tables.

GET /api/runs/<run>/nodes/<node>/inputs lists a step's inputs in a run, each
with the file the step was given (the staged file in its working folder, a
converted copy when the edge converted it) and where it came from. The preview,
cell and download routes of one input mirror those of an output.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify, request, send_file

from server.engine.errors import NotFoundError, PipeloomError

from .api import PREVIEW_MAX_LIMIT, _state, indexed_page, int_arg, page_index_for

inspect = Blueprint("inspect", __name__, url_prefix="/api")

QUERY_WAIT_S = 2.0  # how long a query page waits for its answer before saying it is still working
COUNT_INPUT_BYTES = 8 * 1024 * 1024  # an input this small is counted when listed


def query_page(path: Path, fmt: str, key: str, offset: int, limit: int, expected: int | None) -> dict | None:
    """The page of the request's query (sort, order, filter, q) over a records file, or None without one."""
    from server.engine.data.query import parse_query

    query = parse_query(request.args)
    if query is None:
        return None
    return _state().queries.page(path, fmt, key, query, offset, limit, wait=QUERY_WAIT_S, expected=expected)


def _run_and_node(run_id: str, node_id: str):
    from server.engine.data.stepdiff import pipeline_of_run

    st = _state()
    run = st.store.get_run(run_id)
    rec = (run.get("nodes") or {}).get(node_id)
    if rec is None:
        raise NotFoundError(f"step `{node_id}` is not part of run {run_id}")
    try:
        pipeline = pipeline_of_run(st.workspace, run)
    except PipeloomError as exc:
        raise NotFoundError(f"the pipeline of run {run_id} cannot be read: {exc}") from None
    node = pipeline.node(node_id)
    if node is None:
        raise NotFoundError(f"the pipeline has no step `{node_id}` any more")
    return run, rec, pipeline, node


def _describe(run: dict, rec: dict, pipeline, node, port) -> dict:
    """One input of a step in a run: where it came from and which file the step was given."""
    from server.engine.paths import Layout, safe_path

    st = _state()
    layout = Layout(st.workspace)
    home = rec.get("source_run") or run["run_id"]
    edge = next((e for e in pipeline.edges if e.dst_node == node.id and e.dst_port == port.name), None)
    origin = run.get("origin") or {}
    up = None
    info: dict = {"port": port.name, "format": port.format, "file": port.file, "from": None, "path": None,
                  "fed_by": "nothing", "converted_from": None, "size": None, "records": None, "available": False}
    if edge is not None:
        info["fed_by"] = "edge"
        info["from"] = {"node": edge.src_node, "port": edge.src_port}
        up = ((run.get("nodes") or {}).get(edge.src_node) or {}).get("artifacts", {}).get(edge.src_port)
        if up and (up.get("format") or port.format) != port.format:
            info["converted_from"] = up.get("format")
    elif origin.get("by") == "trigger":
        info["fed_by"] = "trigger"
        info["trigger"] = origin.get("trigger")
    elif port.path:
        info["fed_by"] = "path"
        info["path"] = port.path
    staged = layout.node_dir(home, node.id) / port.file
    path = None
    if staged.is_file():
        path = staged
    elif up and up.get("path") and not info["converted_from"] and Path(up["path"]).is_file():
        path = Path(up["path"])
    if path is not None:
        path = safe_path(st.workspace, path, what="input")
        size = path.stat().st_size
        info.update(available=True, size=size)
        records_formats = ("json", "ndjson", "csv", "parquet")
        if up and not info["converted_from"] and up.get("size") == size and up.get("records") is not None:
            info["records"] = up["records"]
        elif up and info["converted_from"] in records_formats and port.format in records_formats \
                and up.get("records") is not None:
            info["records"] = up["records"]  # a conversion between records formats keeps every record
        elif size <= COUNT_INPUT_BYTES and port.format in ("json", "ndjson", "csv", "parquet"):
            from server.engine.data.formats import count_records

            try:
                info["records"] = count_records(path, port.format)
            except Exception:  # a file that does not read as its format: its preview says why
                info["records"] = None
    info["_path"] = path
    # a staged file linked to the upstream output shares that output's index and query answers
    info["_key"] = (up.get("sha256"), up.get("size"), up.get("mtime_ns")) if up and not info["converted_from"] else None
    return info


def _inputs(run_id: str, node_id: str) -> list[dict]:
    run, rec, pipeline, node = _run_and_node(run_id, node_id)
    return [_describe(run, rec, pipeline, node, p) for p in node.inputs]


def _input(run_id: str, node_id: str, port: str) -> tuple[dict, Path]:
    run, rec, pipeline, node = _run_and_node(run_id, node_id)
    p = next((x for x in node.inputs if x.name == port), None)
    if p is None:
        names = ", ".join(x.name for x in node.inputs) or "none"
        raise NotFoundError(f"step `{node_id}` has no input `{port}` (inputs: {names})")
    info = _describe(run, rec, pipeline, node, p)
    if info["_path"] is None:
        raise NotFoundError(f"the file that fed input `{port}` of step `{node_id}` in run {run_id} is no longer there")
    return info, info["_path"]


@inspect.get("/runs/<run_id>/nodes/<node_id>/inputs")
def node_inputs(run_id: str, node_id: str):
    """{node, run_id, inputs: [{port, format, file, fed_by, from, path, converted_from, size, records, available}]}"""
    items = [{k: v for k, v in i.items() if not k.startswith("_")} for i in _inputs(run_id, node_id)]
    return jsonify({"run_id": run_id, "node": node_id, "inputs": items})


def _key(info: dict, path: Path) -> str:
    from server.engine.data.pageindex import index_key

    return index_key(path, *(info["_key"] or (None, None, None)))


def _index(info: dict, path: Path, fmt: str, offset: int):
    return page_index_for(path, fmt, offset, lambda: _state().previews.get(path, fmt, _key(info, path)))


@inspect.get("/runs/<run_id>/nodes/<node_id>/inputs/<port>")
def input_preview(run_id: str, node_id: str, port: str):
    """A preview page of what the step was given on input `port`: the same shape as an output's."""
    offset = int_arg("offset", 0)
    limit = int_arg("limit", 50, low=1, high=PREVIEW_MAX_LIMIT)
    info, path = _input(run_id, node_id, port)
    fmt = info["format"]
    page = query_page(path, fmt, _key(info, path), offset, limit, info["records"])
    if page is None:
        page = indexed_page(path, fmt, offset, limit, _index(info, path, fmt, offset), info["records"])
    return jsonify(page)


@inspect.get("/runs/<run_id>/nodes/<node_id>/inputs/<port>/cell")
def input_cell(run_id: str, node_id: str, port: str):
    """One page of the full text of a cut cell of an input's preview."""
    from server.engine.errors import UsageError
    from server.engine.data.preview import CELL_MAX_CHARS, CELL_PAGE_CHARS, cell_value

    if request.args.get("record") in (None, ""):
        raise UsageError("`record` is required: the cell's record number, counted from 0")
    record = int_arg("record", 0)
    column = request.args.get("column")
    if not column:
        raise UsageError("`column` is required: the name of the cell's column")
    offset = int_arg("offset", 0)
    limit = int_arg("limit", CELL_PAGE_CHARS, low=1, high=CELL_MAX_CHARS)
    info, path = _input(run_id, node_id, port)
    return jsonify(cell_value(path, info["format"], record, column, offset=offset, limit=limit,
                              index=_index(info, path, info["format"], record)))


@inspect.get("/runs/<run_id>/nodes/<node_id>/inputs/<port>/raw")
def input_raw(run_id: str, node_id: str, port: str):
    _, path = _input(run_id, node_id, port)
    return send_file(path, as_attachment=True, download_name=f"{node_id}-in-{path.name}",
                     mimetype="application/octet-stream", max_age=0)
