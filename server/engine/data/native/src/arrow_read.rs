//! The stream of record batches that arrowpipe.py sends on stdin: the column buffers of each batch, as
//! pyarrow holds them, read into columns (checked: lengths, offsets, bitmaps, indices, UTF-8). arrow_text.rs
//! writes their text.
//!
//!     "PLAT" u32:1  u32:ncols  per column: key, node    u32:len preamble   (the text written first)
//!     node:  u8 tag; a struct: u32 nfields, per field: key, node; a list: its item node;
//!            a dictionary: u8 index tag, its values' node (strings)
//!     key:   u32 len, the name as JSON text (quoted, escaped)
//!     batch: u64 rows, u64 words, u64 bytes, `words` u64 (below), then `bytes` bytes of buffers;
//!            rows = u64::MAX ends the stream
//!
//! A batch's words describe every node, depth first in schema order: its length, its validity bitmap
//! (bytes, 0 when nothing is null; bit shift), then for a boolean its values' bitmap (bytes, bit shift),
//! for an integer or float its values' bytes, for a string or text its offsets' bytes and its data's
//! bytes, for a list its offsets' bytes, for a dictionary its indices' bytes; the buffers follow in that
//! order. Offsets are rebased on the first one. Tag TEXT is a column the caller encoded itself (its final
//! text, verbatim). Strings must be UTF-8 (else "fallback": the Python path decides what such bytes mean).

use std::io::Read;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

use crate::numbers::push_fixed;

pub(crate) const NULL: u8 = 0;
pub(crate) const BOOL: u8 = 1;
pub(crate) const I8: u8 = 2;
pub(crate) const I16: u8 = 3;
pub(crate) const I32: u8 = 4;
pub(crate) const I64: u8 = 5;
pub(crate) const U8: u8 = 6;
pub(crate) const U16: u8 = 7;
pub(crate) const U32: u8 = 8;
pub(crate) const U64: u8 = 9;
pub(crate) const F32: u8 = 10;
pub(crate) const F64: u8 = 11;
pub(crate) const STR: u8 = 12;
pub(crate) const LSTR: u8 = 13;
pub(crate) const LIST: u8 = 14;
pub(crate) const LLIST: u8 = 15;
pub(crate) const STRUCT: u8 = 16;
pub(crate) const TEXT: u8 = 17;
pub(crate) const LTEXT: u8 = 18;
pub(crate) const DICT: u8 = 19;
const MAX_DEPTH: usize = 64;

pub(crate) struct Type {
    pub(crate) tag: u8,
    pub(crate) index: u8, // a dictionary's index type
    pub(crate) keys: Vec<Padded>, // a struct's field names as JSON text
    pub(crate) children: Vec<Type>,
}

#[derive(Clone, Copy)]
pub(crate) struct Bits<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) shift: usize,
}

impl Bits<'_> {
    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        let k = i + self.shift;
        self.bytes[k >> 3] >> (k & 7) & 1 != 0
    }
}

/// One node's buffers in the current batch.
pub(crate) struct Col<'a> {
    pub(crate) len: usize,
    pub(crate) valid: Option<Bits<'a>>,
    pub(crate) bits: Bits<'a>,       // a boolean's values
    pub(crate) data: &'a [u8],       // fixed-width values, or string bytes
    pub(crate) padded: &'a [u8],     // string bytes, and PAD bytes more after them (for put)
    pub(crate) offsets: Offsets<'a>, // strings and lists
    pub(crate) children: Vec<Col<'a>>,
    pub(crate) texts: Vec<u8>,       // a dictionary: the text of each value, one after the other, and PAD bytes more
    pub(crate) ends: Vec<usize>,     // and where each ends
}

/// The len + 1 offsets of a string or list array, as pyarrow holds them, read rebased on the first.
#[derive(Clone, Copy)]
pub(crate) struct Offsets<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) large: bool,
    pub(crate) base: i64,
}

impl Offsets<'_> {
    #[inline]
    pub(crate) fn at(&self, i: usize) -> usize {
        let v = if self.large {
            i64::from_le_bytes(self.raw[i * 8..i * 8 + 8].try_into().unwrap())
        } else {
            i32::from_le_bytes(self.raw[i * 4..i * 4 + 4].try_into().unwrap()) as i64
        };
        (v - self.base) as usize
    }

    /// The range of item `i`.
    #[inline]
    pub(crate) fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.at(i)..self.at(i + 1)
    }
}

const NO_OFFSETS: Offsets<'static> = Offsets { raw: &[], large: false, base: 0 };

impl Col<'_> {
    #[inline]
    pub(crate) fn null(&self, i: usize) -> bool {
        match &self.valid {
            Some(b) => !b.get(i),
            None => false,
        }
    }
}

pub(crate) fn io(e: std::io::Error) -> String {
    format!("io: {e}")
}

pub(crate) fn read_u32(r: &mut impl Read) -> Result<u32, String> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).map_err(io)?;
    Ok(u32::from_le_bytes(b))
}

pub(crate) fn read_u64(r: &mut impl Read) -> Result<u64, String> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).map_err(io)?;
    Ok(u64::from_le_bytes(b))
}

pub(crate) fn read_bytes(r: &mut impl Read, max: usize) -> Result<Vec<u8>, String> {
    let n = read_u32(r)? as usize;
    if n > max {
        return Err("a malformed column stream".into());
    }
    let mut v = vec![0u8; n];
    r.read_exact(&mut v).map_err(io)?;
    Ok(v)
}

pub(crate) fn read_type(r: &mut impl Read, depth: usize) -> Result<Type, String> {
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

pub(crate) fn width(tag: u8) -> usize {
    match tag {
        I8 | U8 => 1,
        I16 | U16 => 2,
        I32 | U32 | F32 => 4,
        _ => 8,
    }
}

/// Reads a batch's description (`words`) and buffers (`bytes`) into columns.
pub(crate) struct Parse<'a> {
    pub(crate) words: &'a [u64],
    pub(crate) w: usize,
    pub(crate) bytes: &'a [u8],
    pub(crate) b: usize,
}

impl<'a> Parse<'a> {
    pub(crate) fn word(&mut self) -> Result<usize, String> {
        let v = *self.words.get(self.w).ok_or("a short batch description")?;
        self.w += 1;
        usize::try_from(v).map_err(|_| "a number out of range".to_string())
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.b.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("a short batch")?;
        let s = &self.bytes[self.b..end];
        self.b = end;
        Ok(s)
    }

    pub(crate) fn bits(&mut self, len: usize) -> Result<Option<Bits<'a>>, String> {
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
    pub(crate) fn offsets(&mut self, len: usize, large: bool) -> Result<Offsets<'a>, String> {
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

    /// A node of type `t`.
    pub(crate) fn col(&mut self, t: &Type) -> Result<Col<'a>, String> {
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
                let child = self.col(&t.children[0])?;
                if child.len != c.offsets.at(len) {
                    return Err("list items of another length".into());
                }
                c.children.push(child);
            }
            STRUCT => {
                for ct in &t.children {
                    let child = self.col(ct)?;
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
                let values = self.col(&t.children[0])?;
                for i in 0..len {
                    if !c.null(i) && index(t.index, c.data, i) >= values.len {
                        return Err("an index beyond its dictionary".into());
                    }
                }
                c.children.push(values);
            }
            _ => return Err("an unknown column type".into()),
        }
        Ok(c)
    }
}

/// Index `i` of a dictionary's indices (`tag` their type); usize::MAX when negative.
#[inline]
pub(crate) fn index(tag: u8, data: &[u8], i: usize) -> usize {
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


/// Every string valid UTF-8: the whole buffer is, and no string starts inside a character.
pub(crate) fn utf8(data: &[u8], offsets: &Offsets, len: usize) -> Result<(), String> {
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


pub(crate) const PAD: usize = 16;

/// out += src[at..at + len], 16 bytes at a time (a call to memcpy costs more for short text): `src` holds
/// PAD bytes more after them.
#[inline(always)]
pub(crate) fn put(src: &[u8], at: usize, len: usize, out: &mut Vec<u8>) {
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
pub(crate) struct Padded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) len: usize,
}

impl Padded {
    pub(crate) fn new(text: &[u8]) -> Padded {
        let mut bytes = text.to_vec();
        bytes.resize(text.len() + PAD, 0);
        Padded { bytes, len: text.len() }
    }

    #[inline(always)]
    pub(crate) fn put(&self, out: &mut Vec<u8>) {
        put(&self.bytes, 0, self.len, out);
    }
}


#[inline]
pub(crate) fn le<const N: usize>(data: &[u8], i: usize) -> [u8; N] {
    data[i * N..i * N + N].try_into().unwrap()
}


/// One batch as it came: its row count (u64::MAX: the end), description and buffers (and PAD bytes).
pub(crate) struct Batch {
    pub(crate) rows: u64,
    pub(crate) words: Vec<u64>,
    pub(crate) bytes: Vec<u8>,
}

/// Batches read from stdin by a thread of its own, so that the pipe is drained while a batch is encoded.
pub(crate) struct Batches {
    pub(crate) rx: Receiver<Result<Batch, String>>,
    pub(crate) spare: Sender<Batch>, // batches encoded, to fill again
}

impl Batches {
    pub(crate) fn start() -> Batches {
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

    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<Batch, String>> + '_ {
        std::iter::from_fn(|| Some(self.rx.recv().unwrap_or_else(|_| Err("the reader stopped".into()))))
    }
}

pub(crate) fn read_batch(r: &mut impl Read, b: &mut Batch) -> Result<(), String> {
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
