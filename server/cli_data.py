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


def sentence(node: str, d) -> str:
    """"filter dropped 9 of 1,000 records and changed 991; 3 went through unchanged" for the Diff `d`."""
    counts = d.counts
    text = f"{node} {d.said}"
    if counts["unchanged"] and (counts["dropped"] or counts["changed"] or counts["added"]):
        text += f"; {counts['unchanged']:,} went through unchanged"
    return text


def versus_sentence(what: str, counts: dict) -> str:
    """"classify.alerts lost 3 records, gained 5 and changed 2 since run X" — two runs of one output."""
    parts = []
    if counts["dropped"]:
        parts.append(f"lost {plural(counts['dropped'], 'record')}")
    if counts["added"]:
        parts.append(f"gained {counts['added']:,}" if parts else f"gained {plural(counts['added'], 'record')}")
    if counts["changed"]:
        parts.append(f"changed {counts['changed']:,}" if parts else f"changed {plural(counts['changed'], 'record')}")
    if not parts:
        return f"{what} is the same in both runs ({plural(counts['unchanged'], 'record')})"
    said = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return f"{what} {said}; {counts['unchanged']:,} stayed the same"


@click.command("diff")
@click.argument("run_id")
@click.argument("node_id")
@click.option("--node", "vs_node", metavar="NODE",
              help="Compare two runs instead: RUN_A RUN_B --node NODE --port PORT (RUN_A is the earlier one).")
@click.option("--port", "vs_port", metavar="PORT", help="With --node: the output to compare between the two runs.")
@click.option("--input", "input_port", metavar="PORT", help="The input to compare (default: its first records input).")
@click.option("--output", "output_port", metavar="PORT",
              help="The output to compare (default: its first records output).")
@click.option("--kind", type=click.Choice(["dropped", "added", "changed", "unchanged"]),
              help="List only records of this kind (with --json: the page of items).")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=0, max=1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the same shape as the API).")
@workspace_option
def diff(run_id: str, node_id: str, vs_node: str | None, vs_port: str | None, input_port: str | None,
         output_port: str | None, kind: str | None, offset: int, limit: int, as_json: bool,
         workspace: Path | None) -> None:
    """What step NODE_ID did to its records in run RUN_ID: dropped, added, changed and unchanged.

    With --node and --port, the two arguments are two runs, and the diff is how that output changed
    from the first run to the second."""
    from .engine.data.stepdiff import run_diff, step_diff
    from .engine.errors import PipeloomError
    from .engine.model import load_pipeline
    from .engine.store import Store

    if (vs_node is None) != (vs_port is None):
        _fail_usage("to compare two runs give both --node NODE and --port PORT: pipeloom diff RUN_A RUN_B "
                    "--node NODE --port PORT")
    versus = vs_node is not None
    if versus and (input_port or output_port):
        _fail_usage("--input and --output are for the diff of one step; two runs are compared with --port")
    ws = _workspace(workspace)
    store = Store.open(ws)
    try:
        run_ = store.get_run(node_id if versus else run_id)
        pipeline = load_pipeline(run_["pipeline_path"], workspace=ws, check_env=False)
        if versus:
            d, ports = run_diff(ws, store, pipeline, run_id, node_id, vs_node, vs_port)
        else:
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
    if versus:
        click.echo(versus_sentence(f"{vs_node}.{vs_port}", counts) + ".")
        click.echo(f"  run {run_id} → run {node_id}; {d.note}.")
        node_id = vs_node  # for the hints below
    else:
        click.echo(sentence(node_id, d) + ".")
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
            again = (f"pipeloom diff {run_id} {ports['b']} --node {vs_node} --port {vs_port}" if versus
                     else f"pipeloom diff {run_id} {node_id}")
            click.echo(f"  … {n - shown:,} more: {again} --kind {k} --offset {shown}")


@click.command("story")
@click.argument("run_id")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The HTML file to write (one self-contained page).")
@workspace_option
def story(run_id: str, out: Path, workspace: Path | None) -> None:
    """Write run RUN_ID as one HTML page to share: the graph, each step in plain words, samples and diffs."""
    from .engine.errors import PipeloomError
    from .engine.paths import atomic_write_text
    from .engine.store import Store
    from .engine.story import build_story

    ws = _workspace(workspace)
    store = Store.open(ws)
    try:
        text = build_story(ws, store, run_id)
    except PipeloomError as exc:
        _fail_usage(f"{exc}")
        return
    finally:
        store.close()
    try:
        atomic_write_text(out, text)
    except OSError as exc:
        _fail_usage(f"cannot write {out}: {exc.strerror or exc}")
    click.echo(f"wrote {out} ({len(text.encode()) / 1024:,.0f} KB): open it in any browser, no network needed.")


COMMANDS = {"diff": diff, "story": story}
