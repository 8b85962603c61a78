// The pipeline canvas: HTML node cards and one SVG edge layer inside a single
// CSS-transformed viewport. Geometry comes from the document (geometry.js),
// so moving a card redraws only the edges that touch it or pass near it.
// The cards are drawn by cards.js, the edges by edges.js, the view by
// viewport.js and the pointer and keys are handled by canvasinput.js; this
// module holds the state they are drawn from and is what the studio talks to.
import { h, svg, clear } from "./dom.js";
import { nodesOf, edgesOf, portsOf } from "./doc.js";
import { cardMetrics, portPoint, setRuntimeLabels } from "./geometry.js";
import { Grid } from "./routing.js";
import { renderCard, cardRect, placeCard, paintStatus, paintProblems, paintChanged, paintCounts } from "./cards.js";
import { EdgeLayer, paintEdgeLabel, paintEdgeFlow, paintEdgeMarks } from "./edges.js";
import { ViewTransform, MIN_ZOOM, READABLE_ZOOM } from "./viewport.js";
import { CanvasInput } from "./canvasinput.js";

export { READABLE_ZOOM };

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
    this.cardGrid = new Grid(); // node id -> card rectangle
    this.touching = new Map(); // node id -> Set of edge keys
    this.statuses = new Map(); // node id -> {status, duration_s, exit_code}
    this.records = new Map(); // "node.port" -> records
    this.selected = new Set();
    this.selectedEdge = null;
    this.running = false;
    this.readOnly = false;
    this.runShown = false; // a run is on show: nodes without a status were not part of it
    this.neverRan = new Set(); // nodes no run of the pipeline ever included
    this.since = { nodes: {}, edges: {} }; // a past run drawn as it ran: what is "added" or "removed" since
    this.unmeasured = new Set(); // edge keys whose records did not go through in the run on show
    this.from = {}; // node id -> {text, title}: its result is from an earlier run than the one on show
    this.problems = { nodes: {}, ports: {}, edges: {} }; // validation problems: id / "id.kind.port" / edge key -> [messages]
    this.layers = []; // more things drawn in the viewport (notes): setDocument(doc), setReadOnly(on), rects()
    setRuntimeLabels(Object.fromEntries(Object.entries(runtimes).map(([name, rt]) => [name, rt.label || name])));
    this.build();
  }

  build() {
    clear(this.root);
    this.root.classList.add("canvas");
    this.viewport = h("div", { class: "viewport" });
    this.transform = new ViewTransform(this.root, this.viewport);
    this.edgeLines = new EdgeLayer(this.cardGrid);
    this.input = new CanvasInput(this);
    this.svg = svg("svg", { class: "edges", width: 1, height: 1, "aria-hidden": "true" });
    this.svg.append(this.edgeLines.el, this.input.wirePath);
    this.cardLayer = h("div", { class: "cards", role: "list", "aria-label": "Steps of the pipeline" });
    this.viewport.append(this.svg, this.cardLayer);
    this.emptyTitle = h("div", { class: "canvas-empty-title" });
    this.emptyHint = h("div", { class: "canvas-empty-hint" });
    this.empty = h("div", { class: "canvas-empty", hidden: true }, this.emptyTitle, this.emptyHint);
    this.paintEmpty();
    this.root.append(this.viewport, this.empty);
    this.input.bind();
    this.transform.apply();
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.onResize()).observe(this.root);
    }
  }

  /** edge key -> its drawn record ({edge, g, ...}). */
  get edges() {
    return this.edgeLines.records;
  }

  /** The view: {x, y, k} (the canvas origin on screen, and the zoom). */
  get view() {
    return this.transform.view;
  }

  /** The canvas got narrower or wider (the palette opened, the window changed): keep the same things in view. */
  onResize() {
    const refit = this.transform.resized();
    if (refit) this.fit(refit);
  }

  /** Read-only: nothing can be moved, connected, deleted or dropped; `empty` says why when there are no cards. */
  setReadOnly(readOnly, empty = null) {
    this.readOnly = readOnly;
    this.readOnlyEmpty = readOnly ? empty : null;
    this.root.classList.toggle("read-only", readOnly);
    for (const layer of this.layers) layer.setReadOnly(readOnly);
    if (readOnly) this.input.cancelWire();
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
    this.edgeLines.clear();
    this.items.clear();
    this.touching.clear();
    this.cardGrid.clear();
    const fragment = document.createDocumentFragment();
    for (const node of nodesOf(doc)) {
      const pos = node.position ? { x: node.position.x, y: node.position.y } : { x: 0, y: 0 };
      const item = { node, pos, metrics: cardMetrics(node) };
      renderCard(item, this.runtimes);
      this.paintCard(item);
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
    for (const rec of recs) this.edgeLines.placeLabel(rec);
    this.edgeLines.append(edgeFragment);
    for (const id of [...this.selected]) if (!this.items.has(id)) this.selected.delete(id);
    if (this.selectedEdge && !this.edges.has(this.selectedEdge)) this.selectedEdge = null;
    this.refreshSelection();
    for (const layer of this.layers) layer.setDocument(doc);
    this.empty.hidden = this.items.size > 0;
    if (!keepView) this.fit({ minZoom: READABLE_ZOOM });
  }

  /** Paint everything a new card shows: status, changed mark, counts and problems. */
  paintCard(item) {
    this.paintStatus(item, this.statuses.get(item.node.id));
    this.paintChanged(item);
    this.paintCounts(item);
    this.paintProblems(item);
  }

  renderEdge(edge) {
    const a = this.items.get(edge.src);
    const b = this.items.get(edge.dst);
    if (!a || !b) return null;
    const srcPort = portsOf(a.node, "outputs").find((p) => p.name === edge.srcPort);
    const dstPort = portsOf(b.node, "inputs").find((p) => p.name === edge.dstPort);
    const rec = this.edgeLines.add(edge, srcPort ? srcPort.format : "?", dstPort ? dstPort.format : "?");
    this.touching.get(edge.src).add(edge.key);
    this.touching.get(edge.dst).add(edge.key);
    this.paintEdgeLabel(rec);
    this.drawEdge(rec, { label: false });
    this.paintEdgeFlow(rec);
    this.paintEdgeMarks(rec);
    return rec;
  }

  /** Route an edge between its ports (and place its label, unless `label` is false). */
  drawEdge(rec, { label = true } = {}) {
    const p1 = this.portPoint(rec.edge.src, "outputs", rec.edge.srcPort);
    const p2 = this.portPoint(rec.edge.dst, "inputs", rec.edge.dstPort);
    this.edgeLines.route(rec, p1, p2, { label });
  }

  paintEdgeLabel(rec) {
    const key = rec.edge.key;
    const since = this.since.edges[key];
    // no count where none went through: an edge added since the run on show, or into a step that never got it
    const n = since || this.unmeasured.has(key) ? undefined : this.records.get(`${rec.edge.src}.${rec.edge.srcPort}`);
    if (paintEdgeLabel(rec, { n, since, trouble: this.problems.edges[key] })) this.edgeLines.placeLabel(rec);
  }

  paintEdgeFlow(rec) {
    const s = (this.statuses.get(rec.edge.src) || {}).status;
    const t = (this.statuses.get(rec.edge.dst) || {}).status;
    paintEdgeFlow(rec, s, t, this.running);
  }

  paintEdgeMarks(rec) {
    paintEdgeMarks(rec, this.since.edges[rec.edge.key], this.problems.edges[rec.edge.key]);
  }

  paintStatus(item, info) {
    const id = item.node.id;
    paintStatus(item, info, {
      shown: this.runShown,
      neverRan: this.neverRan,
      since: this.since.nodes[id],
      from: this.from[id],
      titleOf: (other) => this.titleOf(other),
    });
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

  paintProblems(item) {
    paintProblems(item, this.problems);
  }

  /** Mark the steps whose output differs from the run before ({nodeId: port}); others are unmarked. */
  setChanged(map) {
    this.changed = map || {};
    for (const item of this.items.values()) this.paintChanged(item);
  }

  paintChanged(item) {
    paintChanged(item, (this.changed || {})[item.node.id]);
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
    const gone = !!this.since.nodes[item.node.id];
    paintCounts(item, (kind, port) => {
      const source = gone ? null : kind === "inputs" ? feeds.get(port) : `${item.node.id}.${port}`;
      return source ? this.records.get(source) : undefined;
    });
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
    const any = this.items.size || this.layers.some((layer) => layer.rects().length);
    this.transform.fit(any ? () => this.bounds() : null, { minZoom });
  }

  /** The rectangle around every card, connection, label and layer (notes), in canvas coordinates. */
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
    for (const r of [...this.edgeLines.rects(), ...extra]) {
      x1 = Math.min(x1, r.x);
      y1 = Math.min(y1, r.y);
      x2 = Math.max(x2, r.x + r.w);
      y2 = Math.max(y2, r.y + r.h);
    }
    return { x: x1, y: y1, w: x2 - x1, h: y2 - y1 };
  }

  /** Zoom by a factor around a point on screen (default: the centre). */
  zoomBy(factor, clientX, clientY) {
    this.transform.zoomBy(factor, clientX, clientY);
  }

  /** Draw the view as it is now (after changing `view` directly). */
  applyView() {
    this.transform.apply();
  }

  /** Pan so the canvas origin is at (x, y) on screen. */
  panTo(x, y) {
    this.transform.panTo(x, y);
  }

  /** Scroll so a node is visible. */
  reveal(id) {
    const item = this.items.get(id);
    if (item) this.transform.reveal(cardRect(item));
  }

  /** Guided mode: light up step `id` and the connections into and out of it, dim the rest (null ends it),
   * and centre it in the part of the canvas that `cover` (a screen rect over the canvas, such as a panel)
   * leaves free. */
  setFocus(id, cover = null) {
    // The walk-through moves the view from step to step; when it ends, the view is the one it began with.
    if (id && !this.beforeFocus) this.beforeFocus = this.transform.save();
    if (!id && this.beforeFocus) {
      this.transform.restore(this.beforeFocus);
      this.beforeFocus = null;
    }
    this.root.classList.toggle("walking", !!id);
    for (const [nid, item] of this.items) item.el.classList.toggle("walk-focus", nid === id);
    for (const rec of this.edges.values()) {
      rec.g.classList.toggle("walk-focus", !!id && (rec.edge.src === id || rec.edge.dst === id));
    }
    const item = id && this.items.get(id);
    if (item) this.transform.centreOn(cardRect(item), cover);
  }

  /** Screen point -> canvas coordinates. */
  toCanvas(clientX, clientY, rect) {
    return this.transform.toCanvas(clientX, clientY, rect);
  }

  /** The canvas point at the centre of the visible area. */
  centre() {
    return this.transform.centre();
  }

  // ------------------------------------------------------------ positions

  /** Current positions of every node: {id: {x, y}}. */
  positions() {
    const out = {};
    for (const [id, item] of this.items) out[id] = { x: item.pos.x, y: item.pos.y };
    return out;
  }

  /** Where node `id` is ({x, y}), or null when there is no such node. */
  positionOf(id) {
    const item = this.items.get(id);
    return item ? item.pos : null;
  }

  /** Where port `port` (`kind` "inputs" or "outputs") of node `id` is, in canvas coordinates. */
  portPoint(id, kind, port) {
    const item = this.items.get(id);
    return portPoint(item.node, item.pos, kind, port, item.metrics);
  }

  /** Move nodes on screen (no edit is recorded). */
  moveNodes(positions) {
    const dirty = new Set();
    const swept = [];
    for (const [id, p] of Object.entries(positions)) {
      const item = this.items.get(id);
      if (!item) continue;
      swept.push(this.cardGrid.get(id));
      placeCard(item, p);
      const rect = cardRect(item);
      this.cardGrid.set(id, rect);
      swept.push(rect);
      for (const key of this.touching.get(id)) dirty.add(key);
    }
    // Edges and labels near where a card was or now is may need another way or place.
    for (const r of swept) {
      if (!r) continue;
      const area = { x: r.x - 40, y: r.y - 40, w: r.w + 80, h: r.h + 80 };
      for (const key of this.edgeLines.near(area)) dirty.add(key);
    }
    const recs = [...dirty].map((key) => this.edges.get(key)).filter(Boolean);
    for (const rec of recs) this.drawEdge(rec, { label: false });
    for (const rec of recs) this.edgeLines.placeLabel(rec);
  }
}
