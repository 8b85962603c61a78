"""The `pipeloom` command: run, validate and inspect pipelines; serve the studio.

Nothing here imports Flask except `serve`, and `run`, `runs`, `show` and `logs`
read and write run journals (stdlib only), never the database index, so CI and
cron runs stay light.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import click

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

ICONS = {"pending": "·", "running": "▶", "succeeded": "✓", "failed": "✗", "timed_out": "⏱", "cancelled": "■",
         "skipped": "–", "cached": "✓"}
COLORS = {"running": "blue", "succeeded": "green", "failed": "red", "timed_out": "yellow", "cancelled": "white",
          "skipped": "bright_black", "cached": "green", "pending": "bright_black", "interrupted": "yellow"}

workspace_option = click.option(
    "--workspace", "-w", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder that holds the pipelines, sources and .pipeloom/ state. Default: the current folder.")


def executor_options(f):
    """--executor and --scheduler, shared by `run` and `serve`."""
    f = click.option("--scheduler", metavar="ADDRESS", default=None,
                     help="The Dask scheduler (implies --executor dask): tcp://127.0.0.1:PORT on this machine, "
                          "tls://… across machines, or a scheduler file. Default: PIPELOOM_DASK_SCHEDULER, else "
                          "the workspace's `pipeloom cluster`.")(f)
    return click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
                        help="Where nodes run: local (this machine) or dask (a Dask cluster). Default: the "
                             "pipeline's `executor:` setting, else local.")(f)


def choose_executor(executor: str | None, scheduler: str | None):
    """The run's executor choice from the options; None leaves it to the pipeline's `executor:` setting
    (PIPELOOM_DASK_SCHEDULER alone never moves a pipeline off this machine)."""
    from .engine.run.executors import ExecutorChoice

    if executor is None and scheduler is None:
        return None
    return ExecutorChoice(executor or "dask", scheduler)


def plural(n: int, word: str) -> str:
    """`1 node`, `2 nodes`, `1,204 records`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _workspace(ws: Path | None) -> Path:
    return (ws or Path.cwd()).resolve()


def _fail_usage(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(EXIT_USAGE)


def _journals(ws: Path):
    """The workspace's run journals; a workspace whose runs predate journals gets them written once (this
    opens the database, that one time)."""
    from .engine.paths import Layout
    from .engine.store.journal import Journals

    layout = Layout(ws)
    if layout.db_path.exists() and not (layout.state / "journal").exists() \
            and not os.environ.get("PIPELOOM_DATABASE_URL"):
        from .engine.store import Store

        Store.open(ws).close()
    return Journals(ws)


def _load(file: Path, ws: Path, *, check_env: bool = True):
    from .engine.errors import ValidationError
    from .engine.model import load_pipeline

    path = file.resolve()
    if not path.exists():
        _fail_usage(f"{file}: no such file")
    try:
        path.relative_to(ws)
    except ValueError:
        _fail_usage(f"{file} is outside the workspace {ws}; run from its folder or pass --workspace DIR")
    try:
        return load_pipeline(path, workspace=ws, check_env=check_env)
    except ValidationError as exc:
        click.secho(str(exc), fg="red", err=True)
        for p in exc.problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(EXIT_USAGE)


class _Main(click.Group):
    # commands for a workspace that serves live events, loaded only when asked for
    LAZY = ("triggers", "keys", "gc")
    LAZY_DATA = ("diff", "story")  # commands that look into the data a run made
    LAZY_CLUSTER = ("cluster",)  # a local Dask cluster

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY, *self.LAZY_DATA, *self.LAZY_CLUSTER])

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY:
            from .cli_service import COMMANDS

            return COMMANDS[name]
        if name in self.LAZY_DATA:
            from .cli_data import COMMANDS as DATA

            return DATA[name]
        if name in self.LAZY_CLUSTER:
            from .cli_cluster import COMMANDS as CLUSTER

            return CLUSTER[name]
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        from .engine.errors import SchemaError

        try:
            return super().invoke(ctx)
        except SchemaError as exc:  # any command that opens the store: a clear refusal, not a traceback
            _fail_usage(str(exc))


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pipeloom")
def main() -> None:
    """Pipeloom runs pipelines whose steps are ordinary programs in Rust, Go,
    Python, Node.js, shell or any command-line tool, passing data as files.

    \b
    Quick start:
      pipeloom run nodes/sensor-alerts.pipeline.yaml
      pipeloom serve            # the studio, on http://127.0.0.1:5000
    """


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@workspace_option
def validate(file: Path, workspace: Path | None) -> None:
    """Check a pipeline file and list every problem (exit 2 if any)."""
    ws = _workspace(workspace)
    p = _load(file, ws)
    click.secho(f"✓ {file}: {plural(len(p.nodes), 'node')}, {plural(len(p.edges), 'edge')}, no problems",
                fg="green")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="How many nodes may run at once. Default: the number of CPUs.")
@click.option("--force", is_flag=True, help="Ignore the cache: run every node.")
@click.option("--only", "only", metavar="NODE", help="Run just NODE; its upstream comes from the cache.")
@click.option("--from", "from_node", metavar="NODE", help="Run NODE and everything downstream of it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the run, nothing else.")
@executor_options
@workspace_option
def run(file: Path, jobs: int | None, force: bool, only: str | None, from_node: str | None, as_json: bool,
        executor: str | None, scheduler: str | None, workspace: Path | None) -> None:
    """Run a pipeline. Unchanged nodes are reused from the cache."""
    from .engine.errors import UsageError
    from .engine.runner import RunOptions, Runner

    ws = _workspace(workspace)
    pipeline = _load(file, ws)
    _journals(ws).recover_interrupted()  # runs a kill -9 left `running` are marked interrupted, their programs stopped
    display = None if as_json else Progress(pipeline, file, ws)
    try:
        runner = Runner(pipeline, workspace=ws,
                        options=RunOptions(jobs=jobs, force=force, only=only, from_node=from_node, emit_logs=False,
                                           origin={"by": "cli"}, executor=choose_executor(executor, scheduler)),
                        listener=display.on_event if display else None)
    except UsageError as exc:
        message = str(exc)
        if message.startswith("no node called"):
            message = f"--only {only}: {message}" if only else f"--from {from_node}: {message}"
        _fail_usage(message)
        return
    if display:
        display.start(runner)

    def cancel(*_) -> None:
        # from a thread of its own: the handler may interrupt this thread inside the runner's lock
        threading.Thread(target=runner.cancel, name="cancel", daemon=True).start()

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:  # Ctrl-C and SIGTERM cancel the run: its nodes stop and the run ends `cancelled`
        signal.signal(sig, cancel)
    try:
        result = runner.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if display:
            display.stop()
    if as_json:
        from .engine.store.journal import detail

        click.echo(json.dumps(detail(runner.journal.doc)))  # the run as `show --json` and the API give it
    else:
        display.summary(result, file)
    sys.exit(EXIT_OK if result.ok else EXIT_FAILED)


class Progress:
    """A live per-node progress display: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, pipeline, file: Path, workspace: Path):
        self.pipeline = pipeline
        self.file = file
        self.workspace = workspace
        self.tty = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        self.states: dict[str, dict] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()
        self.drawn = 0
        self.stop_evt = threading.Event()
        self.ticker: threading.Thread | None = None
        self.width = max(n for n in [len(n.id) for n in pipeline.nodes] + [4])

    def start(self, runner) -> None:
        self.order = list(runner.order)
        self.states = {n: {"status": "pending"} for n in self.order}
        click.echo(f"Run {runner.run_id} · {self.pipeline.name} · {plural(len(self.order), 'node')}", err=True)
        if self.tty:
            self.ticker = threading.Thread(target=self._tick, daemon=True)
            self.ticker.start()

    def on_event(self, event) -> None:
        if event.kind != "node_status":
            return
        with self.lock:
            prev = self.states.get(event.node_id, {}).get("status")
            self.states[event.node_id] = {"status": event.status, "duration_s": event.duration_s,
                                          "build_s": getattr(event, "build_s", None),
                                          "exit_code": event.exit_code, "message": event.message,
                                          "since": time.time() if event.status == "running" else None,
                                          "worker": getattr(event, "worker", None)}
            if not self.tty and event.status != prev and event.status != "pending":
                click.echo(self._line(event.node_id), err=True)
            elif self.tty:
                self._draw()

    def _line(self, nid: str) -> str:
        st = self.states[nid]
        status = st["status"]
        node = self.pipeline.node(nid)
        dur = st.get("duration_s")
        if status == "running" and st.get("since"):
            dur = time.time() - st["since"]
        show = dur is not None and status not in ("pending", "skipped") and (self.tty or status != "running")
        timing = f"{dur:6.2f}s" if show else " " * 7
        label = {"cached": "cached", "timed_out": "timed out"}.get(status, status)
        msg = st.get("message") or ""
        if status in ("succeeded", "running", "pending"):
            msg = f"on {st['worker']}" if st.get("worker") else ""
        if st.get("build_s") and status != "running":
            msg = f"(built in {st['build_s']:.2f}s first) {msg}".rstrip()
        text = f"  {ICONS.get(status, '?')} {nid:<{self.width}}  {node.runtime:<7} {label:<10} {timing}  {msg}"
        return click.style(text.rstrip(), fg=COLORS.get(status)) if self.tty else text.rstrip()

    def _draw(self) -> None:
        cols = shutil.get_terminal_size((100, 20)).columns
        out = []
        if self.drawn:
            out.append(f"\x1b[{self.drawn}F")
        for nid in self.order:
            out.append("\x1b[2K" + self._line(nid)[: cols + 20] + "\n")
        sys.stderr.write("".join(out))
        sys.stderr.flush()
        self.drawn = len(self.order)

    def _tick(self) -> None:
        while not self.stop_evt.wait(0.25):
            with self.lock:
                self._draw()

    def stop(self) -> None:
        self.stop_evt.set()
        if self.ticker:
            self.ticker.join(1)
            with self.lock:
                self._draw()

    def summary(self, result, file: Path) -> None:
        counts: dict[str, int] = {}
        for st in result.nodes.values():
            counts[st.status] = counts.get(st.status, 0) + 1
        parts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items()))
        dur = (result.finished_at or 0) - (result.started_at or 0)
        colour = "green" if result.ok else "red"
        click.secho(f"Run {result.run_id} {result.status} in {dur:.2f}s ({parts})", fg=colour, err=True)
        for nid in result.order:
            st = result.nodes[nid]
            if st.status in ("failed", "timed_out"):
                click.secho(f"  {nid}: {st.message}", fg="red", err=True)
                for line in _last_error_lines(result.run_id, nid, self.workspace):
                    click.echo(f"    │ {line}", err=True)
                click.echo(f"    see its whole log: pipeloom logs {result.run_id} {nid}", err=True)
        first = result.first_failed()
        if result.status == "cancelled" and first:
            click.echo(f"Cancelled. Pick up where it stopped with: pipeloom run {file} --from {first}", err=True)
        elif not result.ok and first:
            click.echo(f"Fix it, then resume with: pipeloom run {file} --from {first}", err=True)
        else:
            for nid in result.order:
                st = result.nodes[nid]
                for port, art in st.artifacts.items():
                    if not any(e.src_node == nid and e.src_port == port for e in self.pipeline.edges):
                        rec = f", {plural(art['records'], 'record')}" if art.get("records") is not None else ""
                        click.echo(f"  output {nid}.{port}: {art['path']} ({_size(art['size'])}{rec})", err=True)


def origin_text(origin: dict | None, *, detail: bool = False) -> str:
    """What started a run, in words: `the CLI`, `the studio`, `trigger readings (kafka)` and, with `detail`,
    what fed it (topic, partitions and offsets; a file; a request)."""
    origin = origin or {}
    by = origin.get("by")
    if by != "trigger":
        return {"cli": "the CLI", "studio": "the studio", "autorun": "auto-run"}.get(by, "the CLI or the studio")
    text = f"trigger {origin.get('trigger')} ({origin.get('kind')})"
    if not detail:
        return text
    kind = origin.get("kind")
    if kind == "kafka":
        parts = ", ".join(f"partition {p} offsets {o['first']}-{o['last']}"
                          for p, o in (origin.get("partitions") or {}).items())
        text += f": {plural(origin.get('events') or 0, 'event')} from {origin.get('topic')}" + (f", {parts}" if parts else "")
        if origin.get("attempt", 1) > 1:
            text += f" (attempt {origin['attempt']})"
    elif kind == "folder":
        text += f": the file {origin.get('file')}"
    elif kind == "http":
        text += f": request {origin.get('request_id')}"
    elif kind == "schedule":
        text += f": the tick of {origin.get('scheduled_for')}" + (" (missed while down)" if origin.get("missed") else "")
    return text


def _last_error_lines(run_id: str, node_id: str, workspace: Path, n: int = 3) -> list[str]:
    """The last lines a failed node wrote to stderr (or stdout when it wrote no stderr)."""
    from .engine.logs import last_error_lines
    from .engine.paths import Layout

    return last_error_lines(Layout(workspace).log_path(run_id, node_id), n)


def _exit_text(code: int | None) -> str:
    if code is None:
        return ""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@main.command()
@click.option("--pipeline", "pipeline_id", help="Only runs of this pipeline id (e.g. nodes.sensor-alerts).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@workspace_option
def runs(pipeline_id: str | None, limit: int, as_json: bool, workspace: Path | None) -> None:
    """List earlier runs, newest first."""
    ws = _workspace(workspace)
    journals = _journals(ws)
    rows = journals.list_runs(pipeline_id, limit=limit)
    known = set(journals.pipeline_ids()) if pipeline_id and not rows else set()
    total = journals.count_runs(pipeline_id) if len(rows) == limit else len(rows)
    if pipeline_id and not rows:
        from .cli_service import _pipelines, check_pipeline_id

        check_pipeline_id(pipeline_id, known | set(_pipelines(ws)))
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No runs yet. Start one with: pipeloom run FILE")
        return
    click.echo(f"{'RUN':<22} {'PIPELINE':<28} {'STATUS':<12} {'STARTED':<20} {'TIME':>8}  STARTED BY")
    for r in rows:
        started = (r["started_at"] or r["created_at"] or "")[:19].replace("T", " ")
        dur = f"{r['duration_s']:.2f}s" if r["duration_s"] is not None else ""
        status = click.style(f"{r['status']:<12}", fg=COLORS.get(r["status"]))
        click.echo(f"{r['run_id']:<22} {r['pipeline_id'][:28]:<28} {status} {started:<20} {dur:>8}  "
                   f"{origin_text(r.get('origin'))}")
    if total > len(rows):
        click.echo(f"(the newest {len(rows)} of {total:,} runs; show more with --limit N)")


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@workspace_option
def show(run_id: str, as_json: bool, workspace: Path | None) -> None:
    """Show one run: each node's status, time and outputs."""
    from .engine.errors import NotFoundError

    try:
        run_ = _journals(_workspace(workspace)).get_run(run_id)
    except NotFoundError as exc:
        _fail_usage(f"{exc}; list runs with: pipeloom runs")
        return
    if as_json:
        click.echo(json.dumps(run_))
        return
    dur = f" in {run_['duration_s']:.2f}s" if run_["duration_s"] is not None else ""
    click.echo(f"Run {run_['run_id']} · {run_['pipeline_name']} · "
               + click.style(run_["status"], fg=COLORS.get(run_["status"])) + dur)
    click.echo(f"  started by {origin_text(run_['options'].get('origin'), detail=True)}")
    if run_.get("message"):
        click.echo(f"  {run_['message']}")
    for nid, n in run_["nodes"].items():
        d = f"{n['duration_s']:.2f}s" if n["duration_s"] is not None else ""
        if n.get("build_s"):
            d = f"built {n['build_s']:.2f}s, ran {d}"
        code = _exit_text(n["exit_code"])
        click.echo(click.style(f"  {ICONS.get(n['status'], '?')} {nid:<16} {n['status']:<10} {d:>8} {code}",
                               fg=COLORS.get(n["status"])))
        if n["message"] and n["status"] not in ("succeeded",):
            click.echo(f"      {n['message']}")
        for port, a in n["artifacts"].items():
            rec = f", {plural(a['records'], 'record')}" if a.get("records") is not None else ""
            click.echo(f"      → {port}: {a['path']} ({_size(a['size'])}{rec})")


@main.command()
@click.argument("run_id")
@click.argument("node_id")
@click.option("--stream", type=click.Choice(["all", "out", "err"]), default="all", show_default=True)
@workspace_option
def logs(run_id: str, node_id: str, stream: str, workspace: Path | None) -> None:
    """Print a node's log from a run (stderr lines go to stderr)."""
    from .engine.errors import NotFoundError
    from .engine.logs import read_log

    journals = _journals(_workspace(workspace))
    try:
        path = journals.log_path(run_id, node_id)
        node = journals.get_run(run_id)["nodes"].get(node_id) or {}
    except NotFoundError as exc:
        _fail_usage(str(exc))
        return
    if node.get("status") == "cached":
        src = node.get("source_run")
        click.echo(f"`{node_id}` was cached in run {run_id}: nothing it depends on had changed, so no program ran."
                   + (f"\nIts log is in run {src}: pipeloom logs {src} {node_id}" if src else ""), err=True)
        return
    if node.get("status") == "skipped":
        click.echo(f"`{node_id}` did not run in run {run_id}: {node.get('message') or 'skipped'}", err=True)
        return
    offset = 0
    while True:
        lines, offset2 = read_log(path, offset, 5000)
        for ln in lines:
            if stream != "all" and ln["stream"] != stream:
                continue
            click.echo(ln["text"], err=ln["stream"] == "err")
        if offset2 == offset:
            break
        offset = offset2


@main.command()
@workspace_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. The studio runs code, so it stays on this machine unless you say otherwise; "
                   "a non-loopback address needs an explicit, strong --token (16+ characters, 8+ different).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", default=None, envvar="PIPELOOM_TOKEN",
              help="Access token. Default: a new random token each launch, printed in the URL.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Extra Host header names to accept (e.g. a name in /etc/hosts). Repeatable.")
@click.option("--demo/--no-demo", default=False, help="Create the sensor-alerts demo if the workspace has no pipelines.")
@click.option("--no-studio", "no_studio", is_flag=True,
              help="Serve only the invoke routes, /metrics and the triggers: no editor (for a server that runs "
                   "pipelines for other programs).")
@executor_options
def serve(workspace: Path | None, host: str, port: int, token: str | None, allow_hosts: tuple[str, ...],
          demo: bool, no_studio: bool, executor: str | None, scheduler: str | None) -> None:
    """Start the studio, a browser editor for the workspace's pipelines, and run their triggers."""
    from .web import serve as serve_web

    ws = _workspace(workspace)
    if demo:
        ws.mkdir(parents=True, exist_ok=True)
    if not ws.is_dir():
        _fail_usage(f"workspace {ws} does not exist (add --demo to create it with the demo inside)")
    if demo:
        from .engine.demo import create_demo
        from .engine.paths import find_pipelines

        if not find_pipelines(ws):
            path = create_demo(ws)
            click.echo(f"Created the sensor-alerts demo: {path}")
    from .engine.errors import UsageError

    try:
        serve_web(ws, host=host, port=port, token=token, allowed_hosts=list(allow_hosts) or None,
                  studio=not no_studio, executor=choose_executor(executor, scheduler))
    except (UsageError, ValueError) as exc:
        _fail_usage(str(exc))


if __name__ == "__main__":
    main()
