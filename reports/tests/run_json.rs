//! `run.json` of a fixed run: a snapshot (start and durations redacted),
//! read back, compared with a changed run, and refused when corrupt.

mod common;

use reports::run::ScenarioStatus;
use reports::run_json::{
    compare, read_run_json, to_run_json, to_run_json_string, write_run_json, Change,
};

fn redacted(json: &str) -> String {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r#""started": "[^"]*""#, r#""started": "[time]""#);
    settings.add_filter(
        r#""started_unix_s": [0-9.e+]+"#,
        r#""started_unix_s": "[time]""#,
    );
    settings.add_filter(
        r#""duration_s": [0-9.e+-]+"#,
        r#""duration_s": "[duration]""#,
    );
    settings.bind(|| insta::assert_snapshot!("run_json", json));
    json.to_owned()
}

#[test]
fn run_json_snapshot() {
    let mut run = common::run();
    run.features[0].scenarios[0].dir = "scenarios/standby-current-stays-low-101".into();
    run.features[0].scenarios[0]
        .figures
        .insert("soc_min_pct".into(), 79.5);
    redacted(&to_run_json_string(&run).unwrap());
}

#[test]
fn run_json_reads_back_with_counts_and_verdicts() {
    let run = common::run();
    let dir = tempfile::tempdir().unwrap();
    write_run_json(&run, &dir.path().join("run.json")).unwrap();
    let back = read_run_json(dir.path()).unwrap();
    assert_eq!(back, to_run_json(&run));
    assert_eq!(back.counts, run.counts());
    assert_eq!(back.scenarios.len(), 6);
    assert_eq!(back.commit, "v0.1.0-42-gabcdef0");
    let failed: Vec<&str> = back
        .scenarios
        .iter()
        .filter(|s| s.status == ScenarioStatus::Failed)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    let text = reports::run_json::summary_text(&back);
    assert!(
        text.contains("6 scenarios: 2 passed, 3 failed, 1 skipped"),
        "{text}"
    );
}

#[test]
fn compare_lists_regressions_first_then_figures() {
    let mut old = common::run();
    old.features[0].scenarios[0]
        .figures
        .insert("grid_import_kwh".into(), 10.0);
    let mut new = old.clone();
    // The passing standby scenario now fails; its figure moved 5 %.
    new.features[0].scenarios[0].steps[2].status = reports::run::StepStatus::Failed;
    new.features[0].scenarios[0]
        .figures
        .insert("grid_import_kwh".into(), 10.5);
    // A figure within the tolerance is no change.
    new.features[1].scenarios[0].figures.insert("x".into(), 1.0);
    old.features[1].scenarios[0]
        .figures
        .insert("x".into(), 1.001);
    let changes = compare(&to_run_json(&old), &to_run_json(&new));
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(
        matches!(&changes[0], Change::Regression { key, was: ScenarioStatus::Passed } if key.ends_with(":: Standby current stays low"))
    );
    assert!(
        matches!(&changes[1], Change::Figure { figure, was: Some(a), now: Some(b), .. } if figure == "grid_import_kwh" && *a == 10.0 && *b == 10.5)
    );
    assert!(changes[0].to_string().starts_with("REGRESSION"));
    assert!(compare(&to_run_json(&old), &to_run_json(&old)).is_empty());
}

#[test]
fn a_corrupt_or_foreign_run_json_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.json");
    let err = read_run_json(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("run.json") && err.contains("no such file"),
        "{err}"
    );
    let full = to_run_json_string(&common::run()).unwrap();
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let err = read_run_json(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with(&p.display().to_string()) && err.contains("was the run killed"),
        "{err}"
    );
    std::fs::write(&p, r#"{"format": "other/2"}"#).unwrap();
    let err = read_run_json(&p).unwrap_err().to_string();
    assert!(
        err.contains("`other/2`") && err.contains("maslow-run/1"),
        "{err}"
    );
}
