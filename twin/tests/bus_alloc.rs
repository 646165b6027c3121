//! The bus step allocates nothing, so the house model can call it at every
//! electrical step (speed itself is measured in `benches/house.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use twin::bus::usb_pd::{standard_pdos_100w, standard_pdos_65w};
use twin::bus::*;

struct Counting;
thread_local! {
    // Per thread, so the test harness's own threads do not count.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn house_bus() -> DcBus {
    let conv = |name: &str| BatteryConverterConfig {
        name: name.into(),
        setpoint_v: 50.0,
        droop_v_per_a: 0.02,
        discharge_limit_a: 60.0,
        charge_limit_a: 40.0,
        efficiency: 0.97,
    };
    let led = |name: &str, w: f64| LedDriverConfig {
        name: name.into(),
        power_w: w,
        min_input_v: 36.0,
        restart_v: None,
    };
    let circuit =
        |name: &str, leds: Vec<LedDriverConfig>, sockets: Vec<UsbSocketConfig>| CircuitConfig {
            name: name.into(),
            length_m: 20.0,
            cross_section_mm2: 1.5,
            breaker: BreakerConfig::type_b(10.0),
            led_drivers: leds,
            resistive_loads: vec![],
            constant_current_loads: vec![],
            usb_sockets: sockets,
        };
    DcBus::new(BusConfig {
        nominal_v: 48.0,
        capacitance_f: 0.01,
        initial_v: None,
        undervoltage_v: 42.0,
        overvoltage_v: 57.0,
        battery_converters: vec![conv("a"), conv("b")],
        pv_converter: Some(PvConverterConfig {
            name: "pv".into(),
            setpoint_v: 53.0,
            droop_v_per_a: 0.01,
            efficiency: 0.97,
            rated_power_w: 3000.0,
        }),
        charger: Some(ChargerConfig {
            name: "chg".into(),
            setpoint_v: 49.0,
            droop_v_per_a: 0.05,
            current_limit_a: 20.0,
            efficiency: 0.93,
        }),
        circuits: vec![
            circuit(
                "up",
                vec![led("a", 12.0), led("b", 18.0), led("c", 9.0)],
                vec![],
            ),
            circuit("down", vec![led("a", 24.0), led("b", 30.0)], vec![]),
            circuit(
                "desk",
                vec![],
                vec![
                    UsbSocketConfig::new("l", standard_pdos_65w(), 65.0),
                    UsbSocketConfig::new("r", standard_pdos_100w(), 100.0),
                ],
            ),
            circuit(
                "lounge",
                vec![led("a", 20.0)],
                vec![UsbSocketConfig::new("tv", standard_pdos_100w(), 100.0)],
            ),
        ],
        devices: vec![
            DeviceConfig::preset(DeviceKind::Laptop, "laptop"),
            DeviceConfig::preset(DeviceKind::Phone, "phone"),
            DeviceConfig::preset(DeviceKind::Tv, "tv"),
        ],
        inverter_port: Some(InverterPortConfig::default()),
    })
    .unwrap()
}

#[test]
fn step_is_allocation_free_and_fast() {
    let mut bus = house_bus();
    let mut inp = bus.default_inputs();
    inp.sockets[0].device = Some(0);
    inp.sockets[1].device = Some(1);
    inp.sockets[2].device = Some(2);
    inp.devices[0].on = true;
    inp.devices[2].on = true;
    inp.inverter_port.demand_w = 400.0;
    inp.pv.available_w = 800.0;
    for _ in 0..100 {
        bus.step(0.01, &inp);
    }
    let n: usize = std::env::var("BUS_SPEED_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut in_step = 0;
    let mut acc = 0.0;
    for k in 0..n {
        // Vary the inputs a little so the solver has work to do.
        inp.pv.available_w = 800.0 + 200.0 * ((k % 1000) as f64 / 1000.0);
        inp.circuits[0].switch_on = (k / 5000) % 2 == 0;
        if k == n / 2 {
            inp.circuits[1].fault_ohm = Some(0.01);
        }
        if k == n / 2 + 10 {
            inp.circuits[1].fault_ohm = None;
            inp.circuits[1].reset_breaker = true;
        }
        let a0 = allocs();
        acc += bus.step(0.01, &inp).v_bus;
        let a1 = allocs();
        in_step += a1 - a0;
    }
    assert_eq!(in_step, 0, "the step allocated");
    assert!((acc / n as f64).is_finite());
    // Speed is measured in `benches/house.rs`, never asserted here.
}
