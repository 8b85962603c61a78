"""Pipeloom's records: the SQLModel index of runs and versions, and its migrations."""

from .index import (ArtifactRow, InvokeKeyRow, NodeRunRow, RunRow, Store, VersionRow, intact, iso, node_record)
from ..errors import SchemaError
from .migrations import LATEST as SCHEMA_VERSION

__all__ = ["ArtifactRow", "InvokeKeyRow", "NodeRunRow", "RunRow", "SCHEMA_VERSION", "SchemaError", "Store", "VersionRow", "intact",
           "iso", "node_record"]
