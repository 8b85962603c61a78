// "What changed": what a step did to its records in the run shown — the four counts, then a paged list of
// the records of the chosen kind, with the changed fields' old and new values side by side.
import { get, seg, ApiError } from "./api.js";
import { h, put, clear, formatNumber } from "./dom.js";

/** The formats whose files are lists of records (what a diff, a sample table or a count applies to). */
export const RECORDS = ["json", "ndjson", "csv", "parquet"];
const KINDS = [
  { kind: "dropped", word: "Dropped", hint: "came in but did not go out" },
  { kind: "changed", word: "Changed", hint: "went out with different values" },
  { kind: "added", word: "Added", hint: "went out but did not come in" },
  { kind: "unchanged", word: "Unchanged", hint: "went through as they came" },
];
const PAGE = 20;

/** A value as short text: a string as it is, anything else as JSON, cut at `max` characters. */
export function short(value, max = 80) {
  if (value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text === undefined ? "" : text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A changed field's before and after as text: like `short`, but when the two would read the same (the text
 * "18.2" that became the number 18.2), both as JSON, so the quotes show what changed. */
export function changeTexts(field, max = 80) {
  const before = field.was === "absent" ? "absent" : short(field.before, max);
  const after = field.now === "absent" ? "absent" : short(field.after, max);
  if (before !== after || field.was === "absent" || field.now === "absent") return [before, after];
  const json = (v) => { const t = JSON.stringify(v); return t.length > max ? `${t.slice(0, max - 1)}…` : t; };
  return [json(field.before), json(field.after)];
}

/** The counts in a sentence: "dropped 9 of 1,000 records and changed 991" (the server's own words, `said`, when
 * it gives them: they also say which fields every record gained). */
export function diffSentence(title, counts, words) {
  if (words) return `${title} ${words}.`;
  const total = counts.dropped + counts.changed + counts.unchanged;
  const parts = [];
  if (counts.dropped) parts.push(`dropped ${formatNumber(counts.dropped)} of ${formatNumber(total)} records`);
  if (counts.changed) parts.push(`changed ${formatNumber(counts.changed)}` + (parts.length ? "" : ` of ${formatNumber(total)} records`));
  if (counts.added) parts.push(`added ${formatNumber(counts.added)}`);
  if (!parts.length) return `${title} passed all ${formatNumber(total)} records through unchanged.`;
  const said = parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}` : parts[0];
  return `${title} ${said}.`;
}

/** One output in two runs: "alerts lost 3 records, gained 5 and changed 2; 40 stayed the same". */
export function versusSentence(port, counts) {
  const parts = [];
  if (counts.dropped) parts.push(`lost ${formatNumber(counts.dropped)} record${counts.dropped === 1 ? "" : "s"}`);
  if (counts.added) parts.push(`gained ${formatNumber(counts.added)}` + (parts.length ? "" : ` record${counts.added === 1 ? "" : "s"}`));
  if (counts.changed) parts.push(`changed ${formatNumber(counts.changed)}` + (parts.length ? "" : ` record${counts.changed === 1 ? "" : "s"}`));
  if (!parts.length) return `${port} is the same as in the run before (${formatNumber(counts.unchanged)} records).`;
  const said = parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}` : parts[0];
  return `Since the run before, ${port} ${said}; ${formatNumber(counts.unchanged)} stayed the same.`;
}

export class DiffView {
  constructor(el) {
    this.el = el;
    this.shown = null;
    this.kind = null;
    this.items = [];
  }

  /** Whether a step can have a diff: a records output, and records coming in — from another step (`fed` names
   * the inputs an edge feeds), or in a records file of its own (a json file of its own is often settings). */
  static applies(node, fed = new Set()) {
    const fmt = (p) => (typeof p === "string" ? "json" : (p.format || "json"));
    const name = (p) => (typeof p === "string" ? p : p.name);
    const records = (p) => RECORDS.includes(fmt(p));
    const comesIn = (node.inputs || []).some((p) => records(p) && (fed.has(name(p)) || fmt(p) !== "json" || !p.path));
    return comesIn && (node.outputs || []).some(records);
  }

  /** Show the diff of `nodeId` in `runId` (once the step has succeeded or was reused); `title` names the step. */
  async show({ runId, nodeId, status, title }) {
    this.makeUrl = (kind, offset) => {
      const d = this.data;
      const ports = d ? `&input=${seg(d.input)}&output=${seg(d.output)}` : "";
      return `/api/runs/${seg(runId)}/nodes/${seg(nodeId)}/diff?kind=${kind}&offset=${offset}&limit=${PAGE}${ports}`;
    };
    this.describe = (d) => [diffSentence(title, d.counts, d.said), `${d.input} → ${d.output}: ${d.note.replace(/`/g, "")}.`];
    return this.start(`${runId}|${nodeId}|${status}`, runId, status);
  }

  /** Show how output `port` of `nodeId` changed from run `before` to run `runId`. */
  async showVersus({ before, runId, nodeId, port, status }) {
    this.makeUrl = (kind, offset) => `/api/diff?a=${seg(before)}&b=${seg(runId)}&node=${seg(nodeId)}` +
      `&port=${seg(port)}&kind=${kind}&offset=${offset}&limit=${PAGE}`;
    this.describe = (d) => [versusSentence(port, d.counts), d.note.replace(/`/g, "") + "."];
    return this.start(`${before}|${runId}|${nodeId}|${port}|${status}`, runId, status);
  }

  async start(sig, runId, status) {
    if (this.shown === sig) return;
    this.shown = sig;
    this.data = null;
    this.el.removeAttribute("data-dropped");
    if (!runId || !["succeeded", "cached"].includes(status)) {
      put(clear(this.el), h("p", { class: "empty-note" },
        runId ? "Shown once this step has finished." : "Run the pipeline to see what this step does to the records."));
      return;
    }
    put(clear(this.el), h("p", { class: "empty-note" }, "Comparing what came in with what went out…"));
    let first;
    try {
      first = await get(this.makeUrl("dropped", 0));
    } catch (err) {
      if (this.shown !== sig) return;
      put(clear(this.el), h("p", { class: "empty-note" },
        err instanceof ApiError ? `Cannot compare: ${err.message}` : "Cannot compare right now."));
      return;
    }
    if (this.shown !== sig) return;
    this.data = first;
    const c = first.counts;
    for (const k of KINDS) this.el.dataset[k.kind] = String(c[k.kind]);
    this.kind = c.dropped ? "dropped" : c.changed ? "changed" : c.added ? "added" : "unchanged";
    this.render(this.kind === "dropped" ? first : null);
  }

  render(page) {
    const d = this.data;
    const tabs = h("div", { class: "diff-kinds", role: "tablist", "aria-label": "Kinds of records" },
      KINDS.map((k) => h("button", {
        type: "button", role: "tab", class: "diff-kind", "data-kind": k.kind,
        "aria-selected": String(k.kind === this.kind), title: `Records that ${k.hint}`,
        onclick: () => this.choose(k.kind),
      }, h("span", { class: "diff-count" }, formatNumber(d.counts[k.kind])), h("span", {}, k.word))));
    this.list = h("div", { class: "diff-list", role: "tabpanel", "aria-live": "polite" });
    const [said, how] = this.describe(d);
    put(clear(this.el), h("p", { class: "diff-sentence" }, said), h("p", { class: "diff-how" }, how), tabs, this.list);
    if (page) this.fill(page, false);
    else this.load(0);
  }

  choose(kind) {
    this.kind = kind;
    for (const b of this.el.querySelectorAll(".diff-kind")) b.setAttribute("aria-selected", String(b.dataset.kind === kind));
    this.load(0);
  }

  async load(offset) {
    const kind = this.kind;
    try {
      const page = await get(this.makeUrl(kind, offset));
      if (kind === this.kind) this.fill(page, offset > 0);
    } catch (err) {
      put(clear(this.list), h("p", { class: "empty-note" }, `Cannot list them: ${err.message}`));
    }
  }

  fill(page, more) {
    if (!more) {
      clear(this.list);
      this.items = [];
    }
    const old = this.list.querySelector(".diff-more");
    if (old) old.remove();
    if (!page.total) {
      this.list.append(h("p", { class: "empty-note" }, `No ${page.kind} records.`));
      return;
    }
    const keyName = (page.key || []).join(", ");
    for (const it of page.items) {
      this.items.push(it);
      const label = page.key ? `${keyName} ${short(it.key)}` : "record";
      if (page.kind === "changed") {
        this.list.append(h("div", { class: "diff-item", "data-kind": "changed" },
          h("div", { class: "diff-key" }, label),
          h("table", { class: "diff-fields" }, h("tbody", {}, it.fields.map((f) => { const [was, now] = changeTexts(f); return h("tr", {},
            h("th", { scope: "row" }, f.field),
            h("td", { class: f.was === "absent" ? "diff-before diff-absent" : "diff-before" }, was),
            h("td", { class: "diff-arrow", "aria-label": "became" }, "→"),
            h("td", { class: f.now === "absent" ? "diff-after diff-absent" : "diff-after" }, now)); })))));
      } else {
        const fields = Object.entries(it.record).map(([k, v]) => `${k}: ${short(v)}`).join(" · ");
        this.list.append(h("div", { class: "diff-item", "data-kind": page.kind },
          h("div", { class: "diff-key" }, label, it.reason ? h("span", { class: "diff-reason" }, it.reason) : null),
          h("div", { class: "diff-record" }, fields)));
      }
    }
    if (this.items.length < page.total) {
      this.list.append(h("button", {
        type: "button", class: "btn btn-small diff-more", onclick: () => this.load(this.items.length),
      }, `Show more (${formatNumber(page.total - this.items.length)} left)`));
    }
  }
}
