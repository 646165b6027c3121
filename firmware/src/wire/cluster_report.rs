//! Cluster reports [claims 1, 9]: what an assembly tells the remote server
//! about its part in the branch's resource — its state of charge, the
//! reserve it keeps, the power it could take or give now, whether it takes
//! part in dispatch, the dispatch in force and its message counters.
//!
//! The server asks ([`crate::Input::ClusterReportRequest`]); the controller
//! answers with a [`ClusterReport`] ([`crate::Output::ClusterReport`]), which
//! the board's uplink sends as these [`WIRE_LEN`] bytes, little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | [`KIND`] `0xA1` (never a dispatch version nor `0xC1`) |
//! | 1 | [`VERSION`] 1 |
//! | 2 | flags: bit 0 participating, bit 1 server silent, bit 2 a dispatch sequence follows, bit 3 a dispatch share follows; bits 4..7 zero |
//! | 3 | reserved, zero |
//! | 4..8 | site id (`u32`) |
//! | 8..12 | branch id (`u32`) |
//! | 12..20 | controller time the report was taken at, ms (`u64`) |
//! | 20..24 | estimated state of charge, 0..=1 (`f32`) |
//! | 24..28 | reserve state of charge in force, 0..=1 (`f32`) |
//! | 28..32 | largest charge power allowed now, W, ≥ 0 (`f32`) |
//! | 32..36 | largest discharge power allowed now, W, ≥ 0 (`f32`) |
//! | 36..44 | sequence of the dispatch in force (`u64`, 0 without flag bit 2) |
//! | 44..48 | dispatch share at the last control cycle, W, + discharge (`f32`, 0 without flag bit 3) |
//! | 48..104 | message counters, 14 × `u32` in [`MessageCounters`] field order |
//!
//! The report is not signed: it travels on the assembly's authenticated
//! uplink (TLS to the broker), and nothing in it commands anyone. `parse`
//! rejects anything a well-behaved assembly cannot send (wrong kind or
//! length, reserved bits set, a non-finite or out-of-range figure).

use core::fmt;

/// First byte of a cluster report.
pub const KIND: u8 = 0xA1;
/// The layout's version (byte 1).
pub const VERSION: u8 = 1;
/// Length of a cluster report, bytes.
pub const WIRE_LEN: usize = 104;

const PARTICIPATING: u8 = 1 << 0;
const SERVER_SILENT: u8 = 1 << 1;
const HAS_SEQUENCE: u8 = 1 << 2;
const HAS_SHARE: u8 = 1 << 3;
const KNOWN_FLAGS: u8 = PARTICIPATING | SERVER_SILENT | HAS_SEQUENCE | HAS_SHARE;
const COUNTERS_AT: usize = 48;
const COUNTERS: usize = 14;

/// Counts of the server's messages by outcome (saturating): accepted,
/// ignored and rejected by reason. Dispatch, heartbeat and configuration
/// messages are counted together (they share the key's sequence space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounters {
    /// Every accepted message (dispatch, heartbeat, configuration).
    pub accepted: u32,
    /// Of `accepted`: heartbeats.
    pub accepted_heartbeat: u32,
    /// Of `accepted`: configuration messages.
    pub accepted_config: u32,
    /// Byte-identical redeliveries of the last accepted message.
    pub duplicate: u32,
    pub ignored_other_branch: u32,
    pub ignored_other_site: u32,
    pub malformed: u32,
    pub unknown_key: u32,
    pub bad_signature: u32,
    pub replayed: u32,
    pub expired: u32,
    pub not_yet_valid: u32,
    pub out_of_envelope: u32,
    pub not_participating: u32,
}

impl MessageCounters {
    /// Total rejections, all reasons.
    pub fn rejected(&self) -> u32 {
        self.rejections()
            .iter()
            .fold(0u32, |a, (_, b)| a.saturating_add(*b))
    }

    /// Each rejection reason's count, in wire order, by its snake-case name.
    pub fn rejections(&self) -> [(&'static str, u32); 8] {
        [
            ("malformed", self.malformed),
            ("unknown_key", self.unknown_key),
            ("bad_signature", self.bad_signature),
            ("replayed", self.replayed),
            ("expired", self.expired),
            ("not_yet_valid", self.not_yet_valid),
            ("out_of_envelope", self.out_of_envelope),
            ("not_participating", self.not_participating),
        ]
    }

    /// Every message counted: accepted, ignored (incl. duplicates) and
    /// rejected.
    pub fn total(&self) -> u32 {
        [
            self.accepted,
            self.duplicate,
            self.ignored_other_branch,
            self.ignored_other_site,
            self.rejected(),
        ]
        .iter()
        .fold(0u32, |a, b| a.saturating_add(*b))
    }

    fn to_array(self) -> [u32; COUNTERS] {
        [
            self.accepted,
            self.accepted_heartbeat,
            self.accepted_config,
            self.duplicate,
            self.ignored_other_branch,
            self.ignored_other_site,
            self.malformed,
            self.unknown_key,
            self.bad_signature,
            self.replayed,
            self.expired,
            self.not_yet_valid,
            self.out_of_envelope,
            self.not_participating,
        ]
    }

    fn from_array(a: [u32; COUNTERS]) -> Self {
        let [accepted, accepted_heartbeat, accepted_config, duplicate, ignored_other_branch, ignored_other_site, malformed, unknown_key, bad_signature, replayed, expired, not_yet_valid, out_of_envelope, not_participating] =
            a;
        Self {
            accepted,
            accepted_heartbeat,
            accepted_config,
            duplicate,
            ignored_other_branch,
            ignored_other_site,
            malformed,
            unknown_key,
            bad_signature,
            replayed,
            expired,
            not_yet_valid,
            out_of_envelope,
            not_participating,
        }
    }
}

/// What an assembly reports about its cluster participation. Powers are
/// magnitudes in W unless signed; states of charge are fractions 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterReport {
    /// The reporting assembly's site.
    pub site_id: u32,
    /// The branch it is configured on.
    pub branch_id: u32,
    /// Controller time the report was taken at, ms since start.
    pub taken_at_ms: u64,
    /// Estimated state of charge (the estimator's, clamped to 0..=1).
    pub soc: f32,
    /// Reserve state of charge in force: the remote setting if the server
    /// set one, else `[scheduling] reserve_soc`.
    pub reserve_soc: f32,
    /// Largest charge power allowed now, W (protection limits and the
    /// converter rating; 0 when protection blocks charging).
    pub max_charge_w: f32,
    /// Largest discharge power allowed now, W (0 at or below the reserve,
    /// or when protection blocks discharging).
    pub max_discharge_w: f32,
    /// Whether the assembly takes part in dispatch now: not opted out by
    /// the server and mains present (not islanded).
    pub participating: bool,
    /// Whether the server counts as silent: the assembly is then in local
    /// operation.
    pub server_silent: bool,
    /// Sequence of the Sink/Source in force (also during its start delay).
    pub dispatch_sequence: Option<u64>,
    /// The dispatch share at the last control cycle, W: + discharge
    /// (source), − charge (sink); `None` when no dispatch was followed.
    pub dispatch_share_w: Option<f32>,
    /// Message counters since start.
    pub counters: MessageCounters,
}

/// Why bytes are not a cluster report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportError {
    /// Not [`WIRE_LEN`] bytes.
    Length { len: usize },
    /// Byte 0 is not [`KIND`].
    NotAReport(u8),
    /// Byte 1 is a layout this firmware does not know.
    UnsupportedVersion(u8),
    /// Unknown flag bits, or the reserved byte, are set.
    ReservedNotZero,
    /// A figure is not finite, a state of charge is outside 0..=1 or a
    /// power limit is negative (the field's first byte).
    BadFigure { at: usize },
    /// A value is given whose flag says it is absent (the field's first byte).
    Inconsistent { at: usize },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { len } => {
                write!(f, "a cluster report is {WIRE_LEN} bytes, found {len}")
            }
            Self::NotAReport(k) => write!(f, "not a cluster report: first byte {k:#04x}"),
            Self::UnsupportedVersion(v) => write!(f, "unsupported cluster report version {v}"),
            Self::ReservedNotZero => write!(f, "reserved flag bits or byte are not zero"),
            Self::BadFigure { at } => write!(f, "figure at byte {at} out of its range"),
            Self::Inconsistent { at } => {
                write!(f, "field at byte {at} is set though its flag says absent")
            }
        }
    }
}

fn u32_at(b: &[u8; WIRE_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8; WIRE_LEN], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// An `f32` at `at` that must be finite and within `lo..=hi`.
fn figure_at(b: &[u8; WIRE_LEN], at: usize, lo: f32, hi: f32) -> Result<f32, ReportError> {
    let x = f32::from_bits(u32_at(b, at));
    if x.is_finite() && (lo..=hi).contains(&x) {
        Ok(x)
    } else {
        Err(ReportError::BadFigure { at })
    }
}

impl ClusterReport {
    /// Writes the report's [`WIRE_LEN`] bytes.
    pub fn emit(&self) -> [u8; WIRE_LEN] {
        let mut b = [0u8; WIRE_LEN];
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        b[0] = KIND;
        b[1] = VERSION;
        b[2] = flag(self.participating, PARTICIPATING)
            | flag(self.server_silent, SERVER_SILENT)
            | flag(self.dispatch_sequence.is_some(), HAS_SEQUENCE)
            | flag(self.dispatch_share_w.is_some(), HAS_SHARE);
        b[4..8].copy_from_slice(&self.site_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.branch_id.to_le_bytes());
        b[12..20].copy_from_slice(&self.taken_at_ms.to_le_bytes());
        let figures = [
            self.soc,
            self.reserve_soc,
            self.max_charge_w,
            self.max_discharge_w,
        ];
        for (i, x) in figures.iter().enumerate() {
            b[20 + 4 * i..24 + 4 * i].copy_from_slice(&x.to_le_bytes());
        }
        b[36..44].copy_from_slice(&self.dispatch_sequence.unwrap_or(0).to_le_bytes());
        b[44..48].copy_from_slice(&self.dispatch_share_w.unwrap_or(0.0).to_le_bytes());
        for (i, n) in self.counters.to_array().iter().enumerate() {
            let at = COUNTERS_AT + 4 * i;
            b[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
        b
    }

    /// Reads a report, checking every field ([`ReportError`] names what
    /// and where).
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        let b: &[u8; WIRE_LEN] = bytes
            .try_into()
            .map_err(|_| ReportError::Length { len: bytes.len() })?;
        if b[0] != KIND {
            return Err(ReportError::NotAReport(b[0]));
        }
        if b[1] != VERSION {
            return Err(ReportError::UnsupportedVersion(b[1]));
        }
        let flags = b[2];
        if flags & !KNOWN_FLAGS != 0 || b[3] != 0 {
            return Err(ReportError::ReservedNotZero);
        }
        let sequence = u64_at(b, 36);
        let share = f32::from_bits(u32_at(b, 44));
        if flags & HAS_SEQUENCE == 0 && sequence != 0 {
            return Err(ReportError::Inconsistent { at: 36 });
        }
        if flags & HAS_SHARE == 0 && share.to_bits() != 0 {
            return Err(ReportError::Inconsistent { at: 44 });
        }
        let mut counters = [0u32; COUNTERS];
        for (i, n) in counters.iter_mut().enumerate() {
            *n = u32_at(b, COUNTERS_AT + 4 * i);
        }
        Ok(Self {
            site_id: u32_at(b, 4),
            branch_id: u32_at(b, 8),
            taken_at_ms: u64_at(b, 12),
            soc: figure_at(b, 20, 0.0, 1.0)?,
            reserve_soc: figure_at(b, 24, 0.0, 1.0)?,
            max_charge_w: figure_at(b, 28, 0.0, f32::MAX)?,
            max_discharge_w: figure_at(b, 32, 0.0, f32::MAX)?,
            participating: flags & PARTICIPATING != 0,
            server_silent: flags & SERVER_SILENT != 0,
            dispatch_sequence: (flags & HAS_SEQUENCE != 0).then_some(sequence),
            dispatch_share_w: if flags & HAS_SHARE != 0 {
                Some(figure_at(b, 44, f32::MIN, f32::MAX)?)
            } else {
                None
            },
            counters: MessageCounters::from_array(counters),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn report() -> ClusterReport {
        ClusterReport {
            site_id: 1042,
            branch_id: 3,
            taken_at_ms: 3_600_000,
            soc: 0.62,
            reserve_soc: 0.3,
            max_charge_w: 3300.0,
            max_discharge_w: 2500.0,
            participating: true,
            server_silent: false,
            dispatch_sequence: Some(77),
            dispatch_share_w: Some(-1250.5),
            counters: MessageCounters {
                accepted: 12,
                accepted_heartbeat: 9,
                bad_signature: 2,
                not_participating: 1,
                ..MessageCounters::default()
            },
        }
    }

    #[test]
    fn a_report_round_trips_and_its_layout_is_the_documented_one() {
        let r = report();
        let b = r.emit();
        assert_eq!(b.len(), WIRE_LEN);
        assert_eq!(&b[..4], &[KIND, VERSION, 0b1101, 0]);
        assert_eq!(&b[4..8], &1042u32.to_le_bytes());
        assert_eq!(&b[36..44], &77u64.to_le_bytes());
        // bad_signature is the 9th counter.
        assert_eq!(&b[48 + 4 * 8..48 + 4 * 9], &2u32.to_le_bytes());
        assert_eq!(ClusterReport::parse(&b), Ok(r));
    }

    #[test]
    fn absent_optionals_round_trip() {
        let r = ClusterReport {
            dispatch_sequence: None,
            dispatch_share_w: None,
            participating: false,
            server_silent: true,
            ..report()
        };
        let b = r.emit();
        assert_eq!(b[2], SERVER_SILENT);
        assert_eq!(ClusterReport::parse(&b), Ok(r));
    }

    #[test]
    fn malformed_reports_are_rejected_with_what_and_where() {
        let good = report().emit();
        let with = |f: &dyn Fn(&mut [u8; WIRE_LEN])| {
            let mut b = good;
            f(&mut b);
            ClusterReport::parse(&b)
        };
        assert_eq!(
            ClusterReport::parse(&good[..50]),
            Err(ReportError::Length { len: 50 })
        );
        assert_eq!(with(&|b| b[0] = 0xC1), Err(ReportError::NotAReport(0xC1)));
        assert_eq!(with(&|b| b[1] = 2), Err(ReportError::UnsupportedVersion(2)));
        assert_eq!(with(&|b| b[2] |= 0x40), Err(ReportError::ReservedNotZero));
        assert_eq!(with(&|b| b[3] = 1), Err(ReportError::ReservedNotZero));
        assert_eq!(
            with(&|b| b[20..24].copy_from_slice(&f32::NAN.to_le_bytes())),
            Err(ReportError::BadFigure { at: 20 })
        );
        assert_eq!(
            with(&|b| b[24..28].copy_from_slice(&1.5f32.to_le_bytes())),
            Err(ReportError::BadFigure { at: 24 })
        );
        assert_eq!(
            with(&|b| b[32..36].copy_from_slice(&(-1.0f32).to_le_bytes())),
            Err(ReportError::BadFigure { at: 32 })
        );
        assert_eq!(
            with(&|b| b[2] &= !HAS_SEQUENCE),
            Err(ReportError::Inconsistent { at: 36 })
        );
        let msg = alloc_free_display(ReportError::BadFigure { at: 20 });
        assert!(msg.contains("byte 20"), "{msg}");
    }

    /// Display into a fixed buffer (no heap in this crate's tests either).
    fn alloc_free_display(e: ReportError) -> heapless::String<96> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        let _ = write!(s, "{e}");
        s
    }

    #[test]
    fn counters_sum_their_rejections() {
        let c = report().counters;
        assert_eq!(c.rejected(), 3);
        assert_eq!(c.total(), 15);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..130)) {
            let _ = ClusterReport::parse(&bytes);
        }

        #[test]
        fn whatever_parses_emits_the_same_bytes(mut bytes in proptest::collection::vec(any::<u8>(), WIRE_LEN)) {
            bytes[0] = KIND;
            bytes[1] = VERSION;
            bytes[2] &= KNOWN_FLAGS;
            bytes[3] = 0;
            if let Ok(r) = ClusterReport::parse(&bytes) {
                prop_assert_eq!(r.emit().to_vec(), bytes);
            }
        }
    }
}
