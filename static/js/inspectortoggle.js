// The inspector can fold away to give the canvas the whole width: a button below the canvas, or the I key.
// The choice is remembered; the canvas refits (or keeps its centre) as it grows and shrinks.
const KEY = "pipeloom.inspector";

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
