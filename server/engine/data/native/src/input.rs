//! The input file, read in large buffers, and what a parse step says when it cannot finish: it needs
//! more bytes, or the input holds something the Python conversion decides (a fallback).

use std::fs::File;
use std::io::Read;

pub(crate) const BUF: usize = 8 << 20;
const MAX_BUF: usize = 256 << 20;

pub(crate) enum Stop {
    More,
    Fallback(&'static str),
}

pub(crate) type R<T> = Result<T, Stop>;

pub(crate) fn fb<T>(why: &'static str) -> R<T> {
    Err(Stop::Fallback(why))
}

pub(crate) struct Input {
    pub(crate) f: File,
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) eof: bool,
    pub(crate) final_newline: bool, // csv: a last line without a line end reads as if it had one
}

impl Input {
    /// Keep buf[pos..], read more behind it (growing the buffer when it is already full).
    pub(crate) fn refill(&mut self) -> std::io::Result<bool> {
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
