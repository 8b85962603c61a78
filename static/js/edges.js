// The canvas's connections: one SVG group per edge (a line, a wider hit area and a
// label pill), routed around the cards and labelled where the label covers no card
// and no other label. The canvas (canvas.js) owns the cards and says what to paint.
import { svg, clear, formatRecords } from "./dom.js";
import { Grid, routeEdge, placeLabel } from "./routing.js";
import { isDone, SINCE } from "./status.js";

export class EdgeLayer {
  /** cardGrid: node id -> card rectangle (kept by the canvas), for routing around cards. */
  constructor(cardGrid) {
    this.cardGrid = cardGrid;
    this.el = svg("g", { class: "edge-layer" });
    this.records = new Map(); // edge key -> {edge, g, line, hit, label, text, rect, title, route, ...}
    this.routeGrid = new Grid(); // edge key -> the area its path covers
    this.labelGrid = new Grid(); // edge key -> its label's rectangle
    this.lanes = new Map(); // edge key -> {y, x1, x2} for edges that detour around cards
  }

  clear() {
    clear(this.el);
    this.records.clear();
    this.routeGrid.clear();
    this.labelGrid.clear();
    this.lanes.clear();
  }

  /** The elements of one edge (not yet routed nor in the layer: `append` them, a batch at a time). */
  add(edge, srcFormat, dstFormat) {
    const g = svg("g", { class: "edge", "data-edge": edge.key });
    const hit = svg("path", { class: "edge-hit" });
    const line = svg("path", { class: "edge-line" });
    const label = svg("g", { class: "edge-label" });
    const rect = svg("rect", { rx: 9, ry: 9, height: 18, y: -9 });
    const text = svg("text", { "text-anchor": "middle" });
    label.append(rect, text);
    const title = svg("title");
    g.append(title, hit, line, label);
    const rec = { edge, g, hit, line, label, rect, text, title, srcFormat, dstFormat };
    this.records.set(edge.key, rec);
    return rec;
  }

  append(fragment) {
    this.el.append(fragment);
  }

  /** Route an edge from `p1` to `p2` (and place its label, unless `label` is false: a batch places them after every route). */
  route(rec, p1, p2, { label = true } = {}) {
    const key = rec.edge.key;
    this.lanes.delete(key);
    const route = routeEdge(p1, p2, this.cardGrid, new Set([rec.edge.src, rec.edge.dst]), [...this.lanes.values()]);
    if (route.lane) this.lanes.set(key, route.lane);
    rec.route = route;
    this.routeGrid.set(key, route.bbox);
    rec.line.setAttribute("d", route.d);
    rec.hit.setAttribute("d", route.d);
    if (label) this.placeLabel(rec);
  }

  /** Put an edge's label on the edge where it covers no card and no other label. */
  placeLabel(rec) {
    if (!rec.route || !rec.labelSize) return;
    const { w, h: ht } = rec.labelSize;
    const own = rec.edge.key;
    const crossings = (rect) => {
      let n = 0;
      for (const [key] of this.routeGrid.query(rect)) {
        if (key === own) continue;
        const other = this.records.get(key);
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

  /** Keys of the edges whose path or label reaches into `area`. */
  near(area) {
    const keys = new Set();
    for (const [key] of this.routeGrid.query(area)) keys.add(key);
    for (const [key] of this.labelGrid.query(area)) keys.add(key);
    return keys;
  }

  /** The rectangles the paths and labels cover (they can reach past the cards). */
  rects() {
    return [...this.routeGrid.rects.values(), ...this.labelGrid.rects.values()];
  }
}

/**
 * An edge's label and title: its format, and the records that went through (`n`, a number or nothing)
 * or what it is `since` the run on show; `trouble`: its problems, or nothing. Returns whether the
 * label changed size (then it needs placing again).
 */
export function paintEdgeLabel(rec, { n, since, trouble }) {
  const fmt = rec.srcFormat === rec.dstFormat ? rec.srcFormat : `${rec.srcFormat} → ${rec.dstFormat}`;
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
  return changed;
}

/** Records flow along an edge while either end runs; it is done once both ends are. */
export function paintEdgeFlow(rec, srcStatus, dstStatus, running) {
  const flowing = running && (srcStatus === "running" || dstStatus === "running");
  rec.g.classList.toggle("flowing", flowing);
  rec.g.classList.toggle("done", isDone(srcStatus) && (isDone(dstStatus) || dstStatus === "running"));
}

/** An edge added or removed since the run on show, or with a problem: a class, and words in its title. */
export function paintEdgeMarks(rec, since, problem) {
  rec.g.dataset.since = since || "";
  rec.g.classList.toggle("edge-problem", !!problem);
}
