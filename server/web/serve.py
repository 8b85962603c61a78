"""`pipeloom serve`: start the studio and print the address that logs you in."""

from __future__ import annotations

import logging
import secrets
import signal
import socket
import sys
import threading
import webbrowser
from pathlib import Path

from server.engine.errors import UsageError

from .security import is_loopback


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


def serve(workspace, host: str = "127.0.0.1", port: int = 5000, token: str | None = None,
          open_browser: bool = False, allowed_hosts: list[str] | None = None) -> None:
    """Run the studio until interrupted; refuses a non-loopback host without an explicit token."""
    from .app import create_app

    if not is_loopback(host) and not token:
        raise UsageError(f"refusing to listen on {host} without --token: anyone who can reach it could run code "
                         "here. Pass --token with a long random value, or keep the default --host 127.0.0.1")
    token = token or secrets.token_urlsafe(24)
    extra = list(allowed_hosts or [])
    if host in ("0.0.0.0", "::"):
        extra.append(socket.gethostname())
    app = create_app({"workspace": Path(workspace), "token": token, "host": host, "port": port,
                      "allowed_hosts": extra})
    state = app.extensions["pipeloom"]
    socketio = app.extensions["socketio"]
    quiet = logging.getLogger("werkzeug")
    quiet.setLevel(logging.ERROR)
    quiet.addFilter(_WebSocketCloseNoise())
    url = studio_url(host, port, token)
    print(f"Pipeloom studio for {state.workspace}\n\n    {url}\n\n"
          "Open that address to log in (it carries this launch's token). Press Ctrl+C to stop.", flush=True)
    if open_browser:
        threading.Timer(0.8, webbrowser.open, args=(url,)).start()

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True, use_reloader=False, debug=False,
                     log_output=False)
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping: cancelling active runs…", file=sys.stderr, flush=True)
        state.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
