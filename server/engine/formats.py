"""The format registry and conversions now live in server.engine.data.formats; this name stays for old imports."""

import sys

from .data import formats as _formats

sys.modules[__name__] = _formats
