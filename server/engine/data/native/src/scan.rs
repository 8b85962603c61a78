//! Record counts and checkpoints of json, ndjson and csv files, for the page indexes (pageindex.py):
//! one pass at block speed (`pipeloom-convert --scan FILE FORMAT EVERY`), printing `c RECORD BYTE LINE` per
//! checkpoint and a JSON line with the total.
//!
//! The file is read in large blocks and looked at 64 bytes at a time (bits.rs): masks of the bytes that
//! matter (line feeds; quotes, commas and CRs; brackets, quotes and backslashes), from which counts come by
//! popcount. Where 64 bytes hold anything unusual (a NUL, a bare CR, a blank-looking line, a quote where a
//! csv field cannot open one, a backslash outside a JSON string, the end of the array) they are walked byte
//! by byte by the exact state machine, from the same state, so every count, checkpoint and fallback is what
//! the byte-by-byte scan decides.

use std::fs::File;
use std::io::{BufWriter, Read, Write};

use crate::bits::{escaped, from, upto, Block, Plain};
#[cfg(target_arch = "x86_64")]
use crate::bits::{Avx2, Sse2};

pub const LO: u64 = 0x0101010101010101;
pub const HI: u64 = 0x8080808080808080;

#[inline(always)]
pub fn has(v: u64, c: u8) -> u64 {
    let x = v ^ (LO * c as u64);
    x.wrapping_sub(LO) & !x & HI
}

/// The offset of the first byte of `hay` equal to `a` or `b` (eight bytes at a time).
#[inline]
pub fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut k = 0;
    while k + 8 <= hay.len() {
        let v = u64::from_le_bytes(hay[k..k + 8].try_into().unwrap());
        let m = has(v, a) | has(v, b);
        if m != 0 {
            return Some(k + (m.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    hay[k..].iter().position(|&c| c == a || c == b).map(|p| k + p)
}

/// The offset of the first byte of `hay` equal to any of `a`, `b`, `c`, `d`.
#[inline]
pub fn find4(hay: &[u8], a: u8, b: u8, c: u8, d: u8) -> Option<usize> {
    let mut k = 0;
    while k + 8 <= hay.len() {
        let v = u64::from_le_bytes(hay[k..k + 8].try_into().unwrap());
        let m = has(v, a) | has(v, b) | has(v, c) | has(v, d);
        if m != 0 {
            return Some(k + (m.trailing_zeros() / 8) as usize);
        }
        k += 8;
    }
    hay[k..].iter().position(|&x| x == a || x == b || x == c || x == d).map(|p| k + p)
}

const READ: usize = 256 << 10; // bytes per read: a multiple of 64, small enough to stay in the cache
const BOM: &[u8] = b"\xef\xbb\xbf";

struct Scan {
    out: BufWriter<std::io::Stdout>,
    next_cp: u64,
    every: u64, // a checkpoint at the first record start in each stretch of this many bytes
}

impl Scan {
    #[inline]
    fn at(&mut self, record: u64, byte: u64, line: u64) -> Result<(), String> {
        if byte >= self.next_cp {
            writeln!(self.out, "c {record} {byte} {line}").map_err(|e| format!("io: {e}"))?;
            self.next_cp = byte - byte % self.every + self.every;
        }
        Ok(())
    }

    /// Checkpoints at the positions `bits` (offsets of record starts within the 64 bytes at `pos`) that are
    /// due; `record(j)` and `line(j)` give the counts before offset j.
    #[inline(always)]
    fn due(&mut self, bits: u64, pos: u64, record: impl Fn(u32) -> u64, line: impl Fn(u32) -> u64)
           -> Result<(), String> {
        while pos + 64 > self.next_cp {
            let c = bits & from(self.next_cp.saturating_sub(pos));
            if c == 0 {
                break;
            }
            let j = c.trailing_zeros();
            self.at(record(j), pos + j as u64, line(j))?;
        }
        Ok(())
    }
}

#[inline(always)]
fn below(j: u32) -> u64 {
    (1u64 << j) - 1
}

#[inline(always)]
fn ones(x: u64) -> u64 {
    x.count_ones() as u64
}

/// Read the whole of `buf` unless the file ends first.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Run `$body` on the file 64 bytes at a time, with `$s` the bytes (always 64: the last ones padded with
/// zeros), of which the first `$len` are the file's, starting at byte `$pos`. A macro, so that the body is
/// compiled inside the scan (and with its processor features); `?` and `return` leave the scan.
macro_rules! groups {
    ($path:expr, |$s:ident, $pos:ident, $len:ident| $body:block) => {{
        let io = |e: std::io::Error| format!("io: {e}");
        let mut f = File::open($path).map_err(io)?;
        let mut buf = vec![0u8; READ];
        let mut at = 0u64;
        loop {
            let n = read_full(&mut f, &mut buf).map_err(io)?;
            let mut k = 0;
            while k + 64 <= n {
                let ($s, $pos, $len): (&[u8], u64, usize) = (&buf[k..k + 64], at + k as u64, 64);
                $body
                k += 64;
            }
            if k < n {
                let mut last = [0u8; 64];
                last[..n - k].copy_from_slice(&buf[k..n]);
                let ($s, $pos, $len): (&[u8], u64, usize) = (&last, at + k as u64, n - k);
                $body
            }
            at += n as u64;
            if n < READ {
                break;
            }
        }
    }};
}

#[inline(always)]
fn valid(len: usize) -> u64 {
    if len >= 64 { !0 } else { (1u64 << len) - 1 }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

// ------------------------------------------------------------------------------------------ ndjson

/// ndjson: records are the lines that are not blank (only ASCII whitespace, as bytes.strip() sees it).
/// A checkpoint goes at the first line start in each stretch, blank or not.
#[inline(always)]
fn scan_ndjson<B: Block>(path: &str, sc: &mut Scan) -> Result<String, String> {
    let (mut starts, mut blanks, mut lines) = (0u64, 0u64, 0u64);
    let mut start_carry = 1u64; // the next 64 bytes begin a line
    let mut pending = false; // a line that is blank so far continues into the next 64 bytes
    // how a line that may be blank (it starts with a byte <= 0x20) ends, from offset i: Some(blank) or None
    // when the 64 bytes end first
    let settle = |s: &[u8], len: usize, mut i: usize| -> Option<bool> {
        while i < len {
            let b = s[i];
            if b == b'\n' {
                return Some(true);
            }
            if !is_ws(b) {
                return Some(false);
            }
            i += 1;
        }
        None
    };
    groups!(path, |s, pos, len| {
        let b = B::load(s);
        let v = valid(len);
        let nl = b.eq(b'\n') & v;
        let st = ((nl << 1) | start_carry) & v;
        start_carry = nl >> 63;
        if pending {
            if let Some(blank) = settle(s, len, 0) {
                blanks += blank as u64;
                pending = false;
            }
        }
        let mut cand = st & b.le(0x20);
        let mut blank = 0u64;
        while cand != 0 {
            let i = cand.trailing_zeros();
            match settle(s, len, i as usize) {
                Some(true) => blank |= 1 << i,
                Some(false) => {}
                None => pending = true, // the last line start of these 64 bytes
            }
            cand &= cand - 1;
        }
        let (s0, b0, l0) = (starts, blanks, lines);
        sc.due(st, pos, |j| s0 + ones(st & below(j)) - b0 - ones(blank & below(j)), |j| l0 + ones(nl & below(j)))?;
        starts += ones(st);
        blanks += ones(blank);
        lines += ones(nl);
    });
    blanks += pending as u64; // a last line without a line end, blank
    Ok(format!("{{\"total\": {}}}", starts - blanks))
}

// ------------------------------------------------------------------------------------------ csv

#[derive(Clone, Copy, PartialEq)]
enum St { RowStart, FieldStart, Unquoted, Quoted, QuotedCr, QuoteSeen, Cr, CrEmpty }

struct Csv {
    st: St,
    rows: u64,
    lines: u64,
    header: Option<(u64, u64)>,
}

impl Csv {
    #[inline]
    fn row_end(&mut self, at: u64, sc: &mut Scan) -> Result<(), String> {
        match self.header {
            None => {
                self.header = Some((at, self.lines));
                sc.at(0, at, self.lines)
            }
            Some(_) => {
                self.rows += 1;
                sc.at(self.rows, at, self.lines)
            }
        }
    }

    /// The exact state machine, byte by byte, over `chunk` (the file's bytes from `pos`).
    fn walk(&mut self, chunk: &[u8], pos: u64, sc: &mut Scan) -> Result<(), String> {
        let mut k = 0;
        while k < chunk.len() {
            let b = chunk[k];
            let st = self.st;
            let end_row = match st {
                St::RowStart => match b {
                    b'\n' => {
                        self.lines += 1;
                        false
                    }
                    b'\r' => {
                        self.st = St::CrEmpty;
                        false
                    }
                    b'"' => {
                        self.st = St::Quoted;
                        false
                    }
                    b',' => {
                        self.st = St::FieldStart;
                        false
                    }
                    0 => return Err("a NUL byte".into()),
                    _ => {
                        self.st = St::Unquoted;
                        false
                    }
                },
                St::FieldStart | St::Unquoted | St::QuoteSeen => match b {
                    b'\n' => true,
                    b'\r' => {
                        self.st = St::Cr;
                        false
                    }
                    b',' => {
                        self.st = St::FieldStart;
                        false
                    }
                    b'"' if st == St::FieldStart || st == St::QuoteSeen => {
                        self.st = St::Quoted;
                        false
                    }
                    0 => return Err("a NUL byte".into()),
                    _ if st == St::QuoteSeen => return Err("text after a closing quote".into()),
                    b'"' => return Err("a quote inside an unquoted field".into()),
                    _ => {
                        self.st = St::Unquoted;
                        false
                    }
                },
                St::Quoted => {
                    match b {
                        b'"' => self.st = St::QuoteSeen,
                        b'\n' => self.lines += 1,
                        b'\r' => self.st = St::QuotedCr,
                        0 => return Err("a NUL byte".into()),
                        _ => {}
                    }
                    false
                }
                St::QuotedCr => {
                    // a CR inside quotes: one line break, with or without the LF after it
                    self.st = St::Quoted;
                    self.lines += 1;
                    if b != b'\n' {
                        continue;
                    }
                    false
                }
                St::Cr | St::CrEmpty => {
                    if b != b'\n' {
                        return Err("a bare CR line end".into());
                    }
                    if st == St::CrEmpty {
                        self.lines += 1;
                        self.st = St::RowStart;
                        false
                    } else {
                        true
                    }
                }
            };
            k += 1;
            if end_row {
                self.lines += 1;
                self.st = St::RowStart;
                self.row_end(pos + k as u64, sc)?;
            }
        }
        Ok(())
    }

    /// 64 bytes by their masks; false (nothing changed) when they need the byte-by-byte walk.
    #[inline(always)]
    fn fast<B: Block>(&mut self, s: &[u8], pos: u64, len: usize, sc: &mut Scan) -> Result<bool, String> {
        let b = B::load(s);
        let v = valid(len);
        let st = self.st;
        let nl = b.eq(b'\n') & v;
        // a NUL or a CR is rare: looked for only where some byte is below 14
        let (ctl, cr) = match b.le(b'\r') & v & !nl {
            0 => (0, 0),
            _ => (b.eq(0) & v, b.eq(b'\r') & v),
        };
        if ctl != 0 {
            return Ok(false);
        }
        match st {
            St::QuotedCr | St::Cr | St::CrEmpty if s[0] != b'\n' => return Ok(false),
            St::QuoteSeen if !matches!(s[0], b',' | b'\n' | b'\r' | b'"') => return Ok(false),
            _ => {}
        }
        let q = b.eq(b'"') & v;
        let comma = b.eq(b',') & v;
        let inside = B::prefix_xor(q) ^ if matches!(st, St::Quoted | St::QuotedCr) { !0 } else { 0 };
        // a quote opens a field only after a delimiter, a line end or a closing quote (an escaped pair)...
        let opened_after = (comma | nl | q) << 1 | matches!(st, St::RowStart | St::FieldStart | St::QuoteSeen) as u64;
        // ...and one that closes is followed by a delimiter, a line end or a quote; a CR always by a LF
        let within = v >> 1; // the last byte's follower is checked with the next 64 bytes (or at the end)
        if (q & inside & !opened_after) | (q & !inside & !((comma | nl | cr | q) >> 1) & within) | (cr & !(nl >> 1) & within) != 0 {
            return Ok(false);
        }
        let row_start = (nl << 1) | (st == St::RowStart) as u64;
        let empty = nl & !inside & (row_start | ((cr & row_start) << 1) | (st == St::CrEmpty) as u64);
        let mut ends = nl & !inside & !empty;
        let l0 = self.lines;
        if self.header.is_none() && ends != 0 {
            let j = ends.trailing_zeros();
            let at = pos + j as u64 + 1;
            let ln = l0 + ones(nl & upto(j));
            self.header = Some((at, ln));
            sc.at(0, at, ln)?;
            ends &= ends - 1;
        }
        let r0 = self.rows;
        // a checkpoint goes after a row's line end: at offset j + 1
        if pos + 65 > sc.next_cp {
            let after = ends << 1;
            sc.due(after, pos, |j| r0 + ones(after & upto(j)), |j| l0 + ones(nl & below(j)))?;
            if ends >> 63 != 0 && pos + 64 >= sc.next_cp {
                sc.at(r0 + ones(ends), pos + 64, l0 + ones(nl))?;
            }
        }
        self.rows += ones(ends);
        self.lines += ones(nl);
        let last = 1u64 << (len - 1);
        self.st = if cr & last != 0 {
            if inside & last != 0 { St::QuotedCr } else if row_start & last != 0 { St::CrEmpty } else { St::Cr }
        } else if inside & last != 0 {
            St::Quoted
        } else if nl & last != 0 {
            St::RowStart
        } else if comma & last != 0 {
            St::FieldStart
        } else if q & last != 0 {
            St::QuoteSeen
        } else {
            St::Unquoted
        };
        Ok(true)
    }
}

/// csv: rows (line ends outside quotes; empty lines are no rows) less the header. What the csv module
/// reads in its own way (a quote inside an unquoted field, a bare CR, a NUL, an open quote at the end) is
/// left to Python's scan.
#[inline(always)]
fn scan_csv<B: Block>(path: &str, sc: &mut Scan) -> Result<String, String> {
    let mut c = Csv { st: St::RowStart, rows: 0, lines: 0, header: None };
    groups!(path, |s, pos, len| {
        if pos == 0 && s[..len].starts_with(BOM) {
            c.walk(&s[3..len], 3, sc)?;
        } else if !c.fast::<B>(s, pos, len, sc)? {
            c.walk(&s[..len], pos, sc)?;
        }
    });
    match c.st {
        St::RowStart => {}
        St::Quoted | St::QuotedCr | St::Cr | St::CrEmpty => return Err("the file ends inside a quoted field or a line end".into()),
        _ => {
            if c.header.is_some() {
                c.rows += 1;
            } else {
                return Err("a header without a line end".into());
            }
        }
    }
    let (he, hl) = c.header.unwrap_or((0, 0));
    Ok(format!("{{\"total\": {}, \"header_end\": {he}, \"header_lines\": {hl}}}", c.rows))
}

// ------------------------------------------------------------------------------------------ json arrays

#[derive(Clone, Copy, PartialEq)]
enum Js { Start, Open, Body, Ended }

struct Json {
    st: Js,
    depth: u32,
    in_string: bool,
    escaped: bool, // the next byte is escaped (inside a string)
    commas: u64,
    nonempty: bool,
}

impl Json {
    /// The exact scan, byte by byte, over `chunk` (the file's bytes from `pos`).
    fn walk(&mut self, chunk: &[u8], pos: u64, sc: &mut Scan) -> Result<(), String> {
        let n = chunk.len();
        let mut k = 0;
        if self.escaped && k < n {
            self.escaped = false;
            k += 1;
        }
        while k < n {
            if self.st == Js::Body {
                while k < n {
                    if self.in_string {
                        match find2(&chunk[k..], b'"', b'\\') {
                            None => {
                                k = n;
                            }
                            Some(off) => {
                                k += off;
                                if chunk[k] == b'"' {
                                    self.in_string = false;
                                    k += 1;
                                } else if k + 1 < n {
                                    k += 2;
                                } else {
                                    self.escaped = true;
                                    k = n;
                                }
                            }
                        }
                        continue;
                    }
                    match chunk[k] {
                        b'"' => self.in_string = true,
                        b'[' | b'{' => self.depth += 1,
                        b']' | b'}' => {
                            self.depth -= 1;
                            if self.depth == 0 {
                                self.st = Js::Ended;
                                k += 1;
                                break;
                            }
                        }
                        b',' if self.depth == 1 => {
                            self.commas += 1;
                            sc.at(self.commas, pos + k as u64 + 1, 0)?;
                        }
                        _ => {}
                    }
                    k += 1;
                }
                continue;
            }
            let b = chunk[k];
            match self.st {
                Js::Start => match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b'[' => {
                        self.st = Js::Open;
                        self.depth = 1;
                    }
                    _ => return Err("not a JSON array".into()),
                },
                Js::Open => match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b']' => {
                        self.st = Js::Ended;
                        self.depth = 0;
                    }
                    _ => {
                        self.st = Js::Body;
                        self.nonempty = true;
                        sc.at(0, pos + k as u64, 0)?;
                        continue;
                    }
                },
                Js::Ended => {
                    if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                        return Err("content after the end of the top-level array".into());
                    }
                }
                Js::Body => unreachable!(),
            }
            k += 1;
        }
        Ok(())
    }

    /// 64 bytes of the array's body by their masks; false (nothing changed) when they need the byte-by-byte
    /// walk (a backslash outside a string, the end of the array).
    #[inline(always)]
    fn fast<B: Block>(&mut self, s: &[u8], pos: u64, len: usize, sc: &mut Scan) -> Result<bool, String> {
        let b = B::load(s);
        let v = valid(len);
        let bs = b.eq(b'\\') & v;
        let mut carry = self.escaped as u64;
        let esc = escaped(bs, &mut carry);
        let instr = B::prefix_xor(b.eq(b'"') & v & !esc) ^ if self.in_string { !0 } else { 0 };
        if bs & !instr != 0 {
            return Ok(false);
        }
        let open = b.eq_folded(b'{') & !instr & v;
        let close = b.eq_folded(b'}') & !instr & v;
        let comma = b.eq(b',') & !instr & v;
        let mut depth = self.depth;
        let mut top = 0u64; // the commas at depth 1
        let mut brackets = open | close;
        if brackets == 0 {
            if depth == 1 {
                top = comma;
            }
        } else {
            let mut rest = !0u64;
            while brackets != 0 {
                let j = brackets.trailing_zeros();
                if depth == 1 {
                    top |= comma & rest & below(j);
                }
                if open >> j & 1 != 0 {
                    depth += 1;
                } else {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(false);
                    }
                }
                rest = from(j as u64 + 1);
                brackets &= brackets - 1;
            }
            if depth == 1 {
                top |= comma & rest;
            }
        }
        self.depth = depth;
        self.in_string = instr >> (len - 1) & 1 != 0;
        self.escaped = carry != 0;
        let c0 = self.commas;
        if pos + 65 > sc.next_cp {
            // a checkpoint goes after a comma: at offset j + 1
            let after = top << 1;
            sc.due(after, pos, |j| c0 + ones(after & upto(j)), |_| 0)?;
            if top >> 63 != 0 && pos + 64 >= sc.next_cp {
                sc.at(c0 + ones(top), pos + 64, 0)?;
            }
        }
        self.commas += ones(top);
        Ok(true)
    }
}

/// json: the items of the top-level array (commas at depth 1 outside strings).
#[inline(always)]
fn scan_json<B: Block>(path: &str, sc: &mut Scan) -> Result<String, String> {
    let mut js = Json { st: Js::Start, depth: 0, in_string: false, escaped: false, commas: 0, nonempty: false };
    groups!(path, |s, pos, len| {
        if pos == 0 && s[..len].starts_with(BOM) {
            js.walk(&s[3..len], 3, sc)?;
        } else if js.st != Js::Body || !js.fast::<B>(s, pos, len, sc)? {
            js.walk(&s[..len], pos, sc)?;
        }
    });
    if js.st != Js::Ended || js.in_string {
        return Err("the file ends inside the top-level array".into());
    }
    let total = if js.nonempty { js.commas + 1 } else { 0 };
    Ok(format!("{{\"total\": {total}}}"))
}

#[inline(always)]
fn scan_with<B: Block>(path: &str, fmt: &str, sc: &mut Scan) -> Result<String, String> {
    match fmt {
        "ndjson" => scan_ndjson::<B>(path, sc),
        "csv" => scan_csv::<B>(path, sc),
        "json" => scan_json::<B>(path, sc),
        _ => Err(format!("no scan for {fmt}")),
    }
}

/// The scans compiled for AVX2 (with POPCNT, BMI and PCLMULQDQ for the bits), for processors that have them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt,bmi1,bmi2,pclmulqdq")]
unsafe fn scan_avx2(path: &str, fmt: &str, sc: &mut Scan) -> Result<String, String> {
    scan_with::<Avx2>(path, fmt, sc)
}

/// The scans compiled for SSE2 with POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn scan_popcnt(path: &str, fmt: &str, sc: &mut Scan) -> Result<String, String> {
    scan_with::<Sse2>(path, fmt, sc)
}

fn scan_any(path: &str, fmt: &str, sc: &mut Scan) -> Result<String, String> {
    #[cfg(target_arch = "x86_64")]
    {
        let forced = std::env::var("PIPELOOM_SCAN_SIMD").unwrap_or_default();
        let has = |f: &str| forced.is_empty() || forced.split(',').any(|x| x == f);
        if has("avx2") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("popcnt")
            && is_x86_feature_detected!("bmi1") && is_x86_feature_detected!("bmi2")
            && is_x86_feature_detected!("pclmulqdq") {
            // SAFETY: the processor has every feature the function is compiled for
            return unsafe { scan_avx2(path, fmt, sc) };
        }
        if has("popcnt") && is_x86_feature_detected!("popcnt") {
            // SAFETY: as above
            return unsafe { scan_popcnt(path, fmt, sc) };
        }
        if has("sse2") {
            return scan_with::<Sse2>(path, fmt, sc);
        }
    }
    scan_with::<Plain>(path, fmt, sc)
}

pub fn scan(path: &str, fmt: &str, every: u64) -> Result<String, String> {
    let mut sc = Scan { out: BufWriter::with_capacity(1 << 16, std::io::stdout()), next_cp: 0, every: every.max(1) };
    let r = scan_any(path, fmt, &mut sc);
    sc.out.flush().map_err(|e| format!("io: {e}"))?;
    r
}
