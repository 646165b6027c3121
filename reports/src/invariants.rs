//! Always-on invariants: what must hold in every scenario, whatever its
//! `Then` steps ask, judged on the measured signals (the way a
//! deterministic simulator checks its invariants on every run).
//!
//! - **no actuator chatter**: the battery converter (charging / idle /
//!   discharging), the PV (producing / curtailed) and each circuit and
//!   socket (energised / not) change state at most
//!   [`InvariantLimits::max_switches_per_min`] times in any minute;
//! - **cell limits**: the lowest and highest cell voltage and the hottest
//!   cell stay within the pack's datasheet limits;
//! - **no export into a dead network**: with the mains absent, what flows
//!   out through the service cable (`network_export_w`) stays under
//!   [`InvariantLimits::dead_network_export_w`], after a grace of
//!   [`InvariantLimits::dead_network_grace_s`] from the loss of mains;
//! - **the reserve is held**: while the mains is present, once the state
//!   of charge has reached the reserve the controller is configured to
//!   hold, it does not fall more than
//!   [`InvariantLimits::reserve_allowance_soc`] below it;
//! - **energy balance at the connection point**: with the mains present,
//!   the metered import less export agrees with the house's AC demand plus
//!   the charger's input less the inverter's output, over the run, within
//!   [`InvariantLimits::balance_tolerance`].
//!
//! Each is judged with [`Assertion::judge_with_grace`] (the one judge), on
//! the signal itself or on a derived one (switches per minute), so the
//! report draws the verdict the scenario got. A scenario that expects a
//! violation says so with a tag (`@allows-<invariant>`).

use serde::{Deserialize, Serialize};

use crate::clock::clock;
use crate::measured::{figure, Assertion, Bound, Signal};

/// The invariants' names, as `@allows-<name>` tags spell them.
pub const NAMES: [&str; 5] = [
    "chatter",
    "cell-limits",
    "export-without-mains",
    "reserve",
    "energy-balance",
];

/// What the invariants allow. [`InvariantLimits::default`] states the
/// thresholds every scenario is held to; the cell limits and the reserve
/// come from the pack and the controller's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct InvariantLimits {
    /// State changes of one actuator allowed in any 60 s window.
    pub max_switches_per_min: u32,
    /// Battery power beyond which the converter counts as charging or
    /// discharging, W; it counts as idle again within half of it.
    pub battery_active_w: f64,
    /// PV counts as curtailed when less than this share of what is
    /// available reaches the bus (with at least `pv_min_available_w`
    /// available), and as producing again above twice the share.
    pub pv_curtailed_share: f64,
    pub pv_min_available_w: f64,
    /// A circuit or socket counts as energised above this voltage, V, and
    /// as off below half of it.
    pub energised_v: f64,
    /// Cell voltage limits, V, and the hottest cell's limit, °C.
    pub cell_voltage_min_v: f64,
    pub cell_voltage_max_v: f64,
    pub cell_temperature_max_c: f64,
    /// Power into a dead network that counts as export, W.
    pub dead_network_export_w: f64,
    /// Time from the loss of mains an inverter has to stop, s (IEEE
    /// 1547-2018 allows 2 s to cease to energise an island).
    pub dead_network_grace_s: f64,
    /// The reserve state of charge the controller holds (fraction), if it
    /// holds one.
    pub reserve_soc: Option<f64>,
    /// How far below the reserve the measured state of charge may go
    /// (the controller's estimate is not the pack's truth), fraction.
    pub reserve_allowance_soc: f64,
    /// The connection-point balance may be off by this share of the
    /// energy through the meter, plus `balance_floor_kwh`.
    pub balance_tolerance: f64,
    pub balance_floor_kwh: f64,
}

impl Default for InvariantLimits {
    fn default() -> Self {
        InvariantLimits {
            max_switches_per_min: 12,
            battery_active_w: 50.0,
            pv_curtailed_share: 0.2,
            pv_min_available_w: 200.0,
            energised_v: 10.0,
            cell_voltage_min_v: f64::NEG_INFINITY,
            cell_voltage_max_v: f64::INFINITY,
            cell_temperature_max_c: f64::INFINITY,
            dead_network_export_w: 50.0,
            dead_network_grace_s: 2.0,
            reserve_soc: None,
            reserve_allowance_soc: 0.02,
            balance_tolerance: 0.02,
            balance_floor_kwh: 0.05,
        }
    }
}

/// One invariant's verdict in one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvariantVerdict {
    /// One of [`NAMES`].
    pub name: String,
    /// What was held, in words with the threshold.
    pub statement: String,
    pub held: bool,
    /// The scenario allows a violation (`@allows-<name>`): not a failure.
    #[serde(default)]
    pub allowed: bool,
    /// Where and by how much it failed, for the step's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<String>,
    /// The worst figure seen (switches per minute, V, °C, W, SoC, kWh).
    pub worst: f64,
}

impl InvariantVerdict {
    /// Failed and not allowed: the scenario fails.
    pub fn fails(&self) -> bool {
        !self.held && !self.allowed
    }
}

/// The invariants judged on `signals`: verdicts, the assertions behind
/// them (for the plots), and the derived signals those assertions judge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvariantReport {
    pub verdicts: Vec<InvariantVerdict>,
    pub assertions: Vec<Assertion>,
    pub derived: Vec<Signal>,
}

/// Judges every invariant on `signals`; `allowed` lists the names the
/// scenario allows to fail. A signal the capture lacks leaves its
/// invariant unjudged (held, with the reason in the statement).
pub fn check(signals: &[Signal], limits: &InvariantLimits, allowed: &[String]) -> InvariantReport {
    let find = |name: &str| signals.iter().find(|s| s.name == name);
    let mut out = InvariantReport::default();
    chatter(signals, limits, &mut out);
    cell_limits(&find, limits, &mut out);
    export_without_mains(&find, limits, &mut out);
    reserve(&find, limits, &mut out);
    energy_balance(&find, limits, &mut out);
    for v in &mut out.verdicts {
        v.allowed = allowed.contains(&v.name);
    }
    out
}

/// Two-level state with hysteresis: `on` once `x` is above `on_above`,
/// off again once it is at or below `off_at`.
fn hysteresis_states(values: &[f64], on_above: f64, off_at: f64) -> Vec<i8> {
    let mut on = false;
    values
        .iter()
        .map(|&x| {
            if x > on_above {
                on = true;
            } else if x <= off_at {
                on = false;
            }
            i8::from(on)
        })
        .collect()
}

/// The battery converter's state at each sample: -1 charging, 0 idle,
/// 1 discharging (entered beyond `active_w`, left within half of it).
fn battery_states(p_w: &[f64], active_w: f64) -> Vec<i8> {
    let charging = hysteresis_states(
        &p_w.iter().map(|p| -p).collect::<Vec<_>>(),
        active_w,
        active_w / 2.0,
    );
    let discharging = hysteresis_states(p_w, active_w, active_w / 2.0);
    charging
        .iter()
        .zip(&discharging)
        .map(|(c, d)| d - c)
        .collect()
}

/// State changes in the 60 s up to each sample.
fn switches_per_min(name: &str, t_s: &[f64], states: &[i8]) -> Signal {
    let mut at: Vec<f64> = Vec::new();
    for i in 1..states.len().min(t_s.len()) {
        if states[i] != states[i - 1] {
            at.push(t_s[i]);
        }
    }
    let mut first = 0;
    let mut last = 0;
    let mut values = Vec::with_capacity(t_s.len());
    for &t in t_s {
        while last < at.len() && at[last] <= t {
            last += 1;
        }
        while first < last && at[first] <= t - 60.0 {
            first += 1;
        }
        values.push((last - first) as f64);
    }
    Signal {
        name: name.to_owned(),
        unit: "1/min".into(),
        t_s: t_s.to_vec(),
        values,
    }
}

/// The actuators whose state the chatter invariant follows, as derived
/// `<actuator>_switches_per_min` signals.
fn actuator_switches(signals: &[Signal], limits: &InvariantLimits) -> Vec<Signal> {
    let mut out = Vec::new();
    for s in signals {
        let states = if s.name == "battery_power_w" {
            battery_states(&s.values, limits.battery_active_w)
        } else if (s.name.starts_with("circuit_") || s.name.starts_with("socket_"))
            && s.name.ends_with("_voltage_v")
        {
            hysteresis_states(&s.values, limits.energised_v, limits.energised_v / 2.0)
        } else {
            continue;
        };
        let base = s.name.trim_end_matches("_w").trim_end_matches("_v");
        out.push(switches_per_min(
            &format!("{base}_switches_per_min"),
            &s.t_s,
            &states,
        ));
    }
    let pv = signals.iter().find(|s| s.name == "pv_power_w");
    let avail = signals.iter().find(|s| s.name == "pv_available_w");
    if let (Some(pv), Some(avail)) = (pv, avail) {
        let share = limits.pv_curtailed_share;
        let curtailed: Vec<f64> = pv
            .values
            .iter()
            .zip(&avail.values)
            .map(|(&p, &a)| {
                if a < limits.pv_min_available_w {
                    0.0
                } else {
                    // 1 = curtailed, 0 = producing; in between keeps.
                    let r = p / a;
                    if r < share {
                        1.0
                    } else if r > 2.0 * share {
                        0.0
                    } else {
                        0.5
                    }
                }
            })
            .collect();
        let states = hysteresis_states(&curtailed, 0.75, 0.25);
        out.push(switches_per_min("pv_switches_per_min", &pv.t_s, &states));
    }
    out
}

fn chatter(signals: &[Signal], limits: &InvariantLimits, out: &mut InvariantReport) {
    let limit = f64::from(limits.max_switches_per_min);
    let statement = format!(
        "no actuator chatter: the battery converter, the PV and every circuit and socket \
         change state at most {limit} times in any minute"
    );
    let mut verdict = InvariantVerdict {
        name: "chatter".into(),
        statement,
        held: true,
        allowed: false,
        violation: None,
        worst: 0.0,
    };
    for derived in actuator_switches(signals, limits) {
        let (Some(&t0), Some(&t1)) = (derived.t_s.first(), derived.t_s.last()) else {
            continue;
        };
        let a = Assertion::judge(&derived, t0, t1, Bound::AtMost { limit });
        if let Some((_, worst)) = a.extreme {
            verdict.worst = verdict.worst.max(worst);
        }
        if !a.held && a.samples > 0 {
            if verdict.held {
                verdict.violation = a.first_violation.map(|(t, v)| {
                    format!(
                        "{} switched {v} times in the minute to {} ({} at most)",
                        derived.name.trim_end_matches("_switches_per_min"),
                        clock(t),
                        limit
                    )
                });
            }
            verdict.held = false;
            out.assertions.push(a);
            out.derived.push(derived);
        }
    }
    if let (false, Some(v)) = (verdict.held, verdict.violation.as_mut()) {
        v.push_str(&format!("; at worst {} times in a minute", verdict.worst));
    }
    out.verdicts.push(verdict);
}

/// Judges `signal` over its whole capture against `bound` (with
/// `grace_s`), folding the verdict into `verdict` and keeping the
/// assertion for the plot.
fn judge_whole(
    signal: &Signal,
    bound: Bound,
    grace_s: f64,
    verdict: &mut InvariantVerdict,
    out: &mut InvariantReport,
) {
    let (Some(&t0), Some(&t1)) = (signal.t_s.first(), signal.t_s.last()) else {
        return;
    };
    let a = Assertion::judge_with_grace(signal, t0, t1, bound, grace_s);
    note(&a, signal, verdict);
    out.assertions.push(a);
}

/// Folds one assertion into an invariant's verdict.
fn note(a: &Assertion, signal: &Signal, verdict: &mut InvariantVerdict) {
    if let Some((_, e)) = a.extreme {
        let worse = match a.bound {
            Bound::AtLeast { .. } => e < verdict.worst || verdict.worst.is_nan(),
            _ => e > verdict.worst || verdict.worst.is_nan(),
        };
        if worse {
            verdict.worst = e;
        }
    }
    if !a.held && a.samples > 0 && verdict.held {
        verdict.held = false;
        verdict.violation = a.first_violation.map(|(t, v)| {
            format!(
                "{} was {} at {} (allowed: {})",
                signal.name,
                figure(v, &signal.unit),
                clock(t),
                a.bound.describe(&signal.unit)
            )
        });
    }
}

type Find<'a> = dyn Fn(&str) -> Option<&'a Signal> + 'a;

fn cell_limits<'a>(find: &Find<'a>, limits: &InvariantLimits, out: &mut InvariantReport) {
    let mut verdict = InvariantVerdict {
        name: "cell-limits".into(),
        statement: format!(
            "cell voltages within {}..{} V and the hottest cell at most {} °C (the pack's limits)",
            limits.cell_voltage_min_v, limits.cell_voltage_max_v, limits.cell_temperature_max_c
        ),
        held: true,
        allowed: false,
        violation: None,
        worst: f64::NAN,
    };
    let checks = [
        (
            "cell_voltage_min_v",
            Bound::AtLeast {
                limit: limits.cell_voltage_min_v,
            },
        ),
        (
            "cell_voltage_max_v",
            Bound::AtMost {
                limit: limits.cell_voltage_max_v,
            },
        ),
        (
            "pack_temperature_max_c",
            Bound::AtMost {
                limit: limits.cell_temperature_max_c,
            },
        ),
    ];
    for (name, bound) in checks {
        let Some(s) = find(name) else { continue };
        let mut one = verdict.clone();
        one.worst = f64::NAN;
        judge_whole(s, bound, 0.0, &mut one, out);
        if verdict.held && !one.held {
            verdict.held = false;
            verdict.violation = one.violation;
        }
    }
    verdict.worst = 0.0;
    out.verdicts.push(verdict);
}

/// `network_export_w` where the mains is absent, 0 where it is present:
/// what flows into a dead network.
fn dead_network_export(export: &Signal, mains: &Signal) -> Signal {
    let mut values = Vec::with_capacity(export.values.len());
    let mut j = 0;
    for (&t, &v) in export.t_s.iter().zip(&export.values) {
        while j + 1 < mains.t_s.len() && mains.t_s[j + 1] <= t {
            j += 1;
        }
        let present = mains.values.get(j).is_none_or(|m| *m >= 0.5);
        values.push(if present { 0.0 } else { v });
    }
    Signal {
        name: "network_export_without_mains_w".into(),
        unit: export.unit.clone(),
        t_s: export.t_s.clone(),
        values,
    }
}

fn export_without_mains<'a>(find: &Find<'a>, limits: &InvariantLimits, out: &mut InvariantReport) {
    let mut verdict = InvariantVerdict {
        name: "export-without-mains".into(),
        statement: format!(
            "no export into a dead network: with the mains absent, at most {} W out through \
             the service cable after {} s",
            limits.dead_network_export_w, limits.dead_network_grace_s
        ),
        held: true,
        allowed: false,
        violation: None,
        worst: 0.0,
    };
    if let (Some(export), Some(mains)) = (find("network_export_w"), find("mains_present")) {
        let dead = dead_network_export(export, mains);
        let bound = Bound::AtMost {
            limit: limits.dead_network_export_w,
        };
        let before = out.assertions.len();
        judge_whole(&dead, bound, limits.dead_network_grace_s, &mut verdict, out);
        if verdict.held {
            out.assertions.truncate(before);
        } else {
            out.derived.push(dead);
        }
    }
    out.verdicts.push(verdict);
}

/// The windows in which the mains is present, `[from, to]` in s.
fn mains_windows(mains: &Signal) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut start: Option<f64> = None;
    for (&t, &m) in mains.t_s.iter().zip(&mains.values) {
        match (m >= 0.5, start) {
            (true, None) => start = Some(t),
            (false, Some(s)) => {
                out.push((s, t));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(&end)) = (start, mains.t_s.last()) {
        out.push((s, end));
    }
    out
}

fn reserve<'a>(find: &Find<'a>, limits: &InvariantLimits, out: &mut InvariantReport) {
    let Some(reserve) = limits.reserve_soc.filter(|r| *r > 0.0) else {
        return;
    };
    let floor = reserve - limits.reserve_allowance_soc;
    let mut verdict = InvariantVerdict {
        name: "reserve".into(),
        statement: format!(
            "the reserve is held: with the mains present, once at the reserve ({:.0} %) the \
             state of charge stays above {:.0} %",
            reserve * 100.0,
            floor * 100.0
        ),
        held: true,
        allowed: false,
        violation: None,
        worst: f64::NAN,
    };
    if let (Some(soc), Some(mains)) = (find("soc"), find("mains_present")) {
        for (from, to) in mains_windows(mains) {
            let reached = soc
                .t_s
                .iter()
                .zip(&soc.values)
                .find(|(t, v)| **t >= from && **t <= to && **v >= reserve);
            let Some((&t0, _)) = reached else { continue };
            let a = Assertion::judge(soc, t0, to, Bound::AtLeast { limit: floor });
            note(&a, soc, &mut verdict);
            if !a.held {
                out.assertions.push(a);
            }
        }
    }
    if verdict.worst.is_nan() {
        verdict.worst = 0.0;
    }
    out.verdicts.push(verdict);
}

/// ∫ f(sample) dt over the samples where the mains is present, kWh
/// (rectangle rule, each sample held to the next).
fn integrate_kwh(t_s: &[f64], mains: &[f64], f: impl Fn(usize) -> f64) -> f64 {
    let mut wh = 0.0;
    for i in 0..t_s.len().saturating_sub(1) {
        if mains.get(i).is_some_and(|m| *m >= 0.5) {
            wh += f(i) * (t_s[i + 1] - t_s[i]) / 3600.0;
        }
    }
    wh / 1000.0
}

fn energy_balance<'a>(find: &Find<'a>, limits: &InvariantLimits, out: &mut InvariantReport) {
    let names = [
        "grid_import_w",
        "grid_export_w",
        "household_ac_demand_w",
        "charger_ac_power_w",
        "inverter_ac_power_w",
        "mains_present",
    ];
    let found: Vec<&Signal> = names.iter().filter_map(|n| find(n)).collect();
    let mut verdict = InvariantVerdict {
        name: "energy-balance".into(),
        statement: format!(
            "energy balance at the connection point: with the mains present, metered import \
             less export equals AC demand plus charger input less inverter output within \
             {:.0} % of the metered energy + {} kWh",
            limits.balance_tolerance * 100.0,
            limits.balance_floor_kwh
        ),
        held: true,
        allowed: false,
        violation: None,
        worst: 0.0,
    };
    let aligned = found.len() == names.len()
        && found
            .iter()
            .all(|s| s.t_s.len() == found[0].t_s.len() && s.t_s == found[0].t_s);
    if aligned {
        let [imp, exp, demand, charger, inverter, mains] = [0, 1, 2, 3, 4, 5].map(|i| found[i]);
        let t = &imp.t_s;
        let v = |s: &Signal, i: usize| s.values[i];
        let metered = integrate_kwh(t, &mains.values, |i| v(imp, i) - v(exp, i));
        let through = integrate_kwh(t, &mains.values, |i| v(imp, i) + v(exp, i));
        let flows = integrate_kwh(t, &mains.values, |i| {
            v(demand, i) + v(charger, i) - v(inverter, i)
        });
        let residual = metered - flows;
        let allowed = limits.balance_tolerance * through + limits.balance_floor_kwh;
        verdict.worst = residual.abs();
        if residual.is_nan() || residual.abs() > allowed {
            verdict.held = false;
            verdict.violation = Some(format!(
                "the meter counted {metered:.3} kWh net import, the house's flows {flows:.3} kWh: \
                 {residual:+.3} kWh apart ({allowed:.3} kWh allowed)"
            ));
        }
    }
    out.verdicts.push(verdict);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(name: &str, unit: &str, values: &[f64]) -> Signal {
        Signal {
            name: name.into(),
            unit: unit.into(),
            t_s: (0..values.len()).map(|i| i as f64).collect(),
            values: values.to_vec(),
        }
    }

    /// The PV-charge chatter: -1480 W and 0 W in turn, for 5 minutes.
    fn battery_flipping_every_second() -> Vec<f64> {
        (0..300)
            .map(|i| if i % 2 == 0 { -1480.0 } else { 0.0 })
            .collect()
    }

    fn verdict<'a>(r: &'a InvariantReport, name: &str) -> &'a InvariantVerdict {
        r.verdicts.iter().find(|v| v.name == name).expect(name)
    }

    #[test]
    fn a_battery_flipping_every_second_is_chatter_and_a_steady_one_is_not() {
        let flips = battery_flipping_every_second();
        let r = check(
            &[sig("battery_power_w", "W", &flips)],
            &InvariantLimits::default(),
            &[],
        );
        let v = verdict(&r, "chatter");
        assert!(!v.held, "{v:?}");
        assert!(v.fails());
        assert!(v.worst >= 59.0, "{v:?}");
        assert!(v.violation.as_deref().unwrap().contains("battery_power"));
        assert_eq!(r.derived[0].name, "battery_power_switches_per_min");

        let steady: Vec<f64> = (0..300)
            .map(|i| if i < 150 { -1480.0 } else { 0.0 })
            .collect();
        let r = check(
            &[sig("battery_power_w", "W", &steady)],
            &InvariantLimits::default(),
            &[],
        );
        assert!(verdict(&r, "chatter").held);
        assert_eq!(verdict(&r, "chatter").worst, 1.0);
    }

    #[test]
    fn noise_inside_the_hysteresis_is_not_a_switch() {
        // 60 ↔ 140 W: crosses the 100 W threshold but never falls to 50 W.
        let noisy: Vec<f64> = (0..300)
            .map(|i| if i % 2 == 0 { 140.0 } else { 60.0 })
            .collect();
        let r = check(
            &[sig("battery_power_w", "W", &noisy)],
            &InvariantLimits::default(),
            &[],
        );
        assert_eq!(verdict(&r, "chatter").worst, 0.0);
    }

    #[test]
    fn a_circuit_switched_on_and_off_every_few_seconds_is_chatter() {
        let v: Vec<f64> = (0..120)
            .map(|i| if (i / 3) % 2 == 0 { 48.0 } else { 0.0 })
            .collect();
        let r = check(
            &[sig("circuit_lights_voltage_v", "V", &v)],
            &InvariantLimits::default(),
            &[],
        );
        assert!(!verdict(&r, "chatter").held);
    }

    #[test]
    fn pv_curtailed_on_and_off_is_chatter() {
        let avail = vec![1460.0; 200];
        let pv: Vec<f64> = (0..200)
            .map(|i| if i % 2 == 0 { 1460.0 } else { 4.0 })
            .collect();
        let r = check(
            &[
                sig("pv_power_w", "W", &pv),
                sig("pv_available_w", "W", &avail),
            ],
            &InvariantLimits::default(),
            &[],
        );
        assert!(!verdict(&r, "chatter").held);
    }

    #[test]
    fn cells_outside_the_pack_limits_fail_with_the_moment() {
        let limits = InvariantLimits {
            cell_voltage_min_v: 2.5,
            cell_voltage_max_v: 3.65,
            cell_temperature_max_c: 60.0,
            ..Default::default()
        };
        let ok = check(
            &[sig("cell_voltage_max_v", "V", &[3.3, 3.5, 3.6])],
            &limits,
            &[],
        );
        assert!(verdict(&ok, "cell-limits").held);
        let hot = check(
            &[sig("pack_temperature_max_c", "°C", &[30.0, 61.0, 40.0])],
            &limits,
            &[],
        );
        let v = verdict(&hot, "cell-limits");
        assert!(!v.held);
        assert!(
            v.violation.as_deref().unwrap().contains("at 00:00:01"),
            "{v:?}"
        );
    }

    #[test]
    fn export_into_a_dead_network_fails_after_the_grace_only() {
        let mains = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let brief = [900.0, 900.0, 900.0, 900.0, 0.0, 0.0, 0.0, 0.0];
        let long = [900.0; 8];
        let run = |export: &[f64]| {
            check(
                &[
                    sig("network_export_w", "W", export),
                    sig("mains_present", "", &mains),
                ],
                &InvariantLimits::default(),
                &[],
            )
        };
        assert!(verdict(&run(&brief), "export-without-mains").held);
        let r = run(&long);
        let v = verdict(&r, "export-without-mains");
        assert!(!v.held, "{v:?}");
        assert_eq!(r.derived[0].name, "network_export_without_mains_w");
    }

    #[test]
    fn the_reserve_is_judged_once_reached_with_the_mains_present() {
        let limits = InvariantLimits {
            reserve_soc: Some(0.2),
            ..Default::default()
        };
        let mains = [1.0; 6];
        // Starts below the reserve (not a violation), reaches it, holds.
        let held = [0.1, 0.15, 0.2, 0.21, 0.19, 0.2];
        let r = check(
            &[sig("soc", "", &held), sig("mains_present", "", &mains)],
            &limits,
            &[],
        );
        assert!(verdict(&r, "reserve").held);
        let broken = [0.3, 0.25, 0.2, 0.15, 0.1, 0.1];
        let r = check(
            &[sig("soc", "", &broken), sig("mains_present", "", &mains)],
            &limits,
            &[],
        );
        assert!(!verdict(&r, "reserve").held);
        // In a cut the reserve is there to be used.
        let cut = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let r = check(
            &[sig("soc", "", &broken), sig("mains_present", "", &cut)],
            &limits,
            &[],
        );
        assert!(verdict(&r, "reserve").held);
    }

    #[test]
    fn a_meter_that_disagrees_with_the_flows_breaks_the_balance() {
        let n = 3601;
        let flat = |v: f64| vec![v; n];
        let run = |import: f64| {
            check(
                &[
                    sig("grid_import_w", "W", &flat(import)),
                    sig("grid_export_w", "W", &flat(0.0)),
                    sig("household_ac_demand_w", "W", &flat(1000.0)),
                    sig("charger_ac_power_w", "W", &flat(500.0)),
                    sig("inverter_ac_power_w", "W", &flat(0.0)),
                    sig("mains_present", "", &flat(1.0)),
                ],
                &InvariantLimits::default(),
                &[],
            )
        };
        assert!(verdict(&run(1500.0), "energy-balance").held);
        let r = run(1000.0);
        let v = verdict(&r, "energy-balance");
        assert!(!v.held, "{v:?}");
        assert!((v.worst - 0.5).abs() < 0.01, "{v:?}");
    }

    #[test]
    fn an_allowed_violation_is_reported_but_does_not_fail() {
        let flips = battery_flipping_every_second();
        let r = check(
            &[sig("battery_power_w", "W", &flips)],
            &InvariantLimits::default(),
            &["chatter".to_string()],
        );
        let v = verdict(&r, "chatter");
        assert!(!v.held && v.allowed && !v.fails());
    }
}
