//! A json array or ndjson file as Arrow columns, for parquet: the records are parsed into column buffers
//! (validity bitmaps, offsets, values) in Arrow's own layout and streamed in frames to the caller
//! (arrowio.py), which wraps them as arrays without copying them and writes parquet.
//!
//!     pipeloom-convert SRC SRC_FMT DST arrow ROWS [SCHEMA_HEX]
//!
//! The types are those Pipeloom's Python conversion gives (formats.py: pyarrow's inference over the
//! records, unified over the file): null, bool, int64, double (an int among floats reads as a float),
//! string, list and struct (keys in first-seen order). Batches hold ROWS records (fewer past 32 MB of
//! buffers). Without SCHEMA (hex digits) the types come from the first ROWS records;
//! when a later record does not fit them (a new key, a float among ints, a value where only nulls were
//! seen), the rest of the file is only read for its types, and a `widen` frame gives the union of all of
//! them, for the caller to start again with. What the Python conversion would keep as JSON text (two
//! kinds of value in one column, an integer beyond 64 bits, an int beyond 2**53 among floats, an object
//! without keys) and what the converter leaves to Python anyway (malformed text, duplicate keys, ...)
//! stop it with a fallback.
//!
//! Frames: u64 kind, u64 payload length, payload. 1 schema (its text), 2 batch, 3 widen (the wider
//! schema's text), 4 end (u64 record count). A batch: u64 rows, u64 buffer count, then per buffer
//! (u64 offset, u64 length, u64 null count), then the buffers, each at a multiple of 64 bytes. The
//! buffers of a column come in schema order, depth first: its validity (empty when nothing is null),
//! then bool: values bitmap; int64 and double: values; string: int32 offsets, bytes; list: int32
//! offsets, then the items' column; struct: its fields' columns. Schema text: `n` `b` `i` `f` `s`,
//! `l` + the item type, `t` + field count + `,` + per field: name length `:` name, type.

use std::fs::File;
use std::io::Write;

use crate::arrow_types::{has_empty_struct, infer, key, number, read_ty, unhex, unify, write_ty, ws, Num, Ty,
                         EXACT, MAX_DEPTH};
use crate::input::{fb, Stop, R};
use crate::json_read::{literal, string_end, Parser};
use crate::reader::{Reader, Src};

const BYTES: usize = 32 << 20; // a batch ends early past this many bytes of buffers

// ---------------------------------------------------------------------------------------------------------
// Columns

/// Flags, one byte each while a batch is built (a push is a store), packed into a bitmap when it is sent.
#[derive(Default)]
struct Bits {
    bytes: Vec<u8>,
}

impl Bits {
    #[inline]
    fn push(&mut self, v: bool) {
        self.bytes.push(v as u8);
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn truncate(&mut self, n: usize) {
        self.bytes.truncate(n);
    }

    fn ones(&self) -> usize {
        self.bytes.iter().map(|&b| b as usize).sum()
    }

    /// Arrow's bitmap of the flags, appended to `out`.
    fn pack(&self, out: &mut Vec<u8>) {
        for chunk in self.bytes.chunks(8) {
            let mut b = 0u8;
            for (k, &v) in chunk.iter().enumerate() {
                b |= v << k;
            }
            out.push(b);
        }
    }
}

/// A key's first 8 bytes as a little-endian word, and whether it is plain: no quote, backslash or control
/// character, so that its bytes in the text, followed by a quote, are the key.
fn word(name: &[u8]) -> (u64, bool) {
    let mut w = [0u8; 8];
    let l = name.len().min(8);
    w[..l].copy_from_slice(&name[..l]);
    (u64::from_le_bytes(w), !name.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20))
}

/// Whether the key text at s[at..] (after its opening quote) is the plain key `name`, whose word is `w`.
#[inline]
fn quick(s: &[u8], at: usize, name: &[u8], w: u64) -> bool {
    let l = name.len();
    if at + l >= s.len() {
        return false;
    }
    if l <= 8 && at + 8 <= s.len() {
        let mask = if l == 8 { u64::MAX } else { (1u64 << (8 * l)) - 1 };
        return u64::from_le_bytes(s[at..at + 8].try_into().unwrap()) & mask == w && s[at + l] == b'"';
    }
    s[at + l] == b'"' && &s[at..at + l] == name
}

enum Buf<'a> {
    Raw(&'a [u8]),
    Bits(&'a Bits),
}

enum Data {
    Null,
    Bool(Bits),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Str(Vec<i32>, Vec<u8>),
    List(Vec<i32>, Box<Col>),
    Struct(Vec<(Vec<u8>, Col)>, Vec<(u64, bool)>), // fields; each name's first 8 bytes, and whether it is plain
}

struct Col {
    valid: Bits,
    data: Data,
}

/// `src` appended to `dst`: a few words for a short text rather than a call to memcpy.
#[inline(always)]
fn append(dst: &mut Vec<u8>, src: &[u8]) {
    if src.len() > 32 {
        dst.extend_from_slice(src);
        return;
    }
    dst.reserve(32);
    let at = dst.len();
    unsafe {
        let to = dst.as_mut_ptr().add(at);
        let mut k = 0;
        while k + 8 <= src.len() {
            std::ptr::write_unaligned(to.add(k) as *mut u64, std::ptr::read_unaligned(src.as_ptr().add(k) as *const u64));
            k += 8;
        }
        while k < src.len() {
            *to.add(k) = src[k];
            k += 1;
        }
        dst.set_len(at + src.len());
    }
}

fn as_bytes<T>(v: &[T]) -> &[u8] {
    // i32, i64 and f64 in memory are Arrow's little-endian layout on the machines this builds for
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn offset(n: usize) -> R<i32> {
    i32::try_from(n).map_err(|_| Stop::Fallback("a batch of more than 2 GB of text"))
}

impl Col {
    fn new(t: &Ty) -> Col {
        let data = match t {
            Ty::Null => Data::Null,
            Ty::Bool => Data::Bool(Bits::default()),
            Ty::Int => Data::Int(Vec::new()),
            Ty::Float => Data::Float(Vec::new()),
            Ty::Str => Data::Str(vec![0], Vec::new()),
            Ty::List(x) => Data::List(vec![0], Box::new(Col::new(x))),
            Ty::Struct(fs) => Data::Struct(fs.iter().map(|(n, t)| (n.clone(), Col::new(t))).collect(),
                                           fs.iter().map(|(n, _)| word(n)).collect()),
        };
        Col { valid: Bits::default(), data }
    }

    fn len(&self) -> usize {
        self.valid.len()
    }

    fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.data {
            Data::Null => {}
            Data::Bool(b) => b.push(false),
            Data::Int(v) => v.push(0),
            Data::Float(v) => v.push(0.0),
            Data::Str(o, d) => o.push(d.len() as i32),
            Data::List(o, _) => o.push(*o.last().unwrap()),
            Data::Struct(fs, _) => fs.iter_mut().for_each(|f| f.1.push_null()),
        }
    }

    fn truncate(&mut self, n: usize) {
        self.valid.truncate(n);
        match &mut self.data {
            Data::Null => {}
            Data::Bool(b) => b.truncate(n),
            Data::Int(v) => v.truncate(n),
            Data::Float(v) => v.truncate(n),
            Data::Str(o, d) => {
                o.truncate(n + 1);
                d.truncate(o[n] as usize);
            }
            Data::List(o, c) => {
                o.truncate(n + 1);
                c.truncate(o[n] as usize);
            }
            Data::Struct(fs, _) => fs.iter_mut().for_each(|f| f.1.truncate(n)),
        }
    }

    fn bytes(&self) -> usize {
        self.valid.bytes.len()
            + match &self.data {
                Data::Null => 0,
                Data::Bool(b) => b.bytes.len(),
                Data::Int(v) => 8 * v.len(),
                Data::Float(v) => 8 * v.len(),
                Data::Str(o, d) => 4 * o.len() + d.len(),
                Data::List(o, c) => 4 * o.len() + c.bytes(),
                Data::Struct(fs, _) => fs.iter().map(|f| f.1.bytes()).sum(),
            }
    }

    /// The value at s[*i] appended; Ok(false) when this column's type does not take it.
    fn put(&mut self, p: &mut Parser, s: &[u8], i: &mut usize, depth: usize) -> R<bool> {
        ws(p, s, i)?;
        let c = s[*i];
        if c == b'n' {
            literal(s, i, b"null")?;
            self.push_null();
            return Ok(true);
        }
        match (&mut self.data, c) {
            (Data::Bool(b), b't') => {
                literal(s, i, b"true")?;
                b.push(true);
            }
            (Data::Bool(b), b'f') => {
                literal(s, i, b"false")?;
                b.push(false);
            }
            (Data::Str(o, d), b'"') => {
                let start = *i + 1;
                let (k, wide) = string_end(s, start);
                if k < s.len() && s[k] == b'"' && (!wide || std::str::from_utf8(&s[start..k]).is_ok()) {
                    append(d, &s[start..k]);
                    *i = k + 1;
                } else {
                    p.string(s, i, Some(d), None)?;
                }
                o.push(offset(d.len())?);
            }
            (Data::Int(v), b'-' | b'0'..=b'9') => {
                let at = *i;
                match number(s, i)? {
                    Num::I(x) => v.push(x),
                    Num::F(_) => {
                        *i = at;
                        return Ok(false);
                    }
                }
            }
            (Data::Float(v), b'-' | b'0'..=b'9') => match number(s, i)? {
                Num::I(x) => {
                    if x.unsigned_abs() > EXACT {
                        return fb("an integer beyond 2**53 among floats");
                    }
                    v.push(x as f64)
                }
                Num::F(x) => v.push(x),
            },
            (Data::List(o, items), b'[') => {
                if depth >= MAX_DEPTH {
                    return fb("nesting deeper than the columns take");
                }
                *i += 1;
                ws(p, s, i)?;
                if s[*i] == b']' {
                    *i += 1;
                } else {
                    loop {
                        if !items.put(p, s, i, depth + 1)? {
                            return Ok(false);
                        }
                        ws(p, s, i)?;
                        match s[*i] {
                            b',' => *i += 1,
                            b']' => {
                                *i += 1;
                                break;
                            }
                            _ => return fb("malformed JSON"),
                        }
                    }
                }
                o.push(offset(items.len())?);
            }
            (Data::Struct(fs, keys), b'{') => {
                if depth >= MAX_DEPTH {
                    return fb("nesting deeper than the columns take");
                }
                let n = self.valid.len();
                if !object(fs, keys, n, p, s, i, depth)? {
                    return Ok(false);
                }
            }
            _ => return Ok(false),
        }
        self.valid.push(true);
        Ok(true)
    }

    /// Every buffer of this column, depth first, with its null count (validity only).
    fn buffers<'a>(&'a self, out: &mut Vec<(Buf<'a>, usize)>) {
        let nulls = self.len() - self.valid.ones();
        out.push((if nulls == 0 { Buf::Raw(&[]) } else { Buf::Bits(&self.valid) }, nulls));
        match &self.data {
            Data::Null => {}
            Data::Bool(b) => out.push((Buf::Bits(b), 0)),
            Data::Int(v) => out.push((Buf::Raw(as_bytes(v)), 0)),
            Data::Float(v) => out.push((Buf::Raw(as_bytes(v)), 0)),
            Data::Str(o, d) => {
                out.push((Buf::Raw(as_bytes(o)), 0));
                out.push((Buf::Raw(d), 0));
            }
            Data::List(o, c) => {
                out.push((Buf::Raw(as_bytes(o)), 0));
                c.buffers(out);
            }
            Data::Struct(fs, _) => fs.iter().for_each(|f| f.1.buffers(out)),
        }
    }
}

/// The object at s[*i] == '{' into the fields of a struct column of `n` values; Ok(false) for a key the
/// struct has not.
fn object(fs: &mut [(Vec<u8>, Col)], keys: &[(u64, bool)], n: usize, p: &mut Parser, s: &[u8], i: &mut usize, depth: usize) -> R<bool> {
    *i += 1;
    ws(p, s, i)?;
    if s[*i] == b'}' {
        *i += 1;
    } else {
        let mut guess = 0;
        loop {
            ws(p, s, i)?;
            if s[*i] != b'"' {
                return fb("malformed JSON");
            }
            let at = if guess < fs.len() && keys[guess].1 && quick(s, *i + 1, &fs[guess].0, keys[guess].0) {
                *i += fs[guess].0.len() + 2;
                guess
            } else {
                let k = key(p, s, i)?;
                let name: &[u8] = match k {
                    Some((a, b)) => &s[a..b],
                    None => &p.key_buf,
                };
                match fs.iter().position(|f| f.0 == name) {
                    Some(at) => at,
                    None => return Ok(false),
                }
            };
            let col = &mut fs[at].1;
            if col.len() > n {
                return fb("a key given twice in one object");
            }
            ws(p, s, i)?;
            if s[*i] != b':' {
                return fb("malformed JSON");
            }
            *i += 1;
            if !col.put(p, s, i, depth + 1)? {
                return Ok(false);
            }
            guess = at + 1;
            ws(p, s, i)?;
            match s[*i] {
                b',' => *i += 1,
                b'}' => {
                    *i += 1;
                    break;
                }
                _ => return fb("malformed JSON"),
            }
        }
    }
    for f in fs.iter_mut() {
        if f.1.len() == n {
            f.1.push_null();
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------------------
// The conversion

fn frame(w: &mut File, kind: u64, payload: &[u8]) -> Result<(), String> {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&kind.to_le_bytes());
    head[8..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    w.write_all(&head).and_then(|_| w.write_all(payload)).map_err(|e| format!("io: {e}"))
}

fn batch(w: &mut File, col: &Col, rows: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let mut bufs = Vec::new();
    col.buffers(&mut bufs);
    out.clear();
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    out.extend_from_slice(&(bufs.len() as u64).to_le_bytes());
    let table = out.len();
    let head = (table + 24 * bufs.len() + 63) / 64 * 64;
    out.resize(head, 0);
    for (k, (b, nulls)) in bufs.iter().enumerate() {
        let at = out.len();
        match b {
            Buf::Raw(b) => out.extend_from_slice(b),
            Buf::Bits(b) => b.pack(out),
        }
        let entry = [at as u64, (out.len() - at) as u64, *nulls as u64];
        for (j, v) in entry.iter().enumerate() {
            out[table + 24 * k + 8 * j..table + 24 * k + 8 * j + 8].copy_from_slice(&v.to_le_bytes());
        }
        out.resize((out.len() + 63) / 64 * 64, 0);
    }
    frame(w, 2, out)
}

/// Records as (Parser, text, position) -> Ok(true) when the record at the position was taken.
fn each(rd: &mut Reader, mut f: impl FnMut(&mut Parser, &[u8], &mut usize) -> R<bool>) -> Result<Option<bool>, String> {
    if !rd.next()? {
        return Ok(None);
    }
    let got = rd.with(|p, s, i| {
        let start = *i;
        ws(p, s, i)?;
        if s[*i] != b'{' {
            return fb("a record that is not an object");
        }
        let took = f(p, s, i)?;
        if !took {
            *i = start;
        }
        Ok(took)
    })?;
    match got {
        None => Err("the file ends inside a record".into()),
        Some(true) => {
            rd.end_line()?;
            Ok(Some(true))
        }
        Some(false) => Ok(Some(false)),
    }
}

fn source(fmt: &str) -> Result<Src, String> {
    match fmt {
        "json" => Ok(Src::Array),
        "ndjson" => Ok(Src::Lines),
        _ => Err(format!("no columns from {fmt}")),
    }
}

fn convert(src: &str, src_fmt: &str, dst: &str, rows: usize, given: Option<Ty>) -> Result<u64, String> {
    source(src_fmt)?;
    let io = |e: std::io::Error| format!("io: {e}");
    let mut w = File::create(dst).map_err(io)?;
    let schema = match given {
        Some(t) => t,
        None => {
            let mut rd = Reader::new(src, source(src_fmt)?).map_err(io)?;
            let mut ty = Ty::Struct(Vec::new());
            let mut n = 0;
            while n < rows {
                let mut got = Ty::Null;
                match each(&mut rd, |p, s, i| {
                    got = infer(p, s, i, 0)?;
                    Ok(true)
                })? {
                    None => break,
                    _ => unify(&mut ty, got).map_err(why)?,
                }
                n += 1;
            }
            ty
        }
    };
    let mut text = Vec::new();
    write_ty(&schema, &mut text);
    frame(&mut w, 1, &text)?;
    let mut rd = Reader::new(src, source(src_fmt)?).map_err(io)?;
    let mut col = Col::new(&schema);
    let mut out: Vec<u8> = Vec::new();
    let mut count: u64 = 0;
    // parquet takes no struct without fields: such types only stand until a wider schema comes, or fall back
    let send = !has_empty_struct(&schema);
    loop {
        let base = col.len();
        let mut again = false; // a retry with more of the file: what the first try appended goes
        let took = each(&mut rd, |p, s, i| {
            if again {
                col.truncate(base);
            }
            again = true;
            col.put(p, s, i, 0)
        })?;
        match took {
            Some(true) => {
                count += 1;
                if col.len() >= rows || (col.len() % 256 == 0 && col.bytes() >= BYTES) {
                    if send {
                        batch(&mut w, &col, col.len(), &mut out)?;
                    }
                    col.truncate(0);
                }
            }
            Some(false) => {
                // a record the types do not take: the rest of the file only for its types
                col.truncate(base);
                let mut ty = schema.clone();
                let mut first = true; // the reader stands at this record already
                loop {
                    if !first && !rd.next()? {
                        break;
                    }
                    first = false;
                    let got = rd.with(|p, s, i| {
                        ws(p, s, i)?;
                        if s[*i] != b'{' {
                            return fb("a record that is not an object");
                        }
                        infer(p, s, i, 0)
                    })?;
                    match got {
                        None => return Err("the file ends inside a record".into()),
                        Some(t) => unify(&mut ty, t).map_err(why)?,
                    }
                    rd.end_line()?;
                }
                if ty == schema {
                    return Err("a record the columns do not take".into());
                }
                if has_empty_struct(&ty) {
                    return Err("an object without keys".into());
                }
                text.clear();
                write_ty(&ty, &mut text);
                frame(&mut w, 3, &text)?;
                return Ok(count);
            }
            None => break,
        }
    }
    if has_empty_struct(&schema) {
        return Err("an object without keys".into());
    }
    if col.len() > 0 {
        batch(&mut w, &col, col.len(), &mut out)?;
    }
    frame(&mut w, 4, &count.to_le_bytes())?;
    Ok(count)
}

fn why(s: Stop) -> String {
    match s {
        Stop::Fallback(w) => w.to_string(),
        Stop::More => "the file ends inside a record".into(),
    }
}

/// `pipeloom-convert SRC SRC_FMT DST arrow ROWS [SCHEMA_HEX]`: prints {"count": N} or {"fallback": "why"}
/// (exit 3).
pub(crate) fn main(args: &[String]) {
    let rows = match args.get(5).and_then(|r| r.parse::<usize>().ok()).filter(|&r| r > 0) {
        Some(r) => r,
        None => {
            eprintln!("usage: pipeloom-convert SRC SRC_FMT DST arrow ROWS [SCHEMA_HEX]");
            std::process::exit(2);
        }
    };
    let given = match args.get(6) {
        None => None,
        Some(h) => match unhex(h).and_then(|b| {
            let mut i = 0;
            read_ty(&b, &mut i).filter(|_| i == b.len())
        }) {
            Some(t) => Some(t),
            None => {
                eprintln!("pipeloom-convert: an unreadable schema");
                std::process::exit(2);
            }
        },
    };
    match convert(&args[1], &args[2], &args[3], rows, given) {
        Ok(n) => println!("{{\"count\": {n}}}"),
        Err(why) => {
            println!("{{\"fallback\": \"{}\"}}", why.replace('\\', "\\\\").replace('"', "'"));
            std::process::exit(3);
        }
    }
}
