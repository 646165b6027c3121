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

use super::frame::{CanFrame, CanId, MAX_DATA_LEN};
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
