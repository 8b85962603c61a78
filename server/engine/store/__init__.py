"""Pipeloom's records: run journals on disk (the truth), and the SQLModel index of them and of versions.

The journal side (journal.py, cache.py) is stdlib only and is what a CLI run
reads and writes; the index (index.py, migrations.py) imports SQLAlchemy and
loads only when one of its names is asked for.
"""

from .journal import Journals, intact, iso, node_record

_INDEX = {"ArtifactRow", "InvokeKeyRow", "NodeRunRow", "RunRow", "Store", "VersionRow"}

__all__ = ["ArtifactRow", "InvokeKeyRow", "Journals", "NodeRunRow", "RunRow", "SCHEMA_VERSION", "SchemaError",
           "Store", "VersionRow", "intact", "iso", "node_record"]


def __getattr__(name: str):
    if name in _INDEX:
        from . import index

        return getattr(index, name)
    if name == "SCHEMA_VERSION":
        from .migrations import LATEST

        return LATEST
    if name == "SchemaError":
        from ..errors import SchemaError

        return SchemaError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
