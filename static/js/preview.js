// Output previews: one server page at a time (offset/limit), shown as a
// collapsible JSON tree, a table, plain text or a hex dump.
import { get, seg, ApiError } from "./api.js";
import { h, clear, formatNumber, formatBytes, formatRecords } from "./dom.js";

const PAGE_SIZES = [50, 100, 500];
const TREE_CHILD_LIMIT = 200;

/**
 * Render one preview page into an element. `cellUrl`, when given, is the output's
 * `/cell` route: a cut cell then offers to load its full value from there.
 */
export function renderPage(page, cellUrl = null) {
  const kind = pageKind(page);
  if (kind === "binary") return renderHex(page);
  if (kind === "table") return renderTable(page, cellUrl);
  if (kind === "text") return renderText(page);
  return renderTree(page);
}

/** "table" | "tree" | "text" | "binary", from the page's own `kind` and format. */
export function pageKind(page) {
  const kind = String(page.kind || "").toLowerCase();
  const fmt = String(page.format || "").toLowerCase();
  if (kind === "binary" || kind === "hex" || (page.hex !== undefined && page.hex !== null && !page.items?.length)) return "binary";
  if (kind === "table" || kind === "records" || kind === "rows" || Array.isArray(page.columns)) return "table";
  if (kind === "text" || kind === "lines") return "text";
  if (kind === "tree" || kind === "json" || kind === "document" || kind === "value") return "tree";
  if (fmt === "binary") return "binary";
  if (fmt === "text") return "text";
  if (["csv", "ndjson", "parquet"].includes(fmt)) return "table";
  return "tree";
}

const UNITS = { table: ["row", "rows"], text: ["line", "lines"], tree: ["item", "items"], binary: ["byte", "bytes"] };

/** "rows 1–50 of 1,000" (or "of about N", "of at least N"). */
export function describeRange(page) {
  const kind = pageKind(page);
  const offset = page.offset || 0;
  if (kind === "binary") {
    const count = hexByteCount(page);
    if (!count) return "no bytes";
    const bytes = count === 1 ? `byte ${formatNumber(offset + 1)}` : `bytes ${formatNumber(offset + 1)}–${formatNumber(offset + count)}`;
    return `${bytes} of ${formatNumber(page.size || 0)}`;
  }
  const [one, many] = kind === "tree" && page.mode === "entries" ? ["entry", "entries"] : UNITS[kind];
  const count = (page.items || []).length;
  if (kind === "tree" && page.mode === "document") return count ? "the whole document" : "nothing to show";
  if (!count) return offset ? `no more ${many} after ${formatNumber(offset)}` : `no ${many}`;
  const range = count === 1 ? `${one} ${formatNumber(offset + 1)}` : `${many} ${formatNumber(offset + 1)}–${formatNumber(offset + count)}`;
  const total = totalOf(page);
  if (total.exact !== null) return `${range} of ${formatNumber(total.exact)}`;
  // The server is counting the whole file in the background; the exact total follows (output_ready).
  const counting = page.counting ? " (counting…)" : "";
  if (total.about !== null) return `${range} of about ${formatNumber(total.about)}${counting}`;
  return `${range} of at least ${formatNumber(total.atLeast)}${counting}`;
}

function totalOf(page) {
  const count = (page.items || []).length;
  const offset = page.offset || 0;
  if (typeof page.total === "number") return { exact: page.total, about: null, atLeast: null };
  const seen = offset + count + (page.truncated ? 1 : 0);
  if (typeof page.total_estimate === "number" && page.total_estimate >= seen) {
    return { exact: null, about: Math.round(page.total_estimate), atLeast: null };
  }
  return { exact: null, about: null, atLeast: seen };
}

/** True when a next page exists (`truncated`: items follow this page). */
export function hasMore(page) {
  const count = (page.items || []).length;
  const offset = page.offset || 0;
  if (page.truncated !== undefined) return !!page.truncated;
  if (typeof page.total === "number") return offset + count < page.total;
  return count >= (page.limit || 1);
}

// ------------------------------------------------------------ tree

function renderTree(page) {
  const box = h("div", { class: "jtree", role: "tree", "aria-label": "JSON data" });
  const items = page.items || [];
  const offset = page.offset || 0;
  if (page.value !== undefined && !items.length) {
    box.append(treeNode(page.value, null, 0));
  } else if (page.mode === "entries") {
    // A large top-level object, paged by its entries.
    for (const entry of items) {
      if (!entry) continue;
      const node = treeNode(entry.value, entry.key, 1);
      if (entry.clipped) node.append(h("span", { class: "jt-more" }, " (cut short: too big to show whole)"));
      box.append(node);
    }
  } else if (items.length === 1 && offset === 0 && (page.mode === "document" || page.total === 1)) {
    box.append(treeNode(items[0], null, 0));
  } else {
    items.forEach((item, i) => box.append(treeNode(item, offset + i, 0, true)));
  }
  return box;
}

function treeNode(value, key, depth, indexKey = false) {
  const keyEl = key === null || key === undefined
    ? null
    : h("span", { class: indexKey || typeof key === "number" ? "jt-index" : "jt-key" }, typeof key === "number" ? `${key}` : `${key}`, h("span", { class: "jt-colon" }, ": "));
  if (value !== null && typeof value === "object") {
    const isArray = Array.isArray(value);
    const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
    const details = h("details", { class: "jt-node", role: "treeitem" });
    const summaryText = isArray
      ? `[ ${formatNumber(entries.length)} ${entries.length === 1 ? "item" : "items"} ]`
      : `{ ${inlinePreview(value)} }`;
    details.append(h("summary", {}, keyEl, h("span", { class: "jt-summary" }, summaryText)));
    let filled = false;
    const fill = () => {
      if (filled) return;
      filled = true;
      const kids = h("div", { class: "jt-children", role: "group" });
      for (const [k, v] of entries.slice(0, TREE_CHILD_LIMIT)) kids.append(treeNode(v, k, depth + 1));
      if (entries.length > TREE_CHILD_LIMIT) {
        kids.append(h("div", { class: "jt-more" }, `… ${formatNumber(entries.length - TREE_CHILD_LIMIT)} more not shown`));
      }
      details.append(kids);
    };
    details.addEventListener("toggle", () => { if (details.open) fill(); });
    if (depth < 1 && entries.length <= 50) {
      details.open = true;
      fill();
    }
    return details;
  }
  return h("div", { class: "jt-leaf", role: "treeitem" }, keyEl, leaf(value));
}

function leaf(value) {
  if (value === null) return h("span", { class: "jt-null" }, "null");
  if (typeof value === "string") return h("span", { class: "jt-string" }, JSON.stringify(value));
  if (typeof value === "number") return h("span", { class: "jt-number" }, String(value));
  if (typeof value === "boolean") return h("span", { class: "jt-bool" }, String(value));
  return h("span", {}, String(value));
}

function inlinePreview(obj) {
  const parts = [];
  let length = 0;
  for (const [k, v] of Object.entries(obj)) {
    let text;
    if (v === null || typeof v !== "object") text = `${k}: ${typeof v === "string" ? JSON.stringify(v) : String(v)}`;
    else text = `${k}: ${Array.isArray(v) ? "[…]" : "{…}"}`;
    if (length + text.length > 80) {
      parts.push("…");
      break;
    }
    parts.push(text);
    length += text.length + 2;
  }
  return parts.join(", ");
}

// ------------------------------------------------------------ table

function renderTable(page, cellUrl) {
  const items = page.items || [];
  // Cells the server cut short (see docs/api.md, `cut_cells`), by record number and column.
  const cuts = new Map((page.cut_cells || []).map((c) => [`${c.record}\u0000${c.column}`, c]));
  const viewer = h("div", { class: "cell-viewer", hidden: true, "data-testid": "cell-viewer" });
  let columns = Array.isArray(page.columns) ? page.columns.map((c) => (typeof c === "string" ? c : c.name)) : null;
  if (!columns) {
    const seen = new Set();
    for (const row of items.slice(0, 100)) {
      if (row && typeof row === "object" && !Array.isArray(row)) for (const k of Object.keys(row)) seen.add(k);
    }
    columns = [...seen];
  }
  const offset = page.offset || 0;
  const table = h("table", { class: "data-table" });
  const headRow = h("tr", {}, h("th", { class: "rownum", scope: "col" }, "#"), columns.map((c) => h("th", { scope: "col" }, c)));
  table.append(h("thead", {}, headRow));
  const body = h("tbody");
  items.forEach((row, i) => {
    const tr = h("tr", {}, h("td", { class: "rownum" }, formatNumber(offset + i + 1)));
    if (row && typeof row === "object" && !Array.isArray(row)) {
      for (const c of columns) {
        const cut = cuts.get(`${offset + i}\u0000${c}`);
        tr.append(cut ? cutCell(row[c], cut, cellUrl, viewer) : cell(row[c], !(c in row)));
      }
    } else if (Array.isArray(row)) {
      for (let j = 0; j < columns.length; j += 1) tr.append(cell(row[j], j >= row.length));
    } else {
      tr.append(cell(row, false));
    }
    body.append(tr);
  });
  table.append(body);
  return h("div", { class: "table-wrap" }, table, viewer);
}

/** A cell the server cut: its start, how big it really is, and a button to read it all. */
function cutCell(start, cut, cellUrl, viewer) {
  const size = `${formatNumber(cut.chars)} characters, ${formatBytes(cut.bytes)}`;
  const td = h("td", { class: "cell-cut", "data-cut-record": cut.record, "data-cut-column": cut.column,
    title: `Cut short: the full value is ${size}` },
    h("span", { class: "cell-cut-start" }, String(start).slice(0, 80)),
    h("span", { class: "cell-cut-mark" }, `… cut (${formatBytes(cut.bytes)})`));
  if (cellUrl) {
    td.append(h("button", {
      type: "button", class: "btn btn-small cell-cut-open",
      "aria-label": `Show all of ${cut.column} in row ${formatNumber(cut.record + 1)} (${size})`,
      onclick: () => openCell(viewer, cellUrl, cut),
    }, "Show all"));
  }
  return td;
}

const CELL_PAGE = 65536;

/** Show one cut cell in the viewer under the table, loading its text a page at a time. */
function openCell(viewer, cellUrl, cut) {
  clear(viewer);
  viewer.hidden = false;
  const kind = cut.type === "json" ? "JSON text" : "text";
  const status = h("span", { class: "cell-viewer-status" });
  const more = h("button", { type: "button", class: "btn btn-small" }, "Load more");
  const close = h("button", { type: "button", class: "btn btn-small", onclick: () => { viewer.hidden = true; clear(viewer); } }, "Close");
  const text = h("pre", { class: "cell-viewer-text", tabindex: "0" });
  viewer.append(
    h("div", { class: "cell-viewer-head" },
      h("strong", {}, `Row ${formatNumber(cut.record + 1)}, column “${cut.column}”`),
      h("span", {}, ` · ${kind}, ${formatNumber(cut.chars)} characters (${formatBytes(cut.bytes)})`)),
    text,
    h("div", { class: "cell-viewer-foot" }, status, more, close));
  let next = 0;
  let loaded = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const part = await get(`${cellUrl}?record=${cut.record}&column=${encodeURIComponent(cut.column)}&offset=${next}&limit=${CELL_PAGE}`);
      text.append(document.createTextNode(part.text));
      loaded += part.text.length;
      next = part.next;
    } catch (err) {
      status.textContent = err instanceof ApiError ? err.message : String(err);
      more.disabled = false;
      return;
    }
    status.textContent = `showing ${formatNumber(loaded)} of ${formatNumber(cut.chars)} characters`;
    more.hidden = next === null;
    more.disabled = false;
  };
  more.addEventListener("click", load);
  load();
}

function cell(value, missing) {
  if (missing) return h("td", { class: "cell-missing" }, "");
  if (value === null || value === undefined) return h("td", { class: "cell-null" }, "null");
  if (typeof value === "object") {
    const text = JSON.stringify(value);
    return h("td", { class: "cell-json", title: text.length > 60 ? text.slice(0, 2000) : null }, text.length > 120 ? `${text.slice(0, 120)}…` : text);
  }
  const text = String(value);
  const cls = typeof value === "number" ? "cell-number" : typeof value === "boolean" ? "cell-bool" : null;
  return h("td", { class: cls, title: text.length > 60 ? text.slice(0, 2000) : null }, text.length > 160 ? `${text.slice(0, 160)}…` : text);
}

// ------------------------------------------------------------ text and binary

function renderText(page) {
  const items = page.items || (typeof page.text === "string" ? page.text.split("\n") : []);
  const offset = page.offset || 0;
  const pre = h("div", { class: "text-preview" });
  items.forEach((line, i) => {
    pre.append(h("div", { class: "text-line" },
      h("span", { class: "text-lineno", "aria-hidden": "true" }, formatNumber(offset + i + 1)),
      h("span", { class: "text-content" }, typeof line === "string" ? line : JSON.stringify(line))));
  });
  return pre;
}

function hexByteCount(page) {
  if (typeof page.hex_bytes === "number") return page.hex_bytes;
  if (typeof page.hex !== "string") return 0;
  let n = 0;
  for (const line of page.hex.split("\n")) {
    // "00000010  48 65 6c ...  |Hel...|": count the byte pairs between the offset and the ASCII column.
    const body = line.replace(/^[0-9a-f]+\s+/i, "").split("|")[0];
    n += (body.match(/\b[0-9a-f]{2}\b/gi) || []).length;
  }
  return n;
}

function renderHex(page) {
  const box = h("div", { class: "hex-preview" });
  box.append(h("div", { class: "hex-note" }, `Binary data, ${formatBytes(page.size)} in all. ${page.offset ? "These bytes:" : "The first bytes:"}`));
  let text = "";
  if (typeof page.hex === "string") text = page.hex;
  else if (Array.isArray(page.hex)) {
    text = page.hex.map((row) => {
      if (row && typeof row === "object") {
        const off = typeof row.offset === "number" ? row.offset.toString(16).padStart(8, "0") : "";
        return `${off}  ${row.hex || ""}  ${row.ascii || row.text || ""}`;
      }
      return String(row);
    }).join("\n");
  } else if (Array.isArray(page.items)) {
    text = page.items.map((row) => (typeof row === "string" ? row : JSON.stringify(row))).join("\n");
  }
  box.append(h("pre", { class: "hex-dump" }, text || "(empty)"));
  return box;
}

// ------------------------------------------------------------ the panel

/** The output preview of one node in the inspector (data-testid="preview"). */
export class OutputPreview {
  constructor(container) {
    this.el = container;
    this.state = null;
    this.limit = PAGE_SIZES[0];
    this.request = 0;
  }

  /**
   * Show a node's outputs in a run. info: {runId, nodeId, ports: [{name, format}],
   * artifacts: {port: {format, size, records}}, status}.
   */
  show(info) {
    const samePlace = this.state && this.state.runId === info.runId && this.state.nodeId === info.nodeId;
    const port = samePlace && info.ports.some((p) => p.name === this.state.port) ? this.state.port : (info.ports[0] || {}).name;
    const offset = samePlace && port === this.state.port ? this.state.offset : 0;
    this.state = { ...info, port, offset };
    this.render();
  }

  /** Refresh after an output became ready (keeps the current page). */
  refresh(artifacts) {
    if (!this.state) return;
    this.state.artifacts = artifacts;
    this.render();
  }

  clear(message) {
    this.state = null;
    clear(this.el);
    this.el.append(h("div", { class: "empty-note" }, message));
  }

  render() {
    const s = this.state;
    // The same page of the same output (a new run of the step, say) keeps showing until the new one arrives.
    const key = `${s.nodeId}|${s.port}|${s.offset}|${this.limit}`;
    const keep = this.view && this.viewKey === key && this.view.querySelector(".jtree, .table-wrap, .data-table, .text-preview, .hex-preview")
      ? { view: [...this.view.childNodes], pager: [...this.pager.childNodes] } : null;
    this.view = null;
    this.viewKey = null;
    clear(this.el);
    if (!s.ports.length) {
      this.el.append(h("div", { class: "empty-note" }, "This step writes no outputs."));
      return;
    }
    const tabs = h("div", { class: "port-tabs", role: "tablist", "aria-label": "Outputs" });
    for (const p of s.ports) {
      const art = (s.artifacts || {})[p.name];
      const selected = p.name === s.port;
      tabs.append(h("button", {
        type: "button",
        role: "tab",
        class: "port-tab",
        "aria-selected": selected ? "true" : "false",
        "data-port": p.name,
        onclick: () => {
          this.state.port = p.name;
          this.state.offset = 0;
          this.render();
        },
      }, h("span", { class: "port-tab-name" }, p.name), h("span", { class: "port-tab-format" }, (art && art.format) || p.format)));
    }
    this.el.append(tabs);
    const body = h("div", { class: "preview-body", role: "tabpanel" });
    this.el.append(body);
    if (!s.runId) {
      body.append(h("div", { class: "empty-note" }, "Run the pipeline to see its output."));
      return;
    }
    const art = (s.artifacts || {})[s.port];
    if (!art) {
      body.append(h("div", { class: "empty-note" }, missingText(s.status)));
      return;
    }
    const facts = [art.format, formatBytes(art.size)];
    if (typeof art.records === "number") facts.push(formatRecords(art.records));
    const url = `/api/runs/${seg(s.runId)}/nodes/${seg(s.nodeId)}/outputs/${seg(s.port)}`;
    this.factsEl = h("span", { "data-testid": "preview-facts" }, facts.filter(Boolean).join(" · "));
    this.facts = facts;
    body.append(h("div", { class: "preview-facts" },
      this.factsEl,
      h("a", { class: "link", href: `${url}/raw`, download: "" }, "Download")));
    const view = h("div", { class: "preview-view" });
    const pager = h("div", { class: "pager" });
    if (keep) {
      view.append(...keep.view);
      pager.append(...keep.pager);
    } else {
      view.append(h("div", { class: "empty-note" }, "Loading…"));
    }
    this.view = view;
    this.pager = pager;
    this.viewKey = key;
    body.append(view, pager);
    this.load(url, view, pager);
  }

  async load(url, view, pager) {
    const s = this.state;
    const ticket = ++this.request;
    let page;
    try {
      page = await get(`${url}?offset=${s.offset}&limit=${this.limit}`);
    } catch (err) {
      if (ticket !== this.request) return;
      clear(view).append(h("div", { class: "empty-note error-note" },
        err instanceof ApiError ? err.message : String(err)));
      return;
    }
    if (ticket !== this.request) return;
    const art = (s.artifacts || {})[s.port];
    if (page.total_known && typeof page.records === "number" && art && typeof art.records !== "number") {
      // counted by the server since the run's record was read: show it without waiting for the event
      art.records = page.records;
      this.factsEl.textContent = [...this.facts, formatRecords(page.records)].filter(Boolean).join(" · ");
    }
    clear(view);
    if (page.error) view.append(h("div", { class: "preview-error error-note" }, `This file does not match its format: ${page.error}`));
    view.append(renderPage(page, `${url}/cell`));
    // A cut cell opens below the scrolling view, at the panel's full width.
    const viewer = view.querySelector(".cell-viewer");
    if (viewer) view.after(viewer);
    this.renderPager(pager, page);
  }

  renderPager(pager, page) {
    clear(pager);
    const s = this.state;
    const offset = page.offset ?? s.offset;
    const count = (page.items || []).length;
    const kind = pageKind(page);
    pager.append(h("span", { class: "pager-range", "data-testid": "preview-range" }, describeRange(page)));
    if (kind === "tree" && page.mode === "document") return;
    const step = kind === "binary" ? Math.max(hexByteCount(page), 1) : this.limit;
    const prev = h("button", {
      type: "button", class: "btn btn-small", disabled: offset <= 0,
      onclick: () => { s.offset = Math.max(0, offset - step); this.render(); },
    }, "Previous");
    const next = h("button", {
      type: "button", class: "btn btn-small", disabled: !hasMore(page) || !(kind === "binary" ? hexByteCount(page) : count),
      onclick: () => { s.offset = offset + (kind === "binary" ? hexByteCount(page) : count); this.render(); },
    }, "Next");
    const step2 = this.limit;
    const last = typeof page.total === "number" && kind === "table" && page.total > offset + count
      ? h("button", {
        type: "button", class: "btn btn-small", "aria-label": "Last page",
        onclick: () => { s.offset = Math.max(0, page.total - step2); this.render(); },
      }, "Last") : null;
    const size = h("select", {
      class: "select select-small", "aria-label": "Rows per page",
      onchange: (e) => { this.limit = Number(e.target.value); s.offset = 0; this.render(); },
    }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === this.limit }, `${n} per page`)));
    pager.append(h("span", { class: "pager-buttons" }, prev, next, last, kind === "binary" ? null : size));
  }
}

function missingText(status) {
  if (status === "running" || status === "pending") return "This step is still working; its output appears when it finishes.";
  if (status === "failed" || status === "timed_out") return "This step did not finish, so it has no output in this run. Its log says why.";
  if (status === "cancelled") return "This step was cancelled before it wrote its output.";
  if (status === "skipped") return "This step was skipped in this run, because a step before it did not finish.";
  if (!status) return "This step was not part of this run, so it has no output here.";
  return "No output from this step in this run.";
}
