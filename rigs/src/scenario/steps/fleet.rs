//! Fleet steps (`@fleet`): a fleet scenario from `rigs/fleets/`, faults
//! on it, the in-process lockstep run, and judgements on what was
//! measured — each branch's transformer power from the feeder power flow,
//! the branch's measured battery power, the counters the assemblies report
//! in their telemetry, and the server's compliance report.
//!
//! Times are `HH:MM` local clock on the fleet's start date.

use std::sync::Arc;

use cucumber::{given, then, when};

use crate::fleet::run::{run_in_process, RunOptions, RunOutcome};
use crate::fleet::scenario::{
    AttackKind, AttackSpec, DropoutSpec, FleetScenario, Requirement, SettingValue, SettingsChange,
    SilentSpec,
};
use crate::scenario::world::{FleetState, MaslowWorld};

use super::{clock_s, StepResult};

fn hours(hhmm: &str) -> Result<f64, String> {
    Ok(clock_s(hhmm)? / 3600.0)
}

fn fleet(w: &mut MaslowWorld) -> Result<&mut FleetState, String> {
    w.fleet
        .as_deref_mut()
        .ok_or_else(|| "no fleet: start with `Given the fleet NAME`".to_string())
}

fn outcome(w: &MaslowWorld) -> Result<(&FleetScenario, &RunOutcome), String> {
    let f = w
        .fleet
        .as_deref()
        .ok_or_else(|| "no fleet: start with `Given the fleet NAME`".to_string())?;
    let o = f.outcome.as_ref().ok_or_else(|| {
        "the fleet has not run: add `When the fleet runs until HH:MM`".to_string()
    })?;
    Ok((&f.scenario, o))
}

fn check_branch(sc: &FleetScenario, branch: u32) -> StepResult {
    if sc.branch(branch).is_none() {
        return Err(format!(
            "the fleet has branches 1..={}, not {branch}",
            sc.branches.len()
        ));
    }
    Ok(())
}

/// (minute, value) of a branch's rows in `[from, to)`.
fn branch_series(
    sc: &FleetScenario,
    o: &RunOutcome,
    branch: u32,
    from: &str,
    to: &str,
    value: impl Fn(&crate::fleet::server::BranchMinuteRow) -> f64,
) -> Result<Vec<(u32, f64)>, String> {
    check_branch(sc, branch)?;
    let (a, b) = (sc.minute_of(hours(from)?), sc.minute_of(hours(to)?));
    let v: Vec<(u32, f64)> = o
        .rows
        .iter()
        .filter(|r| r.report.branch_id == branch && r.minute >= a && r.minute < b)
        .map(|r| (r.minute, value(r)))
        .collect();
    if v.is_empty() {
        return Err(format!(
            "no measurement of branch {branch} from {from} to {to}: the run covers {:.2} h from {:.2} h",
            f64::from(sc.duration_min) / 60.0,
            sc.start_hour
        ));
    }
    Ok(v)
}

/// The last minute's telemetry of every assembly on `branch` (an error if
/// none reported).
fn branch_telemetry(
    o: &RunOutcome,
    branch: u32,
) -> Result<Vec<&crate::fleet::wire::Telemetry>, String> {
    let t: Vec<_> = o
        .telemetry
        .iter()
        .filter(|t| t.branch_id == branch)
        .collect();
    if t.is_empty() {
        return Err(format!("no assembly on branch {branch} reported telemetry"));
    }
    Ok(t)
}

/// The server's compliance report of `branch`.
fn branch_report(
    w: &MaslowWorld,
    branch: u32,
) -> Result<&crate::fleet::server::BranchReport, String> {
    let (sc, o) = outcome(w)?;
    check_branch(sc, branch)?;
    o.report
        .branches
        .iter()
        .find(|b| b.branch_id == branch)
        .ok_or_else(|| format!("the report has no branch {branch}"))
}

/// Passes when no assembly on `branch` is `off`; else names each one that
/// is (site, what `off` found) and what they `report`.
fn every_assembly<T: std::fmt::Debug>(
    w: &MaslowWorld,
    branch: u32,
    report: &str,
    off: impl Fn(&crate::fleet::wire::Telemetry) -> Option<T>,
) -> StepResult {
    let (sc, o) = outcome(w)?;
    check_branch(sc, branch)?;
    let t = branch_telemetry(o, branch)?;
    let bad: Vec<(u32, T)> = t
        .iter()
        .filter_map(|t| off(t).map(|v| (t.site_id, v)))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} of {} assemblies on branch {branch} report {report} (site, value): {bad:?}",
        bad.len(),
        t.len()
    ))
}

#[given(regex = r"^the fleet (\S+)$")]
fn the_fleet(w: &mut MaslowWorld, name: String) -> StepResult {
    let rig = w.settings()?.rig_path.clone();
    let dir = rig
        .parent()
        .map(|p| p.join("fleets"))
        .unwrap_or_else(|| "fleets".into());
    let path = dir.join(format!("{name}.toml"));
    let scenario = FleetScenario::load(&path).map_err(|e| e.to_string())?;
    w.fleet = Some(Box::new(FleetState {
        scenario,
        outcome: None,
    }));
    Ok(())
}

#[given(
    regex = r"^the server is silent from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?)$"
)]
fn server_silent(w: &mut MaslowWorld, from: String, to: String) -> StepResult {
    let (from_h, to_h) = (hours(&from)?, hours(&to)?);
    if to_h <= from_h {
        return Err(format!("{from} to {to} is an empty window"));
    }
    fleet(w)?
        .scenario
        .faults
        .server_silent
        .push(SilentSpec { from_h, to_h });
    Ok(())
}

#[given(
    regex = r"^(\d+) assembl(?:y|ies) on branch (\d+) drops? out at (\d\d:\d\d(?: on day \d+)?)$"
)]
fn drop_out(w: &mut MaslowWorld, count: u32, branch: u32, at: String) -> StepResult {
    let at_h = hours(&at)?;
    let f = fleet(w)?;
    check_branch(&f.scenario, branch)?;
    f.scenario.faults.dropouts.push(DropoutSpec {
        at_h,
        branch,
        count,
    });
    Ok(())
}

#[given(
    regex = r"^an attacker sends a (forged|replayed) dispatch to branch (\d+) at (\d\d:\d\d(?: on day \d+)?)$"
)]
fn attack(w: &mut MaslowWorld, kind: String, branch: u32, at: String) -> StepResult {
    let at_h = hours(&at)?;
    let f = fleet(w)?;
    check_branch(&f.scenario, branch)?;
    let kind = if kind == "forged" {
        AttackKind::Forged
    } else {
        AttackKind::Replay
    };
    f.scenario
        .faults
        .attacks
        .push(AttackSpec { at_h, branch, kind });
    Ok(())
}

fn settings_change(
    w: &mut MaslowWorld,
    branch: u32,
    at: &str,
    set: impl FnOnce(&mut SettingsChange),
) -> StepResult {
    let at_h = hours(at)?;
    let f = fleet(w)?;
    check_branch(&f.scenario, branch)?;
    let mut c = SettingsChange {
        at_h,
        branches: vec![branch],
        participating: None,
        reserve_soc: None,
        export_limit_w: None,
        max_sink_w: None,
        max_source_w: None,
        start_delay_max_s: None,
    };
    set(&mut c);
    f.scenario.settings.push(c);
    Ok(())
}

#[given(
    regex = r"^the server sets the reserve to (\d+)% on branch (\d+) at (\d\d:\d\d(?: on day \d+)?)$"
)]
fn server_sets_reserve(w: &mut MaslowWorld, percent: u32, branch: u32, at: String) -> StepResult {
    if percent > 100 {
        return Err(format!("a reserve of {percent}% is not a state of charge"));
    }
    settings_change(w, branch, &at, |c| {
        c.reserve_soc = Some(SettingValue::Value(f64::from(percent) / 100.0));
    })
}

#[given(
    regex = r"^the server opts branch (\d+) (out of|back into) dispatch at (\d\d:\d\d(?: on day \d+)?)$"
)]
fn server_opts(w: &mut MaslowWorld, branch: u32, way: String, at: String) -> StepResult {
    settings_change(w, branch, &at, |c| {
        c.participating = Some(SettingValue::Value(way == "back into"));
    })
}

/// A cap on the branch transformer's power the server is to hold, like a
/// fleet file's `peak_cap` requirement but on this branch alone.
#[given(
    regex = r"^branch (\d+) must stay below ([\d.]+) kW from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?)$"
)]
fn branch_cap(
    w: &mut MaslowWorld,
    branch: u32,
    kw: String,
    from: String,
    to: String,
) -> StepResult {
    let cap_kw = super::num(&kw)?;
    let (from_h, to_h) = (hours(&from)?, hours(&to)?);
    if to_h <= from_h {
        return Err(format!(
            "from {from} to {to} is an empty window (a later day: `{to} on day 2`)"
        ));
    }
    let f = fleet(w)?;
    check_branch(&f.scenario, branch)?;
    if from_h < f.scenario.start_hour {
        return Err(format!(
            "the fleet starts at {}: a requirement from {from} begins before it",
            f.scenario.clock(0)
        ));
    }
    f.scenario.branch_requirements.push((
        branch,
        Requirement::PeakCap {
            cap_kw,
            from_h,
            to_h,
        },
    ));
    Ok(())
}

#[when(regex = r"^the fleet runs until (\d\d:\d\d(?: on day \d+)?)$")]
fn runs_until(w: &mut MaslowWorld, until: String) -> StepResult {
    let until_h = hours(&until)?;
    let sabotage = w.settings()?.rig.sabotage;
    let f = fleet(w)?;
    if until_h <= f.scenario.start_hour {
        return Err(format!(
            "the fleet starts at {:.2} h: run until a later time than {until}",
            f.scenario.start_hour
        ));
    }
    let mut sc = f
        .scenario
        .clone()
        .with_hours(until_h - f.scenario.start_hour);
    sc.sabotage = sabotage;
    // Two threads: results do not depend on it; keeps a suite's parallel
    // scenarios from oversubscribing the machine.
    let opts = RunOptions {
        threads: 2,
        ..RunOptions::default()
    };
    let o = run_in_process(Arc::new(sc.clone()), &opts).map_err(|e| e.to_string())?;
    f.scenario = sc;
    f.outcome = Some(o);
    Ok(())
}

#[then(
    regex = r"^the transformer power of branch (\d+) is (at most|at least) (-?[\d.]+) kW in at least (\d+)% of the minutes from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?)$"
)]
fn transformer_share(
    w: &mut MaslowWorld,
    branch: u32,
    how: String,
    kw: f64,
    pct: f64,
    from: String,
    to: String,
) -> StepResult {
    let (sc, o) = outcome(w)?;
    let v = branch_series(sc, o, branch, &from, &to, |r| r.report.p_kw())?;
    let ok = v
        .iter()
        .filter(|(_, p)| if how == "at most" { *p <= kw } else { *p >= kw })
        .count();
    let share = 100.0 * ok as f64 / v.len() as f64;
    if share + 1e-9 < pct {
        let worst = if how == "at most" {
            v.iter()
                .cloned()
                .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
        } else {
            v.iter()
                .cloned()
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
        };
        return Err(format!(
            "branch {branch}'s transformer power was {how} {kw} kW in {ok} of {} minutes ({share:.1} %, wanted {pct} %); worst {:.2} kW at minute {}",
            v.len(),
            worst.1,
            worst.0
        ));
    }
    Ok(())
}

#[then(
    regex = r"^the (transformer|battery) power of branch (\d+) averages (at most|at least) (-?[\d.]+) kW from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?)$"
)]
fn power_mean(
    w: &mut MaslowWorld,
    what: String,
    branch: u32,
    how: String,
    kw: f64,
    from: String,
    to: String,
) -> StepResult {
    let (sc, o) = outcome(w)?;
    let v = branch_series(sc, o, branch, &from, &to, |r| {
        if what == "transformer" {
            r.report.p_kw()
        } else {
            r.report.battery_w / 1000.0
        }
    })?;
    let mean = v.iter().map(|(_, p)| p).sum::<f64>() / v.len() as f64;
    let ok = if how == "at most" {
        mean <= kw
    } else {
        mean >= kw
    };
    if !ok {
        return Err(format!(
            "branch {branch}'s {what} power averaged {mean:.2} kW from {from} to {to}, not {how} {kw} kW"
        ));
    }
    Ok(())
}

#[then(
    regex = r"^no pack on branch (\d+) is discharged below (\d+)% from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?)$"
)]
fn soc_floor(
    w: &mut MaslowWorld,
    branch: u32,
    percent: u32,
    from: String,
    to: String,
) -> StepResult {
    let (sc, o) = outcome(w)?;
    // The lowest pack SOC on the branch as the houses measure it, each
    // minute's end (not the SOC the assemblies report). It may not fall
    // below the floor, or, where it began below the floor, below where it
    // began (less half a point of measurement noise).
    let v = branch_series(sc, o, branch, &from, &to, |r| r.report.soc_min)?;
    let floor = f64::from(percent) / 100.0;
    let start = v.first().map_or(floor, |(_, s)| *s);
    let limit = floor.min(start - 0.005);
    let below = v.iter().find(|(_, soc)| soc.is_nan() || *soc < limit);
    if let Some(&(first, _)) = below {
        let (minute, soc) = v
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((first, f64::NAN));
        return Err(format!(
            "the lowest pack on branch {branch} was at {:.1} % at {from} and fell to {:.1} % at {} (below {:.1} % first at {}): a pack was discharged below the {percent} % floor",
            start * 100.0,
            soc * 100.0,
            sc.clock(minute),
            limit * 100.0,
            sc.clock(first)
        ));
    }
    Ok(())
}

#[then(regex = r"^no assembly on branch (\d+) reports an accepted dispatch$")]
fn untouched(w: &mut MaslowWorld, branch: u32) -> StepResult {
    every_assembly(w, branch, "accepted dispatches", |t| {
        let n = t.counters.accepted_dispatch();
        (n > 0).then_some(n)
    })
}

#[then(
    regex = r"^every assembly on branch (\d+) reports at least (\d+) dispatch(?:es)? rejected as (bad signature|replayed|expired|unknown key)$"
)]
fn every_rejects(w: &mut MaslowWorld, branch: u32, n: u32, reason: String) -> StepResult {
    let key = reason.replace(' ', "_");
    let report = format!("fewer than {n} rejected as {reason}");
    every_assembly(w, branch, &report, |t| {
        let c = t.counters.rejected.get(&key).copied().unwrap_or(0);
        (c < n).then_some(c)
    })
}

#[then(
    regex = r"^the server reports at least (\d+) assembl(?:y|ies) lost(?: for (no telemetry|not participating|clipped))? and at least (\d+) re-dispatch(?:es)? on branch (\d+)$"
)]
fn lost_and_redispatched(
    w: &mut MaslowWorld,
    lost: u32,
    why: String,
    re: u32,
    branch: u32,
) -> StepResult {
    let b = branch_report(w, branch)?;
    let counted = if why.is_empty() {
        b.assemblies_lost
    } else {
        let key = why.replace(' ', "_");
        b.assemblies_lost_by_reason.get(&key).copied().unwrap_or(0)
    };
    if counted < lost || b.redispatches < re {
        return Err(format!(
            "branch {branch}: the server reports {} assemblies lost ({:?}) and {} re-dispatches, wanted at least {lost}{} and {re}",
            b.assemblies_lost,
            b.assemblies_lost_by_reason,
            b.redispatches,
            if why.is_empty() { String::new() } else { format!(" for {why}") }
        ));
    }
    Ok(())
}

#[then(regex = r"^(\d+) assemblies on branch (\d+) report telemetry at the end$")]
fn reporting(w: &mut MaslowWorld, n: usize, branch: u32) -> StepResult {
    let (sc, o) = outcome(w)?;
    check_branch(sc, branch)?;
    let k = o.telemetry.iter().filter(|t| t.branch_id == branch).count();
    if k != n {
        return Err(format!(
            "{k} assemblies on branch {branch} reported telemetry in the last minute, not {n}"
        ));
    }
    Ok(())
}

#[then(
    regex = r"^(\d+) assembl(?:y|ies) on branch (\d+) reports? the server silent at (\d\d:\d\d(?: on day \d+)?)$"
)]
fn silent_count(w: &mut MaslowWorld, n: u32, branch: u32, at: String) -> StepResult {
    let (sc, o) = outcome(w)?;
    let m = sc.minute_of(hours(&at)?);
    let row = o
        .rows
        .iter()
        .find(|r| r.report.branch_id == branch && r.minute == m)
        .ok_or_else(|| format!("no measurement of branch {branch} at {at}"))?;
    if row.report.server_silent != n {
        return Err(format!(
            "{} assemblies on branch {branch} reported the server silent at {at}, not {n}",
            row.report.server_silent
        ));
    }
    Ok(())
}

#[then(
    regex = r"^every assembly on branch (\d+) reports (\d+) configuration messages? (accepted|rejected as out of envelope|rejected as replayed|rejected as bad signature)$"
)]
fn every_config(w: &mut MaslowWorld, branch: u32, n: u32, outcome_: String) -> StepResult {
    let b = branch_report(w, branch)?;
    let verdict = match outcome_.strip_prefix("rejected as ") {
        Some(reason) => format!("rejected:{}", reason.replace(' ', "_")),
        None => "accepted".to_string(),
    };
    let got = b.config_acks.get(&verdict).copied().unwrap_or(0);
    let want = n * b.assemblies;
    if b.assemblies == 0 || got != want {
        return Err(format!(
            "branch {branch}: {got} configuration acks {verdict} from {} assemblies, wanted {n} each ({want}); all its configuration acks: {:?}",
            b.assemblies, b.config_acks
        ));
    }
    Ok(())
}

#[then(regex = r"^every assembly on branch (\d+) reports a reserve of (\d+)%$")]
fn every_reserve(w: &mut MaslowWorld, branch: u32, percent: u32) -> StepResult {
    let want = f64::from(percent) / 100.0;
    let report = format!("another reserve than {percent}%");
    every_assembly(w, branch, &report, |t| {
        ((t.reserve_soc - want).abs() > 0.0005).then_some(t.reserve_soc)
    })
}

/// A negative test for each `Then` above, on a hand-made run outcome.
#[cfg(test)]
#[path = "negative_fleet.rs"]
mod negative_fleet;
