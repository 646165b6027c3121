//! The report dir of `maslow test` and `maslow report`, as a user runs
//! them: every file of the layout (reports/src/report_dir.rs), the traces
//! readable, the summary and the comparison, a corrupt dir refused with
//! the file named, and a run killed half-way leaving a valid report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn maslow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maslow"));
    c.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn fixture(name: &str) -> String {
    format!("rigs/tests/fixtures/features/{name}")
}

fn scenario_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("scenarios"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs the passing and failing fixtures into `dir`; returns stdout.
fn run_fixtures(dir: &Path) -> String {
    let out = maslow()
        .args([
            "test",
            &fixture("passing.feature"),
            &fixture("failing.feature"),
            "--report-dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_run_leaves_every_report_and_each_scenarios_traces() {
    let dir = tempfile::tempdir().unwrap();
    // A previous run's leftovers go; a stranger's file stays.
    std::fs::create_dir_all(dir.path().join("scenarios/old-scenario-1")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let stdout = run_fixtures(dir.path());
    assert!(!dir.path().join("scenarios/old-scenario-1").exists());
    assert!(dir.path().join("notes.txt").exists());
    assert!(
        stdout.contains(&format!(
            "HTML report: {}",
            dir.path().join("index.html").display()
        )),
        "a failed run names its HTML report: {stdout}"
    );
    for f in ["index.html", "junit.xml", "cucumber.json", "run.json"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    assert_eq!(run["format"], "maslow-run/1");
    assert_eq!(run["counts"]["passed"], 1);
    assert_eq!(run["counts"]["failed"], 2);
    let scenarios = run["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 3);
    // The two scenarios that ran have their directory, with every file.
    let ran: Vec<&serde_json::Value> = scenarios
        .iter()
        .filter(|s| s["name"] != "A step nobody defined")
        .collect();
    assert_eq!(ran.len(), 2);
    for s in ran {
        let d = dir.path().join(s["dir"].as_str().unwrap());
        for f in [
            "signals.csv",
            "events.csv",
            "scenario.json",
            "plots.html",
            "can.log",
            "p1.log",
            "decisions.csv",
        ] {
            assert!(d.join(f).is_file(), "{f} missing in {}", d.display());
        }
        assert!(s["figures"]["can_frames_to_controller"].as_f64().unwrap() > 1000.0);
        assert!(s["figures"].get("bus_voltage_min_v").is_some(), "{s}");
        // candump -L: every line parses, stamped in the scenario's time.
        let can = std::fs::read_to_string(d.join("can.log")).unwrap();
        let lines: Vec<&str> = can.lines().collect();
        assert!(lines.len() > 1000, "{} CAN lines", lines.len());
        for l in &lines {
            links::candump::parse_line(l).unwrap_or_else(|e| panic!("`{l}`: {e}"));
        }
        // P1: telegrams back to back, each `/...!CRC`.
        let p1 = std::fs::read_to_string(d.join("p1.log")).unwrap();
        assert!(p1.starts_with('/'), "{}", &p1[..p1.len().min(80)]);
        assert!(p1.matches("\r\n!").count() > 10 || p1.matches('!').count() > 10);
        // The decision log: a header and the controller's first decisions.
        let dec = std::fs::read_to_string(d.join("decisions.csv")).unwrap();
        assert!(dec.starts_with("time_s,what,reason\n"), "{dec}");
        assert!(dec.lines().count() > 1, "{dec}");
        // The signals: time, then one column per signal with its unit.
        let sig = std::fs::read_to_string(d.join("signals.csv")).unwrap();
        let header = sig.lines().next().unwrap();
        assert!(
            header.starts_with("time_s,") && header.contains("bus_voltage_v [V]"),
            "{header}"
        );
    }
    // The failed band is in the failing scenario's assertions, violated.
    let failing = scenarios
        .iter()
        .find(|s| s["name"] == "An impossible band")
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            dir.path()
                .join(failing["dir"].as_str().unwrap())
                .join("scenario.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let a = &summary["assertions"][0];
    assert_eq!(a["signal"], "bus_voltage_v");
    assert_eq!(a["bound"]["between"]["lo"], 10.0);
    assert_eq!(a["held"], false);
}

#[test]
fn maslow_report_summarises_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    run_fixtures(dir.path());
    let out = maslow().arg("report").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("3 scenarios: 1 passed, 2 failed, 0 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL ") && stdout.contains("An impossible band"));
    assert!(stdout.contains("index.html"), "{stdout}");

    // Same run twice: nothing changed.
    let out = maslow()
        .args(["report", "--compare"])
        .arg(dir.path())
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("0 scenario change(s)"), "{stdout}");

    // An old run where everything passed: the failures are regressions,
    // listed first, and the exit code says so.
    let old = tempfile::tempdir().unwrap();
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    for s in run["scenarios"].as_array_mut().unwrap() {
        s["status"] = "passed".into();
        if let Some(f) = s["figures"].get_mut("can_frames_to_controller") {
            *f = 1.0.into();
        }
    }
    std::fs::write(old.path().join("run.json"), run.to_string()).unwrap();
    let out = maslow()
        .args(["report", "--compare"])
        .arg(old.path())
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert!(lines.len() >= 4, "{stdout}");
    assert!(
        lines[0].starts_with("REGRESSION") && lines[1].starts_with("REGRESSION"),
        "{stdout}"
    );
    assert!(
        lines[2..].iter().all(|l| l.starts_with("figure")),
        "{stdout}"
    );
    assert!(stdout.contains("can_frames_to_controller 1 →"), "{stdout}");
}

#[test]
fn a_corrupt_report_dir_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = maslow().arg("report").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("run.json") && stderr.contains("report dir"),
        "{stderr}"
    );
    std::fs::write(
        dir.path().join("run.json"),
        "{\"format\": \"maslow-run/1\", \"rig\"",
    )
    .unwrap();
    let out = maslow().arg("report").arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("run.json").display().to_string()),
        "{stderr}"
    );
}

#[test]
fn a_killed_run_leaves_a_valid_report_of_the_finished_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = maslow()
        .args([
            "test",
            &fixture("passing.feature"),
            &fixture("failing.feature"),
            "--report-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first scenario is in run.json.
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished = loop {
        let n = std::fs::read_to_string(dir.path().join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["scenarios"].as_array().map(Vec::len))
            .unwrap_or(0);
        if n >= 1 {
            child.kill().unwrap();
            break n;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no scenario finished within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.wait();
    // The run-level files are whole and agree.
    let run = reports::run_json::read_run_json(dir.path()).expect("run.json is whole");
    assert!(run.scenarios.len() >= finished);
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is whole");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert!(cases >= finished, "{cases} test cases");
    let cuke: Vec<reports::cucumber_json::Feature> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cucumber.json")).unwrap())
            .expect("cucumber.json is whole");
    assert!(!cuke.is_empty());
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.ends_with("</html>\n"));
    // No half-written temporary file is mistaken for a report.
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".partial") || n.starts_with('.'), "{n}");
    }
    // Every scenario dir's CAN trace holds whole lines only (the one in
    // flight as of its last flush).
    for d in scenario_dirs(dir.path()) {
        if let Ok(can) = std::fs::read_to_string(d.join("can.log")) {
            assert!(can.is_empty() || can.ends_with('\n'), "{}", d.display());
            for l in can.lines() {
                links::candump::parse_line(l).unwrap_or_else(|e| panic!("`{l}`: {e}"));
            }
        }
    }
}
