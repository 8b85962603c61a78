//! Record counts and checkpoints of json, ndjson and csv files, for the page indexes (pageindex.py):
//! one pass at block speed (`pipeloom-convert --scan FILE FORMAT EVERY`), printing `c RECORD BYTE LINE` per checkpoint and a JSON line with the total.

use std::fs::File;
use std::io::{BufWriter, Read, Write};

// ------------------------------------------------------------------------------------------ scans


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

fn count_byte(hay: &[u8], c: u8) -> u64 {
    hay.iter().filter(|&&x| x == c).count() as u64
}


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
}

fn chunks(path: &str, mut each: impl FnMut(&[u8], u64) -> Result<(), String>) -> Result<u64, String> {
    let io = |e: std::io::Error| format!("io: {e}");
    let mut f = File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(pos);
        }
        each(&buf[..n], pos)?;
        pos += n as u64;
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// ndjson: records are the lines that are not blank.
fn scan_ndjson(path: &str, sc: &mut Scan) -> Result<String, String> {
    let (mut records, mut lines) = (0u64, 0u64);
    let mut line_start = true;
    let mut nonblank = false;
    chunks(path, |chunk, pos| {
        let mut k = 0;
        while k < chunk.len() {
            if line_start {
                sc.at(records, pos + k as u64, lines)?;
                // whole lines up to the next checkpoint's stretch, counted at once when none is blank
                let stop = ((sc.next_cp - pos) as usize).min(chunk.len());
                if stop > k + 1 {
                    if let Some(last) = chunk[k..stop].iter().rposition(|&b| b == b'\n') {
                        let piece = &chunk[k..k + last + 1];
                        let n = count_byte(piece, b'\n');
                        // every line of the piece starts with a byte that is not blank: n records
                        let starts = piece.windows(2).filter(|w| w[0] == b'\n' && !is_ws(w[1])).count() as u64;
                        if !is_ws(piece[0]) && starts + 1 == n {
                            records += n;
                            lines += n;
                            k += last + 1;
                            continue;
                        }
                    }
                }
            }
            let rest = &chunk[k..];
            match find2(rest, b'\n', b'\n') {
                Some(off) => {
                    nonblank = nonblank || rest[..off].iter().any(|&b| !is_ws(b));
                    records += nonblank as u64;
                    lines += 1;
                    nonblank = false;
                    line_start = true;
                    k += off + 1;
                }
                None => {
                    nonblank = nonblank || rest.iter().any(|&b| !is_ws(b));
                    line_start = false;
                    k = chunk.len();
                }
            }
        }
        Ok(())
    })?;
    records += nonblank as u64;
    Ok(format!("{{\"total\": {records}}}"))
}

/// csv: rows (line ends outside quotes; empty lines are no rows) less the header. What the csv module
/// reads in its own way (a quote inside an unquoted field, a bare CR, a NUL, an open quote at the end) is
/// left to Python's scan.
fn scan_csv(path: &str, sc: &mut Scan) -> Result<String, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum St { RowStart, FieldStart, Unquoted, Quoted, QuotedCr, QuoteSeen, Cr, CrEmpty }
    let mut st = St::RowStart;
    let (mut rows, mut lines) = (0u64, 0u64);
    let mut header: Option<(u64, u64)> = None;
    let mut first = true;
    let mut skip = 0usize;
    chunks(path, |chunk, pos| {
        if first {
            first = false;
            if chunk.starts_with(b"\xef\xbb\xbf") {
                skip = 3;
            }
        }
        let mut k = std::mem::take(&mut skip);
        while k < chunk.len() {
            let b = chunk[k];
            let end_row = match st {
                St::RowStart => match b {
                    b'\n' => {
                        lines += 1;
                        false
                    }
                    b'\r' => {
                        st = St::CrEmpty;
                        false
                    }
                    b'"' => {
                        st = St::Quoted;
                        false
                    }
                    b',' => {
                        st = St::FieldStart;
                        false
                    }
                    0 => return Err("a NUL byte".into()),
                    _ => {
                        st = St::Unquoted;
                        false
                    }
                },
                St::FieldStart | St::Unquoted | St::QuoteSeen => match b {
                    b'\n' => true,
                    b'\r' => {
                        st = St::Cr;
                        false
                    }
                    b',' => {
                        st = St::FieldStart;
                        false
                    }
                    b'"' if st == St::FieldStart => {
                        st = St::Quoted;
                        false
                    }
                    b'"' if st == St::QuoteSeen => {
                        st = St::Quoted;
                        false
                    }
                    0 => return Err("a NUL byte".into()),
                    _ if st == St::QuoteSeen => return Err("text after a closing quote".into()),
                    b'"' => return Err("a quote inside an unquoted field".into()),
                    _ => {
                        // the rest of an unquoted field, at speed
                        st = St::Unquoted;
                        let rest = &chunk[k..];
                        let n = rest.iter().position(|&c| matches!(c, b',' | b'\n' | b'\r' | b'"' | 0)).unwrap_or(rest.len());
                        k += n;
                        continue;
                    }
                },
                St::Quoted => {
                    let rest = &chunk[k..];
                    let n = find4(rest, b'"', b'\n', b'\r', 0).unwrap_or(rest.len());
                    if n > 0 {
                        k += n;
                        continue;
                    }
                    match b {
                        b'"' => st = St::QuoteSeen,
                        b'\n' => lines += 1,
                        b'\r' => st = St::QuotedCr,
                        _ => return Err("a NUL byte".into()),
                    }
                    false
                }
                St::QuotedCr => {
                    // a CR inside quotes: one line break, with or without the LF after it
                    st = St::Quoted;
                    lines += 1;
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
                        lines += 1;
                        st = St::RowStart;
                        false
                    } else {
                        true
                    }
                }
            };
            k += 1;
            if end_row {
                lines += 1;
                st = St::RowStart;
                let at = pos + k as u64;
                match header {
                    None => {
                        header = Some((at, lines));
                        sc.at(0, at, lines)?;
                    }
                    Some(_) => {
                        rows += 1;
                        sc.at(rows, at, lines)?;
                    }
                }
            }
        }
        Ok(())
    })?;
    match st {
        St::RowStart => {}
        St::Quoted | St::QuotedCr | St::Cr | St::CrEmpty => return Err("the file ends inside a quoted field or a line end".into()),
        _ => {
            if header.is_some() {
                rows += 1;
            } else {
                return Err("a header without a line end".into());
            }
        }
    }
    let (he, hl) = header.unwrap_or((0, 0));
    Ok(format!("{{\"total\": {rows}, \"header_end\": {he}, \"header_lines\": {hl}}}"))
}

/// json: the items of the top-level array (commas at depth 1 outside strings).
fn scan_json(path: &str, sc: &mut Scan) -> Result<String, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum St { Start, Open, Body, Ended }
    let mut st = St::Start;
    let mut depth = 0u32;
    let mut in_string = false;
    let mut escaped = false;
    let mut commas = 0u64;
    let mut nonempty = false;
    let mut first = true;
    chunks(path, |chunk, pos| {
        let n = chunk.len();
        let mut k = 0;
        if first {
            first = false;
            if chunk.starts_with(b"\xef\xbb\xbf") {
                k = 3;
            }
        }
        if escaped && k < n {
            escaped = false;
            k += 1;
        }
        while k < n {
            if st == St::Body {
                // the hot loop: strings skipped eight bytes at a time, structure byte by byte
                while k < n {
                    if in_string {
                        match find2(&chunk[k..], b'"', b'\\') {
                            None => {
                                k = n;
                            }
                            Some(off) => {
                                k += off;
                                if chunk[k] == b'"' {
                                    in_string = false;
                                    k += 1;
                                } else if k + 1 < n {
                                    k += 2;
                                } else {
                                    escaped = true;
                                    k = n;
                                }
                            }
                        }
                        continue;
                    }
                    match chunk[k] {
                        b'"' => in_string = true,
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                st = St::Ended;
                                k += 1;
                                break;
                            }
                        }
                        b',' if depth == 1 => {
                            commas += 1;
                            sc.at(commas, pos + k as u64 + 1, 0)?;
                        }
                        _ => {}
                    }
                    k += 1;
                }
                continue;
            }
            let b = chunk[k];
            match st {
                St::Start => match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b'[' => {
                        st = St::Open;
                        depth = 1;
                    }
                    _ => return Err("not a JSON array".into()),
                },
                St::Open => match b {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b']' => {
                        st = St::Ended;
                        depth = 0;
                    }
                    _ => {
                        st = St::Body;
                        nonempty = true;
                        sc.at(0, pos + k as u64, 0)?;
                        continue;
                    }
                },
                St::Ended => {
                    if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                        return Err("content after the end of the top-level array".into());
                    }
                }
                St::Body => unreachable!(),
            }
            k += 1;
        }
        Ok(())
    })?;
    if st != St::Ended || in_string {
        return Err("the file ends inside the top-level array".into());
    }
    let total = if nonempty { commas + 1 } else { 0 };
    Ok(format!("{{\"total\": {total}}}"))
}

pub fn scan(path: &str, fmt: &str, every: u64) -> Result<String, String> {
    let mut sc = Scan { out: BufWriter::with_capacity(1 << 16, std::io::stdout()), next_cp: 0, every: every.max(1) };
    let r = match fmt {
        "ndjson" => scan_ndjson(path, &mut sc),
        "csv" => scan_csv(path, &mut sc),
        "json" => scan_json(path, &mut sc),
        _ => Err(format!("no scan for {fmt}")),
    };
    sc.out.flush().map_err(|e| format!("io: {e}"))?;
    r
}
