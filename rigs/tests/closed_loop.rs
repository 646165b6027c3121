//! The production firmware core driving the twin household directly (a
//! rig session with the direct controller end) in lockstep virtual time:
//! checked through the house's published signals only.

use std::path::{Path, PathBuf};

use firmware::controller::Output;
use rigs::rig::direct::{self, DirectEnd, WakePolicy};
use rigs::rig::plant::Recording;
use rigs::rig::{Session, TimeMode};
use twin::engine::SignalRegistry;
use twin::house::HouseConfig;
use twin::time::SimTime;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn house(extra: &str) -> HouseConfig {
    let path = repo("twin/params/house/terrace.toml");
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    HouseConfig::parse(&path, &text).unwrap()
}

fn controller() -> firmware::ControllerConfig {
    firmware::config_file::load(&repo("firmware/config/terrace.toml")).unwrap()
}

/// Samples of named signals every minute.
struct Trace {
    names: Vec<&'static str>,
    t_h: Vec<f64>,
    rows: Vec<Vec<f64>>,
}

impl Trace {
    fn new(names: &[&'static str]) -> Self {
        Trace {
            names: names.to_vec(),
            t_h: Vec::new(),
            rows: Vec::new(),
        }
    }
    fn sample(&mut self, now: SimTime, s: &SignalRegistry) {
        if now.as_micros().is_multiple_of(60_000_000) {
            self.t_h.push(now.as_secs_f64() / 3600.0);
            self.rows.push(
                self.names
                    .iter()
                    .map(|n| s.get(s.require(n).unwrap()))
                    .collect(),
            );
        }
    }
    fn col(&self, name: &str) -> Vec<f64> {
        let i = self.names.iter().position(|n| *n == name).unwrap();
        self.rows.iter().map(|r| r[i]).collect()
    }
    fn at(&self, name: &str, h: f64) -> f64 {
        let k = self.t_h.iter().position(|t| *t >= h).unwrap();
        self.col(name)[k]
    }
    /// kWh of a power column over (h0, h1], minute samples.
    fn kwh(&self, name: &str, h0: f64, h1: f64) -> f64 {
        self.t_h
            .iter()
            .zip(self.col(name))
            .filter(|(t, _)| **t > h0 && **t <= h1)
            .map(|(_, p)| p / 60_000.0)
            .sum()
    }
}

const SIGNALS: &[&str] = &[
    "soc",
    "grid_import_w",
    "grid_export_w",
    "battery_power_w",
    "inverter_ac_power_w",
    "mains_present",
    "circuit_lighting_downstairs_power_w",
    "circuit_lighting_upstairs_power_w",
    "cell_voltage_max_v",
    "cell_voltage_min_v",
];

/// The house driven directly by `cfg`'s controller, waking every time it
/// asks (as `maslow twin house --controller` runs it).
fn session(house_cfg: HouseConfig, cfg: firmware::ControllerConfig) -> Session<DirectEnd> {
    let (wake, rec, time) = (
        WakePolicy::EveryTimeout,
        Recording::default(),
        TimeMode::Lockstep,
    );
    direct::session(house_cfg, cfg, wake, rec, time).unwrap()
}

fn advance(lp: &mut Session<DirectEnd>, to: SimTime, trace: &mut Trace) {
    lp.run_until(to, |plant| trace.sample(plant.now(), plant.signals()))
        .unwrap();
}

fn run(extra: &str, hours: f64) -> (Trace, Session<DirectEnd>) {
    let mut lp = session(house(extra), controller());
    let mut trace = Trace::new(SIGNALS);
    advance(&mut lp, SimTime::from_secs_f64(hours * 3600.0), &mut trace);
    (trace, lp)
}

#[test]
fn the_firmware_cuts_the_evening_peak_and_keeps_the_battery_in_its_window() {
    let (with, lp) = run("", 24.0);
    // The same house without a battery (the fixed policy, battery off).
    let path = repo("twin/params/house/terrace.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("[policy]\n", "[policy]\nbattery_enabled = false\n");
    let mut base = twin::house::House::new(HouseConfig::parse(&path, &text).unwrap()).unwrap();
    let mut engine = twin::engine::Engine::new(&mut base).unwrap();
    let mut without = Trace::new(SIGNALS);
    engine.run_until(&mut base, SimTime::from_secs(24 * 3600), |now, s| {
        without.sample(now, s);
        true
    });
    let peak_with = with.kwh("grid_import_w", 16.0, 20.0);
    let peak_without = without.kwh("grid_import_w", 16.0, 20.0);
    assert!(
        peak_with < 0.5 * peak_without,
        "peak import {peak_with:.3} kWh with the firmware vs {peak_without:.3} kWh without"
    );
    // The battery discharged in the peak and stayed within its limits.
    assert!(with.at("soc", 20.0) < with.at("soc", 16.0));
    assert!(with.col("cell_voltage_max_v").iter().all(|v| *v < 3.65));
    assert!(with.col("cell_voltage_min_v").iter().all(|v| *v > 2.5));
    // No export (the site may not export).
    assert!(with.col("grid_export_w").iter().all(|w| *w < 1.0));
    // Protection saw nothing wrong on a normal day.
    assert!(
        lp.controller().controller.protection().faults.is_empty(),
        "{:?}",
        lp.controller().controller.protection().faults
    );
    // Every decision is explained: the log holds peak-reduction decisions.
    assert!(lp
        .controller()
        .controller
        .decisions()
        .iter()
        .any(|d| d.reason.function == firmware::decision::Function::PeakReduction));
    // A peak report was issued for the day's window.
    assert!(lp
        .controller()
        .events
        .iter()
        .any(|e| matches!(e, Output::PeakReport(_))));
}

#[test]
fn in_a_power_cut_the_lights_stay_on_and_nothing_is_exported() {
    let (t, lp) = run(
        "\n[[events]]\nat_h = 18.0\nkind = \"power_cut\"\nduration_h = 4.0\n",
        23.0,
    );
    assert_eq!(t.at("mains_present", 19.0), 0.0);
    // Essential lighting is powered through the cut (on its schedule).
    assert!(t.at("circuit_lighting_downstairs_power_w", 20.0) > 40.0);
    assert!(t.at("circuit_lighting_upstairs_power_w", 21.75) > 20.0);
    // The battery still holds energy at the end of the cut: AC loads were
    // served only as far as the essential circuits' budget allowed.
    assert!(t.at("soc", 21.9) > 0.1, "soc {}", t.at("soc", 21.9));
    // Never any export during the cut.
    for (h, w) in t.t_h.iter().zip(t.col("grid_export_w")) {
        if (18.0..22.0).contains(h) {
            assert_eq!(w, 0.0, "export at {h:.2} h");
        }
    }
    let decided = |code: &str| {
        lp.controller().controller.decisions().iter().any(|d| {
            d.reason.function == firmware::decision::Function::Resilience && d.reason.code == code
        })
    };
    assert!(decided("Islanded"), "the controller islanded");
    // Mains returns at 22:00: the charger comes back after the stability wait.
    assert_eq!(t.at("mains_present", 22.5), 1.0);
}

#[test]
fn a_signed_dispatch_for_its_branch_moves_the_battery_and_forgeries_do_not() {
    use firmware::cluster::{ClusterConfig, PublicKeyHex};
    use firmware::wire::dispatch::{encode, Command, Dispatch};
    let server = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let mut cfg = controller();
    let mut keys = heapless::Vec::new();
    keys.push(PublicKeyHex(server.verifying_key().to_bytes()))
        .unwrap();
    cfg.cluster = Some(ClusterConfig {
        site_id: cfg.assembly.site_id,
        branch_id: 42,
        trusted_keys: keys,
        envelope: Default::default(),
        server_silence_s: 180,
        remote_config: Default::default(),
    });
    let house_cfg = house("");
    let calendar = house_cfg.calendar;
    let mut lp = session(house_cfg, cfg);
    let mut t = Trace::new(SIGNALS);
    // 22:00: after the peak, no PV, no charging plan; the battery idles.
    advance(&mut lp, SimTime::from_secs(22 * 3600), &mut t);
    let utc = calendar.unix_s(SimTime::from_secs(22 * 3600)) as u64;
    let dispatch = |branch: u32, sequence: u64| {
        encode(
            &Dispatch {
                branch_id: branch,
                site_id: 0,
                sequence,
                issued_at_s: utc,
                expires_at_s: utc + 300,
                command: Command::Source {
                    power_w: 1500,
                    duration_s: 1800,
                },
                requirement: None,
            },
            &server,
        )
    };
    let mine = dispatch(42, 1);
    let mut forged = dispatch(42, 3);
    forged[70] ^= 0x01; // power field changed after signing
    {
        let (end, plant) = lp.parts_mut();
        end.dispatch(plant, &mine);
        // The same message again (a redelivery: acknowledged as a duplicate,
        // never executed twice), one for another branch, a forgery.
        end.dispatch(plant, &mine);
        end.dispatch(plant, &dispatch(41, 2));
        end.dispatch(plant, &forged);
    }
    advance(&mut lp, SimTime::from_secs(23 * 3600), &mut t);
    let c = lp.controller().controller.dispatch_counters().unwrap();
    assert_eq!(c.accepted, 1);
    assert_eq!(c.duplicate, 1);
    assert_eq!(c.replayed, 0);
    assert_eq!(c.ignored_other_branch, 1);
    assert_eq!(c.bad_signature, 1);
    // Following the dispatch: the battery sources for 30 minutes (as much of
    // the 1500 W as the house takes: this site may not export), then stops.
    assert!(t.at("battery_power_w", 21.9).abs() < 50.0, "idle before");
    for h in [22.1, 22.3, 22.45] {
        assert!(
            t.at("battery_power_w", h) > 100.0,
            "{h} h: {}",
            t.at("battery_power_w", h)
        );
        assert!(t.at("inverter_ac_power_w", h) > 0.0);
    }
    assert!(
        t.at("battery_power_w", 22.7).abs() < 50.0,
        "stops at the end"
    );
}
