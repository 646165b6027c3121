//! A shard (sans-IO): some branches (feeder copies) and their households.
//!
//! Per simulated minute, once the server's [`Tick`] and the
//! `expect[shard_id]` server → site messages for it are in, the shard
//! (in [`Shard::poll_transmit`]): delivers the messages to their sites in
//! canonical order (site id, sequence, bytes), after the fault schedule's
//! seeded drop/delay/duplicate decisions; takes assemblies that drop out
//! off line; steps every household one minute and solves each branch's
//! power flow from the households' measured net AC power — branches in
//! parallel across `threads` OS threads, each branch's work on one thread,
//! so results do not depend on the thread count; then publishes telemetry
//! (site order), acks (site, sequence order) and [`Done`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twin::feeder::{LoadSnapshot, Network};

use super::scenario::{mix, FleetScenario};
use super::signatures::SharedSignatures;
use super::site::{Site, SiteError};
use super::wire::{
    self, json_message, parse_json, Done, FeederInfo, FeederReport, Hello, Message, SiteInfo, Tick,
    Topic, WireError,
};

/// Problems building a shard.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A branch id the scenario does not have.
    #[error("shard {shard}: no branch {branch_id} in the scenario (1..={n})")]
    NoBranch {
        /// The shard.
        shard: String,
        /// The branch asked for.
        branch_id: u32,
        /// Branches in the scenario.
        n: usize,
    },
    /// A household did not build.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// A bad shard or run id.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// A message waiting for delivery to sites.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    site_id: u32,
    sequence: u64,
    /// A signed configuration message (else a dispatch record).
    config: bool,
    payload: Vec<u8>,
}

struct Branch {
    branch_id: u32,
    feeder: String,
    network: Network,
    n_loads: usize,
    rated_kva: f64,
    /// Index of the first LV bus in the solution's bus order.
    lv_from: usize,
    sites: Vec<Site>,
    inbox: Vec<Delivery>,
    /// Sites to take off line before the minute.
    dropouts: Vec<u32>,
    /// The branch's genuine broadcasts, checked once for its assemblies.
    signatures: SharedSignatures,
}

/// What a branch produced in a minute: its telemetry and acks already
/// serialised (in the branch's thread), keyed for the canonical order.
struct BranchMinute {
    telemetry: Vec<(u32, Message)>,
    acks: Vec<((u32, u64), Message)>,
    report: FeederReport,
    solve_error: Option<String>,
    /// Cluster reports whose bytes did not parse.
    bad_reports: u32,
}

/// The key under which [`ShardStats::bad`] counts assemblies' cluster
/// reports that did not parse (no telemetry was sent for them).
pub const BAD_REPORT: &str = "cluster report";

/// Counters a shard keeps about its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Messages that failed to parse or were unexpected, by topic (and
    /// unparsable cluster reports under [`BAD_REPORT`]).
    pub bad: BTreeMap<String, u32>,
    /// Server → site messages for sites of other shards (skipped).
    pub foreign: u64,
    /// Server → site messages received for this shard.
    pub received: u64,
    /// Dropped by the fault schedule.
    pub dropped: u64,
    /// Delayed a minute by the fault schedule.
    pub delayed: u64,
    /// Delivered twice by the fault schedule.
    pub duplicated: u64,
    /// Power flows that failed (the branch's report is zeros).
    pub solve_errors: u64,
    /// Real time: minutes stepped on the shard's own clock (their tick was
    /// lost or late).
    pub clock_ticks: u64,
    /// Real time: server ticks for minutes already stepped on the clock.
    pub late_ticks: u64,
    /// Ed25519 checks the assemblies ran in full.
    pub signatures_verified: u64,
    /// Checks answered from the branch's memory of genuine broadcasts
    /// ([`SharedSignatures`]).
    pub signatures_recalled: u64,
}

/// A shard of the fleet.
pub struct Shard {
    shard_id: String,
    run_id: String,
    scenario: Arc<FleetScenario>,
    branches: Vec<Branch>,
    /// site id → branch index.
    site_branch: HashMap<u32, usize>,
    /// branch id → branch index.
    branch_index: HashMap<u32, usize>,
    pending: Vec<Delivery>,
    /// Server → site messages received since the last step (a branch
    /// message counts once).
    received: u32,
    /// Delayed a minute by the fault schedule (not drawn again).
    delayed: Vec<Delivery>,
    tick: Option<Tick>,
    /// Real time: ticks after `tick`, in minute order.
    queued_ticks: VecDeque<Tick>,
    /// Real time: the wall time of a minute (from the server's ticks).
    realtime_minute_ms: Option<u64>,
    next_minute: u32,
    threads: usize,
    outbox: VecDeque<Message>,
    stats: ShardStats,
    last_error: Option<String>,
}

impl Shard {
    /// Builds the households of `branch_ids` (`threads` ≥ 1 OS threads step
    /// them) and queues its [`Hello`].
    pub fn new(
        scenario: Arc<FleetScenario>,
        run_id: &str,
        shard_id: &str,
        branch_ids: &[u32],
        threads: usize,
    ) -> Result<Shard, ShardError> {
        wire::check_run_id(run_id)?;
        wire::check_run_id(shard_id)?;
        let key = scenario.server_key().verifying_key().to_bytes();
        let mut ids: Vec<u32> = branch_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut specs = Vec::new();
        for &b in &ids {
            let feeder = scenario.feeder_of(b).ok_or_else(|| ShardError::NoBranch {
                shard: shard_id.into(),
                branch_id: b,
                n: scenario.branches.len(),
            })?;
            specs.push((b, feeder, scenario.households(b)));
        }
        let threads = threads.max(1);
        // Build the households in parallel (a house twin takes ~1 ms).
        let sc = &*scenario;
        let built: Vec<Result<Vec<Site>, SiteError>> =
            parallel_map(specs.iter().map(|(_, _, hs)| hs).collect(), threads, |hs| {
                hs.iter()
                    .map(|h| Site::new(sc, h.clone(), key))
                    .collect::<Result<Vec<_>, _>>()
            });
        let mut branches = Vec::new();
        let mut site_branch = HashMap::new();
        let mut branch_index = HashMap::new();
        for ((b, feeder, _), sites) in specs.into_iter().zip(built) {
            let sites = sites?;
            for s in &sites {
                site_branch.insert(s.spec.site_id, branches.len());
            }
            branch_index.insert(b, branches.len());
            branches.push(Branch {
                branch_id: b,
                feeder: feeder.name.clone(),
                n_loads: feeder.model.loads.len(),
                lv_from: usize::from(feeder.network.transformer_name().is_some()),
                network: feeder.network.clone(),
                rated_kva: feeder.rated_kva,
                sites,
                inbox: Vec::new(),
                dropouts: Vec::new(),
                signatures: SharedSignatures::new(true),
            });
        }
        let mut shard = Shard {
            shard_id: shard_id.into(),
            run_id: run_id.into(),
            scenario,
            branches,
            site_branch,
            branch_index,
            pending: Vec::new(),
            received: 0,
            delayed: Vec::new(),
            tick: None,
            queued_ticks: VecDeque::new(),
            realtime_minute_ms: None,
            next_minute: 0,
            threads,
            outbox: VecDeque::new(),
            stats: ShardStats::default(),
            last_error: None,
        };
        let hello = shard.hello();
        let topic = Topic::Hello(shard.shard_id.clone()).to_topic(&shard.run_id);
        shard.outbox.push_back(json_message(topic, &hello, true));
        Ok(shard)
    }

    /// This shard's id.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// Its branch ids, ascending.
    pub fn branch_ids(&self) -> Vec<u32> {
        self.branches.iter().map(|b| b.branch_id).collect()
    }

    /// The minute it steps next.
    pub fn next_minute(&self) -> u32 {
        self.next_minute
    }

    /// Whether the assemblies of a branch share the checks of genuine
    /// broadcasts ([`SharedSignatures`]; default on). Off, every assembly
    /// runs `verify_strict` on every message, as its board would; results
    /// are the same either way. Set before the first minute.
    pub fn set_shared_signatures(&mut self, share: bool) {
        for b in &mut self.branches {
            b.signatures = SharedSignatures::new(share);
        }
    }

    /// Message counters.
    pub fn stats(&self) -> &ShardStats {
        &self.stats
    }

    /// The last power-flow error, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Its [`Hello`].
    pub fn hello(&self) -> Hello {
        let mut feeders = Vec::new();
        let mut sites = Vec::new();
        for b in &self.branches {
            feeders.push(FeederInfo {
                branch_id: b.branch_id,
                feeder: b.feeder.clone(),
                households: b.sites.len() as u32,
            });
            for s in b.sites.iter().filter(|s| s.spec.assembly) {
                sites.push(SiteInfo {
                    site_id: s.spec.site_id,
                    branch_id: b.branch_id,
                    feeder: b.feeder.clone(),
                    bus: s.spec.bus.clone(),
                    phase: s.spec.phase,
                });
            }
        }
        Hello {
            schema: wire::SCHEMA.into(),
            shard_id: self.shard_id.clone(),
            feeders,
            sites,
        }
    }

    fn bad(&mut self, e: WireError) -> WireError {
        let topic = e.topic();
        *self.stats.bad.entry(topic).or_default() += 1;
        e
    }

    /// Takes one message from the transport. Bad messages are counted
    /// ([`ShardStats::bad`]) and returned as errors; they change nothing.
    pub fn handle(&mut self, msg: &Message) -> Result<(), WireError> {
        let topic = match Topic::parse(&self.run_id, &msg.topic) {
            Ok(t) => t,
            Err(e) => return Err(self.bad(e)),
        };
        let unexpected = |m: &str| WireError::Unexpected {
            topic: msg.topic.clone(),
            message: m.into(),
        };
        match topic {
            Topic::Tick => {
                let tick: Tick = match parse_json(msg) {
                    Ok(t) => t,
                    Err(e) => return Err(self.bad(e)),
                };
                if let Some(ms) = tick.realtime_minute_ms {
                    self.realtime_minute_ms = Some(ms);
                    let next = self.next_clock_minute();
                    if tick.minute < next {
                        // This shard's clock stepped that minute already.
                        self.stats.late_ticks += 1;
                        return Ok(());
                    }
                    // Ticks lost on the way: the minutes between step
                    // without messages (the houses' time goes on).
                    for minute in next..tick.minute {
                        let missed = self.clock_tick_for(minute);
                        self.queue_tick(missed);
                    }
                    self.queue_tick(tick);
                    return Ok(());
                }
                if tick.minute != self.next_minute || self.tick.is_some() {
                    let e = unexpected(&format!(
                        "tick for minute {} while at minute {}",
                        tick.minute, self.next_minute
                    ));
                    return Err(self.bad(e));
                }
                self.tick = Some(tick);
            }
            Topic::BranchDispatch(b) => {
                let Some(&bi) = self.branch_index.get(&b) else {
                    self.stats.foreign += 1;
                    return Ok(());
                };
                self.stats.received += 1;
                let sequence = wire::record_sequence(&msg.payload);
                // Every household of the branch receives it (its firmware
                // decides; households without an assembly have none).
                for s in &self.branches[bi].sites {
                    if s.spec.assembly {
                        self.pending.push(Delivery {
                            site_id: s.spec.site_id,
                            sequence,
                            config: false,
                            payload: msg.payload.clone(),
                        });
                    }
                }
                // A branch message counts once towards `expect`.
                self.received += 1;
            }
            Topic::SiteDispatch(s) | Topic::SiteConfig(s) => {
                let config = matches!(topic, Topic::SiteConfig(_));
                if !self.site_branch.contains_key(&s) {
                    self.stats.foreign += 1;
                    return Ok(());
                }
                self.stats.received += 1;
                self.received += 1;
                self.pending.push(Delivery {
                    site_id: s,
                    sequence: wire::record_sequence(&msg.payload),
                    config,
                    payload: msg.payload.clone(),
                });
            }
            _ => return Err(self.bad(unexpected("not a topic a shard takes"))),
        }
        Ok(())
    }

    /// Whether the current tick's messages are all in (it will step on
    /// the next [`Shard::poll_transmit`]); in a real-time run, whether the
    /// tick is in.
    pub fn is_ready(&self) -> bool {
        match &self.tick {
            // Real time: the tick is the clock; late messages wait a minute.
            Some(t) if t.realtime_minute_ms.is_some() => true,
            Some(t) => {
                let want = t.expect.get(&self.shard_id).copied().unwrap_or(0);
                self.received >= want
            }
            None => false,
        }
    }

    /// The next message to publish; steps a minute when its tick is
    /// complete and nothing is waiting.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        if self.outbox.is_empty() && self.is_ready() {
            self.step_minute();
        }
        self.outbox.pop_front()
    }

    /// Real time: the first minute neither stepped nor queued (its tick
    /// is the next the shard takes).
    pub fn next_clock_minute(&self) -> u32 {
        self.next_minute + u32::from(self.tick.is_some()) + self.queued_ticks.len() as u32
    }

    fn clock_tick_for(&mut self, minute: u32) -> Tick {
        self.stats.clock_ticks += 1;
        Tick {
            minute,
            utc_s: self.scenario.utc_s_at(minute),
            expect: BTreeMap::new(),
            realtime_minute_ms: self.realtime_minute_ms,
        }
    }

    fn queue_tick(&mut self, tick: Tick) {
        if tick.minute >= self.scenario.duration_min {
            return;
        }
        if self.tick.is_none() {
            self.tick = Some(tick);
        } else {
            self.queued_ticks.push_back(tick);
        }
    }

    /// Real time: the wall time of a minute, once a real-time tick came.
    pub fn realtime_minute(&self) -> Option<std::time::Duration> {
        self.realtime_minute_ms
            .map(std::time::Duration::from_millis)
    }

    /// Real time: the server's tick for the next minute is overdue (lost,
    /// or the server is slow): step it on this shard's own clock, without
    /// messages. Does nothing in a lockstep run, while a minute is waiting
    /// to be stepped, or after the last minute.
    pub fn clock_tick(&mut self) {
        if self.realtime_minute_ms.is_none() || self.tick.is_some() {
            return;
        }
        let minute = self.next_clock_minute();
        let tick = self.clock_tick_for(minute);
        self.queue_tick(tick);
    }

    fn step_minute(&mut self) {
        let Some(tick) = self.tick.take() else {
            return;
        };
        self.tick = self.queued_ticks.pop_front();
        let minute = tick.minute;
        let sc = Arc::clone(&self.scenario);
        // Deliveries: this minute's and those delayed from the last one.
        let mut deliveries = std::mem::take(&mut self.pending);
        self.received = 0;
        deliveries.sort();
        let late = std::mem::take(&mut self.delayed);
        for d in late {
            if let Some(&bi) = self.site_branch.get(&d.site_id) {
                self.branches[bi].inbox.push(d);
            }
        }
        let f = &sc.faults;
        let faulty = f.message_drop_probability > 0.0
            || f.message_delay_probability > 0.0
            || f.message_duplicate_probability > 0.0;
        for d in deliveries {
            let Some(&bi) = self.site_branch.get(&d.site_id) else {
                continue;
            };
            let mut copies = 1;
            if faulty {
                let mut rng = ChaCha8Rng::seed_from_u64(mix(
                    mix(f.seed, u64::from(d.site_id)),
                    d.sequence ^ (u64::from(minute) << 48),
                ));
                let u: f64 = rng.gen();
                if u < f.message_drop_probability {
                    self.stats.dropped += 1;
                    continue;
                }
                let u: f64 = rng.gen();
                if u < f.message_delay_probability {
                    self.stats.delayed += 1;
                    // Delivered next minute, without a second fault draw.
                    self.delayed.push(d);
                    continue;
                }
                let u: f64 = rng.gen();
                if u < f.message_duplicate_probability {
                    self.stats.duplicated += 1;
                    copies = 2;
                }
            }
            for _ in 0..copies {
                self.branches[bi].inbox.push(d.clone());
            }
        }
        // Dropouts due this minute: the first `count` online assemblies by
        // site id among those whose battery moved power over the last
        // minute (so the fault takes assemblies out of an event, not ones
        // already idle), then the idle ones.
        for drop in &sc.faults.dropouts {
            if sc.minute_of(drop.at_h) != minute {
                continue;
            }
            if let Some(&bi) = self.branch_index.get(&drop.branch) {
                let b = &mut self.branches[bi];
                let mut online: Vec<&Site> =
                    b.sites.iter().filter(|s| s.is_online_assembly()).collect();
                online.sort_by_key(|s| (!s.battery_is_moving_power(), s.spec.site_id));
                let ids: Vec<u32> = online
                    .iter()
                    .take(drop.count as usize)
                    .map(|s| s.spec.site_id)
                    .collect();
                b.dropouts.extend(ids);
            }
        }
        let run_id = self.run_id.clone();
        let results: Vec<BranchMinute> = parallel_map_mut(&mut self.branches, self.threads, |b| {
            step_branch(b, minute, &run_id)
        });
        let mut telemetry = Vec::new();
        let mut acks = Vec::new();
        let mut feeders = Vec::new();
        self.stats.signatures_verified = self.branches.iter().map(|b| b.signatures.verified).sum();
        self.stats.signatures_recalled = self.branches.iter().map(|b| b.signatures.recalled).sum();
        for r in results {
            telemetry.extend(r.telemetry);
            acks.extend(r.acks);
            feeders.push(r.report);
            if r.bad_reports > 0 {
                *self.stats.bad.entry(BAD_REPORT.to_string()).or_default() += r.bad_reports;
            }
            if let Some(e) = r.solve_error {
                self.stats.solve_errors += 1;
                self.last_error = Some(e);
            }
        }
        // Stable sorts: equal keys (a message delivered twice) keep their
        // delivery order.
        telemetry.sort_by_key(|t| t.0);
        acks.sort_by_key(|a| a.0);
        let done = Done {
            shard_id: self.shard_id.clone(),
            minute,
            n_telemetry: telemetry.len() as u32,
            n_acks: acks.len() as u32,
            feeders,
        };
        self.outbox.extend(telemetry.into_iter().map(|t| t.1));
        self.outbox.extend(acks.into_iter().map(|a| a.1));
        let topic = Topic::Done(self.shard_id.clone()).to_topic(&self.run_id);
        self.outbox.push_back(json_message(topic, &done, false));
        self.next_minute = minute + 1;
    }
}

/// One branch's minute: deliveries, dropouts, households, power flow.
fn step_branch(b: &mut Branch, minute: u32, run_id: &str) -> BranchMinute {
    let mut acks = Vec::new();
    let inbox = std::mem::take(&mut b.inbox);
    for d in inbox {
        if let Ok(k) = b.sites.binary_search_by_key(&d.site_id, |s| s.spec.site_id) {
            if let Some(a) = b.sites[k].deliver(&d.payload, d.config, minute, &mut b.signatures) {
                let topic = Topic::Ack(a.site_id).to_topic(run_id);
                acks.push(((a.site_id, a.sequence), json_message(topic, &a, false)));
            }
        }
    }
    for id in std::mem::take(&mut b.dropouts) {
        if let Ok(k) = b.sites.binary_search_by_key(&id, |s| s.spec.site_id) {
            b.sites[k].drop_out();
        }
    }
    let mut snap = LoadSnapshot::zeros(b.n_loads);
    let mut telemetry = Vec::new();
    let (mut soc_sum, mut n_soc, mut battery_w) = (0.0, 0usize, 0.0);
    let mut soc_min = 1.0_f64;
    let mut server_silent = 0u32;
    let mut bad_reports = 0u32;
    for s in &mut b.sites {
        let flow = s.step_minute();
        if let Some(k) = snap.kw.get_mut(s.spec.load) {
            *k += flow.net_kw;
        }
        if let Some(k) = snap.kvar.get_mut(s.spec.load) {
            *k += flow.q_kvar;
        }
        battery_w += flow.battery_w;
        if let Some(soc) = flow.soc {
            soc_min = soc_min.min(soc);
        }
        let t = s.telemetry(minute, &flow).unwrap_or_else(|_| {
            bad_reports += 1;
            None
        });
        if let Some(t) = t {
            soc_sum += t.soc;
            n_soc += 1;
            server_silent += u32::from(t.server_silent);
            let topic = Topic::Telemetry(t.site_id).to_topic(run_id);
            telemetry.push((t.site_id, json_message(topic, &t, false)));
        }
    }
    let mut report = FeederReport {
        branch_id: b.branch_id,
        transformer_p_kw: [0.0; 3],
        transformer_q_kvar: [0.0; 3],
        loading_pct: 0.0,
        v_min_pu: 0.0,
        v_max_pu: 0.0,
        soc_mean: if n_soc > 0 {
            soc_sum / n_soc as f64
        } else {
            0.0
        },
        soc_min,
        battery_w,
        server_silent,
    };
    let mut solve_error = None;
    match b.network.solve(&snap) {
        Ok(sol) => {
            let s3 = match &sol.transformer {
                Some(t) => t.s_lv_kva,
                None => [sol.source_kva / 3.0; 3],
            };
            report.transformer_p_kw = s3.map(|s| s.re);
            report.transformer_q_kvar = s3.map(|s| s.im);
            if b.rated_kva > 0.0 {
                let worst = s3.iter().map(|s| s.norm()).fold(0.0, f64::max);
                report.loading_pct = worst * 3.0 / b.rated_kva * 100.0;
            }
            let lv = sol.vm_pu.get(b.lv_from..).unwrap_or(&[]);
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for v in lv.iter().flatten() {
                lo = lo.min(*v);
                hi = hi.max(*v);
            }
            if lo.is_finite() {
                report.v_min_pu = lo;
                report.v_max_pu = hi;
            }
        }
        Err(e) => solve_error = Some(format!("branch {}: {e}", b.branch_id)),
    }
    BranchMinute {
        telemetry,
        acks,
        report,
        solve_error,
        bad_reports,
    }
}

/// Maps `f` over `items` on up to `threads` scoped threads (contiguous
/// chunks); results in item order.
fn parallel_map<T: Sync, R: Send>(
    items: Vec<&T>,
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|t| f(t)).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Like [`parallel_map`] with mutable access, scheduled dynamically: each
/// thread takes the next item not yet taken, so branches of unequal cost
/// (a capped branch dispatching, a quiet one) spread over the threads
/// instead of one chunk of expensive ones holding the minute up. Results
/// in item order, whatever thread ran them.
fn parallel_map_mut<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.iter_mut().map(f).collect();
    }
    let n = items.len();
    let cells: Vec<std::sync::Mutex<&mut T>> =
        items.iter_mut().map(std::sync::Mutex::new).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (f, cells, next) = (&f, &cells, &next);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(n))
            .map(|_| {
                s.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(cell) = cells.get(i) else {
                            break;
                        };
                        // Each index is taken once: the lock is never contended.
                        let mut item = cell.lock().unwrap_or_else(|p| p.into_inner());
                        done.push((i, f(&mut item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
