// The REST client: every request carries the page's token and speaks JSON.

const meta = document.querySelector('meta[name="pipeloom-token"]');
export const token = meta ? meta.content : "";

/** An error answer from the API: `message` is the server's own text. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `request failed (HTTP ${status})`);
    this.status = status;
    this.body = body || {};
    this.details = Array.isArray(this.body.details) ? this.body.details : [];
  }
}

/** Send a request; resolve with the parsed JSON body, or reject with ApiError. */
export async function request(method, url, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: "same-origin" };
  // every write is JSON: the server refuses any other content type (415), as a cross-site form could send it
  if (body === undefined && method !== "GET" && method !== "HEAD") body = {};
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, { error: "The Pipeloom server cannot be reached. Is it still running?" });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text.slice(0, 300) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (url) => request("GET", url);

/** Fetch a file the API offers as a download and save it under `name` (a page, an export). */
export async function download(url, name) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { headers, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, { error: "The Pipeloom server cannot be reached. Is it still running?" });
  }
  if (!response.ok) {
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    throw new ApiError(response.status, data);
  }
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement("a"), { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
export const post = (url, body = {}) => request("POST", url, body);
export const put = (url, body = {}) => request("PUT", url, body);

/** Encode one path segment (pipeline ids contain dots, node ids dashes). */
export const seg = (value) => encodeURIComponent(String(value));

/** Describe an ApiError's details as readable lines: "node `parse`: message (line 12)". */
export function detailLines(err) {
  return (err.details || []).map((d) => {
    if (typeof d === "string") return d;
    const where = d.where ? `${d.where}: ` : "";
    const line = d.line ? ` (line ${d.line})` : "";
    return `${where}${d.message || JSON.stringify(d)}${line}`;
  });
}
