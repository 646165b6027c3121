//! The feature harness end to end on small fixture features
//! (`rigs/tests/fixtures/features/`): verdicts, failure messages, undefined
//! steps, unknown reasons, broken feature files, reports, seeds, and a sigrok bench
//! instrument mapped by a rig file. The harness installs process-wide
//! settings, so these tests take a lock and run one at a time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reports::run::{ScenarioStatus, StepStatus};
use rigs::scenario::{run_features, TestOptions, TestOutcome};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/features")
        .join(name)
}

fn run(feature: &str, rig: &Path, seed: Option<u64>, dir: &Path) -> TestOutcome {
    let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run_features(&TestOptions {
        paths: vec![fixture(feature)],
        rig: rig.to_path_buf(),
        tags: None,
        name: None,
        seed,
        report_dir: dir.to_path_buf(),
        probe_rate_hz: None,
        progress: false,
        trace_limit_bytes: rigs::scenario::DEFAULT_TRACE_LIMIT_BYTES,
        sabotage: None,
    })
    .expect("the harness runs")
}

#[test]
fn a_passing_scenario_passes_and_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "passing.feature",
        &root().join("rigs/sim.toml"),
        None,
        dir.path(),
    );
    assert!(out.passed(), "{:#?}", out.record);
    let c = out.record.counts();
    assert_eq!((c.passed, c.failed, c.skipped), (1, 0, 0));
    let s = &out.record.features[0].scenarios[0];
    assert!(s.steps.iter().all(|st| st.status == StepStatus::Passed));
    assert!(s.output.contains(&format!("seed {}", s.seed)));
    let junit = std::fs::read_to_string(&out.junit).unwrap();
    assert!(
        junit.contains("The bus holds its voltage for ten minutes"),
        "{junit}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out.cucumber_json).unwrap()).unwrap();
    assert_eq!(
        json[0]["elements"][0]["steps"][2]["result"]["status"],
        "passed"
    );
    // The scenario's configuration files and measured signals are kept.
    let scen = dir.path().join("scenarios");
    let one = std::fs::read_dir(&scen)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in ["house.toml", "controller.toml", "pack.toml"] {
        assert!(one.join(f).exists(), "{f} missing in {}", one.display());
    }
}

#[test]
fn failures_say_what_was_expected_and_measured_and_undefined_steps_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "failing.feature",
        &root().join("rigs/sim.toml"),
        None,
        dir.path(),
    );
    assert!(!out.passed());
    let c = out.record.counts();
    assert_eq!((c.passed, c.failed), (0, 2), "{:#?}", out.record);
    let scenarios = &out.record.features[0].scenarios;
    let band = scenarios
        .iter()
        .find(|s| s.name == "An impossible band")
        .unwrap();
    assert_eq!(band.status(), ScenarioStatus::Failed);
    let msg = band.failure().unwrap();
    assert!(
        msg.contains("expected the bus voltage between 10 and 20 V") && msg.contains("measured"),
        "{msg}"
    );
    assert!(
        msg.contains("signals.csv"),
        "the message points at the measured signals: {msg}"
    );
    // The step after the failure is not run.
    assert_eq!(band.steps.last().unwrap().status, StepStatus::Skipped);
    let undefined = scenarios
        .iter()
        .find(|s| s.name == "A step nobody defined")
        .unwrap();
    assert_eq!(undefined.steps[1].status, StepStatus::Undefined);
    let junit = std::fs::read_to_string(&out.junit).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
}

#[test]
fn an_unknown_reason_is_a_step_error_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "unknown_reason.feature",
        &root().join("rigs/sim.toml"),
        None,
        dir.path(),
    );
    let c = out.record.counts();
    assert_eq!((c.passed, c.failed), (0, 2), "{:#?}", out.record);
    let failure = |name: &str| {
        out.record.features[0]
            .scenarios
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.failure())
            .unwrap_or_default()
            .to_owned()
    };
    let msg = failure("A dispatch rejected for a reason nobody defined");
    assert!(
        msg.contains("`tired` is not a reason for rejecting a dispatch")
            && msg.contains("bad signature, replayed, expired"),
        "{msg}"
    );
    let msg = failure("A signal rejected for a dispatch's reason");
    assert!(
        msg.contains("`bad signature` is not a reason for rejecting a signal")
            && msg.contains("exceeds power limit"),
        "{msg}"
    );
}

#[test]
fn a_broken_feature_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        "broken.feature",
        &root().join("rigs/sim.toml"),
        None,
        dir.path(),
    );
    assert!(!out.passed());
    assert_eq!(out.parse_errors.len(), 1, "{:?}", out.parse_errors);
    assert!(
        out.parse_errors[0].contains("broken.feature"),
        "{:?}",
        out.parse_errors
    );
}

#[test]
fn the_seed_reproduces_a_scenario_exactly() {
    let signals = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        let out = run(
            "passing.feature",
            &root().join("rigs/sim.toml"),
            Some(seed),
            dir.path(),
        );
        assert!(out.passed());
        assert_eq!(out.record.features[0].scenarios[0].seed, seed);
        let scen = dir.path().join("scenarios");
        let one = std::fs::read_dir(&scen)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::read_to_string(one.join("signals.csv")).expect("signals.csv")
    };
    let a = signals(4242);
    assert!(
        a.lines().count() > 600,
        "10 minutes at 1 Hz: {} lines",
        a.lines().count()
    );
    assert_eq!(a, signals(4242), "same seed, same measurements");
    assert_ne!(a, signals(4243), "another seed, another household");
}

#[test]
fn a_sigrok_bench_instrument_is_measured_through_the_rig_file() {
    match sigrok::Context::load() {
        Ok(ctx) => drop(ctx),
        Err(e) => {
            if sigrok::testing::skip_for(
                "a_sigrok_bench_instrument_is_measured_through_the_rig_file",
                &e,
            ) {
                return;
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let rig = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sim-demo-bench.toml");
    let out = run("bench_demo.feature", &rig, None, dir.path());
    assert!(out.passed(), "{:#?}", out.record);
}
