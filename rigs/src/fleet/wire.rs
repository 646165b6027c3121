//! The fleet's messages, schema `maslow-fleet/1` (`rigs/docs/fleet-messages.md`).
//!
//! A [`Message`] is an MQTT topic and its payload; the transport (in-process
//! queue or MQTT) only moves them. Topics live under `maslow/<run_id>/`;
//! JSON payloads are the types below, dispatch and configuration payloads
//! are the firmware's signed binary records, unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Schema name and version of every JSON payload.
pub const SCHEMA: &str = "maslow-fleet/1";

/// One message on the fleet transport: an MQTT topic and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Full topic, `maslow/<run_id>/...`.
    pub topic: String,
    /// Payload bytes (JSON or a signed binary record).
    pub payload: Vec<u8>,
    /// Whether the broker keeps it for late subscribers (only `Hello`).
    pub retain: bool,
}

/// Problems with a message: counted and skipped by the receiver, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The topic is not under this run's prefix or not a known topic.
    #[error("{topic}: unknown topic")]
    UnknownTopic {
        /// The topic received.
        topic: String,
    },
    /// A JSON payload did not parse as the topic's type.
    #[error("{topic}: malformed payload: {message}")]
    Malformed {
        /// The topic received.
        topic: String,
        /// The parser's message.
        message: String,
    },
    /// The message is valid but not expected here (wrong direction, a
    /// shard or site this end does not know, a stale minute).
    #[error("{topic}: unexpected: {message}")]
    Unexpected {
        /// The topic received.
        topic: String,
        /// Why it was not expected.
        message: String,
    },
    /// A run id outside `[a-z0-9-]+`.
    #[error("run id {0:?}: use lower-case letters, digits and '-'")]
    BadRunId(String),
}

impl WireError {
    /// The topic of the message it is about ("" for a bad run id): the key
    /// under which the server and the shards count bad messages.
    pub fn topic(&self) -> String {
        match self {
            WireError::UnknownTopic { topic }
            | WireError::Malformed { topic, .. }
            | WireError::Unexpected { topic, .. } => topic.clone(),
            WireError::BadRunId(_) => String::new(),
        }
    }
}

/// Checks a run id (`[a-z0-9-]+`).
pub fn check_run_id(run_id: &str) -> Result<(), WireError> {
    if !run_id.is_empty()
        && run_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(())
    } else {
        Err(WireError::BadRunId(run_id.to_string()))
    }
}

/// The default run id for a seed: `fleet-<seed>`.
pub fn default_run_id(seed: u64) -> String {
    format!("fleet-{seed}")
}

/// A parsed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `P/hello/<shard_id>`, shard → server.
    Hello(String),
    /// `P/tick`, server → shards.
    Tick,
    /// `P/branch/<branch_id>/dispatch`, server → every assembly of a branch.
    BranchDispatch(u32),
    /// `P/site/<site_id>/dispatch`, server → one assembly.
    SiteDispatch(u32),
    /// `P/site/<site_id>/config`, server → one assembly.
    SiteConfig(u32),
    /// `P/site/<site_id>/telemetry`, assembly → server.
    Telemetry(u32),
    /// `P/site/<site_id>/ack`, assembly → server.
    Ack(u32),
    /// `P/done/<shard_id>`, shard → server.
    Done(String),
}

/// The topic prefix of a run: `maslow/<run_id>`.
pub fn prefix(run_id: &str) -> String {
    format!("maslow/{run_id}")
}

impl Topic {
    /// The full topic string for a run.
    pub fn to_topic(&self, run_id: &str) -> String {
        let p = prefix(run_id);
        match self {
            Topic::Hello(s) => format!("{p}/hello/{s}"),
            Topic::Tick => format!("{p}/tick"),
            Topic::BranchDispatch(b) => format!("{p}/branch/{b}/dispatch"),
            Topic::SiteDispatch(s) => format!("{p}/site/{s}/dispatch"),
            Topic::SiteConfig(s) => format!("{p}/site/{s}/config"),
            Topic::Telemetry(s) => format!("{p}/site/{s}/telemetry"),
            Topic::Ack(s) => format!("{p}/site/{s}/ack"),
            Topic::Done(s) => format!("{p}/done/{s}"),
        }
    }

    /// Parses a full topic of run `run_id`.
    pub fn parse(run_id: &str, topic: &str) -> Result<Topic, WireError> {
        let unknown = || WireError::UnknownTopic {
            topic: topic.to_string(),
        };
        let rest = topic
            .strip_prefix("maslow/")
            .and_then(|r| r.strip_prefix(run_id))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(unknown)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| s.parse::<u32>().map_err(|_| unknown());
        let name = |s: &str| {
            if !s.is_empty() && !s.contains(['+', '#']) {
                Ok(s.to_string())
            } else {
                Err(unknown())
            }
        };
        match parts.as_slice() {
            ["hello", s] => Ok(Topic::Hello(name(s)?)),
            ["tick"] => Ok(Topic::Tick),
            ["branch", b, "dispatch"] => Ok(Topic::BranchDispatch(id(b)?)),
            ["site", s, "dispatch"] => Ok(Topic::SiteDispatch(id(s)?)),
            ["site", s, "config"] => Ok(Topic::SiteConfig(id(s)?)),
            ["site", s, "telemetry"] => Ok(Topic::Telemetry(id(s)?)),
            ["site", s, "ack"] => Ok(Topic::Ack(id(s)?)),
            ["done", s] => Ok(Topic::Done(name(s)?)),
            _ => Err(unknown()),
        }
    }
}

/// MQTT topic filters the server subscribes to.
pub fn topic_filters_for_server(run_id: &str) -> Vec<String> {
    let p = prefix(run_id);
    vec![
        format!("{p}/hello/+"),
        format!("{p}/site/+/telemetry"),
        format!("{p}/site/+/ack"),
        format!("{p}/done/+"),
    ]
}

/// MQTT topic filters a shard owning `branch_ids` subscribes to. Site
/// topics use a wildcard: a shard skips (and does not count) messages for
/// sites it does not own.
pub fn topic_filters_for_branches(run_id: &str, branch_ids: &[u32]) -> Vec<String> {
    let p = prefix(run_id);
    let mut v = vec![
        format!("{p}/tick"),
        format!("{p}/site/+/dispatch"),
        format!("{p}/site/+/config"),
    ];
    v.extend(
        branch_ids
            .iter()
            .map(|b| format!("{p}/branch/{b}/dispatch")),
    );
    v
}

/// One site (household with an assembly) as a shard announces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteInfo {
    /// The assembly's site id (non-zero, unique in the run).
    pub site_id: u32,
    /// The branch (feeder copy) it is on.
    pub branch_id: u32,
    /// The feeder's name (the network file's directory or stem).
    pub feeder: String,
    /// The load point's bus.
    pub bus: String,
    /// Phase 1, 2 or 3.
    pub phase: u8,
}

/// One branch (feeder copy) a shard owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeederInfo {
    /// Branch id.
    pub branch_id: u32,
    /// The feeder's name.
    pub feeder: String,
    /// Households on it (with and without assemblies).
    pub households: u32,
}

/// `P/hello/<shard_id>`: what a shard owns (retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Schema, [`SCHEMA`].
    pub schema: String,
    /// The shard.
    pub shard_id: String,
    /// Its branches.
    pub feeders: Vec<FeederInfo>,
    /// Its assemblies.
    pub sites: Vec<SiteInfo>,
}

/// `P/tick`: step simulated minute `minute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// Minute of the run, from 0.
    pub minute: u32,
    /// UTC seconds at the start of the minute.
    pub utc_s: u64,
    /// Server → site messages (dispatch/config) each shard receives for
    /// this minute before it may step; a shard not named expects 0.
    pub expect: BTreeMap<String, u32>,
    /// A real-time run, and the wall time of one simulated minute, ms: step
    /// on the tick without waiting for `expect` (messages that come after
    /// it are delivered the next minute), and step on by this clock when a
    /// tick does not come. Absent: lockstep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_minute_ms: Option<u64>,
}

/// Dispatch counters an assembly reports (the firmware's, by reason).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCounters {
    /// Accepted messages (dispatch, heartbeat, configuration).
    pub accepted: u32,
    /// Of `accepted`: heartbeats.
    #[serde(default)]
    pub accepted_heartbeat: u32,
    /// Of `accepted`: configuration messages.
    #[serde(default)]
    pub accepted_config: u32,
    /// Re-deliveries of an accepted command (idempotent, not re-executed).
    pub duplicate: u32,
    /// Ignored: other branch or other site.
    pub ignored: u32,
    /// Rejected, by reason (`bad_signature`, `replayed`, ...).
    pub rejected: BTreeMap<String, u32>,
}

impl SiteCounters {
    /// Accepted dispatch commands (Sink, Source, Cancel).
    pub fn accepted_dispatch(&self) -> u32 {
        self.accepted
            .saturating_sub(self.accepted_heartbeat)
            .saturating_sub(self.accepted_config)
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u32 {
        self.rejected.values().sum()
    }
}

/// `P/site/<site_id>/telemetry`: one a minute per assembly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Site.
    pub site_id: u32,
    /// Branch.
    pub branch_id: u32,
    /// Minute just stepped.
    pub minute: u32,
    /// State of charge the assembly estimates, 0..1.
    pub soc: f64,
    /// The reserve it keeps, 0..1.
    pub reserve_soc: f64,
    /// Charge power it could take now, W (≥ 0).
    pub max_charge_w: f64,
    /// Discharge power it could give now, W (≥ 0).
    pub max_discharge_w: f64,
    /// Battery power over the minute (mean), W, + = discharge.
    pub battery_w: f64,
    /// Household's net AC power at the meter (mean), W, + = import.
    pub net_ac_w: f64,
    /// Whether it takes part in dispatch now.
    pub participating: bool,
    /// Whether it considers the server silent (local operation).
    pub server_silent: bool,
    /// Sequence of the dispatch in force, if any.
    pub dispatch_seq: Option<u64>,
    /// Dispatch verdict counters since start.
    pub counters: SiteCounters,
}

/// `P/site/<site_id>/ack`: the verdict on one delivered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Site.
    pub site_id: u32,
    /// The message's sequence (0 if it did not parse).
    pub sequence: u64,
    /// `accepted`, `duplicate`, `ignored:<reason>`, `rejected:<reason>`.
    pub verdict: String,
    /// Minute it was delivered in.
    pub minute: u32,
}

/// One branch's measurements after a minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeederReport {
    /// Branch.
    pub branch_id: u32,
    /// Transformer LV active power per phase, kW (+ = towards the houses).
    pub transformer_p_kw: [f64; 3],
    /// Transformer LV reactive power per phase, kvar.
    pub transformer_q_kvar: [f64; 3],
    /// Transformer loading, % of its rating (apparent power).
    pub loading_pct: f64,
    /// Lowest phase voltage on the branch, p.u.
    pub v_min_pu: f64,
    /// Highest phase voltage on the branch, p.u.
    pub v_max_pu: f64,
    /// Mean SOC of the branch's assemblies (0..1; 0 without any).
    pub soc_mean: f64,
    /// Lowest state of charge of the branch's assemblies' packs, as the
    /// houses measure it (0..1; 1 without any): not what they report.
    #[serde(default = "no_soc")]
    pub soc_min: f64,
    /// Sum of the assemblies' battery power, W (+ = discharge).
    pub battery_w: f64,
    /// Assemblies reporting the server silent (in local operation).
    #[serde(default)]
    pub server_silent: u32,
}

fn no_soc() -> f64 {
    1.0
}

impl FeederReport {
    /// Total transformer active power, kW.
    pub fn p_kw(&self) -> f64 {
        self.transformer_p_kw.iter().sum()
    }
}

/// `P/done/<shard_id>`: a shard stepped a minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// Shard.
    pub shard_id: String,
    /// Minute stepped.
    pub minute: u32,
    /// Telemetry messages it published for the minute.
    pub n_telemetry: u32,
    /// Ack messages it published for the minute.
    pub n_acks: u32,
    /// Per branch.
    pub feeders: Vec<FeederReport>,
}

/// Serialises a JSON payload into a message.
pub fn json_message<T: Serialize>(topic: String, value: &T, retain: bool) -> Message {
    // Serialising these plain structs cannot fail (no maps with non-string
    // keys, no non-finite floats are rejected by serde_json: they become null).
    let payload = serde_json::to_vec(value).unwrap_or_default();
    Message {
        topic,
        payload,
        retain,
    }
}

/// Parses a JSON payload of `msg`.
pub fn parse_json<T: for<'de> Deserialize<'de>>(msg: &Message) -> Result<T, WireError> {
    serde_json::from_slice(&msg.payload).map_err(|e| WireError::Malformed {
        topic: msg.topic.clone(),
        message: e.to_string(),
    })
}

/// The sequence number of a signed dispatch/config record (bytes 44..52),
/// or 0 when it is too short to have one.
pub fn record_sequence(payload: &[u8]) -> u64 {
    payload
        .get(44..52)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let run = "fleet-7";
        for t in [
            Topic::Hello("shard-0".into()),
            Topic::Tick,
            Topic::BranchDispatch(3),
            Topic::SiteDispatch(1001),
            Topic::SiteConfig(1001),
            Topic::Telemetry(9),
            Topic::Ack(9),
            Topic::Done("a".into()),
        ] {
            assert_eq!(Topic::parse(run, &t.to_topic(run)), Ok(t));
        }
        assert!(Topic::parse(run, "maslow/other/tick").is_err());
        assert!(Topic::parse(run, "maslow/fleet-7/site/x/ack").is_err());
        assert!(Topic::parse(run, "maslow/fleet-7/site/1/nope").is_err());
    }

    #[test]
    fn run_ids() {
        assert!(check_run_id("fleet-7").is_ok());
        assert!(check_run_id("Fleet").is_err());
        assert!(check_run_id("").is_err());
        assert!(check_run_id("a/b").is_err());
    }

    #[test]
    fn malformed_json_is_an_error_naming_the_topic() {
        let m = Message {
            topic: "maslow/r/tick".into(),
            payload: b"{".to_vec(),
            retain: false,
        };
        let e = parse_json::<Tick>(&m).unwrap_err();
        assert!(e.to_string().contains("maslow/r/tick"), "{e}");
    }
}
