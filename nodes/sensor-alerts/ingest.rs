// Ingest: read the raw sensor log named in config.json and turn every line
// into a JSON record. A line such as
//
//     temperature:24.5 sensor_id=alpha ts=2026-11-26T10:00:00Z
//
// becomes {"line": 1, "metric": "temperature", "value": "24.5",
// "sensor_id": "alpha", "ts": "2026-11-26T10:00:00Z"}. Values stay text here;
// the filter step checks and types them. A line that cannot be split into
// fields is kept as {"line": n, "raw": "...", "error": "..."} so the next step
// can count what it drops.
//
// Serde and serde_json come through the `pipeloom` helper crate, so this file
// needs no dependency list of its own.

use pipeloom::json::{Map, Value};

/// Split one log line into fields, or say why it cannot be.
fn parse_line(line: &str, max_bytes: usize) -> Result<Map<String, Value>, String> {
    if line.trim().is_empty() {
        return Err("empty line".into());
    }
    if line.len() > max_bytes {
        return Err(format!("line is longer than {max_bytes} bytes"));
    }
    let mut tokens = line.split_ascii_whitespace();
    let head = tokens.next().unwrap_or_default();
    let (metric, value) = head
        .split_once(':')
        .filter(|(m, _)| !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .ok_or_else(|| "does not start with `metric:value`".to_string())?;
    let mut rec = Map::new();
    rec.insert("metric".into(), Value::from(metric));
    rec.insert("value".into(), Value::from(value));
    for token in tokens {
        let (key, val) = token
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("expected key=value, found `{token}`"))?;
        rec.insert(key.into(), Value::from(val));
    }
    Ok(rec)
}

fn main() -> pipeloom::Result<()> {
    let config: Value = pipeloom::read_json("config")?;
    let source = config["source"].as_str().ok_or_else(|| {
        pipeloom::Error::msg("config.json needs a `source` field naming the sensor log, e.g. \"sensors.log\"")
    })?;
    if source.contains('/') || source.contains('\\') {
        return Err(pipeloom::Error::msg(format!(
            "config.json `source` must be a plain file name given to this step as an input, got `{source}`"
        )));
    }
    let max_bytes = config["max_line_bytes"].as_u64().unwrap_or(4096) as usize;

    let mut out = pipeloom::record_writer("raw_events")?;
    let (mut lines, mut malformed) = (0u64, 0u64);
    pipeloom::each_line(source, |line| {
        lines += 1;
        let mut rec = parse_line(line, max_bytes).unwrap_or_else(|error| {
            malformed += 1;
            let mut bad = Map::new();
            bad.insert("raw".into(), Value::from(line));
            bad.insert("error".into(), Value::from(error));
            bad
        });
        rec.insert("line".into(), Value::from(lines));
        out.write(&rec)
    })?;
    out.finish()?;
    println!(
        "ingest: read {lines} lines from {source}: {} readings, {malformed} malformed",
        lines - malformed
    );
    Ok(())
}
