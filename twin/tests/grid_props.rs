//! Property tests for the grid models: no NaN from finite input, demand
//! never negative, meter registers never decrease.

use proptest::prelude::*;
use twin::grid::{
    Archetype, DemandConfig, HouseholdDemand, Inverter, InverterConfig, InverterInput, Mains,
    MainsConfig, MainsState, MeterConfig, SmartMeter,
};
use twin::time::{Calendar, SimTime};

fn archetype() -> impl Strategy<Value = Archetype> {
    prop::sample::select(Archetype::ALL.to_vec())
}

fn mains_state() -> impl Strategy<Value = MainsState> {
    (any::<bool>(), -1e4f64..1e4, 0.0f64..100.0).prop_map(|(present, voltage_v, frequency_hz)| {
        MainsState {
            present,
            voltage_v,
            frequency_hz,
        }
    })
}

/// Any f64 at all, including NaN and infinities.
fn wild() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        -1e7f64..1e7,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mains_state_is_finite(
        seed in any::<u64>(),
        t_us in 0u64..(400 * 86_400_000_000u64),
        wander_v in 0.0f64..20.0,
        wander_hz in 0.0f64..2.0,
        rate in 0.0f64..50.0,
        r_ohm in 0.0f64..5.0,
        load in wild(),
    ) {
        let cfg = MainsConfig {
            voltage_wander_v: wander_v,
            frequency_wander_hz: wander_hz,
            random_interruptions_per_day: rate,
            source_impedance_ohm: r_ohm,
            ..MainsConfig::default()
        };
        let m = Mains::new(cfg, seed).unwrap();
        for s in [m.state(SimTime(t_us)), m.state_under_load(SimTime(t_us), load)] {
            prop_assert!(s.voltage_v.is_finite() && s.voltage_v >= 0.0);
            prop_assert!(s.frequency_hz.is_finite() && s.frequency_hz >= 0.0);
            prop_assert!(s.present || (s.voltage_v == 0.0 && s.frequency_hz == 0.0));
        }
    }

    #[test]
    fn demand_is_non_negative_and_finite(
        a in archetype(),
        seed in any::<u64>(),
        epoch in -2_000_000_000i64..4_000_000_000,
        offset_h in -12.0f64..14.0,
        times in prop::collection::vec((0u64..(3 * 365 * 86_400_000_000u64), wild()), 1..20),
        kwh in prop::option::of(0.5f64..200.0),
        events in any::<bool>(),
        variation in 0.0f64..1.0,
    ) {
        let cfg = DemandConfig {
            archetype: a,
            daily_energy_kwh: kwh,
            appliance_events: events,
            day_to_day_variation: variation,
        };
        let mut d = HouseholdDemand::new(cfg, seed, Calendar::new(epoch, offset_h)).unwrap();
        for (t, dt) in times {
            let p = d.step(SimTime(t), dt);
            prop_assert!(p.is_finite() && p >= 0.0, "step {} {}: {}", t, dt, p);
            let q = d.ac_demand_w(SimTime(t));
            prop_assert!(q.is_finite() && q >= 0.0);
        }
    }

    #[test]
    fn inverter_outputs_are_finite_and_bounded(
        export in any::<bool>(),
        backup in any::<bool>(),
        trip in 0.0f64..2.0,
        steps in prop::collection::vec((wild(), wild(), wild(), wild(), mains_state(), any::<bool>()), 1..60),
    ) {
        let cfg = InverterConfig {
            export_enabled: export,
            backup_enabled: backup,
            anti_islanding_trip_s: trip,
            ..InverterConfig::default()
        };
        let rated = cfg.rated_power_w;
        let mut inv = Inverter::new(cfg).unwrap();
        for (dt, req, load, dc, mains, enable) in steps {
            inv.set_enabled(enable);
            let s = inv.step(dt, InverterInput { request_ac_w: req, local_load_w: load, dc_available_w: dc }, mains);
            for v in [s.ac_out_w, s.dc_in_w, s.loss_w, s.efficiency, s.export_w, s.unserved_w] {
                prop_assert!(v.is_finite() && v >= 0.0, "{:?}", s);
            }
            prop_assert!(s.ac_out_w <= rated + 1e-9);
            prop_assert!(s.dc_in_w + 1e-9 >= s.ac_out_w);
            prop_assert!(s.efficiency <= 1.0);
        }
    }

    #[test]
    fn meter_registers_never_decrease(
        start in 0u64..(30 * 86_400_000_000u64),
        phases in prop::sample::select(vec![1u8, 3]),
        steps in prop::collection::vec((wild(), wild(), wild(), wild(), mains_state()), 1..80),
    ) {
        let cfg = MeterConfig { phases, ..MeterConfig::default() };
        let mut m = SmartMeter::new(cfg, Calendar::new(1_772_000_000, 1.0)).unwrap();
        let mut now = SimTime(start);
        let mut last = [0.0f64; 4];
        let mut last_counts = (0u32, 0u32);
        for (dt, p1, p2, p3, mains) in steps {
            let r = m.step_per_phase(now, dt, [p1, p2, p3], mains);
            let regs = [r.import_t1_kwh, r.import_t2_kwh, r.export_t1_kwh, r.export_t2_kwh];
            for (a, b) in regs.iter().zip(&last) {
                prop_assert!(a.is_finite() && a >= b, "{:?} after {:?}", regs, last);
            }
            for v in r.import_w_by_phase.iter().chain(&r.export_w_by_phase).chain(&r.voltage_v).chain(&r.current_a) {
                prop_assert!(v.is_finite() && *v >= 0.0);
            }
            prop_assert!(r.import_w.is_finite() && r.export_w.is_finite());
            prop_assert!(r.short_power_failures >= last_counts.0 && r.long_power_failures >= last_counts.1);
            last = regs;
            last_counts = (r.short_power_failures, r.long_power_failures);
            let dt_us = if dt.is_finite() && dt > 0.0 { (dt.min(1e6) * 1e6) as u64 } else { 0 };
            now = now.saturating_add(dt_us);
        }
    }
}
