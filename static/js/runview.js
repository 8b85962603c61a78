// The runs on the page: the run controls, the "Showing" picker, the status bar, and the run on
// show painted onto the canvas (a past run drawn from the pipeline it ran). It listens to the run
// state (runstate.js) and reaches the rest of the page only through `host` and the panels given.
import { post, seg, download, detailLines } from "./api.js";
import { h, clear, formatDuration, formatWhen } from "./dom.js";
import { nodesOf, edgesOf } from "./doc.js";
import { describeStatus, explainStatus, isFailed } from "./status.js";
import { toast } from "./toast.js";
import { startedBy } from "./runstate.js";
import { asRan, runBlocked } from "./marks.js";

const RUN_TITLE = "Run every step of the pipeline (Ctrl+Enter)";

export class RunView {
  /**
   * state: the RunState. panels: {canvas, inspector, drawer}. els: {run, cancel, share, walk, picker,
   * runBlocked, runSummary}. host: {pipelineId, doc(), broken(), blocking(), unsaved(), titleOf(id),
   * readOnlyChanged(), beforeRun() -> Promise<bool>}.
   */
  constructor(state, { canvas, inspector, drawer }, els, host) {
    this.state = state;
    this.canvas = canvas;
    this.inspector = inspector;
    this.drawer = drawer;
    this.els = els;
    this.host = host;
    this.drawn = null; // the graph on the canvas: {doc, since, past, today, ran}
    state.addEventListener("change", (e) => this.onChange(e.detail));
  }

  get run() { return this.state.view; }

  // ------------------------------------------------------------ starting, cancelling, sharing

  async start(options = {}) {
    if (!await this.host.beforeRun()) return;
    this.els.run.disabled = true;
    let answer;
    try {
      answer = await post(`/api/pipelines/${seg(this.host.pipelineId)}/runs`, options);
    } catch (err) {
      this.updateControls();
      toast(err.status === 409 ? "A run is already going." : "The run could not start.", { kind: "error", lines: [err.message, ...detailLines(err)] });
      return;
    }
    this.els.picker.value = "";
    const nodes = options.only || options.from ? [] : nodesOf(this.host.doc()).map((n) => n.id);
    this.state.started(answer.run_id, nodes);
  }

  async cancel() {
    const run = this.run;
    if (!run || !run.run_id) return;
    this.els.cancel.disabled = true;
    try {
      await post(`/api/runs/${seg(run.run_id)}/cancel`, {});
      toast("Cancelling the run…");
    } catch (err) {
      toast("Could not cancel the run.", { kind: "error", lines: [err.message] });
      this.updateControls();
    }
  }

  /** Download the run on show as one self-contained HTML page. */
  async share() {
    const run = this.run;
    if (!run || !run.run_id) return;
    const button = this.els.share;
    button.disabled = true;
    button.textContent = "Making the page…";
    try {
      await download(`/api/runs/${seg(run.run_id)}/story`, `${this.host.pipelineId}-${run.run_id}.html`);
      toast("The page is downloaded: it opens in any browser, with no network needed.");
    } catch (err) {
      toast("Could not make the page.", { kind: "error", lines: [err.message] });
    } finally {
      button.textContent = "Share as a page";
      this.updateControls();
    }
  }

  async pick(runId) {
    try {
      await this.state.pick(runId);
    } catch (err) {
      toast("Could not open that run.", { kind: "error", lines: [err.message] });
    }
  }

  // ------------------------------------------------------------ repainting

  /** Repaint after the run state changed (its "change" events). */
  onChange({ kind, id, port, records, changed, logs, status, message }) {
    const view = this.run;
    if (kind === "view") {
      if (changed) this.drawer.reset();
      if (logs) this.drawer.seed(logs);
      this.draw();
      this.updateControls();
      this.inspector.updateRun();
      if (changed) this.drawer.render();
    } else if (kind === "node") {
      this.canvas.setStatus(id, view.nodes[id]);
      this.updateStatusbar();
      if (this.inspector.nodeId === id || this.inspector.mode !== "node") this.inspector.updateRun();
    } else if (kind === "output") {
      if (typeof records === "number") this.canvas.setRecord(id, port, records);
      this.inspector.updateRun();
    } else if (kind === "runs") {
      this.renderPicker();
      this.updateStatusbar();
    } else if (kind === "marks") {
      this.canvas.setChanged(this.state.changedPorts);
    } else if (kind === "history") {
      this.canvas.setRunContext({ shown: !!(view && view.run_id), neverRan: this.neverRan() });
    } else if (kind === "controls") {
      this.updateControls();
    } else if (kind === "finished" && status === "failed") {
      this.toastFailure(message);
    }
  }

  neverRan() {
    return this.state.neverRan(nodesOf(this.host.doc()).map((n) => n.id));
  }

  toastFailure(message) {
    const run = this.state.current;
    const failed = run && Object.entries(run.nodes).find(([, i]) => isFailed(i.status));
    if (!failed) {
      toast(`The run failed${message ? `: ${message}` : "."}`, { kind: "error", timeout: 8000 });
      return;
    }
    const [id, info] = failed;
    const titleOf = (x) => this.host.titleOf(x);
    const why = explainStatus(info, titleOf);
    toast(`The run failed at “${titleOf(id)}”.`, {
      kind: "error", timeout: 8000, lines: why ? [why.long] : [],
      actions: [{ label: "Show why", onClick: () => this.canvas.select([id], { focus: true }) }],
    });
  }

  /**
   * Put the right graph on the canvas: today's document, or a past run's own document (with what was
   * added or removed since marked, and editing off while it is on show). Then the run's statuses.
   */
  draw({ keepView = true, force = false } = {}) {
    const view = this.run;
    const today = this.host.doc();
    const ran = !this.state.following && view && view.document && typeof view.document === "object" ? view.document : null;
    const past = ran && !this.host.broken() ? asRan(today, ran) : null;
    const drawn = past && past.differs
      ? { doc: past.doc, since: past.since, past: true, today, ran }
      : { doc: today, since: { nodes: {}, edges: {} }, past: false, today, ran: null };
    const same = this.drawn && this.drawn.today === drawn.today && this.drawn.ran === drawn.ran;
    if (force || !same) {
      const wasPast = !!(this.drawn && this.drawn.past);
      this.drawn = drawn;
      this.canvas.setRunContext({ since: drawn.since });
      this.canvas.setDocument(drawn.doc, { keepView });
      if (wasPast !== drawn.past) this.host.readOnlyChanged();
    }
    this.push();
  }

  /** Cards were moved in place (no redraw): the graph drawn is the edited document. */
  moved(doc) {
    if (this.drawn && !this.drawn.past) this.drawn = { ...this.drawn, doc, today: doc };
  }

  /** Statuses, record counts and marks of the run on show, onto the graph drawn. */
  push() {
    const run = this.run;
    const statuses = {};
    const records = {};
    const from = {};
    if (run) {
      for (const [id, info] of Object.entries(run.nodes)) {
        statuses[id] = info;
        for (const [port, art] of Object.entries(info.artifacts || {})) {
          if (art && typeof art.records === "number") records[`${id}.${port}`] = art.records;
        }
        if (info.run_id && info.run_id !== run.run_id) {
          const when = formatWhen(info.finished_at || info.run_started_at);
          from[id] = { text: when ? `from ${when}` : "earlier run", title: `This step's latest result is from run ${info.run_id}${when ? ` (${when})` : ""}, an earlier run than the one on show.` };
        }
      }
    }
    // records went through an edge only when the step it feeds took them in, in the same run
    const unmeasured = new Set();
    for (const e of edgesOf(this.drawn ? this.drawn.doc : this.host.doc())) {
      const a = statuses[e.src];
      const b = statuses[e.dst];
      if (!b || (a && b.run_id && a.run_id && b.run_id !== a.run_id && b.run_id !== a.result_run)) unmeasured.add(e.key);
    }
    this.canvas.setRunContext({ shown: !!(run && run.run_id), neverRan: this.neverRan(), from });
    this.canvas.setStatuses(statuses);
    this.canvas.setRecords(records, run && run.live ? new Set() : unmeasured);
    this.canvas.setRunning(this.state.active);
    this.canvas.setChanged(this.state.changedPorts);
    this.updateStatusbar();
  }

  renderPicker() {
    const picker = this.els.picker;
    const current = this.state.following ? "" : (this.run && this.run.run_id) || "";
    clear(picker).append(h("option", { value: "" }, "the latest results"));
    for (const r of this.state.runs) {
      const when = formatWhen(r.started_at) || r.run_id;
      const status = describeStatus(r.status).word.toLowerCase();
      const duration = r.duration_s ? ` · ${formatDuration(r.duration_s)}` : "";
      picker.append(h("option", { value: r.run_id, "data-origin": startedBy(r.origin) },
        `${when} · ${r.status === "running" ? "running" : status}${duration} · ${startedBy(r.origin)}`));
    }
    picker.value = current;
    if (picker.value !== current) picker.value = "";
  }

  /** Run, Cancel, Walk through and Share as a page: on or off, Run saying why when it is off. */
  updateControls() {
    const view = this.run;
    const active = this.state.active;
    const anyActive = active || !!this.state.liveRunId;
    const blocked = this.host.broken() ? "" : runBlocked(this.host.blocking(), { unsaved: this.host.unsaved() });
    const run = this.els.run;
    run.disabled = anyActive || !nodesOf(this.host.doc()).length || !!blocked;
    run.title = blocked || (anyActive ? "A run is going; wait for it or cancel it" : RUN_TITLE);
    this.els.runBlocked.textContent = blocked;
    this.els.cancel.disabled = !active;
    this.els.share.disabled = !(view && view.run_id) || active;
    this.els.walk.disabled = !(view && view.run_id) || active;
    document.body.dataset.runStatus = view ? view.status || "" : "";
    this.updateStatusbar();
  }

  /** The status bar's sentence, counted from the same state the cards show. */
  updateStatusbar() {
    const el = this.els.runSummary;
    const view = this.run;
    const drawn = this.drawn ? this.drawn.doc : this.host.doc();
    let text = this.state.summary(nodesOf(drawn).map((n) => n.id));
    if (!this.host.broken() && this.host.blocking().length) {
      text = view && view.run_id ? `${text} · Run is off until the problem marked on the canvas is fixed`
        : "No runs yet. Run is off until the problem marked on the canvas is fixed.";
    }
    if (view && view.mode === "run" && !view.document) text += " · drawn on today's pipeline: this run did not keep its own";
    else if (this.drawn && this.drawn.past) text += " · drawn as it ran; pick “the latest results” to edit";
    el.textContent = text;
    el.dataset.status = (view && view.status) || "";
  }
}
