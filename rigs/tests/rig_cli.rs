//! `maslow rig run` end to end: refused rig files, a lockstep run's files
//! and trace, and a real-time run's pacing summary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn maslow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maslow"))
        .args(args)
        .output()
        .expect("the maslow binary runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `rigs/sim.toml` with its relative paths made absolute, so a copy works
/// from any directory.
fn sim_text() -> String {
    let t = std::fs::read_to_string(repo().join("rigs/sim.toml")).expect("rigs/sim.toml");
    t.replace("\"../", &format!("\"{}/", repo().display()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("writing a temp file");
    p
}

/// Runs `rig run` on `rig_text` and expects a refusal: exit 2, one line on
/// stderr naming the rig file and `key`, no panic.
fn refused(rig_text: &str, key: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let rig = write(dir.path(), "bad.toml", rig_text);
    let o = maslow(&[
        "rig",
        "run",
        "--rig",
        rig.to_str().expect("utf-8 path"),
        "--hours",
        "0.01",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "key {key}: stderr {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains(&rig.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains(key), "names {key}: {err}");
    assert!(o.stdout.is_empty(), "no summary: {}", text(&o.stdout));
}

#[test]
fn wrong_rig_files_are_refused_with_exit_2_naming_file_and_key() {
    let sim = sim_text();
    refused(
        &sim.replace("plant_step_ms = 100", "plant_step_ms = 100\nspeed = 3"),
        "speed",
    );
    refused(
        &sim.replace("time = \"lockstep\"", "time = \"fast\""),
        "fast",
    );
    let no_config: String = sim
        .lines()
        .filter(|l| !l.starts_with("config ="))
        .collect::<Vec<_>>()
        .join("\n");
    refused(&no_config, "`controller.config`");
    refused(
        &sim.replace(
            "transport = \"in-process\"\nbitrate",
            "transport = \"slcan-pty\"\nbitrate",
        ),
        "`can.transport`",
    );
    refused(&sim.replace("[twin]", "[twin\n"), "line");
}

#[test]
fn a_missing_scenario_is_refused_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = sim_text();
    let rig = write(
        dir.path(),
        "rig.toml",
        &sim.replace(
            "twin/params/house/terrace.toml",
            "twin/params/house/nowhere.toml",
        ),
    );
    let o = maslow(&[
        "rig",
        "run",
        "--rig",
        rig.to_str().expect("utf-8"),
        "--hours",
        "0.01",
    ]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("nowhere.toml"), "{err}");
}

#[test]
fn a_lockstep_run_writes_signals_commands_and_a_strict_candump_trace() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let trace = dir.path().join("trace.log");
    let o = maslow(&[
        "rig",
        "run",
        "--rig",
        &repo().join("rigs/sim.toml").display().to_string(),
        "--hours",
        "0.25",
        "--sample-s",
        "10",
        "--out",
        out.to_str().expect("utf-8"),
        "--candump",
        trace.to_str().expect("utf-8"),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(stdout.starts_with("rig sim ("), "{stdout}");
    assert!(stdout.contains(", 9000 steps"), "{stdout}");

    // signals.csv: a header with time and the circuits, a row per sample.
    let mut r = csv::Reader::from_path(out.join("signals.csv")).expect("signals.csv");
    let header: Vec<String> = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[0], "time_s");
    for col in [
        "grid_export_w",
        "mains_present",
        "circuit_lighting_downstairs_power_w",
    ] {
        assert!(header.iter().any(|h| h == col), "{col} in {header:?}");
    }
    let mut rows = 0;
    for rec in r.records() {
        let rec = rec.expect("a csv record");
        assert_eq!(rec.len(), header.len());
        for c in rec.iter() {
            c.parse::<f64>()
                .unwrap_or_else(|_| panic!("a number: {c:?}"));
        }
        rows += 1;
    }
    assert_eq!(rows, 91, "0..=900 s every 10 s");

    // applied-commands.csv: time and commands, starting at t = 0.
    let mut r = csv::Reader::from_path(out.join("applied-commands.csv")).expect("applied csv");
    assert_eq!(
        r.headers().expect("header").iter().collect::<Vec<_>>(),
        ["time_s", "commands"]
    );
    let applied: Vec<csv::StringRecord> = r.records().map(|x| x.expect("record")).collect();
    assert!(!applied.is_empty());
    assert_eq!(&applied[0][0], "0.000");
    let n_applied = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("command changes applied: "))
        .expect("the summary counts applied commands");
    assert_eq!(n_applied.parse::<usize>().expect("a count"), applied.len());

    // The trace: strict candump -L lines, as many as frames both ways.
    let can = stdout
        .lines()
        .find(|l| l.trim().starts_with("CAN: "))
        .expect("the summary's CAN line");
    let words: Vec<&str> = can.split_whitespace().collect();
    let to: u64 = words[1].parse().expect("frames to the controller");
    let from: u64 = words[6]
        .trim_end_matches(';')
        .parse()
        .expect("frames from it");
    assert!(to > 0 && from > 0, "{can}");
    let log = std::fs::read_to_string(&trace).expect("the trace");
    let mut lines = 0u64;
    for line in log.lines() {
        let l = links::candump::parse_line(line)
            .unwrap_or_else(|e| panic!("not a candump -L line: {line:?}: {e}"));
        assert_eq!(l.iface, "can0", "{line}");
        lines += 1;
    }
    assert_eq!(lines, to + from, "{can}");
}

#[test]
fn a_realtime_run_reports_jitter_and_overruns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rig = write(
        dir.path(),
        "rt.toml",
        &sim_text()
            .replace("time = \"lockstep\"", "time = \"realtime\"")
            .replace("plant_step_ms = 100", "plant_step_ms = 10"),
    );
    // 2 s of simulated time at a 10 ms step: 200 steps.
    let o = maslow(&[
        "rig",
        "run",
        "--rig",
        rig.to_str().expect("utf-8"),
        "--hours",
        &(2.0 / 3600.0).to_string(),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(stdout.contains("(Realtime, plant step 10 ms"), "{stdout}");
    assert!(stdout.contains(", 200 steps"), "{stdout}");
    let rt = stdout
        .lines()
        .find(|l| l.trim().starts_with("real time: jitter p50 "))
        .unwrap_or_else(|| panic!("no jitter line: {stdout}"));
    for part in [" µs, p99 ", " µs, max ", " overruns in 200 steps"] {
        assert!(rt.contains(part), "{rt}");
    }
    assert!(!stdout.contains("round trip"), "lockstep only: {stdout}");
}
