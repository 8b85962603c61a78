//! Record sources: a JSON array, ndjson or csv file, read one record at a time through the parser.

use std::fs::File;

use crate::input::{fb, Input, Stop, BUF, R};
use crate::json_read::Parser;

#[derive(PartialEq)]
pub(crate) enum Src {
    Array,
    Lines,
    Csv,
}

pub(crate) struct Reader {
    pub(crate) input: Input,
    pub(crate) src: Src,
    pub(crate) started: bool,
    pub(crate) done: bool,
    pub(crate) p: Parser,
}

impl Reader {
    pub(crate) fn new(path: &str, src: Src) -> std::io::Result<Reader> {
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
    pub(crate) fn with<T>(&mut self, mut f: impl FnMut(&mut Parser, &[u8], &mut usize) -> R<T>) -> Result<Option<T>, String> {
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
    pub(crate) fn next(&mut self) -> Result<bool, String> {
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
    pub(crate) fn end_line(&mut self) -> Result<(), String> {
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
