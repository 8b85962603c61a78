// Card sizes and port positions, computed from the document alone. The
// canvas never measures the DOM, so drawing 500 nodes costs no layout reads;
// text is measured with a 2D canvas context, which lays nothing out.
import { portsOf } from "./doc.js";

export const CARD_W = 240;
export const CARD_PAD_X = 12;
export const TITLE_LINE_H = 18;
export const TITLE_MAX_LINES = 2;
export const HEAD_PAD_Y = 13;
export const HEAD_H = HEAD_PAD_Y * 2 + TITLE_LINE_H;
export const BADGE_GAP = 8;
export const DESC_LINE_H = 18;
export const DESC_PAD = 8;
export const PORT_H = 24;
export const PORTS_PAD = 6;
export const FOOT_H = 32;
const DESC_MAX_LINES = 3;
const FALLBACK_FONT = "system-ui, sans-serif";

let runtimeLabels = {};
let context = null;
let uiFont = null;
const widthCache = new Map();
const linesCache = new Map();

/** Tell the geometry which label each runtime's badge shows ({name: label}). */
export function setRuntimeLabels(labels) {
  runtimeLabels = { ...labels };
  linesCache.clear();
}

function fontFamily() {
  if (uiFont === null) {
    const root = typeof document !== "undefined" ? document.documentElement : null;
    uiFont = (root && getComputedStyle(root).getPropertyValue("--font-ui").trim()) || FALLBACK_FONT;
  }
  return uiFont;
}

/** The rendered width of `text` in a CSS font (weight size), cached. */
export function textWidth(text, weight, size) {
  const font = `${weight} ${size}px ${fontFamily()}`;
  const key = `${font}|${text}`;
  let w = widthCache.get(key);
  if (w !== undefined) return w;
  if (!context && typeof document !== "undefined") context = document.createElement("canvas").getContext("2d");
  if (context) {
    context.font = font;
    w = context.measureText(text).width;
  } else {
    w = text.length * size * 0.56;
  }
  if (widthCache.size > 20000) widthCache.clear();
  widthCache.set(key, w);
  return w;
}

/** How many lines `text` takes when wrapped at word breaks into `width` (long words break anywhere). */
export function wrappedLines(text, width, weight, size, maxLines = Infinity) {
  const words = String(text || "").split(/\s+/).filter(Boolean);
  if (!words.length) return 0;
  const space = textWidth(" ", weight, size);
  let lines = 1;
  let used = 0;
  for (const word of words) {
    const w = textWidth(word, weight, size);
    const need = used ? used + space + w : w;
    if (need <= width) {
      used = need;
      continue;
    }
    if (used) lines += 1;
    if (w > width) {
      lines += Math.ceil(w / width) - 1;
      used = w % width;
    } else {
      used = w;
    }
    if (lines >= maxLines) return maxLines;
  }
  return Math.min(lines, maxLines);
}

function badgeWidth(runtime) {
  const label = runtimeLabels[runtime] || runtime || "unknown";
  return Math.ceil(textWidth(label, 700, 11)) + 16;
}

/** Lines of the card title (one or two; a longer title ends in an ellipsis). */
export function titleLines(node) {
  const title = (node && (node.title || node.id)) || "";
  const key = `${node && node.runtime}|${title}`;
  let n = linesCache.get(key);
  if (n !== undefined) return n;
  // A couple of pixels spare, so a title that only just fits is given its second line.
  const width = CARD_W - CARD_PAD_X * 2 - badgeWidth(node && node.runtime) - BADGE_GAP - 2;
  n = Math.max(1, wrappedLines(title, width, 600, 14, TITLE_MAX_LINES));
  if (linesCache.size > 20000) linesCache.clear();
  linesCache.set(key, n);
  return n;
}

/** How many description lines a card shows (at most three; the rest is in the inspector). */
export function descLines(node) {
  const text = (node && node.description) || "";
  if (!text) return 0;
  const key = `desc|${text}`;
  let n = linesCache.get(key);
  if (n !== undefined) return n;
  n = wrappedLines(text, CARD_W - CARD_PAD_X * 2 - 2, 400, 12.5, DESC_MAX_LINES);
  linesCache.set(key, n);
  return n;
}

/** Heights of each card section, and the total. */
export function cardMetrics(node) {
  const tLines = titleLines(node);
  const headH = HEAD_PAD_Y * 2 + tLines * TITLE_LINE_H;
  const lines = descLines(node);
  const descH = lines ? lines * DESC_LINE_H + DESC_PAD : 0;
  // Inputs come first, then outputs, one full-width row each, so names are not cut short.
  const rows = portsOf(node, "inputs").length + portsOf(node, "outputs").length;
  const portsH = rows ? rows * PORT_H + PORTS_PAD * 2 : 0;
  return { width: CARD_W, titleLines: tLines, headH, descLines: lines, descH, portsH, height: headH + descH + portsH + FOOT_H };
}

/** The centre of a port's dot in canvas coordinates. */
export function portPoint(node, pos, kind, portName, metrics = cardMetrics(node)) {
  const ports = portsOf(node, kind);
  let index = ports.findIndex((p) => p.name === portName);
  if (index < 0) index = 0;
  if (kind === "outputs") index += portsOf(node, "inputs").length;
  const y = pos.y + metrics.headH + metrics.descH + PORTS_PAD + index * PORT_H + PORT_H / 2;
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
