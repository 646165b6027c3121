//! Software in the loop, end to end: a simulated day on `rigs/sil.toml` —
//! the real `maslow-firmware` binary as a child process, SLCAN and P1 over
//! pseudo-terminal pairs, lockstep on the bus clock — must make the same
//! decisions as the in-process run of the same seed (`rigs/sim.toml`), and
//! the house's energies must agree within 0.1 %.

#[path = "common/firmware.rs"]
mod common;

use std::path::Path;

use rigs::rig::{self, Rig, RunOptions, RunSummary};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn run(rig_file: &str, hours: f64, work: &Path) -> RunSummary {
    let r = Rig::load(&repo().join(rig_file)).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        seed: Some(20261126),
        program: Some(common::firmware_program()),
        ..RunOptions::new(hours, work)
    };
    rig::run(&r, &opts).unwrap_or_else(|e| panic!("{rig_file}: {e}"))
}

#[test]
fn sil_day_matches_the_in_process_run() {
    let work = tempfile::tempdir().expect("tempdir");
    let hours = 24.0;
    let sim = run("rigs/sim.toml", hours, work.path());
    let sil = run("rigs/sil.toml", hours, work.path());
    eprintln!("{sim}\n{sil}");

    assert_eq!(sim.steps, sil.steps);
    assert!(
        sim.applied.len() > 10,
        "the controller should change its commands during a day, saw {}",
        sim.applied.len()
    );
    // Same decisions: every change of applied commands at the same instant.
    assert_eq!(
        sim.applied.len(),
        sil.applied.len(),
        "number of command changes"
    );
    for (a, b) in sim.applied.iter().zip(&sil.applied) {
        assert_eq!(a, b, "first differing command change");
    }
    assert_eq!(sim.frames_to_controller, sil.frames_to_controller);
    assert_eq!(sim.frames_from_controller, sil.frames_from_controller);
    assert_eq!(sim.p1_telegrams, sil.p1_telegrams);
    assert!(
        sil.p1_telegrams >= 86_000,
        "P1 telegrams: {}",
        sil.p1_telegrams
    );
    for ((name, a), (_, b)) in sim.energies.fields().iter().zip(sil.energies.fields()) {
        let tol = 1e-3 * a.abs().max(b.abs()).max(1e-6);
        assert!((a - b).abs() <= tol, "{name}: in-process {a} vs SIL {b}");
    }
    assert!(
        sil.controller.contains("stopped cleanly"),
        "the firmware must stop cleanly on SIGTERM: {}",
        sil.controller
    );
}
