// The inspector: everything about the selected step (or connection, or the
// pipeline when nothing is selected), in plain words first and code second.
import { get, seg, ApiError } from "./api.js";
import { h, put, clear, formatDuration, formatNumber, formatRecords, formatWhen, textColorFor } from "./dom.js";
import { portsOf, nodesOf, edgesOf } from "./doc.js";
import { describeStatus, explainStatus, cachedFrom } from "./status.js";
import { OutputPreview } from "./preview.js";
import { InputsPreview, portsWithCategories, sideSummary } from "./inputs.js";
import { DiffView, RECORDS } from "./diffview.js";

const FORMATS = ["json", "ndjson", "csv", "text", "binary", "parquet"];

export class Inspector {
  /** studio: the page controller (runtimes, pipeline id, run state and edit actions). */
  constructor(el, studio) {
    this.el = el;
    this.studio = studio;
    this.mode = null; // "none" | "node" | "edge"
    this.nodeId = null;
    this.edgeKey = null;
    this.sources = new Map(); // node id -> {html, code, path, language, updatedAt}
  }

  // ------------------------------------------------------------ entry points

  /** Show whatever is selected. */
  show({ nodeId = null, edgeKey = null } = {}) {
    if (nodeId) return this.showNode(nodeId);
    if (edgeKey) return this.showEdge(edgeKey);
    return this.showPipeline();
  }

  /** Re-render after the document changed (keeps the selection). */
  refresh() {
    if (this.mode === "node") {
      if (!this.studio.node(this.nodeId)) return this.showPipeline();
      return this.showNode(this.nodeId, { keepSource: true });
    }
    if (this.mode === "edge") {
      if (!edgesOf(this.studio.doc).some((e) => e.key === this.edgeKey)) return this.showPipeline();
      return this.showEdge(this.edgeKey);
    }
    return this.showPipeline();
  }

  /** Re-render the run-related parts (status, outputs). */
  updateRun() {
    if (this.mode === "node") this.renderRunParts();
    else if (this.mode === "edge") this.renderEdgeData();
    else if (this.mode === "none") this.showPipeline();
  }

  /** A node's source changed on disk: show the new highlighted text. */
  sourceChanged(nodeId, payload) {
    const prev = this.sources.get(nodeId) || {};
    this.sources.set(nodeId, { ...prev, html: payload.html, path: payload.path || prev.path, updatedAt: Date.now() });
    if (this.mode === "node" && this.nodeId === nodeId) this.renderSource(true);
  }

  /** The pipeline was saved: a step that was waiting for it can show its source now. */
  saved() {
    if (this.mode === "node" && this.awaitingSave === this.nodeId && this.studio.isSaved(this.nodeId)) {
      const node = this.studio.node(this.nodeId);
      this.awaitingSave = null;
      if (node) this.loadSource(node);
    }
  }

  /** The save state changed: say why a new step's source is not there yet. */
  saveStateChanged() {
    if (this.mode === "node" && this.awaitingSave === this.nodeId && this.sourceBox) this.renderUnsaved();
  }

  renderUnsaved() {
    const state = this.studio.saveState;
    const stuck = ["invalid", "error", "conflict"].includes(state);
    clear(this.sourceMeta);
    clear(this.sourceBox).append(h("div", { class: stuck ? "empty-note error-note" : "empty-note", "data-testid": "source-waiting" },
      stuck ? "This step is not saved yet, so its source cannot be shown. The save state at the top says why."
        : "Saving… the source shows once the new step is saved."));
  }

  /** Forget cached sources (the pipeline file was reloaded). */
  forgetSources() {
    this.sources.clear();
  }

  // ------------------------------------------------------------ nothing selected

  showPipeline() {
    this.mode = "none";
    this.nodeId = null;
    this.edgeKey = null;
    const doc = this.studio.doc;
    const nodes = nodesOf(doc);
    const edges = edgesOf(doc);
    const problems = this.studio.problems || [];
    const run = this.studio.run;
    clear(this.el);
    put(this.el,
      h("div", { class: "insp-head" },
        h("div", { class: "insp-kicker" }, "Pipeline"),
        h("h2", { class: "insp-title" }, doc.name || this.studio.pipelineId)),
      doc.description ? h("p", { class: "insp-desc" }, doc.description) : null,
      this.studio.broken
        ? h("p", { class: "insp-muted" }, "The file ", h("code", {}, this.studio.path || ""), " does not read as a pipeline yet.")
        : h("p", { class: "insp-muted" },
          `${formatNumber(nodes.length)} ${nodes.length === 1 ? "step" : "steps"}, ` +
          `${formatNumber(edges.length)} ${edges.length === 1 ? "connection" : "connections"} · `,
          h("code", {}, this.studio.path || "")),
    );
    if (problems.length) {
      this.el.append(section(this.studio.broken ? "Errors in the file" : "Problems to fix",
        h("ul", { class: "problem-list" }, problems.map((p) => h("li", {},
          p.where ? h("strong", {}, `${p.where}: `) : null, p.message, p.line ? ` (line ${p.line})` : "")))));
    }
    if (run && run.run_id) {
      const counts = {};
      // the steps of this run (the latest results also hold steps whose result is from an earlier run)
      for (const info of Object.values(run.nodes || {})) {
        if (!info.run_id || info.run_id === run.run_id) counts[info.status] = (counts[info.status] || 0) + 1;
      }
      const parts = Object.entries(counts).map(([s, n]) => `${n} ${describeStatus(s).word.toLowerCase()}${s === "cached" ? " (cached)" : ""}`);
      const stopped = nodes.filter((n) => ["failed", "timed_out"].includes((run.nodes[n.id] || {}).status));
      this.el.append(section("This run",
        h("p", {}, `Run ${run.status || "…"}${run.duration_s ? `, took ${formatDuration(run.duration_s)}` : ""}${run.started_at ? `, started ${formatWhen(run.started_at)}` : ""}.`),
        parts.length ? h("p", { class: "insp-muted" }, parts.join(" · ")) : null,
        stopped.length ? h("ul", { class: "stopped-list" }, stopped.map((n) => {
          const why = explainStatus(run.nodes[n.id], (id) => this.titleOf(id));
          return h("li", { class: "run-reason", "data-status": run.nodes[n.id].status },
            h("button", { type: "button", class: "link-button run-reason-step", onclick: () => this.studio.canvas.select([n.id], { focus: true }) }, n.title || n.id),
            why ? h("p", { class: "run-reason-text" }, why.long) : null);
        })) : null));
    }
    if (this.studio.broken) return;
    this.el.append(section("How to use it",
      h("ul", { class: "help-list" },
        h("li", {}, "Click a step to see what it does, its output, its log and its source."),
        h("li", {}, "Press ", h("strong", {}, "Run"), " to run every step; the cards show each step's progress."),
        h("li", {}, "Drag from an output (right side of a card) to an input (left side) to connect two steps; drop it on a card itself to give that step a new input."),
        h("li", {}, "Add a step from the palette on the left."),
        h("li", {}, "Keys: Delete removes, Ctrl+Z undoes, Ctrl+Shift+Z redoes, Space+drag pans, the wheel zooms, N adds a note, I hides this panel."))));
  }

  // ------------------------------------------------------------ a node

  showNode(nodeId, { keepSource = false } = {}) {
    const node = this.studio.node(nodeId);
    if (!node) return this.showPipeline();
    const changedNode = this.nodeId !== nodeId;
    this.mode = "node";
    this.nodeId = nodeId;
    this.edgeKey = null;
    const rt = this.studio.runtimes[node.runtime] || { label: node.runtime, color: "#6e7781" };
    const scrollTop = changedNode ? 0 : this.el.scrollTop;
    clear(this.el);

    // A text area, so a long title shows whole; Enter still finishes the edit.
    const title = h("textarea", {
      class: "insp-title-input", rows: 1, placeholder: node.id, "aria-label": "Title", spellcheck: "true",
      onchange: (e) => this.studio.editNode(nodeId, { title: e.target.value.replace(/\s*\n\s*/g, " ").trim() }),
      onkeydown: (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          e.target.blur();
        }
      },
      oninput: (e) => fitHeight(e.target),
    });
    title.value = node.title || "";
    const desc = h("textarea", {
      class: "insp-desc-input", rows: Math.min(8, Math.max(2, Math.ceil((node.description || "").length / 46) + 1)), "aria-label": "Description",
      placeholder: "Say in plain words what this step does.",
      onchange: (e) => this.studio.editNode(nodeId, { description: e.target.value.trim() }),
    });
    desc.value = node.description || "";

    this.runBox = h("div", { class: "insp-run" });
    const fed = new Set(edgesOf(this.studio.doc).filter((e) => e.dst === nodeId).map((e) => e.dstPort));
    this.diffBox = DiffView.applies(node, fed) ? h("div", { class: "diff", "data-testid": "diff" }) : null;
    this.diff = this.diffBox ? new DiffView(this.diffBox) : null;
    const recordsOut = portsOf(node, "outputs").filter((p) => RECORDS.includes(p.format));
    this.versusPorts = recordsOut.map((p) => p.name);
    this.versusBox = recordsOut.length ? h("div", { class: "diff", "data-testid": "versus" }) : null;
    this.versus = this.versusBox ? new DiffView(this.versusBox) : null;
    this.versusPicker = recordsOut.length > 1
      ? h("select", { class: "input versus-port", "aria-label": "Output to compare with the run before",
                      onchange: (e) => { this.versusPort = e.target.value; this.renderVersus(); } },
        recordsOut.map((p) => h("option", { value: p.name }, p.name)))
      : null;
    this.versusSection = this.versusBox ? section("Since the run before", this.versusPicker, this.versusBox) : null;
    if (this.versusSection) this.versusSection.id = "insp-versus";
    if (changedNode) this.versusPort = null;
    this.previewBox = h("div", { class: "preview", "data-testid": "preview" });
    this.preview = new OutputPreview(this.previewBox);
    this.previewSignature = null;
    // What came in and what went out, one above the other, each with its preview.
    this.inSummary = h("span", { class: "data-side-count", "data-testid": "came-in-count" });
    this.outSummary = h("span", { class: "data-side-count", "data-testid": "went-out-count" });
    this.inputsBox = h("div", { class: "preview", "data-testid": "inputs-preview" });
    this.inputs = portsOf(node, "inputs").length
      ? new InputsPreview(this.inputsBox, { titleOf: (id) => this.titleOf(id), onSummary: (t) => { this.inSummary.textContent = t; } })
      : null;
    this.sourceBox = h("div", { class: "source", "data-testid": "source" });
    this.sourceMeta = h("div", { class: "source-meta" });

    put(this.el,
      h("div", { class: "insp-head" },
        h("div", { class: "insp-kicker" },
          h("span", { class: "badge", style: { background: rt.color, color: textColorFor(rt.color) } }, rt.label),
          h("span", { class: "insp-id" }, `step id: ${node.id}`)),
        title),
      desc,
      h("div", { class: "insp-actions" },
        h("button", { type: "button", class: "btn", onclick: () => this.studio.startRun({ only: nodeId }) }, "Run this step"),
        h("button", { type: "button", class: "btn", onclick: () => this.studio.startRun({ from: nodeId }) }, "Run from here")),
      section("Last run", this.runBox),
      this.diffBox ? section("What changed", this.diffBox) : null,
      this.versusSection,
      section("Data",
        this.inputs ? h("div", { class: "data-side", "data-testid": "came-in" },
          h("h4", { class: "data-side-title" }, h("span", { class: "data-side-word" }, "Came in"), this.inSummary),
          this.inputsBox) : null,
        h("div", { class: "data-side", "data-testid": "went-out" },
          h("h4", { class: "data-side-title" }, h("span", { class: "data-side-word" }, "Went out"), this.outSummary),
          this.previewBox)),
      section("Source", this.sourceMeta, this.sourceBox),
      section("Params", this.paramsEditor(node)),
      section("Inputs and outputs", this.portsEditor(node)),
    );
    fitHeight(title);
    this.renderRunParts();
    if (!keepSource || !this.sources.has(nodeId)) this.loadSource(node);
    else this.renderSource(false);
    this.el.scrollTop = scrollTop;
  }

  renderRunParts() {
    const node = this.studio.node(this.nodeId);
    if (!node || !this.runBox) return;
    const run = this.studio.run;
    const info = run && run.nodes ? run.nodes[this.nodeId] : null;
    // the run whose outputs, log and record changes this step shows (the latest results span runs)
    const dataRun = (info && (info.result_run || info.run_id)) || (run && run.run_id) || null;
    clear(this.runBox);
    if (!run || !run.run_id) {
      this.runBox.append(h("div", { class: "empty-note" }, "Run the pipeline to see how this step does."));
    } else if (!info) {
      this.runBox.append(h("div", { class: "empty-note" }, "This step was not part of the run shown."));
    } else {
      const d = describeStatus(info.status);
      const facts = [];
      if (info.duration_s !== null && info.duration_s !== undefined && !["running", "cached"].includes(info.status)) {
        if (info.build_s) facts.push(["Built in", formatDuration(info.build_s)], ["Ran in", formatDuration(info.duration_s)]);
        else facts.push(["Took", formatDuration(info.duration_s)]);
      }
      // A step stopped by Pipeloom (time limit, cancel) has a signal's number, not an exit code worth showing.
      if (info.exit_code !== null && info.exit_code !== undefined && !["timed_out", "cancelled"].includes(info.status)) {
        facts.push(["Exit code", String(info.exit_code)]);
      }
      if (info.attempts && info.attempts > 1) facts.push(["Attempts", String(info.attempts)]);
      if (info.attempt && info.attempt > 1) facts.push(["Attempt", String(info.attempt)]);
      if (info.worker) facts.push(["Ran on", `Dask worker ${info.worker}`]);
      const why = explainStatus(info, (id) => this.titleOf(id));
      const cached = cachedFrom(info);
      const errorBox = why && (info.status === "failed" || info.status === "timed_out")
        ? h("div", { class: "error-lines", "data-testid": "error-lines", hidden: true }) : null;
      this.runBox.append(...[
        h("div", { class: "status-pill", "data-status": info.status || "" },
          h("span", { class: "status-icon", "aria-hidden": "true" }, d.icon),
          h("span", {}, d.word), d.mark ? h("span", { class: "status-mark" }, d.mark) : null),
        info.run_id && info.run_id !== run.run_id
          ? h("p", { class: "run-from", "data-testid": "result-from" }, `From run ${info.run_id}${info.run_started_at ? ` · ${formatWhen(info.run_started_at)}` : ""}: this step's latest result, from an earlier run than the one on show.`)
          : null,
        why ? h("div", { class: "run-reason", "data-status": info.status, "data-testid": "run-reason" },
          h("p", { class: "run-reason-text" }, why.long), errorBox) : null,
        facts.length ? h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])) : null,
        cached ? h("p", { class: "run-message", "data-testid": "cached-note" }, cached.text) : null,
        !why && !cached && info.message ? h("p", { class: "run-message" }, sentenceCase(info.message)) : null,
        cached && cached.runId
          ? h("button", { type: "button", class: "link-button", onclick: () => this.studio.focusLog(this.nodeId, { runId: cached.runId }) }, "Show the log of that run")
          : cached ? null : h("button", { type: "button", class: "link-button", onclick: () => this.studio.focusLog(this.nodeId) }, "Show the log"),
      ].filter(Boolean));
      if (errorBox) this.showErrorLines(errorBox, info.run_id || run.run_id, this.nodeId, info);
    }
    if (this.diff) {
      this.diff.show({ runId: dataRun, nodeId: this.nodeId,
                       status: info ? info.status : "", title: "This step" });
    }
    this.renderVersus();
    const ports = portsWithCategories(this.studio.doc, node, "outputs");
    if (this.inputs) {
      this.inputs.show({ runId: dataRun, nodeId: this.nodeId,
                         ports: portsWithCategories(this.studio.doc, node, "inputs"), status: info ? info.status : "" });
    }
    this.outSummary.textContent = sideSummary(ports, (info && info.artifacts) || {}, "outputs");
    const shown = {
      runId: dataRun,
      nodeId: this.nodeId,
      ports,
      artifacts: (info && info.artifacts) || {},
      status: info ? info.status : "",
    };
    // Status events arrive often; fetch a preview page again only when what it shows changed.
    const signature = JSON.stringify(shown);
    if (signature === this.previewSignature && this.preview.state) return;
    this.previewSignature = signature;
    this.preview.show(shown);
  }

  /** The "Since the run before" section: the chosen output of this step, compared with the run before. */
  renderVersus() {
    if (!this.versus) return;
    const run = this.studio.run;
    const info = run && run.nodes ? run.nodes[this.nodeId] : null;
    const runId = info && (info.result_run || info.run_id) ? info.result_run || info.run_id : run && run.run_id;
    const before = runId ? this.studio.runBefore(runId, this.nodeId) : null;
    this.versusSection.hidden = !before || !info;
    if (!before || !info) return;
    const marked = this.studio.changedPorts[this.nodeId];
    const port = this.versusPort || marked || this.versusPorts[0];
    if (this.versusPicker) this.versusPicker.value = port;
    this.versus.showVersus({ before, runId, nodeId: this.nodeId, port, status: info.status });
  }

  /** Open the "Since the run before" section for `port` and bring it into view. */
  showVersus(port) {
    if (!this.versusSection) return;
    this.versusPort = port || null;
    this.renderVersus();
    this.versusSection.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  titleOf(id) {
    const node = this.studio.node(id);
    return (node && node.title) || id;
  }

  /** The last error lines the program printed: usually the plainest account of what went wrong. */
  async showErrorLines(box, runId, nodeId, info) {
    const key = `${runId}|${nodeId}|${info.status}|${info.message || ""}`;
    let lines = this.errorLines && this.errorLines.key === key ? this.errorLines.lines : null;
    if (!lines) {
      const buf = this.studio.drawer.buffers.get(nodeId);
      let all = buf && buf.lines.length ? buf.lines : null;
      const live = !!all;
      if (!all) {
        try {
          const url = `/api/runs/${seg(runId)}/nodes/${seg(nodeId)}/logs`;
          const head = await get(`${url}?offset=0&limit=1`);
          const from = Math.max(0, (head.size || 0) - 16384);
          const page = from ? await get(`${url}?offset=${from}&limit=2000`) : await get(`${url}?offset=0&limit=2000`);
          all = (page.lines || []).slice(from ? 1 : 0); // a read from the middle starts mid-line
        } catch {
          return;
        }
      }
      lines = all.filter((l) => (l.stream === "err" || l.stream === "build") && String(l.text || "").trim())
        .slice(-4).map((l) => l.text);
      // Live lines may still be arriving; a page read from the server is final.
      if (!live) this.errorLines = { key, lines };
    }
    if (!lines.length || !box.isConnected) return;
    clear(box).append(
      h("div", { class: "error-lines-title" }, "Its last error message:"),
      h("pre", { class: "error-lines-text" }, lines.join("\n")));
    box.hidden = false;
  }

  async loadSource(node) {
    const nodeId = node.id;
    clear(this.sourceMeta);
    if (node.runtime === "command" || (!node.source && Array.isArray(node.command))) {
      clear(this.sourceBox).append(
        h("p", { class: "insp-muted" }, "This step runs a command:"),
        h("pre", { class: "command-line" }, (node.command || []).map(shellQuote).join(" ")));
      return;
    }
    // The server knows a step only once it is saved; asking earlier gets a "no node" answer.
    if (!this.studio.isSaved(nodeId)) {
      this.awaitingSave = nodeId;
      this.renderUnsaved();
      return;
    }
    this.awaitingSave = null;
    clear(this.sourceBox).append(h("div", { class: "empty-note" }, "Loading the source…"));
    try {
      const src = await get(`/api/pipelines/${seg(this.studio.pipelineId)}/nodes/${seg(nodeId)}/source`);
      const prev = this.sources.get(nodeId);
      this.sources.set(nodeId, { ...src, updatedAt: prev && prev.html === src.html ? prev.updatedAt : null });
    } catch (err) {
      if (this.nodeId !== nodeId) return;
      clear(this.sourceBox).append(h("div", { class: "empty-note error-note" },
        err instanceof ApiError ? err.message : String(err)));
      return;
    }
    if (this.nodeId === nodeId) this.renderSource(false);
  }

  renderSource(flash) {
    const src = this.sources.get(this.nodeId);
    if (!src || !this.sourceBox) return;
    clear(this.sourceMeta);
    if (src.path) {
      this.sourceMeta.append(h("span", { class: "insp-muted" }, "Edit in your own editor: "), h("code", { class: "path" }, src.path));
    }
    if (src.updatedAt) {
      const note = h("span", { class: "source-updated", "data-testid": "source-updated" }, `updated from disk ${formatWhen(new Date(src.updatedAt))}`);
      this.sourceMeta.append(note);
    }
    this.sourceBox.innerHTML = src.html || "";
    if (!src.html && src.code) this.sourceBox.append(h("pre", {}, src.code));
    if (flash) {
      this.sourceBox.classList.remove("flash");
      void this.sourceBox.offsetWidth; // restart the highlight animation
      this.sourceBox.classList.add("flash");
    }
  }

  paramsEditor(node) {
    const original = JSON.stringify(node.params || {}, null, 2);
    const area = h("textarea", { class: "code-input", rows: Math.min(12, original.split("\n").length + 1), spellcheck: "false", "aria-label": "Params as JSON" });
    area.value = original;
    const message = h("div", { class: "field-message", "aria-live": "polite" });
    const apply = h("button", { type: "button", class: "btn btn-small", disabled: true }, "Apply params");
    const revert = h("button", { type: "button", class: "btn btn-small btn-quiet", disabled: true }, "Revert");
    let parsed = null;
    const check = () => {
      const text = area.value.trim() || "{}";
      parsed = null;
      try {
        const value = JSON.parse(text);
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          message.textContent = "Params must be a JSON object, like {\"threshold\": 3}.";
          message.className = "field-message error-note";
        } else {
          parsed = value;
          message.textContent = "";
          message.className = "field-message";
        }
      } catch (err) {
        message.textContent = `Not valid JSON: ${err.message}`;
        message.className = "field-message error-note";
      }
      const changed = area.value !== original;
      area.setAttribute("aria-invalid", parsed ? "false" : "true");
      apply.disabled = !parsed || !changed;
      revert.disabled = !changed;
    };
    const doApply = () => {
      if (!parsed) return;
      this.studio.editNode(node.id, { params: parsed });
    };
    area.addEventListener("input", check);
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        if (!apply.disabled) doApply();
      }
    });
    apply.addEventListener("click", doApply);
    revert.addEventListener("click", () => { area.value = original; check(); });
    return h("div", { class: "params-editor" },
      h("p", { class: "insp-muted" }, "Settings the program reads (PIPELOOM_PARAMS and params.json)."),
      area, message, h("div", { class: "row-actions" }, apply, revert));
  }

  portsEditor(node) {
    const list = h("div", { class: "port-list" });
    for (const kind of ["inputs", "outputs"]) {
      const ports = portsOf(node, kind);
      list.append(h("h4", { class: "port-kind" }, kind === "inputs" ? "Reads" : "Writes"));
      if (!ports.length) list.append(h("div", { class: "insp-muted" }, kind === "inputs" ? "No inputs." : "No outputs."));
      for (const p of ports) {
        list.append(h("div", { class: "port-row" },
          h("span", { class: `port-dot-static port-${kind === "inputs" ? "in" : "out"}`, "aria-hidden": "true" }),
          h("span", { class: "port-row-name" }, p.name),
          h("span", { class: "port-format" }, p.format),
          h("code", { class: "port-file" }, p.path ? `from ${p.path}` : p.file || ""),
          h("button", {
            type: "button", class: "icon-button", "aria-label": `Remove ${kind === "inputs" ? "input" : "output"} ${p.name}`,
            title: "Remove this port", onclick: () => this.studio.removePort(node.id, kind, p.name),
          }, "×")));
      }
    }
    const kindSel = h("select", { class: "select select-small", "aria-label": "New port kind" },
      h("option", { value: "inputs" }, "input"), h("option", { value: "outputs" }, "output"));
    const nameIn = h("input", { class: "input input-small", placeholder: "name", "aria-label": "New port name", pattern: "[A-Za-z0-9_\\-]+" });
    const fmtSel = h("select", { class: "select select-small", "aria-label": "New port format" }, FORMATS.map((f) => h("option", { value: f }, f)));
    const add = h("button", {
      type: "button", class: "btn btn-small",
      onclick: () => {
        const name = nameIn.value.trim();
        if (!/^[A-Za-z0-9_-]+$/.test(name)) {
          nameIn.setAttribute("aria-invalid", "true");
          nameIn.focus();
          return;
        }
        this.studio.addPort(node.id, kindSel.value, name, fmtSel.value);
      },
    }, "Add port");
    return h("div", {}, list,
      h("div", { class: "port-add" }, kindSel, nameIn, fmtSel, add),
      h("p", { class: "insp-muted small" }, "The program opens each port by its file name (or through the helper). After adding one, use it in the source."));
  }

  // ------------------------------------------------------------ a connection

  showEdge(edgeKey) {
    const edge = edgesOf(this.studio.doc).find((e) => e.key === edgeKey);
    if (!edge) return this.showPipeline();
    this.mode = "edge";
    this.edgeKey = edgeKey;
    this.nodeId = null;
    const src = this.studio.node(edge.src);
    const dst = this.studio.node(edge.dst);
    const sp = src ? portsOf(src, "outputs").find((p) => p.name === edge.srcPort) : null;
    const dp = dst ? portsOf(dst, "inputs").find((p) => p.name === edge.dstPort) : null;
    clear(this.el);
    this.edgeData = h("div", { class: "preview", "data-testid": "preview" });
    this.edgePreview = new OutputPreview(this.edgeData);
    this.edgeSignature = null;
    this.edgeFacts = h("p", { class: "insp-muted" });
    put(this.el,
      h("div", { class: "insp-head" },
        h("div", { class: "insp-kicker" }, "Connection"),
        h("h2", { class: "insp-title" }, `${(src && src.title) || edge.src} → ${(dst && dst.title) || edge.dst}`)),
      h("p", {}, `The output “${edge.srcPort}”${sp ? ` (${sp.format})` : ""} of `, h("strong", {}, (src && src.title) || edge.src),
        ` feeds the input “${edge.dstPort}”${dp ? ` (${dp.format})` : ""} of `, h("strong", {}, (dst && dst.title) || edge.dst), "."),
      sp && dp && sp.format !== dp.format ? h("p", { class: "insp-muted" }, `Pipeloom converts ${sp.format} to ${dp.format} on the way.`) : null,
      this.edgeFacts,
      h("div", { class: "insp-actions" },
        h("button", { type: "button", class: "btn btn-danger", onclick: () => this.studio.deleteSelection([], [edgeKey]) }, "Remove connection")),
      section("Data on this connection", this.edgeData));
    this.renderEdgeData();
  }

  renderEdgeData() {
    const edge = edgesOf(this.studio.doc).find((e) => e.key === this.edgeKey);
    if (!edge || !this.edgePreview) return;
    const src = this.studio.node(edge.src);
    const run = this.studio.run;
    const info = run && run.nodes ? run.nodes[edge.src] : null;
    const art = info && info.artifacts ? info.artifacts[edge.srcPort] : null;
    this.edgeFacts.textContent = art && typeof art.records === "number" ? `${formatRecords(art.records)} went through in the run shown.` : "";
    const ports = src ? portsWithCategories(this.studio.doc, src, "outputs").filter((p) => p.name === edge.srcPort) : [];
    const shown = { runId: info && (info.result_run || info.run_id) ? info.result_run || info.run_id : run ? run.run_id : null, nodeId: edge.src, ports, artifacts: (info && info.artifacts) || {}, status: info ? info.status : "" };
    const signature = JSON.stringify(shown);
    if (signature === this.edgeSignature && this.edgePreview.state) return;
    this.edgeSignature = signature;
    this.edgePreview.show(shown);
  }
}

function section(title, ...children) {
  return h("section", { class: "insp-section" }, h("h3", { class: "insp-section-title" }, title), ...children);
}

/** Grow a text area to show all its text. */
function fitHeight(area) {
  area.style.height = "auto";
  area.style.height = `${area.scrollHeight + 2}px`;
}

function sentenceCase(text) {
  const t = String(text);
  return t.charAt(0).toUpperCase() + t.slice(1);
}

function shellQuote(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${String(arg).replace(/'/g, "'\\''")}'`;
}
