//! The bus configuration as it sits in a house TOML, end to end.

use std::path::Path;

use twin::bus::{BusConfig, DcBus, PdState, TripCause};
use twin::params::parse_toml;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct House {
    bus: BusConfig,
}

pub const EXAMPLE: &str = r#"
[bus]
nominal_v = 48.0
capacitance_f = 0.01          # all converter output capacitors
undervoltage_v = 42.0
overvoltage_v = 57.0

[[bus.battery_converters]]
name = "assembly-hall"
setpoint_v = 50.0
droop_v_per_a = 0.02
discharge_limit_a = 60.0
charge_limit_a = 40.0
efficiency = 0.97

[[bus.battery_converters]]
name = "assembly-garage"
setpoint_v = 50.0
droop_v_per_a = 0.02
discharge_limit_a = 60.0
charge_limit_a = 40.0
efficiency = 0.97

[bus.pv_converter]
setpoint_v = 53.0
droop_v_per_a = 0.01
efficiency = 0.97
rated_power_w = 3000.0

[bus.charger]
setpoint_v = 49.0
droop_v_per_a = 0.05
current_limit_a = 20.0
efficiency = 0.93

[[bus.circuits]]
name = "lighting-upstairs"
length_m = 25.0
cross_section_mm2 = 1.0
breaker = { rating_a = 6.0 }
led_drivers = [
  { name = "landing", power_w = 12.0, min_input_v = 36.0 },
  { name = "bedroom-1", power_w = 18.0, min_input_v = 36.0, restart_v = 38.0 },
]

[[bus.circuits]]
name = "desk"
length_m = 12.0
cross_section_mm2 = 1.5
[bus.circuits.breaker]
rating_a = 10.0
thermal_trip_multiple = 1.3
thermal_time_constant_s = 60.0
magnetic_trip_multiple = 5.0
magnetic_trip_time_s = 0.005
[[bus.circuits.usb_sockets]]
name = "desk-left"
budget_w = 65.0
[[bus.circuits.usb_sockets]]
name = "desk-right"
budget_w = 100.0
pdos = [
  { voltage_v = 5.0, current_a = 3.0 },
  { voltage_v = 9.0, current_a = 3.0 },
  { voltage_v = 15.0, current_a = 3.0 },
  { voltage_v = 20.0, current_a = 5.0 },
]
efficiency = 0.95
idle_w = 0.3
min_input_v = 30.0
negotiation_s = 0.3
[[bus.circuits.resistive_loads]]
name = "desk-lamp"
resistance_ohm = 96.0

[[bus.devices]]
name = "laptop"
kind = "laptop"
initial_soc = 0.4

[[bus.devices]]
name = "phone"
kind = "phone"
battery_wh = 17.0
initial_soc = 0.1

[[bus.devices]]
name = "tv"
kind = "tv"
"#;

fn parse(text: &str) -> Result<BusConfig, String> {
    parse_toml::<House>(Path::new("house.toml"), text)
        .map(|h| h.bus)
        .map_err(|e| e.to_string())
}

#[test]
fn example_parses_validates_and_runs() {
    let cfg = parse(EXAMPLE).unwrap();
    cfg.validate().unwrap();
    let mut bus = DcBus::new(cfg).unwrap();
    let mut inp = bus.default_inputs();
    let laptop = bus.device_index("laptop").unwrap();
    let phone = bus.device_index("phone").unwrap();
    let left = bus.socket_index("desk-left").unwrap();
    let right = bus.socket_index("desk-right").unwrap();
    inp.sockets[left].device = Some(phone);
    inp.sockets[right].device = Some(laptop);
    inp.devices[laptop].on = true;
    inp.pv.available_w = 400.0;
    for _ in 0..100 {
        let o = bus.step(0.01, &inp);
        let e = &o.energy;
        assert!(e.imbalance_j().abs() < 1e-9 * e.scale_j());
    }
    let o = bus.outputs();
    assert!(matches!(o.sockets[right].state, PdState::Contract(_)));
    assert_eq!(o.sockets[right].contract.unwrap().voltage_v, 20.0);
    assert_eq!(o.sockets[left].contract.unwrap().voltage_v, 9.0);
    assert!(o.v_bus > 49.0 && o.v_bus < 53.0, "{}", o.v_bus);
    assert!(o.circuits[0].leds.iter().all(|l| l.lit));
    // Short on the upstairs lighting: its 6 A breaker trips magnetically.
    let up = bus.circuit_index("lighting-upstairs").unwrap();
    inp.circuits[up].fault_ohm = Some(0.05);
    for _ in 0..2 {
        bus.step(0.01, &inp);
    }
    assert_eq!(bus.breaker(up).tripped(), Some(TripCause::Magnetic));
    assert!(bus.breaker(1).is_closed());
}

#[test]
fn unknown_and_bad_fields_are_named() {
    let e = parse(&EXAMPLE.replace("length_m = 25.0", "lenght_m = 25.0")).unwrap_err();
    assert!(e.contains("house.toml") && e.contains("lenght_m"), "{e}");
    let cfg = parse(&EXAMPLE.replace("budget_w = 65.0", "budget_w = -65.0")).unwrap();
    let e = cfg.validate().unwrap_err();
    assert!(
        e.contains("desk") && e.contains("desk-left") && e.contains("budget_w"),
        "{e}"
    );
    let cfg = parse(&EXAMPLE.replace(
        "kind = \"phone\"\nbattery_wh = 17.0",
        "kind = \"phone\"\nbattery_wh = -1.0",
    ))
    .unwrap();
    let e = cfg.validate().unwrap_err();
    assert!(e.contains("phone") && e.contains("battery_wh"), "{e}");
}

#[test]
fn bus_only_file_loads_and_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let body = EXAMPLE
        .replace("[bus]\n", "")
        .replace("[bus.", "[")
        .replace("[[bus.", "[[");
    let good = dir.path().join("bus.toml");
    std::fs::write(&good, &body).unwrap();
    let cfg = BusConfig::load(&good).unwrap();
    assert_eq!(cfg.circuits.len(), 2);
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        body.replace("capacitance_f = 0.01", "capacitance_f = 0.0"),
    )
    .unwrap();
    let e = BusConfig::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.toml") && e.contains("capacitance_f"), "{e}");
}
