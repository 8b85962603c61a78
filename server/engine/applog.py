"""Pipeloom's own log (the "pipeloom" logger), not a node's: `logging` is imported on first use.

Importing `logging` costs a cold CLI process a few milliseconds, and a run that goes well never
writes to this log; so the engine's hot modules hold this stand-in, which imports `logging` and
hands every call to the real logger the first time one is made.
"""

from __future__ import annotations


class LazyLogger:
    """Stands for logging.getLogger(name) until first used."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        import logging

        return getattr(logging.getLogger(self._name), attr)


logger = LazyLogger("pipeloom")
