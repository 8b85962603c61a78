"""The sensor-alerts demo, end to end, with every real toolchain."""

from __future__ import annotations

import json
import shutil
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import yaml

from tests.conftest import REPO, pipeloom_cmd


def copy_demo(ws: Path) -> Path:
    shutil.copytree(REPO / "nodes", ws / "nodes")
    return ws / "nodes" / "sensor-alerts.pipeline.yaml"


def test_demo_runs_end_to_end(workspace, require_tool):
    for tool in ("cargo", "go", "node"):
        require_tool(tool)
    path = copy_demo(workspace)
    r = pipeloom_cmd("run", str(path.relative_to(workspace)), "--json", cwd=workspace, timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    doc = json.loads(r.stdout)
    assert {n: v["status"] for n, v in doc["nodes"].items()} == {
        "ingest": "succeeded", "filter": "succeeded", "classify": "succeeded", "notify": "succeeded",
        "archive": "succeeded"}
    out = {n: v["outputs"] for n, v in doc["nodes"].items()}
    raw = json.loads(Path(out["ingest"]["raw_events"]).read_text())
    events = json.loads(Path(out["filter"]["events"]).read_text())
    classified = json.loads(Path(out["classify"]["classified"]).read_text())
    alerts = json.loads(Path(out["classify"]["alerts"]).read_text())
    lines = (workspace / "nodes/sensor-alerts/sensors.log").read_text().splitlines()
    assert len(raw) == len(lines) == 1000
    assert 900 < len(events) < len(raw), "the filter drops the garbled lines, and only those"
    assert all(isinstance(e["value"], (int, float)) for e in events)
    assert len(classified) == len(events)
    assert {c["label"] for c in classified} <= {"normal", "warning", "critical"}
    assert alerts and all(a["label"] in ("warning", "critical") for a in alerts)
    sent = json.loads(Path(out["notify"]["sent_alerts"]).read_text())
    assert sent, "with no webhook, notify still records what it would send"
    with tarfile.open(out["archive"]["archive"]) as tf:
        assert sorted(tf.getnames()) == ["classified.json", "events.json", "raw_events.json"]
    again = json.loads(pipeloom_cmd("run", str(path.relative_to(workspace)), "--json", cwd=workspace).stdout)
    assert {v["status"] for v in again["nodes"].values()} == {"cached"}


def test_demo_posts_alerts_to_a_real_webhook(workspace, require_tool):
    for tool in ("cargo", "go", "node"):
        require_tool(tool)
    received: list[dict] = []
    failures = {"left": 1}

    class Inbox(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if failures["left"]:
                failures["left"] -= 1
                self.send_response(503)  # the first delivery fails: notify must retry
                self.end_headers()
                return
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = copy_demo(workspace)
        doc = yaml.safe_load(path.read_text())
        notify = next(n for n in doc["nodes"] if n["id"] == "notify")
        notify["params"].update(webhook_url=f"http://127.0.0.1:{server.server_port}/hook", max_alerts=5,
                                backoff_ms=50)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        r = pipeloom_cmd("run", str(path.relative_to(workspace)), "--json", cwd=workspace, timeout=900)
        assert r.returncode == 0, r.stderr
        sent = json.loads(Path(json.loads(r.stdout)["nodes"]["notify"]["outputs"]["sent_alerts"]).read_text())
    finally:
        server.shutdown()
        server.server_close()
    assert 1 <= len(received) <= 6, "at most max_alerts messages plus one summary"
    assert any(s.get("status") == "sent" for s in sent)
    assert any((s.get("attempts") or 1) > 1 for s in sent), "the 503 was retried"
