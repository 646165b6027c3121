//! A household through a day, end to end: the shipped terrace house with its
//! fixed simple policy, checked through its published signals only.

use std::path::{Path, PathBuf};

use twin::engine::{Engine, Recorder, SignalRegistry};
use twin::house::{House, HouseConfig};
use twin::time::SimTime;

fn terrace_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("params/house/terrace.toml")
}

fn terrace_text() -> String {
    std::fs::read_to_string(terrace_path()).unwrap()
}

/// Parses house text as if it were the terrace file (so relative paths work).
fn config(text: &str) -> HouseConfig {
    HouseConfig::parse(&terrace_path(), text).unwrap()
}

/// A recorded run: every signal, sampled every `sample_s`.
struct Run {
    names: Vec<String>,
    time_s: Vec<f64>,
    values: Vec<Vec<f64>>,
}

impl Run {
    fn col(&self, name: &str) -> &[f64] {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no signal {name}"));
        &self.values[i]
    }
    fn at(&self, name: &str, hour: f64) -> f64 {
        let k = self
            .time_s
            .iter()
            .position(|t| *t >= hour * 3600.0)
            .unwrap();
        self.col(name)[k]
    }
    /// Trapezoid-free energy of a power column over [h0, h1), kWh (samples
    /// are the step-average powers, so a left sum is exact for 1-s samples).
    fn kwh(&self, name: &str, h0: f64, h1: f64) -> f64 {
        let c = self.col(name);
        let dt = self.time_s[1] - self.time_s[0];
        self.time_s
            .iter()
            .zip(c)
            .filter(|(t, _)| **t > h0 * 3600.0 && **t <= h1 * 3600.0)
            .map(|(_, p)| p * dt / 3.6e6)
            .sum()
    }
}

fn run(cfg: HouseConfig, hours: f64, sample_s: u64) -> Run {
    let events = cfg.scheduled_events();
    let mut house = House::new(cfg).unwrap();
    let mut engine = Engine::new(&mut house).unwrap();
    for (at, e) in events {
        engine.schedule(at, e);
    }
    let names: Vec<String> = engine
        .signals()
        .iter()
        .map(|(_, n, _, _)| n.to_owned())
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut rec = Recorder::new(
        engine.signals(),
        &refs,
        sample_s * 1_000_000,
        engine.base_period_us(),
    )
    .unwrap();
    let mut ticks = 0;
    engine.run_until(
        &mut house,
        SimTime::from_secs_f64(hours * 3600.0),
        |now, s: &SignalRegistry| {
            ticks += 1;
            rec.observe(ticks, now, s);
            true
        },
    );
    Run {
        names,
        time_s: rec.time_s().to_vec(),
        values: rec.values().to_vec(),
    }
}

#[test]
fn a_day_is_finite_bounded_and_plausible() {
    let r = run(config(&terrace_text()), 24.0, 60);
    assert_eq!(r.time_s.len(), 24 * 60);
    for (name, col) in r.names.iter().zip(&r.values) {
        assert!(
            col.iter().all(|v| v.is_finite()),
            "{name} has a non-finite sample"
        );
    }
    for soc in r.col("soc") {
        assert!((0.0..=1.0).contains(soc));
    }
    for v in r.col("bus_voltage_v") {
        assert!((44.0..=56.0).contains(v), "bus at {v} V");
    }
    let demand = r.kwh("household_ac_demand_w", 0.0, 24.0);
    assert!((5.0..=20.0).contains(&demand), "AC demand {demand} kWh/day");
    // Midsummer near London: a 3.2 kWp roof yields something, nothing at night.
    let pv = r.kwh("pv_available_w", 0.0, 24.0);
    assert!(pv > 3.0, "PV available {pv} kWh");
    assert!(r.at("pv_available_w", 1.0) == 0.0);
    // Lights are on in the evening window, off at noon.
    assert!(r.at("circuit_lighting_downstairs_power_w", 21.0) > 40.0);
    assert_eq!(r.at("circuit_lighting_downstairs_power_w", 12.0), 0.0);
    // Mains never failed; tariff 1 at night, 2 by day.
    assert!(r.col("mains_present").iter().all(|m| *m == 1.0));
    assert_eq!(r.at("tariff", 3.0), 1.0);
    assert_eq!(r.at("tariff", 12.0), 2.0);
}

#[test]
fn the_meter_accounts_for_demand_charger_and_inverter() {
    // Sample every second so the left sums are exact step averages.
    let r = run(config(&terrace_text()), 24.0, 1);
    let import = r.col("grid_import_kwh").last().unwrap() - r.col("grid_import_kwh")[0];
    let export = r.col("grid_export_kwh").last().unwrap() - r.col("grid_export_kwh")[0];
    let flows = r.kwh("household_ac_demand_w", 0.0, 24.0) + r.kwh("charger_ac_power_w", 0.0, 24.0)
        - r.kwh("inverter_ac_power_w", 0.0, 24.0);
    // The first second's step happens before the first sample.
    assert!(
        ((import - export) - flows).abs() < 2e-3,
        "meter {import} - {export} vs flows {flows}"
    );
}

#[test]
fn same_seed_same_day_other_seed_other_day() {
    let a = run(config(&terrace_text()), 6.0, 60);
    let b = run(config(&terrace_text()), 6.0, 60);
    assert_eq!(
        a.values, b.values,
        "a run must be reproducible from its seed"
    );
    let text = terrace_text().replace("seed = 20260621", "seed = 7");
    let c = run(config(&text), 6.0, 60);
    assert_ne!(
        a.col("household_ac_demand_w"),
        c.col("household_ac_demand_w")
    );
}

#[test]
fn the_battery_cuts_grid_import_in_the_peak_window() {
    let with = run(config(&terrace_text()), 24.0, 60);
    let text = terrace_text().replace("[policy]\n", "[policy]\nbattery_enabled = false\n");
    let without = run(config(&text), 24.0, 60);
    let peak_with = with.kwh("grid_import_w", 16.0, 20.0);
    let peak_without = without.kwh("grid_import_w", 16.0, 20.0);
    assert!(
        peak_with < 0.2 * peak_without,
        "peak import {peak_with:.3} kWh with the battery vs {peak_without:.3} kWh without"
    );
    assert!(with.at("inverter_ac_power_w", 18.0) > 0.0);
    // The battery discharged through the peak.
    assert!(with.at("soc", 20.0) < with.at("soc", 16.0));
}

#[test]
fn a_power_cut_islands_the_house_and_freezes_the_meter() {
    let text =
        terrace_text() + "\n[[events]]\nat_h = 18.0\nkind = \"power_cut\"\nduration_h = 3.0\n";
    let r = run(config(&text), 24.0, 60);
    assert_eq!(r.at("mains_present", 17.9), 1.0);
    assert_eq!(r.at("mains_present", 18.5), 0.0);
    assert_eq!(r.at("mains_present", 20.9), 0.0);
    assert_eq!(r.at("mains_present", 21.1), 1.0);
    // The import register does not move in the cut.
    assert_eq!(r.at("grid_import_kwh", 18.1), r.at("grid_import_kwh", 20.9));
    // The inverter islands and serves the AC demand; lights stay on.
    assert!(r.at("inverter_ac_power_w", 19.0) > 0.0);
    // Only what exceeds the inverter's 3 kW rating goes unserved (an oven
    // and a kettle at once); shedding by priority is the firmware's job.
    let unserved = r.kwh("ac_unserved_w", 18.1, 21.0);
    let demand = r.kwh("household_ac_demand_w", 18.1, 21.0);
    assert!(
        unserved < 0.02 * demand,
        "unserved {unserved:.3} of {demand:.3} kWh"
    );
    assert!(r.at("soc", 20.9) < r.at("soc", 18.0));
    assert!(r.at("circuit_lighting_downstairs_power_w", 20.0) > 40.0);
    assert_eq!(r.at("long_power_failures", 22.0), 1.0);
}

#[test]
fn a_short_circuit_trips_only_its_breaker() {
    let text = terrace_text()
        + "\n[[events]]\nat_h = 20.0\nkind = \"short_circuit\"\ncircuit = \"lighting-downstairs\"\nfault_ohm = 0.01\n"
        + "\n[[events]]\nat_h = 20.5\nkind = \"clear_fault\"\ncircuit = \"lighting-downstairs\"\n"
        + "\n[[events]]\nat_h = 21.0\nkind = \"reset_breaker\"\ncircuit = \"lighting-downstairs\"\n";
    let r = run(config(&text), 22.0, 60);
    assert_eq!(r.at("circuit_lighting_downstairs_tripped", 19.9), 0.0);
    assert_eq!(r.at("circuit_lighting_downstairs_tripped", 20.1), 1.0);
    assert_eq!(r.at("circuit_lighting_downstairs_power_w", 20.2), 0.0);
    assert!(r.at("bus_voltage_v", 20.2) > 46.0, "the bus recovers");
    assert!(
        r.at("circuit_living_sockets_power_w", 20.2) > 0.0,
        "TV still on"
    );
    assert_eq!(r.at("circuit_lighting_downstairs_tripped", 21.1), 0.0);
    assert!(r.at("circuit_lighting_downstairs_power_w", 21.2) > 40.0);
}

#[test]
fn bad_house_files_name_the_problem() {
    let p = terrace_path();
    let t = terrace_text();
    let e = HouseConfig::parse(&p, &t.replace("2026-06-21", "21/06/2026"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("terrace.toml") && e.contains("start_date"),
        "{e}"
    );
    let e = HouseConfig::parse(&p, &t.replace("socket = \"sofa\"", "socket = \"bed\""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown socket `bed`"), "{e}");
    let e = HouseConfig::parse(&p, &t.replace("initial_soc = 0.6", "initial_soc = 1.6"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("battery.initial_soc"), "{e}");
    let e = HouseConfig::parse(&p, &t.replace("../lfp_home_16s.toml", "../nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.toml") && e.contains("cannot read"), "{e}");
    let e = HouseConfig::parse(&p, &(t.clone() + "\nsurprise = 1\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("surprise"), "{e}");
    let e = HouseConfig::parse(
        &p,
        &t.replace("environment_step_ms = 10000", "environment_step_ms = 1500"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("whole multiple"), "{e}");
}

#[test]
fn a_controller_s_commands_replace_the_policy() {
    use twin::house::PlantCommands;
    let cfg = config(&terrace_text());
    let mut house = House::new(cfg).unwrap();
    let mut engine = Engine::new(&mut house).unwrap();
    // Run the policy until 20:00, then take over: battery off, downstairs
    // lighting switched off, the TV socket off, the inverter idle.
    engine.run_until(&mut house, SimTime::from_secs(20 * 3600), |_, _| true);
    let sig = |e: &Engine<_>, n: &str| e.signals().get(e.signals().require(n).unwrap());
    assert!(sig(&engine, "circuit_lighting_downstairs_power_w") > 40.0);
    house.command(Some(PlantCommands {
        inverter_enabled: true,
        pv_cap_w: Some(0.0),
        circuits_on: Some(vec![false, true, true, true]),
        sockets_on: Some(vec![true, true, false, true]),
        ..PlantCommands::no_assembly(4, 4)
    }));
    engine.run_until(&mut house, SimTime::from_secs(20 * 3600 + 60), |_, _| true);
    assert_eq!(sig(&engine, "circuit_lighting_downstairs_power_w"), 0.0);
    // A socket with no power budget serves nothing; its converter idles (0.3 W).
    assert!(sig(&engine, "socket_tv_power_w") <= 0.3 + 1e-9, "tv socket");
    assert!(sig(&engine, "battery_power_w").abs() < 1e-9);
    assert_eq!(sig(&engine, "inverter_ac_power_w"), 0.0);
    // The charger now carries the DC loads from mains.
    assert!(sig(&engine, "charger_ac_power_w") > 0.0);
    // Handing back to the policy restores the lights.
    house.command(None);
    engine.run_until(&mut house, SimTime::from_secs(20 * 3600 + 120), |_, _| true);
    assert!(sig(&engine, "circuit_lighting_downstairs_power_w") > 40.0);
}

#[test]
fn the_meter_publishes_per_tariff_registers_failures_and_l1() {
    // A 1-minute cut (short) at 02:00 and a 1-hour cut (long) at 12:00.
    let text = terrace_text()
        + "\n[[events]]\nat_h = 2.0\nkind = \"power_cut\"\nduration_h = 0.0166667\n"
        + "\n[[events]]\nat_h = 12.0\nkind = \"power_cut\"\nduration_h = 1.0\n";
    let r = run(config(&text), 24.0, 60);
    for k in 0..r.time_s.len() {
        let t1 = r.col("grid_import_t1_kwh")[k];
        let t2 = r.col("grid_import_t2_kwh")[k];
        let total = r.col("grid_import_kwh")[k];
        assert!((t1 + t2 - total).abs() < 1e-9, "import registers at {k}");
        let e = r.col("grid_export_t1_kwh")[k] + r.col("grid_export_t2_kwh")[k];
        assert!((e - r.col("grid_export_kwh")[k]).abs() < 1e-9);
    }
    // Tariff 1 (00:30-07:30) fills register 1 at night, register 2 by day.
    assert!(r.at("grid_import_t1_kwh", 7.0) > r.at("grid_import_t1_kwh", 1.0));
    assert_eq!(
        r.at("grid_import_t2_kwh", 7.0),
        r.at("grid_import_t2_kwh", 1.0)
    );
    assert_eq!(
        r.at("grid_import_t1_kwh", 11.0),
        r.at("grid_import_t1_kwh", 8.0)
    );
    assert!(r.at("grid_import_t2_kwh", 11.0) > r.at("grid_import_t2_kwh", 8.0));
    // Failures are counted when the supply returns.
    assert_eq!(r.at("short_power_failures", 1.9), 0.0);
    assert_eq!(r.at("short_power_failures", 3.0), 1.0);
    assert_eq!(r.at("long_power_failures", 3.0), 0.0);
    assert_eq!(r.at("long_power_failures", 14.0), 1.0);
    assert_eq!(r.at("short_power_failures", 14.0), 1.0);
    // L1 voltage near nominal with the supply on; current follows import.
    let v = r.at("meter_voltage_l1_v", 10.0);
    assert!((220.0..=240.0).contains(&v), "L1 at {v} V");
    let i = r.at("meter_current_l1_a", 10.0);
    let p = r.at("grid_import_w", 10.0) + r.at("grid_export_w", 10.0);
    assert!(
        (i * v - p).abs() < 0.05 * p.max(50.0),
        "{i} A at {v} V vs {p} W"
    );
    // The pack's coolest cell is no warmer than its warmest.
    for k in 0..r.time_s.len() {
        assert!(r.col("pack_temperature_min_c")[k] <= r.col("pack_temperature_max_c")[k]);
    }
}
