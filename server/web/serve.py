"""`pipeloom serve`: start the studio and print the address that logs you in."""

from __future__ import annotations

import errno
import logging
import secrets
import signal
import socket
import sys
import threading
import webbrowser
from pathlib import Path

import flask.cli

from server.engine.errors import UsageError

from .security import is_loopback, token_problem


class _WebSocketCloseNoise(logging.Filter):
    """Werkzeug reads the bytes after a closed WebSocket as a new request and logs
    a 400 for each closed browser tab; that is not an error worth showing."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("Bad request syntax" in msg or "Bad HTTP/0.9 request type" in msg
                    or "Bad request version" in msg)


def studio_url(host: str, port: int, token: str) -> str:
    """The address to open, token included (like Jupyter's)."""
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        shown = f"[{host}]"
    return f"http://{shown}:{port}/?token={token}"


def check_port(host: str, port: int) -> None:
    """UsageError when something already listens on host:port (before anything is printed)."""
    if not port:
        return
    bind_host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    error = _try_bind(family, bind_host, port, reuse=False)
    if error is not None and error.errno == errno.EADDRINUSE:
        # Connections closed moments ago (TIME_WAIT) also block a plain bind, but not the
        # server's own (SO_REUSEADDR) one; only a socket that still listens is in the way.
        if _try_bind(family, bind_host, port, reuse=True) is None and not _accepts(family, bind_host, port):
            return
        raise UsageError(f"port {port} on {host} is already in use; try --port {port + 1}")
    if error is not None:
        raise UsageError(f"cannot listen on port {port} on {host}: {error.strerror or error}")


def _try_bind(family: int, host: str, port: int, *, reuse: bool) -> OSError | None:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if reuse else 0)
            sock.bind((host, port))
    except OSError as exc:
        return exc
    return None


def _accepts(family: int, host: str, port: int) -> bool:
    if host in ("0.0.0.0", "::", ""):
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def trigger_summary(statuses: list[dict]) -> str:
    """One line a pipeline: its triggers and their states, or how to add one."""
    if not statuses:
        return "No triggers: runs start from the studio or `pipeloom run` (see `triggers:` in docs/pipeline-format.md)."
    by: dict[str, list[str]] = {}
    for st in statuses:
        if st.get("trigger_id") is None:
            by.setdefault(st["pipeline_id"], []).append(f"off ({st.get('error')})")
            continue
        word = st["state"] if st["state"] != "running" else "on"
        by.setdefault(st["pipeline_id"], []).append(f"{st['trigger_id']} ({st['kind']}, {word})")
    return "Triggers:\n" + "\n".join(f"    {pid}: {', '.join(items)}" for pid, items in sorted(by.items()))


def use_executor(choice, workspace: Path) -> None:
    """Make `choice` this server's executor, checking first that a Dask scheduler answers (UsageError if not)."""
    from server.engine.run.executors import set_default

    choice = choice.resolved()
    if choice.kind == "dask":
        from server.engine.run.cluster import running_address, scheduler_file
        from server.engine.run.dask_executor import connect

        if not choice.scheduler and running_address(workspace):
            choice.scheduler = str(scheduler_file(workspace))
        connect(choice.scheduler).close()
    set_default(choice)


def serve(workspace, host: str = "127.0.0.1", port: int = 5000, token: str | None = None,
          open_browser: bool = False, allowed_hosts: list[str] | None = None, studio: bool = True,
          executor=None) -> None:
    """Run the studio until interrupted; refuses a non-loopback host without an explicit, strong token
    (at least 16 characters, 8 of them different). `executor` (an ExecutorChoice) is where the runs it
    starts (Run button, auto-run, triggers) run their nodes, unless a pipeline says otherwise."""
    from .app import create_app

    if not is_loopback(host) and not token:
        raise UsageError(f"refusing to listen on {host} without --token: anyone who can reach it could run code "
                         "here. Pass --token with a long random value, or keep the default --host 127.0.0.1")
    weak = token_problem(token) if token and not is_loopback(host) else None
    if weak:
        raise UsageError(f"refusing to listen on {host} with a weak --token ({weak}): anyone who can reach it "
                         f"could guess it and run code here. Pass a long random value, e.g. "
                         "`--token $(python -c 'import secrets; print(secrets.token_urlsafe(24))')`")
    check_port(host, port)
    if executor is not None:
        use_executor(executor, Path(workspace))
    token = token or secrets.token_urlsafe(24)
    extra = list(allowed_hosts or [])
    if host in ("0.0.0.0", "::"):
        extra.append(socket.gethostname())
    app = create_app({"workspace": Path(workspace), "token": token, "host": host, "port": port,
                      "allowed_hosts": extra, "studio": studio})
    state = app.extensions["pipeloom"]
    socketio = app.extensions["socketio"]
    quiet = logging.getLogger("werkzeug")
    quiet.setLevel(logging.ERROR)
    quiet.addFilter(_WebSocketCloseNoise())
    url = studio_url(host, port, token)
    if studio:
        print(f"Pipeloom studio for {state.workspace}\n\n    {url}\n\n"
              "Open that address to log in (it carries this launch's token). Press Ctrl+C to stop.", flush=True)
    else:
        base = url.split("/?", 1)[0]
        print(f"Pipeloom service for {state.workspace} (no studio)\n\n"
              f"    {base}/invoke/<pipeline>/<trigger>   (an invoke key from `pipeloom keys create`)\n"
              f"    {base}/metrics                        (Authorization: Bearer {token})\n\n"
              "Press Ctrl+C to stop.", flush=True)
    print(trigger_summary(state.triggers.statuses() if state.triggers else []), flush=True)
    if open_browser and studio:
        threading.Timer(0.8, webbrowser.open, args=(url,)).start()

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    # Flask's " * Serving Flask app" banner would follow Pipeloom's own lines; errors still show
    banner = flask.cli.show_server_banner
    flask.cli.show_server_banner = lambda *args, **kwargs: None
    try:
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, use_reloader=False, debug=False,
                     log_output=False)
    except KeyboardInterrupt:
        pass
    finally:
        flask.cli.show_server_banner = banner
        print("Stopping: cancelling active runs…", file=sys.stderr, flush=True)
        state.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
