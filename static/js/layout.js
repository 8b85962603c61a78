// Automatic layout with dagre: left-to-right layers, in the reading direction of the data.
import { nodesOf, edgesOf } from "./doc.js";
import { cardMetrics } from "./geometry.js";

let dagrePromise = null;

function loadDagre() {
  if (!dagrePromise) dagrePromise = import("/static/vendor/dagre.esm.js").then((m) => m.default || m);
  return dagrePromise;
}

/** Positions {id: {x, y}} for every node, laid out left to right. */
export async function autoLayout(doc) {
  const dagre = await loadDagre();
  const g = new dagre.graphlib.Graph();
  // Between two columns sits an edge label ("json" over "1,204 records", about 110px wide)
  // with clear space on both sides; between two cards of a column, room for a detour.
  g.setGraph({ rankdir: "LR", ranksep: 160, nodesep: 56, edgesep: 28, marginx: 0, marginy: 0 });
  g.setDefaultEdgeLabel(() => ({}));
  const nodes = nodesOf(doc);
  for (const node of nodes) {
    const m = cardMetrics(node);
    g.setNode(node.id, { width: m.width, height: m.height });
  }
  for (const e of edgesOf(doc)) {
    if (g.hasNode(e.src) && g.hasNode(e.dst)) g.setEdge(e.src, e.dst);
  }
  dagre.layout(g);
  const out = {};
  for (const node of nodes) {
    const n = g.node(node.id);
    out[node.id] = { x: Math.round((n.x - n.width / 2) / 8) * 8, y: Math.round((n.y - n.height / 2) / 8) * 8 };
  }
  return out;
}
