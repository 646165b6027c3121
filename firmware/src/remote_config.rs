//! Signed configuration messages [claims 1, 20]: the remote server changes
//! a few of an assembly's cluster settings — participation, the reserve
//! state of charge, the export limit, the sink/source envelope, the start
//! delay — within hard local bounds the installer set.
//!
//! The wire format is documented field by field in
//! `firmware/docs/config-message.md`; [`parse`] and [`encode`] implement it
//! (fixed 152 bytes, big-endian, Ed25519 signature over the first 88). The
//! first byte, [`VERSION`] `0xC1`, can never be a dispatch version, so a
//! signature over one kind of message can never be taken for the other. The
//! header (bytes 4..68: branch, site, key, sequence, validity) has the
//! dispatch's layout, and the checks are the dispatch's
//! ([`crate::cluster::Cluster::handle_config`]): the key's sequence space is
//! shared by everything it signs.

use ed25519_dalek::{Signer, SigningKey};

use crate::cluster::{
    be_u16, be_u32, check_frame, copy_array, parse_header, write_header, ClusterConfig, Header,
    IgnoreReason, ParseError, RejectReason, MAX_START_DELAY_S, SIGNATURE_LEN,
};

/// First byte of a configuration message. Dispatch versions count up from
/// 1; this value is reserved for configuration messages and never used as
/// a dispatch version.
pub const VERSION: u8 = 0xC1;
/// Length of the signed part (everything before the signature), bytes.
pub const SIGNED_LEN: usize = 88;
/// Total length of a configuration message, bytes.
pub const WIRE_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;

/// A `u32` setting's "unchanged" sentinel (`0xFFFF_FFFF`).
pub const UNCHANGED_U32: u32 = u32::MAX;
/// A `u32` setting's "back to the local configuration" sentinel.
pub const LOCAL_U32: u32 = u32::MAX - 1;
/// The reserve's "unchanged" sentinel (`0xFFFF`).
pub const UNCHANGED_U16: u16 = u16::MAX;
/// The reserve's "back to the local configuration" sentinel.
pub const LOCAL_U16: u16 = u16::MAX - 1;
/// Participation's "unchanged" sentinel.
pub const UNCHANGED_U8: u8 = 0xFF;
/// Participation's "back to the local configuration" (= participating)
/// sentinel.
pub const LOCAL_U8: u8 = 0xFE;

mod field {
    use core::ops::Range;
    pub const RESERVED_HEAD: Range<usize> = 1..4;
    pub const PARTICIPATING: usize = 68;
    pub const RESERVED_MID: usize = 69;
    pub const RESERVE_SOC: Range<usize> = 70..72;
    pub const EXPORT_LIMIT: Range<usize> = 72..76;
    pub const MAX_SINK: Range<usize> = 76..80;
    pub const MAX_SOURCE: Range<usize> = 80..84;
    pub const START_DELAY: Range<usize> = 84..88;
    pub const SIGNATURE: Range<usize> = 88..152;
}

/// One remotely settable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting<T> {
    /// Leave it as it is (the last remote value, or the local one).
    Unchanged,
    /// Back to the assembly's local configuration.
    Local,
    /// This value.
    Set(T),
}

impl<T: Copy> Setting<T> {
    /// The value to hold after applying this to `current` (`None` = the
    /// local configuration), converting a set value with `f`.
    fn apply<U>(self, current: Option<U>, f: impl Fn(T) -> U) -> Option<U> {
        match self {
            Setting::Unchanged => current,
            Setting::Local => None,
            Setting::Set(v) => Some(f(v)),
        }
    }

    fn set(self) -> Option<T> {
        match self {
            Setting::Set(v) => Some(v),
            _ => None,
        }
    }
}

/// The settings a configuration message carries, in their wire units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Take part in dispatch (opt in) or not (opt out).
    pub participating: Setting<bool>,
    /// Reserve state of charge, per-mille (0..=1000).
    pub reserve_soc_permille: Setting<u16>,
    /// Export limit at the connection point, W.
    pub export_limit_w: Setting<u32>,
    /// Largest sink (charge) power a dispatch may ask for, W.
    pub max_sink_w: Setting<u32>,
    /// Largest source (discharge) power a dispatch may ask for, W.
    pub max_source_w: Setting<u32>,
    /// Largest randomised start delay, s.
    pub start_delay_max_s: Setting<u32>,
}

impl Default for Settings {
    /// Everything unchanged.
    fn default() -> Self {
        Settings {
            participating: Setting::Unchanged,
            reserve_soc_permille: Setting::Unchanged,
            export_limit_w: Setting::Unchanged,
            max_sink_w: Setting::Unchanged,
            max_source_w: Setting::Unchanged,
            start_delay_max_s: Setting::Unchanged,
        }
    }
}

impl Settings {
    /// Whether every value set lies within the hard local bounds of
    /// `config` (`[cluster.remote_config]` and `[cluster.envelope]`):
    /// reserve within `reserve_soc_min..=reserve_soc_max`, export limit at
    /// most `export_limit_w_max` (0 W if that is unresolved), sink/source at
    /// most the local envelope (lowered only), start delay at most
    /// [`MAX_START_DELAY_S`].
    pub fn within(&self, config: &ClusterConfig) -> bool {
        let b = &config.remote_config;
        let reserve_ok = self.reserve_soc_permille.set().is_none_or(|p| {
            let soc = f32::from(p) / 1000.0;
            soc >= b.reserve_soc_min && soc <= b.reserve_soc_max
        });
        let export_max = b.export_limit_w_max.unwrap_or(0.0);
        let export_ok = self
            .export_limit_w
            .set()
            .is_none_or(|w| w as f32 <= export_max);
        let sink_ok = self
            .max_sink_w
            .set()
            .is_none_or(|w| w as f32 <= config.envelope.max_sink_w);
        let source_ok = self
            .max_source_w
            .set()
            .is_none_or(|w| w as f32 <= config.envelope.max_source_w);
        let delay_ok = self
            .start_delay_max_s
            .set()
            .is_none_or(|s| s <= MAX_START_DELAY_S);
        reserve_ok && export_ok && sink_ok && source_ok && delay_ok
    }
}

/// The settings the server has set, as held by the assembly (`None`: the
/// local configuration applies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteSettings {
    /// Whether the server has the assembly take part (default `true`).
    pub participating: bool,
    /// Reserve state of charge, fraction 0..=1.
    pub reserve_soc: Option<f32>,
    /// Export limit, W.
    pub export_limit_w: Option<f32>,
    /// Largest sink power a dispatch may ask for, W (never above the local
    /// envelope).
    pub max_sink_w: Option<f32>,
    /// Largest source power a dispatch may ask for, W (never above the
    /// local envelope).
    pub max_source_w: Option<f32>,
    /// Largest randomised start delay, s.
    pub start_delay_max_s: Option<u32>,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            participating: true,
            reserve_soc: None,
            export_limit_w: None,
            max_sink_w: None,
            max_source_w: None,
            start_delay_max_s: None,
        }
    }
}

impl RemoteSettings {
    /// Applies an accepted message's settings.
    pub fn apply(&mut self, s: &Settings) {
        let watts = |w: u32| w as f32;
        self.participating = s
            .participating
            .apply(Some(self.participating), |p| p)
            .unwrap_or(true);
        self.reserve_soc = s
            .reserve_soc_permille
            .apply(self.reserve_soc, |p| f32::from(p) / 1000.0);
        self.export_limit_w = s.export_limit_w.apply(self.export_limit_w, watts);
        self.max_sink_w = s.max_sink_w.apply(self.max_sink_w, watts);
        self.max_source_w = s.max_source_w.apply(self.max_source_w, watts);
        self.start_delay_max_s = s.start_delay_max_s.apply(self.start_delay_max_s, |d| d);
    }
}

/// The content of a configuration message (everything the server signs
/// except the key, which [`encode`] takes from the signing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigMessage {
    /// Distribution branch addressed (non-zero).
    pub branch_id: u32,
    /// Site addressed; [`crate::cluster::ALL_SITES`] (0) = every assembly
    /// on the branch.
    pub site_id: u32,
    /// Strictly increasing per server key, across dispatch, heartbeat and
    /// configuration messages.
    pub sequence: u64,
    /// When the server issued it, UTC seconds (server clock).
    pub issued_at_s: u64,
    /// Last UTC second at which it may be accepted; after `issued_at_s`.
    pub expires_at_s: u64,
    pub settings: Settings,
}

/// A parsed, not yet verified, configuration message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedConfig {
    pub message: ConfigMessage,
    /// The signing server's Ed25519 public key.
    pub key: [u8; 32],
    pub signature: [u8; SIGNATURE_LEN],
    /// Bytes `0..88`: what the signature covers.
    pub signed_bytes: [u8; SIGNED_LEN],
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

/// The outcome of [`crate::cluster::Cluster::handle_config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVerdict {
    /// Verified, addressed here, fresh, within the local bounds: applied.
    Accepted(AcceptedConfig),
    /// Verified but addressed elsewhere, or a duplicate: nothing to do.
    Ignored(IgnoreReason),
    /// Refused: nothing changed.
    Rejected(RejectReason),
}

fn u32_setting(v: u32) -> Setting<u32> {
    match v {
        UNCHANGED_U32 => Setting::Unchanged,
        LOCAL_U32 => Setting::Local,
        w => Setting::Set(w),
    }
}

fn u32_code(s: Setting<u32>) -> u32 {
    match s {
        Setting::Unchanged => UNCHANGED_U32,
        Setting::Local => LOCAL_U32,
        Setting::Set(v) => v,
    }
}

/// Parses a configuration message from `bytes` (exactly one, no trailing
/// bytes). Checks structure only; [`crate::cluster::Cluster::handle_config`]
/// checks the rest.
pub fn parse(bytes: &[u8]) -> Result<SignedConfig, ParseError> {
    check_frame(bytes, VERSION, WIRE_LEN)?;
    let reserved_zero = bytes
        .get(field::RESERVED_HEAD)
        .is_some_and(|r| r.iter().all(|b| *b == 0))
        && bytes.get(field::RESERVED_MID) == Some(&0);
    if !reserved_zero {
        return Err(ParseError::ReservedNotZero);
    }
    let participating = match bytes.get(field::PARTICIPATING).copied() {
        Some(0) => Setting::Set(false),
        Some(1) => Setting::Set(true),
        Some(LOCAL_U8) => Setting::Local,
        Some(UNCHANGED_U8) => Setting::Unchanged,
        _ => return Err(ParseError::BadSetting),
    };
    let reserve_soc_permille = match be_u16(bytes, field::RESERVE_SOC) {
        UNCHANGED_U16 => Setting::Unchanged,
        LOCAL_U16 => Setting::Local,
        p if p <= 1000 => Setting::Set(p),
        _ => return Err(ParseError::BadSetting),
    };
    let h = parse_header(bytes)?;
    Ok(SignedConfig {
        message: ConfigMessage {
            branch_id: h.branch_id,
            site_id: h.site_id,
            sequence: h.sequence,
            issued_at_s: h.issued_at_s,
            expires_at_s: h.expires_at_s,
            settings: Settings {
                participating,
                reserve_soc_permille,
                export_limit_w: u32_setting(be_u32(bytes, field::EXPORT_LIMIT)),
                max_sink_w: u32_setting(be_u32(bytes, field::MAX_SINK)),
                max_source_w: u32_setting(be_u32(bytes, field::MAX_SOURCE)),
                start_delay_max_s: u32_setting(be_u32(bytes, field::START_DELAY)),
            },
        },
        key: h.key,
        signature: copy_array(bytes, field::SIGNATURE),
        signed_bytes: copy_array(bytes, 0..SIGNED_LEN),
    })
}

/// Encodes and signs `message` with `key` (for tests, tools and the
/// server). Does not check the values: it can encode messages that
/// [`parse`] or `handle_config` will refuse (a reserve above 1000 ‰ is
/// written as is).
pub fn encode(message: &ConfigMessage, key: &SigningKey) -> heapless::Vec<u8, WIRE_LEN> {
    let mut b = [0u8; WIRE_LEN];
    let s = &message.settings;
    b[0] = VERSION;
    write_header(
        &mut b,
        &Header {
            branch_id: message.branch_id,
            site_id: message.site_id,
            key: key.verifying_key().to_bytes(),
            sequence: message.sequence,
            issued_at_s: message.issued_at_s,
            expires_at_s: message.expires_at_s,
        },
    );
    b[field::PARTICIPATING] = match s.participating {
        Setting::Set(false) => 0,
        Setting::Set(true) => 1,
        Setting::Local => LOCAL_U8,
        Setting::Unchanged => UNCHANGED_U8,
    };
    let reserve = match s.reserve_soc_permille {
        Setting::Unchanged => UNCHANGED_U16,
        Setting::Local => LOCAL_U16,
        Setting::Set(p) => p,
    };
    b[field::RESERVE_SOC].copy_from_slice(&reserve.to_be_bytes());
    for (range, setting) in [
        (field::EXPORT_LIMIT, s.export_limit_w),
        (field::MAX_SINK, s.max_sink_w),
        (field::MAX_SOURCE, s.max_source_w),
        (field::START_DELAY, s.start_delay_max_s),
    ] {
        b[range].copy_from_slice(&u32_code(setting).to_be_bytes());
    }
    let sig = key.sign(&b[..SIGNED_LEN]);
    b[field::SIGNATURE].copy_from_slice(&sig.to_bytes());
    let mut out = heapless::Vec::new();
    // Capacity is exactly WIRE_LEN: cannot fail.
    let _ = out.extend_from_slice(&b);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{
        self, encode as encode_dispatch, Cluster, ClusterReason, Command, Dispatch,
        DispatchContext, Envelope, PowerLimits, PublicKeyHex, RemoteConfigBounds, Verdict,
    };
    use crate::Millis;
    use proptest::prelude::*;

    const NOW_UTC: u64 = 1_790_000_000;
    const LIMITS: PowerLimits = PowerLimits {
        max_discharge_w: 5000.0,
        max_charge_w: 5000.0,
    };

    fn server() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn cluster() -> Cluster {
        let mut keys = heapless::Vec::new();
        keys.push(PublicKeyHex(server().verifying_key().to_bytes()))
            .unwrap();
        Cluster::new(ClusterConfig {
            site_id: 1042,
            branch_id: 17,
            trusted_keys: keys,
            envelope: Envelope::default(),
            server_silence_s: 180,
            remote_config: RemoteConfigBounds {
                export_limit_w_max: Some(2000.0),
                ..Default::default()
            },
        })
        .unwrap()
    }

    fn message(seq: u64, settings: Settings) -> ConfigMessage {
        ConfigMessage {
            branch_id: 17,
            site_id: 1042,
            sequence: seq,
            issued_at_s: NOW_UTC,
            expires_at_s: NOW_UTC + 300,
            settings,
        }
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

    /// The vector in docs/config-message.md, produced with Python
    /// `cryptography`.
    #[test]
    fn test_vector() {
        const HEX: &str = "c10000000000001100000412ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000000000002b000000006ab13b80000000006ab13cac0100012cffffffff000009c4fffffffe0000025870a8c577182839aa37b005209c6281e58fca0b41cc09c98be58073a72d827625f0660fd5c31c8cf353e153eaefe0939ef377b3574ca63fb2c6f8eed90fe78408";
        let expected: Vec<u8> = (0..HEX.len() / 2)
            .map(|i| u8::from_str_radix(&HEX[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let m = message(
            43,
            Settings {
                participating: Setting::Set(true),
                reserve_soc_permille: Setting::Set(300),
                export_limit_w: Setting::Unchanged,
                max_sink_w: Setting::Set(2500),
                max_source_w: Setting::Local,
                start_delay_max_s: Setting::Set(600),
            },
        );
        assert_eq!(encode(&m, &server()).as_slice(), expected.as_slice());
        assert_eq!(parse(&expected).unwrap().message, m);
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
        // The first byte differs, and each parser accepts only its own.
        let d = encode_dispatch(
            &Dispatch {
                branch_id: 17,
                site_id: 0,
                sequence: 1,
                issued_at_s: NOW_UTC,
                expires_at_s: NOW_UTC + 300,
                command: Command::Heartbeat,
                requirement: None,
            },
            &server(),
        );
        let cfg = encode(&message(2, Settings::default()), &server());
        assert_eq!(parse(&d).unwrap_err(), ParseError::UnsupportedVersion(1));
        assert_eq!(
            cluster::parse(&cfg).unwrap_err(),
            ParseError::UnsupportedVersion(VERSION)
        );
        // A dispatch signature over config bytes (same length prefix) fails.
        let mut forged = cfg.clone();
        forged[field::SIGNATURE.start..].copy_from_slice(&[0u8; SIGNATURE_LEN]);
        forged[field::SIGNATURE.start..].copy_from_slice(&d[80..144]);
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
            (&good[..WIRE_LEN - 1], ParseError::Truncated { len: 151 }),
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
            branch_id: 17,
            site_id: 0,
            sequence: 5,
            issued_at_s: NOW_UTC,
            expires_at_s: NOW_UTC + 300,
            command: Command::Source {
                power_w: 1000,
                duration_s: 600,
            },
            requirement: None,
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
            encode_dispatch(
                &Dispatch {
                    branch_id: 17,
                    site_id: 0,
                    sequence: seq,
                    issued_at_s: NOW_UTC,
                    expires_at_s: NOW_UTC + 300,
                    command: Command::Source {
                        power_w: 2000,
                        duration_s: 600,
                    },
                    requirement: None,
                },
                &server(),
            )
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
            bit in 0..WIRE_LEN * 8,
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
