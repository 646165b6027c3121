//! Cluster participation [claims 1, 20]: the assemblies on one local branch
//! of the distribution network act as one collective resource, sinking or
//! sourcing power on signals from a remote server.
//!
//! This module is the participant: it checks the server's signed dispatch
//! commands, heartbeats and configuration messages and turns the dispatch
//! in force into a battery power share. An assembly follows dispatch
//! addressed to **its own branch** (and, if the command names one, its own
//! site), ignores every other branch, and never acts on a message that is
//! malformed, unsigned or signed by an unknown key, replayed, expired, not
//! yet valid, or outside the configured envelope. Every outcome is counted
//! by reason.
//!
//! The messages' formats are [`crate::wire::signed`] (the shared header
//! and signature framing), [`crate::wire::dispatch`] and
//! [`crate::wire::config_message`]; what a configuration message's settings
//! mean is [`crate::remote_config`]. This module owns the checks that need
//! the participant's state: the signature (through [`SignatureCheck`]),
//! the trusted keys, the sequence space per key, duplicates, time and
//! validity, branch and site targeting, the envelope, participation, the
//! start delay and the server's silence. It uses the wire formats and
//! `remote_config`, neither of which may use it; it must not use the
//! controller that composes it.
//!
//! Sans-IO: [`Cluster::handle`] takes the received bytes with the monotonic
//! time (`Millis`) and the UTC seconds the controller has from the
//! uplink/meter; [`Cluster::update`] says what the battery should do now.
//! Sign convention: battery power positive = discharge (sourcing to the
//! network), negative = charge (sinking from the network).

use core::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::remote_config::{RemoteConfigBounds, RemoteSettings};
use crate::wire::config_message::{self, ConfigMessage, Settings};
use crate::wire::dispatch::{self, Command, Dispatch, Requirement};
use crate::wire::signed::{Header, ParseError, SignedFrame, ALL_SITES, SIGNATURE_LEN};
use crate::{ConfigError, Millis};

/// Checks a server's Ed25519 signature (a narrow trait: the one step of
/// screening a message that is pure computation). The firmware's own is
/// [`StrictCheck`]. A simulation that runs many assemblies in one process
/// may remember the bytes it has already found genuine, since a broadcast
/// (a heartbeat) reaches every assembly on a branch as the same bytes; it
/// must answer exactly as [`StrictCheck`] would.
pub trait SignatureCheck {
    /// `true` when `signature` is `key`'s over `signed_bytes` under
    /// `verify_strict` (canonical encodings, no small-order points).
    fn verify(&mut self, key: &VerifyingKey, signed_bytes: &[u8], signature: &Signature) -> bool;
}

/// Ed25519 `verify_strict` on every call: what the board runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct StrictCheck;

impl SignatureCheck for StrictCheck {
    fn verify(&mut self, key: &VerifyingKey, signed_bytes: &[u8], signature: &Signature) -> bool {
        key.verify_strict(signed_bytes, signature).is_ok()
    }
}

/// Most trusted server keys a config may hold.
pub const MAX_KEYS: usize = 4;

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

/// A 32-byte Ed25519 public key, written in TOML as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKeyHex(pub [u8; 32]);

impl fmt::Debug for PublicKeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl PublicKeyHex {
    /// Decodes 64 hex digits (either case) into 32 bytes.
    pub fn from_hex(s: &str) -> Option<Self> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
            let hi = hex_nibble(*pair.first()?)?;
            let lo = hex_nibble(*pair.get(1)?)?;
            *o = (hi << 4) | lo;
        }
        Some(PublicKeyHex(out))
    }
}

impl<'de> Deserialize<'de> for PublicKeyHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl<'de> Visitor<'de> for HexVisitor {
            type Value = PublicKeyHex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Ed25519 public key as 64 hex digits")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PublicKeyHex, E> {
                PublicKeyHex::from_hex(v).ok_or_else(|| {
                    E::invalid_value(de::Unexpected::Str(v), &"64 hex digits (32 bytes)")
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PublicKeyHex, A::Error> {
                // Also accept an array of 32 byte values.
                let mut out = [0u8; 32];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(de::Error::invalid_length(33, &self));
                }
                Ok(PublicKeyHex(out))
            }
        }
        d.deserialize_str(HexVisitor)
    }
}

/// The bounds a dispatch must stay within to be accepted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Envelope {
    /// Largest sink (charge) power a dispatch may ask for, W.
    pub max_sink_w: f32,
    /// Largest source (discharge) power a dispatch may ask for, W.
    pub max_source_w: f32,
    /// Longest dispatch, s.
    pub max_duration_s: u32,
    /// Longest validity window (`expires_at_s - issued_at_s`) accepted, s.
    /// Bounds how long a captured command could be replayed after a reboot
    /// that lost the sequence state.
    pub max_validity_s: u64,
    /// Largest difference tolerated between the server's clock and this
    /// assembly's UTC seconds, s.
    pub max_clock_skew_s: u64,
    /// Largest randomised start delay, s (0 = none, at most
    /// [`MAX_START_DELAY_S`]). On accepting a Sink/Source while no
    /// Sink/Source is in force, the assembly holds its share at "no
    /// dispatch" for [`start_delay_s`]`(site_id, sequence, this)` seconds,
    /// then follows; the dispatch's end is unchanged. Protects the feeder
    /// from synchronised mass switching.
    pub start_delay_max_s: u32,
}

/// Upper bound of [`Envelope::start_delay_max_s`], s.
pub const MAX_START_DELAY_S: u32 = 900;

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            max_sink_w: 3000.0,
            max_source_w: 3000.0,
            max_duration_s: 4 * 3600,
            max_validity_s: 900,
            max_clock_skew_s: 30,
            start_delay_max_s: 0,
        }
    }
}

impl Envelope {
    /// Checks the envelope itself: powers finite and >= 0 W, a duration
    /// and a validity window of at least 1 s, the clock skew at most 1 h,
    /// the start delay at most [`MAX_START_DELAY_S`].
    // ConfigError is the crate's shared fixed-capacity (no heap) error.
    #[allow(clippy::result_large_err)]
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("max_sink_w", self.max_sink_w),
            ("max_source_w", self.max_source_w),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::new(
                    name,
                    format_args!("must be a finite power >= 0 W, found {v}"),
                ));
            }
        }
        if self.max_duration_s == 0 {
            return Err(ConfigError::new(
                "max_duration_s",
                format_args!("must be at least 1 s, found 0"),
            ));
        }
        if self.max_validity_s == 0 {
            return Err(ConfigError::new(
                "max_validity_s",
                format_args!("must be at least 1 s, found 0"),
            ));
        }
        if self.max_clock_skew_s > 3600 {
            return Err(ConfigError::new(
                "max_clock_skew_s",
                format_args!("must be at most 3600 s, found {}", self.max_clock_skew_s),
            ));
        }
        if self.start_delay_max_s > MAX_START_DELAY_S {
            return Err(ConfigError::new(
                "start_delay_max_s",
                format_args!(
                    "must be at most {MAX_START_DELAY_S} s, found {}",
                    self.start_delay_max_s
                ),
            ));
        }
        Ok(())
    }

    /// Whether the sink/source powers and the start delay a configuration
    /// message sets (if it sets them) stay within this envelope: powers
    /// lowered only, never raised; the start delay at most
    /// [`MAX_START_DELAY_S`].
    pub fn admits(&self, settings: &Settings) -> bool {
        let sink_ok = settings
            .max_sink_w
            .set_value()
            .is_none_or(|w| w as f32 <= self.max_sink_w);
        let source_ok = settings
            .max_source_w
            .set_value()
            .is_none_or(|w| w as f32 <= self.max_source_w);
        let delay_ok = settings
            .start_delay_max_s
            .set_value()
            .is_none_or(|s| s <= MAX_START_DELAY_S);
        sink_ok && source_ok && delay_ok
    }
}

fn default_server_silence_s() -> u32 {
    180
}

/// Cluster participation config (TOML table `[cluster]`).
///
/// ```toml
/// [cluster]
/// site_id = 1042
/// branch_id = 17
/// trusted_keys = ["ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"]
///
/// [cluster.envelope]
/// max_sink_w = 3000.0
/// max_source_w = 3000.0
/// max_duration_s = 14400
/// max_validity_s = 900
/// max_clock_skew_s = 30
/// start_delay_max_s = 0
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This assembly's site id (non-zero; 0 means "all sites" on the wire).
    pub site_id: u32,
    /// The distribution branch this assembly is on (non-zero).
    pub branch_id: u32,
    /// The server public keys whose signatures are trusted (1..=4).
    pub trusted_keys: heapless::Vec<PublicKeyHex, MAX_KEYS>,
    #[serde(default)]
    pub envelope: Envelope,
    /// Once the server has sent a heartbeat, how long it may stay silent
    /// before the assembly withdraws from the dispatch in force and runs in
    /// local operation, s (10..=86400, default 180). See
    /// [`Cluster::server_silent`].
    #[serde(default = "default_server_silence_s")]
    pub server_silence_s: u32,
    /// Bounds on remote configuration (`[cluster.remote_config]`).
    #[serde(default)]
    pub remote_config: RemoteConfigBounds,
}

impl ClusterConfig {
    /// Checks the config: non-zero site and branch, 1..=4 distinct valid
    /// server keys, the envelope, the silence bound and the remote
    /// configuration bounds.
    // ConfigError is the crate's shared fixed-capacity (no heap) error.
    #[allow(clippy::result_large_err)]
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.site_id == ALL_SITES {
            return Err(ConfigError::new(
                "site_id",
                format_args!("must be non-zero (0 addresses every site), found 0"),
            ));
        }
        if self.branch_id == 0 {
            return Err(ConfigError::new(
                "branch_id",
                format_args!("must be non-zero, found 0"),
            ));
        }
        self.validate_keys()?;
        self.envelope.validate().map_err(|e| e.within("envelope"))?;
        if !(10..=86_400).contains(&self.server_silence_s) {
            return Err(ConfigError::new(
                "server_silence_s",
                format_args!(
                    "must be within 10..=86400 s, found {}",
                    self.server_silence_s
                ),
            ));
        }
        self.remote_config
            .validate()
            .map_err(|e| e.within("remote_config"))
    }

    /// At least one trusted key, each a valid Ed25519 point (not weak),
    /// none listed twice.
    #[allow(clippy::result_large_err)]
    fn validate_keys(&self) -> Result<(), ConfigError> {
        if self.trusted_keys.is_empty() {
            return Err(ConfigError::new(
                "trusted_keys",
                format_args!("must hold at least one server public key, found none"),
            ));
        }
        for (i, k) in self.trusted_keys.iter().enumerate() {
            match VerifyingKey::from_bytes(&k.0) {
                Ok(v) if !v.is_weak() => {}
                _ => {
                    return Err(ConfigError::new(
                        "trusted_keys",
                        format_args!("key {i} is not a valid Ed25519 public key: {k:?}"),
                    ))
                }
            }
            if self.trusted_keys.iter().take(i).any(|o| o == k) {
                return Err(ConfigError::new(
                    "trusted_keys",
                    format_args!("key {i} is listed twice: {k:?}"),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The cluster participant
// ---------------------------------------------------------------------------

/// What the controller tells [`Cluster::handle`] about the assembly's state
/// when a command arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchContext {
    /// `false` while the assembly cannot take part at all (islanded in a
    /// power cut, owner opt-out, maintenance): valid Sink/Source commands
    /// are then rejected with [`RejectReason::NotParticipating`] (and their
    /// sequence is not consumed, so the server may re-issue). A remote
    /// opt-out ([`RemoteSettings::participating`]) counts as well.
    pub participating: bool,
}

impl Default for DispatchContext {
    fn default() -> Self {
        DispatchContext {
            participating: true,
        }
    }
}

/// Why a verified message was not acted on although nothing is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Addressed to another branch.
    OtherBranch,
    /// Addressed to another site on this branch.
    OtherSite,
    /// Byte-identical to the last message accepted from that key (same
    /// sequence, same signature): a redelivery (MQTT QoS 1, a restarted
    /// server resending). Acknowledged, never executed twice.
    Duplicate,
}

/// Why a command was refused. The assembly never acts on a refused command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Not a well-formed version-1 command.
    Malformed(ParseError),
    /// The key field names no trusted server key.
    UnknownKey,
    /// The signature does not verify (strictly) under the named key.
    BadSignature,
    /// Sequence not greater than the last accepted one for that key (and
    /// not a byte-identical duplicate of it).
    Replayed,
    /// Past its expiry (beyond the tolerated clock skew), or its action
    /// window has already ended.
    Expired,
    /// Issued in the future beyond the tolerated clock skew.
    NotYetValid,
    /// Power, duration or validity window outside the envelope; for a
    /// configuration message, a setting outside the local bounds.
    OutOfEnvelope,
    /// The controller said the assembly is not participating now.
    NotParticipating,
}

/// The outcome of [`Cluster::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Verified, addressed here, fresh and within the envelope: now in force
    /// (a `Cancel` has cleared the dispatch in force; a `Heartbeat` only
    /// refreshed the server's liveness).
    Accepted(ActiveDispatch),
    /// Verified but addressed elsewhere, or a duplicate: nothing to do.
    Ignored(IgnoreReason),
    /// Refused: nothing done.
    Rejected(RejectReason),
}

/// An accepted dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveDispatch {
    /// Index of the signing key in `trusted_keys`.
    pub key_index: u8,
    pub sequence: u64,
    pub command: Command,
    pub requirement: Option<Requirement>,
    /// When it was accepted (monotonic).
    pub accepted_at: Millis,
    /// When the assembly starts following it (monotonic): `accepted_at`
    /// plus the randomised start delay ([`start_delay_s`]), or, for a
    /// replacement of a Sink/Source still in force, the start of the one it
    /// replaced (a change of level is not a switch-on). Equal to
    /// `accepted_at` for `Cancel` and `Heartbeat`.
    pub start_at: Millis,
    /// When its action ends (monotonic): `issued_at_s + duration_s` mapped
    /// onto this assembly's clock at acceptance, so all assemblies of the
    /// branch end together, and a later step of the UTC clock neither
    /// stretches nor cuts it. Equal to `accepted_at` for `Cancel` and
    /// `Heartbeat`.
    pub until: Millis,
}

/// An accepted configuration message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedConfig {
    /// Index of the signing key in `trusted_keys`.
    pub key_index: u8,
    pub sequence: u64,
    /// The settings as received (now applied).
    pub settings: Settings,
}

/// The outcome of [`Cluster::handle_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVerdict {
    /// Verified, addressed here, fresh, within the local bounds: applied.
    Accepted(AcceptedConfig),
    /// Verified but addressed elsewhere, or a duplicate: nothing to do.
    Ignored(IgnoreReason),
    /// Refused: nothing changed.
    Rejected(RejectReason),
}

/// Counts of [`Cluster::handle`] and [`Cluster::handle_config`] outcomes,
/// by reason (saturating), as the cluster report carries them.
pub use crate::wire::cluster_report::MessageCounters as Counters;

impl Counters {
    fn count(&mut self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Accepted => &mut self.accepted,
            Outcome::Ignored(IgnoreReason::OtherBranch) => &mut self.ignored_other_branch,
            Outcome::Ignored(IgnoreReason::OtherSite) => &mut self.ignored_other_site,
            Outcome::Ignored(IgnoreReason::Duplicate) => &mut self.duplicate,
            Outcome::Rejected(r) => match r {
                RejectReason::Malformed(_) => &mut self.malformed,
                RejectReason::UnknownKey => &mut self.unknown_key,
                RejectReason::BadSignature => &mut self.bad_signature,
                RejectReason::Replayed => &mut self.replayed,
                RejectReason::Expired => &mut self.expired,
                RejectReason::NotYetValid => &mut self.not_yet_valid,
                RejectReason::OutOfEnvelope => &mut self.out_of_envelope,
                RejectReason::NotParticipating => &mut self.not_participating,
            },
        };
        *c = c.saturating_add(1);
    }
}

/// A verdict without its payload, for counting.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Accepted,
    Ignored(IgnoreReason),
    Rejected(RejectReason),
}

/// What the checks shared by every signed message concluded.
enum Screened {
    /// Verified, addressed here, fresh, in time and within the validity
    /// bound: the caller checks its own content, then records it.
    Fresh {
        key_index: usize,
    },
    Ignored(IgnoreReason),
    Rejected(RejectReason),
}

/// Limits from the rest of the controller that bound the dispatch share now
/// (protection limits, reserve state of charge): magnitudes in W, >= 0.
/// NaN, infinite or negative values are treated as 0 (no power that way).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerLimits {
    /// Largest discharge power allowed now, W.
    pub max_discharge_w: f32,
    /// Largest charge power allowed now, W.
    pub max_charge_w: f32,
}

/// Why [`Cluster::update`] asks what it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterReason {
    /// No dispatch in force.
    Idle,
    /// A Sink/Source is accepted but its randomised start delay has not
    /// passed: the assembly holds at "no dispatch".
    StartDelay,
    /// Following the dispatch in force at its requested power.
    Following,
    /// Following the dispatch in force, clipped by the limits passed in
    /// (protection, reserve) or the envelope.
    Clipped,
    /// The dispatch in force ended at its `until` (reported once).
    Expired,
    /// The dispatch in force was cancelled by the server (reported once).
    Cancelled,
    /// The controller withdrew from the dispatch in force with
    /// [`Cluster::withdraw`], or the server opted the assembly out
    /// (reported once).
    Withdrawn,
    /// The server has been silent longer than
    /// [`ClusterConfig::server_silence_s`]: any dispatch in force is
    /// withdrawn and the assembly runs in local operation (reported once,
    /// when the silence starts).
    ServerSilent,
}

/// What cluster participation asks of the battery now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterCommand {
    /// Battery power share, W: + discharge (source), − charge (sink).
    /// `None` when no dispatch is being followed (other functions decide).
    pub battery_power_w: Option<f32>,
    /// When the dispatch in force ends (monotonic), if any.
    pub until: Option<Millis>,
    pub reason: ClusterReason,
    /// The dispatch in force (key index, sequence, requirement) for the log,
    /// also while it waits out its start delay.
    pub dispatch: Option<ActiveDispatch>,
}

/// SplitMix64 (Steele, Lea, Flood 2014; the finaliser of Java's
/// `SplittableRandom`): `z = x + 0x9E3779B97F4A7C15`, then
/// `z = (z ^ z>>30) * 0xBF58476D1CE4E5B9`, `z = (z ^ z>>27) * 0x94D049BB133111EB`,
/// `z ^ z>>31`, all wrapping on 64 bits.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The randomised start delay of the Sink/Source with `sequence` on the
/// assembly of `site_id`, s, within `0..=max_s`:
/// `splitmix64(splitmix64(site_id) ^ sequence) % (max_s + 1)`.
/// Deterministic, so the server (and tests) can predict each assembly's
/// switch-on; spread across the sites of a branch, so they do not switch
/// together. 0 when `max_s` is 0.
pub const fn start_delay_s(site_id: u32, sequence: u64, max_s: u32) -> u32 {
    if max_s == 0 {
        return 0;
    }
    let h = splitmix64(splitmix64(site_id as u64) ^ sequence);
    (h % (max_s as u64 + 1)) as u32
}

/// Cluster participation: checks dispatch, heartbeat and configuration
/// messages, keeps the dispatch in force and the remote settings, watches
/// the server's liveness.
#[derive(Debug, Clone)]
pub struct Cluster {
    config: ClusterConfig,
    keys: heapless::Vec<VerifyingKey, MAX_KEYS>,
    /// Last accepted sequence per trusted key (same index).
    last_sequence: [Option<u64>; MAX_KEYS],
    /// Signature of the last accepted message per trusted key (same index),
    /// to tell a byte-identical redelivery from a replay.
    last_signature: [[u8; SIGNATURE_LEN]; MAX_KEYS],
    active: Option<ActiveDispatch>,
    /// An end to report once in the next `update`.
    pending_end: Option<ClusterReason>,
    counters: Counters,
    /// When a verified, fresh message for this branch last arrived.
    heard_at: Option<Millis>,
    /// Set by the first accepted heartbeat: from then on the server
    /// promises to be heard every `server_silence_s`.
    liveness_armed: bool,
    /// The current silence has been reported.
    silence_reported: bool,
    remote: RemoteSettings,
}

impl Cluster {
    /// Builds the participant; validates the config (keys must be valid
    /// Ed25519 points).
    // ConfigError is the crate's shared fixed-capacity (no heap) error.
    #[allow(clippy::result_large_err)]
    pub fn new(config: ClusterConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut keys = heapless::Vec::new();
        for k in &config.trusted_keys {
            let v = VerifyingKey::from_bytes(&k.0)
                .map_err(|_| ConfigError::new("trusted_keys", format_args!("invalid key {k:?}")))?;
            keys.push(v)
                .map_err(|_| ConfigError::new("trusted_keys", format_args!("too many keys")))?;
        }
        Ok(Cluster {
            config,
            keys,
            last_sequence: [None; MAX_KEYS],
            last_signature: [[0u8; SIGNATURE_LEN]; MAX_KEYS],
            active: None,
            pending_end: None,
            counters: Counters::default(),
            heard_at: None,
            liveness_armed: false,
            silence_reported: false,
            remote: RemoteSettings::default(),
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Outcome counts since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The dispatch in force, if any (may have passed its `until` if
    /// `update` has not run since; may still be in its start delay).
    pub fn active(&self) -> Option<&ActiveDispatch> {
        self.active.as_ref()
    }

    /// The settings the server has set by configuration messages (`None`
    /// fields: the local configuration applies).
    pub fn remote(&self) -> &RemoteSettings {
        &self.remote
    }

    /// Whether the server counts as silent at `now`: it has sent at least
    /// one accepted heartbeat since start (which arms the watch), and no
    /// verified, fresh message for this branch has arrived for more than
    /// `server_silence_s`. Before the first heartbeat the assembly is never
    /// flagged silent (a server that does not send heartbeats keeps the
    /// version-1 behaviour: dispatches end at their `until`); with no
    /// dispatch in force it runs in local operation anyway.
    pub fn server_silent(&self, now: Millis) -> bool {
        self.liveness_armed
            && self.heard_at.is_some_and(|t| {
                now.since(t) > u64::from(self.config.server_silence_s).saturating_mul(1000)
            })
    }

    /// Last accepted sequence per trusted key (index as in `trusted_keys`),
    /// for the runtime to persist so replay protection survives a reboot.
    /// (A redelivery of the last message after a reboot is then counted as
    /// `Replayed` rather than `Duplicate`: still never executed twice.)
    pub fn sequences(&self) -> [Option<u64>; MAX_KEYS] {
        self.last_sequence
    }

    /// Restores persisted sequences (after a reboot). Only raises: a stored
    /// value lower than the current one is ignored.
    pub fn restore_sequences(&mut self, seqs: [Option<u64>; MAX_KEYS]) {
        for (cur, stored) in self.last_sequence.iter_mut().zip(seqs) {
            *cur = match (*cur, stored) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// The envelope in force: the local one, lowered by remote settings.
    fn max_sink_w(&self) -> f32 {
        let local = self.config.envelope.max_sink_w;
        self.remote.max_sink_w.map_or(local, |w| w.min(local))
    }

    fn max_source_w(&self) -> f32 {
        let local = self.config.envelope.max_source_w;
        self.remote.max_source_w.map_or(local, |w| w.min(local))
    }

    fn start_delay_max_s(&self) -> u32 {
        self.remote
            .start_delay_max_s
            .unwrap_or(self.config.envelope.start_delay_max_s)
            .min(MAX_START_DELAY_S)
    }

    /// Checks a received command and, if accepted, puts it in force.
    ///
    /// `now` is the monotonic time; `utc_s` the UTC seconds the controller
    /// has from the uplink or meter (0 if unknown: every command is then
    /// `NotYetValid`). Checks, in order: structure (`Malformed`), key
    /// (`UnknownKey`), signature (`BadSignature`), addressing (`Ignored`),
    /// duplicate (`Ignored(Duplicate)`), sequence (`Replayed`), time
    /// (`NotYetValid`, `Expired`), envelope (`OutOfEnvelope`), participation
    /// (`NotParticipating`). Every outcome is counted. Only an accepted
    /// command changes the dispatch state; a verified, fresh message for
    /// this branch refreshes the server's liveness.
    pub fn handle(
        &mut self,
        now: Millis,
        utc_s: u64,
        bytes: &[u8],
        ctx: DispatchContext,
    ) -> Verdict {
        self.handle_with(now, utc_s, bytes, ctx, &mut StrictCheck)
    }

    /// [`Cluster::handle`] with the signature checked by `signatures`.
    pub fn handle_with(
        &mut self,
        now: Millis,
        utc_s: u64,
        bytes: &[u8],
        ctx: DispatchContext,
        signatures: &mut dyn SignatureCheck,
    ) -> Verdict {
        let v = self.check(now, utc_s, bytes, ctx, signatures);
        self.counters.count(match v {
            Verdict::Accepted(_) => Outcome::Accepted,
            Verdict::Ignored(r) => Outcome::Ignored(r),
            Verdict::Rejected(r) => Outcome::Rejected(r),
        });
        v
    }

    /// The checks every signed message shares (key, signature, addressing,
    /// duplicate, replay, time, validity bound) on a frame its parser
    /// accepted. Refreshes liveness for a verified, fresh, in-time message
    /// for this branch.
    fn screen(
        &mut self,
        now: Millis,
        utc_s: u64,
        frame: &SignedFrame<'_>,
        signatures: &mut dyn SignatureCheck,
    ) -> Screened {
        use RejectReason::*;
        let h = match Header::parse(frame) {
            Ok(h) => h,
            Err(e) => return Screened::Rejected(Malformed(e)),
        };
        let signature = frame.signature();
        let Some(key_index) = self.keys.iter().position(|k| k.as_bytes() == &h.key) else {
            return Screened::Rejected(UnknownKey);
        };
        let Some(key) = self.keys.get(key_index) else {
            return Screened::Rejected(UnknownKey);
        };
        let sig = Signature::from_bytes(signature);
        if !signatures.verify(key, frame.signed_bytes(), &sig) {
            return Screened::Rejected(BadSignature);
        }
        if h.branch_id != self.config.branch_id {
            return Screened::Ignored(IgnoreReason::OtherBranch);
        }
        let skew = self.config.envelope.max_clock_skew_s;
        let max_validity_s = self.config.envelope.max_validity_s;
        let not_yet_valid = h.issued_at_s > utc_s.saturating_add(skew);
        let expired = utc_s > h.expires_at_s.saturating_add(skew);
        let in_time = !not_yet_valid && !expired;
        if h.site_id != ALL_SITES && h.site_id != self.config.site_id {
            if in_time {
                self.hear(now);
            }
            return Screened::Ignored(IgnoreReason::OtherSite);
        }
        let last = self.last_sequence.get(key_index).copied().flatten();
        let last_sig = self.last_signature.get(key_index);
        if last == Some(h.sequence) && last_sig == Some(signature) {
            // A captured duplicate keeps the server "alive" no longer than
            // its own validity.
            if in_time {
                self.hear(now);
            }
            return Screened::Ignored(IgnoreReason::Duplicate);
        }
        if last.is_some_and(|l| h.sequence <= l) {
            return Screened::Rejected(Replayed);
        }
        if not_yet_valid {
            return Screened::Rejected(NotYetValid);
        }
        if expired {
            return Screened::Rejected(Expired);
        }
        self.hear(now);
        if h.expires_at_s.saturating_sub(h.issued_at_s) > max_validity_s {
            return Screened::Rejected(OutOfEnvelope);
        }
        Screened::Fresh { key_index }
    }

    fn hear(&mut self, now: Millis) {
        self.heard_at = Some(now);
        self.silence_reported = false;
    }

    /// Records an accepted message's sequence and signature for its key.
    fn record(&mut self, key_index: usize, sequence: u64, signature: &[u8; SIGNATURE_LEN]) {
        if let Some(slot) = self.last_sequence.get_mut(key_index) {
            *slot = Some(sequence);
        }
        if let Some(slot) = self.last_signature.get_mut(key_index) {
            *slot = *signature;
        }
    }

    fn check(
        &mut self,
        now: Millis,
        utc_s: u64,
        bytes: &[u8],
        ctx: DispatchContext,
        signatures: &mut dyn SignatureCheck,
    ) -> Verdict {
        use RejectReason::*;
        let parsed = dispatch::checked_frame(bytes)
            .and_then(|frame| Dispatch::parse(&frame).map(|d| (frame, d)));
        let (frame, d) = match parsed {
            Ok(p) => p,
            Err(e) => return Verdict::Rejected(Malformed(e)),
        };
        let key_index = match self.screen(now, utc_s, &frame, signatures) {
            Screened::Fresh { key_index } => key_index,
            Screened::Ignored(r) => return Verdict::Ignored(r),
            Screened::Rejected(r) => return Verdict::Rejected(r),
        };
        let (start_at, until) = match self.action_window(now, utc_s, &d) {
            Ok(window) => window,
            Err(r) => return Verdict::Rejected(r),
        };
        // A Cancel is the safe side and a Heartbeat only liveness: both are
        // accepted even when not participating.
        let acts = matches!(d.command, Command::Sink { .. } | Command::Source { .. });
        if acts && !(ctx.participating && self.remote.participating) {
            return Verdict::Rejected(NotParticipating);
        }
        self.record(key_index, d.sequence, frame.signature());
        let accepted = ActiveDispatch {
            key_index: key_index as u8,
            sequence: d.sequence,
            command: d.command,
            requirement: d.requirement,
            accepted_at: now,
            start_at,
            until,
        };
        self.put_in_force(accepted);
        Verdict::Accepted(accepted)
    }

    /// When a command that passed the shared checks starts and ends being
    /// followed (monotonic): for a Sink/Source within the envelope, what
    /// remains of its action window `[issued_at, issued_at + duration]`
    /// (server clock) mapped onto ours, from [`Cluster::start_at`];
    /// `(now, now)` for a Cancel or Heartbeat. `OutOfEnvelope` for a power
    /// above the envelope in force or a duration outside `1..=max`,
    /// `Expired` when nothing of the window remains.
    fn action_window(
        &self,
        now: Millis,
        utc_s: u64,
        d: &Dispatch,
    ) -> Result<(Millis, Millis), RejectReason> {
        let (power_w, duration_s, max_w) = match d.command {
            Command::Sink {
                power_w,
                duration_s,
            } => (power_w, duration_s, self.max_sink_w()),
            Command::Source {
                power_w,
                duration_s,
            } => (power_w, duration_s, self.max_source_w()),
            Command::Cancel | Command::Heartbeat => return Ok((now, now)),
        };
        if power_w as f32 > max_w
            || duration_s == 0
            || duration_s > self.config.envelope.max_duration_s
        {
            return Err(RejectReason::OutOfEnvelope);
        }
        let end_s = d.issued_at_s.saturating_add(u64::from(duration_s));
        let remaining_s = end_s.saturating_sub(utc_s).min(u64::from(duration_s));
        if remaining_s == 0 {
            return Err(RejectReason::Expired);
        }
        let until = now.plus_ms(remaining_s.saturating_mul(1000));
        Ok((self.start_at(now, d.sequence), until))
    }

    /// When an accepted Sink/Source with `sequence` starts being followed:
    /// a Sink/Source still in force is replaced without a new delay (a
    /// change of level, not a switch-on); otherwise after the randomised
    /// start delay.
    fn start_at(&self, now: Millis, sequence: u64) -> Millis {
        match self.active {
            Some(a)
                if a.until > now
                    && matches!(a.command, Command::Sink { .. } | Command::Source { .. }) =>
            {
                a.start_at
            }
            _ => {
                let delay_s =
                    start_delay_s(self.config.site_id, sequence, self.start_delay_max_s());
                now.plus_ms(u64::from(delay_s) * 1000)
            }
        }
    }

    /// Acts on an accepted command: a Sink/Source goes in force, a Cancel
    /// ends the dispatch in force, a Heartbeat arms the silence watch.
    fn put_in_force(&mut self, accepted: ActiveDispatch) {
        match accepted.command {
            Command::Cancel => {
                if self.active.take().is_some() {
                    self.pending_end = Some(ClusterReason::Cancelled);
                }
            }
            Command::Heartbeat => {
                self.liveness_armed = true;
                self.counters.accepted_heartbeat =
                    self.counters.accepted_heartbeat.saturating_add(1);
            }
            Command::Sink { .. } | Command::Source { .. } => {
                self.active = Some(accepted);
                self.pending_end = None;
            }
        }
    }

    /// Checks a received configuration message
    /// (`firmware/docs/config-message.md`) and, if accepted, applies its
    /// settings. Checks, in order: structure (`Malformed`), key, signature,
    /// addressing, duplicate, sequence (shared with dispatch: one sequence
    /// space per key), time, validity bound, then each setting against the
    /// local bounds (`OutOfEnvelope`): reserve within
    /// `[cluster.remote_config]`, export limit at most `export_limit_w_max`,
    /// sink/source powers at most the local envelope, start delay at most
    /// [`MAX_START_DELAY_S`]. Every outcome is counted with the dispatch
    /// counters. An opt-out (`participating = false`) withdraws the
    /// dispatch in force.
    pub fn handle_config(&mut self, now: Millis, utc_s: u64, bytes: &[u8]) -> ConfigVerdict {
        self.handle_config_with(now, utc_s, bytes, &mut StrictCheck)
    }

    /// [`Cluster::handle_config`] with the signature checked by `signatures`.
    pub fn handle_config_with(
        &mut self,
        now: Millis,
        utc_s: u64,
        bytes: &[u8],
        signatures: &mut dyn SignatureCheck,
    ) -> ConfigVerdict {
        let v = self.check_config(now, utc_s, bytes, signatures);
        self.counters.count(match v {
            ConfigVerdict::Accepted(_) => Outcome::Accepted,
            ConfigVerdict::Ignored(r) => Outcome::Ignored(r),
            ConfigVerdict::Rejected(r) => Outcome::Rejected(r),
        });
        if matches!(v, ConfigVerdict::Accepted(_)) {
            self.counters.accepted_config = self.counters.accepted_config.saturating_add(1);
        }
        v
    }

    fn check_config(
        &mut self,
        now: Millis,
        utc_s: u64,
        bytes: &[u8],
        signatures: &mut dyn SignatureCheck,
    ) -> ConfigVerdict {
        let parsed = config_message::checked_frame(bytes)
            .and_then(|frame| ConfigMessage::parse(&frame).map(|m| (frame, m)));
        let (frame, m) = match parsed {
            Ok(p) => p,
            Err(e) => return ConfigVerdict::Rejected(RejectReason::Malformed(e)),
        };
        let key_index = match self.screen(now, utc_s, &frame, signatures) {
            Screened::Fresh { key_index } => key_index,
            Screened::Ignored(r) => return ConfigVerdict::Ignored(r),
            Screened::Rejected(r) => return ConfigVerdict::Rejected(r),
        };
        let within_bounds = self.config.remote_config.admits(&m.settings)
            && self.config.envelope.admits(&m.settings);
        if !within_bounds {
            return ConfigVerdict::Rejected(RejectReason::OutOfEnvelope);
        }
        self.record(key_index, m.sequence, frame.signature());
        self.remote.apply(&m.settings);
        if !self.remote.participating {
            self.withdraw();
        }
        ConfigVerdict::Accepted(AcceptedConfig {
            key_index: key_index as u8,
            sequence: m.sequence,
            settings: m.settings,
        })
    }

    /// Ends the dispatch in force, if any, on the controller's decision (the
    /// assembly islanded in a power cut, owner opt-out). The next `update`
    /// reports [`ClusterReason::Withdrawn`]. The sequence state is kept.
    pub fn withdraw(&mut self) {
        if self.active.take().is_some() {
            self.pending_end = Some(ClusterReason::Withdrawn);
        }
    }

    /// What the battery should do now for the cluster: the dispatch in force,
    /// clipped to the envelope and to `limits`; `None` power when no dispatch
    /// is being followed (none in force, or in its start delay). Ends the
    /// dispatch at its `until`, or when the server has gone silent.
    pub fn update(&mut self, now: Millis, limits: PowerLimits) -> ClusterCommand {
        if self.server_silent(now) && !self.silence_reported {
            self.silence_reported = true;
            self.active = None;
            self.pending_end = Some(ClusterReason::ServerSilent);
        }
        if let Some(a) = self.active {
            if now >= a.until {
                self.active = None;
                self.pending_end = Some(ClusterReason::Expired);
            }
        }
        let Some(a) = self.active else {
            let reason = self.pending_end.take().unwrap_or(ClusterReason::Idle);
            return ClusterCommand {
                battery_power_w: None,
                until: None,
                reason,
                dispatch: None,
            };
        };
        if a.start_at > a.accepted_at && now < a.start_at {
            return ClusterCommand {
                battery_power_w: None,
                until: Some(a.until),
                reason: ClusterReason::StartDelay,
                dispatch: Some(a),
            };
        }
        let clean = |w: f32| if w.is_finite() && w > 0.0 { w } else { 0.0 };
        let (requested, bound) = match a.command {
            Command::Source { power_w, .. } => (
                power_w as f32,
                clean(limits.max_discharge_w).min(clean(self.max_source_w())),
            ),
            Command::Sink { power_w, .. } => (
                power_w as f32,
                clean(limits.max_charge_w).min(clean(self.max_sink_w())),
            ),
            Command::Cancel | Command::Heartbeat => (0.0, 0.0),
        };
        let (magnitude, reason) = if requested > bound {
            (bound, ClusterReason::Clipped)
        } else {
            (requested, ClusterReason::Following)
        };
        let power = match a.command {
            Command::Sink { .. } => -magnitude,
            _ => magnitude,
        };
        ClusterCommand {
            battery_power_w: Some(power),
            until: Some(a.until),
            reason,
            dispatch: Some(a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dispatch::tests::{dispatch, heartbeat, source};
    use crate::wire::dispatch::{encode, SIGNED_LEN, VERSION, WIRE_LEN};
    use crate::wire::signed;
    use crate::wire::signed::tests::{from_hex, other_server, server, NOW_UTC};
    use proptest::prelude::*;

    fn config() -> ClusterConfig {
        let mut keys = heapless::Vec::new();
        keys.push(PublicKeyHex(server().verifying_key().to_bytes()))
            .unwrap();
        ClusterConfig {
            site_id: 1042,
            branch_id: 17,
            trusted_keys: keys,
            envelope: Envelope::default(),
            server_silence_s: 180,
            remote_config: RemoteConfigBounds::default(),
        }
    }

    fn cluster() -> Cluster {
        Cluster::new(config()).unwrap()
    }

    const CTX: DispatchContext = DispatchContext {
        participating: true,
    };
    const LIMITS: PowerLimits = PowerLimits {
        max_discharge_w: 5000.0,
        max_charge_w: 5000.0,
    };

    fn handle(c: &mut Cluster, d: &Dispatch) -> Verdict {
        c.handle(Millis(1000), NOW_UTC, &encode(d, &server()), CTX)
    }

    /// A check that answers as told and counts its calls.
    struct Told(bool, u32);
    impl SignatureCheck for Told {
        fn verify(&mut self, _: &VerifyingKey, _: &[u8], _: &Signature) -> bool {
            self.1 += 1;
            self.0
        }
    }

    #[test]
    fn the_signature_step_is_the_checks_and_only_that_step() {
        let d = source(1, 500, 600);
        // A genuine message the check refuses is a bad signature.
        let mut c = cluster();
        let mut refuse = Told(false, 0);
        let v = c.handle_with(
            Millis(1000),
            NOW_UTC,
            &encode(&d, &server()),
            CTX,
            &mut refuse,
        );
        assert_eq!(rejected(v), RejectReason::BadSignature);
        assert_eq!(refuse.1, 1);
        // Every other check still runs: the same message for another
        // branch is ignored, a replay rejected, whatever the check says.
        let mut accept = Told(true, 0);
        let v = c.handle_with(
            Millis(1000),
            NOW_UTC,
            &encode(&d, &server()),
            CTX,
            &mut accept,
        );
        assert!(matches!(v, Verdict::Accepted(_)), "{v:?}");
        let mut other = d;
        other.branch_id = 18;
        let v = c.handle_with(
            Millis(1000),
            NOW_UTC,
            &encode(&other, &server()),
            CTX,
            &mut accept,
        );
        assert_eq!(v, Verdict::Ignored(IgnoreReason::OtherBranch));
        let v = c.handle_with(
            Millis(1000),
            NOW_UTC,
            &encode(&source(1, 400, 600), &server()),
            CTX,
            &mut accept,
        );
        assert_eq!(rejected(v), RejectReason::Replayed);
        assert_eq!(accept.1, 3);
        // The board's check is verify_strict: a flipped signature bit fails.
        let mut tampered = encode(&source(2, 500, 600), &server());
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let v = c.handle_with(Millis(1000), NOW_UTC, &tampered, CTX, &mut StrictCheck);
        assert_eq!(rejected(v), RejectReason::BadSignature);
    }

    fn rejected(v: Verdict) -> RejectReason {
        match v {
            Verdict::Rejected(r) => r,
            other => panic!("expected rejection, got {other:?}"),
        }
    }

    /// The vector in docs/dispatch.md (its layout is checked in
    /// `wire::dispatch`) is accepted ten seconds after its issue.
    #[test]
    fn the_documented_vector_is_accepted() {
        let expected = from_hex(crate::wire::dispatch::tests::SOURCE_VECTOR_HEX);
        let mut c = cluster();
        let v = c.handle(Millis(0), 1_790_000_010, &expected, CTX);
        assert!(matches!(v, Verdict::Accepted(_)), "{v:?}");
    }

    #[test]
    fn accepted_for_own_branch_and_followed() {
        let mut c = cluster();
        let v = handle(&mut c, &source(1, 2000, 600));
        let Verdict::Accepted(a) = v else {
            panic!("{v:?}")
        };
        assert_eq!(a.until, Millis(1000 + 600_000));
        let cmd = c.update(Millis(2000), LIMITS);
        assert_eq!(cmd.battery_power_w, Some(2000.0));
        assert_eq!(cmd.reason, ClusterReason::Following);
        assert_eq!(cmd.until, Some(Millis(601_000)));
        // Sink is negative (charge).
        let v = handle(
            &mut c,
            &dispatch(
                2,
                Command::Sink {
                    power_w: 1500,
                    duration_s: 60,
                },
            ),
        );
        assert!(matches!(v, Verdict::Accepted(_)));
        assert_eq!(
            c.update(Millis(3000), LIMITS).battery_power_w,
            Some(-1500.0)
        );
        assert_eq!(c.counters().accepted, 2);
    }

    #[test]
    fn addressed_to_own_site_accepted_other_site_ignored() {
        let mut c = cluster();
        let mut d = source(1, 1000, 60);
        d.site_id = 1042;
        assert!(matches!(handle(&mut c, &d), Verdict::Accepted(_)));
        d.sequence = 2;
        d.site_id = 1043;
        assert_eq!(
            handle(&mut c, &d),
            Verdict::Ignored(IgnoreReason::OtherSite)
        );
        assert_eq!(c.counters().ignored_other_site, 1);
    }

    #[test]
    fn other_branch_ignored_and_not_acted_on() {
        let mut c = cluster();
        let mut d = source(1, 1000, 60);
        d.branch_id = 18;
        assert_eq!(
            handle(&mut c, &d),
            Verdict::Ignored(IgnoreReason::OtherBranch)
        );
        assert_eq!(c.counters().ignored_other_branch, 1);
        let cmd = c.update(Millis(2000), LIMITS);
        assert_eq!(cmd.battery_power_w, None);
        assert_eq!(cmd.reason, ClusterReason::Idle);
        // Ignoring did not consume the sequence.
        d.branch_id = 17;
        assert!(matches!(handle(&mut c, &d), Verdict::Accepted(_)));
    }

    #[test]
    fn unsigned_or_garbled_signature_rejected() {
        let mut c = cluster();
        let mut bytes = encode(&source(1, 1000, 60), &server());
        // Unsigned: zero signature.
        for b in &mut bytes[SIGNED_LEN..] {
            *b = 0;
        }
        let v = c.handle(Millis(0), NOW_UTC, &bytes, CTX);
        assert_eq!(rejected(v), RejectReason::BadSignature);
        // Garbled signature.
        let mut bytes = encode(&source(1, 1000, 60), &server());
        bytes[100] ^= 0x40;
        let v = c.handle(Millis(0), NOW_UTC, &bytes, CTX);
        assert_eq!(rejected(v), RejectReason::BadSignature);
        // Content changed after signing.
        let mut bytes = encode(&source(1, 1000, 60), &server());
        bytes[dispatch::field::POWER.start + 2] ^= 0x01;
        let v = c.handle(Millis(0), NOW_UTC, &bytes, CTX);
        assert_eq!(rejected(v), RejectReason::BadSignature);
        // Signed by another key but claiming the trusted one.
        let mut forged = encode(&source(1, 1000, 60), &other_server());
        forged[signed::field::KEY].copy_from_slice(server().verifying_key().as_bytes());
        let v = c.handle(Millis(0), NOW_UTC, &forged, CTX);
        assert_eq!(rejected(v), RejectReason::BadSignature);
        assert_eq!(c.counters().bad_signature, 4);
        assert!(c.active().is_none());
    }

    #[test]
    fn wrong_key_rejected() {
        let mut c = cluster();
        let bytes = encode(&source(1, 1000, 60), &other_server());
        let v = c.handle(Millis(0), NOW_UTC, &bytes, CTX);
        assert_eq!(rejected(v), RejectReason::UnknownKey);
        assert_eq!(c.counters().unknown_key, 1);
    }

    #[test]
    fn replayed_same_or_lower_sequence_rejected() {
        let mut c = cluster();
        assert!(matches!(
            handle(&mut c, &source(10, 1000, 60)),
            Verdict::Accepted(_)
        ));
        // The same bytes again: a duplicate, acknowledged, not executed.
        assert_eq!(
            handle(&mut c, &source(10, 1000, 60)),
            Verdict::Ignored(IgnoreReason::Duplicate)
        );
        // The same sequence with other content: a replay.
        assert_eq!(
            rejected(handle(&mut c, &source(10, 1001, 60))),
            RejectReason::Replayed
        );
        assert_eq!(
            rejected(handle(&mut c, &source(9, 1000, 60))),
            RejectReason::Replayed
        );
        assert!(matches!(
            handle(&mut c, &source(11, 1000, 60)),
            Verdict::Accepted(_)
        ));
        assert_eq!(c.counters().replayed, 2);
        assert_eq!(c.counters().duplicate, 1);
        assert_eq!(c.counters().accepted, 2);
    }

    #[test]
    fn sequences_are_per_key_and_survive_restore() {
        let mut cfg = config();
        cfg.trusted_keys
            .push(PublicKeyHex(other_server().verifying_key().to_bytes()))
            .unwrap();
        let mut c = Cluster::new(cfg.clone()).unwrap();
        let d = source(10, 1000, 60);
        assert!(matches!(handle(&mut c, &d), Verdict::Accepted(_)));
        // The other key has its own sequence space.
        let v = c.handle(
            Millis(0),
            NOW_UTC,
            &encode(&source(3, 500, 60), &other_server()),
            CTX,
        );
        let Verdict::Accepted(a) = v else {
            panic!("{v:?}")
        };
        assert_eq!(a.key_index, 1);
        assert_eq!(c.sequences(), [Some(10), Some(3), None, None]);
        // After a reboot, restored state still refuses the replay.
        let mut rebooted = Cluster::new(cfg).unwrap();
        rebooted.restore_sequences(c.sequences());
        assert_eq!(rejected(handle(&mut rebooted, &d)), RejectReason::Replayed);
    }

    #[test]
    fn expired_rejected() {
        let mut c = cluster();
        let mut d = source(1, 1000, 60);
        d.issued_at_s = NOW_UTC - 400;
        d.expires_at_s = NOW_UTC - 31; // beyond 30 s skew
        assert_eq!(rejected(handle(&mut c, &d)), RejectReason::Expired);
        // Within the skew of its expiry but its action window is over.
        d.sequence = 2;
        d.expires_at_s = NOW_UTC - 10;
        assert_eq!(rejected(handle(&mut c, &d)), RejectReason::Expired);
        // Within skew and window still open: accepted, for what remains.
        d.sequence = 3;
        d.command = Command::Source {
            power_w: 1000,
            duration_s: 600,
        };
        let Verdict::Accepted(a) = handle(&mut c, &d) else {
            panic!()
        };
        assert_eq!(a.until, Millis(1000 + 200_000));
        assert_eq!(c.counters().expired, 2);
    }

    #[test]
    fn not_yet_valid_beyond_skew_rejected() {
        let mut c = cluster();
        let mut d = source(1, 1000, 60);
        d.issued_at_s = NOW_UTC + 31;
        d.expires_at_s = NOW_UTC + 300;
        assert_eq!(rejected(handle(&mut c, &d)), RejectReason::NotYetValid);
        // Within skew: accepted, runs its full duration at most.
        d.issued_at_s = NOW_UTC + 20;
        let Verdict::Accepted(a) = handle(&mut c, &d) else {
            panic!()
        };
        assert_eq!(a.until, Millis(1000 + 60_000));
        // Unknown UTC (0): not yet valid.
        let v = c.handle(Millis(0), 0, &encode(&source(5, 1, 60), &server()), CTX);
        assert_eq!(rejected(v), RejectReason::NotYetValid);
        assert_eq!(c.counters().not_yet_valid, 2);
    }

    #[test]
    fn out_of_envelope_rejected() {
        let mut c = cluster();
        let cases = [
            source(1, 3001, 60),
            dispatch(
                2,
                Command::Sink {
                    power_w: 3001,
                    duration_s: 60,
                },
            ),
            source(3, 1000, 4 * 3600 + 1),
            source(4, 1000, 0),
            Dispatch {
                expires_at_s: NOW_UTC + 901,
                ..source(5, 1000, 60)
            },
        ];
        for d in &cases {
            assert_eq!(rejected(handle(&mut c, d)), RejectReason::OutOfEnvelope);
        }
        assert_eq!(c.counters().out_of_envelope, 5);
        assert_eq!(c.counters().rejected(), 5);
        assert!(c.active().is_none());
        // Rejections did not consume sequences.
        assert!(matches!(
            handle(&mut c, &source(1, 3000, 60)),
            Verdict::Accepted(_)
        ));
    }

    #[test]
    fn not_participating_rejected() {
        let mut c = cluster();
        let bytes = encode(&source(1, 1000, 60), &server());
        let off = DispatchContext {
            participating: false,
        };
        let v = c.handle(Millis(0), NOW_UTC, &bytes, off);
        assert_eq!(rejected(v), RejectReason::NotParticipating);
        assert!(matches!(
            c.handle(Millis(0), NOW_UTC, &bytes, CTX),
            Verdict::Accepted(_)
        ));
        // The controller withdraws; a Cancel is accepted even when not
        // participating.
        c.withdraw();
        assert_eq!(
            c.update(Millis(10), LIMITS).reason,
            ClusterReason::Withdrawn
        );
        assert_eq!(c.update(Millis(20), LIMITS).reason, ClusterReason::Idle);
        let cancel = encode(&dispatch(2, Command::Cancel), &server());
        let v = c.handle(Millis(30), NOW_UTC, &cancel, off);
        assert!(matches!(v, Verdict::Accepted(_)), "{v:?}");
        assert_eq!(c.counters().not_participating, 1);
    }

    #[test]
    fn malformed_bytes_rejected() {
        let mut c = cluster();
        let good = encode(&source(1, 1000, 60), &server());
        let mut long = [0u8; WIRE_LEN + 1];
        long[..WIRE_LEN].copy_from_slice(&good);
        let mut bad_version = good.clone();
        bad_version[0] = 2;
        let mut bad_kind = good.clone();
        bad_kind[1] = 9;
        let mut bad_req = good.clone();
        bad_req[2] = 77;
        let mut reserved = good.clone();
        reserved[3] = 1;
        let cancel_with_power = {
            let mut b = encode(&dispatch(1, Command::Cancel), &server());
            b[dispatch::field::POWER.start + 3] = 1;
            b
        };
        let cases: [(&[u8], ParseError); 9] = [
            (&[], ParseError::Empty),
            (&good[..WIRE_LEN - 1], ParseError::Truncated { len: 143 }),
            (&good[..1], ParseError::Truncated { len: 1 }),
            (&long, ParseError::TrailingBytes { len: 145 }),
            (b"hello, branch 17!", ParseError::UnsupportedVersion(b'h')),
            (&bad_version, ParseError::UnsupportedVersion(2)),
            (&bad_kind, ParseError::UnknownKind(9)),
            (&bad_req, ParseError::UnknownRequirement(77)),
            (&reserved, ParseError::ReservedNotZero),
        ];
        for (bytes, err) in cases {
            let v = c.handle(Millis(0), NOW_UTC, bytes, CTX);
            assert_eq!(rejected(v), RejectReason::Malformed(err));
        }
        let v = c.handle(Millis(0), NOW_UTC, &cancel_with_power, CTX);
        assert_eq!(
            rejected(v),
            RejectReason::Malformed(ParseError::Inconsistent)
        );
        let bad_validity = Dispatch {
            expires_at_s: NOW_UTC,
            ..source(1, 1000, 60)
        };
        assert_eq!(
            rejected(handle(&mut c, &bad_validity)),
            RejectReason::Malformed(ParseError::BadValidity)
        );
        assert_eq!(c.counters().malformed, 11);
        assert_eq!(c.counters().rejected(), 11);
    }

    #[test]
    fn dispatch_expires_at_its_end() {
        let mut c = cluster();
        handle(&mut c, &source(1, 1000, 60));
        assert_eq!(
            c.update(Millis(60_999), LIMITS).battery_power_w,
            Some(1000.0)
        );
        let cmd = c.update(Millis(61_000), LIMITS);
        assert_eq!(cmd.battery_power_w, None);
        assert_eq!(cmd.reason, ClusterReason::Expired);
        assert_eq!(c.update(Millis(62_000), LIMITS).reason, ClusterReason::Idle);
    }

    #[test]
    fn cancel_clears() {
        let mut c = cluster();
        handle(&mut c, &source(1, 1000, 600));
        assert!(matches!(
            handle(&mut c, &dispatch(2, Command::Cancel)),
            Verdict::Accepted(_)
        ));
        let cmd = c.update(Millis(2000), LIMITS);
        assert_eq!(cmd.battery_power_w, None);
        assert_eq!(cmd.reason, ClusterReason::Cancelled);
        assert_eq!(c.update(Millis(3000), LIMITS).reason, ClusterReason::Idle);
    }

    #[test]
    fn clipped_by_limits_and_bad_limits_drive_zero() {
        let mut c = cluster();
        handle(&mut c, &source(1, 2500, 600));
        let cmd = c.update(
            Millis(2000),
            PowerLimits {
                max_discharge_w: 1200.0,
                max_charge_w: 5000.0,
            },
        );
        assert_eq!(cmd.battery_power_w, Some(1200.0));
        assert_eq!(cmd.reason, ClusterReason::Clipped);
        for bad in [f32::NAN, f32::INFINITY, -5.0] {
            let cmd = c.update(
                Millis(2000),
                PowerLimits {
                    max_discharge_w: bad,
                    max_charge_w: bad,
                },
            );
            assert_eq!(cmd.battery_power_w, Some(0.0));
            assert_eq!(cmd.reason, ClusterReason::Clipped);
        }
    }

    #[test]
    fn config_from_toml_and_validation() {
        let hex = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
        let text = format!(
            "site_id = 1042\nbranch_id = 17\ntrusted_keys = [\"{hex}\"]\n\
             [envelope]\nmax_sink_w = 2000.0\nmax_clock_skew_s = 10\n"
        );
        let cfg: ClusterConfig = toml::from_str(&text).unwrap();
        assert_eq!(cfg.envelope.max_sink_w, 2000.0);
        assert_eq!(cfg.envelope.max_source_w, 3000.0);
        assert_eq!(format!("{:?}", cfg.trusted_keys[0]), hex);
        cfg.validate().unwrap();
        assert_eq!(
            PublicKeyHex::from_hex(&hex.to_uppercase()),
            PublicKeyHex::from_hex(hex)
        );
        for bad in [
            &hex[..62],
            "zz4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c",
        ] {
            let text = format!("site_id = 1\nbranch_id = 1\ntrusted_keys = [\"{bad}\"]\n");
            assert!(toml::from_str::<ClusterConfig>(&text).is_err(), "{bad}");
        }
        assert!(toml::from_str::<ClusterConfig>(&format!("{text}bogus = 1\n")).is_err());

        let mut c = config();
        c.branch_id = 0;
        assert_eq!(c.validate().unwrap_err().field.as_str(), "branch_id");
        let mut c = config();
        c.site_id = 0;
        assert_eq!(c.validate().unwrap_err().field.as_str(), "site_id");
        let mut c = config();
        c.trusted_keys.clear();
        assert_eq!(c.validate().unwrap_err().field.as_str(), "trusted_keys");
        let mut c = config();
        c.trusted_keys.push(c.trusted_keys[0]).unwrap();
        assert_eq!(c.validate().unwrap_err().field.as_str(), "trusted_keys");
        let mut c = config();
        c.trusted_keys[0] = PublicKeyHex([0u8; 32]); // weak (small order) key
        assert!(Cluster::new(c).is_err());
        let mut c = config();
        c.envelope.max_source_w = f32::NAN;
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "envelope.max_source_w"
        );
    }

    #[test]
    fn heartbeat_consumes_the_sequence_and_changes_nothing_else() {
        // Accepted: consumes the sequence, leaves the dispatch in force.
        let mut c = cluster();
        handle(&mut c, &source(1, 1000, 600));
        let v = handle(&mut c, &heartbeat(2));
        assert!(matches!(v, Verdict::Accepted(a) if a.command == Command::Heartbeat));
        assert_eq!(c.active().map(|a| a.sequence), Some(1));
        assert_eq!(c.update(Millis(2000), LIMITS).battery_power_w, Some(1000.0));
        assert_eq!(
            rejected(handle(&mut c, &heartbeat(2).clone_with_seq(1))),
            RejectReason::Replayed
        );
        assert_eq!(c.sequences()[0], Some(2));
        // Accepted even when not participating (liveness only).
        let off = DispatchContext {
            participating: false,
        };
        let v = c.handle(
            Millis(1000),
            NOW_UTC,
            &encode(&heartbeat(3), &server()),
            off,
        );
        assert!(matches!(v, Verdict::Accepted(_)), "{v:?}");
        assert_eq!(c.counters().accepted, 3);
        assert_eq!(c.counters().accepted_heartbeat, 2);
    }

    trait WithSeq {
        fn clone_with_seq(&self, seq: u64) -> Dispatch;
    }
    impl WithSeq for Dispatch {
        fn clone_with_seq(&self, seq: u64) -> Dispatch {
            Dispatch {
                sequence: seq,
                ..*self
            }
        }
    }

    #[test]
    fn duplicates_are_acknowledged_never_executed_twice() {
        let mut c = cluster();
        let first = encode(&source(1, 1000, 600), &server());
        assert!(matches!(
            c.handle(Millis(1000), NOW_UTC, &first, CTX),
            Verdict::Accepted(_)
        ));
        let cancel = encode(&dispatch(2, Command::Cancel), &server());
        assert!(matches!(
            c.handle(Millis(2000), NOW_UTC, &cancel, CTX),
            Verdict::Accepted(_)
        ));
        // The cancel redelivered: a duplicate, nothing changes.
        assert_eq!(
            c.handle(Millis(3000), NOW_UTC, &cancel, CTX),
            Verdict::Ignored(IgnoreReason::Duplicate)
        );
        // The first, older, message again: a replay, not a duplicate.
        assert_eq!(
            rejected(c.handle(Millis(3000), NOW_UTC, &first, CTX)),
            RejectReason::Replayed
        );
        assert!(c.active().is_none());
        // A duplicate is recognised even after its expiry (acknowledged).
        let third = encode(&source(3, 1000, 600), &server());
        assert!(matches!(
            c.handle(Millis(4000), NOW_UTC, &third, CTX),
            Verdict::Accepted(_)
        ));
        assert_eq!(
            c.handle(Millis(5000), NOW_UTC + 10_000, &third, CTX),
            Verdict::Ignored(IgnoreReason::Duplicate)
        );
        // The active dispatch was not restarted by the duplicate.
        assert_eq!(c.active().map(|a| a.accepted_at), Some(Millis(4000)));
        let n = c.counters();
        assert_eq!((n.accepted, n.duplicate, n.replayed), (3, 2, 1));
        assert_eq!(n.total(), 6);
    }

    #[test]
    fn no_heartbeat_no_silence_watch() {
        let mut c = cluster();
        handle(&mut c, &source(1, 1000, 3600));
        // A server that sends no heartbeats: the dispatch runs to its end.
        assert!(!c.server_silent(Millis(3_000_000)));
        assert_eq!(
            c.update(Millis(3_000_000), LIMITS).reason,
            ClusterReason::Following
        );
    }

    #[test]
    fn silent_server_withdraws_dispatch_once_and_comes_back() {
        let mut c = cluster();
        handle(&mut c, &heartbeat(1)); // at 1 s: arms the watch
        handle(&mut c, &source(2, 1000, 3600));
        // Silent for exactly 180 s: not yet.
        assert!(!c.server_silent(Millis(181_000)));
        assert_eq!(
            c.update(Millis(181_000), LIMITS).reason,
            ClusterReason::Following
        );
        assert!(c.server_silent(Millis(181_001)));
        let cmd = c.update(Millis(181_001), LIMITS);
        assert_eq!(
            (cmd.battery_power_w, cmd.reason),
            (None, ClusterReason::ServerSilent)
        );
        assert_eq!(
            c.update(Millis(182_000), LIMITS).reason,
            ClusterReason::Idle
        );
        // A replay does not count as the server speaking.
        let old = encode(&source(2, 999, 3600), &server());
        c.handle(Millis(190_000), NOW_UTC, &old, CTX);
        assert!(c.server_silent(Millis(190_000)));
        // A fresh message does; a new dispatch is followed.
        c.handle(
            Millis(200_000),
            NOW_UTC,
            &encode(&heartbeat(3), &server()),
            CTX,
        );
        assert!(!c.server_silent(Millis(200_000)));
        c.handle(
            Millis(200_000),
            NOW_UTC,
            &encode(&source(4, 800, 600), &server()),
            CTX,
        );
        assert_eq!(
            c.update(Millis(201_000), LIMITS).battery_power_w,
            Some(800.0)
        );
        // Silence again: reported again, once.
        assert_eq!(
            c.update(Millis(380_001), LIMITS).reason,
            ClusterReason::ServerSilent
        );
        assert_eq!(
            c.update(Millis(380_002), LIMITS).reason,
            ClusterReason::Idle
        );
    }

    #[test]
    fn other_site_and_in_time_duplicates_keep_the_server_alive() {
        let mut c = cluster();
        handle(&mut c, &heartbeat(1));
        let mut other = heartbeat(2);
        other.site_id = 1043;
        c.handle(Millis(150_000), NOW_UTC, &encode(&other, &server()), CTX);
        assert!(!c.server_silent(Millis(300_000)));
        // The last accepted message, redelivered within its validity.
        c.handle(
            Millis(300_000),
            NOW_UTC,
            &encode(&heartbeat(1), &server()),
            CTX,
        );
        assert!(!c.server_silent(Millis(450_000)));
        // Redelivered after its validity: does not count.
        c.handle(
            Millis(460_000),
            NOW_UTC + 400,
            &encode(&heartbeat(1), &server()),
            CTX,
        );
        assert!(c.server_silent(Millis(480_001)));
    }

    #[test]
    fn start_delay_is_splitmix64_and_predictable() {
        // SplitMix64's well-known first output for seed 0.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        // Computed independently in Python (docs/dispatch.md).
        assert_eq!(start_delay_s(1042, 42, 900), 344);
        assert_eq!(start_delay_s(1042, 43, 900), 492);
        assert_eq!(start_delay_s(1043, 42, 900), 608);
        assert_eq!(start_delay_s(1, 1, 900), 517);
        assert_eq!(start_delay_s(1042, 42, 0), 0);
    }

    #[test]
    fn start_delay_holds_then_follows_and_end_is_unchanged() {
        let mut cfg = config();
        cfg.envelope.start_delay_max_s = 900;
        let mut c = Cluster::new(cfg).unwrap();
        let delay_ms = u64::from(start_delay_s(1042, 42, 900)) * 1000;
        let Verdict::Accepted(a) = handle(&mut c, &source(42, 1000, 1800)) else {
            panic!()
        };
        assert_eq!(a.start_at, Millis(1000 + delay_ms));
        assert_eq!(a.until, Millis(1000 + 1_800_000));
        let cmd = c.update(Millis(1000 + delay_ms - 1), LIMITS);
        assert_eq!(
            (cmd.battery_power_w, cmd.reason),
            (None, ClusterReason::StartDelay)
        );
        assert_eq!(cmd.dispatch.map(|d| d.sequence), Some(42));
        let cmd = c.update(Millis(1000 + delay_ms), LIMITS);
        assert_eq!(
            (cmd.battery_power_w, cmd.reason),
            (Some(1000.0), ClusterReason::Following)
        );
        // A replacement while following: no new delay.
        let Verdict::Accepted(b) = c.handle(
            Millis(1_000_000),
            NOW_UTC,
            &encode(&source(43, 500, 1800), &server()),
            CTX,
        ) else {
            panic!()
        };
        assert_eq!(b.start_at, a.start_at);
        assert_eq!(
            c.update(Millis(1_000_001), LIMITS).battery_power_w,
            Some(500.0)
        );
        // After a cancel, a new dispatch is a switch-on: delayed again.
        handle(&mut c, &dispatch(44, Command::Cancel));
        let Verdict::Accepted(d) = c.handle(
            Millis(2_000_000),
            NOW_UTC,
            &encode(&source(45, 500, 1800), &server()),
            CTX,
        ) else {
            panic!()
        };
        let expected = u64::from(start_delay_s(1042, 45, 900)) * 1000;
        assert_eq!(d.start_at, Millis(2_000_000 + expected));
    }

    #[test]
    fn new_config_fields_are_validated() {
        let mut c = config();
        c.server_silence_s = 9;
        assert_eq!(c.validate().unwrap_err().field.as_str(), "server_silence_s");
        c.server_silence_s = 86_401;
        assert_eq!(c.validate().unwrap_err().field.as_str(), "server_silence_s");
        let mut c = config();
        c.envelope.start_delay_max_s = 901;
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "envelope.start_delay_max_s"
        );
        let mut c = config();
        c.remote_config.reserve_soc_min = 0.9;
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "remote_config.reserve_soc_min"
        );
        let mut c = config();
        c.remote_config.reserve_soc_max = 1.5;
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "remote_config.reserve_soc_max"
        );
        let mut c = config();
        c.remote_config.export_limit_w_max = Some(f32::NAN);
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "remote_config.export_limit_w_max"
        );
        let text = "site_id = 1\nbranch_id = 1\ntrusted_keys = [\"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c\"]\n\
                    server_silence_s = 600\n[envelope]\nstart_delay_max_s = 300\n\
                    [remote_config]\nreserve_soc_min = 0.2\nexport_limit_w_max = 2500.0\n";
        let cfg: ClusterConfig = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.server_silence_s, 600);
        assert_eq!(cfg.envelope.start_delay_max_s, 300);
        assert_eq!(cfg.remote_config.reserve_soc_max, 0.8);
        assert_eq!(cfg.remote_config.export_limit_w_max, Some(2500.0));
    }

    /// One message the server (or an attacker) may send.
    fn arbitrary_message() -> impl Strategy<Value = (u8, u64, u32, bool)> {
        // (kind 1..=4, sequence, power, resend the last bytes instead)
        (1u8..=4, 1u64..20, 0u32..=3000, any::<bool>())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Whatever arrives, in whatever order and however often, each
        /// (key, sequence) is accepted — executed — at most once, and every
        /// message is counted exactly once.
        #[test]
        fn no_command_is_executed_twice(
            msgs in prop::collection::vec(arbitrary_message(), 1..40),
        ) {
            let mut c = cluster();
            let mut accepted = std::collections::BTreeSet::new();
            let mut last: Option<heapless::Vec<u8, WIRE_LEN>> = None;
            for (i, (kind, seq, power, resend)) in msgs.into_iter().enumerate() {
                let bytes = match (&last, resend) {
                    (Some(b), true) => b.clone(),
                    _ => {
                        let command = match kind {
                            1 => Command::Sink { power_w: power, duration_s: 600 },
                            2 => Command::Source { power_w: power, duration_s: 600 },
                            3 => Command::Cancel,
                            _ => Command::Heartbeat,
                        };
                        encode(&Dispatch { requirement: None, ..dispatch(seq, command) }, &server())
                    }
                };
                last = Some(bytes.clone());
                let before = c.counters().total();
                let v = c.handle(Millis(i as u64 * 1000), NOW_UTC, &bytes, CTX);
                prop_assert_eq!(c.counters().total(), before + 1);
                if let Verdict::Accepted(a) = v {
                    prop_assert!(accepted.insert(a.sequence), "sequence {} executed twice", a.sequence);
                }
            }
        }

        #[test]
        fn start_delay_within_bounds_and_deterministic(
            site in any::<u32>(),
            seq in any::<u64>(),
            max in 0u32..=MAX_START_DELAY_S,
        ) {
            let d = start_delay_s(site, seq, max);
            prop_assert!(d <= max);
            prop_assert_eq!(d, start_delay_s(site, seq, max));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic_nor_accepted(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            utc in any::<u64>(),
            now in any::<u64>(),
        ) {
            let mut c = cluster();
            let v = c.handle(Millis(now), utc, &bytes, CTX);
            prop_assert!(matches!(v, Verdict::Rejected(_)), "{:?}", v);
            // Same with a valid header so parsing goes deeper.
            let mut b = bytes.clone();
            b.resize(WIRE_LEN, 0);
            b[0] = VERSION;
            b[signed::field::KEY].copy_from_slice(server().verifying_key().as_bytes());
            let v = c.handle(Millis(now), utc, &b, CTX);
            prop_assert!(matches!(v, Verdict::Rejected(_)), "{:?}", v);
            prop_assert!(c.active().is_none());
            prop_assert_eq!(c.update(Millis(now), LIMITS).battery_power_w, None);
        }

        #[test]
        fn one_flipped_bit_never_accepted(
            bit in 0..WIRE_LEN * 8,
            seq in 1u64..u64::MAX,
            power in 0u32..=3000,
            duration in 1u32..=600,
            sink in any::<bool>(),
        ) {
            let command = if sink {
                Command::Sink { power_w: power, duration_s: duration }
            } else {
                Command::Source { power_w: power, duration_s: duration }
            };
            let good = encode(&dispatch(seq, command), &server());
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let mut c = cluster();
            let v = c.handle(Millis(0), NOW_UTC, &bad, CTX);
            prop_assert!(matches!(v, Verdict::Rejected(_)), "bit {}: {:?}", bit, v);
            prop_assert!(c.active().is_none());
            // The unflipped command is accepted.
            let v = c.handle(Millis(0), NOW_UTC, &good, CTX);
            prop_assert!(matches!(v, Verdict::Accepted(_)), "{:?}", v);
        }

        #[test]
        fn update_bounded_by_envelope_and_limits(
            power in 0u32..=3000,
            sink in any::<bool>(),
            max_dis in prop::num::f32::ANY,
            max_chg in prop::num::f32::ANY,
            t in 0u64..1_000_000,
        ) {
            let command = if sink {
                Command::Sink { power_w: power, duration_s: 600 }
            } else {
                Command::Source { power_w: power, duration_s: 600 }
            };
            let mut c = cluster();
            handle(&mut c, &dispatch(1, command));
            let cmd = c.update(Millis(t), PowerLimits { max_discharge_w: max_dis, max_charge_w: max_chg });
            if let Some(p) = cmd.battery_power_w {
                prop_assert!(p.is_finite());
                let cap = |w: f32| if w.is_finite() && w > 0.0 { w } else { 0.0 };
                if sink {
                    prop_assert!(p <= 0.0 && -p <= cap(max_chg) && -p <= 3000.0);
                } else {
                    prop_assert!(p >= 0.0 && p <= cap(max_dis) && p <= 3000.0);
                }
            } else {
                prop_assert!(t >= 601_000);
            }
        }
    }

    /// Configuration messages: the checks they share with dispatch, the
    /// local bounds, what accepting one does.
    mod config_messages {
        use super::*;
        use crate::wire::config_message::tests::message;
        use crate::wire::config_message::{encode, field, Setting};
        use crate::wire::dispatch::encode as encode_dispatch;

        fn cluster() -> Cluster {
            let mut cfg = config();
            cfg.remote_config.export_limit_w_max = Some(2000.0);
            Cluster::new(cfg).unwrap()
        }

        fn send(c: &mut Cluster, m: &ConfigMessage) -> ConfigVerdict {
            c.handle_config(Millis(1000), NOW_UTC, &encode(m, &server()))
        }

        fn rejected(v: ConfigVerdict) -> RejectReason {
            match v {
                ConfigVerdict::Rejected(r) => r,
                other => panic!("expected rejection, got {other:?}"),
            }
        }

        /// The vector in docs/config-message.md (its layout is checked in
        /// `wire::config_message`) is accepted and applied.
        #[test]
        fn the_documented_vector_is_accepted() {
            let expected = from_hex(crate::wire::config_message::tests::VECTOR_HEX);
            let mut c = cluster();
            let v = c.handle_config(Millis(0), NOW_UTC + 10, &expected);
            assert!(
                matches!(v, ConfigVerdict::Accepted(a) if a.sequence == 43),
                "{v:?}"
            );
            let r = c.remote();
            assert_eq!(r.reserve_soc, Some(0.3));
            assert_eq!(r.max_sink_w, Some(2500.0));
            assert_eq!((r.max_source_w, r.export_limit_w), (None, None));
            assert_eq!(r.start_delay_max_s, Some(600));
            assert_eq!(c.counters().accepted_config, 1);
        }

        #[test]
        fn a_signature_never_transplants_between_dispatch_and_config() {
            // Each parser accepts only its own first byte (`wire` tests); a
            // dispatch signature over config bytes fails.
            let d = encode_dispatch(&heartbeat(1), &server());
            let cfg = encode(&message(2, Settings::default()), &server());
            let mut forged = cfg.clone();
            forged[config_message::SIGNED_LEN..].copy_from_slice(&d[dispatch::SIGNED_LEN..]);
            let mut c = cluster();
            assert_eq!(
                rejected(c.handle_config(Millis(0), NOW_UTC, &forged)),
                RejectReason::BadSignature
            );
        }

        #[test]
        fn out_of_local_bounds_rejected_and_counted() {
            let mut c = cluster();
            let cases = [
                Settings {
                    reserve_soc_permille: Setting::Set(50), // below 0.1
                    ..Default::default()
                },
                Settings {
                    reserve_soc_permille: Setting::Set(900), // above 0.8
                    ..Default::default()
                },
                Settings {
                    export_limit_w: Setting::Set(2001),
                    ..Default::default()
                },
                Settings {
                    max_sink_w: Setting::Set(3001), // raise above the envelope
                    ..Default::default()
                },
                Settings {
                    max_source_w: Setting::Set(3001),
                    ..Default::default()
                },
                Settings {
                    start_delay_max_s: Setting::Set(MAX_START_DELAY_S + 1),
                    ..Default::default()
                },
            ];
            for (i, s) in cases.iter().enumerate() {
                assert_eq!(
                    rejected(send(&mut c, &message(i as u64 + 1, *s))),
                    RejectReason::OutOfEnvelope,
                    "{s:?}"
                );
            }
            assert_eq!(c.counters().out_of_envelope, 6);
            assert_eq!(*c.remote(), RemoteSettings::default());
            // Rejections did not consume sequences.
            assert!(matches!(
                send(&mut c, &message(1, Settings::default())),
                ConfigVerdict::Accepted(_)
            ));
            // Validity window beyond the envelope.
            let mut m = message(2, Settings::default());
            m.expires_at_s = NOW_UTC + 901;
            assert_eq!(rejected(send(&mut c, &m)), RejectReason::OutOfEnvelope);
        }

        #[test]
        fn malformed_settings_rejected() {
            let good = encode(&message(1, Settings::default()), &server());
            let mut c = cluster();
            let mut bad_part = good.clone();
            bad_part[field::PARTICIPATING] = 2;
            let mut bad_reserve = good.clone();
            bad_reserve[field::RESERVE_SOC].copy_from_slice(&1001u16.to_be_bytes());
            let mut reserved = good.clone();
            reserved[2] = 1;
            let mut reserved_mid = good.clone();
            reserved_mid[field::RESERVED_MID] = 1;
            for (bytes, e) in [
                (&bad_part[..], ParseError::BadSetting),
                (&bad_reserve[..], ParseError::BadSetting),
                (&reserved[..], ParseError::ReservedNotZero),
                (&reserved_mid[..], ParseError::ReservedNotZero),
                (
                    &good[..config_message::WIRE_LEN - 1],
                    ParseError::Truncated { len: 151 },
                ),
                (&[][..], ParseError::Empty),
            ] {
                assert_eq!(
                    rejected(c.handle_config(Millis(0), NOW_UTC, bytes)),
                    RejectReason::Malformed(e)
                );
            }
            assert_eq!(c.counters().malformed, 6);
        }

        #[test]
        fn sequence_space_shared_with_dispatch_and_duplicates_ignored() {
            let mut c = cluster();
            let d = Dispatch {
                requirement: None,
                ..source(5, 1000, 600)
            };
            let ctx = DispatchContext::default();
            let v = c.handle(Millis(0), NOW_UTC, &encode_dispatch(&d, &server()), ctx);
            assert!(matches!(v, Verdict::Accepted(_)));
            assert_eq!(
                rejected(send(&mut c, &message(5, Settings::default()))),
                RejectReason::Replayed
            );
            let m = message(6, Settings::default());
            assert!(matches!(send(&mut c, &m), ConfigVerdict::Accepted(_)));
            assert_eq!(
                send(&mut c, &m),
                ConfigVerdict::Ignored(IgnoreReason::Duplicate)
            );
            let mut other = message(7, Settings::default());
            other.site_id = 1043;
            assert_eq!(
                send(&mut c, &other),
                ConfigVerdict::Ignored(IgnoreReason::OtherSite)
            );
        }

        #[test]
        fn opt_out_withdraws_lowering_clips_and_local_restores() {
            let mut c = cluster();
            let ctx = DispatchContext::default();
            let source = |seq: u64| {
                let d = Dispatch {
                    requirement: None,
                    ..super::source(seq, 2000, 600)
                };
                encode_dispatch(&d, &server())
            };
            c.handle(Millis(0), NOW_UTC, &source(1), ctx);
            // Lower the source envelope: the dispatch in force is clipped.
            let lower = Settings {
                max_source_w: Setting::Set(1200),
                ..Default::default()
            };
            assert!(matches!(
                send(&mut c, &message(2, lower)),
                ConfigVerdict::Accepted(_)
            ));
            let cmd = c.update(Millis(2000), LIMITS);
            assert_eq!(
                (cmd.battery_power_w, cmd.reason),
                (Some(1200.0), ClusterReason::Clipped)
            );
            // A new 2000 W dispatch is now out of envelope.
            assert_eq!(
                c.handle(Millis(2000), NOW_UTC, &source(3), ctx),
                Verdict::Rejected(RejectReason::OutOfEnvelope)
            );
            // Opt out: withdrawn, new dispatch refused.
            let out = Settings {
                participating: Setting::Set(false),
                ..Default::default()
            };
            assert!(matches!(
                send(&mut c, &message(4, out)),
                ConfigVerdict::Accepted(_)
            ));
            assert_eq!(
                c.update(Millis(3000), LIMITS).reason,
                ClusterReason::Withdrawn
            );
            let back = Settings {
                max_source_w: Setting::Local,
                ..Default::default()
            };
            assert!(matches!(
                send(&mut c, &message(5, back)),
                ConfigVerdict::Accepted(_)
            ));
            assert_eq!(
                c.handle(Millis(3000), NOW_UTC, &source(6), ctx),
                Verdict::Rejected(RejectReason::NotParticipating)
            );
            // Opt back in (Local = participating): followed at full power.
            let opt_in = Settings {
                participating: Setting::Local,
                ..Default::default()
            };
            assert!(matches!(
                send(&mut c, &message(7, opt_in)),
                ConfigVerdict::Accepted(_)
            ));
            assert!(matches!(
                c.handle(Millis(4000), NOW_UTC, &source(8), ctx),
                Verdict::Accepted(_)
            ));
            assert_eq!(c.update(Millis(5000), LIMITS).battery_power_w, Some(2000.0));
            assert_eq!(*c.remote(), RemoteSettings::default());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Forged or garbled bytes never panic, are never accepted, and are
            /// always counted.
            #[test]
            fn garbled_bytes_never_panic_always_counted(
                bytes in prop::collection::vec(any::<u8>(), 0..200),
                bit in 0..config_message::WIRE_LEN * 8,
                utc in any::<u64>(),
            ) {
                let mut c = cluster();
                let v = c.handle_config(Millis(0), utc, &bytes);
                prop_assert!(matches!(v, ConfigVerdict::Rejected(_)), "{:?}", v);
                let mut flipped = encode(&message(1, Settings::default()), &server());
                flipped[bit / 8] ^= 1 << (bit % 8);
                let v = c.handle_config(Millis(0), NOW_UTC, &flipped);
                prop_assert!(!matches!(v, ConfigVerdict::Accepted(_)), "bit {}: {:?}", bit, v);
                prop_assert_eq!(c.counters().total(), 2);
                prop_assert_eq!(*c.remote(), RemoteSettings::default());
            }
        }
    }
}
