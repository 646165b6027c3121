//! One household in virtual time: the shipped terrace house (16-cell LFP
//! pack, PV, DC bus with 4 circuits and 4 USB-PD sockets, mains, demand,
//! inverter, meter, fixed policy) stepped by the engine.
//!
//! `Throughput::Elements` is the number of simulated seconds per iteration,
//! so criterion's "thrpt" line reads directly as the real-time factor
//! (simulated seconds per wall-clock second). Target: ≥ 100,000×.
//!
//! Run: `cargo bench -p twin --bench house -- --warm-up-time 1 --measurement-time 5`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twin::engine::Engine;
use twin::house::{House, HouseConfig};
use twin::time::SimTime;

fn terrace(step_ms: u64) -> HouseConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/house/terrace.toml");
    let mut cfg = HouseConfig::load(&path).expect("the shipped house file loads");
    cfg.electrical_step_us = step_ms * 1000;
    cfg
}

fn run(cfg: &HouseConfig, seconds: u64) -> f64 {
    let mut house = House::new(cfg.clone()).expect("the house builds");
    let mut engine = Engine::new(&mut house).expect("the engine builds");
    engine.run_until(&mut house, SimTime::from_secs(seconds), |_, _| true);
    let soc = engine.signals().require("soc").expect("soc is published");
    engine.signals().get(soc)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("house");
    g.sample_size(10);

    // A whole day at the day-run step (1 s electrical, 10 s environment).
    let day = terrace(1000);
    g.throughput(Throughput::Elements(86_400));
    g.bench_function("day_1s_electrical_step", |b| b.iter(|| run(&day, 86_400)));

    // An hour at the HIL step (10 ms electrical): 360,000 ticks.
    let hil = terrace(10);
    g.throughput(Throughput::Elements(3_600));
    g.bench_function("hour_10ms_electrical_step", |b| b.iter(|| run(&hil, 3_600)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
