"""csv to parquet at columnar speed: pyarrow's multithreaded csv reader, checked by the compiled scanner.

pyarrow reads csv more leniently than Pipeloom's strict reader (csvread.py):
it takes a NUL byte, text after a closing quote or a quote inside an
unquoted field as they come. So the compiled scanner (native.py, `--scan`)
reads the same file beside it, in its own process, and the result counts
only when the scanner found nothing it leaves to Python and the same number
of rows. Everything else pyarrow would read differently makes it fail
(a short or long row, text that is not UTF-8, a header that is not the one
the strict reader sees), and the caller converts with the record-by-record
rules instead. Every column is text, as it is on the exact path.
"""

from __future__ import annotations

import subprocess
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import native


class Fallback(Exception):
    """This path cannot vouch for the input; the caller converts another way."""


def csv_to_parquet(src: Path, dst: Path) -> int:
    """Convert a csv file to parquet (all columns text), atomically; Fallback when another path must."""
    exe = native.binary() if native.enabled() else None
    if exe is None:
        raise Fallback("the compiled scanner is not available")
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ..dataerrors import MalformedDataError
    from .fast import csv_header
    from .formats import BATCH_ROWS, _AtomicOutput

    try:
        header = csv_header(src)
    except MalformedDataError:
        raise Fallback("the header") from None
    if not header:
        raise Fallback("no header")
    schema = pa.schema([pa.field(c, pa.string()) for c in header])
    check = subprocess.Popen([exe, "--scan", str(src), "csv", str(1 << 62)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = _AtomicOutput(dst)
    count = 0
    writer = None
    try:
        try:
            reader = pacsv.open_csv(
                src, read_options=pacsv.ReadOptions(block_size=1 << 20),  # larger blocks: more memory, no faster
                parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in header},
                                                     strings_can_be_null=False, quoted_strings_can_be_null=False))
            if reader.schema.names != header:
                raise Fallback("pyarrow reads another header")
            writer = pq.ParquetWriter(str(out.tmp), schema)
            pending: list = []
            rows = 0
            writes: deque = deque()
            with ThreadPoolExecutor(1) as pool:  # a row group is encoded while the next rows are read
                try:
                    for batch in reader:
                        pending.append(batch)
                        rows += batch.num_rows
                        if rows >= BATCH_ROWS:  # row groups of about the size the exact path writes
                            writes.append(pool.submit(writer.write_table, pa.Table.from_batches(pending, schema)))
                            count += rows
                            pending, rows = [], 0
                            while len(writes) > 2:
                                writes.popleft().result()
                    if pending or not count:
                        writes.append(pool.submit(writer.write_table, pa.Table.from_batches(pending, schema)))
                        count += rows
                    while writes:
                        writes.popleft().result()
                finally:
                    for w in writes:
                        w.cancel()
            writer.close()
            writer = None
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise Fallback(f"pyarrow: {exc}") from None
        got, _ = check.communicate()
        report = native.report(got)
        if check.returncode != 0 or report.get("total") != count:
            raise Fallback(report.get("fallback") or "the scanner counts other rows")
        out.commit()
    except BaseException:
        if check.poll() is None:
            check.kill()
        check.wait()
        if writer is not None:
            writer.close()
        out.discard()
        raise
    return count
