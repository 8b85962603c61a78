"""Find each runtime's tool once, by absolute path.

Version managers put shims on PATH (a pyenv `python3` shim costs ~100 ms a
call); resolving once to the real binary keeps per-node overhead small.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys


@functools.lru_cache(maxsize=None)
def resolve(tool: str) -> str | None:
    """Absolute path of `tool`, following symlinks and pyenv-style shims; None if absent."""
    if tool in ("python", "python3"):
        return sys.executable
    found = shutil.which(tool)
    if not found:
        return None
    # Keep the PATH entry's name: rustup-style multiplexers pick the tool from argv[0],
    # so following the symlink to `rustup` would break `cargo`.
    real = os.path.abspath(found)
    if "/shims/" in found and shutil.which("pyenv"):
        try:
            out = subprocess.run(["pyenv", "which", tool], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return real


def clear() -> None:
    """Forget resolved paths (tests change PATH)."""
    resolve.cache_clear()


@functools.lru_cache(maxsize=None)
def version_of(tool: str, *args: str) -> str:
    """The first line a tool prints for its version flag; part of build cache keys."""
    path = resolve(tool)
    if not path:
        return "absent"
    try:
        out = subprocess.run([path, *(args or ("--version",))], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
