//! Pipeloom's compiled record converter: a JSON array, ndjson or csv file to one of the other two, in one
//! streaming pass, writing exactly the bytes of Pipeloom's Python conversion (server/engine/data/formats.py).
//!
//!     pipeloom-convert SRC SRC_FMT DST DST_FMT
//!     pipeloom-convert --scan FILE FORMAT EVERY      (record counts and page checkpoints: scan.rs)
//!
//! It prints one line of JSON: {"count": N} when it wrote DST, or {"fallback": "why"} (exit 3) when the
//! input holds something whose meaning the Python conversion decides (malformed text, duplicate keys, a
//! number beyond a double, a lone surrogate, nesting beyond 500 levels, a record that is not an object, csv
//! the strict reader words an error for): the caller then converts with Python, which also words every
//! error. Values are written as Python's json module and csv module write them: `, ` and `: ` separators,
//! floats by their shortest repr, no escapes for non-ASCII text; csv cells unquoted unless they hold `,`,
//! `"`, CR or LF, nested values as compact JSON, null as an empty cell, booleans as true/false. The csv
//! header is the union of the records' keys in first-seen order; rows written before a late column are
//! padded at the end.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};

mod scan;

const BUF: usize = 8 << 20;
const MAX_BUF: usize = 256 << 20;
const MAX_NEST: usize = 500;
const HEAD_BYTES: usize = 4 << 20; // csv: records held before the header is written

enum Stop {
    More,
    Fallback(&'static str),
}

type R<T> = Result<T, Stop>;

fn fb<T>(why: &'static str) -> R<T> {
    Err(Stop::Fallback(why))
}

struct Input {
    f: File,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    final_newline: bool, // csv: a last line without a line end reads as if it had one
}

impl Input {
    /// Keep buf[pos..], read more behind it (growing the buffer when it is already full).
    fn refill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut want = BUF.max(self.buf.len() * 2);
        if self.buf.len() + BUF / 2 <= BUF {
            want = BUF;
        }
        if want > MAX_BUF {
            return Ok(false);
        }
        let old = self.buf.len();
        self.buf.resize(want, 0);
        let mut got = old;
        while got < want {
            let n = self.f.read(&mut self.buf[got..])?;
            if n == 0 {
                self.eof = true;
                break;
            }
            got += n;
        }
        self.buf.truncate(got);
        if self.eof && self.final_newline && !self.buf.is_empty() && self.buf.last() != Some(&b'\n') {
            self.buf.push(b'\n');
            got += 1;
        }
        Ok(got > old)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Spaced,
    Compact,
}

struct Parser {
    nl_ok: bool, // ndjson: a value may not cross a line end
    keys: Vec<u64>,
    key_buf: Vec<u8>,
}

#[inline]
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

/// The first byte from `start` that ends a run of plain string text (a quote, a backslash, a control
/// character), eight bytes at a time, and whether the run holds non-ASCII bytes.
#[inline]
fn string_end(s: &[u8], start: usize) -> (usize, bool) {
    use scan::{has, HI, LO};
    let mut k = start;
    let mut wide = 0u64;
    while k + 8 <= s.len() {
        let v = u64::from_le_bytes(s[k..k + 8].try_into().unwrap());
        let low = v.wrapping_sub(LO * 0x20) & !v & HI;
        let m = has(v, b'"') | has(v, b'\\') | low;
        if m != 0 {
            let at = (m.trailing_zeros() / 8) as usize;
            let before = if at == 0 { 0 } else { v & (u64::MAX >> (64 - 8 * at)) };
            wide |= before & HI;
            return (k + at, wide != 0);
        }
        wide |= v & HI;
        k += 8;
    }
    while k < s.len() {
        let c = s[k];
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        wide |= (c & 0x80) as u64;
        k += 1;
    }
    (k, wide != 0)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Parser {
    #[inline]
    fn ws(&self, s: &[u8], i: &mut usize) -> R<()> {
        loop {
            match s.get(*i) {
                None => return Err(Stop::More),
                Some(b' ') | Some(b'\t') | Some(b'\r') => *i += 1,
                Some(b'\n') => {
                    if !self.nl_ok {
                        return fb("a value that runs over a line end");
                    }
                    *i += 1
                }
                Some(_) => return Ok(()),
            }
        }
    }

    /// A string at s[*i] == '"': its text unescaped into `raw` (when given) and, JSON-escaped as Python
    /// writes it, into `json` (when given).
    fn string(&self, s: &[u8], i: &mut usize, mut raw: Option<&mut Vec<u8>>, mut json: Option<&mut Vec<u8>>) -> R<()> {
        *i += 1;
        if let Some(j) = json.as_deref_mut() {
            j.push(b'"');
        }
        loop {
            let start = *i;
            let (k, wide) = string_end(s, start);
            if k >= s.len() {
                return Err(Stop::More);
            }
            let span = &s[start..k];
            if wide && std::str::from_utf8(span).is_err() {
                return fb("text that is not UTF-8");
            }
            if let Some(r) = raw.as_deref_mut() {
                r.extend_from_slice(span);
            }
            if let Some(j) = json.as_deref_mut() {
                j.extend_from_slice(span);
            }
            let c = s[k];
            *i = k + 1;
            if c == b'"' {
                if let Some(j) = json.as_deref_mut() {
                    j.push(b'"');
                }
                return Ok(());
            }
            if c < 0x20 {
                return fb("a control character inside a string");
            }
            // an escape
            let e = *s.get(*i).ok_or(Stop::More)?;
            *i += 1;
            let cp: u32 = match e {
                b'"' => 0x22,
                b'\\' => 0x5c,
                b'/' => 0x2f,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => 0x0a,
                b'r' => 0x0d,
                b't' => 0x09,
                b'u' => {
                    let hi = hex4(s, *i)?;
                    *i += 4;
                    if (0xd800..0xdc00).contains(&hi) {
                        if s.len() < *i + 6 {
                            return Err(Stop::More);
                        }
                        if s[*i] != b'\\' || s[*i + 1] != b'u' {
                            return fb("a lone surrogate");
                        }
                        let lo = hex4(s, *i + 2)?;
                        if !(0xdc00..0xe000).contains(&lo) {
                            return fb("a lone surrogate");
                        }
                        *i += 6;
                        0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                    } else if (0xdc00..0xe000).contains(&hi) {
                        return fb("a lone surrogate");
                    } else {
                        hi
                    }
                }
                _ => return fb("an invalid escape"),
            };
            let ch = char::from_u32(cp).ok_or(Stop::Fallback("an invalid escape"))?;
            let mut tmp = [0u8; 4];
            let enc = ch.encode_utf8(&mut tmp).as_bytes();
            if let Some(r) = raw.as_deref_mut() {
                r.extend_from_slice(enc);
            }
            if let Some(j) = json.as_deref_mut() {
                match cp {
                    0x22 => j.extend_from_slice(b"\\\""),
                    0x5c => j.extend_from_slice(b"\\\\"),
                    0x0a => j.extend_from_slice(b"\\n"),
                    0x0d => j.extend_from_slice(b"\\r"),
                    0x09 => j.extend_from_slice(b"\\t"),
                    0x08 => j.extend_from_slice(b"\\b"),
                    0x0c => j.extend_from_slice(b"\\f"),
                    c if c < 0x20 => {
                        j.extend_from_slice(b"\\u00");
                        j.push(HEX[(c >> 4) as usize]);
                        j.push(HEX[(c & 15) as usize]);
                    }
                    _ => j.extend_from_slice(enc),
                }
            }
        }
    }

    /// A number at s[*i], written as Python prints the int or float it reads as.
    fn number(&self, s: &[u8], i: &mut usize, out: &mut Vec<u8>) -> R<()> {
        let start = *i;
        let mut k = start;
        if s.get(k) == Some(&b'-') {
            k += 1;
        }
        let d0 = k;
        while k < s.len() && s[k].is_ascii_digit() {
            k += 1;
        }
        if k >= s.len() {
            return Err(Stop::More);
        }
        if k == d0 || (s[d0] == b'0' && k - d0 > 1) {
            return fb("a malformed number");
        }
        let mut float = false;
        if s[k] == b'.' {
            float = true;
            k += 1;
            let f0 = k;
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            if k >= s.len() {
                return Err(Stop::More);
            }
            if k == f0 {
                return fb("a malformed number");
            }
        }
        if s[k] == b'e' || s[k] == b'E' {
            float = true;
            k += 1;
            if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
                k += 1;
            }
            let e0 = k;
            while k < s.len() && s[k].is_ascii_digit() {
                k += 1;
            }
            if k >= s.len() {
                return Err(Stop::More);
            }
            if k == e0 {
                return fb("a malformed number");
            }
        }
        let lit = &s[start..k];
        *i = k;
        if !float {
            if lit.len() > 4000 {
                return fb("an integer of more digits than Python reads"); // its int() limit is 4,300
            }
            if lit == b"-0" {
                out.push(b'0');
            } else {
                out.extend_from_slice(lit);
            }
            return Ok(());
        }
        let text = unsafe { std::str::from_utf8_unchecked(lit) };
        let x: f64 = text.parse().map_err(|_| Stop::Fallback("a malformed number"))?;
        if !x.is_finite() {
            return fb("a number beyond a double");
        }
        py_repr(x, out);
        Ok(())
    }

    fn literal(&self, s: &[u8], i: &mut usize, word: &'static [u8]) -> R<()> {
        if s.len() < *i + word.len() {
            if word.starts_with(&s[*i..]) {
                return Err(Stop::More);
            }
            return fb("an invalid literal");
        }
        if &s[*i..*i + word.len()] != word {
            return fb("an invalid literal");
        }
        *i += word.len();
        Ok(())
    }

    /// Any JSON value at s[*i] (whitespace skipped), written to `out` in `style`.
    fn value(&mut self, s: &[u8], i: &mut usize, out: &mut Vec<u8>, style: Style, depth: usize) -> R<()> {
        self.ws(s, i)?;
        match s[*i] {
            b'{' => self.object(s, i, out, style, depth + 1),
            b'[' => {
                if depth + 1 > MAX_NEST {
                    return fb("nesting beyond 500 levels");
                }
                *i += 1;
                out.push(b'[');
                self.ws(s, i)?;
                if s[*i] == b']' {
                    *i += 1;
                    out.push(b']');
                    return Ok(());
                }
                loop {
                    self.value(s, i, out, style, depth + 1)?;
                    self.ws(s, i)?;
                    match s[*i] {
                        b',' => {
                            *i += 1;
                            out.extend_from_slice(if style == Style::Spaced { b", " } else { b"," });
                        }
                        b']' => {
                            *i += 1;
                            out.push(b']');
                            return Ok(());
                        }
                        _ => return fb("malformed JSON"),
                    }
                }
            }
            b'"' => self.string(s, i, None, Some(out)),
            b't' => {
                self.literal(s, i, b"true")?;
                out.extend_from_slice(b"true");
                Ok(())
            }
            b'f' => {
                self.literal(s, i, b"false")?;
                out.extend_from_slice(b"false");
                Ok(())
            }
            b'n' => {
                self.literal(s, i, b"null")?;
                out.extend_from_slice(b"null");
                Ok(())
            }
            b'-' | b'0'..=b'9' => self.number(s, i, out),
            _ => fb("malformed JSON"),
        }
    }

    /// Note a key of the object whose keys start at keys[base]; false when it is already there.
    fn new_key(&mut self, base: usize, h: u64) -> bool {
        let n = self.keys.len() - base;
        if n < 64 {
            if self.keys[base..].contains(&h) {
                return false;
            }
        } else if n == 64 || n.is_power_of_two() {
            let mut seen: Vec<u64> = self.keys[base..].to_vec();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != n {
                return false;
            }
        }
        self.keys.push(h);
        true
    }

    fn object(&mut self, s: &[u8], i: &mut usize, out: &mut Vec<u8>, style: Style, depth: usize) -> R<()> {
        if depth > MAX_NEST {
            return fb("nesting beyond 500 levels");
        }
        *i += 1;
        out.push(b'{');
        self.ws(s, i)?;
        if s[*i] == b'}' {
            *i += 1;
            out.push(b'}');
            return Ok(());
        }
        let base = self.keys.len();
        let r = (|| {
            loop {
                self.ws(s, i)?;
                if s[*i] != b'"' {
                    return fb("malformed JSON");
                }
                let mut kb = std::mem::take(&mut self.key_buf);
                kb.clear();
                let r = self.string(s, i, Some(&mut kb), Some(out));
                let fresh = r.is_ok() && self.new_key(base, hash(&kb));
                self.key_buf = kb;
                r?;
                if !fresh {
                    return fb("a key given twice in one object");
                }
                self.ws(s, i)?;
                if s[*i] != b':' {
                    return fb("malformed JSON");
                }
                *i += 1;
                out.extend_from_slice(if style == Style::Spaced { b": " } else { b":" });
                self.value(s, i, out, style, depth)?;
                self.ws(s, i)?;
                match s[*i] {
                    b',' => {
                        *i += 1;
                        out.extend_from_slice(if style == Style::Spaced { b", " } else { b"," });
                    }
                    b'}' => {
                        *i += 1;
                        out.push(b'}');
                        return Ok(());
                    }
                    _ => return fb("malformed JSON"),
                }
            }
        })();
        self.keys.truncate(base);
        r
    }

    /// A record (an object) at s[*i] as csv cells: for each field, its key and its cell text, appended
    /// to `cells` as (key start, key end, cell start, cell end) in `arena`.
    fn record_cells(&mut self, s: &[u8], i: &mut usize, arena: &mut Vec<u8>, cells: &mut Vec<[usize; 4]>) -> R<()> {
        self.ws(s, i)?;
        if s[*i] != b'{' {
            return fb("a record that is not an object");
        }
        *i += 1;
        self.ws(s, i)?;
        if s[*i] == b'}' {
            *i += 1;
            return Ok(());
        }
        let base = self.keys.len();
        let r = (|| {
            loop {
                self.ws(s, i)?;
                if s[*i] != b'"' {
                    return fb("malformed JSON");
                }
                let k0 = arena.len();
                self.string(s, i, Some(arena), None)?;
                let k1 = arena.len();
                if !self.new_key(base, hash(&arena[k0..k1])) {
                    return fb("a key given twice in one object");
                }
                self.ws(s, i)?;
                if s[*i] != b':' {
                    return fb("malformed JSON");
                }
                *i += 1;
                self.ws(s, i)?;
                let c0 = arena.len();
                match s[*i] {
                    b'"' => self.string(s, i, Some(arena), None)?,
                    b'n' => self.literal(s, i, b"null")?,
                    b't' => {
                        self.literal(s, i, b"true")?;
                        arena.extend_from_slice(b"true");
                    }
                    b'f' => {
                        self.literal(s, i, b"false")?;
                        arena.extend_from_slice(b"false");
                    }
                    b'{' | b'[' => self.value(s, i, arena, Style::Compact, 1)?,
                    b'-' | b'0'..=b'9' => self.number(s, i, arena)?,
                    _ => return fb("malformed JSON"),
                }
                cells.push([k0, k1, c0, arena.len()]);
                self.ws(s, i)?;
                match s[*i] {
                    b',' => *i += 1,
                    b'}' => {
                        *i += 1;
                        return Ok(());
                    }
                    _ => return fb("malformed JSON"),
                }
            }
        })();
        self.keys.truncate(base);
        r
    }
}

fn hex4(s: &[u8], at: usize) -> R<u32> {
    if s.len() < at + 4 {
        return Err(Stop::More);
    }
    let mut v = 0u32;
    for &c in &s[at..at + 4] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return fb("an invalid escape"),
        };
        v = v * 16 + d as u32;
    }
    Ok(v)
}

/// Python's repr of a float: the shortest digits that read back, fixed notation for exponents -4..15.
fn py_repr(x: f64, out: &mut Vec<u8>) {
    let sci = format!("{:e}", x);
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: Vec<u8> = mant.bytes().filter(|&b| b != b'.').collect();
    if neg {
        out.push(b'-');
    }
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            if n <= exp + 1 {
                out.extend_from_slice(&digits);
                for _ in 0..(exp + 1 - n) {
                    out.push(b'0');
                }
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..(exp + 1) as usize]);
                out.push(b'.');
                out.extend_from_slice(&digits[(exp + 1) as usize..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.extend_from_slice(&digits);
        }
    } else {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(a.to_string().as_bytes());
    }
}

// ------------------------------------------------------------------------------------------ sources

#[derive(PartialEq)]
enum Src {
    Array,
    Lines,
    Csv,
}

struct Reader {
    input: Input,
    src: Src,
    started: bool,
    done: bool,
    p: Parser,
}

impl Reader {
    fn new(path: &str, src: Src) -> std::io::Result<Reader> {
        let f = File::open(path)?;
        let nl_ok = src == Src::Array;
        Ok(Reader {
            input: Input { f, buf: Vec::with_capacity(BUF), pos: 0, eof: false, final_newline: src == Src::Csv },
            src,
            started: false,
            done: false,
            p: Parser { nl_ok, keys: Vec::new(), key_buf: Vec::new() },
        })
    }

    /// Run `f` on the buffer from the current position; refill and retry while it needs more bytes.
    fn with<T>(&mut self, mut f: impl FnMut(&mut Parser, &[u8], &mut usize) -> R<T>) -> Result<Option<T>, String> {
        loop {
            let mut i = self.input.pos;
            let at_eof = self.input.eof;
            let r = f(&mut self.p, &self.input.buf, &mut i);
            match r {
                Ok(v) => {
                    self.input.pos = i;
                    return Ok(Some(v));
                }
                Err(Stop::Fallback(why)) => return Err(why.to_string()),
                Err(Stop::More) => {
                    if at_eof {
                        return Ok(None);
                    }
                    let grew = self.input.refill().map_err(|e| format!("io: {e}"))?;
                    if !grew && !self.input.eof {
                        return Err("a record longer than 256 MB".into());
                    }
                }
            }
        }
    }

    /// Move to the start of the next record; false at the end of the records.
    fn next(&mut self) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        if self.src == Src::Array {
            let first = !self.started;
            self.started = true;
            let r = self.with(|p, s, i| {
                if first {
                    if s.len() >= *i + 3 && &s[*i..*i + 3] == b"\xef\xbb\xbf" {
                        *i += 3;
                    } else if s.len() < 3 + *i && b"\xef\xbb\xbf".starts_with(&s[*i..]) && !s[*i..].is_empty() {
                        return Err(Stop::More);
                    }
                    p.ws(s, i)?;
                    if s[*i] != b'[' {
                        return fb("not a JSON array");
                    }
                    *i += 1;
                    p.ws(s, i)?;
                    if s[*i] == b']' {
                        *i += 1;
                        return Ok(false);
                    }
                    return Ok(true);
                }
                p.ws(s, i)?;
                match s[*i] {
                    b',' => {
                        *i += 1;
                        Ok(true)
                    }
                    b']' => {
                        *i += 1;
                        Ok(false)
                    }
                    _ => fb("malformed JSON"),
                }
            })?;
            match r {
                Some(true) => Ok(true),
                Some(false) => {
                    self.done = true;
                    // nothing but whitespace may follow the array
                    let tail = self.with(|p, s, i| {
                        p.ws(s, i)?;
                        fb("content after the array")
                    });
                    match tail {
                        Ok(None) => Ok(false),
                        Ok(Some(())) => unreachable!(),
                        Err(e) => Err(e),
                    }
                }
                None => Err("the file ends inside the array".into()),
            }
        } else {
            let first = !self.started;
            self.started = true;
            let r = self.with(|_, s, i| {
                if first && s.len() >= *i + 1 && s[*i] == 0xef {
                    return fb("a byte-order mark");
                }
                loop {
                    match s.get(*i) {
                        None => return Err(Stop::More),
                        Some(b' ') | Some(b'\t') | Some(b'\r') | Some(b'\n') => *i += 1,
                        Some(0x0b) | Some(0x0c) => return fb("unusual whitespace"),
                        Some(_) => return Ok(()),
                    }
                }
            })?;
            if r.is_none() {
                self.done = true;
                return Ok(false);
            }
            Ok(true)
        }
    }

    /// After a record of an ndjson file: the rest of its line must be blank.
    fn end_line(&mut self) -> Result<(), String> {
        if self.src != Src::Lines {
            return Ok(());
        }
        let r = self.with(|_, s, i| loop {
            match s.get(*i) {
                None => return Err(Stop::More),
                Some(b' ') | Some(b'\t') | Some(b'\r') => *i += 1,
                Some(b'\n') => {
                    *i += 1;
                    return Ok(());
                }
                Some(_) => return fb("more than one value on a line"),
            }
        })?;
        let _ = r; // None: the file ends after the record
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------ writers

fn csv_cell(cell: &[u8], out: &mut Vec<u8>) {
    if scan::find4(cell, b',', b'"', b'\n', b'\r').is_some() {
        out.push(b'"');
        for &b in cell {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(cell);
    }
}

fn csv_row<'a>(cells: impl Iterator<Item = &'a [u8]>, width: usize, out: &mut Vec<u8>) {
    let mut first = true;
    let mut empty = true;
    for c in cells {
        if !first {
            out.push(b',');
        }
        first = false;
        empty &= c.is_empty();
        csv_cell(c, out);
    }
    if width == 1 && empty {
        out.extend_from_slice(b"\"\"");
    }
    out.push(b'\n');
}

struct CsvOut {
    columns: Vec<Vec<u8>>,
    index: HashMap<Vec<u8>, usize>,
    order: Vec<usize>, // the column of each field position in the last record
    row: Vec<usize>,   // per column: the cell's slot in `cells`, or usize::MAX
    regions: Vec<(u64, usize)>,
    body: u64,
}

impl CsvOut {
    fn columns_of(&mut self, arena: &[u8], cells: &[[usize; 4]]) -> Vec<usize> {
        let mut cols = Vec::with_capacity(cells.len());
        for (pos, c) in cells.iter().enumerate() {
            let key = &arena[c[0]..c[1]];
            if let Some(&known) = self.order.get(pos) {
                if self.columns[known] == key {
                    cols.push(known);
                    continue;
                }
            }
            let col = match self.index.get(key) {
                Some(&k) => k,
                None => {
                    self.columns.push(key.to_vec());
                    self.index.insert(key.to_vec(), self.columns.len() - 1);
                    self.columns.len() - 1
                }
            };
            if pos < self.order.len() {
                self.order[pos] = col;
            } else {
                self.order.push(col);
            }
            cols.push(col);
        }
        cols
    }

    fn encode(&mut self, arena: &[u8], cells: &[[usize; 4]], cols: &[usize], out: &mut Vec<u8>) {
        let width = self.columns.len();
        self.row.clear();
        self.row.resize(width, usize::MAX);
        for (slot, &col) in cols.iter().enumerate() {
            self.row[col] = slot;
        }
        let row = &self.row;
        csv_row(row.iter().map(|&slot| if slot == usize::MAX { &b""[..] } else { let c = cells[slot]; &arena[c[2]..c[3]] }), width, out);
    }

    fn note(&mut self, bytes: usize) {
        self.body += bytes as u64;
        let width = self.columns.len();
        match self.regions.last_mut() {
            Some(last) if last.1 == width => last.0 = self.body,
            _ => self.regions.push((self.body, width)),
        }
    }
}

fn header(columns: &[Vec<u8>]) -> Vec<u8> {
    let mut h = Vec::new();
    if !columns.is_empty() {
        csv_row(columns.iter().map(|c| &c[..]), columns.len(), &mut h);
    }
    h
}

/// One csv row of `line` (without its LF) padded from `ncols` to `width` cells.
fn pad_row(line: &[u8], ncols: usize, width: usize, out: &mut Vec<u8>) {
    let empty = ncols == 0 || (ncols == 1 && line == b"\"\"");
    if empty {
        if width == 1 {
            out.extend_from_slice(b"\"\"");
        } else {
            for _ in 0..width - 1 {
                out.push(b',');
            }
        }
    } else {
        out.extend_from_slice(line);
        for _ in ncols..width {
            out.push(b',');
        }
    }
    out.push(b'\n');
}

fn pad_file(dst: &str, head_len: usize, columns: &[Vec<u8>], regions: &[(u64, usize)]) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Seek, SeekFrom};
    let io = |e: std::io::Error| format!("io: {e}");
    let tmp = format!("{dst}.pad");
    let mut src = File::open(dst).map_err(io)?;
    src.seek(SeekFrom::Start(head_len as u64)).map_err(io)?;
    let mut src = BufReader::with_capacity(1 << 20, src);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io)?);
    w.write_all(&header(columns)).map_err(io)?;
    let width = columns.len();
    let mut done = 0u64;
    let mut row = Vec::new();
    let mut out = Vec::new();
    for &(end, ncols) in regions {
        let mut part = (&mut src).take(end - done);
        if ncols == width {
            std::io::copy(&mut part, &mut w).map_err(io)?;
        } else {
            // rows (a quoted field may hold line ends: a row ends at a line end with an even count of quotes)
            let mut quotes = 0usize;
            row.clear();
            loop {
                let start = row.len();
                let n = part.read_until(b'\n', &mut row).map_err(io)?;
                if n == 0 {
                    break;
                }
                quotes += row[start..].iter().filter(|&&b| b == b'"').count();
                if quotes % 2 == 0 && row.last() == Some(&b'\n') {
                    out.clear();
                    pad_row(&row[..row.len() - 1], ncols, width, &mut out);
                    w.write_all(&out).map_err(io)?;
                    row.clear();
                    quotes = 0;
                }
            }
        }
        done = end;
    }
    std::io::copy(&mut src, &mut w).map_err(io)?;
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, dst).map_err(io)
}

// ------------------------------------------------------------------------------------------ csv sources

/// One row of csv at s[*i]: its fields unquoted into `arena`, their spans in `fields`; an empty line gives no
/// fields. Strict as the csv module in strict mode; anything it reads in a way of its own (a quote inside an
/// unquoted field, a bare CR, a NUL) is left to Python.
fn csv_row_in(s: &[u8], i: &mut usize, arena: &mut Vec<u8>, fields: &mut Vec<(usize, usize)>) -> R<()> {
    arena.clear();
    fields.clear();
    let mut k = *i;
    match s.get(k) {
        None => return Err(Stop::More),
        Some(b'\n') => {
            *i = k + 1;
            return Ok(());
        }
        Some(b'\r') => {
            match s.get(k + 1) {
                None => return Err(Stop::More),
                Some(b'\n') => {
                    *i = k + 2;
                    return Ok(());
                }
                Some(_) => return fb("a bare CR line end"),
            }
        }
        _ => {}
    }
    loop {
        let start = arena.len();
        if s.get(k) == Some(&b'"') {
            k += 1;
            loop {
                let from = k;
                while k < s.len() && s[k] != b'"' && s[k] != 0 {
                    k += 1;
                }
                if k + 1 >= s.len() {
                    return Err(Stop::More);
                }
                if s[k] == 0 {
                    return fb("a NUL byte");
                }
                arena.extend_from_slice(&s[from..k]);
                if s[k + 1] == b'"' {
                    arena.push(b'"');
                    k += 2;
                } else {
                    k += 1;
                    break;
                }
            }
        } else {
            let from = k;
            while k < s.len() {
                let c = s[k];
                if c == b',' || c == b'\n' || c == b'\r' || c == b'"' || c == 0 {
                    break;
                }
                k += 1;
            }
            if k >= s.len() {
                return Err(Stop::More);
            }
            if s[k] == b'"' {
                return fb("a quote inside an unquoted field");
            }
            if s[k] == 0 {
                return fb("a NUL byte");
            }
            arena.extend_from_slice(&s[from..k]);
        }
        fields.push((start, arena.len()));
        match s.get(k) {
            None => return Err(Stop::More),
            Some(b',') => k += 1,
            Some(b'\n') => {
                k += 1;
                break;
            }
            Some(b'\r') => match s.get(k + 1) {
                None => return Err(Stop::More),
                Some(b'\n') => {
                    k += 2;
                    break;
                }
                Some(_) => return fb("a bare CR line end"),
            },
            Some(_) => return fb("text after a closing quote"),
        }
    }
    if arena.iter().any(|&b| b >= 0x80) && std::str::from_utf8(arena).is_err() {
        return fb("text that is not UTF-8");
    }
    *i = k;
    Ok(())
}

/// Text as Python's json module writes a str (no ASCII escaping).
fn json_str(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let mut from = 0;
    for (k, &c) in text.iter().enumerate() {
        if c >= 0x20 && c != b'"' && c != b'\\' {
            continue;
        }
        out.extend_from_slice(&text[from..k]);
        from = k + 1;
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
    }
    out.extend_from_slice(&text[from..]);
    out.push(b'"');
}

fn convert_csv(src: &str, dst: &str, dst_fmt: &str) -> Result<u64, String> {
    let io = |e: std::io::Error| format!("io: {e}");
    let mut rd = Reader::new(src, Src::Csv).map_err(io)?;
    let array = match dst_fmt {
        "json" => true,
        "ndjson" => false,
        _ => return Err(format!("no native writer for {dst_fmt}")),
    };
    let mut arena = Vec::new();
    let mut fields: Vec<(usize, usize)> = Vec::new();
    // the BOM, then the header: the first row with fields
    rd.with(|_, s, i| {
        if s.len() < *i + 3 {
            if s.len() == *i || rd_short_bom(&s[*i..]) {
                return Err(Stop::More);
            }
            return Ok(());
        }
        if &s[*i..*i + 3] == b"\xef\xbb\xbf" {
            *i += 3;
        }
        Ok(())
    })?;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let got = rd.with(|_, s, i| csv_row_in(s, i, &mut arena, &mut fields))?;
        if got.is_none() {
            if rd.input.pos < rd.input.buf.len() {
                return Err("the file ends inside a quoted field".into());
            }
            break; // no header: no records
        }
        if !fields.is_empty() {
            for &(a, b) in &fields {
                let mut k = Vec::new();
                json_str(&arena[a..b], &mut k);
                if keys.contains(&k) {
                    return Err("a column named twice in the header".into());
                }
                keys.push(k);
            }
            break;
        }
    }
    let width = keys.len();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(dst).map_err(io)?);
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut count: u64 = 0;
    loop {
        let got = rd.with(|_, s, i| csv_row_in(s, i, &mut arena, &mut fields))?;
        if got.is_none() {
            if rd.input.pos < rd.input.buf.len() {
                return Err("the file ends inside a quoted field".into());
            }
            break;
        }
        if fields.is_empty() {
            continue;
        }
        if fields.len() > width {
            return Err("a row longer than the header".into());
        }
        out.clear();
        if array {
            out.extend_from_slice(if count == 0 { b"[\n" } else { b",\n" });
        }
        out.push(b'{');
        for (n, key) in keys.iter().enumerate() {
            if n > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(key);
            out.extend_from_slice(b": ");
            match fields.get(n) {
                Some(&(a, b)) => json_str(&arena[a..b], &mut out),
                None => out.extend_from_slice(b"\"\""),
            }
        }
        out.push(b'}');
        if !array {
            out.push(b'\n');
        }
        w.write_all(&out).map_err(io)?;
        count += 1;
    }
    if array {
        w.write_all(if count == 0 { b"[]\n" } else { b"\n]\n" }).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(count)
}

fn rd_short_bom(head: &[u8]) -> bool {
    !head.is_empty() && b"\xef\xbb\xbf".starts_with(head)
}

fn convert(src: &str, src_fmt: &str, dst: &str, dst_fmt: &str) -> Result<u64, String> {
    let kind = match src_fmt {
        "json" => Src::Array,
        "ndjson" => Src::Lines,
        "csv" => return convert_csv(src, dst, dst_fmt),
        _ => return Err(format!("no native reader for {src_fmt}")),
    };
    let io = |e: std::io::Error| format!("io: {e}");
    let mut rd = Reader::new(src, kind).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, File::create(dst).map_err(io)?);
    let mut count: u64 = 0;
    let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
    match dst_fmt {
        "json" | "ndjson" => {
            let array = dst_fmt == "json";
            while rd.next()? {
                out.clear();
                if array {
                    out.extend_from_slice(if count == 0 { b"[\n" } else { b",\n" });
                }
                let got = rd.with(|p, s, i| {
                    p.ws(s, i)?;
                    if s[*i] != b'{' {
                        return fb("a record that is not an object");
                    }
                    let mark = out.len();
                    let r = p.object(s, i, &mut out, Style::Spaced, 1);
                    if r.is_err() {
                        out.truncate(mark);
                    }
                    r
                })?;
                if got.is_none() {
                    return Err("the file ends inside a record".into());
                }
                rd.end_line()?;
                if !array {
                    out.push(b'\n');
                }
                w.write_all(&out).map_err(io)?;
                count += 1;
            }
            if array {
                w.write_all(if count == 0 { b"[]\n" } else { b"\n]\n" }).map_err(io)?;
            }
        }
        "csv" => {
            let mut csv = CsvOut { columns: Vec::new(), index: HashMap::new(), order: Vec::new(), row: Vec::new(),
                                   regions: Vec::new(), body: 0 };
            let mut arena: Vec<u8> = Vec::with_capacity(1 << 16);
            let mut cells: Vec<[usize; 4]> = Vec::new();
            // records held until the header is known: (arena, cells) of each
            let mut held: Vec<(Vec<u8>, Vec<[usize; 4]>, Vec<usize>)> = Vec::new();
            let mut held_bytes = 0usize;
            let mut head_len: Option<usize> = None;
            loop {
                let more = rd.next()?;
                if more {
                    arena.clear();
                    cells.clear();
                    let got = rd.with(|p, s, i| {
                        arena.clear();
                        cells.clear();
                        p.record_cells(s, i, &mut arena, &mut cells)
                    })?;
                    if got.is_none() {
                        return Err("the file ends inside a record".into());
                    }
                    rd.end_line()?;
                    count += 1;
                    let cols = csv.columns_of(&arena, &cells);
                    if head_len.is_none() {
                        held_bytes += arena.len() + 16 * cells.len();
                        held.push((arena.clone(), cells.clone(), cols));
                        if held_bytes < HEAD_BYTES {
                            continue;
                        }
                    } else {
                        out.clear();
                        csv.encode(&arena, &cells, &cols, &mut out);
                        w.write_all(&out).map_err(io)?;
                        csv.note(out.len());
                        continue;
                    }
                }
                if head_len.is_none() {
                    let h = header(&csv.columns);
                    w.write_all(&h).map_err(io)?;
                    head_len = Some(h.len());
                    for (a, c, cols) in held.drain(..) {
                        out.clear();
                        csv.encode(&a, &c, &cols, &mut out);
                        w.write_all(&out).map_err(io)?;
                        csv.note(out.len());
                    }
                }
                if !more {
                    break;
                }
            }
            w.flush().map_err(io)?;
            drop(w);
            let width = csv.columns.len();
            if csv.regions.iter().any(|r| r.1 < width) {
                pad_file(dst, head_len.unwrap_or(0), &csv.columns, &csv.regions)?;
            }
            return Ok(count);
        }
        _ => return Err(format!("no native writer for {dst_fmt}")),
    }
    w.flush().map_err(io)?;
    Ok(count)
}


fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--scan" {
        match scan::scan(&args[2], &args[3], args[4].parse().unwrap_or(256 * 1024)) {
            Ok(report) => println!("{report}"),
            Err(why) => {
                println!("{{\"fallback\": \"{}\"}}", why.replace('\\', "\\\\").replace('"', "'"));
                std::process::exit(3);
            }
        }
        return;
    }
    if args.len() != 5 {
        eprintln!("usage: pipeloom-convert SRC SRC_FMT DST DST_FMT");
        std::process::exit(2);
    }
    match convert(&args[1], &args[2], &args[3], &args[4]) {
        Ok(n) => {
            println!("{{\"count\": {n}}}");
        }
        Err(why) => {
            let _ = std::fs::remove_file(&args[3]);
            println!("{{\"fallback\": \"{}\"}}", why.replace('\\', "\\\\").replace('"', "'"));
            std::process::exit(3);
        }
    }
}
