// "Came in": what a step received in the run on show — each input's file (converted when the edge converted
// it, a sample file, a trigger's batch) with its preview, beside what went out.
import { get, seg } from "./api.js";
import { formatNumber, formatRecords } from "./dom.js";
import { portsOf, edgesOf, nodesOf } from "./doc.js";
import { categoryMap } from "./cells.js";
import { OutputPreview } from "./preview.js";

function rawPort(node, kind, name) {
  return ((node && node[kind]) || []).find((p) => p && typeof p === "object" && p.name === name) || null;
}

/** A step's ports of `kind`, each with its categories ({field: {value: tone}}); an input also takes those of
 * the output that feeds it. */
export function portsWithCategories(doc, node, kind) {
  return portsOf(node, kind).map((p) => {
    const declared = [(rawPort(node, kind, p.name) || {}).categories];
    if (kind === "inputs") {
      const edge = edgesOf(doc).find((e) => e.dst === node.id && e.dstPort === p.name);
      const src = edge ? nodesOf(doc).find((n) => n.id === edge.src) : null;
      if (src) declared.unshift((rawPort(src, "outputs", edge.srcPort) || {}).categories);
    }
    return { ...p, categories: categoryMap(...declared) };
  });
}

/** "1,000 records", "2 outputs" or "": a short account of a side for its heading. */
export function sideSummary(ports, artifacts, word) {
  const known = ports.map((p) => (artifacts || {})[p.name]).filter((a) => a && typeof a.records === "number");
  if (ports.length === 1 && known.length === 1) return formatRecords(known[0].records);
  if (ports.length > 1) return `${formatNumber(ports.length)} ${word}`;
  return "";
}

function noteOf(input, titleOf) {
  if (input.fed_by === "edge" && input.from) {
    const conv = input.converted_from ? `, converted from ${input.converted_from} to ${input.format} on the way` : "";
    return `From “${titleOf(input.from.node)}” (its output ${input.from.port})${conv}.`;
  }
  if (input.fed_by === "path") return `The file ${input.path}, given in the pipeline.`;
  if (input.fed_by === "trigger") return `The batch the trigger “${input.trigger || "?"}” fed this run.`;
  return null;
}

/** The preview of a step's inputs in one run; fetches where each came from, then shows each file. */
export class InputsPreview {
  constructor(container, { titleOf = (id) => id, onSummary = () => {} } = {}) {
    this.preview = new OutputPreview(container, { direction: "inputs" });
    this.titleOf = titleOf;
    this.onSummary = onSummary;
    this.key = null;
    this.ticket = 0;
  }

  /** info: {runId, nodeId, ports, status}. */
  async show(info) {
    const key = `${info.runId}|${info.nodeId}|${info.status}|${JSON.stringify(info.ports)}`;
    if (key === this.key && this.preview.state) return;
    this.key = key;
    const ticket = ++this.ticket;
    if (!info.runId || !info.status) {
      this.onSummary("");
      this.preview.show({ ...info, artifacts: {} });
      return;
    }
    let listing = null;
    try {
      listing = await get(`/api/runs/${seg(info.runId)}/nodes/${seg(info.nodeId)}/inputs`);
    } catch {
      listing = { inputs: [] };
    }
    if (ticket !== this.ticket) return;
    const artifacts = {};
    for (const input of listing.inputs || []) {
      artifacts[input.port] = { format: input.format, size: input.size, records: input.records,
                                available: input.available, note: noteOf(input, this.titleOf) };
    }
    this.onSummary(sideSummary(info.ports, artifacts, "inputs"));
    this.preview.show({ ...info, artifacts });
  }
}
