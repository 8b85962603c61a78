"""Data: formats, conversions, previews and diffs of the records that flow between steps."""
