"""Data files: the format registry, readers, writers and the conversions between formats."""
