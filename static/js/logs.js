// The log drawer: the selected step's log (or every step's), live from
// Socket.IO while a run is on, and the full log paged from the server.
import { get, seg, ApiError } from "./api.js";
import { h, clear, formatNumber } from "./dom.js";
import { LogView } from "./logview.js";
import { cachedFrom } from "./status.js";

const LIVE_CAP = 5000;
const FULL_CAP = 200000;
const PAGE = 1000;

/** The server's note that lines were dropped from the live stream (never from the file). */
function isDropMarker(line) {
  return line.stream === "meta" && /not shown live/.test(line.text || "");
}

export class LogDrawer {
  constructor(el, studio) {
    this.el = el;
    this.studio = studio;
    this.buffers = new Map(); // node id -> {lines, dropped}
    this.all = { lines: [], dropped: 0 };
    this.scope = null; // node id, or null for every step
    this.full = null; // {nodeId, next, done} while reading the full log
    this.build();
  }

  build() {
    clear(this.el);
    this.title = h("h2", { class: "drawer-title", id: "log-title" }, "Log");
    this.scopeButton = h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => this.toggleScope() }, "Show every step");
    this.fullButton = h("button", { type: "button", class: "btn btn-small btn-quiet", onclick: () => this.openFull() }, "Open the full log");
    this.collapseButton = h("button", {
      type: "button", class: "btn btn-small btn-quiet", "aria-expanded": "true", "aria-controls": "log-body",
      onclick: () => this.setOpen(this.el.classList.contains("collapsed")),
    }, "Hide");
    this.notice = h("div", { class: "drawer-notice", hidden: true });
    this.body = h("div", { class: "log", id: "log-body", "data-testid": "log", tabindex: "0", role: "log", "aria-labelledby": "log-title" });
    this.more = h("div", { class: "drawer-more", hidden: true });
    this.el.append(
      h("div", { class: "drawer-head" }, this.title, h("div", { class: "drawer-tools" }, this.scopeButton, this.fullButton, this.collapseButton)),
      this.notice, this.body, this.more);
    this.view = new LogView(this.body, { cap: LIVE_CAP });
    this.render();
  }

  setOpen(open) {
    this.el.classList.toggle("collapsed", !open);
    this.collapseButton.textContent = open ? "Hide" : "Show";
    this.collapseButton.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) this.view.schedule();
  }

  /** Forget every line (a different run is shown). */
  reset() {
    this.buffers.clear();
    this.all = { lines: [], dropped: 0 };
    this.full = null;
    this.render();
  }

  /** Lines from a snapshot: {node id: [lines]}. */
  seed(logs) {
    for (const [nodeId, lines] of Object.entries(logs || {})) {
      if (!Array.isArray(lines) || !lines.length) continue;
      const buf = this.buffer(nodeId);
      buf.lines = lines.slice(-LIVE_CAP);
      buf.seeded = true;
      for (const line of lines) this.all.lines.push({ ...line, node: nodeId });
    }
    this.trim(this.all);
    this.render();
  }

  buffer(nodeId) {
    let buf = this.buffers.get(nodeId);
    if (!buf) {
      buf = { lines: [], dropped: 0 };
      this.buffers.set(nodeId, buf);
    }
    return buf;
  }

  trim(buf) {
    const over = buf.lines.length - LIVE_CAP;
    if (over > LIVE_CAP * 0.2) {
      buf.lines.splice(0, over);
      buf.dropped += over;
    }
  }

  /** New live lines for one node. */
  push(nodeId, lines) {
    if (!lines || !lines.length) return;
    const buf = this.buffer(nodeId);
    for (const line of lines) buf.lines.push(line);
    this.trim(buf);
    const tagged = lines.map((line) => ({ ...line, node: nodeId }));
    for (const line of tagged) this.all.lines.push(line);
    this.trim(this.all);
    if (this.full && this.full.other && this.full.nodeId === nodeId) {
      // the step runs again: its live log replaces the one from an earlier run
      this.full = null;
      this.render();
      return;
    }
    if (this.full) return;
    if (this.scope === nodeId) this.view.append(lines);
    else if (this.scope === null) this.view.append(tagged);
    if (lines.some(isDropMarker)) this.renderNotice();
  }

  /** Follow the selection: show one step's log, or every step's when null. */
  setScope(nodeId) {
    if (this.scope === nodeId && !this.full) return;
    this.scope = nodeId;
    this.full = null;
    this.render();
  }

  toggleScope() {
    if (this.scope === null && this.lastNode) this.setScope(this.lastNode);
    else this.setScope(null);
  }

  render() {
    const nodeId = this.scope;
    if (nodeId) this.lastNode = nodeId;
    const node = nodeId ? this.studio.node(nodeId) : null;
    const run = this.studio.run;
    this.title.textContent = nodeId ? `Log — ${(node && node.title) || nodeId}` : "Log — every step";
    this.scopeButton.textContent = nodeId ? "Show every step" : "Show the selected step";
    this.scopeButton.hidden = !nodeId && !this.lastNode;
    this.fullButton.hidden = !nodeId || !run || !run.run_id;
    this.more.hidden = true;
    this.view.cap = LIVE_CAP;
    this.view.showNode = !nodeId;
    if (!run || !run.run_id) {
      this.view.setLines([]);
      this.view.setPlaceholder("Run the pipeline to see its log here.");
      this.renderNotice();
      return;
    }
    if (nodeId) {
      const buf = this.buffers.get(nodeId);
      const info = run.nodes ? run.nodes[nodeId] : null;
      const cached = cachedFrom(info);
      // a result from another run (the latest results, a reused step): that run's log, said so
      const other = info && info.result_run && info.result_run !== run.run_id ? info.result_run : null;
      if (buf && buf.lines.length) {
        this.view.setLines(buf.lines, { dropped: buf.dropped });
      } else if (other) {
        this.view.setLines([]);
        this.view.setPlaceholder("Loading the log…");
        this.loadStored(nodeId, other);
      } else if (cached) {
        // No program ran, so this run has no log of it; the run that made the outputs has.
        this.view.setLines([]);
        this.view.setPlaceholder(cached.text, cached.runId
          ? { label: `Open its log from run ${cached.runId}`, onClick: () => this.openFull({ runId: cached.runId }) }
          : null);
      } else if (info && info.status && info.status !== "pending") {
        this.view.setLines([]);
        this.view.setPlaceholder("Loading the log…");
        this.loadStored(nodeId);
      } else {
        this.view.setLines([]);
        this.view.setPlaceholder(info ? "This step has not started yet." : "This step was not part of the run shown.");
      }
    } else {
      this.view.setLines(this.all.lines, { dropped: this.all.dropped });
      this.view.setPlaceholder(run.live ? "Waiting for output…" : "Choose a step on the canvas to read its log.");
    }
    this.renderNotice();
  }

  renderNotice() {
    const buf = this.scope ? this.buffers.get(this.scope) : this.all;
    const dropped = (buf && buf.dropped) || 0;
    const marker = buf && buf.lines.some(isDropMarker);
    if (this.full) {
      this.notice.hidden = false;
      const count = this.full.count;
      const what = this.full.other ? `The log from run ${this.full.other}, where this step last ran` : "Full log, read from the server";
      const lines = count ? ` (${formatNumber(count)} ${count === 1 ? "line" : "lines"}${this.full.done ? "" : " so far"})` : "";
      clear(this.notice).append(`${what}${lines}. `,
        h("button", { type: "button", class: "link-button", onclick: () => this.setScope(this.scope) }, "Back to the live view"));
      return;
    }
    if (!dropped && !marker) {
      this.notice.hidden = true;
      return;
    }
    this.notice.hidden = false;
    clear(this.notice).append(
      dropped ? `Showing the last ${formatNumber(LIVE_CAP)} lines. ` : "Some lines were not shown live. ",
      this.scope ? h("button", { type: "button", class: "link-button", onclick: () => this.openFull() }, "Open the full log") : "Choose a step to open its full log.");
  }

  /** Load a finished step's log from the server (first page): from the run shown, or `from` another run. */
  async loadStored(nodeId, from = null) {
    const shownRun = this.studio.run.run_id;
    const runId = from || shownRun;
    try {
      const page = await get(`/api/runs/${seg(runId)}/nodes/${seg(nodeId)}/logs?offset=0&limit=${PAGE}`);
      if (this.scope !== nodeId || this.studio.run.run_id !== shownRun || this.full) return;
      const buf = this.buffer(nodeId);
      // live lines of the run on show arrived meanwhile: the step runs again, and its own log wins
      if (buf.lines.length) return;
      const lines = page.lines || [];
      this.view.setLines(lines, { follow: false });
      this.view.jumpToStart();
      this.view.setPlaceholder("This step printed nothing.");
      if (lines.length >= PAGE || from) {
        this.full = { nodeId, runId, other: from, next: page.next, count: lines.length, done: lines.length < PAGE };
        this.showMore();
        this.renderNotice();
      }
    } catch (err) {
      if (this.scope !== nodeId) return;
      this.view.setPlaceholder(err instanceof ApiError && err.status === 404 ? "This step has no log in this run." : `The log could not be read: ${err.message}`);
    }
  }

  /** Read the whole log of the selected step from the server, a page at a time (from `runId`, or the run shown). */
  async openFull({ runId = null } = {}) {
    const nodeId = this.scope;
    const run = this.studio.run;
    if (!runId && run && run.nodes) {
      const info = run.nodes[nodeId];
      const cached = cachedFrom(info);
      if (info && info.result_run && info.result_run !== run.run_id) runId = info.result_run;
      else if (cached && cached.runId) runId = cached.runId;
    }
    if (!nodeId || ((!run || !run.run_id) && !runId)) return;
    const other = runId && (!run || runId !== run.run_id) ? runId : null;
    this.full = { nodeId, runId: other || run.run_id, other, next: 0, count: 0, done: false };
    this.view.setLines([], { follow: false });
    this.view.setPlaceholder("Loading the full log…");
    this.renderNotice();
    await this.loadMore();
    this.view.jumpToStart();
  }

  async loadMore() {
    const full = this.full;
    if (!full || full.done || full.loading) return;
    let page;
    full.loading = true;
    try {
      page = await get(`/api/runs/${seg(full.runId)}/nodes/${seg(full.nodeId)}/logs?offset=${full.next}&limit=${PAGE}`);
    } catch (err) {
      this.view.setPlaceholder(`The log could not be read: ${err.message}`);
      return;
    } finally {
      full.loading = false;
    }
    if (this.full !== full) return;
    const lines = page.lines || [];
    this.view.cap = FULL_CAP;
    this.view.append(lines);
    full.count += lines.length;
    full.done = !lines.length || page.next === null || page.next === undefined || page.next <= full.next;
    // A short page is the end of a log that is no longer growing.
    const growing = !full.other && this.studio.run && this.studio.run.live;
    if (lines.length < PAGE && !growing) full.done = true;
    full.next = page.next;
    if (full.count >= FULL_CAP) full.done = true;
    this.view.setPlaceholder("This step printed nothing.");
    this.showMore();
    this.renderNotice();
  }

  showMore() {
    const full = this.full;
    clear(this.more);
    if (!full) {
      this.more.hidden = true;
      return;
    }
    this.more.hidden = false;
    if (full.done) {
      this.more.append(h("span", { class: "insp-muted" }, full.count >= FULL_CAP ? `Stopped after ${formatNumber(FULL_CAP)} lines; download the file for the rest.` : "End of the log."));
    } else {
      this.more.append(h("button", { type: "button", class: "btn btn-small", onclick: () => this.loadMore() }, "Load more lines"));
    }
  }
}
