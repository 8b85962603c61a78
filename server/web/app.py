"""The app factory: Flask + Flask-SocketIO over one workspace."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from flask import Flask
from flask_socketio import SocketIO

from server import __version__
from server.engine.errors import PipeloomError
from server.engine.paths import is_pipeline_file, pipeline_id_for

from .errors import register_error_handlers, require_json_type
from .highlight import read_source, render
from .pipelines import Pipelines
from .runs import RunManager
from .security import Guard, SecurityMiddleware
from .watch import WatchBridge

log = logging.getLogger("pipeloom.web")

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "templates"
STATIC = REPO_ROOT / "static"


@dataclass
class WebConfig:
    """Settings of one studio app; `create_app` also takes a plain mapping of these names."""

    workspace: Path = field(default_factory=Path.cwd)
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    watch: bool = True
    debounce_s: float = 0.15
    log_flush_interval_s: float = 0.05
    log_batch_cap: int = 2000
    count_records_limit: int | None = None  # outputs of any size are counted, by their page index
    triggers: bool = True  # run the workspace's triggers (kafka, http, folder, schedule)
    studio: bool = True  # serve the editor and its API; off: only /invoke, /metrics and the triggers
    retention_interval_s: float = 600.0

    @classmethod
    def from_mapping(cls, config: Mapping | "WebConfig" | None) -> "WebConfig":
        if isinstance(config, WebConfig):
            return config
        config = dict(config or {})
        unknown = set(config) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        cfg = cls(**config)
        cfg.workspace = Path(cfg.workspace).resolve()
        env_hosts = os.environ.get("PIPELOOM_ALLOWED_HOSTS", "")
        cfg.allowed_hosts = list(cfg.allowed_hosts) + [h.strip() for h in env_hosts.split(",") if h.strip()]
        return cfg


class WebState:
    """Everything one app holds: workspace, store, pipelines, runs, watcher."""

    def __init__(self, cfg: WebConfig, socketio: SocketIO):
        from server.engine.store import Store

        self.cfg = cfg
        self.workspace = cfg.workspace
        self.socketio = socketio
        self.store = Store.open(cfg.workspace)
        self.pipelines = Pipelines(cfg.workspace, self.store, on_changed=self._pipeline_changed)
        self.runs = RunManager(cfg.workspace, self.store, self.emit,
                               flush_interval=cfg.log_flush_interval_s, batch_cap=cfg.log_batch_cap,
                               count_limit=cfg.count_records_limit, load_pipeline=self.pipelines.load_for_run,
                               autorun_enabled=self.pipelines.autorun)
        from server.engine.data import pageindex
        from server.engine.paths import Layout

        self.previews = pageindex.shared(Layout(cfg.workspace).state / "index", hold=True)
        self.runs.previews = self.previews
        from server.engine.data.query import Queries

        self.queries = Queries(Layout(cfg.workspace).state / "query")
        self.watcher: WatchBridge | None = None
        self._closed = False
        from server.engine.metrics import Metrics

        self.metrics = Metrics()
        self.runs.listeners.append(self.metrics.on_event)
        self.triggers = None
        if cfg.triggers:
            from server.engine.model import load_pipeline
            from server.triggers.runs import make_starter
            from server.triggers.service import TriggerService

            starter = make_starter(cfg.workspace, start_run=self.runs.start, wait_run=self.runs.wait,
                                   get_run=self.store.get_run)
            self.triggers = TriggerService(cfg.workspace, load=lambda path: load_pipeline(path, workspace=cfg.workspace),
                                           starter=starter, on_status=self._trigger_status,
                                           on_batch=self.metrics.batch)

        from server.engine.gc import RetentionLoop

        self.retention = RetentionLoop(self.store, cfg.workspace, self._retention_policies,
                                       interval=cfg.retention_interval_s)

    def _retention_policies(self) -> dict:
        out = {}
        for pid, path in self.pipelines.all_paths().items():
            try:
                out[pid] = self.pipelines.load(pid).retention
            except PipeloomError:
                continue
        return out

    def _trigger_status(self, status: dict) -> None:
        self.metrics.trigger_status(status)
        self.emit("trigger_status", status, [f"pipeline:{status['pipeline_id']}"])

    def emit(self, event: str, payload: dict, rooms: list[str]) -> None:
        """Send an event to the union of rooms (a client in several gets it once); a client too far
        behind is cut off instead (see sockets.SlowClients)."""
        from .sockets import slow_clients

        late = slow_clients(self.socketio).lagging(rooms)
        self.socketio.emit(event, payload, to=rooms, namespace="/", skip_sid=late or None)

    def _pipeline_changed(self, pipeline_id: str, version: int | None) -> None:
        self.emit("pipeline_changed", {"pipeline_id": pipeline_id, "version": version},
                  [f"pipeline:{pipeline_id}"])

    def start_watching(self) -> None:
        self.watcher = WatchBridge(self.workspace, self.files_changed, debounce=self.cfg.debounce_s)
        self.watcher.start()

    def files_changed(self, paths: set[Path]) -> None:
        """React to files changed on disk: pipeline files get a version, node sources get re-rendered."""
        known = None
        autorun: dict[str, set[str]] = {}
        for path in sorted(paths):
            if is_pipeline_file(path.name):
                if self.triggers is not None:
                    self.triggers.reload(path)
                self.pipelines.invalidate_index()
                known = known if known is not None else self.pipelines.all_paths()
                pid = pipeline_id_for(self.workspace, path)
                if pid not in known:
                    continue
                try:
                    self.pipelines.sync(pid, known[pid])
                except PipeloomError as exc:
                    log.info("pipeline %s changed on disk but cannot be read: %s", pid, exc)
                continue
            owners = self.pipelines.nodes_for_source(path)
            if not owners or not path.is_file():
                continue
            for pid, nid in owners:
                try:
                    payload = self.source_payload(pid, nid)
                except PipeloomError as exc:
                    log.info("source of %s/%s cannot be shown: %s", pid, nid, exc)
                    continue
                self.emit("source_changed", payload, [f"pipeline:{pid}"])
                if self.pipelines.autorun(pid):
                    autorun.setdefault(pid, set()).add(nid)
        for pid, nodes in autorun.items():
            self.runs.request_autorun(pid, nodes)

    def source_payload(self, pipeline_id: str, node_id: str) -> dict:
        """{pipeline_id, node_id, path, language, code, html, truncated} of a node's source file."""
        from server.engine.errors import NotFoundError
        from server.engine.runtimes import get_runtime

        raw, pfile = self.pipelines.node_document(pipeline_id, node_id)
        runtime = raw.get("runtime")
        rt = get_runtime(runtime) if isinstance(runtime, str) else None
        language = rt.language if rt is not None else None
        path = self.pipelines.source_path(pipeline_id, node_id)
        if path is None:
            command = raw.get("command")
            if not isinstance(command, list):
                raise NotFoundError(f"node `{node_id}` has no source file")
            import shlex

            code = shlex.join(str(a) for a in command) + "\n"
            lang, html = render(code, "bash")
            return {"pipeline_id": pipeline_id, "node_id": node_id, "path": None, "language": lang,
                    "code": code, "html": html, "truncated": False}
        if not path.is_file():
            raise NotFoundError(f"the source of node `{node_id}` ({path.relative_to(self.workspace).as_posix()}) "
                                "does not exist yet")
        code, truncated = read_source(path)
        lang, html = render(code, language, path.name)
        return {"pipeline_id": pipeline_id, "node_id": node_id, "path": path.relative_to(self.workspace).as_posix(),
                "language": lang, "code": code, "html": html, "truncated": truncated}

    def close(self) -> None:
        """Stop the watcher, cancel runs, close the store (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.watcher is not None:
            self.watcher.stop()
        if self.triggers is not None:
            self.triggers.stop()
        self.retention.stop()
        self.runs.shutdown()
        from server.engine.data import pageindex

        pageindex.release(self.previews)
        self.queries.close()
        try:
            self.store.close()
        except Exception:
            log.exception("closing the store")


def create_app(config: Mapping | WebConfig | None = None) -> Flask:
    """Build the studio app for one workspace; `app.extensions["pipeloom"]` holds its WebState."""
    cfg = WebConfig.from_mapping(config)
    if not cfg.token:
        cfg.token = secrets.token_urlsafe(24)
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder=str(STATIC), static_url_path="/static")
    app.config.update(
        SECRET_KEY=secrets.token_hex(32),
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        PIPELOOM_TOKEN=cfg.token,
        PIPELOOM_WORKSPACE=str(cfg.workspace),
        PIPELOOM_VERSION=__version__,
    )
    app.json.sort_keys = False
    guard = Guard(cfg.token, [cfg.host, *cfg.allowed_hosts], cfg.allowed_origins)
    socketio = SocketIO(app, async_mode="threading", cors_allowed_origins=guard.engineio_origin_check,
                        logger=False, engineio_logger=False, manage_session=False)
    state = WebState(cfg, socketio)
    app.extensions["pipeloom"] = state
    app.extensions["pipeloom_guard"] = guard

    from .api import api
    from .diffs import diffs
    from .inspect import inspect
    from .invoke import invoke, service
    from .pages import pages
    from .sockets import register_socket_handlers

    app.register_blueprint(invoke)
    app.register_blueprint(service)
    if cfg.studio:
        app.register_blueprint(api)
        app.register_blueprint(diffs)
        app.register_blueprint(inspect)
        app.register_blueprint(pages)
    register_error_handlers(app)
    app.before_request(require_json_type)
    register_socket_handlers(socketio, state, guard)
    # wrap after Flask-SocketIO so /socket.io goes through the same checks
    app.wsgi_app = SecurityMiddleware(app.wsgi_app, guard)
    if cfg.watch:
        state.start_watching()
    if state.triggers is not None:
        state.triggers.start()
    state.retention.start()
    return app


def state_of(app: Flask) -> WebState:
    return app.extensions["pipeloom"]
