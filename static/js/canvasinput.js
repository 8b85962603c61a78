// What the pointer and keyboard do on the canvas: pan, zoom with the wheel, select,
// drag cards (snapped to the grid), draw a wire from an output to an input, drop a
// runtime from the palette, and the keys (Delete, arrows, Enter, Escape, +/-, Space).
// It works through the canvas's public methods only (canvas.js).
import { svg, rafThrottle } from "./dom.js";
import { edgeCurve, CARD_W } from "./geometry.js";

const DRAG_THRESHOLD = 4;
const GRID = 8;

export class CanvasInput {
  constructor(canvas) {
    this.canvas = canvas;
    this.root = canvas.root;
    this.spaceDown = false;
    this.wire = null; // an unfinished connection
    this.wirePath = svg("path", { class: "wire", d: "" }); // the canvas puts it in its SVG layer
  }

  get handlers() {
    return this.canvas.handlers;
  }

  bind() {
    const root = this.root;
    const canvas = this.canvas;
    root.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    root.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.ctrlKey || e.metaKey || !e.shiftKey) {
        const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
        canvas.zoomBy(Math.exp(-delta * 0.0015), e.clientX, e.clientY);
      } else {
        canvas.panTo(canvas.view.x - e.deltaY, canvas.view.y);
      }
    }, { passive: false });
    root.addEventListener("focusin", (e) => {
      const card = e.target.closest && e.target.closest(".card");
      if (card && e.target === card && !canvas.selected.has(card.dataset.nodeId) && !this.pointerBusy) {
        canvas.select([card.dataset.nodeId]);
      }
    });
    root.addEventListener("keydown", (e) => this.onKeyDown(e));
    root.addEventListener("dblclick", (e) => {
      const card = e.target.closest(".card");
      if (card && this.handlers.onActivate) this.handlers.onActivate(card.dataset.nodeId);
    });
    root.addEventListener("click", (e) => {
      const changed = e.target.closest(".card-changed");
      if (changed) {
        const card = changed.closest(".card");
        if (this.handlers.onShowChanged) this.handlers.onShowChanged(card.dataset.nodeId, changed.dataset.port);
        return;
      }
      const portEl = e.target.closest(".port");
      // A click without a drag: keyboard Enter/Space on a port lands here too.
      if (portEl && e.detail === 0) this.onPortActivate(portEl);
    });
    root.addEventListener("dragover", (e) => {
      if (!canvas.readOnly && e.dataTransfer && [...e.dataTransfer.types].includes("application/x-pipeloom-runtime")) {
        e.preventDefault();
        e.dataTransfer.dropEffect = "copy";
      }
    });
    root.addEventListener("drop", (e) => {
      const runtime = e.dataTransfer && e.dataTransfer.getData("application/x-pipeloom-runtime");
      if (!runtime || canvas.readOnly) return;
      e.preventDefault();
      const p = canvas.toCanvas(e.clientX, e.clientY);
      if (this.handlers.onDropRuntime) this.handlers.onDropRuntime(runtime, { x: p.x - CARD_W / 2, y: p.y - 30 });
    });
    window.addEventListener("keydown", (e) => {
      if (e.code === "Space" && !isTyping(e.target)) {
        if (!this.spaceDown) root.classList.add("space-pan");
        this.spaceDown = true;
        if (root.contains(e.target) || e.target === document.body) e.preventDefault();
      }
    });
    window.addEventListener("keyup", (e) => {
      if (e.code === "Space") {
        this.spaceDown = false;
        root.classList.remove("space-pan");
      }
    });
  }

  onPointerDown(e) {
    if (e.button !== 0 && e.button !== 1) return;
    const target = e.target;
    if (this.wire && this.wire.armed) {
      this.finishWire(this.wireTarget(target));
      e.preventDefault();
      return;
    }
    if (this.spaceDown || e.button === 1) return this.startPan(e);
    if (target.closest(".card-changed")) return; // a button of its own, handled on click
    const port = target.closest(".port");
    // a wire starts on an output's dot or name; the rest of its row belongs to the card (a click selects it)
    if (port && port.dataset.kind === "outputs" && !this.canvas.readOnly && target.closest(".port-dot, .port-name")) {
      return this.startWire(e, port);
    }
    const card = target.closest(".card");
    if (card) return this.startDrag(e, card);
    const edgeEl = target.closest(".edge");
    if (edgeEl) {
      this.canvas.selectEdge(edgeEl.dataset.edge);
      return;
    }
    if (target.closest(".canvas-tools")) return;
    this.startPan(e, true);
  }

  startPan(e, clearOnClick = false) {
    e.preventDefault();
    const canvas = this.canvas;
    const start = { x: e.clientX, y: e.clientY, vx: canvas.view.x, vy: canvas.view.y };
    let moved = false;
    this.root.classList.add("panning");
    this.track(e, (ev) => {
      const dx = ev.clientX - start.x;
      const dy = ev.clientY - start.y;
      if (!moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
      moved = true;
      canvas.panTo(start.vx + dx, start.vy + dy);
    }, () => {
      this.root.classList.remove("panning");
      if (!moved && clearOnClick) {
        this.root.focus({ preventScroll: true });
        canvas.select([]);
      }
    });
  }

  startDrag(e, card) {
    const canvas = this.canvas;
    const id = card.dataset.nodeId;
    const additive = e.shiftKey || e.metaKey || e.ctrlKey;
    if (additive) {
      const next = new Set(canvas.selected);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      canvas.select([...next]);
      return;
    }
    if (!canvas.selected.has(id)) canvas.select([id]);
    this.pointerBusy = true;
    card.focus({ preventScroll: true });
    this.pointerBusy = false;
    e.preventDefault();
    if (canvas.readOnly) return;
    const rect = this.root.getBoundingClientRect();
    const origin = canvas.toCanvas(e.clientX, e.clientY, rect);
    const moving = [...canvas.selected].filter((n) => canvas.positionOf(n));
    const starts = Object.fromEntries(moving.map((n) => [n, { ...canvas.positionOf(n) }]));
    let moved = false;
    const move = rafThrottle((ev) => {
      const p = canvas.toCanvas(ev.clientX, ev.clientY, rect);
      const dx = p.x - origin.x;
      const dy = p.y - origin.y;
      if (!moved && Math.hypot(dx * canvas.view.k, dy * canvas.view.k) < DRAG_THRESHOLD) return;
      if (!moved) this.root.classList.add("dragging");
      moved = true;
      const next = {};
      for (const n of moving) next[n] = { x: starts[n].x + dx, y: starts[n].y + dy };
      canvas.moveNodes(next);
    });
    this.track(e, move, (ev) => {
      move(ev);
      requestAnimationFrame(() => {
        this.root.classList.remove("dragging");
        if (moved) {
          const snapped = {};
          for (const n of moving) {
            const p = canvas.positionOf(n);
            snapped[n] = { x: Math.round(p.x / GRID) * GRID, y: Math.round(p.y / GRID) * GRID };
          }
          canvas.moveNodes(snapped);
          if (this.handlers.onMove) this.handlers.onMove(snapped);
        } else if (canvas.selected.size > 1) {
          canvas.select([id]);
        }
      });
    });
  }

  /** Begin a wire at output port `portEl`; `armed`: it ends at the next click (or Enter) on an input. */
  beginWire(portEl, armed) {
    const src = portEl.closest(".card").dataset.nodeId;
    const from = this.canvas.portPoint(src, "outputs", portEl.dataset.port);
    this.wire = { src, srcPort: portEl.dataset.port, from, armed, portEl };
    portEl.classList.add("wiring");
    this.root.classList.add("connecting");
  }

  startWire(e, portEl) {
    e.preventDefault();
    e.stopPropagation();
    this.beginWire(portEl, false);
    const startX = e.clientX;
    const startY = e.clientY;
    let moved = false;
    this.track(e, (ev) => {
      if (!moved && Math.hypot(ev.clientX - startX, ev.clientY - startY) >= DRAG_THRESHOLD) moved = true;
      this.drawWire(ev);
    }, (ev) => {
      if (!moved) {
        // A plain click arms the wire: the next click on an input finishes it.
        this.wire.armed = true;
        this.armMove = (mv) => this.drawWire(mv);
        window.addEventListener("pointermove", this.armMove);
        return;
      }
      this.finishWire(this.wireTarget(document.elementFromPoint(ev.clientX, ev.clientY)));
    });
  }

  /** What a wire would end on at `el`: an input port, or another card (which gets a new input), or null. */
  wireTarget(el) {
    if (!el || !el.closest || !this.wire) return null;
    const port = el.closest(".port[data-kind=inputs]");
    if (port) return port;
    const card = el.closest(".card");
    return card && card.dataset.nodeId !== this.wire.src ? card : null;
  }

  drawWire(ev) {
    if (!this.wire) return;
    const p = this.canvas.toCanvas(ev.clientX, ev.clientY);
    this.wirePath.setAttribute("d", edgeCurve(this.wire.from, p).d);
    const target = this.wireTarget(document.elementFromPoint(ev.clientX, ev.clientY));
    if (this.wireHover && this.wireHover !== target) this.wireHover.classList.remove("drop-target");
    if (target) target.classList.add("drop-target");
    this.wireHover = target;
  }

  /** End a wire on `target`: an input port connects to it; a card gets a new input for it. */
  finishWire(target) {
    const wire = this.wire;
    this.cancelWire();
    if (!wire || !target || this.canvas.readOnly) return;
    if (target.classList.contains("card")) {
      if (this.handlers.onConnectCard) this.handlers.onConnectCard(wire.src, wire.srcPort, target.dataset.nodeId);
      return;
    }
    const dst = target.closest(".card").dataset.nodeId;
    if (this.handlers.onConnect) this.handlers.onConnect(wire.src, wire.srcPort, dst, target.dataset.port);
  }

  cancelWire() {
    if (this.armMove) window.removeEventListener("pointermove", this.armMove);
    this.armMove = null;
    if (this.wire && this.wire.portEl) this.wire.portEl.classList.remove("wiring");
    if (this.wireHover) this.wireHover.classList.remove("drop-target");
    this.wireHover = null;
    this.wire = null;
    this.wirePath.setAttribute("d", "");
    this.root.classList.remove("connecting");
  }

  /** Keyboard connect: Enter on an output arms a wire, Enter on an input finishes it. */
  onPortActivate(portEl) {
    if (this.canvas.readOnly) return;
    if (portEl.dataset.kind === "outputs") {
      this.cancelWire();
      this.beginWire(portEl, true);
      if (this.handlers.onHint) this.handlers.onHint("Now choose an input to connect to (Enter on it), or press Escape.");
    } else if (this.wire) {
      this.finishWire(portEl);
    }
  }

  track(e, onMove, onUp) {
    const pointerId = e.pointerId;
    const el = this.root;
    try { el.setPointerCapture(pointerId); } catch { /* pointer already gone */ }
    const move = (ev) => { if (ev.pointerId === pointerId) onMove(ev); };
    const up = (ev) => {
      if (ev.pointerId !== pointerId) return;
      el.removeEventListener("pointermove", move);
      el.removeEventListener("pointerup", up);
      el.removeEventListener("pointercancel", up);
      try { el.releasePointerCapture(pointerId); } catch { /* already released */ }
      onUp(ev);
    };
    el.addEventListener("pointermove", move);
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
  }

  onKeyDown(e) {
    const canvas = this.canvas;
    if (isTyping(e.target)) return;
    if (e.key === "Escape") {
      if (this.wire) this.cancelWire();
      else canvas.select([]);
      return;
    }
    if (e.key === "Delete" || e.key === "Backspace") {
      if ((!canvas.selected.size && !canvas.selectedEdge) || canvas.readOnly) return;
      e.preventDefault();
      if (this.handlers.onDelete) this.handlers.onDelete([...canvas.selected], canvas.selectedEdge ? [canvas.selectedEdge] : []);
      return;
    }
    const card = e.target.closest && e.target.closest(".card");
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (card && e.target === card && arrows[e.key] && canvas.selected.size && !canvas.readOnly) {
      e.preventDefault();
      const step = e.shiftKey ? GRID * 8 : GRID * 2;
      const [dx, dy] = arrows[e.key];
      const next = {};
      for (const id of canvas.selected) {
        const p = canvas.positionOf(id);
        next[id] = { x: p.x + dx * step, y: p.y + dy * step };
      }
      canvas.moveNodes(next);
      if (this.handlers.onMove) this.handlers.onMove(next);
      return;
    }
    if (card && e.target === card && e.key === "Enter" && this.handlers.onActivate) {
      this.handlers.onActivate(card.dataset.nodeId);
    }
    if ((e.key === "+" || e.key === "=") && !e.ctrlKey && !e.metaKey) canvas.zoomBy(1.2);
    if (e.key === "-" && !e.ctrlKey && !e.metaKey) canvas.zoomBy(1 / 1.2);
  }
}

function isTyping(el) {
  return !!(el && el.closest && el.closest("input, textarea, select, [contenteditable=true], dialog"));
}
