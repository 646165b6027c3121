//! Fleet: the scenario file, the site agent at the fleet's plant step,
//! the sans-IO server's invariants, and the lockstep run (server + shards
//! through the in-memory queue): deterministic, and independent of shards,
//! threads and message arrival order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use rigs::fleet::run::{branches_csv, run_in_process, RunOptions};
use rigs::fleet::scenario::FleetScenario;
use rigs::fleet::server::FleetServer;
use rigs::fleet::site::{controller_config, house_config};
use rigs::fleet::wire::{
    json_message, Done, FeederInfo, FeederReport, Hello, Message, SiteCounters, SiteInfo,
    Telemetry, Topic,
};
use rigs::rig::direct::{self, WakePolicy};
use rigs::rig::plant::Recording;
use rigs::rig::TimeMode;
use twin::time::SimTime;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn two_branches() -> FleetScenario {
    FleetScenario::load(&repo("rigs/fleets/two_branches.toml")).unwrap()
}

fn outputs(sc: FleetScenario, opts: &RunOptions) -> (String, String) {
    let sc = Arc::new(sc);
    let o = run_in_process(Arc::clone(&sc), opts).unwrap();
    (
        branches_csv(&sc, &o.rows),
        serde_json::to_string_pretty(&o.report).unwrap(),
    )
}

#[test]
fn a_seed_gives_the_same_run_whatever_the_shards_threads_and_arrival_order() {
    let sc = two_branches().with_hours(1.5);
    let a = outputs(
        sc.clone(),
        &RunOptions {
            shards: 1,
            threads: 1,
            ..RunOptions::default()
        },
    );
    let b = outputs(
        sc.clone(),
        &RunOptions {
            shards: 1,
            threads: 1,
            ..RunOptions::default()
        },
    );
    assert_eq!(a, b, "two runs of one seed differ");
    let c = outputs(
        sc.clone(),
        &RunOptions {
            shards: 2,
            threads: 2,
            shuffle_seed: Some(99),
            ..RunOptions::default()
        },
    );
    assert_eq!(a.0, c.0, "branches.csv depends on shards/threads/order");
    assert_eq!(a.1, c.1, "compliance depends on shards/threads/order");
    // And the seed matters (the comparison can fail).
    let d = outputs(sc.with_seed(8), &RunOptions::default());
    assert_ne!(a.0, d.0);
    // The run dispatched something in its window (20:15 on): not a
    // trivially equal pair of empty runs.
    assert!(a.1.contains("\"accepted\""), "{}", a.1);
}

#[test]
fn sharing_signature_checks_on_a_branch_changes_nothing_but_the_work() {
    use rigs::fleet::scenario::{AttackKind, AttackSpec};
    // Through the cap window, with a forged and a replayed dispatch on
    // branch 1: every verdict and count must be the same whether each
    // assembly verifies every message or the branch shares the checks of
    // genuine broadcasts.
    let mut sc = two_branches().with_hours(2.0);
    for (at_h, kind) in [
        (20.0 + 40.0 / 60.0, AttackKind::Forged),
        (20.0 + 50.0 / 60.0, AttackKind::Replay),
    ] {
        sc.faults.attacks.push(AttackSpec {
            at_h,
            branch: 1,
            kind,
        });
    }
    let sc = Arc::new(sc);
    let run = |share: bool| {
        let o = run_in_process(
            Arc::clone(&sc),
            &RunOptions {
                threads: 2,
                share_signature_checks: share,
                ..RunOptions::default()
            },
        )
        .unwrap();
        let checks = o.shard_stats.iter().fold((0, 0), |(v, r), (_, s)| {
            (v + s.signatures_verified, r + s.signatures_recalled)
        });
        let out = (
            branches_csv(&sc, &o.rows),
            serde_json::to_string_pretty(&o.report).unwrap(),
            format!("{:?}", o.telemetry),
        );
        (out, checks, o.telemetry)
    };
    let (each, (verified_each, recalled_each), _) = run(false);
    let (shared, (verified, recalled), telemetry) = run(true);
    assert!(each == shared, "sharing signature checks changed the run");
    assert_eq!(recalled_each, 0);
    assert!(
        recalled > verified,
        "{verified} verified, {recalled} recalled"
    );
    assert_eq!(verified + recalled, verified_each);
    // The attacks were seen and rejected by every assembly on branch 1.
    let branch_1: Vec<_> = telemetry.iter().filter(|t| t.branch_id == 1).collect();
    assert!(!branch_1.is_empty());
    let rejected = |reason: &str| {
        branch_1
            .iter()
            .all(|t| t.counters.rejected.get(reason).copied().unwrap_or(0) >= 1)
    };
    assert!(rejected("bad_signature"));
    assert!(rejected("replayed"));
}

#[test]
fn the_cli_writes_byte_identical_outputs_for_one_seed() {
    let dir = tempfile::tempdir().unwrap();
    let sc = Arc::new(two_branches().with_hours(1.5));
    for name in ["a", "b"] {
        let o = run_in_process(Arc::clone(&sc), &RunOptions::default()).unwrap();
        rigs::fleet::run::write_outputs(&dir.path().join(name), &sc, &o).unwrap();
    }
    for f in [
        "branches.csv",
        "compliance.json",
        "compliance.csv",
        "summary.txt",
    ] {
        let a = std::fs::read(dir.path().join("a").join(f)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(f)).unwrap();
        assert!(!a.is_empty(), "{f} is empty");
        assert_eq!(a, b, "{f} differs between two runs of one seed");
    }
}

/// Sums of a house's published powers over a run, kWh.
#[derive(Debug, Default)]
struct Energies {
    import: f64,
    export: f64,
    demand_served: f64,
    charger_ac: f64,
    inverter_ac: f64,
    battery: f64,
}

fn run_house(sc: &FleetScenario, step_ms: u64, wake: WakePolicy, hours: f64) -> Energies {
    let mut sc = sc.clone();
    sc.electrical_step_ms = step_ms;
    let h = sc.households(1)[0].clone();
    let key = sc.server_key().verifying_key().to_bytes();
    let mut cc = controller_config(&sc, &h, key).unwrap();
    if wake == WakePolicy::EveryTimeout {
        cc.control_period_ms = 1000;
    }
    let house = house_config(&sc, &h).unwrap();
    let (rec, time) = (Recording::default(), TimeMode::Lockstep);
    let mut lp = direct::session(house, cc, wake, rec, time).unwrap();
    let ids: Vec<_> = [
        "grid_import_w",
        "grid_export_w",
        "household_ac_demand_w",
        "ac_unserved_w",
        "charger_ac_power_w",
        "inverter_ac_power_w",
        "battery_power_w",
    ]
    .iter()
    .map(|n| lp.plant().signals().require(n).unwrap())
    .collect();
    let dt_h = step_ms as f64 / 3.6e6;
    let mut e = Energies::default();
    let end = SimTime::from_secs_f64(hours * 3600.0);
    lp.run_until(end, |plant| {
        let s = plant.signals();
        let g = |k: usize| s.get(ids[k]) * dt_h / 1000.0;
        e.import += g(0);
        e.export += g(1);
        e.demand_served += g(2) - g(3);
        e.charger_ac += g(4);
        e.inverter_ac += g(5);
        e.battery += g(6);
    })
    .unwrap();
    e
}

#[test]
fn the_fleet_plant_step_keeps_the_house_balanced_and_close_to_the_1_s_step() {
    // 19:00 to 01:00: the evening peak, the household's own peak shaving
    // and the start of off-peak charging.
    let sc = two_branches();
    let coarse = run_house(&sc, 10_000, WakePolicy::OncePerStep, 6.0);
    let fine = run_house(&sc, 1_000, WakePolicy::EveryTimeout, 6.0);
    eprintln!("10 s step: {coarse:?}\n1 s step: {fine:?}");
    // The AC side balances at each step: meter = demand served + charger − inverter.
    for e in [&coarse, &fine] {
        let meter = e.import - e.export;
        let parts = e.demand_served + e.charger_ac - e.inverter_ac;
        assert!(
            (meter - parts).abs() <= 0.005 * e.import.max(1.0),
            "AC balance: meter {meter:.3} kWh vs parts {parts:.3} kWh ({e:?})"
        );
    }
    // The 10 s step moves the same energy as the 1 s step.
    for (what, a, b) in [
        ("grid import", coarse.import, fine.import),
        ("battery", coarse.battery, fine.battery),
        ("inverter", coarse.inverter_ac, fine.inverter_ac),
    ] {
        assert!(
            (a - b).abs() <= 0.05 * b.abs() + 0.1,
            "{what}: {a:.3} kWh at 10 s vs {b:.3} kWh at 1 s\n10 s: {coarse:?}\n1 s: {fine:?}"
        );
    }
    assert!(fine.battery > 0.5, "the battery did work: {fine:?}");
}

#[test]
fn fleet_file_errors_name_the_file_and_key() {
    let path = repo("rigs/fleets/two_branches.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let bad = text.replace("households = 13", "households = 0");
    let e = FleetScenario::parse(&path, &bad).unwrap_err().to_string();
    assert!(
        e.contains("two_branches.toml") && e.contains("feeders[0].households"),
        "{e}"
    );
    let bad = text.replace("electrical_step_ms = 10000", "electrical_step_ms = 7000");
    let e = FleetScenario::parse(&path, &bad).unwrap_err().to_string();
    assert!(e.contains("electrical_step_ms"), "{e}");
    let bad = text.replace("cap_kw = 8.0", "cap_kw = 8.0\nbogus = 1");
    let e = FleetScenario::parse(&path, &bad).unwrap_err().to_string();
    assert!(e.contains("bogus"), "{e}");
    let bad = text.replace(
        "kerber_landnetz_freileitung_1/master.dss",
        "nope/master.dss",
    );
    let e = FleetScenario::parse(&path, &bad).unwrap_err().to_string();
    assert!(
        e.contains("feeders[0].network") && e.contains("nope"),
        "{e}"
    );
    for (setting, key, says) in [
        ("reserve_soc = \"most\"", "settings[0]", "\"local\""),
        ("reserve_soc = 1.5", "settings[0]", "reserve_soc"),
        ("max_sink_w = -3.0", "settings[0]", "max_sink_w"),
        (
            "branches = [3]\nreserve_soc = 0.5",
            "settings[0].branches",
            "no branch 3",
        ),
        ("", "settings[0]", "sets nothing"),
    ] {
        let bad = format!("{text}\n[[settings]]\nat_h = 20.0\n{setting}\n");
        let e = FleetScenario::parse(&path, &bad).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(says), "{setting}: {e}");
    }
    let good =
        format!("{text}\n[[settings]]\nat_h = 20.0\nbranches = [1]\nreserve_soc = \"local\"\n");
    let sc = FleetScenario::parse(&path, &good).unwrap();
    assert_eq!(sc.settings.len(), 1);
}

#[test]
fn households_are_placed_deterministically_on_load_points() {
    let sc = two_branches();
    let a = sc.households(1);
    assert_eq!(a, sc.households(1));
    assert_eq!(a.len(), 13);
    let n_loads = sc.feeder_of(1).unwrap().model.loads.len();
    for (k, h) in a.iter().enumerate() {
        assert_eq!(h.load, k % n_loads);
        assert_eq!(h.site_id, 10_000 + k as u32 + 1);
        assert!((1..=3).contains(&h.phase));
    }
    // Another branch draws its own households.
    assert_ne!(
        a.iter().map(|h| h.seed).collect::<Vec<_>>(),
        sc.households(2).iter().map(|h| h.seed).collect::<Vec<_>>()
    );
}

// ------------------------------------------------------------ server alone

const RUN: &str = "prop";

fn hello(sc: &FleetScenario) -> Message {
    let mut feeders = Vec::new();
    let mut sites = Vec::new();
    for b in sc.branch_ids() {
        feeders.push(FeederInfo {
            branch_id: b,
            feeder: "f".into(),
            households: 13,
        });
        for h in sc.households(b) {
            sites.push(SiteInfo {
                site_id: h.site_id,
                branch_id: b,
                feeder: "f".into(),
                bus: h.bus,
                phase: h.phase,
            });
        }
    }
    let h = Hello {
        schema: "maslow-fleet/1".into(),
        shard_id: "s".into(),
        feeders,
        sites,
    };
    json_message(Topic::Hello("s".into()).to_topic(RUN), &h, true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever the branch loads and the reported headroom: dispatch for a
    /// branch only addresses that branch's sites (and is signed for that
    /// branch), the branch without a requirement is never dispatched, a
    /// branch's commands never exceed its reported headroom, its total
    /// changes by at most `max_step_w` a minute, and sequences increase.
    #[test]
    fn server_dispatch_stays_on_its_branch_within_headroom(
        p_kw in proptest::collection::vec((0.0f64..40.0, -5.0f64..25.0), 100),
        headroom in proptest::collection::vec(0.0f64..3500.0, 26),
    ) {
        let sc = two_branches();
        let max_step = sc.feeders[0].spec.max_step_w;
        let mut branch_of = BTreeMap::new();
        for b in sc.branch_ids() {
            for h in sc.households(b) {
                branch_of.insert(h.site_id, b);
            }
        }
        let mut server = FleetServer::new(Arc::new(sc.clone()), RUN).unwrap();
        server.handle(&hello(&sc)).unwrap();
        let mut last_seq = 0u64;
        let mut last_plan: BTreeMap<u32, f64> = BTreeMap::new();
        for (minute, (p1, p2)) in (0u32..).zip(p_kw.iter().copied()) {
            let mut tick_seen = false;
            while let Some(m) = server.poll_transmit() {
                match Topic::parse(RUN, &m.topic).unwrap() {
                    Topic::SiteDispatch(site) => {
                        let d = firmware::wire::dispatch::parse(&m.payload).unwrap();
                        prop_assert_eq!(d.content.site_id, site);
                        prop_assert_eq!(Some(&d.content.branch_id), branch_of.get(&site));
                        prop_assert_eq!(d.content.branch_id, 1, "branch 2 has no requirement");
                        prop_assert!(d.content.sequence > last_seq);
                        last_seq = d.content.sequence;
                    }
                    Topic::BranchDispatch(b) => {
                        let d = firmware::wire::dispatch::parse(&m.payload).unwrap();
                        prop_assert_eq!(d.content.branch_id, b);
                        prop_assert_eq!(d.content.site_id, 0);
                        prop_assert_eq!(d.content.command, firmware::wire::dispatch::Command::Heartbeat);
                        prop_assert!(d.content.sequence > last_seq);
                        last_seq = d.content.sequence;
                    }
                    Topic::Tick => tick_seen = true,
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert!(tick_seen || server.is_finished());
            if server.is_finished() {
                break;
            }
            for (b, plan) in server.plans_w() {
                let prev = last_plan.get(&b).copied().unwrap_or(0.0);
                prop_assert!((plan - prev).abs() <= max_step + 1e-6, "step {} -> {}", prev, plan);
                last_plan.insert(b, plan);
                let cmds: f64 = server.commands_on(b).iter().map(|c| c.1.max(0.0)).sum();
                let room: f64 = server
                    .sites_on(b)
                    .iter()
                    .filter_map(|s| server.telemetry_of(*s))
                    .map(|t| t.max_discharge_w)
                    .sum();
                if minute > 0 {
                    prop_assert!(cmds <= room + 1e-6, "branch {}: {} W commanded, {} W headroom", b, cmds, room);
                }
            }
            // The shard's side: telemetry for every site (each follows its
            // command, so none falls out as clipped), then Done.
            let following: BTreeMap<u32, f64> = sc
                .branch_ids()
                .iter()
                .flat_map(|b| server.commands_on(*b))
                .collect();
            let mut n = 0;
            for (i, (site, b)) in branch_of.iter().enumerate() {
                let t = Telemetry {
                    site_id: *site,
                    branch_id: *b,
                    minute,
                    soc: 0.6,
                    reserve_soc: 0.2,
                    max_charge_w: 2000.0,
                    max_discharge_w: headroom[i % headroom.len()],
                    battery_w: following.get(site).copied().unwrap_or(0.0),
                    net_ac_w: 500.0,
                    participating: true,
                    server_silent: false,
                    dispatch_seq: None,
                    counters: SiteCounters::default(),
                };
                server
                    .handle(&json_message(Topic::Telemetry(*site).to_topic(RUN), &t, false))
                    .unwrap();
                n += 1;
            }
            let feeder = |branch_id, p: f64| FeederReport {
                branch_id,
                transformer_p_kw: [p / 3.0; 3],
                transformer_q_kvar: [0.0; 3],
                loading_pct: 0.0,
                v_min_pu: 0.98,
                v_max_pu: 1.0,
                soc_mean: 0.6,
                soc_min: 0.5,
                battery_w: 0.0,
                server_silent: 0,
            };
            let done = Done {
                shard_id: "s".into(),
                minute,
                n_telemetry: n,
                n_acks: 0,
                feeders: vec![feeder(1, p1), feeder(2, p2)],
            };
            server
                .handle(&json_message(Topic::Done("s".into()).to_topic(RUN), &done, false))
                .unwrap();
            prop_assert!(server.is_tick_complete());
        }
    }
}

#[test]
fn malformed_messages_are_counted_by_topic_and_change_nothing() {
    let sc = two_branches();
    let mut server = FleetServer::new(Arc::new(sc.clone()), RUN).unwrap();
    let bad = Message {
        topic: Topic::Hello("s".into()).to_topic(RUN),
        payload: b"{not json".to_vec(),
        retain: true,
    };
    assert!(server.handle(&bad).is_err());
    let stray = Message {
        topic: "maslow/prop/site/5/telemetry".into(),
        payload: b"{}".to_vec(),
        retain: false,
    };
    assert!(server.handle(&stray).is_err());
    assert!(server.poll_transmit().is_none(), "no Hello yet: no tick");
    let r = server.report();
    assert_eq!(r.bad_messages.get(&bad.topic), Some(&1));
    assert_eq!(r.bad_messages.get(&stray.topic), Some(&1));
    server.handle(&hello(&sc)).unwrap();
    assert!(
        server.poll_transmit().is_some(),
        "a Hello covering every branch starts the run"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// The lockstep result does not depend on the order messages arrive in.
    #[test]
    fn lockstep_result_is_independent_of_arrival_order(seed in any::<u64>()) {
        let sc = two_branches().with_hours(1.5);
        let base = outputs(sc.clone(), &RunOptions { threads: 1, ..RunOptions::default() });
        let shuffled = outputs(
            sc,
            &RunOptions {
                shards: 2,
                threads: 1,
                shuffle_seed: Some(seed),
                ..RunOptions::default()
            },
        );
        prop_assert_eq!(base, shuffled);
    }
}

#[test]
fn every_assembly_accepts_the_heartbeat_of_minute_zero() {
    // The server's first heartbeat goes out before the first plant step;
    // an assembly must judge it by the run's clock, not by UTC 0 (where it
    // reads as not yet valid).
    let sc = two_branches().with_hours(3.0 / 60.0);
    let o = run_in_process(Arc::new(sc), &RunOptions::default()).unwrap();
    let mut last: BTreeMap<u32, &Telemetry> = BTreeMap::new();
    for t in &o.telemetry {
        if last.get(&t.site_id).is_none_or(|p| p.minute <= t.minute) {
            last.insert(t.site_id, t);
        }
    }
    assert_eq!(last.len(), o.assemblies, "one telemetry per assembly");
    assert_eq!(
        o.report.heartbeats_sent,
        2 * 3,
        "a heartbeat a minute per branch"
    );
    for t in last.values() {
        assert_eq!(t.counters.rejected, BTreeMap::new(), "site {}", t.site_id);
        assert_eq!(t.counters.accepted_heartbeat, 3, "site {}", t.site_id);
    }
}

#[test]
fn configuration_messages_reach_only_their_branch_and_are_judged_by_each_assembly() {
    // Branch 1: reserve raised to 50 % (within the assemblies' bounds);
    // branch 2: 95 % (above `reserve_soc_max` 0.8): refused by each.
    let path = repo("rigs/fleets/two_branches.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let with = format!(
        "{text}\n[[settings]]\nat_h = 19.05\nbranches = [1]\nreserve_soc = 0.5\n\n[[settings]]\nat_h = 19.05\nbranches = [2]\nreserve_soc = 0.95\n"
    );
    let sc = FleetScenario::parse(&path, &with).unwrap().with_hours(0.1);
    let o = run_in_process(Arc::new(sc), &RunOptions::default()).unwrap();
    let r = &o.report;
    let per_branch = o.assemblies as u64 / 2;
    assert_eq!(r.config_messages_sent, 2 * per_branch);
    let b1 = &r.branches[0];
    let b2 = &r.branches[1];
    assert_eq!(
        b1.config_acks.get("accepted"),
        Some(&(per_branch as u32)),
        "{b1:?}"
    );
    assert_eq!(
        b2.config_acks.get("rejected:out_of_envelope"),
        Some(&(per_branch as u32)),
        "{b2:?}"
    );
    // Counted apart from the dispatches' acks.
    assert!(
        !r.acks.contains_key("rejected:out_of_envelope"),
        "{:?}",
        r.acks
    );
    for t in &o.telemetry {
        let (want_reserve, accepted, refused) = if t.branch_id == 1 {
            (0.5, 1, 0)
        } else {
            (0.2, 0, 1)
        };
        assert!((t.reserve_soc - want_reserve).abs() < 1e-6, "{t:?}");
        assert_eq!(t.counters.accepted_config, accepted, "{t:?}");
        assert_eq!(
            t.counters
                .rejected
                .get("out_of_envelope")
                .copied()
                .unwrap_or(0),
            refused,
            "{t:?}"
        );
    }
}

#[test]
fn a_realtime_server_ends_minutes_on_its_clock_and_counts_late_messages() {
    let sc = Arc::new(two_branches().with_hours(3.0 / 60.0));
    let mut server = FleetServer::new(Arc::clone(&sc), RUN).unwrap();
    server.set_realtime(Some(100));
    let mut shard =
        rigs::fleet::shard::Shard::new(Arc::clone(&sc), RUN, "s", &sc.branch_ids(), 1).unwrap();
    while let Some(m) = shard.poll_transmit() {
        server.handle(&m).unwrap();
    }
    // Minute 0: the tick alone reaches the shard (its messages are late):
    // a real-time shard steps on the tick.
    let out: Vec<Message> = std::iter::from_fn(|| server.poll_transmit()).collect();
    let tick = out.iter().find(|m| m.topic.ends_with("/tick")).unwrap();
    assert!(out.len() > 1, "minute 0 carries heartbeats");
    shard.handle(tick).unwrap();
    assert!(shard.is_ready(), "a real-time shard waits for no message");
    let from_shard: Vec<Message> = std::iter::from_fn(|| shard.poll_transmit()).collect();
    assert!(from_shard.iter().any(|m| m.topic.ends_with("/done/s")));
    // The server's clock ends minute 0 before the shard's messages came.
    assert!(server.poll_transmit().is_none(), "no minute ends by itself");
    server.end_minute();
    let late = from_shard.len() as u64;
    for m in &from_shard {
        server.handle(m).unwrap();
    }
    let r = server.report();
    assert_eq!(r.clock, "realtime");
    assert_eq!(r.minutes_incomplete, 1);
    assert_eq!(r.late_messages, late);
    assert!(r.bad_messages.is_empty(), "{:?}", r.bad_messages);
    // Minute 1 goes round in time: complete.
    let out: Vec<Message> = std::iter::from_fn(|| server.poll_transmit()).collect();
    for m in &out {
        shard.handle(m).unwrap();
    }
    let from_shard: Vec<Message> = std::iter::from_fn(|| shard.poll_transmit()).collect();
    for m in &from_shard {
        server.handle(m).unwrap();
    }
    server.end_minute();
    let r = server.report();
    assert_eq!(
        (r.minutes, r.minutes_incomplete, r.late_messages),
        (2, 1, late)
    );
    // A lockstep server takes the same late message as an error.
    let mut lockstep = FleetServer::new(Arc::clone(&sc), RUN).unwrap();
    lockstep.handle(&hello(&sc)).unwrap();
    let _: Vec<Message> = std::iter::from_fn(|| lockstep.poll_transmit()).collect();
    let telemetry = from_shard
        .iter()
        .find(|m| m.topic.ends_with("/telemetry"))
        .unwrap();
    assert!(lockstep.handle(telemetry).is_err());
}

#[test]
fn a_batch_decoded_in_parallel_is_taken_exactly_as_one_message_at_a_time() {
    let sc = Arc::new(two_branches().with_hours(3.0 / 60.0));
    let mut shard =
        rigs::fleet::shard::Shard::new(Arc::clone(&sc), RUN, "s", &sc.branch_ids(), 1).unwrap();
    let hello: Vec<Message> = std::iter::from_fn(|| shard.poll_transmit()).collect();
    let mut one = FleetServer::new(Arc::clone(&sc), RUN).unwrap();
    let mut batch = FleetServer::new(Arc::clone(&sc), RUN).unwrap();
    batch.set_threads(2);
    for m in &hello {
        one.handle(m).unwrap();
        batch.handle(m).unwrap();
    }
    for m in std::iter::from_fn(|| one.poll_transmit()) {
        let _ = shard.handle(&m);
    }
    let _: Vec<Message> = std::iter::from_fn(|| batch.poll_transmit()).collect();
    let minute: Vec<Message> = std::iter::from_fn(|| shard.poll_transmit()).collect();
    // Twelve copies (repeats: taken again or refused), with garbage between.
    let mut msgs = Vec::new();
    for k in 0..12 {
        msgs.extend(minute.iter().cloned());
        msgs.push(Message {
            topic: Topic::Telemetry(10001).to_topic(RUN),
            payload: format!("{{\"site_id\": {k}").into_bytes(),
            retain: false,
        });
        msgs.push(Message {
            topic: format!("maslow/{RUN}/nonsense/{k}"),
            payload: Vec::new(),
            retain: false,
        });
    }
    assert!(msgs.len() >= 256, "the batch must take the parallel path");
    let bad_one = msgs.iter().filter(|m| one.handle(m).is_err()).count();
    let refs: Vec<&Message> = msgs.iter().collect();
    let bad_batch = batch.handle_batch(&refs);
    assert_eq!(bad_one, bad_batch);
    assert!(bad_batch >= 24, "the garbage is refused");
    assert_eq!(
        serde_json::to_string(&one.report()).unwrap(),
        serde_json::to_string(&batch.report()).unwrap()
    );
    assert_eq!(one.is_tick_complete(), batch.is_tick_complete());
    assert_eq!(one.latest_telemetry(), batch.latest_telemetry());
}
