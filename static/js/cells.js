// Table cells of a preview: plain values, category labels (a colour, a mark and the word, never the colour
// alone) and nested values that open in place with a disclosure button.
import { h, clear, formatNumber } from "./dom.js";

const TONE_WORDS = {
  ok: ["ok", "okay", "normal", "success", "succeeded", "passed", "pass", "good", "healthy", "valid", "done"],
  info: ["info", "notice", "debug"],
  warning: ["warning", "warn", "caution", "degraded"],
  danger: ["critical", "error", "failed", "fail", "fatal", "alert", "danger", "severe"],
};
const TONE_OF = new Map(Object.entries(TONE_WORDS).flatMap(([tone, words]) => words.map((w) => [w, tone])));
// Even where no port declares a category, these words read as labels.
const ALWAYS = new Set(["warning", "critical"]);
const MARKS = { ok: "✓", info: "i", warning: "!", danger: "✕", neutral: "•" };

/** A port's `categories` (a list of fields, or {field: {value: tone}}) as {field: {value: tone}}. */
export function categoryMap(...declared) {
  const out = {};
  for (const cats of declared) {
    if (!cats) continue;
    if (typeof cats === "string") out[cats] = out[cats] || {};
    else if (Array.isArray(cats)) for (const f of cats) out[f] = out[f] || {};
    else if (typeof cats === "object") {
      for (const [f, tones] of Object.entries(cats)) out[f] = { ...(out[f] || {}), ...(tones || {}) };
    }
  }
  return out;
}

/** The tone of a category value: the port's own choice, else one from its word. */
export function toneOf(value, tones = {}) {
  const text = String(value);
  if (tones[text]) return tones[text];
  return TONE_OF.get(text.trim().toLowerCase()) || "neutral";
}

/** A coloured label with a mark and the word. */
export function categoryLabel(value, tone) {
  return h("span", { class: `cat cat-${tone}`, "data-tone": tone },
    h("span", { class: "cat-mark", "aria-hidden": "true" }, MARKS[tone] || MARKS.neutral), String(value));
}

/** One table cell. `categories` is the preview's {field: {value: tone}}; `column` the cell's column. */
export function cell(value, missing, column = null, categories = {}) {
  if (missing) return h("td", { class: "cell-missing" }, "");
  if (value === null || value === undefined) return h("td", { class: "cell-null" }, "null");
  if (typeof value === "object") return nestedCell(value);
  const text = String(value);
  const declared = column !== null && Object.prototype.hasOwnProperty.call(categories, column);
  if ((declared && text !== "") || (typeof value === "string" && ALWAYS.has(text.trim().toLowerCase()))) {
    const tone = toneOf(text, declared ? categories[column] : {});
    return h("td", { class: "cell-cat" }, categoryLabel(text, tone));
  }
  const cls = typeof value === "number" ? "cell-number" : typeof value === "boolean" ? "cell-bool" : null;
  return h("td", { class: cls, title: text.length > 60 ? text.slice(0, 2000) : null }, text.length > 160 ? `${text.slice(0, 160)}…` : text);
}

function summaryOf(value) {
  if (Array.isArray(value)) return `[ ${formatNumber(value.length)} ${value.length === 1 ? "item" : "items"} ]`;
  const n = Object.keys(value).length;
  return `{ ${formatNumber(n)} ${n === 1 ? "field" : "fields"} }`;
}

/**
 * A nested value: its short JSON text and a button that opens it in place as a small tree (and closes it).
 * `treeNode` comes from the preview's tree view, handed over to avoid a cycle of imports.
 */
let treeNodeOf = null;
export function useTree(fn) {
  treeNodeOf = fn;
}

function nestedCell(value) {
  const text = JSON.stringify(value);
  const td = h("td", { class: "cell-json cell-nested" });
  const inline = h("span", { class: "cell-nested-text", title: text.length > 60 ? text.slice(0, 2000) : null },
    text.length > 80 ? `${text.slice(0, 80)}…` : text);
  const body = h("div", { class: "cell-nested-tree", hidden: true });
  const toggle = h("button", {
    type: "button", class: "cell-disclosure", "aria-expanded": "false",
    "aria-label": `Show this nested value, ${summaryOf(value)}`,
    onclick: () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      toggle.querySelector(".cell-disclosure-mark").textContent = open ? "▾" : "▸";
      td.classList.toggle("open", open);
      inline.hidden = open;
      body.hidden = !open;
      if (open && !body.firstChild && treeNodeOf) {
        const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
        for (const [k, v] of entries.slice(0, 200)) body.append(treeNodeOf(v, k, 1));
        if (entries.length > 200) body.append(h("div", { class: "jt-more" }, `… ${formatNumber(entries.length - 200)} more not shown`));
      }
    },
  }, h("span", { class: "cell-disclosure-mark", "aria-hidden": "true" }, "▸"), h("span", { class: "cell-disclosure-summary" }, summaryOf(value)));
  clear(td).append(toggle, inline, body);
  return td;
}
