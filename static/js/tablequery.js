// The bar above a table preview: search text, filters by column, and Table/Tree. The sort is chosen on the
// column headers. Everything is worked out on the server (docs/api.md, "Sorting, filtering and searching").
import { h, clear } from "./dom.js";

export const OPS = [
  ["contains", "contains"], ["eq", "is"], ["ne", "is not"], ["gt", ">"], ["ge", "≥"], ["lt", "<"], ["le", "≤"],
  ["empty", "is empty"], ["notempty", "is not empty"],
];
const NO_VALUE = new Set(["empty", "notempty"]);
const OP_WORD = Object.fromEntries(OPS);

/** A fresh query: no sort, no filter, no search, shown as a table. */
export function emptyQuery() {
  return { sort: null, order: "asc", filters: [], q: "", view: "table" };
}

/** True when the query asks the server for anything (sort, filter or search). */
export function isActive(query) {
  return !!(query && (query.sort || query.filters.length || query.q));
}

/** The query as URL parameters (leading "&"), or "" without one. */
export function queryParams(query) {
  if (!isActive(query)) return "";
  const parts = [];
  if (query.sort) parts.push(`sort=${encodeURIComponent(query.sort)}&order=${query.order}`);
  for (const f of query.filters) parts.push(`filter=${encodeURIComponent(`${f.column}:${f.op}:${f.value}`)}`);
  if (query.q) parts.push(`q=${encodeURIComponent(query.q)}`);
  return `&${parts.join("&")}`;
}

/** The next sort after a click on `column`'s header: ascending, then descending, then none. */
export function nextSort(query, column) {
  if (query.sort !== column) return { ...query, sort: column, order: "asc" };
  if (query.order === "asc") return { ...query, order: "desc" };
  return { ...query, sort: null, order: "asc" };
}

/**
 * Render the bar. `columns` are the table's columns (for the filter picker); `change(query)` applies a new one.
 * `canTree` offers the Table/Tree switch (records outputs).
 */
export function renderQueryBar(query, columns, change, { canTree = true } = {}) {
  const bar = h("div", { class: "query-bar", "data-testid": "query-bar" });
  const search = h("input", {
    type: "search", class: "input input-small query-search", placeholder: "Search all columns",
    "aria-label": "Search the rows", value: query.q || "",
  });
  let timer = null;
  const applySearch = () => {
    clearTimeout(timer);
    const q = search.value.trim();
    if (q !== (query.q || "")) change({ ...query, q });
  };
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(applySearch, 400); });
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); applySearch(); } });
  search.addEventListener("search", applySearch);

  const colSel = h("select", { class: "select select-small", "aria-label": "Filter column" },
    columns.map((c) => h("option", { value: c }, c)));
  const opSel = h("select", { class: "select select-small", "aria-label": "Filter condition" },
    OPS.map(([op, word]) => h("option", { value: op }, word)));
  const value = h("input", { class: "input input-small query-value", placeholder: "value", "aria-label": "Filter value" });
  opSel.addEventListener("change", () => { value.disabled = NO_VALUE.has(opSel.value); });
  const add = () => {
    if (!colSel.value) return;
    const op = opSel.value;
    if (!NO_VALUE.has(op) && value.value === "") {
      value.setAttribute("aria-invalid", "true");
      value.focus();
      return;
    }
    change({ ...query, filters: [...query.filters, { column: colSel.value, op, value: NO_VALUE.has(op) ? "" : value.value }] });
  };
  value.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); add(); } });
  const filterRow = h("div", { class: "query-filter", role: "group", "aria-label": "Add a filter" },
    colSel, opSel, value, h("button", { type: "button", class: "btn btn-small", onclick: add }, "Filter"));

  const views = canTree ? h("div", { class: "view-switch", role: "group", "aria-label": "Show as" },
    ["table", "tree"].map((v) => h("button", {
      type: "button", class: "btn btn-small view-button", "aria-pressed": query.view === v ? "true" : "false",
      "data-view": v, onclick: () => { if (query.view !== v) change({ ...query, view: v }); },
    }, v === "table" ? "Table" : "Tree"))) : null;

  bar.append(h("div", { class: "query-row" }, search, views), filterRow);
  if (query.filters.length || query.sort) {
    const chips = h("div", { class: "query-chips", "data-testid": "query-chips" });
    query.filters.forEach((f, i) => {
      const words = `${f.column} ${OP_WORD[f.op] || f.op}${NO_VALUE.has(f.op) ? "" : ` ${f.value}`}`;
      chips.append(h("span", { class: "query-chip" }, words, h("button", {
        type: "button", class: "icon-button chip-remove", "aria-label": `Remove the filter ${words}`,
        onclick: () => change({ ...query, filters: query.filters.filter((_, j) => j !== i) }),
      }, "×")));
    });
    if (query.sort) {
      const words = `sorted by ${query.sort}, ${query.order === "desc" ? "high to low" : "low to high"}`;
      chips.append(h("span", { class: "query-chip" }, words, h("button", {
        type: "button", class: "icon-button chip-remove", "aria-label": "Stop sorting",
        onclick: () => change({ ...query, sort: null, order: "asc" }),
      }, "×")));
    }
    bar.append(chips);
  }
  return bar;
}

/** "Sorting… 120,000 of 1,000,000 records read" while the server works on a query over a large file. */
export function workingNote(page, query, formatNumber) {
  const verb = page.stage === "reading" ? "Reading the file" : query.sort ? "Sorting" : "Filtering";
  const read = typeof page.read === "number" ? page.read : 0;
  const of = typeof page.records === "number" ? ` of ${formatNumber(page.records)}` : "";
  const what = page.stage === "reading" ? `${formatNumber(read)}${of} records read` : `${formatNumber(read)} records`;
  return clear(h("div", { class: "query-working", role: "status", "data-testid": "query-working" }))
    .appendChild(document.createTextNode(`${verb}… ${what}. Still working: this takes a while on a large output, once; then every page is quick.`)).parentNode;
}
