"""Data files: previews, their page indexes and the byte scanners that build them."""
