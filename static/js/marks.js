// What the canvas marks beyond statuses: a past run drawn as it ran (what was added or removed
// since), and the document's problems on the step, port or connection they concern.
import { nodesOf, edgesOf } from "./doc.js";

/**
 * The graph of a run drawn from the document it ran (`ran`), with today's steps and connections
 * that were not in it: {doc, since: {nodes: {id: "added"|"removed"}, edges: {key: ...}}, differs}.
 * Steps keep today's place on the canvas, so the picture does not jump.
 */
export function asRan(today, ran) {
  const now = new Map(nodesOf(today).map((n) => [n.id, n]));
  const then = new Set(nodesOf(ran).map((n) => n.id));
  const since = { nodes: {}, edges: {} };
  const nodes = [];
  for (const n of nodesOf(ran)) {
    const cur = now.get(n.id);
    nodes.push(cur && cur.position ? { ...n, position: cur.position } : n);
    if (!cur) since.nodes[n.id] = "removed";
  }
  for (const n of nodesOf(today)) {
    if (then.has(n.id)) continue;
    nodes.push(n);
    since.nodes[n.id] = "added";
  }
  const ranKeys = new Set(edgesOf(ran).map((e) => e.key));
  const nowKeys = new Set(edgesOf(today).map((e) => e.key));
  const edges = [...(Array.isArray(ran.edges) ? ran.edges : [])];
  for (const e of edgesOf(ran)) if (!nowKeys.has(e.key)) since.edges[e.key] = "removed";
  for (const e of edgesOf(today)) {
    if (ranKeys.has(e.key)) continue;
    edges.push({ from: `${e.src}.${e.srcPort}`, to: `${e.dst}.${e.dstPort}` });
    since.edges[e.key] = "added";
  }
  const differs = Object.keys(since.nodes).length + Object.keys(since.edges).length > 0;
  return { doc: { ...today, nodes, edges }, since, differs };
}

/** Problems (from the server: {where, message, node?, port?, port_kind?, edge?}) keyed for the canvas. */
export function problemMarks(problems) {
  const marks = { nodes: {}, ports: {}, edges: {} };
  const add = (map, key, message) => (map[key] = map[key] || []).push(message);
  for (const p of problems || []) {
    if (!p || typeof p !== "object") continue;
    const message = String(p.message || "");
    if (p.edge) add(marks.edges, p.edge, message);
    else if (p.node && p.port) add(marks.ports, `${p.node}.${p.port_kind || "inputs"}.${p.port}`, message);
    else if (p.node) add(marks.nodes, p.node, message);
  }
  return marks;
}

/** Why Run cannot start, in one sentence for its tooltip; "" when it can. */
export function runBlocked(problems, { unsaved = false } = {}) {
  const list = (problems || []).filter(Boolean);
  if (!list.length) return "";
  const first = list[0];
  const where = typeof first === "string" ? "" : first.where ? `${first.where}: ` : "";
  const text = typeof first === "string" ? first : first.message;
  const more = list.length > 1 ? ` (and ${list.length - 1} more)` : "";
  return `Run is off until this is fixed${unsaved ? " (the change is not saved yet)" : ""}: ${where}${text}${more}`;
}
