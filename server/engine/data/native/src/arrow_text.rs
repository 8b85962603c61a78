//! Arrow record batches to json, ndjson or csv text: `pipeloom-convert - arrow DST DST_FMT`.
//!
//! The column buffers of each record batch come on stdin, as pyarrow holds them (arrowpipe.py sends
//! them; arrow_read.rs reads them); this writes the records' text to DST exactly as Pipeloom's Python
//! conversion writes the same values (formats.py: json_text and csv_cell), and prints {"count": N}.
//! A thread reads the batches, this one encodes them, and another writes the text.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::arrow_read::*;
use crate::json_read::json_str;
use crate::numbers::{write_f64, write_f64_repr, write_i64, write_u64};
use crate::scan::find4;

const WRITE: usize = 1 << 20; // bytes per write: much larger writes cost the kernel far more here

/// The text of each value of every dictionary in `c` (csv cells for a column's own values with `cell`, else
/// JSON), made once for the batch.
fn dictionaries(t: &Type, c: &mut Col, cell: bool) {
    if t.tag == DICT {
        let (vt, values) = (&t.children[0], &c.children[0]);
        let mut scratch = Vec::new();
        let (mut texts, mut ends) = (Vec::new(), Vec::with_capacity(values.len));
        for k in 0..values.len {
            if cell {
                csv_value(vt, values, k, &mut scratch, &mut texts);
            } else {
                json_value(vt, values, k, true, &mut texts);
            }
            ends.push(texts.len());
        }
        texts.resize(texts.len() + PAD, 0);
        c.texts = texts;
        c.ends = ends;
        return;
    }
    for (ct, cc) in t.children.iter().zip(c.children.iter_mut()) {
        dictionaries(ct, cc, false);
    }
}

/// A dictionary's text for the value at row `i`.
#[inline]
fn dict_text(t: &Type, c: &Col, i: usize, out: &mut Vec<u8>) {
    let k = index(t.index, c.data, i);
    let start = if k == 0 { 0 } else { c.ends[k - 1] };
    put(&c.texts, start, c.ends[k] - start, out);
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes in `v` is below 0x20, a quote or a backslash.
#[inline]
fn needs_escape(v: u64) -> bool {
    let control = v.wrapping_sub(LOW * 0x20) & !v; // high bit set in a byte below 0x20 (or a false hit above 0x7f)
    let quote = (v ^ (LOW * b'"' as u64)).wrapping_sub(LOW) & !(v ^ (LOW * b'"' as u64));
    let slash = (v ^ (LOW * b'\\' as u64)).wrapping_sub(LOW) & !(v ^ (LOW * b'\\' as u64));
    (control | quote | slash) & HIGH != 0
}

/// `padded[r]` as a JSON string, as Python's json module writes it with ensure_ascii=False.
#[inline]
fn json_str_at(padded: &[u8], r: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let s = &padded[r.clone()];
    // most strings need no escape: looked for 8 bytes at a time, and copied by `put`
    let mut k = 0;
    while k + 8 <= s.len() {
        let v = u64::from_le_bytes(s[k..k + 8].try_into().unwrap());
        if needs_escape(v) {
            break;
        }
        k += 8;
    }
    if k + 8 > s.len() && !s[k..].iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push(b'"');
        put(padded, r.start, s.len(), out);
        out.push(b'"');
        return;
    }
    json_str(s, out);
}

/// A csv cell as Python's csv module writes it (quoted when it holds `,`, `"`, CR or LF).
#[inline]
fn csv_quoted(cell: &[u8], out: &mut Vec<u8>) {
    if find4(cell, b',', b'"', b'\n', b'\r').is_none() {
        out.extend_from_slice(cell);
        return;
    }
    csv_escaped(cell, out);
}

/// A csv cell of the string `padded[r]`.
#[inline]
fn csv_str(padded: &[u8], r: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let cell = &padded[r.clone()];
    if find4(cell, b',', b'"', b'\n', b'\r').is_none() {
        put(padded, r.start, cell.len(), out);
        return;
    }
    csv_escaped(cell, out);
}

/// A cell in quotes, each quote in it doubled.
fn csv_escaped(cell: &[u8], out: &mut Vec<u8>) {
    out.reserve(cell.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in cell.iter().enumerate() {
        if b == b'"' {
            out.extend_from_slice(&cell[start..=i]);
            out.push(b'"');
            start = i + 1;
        }
    }
    out.extend_from_slice(&cell[start..]);
    out.push(b'"');
}

/// Integers, floats and booleans: the same text in JSON and csv but for NaN and the infinities.
#[inline]
fn scalar(tag: u8, c: &Col, i: usize, json: bool, out: &mut Vec<u8>) {
    match tag {
        BOOL => out.extend_from_slice(if c.bits.get(i) { b"true" } else { b"false" }),
        I8 => write_i64(i8::from_le_bytes(le(c.data, i)) as i64, out),
        I16 => write_i64(i16::from_le_bytes(le(c.data, i)) as i64, out),
        I32 => write_i64(i32::from_le_bytes(le(c.data, i)) as i64, out),
        I64 => write_i64(i64::from_le_bytes(le(c.data, i)), out),
        U8 => write_u64(u8::from_le_bytes(le(c.data, i)) as u64, out),
        U16 => write_u64(u16::from_le_bytes(le(c.data, i)) as u64, out),
        U32 => write_u64(u32::from_le_bytes(le(c.data, i)) as u64, out),
        U64 => write_u64(u64::from_le_bytes(le(c.data, i)), out),
        F32 | F64 => {
            let x = if tag == F32 { f32::from_le_bytes(le(c.data, i)) as f64 } else { f64::from_le_bytes(le(c.data, i)) };
            if json {
                if x.is_finite() {
                    write_f64(x, out);
                } else {
                    out.extend_from_slice(b"null"); // JSON has no NaN: json_text writes null
                }
            } else {
                write_f64_repr(x, out);
            }
        }
        _ => {}
    }
}

/// Value `i` of `c` as JSON text: spaced (", " and ": ", as records are written) or compact.
fn json_value(t: &Type, c: &Col, i: usize, spaced: bool, out: &mut Vec<u8>) {
    if c.null(i) {
        out.extend_from_slice(b"null");
        return;
    }
    match t.tag {
        NULL => out.extend_from_slice(b"null"),
        STR | LSTR => json_str_at(c.padded, c.offsets.range(i), out),
        DICT => dict_text(t, c, i, out),
        TEXT | LTEXT => {
            let r = c.offsets.range(i);
            put(c.padded, r.start, r.len(), out);
        }
        LIST | LLIST => {
            out.push(b'[');
            let (it, items) = (&t.children[0], &c.children[0]);
            let r = c.offsets.range(i);
            let first = r.start;
            for k in r {
                if k > first {
                    out.extend_from_slice(if spaced { b", " } else { b"," });
                }
                json_value(it, items, k, spaced, out);
            }
            out.push(b']');
        }
        STRUCT => {
            out.push(b'{');
            for (f, (ft, fc)) in t.children.iter().zip(&c.children).enumerate() {
                if f > 0 {
                    out.extend_from_slice(if spaced { b", " } else { b"," });
                }
                t.keys[f].put(out);
                out.extend_from_slice(if spaced { b": " } else { b":" });
                json_value(ft, fc, i, spaced, out);
            }
            out.push(b'}');
        }
        _ => scalar(t.tag, c, i, true, out),
    }
}

/// Value `i` of `c` as a csv cell (before the row's one-empty-cell rule).
fn csv_value(t: &Type, c: &Col, i: usize, scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    if c.null(i) {
        return;
    }
    match t.tag {
        NULL => {}
        STR | LSTR => csv_str(c.padded, c.offsets.range(i), out),
        DICT => dict_text(t, c, i, out),
        TEXT | LTEXT => {
            let r = c.offsets.range(i);
            put(c.padded, r.start, r.len(), out);
        }
        LIST | LLIST | STRUCT => {
            scratch.clear();
            json_value(t, c, i, false, scratch); // nested values: compact JSON, then quoted
            csv_quoted(scratch, out);
        }
        _ => scalar(t.tag, c, i, false, out),
    }
}

pub(crate) fn convert(src: &str, dst: &str, dst_fmt: &str) -> Result<u64, String> {
    if src != "-" {
        return Err("arrow batches come on stdin (SRC -)".into());
    }
    let (json, array) = match dst_fmt {
        "json" => (true, true),
        "ndjson" => (true, false),
        "csv" => (false, false),
        _ => return Err(format!("no arrow writer for {dst_fmt}")),
    };
    let stdin = std::io::stdin();
    let mut r = stdin.lock();
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(io)?;
    if &magic != b"PLAT\x01\x00\x00\x00" {
        return Err("not an arrow column stream".into());
    }
    let ncols = read_u32(&mut r)? as usize;
    let mut keys = Vec::new();
    let mut types = Vec::new();
    for _ in 0..ncols.min(1 << 16) {
        keys.push(read_bytes(&mut r, 1 << 20)?);
        types.push(read_type(&mut r, 0)?);
    }
    if keys.len() != ncols || ncols == 0 {
        return Err("no columns".into());
    }
    let preamble = read_bytes(&mut r, 1 << 30)?;
    // what goes before each value of a record: `{"key": ` or `, "key": `, or the csv comma
    let lead: Vec<Padded> = keys.iter().enumerate().map(|(k, key)| {
        if !json {
            return Padded::new(if k == 0 { b"" } else { b"," });
        }
        let mut l = if k == 0 { b"{".to_vec() } else { b", ".to_vec() };
        l.extend_from_slice(key);
        l.extend_from_slice(b": ");
        Padded::new(&l)
    }).collect();
    let mut sink = Sink::new(File::create(dst).map_err(io)?);
    drop(r);
    let batches = Batches::start();
    let done = encode(&batches, &types, &lead, json, array, preamble, &mut sink);
    let closed = sink.finish();
    let count = done?;
    closed?;
    Ok(count)
}

/// The text of every batch, into `sink`; the record count.
fn encode(batches: &Batches, types: &[Type], lead: &[Padded], json: bool, array: bool, preamble: Vec<u8>,
          sink: &mut Sink) -> Result<u64, String> {
    let ncols = types.len();
    let mut count: u64 = 0;
    let mut out = preamble;
    out.reserve(WRITE + (1 << 16));
    let mut scratch: Vec<u8> = Vec::new();
    for batch in batches.iter() {
        let Batch { rows, words, bytes } = batch?;
        if rows == u64::MAX {
            break;
        }
        let (nwords, nbytes) = (words.len(), bytes.len() - PAD);
        let mut p = Parse { words: &words, w: 0, bytes: &bytes, b: 0 };
        let mut cols = Vec::with_capacity(ncols);
        for t in types {
            let mut c = p.col(t)?;
            dictionaries(t, &mut c, !json);
            if c.len as u64 != rows {
                return Err("a column of another length".into());
            }
            cols.push(c);
        }
        if p.w != nwords || p.b != nbytes {
            return Err("a batch longer than its columns".into());
        }
        for i in 0..rows as usize {
            if json {
                if array {
                    out.extend_from_slice(if count == 0 && i == 0 { b"[\n" } else { b",\n" });
                }
                for k in 0..ncols {
                    lead[k].put(&mut out);
                    json_value(&types[k], &cols[k], i, true, &mut out);
                }
                out.extend_from_slice(if array { b"}" } else { b"}\n" });
            } else {
                let start = out.len();
                for k in 0..ncols {
                    lead[k].put(&mut out);
                    csv_value(&types[k], &cols[k], i, &mut scratch, &mut out);
                }
                if ncols == 1 && out.len() == start {
                    out.extend_from_slice(b"\"\""); // one empty cell: quoted, or the row would be a blank line
                }
                out.push(b'\n');
            }
            if out.len() >= WRITE {
                sink.send(&mut out)?;
            }
        }
        count += rows;
        let _ = batches.spare.send(Batch { rows, words, bytes });
    }
    if array {
        out.extend_from_slice(if count == 0 { b"[]\n" } else { b"\n]\n" });
    }
    sink.send(&mut out)?;
    Ok(count)
}

/// Text written by a thread of its own, a buffer at a time, while the next buffer is encoded.
struct Sink {
    tx: Option<SyncSender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>, // buffers written, to fill again
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Sink {
    fn new(mut f: File) -> Sink {
        let (tx, rx) = sync_channel::<Vec<u8>>(4);
        let (back, spare) = channel::<Vec<u8>>();
        let thread = std::thread::spawn(move || {
            for buf in rx {
                f.write_all(&buf).map_err(io)?;
                let _ = back.send(buf);
            }
            Ok(())
        });
        Sink { tx: Some(tx), spare, thread: Some(thread) }
    }

    /// Hand `out` to the writer; `out` is then an empty buffer.
    fn send(&mut self, out: &mut Vec<u8>) -> Result<(), String> {
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(WRITE + (1 << 16)));
        let full = std::mem::replace(out, next);
        out.clear();
        let sent = self.tx.as_ref().map(|tx| tx.send(full).is_ok()).unwrap_or(false);
        if !sent {
            self.finish()?; // the writer's error
            return Err("the writer stopped".into());
        }
        Ok(())
    }

    /// Wait for everything sent to be written.
    fn finish(&mut self) -> Result<(), String> {
        drop(self.tx.take());
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "the writer stopped".to_string())?,
            None => Ok(()),
        }
    }
}
