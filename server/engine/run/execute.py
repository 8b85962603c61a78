"""Running one node: stage its inputs, prepare its runtime, run its program in its own process group
(with a timeout and retries), and collect its outputs. The same code runs in a local thread and on a Dask
worker; it touches nothing of the run but the node's working directory and what it is handed."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..data import formats
from ..applog import logger
from ..errors import BuildError, PipeloomError
from ..hashing import file_sha256
from ..process import NodeProcess, RunGuard, forget_group, new_token, record_group
from ..runtimes import get_runtime
from .task import Cancel, InputSpec, NodeLog, NodeOutcome, NodeTask

# Counting records means parsing the file; larger outputs are counted lazily by the studio.
RECORD_COUNT_LIMIT = 4 * 1024 * 1024


def execute_node(task: NodeTask, cancel: Cancel, log: NodeLog, *, guard: RunGuard | None = None,
                 groups: Path | None = None, verify: bool = False) -> NodeOutcome:
    """Run a node to its end, retrying as its `retries` allow; never raises for the node's own failures.

    `guard` stops the node's processes if this process dies; `groups`, when given, is the run folder where
    running process groups are noted for recovery; `verify` checks each input's sha256 on arrival."""
    node = task.node
    out = NodeOutcome("pending")
    attempts = node.retries + 1
    for attempt in range(1, attempts + 1):
        out.attempts = attempt
        try:
            status = _attempt(task, attempt, out, cancel, log, guard, groups, verify)
        except Exception as exc:  # a fault in Pipeloom itself: the node fails, saying what happened
            logger.error("node %s of run %s crashed", node.id, task.run_id, exc_info=exc)
            status = _end(out, "failed", f"internal error: {describe_error(exc)}")
        if status in ("succeeded", "cancelled", "build_failed") or cancel.is_set():
            break
        if attempt < attempts:
            delay = min(0.5 * 2 ** (attempt - 1), 10.0)
            log.meta(f"[pipeloom] attempt {attempt} {status}; retrying in {delay:g}s ({attempts - attempt} left)")
            if cancel.wait(delay):
                break
    if out.status == "build_failed":
        out.status = "failed"
    if cancel.is_set() and out.status not in ("succeeded", "cached"):
        out.status = "cancelled"
        out.message = out.message or "cancelled while running"
    return out


def _end(out: NodeOutcome, status: str, message: str | None = None) -> str:
    out.status = status
    out.finished_at = time.time()
    if message:
        out.message = message
    return status


def _attempt(task: NodeTask, attempt: int, out: NodeOutcome, cancel: Cancel, log: NodeLog,
             guard: RunGuard | None, groups: Path | None, verify: bool) -> str:
    node = task.node
    workdir = Path(task.workdir)
    out.started_at = time.time()
    out.finished_at = out.exit_code = out.message = out.build_s = None
    out.status = "running"
    out.artifacts = {}
    log.attempt(attempt, out.started_at)
    sink = log.output()
    try:
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        env = stage(task, workdir, verify=verify)
        built = time.monotonic()

        def build_log(line: str) -> None:
            out.build_s = 0.0  # the runtime reports what it builds: this step built something
            sink.text("build", line)

        try:
            prepared = get_runtime(node.runtime).prepare(node, task.pipeline, build_log)
        finally:
            if out.build_s is not None:
                out.build_s = round(time.monotonic() - built, 3)
    except BuildError as exc:
        return _end(out, "build_failed", f"build failed: {describe_error(exc)}")
    except (OSError, PipeloomError) as exc:
        return _end(out, "failed", describe_error(exc))
    finally:
        sink.tick()
    if cancel.is_set():
        return _end(out, "cancelled", "cancelled before it started")
    env.update(prepared.env)
    token = new_token(task.run_id, node.id)
    if guard is not None:
        guard.start()
    try:
        proc = NodeProcess(prepared.argv, cwd=str(workdir), env=env, sink=sink, token=token, guard=guard)
    except OSError as exc:
        return _end(out, "failed", f"could not start `{prepared.argv[0]}`: {describe_error(exc)}")
    if groups is not None:
        record_group(groups, node.id, proc.pgid, token, proc.started)
    if cancel.attach(node.id, proc):  # cancelled between the check above and now
        proc.kill_group()
    timed_out = False
    try:
        try:
            code = proc.wait(node.timeout)
            timed_out = code is None
            if timed_out:
                log.meta(f"[pipeloom] timed out after {node.timeout:g}s; stopping the process group")
                proc.kill_group()
                code = proc.proc.returncode
        finally:
            proc.finish_reading()
        proc.reap_group()
    finally:
        cancel.detach(node.id)
        if groups is not None:
            forget_group(groups, node.id)
    out.exit_code = code
    if cancel.is_set():
        return _end(out, "cancelled", "cancelled while running")
    if timed_out:
        return _end(out, "timed_out", f"timed out after {node.timeout:g}s")
    if code != 0:
        return _end(out, "failed", f"exited with code {code}")
    missing = [p for p in node.outputs if not (workdir / p.file).is_file()]
    if missing:
        names = ", ".join(f"`{p.name}` ({p.file})" for p in missing)
        return _end(out, "failed", f"exited 0 but did not write its declared output {names}")
    out.artifacts = {p.name: collect_artifact(workdir / p.file, p.name, p.format) for p in node.outputs}
    unreadable = [a.pop("problem") for a in out.artifacts.values() if a.get("problem")]
    for text in unreadable:
        log.meta(f"[pipeloom] warning: {text}")
    return _end(out, "succeeded", "; ".join(unreadable) or None)


def stage(task: NodeTask, workdir: Path, *, verify: bool = False) -> dict[str, str]:
    """Place inputs under their file names; return the node's environment."""
    node = task.node
    ports = {"inputs": {}, "outputs": {}}
    env = dict(os.environ)
    env.update(node.env)
    for spec in task.inputs:
        dst = workdir / spec.file
        if spec.data is not None or spec.path is not None:
            _place(task, spec, dst, verify)
        env[f"PIPELOOM_INPUT_{env_name(spec.port)}"] = str(dst)
        ports["inputs"][spec.port] = {"path": str(dst), "format": spec.format}
    for p in node.outputs:
        env[f"PIPELOOM_OUTPUT_{env_name(p.name)}"] = str(workdir / p.file)
        ports["outputs"][p.name] = {"path": str(workdir / p.file), "format": p.format}
    params = json.dumps(node.params, sort_keys=True)
    (workdir / "params.json").write_text(params + "\n")
    env.update({"PIPELOOM_PARAMS": params, "PIPELOOM_RUN_ID": task.run_id, "PIPELOOM_NODE_ID": node.id,
                "PIPELOOM_WORKDIR": str(workdir), "PIPELOOM_PORTS": json.dumps(ports)})
    return env


def _place(task: NodeTask, spec: InputSpec, dst: Path, verify: bool) -> None:
    convert = spec.src_format is not None and spec.src_format != spec.format
    src = Path(spec.path) if spec.path else None
    if spec.data is not None:
        src = dst.with_name(f".pipeloom-in-{spec.port}") if convert else dst
        src.write_bytes(spec.data)
    if verify and spec.sha256:
        got = file_sha256(src)
        if got != spec.sha256:
            what = (f"edge {spec.edge.src_node}.{spec.edge.src_port} → {task.node.id}.{spec.port}"
                    if spec.edge is not None else f"node `{task.node.id}`, input `{spec.port}`")
            raise PipeloomError(f"{what}: the data arrived damaged (sha256 {got[:12]}…, expected "
                                f"{spec.sha256[:12]}…; {spec.path or 'sent inline'}); run it again, and check the "
                                "shared folder if it happens again")
    if convert:
        convert_edge(spec.edge, {"path": str(src), "format": spec.src_format}, dst, spec.format)
        if spec.data is not None:
            src.unlink(missing_ok=True)
    elif spec.data is None:
        if spec.src_format is None:
            shutil.copyfile(src, dst)
        else:
            link_or_copy(src, dst)


def collect_artifact(path: Path, port: str, fmt: str) -> dict:
    """An output's record: size, sha256, mtime and (for small files) its record count."""
    st = path.stat()
    records = problem = None
    if st.st_size <= RECORD_COUNT_LIMIT:
        records, problem = formats.check_records(path, fmt, max_bytes=RECORD_COUNT_LIMIT)
    art = {"port": port, "path": str(path), "format": fmt, "size": st.st_size, "sha256": file_sha256(path),
           "mtime_ns": st.st_mtime_ns, "records": records}
    if problem:
        art["problem"] = (f"output `{port}` ({path.name}) was written but cannot be read as {fmt}: {problem};"
                          " steps that read it will fail")
    return art


def describe_error(exc: BaseException) -> str:
    """What happened, never empty: some exceptions (MemoryError, a bare RuntimeError) carry no message."""
    text = str(exc).strip()
    if isinstance(exc, PipeloomError) and text:
        return text
    if isinstance(exc, OSError) and text:
        return text
    kind = type(exc).__name__
    if isinstance(exc, MemoryError):
        return f"{kind}: Pipeloom ran out of memory" + (f" ({text})" if text else "")
    if isinstance(exc, RecursionError):
        return f"{kind}: the data is nested too deeply to process" + (f" ({text})" if text else "")
    return f"{kind}: {text}" if text else f"{kind} (raised without a message; Pipeloom's log has the traceback)"


def env_name(port: str) -> str:
    """PIPELOOM_INPUT_<PORT>: upper-cased, anything but a letter or digit becomes `_`."""
    return "".join(c if c.isalnum() and c.isascii() else "_" for c in port.upper())


def convert_edge(edge, art: dict, dst: Path, dst_fmt: str) -> None:
    """Convert the file an edge carries into the format its input declares; errors name the edge."""
    from ..data.isolate import convert_isolated  # a large file converts in a child, off this process's GIL

    where = f"edge {edge.src_node}.{edge.src_port} → {edge.dst_node}.{edge.dst_port} ({art['format']} → {dst_fmt})"
    try:
        convert_isolated(art["path"], art["format"], dst, dst_fmt)
    except formats.FormatError as exc:
        raise formats.ConversionError(f"{where}: {exc}") from exc
    except MemoryError:
        raise formats.ConversionError(f"{where}: ran out of memory converting {Path(art['path']).name}") from None


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link when possible (instant, no extra disk), else copy."""
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
