//! Steps for protection: sensors forced to a reading, faults and reactions.
//!
//! A forced reading is a sensor fault or an excursion the twin does not
//! produce on its own: the plant link reports the signal at the value from
//! the next plant step on (the twin itself goes on), in the frame the
//! contract carries it in (`PackStatus`, `CellExtremes`, `BusStatus` every
//! 100 ms, `CircuitStatus` every 500 ms per circuit).
//!
//! Reactions are judged two ways, both measured:
//! * on what the plant applied — the controller's command frames as the
//!   plant received and applied them, at the plant step (100 ms): the
//!   reaction time;
//! * on the probe's capture (1 Hz): the physical effect — the pack current,
//!   the PV power, the circuits' far-end voltages. A reaction within 1.1 s
//!   shows in the probe's sample 2 s after the event, not before.
//!
//! Deadlines count from the `When` step that forced the reading.

use cucumber::{then, when};
use twin::house::{signal_slug, PlantCommands};

use super::{
    circuit_voltage, clock, duration_s, in_unit, num, samples, settled_at, StepResult, SHED_V,
};
use crate::scenario::world::{Action, MaslowWorld};

/// Below this the battery counts as not charging / not discharging (A).
const IDLE_A: f64 = 0.5;
/// Below this the PV counts as switched off (W).
const PV_OFF_W: f64 = 5.0;
/// Above this the PV counts as producing (W).
const PV_ON_W: f64 = 50.0;

// ------------------------------------------------------------------ sensors

/// A sensor in the domain's words → (twin signal the plant link reports,
/// unit, what the contract's frame can carry).
fn sensor(words: &str) -> Option<(&'static str, &'static str, f64, f64, &'static str)> {
    Some(match words {
        "highest cell voltage" => ("cell_voltage_max_v", "V", 0.0, 65.535, "CellExtremes"),
        "lowest cell voltage" => ("cell_voltage_min_v", "V", 0.0, 65.535, "CellExtremes"),
        "pack voltage" => ("pack_voltage_v", "V", 0.0, 655.35, "PackStatus"),
        "pack current" => ("pack_current_a", "A", -3276.8, 3276.7, "PackStatus"),
        "highest pack temperature" => ("pack_temperature_max_c", "°C", -40.0, 87.5, "CellExtremes"),
        "lowest pack temperature" => ("pack_temperature_min_c", "°C", -40.0, 87.5, "CellExtremes"),
        "bus voltage" => ("bus_voltage_v", "V", 0.0, 655.35, "BusStatus"),
        _ => return None,
    })
}

#[when(
    regex = r"^the (highest cell voltage|lowest cell voltage|pack voltage|pack current|highest pack temperature|lowest pack temperature|bus voltage) sensor reads (-?[\d.]+) (\S+)$"
)]
fn sensor_reads(w: &mut MaslowWorld, which: String, value: String, unit: String) -> StepResult {
    let (signal, want, lo, hi, frame) =
        sensor(&which).ok_or_else(|| format!("`{which}` is not a sensor the steps know"))?;
    let v = in_unit(num(&value)?, &unit, want)?;
    if !(lo..=hi).contains(&v) {
        return Err(format!(
            "the {which} travels in {frame}, which carries {lo} to {hi} {want}: {value} {unit} would be clamped, not reported"
        ));
    }
    w.act(Action::HoldSensorAt(signal.to_owned(), v))?;
    w.mark(format!("{which} sensor reads {value} {unit}"));
    Ok(())
}

#[when(regex = r"^the (\S+) circuit current sensor reads ([\d.]+) (A|mA)$")]
fn circuit_current_reads(
    w: &mut MaslowWorld,
    circuit: String,
    value: String,
    unit: String,
) -> StepResult {
    w.circuit_index(&circuit)?;
    let amps = in_unit(num(&value)?, &unit, "A")?;
    // The link sends a circuit's current as its power over the bus voltage
    // (plant_link.rs): the power is held at what gives this current at the
    // present bus voltage.
    let plant = w.sim()?.session.plant();
    let bus_id = plant
        .signals()
        .require("bus_voltage_v")
        .map_err(|e| e.to_string())?;
    let bus_v = plant.signals().get(bus_id);
    if bus_v <= 1.0 {
        return Err(format!(
            "the bus is down ({bus_v:.1} V): a circuit current cannot be reported"
        ));
    }
    let power_w = amps * bus_v;
    if !(0.0..=6553.5).contains(&power_w) || amps > 65.535 {
        return Err(format!(
            "CircuitStatus carries up to 65.535 A and 6553.5 W: {value} {unit} at {bus_v:.1} V would be clamped"
        ));
    }
    w.act(Action::HoldSensorAt(
        format!("circuit_{}_power_w", signal_slug(&circuit)),
        power_w,
    ))?;
    w.mark(format!(
        "{circuit} circuit current sensor reads {value} {unit}"
    ));
    Ok(())
}

#[when(regex = r"^the sensors read true again$")]
fn sensors_true(w: &mut MaslowWorld) -> StepResult {
    w.act(Action::ReleaseSensors)?;
    w.mark("sensors read true again");
    Ok(())
}

// ------------------------------------------------- reactions: the commands

/// A safe state as the plant's applied commands show it.
enum Commanded {
    ChargeBlocked,
    DischargeBlocked,
    ContactorOpen,
    PvOff,
    AllCircuitsOff,
    CircuitOff(usize),
}

impl Commanded {
    fn parse(w: &MaslowWorld, words: &str) -> Result<Self, String> {
        Ok(match words {
            "block charging" => Self::ChargeBlocked,
            "block discharging" => Self::DischargeBlocked,
            "open the battery contactor" => Self::ContactorOpen,
            "switch the PV off" => Self::PvOff,
            "switch every circuit off" => Self::AllCircuitsOff,
            other => {
                let name = other
                    .strip_prefix("switch the ")
                    .and_then(|r| r.strip_suffix(" circuit off"))
                    .ok_or_else(|| format!("`{other}` is not a command the steps know"))?;
                Self::CircuitOff(w.circuit_index(name)?)
            }
        })
    }

    /// Whether the commands in force say so (`None`: the house's own
    /// fallback policy, no command from the controller).
    fn holds(&self, c: Option<&PlantCommands>) -> bool {
        let Some(c) = c else {
            return false;
        };
        let circuits = c.circuits_on.as_deref().unwrap_or(&[]);
        match self {
            Self::ChargeBlocked => !c.battery_enabled || c.battery_charge_limit_w <= 0.0,
            Self::DischargeBlocked => !c.battery_enabled || c.battery_discharge_limit_w <= 0.0,
            Self::ContactorOpen => !c.battery_enabled,
            Self::PvOff => c.pv_cap_w.is_some_and(|w| w < 1.0),
            Self::AllCircuitsOff => !circuits.is_empty() && circuits.iter().all(|on| !on),
            Self::CircuitOff(i) => circuits.get(*i).is_some_and(|on| !on),
        }
    }
}

/// What the plant applied, as changes: (time s, commands in force from then).
fn applied(w: &mut MaslowWorld) -> Result<Vec<(f64, Option<PlantCommands>)>, String> {
    Ok(w.applied()?
        .into_iter()
        .map(|a| (a.at_ms as f64 / 1000.0, a.commands))
        .collect())
}

/// The commands in force at `t`, in a few words (for messages).
fn describe_at(changes: &[(f64, Option<PlantCommands>)], t: f64) -> String {
    match changes.iter().rev().find(|(at, _)| *at <= t + 1e-6) {
        None => "nothing applied yet".into(),
        Some((at, None)) => format!("since {at:.1} s the house's own policy (no commands)"),
        Some((at, Some(c))) => format!(
            "since {at:.1} s: battery {}, charge limit {:.0} W, discharge limit {:.0} W, PV cap {}, circuits on {:?}",
            if c.battery_enabled { "enabled" } else { "disabled" },
            c.battery_charge_limit_w,
            c.battery_discharge_limit_w,
            c.pv_cap_w.map_or("none".into(), |w| format!("{w:.0} W")),
            c.circuits_on.as_deref().unwrap_or(&[])
        ),
    }
}

/// Whether `what` held in the commands in force at `t` (the last change at
/// or before `t`).
fn held_at(changes: &[(f64, Option<PlantCommands>)], what: &Commanded, t: f64) -> bool {
    changes
        .iter()
        .rev()
        .find(|(at, _)| *at <= t + 1e-6)
        .is_some_and(|(_, c)| what.holds(c.as_ref()))
}

/// The first change after `from` at which `what` holds (`want`) or stops
/// holding (`!want`).
fn first_change(
    changes: &[(f64, Option<PlantCommands>)],
    what: &Commanded,
    from: f64,
    want: bool,
) -> Option<f64> {
    changes
        .iter()
        .find(|(at, c)| *at > from + 1e-6 && what.holds(c.as_ref()) == want)
        .map(|(t, _)| *t)
}

#[then(
    regex = r"^the plant is commanded to (block charging|block discharging|open the battery contactor|switch the PV off|switch every circuit off|switch the \S+ circuit off) within (\d+) (seconds?|milliseconds?)$"
)]
fn commanded_within(w: &mut MaslowWorld, what: String, n: f64, unit: String) -> StepResult {
    let c = Commanded::parse(w, &what)?;
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let changes = applied(w)?;
    if held_at(&changes, &c, from) {
        return Err(format!(
            "the plant was already commanded to {what} at {} (before the event; {}): the scenario does not show a reaction{}",
            clock(from),
            describe_at(&changes, from),
            w.see_also()
        ));
    }
    match first_change(&changes, &c, from, true) {
        Some(t) if t <= deadline + 1e-6 => Ok(()),
        Some(t) => Err(format!(
            "expected the plant commanded to {what} within {n} {unit} of {} ({:.1} s); the command took effect at {:.1} s, {:.0} ms after the event",
            clock(from),
            from,
            t,
            (t - from) * 1000.0
        )),
        None => Err(format!(
            "expected the plant commanded to {what} within {n} {unit} of {} ({:.1} s); it was not by {:.1} s",
            clock(from),
            from,
            w.now_s()
        )),
    }
}

#[then(
    regex = r"^the plant is still commanded to (block charging|block discharging|open the battery contactor|switch the PV off|switch every circuit off|switch the \S+ circuit off)\s*(.*)$"
)]
fn still_commanded(w: &mut MaslowWorld, what: String, window: String) -> StepResult {
    let c = Commanded::parse(w, &what)?;
    let (from, to) = w.window(&window)?;
    w.check_window_reached(to)?;
    let changes = applied(w)?;
    if !held_at(&changes, &c, from) {
        return Err(format!(
            "expected the plant commanded to {what} from {} to {}; it was not at {} ({})",
            clock(from),
            clock(to),
            clock(from),
            describe_at(&changes, from)
        ));
    }
    if let Some(t) = first_change(&changes, &c, from, false).filter(|t| *t <= to + 1e-6) {
        return Err(format!(
            "expected the plant commanded to {what} from {} to {}; the command was lifted at {} ({t:.1} s)",
            clock(from),
            clock(to),
            clock(t)
        ));
    }
    Ok(())
}

#[then(
    regex = r"^the plant is no longer commanded to (block charging|block discharging|open the battery contactor|switch the PV off|switch every circuit off|switch the \S+ circuit off) within (\d+) (seconds?|milliseconds?)$"
)]
fn no_longer_commanded(w: &mut MaslowWorld, what: String, n: f64, unit: String) -> StepResult {
    let c = Commanded::parse(w, &what)?;
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let changes = applied(w)?;
    if !held_at(&changes, &c, from) {
        return Err(format!(
            "the plant was not commanded to {what} at {} (the event; {}): nothing to lift",
            clock(from),
            describe_at(&changes, from)
        ));
    }
    match first_change(&changes, &c, from, false) {
        Some(t) if t <= deadline + 1e-6 => Ok(()),
        Some(t) => Err(format!(
            "expected the command to {what} lifted within {n} {unit} of {}; it was lifted at {:.1} s, {:.0} ms after the event",
            clock(from),
            t,
            (t - from) * 1000.0
        )),
        None => Err(format!(
            "expected the command to {what} lifted within {n} {unit} of {}; it was still in force at {} ({})",
            clock(from),
            clock(w.now_s()),
            describe_at(&changes, w.now_s())
        )),
    }
}

// ------------------------------------------------ reactions: the measured

/// The probe's last sample of `signal` at or before `t`.
fn sample_before(w: &MaslowWorld, signal: &str, t: f64) -> Result<Option<(f64, f64)>, String> {
    Ok(w.series(signal)?.window(t - 5.0, t + 1e-6).last())
}

#[then(regex = r"^the battery stops (charging|discharging) within (\d+) (seconds?|milliseconds?)$")]
fn battery_stops(w: &mut MaslowWorld, what: String, n: f64, unit: String) -> StepResult {
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    // Pack current: positive = discharge.
    let sign = if what == "charging" { -1.0 } else { 1.0 };
    match sample_before(w, "pack_current_a", from)? {
        Some((_, i)) if sign * i > IDLE_A => {}
        other => {
            return Err(format!(
                "the battery was not {what} when the event came at {} (pack current {}): the scenario does not show it stopping{}",
                clock(from),
                other.map_or("not measured".into(), |(_, i)| format!("{i:.2} A")),
                w.see_also()
            ))
        }
    }
    let s = w.series("pack_current_a")?.clone();
    let xs = samples(&s, from, w.now_s());
    match settled_at(&xs, |i| sign * i <= IDLE_A) {
        Some(t) if t <= deadline + 1e-6 => Ok(()),
        other => Err(format!(
            "expected the battery to stop {what} (pack current {}{IDLE_A} A) within {n} {unit} of {}; {}{}",
            if sign < 0.0 { "≥ -" } else { "≤ " },
            clock(from),
            match other {
                Some(t) => format!("it stopped for good only at {} ({:.0} s after)", clock(t), t - from),
                None => format!(
                    "it had not stopped by {} (last {:.2} A)",
                    clock(w.now_s()),
                    xs.last().map_or(f64::NAN, |(_, v)| *v)
                ),
            },
            w.see_also()
        )),
    }
}

#[then(regex = r"^the battery (charges|discharges) again within (\d+) (seconds?|minutes?)$")]
fn battery_again(w: &mut MaslowWorld, what: String, n: f64, unit: String) -> StepResult {
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let sign = if what == "charges" { -1.0 } else { 1.0 };
    let s = w.series("pack_current_a")?.clone();
    let xs = samples(&s, from, deadline);
    match xs.iter().find(|(_, i)| sign * i > IDLE_A) {
        Some(_) => Ok(()),
        None => Err(format!(
            "expected the battery to {} again (pack current {}{IDLE_A} A) within {n} {unit} of {}; it did not (from {:.2} A to {:.2} A){}",
            if sign < 0.0 { "charge" } else { "discharge" },
            if sign < 0.0 { "< -" } else { "> " },
            clock(from),
            xs.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min),
            xs.iter().map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::max),
            w.see_also()
        )),
    }
}

#[then(regex = r"^the battery stays (off|blocked from charging|blocked from discharging)\s*(.*)$")]
fn battery_stays(w: &mut MaslowWorld, how: String, window: String) -> StepResult {
    let (from, to) = w.window(&window)?;
    w.check_window_reached(to)?;
    let s = w.series("pack_current_a")?.clone();
    let xs = samples(&s, from, to);
    if xs.is_empty() {
        return Err(format!(
            "no samples of the pack current from {} to {}",
            clock(from),
            clock(to)
        ));
    }
    let ok = |i: f64| match how.as_str() {
        "off" => i.abs() < IDLE_A,
        "blocked from charging" => i >= -IDLE_A,
        _ => i <= IDLE_A,
    };
    match xs.iter().find(|(_, i)| !ok(*i)) {
        None => Ok(()),
        Some((t, i)) => Err(format!(
            "expected the battery {how} ({}{IDLE_A} A) from {} to {}; measured {i:.2} A at {}{}",
            match how.as_str() {
                "off" => "|pack current| < ",
                "blocked from charging" => "pack current ≥ -",
                _ => "pack current ≤ ",
            },
            clock(from),
            clock(to),
            clock(*t),
            w.see_also()
        )),
    }
}

#[then(regex = r"^the PV is switched off within (\d+) (seconds?|milliseconds?)$")]
fn pv_off_within(w: &mut MaslowWorld, n: f64, unit: String) -> StepResult {
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    match sample_before(w, "pv_power_w", from)? {
        Some((_, p)) if p > PV_ON_W => {}
        other => {
            return Err(format!(
                "the PV was not producing when the event came at {} ({}): the scenario does not show it switched off{}",
                clock(from),
                other.map_or("not measured".into(), |(_, p)| format!("{p:.0} W")),
                w.see_also()
            ))
        }
    }
    let s = w.series("pv_power_w")?.clone();
    let xs = samples(&s, from, w.now_s());
    match settled_at(&xs, |p| p < PV_OFF_W) {
        Some(t) if t <= deadline + 1e-6 => Ok(()),
        other => Err(format!(
            "expected the PV power below {PV_OFF_W} W within {n} {unit} of {}; {}{}",
            clock(from),
            match other {
                Some(t) => format!(
                    "it stayed below only from {} ({:.0} s after)",
                    clock(t),
                    t - from
                ),
                None => format!(
                    "measured {:.0} W at {}",
                    xs.last().map_or(f64::NAN, |(_, v)| *v),
                    clock(w.now_s())
                ),
            },
            w.see_also()
        )),
    }
}

#[then(regex = r"^the PV produces again within (\d+) (seconds?|minutes?)$")]
fn pv_again(w: &mut MaslowWorld, n: f64, unit: String) -> StepResult {
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let s = w.series("pv_power_w")?.clone();
    let xs = samples(&s, from, deadline);
    match xs.iter().find(|(_, p)| *p > PV_ON_W) {
        Some(_) => Ok(()),
        None => Err(format!(
            "expected the PV power above {PV_ON_W} W within {n} {unit} of {}; at most {:.0} W{}",
            clock(from),
            xs.iter().map(|(_, v)| *v).fold(0.0, f64::max),
            w.see_also()
        )),
    }
}

#[then(regex = r"^the PV stays off\s*(.*)$")]
fn pv_stays_off(w: &mut MaslowWorld, window: String) -> StepResult {
    let (from, to) = w.window(&window)?;
    w.check_window_reached(to)?;
    let s = w.series("pv_power_w")?.clone();
    let xs = samples(&s, from, to);
    if xs.is_empty() {
        return Err(format!(
            "no samples of the PV power from {} to {}",
            clock(from),
            clock(to)
        ));
    }
    match xs.iter().find(|(_, p)| *p >= PV_OFF_W) {
        None => Ok(()),
        Some((t, p)) => Err(format!(
            "expected the PV power below {PV_OFF_W} W from {} to {}; measured {p:.0} W at {}{}",
            clock(from),
            clock(to),
            clock(*t),
            w.see_also()
        )),
    }
}

/// Every circuit's far-end voltage.
fn all_circuits(w: &MaslowWorld) -> Result<Vec<(String, crate::instrument::TimeSeries)>, String> {
    w.house()?
        .circuit_names()
        .map(|n| circuit_voltage(w, n).map(|s| (n.to_owned(), s)))
        .collect()
}

#[then(regex = r"^every circuit is shed within (\d+) (seconds?|milliseconds?)$")]
fn every_circuit_shed(w: &mut MaslowWorld, n: f64, unit: String) -> StepResult {
    let from = w.last_event_s.ok_or("nothing happened yet")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    let mut late = Vec::new();
    for (name, s) in all_circuits(w)? {
        let xs = samples(&s, from, w.now_s());
        match settled_at(&xs, |v| v < SHED_V) {
            Some(t) if t <= deadline + 1e-6 => {}
            Some(t) => late.push(format!("{name} shed from {}", clock(t))),
            None => late.push(format!(
                "{name} at {:.1} V at {}",
                xs.last().map_or(f64::NAN, |(_, v)| *v),
                clock(w.now_s())
            )),
        }
    }
    if late.is_empty() {
        return Ok(());
    }
    Err(format!(
        "expected every circuit shed (< {SHED_V} V) within {n} {unit} of {}; measured: {}{}",
        clock(from),
        late.join(", "),
        w.see_also()
    ))
}

#[then(regex = r"^(every circuit|the \S+ circuit) stays shed\s*(.*)$")]
fn stays_shed(w: &mut MaslowWorld, which: String, window: String) -> StepResult {
    let (from, to) = w.window(&window)?;
    w.check_window_reached(to)?;
    let circuits = if which == "every circuit" {
        all_circuits(w)?
    } else {
        let name = which
            .trim_start_matches("the ")
            .trim_end_matches(" circuit")
            .to_owned();
        let s = circuit_voltage(w, &name)?;
        vec![(name, s)]
    };
    for (name, s) in circuits {
        let xs = samples(&s, from, to);
        if xs.is_empty() {
            return Err(format!(
                "no samples of the {name} circuit from {} to {}",
                clock(from),
                clock(to)
            ));
        }
        if let Some((t, v)) = xs.iter().find(|(_, v)| *v >= SHED_V) {
            return Err(format!(
                "expected the {name} circuit shed (< {SHED_V} V) from {} to {}; measured {v:.1} V at {}{}",
                clock(from),
                clock(to),
                clock(*t),
                w.see_also()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rig::plant::AppliedCommands;
    use crate::scenario::steps::negative::{recorded, s, session, step_at};
    use crate::scenario::world::RecordedSession;

    fn after_event(f: &dyn Fn(f64) -> f64, signal: &str) -> MaslowWorld {
        let mut w = recorded(600.0, &[(signal, "", f)]);
        w.last_event_s = Some(100.0);
        w
    }

    #[test]
    fn negative_battery_stops() {
        // Discharging at 20 A, stopping at `at`.
        let run = |at: f64| {
            let f = step_at(at, 20.0, 0.0);
            battery_stops(
                &mut after_event(&f, "pack_current_a"),
                s("discharging"),
                5.0,
                s("seconds"),
            )
        };
        assert!(run(200.0).is_err());
        run(103.0).unwrap();
        // Not discharging when the event came: nothing shown stopping.
        assert!(battery_stops(
            &mut after_event(&|_| 0.0, "pack_current_a"),
            s("discharging"),
            5.0,
            s("seconds")
        )
        .is_err());
    }

    #[test]
    fn negative_battery_again() {
        let run = |at: f64| {
            let f = step_at(at, 0.0, -20.0);
            battery_again(
                &mut after_event(&f, "pack_current_a"),
                s("charges"),
                60.0,
                s("seconds"),
            )
        };
        assert!(run(400.0).is_err());
        run(130.0).unwrap();
    }

    #[test]
    fn negative_battery_stays() {
        let run = |f: &dyn Fn(f64) -> f64| {
            battery_stays(
                &mut after_event(f, "pack_current_a"),
                s("blocked from charging"),
                s("since then"),
            )
        };
        assert!(run(&|t| if t == 300.0 { -10.0 } else { 5.0 }).is_err());
        run(&|_| 5.0).unwrap();
    }

    #[test]
    fn negative_pv_off_within() {
        let run = |at: f64| {
            let f = step_at(at, 1500.0, 0.0);
            pv_off_within(&mut after_event(&f, "pv_power_w"), 10.0, s("seconds"))
        };
        assert!(run(300.0).is_err());
        run(101.0).unwrap();
    }

    #[test]
    fn negative_pv_again() {
        let run = |at: f64| {
            let f = step_at(at, 0.0, 1500.0);
            pv_again(&mut after_event(&f, "pv_power_w"), 2.0, s("minutes"))
        };
        assert!(run(400.0).is_err());
        run(150.0).unwrap();
    }

    #[test]
    fn negative_pv_stays_off() {
        let run = |f: &dyn Fn(f64) -> f64| {
            pv_stays_off(&mut after_event(f, "pv_power_w"), s("since then"))
        };
        assert!(run(&|t| if t == 500.0 { 800.0 } else { 0.0 }).is_err());
        run(&|_| 0.0).unwrap();
    }

    /// Every circuit of the default house at 48 V, `late` shed at `at`,
    /// the others at 105 s.
    fn circuits(late: &str, at: f64) -> MaslowWorld {
        let names = [
            "lighting_downstairs",
            "lighting_upstairs",
            "office_sockets",
            "living_sockets",
        ];
        type Voltage = Box<dyn Fn(f64) -> f64>;
        let fs: Vec<(String, Voltage)> = names
            .iter()
            .map(|n| {
                let t0 = if *n == late { at } else { 105.0 };
                let f: Voltage = Box::new(step_at(t0, 48.0, 0.0));
                (format!("circuit_{n}_voltage_v"), f)
            })
            .collect();
        let signals: Vec<crate::scenario::steps::negative::Recorded<'_>> = fs
            .iter()
            .map(|(n, f)| (n.as_str(), "V", f.as_ref()))
            .collect();
        let mut w = recorded(600.0, &signals);
        w.last_event_s = Some(100.0);
        w
    }

    #[test]
    fn negative_every_circuit_shed() {
        let e = every_circuit_shed(&mut circuits("office_sockets", 300.0), 10.0, s("seconds"))
            .unwrap_err();
        assert!(e.contains("office-sockets"), "{e}");
        every_circuit_shed(&mut circuits("office_sockets", 105.0), 10.0, s("seconds")).unwrap();
    }

    #[test]
    fn negative_stays_shed() {
        let run = |f: &dyn Fn(f64) -> f64| {
            let mut w = recorded(600.0, &[("circuit_office_sockets_voltage_v", "V", f)]);
            w.last_event_s = Some(100.0);
            stays_shed(&mut w, s("the office-sockets circuit"), s("since then"))
        };
        assert!(run(&|t| if t == 400.0 { 48.0 } else { 0.0 }).is_err());
        run(&|_| 0.0).unwrap();
    }

    /// The commands of an assembly running the default house: battery
    /// enabled both ways, no PV cap, every circuit on.
    fn normal() -> PlantCommands {
        PlantCommands {
            battery_enabled: true,
            battery_discharge_limit_w: 5000.0,
            battery_charge_limit_w: 5000.0,
            charger_enabled: false,
            inverter_enabled: true,
            ..PlantCommands::no_assembly(4, 0)
        }
    }

    /// A world whose plant applied `changes` (s, commands; `None`: the
    /// house's own policy), the event at 00:01:40.
    fn applied_world(changes: Vec<(f64, Option<PlantCommands>)>) -> MaslowWorld {
        let mut w = session(
            600.0,
            RecordedSession {
                applied: changes
                    .into_iter()
                    .map(|(t, commands)| AppliedCommands {
                        at_ms: (t * 1000.0).round() as u64,
                        commands,
                    })
                    .collect(),
                ..Default::default()
            },
        );
        w.last_event_s = Some(100.0);
        w
    }

    #[test]
    fn negative_commanded_within() {
        let blocked = Some(PlantCommands {
            battery_charge_limit_w: 0.0,
            ..normal()
        });
        let run = |changes| {
            commanded_within(
                &mut applied_world(changes),
                s("block charging"),
                500.0,
                s("milliseconds"),
            )
        };
        run(vec![(0.0, Some(normal())), (100.3, blocked.clone())]).unwrap();
        let e = run(vec![(0.0, Some(normal())), (101.2, blocked.clone())]).unwrap_err();
        assert!(e.contains("took effect at 101.2 s, 1200 ms after"), "{e}");
        let e = run(vec![(0.0, Some(normal()))]).unwrap_err();
        assert!(e.contains("it was not by 600.0 s"), "{e}");
        // Blocked before the event: no reaction shown.
        let e = run(vec![(0.0, Some(normal())), (50.0, blocked)]).unwrap_err();
        assert!(
            e.contains("already commanded to block charging at 00:01:40"),
            "{e}"
        );
        // The house's own policy is no command.
        assert!(run(vec![(0.0, Some(normal())), (100.3, None)]).is_err());
    }

    #[test]
    fn negative_still_commanded() {
        let office = applied_world(Vec::new())
            .circuit_index("office-sockets")
            .unwrap();
        let mut circuits = vec![true; 4];
        circuits[office] = false;
        let off = PlantCommands {
            circuits_on: Some(circuits),
            ..normal()
        };
        let run = |changes| {
            still_commanded(
                &mut applied_world(changes),
                s("switch the office-sockets circuit off"),
                s("since then"),
            )
        };
        run(vec![(0.0, Some(normal())), (50.0, Some(off.clone()))]).unwrap();
        // Another change that keeps the circuit off does not lift it.
        let also_blocked = PlantCommands {
            battery_charge_limit_w: 0.0,
            ..off.clone()
        };
        run(vec![
            (0.0, Some(normal())),
            (50.0, Some(off.clone())),
            (200.0, Some(also_blocked)),
        ])
        .unwrap();
        let e = run(vec![
            (0.0, Some(normal())),
            (50.0, Some(off.clone())),
            (300.0, Some(normal())),
        ])
        .unwrap_err();
        assert!(e.contains("lifted at 00:05:00"), "{e}");
        let e = run(vec![(0.0, Some(normal())), (150.0, Some(off))]).unwrap_err();
        assert!(e.contains("it was not at 00:01:40"), "{e}");
    }

    #[test]
    fn negative_no_longer_commanded() {
        let pv_off = Some(PlantCommands {
            pv_cap_w: Some(0.0),
            ..normal()
        });
        let run = |changes| {
            no_longer_commanded(
                &mut applied_world(changes),
                s("switch the PV off"),
                2.0,
                s("seconds"),
            )
        };
        run(vec![(0.0, pv_off.clone()), (101.0, Some(normal()))]).unwrap();
        // The house's own policy lifts every command.
        run(vec![(0.0, pv_off.clone()), (101.0, None)]).unwrap();
        let e = run(vec![(0.0, pv_off.clone()), (103.0, Some(normal()))]).unwrap_err();
        assert!(e.contains("lifted at 103.0 s, 3000 ms after"), "{e}");
        let e = run(vec![(0.0, pv_off)]).unwrap_err();
        assert!(e.contains("still in force at 00:10:00"), "{e}");
        let e = run(vec![(0.0, Some(normal()))]).unwrap_err();
        assert!(e.contains("nothing to lift"), "{e}");
    }
}
