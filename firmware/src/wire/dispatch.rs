//! Dispatch commands [claims 1, 20]: the remote server's signed Sink,
//! Source, Cancel and Heartbeat messages to the assemblies of one branch.
//!
//! A version-1 command is 144 bytes: the first byte [`VERSION`], the kind,
//! the requirement, a reserved byte, the shared signed header
//! ([`super::signed::Header`], bytes 4..68), power, duration and the
//! requirement reference (bytes 68..80), then the Ed25519 signature over
//! bytes 0..80. Field by field: `firmware/docs/dispatch.md`.
//!
//! [`Dispatch`] is the typed content with `parse` (from a checked
//! [`SignedFrame`]) and `emit`; [`parse`] reads a whole command,
//! [`encode`] writes and signs one (for servers, tools and tests). Uses
//! [`super::signed`] only. Structure only: whether a command is genuine,
//! fresh, addressed here and within the envelope is the cluster's to check.

use ed25519_dalek::SigningKey;

use super::signed::{self, seal, Header, ParseError, Signed, SignedFrame, KEY_LEN, SIGNATURE_LEN};

/// Wire format version this firmware understands.
pub const VERSION: u8 = 1;
/// Length of the signed part of a dispatch command (everything before the
/// signature), in bytes.
pub const SIGNED_LEN: usize = 80;
/// Total length of a version-1 dispatch command, in bytes.
pub const WIRE_LEN: usize = SIGNED_LEN + SIGNATURE_LEN;

/// Offsets of the dispatch command's own fields (the header's are in
/// [`super::signed`]).
pub(crate) mod field {
    use core::ops::Range;
    pub const KIND: usize = 1;
    pub const REQUIREMENT: usize = 2;
    pub const RESERVED: usize = 3;
    pub const POWER: Range<usize> = 68..72;
    pub const DURATION: Range<usize> = 72..76;
    pub const REQUIREMENT_REF: Range<usize> = 76..80;
}

const KIND_SINK: u8 = 1;
const KIND_SOURCE: u8 = 2;
const KIND_CANCEL: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;

/// What the server asks the branch's assemblies to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Sink (absorb) `power_w` watts from the network into the battery for
    /// `duration_s` seconds (counted from the command's `issued_at_s`).
    Sink { power_w: u32, duration_s: u32 },
    /// Source (deliver) `power_w` watts from the battery to the network for
    /// `duration_s` seconds (counted from the command's `issued_at_s`).
    Source { power_w: u32, duration_s: u32 },
    /// Stop the dispatch in force, if any.
    Cancel,
    /// Liveness only: the server is there. Refreshes the assembly's view of
    /// the server (see `ClusterConfig::server_silence_s`) and consumes the
    /// sequence like any accepted message; changes nothing else.
    Heartbeat,
}

impl Command {
    /// The command of kind code `kind` with the power and duration fields:
    /// `UnknownKind` for an unknown code, `Inconsistent` for a Cancel or
    /// Heartbeat with a power or duration.
    fn parse(kind: u8, power_w: u32, duration_s: u32) -> Result<Command, ParseError> {
        match kind {
            KIND_SINK => Ok(Command::Sink {
                power_w,
                duration_s,
            }),
            KIND_SOURCE => Ok(Command::Source {
                power_w,
                duration_s,
            }),
            KIND_CANCEL | KIND_HEARTBEAT if power_w != 0 || duration_s != 0 => {
                Err(ParseError::Inconsistent)
            }
            KIND_CANCEL => Ok(Command::Cancel),
            KIND_HEARTBEAT => Ok(Command::Heartbeat),
            other => Err(ParseError::UnknownKind(other)),
        }
    }

    /// The kind code, power and duration fields that carry this command.
    fn fields(self) -> (u8, u32, u32) {
        match self {
            Command::Sink {
                power_w,
                duration_s,
            } => (KIND_SINK, power_w, duration_s),
            Command::Source {
                power_w,
                duration_s,
            } => (KIND_SOURCE, power_w, duration_s),
            Command::Cancel => (KIND_CANCEL, 0, 0),
            Command::Heartbeat => (KIND_HEARTBEAT, 0, 0),
        }
    }
}

/// The branch requirement a dispatch serves [claim 1: "in accordance with a
/// predetermined requirement on said local branch"]. Informational: carried
/// into the decision log, it does not change what the assembly does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequirementKind {
    /// Reduce the branch's peak demand (source).
    PeakDemand = 1,
    /// Absorb surplus local generation on the branch, e.g. PV export (sink).
    LocalGenerationSurplus = 2,
    /// Grid storage service requested upstream (either direction).
    GridStorage = 3,
    /// Voltage support on the branch (either direction).
    VoltageSupport = 4,
}

impl RequirementKind {
    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::PeakDemand),
            2 => Some(Self::LocalGenerationSurplus),
            3 => Some(Self::GridStorage),
            4 => Some(Self::VoltageSupport),
            _ => None,
        }
    }
}

/// A branch requirement and the server's reference for it (its event id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub kind: RequirementKind,
    /// The server's identifier of the branch event the dispatch serves.
    pub reference: u32,
}

impl Requirement {
    /// The requirement of kind code `code` (0: none) with `reference`:
    /// `UnknownRequirement` for an unknown code, `Inconsistent` for a
    /// reference without a kind.
    fn parse(code: u8, reference: u32) -> Result<Option<Requirement>, ParseError> {
        if code == 0 {
            return if reference != 0 {
                Err(ParseError::Inconsistent)
            } else {
                Ok(None)
            };
        }
        let kind = RequirementKind::from_code(code).ok_or(ParseError::UnknownRequirement(code))?;
        Ok(Some(Requirement { kind, reference }))
    }
}

/// The content of a dispatch command (everything the server signs except the
/// key, which [`encode`] takes from the signing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    /// Distribution branch the command addresses.
    pub branch_id: u32,
    /// Site the command addresses on that branch;
    /// [`signed::ALL_SITES`] (0) = every assembly on the branch.
    pub site_id: u32,
    /// Strictly increasing per server key.
    pub sequence: u64,
    /// When the server issued the command, UTC seconds (server clock). The
    /// command's action runs from here for `duration_s`.
    pub issued_at_s: u64,
    /// Last UTC second (server clock) at which the command may be accepted;
    /// must be after `issued_at_s`.
    pub expires_at_s: u64,
    pub command: Command,
    pub requirement: Option<Requirement>,
}

/// A parsed, not yet verified, dispatch command: the content, the server key
/// it claims, the signature, and bytes `0..80`, what the signature covers.
pub type SignedDispatch = Signed<Dispatch, SIGNED_LEN>;

impl Dispatch {
    /// Reads a dispatch command's content from its checked frame, in this
    /// order: the reserved byte (`ReservedNotZero`), the kind with power and
    /// duration (`UnknownKind`, `Inconsistent`), the requirement
    /// (`UnknownRequirement`, `Inconsistent`), the validity window
    /// (`BadValidity`).
    pub fn parse(frame: &SignedFrame<'_>) -> Result<Dispatch, ParseError> {
        if frame.byte(field::RESERVED) != 0 {
            return Err(ParseError::ReservedNotZero);
        }
        let command = Command::parse(
            frame.byte(field::KIND),
            frame.be_u32(field::POWER),
            frame.be_u32(field::DURATION),
        )?;
        let requirement = Requirement::parse(
            frame.byte(field::REQUIREMENT),
            frame.be_u32(field::REQUIREMENT_REF),
        )?;
        let Header {
            branch_id,
            site_id,
            sequence,
            issued_at_s,
            expires_at_s,
            ..
        } = Header::parse(frame)?;
        Ok(Dispatch {
            branch_id,
            site_id,
            sequence,
            issued_at_s,
            expires_at_s,
            command,
            requirement,
        })
    }

    /// Writes the signed part (bytes 0..80) of this command, claiming the
    /// server key `key`, into `message`; the signature is [`signed::seal`]'s.
    pub fn emit(&self, key: [u8; KEY_LEN], message: &mut [u8; WIRE_LEN]) {
        let (kind, power_w, duration_s) = self.command.fields();
        let (requirement, reference) = match self.requirement {
            Some(r) => (r.kind as u8, r.reference),
            None => (0, 0),
        };
        message[signed::field::VERSION] = VERSION;
        message[field::KIND] = kind;
        message[field::REQUIREMENT] = requirement;
        message[field::RESERVED] = 0;
        let Dispatch {
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
        message[field::POWER].copy_from_slice(&power_w.to_be_bytes());
        message[field::DURATION].copy_from_slice(&duration_s.to_be_bytes());
        message[field::REQUIREMENT_REF].copy_from_slice(&reference.to_be_bytes());
    }
}

/// Checks that `bytes` is framed as one version-1 dispatch command (first
/// byte, exact length).
pub fn checked_frame(bytes: &[u8]) -> Result<SignedFrame<'_>, ParseError> {
    SignedFrame::new_checked(bytes, VERSION, SIGNED_LEN)
}

/// Parses a dispatch command from `bytes` (exactly one command, no trailing
/// bytes). Checks structure only: the signature, key, addressing, sequence,
/// time and envelope are the cluster's to check.
pub fn parse(bytes: &[u8]) -> Result<SignedDispatch, ParseError> {
    let frame = checked_frame(bytes)?;
    Ok(frame.to_signed(Dispatch::parse(&frame)?))
}

/// Encodes and signs `dispatch` with `key` (for tests, tools and the
/// server's reference implementation). The server key's public half goes in
/// the key field. Does not check the dispatch: it can encode commands that
/// [`parse`] or the cluster will refuse, which is what tests need.
pub fn encode(dispatch: &Dispatch, key: &SigningKey) -> heapless::Vec<u8, WIRE_LEN> {
    let mut message = [0u8; WIRE_LEN];
    dispatch.emit(key.verifying_key().to_bytes(), &mut message);
    seal(message, key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::signed::tests::{from_hex, other_server, server, NOW_UTC};
    use crate::wire::signed::ALL_SITES;
    use proptest::prelude::*;

    /// A dispatch for branch 17, every site, issued now, valid 300 s,
    /// serving a peak-demand requirement.
    pub(crate) fn dispatch(seq: u64, command: Command) -> Dispatch {
        Dispatch {
            branch_id: 17,
            site_id: ALL_SITES,
            sequence: seq,
            issued_at_s: NOW_UTC,
            expires_at_s: NOW_UTC + 300,
            command,
            requirement: Some(Requirement {
                kind: RequirementKind::PeakDemand,
                reference: 99,
            }),
        }
    }

    /// A Source [`dispatch`].
    pub(crate) fn source(seq: u64, power_w: u32, duration_s: u32) -> Dispatch {
        dispatch(
            seq,
            Command::Source {
                power_w,
                duration_s,
            },
        )
    }

    /// A heartbeat for branch 17, every site, issued now, valid 300 s.
    pub(crate) fn heartbeat(seq: u64) -> Dispatch {
        Dispatch {
            requirement: None,
            ..dispatch(seq, Command::Heartbeat)
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let d = source(5, 2000, 600);
        let bytes = encode(&d, &server());
        assert_eq!(bytes.len(), WIRE_LEN);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(bytes[1], KIND_SOURCE);
        assert_eq!(&bytes[4..8], &17u32.to_be_bytes());
        assert_eq!(&bytes[44..52], &5u64.to_be_bytes());
        let p = parse(&bytes).unwrap();
        assert_eq!(p.content, d);
        assert_eq!(p.key, server().verifying_key().to_bytes());
        assert!(p.verify(&server().verifying_key()));
        assert!(!p.verify(&other_server().verifying_key()));
    }

    /// The vector in docs/dispatch.md, produced with Python `cryptography`
    /// (the cluster's tests check that it is accepted).
    #[test]
    fn test_vector() {
        let expected = from_hex(SOURCE_VECTOR_HEX);
        let d = Dispatch {
            branch_id: 17,
            site_id: ALL_SITES,
            sequence: 42,
            issued_at_s: 1_790_000_000,
            expires_at_s: 1_790_000_300,
            command: Command::Source {
                power_w: 2000,
                duration_s: 1800,
            },
            requirement: Some(Requirement {
                kind: RequirementKind::PeakDemand,
                reference: 99,
            }),
        };
        assert_eq!(encode(&d, &server()).as_slice(), expected.as_slice());
        assert_eq!(parse(&expected).unwrap().content, d);
    }

    /// The Source command of docs/dispatch.md (server key `[7; 32]`).
    pub(crate) const SOURCE_VECTOR_HEX: &str = "010201000000001100000000ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000000000002a000000006ab13b80000000006ab13cac000007d00000070800000063599210dff93cbd2a64fd03954988e3d92ccecddd2b341821f043892835d01ca7c726943f487bfd572049bebc192effa6cd217f47d6ba47a3a915a780864cac0b";

    /// The heartbeat vector in docs/dispatch.md, produced with Python
    /// `cryptography`.
    #[test]
    fn heartbeat_vector() {
        const HEX: &str = "010400000000001100000000ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c000000000000002c000000006ab13bbc000000006ab13bf8000000000000000000000000d94de5ae682aef5c1994bf1f5294664b80703232b00a051585379d24cf086bc7c155db861ed0a72b74cf7672138630ea57b58911bfb82687f6b82c90d6ace300";
        let expected = from_hex(HEX);
        let hb = Dispatch {
            issued_at_s: 1_790_000_060,
            expires_at_s: 1_790_000_120,
            ..heartbeat(44)
        };
        assert_eq!(encode(&hb, &server()).as_slice(), expected.as_slice());
        assert_eq!(parse(&expected).unwrap().content, hb);
        // A heartbeat carries no power and no duration.
        let mut with_power = encode(&heartbeat(1), &server());
        with_power[field::DURATION.start + 3] = 1;
        assert_eq!(parse(&with_power).unwrap_err(), ParseError::Inconsistent);
    }

    #[test]
    fn structure_errors_in_their_order() {
        let good = encode(&source(1, 1000, 60), &server());
        let altered = |at: usize, value: u8| {
            let mut b = good.clone();
            b[at] = value;
            b
        };
        let cancel_with_power = {
            let mut b = encode(&dispatch(1, Command::Cancel), &server());
            b[field::POWER.start + 3] = 1;
            b
        };
        let reference_without_kind = {
            let mut b = encode(
                &Dispatch {
                    requirement: None,
                    ..source(1, 1, 1)
                },
                &server(),
            );
            b[field::REQUIREMENT_REF.start] = 1;
            b
        };
        let bad_validity = encode(
            &Dispatch {
                expires_at_s: NOW_UTC,
                ..source(1, 1000, 60)
            },
            &server(),
        );
        // The reserved byte is checked before the kind, the kind before
        // the requirement, the requirement before the validity.
        let mut everything_wrong = altered(field::RESERVED, 1);
        everything_wrong[field::KIND] = 9;
        let cases: [(&[u8], ParseError); 9] = [
            (&[], ParseError::Empty),
            (b"hello, branch 17!", ParseError::UnsupportedVersion(b'h')),
            (&good[..WIRE_LEN - 1], ParseError::Truncated { len: 143 }),
            (&altered(field::KIND, 9), ParseError::UnknownKind(9)),
            (
                &altered(field::REQUIREMENT, 77),
                ParseError::UnknownRequirement(77),
            ),
            (&everything_wrong, ParseError::ReservedNotZero),
            (&cancel_with_power, ParseError::Inconsistent),
            (&reference_without_kind, ParseError::Inconsistent),
            (&bad_validity, ParseError::BadValidity),
        ];
        for (bytes, err) in cases {
            assert_eq!(parse(bytes).unwrap_err(), err);
        }
    }

    fn arbitrary_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(power_w, duration_s)| Command::Sink {
                power_w,
                duration_s
            }),
            (any::<u32>(), any::<u32>()).prop_map(|(power_w, duration_s)| Command::Source {
                power_w,
                duration_s
            }),
            Just(Command::Cancel),
            Just(Command::Heartbeat),
        ]
    }

    fn arbitrary_requirement() -> impl Strategy<Value = Option<Requirement>> {
        let kinds = [
            RequirementKind::PeakDemand,
            RequirementKind::LocalGenerationSurplus,
            RequirementKind::GridStorage,
            RequirementKind::VoltageSupport,
        ];
        prop::option::of(
            (prop::sample::select(kinds.to_vec()), any::<u32>())
                .prop_map(|(kind, reference)| Requirement { kind, reference }),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever a well-formed command holds, parse reads back what
        /// encode wrote, and the signature covers bytes 0..80.
        #[test]
        fn encode_parse_round_trip(
            branch_id in any::<u32>(),
            site_id in any::<u32>(),
            sequence in any::<u64>(),
            issued_at_s in 0u64..u64::MAX,
            validity_s in 1u64..1_000_000,
            command in arbitrary_command(),
            requirement in arbitrary_requirement(),
        ) {
            let d = Dispatch {
                branch_id,
                site_id,
                sequence,
                issued_at_s,
                expires_at_s: issued_at_s.saturating_add(validity_s),
                command,
                requirement,
            };
            prop_assume!(d.expires_at_s > d.issued_at_s);
            let bytes = encode(&d, &server());
            let p = parse(&bytes).unwrap();
            prop_assert_eq!(p.content, d);
            prop_assert_eq!(&p.signed_bytes[..], &bytes[..SIGNED_LEN]);
            prop_assert!(p.verify(&server().verifying_key()));
        }
    }
}
