// Where cards go: dagre's left-to-right layout for a whole pipeline (Tidy up,
// or a file with no positions at all), and free spots for single new cards,
// so placing one card never moves the others. Tidy up takes the notes along.
import { nodesOf, edgesOf, notesOf } from "./doc.js";
import { cardMetrics, CARD_W } from "./geometry.js";

const SNAP = 8;
// Room kept between a placed card and its neighbours: an edge label fits in it.
const GAP = 40;
// Between a step and the next one to its right, as in the automatic layout.
const COLUMN_GAP = 72; // room for a connection label of three short lines; four columns fit a laptop beside the inspector
const SEARCH_STEP = 24;
// A note this close to a step's card (the gap between them) is read as explaining that step; the story page
// (server/engine/story.py, NOTE_REACH) uses the same reach to say which step a note sits beside.
export const NOTE_REACH = 120;
const NOTE_SIZE = { w: 220, h: 60 };
const SEARCH_RINGS = 60;

let dagrePromise = null;

function loadDagre() {
  if (!dagrePromise) dagrePromise = import("/static/vendor/dagre.esm.js").then((m) => m.default || m);
  return dagrePromise;
}

/** Positions {id: {x, y}} for every node, laid out left to right. */
export async function autoLayout(doc) {
  const dagre = await loadDagre();
  const g = new dagre.graphlib.Graph();
  // Between two columns sits an edge label ("json", "1,204", "records": about 60px wide)
  // with clear space on both sides; between two cards of a column, room for a detour.
  g.setGraph({ rankdir: "LR", ranksep: COLUMN_GAP, nodesep: 56, edgesep: 28, marginx: 0, marginy: 0 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = nodesOf(doc);
  for (const node of nodes) {
    const m = cardMetrics(node);
    g.setNode(node.id, { width: m.width, height: m.height });
  }
  for (const e of edgesOf(doc)) {
    if (g.hasNode(e.src) && g.hasNode(e.dst)) g.setEdge(e.src, e.dst);
  }
  dagre.layout(g);
  const out = {};
  for (const node of nodes) {
    const n = g.node(node.id);
    out[node.id] = { x: snap(n.x - n.width / 2), y: snap(n.y - n.height / 2) };
  }
  return out;
}

function snap(v) {
  return Math.round(v / SNAP) * SNAP;
}

function hasPosition(node) {
  return !!(node.position && Number.isFinite(node.position.x) && Number.isFinite(node.position.y));
}

/** The rectangles {x, y, w, h} of every card that has a position. */
export function cardRects(doc) {
  return nodesOf(doc).filter(hasPosition).map((n) => ({ x: n.position.x, y: n.position.y, w: CARD_W, h: cardMetrics(n).height }));
}

/**
 * The free spot for a card of `size` {w, h} nearest to `want` {x, y}, with a
 * clear gap to every rectangle in `rects`. `rightward` keeps it at or right of
 * `want.x` and prefers going down to going sideways (a step after another).
 */
export function freeSpot(rects, size, want, { rightward = false } = {}) {
  const clear = (x, y) => rects.every((r) =>
    x >= r.x + r.w + GAP || r.x >= x + size.w + GAP || y >= r.y + r.h + GAP || r.y >= y + size.h + GAP);
  const start = { x: snap(want.x), y: snap(want.y) };
  if (clear(start.x, start.y)) return start;
  for (let ring = 1; ring <= SEARCH_RINGS; ring += 1) {
    const tries = [];
    for (let i = -ring; i <= ring; i += 1) {
      for (let j = -ring; j <= ring; j += 1) {
        if (Math.max(Math.abs(i), Math.abs(j)) !== ring) continue;
        if (rightward && i < 0) continue;
        // Sideways costs more than down when the card follows another.
        const cost = rightward ? i * 3 + Math.abs(j) + (j < 0 ? 0.5 : 0) : Math.hypot(i, j);
        tries.push({ cost, x: start.x + i * SEARCH_STEP, y: start.y + j * SEARCH_STEP });
      }
    }
    tries.sort((a, b) => a.cost - b.cost);
    for (const t of tries) if (clear(t.x, t.y)) return { x: t.x, y: t.y };
  }
  // Nothing near is free: below everything.
  const bottom = rects.reduce((m, r) => Math.max(m, r.y + r.h), start.y);
  return { x: start.x, y: snap(bottom + GAP * 2) };
}

/** Where a card goes when it follows the card at `pos` (to its right, in the reading direction). */
export function spotAfter(pos) {
  return { x: pos.x + CARD_W + COLUMN_GAP, y: pos.y };
}

/**
 * Positions for the nodes that have none, leaving every stored position as
 * it is: all of them laid out when none has a position, otherwise each one
 * after the step that feeds it (or below the rest) in free space.
 */
export async function placeUnpositioned(doc) {
  const nodes = nodesOf(doc);
  const missing = nodes.filter((n) => !hasPosition(n));
  if (!missing.length) return {};
  if (missing.length === nodes.length) return autoLayout(doc);
  const rects = cardRects(doc);
  const placed = Object.fromEntries(nodes.filter(hasPosition).map((n) => [n.id, n.position]));
  const bottom = rects.reduce((m, r) => Math.max(m, r.y + r.h), 0);
  const left = rects.reduce((m, r) => Math.min(m, r.x), Infinity);
  const out = {};
  // Feeders first, so a chain of new steps lines up.
  let pending = missing;
  for (let round = 0; pending.length && round <= missing.length; round += 1) {
    const later = [];
    for (const node of pending) {
      const feeders = edgesOf(doc).filter((e) => e.dst === node.id).map((e) => e.src);
      const feeder = feeders.find((id) => placed[id]);
      if (!feeder && feeders.some((id) => !placed[id]) && round < missing.length) {
        later.push(node);
        continue;
      }
      const want = feeder ? spotAfter(placed[feeder]) : { x: Number.isFinite(left) ? left : 0, y: bottom + GAP * 2 };
      const size = { w: CARD_W, h: cardMetrics(node).height };
      const p = freeSpot(rects, size, want, { rightward: !!feeder });
      out[node.id] = p;
      placed[node.id] = p;
      rects.push({ ...p, ...size });
    }
    pending = later;
  }
  return out;
}

/** The gap between two rectangles {x, y, w, h} (0 when they touch or overlap). */
function gapBetween(a, b) {
  const dx = Math.max(0, b.x - (a.x + a.w), a.x - (b.x + b.w));
  const dy = Math.max(0, b.y - (a.y + a.h), a.y - (b.y + b.h));
  return Math.hypot(dx, dy);
}

/**
 * Where Tidy up takes each note when the steps move to `after` ({id: {x, y}}): a note within NOTE_REACH of a
 * step keeps its place beside the nearest one (the same offset from its corner); a note further from every
 * step moves as the whole drawing moved (the steps' top-left corner). A note that would then cover a step or
 * another note goes to the nearest free spot. `sizes`: {noteId: {w, h}} as drawn. Notes without a position
 * are left as they are: the studio keeps them in a row above the steps. Returns {noteId: {x, y}}.
 */
export function carryNotes(doc, after, sizes = {}) {
  const nodes = nodesOf(doc);
  const rect = (n, p) => ({ id: n.id, x: p.x, y: p.y, w: CARD_W, h: cardMetrics(n).height });
  const before = nodes.filter((n) => hasPosition(n) && after[n.id]).map((n) => rect(n, n.position));
  const moved = nodes.filter((n) => after[n.id]).map((n) => rect(n, after[n.id]));
  if (!before.length) return {};
  const corner = (rs) => ({ x: Math.min(...rs.map((r) => r.x)), y: Math.min(...rs.map((r) => r.y)) });
  const from = corner(before);
  const to = corner(moved.filter((r) => before.some((b) => b.id === r.id)));
  const taken = moved.map(({ x, y, w, h }) => ({ x, y, w, h }));
  const out = {};
  for (const note of notesOf(doc)) {
    const p = note.position;
    if (!p || !Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    const size = sizes[note.id] || NOTE_SIZE;
    const box = { x: p.x, y: p.y, w: size.w, h: size.h };
    let owner = null;
    let near = NOTE_REACH;
    for (const r of before) {
      const gap = gapBetween(box, r);
      if (gap <= near) {
        owner = r;
        near = gap;
      }
    }
    const want = owner
      ? { x: after[owner.id].x + (p.x - owner.x), y: after[owner.id].y + (p.y - owner.y) }
      : { x: p.x + (to.x - from.x), y: p.y + (to.y - from.y) };
    const covers = taken.some((r) => gapBetween({ ...want, ...size }, r) < SNAP);
    const spot = covers ? freeSpot(taken, size, want) : { x: Math.round(want.x), y: Math.round(want.y) };
    out[note.id] = spot;
    taken.push({ ...spot, ...size });
  }
  return out;
}
