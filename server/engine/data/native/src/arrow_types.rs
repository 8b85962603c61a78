//! The column types of json records for Arrow (arrow_cols.rs): what a value's type is, how two types
//! unify as pyarrow unifies them for Pipeloom's Python conversion, the text a schema is sent and received
//! in, and the reading of numbers, keys and literals both share.

use crate::input::{fb, Stop, R};
use crate::json_read::{literal, Parser};

pub(crate) const MAX_DEPTH: usize = 64;
pub(crate) const EXACT: u64 = 1 << 53; // an int beyond this reads as another double

#[derive(Clone, PartialEq, Debug)]
pub(crate) enum Ty {
    Null,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Ty>),
    Struct(Vec<(Vec<u8>, Ty)>),
}

/// `a` widened to take `b` too, as pyarrow unifies types; a fallback where the Python path keeps JSON text.
pub(crate) fn unify(a: &mut Ty, b: Ty) -> R<()> {
    match (&mut *a, b) {
        (_, Ty::Null) => Ok(()),
        (Ty::Null, b) => {
            *a = b;
            Ok(())
        }
        (Ty::Int, Ty::Float) => {
            *a = Ty::Float;
            Ok(())
        }
        (Ty::Float, Ty::Int) | (Ty::Int, Ty::Int) | (Ty::Float, Ty::Float) | (Ty::Bool, Ty::Bool) | (Ty::Str, Ty::Str) => Ok(()),
        (Ty::List(x), Ty::List(y)) => unify(x, *y),
        (Ty::Struct(fs), Ty::Struct(gs)) => {
            for (name, t) in gs {
                match fs.iter_mut().find(|f| f.0 == name) {
                    Some(f) => unify(&mut f.1, t)?,
                    None => fs.push((name, t)),
                }
            }
            Ok(())
        }
        _ => fb("values of two kinds in one column"),
    }
}

pub(crate) fn has_empty_struct(t: &Ty) -> bool {
    match t {
        Ty::List(x) => has_empty_struct(x),
        Ty::Struct(fs) => fs.is_empty() || fs.iter().any(|f| has_empty_struct(&f.1)),
        _ => false,
    }
}

pub(crate) fn write_ty(t: &Ty, out: &mut Vec<u8>) {
    match t {
        Ty::Null => out.push(b'n'),
        Ty::Bool => out.push(b'b'),
        Ty::Int => out.push(b'i'),
        Ty::Float => out.push(b'f'),
        Ty::Str => out.push(b's'),
        Ty::List(x) => {
            out.push(b'l');
            write_ty(x, out);
        }
        Ty::Struct(fs) => {
            out.extend_from_slice(format!("t{},", fs.len()).as_bytes());
            for (name, t) in fs {
                out.extend_from_slice(format!("{}:", name.len()).as_bytes());
                out.extend_from_slice(name);
                write_ty(t, out);
            }
        }
    }
}

pub(crate) fn read_ty(s: &[u8], i: &mut usize) -> Option<Ty> {
    let c = *s.get(*i)?;
    *i += 1;
    let number = |i: &mut usize, end: u8| -> Option<usize> {
        let start = *i;
        while *s.get(*i)? != end {
            *i += 1;
        }
        let n = std::str::from_utf8(&s[start..*i]).ok()?.parse().ok()?;
        *i += 1;
        Some(n)
    };
    Some(match c {
        b'n' => Ty::Null,
        b'b' => Ty::Bool,
        b'i' => Ty::Int,
        b'f' => Ty::Float,
        b's' => Ty::Str,
        b'l' => Ty::List(Box::new(read_ty(s, i)?)),
        b't' => {
            let n = number(i, b',')?;
            let mut fs = Vec::with_capacity(n);
            for _ in 0..n {
                let len = number(i, b':')?;
                let name = s.get(*i..*i + len)?.to_vec();
                *i += len;
                fs.push((name, read_ty(s, i)?));
            }
            Ty::Struct(fs)
        }
        _ => return None,
    })
}

pub(crate) fn unhex(h: &str) -> Option<Vec<u8>> {
    let b = h.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    (0..b.len() / 2)
        .map(|k| u8::from_str_radix(std::str::from_utf8(&b[2 * k..2 * k + 2]).ok()?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Reading values

pub(crate) enum Num {
    I(i64),
    F(f64),
}

const POW10: [f64; 23] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
                          1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/// The digits from s[k] on, added to the mantissa `m` (`over` once it passes 64 bits); where they end.
#[inline(always)]
fn digits(s: &[u8], mut k: usize, m: &mut u64, over: &mut bool) -> usize {
    while k < s.len() && s[k].is_ascii_digit() {
        match m.checked_mul(10).and_then(|v| v.checked_add((s[k] - b'0') as u64)) {
            Some(v) => *m = v,
            None => *over = true,
        }
        k += 1;
    }
    k
}

/// A number at s[*i], as Python's json module reads it: an int (within 64 bits, or a fallback) or a double.
pub(crate) fn number(s: &[u8], i: &mut usize) -> R<Num> {
    let start = *i;
    let mut k = start;
    let neg = s.get(k) == Some(&b'-');
    if neg {
        k += 1;
    }
    let d0 = k;
    let mut m: u64 = 0;
    let mut over = false;
    k = digits(s, k, &mut m, &mut over);
    if k >= s.len() {
        return Err(Stop::More);
    }
    if k == d0 || (s[d0] == b'0' && k - d0 > 1) {
        return fb("a malformed number");
    }
    let mut float = false;
    let mut frac: i64 = 0;
    if s[k] == b'.' {
        float = true;
        k += 1;
        let f0 = k;
        k = digits(s, k, &mut m, &mut over);
        if k >= s.len() {
            return Err(Stop::More);
        }
        if k == f0 {
            return fb("a malformed number");
        }
        frac = (k - f0) as i64;
    }
    let mut exp: i64 = 0;
    if s[k] == b'e' || s[k] == b'E' {
        float = true;
        k += 1;
        let mut eneg = false;
        if k < s.len() && (s[k] == b'+' || s[k] == b'-') {
            eneg = s[k] == b'-';
            k += 1;
        }
        let e0 = k;
        while k < s.len() && s[k].is_ascii_digit() {
            exp = (exp * 10 + (s[k] - b'0') as i64).min(1 << 40);
            k += 1;
        }
        if k >= s.len() {
            return Err(Stop::More);
        }
        if k == e0 {
            return fb("a malformed number");
        }
        if eneg {
            exp = -exp;
        }
    }
    *i = k;
    if !float {
        if over {
            return fb("an integer beyond 64 bits");
        }
        return if neg {
            if m > 1 << 63 {
                fb("an integer beyond 64 bits")
            } else {
                Ok(Num::I((m as i128).wrapping_neg() as i64))
            }
        } else if m > i64::MAX as u64 {
            fb("an integer beyond 64 bits")
        } else {
            Ok(Num::I(m as i64))
        };
    }
    let e10 = exp - frac;
    let x = if !over && m <= EXACT && (-22..=22).contains(&e10) {
        // both exact as doubles: one division or product rounds correctly
        let v = if e10 >= 0 { m as f64 * POW10[e10 as usize] } else { m as f64 / POW10[(-e10) as usize] };
        if neg { -v } else { v }
    } else {
        let text = unsafe { std::str::from_utf8_unchecked(&s[start..k]) };
        text.parse::<f64>().map_err(|_| Stop::Fallback("a malformed number"))?
    };
    if !x.is_finite() {
        return fb("a number beyond a double");
    }
    Ok(Num::F(x))
}

/// Whitespace skipped, as Parser::ws does, with the common cases (none, one space) first.
#[inline(always)]
pub(crate) fn ws(p: &Parser, s: &[u8], i: &mut usize) -> R<()> {
    match s.get(*i) {
        Some(&c) if c > b' ' => return Ok(()),
        Some(b' ') => {
            if let Some(&c) = s.get(*i + 1) {
                if c > b' ' {
                    *i += 1;
                    return Ok(());
                }
            }
        }
        _ => {}
    }
    p.ws(s, i)
}

/// The key at s[*i] == '"': its range in `s`, or None when it held escapes and its text is in p.key_buf.
#[inline]
pub(crate) fn key(p: &mut Parser, s: &[u8], i: &mut usize) -> R<Option<(usize, usize)>> {
    let start = *i + 1;
    let mut k = start;
    let mut wide = false;
    loop {
        let c = *s.get(k).ok_or(Stop::More)?;
        if c == b'"' {
            break;
        }
        if c == b'\\' || c < 0x20 {
            let mut kb = std::mem::take(&mut p.key_buf);
            kb.clear();
            let r = p.string(s, i, Some(&mut kb), None);
            p.key_buf = kb;
            r?;
            return Ok(None);
        }
        wide |= c >= 0x80;
        k += 1;
    }
    if wide && std::str::from_utf8(&s[start..k]).is_err() {
        return fb("text that is not UTF-8");
    }
    *i = k + 1;
    Ok(Some((start, k)))
}

/// The type of the value at s[*i] (whitespace skipped), checked as the converter checks it.
pub(crate) fn infer(p: &mut Parser, s: &[u8], i: &mut usize, depth: usize) -> R<Ty> {
    ws(p, s, i)?;
    if depth > MAX_DEPTH {
        return fb("nesting deeper than the columns take");
    }
    match s[*i] {
        b'n' => literal(s, i, b"null").map(|_| Ty::Null),
        b't' => literal(s, i, b"true").map(|_| Ty::Bool),
        b'f' => literal(s, i, b"false").map(|_| Ty::Bool),
        b'"' => p.string(s, i, None, None).map(|_| Ty::Str),
        b'-' | b'0'..=b'9' => number(s, i).map(|n| if let Num::I(_) = n { Ty::Int } else { Ty::Float }),
        b'[' => {
            *i += 1;
            let mut item = Ty::Null;
            ws(p, s, i)?;
            if s[*i] == b']' {
                *i += 1;
                return Ok(Ty::List(Box::new(item)));
            }
            loop {
                let t = infer(p, s, i, depth + 1)?;
                unify(&mut item, t)?;
                ws(p, s, i)?;
                match s[*i] {
                    b',' => *i += 1,
                    b']' => {
                        *i += 1;
                        return Ok(Ty::List(Box::new(item)));
                    }
                    _ => return fb("malformed JSON"),
                }
            }
        }
        b'{' => {
            *i += 1;
            let mut fs: Vec<(Vec<u8>, Ty)> = Vec::new();
            ws(p, s, i)?;
            if s[*i] == b'}' {
                *i += 1;
                return Ok(Ty::Struct(fs));
            }
            loop {
                ws(p, s, i)?;
                if s[*i] != b'"' {
                    return fb("malformed JSON");
                }
                let name = match key(p, s, i)? {
                    Some((a, b)) => s[a..b].to_vec(),
                    None => p.key_buf.clone(),
                };
                if fs.iter().any(|f| f.0 == name) {
                    return fb("a key given twice in one object");
                }
                ws(p, s, i)?;
                if s[*i] != b':' {
                    return fb("malformed JSON");
                }
                *i += 1;
                let t = infer(p, s, i, depth + 1)?;
                fs.push((name, t));
                ws(p, s, i)?;
                match s[*i] {
                    b',' => *i += 1,
                    b'}' => {
                        *i += 1;
                        return Ok(Ty::Struct(fs));
                    }
                    _ => return fb("malformed JSON"),
                }
            }
        }
        _ => fb("malformed JSON"),
    }
}
