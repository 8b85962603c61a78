// Where edges run and where their labels sit. An edge is an S-curve when
// its way is clear; when cards stand in the way it detours along a lane
// above or below them. Labels go on the edge where they cover no card and
// no other label. A coarse grid keeps every look-up local, so 500 cards
// cost no more than five.

const CELL = 320;
const CARD_CLEAR = 6; // room kept around a card (its port dots stick out by 5px)
const LANE_GAP = 30; // how far a lane runs from the cards it passes
const LANE_STEP = 14; // spacing between lanes that run side by side
const MIN_DETOUR_DX = 80; // shorter edges keep their S-curve
const BACK_DX = 24; // an input less than this far right of its output is reached by looping back
const LOOP_REACH = 36; // how far a loop-back edge swings out past its ports

/** Rectangles by id, found by area. */
export class Grid {
  constructor(cell = CELL) {
    this.cell = cell;
    this.cells = new Map();
    this.rects = new Map();
  }

  keys(r) {
    const out = [];
    const x1 = Math.floor(r.x / this.cell);
    const x2 = Math.floor((r.x + r.w) / this.cell);
    const y1 = Math.floor(r.y / this.cell);
    const y2 = Math.floor((r.y + r.h) / this.cell);
    for (let x = x1; x <= x2; x += 1) for (let y = y1; y <= y2; y += 1) out.push(`${x},${y}`);
    return out;
  }

  /** Put (or move) a rectangle {x, y, w, h}. */
  set(id, rect) {
    this.delete(id);
    this.rects.set(id, rect);
    for (const k of this.keys(rect)) {
      let s = this.cells.get(k);
      if (!s) this.cells.set(k, (s = new Set()));
      s.add(id);
    }
  }

  delete(id) {
    const r = this.rects.get(id);
    if (!r) return;
    for (const k of this.keys(r)) {
      const s = this.cells.get(k);
      if (!s) continue;
      s.delete(id);
      if (!s.size) this.cells.delete(k);
    }
    this.rects.delete(id);
  }

  get(id) {
    return this.rects.get(id);
  }

  clear() {
    this.cells.clear();
    this.rects.clear();
  }

  /** [id, rect] pairs whose rectangles meet `r`. */
  query(r) {
    const seen = new Set();
    const out = [];
    for (const k of this.keys(r)) {
      const s = this.cells.get(k);
      if (!s) continue;
      for (const id of s) {
        if (seen.has(id)) continue;
        seen.add(id);
        const o = this.rects.get(id);
        if (meets(o, r)) out.push([id, o]);
      }
    }
    return out;
  }
}

function meets(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function grow(r, by) {
  return { x: r.x - by, y: r.y - by, w: r.w + by * 2, h: r.h + by * 2 };
}

function overlap(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

function bboxOf(points) {
  let x1 = Infinity; let y1 = Infinity; let x2 = -Infinity; let y2 = -Infinity;
  for (const p of points) {
    if (p.x < x1) x1 = p.x;
    if (p.y < y1) y1 = p.y;
    if (p.x > x2) x2 = p.x;
    if (p.y > y2) y2 = p.y;
  }
  return { x: x1, y: y1, w: x2 - x1, h: y2 - y1 };
}

function cubicAt(a, c1, c2, b, t) {
  const u = 1 - t;
  return {
    x: u * u * u * a.x + 3 * u * u * t * c1.x + 3 * u * t * t * c2.x + t * t * t * b.x,
    y: u * u * u * a.y + 3 * u * u * t * c1.y + 3 * u * t * t * c2.y + t * t * t * b.y,
  };
}

/** A cubic with level ends from a to b (the shape every edge is built from). */
function bend(a, b, pull = 0.5) {
  const k = Math.max(Math.abs(b.x - a.x) * pull, 24);
  return { a, c1: { x: a.x + k, y: a.y }, c2: { x: b.x - k, y: b.y }, b };
}

function sampleCubic(c, n, out, from = 1, to = n - 1) {
  for (let i = from; i <= to; i += 1) out.push(cubicAt(c.a, c.c1, c.c2, c.b, i / n));
  return out;
}

const f = (n) => Math.round(n * 10) / 10;

/** Ids of cards (other than `skip`) that any of `points` comes near. */
function cardsHit(points, cards, skip) {
  if (!points.length) return [];
  const near = cards.query(grow(bboxOf(points), CARD_CLEAR)).filter(([id]) => !skip.has(id));
  if (!near.length) return [];
  const hit = [];
  for (const [id, r] of near) {
    const g = grow(r, CARD_CLEAR);
    for (const p of points) {
      if (p.x > g.x && p.x < g.x + g.w && p.y > g.y && p.y < g.y + g.h) {
        hit.push(id);
        break;
      }
    }
  }
  return hit;
}

/**
 * The way from output point p1 to input point p2. cards: a Grid of card
 * rectangles; skip: ids of the two cards the edge joins; lanes: the lanes
 * other edges already use ([{y, x1, x2}]). Returns {d, label, bbox, lane}:
 * `label` lists the points where a label may sit, best first.
 */
export function routeEdge(p1, p2, cards, skip, lanes = []) {
  if (p2.x - p1.x < BACK_DX) {
    // The input is left of (or under) the output: an S-curve would cut back
    // through both cards, so loop out, run back along a lane, and loop in.
    const below = loopRoute(p1, p2, cards, skip, lanes, 1);
    const above = loopRoute(p1, p2, cards, skip, lanes, -1);
    const cost = (r) => Math.abs(p1.y - r.y) + Math.abs(p2.y - r.y) + (r.clear ? 0 : 1e6);
    return cost(below) <= cost(above) ? below : above;
  }
  const k = Math.max(48, Math.abs(p2.x - p1.x) * 0.5);
  const curve = { a: p1, c1: { x: p1.x + k, y: p1.y }, c2: { x: p2.x - k, y: p2.y }, b: p2 };
  const samples = sampleCubic(curve, 24, []);
  const hit = p2.x - p1.x >= MIN_DETOUR_DX ? cardsHit(samples, cards, skip) : [];
  if (!hit.length) {
    const ts = [0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.18, 0.82];
    return {
      d: `M${f(p1.x)},${f(p1.y)} C${f(curve.c1.x)},${f(curve.c1.y)} ${f(curve.c2.x)},${f(curve.c2.y)} ${f(p2.x)},${f(p2.y)}`,
      label: ts.map((t) => cubicAt(curve.a, curve.c1, curve.c2, curve.b, t)),
      bbox: bboxOf([p1, p2, ...samples]),
      points: samples,
      lane: null,
    };
  }
  const below = laneRoute(p1, p2, cards, skip, lanes, hit, 1);
  const above = laneRoute(p1, p2, cards, skip, lanes, hit, -1);
  const cost = (r) => Math.abs(p1.y - r.y) + Math.abs(p2.y - r.y) + (r.clear ? 0 : 1e6);
  const r = cost(below) <= cost(above) ? below : above;
  const { first, second, a, b } = r;
  const label = [];
  for (const t of [0.5, 0.35, 0.65, 0.2, 0.8, 0.08, 0.92]) label.push({ x: a.x + (b.x - a.x) * t, y: r.y });
  label.push(cubicAt(first.a, first.c1, first.c2, first.b, 0.5), cubicAt(second.a, second.c1, second.c2, second.b, 0.5));
  return {
    d: `M${f(p1.x)},${f(p1.y)} C${f(first.c1.x)},${f(first.c1.y)} ${f(first.c2.x)},${f(first.c2.y)} ${f(a.x)},${f(a.y)}`
      + ` L${f(b.x)},${f(b.y)} C${f(second.c1.x)},${f(second.c1.y)} ${f(second.c2.x)},${f(second.c2.y)} ${f(p2.x)},${f(p2.y)}`,
    label,
    bbox: bboxOf([p1, p2, a, b, ...r.samples]),
    points: r.samples,
    lane: { y: r.y, x1: a.x, x2: b.x },
  };
}

/** A detour below (side 1) or above (side -1) the cards in the way. */
function laneRoute(p1, p2, cards, skip, lanes, hit, side) {
  const blockers = new Set(hit);
  let result = null;
  for (let round = 0; round < 6; round += 1) {
    let top = Infinity; let bottom = -Infinity; let left = Infinity; let right = -Infinity;
    for (const id of blockers) {
      const c = cards.get(id);
      if (!c) continue;
      top = Math.min(top, c.y);
      bottom = Math.max(bottom, c.y + c.h);
      left = Math.min(left, c.x);
      right = Math.max(right, c.x + c.w);
    }
    // The bends happen in the open space before the first card in the way and after the last.
    const xa = p1.x + clamp((left - p1.x) / 2, 16, 80);
    const xb = p2.x - clamp((p2.x - right) / 2, 16, 80);
    let y = side > 0 ? bottom + LANE_GAP : top - LANE_GAP;
    // A lane level with one of the ports needs one bend instead of two; the input's level comes first.
    const beyond = (v) => (side > 0 ? v >= y : v <= y);
    if (beyond(p2.y)) y = p2.y;
    else if (beyond(p1.y)) y = p1.y;
    for (let i = 0; i < 12; i += 1) {
      const taken = lanes.some((l) => Math.abs(l.y - y) < LANE_STEP && l.x1 < xb && xa < l.x2);
      if (!taken) break;
      y += side * LANE_STEP;
    }
    const a = { x: xa, y };
    const b = { x: Math.max(xb, xa), y };
    const first = bend(p1, a, 0.6);
    const second = bend(b, p2, 0.6);
    const samples = sampleCubic(first, 12, []);
    const steps = Math.max(1, Math.ceil((b.x - a.x) / 30));
    for (let i = 0; i <= steps; i += 1) samples.push({ x: a.x + ((b.x - a.x) * i) / steps, y });
    sampleCubic(second, 12, samples);
    result = { y, a, b, first, second, samples, clear: true };
    const fresh = cardsHit(samples, cards, skip).filter((id) => !blockers.has(id));
    if (!fresh.length) return result;
    for (const id of fresh) blockers.add(id);
    result.clear = false;
  }
  return result;
}

/** A loop back from an output on the right to an input further left, along a lane below (1) or above (-1). */
function loopRoute(p1, p2, cards, skip, lanes, side) {
  const blockers = new Set([...skip].filter((id) => cards.get(id)));
  const xa = p1.x;
  const xb = p2.x;
  let result = null;
  for (let round = 0; round < 6; round += 1) {
    let top = Math.min(p1.y, p2.y);
    let bottom = Math.max(p1.y, p2.y);
    for (const id of blockers) {
      const c = cards.get(id);
      top = Math.min(top, c.y);
      bottom = Math.max(bottom, c.y + c.h);
    }
    let y = side > 0 ? bottom + LANE_GAP : top - LANE_GAP;
    for (let i = 0; i < 12; i += 1) {
      const taken = lanes.some((l) => Math.abs(l.y - y) < LANE_STEP && l.x1 < xa + LOOP_REACH && xb - LOOP_REACH < l.x2);
      if (!taken) break;
      y += side * LANE_STEP;
    }
    const turn = (from, to, dir) => {
      const reach = dir * clamp(Math.abs(to.y - from.y) * 0.6, LOOP_REACH, LOOP_REACH * 2);
      return { a: from, c1: { x: from.x + reach, y: from.y }, c2: { x: to.x + reach, y: to.y }, b: to };
    };
    const a = { x: xa, y };
    const b = { x: xb, y };
    const first = turn(p1, a, 1);
    const second = turn(b, p2, -1);
    const samples = sampleCubic(first, 12, []);
    const steps = Math.max(1, Math.ceil(Math.abs(a.x - b.x) / 30));
    for (let i = 0; i <= steps; i += 1) samples.push({ x: a.x + ((b.x - a.x) * i) / steps, y });
    sampleCubic(second, 12, samples);
    const label = [];
    for (const t of [0.5, 0.35, 0.65, 0.2, 0.8]) label.push({ x: a.x + (b.x - a.x) * t, y });
    result = {
      y,
      clear: true,
      d: `M${f(p1.x)},${f(p1.y)} C${f(first.c1.x)},${f(first.c1.y)} ${f(first.c2.x)},${f(first.c2.y)} ${f(a.x)},${f(a.y)}`
        + ` L${f(b.x)},${f(b.y)} C${f(second.c1.x)},${f(second.c1.y)} ${f(second.c2.x)},${f(second.c2.y)} ${f(p2.x)},${f(p2.y)}`,
      label,
      bbox: bboxOf([p1, p2, ...samples]),
      points: samples,
      lane: { y, x1: Math.min(a.x, b.x), x2: Math.max(a.x, b.x) },
    };
    const fresh = cardsHit(samples, cards, skip).filter((id) => !blockers.has(id));
    if (!fresh.length) return result;
    for (const id of fresh) blockers.add(id);
    result.clear = false;
  }
  return result;
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

/**
 * The best of `candidates` for a w × h label centred on it: the first that
 * covers no card, no other label and no other edge, else the one that covers
 * least. Points beside the edge are tried after the points on it.
 * `crossings(rect)` counts points of other edges inside a rectangle.
 */
export function placeLabel(candidates, w, h, cards, labels, ownId, crossings = () => 0) {
  const tries = [...candidates];
  const off = h / 2 + 6;
  for (const p of candidates.slice(0, 5)) tries.push({ x: p.x, y: p.y - off }, { x: p.x, y: p.y + off });
  let best = null;
  let bestCost = Infinity;
  for (let i = 0; i < tries.length; i += 1) {
    const p = tries[i];
    const rect = { x: p.x - w / 2, y: p.y - h / 2, w, h };
    let cost = 0;
    for (const [, r] of cards.query(grow(rect, CARD_CLEAR))) cost += overlap(grow(r, CARD_CLEAR), rect);
    for (const [id, r] of labels.query(grow(rect, 3))) if (id !== ownId) cost += overlap(grow(r, 3), rect);
    // Hiding a stretch of another edge matters less than covering a card or a label.
    cost += crossings(rect) * 40;
    if (cost === 0) return p;
    cost += i; // among bad places, the earlier (nearer the middle) wins
    if (cost < bestCost) {
      bestCost = cost;
      best = p;
    }
  }
  return best || candidates[0];
}
