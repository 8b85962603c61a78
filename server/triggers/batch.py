"""Turning a batch of event values into the file an entry input expects.

Each value is one record. A value that is not valid in the input's format is
set aside with the reason, so it can go to a dead-letter topic instead of into
the run. The file appears only when complete (temporary file + os.replace).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from server.engine.data.formats import RecordWriter, json_text

RECORD_FORMATS = ("json", "ndjson", "csv", "parquet")
BATCH_FORMATS = RECORD_FORMATS + ("text",)


@dataclass(frozen=True)
class Rejected:
    """A value left out of the batch file, with why."""

    index: int
    reason: str


def _parse_json(raw: bytes) -> object:
    text = raw.decode("utf-8")  # RFC 8259: UTF-8 only
    return json.loads(text)


def check_value(raw: bytes | None, fmt: str) -> tuple[object | None, str | None]:
    """(parsed value, None) when `raw` is one valid record of `fmt`, else (None, reason)."""
    if raw is None:
        return None, "the message has no value"
    if fmt == "text":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"not UTF-8 text (byte {exc.start})"
        if "\x00" in text:
            return None, "text holds a NUL byte"
        return text, None
    try:
        value = _parse_json(raw)
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start}); JSON must be UTF-8"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"
    if fmt in ("csv", "parquet") and not isinstance(value, dict):
        return None, f"a {fmt} record must be a JSON object, got {type(value).__name__}"
    return value, None


def write_batch(values: Sequence[bytes | None], fmt: str, dest: str | os.PathLike) -> tuple[int, list[Rejected]]:
    """Write every valid value to `dest` in `fmt`; returns (records written, rejected values)."""
    if fmt not in BATCH_FORMATS:
        raise ValueError(f"a batch cannot feed a `{fmt}` input; use one of {', '.join(BATCH_FORMATS)}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    rejected: list[Rejected] = []
    good: list[tuple[bytes, object]] = []
    for i, raw in enumerate(values):
        value, why = check_value(raw, fmt)
        if why is not None:
            rejected.append(Rejected(i, why))
        else:
            good.append((raw, value))  # type: ignore[arg-type]
    if fmt in ("csv", "parquet"):
        columns: dict[str, None] = {}
        for _, v in good:
            columns.update(dict.fromkeys(v))  # type: ignore[arg-type]
        with RecordWriter(dest, fmt, columns=list(columns)) as w:
            for _, v in good:
                w.write(v)  # type: ignore[arg-type]
        return len(good), rejected
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as fh:
            if fmt == "text":
                for _, v in good:
                    fh.write(str(v).rstrip("\r\n").encode("utf-8") + b"\n")
            elif fmt == "ndjson":
                for raw, v in good:
                    fh.write(_one_line(raw, v) + b"\n")
            else:
                fh.write(b"[")
                for j, (raw, v) in enumerate(good):
                    fh.write((b",\n" if j else b"\n") + _one_line(raw, v))
                fh.write(b"\n]\n" if good else b"]\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(good), rejected


def _one_line(raw: bytes, value: object) -> bytes:
    """The value's own bytes when they fit on one line, else a compact re-encoding."""
    stripped = raw.strip()
    if b"\n" not in stripped and b"\r" not in stripped:
        return stripped
    return json_text(value, compact=True).encode("utf-8")
