// Small DOM and formatting helpers shared by the studio's modules.

/** Create an element: h("div", {class: "x", onclick: fn}, child, "text"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.includes("-")) el.style.setProperty(prop, v);
        else el.style[prop] = v;
      }
    } else if (key === "text") {
      el.textContent = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children, skipping null/false and flattening arrays. */
export function put(el, ...children) {
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Create an SVG element with attributes. */
export function svg(tag, attrs = {}) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  return el;
}

/** Remove every child of an element. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

const numberFormat = new Intl.NumberFormat("en-US");

/** 1204 -> "1,204". */
export function formatNumber(n) {
  return numberFormat.format(n);
}

/** "1 record" / "1,204 records". */
export function formatRecords(n) {
  return `${formatNumber(n)} ${n === 1 ? "record" : "records"}`;
}

/** A byte count for people: "812 bytes", "4.2 KB", "1.3 GB". */
export function formatBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${formatNumber(n)} ${n === 1 ? "byte" : "bytes"}`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** Seconds for people: "340 ms" under a second, then "2.4 s", "12 s", "3 min 4 s", "1 h 5 min". */
export function formatDuration(s) {
  if (s === null || s === undefined || s === "" || !Number.isFinite(Number(s))) return "";
  const sec = Math.max(0, Number(s));
  const ms = Math.round(sec * 1000);
  if (ms < 1) return "under 1 ms";
  if (ms < 1000) return `${ms} ms`;
  // Round first, so 9.97 s reads "10 s" and 59.7 s reads "1 min", never "10.0 s" or "60 s".
  if (sec < 9.95) return `${sec.toFixed(1)} s`;
  if (sec < 59.5) return `${Math.round(sec)} s`;
  const total = Math.round(sec);
  const m = Math.floor(total / 60);
  const rest = total % 60;
  if (m < 60) return rest ? `${m} min ${rest} s` : `${m} min`;
  const hours = Math.floor(m / 60);
  return m % 60 ? `${hours} h ${m % 60} min` : `${hours} h`;
}

/** Parse a timestamp from the API (ISO text or epoch seconds). */
export function parseTime(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return new Date(value * 1000);
  let text = String(value);
  // The server stores UTC; a naive ISO string would otherwise read as local time.
  if (/T\d\d:\d\d/.test(text) && !/(Z|[+-]\d\d:?\d\d)$/.test(text)) text += "Z";
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "just now", "5 min ago", "yesterday 14:02", or a date. */
export function formatWhen(value) {
  const date = value instanceof Date ? value : parseTime(value);
  if (!date) return "";
  const seconds = (Date.now() - date.getTime()) / 1000;
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const today = new Date();
  if (date.toDateString() === today.toDateString()) return `today ${time}`;
  const yesterday = new Date(today.getTime() - 86400000);
  if (date.toDateString() === yesterday.toDateString()) return `yesterday ${time}`;
  return `${date.toLocaleDateString()} ${time}`;
}

/** Pick black or white text for a background colour (#rrggbb) for the best contrast. */
export function textColorFor(hex) {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
  if (!m) return "#fff";
  const n = parseInt(m[1], 16);
  const channel = (c) => {
    const v = c / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const lum = 0.2126 * channel((n >> 16) & 255) + 0.7152 * channel((n >> 8) & 255) + 0.0722 * channel(n & 255);
  // Contrast against black is (lum + 0.05) / 0.05; against white 1.05 / (lum + 0.05).
  return (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) ? "#111418" : "#ffffff";
}

/** Run `fn` at most once per animation frame, with the latest arguments. */
export function rafThrottle(fn) {
  let frame = 0;
  let lastArgs = [];
  return (...args) => {
    lastArgs = args;
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      fn(...lastArgs);
    });
  };
}

/** Call `fn` once `ms` have passed without another call; `.flush()` runs it now. */
export function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = 0;
      fn(...args);
    }, ms);
  };
  wrapped.pending = () => timer !== 0;
  wrapped.flush = () => {
    if (!timer) return;
    clearTimeout(timer);
    timer = 0;
    fn();
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = 0;
  };
  return wrapped;
}
