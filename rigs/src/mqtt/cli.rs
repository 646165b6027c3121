//! The `maslow fleet server`, `maslow fleet shard` and
//! `maslow fleet run --broker …` commands: the fleet's sans-IO ends wired
//! to MQTT (command-line glue, so `anyhow` errors).
//!
//! Takes its arguments from [`crate::fleet_args`] and marks bad input with
//! [`crate::cli_error`]; [`crate::cli`] calls it and it never uses `cli`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::lockstep::{drive_server, drive_shard, DriveOptions, DriveStats, Journal};
use super::{
    BrokerUrl, ClientOptions, Credentials, EmbeddedBroker, EmbeddedBrokerConfig, Faults,
    MqttClient, TlsFiles, PASSWORD_ENV,
};
use crate::cli_error::bad;
use crate::fleet::run::{split_branches, summary, write_outputs, RunOptions, RunOutcome};
use crate::fleet::scenario::FleetScenario;
use crate::fleet::server::FleetServer;
use crate::fleet::shard::Shard;
use crate::fleet::wire::{self, Message, Topic};
use crate::fleet_args::{
    fleet_scenario, BrokerArgs, FleetRunArgs, FleetServerArgs, FleetShardArgs,
};

/// The broker URL of `--broker` (not `embedded`).
fn broker_url(b: &BrokerArgs, command: &str) -> Result<BrokerUrl> {
    match b.broker.as_deref() {
        None => Err(bad(format!(
            "{command} needs --broker mqtt://HOST:PORT (or mqtts://)"
        ))),
        Some("embedded") => Err(bad(format!(
            "{command}: --broker embedded runs a broker inside one process: use `maslow fleet run --broker embedded`, or give the URL of a broker every process can reach"
        ))),
        Some(u) => BrokerUrl::parse(u).map_err(|e| bad(e.to_string())),
    }
}

/// Client options from the broker arguments.
fn client_options(b: &BrokerArgs, client_id: String) -> Result<ClientOptions> {
    let mut o = ClientOptions::new(client_id);
    if let Some(user) = &b.broker_user {
        o.credentials = Some(
            Credentials::from_sources(user, b.broker_password_file.as_deref(), PASSWORD_ENV)
                .map_err(|e| bad(e.to_string()))?,
        );
    } else if b.broker_password_file.is_some() {
        return Err(bad(
            "--broker-password-file is given without --broker-user".into()
        ));
    }
    o.tls = TlsFiles {
        ca: b.broker_ca.clone(),
        client_cert: b.broker_cert.clone(),
        client_key: b.broker_key.clone(),
    };
    if let Some(f) = &b.transport_faults {
        o.faults = Faults::parse(f).map_err(|e| bad(format!("--transport-faults: {e}")))?;
    }
    Ok(o)
}

fn drive_options(b: &BrokerArgs, speed: Option<f64>, realtime: bool) -> Result<DriveOptions> {
    if let Some(s) = speed {
        if !(s.is_finite() && s > 0.0) {
            return Err(bad(format!("--speed must be a positive number, found {s}")));
        }
    }
    if realtime && speed.is_none() {
        return Err(bad(
            "--realtime needs --speed X (simulated seconds per wall second)".into(),
        ));
    }
    if b.idle_timeout_s == 0 {
        return Err(bad("--idle-timeout-s must be at least 1".into()));
    }
    Ok(DriveOptions {
        idle_timeout: Duration::from_secs(b.idle_timeout_s),
        speed,
        realtime,
        progress: true,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        )
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Connects as `client_id` with a fresh persistent session: a first clean
/// connection discards whatever an earlier run with the same id left on the
/// broker, the second keeps the session across broker restarts.
async fn connect_fresh(
    url: &BrokerUrl,
    mut opts: ClientOptions,
    filters: &[String],
) -> Result<(MqttClient, tokio::sync::mpsc::UnboundedReceiver<Message>)> {
    let mut clean = opts.clone();
    clean.clean_session = true;
    clean.faults = Faults::none();
    let (c, _) = MqttClient::connect(url, clean, &[]).await?;
    c.disconnect().await;
    opts.clean_session = false;
    Ok(MqttClient::connect(url, opts, filters).await?)
}

/// The branch ids at positions `spec` (`A..B`, `A..=B` or `A`) of `ids`.
fn branches_at(ids: &[u32], spec: &str) -> Result<Vec<u32>> {
    let n = ids.len();
    let num = |s: &str| -> Result<usize> {
        s.trim().parse::<usize>().map_err(|_| {
            bad(format!(
                "--feeders {spec:?}: {s:?} is not a position (expected A..B, A..=B or A, positions 0..{n})"
            ))
        })
    };
    let (from, to) = if let Some((a, b)) = spec.split_once("..=") {
        (num(a)?, num(b)? + 1)
    } else if let Some((a, b)) = spec.split_once("..") {
        (num(a)?, num(b)?)
    } else {
        let a = num(spec)?;
        (a, a + 1)
    };
    if from >= to || to > n {
        return Err(bad(format!(
            "--feeders {spec:?}: the scenario has {n} branches (positions 0..{n}); {from}..{to} is empty or beyond them"
        )));
    }
    Ok(ids[from..to].to_vec())
}

fn run_id_of(sc: &FleetScenario, given: &Option<String>) -> Result<String> {
    let id = given
        .clone()
        .unwrap_or_else(|| wire::default_run_id(sc.seed));
    wire::check_run_id(&id).map_err(|e| bad(e.to_string()))?;
    Ok(id)
}

fn households(sc: &FleetScenario) -> usize {
    sc.branch_ids()
        .iter()
        .map(|b| sc.households(*b).len())
        .sum()
}

/// The server's outcome in the fleet's output format.
fn outcome_of(server: &FleetServer, sc: &FleetScenario, stats: &DriveStats) -> RunOutcome {
    RunOutcome {
        report: server.report(),
        rows: server.rows().to_vec(),
        telemetry: server.latest_telemetry(),
        shard_stats: Vec::new(),
        messages: stats.sent + stats.received,
        households: households(sc),
        assemblies: server.known_sites().len(),
        build_s: 0.0,
        run_s: stats.wall_s,
    }
}

fn print_transport(who: &str, c: &MqttClient, s: &DriveStats) {
    let k = c.counters();
    println!(
        "{who}: {} sent, {} received, {} duplicates dropped, {} refused; mqtt: {} published, {} acked, {} reconnects, {} dropped / {} duplicated / {} delayed by faults",
        s.sent, s.received, s.duplicates, s.bad, k.published, k.acked, k.reconnects, k.dropped, k.duplicated, k.delayed
    );
}

/// Runs the server end on `url` to the end and writes the outputs.
async fn serve(
    url: &BrokerUrl,
    b: &BrokerArgs,
    sc: Arc<FleetScenario>,
    run_id: &str,
    dopts: &DriveOptions,
    out: &Path,
) -> Result<()> {
    let opts = client_options(b, format!("maslow-{run_id}-server"))?;
    let (client, mut rx) =
        connect_fresh(url, opts, &wire::topic_filters_for_server(run_id)).await?;
    let mut server = FleetServer::new(Arc::clone(&sc), run_id)?;
    let stats = drive_server(&mut server, &client, &mut rx, dopts).await?;
    let outcome = outcome_of(&server, &sc, &stats);
    write_outputs(out, &sc, &outcome)?;
    // The shards' retained Hellos belong to this run: clear them.
    for shard in server.shards().keys() {
        let topic = Topic::Hello(shard.clone()).to_topic(run_id);
        client
            .publish(Message {
                topic,
                payload: Vec::new(),
                retain: true,
            })
            .await?;
    }
    client.flush(dopts.idle_timeout).await?;
    print!("{}", summary(&sc, &outcome));
    print_transport("server", &client, &stats);
    println!("outputs: {}", out.display());
    client.disconnect().await;
    Ok(())
}

/// Runs one shard end on `url` to the end.
#[allow(clippy::too_many_arguments)]
async fn shard_end(
    url: &BrokerUrl,
    b: &BrokerArgs,
    sc: Arc<FleetScenario>,
    run_id: &str,
    shard_id: &str,
    branches: &[u32],
    threads: usize,
    share_signatures: bool,
    dopts: &DriveOptions,
    journal: Option<&Path>,
) -> Result<()> {
    let mut shard = Shard::new(Arc::clone(&sc), run_id, shard_id, branches, threads)?;
    shard.set_shared_signatures(share_signatures);
    let mut opts = client_options(b, format!("maslow-{run_id}-{shard_id}"))?;
    let filters = wire::topic_filters_for_branches(run_id, &shard.branch_ids());
    let mut journal = match journal {
        Some(p) => Some(Journal::open(p)?),
        None => None,
    };
    let resume = journal.as_ref().is_some_and(|(_, held)| !held.is_empty());
    let (client, mut rx) = if resume {
        // Restarted: take the persistent session back, with what the broker
        // kept for this shard while it was away.
        opts.manual_acks = true;
        opts.clean_session = false;
        MqttClient::connect(url, opts, &filters).await?
    } else {
        opts.manual_acks = journal.is_some();
        connect_fresh(url, opts, &filters).await?
    };
    let stats = drive_shard(
        &mut shard,
        &sc,
        &client,
        &mut rx,
        dopts,
        journal.as_mut().map(|(j, held)| (j, std::mem::take(held))),
    )
    .await?;
    if stats.replayed > 0 {
        println!(
            "shard {shard_id}: rejoined the run: {} journaled messages replayed",
            stats.replayed
        );
    }
    print_transport(&format!("shard {shard_id}"), &client, &stats);
    client.disconnect().await;
    Ok(())
}

/// `maslow fleet server`.
pub fn fleet_server(a: &FleetServerArgs) -> Result<()> {
    let sc = Arc::new(fleet_scenario(&a.common)?);
    let run_id = run_id_of(&sc, &a.common.run_id)?;
    let url = broker_url(&a.broker, "maslow fleet server")?;
    let dopts = drive_options(&a.broker, a.speed, a.realtime)?;
    runtime()?.block_on(serve(&url, &a.broker, sc, &run_id, &dopts, &a.out))
}

/// `maslow fleet shard`.
pub fn fleet_shard(a: &FleetShardArgs) -> Result<()> {
    let sc = Arc::new(fleet_scenario(&a.common)?);
    let run_id = run_id_of(&sc, &a.common.run_id)?;
    wire::check_run_id(&a.shard_id)
        .map_err(|_| bad(format!("--shard-id {:?}: use [a-z0-9-]+", a.shard_id)))?;
    let url = broker_url(&a.broker, "maslow fleet shard")?;
    let branches = branches_at(&sc.branch_ids(), &a.feeders)?;
    let dopts = drive_options(&a.broker, None, false)?;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    runtime()?.block_on(shard_end(
        &url,
        &a.broker,
        sc,
        &run_id,
        &a.shard_id,
        &branches,
        threads.max(1),
        !a.signatures.verify_every_message,
        &dopts,
        a.journal.as_deref(),
    ))
}

/// `maslow fleet run --broker embedded|URL`: the server and `--shards`
/// shards in this process, over real MQTT (an embedded broker on a free
/// loopback port, or the given one).
pub fn fleet_run_over_broker(
    a: &FleetRunArgs,
    sc: Arc<FleetScenario>,
    opts: &RunOptions,
) -> Result<()> {
    let run_id = run_id_of(&sc, &opts.run_id)?;
    // The shards follow the server's ticks (a real-time tick says so).
    let shard_dopts = drive_options(&a.broker, None, false)?;
    let dopts = drive_options(&a.broker, a.speed, a.realtime)?;
    let (broker, url) = match a.broker.broker.as_deref() {
        Some("embedded") => {
            let b = EmbeddedBroker::start(EmbeddedBrokerConfig::default())?;
            let u = b.url();
            eprintln!("fleet: embedded MQTT broker on {u}");
            (Some(b), u)
        }
        _ => (None, broker_url(&a.broker, "maslow fleet run")?),
    };
    let blocks = split_branches(&sc.branch_ids(), opts.shards);
    let result = runtime()?.block_on(async {
        let mut shards = Vec::new();
        for (i, branches) in blocks.into_iter().enumerate() {
            let (url, b, sc, run_id, dopts) = (
                url.clone(),
                a.broker.clone(),
                Arc::clone(&sc),
                run_id.clone(),
                shard_dopts.clone(),
            );
            let (threads, share) = (opts.threads, opts.share_signature_checks);
            shards.push(tokio::spawn(async move {
                shard_end(
                    &url,
                    &b,
                    sc,
                    &run_id,
                    &format!("shard-{i}"),
                    &branches,
                    threads,
                    share,
                    &dopts,
                    None,
                )
                .await
            }));
        }
        serve(&url, &a.broker, Arc::clone(&sc), &run_id, &dopts, &a.out).await?;
        for s in shards {
            s.await.context("a shard task panicked")??;
        }
        Ok::<(), anyhow::Error>(())
    });
    if let Some(b) = broker {
        b.shutdown();
    }
    result
}
