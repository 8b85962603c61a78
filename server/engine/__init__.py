"""The Pipeloom engine: pipeline model, validation, runtimes, runner and store.

Nothing in this package imports Flask: the CLI and cron jobs use it alone.
"""
