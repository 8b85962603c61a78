// The studio page for one pipeline: it owns the document, the undo history,
// saving, the runs and the live connection, and wires the panels together.
import { get, post, put, seg, download, ApiError, detailLines } from "./api.js";
import { h, clear, debounce, formatDuration, formatNumber, formatWhen, parseTime } from "./dom.js";
import {
  nodesOf, edgesOf, portsOf, withEdge, withoutEdges, withoutNodes, withPositions, withNodeFields,
  cloneDoc,
} from "./doc.js";
import { Canvas } from "./canvas.js";
import { autoLayout, placeUnpositioned } from "./layout.js";
import { Inspector } from "./inspector.js";
import { LogDrawer } from "./logs.js";
import { connectLive } from "./live.js";
import { describeStatus, explainStatus, runIsActive } from "./status.js";
import { toast } from "./toast.js";
import { Palette } from "./palette.js";
import { Versions } from "./versions.js";
import { TriggersPanel } from "./triggers.js";
import { WalkThrough } from "./walkthrough.js";
import { RECORDS } from "./diffview.js";
import { NoteLayer } from "./notes.js";
import { bindInspectorToggle } from "./inspectortoggle.js";

const SAVE_DELAY_MS = 600;
// Names this tab to the server, so a burst of its saves makes one version.
const CLIENT_ID = (globalThis.crypto && crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`)
  .replace(/[^A-Za-z0-9_-]/g, "").slice(0, 64);
const HISTORY_LIMIT = 100;
// How many recent runs are read to tell "not in this run" from "never run".
const HISTORY_RUNS = 10;

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
    this.run = null; // the run shown: {run_id, status, live, nodes: {id: {status, ..., artifacts}}}
    this.following = true; // show each new run as it starts
    this.runs = [];
    this.runRecords = new Map(); // finished runs read once: run id -> its record
    this.changedPorts = {}; // step id -> an output that is not the same as in the run before
    this.runsLoaded = false;
    this.runNodes = new Map(); // finished run id -> Set of the node ids it included
    this.selection = { nodes: [], edge: null };
    this.scheduleSave = debounce(() => this.save(), SAVE_DELAY_MS);
    this.refreshRuns = debounce(() => this.loadRunList(), 400);
  }

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
      undo: $("undo"), redo: $("redo"),
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
    this.bindInspectorResize();

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
        onConnect: (a, ap, b, bp) => this.connect(a, ap, b, bp),
        onConnectCard: (a, ap, b) => this.connectToCard(a, ap, b),
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
      run_status: (p) => this.onRunStatus(p),
      node_status: (p) => this.onNodeStatus(p),
      log: (p) => this.onLog(p),
      output_ready: (p) => this.onOutputReady(p),
      source_changed: (p) => this.onSourceChanged(p),
      pipeline_changed: (p) => this.onPipelineChanged(p),
      trigger_status: (p) => this.triggersPanel.update(p),
    });
    this.loadRunList();
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
    this.canvas.setDocument(doc, { keepView: !fit });
    this.triggersPanel.setDeclared(Array.isArray(doc.triggers) ? doc.triggers : []);
    this.pushRunToCanvas();
    this.dirty = false;
    this.conflict = false;
    if (broken) this.showBrokenBanner();
    else this.hideBanner();
    this.setSaveState(broken ? "broken" : this.problems.length ? "problems" : "saved");
    this.updateUndo();
    this.updateDocSummary();
    this.updateRunControls();
    this.checkHistory();
  }

  /** A broken file is shown read-only: no palette, no edits, no saves, until it parses again. */
  setReadOnly(readOnly) {
    document.body.dataset.broken = readOnly ? "true" : "false";
    this.els.palette.hidden = readOnly;
    this.canvas.setReadOnly(readOnly, {
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
    return nodesOf(this.doc).find((n) => n.id === id) || null;
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
      this.canvas.setDocument(this.doc);
      return;
    }
    this.undoStack.push(this.doc);
    if (this.undoStack.length > HISTORY_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.doc = next;
    if (render) {
      this.canvas.setDocument(next);
      this.pushRunToCanvas();
    }
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
    this.canvas.setDocument(this.doc);
    this.pushRunToCanvas();
    this.afterEdit();
  }

  updateUndo() {
    this.els.undo.disabled = !this.undoStack.length || this.broken;
    this.els.redo.disabled = !this.redoStack.length || this.broken;
  }

  /**
   * Ask the engine whether `candidate` adds a problem the current document
   * does not have. Resolves to the new problems (empty when the edit is fine).
   */
  async newProblems(candidate) {
    const url = `/api/pipelines/${seg(this.pipelineId)}/validate`;
    const check = (document) => post(url, { document }).then(() => [], (err) => {
      if (err instanceof ApiError && err.status === 422) return err.details.length ? err.details : [{ message: err.message }];
      throw err;
    });
    const [before, after] = await Promise.all([check(this.doc), check(candidate)]);
    const key = (p) => (typeof p === "string" ? p : `${p.where || ""}|${p.message || ""}`);
    const known = new Set(before.map(key));
    return after.filter((p) => !known.has(key(p)));
  }

  async connect(src, srcPort, dst, dstPort) {
    if (edgesOf(this.doc).some((e) => e.src === src && e.srcPort === srcPort && e.dst === dst && e.dstPort === dstPort)) {
      toast("Those two are already connected.");
      return;
    }
    const ok = await this.commitChecked((doc) => withEdge(doc, src, srcPort, dst, dstPort),
      `Cannot connect ${src}.${srcPort} to ${dst}.${dstPort}`);
    if (ok) this.canvas.selectEdge(`${src}.${srcPort}->${dst}.${dstPort}`);
  }

  /**
   * Ask the engine about `edit(doc)` before applying it; refuse with the engine's own words.
   * Another edit may land while the engine is asked, so the edit is re-applied to the latest
   * document (`edit` returns null when it no longer applies). Returns whether it was committed.
   */
  async commitChecked(edit, refusal) {
    const base = this.doc;
    const candidate = edit(base);
    let problems;
    try {
      problems = await this.newProblems(candidate);
    } catch (err) {
      toast("The connection could not be checked, so it was not made.", { kind: "error", lines: [err.message] });
      return false;
    }
    if (problems.length) {
      toast(refusal, { kind: "error", lines: detailLines({ details: problems }) });
      return false;
    }
    const next = this.doc === base ? candidate : edit(this.doc);
    if (!next) return false;
    this.commit(next);
    return true;
  }

  /**
   * A wire dropped on a card rather than on one of its inputs: connect to a
   * free input of the same name, or give the card a new input named after
   * the output (same format), connected, as one edit.
   */
  async connectToCard(src, srcPort, dst) {
    const from = this.node(src);
    const to = this.node(dst);
    if (!from || !to || src === dst) return;
    const out = portsOf(from, "outputs").find((p) => p.name === srcPort);
    if (!out) return;
    const fed = new Set(edgesOf(this.doc).filter((e) => e.dst === dst).map((e) => e.dstPort));
    const same = portsOf(to, "inputs").find((p) => p.name === srcPort && !fed.has(p.name));
    if (same) {
      await this.connect(src, srcPort, dst, same.name);
      return;
    }
    const taken = new Set([...portsOf(to, "inputs"), ...portsOf(to, "outputs")].map((p) => p.name));
    let name = srcPort;
    for (let n = 2; taken.has(name); n += 1) name = `${srcPort}-${n}`;
    const withInput = (doc) => {
      const node = nodesOf(doc).find((n) => n.id === dst);
      if (!node) return null; // deleted while the engine was asked
      const inputs = Array.isArray(node.inputs) ? cloneDoc(node.inputs) : [];
      inputs.push({ name, format: out.format });
      return withEdge(withNodeFields(doc, dst, { inputs }), src, srcPort, dst, name);
    };
    if (!await this.commitChecked(withInput, `Cannot connect ${src}.${srcPort} to “${this.titleOf(dst)}”`)) return;
    this.canvas.selectEdge(`${src}.${srcPort}->${dst}.${name}`);
    toast(`Gave “${this.titleOf(dst)}” a new input “${name}” (${out.format}) and connected it.`, {
      actions: [{ label: "Undo", onClick: () => this.undo() }],
    });
  }

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

  async layout() {
    const positions = await autoLayout(this.doc);
    this.commit(withPositions(this.doc, positions));
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
      this.setSaveState("invalid");
      this.invalidDetails = detailLines(err);
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

  // ------------------------------------------------------------ runs

  async startRun(options = {}) {
    if (this.conflict) {
      toast("Reload the pipeline first: the file changed on disk.", { kind: "error" });
      return;
    }
    const saved = await this.flushSave();
    if (!saved) {
      toast("The pipeline has unsaved changes with a problem; fix it before running.", { kind: "error", lines: this.invalidDetails || [] });
      return;
    }
    this.els.run.disabled = true;
    let answer;
    try {
      answer = await post(`/api/pipelines/${seg(this.pipelineId)}/runs`, options);
    } catch (err) {
      this.updateRunControls();
      toast(err.status === 409 ? "A run is already going." : "The run could not start.", { kind: "error", lines: [err.message, ...detailLines(err)] });
      return;
    }
    this.following = true;
    this.els.picker.value = "";
    if (!this.run || this.run.run_id !== answer.run_id) {
      const nodes = {};
      if (!options.only && !options.from) for (const n of nodesOf(this.doc)) nodes[n.id] = { status: "pending" };
      this.showRun({ run_id: answer.run_id, status: "pending", live: true, nodes });
    }
    this.refreshRuns();
  }

  async cancelRun() {
    if (!this.run || !this.run.run_id) return;
    this.els.cancel.disabled = true;
    try {
      await post(`/api/runs/${seg(this.run.run_id)}/cancel`, {});
      toast("Cancelling the run…");
    } catch (err) {
      toast("Could not cancel the run.", { kind: "error", lines: [err.message] });
      this.updateRunControls();
    }
  }

  /** Show a run on the canvas and in the panels. */
  showRun(run, { logs } = {}) {
    const changed = !this.run || this.run.run_id !== run.run_id;
    this.run = normaliseRun(run);
    if (changed) this.drawer.reset();
    if (logs) this.drawer.seed(logs);
    this.pushRunToCanvas();
    this.updateRunControls();
    this.inspector.updateRun();
    if (changed) this.drawer.render();
    this.markChanged();
  }

  /** Download the run on show as one self-contained HTML page. */
  async shareRun() {
    const run = this.run;
    if (!run || !run.run_id) return;
    const button = this.els.share;
    button.disabled = true;
    button.textContent = "Making the page…";
    try {
      await download(`/api/runs/${seg(run.run_id)}/story`, `${this.pipelineId}-${run.run_id}.html`);
      toast("The page is downloaded: it opens in any browser, with no network needed.");
    } catch (err) {
      toast("Could not make the page.", { kind: "error", lines: [err.message] });
    } finally {
      button.textContent = "Share as a page";
      this.updateRunControls();
    }
  }

  /** The run before `runId` that included step `nodeId` (finished), from the run list; null when none. */
  runBefore(runId, nodeId) {
    const i = this.runs.findIndex((r) => r.run_id === runId);
    if (i < 0) return null;
    for (const r of this.runs.slice(i + 1)) {
      if (runIsActive(r.status)) continue;
      const rec = this.runRecords.get(r.run_id);
      if (!rec || (rec.nodes && rec.nodes[nodeId])) return r.run_id;
    }
    return null;
  }

  /** A finished run's stored record, read once; null when it cannot be read. */
  async runRecord(runId) {
    let rec = this.runRecords.get(runId);
    if (!rec) {
      try {
        rec = await get(`/api/runs/${seg(runId)}`);
      } catch {
        return null;
      }
      if (!runIsActive(rec.status)) this.runRecords.set(runId, rec);
    }
    return rec;
  }

  /** Mark on the cards which steps' records outputs differ from the run before (by content hash). */
  async markChanged() {
    const run = this.run;
    const marks = {};
    if (run && run.run_id && !runIsActive(run.status)) {
      const i = this.runs.findIndex((r) => r.run_id === run.run_id);
      const before = i < 0 ? null : this.runs.slice(i + 1).find((r) => !runIsActive(r.status));
      if (before) {
        // the stored records carry each output's content hash (a live snapshot may not)
        const [prev, cur] = await Promise.all([this.runRecord(before.run_id), this.runRecord(run.run_id)]);
        if (this.run !== run) return; // another run is on show by now
        for (const [id, info] of Object.entries((prev && cur && cur.nodes) || {})) {
          const old = (prev.nodes || {})[id];
          if (!old || !["succeeded", "cached"].includes(info.status)) continue;
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
    if (this.canvas) this.canvas.setChanged(marks);
  }

  pushRunToCanvas() {
    if (!this.canvas) return;
    const run = this.run;
    const statuses = {};
    const records = {};
    if (run) {
      for (const [id, info] of Object.entries(run.nodes)) {
        statuses[id] = info;
        for (const [port, art] of Object.entries(info.artifacts || {})) {
          if (art && typeof art.records === "number") records[`${id}.${port}`] = art.records;
        }
      }
    }
    this.canvas.setRunContext({ shown: !!(run && run.run_id), neverRan: this.neverRanIds() });
    this.canvas.setStatuses(statuses);
    this.canvas.setRecords(records);
    this.canvas.setRunning(!!(run && run.live && runIsActive(run.status)));
  }

  async viewRun(runId) {
    if (!runId) {
      this.following = true;
      const latest = this.runs[0];
      if (latest && (!this.run || this.run.run_id !== latest.run_id)) await this.loadRun(latest.run_id);
      return;
    }
    this.following = false;
    await this.loadRun(runId);
  }

  async loadRun(runId) {
    let data;
    try {
      data = await get(`/api/runs/${seg(runId)}`);
    } catch (err) {
      toast("Could not open that run.", { kind: "error", lines: [err.message] });
      return;
    }
    const live = this.liveRunId === runId;
    this.showRun({ ...data, live: live && runIsActive(data.status) });
  }

  async loadRunList() {
    try {
      this.runs = await get(`/api/runs?pipeline=${encodeURIComponent(this.pipelineId)}`);
    } catch {
      return;
    }
    if (!Array.isArray(this.runs)) this.runs = this.runs && Array.isArray(this.runs.runs) ? this.runs.runs : [];
    const picker = this.els.picker;
    const current = this.following ? "" : (this.run && this.run.run_id) || "";
    clear(picker).append(h("option", { value: "" }, "the latest run"));
    for (const r of this.runs) {
      const when = formatWhen(r.started_at) || r.run_id;
      const status = describeStatus(r.status).word.toLowerCase();
      const duration = r.duration_s ? ` · ${formatDuration(r.duration_s)}` : "";
      picker.append(h("option", { value: r.run_id, "data-origin": startedBy(r.origin) },
        `${when} · ${r.status === "running" ? "running" : status}${duration} · ${startedBy(r.origin)}`));
    }
    picker.value = current;
    if (picker.value !== current) picker.value = "";
    this.runsLoaded = true;
    this.markChanged();
    this.updateStatusbar();
    this.checkHistory();
  }

  /** Steps that no run of the pipeline included, when the history says so for sure. */
  neverRanIds() {
    if (!this.historyKnown) return new Set();
    const ran = new Set();
    for (const ids of this.runNodes.values()) for (const id of ids) ran.add(id);
    if (this.run && this.run.nodes) for (const id of Object.keys(this.run.nodes)) ran.add(id);
    return new Set(nodesOf(this.doc).map((n) => n.id).filter((id) => !ran.has(id)));
  }

  /** Read the recent runs (once each) to learn which steps ever ran; cards use it. */
  async checkHistory() {
    if (!this.runsLoaded || !this.canvas) return;
    if (this.historyChecking) {
      this.historyAgain = true;
      return;
    }
    this.historyChecking = true;
    try {
      const recent = this.runs.slice(0, HISTORY_RUNS);
      for (const r of recent) {
        if (this.runNodes.has(r.run_id) || runIsActive(r.status)) continue;
        try {
          const data = await get(`/api/runs/${seg(r.run_id)}`);
          if (!runIsActive(data.status)) this.runNodes.set(r.run_id, new Set(Object.keys(data.nodes || {})));
        } catch {
          // unknown stays unknown: those cards say "Not in this run"
        }
      }
      const shown = this.run && this.run.run_id;
      this.historyKnown = this.runs.length <= HISTORY_RUNS &&
        recent.every((r) => this.runNodes.has(r.run_id) || r.run_id === shown);
    } finally {
      this.historyChecking = false;
    }
    this.canvas.setRunContext({ shown: !!(this.run && this.run.run_id), neverRan: this.neverRanIds() });
    if (this.historyAgain) {
      this.historyAgain = false;
      this.checkHistory();
    }
  }

  updateRunControls() {
    const active = !!(this.run && this.run.live && runIsActive(this.run.status));
    const anyActive = active || !!this.liveRunId;
    this.els.run.disabled = anyActive || !nodesOf(this.doc).length;
    this.els.cancel.disabled = !active;
    this.els.share.disabled = !(this.run && this.run.run_id) || active;
    this.els.walk.disabled = !(this.run && this.run.run_id) || active;
    document.body.dataset.runStatus = this.run ? this.run.status || "" : "";
    this.updateStatusbar();
  }

  updateStatusbar() {
    const run = this.run;
    const el = this.els.runSummary;
    if (!run || !run.run_id) {
      el.textContent = "No runs yet. Press Run to start one.";
      return;
    }
    const infos = Object.values(run.nodes);
    // Finished means done its work: a cancelled or skipped step did not finish.
    const done = infos.filter((i) => ["succeeded", "cached"].includes(i.status)).length;
    const failed = infos.filter((i) => i.status === "failed" || i.status === "timed_out").length;
    const when = formatWhen(run.started_at);
    const prefix = this.following ? "Latest run" : "Past run";
    const statusWord = run.status === "pending" ? "starting" : run.status;
    let text = `${prefix}${when ? ` (${when})` : ""}: ${statusWord}`;
    if (infos.length) text += ` · ${formatNumber(done)} of ${formatNumber(infos.length)} ${infos.length === 1 ? "step" : "steps"} finished`;
    if (failed) text += ` · ${formatNumber(failed)} failed`;
    if (run.duration_s && !runIsActive(run.status)) text += ` · took ${formatDuration(run.duration_s)}`;
    el.textContent = text;
    el.dataset.status = run.status || "";
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
    if (!p.run_id) {
      if (!this.run) this.updateRunControls();
      return;
    }
    const active = p.active !== undefined ? !!p.active : runIsActive(p.status);
    if (active) this.liveRunId = p.run_id;
    if (!this.following && this.run && this.run.run_id !== p.run_id) {
      this.updateRunControls();
      return;
    }
    this.showRun({ run_id: p.run_id, status: p.status, live: active, nodes: p.nodes || {} }, { logs: p.logs });
    // The snapshot has statuses; the stored run adds times, messages and record counts.
    get(`/api/runs/${seg(p.run_id)}`).then((data) => {
      if (!this.run || this.run.run_id !== p.run_id) return;
      const merged = normaliseRun({ ...data, live: this.run.live });
      for (const [id, info] of Object.entries(this.run.nodes)) {
        merged.nodes[id] = { ...(merged.nodes[id] || {}), ...pickDefined(info), artifacts: { ...((merged.nodes[id] || {}).artifacts || {}), ...(info.artifacts || {}) } };
      }
      if (this.run.live) merged.status = this.run.status;
      this.run = merged;
      this.pushRunToCanvas();
      this.inspector.updateRun();
      this.updateStatusbar();
    }, () => {});
  }

  /** Events for a run other than the one shown: start following it if it is new. */
  adoptRun(p) {
    if (!p.run_id || (this.run && this.run.run_id === p.run_id)) return true;
    if (p.pipeline_id && p.pipeline_id !== this.pipelineId) return false;
    if (!this.following) return false;
    this.showRun({ run_id: p.run_id, status: "running", live: true, nodes: {} });
    this.refreshRuns();
    return true;
  }

  onRunStatus(p) {
    if (p.pipeline_id && p.pipeline_id !== this.pipelineId) return;
    const active = runIsActive(p.status);
    if (active) this.liveRunId = p.run_id;
    else if (this.liveRunId === p.run_id) this.liveRunId = null;
    if (!this.adoptRun(p)) {
      this.updateRunControls();
      this.refreshRuns();
      return;
    }
    this.run.status = p.status;
    this.run.live = active;
    if (active && !this.run.started_at) this.run.started_at = new Date().toISOString();
    if (Array.isArray(p.nodes) && p.nodes.length) {
      for (const id of p.nodes) if (!this.run.nodes[id]) this.run.nodes[id] = { status: "pending", artifacts: {} };
    }
    if (!active) {
      // Final: read the stored run for durations, messages and record counts.
      this.loadRun(p.run_id);
      this.refreshRuns();
      if (p.status === "failed") {
        const failed = Object.entries(this.run.nodes).find(([, i]) => i.status === "failed" || i.status === "timed_out");
        if (failed) {
          const [id, info] = failed;
          const why = explainStatus(info, (x) => this.titleOf(x));
          toast(`The run failed at “${this.titleOf(id)}”.`, {
            kind: "error", timeout: 8000, lines: why ? [why.long] : [],
            actions: [{ label: "Show why", onClick: () => this.canvas.select([id], { focus: true }) }],
          });
        } else {
          toast(`The run failed${p.message ? `: ${p.message}` : "."}`, { kind: "error", timeout: 8000 });
        }
      }
    }
    this.pushRunToCanvas();
    this.updateRunControls();
    this.inspector.updateRun();
  }

  onNodeStatus(p) {
    if (!this.adoptRun(p)) return;
    const prev = this.run.nodes[p.node_id] || { artifacts: {} };
    const info = { ...prev, status: p.status, exit_code: p.exit_code, duration_s: p.duration_s, message: p.message };
    if (p.attempt) info.attempt = p.attempt;
    this.run.nodes[p.node_id] = info;
    if (this.run.status === "pending") this.run.status = "running";
    this.canvas.setStatus(p.node_id, info);
    this.updateStatusbar();
    if (this.inspector.nodeId === p.node_id || this.inspector.mode !== "node") this.inspector.updateRun();
  }

  onLog(p) {
    if (!this.run || p.run_id !== this.run.run_id) {
      if (!this.adoptRun(p)) return;
    }
    this.drawer.push(p.node_id, p.lines || []);
  }

  onOutputReady(p) {
    if (!this.adoptRun(p)) return;
    const info = this.run.nodes[p.node_id] || (this.run.nodes[p.node_id] = { status: "running", artifacts: {} });
    info.artifacts = { ...(info.artifacts || {}), [p.port]: { format: p.format, size: p.size, records: p.records } };
    if (typeof p.records === "number") this.canvas.setRecord(p.node_id, p.port, p.records);
    this.inspector.updateRun();
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
    this.els.cancel.addEventListener("click", () => this.cancelRun());
    this.els.share.addEventListener("click", () => this.shareRun());
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

  /** The inspector's left edge can be dragged (or moved with the arrow keys); the width is remembered. */
  bindInspectorResize() {
    const handle = document.getElementById("inspector-resizer");
    const studio = document.getElementById("studio");
    const KEY = "pipeloom.inspector-width";
    const limits = () => ({ min: 300, max: Math.max(300, Math.min(1000, window.innerWidth - 420)) });
    const current = () => this.els.inspector.getBoundingClientRect().width;
    const setWidth = (w, { remember = true } = {}) => {
      const { min, max } = limits();
      const width = Math.round(Math.min(max, Math.max(min, w)));
      studio.style.setProperty("--inspector-w", `${width}px`);
      handle.setAttribute("aria-valuenow", String(width));
      handle.setAttribute("aria-valuemin", String(min));
      handle.setAttribute("aria-valuemax", String(max));
      if (remember) {
        try { localStorage.setItem(KEY, String(width)); } catch { /* private mode */ }
      }
    };
    let saved = null;
    try { saved = Number(localStorage.getItem(KEY)); } catch { /* private mode */ }
    if (saved) setWidth(saved, { remember: false });
    handle.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      const startX = e.clientX;
      const startW = current();
      handle.setPointerCapture(e.pointerId);
      handle.classList.add("dragging");
      const move = (ev) => setWidth(startW + (startX - ev.clientX));
      const up = () => {
        handle.classList.remove("dragging");
        handle.removeEventListener("pointermove", move);
        handle.removeEventListener("pointerup", up);
        handle.removeEventListener("pointercancel", up);
      };
      handle.addEventListener("pointermove", move);
      handle.addEventListener("pointerup", up);
      handle.addEventListener("pointercancel", up);
    });
    handle.addEventListener("keydown", (e) => {
      const step = e.shiftKey ? 64 : 16;
      if (e.key === "ArrowLeft") setWidth(current() + step);
      else if (e.key === "ArrowRight") setWidth(current() - step);
      else return;
      e.preventDefault();
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

/** Fill in the shape every panel expects: nodes with an `artifacts` map. */
function normaliseRun(run) {
  const nodes = {};
  for (const [id, raw] of Object.entries(run.nodes || {})) {
    const info = { ...raw };
    let artifacts = info.artifacts;
    if (!artifacts && info.outputs && Object.values(info.outputs).every((v) => v && typeof v === "object")) artifacts = info.outputs;
    info.artifacts = { ...(artifacts || {}) };
    if (info.records && typeof info.records === "object") {
      for (const [port, n] of Object.entries(info.records)) {
        if (info.artifacts[port] && typeof n === "number") info.artifacts[port].records = n;
      }
    }
    nodes[id] = info;
  }
  const out = { ...run, nodes };
  if (out.duration_s === undefined && out.started_at && out.finished_at) {
    const a = parseTime(out.started_at);
    const b = parseTime(out.finished_at);
    if (a && b) out.duration_s = (b - a) / 1000;
  }
  return out;
}

function pickDefined(obj) {
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && k !== "artifacts") out[k] = v;
  return out;
}

const studio = new Studio();
window.pipeloomStudio = studio;
studio.init().catch((err) => {
  console.error(err);
  toast("The studio failed to start.", { kind: "error", lines: [String(err && err.message ? err.message : err)] });
});

/** What started a run, in the words of the run picker: "Run button", "CLI", "trigger readings". */
function startedBy(origin) {
  const by = origin && origin.by;
  if (by === "trigger") return `trigger ${origin.trigger}`;
  return { studio: "Run button", cli: "CLI", autorun: "auto-run" }[by] || "CLI or studio";
}
