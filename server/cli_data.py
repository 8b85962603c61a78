"""`pipeloom diff`: what one step of one run did to its records, in a sentence first, then examples."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import _fail_usage, _workspace, plural, workspace_option

_SHOWN = 5  # examples of each kind in the human output


def _value(v) -> str:
    return json.dumps(v, ensure_ascii=False)


def _shown(v, presence: str) -> str:
    return "(absent)" if presence == "absent" else _value(v)


def sentence(node: str, counts: dict, total_in: int) -> str:
    """"filter dropped 9 of 1,000 records and changed 991" — the counts as people say them."""
    parts = []
    if counts["dropped"]:
        parts.append(f"dropped {counts['dropped']:,} of {plural(total_in, 'record')}")
    if counts["changed"]:
        parts.append(f"changed {counts['changed']:,}" + ("" if parts else f" of {plural(total_in, 'record')}"))
    if counts["added"]:
        parts.append(f"added {counts['added']:,}")
    if not parts:
        return f"{node} passed all {plural(total_in, 'record')} through unchanged"
    text = f"{node} " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
    if counts["unchanged"]:
        text += f"; {counts['unchanged']:,} went through unchanged"
    return text


@click.command("diff")
@click.argument("run_id")
@click.argument("node_id")
@click.option("--input", "input_port", metavar="PORT", help="The input to compare (default: its first records input).")
@click.option("--output", "output_port", metavar="PORT",
              help="The output to compare (default: its first records output).")
@click.option("--kind", type=click.Choice(["dropped", "added", "changed", "unchanged"]),
              help="List only records of this kind (with --json: the page of items).")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=0, max=1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same shape as the API).")
@workspace_option
def diff(run_id: str, node_id: str, input_port: str | None, output_port: str | None, kind: str | None,
         offset: int, limit: int, as_json: bool, workspace: Path | None) -> None:
    """What step NODE_ID did to its records in run RUN_ID: dropped, added, changed and unchanged."""
    from .engine.data.stepdiff import step_diff
    from .engine.errors import PipeloomError
    from .engine.model import load_pipeline
    from .engine.store import Store

    ws = _workspace(workspace)
    store = Store.open(ws)
    try:
        run_ = store.get_run(run_id)
        pipeline = load_pipeline(run_["pipeline_path"], workspace=ws, check_env=False)
        d, ports = step_diff(ws, store, pipeline, run_id, node_id, input=input_port, output=output_port)
    except PipeloomError as exc:
        _fail_usage(f"{exc}")
        return
    finally:
        store.close()
    counts = d.counts
    if as_json:
        body = {**ports, **d.to_dict()}
        if kind:
            body.update(kind=kind, offset=offset, items=d.items(kind, offset, limit), total=counts[kind])
        click.echo(json.dumps(body, ensure_ascii=False))
        return
    total_in = counts["dropped"] + counts["changed"] + counts["unchanged"]
    click.echo(sentence(node_id, counts, total_in) + ".")
    click.echo(f"  input `{ports['input']}` → output `{ports['output']}`; {d.note}.")
    for k in ([kind] if kind else ["dropped", "changed", "added"]):
        n = counts[k]
        if not n:
            continue
        items = d.items(k, offset if kind else 0, limit if kind else _SHOWN)
        click.echo("")
        click.echo(click.style(f"{k.capitalize()} ({n:,})", bold=True) + ":")
        for it in items:
            label = f"{', '.join(d.key)} {_value(it['key'])}" if d.key else "record"
            if k == "changed":
                fields = "; ".join(f"{f['field']}: {_shown(f['before'], f['was'])} → {_shown(f['after'], f['now'])}"
                                   for f in it["fields"])
                click.echo(f"  {label}: {fields}")
            else:
                why = f"  — {it['reason']}" if it.get("reason") else ""
                click.echo(f"  {label}: {json.dumps(it['record'], ensure_ascii=False)}{why}")
        shown = (offset if kind else 0) + len(items)
        if shown < n:
            click.echo(f"  … {n - shown:,} more: pipeloom diff {run_id} {node_id} --kind {k} --offset {shown}")


COMMANDS = {"diff": diff}
