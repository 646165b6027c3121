//! The remote server (sans-IO): branch requirements → signed per-assembly
//! dispatch, the lockstep clock, and the compliance report.
//!
//! The server learns which assembly sits on which branch from the shards'
//! [`Hello`]s. Each minute `m` it plans every branch independently from
//! what was measured in minute `m − 1` (the branch transformer's power from
//! [`Done`], each assembly's headroom from its [`Telemetry`]):
//!
//! - **peak_cap**: total discharge `B ← B + gain·(P − cap·(1 − margin))`,
//!   clamped to `[0, Σ max_discharge_w]`;
//! - **absorb_export**: total charge `B ← B + gain·(P + max_export − export_margin)`,
//!   clamped to `[−Σ max_charge_w, 0]`;
//! - **shift_demand**: `B = −power` in the charge window, `+power` in the
//!   discharge window;
//! - no requirement in force: `B → 0`;
//!
//! then limits the change of `B` from one minute to the next to the
//! branch's `max_step_w`, and shares `B` among the assemblies in proportion
//! to their headroom. A site whose share moved by more than the deadband,
//! or whose command is about to run out, gets a new signed dispatch
//! (`P/site/<id>/dispatch`, sequence strictly increasing, short validity,
//! `dispatch_duration_s` long, so a silent server's commands lapse and
//! the assemblies fall back to local operation); a site leaving the plan
//! gets a Cancel. Every `heartbeat_s` the server signs a heartbeat to each
//! branch (`P/branch/<id>/dispatch`, site 0), so assemblies that stop
//! hearing it withdraw to local operation (`server_silence_s` in the
//! firmware). Assemblies that fall out (no telemetry, not
//! participating, rejected as not participating, or clipped: measured
//! battery power under half its command for two minutes) are dropped from
//! the share, and the others are **re-dispatched** at once. A plan for one
//! branch only ever addresses sites that said (in `Hello`) they are on it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use firmware::wire::config_message::{self, ConfigMessage, Settings};
use firmware::wire::dispatch::{self, Command, Dispatch, RequirementKind};
use firmware::wire::signed::ALL_SITES;
use serde::Serialize;

use super::scenario::{AttackKind, FleetScenario, Requirement};
use super::wire::{
    self, json_message, parse_json, Ack, Done, FeederReport, Hello, Message, Telemetry, Tick,
    Topic, WireError,
};

/// Where the server is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for Hellos that cover every branch of the scenario.
    Hello,
    /// Minute `m`'s tick is out; waiting for the shards.
    Running(u32),
    /// Every minute done.
    Finished,
}

/// What the server knows about one assembly.
#[derive(Debug, Clone, Default)]
struct SiteState {
    branch_id: u32,
    /// Latest telemetry (of the minute just done).
    telemetry: Option<Telemetry>,
    /// Command in force as the server sent it: signed W (+ = discharge).
    commanded_w: f64,
    /// Minute its command runs out (0: none).
    until_minute: u32,
    /// Minutes in a row measured under half the command.
    clipped_minutes: u32,
    /// Out of the plan for the current event (fell out).
    out: bool,
    /// The two last messages sent to it, older first (an attacker
    /// replays the older one).
    last_sent: VecDeque<Vec<u8>>,
    /// Was ever given a non-zero command.
    dispatched: bool,
    /// Rejected as not participating in the last minute.
    not_participating: bool,
}

/// Compliance of one requirement on one branch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RequirementReport {
    /// `peak_cap`, `absorb_export` or `shift_demand`.
    pub kind: String,
    /// Its limit or power, kW.
    pub limit_kw: f64,
    /// Minutes in its window(s) that ran.
    pub minutes_in_window: u32,
    /// Minutes over the cap (peak_cap) or over the export limit (absorb_export).
    pub minutes_violated: u32,
    /// Largest excess over the limit, kW.
    pub worst_excess_kw: f64,
    /// Energy the branch's assemblies moved in the window(s), kWh
    /// (discharged for peak_cap, charged for absorb_export, both for
    /// shift_demand), from their telemetry.
    pub energy_shifted_kwh: f64,
    /// Mean transformer power in the window, kW.
    pub mean_p_kw: f64,
}

/// Compliance and message counts of one branch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BranchReport {
    /// Branch.
    pub branch_id: u32,
    /// Feeder name.
    pub feeder: String,
    /// Assemblies on it.
    pub assemblies: u32,
    /// Per requirement.
    pub requirements: Vec<RequirementReport>,
    /// Assemblies given a non-zero command at least once.
    pub assemblies_dispatched: u32,
    /// Times an assembly fell out of a plan.
    pub assemblies_lost: u32,
    /// Of `assemblies_lost`, why: `no_telemetry` (off line: dropped out,
    /// or its messages lost), `not_participating` (opted out, islanded, or
    /// rejected a dispatch as not participating), `clipped` (measured
    /// under half its command for two minutes: empty, at a limit, or a
    /// house that cannot take the power without exporting).
    pub assemblies_lost_by_reason: BTreeMap<String, u32>,
    /// Minutes in which the plan was re-shared because assemblies fell out.
    pub redispatches: u32,
    /// Signed messages sent to the branch's assemblies.
    pub messages_sent: u32,
    /// Acks received, by verdict.
    pub acks: BTreeMap<String, u32>,
    /// Signed configuration messages sent to the branch's assemblies.
    pub config_messages_sent: u32,
    /// Their acks, by verdict.
    pub config_acks: BTreeMap<String, u32>,
    /// Peak transformer power over the run, kW.
    pub peak_p_kw: f64,
    /// Lowest voltage over the run, p.u.
    pub v_min_pu: f64,
    /// Highest voltage over the run, p.u.
    pub v_max_pu: f64,
}

/// The server's report of the run (`compliance.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ComplianceReport {
    /// Schema.
    pub schema: String,
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Minutes run.
    pub minutes: u32,
    /// Per branch.
    pub branches: Vec<BranchReport>,
    /// Signed messages sent.
    pub messages_sent: u64,
    /// Acks received.
    pub acks_received: u64,
    /// Acks by verdict over all branches.
    pub acks: BTreeMap<String, u32>,
    /// Telemetry messages received.
    pub telemetry_received: u64,
    /// Minutes in which the server was silent (fault schedule).
    pub silent_minutes: u32,
    /// Signed branch heartbeats sent.
    pub heartbeats_sent: u64,
    /// Forged or replayed messages an attacker injected.
    pub attack_messages: u32,
    /// Bad messages received, by topic.
    pub bad_messages: BTreeMap<String, u32>,
    /// `lockstep` (every minute waits for every shard) or `realtime`
    /// (minutes end on the wall clock; what comes late is counted).
    pub clock: String,
    /// Real time: shard messages (telemetry, acks, Done) that came after
    /// their minute had ended; not used.
    pub late_messages: u64,
    /// Real time: minutes that ended with something missing: a shard's
    /// Done, or telemetry and acks it announced (lost, or not in yet).
    pub minutes_incomplete: u32,
    /// Signed configuration messages sent (`[[settings]]`).
    pub config_messages_sent: u64,
    /// Their acks by verdict over all branches (not in `acks`).
    pub config_acks: BTreeMap<String, u32>,
}

/// One branch's row of the per-minute CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchMinuteRow {
    /// Minute.
    pub minute: u32,
    /// What the shard measured.
    pub report: FeederReport,
    /// Total the server had commanded for the minute, W (+ = discharge).
    pub dispatched_w: f64,
}

struct BranchCtl {
    branch_id: u32,
    requirements: Vec<Requirement>,
    /// Configuration changes to send: (run minute, settings), by minute.
    settings: Vec<(u32, Settings)>,
    max_step_w: f64,
    sites: Vec<u32>,
    /// Total planned battery power, W (+ = discharge).
    plan_w: f64,
    /// Last measured minute's report.
    last: Option<FeederReport>,
    report: BranchReport,
    /// The requirement index in force last minute.
    active: Option<usize>,
    /// The three last heartbeats sent to the branch, oldest first (an
    /// attacker replays the oldest: every assembly has accepted a newer
    /// one, so it is not a redelivery of the last).
    heartbeats: VecDeque<Vec<u8>>,
}

/// The remote server.
pub struct FleetServer {
    run_id: String,
    scenario: Arc<FleetScenario>,
    key: SigningKey,
    phase: Phase,
    sequence: u64,
    branches: BTreeMap<u32, BranchCtl>,
    sites: BTreeMap<u32, SiteState>,
    /// shard id → its branches.
    shards: BTreeMap<String, Vec<u32>>,
    branch_shard: BTreeMap<u32, String>,
    dones: BTreeMap<String, Done>,
    /// Telemetry and acks received for the running minute.
    received: u32,
    telemetry: BTreeMap<u32, Telemetry>,
    acks: Vec<Ack>,
    /// Sequence numbers of the configuration messages sent (their acks
    /// are counted apart from the dispatches').
    config_sequences: BTreeSet<u64>,
    outbox: VecDeque<Message>,
    rows: Vec<BranchMinuteRow>,
    report: ComplianceReport,
    threads: usize,
    /// Real time: minutes end when told ([`FleetServer::end_minute`]), not
    /// when complete; the wall time of a minute, ms.
    realtime_minute_ms: Option<u64>,
}

/// Signs `planned` on up to `threads` scoped threads; results in order.
fn parallel_sign(planned: &[(u32, Dispatch)], key: &SigningKey, threads: usize) -> Vec<Vec<u8>> {
    let sign = |d: &Dispatch| dispatch::encode(d, key).to_vec();
    if threads <= 1 || planned.len() < 64 {
        return planned.iter().map(|(_, d)| sign(d)).collect();
    }
    let chunk = planned.len().div_ceil(threads);
    let sign = &sign;
    std::thread::scope(|s| {
        let handles: Vec<_> = planned
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|(_, d)| sign(d)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// A message for the server, parsed (topic and JSON) but not yet checked
/// against the run.
enum Decoded {
    Hello(String, Hello),
    Telemetry(u32, Telemetry),
    Ack(u32, Ack),
    Done(String, Done),
}

/// Parses a message for the server: its topic and JSON payload. Pure, so
/// a batch can be decoded on several threads.
fn decode(run_id: &str, msg: &Message) -> Result<Decoded, WireError> {
    Ok(match Topic::parse(run_id, &msg.topic)? {
        Topic::Hello(id) => Decoded::Hello(id, parse_json(msg)?),
        Topic::Telemetry(site) => Decoded::Telemetry(site, parse_json(msg)?),
        Topic::Ack(site) => Decoded::Ack(site, parse_json(msg)?),
        Topic::Done(id) => Decoded::Done(id, parse_json(msg)?),
        _ => {
            return Err(WireError::Unexpected {
                topic: msg.topic.clone(),
                message: "not a topic the server takes".into(),
            })
        }
    })
}

fn requirement_code(r: &Requirement, discharge: bool) -> RequirementKind {
    match r {
        Requirement::PeakCap { .. } => RequirementKind::PeakDemand,
        Requirement::AbsorbExport { .. } => RequirementKind::LocalGenerationSurplus,
        Requirement::ShiftDemand { .. } if discharge => RequirementKind::PeakDemand,
        Requirement::ShiftDemand { .. } => RequirementKind::GridStorage,
    }
}

impl FleetServer {
    /// A server for `scenario`'s branches on run `run_id`.
    pub fn new(scenario: Arc<FleetScenario>, run_id: &str) -> Result<FleetServer, WireError> {
        wire::check_run_id(run_id)?;
        let mut branches = BTreeMap::new();
        let mut reports = Vec::new();
        for b in &scenario.branches {
            let Some(f) = scenario.feeders.get(b.feeder) else {
                continue;
            };
            let requirements = scenario.requirements_of(b.branch_id);
            let mut settings: Vec<(u32, Settings)> = scenario
                .settings
                .iter()
                .filter(|c| c.branches.is_empty() || c.branches.contains(&b.branch_id))
                .filter_map(|c| {
                    let settings = c.to_settings().ok()?;
                    Some((scenario.minute_of(c.at_h), settings))
                })
                .collect();
            settings.sort_by_key(|(m, _)| *m);
            let report = BranchReport {
                branch_id: b.branch_id,
                feeder: f.name.clone(),
                requirements: requirements
                    .iter()
                    .map(|r| RequirementReport {
                        kind: r.kind().into(),
                        limit_kw: match r {
                            Requirement::PeakCap { cap_kw, .. } => *cap_kw,
                            Requirement::AbsorbExport { max_export_kw, .. } => *max_export_kw,
                            Requirement::ShiftDemand { power_kw, .. } => *power_kw,
                        },
                        ..Default::default()
                    })
                    .collect(),
                v_min_pu: f64::INFINITY,
                v_max_pu: 0.0,
                peak_p_kw: f64::NEG_INFINITY,
                ..Default::default()
            };
            reports.push(b.branch_id);
            branches.insert(
                b.branch_id,
                BranchCtl {
                    branch_id: b.branch_id,
                    requirements,
                    settings,
                    max_step_w: f.spec.max_step_w,
                    sites: Vec::new(),
                    plan_w: 0.0,
                    last: None,
                    report,
                    active: None,
                    heartbeats: VecDeque::new(),
                },
            );
        }
        let report = ComplianceReport {
            schema: wire::SCHEMA.into(),
            scenario: scenario.name.clone(),
            seed: scenario.seed,
            clock: "lockstep".into(),
            ..Default::default()
        };
        Ok(FleetServer {
            run_id: run_id.into(),
            key: scenario.server_key(),
            scenario,
            phase: Phase::Hello,
            sequence: 0,
            branches,
            sites: BTreeMap::new(),
            shards: BTreeMap::new(),
            branch_shard: BTreeMap::new(),
            dones: BTreeMap::new(),
            received: 0,
            telemetry: BTreeMap::new(),
            acks: Vec::new(),
            config_sequences: BTreeSet::new(),
            outbox: VecDeque::new(),
            rows: Vec::new(),
            report,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            realtime_minute_ms: None,
        })
    }

    /// Real-time clock, one simulated minute per `minute_ms` of wall time
    /// (`None`: lockstep): a minute ends when the transport calls
    /// [`FleetServer::end_minute`], with whatever came in; ticks tell the
    /// shards to step without waiting, and to keep stepping at this pace
    /// if a tick is lost. Set before the run starts.
    pub fn set_realtime(&mut self, minute_ms: Option<u64>) {
        self.realtime_minute_ms = minute_ms.map(|ms| ms.max(1));
        self.report.clock = if minute_ms.is_some() {
            "realtime"
        } else {
            "lockstep"
        }
        .into();
    }

    /// Whether minutes end on [`FleetServer::end_minute`] (real time).
    pub fn is_realtime(&self) -> bool {
        self.realtime_minute_ms.is_some()
    }

    /// Real time: ends the running minute with what has come in (sites
    /// without telemetry fall out of the plan) and starts the next one, or
    /// finishes the run. Does nothing before the start or after the end.
    pub fn end_minute(&mut self) {
        if let Phase::Running(m) = self.phase {
            if !self.is_tick_complete() {
                self.report.minutes_incomplete += 1;
            }
            self.finish_minute(m);
            if m + 1 >= self.scenario.duration_min {
                self.phase = Phase::Finished;
            } else {
                self.start_minute(m + 1);
            }
        }
    }

    /// Real time: a shard message of an ended minute is counted, not an error.
    fn late(&mut self, minute: u32, running: Option<u32>) -> bool {
        let late = self.is_realtime()
            && (running.is_some_and(|r| minute < r) || self.phase == Phase::Finished);
        if late {
            self.report.late_messages += 1;
        }
        late
    }

    /// Signs on up to this many threads (default: the machine's cores;
    /// the messages do not depend on it).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Where the run is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether every minute has been stepped.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The shards that said Hello, with their branches.
    pub fn shards(&self) -> &BTreeMap<String, Vec<u32>> {
        &self.shards
    }

    /// The per-branch per-minute rows so far (minute, then branch order).
    pub fn rows(&self) -> &[BranchMinuteRow] {
        &self.rows
    }

    /// Sites the server knows on a branch (from the Hellos), ascending.
    pub fn sites_on(&self, branch_id: u32) -> Vec<u32> {
        self.branches
            .get(&branch_id)
            .map(|b| b.sites.clone())
            .unwrap_or_default()
    }

    /// The latest telemetry of a site.
    pub fn telemetry_of(&self, site_id: u32) -> Option<&Telemetry> {
        self.sites.get(&site_id).and_then(|s| s.telemetry.as_ref())
    }

    /// The compliance report (final once [`FleetServer::is_finished`]).
    pub fn report(&self) -> ComplianceReport {
        let mut r = self.report.clone();
        r.branches = self
            .branches
            .values()
            .map(|b| {
                let mut br = b.report.clone();
                br.assemblies = b.sites.len() as u32;
                br.assemblies_dispatched = b
                    .sites
                    .iter()
                    .filter(|s| self.sites.get(s).is_some_and(|x| x.dispatched))
                    .count() as u32;
                if !br.v_min_pu.is_finite() {
                    br.v_min_pu = 0.0;
                }
                if !br.peak_p_kw.is_finite() {
                    br.peak_p_kw = 0.0;
                }
                for q in &mut br.requirements {
                    if q.minutes_in_window > 0 {
                        q.mean_p_kw /= f64::from(q.minutes_in_window);
                    }
                }
                br
            })
            .collect();
        r
    }

    fn bad(&mut self, e: WireError) -> WireError {
        let topic = e.topic();
        *self.report.bad_messages.entry(topic).or_default() += 1;
        e
    }

    /// Takes one message from the transport. Bad messages are counted in
    /// the report (`bad_messages`, by topic) and returned; they change nothing.
    pub fn handle(&mut self, msg: &Message) -> Result<(), WireError> {
        let decoded = decode(&self.run_id, msg);
        self.apply(msg, decoded)
    }

    /// Takes a batch of messages in order, as [`FleetServer::handle`] each
    /// (same checks, same counts), decoding their JSON on up to the
    /// server's threads first: a minute's 10,000 telemetry messages are
    /// the server's heaviest serial work otherwise. Returns how many were
    /// bad.
    pub fn handle_batch(&mut self, msgs: &[&Message]) -> usize {
        let run_id = self.run_id.as_str();
        let decoded: Vec<Result<Decoded, WireError>> = if self.threads <= 1 || msgs.len() < 256 {
            msgs.iter().map(|m| decode(run_id, m)).collect()
        } else {
            let chunk = msgs.len().div_ceil(self.threads);
            std::thread::scope(|s| {
                let handles: Vec<_> = msgs
                    .chunks(chunk)
                    .map(|c| {
                        s.spawn(move || c.iter().map(|m| decode(run_id, m)).collect::<Vec<_>>())
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        let mut bad = 0;
        for (m, d) in msgs.iter().zip(decoded) {
            if self.apply(m, d).is_err() {
                bad += 1;
            }
        }
        bad
    }

    /// Checks a decoded message against the run's state and takes it in.
    fn apply(
        &mut self,
        msg: &Message,
        decoded: Result<Decoded, WireError>,
    ) -> Result<(), WireError> {
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => return Err(self.bad(e)),
        };
        let unexpected = |m: String| WireError::Unexpected {
            topic: msg.topic.clone(),
            message: m,
        };
        let running = match self.phase {
            Phase::Running(m) => Some(m),
            _ => None,
        };
        match decoded {
            Decoded::Hello(id, h) => {
                if h.shard_id != id {
                    return Err(self.bad(unexpected(format!(
                        "Hello names shard {} on shard {id}'s topic",
                        h.shard_id
                    ))));
                }
                self.on_hello(h).map_err(|m| self.bad(unexpected(m)))?;
            }
            Decoded::Telemetry(site, t) => {
                let known = self.sites.get(&site).map(|s| s.branch_id);
                if t.site_id == site && known == Some(t.branch_id) && self.late(t.minute, running) {
                    return Ok(());
                }
                if t.site_id != site || known != Some(t.branch_id) || running != Some(t.minute) {
                    return Err(self.bad(unexpected(format!(
                        "telemetry of site {} branch {} minute {} (running {:?})",
                        t.site_id, t.branch_id, t.minute, running
                    ))));
                }
                self.report.telemetry_received += 1;
                self.received += 1;
                self.telemetry.insert(site, t);
            }
            Decoded::Ack(site, a) => {
                if a.site_id == site
                    && self.sites.contains_key(&site)
                    && self.late(a.minute, running)
                {
                    return Ok(());
                }
                if a.site_id != site || !self.sites.contains_key(&site) || running != Some(a.minute)
                {
                    return Err(self.bad(unexpected(format!(
                        "ack of site {} minute {} (running {:?})",
                        a.site_id, a.minute, running
                    ))));
                }
                self.report.acks_received += 1;
                self.received += 1;
                self.acks.push(a);
            }
            Decoded::Done(id, d) => {
                if d.shard_id == id && self.shards.contains_key(&id) && self.late(d.minute, running)
                {
                    return Ok(());
                }
                if d.shard_id != id || !self.shards.contains_key(&id) || running != Some(d.minute) {
                    return Err(self.bad(unexpected(format!(
                        "Done of shard {} minute {} (running {:?})",
                        d.shard_id, d.minute, running
                    ))));
                }
                self.dones.insert(id, d);
            }
        }
        Ok(())
    }

    fn on_hello(&mut self, h: Hello) -> Result<(), String> {
        if self.phase != Phase::Hello {
            // A retained Hello seen again (e.g. a reconnect): fine if unchanged.
            return match self.shards.get(&h.shard_id) {
                Some(b) if *b == h.feeders.iter().map(|f| f.branch_id).collect::<Vec<_>>() => {
                    Ok(())
                }
                _ => Err(format!("shard {} joined after the start", h.shard_id)),
            };
        }
        for f in &h.feeders {
            if !self.branches.contains_key(&f.branch_id) {
                return Err(format!("branch {} is not in the scenario", f.branch_id));
            }
            if let Some(other) = self.branch_shard.get(&f.branch_id) {
                if *other != h.shard_id {
                    return Err(format!(
                        "branch {} is owned by shard {other} already",
                        f.branch_id
                    ));
                }
            }
        }
        for s in &h.sites {
            if !h.feeders.iter().any(|f| f.branch_id == s.branch_id) {
                return Err(format!(
                    "site {} on branch {} not owned by the shard",
                    s.site_id, s.branch_id
                ));
            }
        }
        // Replace whatever this shard said before.
        if let Some(old) = self.shards.remove(&h.shard_id) {
            for b in old {
                self.branch_shard.remove(&b);
                if let Some(ctl) = self.branches.get_mut(&b) {
                    for s in std::mem::take(&mut ctl.sites) {
                        self.sites.remove(&s);
                    }
                }
            }
        }
        let ids: Vec<u32> = h.feeders.iter().map(|f| f.branch_id).collect();
        for b in &ids {
            self.branch_shard.insert(*b, h.shard_id.clone());
        }
        for s in &h.sites {
            self.sites.insert(
                s.site_id,
                SiteState {
                    branch_id: s.branch_id,
                    ..Default::default()
                },
            );
            if let Some(ctl) = self.branches.get_mut(&s.branch_id) {
                ctl.sites.push(s.site_id);
            }
        }
        for b in self.branches.values_mut() {
            b.sites.sort_unstable();
            b.sites.dedup();
        }
        self.shards.insert(h.shard_id, ids);
        Ok(())
    }

    /// Whether the running minute's Done from every shard, and the
    /// telemetry and acks they announced, are all in.
    pub fn is_tick_complete(&self) -> bool {
        match self.phase {
            Phase::Running(_) => {
                self.dones.len() == self.shards.len()
                    && self.received
                        == self
                            .dones
                            .values()
                            .map(|d| d.n_telemetry + d.n_acks)
                            .sum::<u32>()
            }
            _ => false,
        }
    }

    /// Whether every branch of the scenario is owned by a shard that said Hello.
    pub fn all_branches_covered(&self) -> bool {
        self.branch_shard.len() == self.branches.len()
    }

    /// The next message to publish. Starts the run once every branch is
    /// covered, and moves to the next minute when the tick is complete.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        if self.outbox.is_empty() {
            match self.phase {
                Phase::Hello if self.all_branches_covered() => self.start_minute(0),
                Phase::Running(m) if !self.is_realtime() && self.is_tick_complete() => {
                    self.finish_minute(m);
                    if m + 1 >= self.scenario.duration_min {
                        self.phase = Phase::Finished;
                    } else {
                        self.start_minute(m + 1);
                    }
                }
                _ => {}
            }
        }
        self.outbox.pop_front()
    }

    fn silent_at(&self, minute: u32) -> bool {
        self.scenario.faults.server_silent.iter().any(|w| {
            minute >= self.scenario.minute_of(w.from_h) && minute < self.scenario.minute_of(w.to_h)
        })
    }

    /// Takes in minute `m`'s measurements: reports, site states, rows.
    fn finish_minute(&mut self, m: u32) {
        let dones = std::mem::take(&mut self.dones);
        let telemetry = std::mem::take(&mut self.telemetry);
        let acks = std::mem::take(&mut self.acks);
        self.received = 0;
        for a in &acks {
            if self.config_sequences.contains(&a.sequence) {
                *self
                    .report
                    .config_acks
                    .entry(a.verdict.clone())
                    .or_default() += 1;
                let branch = self.sites.get(&a.site_id).map(|s| s.branch_id);
                if let Some(b) = branch.and_then(|b| self.branches.get_mut(&b)) {
                    *b.report.config_acks.entry(a.verdict.clone()).or_default() += 1;
                }
                continue;
            }
            *self.report.acks.entry(a.verdict.clone()).or_default() += 1;
            if let Some(s) = self.sites.get_mut(&a.site_id) {
                s.not_participating = a.verdict == "rejected:not_participating";
                if let Some(b) = self.branches.get_mut(&s.branch_id) {
                    *b.report.acks.entry(a.verdict.clone()).or_default() += 1;
                }
            }
        }
        for (id, s) in self.sites.iter_mut() {
            s.telemetry = telemetry.get(id).cloned();
        }
        let mut reports: Vec<FeederReport> = dones.into_values().flat_map(|d| d.feeders).collect();
        reports.sort_by_key(|r| r.branch_id);
        let start_hour = self.scenario.start_hour;
        for r in reports {
            let Some(b) = self.branches.get_mut(&r.branch_id) else {
                continue;
            };
            let p = r.p_kw();
            b.report.peak_p_kw = b.report.peak_p_kw.max(p);
            if r.v_min_pu > 0.0 {
                b.report.v_min_pu = b.report.v_min_pu.min(r.v_min_pu);
            }
            b.report.v_max_pu = b.report.v_max_pu.max(r.v_max_pu);
            let battery_kwh = r.battery_w / 60_000.0;
            for (req, q) in b.requirements.iter().zip(b.report.requirements.iter_mut()) {
                if !req.active_at(m, start_hour) {
                    continue;
                }
                q.minutes_in_window += 1;
                q.mean_p_kw += p;
                let excess = match req {
                    Requirement::PeakCap { cap_kw, .. } => p - cap_kw,
                    Requirement::AbsorbExport { max_export_kw, .. } => -p - max_export_kw,
                    Requirement::ShiftDemand { .. } => 0.0,
                };
                if excess > 1e-6 {
                    q.minutes_violated += 1;
                    q.worst_excess_kw = q.worst_excess_kw.max(excess);
                }
                q.energy_shifted_kwh += match req {
                    Requirement::PeakCap { .. } => battery_kwh.max(0.0),
                    Requirement::AbsorbExport { .. } => (-battery_kwh).max(0.0),
                    Requirement::ShiftDemand { .. } => battery_kwh.abs(),
                };
            }
            self.rows.push(BranchMinuteRow {
                minute: m,
                report: r.clone(),
                dispatched_w: b.plan_w,
            });
            b.last = Some(r);
        }
        self.report.minutes = m + 1;
    }

    fn start_minute(&mut self, m: u32) {
        self.phase = Phase::Running(m);
        let mut expect: BTreeMap<String, u32> = BTreeMap::new();
        let mut messages: Vec<Message> = Vec::new();
        let silent = self.silent_at(m);
        if silent {
            self.report.silent_minutes += 1;
        } else {
            let ids: Vec<u32> = self.branches.keys().copied().collect();
            let mut planned: Vec<(u32, Dispatch)> = Vec::new();
            let hb_min = self.scenario.server.heartbeat_s / 60;
            let utc = self.scenario.utc_s_at(m);
            for b in ids {
                // A signed heartbeat to the whole branch: the assemblies
                // know the server is alive (site 0 = every site).
                let has_sites = self.branches.get(&b).is_some_and(|c| !c.sites.is_empty());
                if hb_min > 0 && m.is_multiple_of(hb_min) && has_sites {
                    self.sequence += 1;
                    self.report.heartbeats_sent += 1;
                    planned.push((
                        ALL_SITES,
                        Dispatch {
                            branch_id: b,
                            site_id: ALL_SITES,
                            sequence: self.sequence,
                            issued_at_s: utc,
                            expires_at_s: utc + self.scenario.server.validity_s,
                            command: Command::Heartbeat,
                            requirement: None,
                        },
                    ));
                }
                planned.extend(self.plan_branch(b, m));
            }
            // Signing is the server's heaviest work: in parallel, in order.
            let key = &self.key;
            let signed = parallel_sign(&planned, key, self.threads);
            for ((target, d), bytes) in planned.into_iter().zip(signed) {
                if target == ALL_SITES {
                    if let Some(c) = self.branches.get_mut(&d.branch_id) {
                        if c.heartbeats.len() >= 3 {
                            c.heartbeats.pop_front();
                        }
                        c.heartbeats.push_back(bytes.clone());
                    }
                    let topic = Topic::BranchDispatch(d.branch_id).to_topic(&self.run_id);
                    if let Some(shard) = self.branch_shard.get(&d.branch_id) {
                        *expect.entry(shard.clone()).or_default() += 1;
                    }
                    messages.push(Message {
                        topic,
                        payload: bytes,
                        retain: false,
                    });
                    continue;
                }
                if let Some(s) = self.sites.get_mut(&target) {
                    if s.last_sent.len() >= 2 {
                        s.last_sent.pop_front();
                    }
                    s.last_sent.push_back(bytes.clone());
                }
                let topic = Topic::SiteDispatch(target).to_topic(&self.run_id);
                if let Some(shard) = self.shard_of_site(target) {
                    *expect.entry(shard).or_default() += 1;
                }
                messages.push(Message {
                    topic,
                    payload: bytes,
                    retain: false,
                });
            }
        }
        if !silent {
            for (topic, bytes, shard) in self.configs_at(m) {
                *expect.entry(shard).or_default() += 1;
                messages.push(Message {
                    topic,
                    payload: bytes,
                    retain: false,
                });
            }
        }
        for (topic, bytes, shard) in self.attacks_at(m) {
            *expect.entry(shard).or_default() += 1;
            self.report.attack_messages += 1;
            messages.push(Message {
                topic,
                payload: bytes,
                retain: false,
            });
        }
        self.outbox.extend(messages);
        let tick = Tick {
            minute: m,
            utc_s: self.scenario.utc_s_at(m),
            expect,
            realtime_minute_ms: self.realtime_minute_ms,
        };
        let topic = Topic::Tick.to_topic(&self.run_id);
        self.outbox.push_back(json_message(topic, &tick, false));
    }

    fn shard_of_site(&self, site: u32) -> Option<String> {
        self.sites
            .get(&site)
            .and_then(|s| self.branch_shard.get(&s.branch_id))
            .cloned()
    }

    /// The signed configuration messages due at minute `m`, one per
    /// assembly of each branch with a settings change then: (topic, bytes,
    /// shard). Sequence numbers follow the minute's dispatches (one
    /// sequence space per key), so an assembly takes them after those.
    fn configs_at(&mut self, m: u32) -> Vec<(String, Vec<u8>, String)> {
        let mut out = Vec::new();
        let utc = self.scenario.utc_s_at(m);
        let validity_s = self.scenario.server.validity_s;
        for (b, ctl) in self.branches.iter_mut() {
            let Some(shard) = self.branch_shard.get(b) else {
                continue;
            };
            for (_, settings) in ctl.settings.iter().filter(|(at, _)| *at == m) {
                for site in &ctl.sites {
                    self.sequence += 1;
                    let message = ConfigMessage {
                        branch_id: *b,
                        site_id: *site,
                        sequence: self.sequence,
                        issued_at_s: utc,
                        expires_at_s: utc + validity_s,
                        settings: *settings,
                    };
                    let bytes = config_message::encode(&message, &self.key).to_vec();
                    self.config_sequences.insert(self.sequence);
                    self.report.config_messages_sent += 1;
                    ctl.report.config_messages_sent += 1;
                    let topic = Topic::SiteConfig(*site).to_topic(&self.run_id);
                    out.push((topic, bytes, shard.clone()));
                }
            }
        }
        out
    }

    /// Forged or replayed messages due at minute `m`: (topic, bytes, shard).
    fn attacks_at(&mut self, m: u32) -> Vec<(String, Vec<u8>, String)> {
        let mut out = Vec::new();
        let attacks: Vec<_> = self
            .scenario
            .faults
            .attacks
            .iter()
            .filter(|a| self.scenario.minute_of(a.at_h) == m)
            .cloned()
            .collect();
        for a in attacks {
            let Some(shard) = self.branch_shard.get(&a.branch).cloned() else {
                continue;
            };
            match a.kind {
                AttackKind::Forged => {
                    // Signed by another key, claiming the server's.
                    let forger = SigningKey::from_bytes(&[0x66; 32]);
                    let utc = self.scenario.utc_s_at(m);
                    let d = Dispatch {
                        branch_id: a.branch,
                        site_id: ALL_SITES,
                        sequence: self.sequence + 1_000_000,
                        issued_at_s: utc,
                        expires_at_s: utc + 120,
                        command: Command::Source {
                            power_w: 3000,
                            duration_s: 1800,
                        },
                        requirement: None,
                    };
                    let mut bytes = dispatch::encode(&d, &forger).to_vec();
                    bytes[12..44].copy_from_slice(self.key.verifying_key().as_bytes());
                    let topic = Topic::BranchDispatch(a.branch).to_topic(&self.run_id);
                    out.push((topic, bytes, shard));
                }
                AttackKind::Replay => {
                    // An older heartbeat again on the branch topic (every
                    // assembly has accepted a newer one since); without
                    // heartbeats, each site's older message.
                    let older = self
                        .branches
                        .get(&a.branch)
                        .filter(|c| c.heartbeats.len() >= 3)
                        .and_then(|c| c.heartbeats.front().cloned());
                    if let Some(bytes) = older {
                        let topic = Topic::BranchDispatch(a.branch).to_topic(&self.run_id);
                        out.push((topic, bytes, shard));
                        continue;
                    }
                    let sites = self.sites_on(a.branch);
                    for s in sites {
                        if let Some(bytes) = self
                            .sites
                            .get(&s)
                            .and_then(|x| x.last_sent.front().cloned())
                        {
                            let topic = Topic::SiteDispatch(s).to_topic(&self.run_id);
                            out.push((topic, bytes, shard.clone()));
                        }
                    }
                }
            }
        }
        out
    }

    /// Plans branch `b` for minute `m`: the per-site messages to send.
    fn plan_branch(&mut self, b: u32, m: u32) -> Vec<(u32, Dispatch)> {
        let start_hour = self.scenario.start_hour;
        let srv = self.scenario.server.clone();
        let utc = self.scenario.utc_s_at(m);
        let Some(ctl) = self.branches.get_mut(&b) else {
            return Vec::new();
        };
        let active = ctl
            .requirements
            .iter()
            .position(|r| r.active_at(m, start_hour));
        let new_event = active != ctl.active;
        ctl.active = active;
        let p_kw = ctl.last.as_ref().map(|r| r.p_kw());
        // Fall-outs, headroom.
        let mut lost_now = 0u32;
        let mut lost_why: Vec<&'static str> = Vec::new();
        let (mut h_dis, mut h_chg) = (BTreeMap::new(), BTreeMap::new());
        for id in &ctl.sites {
            let Some(s) = self.sites.get_mut(id) else {
                continue;
            };
            if new_event {
                s.out = false;
                s.clipped_minutes = 0;
            }
            let t = s.telemetry.as_ref();
            let measured = t.map(|t| t.battery_w);
            // Clipped: under half its command (same direction) for two minutes.
            if s.commanded_w.abs() > 100.0 && s.until_minute > m {
                let got = measured.unwrap_or(0.0) * s.commanded_w.signum();
                if got < 0.5 * s.commanded_w.abs() {
                    s.clipped_minutes += 1;
                } else {
                    s.clipped_minutes = 0;
                }
            }
            let why = if t.is_none() {
                Some("no_telemetry")
            } else if !t.is_some_and(|t| t.participating) || s.not_participating {
                Some("not_participating")
            } else if s.clipped_minutes >= 2 {
                Some("clipped")
            } else {
                None
            };
            if let (Some(why), false) = (why, s.out) {
                s.out = true;
                if s.commanded_w != 0.0 {
                    lost_now += 1;
                    lost_why.push(why);
                }
            }
            if s.out {
                continue;
            }
            if let Some(t) = t {
                h_dis.insert(*id, t.max_discharge_w.max(0.0));
                h_chg.insert(*id, t.max_charge_w.max(0.0));
            }
        }
        ctl.report.assemblies_lost += lost_now;
        for why in lost_why {
            *ctl.report
                .assemblies_lost_by_reason
                .entry(why.to_string())
                .or_default() += 1;
        }
        if lost_now > 0 {
            ctl.report.redispatches += 1;
        }
        let sum_dis: f64 = h_dis.values().sum();
        let sum_chg: f64 = h_chg.values().sum();
        // The branch total.
        let prev = ctl.plan_w;
        let mut target = match (active.and_then(|i| ctl.requirements.get(i)), p_kw) {
            (Some(Requirement::PeakCap { cap_kw, .. }), Some(p)) => {
                let aim = cap_kw * (1.0 - srv.margin);
                (prev.max(0.0) + srv.gain * (p - aim) * 1000.0).clamp(0.0, sum_dis)
            }
            (Some(Requirement::AbsorbExport { max_export_kw, .. }), Some(p)) => {
                let aim = -max_export_kw + srv.export_margin_kw;
                (prev.min(0.0) + srv.gain * (p - aim) * 1000.0).clamp(-sum_chg, 0.0)
            }
            (
                Some(Requirement::ShiftDemand {
                    power_kw,
                    discharge_from_h,
                    discharge_to_h,
                    ..
                }),
                _,
            ) => {
                let d = m >= super::scenario::minute_of(*discharge_from_h, start_hour)
                    && m < super::scenario::minute_of(*discharge_to_h, start_hour);
                if d {
                    (power_kw * 1000.0).min(sum_dis)
                } else {
                    -(power_kw * 1000.0).min(sum_chg)
                }
            }
            (Some(_), None) => 0.0,
            (None, _) => 0.0,
        };
        // Aggregate step-change cap.
        target = prev + (target - prev).clamp(-ctl.max_step_w, ctl.max_step_w);
        // The cap may leave a total the headroom no longer covers.
        target = target.clamp(-sum_chg, sum_dis);
        ctl.plan_w = target;
        let req = active.and_then(|i| ctl.requirements.get(i).map(|r| (i, r.clone())));
        let sites = ctl.sites.clone();
        let branch_id = ctl.branch_id;
        // Shares.
        let mut out = Vec::new();
        let mut sent = 0u32;
        for id in sites {
            let share = if target > 0.0 && sum_dis > 0.0 {
                (target * h_dis.get(&id).copied().unwrap_or(0.0) / sum_dis).floor()
            } else if target < 0.0 && sum_chg > 0.0 {
                -(-target * h_chg.get(&id).copied().unwrap_or(0.0) / sum_chg).floor()
            } else {
                0.0
            };
            let Some(s) = self.sites.get(&id) else {
                continue;
            };
            let in_force = s.until_minute > m;
            let current = if in_force { s.commanded_w } else { 0.0 };
            let renew = share != 0.0 && s.until_minute <= m + 1;
            let band = srv.deadband_w.max(srv.deadband_rel * current.abs());
            let changed = (share - current).abs() > band || (share == 0.0 && current != 0.0);
            if !(changed || renew) {
                continue;
            }
            if share == 0.0 && !in_force {
                continue;
            }
            let command = if share == 0.0 {
                Command::Cancel
            } else if share > 0.0 {
                Command::Source {
                    power_w: share as u32,
                    duration_s: srv.dispatch_duration_s,
                }
            } else {
                Command::Sink {
                    power_w: (-share) as u32,
                    duration_s: srv.dispatch_duration_s,
                }
            };
            self.sequence += 1;
            let d = Dispatch {
                branch_id,
                site_id: id,
                sequence: self.sequence,
                issued_at_s: utc,
                expires_at_s: utc + srv.validity_s,
                command,
                requirement: req.as_ref().map(|(i, r)| dispatch::Requirement {
                    kind: requirement_code(r, share > 0.0),
                    reference: branch_id.saturating_mul(100).saturating_add(*i as u32 + 1),
                }),
            };
            if let Some(s) = self.sites.get_mut(&id) {
                s.commanded_w = share;
                s.until_minute = if share == 0.0 {
                    0
                } else {
                    m + srv.dispatch_duration_s / 60
                };
                if share != 0.0 {
                    s.dispatched = true;
                }
            }
            sent += 1;
            out.push((id, d));
        }
        if let Some(ctl) = self.branches.get_mut(&b) {
            ctl.report.messages_sent += sent;
        }
        self.report.messages_sent += u64::from(sent);
        out
    }

    /// Branch ids with their planned totals now, W (for tests).
    pub fn plans_w(&self) -> BTreeMap<u32, f64> {
        self.branches.iter().map(|(b, c)| (*b, c.plan_w)).collect()
    }

    /// Sites of branch `b` with an unexpired command and its power, W.
    pub fn commands_on(&self, b: u32) -> Vec<(u32, f64)> {
        let m = match self.phase {
            Phase::Running(m) => m,
            _ => 0,
        };
        self.sites_on(b)
            .into_iter()
            .filter_map(|s| {
                self.sites
                    .get(&s)
                    .filter(|x| x.until_minute > m)
                    .map(|x| (s, x.commanded_w))
            })
            .collect()
    }

    /// The latest telemetry of every site that sent one in the last
    /// minute, by site id.
    pub fn latest_telemetry(&self) -> Vec<Telemetry> {
        self.sites
            .values()
            .filter_map(|s| s.telemetry.clone())
            .collect()
    }

    /// Sites the server lists (all branches), for tests.
    pub fn known_sites(&self) -> BTreeSet<u32> {
        self.sites.keys().copied().collect()
    }
}
