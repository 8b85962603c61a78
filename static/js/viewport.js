// The canvas's view: where the CSS-transformed viewport sits and how far it is zoomed,
// with fitting, zooming about a point and scrolling a box into view. It knows rectangles
// only; the canvas (canvas.js) says what the content is.
import { rafThrottle } from "./dom.js";

export const MIN_ZOOM = 0.08;
// Below this, card text is too small to read: the first view of a pipeline
// never goes lower, and a pipeline that does not fit is panned instead.
export const READABLE_ZOOM = 0.75;
const MAX_ZOOM = 2;

export class ViewTransform {
  /** root: the canvas element (its size, grid background and --zoom); viewport: the element transformed. */
  constructor(root, viewport) {
    this.root = root;
    this.viewport = viewport;
    this.view = { x: 40, y: 40, k: 1 };
    this.fitted = null; // the options of the last fit, while the user has not moved the view since
    this.size = null;
    this.apply = rafThrottle(() => {
      const { x, y, k } = this.view;
      this.viewport.style.transform = `translate(${x}px, ${y}px) scale(${k})`;
      this.root.style.setProperty("--zoom", String(k));
      this.root.style.backgroundPosition = `${x}px ${y}px`;
      this.root.style.backgroundSize = `${24 * k}px ${24 * k}px`;
    });
  }

  /** The canvas got narrower or wider: keep the same things in view. Returns the options to fit
   * with again when the view was fitted (the caller fits), else null. */
  resized() {
    const rect = this.root.getBoundingClientRect();
    const before = this.size;
    this.size = { w: rect.width, h: rect.height };
    if (!before || !rect.width || !rect.height) return null;
    if (this.fitted) return this.fitted;
    this.view = { ...this.view, x: this.view.x + (rect.width - before.w) / 2, y: this.view.y + (rect.height - before.h) / 2 };
    this.apply();
    return null;
  }

  /** Screen point -> canvas coordinates. */
  toCanvas(clientX, clientY, rect = this.root.getBoundingClientRect()) {
    return { x: (clientX - rect.left - this.view.x) / this.view.k, y: (clientY - rect.top - this.view.y) / this.view.k };
  }

  /** The canvas point at the centre of the visible area. */
  centre() {
    const rect = this.root.getBoundingClientRect();
    return this.toCanvas(rect.left + rect.width / 2, rect.top + rect.height / 2, rect);
  }

  /** Pan so the canvas origin is at (x, y) on screen (relative to the canvas element). */
  panTo(x, y) {
    this.fitted = null;
    this.view.x = x;
    this.view.y = y;
    this.apply();
  }

  /**
   * Fit `bounds()` (a rectangle in canvas coordinates; null: nothing to fit) into view, never zooming
   * in past 100%, nor out past `minZoom`. When it does not fit at `minZoom`, show where it starts
   * (its left end) and let the user pan to the rest.
   */
  fit(bounds, { minZoom = MIN_ZOOM } = {}) {
    const rect = this.root.getBoundingClientRect();
    if (!bounds || !rect.width) {
      this.view = { x: 40, y: 40, k: 1 };
      this.apply();
      return;
    }
    const b = bounds();
    const pad = 24;
    const whole = Math.min(1, (rect.width - pad * 2) / (b.w || 1), (rect.height - pad * 2) / (b.h || 1));
    const k = Math.max(MIN_ZOOM, minZoom, whole);
    const fitsX = b.w * k <= rect.width - pad * 2 + 0.5;
    const fitsY = b.h * k <= rect.height - pad * 2 + 0.5;
    this.view = {
      k,
      x: fitsX ? (rect.width - b.w * k) / 2 - b.x * k : pad - b.x * k,
      y: fitsY ? (rect.height - b.h * k) / 2 - b.y * k : pad - b.y * k,
    };
    this.fitted = { minZoom };
    this.apply();
  }

  /** Zoom by a factor around a point on screen (default: the centre). */
  zoomBy(factor, clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    const cx = clientX === undefined ? rect.width / 2 : clientX - rect.left;
    const cy = clientY === undefined ? rect.height / 2 : clientY - rect.top;
    const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.view.k * factor));
    this.fitted = null;
    const wx = (cx - this.view.x) / this.view.k;
    const wy = (cy - this.view.y) / this.view.k;
    this.view = { k, x: cx - wx * k, y: cy - wy * k };
    this.apply();
  }

  /** Scroll so `box` (canvas coordinates) is visible: centred, when any of it is out of view. */
  reveal(box) {
    const rect = this.root.getBoundingClientRect();
    const { x, y, k } = this.view;
    const left = box.x * k + x;
    const top = box.y * k + y;
    const right = left + box.w * k;
    const bottom = top + box.h * k;
    if (left >= 0 && top >= 0 && right <= rect.width && bottom <= rect.height) return;
    this.fitted = null;
    this.view = {
      k,
      x: rect.width / 2 - (box.x + box.w / 2) * k,
      y: rect.height / 2 - (box.y + box.h / 2) * k,
    };
    this.apply();
  }

  /** Centre `box` at a readable zoom in the part of the canvas that `cover` (a screen rect over the
   * canvas, such as a panel) leaves free. */
  centreOn(box, cover = null) {
    const rect = this.root.getBoundingClientRect();
    let { width: w, height: hgt } = rect;
    if (cover && cover.top > rect.top + rect.height / 3) hgt = cover.top - rect.top; // a sheet along the bottom
    else if (cover && cover.left > rect.left + rect.width / 3) w = cover.left - rect.left; // a panel on the right
    const k = Math.min(Math.max(this.view.k, 0.75), 1);
    this.fitted = null;
    this.view = {
      k,
      x: w / 2 - (box.x + box.w / 2) * k,
      y: hgt / 2 - (box.y + box.h / 2) * k,
    };
    this.apply();
  }

  /** The view as it is, to go back to with `restore` (e.g. after a walk-through moved it step by step). */
  save() {
    return { view: { ...this.view }, fitted: this.fitted };
  }

  restore(saved) {
    this.view = { ...saved.view };
    this.fitted = saved.fitted;
    this.apply();
  }
}
