"""Invoke keys: secrets that let other programs call one pipeline's http triggers, and nothing else.

A key is shown once, when it is made; only its SHA-256 is kept. Keys are long
random strings, so a plain hash is enough (there is nothing to guess), and
checking one is a single indexed look-up plus a constant-time compare.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "plk_"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def new_secret() -> str:
    """A fresh key: the prefix (so it is recognisable in a leak scan) and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def name_problem(name: str) -> str | None:
    """Why a key name is not usable, or None."""
    if not NAME_RE.match(name or ""):
        return f"key name {name!r} must be 1-64 letters, digits, `.`, `_` or `-`"
    return None


def key_allows(row: dict, pipeline_id: str, trigger_id: str) -> bool:
    """Whether a stored key (not revoked) opens this pipeline's trigger."""
    if row.get("revoked_at"):
        return False
    if row.get("pipeline_id") != pipeline_id:
        return False
    return row.get("trigger_id") in (None, "", trigger_id)
