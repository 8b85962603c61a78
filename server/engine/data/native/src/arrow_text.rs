//! Arrow record batches to json, ndjson or csv text: `pipeloom-convert - arrow DST DST_FMT`.
//!
//! The column buffers of each record batch come on stdin, as pyarrow holds them (arrowpipe.py sends
//! them); this writes the records' text to DST exactly as Pipeloom's Python conversion writes the same
//! values (formats.py: json_text and csv_cell), and prints {"count": N}. The stream:
//!
//!     "PLAT" u32:1  u32:ncols  per column: key, node    u32:len preamble   (the text written first)
//!     node:  u8 tag; a struct: u32 nfields, per field: key, node; a list: its item node
//!     key:   u32 len, the name as JSON text (quoted, escaped)
//!     batch: u64 rows, u64 words, u64 bytes, `words` u64 (below), then `bytes` bytes of buffers;
//!            rows = u64::MAX ends the stream
//!
//! A batch's words describe every node, depth first in schema order: its length, its validity bitmap
//! (bytes, 0 when nothing is null; bit shift), then for a boolean its values' bitmap (bytes, bit shift),
//! for an integer or float its values' bytes, for a string or text its offsets' bytes and its data's
//! bytes, for a list its offsets' bytes; the buffers follow in that order. Offsets are rebased on the
//! first one. Tag TEXT is a column the caller encoded itself (its final text, verbatim).
//! Strings must be UTF-8 (else "fallback": the Python path decides what such bytes mean).

use std::fs::File;
use std::io::{Read, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use crate::numbers::{push_fixed, write_f64, write_f64_repr, write_i64, write_u64};
use crate::scan::find4;

const NULL: u8 = 0;
const BOOL: u8 = 1;
const I8: u8 = 2;
const I16: u8 = 3;
const I32: u8 = 4;
const I64: u8 = 5;
const U8: u8 = 6;
const U16: u8 = 7;
const U32: u8 = 8;
const U64: u8 = 9;
const F32: u8 = 10;
const F64: u8 = 11;
const STR: u8 = 12;
const LSTR: u8 = 13;
const LIST: u8 = 14;
const LLIST: u8 = 15;
const STRUCT: u8 = 16;
const TEXT: u8 = 17;
const LTEXT: u8 = 18;
const DICT: u8 = 19;
const MAX_DEPTH: usize = 64;
const WRITE: usize = 1 << 20; // bytes per write: much larger writes cost the kernel far more here

struct Type {
    tag: u8,
    index: u8, // a dictionary's index type
    keys: Vec<Padded>, // a struct's field names as JSON text
    children: Vec<Type>,
}

#[derive(Clone, Copy)]
struct Bits<'a> {
    bytes: &'a [u8],
    shift: usize,
}

impl Bits<'_> {
    #[inline]
    fn get(&self, i: usize) -> bool {
        let k = i + self.shift;
        self.bytes[k >> 3] >> (k & 7) & 1 != 0
    }
}

/// One node's buffers in the current batch.
struct Col<'a> {
    len: usize,
    valid: Option<Bits<'a>>,
    bits: Bits<'a>,       // a boolean's values
    data: &'a [u8],       // fixed-width values, or string bytes
    padded: &'a [u8],     // string bytes, and PAD bytes more after them (for put)
    offsets: Offsets<'a>, // strings and lists
    children: Vec<Col<'a>>,
    texts: Vec<u8>,       // a dictionary: the text of each value, one after the other, and PAD bytes more
    ends: Vec<usize>,     // and where each ends
}

/// The len + 1 offsets of a string or list array, as pyarrow holds them, read rebased on the first.
#[derive(Clone, Copy)]
struct Offsets<'a> {
    raw: &'a [u8],
    large: bool,
    base: i64,
}

impl Offsets<'_> {
    #[inline]
    fn at(&self, i: usize) -> usize {
        let v = if self.large {
            i64::from_le_bytes(self.raw[i * 8..i * 8 + 8].try_into().unwrap())
        } else {
            i32::from_le_bytes(self.raw[i * 4..i * 4 + 4].try_into().unwrap()) as i64
        };
        (v - self.base) as usize
    }

    /// The range of item `i`.
    #[inline]
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.at(i)..self.at(i + 1)
    }
}

const NO_OFFSETS: Offsets<'static> = Offsets { raw: &[], large: false, base: 0 };

impl Col<'_> {
    #[inline]
    fn null(&self, i: usize) -> bool {
        match &self.valid {
            Some(b) => !b.get(i),
            None => false,
        }
    }
}

fn io(e: std::io::Error) -> String {
    format!("io: {e}")
}

fn read_u32(r: &mut impl Read) -> Result<u32, String> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(io)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, String> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(io)?;
    Ok(u64::from_le_bytes(b))
}

fn read_bytes(r: &mut impl Read, max: usize) -> Result<Vec<u8>, String> {
    let n = read_u32(r)? as usize;
    if n > max {
        return Err("a malformed column stream".into());
    }
    let mut v = vec![0u8; n];
    r.read_exact(&mut v).map_err(io)?;
    Ok(v)
}

fn read_type(r: &mut impl Read, depth: usize) -> Result<Type, String> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep".into());
    }
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag).map_err(io)?;
    let tag = tag[0];
    let mut t = Type { tag, index: 0, keys: Vec::new(), children: Vec::new() };
    match tag {
        NULL..=LSTR | TEXT | LTEXT => {}
        LIST | LLIST => t.children.push(read_type(r, depth + 1)?),
        DICT => {
            let mut index = [0u8; 1];
            r.read_exact(&mut index).map_err(io)?;
            t.index = index[0];
            let values = read_type(r, depth + 1)?;
            if !(I8..=U64).contains(&t.index) || !(values.tag == STR || values.tag == LSTR) {
                return Err("a dictionary of another kind".into());
            }
            t.children.push(values);
        }
        STRUCT => {
            let n = read_u32(r)?;
            for _ in 0..n {
                t.keys.push(Padded::new(&read_bytes(r, 1 << 20)?));
                t.children.push(read_type(r, depth + 1)?);
            }
        }
        _ => return Err(format!("an unknown column type {tag}")),
    }
    if depth > 0 && (tag == TEXT || tag == LTEXT) {
        return Err("encoded text inside a value".into());
    }
    Ok(t)
}

fn width(tag: u8) -> usize {
    match tag {
        I8 | U8 => 1,
        I16 | U16 => 2,
        I32 | U32 | F32 => 4,
        _ => 8,
    }
}

/// Reads a batch's description (`words`) and buffers (`bytes`) into columns.
struct Parse<'a> {
    words: &'a [u64],
    w: usize,
    bytes: &'a [u8],
    b: usize,
}

impl<'a> Parse<'a> {
    fn word(&mut self) -> Result<usize, String> {
        let v = *self.words.get(self.w).ok_or("a short batch description")?;
        self.w += 1;
        usize::try_from(v).map_err(|_| "a number out of range".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.b.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("a short batch")?;
        let s = &self.bytes[self.b..end];
        self.b = end;
        Ok(s)
    }

    fn bits(&mut self, len: usize) -> Result<Option<Bits<'a>>, String> {
        let n = self.word()?;
        let shift = self.word()?;
        if n == 0 {
            return Ok(None);
        }
        let bytes = self.take(n)?;
        if shift > 7 || bytes.len() * 8 < len + shift {
            return Err("a short bitmap".into());
        }
        Ok(Some(Bits { bytes, shift }))
    }

    /// Offsets, checked: they never go back. (The last one, rebased, is checked against what it indexes.)
    fn offsets(&mut self, len: usize, large: bool) -> Result<Offsets<'a>, String> {
        let n = self.word()?;
        let raw = self.take(n)?;
        let size = if large { 8 } else { 4 };
        if n != (len + 1) * size {
            return Err("offsets of another length".into());
        }
        let mut o = Offsets { raw, large, base: 0 };
        let first = o.at(0) as i64;
        o.base = first;
        let mut back = false;
        if large {
            let mut last = first;
            for c in raw.chunks_exact(8) {
                let v = i64::from_le_bytes(c.try_into().unwrap());
                back |= v < last;
                last = v;
            }
        } else {
            let mut last = first as i32;
            for c in raw.chunks_exact(4) {
                let v = i32::from_le_bytes(c.try_into().unwrap());
                back |= v < last;
                last = v;
            }
        }
        if back || first < 0 {
            return Err("offsets that go back".into());
        }
        Ok(o)
    }

    /// A node of type `t`; `cell`: a dictionary's values are written as csv cells (else as JSON).
    fn col(&mut self, t: &Type, cell: bool) -> Result<Col<'a>, String> {
        let len = self.word()?;
        let valid = self.bits(len)?;
        let mut c = Col { len, valid, bits: Bits { bytes: &[], shift: 0 }, data: &[], padded: &[], offsets: NO_OFFSETS, children: Vec::new(),
                         texts: Vec::new(), ends: Vec::new() };
        match t.tag {
            NULL => {}
            BOOL => {
                c.bits = self.bits(len)?.unwrap_or(Bits { bytes: &[], shift: 0 });
                if len > 0 && c.bits.bytes.is_empty() {
                    return Err("a boolean column without values".into());
                }
            }
            I8..=F64 => {
                let n = self.word()?;
                c.data = self.take(n)?;
                if n != len * width(t.tag) {
                    return Err("values of another length".into());
                }
            }
            STR | LSTR | TEXT | LTEXT => {
                c.offsets = self.offsets(len, t.tag == LSTR || t.tag == LTEXT)?;
                let n = self.word()?;
                c.padded = &self.bytes[self.b..];
                c.data = self.take(n)?;
                if c.offsets.at(len) != n {
                    return Err("string data of another length".into());
                }
                utf8(c.data, &c.offsets, len)?;
            }
            LIST | LLIST => {
                c.offsets = self.offsets(len, t.tag == LLIST)?;
                let child = self.col(&t.children[0], false)?;
                if child.len != c.offsets.at(len) {
                    return Err("list items of another length".into());
                }
                c.children.push(child);
            }
            STRUCT => {
                for ct in &t.children {
                    let child = self.col(ct, false)?;
                    if child.len != len {
                        return Err("a struct field of another length".into());
                    }
                    c.children.push(child);
                }
            }
            DICT => {
                let n = self.word()?;
                c.data = self.take(n)?;
                if n != len * width(t.index) {
                    return Err("indices of another length".into());
                }
                let values = self.col(&t.children[0], false)?;
                for i in 0..len {
                    if !c.null(i) && index(t.index, c.data, i) >= values.len {
                        return Err("an index beyond its dictionary".into());
                    }
                }
                let mut scratch = Vec::new();
                c.ends.reserve(values.len);
                for k in 0..values.len {
                    if cell {
                        csv_value(&t.children[0], &values, k, &mut scratch, &mut c.texts);
                    } else {
                        json_value(&t.children[0], &values, k, true, &mut c.texts);
                    }
                    c.ends.push(c.texts.len());
                }
                c.texts.resize(c.texts.len() + PAD, 0);
                c.children.push(values);
            }
            _ => return Err("an unknown column type".into()),
        }
        Ok(c)
    }
}

/// Index `i` of a dictionary's indices (`tag` their type); usize::MAX when negative.
#[inline]
fn index(tag: u8, data: &[u8], i: usize) -> usize {
    match tag {
        I8 => usize::try_from(i8::from_le_bytes(le(data, i))).unwrap_or(usize::MAX),
        I16 => usize::try_from(i16::from_le_bytes(le(data, i))).unwrap_or(usize::MAX),
        I32 => usize::try_from(i32::from_le_bytes(le(data, i))).unwrap_or(usize::MAX),
        I64 => usize::try_from(i64::from_le_bytes(le(data, i))).unwrap_or(usize::MAX),
        U8 => u8::from_le_bytes(le(data, i)) as usize,
        U16 => u16::from_le_bytes(le(data, i)) as usize,
        U32 => u32::from_le_bytes(le(data, i)) as usize,
        _ => usize::try_from(u64::from_le_bytes(le(data, i))).unwrap_or(usize::MAX),
    }
}

/// A dictionary's text for the value at row `i`.
#[inline]
fn dict_text(t: &Type, c: &Col, i: usize, out: &mut Vec<u8>) {
    let k = index(t.index, c.data, i);
    let start = if k == 0 { 0 } else { c.ends[k - 1] };
    put(&c.texts, start, c.ends[k] - start, out);
}

/// Every string valid UTF-8: the whole buffer is, and no string starts inside a character.
fn utf8(data: &[u8], offsets: &Offsets, len: usize) -> Result<(), String> {
    if data.is_ascii() {
        return Ok(());
    }
    if std::str::from_utf8(data).is_err() {
        return Err("a string that is not UTF-8".into());
    }
    for i in 0..len {
        let o = offsets.at(i);
        if o < data.len() && data[o] & 0xc0 == 0x80 {
            return Err("a string that is not UTF-8".into());
        }
    }
    Ok(())
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

const PAD: usize = 16;

/// out += src[at..at + len], 16 bytes at a time (a call to memcpy costs more for short text): `src` holds
/// PAD bytes more after them.
#[inline(always)]
fn put(src: &[u8], at: usize, len: usize, out: &mut Vec<u8>) {
    if len > 64 {
        out.extend_from_slice(&src[at..at + len]);
        return;
    }
    let mark = out.len();
    let mut k = 0;
    while k < len {
        push_fixed::<PAD>(src[at + k..at + k + PAD].try_into().unwrap(), out);
        k += PAD;
    }
    out.truncate(mark + len);
}

/// A text and PAD zero bytes after it, for put.
struct Padded {
    bytes: Vec<u8>,
    len: usize,
}

impl Padded {
    fn new(text: &[u8]) -> Padded {
        let mut bytes = text.to_vec();
        bytes.resize(text.len() + PAD, 0);
        Padded { bytes, len: text.len() }
    }

    #[inline(always)]
    fn put(&self, out: &mut Vec<u8>) {
        put(&self.bytes, 0, self.len, out);
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `padded[r]` as a JSON string, as Python's json module writes it with ensure_ascii=False.
#[inline]
fn json_str(padded: &[u8], r: std::ops::Range<usize>, out: &mut Vec<u8>) {
    let s = &padded[r.clone()];
    out.push(b'"');
    // most strings need no escape: looked for 8 bytes at a time
    let mut k = 0;
    while k + 8 <= s.len() {
        let v = u64::from_le_bytes(s[k..k + 8].try_into().unwrap());
        if needs_escape(v) {
            break;
        }
        k += 8;
    }
    if k + 8 > s.len() && !s[k..].iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        put(padded, r.start, s.len(), out);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]),
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
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

fn csv_escaped(cell: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in cell {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[inline]
fn le<const N: usize>(data: &[u8], i: usize) -> [u8; N] {
    data[i * N..i * N + N].try_into().unwrap()
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
        STR | LSTR => json_str(c.padded, c.offsets.range(i), out),
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

/// One batch as it came: its row count (u64::MAX: the end), description and buffers (and PAD bytes).
struct Batch {
    rows: u64,
    words: Vec<u64>,
    bytes: Vec<u8>,
}

/// Batches read from stdin by a thread of its own, so that the pipe is drained while a batch is encoded.
struct Batches {
    rx: Receiver<Result<Batch, String>>,
    spare: Sender<Batch>, // batches encoded, to fill again
}

impl Batches {
    fn start() -> Batches {
        let (tx, rx) = sync_channel::<Result<Batch, String>>(2);
        let (spare, back) = channel::<Batch>();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut r = stdin.lock();
            loop {
                let mut b = back.try_recv().unwrap_or(Batch { rows: 0, words: Vec::new(), bytes: Vec::new() });
                let got = read_batch(&mut r, &mut b);
                let end = got.is_err() || b.rows == u64::MAX;
                if tx.send(got.map(|_| b)).is_err() || end {
                    return;
                }
            }
        });
        Batches { rx, spare }
    }

    fn iter(&self) -> impl Iterator<Item = Result<Batch, String>> + '_ {
        std::iter::from_fn(|| Some(self.rx.recv().unwrap_or_else(|_| Err("the reader stopped".into()))))
    }
}

fn read_batch(r: &mut impl Read, b: &mut Batch) -> Result<(), String> {
    b.rows = read_u64(r)?;
    if b.rows == u64::MAX {
        return Ok(());
    }
    let nwords = read_u64(r)? as usize;
    let nbytes = read_u64(r)? as usize;
    if nwords > 1 << 24 || nbytes > 1 << 34 {
        return Err("a malformed column stream".into());
    }
    let mut raw = vec![0u8; nwords * 8];
    r.read_exact(&mut raw).map_err(io)?;
    b.words.clear();
    b.words.extend(raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())));
    b.bytes.resize(nbytes + PAD, 0);
    r.read_exact(&mut b.bytes[..nbytes]).map_err(io)?;
    b.bytes[nbytes..].fill(0);
    Ok(())
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
            let c = p.col(t, !json)?;
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
