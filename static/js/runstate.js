// The runs of one pipeline as the studio shows them: the run followed or picked, the live
// events that change it, every step's latest result, and the run history. It knows nothing
// of the page: it emits "change" events ({kind, ...}) and the studio repaints from `view`.
//
// Two ways to look:
// - following (the default, "the latest results"): every step shows its latest result, from the
//   run going now, or the newest run that gave it one (a one-step run leaves the others' results
//   where they were; a reused step points at the run whose program made its outputs);
// - a run picked in "Showing": exactly that run, drawn from the pipeline as it ran.
import { get, seg } from "./api.js";
import { debounce, formatDuration, formatNumber, formatWhen, parseTime } from "./dom.js";
import { VOCAB, cachedFrom, isDone, isFailed, runIsActive } from "./status.js";
import { RECORDS } from "./diffview.js";

// How many recent runs are read to tell "not in this run" from "never run".
const HISTORY_RUNS = 10;

export class RunState extends EventTarget {
  constructor(pipelineId) {
    super();
    this.pipelineId = pipelineId;
    this.current = null; // the run followed or picked: {run_id, status, live, nodes: {id: info}, document?}
    this.following = true;
    this.liveRunId = null;
    this.runs = [];
    this.runsLoaded = false;
    this.latest = {}; // node id -> its latest result, from a finished run
    this.records = new Map(); // finished run id -> its stored record
    this.runNodes = new Map(); // finished run id -> Set of the node ids it included
    this.historyKnown = false;
    this.changedPorts = {}; // step id -> an output that is not the same as in the run before
    this.cache = null;
    this.refreshRuns = debounce(() => this.loadRunList(), 400);
  }

  emit(kind, detail = {}) {
    this.cache = null;
    this.dispatchEvent(new CustomEvent("change", { detail: { kind, ...detail } }));
  }

  // ------------------------------------------------------------ what is on show

  /** The run on show as every panel reads it: {run_id, status, live, mode, nodes: {id: info}, ...}.
   * Each info has `run_id` (the run its status is from) and `result_run` (the run whose outputs,
   * log and record changes it shows). Null when there is nothing to show. */
  get view() {
    if (!this.cache) this.cache = { view: this.compose() };
    return this.cache.view;
  }

  compose() {
    const run = this.current;
    if (!this.following) return run ? { ...run, mode: "run" } : null;
    const nodes = { ...this.latest };
    if (run) {
      const going = run.live && runIsActive(run.status);
      for (const [id, info] of Object.entries(run.nodes)) {
        // a step this run passed over keeps its earlier result, once the run is over
        if (!going && VOCAB.no_result.includes(info.status) && nodes[id]) continue;
        // the run whose program made a reused step's outputs: its record's `source_run`, or, while only the
        // live status has come, the run its message names
        const cached = cachedFrom(info);
        const reused = cached && cached.runId ? cached.runId : null;
        nodes[id] = { ...info, run_id: run.run_id, result_run: reused || run.run_id };
      }
    }
    if (!run) return null;
    return { ...run, mode: "latest", nodes };
  }

  /** {done, of, failed, earlier}: the steps of the run on show that finished, failed, and the steps
   * whose result is from an earlier run. Counted from `view`, as the cards are. */
  counts(ids) {
    const view = this.view;
    const out = { done: 0, of: 0, failed: 0, earlier: 0 };
    if (!view) return out;
    for (const id of ids) {
      const info = view.nodes[id];
      if (!info) continue;
      if (info.run_id && info.run_id !== view.run_id) {
        out.earlier += 1;
        continue;
      }
      out.of += 1;
      if (isDone(info.status)) out.done += 1;
      if (isFailed(info.status)) out.failed += 1;
    }
    return out;
  }

  /** The status bar's sentence for the steps `ids` on the canvas. */
  summary(ids) {
    const run = this.view;
    if (!run || !run.run_id) return "No runs yet. Press Run to start one.";
    const c = this.counts(ids);
    const when = formatWhen(run.started_at);
    const prefix = this.following ? "Latest run" : "Past run";
    const statusWord = run.status === "pending" ? "starting" : run.status;
    let text = `${prefix}${when ? ` (${when})` : ""}: ${statusWord}`;
    // no steps on the canvas (a file that does not read as a pipeline): no "0 of 0 steps"
    if (c.of || (!c.earlier && ids.length)) text += ` · ${formatNumber(c.done)} of ${formatNumber(c.of)} ${c.of === 1 ? "step" : "steps"} finished`;
    if (c.failed) text += ` · ${formatNumber(c.failed)} failed`;
    if (run.duration_s && !runIsActive(run.status)) text += ` · took ${formatDuration(run.duration_s)}`;
    if (c.earlier) text += ` · ${formatNumber(c.earlier)} ${c.earlier === 1 ? "step shows its" : "steps show their"} result from an earlier run`;
    return text;
  }

  // ------------------------------------------------------------ choosing

  /** Show a run (normalised): the one followed, or one picked. */
  show(run, { logs } = {}) {
    const changed = !this.current || this.current.run_id !== run.run_id;
    this.current = normaliseRun(run);
    this.emit("view", { changed, logs });
    this.markChanged();
  }

  /** "" follows the latest run; a run id shows exactly that run. */
  async pick(runId) {
    if (!runId) {
      this.following = true;
      const latest = this.runs[0];
      if (latest && (!this.current || this.current.run_id !== latest.run_id)) await this.load(latest.run_id);
      else this.emit("view", { changed: false });
      return;
    }
    this.following = false;
    await this.load(runId);
  }

  /** Read a run from the server and show it; rejects when it cannot be read. */
  async load(runId) {
    const data = await get(`/api/runs/${seg(runId)}`);
    const live = this.liveRunId === runId;
    this.show({ ...data, live: live && runIsActive(data.status) });
  }

  /** A run was started here: follow it from its first event. */
  started(runId, nodeIds) {
    this.following = true;
    if (!this.current || this.current.run_id !== runId) {
      const nodes = {};
      for (const id of nodeIds) nodes[id] = { status: "pending" };
      this.show({ run_id: runId, status: "pending", live: true, nodes });
    }
    this.refreshRuns();
  }

  get active() {
    const run = this.current;
    return !!(run && run.live && runIsActive(run.status));
  }

  // ------------------------------------------------------------ live events

  onSnapshot(p) {
    if (!p.run_id) {
      this.emit("controls");
      return;
    }
    const active = p.active !== undefined ? !!p.active : runIsActive(p.status);
    if (active) this.liveRunId = p.run_id;
    if (!this.following && this.current && this.current.run_id !== p.run_id) {
      this.emit("controls");
      return;
    }
    this.show({ run_id: p.run_id, status: p.status, live: active, nodes: p.nodes || {} }, { logs: p.logs });
    // The snapshot has statuses; the stored run adds times, messages, record counts and the document.
    get(`/api/runs/${seg(p.run_id)}`).then((data) => {
      if (!this.current || this.current.run_id !== p.run_id) return;
      const merged = normaliseRun({ ...data, live: this.current.live });
      for (const [id, info] of Object.entries(this.current.nodes)) {
        const was = merged.nodes[id] || {};
        merged.nodes[id] = { ...was, ...pickDefined(info), artifacts: { ...(was.artifacts || {}), ...(info.artifacts || {}) } };
      }
      if (this.current.live) merged.status = this.current.status;
      this.current = merged;
      this.emit("view", { changed: false });
    }, () => {});
    this.loadLatest();
  }

  /** Events for a run other than the one shown: start following it if it is new. */
  adopt(p) {
    if (!p.run_id || (this.current && this.current.run_id === p.run_id)) return true;
    if (p.pipeline_id && p.pipeline_id !== this.pipelineId) return false;
    if (!this.following) return false;
    this.show({ run_id: p.run_id, status: "running", live: true, nodes: {} });
    this.refreshRuns();
    return true;
  }

  onRunStatus(p) {
    const active = runIsActive(p.status);
    if (active) this.liveRunId = p.run_id;
    else if (this.liveRunId === p.run_id) this.liveRunId = null;
    if (!this.adopt(p)) {
      this.emit("controls");
      this.refreshRuns();
      return;
    }
    const run = this.current;
    run.status = p.status;
    run.live = active;
    if (active && !run.started_at) run.started_at = new Date().toISOString();
    for (const id of Array.isArray(p.nodes) ? p.nodes : []) {
      if (!run.nodes[id]) run.nodes[id] = { run_id: run.run_id, status: "pending", artifacts: {} };
    }
    this.emit("view", { changed: false });
    if (!active) {
      // Final: the stored run has durations, messages and record counts; the latest results move on.
      this.load(p.run_id).catch(() => {});
      this.loadLatest();
      this.refreshRuns();
      this.emit("finished", { runId: p.run_id, status: p.status, message: p.message });
    }
  }

  onNodeStatus(p) {
    if (!this.adopt(p)) return;
    const run = this.current;
    const prev = run.nodes[p.node_id] || { artifacts: {} };
    const info = { ...prev, run_id: run.run_id, status: p.status, exit_code: p.exit_code, duration_s: p.duration_s,
                   build_s: p.build_s, message: p.message };
    if (p.attempt) info.attempt = p.attempt;
    if (p.worker) info.worker = p.worker;
    run.nodes[p.node_id] = info;
    if (run.status === "pending") run.status = "running";
    this.emit("node", { id: p.node_id });
  }

  onOutputReady(p) {
    if (!this.adopt(p)) return;
    const run = this.current;
    const info = run.nodes[p.node_id] || (run.nodes[p.node_id] = { run_id: run.run_id, status: "running", artifacts: {} });
    info.artifacts = { ...(info.artifacts || {}), [p.port]: { format: p.format, size: p.size, records: p.records } };
    this.emit("output", { id: p.node_id, port: p.port, records: p.records });
  }

  // ------------------------------------------------------------ reading the history

  async loadLatest() {
    let data;
    try {
      data = await get(`/api/pipelines/${seg(this.pipelineId)}/latest`);
    } catch {
      return;
    }
    const latest = {};
    for (const [id, info] of Object.entries((data && data.nodes) || {})) latest[id] = normaliseNode(info);
    this.latest = latest;
    if (this.following) this.emit("view", { changed: false });
  }

  async loadRunList() {
    let runs;
    try {
      runs = await get(`/api/runs?pipeline=${encodeURIComponent(this.pipelineId)}`);
    } catch {
      return;
    }
    this.runs = Array.isArray(runs) ? runs : runs && Array.isArray(runs.runs) ? runs.runs : [];
    this.runsLoaded = true;
    this.emit("runs");
    this.markChanged();
    this.checkHistory();
  }

  /** The run before `runId` that included step `nodeId` (finished), from the run list; null when none. */
  runBefore(runId, nodeId) {
    const i = this.runs.findIndex((r) => r.run_id === runId);
    if (i < 0) return null;
    for (const r of this.runs.slice(i + 1)) {
      if (runIsActive(r.status)) continue;
      const rec = this.records.get(r.run_id);
      if (!rec || (rec.nodes && rec.nodes[nodeId])) return r.run_id;
    }
    return null;
  }

  /** A finished run's stored record, read once; null when it cannot be read. */
  async record(runId) {
    let rec = this.records.get(runId);
    if (!rec) {
      try {
        rec = await get(`/api/runs/${seg(runId)}`);
      } catch {
        return null;
      }
      if (!runIsActive(rec.status)) this.records.set(runId, rec);
    }
    return rec;
  }

  /** Which steps' records outputs differ from the run before (by content hash); emits "marks". */
  async markChanged() {
    const run = this.current;
    const marks = {};
    if (run && run.run_id && !runIsActive(run.status)) {
      const i = this.runs.findIndex((r) => r.run_id === run.run_id);
      const before = i < 0 ? null : this.runs.slice(i + 1).find((r) => !runIsActive(r.status));
      if (before) {
        // the stored records carry each output's content hash (a live snapshot may not)
        const [prev, cur] = await Promise.all([this.record(before.run_id), this.record(run.run_id)]);
        if (this.current !== run) return; // another run is on show by now
        for (const [id, info] of Object.entries((prev && cur && cur.nodes) || {})) {
          const old = (prev.nodes || {})[id];
          if (!old || !isDone(info.status)) continue;
          for (const [port, art] of Object.entries(info.artifacts || {})) {
            const was = (old.artifacts || {})[port];
            if (art && was && RECORDS.includes(art.format) && art.sha256 && was.sha256 && art.sha256 !== was.sha256) {
              marks[id] = marks[id] || port;
            }
          }
        }
      }
    }
    this.changedPorts = marks;
    this.emit("marks");
  }

  /** Steps that no run of the pipeline included, when the history says so for sure. */
  neverRan(ids) {
    if (!this.historyKnown) return new Set();
    const ran = new Set(Object.keys(this.latest));
    for (const seen of this.runNodes.values()) for (const id of seen) ran.add(id);
    if (this.current && this.current.nodes) for (const id of Object.keys(this.current.nodes)) ran.add(id);
    return new Set(ids.filter((id) => !ran.has(id)));
  }

  /** Read the recent runs (once each) to learn which steps ever ran; emits "history". */
  async checkHistory() {
    if (!this.runsLoaded) return;
    if (this.historyChecking) {
      this.historyAgain = true;
      return;
    }
    this.historyChecking = true;
    try {
      const recent = this.runs.slice(0, HISTORY_RUNS);
      for (const r of recent) {
        if (this.runNodes.has(r.run_id) || runIsActive(r.status)) continue;
        const data = await this.record(r.run_id);
        if (data && !runIsActive(data.status)) this.runNodes.set(r.run_id, new Set(Object.keys(data.nodes || {})));
      }
      const shown = this.current && this.current.run_id;
      this.historyKnown = this.runs.length <= HISTORY_RUNS &&
        recent.every((r) => this.runNodes.has(r.run_id) || r.run_id === shown);
    } finally {
      this.historyChecking = false;
    }
    this.emit("history");
    if (this.historyAgain) {
      this.historyAgain = false;
      this.checkHistory();
    }
  }
}

/** Fill in the shape every panel expects: nodes with an `artifacts` map and the run they are from. */
export function normaliseRun(run) {
  const nodes = {};
  for (const [id, raw] of Object.entries(run.nodes || {})) nodes[id] = { ...normaliseNode(raw), run_id: run.run_id };
  const out = { ...run, nodes };
  if (out.duration_s === undefined && out.started_at && out.finished_at) {
    const a = parseTime(out.started_at);
    const b = parseTime(out.finished_at);
    if (a && b) out.duration_s = (b - a) / 1000;
  }
  return out;
}

function normaliseNode(raw) {
  const info = { ...raw };
  let artifacts = info.artifacts;
  if (!artifacts && info.outputs && Object.values(info.outputs).every((v) => v && typeof v === "object")) artifacts = info.outputs;
  info.artifacts = {};
  for (const [port, art] of Object.entries(artifacts || {})) info.artifacts[port] = { ...art };
  if (info.records && typeof info.records === "object") {
    for (const [port, n] of Object.entries(info.records)) {
      if (info.artifacts[port] && typeof n === "number") info.artifacts[port].records = n;
    }
  }
  return info;
}

function pickDefined(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && k !== "artifacts") out[k] = v;
  return out;
}

/** What started a run, in the words of the run picker: "Run button", "CLI", "trigger readings". */
export function startedBy(origin) {
  const by = origin && origin.by;
  if (by === "trigger") return `trigger ${origin.trigger}`;
  return { studio: "Run button", cli: "CLI", autorun: "auto-run" }[by] || "CLI or studio";
}
