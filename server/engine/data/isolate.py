"""Large conversions run in a child process, so they never hold this process's GIL.

The child is the compiled converter (native.py) when it handles the pair and
the input; otherwise, or when it leaves the input to Python, a Python child.

An edge conversion of a 1 GB file keeps a CPU busy for seconds. In the
runner's process that would starve every thread the runner needs for the
nodes running beside it (reading their output, recording events); in a child
it costs them nothing but a core. The child reports its result as one JSON
line, and errors come back as the same exception classes with the same
messages, so callers cannot tell where the work happened.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from ..dataerrors import ConversionError, FormatError, MalformedDataError
from ..errors import NotFoundError
from . import formats

# Below this size a conversion takes well under a second: a child would cost more than it saves.
ISOLATE_BYTES = 8 << 20
_ROOT = str(Path(__file__).resolve().parents[3])


def _not_utf8_text(src: Path) -> MalformedDataError:
    return MalformedDataError(src, "holds text that cannot be written as UTF-8 (a lone surrogate,"
                                   " from an escape such as \\ud800 with no pair)")


def convert_in_process(src: Path, src_fmt: str, dst: Path, dst_fmt: str, workers: int = 1) -> int | None:
    """formats.convert, with text that cannot be encoded reported as malformed data."""
    try:
        return formats.convert(src, src_fmt, dst, dst_fmt, workers=workers)
    except UnicodeEncodeError:
        raise _not_utf8_text(src) from None


def convert_isolated(src_path: str | os.PathLike, src_fmt: str, dst_path: str | os.PathLike, dst_fmt: str,
                     *, threshold: int | None = None) -> int | None:
    """Convert like formats.convert; a source larger than `threshold` is converted in a child process."""
    src, dst = Path(src_path), Path(dst_path)
    limit = ISOLATE_BYTES if threshold is None else threshold
    try:
        big = src.stat().st_size > limit
    except OSError:
        big = False
    simple = src_fmt == dst_fmt or not formats.can_convert(src_fmt, dst_fmt)[0]
    if not big or simple or not (formats.FORMATS[src_fmt].is_records and formats.FORMATS[dst_fmt].is_records):
        return convert_in_process(src, src_fmt, dst, dst_fmt)
    from . import native

    tried = False
    if native.usable(src_fmt, dst_fmt):
        tried = True
        try:
            return native.convert_native(src, src_fmt, dst, dst_fmt)  # a child process of its own already
        except native.Fallback:
            pass
    return run_child(src, src_fmt, dst, dst_fmt, native_tried=tried)["count"]


def run_child(src: Path, src_fmt: str, dst: Path, dst_fmt: str, native_tried: bool = False) -> dict:
    """Convert in a child process; its report ({"count", "pid"}), or its error raised here.
    `native_tried`: the compiled converter already left this input to Python, so the child does not retry it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
    if native_tried:
        env["PIPELOOM_NATIVE_CONVERT"] = "0"
    # pyarrow's jemalloc pool: less peak memory and fewer page faults than its default pool for the
    # batch-by-batch parquet conversions (arrowio.py, columnar.py)
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    proc = subprocess.Popen([sys.executable, "-m", "server.engine.data.isolate", str(src), src_fmt, str(dst),
                             dst_fmt], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    try:
        out, err = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        report = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        if proc.returncode < 0 or b"MemoryError" in err:
            raise MemoryError(tail[0]) from None
        raise FormatError(f"{src.name}: the conversion stopped unexpectedly ({tail[0]})") from None
    if "error" in report:
        raise _error(report["error"])
    return report


_CLASSES = {"FormatError": FormatError, "ConversionError": ConversionError, "NotFoundError": NotFoundError}


def _error(e: dict) -> BaseException:
    kind = e["type"]
    if kind == "MalformedDataError":
        return MalformedDataError(e["path"], e["detail"], e.get("where"))
    if kind == "MemoryError":
        return MemoryError(e.get("message", ""))
    return _CLASSES.get(kind, FormatError)(e["message"])


def _report(exc: BaseException) -> dict:
    if isinstance(exc, MalformedDataError):
        return {"type": "MalformedDataError", "path": exc.path, "detail": exc.detail, "where": exc.where}
    if isinstance(exc, MemoryError):
        return {"type": "MemoryError", "message": str(exc)}
    for name in ("ConversionError", "NotFoundError", "FormatError"):
        if isinstance(exc, _CLASSES[name]):
            return {"type": name, "message": str(exc)}
    return {"type": "FormatError", "message": f"{type(exc).__name__}: {exc}"}


def _watch_parent(parent: int) -> None:
    """End this child when the process that started it is gone (it was killed, say)."""
    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            threading.Event().wait(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc (0 where there is none). Unlike ru_maxrss,
    VmHWM is not inherited across exec from the (maybe much larger) process that started us."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """The child: convert, then print one JSON line with the count or the error."""
    import resource

    src, src_fmt, dst, dst_fmt = (argv if argv is not None else sys.argv[1:])
    start_kb = _status_kb("VmRSS")
    _watch_parent(os.getppid())
    gc.disable()  # parsed records hold no cycles; collecting would only rescan millions of objects
    try:
        from .parallel import default_workers

        count = convert_in_process(Path(src), src_fmt, Path(dst), dst_fmt, default_workers())
        peak_kb = max(_status_kb("VmHWM"), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        report = {"count": count, "pid": os.getpid(), "start_rss_kb": start_kb, "peak_rss_kb": peak_kb}
    except Exception as exc:  # every failure, MemoryError included, goes back to the parent as data
        report = {"error": _report(exc)}
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
