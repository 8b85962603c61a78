"""`pipeloom triggers`, `pipeloom keys` and `pipeloom gc`: steering a workspace that serves live events.

They work on files and the store directly, so they need no running server; a
running `pipeloom serve` notices a pause or resume within a second.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from .cli import _fail_usage, _workspace, plural, workspace_option


def _pipelines(ws: Path) -> dict[str, object]:
    """pipeline id -> its Pipeline (structure only: no toolchain checks), for every readable pipeline file."""
    from .engine.errors import ValidationError
    from .engine.model import load_pipeline
    from .engine.paths import find_pipelines, pipeline_id_for

    out = {}
    for path in find_pipelines(ws):
        try:
            out[pipeline_id_for(ws, path)] = load_pipeline(path, workspace=ws, check_env=False)
        except (ValidationError, OSError):
            continue
    return out


def _trigger_of(ws: Path, pipeline_id: str, trigger_id: str | None, *, kind: str | None = None):
    from .engine.errors import did_you_mean

    pipelines = _pipelines(ws)
    p = pipelines.get(pipeline_id)
    if p is None:
        _fail_usage(f"no pipeline `{pipeline_id}` in {ws}{did_you_mean(pipeline_id, pipelines)} "
                    f"(pipelines: {', '.join(pipelines) or 'none'})")
    if trigger_id is None:
        return p, None
    found = {t.id: t for t in p.triggers}
    t = found.get(trigger_id)
    if t is None:
        _fail_usage(f"pipeline `{pipeline_id}` has no trigger `{trigger_id}`{did_you_mean(trigger_id, found)} "
                    f"(triggers: {', '.join(found) or 'none'})")
    if kind and t.kind != kind:
        _fail_usage(f"trigger `{trigger_id}` of `{pipeline_id}` is a {t.kind} trigger; keys open http triggers")
    return p, t


# ------------------------------------------------------------ triggers

@click.group()
def triggers() -> None:
    """List, pause and resume the workspace's triggers (kafka, http, folder, schedule)."""


@triggers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@workspace_option
def triggers_list(as_json: bool, workspace: Path | None) -> None:
    """Every trigger of every pipeline, whether it is paused, and the last run it started."""
    from .engine.paths import Layout
    from .engine.store import Store
    from .engine.triggerspec import trigger_to_dict
    from .triggers.state import TriggerState

    ws = _workspace(workspace)
    layout = Layout(ws)
    rows = []
    pipelines = _pipelines(ws)
    store = Store.open(ws) if pipelines else None
    try:
        for pid, p in pipelines.items():
            if not p.triggers:
                continue
            recent = store.list_runs(pid, limit=200)
            for t in p.triggers:
                state = TriggerState(layout.trigger_dir(pid, t.id)).read()
                last = next((r for r in recent if r["origin"].get("trigger") == t.id), None)
                rows.append({"pipeline_id": pid, **trigger_to_dict(t), "paused": bool(state.get("paused")),
                             "off": _off_reason(t), "last_run": last})
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No triggers in this workspace. Add a `triggers:` list to a pipeline (docs/pipeline-format.md).")
        return
    click.echo(f"{'PIPELINE':<24} {'TRIGGER':<14} {'KIND':<9} {'FEEDS':<18} {'SET TO':<8} LAST RUN")
    for r in rows:
        last = r["last_run"]
        last_text = f"{last['run_id']} {last['status']}" if last else "none yet"
        word, colour = ("off", "bright_black") if r["off"] else ("paused", "yellow") if r["paused"] else ("run", "green")
        state = click.style(f"{word:<8}", fg=colour)
        click.echo(f"{r['pipeline_id'][:24]:<24} {r['id'][:14]:<14} {r['kind']:<9} {str(r['to'] or '-')[:18]:<18} "
                   f"{state} {last_text}")
    for r in rows:
        if r["off"]:
            click.echo(f"  {r['pipeline_id']}/{r['id']} is off: {r['off']}")
    click.echo("`pipeloom serve` runs the triggers set to run; its studio shows how each one is doing.")


def _off_reason(t) -> str | None:
    """Why a trigger cannot start where this command runs (a ${VAR} in its settings is not set), or None."""
    from .engine.triggerspec import UnsetVariable

    if t.kind != "kafka":
        return None
    try:
        t.resolved_brokers()
    except UnsetVariable as exc:
        return f"set {exc.name} to the brokers' address (host:port) before `pipeloom serve`"
    return None


def _set_paused(pipeline_id: str, trigger_id: str, paused: bool, workspace: Path | None) -> None:
    from .triggers.state import TriggerState, trigger_dir

    ws = _workspace(workspace)
    _trigger_of(ws, pipeline_id, trigger_id)
    state = TriggerState(trigger_dir(ws, pipeline_id, trigger_id))
    if state.paused == paused:
        click.echo(f"trigger `{trigger_id}` of `{pipeline_id}` is already "
                   f"{'paused' if paused else 'running (not paused)'}; nothing changed.")
        return
    state.update(paused=paused)
    word = "paused" if paused else "resumed"
    click.echo(f"{word} trigger `{trigger_id}` of `{pipeline_id}`; a running `pipeloom serve` "
               f"{'stops taking its events' if paused else 'takes its events again'} within a second.")


@triggers.command("pause")
@click.argument("pipeline_id")
@click.argument("trigger_id")
@workspace_option
def triggers_pause(pipeline_id: str, trigger_id: str, workspace: Path | None) -> None:
    """Stop a trigger from starting runs (kept across restarts). Kafka events wait in Kafka meanwhile."""
    _set_paused(pipeline_id, trigger_id, True, workspace)


@triggers.command("resume")
@click.argument("pipeline_id")
@click.argument("trigger_id")
@workspace_option
def triggers_resume(pipeline_id: str, trigger_id: str, workspace: Path | None) -> None:
    """Let a paused trigger start runs again."""
    _set_paused(pipeline_id, trigger_id, False, workspace)


# ------------------------------------------------------------ keys

@click.group()
def keys() -> None:
    """Invoke keys: what other programs send to call a pipeline's http triggers."""


@keys.command("create")
@click.argument("pipeline_id")
@click.option("--trigger", "trigger_id", metavar="ID", help="Open only this http trigger (default: all of them).")
@click.option("--name", metavar="NAME", help="A name to list and revoke it by (default: made up from the pipeline).")
@workspace_option
def keys_create(pipeline_id: str, trigger_id: str | None, name: str | None, workspace: Path | None) -> None:
    """Make a key and print it once; only its hash is kept."""
    import secrets

    from .engine.errors import ConflictError
    from .engine.store import Store
    from .triggers.keys import key_hash, name_problem, new_secret

    ws = _workspace(workspace)
    p, t = _trigger_of(ws, pipeline_id, trigger_id, kind="http")
    if t is None and not any(x.kind == "http" for x in p.triggers):
        _fail_usage(f"pipeline `{pipeline_id}` has no http trigger; add one (kind: http) before making keys")
    name = name or f"{pipeline_id}-{trigger_id or 'any'}-{secrets.token_hex(2)}"
    why = name_problem(name)
    if why:
        _fail_usage(why)
    secret = new_secret()
    store = Store.open(ws)
    try:
        store.add_key(name, pipeline_id, trigger_id, key_hash(secret))
    except ConflictError as exc:
        _fail_usage(str(exc))
    finally:
        store.close()
    example = t or next(x for x in p.triggers if x.kind == "http")
    click.echo(f"Key `{name}` for {'trigger `' + trigger_id + '` of ' if trigger_id else 'the http triggers of '}"
               f"`{pipeline_id}`. It is shown only now; keep it somewhere safe:\n")
    click.echo(f"  {secret}\n")
    port = p.node(example.to.node).input(example.to.port) if example.to else None
    fmt = port.format if port else "json"
    ctype, data = {"text": ("text/plain", "--data-binary @lines.txt"),
                   "ndjson": ("application/x-ndjson", "--data-binary @records.ndjson"),
                   "csv": ("text/csv", "--data-binary @table.csv")}.get(fmt, ("application/json",
                                                                             "--data '[{\"reading\": 1}]'"))
    sample = _sample_file(p, port)
    if sample is not None and fmt in ("text", "ndjson", "csv", "json"):
        data = f"--data-binary @{shlex.quote(sample)}"  # the input's own sample: a body that fits as it is
    click.echo(f"Call the pipeline with it (its input `{example.to}` takes {fmt}; see docs/api.md, \"Invoking\"):")
    click.echo(f"  curl -H 'Authorization: Bearer {secret}' -H 'Content-Type: {ctype}' \\\n"
               f"       {data} http://127.0.0.1:5000/invoke/{pipeline_id}/{example.id}")
    click.echo("(5000 is the port `pipeloom serve` uses unless told otherwise; use the address it printed.)")


def _sample_file(p, port) -> str | None:
    """The file an entry input reads when run by hand (its `path`), as a path from the current folder when it
    is under it, else absolute; None without one."""
    if port is None or not port.path or p.path is None:
        return None
    sample = (Path(p.path).parent / port.path).resolve()
    if not sample.is_file():
        return None
    try:
        return str(sample.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(sample)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@workspace_option
def keys_list(as_json: bool, workspace: Path | None) -> None:
    """Every key's name, what it opens, and when it was made, last used or revoked (never the key itself)."""
    from .engine.store import Store

    store = Store.open(_workspace(workspace))
    try:
        rows = store.list_keys()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No keys yet. Make one with: pipeloom keys create PIPELINE")
        return
    click.echo(f"{'NAME':<28} {'OPENS':<36} {'MADE':<20} STATE")
    for r in rows:
        opens = f"{r['pipeline_id']}/{r['trigger_id'] or '*'}"
        made = (r["created_at"] or "")[:19].replace("T", " ")
        if r["revoked_at"]:
            state = click.style(f"revoked {r['revoked_at'][:19].replace('T', ' ')}", fg="red")
        else:
            used = r["last_used_at"]
            state = click.style("active", fg="green") + (f", used {used[:19].replace('T', ' ')}" if used else ", never used")
        click.echo(f"{r['name'][:28]:<28} {opens[:36]:<36} {made:<20} {state}")


@keys.command("revoke")
@click.argument("name")
@workspace_option
def keys_revoke(name: str, workspace: Path | None) -> None:
    """Revoke a key at once: calls with it are refused from now on."""
    from .engine.errors import NotFoundError
    from .engine.store import Store

    store = Store.open(_workspace(workspace))
    try:
        row = store.revoke_key(name)
    except NotFoundError as exc:
        _fail_usage(f"{exc}; list them with: pipeloom keys list")
        return
    finally:
        store.close()
    if row["already_revoked"]:
        click.echo(f"key `{name}` was already revoked ({row['revoked_at'][:19].replace('T', ' ')} UTC); nothing changed.")
    else:
        click.echo(f"revoked key `{name}`; calls with it are refused from now on.")


# ------------------------------------------------------------ gc

@click.command()
@click.option("--pipeline", "pipeline_id", help="Only this pipeline id.")
@click.option("--dry-run", is_flag=True, help="Say what would go, remove nothing.")
@workspace_option
def gc(pipeline_id: str | None, dry_run: bool, workspace: Path | None) -> None:
    """Remove old runs as each pipeline's `retention` says (triggered runs: the newest 500 and a week by default).

    A run still going, the run holding a step's newest outputs, and any file a kept run uses are never removed.
    Without --pipeline, it also trims the query and diff caches to their sizes (least recently used first).
    """
    from .engine import gc as gc_
    from .engine.store import Store

    ws = _workspace(workspace)
    pipelines = _pipelines(ws)
    store = Store.open(ws)
    try:
        if pipeline_id:
            check_pipeline_id(pipeline_id, set(pipelines) | set(store.pipeline_ids()))
        ids = [pipeline_id] if pipeline_id else store.pipeline_ids()
        total_runs = total_bytes = 0
        for pid in ids:
            p = pipelines.get(pid)
            res = gc_.collect(store, pid, getattr(p, "retention", None), ws, dry_run=dry_run)
            if res.removed:
                verb = "would remove" if dry_run else "removed"
                click.echo(f"{pid}: {verb} {plural(len(res.removed), 'run')}, kept {res.kept} "
                           f"({res.bytes_freed / 1e6:,.1f} MB freed)")
            total_runs += len(res.removed)
            total_bytes += res.bytes_freed
    finally:
        store.close()
    files, freed = (0, 0) if pipeline_id else gc_.trim_caches(ws, dry_run=dry_run)
    if files:
        verb = "would remove" if dry_run else "removed"
        click.echo(f"caches: {verb} {plural(files, 'file')} ({freed / 1e6:,.1f} MB freed) to keep .pipeloom/query "
                   "and .pipeloom/diffs under PIPELOOM_QUERY_CACHE_MB and PIPELOOM_DIFF_CACHE_MB")
    if not total_runs and not files:
        click.echo("Nothing to remove: every run is within its pipeline's retention, and the caches are within "
                   "their size.")


def check_pipeline_id(pipeline_id: str, known: set[str]) -> None:
    """Exit 2 naming the known ids when `pipeline_id` is none of them (a typo should not look like 'no runs')."""
    from .engine.errors import did_you_mean

    if pipeline_id not in known:
        _fail_usage(f"no pipeline `{pipeline_id}` here{did_you_mean(pipeline_id, known)} "
                    f"(pipelines: {', '.join(sorted(known)) or 'none'})")


COMMANDS = {"triggers": triggers, "keys": keys, "gc": gc}
