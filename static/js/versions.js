// The versions menu: each save is kept (a burst of edits as one version), each version says in plain words
// what restoring it would change (or what its save changed), and any earlier one can be restored.
import { get, post, seg, detailLines } from "./api.js";
import { h, clear, formatWhen } from "./dom.js";
import { toast } from "./toast.js";

const AGAINST = [
  { against: "current", word: "What restoring it changes", hint: "Compared with the version you have now" },
  { against: "previous", word: "What this save changed", hint: "Compared with the version before it" },
];

export class Versions {
  constructor(studio) {
    this.studio = studio;
    this.els = studio.els;
    this.open = null; // the version whose changes are shown
  }

  async toggleVersions() {
    const pop = this.els.versions;
    if (!pop.hidden) {
      this.closeVersions();
      return;
    }
    pop.hidden = false;
    this.open = null;
    this.els.saveState.setAttribute("aria-expanded", "true");
    clear(pop).append(h("div", { class: "popover-title" }, "Versions"), h("div", { class: "empty-note" }, "Loading…"));
    let versions;
    try {
      versions = await get(`/api/pipelines/${seg(this.studio.pipelineId)}/versions`);
    } catch (err) {
      clear(pop).append(h("div", { class: "empty-note error-note" }, err.message));
      return;
    }
    const list = h("ol", { class: "version-list" });
    for (const v of versions) {
      const current = v.version === this.studio.version;
      const item = h("li", { class: "version-item", "data-version": v.version },
        h("div", { class: "version-main" },
          h("span", { class: "version-number" }, `Version ${v.version}`),
          current ? h("span", { class: "tag" }, "current") : null),
        h("div", { class: "version-meta" }, [formatWhen(v.created_at), v.note].filter(Boolean).join(" · ")));
      const detail = h("div", { class: "version-detail", hidden: true });
      const show = h("button", {
        type: "button", class: "btn btn-small version-show", "aria-expanded": "false",
        "aria-label": `Show the changes of version ${v.version}`,
        onclick: () => this.toggle(v, item, show, detail, current),
      }, "Changes");
      item.append(show, detail);
      list.append(item);
    }
    clear(pop).append(
      h("div", { class: "popover-title" }, "Versions"),
      h("p", { class: "insp-muted small" }, "Every save is kept; a burst of edits makes one version. Open one to see what it changes before restoring it."),
      versions.length ? list : h("div", { class: "empty-note" }, "No versions yet."));
  }

  toggle(v, item, button, detail, current) {
    const opening = detail.hidden;
    for (const other of this.els.versions.querySelectorAll(".version-item.open")) {
      other.classList.remove("open");
      other.querySelector(".version-detail").hidden = true;
      other.querySelector(".version-show").setAttribute("aria-expanded", "false");
    }
    if (!opening) return;
    item.classList.add("open");
    detail.hidden = false;
    button.setAttribute("aria-expanded", "true");
    this.showChanges(v, detail, current ? "previous" : "current", current);
  }

  async showChanges(v, detail, against, current) {
    const choices = h("div", { class: "version-against", role: "group", "aria-label": "Compare with" },
      AGAINST.filter((a) => !(current && a.against === "current")).map((a) => h("button", {
        type: "button", class: "btn btn-small", "aria-pressed": String(a.against === against), title: a.hint,
        onclick: () => this.showChanges(v, detail, a.against, current),
      }, a.word)));
    const body = h("div", { class: "version-diff", "data-testid": "version-diff", "aria-live": "polite" },
      h("p", { class: "empty-note" }, "Comparing…"));
    const restore = current ? null : h("button", {
      type: "button", class: "btn btn-primary btn-small version-restore",
      "aria-label": `Restore version ${v.version}`, onclick: () => this.restore(v.version),
    }, "Restore this version");
    clear(detail).append(choices, body, restore || h("p", { class: "insp-muted small" }, "This is the version you have now."));
    let d;
    try {
      d = await get(`/api/pipelines/${seg(this.studio.pipelineId)}/versions/${v.version}/diff?against=${against}`);
    } catch (err) {
      clear(body).append(h("p", { class: "empty-note error-note" }, `Cannot compare: ${err.message}`));
      return;
    }
    body.dataset.against = against;
    body.dataset.changes = String(d.changes.length);
    const lead = against === "current"
      ? (d.same ? "Restoring it would change nothing: it is the same as now." : `What restoring it would do: ${d.summary}.`)
      : (d.from === null ? "The first version: everything was new." : d.same ? "This save changed nothing." : `Compared with version ${d.from}: ${d.summary}.`);
    clear(body).append(h("p", { class: "version-summary" }, d.comparable === false ? d.summary : capital(lead)),
      d.changes.length ? h("ul", { class: "version-changes" }, d.changes.map((c) => h("li", {
        class: `change-${c.change}`, "data-what": c.what, "data-change": c.change, "data-id": c.id || "",
      }, c.text))) : null);
  }

  closeVersions() {
    this.els.versions.hidden = true;
    this.els.saveState.setAttribute("aria-expanded", "false");
  }

  async restore(number) {
    this.closeVersions();
    await this.studio.flushSave().catch(() => {});
    let data;
    try {
      data = await post(`/api/pipelines/${seg(this.studio.pipelineId)}/versions/${number}/restore`, {});
    } catch (err) {
      toast(`Could not restore version ${number}.`, { kind: "error", lines: [err.message, ...detailLines(err)] });
      return;
    }
    const before = this.studio.doc;
    const wasBroken = this.studio.broken;
    await this.studio.applyPipeline(data);
    // A file that did not parse has nothing to go back to: undo must not save an empty pipeline over it.
    if (!wasBroken && !this.studio.broken) this.studio.undoStack.push(before);
    this.studio.updateUndo();
    this.studio.inspector.forgetSources();
    this.studio.inspector.refresh();
    toast(`Restored version ${number}; it is now version ${data.version}.`);
  }
}

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
