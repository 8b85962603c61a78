use super::*;
use serde_json::json;
use std::sync::{Mutex, MutexGuard};

// The helpers read process-wide environment variables: one test at a time.
static ENV: Mutex<()> = Mutex::new(());

struct Scene {
    dir: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        for k in [
            "PIPELOOM_PORTS",
            "PIPELOOM_WORKDIR",
            "PIPELOOM_PARAMS",
            "PIPELOOM_OUTPUT_MY_OUT",
        ] {
            std::env::remove_var(k);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh folder, with PIPELOOM_PORTS declaring `(port, file, format)` inputs and outputs.
fn scene(inputs: &[(&str, &str, &str)], outputs: &[(&str, &str, &str)]) -> Scene {
    let lock = ENV.lock().unwrap_or_else(|e| e.into_inner());
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pipeloom-rust-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let decl = |ports: &[(&str, &str, &str)]| {
        let mut m = Map::new();
        for (name, file, format) in ports {
            m.insert(name.to_string(), json!({"path": dir.join(file), "format": format}));
        }
        Value::Object(m)
    };
    let doc = json!({"inputs": decl(inputs), "outputs": decl(outputs)});
    std::env::set_var("PIPELOOM_PORTS", doc.to_string());
    std::env::set_var("PIPELOOM_WORKDIR", &dir);
    std::env::remove_var("PIPELOOM_PARAMS");
    Scene { dir, _lock: lock }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

fn tricky() -> Vec<Map<String, Value>> {
    [
        ("1", "plain"),
        ("2", "has, comma"),
        ("3", "has \"quotes\""),
        ("4", "two\nlines"),
        ("5", ""),
    ]
    .iter()
    .map(|(id, note)| json!({"id": id, "note": note}).as_object().unwrap().clone())
    .collect()
}

#[test]
fn records_round_trip_in_every_format() {
    for format in ["json", "ndjson", "csv"] {
        let file = format!("data.{format}");
        let s = scene(&[("in", &file, format)], &[("out", &file, format)]);
        write_records("out", &tricky()).unwrap();
        assert_eq!(read_records("in").unwrap(), tricky(), "format {format}");
        assert!(leftovers(&s.dir).is_empty());
    }
}

#[test]
fn csv_writer_keeps_struct_field_order_and_quotes() {
    #[derive(Serialize)]
    struct Row {
        zeta: &'static str,
        alpha: f64,
        empty: Option<u8>,
    }
    let s = scene(&[], &[("out", "o.csv", "csv")]);
    write_records(
        "out",
        &[Row {
            zeta: "a,\"b\"",
            alpha: 1.5,
            empty: None,
        }],
    )
    .unwrap();
    let text = std::fs::read_to_string(s.dir.join("o.csv")).unwrap();
    assert_eq!(text, "zeta,alpha,empty\n\"a,\"\"b\"\"\",1.5,\n");
}

#[test]
fn each_record_streams_typed_items_and_stops_on_error() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Reading {
        sensor_id: String,
        value: f64,
    }
    let s = scene(&[("events", "events.json", "json")], &[]);
    std::fs::write(
        s.dir.join("events.json"),
        "\u{feff}[{\"sensor_id\": \"a\", \"value\": 1.5},\n {\"sensor_id\": \"b\", \"value\": -2}, {\"sensor_id\": \"c\", \"value\": 0}]",
    )
    .unwrap();
    let mut got = Vec::new();
    each_record("events", |r: Reading| {
        got.push(r);
        Ok(())
    })
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[1],
        Reading {
            sensor_id: "b".into(),
            value: -2.0
        }
    );

    let mut seen = 0;
    let err = each_record("events", |_: Reading| {
        seen += 1;
        if seen == 2 {
            Err(Error::msg("enough"))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "enough");
    assert_eq!(seen, 2);
}

#[test]
fn read_json_accepts_ndjson_and_csv_inputs() {
    let s = scene(&[("lines", "l.ndjson", "ndjson"), ("rows", "r.csv", "csv")], &[]);
    std::fs::write(s.dir.join("l.ndjson"), "{\"a\":1}\n\n{\"a\":2}\n").unwrap();
    std::fs::write(s.dir.join("r.csv"), "a,b\r\n1,\"x\ny\"\r\n").unwrap();
    let lines: Vec<Value> = read_json("lines").unwrap();
    assert_eq!(lines, vec![json!({"a": 1}), json!({"a": 2})]);
    let rows: Vec<Value> = read_json("rows").unwrap();
    assert_eq!(rows, vec![json!({"a": "1", "b": "x\ny"})]);
}

#[test]
fn write_json_follows_the_declared_format() {
    let s = scene(&[], &[("doc", "d.json", "json"), ("nd", "d.ndjson", "ndjson")]);
    let data = json!([{"b": 1, "a": "<&>"}, {"b": 2, "a": "x"}]);
    write_json("doc", &data).unwrap();
    write_json("nd", &data).unwrap();
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(s.dir.join("d.json")).unwrap()).unwrap();
    assert_eq!(doc, data);
    assert_eq!(
        std::fs::read_to_string(s.dir.join("d.ndjson")).unwrap(),
        "{\"a\":\"<&>\",\"b\":1}\n{\"a\":\"x\",\"b\":2}\n"
    );
}

#[test]
fn dropped_writer_publishes_nothing() {
    let s = scene(&[], &[("out", "out.json", "json")]);
    {
        let mut w = record_writer("out").unwrap();
        w.write(&json!({"a": 1})).unwrap();
    }
    assert!(!s.dir.join("out.json").exists());
    assert!(leftovers(&s.dir).is_empty());
}

#[test]
fn csv_rejects_a_field_outside_the_header() {
    let _s = scene(&[], &[("out", "out.csv", "csv")]);
    let mut w = record_writer("out").unwrap();
    w.write(&json!({"a": 1})).unwrap();
    let err = w.write(&json!({"a": 2, "b": 3})).unwrap_err().to_string();
    assert!(err.contains("output `out`") && err.contains("`b`"), "{err}");
}

#[test]
fn params_from_environment_then_file() {
    let s = scene(&[], &[]);
    assert_eq!(params(), json!({}));
    std::fs::write(s.dir.join("params.json"), "{\"window\": 7}").unwrap();
    assert_eq!(params()["window"], 7);
    std::env::set_var("PIPELOOM_PARAMS", "{\"window\": 50}");
    assert_eq!(params()["window"], 50);
    #[derive(serde::Deserialize, Debug)]
    struct P {
        window: u32,
    }
    assert_eq!(params_as::<P>().unwrap().window, 50);
    std::env::set_var("PIPELOOM_PARAMS", "{\"window\": \"wide\"}");
    assert!(params_as::<P>().unwrap_err().to_string().contains("PIPELOOM_PARAMS"));
}

#[test]
fn fallbacks_without_ports() {
    let s = scene(&[], &[]);
    std::env::remove_var("PIPELOOM_PORTS");
    std::fs::write(s.dir.join("readings.csv"), "a\n1\n").unwrap();
    let p = input("readings").unwrap();
    assert_eq!((p.path.clone(), p.format.as_str()), (s.dir.join("readings.csv"), "csv"));
    let err = input("missing").unwrap_err().to_string();
    assert!(err.contains("input `missing` not found"), "{err}");
    let elsewhere = s.dir.join("elsewhere.ndjson");
    std::env::set_var("PIPELOOM_OUTPUT_MY_OUT", &elsewhere);
    let o = output("my-out").unwrap();
    assert_eq!((o.path, o.format.as_str()), (elsewhere, "ndjson"));
    write_text("notes", "hello\n").unwrap();
    assert_eq!(read_text("notes.txt").unwrap(), "hello\n");
    write_bytes("blob", &[0, 1, 2]).unwrap();
    assert_eq!(read_bytes("blob").unwrap(), vec![0, 1, 2]);
}

#[test]
fn errors_name_the_port_and_file() {
    let s = scene(&[("events", "events.json", "json"), ("bad", "bad.json", "json")], &[]);
    let err = read_records("events").unwrap_err().to_string();
    assert!(
        err.contains("input `events`") && err.contains("file not found"),
        "{err}"
    );
    std::fs::write(s.dir.join("bad.json"), "{\"not\": \"an array\"}").unwrap();
    let err = read_records("bad").unwrap_err().to_string();
    assert!(
        err.contains("bad.json") && err.contains("expected a JSON array"),
        "{err}"
    );
}

#[test]
fn each_line_strips_line_endings() {
    let s = scene(&[("log", "s.log", "text")], &[]);
    std::fs::write(s.dir.join("s.log"), b"one\r\ntwo\n\nthree \xff\xfe bytes").unwrap();
    let mut got = Vec::new();
    each_line("log", |l| {
        got.push(l.to_string());
        Ok(())
    })
    .unwrap();
    assert_eq!(got, ["one", "two", "", "three \u{fffd}\u{fffd} bytes"]);
}
