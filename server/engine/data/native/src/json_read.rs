//! Reading JSON: a parser that checks each value as Python's json module would accept it and writes it
//! back as Python writes it (spaced or compact), or splits a record into its keys and cells for csv.

use crate::float_repr::py_repr;
use crate::input::{fb, Stop, R};
use crate::scan;

const MAX_NEST: usize = 500;

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Style {
    Spaced,
    Compact,
}

pub(crate) struct Parser {
    pub(crate) nl_ok: bool, // ndjson: a value may not cross a line end
    pub(crate) keys: Vec<u64>,
    pub(crate) key_buf: Vec<u8>,
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
pub(crate) fn string_end(s: &[u8], start: usize) -> (usize, bool) {
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

pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";

impl Parser {
    #[inline]
    pub(crate) fn ws(&self, s: &[u8], i: &mut usize) -> R<()> {
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
    pub(crate) fn string(&self, s: &[u8], i: &mut usize, mut raw: Option<&mut Vec<u8>>, mut json: Option<&mut Vec<u8>>) -> R<()> {
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
    pub(crate) fn number(&self, s: &[u8], i: &mut usize, out: &mut Vec<u8>) -> R<()> {
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
            out.extend_from_slice(if lit == b"-0" { b"0" } else { lit });
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

    /// Any JSON value at s[*i] (whitespace skipped), written to `out` in `style`.
    pub(crate) fn value(&mut self, s: &[u8], i: &mut usize, out: &mut Vec<u8>, style: Style, depth: usize) -> R<()> {
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
                literal(s, i, b"true")?;
                out.extend_from_slice(b"true");
                Ok(())
            }
            b'f' => {
                literal(s, i, b"false")?;
                out.extend_from_slice(b"false");
                Ok(())
            }
            b'n' => {
                literal(s, i, b"null")?;
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

    pub(crate) fn object(&mut self, s: &[u8], i: &mut usize, out: &mut Vec<u8>, style: Style, depth: usize) -> R<()> {
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
                let r = self.string(s, i, Some(&mut kb), Some(&mut *out));
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
    pub(crate) fn record_cells(&mut self, s: &[u8], i: &mut usize, arena: &mut Vec<u8>, cells: &mut Vec<[usize; 4]>) -> R<()> {
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
                    b'n' => literal(s, i, b"null")?,
                    b't' => {
                        literal(s, i, b"true")?;
                        arena.extend_from_slice(b"true");
                    }
                    b'f' => {
                        literal(s, i, b"false")?;
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

/// Text as Python's json module writes a str (no ASCII escaping).
pub(crate) fn json_str(text: &[u8], out: &mut Vec<u8>) {
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

/// The literal `word` (true, false, null) at s[*i].
pub(crate) fn literal(s: &[u8], i: &mut usize, word: &'static [u8]) -> R<()> {
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
