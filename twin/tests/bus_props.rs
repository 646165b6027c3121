//! Property tests of the DC bus: energy balance, finiteness, bounded bus
//! voltage and device SOC in [0, 1] over random configurations, step sizes,
//! loads, setpoints, plugs and faults.

use proptest::prelude::*;
use twin::bus::usb_pd::standard_pdos_100w;
use twin::bus::*;

#[derive(Debug, Clone)]
struct Cfg {
    cap_f: f64,
    droop: [f64; 2],
    len_m: [f64; 3],
    mm2: [f64; 3],
    led_w: [f64; 3],
    res_ohm: f64,
    initial_v: f64,
    /// Inverter port: `None` = no port, else its power limit (`None` = unlimited).
    port: Option<Option<f64>>,
}

fn cfg_strategy() -> impl Strategy<Value = Cfg> {
    (
        1e-3..5e-2f64,
        [0.005..0.2f64, 0.005..0.2f64],
        [1.0..40.0f64, 1.0..40.0f64, 1.0..40.0f64],
        [0.75..2.5f64, 0.75..2.5f64, 0.75..2.5f64],
        [1.0..600.0f64, 1.0..600.0f64, 1.0..600.0f64],
        1.0..100.0f64,
        0.0..56.0f64,
        prop::option::weighted(0.8, prop::option::of(100.0..5000.0f64)),
    )
        .prop_map(
            |(cap_f, droop, len_m, mm2, led_w, res_ohm, initial_v, port)| Cfg {
                cap_f,
                droop,
                len_m,
                mm2,
                led_w,
                res_ohm,
                initial_v,
                port,
            },
        )
}

fn build(c: &Cfg) -> DcBus {
    let conv = |name: &str, droop: f64| BatteryConverterConfig {
        name: name.into(),
        setpoint_v: 50.0,
        droop_v_per_a: droop,
        discharge_limit_a: 60.0,
        charge_limit_a: 40.0,
        efficiency: 0.96,
    };
    let circuits = (0..3)
        .map(|k| CircuitConfig {
            name: format!("c{k}"),
            length_m: c.len_m[k],
            cross_section_mm2: c.mm2[k],
            breaker: BreakerConfig::type_b(10.0),
            led_drivers: vec![
                LedDriverConfig {
                    name: "a".into(),
                    power_w: c.led_w[k],
                    min_input_v: 36.0,
                    restart_v: None,
                },
                LedDriverConfig {
                    name: "b".into(),
                    power_w: 0.5 * c.led_w[k],
                    min_input_v: 20.0,
                    restart_v: Some(24.0),
                },
            ],
            resistive_loads: vec![ResistiveLoadConfig {
                name: "r".into(),
                resistance_ohm: c.res_ohm,
            }],
            constant_current_loads: vec![ConstantCurrentLoadConfig {
                name: "cc".into(),
                current_a: 0.5,
                min_input_v: 12.0,
            }],
            usb_sockets: vec![
                UsbSocketConfig::new(&format!("s{k}a"), standard_pdos_100w(), 100.0),
                UsbSocketConfig::new(&format!("s{k}b"), usb_pd::standard_pdos_65w(), 45.0),
            ],
        })
        .collect();
    let devices = [
        DeviceKind::Phone,
        DeviceKind::Laptop,
        DeviceKind::Monitor,
        DeviceKind::Tv,
        DeviceKind::Laptop,
    ]
    .iter()
    .enumerate()
    .map(|(k, kind)| DeviceConfig {
        initial_soc: 0.2 * k as f64 + 0.05,
        ..DeviceConfig::preset(*kind, &format!("d{k}"))
    })
    .collect();
    DcBus::new(BusConfig {
        nominal_v: 48.0,
        capacitance_f: c.cap_f,
        initial_v: Some(c.initial_v),
        undervoltage_v: 42.0,
        overvoltage_v: 57.0,
        battery_converters: vec![conv("b0", c.droop[0]), conv("b1", c.droop[1])],
        pv_converter: Some(PvConverterConfig {
            name: "pv".into(),
            setpoint_v: 53.0,
            droop_v_per_a: 0.01,
            efficiency: 0.97,
            rated_power_w: 4000.0,
        }),
        charger: Some(ChargerConfig {
            name: "chg".into(),
            setpoint_v: 49.0,
            droop_v_per_a: 0.05,
            current_limit_a: 20.0,
            efficiency: 0.93,
        }),
        circuits,
        devices,
        inverter_port: c.port.map(|max_power_w| InverterPortConfig {
            max_power_w,
            ..InverterPortConfig::default()
        }),
    })
    .unwrap()
}

#[derive(Debug, Clone)]
struct StepIn {
    log_dt: f64,
    bat: [(bool, f64, f64, f64); 2],
    pv: (bool, f64, f64),
    chg: (bool, bool, f64, f64),
    circ: [(bool, Option<f64>, bool, bool, bool); 3],
    plug: [Option<usize>; 6],
    on: [bool; 5],
    budget: [f64; 6],
    port_w: f64,
}

fn step_strategy() -> impl Strategy<Value = StepIn> {
    let bat = (any::<bool>(), 30.0..56.0f64, 0.0..80.0f64, 0.0..50.0f64);
    let circ = (
        prop::bool::weighted(0.9),
        prop::option::weighted(0.15, 0.001..20.0f64),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    (
        (-4.0..0.0f64),
        [bat.clone(), bat],
        (any::<bool>(), 0.0..5000.0f64, 40.0..56.0f64),
        (any::<bool>(), any::<bool>(), 40.0..56.0f64, 0.0..30.0f64),
        [circ.clone(), circ.clone(), circ],
        prop::array::uniform6(prop::option::of(0usize..6)),
        prop::array::uniform5(any::<bool>()),
        prop::array::uniform6(0.0..120.0f64),
        prop_oneof![
            3 => 0.0..6000.0f64,
            1 => Just(0.0),
            1 => prop::sample::select(vec![-100.0, f64::NAN, f64::INFINITY]),
        ],
    )
        .prop_map(
            |(log_dt, bat, pv, chg, circ, plug, on, budget, port_w)| StepIn {
                log_dt,
                bat,
                pv,
                chg,
                circ,
                plug,
                on,
                budget,
                port_w,
            },
        )
}

fn apply(s: &StepIn, inp: &mut BusInputs) -> f64 {
    for (k, b) in s.bat.iter().enumerate() {
        inp.battery[k].enabled = b.0;
        inp.battery[k].setpoint_v = b.1;
        inp.battery[k].discharge_limit_a = b.2;
        inp.battery[k].charge_limit_a = b.3;
    }
    inp.pv.enabled = s.pv.0;
    inp.pv.available_w = s.pv.1;
    inp.pv.setpoint_v = s.pv.2;
    inp.charger.mains_present = s.chg.0;
    inp.charger.enabled = s.chg.1;
    inp.charger.setpoint_v = s.chg.2;
    inp.charger.current_limit_a = s.chg.3;
    for (k, c) in s.circ.iter().enumerate() {
        let ci = &mut inp.circuits[k];
        ci.switch_on = c.0;
        ci.fault_ohm = c.1;
        ci.led_on[0] = c.2;
        ci.led_on[1] = c.3;
        ci.reset_breaker = c.4;
    }
    for k in 0..6 {
        // Index 5 is out of range (no such device): treated as empty.
        inp.sockets[k].device = s.plug[k];
        inp.sockets[k].budget_w = s.budget[k];
    }
    for k in 0..5 {
        inp.devices[k].on = s.on[k];
    }
    inp.inverter_port.demand_w = s.port_w;
    10f64.powf(s.log_dt)
}

fn all_finite(o: &BusOutputs) -> bool {
    let mut ok = o.v_bus.is_finite() && o.v_bus_min.is_finite() && o.v_bus_max.is_finite();
    for b in &o.battery {
        ok &= [b.current_a, b.bus_power_w, b.battery_power_w, b.loss_w]
            .iter()
            .all(|x| x.is_finite());
    }
    for s in [&o.pv, &o.charger] {
        ok &= [s.current_a, s.bus_power_w, s.input_power_w, s.curtailed_w]
            .iter()
            .all(|x| x.is_finite());
    }
    for c in &o.circuits {
        ok &= [
            c.v_load,
            c.current_a,
            c.power_w,
            c.wiring_loss_w,
            c.total_energy_j,
        ]
        .iter()
        .all(|x| x.is_finite());
        ok &= c.leds.iter().all(|l| l.power_w.is_finite());
    }
    for s in &o.sockets {
        ok &= [
            s.input_power_w,
            s.output_power_w,
            s.loss_w,
            s.output_current_a,
        ]
        .iter()
        .all(|x| x.is_finite());
    }
    let p = &o.inverter_port;
    ok &= [p.power_w, p.energy_j, p.total_energy_j, p.unserved_w]
        .iter()
        .all(|x| x.is_finite() && *x >= 0.0);
    for d in &o.devices {
        ok &= d.soc.is_finite() && d.input_w.is_finite() && d.battery_w.is_finite();
    }
    let e = &o.energy;
    ok &= e.imbalance_j().is_finite() && e.scale_j().is_finite();
    ok
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn energy_balance_finiteness_and_bounds(
        cfg in cfg_strategy(),
        steps in prop::collection::vec((step_strategy(), 1usize..20), 1..12),
    ) {
        let mut bus = build(&cfg);
        let mut inp = bus.default_inputs();
        let mut total_in = 0.0;
        let mut total_out = 0.0;
        let e0 = bus.stored_energy_j();
        for (s, repeat) in &steps {
            let dt = apply(s, &mut inp);
            for _ in 0..*repeat {
                let o = bus.step(dt, &inp);
                prop_assert!(all_finite(o), "non-finite output: {o:?}");
                let e = &o.energy;
                prop_assert!(
                    e.imbalance_j().abs() <= 1e-9 * e.scale_j() + 1e-9 * dt,
                    "imbalance {} J of scale {} J at dt {dt}: {e:?}",
                    e.imbalance_j(), e.scale_j()
                );
                prop_assert!(e.integration_loss_j >= 0.0);
                prop_assert!(e.converter_loss_j >= -1e-9 * e.scale_j());
                // Bounded: never below 0 V, never above the highest
                // setpoint (PV adds its back-off band) or where it started.
                let v_cap = cfg.initial_v.max(56.0 + 0.01 * 5000.0 * 0.97 / 40.0) + 1e-6;
                prop_assert!(o.v_bus >= 0.0 && o.v_bus <= v_cap, "v_bus {}", o.v_bus);
                for d in &o.devices {
                    prop_assert!((0.0..=1.0).contains(&d.soc), "soc {}", d.soc);
                }
                // The port never draws more than asked or than its limit.
                let asked = if s.port_w.is_finite() { s.port_w.max(0.0) } else { 0.0 };
                let limit = match cfg.port {
                    Some(m) => asked.min(m.unwrap_or(f64::INFINITY)),
                    None => 0.0,
                };
                let p = &o.inverter_port;
                prop_assert!(p.power_w <= limit * (1.0 + 1e-9) + 1e-9, "port {p:?} asked {asked}");
                if cfg.port.is_some() {
                    prop_assert!((p.power_w + p.unserved_w - asked).abs() <= 1e-9 * asked.max(1.0)
                        || p.power_w >= asked, "port {p:?} asked {asked}");
                }
                total_in += e.source_input_j;
                total_out += e.load_j + e.wiring_loss_j + e.converter_loss_j + e.integration_loss_j;
            }
        }
        // Over the whole run the stored energy closes the balance too.
        let de = bus.stored_energy_j() - e0;
        let scale = total_in.abs().max(total_out).max(de.abs()).max(1e-3);
        prop_assert!((total_in - total_out - de).abs() <= 1e-8 * scale,
            "run imbalance {} of {}", total_in - total_out - de, scale);
        for k in 0..5 {
            let soc = bus.device(k).soc();
            prop_assert!((0.0..=1.0).contains(&soc));
        }
    }

    #[test]
    fn no_nan_from_extreme_finite_inputs(
        sp in -1e6..1e6f64,
        lim in -1e6..1e6f64,
        avail in -1e9..1e9f64,
        fault in -1e3..1e3f64,
        budget in -1e6..1e6f64,
        log_dt in -7.0..3.0f64,
    ) {
        let cfg = Cfg {
            cap_f: 0.01, droop: [0.02, 0.05], len_m: [10.0, 20.0, 30.0],
            mm2: [1.5, 1.0, 1.0], led_w: [50.0, 300.0, 700.0], res_ohm: 10.0, initial_v: 48.0,
            port: Some(None),
        };
        let mut bus = build(&cfg);
        let mut inp = bus.default_inputs();
        for b in &mut inp.battery {
            b.setpoint_v = sp;
            b.discharge_limit_a = lim;
            b.charge_limit_a = -lim;
            b.battery_discharge_limit_w = lim * 10.0;
        }
        inp.pv.available_w = avail;
        inp.pv.setpoint_v = sp;
        inp.charger.setpoint_v = sp;
        inp.charger.current_limit_a = lim;
        inp.circuits[1].fault_ohm = Some(fault);
        for s in &mut inp.sockets {
            s.budget_w = budget;
            s.device = Some(1);
        }
        inp.sockets[0].device = Some(0);
        inp.devices[1].on = true;
        inp.inverter_port.demand_w = avail;
        let dt = 10f64.powf(log_dt);
        for _ in 0..20 {
            let o = bus.step(dt, &inp);
            prop_assert!(all_finite(o), "{o:?}");
            // Setpoints are clamped to 60 V (SELV).
            prop_assert!(o.v_bus >= 0.0 && o.v_bus <= 60.0 + 1e-9, "{}", o.v_bus);
            for d in &o.devices {
                prop_assert!((0.0..=1.0).contains(&d.soc));
            }
        }
    }
}
