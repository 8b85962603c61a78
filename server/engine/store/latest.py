"""Every step's latest result: what the studio shows by default, whichever run produced it.

A run of one step (or a run where everything was reused) leaves the other steps' results in earlier runs;
this finds, for each step, the newest finished run that gave it a result, and for a step that run reused
(`cached`), the run whose program made those outputs.
"""

from __future__ import annotations

from ..errors import NotFoundError
from ..events import NO_RESULT, RUN_ACTIVE

RUNS_READ = 100  # how far back a step's last result is looked for


def latest_results(store, pipeline_id: str, *, node_ids=None, limit: int = RUNS_READ) -> dict:
    """{pipeline_id, nodes: {node_id: node}} where each node is as in a run (journal.node_view) plus
    `run_id` (the run this result is from), `run_started_at`, and `result_run` (the run whose program made
    its outputs: `run_id` itself, or for a reused step the run it reused them from).

    With `node_ids` (the pipeline's steps today), the search stops once each of them has a result."""
    wanted = set(node_ids) if node_ids is not None else None
    runs: dict[str, dict | None] = {}

    def run_of(run_id: str) -> dict | None:
        if run_id not in runs:
            try:
                runs[run_id] = store.get_run(run_id)
            except NotFoundError:
                runs[run_id] = None
        return runs[run_id]

    nodes: dict[str, dict] = {}
    for summary in store.list_runs(pipeline_id, limit=limit):
        if wanted is not None and wanted <= nodes.keys():
            break
        if summary["status"] in RUN_ACTIVE:
            continue  # a run still going is shown live, not as a result
        run = run_of(summary["run_id"])
        if run is None:
            continue
        for nid, info in (run.get("nodes") or {}).items():
            if nid in nodes or info.get("status") in NO_RESULT:
                continue
            entry = {**info, "run_id": run["run_id"], "run_started_at": run.get("started_at"),
                     "result_run": run["run_id"]}
            source = info.get("source_run") if info.get("status") == "cached" else None
            made = ((run_of(source) or {}).get("nodes") or {}).get(nid) if source else None
            if made is not None and made.get("status") == "succeeded":
                entry["result_run"] = source
                entry["result"] = {k: made.get(k) for k in ("duration_s", "build_s", "started_at", "finished_at")}
            elif info.get("status") != "cached":
                entry.pop("source_run", None)
            nodes[nid] = entry
    return {"pipeline_id": pipeline_id, "nodes": nodes}
