"""Workspace layout and the one guard for client-influenced paths."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UnsafePathError

PIPELINE_SUFFIXES = (".pipeline.yaml", ".pipeline.yml", ".pipeline.json")
STATE_DIR = ".pipeloom"
NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, tmpfs)
PATH_MAX = 4096  # bytes in a whole path


class BadPathError(UnsafePathError):
    """A path no file system can take: a NUL byte, a lone surrogate, a name or path too long."""


def check_path_text(candidate, what: str = "path") -> str:
    """The path as text, or BadPathError naming `what` when no file system could take it."""
    text = os.fsdecode(candidate) if isinstance(candidate, bytes) else os.fspath(candidate)
    if "\x00" in text:
        raise BadPathError(f"{what} {_quoted(text)} contains a NUL byte")
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPathError(f"{what} {_quoted(text)} is not valid Unicode text (it has a lone surrogate)") from None
    if len(raw) > PATH_MAX:
        raise BadPathError(f"{what} {_quoted(text)} is too long ({len(raw):,} bytes; at most {PATH_MAX:,})")
    for part in text.split("/"):
        if len(part.encode("utf-8")) > NAME_MAX:
            raise BadPathError(f"{what} {_quoted(text)} has a name longer than {NAME_MAX} bytes")
    return text


def _quoted(text: str, limit: int = 80) -> str:
    """`text` in backticks, printable anywhere: NULs and lone surrogates escaped, long ones cut."""
    shown = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")
    if len(shown) > limit:
        shown = f"{shown[:limit]}… ({len(shown):,} characters)"
    return f"`{shown}`"


def safe_path(root: str | os.PathLike, candidate: str | os.PathLike, *, what: str = "path") -> Path:
    """Resolve `candidate` under `root` (symlinks included) or raise UnsafePathError
    (BadPathError when the path could not name a file at all)."""
    check_path_text(candidate, what)
    root_r = Path(root).resolve()
    cand = Path(candidate)
    if not cand.is_absolute():
        cand = root_r / cand
    check_path_text(cand, what)
    try:
        resolved = cand.resolve()
    except (OSError, RuntimeError) as exc:  # ENAMETOOLONG after following links, a symlink loop
        raise BadPathError(f"{what} {_quoted(str(candidate))} cannot be resolved: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    try:
        resolved.relative_to(root_r)
    except ValueError:
        raise UnsafePathError(f"{what} {_quoted(str(candidate))} is outside the workspace {root_r}") from None
    return resolved


def is_pipeline_file(name: str) -> bool:
    return name.endswith(PIPELINE_SUFFIXES)


def strip_pipeline_suffix(name: str) -> str:
    for s in PIPELINE_SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def pipeline_id_for(workspace: str | os.PathLike, path: str | os.PathLike) -> str:
    """A stable, URL-friendly id: the path relative to the workspace, without
    the pipeline suffix, with folders joined by dots (`nodes/demo.pipeline.yaml`
    becomes `nodes.demo`)."""
    ws = Path(workspace).resolve()
    p = Path(path).resolve()
    try:
        rel = p.relative_to(ws).as_posix()
    except ValueError:
        # a link leading out of the workspace keeps the id of the place it sits in
        link = Path(os.path.abspath(path))
        link = link.parent.resolve() / link.name
        try:
            rel = link.relative_to(ws).as_posix()
        except ValueError:
            rel = p.name
    return strip_pipeline_suffix(rel).replace("/", ".")


def find_pipelines(workspace: str | os.PathLike) -> list[Path]:
    """Every pipeline file under the workspace, skipping hidden and vendor folders."""
    ws = Path(workspace).resolve()
    found: list[Path] = []
    skip = {STATE_DIR, ".git", "node_modules", "target", "__pycache__", "vendor", ".venv", "venv"}
    for dirpath, dirnames, filenames in os.walk(ws):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        for f in sorted(filenames):
            if is_pipeline_file(f):
                found.append(Path(dirpath) / f)
    return found


class Layout:
    """Where Pipeloom keeps its state inside one workspace."""

    def __init__(self, workspace: str | os.PathLike):
        self.workspace = Path(workspace).resolve()
        self.state = self.workspace / STATE_DIR
        self.runs = self.state / "runs"
        self.db_path = self.state / "pipeloom.db"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def node_dir(self, run_id: str, node_id: str) -> Path:
        return self.runs / run_id / node_id

    def log_path(self, run_id: str, node_id: str) -> Path:
        return self.runs / run_id / "_logs" / f"{node_id}.log"

    def trigger_dir(self, pipeline_id: str, trigger_id: str) -> Path:
        """A trigger's own state: pause flag, last tick, batches in flight and the last batch fed."""
        return self.state / "triggers" / pipeline_id / trigger_id


def cache_root() -> Path:
    """Build caches (binaries, virtualenvs, npm installs) keyed by content hash;
    shared across workspaces. `PIPELOOM_CACHE_DIR` overrides the location."""
    env = os.environ.get("PIPELOOM_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pipeloom"


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file and os.replace, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
