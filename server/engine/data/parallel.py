"""A conversion from json or ndjson spread over worker processes, one block per task.

With PIPELOOM_CONVERT_WORKERS above 1, the reader (this process) only cuts
the source into blocks of whole records, which is cheap; workers parse and
encode a block each; the reader writes the encoded blocks in file order. At most two blocks per worker are in flight, so
memory stays bounded whatever the file size.

Order-dependent state stays with the reader: for csv, a worker encodes its
block under the columns known when it was sent plus the block's new keys,
and the reader accepts the block when those agree with the columns so far
(rows lacking later columns are padded when the file is finished, as in the
one-process path), or encodes it again itself when they do not. Parquet
output keeps to one process: its schema is decided batch by batch.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
from pathlib import Path

from . import fast

WORKERS_ENV = "PIPELOOM_CONVERT_WORKERS"


def default_workers() -> int:
    """Worker processes for a large conversion: PIPELOOM_CONVERT_WORKERS, else 1.

    One by default: the conversion then takes one core, and the nodes running
    beside it keep the others (on 2 cores, two workers slowed a neighbour to a
    quarter of its speed and gained little)."""
    try:
        return max(1, int(os.environ[WORKERS_ENV]))
    except (KeyError, ValueError):
        return 1


def supports(src_fmt: str, dst_fmt: str) -> bool:
    """Whether this pair converts in parallel."""
    return src_fmt in ("json", "ndjson") and dst_fmt in ("json", "ndjson", "csv")


def _records(src_fmt: str, path: str, block: bytes, first: int) -> list[dict]:
    if src_fmt == "json":
        return fast.json_records(block, Path(path))
    return fast.ndjson_records(block, first, Path(path))


def _task(args: tuple) -> tuple:
    """In a worker: parse one block and encode it; ("ok", n, columns, bytes), ("fallback",) or ("error", report)."""
    from .isolate import _report

    src_fmt, path, block, first, dst_fmt, columns = args
    try:
        rows = _records(src_fmt, path, block, first)
        if dst_fmt == "csv":
            used = fast.block_columns(rows, columns) if columns is not None else None
            return "ok", len(rows), used, fast.encode_csv_rows(rows, used) if rows else b""
        text = fast.json_lines(rows, "\n" if dst_fmt == "ndjson" else ",\n")
        return "ok", len(rows), None, text.encode()
    except fast.Fallback:
        return ("fallback",)
    except UnicodeEncodeError:
        return ("fallback",)
    except Exception as exc:  # a MalformedDataError naming its line, mostly
        return "error", _report(exc)


def _init_worker(parent: int) -> None:
    from .isolate import _watch_parent

    _watch_parent(parent)


def _blocks(src: Path, src_fmt: str):
    if src_fmt == "json":
        for body in fast.json_bodies(src):
            yield body, 0
    else:
        yield from fast.ndjson_blocks(src)


def convert_parallel(src: Path, src_fmt: str, dst: Path, dst_fmt: str, workers: int) -> int:
    """Convert json/ndjson to json/ndjson/csv with `workers` processes; Fallback when the exact path must."""
    from .formats import _AtomicOutput
    from .isolate import _error

    if fast.orjson is None:
        raise fast.Fallback
    ctx = multiprocessing.get_context("fork")
    out = _AtomicOutput(dst)
    count = 0
    with ctx.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
        try:
            with out.create() as f:
                sink = fast.CsvSink(f) if dst_fmt == "csv" else None
                pending: collections.deque = collections.deque()

                def settle() -> None:
                    nonlocal count
                    block, first, result = pending.popleft()
                    reply = result.get()
                    if reply[0] == "fallback":
                        raise fast.Fallback
                    if reply[0] == "error":
                        raise _error(reply[1])
                    _, n, used, data = reply
                    if not n:
                        return
                    if sink is not None:
                        if not sink.merge(used, data):
                            sink.write(_records(src_fmt, str(src), block, first))
                    elif dst_fmt == "ndjson":
                        f.write(data + b"\n")
                    else:
                        f.write((b",\n" if count else b"[\n") + data)
                    count += n

                for block, first in _blocks(src, src_fmt):
                    columns = list(sink.columns) if sink is not None else None
                    task = (src_fmt, str(src), block, first, dst_fmt, columns)
                    pending.append((block, first, pool.apply_async(_task, (task,))))
                    if len(pending) >= 2 * workers:
                        settle()
                while pending:
                    settle()
                if dst_fmt == "json":
                    f.write(b"[]\n" if count == 0 else b"\n]\n")
                segments = sink.finish() if sink is not None else []
            fast.commit_csv(out, dst, sink, segments)
        except BaseException:
            pool.terminate()
            out.discard()
            raise
    return count
