//! Writing csv as Python's csv module writes it: cells, rows, the header of every key seen, and rows
//! padded at the end when a column came late.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};

use crate::scan;

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

pub(crate) struct CsvOut {
    pub(crate) columns: Vec<Vec<u8>>,
    pub(crate) index: HashMap<Vec<u8>, usize>,
    pub(crate) order: Vec<usize>, // the column of each field position in the last record
    pub(crate) row: Vec<usize>,   // per column: the cell's slot in `cells`, or usize::MAX
    pub(crate) regions: Vec<(u64, usize)>,
    pub(crate) body: u64,
}

impl CsvOut {
    pub(crate) fn columns_of(&mut self, arena: &[u8], cells: &[[usize; 4]]) -> Vec<usize> {
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

    pub(crate) fn encode(&mut self, arena: &[u8], cells: &[[usize; 4]], cols: &[usize], out: &mut Vec<u8>) {
        let width = self.columns.len();
        self.row.clear();
        self.row.resize(width, usize::MAX);
        for (slot, &col) in cols.iter().enumerate() {
            self.row[col] = slot;
        }
        let row = &self.row;
        csv_row(row.iter().map(|&slot| if slot == usize::MAX { &b""[..] } else { let c = cells[slot]; &arena[c[2]..c[3]] }), width, out);
    }

    pub(crate) fn note(&mut self, bytes: usize) {
        self.body += bytes as u64;
        let width = self.columns.len();
        match self.regions.last_mut() {
            Some(last) if last.1 == width => last.0 = self.body,
            _ => self.regions.push((self.body, width)),
        }
    }
}

pub(crate) fn header(columns: &[Vec<u8>]) -> Vec<u8> {
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

pub(crate) fn pad_file(dst: &str, head_len: usize, columns: &[Vec<u8>], regions: &[(u64, usize)]) -> Result<(), String> {
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
