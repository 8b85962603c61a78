// The palette and the "Add a step" dialog: new steps by runtime, each with a starter program.
import { post, seg, detailLines } from "./api.js";
import { h, clear, textColorFor } from "./dom.js";
import { nodesOf, withNode } from "./doc.js";
import { cardMetrics, CARD_W } from "./geometry.js";
import { cardRects, freeSpot, spotAfter } from "./layout.js";
import { toast } from "./toast.js";

const RUNTIME_HINTS = {
  python: "A Python script",
  node: "A JavaScript program",
  go: "A Go program",
  rust: "A Rust program",
  shell: "A shell script",
  command: "Any command line",
};

export class Palette {
  constructor(studio) {
    this.studio = studio;
    this.els = studio.els;
  }


  buildPalette() {
    const list = this.els.paletteList;
    clear(list);
    const names = Object.keys(this.studio.runtimes);
    if (!names.length) list.append(h("li", { class: "insp-muted" }, "No runtimes available."));
    for (const name of names) {
      const rt = this.studio.runtimes[name];
      const item = h("button", {
        type: "button", class: "palette-item", draggable: "true", "data-runtime": name,
        "aria-label": `Add a ${rt.label} step`,
        onclick: () => this.openAddDialog(name, null),
        ondragstart: (e) => {
          e.dataTransfer.setData("application/x-pipeloom-runtime", name);
          e.dataTransfer.effectAllowed = "copy";
        },
      },
      h("span", { class: "badge", style: { background: rt.color, color: textColorFor(rt.color) } }, rt.label),
      h("span", { class: "palette-item-hint" }, RUNTIME_HINTS[name] || rt.label),
      rt.available === false ? h("span", { class: "palette-item-warn" }, `needs ${rt.tool || "its toolchain"}; not installed`) : null);
      list.append(h("li", {}, item));
    }
    const setCollapsed = (collapsed) => {
      this.els.palette.classList.toggle("collapsed", collapsed);
      this.els.paletteToggle.setAttribute("aria-expanded", collapsed ? "false" : "true");
      this.els.paletteToggle.textContent = collapsed ? "»" : "«";
      const label = collapsed ? "Show the palette" : "Hide the palette";
      this.els.paletteToggle.setAttribute("aria-label", label);
      this.els.paletteToggle.title = label;
    };
    this.setPaletteCollapsed = setCollapsed;
    this.els.paletteToggle.addEventListener("click", () => {
      const collapsed = !this.els.palette.classList.contains("collapsed");
      setCollapsed(collapsed);
      try { localStorage.setItem("pipeloom.palette", collapsed ? "collapsed" : "open"); } catch { /* private mode */ }
    });
  }

  /** Open the palette for an empty pipeline; otherwise keep it narrow (unless the user chose). */
  initialPalette() {
    let saved = null;
    try { saved = localStorage.getItem("pipeloom.palette"); } catch { /* private mode */ }
    const collapsed = saved ? saved === "collapsed" : nodesOf(this.studio.doc).length > 0;
    this.setPaletteCollapsed(collapsed);
  }

  openAddDialog(runtime, point) {
    const rt = this.studio.runtimes[runtime] || { label: runtime };
    const dialog = this.els.dialog;
    const idInput = document.getElementById("add-node-id");
    const titleInput = document.getElementById("add-node-title-input");
    const error = document.getElementById("add-node-error");
    document.getElementById("add-node-lead").textContent =
      rt.needs_source === false
        ? `A ${rt.label} step runs a command line you give it.`
        : `Pipeloom creates a starter ${rt.label} file${rt.source_ext ? ` (${rt.source_ext})` : ""} next to the pipeline; open it in your editor to make it yours.`;
    const taken = new Set(nodesOf(this.studio.doc).map((n) => n.id));
    let n = 1;
    let suggestion = `${runtime}-step`;
    while (taken.has(suggestion)) suggestion = `${runtime}-step-${++n}`;
    idInput.value = suggestion;
    titleInput.value = "";
    error.textContent = "";
    this.pendingAdd = { runtime, point };
    if (!this.dialogBound) {
      this.dialogBound = true;
      document.getElementById("add-node-close").addEventListener("click", () => dialog.close());
      document.getElementById("add-node-form").addEventListener("submit", (e) => {
        e.preventDefault();
        this.submitAdd();
      });
    }
    dialog.showModal();
    idInput.select();
  }

  async submitAdd() {
    const idInput = document.getElementById("add-node-id");
    const titleInput = document.getElementById("add-node-title-input");
    const error = document.getElementById("add-node-error");
    const submit = document.getElementById("add-node-submit");
    const id = idInput.value.trim();
    if (!/^[a-z0-9_\-]+$/.test(id)) {
      error.textContent = "Use lower-case letters, digits, - and _ only.";
      idInput.focus();
      return;
    }
    if (this.studio.node(id)) {
      error.textContent = `There is already a step called “${id}”.`;
      idInput.focus();
      return;
    }
    const { runtime, point } = this.pendingAdd;
    const title = titleInput.value.trim();
    submit.disabled = true;
    let created;
    try {
      created = await post(`/api/pipelines/${seg(this.studio.pipelineId)}/nodes`, { runtime, id, ...(title ? { title } : {}) });
    } catch (err) {
      error.textContent = [err.message, ...detailLines(err)].join(" ");
      return;
    } finally {
      submit.disabled = false;
    }
    this.els.dialog.close();
    const node = { ...(created.node || { id, runtime }) };
    if (title && !node.title) node.title = title;
    const at = this.placeFor(node, point);
    node.position = { x: Math.round(at.x), y: Math.round(at.y) };
    this.studio.commit(withNode(this.studio.doc, node));
    this.studio.canvas.select([node.id], { focus: true });
    if (created.source_path) toast(`Added “${node.id}”. Its program is in ${created.source_path}.`);
  }

  /**
   * Where a new card goes, in space no card covers (measured with the card's
   * real size): where it was dropped, else after the selected step (to its
   * right, where data flows next), else near the middle of the view.
   */
  placeFor(node, point) {
    const canvas = this.studio.canvas;
    const size = { w: CARD_W, h: cardMetrics(node).height };
    const rects = cardRects(this.studio.doc);
    if (point) return freeSpot(rects, size, point);
    const selected = this.studio.selection.nodes.length === 1 ? canvas.items.get(this.studio.selection.nodes[0]) : null;
    if (selected) return freeSpot(rects, size, spotAfter(selected.pos), { rightward: true });
    const c = canvas.centre();
    return freeSpot(rects, size, { x: c.x - size.w / 2, y: c.y - size.h / 2 });
  }
}
