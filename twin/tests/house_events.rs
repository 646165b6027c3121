//! Run-time house events (what Gherkin `When` steps do to the plant): the
//! utility's tariff indicator, plugging and unplugging devices, a device
//! going idle, the mains coming back — checked through published signals.

use std::path::Path;

use twin::engine::Engine;
use twin::house::{House, HouseConfig, HouseEvent};
use twin::time::SimTime;

fn house() -> (House, Engine<HouseEvent>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("params/house/terrace.toml");
    let cfg = HouseConfig::load(&path).unwrap();
    let mut house = House::new(cfg).unwrap();
    let engine = Engine::new(&mut house).unwrap();
    (house, engine)
}

fn run_to(h: &mut House, e: &mut Engine<HouseEvent>, hour: f64) {
    let end = SimTime::from_secs_f64(hour * 3600.0);
    while e.now() < end {
        h.command(None);
        e.tick(h);
    }
}

fn sig(e: &Engine<HouseEvent>, name: &str) -> f64 {
    let s = e.signals();
    s.get(s.require(name).unwrap())
}

#[test]
fn the_tariff_indicator_follows_the_utility_then_the_schedule() {
    let (mut h, mut e) = house();
    run_to(&mut h, &mut e, 12.0);
    assert_eq!(
        sig(&e, "tariff"),
        2.0,
        "midday is normal tariff on the schedule"
    );
    e.schedule(e.now(), HouseEvent::Tariff { tariff: Some(1) });
    run_to(&mut h, &mut e, 12.1);
    assert_eq!(sig(&e, "tariff"), 1.0);
    e.schedule(e.now(), HouseEvent::Tariff { tariff: None });
    run_to(&mut h, &mut e, 12.2);
    assert_eq!(sig(&e, "tariff"), 2.0);
    // Out of range: ignored and counted.
    e.schedule(e.now(), HouseEvent::Tariff { tariff: Some(7) });
    run_to(&mut h, &mut e, 12.3);
    assert_eq!(sig(&e, "tariff"), 2.0);
    assert_eq!(h.ignored_events(), 1);
}

#[test]
fn devices_plugged_unplugged_and_idle() {
    let (mut h, mut e) = house();
    // 20:00: the desk sockets are empty on the schedule.
    run_to(&mut h, &mut e, 20.0);
    assert!(sig(&e, "socket_desk_left_power_w") < 1.0);
    e.schedule(
        e.now(),
        HouseEvent::Plug {
            socket: "desk-left".into(),
            device: Some("laptop".into()),
        },
    );
    run_to(&mut h, &mut e, 20.1);
    let drawing = sig(&e, "socket_desk_left_power_w");
    assert!(drawing > 5.0, "a laptop in use draws power: {drawing} W");
    e.schedule(
        e.now(),
        HouseEvent::DeviceIdle {
            device: "laptop".into(),
            idle: true,
        },
    );
    run_to(&mut h, &mut e, 20.2);
    let idle = sig(&e, "socket_desk_left_power_w");
    assert!(
        idle < drawing,
        "an idle laptop draws less: {idle} W vs {drawing} W"
    );
    e.schedule(
        e.now(),
        HouseEvent::Plug {
            socket: "desk-left".into(),
            device: None,
        },
    );
    run_to(&mut h, &mut e, 20.3);
    assert!(sig(&e, "socket_desk_left_power_w") < 1.0);
    e.schedule(
        e.now(),
        HouseEvent::Plug {
            socket: "no-such-socket".into(),
            device: None,
        },
    );
    run_to(&mut h, &mut e, 20.4);
    assert_eq!(h.ignored_events(), 1);
}

#[test]
fn the_mains_returns_when_told() {
    let (mut h, mut e) = house();
    run_to(&mut h, &mut e, 10.0);
    e.schedule(e.now(), HouseEvent::PowerCut { duration_h: 100.0 });
    run_to(&mut h, &mut e, 10.5);
    assert_eq!(sig(&e, "mains_present"), 0.0);
    e.schedule(e.now(), HouseEvent::MainsReturn);
    run_to(&mut h, &mut e, 10.6);
    assert_eq!(sig(&e, "mains_present"), 1.0);
}
