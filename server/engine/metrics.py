"""Prometheus metrics for a long-lived Pipeloom process (the server and its triggers).

One registry per process, fed by engine events and by triggers; the web layer
only renders it at /metrics. Label values are pipeline, node and trigger ids,
which a workspace keeps few of.
"""

from __future__ import annotations

import threading

from .events import Event, NodeStatusEvent, RunStatusEvent

_TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")
_NODE_DONE = ("succeeded", "failed", "timed_out", "cancelled")


def origin_label(origin: dict | None) -> str:
    """`cli`, `studio`, `autorun` or `trigger:<id>`: what started a run, as a label value."""
    origin = origin or {}
    if origin.get("by") == "trigger":
        return f"trigger:{origin.get('trigger')}"
    return origin.get("by") or "unknown"


class Metrics:
    """The counters, gauges and histograms that /metrics shows."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.runs = Counter("pipeloom_runs", "Runs that ended, by pipeline, status and what started them",
                            ["pipeline", "status", "origin"], registry=self.registry)
        self.node_seconds = Histogram("pipeloom_node_duration_seconds", "How long node programs ran",
                                      ["pipeline", "node", "status"], registry=self.registry,
                                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.batch_size = Histogram("pipeloom_trigger_batch_events", "Events in each batch a trigger fed",
                                    ["pipeline", "trigger"], registry=self.registry,
                                    buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000))
        self.lag = Gauge("pipeloom_trigger_lag", "Events waiting for a trigger (consumer lag for Kafka)",
                         ["pipeline", "trigger"], registry=self.registry)
        self.latency = Histogram("pipeloom_event_to_result_seconds",
                                 "From an event's time (message timestamp, request arrival) to its run's result",
                                 ["pipeline", "trigger"], registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60))
        self._runs: dict[str, tuple[str, str]] = {}  # run id -> (pipeline, origin)
        self._lock = threading.Lock()

    def on_event(self, ev: Event) -> None:
        """An engine listener: counts runs and times nodes."""
        if isinstance(ev, RunStatusEvent) and ev.status == "running":
            with self._lock:
                self._runs[ev.run_id] = (ev.pipeline_id, origin_label(ev.origin))
        elif isinstance(ev, RunStatusEvent) and ev.status in _TERMINAL:
            with self._lock:
                pipeline, _ = self._runs.pop(ev.run_id, (ev.pipeline_id, ""))
            self.runs.labels(pipeline, ev.status, origin_label(ev.origin)).inc()
        elif isinstance(ev, NodeStatusEvent) and ev.status in _NODE_DONE and ev.duration_s is not None:
            with self._lock:
                pipeline = self._runs.get(ev.run_id, ("", ""))[0]
            self.node_seconds.labels(pipeline, ev.node_id, ev.status).observe(ev.duration_s)

    def trigger_status(self, status: dict) -> None:
        """A trigger's status: keeps the lag gauge current."""
        if status.get("trigger_id") and status.get("lag") is not None:
            self.lag.labels(status["pipeline_id"], status["trigger_id"]).set(status["lag"])

    def batch(self, pipeline_id: str, trigger_id: str, size: int, latencies: list[float]) -> None:
        """A batch a trigger fed and saw through: its size, and each event's time to its result."""
        self.batch_size.labels(pipeline_id, trigger_id).observe(size)
        hist = self.latency.labels(pipeline_id, trigger_id)
        for s in latencies:
            hist.observe(max(0.0, s))

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
