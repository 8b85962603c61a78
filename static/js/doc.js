// The pipeline document as the studio edits it. Every edit returns a new
// document so the undo history can keep the old one untouched.

/** A deep copy of a document. */
export function cloneDoc(doc) {
  return structuredClone(doc);
}

/** The node list (always an array). */
export function nodesOf(doc) {
  return Array.isArray(doc && doc.nodes) ? doc.nodes.filter((n) => n && typeof n === "object") : [];
}

/** Ports of a node as [{name, format, file}], whatever shorthand the file uses. */
export function portsOf(node, kind) {
  const raw = Array.isArray(node && node[kind]) ? node[kind] : [];
  const ports = [];
  for (const p of raw) {
    if (typeof p === "string") ports.push({ name: p, format: "json", file: null });
    else if (p && typeof p.name === "string") ports.push({ name: p.name, format: p.format || "json", file: p.file || null, path: p.path || null });
  }
  return ports;
}

/** "a.out" -> {node: "a", port: "out"}. */
export function splitEnd(text) {
  const s = String(text || "");
  const i = s.indexOf(".");
  return i < 0 ? { node: s, port: "" } : { node: s.slice(0, i), port: s.slice(i + 1) };
}

/** The key every edge is known by: "A.port->B.port". */
export function edgeKey(srcNode, srcPort, dstNode, dstPort) {
  return `${srcNode}.${srcPort}->${dstNode}.${dstPort}`;
}

/** Edges as [{key, src, srcPort, dst, dstPort}]. */
export function edgesOf(doc) {
  const raw = Array.isArray(doc && doc.edges) ? doc.edges : [];
  const edges = [];
  for (const e of raw) {
    if (!e || typeof e.from !== "string" || typeof e.to !== "string") continue;
    const a = splitEnd(e.from);
    const b = splitEnd(e.to);
    edges.push({ key: edgeKey(a.node, a.port, b.node, b.port), src: a.node, srcPort: a.port, dst: b.node, dstPort: b.port });
  }
  return edges;
}

/** A copy with one more edge. */
export function withEdge(doc, src, srcPort, dst, dstPort) {
  const next = cloneDoc(doc);
  if (!Array.isArray(next.edges)) next.edges = [];
  next.edges.push({ from: `${src}.${srcPort}`, to: `${dst}.${dstPort}` });
  return next;
}

/** A copy without the edges whose keys are given. */
export function withoutEdges(doc, keys) {
  const drop = new Set(keys);
  const next = cloneDoc(doc);
  next.edges = (next.edges || []).filter((e) => {
    if (!e || typeof e.from !== "string" || typeof e.to !== "string") return true;
    const a = splitEnd(e.from);
    const b = splitEnd(e.to);
    return !drop.has(edgeKey(a.node, a.port, b.node, b.port));
  });
  return next;
}

/** A copy without the given nodes and every edge that touches them. */
export function withoutNodes(doc, ids) {
  const drop = new Set(ids);
  const next = cloneDoc(doc);
  next.nodes = (next.nodes || []).filter((n) => !(n && drop.has(n.id)));
  next.edges = (next.edges || []).filter((e) => {
    if (!e || typeof e.from !== "string" || typeof e.to !== "string") return true;
    return !drop.has(splitEnd(e.from).node) && !drop.has(splitEnd(e.to).node);
  });
  return next;
}

/** A copy with one more node. */
export function withNode(doc, node) {
  const next = cloneDoc(doc);
  if (!Array.isArray(next.nodes)) next.nodes = [];
  next.nodes.push(node);
  if (!Array.isArray(next.edges)) next.edges = [];
  return next;
}

/** A copy with new positions: {id: {x, y}} (rounded to keep file diffs small). */
export function withPositions(doc, positions) {
  const next = cloneDoc(doc);
  for (const n of nodesOf(next)) {
    const p = positions[n.id];
    if (p) n.position = { x: Math.round(p.x), y: Math.round(p.y) };
  }
  return next;
}

/** A copy with some fields of one node replaced; a value of undefined or "" removes the field. */
export function withNodeFields(doc, id, fields) {
  const next = cloneDoc(doc);
  const node = nodesOf(next).find((n) => n.id === id);
  if (!node) return next;
  for (const [key, value] of Object.entries(fields)) {
    const empty = value === undefined || value === "" ||
      (key === "params" && value && typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length);
    if (empty) delete node[key];
    else node[key] = value;
  }
  return next;
}

/** The sticky notes (always an array of {id, text, position?}). */
export function notesOf(doc) {
  return Array.isArray(doc && doc.notes) ? doc.notes.filter((n) => n && typeof n === "object" && typeof n.id === "string") : [];
}

/** A copy with one more note. */
export function withNote(doc, note) {
  const next = cloneDoc(doc);
  if (!Array.isArray(next.notes)) next.notes = [];
  next.notes.push(note);
  return next;
}

/** A copy without the note `id` (and without `notes` once the last one goes, so the file stays as it was). */
export function withoutNote(doc, id) {
  const next = cloneDoc(doc);
  next.notes = (next.notes || []).filter((n) => !(n && n.id === id));
  if (!next.notes.length) delete next.notes;
  return next;
}

/** A copy with some fields of note `id` replaced (text, position). */
export function withNoteFields(doc, id, fields) {
  const next = cloneDoc(doc);
  const note = notesOf(next).find((n) => n.id === id);
  if (note) Object.assign(note, fields);
  return next;
}

/** A copy with new note positions: {id: {x, y}} (rounded, as step positions are). */
export function withNotePositions(doc, positions) {
  const next = cloneDoc(doc);
  for (const n of notesOf(next)) {
    const p = positions[n.id];
    if (p) n.position = { x: Math.round(p.x), y: Math.round(p.y) };
  }
  return next;
}
