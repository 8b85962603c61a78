"""Starting node programs, reading their output, and stopping whole process groups."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from typing import Callable

LineSink = Callable[[str, list[str]], None]

CHUNK = 256 * 1024


class NodeProcess:
    """One node program in its own session (so its process group is ours to kill)."""

    def __init__(self, argv: list[str], *, cwd: str, env: dict[str, str], sink: LineSink):
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
        self.pgid = self.proc.pid
        self._readers = [
            threading.Thread(target=_pump, args=(self.proc.stdout, "out", sink), daemon=True),
            threading.Thread(target=_pump, args=(self.proc.stderr, "err", sink), daemon=True),
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
        """SIGTERM the whole group, then SIGKILL whatever is left after `grace` seconds."""
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not _group_alive(self.pgid):
                break
            time.sleep(0.02)
        _signal_group(self.pgid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def reap_group(self) -> None:
        """After the main program exits, stop anything it left behind in its group."""
        if _group_alive(self.pgid):
            _signal_group(self.pgid, signal.SIGKILL)

    def finish_reading(self, timeout: float = 5.0) -> None:
        for t in self._readers:
            t.join(timeout)
        if any(t.is_alive() for t in self._readers):
            self.reap_group()  # something still holds the pipes open
            for t in self._readers:
                t.join(2.0)


def _pump(pipe, stream: str, sink: LineSink) -> None:
    """Read big chunks and hand over whole lines; far faster than readline per line."""
    fd = pipe.fileno()
    rest = b""
    try:
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
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


def record_group(folder, node_id: str, pgid: int) -> None:
    """Note a running node's process group, so a later recovery can stop it if this process dies."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{node_id}.pgid").write_text(f"{pgid} {process_start_time(pgid) or ''}\n")


def forget_group(folder, node_id: str) -> None:
    try:
        (folder / f"{node_id}.pgid").unlink()
    except FileNotFoundError:
        pass


def stop_orphans(folder) -> int:
    """Kill the process groups a dead run left behind (as noted by `record_group`); returns how many."""
    stopped = 0
    if not folder.is_dir():
        return 0
    for note in folder.glob("*.pgid"):
        try:
            pgid_s, _, start = note.read_text().strip().partition(" ")
            pgid = int(pgid_s)
        except (OSError, ValueError):
            continue
        now = process_start_time(pgid)
        if now is not None and start and now != start:
            note.unlink(missing_ok=True)  # that pid now belongs to someone else
            continue
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            stopped += 1
        note.unlink(missing_ok=True)
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
