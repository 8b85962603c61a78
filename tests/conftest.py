"""Fixtures shared by every test: a fresh workspace, toolchain checks, and a
guard that fails any test which leaves a process running."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STRICT = os.environ.get("PIPELOOM_STRICT") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip with `reason` unless `condition`; under PIPELOOM_STRICT=1 (CI) fail instead."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required by PIPELOOM_STRICT=1: {reason}")
    pytest.skip(reason)


@pytest.fixture
def require_tool():
    """Call with a command name; skips (or fails under PIPELOOM_STRICT=1) when it is not on PATH."""
    def check(tool: str, why: str | None = None) -> str:
        path = shutil.which(tool)
        require(path is not None, why or f"`{tool}` is not installed on this machine")
        return path
    return check


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh, empty workspace folder, made the current directory."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    monkeypatch.delenv("PIPELOOM_DATABASE_URL", raising=False)
    return ws


# ------------------------------------------------------------ orphan guard

def _procs_with_tag(tag: str) -> list[int]:
    needle = f"PIPELOOM_TEST_TAG={tag}".encode()
    found = []
    for env_path in glob.glob("/proc/[0-9]*/environ"):
        pid = int(env_path.split("/")[2])
        if pid == os.getpid():
            continue
        try:
            with open(env_path, "rb") as fh:
                if needle not in fh.read():
                    continue
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            if state != b"Z":
                found.append(pid)
        except OSError:
            continue
    return found


@pytest.fixture(autouse=True)
def no_orphans(monkeypatch):
    """Every process a test starts inherits a tag; any still alive afterwards fails the test."""
    if not os.path.isdir("/proc"):
        yield
        return
    tag = uuid.uuid4().hex
    monkeypatch.setenv("PIPELOOM_TEST_TAG", tag)
    yield
    deadline = time.monotonic() + 3
    left = _procs_with_tag(tag)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _procs_with_tag(tag)
    if left:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        pytest.fail(f"test left {len(left)} process(es) running: pids {left}")


# ------------------------------------------------------------ PostgreSQL

def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return cands[-1] if cands else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A real PostgreSQL: PIPELOOM_TEST_POSTGRES_URL if set, else a throwaway cluster started here."""
    url = os.environ.get("PIPELOOM_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    require(bool(initdb and pg_ctl), "PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "the psycopg package is not installed (pip install 'pipeloom[postgres]')")
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="pipeloom-pg-"))  # outside pytest's 0700 tmp root
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        require(runuser is not None and _user_exists("postgres"),
                "running as root needs the `postgres` user and runuser to start a test cluster")
        prefix = [runuser, "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    env = {k: v for k, v in os.environ.items() if k != "PIPELOOM_TEST_TAG"}
    env["LC_ALL"] = "C"
    subprocess.run(prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "pipeloom", "-E", "UTF8"], check=True,
                   capture_output=True, env=env)
    port = _free_port()
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-w", "-l", str(base / "pg.log"), "-o",
                             f"-k {sock} -p {port} -c listen_addresses=''", "start"],
                   check=True, capture_output=True, env=env)
    try:
        yield f"postgresql+psycopg://pipeloom@/postgres?host={sock}&port={port}"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pipeloom_cmd(*args: str, cwd: Path | str | None = None, env: dict | None = None, timeout: float = 300,
                 input_: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, input=input_)
