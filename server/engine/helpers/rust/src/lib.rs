//! Read a Pipeloom node's inputs and write its outputs by port name, in their
//! declared formats (json, ndjson, csv, text, binary).
//!
//! ```no_run
//! use pipeloom::json::{json, Value};
//!
//! fn main() -> pipeloom::Result<()> {
//!     let window = pipeloom::params()["window"].as_u64().unwrap_or(50);
//!     let mut out = pipeloom::record_writer("events")?;
//!     for rec in pipeloom::read_records("raw_events")? {
//!         out.write(&json!({"window": window, "sensor": rec.get("sensor_id").cloned().unwrap_or(Value::Null)}))?;
//!     }
//!     out.finish()?;
//!     Ok(())
//! }
//! ```
//!
//! Ports come from `PIPELOOM_PORTS`, which Pipeloom sets for every node. When it
//! is absent (a program run by hand), a port `x` falls back to
//! `PIPELOOM_INPUT_X` / `PIPELOOM_OUTPUT_X`, then to `x.<ext>` in the current
//! folder, the format guessed from the extension. A name with an extension
//! (`config.json`) names a file directly.
//!
//! `serde_json` is re-exported as `pipeloom::json` and `serde` as
//! `pipeloom::serde`, so a node needs no dependencies of its own. To derive with
//! the re-export, add `#[serde(crate = "pipeloom::serde")]` to the type.

pub mod csv;

pub use serde;
pub use serde_json as json;

use serde::de::{DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const BUF_SIZE: usize = 1 << 20;

/// An error that names the port and file involved.
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn msg(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// `fn main() -> pipeloom::Result<()>` prints errors with Debug: show the message as is.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::msg(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::msg(e.to_string())
    }
}

/// The result type of every fallible helper.
pub type Result<T> = std::result::Result<T, Error>;

/// One resolved input or output port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub path: PathBuf,
    pub format: String,
    pub kind: &'static str,
}

impl Port {
    fn where_(&self) -> String {
        format!("{} `{}` ({})", self.kind, self.name, self.path.display())
    }

    fn err(&self, what: impl fmt::Display) -> Error {
        Error::msg(format!("{}: {}", self.where_(), what))
    }
}

// ------------------------------------------------------------------ ports

fn guess_format(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "json" => "json",
        "ndjson" | "jsonl" => "ndjson",
        "csv" => "csv",
        "txt" | "text" | "log" | "md" => "text",
        "parquet" | "pq" => "parquet",
        _ => "binary",
    }
}

const GUESS_EXTENSIONS: [&str; 8] = ["json", "ndjson", "jsonl", "csv", "txt", "log", "parquet", "bin"];

fn format_extension(format: &str) -> &str {
    match format {
        "text" => "txt",
        "binary" => "bin",
        other => other,
    }
}

fn workdir() -> PathBuf {
    match std::env::var_os("PIPELOOM_WORKDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    }
}

fn env_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn resolve(name: &str, kind: &'static str, hint: Option<&str>) -> Result<Port> {
    if let Ok(raw) = std::env::var("PIPELOOM_PORTS") {
        if !raw.is_empty() {
            let doc: Value =
                serde_json::from_str(&raw).map_err(|e| Error::msg(format!("PIPELOOM_PORTS is not valid JSON: {e}")))?;
            let declared = doc.get(format!("{kind}s")).and_then(Value::as_object);
            if let Some(declared) = declared {
                let entry = declared.get(name).or_else(|| {
                    declared.values().find(|e| {
                        e.get("path")
                            .and_then(Value::as_str)
                            .map(|p| Path::new(p).file_name().map(|f| f == name).unwrap_or(false))
                            .unwrap_or(false)
                    })
                });
                if let Some(path) = entry.and_then(|e| e.get("path")).and_then(Value::as_str) {
                    let path = PathBuf::from(path);
                    let format = entry
                        .and_then(|e| e.get("format"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| guess_format(&path).to_string());
                    return Ok(Port {
                        name: name.to_string(),
                        path,
                        format,
                        kind,
                    });
                }
            }
        }
    }
    let var = format!("PIPELOOM_{}_{}", kind.to_ascii_uppercase(), env_key(name));
    // A port found by file name alone: its format comes from the extension.
    let guessed = |path: PathBuf| Port {
        name: name.to_string(),
        format: guess_format(&path).to_string(),
        path,
        kind,
    };
    if let Some(p) = std::env::var_os(&var).filter(|p| !p.is_empty()) {
        return Ok(guessed(PathBuf::from(p)));
    }
    let base = workdir();
    if Path::new(name).extension().is_some() {
        return Ok(guessed(base.join(name)));
    }
    if kind == "input" || hint.is_none() {
        for ext in GUESS_EXTENSIONS {
            let path = base.join(format!("{name}.{ext}"));
            if path.exists() {
                return Ok(guessed(path));
            }
        }
    }
    if kind == "input" {
        let tried: Vec<String> = GUESS_EXTENSIONS[..4].iter().map(|e| format!("{name}.{e}")).collect();
        return Err(Error::msg(format!(
            "input `{name}` not found: PIPELOOM_PORTS does not declare it and none of {}, ... exists in {}",
            tried.join(", "),
            base.display()
        )));
    }
    let format = hint.unwrap_or("json");
    let path = base.join(format!("{name}.{}", format_extension(format)));
    Ok(Port {
        name: name.to_string(),
        path,
        format: format.to_string(),
        kind,
    })
}

/// The resolved input port `name`.
pub fn input(name: &str) -> Result<Port> {
    resolve(name, "input", None)
}

/// The resolved output port `name`.
pub fn output(name: &str) -> Result<Port> {
    resolve(name, "output", None)
}

/// Absolute path of input `name`.
pub fn input_path(name: &str) -> Result<PathBuf> {
    Ok(input(name)?.path)
}

/// Absolute path where output `name` must be written.
pub fn output_path(name: &str) -> Result<PathBuf> {
    Ok(output(name)?.path)
}

fn params_text() -> Result<Option<(String, String)>> {
    if let Ok(raw) = std::env::var("PIPELOOM_PARAMS") {
        return Ok(Some((raw, "PIPELOOM_PARAMS".to_string())));
    }
    let path = workdir().join("params.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((text, path.display().to_string()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::msg(format!("cannot read params from {}: {e}", path.display()))),
    }
}

/// The node's params (PIPELOOM_PARAMS, else params.json in the working folder),
/// an empty object when there are none. Invalid JSON there stops the program
/// with a message; use `params_as` to handle that yourself.
pub fn params() -> Value {
    match params_as::<Value>() {
        Ok(Value::Null) => Value::Object(Map::new()),
        Ok(v) => v,
        Err(e) => {
            eprintln!("pipeloom: {e}");
            std::process::exit(2);
        }
    }
}

/// The node's params decoded into `T` (a struct deriving Deserialize).
pub fn params_as<T: DeserializeOwned>() -> Result<T> {
    let (text, source) = params_text()?.unwrap_or_else(|| ("{}".to_string(), "defaults".to_string()));
    let text = if text.trim().is_empty() { "{}".to_string() } else { text };
    serde_json::from_str(&text).map_err(|e| Error::msg(format!("params in {source} do not fit: {e}")))
}

// ------------------------------------------------------------------ reading

fn open_port(port: &Port) -> Result<BufReader<File>> {
    match File::open(&port.path) {
        Ok(f) => {
            let mut r = BufReader::with_capacity(BUF_SIZE, f);
            skip_bom(&mut r).map_err(|e| port.err(format!("cannot read: {e}")))?;
            Ok(r)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(port.err("file not found")),
        Err(e) => Err(port.err(format!("cannot open: {e}"))),
    }
}

fn skip_bom(r: &mut BufReader<File>) -> io::Result<()> {
    if r.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]) {
        r.consume(3);
    }
    Ok(())
}

/// A buffered reader over input `name`, for reading it your own way.
pub fn open_input(name: &str) -> Result<BufReader<File>> {
    open_port(&input(name)?)
}

/// Call `f` with each line of input `name` (without the line ending). Bytes
/// that are not valid UTF-8 become U+FFFD, so one garbled line cannot stop a log.
pub fn each_line<F>(name: &str, mut f: F) -> Result<()>
where
    F: FnMut(&str) -> Result<()>,
{
    let port = input(name)?;
    let mut r = open_port(&port)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| port.err(format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        let mut end = line.len();
        if line[..end].ends_with(b"\n") {
            end -= 1;
        }
        if line[..end].ends_with(b"\r") {
            end -= 1;
        }
        f(&String::from_utf8_lossy(&line[..end]))?;
    }
}

/// Input `name` as text.
pub fn read_text(name: &str) -> Result<String> {
    let port = input(name)?;
    let mut s = String::new();
    open_port(&port)?
        .read_to_string(&mut s)
        .map_err(|e| port.err(format!("cannot read as text: {e}")))?;
    Ok(s)
}

/// Input `name` as bytes.
pub fn read_bytes(name: &str) -> Result<Vec<u8>> {
    let port = input(name)?;
    match std::fs::read(&port.path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(port.err("file not found")),
        Err(e) => Err(port.err(format!("cannot read: {e}"))),
    }
}

/// Input `name` decoded into `T`: a json document as is; ndjson and csv inputs
/// as an array of records.
pub fn read_json<T: DeserializeOwned>(name: &str) -> Result<T> {
    let port = input(name)?;
    match port.format.as_str() {
        "json" => serde_json::from_reader(open_port(&port)?)
            .map_err(|e| port.err(format!("invalid JSON or wrong shape: {e}"))),
        "ndjson" | "csv" => {
            let recs: Vec<Value> = read_port_records(&port)?.into_iter().map(Value::Object).collect();
            serde_json::from_value(Value::Array(recs)).map_err(|e| port.err(format!("records do not fit: {e}")))
        }
        other => Err(port.err(format!(
            "format `{other}` is not JSON data; use read_text or read_bytes"
        ))),
    }
}

/// Every record of a json (array), ndjson or csv input; csv values are strings.
pub fn read_records(name: &str) -> Result<Vec<Map<String, Value>>> {
    read_port_records(&input(name)?)
}

fn read_port_records(port: &Port) -> Result<Vec<Map<String, Value>>> {
    let mut out = Vec::new();
    each_port_record(port, |r: Map<String, Value>| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
}

/// Stream the records of a json array, ndjson or csv input, decoding each into
/// `T` and calling `f`; an error from `f` stops the reading.
pub fn each_record<T, F>(name: &str, f: F) -> Result<()>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<()>,
{
    each_port_record(&input(name)?, f)
}

fn each_port_record<T, F>(port: &Port, mut f: F) -> Result<()>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<()>,
{
    let mut reader = open_port(port)?;
    match port.format.as_str() {
        "json" => each_json_item(port, reader, f),
        "ndjson" => {
            let mut line = String::new();
            let mut n = 0usize;
            loop {
                line.clear();
                n += 1;
                if reader
                    .read_line(&mut line)
                    .map_err(|e| port.err(format!("cannot read: {e}")))?
                    == 0
                {
                    return Ok(());
                }
                if line.trim().is_empty() {
                    continue;
                }
                let item = serde_json::from_str(&line).map_err(|e| port.err(format!("line {n}: {e}")))?;
                f(item)?;
            }
        }
        "csv" => {
            let mut header = Vec::new();
            if !csv::read_row(&mut reader, &mut header).map_err(|e| port.err(format!("invalid csv: {e}")))? {
                return Ok(());
            }
            let mut row = Vec::new();
            let mut n = 1usize;
            while csv::read_row(&mut reader, &mut row).map_err(|e| port.err(format!("invalid csv: {e}")))? {
                n += 1;
                if row.len() == 1 && row[0].is_empty() {
                    continue;
                }
                let mut rec = Map::new();
                for (i, h) in header.iter().enumerate() {
                    rec.insert(h.clone(), Value::String(row.get(i).cloned().unwrap_or_default()));
                }
                let item = serde_json::from_value(Value::Object(rec))
                    .map_err(|e| port.err(format!("row {n} does not fit: {e}")))?;
                f(item)?;
            }
            Ok(())
        }
        other => Err(port.err(format!(
            "format `{other}` has no records (expected json, ndjson or csv)"
        ))),
    }
}

/// Feeds each item of a JSON array to a callback as serde reads it, so the
/// whole array is never held in memory.
struct ItemsSeed<'a, T, F> {
    f: &'a mut F,
    failure: &'a RefCell<Option<Error>>,
    marker: PhantomData<T>,
}

impl<'de, 'a, T, F> DeserializeSeed<'de> for ItemsSeed<'a, T, F>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<()>,
{
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, 'a, T, F> Visitor<'de> for ItemsSeed<'a, T, F>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<()>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(item) = seq.next_element::<T>()? {
            if let Err(e) = (self.f)(item) {
                *self.failure.borrow_mut() = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

fn each_json_item<T, F>(port: &Port, reader: BufReader<File>, mut f: F) -> Result<()>
where
    T: DeserializeOwned,
    F: FnMut(T) -> Result<()>,
{
    let failure = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let seed = ItemsSeed {
        f: &mut f,
        failure: &failure,
        marker: PhantomData,
    };
    let outcome = seed.deserialize(&mut de).and_then(|_| de.end());
    if let Some(e) = failure.into_inner() {
        return Err(e);
    }
    outcome.map_err(|e| port.err(format!("expected a JSON array of records: {e}")))
}

// ------------------------------------------------------------------ writing

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary file beside the target, renamed into place by `commit`;
/// dropped uncommitted, it is removed.
struct AtomicFile {
    port: Port,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    fn create(port: Port) -> Result<Self> {
        let dir = port
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&dir).map_err(|e| port.err(format!("cannot create folder: {e}")))?;
        let file_name = port.path.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        let tmp = dir.join(format!(
            ".{file_name}.tmp-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&tmp).map_err(|e| port.err(format!("cannot write: {e}")))?;
        Ok(AtomicFile {
            port,
            tmp,
            out: Some(BufWriter::with_capacity(BUF_SIZE, file)),
        })
    }

    fn writer(&mut self) -> &mut BufWriter<File> {
        self.out.as_mut().expect("file already committed")
    }

    fn commit(mut self) -> Result<PathBuf> {
        let out = self.out.take().expect("file already committed");
        let file = out
            .into_inner()
            .map_err(|e| self.port.err(format!("cannot write: {}", e.error())))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.port.path)
            .map_err(|e| self.port.err(format!("cannot move into place: {e}")))?;
        Ok(self.port.path.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn write_whole(port: Port, data: &[u8]) -> Result<PathBuf> {
    let mut file = AtomicFile::create(port)?;
    let port = file.port.clone();
    file.writer()
        .write_all(data)
        .map_err(|e| port.err(format!("cannot write: {e}")))?;
    file.commit()
}

/// Write `text` to output `name`.
pub fn write_text(name: &str, text: &str) -> Result<PathBuf> {
    write_whole(resolve(name, "output", Some("text"))?, text.as_bytes())
}

/// Write `data` to output `name`.
pub fn write_bytes(name: &str, data: &[u8]) -> Result<PathBuf> {
    write_whole(resolve(name, "output", Some("binary"))?, data)
}

/// Write `value` to output `name`: as a json document, or, for ndjson and csv
/// outputs, `value` must be a list of records.
pub fn write_json<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<PathBuf> {
    let port = output(name)?;
    match port.format.as_str() {
        "json" => {
            let mut data = serde_json::to_vec(value).map_err(|e| port.err(format!("cannot encode as JSON: {e}")))?;
            data.push(b'\n');
            write_whole(port, &data)
        }
        "ndjson" | "csv" => {
            let text = serde_json::to_string(value).map_err(|e| port.err(format!("cannot encode as JSON: {e}")))?;
            let items = split_array(&text)
                .ok_or_else(|| port.err(format!("a {} output needs a list of records", port.format)))?;
            let mut w = RecordWriter::open(port, None)?;
            for item in items {
                w.write_raw(item)?;
            }
            w.finish()
        }
        other => Err(port.err(format!(
            "format `{other}` is not JSON data; use write_text or write_bytes"
        ))),
    }
}

/// The items of a compact JSON array, as slices of its text (keys keep their order).
fn split_array(text: &str) -> Option<Vec<&str>> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'[') || bytes.last() != Some(&b']') {
        return None;
    }
    let (mut items, mut depth, mut in_str, mut esc, mut start) = (Vec::new(), 0usize, false, false, 1usize);
    for (i, &c) in bytes.iter().enumerate().take(bytes.len() - 1).skip(1) {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < bytes.len() - 1 {
        items.push(&text[start..bytes.len() - 1]);
    }
    Some(items)
}

/// Write records to a json (array), ndjson or csv output.
pub fn write_records<T: Serialize>(name: &str, records: &[T]) -> Result<PathBuf> {
    let mut w = record_writer(name)?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}

/// A writer streaming records into output `name` (json array, ndjson or csv).
pub fn record_writer(name: &str) -> Result<RecordWriter> {
    RecordWriter::open(output(name)?, None)
}

/// Like `record_writer`, with a fixed csv header.
pub fn record_writer_with_columns(name: &str, columns: &[&str]) -> Result<RecordWriter> {
    RecordWriter::open(output(name)?, Some(columns.iter().map(|c| c.to_string()).collect()))
}

/// Streams records into one output; the file appears only when `finish` succeeds.
pub struct RecordWriter {
    file: AtomicFile,
    count: usize,
    columns: Option<Vec<String>>,
    header_written: bool,
}

/// A JSON object with its keys in document order (serde_json's Map sorts them).
struct OrderedObject(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> std::result::Result<OrderedObject, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(OrderedObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl RecordWriter {
    fn open(port: Port, columns: Option<Vec<String>>) -> Result<Self> {
        match port.format.as_str() {
            "json" | "ndjson" | "csv" => {}
            other => {
                return Err(port.err(format!(
                    "format `{other}` has no records (expected json, ndjson or csv)"
                )))
            }
        }
        let mut file = AtomicFile::create(port)?;
        if file.port.format == "json" {
            file.writer().write_all(b"[").map_err(|e| Error::msg(e.to_string()))?;
        }
        Ok(RecordWriter {
            file,
            count: 0,
            columns,
            header_written: false,
        })
    }

    /// The number of records written so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Append one record given as JSON text (an item of `split_array`).
    fn write_raw(&mut self, item: &str) -> Result<()> {
        if self.file.port.format == "csv" {
            let obj: OrderedObject = serde_json::from_str(item).map_err(|_| {
                self.file.port.err(format!(
                    "csv records must be objects; record {} is {item}",
                    self.count + 1
                ))
            })?;
            return self.write_csv(obj);
        }
        let (json, n) = (self.file.port.format == "json", self.count + 1);
        let port = self.file.port.clone();
        let out = self.file.writer();
        let sep: &[u8] = if !json {
            b""
        } else if n > 1 {
            b",\n"
        } else {
            b"\n"
        };
        out.write_all(sep)
            .and_then(|_| out.write_all(item.as_bytes()))
            .and_then(|_| if json { Ok(()) } else { out.write_all(b"\n") })
            .map_err(|e| port.err(format!("cannot write: {e}")))?;
        self.count = n;
        Ok(())
    }

    /// Append one record (any Serialize value; an object for csv).
    pub fn write<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<()> {
        let n = self.count + 1;
        let port = &self.file.port;
        let io_err = |e: io::Error| port.err(format!("cannot write: {e}"));
        match port.format.as_str() {
            "json" => {
                let out = self.file.out.as_mut().expect("open");
                out.write_all(if n > 1 { b",\n" } else { b"\n" }).map_err(io_err)?;
                serde_json::to_writer(out, record).map_err(|e| port.err(format!("record {n}: {e}")))?;
            }
            "ndjson" => {
                let out = self.file.out.as_mut().expect("open");
                serde_json::to_writer(&mut *out, record).map_err(|e| port.err(format!("record {n}: {e}")))?;
                out.write_all(b"\n").map_err(io_err)?;
            }
            _ => {
                let text = serde_json::to_string(record).map_err(|e| port.err(format!("record {n}: {e}")))?;
                let obj: OrderedObject = serde_json::from_str(&text)
                    .map_err(|_| port.err(format!("csv records must be objects; record {n} is {text}")))?;
                return self.write_csv(obj);
            }
        }
        self.count = n;
        Ok(())
    }

    fn write_csv(&mut self, obj: OrderedObject) -> Result<()> {
        let n = self.count + 1;
        let port = &self.file.port;
        let io_err = |e: io::Error| port.err(format!("cannot write: {e}"));
        let columns = self
            .columns
            .get_or_insert_with(|| obj.0.iter().map(|(k, _)| k.clone()).collect());
        if let Some((k, _)) = obj.0.iter().find(|(k, _)| !columns.contains(k)) {
            return Err(port.err(format!(
                "record {n} has field `{k}` not in the csv header {columns:?}; use record_writer_with_columns"
            )));
        }
        let out = self.file.out.as_mut().expect("open");
        if !self.header_written {
            csv::write_row(out, columns).map_err(io_err)?;
            self.header_written = true;
        }
        let row: Vec<String> = columns
            .iter()
            .map(|c| {
                obj.0
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| cell(v))
                    .unwrap_or_default()
            })
            .collect();
        csv::write_row(out, &row).map_err(io_err)?;
        self.count = n;
        Ok(())
    }

    /// Finish the file and move it into place; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let port = self.file.port.clone();
        let io_err = |e: io::Error| port.err(format!("cannot write: {e}"));
        match port.format.as_str() {
            "json" => {
                let end: &[u8] = if self.count > 0 { b"\n]\n" } else { b"]\n" };
                self.file.writer().write_all(end).map_err(io_err)?;
            }
            "csv" if !self.header_written => {
                if let Some(cols) = self.columns.clone() {
                    csv::write_row(self.file.writer(), &cols).map_err(io_err)?;
                }
            }
            _ => {}
        }
        self.file.commit()
    }
}

#[cfg(test)]
mod tests;
