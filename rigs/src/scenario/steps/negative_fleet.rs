//! Every fleet `Then` fails on a run outcome that breaks it and passes on
//! one that keeps it: `negative_<step fn>`. No fleet runs: the world holds
//! `rigs/fleets/two_branches.toml` (13 assemblies on each of its two
//! branches, from 19:00) and a hand-made outcome with the figures each
//! step reads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use super::*;
use crate::fleet::server::{BranchMinuteRow, BranchReport, ComplianceReport};
use crate::fleet::wire::{FeederReport, SiteCounters, Telemetry};
use crate::scenario::steps::negative::s;

/// Assemblies on each branch of the fleet.
const PER_BRANCH: u32 = 13;

/// The fleet, loaded once.
fn two_branches() -> FleetScenario {
    static FLEET: OnceLock<FleetScenario> = OnceLock::new();
    FLEET
        .get_or_init(|| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fleets/two_branches.toml");
            FleetScenario::load(&path).expect("rigs/fleets/two_branches.toml loads")
        })
        .clone()
}

/// A world in which the fleet ran with `outcome`.
fn ran(outcome: RunOutcome) -> MaslowWorld {
    let scenario = two_branches();
    assert_eq!(
        (scenario.start_hour, scenario.branches.len()),
        (19.0, 2),
        "the tests' clock and branches"
    );
    let mut w = MaslowWorld::new();
    w.fleet = Some(Box::new(FleetState {
        scenario,
        outcome: Some(outcome),
    }));
    w
}

/// Both branches' rows of the first 3 hours (19:00 to 22:00), each
/// measured by `set(branch, minute, report)` (otherwise all zeros, 50 %
/// charge, nobody reporting the server silent).
fn rows(set: impl Fn(u32, u32, &mut FeederReport)) -> Vec<BranchMinuteRow> {
    let mut v = Vec::new();
    for minute in 0..180 {
        for branch in 1..=2 {
            let mut report = FeederReport {
                branch_id: branch,
                transformer_p_kw: [0.0; 3],
                transformer_q_kvar: [0.0; 3],
                loading_pct: 0.0,
                v_min_pu: 1.0,
                v_max_pu: 1.0,
                soc_mean: 0.5,
                soc_min: 0.5,
                battery_w: 0.0,
                server_silent: 0,
            };
            set(branch, minute, &mut report);
            v.push(BranchMinuteRow {
                minute,
                report,
                dispatched_w: 0.0,
            });
        }
    }
    v
}

/// Every assembly's telemetry of the last minute (sites 1 to 13 on
/// branch 1, 14 to 26 on branch 2): a 20 % reserve, 3 heartbeats and a
/// configuration accepted, then `set` adjusts each.
fn telemetry(set: impl Fn(&mut Telemetry)) -> Vec<Telemetry> {
    (1..=2 * PER_BRANCH)
        .map(|site| {
            let mut t = Telemetry {
                site_id: site,
                branch_id: 1 + (site - 1) / PER_BRANCH,
                minute: 179,
                soc: 0.5,
                reserve_soc: 0.2,
                max_charge_w: 3000.0,
                max_discharge_w: 3000.0,
                battery_w: 0.0,
                net_ac_w: 500.0,
                participating: true,
                server_silent: false,
                dispatch_seq: None,
                counters: SiteCounters {
                    accepted: 4,
                    accepted_heartbeat: 3,
                    accepted_config: 1,
                    ..Default::default()
                },
            };
            set(&mut t);
            t
        })
        .collect()
}

/// The server's report of both branches, `set` adjusting each.
fn report(set: impl Fn(&mut BranchReport)) -> ComplianceReport {
    ComplianceReport {
        branches: (1..=2)
            .map(|b| {
                let mut r = BranchReport {
                    branch_id: b,
                    assemblies: PER_BRANCH,
                    ..Default::default()
                };
                set(&mut r);
                r
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn negative_transformer_share() {
    // Branch 1 at 5 kW but 12 kW at 20:05 (minute 65); branch 2 at 20 kW.
    let mut w = ran(RunOutcome {
        rows: rows(|b, m, r| {
            r.transformer_p_kw[0] = match (b, m) {
                (2, _) => 20.0,
                (_, 65) => 12.0,
                _ => 5.0,
            }
        }),
        ..Default::default()
    });
    let mut run = |how: &str, pct: f64| {
        transformer_share(&mut w, 1, s(how), 8.0, pct, s("20:00"), s("20:10"))
    };
    run("at most", 90.0).unwrap();
    let e = run("at most", 95.0).unwrap_err();
    assert!(
        e.contains("in 9 of 10 minutes (90.0 %, wanted 95 %); worst 12.00 kW at minute 65"),
        "{e}"
    );
    run("at least", 10.0).unwrap();
    let e = run("at least", 20.0).unwrap_err();
    assert!(e.contains("worst 5.00 kW at minute 60"), "{e}");
    assert!(transformer_share(&mut w, 3, s("at most"), 8.0, 90.0, s("20:00"), s("20:10")).is_err());
}

#[test]
fn negative_power_mean() {
    // Branch 1's batteries give 2 kW from 20:00 to 20:10 and take 5 kW
    // around it; its transformer carries 1 kW throughout.
    let mut w = ran(RunOutcome {
        rows: rows(|b, m, r| {
            if b == 1 {
                r.battery_w = if (60..70).contains(&m) {
                    2000.0
                } else {
                    -5000.0
                };
                r.transformer_p_kw = [1.0, 0.0, 0.0];
            }
        }),
        ..Default::default()
    });
    let mut run = |what: &str, how: &str, kw: f64| {
        power_mean(&mut w, s(what), 1, s(how), kw, s("20:00"), s("20:10"))
    };
    run("battery", "at least", 1.5).unwrap();
    let e = run("battery", "at least", 2.5).unwrap_err();
    assert!(
        e.contains("battery power averaged 2.00 kW from 20:00 to 20:10"),
        "{e}"
    );
    assert!(run("battery", "at most", 1.5).is_err());
    run("transformer", "at most", 1.0).unwrap();
    let e = run("transformer", "at most", 0.5).unwrap_err();
    assert!(e.contains("transformer power averaged 1.00 kW"), "{e}");
}

#[test]
fn negative_soc_floor() {
    // Branch 1's lowest pack at `before` until 20:30, at `after` from then.
    let run = |before: f64, after: f64, percent: u32| {
        let mut w = ran(RunOutcome {
            rows: rows(|b, m, r| {
                if b == 1 {
                    r.soc_min = if m < 90 { before } else { after };
                }
            }),
            ..Default::default()
        });
        soc_floor(&mut w, 1, percent, s("20:00"), s("21:00"))
    };
    run(0.5, 0.35, 30).unwrap();
    let e = run(0.5, 0.35, 40).unwrap_err();
    assert!(
        e.contains("fell to 35.0 % at 20:30 (below 40.0 % first at 20:30)"),
        "{e}"
    );
    // Below the floor from the start: not lower than it began.
    run(0.15, 0.148, 20).unwrap();
    let e = run(0.15, 0.14, 20).unwrap_err();
    assert!(
        e.contains("was at 15.0 % at 20:00 and fell to 14.0 %"),
        "{e}"
    );
    // A minute without a measurement breaks the floor.
    assert!(run(0.5, f64::NAN, 20).is_err());
}

#[test]
fn negative_untouched() {
    // Site 3 (branch 1) accepted a dispatch, and `site` too.
    let run = |site: u32| {
        let mut w = ran(RunOutcome {
            telemetry: telemetry(|t| {
                if t.site_id == 3 || t.site_id == site {
                    t.counters.accepted += 1;
                }
            }),
            ..Default::default()
        });
        untouched(&mut w, 2)
    };
    run(3).unwrap();
    let e = run(20).unwrap_err();
    assert!(
        e.contains("1 of 13 assemblies on branch 2 report accepted dispatches")
            && e.contains("[(20, 1)]"),
        "{e}"
    );
}

#[test]
fn negative_every_rejects() {
    // Every assembly on branch 1 rejected 2 forgeries, but `site` none.
    let run = |site: u32, n: u32, reason: &str| {
        let mut w = ran(RunOutcome {
            telemetry: telemetry(|t| {
                if t.branch_id == 1 && t.site_id != site {
                    t.counters.rejected.insert(s("bad_signature"), 2);
                }
            }),
            ..Default::default()
        });
        every_rejects(&mut w, 1, n, s(reason))
    };
    run(0, 2, "bad signature").unwrap();
    let e = run(0, 3, "bad signature").unwrap_err();
    assert!(e.contains("13 of 13 assemblies on branch 1"), "{e}");
    let e = run(5, 1, "bad signature").unwrap_err();
    assert!(e.contains("[(5, 0)]"), "{e}");
    assert!(run(0, 1, "replayed").is_err());
}

#[test]
fn negative_lost_and_redispatched() {
    // Branch 1: 3 assemblies lost for no telemetry, 1 clipped, 2
    // re-dispatches; branch 2: none.
    let mut w = ran(RunOutcome {
        report: report(|r| {
            if r.branch_id == 1 {
                r.assemblies_lost = 4;
                r.assemblies_lost_by_reason =
                    BTreeMap::from([(s("no_telemetry"), 3), (s("clipped"), 1)]);
                r.redispatches = 2;
            }
        }),
        ..Default::default()
    });
    let mut run = |lost: u32, why: &str, re: u32, branch: u32| {
        lost_and_redispatched(&mut w, lost, s(why), re, branch)
    };
    run(4, "", 2, 1).unwrap();
    run(3, "no telemetry", 1, 1).unwrap();
    let e = run(2, "clipped", 1, 1).unwrap_err();
    assert!(
        e.contains("4 assemblies lost") && e.contains("wanted at least 2 for clipped and 1"),
        "{e}"
    );
    let e = run(4, "", 3, 1).unwrap_err();
    assert!(e.contains("and 2 re-dispatches"), "{e}");
    assert!(run(1, "", 0, 2).is_err());
}

#[test]
fn negative_reporting() {
    // Site 20 (branch 2) sent no telemetry in the last minute.
    let mut o = RunOutcome {
        telemetry: telemetry(|_| {}),
        ..Default::default()
    };
    o.telemetry.retain(|t| t.site_id != 20);
    let mut w = ran(o);
    reporting(&mut w, 13, 1).unwrap();
    reporting(&mut w, 12, 2).unwrap();
    let e = reporting(&mut w, 13, 2).unwrap_err();
    assert!(
        e.contains("12 assemblies on branch 2 reported telemetry in the last minute, not 13"),
        "{e}"
    );
}

#[test]
fn negative_silent_count() {
    // Every assembly on branch 1 reports the server silent from 20:30.
    let mut w = ran(RunOutcome {
        rows: rows(|b, m, r| {
            if b == 1 && m >= 90 {
                r.server_silent = PER_BRANCH;
            }
        }),
        ..Default::default()
    });
    silent_count(&mut w, 13, 1, s("20:45")).unwrap();
    silent_count(&mut w, 0, 2, s("20:45")).unwrap();
    let e = silent_count(&mut w, 13, 1, s("20:15")).unwrap_err();
    assert!(
        e.contains("0 assemblies on branch 1 reported the server silent at 20:15, not 13"),
        "{e}"
    );
    // Past the run's end: nothing measured.
    let e = silent_count(&mut w, 13, 1, s("23:00")).unwrap_err();
    assert!(e.contains("no measurement of branch 1 at 23:00"), "{e}");
}

#[test]
fn negative_every_config() {
    // Branch 1: every assembly accepted its configuration; branch 2: one
    // rejected it as out of envelope.
    let mut w = ran(RunOutcome {
        report: report(|r| {
            r.config_acks = if r.branch_id == 1 {
                BTreeMap::from([(s("accepted"), PER_BRANCH)])
            } else {
                BTreeMap::from([
                    (s("accepted"), PER_BRANCH - 1),
                    (s("rejected:out_of_envelope"), 1),
                ])
            };
        }),
        ..Default::default()
    });
    let mut run = |branch: u32, n: u32, outcome: &str| every_config(&mut w, branch, n, s(outcome));
    run(1, 1, "accepted").unwrap();
    run(1, 0, "rejected as replayed").unwrap();
    let e = run(2, 1, "accepted").unwrap_err();
    assert!(
        e.contains("12 configuration acks accepted from 13 assemblies, wanted 1 each (13)"),
        "{e}"
    );
    assert!(run(2, 1, "rejected as out of envelope").is_err());
    assert!(run(1, 2, "accepted").is_err());
}

#[test]
fn negative_every_reserve() {
    // Every assembly keeps a 30 % reserve but `site`, which keeps 20 %.
    let run = |site: u32, percent: u32| {
        let mut w = ran(RunOutcome {
            telemetry: telemetry(|t| {
                if t.site_id != site {
                    t.reserve_soc = 0.3;
                }
            }),
            ..Default::default()
        });
        every_reserve(&mut w, 1, percent)
    };
    run(20, 30).unwrap();
    let e = run(7, 30).unwrap_err();
    assert!(
        e.contains("1 of 13 assemblies on branch 1 report another reserve than 30%")
            && e.contains("[(7, 0.2)]"),
        "{e}"
    );
    assert!(run(20, 20).is_err());
}
