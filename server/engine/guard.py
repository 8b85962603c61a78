"""The run guard: a tiny watcher that stops a run's node processes when Pipeloom dies.

Started by `process.RunGuard` as `python -S guard.py RUN_ID` with the read end of a
pipe as stdin; Pipeloom keeps the write end. Every process a node starts carries
PIPELOOM_NODE_TOKEN=<run>/<node>/<random> in its environment. Pipeloom writes one
line per finished node (`-<token>`), and the guard sweeps that token's leftovers
off Pipeloom's hot path. When the pipe reads end-of-file, Pipeloom has exited, by
any means (kill -9 included, since the kernel closes a dead process's files): the
guard then SIGKILLs every process marked with this run, and exits.

It runs as a plain script (no package imports) so it starts in a few milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys

TOKEN_VAR = b"PIPELOOM_NODE_TOKEN="


def marked(needles: list[bytes], *, prefix: bool) -> list[int]:
    """Pids whose environment holds PIPELOOM_NODE_TOKEN=<one of needles> (or a value starting with one)."""
    wants = [b"\0" + TOKEN_VAR + n + (b"" if prefix else b"\0") for n in needles]
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


def sweep(needles: list[bytes], *, prefix: bool) -> None:
    """SIGKILL every marked process, again until none is left (a fork may race the first pass)."""
    for _ in range(20):
        pids = marked(needles, prefix=prefix)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def main() -> None:
    run_id = sys.argv[1].encode()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for Pipeloom, which then cancels the run
    fd = sys.stdin.fileno()
    pending = b""
    while True:
        data = os.read(fd, 65536)  # all the lines written since the last sweep: one /proc scan for them all
        if not data:
            break
        pending += data
        lines, _, pending = pending.rpartition(b"\n")
        tokens = [ln[1:] for ln in lines.split(b"\n") if ln.startswith(b"-" + run_id + b"/")]
        if tokens:
            sweep(tokens, prefix=False)
    sweep([run_id + b"/"], prefix=True)  # the run ended, or Pipeloom died: nothing of it may stay


if __name__ == "__main__":
    main()
