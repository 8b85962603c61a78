"""`serve()`: what it prints, and how it refuses a port that is taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from server.engine.errors import UsageError
from server.web import serve
from server.web.serve import check_port
from tests.web.conftest import REPO, TOKEN


def _listener(reuse: bool = False) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if reuse else 0)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "reuseaddr"])
def test_taken_port_is_refused_before_anything_is_printed(workspace, capfd, reuse):
    with _listener(reuse) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UsageError) as info:
            serve(workspace, "127.0.0.1", port, TOKEN)
    assert str(info.value) == f"port {port} on 127.0.0.1 is already in use; try --port {port + 1}"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_cli_reports_a_taken_port_in_one_line(workspace):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with _listener() as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--workspace", str(workspace),
                               "--port", str(port)], capture_output=True, text=True, timeout=60, env=env,
                              cwd=str(workspace))
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use; try --port {port + 1}" in output
    for noise in ("http://", "Address already in use", "Stopping", "Traceback"):
        assert noise not in output, output


def test_recently_closed_connections_do_not_block_the_port():
    server = _listener(reuse=True)  # as the studio's own server sets it
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first, leaving its end in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    with socket.socket() as plain:
        plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            pass
        else:
            pytest.skip("this kernel lets a plain bind reuse a TIME_WAIT port, so there is nothing to check")
    check_port("127.0.0.1", port)


def test_output_is_only_pipeloom_lines(server):
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert lines[0].startswith("Pipeloom studio for "), lines
    assert lines[1].strip() == f"http://127.0.0.1:{server.port}/?token={TOKEN}"
    assert lines[2].startswith("Open that address"), lines
    assert lines[3].startswith("No triggers: runs start from the studio or `pipeloom run`"), lines
    assert len(lines) == 4, lines
    text = server.log()
    assert "Serving Flask app" not in text and "Debug mode" not in text
