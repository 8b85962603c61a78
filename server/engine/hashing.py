"""Content hashes for cache keys and artifact records."""

from __future__ import annotations

import json
import os
import time

try:  # CPython's own sha256: nothing to load, where hashlib's OpenSSL costs a cold CLI process ~3 ms to import
    from _sha2 import sha256 as _small_sha256  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256 as _small_sha256  # Python 3.11
    except ImportError:
        from hashlib import sha256 as _small_sha256

# Files at least this big are hashed by OpenSSL (hashlib), about 4x faster per byte than the built-in one.
BIG_FILE = 1 << 20

_memo: dict[tuple, str] = {}
# A file changed this recently may change again within the same timestamp tick, unseen by its mtime and ctime:
# its hash is not remembered (as git treats "racily clean" files).
RACY_S = 2.0


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, remembered while its inode, size, mtime and ctime stay the same."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    found = _memo.get(key)
    if found is not None:
        return found
    with open(path, "rb") as fh:
        if st.st_size < BIG_FILE:
            digest = _small_sha256(fh.read()).hexdigest()
        else:
            import hashlib

            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - RACY_S * 1e9:
        if len(_memo) > 4096:
            _memo.clear()
        _memo[key] = digest
    return digest


def text_sha256(text: str | bytes) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return _small_sha256(text).hexdigest()


def json_sha256(obj) -> str:
    return text_sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str))
