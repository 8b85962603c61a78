"""The compiled converter (native/, a small dependency-free Rust program), built once with cargo.

It converts json, ndjson and csv into each other in one streaming pass at
several hundred MB/s in a few MB of memory, byte for byte what the Python
conversion writes (parquet is pyarrow's: columnar.py; arrowio.py, for which
this converter parses json and ndjson into Arrow column buffers, output format
`arrow`: native/src/arrow_cols.rs; and arrowpipe.py, which hands it the column
buffers of the record batches pyarrow reads from parquet, source `-` and format
`arrow`, to write as text: native/src/arrow_text.rs). With
`--scan` it counts the records of a json, ndjson or csv file and finds the
checkpoints of its page index (pageindex.py), 64 bytes at a time with AVX2
when the processor has it, else SSE2, else eight bytes at a time in a u64
(PIPELOOM_SCAN_SIMD=avx2, popcnt, sse2 or plain picks one, for tests). It
decides nothing on its own: on input whose meaning the Python path defines
(malformed text, a duplicate key, a number beyond a double, a lone
surrogate, very deep nesting, a record that is not an object) it stops and
says "fallback", and the caller converts in Python, which also words every
error.

The binary is built the first time a large conversion needs it, through
the Rust runtime's shared cargo target directory, and kept in the build
cache keyed by the hash of its source and the cargo version. Without cargo,
or when the build fails, conversions take the Python paths (once per
process, the reason is logged). PIPELOOM_NATIVE_CONVERT=0 turns it off.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from pathlib import Path

from ..hashing import file_sha256, json_sha256

log = logging.getLogger("pipeloom")

SOURCE = Path(__file__).resolve().parent / "native"
ENV = "PIPELOOM_NATIVE_CONVERT"
PAIRS = {("json", "ndjson"), ("json", "csv"), ("ndjson", "json"), ("ndjson", "csv"), ("csv", "json"), ("csv", "ndjson")}
FALLBACK_EXIT = 3

_lock = threading.Lock()
_built: dict[str, str | None] = {}  # cache key -> binary path, or None when it cannot be built


class Fallback(Exception):
    """The compiled converter left this input to the Python conversion (the reason is the message)."""


def enabled() -> bool:
    """False when PIPELOOM_NATIVE_CONVERT=0."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def supports(src_fmt: str, dst_fmt: str) -> bool:
    """Whether the compiled converter handles this pair."""
    return (src_fmt, dst_fmt) in PAIRS


def _sources() -> list[Path]:
    # every Rust file under src/, modules in folders too: each one is part of the build and of its cache key
    return [SOURCE / "Cargo.toml", *sorted((SOURCE / "src").rglob("*.rs"))]


def binary(build: bool = True) -> str | None:
    """The converter's path, built with cargo first if need be; None without cargo or when the build fails."""
    from .. import toolchains

    cargo = toolchains.resolve("cargo")
    if not cargo:
        return None
    key = json_sha256({"files": {p.relative_to(SOURCE).as_posix(): file_sha256(p) for p in _sources()},
                       "cargo": toolchains.version_of("cargo")})[:24]
    with _lock:
        if key in _built:
            return _built[key]
        from ..runtimes.base import cache_dir, locked, run_build

        target = cache_dir("bin") / f"pipeloom-convert-{key}"
        if target.exists():
            _built[key] = str(target)
            return str(target)
        if not build:
            return None
        try:
            with locked(target):
                if not target.exists():
                    # built from a copy: cargo writes Cargo.lock beside the manifest, and the package may be read-only
                    proj = cache_dir("rust-projects") / f"pipeloom-convert-{key}"
                    for p in _sources():
                        dest = proj / p.relative_to(SOURCE)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        dest.write_bytes(p.read_bytes())
                    lines: list[str] = []
                    run_build([cargo, "build", "--release", "--manifest-path", str(proj / "Cargo.toml")],
                              lines.append, env={"CARGO_TARGET_DIR": str(cache_dir("cargo-target")),
                                                 "CARGO_TERM_COLOR": "never"}, what="cargo build")
                    built = cache_dir("cargo-target") / "release" / "pipeloom-convert"
                    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
                    tmp.write_bytes(built.read_bytes())
                    tmp.chmod(0o755)
                    os.replace(tmp, target)
        except Exception as exc:  # no compiler, a failed build: the Python paths convert instead
            log.info("the compiled converter is unavailable, conversions use Python: %s", exc)
            _built[key] = None
            return None
        _built[key] = str(target)
        return str(target)


def usable(src_fmt: str, dst_fmt: str) -> str | None:
    """The converter's path when it is on, handles this pair and can be built; else None."""
    if not enabled() or not supports(src_fmt, dst_fmt):
        return None
    return binary()


def report(stdout: bytes) -> dict:
    """The JSON object the converter prints last (its count, total or the reason it fell back); {} when it
    printed none."""
    try:
        found = json.loads(stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return found if isinstance(found, dict) else {}


def run(exe: str, src: Path, src_fmt: str, dst: Path, dst_fmt: str) -> int:
    """Convert `src` into `dst` (a temporary path the caller publishes) with the converter at `exe`;
    the record count, or Fallback."""
    try:
        proc = subprocess.run([exe, str(src), src_fmt, str(dst), dst_fmt], stdin=subprocess.DEVNULL,
                              capture_output=True)
    except OSError as exc:
        raise Fallback(f"cannot start the converter: {exc}") from None
    said = report(proc.stdout)
    if proc.returncode == 0 and isinstance(said.get("count"), int):
        return said["count"]
    dst.unlink(missing_ok=True)
    why = said.get("fallback") or proc.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit {proc.returncode}"
    raise Fallback(why)


def convert_native(src: Path, src_fmt: str, dst: Path, dst_fmt: str, exe: str | None = None) -> int:
    """Convert with the compiled converter, atomically; Fallback when it is unavailable or leaves the input
    to Python."""
    from .formats import _AtomicOutput

    exe = exe or usable(src_fmt, dst_fmt)
    if exe is None:
        raise Fallback("the compiled converter is not available")
    out = _AtomicOutput(dst)
    try:
        count = run(exe, src, src_fmt, out.tmp, dst_fmt)
        out.commit()
    except BaseException:
        out.discard()
        raise
    return count
