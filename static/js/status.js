// Words and icons for every status, so colour is never the only signal. The status groups
// come from the engine (events.py), handed to the page with it.
import { formatDuration } from "./dom.js";

function pageVocabulary() {
  const el = typeof document !== "undefined" && document.getElementById("pipeloom-vocabulary");
  try {
    return el ? JSON.parse(el.textContent) : null;
  } catch {
    return null;
  }
}

/** The engine's status groups: done_ok, failed_like, node_final, run_active, run_final, no_result. */
export const VOCAB = pageVocabulary() || {
  done_ok: ["succeeded", "cached"],
  failed_like: ["failed", "timed_out"],
  node_final: ["succeeded", "failed", "timed_out", "cancelled", "skipped", "cached"],
  run_active: ["pending", "running"],
  run_final: ["succeeded", "failed", "cancelled", "interrupted"],
  no_result: ["pending", "running", "skipped"],
};

/** True when a step did its work (or reused it): it counts as finished. */
export const isDone = (status) => VOCAB.done_ok.includes(status);

/** True when a step stopped on a problem of its own. */
export const isFailed = (status) => VOCAB.failed_like.includes(status);

export const NODE_STATUS = {
  "": { word: "Not run yet", icon: "○" },
  pending: { word: "Waiting", icon: "◌" },
  running: { word: "Running", icon: "●" },
  succeeded: { word: "Succeeded", icon: "✓" },
  failed: { word: "Failed", icon: "✕" },
  timed_out: { word: "Timed out", icon: "◷" },
  cancelled: { word: "Cancelled", icon: "⊘" },
  skipped: { word: "Skipped", icon: "↷" },
  cached: { word: "Succeeded", icon: "✓", mark: "cached" },
};

/** A step with no status in the run on show: it was left out of that run. */
export const NOT_IN_RUN = { word: "Not in this run", icon: "○" };

/** A past run drawn as it ran: steps and connections that differ from today's pipeline. */
export const SINCE = {
  added: { word: "Added since", icon: "+", short: "added since", long: "Added to the pipeline after this run, so it was not in this run." },
  removed: { word: "Removed since", icon: "−", short: "removed since", long: "In this run, but removed from the pipeline since." },
};

export const RUN_STATUS = {
  pending: "starting",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  interrupted: "interrupted",
};

/** {word, icon, mark?} for a node status (unknown statuses read as themselves). */
export function describeStatus(status) {
  return NODE_STATUS[status || ""] || { word: String(status).replace(/_/g, " "), icon: "•" };
}

/** True when a status means the node will not change any more in this run. */
export function isFinal(status) {
  return VOCAB.node_final.includes(status);
}

/** True when a run status means the run is still going. */
export function runIsActive(status) {
  return VOCAB.run_active.includes(status);
}

/**
 * Why a step did not succeed, in plain words: {short, long}, or null when
 * there is nothing to explain. `titleOf(id)` names another step.
 */
export function explainStatus(info, titleOf = (id) => id) {
  if (!info) return null;
  const status = info.status || "";
  const message = String(info.message || "").trim();
  let m;
  if (status === "failed") {
    if ((m = /^exited with code (-?\d+)/.exec(message)) || (!message && info.exit_code)) {
      const code = m ? m[1] : String(info.exit_code);
      return { short: "stopped by an error", long: `The program stopped with an error (exit code ${code}).` };
    }
    if ((m = /^build failed:\s*([\s\S]*)/.exec(message))) {
      return { short: "could not be built", long: `The program could not be built: ${quotes(m[1])}` };
    }
    if ((m = /^could not start `([^`]*)`:\s*([\s\S]*)/.exec(message))) {
      return { short: "could not start", long: `The program could not be started: “${m[1]}” failed (${m[2]}).` };
    }
    if ((m = /did not write its declared output\s*([\s\S]*)/.exec(message))) {
      return { short: "wrote no output", long: quotes(`The program finished but did not write its output ${m[1]}.`.replace(/\.\.$/, ".")) };
    }
    if ((m = /^internal error:\s*([\s\S]*)/.exec(message))) {
      return { short: "could not be run", long: `Pipeloom could not run this step: ${m[1]}` };
    }
    return { short: "failed", long: message ? sentence(message) : "The step failed." };
  }
  if (status === "timed_out") {
    m = /after ([\d.]+)\s*s/.exec(message);
    const limit = m ? formatDuration(Number(m[1])).replace(/\.0 s$/, " s") : "";
    return {
      short: limit ? `stopped after ${limit}` : "took too long",
      long: limit ? `It ran longer than its time limit of ${limit}, so it was stopped.` : "It ran longer than its time limit, so it was stopped.",
    };
  }
  if (status === "skipped") {
    if ((m = /upstream `([^`]*)` (\w+)/.exec(message))) {
      const word = describeStatus(m[2]).word.toLowerCase();
      // The card has room for about 22 characters beside "Skipped".
      return { short: m[2] === "failed" ? "an earlier step failed" : `earlier step ${word}`, long: `Not run, because “${titleOf(m[1])}” ${word}.` };
    }
    if (/cancel/.test(message)) return { short: "run cancelled", long: "Not run, because the run was cancelled." };
    return { short: "not run", long: message ? sentence(message) : "Not run in this run." };
  }
  if (status === "cancelled") {
    return { short: "run cancelled", long: /before it started/.test(message) ? "Cancelled before it started." : "Stopped, because the run was cancelled." };
  }
  return null;
}

function sentence(text) {
  const t = quotes(text.charAt(0).toUpperCase() + text.slice(1));
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** Code-style `name` quoting reads as “name” to people. */
function quotes(text) {
  return String(text).replace(/`([^`]*)`/g, "“$1”");
}

/**
 * For a cached step, the run its outputs come from and a sentence saying so:
 * {runId, text}; null for any other step. The run id is in `source_run`, or
 * in the engine's message ("unchanged since run 20261126-…; no program ran").
 */
export function cachedFrom(info) {
  if (!info || info.status !== "cached") return null;
  let runId = typeof info.source_run === "string" && info.source_run ? info.source_run : null;
  if (!runId) {
    const m = /since run (\S+?)[;,.]?(\s|$)/.exec(String(info.message || ""));
    if (m) runId = m[1];
  }
  return {
    runId,
    text: runId
      ? `Cached: nothing changed since run ${runId}, so no program ran.`
      : "Cached: nothing changed since an earlier run, so no program ran.",
  };
}
