//! Runs the feature suite (`features/`) on the default software rig (`rigs/sim.toml`) and
//! fails `cargo test` when any scenario fails or a feature file does not
//! parse. Tags: `(@sim or @fleet) and not @slow and not @known-gap` unless `MASLOW_FEATURE_TAGS` says
//! otherwise (CI runs `@slow` too). Reports go to `target/maslow-features`
//! (replaced on every run), with each trace file capped at 4 MiB.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tags = std::env::var("MASLOW_FEATURE_TAGS")
        .unwrap_or_else(|_| "(@sim or @fleet) and not @slow and not @known-gap".into());
    let opts = rigs::scenario::TestOptions {
        paths: vec![root.join("features")],
        rig: root.join("rigs/sim.toml"),
        tags: Some(tags.clone()),
        name: std::env::var("MASLOW_FEATURE_NAME").ok(),
        seed: None,
        report_dir: root.join("target/maslow-features"),
        probe_rate_hz: None,
        progress: true,
        // 4 MiB a trace file (~11 min of CAN, ~3 h of P1): the suite's
        // report dir stays ~1 GB.
        trace_limit_bytes: 4 << 20,
        sabotage: None,
    };
    match rigs::scenario::run_features(&opts) {
        Ok(outcome) => {
            let c = outcome.record.counts();
            println!(
                "features ({tags}): {} passed, {} failed, {} skipped, {} parse errors in {:.1} s",
                c.passed,
                c.failed,
                c.skipped,
                outcome.parse_errors.len(),
                outcome.record.duration_s
            );
            for e in &outcome.parse_errors {
                println!("parse error: {e}");
            }
            if outcome.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("features: {e}");
            ExitCode::FAILURE
        }
    }
}
