// Sticky notes on the canvas: words for the people reading the pipeline, kept in the document's `notes`.
// They are drawn above the connections and below the steps, edited in place (double-click or Enter), moved
// by dragging or with the arrow keys, and removed with Delete or their × button. Every change is an edit of
// the document, so undo and saving work as for steps.
import { h, clear } from "./dom.js";
import { nodesOf, notesOf, withNote, withoutNote, withNoteFields } from "./doc.js";

const GRID = 8;
const DRAG_THRESHOLD = 4;
const NOTE_W = 220;

export class NoteLayer {
  /**
   * canvas: the Canvas it draws in. getDoc(): the document; commit(next): make `next` the document (an edit);
   * blocked(): true while notes must not change (a walk-through); say(text, actions): tell the user.
   */
  constructor(canvas, { getDoc, commit, blocked = () => false, say = () => {} }) {
    this.canvas = canvas;
    this.getDoc = getDoc;
    this.commit = commit;
    this.blocked = blocked;
    this.say = say;
    this.readOnly = false;
    this.editing = null; // {id, draft: the text typed so far, fresh: not in the document yet, position}
    this.els = new Map(); // note id -> element
    this.el = h("div", { class: "notes", role: "group", "aria-label": "Notes" });
    this.el.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.el.addEventListener("dblclick", (e) => {
      const note = e.target.closest(".note");
      if (note && !e.target.closest("textarea")) this.edit(note.dataset.noteId);
    });
    this.el.addEventListener("keydown", (e) => this.onKeyDown(e));
    document.addEventListener("keydown", (e) => {
      if (e.key.toLowerCase() !== "n" || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.target.closest && e.target.closest("input, textarea, select, [contenteditable=true], dialog")) return;
      if (document.querySelector("dialog[open]")) return;
      e.preventDefault();
      this.add();
    });
  }

  setReadOnly(readOnly) {
    this.readOnly = readOnly;
    this.el.classList.toggle("read-only", readOnly);
    if (readOnly && this.editing) this.finish();
  }

  /** Draw every note of `doc` (an edit in progress stays open, with what was typed). */
  setDocument(doc) {
    clear(this.el);
    this.els.clear();
    const notes = notesOf(doc);
    const placed = this.defaultPlaces(notes);
    for (const note of notes) this.el.append(this.render(note, note.position || placed[note.id]));
    const e = this.editing;
    if (e && e.fresh) this.el.append(this.render({ id: e.id, text: "" }, e.position));
    if (e && this.els.has(e.id)) this.openEditor(e.id, e.draft);
    else if (e) this.editing = null;
  }

  /** Where notes without a position go: in a row above the steps. */
  defaultPlaces(notes) {
    const nodes = nodesOf(this.getDoc()).filter((n) => n.position);
    const x = nodes.length ? Math.min(...nodes.map((n) => n.position.x)) : 40;
    const y = nodes.length ? Math.min(...nodes.map((n) => n.position.y)) - 120 : 40;
    const out = {};
    let i = 0;
    for (const n of notes) if (!n.position) out[n.id] = { x: x + (NOTE_W + 24) * i++, y };
    return out;
  }

  render(note, pos) {
    const text = String(note.text ?? "");
    const el = h("div", {
      class: "note", role: "note", tabindex: "0", "data-note-id": note.id,
      "aria-label": text ? `Note: ${text}` : "Empty note",
      title: this.readOnly ? "" : "Double-click (or Enter) to edit, drag to move, Delete to remove",
      style: { transform: `translate(${pos.x}px, ${pos.y}px)`, width: `${NOTE_W}px` },
    },
    h("div", { class: "note-text" }, text),
    h("button", {
      type: "button", class: "note-delete", tabindex: "-1", "aria-label": "Delete note", title: "Delete this note",
      onclick: (e) => { e.stopPropagation(); this.remove(note.id); },
    }, "×"));
    el.pos = { x: pos.x, y: pos.y };
    this.els.set(note.id, el);
    return el;
  }

  /** Note rectangles in canvas coordinates, for fitting the view. */
  rects() {
    return [...this.els.values()].map((el) => ({ x: el.pos.x, y: el.pos.y, w: el.offsetWidth || NOTE_W, h: el.offsetHeight || 60 }));
  }

  /** Each drawn note's size {id: {w, h}}, for moving notes without covering steps. */
  sizes() {
    const out = {};
    for (const [id, el] of this.els) out[id] = { w: el.offsetWidth || NOTE_W, h: el.offsetHeight || 60 };
    return out;
  }

  // ------------------------------------------------------------ edits

  /** Add a note in the middle of the view (or at `point`) and start writing it. */
  add(point = null) {
    if (this.readOnly || this.blocked()) return;
    if (this.editing) this.finish();
    const ids = new Set(notesOf(this.getDoc()).map((n) => n.id));
    let n = ids.size + 1;
    while (ids.has(`note-${n}`)) n += 1;
    const c = point || this.canvas.centre();
    const position = point ? { x: c.x, y: c.y } : this.freeSpot({ x: c.x - NOTE_W / 2, y: c.y - 30 });
    position.x = Math.round(position.x / GRID) * GRID;
    position.y = Math.round(position.y / GRID) * GRID;
    this.editing = { id: `note-${n}`, draft: "", fresh: true, position };
    this.el.append(this.render({ id: this.editing.id, text: "" }, position));
    this.openEditor(this.editing.id, "");
  }

  /** The place nearest `start` where a new note covers no step and no other note (rings of growing size). */
  freeSpot(start) {
    const size = { w: NOTE_W, h: 90 };
    const notes = this.rects();
    const meets = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    const free = (p) => {
      const r = { x: p.x - 16, y: p.y - 16, w: size.w + 32, h: size.h + 32 };
      return !this.canvas.cardGrid.query(r).length && !notes.some((n) => meets(n, r));
    };
    for (let ring = 0; ring <= 12; ring += 1) {
      const d = ring * 48;
      const tries = ring ? [[0, -d], [0, d], [-d, 0], [d, 0], [-d, -d], [d, -d], [-d, d], [d, d]] : [[0, 0]];
      for (const [dx, dy] of tries) {
        const p = { x: start.x + dx, y: start.y + dy };
        if (free(p)) return p;
      }
    }
    return { ...start };
  }

  edit(id) {
    if (this.readOnly || this.blocked() || !this.els.has(id)) return;
    if (this.editing && this.editing.id !== id) this.finish();
    const note = notesOf(this.getDoc()).find((n) => n.id === id);
    if (!note) return;
    this.editing = { id, draft: String(note.text ?? ""), fresh: false };
    this.openEditor(id, this.editing.draft);
  }

  openEditor(id, text) {
    const el = this.els.get(id);
    const input = h("textarea", {
      class: "note-input", "aria-label": "Note text", rows: String(Math.max(2, text.split("\n").length)),
      placeholder: "Write a note…", maxlength: "2000",
    });
    input.value = text;
    const grow = () => {
      if (this.editing) this.editing.draft = input.value;
      input.style.height = "auto";
      input.style.height = `${input.scrollHeight}px`;
    };
    input.addEventListener("input", grow);
    input.addEventListener("blur", () => { if (this.editing && this.editing.id === id) this.finish(); });
    input.addEventListener("keydown", (e) => {
      e.stopPropagation();
      if (e.key === "Escape" || (e.key === "Enter" && (e.ctrlKey || e.metaKey))) {
        e.preventDefault();
        this.finish({ refocus: true });
      }
    });
    el.classList.add("editing");
    el.querySelector(".note-text").replaceWith(input);
    requestAnimationFrame(grow);
    input.focus({ preventScroll: true });
    input.setSelectionRange(input.value.length, input.value.length);
  }

  /** End the edit in progress: save its words (a new note only when it has some; emptied, a note goes). */
  finish({ refocus = false } = {}) {
    const e = this.editing;
    if (!e) return;
    this.editing = null;
    const text = e.draft.replace(/\s+$/, "");
    const doc = this.getDoc();
    if (e.fresh) {
      if (text.trim()) this.commit(withNote(doc, { id: e.id, text, position: e.position }));
      else this.setDocument(doc);
    } else {
      const note = notesOf(doc).find((n) => n.id === e.id);
      if (!note) this.setDocument(doc);
      else if (!text.trim()) this.remove(e.id);
      else if (text !== note.text) this.commit(withNoteFields(doc, e.id, { text }));
      else this.setDocument(doc);
    }
    if (refocus && this.els.has(e.id)) this.els.get(e.id).focus({ preventScroll: true });
  }

  remove(id) {
    if (this.readOnly || this.blocked()) return;
    if (this.editing && this.editing.id === id) {
      const fresh = this.editing.fresh;
      this.editing = null;
      if (fresh) {
        this.setDocument(this.getDoc());
        return;
      }
    }
    if (!notesOf(this.getDoc()).some((n) => n.id === id)) return;
    this.commit(withoutNote(this.getDoc(), id));
    this.canvas.root.focus({ preventScroll: true });
    this.say("Removed the note.");
  }

  move(id, pos) {
    const el = this.els.get(id);
    if (!el) return;
    el.pos = pos;
    el.style.transform = `translate(${pos.x}px, ${pos.y}px)`;
  }

  // ------------------------------------------------------------ input

  onPointerDown(e) {
    const el = e.target.closest(".note");
    if (!el || e.button !== 0) return;
    e.stopPropagation(); // the canvas would pan or clear its selection
    if (e.target.closest("textarea, button")) return;
    this.canvas.select([]);
    if (this.readOnly || this.blocked() || (this.editing && this.editing.id === el.dataset.noteId)) {
      el.focus({ preventScroll: true });
      return;
    }
    e.preventDefault();
    el.focus({ preventScroll: true });
    const id = el.dataset.noteId;
    const start = { x: e.clientX, y: e.clientY, pos: { ...el.pos } };
    let moved = false;
    el.setPointerCapture(e.pointerId);
    const move = (ev) => {
      const dx = ev.clientX - start.x;
      const dy = ev.clientY - start.y;
      if (!moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
      moved = true;
      el.classList.add("dragging");
      const k = this.canvas.view.k;
      this.move(id, { x: start.pos.x + dx / k, y: start.pos.y + dy / k });
    };
    const up = () => {
      el.removeEventListener("pointermove", move);
      el.removeEventListener("pointerup", up);
      el.removeEventListener("pointercancel", up);
      el.classList.remove("dragging");
      if (!moved) return;
      const snapped = { x: Math.round(el.pos.x / GRID) * GRID, y: Math.round(el.pos.y / GRID) * GRID };
      this.place(id, snapped);
    };
    el.addEventListener("pointermove", move);
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
  }

  /** Record a note's new place (a note without a place in the file gets one). */
  place(id, pos) {
    if (!notesOf(this.getDoc()).some((n) => n.id === id)) return;
    this.commit(withNoteFields(this.getDoc(), id, { position: { x: Math.round(pos.x), y: Math.round(pos.y) } }));
    const el = this.els.get(id);
    if (el) el.focus({ preventScroll: true });
  }

  onKeyDown(e) {
    const el = e.target.closest && e.target.closest(".note");
    if (!el || e.target !== el) return;
    const id = el.dataset.noteId;
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (e.key === "Enter") {
      this.edit(id);
    } else if (e.key === "Delete" || e.key === "Backspace") {
      this.remove(id);
    } else if (arrows[e.key] && !this.readOnly && !this.blocked()) {
      const step = e.shiftKey ? GRID * 8 : GRID * 2;
      const [dx, dy] = arrows[e.key];
      this.place(id, { x: el.pos.x + dx * step, y: el.pos.y + dy * step });
    } else if (e.key === "Escape") {
      this.canvas.root.focus({ preventScroll: true });
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();
  }
}
