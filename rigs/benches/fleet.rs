//! Fleet throughput: a slice of `rigs/fleets/bench_10k.toml` (the first
//! capped and the first shifting branch: 200 households with assemblies
//! on two IEEE European LV feeders), one simulated day in lockstep
//! in-process, timed. A plain bench binary (`cargo bench -p rigs --bench
//! fleet`); `MASLOW_FLEET_BRANCHES=N` takes N branches of each kind.
//! The full 10,000 households: `maslow fleet run rigs/fleets/bench_10k.toml`
//! (README, "Fleets").

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rigs::fleet::run::{run_in_process, RunOptions};
use rigs::fleet::scenario::FleetScenario;

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/bench_10k.toml");
    let mut sc = match FleetScenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            std::process::exit(2);
        }
    };
    let per_kind: usize = std::env::var("MASLOW_FLEET_BRANCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut keep = Vec::new();
    for f in 0..sc.feeders.len() {
        keep.extend(
            sc.branches
                .iter()
                .filter(|b| b.feeder == f)
                .take(per_kind)
                .cloned(),
        );
    }
    // Branch ids stay as in the full fleet (households are drawn per id).
    sc.branches.retain(|b| keep.contains(b));
    let households: usize = sc
        .branch_ids()
        .iter()
        .map(|b| sc.households(*b).len())
        .sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let t = Instant::now();
    let o = match run_in_process(
        Arc::new(sc),
        &RunOptions {
            threads,
            ..RunOptions::default()
        },
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            std::process::exit(1);
        }
    };
    let wall = t.elapsed().as_secs_f64();
    let per_hh_day_ms =
        wall / households as f64 * 1000.0 * 1440.0 / f64::from(o.report.minutes.max(1));
    println!(
        "fleet: {households} households on {} branches, {} min simulated, {threads} threads: {wall:.1} s wall ({:.1} s build), {per_hh_day_ms:.1} ms per household-day; 10,000 households at this rate: {:.0} s",
        o.report.branches.len(),
        o.report.minutes,
        o.build_s,
        per_hh_day_ms * 10.0,
    );
}
