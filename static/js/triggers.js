// The Triggers panel: what starts this pipeline's runs by itself, how each trigger is doing, pause/resume,
// and a form to call an http trigger. Narrow interface: it knows the pipeline id, two elements and how to
// open a run; the studio feeds it `trigger_status` events.
import { get, post, seg, token } from "./api.js";
import { h, clear, put, formatWhen } from "./dom.js";
import { toast } from "./toast.js";

const KIND_WORDS = { kafka: "Kafka", http: "HTTP call", folder: "Folder", schedule: "Schedule" };
const STATE_WORDS = {
  running: "Listening", paused: "Paused", failing: "Having trouble", off: "Off", starting: "Starting",
  stopped: "Stopped",
};

function count(n, word) {
  return `${number(n)} ${word}${n === 1 ? "" : "s"}`;
}

function number(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

export class TriggersPanel {
  constructor({ button, popover, pipelineId, openRun }) {
    this.button = button;
    this.popover = popover;
    this.pipelineId = pipelineId;
    this.openRun = openRun;
    this.triggers = new Map(); // trigger id -> latest status
    this.declared = []; // trigger definitions from the document (id, kind, to, …)
    this.invokeResult = new Map(); // trigger id -> last answer shown in its form
    button.addEventListener("click", () => this.toggle());
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.popover.hidden) this.close();
    });
  }

  /** The triggers the pipeline file declares; the button shows only when there are some. */
  setDeclared(list) {
    this.declared = (Array.isArray(list) ? list : []).filter((t) => t && typeof t.id === "string");
    this.button.hidden = this.declared.length === 0;
    this.paintButton();
    if (!this.popover.hidden) this.render();
  }

  async refresh() {
    try {
      const data = await get(`/api/triggers?pipeline=${encodeURIComponent(this.pipelineId)}`);
      for (const t of data.triggers || []) if (t.trigger_id) this.triggers.set(t.trigger_id, t);
    } catch {
      return;
    }
    this.paintButton();
    if (!this.popover.hidden) this.render();
  }

  /** A `trigger_status` event. */
  update(status) {
    if (!status || status.pipeline_id !== this.pipelineId || !status.trigger_id) return;
    this.triggers.set(status.trigger_id, { ...(this.triggers.get(status.trigger_id) || {}), ...status });
    this.paintButton();
    if (!this.popover.hidden) this.render();
  }

  paintButton() {
    const states = [...this.triggers.values()].map((t) => t.state);
    const trouble = states.includes("failing");
    this.button.dataset.state = trouble ? "failing" : states.includes("running") ? "running" : "idle";
    const n = this.declared.length;
    this.button.textContent = `Triggers · ${n}`;
    this.button.title = trouble ? "A trigger is having trouble: open to see why"
      : "What starts this pipeline by itself (Kafka, HTTP calls, folders, schedules)";
  }

  toggle() {
    if (this.popover.hidden) this.open();
    else this.close();
  }

  open() {
    this.popover.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.render();
    this.refresh();
  }

  close() {
    this.popover.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
  }

  /** Build the panel once per set of declared triggers; status updates repaint only each card's facts. */
  render() {
    const key = JSON.stringify(this.declared);
    if (this.builtFor !== key) {
      this.builtFor = key;
      this.cards = new Map();
      const body = h("div", { class: "trigger-list" });
      for (const def of this.declared) {
        const card = this.card(def);
        this.cards.set(def.id, card);
        body.append(card.el);
      }
      clear(this.popover).append(
        h("div", { class: "popover-head" },
          h("div", { class: "popover-title" }, "Triggers"),
          h("button", { type: "button", class: "icon-button", "aria-label": "Close the triggers panel",
                        onclick: () => this.close() }, "×")),
        h("p", { class: "insp-muted small" },
          "Each trigger starts a run by itself when something happens, and hands it the data as the input it feeds."),
        this.declared.length ? body : h("div", { class: "empty-note" }, "This pipeline has no triggers."));
    }
    for (const def of this.declared) this.paintCard(def, this.triggers.get(def.id) || {});
  }

  card(def) {
    const parts = {
      state: h("span", { class: "trigger-state" }),
      toggle: h("button", { type: "button", class: "btn btn-small" }),
      error: h("p", { class: "trigger-error", role: "status", hidden: true }),
      facts: h("dl", { class: "trigger-facts" }),
      open: h("button", { type: "button", class: "btn btn-quiet btn-small", hidden: true }, "Open its last run"),
    };
    parts.toggle.addEventListener("click", () => this.steer(def.id, parts.toggle.dataset.action));
    parts.open.addEventListener("click", () => parts.open.dataset.run && this.openRun(parts.open.dataset.run));
    const el = h("section", { class: "trigger-card", dataset: { triggerId: def.id, kind: def.kind },
                              "aria-label": `Trigger ${def.id}` },
      h("div", { class: "trigger-head" },
        h("span", { class: "trigger-name" }, def.id),
        h("span", { class: `kind-badge kind-${def.kind}` }, KIND_WORDS[def.kind] || def.kind),
        parts.state, h("span", { class: "topbar-spacer" }), parts.toggle),
      def.description ? h("p", { class: "trigger-desc" }, def.description) : null,
      parts.error, parts.facts, parts.open);
    if (def.kind === "http") el.append(this.invokeForm(def));
    return { el, ...parts };
  }

  paintCard(def, st) {
    const card = this.cards.get(def.id);
    if (!card) return;
    const state = st.state || "starting";
    card.el.dataset.state = state;
    card.state.dataset.state = state;
    clear(card.state).append(h("span", { class: "state-dot", "aria-hidden": "true" }), STATE_WORDS[state] || state);
    const paused = state === "paused";
    card.toggle.hidden = state === "off" || state === "stopped" || state === "starting";
    card.toggle.dataset.action = paused ? "resume" : "pause";
    card.toggle.textContent = paused ? "Resume" : "Pause";
    card.toggle.setAttribute("aria-label", `${paused ? "Resume" : "Pause"} trigger ${def.id}`);
    card.error.hidden = !st.error;
    card.error.textContent = (st.error || "").replace(/`/g, "");
    const facts = [
      ["Feeds", def.to ? `step input ${def.to}` : "no input (runs on its own)"],
      ["Last batch", st.last_batch ? `${count(st.last_batch.size, def.kind === "http" ? "record" : "event")}, ${formatWhen(new Date(st.last_batch.at * 1000).toISOString())}` : "none yet"],
      ["Events per second", st.events_per_s !== undefined ? number(st.events_per_s) : "–"],
      [def.kind === "kafka" ? "Waiting in Kafka (lag)" : "Waiting", number(st.lag)],
      ["Runs started", number(st.runs_started)],
      ["Failed runs", number(st.failures)],
    ];
    if (def.kind === "kafka") facts.push(["Sent to the dead-letter topic", number(st.dead_lettered)]);
    if (def.kind === "schedule" && st.next_tick) facts.push(["Next run", formatWhen(st.next_tick)]);
    put(clear(card.facts), facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    const run = st.last_run_id || (st.last_batch && st.last_batch.run_id);
    card.open.hidden = !run;
    card.open.dataset.run = run || "";
  }

  invokeForm(def) {
    const id = `invoke-${def.id}`;
    const text = h("textarea", { id, class: "input invoke-body", rows: 4, spellcheck: "false",
                                 "aria-label": `Body to send to ${def.id}` });
    text.value = this.lastBody || '["temperature:24.5 sensor_id=alpha ts=2026-11-26T10:00:00Z"]';
    const answer = h("div", { class: "invoke-answer", "aria-live": "polite" });
    const shown = this.invokeResult.get(def.id);
    if (shown) this.paintAnswer(answer, shown);
    const send = h("button", { type: "submit", class: "btn btn-primary btn-small" }, "Send");
    const form = h("form", { class: "invoke-form", "aria-label": `Invoke ${def.id}`,
                             onsubmit: (e) => { e.preventDefault(); this.invoke(def, text.value, answer, send); } },
      h("label", { for: id, class: "field-label" },
        "Call it: paste a JSON body and send it (for an input of lines, a JSON list of strings, one per line)"),
      text, h("div", { class: "invoke-actions" }, send,
        h("span", { class: "insp-muted small" }, `POST /invoke/${this.pipelineId}/${def.id}`)),
      answer);
    return form;
  }

  async invoke(def, body, answerEl, button) {
    this.lastBody = body;
    button.disabled = true;
    answerEl.textContent = "Running…";
    let shown;
    try {
      const resp = await fetch(`/invoke/${seg(this.pipelineId)}/${seg(def.id)}`, {
        method: "POST", body,
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      });
      const text = await resp.text();
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: show as it is */ }
      shown = { status: resp.status, text: pretty, runId: resp.headers.get("X-Pipeloom-Run") };
    } catch {
      shown = { status: 0, text: "The Pipeloom server cannot be reached.", runId: null };
    }
    button.disabled = false;
    this.invokeResult.set(def.id, shown);
    this.paintAnswer(answerEl, shown);
  }

  paintAnswer(el, shown) {
    const ok = shown.status >= 200 && shown.status < 300;
    clear(el).append(
      h("div", { class: `invoke-status ${ok ? "ok" : "bad"}`, "data-status": shown.status },
        ok ? `Answered ${shown.status}` : `Refused or failed: ${shown.status || "no answer"}`,
        shown.runId ? h("button", { type: "button", class: "btn btn-quiet btn-small",
                                     onclick: () => this.openRun(shown.runId) }, "Open the run") : null),
      h("pre", { class: "invoke-output" }, shown.text.length > 20000 ? `${shown.text.slice(0, 20000)}\n…` : shown.text));
  }

  async steer(triggerId, action) {
    try {
      const st = await post(`/api/pipelines/${seg(this.pipelineId)}/triggers/${seg(triggerId)}/${action}`, {});
      this.update({ pipeline_id: this.pipelineId, ...st });
    } catch (err) {
      toast(`Could not ${action} trigger ${triggerId}.`, { kind: "error", lines: [err.message] });
    }
  }
}
