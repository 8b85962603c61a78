"""Starting node programs, reading their output, and stopping every process a node started.

Each node runs in its own session, so its process group is ours to kill, and every
process it starts inherits PIPELOOM_NODE_TOKEN=<run>/<node>/<random>. A descendant
that leaves the group (setsid, a double-fork daemon) still carries the token, found
by scanning /proc/*/environ. A small guard process per run (guard.py) watches a pipe
from Pipeloom and stops the run's marked processes when Pipeloom dies, even by kill -9.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

LineSink = Callable[[str, list[str]], None]
Keeping = Callable[[], bool]

CHUNK = 256 * 1024
TOKEN_VAR = "PIPELOOM_NODE_TOKEN"
GUARD_SCRIPT = Path(__file__).resolve().parent / "guard.py"

log = logging.getLogger("pipeloom")


def new_token(run_id: str, node_id: str) -> str:
    """The marker every process of one node attempt inherits: <run>/<node>/<random>."""
    return f"{run_id}/{node_id}/{secrets.token_hex(4)}"


def find_marked(value: str, *, prefix: bool = False) -> list[int]:
    """Live pids whose environment has PIPELOOM_NODE_TOKEN=`value` (or starting with it, if `prefix`)."""
    want = f"\0{TOKEN_VAR}={value}".encode() + (b"" if prefix else b"\0")
    me = os.getpid()
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if want in b"\0" + env + b"\0":  # a zombie's environment reads empty, so it never matches
            found.append(int(name))
    return found


def _signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_marked(value: str, *, prefix: bool = False, pgid: int | None = None, grace: float = 0.0,
                done: Callable[[], bool] = lambda: True) -> int:
    """SIGTERM a process group and every marked process, SIGKILL what is left after `grace`; returns how many
    marked processes were found at first."""
    first = find_marked(value, prefix=prefix)
    if grace > 0:
        if pgid:
            _signal_group(pgid, signal.SIGTERM)
        _signal_pids(first, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if done() and not (pgid and _group_alive(pgid)) and not find_marked(value, prefix=prefix):
                return len(first)
            time.sleep(0.05)
    if pgid:
        _signal_group(pgid, signal.SIGKILL)
    pids = first if grace <= 0 else find_marked(value, prefix=prefix)
    for _ in range(20):  # a fork can race a pass, so look again until nothing marked is left
        if not pids:
            break
        _signal_pids(pids, signal.SIGKILL)
        pids = find_marked(value, prefix=prefix)
    return len(first)


class RunGuard:
    """One watcher process per run that stops the run's node processes if this process dies."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the watcher (once; cheap to call again). Failing to start it is logged, not fatal."""
        with self._lock:
            if self._proc is not None:
                return
            r, w = os.pipe()  # both ends non-inheritable: node programs never hold the write end
            try:
                self._proc = subprocess.Popen([sys.executable, "-I", "-S", str(GUARD_SCRIPT), self.run_id],
                                              stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                              start_new_session=True, close_fds=True)
                self._fd = w
            except OSError as exc:
                os.close(w)
                log.warning("could not start the run guard (%s); a crash may leave node processes behind", exc)
            finally:
                os.close(r)

    @property
    def active(self) -> bool:
        return self._fd is not None

    def released(self, token: str) -> None:
        """A node attempt finished: the guard sweeps any process still marked with `token`."""
        with self._lock:
            if self._fd is None:
                return
            try:
                os.write(self._fd, f"-{token}\n".encode())
            except OSError:
                pass

    def close(self, timeout: float = 5.0) -> None:
        """End of the run: the guard sweeps what is left of it and exits."""
        with self._lock:
            fd, self._fd = self._fd, None
            proc = self._proc
        if fd is not None:
            os.close(fd)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class NodeProcess:
    """One node program in its own session, marked with `token` in its environment."""

    def __init__(self, argv: list[str], *, cwd: str, env: dict[str, str], sink: LineSink,
                 token: str | None = None, guard: RunGuard | None = None, keep: Keeping | None = None,
                 skipped: Callable[[int], None] | None = None):
        """`sink` gets whole lines while `keep()` is true; after that, output is only counted (`skipped(n)`)."""
        self.token = token or new_token(env.get("PIPELOOM_RUN_ID", "run"), env.get("PIPELOOM_NODE_ID", "node"))
        self.guard = guard
        env = {**env, TOKEN_VAR: self.token}
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
        self.pgid = self.proc.pid
        self._readers = [
            threading.Thread(target=_pump, args=(self.proc.stdout, "out", sink, keep, skipped), daemon=True),
            threading.Thread(target=_pump, args=(self.proc.stderr, "err", sink, keep, skipped), daemon=True),
        ]
        for t in self._readers:
            t.start()

    def wait(self, timeout: float | None) -> int | None:
        """Exit code, or None if `timeout` passed first."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_group(self, grace: float = 2.0) -> None:
        """SIGTERM the group and every marked descendant, then SIGKILL whatever is left after `grace` seconds."""
        stop_marked(self.token, pgid=self.pgid, grace=grace, done=lambda: self.proc.poll() is not None)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def reap_group(self) -> None:
        """After the main program exits, stop anything it left behind, in its group or not."""
        if _group_alive(self.pgid):
            _signal_group(self.pgid, signal.SIGKILL)
        if self.guard is not None and self.guard.active:
            self.guard.released(self.token)  # the /proc sweep happens in the guard, off this thread
        else:
            stop_marked(self.token)

    def finish_reading(self, timeout: float = 5.0) -> None:
        for t in self._readers:
            t.join(timeout)
        if any(t.is_alive() for t in self._readers):
            stop_marked(self.token, pgid=self.pgid)  # something still holds the pipes open
            for t in self._readers:
                t.join(2.0)


def _pump(pipe, stream: str, sink: LineSink, keep: Keeping | None = None,
          skipped: Callable[[int], None] | None = None) -> None:
    """Read big chunks and hand over whole lines; far faster than readline per line.

    Once nobody keeps lines (the log is full), chunks are only counted: a node printing
    gigabytes then costs a read and a newline count per chunk, in constant memory.
    """
    fd = pipe.fileno()
    rest = b""
    counted = 0
    try:
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            if keep is not None and not keep():
                counted += chunk.count(b"\n")
                rest = b""
                continue
            data = rest + chunk
            parts = data.split(b"\n")
            rest = parts.pop()
            if len(rest) > CHUNK * 4:  # an enormous line with no newline: flush it as is
                parts.append(rest)
                rest = b""
            if parts:
                sink(stream, [p.decode("utf-8", "replace").rstrip("\r") for p in parts])
        if rest:
            sink(stream, [rest.decode("utf-8", "replace").rstrip("\r")])
    except OSError:
        pass
    finally:
        if counted and skipped is not None:
            skipped(counted)
        try:
            pipe.close()
        except OSError:
            pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def record_group(folder, node_id: str, pgid: int, token: str = "") -> None:
    """Note a running node's process group and marker, so a later recovery can stop it if this process dies."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{node_id}.pgid").write_text(f"{pgid} {process_start_time(pgid) or '-'} {token}\n")


def forget_group(folder, node_id: str) -> None:
    try:
        (folder / f"{node_id}.pgid").unlink()
    except FileNotFoundError:
        pass


def stop_orphans(folder) -> int:
    """Kill what a dead run left running: the process groups noted by `record_group`, and every process
    marked with the run's id (`folder` is the run's `_groups` folder); returns how many were found."""
    folder = Path(folder)
    stopped = 0
    if folder.is_dir():
        for note in folder.glob("*.pgid"):
            try:
                pgid_s, start, *_ = note.read_text().split() + ["-"]
                pgid = int(pgid_s)
            except (OSError, ValueError):
                continue
            now = process_start_time(pgid)
            if now is not None and start != "-" and now != start:
                note.unlink(missing_ok=True)  # that pid now belongs to someone else
                continue
            if _group_alive(pgid):
                _signal_group(pgid, signal.SIGKILL)
                stopped += 1
            note.unlink(missing_ok=True)
    run_id = folder.parent.name
    if run_id:
        stopped += stop_marked(run_id + "/", prefix=True)
    return stopped


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process, so a reused pid is not mistaken for a live run."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
        return data.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int | None, start: str | None, host: str | None) -> bool:
    """Whether the process that wrote a record (pid, its start time, its host) still runs."""
    if not pid:
        return False
    if host and host != socket.gethostname():
        return True  # cannot tell from here; leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start_time(pid)
    return start is None or now is None or now == start
