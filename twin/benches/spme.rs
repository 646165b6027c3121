//! SPMe speed: one step of one cell (20 shells per particle, 60 electrolyte
//! volumes) and a full 1C Chen2020 discharge at 1 s resolution through the
//! profile runner (the same experiment `tools/reference/pybamm_spme_timing.py`
//! times in PyBaMM; the README table puts both side by side).
//!
//! Targets: one step ≤ 5 µs; the 1C discharge faster than
//! PyBaMM's warm solve and ≥ 100× faster than PyBaMM's `Simulation.step`
//! loop at 1 s.
//!
//! Measured 2026-11-26 on the shared 2-core dev VM (AMD EPYC, load average
//! ≈ 4.5 from other jobs), `-- --warm-up-time 1 --measurement-time 3`:
//! step isothermal 1.66 µs (10 ms, constant current) / 2.21 µs (1 s,
//! reversing every step); lumped thermal 1.59 / 2.94 µs; 1C discharge at
//! 1 s 6.00 ms (PyBaMM warm solve 10.68 ms, `Simulation.step` loop 7.74 s,
//! same run: `spme_pybamm_timing.json`); 16s1p pack 10 ms step 28.9 µs.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use twin::battery::spme::{load_spme_params, SpmeCell};
use twin::battery::{run_spme_profile, Profile, ProfileKind};

fn params_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("spme");
    for file in ["chen2020_isothermal.toml", "chen2020.toml"] {
        let p = load_spme_params(&params_dir().join(file)).unwrap();
        let mut cell = SpmeCell::new(&p, 0.7, 25.0).unwrap();
        // Alternate discharge and charge between iterations (SOC stays put);
        // every step changes the current, the worst case for the caches.
        let mut k = 0u64;
        let name = format!("step_1s_{}", file.trim_end_matches(".toml"));
        g.bench_function(&name, |b| {
            b.iter(|| {
                k += 1;
                let i = if k.is_multiple_of(2) { 5.0 } else { -5.0 };
                black_box(cell.step_current(black_box(i), 1.0))
            })
        });
        let mut cell = SpmeCell::new(&p, 0.7, 25.0).unwrap();
        let name = format!("step_10ms_{}", file.trim_end_matches(".toml"));
        g.bench_function(&name, |b| {
            b.iter(|| black_box(cell.step_current(black_box(5.0), 0.01)))
        });
    }
    let p = load_spme_params(&params_dir().join("chen2020_isothermal.toml")).unwrap();
    let profile = Profile::new(vec![0.0, 4500.0], vec![5.0, 5.0], ProfileKind::CurrentA).unwrap();
    g.bench_function("chen2020_1c_discharge_1s", |b| {
        b.iter(|| {
            let run = run_spme_profile(&p, &profile, 1.0, 25.0, 1.0).unwrap();
            black_box(run.samples.len())
        })
    });
    // 16s1p lumped-thermal pack at the real-time rig's 10 ms plant step.
    if let twin::battery::BatteryPackParams::Spme(pp) =
        twin::battery::load_battery_pack_params(&params_dir().join("chen2020_16s.toml")).unwrap()
    {
        let mut pack = twin::battery::spme::SpmePack::new(&pp, 0.7, 25.0, 1).unwrap();
        let mut k = 0u64;
        g.bench_function("pack_16s1p_step_10ms", |b| {
            b.iter(|| {
                k += 1;
                let i = if (k / 1000).is_multiple_of(2) {
                    5.0
                } else {
                    -5.0
                };
                black_box(pack.step_current(black_box(i), 0.01))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
