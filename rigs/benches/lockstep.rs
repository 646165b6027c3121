//! Lockstep speed-up over real time, side by side: one simulated day (or
//! `MASLOW_BENCH_HOURS`) on `rigs/sim.toml` (firmware node in-process) and on
//! `rigs/sil.toml` (the `maslow-firmware` binary over SLCAN and P1 on
//! pseudo-terminals). A plain bench binary, not criterion: one run of a day
//! is the measurement (`cargo bench -p rigs --bench lockstep`).

#[path = "../tests/common/firmware.rs"]
mod common;

use std::path::Path;

use rigs::rig::{self, Rig, RunOptions};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either: run only when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let hours: f64 = std::env::var("MASLOW_BENCH_HOURS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(24.0);
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let work = std::env::temp_dir();
    let program = common::firmware_program();
    for rig_file in ["rigs/sim.toml", "rigs/sil.toml"] {
        let r = match Rig::load(&repo.join(rig_file)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{rig_file}: {e}");
                std::process::exit(1);
            }
        };
        let opts = RunOptions {
            seed: Some(20261126),
            program: Some(program.clone()),
            ..RunOptions::new(hours, work.clone())
        };
        match rig::run(&r, &opts) {
            Ok(s) => {
                let [p50, p99, max] = s.round_trip_us.unwrap_or_default();
                println!(
                    "lockstep/{:<4} {:>6.1} h simulated in {:>8.2} s: {:>9.0}× real time, {:>6.2} µs per 100 ms step, {} frames; plant-to-command round trip p50 {p50} µs, p99 {p99} µs, max {max} µs",
                    s.rig,
                    s.simulated_s / 3600.0,
                    s.wall_s,
                    s.speedup(),
                    s.wall_s * 1e6 / s.steps.max(1) as f64,
                    s.frames_to_controller + s.frames_from_controller
                )
            }
            Err(e) => {
                eprintln!("{rig_file}: {e}");
                std::process::exit(1);
            }
        }
    }
}
