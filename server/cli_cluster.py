"""`pipeloom cluster`: a local Dask cluster (one scheduler, N workers, all on 127.0.0.1) for --executor dask."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .cli import _fail_usage, _workspace, workspace_option


@click.group()
def cluster() -> None:
    """Start, inspect and stop a local Dask cluster for `run --executor dask`.

    \b
      pipeloom cluster start --workers 2
      pipeloom run nodes/sensor-alerts.pipeline.yaml --executor dask
      pipeloom cluster stop
    """


@cluster.command()
@click.option("--workers", "-n", type=click.IntRange(min=1, max=64), default=2, show_default=True,
              help="How many worker processes.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads (nodes at once) per worker. Default: the CPUs divided among the workers.")
@click.option("--resources", metavar="NAME=N,...", default=None,
              help="What each worker offers nodes' `resources`, e.g. cpu=4,memory=8GiB,gpu=1. "
                   "Default: cpu = its threads, memory = its share of this machine's.")
@click.option("--tag", "tags", multiple=True, metavar="NAME", help="A tag every worker offers (nodes' `tags`). Repeatable.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the scheduler and workers bind. They run code sent to them, so they stay on this "
                   "machine; across machines use a TLS-secured cluster instead (see docs/pipeline-format.md).")
@click.option("--dashboard", is_flag=True, help="Also start Dask's dashboard on HOST:8787 (off by default).")
@workspace_option
def start(workers: int, threads: int | None, resources: str | None, tags: tuple[str, ...], host: str,
          dashboard: bool, workspace: Path | None) -> None:
    """Start a scheduler and N workers in the background; print the scheduler's address."""
    from .engine.errors import UsageError
    from .engine.run.cluster import parse_resources, start_cluster
    from .web.security import is_loopback

    ws = _workspace(workspace)
    if not is_loopback(host):
        _fail_usage(f"refusing to start a cluster on {host}: its workers would run code for anyone who reaches "
                    "them. Keep the default --host 127.0.0.1; across machines, run a TLS-secured Dask cluster")
    try:
        state = start_cluster(ws, workers=workers, threads=threads, host=host, resources=parse_resources(resources),
                              tags=list(tags), dashboard=dashboard)
    except UsageError as exc:
        _fail_usage(str(exc))
        return
    click.echo(state["address"])
    click.echo(f"{workers} worker(s), {state['threads']} thread(s) each; stop with `pipeloom cluster stop`", err=True)


@cluster.command()
@workspace_option
def stop(workspace: Path | None) -> None:
    """Stop the workspace's local cluster."""
    from .engine.run.cluster import stop_cluster

    n = stop_cluster(_workspace(workspace))
    click.echo(f"stopped {n} process(es)" if n else "no cluster was running")


@cluster.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@workspace_option
def status(as_json: bool, workspace: Path | None) -> None:
    """Show the workspace's local cluster: its address and workers (exit 1 if none runs)."""
    from .engine.errors import UsageError
    from .engine.run.cluster import cluster_status
    from .engine.run.dask_executor import describe_resources

    try:
        info = cluster_status(_workspace(workspace))
    except UsageError as exc:
        _fail_usage(str(exc))
        return
    if as_json:
        click.echo(json.dumps(info))
    elif info is None:
        click.echo("no cluster is running (start one with `pipeloom cluster start --workers 2`)")
    else:
        click.echo(info["address"])
        for w in info["workers"]:
            click.echo(f"  {w['name']}  {w['address']}  {w['threads']} thread(s)  "
                       f"{describe_resources(w['resources'])}")
    sys.exit(0 if info else 1)


COMMANDS = {"cluster": cluster}
