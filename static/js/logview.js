// A virtualised log list: it keeps at most `cap` lines and puts only the
// visible ones in the DOM, so a node printing 100,000 lines a second costs
// the page one small redraw per frame.
import { h, clear, rafThrottle } from "./dom.js";

const LINE_H = 18;
const OVERSCAN = 20;

export class LogView {
  /** container: a scrollable element. cap: how many lines to keep. */
  constructor(container, { cap = 5000 } = {}) {
    this.container = container;
    this.cap = cap;
    this.lines = [];
    this.dropped = 0;
    this.follow = true;
    this.showNode = false;
    clear(container);
    container.classList.add("logview");
    this.spacer = h("div", { class: "log-spacer" });
    this.window = h("div", { class: "log-window" });
    this.placeholder = h("div", { class: "log-empty" });
    container.append(this.placeholder, this.spacer, this.window);
    this.schedule = rafThrottle(() => this.render());
    this.expected = null; // where our own last scroll landed, so its event is not taken as the user's
    this.pinTop = false;
    container.addEventListener("scroll", () => {
      if (this.expected !== null && Math.abs(container.scrollTop - this.expected) < 2) {
        this.expected = null;
        this.schedule();
        return;
      }
      this.expected = null;
      const bottom = container.scrollHeight - container.scrollTop - container.clientHeight;
      this.follow = bottom < LINE_H * 2;
      this.schedule();
    });
    if (typeof ResizeObserver !== "undefined") new ResizeObserver(() => this.schedule()).observe(container);
  }

  /** The text shown when there are no lines, with an optional button {label, onClick}. */
  setPlaceholder(text, action = null) {
    this.placeholder.textContent = text;
    if (action) {
      this.placeholder.append(" ", h("button", { type: "button", class: "link-button", onclick: action.onClick }, action.label));
    }
    this.schedule();
  }

  /** Replace every line (and follow the end, unless told otherwise). */
  setLines(lines, { dropped = 0, follow = true } = {}) {
    this.lines = lines.slice(-this.cap);
    this.dropped = dropped + Math.max(0, lines.length - this.cap);
    this.follow = follow;
    this.schedule();
  }

  /** Show the first line and stop following the end. */
  jumpToStart() {
    this.follow = false;
    this.pinTop = true;
    this.schedule();
  }

  setScroll(value) {
    this.container.scrollTop = value;
    this.expected = this.container.scrollTop;
  }

  /** Add lines at the end, dropping the oldest past the cap. */
  append(lines) {
    if (!lines.length) return;
    for (const line of lines) this.lines.push(line);
    const over = this.lines.length - this.cap;
    // Trim in chunks so a fast stream does not shift the array on every batch.
    if (over > this.cap * 0.2) {
      this.lines.splice(0, over);
      this.dropped += over;
    }
    this.schedule();
  }

  clear() {
    this.lines = [];
    this.dropped = 0;
    this.follow = true;
    this.schedule();
  }

  render() {
    const c = this.container;
    const excess = Math.max(0, this.lines.length - this.cap);
    const total = this.lines.length - excess;
    this.placeholder.hidden = total > 0;
    this.spacer.style.height = `${total * LINE_H}px`;
    if (this.pinTop) {
      this.pinTop = false;
      this.setScroll(0);
    } else if (this.follow) {
      this.setScroll(c.scrollHeight);
    }
    const height = c.clientHeight || 300;
    const first = Math.max(0, Math.floor(c.scrollTop / LINE_H) - OVERSCAN);
    const last = Math.min(total, Math.ceil((c.scrollTop + height) / LINE_H) + OVERSCAN);
    this.window.style.transform = `translateY(${first * LINE_H}px)`;
    const rows = [];
    for (let i = first; i < last; i += 1) {
      const line = this.lines[excess + i];
      const stream = line.stream || "stdout";
      const row = h("div", { class: `log-line log-${stream}` });
      if (this.showNode && line.node) row.append(h("span", { class: "log-node" }, line.node));
      row.append(line.text ?? "");
      rows.push(row);
    }
    this.window.replaceChildren(...rows);
  }
}
