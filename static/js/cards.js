// The canvas's node cards: an HTML card per step with its ports, status, timing,
// problems and record counts. Functions here draw one card from what they are
// given; the canvas (canvas.js) decides when and with which state.
import { h, formatDuration, formatNumber, textColorFor } from "./dom.js";
import { portsOf } from "./doc.js";
import { CARD_W, DESC_LINE_H, DESC_PAD } from "./geometry.js";
import { describeStatus, explainStatus, NOT_IN_RUN, SINCE } from "./status.js";

/** The card of `item` ({node, pos, metrics}): fills in item.el and the parts painted later. */
export function renderCard(item, runtimes) {
  const { node, pos, metrics } = item;
  const rt = runtimes[node.runtime] || { label: node.runtime || "unknown", color: "#6e7781" };
  const title = node.title || node.id;
  const statusEl = h("span", { class: "status-word" });
  const iconEl = h("span", { class: "status-icon", "aria-hidden": "true" });
  const markEl = h("span", { class: "status-mark" });
  const durationEl = h("span", { class: "card-duration" });
  const inputs = portsOf(node, "inputs");
  const outputs = portsOf(node, "outputs");
  const port = (kind, p) => h("button", {
    type: "button",
    class: `port port-${kind === "inputs" ? "in" : "out"}`,
    "data-kind": kind,
    "data-port": p.name,
    "data-format": p.format,
    title: `${kind === "inputs" ? "Input" : "Output"} “${p.name}”, ${p.format}` +
      (kind === "outputs" ? ". Drag to an input to connect." : ""),
    "aria-label": `${kind === "inputs" ? "input" : "output"} ${p.name} (${p.format}) of ${title}`,
  },
  h("span", { class: "port-dot", "aria-hidden": "true" }),
  h("span", { class: "port-name" }, p.name),
  h("span", { class: "port-format" }, p.format),
  h("span", { class: "port-count", "data-testid": `count-${kind === "inputs" ? "in" : "out"}-${p.name}`, hidden: true }));
  const el = h("div", {
    class: "card",
    role: "listitem",
    tabindex: "0",
    "data-node-id": node.id,
    "data-status": "",
    "data-runtime": node.runtime || "",
    style: { width: `${CARD_W}px`, height: `${metrics.height}px`, transform: `translate(${pos.x}px, ${pos.y}px)` },
  },
  h("div", { class: "card-head", style: { height: `${metrics.headH}px` } },
    h("span", { class: "badge", style: { background: rt.color, color: textColorFor(rt.color) } }, rt.label),
    h("span", { class: "card-title", title, style: { "-webkit-line-clamp": String(metrics.titleLines) } }, title)),
  metrics.descLines
    ? h("div", { class: "card-desc", style: { height: `${metrics.descLines * DESC_LINE_H}px`, "margin-bottom": `${DESC_PAD}px`, "-webkit-line-clamp": String(metrics.descLines) }, title: node.description }, node.description)
    : null,
  metrics.portsH
    ? h("div", { class: "card-ports", style: { height: `${metrics.portsH}px` } },
      inputs.map((p) => port("inputs", p)),
      outputs.map((p) => port("outputs", p)))
    : null);
  const problemEl = h("span", { class: "card-problem", hidden: true, tabindex: "0", role: "note" }, "⚠ problem");
  const changedEl = h("button", {
    type: "button", class: "card-changed", hidden: true, tabindex: "-1",
    title: "Its output is not the same as in the run before: show what changed",
    "aria-label": `What changed since the run before in ${title}?`,
  }, "changed");
  const foot = h("div", { class: "card-foot" },
    h("span", { class: "status" }, iconEl, statusEl, markEl), changedEl, problemEl, durationEl);
  el.append(foot);
  item.el = el;
  item.statusEl = statusEl;
  item.iconEl = iconEl;
  item.markEl = markEl;
  item.durationEl = durationEl;
  item.changedEl = changedEl;
  item.problemEl = problemEl;
  item.title = title;
  item.runtimeLabel = rt.label;
  return el;
}

/** Where a card sits, in canvas coordinates. */
export function cardRect(item) {
  return { x: item.pos.x, y: item.pos.y, w: item.metrics.width, h: item.metrics.height };
}

/** Move a card on screen. */
export function placeCard(item, pos) {
  item.pos = { x: pos.x, y: pos.y };
  item.el.style.transform = `translate(${pos.x}px, ${pos.y}px)`;
}

/**
 * A card's status line. `info`: {status, duration_s, build_s, ...} or nothing; `run`: {shown, neverRan,
 * since ("added"|"removed"|undefined), from ({text, title} or undefined), titleOf(id)}.
 */
export function paintStatus(item, info, run) {
  const status = (info && info.status) || "";
  const since = run.since;
  // No status while a run is on show: the step was left out of that run (it may have run in others).
  let d = !status && run.shown && !run.neverRan.has(item.node.id) ? NOT_IN_RUN : describeStatus(status);
  // added since: not in that run whatever the latest results say; removed since: its status, marked
  if (since === "added") d = { word: NOT_IN_RUN.word, icon: SINCE.added.icon, mark: SINCE.added.short };
  else if (since) d = { ...d, mark: SINCE[since].short };
  item.el.dataset.status = since === "added" ? "" : status;
  item.el.dataset.since = since || "";
  item.markEl.dataset.since = since || "";
  item.iconEl.textContent = d.icon;
  item.statusEl.textContent = d.word;
  item.markEl.textContent = d.mark || "";
  item.markEl.hidden = !d.mark;
  // A cached step did not run this time, so it has no time of its own to show.
  const timed = since !== "added" && info && info.duration_s !== null && info.duration_s !== undefined && !["running", "cached"].includes(status);
  const duration = timed ? formatDuration(info.duration_s) : "";
  // Building the program (a first Go or Rust compile) is not the step's own time: said apart.
  const built = timed && info.build_s ? formatDuration(info.build_s) : "";
  const took = built ? `built in ${built}, ran in ${duration}` : duration;
  // A step that did not succeed says why in a few words; the inspector has the whole story.
  const why = since === "added" ? null : explainStatus(info, run.titleOf);
  const from = since ? null : run.from;
  item.durationEl.textContent = why ? why.short : from ? from.text : built ? `ran ${duration}` : duration;
  item.durationEl.classList.toggle("card-reason", !!why);
  item.durationEl.classList.toggle("card-from", !why && !!from);
  const title = why ? why.long : from ? `${from.title}${took ? ` It took ${took}.` : ""}` : since === "added" ? SINCE.added.long : built ? `Built in ${built}, ran in ${duration}.` : "";
  if (title) item.durationEl.setAttribute("title", title);
  else item.durationEl.removeAttribute("title");
  item.el.setAttribute("aria-label",
    `${item.title}, ${item.runtimeLabel} step, ${d.word.toLowerCase()}${d.mark ? ` (${d.mark})` : ""}` +
    (took ? `, ${built ? took : `took ${took}`}` : "") + (why ? `: ${why.long}` : "") + (from ? `. ${from.title}` : "") +
    (since ? `. ${SINCE[since].long}` : ""));
}

/** A step with a problem (its own, or one of its ports') says so on its card; hover or focus gives the words.
 * `problems`: {nodes: {id: [msg]}, ports: {"id.kind.port": [msg]}}. */
export function paintProblems(item, problems) {
  if (!item.problemEl) return;
  const own = problems.nodes[item.node.id] || [];
  const lines = [...own];
  for (const el of item.el.querySelectorAll(".port")) {
    const msgs = problems.ports[`${item.node.id}.${el.dataset.kind}.${el.dataset.port}`];
    el.classList.toggle("port-problem", !!msgs);
    const base = el.dataset.baseTitle || el.getAttribute("title") || "";
    el.dataset.baseTitle = base;
    el.setAttribute("title", msgs ? `${base}\nProblem: ${msgs.join("; ")}` : base);
    if (msgs) lines.push(...msgs.map((m) => `${el.dataset.kind === "inputs" ? "input" : "output"} “${el.dataset.port}”: ${m}`));
  }
  item.el.classList.toggle("has-problem", lines.length > 0);
  item.problemEl.hidden = !lines.length;
  item.problemEl.textContent = lines.length > 1 ? `⚠ ${lines.length} problems` : "⚠ problem";
  item.problemEl.dataset.tip = lines.join("\n");
  item.problemEl.setAttribute("aria-label", `Problem: ${lines.join("; ")}`);
}

/** Mark a card whose output on `port` differs from the run before (no port: unmarked). */
export function paintChanged(item, port) {
  if (!item.changedEl) return;
  item.changedEl.hidden = !port;
  item.changedEl.dataset.port = port || "";
}

/** The records each port of a card took in or gave out ("1,000 in", "991 out");
 * `countOf(kind, port)` gives the number, or anything else for none. */
export function paintCounts(item, countOf) {
  if (!item.el) return;
  for (const el of item.el.querySelectorAll(".port")) {
    const inbound = el.dataset.kind === "inputs";
    const n = countOf(el.dataset.kind, el.dataset.port);
    const span = el.querySelector(".port-count");
    span.hidden = typeof n !== "number";
    span.textContent = typeof n === "number" ? `${formatNumber(n)} ${inbound ? "in" : "out"}` : "";
  }
}
