// Walk through a run, one step at a time in dependency order: the step lit up on the canvas, and a panel
// that says in plain words what it does, what came in, what went out and what it did to the records.
import { get, seg } from "./api.js";
import { h, put, clear, formatDuration, formatNumber } from "./dom.js";
import { nodesOf, edgesOf, portsOf } from "./doc.js";
import { describeStatus } from "./status.js";
import { RECORDS, changeTexts, diffSentence, short as cut } from "./diffview.js";
import { categoryLabel, categoryMap, toneOf } from "./cells.js";

const SAMPLE = 3;
const COLUMNS = 6;
const short = (value) => cut(value, 40);

function records(n) {
  return typeof n === "number" ? `${formatNumber(n)} record${n === 1 ? "" : "s"}` : "";
}

/** Steps in dependency order (a step after everything it reads from), ties in the document's order. */
export function dependencyOrder(doc) {
  const ids = nodesOf(doc).map((n) => n.id);
  const ups = new Map(ids.map((id) => [id, new Set()]));
  for (const e of edgesOf(doc)) if (ups.has(e.dst) && ups.has(e.src)) ups.get(e.dst).add(e.src);
  const out = [];
  const done = new Set();
  while (out.length < ids.length) {
    const next = ids.find((id) => !done.has(id) && [...ups.get(id)].every((u) => done.has(u)));
    if (!next) break; // a cycle: the rest cannot be ordered (validation says so elsewhere)
    out.push(next);
    done.add(next);
  }
  return out;
}

export class WalkThrough {
  constructor(studio) {
    this.studio = studio;
    this.panel = null;
    this.onKey = (e) => this.key(e);
  }

  get active() {
    return !!this.panel;
  }

  start() {
    const run = this.studio.run;
    if (!run || !run.run_id) return;
    this.run = run;
    this.order = dependencyOrder(this.studio.doc).filter((id) => run.nodes && run.nodes[id]);
    if (!this.order.length) return;
    this.index = 0;
    this.count = h("span", { class: "walk-count" });
    this.titleEl = h("h2", { class: "walk-title", id: "walk-title" });
    this.body = h("div", { class: "walk-body", "aria-live": "polite" });
    this.back = h("button", { type: "button", class: "btn", onclick: () => this.go(-1) }, "Back");
    this.next = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.go(1) }, "Next");
    this.panel = h("div", { class: "walk-panel", role: "dialog", "aria-labelledby": "walk-title", "data-testid": "walk" },
      h("div", { class: "walk-head" }, this.count, h("span", { class: "topbar-spacer" }),
        h("button", { type: "button", class: "icon-button", "aria-label": "End the walk-through", title: "End (Esc)",
                      onclick: () => this.stop() }, "×")),
      this.titleEl, this.body,
      h("div", { class: "walk-foot" }, h("span", { class: "walk-hint" }, "← → to move, Esc to end"), this.back, this.next));
    document.body.append(this.panel);
    document.body.classList.add("walking");
    document.addEventListener("keydown", this.onKey);
    this.show();
    this.next.focus();
  }

  stop() {
    if (!this.panel) return;
    document.removeEventListener("keydown", this.onKey);
    this.panel.remove();
    this.panel = null;
    document.body.classList.remove("walking");
    this.studio.canvas.setFocus(null);
    this.studio.els.walk.focus();
  }

  key(e) {
    if (e.target && ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName)) return;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") this.go(1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") this.go(-1);
    else if (e.key === "Escape") this.stop();
    else return;
    e.preventDefault();
  }

  go(step) {
    const to = this.index + step;
    if (to >= this.order.length) return this.stop();
    if (to < 0) return;
    this.index = to;
    this.show();
  }

  async show() {
    const id = this.order[this.index];
    const node = this.studio.node(id);
    const info = this.run.nodes[id] || {};
    const n = this.order.length;
    this.count.textContent = `Step ${this.index + 1} of ${n}`;
    this.titleEl.textContent = (node && node.title) || id;
    this.back.disabled = this.index === 0;
    this.next.textContent = this.index === n - 1 ? "Finish" : "Next";
    this.studio.canvas.setFocus(id, this.panel.getBoundingClientRect());
    const d = describeStatus(info.status);
    const took = info.status === "succeeded" && typeof info.duration_s === "number" ? `, in ${formatDuration(info.duration_s)}` : "";
    put(clear(this.body),
      node && node.description ? h("p", {}, node.description) : h("p", { class: "insp-muted" }, "This step has no description yet."),
      h("p", { class: "walk-status", "data-status": info.status || "" }, `${d.icon} ${d.word}${took}.`));
    const shown = this.index;
    const parts = await this.story(id, node, info);
    if (this.panel && shown === this.index) put(this.body, ...parts);
  }

  async story(id, node, info) {
    // each step's data is read from the run that made it (the latest results may span several runs)
    const runOf = (nodeInfo) => (nodeInfo && (nodeInfo.result_run || nodeInfo.run_id)) || this.run.run_id;
    const runId = runOf(info);
    const out = [];
    const ins = edgesOf(this.studio.doc).filter((e) => e.dst === id);
    const own = portsOf(node, "inputs").filter((p) => !ins.some((e) => e.dstPort === p.name));
    if (ins.length || own.length) {
      out.push(h("h4", {}, "What came in"));
      for (const e of ins) {
        const src = this.run.nodes[e.src] || {};
        const art = (src.artifacts || {})[e.srcPort] || {};
        const from = (this.studio.node(e.src) || {}).title || e.src;
        out.push(h("p", {}, `${e.dstPort}: ${records(art.records) || "data"} from “${from}”.`));
        out.push(await this.sample(runOf(src), e.src, e.srcPort, art));
      }
      for (const p of own) out.push(h("p", {}, `${p.name}: ${p.path ? `its own file, ${p.path}` : "data given to the run"}.`));
    }
    const outs = Object.entries(info.artifacts || {});
    if (outs.length) {
      out.push(h("h4", {}, "What went out"));
      for (const [port, art] of outs) {
        out.push(h("p", {}, `${port}: ${records(art.records) || (art.format || "a file")}.`));
        out.push(await this.sample(runId, id, port, art));
      }
    }
    if (["succeeded", "cached"].includes(info.status) && outs.some(([, a]) => RECORDS.includes(a.format))) {
      out.push(...await this.changes(runId, id));
    }
    return out.filter(Boolean);
  }

  async sample(runId, nodeId, port, art) {
    if (!art || !RECORDS.includes(art.format)) return null;
    try {
      const page = await get(`/api/runs/${seg(runId)}/nodes/${seg(nodeId)}/outputs/${seg(port)}?offset=0&limit=${SAMPLE}`);
      if (page.kind !== "table" || !(page.items || []).length) return null;
      // Fields the port marks as categories come first and read as labels, as in the inspector's tables:
      // they are often what the step is for (classify's label), and the sample shows only a few columns.
      const declared = ((this.studio.node(nodeId) || {}).outputs || []).find((p) => p && p.name === port);
      const categories = categoryMap(declared && declared.categories);
      const isCategory = (c) => Object.prototype.hasOwnProperty.call(categories, c);
      const all = page.columns || Object.keys(page.items[0]);
      const cols = [...all.filter(isCategory), ...all.filter((c) => !isCategory(c))].slice(0, COLUMNS);
      const td = (c, v) => (isCategory(c) && v !== null && v !== undefined && v !== ""
        ? h("td", { class: "cell-cat" }, categoryLabel(String(v), toneOf(v, categories[c])))
        : h("td", {}, short(v)));
      return h("table", { class: "walk-sample", "aria-label": `The first records of ${port}` },
        h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
        h("tbody", {}, page.items.map((r) => h("tr", {}, cols.map((c) => td(c, r[c]))))));
    } catch {
      return null;
    }
  }

  async changes(runId, id) {
    let first;
    try {
      first = await get(`/api/runs/${seg(runId)}/nodes/${seg(id)}/diff?kind=dropped&limit=${SAMPLE}`);
    } catch {
      return [];
    }
    const out = [h("h4", {}, "What it did to the records"), h("p", { "data-testid": "walk-diff" }, diffSentence("It", first.counts, first.said))];
    const keyOf = (it) => (first.key ? `${first.key.join(", ")} ${short(it.key)}` : "a record");
    for (const kind of ["dropped", "changed", "added"]) {
      if (!first.counts[kind]) continue;
      let page = first;
      if (kind !== "dropped") {
        try {
          page = await get(`/api/runs/${seg(runId)}/nodes/${seg(id)}/diff?kind=${kind}&limit=${SAMPLE}&input=${seg(first.input)}&output=${seg(first.output)}`);
        } catch {
          continue;
        }
      }
      const items = page.items.map((it) => h("li", {}, h("strong", {}, keyOf(it)), ": ",
        kind === "changed"
          ? it.fields.map((f) => { const [was, now] = changeTexts(f, 40); return `${f.field} ${f.was === "absent" ? "(absent)" : was} → ${f.now === "absent" ? "(absent)" : now}`; }).join("; ")
          : it.reason || Object.entries(it.record).slice(0, 4).map(([k, v]) => `${k} ${short(v)}`).join(", ")));
      const more = first.counts[kind] > items.length ? ` (${items.length} of ${formatNumber(first.counts[kind])})` : "";
      out.push(h("p", {}, `${kind[0].toUpperCase()}${kind.slice(1)}${more}:`), h("ul", { class: "walk-examples" }, items));
    }
    return out;
  }
}
