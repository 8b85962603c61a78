"""The errors of data files and formats, shared by the readers, the writers and the previews."""

from __future__ import annotations

import os

from .errors import PipeloomError


class FormatError(PipeloomError):
    """An unknown format, or a conversion that does not exist."""


class ConversionError(FormatError):
    """A conversion that cannot be done between two formats."""


class MalformedDataError(FormatError):
    """A file whose content does not match its declared format."""

    def __init__(self, path: str | os.PathLike, message: str, where: str | None = None):
        self.path = str(path)
        self.where = where
        self.detail = message
        name = os.path.basename(self.path)
        head = f"{name} {where}" if where else name
        super().__init__(f"{head}: {message}")
