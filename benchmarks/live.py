"""The demo as a live service, measured end to end on this machine.

    python benchmarks/live.py kafka [--rates 500,1000,2000] [--seconds 30] [--kill]
    python benchmarks/live.py http [--calls 200] [--concurrency 8]

kafka: a real single-node broker (tests/support/kafka_broker.py: Java 17 and
Maven), `pipeloom serve` on a copy of the demo whose Kafka trigger reads
`sensor-readings`, and `generate.py --kafka` sending readings at a steady rate,
each stamped with its send time. The demo's notify step posts every alert to a
local webhook run by this script, which notes when each arrived: latency is
arrival minus the reading's send time. For each rate it reports the
p50/p95/p99 latency and whether every reading was processed (the sum of
`ingest`'s records over the triggered runs, against the number sent).
With --kill it also kills the server with SIGKILL in the middle of the stream,
starts it again, and counts readings lost (must be 0) and processed twice.

http: a one-node Python pipeline behind an http trigger, called through
`POST /invoke` with an invoke key; p50/p95 latency of one call at a time
against the raw cost of spawning the same program by hand (measured in the
same run), then the throughput with several concurrent callers.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TOKEN = "bench-token-4c1d9e7a2b"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Server:
    """`pipeloom serve` on a workspace, in its own process."""

    def __init__(self, ws: Path, env: dict | None = None):
        self.ws = ws
        self.port = free_port()
        self.log = open(ws / f"serve-{self.port}.log", "wb")
        full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--workspace", str(ws),
                                      "--port", str(self.port), "--token", TOKEN], env=full,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not start; see {self.log.name}")

    def request(self, method, path, body=None, headers=None, auth=TOKEN):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if auth:
            h["Authorization"] = f"Bearer {auth}"
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def wait_assigned(self, trigger_id: str, timeout: float = 60) -> None:
        """Until the Kafka trigger's consumer has joined its group and holds its partitions (it then knows its lag).

        The clock of a sustained-rate measurement starts here, not while the consumer is still joining."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, data = self.request("GET", "/api/triggers")
            if code == 200:
                for t in json.loads(data)["triggers"]:
                    if t["trigger_id"] == trigger_id and t.get("lag") is not None:
                        return
            time.sleep(0.2)
        raise SystemExit(f"trigger {trigger_id} never joined its consumer group; see {self.log.name}")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
            self.proc.wait(60)


class Inbox(http.server.ThreadingHTTPServer):
    """A local webhook: every alert posted to it is kept with the time it arrived."""

    def __init__(self):
        self.alerts: list[tuple[float, dict]] = []
        lock = threading.Lock()
        inbox = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real webhook endpoint

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                try:
                    msg = json.loads(body)
                except ValueError:
                    msg = {}
                with lock:
                    inbox.alerts.append((now, msg))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"


def create_topic(brokers: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        fut.result(30)


def warm_up(brokers: str) -> None:
    """One idempotent produce before any clock starts: a new broker loads its coordinators on first use
    (for about a second), which would otherwise count as latency in the first rate measured."""
    from confluent_kafka import Producer

    create_topic(brokers, "pipeloom-bench-warm-up", 1)
    p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"})
    p.produce("pipeloom-bench-warm-up", b"warm-up")
    if p.flush(60):
        raise SystemExit("the broker did not acknowledge the warm-up message")


def demo_workspace(brokers: str, webhook: str, topic: str) -> Path:
    """A copy of the demo whose notify posts every alert to `webhook` and whose Kafka trigger reads `topic`."""
    import yaml

    ws = Path(tempfile.mkdtemp(prefix="pipeloom-live-bench-"))
    shutil.copytree(REPO / "nodes", ws / "nodes")
    path = ws / "nodes/sensor-alerts.pipeline.yaml"
    doc = yaml.safe_load(path.read_text())
    for n in doc["nodes"]:
        if n["id"] == "notify":
            n["params"].update(webhook_url=webhook, max_alerts=100000, retries=0)
    for t in doc["triggers"]:
        if t["kind"] == "kafka":
            t.update(brokers=brokers, topic=topic, group=f"bench-{os.getpid()}-{topic}")
            t.pop("produce", None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return ws


def processed(ws: Path) -> tuple[int, int, int]:
    """(readings ingested by triggered runs, triggered runs, failed triggered runs), from the store."""
    from server.engine.store import Store

    store = Store.open(ws)
    try:
        total = runs = failed = 0
        for r in store.list_runs("nodes.sensor-alerts", limit=100000):
            if r["origin"].get("by") != "trigger":
                continue
            runs += 1
            if r["status"] != "succeeded":
                failed += 1
                continue
            art = store.get_run(r["run_id"])["nodes"].get("ingest", {}).get("artifacts", {}).get("raw_events")
            total += (art or {}).get("records") or 0
        return total, runs, failed
    finally:
        store.close()


def wait_drained(ws: Path, sent: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        got = processed(ws)[0]
        if got >= sent:
            return got
        time.sleep(1.0)
    return got


def bench_kafka(args) -> dict:
    from tests.support import kafka_broker

    out: dict = {"rates": []}
    broker_dir = Path(tempfile.mkdtemp(prefix="pipeloom-live-broker-"))
    broker = kafka_broker.Broker(broker_dir, die_with_parent=True)
    brokers = broker.start()
    warm_up(brokers)
    try:
        for rate in [int(x) for x in args.rates.split(",")]:
            inbox = Inbox()
            topic = f"sensor-readings-{rate}-{os.getpid()}"
            ws = demo_workspace(brokers, inbox.url, topic)
            # build once, before the clock starts: a first run compiles the Rust and Go steps
            subprocess.run([sys.executable, "-m", "server.cli", "run", "nodes/sensor-alerts.pipeline.yaml"],
                           cwd=ws, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, check=True)
            create_topic(brokers, topic, args.partitions)
            srv = Server(ws)
            srv.wait_assigned("readings")
            sent = int(rate * args.seconds)
            gen = subprocess.Popen([sys.executable, str(REPO / "nodes/sensor-alerts/generate.py"), "--kafka", brokers,
                                    "--topic", topic, "--rate", str(rate), "--seconds", str(args.seconds)],
                                   stderr=subprocess.PIPE, text=True)
            killed = None
            if args.kill:
                time.sleep(args.seconds / 2)
                srv.stop(signal.SIGKILL)
                killed = time.time()
                srv = Server(ws)  # the clock keeps running: the restart and the group join count in the latency
            gen_err = gen.communicate()[1].strip()
            wait_drained(ws, sent, timeout=120)
            srv.stop()
            inbox.shutdown()
            lat = [arrived - m["alert"]["sent_at"] / 1000.0 for arrived, m in inbox.alerts
                   if isinstance(m.get("alert"), dict) and m["alert"].get("sent_at")]
            ingested, runs, failed = processed(ws)
            row = {"rate": rate, "seconds": args.seconds, "sent": sent, "ingested": ingested, "runs": runs,
                   "failed_runs": failed, "lost": max(0, sent - ingested), "duplicates": max(0, ingested - sent),
                   "alerts": len(lat), "p50_s": pct(lat, 50), "p95_s": pct(lat, 95), "p99_s": pct(lat, 99),
                   "killed": bool(killed), "generator": gen_err}
            out["rates"].append(row)
            print(json.dumps(row), flush=True)
            if args.keep:
                with open(ws / "webhook-arrivals.jsonl", "w") as f:
                    for arrived, m in inbox.alerts:
                        f.write(json.dumps({"arrived": arrived, **m}) + "\n")
                print(f"kept {ws} (webhook-arrivals.jsonl: every alert and when it arrived)", file=sys.stderr)
            else:
                shutil.rmtree(ws, ignore_errors=True)
    finally:
        broker.stop()
        shutil.rmtree(broker_dir, ignore_errors=True)
    held = [r for r in out["rates"] if r["p95_s"] <= 1.0 and r["lost"] == 0 and not r["killed"]]
    out["highest_rate_p95_within_1s"] = max((r["rate"] for r in held), default=None)
    return out


NODE = '''import json
data = json.load(open("events.json"))
json.dump({"n": len(data) if isinstance(data, list) else 1}, open("out.json", "w"))
'''


def bench_http(args) -> dict:
    import yaml

    ws = Path(tempfile.mkdtemp(prefix="pipeloom-invoke-bench-"))
    (ws / "count.py").write_text(NODE)
    (ws / "sample.json").write_text("[1, 2, 3]")
    doc = {"version": 1, "name": "fn", "nodes": [
        {"id": "count", "runtime": "python", "source": "count.py",
         "inputs": [{"name": "events", "format": "json", "path": "sample.json"}],
         "outputs": [{"name": "out", "format": "json"}]}], "edges": [],
        "triggers": [{"id": "call", "kind": "http", "to": "count.events", "result": "count.out",
                      "max_concurrent": 2, "queue": 1000, "timeout": 60}],
        "retention": {"keep_runs": 100000, "keep_days": 365}}
    (ws / "fn.pipeline.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    made = subprocess.run([sys.executable, "-m", "server.cli", "keys", "create", "fn", "--name", "bench"], cwd=ws,
                          env=env, capture_output=True, text=True, check=True)
    key = re.search(r"^\s+(plk_\S+)$", made.stdout, re.M).group(1)
    srv = Server(ws)
    body = json.dumps(list(range(100))).encode()
    headers = {"Content-Type": "application/json"}
    counter = iter(range(10**9))

    def one() -> float:
        # a new body each call: the same one would be answered from the cache, with no program run
        call_body = json.dumps([next(counter), *range(100)]).encode()
        t0 = time.perf_counter()
        status, data = srv.request("POST", "/invoke/fn/call", call_body, headers, auth=key)
        if status != 200:
            raise SystemExit(f"invoke answered {status}: {data[:300]!r}")
        return time.perf_counter() - t0

    for _ in range(5):
        one()  # warm up
    # the raw cost of the program: spawn it by hand on the same input, alternating with the calls
    raw_dir = ws / "raw"
    raw_dir.mkdir()
    (raw_dir / "events.json").write_bytes(body)
    calls, raw = [], []
    for _ in range(args.calls):
        calls.append(one())
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ws / "count.py")], cwd=raw_dir, check=True)
        raw.append(time.perf_counter() - t0)
    lat = {"p50_s": pct(calls, 50), "p95_s": pct(calls, 95), "spawn_p50_s": pct(raw, 50), "spawn_p95_s": pct(raw, 95)}
    lat["overhead_p50_ms"] = (lat["p50_s"] - lat["spawn_p50_s"]) * 1000
    n = args.calls
    done: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for _ in range(k):
            d = one()
            with lock:
                done.append(d)

    per = n // args.concurrency
    threads = [threading.Thread(target=worker, args=(per,)) for _ in range(args.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    srv.stop()
    shutil.rmtree(ws, ignore_errors=True)
    return {**lat, "calls": n, "concurrency": args.concurrency, "throughput_per_s": len(done) / wall,
            "concurrent_p95_s": pct(done, 95)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kafka")
    k.add_argument("--rates", default="500,1000,2000")
    k.add_argument("--seconds", type=float, default=30)
    k.add_argument("--kill", action="store_true", help="SIGKILL the server halfway and start it again")
    k.add_argument("--partitions", type=int, default=1, help="partitions of the readings topic (default 1)")
    k.add_argument("--keep", action="store_true", help="keep each rate's workspace, to look at its runs")
    h = sub.add_parser("http")
    h.add_argument("--calls", type=int, default=200)
    h.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = ap.parse_args(argv)
    result = bench_kafka(args) if args.what == "kafka" else bench_http(args)
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
