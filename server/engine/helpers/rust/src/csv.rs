//! A small RFC 4180 reader and writer: quoted fields, doubled quotes, embedded
//! newlines, CRLF or LF line endings.

use std::io::{self, BufRead, Write};

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn take_field(field: &mut Vec<u8>) -> io::Result<String> {
    String::from_utf8(std::mem::take(field)).map_err(|_| invalid("a field is not valid UTF-8"))
}

/// Read the next row into `row`; Ok(false) at the end of the input.
pub fn read_row<R: BufRead>(reader: &mut R, row: &mut Vec<String>) -> io::Result<bool> {
    row.clear();
    let mut line = Vec::new();
    let mut field = Vec::new();
    let mut in_quotes = false;
    let mut started = false;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            if in_quotes {
                return Err(invalid("a quoted field is not closed"));
            }
            if !started {
                return Ok(false);
            }
            row.push(take_field(&mut field)?);
            return Ok(true);
        }
        if !started && line.starts_with(&[0xEF, 0xBB, 0xBF]) {
            line.drain(..3);
        }
        started = true;
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            if in_quotes {
                if c == b'"' {
                    if line.get(i + 1) == Some(&b'"') {
                        field.push(b'"');
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                } else {
                    field.push(c);
                }
                i += 1;
                continue;
            }
            match c {
                b',' => row.push(take_field(&mut field)?),
                b'"' if field.is_empty() => in_quotes = true,
                b'\r' if i + 1 == line.len() || line[i + 1] == b'\n' => {}
                b'\n' => {
                    row.push(take_field(&mut field)?);
                    return Ok(true);
                }
                _ => field.push(c),
            }
            i += 1;
        }
        if !in_quotes {
            // The last line of a file without a final newline.
            row.push(take_field(&mut field)?);
            return Ok(true);
        }
    }
}

/// Quote a field when it holds a comma, a quote or a line break.
pub fn escape(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        std::borrow::Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        std::borrow::Cow::Borrowed(field)
    }
}

/// Write one row, ending with `\n`.
pub fn write_row<W: Write, S: AsRef<str>>(out: &mut W, fields: &[S]) -> io::Result<()> {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(escape(f.as_ref()).as_bytes())?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Vec<String>> {
        let mut r = io::Cursor::new(text.as_bytes().to_vec());
        let mut out = Vec::new();
        let mut row = Vec::new();
        while read_row(&mut r, &mut row).unwrap() {
            out.push(row.clone());
        }
        out
    }

    #[test]
    fn quotes_doubled_quotes_and_newlines() {
        let got = rows("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",\n");
        assert_eq!(
            got,
            vec![vec!["a", "b"], vec!["x, y", "say \"hi\""], vec!["two\nlines", ""],]
        );
    }

    #[test]
    fn last_line_without_newline_and_empty_quoted() {
        assert_eq!(rows("\"\",z\nq"), vec![vec!["", "z"], vec!["q"]]);
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        let mut r = io::Cursor::new(b"\"open\nstill".to_vec());
        let mut row = Vec::new();
        assert!(read_row(&mut r, &mut row).is_err());
    }

    #[test]
    fn writer_round_trips() {
        let fields = ["plain", "a,b", "q\"q", "line\nbreak", ""];
        let mut buf = Vec::new();
        write_row(&mut buf, &fields).unwrap();
        assert_eq!(
            String::from_utf8(buf.clone()).unwrap(),
            "plain,\"a,b\",\"q\"\"q\",\"line\nbreak\",\n"
        );
        let back = rows(&String::from_utf8(buf).unwrap());
        assert_eq!(back, vec![fields.to_vec()]);
    }
}
