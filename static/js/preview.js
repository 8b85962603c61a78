// Output previews: one server page at a time (offset/limit), shown as a
// collapsible JSON tree, a table, plain text or a hex dump.
import { get, seg, ApiError } from "./api.js";
import { h, clear, formatNumber, formatBytes, formatRecords } from "./dom.js";
import { cell, categoryLabel, categoryMap, toneOf, useTree } from "./cells.js";
import { emptyQuery, isActive, nextSort, queryParams, renderQueryBar, workingNote } from "./tablequery.js";

const PAGE_SIZES = [50, 100, 500];
const TREE_CHILD_LIMIT = 200;

/**
 * Render one preview page into an element. `cellUrl`, when given, is the output's
 * `/cell` route: a cut cell then offers to load its full value from there. `opts`:
 * {query, onSort(column), categories: {field: {value: tone}}} for tables; a query whose
 * `view` is "tree" shows a table's records as a tree.
 */
export function renderPage(page, cellUrl = null, opts = {}) {
  const kind = pageKind(page);
  if (kind === "binary") return renderHex(page);
  if (kind === "table" && opts.query && opts.query.view === "tree") return renderRecordsTree(page, opts.categories || {});
  if (kind === "table") return renderTable(page, cellUrl, opts);
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
  const q = page.query;
  if (q && (q.filters.length || q.q) && total.exact !== null) return `${range} of ${formatNumber(total.exact)} matching`;
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

/** A table's records as a tree, one closed node per record, named by its record number. */
function renderRecordsTree(page, categories) {
  const box = h("div", { class: "jtree jtree-records", role: "tree", "aria-label": "Records as a tree", "data-testid": "records-tree" });
  const offset = page.offset || 0;
  (page.items || []).forEach((item, i) => {
    const n = Array.isArray(page.positions) ? page.positions[i] + 1 : offset + i + 1;
    box.append(treeNode(item, `#${formatNumber(n)}`, 1, true, categories));
  });
  if (!(page.items || []).length) box.append(h("div", { class: "empty-note" }, "No records here."));
  return box;
}

/** One value of a tree; `categories` ({field: {value: tone}}) labels the fields of a record's own level. */
export function treeNode(value, key, depth, indexKey = false, categories = null, tones = null) {
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
      for (const [k, v] of entries.slice(0, TREE_CHILD_LIMIT)) kids.append(treeNode(v, k, depth + 1, false, null,
        categories && Object.prototype.hasOwnProperty.call(categories, k) ? categories[k] : null));
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
  const labelled = value !== null && value !== "" && (tones !== null || (typeof value === "string" && /^(warning|critical)$/i.test(value.trim())));
  return h("div", { class: "jt-leaf", role: "treeitem" }, keyEl, labelled ? categoryLabel(value, toneOf(value, tones || {})) : leaf(value));
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

function renderTable(page, cellUrl, opts = {}) {
  const query = opts.query || null;
  const categories = opts.categories || {};
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
  // Columns a port marks as categories come first, so the labels show without scrolling sideways.
  columns = [...columns.filter((c) => Object.prototype.hasOwnProperty.call(categories, c)),
    ...columns.filter((c) => !Object.prototype.hasOwnProperty.call(categories, c))];
  const offset = page.offset || 0;
  const positions = Array.isArray(page.positions) ? page.positions : null;
  const table = h("table", { class: "data-table" });
  const header = (c) => {
    if (!opts.onSort) return h("th", { scope: "col" }, c);
    const sorted = query && query.sort === c ? query.order : null;
    const word = sorted === "asc" ? "ascending" : sorted === "desc" ? "descending" : "none";
    const title = sorted === "asc" ? `Sorted by ${c}, low to high; click for high to low`
      : sorted === "desc" ? `Sorted by ${c}, high to low; click for the file's order` : `Sort by ${c}, low to high`;
    return h("th", { scope: "col", "aria-sort": word, "data-column": c },
      h("button", { type: "button", class: "sort-button", title,
        onclick: () => opts.onSort(c) },
      h("span", {}, c), h("span", { class: "sort-mark", "aria-hidden": "true" })));
  };
  const headRow = h("tr", {}, h("th", { class: "rownum", scope: "col", title: positions ? "The record's number in the file" : null }, "#"), columns.map(header));
  table.append(h("thead", {}, headRow));
  const body = h("tbody");
  items.forEach((row, i) => {
    const record = positions ? positions[i] : offset + i;
    const tr = h("tr", {}, h("td", { class: "rownum" }, formatNumber(record + 1)));
    if (row && typeof row === "object" && !Array.isArray(row)) {
      for (const c of columns) {
        const cut = cuts.get(`${record}\u0000${c}`);
        tr.append(cut ? cutCell(row[c], cut, cellUrl, viewer) : cell(row[c], !(c in row), c, categories));
      }
    } else if (Array.isArray(row)) {
      for (let j = 0; j < columns.length; j += 1) tr.append(cell(row[j], j >= row.length));
    } else {
      tr.append(cell(row, false));
    }
    body.append(tr);
  });
  table.append(body);
  const wrap = h("div", { class: "table-wrap" }, table, viewer);
  if (!items.length && isActive(query)) wrap.prepend(h("div", { class: "empty-note" }, "No records match."));
  return wrap;
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

useTree(treeNode);

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

/**
 * The preview of one step's outputs (or, with direction "inputs", of what it received) in the inspector
 * (data-testid="preview"). Tables sort on their headers, filter and search on the server, and switch to a tree.
 */
export class OutputPreview {
  constructor(container, { direction = "outputs" } = {}) {
    this.el = container;
    this.direction = direction;
    this.state = null;
    this.limit = PAGE_SIZES[0];
    this.request = 0;
    this.queries = new Map(); // node|port -> query (kept while the inspector lives)
    this.columns = new Map(); // node|port -> the columns last seen
  }

  /**
   * Show a step's ports in a run. info: {runId, nodeId, ports: [{name, format, categories}],
   * artifacts: {port: {format, size, records, note}}, status}.
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

  get queryKey() {
    return `${this.state.nodeId}|${this.state.port}`;
  }

  get query() {
    return this.queries.get(this.queryKey) || emptyQuery();
  }

  setQuery(query) {
    this.queries.set(this.queryKey, query);
    this.state.offset = 0;
    this.render();
  }

  render() {
    const s = this.state;
    const query = this.query;
    // The same page of the same output (a new run of the step, say) keeps showing until the new one arrives.
    const key = `${s.nodeId}|${s.port}|${s.offset}|${this.limit}|${JSON.stringify(query)}`;
    const keep = this.view && this.viewKey === key && this.view.querySelector(".jtree, .table-wrap, .data-table, .text-preview, .hex-preview")
      ? { view: [...this.view.childNodes], pager: [...this.pager.childNodes] } : null;
    const focused = document.activeElement && this.el.contains(document.activeElement)
      ? document.activeElement.getAttribute("aria-label") : null;
    this.view = null;
    this.viewKey = null;
    clear(this.el);
    const inputs = this.direction === "inputs";
    if (!s.ports.length) {
      this.el.append(h("div", { class: "empty-note" }, inputs ? "This step reads no inputs." : "This step writes no outputs."));
      return;
    }
    const tabs = h("div", { class: "port-tabs", role: "tablist", "aria-label": inputs ? "Inputs" : "Outputs" });
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
      }, h("span", { class: "port-tab-name" }, p.name), h("span", { class: "port-tab-format" }, (art && art.format) || p.format),
      art && typeof art.records === "number" ? h("span", { class: "port-tab-records" }, formatRecords(art.records)) : null));
    }
    this.el.append(tabs);
    const body = h("div", { class: "preview-body", role: "tabpanel" });
    this.el.append(body);
    if (!s.runId) {
      body.append(h("div", { class: "empty-note" }, inputs ? "Run the pipeline to see what this step receives." : "Run the pipeline to see its output."));
      return;
    }
    const art = (s.artifacts || {})[s.port];
    if (!art || art.available === false) {
      body.append(h("div", { class: "empty-note" }, inputs ? missingInputText(s.status, art) : missingText(s.status)));
      return;
    }
    const facts = [art.format, formatBytes(art.size)];
    if (typeof art.records === "number") facts.push(formatRecords(art.records));
    const url = `/api/runs/${seg(s.runId)}/nodes/${seg(s.nodeId)}/${inputs ? "inputs" : "outputs"}/${seg(s.port)}`;
    this.factsEl = h("span", { "data-testid": "preview-facts" }, facts.filter(Boolean).join(" · "));
    this.facts = facts;
    body.append(h("div", { class: "preview-facts" },
      this.factsEl,
      h("a", { class: "link", href: `${url}/raw`, download: "" }, "Download")));
    if (art.note) body.append(h("p", { class: "preview-note", "data-testid": "preview-note" }, art.note));
    const port = s.ports.find((p) => p.name === s.port) || {};
    this.barBox = h("div", { class: "query-box" });
    body.append(this.barBox);
    if (RECORDS_FORMATS.includes(art.format || port.format) && this.columns.has(this.queryKey)) {
      this.renderBar(this.columns.get(this.queryKey));
    }
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
    if (focused) {
      const again = [...this.el.querySelectorAll("[aria-label]")].find((e) => e.getAttribute("aria-label") === focused);
      if (again) {
        again.focus();
        if (again.tagName === "INPUT" && again.value) again.setSelectionRange(again.value.length, again.value.length);
      }
    }
    this.load(url, view, pager);
  }

  renderBar(columns) {
    if (!this.barBox) return;
    clear(this.barBox).append(renderQueryBar(this.query, columns, (q) => this.setQuery(q)));
  }

  async load(url, view, pager) {
    const s = this.state;
    const query = this.query;
    const ticket = ++this.request;
    let page;
    for (;;) {
      try {
        page = await get(`${url}?offset=${s.offset}&limit=${this.limit}${queryParams(query)}`);
      } catch (err) {
        if (ticket !== this.request) return;
        clear(view).append(h("div", { class: "empty-note error-note", "data-testid": "query-error" },
          err instanceof ApiError ? err.message : String(err)));
        return;
      }
      if (ticket !== this.request) return;
      if (!page.working) break;
      // A query over a large file: the server is still reading or sorting it; say so and ask again.
      clear(view).append(workingNote(page, query, formatNumber));
      clear(pager);
      await new Promise((resolve) => setTimeout(resolve, 700));
      if (ticket !== this.request) return;
    }
    const art = (s.artifacts || {})[s.port];
    if (typeof page.total !== "number" && !page.error && !isActive(query) && art && typeof art.records === "number"
        && pageKind(page) === "table") {
      // the run (or the listing of inputs) knows the count the server is still making: use it at once
      page.total = art.records;
      page.counting = false;
    }
    if (page.total_known && typeof page.records === "number" && art && typeof art.records !== "number") {
      // counted by the server since the run's record was read: show it without waiting for the event
      art.records = page.records;
      this.factsEl.textContent = [...this.facts, formatRecords(page.records)].filter(Boolean).join(" · ");
    }
    const kind = pageKind(page);
    if (kind === "table" && Array.isArray(page.columns) && RECORDS_FORMATS.includes(page.format)) {
      const columns = page.columns.map((c) => (typeof c === "string" ? c : c.name));
      const known = this.columns.get(this.queryKey);
      this.columns.set(this.queryKey, columns);
      if (!known || known.join("\u0000") !== columns.join("\u0000") || !this.barBox.firstChild) this.renderBar(columns);
    }
    const port = s.ports.find((p) => p.name === s.port) || {};
    const categories = categoryMap(port.categories);
    const tableOpts = RECORDS_FORMATS.includes(page.format)
      ? { query, categories, onSort: (c) => this.setQuery(nextSort(this.query, c)) }
      : { categories };
    clear(view);
    if (page.error) view.append(h("div", { class: "preview-error error-note" }, `This file does not match its format: ${page.error}`));
    view.append(renderPage(page, `${url}/cell`, tableOpts));
    // The table is drawn anew for each page: keep the sorted column in view (it may be far to the right).
    const sortedHead = view.querySelector('th[aria-sort="ascending"], th[aria-sort="descending"]');
    if (sortedHead) {
      const box = view.getBoundingClientRect();
      const head = sortedHead.getBoundingClientRect();
      if (head.right > box.right) view.scrollLeft += head.right - box.right + 8;
    }
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

const RECORDS_FORMATS = ["json", "ndjson", "csv", "parquet"];

function missingInputText(status, art) {
  if (!status) return "This step was not part of this run, so nothing came in here.";
  if (status === "pending" || status === "running") return "This step has not received its inputs yet.";
  if (status === "skipped") return "This step was skipped in this run, so nothing came in.";
  if (art && art.available === false) return "The file this step received in this run is no longer on disk.";
  return "Nothing came in on this input in this run.";
}

function missingText(status) {
  if (status === "running" || status === "pending") return "This step is still working; its output appears when it finishes.";
  if (status === "failed" || status === "timed_out") return "This step did not finish, so it has no output in this run. Its log says why.";
  if (status === "cancelled") return "This step was cancelled before it wrote its output.";
  if (status === "skipped") return "This step was skipped in this run, because a step before it did not finish.";
  if (!status) return "This step was not part of this run, so it has no output here.";
  return "No output from this step in this run.";
}
