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
//! ([`Decoder::push`]) and yields events ([`Decoder::next`]). Garbage never
//! panics: a bad line is discarded up to its CR, counted by reason
//! ([`SlcanError`]) and decoding resumes with the next line. The line buffer
//! is bounded ([`MAX_LINE_LEN`]).

use super::frame::{CanFrame, CanId};
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
/// arrive, then call [`next`](Decoder::next) until it returns `None`.
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

    /// The next event or discarded line, or `None` when the queued bytes
    /// hold no complete message (a partial line stays buffered).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Event, SlcanError>> {
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

    /// End of stream: discard a partial line left in the buffer (as
    /// [`SlcanError::Truncated`], or [`SlcanError::LineTooLong`] if it was
    /// already too long). Call after [`next`](Decoder::next) returned
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
