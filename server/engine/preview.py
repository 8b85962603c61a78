"""The old home of the previews; they live in server.engine.data.preview now (same module object)."""

import sys

from .data import preview as _preview

sys.modules[__name__] = _preview
