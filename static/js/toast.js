// Toasts: short, visible messages in a live region so screen readers hear them too.
import { h } from "./dom.js";

let region = null;

function ensureRegion() {
  if (region && document.body.contains(region)) return region;
  region = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  document.body.append(region);
  return region;
}

/**
 * Show a toast. kind: "info" | "error" | "success". lines: extra detail lines.
 * actions: [{label, onClick}]. Errors stay until dismissed; others fade after a while.
 */
export function toast(message, { kind = "info", lines = [], actions = [], timeout } = {}) {
  const box = h("div", { class: `toast toast-${kind}`, "data-testid": "toast", role: kind === "error" ? "alert" : null });
  const close = () => box.remove();
  box.append(
    h("div", { class: "toast-body" },
      h("div", { class: "toast-message" }, message),
      lines.length ? h("ul", { class: "toast-lines" }, lines.slice(0, 8).map((l) => h("li", {}, l))) : null,
      lines.length > 8 ? h("div", { class: "toast-more" }, `and ${lines.length - 8} more`) : null,
      actions.length
        ? h("div", { class: "toast-actions" }, actions.map((a) =>
          h("button", { type: "button", class: "btn btn-small", onclick: () => { close(); a.onClick(); } }, a.label)))
        : null),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", title: "Dismiss", onclick: close }, "×"),
  );
  ensureRegion().append(box);
  const ms = timeout ?? (kind === "error" ? 0 : 5000);
  if (ms) setTimeout(close, ms);
  return { close, element: box };
}
