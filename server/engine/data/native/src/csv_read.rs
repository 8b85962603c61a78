//! Reading csv (strict, as the csv module in strict mode) and writing its records as a JSON array or ndjson.

use std::fs::File;
use std::io::{BufWriter, Write};

use crate::input::{fb, Stop, R};
use crate::json_read::json_str;
use crate::reader::{Reader, Src};

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

pub(crate) fn convert_csv(src: &str, dst: &str, dst_fmt: &str) -> Result<u64, String> {
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
