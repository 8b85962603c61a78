// Card sizes and port positions, computed from the document alone. The
// canvas never measures the DOM, so drawing 500 nodes costs no layout reads.
import { portsOf } from "./doc.js";

export const CARD_W = 240;
export const HEAD_H = 44;
export const DESC_LINE_H = 18;
export const DESC_PAD = 8;
export const PORT_H = 24;
export const PORTS_PAD = 6;
export const FOOT_H = 32;
const DESC_CHARS_PER_LINE = 30;
const DESC_MAX_LINES = 3;

/** How many description lines a card shows (an estimate from the text length). */
export function descLines(node) {
  const text = (node && node.description) || "";
  if (!text) return 0;
  return Math.min(DESC_MAX_LINES, Math.max(1, Math.ceil(text.length / DESC_CHARS_PER_LINE)));
}

/** Heights of each card section, and the total. */
export function cardMetrics(node) {
  const lines = descLines(node);
  const descH = lines ? lines * DESC_LINE_H + DESC_PAD : 0;
  // Inputs come first, then outputs, one full-width row each, so names are not cut short.
  const rows = portsOf(node, "inputs").length + portsOf(node, "outputs").length;
  const portsH = rows ? rows * PORT_H + PORTS_PAD * 2 : 0;
  return { width: CARD_W, descLines: lines, descH, portsH, height: HEAD_H + descH + portsH + FOOT_H };
}

/** The centre of a port's dot in canvas coordinates. */
export function portPoint(node, pos, kind, portName, metrics = cardMetrics(node)) {
  const ports = portsOf(node, kind);
  let index = ports.findIndex((p) => p.name === portName);
  if (index < 0) index = 0;
  if (kind === "outputs") index += portsOf(node, "inputs").length;
  const y = pos.y + HEAD_H + metrics.descH + PORTS_PAD + index * PORT_H + PORT_H / 2;
  const x = kind === "inputs" ? pos.x : pos.x + CARD_W;
  return { x, y };
}

/** An S-shaped cubic curve from an output to an input; returns the path and its midpoint. */
export function edgeCurve(a, b) {
  const dx = Math.max(48, Math.abs(b.x - a.x) * 0.5);
  const c1 = { x: a.x + dx, y: a.y };
  const c2 = { x: b.x - dx, y: b.y };
  const mid = {
    x: (a.x + 3 * c1.x + 3 * c2.x + b.x) / 8,
    y: (a.y + 3 * c1.y + 3 * c2.y + b.y) / 8,
  };
  const f = (n) => Math.round(n * 10) / 10;
  return { d: `M${f(a.x)},${f(a.y)} C${f(c1.x)},${f(c1.y)} ${f(c2.x)},${f(c2.y)} ${f(b.x)},${f(b.y)}`, mid };
}
