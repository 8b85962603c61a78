"""The run guard: a tiny watcher that stops runs' node processes when Pipeloom dies.

Started once per Pipeloom process by `process._Watcher` as `python -I -S guard.py` with
the read end of a pipe as stdin; Pipeloom keeps the write end. Every process a node
starts carries PIPELOOM_NODE_TOKEN=<run>/<node>/<random> in its environment. Pipeloom
writes one line per event:

    +<run>      a run began
    -<token>    a node attempt of a begun run finished: sweep that token's leftovers
    =<run>      the run ended: sweep anything still marked with it, and forget it

The sweeps happen here, off Pipeloom's hot path, gathered: the nodes that finish within
GATHER seconds of each other share one /proc scan. When the pipe reads end-of-file,
Pipeloom has exited, by any means (kill -9 included, since the kernel closes a dead
process's files): the guard then SIGKILLs every process marked with a run that has
not ended, and exits.

It runs as a plain script (no package imports) so it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

TOKEN_VAR = b"PIPELOOM_NODE_TOKEN="
# A sweep waits this long for more nodes to finish, so a run of many short nodes costs a few /proc scans, not
# one per node (each reads every process's environment: ~0.5 ms with 80 processes, more on a busy machine).
GATHER = 0.1


def marked(exact: list[bytes], prefixes: list[bytes] = ()) -> list[int]:
    """Pids whose environment holds PIPELOOM_NODE_TOKEN=<one of exact>, or a value starting with a prefix."""
    wants = [b"\0" + TOKEN_VAR + n + b"\0" for n in exact] + [b"\0" + TOKEN_VAR + n for n in prefixes]
    me = os.getpid()
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:  # no /proc (not Linux): nothing can be found this way
        return []
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = b"\0" + fh.read() + b"\0"
        except OSError:
            continue
        if any(w in env for w in wants):
            found.append(int(name))
    return found


def sweep(exact: list[bytes], prefixes: list[bytes] = ()) -> None:
    """SIGKILL every marked process, again until none is left (a fork may race the first pass)."""
    for _ in range(20):
        pids = marked(exact, prefixes)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def main() -> None:
    runs = {a.encode() for a in sys.argv[1:]}
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for Pipeloom, which then cancels the run
    fd = sys.stdin.fileno()
    pending = b""
    tokens: list[bytes] = []
    ended: list[bytes] = []
    due = None  # when the sweep for what is noted must happen
    while True:
        wait = None if due is None else max(0.0, due - time.monotonic())
        if select.select([fd], [], [], wait)[0]:
            data = os.read(fd, 65536)
            if not data:
                break
            pending += data
            lines, _, pending = pending.rpartition(b"\n")
            for ln in lines.split(b"\n"):
                kind, value = ln[:1], ln[1:]
                if kind == b"+":
                    runs.add(value)
                elif kind == b"-" and value.split(b"/", 1)[0] in runs:
                    tokens.append(value)
                elif kind == b"=" and value in runs:
                    runs.discard(value)
                    ended.append(value + b"/")
            if (tokens or ended) and due is None:
                due = time.monotonic() + GATHER
        if due is not None and time.monotonic() >= due:
            sweep(tokens, ended)  # one /proc scan for everything that finished meanwhile
            tokens, ended, due = [], [], None
    if runs or tokens or ended:  # Pipeloom died or exited: nothing of its unfinished runs may stay
        sweep(tokens, ended + [r + b"/" for r in runs])


if __name__ == "__main__":
    main()
