//! Feeder power flow: one snapshot of the IEEE European LV test feeder (906
//! LV buses, 55 single-phase loads) by backward/forward sweep, and the
//! network build (parse + validate + order) for reference.
//! Needs a `[[bench]] name = "feeder" harness = false` entry in twin/Cargo.toml.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use twin::feeder::{parse_file, Network};

fn bench(c: &mut Criterion) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("params/feeders/ieee_european_lv/master.dss");
    let model = parse_file(&path).unwrap();
    let net = Network::from_dss(&model).unwrap();
    let snap = net.base_snapshot();
    c.bench_function("feeder: IEEE European LV, one snapshot (solve)", |b| {
        b.iter(|| black_box(net.solve(black_box(&snap)).unwrap()))
    });
    c.bench_function("feeder: IEEE European LV, parse + build", |b| {
        b.iter(|| black_box(Network::from_dss(&parse_file(&path).unwrap()).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
