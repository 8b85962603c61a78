'use strict';
/**
 * Read a node's inputs and write its outputs by port name, in their declared formats.
 *
 *   const pipeloom = require('pipeloom');
 *   const out = pipeloom.writer('events');
 *   for (const rec of pipeloom.records('raw_events')) out.write(rec);
 *   out.close();
 *
 * Ports come from PIPELOOM_PORTS, which Pipeloom sets for every node. When it is
 * absent (a program run by hand), a port `x` falls back to PIPELOOM_INPUT_X /
 * PIPELOOM_OUTPUT_X, then to `x.<ext>` in the current folder, the format guessed
 * from the extension. A name with an extension (`config.json`) names a file directly.
 *
 * No dependencies. Parquet is not read here: declare the port as json, ndjson or
 * csv and Pipeloom converts on the edge.
 */

const fs = require('fs');
const path = require('path');
const { StringDecoder } = require('string_decoder');

const FORMATS = ['json', 'ndjson', 'csv', 'text', 'binary', 'parquet'];
const EXTENSION_FORMATS = {
  '.json': 'json', '.ndjson': 'ndjson', '.jsonl': 'ndjson', '.csv': 'csv',
  '.txt': 'text', '.text': 'text', '.log': 'text', '.md': 'text',
  '.parquet': 'parquet', '.pq': 'parquet', '.bin': 'binary',
};
const GUESS_EXTENSIONS = ['.json', '.ndjson', '.jsonl', '.csv', '.txt', '.log', '.parquet', '.bin'];
const FORMAT_EXTENSION = {
  json: '.json', ndjson: '.ndjson', csv: '.csv', text: '.txt', binary: '.bin', parquet: '.parquet',
};
const CHUNK = 1 << 20;

class PipeloomError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PipeloomError';
  }
}

// ------------------------------------------------------------------ ports

function workdir() {
  return process.env.PIPELOOM_WORKDIR || process.cwd();
}

function declaredPorts() {
  const raw = process.env.PIPELOOM_PORTS;
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new PipeloomError(`PIPELOOM_PORTS is not valid JSON: ${err.message}`);
  }
}

function envKey(name) {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

function guessFormat(p) {
  return EXTENSION_FORMATS[path.extname(p).toLowerCase()] || 'binary';
}

function makePort(name, p, format, kind) {
  return { name, path: p, format, kind, where: `${kind} \`${name}\` (${p})` };
}

function resolve(name, kind, hint) {
  const all = declaredPorts() || {};
  const declared = all[`${kind}s`] || {};
  let entry = declared[name];
  if (!entry) entry = Object.values(declared).find((e) => e && path.basename(e.path || '') === name);
  if (entry) return makePort(name, entry.path, entry.format || guessFormat(entry.path), kind);
  const env = process.env[`PIPELOOM_${kind.toUpperCase()}_${envKey(name)}`];
  if (env) return makePort(name, env, guessFormat(env), kind);
  const base = workdir();
  if (path.extname(name)) return makePort(name, path.join(base, name), guessFormat(name), kind);
  if (kind === 'input' || !hint) {
    for (const ext of GUESS_EXTENSIONS) {
      const p = path.join(base, name + ext);
      if (fs.existsSync(p)) return makePort(name, p, guessFormat(p), kind);
    }
  }
  if (kind === 'input') {
    const tried = GUESS_EXTENSIONS.slice(0, 4).map((e) => name + e).join(', ');
    throw new PipeloomError(
      `input \`${name}\` not found: PIPELOOM_PORTS does not declare it and none of ${tried}, ... exists in ${base}`);
  }
  const format = hint || 'json';
  return makePort(name, path.join(base, name + (FORMAT_EXTENSION[format] || `.${format}`)), format, kind);
}

/** The resolved input port `name`: {name, path, format}. */
function input(name) {
  return resolve(name, 'input');
}

/** The resolved output port `name`; `format` only guides the by-hand fallback. */
function output(name, format) {
  return resolve(name, 'output', format);
}

/** Absolute path of input `name`. */
function inputPath(name) {
  return input(name).path;
}

/** Absolute path where output `name` must be written. */
function outputPath(name) {
  return output(name).path;
}

/** The node's params: PIPELOOM_PARAMS, else params.json in the working folder, else {}. */
function params() {
  let raw = process.env.PIPELOOM_PARAMS;
  let source = 'PIPELOOM_PARAMS';
  if (raw === undefined) {
    const p = path.join(workdir(), 'params.json');
    if (!fs.existsSync(p)) return {};
    raw = fs.readFileSync(p, 'utf8');
    source = p;
  }
  if (!raw.trim()) return {};
  try {
    const value = JSON.parse(raw);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : { value };
  } catch (err) {
    throw new PipeloomError(`params in ${source} are not valid JSON: ${err.message}`);
  }
}

// ------------------------------------------------------------------ reading

function readFile(port, encoding) {
  try {
    return fs.readFileSync(port.path, encoding);
  } catch (err) {
    if (err.code === 'ENOENT') throw new PipeloomError(`${port.where}: file not found`);
    throw new PipeloomError(`${port.where}: cannot read: ${err.message}`);
  }
}

function noParquet(port) {
  return new PipeloomError(
    `${port.where}: parquet is read and written from Python only; declare this port as json, ndjson ` +
    'or csv and Pipeloom converts on the edge');
}

/**
 * Input `name` as native data: json -> its value, ndjson/csv -> an array of objects,
 * text -> a string, binary -> a Buffer.
 */
function read(name) {
  const port = input(name);
  switch (port.format) {
    case 'json': {
      const text = stripBom(readFile(port, 'utf8'));
      try {
        return JSON.parse(text);
      } catch (err) {
        throw new PipeloomError(`${port.where}: invalid JSON: ${err.message}`);
      }
    }
    case 'ndjson':
    case 'csv':
      return Array.from(portRecords(port));
    case 'text':
      return readFile(port, 'utf8');
    case 'binary':
      return readFile(port);
    case 'parquet':
      throw noParquet(port);
    default:
      throw new PipeloomError(`${port.where}: unknown format \`${port.format}\` (expected one of ${FORMATS.join(', ')})`);
  }
}

function stripBom(text) {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Text chunks of a file, read synchronously in 1 MiB pieces. */
function* textChunks(port) {
  let fd;
  try {
    fd = fs.openSync(port.path, 'r');
  } catch (err) {
    if (err.code === 'ENOENT') throw new PipeloomError(`${port.where}: file not found`);
    throw new PipeloomError(`${port.where}: cannot open: ${err.message}`);
  }
  const buf = Buffer.allocUnsafe(CHUNK);
  const decoder = new StringDecoder('utf8');
  let first = true;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      if (n === 0) break;
      let text = decoder.write(buf.subarray(0, n));
      if (first) {
        text = stripBom(text);
        first = false;
      }
      if (text) yield text;
    }
    const rest = decoder.end();
    if (rest) yield rest;
  } finally {
    fs.closeSync(fd);
  }
}

function* lines(port) {
  let carry = '';
  for (const chunk of textChunks(port)) {
    const text = carry + chunk;
    let start = 0;
    let nl;
    while ((nl = text.indexOf('\n', start)) !== -1) {
      yield text.charCodeAt(nl - 1) === 13 && nl > start ? text.slice(start, nl - 1) : text.slice(start, nl);
      start = nl + 1;
    }
    carry = text.slice(start);
  }
  if (carry) yield carry.endsWith('\r') ? carry.slice(0, -1) : carry;
}

function* ndjsonRecords(port) {
  let n = 0;
  for (const line of lines(port)) {
    n += 1;
    if (!line.trim()) continue;
    try {
      yield JSON.parse(line);
    } catch (err) {
      throw new PipeloomError(`${port.where} line ${n}: invalid JSON: ${err.message}`);
    }
  }
}

/** An RFC 4180 parser fed with text pieces: quotes, doubled quotes, embedded newlines. */
class CsvParser {
  constructor() {
    this.field = '';
    this.row = [];
    this.inQuotes = false;
    this.quoteSeen = false; // a quote inside a quoted field: either "" or its end
    this.rows = [];
    this.touched = false;
  }

  push(text) {
    const n = text.length;
    let i = 0;
    while (i < n) {
      if (this.inQuotes) {
        if (this.quoteSeen) {
          this.quoteSeen = false;
          if (text.charCodeAt(i) === 34) {
            this.field += '"';
            i += 1;
            continue;
          }
          this.inQuotes = false;
          continue;
        }
        const q = text.indexOf('"', i);
        if (q === -1) {
          this.field += text.slice(i);
          return;
        }
        this.field += text.slice(i, q);
        this.quoteSeen = true;
        i = q + 1;
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === 44) { // ,
        this.row.push(this.field);
        this.field = '';
        this.touched = true;
        i += 1;
      } else if (c === 10 || c === 13) {
        if (c === 13 && i + 1 < n && text.charCodeAt(i + 1) === 10) i += 1;
        this.endRow();
        i += 1;
      } else if (c === 34 && this.field === '') {
        this.inQuotes = true;
        this.touched = true;
        i += 1;
      } else {
        let j = i;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === 44 || d === 10 || d === 13) break;
          j += 1;
        }
        this.field += text.slice(i, j);
        this.touched = true;
        i = j;
      }
    }
  }

  endRow() {
    if (this.touched || this.field !== '') {
      this.row.push(this.field);
      this.rows.push(this.row);
    }
    this.row = [];
    this.field = '';
    this.touched = false;
  }

  end() {
    if (this.inQuotes && !this.quoteSeen) throw new Error('a quoted field is not closed');
    this.inQuotes = false;
    this.quoteSeen = false;
    this.endRow();
  }

  take() {
    const out = this.rows;
    this.rows = [];
    return out;
  }
}

function* csvRecords(port) {
  const parser = new CsvParser();
  let header = null;
  const emit = function* (rows) {
    for (const row of rows) {
      if (header === null) {
        header = row;
        continue;
      }
      const rec = {};
      for (let k = 0; k < header.length; k += 1) rec[header[k]] = k < row.length ? row[k] : '';
      yield rec;
    }
  };
  for (const chunk of textChunks(port)) {
    parser.push(chunk);
    yield* emit(parser.take());
  }
  try {
    parser.end();
  } catch (err) {
    throw new PipeloomError(`${port.where}: invalid csv: ${err.message}`);
  }
  yield* emit(parser.take());
}

/**
 * Items of a top-level JSON array in bounded memory: a scanner finds where each
 * item ends (tracking nesting and strings) and JSON.parse reads that slice.
 */
function* jsonArrayRecords(port) {
  let carry = '';
  let started = false;
  let finished = false;
  let depth = 0;
  let inStr = false;
  let esc = false;
  let itemStart = -1; // index in the current text where the pending item began
  let needComma = false; // an item just ended: only `,` or `]` may follow
  let afterComma = false;
  const invalid = (why) => new PipeloomError(`${port.where}: invalid JSON: ${why}`);
  let out = [];
  const emit = (slice) => {
    try {
      out.push(JSON.parse(slice));
    } catch (err) {
      throw invalid(err.message);
    }
    itemStart = -1;
    needComma = true;
  };
  const begin = (i) => {
    if (needComma) throw invalid('expected `,` or `]` between items');
    itemStart = i;
  };
  for (const chunk of textChunks(port)) {
    if (finished) {
      if (chunk.trim()) throw invalid('text after the closing `]`');
      continue;
    }
    const text = carry + chunk;
    const n = text.length;
    out = [];
    for (let i = carry.length; i < n; i += 1) {
      const c = text.charCodeAt(i);
      if (inStr) {
        if (esc) esc = false;
        else if (c === 92) esc = true;
        else if (c === 34) {
          inStr = false;
          if (depth === 0) emit(text.slice(itemStart, i + 1));
        }
        continue;
      }
      if (c === 32 || c === 10 || c === 13 || c === 9) {
        if (itemStart !== -1 && depth === 0) emit(text.slice(itemStart, i));
        continue;
      }
      if (!started) {
        if (c !== 91) {
          throw new PipeloomError(
            `${port.where}: expected a JSON array of records, found ${JSON.stringify(text.slice(i, i + 20))}; use read() for other JSON documents`);
        }
        started = true;
        continue;
      }
      if (c === 123 || c === 91) { // { [
        if (depth === 0 && itemStart === -1) begin(i);
        depth += 1;
      } else if (c === 125 || (c === 93 && depth > 0)) { // } ]
        if (depth === 0) throw invalid('unexpected `}`');
        depth -= 1;
        if (depth === 0) emit(text.slice(itemStart, i + 1));
      } else if (depth === 0 && (c === 44 || c === 93)) { // , or the closing ]
        if (itemStart !== -1) emit(text.slice(itemStart, i));
        if (c === 44) {
          if (!needComma) throw invalid('unexpected `,`');
          needComma = false;
          afterComma = true;
          continue;
        }
        if (afterComma && !needComma) throw invalid('a `,` before the closing `]`');
        finished = true;
        if (text.slice(i + 1).trim()) throw invalid('text after the closing `]`');
        break;
      } else if (c === 34) {
        if (depth === 0 && itemStart === -1) begin(i);
        inStr = true;
      } else if (depth === 0 && itemStart === -1) {
        begin(i); // a number or a literal
      }
    }
    if (itemStart !== -1) {
      carry = text.slice(itemStart);
      itemStart = 0;
    } else {
      carry = '';
    }
    yield* out;
  }
  if (!started) throw new PipeloomError(`${port.where}: expected a JSON array of records, found an empty file`);
  if (!finished) throw new PipeloomError(`${port.where}: JSON array is not closed (missing \`]\`)`);
}

/**
 * Stream the records of input `name`: the items of a JSON array, ndjson lines,
 * csv rows (objects of strings) or text lines (without the newline).
 */
function records(name) {
  return portRecords(input(name));
}

function portRecords(port) {
  switch (port.format) {
    case 'json': return jsonArrayRecords(port);
    case 'ndjson': return ndjsonRecords(port);
    case 'csv': return csvRecords(port);
    case 'text': return lines(port);
    case 'parquet': throw noParquet(port);
    default:
      throw new PipeloomError(`${port.where}: format \`${port.format}\` has no records; use read() instead`);
  }
}

// ------------------------------------------------------------------ writing

function csvCell(value) {
  if (value === null || value === undefined) return '';
  let s;
  if (typeof value === 'object') s = JSON.stringify(value);
  else s = String(value);
  if (/[",\r\n]/.test(s)) return `"${s.replace(/"/g, '""')}"`;
  return s;
}

/** Streams records into one output; the file appears only on close(). */
class Writer {
  constructor(port, options = {}) {
    this.port = port;
    this.count = 0;
    this.columns = options.columns ? Array.from(options.columns) : null;
    this.closed = false;
    this.parts = [];
    this.size = 0;
    if (port.format === 'parquet') throw noParquet(port);
    if (!FORMATS.includes(port.format)) {
      throw new PipeloomError(`${port.where}: unknown format \`${port.format}\` (expected one of ${FORMATS.join(', ')})`);
    }
    fs.mkdirSync(path.dirname(port.path), { recursive: true });
    this.tmp = path.join(path.dirname(port.path), `.${path.basename(port.path)}.tmp-${process.pid}`);
    try {
      this.fd = fs.openSync(this.tmp, 'w');
    } catch (err) {
      throw new PipeloomError(`${port.where}: cannot write: ${err.message}`);
    }
    if (port.format === 'json') this.push('[');
  }

  push(text) {
    this.parts.push(text);
    this.size += text.length;
    if (this.size >= CHUNK) this.flush();
  }

  flush() {
    if (!this.parts.length) return;
    const data = this.parts.join('');
    this.parts = [];
    this.size = 0;
    fs.writeSync(this.fd, data);
  }

  encode(record) {
    const s = JSON.stringify(record);
    if (s === undefined) throw new PipeloomError(`${this.port.where}: record ${this.count} cannot be written as JSON`);
    return s;
  }

  /** Append one record (an object for csv, any JSON value for json/ndjson, a line for text, a Buffer for binary). */
  write(record) {
    if (this.closed) throw new PipeloomError(`${this.port.where}: writer is already closed`);
    this.count += 1;
    switch (this.port.format) {
      case 'json':
        this.push((this.count > 1 ? ',\n' : '\n') + this.encode(record));
        break;
      case 'ndjson':
        this.push(`${this.encode(record)}\n`);
        break;
      case 'csv':
        this.writeCsv(record);
        break;
      case 'text':
        this.push(`${record}\n`);
        break;
      case 'binary':
        this.flush();
        fs.writeSync(this.fd, Buffer.isBuffer(record) ? record : Buffer.from(record));
        break;
      default:
        throw new PipeloomError(`${this.port.where}: unknown format \`${this.port.format}\``);
    }
  }

  writeCsv(record) {
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw new PipeloomError(`${this.port.where}: csv records must be objects, got ${JSON.stringify(record)}`);
    }
    if (!this.header) {
      if (!this.columns) this.columns = Object.keys(record);
      this.header = new Set(this.columns);
      this.push(`${this.columns.map(csvCell).join(',')}\n`);
    }
    for (const k of Object.keys(record)) {
      if (!this.header.has(k)) {
        throw new PipeloomError(
          `${this.port.where}: record ${this.count} has field \`${k}\` not in the csv header [${this.columns.join(', ')}]; pass {columns} to writer()`);
      }
    }
    this.push(`${this.columns.map((c) => csvCell(record[c])).join(',')}\n`);
  }

  /** Append every record of an iterable. */
  writeMany(items) {
    for (const r of items) this.write(r);
  }

  /** Finish the file and move it into place. */
  close() {
    if (this.closed) return this.port.path;
    if (this.port.format === 'json') this.push(this.count ? '\n]\n' : ']\n');
    if (this.port.format === 'csv' && !this.header && this.columns) this.push(`${this.columns.map(csvCell).join(',')}\n`);
    this.flush();
    fs.closeSync(this.fd);
    this.closed = true;
    fs.renameSync(this.tmp, this.port.path);
    return this.port.path;
  }

  /** Drop the temporary file; nothing is published. */
  abort() {
    if (this.closed) return;
    this.closed = true;
    try { fs.closeSync(this.fd); } catch (_) { /* already closed */ }
    try { fs.unlinkSync(this.tmp); } catch (_) { /* already gone */ }
  }
}

/** A Writer streaming records into output `name`; call close() to publish it. */
function writer(name, options = {}) {
  return new Writer(output(name, options.format), options);
}

/**
 * Write output `name` in its declared format and return its path: json takes any
 * value; ndjson/csv an array (or iterable) of records; text a string; binary a Buffer.
 */
function write(name, data) {
  let hint;
  if (Buffer.isBuffer(data) || data instanceof Uint8Array) hint = 'binary';
  else if (typeof data === 'string') hint = 'text';
  const port = output(name, hint);
  if (port.format === 'json') {
    const s = JSON.stringify(data);
    if (s === undefined) throw new PipeloomError(`${port.where}: value cannot be written as JSON`);
    return writeWhole(port, `${s}\n`);
  }
  if (port.format === 'binary') return writeWhole(port, Buffer.from(data));
  if (port.format === 'text' && typeof data === 'string') return writeWhole(port, data);
  const w = new Writer(port, {});
  try {
    if (data !== null && typeof data === 'object' && !(Symbol.iterator in data)) w.write(data);
    else w.writeMany(data);
    return w.close();
  } catch (err) {
    w.abort();
    throw err;
  }
}

function writeWhole(port, content) {
  fs.mkdirSync(path.dirname(port.path), { recursive: true });
  const tmp = path.join(path.dirname(port.path), `.${path.basename(port.path)}.tmp-${process.pid}`);
  try {
    fs.writeFileSync(tmp, content);
    fs.renameSync(tmp, port.path);
  } catch (err) {
    try { fs.unlinkSync(tmp); } catch (_) { /* never written */ }
    throw new PipeloomError(`${port.where}: cannot write: ${err.message}`);
  }
  return port.path;
}

module.exports = {
  PipeloomError,
  CsvParser,
  params,
  input,
  output,
  inputPath,
  outputPath,
  read,
  records,
  write,
  writer,
};
