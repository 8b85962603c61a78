"""A real server (serve() in a subprocess) and real python-socketio clients."""

from __future__ import annotations

import time

import pytest
import socketio

from tests.web.conftest import TOKEN, python_pipeline, shell_pipeline


def _run(server, pid="flow", body=None) -> str:
    status, _, resp = server.request("POST", f"/api/pipelines/{pid}/runs", body or {})
    assert status == 202, resp
    return resp["run_id"]


def _for(run_id):
    return lambda d: isinstance(d, dict) and d.get("run_id") == run_id


# ------------------------------------------------------------ handshake

def test_socket_needs_token(server, live):
    ok = live(server)
    assert ok.sio.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        live(server, token="wrong", transports=("websocket",))
    for token in (None, "wrong", ""):
        with pytest.raises(socketio.exceptions.ConnectionError):
            live(server, token=token, transports=("polling",))
    # the cookie works instead of `auth`
    by_cookie = live(server, token=None, headers={"Cookie": f"pipeloom_token={TOKEN}"})
    assert by_cookie.sio.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        live(server, token=None, headers={"Cookie": "pipeloom_token=nope"}, transports=("polling",))


def test_socket_refuses_bad_origin(server, live):
    import websocket

    bad_origins = ("http://evil.example", f"http://localhost:{server.port + 1}", f"http://127.0.0.1:{server.port + 1}",
                   "null")
    for origin in bad_origins:
        with pytest.raises(socketio.exceptions.ConnectionError):
            live(server, headers={"Origin": origin}, transports=("polling",))
    assert live(server, headers={"Origin": server.origin}, transports=("polling",)).sio.connected
    # the WebSocket upgrade carries exactly one Origin when a browser makes it
    ws_url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    for origin in bad_origins:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(ws_url, origin=origin, timeout=5)
        assert refused.value.status_code in (400, 403)
    conn = websocket.create_connection(ws_url, origin=server.origin, timeout=5)
    try:
        assert conn.recv().startswith("0{")
    finally:
        conn.close()
    # python-socketio's WebSocket client sends its own (same) origin
    assert live(server, transports=("websocket",)).sio.connected


def test_subscribe_answers(workspace, server, live):
    shell_pipeline(workspace)
    c = live(server)
    assert c.call("subscribe", "flow")["ok"] is False
    assert c.call("subscribe", {"pipeline_id": 3})["ok"] is False
    assert c.call("subscribe", {"pipeline_id": "nope"})["ok"] is False
    assert c.call("subscribe", {"run_id": "nope"})["ok"] is False
    assert c.call("subscribe", {"pipeline_id": "flow"}) == {"ok": True, "room": "pipeline:flow"}
    snap = c.wait_for("snapshot")
    assert snap == {"pipeline_id": "flow", "run_id": None, "status": None, "active": False, "nodes": {},
                    "logs": {}, "autorun": False}
    assert c.call("unsubscribe", {"pipeline_id": "flow"})["ok"] is True


# ------------------------------------------------------------ a run, live

def test_run_events_reach_pipeline_and_run_rooms_only(workspace, server, live):
    shell_pipeline(workspace)
    shell_pipeline(workspace, name="other")
    watcher = live(server)
    watcher.call("subscribe", {"pipeline_id": "flow"})
    bystander = live(server)
    bystander.call("subscribe", {"pipeline_id": "other"})
    run_id = _run(server)
    done = watcher.wait_for("run_status", lambda d: d["run_id"] == run_id and d["status"] == "succeeded")
    assert done["pipeline_id"] == "flow"
    statuses = [(d["node_id"], d["status"]) for d in watcher.of("node_status", _for(run_id))]
    assert ("make", "running") in statuses and ("make", "succeeded") in statuses
    assert statuses[-1] == ("copy", "succeeded")
    made = [d for d in watcher.of("node_status", _for(run_id)) if d["status"] == "succeeded"][0]
    assert made["exit_code"] == 0 and made["duration_s"] is not None
    logs = {d["node_id"]: [ln["text"] for ln in d["lines"]] for d in watcher.of("log", _for(run_id))}
    assert logs == {"make": ["making records"], "copy": ["copying"]}
    out = watcher.of("output_ready", lambda d: d["run_id"] == run_id and d["node_id"] == "copy")[0]
    assert out["port"] == "out" and out["format"] == "json" and out["size"] > 0 and out["records"] == 2
    # the logs of a node arrive before its final status
    kinds = [(e, d.get("node_id"), d.get("status")) for _, e, d in watcher.events
             if isinstance(d, dict) and d.get("run_id") == run_id]
    assert kinds.index(("log", "make", None)) < kinds.index(("node_status", "make", "succeeded"))
    time.sleep(0.3)
    assert bystander.of("node_status") == [] and bystander.of("log") == []

    # joining the run's room afterwards gives a snapshot of the finished run
    late = live(server)
    assert late.call("subscribe", {"run_id": run_id})["ok"]
    snap = late.wait_for("snapshot")
    assert snap["run_id"] == run_id and snap["status"] == "succeeded" and snap["active"] is False
    assert snap["nodes"]["copy"]["status"] == "succeeded"
    assert snap["nodes"]["copy"]["outputs"]["out"]["records"] == 2
    assert [ln["text"] for ln in snap["logs"]["make"]] == ["making records"]


def test_snapshot_mid_run_has_statuses_and_log_so_far(workspace, server, live):
    shell_pipeline(workspace, scripts={"make": "for i in 1 2 3; do echo line $i; done\nsleep 3\necho '[]' > out.json\n"})
    first = live(server)
    first.call("subscribe", {"pipeline_id": "flow"})
    run_id = _run(server)
    first.wait_for("log", lambda d: d["run_id"] == run_id and any(ln["text"] == "line 3" for ln in d["lines"]))
    joiner = live(server)
    joiner.call("subscribe", {"pipeline_id": "flow"})
    snap = joiner.wait_for("snapshot")
    assert snap["run_id"] == run_id and snap["active"] is True and snap["status"] == "running"
    assert snap["nodes"]["make"]["status"] == "running" and snap["nodes"]["copy"]["status"] == "pending"
    assert [ln["text"] for ln in snap["logs"]["make"]] == ["line 1", "line 2", "line 3"]
    end = joiner.wait_for("run_status", lambda d: d["run_id"] == run_id and d["status"] == "succeeded", timeout=20)
    assert end["pipeline_id"] == "flow"
    # nothing the snapshot already showed is sent again
    again = [ln["text"] for d in joiner.of("log", _for(run_id)) for ln in d["lines"]]
    assert "line 1" not in again


def test_log_batching_bounds_emits_and_keeps_the_full_log(workspace, server, live):
    code = ("import sys, time\n"
            "for i in range(200000):\n"
            "    print(i)\n"
            "    if i % 20000 == 19999:\n"
            "        sys.stdout.flush()\n"
            "        time.sleep(0.25)\n"
            "open('out.json', 'w').write('[]')\n")
    python_pipeline(workspace, code)
    c = live(server)
    c.call("subscribe", {"run_id": "placeholder-never-matches"})
    c.call("subscribe", {"pipeline_id": "py"})
    run_id = _run(server, "py")
    c.wait_for("run_status", lambda d: d["run_id"] == run_id and d["status"] == "succeeded", timeout=60)
    batches = c.timed("log", _for(run_id))
    times = [t for t, _ in batches]
    assert len(times) >= 3
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= 25, f"{worst} log emits within one second"
    shown = dropped = 0
    for _, d in batches:
        for ln in d["lines"]:
            if ln["stream"] == "meta":
                assert "lines not shown live" in ln["text"]
                dropped += int(ln["text"].split()[1].replace(",", ""))
            else:
                shown += 1
    assert shown + dropped == 200000
    assert max(len(d["lines"]) for _, d in batches) <= 2001
    # the full log is on disk, page by page
    offset, texts = 0, []
    while True:
        status, _, page = server.request("GET", f"/api/runs/{run_id}/nodes/talk/logs?offset={offset}&limit=10000")
        assert status == 200
        texts += [ln["text"] for ln in page["lines"] if ln["stream"] == "out"]
        if not page["lines"]:
            break
        offset = page["next"]
    assert len(texts) == 200000 and texts[0] == "0" and texts[-1] == "199999"


# ------------------------------------------------------------ the watchdog bridge

def test_source_changed_within_a_second(workspace, start_server, live):
    shell_pipeline(workspace)
    server = start_server()
    c = live(server)
    c.call("subscribe", {"pipeline_id": "flow"})
    start = time.monotonic()
    (workspace / "copy.sh").write_text('echo "copying, second edition"\ncp in.json out.json\n')
    ev = c.wait_for("source_changed", lambda d: "second edition" in d["html"], timeout=5)
    arrived = [t for t, d in c.timed("source_changed") if "second edition" in d["html"]][0]
    assert arrived - start <= 1.0, f"source_changed after {arrived - start:.2f} s"
    assert ev["pipeline_id"] == "flow" and ev["node_id"] == "copy" and ev["path"] == "copy.sh"
    assert 'class="highlight"' in ev["html"]
    # the REST route renders the same thing
    _, _, src = server.request("GET", "/api/pipelines/flow/nodes/copy/source")
    assert src["html"] == ev["html"]


def test_pipeline_changed_on_outside_edit_but_not_on_studio_save(workspace, start_server, live):
    path = shell_pipeline(workspace)
    server = start_server()
    status, _, body = server.request("GET", "/api/pipelines/flow")
    assert status == 200 and body["version"] == 1
    c = live(server)
    c.call("subscribe", {"pipeline_id": "flow"})
    start = time.monotonic()
    path.write_text(path.read_text().replace("name: flow", "name: edited in vim"))
    ev = c.wait_for("pipeline_changed", timeout=5)
    assert ev == {"pipeline_id": "flow", "version": 2}
    assert [t for t, _ in c.timed("pipeline_changed")][0] - start <= 1.0
    status, _, versions = server.request("GET", "/api/pipelines/flow/versions")
    assert versions[0]["version"] == 2 and versions[0]["note"] == "changed on disk"
    # a save from the studio is not announced as an outside change
    _, _, body = server.request("GET", "/api/pipelines/flow")
    body["document"]["description"] = "saved in the studio"
    status, _, saved = server.request("PUT", "/api/pipelines/flow",
                                      {"document": body["document"], "version": body["version"]})
    assert status == 200 and saved["version"] == 3
    time.sleep(1.0)
    assert [d["version"] for d in c.of("pipeline_changed")] == [2]
    _, _, versions = server.request("GET", "/api/pipelines/flow/versions")
    assert [v["note"] for v in versions] == ["saved in the studio", "changed on disk", "first seen"]


def test_autorun_reruns_the_changed_node_with_upstream_cached(workspace, start_server, live):
    shell_pipeline(workspace)
    server = start_server()  # after the files exist, so their creation is not a change
    c = live(server)
    c.call("subscribe", {"pipeline_id": "flow"})
    first = _run(server)
    c.wait_for("run_status", lambda d: d["run_id"] == first and d["status"] == "succeeded")
    status, _, body = server.request("PUT", "/api/pipelines/flow/autorun", {"enabled": True})
    assert status == 200 and body["enabled"] is True
    (workspace / "copy.sh").write_text("echo 'copying v2'\nprintf '[{\"v\": 2}]' > out.json\n")
    started = c.wait_for("run_status", lambda d: d["run_id"] != first and d["status"] == "running", timeout=5)
    second = started["run_id"]
    c.wait_for("run_status", lambda d: d["run_id"] == second and d["status"] == "succeeded", timeout=20)
    final = {d["node_id"]: d["status"] for d in c.of("node_status", _for(second))}
    assert final == {"make": "cached", "copy": "succeeded"}
    status, _, raw = server.request("GET", f"/api/runs/{second}/nodes/copy/outputs/out/raw")
    assert status == 200 and '"v": 2' in raw


def test_autorun_queues_one_rerun_while_a_run_is_going(workspace, start_server, live):
    shell_pipeline(workspace, scripts={"make": "sleep 1.5\nprintf '[{\"n\": 1}]' > out.json\n"})
    server = start_server()
    c = live(server)
    c.call("subscribe", {"pipeline_id": "flow"})
    server.request("PUT", "/api/pipelines/flow/autorun", {"enabled": True})
    first = _run(server)
    c.wait_for("node_status", lambda d: d["run_id"] == first and d["node_id"] == "make" and d["status"] == "running")
    for n in (1, 2, 3):
        (workspace / "copy.sh").write_text(f"echo edit {n}\ncp in.json out.json\n")
        time.sleep(0.3)
    c.wait_for("run_status", lambda d: d["run_id"] == first and d["status"] == "succeeded", timeout=20)
    rerun = c.wait_for("run_status", lambda d: d["run_id"] != first and d["status"] == "running", timeout=5)
    c.wait_for("run_status", lambda d: d["run_id"] == rerun["run_id"] and d["status"] == "succeeded", timeout=20)
    time.sleep(1.0)
    runs = {d["run_id"] for d in c.of("run_status")}
    assert runs == {first, rerun["run_id"]}, "exactly one queued re-run"
    texts = [ln["text"] for d in c.of("log", _for(rerun["run_id"])) for ln in d["lines"]]
    assert texts == ["edit 3"]
    assert {d["node_id"]: d["status"] for d in c.of("node_status", _for(rerun["run_id"]))}["make"] == "cached"


def test_server_stops_cleanly_with_a_run_going(workspace, start_server, live):
    shell_pipeline(workspace, scripts={"make": "sleep 60\n"})
    srv = start_server()
    c = live(srv)
    c.call("subscribe", {"pipeline_id": "flow"})
    run_id = _run(srv)
    c.wait_for("node_status", lambda d: d["run_id"] == run_id and d["status"] == "running")
    c.close()
    import signal

    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(20) is not None
    # the run is recorded as cancelled, and (checked by the orphan guard) no `sleep` survives
    from server.engine.store import Store

    store = Store.open(workspace)
    try:
        assert store.get_run(run_id)["status"] == "cancelled"
    finally:
        store.close()
