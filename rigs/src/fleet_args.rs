//! The `maslow fleet` commands' arguments (clap) and the fleet scenario they
//! load with the command line's overrides.
//!
//! Shared by the in-process run ([`crate::cli`]) and the runs over MQTT
//! ([`crate::mqtt::cli`]); it may use the fleet's scenario and
//! [`crate::cli_error`], but no command module.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::cli_error::bad;

/// Where the fleet's MQTT broker is and how to log in. The password is
/// never an argument: `MASLOW_BROKER_PASSWORD` or `--broker-password-file`.
#[derive(Debug, Args, Clone, Default)]
pub struct BrokerArgs {
    /// `embedded` (a broker in this process; `fleet run` only) or
    /// `mqtt://HOST:PORT` / `mqtts://HOST:PORT`.
    #[arg(long)]
    pub broker: Option<String>,
    /// Broker user name (password from MASLOW_BROKER_PASSWORD or --broker-password-file).
    #[arg(long)]
    pub broker_user: Option<String>,
    /// File whose first line is the broker password.
    #[arg(long)]
    pub broker_password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM) for mqtts:// (default: the system's trust store).
    #[arg(long)]
    pub broker_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for brokers that require one.
    #[arg(long)]
    pub broker_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    pub broker_key: Option<PathBuf>,
    /// Faults on what this process publishes, seeded:
    /// `drop=P,duplicate=P,delay=exp:50ms|fixed:D|uniform:D..D,seed=N`.
    #[arg(long)]
    pub transport_faults: Option<String>,
    /// Longest wait for the next message, s; then the run stops with an
    /// error naming where it stalled.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout_s: u64,
}

#[derive(Debug, Args)]
pub struct FleetServerArgs {
    #[command(flatten)]
    pub common: FleetCommonArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Directory for branches.csv, compliance.json, compliance.csv and summary.txt.
    #[arg(long)]
    pub out: PathBuf,
    /// Scaled real time: simulated seconds per wall second (minute m starts
    /// no earlier than m·60/X s after the first). Default: as fast as the
    /// lockstep barrier allows.
    #[arg(long)]
    pub speed: Option<f64>,
    /// No barrier (needs --speed): each minute ends on the wall clock with
    /// whatever came in; shards step on the tick; what comes late is
    /// counted (compliance.json `late_messages`). Not deterministic.
    #[arg(long, requires = "speed")]
    pub realtime: bool,
}

#[derive(Debug, Args)]
pub struct FleetShardArgs {
    #[command(flatten)]
    pub common: FleetCommonArgs,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The branches (feeder copies) this shard runs, as positions in the
    /// scenario's branch list: `A..B` (A included, B not), `A..=B`, or `A`.
    #[arg(long)]
    pub feeders: String,
    /// This shard's id ([a-z0-9-]+), unique in the run.
    #[arg(long)]
    pub shard_id: String,
    /// Threads stepping the households (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Journal of every message this shard handled. A shard started again
    /// with the same journal after a crash or kill replays it and rejoins
    /// the run where it was (no command executed twice); a new run needs a
    /// new (or no) journal file.
    #[arg(long)]
    pub journal: Option<PathBuf>,
    #[command(flatten)]
    pub signatures: SignatureArgs,
}

/// Arguments every fleet command shares.
#[derive(Debug, Args)]
pub struct FleetCommonArgs {
    /// The fleet scenario (TOML; rigs/fleets/README.md).
    pub fleet: PathBuf,
    /// Seed instead of the file's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated hours instead of the file's `duration_h`.
    #[arg(long)]
    pub hours: Option<f64>,
    /// Run id, the topic prefix `maslow/<run_id>/` ([a-z0-9-]+; default fleet-<seed>).
    #[arg(long)]
    pub run_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct FleetRunArgs {
    #[command(flatten)]
    pub common: FleetCommonArgs,
    /// Directory for branches.csv, compliance.json, compliance.csv and summary.txt.
    #[arg(long)]
    pub out: PathBuf,
    /// Split the branches into this many shards (in-process).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Threads per shard (default: the machine's cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// `--broker embedded` or `--broker URL`: the server and the shards in
    /// this process exchange their messages over MQTT instead.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// With --broker: scaled real time, simulated seconds per wall second
    /// (the lockstep paced; with --realtime, no barrier).
    #[arg(long, requires = "broker")]
    pub speed: Option<f64>,
    /// With --broker and --speed: no barrier; minutes end on the wall
    /// clock, late messages are counted. Not deterministic.
    #[arg(long, requires = "speed")]
    pub realtime: bool,
    #[command(flatten)]
    pub signatures: SignatureArgs,
}

/// How a shard's assemblies check the server's signatures.
#[derive(Debug, Clone, Copy, Args)]
pub struct SignatureArgs {
    /// Every assembly runs Ed25519 verify_strict on every message, as its
    /// board would. By default the assemblies of a branch share the check
    /// of a broadcast they all receive as the same bytes (a heartbeat);
    /// results are identical, runs about a third faster.
    #[arg(long)]
    pub verify_every_message: bool,
}

/// Loads a fleet scenario with the command line's overrides.
pub fn fleet_scenario(a: &FleetCommonArgs) -> Result<crate::fleet::FleetScenario> {
    let mut sc = crate::fleet::FleetScenario::load(&a.fleet).map_err(|e| bad(e.to_string()))?;
    if let Some(seed) = a.seed {
        sc = sc.with_seed(seed);
    }
    if let Some(h) = a.hours {
        if !(h.is_finite() && h > 0.0 && h <= 24.0 * 366.0) {
            return Err(bad(format!(
                "--hours must be > 0 and at most a year, found {h}"
            )));
        }
        sc = sc.with_hours(h);
    }
    Ok(sc)
}
