// Connecting two steps: the engine is asked about each new connection before it is made, and a
// wire dropped on a card gives that step a new input. Edits go through the host's commit.
import { post, seg, ApiError, detailLines } from "./api.js";
import { nodesOf, edgesOf, portsOf, withEdge, withNodeFields, cloneDoc } from "./doc.js";
import { toast } from "./toast.js";

export class Connector {
  /** host: {pipelineId, doc(), node(id), titleOf(id), commit(doc), selectEdge(key), undo()}. */
  constructor(host) {
    this.host = host;
  }

  /**
   * Ask the engine whether `candidate` adds a problem the current document
   * does not have. Resolves to the new problems (empty when the edit is fine).
   */
  async newProblems(candidate) {
    const url = `/api/pipelines/${seg(this.host.pipelineId)}/validate`;
    const check = (document) => post(url, { document }).then(() => [], (err) => {
      if (err instanceof ApiError && err.status === 422) return err.details.length ? err.details : [{ message: err.message }];
      throw err;
    });
    const [before, after] = await Promise.all([check(this.host.doc()), check(candidate)]);
    const key = (p) => (typeof p === "string" ? p : `${p.where || ""}|${p.message || ""}`);
    const known = new Set(before.map(key));
    return after.filter((p) => !known.has(key(p)));
  }

  async connect(src, srcPort, dst, dstPort) {
    if (edgesOf(this.host.doc()).some((e) => e.src === src && e.srcPort === srcPort && e.dst === dst && e.dstPort === dstPort)) {
      toast("Those two are already connected.");
      return;
    }
    const ok = await this.commitChecked((doc) => withEdge(doc, src, srcPort, dst, dstPort),
      `Cannot connect ${src}.${srcPort} to ${dst}.${dstPort}`);
    if (ok) this.host.selectEdge(`${src}.${srcPort}->${dst}.${dstPort}`);
  }

  /**
   * Ask the engine about `edit(doc)` before applying it; refuse with the engine's own words.
   * Another edit may land while the engine is asked, so the edit is re-applied to the latest
   * document (`edit` returns null when it no longer applies). Returns whether it was committed.
   */
  async commitChecked(edit, refusal) {
    const base = this.host.doc();
    const candidate = edit(base);
    let problems;
    try {
      problems = await this.newProblems(candidate);
    } catch (err) {
      toast("The connection could not be checked, so it was not made.", { kind: "error", lines: [err.message] });
      return false;
    }
    if (problems.length) {
      toast(refusal, { kind: "error", lines: detailLines({ details: problems }) });
      return false;
    }
    const next = this.host.doc() === base ? candidate : edit(this.host.doc());
    if (!next) return false;
    this.host.commit(next);
    return true;
  }

  /**
   * A wire dropped on a card rather than on one of its inputs: connect to a
   * free input of the same name, or give the card a new input named after
   * the output (same format), connected, as one edit.
   */
  async connectToCard(src, srcPort, dst) {
    const from = this.host.node(src);
    const to = this.host.node(dst);
    if (!from || !to || src === dst) return;
    const out = portsOf(from, "outputs").find((p) => p.name === srcPort);
    if (!out) return;
    const fed = new Set(edgesOf(this.host.doc()).filter((e) => e.dst === dst).map((e) => e.dstPort));
    const same = portsOf(to, "inputs").find((p) => p.name === srcPort && !fed.has(p.name));
    if (same) {
      await this.connect(src, srcPort, dst, same.name);
      return;
    }
    const taken = new Set([...portsOf(to, "inputs"), ...portsOf(to, "outputs")].map((p) => p.name));
    let name = srcPort;
    for (let n = 2; taken.has(name); n += 1) name = `${srcPort}-${n}`;
    const withInput = (doc) => {
      const node = nodesOf(doc).find((n) => n.id === dst);
      if (!node) return null; // deleted while the engine was asked
      const inputs = Array.isArray(node.inputs) ? cloneDoc(node.inputs) : [];
      inputs.push({ name, format: out.format });
      return withEdge(withNodeFields(doc, dst, { inputs }), src, srcPort, dst, name);
    };
    if (!await this.commitChecked(withInput, `Cannot connect ${src}.${srcPort} to “${this.host.titleOf(dst)}”`)) return;
    this.host.selectEdge(`${src}.${srcPort}->${dst}.${name}`);
    toast(`Gave “${this.host.titleOf(dst)}” a new input “${name}” (${out.format}) and connected it.`, {
      actions: [{ label: "Undo", onClick: () => this.host.undo() }],
    });
  }
}
