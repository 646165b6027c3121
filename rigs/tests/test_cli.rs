//! `maslow test` as a user runs it: exit codes, the per-scenario line with
//! its seed, the reproduce hint, the summary, bad arguments.

use std::path::PathBuf;
use std::process::Command;

fn maslow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_maslow"));
    c.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn fixture(name: &str) -> String {
    format!("rigs/tests/fixtures/features/{name}")
}

#[test]
fn passing_features_exit_zero_with_seeds_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = maslow()
        .args(["test", &fixture("passing.feature"), "--report-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ok   ") && stdout.contains("— seed "),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    assert!(dir.path().join("junit.xml").exists());
    assert!(dir.path().join("cucumber.json").exists());
}

#[test]
fn a_failing_scenario_exits_one_and_says_how_to_reproduce() {
    let dir = tempfile::tempdir().unwrap();
    let out = maslow()
        .args([
            "test",
            &fixture("failing.feature"),
            "--name",
            "impossible",
            "--seed",
            "99",
            "--report-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("seed 99"),
        "{stdout}"
    );
    assert!(stdout.contains("--seed 99"), "the reproduce line: {stdout}");
    assert!(
        stdout.contains("0 passed, 1 failed"),
        "--name kept one scenario: {stdout}"
    );
}

#[test]
fn bad_arguments_exit_two_naming_the_problem() {
    for (args, needle) in [
        (vec!["test", "features", "--tags", "@sim and and"], "--tags"),
        (vec!["test", "no/such/dir"], "no/such/dir"),
        (
            vec!["test", "features", "--rig", "no-such-rig.toml"],
            "no-such-rig.toml",
        ),
        (vec!["test", "features", "--name", "(unclosed"], "--name"),
    ] {
        let out = maslow().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn no_matching_scenario_is_not_a_pass() {
    let out = maslow()
        .args([
            "test",
            &fixture("passing.feature"),
            "--tags",
            "@nothing-has-this",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario matched"));
}
