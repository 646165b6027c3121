//! DSMR 5.0 P1 telegrams: the smart meter's serial port.
//!
//! A telegram is ASCII text with CRLF line endings:
//!
//! ```text
//! /ISK5\2MT382-1000          header: '/', 3-letter manufacturer, '5', identification
//!                            an empty line
//! 1-3:0.2.8(50)              OBIS lines: reference, then one or more (value) groups
//! 0-0:1.0.0(101209113020W)
//! ...
//! !6C20                      footer: '!' and the CRC-16/ARC of '/'..='!' in hex
//! ```
//!
//! [`Telegram`] is the typed subset the controller uses (see
//! `firmware/docs/p1.md` for the field table). [`parse`] checks the CRC, the
//! header, the format and unit of every known OBIS line, and that every
//! mandatory field is present; unknown OBIS codes are skipped when they are
//! well-formed, malformed lines are rejected with their line number.
//! [`emit`] writes a byte-exact telegram. [`Framer`] finds telegrams in the
//! serial byte stream (sans-IO) and resynchronises after garbage.
//!
//! Values are integers in the register's resolution, so emit → parse is
//! exact: energy in Wh (kWh with 3 decimals), power in W (kW with 3
//! decimals), voltage in 0.1 V, current in A.

use core::fmt::{self, Write};
use heapless::{String, Vec};

/// The longest telegram [`parse`] and [`Framer`] accept, in bytes.
pub const MAX_TELEGRAM_LEN: usize = 4096;
/// Power failure events kept from the event log (DSMR 5.0 keeps at most 10).
pub const MAX_FAILURE_EVENTS: usize = 10;
/// Longest meter identification after `/XXX5` (DSMR: up to 96 characters).
pub const MAX_IDENT_LEN: usize = 96;
/// Longest equipment identifier, in bytes (sent as up to 96 hex digits).
pub const MAX_EQUIPMENT_ID_LEN: usize = 48;

/// Largest energy register value: 999999.999 kWh.
pub const MAX_ENERGY_WH: u32 = 999_999_999;
/// Largest power value: 99.999 kW.
pub const MAX_POWER_W: u32 = 99_999;
/// Largest voltage value: 999.9 V.
pub const MAX_VOLTAGE_DV: u16 = 9_999;
/// Largest current value: 999 A.
pub const MAX_CURRENT_A: u16 = 999;
/// Largest power failure counter: 99999.
pub const MAX_FAILURE_COUNT: u32 = 99_999;
/// Largest tariff indicator: 9999.
pub const MAX_TARIFF: u16 = 9_999;

/// The OBIS code that introduces the entries of the power failure event log.
const FAILURE_LOG_ENTRY_OBIS: &[u8] = b"0-0:96.7.19";

// ---------------------------------------------------------------------------
// Types

/// The meter identification line, `/XXX5identification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Three-letter manufacturer flag (ASCII letters), e.g. `*b"ISK"`.
    pub manufacturer: [u8; 3],
    /// Everything after the baud-rate character `5`: printable ASCII except
    /// `/` and `!`.
    pub identification: String<MAX_IDENT_LEN>,
}

/// A meter timestamp `YYMMDDhhmmssX` (X = `S` summer / `W` winter time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Years since 2000, 0..=99.
    pub year: u8,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
    /// Daylight-saving (summer) time: `S`; winter time: `W`.
    pub summer: bool,
}

impl Timestamp {
    /// Whether every field is in range (the calendar is not checked beyond
    /// day 1..=31).
    pub fn is_valid(&self) -> bool {
        self.year <= 99
            && (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour <= 23
            && self.minute <= 59
            && self.second <= 59
    }

    /// Seconds since local midnight.
    pub fn seconds_of_day(&self) -> u32 {
        self.hour as u32 * 3600 + self.minute as u32 * 60 + self.second as u32
    }
}

/// One entry of the power failure event log `1-0:99.97.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PowerFailureEvent {
    /// When the failure ended.
    pub end: Timestamp,
    /// How long it lasted, in seconds.
    pub duration_s: u32,
}

/// The typed subset of a DSMR 5.0 telegram the controller uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telegram {
    /// `/XXX5...`
    pub header: Header,
    /// `1-3:0.2.8`, P1 version (`50` for DSMR 5.0). Optional on parse.
    pub version: Option<u8>,
    /// `0-0:1.0.0`, the meter's clock.
    pub timestamp: Timestamp,
    /// `0-0:96.1.1`, equipment identifier (decoded from hex).
    pub equipment_id: Vec<u8, MAX_EQUIPMENT_ID_LEN>,
    /// `1-0:1.8.1` / `1-0:1.8.2`: energy delivered to the client, tariff 1
    /// and 2, Wh.
    pub energy_delivered_wh: [u32; 2],
    /// `1-0:2.8.1` / `1-0:2.8.2`: energy returned by the client, tariff 1
    /// and 2, Wh.
    pub energy_returned_wh: [u32; 2],
    /// `0-0:96.14.0`, the tariff indicator (1 = low, 2 = normal tariff).
    pub tariff: u16,
    /// `1-0:1.7.0`, actual power delivered (imported), W.
    pub power_delivered_w: u32,
    /// `1-0:2.7.0`, actual power returned (exported), W.
    pub power_returned_w: u32,
    /// `0-0:96.7.21`, number of power failures in any phase.
    pub power_failures: u32,
    /// `0-0:96.7.9`, number of long power failures in any phase.
    pub long_power_failures: u32,
    /// `1-0:99.97.0`, the power failure event log (first
    /// [`MAX_FAILURE_EVENTS`] entries).
    pub failure_log: Vec<PowerFailureEvent, MAX_FAILURE_EVENTS>,
    /// `1-0:32.7.0` / `52.7.0` / `72.7.0`: instantaneous voltage L1 (mandatory),
    /// L2, L3, in 0.1 V.
    pub voltage_dv: [Option<u16>; 3],
    /// `1-0:31.7.0` / `51.7.0` / `71.7.0`: instantaneous current L1
    /// (mandatory), L2, L3, in A.
    pub current_a: [Option<u16>; 3],
}

/// A field of [`Telegram`], named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Header,
    Version,
    Timestamp,
    EquipmentId,
    EnergyDeliveredT1,
    EnergyDeliveredT2,
    EnergyReturnedT1,
    EnergyReturnedT2,
    Tariff,
    PowerDelivered,
    PowerReturned,
    PowerFailures,
    LongPowerFailures,
    FailureLog,
    VoltageL1,
    VoltageL2,
    VoltageL3,
    CurrentL1,
    CurrentL2,
    CurrentL3,
}

/// What is wrong with one line of a telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineError {
    /// Not `reference(value)...`: bad characters, OBIS reference or
    /// parentheses, an empty line or a stray CR/LF.
    Syntax,
    /// A known code with the wrong number of value groups.
    GroupCount,
    /// A value of the wrong width, digits, decimals or range.
    Value,
    /// A missing or wrong unit (`*kWh`, `*kW`, `*V`, `*A`, `*s`).
    Unit,
    /// A known code seen twice.
    Duplicate,
}

/// Why [`parse`] rejected a telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum P1Error {
    /// Longer than [`MAX_TELEGRAM_LEN`].
    TooLong,
    /// Does not start with `/`.
    NoStart,
    /// No `!` footer: truncated.
    Truncated,
    /// The footer is not `!` + 4 hex digits (+ optional CRLF).
    BadFooter,
    /// The CRC in the footer does not match the content.
    Crc { expected: u16, computed: u16 },
    /// The header line is not `/XXX5identification`.
    BadHeader,
    /// Line `line` (1-based, the header is line 1) is malformed.
    Line { line: u16, error: LineError },
    /// A mandatory field is absent.
    Missing(Field),
}

/// Why [`emit`] could not write a telegram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmitError {
    /// The output buffer is too small.
    BufferTooSmall,
    /// A field is out of its register's range (or a mandatory optional field
    /// — voltage or current L1 — is `None`).
    OutOfRange(Field),
}

impl fmt::Display for P1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P1Error::TooLong => write!(f, "telegram longer than {MAX_TELEGRAM_LEN} bytes"),
            P1Error::NoStart => write!(f, "telegram does not start with '/'"),
            P1Error::Truncated => write!(f, "telegram truncated (no '!' footer)"),
            P1Error::BadFooter => write!(f, "footer is not '!' and 4 hex digits"),
            P1Error::Crc { expected, computed } => {
                write!(
                    f,
                    "CRC mismatch: footer {expected:04X}, computed {computed:04X}"
                )
            }
            P1Error::BadHeader => write!(f, "header is not /XXX5identification"),
            P1Error::Line { line, error } => write!(f, "line {line}: {error:?}"),
            P1Error::Missing(field) => write!(f, "missing mandatory field {field:?}"),
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::BufferTooSmall => write!(f, "output buffer too small"),
            EmitError::OutOfRange(field) => write!(f, "{field:?} out of range"),
        }
    }
}

// ---------------------------------------------------------------------------
// CRC

/// CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final xor), the
/// DSMR 5.0 telegram CRC over `/` up to and including `!`.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

// ---------------------------------------------------------------------------
// Emit

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.pos.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.pos..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.pos = end;
        Ok(())
    }
}

fn check(ok: bool, field: Field) -> Result<(), EmitError> {
    if ok {
        Ok(())
    } else {
        Err(EmitError::OutOfRange(field))
    }
}

fn ident_char_ok(c: u8) -> bool {
    (0x20..=0x7E).contains(&c) && c != b'/' && c != b'!'
}

impl Telegram {
    /// Checks every field is within its register's range, as [`emit`] does.
    pub fn validate(&self) -> Result<(), EmitError> {
        use Field::*;
        check(
            self.header.manufacturer.iter().all(u8::is_ascii_alphabetic)
                && self.header.identification.bytes().all(ident_char_ok),
            Header,
        )?;
        check(self.version.is_none_or(|v| v <= 99), Version)?;
        check(self.timestamp.is_valid(), Timestamp)?;
        let fields = [EnergyDeliveredT1, EnergyDeliveredT2];
        for (v, f) in self.energy_delivered_wh.iter().zip(fields) {
            check(*v <= MAX_ENERGY_WH, f)?;
        }
        let fields = [EnergyReturnedT1, EnergyReturnedT2];
        for (v, f) in self.energy_returned_wh.iter().zip(fields) {
            check(*v <= MAX_ENERGY_WH, f)?;
        }
        check(self.tariff <= MAX_TARIFF, Tariff)?;
        check(self.power_delivered_w <= MAX_POWER_W, PowerDelivered)?;
        check(self.power_returned_w <= MAX_POWER_W, PowerReturned)?;
        check(self.power_failures <= MAX_FAILURE_COUNT, PowerFailures)?;
        check(
            self.long_power_failures <= MAX_FAILURE_COUNT,
            LongPowerFailures,
        )?;
        check(
            self.failure_log.iter().all(|e| e.end.is_valid()),
            FailureLog,
        )?;
        let fields = [VoltageL1, VoltageL2, VoltageL3];
        for (i, (v, f)) in self.voltage_dv.iter().zip(fields).enumerate() {
            check(v.map_or(i != 0, |v| v <= MAX_VOLTAGE_DV), f)?;
        }
        let fields = [CurrentL1, CurrentL2, CurrentL3];
        for (i, (v, f)) in self.current_a.iter().zip(fields).enumerate() {
            check(v.map_or(i != 0, |v| v <= MAX_CURRENT_A), f)?;
        }
        Ok(())
    }
}

fn write_ts(w: &mut SliceWriter<'_>, t: &Timestamp) -> fmt::Result {
    write!(
        w,
        "{:02}{:02}{:02}{:02}{:02}{:02}{}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        if t.summer { 'S' } else { 'W' }
    )
}

fn write_body(w: &mut SliceWriter<'_>, t: &Telegram) -> fmt::Result {
    let m = &t.header.manufacturer;
    w.write_char('/')?;
    for &c in m {
        w.write_char(c as char)?;
    }
    write!(w, "5{}\r\n\r\n", t.header.identification)?;
    if let Some(v) = t.version {
        write!(w, "1-3:0.2.8({v:02})\r\n")?;
    }
    w.write_str("0-0:1.0.0(")?;
    write_ts(w, &t.timestamp)?;
    w.write_str(")\r\n0-0:96.1.1(")?;
    for b in &t.equipment_id {
        write!(w, "{b:02X}")?;
    }
    w.write_str(")\r\n")?;
    let energy = [
        ("1-0:1.8.1", t.energy_delivered_wh[0]),
        ("1-0:1.8.2", t.energy_delivered_wh[1]),
        ("1-0:2.8.1", t.energy_returned_wh[0]),
        ("1-0:2.8.2", t.energy_returned_wh[1]),
    ];
    for (obis, wh) in energy {
        write!(w, "{obis}({:06}.{:03}*kWh)\r\n", wh / 1000, wh % 1000)?;
    }
    write!(w, "0-0:96.14.0({:04})\r\n", t.tariff)?;
    let p = t.power_delivered_w;
    write!(w, "1-0:1.7.0({:02}.{:03}*kW)\r\n", p / 1000, p % 1000)?;
    let p = t.power_returned_w;
    write!(w, "1-0:2.7.0({:02}.{:03}*kW)\r\n", p / 1000, p % 1000)?;
    write!(w, "0-0:96.7.21({:05})\r\n", t.power_failures)?;
    write!(w, "0-0:96.7.9({:05})\r\n", t.long_power_failures)?;
    write!(w, "1-0:99.97.0({})(0-0:96.7.19)", t.failure_log.len())?;
    for e in &t.failure_log {
        w.write_char('(')?;
        write_ts(w, &e.end)?;
        write!(w, ")({:010}*s)", e.duration_s)?;
    }
    w.write_str("\r\n")?;
    for (obis, v) in ["1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0"]
        .iter()
        .zip(t.voltage_dv)
    {
        if let Some(v) = v {
            write!(w, "{obis}({:03}.{}*V)\r\n", v / 10, v % 10)?;
        }
    }
    for (obis, a) in ["1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0"]
        .iter()
        .zip(t.current_a)
    {
        if let Some(a) = a {
            write!(w, "{obis}({a:03}*A)\r\n")?;
        }
    }
    w.write_char('!')
}

/// Writes `t` as a byte-exact DSMR 5.0 telegram (CRLF line endings, CRC
/// footer, final CRLF) into `out`; returns its length.
pub fn emit(t: &Telegram, out: &mut [u8]) -> Result<usize, EmitError> {
    t.validate()?;
    let mut w = SliceWriter { buf: out, pos: 0 };
    write_body(&mut w, t).map_err(|_| EmitError::BufferTooSmall)?;
    let crc = crc16(&w.buf[..w.pos]);
    write!(w, "{crc:04X}\r\n").map_err(|_| EmitError::BufferTooSmall)?;
    Ok(w.pos)
}

/// [`emit`] into a `heapless::String`, replacing its contents.
pub fn emit_string<const N: usize>(t: &Telegram, out: &mut String<N>) -> Result<(), EmitError> {
    out.clear();
    let mut buf = [0u8; N];
    let n = emit(t, &mut buf)?;
    // The telegram is ASCII by construction (every field was validated).
    let s = core::str::from_utf8(&buf[..n]).map_err(|_| EmitError::BufferTooSmall)?;
    out.push_str(s).map_err(|_| EmitError::BufferTooSmall)
}

// ---------------------------------------------------------------------------
// Parse

/// A fixed-point decimal of exactly `int` integer digits, and (if `frac > 0`)
/// a '.' and exactly `frac` decimals, as an integer in units of 10^-frac.
fn fixed(s: &[u8], int: usize, frac: usize) -> Option<u64> {
    let len = if frac > 0 { int + 1 + frac } else { int };
    if s.len() != len {
        return None;
    }
    let mut v: u64 = 0;
    for (i, &c) in s.iter().enumerate() {
        if frac > 0 && i == int {
            if c != b'.' {
                return None;
            }
            continue;
        }
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    Some(v)
}

/// Decimal digits only, 1..=`max` of them.
fn digits(s: &[u8], max: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max {
        return None;
    }
    fixed(s, s.len(), 0)
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn parse_timestamp(s: &[u8]) -> Option<Timestamp> {
    if s.len() != 13 {
        return None;
    }
    let two = |i: usize| fixed(&s[i..i + 2], 2, 0).map(|v| v as u8);
    let t = Timestamp {
        year: two(0)?,
        month: two(2)?,
        day: two(4)?,
        hour: two(6)?,
        minute: two(8)?,
        second: two(10)?,
        summer: match s[12] {
            b'S' => true,
            b'W' => false,
            _ => return None,
        },
    };
    t.is_valid().then_some(t)
}

/// Splits `value*unit`, checking the unit.
fn with_unit<'a>(g: &'a [u8], unit: &[u8]) -> Result<&'a [u8], LineError> {
    let star = g.iter().position(|&c| c == b'*').ok_or(LineError::Unit)?;
    if &g[star + 1..] != unit {
        return Err(LineError::Unit);
    }
    Ok(&g[..star])
}

/// `a-b:c.d.e` with decimal fields.
fn obis_ok(s: &[u8]) -> bool {
    let seps = [b'-', b':', b'.', b'.'];
    let mut parts = 0;
    let mut run = 0;
    for &c in s {
        if c.is_ascii_digit() {
            run += 1;
            if run > 3 {
                return false;
            }
        } else {
            if run == 0 || parts >= seps.len() || c != seps[parts] {
                return false;
            }
            parts += 1;
            run = 0;
        }
    }
    parts == seps.len() && run > 0
}

/// Iterates the `(...)` groups of a checked line remainder.
struct Groups<'a>(&'a [u8]);

impl<'a> Iterator for Groups<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.0.strip_prefix(b"(")?;
        let close = rest.iter().position(|&c| c == b')')?;
        self.0 = &rest[close + 1..];
        Some(&rest[..close])
    }
}

/// Checks `rest` is one or more `(printable)` groups; returns their count.
fn check_groups(rest: &[u8]) -> Option<usize> {
    let mut n = 0;
    let mut open = false;
    for &c in rest {
        match (open, c) {
            (false, b'(') => open = true,
            (true, b')') => {
                open = false;
                n += 1;
            }
            (true, c) if (0x20..=0x7E).contains(&c) && c != b'(' => {}
            _ => return None,
        }
    }
    (!open && n > 0).then_some(n)
}

#[derive(Default)]
struct Partial {
    version: Option<u8>,
    timestamp: Option<Timestamp>,
    equipment_id: Option<Vec<u8, MAX_EQUIPMENT_ID_LEN>>,
    energy_delivered_wh: [Option<u32>; 2],
    energy_returned_wh: [Option<u32>; 2],
    tariff: Option<u16>,
    power_delivered_w: Option<u32>,
    power_returned_w: Option<u32>,
    power_failures: Option<u32>,
    long_power_failures: Option<u32>,
    failure_log: Option<Vec<PowerFailureEvent, MAX_FAILURE_EVENTS>>,
    voltage_dv: [Option<u16>; 3],
    current_a: [Option<u16>; 3],
}

fn set<T>(slot: &mut Option<T>, v: T) -> Result<(), LineError> {
    if slot.is_some() {
        return Err(LineError::Duplicate);
    }
    *slot = Some(v);
    Ok(())
}

fn one(n: usize) -> Result<(), LineError> {
    if n == 1 {
        Ok(())
    } else {
        Err(LineError::GroupCount)
    }
}

fn parse_failure_log(
    n: usize,
    mut groups: Groups<'_>,
) -> Result<Vec<PowerFailureEvent, MAX_FAILURE_EVENTS>, LineError> {
    let mut log = Vec::new();
    let count_text = groups.next().ok_or(LineError::GroupCount)?;
    // Some meters send an empty log as `()`.
    let count = if count_text.is_empty() {
        0
    } else {
        digits(count_text, 10).ok_or(LineError::Value)?
    };
    if count == 0 {
        if n > 2 {
            return Err(LineError::GroupCount);
        }
        if let Some(obis) = groups.next() {
            if obis != FAILURE_LOG_ENTRY_OBIS {
                return Err(LineError::Value);
            }
        }
        return Ok(log);
    }
    if n < 2 || !(n - 2).is_multiple_of(2) || ((n - 2) / 2) as u64 != count {
        return Err(LineError::GroupCount);
    }
    if groups.next() != Some(FAILURE_LOG_ENTRY_OBIS) {
        return Err(LineError::Value);
    }
    while let Some(ts) = groups.next() {
        let dur = groups.next().ok_or(LineError::GroupCount)?;
        let end = parse_timestamp(ts).ok_or(LineError::Value)?;
        let dur = with_unit(dur, b"s")?;
        let duration_s = fixed(dur, 10, 0)
            .and_then(|d| u32::try_from(d).ok())
            .ok_or(LineError::Value)?;
        // Keep the first MAX_FAILURE_EVENTS entries; the rest are checked
        // and dropped.
        let _ = log.push(PowerFailureEvent { end, duration_s });
    }
    Ok(log)
}

fn parse_line(line: &[u8], p: &mut Partial) -> Result<(), LineError> {
    let open = line
        .iter()
        .position(|&c| c == b'(')
        .ok_or(LineError::Syntax)?;
    let (obis, rest) = line.split_at(open);
    if !obis_ok(obis) {
        return Err(LineError::Syntax);
    }
    let n = check_groups(rest).ok_or(LineError::Syntax)?;
    if obis == b"1-0:99.97.0" {
        if p.failure_log.is_some() {
            return Err(LineError::Duplicate);
        }
        p.failure_log = Some(parse_failure_log(n, Groups(rest))?);
        return Ok(());
    }
    // The first group (check_groups found at least one).
    let first = Groups(rest).next().unwrap_or(&[]);
    parse_value(obis, n, first, p)
}

/// A line of one group (`n` groups found; `first` is the first): the
/// value of a known OBIS code into its slot, each at most once. Unknown
/// but well-formed codes are skipped: DSMR meters send many others.
fn parse_value(obis: &[u8], n: usize, first: &[u8], p: &mut Partial) -> Result<(), LineError> {
    match obis {
        b"1-3:0.2.8" => {
            one(n)?;
            let v = fixed(first, 2, 0).ok_or(LineError::Value)?;
            set(&mut p.version, v as u8)
        }
        b"0-0:1.0.0" => {
            one(n)?;
            set(
                &mut p.timestamp,
                parse_timestamp(first).ok_or(LineError::Value)?,
            )
        }
        b"0-0:96.1.1" => {
            one(n)?;
            set(&mut p.equipment_id, parse_equipment_id(first)?)
        }
        b"1-0:1.8.1" | b"1-0:1.8.2" | b"1-0:2.8.1" | b"1-0:2.8.2" => {
            one(n)?;
            let regs = if obis[4] == b'1' {
                &mut p.energy_delivered_wh
            } else {
                &mut p.energy_returned_wh
            };
            let i = (obis[8] - b'1') as usize;
            set(&mut regs[i], quantity(first, b"kWh", 6, 3)? as u32)
        }
        b"0-0:96.14.0" => {
            one(n)?;
            let v = fixed(first, 4, 0).ok_or(LineError::Value)?;
            set(&mut p.tariff, v as u16)
        }
        b"1-0:1.7.0" => {
            one(n)?;
            set(&mut p.power_delivered_w, power_w(first)?)
        }
        b"1-0:2.7.0" => {
            one(n)?;
            set(&mut p.power_returned_w, power_w(first)?)
        }
        b"0-0:96.7.21" => {
            one(n)?;
            set(&mut p.power_failures, counter(first)?)
        }
        b"0-0:96.7.9" => {
            one(n)?;
            set(&mut p.long_power_failures, counter(first)?)
        }
        b"1-0:32.7.0" | b"1-0:52.7.0" | b"1-0:72.7.0" => {
            one(n)?;
            let i = ((obis[4] - b'3') / 2) as usize;
            set(&mut p.voltage_dv[i], quantity(first, b"V", 3, 1)? as u16)
        }
        b"1-0:31.7.0" | b"1-0:51.7.0" | b"1-0:71.7.0" => {
            one(n)?;
            let i = ((obis[4] - b'3') / 2) as usize;
            set(&mut p.current_a[i], quantity(first, b"A", 3, 0)? as u16)
        }
        _ => Ok(()),
    }
}

/// A value with its unit (`123.456*kWh`) as a fixed-point number of `int`
/// integer and `frac` fraction digits, scaled to an integer.
fn quantity(group: &[u8], unit: &[u8], int: usize, frac: usize) -> Result<u64, LineError> {
    fixed(with_unit(group, unit)?, int, frac).ok_or(LineError::Value)
}

/// A power in kW with 3 decimals, as W.
fn power_w(group: &[u8]) -> Result<u32, LineError> {
    quantity(group, b"kW", 2, 3).map(|v| v as u32)
}

/// A counter of up to 5 digits.
fn counter(group: &[u8]) -> Result<u32, LineError> {
    fixed(group, 5, 0).map(|v| v as u32).ok_or(LineError::Value)
}

/// The equipment identifier: hex pairs, at most `MAX_EQUIPMENT_ID_LEN`
/// bytes.
fn parse_equipment_id(group: &[u8]) -> Result<Vec<u8, MAX_EQUIPMENT_ID_LEN>, LineError> {
    if !group.len().is_multiple_of(2) || group.len() > 2 * MAX_EQUIPMENT_ID_LEN {
        return Err(LineError::Value);
    }
    let mut id = Vec::new();
    for pair in group.chunks_exact(2) {
        let hi = hex_nibble(pair[0]).ok_or(LineError::Value)?;
        let lo = hex_nibble(pair[1]).ok_or(LineError::Value)?;
        id.push((hi << 4) | lo).map_err(|_| LineError::Value)?;
    }
    Ok(id)
}

/// Parses and checks one complete telegram, `/` through `!XXXX` (a final
/// CRLF is optional). Never panics.
pub fn parse(bytes: &[u8]) -> Result<Telegram, P1Error> {
    let bang = check_frame(bytes)?;
    let (header, p) = parse_body(&bytes[..bang])?;
    p.into_telegram(header)
}

/// The frame around the body: the length, the `/` start, the `!` footer
/// and its CRC. Returns where the `!` is.
fn check_frame(bytes: &[u8]) -> Result<usize, P1Error> {
    if bytes.len() > MAX_TELEGRAM_LEN {
        return Err(P1Error::TooLong);
    }
    if bytes.first() != Some(&b'/') {
        return Err(P1Error::NoStart);
    }
    let bang = bytes
        .iter()
        .position(|&c| c == b'!')
        .ok_or(P1Error::Truncated)?;
    let footer = &bytes[bang + 1..];
    let footer = footer.strip_suffix(b"\r\n").unwrap_or(footer);
    if footer.len() != 4 {
        return Err(P1Error::BadFooter);
    }
    let mut expected: u16 = 0;
    for &c in footer {
        expected = (expected << 4) | hex_nibble(c).ok_or(P1Error::BadFooter)? as u16;
    }
    let computed = crc16(&bytes[..=bang]);
    if expected != computed {
        return Err(P1Error::Crc { expected, computed });
    }
    Ok(bang)
}

/// The body (before the `!`): lines each closed by CRLF, the header, an
/// empty line, then the data lines.
fn parse_body(body: &[u8]) -> Result<(Header, Partial), P1Error> {
    let mut p = Partial::default();
    let mut header = None;
    let mut line_no: u16 = 0;
    let mut rest_len = body.len();
    for raw in body.split(|&c| c == b'\n') {
        line_no = line_no.saturating_add(1);
        let syntax = P1Error::Line {
            line: line_no,
            error: LineError::Syntax,
        };
        let consumed = raw.len() + 1; // the '\n' (absent on the last piece)
        if consumed > rest_len {
            // The last piece, after the final '\n': must be empty ('!'
            // starts its own line).
            if !raw.is_empty() {
                return Err(syntax);
            }
            break;
        }
        rest_len -= consumed;
        let line = raw.strip_suffix(b"\r").ok_or(syntax)?;
        if line.contains(&b'\r') {
            return Err(syntax);
        }
        match line_no {
            1 => header = Some(parse_header(line)?),
            2 if line.is_empty() => {}
            2 => return Err(syntax),
            _ => parse_line(line, &mut p).map_err(|error| P1Error::Line {
                line: line_no,
                error,
            })?,
        }
    }
    // A body without CRLF before '!' ends in a non-empty last piece (caught
    // above); a header-only body lacks the empty line.
    let header = header.ok_or(P1Error::BadHeader)?;
    Ok((header, p))
}

impl Partial {
    /// The telegram, once every mandatory field was given.
    fn into_telegram(self, header: Header) -> Result<Telegram, P1Error> {
        use Field::*;
        let p = self;
        let m = |f: Field| P1Error::Missing(f);
        Ok(Telegram {
            header,
            version: p.version,
            timestamp: p.timestamp.ok_or(m(Timestamp))?,
            equipment_id: p.equipment_id.ok_or(m(EquipmentId))?,
            energy_delivered_wh: [
                p.energy_delivered_wh[0].ok_or(m(EnergyDeliveredT1))?,
                p.energy_delivered_wh[1].ok_or(m(EnergyDeliveredT2))?,
            ],
            energy_returned_wh: [
                p.energy_returned_wh[0].ok_or(m(EnergyReturnedT1))?,
                p.energy_returned_wh[1].ok_or(m(EnergyReturnedT2))?,
            ],
            tariff: p.tariff.ok_or(m(Tariff))?,
            power_delivered_w: p.power_delivered_w.ok_or(m(PowerDelivered))?,
            power_returned_w: p.power_returned_w.ok_or(m(PowerReturned))?,
            power_failures: p.power_failures.ok_or(m(PowerFailures))?,
            long_power_failures: p.long_power_failures.ok_or(m(LongPowerFailures))?,
            failure_log: p.failure_log.ok_or(m(FailureLog))?,
            voltage_dv: {
                p.voltage_dv[0].ok_or(m(VoltageL1))?;
                p.voltage_dv
            },
            current_a: {
                p.current_a[0].ok_or(m(CurrentL1))?;
                p.current_a
            },
        })
    }
}

fn parse_header(line: &[u8]) -> Result<Header, P1Error> {
    let rest = line.strip_prefix(b"/").ok_or(P1Error::BadHeader)?;
    if rest.len() < 4 || rest.len() > 4 + MAX_IDENT_LEN {
        return Err(P1Error::BadHeader);
    }
    let (flag, rest) = rest.split_at(3);
    if !flag.iter().all(u8::is_ascii_alphabetic) || rest[0] != b'5' {
        return Err(P1Error::BadHeader);
    }
    let ident = &rest[1..];
    if !ident.iter().copied().all(ident_char_ok) {
        return Err(P1Error::BadHeader);
    }
    let ident = core::str::from_utf8(ident).map_err(|_| P1Error::BadHeader)?;
    let mut identification = String::new();
    identification
        .push_str(ident)
        .map_err(|_| P1Error::BadHeader)?;
    Ok(Header {
        manufacturer: [flag[0], flag[1], flag[2]],
        identification,
    })
}

// ---------------------------------------------------------------------------
// Framer

/// Counters kept by [`Framer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FramerStats {
    /// Telegrams that parsed.
    pub telegrams_ok: u32,
    /// Frames whose CRC did not match.
    pub crc_errors: u32,
    /// Frames rejected for any other reason (header, footer, line, missing
    /// field).
    pub malformed: u32,
    /// Frames cut short by the start of the next one (`/` before the footer).
    pub truncated: u32,
    /// Frames longer than the buffer, dropped.
    pub overlong: u32,
    /// Bytes dropped: outside any frame, or in truncated and overlong frames.
    pub bytes_discarded: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Discarding bytes until a '/'.
    Hunt,
    /// Inside a frame, before '!'.
    Body,
    /// After '!': the CRC digits and CRLF (count of bytes seen).
    Footer(u8),
    /// Inside an overlong frame: discarding until the next '/'.
    Skip,
    /// A complete frame is waiting for `next_telegram`.
    Ready,
}

/// Finds telegrams in the P1 serial byte stream (sans-IO).
///
/// Push the bytes read with [`push`](Framer::push), then call
/// [`next_telegram`](Framer::next_telegram) until it returns `None`. A frame
/// runs from `/` to `!XXXX\r\n`; bytes outside frames are discarded and
/// counted, a `/` before the footer restarts the frame (the partial one is
/// counted as truncated), and a frame longer than `N` bytes is dropped and
/// counted. A frame ending without its CRLF is completed by the next `/`.
#[derive(Debug, Clone)]
pub struct Framer<const N: usize = MAX_TELEGRAM_LEN> {
    buf: [u8; N],
    len: usize,
    state: State,
    stats: FramerStats,
}

impl<const N: usize> Default for Framer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Framer<N> {
    pub const fn new() -> Self {
        Framer {
            buf: [0; N],
            len: 0,
            state: State::Hunt,
            stats: FramerStats {
                telegrams_ok: 0,
                crc_errors: 0,
                malformed: 0,
                truncated: 0,
                overlong: 0,
                bytes_discarded: 0,
            },
        }
    }

    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Whether a partial frame is buffered (the caller may [`reset`] it
    /// after a line timeout).
    ///
    /// [`reset`]: Framer::reset
    pub fn in_frame(&self) -> bool {
        matches!(self.state, State::Body | State::Footer(_))
    }

    /// Drops any partial frame (counted as truncated).
    pub fn reset(&mut self) {
        if self.in_frame() {
            self.stats.truncated += 1;
            self.stats.bytes_discarded += self.len as u64;
        }
        self.len = 0;
        self.state = State::Hunt;
    }

    fn start(&mut self) {
        self.buf[0] = b'/';
        self.len = 1;
        self.state = State::Body;
    }

    fn append(&mut self, c: u8) -> bool {
        if self.len < N {
            self.buf[self.len] = c;
            self.len += 1;
            true
        } else {
            self.stats.overlong += 1;
            self.stats.bytes_discarded += self.len as u64 + 1;
            self.len = 0;
            self.state = State::Skip;
            false
        }
    }

    /// Takes bytes from `data` up to the end of the next complete frame;
    /// returns how many it took. Call [`next_telegram`](Framer::next_telegram)
    /// and push the rest: a waiting frame blocks further input.
    pub fn push(&mut self, data: &[u8]) -> usize {
        for (i, &c) in data.iter().enumerate() {
            match self.state {
                State::Ready => return i,
                State::Hunt | State::Skip => {
                    if c == b'/' && N > 0 {
                        self.start();
                    } else {
                        self.stats.bytes_discarded += 1;
                    }
                }
                State::Body => {
                    if c == b'/' {
                        self.stats.truncated += 1;
                        self.stats.bytes_discarded += self.len as u64;
                        self.start();
                    } else if self.append(c) && c == b'!' {
                        self.state = State::Footer(0);
                    }
                }
                State::Footer(n) => {
                    if c == b'/' {
                        // No CRLF after the CRC: the frame ends here.
                        self.state = State::Ready;
                        return i;
                    }
                    if self.append(c) {
                        self.state = if c == b'\n' || n + 1 >= 6 {
                            State::Ready
                        } else {
                            State::Footer(n + 1)
                        };
                    }
                }
            }
        }
        data.len()
    }

    /// The next complete frame, parsed, if one is waiting. Updates the
    /// counters.
    pub fn next_telegram(&mut self) -> Option<Result<Telegram, P1Error>> {
        if self.state != State::Ready {
            return None;
        }
        let r = parse(&self.buf[..self.len]);
        match r {
            Ok(_) => self.stats.telegrams_ok += 1,
            Err(P1Error::Crc { .. }) => self.stats.crc_errors += 1,
            Err(_) => self.stats.malformed += 1,
        }
        self.len = 0;
        self.state = State::Hunt;
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec as StdVec;

    /// A telegram written by hand following the DSMR 5.0 P1 companion
    /// standard's example (three phases, a text message, a gas meter on
    /// M-Bus channel 1: those codes are not in the subset and are skipped).
    /// CRC computed independently in Python (bitwise and table-driven
    /// CRC-16/ARC, both giving the check value 0xBB3D for "123456789"):
    ///   t = open('tel.txt','rb').read().replace(b'\n', b'\r\n')
    ///   crc_arc(t[:t.index(b'!') + 1])  ->  0xAF6F
    /// with crc ^= b; 8x: crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1.
    const EXAMPLE: &str = concat!(
        "/ISK5\\2MT382-1000\r\n",
        "\r\n",
        "1-3:0.2.8(50)\r\n",
        "0-0:1.0.0(101209113020W)\r\n",
        "0-0:96.1.1(4B384547303034303436333935353037)\r\n",
        "1-0:1.8.1(123456.789*kWh)\r\n",
        "1-0:1.8.2(123456.789*kWh)\r\n",
        "1-0:2.8.1(123456.789*kWh)\r\n",
        "1-0:2.8.2(123456.789*kWh)\r\n",
        "0-0:96.14.0(0002)\r\n",
        "1-0:1.7.0(01.193*kW)\r\n",
        "1-0:2.7.0(00.000*kW)\r\n",
        "0-0:96.7.21(00004)\r\n",
        "0-0:96.7.9(00002)\r\n",
        "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(101208151004W)(0000000301*s)\r\n",
        "1-0:32.32.0(00002)\r\n",
        "1-0:52.32.0(00001)\r\n",
        "1-0:72.32.0(00000)\r\n",
        "1-0:32.36.0(00000)\r\n",
        "1-0:52.36.0(00003)\r\n",
        "1-0:72.36.0(00000)\r\n",
        "0-0:96.13.0(303132333435363738393A3B3C3D3E3F303132333435363738393A3B3C3D3E3F303132333435363738393A3B3C3D3E3F303132333435363738393A3B3C3D3E3F303132333435363738393A3B3C3D3E3F)\r\n",
        "1-0:32.7.0(220.1*V)\r\n",
        "1-0:52.7.0(220.2*V)\r\n",
        "1-0:72.7.0(220.3*V)\r\n",
        "1-0:31.7.0(001*A)\r\n",
        "1-0:51.7.0(002*A)\r\n",
        "1-0:71.7.0(003*A)\r\n",
        "1-0:21.7.0(01.111*kW)\r\n",
        "1-0:41.7.0(02.222*kW)\r\n",
        "1-0:61.7.0(03.333*kW)\r\n",
        "1-0:22.7.0(04.444*kW)\r\n",
        "1-0:42.7.0(05.555*kW)\r\n",
        "1-0:62.7.0(06.666*kW)\r\n",
        "0-1:24.1.0(003)\r\n",
        "0-1:96.1.0(3232323241424344313233343536373839)\r\n",
        "0-1:24.2.1(101209112500W)(12785.123*m3)\r\n",
        "!AF6F\r\n",
    );

    fn ts(y: u8, mo: u8, d: u8, h: u8, mi: u8, s: u8, summer: bool) -> Timestamp {
        Timestamp {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
            summer,
        }
    }

    /// The subset of `EXAMPLE`, as a typed value.
    fn sample() -> Telegram {
        let mut identification = String::new();
        identification.push_str("\\2MT382-1000").unwrap();
        let mut failure_log = Vec::new();
        failure_log
            .push(PowerFailureEvent {
                end: ts(10, 12, 8, 15, 24, 15, false),
                duration_s: 240,
            })
            .unwrap();
        failure_log
            .push(PowerFailureEvent {
                end: ts(10, 12, 8, 15, 10, 4, false),
                duration_s: 301,
            })
            .unwrap();
        Telegram {
            header: Header {
                manufacturer: *b"ISK",
                identification,
            },
            version: Some(50),
            timestamp: ts(10, 12, 9, 11, 30, 20, false),
            equipment_id: Vec::from_slice(b"K8EG004046395507").unwrap(),
            energy_delivered_wh: [123_456_789, 123_456_789],
            energy_returned_wh: [123_456_789, 123_456_789],
            tariff: 2,
            power_delivered_w: 1193,
            power_returned_w: 0,
            power_failures: 4,
            long_power_failures: 2,
            failure_log,
            voltage_dv: [Some(2201), Some(2202), Some(2203)],
            current_a: [Some(1), Some(2), Some(3)],
        }
    }

    /// `emit(&sample())`, written out; CRC from the same Python CRC-16/ARC
    /// over this text up to '!' (0x6C20).
    const SAMPLE_EMITTED: &str = concat!(
        "/ISK5\\2MT382-1000\r\n",
        "\r\n",
        "1-3:0.2.8(50)\r\n",
        "0-0:1.0.0(101209113020W)\r\n",
        "0-0:96.1.1(4B384547303034303436333935353037)\r\n",
        "1-0:1.8.1(123456.789*kWh)\r\n",
        "1-0:1.8.2(123456.789*kWh)\r\n",
        "1-0:2.8.1(123456.789*kWh)\r\n",
        "1-0:2.8.2(123456.789*kWh)\r\n",
        "0-0:96.14.0(0002)\r\n",
        "1-0:1.7.0(01.193*kW)\r\n",
        "1-0:2.7.0(00.000*kW)\r\n",
        "0-0:96.7.21(00004)\r\n",
        "0-0:96.7.9(00002)\r\n",
        "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(101208151004W)(0000000301*s)\r\n",
        "1-0:32.7.0(220.1*V)\r\n",
        "1-0:52.7.0(220.2*V)\r\n",
        "1-0:72.7.0(220.3*V)\r\n",
        "1-0:31.7.0(001*A)\r\n",
        "1-0:51.7.0(002*A)\r\n",
        "1-0:71.7.0(003*A)\r\n",
        "!6C20\r\n",
    );

    fn emit_vec(t: &Telegram) -> StdVec<u8> {
        let mut buf = [0u8; MAX_TELEGRAM_LEN];
        let n = emit(t, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// Rewrites the CRC of a telegram after editing its body.
    fn fix_crc(t: &str) -> StdVec<u8> {
        let bang = t.find('!').unwrap();
        let mut v = t.as_bytes()[..=bang].to_vec();
        let crc = crc16(&v);
        v.extend_from_slice(std::format!("{crc:04X}\r\n").as_bytes());
        v
    }

    #[test]
    fn crc16_arc_check_value() {
        // The catalogue check value of CRC-16/ARC.
        assert_eq!(crc16(b"123456789"), 0xBB3D);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn known_example_parses() {
        let t = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(t, sample());
        assert_eq!(t.timestamp.seconds_of_day(), 11 * 3600 + 30 * 60 + 20);
    }

    #[test]
    fn emit_is_byte_exact() {
        assert_eq!(emit_vec(&sample()), SAMPLE_EMITTED.as_bytes());
        let mut s: String<1024> = String::new();
        emit_string(&sample(), &mut s).unwrap();
        assert_eq!(s.as_str(), SAMPLE_EMITTED);
    }

    #[test]
    fn round_trip_typical_and_extremes() {
        let t = sample();
        assert_eq!(parse(&emit_vec(&t)).unwrap(), t);

        let mut lo = sample();
        lo.header.identification.clear();
        lo.version = None;
        lo.timestamp = ts(0, 1, 1, 0, 0, 0, true);
        lo.equipment_id.clear();
        lo.energy_delivered_wh = [0, 0];
        lo.energy_returned_wh = [0, 0];
        lo.tariff = 0;
        lo.power_delivered_w = 0;
        lo.power_returned_w = 0;
        lo.power_failures = 0;
        lo.long_power_failures = 0;
        lo.failure_log.clear();
        lo.voltage_dv = [Some(0), None, None];
        lo.current_a = [Some(0), None, None];
        let bytes = emit_vec(&lo);
        assert!(std::str::from_utf8(&bytes)
            .unwrap()
            .contains("1-0:99.97.0(0)(0-0:96.7.19)\r\n"));
        assert_eq!(parse(&bytes).unwrap(), lo);

        let mut hi = sample();
        hi.header.identification.clear();
        for _ in 0..MAX_IDENT_LEN {
            hi.header.identification.push('~').unwrap();
        }
        hi.version = Some(99);
        hi.timestamp = ts(99, 12, 31, 23, 59, 59, true);
        hi.equipment_id = Vec::from_slice(&[0xFF; MAX_EQUIPMENT_ID_LEN]).unwrap();
        hi.energy_delivered_wh = [MAX_ENERGY_WH; 2];
        hi.energy_returned_wh = [MAX_ENERGY_WH; 2];
        hi.tariff = MAX_TARIFF;
        hi.power_delivered_w = MAX_POWER_W;
        hi.power_returned_w = MAX_POWER_W;
        hi.power_failures = MAX_FAILURE_COUNT;
        hi.long_power_failures = MAX_FAILURE_COUNT;
        hi.failure_log.clear();
        for _ in 0..MAX_FAILURE_EVENTS {
            hi.failure_log
                .push(PowerFailureEvent {
                    end: ts(99, 12, 31, 23, 59, 59, false),
                    duration_s: u32::MAX,
                })
                .unwrap();
        }
        hi.voltage_dv = [Some(MAX_VOLTAGE_DV); 3];
        hi.current_a = [Some(MAX_CURRENT_A); 3];
        let bytes = emit_vec(&hi);
        assert!(bytes.len() < 1200, "{}", bytes.len());
        assert_eq!(parse(&bytes).unwrap(), hi);
    }

    #[test]
    fn emit_rejects_out_of_range_and_small_buffers() {
        let mut t = sample();
        t.energy_returned_wh[1] = MAX_ENERGY_WH + 1;
        let mut buf = [0u8; 2048];
        assert_eq!(
            emit(&t, &mut buf),
            Err(EmitError::OutOfRange(Field::EnergyReturnedT2))
        );
        let mut t = sample();
        t.voltage_dv[0] = None;
        assert_eq!(
            emit(&t, &mut buf),
            Err(EmitError::OutOfRange(Field::VoltageL1))
        );
        let mut t = sample();
        t.timestamp.month = 13;
        assert_eq!(
            emit(&t, &mut buf),
            Err(EmitError::OutOfRange(Field::Timestamp))
        );
        let mut t = sample();
        t.header.identification.clear();
        t.header.identification.push('!').unwrap();
        assert_eq!(
            emit(&t, &mut buf),
            Err(EmitError::OutOfRange(Field::Header))
        );
        let n = SAMPLE_EMITTED.len();
        let mut small = [0u8; 600];
        assert_eq!(
            emit(&sample(), &mut small[..n - 1]),
            Err(EmitError::BufferTooSmall)
        );
        assert_eq!(emit(&sample(), &mut small[..n]), Ok(n));
    }

    #[test]
    fn every_single_byte_flip_is_a_crc_error() {
        let good = SAMPLE_EMITTED.as_bytes();
        let bang = SAMPLE_EMITTED.find('!').unwrap();
        for i in 1..bang {
            for bit in 0..8 {
                let mut b = good.to_vec();
                b[i] ^= 1 << bit;
                if b[i..=bang].contains(&b'!') && b[i] == b'!' {
                    // A new '!' earlier moves the footer: still rejected.
                    assert!(parse(&b).is_err());
                    continue;
                }
                assert!(
                    matches!(parse(&b), Err(P1Error::Crc { .. })),
                    "byte {i} bit {bit}: {:?}",
                    parse(&b)
                );
            }
        }
        // A flipped CRC digit.
        let mut b = good.to_vec();
        b[bang + 1] = b'7';
        assert_eq!(
            parse(&b),
            Err(P1Error::Crc {
                expected: 0x7C20,
                computed: 0x6C20
            })
        );
    }

    #[test]
    fn footer_and_framing_errors() {
        let good = SAMPLE_EMITTED.as_bytes();
        let bang = SAMPLE_EMITTED.find('!').unwrap();
        // The final CRLF is optional; lower-case hex is accepted.
        assert!(parse(&good[..bang + 5]).is_ok());
        assert!(parse(SAMPLE_EMITTED.replacen("!6C20", "!6c20", 1).as_bytes()).is_ok());
        assert!(parse(b"").is_err());
        assert_eq!(parse(&good[1..]), Err(P1Error::NoStart));
        assert_eq!(parse(&good[..bang]), Err(P1Error::Truncated));
        assert_eq!(parse(&good[..bang + 3]), Err(P1Error::BadFooter));
        let mut b = good.to_vec();
        b.push(b'x');
        assert_eq!(parse(&b), Err(P1Error::BadFooter));
        let mut b = good.to_vec();
        b[bang + 1] = b'G';
        assert_eq!(parse(&b), Err(P1Error::BadFooter));
        let mut long = good.to_vec();
        long.resize(MAX_TELEGRAM_LEN + 1, b' ');
        assert_eq!(parse(&long), Err(P1Error::TooLong));
    }

    fn line_err(text: &str) -> Result<Telegram, P1Error> {
        parse(&fix_crc(text))
    }

    /// Replaces `from` by `to` in the sample telegram (once) and expects the
    /// parse to fail at `line` with `error`.
    fn assert_line_errors(cases: &[(&str, &str, u16, LineError)]) {
        for (from, to, line, error) in cases {
            assert!(SAMPLE_EMITTED.contains(from), "{from}");
            let text = SAMPLE_EMITTED.replacen(from, to, 1);
            assert_eq!(
                line_err(&text),
                Err(P1Error::Line {
                    line: *line,
                    error: *error
                }),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn energy_lines_with_a_wrong_unit_value_or_shape_are_rejected_with_their_number() {
        assert_line_errors(&[
            (
                "1-0:1.8.1(123456.789*kWh)",
                "1-0:1.8.1(123456.789*kW)",
                6,
                LineError::Unit,
            ),
            (
                "1-0:1.8.1(123456.789*kWh)",
                "1-0:1.8.1(123456.789)",
                6,
                LineError::Unit,
            ),
            (
                "1-0:1.8.1(123456.789*kWh)",
                "1-0:1.8.1(12345.789*kWh)",
                6,
                LineError::Value,
            ),
            (
                "1-0:1.8.1(123456.789*kWh)",
                "1-0:1.8.1(123456,789*kWh)",
                6,
                LineError::Value,
            ),
            (
                "1-0:1.8.1(123456.789*kWh)",
                "1-0:1.8.1(123456.789*kWh",
                6,
                LineError::Syntax,
            ),
            (
                "1-0:1.8.1(123456.789*kWh)",
                "1-0:1.8.1(1)(2)",
                6,
                LineError::GroupCount,
            ),
            (
                "1-0:1.8.2(123456.789*kWh)",
                "1-0:1.8.1(123456.789*kWh)",
                7,
                LineError::Duplicate,
            ),
        ]);
    }

    #[test]
    fn other_values_in_a_wrong_format_are_rejected_with_their_number() {
        assert_line_errors(&[
            ("0-0:96.14.0(0002)", "0-0:96.14.0(2)", 10, LineError::Value),
            (
                "1-0:1.7.0(01.193*kW)",
                "1-0:1.7.0(1.193*kW)",
                11,
                LineError::Value,
            ),
            (
                "0-0:1.0.0(101209113020W)",
                "0-0:1.0.0(101309113020W)",
                4,
                LineError::Value,
            ),
            (
                "0-0:1.0.0(101209113020W)",
                "0-0:1.0.0(101209113020X)",
                4,
                LineError::Value,
            ),
            ("0-0:96.1.1(4B38", "0-0:96.1.1(4G38", 5, LineError::Value),
            (
                "1-0:32.7.0(220.1*V)",
                "1-0:32.7.0(220*V)",
                16,
                LineError::Value,
            ),
            ("1-0:31.7.0(001*A)", "1-0:31.7.0(1*A)", 19, LineError::Value),
            (
                "1-0:71.7.0(003*A)",
                "1-0:71.7.0(003*V)",
                21,
                LineError::Unit,
            ),
        ]);
    }

    #[test]
    fn a_malformed_failure_log_is_rejected_with_its_line_number() {
        assert_line_errors(&[
            ("(0000000240*s)", "(0000000240*m)", 15, LineError::Unit),
            (
                "(2)(0-0:96.7.19)",
                "(3)(0-0:96.7.19)",
                15,
                LineError::GroupCount,
            ),
            ("(2)(0-0:96.7.19)", "(2)(0-0:96.7.18)", 15, LineError::Value),
        ]);
    }

    #[test]
    fn lines_that_are_not_obis_lines_are_syntax_errors_with_their_number() {
        assert_line_errors(&[
            (
                "1-0:71.7.0(003*A)",
                "1-0:71.7.0 (003*A)",
                21,
                LineError::Syntax,
            ),
            (
                "1-0:71.7.0(003*A)",
                "1-0:71.7(003*A)",
                21,
                LineError::Syntax,
            ),
            ("1-0:71.7.0(003*A)", "garbage", 21, LineError::Syntax),
            ("1-0:71.7.0(003*A)", "", 21, LineError::Syntax),
            (
                "1-0:71.7.0(003*A)\r\n",
                "1-0:71.7.0(003*A)\n",
                21,
                LineError::Syntax,
            ),
            ("\r\n\r\n1-3", "\r\nx\r\n1-3", 2, LineError::Syntax),
        ]);
    }

    #[test]
    fn header_and_missing_fields() {
        for bad in ["/ISK4\\2MT", "/IS5x", "/I1K5x", "/ISK5a!b"] {
            let text = SAMPLE_EMITTED.replacen("/ISK5\\2MT382-1000", bad, 1);
            if bad.contains('!') {
                assert!(line_err(&text).is_err());
            } else {
                assert_eq!(line_err(&text), Err(P1Error::BadHeader), "{bad}");
            }
        }
        let cases = [
            ("0-0:1.0.0(101209113020W)\r\n", Field::Timestamp),
            ("1-0:2.8.2(123456.789*kWh)\r\n", Field::EnergyReturnedT2),
            ("0-0:96.7.9(00002)\r\n", Field::LongPowerFailures),
            ("1-0:32.7.0(220.1*V)\r\n", Field::VoltageL1),
            ("1-0:31.7.0(001*A)\r\n", Field::CurrentL1),
        ];
        for (line, field) in cases {
            let text = SAMPLE_EMITTED.replacen(line, "", 1);
            assert_eq!(line_err(&text), Err(P1Error::Missing(field)));
        }
        // Optional: version and L2/L3.
        let text = SAMPLE_EMITTED
            .replacen("1-3:0.2.8(50)\r\n", "", 1)
            .replacen("1-0:52.7.0(220.2*V)\r\n", "", 1);
        let t = line_err(&text).unwrap();
        assert_eq!(t.version, None);
        assert_eq!(t.voltage_dv, [Some(2201), None, Some(2203)]);
    }

    #[test]
    fn failure_log_variants() {
        let log =
            "1-0:99.97.0(2)(0-0:96.7.19)(101208152415W)(0000000240*s)(101208151004W)(0000000301*s)";
        for empty in [
            "1-0:99.97.0()",
            "1-0:99.97.0(0)",
            "1-0:99.97.0(0)(0-0:96.7.19)",
        ] {
            let t = line_err(&SAMPLE_EMITTED.replacen(log, empty, 1)).unwrap();
            assert!(t.failure_log.is_empty(), "{empty}");
        }
        // More entries than kept: all checked, the first ten kept.
        let mut long = std::string::String::from("1-0:99.97.0(12)(0-0:96.7.19)");
        for i in 0..12 {
            long.push_str(&std::format!("(1012081524{:02}S)({:010}*s)", i, i));
        }
        let t = line_err(&SAMPLE_EMITTED.replacen(log, &long, 1)).unwrap();
        assert_eq!(t.failure_log.len(), MAX_FAILURE_EVENTS);
        assert_eq!(t.failure_log[9].duration_s, 9);
        assert!(t.failure_log[9].end.summer);
    }

    fn feed<const N: usize>(
        f: &mut Framer<N>,
        mut data: &[u8],
    ) -> StdVec<Result<Telegram, P1Error>> {
        let mut out = StdVec::new();
        while !data.is_empty() {
            let n = f.push(data);
            data = &data[n..];
            while let Some(r) = f.next_telegram() {
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn framer_finds_telegrams_between_garbage() {
        let mut stream = b"\x00\xffnoise\r\n".to_vec();
        stream.extend_from_slice(EXAMPLE.as_bytes());
        stream.extend_from_slice(b"more garbage!1234\r\n");
        stream.extend_from_slice(SAMPLE_EMITTED.as_bytes());
        stream.extend_from_slice(SAMPLE_EMITTED.as_bytes());
        let mut f: Framer = Framer::new();
        let got = feed(&mut f, &stream);
        assert_eq!(got.len(), 3);
        for r in got {
            assert_eq!(r.unwrap(), sample());
        }
        let s = f.stats();
        assert_eq!(s.telegrams_ok, 3);
        assert_eq!(s.crc_errors + s.malformed + s.truncated + s.overlong, 0);
        assert_eq!(s.bytes_discarded, 9 + 19);
    }

    #[test]
    fn framer_byte_by_byte_and_truncation() {
        let mut f: Framer = Framer::new();
        let t = SAMPLE_EMITTED.as_bytes();
        // Half a telegram: the framer waits.
        for &b in &t[..300] {
            assert_eq!(f.push(&[b]), 1);
            assert!(f.next_telegram().is_none());
        }
        assert!(f.in_frame());
        // The line dropped out; a new telegram starts: the partial one is
        // counted and the new one decodes.
        let got = feed(&mut f, t);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap(), &sample());
        assert_eq!(f.stats().truncated, 1);
        assert_eq!(f.stats().bytes_discarded, 300);
        // A frame with no CRLF after its CRC is completed by the next '/'.
        let mut s = t[..t.len() - 2].to_vec();
        s.extend_from_slice(t);
        assert_eq!(feed(&mut f, &s).len(), 2);
        assert_eq!(f.stats().telegrams_ok, 3);
        // reset() drops a partial frame.
        feed(&mut f, &t[..10]);
        f.reset();
        assert_eq!(f.stats().truncated, 2);
        assert!(!f.in_frame());
    }

    #[test]
    fn framer_counts_crc_errors_malformed_and_overlong() {
        let mut f: Framer<600> = Framer::new();
        let mut bad_crc = SAMPLE_EMITTED.as_bytes().to_vec();
        bad_crc[40] ^= 0x01;
        let malformed = fix_crc(&SAMPLE_EMITTED.replacen("(001*A)", "(001*V)", 1));
        let mut stream = bad_crc;
        stream.extend_from_slice(&malformed);
        stream.extend_from_slice(EXAMPLE.as_bytes()); // 1071 bytes > 600
        stream.extend_from_slice(SAMPLE_EMITTED.as_bytes());
        let got = feed(&mut f, &stream);
        assert_eq!(got.len(), 3);
        assert!(matches!(got[0], Err(P1Error::Crc { .. })));
        assert!(matches!(got[1], Err(P1Error::Line { line: 19, .. })));
        assert_eq!(got[2].as_ref().unwrap(), &sample());
        let s = f.stats();
        assert_eq!(
            (s.telegrams_ok, s.crc_errors, s.malformed, s.overlong),
            (1, 1, 1, 1)
        );
        assert_eq!(s.bytes_discarded, EXAMPLE.len() as u64);
    }

    fn arb_ts() -> impl Strategy<Value = Timestamp> {
        (
            0u8..=99,
            1u8..=12,
            1u8..=31,
            0u8..=23,
            0u8..=59,
            0u8..=59,
            any::<bool>(),
        )
            .prop_map(|(y, mo, d, h, mi, s, su)| ts(y, mo, d, h, mi, s, su))
    }

    fn arb_telegram() -> impl Strategy<Value = Telegram> {
        let header = (
            "[A-Za-z]{3}",
            proptest::collection::vec(0x20u8..=0x7E, 0..=MAX_IDENT_LEN),
            proptest::option::of(0u8..=99),
            arb_ts(),
            proptest::collection::vec(any::<u8>(), 0..=MAX_EQUIPMENT_ID_LEN),
        );
        let regs = (
            proptest::array::uniform2(0..=MAX_ENERGY_WH),
            proptest::array::uniform2(0..=MAX_ENERGY_WH),
            0..=MAX_TARIFF,
            0..=MAX_POWER_W,
            0..=MAX_POWER_W,
            0..=MAX_FAILURE_COUNT,
            0..=MAX_FAILURE_COUNT,
        );
        let phases = (
            proptest::collection::vec((arb_ts(), any::<u32>()), 0..=MAX_FAILURE_EVENTS),
            0..=MAX_VOLTAGE_DV,
            proptest::option::of(0..=MAX_VOLTAGE_DV),
            proptest::option::of(0..=MAX_VOLTAGE_DV),
            0..=MAX_CURRENT_A,
            proptest::option::of(0..=MAX_CURRENT_A),
            proptest::option::of(0..=MAX_CURRENT_A),
        );
        (header, regs, phases).prop_map(|(h, r, p)| {
            let mut identification = String::new();
            for c in h.1 {
                let c = if ident_char_ok(c) { c } else { b'x' };
                identification.push(c as char).unwrap();
            }
            let m = h.0.as_bytes();
            Telegram {
                header: Header {
                    manufacturer: [m[0], m[1], m[2]],
                    identification,
                },
                version: h.2,
                timestamp: h.3,
                equipment_id: Vec::from_slice(&h.4).unwrap(),
                energy_delivered_wh: r.0,
                energy_returned_wh: r.1,
                tariff: r.2,
                power_delivered_w: r.3,
                power_returned_w: r.4,
                power_failures: r.5,
                long_power_failures: r.6,
                failure_log: p
                    .0
                    .into_iter()
                    .map(|(end, duration_s)| PowerFailureEvent { end, duration_s })
                    .collect(),
                voltage_dv: [Some(p.1), p.2, p.3],
                current_a: [Some(p.4), p.5, p.6],
            }
        })
    }

    proptest! {
        #[test]
        fn prop_emit_parse_round_trip(t in arb_telegram()) {
            let bytes = emit_vec(&t);
            prop_assert!(bytes.len() <= MAX_TELEGRAM_LEN);
            prop_assert_eq!(parse(&bytes), Ok(t));
        }

        #[test]
        fn prop_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn prop_mutated_telegrams_never_panic(
            edits in proptest::collection::vec((0usize..600, any::<u8>()), 0..6),
            cut in 0usize..600,
            fix in any::<bool>(),
        ) {
            let mut b = SAMPLE_EMITTED.as_bytes().to_vec();
            for (i, v) in edits {
                let i = i % b.len();
                b[i] = v;
            }
            b.truncate(cut.max(1));
            if fix {
                if let Some(bang) = b.iter().position(|&c| c == b'!') {
                    b.truncate(bang + 1);
                    let crc = crc16(&b);
                    b.extend_from_slice(std::format!("{crc:04X}\r\n").as_bytes());
                }
            }
            let _ = parse(&b);
        }

        #[test]
        fn prop_framer_arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(b'/'), Just(b'!'), Just(b'\n')], 0..3000),
            chunk in 1usize..100,
        ) {
            let mut small: Framer<64> = Framer::new();
            let mut big: Framer = Framer::new();
            for piece in bytes.chunks(chunk) {
                let n_small = feed(&mut small, piece).len() as u32;
                let s = small.stats();
                prop_assert!(s.telegrams_ok + s.crc_errors + s.malformed >= n_small);
                feed(&mut big, piece);
            }
            for f in [small.stats(), big.stats()] {
                prop_assert!(f.bytes_discarded <= bytes.len() as u64);
            }
        }

        #[test]
        fn prop_framer_never_panics_and_finds_clean_telegrams(
            garbage in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..200), 1..4),
            chunk in 1usize..300,
        ) {
            // Garbage, then a telegram, repeated, cut into arbitrary chunks:
            // the framer never panics and decodes every telegram (garbage
            // may start a false frame, but the telegram's '/' ends it).
            let mut f: Framer<1024> = Framer::new();
            let mut stream = StdVec::new();
            let mut clean = 0;
            for g in &garbage {
                stream.extend_from_slice(g);
                stream.extend_from_slice(SAMPLE_EMITTED.as_bytes());
                clean += 1;
            }
            let mut ok = 0;
            for piece in stream.chunks(chunk) {
                for r in feed(&mut f, piece) {
                    if r.is_ok() { ok += 1; }
                }
            }
            // Every telegram is preceded by a fresh '/', which restarts
            // framing, so every one decodes.
            prop_assert_eq!(ok, clean);
            prop_assert_eq!(f.stats().telegrams_ok, clean);
        }
    }
}
