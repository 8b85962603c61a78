"""A process of reading Socket.IO clients for R7: `python -m tests.reliability.sio_readers URL TOKEN PIPELINE N`.

Connects N python-socketio clients, subscribes each to the pipeline, prints
`ready`, then records every `log` line of the next run until each client has
seen the run end, and prints one JSON object per client. Several such
processes share the machine's cores, so the readers keep up with the server
and any lag measured is the server's, not one busy client process's.
Lines are `L <seq> <time printed> <filler>`.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import socketio

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}


class Reader:
    def __init__(self, url: str, token: str, pipeline_id: str):
        self.sio = socketio.Client(reconnection=False)
        self.seqs: list[int] = []
        self.missed = 0
        self.lags: list[float] = []
        self.status: str | None = None
        self.disconnected = False
        self.done = threading.Event()
        self.sio.on("log", self.on_log)
        self.sio.on("run_status", self.on_run_status)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=20)
        assert self.sio.call("subscribe", {"pipeline_id": pipeline_id}, timeout=20)["ok"]

    def on_log(self, data):
        now = time.time()
        for line in data.get("lines", []):
            text = line.get("text", "")
            if line.get("stream") == "meta" and "not shown live" in text:
                self.missed += int(text.split()[1].replace(",", ""))
            elif text.startswith("L "):
                _, seq, printed, _ = text.split(" ", 3)
                self.seqs.append(int(seq))
                self.lags.append(now - float(printed))

    def on_run_status(self, data):
        if data.get("status") in TERMINAL:
            self.status = data["status"]
            self.done.set()

    def on_disconnect(self, *args):
        self.disconnected = True
        self.done.set()

    def result(self) -> dict:
        return {"lines": len(set(self.seqs)), "received": len(self.seqs), "missed": self.missed,
                "max_lag": max(self.lags, default=None), "over_1s": sum(1 for x in self.lags if x > 1.0),
                "status": self.status, "disconnected": self.disconnected}


def main(url: str, token: str, pipeline_id: str, n: int, timeout: float = 120) -> None:
    readers = [Reader(url, token, pipeline_id) for _ in range(n)]
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    for r in readers:
        r.done.wait(max(0.0, deadline - time.monotonic()))
    for r in readers:
        print(json.dumps(r.result()), flush=True)
    closers = [threading.Thread(target=r.sio.disconnect) for r in readers]
    for t in closers:
        t.start()
    for t in closers:
        t.join(10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
