"""The sensor-alerts demo's programs in nodes/, run one at a time by hand with
the environment Pipeloom gives a node: the detector, the webhook delivery and
the generator. (tests/engine/test_demo.py runs the whole pipeline.)"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "nodes" / "sensor-alerts"
HELPERS = REPO / "server" / "engine" / "helpers"


def node_env(workdir: Path, inputs: dict, outputs: dict, params: dict) -> dict[str, str]:
    """The environment Pipeloom gives a node, built by hand."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELOOM_") or k == "PIPELOOM_TEST_TAG"}
    env.update({
        "PYTHONPATH": str(HELPERS / "python"),
        "NODE_PATH": str(HELPERS / "node"),
        "PIPELOOM_WORKDIR": str(workdir),
        "PIPELOOM_PARAMS": json.dumps(params),
        "PIPELOOM_PORTS": json.dumps({
            "inputs": {n: {"path": str(workdir / f), "format": "json"} for n, f in inputs.items()},
            "outputs": {n: {"path": str(workdir / f), "format": fmt}
                        for n, (f, fmt) in outputs.items()},
        }),
    })
    return env


def test_classify_flags_spikes_and_stuck_sensors(tmp_path):
    rng = random.Random(3)
    events = []
    for i in range(300):
        temp = 20 + rng.gauss(0, 0.3)
        if i == 150:
            temp = 29.0  # a spike: 30 standard deviations away
        hum = 50.0 if 200 <= i < 215 else 50 + rng.gauss(0, 1)  # stuck for 15 readings
        events.append({"sensor_id": "alpha", "metric": "temperature", "value": round(temp, 2), "line": 2 * i})
        events.append({"sensor_id": "alpha", "metric": "humidity", "value": round(hum, 1), "line": 2 * i + 1})
    (tmp_path / "events.json").write_text(json.dumps(events))
    env = node_env(tmp_path, {"events": "events.json"},
                   {"classified": ("classified.json", "json"), "alerts": ("alerts.json", "json")},
                   {"window": 50, "min_samples": 10, "warning_z": 4.5, "critical_z": 6.0, "stuck_after": 8})
    proc = subprocess.run([sys.executable, str(DEMO / "classify.py")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    alerts = json.loads((tmp_path / "alerts.json").read_text())
    by_line = {a["line"]: a for a in alerts}
    assert by_line[300]["label"] == "critical" and by_line[300]["reason"] == "high"
    assert abs(by_line[300]["expected"] - 20) < 0.5
    stuck = sorted(a["line"] for a in alerts if a["reason"] == "stuck")
    assert stuck == [2 * i + 1 for i in range(207, 215)]
    assert len(alerts) <= len(stuck) + 3, alerts  # noise alone rarely reaches 4.5 standard deviations
    classified = json.loads((tmp_path / "classified.json").read_text())
    assert len(classified) == 600 and "expected" not in classified[300]


class _Webhook(BaseHTTPRequestHandler):
    """Answers with the next status in `server.script`, then 200; keeps every body and the connection it came on."""

    protocol_version = "HTTP/1.1"  # as real webhook endpoints: a client may keep its connection open

    def do_POST(self):  # noqa: N802 - the http.server naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        self.server.peers.append(self.client_address)
        status = self.server.script.pop(0) if self.server.script else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.bodies, server.script, server.peers = [], [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _alerts(n: int) -> list[dict]:
    return [{"sensor_id": f"s{i}", "metric": "temperature", "value": 30 + i, "unit": "°C", "line": i,
             "ts": f"2026-11-26T10:{i:02d}:00Z", "label": "critical" if i % 2 else "warning",
             "score": 5 + i, "reason": "high", "expected": 21.0} for i in range(n)]


def run_notify(require_tool, workdir: Path, alerts: list[dict], params: dict) -> subprocess.CompletedProcess:
    node = require_tool("node")
    (workdir / "alerts.json").write_text(json.dumps(alerts))
    env = node_env(workdir, {"alerts": "alerts.json"},
                   {"sent_alerts": ("sent_alerts.json", "json"), "outbox": ("outbox.ndjson", "ndjson")}, params)
    return subprocess.run([node, str(DEMO / "notify.js")], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)


def test_notify_retries_with_backoff_and_summarises_the_rest(require_tool, webhook, tmp_path):
    webhook.script = [503, 503]
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    proc = run_notify(require_tool, tmp_path, _alerts(7),
                      {"webhook_url": url, "max_alerts": 3, "retries": 3, "backoff_ms": 20})
    assert proc.returncode == 0, proc.stderr
    sent = json.loads((tmp_path / "sent_alerts.json").read_text())
    assert [s["kind"] for s in sent] == ["alert", "alert", "alert", "summary"]
    assert all(s["status"] == "sent" and s["http_status"] == 200 for s in sent)
    assert sent[0]["attempts"] == 3 and [s["attempts"] for s in sent[1:]] == [1, 1, 1]
    # The most severe first: criticals with the highest score.
    assert [s["sensor_id"] for s in sent[:3]] == ["s5", "s3", "s1"]
    assert len(webhook.bodies) == 6
    assert len(set(webhook.peers)) == 1  # one kept-alive connection for the whole burst, retries included
    assert webhook.bodies[-1]["summary"]["count"] == 4
    assert "CRITICAL: sensor s5 temperature read 35 °C" in webhook.bodies[0]["text"]


def test_notify_gives_up_and_fails_the_step(require_tool, webhook, tmp_path):
    webhook.script = [500] * 10
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook"
    proc = run_notify(require_tool, tmp_path, _alerts(1),
                      {"webhook_url": url, "max_alerts": 5, "retries": 2, "backoff_ms": 10})
    assert proc.returncode == 1
    assert "could not be delivered" in proc.stderr and "HTTP 500" in proc.stderr
    assert len(webhook.bodies) == 3

    webhook.script = [400]
    proc = run_notify(require_tool, tmp_path, _alerts(1),
                      {"webhook_url": url, "max_alerts": 5, "retries": 2, "backoff_ms": 10})
    assert proc.returncode == 1 and len(webhook.bodies) == 4  # a 400 is not retried


def test_notify_names_a_webhook_it_cannot_reach(require_tool, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_notify(require_tool, tmp_path, _alerts(1),
                      {"webhook_url": f"http://127.0.0.1:{port}/hook", "retries": 1, "backoff_ms": 10})
    assert proc.returncode == 1
    assert "could not be delivered" in proc.stderr and "ECONNREFUSED" in proc.stderr, proc.stderr
    (sent,) = json.loads((tmp_path / "sent_alerts.json").read_text())
    assert sent["status"] == "failed" and sent["attempts"] == 2


def test_generator_is_deterministic_and_realistic(tmp_path):
    def gen(seed: int, name: str) -> list[str]:
        out = tmp_path / name
        subprocess.run([sys.executable, str(DEMO / "generate.py"), "--events", "20000", "--out", str(out),
                        "--seed", str(seed)], check=True, timeout=120)
        return out.read_text().split("\n")[:-1]

    a, b, c = gen(5, "a.log"), gen(5, "b.log"), gen(6, "c.log")
    assert a == b and a != c and len(a) == 20000
    good = re.compile(r"^(temperature|humidity|pressure):-?\d+\.\d sensor_id=[a-z]+ ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    odd = [line for line in a if not good.match(line)]
    assert 0.005 * len(a) < len(odd) < 0.02 * len(a)
    assert "" in odd
    # The shipped demo log is this generator's output for 1,000 events with the default seed.
    shipped = (DEMO / "sensors.log").read_text()
    proc = subprocess.run([sys.executable, str(DEMO / "generate.py"), "--events", "1000"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert proc.stdout == shipped
