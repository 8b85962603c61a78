//! Pipeloom's compiled record converter: a JSON array, ndjson or csv file to one of the other two, in one
//! streaming pass, writing exactly the bytes of Pipeloom's Python conversion (server/engine/data/formats.py).
//!
//!     pipeloom-convert SRC SRC_FMT DST DST_FMT
//!     pipeloom-convert --scan FILE FORMAT EVERY      (record counts and page checkpoints: scan.rs)
//!     pipeloom-convert SRC SRC_FMT DST arrow ROWS [SCHEMA]  (Arrow columns for parquet: arrow_cols.rs,
//!                                                            arrow_types.rs)
//!     pipeloom-convert - arrow DST DST_FMT           (arrow column buffers on stdin to text: arrow_text.rs)
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
//!
//! Here: the json/ndjson source to any target, and the command line. input.rs reads the file in buffers;
//! json_read.rs parses and rewrites JSON values; float_repr.rs writes floats as Python does; reader.rs
//! yields records from a source; csv_write.rs writes csv rows and pads them; csv_read.rs converts csv; scan.rs
//! counts records and finds checkpoints, with bits.rs for the bytes of interest among 64 at a time.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};

mod arrow_cols;
mod arrow_types;
mod arrow_read;
mod arrow_text;
mod bits;
mod csv_read;
mod csv_write;
mod float_repr;
mod input;
mod json_read;
mod numbers;
mod reader;
mod scan;

use csv_read::convert_csv;
use csv_write::{header, pad_file, CsvOut};
use input::fb;
use json_read::Style;
use reader::{Reader, Src};

const HEAD_BYTES: usize = 4 << 20; // csv: records held before the header is written

fn convert(src: &str, src_fmt: &str, dst: &str, dst_fmt: &str) -> Result<u64, String> {
    let kind = match src_fmt {
        "json" => Src::Array,
        "ndjson" => Src::Lines,
        "csv" => return convert_csv(src, dst, dst_fmt),
        "arrow" => return arrow_text::convert(src, dst, dst_fmt),
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
    if args.len() >= 6 && args[4] == "arrow" {
        arrow_cols::main(&args);
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
