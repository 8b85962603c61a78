"""Pipeloom: one graph for pipelines that span several languages."""

__version__ = "0.1.0"
