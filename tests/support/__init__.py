"""Helpers for tests and demos that need real services (no pytest inside)."""
