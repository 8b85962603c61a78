// Words and icons for every status, so colour is never the only signal.

export const NODE_STATUS = {
  "": { word: "Not run yet", icon: "○" },
  pending: { word: "Waiting", icon: "◌" },
  running: { word: "Running", icon: "●" },
  succeeded: { word: "Succeeded", icon: "✓" },
  failed: { word: "Failed", icon: "✕" },
  timed_out: { word: "Timed out", icon: "⏱" },
  cancelled: { word: "Cancelled", icon: "⊘" },
  skipped: { word: "Skipped", icon: "↷" },
  cached: { word: "Succeeded", icon: "✓", mark: "cached" },
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
  return ["succeeded", "failed", "timed_out", "cancelled", "skipped", "cached"].includes(status);
}

/** True when a run status means the run is still going. */
export function runIsActive(status) {
  return status === "pending" || status === "running";
}
