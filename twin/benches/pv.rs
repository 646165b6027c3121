//! PV model throughput: one module solve (i_sc, v_oc, MPP) and one plant
//! step (sun, sky, clouds, POA, temperature, array, converter).
//! Needs a `[[bench]] name = "pv" harness = false` entry in twin/Cargo.toml.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use twin::pv::{calcparams_cec, PvPlant, PvPlantConfig};

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/pv/house_roof.toml");
    let cfg = PvPlantConfig::load(&path).unwrap();
    let module = cfg.array.module().clone();
    c.bench_function("pv module solve (calcparams_cec + i_sc, v_oc, MPP)", |b| {
        let mut g = 100.0;
        b.iter(|| {
            g = if g > 1100.0 { 100.0 } else { g + 1.0 };
            black_box(calcparams_cec(&module, black_box(g), 35.0).solve())
        })
    });
    let mut plant = PvPlant::new(cfg, 1).unwrap();
    let t0 = 1_782_043_200.0; // 2026-06-21 12:00 UTC
    c.bench_function("pv plant step (clouds, curtailed)", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k += 1;
            black_box(plant.step(t0 + (k % 3600) as f64, 1.0, 20.0, Some(1500.0)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
