// The studio page for one pipeline: it owns the document, the undo history, saving and the live
// connection, and wires the panels together. The runs live in runstate.js (drawn by runview.js).
import { get, put, seg, detailLines } from "./api.js";
import { h, clear, debounce, formatNumber } from "./dom.js";
import {
  nodesOf, edgesOf, portsOf, withoutEdges, withoutNodes, withPositions, withNotePositions, withNodeFields, cloneDoc,
} from "./doc.js";
import { Canvas } from "./canvas.js";
import { autoLayout, carryNotes, placeUnpositioned } from "./layout.js";
import { Inspector } from "./inspector.js";
import { LogDrawer } from "./logs.js";
import { connectLive } from "./live.js";
import { toast } from "./toast.js";
import { Palette } from "./palette.js";
import { Versions } from "./versions.js";
import { TriggersPanel } from "./triggers.js";
import { WalkThrough } from "./walkthrough.js";
import { RunState } from "./runstate.js";
import { RunView } from "./runview.js";
import { problemMarks } from "./marks.js";
import { Connector } from "./connect.js";
import { NoteLayer } from "./notes.js";
import { bindInspectorResize, bindInspectorToggle } from "./inspectortoggle.js";

const SAVE_DELAY_MS = 600;
// Names this tab to the server, so a burst of its saves makes one version.
const CLIENT_ID = (globalThis.crypto && crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`)
  .replace(/[^A-Za-z0-9_-]/g, "").slice(0, 64);
const HISTORY_LIMIT = 100;

class Studio {
  constructor() {
    this.pipelineId = document.querySelector('meta[name="pipeloom-pipeline"]').content;
    this.doc = { version: 1, name: "", nodes: [], edges: [] };
    this.version = null;
    this.path = "";
    this.problems = [];
    this.runtimes = {};
    this.undoStack = [];
    this.redoStack = [];
    this.saveState = "loading";
    this.saving = null;
    this.dirty = false;
    this.conflict = false;
    this.invalidProblems = []; // the problems of an edit the server refused to save
    this.runState = new RunState(this.pipelineId);
    this.runView = null; // made with the canvas
    this.connector = new Connector({
      pipelineId: this.pipelineId,
      doc: () => this.doc,
      node: (id) => this.node(id),
      titleOf: (id) => this.titleOf(id),
      commit: (next) => this.commit(next),
      selectEdge: (key) => this.canvas.selectEdge(key),
      undo: () => this.undo(),
    });
    this.selection = { nodes: [], edge: null };
    this.scheduleSave = debounce(() => this.save(), SAVE_DELAY_MS);
  }

  /** The run on show, as the panels read it (runstate.js: every step's latest result, or a picked run). */
  get run() { return this.runState.view; }

  get runs() { return this.runState.runs; }

  get following() { return this.runState.following; }

  get changedPorts() { return this.runState.changedPorts; }

  runBefore(runId, nodeId) { return this.runState.runBefore(runId, nodeId); }

  // ------------------------------------------------------------ start-up

  async init() {
    const $ = (id) => document.getElementById(id);
    this.els = {
      name: $("pipeline-name"), saveState: $("save-state"), versions: $("versions-popover"),
      run: $("run-button"), cancel: $("cancel-button"), picker: $("run-picker"), autorun: $("autorun"),
      share: $("share-button"), walk: $("walk-button"),
      banner: $("banner"), palette: $("palette"), paletteList: $("palette-list"), paletteToggle: $("palette-toggle"),
      canvas: $("canvas"), inspector: $("inspector"), drawer: $("drawer"),
      conn: $("conn-state"), runSummary: $("run-summary"), docSummary: $("doc-summary"),
      undo: $("undo"), redo: $("redo"), runBlocked: $("run-blocked"),
      dialog: $("add-node-dialog"),
    };
    this.inspector = new Inspector(this.els.inspector, this);
    this.walk = new WalkThrough(this);
    this.palette = new Palette(this);
    this.versions = new Versions(this);
    this.triggersPanel = new TriggersPanel({
      button: $("triggers-button"), popover: $("triggers-popover"), pipelineId: this.pipelineId,
      openRun: (runId) => { this.triggersPanel.close(); this.viewRun(runId); },
    });
    this.drawer = new LogDrawer(this.els.drawer, this);
    this.bindTopbar();
    bindInspectorResize({ handle: document.getElementById("inspector-resizer"), studio: document.getElementById("studio"),
      inspector: this.els.inspector });

    let runtimes;
    let pipeline;
    try {
      [runtimes, pipeline] = await Promise.all([
        get("/api/runtimes").catch(() => []),
        get(`/api/pipelines/${seg(this.pipelineId)}`),
      ]);
    } catch (err) {
      this.fatal(err);
      return;
    }
    // Badges are names, so they start with a capital ("command" reads "Command"); the runtime id stays as it is.
    for (const rt of runtimes || []) this.runtimes[rt.name] = { ...rt, label: capitalise(rt.label || rt.name) };
    this.canvas = new Canvas(this.els.canvas, {
      runtimes: this.runtimes,
      handlers: {
        onSelect: (nodes, edge) => this.onSelect(nodes, edge),
        onMove: (positions) => this.commit(withPositions(this.doc, positions), { render: false }),
        onConnect: (a, ap, b, bp) => this.connector.connect(a, ap, b, bp),
        onConnectCard: (a, ap, b) => this.connector.connectToCard(a, ap, b),
        onDelete: (nodes, edges) => this.deleteSelection(nodes, edges),
        onDropRuntime: (runtime, point) => this.palette.openAddDialog(runtime, point),
        onActivate: (id) => this.focusInspector(id),
        onShowChanged: (id, port) => {
          this.canvas.select([id]);
          this.inspector.showVersus(port);
        },
        onHint: (text) => toast(text),
      },
    });
    const els = this.els;
    this.runView = new RunView(this.runState, { canvas: this.canvas, inspector: this.inspector, drawer: this.drawer }, els, {
      pipelineId: this.pipelineId,
      doc: () => this.doc,
      broken: () => this.broken,
      blocking: () => this.blockingProblems(),
      unsaved: () => this.saveState === "invalid",
      titleOf: (id) => this.titleOf(id),
      readOnlyChanged: () => {
        this.setReadOnly(this.broken);
        this.showProblems();
      },
      beforeRun: () => this.readyToRun(),
    });
    this.notes = new NoteLayer(this.canvas, {
      getDoc: () => this.doc, commit: (next) => this.commit(next), blocked: () => this.broken || this.walk.active,
      say: (text) => toast(text, { actions: [{ label: "Undo", onClick: () => this.undo() }] }),
    });
    this.canvas.addLayer(this.notes);
    document.getElementById("add-note").addEventListener("click", () => this.notes.add());
    this.inspectorToggle = bindInspectorToggle({
      studio: document.getElementById("studio"), inspector: this.els.inspector,
      button: document.getElementById("inspector-toggle"),
    });
    this.palette.buildPalette();
    this.bindCanvasTools();
    this.bindKeys();
    this.doc = pipeline.document && typeof pipeline.document === "object" ? pipeline.document : this.doc;
    this.palette.initialPalette();
    await this.applyPipeline(pipeline, { fit: true });
    this.inspector.show();
    this.drawer.render();
    this.live = connectLive(this.pipelineId, {
      onState: (state) => this.onConnection(state),
      snapshot: (p) => this.onSnapshot(p),
      run_status: (p) => (!p.pipeline_id || p.pipeline_id === this.pipelineId) && this.runState.onRunStatus(p),
      node_status: (p) => this.runState.onNodeStatus(p),
      log: (p) => this.runState.adopt(p) && this.drawer.push(p.node_id, p.lines || []),
      output_ready: (p) => this.runState.onOutputReady(p),
      source_changed: (p) => this.onSourceChanged(p),
      pipeline_changed: (p) => this.onPipelineChanged(p),
      trigger_status: (p) => this.triggersPanel.update(p),
    });
    this.runState.loadRunList();
    this.runState.loadLatest();
    this.triggersPanel.refresh();
    window.addEventListener("beforeunload", (e) => {
      if (this.dirty || this.saving) {
        this.scheduleSave.flush();
        e.preventDefault();
        e.returnValue = "";
      }
    });
    document.body.dataset.ready = "true";
  }

  fatal(err) {
    clear(this.els.canvas).append(h("div", { class: "canvas-empty" },
      h("div", { class: "canvas-empty-title" }, err.status === 404 ? "This pipeline does not exist (any more)." : "The pipeline could not be opened."),
      h("div", { class: "canvas-empty-hint" }, err.message),
      h("a", { class: "btn", href: "/" }, "Back to the list")));
    this.setSaveState("error", "Not loaded");
  }

  /** Take a GET/PUT pipeline answer as the current state. */
  async applyPipeline(data, { fit = false, keepHistory = true } = {}) {
    const parsed = data.document && typeof data.document === "object" ? data.document : null;
    // A file that does not parse has no document to show or to save over.
    const broken = data.broken === true || (!parsed && (data.problems || []).length > 0);
    let doc = parsed || { version: 1, name: data.name, nodes: [], edges: [] };
    // Stored positions are the user's (or the file author's): keep every one of
    // them, and place only the nodes that have none (saved with the next edit).
    const placed = await placeUnpositioned(doc);
    if (Object.keys(placed).length) doc = withPositions(doc, placed);
    this.doc = doc;
    this.savedIds = new Set(nodesOf(parsed).map((n) => n.id));
    this.version = data.version;
    this.path = data.path || this.path;
    this.problems = data.problems || [];
    this.broken = broken;
    this.replaceBroken = false;
    if (!keepHistory || broken) {
      this.undoStack = [];
      this.redoStack = [];
    }
    this.els.name.textContent = data.name || doc.name || this.pipelineId;
    document.title = `${data.name || doc.name || this.pipelineId} — Pipeloom`;
    if (typeof data.autorun === "boolean") this.els.autorun.checked = data.autorun;
    this.setReadOnly(broken);
    this.draw({ keepView: !fit, force: true });
    this.triggersPanel.setDeclared(Array.isArray(doc.triggers) ? doc.triggers : []);
    this.dirty = false;
    this.conflict = false;
    if (broken) this.showBrokenBanner();
    else this.hideBanner();
    this.invalidProblems = [];
    this.setSaveState(broken ? "broken" : this.problems.length ? "problems" : "saved");
    this.showProblems();
    this.updateUndo();
    this.updateDocSummary();
    this.updateRunControls();
    this.runState.checkHistory();
  }

  /** A broken file is shown read-only: no palette, no edits, no saves, until it parses again. */
  setReadOnly(readOnly) {
    document.body.dataset.broken = readOnly ? "true" : "false";
    this.els.palette.hidden = readOnly;
    this.canvas.setReadOnly(readOnly || !!(this.drawn && this.drawn.past), readOnly && {
      title: "This file has errors, so the studio can't show it",
      hint: "Fix it in your editor; the studio reloads it when it changes.",
    });
    document.getElementById("auto-layout").disabled = readOnly;
    document.getElementById("add-note").disabled = readOnly;
  }

  showBrokenBanner() {
    this.showBanner("This file has errors, so the studio can't show it:", [
      { label: "Earlier versions", onClick: () => this.versions.toggleVersions() },
    ], {
      lines: problemLines(this.problems),
      after: "Fix it in your editor; the studio reloads it when it changes.",
      kind: "error",
    });
  }

  /** The title a step shows (its id when it has none). */
  titleOf(id) {
    const node = this.node(id);
    return (node && node.title) || id;
  }

  node(id) {
    const here = nodesOf(this.doc).find((n) => n.id === id);
    // a step removed since the past run on show is still drawn (and can be looked at)
    return here || (this.drawn && this.drawn.past ? nodesOf(this.drawn.doc).find((n) => n.id === id) : null) || null;
  }

  /** True when the file on the server has this step (its source can be asked for). */
  isSaved(id) {
    return !!(this.savedIds && this.savedIds.has(id));
  }

  // ------------------------------------------------------------ editing

  /** Make `next` the document: record undo, redraw, save soon. */
  commit(next, { render = true } = {}) {
    if (this.broken) {
      toast("The file has errors, so it cannot be edited here. Fix it in your editor first.", { kind: "error" });
      this.draw({ force: true });
      return;
    }
    this.undoStack.push(this.doc);
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.doc = next;
    if (render) this.draw({ force: true });
    else this.runView.moved(next);
    this.afterEdit();
  }

  afterEdit() {
    this.dirty = true;
    this.updateRunControls();
    this.setSaveState("pending");
    this.updateUndo();
    this.updateDocSummary();
    if (this.selection.nodes.some((id) => !this.node(id))) this.selection.nodes = this.selection.nodes.filter((id) => this.node(id));
    this.inspector.refresh();
    if (!this.conflict) this.scheduleSave();
  }

  undo() { this.travel(this.undoStack, this.redoStack); }

  redo() { this.travel(this.redoStack, this.undoStack); }

  /** Move one step through history: take a document from `from`, keep the current one in `to`. */
  travel(from, to) {
    if (!from.length || this.broken) return;
    to.push(this.doc);
    this.doc = from.pop();
    this.draw({ force: true });
    this.afterEdit();
  }

  updateUndo() {
    this.els.undo.disabled = !this.undoStack.length || this.broken;
    this.els.redo.disabled = !this.redoStack.length || this.broken;
  }

  /** Connect two ports, asking the engine first (connect.js). */
  connect(src, srcPort, dst, dstPort) { return this.connector.connect(src, srcPort, dst, dstPort); }

  deleteSelection(nodeIds, edgeKeys) {
    let next = this.doc;
    if (edgeKeys.length) next = withoutEdges(next, edgeKeys);
    if (nodeIds.length) next = withoutNodes(next, nodeIds);
    if (next === this.doc) return;
    this.commit(next);
    this.canvas.select([]);
    const what = nodeIds.length === 1
      ? `Removed step “${nodeIds[0]}”. Its source file stays on disk.`
      : nodeIds.length
        ? `Removed ${formatNumber(nodeIds.length)} steps. Their source files stay on disk.`
        : edgeKeys.length === 1 ? "Removed the connection." : `Removed ${formatNumber(edgeKeys.length)} connections.`;
    toast(what, { actions: [{ label: "Undo", onClick: () => this.undo() }] });
  }

  /** Change some fields of one node (title, description, params, ports). */
  editNode(id, fields) {
    const node = this.node(id);
    if (!node) return;
    const same = Object.entries(fields).every(([k, v]) => JSON.stringify(node[k] ?? "") === JSON.stringify(v ?? ""));
    if (same) return;
    this.commit(withNodeFields(this.doc, id, fields));
  }

  addPort(id, kind, name, format) {
    const node = this.node(id);
    if (!node) return;
    if (portsOf(node, "inputs").some((p) => p.name === name) || portsOf(node, "outputs").some((p) => p.name === name)) {
      toast(`Step “${id}” already has a port called “${name}”.`, { kind: "error" });
      return;
    }
    const raw = Array.isArray(node[kind]) ? cloneDoc(node[kind]) : [];
    raw.push({ name, format });
    this.commit(withNodeFields(this.doc, id, { [kind]: raw }));
  }

  removePort(id, kind, name) {
    const node = this.node(id);
    if (!node) return;
    const raw = (Array.isArray(node[kind]) ? node[kind] : []).filter((p) => (typeof p === "string" ? p : p && p.name) !== name);
    const touching = edgesOf(this.doc)
      .filter((e) => (kind === "inputs" ? e.dst === id && e.dstPort === name : e.src === id && e.srcPort === name))
      .map((e) => e.key);
    this.commit(withNodeFields(withoutEdges(this.doc, touching), id, { [kind]: raw.length ? raw : undefined }));
  }

  /** Tidy up: the steps laid out again, each note taken along with the step it explains; one edit, one undo. */
  async layout() {
    const positions = await autoLayout(this.doc);
    const notes = carryNotes(this.doc, positions, this.notes.sizes());
    this.commit(withNotePositions(withPositions(this.doc, positions), notes));
    this.canvas.fit();
  }

  // ------------------------------------------------------------ saving

  async save() {
    if (this.conflict || !this.dirty || this.broken) return;
    if (this.saving) {
      this.resave = true;
      return;
    }
    const doc = this.doc;
    this.setSaveState("saving");
    const body = { document: doc, version: this.version, client: CLIENT_ID };
    // Only after the user chose to replace a file that stopped parsing.
    if (this.replaceBroken) body.replace_broken = true;
    this.saving = put(`/api/pipelines/${seg(this.pipelineId)}`, body);
    try {
      const data = await this.saving;
      this.replaceBroken = false;
      this.version = data.version;
      this.savedIds = new Set(nodesOf(doc).map((n) => n.id));
      this.problems = data.problems || [];
      this.invalidProblems = [];
      this.path = data.path || this.path;
      if (this.doc === doc) {
        this.dirty = false;
        this.setSaveState(this.problems.length ? "problems" : "saved");
      }
      if (this.invalidToast) {
        this.invalidToast.close();
        this.invalidToast = null;
      }
      if (data.name) this.els.name.textContent = data.name;
      this.showProblems();
      this.inspector.saved();
    } catch (err) {
      this.onSaveError(err);
    } finally {
      this.saving = null;
    }
    if (this.resave || (this.dirty && !this.conflict && this.saveState !== "invalid")) {
      this.resave = false;
      if (this.dirty && !this.conflict) this.scheduleSave();
    }
  }

  /** Unsaved edits, and the file on disk stopped parsing: never replace it unasked. */
  showBrokenConflict(problems) {
    this.conflict = true;
    this.replaceBroken = false;
    this.scheduleSave.cancel();
    this.setSaveState("conflict", "Not saved: the file on disk has errors");
    this.showBanner("Not saved: the file on disk now has errors.", [
      { label: "Replace it with my version", onClick: () => this.overwrite(undefined, { replaceBroken: true }) },
      { label: "Drop my changes", onClick: () => this.reload() },
    ], {
      lines: problemLines(problems),
      after: "Fix it in your editor to keep both (the studio asks again), or replace it with the version shown here.",
      kind: "error",
    });
  }

  onSaveError(err) {
    if (err.status === 409 && err.body && err.body.broken) {
      this.showBrokenConflict(err.details);
      return;
    }
    if (err.status === 409) {
      this.conflict = true;
      this.setSaveState("conflict");
      this.showBanner("The file changed on disk — reload?", [
        { label: "Reload", primary: true, onClick: () => this.reload() },
        { label: "Keep my version", onClick: () => this.overwrite(err.body.current_version) },
      ]);
      return;
    }
    if (err.status === 422) {
      this.invalidProblems = err.details.length ? err.details : [{ message: err.message }];
      this.setSaveState("invalid");
      this.invalidDetails = detailLines(err);
      this.showProblems();
      if (!this.invalidToastShown) {
        this.invalidToastShown = true;
        this.invalidToast = toast("Not saved yet: fix this first; it saves by itself once fixed.", { kind: "error", lines: this.invalidDetails });
      }
      return;
    }
    this.setSaveState("error");
    toast("Saving failed.", { kind: "error", lines: [err.message] });
  }

  /** Wait until the document on disk matches the editor (before a run). */
  async flushSave() {
    this.scheduleSave.cancel();
    for (let i = 0; i < 5 && (this.saving || this.dirty); i += 1) {
      if (this.saving) {
        await this.saving.catch(() => {});
        await new Promise((r) => setTimeout(r, 0));
        continue;
      }
      if (this.conflict || this.saveState === "invalid") break;
      await this.save();
    }
    return !this.dirty;
  }

  async overwrite(currentVersion, { replaceBroken = false } = {}) {
    this.hideBanner();
    this.conflict = false;
    this.replaceBroken = replaceBroken;
    if (typeof currentVersion === "number") this.version = currentVersion;
    else {
      try {
        this.version = (await get(`/api/pipelines/${seg(this.pipelineId)}`)).version;
      } catch (err) {
        toast("Could not read the current version.", { kind: "error", lines: [err.message] });
        return;
      }
    }
    this.dirty = true;
    await this.save();
  }

  async reload({ quiet = false } = {}) {
    this.scheduleSave.cancel();
    let data;
    try {
      data = await get(`/api/pipelines/${seg(this.pipelineId)}`);
    } catch (err) {
      toast("Could not reload the pipeline.", { kind: "error", lines: [err.message] });
      return;
    }
    this.inspector.forgetSources();
    await this.applyPipeline(data, { keepHistory: false });
    if (this.selection.nodes.some((id) => !this.node(id))) this.canvas.select([]);
    if (this.drawer.scope && !this.node(this.drawer.scope)) this.drawer.setScope(null);
    this.inspector.refresh();
    this.drawer.render();
    if (!quiet) toast("Reloaded the pipeline from its file.");
  }

  setSaveState(state, text) {
    this.saveState = state;
    if (state !== "invalid") this.invalidToastShown = false;
    const labels = {
      loading: "Loading…",
      saved: `Saved · version ${this.version}`,
      problems: `Saved · version ${this.version} · ${this.problems.length} ${this.problems.length === 1 ? "problem" : "problems"}`,
      broken: "The file has errors",
      pending: "Unsaved changes…",
      saving: "Saving…",
      conflict: "Not saved: the file changed on disk",
      invalid: "Not saved: fix the problem first",
      error: "Not saved",
    };
    const el = this.els.saveState;
    el.dataset.state = state;
    el.textContent = text || labels[state] || state;
    el.title = state === "invalid" && this.invalidDetails ? this.invalidDetails.join("\n") : "Versions of this pipeline";
    if (this.inspector) this.inspector.saveStateChanged();
  }

  // ------------------------------------------------------------ selection and panels

  onSelect(nodes, edge) {
    this.selection = { nodes, edge };
    if (nodes.length === 1) {
      this.inspector.show({ nodeId: nodes[0] });
      this.drawer.setScope(nodes[0]);
    } else if (edge) {
      this.inspector.show({ edgeKey: edge });
    } else {
      this.inspector.show({});
      this.drawer.setScope(null);
    }
  }

  focusInspector(id) {
    this.canvas.select([id]);
    const first = this.els.inspector.querySelector("input, textarea, button");
    if (first) first.focus();
  }

  /** Open the log drawer on a step (`runId`: its log from that run instead of the run shown). */
  focusLog(id, { runId = null } = {}) {
    this.drawer.setOpen(true);
    this.drawer.setScope(id);
    if (runId) this.drawer.openFull({ runId });
    this.drawer.body.focus();
  }

  // ------------------------------------------------------------ runs (runview.js draws them)

  startRun(options = {}) { return this.runView.start(options); }

  /** Before a run: the file on disk is the document shown (saved, with no problem holding it back). */
  async readyToRun() {
    if (this.conflict) {
      toast("Reload the pipeline first: the file changed on disk.", { kind: "error" });
      return false;
    }
    if (await this.flushSave()) return true;
    toast("The pipeline has unsaved changes with a problem; fix it before running.", { kind: "error", lines: this.invalidDetails || [] });
    return false;
  }

  viewRun(runId) { return this.runView.pick(runId); }

  updateRunControls() { if (this.runView) this.runView.updateControls(); }

  draw(options) { if (this.runView) this.runView.draw(options); }

  /** The graph on the canvas: {doc, since, past} (a past run is drawn as it ran). */
  get drawn() { return this.runView ? this.runView.drawn : null; }

  /** The problems that keep the document from running: the saved file's, or an unsaved edit's. */
  blockingProblems() {
    if (this.saveState === "invalid" && this.invalidProblems.length) return this.invalidProblems;
    return this.broken ? [] : this.problems || [];
  }

  /** Mark the problems on the steps, ports and connections they concern (today's pipeline: not on a
   * past run drawn as it ran); Run says why it is off. */
  showProblems() {
    const past = this.drawn && this.drawn.past;
    if (this.canvas) this.canvas.setProblems(past ? {} : problemMarks(this.blockingProblems()));
    this.updateRunControls();
  }

  updateDocSummary() {
    if (this.broken) {
      this.els.docSummary.textContent = `The file has errors${this.path ? ` · ${this.path}` : ""}`;
      return;
    }
    const n = nodesOf(this.doc).length;
    const e = edgesOf(this.doc).length;
    this.els.docSummary.textContent = `${formatNumber(n)} ${n === 1 ? "step" : "steps"} · ${formatNumber(e)} ${e === 1 ? "connection" : "connections"}${this.path ? ` · ${this.path}` : ""}`;
  }

  // ------------------------------------------------------------ live events

  onConnection(state) {
    const el = this.els.conn;
    el.dataset.state = state;
    el.textContent = { connected: "Live", connecting: "Connecting…", disconnected: "Reconnecting…", refused: "Not allowed: reload the page with the link from the terminal" }[state] || state;
  }

  onSnapshot(p) {
    if (!p || (p.pipeline_id && p.pipeline_id !== this.pipelineId)) return;
    if (typeof p.autorun === "boolean") this.els.autorun.checked = p.autorun;
    this.runState.onSnapshot(p);
  }

  onSourceChanged(p) {
    if (p.pipeline_id && p.pipeline_id !== this.pipelineId) return;
    this.inspector.sourceChanged(p.node_id, p);
  }

  async onPipelineChanged(p) {
    if (p.pipeline_id && p.pipeline_id !== this.pipelineId) return;
    if (this.saving) await this.saving.catch(() => {});
    if (typeof p.version === "number" && p.version === this.version && !this.broken) return;
    if (this.dirty) {
      this.conflict = true;
      this.scheduleSave.cancel();
      let current = null;
      try {
        current = await get(`/api/pipelines/${seg(this.pipelineId)}`);
      } catch {
        // the plain question below still holds
      }
      if (current && current.broken) {
        this.showBrokenConflict(current.problems);
        return;
      }
      this.setSaveState("conflict");
      this.showBanner("The file changed on disk — reload?", [
        { label: "Reload", primary: true, onClick: () => this.reload() },
        { label: "Keep my version", onClick: () => this.overwrite(p.version) },
      ]);
      return;
    }
    const wasBroken = this.broken;
    await this.reload({ quiet: true });
    if (this.broken) return; // the banner says it
    toast(wasBroken ? `The file reads cleanly again; showing version ${this.version}.` : `The pipeline file changed on disk; showing version ${this.version}.`);
  }

  // ------------------------------------------------------------ chrome

  /** A message above the canvas; `lines` list details, `after` follows them, `kind` "error" marks a problem. */
  showBanner(message, actions, { lines = [], after = "", kind = "warning" } = {}) {
    const b = this.els.banner;
    clear(b).append(
      h("div", { class: "banner-body" },
        h("span", { class: "banner-text" }, message),
        lines.length ? h("ul", { class: "banner-lines" }, lines.slice(0, 6).map((l) => h("li", {}, l))) : null,
        lines.length > 6 ? h("div", { class: "banner-after" }, `and ${formatNumber(lines.length - 6)} more`) : null,
        after ? h("div", { class: "banner-after" }, after) : null),
      ...actions.map((a) => h("button", { type: "button", class: `btn btn-small${a.primary ? " btn-primary" : ""}`, onclick: a.onClick }, a.label)));
    b.dataset.kind = kind;
    b.hidden = false;
  }

  hideBanner() {
    this.els.banner.hidden = true;
  }

  bindTopbar() {
    this.els.run.addEventListener("click", () => this.startRun({}));
    this.els.cancel.addEventListener("click", () => this.runView.cancel());
    this.els.share.addEventListener("click", () => this.runView.share());
    this.els.walk.addEventListener("click", () => (this.walk.active ? this.walk.stop() : this.walk.start()));
    this.els.picker.addEventListener("change", () => this.viewRun(this.els.picker.value));
    this.els.autorun.addEventListener("change", async () => {
      const enabled = this.els.autorun.checked;
      try {
        const r = await put(`/api/pipelines/${seg(this.pipelineId)}/autorun`, { enabled });
        this.els.autorun.checked = !!(r && r.enabled !== undefined ? r.enabled : enabled);
        toast(enabled ? "Auto-run is on: saving a step's file re-runs it and what follows." : "Auto-run is off.");
      } catch (err) {
        this.els.autorun.checked = !enabled;
        toast("Could not change auto-run.", { kind: "error", lines: [err.message] });
      }
    });
    this.els.saveState.addEventListener("click", () => this.versions.toggleVersions());
    document.addEventListener("pointerdown", (e) => {
      if (!this.els.versions.hidden && !e.target.closest(".versions")) this.versions.closeVersions();
    });
  }

  bindCanvasTools() {
    const on = (id, fn) => document.getElementById(id).addEventListener("click", fn);
    on("zoom-in", () => this.canvas.zoomBy(1.25));
    on("zoom-out", () => this.canvas.zoomBy(0.8));
    on("zoom-fit", () => this.canvas.fit());
    on("auto-layout", () => this.layout());
    on("undo", () => this.undo());
    on("redo", () => this.redo());
  }

  bindKeys() {
    document.addEventListener("keydown", (e) => {
      const typing = e.target.closest && e.target.closest("input, textarea, select, [contenteditable=true]");
      const mod = e.ctrlKey || e.metaKey;
      if (e.key === "Escape" && !this.els.versions.hidden) {
        this.versions.closeVersions();
        return;
      }
      if (typing || this.els.dialog.open) return;
      const key = e.key.toLowerCase();
      if (mod && key === "z" && !e.shiftKey) {
        e.preventDefault();
        this.undo();
      } else if (mod && ((key === "z" && e.shiftKey) || key === "y")) {
        e.preventDefault();
        this.redo();
      } else if (mod && e.key === "Enter") {
        e.preventDefault();
        if (!this.els.run.disabled) this.startRun({});
      } else if ((e.key === "Delete" || e.key === "Backspace") && !this.els.canvas.contains(e.target)) {
        if (this.selection.nodes.length || this.selection.edge) {
          e.preventDefault();
          this.deleteSelection(this.selection.nodes, this.selection.edge ? [this.selection.edge] : []);
        }
      }
    });
  }
}

function capitalise(text) {
  const t = String(text);
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** A file's problems as lines people read: "line 5: mapping values are not allowed here". */
function problemLines(problems) {
  return (problems || []).map((p) => {
    if (typeof p === "string") return p;
    const where = p.line ? `line ${p.line}` : p.where || "";
    return where ? `${where}: ${p.message}` : String(p.message || "");
  });
}

const studio = new Studio();
window.pipeloomStudio = studio;
studio.init().catch((err) => {
  console.error(err);
  toast("The studio failed to start.", { kind: "error", lines: [String(err && err.message ? err.message : err)] });
});
