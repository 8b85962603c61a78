// The versions menu: every save is kept, and any earlier one can be restored.
import { get, post, seg, detailLines } from "./api.js";
import { h, clear, formatWhen } from "./dom.js";
import { toast } from "./toast.js";

export class Versions {
  constructor(studio) {
    this.studio = studio;
    this.els = studio.els;
  }


  async toggleVersions() {
    const pop = this.els.versions;
    if (!pop.hidden) {
      this.closeVersions();
      return;
    }
    pop.hidden = false;
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
      list.append(h("li", { class: "version-item", "data-version": v.version },
        h("div", { class: "version-main" },
          h("span", { class: "version-number" }, `Version ${v.version}`),
          current ? h("span", { class: "tag" }, "current") : null),
        h("div", { class: "version-meta" }, [formatWhen(v.created_at), v.note].filter(Boolean).join(" · ")),
        current ? null : h("button", {
          type: "button", class: "btn btn-small", "aria-label": `Restore version ${v.version}`,
          onclick: () => this.restore(v.version),
        }, "Restore")));
    }
    clear(pop).append(
      h("div", { class: "popover-title" }, "Versions"),
      h("p", { class: "insp-muted small" }, "Every save is kept. Restoring writes that version to the file as a new version."),
      versions.length ? list : h("div", { class: "empty-note" }, "No versions yet."));
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
