//! Not a benchmark with a bar (those live in `benches/`): an ignored test
//! that prints how fast the grid side of one house steps, for a quick look.
//! Run with `cargo test --release -p twin --test grid_throughput -- --ignored --nocapture`.

use std::time::Instant;
use twin::grid::{Archetype, DemandConfig, GridConfig, GridInputs, GridSide};
use twin::time::{Calendar, SimTime};

#[test]
#[ignore = "prints a throughput figure; no assertion on timing"]
fn grid_side_steps_per_second() {
    let cfg = GridConfig {
        mains: Default::default(),
        demand: DemandConfig::new(Archetype::Family),
        inverter: Some(Default::default()),
        meter: Default::default(),
    };
    let mut g = GridSide::new(cfg, 1, Calendar::new(1_782_000_000, 1.0)).unwrap();
    let steps = 30 * 86_400u64;
    let t0 = Instant::now();
    let mut acc = 0.0;
    for k in 0..steps {
        let s = g.step(
            SimTime::from_secs(k),
            1.0,
            GridInputs {
                inverter_request_w: if k % 86_400 > 61_200 { 1500.0 } else { 0.0 },
                ..GridInputs::default()
            },
        );
        acc += s.net_import_w;
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "grid side: {steps} steps of 1 s in {el:.3} s = {:.0} steps/s ({:.0}x real time), net {acc:.0}",
        steps as f64 / el,
        steps as f64 / el
    );
}
