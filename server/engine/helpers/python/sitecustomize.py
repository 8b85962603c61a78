"""Run by Python as it starts a node's program: printed lines reach Pipeloom live, without a system call
for every print.

A node's stdout is a pipe, which Python buffers in 8 KB blocks: alone, a node's first lines would show only
when a block fills or the program ends. Running unbuffered (`-u`) shows each line at once but costs two
system calls per `print`, which makes a program that prints a lot two or three times slower. So here stdout
keeps its block buffer and a background thread flushes it every FLUSH_EVERY seconds, and stderr flushes
stdout before each of its writes, so the lines of the two streams keep their order. Nothing changes when
the program asked for unbuffered output itself (`-u` or PYTHONUNBUFFERED), or when stdout is a terminal.

Then the `sitecustomize` of the program's own environment, if it has one, is imported as if this one were
not in the way.
"""

import os
import sys

FLUSH_EVERY = 0.05


class _StderrFirstFlushingStdout:
    """sys.stderr as it was, except that every write first flushes what stdout holds."""

    def __init__(self, err, out):
        self._err = err
        self._out = out

    def write(self, text):
        try:
            self._out.flush()
        except (OSError, ValueError):
            pass
        return self._err.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._err, name)


def _install():
    out, err = sys.stdout, sys.stderr
    if out is None or err is None or getattr(out, "write_through", True):  # -u or PYTHONUNBUFFERED: as asked
        return
    try:
        if out.isatty():
            return
    except (OSError, ValueError):
        return
    # _thread is built in: a program pays no import for this, and no more than a lock and a thread
    import _thread
    import atexit

    state = {}

    def flush_now_and_then(wake, done):
        try:
            while not wake.acquire(timeout=FLUSH_EVERY):  # a timeout: time to flush; acquired: time to stop
                try:
                    out.flush()
                except (OSError, ValueError):  # the pipe closed, or the program closed stdout
                    return
        finally:
            done.release()

    def start():
        wake, done = _thread.allocate_lock(), _thread.allocate_lock()
        wake.acquire()
        done.acquire()
        state["wake"], state["done"] = wake, done
        _thread.start_new_thread(flush_now_and_then, (wake, done))

    def finish():  # before the interpreter's own last flush, so no thread of ours holds stdout then
        wake, done = state.pop("wake", None), state.pop("done", None)
        if wake is not None:
            wake.release()
            done.acquire(timeout=1.0)

    sys.stderr = _StderrFirstFlushingStdout(err, out)
    start()
    atexit.register(finish)
    os.register_at_fork(after_in_child=start)  # threads do not survive fork(): a forked child gets its own


def _chain():
    """Import the environment's own sitecustomize, which this module hides by coming first on sys.path."""
    here = os.path.dirname(os.path.abspath(__file__))
    mine = sys.modules.pop("sitecustomize", None)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        import sitecustomize  # noqa: F401  (the environment's own, if any)
    except ImportError as exc:
        if exc.name != "sitecustomize":
            raise
        if mine is not None:
            sys.modules["sitecustomize"] = mine
    finally:
        sys.path[:] = saved


_install()
_chain()
