//! candump `-L` log lines, as written by can-utils' `candump -L` / `-l` and
//! read by `canplayer`, `log2asc` and Python `cantools` / `python-can`:
//!
//! ```text
//! (1700000000.123456) can0 123#DEADBEEF
//! (1700000000.123789) can0 12345678#00
//! (1700000000.124000) can0 123#R
//! (1700000000.124500) can0 123#R4
//! ```
//!
//! Seconds and microseconds since the epoch, the interface, then the frame:
//! 3 hex digits for a standard id, 8 for an extended one, `#`, data bytes as
//! upper-case hex pairs; a remote frame is `R` plus its DLC when not 0.
//! Parsing also accepts lower-case hex, `.` between data bytes, and the
//! optional trailing `T`/`R` direction field newer candump versions write
//! (ignored). CAN FD lines (`##`) are refused: classic CAN only.

use crate::frame::{CanFrame, CanId, MAX_DATA_LEN};
use std::fmt::Write as _;
use thiserror::Error;

/// A log timestamp: whole seconds and microseconds (`micros < 1_000_000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: u64,
    pub micros: u32,
}

impl Timestamp {
    /// `None` if `micros` is not below one million.
    pub fn new(secs: u64, micros: u32) -> Option<Self> {
        (micros < 1_000_000).then_some(Timestamp { secs, micros })
    }

    /// Rounded to the microsecond; `None` for negative, NaN or huge values.
    pub fn from_secs_f64(s: f64) -> Option<Self> {
        let us = (s * 1e6).round();
        if !(0.0..1.8e19).contains(&us) {
            return None;
        }
        let us = us as u64;
        Some(Timestamp {
            secs: us / 1_000_000,
            micros: (us % 1_000_000) as u32,
        })
    }

    pub fn as_secs_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.micros) * 1e-6
    }
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp: Timestamp,
    pub iface: String,
    pub frame: CanFrame,
}

/// Why a log line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CandumpError {
    #[error("missing or malformed `(seconds.micros)` timestamp")]
    BadTimestamp,
    #[error("missing interface name")]
    MissingInterface,
    #[error("missing frame")]
    MissingFrame,
    #[error("frame has no `#` after a 3- or 8-hex-digit id")]
    BadId,
    #[error("CAN id out of range")]
    IdOutOfRange,
    #[error("CAN FD frame (`##`); only classic CAN is supported")]
    CanFd,
    #[error("data is not whole hex bytes")]
    BadData,
    #[error("more than 8 data bytes")]
    TooManyBytes,
    #[error("remote frame DLC is not a digit 0..=8")]
    BadRtrDlc,
    #[error("unexpected text after the frame")]
    TrailingFields,
}

/// One log line, without a newline: `(ssssssssss.uuuuuu) iface id#data`.
///
/// `iface` should be a non-empty name without whitespace (as every Linux
/// interface name is), or the line will not parse back.
pub fn format_line(timestamp: Timestamp, iface: &str, frame: &CanFrame) -> String {
    let mut s = String::with_capacity(48);
    // `write!` into a String cannot fail.
    let _ = write!(
        s,
        "({:010}.{:06}) {} ",
        timestamp.secs, timestamp.micros, iface
    );
    match frame.id() {
        CanId::Standard(id) => {
            let _ = write!(s, "{id:03X}#");
        }
        CanId::Extended(id) => {
            let _ = write!(s, "{id:08X}#");
        }
    }
    if frame.is_remote() {
        s.push('R');
        if frame.dlc() != 0 {
            let _ = write!(s, "{}", frame.dlc());
        }
    } else {
        for b in frame.data() {
            let _ = write!(s, "{b:02X}");
        }
    }
    s
}

/// Parse one log line (surrounding whitespace, including a newline, is
/// ignored).
pub fn parse_line(line: &str) -> Result<LogLine, CandumpError> {
    let mut fields = line.split_ascii_whitespace();
    let timestamp = parse_timestamp(fields.next().ok_or(CandumpError::BadTimestamp)?)?;
    let iface = fields.next().ok_or(CandumpError::MissingInterface)?;
    let frame = parse_frame(fields.next().ok_or(CandumpError::MissingFrame)?)?;
    match (fields.next(), fields.next()) {
        (None, _) | (Some("T" | "R"), None) => {}
        _ => return Err(CandumpError::TrailingFields),
    }
    Ok(LogLine {
        timestamp,
        iface: iface.to_owned(),
        frame,
    })
}

fn parse_timestamp(field: &str) -> Result<Timestamp, CandumpError> {
    let inner = field
        .strip_prefix('(')
        .and_then(|f| f.strip_suffix(')'))
        .ok_or(CandumpError::BadTimestamp)?;
    let (secs, micros) = inner.split_once('.').ok_or(CandumpError::BadTimestamp)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || micros.len() != 6 || !digits(micros) {
        return Err(CandumpError::BadTimestamp);
    }
    let secs = secs.parse().map_err(|_| CandumpError::BadTimestamp)?;
    let micros = micros.parse().map_err(|_| CandumpError::BadTimestamp)?;
    Timestamp::new(secs, micros).ok_or(CandumpError::BadTimestamp)
}

fn parse_frame(field: &str) -> Result<CanFrame, CandumpError> {
    let (id, rest) = field.split_once('#').ok_or(CandumpError::BadId)?;
    if rest.starts_with('#') {
        return Err(CandumpError::CanFd);
    }
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CandumpError::BadId);
    }
    let raw = u32::from_str_radix(id, 16).map_err(|_| CandumpError::BadId);
    let id = match id.len() {
        3 => u16::try_from(raw?)
            .ok()
            .and_then(|id| CanId::standard(id).ok())
            .ok_or(CandumpError::IdOutOfRange)?,
        8 => CanId::extended(raw?).map_err(|_| CandumpError::IdOutOfRange)?,
        _ => return Err(CandumpError::BadId),
    };
    if let Some(dlc) = rest.strip_prefix(['R', 'r']) {
        let dlc = match dlc.as_bytes() {
            [] => 0,
            [d @ b'0'..=b'8'] => d - b'0',
            _ => return Err(CandumpError::BadRtrDlc),
        };
        return CanFrame::remote(id, dlc).map_err(|_| CandumpError::BadRtrDlc);
    }
    let mut data = [0u8; MAX_DATA_LEN];
    let mut len = 0;
    let mut digits = rest.bytes().filter(|&b| b != b'.');
    while let Some(hi) = digits.next() {
        let lo = digits.next().ok_or(CandumpError::BadData)?;
        let byte = hex_pair(hi, lo).ok_or(CandumpError::BadData)?;
        *data.get_mut(len).ok_or(CandumpError::TooManyBytes)? = byte;
        len += 1;
    }
    CanFrame::new(id, &data[..len]).map_err(|_| CandumpError::TooManyBytes)
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let d = |c: u8| (c as char).to_digit(16);
    Some((d(hi)? * 16 + d(lo)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(secs: u64, micros: u32) -> Timestamp {
        Timestamp::new(secs, micros).unwrap()
    }

    #[test]
    fn formats_like_candump() {
        let f = CanFrame::new(CanId::Standard(0x123), &[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        assert_eq!(
            format_line(ts(1_700_000_000, 123_456), "can0", &f),
            "(1700000000.123456) can0 123#DEADBEEF"
        );
        let e = CanFrame::new(CanId::Extended(0x0001_2345), &[0x00]).unwrap();
        assert_eq!(
            format_line(ts(1, 5), "vcan1", &e),
            "(0000000001.000005) vcan1 00012345#00"
        );
        let r = CanFrame::remote(CanId::Standard(0x7), 0).unwrap();
        assert_eq!(
            format_line(ts(0, 0), "can0", &r),
            "(0000000000.000000) can0 007#R"
        );
        let r4 = CanFrame::remote(CanId::Standard(0x123), 4).unwrap();
        assert!(format_line(ts(0, 0), "can0", &r4).ends_with(" 123#R4"));
        let empty = CanFrame::new(CanId::Standard(0x123), &[]).unwrap();
        assert!(format_line(ts(0, 0), "can0", &empty).ends_with(" 123#"));
    }

    #[test]
    fn parses_candump_lines() {
        let l = parse_line("(1700000000.123456) can0 123#DEADBEEF\n").unwrap();
        assert_eq!(l.timestamp, ts(1_700_000_000, 123_456));
        assert_eq!(l.iface, "can0");
        assert_eq!(l.frame.id(), CanId::Standard(0x123));
        assert_eq!(l.frame.data(), &[0xDE, 0xAD, 0xBE, 0xEF]);
        let l = parse_line("(1.000000) can0 12345678#de.ad R").unwrap();
        assert_eq!(l.frame.id(), CanId::Extended(0x1234_5678));
        assert_eq!(l.frame.data(), &[0xDE, 0xAD]);
        let l = parse_line("(1.000000) can0 123#R3").unwrap();
        assert!(l.frame.is_remote());
        assert_eq!(l.frame.dlc(), 3);
        let l = parse_line("(1.000000) can0 123#R").unwrap();
        assert_eq!(l.frame.dlc(), 0);
        assert!(l.frame.is_remote());
    }

    #[test]
    fn bad_lines_say_why() {
        use CandumpError::*;
        let cases = [
            ("", BadTimestamp),
            ("1.000000 can0 123#00", BadTimestamp),
            ("(1.5) can0 123#00", BadTimestamp),
            ("(x.000000) can0 123#00", BadTimestamp),
            ("(1.000000)", MissingInterface),
            ("(1.000000) can0", MissingFrame),
            ("(1.000000) can0 123", BadId),
            ("(1.000000) can0 1234#00", BadId),
            ("(1.000000) can0 12G#00", BadId),
            ("(1.000000) can0 800#00", IdOutOfRange),
            ("(1.000000) can0 20000000#00", IdOutOfRange),
            ("(1.000000) can0 123##100", CanFd),
            ("(1.000000) can0 123#0", BadData),
            ("(1.000000) can0 123#0G", BadData),
            ("(1.000000) can0 123#000102030405060708", TooManyBytes),
            ("(1.000000) can0 123#R9", BadRtrDlc),
            ("(1.000000) can0 123#R12", BadRtrDlc),
            ("(1.000000) can0 123#00 X", TrailingFields),
            ("(1.000000) can0 123#00 R extra", TrailingFields),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), Err(want), "{line:?}");
        }
    }

    #[test]
    fn timestamps_convert_from_and_to_seconds() {
        assert_eq!(Timestamp::new(1, 1_000_000), None);
        assert_eq!(
            Timestamp::from_secs_f64(1_700_000_000.123456),
            Some(ts(1_700_000_000, 123_456))
        );
        assert_eq!(Timestamp::from_secs_f64(-1.0), None);
        assert_eq!(Timestamp::from_secs_f64(f64::NAN), None);
        assert!((ts(2, 500_000).as_secs_f64() - 2.5).abs() < 1e-12);
    }

    use crate::frame::strategy::arb_frame;

    proptest! {
        #[test]
        fn lines_round_trip(
            frame in arb_frame(),
            secs in 0u64..=9_999_999_999,
            micros in 0u32..1_000_000,
            iface in "[a-z][a-z0-9]{0,14}",
        ) {
            let t = ts(secs, micros);
            let line = format_line(t, &iface, &frame);
            let parsed = parse_line(&line).unwrap();
            prop_assert_eq!(parsed, LogLine { timestamp: t, iface, frame });
        }

        /// What the SLCAN transport receives is what the log records.
        #[test]
        fn frames_survive_slcan_then_candump(frame in arb_frame(), ms in any::<u16>()) {
            use crate::slcan::{encode_event, Decoder, Event, MAX_ENCODED_LEN};
            let mut buf = [0u8; MAX_ENCODED_LEN];
            let ev = Event::Frame { frame, timestamp_ms: Some(ms) };
            let n = encode_event(&ev, &mut buf).unwrap();
            let mut d = Decoder::new();
            d.push(&buf[..n]);
            let Some(Ok(Event::Frame { frame: got, timestamp_ms })) = d.next() else {
                panic!("frame did not decode");
            };
            prop_assert_eq!(timestamp_ms, Some(ms));
            let t = ts(1_700_000_000, u32::from(ms) * 10);
            let line = format_line(t, "can0", &got);
            prop_assert_eq!(parse_line(&line).unwrap().frame, frame);
        }

        #[test]
        fn arbitrary_text_never_panics(line in "\\PC{0,60}") {
            let _ = parse_line(&line);
        }
    }
}
