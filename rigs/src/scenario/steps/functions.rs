//! Steps for the controller functions beyond the core library: end devices and
//! selective supply, export limiting, tariff signals, low-carbon charging,
//! signed dispatch.
//!
//! As everywhere, `Then` steps judge only the probe's capture and what the
//! remote server received; `Given` steps configure the house and the
//! controller's configuration file; `When` steps act as the house's
//! occupants, the utility's meter or the remote server would.

use cucumber::{given, then, when};
use toml::Value;
use twin::house::{signal_slug, HouseEvent};

use firmware::cluster::Verdict;
use firmware::demand::METER_ID_BIT;
use firmware::scheduling::ChargeNowRequest;
use firmware::wire::dispatch::{self, Command, Dispatch};
use firmware::wire::signed::ALL_SITES;
use firmware::Millis;

use super::reasons::{because_clause, ExpectedVerdict};
use super::{
    baseline_without, clock, clock_s, duration_s, in_unit, measured, num, samples, StepResult,
};
use crate::rig::{Reply, UplinkMessage};
use crate::scenario::setup::{array, named_entry, section};
use crate::scenario::world::{Action, MaslowWorld};

// ------------------------------------------------------------------ helpers

/// Margin above the socket's own draw below which it delivers nothing, W:
/// the quietest device in standby, a phone, adds 0.16 W at the input.
const SOCKET_OFF_MARGIN_W: f64 = 0.1;

/// The remote server's dispatch signing key: a fixed test seed (the one of
/// the test vector in `firmware/docs/dispatch.md`), so every run signs alike.
const SERVER_KEY_SEED: [u8; 32] = [7u8; 32];

fn server_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&SERVER_KEY_SEED)
}

/// Below this input power a socket delivers nothing to a device (it is
/// switched off, empty or unpowered), W: its own idle draw plus a margin.
fn socket_off_w(w: &MaslowWorld, socket: &str) -> Result<f64, String> {
    Ok(w.house()?.socket(socket)?.idle_w + SOCKET_OFF_MARGIN_W)
}

fn socket_power(w: &MaslowWorld, socket: &str) -> Result<crate::instrument::TimeSeries, String> {
    w.house()?.socket_index(socket)?;
    Ok(
        w.series(&format!("socket_{}_power_w", signal_slug(socket)))?
            .clone(),
    )
}

/// Server time: UTC seconds now (the server's clock is the calendar's).
fn server_utc_s(w: &mut MaslowWorld) -> Result<u64, String> {
    let now = w.now_s();
    let epoch = w.sim()?.session.plant().epoch_unix_s();
    Ok((epoch + now).floor().max(0.0) as u64)
}

/// Dispatch messages the server has sent so far (replays included).
fn dispatches_sent(w: &MaslowWorld) -> Vec<Vec<u8>> {
    w.actions
        .iter()
        .filter_map(|a| match a {
            Action::Uplink(UplinkMessage::Dispatch(b)) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn dispatch_command(what: &str, watts: u32, minutes: u32) -> Result<Command, String> {
    let duration_s = minutes
        .checked_mul(60)
        .ok_or_else(|| format!("{minutes} minutes is too long for a dispatch"))?;
    Ok(match what {
        "discharge" => Command::Source {
            power_w: watts,
            duration_s,
        },
        "charge" => Command::Sink {
            power_w: watts,
            duration_s,
        },
        other => return Err(format!("`{other}`: a dispatch asks to charge or discharge")),
    })
}

/// Signs and sends a dispatch: `age_s` shifts its issue time into the past
/// (an old message), `tamper` changes a signed byte afterwards (a forgery).
fn send_dispatch(
    w: &mut MaslowWorld,
    branch: u32,
    command: Command,
    age_s: u64,
    tamper: bool,
    label: String,
) -> StepResult {
    if branch == 0 {
        return Err("branch 0 is not a branch (branches are numbered from 1)".into());
    }
    let utc = server_utc_s(w)?;
    let issued = utc.saturating_sub(age_s);
    // Sequence numbers strictly increase over everything the key signs.
    let sequence = dispatches_sent(w).len() as u64 + 1;
    let d = Dispatch {
        branch_id: branch,
        site_id: ALL_SITES,
        sequence,
        issued_at_s: issued,
        expires_at_s: issued + 300,
        command,
        requirement: None,
    };
    let mut bytes = dispatch::encode(&d, &server_key()).to_vec();
    if tamper {
        // The power field (bytes 68..72), changed after signing.
        bytes[70] ^= 0x01;
    }
    w.act(Action::Uplink(UplinkMessage::Dispatch(bytes)))?;
    w.mark(label);
    Ok(())
}

// -------------------------------------------------------------------- Given

#[given(regex = r"^the (\S+)'s battery is at (\d+)%$")]
fn device_charge(w: &mut MaslowWorld, device: String, pct: f64) -> StepResult {
    w.house()?.device_index(&device)?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(format!(
            "the {device}'s battery at {pct}%: a charge is within 0..100 %"
        ));
    }
    let s = w.setup_mut()?;
    let devices = array(section(&mut s.house, "bus"), "devices");
    let d = named_entry(devices, &device)
        .ok_or_else(|| format!("the house has no `{device}` device"))?;
    d.insert("initial_soc".into(), Value::Float(pct / 100.0));
    Ok(())
}

#[given(regex = r"^the (\S+) socket is a peripheral of the (\S+) socket$")]
fn peripheral_of(w: &mut MaslowWorld, peripheral: String, host: String) -> StepResult {
    let house = w.house()?;
    let p = house.socket_index(&peripheral)?;
    let h = house.socket_index(&host)?;
    if p == h {
        return Err(format!(
            "the {host} socket cannot be a peripheral of itself"
        ));
    }
    let s = w.setup_mut()?;
    let groups = array(section(&mut s.controller, "selective"), "groups");
    let existing = groups
        .iter_mut()
        .filter_map(Value::as_table_mut)
        .find(|g| g.get("host").and_then(Value::as_integer) == Some(h as i64));
    match existing {
        Some(g) => array(g, "peripherals").push(Value::Integer(p as i64)),
        None => {
            let mut g = toml::Table::new();
            g.insert("host".into(), Value::Integer(h as i64));
            g.insert(
                "peripherals".into(),
                Value::Array(vec![Value::Integer(p as i64)]),
            );
            groups.push(Value::Table(g));
        }
    }
    Ok(())
}

#[given(
    regex = r"^the controller (charges|discharges) at (\d+) W when the meter signals (off-peak|normal)(?: from (\d\d:\d\d) to (\d\d:\d\d))?$"
)]
fn tariff_rule(
    w: &mut MaslowWorld,
    what: String,
    watts: f64,
    which: String,
    from: String,
    to: String,
) -> StepResult {
    // Without a window: all day (start_s = end_s).
    let (start_s, end_s) = if from.is_empty() {
        (0, 0)
    } else {
        let (a, b) = (clock_s(&from)? as i64, clock_s(&to)? as i64 % 86_400);
        if a == b {
            return Err(format!(
                "from {from} to {to}: an empty window (leave it out for all day)"
            ));
        }
        (a, b)
    };
    if watts <= 0.0 {
        return Err(format!(
            "a tariff rule to {what} at {watts} W: the power must be above 0 W"
        ));
    }
    let s = w.setup_mut()?;
    let rules = array(section(&mut s.controller, "demand"), "tariff_rules");
    if rules.len() >= firmware::demand::MAX_TARIFF_RULES {
        return Err(format!(
            "the controller takes at most {} tariff rules",
            firmware::demand::MAX_TARIFF_RULES
        ));
    }
    let mut r = toml::Table::new();
    r.insert(
        "tariff".into(),
        Value::Integer(if which == "off-peak" { 1 } else { 2 }),
    );
    r.insert("start_s".into(), Value::Integer(start_s));
    r.insert("end_s".into(), Value::Integer(end_s));
    r.insert(
        "action".into(),
        Value::String(
            if what == "charges" {
                "charge"
            } else {
                "discharge"
            }
            .into(),
        ),
    );
    r.insert("power_w".into(), Value::Float(watts));
    rules.push(Value::Table(r));
    Ok(())
}

#[given(regex = r"^the assembly takes part in dispatch on branch (\d+)$")]
fn takes_part(w: &mut MaslowWorld, branch: u32) -> StepResult {
    if branch == 0 {
        return Err("branch 0 is not a branch (branches are numbered from 1)".into());
    }
    let key = server_key().verifying_key().to_bytes().iter().fold(
        String::with_capacity(64),
        |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        },
    );
    let s = w.setup_mut()?;
    let site_id = s
        .controller_view::<firmware::ControllerConfig>()?
        .assembly
        .site_id;
    let c = section(&mut s.controller, "cluster");
    c.insert("site_id".into(), Value::Integer(i64::from(site_id)));
    c.insert("branch_id".into(), Value::Integer(i64::from(branch)));
    c.insert(
        "trusted_keys".into(),
        Value::Array(vec![Value::String(key)]),
    );
    Ok(())
}

// --------------------------------------------------------------------- When

#[when(regex = r"^the (\S+) is in use again$")]
fn in_use_again(w: &mut MaslowWorld, device: String) -> StepResult {
    w.house()?.device_index(&device)?;
    w.act(Action::House(HouseEvent::DeviceIdle {
        device: device.clone(),
        idle: false,
    }))?;
    w.mark(format!("{device} in use"));
    Ok(())
}

#[when(
    regex = r"^the remote server asks the assembly to charge from low-carbon supply at (\d+) W up to (\d+)% for (\d+) minutes$"
)]
fn charge_now(w: &mut MaslowWorld, watts: f32, pct: f32, minutes: u64) -> StepResult {
    if !(pct > 0.0 && pct <= 100.0) {
        return Err(format!(
            "charge up to {pct}%: the target is within 1..100 %"
        ));
    }
    if minutes == 0 {
        return Err("a charge-now request for 0 minutes asks for nothing".into());
    }
    let now_ms = (w.now_s() * 1000.0).round() as u64;
    let request = ChargeNowRequest {
        power_w: watts,
        until_soc: pct / 100.0,
        expires: Millis(now_ms + minutes * 60_000),
    };
    w.act(Action::Uplink(UplinkMessage::ChargeNow(request)))?;
    w.mark(format!("server: charge now {watts} W to {pct}%"));
    Ok(())
}

#[when(
    regex = r"^the remote server dispatches branch (\d+) to (discharge|charge) at (\d+) W for (\d+) minutes$"
)]
fn dispatch(
    w: &mut MaslowWorld,
    branch: u32,
    what: String,
    watts: u32,
    minutes: u32,
) -> StepResult {
    let command = dispatch_command(&what, watts, minutes)?;
    send_dispatch(
        w,
        branch,
        command,
        0,
        false,
        format!("dispatch: branch {branch} {what} {watts} W"),
    )
}

#[when(
    regex = r"^an? (forged|expired) dispatch asks branch (\d+) to (discharge|charge) at (\d+) W for (\d+) minutes$"
)]
fn bad_dispatch(
    w: &mut MaslowWorld,
    how: String,
    branch: u32,
    what: String,
    watts: u32,
    minutes: u32,
) -> StepResult {
    let command = dispatch_command(&what, watts, minutes)?;
    // Expired: issued 20 minutes ago, valid for 5 (so 15 minutes stale).
    let (age_s, tamper) = if how == "forged" {
        (0, true)
    } else {
        (1200, false)
    };
    send_dispatch(
        w,
        branch,
        command,
        age_s,
        tamper,
        format!("{how} dispatch: branch {branch} {what} {watts} W"),
    )
}

#[when(regex = r"^the remote server cancels the dispatch on branch (\d+)$")]
fn cancel_dispatch(w: &mut MaslowWorld, branch: u32) -> StepResult {
    send_dispatch(
        w,
        branch,
        Command::Cancel,
        0,
        false,
        format!("dispatch: branch {branch} cancel"),
    )
}

#[when(regex = r"^the remote server's first dispatch is replayed$")]
fn replay_dispatch(w: &mut MaslowWorld) -> StepResult {
    let first = dispatches_sent(w)
        .into_iter()
        .next()
        .ok_or("the remote server has sent no dispatch to replay")?;
    w.act(Action::Uplink(UplinkMessage::Dispatch(first)))?;
    w.mark("first dispatch replayed");
    Ok(())
}

// --------------------------------------------------------------------- Then

#[then(regex = r"^the (\S+) socket is switched off within (\d+) (seconds?|minutes?)$")]
fn socket_off_within(w: &mut MaslowWorld, socket: String, n: f64, unit: String) -> StepResult {
    let s = socket_power(w, &socket)?;
    let off_w = socket_off_w(w, &socket)?;
    let from = w
        .last_event_s
        .ok_or("nothing happened yet to switch the socket off after")?;
    let deadline = from + duration_s(n, &unit)?;
    w.check_window_reached(deadline)?;
    // Like a circuit that "is shed within": the first time it goes off
    // (`stays off` judges whether it then stays off).
    let xs = samples(&s, from, deadline);
    match xs.iter().find(|(_, v)| *v < off_w) {
        Some(_) => Ok(()),
        None => Err(format!(
            "expected the {socket} socket switched off (< {off_w:.2} W at its input) within {n} {unit} of {}; it was still drawing {:.2} W at {} (lowest {:.2} W){}",
            clock(from),
            xs.last().map_or(f64::NAN, |(_, v)| *v),
            clock(xs.last().map_or(from, |(t, _)| *t)),
            xs.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min),
            w.see_also()
        )),
    }
}

#[then(regex = r"^the (\S+) socket stays (on|off)\s*(.*)$")]
fn socket_stays(w: &mut MaslowWorld, socket: String, state: String, window: String) -> StepResult {
    let s = socket_power(w, &socket)?;
    let off_w = socket_off_w(w, &socket)?;
    let (from, to) = w.window(&window)?;
    w.check_window_reached(to)?;
    let xs = samples(&s, from, to);
    if xs.is_empty() {
        return Err(format!(
            "no samples of the {socket} socket's power from {} to {}",
            clock(from),
            clock(to)
        ));
    }
    let on = state == "on";
    if let Some((t, v)) = xs.iter().find(|(_, v)| (*v >= off_w) != on) {
        return Err(format!(
            "expected the {socket} socket {state} ({} {off_w:.2} W at its input) from {} to {}; measured {v:.2} W at {}{}",
            if on { "≥" } else { "<" },
            clock(from),
            clock(to),
            clock(*t),
            w.see_also()
        ));
    }
    Ok(())
}

#[then(
    regex = r"^(.+?) adds up to (at least|at most) ([\d.]+) kWh from (\d\d:\d\d(?: on day \d+)?) to (\d\d:\d\d(?: on day \d+)?)$"
)]
fn energy_between(
    w: &mut MaslowWorld,
    what: String,
    cmp: String,
    kwh: String,
    from: String,
    to: String,
) -> StepResult {
    let (signal, k, unit, s) = measured(w, &what)?;
    if unit != "W" {
        return Err(format!(
            "{what} is measured in {unit}: only a power adds up to an energy"
        ));
    }
    let limit = num(&kwh)?;
    let (a, b) = (clock_s(&from)?, clock_s(&to)?);
    if b <= a {
        return Err(format!(
            "from {from} to {to}: the window ends before it starts"
        ));
    }
    w.check_window_reached(b)?;
    let xs = samples(&s, a, b);
    if xs.len() < 2 {
        return Err(format!("no samples of {signal} from {from} to {to}"));
    }
    let e = xs
        .windows(2)
        .map(|p| (p[1].0 - p[0].0) * p[0].1 * k)
        .sum::<f64>()
        / 3.6e6;
    let ok = if cmp == "at least" {
        e >= limit
    } else {
        e <= limit
    };
    if !ok {
        return Err(format!(
            "expected {what} ({signal}) to add up to {cmp} {limit} kWh from {from} to {to}; measured {e:.3} kWh{}",
            w.see_also()
        ));
    }
    Ok(())
}

#[then(regex = r"^(.+?) stays within ([\d.]+) (\S+) of the run without the event since then$")]
fn same_as_without_event(
    w: &mut MaslowWorld,
    what: String,
    tol: String,
    unit: String,
) -> StepResult {
    let (signal, k, want, ours) = measured(w, &what)?;
    let tol = in_unit(num(&tol)?, &unit, want)?;
    let from = w
        .last_event_s
        .ok_or("nothing happened yet: there is no event to leave out")?;
    let to = w.now_s();
    if to <= from {
        return Err(format!(
            "no time has passed since the event at {}: let time pass first",
            clock(from)
        ));
    }
    let base = baseline_without(w, "the event")?
        .get(&signal)
        .cloned()
        .ok_or_else(|| format!("the run without the event measured no {signal}"))?;
    let xs = samples(&ours, from, to);
    let ys = samples(&base, from, to);
    if xs.is_empty() || xs.len() != ys.len() {
        return Err(format!(
            "cannot compare {signal} from {} to {}: {} samples here, {} in the run without the event",
            clock(from),
            clock(to),
            xs.len(),
            ys.len()
        ));
    }
    let worst = xs
        .iter()
        .zip(&ys)
        .map(|(&(t, a), &(_, b))| (t, a * k, b * k))
        .max_by(|x, y| (x.1 - x.2).abs().total_cmp(&(y.1 - y.2).abs()));
    if let Some((t, a, b)) = worst {
        if (a - b).abs() > tol {
            return Err(format!(
                "expected {what} within {tol} {want} of the run without the event from {} to {}; measured {a:.3} {want} against {b:.3} {want} at {}{}",
                clock(from),
                clock(to),
                clock(t),
                w.see_also()
            ));
        }
    }
    Ok(())
}

#[then(
    regex = r"^the remote server receives a dispatch verdict (accepting|rejecting|ignoring) it(?: because (.+))? within (\d+) seconds?$"
)]
fn dispatch_verdict(w: &mut MaslowWorld, verdict: String, because: String, n: f64) -> StepResult {
    let expected = ExpectedVerdict::parse(&verdict, &because)?;
    let sent = dispatches_sent(w).len();
    if sent == 0 {
        return Err("the remote server has sent no dispatch to have a verdict on".into());
    }
    let at_s = w.last_event_s.unwrap_or(0.0);
    let replies = w.uplink_replies()?;
    let verdicts: Vec<(u64, Verdict)> = replies
        .iter()
        .filter_map(|r| match &r.reply {
            Reply::DispatchVerdict(v) => Some((r.at_ms, *v)),
            _ => None,
        })
        .collect();
    // One verdict per dispatch, in order.
    let Some(&(at_ms, v)) = verdicts.get(sent - 1) else {
        return Err(format!(
            "the remote server received {} verdict(s) on {sent} dispatch(es): none on the last one, sent at {} (is the assembly configured for dispatch?)",
            verdicts.len(),
            clock(at_s)
        ));
    };
    let delay = at_ms as f64 / 1000.0 - at_s;
    if delay > n {
        return Err(format!(
            "the verdict on the dispatch sent at {} arrived after {delay:.1} s (expected within {n} s)",
            clock(at_s)
        ));
    }
    if !expected.is_verdict(&v) {
        return Err(format!(
            "expected a verdict {verdict} the dispatch sent at {}{}; the controller answered {v:?}",
            clock(at_s),
            because_clause(&because)
        ));
    }
    Ok(())
}

#[then(
    regex = r"^the remote server is told the meter's signal was (accepted|rejected) within (\d+) seconds?$"
)]
fn meter_signal_ack(w: &mut MaslowWorld, verdict: String, n: f64) -> StepResult {
    let from = w
        .last_event_s
        .ok_or("nothing happened yet: the meter has signalled nothing")?;
    let deadline = from + n;
    w.check_window_reached(deadline)?;
    let replies = w.uplink_replies()?;
    let ack = replies.iter().find_map(|r| match &r.reply {
        Reply::DemandAck(a)
            if a.id() & METER_ID_BIT != 0 && r.at_ms as f64 / 1000.0 >= from - 1e-6 =>
        {
            Some((r.at_ms, *a))
        }
        _ => None,
    });
    let Some((at_ms, ack)) = ack else {
        return Err(format!(
            "the remote server was told of no meter-derived signal after {}",
            clock(from)
        ));
    };
    let t = at_ms as f64 / 1000.0;
    if t > deadline + 1e-6 {
        return Err(format!(
            "the meter-derived signal was acknowledged at {} ({:.0} s after {}; expected within {n} s)",
            clock(t),
            t - from,
            clock(from)
        ));
    }
    if ack.is_accepted() != (verdict == "accepted") {
        return Err(format!(
            "expected the meter's signal {verdict}; the controller answered {ack:?} at {}",
            clock(t)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use firmware::cluster::{IgnoreReason, RejectReason};
    use firmware::demand::Ack;

    use super::*;
    use crate::scenario::steps::negative::{recorded, reply, s, sampled, session, step_at};
    use crate::scenario::world::RecordedSession;

    #[test]
    fn negative_socket_off_within() {
        let run = |off_at: f64| {
            let f = step_at(off_at, 30.0, 0.0);
            let mut w = recorded(600.0, &[("socket_tv_power_w", "W", &f)]);
            w.last_event_s = Some(100.0);
            socket_off_within(&mut w, s("tv"), 60.0, s("seconds"))
        };
        assert!(run(400.0).is_err());
        run(120.0).unwrap();
    }

    #[test]
    fn negative_socket_stays() {
        let run = |f: &dyn Fn(f64) -> f64| {
            let mut w = recorded(600.0, &[("socket_tv_power_w", "W", f)]);
            socket_stays(&mut w, s("tv"), s("off"), s("from 00:01 to 00:09"))
        };
        assert!(run(&|t| if t == 300.0 { 30.0 } else { 0.0 }).is_err());
        run(&|_| 0.0).unwrap();
    }

    #[test]
    fn negative_energy_between() {
        // 1 kW for 6 minutes is 0.1 kWh.
        let run = |cmp: &str| {
            let mut w = recorded(600.0, &[("grid_import_w", "W", &|_| 1000.0)]);
            energy_between(
                &mut w,
                s("grid import"),
                s(cmp),
                s("0.15"),
                s("00:00"),
                s("00:06"),
            )
        };
        assert!(run("at least").is_err());
        run("at most").unwrap();
    }

    #[test]
    fn negative_same_as_without_event() {
        // The event at 00:01:40; the run without it at 1 kW throughout.
        let run = |f: &dyn Fn(f64) -> f64| {
            let mut w = recorded(600.0, &[("battery_power_w", "W", f)]);
            w.actions.push(Action::House(HouseEvent::MainsReturn));
            w.last_event_s = Some(100.0);
            let base = sampled("battery_power_w", "W", 600.0, &|_| 1000.0);
            w.baselines.insert(
                s("without the event"),
                BTreeMap::from([(s("battery_power_w"), base)]),
            );
            same_as_without_event(&mut w, s("the battery power"), s("0.1"), s("kW"))
        };
        let e = run(&|t| if t == 300.0 { 1200.0 } else { 1000.0 }).unwrap_err();
        assert!(
            e.contains("1200.000 W against 1000.000 W at 00:05:00"),
            "{e}"
        );
        run(&|t| if t == 300.0 { 1050.0 } else { 1000.0 }).unwrap();
        // Before the event the runs may differ.
        run(&|t| if t == 50.0 { 3000.0 } else { 1000.0 }).unwrap();
    }

    #[test]
    fn negative_dispatch_verdict() {
        // `sent` dispatches, the last at 00:01:40; the verdicts received.
        let run = |sent: usize, verdicts: &[(f64, Verdict)], verdict: &str, because: &str| {
            let mut w = session(
                600.0,
                RecordedSession {
                    uplink_replies: verdicts
                        .iter()
                        .map(|&(t, v)| reply(t, Reply::DispatchVerdict(v)))
                        .collect(),
                    ..Default::default()
                },
            );
            for _ in 0..sent {
                w.actions
                    .push(Action::Uplink(UplinkMessage::Dispatch(Vec::new())));
            }
            w.last_event_s = Some(100.0);
            dispatch_verdict(&mut w, s(verdict), s(because), 5.0)
        };
        let forged = Verdict::Rejected(RejectReason::BadSignature);
        run(1, &[(101.0, forged)], "rejecting", "bad signature").unwrap();
        let e = run(1, &[(101.0, forged)], "rejecting", "expired").unwrap_err();
        assert!(e.contains("00:01:40") && e.contains("BadSignature"), "{e}");
        assert!(run(1, &[(101.0, forged)], "ignoring", "").is_err());
        let e = run(1, &[(110.0, forged)], "rejecting", "bad signature").unwrap_err();
        assert!(e.contains("after 10.0 s"), "{e}");
        // The verdict judged is the last dispatch's, the second of two.
        let dup = Verdict::Ignored(IgnoreReason::Duplicate);
        run(2, &[(50.0, forged), (101.0, dup)], "ignoring", "duplicate").unwrap();
        assert!(run(2, &[(50.0, forged), (101.0, dup)], "rejecting", "").is_err());
        let e = run(2, &[(101.0, forged)], "rejecting", "").unwrap_err();
        assert!(e.contains("1 verdict(s) on 2 dispatch(es)"), "{e}");
    }

    #[test]
    fn negative_meter_signal_ack() {
        // The meter signalled at 00:01:40; `ack` reached the server at `at_s`.
        let run = |at_s: f64, ack: Ack, verdict: &str| {
            let mut w = session(
                600.0,
                RecordedSession {
                    uplink_replies: vec![reply(at_s, Reply::DemandAck(ack))],
                    ..Default::default()
                },
            );
            w.last_event_s = Some(100.0);
            meter_signal_ack(&mut w, s(verdict), 5.0)
        };
        let meter = Ack::Accepted {
            id: METER_ID_BIT | 1,
        };
        run(102.0, meter, "accepted").unwrap();
        let e = run(102.0, meter, "rejected").unwrap_err();
        assert!(e.contains("Accepted") && e.contains("00:01:42"), "{e}");
        let e = run(110.0, meter, "accepted").unwrap_err();
        assert!(e.contains("at 00:01:50 (10 s after 00:01:40"), "{e}");
        // Before the event, or the remote server's own signal: not this one.
        assert!(run(90.0, meter, "accepted").is_err());
        let e = run(102.0, Ack::Accepted { id: 1 }, "accepted").unwrap_err();
        assert!(e.contains("no meter-derived signal after 00:01:40"), "{e}");
    }
}
