"""A live client that stops reading is cut off once its backlog passes the limit; readers are untouched,
and the cut client can come back and get a snapshot."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest
import websocket

from tests.web.conftest import TOKEN, python_pipeline

HEAVY = """
import json, sys, time
pad = "y" * 3500
end = time.time() + 4
n = 0
while time.time() < end:
    sys.stdout.write("".join(f"H {n + i} {pad}\\n" for i in range(75)))
    sys.stdout.flush()
    n += 75
    time.sleep(0.05)
print("heavy done")
json.dump([{"lines": n}], open("out.json", "w"))
"""


def _stalled_websocket(srv) -> websocket.WebSocket:
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket",
                                     origin=srv.origin, timeout=10,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    assert ws.recv().startswith("0{")
    ws.send("40" + json.dumps({"token": TOKEN}))
    assert ws.recv().startswith("40{")
    ws.send("420" + json.dumps(["subscribe", {"pipeline_id": "heavy"}]))
    return ws


def _stalled_after_upgrade(srv) -> websocket.WebSocket:
    """As a browser connects: long-polling first, then the upgrade to a WebSocket; then it never reads."""
    status, opened = _polling(srv, "GET")
    assert status == 200 and opened.startswith("0{"), opened
    sid = json.loads(opened[1:])["sid"]
    assert _polling(srv, "POST", sid, "40" + json.dumps({"token": TOKEN}))[0] == 200
    assert _polling(srv, "GET", sid)[1].startswith("40{")
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket&sid={sid}",
                                     origin=srv.origin, timeout=10,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    ws.send("2probe")
    assert ws.recv() == "3probe"
    ws.send("5")
    ws.send("420" + json.dumps(["subscribe", {"pipeline_id": "heavy"}]))
    return ws


def _ended(sock: socket.socket, within: float) -> bool:
    """Whether the connection's data ends (the server closed it) within `within` seconds of reading."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Threads:"))


def _run(srv, pid: str) -> str:
    status, _, resp = srv.request("POST", f"/api/pipelines/{pid}/runs", {})
    assert status == 202, resp
    return resp["run_id"]


@pytest.mark.parametrize("connect", [_stalled_websocket, _stalled_after_upgrade], ids=["websocket", "upgraded"])
def test_a_websocket_client_that_stops_reading_is_cut_off(workspace, start_server, live, connect):
    python_pipeline(workspace, HEAVY, name="heavy", node_id="heavy")
    python_pipeline(workspace, "import json\nprint('hi')\njson.dump([], open('out.json', 'w'))\n", name="tiny")
    srv = start_server()
    reader = live(srv)
    assert reader.call("subscribe", {"pipeline_id": "heavy"})["ok"]
    assert reader.call("subscribe", {"pipeline_id": "tiny"})["ok"]
    warm = _run(srv, "tiny")  # starts the server's lasting threads (log flusher, record counter)
    reader.wait_for("run_status", lambda d: d.get("run_id") == warm and d.get("status") == "succeeded")
    time.sleep(0.5)
    threads = _threads(srv.proc.pid)
    stalled = connect(srv)
    try:
        run_id = _run(srv, "heavy")
        reader.wait_for("run_status", lambda d: d.get("run_id") == run_id and d.get("status") == "succeeded",
                        timeout=60)
        # ~20 MB went out to the room: far past the kernel's buffers plus the 4 MiB limit
        assert _ended(stalled.sock, within=10), "the server still holds a connection that reads nothing"
        # its request, reader and writer threads end; Engine.IO's ping timer (one thread, 25 s) may still sleep
        for _ in range(50):
            if _threads(srv.proc.pid) <= threads + 1:
                break
            time.sleep(0.1)
        assert _threads(srv.proc.pid) <= threads + 1, "threads serving the cut connection are still blocked"
    finally:
        stalled.sock.close()
    assert reader.sio.connected, "a client that reads is never cut off"
    got = sum(len(d["lines"]) for d in reader.of("log", lambda d: d.get("run_id") == run_id))
    assert got > 0 and any("heavy done" in line["text"] for d in reader.of("log") for line in d["lines"])
    assert "stopped reading" in srv.log()
    # the page's client reconnects after a cut; a new connection subscribes and gets its snapshot
    again = live(srv)
    assert again.call("subscribe", {"pipeline_id": "heavy"})["ok"]
    assert again.wait_for("snapshot")["run_id"] == run_id
    assert srv.request("GET", "/api/health")[0] == 200


def _polling(srv, method: str, sid: str | None = None, body: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    path = "/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    headers = {"Host": f"127.0.0.1:{srv.port}", "Origin": srv.origin, "Content-Type": "text/plain;charset=UTF-8"}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read().decode("utf-8", "replace")
    conn.close()
    return resp.status, data


def test_a_polling_client_that_stops_polling_is_cut_off(workspace, start_server, live):
    python_pipeline(workspace, HEAVY, name="heavy", node_id="heavy")
    srv = start_server()
    status, opened = _polling(srv, "GET")
    assert status == 200 and opened.startswith("0{"), opened
    sid = json.loads(opened[1:])["sid"]
    assert _polling(srv, "POST", sid, "40" + json.dumps({"token": TOKEN}))[0] == 200
    assert _polling(srv, "GET", sid)[1].startswith("40{")
    assert _polling(srv, "POST", sid, "420" + json.dumps(["subscribe", {"pipeline_id": "heavy"}]))[0] == 200
    reader = live(srv)
    assert reader.call("subscribe", {"pipeline_id": "heavy"})["ok"]
    run_id = _run(srv, "heavy")
    reader.wait_for("run_status", lambda d: d.get("run_id") == run_id and d.get("status") == "succeeded", timeout=60)
    # the session was closed, instead of keeping ~20 MB of events for a poll that never comes
    status, body = _polling(srv, "GET", sid)
    assert status == 400, f"the session was kept, with {len(body):,} characters waiting"
    assert "stopped reading" in srv.log()
