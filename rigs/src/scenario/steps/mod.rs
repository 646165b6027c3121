//! The step library: `Given` configures the house and its assembly,
//! `When` moves time and makes things happen, `Then` judges measured
//! signals. The glossary with one example per step is
//! `features/README.md`; a test checks that every step here is in it.
//!
//! Moments are `HH:MM` local time on the scenario's first day, or `HH:MM
//! on day N` (day 1 is the first); t = 0 is its local midnight. Steps that
//! set a daily schedule take a bare `HH:MM`. `Then` steps read only the
//! probe's capture, the controller's heartbeat as received on the bus, and
//! the answers and reports the remote server received.

use std::path::Path;

use cucumber::{given, then, when};
use serde::Deserialize;
use toml::Value;
use twin::house::{signal_slug, HouseEvent};
use twin::time::SimTime;

use firmware::demand::{DemandSignal, SignalKind, SignalSource};
use firmware::Millis;

use crate::instrument::TimeSeries;
use crate::rig::{LinkFaults, Reply, UplinkMessage};
use crate::scenario::setup::{
    array, entry_names, named_entry, scale_numbers, section, typed_view, Setup,
};
use crate::scenario::world::{Action, MaslowWorld};
use reasons::{because_clause, ExpectedAck};

pub mod fleet;
mod functions;
mod protection;
mod reasons;

pub(crate) type StepResult = Result<(), String>;

// ------------------------------------------------------------------ helpers

/// Seconds in a day.
const DAY_S: f64 = 86_400.0;

/// A moment, `HH:MM` or `HH:MM on day N` (day 1, the default, is the
/// scenario's first day) → seconds after the first day's midnight.
pub fn clock_s(at: &str) -> Result<f64, String> {
    let (hhmm, day) = match at.split_once(" on day ") {
        Some((hhmm, n)) => (hhmm, day_number(at, n)?),
        None => (at, 1),
    };
    Ok(f64::from(day - 1) * DAY_S + time_of_day_s(hhmm)?)
}

/// The `N` of `on day N`: 1 is the scenario's first day.
fn day_number(at: &str, n: &str) -> Result<u32, String> {
    match n.parse::<u32>() {
        Ok(d) if (1..=366).contains(&d) => Ok(d),
        _ => Err(format!(
            "`{at}`: days are numbered from 1 (the scenario's first day) to 366"
        )),
    }
}

/// `HH:MM` → seconds after midnight.
fn time_of_day_s(hhmm: &str) -> Result<f64, String> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| format!("`{hhmm}` is not a time of day (HH:MM)"))?;
    let h: u32 = h.parse().map_err(|_| format!("`{hhmm}`: bad hour"))?;
    let m: u32 = m.parse().map_err(|_| format!("`{hhmm}`: bad minute"))?;
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        return Err(format!("`{hhmm}` is not a time of day"));
    }
    Ok(f64::from(h * 3600 + m * 60))
}

pub use reports::clock::clock;

pub(crate) fn duration_s(n: f64, unit: &str) -> Result<f64, String> {
    let k = match unit.trim_end_matches('s') {
        "millisecond" | "m" => 1e-3,
        "second" => 1.0,
        "minute" => 60.0,
        "hour" => 3600.0,
        other => return Err(format!("`{other}` is not a unit of time")),
    };
    Ok(n * k)
}

pub(crate) fn num(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("`{s}` is not a number"))
}

/// A measured quantity in the domain's words → (signal, scale to the
/// step's unit, unit).
pub fn quantity(world: &MaslowWorld, words: &str) -> Result<(String, f64, &'static str), String> {
    let w = words.trim().trim_start_matches("the ");
    let fixed = match w {
        "state of charge" => Some(("soc", 100.0, "%")),
        "bus voltage" => Some(("bus_voltage_v", 1.0, "V")),
        "grid import" => Some(("grid_import_w", 1.0, "W")),
        "grid export" => Some(("grid_export_w", 1.0, "W")),
        "export into the network" => Some(("network_export_w", 1.0, "W")),
        "battery power" => Some(("battery_power_w", 1.0, "W")),
        "pack current" => Some(("pack_current_a", 1.0, "A")),
        "pack voltage" => Some(("pack_voltage_v", 1.0, "V")),
        "highest cell voltage" => Some(("cell_voltage_max_v", 1.0, "V")),
        "lowest cell voltage" => Some(("cell_voltage_min_v", 1.0, "V")),
        "pack temperature" => Some(("pack_temperature_max_c", 1.0, "°C")),
        "PV power" => Some(("pv_power_w", 1.0, "W")),
        "PV curtailment" => Some(("pv_curtailed_w", 1.0, "W")),
        "DC load" => Some(("dc_load_power_w", 1.0, "W")),
        "inverter output" => Some(("inverter_ac_power_w", 1.0, "W")),
        "charger input" => Some(("charger_ac_power_w", 1.0, "W")),
        _ => None,
    };
    if let Some((s, k, u)) = fixed {
        return Ok((s.to_owned(), k, u));
    }
    if let Some(c) = w.strip_suffix(" circuit power") {
        world.circuit_index(c)?;
        return Ok((format!("circuit_{}_power_w", signal_slug(c)), 1.0, "W"));
    }
    if let Some(c) = w.strip_suffix(" circuit voltage") {
        world.circuit_index(c)?;
        return Ok((format!("circuit_{}_voltage_v", signal_slug(c)), 1.0, "V"));
    }
    if let Some(s) = w.strip_suffix(" socket power") {
        return Ok((format!("socket_{}_power_w", signal_slug(s)), 1.0, "W"));
    }
    // A signal by its own name (a probe signal, or a bench instrument's
    // mapped signal), in its own unit.
    if world.capture.contains_key(w) {
        return Ok((w.to_owned(), 1.0, "raw"));
    }
    Err(format!(
        "`{words}` is not a quantity the steps know (features/README.md lists them: the state of charge, the bus voltage, grid import, grid export, the battery power, the pack current, the PV power, the <name> circuit power, ...)"
    ))
}

/// A value with its unit, converted to the quantity's unit.
pub(crate) fn in_unit(v: f64, unit: &str, want: &str) -> Result<f64, String> {
    if want == "raw" {
        // A signal named directly: compared in its own unit.
        return Ok(v);
    }
    let (k, base) = match unit {
        "kW" => (1000.0, "W"),
        "kWh" => (1.0, "kWh"),
        "mV" => (1e-3, "V"),
        "mA" => (1e-3, "A"),
        u => (1.0, u),
    };
    if base != want && !(base == "C" && want == "°C") {
        return Err(format!(
            "`{unit}` is not a unit of this quantity (it is in {want})"
        ));
    }
    Ok(v * k)
}

impl MaslowWorld {
    /// Index of a circuit by name, from the house configuration.
    pub fn circuit_index(&self, name: &str) -> Result<usize, String> {
        self.house()?.circuit_index(name)
    }

    /// The window a `Then` step judges: `until HH:MM`, `for the whole cut`,
    /// `from HH:MM to HH:MM`, or (none) the whole scenario so far.
    pub(crate) fn window(&self, words: &str) -> Result<(f64, f64), String> {
        let now = self.now_s();
        let w = words.trim();
        if w.is_empty() {
            return Ok((0.0, now));
        }
        if w == "for the whole cut" || w == "during the cut" {
            let (a, b) = self
                .cut
                .ok_or("there was no power cut in this scenario to judge")?;
            return Ok((a, b.unwrap_or(now)));
        }
        if let Some(rest) = w.strip_prefix("from ") {
            let (a, b) = rest
                .split_once(" to ")
                .ok_or_else(|| format!("`{w}`: expected `from HH:MM to HH:MM`"))?;
            return Ok((clock_s(a)?, clock_s(b)?));
        }
        if let Some(rest) = w.strip_prefix("until ") {
            return Ok((self.last_event_s.unwrap_or(0.0), clock_s(rest)?));
        }
        if w == "since then" {
            return Ok((self.last_event_s.unwrap_or(0.0), now));
        }
        Err(format!("`{w}` is not a window the steps know"))
    }

    pub(crate) fn see_also(&self) -> String {
        match self.write_capture() {
            Some(p) => format!(" (measured signals: {})", p.display()),
            None => String::new(),
        }
    }

    pub(crate) fn check_window_reached(&self, to: f64) -> StepResult {
        if to > self.now_s() + 1e-6 {
            return Err(format!(
                "the window ends at {} but the scenario has only run to {}: let time pass first",
                clock(to),
                clock(self.now_s())
            ));
        }
        Ok(())
    }
}

pub(crate) fn samples(s: &TimeSeries, from: f64, to: f64) -> Vec<(f64, f64)> {
    s.window(from, to).collect()
}

// -------------------------------------------------------------------- Given

#[given(
    regex = r"^a terrace house with an? ([\d.]+) kWh (LFP|NMC) battery assembly at ([\d.]+)% charge$"
)]
fn terrace_house(
    w: &mut MaslowWorld,
    kwh: String,
    chemistry: String,
    soc_pct: String,
) -> StepResult {
    let kwh = num(&kwh)?;
    let soc = num(&soc_pct)? / 100.0;
    if !(0.0..=1.0).contains(&soc) {
        return Err(format!("charge {soc_pct}% is not within 0..100 %"));
    }
    let (capacity_wh, scale) = if chemistry == "NMC" {
        nmc_pack(w, kwh)?
    } else {
        // The LFP pack is built of 16s strings of 100 Ah cells (5.12 kWh each).
        let strings = (kwh / 5.12).round();
        if !(1.0..=8.0).contains(&strings) || (strings * 5.12 - kwh).abs() > 0.6 {
            return Err(format!(
                "{kwh} kWh: the LFP assembly comes in 5.12 kWh strings (5, 10, 15 ... 40 kWh)"
            ));
        }
        let n = strings as i64;
        w.setup_mut()?
            .pack
            .insert("parallel".into(), Value::Integer(n));
        (5120.0 * n as f64, n as f64)
    };
    let s = w.setup_mut()?;
    let battery = section(&mut s.house, "battery");
    battery.insert("initial_soc".into(), Value::Float(soc));
    let assembly = section(&mut s.controller, "assembly");
    assembly.insert("initial_soc".into(), Value::Float(soc));
    assembly.insert("usable_capacity_wh".into(), Value::Float(capacity_wh));
    if scale > 1.0 {
        if let Some(conv) = s
            .house
            .get_mut("bus")
            .and_then(|b| b.get_mut("battery_converters"))
            .and_then(Value::as_array_mut)
            .and_then(|a| a.first_mut())
            .and_then(Value::as_table_mut)
        {
            scale_numbers(
                conv,
                &[("discharge_limit_a", scale), ("charge_limit_a", scale)],
            );
        }
    }
    Ok(())
}

/// The NMC cell's controller characterisation, beside the rig's controller
/// configuration.
const NMC_CHEMISTRY: &str = "chemistry/nmc811_21700_5ah.toml";

/// Cells in series in the NMC pack.
const NMC_SERIES: i64 = 13;

/// What building a pack takes from a cell's controller characterisation
/// (a `chemistry/*.toml` file), in the file's own numbers.
#[derive(Deserialize)]
struct CellCharacterisation {
    nominal_cell_voltage_v: f64,
    estimation: CellEstimation,
    protection: CellProtection,
}

#[derive(Deserialize)]
struct CellEstimation {
    nominal_capacity_ah: f64,
}

/// The cell's continuous current limits, A (one the file does not give
/// leaves the assembly's power limit as the rig's configuration says).
#[derive(Deserialize)]
struct CellProtection {
    max_charge_current_a: Option<f64>,
    max_discharge_current_a: Option<f64>,
}

/// The assembly's power limits at the pack terminals as the controller
/// configuration writes them, W (the firmware reads them as `f32`; a pack
/// is built from the file's own numbers).
#[derive(Deserialize)]
struct AssemblyPowerLimits {
    assembly: PowerLimits,
}

#[derive(Deserialize)]
struct PowerLimits {
    max_charge_w: f64,
    max_discharge_w: f64,
}

/// Builds the NMC pack (13 series 21700 5 Ah cells, as many in parallel as
/// the energy asks) and the controller's estimation and protection for it;
/// returns the nominal energy (Wh) and the converter scale against one
/// 5.12 kWh LFP string.
fn nmc_pack(w: &mut MaslowWorld, kwh: f64) -> Result<(f64, f64), String> {
    let s = w.setup_mut()?;
    let chemistry = s.controller_sibling(NMC_CHEMISTRY)?;
    let cell: CellCharacterisation = typed_view(&chemistry, Path::new(NMC_CHEMISTRY))?;
    let cell_ah = cell.estimation.nominal_capacity_ah;
    let group_wh = NMC_SERIES as f64 * cell.nominal_cell_voltage_v * cell_ah;
    let parallel = (kwh * 1000.0 / group_wh).round();
    if !(2.0..=200.0).contains(&parallel) {
        return Err(format!(
            "{kwh} kWh: an NMC assembly of 13s {cell_ah} Ah cells is built from {:.2} to {:.1} kWh",
            2.0 * group_wh / 1000.0,
            200.0 * group_wh / 1000.0
        ));
    }
    let m = parallel;
    s.use_sibling_pack("nmc_pack.toml")?;
    s.pack.insert("series".into(), Value::Integer(NMC_SERIES));
    s.pack.insert("parallel".into(), Value::Integer(m as i64));
    s.pack.insert(
        "name".into(),
        Value::String(format!(
            "NMC 13s{}p {:.2} kWh",
            m as i64,
            m * group_wh / 1000.0
        )),
    );
    nmc_controller(s, &chemistry, &cell, m)?;
    let wh = m * group_wh;
    Ok((wh, (wh / 5120.0).max(1.0)))
}

/// The controller's estimation and protection for `m` NMC cells in
/// parallel: the one-cell characterisation scaled to the pack (capacity and
/// currents × parallel, resistances ÷ parallel, capacitances × parallel),
/// and the assembly's power limits, the rig's or the cells', the lower.
fn nmc_controller(
    s: &mut Setup,
    chemistry: &toml::Table,
    cell: &CellCharacterisation,
    m: f64,
) -> StepResult {
    // Both tables are there: `cell` was read from them.
    let table = |name: &str| {
        chemistry
            .get(name)
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default()
    };
    let mut estimation = table("estimation");
    scale_numbers(
        &mut estimation,
        &[
            ("nominal_capacity_ah", m),
            ("r0_ohm", 1.0 / m),
            ("r1_ohm", 1.0 / m),
            ("r2_ohm", 1.0 / m),
            ("c1_f", m),
            ("c2_f", m),
            ("rest_current_a", m),
            ("resistance_step_min_a", m),
            ("plausible_current_max_a", m),
        ],
    );
    estimation.insert("series_cells".into(), Value::Integer(NMC_SERIES));
    let mut protection = table("protection");
    scale_numbers(
        &mut protection,
        &[("max_charge_current_a", m), ("max_discharge_current_a", m)],
    );
    for key in ["charge_over_current", "discharge_over_current"] {
        if let Some(Value::Table(limit)) = protection.get_mut(key) {
            scale_numbers(limit, &[("threshold", m), ("release", m)]);
        }
    }
    // Keep what the rig's controller file says of deadlines and the rest.
    let base_protection = section(&mut s.controller, "protection");
    for (k, v) in protection {
        base_protection.insert(k, v);
    }
    s.controller
        .insert("estimation".into(), Value::Table(estimation));
    let rig = s.controller_view::<AssemblyPowerLimits>()?.assembly;
    let pack_v = NMC_SERIES as f64 * cell.nominal_cell_voltage_v;
    let assembly = section(&mut s.controller, "assembly");
    for (key, rig_w, cell_a) in [
        (
            "max_charge_w",
            rig.max_charge_w,
            cell.protection.max_charge_current_a,
        ),
        (
            "max_discharge_w",
            rig.max_discharge_w,
            cell.protection.max_discharge_current_a,
        ),
    ] {
        if let Some(cell_a) = cell_a {
            assembly.insert(key.into(), Value::Float(rig_w.min(cell_a * m * pack_v)));
        }
    }
    Ok(())
}

#[given(
    regex = r"^the household is (a family|a single occupant|a retired couple|working from home)$"
)]
fn household(w: &mut MaslowWorld, who: String) -> StepResult {
    let archetype = match who.as_str() {
        "a family" => "family",
        "a single occupant" => "single_occupant",
        "a retired couple" => "retired_couple",
        _ => "home_office",
    };
    let s = w.setup_mut()?;
    section(&mut s.house, "demand").insert("archetype".into(), Value::String(archetype.into()));
    Ok(())
}

fn resilience_circuit<'a>(
    w: &'a mut MaslowWorld,
    name: &str,
) -> Result<&'a mut toml::Table, String> {
    let s = w.setup_mut()?;
    let list = array(section(&mut s.controller, "resilience"), "circuits");
    let names = entry_names(list).join(", ");
    named_entry(list, name)
        .ok_or_else(|| format!("the controller has no `{name}` circuit (it has: {names})"))
}

#[given(regex = r"^the (\S+) circuit is (essential|not essential)$")]
fn circuit_essential(w: &mut MaslowWorld, name: String, which: String) -> StepResult {
    let c = resilience_circuit(w, &name)?;
    c.insert("essential".into(), Value::Boolean(which == "essential"));
    if which == "essential" {
        c.entry("min_runtime_h").or_insert(Value::Float(6.0));
    } else {
        c.remove("min_runtime_h");
    }
    Ok(())
}

#[given(regex = r"^the (\S+) circuit has priority (\d+)$")]
fn circuit_priority(w: &mut MaslowWorld, name: String, priority: i64) -> StepResult {
    resilience_circuit(w, &name)?.insert("priority".into(), Value::Integer(priority));
    Ok(())
}

fn minutes(hhmm: &str) -> Result<i64, String> {
    Ok((clock_s(hhmm)? / 60.0) as i64)
}

fn window_table(from: &str, to: &str) -> Result<toml::Table, String> {
    let mut t = toml::Table::new();
    t.insert("start_min".into(), Value::Integer(minutes(from)?));
    t.insert("end_min".into(), Value::Integer(minutes(to)?));
    Ok(t)
}

#[given(regex = r"^the off-peak tariff runs from (\d\d:\d\d) to (\d\d:\d\d)$")]
fn off_peak(w: &mut MaslowWorld, from: String, to: String) -> StepResult {
    let t = window_table(&from, &to)?;
    let (fh, th) = (clock_s(&from)? / 3600.0, clock_s(&to)? / 3600.0);
    let s = w.setup_mut()?;
    section(&mut s.controller, "scheduling")
        .insert("off_peak".into(), Value::Array(vec![Value::Table(t)]));
    let tariff = section(section(&mut s.house, "meter"), "tariff");
    let mut p = toml::Table::new();
    p.insert("days".into(), Value::String("all".into()));
    p.insert("from_h".into(), Value::Float(fh));
    p.insert("to_h".into(), Value::Float(th));
    p.insert("tariff".into(), Value::Integer(1));
    tariff.insert("periods".into(), Value::Array(vec![Value::Table(p)]));
    tariff.insert("default_tariff".into(), Value::Integer(2));
    Ok(())
}

#[given(regex = r"^the evening peak runs from (\d\d:\d\d) to (\d\d:\d\d)$")]
fn peak_window(w: &mut MaslowWorld, from: String, to: String) -> StepResult {
    let t = window_table(&from, &to)?;
    let s = w.setup_mut()?;
    section(&mut s.controller, "scheduling").insert("peak".into(), Value::Table(t.clone()));
    let mut pw = t;
    pw.insert("days".into(), Value::Integer(127));
    section(&mut s.controller, "peak")
        .insert("windows".into(), Value::Array(vec![Value::Table(pw)]));
    section(&mut s.house, "policy").insert(
        "peak_window_h".into(),
        Value::Array(vec![
            Value::Float(clock_s(&from)? / 3600.0),
            Value::Float(clock_s(&to)? / 3600.0),
        ]),
    );
    Ok(())
}

#[given(regex = r"^the assembly assures a peak reduction of (\d+) W$")]
fn assured_reduction(w: &mut MaslowWorld, watts: f64) -> StepResult {
    let s = w.setup_mut()?;
    section(&mut s.controller, "peak").insert("assured_reduction_w".into(), Value::Float(watts));
    Ok(())
}

#[given(regex = r"^the roof has ([\d.]+) kWp of PV$")]
fn pv_size(w: &mut MaslowWorld, kwp: String) -> StepResult {
    let kwp = num(&kwp)?;
    let s = w.setup_mut()?;
    let pv =
        s.pv.as_mut()
            .ok_or("this house has no PV array to size (its house file has no [pv])")?;
    // 400 W modules, 4 in series per string.
    let strings = (kwp / 1.6).round();
    if !(1.0..=6.0).contains(&strings) {
        return Err(format!(
            "{kwp} kWp: the roof takes 1 to 6 strings of 4 × 400 W modules (1.6 to 9.6 kWp)"
        ));
    }
    section(pv, "array").insert("strings".into(), Value::Integer(strings as i64));
    section(pv, "converter").insert(
        "rated_output_w".into(),
        Value::Float((kwp * 1000.0).max(3000.0)),
    );
    Ok(())
}

#[given(regex = r"^there is no PV$")]
fn no_pv(w: &mut MaslowWorld) -> StepResult {
    w.setup_mut()?.remove_pv();
    Ok(())
}

#[given(regex = r"^the weather is (clear|overcast|cloudy)$")]
fn weather(w: &mut MaslowWorld, kind: String) -> StepResult {
    let s = w.setup_mut()?;
    let pv = s.pv.as_mut().ok_or("this house has no PV array")?;
    let mut t = toml::Table::new();
    match kind.as_str() {
        "clear" => {
            t.insert("mode".into(), Value::String("clear".into()));
        }
        "overcast" => {
            t.insert("mode".into(), Value::String("overcast".into()));
            t.insert("clear_sky_index".into(), Value::Float(0.3));
        }
        _ => {
            t.insert("mode".into(), Value::String("clouds".into()));
        }
    }
    pv.insert("weather".into(), Value::Table(t));
    Ok(())
}

#[given(regex = r"^the date is (\d{4}-\d\d-\d\d)$")]
fn date(w: &mut MaslowWorld, day: String) -> StepResult {
    let s = w.setup_mut()?;
    s.house.insert("start_date".into(), Value::String(day));
    Ok(())
}

#[given(regex = r"^the site is at latitude (-?[\d.]+) and longitude (-?[\d.]+)$")]
fn site(w: &mut MaslowWorld, lat: String, lon: String) -> StepResult {
    let (lat, lon) = (num(&lat)?, num(&lon)?);
    let s = w.setup_mut()?;
    let pv = s.pv.as_mut().ok_or("this house has no PV array")?;
    let site = section(pv, "site");
    site.insert("latitude_deg".into(), Value::Float(lat));
    site.insert("longitude_deg".into(), Value::Float(lon));
    Ok(())
}

#[given(regex = r"^the (\S+) is plugged into the (\S+) socket from (\d\d:\d\d) to (\d\d:\d\d)$")]
fn plugged_schedule(
    w: &mut MaslowWorld,
    device: String,
    socket: String,
    from: String,
    to: String,
) -> StepResult {
    let (fh, th) = (clock_s(&from)? / 3600.0, clock_s(&to)? / 3600.0);
    let s = w.setup_mut()?;
    let plugs = array(&mut s.house, "plugs");
    plugs.retain(|p| p.get("socket").and_then(Value::as_str) != Some(socket.as_str()));
    let mut p = toml::Table::new();
    p.insert("socket".into(), Value::String(socket));
    p.insert("device".into(), Value::String(device));
    p.insert("from_h".into(), Value::Float(fh));
    p.insert("to_h".into(), Value::Float(th));
    plugs.push(Value::Table(p));
    Ok(())
}

#[given(regex = r"^the inverter's own loss-of-mains protection has failed$")]
fn inverter_protection_failed(w: &mut MaslowWorld) -> StepResult {
    let s = w.setup_mut()?;
    section(&mut s.house, "inverter").insert("anti_islanding_failed".into(), Value::Boolean(true));
    Ok(())
}

#[given(regex = r"^the inverter's own loss-of-mains protection trips after (\d+) seconds?$")]
fn inverter_protection_slow(w: &mut MaslowWorld, secs: f64) -> StepResult {
    if secs > 3600.0 {
        return Err(format!(
            "a loss-of-mains trip after {secs} s: at most 3600 s (or say it has failed)"
        ));
    }
    let s = w.setup_mut()?;
    section(&mut s.house, "inverter").insert("anti_islanding_trip_s".into(), Value::Float(secs));
    Ok(())
}

#[given(regex = r"^export to the grid is limited to (\d+) W$")]
fn export_limit(w: &mut MaslowWorld, watts: f64) -> StepResult {
    let s = w.setup_mut()?;
    section(&mut s.controller, "export").insert("export_limit_w".into(), Value::Float(watts));
    section(&mut s.controller, "assembly")
        .insert("export_allowed".into(), Value::Boolean(watts > 0.0));
    section(&mut s.house, "inverter").insert("export_enabled".into(), Value::Boolean(watts > 0.0));
    Ok(())
}

// --------------------------------------------------------------------- When

#[when(regex = r"^the day runs until (\d\d:\d\d(?: on day \d+)?)$")]
async fn day_runs_until(w: &mut MaslowWorld, hhmm: String) -> StepResult {
    let t = clock_s(&hhmm)?;
    if t + 1e-6 < w.now_s() {
        return Err(format!("it is already {} (past {hhmm})", clock(w.now_s())));
    }
    w.advance_to(SimTime::from_secs_f64(t)).await
}

#[when(regex = r"^(\d+) (seconds?|minutes?|hours?) pass(?:es)?$")]
async fn time_passes(w: &mut MaslowWorld, n: f64, unit: String) -> StepResult {
    let t = w.now_s() + duration_s(n, &unit)?;
    w.advance_to(SimTime::from_secs_f64(t)).await
}

#[when(regex = r"^the smart meter switches to the (off-peak|normal) tariff$")]
fn meter_tariff(w: &mut MaslowWorld, which: String) -> StepResult {
    let tariff = if which == "off-peak" { 1 } else { 2 };
    w.act(Action::House(HouseEvent::Tariff {
        tariff: Some(tariff),
    }))?;
    w.mark(format!("meter tariff → {which}"));
    Ok(())
}

pub(crate) fn send_signal(
    w: &mut MaslowWorld,
    kind: SignalKind,
    minutes: f64,
    label: String,
) -> StepResult {
    let id = w.next_signal_id;
    w.next_signal_id += 1;
    let now_ms = (w.now_s() * 1000.0).round() as u64;
    let signal = DemandSignal {
        id,
        source: SignalSource::RemoteServer,
        kind,
        start: Millis(now_ms),
        duration_ms: (minutes * 60_000.0).round() as u64,
    };
    w.act(Action::Uplink(UplinkMessage::Demand(signal)))?;
    w.mark(label);
    Ok(())
}

#[when(
    regex = r"^the remote server asks the assembly to (charge|discharge) at (\d+) W for (\d+) minutes$"
)]
fn server_power(w: &mut MaslowWorld, what: String, watts: f32, minutes: f64) -> StepResult {
    let kind = if what == "charge" {
        SignalKind::Charge { power_w: watts }
    } else {
        SignalKind::Discharge { power_w: watts }
    };
    send_signal(w, kind, minutes, format!("server: {what} {watts} W"))
}

#[when(regex = r"^the remote server asks to limit grid import to (\d+) W for (\d+) minutes$")]
fn server_limit(w: &mut MaslowWorld, watts: f32, minutes: f64) -> StepResult {
    send_signal(
        w,
        SignalKind::LimitImport {
            max_import_w: watts,
        },
        minutes,
        format!("server: limit import {watts} W"),
    )
}

#[when(regex = r"^the remote server asks to (shed|defer) the (\S+) circuit for (\d+) minutes$")]
fn server_loads(w: &mut MaslowWorld, what: String, circuit: String, minutes: f64) -> StepResult {
    let mask = 1u16 << w.circuit_index(&circuit)?;
    let kind = if what == "shed" {
        SignalKind::ShedLoads { circuit_mask: mask }
    } else {
        SignalKind::DeferLoads { circuit_mask: mask }
    };
    send_signal(w, kind, minutes, format!("server: {what} {circuit}"))
}

#[when(regex = r"^the remote server cancels its last signal$")]
fn server_cancel(w: &mut MaslowWorld) -> StepResult {
    let id = w
        .next_signal_id
        .checked_sub(1)
        .filter(|i| *i > 0)
        .ok_or("the server has sent no signal to cancel")?;
    send_signal(
        w,
        SignalKind::Cancel { id },
        1.0,
        format!("server: cancel {id}"),
    )
}

#[when(regex = r"^the mains fails(?: for ([\d.]+) hours?)?$")]
fn mains_fails(w: &mut MaslowWorld, hours: String) -> StepResult {
    let h = if hours.is_empty() {
        24.0 * 365.0
    } else {
        num(&hours)?
    };
    w.act(Action::House(HouseEvent::PowerCut { duration_h: h }))?;
    w.mark("mains fails");
    let now = w.now_s();
    w.cut = Some((now, (!hours.is_empty()).then_some(now + h * 3600.0)));
    Ok(())
}

#[when(regex = r"^the mains fails at (\d\d:\d\d(?: on day \d+)?) for ([\d.]+) hours?$")]
async fn mains_fails_at(w: &mut MaslowWorld, at: String, hours: String) -> StepResult {
    let t = clock_s(&at)?;
    if t + 1e-6 < w.now_s() {
        return Err(format!("it is already {} (past {at})", clock(w.now_s())));
    }
    w.advance_to(SimTime::from_secs_f64(t)).await?;
    mains_fails(w, hours)?;
    let (a, b) = w.cut.unwrap_or((t, None));
    // The step runs the cut through to its end.
    if let Some(b) = b {
        w.advance_to(SimTime::from_secs_f64(b)).await?;
        w.cut = Some((a, Some(b)));
    }
    Ok(())
}

#[when(regex = r"^the mains returns$")]
fn mains_returns(w: &mut MaslowWorld) -> StepResult {
    w.act(Action::House(HouseEvent::MainsReturn))?;
    w.mark("mains returns");
    let now = w.now_s();
    if let Some((a, _)) = w.cut {
        w.cut = Some((a, Some(now)));
    }
    Ok(())
}

#[when(regex = r"^the (\S+) is plugged into the (\S+) socket$")]
fn plug_in(w: &mut MaslowWorld, device: String, socket: String) -> StepResult {
    w.act(Action::House(HouseEvent::Plug {
        socket: socket.clone(),
        device: Some(device.clone()),
    }))?;
    w.mark(format!("{device} plugged into {socket}"));
    Ok(())
}

#[when(regex = r"^the (\S+) socket is unplugged$")]
fn unplug(w: &mut MaslowWorld, socket: String) -> StepResult {
    w.act(Action::House(HouseEvent::Plug {
        socket: socket.clone(),
        device: None,
    }))?;
    w.mark(format!("{socket} unplugged"));
    Ok(())
}

#[when(regex = r"^the (\S+) goes idle$")]
fn goes_idle(w: &mut MaslowWorld, device: String) -> StepResult {
    w.act(Action::House(HouseEvent::DeviceIdle {
        device: device.clone(),
        idle: true,
    }))?;
    w.mark(format!("{device} idle"));
    Ok(())
}

#[when(regex = r"^(\d+)% of the CAN frames to the controller are (lost|corrupted)$")]
fn can_faults(w: &mut MaslowWorld, pct: f64, how: String) -> StepResult {
    let mut f = w.sim()?.session.link_faults();
    if how == "lost" {
        f.frame_loss = pct / 100.0;
    } else {
        f.frame_corruption = pct / 100.0;
    }
    w.act(Action::Faults(f))?;
    w.mark(format!("{pct}% CAN frames {how}"));
    Ok(())
}

#[when(regex = r"^the CAN bus is off for (\d+) (seconds?|milliseconds?)$")]
fn bus_off(w: &mut MaslowWorld, n: f64, unit: String) -> StepResult {
    let until_ms = ((w.now_s() + duration_s(n, &unit)?) * 1000.0).round() as u64;
    let mut f = w.sim()?.session.link_faults();
    f.bus_off_until_ms = until_ms;
    w.act(Action::Faults(f))?;
    w.mark("CAN bus off");
    Ok(())
}

#[when(regex = r"^(\d+)% of the meter's telegrams are garbled$")]
fn meter_garbled(w: &mut MaslowWorld, pct: f64) -> StepResult {
    let mut f = w.sim()?.session.link_faults();
    f.telegram_garbling = pct / 100.0;
    w.act(Action::Faults(f))?;
    w.mark(format!("{pct}% telegrams garbled"));
    Ok(())
}

#[when(regex = r"^the link faults clear$")]
fn faults_clear(w: &mut MaslowWorld) -> StepResult {
    w.act(Action::Faults(LinkFaults::default()))?;
    w.act(Action::ReleaseSensors)?;
    w.mark("faults clear");
    Ok(())
}

#[when(
    regex = r"^the (pack temperature|pack voltage|bus voltage|highest cell voltage|lowest cell voltage) sensor sticks$"
)]
fn sensor_sticks(w: &mut MaslowWorld, which: String) -> StepResult {
    let (signal, _, _) = quantity(w, &which)?;
    w.act(Action::HoldSensor(signal))?;
    w.mark(format!("{which} sensor stuck"));
    Ok(())
}

#[when(regex = r"^the (\S+) circuit is short-circuited$")]
fn short_circuit(w: &mut MaslowWorld, circuit: String) -> StepResult {
    w.circuit_index(&circuit)?;
    w.act(Action::House(HouseEvent::ShortCircuit {
        circuit: circuit.clone(),
        fault_ohm: 0.05,
    }))?;
    w.mark(format!("short circuit on {circuit}"));
    Ok(())
}

// --------------------------------------------------------------------- Then

pub(crate) fn measured(
    w: &MaslowWorld,
    words: &str,
) -> Result<(String, f64, &'static str, TimeSeries), String> {
    let (signal, k, unit) = quantity(w, words)?;
    let s = w.series(&signal)?.clone();
    Ok((signal, k, unit, s))
}

/// `(t_s, value)` pairs.
type Samples = Vec<(f64, f64)>;

/// The window a `Then` step names, checked to have passed, and the
/// samples of `s` in it (an error when there are none).
fn judged_samples(
    w: &MaslowWorld,
    signal: &str,
    s: &TimeSeries,
    window: &str,
) -> Result<(f64, f64, Samples), String> {
    let (from, to) = w.window(window)?;
    w.check_window_reached(to)?;
    let xs = samples(s, from, to);
    if xs.is_empty() {
        return Err(format!(
            "no samples of {signal} from {} to {}",
            clock(from),
            clock(to)
        ));
    }
    Ok((from, to, xs))
}

#[then(regex = r"^(.+?) stays between (-?[\d.]+) and (-?[\d.]+) (\S+)\s*(.*)$")]
fn stays_between(
    w: &mut MaslowWorld,
    what: String,
    lo: String,
    hi: String,
    unit: String,
    window: String,
) -> StepResult {
    let (signal, k, want, s) = measured(w, &what)?;
    let lo = in_unit(num(&lo)?, &unit, want)?;
    let hi = in_unit(num(&hi)?, &unit, want)?;
    let (from, to, _) = judged_samples(w, &signal, &s, &window)?;
    let bound = reports::scenario::Bound::between(lo / k, hi / k);
    let a = w.judge(&signal, from, to, bound, 0.0)?;
    if let Some((t, v)) = a.first_violation {
        return Err(format!(
            "expected {what} between {lo} and {hi} {want} from {} to {}; measured {:.3} {want} at {} (t = {t:.0} s){}",
            clock(from),
            clock(to),
            v * k,
            clock(t),
            w.see_also()
        ));
    }
    Ok(())
}

#[then(
    regex = r"^(.+?) never (exceeds|falls below) (-?[\d.]+) (\S+)(?: for more than (\d+) seconds?)?\s*(.*)$"
)]
fn never_exceeds(
    w: &mut MaslowWorld,
    what: String,
    dir: String,
    limit: String,
    unit: String,
    grace_s: String,
    window: String,
) -> StepResult {
    let (signal, k, want, s) = measured(w, &what)?;
    let limit = in_unit(num(&limit)?, &unit, want)?;
    // An excursion no longer than the grace (a limiting scheme's allowed
    // reaction time) is tolerated; without one, any sample fails.
    let grace = if grace_s.is_empty() {
        0.0
    } else {
        num(&grace_s)?
    };
    let (from, to, _) = judged_samples(w, &signal, &s, &window)?;
    let bound = reports::scenario::Bound::limit(dir == "exceeds", limit / k);
    let a = w.judge(&signal, from, to, bound, grace)?;
    let Some((t0, v0)) = a.first_violation else {
        return Ok(());
    };
    let verb = if dir == "exceeds" {
        "exceed"
    } else {
        "fall below"
    };
    let extreme = a.extreme.map_or(f64::NAN, |(_, v)| v * k);
    Err(match a.violated_until_s {
        None => format!(
            "expected {what} never to {verb} {limit} {want} from {} to {}; measured {:.3} {want} at {} (extreme {extreme:.3} {want}){}",
            clock(from),
            clock(to),
            v0 * k,
            clock(t0),
            w.see_also()
        ),
        Some(t) => format!(
            "expected {what} never to {verb} {limit} {want} for more than {grace} s from {} to {}; it was beyond the limit from {} to {} at least (extreme {extreme:.3} {want}){}",
            clock(from),
            clock(to),
            clock(t0),
            clock(t),
            w.see_also()
        ),
    })
}

/// The first time at or after `from` from which `ok` holds for every
/// later sample up to `to`.
pub(crate) fn settled_at(xs: &[(f64, f64)], ok: impl Fn(f64) -> bool) -> Option<f64> {
    let mut since = None;
    for &(t, v) in xs {
        if ok(v) {
            since.get_or_insert(t);
        } else {
            since = None;
        }
    }
    since
}

#[then(regex = r"^(.+?) settles (below|above) (-?[\d.]+) (\S+) within (\d+) (seconds?|minutes?)$")]
fn settles(
    w: &mut MaslowWorld,
    what: String,
    dir: String,
    limit: String,
    unit: String,
    n: f64,
    tunit: String,
) -> StepResult {
    let (signal, k, want, s) = measured(w, &what)?;
    let limit = in_unit(num(&limit)?, &unit, want)?;
    let from = w
        .last_event_s
        .ok_or("nothing happened yet to settle after")?;
    let deadline = from + duration_s(n, &tunit)?;
    let to = w
        .cut
        .and_then(|(_, b)| b)
        .filter(|b| *b > deadline)
        .unwrap_or(w.now_s());
    w.check_window_reached(deadline)?;
    // It must hold from the deadline on (the plot shows the bound there).
    let bound = reports::scenario::Bound::limit(dir == "below", limit / k);
    let held = w.judge(&signal, deadline, to, bound, 0.0)?.held;
    let xs = samples(&s, from, to);
    let ok = |v: f64| {
        if dir == "below" {
            v * k <= limit
        } else {
            v * k >= limit
        }
    };
    match settled_at(&xs, ok) {
        _ if held => Ok(()),
        other => Err(format!(
            "expected {what} ({signal}) to settle {dir} {limit} {want} within {n} {tunit} of {}; {}{}",
            clock(from),
            match other {
                Some(t) => format!("it settled only at {} ({:.0} s after)", clock(t), t - from),
                None => format!(
                    "it had not settled by {} (last {:.3} {want})",
                    clock(to),
                    xs.last().map_or(f64::NAN, |(_, v)| v * k)
                ),
            },
            w.see_also()
        )),
    }
}

#[then(regex = r"^(.+?) is (at least|at most) (-?[\d.]+) (\S+) at (\d\d:\d\d(?: on day \d+)?)$")]
fn value_at(
    w: &mut MaslowWorld,
    what: String,
    cmp: String,
    limit: String,
    unit: String,
    at: String,
) -> StepResult {
    let (signal, k, want, s) = measured(w, &what)?;
    let limit = in_unit(num(&limit)?, &unit, want)?;
    let t = clock_s(&at)?;
    w.check_window_reached(t)?;
    // The sample at the time: the first within a second of it.
    let Some((ts, v)) = s.window(t - 1.0, t + 1.0).next() else {
        return Err(format!("no sample of {signal} at {at}"));
    };
    let bound = reports::scenario::Bound::limit(cmp == "at most", limit / k);
    if !w.judge(&signal, ts, ts, bound, 0.0)?.held {
        return Err(format!(
            "expected {what} {cmp} {limit} {want} at {at}; measured {:.3} {want} at {}{}",
            v * k,
            clock(ts),
            w.see_also()
        ));
    }
    Ok(())
}

/// Judged where the power flows (`network_export_w`, the service cable):
/// the meter reads zero with the mains gone.
#[then(regex = r"^the assembly stops exporting within (\d+) seconds?$")]
fn stops_exporting(w: &mut MaslowWorld, n: f64) -> StepResult {
    let (from, end) = w.cut.ok_or("there was no power cut in this scenario")?;
    let to = end.unwrap_or(w.now_s());
    let deadline = from + n;
    w.check_window_reached(deadline)?;
    let bound = reports::scenario::Bound::AtMost { limit: 1.0 };
    let a = w.judge("network_export_w", deadline, to, bound, 0.0)?;
    if let Some((t, v)) = a.first_violation {
        return Err(format!(
            "expected no export from {} ({n} s after the mains failed at {}) until {}; measured {v:.1} W at {}{}",
            clock(deadline),
            clock(from),
            clock(to),
            clock(t),
            w.see_also()
        ));
    }
    Ok(())
}

pub(crate) fn circuit_voltage(w: &MaslowWorld, circuit: &str) -> Result<TimeSeries, String> {
    w.circuit_index(circuit)?;
    Ok(
        w.series(&format!("circuit_{}_voltage_v", signal_slug(circuit)))?
            .clone(),
    )
}

/// A circuit counts as powered when its far-end voltage is at least the
/// LED drivers' minimum input (36 V), shed when below 5 V.
pub(crate) const POWERED_V: f64 = 36.0;
pub(crate) const SHED_V: f64 = 5.0;

#[then(regex = r"^the (\S+) circuit stays powered\s*(.*)$")]
fn stays_powered(w: &mut MaslowWorld, circuit: String, window: String) -> StepResult {
    circuit_voltage(w, &circuit)?;
    let signal = format!("circuit_{}_voltage_v", signal_slug(&circuit));
    let (from, to) = w.window(&window)?;
    w.check_window_reached(to)?;
    // A second's grace after an event: the islanding transition.
    let bound = reports::scenario::Bound::AtLeast { limit: POWERED_V };
    let a = w.judge(&signal, from + 1.0, to, bound, 0.0)?;
    if a.samples == 0 {
        return Err(format!(
            "no samples of the {circuit} circuit from {} to {}",
            clock(from),
            clock(to)
        ));
    }
    if let Some((t, v)) = a.first_violation {
        return Err(format!(
            "expected the {circuit} circuit powered (≥ {POWERED_V} V) from {} to {}; measured {v:.2} V at {}{}",
            clock(from),
            clock(to),
            clock(t),
            w.see_also()
        ));
    }
    Ok(())
}

pub(crate) fn first_shed(s: &TimeSeries, from: f64, to: f64) -> Option<f64> {
    s.window(from, to)
        .find(|(_, v)| *v < SHED_V)
        .map(|(t, _)| t)
}

#[then(regex = r"^the (\S+) circuit is shed within (\d+) (seconds?|minutes?)$")]
fn is_shed_within(w: &mut MaslowWorld, circuit: String, n: f64, unit: String) -> StepResult {
    let s = circuit_voltage(w, &circuit)?;
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    match first_shed(&s, from, deadline) {
        Some(_) => Ok(()),
        None => Err(format!(
            "expected the {circuit} circuit shed (< {SHED_V} V) within {n} {unit} of {}; it stayed powered{}",
            clock(from),
            w.see_also()
        )),
    }
}

#[then(regex = r"^the (\S+) circuit is shed before the (\S+) circuit$")]
fn shed_order(w: &mut MaslowWorld, first: String, second: String) -> StepResult {
    let (from, to) = w.window("for the whole cut")?;
    let a = first_shed(&circuit_voltage(w, &first)?, from, to);
    let b = first_shed(&circuit_voltage(w, &second)?, from, to);
    match (a, b) {
        (Some(a), Some(b)) if a <= b => Ok(()),
        (Some(_), None) => Ok(()),
        (a, b) => Err(format!(
            "expected the {first} circuit shed before the {second} circuit; {first} shed at {}, {second} at {}{}",
            a.map_or("never".into(), clock),
            b.map_or("never".into(), clock),
            w.see_also()
        )),
    }
}

#[then(regex = r"^the (\S+) circuit is shed before the battery falls below (\d+)%$")]
fn shed_before_soc(w: &mut MaslowWorld, circuit: String, pct: f64) -> StepResult {
    let (from, to) = w.window("for the whole cut")?;
    let shed = first_shed(&circuit_voltage(w, &circuit)?, from, to);
    let soc = w.series("soc")?;
    let low = soc
        .window(from, to)
        .find(|(_, v)| v * 100.0 < pct)
        .map(|(t, _)| t);
    match (shed, low) {
        (Some(s), Some(l)) if s <= l => Ok(()),
        (Some(_), None) => Ok(()),
        (s, l) => Err(format!(
            "expected the {circuit} circuit shed before the charge fell below {pct}%; shed at {}, charge below {pct}% at {}{}",
            s.map_or("never".into(), clock),
            l.map_or("never".into(), clock),
            w.see_also()
        )),
    }
}

/// Each time a circuit was shed: when it fell below [`SHED_V`] after
/// having been powered (≥ [`POWERED_V`]), and when it was back at
/// [`POWERED_V`] (none while it is still shed).
fn outages(s: &TimeSeries) -> Vec<(f64, Option<f64>)> {
    let mut out: Vec<(f64, Option<f64>)> = Vec::new();
    let mut powered = false;
    for (t, v) in s.window(f64::NEG_INFINITY, f64::INFINITY) {
        let open = out.last().is_some_and(|(_, back)| back.is_none());
        if open && v >= POWERED_V {
            if let Some(o) = out.last_mut() {
                o.1 = Some(t);
            }
        } else if !open && powered && v < SHED_V {
            out.push((t, None));
        }
        powered = v >= POWERED_V || (powered && v >= SHED_V);
    }
    out
}

#[then(
    regex = r"^the (\S+) circuit is restored within (\d+) (seconds?|minutes?|hours?) after being shed$"
)]
fn restored_after_shed(w: &mut MaslowWorld, circuit: String, n: f64, unit: String) -> StepResult {
    let s = circuit_voltage(w, &circuit)?;
    let limit = duration_s(n, &unit)?;
    let now = w.now_s();
    let all = outages(&s);
    if all.is_empty() {
        return Err(format!(
            "the {circuit} circuit was never shed (below {SHED_V} V after being powered at ≥ {POWERED_V} V) up to {}{}",
            clock(now),
            w.see_also()
        ));
    }
    for (shed, back) in all {
        let late = |until: f64| until - shed > limit + 1e-6;
        match back {
            Some(b) if late(b) => {
                return Err(format!(
                    "expected the {circuit} circuit back at ≥ {POWERED_V} V within {n} {unit} after being shed; shed at {}, back at {} ({:.0} s later){}",
                    clock(shed),
                    clock(b),
                    b - shed,
                    w.see_also()
                ))
            }
            None if late(now) => {
                return Err(format!(
                    "expected the {circuit} circuit back at ≥ {POWERED_V} V within {n} {unit} after being shed; shed at {}, still shed at {}{}",
                    clock(shed),
                    clock(now),
                    w.see_also()
                ))
            }
            None => {
                return Err(format!(
                    "the {circuit} circuit was shed at {} and the scenario has only run to {}: let {n} {unit} pass to judge its return",
                    clock(shed),
                    clock(now)
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Energy imported from `from_s` to `to_s`, kWh: the import power
/// integrated sample by sample (each held until the next).
fn imported_kwh(s: &TimeSeries, from_s: f64, to_s: f64) -> f64 {
    let xs = samples(s, from_s, to_s);
    xs.windows(2)
        .map(|p| (p[1].0 - p[0].0) * p[0].1.max(0.0))
        .sum::<f64>()
        / 3.6e6
}

/// The run a baseline step compares with (same seed, replayed up to now):
/// `the battery assembly` switched off for the whole run, or `the event`
/// (the last `When` action that was not time passing) left out.
pub(crate) fn baseline_without<'a>(
    w: &'a mut MaslowWorld,
    which: &str,
) -> Result<&'a std::collections::BTreeMap<String, TimeSeries>, String> {
    if which == "the battery assembly" {
        return w.baseline("without the battery assembly", true, |_, _| true);
    }
    let skip = w
        .actions
        .iter()
        .rposition(|x| !matches!(x, Action::RunUntil(_)))
        .ok_or("there was no event to leave out of the baseline")?;
    w.baseline("without the event", false, move |i, _| i != skip)
}

/// Grid import over a window, measured and in a baseline run.
struct ImportAgainstBaseline {
    hours: f64,
    measured_kwh: f64,
    baseline_kwh: f64,
}

impl ImportAgainstBaseline {
    fn reduction_kwh(&self) -> f64 {
        self.baseline_kwh - self.measured_kwh
    }

    fn reduction_pct(&self) -> f64 {
        if self.baseline_kwh > 0.0 {
            100.0 * self.reduction_kwh() / self.baseline_kwh
        } else {
            0.0
        }
    }

    /// The reduction as a mean power over the window, W.
    fn mean_reduction_w(&self) -> f64 {
        1000.0 * self.reduction_kwh() / self.hours
    }

    fn figures(&self) -> String {
        format!(
            "measured {:.3} kWh vs baseline {:.3} kWh over {:.2} h: {:.3} kWh, {:.0} W on average, {:.1}% lower",
            self.measured_kwh,
            self.baseline_kwh,
            self.hours,
            self.reduction_kwh(),
            self.mean_reduction_w(),
            self.reduction_pct()
        )
    }
}

/// Grid import from `from` to `to`, measured and in the run `without`
/// (see [`baseline_without`]).
fn import_against_baseline(
    w: &mut MaslowWorld,
    from: &str,
    to: &str,
    without: &str,
) -> Result<ImportAgainstBaseline, String> {
    let (a, b) = (clock_s(from)?, clock_s(to)?);
    if b <= a {
        return Err(format!(
            "from {from} to {to}: the window ends before it starts (a later day: `{to} on day 2`)"
        ));
    }
    w.check_window_reached(b)?;
    let measured_kwh = imported_kwh(w.series("grid_import_w")?, a, b);
    let base = baseline_without(w, without)?
        .get("grid_import_w")
        .ok_or("the baseline measured no grid import")?;
    Ok(ImportAgainstBaseline {
        hours: (b - a) / 3600.0,
        measured_kwh,
        baseline_kwh: imported_kwh(base, a, b),
    })
}

/// `at least` / `at most`, with a margin for rounding.
fn compares(cmp: &str, value: f64, limit: f64) -> bool {
    if cmp == "at most" {
        value <= limit + 1e-9
    } else {
        value + 1e-9 >= limit
    }
}

#[then(
    regex = r"^grid import from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?) is at least (\d+)% below the baseline without (the battery assembly|the event)$"
)]
fn import_vs_baseline(
    w: &mut MaslowWorld,
    from: String,
    to: String,
    pct: f64,
    which: String,
) -> StepResult {
    let c = import_against_baseline(w, &from, &to, &which)?;
    if c.baseline_kwh <= 0.0 || !compares("at least", c.reduction_pct(), pct) {
        return Err(format!(
            "expected grid import from {from} to {to} at least {pct}% below the baseline without {which}; {}{}",
            c.figures(),
            w.see_also()
        ));
    }
    Ok(())
}

#[then(
    regex = r"^grid import from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?) is (at least|at most) ([\d.]+) kWh below the baseline without (the battery assembly|the event)$"
)]
fn import_energy_vs_baseline(
    w: &mut MaslowWorld,
    from: String,
    to: String,
    cmp: String,
    kwh: String,
    which: String,
) -> StepResult {
    let limit = num(&kwh)?;
    let c = import_against_baseline(w, &from, &to, &which)?;
    if !compares(&cmp, c.reduction_kwh(), limit) {
        return Err(format!(
            "expected grid import from {from} to {to} {cmp} {limit} kWh below the baseline without {which}; {}{}",
            c.figures(),
            w.see_also()
        ));
    }
    Ok(())
}

#[then(
    regex = r"^grid import from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?) averages (at least|at most) ([\d.]+) (W|kW) below the baseline without (the battery assembly|the event)$"
)]
fn import_mean_vs_baseline(
    w: &mut MaslowWorld,
    from: String,
    to: String,
    cmp: String,
    power: String,
    unit: String,
    which: String,
) -> StepResult {
    let limit_w = in_unit(num(&power)?, &unit, "W")?;
    let c = import_against_baseline(w, &from, &to, &which)?;
    if !compares(&cmp, c.mean_reduction_w(), limit_w) {
        return Err(format!(
            "expected grid import from {from} to {to} to average {cmp} {limit_w} W below the baseline without {which}; {}{}",
            c.figures(),
            w.see_also()
        ));
    }
    Ok(())
}

#[then(
    regex = r"^grid import from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?) is at most ([\d.]+) kWh$"
)]
fn import_at_most(w: &mut MaslowWorld, from: String, to: String, kwh: String) -> StepResult {
    let (a, b) = (clock_s(&from)?, clock_s(&to)?);
    w.check_window_reached(b)?;
    let limit = num(&kwh)?;
    let s = w.series("grid_import_kwh")?;
    let at = |t: f64| s.window(t - 1.0, t + 1.0).map(|(_, v)| v).next();
    let (Some(x), Some(y)) = (at(a), at(b)) else {
        return Err(format!("no import register samples at {from} and {to}"));
    };
    if y - x > limit {
        return Err(format!(
            "expected at most {limit} kWh imported from {from} to {to}; measured {:.3} kWh{}",
            y - x,
            w.see_also()
        ));
    }
    Ok(())
}

/// How far a peak report's window may lie from the one a step names, s:
/// the window starts at the controller's first update in it and the
/// report arrives at its first update after it.
const PEAK_REPORT_SLACK_S: f64 = 60.0;

/// The peak reports the remote server received: (arrival s, report).
fn peak_reports(replies: &[crate::rig::UplinkReply]) -> Vec<(f64, firmware::peak::PeakReport)> {
    replies
        .iter()
        .filter_map(|r| match &r.reply {
            Reply::PeakReport(p) => Some((r.at_ms as f64 / 1000.0, *p)),
            _ => None,
        })
        .collect()
}

/// A peak report in words: its window, verdict and figures.
fn describe_peak_report(at_s: f64, p: &firmware::peak::PeakReport) -> String {
    format!(
        "the peak from {} to {} {} (average reduction {:.0} W of {:.0} W assured, {:.0}% of the time at the assured level, lowest 1-minute mean {:.0} W)",
        clock(p.started.0 as f64 / 1000.0),
        clock(at_s),
        if p.met { "met" } else { "missed" },
        p.avg_reduction_w,
        p.assured_w,
        100.0 * p.fraction_met,
        p.min_1min_reduction_w
    )
}

/// Judges the peak reports received against the window `[from_s, to_s]`
/// and the verdict a step expects.
fn judge_peak_report(
    reports: &[(f64, firmware::peak::PeakReport)],
    from_s: f64,
    to_s: f64,
    met: bool,
) -> StepResult {
    let near = |a: f64, b: f64| (a - b).abs() <= PEAK_REPORT_SLACK_S;
    let found = reports
        .iter()
        .find(|(at, p)| near(p.started.0 as f64 / 1000.0, from_s) && near(*at, to_s));
    let verdict = if met { "met" } else { "missed" };
    match found {
        Some((_, p)) if p.met == met => Ok(()),
        Some((at, p)) => Err(format!(
            "expected the assembly to report the peak from {} to {} as {verdict}; at {} it reported {}",
            clock(from_s),
            clock(to_s),
            clock(*at),
            describe_peak_report(*at, p)
        )),
        None => Err(format!(
            "the remote server received no report of a peak from {} to {} (a report arrives within a minute of the window's end); it received: {}",
            clock(from_s),
            clock(to_s),
            if reports.is_empty() {
                "none".to_owned()
            } else {
                reports
                    .iter()
                    .map(|(at, p)| describe_peak_report(*at, p))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        )),
    }
}

/// Judged on the report as the remote server received it.
#[then(
    regex = r"^the assembly reports the peak from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?) as (met|missed)$"
)]
fn peak_reported(w: &mut MaslowWorld, from: String, to: String, verdict: String) -> StepResult {
    let (a, b) = (clock_s(&from)?, clock_s(&to)?);
    w.check_window_reached(b)?;
    let replies = w.uplink_replies()?;
    judge_peak_report(&peak_reports(&replies), a, b, verdict == "met")
}

#[then(
    regex = r"^the remote server receives an acknowledgement (accepting|rejecting) the signal(?: because (.+))? within (\d+) seconds?$"
)]
fn acknowledged(w: &mut MaslowWorld, verdict: String, because: String, n: f64) -> StepResult {
    let expected = ExpectedAck::parse(&verdict, &because)?;
    let id = w.next_signal_id.saturating_sub(1);
    let sent = w.last_event_s.unwrap_or(0.0);
    let replies = w.uplink_replies()?;
    let ack = replies.iter().find_map(|r| match &r.reply {
        Reply::DemandAck(a) if a.id() == id => Some((r.at_ms, *a)),
        _ => None,
    });
    let Some((at_ms, ack)) = ack else {
        return Err(format!(
            "the remote server received no acknowledgement of signal {id}"
        ));
    };
    let delay = at_ms as f64 / 1000.0 - sent;
    if delay > n {
        return Err(format!(
            "the acknowledgement of signal {id} arrived after {delay:.1} s (expected within {n} s)"
        ));
    }
    if !expected.is_ack(&ack) {
        return Err(format!(
            "expected the signal {verdict}{}; the controller answered {ack:?}",
            because_clause(&because)
        ));
    }
    Ok(())
}

#[then(
    regex = r"^the controller reports (entering|leaving) its safe state within (\d+) (seconds?|milliseconds?)$"
)]
/// Judged on the controller's heartbeats as they travelled on the bus (a
/// report: the plant's side of a safe state is judged by the protection
/// steps, `the battery current stops …`, `the plant is commanded to …`).
fn safe_state(w: &mut MaslowWorld, which: String, n: f64, unit: String) -> StepResult {
    let which = if which == "entering" {
        "enters"
    } else {
        "leaves"
    };
    use firmware::wire::can::messages::CtrlHeartbeatCtrlState as S;
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let beats = w.heartbeats()?;
    let is_safe = |s: &crate::plant_link::ControllerStatus| matches!(s.state, S::SafeState);
    // The state in force at each change after the event.
    let hit = beats.iter().find(|(t, s)| {
        *t >= from - 1e-6 && *t <= deadline + 1e-6 && (is_safe(s) == (which == "enters"))
    });
    let before = beats
        .iter()
        .rev()
        .find(|(t, _)| *t < from)
        .map(|(_, s)| is_safe(s));
    if hit.is_some()
        || (before == Some(which == "enters")
            && beats
                .iter()
                .all(|(t, s)| *t < from || is_safe(s) == (which == "enters")))
    {
        return Ok(());
    }
    Err(format!(
        "expected the controller to report {} its safe state within {n} {unit} of {}; its heartbeats said: {}",
        if which == "enters" { "entering" } else { "leaving" },
        clock(from),
        beats
            .iter()
            .filter(|(t, _)| *t + 60.0 >= from)
            .map(|(t, s)| format!("{} {:?}", clock(*t), s.state))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[then(regex = r"^the controller reports (a link timeout|the meter as stale|rejected frames)$")]
fn controller_reports(w: &mut MaslowWorld, what: String) -> StepResult {
    let from = w.last_event_s.unwrap_or(0.0);
    let beats = w.heartbeats()?;
    let found = beats.iter().any(|(t, s)| {
        *t >= from
            && match what.as_str() {
                "a link timeout" => s.link_timeout,
                "the meter as stale" => s.meter_stale,
                _ => s.e2e_rejects > 0,
            }
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "expected the controller's heartbeat to report {what} after {}; it did not (last: {:?})",
            clock(from),
            beats.last().map(|(_, s)| s)
        ))
    }
}

#[then(regex = r"^the battery current stops within (\d+) (seconds?|milliseconds?)$")]
fn current_stops(w: &mut MaslowWorld, n: f64, unit: String) -> StepResult {
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let s = w.series("pack_current_a")?.clone();
    let xs = samples(&s, from, w.now_s());
    match settled_at(&xs, |v| v.abs() < 0.5) {
        Some(t) if t <= deadline + 1e-6 => Ok(()),
        other => Err(format!(
            "expected the battery current below 0.5 A within {n} {unit} of {}; {}{}",
            clock(from),
            other.map_or("it never stopped".into(), |t| format!(
                "it stopped at {}",
                clock(t)
            )),
            w.see_also()
        )),
    }
}

/// Every `Then` here fails on a recording that breaks it and passes on
/// one that keeps it: `negative_<step fn>` (the glossary test checks that
/// each `Then` has one). No session runs: the world judges a recording.
#[cfg(test)]
pub(crate) mod negative {
    use super::*;
    use std::collections::BTreeMap;

    use firmware::demand::{Ack, RejectReason};
    use firmware::wire::can::messages::CtrlHeartbeatCtrlState as S;

    use crate::plant_link::ControllerStatus;
    use crate::rig::UplinkReply;
    use crate::scenario::world::RecordedSession;

    /// A signal for [`recorded`]: name, unit, value at each second.
    pub(crate) type Recorded<'a> = (&'a str, &'a str, &'a dyn Fn(f64) -> f64);

    /// A signal sampled once a second from 0 to `until_s`.
    pub(crate) fn sampled(
        name: &str,
        unit: &str,
        until_s: f64,
        f: &dyn Fn(f64) -> f64,
    ) -> TimeSeries {
        let mut s = TimeSeries::new(name, unit);
        let mut t = 0.0;
        while t <= until_s {
            s.push(t, f(t));
            t += 1.0;
        }
        s
    }

    /// A world judging a recording: each signal sampled once a second
    /// from 0 to `until_s`, with the default house's configuration.
    pub(crate) fn recorded(until_s: f64, signals: &[Recorded<'_>]) -> MaslowWorld {
        let mut w = MaslowWorld::new();
        let rig_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sim.toml");
        let rig = crate::rig::Rig::load(&rig_path).expect("rigs/sim.toml loads");
        w.setup = Some(Setup::from_rig(&rig).expect("the default house"));
        w.setup_error = None;
        for (name, unit, f) in signals {
            w.capture
                .insert((*name).to_owned(), sampled(name, unit, until_s, *f));
        }
        w.recorded_until_s = Some(until_s);
        w
    }

    /// A world judging what a session's bus, plant and uplink carried
    /// until `until_s` (no signals).
    pub(crate) fn session(until_s: f64, r: RecordedSession) -> MaslowWorld {
        let mut w = recorded(until_s, &[]);
        w.recorded_session = Some(r);
        w
    }

    /// A reply the remote server received at `at_s`.
    pub(crate) fn reply(at_s: f64, reply: Reply) -> UplinkReply {
        UplinkReply {
            at_ms: (at_s * 1000.0).round() as u64,
            reply,
        }
    }

    /// A heartbeat received at `t`: `state`, no flag raised.
    fn beat(t: f64, state: S) -> (f64, ControllerStatus) {
        (
            t,
            ControllerStatus {
                state,
                sync_echo_ms: 0,
                e2e_rejects: 0,
                meter_stale: false,
                link_timeout: false,
                received_at: SimTime::from_secs_f64(t),
            },
        )
    }

    pub(crate) fn s(x: &str) -> String {
        x.to_owned()
    }

    /// `v` before `t0`, `after` from then on.
    pub(crate) fn step_at(t0: f64, v: f64, after: f64) -> impl Fn(f64) -> f64 {
        move |t| if t < t0 { v } else { after }
    }

    #[test]
    fn negative_stays_between() {
        let run = |f: &dyn Fn(f64) -> f64| {
            let mut w = recorded(600.0, &[("soc", "1", f)]);
            stays_between(
                &mut w,
                s("the state of charge"),
                s("20"),
                s("80"),
                s("%"),
                s(""),
            )
        };
        let e = run(&|t| {
            if (100.0..110.0).contains(&t) {
                0.1
            } else {
                0.5
            }
        })
        .unwrap_err();
        assert!(e.contains("10.000 %") && e.contains("00:01:40"), "{e}");
        run(&|_| 0.5).unwrap();
    }

    #[test]
    fn negative_never_exceeds() {
        let excursion = |len: f64| {
            move |t: f64| {
                if (100.0..100.0 + len).contains(&t) {
                    500.0
                } else {
                    0.0
                }
            }
        };
        let run = |f: &dyn Fn(f64) -> f64, grace: &str| {
            let mut w = recorded(600.0, &[("grid_export_w", "W", f)]);
            never_exceeds(
                &mut w,
                s("grid export"),
                s("exceeds"),
                s("100"),
                s("W"),
                s(grace),
                s(""),
            )
        };
        assert!(run(&excursion(10.0), "").is_err());
        run(&excursion(10.0), "30").unwrap();
        let e = run(&excursion(60.0), "30").unwrap_err();
        assert!(e.contains("for more than 30 s"), "{e}");
        run(&|_| 50.0, "").unwrap();
        // A missing reading is outside every bound.
        assert!(run(&|t| if t == 300.0 { f64::NAN } else { 0.0 }, "").is_err());
    }

    #[test]
    fn negative_settles() {
        let run = |settle_at: f64| {
            let f = step_at(settle_at, 1000.0, 0.0);
            let mut w = recorded(600.0, &[("battery_power_w", "W", &f)]);
            w.last_event_s = Some(100.0);
            settles(
                &mut w,
                s("the battery power"),
                s("below"),
                s("50"),
                s("W"),
                60.0,
                s("seconds"),
            )
        };
        let e = run(300.0).unwrap_err();
        assert!(e.contains("settled only at 00:05:00"), "{e}");
        run(130.0).unwrap();
    }

    #[test]
    fn negative_value_at() {
        let run = |soc: f64| {
            let mut w = recorded(600.0, &[("soc", "1", &move |_| soc)]);
            value_at(
                &mut w,
                s("the state of charge"),
                s("at least"),
                s("50"),
                s("%"),
                s("00:05"),
            )
        };
        assert!(run(0.4).is_err());
        run(0.6).unwrap();
    }

    #[test]
    fn negative_stops_exporting() {
        let run = |stops_at: f64| {
            let f = step_at(stops_at, 800.0, 0.0);
            let mut w = recorded(600.0, &[("network_export_w", "W", &f)]);
            w.cut = Some((100.0, None));
            stops_exporting(&mut w, 10.0)
        };
        let e = run(150.0).unwrap_err();
        assert!(e.contains("800.0 W at 00:01:50"), "{e}");
        run(105.0).unwrap();
    }

    #[test]
    fn negative_stays_powered() {
        let run = |f: &dyn Fn(f64) -> f64| {
            let mut w = recorded(600.0, &[("circuit_lighting_downstairs_voltage_v", "V", f)]);
            stays_powered(&mut w, s("lighting-downstairs"), s(""))
        };
        assert!(run(&|t| if t == 200.0 { 20.0 } else { 48.0 }).is_err());
        run(&|_| 48.0).unwrap();
    }

    #[test]
    fn negative_is_shed_within() {
        let run = |shed_at: f64| {
            let f = step_at(shed_at, 48.0, 0.0);
            let mut w = recorded(600.0, &[("circuit_office_sockets_voltage_v", "V", &f)]);
            w.last_event_s = Some(100.0);
            is_shed_within(&mut w, s("office-sockets"), 30.0, s("seconds"))
        };
        assert!(run(500.0).is_err());
        run(110.0).unwrap();
    }

    #[test]
    fn negative_shed_order() {
        let run = |office_at: f64, living_at: f64| {
            let office = step_at(office_at, 48.0, 0.0);
            let living = step_at(living_at, 48.0, 0.0);
            let mut w = recorded(
                600.0,
                &[
                    ("circuit_office_sockets_voltage_v", "V", &office),
                    ("circuit_living_sockets_voltage_v", "V", &living),
                ],
            );
            w.cut = Some((100.0, None));
            shed_order(&mut w, s("office-sockets"), s("living-sockets"))
        };
        assert!(run(200.0, 150.0).is_err());
        run(150.0, 200.0).unwrap();
    }

    #[test]
    fn negative_shed_before_soc() {
        let run = |shed_at: f64| {
            let office = step_at(shed_at, 48.0, 0.0);
            let soc = step_at(200.0, 0.5, 0.1);
            let mut w = recorded(
                600.0,
                &[
                    ("circuit_office_sockets_voltage_v", "V", &office),
                    ("soc", "1", &soc),
                ],
            );
            w.cut = Some((100.0, None));
            shed_before_soc(&mut w, s("office-sockets"), 15.0)
        };
        assert!(run(300.0).is_err());
        run(150.0).unwrap();
    }

    #[test]
    fn negative_current_stops() {
        let run = |stops_at: f64| {
            let f = step_at(stops_at, 20.0, 0.0);
            let mut w = recorded(600.0, &[("pack_current_a", "A", &f)]);
            w.last_event_s = Some(100.0);
            current_stops(&mut w, 10.0, s("seconds"))
        };
        assert!(run(200.0).is_err());
        run(105.0).unwrap();
    }

    #[test]
    fn negative_import_at_most() {
        let run = |kwh_per_s: f64| {
            let f = move |t: f64| t * kwh_per_s;
            let mut w = recorded(600.0, &[("grid_import_kwh", "kWh", &f)]);
            import_at_most(&mut w, s("00:00"), s("00:10"), s("0.5"))
        };
        assert!(run(1.0 / 600.0).is_err());
        run(0.1 / 600.0).unwrap();
    }

    #[test]
    fn negative_import_vs_baseline() {
        // 500 W against the baseline's 1 kW from 00:00 to 00:10: 50 % less.
        let run = |pct: f64, which: &str, base_w: f64| {
            let mut w = recorded(600.0, &[("grid_import_w", "W", &|_| 500.0)]);
            // The event a baseline without it leaves out.
            w.actions.push(Action::House(HouseEvent::MainsReturn));
            let base = sampled("grid_import_w", "W", 600.0, &|_| base_w);
            w.baselines.insert(
                format!("without {which}"),
                BTreeMap::from([(s("grid_import_w"), base)]),
            );
            import_vs_baseline(&mut w, s("00:00"), s("00:10"), pct, s(which))
        };
        run(45.0, "the battery assembly", 1000.0).unwrap();
        let e = run(55.0, "the battery assembly", 1000.0).unwrap_err();
        assert!(
            e.contains("0.083 kWh vs baseline 0.167 kWh") && e.contains("50.0% lower"),
            "{e}"
        );
        run(45.0, "the event", 1000.0).unwrap();
        assert!(run(55.0, "the event", 1000.0).is_err());
        // More than the baseline imported is no saving.
        let e = run(0.0, "the event", 400.0).unwrap_err();
        assert!(e.contains("-25.0% lower"), "{e}");
    }

    #[test]
    fn negative_acknowledged() {
        // Signal 1 sent at 00:01:40 and answered `ack` at `at_s`.
        let run = |at_s: f64, ack: Ack, verdict: &str, because: &str| {
            let mut w = session(
                600.0,
                RecordedSession {
                    uplink_replies: vec![reply(at_s, Reply::DemandAck(ack))],
                    ..Default::default()
                },
            );
            w.next_signal_id = 2;
            w.last_event_s = Some(100.0);
            acknowledged(&mut w, s(verdict), s(because), 5.0)
        };
        let accepted = Ack::Accepted { id: 1 };
        let too_much = Ack::Rejected {
            id: 1,
            reason: RejectReason::ExceedsPowerLimit,
        };
        run(102.0, accepted, "accepting", "").unwrap();
        run(102.0, too_much, "rejecting", "exceeds power limit").unwrap();
        let e = run(110.0, accepted, "accepting", "").unwrap_err();
        assert!(e.contains("after 10.0 s"), "{e}");
        let e = run(102.0, too_much, "rejecting", "would breach reserve").unwrap_err();
        assert!(e.contains("ExceedsPowerLimit"), "{e}");
        assert!(run(102.0, too_much, "accepting", "").is_err());
        // Another signal's acknowledgement is not this one's.
        let e = run(102.0, Ack::Accepted { id: 2 }, "accepting", "").unwrap_err();
        assert!(e.contains("no acknowledgement of signal 1"), "{e}");
    }

    #[test]
    fn negative_safe_state() {
        // The event at 00:01:40, the heartbeats' states since 00:00.
        let run = |states: &[(f64, S)], which: &str| {
            let mut w = session(
                600.0,
                RecordedSession {
                    heartbeats: states.iter().map(|&(t, st)| beat(t, st)).collect(),
                    ..Default::default()
                },
            );
            w.last_event_s = Some(100.0);
            safe_state(&mut w, s(which), 2.0, s("seconds"))
        };
        let entering = |at: f64| [(0.0, S::Normal), (at, S::SafeState)];
        run(&entering(101.5), "entering").unwrap();
        let e = run(&entering(105.0), "entering").unwrap_err();
        assert!(e.contains("00:01:45 SafeState"), "{e}");
        // Safe since before the event and still: it is in its safe state.
        run(&entering(50.0), "entering").unwrap();
        assert!(run(&[(0.0, S::Normal)], "entering").is_err());
        let leaving = |at: f64| [(50.0, S::SafeState), (at, S::Normal)];
        run(&leaving(101.0), "leaving").unwrap();
        let e = run(&leaving(110.0), "leaving").unwrap_err();
        assert!(e.contains("00:00:50 SafeState, 00:01:50 Normal"), "{e}");
    }

    #[test]
    fn negative_controller_reports() {
        // The event at 00:01:40; a heartbeat flagging a link timeout at `at`.
        let run = |at: f64, what: &str| {
            let mut flagged = beat(at, S::Derated);
            flagged.1.link_timeout = true;
            let mut w = session(
                600.0,
                RecordedSession {
                    heartbeats: vec![beat(0.0, S::Normal), flagged],
                    ..Default::default()
                },
            );
            w.last_event_s = Some(100.0);
            controller_reports(&mut w, s(what))
        };
        run(130.0, "a link timeout").unwrap();
        let e = run(50.0, "a link timeout").unwrap_err();
        assert!(e.contains("a link timeout after 00:01:40"), "{e}");
        assert!(run(130.0, "the meter as stale").is_err());
        assert!(run(130.0, "rejected frames").is_err());
    }

    /// A recording of 1 kW imported for 10 minutes, judged against a
    /// baseline without the battery assembly that imported `base_w`.
    fn against_baseline(base_w: f64) -> MaslowWorld {
        let mut w = recorded(600.0, &[("grid_import_w", "W", &|_| 1000.0)]);
        let mut base = TimeSeries::new("grid_import_w", "W");
        for t in 0..=600 {
            base.push(f64::from(t), base_w);
        }
        let runs = [("grid_import_w".to_owned(), base)].into_iter().collect();
        w.baselines
            .insert("without the battery assembly".into(), runs);
        w
    }

    #[test]
    fn negative_import_energy_vs_baseline() {
        // 1.5 kW against 1 kW for 10 minutes: 0.083 kWh less.
        let run = |cmp: &str, kwh: &str| {
            import_energy_vs_baseline(
                &mut against_baseline(1500.0),
                s("00:00"),
                s("00:10"),
                s(cmp),
                s(kwh),
                s("the battery assembly"),
            )
        };
        let e = run("at least", "0.1").unwrap_err();
        assert!(
            e.contains("from 00:00 to 00:10") && e.contains("0.083 kWh"),
            "{e}"
        );
        run("at least", "0.08").unwrap();
        assert!(run("at most", "0.05").is_err());
        run("at most", "0.09").unwrap();
    }

    #[test]
    fn negative_import_mean_vs_baseline() {
        let run = |base_w: f64, unit: &str, limit: &str| {
            import_mean_vs_baseline(
                &mut against_baseline(base_w),
                s("00:00"),
                s("00:10"),
                s("at least"),
                s(limit),
                s(unit),
                s("the battery assembly"),
            )
        };
        let e = run(1300.0, "W", "400").unwrap_err();
        assert!(e.contains("300 W on average") && e.contains("00:10"), "{e}");
        run(1500.0, "W", "400").unwrap();
        run(1500.0, "kW", "0.4").unwrap();
        // A baseline that imported less is no reduction at all.
        assert!(run(800.0, "W", "0").is_err());
    }

    #[test]
    fn the_window_may_end_on_a_later_day() {
        let mut w = recorded(2.0 * 86_400.0, &[("grid_import_w", "W", &|_| 1000.0)]);
        let mut base = TimeSeries::new("grid_import_w", "W");
        for t in (0..=2 * 86_400).step_by(60) {
            base.push(f64::from(t), 1250.0);
        }
        let runs = [("grid_import_w".to_owned(), base)].into_iter().collect();
        w.baselines
            .insert("without the battery assembly".into(), runs);
        // 250 W less for 4 hours across midnight: 1 kWh.
        let judge = |w: &mut MaslowWorld, kwh: &str| {
            import_energy_vs_baseline(
                w,
                s("22:00"),
                s("02:00 on day 2"),
                s("at least"),
                s(kwh),
                s("the battery assembly"),
            )
        };
        judge(&mut w, "0.99").unwrap();
        assert!(judge(&mut w, "1.01").is_err());
    }

    #[test]
    fn negative_restored_after_shed() {
        // Shed at 100 s for `out_s`, powered before and after.
        let run = |out_s: f64, until_s: f64| {
            let f = move |t: f64| {
                if (100.0..100.0 + out_s).contains(&t) {
                    0.0
                } else {
                    48.0
                }
            };
            let mut w = recorded(until_s, &[("circuit_office_sockets_voltage_v", "V", &f)]);
            restored_after_shed(&mut w, s("office-sockets"), 1.0, s("minute"))
        };
        let e = run(200.0, 600.0).unwrap_err();
        assert!(
            e.contains("shed at 00:01:40, back at 00:05:00") && e.contains("200 s later"),
            "{e}"
        );
        run(45.0, 600.0).unwrap();
        let e = run(1000.0, 600.0).unwrap_err();
        assert!(e.contains("still shed at 00:10:00"), "{e}");
        // Never shed: nothing to judge.
        let e = run(0.0, 600.0).unwrap_err();
        assert!(e.contains("never shed"), "{e}");
        // Shed 20 s before the end: too early to tell.
        let e = run(1000.0, 120.0).unwrap_err();
        assert!(e.contains("let 1 minute pass"), "{e}");
    }

    #[test]
    fn a_circuit_off_from_the_start_was_never_shed() {
        let f = step_at(300.0, 0.0, 48.0);
        let mut w = recorded(600.0, &[("circuit_office_sockets_voltage_v", "V", &f)]);
        let e = restored_after_shed(&mut w, s("office-sockets"), 1.0, s("minute")).unwrap_err();
        assert!(e.contains("never shed"), "{e}");
    }

    /// A peak report of the window from `from_s`, received at `at_s`.
    fn peak_report(from_s: f64, at_s: f64, met: bool) -> (f64, firmware::peak::PeakReport) {
        let report = firmware::peak::PeakReport {
            window: 0,
            started: firmware::Millis((from_s * 1000.0) as u64),
            duration_s: (at_s - from_s) as f32,
            assured_w: 300.0,
            avg_reduction_w: if met { 420.0 } else { 180.0 },
            min_1min_reduction_w: 90.0,
            fraction_met: if met { 0.97 } else { 0.4 },
            met,
            battery_wh: 900.0,
            reserve_reached: !met,
            invalid_samples: 0,
        };
        (at_s, report)
    }

    /// The step's judgement of the reports the remote server received
    /// (the step hands it the session's uplink replies).
    #[test]
    fn negative_peak_reported() {
        let (from, to) = (clock_s("16:00").unwrap(), clock_s("20:00").unwrap());
        let missed = [peak_report(from, to + 0.1, false)];
        let e = judge_peak_report(&missed, from, to, true).unwrap_err();
        assert!(
            e.contains("at 20:00:00 it reported the peak from 16:00:00 to 20:00:00 missed")
                && e.contains("average reduction 180 W of 300 W assured"),
            "{e}"
        );
        judge_peak_report(&missed, from, to, false).unwrap();
        let met = [peak_report(from + 0.1, to + 0.1, true)];
        judge_peak_report(&met, from, to, true).unwrap();
        assert!(judge_peak_report(&met, from, to, false).is_err());
        // Another window's report is no report of this one.
        let e = judge_peak_report(&met, from + 3600.0, to, true).unwrap_err();
        assert!(
            e.contains("no report of a peak from 17:00:00 to 20:00:00"),
            "{e}"
        );
        assert!(judge_peak_report(&[], from, to, true)
            .unwrap_err()
            .contains("it received: none"));
        // On a later day.
        let day2 = clock_s("16:00 on day 2").unwrap();
        let later = [peak_report(day2, day2 + 4.0 * 3600.0, true)];
        let e = judge_peak_report(&later, from, to, true).unwrap_err();
        assert!(e.contains("16:00:00 on day 2"), "{e}");
    }

    /// The step reads the reports as the remote server received them.
    #[test]
    fn negative_peak_reported_through_the_step() {
        let (from, to) = (clock_s("16:00").unwrap(), clock_s("20:00").unwrap());
        let run = |met: bool, verdict: &str, until_s: f64| {
            let (at, p) = peak_report(from, to + 0.1, met);
            let mut w = session(
                until_s,
                RecordedSession {
                    uplink_replies: vec![reply(at, Reply::PeakReport(p))],
                    ..Default::default()
                },
            );
            peak_reported(&mut w, s("16:00"), s("20:00"), s(verdict))
        };
        run(true, "met", to + 60.0).unwrap();
        assert!(run(false, "met", to + 60.0).is_err());
        run(false, "missed", to + 60.0).unwrap();
        assert!(run(true, "missed", to + 60.0).is_err());
        // Judged before the window ended: nothing to judge yet.
        let e = run(true, "met", to - 60.0).unwrap_err();
        assert!(e.contains("let time pass first"), "{e}");
    }

    #[test]
    fn moments_on_a_later_day() {
        assert_eq!(clock_s("07:30").unwrap(), 27_000.0);
        assert_eq!(clock_s("07:30 on day 1").unwrap(), 27_000.0);
        assert_eq!(
            clock_s("07:30 on day 3").unwrap(),
            2.0 * 86_400.0 + 27_000.0
        );
        assert_eq!(
            clock_s("24:00").unwrap(),
            clock_s("00:00 on day 2").unwrap()
        );
        let e = clock_s("07:30 on day 0").unwrap_err();
        assert!(e.contains("numbered from 1"), "{e}");
        assert_eq!(clock(2.0 * 86_400.0 + 27_000.0), "07:30:00 on day 3");
        assert_eq!(clock(27_000.0), "07:30:00");
    }

    #[test]
    fn a_window_on_a_later_day() {
        let mut w = recorded(3.0 * 86_400.0, &[]);
        w.last_event_s = Some(100.0);
        let day = 86_400.0;
        assert_eq!(
            w.window("from 16:00 on day 2 to 20:00 on day 2").unwrap(),
            (day + 57_600.0, day + 72_000.0)
        );
        assert_eq!(
            w.window("until 07:30 on day 3").unwrap(),
            (100.0, 2.0 * day + 27_000.0)
        );
    }
}
