//! One household as a [`Plant`]: battery pack behind its converter, PV on
//! its MPPT converter, the 48 V DC bus with its circuits and USB-PD sockets,
//! mains, the household's AC demand, the inverter, the AC/DC charger and the
//! smart meter — and a **fixed simple policy** standing in for the
//! controller when no controller drives the house (`maslow twin house`
//! without `--controller`).
//!
//! ## Tasks (multi-rate)
//! - `electrical` (period `electrical_step_ms`, default 1 s for day-long
//!   runs, 10 ms for HIL rigs): mains → demand → policy → inverter → bus →
//!   meter → battery pack. Within a step the only lag is the battery pack:
//!   the bus draws the power the converter asks for at the pack voltage of
//!   the previous step (explicit coupling, one step apart).
//! - `environment` (period `environment_step_ms`, default 10 s): outdoor
//!   temperature and the PV plant (sun position, clouds, module temperature,
//!   MPP), whose available power the electrical task then uses.
//!
//! ## The fixed simple policy
//! - The battery converter always runs in droop; it may discharge while the
//!   pack's mean SOC is above `reserve_soc` (in a power cut: down to 2 %,
//!   the reserve being what it is kept for) and charge while below
//!   `max_soc`, each up to the pack's power limit.
//! - In the peak window the inverter runs the household's AC demand from the
//!   bus (up to its rating), so grid import falls.
//! - In off-peak tariff (tariff 1) the charger lifts the bus above the
//!   battery converter's setpoint (`charger_boost_setpoint_v`) until the pack
//!   reaches `offpeak_charge_to_soc`; otherwise it sits below it as a backstop
//!   that carries the DC loads when the battery may not.
//! - In a power cut the inverter islands (where `backup_enabled`) and serves
//!   the AC demand from the bus; nothing is shed (shedding by priority is the
//!   firmware's job).
//! - PV surplus charges the battery through the bus droop; once the battery
//!   is full the PV converter backs off (curtails).
//!
//! ## Schema
//! See `twin/params/house/README.md` and the shipped `terrace.toml`.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::battery::spme::SpmePack;
use crate::battery::{self, BatteryPackParams, Pack, PackOutput};
use crate::bus::{BusConfig, BusInputs, BusOutputs, DcBus};
use crate::engine::{EngineError, Plant, SignalId, SignalRegistry, TaskId, TaskSpec, Unit};
use crate::grid::{
    DemandConfig, HouseholdDemand, Inverter, InverterConfig, InverterInput, InverterStep, Mains,
    MainsConfig, MainsState, MeterConfig, MeterReading, SmartMeter,
};
use crate::params::{self, ParamError};
use crate::pv::{PvPlant, PvPlantConfig, PvStep};
use crate::time::{days_from_civil, Calendar, SimTime};

// ---------------------------------------------------------------------------
// Configuration (the house TOML file)

fn default_seed() -> u64 {
    1
}
fn default_electrical_ms() -> u64 {
    1000
}
fn default_environment_ms() -> u64 {
    10_000
}

/// The house file as written. Paths are relative to the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HouseFile {
    name: String,
    #[serde(default = "default_seed")]
    seed: u64,
    /// Local date of the run's start, `YYYY-MM-DD` (midnight local time).
    start_date: String,
    #[serde(default)]
    utc_offset_h: f64,
    #[serde(default = "default_electrical_ms")]
    electrical_step_ms: u64,
    #[serde(default = "default_environment_ms")]
    environment_step_ms: u64,
    battery: BatteryFile,
    #[serde(default)]
    pv: Option<PvFile>,
    #[serde(default)]
    environment: EnvironmentConfig,
    bus: BusConfig,
    #[serde(default)]
    mains: MainsConfig,
    demand: DemandConfig,
    #[serde(default)]
    inverter: Option<InverterConfig>,
    #[serde(default)]
    meter: MeterConfig,
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    circuit_schedule: Vec<CircuitWindow>,
    #[serde(default)]
    plugs: Vec<PlugWindow>,
    #[serde(default)]
    events: Vec<EventSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatteryFile {
    /// Pack parameter file (series × parallel of a cell file).
    pack: String,
    initial_soc: f64,
    /// Temperature of the room the assembly stands in, °C.
    #[serde(default = "default_room_c")]
    room_temperature_c: f64,
    /// Pack discharge and charge power limits at the terminals, W.
    max_discharge_w: f64,
    max_charge_w: f64,
}

fn default_room_c() -> f64 {
    20.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PvFile {
    /// PV site/array file (`twin/src/pv/plant.rs` schema).
    plant: String,
}

/// Outdoor air temperature: a daily sinusoid, warmest at `warmest_hour`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    #[serde(default = "default_outdoor_mean")]
    pub outdoor_mean_c: f64,
    #[serde(default = "default_outdoor_swing")]
    pub outdoor_swing_c: f64,
    #[serde(default = "default_warmest_hour")]
    pub warmest_hour: f64,
}

fn default_outdoor_mean() -> f64 {
    15.0
}
fn default_outdoor_swing() -> f64 {
    5.0
}
fn default_warmest_hour() -> f64 {
    15.0
}

impl Default for EnvironmentConfig {
    fn default() -> Self {
        Self {
            outdoor_mean_c: default_outdoor_mean(),
            outdoor_swing_c: default_outdoor_swing(),
            warmest_hour: default_warmest_hour(),
        }
    }
}

impl EnvironmentConfig {
    /// Outdoor air temperature at local hour `h`.
    pub fn outdoor_c(&self, h: f64) -> f64 {
        self.outdoor_mean_c
            + self.outdoor_swing_c * ((h - self.warmest_hour) / 24.0 * std::f64::consts::TAU).cos()
    }
}

/// The fixed simple policy that stands in for the controller.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Whether the policy uses the battery at all (false: the battery
    /// converter is disabled — the "no battery" baseline).
    #[serde(default = "yes")]
    pub battery_enabled: bool,
    #[serde(default = "default_reserve")]
    pub reserve_soc: f64,
    #[serde(default = "default_max_soc")]
    pub max_soc: f64,
    /// Local hours `[from, to)` in which the inverter runs AC loads from the
    /// bus. `from > to` wraps past midnight.
    #[serde(default = "default_peak")]
    pub peak_window_h: [f64; 2],
    #[serde(default = "default_offpeak_soc")]
    pub offpeak_charge_to_soc: f64,
    #[serde(default = "default_boost")]
    pub charger_boost_setpoint_v: f64,
}

fn yes() -> bool {
    true
}
fn default_reserve() -> f64 {
    0.2
}
fn default_max_soc() -> f64 {
    0.95
}
fn default_peak() -> [f64; 2] {
    [16.0, 20.0]
}
fn default_offpeak_soc() -> f64 {
    0.8
}
fn default_boost() -> f64 {
    51.5
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            battery_enabled: true,
            reserve_soc: default_reserve(),
            max_soc: default_max_soc(),
            peak_window_h: default_peak(),
            offpeak_charge_to_soc: default_offpeak_soc(),
            charger_boost_setpoint_v: default_boost(),
        }
    }
}

/// A circuit switched on during local hours `[from_h, to_h)` every day
/// (wrapping past midnight when `from_h > to_h`). Circuits with no window
/// are on all the time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CircuitWindow {
    circuit: String,
    from_h: f64,
    to_h: f64,
}

/// A device plugged into a socket (and in use) during local hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlugWindow {
    socket: String,
    device: String,
    from_h: f64,
    to_h: f64,
}

/// An event at a time in the run, as written in the file:
/// `{ at_h = 18.0, kind = "power_cut", duration_h = 6.0 }`. (A flat table
/// rather than a flattened enum so unknown keys are still rejected.)
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    /// Hours after the run's start.
    at_h: f64,
    kind: String,
    #[serde(default)]
    duration_h: Option<f64>,
    #[serde(default)]
    circuit: Option<String>,
    #[serde(default)]
    fault_ohm: Option<f64>,
}

impl EventSpec {
    /// The typed event, or a message naming the missing or extra key.
    fn to_event(&self, k: usize) -> Result<HouseEvent, String> {
        let need = |key: &str, present: bool| {
            if present {
                Ok(())
            } else {
                Err(format!(
                    "`events[{k}]` of kind `{}` needs `{key}`",
                    self.kind
                ))
            }
        };
        let refuse = |key: &str, present: bool| {
            if present {
                Err(format!(
                    "`events[{k}]` of kind `{}` does not take `{key}`",
                    self.kind
                ))
            } else {
                Ok(())
            }
        };
        let circuit = || self.circuit.clone().unwrap_or_default();
        match self.kind.as_str() {
            "power_cut" => {
                need("duration_h", self.duration_h.is_some())?;
                refuse("circuit", self.circuit.is_some())?;
                refuse("fault_ohm", self.fault_ohm.is_some())?;
                Ok(HouseEvent::PowerCut {
                    duration_h: self.duration_h.unwrap_or_default(),
                })
            }
            "short_circuit" => {
                need("circuit", self.circuit.is_some())?;
                need("fault_ohm", self.fault_ohm.is_some())?;
                refuse("duration_h", self.duration_h.is_some())?;
                Ok(HouseEvent::ShortCircuit {
                    circuit: circuit(),
                    fault_ohm: self.fault_ohm.unwrap_or_default(),
                })
            }
            "clear_fault" | "reset_breaker" => {
                need("circuit", self.circuit.is_some())?;
                refuse("duration_h", self.duration_h.is_some())?;
                refuse("fault_ohm", self.fault_ohm.is_some())?;
                Ok(if self.kind == "clear_fault" {
                    HouseEvent::ClearFault { circuit: circuit() }
                } else {
                    HouseEvent::ResetBreaker { circuit: circuit() }
                })
            }
            other => Err(format!(
                "`events[{k}].kind` `{other}` is not one of power_cut, short_circuit, clear_fault, reset_breaker"
            )),
        }
    }
}

/// Things that happen at scheduled times.
#[derive(Debug, Clone, PartialEq)]
pub enum HouseEvent {
    /// Mains fails now for `duration_h` hours.
    PowerCut { duration_h: f64 },
    /// A short circuit of `fault_ohm` at the far end of a circuit.
    ShortCircuit { circuit: String, fault_ohm: f64 },
    /// The short circuit on a circuit is removed.
    ClearFault { circuit: String },
    /// Somebody resets a circuit's breaker.
    ResetBreaker { circuit: String },
    /// The mains comes back now (ends a scheduled outage in progress).
    MainsReturn,
    /// The utility sets the meter's tariff indicator (1 low, 2 normal), or
    /// hands it back to the meter's schedule (`None`).
    Tariff { tariff: Option<u8> },
    /// From now on `device` is plugged into `socket` and in use, whatever
    /// the household's plug schedule says (`device: None`: the socket is
    /// empty). Unknown names are ignored and counted.
    Plug {
        socket: String,
        device: Option<String>,
    },
    /// A plugged device stops (`idle: true`) or resumes being used.
    DeviceIdle { device: String, idle: bool },
    /// Hands a socket back to the household's plug schedule.
    FollowPlugSchedule { socket: String },
}

/// A validated, ready-to-build house.
#[derive(Debug, Clone)]
pub struct HouseConfig {
    pub name: String,
    pub seed: u64,
    pub calendar: Calendar,
    pub electrical_step_us: u64,
    pub environment_step_us: u64,
    /// The pack: equivalent-circuit (`model = "ecm"`, the default) or
    /// electrochemical (`model = "spme"`) cells, from the pack file.
    pub pack: BatteryPackParams,
    pub initial_soc: f64,
    pub room_temperature_c: f64,
    pub max_discharge_w: f64,
    pub max_charge_w: f64,
    pub pv: Option<PvPlantConfig>,
    pub environment: EnvironmentConfig,
    pub bus: BusConfig,
    pub mains: MainsConfig,
    pub demand: DemandConfig,
    pub inverter: Option<InverterConfig>,
    pub meter: MeterConfig,
    pub policy: PolicyConfig,
    circuit_schedule: Vec<CircuitWindow>,
    plugs: Vec<PlugWindow>,
    events: Vec<(SimTime, HouseEvent)>,
    pub source: PathBuf,
}

impl HouseConfig {
    /// Reads a house file and the pack and PV files it references.
    pub fn load(path: &Path) -> Result<Self, ParamError> {
        let text = params::read_text(path)?;
        Self::parse(path, &text)
    }

    /// Parses house TOML that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ParamError> {
        let f: HouseFile = params::parse_toml(path, text)?;
        let invalid = |m: String| ParamError::invalid(path, m);
        let calendar = parse_start(&f.start_date, f.utc_offset_h).map_err(invalid)?;
        if f.electrical_step_ms == 0 || f.environment_step_ms == 0 {
            return Err(invalid(
                "`electrical_step_ms` and `environment_step_ms` must be positive".into(),
            ));
        }
        if !f.environment_step_ms.is_multiple_of(f.electrical_step_ms) {
            return Err(invalid(format!(
                "`environment_step_ms` ({}) must be a whole multiple of `electrical_step_ms` ({})",
                f.environment_step_ms, f.electrical_step_ms
            )));
        }
        let pack_path = params::resolve_relative(path, &f.battery.pack);
        let pack = battery::load_battery_pack_params(&pack_path)?;
        let b = &f.battery;
        if !(0.0..=1.0).contains(&b.initial_soc) {
            return Err(invalid(format!(
                "`battery.initial_soc` must be within 0..=1, found {}",
                b.initial_soc
            )));
        }
        for (k, v) in [
            ("max_discharge_w", b.max_discharge_w),
            ("max_charge_w", b.max_charge_w),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(format!(
                    "`battery.{k}` must be a finite power ≥ 0 W, found {v}"
                )));
            }
        }
        if !b.room_temperature_c.is_finite() {
            return Err(invalid(
                "`battery.room_temperature_c` must be finite".into(),
            ));
        }
        let pv = match &f.pv {
            Some(p) => Some(PvPlantConfig::load(&params::resolve_relative(
                path, &p.plant,
            ))?),
            None => None,
        };
        f.bus
            .validate()
            .map_err(|m| invalid(format!("in [bus]: {m}")))?;
        let grid_err =
            |table: &str, e: crate::grid::ConfigError| invalid(format!("in [{table}]: {e}"));
        f.mains.validate().map_err(|e| grid_err("mains", e))?;
        f.demand.validate().map_err(|e| grid_err("demand", e))?;
        if let Some(inv) = &f.inverter {
            inv.validate().map_err(|e| grid_err("inverter", e))?;
        }
        f.meter.validate().map_err(|e| grid_err("meter", e))?;
        let p = &f.policy;
        for (k, v) in [
            ("reserve_soc", p.reserve_soc),
            ("max_soc", p.max_soc),
            ("offpeak_charge_to_soc", p.offpeak_charge_to_soc),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(format!(
                    "`policy.{k}` must be within 0..=1, found {v}"
                )));
            }
        }
        if p.reserve_soc >= p.max_soc {
            return Err(invalid(
                "`policy.reserve_soc` must be below `policy.max_soc`".into(),
            ));
        }
        check_window(&p.peak_window_h, "policy.peak_window_h").map_err(invalid)?;
        let circuit_names: Vec<&str> = f.bus.circuits.iter().map(|c| c.name.as_str()).collect();
        let socket_names: Vec<&str> = f
            .bus
            .circuits
            .iter()
            .flat_map(|c| c.usb_sockets.iter().map(|s| s.name.as_str()))
            .collect();
        let device_names: Vec<&str> = f.bus.devices.iter().map(|d| d.name.as_str()).collect();
        let known = |what: &str, name: &str, all: &[&str]| {
            if all.contains(&name) {
                Ok(())
            } else {
                Err(invalid(format!(
                    "unknown {what} `{name}` (the [bus] has: {})",
                    all.join(", ")
                )))
            }
        };
        for (k, w) in f.circuit_schedule.iter().enumerate() {
            known("circuit", &w.circuit, &circuit_names)?;
            check_window(&[w.from_h, w.to_h], &format!("circuit_schedule[{k}]"))
                .map_err(invalid)?;
        }
        for (k, w) in f.plugs.iter().enumerate() {
            known("socket", &w.socket, &socket_names)?;
            known("device", &w.device, &device_names)?;
            check_window(&[w.from_h, w.to_h], &format!("plugs[{k}]")).map_err(invalid)?;
        }
        let mut events = Vec::with_capacity(f.events.len());
        for (k, spec) in f.events.iter().enumerate() {
            if !(spec.at_h.is_finite() && spec.at_h >= 0.0) {
                return Err(invalid(format!(
                    "`events[{k}].at_h` must be ≥ 0, found {}",
                    spec.at_h
                )));
            }
            let event = spec.to_event(k).map_err(invalid)?;
            match &event {
                HouseEvent::PowerCut { duration_h } => {
                    if !(duration_h.is_finite() && *duration_h > 0.0) {
                        return Err(invalid(format!(
                            "`events[{k}].duration_h` must be positive, found {duration_h}"
                        )));
                    }
                }
                HouseEvent::ShortCircuit { circuit, fault_ohm } => {
                    known("circuit", circuit, &circuit_names)?;
                    if !(fault_ohm.is_finite() && *fault_ohm > 0.0) {
                        return Err(invalid(format!(
                            "`events[{k}].fault_ohm` must be positive, found {fault_ohm}"
                        )));
                    }
                }
                HouseEvent::ClearFault { circuit } | HouseEvent::ResetBreaker { circuit } => {
                    known("circuit", circuit, &circuit_names)?;
                }
                // Not produced from house files (run-time events only).
                HouseEvent::MainsReturn
                | HouseEvent::Tariff { .. }
                | HouseEvent::Plug { .. }
                | HouseEvent::DeviceIdle { .. }
                | HouseEvent::FollowPlugSchedule { .. } => {}
            }
            events.push((SimTime::from_secs_f64(spec.at_h * 3600.0), event));
        }
        if f.bus.battery_converters.is_empty() {
            return Err(invalid(
                "[bus] needs one battery converter for the assembly".into(),
            ));
        }
        Ok(HouseConfig {
            name: f.name,
            seed: f.seed,
            calendar,
            electrical_step_us: f.electrical_step_ms * 1000,
            environment_step_us: f.environment_step_ms * 1000,
            initial_soc: b.initial_soc,
            room_temperature_c: b.room_temperature_c,
            max_discharge_w: b.max_discharge_w,
            max_charge_w: b.max_charge_w,
            pack,
            pv,
            environment: f.environment,
            bus: f.bus,
            mains: f.mains,
            demand: f.demand,
            inverter: f.inverter,
            meter: f.meter,
            policy: f.policy,
            circuit_schedule: f.circuit_schedule,
            plugs: f.plugs,
            events,
            source: path.to_path_buf(),
        })
    }

    /// The file's scheduled events as (time, event) pairs.
    pub fn scheduled_events(&self) -> Vec<(SimTime, HouseEvent)> {
        self.events.clone()
    }
}

fn check_window(w: &[f64; 2], what: &str) -> Result<(), String> {
    if w.iter().all(|h| h.is_finite() && (0.0..=24.0).contains(h)) {
        Ok(())
    } else {
        Err(format!(
            "`{what}` hours must be within 0..=24, found {:?}",
            w
        ))
    }
}

/// `[from, to)` in local hours; wraps past midnight when `from > to`.
fn in_window(h: f64, from: f64, to: f64) -> bool {
    if from <= to {
        h >= from && h < to
    } else {
        h >= from || h < to
    }
}

fn parse_start(date: &str, utc_offset_h: f64) -> Result<Calendar, String> {
    let bad = || format!("`start_date` must be a date `YYYY-MM-DD`, found `{date}`");
    let mut parts = date.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1900..=2200).contains(&y) {
        return Err(bad());
    }
    if !(utc_offset_h.is_finite() && (-14.0..=14.0).contains(&utc_offset_h)) {
        return Err(format!(
            "`utc_offset_h` must be within -14..=14, found {utc_offset_h}"
        ));
    }
    let local_midnight = days_from_civil(y, m, d) * 86_400;
    let epoch = local_midnight - (utc_offset_h * 3600.0).round() as i64;
    Ok(Calendar::new(epoch, utc_offset_h))
}

// ---------------------------------------------------------------------------
// The plant

/// A problem building a house from a valid-looking config.
#[derive(Debug, thiserror::Error)]
pub enum HouseError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The signal ids the house publishes (looked up once).
#[derive(Debug, Clone, Default)]
struct Ids {
    list: Vec<(SignalId, Sig)>,
}

/// Every signal the house publishes: name, unit, and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    PackVoltage,
    NetworkExport,
    PackCurrent,
    BatteryPower,
    Soc,
    SocMin,
    SocMax,
    CellMin,
    CellMax,
    PackTempMax,
    PackTempMin,
    Soh,
    BusVoltage,
    BusUnder,
    PvAvailable,
    PvPower,
    PvCurtailed,
    Poa,
    Outdoor,
    ChargerPower,
    InverterAc,
    InverterDc,
    Demand,
    Unserved,
    Import,
    Export,
    ImportKwh,
    ExportKwh,
    Tariff,
    MainsPresent,
    MainsVoltage,
    MainsFrequency,
    DcLoad,
    WiringLoss,
    LongFailures,
    ShortFailures,
    ImportT1Kwh,
    ImportT2Kwh,
    ExportT1Kwh,
    ExportT2Kwh,
    MeterVoltageL1,
    MeterCurrentL1,
    CircuitPower(usize),
    CircuitVoltage(usize),
    CircuitTripped(usize),
    SocketPower(usize),
    SocketPlugged(usize),
    SocketDeviceSoc(usize),
}

/// What a controller commands the plant to do (the same things the fixed
/// policy decides). Powers in W at the pack terminals; `None` leaves the
/// plant's configured default.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantCommands {
    pub battery_enabled: bool,
    pub battery_discharge_limit_w: f64,
    pub battery_charge_limit_w: f64,
    /// Droop setpoint of the assembly's converter, V.
    pub battery_setpoint_v: Option<f64>,
    pub charger_enabled: bool,
    pub charger_setpoint_v: Option<f64>,
    /// Whether the inverter runs at all (an islanded, grid-forming inverter
    /// serves whatever the AC loads draw; switching it off sheds them).
    pub inverter_enabled: bool,
    /// AC power the inverter is asked to deliver to the household.
    pub inverter_request_ac_w: f64,
    /// Whether the inverter may push power past the house's own load into
    /// the network (`None`: as its configuration starts it).
    pub inverter_export_enabled: Option<bool>,
    /// Cap on the PV converter's output, W.
    pub pv_cap_w: Option<f64>,
    /// Per circuit (bus order): supplied or switched off by the controller.
    pub circuits_on: Option<Vec<bool>>,
    /// Per USB-PD socket (bus order): supplied or off.
    pub sockets_on: Option<Vec<bool>>,
}

impl PlantCommands {
    /// What a house without the battery assembly does: battery off, the
    /// charger feeding the DC bus from the grid at its own setpoint, the
    /// inverter off, no PV cap, and each of its `circuits` circuits and
    /// `sockets` sockets supplied. (Naming every circuit and socket as on
    /// acts exactly as naming none: an unnamed one is supplied.)
    pub fn no_assembly(circuits: usize, sockets: usize) -> Self {
        PlantCommands {
            battery_enabled: false,
            battery_discharge_limit_w: 0.0,
            battery_charge_limit_w: 0.0,
            battery_setpoint_v: None,
            charger_enabled: true,
            charger_setpoint_v: None,
            inverter_enabled: false,
            inverter_request_ac_w: 0.0,
            inverter_export_enabled: None,
            pv_cap_w: None,
            circuits_on: Some(vec![true; circuits]),
            sockets_on: Some(vec![true; sockets]),
        }
    }
}

/// One household, stepped by the [`crate::engine::Engine`].
#[derive(Debug)]
pub struct House {
    cfg: HouseConfig,
    pack: HousePack,
    pack_out: PackOutput,
    bus: DcBus,
    inputs: BusInputs,
    bus_out: BusOutputs,
    pv: Option<PvPlant>,
    pv_step: Option<PvStep>,
    mains: Mains,
    mains_state: MainsState,
    demand: HouseholdDemand,
    demand_w: f64,
    inverter: Option<Inverter>,
    inverter_step: Option<InverterStep>,
    meter: SmartMeter,
    reading: Option<MeterReading>,
    last_net_w: f64,
    outdoor_c: f64,
    /// Per circuit: its daily on-windows (none = always on).
    circuit_windows: Vec<Vec<(f64, f64)>>,
    /// (socket, device, from_h, to_h) indices into the bus.
    plug_windows: Vec<(usize, usize, f64, f64)>,
    faults: Vec<Option<f64>>,
    /// Per socket: a plug state set at run time (`Some(None)`: empty),
    /// winning over the plug schedule.
    plug_overrides: Vec<Option<Option<usize>>>,
    /// Per device: held idle at run time.
    device_idle: Vec<bool>,
    /// Run-time events naming no circuit, socket or device of this house,
    /// or with a value out of range.
    ignored_events: u64,
    /// Each socket's configured power budget (restored when switched on).
    socket_budgets_w: Vec<f64>,
    /// Commands from a controller; `None` runs the fixed policy.
    external: Option<PlantCommands>,
    ids: Ids,
}

/// Derives independent sub-seeds from the house seed.
fn sub_seed(seed: u64, stream: u64) -> u64 {
    use rand::RngCore;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.next_u64()
}

/// The house's pack, of either cell model.
#[derive(Debug, Clone)]
enum HousePack {
    Ecm(Pack),
    Spme(SpmePack),
}

impl HousePack {
    fn output(&self) -> PackOutput {
        match self {
            HousePack::Ecm(p) => p.output(),
            HousePack::Spme(p) => p.output(),
        }
    }

    fn step_current(&mut self, current_a: f64, dt_s: f64) -> PackOutput {
        match self {
            HousePack::Ecm(p) => p.step_current(current_a, dt_s),
            HousePack::Spme(p) => p.step_current(current_a, dt_s),
        }
    }

    fn set_ambient_c(&mut self, t_c: f64) {
        match self {
            HousePack::Ecm(p) => p.set_ambient_c(t_c),
            HousePack::Spme(p) => p.set_ambient_c(t_c),
        }
    }
}

impl House {
    pub fn new(cfg: HouseConfig) -> Result<Self, HouseError> {
        let seed = cfg.seed;
        let pack = match &cfg.pack {
            BatteryPackParams::Ecm(p) => HousePack::Ecm(Pack::new(
                p,
                cfg.initial_soc,
                cfg.room_temperature_c,
                sub_seed(seed, 1),
            )),
            BatteryPackParams::Spme(p) => HousePack::Spme(
                SpmePack::new(
                    p,
                    cfg.initial_soc,
                    cfg.room_temperature_c,
                    sub_seed(seed, 1),
                )
                .map_err(|e| HouseError::Config(format!("SPMe pack: {e}")))?,
            ),
        };
        let pack_out = pack.output();
        let bus = DcBus::new(cfg.bus.clone()).map_err(HouseError::Config)?;
        let inputs = bus.default_inputs();
        let bus_out = bus.outputs().clone();
        let pv = match &cfg.pv {
            Some(p) => Some(
                PvPlant::new(p.clone(), sub_seed(seed, 2))
                    .map_err(|e| HouseError::Config(format!("PV: {e}")))?,
            ),
            None => None,
        };
        let grid_err = |e: crate::grid::ConfigError| HouseError::Config(e.to_string());
        let mains = Mains::new(cfg.mains.clone(), sub_seed(seed, 3)).map_err(grid_err)?;
        let demand = HouseholdDemand::new(cfg.demand.clone(), sub_seed(seed, 4), cfg.calendar)
            .map_err(grid_err)?;
        let inverter = cfg
            .inverter
            .clone()
            .map(Inverter::new)
            .transpose()
            .map_err(grid_err)?;
        let meter = SmartMeter::new(cfg.meter.clone(), cfg.calendar).map_err(grid_err)?;
        let mut circuit_windows = vec![Vec::new(); cfg.bus.circuits.len()];
        for w in &cfg.circuit_schedule {
            if let Some(c) = bus.circuit_index(&w.circuit) {
                circuit_windows[c].push((w.from_h, w.to_h));
            }
        }
        let plug_windows = cfg
            .plugs
            .iter()
            .filter_map(|w| {
                Some((
                    bus.socket_index(&w.socket)?,
                    bus.device_index(&w.device)?,
                    w.from_h,
                    w.to_h,
                ))
            })
            .collect();
        let n_circuits = cfg.bus.circuits.len();
        let socket_budgets_w = inputs.sockets.iter().map(|s| s.budget_w).collect();
        let mains_state = mains.state(SimTime::ZERO);
        let outdoor_c = cfg
            .environment
            .outdoor_c(cfg.calendar.local_hour(SimTime::ZERO));
        Ok(House {
            pack,
            pack_out,
            bus,
            inputs,
            bus_out,
            pv,
            pv_step: None,
            mains,
            mains_state,
            demand,
            demand_w: 0.0,
            inverter,
            inverter_step: None,
            meter,
            reading: None,
            last_net_w: 0.0,
            outdoor_c,
            circuit_windows,
            plug_windows,
            faults: vec![None; n_circuits],
            plug_overrides: vec![None; cfg.bus.circuits.iter().map(|c| c.usb_sockets.len()).sum()],
            device_idle: vec![false; cfg.bus.devices.len()],
            ignored_events: 0,
            socket_budgets_w,
            external: None,
            ids: Ids::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &HouseConfig {
        &self.cfg
    }

    /// Battery terminal power limits the policy grants this step (W).
    fn battery_limits(&self) -> (f64, f64) {
        let p = &self.cfg.policy;
        if !p.battery_enabled {
            return (0.0, 0.0);
        }
        let o = &self.pack_out;
        let lim = o.limits;
        let mut discharge = self.cfg.max_discharge_w;
        let mut charge = self.cfg.max_charge_w;
        // The reserve is kept for power cuts: in one, the battery may run
        // down to its cut-off.
        let floor = if self.mains_state.present {
            p.reserve_soc
        } else {
            0.02
        };
        if o.soc_mean <= floor || lim.contains(battery::LimitFlags::UNDER_VOLTAGE) {
            discharge = 0.0;
        }
        if o.soc_mean >= p.max_soc || lim.contains(battery::LimitFlags::OVER_VOLTAGE) {
            charge = 0.0;
        }
        (discharge, charge)
    }

    /// What the fixed simple policy would command now.
    fn policy_commands(&self, now: SimTime) -> PlantCommands {
        let cal = self.cfg.calendar;
        let hour = cal.local_hour(now);
        let policy = self.cfg.policy;
        let (discharge_w, charge_w) = self.battery_limits();
        let in_peak = in_window(hour, policy.peak_window_h[0], policy.peak_window_h[1]);
        let tariff = self.meter.tariff_at(now);
        let inverter_request_ac_w = if !self.mains_state.present || (in_peak && discharge_w > 0.0) {
            self.demand_w
        } else {
            0.0
        };
        let charger_boost = tariff == 1
            && policy.battery_enabled
            && self.pack_out.soc_mean < policy.offpeak_charge_to_soc
            && charge_w > 0.0;
        let charger_setpoint_v = match &self.cfg.bus.charger {
            Some(_) if charger_boost => Some(policy.charger_boost_setpoint_v),
            _ => None,
        };
        PlantCommands {
            battery_enabled: policy.battery_enabled,
            battery_discharge_limit_w: discharge_w,
            battery_charge_limit_w: charge_w,
            battery_setpoint_v: None,
            charger_enabled: true,
            charger_setpoint_v,
            inverter_enabled: true,
            inverter_request_ac_w,
            inverter_export_enabled: None,
            pv_cap_w: None,
            circuits_on: None,
            sockets_on: None,
        }
    }

    /// Commands from outside (a controller) replace the fixed policy from
    /// now on; `None` hands control back to the policy. Commands are clamped
    /// to the plant's own hard limits (the pack's power ratings).
    /// Run-time events that named no circuit, socket or device of this
    /// house, or carried a value out of range (and were ignored).
    pub fn ignored_events(&self) -> u64 {
        self.ignored_events
    }

    pub fn command(&mut self, commands: Option<PlantCommands>) {
        self.external = commands;
    }

    fn electrical_step(&mut self, now: SimTime, dt_s: f64) {
        let cal = self.cfg.calendar;
        let hour = cal.local_hour(now);

        // Mains and the household's AC demand.
        self.mains_state = self.mains.state_under_load(now, self.last_net_w);
        let mains = self.mains_state;
        self.demand_w = self.demand.step(now, dt_s);

        // The fixed policy, or the controller's commands.
        let cmd = match &self.external {
            Some(c) => c.clone(),
            None => self.policy_commands(now),
        };
        let clamp_w = |w: f64, max: f64| {
            if w.is_finite() {
                w.clamp(0.0, max)
            } else {
                0.0
            }
        };
        let discharge_w = clamp_w(cmd.battery_discharge_limit_w, self.cfg.max_discharge_w);
        let charge_w = clamp_w(cmd.battery_charge_limit_w, self.cfg.max_charge_w);
        let inverter_request = clamp_w(cmd.inverter_request_ac_w, f64::MAX);

        // Inverter (its DC side is a load on the bus).
        let pv_available_w = self.pv_step.as_ref().map_or(0.0, |s| s.p_available_w);
        let pv_w = match cmd.pv_cap_w {
            Some(cap) => pv_available_w.min(clamp_w(cap, f64::MAX)),
            None => pv_available_w,
        };
        let dc_available = discharge_w + pv_w;
        self.inverter_step = self.inverter.as_mut().map(|inv| {
            inv.set_enabled(cmd.inverter_enabled);
            if let Some(on) = cmd.inverter_export_enabled {
                inv.set_export_enabled(on);
            }
            inv.step(
                dt_s,
                InverterInput {
                    request_ac_w: inverter_request,
                    local_load_w: self.demand_w,
                    dc_available_w: dc_available,
                },
                mains,
            )
        });
        let inverter_dc_w = self.inverter_step.map_or(0.0, |s| s.dc_in_w);
        let inverter_ac_w = self.inverter_step.map_or(0.0, |s| s.ac_out_w);

        // Bus inputs.
        {
            let inp = &mut self.inputs;
            let bat = &mut inp.battery[0];
            bat.enabled = cmd.battery_enabled;
            bat.battery_discharge_limit_w = discharge_w;
            bat.battery_charge_limit_w = charge_w;
            if let Some(v) = cmd.battery_setpoint_v.filter(|v| v.is_finite()) {
                bat.setpoint_v = v;
            } else {
                bat.setpoint_v = self.cfg.bus.battery_converters[0].setpoint_v;
            }
            inp.pv.enabled = self.pv.is_some();
            inp.pv.available_w = pv_w;
            if let Some(ch) = &self.cfg.bus.charger {
                inp.charger.mains_present = mains.present;
                inp.charger.enabled = cmd.charger_enabled;
                inp.charger.setpoint_v = cmd
                    .charger_setpoint_v
                    .filter(|v| v.is_finite())
                    .unwrap_or(ch.setpoint_v);
            }
            for (c, circuit) in inp.circuits.iter_mut().enumerate() {
                // The household's routine says whether the load is in use;
                // the controller's switch says whether it is supplied.
                let windows = &self.circuit_windows[c];
                let in_use =
                    windows.is_empty() || windows.iter().any(|&(f, t)| in_window(hour, f, t));
                let supplied = cmd
                    .circuits_on
                    .as_ref()
                    .is_none_or(|on| on.get(c).copied().unwrap_or(true));
                // The controller switches the circuit's supply; the
                // household switches its lights and loads. A supplied
                // circuit with its lights off is live at the far end.
                circuit.switch_on = supplied;
                circuit.led_on.iter_mut().for_each(|on| *on = in_use);
                circuit.resistive_on.iter_mut().for_each(|on| *on = in_use);
                circuit
                    .constant_current_on
                    .iter_mut()
                    .for_each(|on| *on = in_use);
                circuit.fault_ohm = self.faults[c];
            }
            for s in inp.sockets.iter_mut() {
                s.device = None;
            }
            for d in inp.devices.iter_mut() {
                d.on = false;
            }
            for &(s, d, f, t) in &self.plug_windows {
                if self.plug_overrides.get(s).is_some_and(Option::is_some) {
                    continue;
                }
                if in_window(hour, f, t) {
                    inp.sockets[s].device = Some(d);
                    inp.devices[d].on = true;
                }
            }
            for (s, o) in self.plug_overrides.iter().enumerate() {
                if let Some(Some(d)) = *o {
                    if let (Some(sock), Some(dev)) =
                        (inp.sockets.get_mut(s), inp.devices.get_mut(d))
                    {
                        sock.device = Some(d);
                        dev.on = true;
                    }
                }
            }
            for (d, idle) in self.device_idle.iter().enumerate() {
                if *idle {
                    if let Some(dev) = inp.devices.get_mut(d) {
                        dev.on = false;
                    }
                }
            }
            for (k, s) in inp.sockets.iter_mut().enumerate() {
                let supplied = cmd
                    .sockets_on
                    .as_ref()
                    .is_none_or(|on| on.get(k).copied().unwrap_or(true));
                s.budget_w = if supplied {
                    self.socket_budgets_w[k]
                } else {
                    0.0
                };
            }
            inp.inverter_port.demand_w = inverter_dc_w;
        }
        self.bus_out.clone_from(self.bus.step(dt_s, &self.inputs));
        for c in self.inputs.circuits.iter_mut() {
            c.reset_breaker = false;
        }

        // Meter at the connection point.
        let charger_ac_w = self.bus_out.charger.input_power_w;
        let net = if mains.present {
            crate::grid::net_import_w(self.demand_w, charger_ac_w, inverter_ac_w)
        } else {
            0.0
        };
        self.last_net_w = net;
        self.reading = Some(self.meter.step(now, dt_s, net, mains));

        // Battery: the converter's battery-side power at the pack terminals.
        let p_bat = self
            .bus_out
            .battery
            .first()
            .map_or(0.0, |b| b.battery_power_w);
        let v_pack = self.pack_out.voltage_v.max(1.0);
        self.pack_out = self.pack.step_current(p_bat / v_pack, dt_s);
    }

    fn environment_step(&mut self, now: SimTime, dt_s: f64) {
        let cal = self.cfg.calendar;
        self.outdoor_c = self.cfg.environment.outdoor_c(cal.local_hour(now));
        self.pack.set_ambient_c(self.cfg.room_temperature_c);
        let outdoor = self.outdoor_c;
        if let Some(pv) = &mut self.pv {
            // Curtailment is the bus's business (the PV converter backs off
            // on its droop); the plant reports what is available.
            self.pv_step = Some(pv.step_at(&cal, now, dt_s, outdoor, None));
        }
    }

    fn value(&self, s: Sig) -> f64 {
        let b = &self.bus_out;
        let o = &self.pack_out;
        let r = self.reading.as_ref();
        let inv = self.inverter_step.as_ref();
        let flag = |x: bool| if x { 1.0 } else { 0.0 };
        match s {
            Sig::PackVoltage => o.voltage_v,
            Sig::PackCurrent => o.current_a,
            Sig::BatteryPower => o.power_w,
            Sig::Soc => o.soc_mean,
            Sig::SocMin => o.soc_min,
            Sig::SocMax => o.soc_max,
            Sig::CellMin => o.cell_voltage_min_v,
            Sig::CellMax => o.cell_voltage_max_v,
            Sig::PackTempMax => o.temperature_max_c,
            Sig::PackTempMin => o.temperature_min_c,
            Sig::Soh => o.soh,
            Sig::BusVoltage => b.v_bus,
            Sig::BusUnder => flag(b.undervoltage),
            Sig::PvAvailable => self.pv_step.as_ref().map_or(0.0, |p| p.p_available_w),
            Sig::PvPower => b.pv.bus_power_w,
            Sig::PvCurtailed => b.pv.curtailed_w,
            Sig::Poa => self.pv_step.as_ref().map_or(0.0, |p| p.poa_w_m2),
            Sig::Outdoor => self.outdoor_c,
            Sig::ChargerPower => b.charger.input_power_w,
            Sig::InverterAc => inv.map_or(0.0, |i| i.ac_out_w),
            Sig::NetworkExport => {
                let into_house_w = self.demand_w + b.charger.input_power_w;
                (inv.map_or(0.0, |i| i.ac_out_w) - into_house_w).max(0.0)
            }
            Sig::InverterDc => inv.map_or(0.0, |i| i.dc_in_w),
            Sig::Demand => self.demand_w,
            Sig::Unserved => {
                if self.mains_state.present {
                    0.0
                } else {
                    (self.demand_w - inv.map_or(0.0, |i| i.ac_out_w)).max(0.0)
                }
            }
            Sig::Import => r.map_or(0.0, |r| r.import_w),
            Sig::Export => r.map_or(0.0, |r| r.export_w),
            Sig::ImportKwh => r.map_or(0.0, |r| r.import_total_kwh()),
            Sig::ExportKwh => r.map_or(0.0, |r| r.export_total_kwh()),
            Sig::Tariff => r.map_or(0.0, |r| f64::from(r.tariff)),
            Sig::MainsPresent => flag(self.mains_state.present),
            Sig::MainsVoltage => self.mains_state.voltage_v,
            Sig::MainsFrequency => self.mains_state.frequency_hz,
            Sig::DcLoad => b.circuits.iter().map(|c| c.power_w).sum(),
            Sig::WiringLoss => b.circuits.iter().map(|c| c.wiring_loss_w).sum(),
            Sig::LongFailures => r.map_or(0.0, |r| f64::from(r.long_power_failures)),
            Sig::ShortFailures => r.map_or(0.0, |r| f64::from(r.short_power_failures)),
            Sig::ImportT1Kwh => r.map_or(0.0, |r| r.import_t1_kwh),
            Sig::ImportT2Kwh => r.map_or(0.0, |r| r.import_t2_kwh),
            Sig::ExportT1Kwh => r.map_or(0.0, |r| r.export_t1_kwh),
            Sig::ExportT2Kwh => r.map_or(0.0, |r| r.export_t2_kwh),
            Sig::MeterVoltageL1 => r.map_or(0.0, |r| r.voltage_v[0]),
            Sig::MeterCurrentL1 => r.map_or(0.0, |r| r.current_a[0]),
            Sig::CircuitPower(c) => b.circuits[c].power_w,
            Sig::CircuitVoltage(c) => b.circuits[c].v_load,
            Sig::CircuitTripped(c) => flag(b.circuits[c].breaker_tripped.is_some()),
            Sig::SocketPower(s) => b.sockets[s].input_power_w,
            Sig::SocketPlugged(s) => flag(
                self.inputs
                    .sockets
                    .get(s)
                    .is_some_and(|k| k.device.is_some()),
            ),
            // What a USB-PD 3.0 sink reports in its Battery_Status message:
            // the plugged device's charge, 0..=1; −1 when nothing with a
            // battery is plugged in (signals stay finite).
            Sig::SocketDeviceSoc(s) => self
                .inputs
                .sockets
                .get(s)
                .and_then(|k| k.device)
                .map(|d| self.bus.device(d))
                .filter(|d| d.config.has_battery())
                .map_or(-1.0, |d| d.soc()),
        }
    }
}

/// `lighting-upstairs` → `lighting_upstairs`: signal names are identifiers.
pub fn signal_slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The signals a house always publishes, with units (per-circuit and
/// per-socket signals are added by name).
const SIGNALS: &[(&str, Unit, Sig)] = &[
    ("pack_voltage_v", Unit::Volt, Sig::PackVoltage),
    ("pack_current_a", Unit::Ampere, Sig::PackCurrent),
    ("battery_power_w", Unit::Watt, Sig::BatteryPower),
    ("soc", Unit::Fraction, Sig::Soc),
    ("soc_min", Unit::Fraction, Sig::SocMin),
    ("soc_max", Unit::Fraction, Sig::SocMax),
    ("cell_voltage_min_v", Unit::Volt, Sig::CellMin),
    ("cell_voltage_max_v", Unit::Volt, Sig::CellMax),
    ("pack_temperature_max_c", Unit::Celsius, Sig::PackTempMax),
    ("soh", Unit::Fraction, Sig::Soh),
    ("bus_voltage_v", Unit::Volt, Sig::BusVoltage),
    ("bus_undervoltage", Unit::Bool, Sig::BusUnder),
    ("pv_available_w", Unit::Watt, Sig::PvAvailable),
    ("pv_power_w", Unit::Watt, Sig::PvPower),
    ("pv_curtailed_w", Unit::Watt, Sig::PvCurtailed),
    ("poa_irradiance_w_m2", Unit::WattPerSquareMetre, Sig::Poa),
    ("outdoor_temperature_c", Unit::Celsius, Sig::Outdoor),
    ("charger_ac_power_w", Unit::Watt, Sig::ChargerPower),
    ("inverter_ac_power_w", Unit::Watt, Sig::InverterAc),
    ("inverter_dc_power_w", Unit::Watt, Sig::InverterDc),
    ("household_ac_demand_w", Unit::Watt, Sig::Demand),
    ("ac_unserved_w", Unit::Watt, Sig::Unserved),
    ("grid_import_w", Unit::Watt, Sig::Import),
    ("grid_export_w", Unit::Watt, Sig::Export),
    ("grid_import_kwh", Unit::KilowattHour, Sig::ImportKwh),
    ("grid_export_kwh", Unit::KilowattHour, Sig::ExportKwh),
    ("tariff", Unit::Count, Sig::Tariff),
    ("mains_present", Unit::Bool, Sig::MainsPresent),
    ("mains_voltage_v", Unit::Volt, Sig::MainsVoltage),
    ("mains_frequency_hz", Unit::Hertz, Sig::MainsFrequency),
    ("dc_load_power_w", Unit::Watt, Sig::DcLoad),
    ("wiring_loss_w", Unit::Watt, Sig::WiringLoss),
    ("long_power_failures", Unit::Count, Sig::LongFailures),
    ("pack_temperature_min_c", Unit::Celsius, Sig::PackTempMin),
    // The meter's own registers and readings, as its P1 port reports them
    // (per-tariff energy, short failures, L1 voltage and current).
    ("short_power_failures", Unit::Count, Sig::ShortFailures),
    ("grid_import_t1_kwh", Unit::KilowattHour, Sig::ImportT1Kwh),
    ("grid_import_t2_kwh", Unit::KilowattHour, Sig::ImportT2Kwh),
    ("grid_export_t1_kwh", Unit::KilowattHour, Sig::ExportT1Kwh),
    ("grid_export_t2_kwh", Unit::KilowattHour, Sig::ExportT2Kwh),
    ("meter_voltage_l1_v", Unit::Volt, Sig::MeterVoltageL1),
    ("meter_current_l1_a", Unit::Ampere, Sig::MeterCurrentL1),
    // What flows out of the house into the distribution network at the
    // service cable, measured where it flows: the meter reads zero with
    // the mains gone, but an inverter that has not disconnected still
    // feeds the dead network.
    ("network_export_w", Unit::Watt, Sig::NetworkExport),
];

impl Plant for House {
    type Event = HouseEvent;

    fn tasks(&self) -> Vec<TaskSpec> {
        vec![
            TaskSpec {
                name: "electrical",
                period_us: self.cfg.electrical_step_us,
            },
            TaskSpec {
                name: "environment",
                period_us: self.cfg.environment_step_us,
            },
        ]
    }

    fn register_signals(&mut self, signals: &mut SignalRegistry) -> Result<(), EngineError> {
        let mut list = Vec::new();
        for (name, unit, sig) in SIGNALS {
            list.push((signals.register(name, *unit)?, *sig));
        }
        for (c, circuit) in self.cfg.bus.circuits.iter().enumerate() {
            let n = signal_slug(&circuit.name);
            list.push((
                signals.register(&format!("circuit_{n}_power_w"), Unit::Watt)?,
                Sig::CircuitPower(c),
            ));
            list.push((
                signals.register(&format!("circuit_{n}_voltage_v"), Unit::Volt)?,
                Sig::CircuitVoltage(c),
            ));
            list.push((
                signals.register(&format!("circuit_{n}_tripped"), Unit::Bool)?,
                Sig::CircuitTripped(c),
            ));
        }
        let sockets = self
            .cfg
            .bus
            .circuits
            .iter()
            .flat_map(|c| c.usb_sockets.iter().map(|s| s.name.clone()))
            .collect::<Vec<_>>();
        for (s, name) in sockets.iter().enumerate() {
            list.push((
                signals.register(&format!("socket_{}_power_w", signal_slug(name)), Unit::Watt)?,
                Sig::SocketPower(s),
            ));
            // USB-C plug detection (the CC line), whether or not the
            // socket is supplied.
            list.push((
                signals.register(&format!("socket_{}_plugged", signal_slug(name)), Unit::Bool)?,
                Sig::SocketPlugged(s),
            ));
            list.push((
                signals.register(
                    &format!("socket_{}_device_soc", signal_slug(name)),
                    Unit::Fraction,
                )?,
                Sig::SocketDeviceSoc(s),
            ));
        }
        self.ids = Ids { list };
        Ok(())
    }

    fn apply_event(&mut self, now: SimTime, event: HouseEvent) {
        match event {
            HouseEvent::PowerCut { duration_h } => {
                // Validated positive at load; a run-time event with a bad
                // duration is ignored rather than scheduled.
                let _ = self.mains.schedule_outage(now, duration_h * 3600.0);
            }
            HouseEvent::ShortCircuit { circuit, fault_ohm } => {
                if let Some(c) = self.bus.circuit_index(&circuit) {
                    self.faults[c] = Some(fault_ohm);
                }
            }
            HouseEvent::ClearFault { circuit } => {
                if let Some(c) = self.bus.circuit_index(&circuit) {
                    self.faults[c] = None;
                }
            }
            HouseEvent::ResetBreaker { circuit } => {
                if let Some(c) = self.bus.circuit_index(&circuit) {
                    self.inputs.circuits[c].reset_breaker = true;
                }
            }
            HouseEvent::MainsReturn => self.mains.restore_at(now),
            HouseEvent::Tariff { tariff } => {
                if self.meter.set_tariff_override(tariff).is_err() {
                    self.ignored_events += 1;
                }
            }
            HouseEvent::Plug { socket, device } => {
                let s = self.bus.socket_index(&socket);
                let d = device.as_deref().map(|d| self.bus.device_index(d));
                match (s, d) {
                    (Some(s), None) => self.plug_overrides[s] = Some(None),
                    (Some(s), Some(Some(d))) => {
                        // A device is in one socket at a time.
                        for o in self.plug_overrides.iter_mut() {
                            if *o == Some(Some(d)) {
                                *o = Some(None);
                            }
                        }
                        self.plug_overrides[s] = Some(Some(d));
                    }
                    _ => self.ignored_events += 1,
                }
            }
            HouseEvent::DeviceIdle { device, idle } => match self.bus.device_index(&device) {
                Some(d) => self.device_idle[d] = idle,
                None => self.ignored_events += 1,
            },
            HouseEvent::FollowPlugSchedule { socket } => match self.bus.socket_index(&socket) {
                Some(s) => self.plug_overrides[s] = None,
                None => self.ignored_events += 1,
            },
        }
    }

    fn step(&mut self, task: TaskId, now: SimTime, dt_s: f64) {
        match task.0 {
            0 => self.electrical_step(now, dt_s),
            _ => self.environment_step(now, dt_s),
        }
    }

    fn publish(&self, signals: &mut SignalRegistry) {
        for &(id, sig) in &self.ids.list {
            signals.set(id, self.value(sig));
        }
    }
}

/// The signals `maslow twin house` writes by default, in column order.
pub const DEFAULT_RECORDED: &[&str] = &[
    "soc",
    "pack_voltage_v",
    "pack_current_a",
    "battery_power_w",
    "cell_voltage_min_v",
    "cell_voltage_max_v",
    "pack_temperature_max_c",
    "bus_voltage_v",
    "pv_available_w",
    "pv_power_w",
    "pv_curtailed_w",
    "poa_irradiance_w_m2",
    "dc_load_power_w",
    "household_ac_demand_w",
    "inverter_ac_power_w",
    "charger_ac_power_w",
    "grid_import_w",
    "grid_export_w",
    "grid_import_kwh",
    "grid_export_kwh",
    "tariff",
    "mains_present",
    "ac_unserved_w",
    "network_export_w",
];
