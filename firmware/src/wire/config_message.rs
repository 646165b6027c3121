//! Configuration messages [claims 1, 20]: the remote server's signed
//! changes to a few of an assembly's cluster settings — participation, the
//! reserve state of charge, the export limit, the sink/source envelope, the
//! start delay.
//!
//! A configuration message is 152 bytes: the first byte [`VERSION`]
//! `0xC1`, three reserved bytes, the shared signed header
//! ([`super::signed::Header`], bytes 4..68), the settings (bytes 68..88),
//! then the Ed25519 signature over bytes 0..88. `0xC1` can never be a
//! dispatch version, so a signature over one kind of message can never be
//! taken for the other. Each setting is a value or a sentinel: "unchanged"
//! or "back to the local configuration" ([`Setting`]). Field by field:
//! `firmware/docs/config-message.md`.
//!
//! [`ConfigMessage`] is the typed content with `parse` (from a checked
//! [`SignedFrame`]) and `emit`; [`parse`] reads a whole message,
//! [`encode`] writes and signs one (for servers, tools and tests). Uses
//! [`super::signed`] only. Structure only: what a setting means and its
//! bounds are `crate::remote_config`'s, the checks the cluster's.

use ed25519_dalek::SigningKey;

use super::signed::{self, seal, Header, ParseError, Signed, SignedFrame, KEY_LEN, SIGNATURE_LEN};

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
/// Largest reserve a message may carry, per-mille.
pub const MAX_RESERVE_PERMILLE: u16 = 1000;

/// Offsets of the configuration message's own fields (the header's are in
/// [`super::signed`]).
pub(crate) mod field {
    use core::ops::Range;
    pub const RESERVED_HEAD: Range<usize> = 1..4;
    pub const PARTICIPATING: usize = 68;
    pub const RESERVED_MID: usize = 69;
    pub const RESERVE_SOC: Range<usize> = 70..72;
    pub const EXPORT_LIMIT: Range<usize> = 72..76;
    pub const MAX_SINK: Range<usize> = 76..80;
    pub const MAX_SOURCE: Range<usize> = 80..84;
    pub const START_DELAY: Range<usize> = 84..88;
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

impl<T> Setting<T> {
    /// The value a [`Setting::Set`] carries; `None` for the sentinels.
    pub fn set_value(self) -> Option<T> {
        match self {
            Setting::Set(v) => Some(v),
            _ => None,
        }
    }

    /// The setting an integer field codes, given its two sentinels.
    fn from_code(code: T, unchanged: T, local: T) -> Setting<T>
    where
        T: PartialEq,
    {
        if code == unchanged {
            Setting::Unchanged
        } else if code == local {
            Setting::Local
        } else {
            Setting::Set(code)
        }
    }

    /// The integer field that codes this setting, given its two sentinels.
    fn code(self, unchanged: T, local: T) -> T {
        match self {
            Setting::Unchanged => unchanged,
            Setting::Local => local,
            Setting::Set(v) => v,
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
    /// Reads the settings (bytes 68..88) of a checked frame: participation
    /// `0`, `1` or a sentinel, the reserve at most 1000 ‰ or a sentinel
    /// (`BadSetting` otherwise).
    fn parse(frame: &SignedFrame<'_>) -> Result<Settings, ParseError> {
        let participating = match frame.byte(field::PARTICIPATING) {
            0 => Setting::Set(false),
            1 => Setting::Set(true),
            LOCAL_U8 => Setting::Local,
            UNCHANGED_U8 => Setting::Unchanged,
            _ => return Err(ParseError::BadSetting),
        };
        let reserve_soc_permille =
            Setting::from_code(frame.be_u16(field::RESERVE_SOC), UNCHANGED_U16, LOCAL_U16);
        if reserve_soc_permille
            .set_value()
            .is_some_and(|p| p > MAX_RESERVE_PERMILLE)
        {
            return Err(ParseError::BadSetting);
        }
        let watts_or_seconds = |at| Setting::from_code(frame.be_u32(at), UNCHANGED_U32, LOCAL_U32);
        Ok(Settings {
            participating,
            reserve_soc_permille,
            export_limit_w: watts_or_seconds(field::EXPORT_LIMIT),
            max_sink_w: watts_or_seconds(field::MAX_SINK),
            max_source_w: watts_or_seconds(field::MAX_SOURCE),
            start_delay_max_s: watts_or_seconds(field::START_DELAY),
        })
    }

    /// Writes the settings into bytes 68..88 of `message`, as they are (a
    /// reserve above 1000 ‰ too).
    fn emit(&self, message: &mut [u8; WIRE_LEN]) {
        message[field::PARTICIPATING] = match self.participating {
            Setting::Set(false) => 0,
            Setting::Set(true) => 1,
            Setting::Local => LOCAL_U8,
            Setting::Unchanged => UNCHANGED_U8,
        };
        let reserve = self.reserve_soc_permille.code(UNCHANGED_U16, LOCAL_U16);
        message[field::RESERVE_SOC].copy_from_slice(&reserve.to_be_bytes());
        for (range, setting) in [
            (field::EXPORT_LIMIT, self.export_limit_w),
            (field::MAX_SINK, self.max_sink_w),
            (field::MAX_SOURCE, self.max_source_w),
            (field::START_DELAY, self.start_delay_max_s),
        ] {
            let code = setting.code(UNCHANGED_U32, LOCAL_U32);
            message[range].copy_from_slice(&code.to_be_bytes());
        }
    }
}

/// The content of a configuration message (everything the server signs
/// except the key, which [`encode`] takes from the signing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigMessage {
    /// Distribution branch addressed (non-zero).
    pub branch_id: u32,
    /// Site addressed; [`signed::ALL_SITES`] (0) = every assembly on the
    /// branch.
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

/// A parsed, not yet verified, configuration message: the content, the
/// server key it claims, the signature, and bytes `0..88`, what the
/// signature covers.
pub type SignedConfig = Signed<ConfigMessage, SIGNED_LEN>;

impl ConfigMessage {
    /// Reads a configuration message's content from its checked frame, in
    /// this order: the reserved bytes (`ReservedNotZero`), the settings
    /// (`BadSetting`), the validity window (`BadValidity`).
    pub fn parse(frame: &SignedFrame<'_>) -> Result<ConfigMessage, ParseError> {
        let reserved_zero = frame
            .signed_bytes()
            .get(field::RESERVED_HEAD)
            .is_some_and(|head| head.iter().all(|b| *b == 0))
            && frame.byte(field::RESERVED_MID) == 0;
        if !reserved_zero {
            return Err(ParseError::ReservedNotZero);
        }
        let settings = Settings::parse(frame)?;
        let Header {
            branch_id,
            site_id,
            sequence,
            issued_at_s,
            expires_at_s,
            ..
        } = Header::parse(frame)?;
        Ok(ConfigMessage {
            branch_id,
            site_id,
            sequence,
            issued_at_s,
            expires_at_s,
            settings,
        })
    }

    /// Writes the signed part (bytes 0..88) of this message, claiming the
    /// server key `key`, into `message`; the signature is [`signed::seal`]'s.
    pub fn emit(&self, key: [u8; KEY_LEN], message: &mut [u8; WIRE_LEN]) {
        message[signed::field::VERSION] = VERSION;
        let ConfigMessage {
            branch_id,
            site_id,
            sequence,
            issued_at_s,
            expires_at_s,
            ..
        } = *self;
        Header {
            branch_id,
            site_id,
            key,
            sequence,
            issued_at_s,
            expires_at_s,
        }
        .emit(message);
        self.settings.emit(message);
    }
}

/// Checks that `bytes` is framed as one configuration message (first byte,
/// exact length).
pub fn checked_frame(bytes: &[u8]) -> Result<SignedFrame<'_>, ParseError> {
    SignedFrame::new_checked(bytes, VERSION, SIGNED_LEN)
}

/// Parses a configuration message from `bytes` (exactly one, no trailing
/// bytes). Checks structure only; the cluster checks the rest.
pub fn parse(bytes: &[u8]) -> Result<SignedConfig, ParseError> {
    let frame = checked_frame(bytes)?;
    Ok(frame.to_signed(ConfigMessage::parse(&frame)?))
}

/// Encodes and signs `message` with `key` (for tests, tools and the
/// server). Does not check the values: it can encode messages that
/// [`parse`] or the cluster will refuse (a reserve above 1000 ‰ is written
/// as is).
pub fn encode(message: &ConfigMessage, key: &SigningKey) -> heapless::Vec<u8, WIRE_LEN> {
    let mut bytes = [0u8; WIRE_LEN];
    message.emit(key.verifying_key().to_bytes(), &mut bytes);
    seal(bytes, key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::dispatch::{self, Command, Dispatch};
    use crate::wire::signed::tests::{from_hex, server, NOW_UTC};
    use proptest::prelude::*;

    /// The message of docs/config-message.md (server key `[7; 32]`).
    pub(crate) const VECTOR_HEX: &str = "c10000000000001100000412ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000000000002b000000006ab13b80000000006ab13cac0100012cffffffff000009c4fffffffe0000025870a8c577182839aa37b005209c6281e58fca0b41cc09c98be58073a72d827625f0660fd5c31c8cf353e153eaefe0939ef377b3574ca63fb2c6f8eed90fe78408";

    /// A message for site 1042 on branch 17, issued now, valid 300 s.
    pub(crate) fn message(seq: u64, settings: Settings) -> ConfigMessage {
        ConfigMessage {
            branch_id: 17,
            site_id: 1042,
            sequence: seq,
            issued_at_s: NOW_UTC,
            expires_at_s: NOW_UTC + 300,
            settings,
        }
    }

    /// The vector in docs/config-message.md, produced with Python
    /// `cryptography` (the cluster's tests check that it is accepted).
    #[test]
    fn test_vector() {
        let expected = from_hex(VECTOR_HEX);
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
        let parsed = parse(&expected).unwrap();
        assert_eq!(parsed.content, m);
        assert!(parsed.verify(&server().verifying_key()));
    }

    #[test]
    fn each_parser_accepts_only_its_own_first_byte() {
        let d = dispatch::encode(
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
            dispatch::parse(&cfg).unwrap_err(),
            ParseError::UnsupportedVersion(VERSION)
        );
    }

    #[test]
    fn malformed_settings_and_reserved_bytes() {
        let good = encode(&message(1, Settings::default()), &server());
        let altered = |at: core::ops::Range<usize>, value: &[u8]| {
            let mut b = good.clone();
            b[at].copy_from_slice(value);
            b
        };
        let pf = field::PARTICIPATING;
        for (bytes, e) in [
            (altered(pf..pf + 1, &[2]), ParseError::BadSetting),
            (
                altered(field::RESERVE_SOC, &1001u16.to_be_bytes()),
                ParseError::BadSetting,
            ),
            (altered(2..3, &[1]), ParseError::ReservedNotZero),
            (
                altered(field::RESERVED_MID..field::RESERVED_MID + 1, &[1]),
                ParseError::ReservedNotZero,
            ),
        ] {
            assert_eq!(parse(&bytes).unwrap_err(), e);
        }
        assert_eq!(
            parse(&good[..WIRE_LEN - 1]).unwrap_err(),
            ParseError::Truncated { len: 151 }
        );
        assert_eq!(parse(&[]).unwrap_err(), ParseError::Empty);
        // 1000 ‰ is the largest reserve; the sentinels are not values.
        let full = altered(field::RESERVE_SOC, &1000u16.to_be_bytes());
        assert_eq!(
            parse(&full).unwrap().content.settings.reserve_soc_permille,
            Setting::Set(1000)
        );
    }

    #[test]
    fn sentinels_code_unchanged_and_local() {
        let s = Settings {
            participating: Setting::Local,
            reserve_soc_permille: Setting::Local,
            export_limit_w: Setting::Local,
            max_sink_w: Setting::Unchanged,
            max_source_w: Setting::Set(LOCAL_U32 - 1),
            start_delay_max_s: Setting::Set(0),
        };
        let bytes = encode(&message(1, s), &server());
        assert_eq!(bytes[field::PARTICIPATING], LOCAL_U8);
        assert_eq!(&bytes[field::RESERVE_SOC], &LOCAL_U16.to_be_bytes());
        assert_eq!(&bytes[field::EXPORT_LIMIT], &LOCAL_U32.to_be_bytes());
        assert_eq!(&bytes[field::MAX_SINK], &UNCHANGED_U32.to_be_bytes());
        assert_eq!(parse(&bytes).unwrap().content.settings, s);
        let unchanged = encode(&message(1, Settings::default()), &server());
        assert_eq!(unchanged[field::PARTICIPATING], UNCHANGED_U8);
        assert_eq!(&unchanged[field::RESERVE_SOC], &UNCHANGED_U16.to_be_bytes());
        assert_eq!(Setting::Set(5u32).set_value(), Some(5));
        assert_eq!(Setting::<u32>::Local.set_value(), None);
    }

    fn arbitrary_u32_setting() -> impl Strategy<Value = Setting<u32>> {
        prop_oneof![
            Just(Setting::Unchanged),
            Just(Setting::Local),
            (0u32..LOCAL_U32).prop_map(Setting::Set),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever valid settings a message holds, parse reads back what
        /// encode wrote.
        #[test]
        fn encode_parse_round_trip(
            participating in prop_oneof![
                Just(Setting::Unchanged),
                Just(Setting::Local),
                any::<bool>().prop_map(Setting::Set),
            ],
            reserve in prop_oneof![
                Just(Setting::Unchanged),
                Just(Setting::Local),
                (0u16..=MAX_RESERVE_PERMILLE).prop_map(Setting::Set),
            ],
            export in arbitrary_u32_setting(),
            sink in arbitrary_u32_setting(),
            source in arbitrary_u32_setting(),
            delay in arbitrary_u32_setting(),
            sequence in any::<u64>(),
        ) {
            let m = message(sequence, Settings {
                participating,
                reserve_soc_permille: reserve,
                export_limit_w: export,
                max_sink_w: sink,
                max_source_w: source,
                start_delay_max_s: delay,
            });
            let bytes = encode(&m, &server());
            let p = parse(&bytes).unwrap();
            prop_assert_eq!(p.content, m);
            prop_assert_eq!(&p.signed_bytes[..], &bytes[..SIGNED_LEN]);
        }
    }
}
