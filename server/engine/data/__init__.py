"""Data: the format registry, readers, writers and conversions; previews (with their page indexes and byte scanners); and diffs of the records that flow between steps."""
