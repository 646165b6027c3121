//! SLCAN — the Lawicel CAN232/CANUSB ASCII protocol spoken by CANable,
//! USBtin and similar serial CAN adapters (and by our pseudo-terminal pairs
//! in CI, where the kernel has no CAN).
//!
//! Every message is a line of printable ASCII ended by CR (`\r`), except
//! the error reply, a lone BEL (`\x07`):
//!
//! | line                  | meaning                                              |
//! |-----------------------|------------------------------------------------------|
//! | `tiiildd..[ssss]`     | standard data frame: 3-hex id, DLC, data, timestamp  |
//! | `Tiiiiiiiildd..[ssss]`| extended data frame: 8-hex id                        |
//! | `riiil[ssss]`         | standard remote (RTR) frame                          |
//! | `Riiiiiiiil[ssss]`    | extended remote frame                                |
//! | `S0`..`S8`            | set bitrate 10k, 20k, 50k, 100k, 125k, 250k, 500k, 800k, 1M |
//! | `O` / `C`             | open / close the channel                             |
//! | `F` / `Fxx`           | read status flags / the flags (hex byte)             |
//! | `V` / `Vhhss`         | read version / hardware and software version         |
//! | `N` / `Nxxxx`         | read serial number / the serial number               |
//! | `Z0` / `Z1`           | received-frame timestamps off / on                   |
//! | `z` / `Z`             | transmit acknowledged (standard / extended)          |
//! | empty line            | OK                                                   |
//! | BEL                   | error                                                |
//!
//! The optional 4-hex-digit timestamp on a frame is the adapter's
//! millisecond counter (wrapping at 60 000 on Lawicel devices).
//!
//! Sans-IO, after smoltcp's `wire` modules: [`encode`] and [`encode_event`]
//! write into a caller's buffer; [`Decoder`] takes bytes as they arrive
//! ([`Decoder::push`]) and, as an iterator, yields events. Garbage never
//! panics: a bad line is discarded up to its CR, counted by reason
//! ([`SlcanError`], [`Stats`]) and decoding resumes with the next line. The
//! line buffer is bounded ([`MAX_LINE_LEN`]).
//!
//! Only CR ends a line, as in the Lawicel specification: a peer that sends
//! CR LF has each following line discarded as
//! [`SlcanError::UnknownCommand`] (it starts with the LF).

use crate::frame::{CanFrame, CanId};
use thiserror::Error;

/// Longest valid line without its CR: `T`, 8 id digits, DLC, 16 data digits,
/// 4 timestamp digits.
pub const MAX_LINE_LEN: usize = 1 + 8 + 1 + 16 + 4;
/// Longest encoded message, CR included.
pub const MAX_ENCODED_LEN: usize = MAX_LINE_LEN + 1;

const CR: u8 = b'\r';
const BEL: u8 = 0x07;

/// The `Sn` bitrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bitrate {
    Kbit10,
    Kbit20,
    Kbit50,
    Kbit100,
    Kbit125,
    Kbit250,
    Kbit500,
    Kbit800,
    Mbit1,
}

impl Bitrate {
    /// All bitrates, in `S0`..`S8` order.
    pub const ALL: [Bitrate; 9] = [
        Bitrate::Kbit10,
        Bitrate::Kbit20,
        Bitrate::Kbit50,
        Bitrate::Kbit100,
        Bitrate::Kbit125,
        Bitrate::Kbit250,
        Bitrate::Kbit500,
        Bitrate::Kbit800,
        Bitrate::Mbit1,
    ];

    /// The digit after `S`: 0..=8.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    pub fn from_bits_per_second(bps: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.bits_per_second() == bps)
    }

    pub fn bits_per_second(self) -> u32 {
        match self {
            Bitrate::Kbit10 => 10_000,
            Bitrate::Kbit20 => 20_000,
            Bitrate::Kbit50 => 50_000,
            Bitrate::Kbit100 => 100_000,
            Bitrate::Kbit125 => 125_000,
            Bitrate::Kbit250 => 250_000,
            Bitrate::Kbit500 => 500_000,
            Bitrate::Kbit800 => 800_000,
            Bitrate::Mbit1 => 1_000_000,
        }
    }
}

/// The status flags byte of an `Fxx` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u8);

impl Status {
    pub const RX_FIFO_FULL: u8 = 0x01;
    pub const TX_FIFO_FULL: u8 = 0x02;
    pub const ERROR_WARNING: u8 = 0x04;
    pub const DATA_OVERRUN: u8 = 0x08;
    pub const ERROR_PASSIVE: u8 = 0x20;
    pub const ARBITRATION_LOST: u8 = 0x40;
    pub const BUS_ERROR: u8 = 0x80;

    /// Whether every bit of `flag` is set.
    pub fn contains(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// A command from host to adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `t`/`T`/`r`/`R`: put a frame on the bus. (The decoder yields frame
    /// lines as [`Event::Frame`], whichever side sent them.)
    Transmit(CanFrame),
    /// `Sn`
    SetBitrate(Bitrate),
    /// `O`
    Open,
    /// `C`
    Close,
    /// `F`
    ReadStatus,
    /// `V`
    ReadVersion,
    /// `N`
    ReadSerial,
    /// `Z0` / `Z1`
    Timestamps(bool),
}

/// One decoded message, from either side of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A frame line: a frame received by the adapter, or one the host asks
    /// it to transmit.
    Frame {
        frame: CanFrame,
        timestamp_ms: Option<u16>,
    },
    /// Empty line: the last command succeeded.
    Ok,
    /// BEL: the last command failed.
    Error,
    /// `z` / `Z`: a transmit request was queued.
    TransmitAck { extended: bool },
    /// `Fxx`
    Status(Status),
    /// `Vhhss`
    Version { hardware: u8, software: u8 },
    /// `Nxxxx`: four ASCII letters or digits.
    Serial([u8; 4]),
    /// Any other command (never [`Command::Transmit`]).
    Command(Command),
}

/// Why a line was discarded. Also the index of its counter in
/// [`DiscardCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum SlcanError {
    #[error("a character that should be a hex digit is not")]
    BadHex,
    #[error("line length does not match its command (or the frame's DLC)")]
    WrongLength,
    #[error("DLC above 8")]
    DlcTooLarge,
    #[error("line longer than any valid SLCAN line")]
    LineTooLong,
    #[error("line ended (by BEL or end of stream) before it was complete")]
    Truncated,
    #[error("unknown command letter")]
    UnknownCommand,
    #[error("CAN id out of range for its format")]
    IdOutOfRange,
    #[error("bad argument (bitrate code, timestamp switch or serial number)")]
    BadArgument,
}

impl SlcanError {
    pub const ALL: [SlcanError; 8] = [
        SlcanError::BadHex,
        SlcanError::WrongLength,
        SlcanError::DlcTooLarge,
        SlcanError::LineTooLong,
        SlcanError::Truncated,
        SlcanError::UnknownCommand,
        SlcanError::IdOutOfRange,
        SlcanError::BadArgument,
    ];
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("buffer too small: {needed} bytes needed")]
    BufferTooSmall { needed: usize },
    #[error("serial number must be 4 ASCII letters or digits")]
    BadSerial,
}

/// Discarded lines, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiscardCounts([u64; SlcanError::ALL.len()]);

impl DiscardCounts {
    pub fn get(&self, reason: SlcanError) -> u64 {
        self.0[reason as usize]
    }

    /// All discarded lines.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn bump(&mut self, reason: SlcanError) {
        self.0[reason as usize] += 1;
    }
}

/// What a [`Decoder`] has seen. Every pushed byte is accepted (part of a
/// decoded event, terminator included), discarded, or still pending:
/// `bytes_pushed == bytes_accepted + bytes_discarded + Decoder::pending()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub bytes_pushed: u64,
    pub bytes_accepted: u64,
    pub bytes_discarded: u64,
    /// Events decoded.
    pub events: u64,
    /// Lines discarded, by reason.
    pub discarded: DiscardCounts,
}

/// Streaming SLCAN decoder (sans-IO): [`push`](Decoder::push) bytes as they
/// arrive, then call [`next`](Iterator::next) (it is an iterator) until it returns `None`.
#[derive(Debug, Default)]
pub struct Decoder {
    input: Vec<u8>,
    pos: usize,
    line: heapless::Vec<u8, MAX_LINE_LEN>,
    /// Bytes of the current line beyond the buffer (the line is over-long
    /// when this is not 0).
    overflow: usize,
    stats: Stats,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue bytes from the link.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        } else if self.pos > 4096 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
        self.stats.bytes_pushed += bytes.len() as u64;
    }

    /// End of stream: discard a partial line left in the buffer (as
    /// [`SlcanError::Truncated`], or [`SlcanError::LineTooLong`] if it was
    /// already too long). Call after [`next`](Iterator::next) returned
    /// `None`.
    pub fn finish(&mut self) -> Option<SlcanError> {
        self.discard_partial().and_then(Result::err)
    }

    /// Bytes pushed but neither accepted nor discarded yet.
    pub fn pending(&self) -> usize {
        self.input.len() - self.pos + self.line.len() + self.overflow
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn discard_partial(&mut self) -> Option<Result<Event, SlcanError>> {
        let n = self.line.len() + self.overflow;
        if n == 0 {
            return None;
        }
        let reason = if self.overflow > 0 {
            SlcanError::LineTooLong
        } else {
            SlcanError::Truncated
        };
        self.line.clear();
        self.overflow = 0;
        Some(self.account(Err(reason), n))
    }

    fn account(
        &mut self,
        result: Result<Event, SlcanError>,
        bytes: usize,
    ) -> Result<Event, SlcanError> {
        match result {
            Ok(_) => {
                self.stats.bytes_accepted += bytes as u64;
                self.stats.events += 1;
            }
            Err(reason) => {
                self.stats.bytes_discarded += bytes as u64;
                self.stats.discarded.bump(reason);
            }
        }
        result
    }
}

impl Iterator for Decoder {
    type Item = Result<Event, SlcanError>;

    /// The next event or discarded line, or `None` when the queued bytes
    /// hold no complete message (a partial line stays buffered). Not fused:
    /// after `None`, push more bytes and call again.
    fn next(&mut self) -> Option<Result<Event, SlcanError>> {
        while let Some(&b) = self.input.get(self.pos) {
            match b {
                CR => {
                    self.pos += 1;
                    let n = self.line.len() + self.overflow + 1;
                    let result = if self.overflow > 0 {
                        Err(SlcanError::LineTooLong)
                    } else {
                        parse_line(&self.line)
                    };
                    self.line.clear();
                    self.overflow = 0;
                    return Some(self.account(result, n));
                }
                BEL if self.line.is_empty() && self.overflow == 0 => {
                    self.pos += 1;
                    return Some(self.account(Ok(Event::Error), 1));
                }
                // A BEL inside a line: the line was cut short. Discard it
                // and leave the BEL to be read as its own event.
                BEL => return self.discard_partial(),
                _ => {
                    self.pos += 1;
                    if self.line.push(b).is_err() {
                        self.overflow += 1;
                    }
                }
            }
        }
        None
    }
}

/// Decode one line, without its CR.
pub fn parse_line(line: &[u8]) -> Result<Event, SlcanError> {
    use SlcanError::*;
    let Some((&letter, rest)) = line.split_first() else {
        return Ok(Event::Ok);
    };
    let bare = |event: Event| {
        if rest.is_empty() {
            Ok(event)
        } else {
            Err(WrongLength)
        }
    };
    match letter {
        b't' | b'T' | b'r' | b'R' => parse_frame(letter, rest),
        b'z' => bare(Event::TransmitAck { extended: false }),
        b'Z' => match rest {
            [] => Ok(Event::TransmitAck { extended: true }),
            [b'0'] => Ok(Event::Command(Command::Timestamps(false))),
            [b'1'] => Ok(Event::Command(Command::Timestamps(true))),
            [_] => Err(BadArgument),
            _ => Err(WrongLength),
        },
        b'S' => match rest {
            [d] => d
                .checked_sub(b'0')
                .and_then(Bitrate::from_code)
                .map(|b| Event::Command(Command::SetBitrate(b)))
                .ok_or(BadArgument),
            _ => Err(WrongLength),
        },
        b'O' => bare(Event::Command(Command::Open)),
        b'C' => bare(Event::Command(Command::Close)),
        b'F' => match rest {
            [] => Ok(Event::Command(Command::ReadStatus)),
            [_, _] => Ok(Event::Status(Status(parse_hex(rest)? as u8))),
            _ => Err(WrongLength),
        },
        b'V' => match rest {
            [] => Ok(Event::Command(Command::ReadVersion)),
            [_, _, _, _] => Ok(Event::Version {
                hardware: parse_hex(&rest[..2])? as u8,
                software: parse_hex(&rest[2..])? as u8,
            }),
            _ => Err(WrongLength),
        },
        b'N' => match rest {
            [] => Ok(Event::Command(Command::ReadSerial)),
            &[a, b, c, d] => {
                let serial = [a, b, c, d];
                if serial.iter().all(u8::is_ascii_alphanumeric) {
                    Ok(Event::Serial(serial))
                } else {
                    Err(BadArgument)
                }
            }
            _ => Err(WrongLength),
        },
        _ => Err(UnknownCommand),
    }
}

fn parse_frame(letter: u8, rest: &[u8]) -> Result<Event, SlcanError> {
    use SlcanError::*;
    let extended = letter.is_ascii_uppercase();
    let remote = letter.eq_ignore_ascii_case(&b'r');
    let id_len = if extended { 8 } else { 3 };
    if rest.len() < id_len + 1 {
        return Err(Truncated);
    }
    let raw_id = parse_hex(&rest[..id_len])?;
    let dlc = hex_digit(rest[id_len]).ok_or(BadHex)?;
    if dlc > 8 {
        return Err(DlcTooLarge);
    }
    let body = &rest[id_len + 1..];
    let data_digits = if remote { 0 } else { 2 * usize::from(dlc) };
    let timestamp = match body.len().checked_sub(data_digits) {
        Some(0) => None,
        Some(4) => Some(&body[data_digits..]),
        _ => return Err(WrongLength),
    };
    let id = if extended {
        CanId::extended(raw_id).ok()
    } else {
        u16::try_from(raw_id)
            .ok()
            .and_then(|id| CanId::standard(id).ok())
    }
    .ok_or(IdOutOfRange)?;
    let frame = if remote {
        CanFrame::remote(id, dlc)
    } else {
        let mut data = [0u8; 8];
        for (i, pair) in body[..data_digits].chunks_exact(2).enumerate() {
            data[i] = parse_hex(pair)? as u8;
        }
        CanFrame::new(id, &data[..usize::from(dlc)])
    }
    .map_err(|_| DlcTooLarge)?;
    let timestamp_ms = match timestamp {
        Some(digits) => Some(parse_hex(digits)? as u16),
        None => None,
    };
    Ok(Event::Frame {
        frame,
        timestamp_ms,
    })
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Up to 8 hex digits (upper or lower case).
fn parse_hex(digits: &[u8]) -> Result<u32, SlcanError> {
    digits.iter().try_fold(0u32, |acc, &c| {
        hex_digit(c)
            .map(|d| (acc << 4) | u32::from(d))
            .ok_or(SlcanError::BadHex)
    })
}

/// Writes into a caller's buffer, failing cleanly when it is full.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
        }
        self.len += 1;
    }

    /// `digits` upper-case hex digits of `value`, most significant first.
    fn hex(&mut self, value: u32, digits: u32) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for i in (0..digits).rev() {
            self.byte(HEX[((value >> (4 * i)) & 0xF) as usize]);
        }
    }

    fn finish(self) -> Result<usize, EncodeError> {
        if self.len > self.buf.len() {
            Err(EncodeError::BufferTooSmall { needed: self.len })
        } else {
            Ok(self.len)
        }
    }
}

/// Encode a host command into `buf` (CR included); returns the length.
/// [`MAX_ENCODED_LEN`] bytes always suffice.
pub fn encode(command: &Command, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer { buf, len: 0 };
    write_command(&mut w, command);
    w.byte(CR);
    w.finish()
}

/// Encode any message, as either side sends it (CR included, except the
/// lone BEL of [`Event::Error`]); returns the length.
pub fn encode_event(event: &Event, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer { buf, len: 0 };
    match *event {
        Event::Frame {
            frame,
            timestamp_ms,
        } => {
            write_frame(&mut w, &frame);
            if let Some(ts) = timestamp_ms {
                w.hex(u32::from(ts), 4);
            }
        }
        Event::Ok => {}
        Event::Error => {
            w.byte(BEL);
            return w.finish();
        }
        Event::TransmitAck { extended } => w.byte(if extended { b'Z' } else { b'z' }),
        Event::Status(Status(flags)) => {
            w.byte(b'F');
            w.hex(u32::from(flags), 2);
        }
        Event::Version { hardware, software } => {
            w.byte(b'V');
            w.hex(u32::from(hardware), 2);
            w.hex(u32::from(software), 2);
        }
        Event::Serial(serial) => {
            if !serial.iter().all(u8::is_ascii_alphanumeric) {
                return Err(EncodeError::BadSerial);
            }
            w.byte(b'N');
            serial.iter().for_each(|&b| w.byte(b));
        }
        Event::Command(command) => write_command(&mut w, &command),
    }
    w.byte(CR);
    w.finish()
}

fn write_command(w: &mut Writer<'_>, command: &Command) {
    match *command {
        Command::Transmit(frame) => write_frame(w, &frame),
        Command::SetBitrate(b) => {
            w.byte(b'S');
            w.byte(b'0' + b.code());
        }
        Command::Open => w.byte(b'O'),
        Command::Close => w.byte(b'C'),
        Command::ReadStatus => w.byte(b'F'),
        Command::ReadVersion => w.byte(b'V'),
        Command::ReadSerial => w.byte(b'N'),
        Command::Timestamps(on) => {
            w.byte(b'Z');
            w.byte(if on { b'1' } else { b'0' });
        }
    }
}

fn write_frame(w: &mut Writer<'_>, frame: &CanFrame) {
    let (letter, digits) = match (frame.id(), frame.is_remote()) {
        (CanId::Standard(_), false) => (b't', 3),
        (CanId::Standard(_), true) => (b'r', 3),
        (CanId::Extended(_), false) => (b'T', 8),
        (CanId::Extended(_), true) => (b'R', 8),
    };
    w.byte(letter);
    w.hex(frame.id().raw(), digits);
    w.hex(u32::from(frame.dlc()), 1);
    for &b in frame.data() {
        w.hex(u32::from(b), 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn std_frame(id: u16, data: &[u8]) -> CanFrame {
        CanFrame::new(CanId::standard(id).unwrap(), data).unwrap()
    }

    fn enc(cmd: &Command) -> Vec<u8> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let n = encode(cmd, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn enc_event(ev: &Event) -> Vec<u8> {
        let mut buf = [0u8; MAX_ENCODED_LEN];
        let n = encode_event(ev, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// Decode everything, finishing the stream.
    fn decode_all(bytes: &[u8]) -> (Vec<Result<Event, SlcanError>>, Decoder) {
        let mut d = Decoder::new();
        d.push(bytes);
        let mut out = Vec::new();
        for r in d.by_ref() {
            out.push(r);
        }
        if let Some(e) = d.finish() {
            out.push(Err(e));
        }
        (out, d)
    }

    #[test]
    fn encodes_known_byte_strings() {
        let f = std_frame(0x123, &[0xDE, 0xAD]);
        assert_eq!(enc(&Command::Transmit(f)), b"t1232DEAD\r");
        let e = CanFrame::new(CanId::extended(0x1234_5678).unwrap(), &[0xBE, 0xEF]).unwrap();
        assert_eq!(enc(&Command::Transmit(e)), b"T123456782BEEF\r");
        let r = CanFrame::remote(CanId::standard(0x7FF).unwrap(), 8).unwrap();
        assert_eq!(enc(&Command::Transmit(r)), b"r7FF8\r");
        let rx = CanFrame::remote(CanId::extended(0x1FFF_FFFF).unwrap(), 0).unwrap();
        assert_eq!(enc(&Command::Transmit(rx)), b"R1FFFFFFF0\r");
        assert_eq!(enc(&Command::Transmit(std_frame(0, &[]))), b"t0000\r");
        assert_eq!(enc(&Command::SetBitrate(Bitrate::Kbit500)), b"S6\r");
        assert_eq!(enc(&Command::SetBitrate(Bitrate::Kbit10)), b"S0\r");
        assert_eq!(enc(&Command::SetBitrate(Bitrate::Mbit1)), b"S8\r");
        assert_eq!(enc(&Command::Open), b"O\r");
        assert_eq!(enc(&Command::Close), b"C\r");
        assert_eq!(enc(&Command::ReadStatus), b"F\r");
        assert_eq!(enc(&Command::ReadVersion), b"V\r");
        assert_eq!(enc(&Command::ReadSerial), b"N\r");
        assert_eq!(enc(&Command::Timestamps(true)), b"Z1\r");
        assert_eq!(enc_event(&Event::Ok), b"\r");
        assert_eq!(enc_event(&Event::Error), b"\x07");
        assert_eq!(
            enc_event(&Event::Frame {
                frame: f,
                timestamp_ms: Some(0xEA5F)
            }),
            b"t1232DEADEA5F\r"
        );
        assert_eq!(enc_event(&Event::Status(Status(0x0C))), b"F0C\r");
        assert_eq!(
            enc_event(&Event::Version {
                hardware: 0x10,
                software: 0x13
            }),
            b"V1013\r"
        );
        assert_eq!(enc_event(&Event::Serial(*b"A123")), b"NA123\r");
    }

    #[test]
    fn encode_checks_the_buffer_and_serial() {
        let f = std_frame(0x123, &[0; 8]);
        let mut small = [0u8; 10];
        assert_eq!(
            encode(&Command::Transmit(f), &mut small),
            Err(EncodeError::BufferTooSmall { needed: 22 })
        );
        let mut buf = [0u8; MAX_ENCODED_LEN];
        assert_eq!(
            encode_event(&Event::Serial(*b"A\r23"), &mut buf),
            Err(EncodeError::BadSerial)
        );
        // The longest message fits MAX_ENCODED_LEN exactly.
        let e = CanFrame::new(CanId::Extended(0), &[0xFF; 8]).unwrap();
        let longest = Event::Frame {
            frame: e,
            timestamp_ms: Some(1),
        };
        assert_eq!(encode_event(&longest, &mut buf), Ok(MAX_ENCODED_LEN));
    }

    #[test]
    fn decodes_known_byte_strings() {
        let (events, d) =
            decode_all(b"t1232DEAD\rt1232dead1234\r\x07\rz\rZ\rF0C\rV1013\rNA123\rS6\rr1230\r");
        let f = std_frame(0x123, &[0xDE, 0xAD]);
        assert_eq!(
            events,
            vec![
                Ok(Event::Frame {
                    frame: f,
                    timestamp_ms: None
                }),
                Ok(Event::Frame {
                    frame: f,
                    timestamp_ms: Some(0x1234)
                }),
                Ok(Event::Error),
                Ok(Event::Ok),
                Ok(Event::TransmitAck { extended: false }),
                Ok(Event::TransmitAck { extended: true }),
                Ok(Event::Status(Status(0x0C))),
                Ok(Event::Version {
                    hardware: 0x10,
                    software: 0x13
                }),
                Ok(Event::Serial(*b"A123")),
                Ok(Event::Command(Command::SetBitrate(Bitrate::Kbit500))),
                Ok(Event::Frame {
                    frame: CanFrame::remote(CanId::Standard(0x123), 0).unwrap(),
                    timestamp_ms: None
                }),
            ]
        );
        assert_eq!(d.stats().discarded.total(), 0);
        assert!(Status(0x0C).contains(Status::ERROR_WARNING));
        assert!(Status(0x0C).contains(Status::DATA_OVERRUN));
        assert!(!Status(0x0C).contains(Status::BUS_ERROR));
    }

    #[test]
    fn every_error_kind_is_counted_and_decoding_resumes() {
        use SlcanError::*;
        let cases: &[(&[u8], SlcanError)] = &[
            (b"t12G2DEAD\r", BadHex),
            (b"t123XDEAD\r", BadHex),
            (b"t1232DEAG\r", BadHex),
            (b"t1232DEADxyz1\r", BadHex),
            (b"F0G\r", BadHex),
            (b"t1232DEA\r", WrongLength),
            (b"t1232DEADBE\r", WrongLength),
            (b"r12341\r", WrongLength),
            (b"O1\r", WrongLength),
            (b"S12\r", WrongLength),
            (b"t1239\r", DlcTooLarge),
            (b"T00000000F\r", DlcTooLarge),
            (&[b'x'; MAX_LINE_LEN + 1], LineTooLong),
            (b"t12\r", Truncated),
            (b"T1234567\r", Truncated),
            (b"t12", Truncated), // end of stream
            (b"X\r", UnknownCommand),
            (b"\n\r", UnknownCommand),
            (b"t8000\r", IdOutOfRange),
            (b"T200000000\r", IdOutOfRange),
            (b"S9\r", BadArgument),
            (b"Z2\r", BadArgument),
            (b"N12-4\r", BadArgument),
        ];
        for &(garbage, reason) in cases {
            let mut bytes = garbage.to_vec();
            if reason == LineTooLong {
                bytes.push(CR);
            }
            let (events, d) = decode_all(&bytes);
            assert_eq!(
                events,
                vec![Err(reason)],
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
            assert_eq!(d.stats().discarded.get(reason), 1);
            assert_eq!(d.stats().discarded.total(), 1);
            assert_eq!(d.stats().bytes_discarded, bytes.len() as u64);
            assert_eq!(d.pending(), 0);
            // Followed by a good line, the good line still decodes.
            if garbage.ends_with(b"\r") {
                bytes.extend_from_slice(b"t1230\r");
                let (events, _) = decode_all(&bytes);
                assert_eq!(events.len(), 2);
                assert!(events[1].is_ok());
            }
        }
        // Every reason appears above.
        for reason in SlcanError::ALL {
            assert!(cases.iter().any(|&(_, r)| r == reason), "{reason:?}");
        }
    }

    #[test]
    fn a_bel_cuts_a_partial_line() {
        let (events, d) = decode_all(b"t12\x07t1230\r");
        assert_eq!(
            events,
            vec![
                Err(SlcanError::Truncated),
                Ok(Event::Error),
                Ok(Event::Frame {
                    frame: std_frame(0x123, &[]),
                    timestamp_ms: None
                })
            ]
        );
        assert_eq!(d.stats().bytes_discarded, 3);
        assert_eq!(d.stats().bytes_accepted, 1 + 6);
    }

    #[test]
    fn over_long_lines_are_bounded_and_resync() {
        let mut bytes = vec![b'7'; 10_000];
        bytes.extend_from_slice(b"\rt1230\r");
        let (events, d) = decode_all(&bytes);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], Err(SlcanError::LineTooLong));
        assert!(events[1].is_ok());
        assert_eq!(d.stats().bytes_discarded, 10_001);
    }

    #[test]
    fn partial_lines_wait_for_more_bytes() {
        let mut d = Decoder::new();
        d.push(b"t123");
        assert_eq!(d.next(), None);
        assert_eq!(d.pending(), 4);
        d.push(b"1AA\r");
        assert_eq!(
            d.next(),
            Some(Ok(Event::Frame {
                frame: std_frame(0x123, &[0xAA]),
                timestamp_ms: None
            }))
        );
        assert_eq!(d.next(), None);
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn dlc_0_to_8_round_trip() {
        for dlc in 0..=8u8 {
            let data: Vec<u8> = (0..dlc).map(|i| i.wrapping_mul(37)).collect();
            let frames = [
                std_frame(0x5A5, &data),
                CanFrame::new(CanId::Extended(0x1ABC_DEF0), &data).unwrap(),
                CanFrame::remote(CanId::Standard(0x001), dlc).unwrap(),
                CanFrame::remote(CanId::Extended(0x1FFF_FFFF), dlc).unwrap(),
            ];
            for frame in frames {
                let (events, _) = decode_all(&enc(&Command::Transmit(frame)));
                assert_eq!(
                    events,
                    vec![Ok(Event::Frame {
                        frame,
                        timestamp_ms: None
                    })]
                );
            }
        }
    }

    use crate::frame::strategy::arb_frame;

    fn arb_event() -> impl Strategy<Value = Event> {
        let serial =
            proptest::sample::select(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz".to_vec());
        prop_oneof![
            (arb_frame(), proptest::option::of(any::<u16>())).prop_map(|(frame, timestamp_ms)| {
                Event::Frame {
                    frame,
                    timestamp_ms,
                }
            }),
            Just(Event::Ok),
            Just(Event::Error),
            any::<bool>().prop_map(|extended| Event::TransmitAck { extended }),
            any::<u8>().prop_map(|s| Event::Status(Status(s))),
            (any::<u8>(), any::<u8>())
                .prop_map(|(hardware, software)| Event::Version { hardware, software }),
            proptest::array::uniform4(serial).prop_map(Event::Serial),
            proptest::sample::select(Bitrate::ALL.to_vec())
                .prop_map(|b| Event::Command(Command::SetBitrate(b))),
            proptest::sample::select(vec![
                Command::Open,
                Command::Close,
                Command::ReadStatus,
                Command::ReadVersion,
                Command::ReadSerial,
                Command::Timestamps(false),
                Command::Timestamps(true),
            ])
            .prop_map(Event::Command),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_every_byte_is_accounted(
            bytes in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    proptest::sample::select(b"tTrR0123456789ABCDEFabcdef\r\x07zZSOCFVN".to_vec()),
                ],
                0..400,
            ),
            split in any::<proptest::sample::Index>(),
        ) {
            // In one push, and in two at an arbitrary split point: the same.
            let (events, d) = decode_all(&bytes);
            let s = &d.stats();
            prop_assert_eq!(d.pending(), 0);
            prop_assert_eq!(s.bytes_pushed, bytes.len() as u64);
            prop_assert_eq!(s.bytes_accepted + s.bytes_discarded, s.bytes_pushed);
            prop_assert_eq!(
                s.events + s.discarded.total(),
                events.len() as u64
            );
            let at = split.index(bytes.len() + 1);
            let mut d2 = Decoder::new();
            let mut events2 = Vec::new();
            for part in [&bytes[..at], &bytes[at..]] {
                d2.push(part);
                prop_assert_eq!(
                    d2.stats().bytes_pushed,
                    d2.stats().bytes_accepted + d2.stats().bytes_discarded + d2.pending() as u64
                );
                for r in d2.by_ref() {
                    events2.push(r);
                }
            }
            if let Some(e) = d2.finish() {
                events2.push(Err(e));
            }
            prop_assert_eq!(events, events2);
        }

        /// Good frame lines mixed with cut-short lines (a frame's line cut
        /// anywhere before its CR, then CR) and over-long ones (a frame's
        /// line padded past any valid length): every good frame decodes, in
        /// order, and every bad line is discarded and counted once.
        #[test]
        fn truncated_and_over_long_lines_are_counted_once_each(
            pieces in proptest::collection::vec(
                (arb_frame(), 0u8..3, any::<proptest::sample::Index>(), 1usize..200),
                0..60,
            ),
        ) {
            let mut bytes = Vec::new();
            let (mut good, mut bad, mut over_long) = (Vec::new(), 0u64, 0u64);
            for (frame, kind, cut, pad) in pieces {
                let line = enc(&Command::Transmit(frame));
                let body = &line[..line.len() - 1];
                match kind {
                    0 => {
                        bytes.extend_from_slice(&line);
                        good.push(frame);
                    }
                    1 => {
                        // 1..len(body) bytes of it: never empty, never whole.
                        let n = 1 + cut.index(body.len() - 1).min(body.len() - 2);
                        bytes.extend_from_slice(&body[..n]);
                        bytes.push(CR);
                        bad += 1;
                    }
                    _ => {
                        bytes.extend_from_slice(body);
                        bytes.extend(std::iter::repeat_n(b'A', MAX_LINE_LEN + pad));
                        bytes.push(CR);
                        bad += 1;
                        over_long += 1;
                    }
                }
            }
            let (events, d) = decode_all(&bytes);
            let decoded: Vec<CanFrame> = events
                .iter()
                .filter_map(|e| match e {
                    Ok(Event::Frame { frame, .. }) => Some(*frame),
                    _ => None,
                })
                .collect();
            prop_assert_eq!(decoded, good);
            prop_assert_eq!(d.stats().discarded.total(), bad);
            prop_assert_eq!(d.stats().discarded.get(SlcanError::LineTooLong), over_long);
            prop_assert_eq!(
                d.stats().bytes_accepted + d.stats().bytes_discarded,
                bytes.len() as u64
            );
        }

        #[test]
        fn frames_round_trip(frame in arb_frame()) {
            let (events, _) = decode_all(&enc(&Command::Transmit(frame)));
            prop_assert_eq!(events, vec![Ok(Event::Frame { frame, timestamp_ms: None })]);
        }

        #[test]
        fn events_round_trip(ev in arb_event()) {
            let bytes = enc_event(&ev);
            let (events, d) = decode_all(&bytes);
            prop_assert_eq!(events, vec![Ok(ev)]);
            prop_assert_eq!(d.stats().bytes_accepted, bytes.len() as u64);
        }

        #[test]
        fn decoding_resynchronises_after_garbage(
            garbage in proptest::collection::vec(any::<u8>().prop_filter("no terminator", |b| *b != CR && *b != BEL), 0..100),
            frame in arb_frame(),
        ) {
            let mut bytes = garbage;
            bytes.push(CR);
            bytes.extend(enc(&Command::Transmit(frame)));
            let (events, _) = decode_all(&bytes);
            prop_assert_eq!(
                events.last(),
                Some(&Ok(Event::Frame { frame, timestamp_ms: None }))
            );
        }
    }
}
