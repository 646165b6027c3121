//! Fleet throughput: a slice of `rigs/fleets/bench_10k.toml` (one copy
//! of the capped and one of the shifting feeder: 200 households with
//! assemblies on two IEEE European LV feeders), one simulated day in
//! lockstep in-process, timed. A plain bench binary (`cargo bench -p rigs
//! --bench fleet`); `MASLOW_FLEET_BRANCHES=N` takes N copies of each.
//! The full 10,000 households: `maslow fleet run rigs/fleets/bench_10k.toml`
//! (README, "Fleets").

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rigs::fleet::run::{run_in_process, RunOptions};
use rigs::fleet::scenario::FleetScenario;

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/bench_10k.toml");
    let per_kind: usize = std::env::var("MASLOW_FLEET_BRANCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    // The same fleet with `per_kind` copies of each feeder (branch ids are
    // 1..=n, so fewer copies is a smaller fleet, not a filtered one).
    let sc = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| {
            let text = text.replace("copies = 50", &format!("copies = {per_kind}"));
            FleetScenario::parse(&path, &text).map_err(|e| e.to_string())
        });
    let sc = match sc {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fleet bench: {}: {e}", path.display());
            std::process::exit(2);
        }
    };
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
