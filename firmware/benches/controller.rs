//! One control cycle of the firmware core: a second's measurements handed
//! in, then `handle(Tick)` + `poll_output()` until the next second — the
//! cost a fleet pays per controller per simulated second.
//!
//! Run: `cargo bench -p firmware --bench controller -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use firmware::controller::{
    CircuitMeasurement, Controller, Input, MeterMeasurement, PackMeasurement,
};
use firmware::{LocalTime, Millis};

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/terrace.toml");
    let cfg = firmware::config_file::load(&path).expect("the shipped config loads");
    let mut ctl = Controller::new(cfg, Millis(0)).expect("the controller builds");
    let mut t_s = 0u64;
    let mut g = c.benchmark_group("controller");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_second_cycle", |b| {
        b.iter(|| {
            let now = Millis(t_s * 1000);
            let k = (t_s % 600) as f32;
            ctl.handle(
                now,
                Input::Pack(PackMeasurement {
                    pack_voltage_v: 52.8,
                    pack_current_a: 10.0 - k * 0.03,
                    cell_voltage_min_v: 3.29,
                    cell_voltage_max_v: 3.31,
                    cell_temperature_min_c: 20.0,
                    cell_temperature_max_c: 21.0,
                }),
            );
            ctl.handle(
                now,
                Input::Bus {
                    bus_voltage_v: 49.5,
                },
            );
            let mut circuits = heapless::Vec::new();
            for i in 0..4 {
                let _ = circuits.push(CircuitMeasurement {
                    power_w: 20.0 + i as f32,
                    current_a: 0.5,
                });
            }
            ctl.handle(now, Input::Circuits(circuits));
            ctl.handle(now, Input::Pv { power_w: 300.0 + k });
            ctl.handle(
                now,
                Input::Meter(MeterMeasurement {
                    grid_power_w: 400.0 - k,
                    tariff: 2,
                    mains_present: true,
                    import_wh: t_s as f64,
                    export_wh: 0.0,
                }),
            );
            ctl.handle(
                now,
                Input::Clock {
                    utc_s: 1_790_000_000 + t_s,
                    local: LocalTime {
                        seconds_of_day: (t_s % 86_400) as u32,
                        weekday: 2,
                    },
                },
            );
            let end = now.plus_ms(1000);
            while let Some(t) = ctl.poll_timeout() {
                if t >= end {
                    break;
                }
                ctl.handle(t.max(now), Input::Tick);
                while let Some(o) = ctl.poll_output() {
                    black_box(o);
                }
            }
            t_s += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
