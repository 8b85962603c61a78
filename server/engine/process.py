"""Starting node programs, reading their output, and stopping every process a node started.

Each node runs in its own session, so its process group is ours to kill, and every
process it starts inherits PIPELOOM_NODE_TOKEN=<run>/<node>/<random>. A descendant
that leaves the group (setsid, a double-fork daemon) still carries the token, found
by scanning /proc/*/environ. A small guard process (guard.py, one per Pipeloom process,
shared by its runs) watches a pipe from Pipeloom and stops the marked processes of its
unfinished runs when Pipeloom dies, even by kill -9.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

from .applog import logger as log

CHUNK = 256 * 1024
PIPE_SIZE = 256 * 1024
SMALL_READ = 64 * 1024  # a read smaller than this, in a burst of reads, is followed by a nap
BURST = 8  # reads in a row, each soon after the last, before napping starts
NAP = 0.005
BURST_GAP = 0.02  # reads closer than this (a nap included) make a burst
TOKEN_VAR = "PIPELOOM_NODE_TOKEN"
GUARD_SCRIPT = Path(__file__).resolve().parent / "guard.py"



class OutputSink(Protocol):
    """Where a node's output goes (logs.NodeOutput)."""

    @property
    def full(self) -> bool: ...
    def feed(self, stream: str, data: bytes) -> None: ...
    def skip(self, count: int) -> None: ...
    def due(self) -> float | None: ...
    def tick(self) -> None: ...


def new_token(run_id: str, node_id: str) -> str:
    """The marker every process of one node attempt inherits: <run>/<node>/<random>."""
    return f"{run_id}/{node_id}/{os.urandom(4).hex()}"


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


class _Watcher:
    """The guard process (guard.py) of this Pipeloom process, shared by all its runs.

    Started on the first run and kept for the life of the process, so a run started by
    a trigger or the studio pays one pipe write, not an interpreter start. It is started
    with an empty environment: it carries no run's or test's marks, and nothing of a
    node's. If it dies (someone killed it), the next run starts another."""

    def __init__(self):
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._proc: subprocess.Popen | None = None
        self._pid = 0

    def send(self, line: str, *, start: bool = False) -> bool:
        """Write one line to the guard (starting it first if `start`); whether it was delivered."""
        data = line.encode() + b"\n"
        with self._lock:
            for _ in range(2):
                if start and not self._alive():
                    self._start()
                if self._fd is None:
                    return False
                try:
                    os.write(self._fd, data)  # a short write to a pipe is whole
                    return True
                except OSError:
                    self._drop()
            return False

    def _alive(self) -> bool:
        return (self._fd is not None and self._pid == os.getpid() and self._proc is not None
                and self._proc.poll() is None)

    def _drop(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._proc = None

    def _start(self) -> None:
        self._drop()
        r, w = os.pipe()  # both ends non-inheritable: node programs never hold the write end
        env = {k: os.environ[k] for k in ("PATH", "LD_LIBRARY_PATH") if k in os.environ}
        try:
            self._proc = subprocess.Popen([sys.executable, "-I", "-S", str(GUARD_SCRIPT)], stdin=r,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", env=env,
                                          start_new_session=True, close_fds=True)
            self._fd, self._pid = w, os.getpid()
        except OSError as exc:
            os.close(w)
            log.warning("could not start the run guard (%s); a crash may leave node processes behind", exc)
        finally:
            os.close(r)


_watcher = _Watcher()


class RunGuard:
    """One run's use of the guard process that stops the run's node processes if this process dies."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._started = False
        self._active = False

    def start(self) -> None:
        """Tell the guard about this run, starting the guard if needed (once per run; cheap to call again).
        Failing to start it is logged, not fatal."""
        if not self._started:
            self._started = True
            self._active = _watcher.send(f"+{self.run_id}", start=True)

    @property
    def active(self) -> bool:
        return self._active

    def released(self, token: str) -> None:
        """A node attempt finished: the guard sweeps any process still marked with `token`."""
        if self._active:
            self._active = _watcher.send(f"-{token}")

    def close(self) -> None:
        """End of the run: the guard sweeps what is left of it, off this thread (a /proc scan)."""
        if self._active:
            _watcher.send(f"={self.run_id}")
        self._active = False


class NodeProcess:
    """One node program in its own session, marked with `token` in its environment.

    Its output is read by whoever waits for it (`wait`, then `finish_reading`), with no
    reader threads: one poll over both pipes and the process itself (a pidfd), big reads,
    whole lines handed over in blocks. A program that writes line by line would wake the
    reader for every line; after a run of such small reads the reader naps a moment so the
    next read takes many lines at once.
    """

    def __init__(self, argv: list[str], *, cwd: str, env: dict[str, str], sink: OutputSink,
                 token: str | None = None, guard: RunGuard | None = None):
        """`sink` gets whole lines while it is not `full`; after that, output is only counted (`sink.skip`)."""
        self.token = token or new_token(env.get("PIPELOOM_RUN_ID", "run"), env.get("PIPELOOM_NODE_ID", "node"))
        self.guard = guard
        self.sink = sink
        env = {**env, TOKEN_VAR: self.token}
        before = boot_ticks()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, close_fds=True)
        self.pgid = self.proc.pid
        # The kernel's start time of the program lies between these two readings: a note of it costs nothing,
        # where reading /proc/<pid>/stat now would wait for the new program to finish loading (~0.5 ms).
        self.started = _tick_range(before, boot_ticks())
        self._pipes = {self.proc.stdout.fileno(): self.proc.stdout, self.proc.stderr.fileno(): self.proc.stderr}
        self._streams = {self.proc.stdout.fileno(): "out", self.proc.stderr.fileno(): "err"}
        self._rest = dict.fromkeys(self._streams, b"")
        self._counted = 0
        self._poll = select.poll()
        for fd in self._streams:
            _grow_pipe(fd)
            self._poll.register(fd, select.POLLIN)
        self._pidfd: int | None = None
        self._exited = False
        try:
            self._pidfd = os.pidfd_open(self.proc.pid)
            self._poll.register(self._pidfd, select.POLLIN)
        except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll the process on a short timer
            pass
        self._last_read = 0.0
        self._burst = 0

    def wait(self, timeout: float | None) -> int | None:
        """Read output until the program exits; its exit code, or None if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                return code
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._step(left)

    def finish_reading(self, timeout: float = 5.0) -> None:
        """After the program exits, read what is left in its pipes (something it started may still hold them)."""
        self._forget_pidfd()  # it stays readable once the program has exited
        deadline = time.monotonic() + timeout
        while self._streams and time.monotonic() < deadline:
            self._step(deadline - time.monotonic())
        if self._streams:
            stop_marked(self.token, pgid=self.pgid)  # something still holds the pipes open
            deadline = time.monotonic() + 2.0
            while self._streams and time.monotonic() < deadline:
                self._step(deadline - time.monotonic())
        for fd in list(self._streams):
            self._close(fd)
        if self._counted:
            self.sink.skip(self._counted)
            self._counted = 0
        self.sink.tick()

    def _forget_pidfd(self) -> None:
        if self._pidfd is not None:
            self._poll.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._exited = True

    def _step(self, left: float | None) -> None:
        """One poll, then read every pipe that has something (or has closed)."""
        wait = left
        due = self.sink.due()
        if due is not None:
            wait = due if wait is None else min(wait, due)
        if self._pidfd is None and not self._exited:
            wait = 0.05 if wait is None else min(wait, 0.05)
        events = self._poll.poll(None if wait is None else max(0, int(wait * 1000 + 0.999)))
        got = 0
        for fd, _ in events:
            if fd in self._streams:
                got += self._read(fd)
        if not got:
            if due is not None and self.sink.due() == 0:
                self.sink.tick()
            return
        now = time.monotonic()
        self._burst = self._burst + 1 if now - self._last_read < BURST_GAP else 0
        self._last_read = now
        if got < SMALL_READ and self._burst >= BURST and self._streams:
            time.sleep(NAP)

    def _read(self, fd: int) -> int:
        stream = self._streams[fd]
        try:
            chunk = os.read(fd, CHUNK)
        except OSError:
            chunk = b""
        if not chunk:
            rest = self._rest.pop(fd, b"")
            if rest and not self.sink.full:
                self.sink.feed(stream, rest + b"\n")  # a last line without a newline is still a line
            self._close(fd)
            return 0
        if self.sink.full:
            self._counted += chunk.count(b"\n")
            self._rest[fd] = b""
            return len(chunk)
        data = self._rest[fd] + chunk if self._rest[fd] else chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            self.sink.feed(stream, data[:cut] if cut < len(data) else data)
        rest = data[cut:]
        if len(rest) > CHUNK * 4:  # an enormous line with no newline: hand it over as is
            self.sink.feed(stream, rest + b"\n")
            rest = b""
        self._rest[fd] = rest
        return len(chunk)

    def _close(self, fd: int) -> None:
        self._streams.pop(fd, None)
        try:
            self._poll.unregister(fd)
        except (KeyError, ValueError):
            pass
        pipe = self._pipes.pop(fd, None)
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass

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


def _grow_pipe(fd: int) -> None:
    """A bigger pipe lets a fast writer run on while the reader naps (best effort)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (AttributeError, OSError):
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


GROUP_NOTES = "groups.txt"  # inside a run's `_groups` folder: where runs before `_groups.txt` kept them


def group_notes(folder) -> Path:
    """The file a run's group notes go to: `_groups.txt` beside the `_groups` folder callers name (a file in
    the run's folder, so noting the first group makes no folder)."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".txt")


def record_group(folder, node_id: str, pgid: int, token: str = "", started: str | None = None) -> None:
    """Note a running node's process group and marker, so a later recovery can stop it if this process dies.

    `started` is the leader's start time as `NodeProcess.started` gives it (read from /proc when not given).
    Lines are appended to one file per run (`forget_group` appends `- <node>`): appending costs a few
    microseconds where creating and removing a file per node costs a few hundred."""
    start = started or process_start_time(pgid) or "-"
    _append_note(folder, f"{node_id} {pgid} {start} {token}\n".encode())


def _append_note(folder, line: bytes) -> None:
    path = group_notes(folder)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)  # one short O_APPEND write: whole, even if this process is killed right after
    finally:
        os.close(fd)


def forget_group(folder, node_id: str) -> None:
    """The node's process group is gone: its note no longer counts."""
    try:
        _append_note(folder, f"- {node_id}\n".encode())
    except OSError:
        pass


def _noted_groups(folder: Path) -> list[tuple[int, str]]:
    """(pgid, start time) of every group noted for a run (`folder` is its `_groups`), in any of the formats."""
    live: dict[str, tuple[int, str]] = {}
    text = ""
    for path in (folder / GROUP_NOTES, group_notes(folder)):
        try:
            text += path.read_text(errors="replace")
        except OSError:
            pass
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "-":
            live.pop(parts[1], None)
        elif len(parts) >= 3 and parts[1].isdigit():
            live[parts[0]] = (int(parts[1]), parts[2])
    notes = list(live.values())
    for note in (folder.glob("*.pgid") if folder.is_dir() else ()):
        try:
            pgid_s, start, *_ = note.read_text().split() + ["-"]
            notes.append((int(pgid_s), start))
        except (OSError, ValueError):
            continue
    return notes


def stop_orphans(folder) -> int:
    """Kill what a dead run left running: the process groups noted by `record_group`, and every process
    marked with the run's id (`folder` is the run's `_groups` folder); returns how many were found."""
    folder = Path(folder)
    stopped = 0
    for pgid, start in dict(_noted_groups(folder)).items():
        now = process_start_time(pgid)
        if now is not None and not _same_start(start, now):
            continue  # that pid now belongs to someone else
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            stopped += 1
    if folder.is_dir():
        for note in folder.glob("*.pgid"):
            note.unlink(missing_ok=True)
        (folder / GROUP_NOTES).unlink(missing_ok=True)
    group_notes(folder).unlink(missing_ok=True)
    run_id = folder.parent.name
    if run_id:
        stopped += stop_marked(run_id + "/", prefix=True)
    return stopped


_TICK_NS = 10 ** 9 // (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def boot_ticks() -> int | None:
    """Now, in the units and clock of the start time in /proc/<pid>/stat (clock ticks since boot)."""
    try:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // _TICK_NS
    except (AttributeError, OSError):
        return None


def _tick_range(lo: int | None, hi: int | None) -> str | None:
    if lo is None or hi is None:
        return None
    return str(lo) if lo == hi else f"{lo}~{hi}"


def _same_start(noted: str, now: str) -> bool:
    """Whether a process's start time `now` is the one a note recorded: a tick, a `lo~hi` range of ticks,
    or `-` (unknown, which matches)."""
    if noted == "-" or noted == now:
        return True
    lo, sep, hi = noted.partition("~")
    if not sep:
        return False
    try:
        return int(lo) <= int(now) <= int(hi)
    except ValueError:
        return False


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process, so a reused pid is not mistaken for a live run."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
        return data.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def hostname() -> str:
    """This machine's name, as socket.gethostname() gives it (without importing socket)."""
    return os.uname().nodename


def process_alive(pid: int | None, start: str | None, host: str | None) -> bool:
    """Whether the process that wrote a record (pid, its start time, its host) still runs."""
    if not pid:
        return False
    if host and host != hostname():
        return True  # cannot tell from here; leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    now = process_start_time(pid)
    return start is None or now is None or now == start
