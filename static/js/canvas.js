// The pipeline canvas: HTML node cards and one SVG edge layer inside a single
// CSS-transformed viewport. Geometry comes from the document (geometry.js),
// so moving a card redraws only the edges that touch it or pass near it.
import { h, svg, clear, formatDuration, formatNumber, formatRecords, textColorFor, rafThrottle } from "./dom.js";
import { nodesOf, edgesOf, portsOf } from "./doc.js";
import { cardMetrics, portPoint, edgeCurve, setRuntimeLabels, CARD_W, DESC_LINE_H, DESC_PAD } from "./geometry.js";
import { Grid, routeEdge, placeLabel } from "./routing.js";
import { describeStatus, explainStatus, isDone, NOT_IN_RUN, SINCE } from "./status.js";

const MIN_ZOOM = 0.08;
// Below this, card text is too small to read: the first view of a pipeline
// never goes lower, and a pipeline that does not fit is panned instead.
export const READABLE_ZOOM = 0.75;
const MAX_ZOOM = 2;
const DRAG_THRESHOLD = 4;
const GRID = 8;

export class Canvas {
  /**
   * root: the element to draw into. runtimes: {name: {label, color}}.
   * handlers: onSelect(nodeIds, edgeKey), onMove(positions), onConnect(src, srcPort, dst, dstPort),
   * onConnectCard(src, srcPort, dst) (a wire dropped on a card, not on one of its inputs),
   * onDelete(nodeIds, edgeKeys), onDropRuntime(runtime, point), onActivate(nodeId).
   */
  constructor(root, { runtimes = {}, handlers = {} } = {}) {
    this.root = root;
    this.runtimes = runtimes;
    this.handlers = handlers;
    this.doc = { nodes: [], edges: [] };
    this.items = new Map(); // node id -> {node, pos, metrics, el, ...}
    this.edges = new Map(); // edge key -> {edge, g, line, hit, label, text, rect, route}
    this.cardGrid = new Grid(); // node id -> card rectangle
    this.routeGrid = new Grid(); // edge key -> the area its path covers
    this.labelGrid = new Grid(); // edge key -> its label's rectangle
    this.lanes = new Map(); // edge key -> {y, x1, x2} for edges that detour around cards
    this.touching = new Map(); // node id -> Set of edge keys
    this.statuses = new Map(); // node id -> {status, duration_s, exit_code}
    this.records = new Map(); // "node.port" -> records
    this.selected = new Set();
    this.selectedEdge = null;
    this.view = { x: 40, y: 40, k: 1 };
    this.running = false;
    this.spaceDown = false;
    this.wire = null; // an unfinished connection
    this.readOnly = false;
    this.runShown = false; // a run is on show: nodes without a status were not part of it
    this.neverRan = new Set(); // nodes no run of the pipeline ever included
    this.since = { nodes: {}, edges: {} }; // a past run drawn as it ran: what is "added" or "removed" since
    this.unmeasured = new Set(); // edge keys whose records did not go through in the run on show
    this.from = {}; // node id -> {text, title}: its result is from an earlier run than the one on show
    this.problems = { nodes: {}, ports: {}, edges: {} }; // validation problems: id / "id.kind.port" / edge key -> [messages]
    this.fitted = null; // the options of the last fit, while the user has not moved the view since
    this.layers = []; // more things drawn in the viewport (notes): setDocument(doc), setReadOnly(on), rects()
    setRuntimeLabels(Object.fromEntries(Object.entries(runtimes).map(([name, rt]) => [name, rt.label || name])));
    this.build();
  }

  build() {
    clear(this.root);
    this.root.classList.add("canvas");
    this.viewport = h("div", { class: "viewport" });
    this.svg = svg("svg", { class: "edges", width: 1, height: 1, "aria-hidden": "true" });
    this.edgeLayer = svg("g", { class: "edge-layer" });
    this.wirePath = svg("path", { class: "wire", d: "" });
    this.svg.append(this.edgeLayer, this.wirePath);
    this.cardLayer = h("div", { class: "cards", role: "list", "aria-label": "Steps of the pipeline" });
    this.viewport.append(this.svg, this.cardLayer);
    this.emptyTitle = h("div", { class: "canvas-empty-title" });
    this.emptyHint = h("div", { class: "canvas-empty-hint" });
    this.empty = h("div", { class: "canvas-empty", hidden: true }, this.emptyTitle, this.emptyHint);
    this.paintEmpty();
    this.root.append(this.viewport, this.empty);
    this.applyView = rafThrottle(() => {
      const { x, y, k } = this.view;
      this.viewport.style.transform = `translate(${x}px, ${y}px) scale(${k})`;
      this.root.style.setProperty("--zoom", String(k));
      this.root.style.backgroundPosition = `${x}px ${y}px`;
      this.root.style.backgroundSize = `${24 * k}px ${24 * k}px`;
    });
    this.bindEvents();
    this.applyView();
    if (typeof ResizeObserver !== "undefined") {
      this.size = null;
      new ResizeObserver(() => this.onResize()).observe(this.root);
    }
  }

  /** The canvas got narrower or wider (the palette opened, the window changed): keep the same things in view. */
  onResize() {
    const rect = this.root.getBoundingClientRect();
    const before = this.size;
    this.size = { w: rect.width, h: rect.height };
    if (!before || !rect.width || !rect.height) return;
    if (this.fitted) {
      this.fit(this.fitted);
      return;
    }
    this.view = { ...this.view, x: this.view.x + (rect.width - before.w) / 2, y: this.view.y + (rect.height - before.h) / 2 };
    this.applyView();
  }

  /** Read-only: nothing can be moved, connected, deleted or dropped; `empty` says why when there are no cards. */
  setReadOnly(readOnly, empty = null) {
    this.readOnly = readOnly;
    this.readOnlyEmpty = readOnly ? empty : null;
    this.root.classList.toggle("read-only", readOnly);
    for (const layer of this.layers) layer.setReadOnly(readOnly);
    if (readOnly) this.cancelWire();
    this.paintEmpty();
  }

  paintEmpty() {
    const text = this.readOnlyEmpty || {
      title: "Drag a step from the palette",
      hint: "Each step is a small program that reads files and writes files.",
    };
    this.emptyTitle.textContent = text.title;
    this.emptyHint.textContent = text.hint;
    this.empty.classList.toggle("canvas-empty-problem", !!this.readOnlyEmpty);
  }

  /** Draw `layer.el` between the connections and the cards; it is told each document and read-only change,
   * and its `rects()` (canvas coordinates) count when fitting the view. */
  addLayer(layer) {
    this.layers.push(layer);
    this.viewport.insertBefore(layer.el, this.cardLayer);
    layer.setReadOnly(this.readOnly);
    layer.setDocument(this.doc);
  }

  // ------------------------------------------------------------ rendering

  /** Draw a whole document (used on load, reload, undo and redo). */
  setDocument(doc, { keepView = true } = {}) {
    this.doc = doc;
    clear(this.cardLayer);
    clear(this.edgeLayer);
    this.items.clear();
    this.edges.clear();
    this.touching.clear();
    this.cardGrid.clear();
    this.routeGrid.clear();
    this.labelGrid.clear();
    this.lanes.clear();
    const fragment = document.createDocumentFragment();
    for (const node of nodesOf(doc)) {
      const pos = node.position ? { x: node.position.x, y: node.position.y } : { x: 0, y: 0 };
      const item = { node, pos, metrics: cardMetrics(node) };
      item.el = this.renderCard(item);
      this.items.set(node.id, item);
      this.cardGrid.set(node.id, cardRect(item));
      this.touching.set(node.id, new Set());
      fragment.append(item.el);
    }
    this.cardLayer.append(fragment);
    const edgeFragment = document.createDocumentFragment();
    const recs = [];
    for (const edge of edgesOf(doc)) {
      const rec = this.renderEdge(edge);
      if (!rec) continue;
      recs.push(rec);
      edgeFragment.append(rec.g);
    }
    for (const rec of recs) this.placeEdgeLabel(rec);
    this.edgeLayer.append(edgeFragment);
    for (const id of [...this.selected]) if (!this.items.has(id)) this.selected.delete(id);
    if (this.selectedEdge && !this.edges.has(this.selectedEdge)) this.selectedEdge = null;
    this.refreshSelection();
    for (const layer of this.layers) layer.setDocument(doc);
    this.empty.hidden = this.items.size > 0;
    if (!keepView) this.fit({ minZoom: READABLE_ZOOM });
  }

  renderCard(item) {
    const { node, pos, metrics } = item;
    const rt = this.runtimes[node.runtime] || { label: node.runtime || "unknown", color: "#6e7781" };
    const title = node.title || node.id;
    const statusEl = h("span", { class: "status-word" });
    const iconEl = h("span", { class: "status-icon", "aria-hidden": "true" });
    const markEl = h("span", { class: "status-mark" });
    const durationEl = h("span", { class: "card-duration" });
    const inputs = portsOf(node, "inputs");
    const outputs = portsOf(node, "outputs");
    const port = (kind, p) => h("button", {
      type: "button",
      class: `port port-${kind === "inputs" ? "in" : "out"}`,
      "data-kind": kind,
      "data-port": p.name,
      "data-format": p.format,
      title: `${kind === "inputs" ? "Input" : "Output"} “${p.name}”, ${p.format}` +
        (kind === "outputs" ? ". Drag to an input to connect." : ""),
      "aria-label": `${kind === "inputs" ? "input" : "output"} ${p.name} (${p.format}) of ${title}`,
    },
    h("span", { class: "port-dot", "aria-hidden": "true" }),
    h("span", { class: "port-name" }, p.name),
    h("span", { class: "port-format" }, p.format),
    h("span", { class: "port-count", "data-testid": `count-${kind === "inputs" ? "in" : "out"}-${p.name}`, hidden: true }));
    const el = h("div", {
      class: "card",
      role: "listitem",
      tabindex: "0",
      "data-node-id": node.id,
      "data-status": "",
      "data-runtime": node.runtime || "",
      style: { width: `${CARD_W}px`, height: `${metrics.height}px`, transform: `translate(${pos.x}px, ${pos.y}px)` },
    },
    h("div", { class: "card-head", style: { height: `${metrics.headH}px` } },
      h("span", { class: "badge", style: { background: rt.color, color: textColorFor(rt.color) } }, rt.label),
      h("span", { class: "card-title", title, style: { "-webkit-line-clamp": String(metrics.titleLines) } }, title)),
    metrics.descLines
      ? h("div", { class: "card-desc", style: { height: `${metrics.descLines * DESC_LINE_H}px`, "margin-bottom": `${DESC_PAD}px`, "-webkit-line-clamp": String(metrics.descLines) }, title: node.description }, node.description)
      : null,
    metrics.portsH
      ? h("div", { class: "card-ports", style: { height: `${metrics.portsH}px` } },
        inputs.map((p) => port("inputs", p)),
        outputs.map((p) => port("outputs", p)))
      : null);
    const problemEl = h("span", { class: "card-problem", hidden: true, tabindex: "0", role: "note" }, "⚠ problem");
    const changedEl = h("button", {
      type: "button", class: "card-changed", hidden: true, tabindex: "-1",
      title: "Its output is not the same as in the run before: show what changed",
      "aria-label": `What changed since the run before in ${title}?`,
    }, "changed");
    const foot = h("div", { class: "card-foot" },
      h("span", { class: "status" }, iconEl, statusEl, markEl), changedEl, problemEl, durationEl);
    el.append(foot);
    item.el = el;
    item.statusEl = statusEl;
    item.iconEl = iconEl;
    item.markEl = markEl;
    item.durationEl = durationEl;
    item.changedEl = changedEl;
    item.problemEl = problemEl;
    item.title = title;
    item.runtimeLabel = rt.label;
    this.paintStatus(item, this.statuses.get(node.id));
    this.paintChanged(item);
    this.paintCounts(item);
    this.paintProblems(item);
    return el;
  }

  renderEdge(edge) {
    const a = this.items.get(edge.src);
    const b = this.items.get(edge.dst);
    if (!a || !b) return null;
    const srcPort = portsOf(a.node, "outputs").find((p) => p.name === edge.srcPort);
    const dstPort = portsOf(b.node, "inputs").find((p) => p.name === edge.dstPort);
    const g = svg("g", { class: "edge", "data-edge": edge.key });
    const hit = svg("path", { class: "edge-hit" });
    const line = svg("path", { class: "edge-line" });
    const label = svg("g", { class: "edge-label" });
    const rect = svg("rect", { rx: 9, ry: 9, height: 18, y: -9 });
    const text = svg("text", { "text-anchor": "middle" });
    label.append(rect, text);
    const title = svg("title");
    g.append(title, hit, line, label);
    const rec = {
      edge, g, hit, line, label, rect, text, title,
      srcFormat: srcPort ? srcPort.format : "?",
      dstFormat: dstPort ? dstPort.format : "?",
    };
    this.edges.set(edge.key, rec);
    this.touching.get(edge.src).add(edge.key);
    this.touching.get(edge.dst).add(edge.key);
    this.paintEdgeLabel(rec);
    this.drawEdge(rec, { label: false });
    this.paintEdgeFlow(rec);
    this.paintEdgeMarks(rec);
    return rec;
  }

  /** Route an edge (and place its label, unless `label` is false: a batch places them after every route). */
  drawEdge(rec, { label = true } = {}) {
    const key = rec.edge.key;
    const a = this.items.get(rec.edge.src);
    const b = this.items.get(rec.edge.dst);
    const p1 = portPoint(a.node, a.pos, "outputs", rec.edge.srcPort, a.metrics);
    const p2 = portPoint(b.node, b.pos, "inputs", rec.edge.dstPort, b.metrics);
    this.lanes.delete(key);
    const route = routeEdge(p1, p2, this.cardGrid, new Set([rec.edge.src, rec.edge.dst]), [...this.lanes.values()]);
    if (route.lane) this.lanes.set(key, route.lane);
    rec.route = route;
    this.routeGrid.set(key, route.bbox);
    rec.line.setAttribute("d", route.d);
    rec.hit.setAttribute("d", route.d);
    if (label) this.placeEdgeLabel(rec);
  }

  /** Put an edge's label on the edge where it covers no card and no other label. */
  placeEdgeLabel(rec) {
    if (!rec.route || !rec.labelSize) return;
    const { w, h: ht } = rec.labelSize;
    const own = rec.edge.key;
    const crossings = (rect) => {
      let n = 0;
      for (const [key] of this.routeGrid.query(rect)) {
        if (key === own) continue;
        const other = this.edges.get(key);
        if (!other || !other.route) continue;
        for (const q of other.route.points) {
          if (q.x > rect.x && q.x < rect.x + rect.w && q.y > rect.y && q.y < rect.y + rect.h) n += 1;
        }
      }
      return n;
    };
    const p = placeLabel(rec.route.label, w, ht, this.cardGrid, this.labelGrid, own, crossings);
    const x = Math.round(p.x);
    const y = Math.round(p.y);
    rec.label.setAttribute("transform", `translate(${x},${y})`);
    this.labelGrid.set(rec.edge.key, { x: x - w / 2, y: y - ht / 2, w, h: ht });
  }

  paintEdgeLabel(rec) {
    const fmt = rec.srcFormat === rec.dstFormat ? rec.srcFormat : `${rec.srcFormat} → ${rec.dstFormat}`;
    const since = this.since.edges[rec.edge.key];
    // no count where none went through: an edge added since the run on show, or into a step that never got it
    const n = since || this.unmeasured.has(rec.edge.key) ? undefined : this.records.get(`${rec.edge.src}.${rec.edge.srcPort}`);
    const known = n !== undefined && n !== null;
    const second = known ? formatRecords(n) : "";
    // Short lines fit between cards better than one long one: "json", "1,000", "records".
    const lines = [fmt];
    if (since) lines.push(SINCE[since].short);
    else if (known) {
      const [num, ...word] = second.split(" ");
      // (the number keeps its space, so the label's text still reads "1,000 records")
      if (second.length > 9 && word.length) lines.push(`${num} `, word.join(" "));
      else lines.push(second);
    }
    rec.text.replaceChildren();
    lines.forEach((text, i) => {
      const span = svg("tspan", { x: 0, dy: i ? "1.2em" : `${0.35 - (lines.length - 1) * 0.6}em`,
                                  class: i ? "edge-records" : "" });
      span.textContent = text;
      rec.text.append(span);
    });
    rec.text.setAttribute("dy", "0");
    const trouble = this.problems.edges[rec.edge.key];
    rec.title.textContent = `${rec.edge.src}.${rec.edge.srcPort} → ${rec.edge.dst}.${rec.edge.dstPort}: ${fmt}${known ? `, ${second}` : ""}` +
      (since ? ` (${SINCE[since].word.toLowerCase()})` : "") + (trouble ? `. Problem: ${trouble.join("; ")}` : "");
    // Monospace at 11px: about 6.6px a character, so the pill fits without measuring.
    const chars = Math.max(...lines.map((l) => l.trim().length));
    const width = Math.ceil(chars * 6.7) + 14;
    const height = 18 + (lines.length - 1) * 14;
    rec.rect.setAttribute("width", String(width));
    rec.rect.setAttribute("x", String(-width / 2));
    rec.rect.setAttribute("height", String(height));
    rec.rect.setAttribute("y", String(-height / 2));
    rec.g.classList.toggle("has-records", known);
    const changed = !rec.labelSize || rec.labelSize.w !== width || rec.labelSize.h !== height;
    rec.labelSize = { w: width, h: height };
    if (changed) this.placeEdgeLabel(rec);
  }

  paintEdgeFlow(rec) {
    const s = (this.statuses.get(rec.edge.src) || {}).status;
    const t = (this.statuses.get(rec.edge.dst) || {}).status;
    const flowing = this.running && (s === "running" || t === "running");
    rec.g.classList.toggle("flowing", flowing);
    rec.g.classList.toggle("done", isDone(s) && (isDone(t) || t === "running"));
  }

  /** An edge added or removed since the run on show, or with a problem: a class, and words in its title. */
  paintEdgeMarks(rec) {
    const since = this.since.edges[rec.edge.key] || "";
    rec.g.dataset.since = since;
    rec.g.classList.toggle("edge-problem", !!this.problems.edges[rec.edge.key]);
  }

  paintStatus(item, info) {
    const status = (info && info.status) || "";
    const since = this.since.nodes[item.node.id];
    // No status while a run is on show: the step was left out of that run (it may have run in others).
    let d = !status && this.runShown && !this.neverRan.has(item.node.id) ? NOT_IN_RUN : describeStatus(status);
    // added since: not in that run whatever the latest results say; removed since: its status, marked
    if (since === "added") d = { word: NOT_IN_RUN.word, icon: SINCE.added.icon, mark: SINCE.added.short };
    else if (since) d = { ...d, mark: SINCE[since].short };
    item.el.dataset.status = since === "added" ? "" : status;
    item.el.dataset.since = since || "";
    item.markEl.dataset.since = since || "";
    item.iconEl.textContent = d.icon;
    item.statusEl.textContent = d.word;
    item.markEl.textContent = d.mark || "";
    item.markEl.hidden = !d.mark;
    // A cached step did not run this time, so it has no time of its own to show.
    const timed = since !== "added" && info && info.duration_s !== null && info.duration_s !== undefined && !["running", "cached"].includes(status);
    const duration = timed ? formatDuration(info.duration_s) : "";
    // Building the program (a first Go or Rust compile) is not the step's own time: said apart.
    const built = timed && info.build_s ? formatDuration(info.build_s) : "";
    const took = built ? `built in ${built}, ran in ${duration}` : duration;
    // A step that did not succeed says why in a few words; the inspector has the whole story.
    const why = since === "added" ? null : explainStatus(info, (id) => this.titleOf(id));
    const from = since ? null : this.from[item.node.id];
    item.durationEl.textContent = why ? why.short : from ? from.text : built ? `ran ${duration}` : duration;
    item.durationEl.classList.toggle("card-reason", !!why);
    item.durationEl.classList.toggle("card-from", !why && !!from);
    const title = why ? why.long : from ? `${from.title}${took ? ` It took ${took}.` : ""}` : since === "added" ? SINCE.added.long : built ? `Built in ${built}, ran in ${duration}.` : "";
    if (title) item.durationEl.setAttribute("title", title);
    else item.durationEl.removeAttribute("title");
    item.el.setAttribute("aria-label",
      `${item.title}, ${item.runtimeLabel} step, ${d.word.toLowerCase()}${d.mark ? ` (${d.mark})` : ""}` +
      (took ? `, ${built ? took : `took ${took}`}` : "") + (why ? `: ${why.long}` : "") + (from ? `. ${from.title}` : "") +
      (since ? `. ${SINCE[since].long}` : ""));
  }

  /** Validation problems: {nodes: {id: [msg]}, ports: {"id.inputs.port": [msg]}, edges: {key: [msg]}}. */
  setProblems(problems) {
    this.problems = { nodes: {}, ports: {}, edges: {}, ...(problems || {}) };
    for (const item of this.items.values()) this.paintProblems(item);
    for (const rec of this.edges.values()) {
      this.paintEdgeMarks(rec);
      this.paintEdgeLabel(rec);
    }
  }

  /** A step with a problem (its own, or one of its ports') says so on its card; hover or focus gives the words. */
  paintProblems(item) {
    if (!item.problemEl) return;
    const own = this.problems.nodes[item.node.id] || [];
    const lines = [...own];
    for (const el of item.el.querySelectorAll(".port")) {
      const msgs = this.problems.ports[`${item.node.id}.${el.dataset.kind}.${el.dataset.port}`];
      el.classList.toggle("port-problem", !!msgs);
      const base = el.dataset.baseTitle || el.getAttribute("title") || "";
      el.dataset.baseTitle = base;
      el.setAttribute("title", msgs ? `${base}\nProblem: ${msgs.join("; ")}` : base);
      if (msgs) lines.push(...msgs.map((m) => `${el.dataset.kind === "inputs" ? "input" : "output"} “${el.dataset.port}”: ${m}`));
    }
    item.el.classList.toggle("has-problem", lines.length > 0);
    item.problemEl.hidden = !lines.length;
    item.problemEl.textContent = lines.length > 1 ? `⚠ ${lines.length} problems` : "⚠ problem";
    item.problemEl.dataset.tip = lines.join("\n");
    item.problemEl.setAttribute("aria-label", `Problem: ${lines.join("; ")}`);
  }

  /** Mark the steps whose output differs from the run before ({nodeId: port}); others are unmarked. */
  setChanged(map) {
    this.changed = map || {};
    for (const item of this.items.values()) this.paintChanged(item);
  }

  paintChanged(item) {
    if (!item.changedEl) return;
    const port = (this.changed || {})[item.node.id];
    item.changedEl.hidden = !port;
    item.changedEl.dataset.port = port || "";
  }

  /** The title a node shows (its id when it has none). */
  titleOf(id) {
    const item = this.items.get(id);
    return item ? item.title : id;
  }

  // ------------------------------------------------------------ run state

  /** Replace every node's status: {id: {status, duration_s, exit_code}}. */
  setStatuses(nodes) {
    this.statuses.clear();
    for (const [id, info] of Object.entries(nodes || {})) this.statuses.set(id, info);
    for (const [id, item] of this.items) this.paintStatus(item, this.statuses.get(id));
    for (const rec of this.edges.values()) this.paintEdgeFlow(rec);
  }

  /** Say whether a run is on show, which nodes no run ever included (they read "Not run yet"), what is
   * `since` the run on show ({nodes: {id: "added"|"removed"}, edges: {key: ...}}), and which steps show
   * a result `from` an earlier run ({id: {text, title}}). */
  setRunContext({ shown = false, neverRan = new Set(), since = null, from = null } = {}) {
    const same = shown === this.runShown && neverRan.size === this.neverRan.size && [...neverRan].every((id) => this.neverRan.has(id));
    this.runShown = shown;
    this.neverRan = new Set(neverRan);
    if (since) this.since = { nodes: {}, edges: {}, ...since };
    if (from) this.from = from;
    if (same && !since && !from) return;
    for (const [id, item] of this.items) this.paintStatus(item, this.statuses.get(id));
    if (since) for (const rec of this.edges.values()) this.paintEdgeMarks(rec);
  }

  /** Update one node's status and the flow on its edges. */
  setStatus(id, info) {
    this.statuses.set(id, info);
    const item = this.items.get(id);
    if (item) this.paintStatus(item, info);
    for (const key of this.touching.get(id) || []) this.paintEdgeFlow(this.edges.get(key));
  }

  /** Mark the run as on or off (edges animate while it is on). */
  setRunning(running) {
    this.running = running;
    this.root.classList.toggle("run-active", running);
    for (const rec of this.edges.values()) this.paintEdgeFlow(rec);
  }

  /** Replace every record count: {"node.port": n}; `unmeasured` edges (keys) show none. */
  setRecords(map, unmeasured = new Set()) {
    this.records.clear();
    this.unmeasured = new Set(unmeasured);
    for (const [k, v] of Object.entries(map || {})) this.records.set(k, v);
    for (const rec of this.edges.values()) this.paintEdgeLabel(rec);
    for (const item of this.items.values()) this.paintCounts(item);
  }

  /** The records each port of a card took in or gave out in the run on show ("1,000 in", "991 out"). */
  paintCounts(item) {
    if (!item.el) return;
    const feeds = new Map();
    for (const key of this.touching.get(item.node.id) || []) {
      const rec = this.edges.get(key);
      if (rec && rec.edge.dst === item.node.id && !this.since.edges[key] && !this.unmeasured.has(key)) {
        feeds.set(rec.edge.dstPort, `${rec.edge.src}.${rec.edge.srcPort}`);
      }
    }
    for (const el of item.el.querySelectorAll(".port")) {
      const inbound = el.dataset.kind === "inputs";
      const source = this.since.nodes[item.node.id] ? null : inbound ? feeds.get(el.dataset.port) : `${item.node.id}.${el.dataset.port}`;
      const n = source ? this.records.get(source) : undefined;
      const span = el.querySelector(".port-count");
      span.hidden = typeof n !== "number";
      span.textContent = typeof n === "number" ? `${formatNumber(n)} ${inbound ? "in" : "out"}` : "";
    }
  }

  /** Set the record count of one output port. */
  setRecord(nodeId, port, count) {
    this.records.set(`${nodeId}.${port}`, count);
    for (const key of this.touching.get(nodeId) || []) {
      const rec = this.edges.get(key);
      if (rec) this.paintCounts(this.items.get(rec.edge.src === nodeId ? rec.edge.dst : rec.edge.src) || {});
    }
    this.paintCounts(this.items.get(nodeId) || {});
    for (const key of this.touching.get(nodeId) || []) {
      const rec = this.edges.get(key);
      if (rec.edge.src === nodeId && rec.edge.srcPort === port) this.paintEdgeLabel(rec);
    }
  }

  // ------------------------------------------------------------ selection

  /** Select nodes (and clear any edge selection). */
  select(ids, { notify = true, focus = false } = {}) {
    this.selected = new Set(ids);
    this.selectedEdge = null;
    this.refreshSelection();
    if (focus && ids.length === 1) {
      const item = this.items.get(ids[0]);
      if (item) {
        item.el.focus({ preventScroll: true });
        this.reveal(ids[0]);
      }
    }
    if (notify) this.notifySelect();
  }

  selectEdge(key) {
    this.selected.clear();
    this.selectedEdge = key;
    this.refreshSelection();
    this.notifySelect();
  }

  notifySelect() {
    if (this.handlers.onSelect) this.handlers.onSelect([...this.selected], this.selectedEdge);
  }

  refreshSelection() {
    for (const [id, item] of this.items) {
      const on = this.selected.has(id);
      if (item.el.classList.contains("selected") !== on) {
        item.el.classList.toggle("selected", on);
        item.el.setAttribute("aria-selected", on ? "true" : "false");
      }
    }
    for (const [key, rec] of this.edges) rec.g.classList.toggle("selected", key === this.selectedEdge);
  }

  // ------------------------------------------------------------ view

  /**
   * Fit every node into view (never zooming in past 100%, nor out past
   * `minZoom`). When the pipeline does not fit at `minZoom`, show where it
   * starts (its left end) and let the user pan to the rest.
   */
  fit({ minZoom = MIN_ZOOM } = {}) {
    const rect = this.root.getBoundingClientRect();
    if (!(this.items.size || this.layers.some((layer) => layer.rects().length)) || !rect.width) {
      this.view = { x: 40, y: 40, k: 1 };
      this.applyView();
      return;
    }
    const b = this.bounds();
    const pad = 24;
    const whole = Math.min(1, (rect.width - pad * 2) / (b.w || 1), (rect.height - pad * 2) / (b.h || 1));
    const k = Math.max(MIN_ZOOM, minZoom, whole);
    const fitsX = b.w * k <= rect.width - pad * 2 + 0.5;
    const fitsY = b.h * k <= rect.height - pad * 2 + 0.5;
    this.view = {
      k,
      x: fitsX ? (rect.width - b.w * k) / 2 - b.x * k : pad - b.x * k,
      y: fitsY ? (rect.height - b.h * k) / 2 - b.y * k : pad - b.y * k,
    };
    this.fitted = { minZoom };
    this.applyView();
  }

  bounds() {
    let x1 = Infinity; let y1 = Infinity; let x2 = -Infinity; let y2 = -Infinity;
    for (const { pos, metrics } of this.items.values()) {
      x1 = Math.min(x1, pos.x);
      y1 = Math.min(y1, pos.y);
      x2 = Math.max(x2, pos.x + metrics.width);
      y2 = Math.max(y2, pos.y + metrics.height);
    }
    // Detours, labels and notes can reach past the cards.
    const extra = this.layers.flatMap((layer) => layer.rects());
    for (const rects of [this.routeGrid.rects.values(), this.labelGrid.rects.values(), extra]) {
      for (const r of rects) {
        x1 = Math.min(x1, r.x);
        y1 = Math.min(y1, r.y);
        x2 = Math.max(x2, r.x + r.w);
        y2 = Math.max(y2, r.y + r.h);
      }
    }
    return { x: x1, y: y1, w: x2 - x1, h: y2 - y1 };
  }

  /** Zoom by a factor around a point on screen (default: the centre). */
  zoomBy(factor, clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    const cx = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    const cy = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.view.k * factor));
    this.fitted = null;
    const wx = (cx - this.view.x) / this.view.k;
    const wy = (cy - this.view.y) / this.view.k;
    this.view = { k, x: cx - wx * k, y: cy - wy * k };
    this.applyView();
  }

  /** Scroll so a node is visible. */
  reveal(id) {
    const item = this.items.get(id);
    if (!item) return;
    const rect = this.root.getBoundingClientRect();
    const { x, y, k } = this.view;
    const left = item.pos.x * k + x;
    const top = item.pos.y * k + y;
    const right = left + item.metrics.width * k;
    const bottom = top + item.metrics.height * k;
    if (left >= 0 && top >= 0 && right <= rect.width && bottom <= rect.height) return;
    this.fitted = null;
    this.view = {
      k,
      x: rect.width / 2 - (item.pos.x + item.metrics.width / 2) * k,
      y: rect.height / 2 - (item.pos.y + item.metrics.height / 2) * k,
    };
    this.applyView();
  }

  /** Guided mode: light up step `id` and the connections into and out of it, dim the rest (null ends it),
   * and centre it in the part of the canvas that `cover` (a screen rect over the canvas, such as a panel)
   * leaves free. */
  setFocus(id, cover = null) {
    this.root.classList.toggle("walking", !!id);
    for (const [nid, item] of this.items) item.el.classList.toggle("walk-focus", nid === id);
    for (const rec of this.edges.values()) {
      rec.g.classList.toggle("walk-focus", !!id && (rec.edge.src === id || rec.edge.dst === id));
    }
    const item = id && this.items.get(id);
    if (!item) return;
    const rect = this.root.getBoundingClientRect();
    let { width: w, height: hgt } = rect;
    if (cover && cover.top > rect.top + rect.height / 3) hgt = cover.top - rect.top; // a sheet along the bottom
    else if (cover && cover.left > rect.left + rect.width / 3) w = cover.left - rect.left; // a panel on the right
    const k = Math.min(Math.max(this.view.k, 0.75), 1);
    this.fitted = null;
    this.view = {
      k,
      x: w / 2 - (item.pos.x + item.metrics.width / 2) * k,
      y: hgt / 2 - (item.pos.y + item.metrics.height / 2) * k,
    };
    this.applyView();
  }

  /** Screen point -> canvas coordinates. */
  toCanvas(clientX, clientY, rect = this.root.getBoundingClientRect()) {
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  /** The canvas point at the centre of the visible area. */
  centre() {
    const rect = this.root.getBoundingClientRect();
    return this.toCanvas(rect.left + rect.width / 2, rect.top + rect.height / 2, rect);
  }

  /** Current positions of every node: {id: {x, y}}. */
  positions() {
    const out = {};
    for (const [id, item] of this.items) out[id] = { x: item.pos.x, y: item.pos.y };
    return out;
  }

  /** Move nodes on screen (no edit is recorded). */
  moveNodes(positions) {
    const dirty = new Set();
    const swept = [];
    for (const [id, p] of Object.entries(positions)) {
      const item = this.items.get(id);
      if (!item) continue;
      swept.push(this.cardGrid.get(id));
      item.pos = { x: p.x, y: p.y };
      item.el.style.transform = `translate(${p.x}px, ${p.y}px)`;
      const rect = cardRect(item);
      this.cardGrid.set(id, rect);
      swept.push(rect);
      for (const key of this.touching.get(id)) dirty.add(key);
    }
    // Edges and labels near where a card was or now is may need another way or place.
    for (const r of swept) {
      if (!r) continue;
      const area = { x: r.x - 40, y: r.y - 40, w: r.w + 80, h: r.h + 80 };
      for (const [key] of this.routeGrid.query(area)) dirty.add(key);
      for (const [key] of this.labelGrid.query(area)) dirty.add(key);
    }
    const recs = [...dirty].map((key) => this.edges.get(key)).filter(Boolean);
    for (const rec of recs) this.drawEdge(rec, { label: false });
    for (const rec of recs) this.placeEdgeLabel(rec);
  }

  // ------------------------------------------------------------ input

  bindEvents() {
    const root = this.root;
    root.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    root.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.ctrlKey || e.metaKey || !e.shiftKey) {
        const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
        this.zoomBy(Math.exp(-delta * 0.0015), e.clientX, e.clientY);
      } else {
        this.view.x -= e.deltaY;
        this.fitted = null;
        this.applyView();
      }
    }, { passive: false });
    root.addEventListener("focusin", (e) => {
      const card = e.target.closest && e.target.closest(".card");
      if (card && e.target === card && !this.selected.has(card.dataset.nodeId) && !this.pointerBusy) {
        this.select([card.dataset.nodeId]);
      }
    });
    root.addEventListener("keydown", (e) => this.onKeyDown(e));
    root.addEventListener("dblclick", (e) => {
      const card = e.target.closest(".card");
      if (card && this.handlers.onActivate) this.handlers.onActivate(card.dataset.nodeId);
    });
    root.addEventListener("click", (e) => {
      const changed = e.target.closest(".card-changed");
      if (changed) {
        const card = changed.closest(".card");
        if (this.handlers.onShowChanged) this.handlers.onShowChanged(card.dataset.nodeId, changed.dataset.port);
        return;
      }
      const portEl = e.target.closest(".port");
      // A click without a drag: keyboard Enter/Space on a port lands here too.
      if (portEl && e.detail === 0) this.onPortActivate(portEl);
    });
    root.addEventListener("dragover", (e) => {
      if (!this.readOnly && e.dataTransfer && [...e.dataTransfer.types].includes("application/x-pipeloom-runtime")) {
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
      }
    });
    root.addEventListener("drop", (e) => {
      const runtime = e.dataTransfer && e.dataTransfer.getData("application/x-pipeloom-runtime");
      if (!runtime || this.readOnly) return;
      e.preventDefault();
      const p = this.toCanvas(e.clientX, e.clientY);
      if (this.handlers.onDropRuntime) this.handlers.onDropRuntime(runtime, { x: p.x - CARD_W / 2, y: p.y - 30 });
    });
    window.addEventListener("keydown", (e) => {
      if (e.code === "Space" && !isTyping(e.target)) {
        if (!this.spaceDown) root.classList.add("space-pan");
        this.spaceDown = true;
        if (root.contains(e.target) || e.target === document.body) e.preventDefault();
      }
    });
    window.addEventListener("keyup", (e) => {
      if (e.code === "Space") {
        this.spaceDown = false;
        root.classList.remove("space-pan");
      }
    });
  }

  onPointerDown(e) {
    if (e.button !== 0 && e.button !== 1) return;
    const target = e.target;
    if (this.wire && this.wire.armed) {
      this.finishWire(this.wireTarget(target));
      e.preventDefault();
      return;
    }
    if (this.spaceDown || e.button === 1) return this.startPan(e);
    if (target.closest(".card-changed")) return; // a button of its own, handled on click
    const port = target.closest(".port");
    // a wire starts on an output's dot or name; the rest of its row belongs to the card (a click selects it)
    if (port && port.dataset.kind === "outputs" && !this.readOnly && target.closest(".port-dot, .port-name")) {
      return this.startWire(e, port);
    }
    const card = target.closest(".card");
    if (card) return this.startDrag(e, card);
    const edgeEl = target.closest(".edge");
    if (edgeEl) {
      this.selectEdge(edgeEl.dataset.edge);
      return;
    }
    if (target.closest(".canvas-tools")) return;
    this.startPan(e, true);
  }

  startPan(e, clearOnClick = false) {
    e.preventDefault();
    const start = { x: e.clientX, y: e.clientY, vx: this.view.x, vy: this.view.y };
    let moved = false;
    this.root.classList.add("panning");
    this.track(e, (ev) => {
      const dx = ev.clientX - start.x;
      const dy = ev.clientY - start.y;
      if (!moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
      moved = true;
      this.fitted = null;
      this.view.x = start.vx + dx;
      this.view.y = start.vy + dy;
      this.applyView();
    }, () => {
      this.root.classList.remove("panning");
      if (!moved && clearOnClick) {
        this.root.focus({ preventScroll: true });
        this.select([]);
      }
    });
  }

  startDrag(e, card) {
    const id = card.dataset.nodeId;
    const additive = e.shiftKey || e.metaKey || e.ctrlKey;
    if (additive) {
      const next = new Set(this.selected);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      this.select([...next]);
      return;
    }
    if (!this.selected.has(id)) this.select([id]);
    this.pointerBusy = true;
    card.focus({ preventScroll: true });
    this.pointerBusy = false;
    e.preventDefault();
    if (this.readOnly) return;
    const rect = this.root.getBoundingClientRect();
    const origin = this.toCanvas(e.clientX, e.clientY, rect);
    const moving = [...this.selected].filter((n) => this.items.has(n));
    const starts = Object.fromEntries(moving.map((n) => [n, { ...this.items.get(n).pos }]));
    let moved = false;
    const move = rafThrottle((ev) => {
      const p = this.toCanvas(ev.clientX, ev.clientY, rect);
      const dx = p.x - origin.x;
      const dy = p.y - origin.y;
      if (!moved && Math.hypot(dx * this.view.k, dy * this.view.k) < DRAG_THRESHOLD) return;
      if (!moved) this.root.classList.add("dragging");
      moved = true;
      const next = {};
      for (const n of moving) next[n] = { x: starts[n].x + dx, y: starts[n].y + dy };
      this.moveNodes(next);
    });
    this.track(e, move, (ev) => {
      move(ev);
      requestAnimationFrame(() => {
        this.root.classList.remove("dragging");
        if (moved) {
          const snapped = {};
          for (const n of moving) {
            const p = this.items.get(n).pos;
            snapped[n] = { x: Math.round(p.x / GRID) * GRID, y: Math.round(p.y / GRID) * GRID };
          }
          this.moveNodes(snapped);
          if (this.handlers.onMove) this.handlers.onMove(snapped);
        } else if (this.selected.size > 1) {
          this.select([id]);
        }
      });
    });
  }

  startWire(e, portEl) {
    e.preventDefault();
    e.stopPropagation();
    const card = portEl.closest(".card");
    const item = this.items.get(card.dataset.nodeId);
    const from = portPoint(item.node, item.pos, "outputs", portEl.dataset.port, item.metrics);
    this.wire = { src: item.node.id, srcPort: portEl.dataset.port, from, armed: false, portEl };
    portEl.classList.add("wiring");
    this.root.classList.add("connecting");
    const startX = e.clientX;
    const startY = e.clientY;
    let moved = false;
    this.track(e, (ev) => {
      if (!moved && Math.hypot(ev.clientX - startX, ev.clientY - startY) >= DRAG_THRESHOLD) moved = true;
      this.drawWire(ev);
    }, (ev) => {
      if (!moved) {
        // A plain click arms the wire: the next click on an input finishes it.
        this.wire.armed = true;
        this.armMove = (mv) => this.drawWire(mv);
        window.addEventListener("pointermove", this.armMove);
        return;
      }
      this.finishWire(this.wireTarget(document.elementFromPoint(ev.clientX, ev.clientY)));
    });
  }

  /** What a wire would end on at `el`: an input port, or another card (which gets a new input), or null. */
  wireTarget(el) {
    if (!el || !el.closest || !this.wire) return null;
    const port = el.closest(".port[data-kind=inputs]");
    if (port) return port;
    const card = el.closest(".card");
    return card && card.dataset.nodeId !== this.wire.src ? card : null;
  }

  drawWire(ev) {
    if (!this.wire) return;
    const p = this.toCanvas(ev.clientX, ev.clientY);
    this.wirePath.setAttribute("d", edgeCurve(this.wire.from, p).d);
    const target = this.wireTarget(document.elementFromPoint(ev.clientX, ev.clientY));
    if (this.wireHover && this.wireHover !== target) this.wireHover.classList.remove("drop-target");
    if (target) target.classList.add("drop-target");
    this.wireHover = target;
  }

  /** End a wire on `target`: an input port connects to it; a card gets a new input for it. */
  finishWire(target) {
    const wire = this.wire;
    this.cancelWire();
    if (!wire || !target || this.readOnly) return;
    if (target.classList.contains("card")) {
      if (this.handlers.onConnectCard) this.handlers.onConnectCard(wire.src, wire.srcPort, target.dataset.nodeId);
      return;
    }
    const dst = target.closest(".card").dataset.nodeId;
    if (this.handlers.onConnect) this.handlers.onConnect(wire.src, wire.srcPort, dst, target.dataset.port);
  }

  cancelWire() {
    if (this.armMove) window.removeEventListener("pointermove", this.armMove);
    this.armMove = null;
    if (this.wire && this.wire.portEl) this.wire.portEl.classList.remove("wiring");
    if (this.wireHover) this.wireHover.classList.remove("drop-target");
    this.wireHover = null;
    this.wire = null;
    this.wirePath.setAttribute("d", "");
    this.root.classList.remove("connecting");
  }

  /** Keyboard connect: Enter on an output arms a wire, Enter on an input finishes it. */
  onPortActivate(portEl) {
    if (this.readOnly) return;
    if (portEl.dataset.kind === "outputs") {
      const card = portEl.closest(".card");
      const item = this.items.get(card.dataset.nodeId);
      this.cancelWire();
      const from = portPoint(item.node, item.pos, "outputs", portEl.dataset.port, item.metrics);
      this.wire = { src: item.node.id, srcPort: portEl.dataset.port, from, armed: true, portEl };
      portEl.classList.add("wiring");
      this.root.classList.add("connecting");
      if (this.handlers.onHint) this.handlers.onHint("Now choose an input to connect to (Enter on it), or press Escape.");
    } else if (this.wire) {
      this.finishWire(portEl);
    }
  }

  track(e, onMove, onUp) {
    const pointerId = e.pointerId;
    const el = this.root;
    try { el.setPointerCapture(pointerId); } catch { /* pointer already gone */ }
    const move = (ev) => { if (ev.pointerId === pointerId) onMove(ev); };
    const up = (ev) => {
      if (ev.pointerId !== pointerId) return;
      el.removeEventListener("pointermove", move);
      el.removeEventListener("pointerup", up);
      el.removeEventListener("pointercancel", up);
      try { el.releasePointerCapture(pointerId); } catch { /* already released */ }
      onUp(ev);
    };
    el.addEventListener("pointermove", move);
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
  }

  onKeyDown(e) {
    if (isTyping(e.target)) return;
    if (e.key === "Escape") {
      if (this.wire) this.cancelWire();
      else this.select([]);
      return;
    }
    if (e.key === "Delete" || e.key === "Backspace") {
      if ((!this.selected.size && !this.selectedEdge) || this.readOnly) return;
      e.preventDefault();
      if (this.handlers.onDelete) this.handlers.onDelete([...this.selected], this.selectedEdge ? [this.selectedEdge] : []);
      return;
    }
    const card = e.target.closest && e.target.closest(".card");
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (card && e.target === card && arrows[e.key] && this.selected.size && !this.readOnly) {
      e.preventDefault();
      const step = e.shiftKey ? GRID * 8 : GRID * 2;
      const [dx, dy] = arrows[e.key];
      const next = {};
      for (const id of this.selected) {
        const p = this.items.get(id).pos;
        next[id] = { x: p.x + dx * step, y: p.y + dy * step };
      }
      this.moveNodes(next);
      if (this.handlers.onMove) this.handlers.onMove(next);
      return;
    }
    if (card && e.target === card && e.key === "Enter" && this.handlers.onActivate) {
      this.handlers.onActivate(card.dataset.nodeId);
    }
    if ((e.key === "+" || e.key === "=") && !e.ctrlKey && !e.metaKey) this.zoomBy(1.2);
    if (e.key === "-" && !e.ctrlKey && !e.metaKey) this.zoomBy(1 / 1.2);
  }
}

function cardRect(item) {
  return { x: item.pos.x, y: item.pos.y, w: item.metrics.width, h: item.metrics.height };
}

function isTyping(el) {
  return !!(el && el.closest && el.closest("input, textarea, select, [contenteditable=true], dialog"));
}
