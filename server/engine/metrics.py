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

    def run_origin(self, run_id: str, pipeline_id: str, origin: str) -> None:
        """Say what started a run, before its events arrive."""
        with self._lock:
            self._runs[run_id] = (pipeline_id, origin)

    def on_event(self, ev: Event) -> None:
        """An engine listener: counts runs and times nodes."""
        if isinstance(ev, RunStatusEvent) and ev.status == "running":
            with self._lock:
                self._runs.setdefault(ev.run_id, (ev.pipeline_id, "manual"))
        elif isinstance(ev, RunStatusEvent) and ev.status in _TERMINAL:
            with self._lock:
                pipeline, origin = self._runs.pop(ev.run_id, (ev.pipeline_id, "manual"))
            self.runs.labels(pipeline, ev.status, origin).inc()
        elif isinstance(ev, NodeStatusEvent) and ev.status in _NODE_DONE and ev.duration_s is not None:
            with self._lock:
                pipeline = self._runs.get(ev.run_id, ("", ""))[0]
            self.node_seconds.labels(pipeline, ev.node_id, ev.status).observe(ev.duration_s)

    def trigger_status(self, status: dict) -> None:
        """A trigger's status: keeps the lag gauge current."""
        if status.get("trigger_id") and status.get("lag") is not None:
            self.lag.labels(status["pipeline_id"], status["trigger_id"]).set(status["lag"])

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
