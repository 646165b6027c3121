//! The in-process lockstep run (`maslow fleet run`): one [`FleetServer`]
//! and N [`Shard`]s exchanging [`Message`]s through an in-memory queue,
//! using exactly the lockstep protocol the MQTT transport uses. Optionally
//! the queue delivers every batch in a seeded random order (the result must
//! not change: processing sorts by canonical keys).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::scenario::FleetScenario;
use super::server::{BranchMinuteRow, ComplianceReport, FleetServer};
use super::shard::{Shard, ShardError, ShardStats};
use super::wire::{self, Message, Topic, WireError};

/// Problems of a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A shard did not build.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// A bad run id.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Nobody had anything to send and the run was not finished.
    #[error("the lockstep stalled at {0}: no message in flight and the run is not finished")]
    Stalled(String),
    /// Writing the outputs failed.
    #[error("{file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// The OS message.
        message: String,
    },
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Run id (topic prefix); default `fleet-<seed>`.
    pub run_id: Option<String>,
    /// Shards to split the branches into (contiguous blocks).
    pub shards: usize,
    /// Threads per shard.
    pub threads: usize,
    /// Deliver each batch in a random order drawn from this seed.
    pub shuffle_seed: Option<u64>,
    /// Print progress (minute, wall time) to stderr every simulated hour.
    pub progress: bool,
    /// A branch's assemblies share the checks of genuine broadcasts
    /// ([`super::signatures::SharedSignatures`]); false: every assembly
    /// verifies every message in full.
    pub share_signature_checks: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_id: None,
            shards: 1,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            shuffle_seed: None,
            progress: false,
            share_signature_checks: true,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// The server's compliance report.
    pub report: ComplianceReport,
    /// Per-branch per-minute rows.
    pub rows: Vec<BranchMinuteRow>,
    /// Each shard's message counters.
    pub shard_stats: Vec<(String, ShardStats)>,
    /// Every assembly's telemetry of the last minute (site order).
    pub telemetry: Vec<super::wire::Telemetry>,
    /// Messages moved through the queue.
    pub messages: u64,
    /// Households simulated.
    pub households: usize,
    /// Of which with an assembly.
    pub assemblies: usize,
    /// Wall time to build the shards, s.
    pub build_s: f64,
    /// Wall time of the lockstep, s.
    pub run_s: f64,
}

/// Splits branch ids into `n` contiguous blocks.
pub fn split_branches(ids: &[u32], n: usize) -> Vec<Vec<u32>> {
    let n = n.clamp(1, ids.len().max(1));
    let per = ids.len().div_ceil(n).max(1);
    ids.chunks(per).map(|c| c.to_vec()).collect()
}

/// Whether the server subscribes to a topic.
fn for_server(t: &Topic) -> bool {
    matches!(
        t,
        Topic::Hello(_) | Topic::Telemetry(_) | Topic::Ack(_) | Topic::Done(_)
    )
}

/// Runs a fleet in-process to the end.
pub fn run_in_process(
    scenario: Arc<FleetScenario>,
    opts: &RunOptions,
) -> Result<RunOutcome, RunError> {
    let run_id = opts
        .run_id
        .clone()
        .unwrap_or_else(|| wire::default_run_id(scenario.seed));
    wire::check_run_id(&run_id)?;
    let t0 = std::time::Instant::now();
    let blocks = split_branches(&scenario.branch_ids(), opts.shards);
    let mut shards = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        shards.push(Shard::new(
            Arc::clone(&scenario),
            &run_id,
            &format!("shard-{i}"),
            b,
            opts.threads,
        )?);
        if let Some(s) = shards.last_mut() {
            s.set_shared_signatures(opts.share_signature_checks);
        }
    }
    let households: usize = scenario
        .branch_ids()
        .iter()
        .map(|b| scenario.households(*b).len())
        .sum();
    let assemblies: usize = shards.iter().map(|s| s.hello().sites.len()).sum();
    let build_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let mut server = FleetServer::new(Arc::clone(&scenario), &run_id)?;
    server.set_threads(opts.threads);
    let mut rng = opts.shuffle_seed.map(ChaCha8Rng::seed_from_u64);
    let mut messages = 0u64;
    let mut last_hour = None;
    loop {
        // Shards → server.
        let mut batch: Vec<Message> = Vec::new();
        for s in &mut shards {
            while let Some(m) = s.poll_transmit() {
                batch.push(m);
            }
        }
        if let Some(r) = rng.as_mut() {
            batch.shuffle(r);
        }
        let mut moved = batch.len();
        let to_server: Vec<&Message> = batch
            .iter()
            .filter(|m| Topic::parse(&run_id, &m.topic).is_ok_and(|t| for_server(&t)))
            .collect();
        // Bad messages are counted in the report.
        server.handle_batch(&to_server);
        // Server → shards.
        let mut batch: Vec<Message> = Vec::new();
        while let Some(m) = server.poll_transmit() {
            batch.push(m);
        }
        if let Some(r) = rng.as_mut() {
            batch.shuffle(r);
        }
        moved += batch.len();
        for m in &batch {
            if Topic::parse(&run_id, &m.topic).is_ok_and(|t| !for_server(&t)) {
                for s in &mut shards {
                    let _ = s.handle(m);
                }
            }
        }
        messages += moved as u64;
        if opts.progress {
            if let super::server::Phase::Running(m) = server.phase() {
                let h = m / 60;
                if last_hour != Some(h) {
                    last_hour = Some(h);
                    eprintln!(
                        "fleet: minute {m} ({:.1} h simulated), {:.1} s wall",
                        f64::from(m) / 60.0,
                        t1.elapsed().as_secs_f64()
                    );
                }
            }
        }
        if server.is_finished() {
            break;
        }
        if moved == 0 {
            return Err(RunError::Stalled(format!("{:?}", server.phase())));
        }
    }
    Ok(RunOutcome {
        report: server.report(),
        rows: server.rows().to_vec(),
        telemetry: server.latest_telemetry(),
        shard_stats: shards
            .iter()
            .map(|s| (s.shard_id().to_string(), s.stats().clone()))
            .collect(),
        messages,
        households,
        assemblies,
        build_s,
        run_s: t1.elapsed().as_secs_f64(),
    })
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Io {
        file: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The per-branch per-minute CSV (`branches.csv`).
pub fn branches_csv(scenario: &FleetScenario, rows: &[BranchMinuteRow]) -> String {
    let mut s = String::from(
        "minute,clock_h,branch_id,p_a_kw,p_b_kw,p_c_kw,p_kw,q_a_kvar,q_b_kvar,q_c_kvar,loading_pct,v_min_pu,v_max_pu,dispatched_w,battery_w,soc_mean,soc_min,server_silent\n",
    );
    for r in rows {
        let f = &r.report;
        s.push_str(&format!(
            "{},{:.4},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.2},{:.5},{:.5},{:.0},{:.0},{:.4},{:.4},{}\n",
            r.minute,
            scenario.start_hour + f64::from(r.minute) / 60.0,
            f.branch_id,
            f.transformer_p_kw[0],
            f.transformer_p_kw[1],
            f.transformer_p_kw[2],
            f.p_kw(),
            f.transformer_q_kvar[0],
            f.transformer_q_kvar[1],
            f.transformer_q_kvar[2],
            f.loading_pct,
            f.v_min_pu,
            f.v_max_pu,
            r.dispatched_w,
            f.battery_w,
            f.soc_mean,
            f.soc_min,
            f.server_silent
        ));
    }
    s
}

/// The compliance CSV: one row per branch and requirement.
pub fn compliance_csv(report: &ComplianceReport) -> String {
    let mut s = String::from(
        "branch_id,feeder,requirement,limit_kw,minutes_in_window,minutes_violated,worst_excess_kw,energy_shifted_kwh,mean_p_kw,assemblies,assemblies_dispatched,assemblies_lost,lost_no_telemetry,lost_not_participating,lost_clipped,redispatches,messages_sent,acks_accepted,acks_rejected,config_messages_sent,config_accepted,config_rejected\n",
    );
    for b in &report.branches {
        // Accepted and rejected (any reason) among acks by verdict.
        let verdicts = |acks: &std::collections::BTreeMap<String, u32>| {
            let accepted = acks.get("accepted").copied().unwrap_or(0);
            let rejected: u32 = acks
                .iter()
                .filter(|(k, _)| k.starts_with("rejected"))
                .map(|(_, v)| *v)
                .sum();
            (accepted, rejected)
        };
        let (accepted, rejected) = verdicts(&b.acks);
        let (config_accepted, config_rejected) = verdicts(&b.config_acks);
        let lost = |why: &str| b.assemblies_lost_by_reason.get(why).copied().unwrap_or(0);
        let reqs: Vec<Option<&super::server::RequirementReport>> = if b.requirements.is_empty() {
            vec![None]
        } else {
            b.requirements.iter().map(Some).collect()
        };
        for q in reqs {
            s.push_str(&format!(
                "{},{},{},{},{},{},{:.3},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                b.branch_id,
                b.feeder,
                q.map_or("none", |q| q.kind.as_str()),
                q.map_or(String::new(), |q| format!("{:.3}", q.limit_kw)),
                q.map_or(0, |q| q.minutes_in_window),
                q.map_or(0, |q| q.minutes_violated),
                q.map_or(0.0, |q| q.worst_excess_kw),
                q.map_or(0.0, |q| q.energy_shifted_kwh),
                q.map_or(0.0, |q| q.mean_p_kw),
                b.assemblies,
                b.assemblies_dispatched,
                b.assemblies_lost,
                lost("no_telemetry"),
                lost("not_participating"),
                lost("clipped"),
                b.redispatches,
                b.messages_sent,
                accepted,
                rejected,
                b.config_messages_sent,
                config_accepted,
                config_rejected
            ));
        }
    }
    s
}

/// A human summary of a run.
pub fn summary(scenario: &FleetScenario, o: &RunOutcome) -> String {
    let r = &o.report;
    let mut s = format!(
        "fleet {:?}: {} households ({} with assemblies) on {} branches, {} min simulated, seed {}\n",
        scenario.name,
        o.households,
        o.assemblies,
        r.branches.len(),
        r.minutes,
        r.seed
    );
    s.push_str(&format!(
        "messages: {} signed dispatch + {} heartbeats sent, {} acks ({}), {} telemetry, {} attack messages, {} silent minutes, {} bad\n",
        r.messages_sent,
        r.heartbeats_sent,
        r.acks_received,
        r.acks
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.telemetry_received,
        r.attack_messages,
        r.silent_minutes,
        r.bad_messages.values().sum::<u32>()
    ));
    if r.config_messages_sent > 0 {
        s.push_str(&format!(
            "configuration: {} signed messages sent, acks: {}\n",
            r.config_messages_sent,
            r.config_acks
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let shown = r
        .branches
        .iter()
        .filter(|b| !b.requirements.is_empty())
        .take(20);
    for b in shown {
        for q in &b.requirements {
            s.push_str(&format!(
                "branch {} ({}): {} {:.1} kW: {} of {} min violated (worst +{:.2} kW), {:.2} kWh shifted; {} assemblies dispatched, {} lost{}, {} re-dispatches\n",
                b.branch_id,
                b.feeder,
                q.kind,
                q.limit_kw,
                q.minutes_violated,
                q.minutes_in_window,
                q.worst_excess_kw,
                q.energy_shifted_kwh,
                b.assemblies_dispatched,
                b.assemblies_lost,
                if b.assemblies_lost_by_reason.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        b.assemblies_lost_by_reason
                            .iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                b.redispatches
            ));
        }
    }
    s.push_str(&format!(
        "wall: {:.1} s to build, {:.1} s to run\n",
        o.build_s, o.run_s
    ));
    s
}

/// Writes `branches.csv`, `compliance.json`, `compliance.csv` and
/// `summary.txt` into `dir` (created if missing).
pub fn write_outputs(dir: &Path, scenario: &FleetScenario, o: &RunOutcome) -> Result<(), RunError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let json = serde_json::to_string_pretty(&o.report).map_err(|e| io_err(dir, e))?;
    // Wall times vary: the summary file leaves them out so outputs of
    // two runs of one seed are byte-identical.
    let mut summary_text = summary(scenario, o);
    if let Some(i) = summary_text.rfind("wall:") {
        summary_text.truncate(i);
    }
    for (name, text) in [
        ("branches.csv", branches_csv(scenario, &o.rows)),
        ("compliance.json", json + "\n"),
        ("compliance.csv", compliance_csv(&o.report)),
        ("summary.txt", summary_text),
    ] {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
        f.write_all(text.as_bytes()).map_err(|e| io_err(&path, e))?;
    }
    Ok(())
}
