"""R7: fifty reading Socket.IO clients and one that subscribes and then never reads, during log floods.

The stalled client is a raw WebSocket (websocket-client, a 4 KiB receive
buffer) that connects, authenticates, subscribes and then never reads its
socket again, so the kernel buffers between it and the server fill and the
server's writes to it block. It subscribes to the pipeline the fifty readers
follow (a flood of ~200 numbered lines a second) and to a second one printing
~5 MB/s, so that what the server holds for it would grow quickly if nothing
bounded it. The readers are real python-socketio clients in five processes
(tests/reliability/sio_readers.py); every line carries its sequence number
and the time the node printed it, so each reader's copy is checked for
completeness and its delivery lag measured.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import websocket

from server.web.sockets import MAX_BACKLOG_BYTES
from tests.conftest import REPO
from tests.web.conftest import TOKEN, python_pipeline, start_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.reliability

READERS, PROCESSES = 50, 5
LINES, CHUNK, PAUSE_S = 2_400, 20, 0.1          # ~200 lines/s for ~12 s
HEAVY_S, HEAVY_LINE, HEAVY_CHUNK = 12.0, 3_500, 75  # ~5 MB/s, to the stalled client (and nobody reading)

FLOOD = f"""
import json, sys, time
pad = "x" * 150
for seq in range({LINES}):
    sys.stdout.write(f"L {{seq}} {{time.time():.6f}} {{pad}}\\n")
    if seq % {CHUNK} == {CHUNK - 1}:
        sys.stdout.flush()
        time.sleep({PAUSE_S})
sys.stdout.flush()
json.dump([{{"lines": {LINES}}}], open("out.json", "w"))
"""

HEAVY = f"""
import json, sys, time
pad = "y" * {HEAVY_LINE}
end = time.time() + {HEAVY_S}
n = 0
while time.time() < end:
    sys.stdout.write("".join(f"H {{n + i}} {{pad}}\\n" for i in range({HEAVY_CHUNK})))
    sys.stdout.flush()
    n += {HEAVY_CHUNK}
    time.sleep(0.05)
json.dump([{{"lines": n}}], open("out.json", "w"))
"""


def proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


class Sampler(threading.Thread):
    """The server's peak RSS (KiB) while the floods run."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, proc_status(pid, "VmRSS"), threading.Event()

    def run(self):
        while not self.stop.wait(0.1):
            try:
                self.peak = max(self.peak, proc_status(self.pid, "VmRSS"))
            except (OSError, AssertionError):
                return


def stalled_client(srv, pipeline_ids: list[str]) -> websocket.WebSocket:
    """Connect, authenticate and subscribe over a raw WebSocket, then never read again."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket",
                                     origin=srv.origin, timeout=10,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    assert ws.recv().startswith("0{")
    ws.send("40" + json.dumps({"token": TOKEN}))
    assert ws.recv().startswith("40{")
    for i, pid in enumerate(pipeline_ids):
        ws.send(f"42{i}" + json.dumps(["subscribe", {"pipeline_id": pid}]))
    return ws


def cut_off(ws: websocket.WebSocket, within: float = 10.0) -> bool:
    """Whether the server has closed the stalled client's connection (its data ends), reading for `within` s."""
    sock = ws.sock
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


def start_readers(srv) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.reliability.sio_readers", srv.url, TOKEN, "flood",
                               str(READERS // PROCESSES)], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(PROCESSES)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    return procs


def test_r7_a_stalled_client_does_not_hold_up_fifty_readers(workspace, start_server, figure):
    python_pipeline(workspace, FLOOD, name="flood", node_id="flood")
    python_pipeline(workspace, HEAVY, name="heavy", node_id="heavy")
    srv = start_server()
    readers = start_readers(srv)
    results: list[dict] = []
    try:
        stalled = stalled_client(srv, ["flood", "heavy"])
        time.sleep(1.0)
        sampler = Sampler(srv.proc.pid)
        base_kb = sampler.peak
        sampler.start()
        for pid in ("heavy", "flood"):
            status, _, resp = srv.request("POST", f"/api/pipelines/{pid}/runs", {})
            assert status == 202, resp
        for p in readers:
            out, _ = p.communicate(timeout=150)
            results += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        sampler.stop.set()
        sampler.join(5)
        was_cut = cut_off(stalled)
        stalled.sock.close()
    finally:
        for p in readers:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    growth_mb = (sampler.peak - base_kb) / 1024

    assert len(results) == READERS, f"{len(results)} of {READERS} readers reported"
    # (python-socketio runs each event's handler on its own thread, so arrival order is not checked)
    complete = sum(1 for r in results if r["status"] == "succeeded" and not r["disconnected"]
                   and r["received"] == r["lines"] and r["lines"] + r["missed"] == LINES)
    worst_lag = max((r["max_lag"] for r in results if r["max_lag"] is not None), default=float("inf"))
    over = sum(r["over_1s"] for r in results)
    detail = (f"{READERS} python-socketio readers in {PROCESSES} processes + 1 raw WebSocket that never reads; "
              f"{LINES:,} numbered lines at ~{CHUNK / PAUSE_S:.0f}/s to all, ~5 MB/s more to the stalled client")
    figure("R7", "reading clients that got every line", f"{complete}/{READERS}", target=f"{READERS}/{READERS}",
           ok=complete == READERS, detail=detail)
    figure("R7", "worst delivery lag to a reading client (s)", round(worst_lag, 3), target="<= 1",
           ok=worst_lag <= 1.0, detail=f"{over} of {READERS * LINES:,} line deliveries over 1 s; "
                                       "lag = arrival - the time the node printed the line")
    figure("R7", "server RSS growth during the floods (MB)", round(growth_mb, 1), target="< 32",
           ok=growth_mb < 32, detail="peak RSS while the floods run, minus RSS before; ~60 MB is sent towards the "
                                     "stalled client")
    figure("R7", "stalled client disconnected by the server", "yes" if was_cut else "no", target="yes",
           ok=was_cut, detail=f"its backlog limit is {MAX_BACKLOG_BYTES // 2**20} MiB")
    bad = [r for r in results
           if r["status"] != "succeeded" or r["disconnected"] or r["received"] != r["lines"]
           or r["lines"] + r["missed"] != LINES][:3]
    assert complete == READERS, bad
    assert worst_lag <= 1.0
    assert growth_mb < 32
    assert was_cut, "the server still holds the connection of a client that has read nothing for seconds"
