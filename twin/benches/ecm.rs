//! ECM throughput: cell-steps per second on one core (target ≥ 50 M/s).
//!
//! `Throughput::Elements` is the number of cell-steps per iteration, so
//! criterion's "thrpt" line reads directly in cell-steps/s.
//!
//! Measured 2026-11-26 on the shared 2-core dev VM (AMD EPYC, baseline
//! x86-64 codegen), `-- --warm-up-time 1 --measurement-time 3`, load
//! average 1.5–2 from other engineers' jobs, before (e16e5f0) → after the
//! structure-of-arrays pack engine (`battery/lanes.rs`), median of 4 / 8
//! runs (range of the after-runs in brackets; single runs vary by 25 %):
//! LFP 16s1p (2 RC, entropic heat, ageing) ≈ 26 → 50 M cell-steps/s
//! [40–54]; the same reduced to 1 RC without entropic heat or ageing
//! ≈ 33 → 74 M/s [67–76]; NMC 13s14p (with the parallel current split)
//! ≈ 22 → 40 M/s [35–43]; single ECM_Example cell (3-D tables, entropic
//! table over OCV, via `EcmCell`: the scalar path, unchanged) ≈ 14 M/s.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twin::battery::{load_cell_params, load_pack_params, EcmCell, Pack};

fn params_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ecm");
    const STEPS: u64 = 1000;

    // 16s1p LFP home pack (2 RC pairs, SOC×T tables, entropic heat, ageing).
    let lfp = load_pack_params(&params_dir().join("lfp_home_16s.toml")).unwrap();
    let mut pack = Pack::new(&lfp, 0.6, 25.0, 42);
    g.throughput(Throughput::Elements(STEPS * 16));
    // Each iteration is 1000 s at 0.5C, alternating discharge and charge
    // between iterations so SOC stays in range (a realistic duty: few
    // current reversals).
    let mut sign = 1.0;
    g.bench_function("lfp_16s1p_pack_step_1s", |b| {
        b.iter(|| {
            sign = -sign;
            for _ in 0..STEPS {
                black_box(pack.step_current(black_box(50.0 * sign), 1.0));
            }
        })
    });

    // The same pack reduced to the plain model: 1 RC pair, no entropic heat,
    // no ageing (the cost of the options, by difference).
    let mut lfp3 = lfp.clone();
    lfp3.cell.ageing = None;
    lfp3.cell.entropic_v_per_k = None;
    lfp3.cell.rc.truncate(1);
    let mut pack3 = Pack::new(&lfp3, 0.6, 25.0, 42);
    g.bench_function("lfp_16s1p_plain_1rc_pack_step_1s", |b| {
        b.iter(|| {
            sign = -sign;
            for _ in 0..STEPS {
                black_box(pack3.step_current(black_box(50.0 * sign), 1.0));
            }
        })
    });
    // 13s14p NMC pack (182 cells, parallel current split).
    let nmc = load_pack_params(&params_dir().join("nmc_pack.toml")).unwrap();
    let mut pack = Pack::new(&nmc, 0.6, 25.0, 42);
    let n = (nmc.series * nmc.parallel) as u64;
    g.throughput(Throughput::Elements(100 * n));
    g.bench_function("nmc_13s14p_pack_step_1s", |b| {
        b.iter(|| {
            sign = -sign;
            for _ in 0..100 {
                black_box(pack.step_current(black_box(35.0 * sign), 1.0));
            }
        })
    });

    // Single ECM_Example cell (3-D SOC×T×I tables, entropic heat over OCV).
    let ecm = load_cell_params(&params_dir().join("ecm_example.toml")).unwrap();
    let mut cell = EcmCell::new(&ecm, 0.5, 25.0);
    g.throughput(Throughput::Elements(STEPS));
    g.bench_function("ecm_example_cell_step_1s", |b| {
        b.iter(|| {
            sign = -sign;
            for _ in 0..STEPS {
                black_box(cell.step_current(black_box(50.0 * sign), 1.0));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
