"""Content hashes for cache keys and artifact records."""

from __future__ import annotations

import hashlib
import json
import os
import time

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
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    if max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - RACY_S * 1e9:
        if len(_memo) > 4096:
            _memo.clear()
        _memo[key] = digest
    return digest


def text_sha256(text: str | bytes) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.sha256(text).hexdigest()


def json_sha256(obj) -> str:
    return text_sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str))
