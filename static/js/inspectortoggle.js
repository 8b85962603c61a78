// The inspector's width: it can fold away to give the canvas the whole width (a button below the canvas, or the
// I key), and its left edge can be dragged. Both are remembered; the canvas refits (or keeps its centre) as it
// grows and shrinks.
const KEY = "pipeloom.inspector";
const WIDTH_KEY = "pipeloom.inspector-width";

export function bindInspectorToggle({ studio, inspector, button, onChange = () => {} }) {
  const set = (collapsed, { remember = true } = {}) => {
    studio.classList.toggle("inspector-collapsed", collapsed);
    inspector.hidden = collapsed;
    button.setAttribute("aria-expanded", collapsed ? "false" : "true");
    button.textContent = collapsed ? "Show inspector" : "Hide inspector";
    button.title = collapsed ? "Show the inspector again (I)" : "Hide the inspector to give the canvas the width (I)";
    if (remember) {
      try { localStorage.setItem(KEY, collapsed ? "collapsed" : "open"); } catch { /* private mode */ }
    }
    onChange(collapsed);
  };
  const toggle = () => set(!studio.classList.contains("inspector-collapsed"));
  let saved = null;
  try { saved = localStorage.getItem(KEY); } catch { /* private mode */ }
  set(saved === "collapsed", { remember: false });
  button.addEventListener("click", toggle);
  document.addEventListener("keydown", (e) => {
    if (e.key.toLowerCase() !== "i" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable=true], dialog")) return;
    if (document.querySelector("dialog[open]")) return;
    e.preventDefault();
    toggle();
  });
  return { set, toggle, collapsed: () => studio.classList.contains("inspector-collapsed") };
}

// The inspector's left edge can be dragged (or moved with the arrow keys); the width is remembered.
export function bindInspectorResize({ handle, studio, inspector }) {
  const limits = () => ({ min: 300, max: Math.max(300, Math.min(1000, window.innerWidth - 420)) });
  const current = () => inspector.getBoundingClientRect().width;
  const setWidth = (w, { remember = true } = {}) => {
    const { min, max } = limits();
    const width = Math.round(Math.min(max, Math.max(min, w)));
    studio.style.setProperty("--inspector-w", `${width}px`);
    handle.setAttribute("aria-valuenow", String(width));
    handle.setAttribute("aria-valuemin", String(min));
    handle.setAttribute("aria-valuemax", String(max));
    if (remember) {
      try { localStorage.setItem(WIDTH_KEY, String(width)); } catch { /* private mode */ }
    }
  };
  let saved = null;
  try { saved = Number(localStorage.getItem(WIDTH_KEY)); } catch { /* private mode */ }
  if (saved) setWidth(saved, { remember: false });
  handle.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    const startX = e.clientX;
    const startW = current();
    handle.setPointerCapture(e.pointerId);
    handle.classList.add("dragging");
    const move = (ev) => setWidth(startW + (startX - ev.clientX));
    const up = () => {
      handle.classList.remove("dragging");
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", up);
      handle.removeEventListener("pointercancel", up);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", up);
    handle.addEventListener("pointercancel", up);
  });
  handle.addEventListener("keydown", (e) => {
    const step = e.shiftKey ? 64 : 16;
    if (e.key === "ArrowLeft") setWidth(current() + step);
    else if (e.key === "ArrowRight") setWidth(current() - step);
    else return;
    e.preventDefault();
  });
}
