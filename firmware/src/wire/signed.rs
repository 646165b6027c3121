//! The signed server message: what the remote server's dispatch commands,
//! heartbeats ([`super::dispatch`]) and configuration messages
//! ([`super::config_message`]) share on the wire.
//!
//! Every signed message is a fixed-length record, all integers unsigned
//! big-endian:
//!
//! | bytes            | field                                             |
//! |------------------|---------------------------------------------------|
//! | 0                | the message type's first byte (dispatch version `1`, configuration `0xC1`) |
//! | 1..4             | the message type's own                            |
//! | 4..68            | the shared [`Header`]: `branch_id` u32, `site_id` u32, `key` 32 bytes, `sequence` u64, `issued_at_s` u64, `expires_at_s` u64 |
//! | 68..`signed_len` | the message type's own                            |
//! | `signed_len`..   | the 64-byte Ed25519 signature by `key` over bytes `0..signed_len` |
//!
//! Nothing follows the signature. [`SignedFrame`] is a checked view over
//! received bytes (first byte and exact length checked), [`Header`] the
//! typed shared fields with `parse` and `emit`, [`Signed`] a parsed message
//! with its key, signature and signed bytes, and [`seal`] signs a finished
//! message (for servers, tools and tests). Field by field:
//! `firmware/docs/dispatch.md` and `firmware/docs/config-message.md`.
//!
//! Uses `ed25519-dalek` and `heapless` only, nothing else of the crate. It
//! reads and writes bytes; it decides nothing: which keys are trusted, and
//! the sequence, time and addressing checks, are the cluster's.

use core::fmt;
use core::ops::Range;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Length of the Ed25519 signature that ends every signed message, bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of the signing server's Ed25519 public key in the header, bytes.
pub const KEY_LEN: usize = 32;
/// Site id meaning "every assembly on the branch".
pub const ALL_SITES: u32 = 0;

/// Offsets of the fields every signed message has.
pub(crate) mod field {
    use core::ops::Range;
    /// The message type's first byte.
    pub const VERSION: usize = 0;
    pub const BRANCH: Range<usize> = 4..8;
    pub const SITE: Range<usize> = 8..12;
    pub const KEY: Range<usize> = 12..44;
    pub const SEQUENCE: Range<usize> = 44..52;
    pub const ISSUED_AT: Range<usize> = 52..60;
    pub const EXPIRES_AT: Range<usize> = 60..68;
}

/// Why bytes are not a well-formed signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// No bytes at all.
    Empty,
    /// A first byte this firmware does not understand for the message type.
    UnsupportedVersion(u8),
    /// Fewer bytes than the message type has.
    Truncated { len: usize },
    /// More bytes than the message type has (trailing bytes).
    TrailingBytes { len: usize },
    /// Command kind code not known.
    UnknownKind(u8),
    /// Requirement kind code not known.
    UnknownRequirement(u8),
    /// A reserved byte is not zero.
    ReservedNotZero,
    /// Fields that contradict each other: power or duration on a `Cancel`
    /// or `Heartbeat`, a requirement reference without a requirement kind.
    Inconsistent,
    /// `expires_at_s` is not after `issued_at_s`.
    BadValidity,
    /// A configuration message's setting is neither a valid value nor one
    /// of its sentinels (see `firmware/docs/config-message.md`).
    BadSetting,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty message"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported message version {v}"),
            Self::Truncated { len } => write!(f, "message truncated: {len} bytes"),
            Self::TrailingBytes { len } => write!(f, "message has trailing bytes: {len} bytes"),
            Self::UnknownKind(k) => write!(f, "unknown dispatch kind {k}"),
            Self::UnknownRequirement(k) => write!(f, "unknown requirement kind {k}"),
            Self::ReservedNotZero => write!(f, "reserved byte is not zero"),
            Self::Inconsistent => write!(f, "inconsistent message fields"),
            Self::BadValidity => write!(f, "expiry is not after issue time"),
            Self::BadSetting => write!(f, "configuration setting out of its encoding"),
        }
    }
}

impl core::error::Error for ParseError {}

/// A checked view over the bytes of one signed message: its first byte is
/// the message type's and it is exactly `signed_len` bytes plus the
/// signature long. Field accessors read big-endian values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedFrame<'a> {
    signed_bytes: &'a [u8],
    signature: &'a [u8; SIGNATURE_LEN],
}

impl<'a> SignedFrame<'a> {
    /// Checks `bytes` against a message type (first byte `version`, signed
    /// part `signed_len` bytes): the first byte first (`Empty`,
    /// `UnsupportedVersion`, so another version may have another length),
    /// then the exact length (`Truncated`, `TrailingBytes`).
    pub fn new_checked(
        bytes: &'a [u8],
        version: u8,
        signed_len: usize,
    ) -> Result<Self, ParseError> {
        let first = *bytes.first().ok_or(ParseError::Empty)?;
        if first != version {
            return Err(ParseError::UnsupportedVersion(first));
        }
        let len = bytes.len();
        let wire_len = signed_len.saturating_add(SIGNATURE_LEN);
        if len < wire_len {
            return Err(ParseError::Truncated { len });
        }
        if len > wire_len {
            return Err(ParseError::TrailingBytes { len });
        }
        let (signed_bytes, signature) = bytes
            .split_at_checked(signed_len)
            .ok_or(ParseError::Truncated { len })?;
        let signature = signature
            .try_into()
            .map_err(|_| ParseError::Truncated { len })?;
        Ok(SignedFrame {
            signed_bytes,
            signature,
        })
    }

    /// The bytes the signature covers (everything before it).
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.signed_bytes
    }

    /// The Ed25519 signature that ends the message.
    pub fn signature(&self) -> &'a [u8; SIGNATURE_LEN] {
        self.signature
    }

    /// The signing server's public key the message claims.
    pub fn key(&self) -> [u8; KEY_LEN] {
        self.array(field::KEY)
    }

    /// The byte at `at` of the signed part (0 outside it).
    pub(crate) fn byte(&self, at: usize) -> u8 {
        self.signed_bytes.get(at).copied().unwrap_or(0)
    }

    /// The big-endian `u16` at `at` of the signed part (0 outside it).
    pub(crate) fn be_u16(&self, at: Range<usize>) -> u16 {
        u16::from_be_bytes(self.array(at))
    }

    /// The big-endian `u32` at `at` of the signed part (0 outside it).
    pub(crate) fn be_u32(&self, at: Range<usize>) -> u32 {
        u32::from_be_bytes(self.array(at))
    }

    /// The big-endian `u64` at `at` of the signed part (0 outside it).
    pub(crate) fn be_u64(&self, at: Range<usize>) -> u64 {
        u64::from_be_bytes(self.array(at))
    }

    /// The bytes at `at` of the signed part (zeros unless `at` lies in it
    /// and is `N` long).
    fn array<const N: usize>(&self, at: Range<usize>) -> [u8; N] {
        self.signed_bytes
            .get(at)
            .and_then(|src| <[u8; N]>::try_from(src).ok())
            .unwrap_or([0u8; N])
    }

    /// Attaches the message's parsed `content` to its key, signature and
    /// signed bytes.
    pub fn to_signed<T, const SIGNED_LEN: usize>(&self, content: T) -> Signed<T, SIGNED_LEN> {
        Signed {
            content,
            key: self.key(),
            signature: *self.signature,
            signed_bytes: self.array(0..SIGNED_LEN),
        }
    }
}

/// The fields every signed server message carries at the same offsets,
/// bytes 4..68: addressing, the signing key, the sequence and the validity
/// window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Distribution branch addressed.
    pub branch_id: u32,
    /// Site addressed on that branch; [`ALL_SITES`] (0) = every assembly on
    /// the branch.
    pub site_id: u32,
    /// The signing server's Ed25519 public key.
    pub key: [u8; KEY_LEN],
    /// Strictly increasing per server key, across everything it signs.
    pub sequence: u64,
    /// When the server issued the message, UTC seconds (server clock).
    pub issued_at_s: u64,
    /// Last UTC second (server clock) at which the message may be
    /// accepted; after `issued_at_s`.
    pub expires_at_s: u64,
}

impl Header {
    /// Reads the shared header of a checked frame; `BadValidity` unless
    /// `expires_at_s > issued_at_s`.
    pub fn parse(frame: &SignedFrame<'_>) -> Result<Header, ParseError> {
        let issued_at_s = frame.be_u64(field::ISSUED_AT);
        let expires_at_s = frame.be_u64(field::EXPIRES_AT);
        if expires_at_s <= issued_at_s {
            return Err(ParseError::BadValidity);
        }
        Ok(Header {
            branch_id: frame.be_u32(field::BRANCH),
            site_id: frame.be_u32(field::SITE),
            key: frame.key(),
            sequence: frame.be_u64(field::SEQUENCE),
            issued_at_s,
            expires_at_s,
        })
    }

    /// Writes the header into bytes 4..68 of `message` (fields that do not
    /// fit a shorter buffer are left out).
    pub fn emit(&self, message: &mut [u8]) {
        for (range, value) in [
            (field::BRANCH, &self.branch_id.to_be_bytes()[..]),
            (field::SITE, &self.site_id.to_be_bytes()[..]),
            (field::KEY, &self.key[..]),
            (field::SEQUENCE, &self.sequence.to_be_bytes()[..]),
            (field::ISSUED_AT, &self.issued_at_s.to_be_bytes()[..]),
            (field::EXPIRES_AT, &self.expires_at_s.to_be_bytes()[..]),
        ] {
            if let Some(dst) = message.get_mut(range) {
                dst.copy_from_slice(value);
            }
        }
    }
}

/// A parsed, not yet verified, signed message: its content, the server key
/// it claims, the signature, and the exact `SIGNED_LEN` bytes that were
/// signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<T, const SIGNED_LEN: usize> {
    /// What the message says (a dispatch, a configuration message).
    pub content: T,
    /// The signing server's Ed25519 public key.
    pub key: [u8; KEY_LEN],
    pub signature: [u8; SIGNATURE_LEN],
    /// Bytes `0..SIGNED_LEN` of the message: what the signature covers.
    pub signed_bytes: [u8; SIGNED_LEN],
}

impl<T, const SIGNED_LEN: usize> Signed<T, SIGNED_LEN> {
    /// Checks the signature with `verify_strict` (rejects non-canonical
    /// signatures and weak keys).
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.signed_bytes, &signature).is_ok()
    }
}

/// Signs a finished message with `key`: the signature over everything but
/// the last [`SIGNATURE_LEN`] bytes goes into those last bytes. Returns the
/// message as sent. The key field is the caller's to fill (with
/// `key.verifying_key()` for a genuine message).
pub fn seal<const WIRE_LEN: usize>(
    mut message: [u8; WIRE_LEN],
    key: &SigningKey,
) -> heapless::Vec<u8, WIRE_LEN> {
    let signed_len = WIRE_LEN.saturating_sub(SIGNATURE_LEN);
    let (signed_bytes, signature) = message.split_at_mut(signed_len);
    let sig = key.sign(signed_bytes).to_bytes();
    if let Some(dst) = signature.get_mut(..SIGNATURE_LEN) {
        dst.copy_from_slice(&sig);
    }
    // Capacity is exactly WIRE_LEN: cannot fail.
    heapless::Vec::from_slice(&message).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The bytes written as hex digits (test vectors).
    pub(crate) fn from_hex(hex: &str) -> Vec<u8> {
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    const VERSION: u8 = 7;
    const SIGNED_LEN: usize = 72;
    const WIRE_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;

    /// When the tests' messages are issued, UTC seconds.
    pub(crate) const NOW_UTC: u64 = 1_790_000_000;

    /// The server key of the documented test vectors.
    pub(crate) fn server() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    /// A key no assembly in the tests trusts.
    pub(crate) fn other_server() -> SigningKey {
        SigningKey::from_bytes(&[9u8; 32])
    }

    fn header() -> Header {
        Header {
            branch_id: 17,
            site_id: 1042,
            key: server().verifying_key().to_bytes(),
            sequence: 42,
            issued_at_s: NOW_UTC,
            expires_at_s: NOW_UTC + 300,
        }
    }

    fn message(h: &Header) -> heapless::Vec<u8, WIRE_LEN> {
        let mut b = [0u8; WIRE_LEN];
        b[field::VERSION] = VERSION;
        h.emit(&mut b);
        b[70] = 0xAB;
        seal(b, &server())
    }

    #[test]
    fn header_emit_parse_round_trip_at_its_offsets() {
        let h = header();
        let bytes = message(&h);
        assert_eq!(&bytes[4..8], &17u32.to_be_bytes());
        assert_eq!(&bytes[8..12], &1042u32.to_be_bytes());
        assert_eq!(&bytes[12..44], &h.key);
        assert_eq!(&bytes[44..52], &42u64.to_be_bytes());
        assert_eq!(&bytes[52..60], &1_790_000_000u64.to_be_bytes());
        assert_eq!(&bytes[60..68], &1_790_000_300u64.to_be_bytes());
        let frame = SignedFrame::new_checked(&bytes, VERSION, SIGNED_LEN).unwrap();
        assert_eq!(Header::parse(&frame), Ok(h));
        assert_eq!(frame.byte(70), 0xAB);
        assert_eq!(frame.be_u16(70..72), 0xAB00);
        assert_eq!(frame.byte(WIRE_LEN), 0);
    }

    #[test]
    fn seal_signs_everything_before_the_signature() {
        let bytes = message(&header());
        let frame = SignedFrame::new_checked(&bytes, VERSION, SIGNED_LEN).unwrap();
        assert_eq!(frame.signed_bytes(), &bytes[..SIGNED_LEN]);
        assert_eq!(&frame.signature()[..], &bytes[SIGNED_LEN..]);
        let signed: Signed<(), SIGNED_LEN> = frame.to_signed(());
        assert_eq!(signed.key, header().key);
        assert_eq!(&signed.signed_bytes[..], &bytes[..SIGNED_LEN]);
        assert!(signed.verify(&server().verifying_key()));
        assert!(!signed.verify(&other_server().verifying_key()));
        let mut altered = signed.clone();
        altered.signed_bytes[70] ^= 1;
        assert!(!altered.verify(&server().verifying_key()));
    }

    #[test]
    fn the_frame_checks_first_byte_then_exact_length() {
        let bytes = message(&header());
        let mut long = [0u8; WIRE_LEN + 1];
        long[..WIRE_LEN].copy_from_slice(&bytes);
        let check = |b: &[u8]| SignedFrame::new_checked(b, VERSION, SIGNED_LEN).map(|_| ());
        assert_eq!(check(&[]), Err(ParseError::Empty));
        assert_eq!(check(&[8]), Err(ParseError::UnsupportedVersion(8)));
        assert_eq!(check(&[VERSION]), Err(ParseError::Truncated { len: 1 }));
        assert_eq!(
            check(&bytes[..WIRE_LEN - 1]),
            Err(ParseError::Truncated { len: WIRE_LEN - 1 })
        );
        assert_eq!(
            check(&long),
            Err(ParseError::TrailingBytes { len: WIRE_LEN + 1 })
        );
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn validity_must_end_after_issue() {
        for expires_at_s in [NOW_UTC, NOW_UTC - 1] {
            let bytes = message(&Header {
                expires_at_s,
                ..header()
            });
            let frame = SignedFrame::new_checked(&bytes, VERSION, SIGNED_LEN).unwrap();
            assert_eq!(Header::parse(&frame), Err(ParseError::BadValidity));
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(
            ParseError::Truncated { len: 3 }.to_string(),
            "message truncated: 3 bytes"
        );
        assert_eq!(
            ParseError::BadValidity.to_string(),
            "expiry is not after issue time"
        );
    }
}
