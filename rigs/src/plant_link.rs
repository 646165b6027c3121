//! The plant's side of the plant ↔ controller link, sans-IO: the twin
//! household's published signals become the CAN status frames and DSMR 5
//! P1 telegrams of the contract (`firmware/can/maslow.dbc`,
//! `firmware/docs/can.md`, `firmware/docs/p1.md`), and the controller's
//! command frames become the [`PlantCommands`] the house applies.
//!
//! No sockets, no clock: every call takes `now` (virtual or paced time) and
//! returns frames or bytes; a transport (in-process bus, SLCAN, SocketCAN,
//! a pseudo-terminal for P1) moves them.
//!
//! # Steps measure, they do not peek
//! Every value sent is a field of the house's [`Measurements`], read by its
//! [`PlantPort`] from the published signals (the [`SignalRegistry`]), as
//! the direct path reads them: circuit current is the circuit's power over
//! the bus voltage, a socket counts as plugged when its plug detection says
//! so (or, for a house without it, when it draws more than 0.5 W), and the
//! USB-PD details the house does not publish are sent as "unknown" (no
//! contract, sink maximum 0, device SOC raw 255, device id 0).
//!
//! # Table-driven from the DBC
//! Layout, scaling, ranges, identifiers, cycles, deadlines and E2E data ids
//! come from `firmware::wire::can` (generated from the DBC). What feeds
//! each signal the plant sends is one row of [`STATUS_FEEDS`] (a
//! measurement, a flag, "not measured", or the link's own state); what
//! each command signal sets is one row of [`COMMAND_SINKS`]. E2E CRC and
//! counter signals and the index signal of per-circuit/per-socket messages
//! need no row (the shared slot table places them). Adding a signal to
//! `maslow.dbc` is one row here; a signal without a row fails
//! [`PlantLink::new`] naming it.
//!
//! # Status frames
//! [`PlantLink::on_step`] queues every status message whose DBC cycle time
//! is due at `now` — each message (each circuit's and socket's frame) at
//! most once per call, on a grid of whole multiples of its cycle from the
//! run's epoch; a step longer than a cycle sends one frame, not a burst.
//! The order is fixed, by ascending identifier:
//!
//! 1. `PackStatus` 0x100, `CellExtremes` 0x101, `BusStatus` 0x110,
//! 2. `CircuitStatus` 0x111, circuit 0, 1, … (bus order),
//! 3. `PvStatus` 0x120, `MainsStatus` 0x130,
//! 4. `SocketStatus` 0x140, socket 0, 1, … (bus order),
//! 5. `PlantHeartbeat` 0x1F0.
//!
//! E2E-protected messages get their CRC and alive counter from a sender of
//! their own (one per circuit for `CircuitStatus`, whose receiver checks
//! each index separately). Values are rounded to the signal's resolution
//! and clamped to its raw range within the DBC's min..max; a value out of
//! range or not finite is clamped (non-finite to 0) and counted in
//! [`PlantLinkStats::values_clamped`] — encoding never fails at run time.
//!
//! # Lockstep
//! On a lockstep rig the runner, after each house step at `t`: calls
//! `on_step(t)`, drains [`PlantLink::poll_p1`] onto the meter port and
//! [`PlantLink::poll_transmit`] onto the bus, then sends
//! [`PlantLink::sync_frame`]`(t)` (`TimeSync`: `SimTimeMs` = t in ms mod
//! 2³², `P1TelegramsSent` = telegrams queued so far mod 256). The controller
//! answers with its command frames and lastly a `CtrlHeartbeat` whose
//! `SyncEchoMs` = t ([`PlantLink::last_sync_echo_ms`]); the runner feeds
//! them to [`PlantLink::handle_frame`] and applies
//! [`PlantLink::commands`]`(t)` to the house before its next step.
//!
//! # P1 telegrams
//! Once per second of virtual time (on whole seconds) `on_step` queues a
//! DSMR 5.0 telegram built from the meter's signals: header and equipment
//! id from [`PlantLinkOptions`], version 50, the local time of the house's
//! calendar (which has a fixed UTC offset, so the DST flag is always `W`),
//! energy delivered/returned per tariff (Wh, the register's completed
//! watt-hours), the tariff indicator, actual power delivered/returned (W),
//! the short and long power-failure counters, voltage and current on L1.
//! The house publishes no failure event log, so the log is sent empty.
//! **In a power cut the meter is unpowered and sends nothing**: no
//! telegrams while `mains_present` is 0 (counted in
//! [`PlantLinkStats::p1_unpowered_seconds`]); they resume on the first whole
//! second after the supply returns.
//!
//! # Commands
//! [`PlantLink::handle_frame`] E2E-checks every controller frame (wrong CRC,
//! repeated or jumped counter: counted in [`RejectCounts`], never acted on)
//! and decodes the command messages into the latest [`AssemblyCommand`],
//! which the port turns into [`PlantCommands`] (charger boost →
//! [`CHARGER_BOOST_SETPOINT_V`], standby → the port's standby setpoint,
//! `InverterExportEnabled` → the inverter's export enable; `SocketCapCmd`
//! has no place in [`PlantCommands`] and is kept for inspection only).
//! [`PlantLink::commands`] returns `None` — the house's own fixed policy —
//! until each command message that is not per-socket (`BatteryCmd`,
//! `ConverterCmd`, `PvCmd`, `SwitchCmd`) has been received, and again after
//! any of them has been older than its DBC `MaslowDeadlineMs` (a command
//! timeout: counted per late message, `PlantState` = `command_timeout`,
//! the E2E sequence of the late message restarts) until a complete fresh
//! set has arrived. Deadlines are checked when [`PlantLink::commands`] is
//! asked, i.e. at the time the commands would apply: in lockstep a plant
//! step longer than the deadline is fine as long as the controller answers
//! every `TimeSync` before the runner asks.

use std::collections::{BTreeMap, VecDeque};

use firmware::wire::can::messages::{CtrlHeartbeat, CtrlHeartbeatCtrlState};
use firmware::wire::can::{
    frame_index, index, indexed, IndexedBy, MessageSpec, Node, SignalSpec, COMMANDS, MESSAGES,
};
use firmware::wire::e2e::{E2eChecker, E2eSender, E2eStatus};
use firmware::wire::p1;
use twin::engine::SignalRegistry;
use twin::house::{HouseConfig, PlantCommands};
use twin::time::{civil_from_days, Calendar, SimTime};

use crate::plant_port::{
    breaker_current_a, AssemblyCommand, CircuitMeasurements, Measurements, PlantPort, PortError,
    SocketMeasurements,
};
pub use crate::plant_port::{CHARGER_BOOST_SETPOINT_V, MAX_INDEXED};
use links::{bit_length, CanFrame, CanId};

/// Interval of P1 telegrams (DSMR 5.0: one a second), µs.
pub const P1_INTERVAL_US: u64 = 1_000_000;

/// Problems wiring a link to a house; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlantLinkError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(
        "the CAN contract firmware/can/maslow.dbc has no message `{0}` (or it lost its E2E data id): PlantLink needs it; restore it in the DBC"
    )]
    MissingMessage(&'static str),
    #[error(
        "the CAN contract's signal `{message}.{signal}` has no row in rigs/src/plant_link.rs ({table}): add one saying what feeds it or what it sets"
    )]
    UnmappedSignal {
        message: &'static str,
        signal: &'static str,
        table: &'static str,
    },
    #[error(
        "rigs/src/plant_link.rs ({table}) has a row for `{message}.{signal}`, which firmware/can/maslow.dbc does not have: remove the row or restore the signal"
    )]
    UnknownSignal {
        message: &'static str,
        signal: &'static str,
        table: &'static str,
    },
    #[error("P1 meter options: {0}")]
    MeterOptions(String),
}

/// How the plant's end of the link behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantLinkOptions {
    /// P1 header: three ASCII letters.
    pub meter_manufacturer: [u8; 3],
    /// P1 header after `/XXX5`: printable ASCII without `/` and `!`, at most
    /// 96 characters.
    pub meter_identification: String,
    /// P1 `0-0:96.1.1` equipment identifier, at most 48 bytes (sent as hex).
    pub meter_equipment_id: Vec<u8>,
    /// Largest alive-counter step accepted on command frames (profile 1's
    /// `MaxDeltaCounter`, 1..=14; 2 tolerates one lost frame).
    pub e2e_max_delta: u8,
}

impl Default for PlantLinkOptions {
    fn default() -> Self {
        PlantLinkOptions {
            meter_manufacturer: *b"MSW",
            meter_identification: "\\2maslow-twin-meter".into(),
            meter_equipment_id: b"MASLOW0000000001".to_vec(),
            e2e_max_delta: 2,
        }
    }
}

/// `PlantState` as the heartbeat sends it (DBC value table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantState {
    /// No complete command set yet: the plant runs its own policy.
    Starting = 0,
    /// Applying the controller's commands.
    Running = 1,
    /// A command message missed its deadline: the plant runs its own
    /// policy until a complete fresh set arrives.
    CommandTimeout = 3,
}

/// Why a received frame was not acted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounts {
    /// E2E CRC mismatch (corrupt, or sent under another identifier).
    pub wrong_crc: u64,
    /// E2E counter repeated (a duplicate or a stuck sender).
    pub repeated: u64,
    /// E2E counter jumped more than `e2e_max_delta` (or is 15).
    pub wrong_sequence: u64,
    /// Remote frame, or a DLC other than the contract's.
    pub malformed: u64,
    /// Identifier not in the contract, or extended.
    pub unknown_id: u64,
    /// A contract message the plant itself sends (a loop-back or a second
    /// plant on the bus).
    pub not_for_plant: u64,
    /// `CapSocketIndex` beyond the house's sockets.
    pub bad_index: u64,
}

impl RejectCounts {
    /// Frames rejected by the E2E check (what `PlantE2eRejects` reports).
    pub fn e2e(&self) -> u64 {
        self.wrong_crc + self.repeated + self.wrong_sequence
    }
    pub fn total(&self) -> u64 {
        self.e2e() + self.malformed + self.unknown_id + self.not_for_plant + self.bad_index
    }
}

/// What went over the link so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlantLinkStats {
    /// Frames handed out by `poll_transmit` and `sync_frame`, per message.
    pub frames_sent: BTreeMap<&'static str, u64>,
    /// Their bits on the wire, stuff bits included (`bit_length().actual()`).
    pub bits_sent: u64,
    /// Frames given to `handle_frame` and accepted, per message.
    pub frames_accepted: BTreeMap<&'static str, u64>,
    /// Bits of every frame given to `handle_frame`, stuffing included.
    pub bits_received: u64,
    pub rejects: RejectCounts,
    /// Command deadline misses, per late message.
    pub command_timeouts: BTreeMap<&'static str, u64>,
    /// Signal values clamped to their DBC range (or non-finite), per message.
    pub values_clamped: BTreeMap<&'static str, u64>,
    /// P1 telegrams queued, and their bytes.
    pub p1_telegrams: u64,
    pub p1_bytes: u64,
    /// Whole seconds without a telegram because the meter was unpowered.
    pub p1_unpowered_seconds: u64,
    /// Telegrams `p1::emit` refused (none expected: every field is clamped).
    pub p1_emit_errors: u64,
    /// `on_step` calls with a registry smaller than the house's: nothing
    /// sent.
    pub foreign_registry_steps: u64,
}

impl PlantLinkStats {
    pub fn frames_sent_total(&self) -> u64 {
        self.frames_sent.values().sum()
    }
    pub fn command_timeouts_total(&self) -> u64 {
        self.command_timeouts.values().sum()
    }
}

impl std::fmt::Display for PlantLinkStats {
    /// One line for run summaries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clamped: u64 = self.values_clamped.values().sum();
        let accepted: u64 = self.frames_accepted.values().sum();
        write!(
            f,
            "{} frames sent, {} accepted from the controller, {} rejected (E2E {}), {} command deadline misses, {} values clamped to the DBC ranges; P1: {} telegrams, {} s with the meter unpowered",
            self.frames_sent_total(),
            accepted,
            self.rejects.total(),
            self.rejects.e2e(),
            self.command_timeouts_total(),
            clamped,
            self.p1_telegrams,
            self.p1_unpowered_seconds
        )
    }
}

/// The controller's last accepted `CtrlHeartbeat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerStatus {
    pub state: CtrlHeartbeatCtrlState,
    /// The last `TimeSync` the controller fully processed, ms.
    pub sync_echo_ms: u32,
    /// Frames the controller rejected (saturating at 255).
    pub e2e_rejects: u8,
    /// No valid P1 telegram within the controller's meter deadline.
    pub meter_stale: bool,
    /// A safety-relevant status frame missed its deadline at the controller.
    pub link_timeout: bool,
    /// When the plant received it.
    pub received_at: SimTime,
}

/// The link's own state, as the plant's messages report it.
#[derive(Debug, Clone, Copy)]
pub struct LinkState {
    /// `PlantState` (raw).
    pub state: u8,
    pub command_timeouts: u64,
    pub e2e_rejects: u64,
    /// The lockstep time of the step being closed, ms.
    pub now_ms: u64,
    /// P1 telegrams queued so far.
    pub p1_telegrams: u32,
}

/// What feeds one signal the plant sends.
#[derive(Clone, Copy)]
pub enum Feed {
    /// A measurement (per circuit/socket index): rounded and clamped to
    /// the signal, clamps counted.
    Measured(fn(&Measurements, usize) -> f64),
    /// A yes/no measurement: raw 1 or 0.
    Flag(fn(&Measurements, usize) -> bool),
    /// A measurement that may be unknown: `None` sends `unknown_raw`.
    MeasuredOrUnknown {
        value: fn(&Measurements, usize) -> Option<f64>,
        unknown_raw: i64,
    },
    /// Not modelled by the twin: the raw value the DBC gives for "none" or
    /// "unknown".
    NotMeasured(i64),
    /// The link's own state, as a raw value.
    Link(fn(&LinkState) -> i64),
}

/// What one command signal sets (per socket index for per-socket commands,
/// its physical value). A message's rows apply in table order.
#[derive(Clone, Copy)]
pub enum Sink {
    Set(fn(&mut AssemblyCommand, usize, f64)),
    /// The function that decided (the DBC's `*Function`): the plant acts
    /// the same whoever decided.
    Reason,
}

fn circuit(m: &Measurements, i: usize) -> CircuitMeasurements {
    m.circuits.get(i).copied().unwrap_or_default()
}

fn socket(m: &Measurements, i: usize) -> SocketMeasurements {
    m.sockets.get(i).copied().unwrap_or_default()
}

/// The device's charge in % where it reports one and is plugged in.
fn device_soc_percent(m: &Measurements, i: usize) -> Option<f64> {
    let k = socket(m, i);
    k.device_soc
        .filter(|x| k.plugged && x.is_finite() && (0.0..=1.0).contains(x))
        .map(|soc| soc * 100.0)
}

/// Bit `i` of a mask signal's value.
fn bit(mask: f64, i: usize) -> bool {
    (mask as u64) >> i & 1 == 1
}

/// What feeds each signal of the messages the plant sends: `(message,
/// signal, feed)`. E2E and index signals need no row.
pub const STATUS_FEEDS: &[(&str, &str, Feed)] = &[
    (
        "TimeSync",
        "SimTimeMs",
        Feed::Link(|l| i64::from(l.now_ms as u32)),
    ),
    (
        "TimeSync",
        "P1TelegramsSent",
        Feed::Link(|l| i64::from(l.p1_telegrams % 256)),
    ),
    (
        "PackStatus",
        "PackVoltage",
        Feed::Measured(|m, _| m.pack_voltage_v),
    ),
    (
        "PackStatus",
        "PackCurrent",
        Feed::Measured(|m, _| m.pack_current_a),
    ),
    (
        "CellExtremes",
        "CellVoltageMin",
        Feed::Measured(|m, _| m.cell_voltage_min_v),
    ),
    (
        "CellExtremes",
        "CellVoltageMax",
        Feed::Measured(|m, _| m.cell_voltage_max_v),
    ),
    (
        "CellExtremes",
        "CellTemperatureMin",
        Feed::Measured(|m, _| m.pack_temperature_min_c),
    ),
    (
        "CellExtremes",
        "CellTemperatureMax",
        Feed::Measured(|m, _| m.pack_temperature_max_c),
    ),
    (
        "BusStatus",
        "BusVoltage",
        Feed::Measured(|m, _| m.bus_voltage_v),
    ),
    (
        "BusStatus",
        "ChargerAcPower",
        Feed::Measured(|m, _| m.charger_ac_power_w),
    ),
    (
        "BusStatus",
        "InverterAcPower",
        Feed::Measured(|m, _| m.inverter_ac_power_w),
    ),
    (
        "CircuitStatus",
        "CircuitPower",
        Feed::Measured(|m, i| circuit(m, i).power_w),
    ),
    (
        "CircuitStatus",
        "CircuitCurrent",
        Feed::Measured(|m, i| breaker_current_a(circuit(m, i).power_w, m.bus_voltage_v)),
    ),
    (
        "CircuitStatus",
        "CircuitVoltage",
        Feed::Measured(|m, i| circuit(m, i).voltage_v),
    ),
    (
        "CircuitStatus",
        "CircuitTripped",
        Feed::Flag(|m, i| circuit(m, i).tripped),
    ),
    (
        "PvStatus",
        "PvAvailablePower",
        Feed::Measured(|m, _| m.pv_available_w),
    ),
    (
        "PvStatus",
        "PvDeliveredPower",
        Feed::Measured(|m, _| m.pv_delivered_w),
    ),
    (
        "PvStatus",
        "PvCurtailedPower",
        Feed::Measured(|m, _| m.pv_curtailed_w),
    ),
    (
        "MainsStatus",
        "MainsPresent",
        Feed::Flag(|m, _| m.mains_present),
    ),
    (
        "MainsStatus",
        "MainsVoltage",
        Feed::Measured(|m, _| m.mains_voltage_v),
    ),
    (
        "MainsStatus",
        "MainsFrequency",
        Feed::Measured(|m, _| m.mains_frequency_hz),
    ),
    (
        "SocketStatus",
        "SocketPlugged",
        Feed::Flag(|m, i| socket(m, i).plugged),
    ),
    ("SocketStatus", "SocketWake", Feed::NotMeasured(0)),
    (
        "SocketStatus",
        "SocketPower",
        Feed::Measured(|m, i| socket(m, i).power_w),
    ),
    ("SocketStatus", "SocketContractPower", Feed::NotMeasured(0)),
    ("SocketStatus", "SocketSinkMaxPower", Feed::NotMeasured(0)),
    (
        "SocketStatus",
        "SocketDeviceSoc",
        Feed::MeasuredOrUnknown {
            value: device_soc_percent,
            unknown_raw: 255,
        },
    ),
    ("SocketStatus", "SocketDeviceId", Feed::NotMeasured(0)),
    (
        "PlantHeartbeat",
        "PlantState",
        Feed::Link(|l| i64::from(l.state)),
    ),
    (
        "PlantHeartbeat",
        "PlantCommandTimeouts",
        Feed::Link(|l| l.command_timeouts.min(255) as i64),
    ),
    (
        "PlantHeartbeat",
        "PlantE2eRejects",
        Feed::Link(|l| l.e2e_rejects.min(255) as i64),
    ),
];

/// What each signal of the controller's command messages sets: `(message,
/// signal, sink)`. E2E and index signals need no row.
pub const COMMAND_SINKS: &[(&str, &str, Sink)] = &[
    (
        "BatteryCmd",
        "BatteryEnabled",
        Sink::Set(|c, _, v| c.battery_enabled = v == 1.0),
    ),
    (
        "BatteryCmd",
        "BatteryStandby",
        Sink::Set(|c, _, v| c.battery_standby = v == 1.0),
    ),
    (
        "BatteryCmd",
        "BatteryChargeLimit",
        Sink::Set(|c, _, v| c.battery_charge_limit_w = v),
    ),
    (
        "BatteryCmd",
        "BatteryDischargeLimit",
        Sink::Set(|c, _, v| c.battery_discharge_limit_w = v),
    ),
    ("BatteryCmd", "BatteryFunction", Sink::Reason),
    (
        "ConverterCmd",
        "ChargerEnabled",
        Sink::Set(|c, _, v| c.charger_enabled = v == 1.0),
    ),
    (
        "ConverterCmd",
        "ChargerBoost",
        Sink::Set(|c, _, v| c.charger_boost = v == 1.0),
    ),
    (
        "ConverterCmd",
        "InverterEnabled",
        Sink::Set(|c, _, v| c.inverter_enabled = v == 1.0),
    ),
    (
        "ConverterCmd",
        "InverterExportEnabled",
        Sink::Set(|c, _, v| c.inverter_export_enabled = v == 1.0),
    ),
    (
        "ConverterCmd",
        "InverterRequestAcPower",
        Sink::Set(|c, _, v| c.inverter_request_ac_w = v),
    ),
    ("ConverterCmd", "ChargerFunction", Sink::Reason),
    ("ConverterCmd", "InverterFunction", Sink::Reason),
    // The cap applies while active: the flag's row first, then the value.
    (
        "PvCmd",
        "PvCapActive",
        Sink::Set(|c, _, v| c.pv_cap_w = (v == 1.0).then_some(0.0)),
    ),
    (
        "PvCmd",
        "PvCap",
        Sink::Set(|c, _, v| {
            if let Some(cap) = c.pv_cap_w.as_mut() {
                *cap = v;
            }
        }),
    ),
    ("PvCmd", "PvFunction", Sink::Reason),
    (
        "SwitchCmd",
        "CircuitsOn",
        Sink::Set(|c, _, v| {
            c.circuits_on
                .iter_mut()
                .enumerate()
                .for_each(|(i, on)| *on = bit(v, i))
        }),
    ),
    (
        "SwitchCmd",
        "SocketsOn",
        Sink::Set(|c, _, v| {
            c.sockets_on
                .iter_mut()
                .enumerate()
                .for_each(|(i, on)| *on = bit(v, i))
        }),
    ),
    (
        "SocketCapCmd",
        "SocketCapActive",
        Sink::Set(|c, i, v| {
            if let Some(cap) = c.socket_caps_w.get_mut(i) {
                *cap = (v == 1.0).then_some(0.0);
            }
        }),
    ),
    (
        "SocketCapCmd",
        "SocketCap",
        Sink::Set(|c, i, v| {
            if let Some(Some(cap)) = c.socket_caps_w.get_mut(i) {
                *cap = v;
            }
        }),
    ),
    ("SocketCapCmd", "SocketFunction", Sink::Reason),
];

/// Whether `signal` of message `m` (an index in [`MESSAGES`]) is placed by
/// the E2E layer or the slot table rather than by a row.
fn placed_without_row(m: usize, signal: &SignalSpec) -> bool {
    let spec = &MESSAGES[m];
    let e2e = spec.e2e_data_id.is_some()
        && (signal.name.strip_prefix(spec.name) == Some("_Crc")
            || signal.name.strip_prefix(spec.name) == Some("_Counter"));
    let index = indexed(m).is_some_and(|x| spec.signals.get(x.index_signal) == Some(signal));
    e2e || index
}

/// Every row of `table` for message `m`, resolved to its signal, checking
/// that each of the message's signals has one.
fn rows_of<T: Copy>(
    m: usize,
    table: &'static [(&'static str, &'static str, T)],
    table_name: &'static str,
) -> Result<Vec<(&'static SignalSpec, T)>, PlantLinkError> {
    let spec = &MESSAGES[m];
    let mut rows = Vec::new();
    for &(message, signal, row) in table.iter().filter(|r| r.0 == spec.name) {
        let s = spec.signal(signal).ok_or(PlantLinkError::UnknownSignal {
            message,
            signal,
            table: table_name,
        })?;
        rows.push((s, row));
    }
    for s in spec.signals {
        if !placed_without_row(m, s) && !rows.iter().any(|(r, _)| r.name == s.name) {
            return Err(PlantLinkError::UnmappedSignal {
                message: spec.name,
                signal: s.name,
                table: table_name,
            });
        }
    }
    Ok(rows)
}

/// Cyclic transmit schedule of one status message: next due time, µs.
#[derive(Debug, Clone, Copy, Default)]
struct Due {
    next_us: u64,
}

impl Due {
    /// Whether the message is due at `now_us`; if so, moves to the next
    /// whole multiple of `period_us` after `now_us`.
    fn take(&mut self, now_us: u64, period_us: u64) -> bool {
        if now_us < self.next_us {
            return false;
        }
        let period = period_us.max(1);
        self.next_us = (now_us / period + 1).saturating_mul(period);
        true
    }
}

/// One message the plant sends: its rows and, per frame it sends (one, or
/// one per circuit or socket), its schedule and E2E sender.
struct Outgoing {
    message: usize,
    rows: Vec<(&'static SignalSpec, Feed)>,
    slots: Vec<(Due, E2eSender)>,
}

impl Outgoing {
    fn spec(&self) -> &'static MessageSpec {
        &MESSAGES[self.message]
    }

    /// The payload of frame `slot` (its index, for per-index messages);
    /// adds the values it had to clamp to `clamped`.
    fn payload(
        &self,
        slot: usize,
        m: &Measurements,
        link: &LinkState,
        clamped: &mut u64,
    ) -> [u8; 8] {
        let mut data = [0u8; 8];
        let spec = self.spec();
        if let Some(x) = indexed(self.message) {
            if let Some(s) = spec.signals.get(x.index_signal) {
                let _ = s.write_raw(&mut data, slot as i64);
            }
        }
        for (s, feed) in &self.rows {
            let raw = match *feed {
                Feed::Measured(f) => s.raw_of(f(m, slot)),
                Feed::Flag(f) => firmware::wire::can::Raw {
                    value: i64::from(f(m, slot)),
                    clamped: false,
                },
                Feed::MeasuredOrUnknown { value, unknown_raw } => match value(m, slot) {
                    Some(v) => s.raw_of(v),
                    None => firmware::wire::can::Raw {
                        value: unknown_raw,
                        clamped: false,
                    },
                },
                Feed::NotMeasured(raw) => firmware::wire::can::Raw {
                    value: raw,
                    clamped: false,
                },
                Feed::Link(f) => firmware::wire::can::Raw {
                    value: f(link),
                    clamped: false,
                },
            };
            *clamped += u64::from(raw.clamped);
            let _ = s.write_raw(&mut data, raw.value);
        }
        data
    }

    /// Whether any row scales a measurement (the message then has a
    /// clamp count, even of 0).
    fn measures(&self) -> bool {
        self.rows
            .iter()
            .any(|(_, f)| matches!(f, Feed::Measured(_) | Feed::MeasuredOrUnknown { .. }))
    }
}

/// One command message's receive state.
#[derive(Debug, Clone, Copy)]
struct CommandRx {
    message: usize,
    checker: E2eChecker,
    /// When the last valid frame arrived (None: none since the start or
    /// since the last deadline miss).
    last_valid: Option<SimTime>,
}

/// Why a frame that passed the E2E check was still dropped.
enum Reject {
    Malformed,
    BadIndex,
}

/// Rounds and clamps a P1 register value, counting every value that had
/// to be clamped.
struct P1Scale<'a> {
    clamped: &'a mut u64,
}

impl P1Scale<'_> {
    /// `round(value / factor)` within `0..=max`.
    fn raw(&mut self, value: f64, factor: f64, max: u32) -> u32 {
        let x = (value / factor).round();
        if !x.is_finite() || x < 0.0 {
            *self.clamped += 1;
            0
        } else if x > f64::from(max) {
            *self.clamped += 1;
            max
        } else {
            x as u32
        }
    }
    /// An integer register value (non-negative, within `max`).
    fn count(&mut self, value: f64, max: u32) -> u32 {
        self.raw(value, 1.0, max)
    }
}

/// The plant's end of the link. See the module docs.
pub struct PlantLink {
    port: PlantPort,
    calendar: Calendar,
    opts: PlantLinkOptions,
    // Transmit.
    outgoing: Vec<Outgoing>,
    sync: Outgoing,
    tx: VecDeque<CanFrame>,
    p1_out: VecDeque<Vec<u8>>,
    p1_queued: u32,
    p1_due: Due,
    // Receive.
    command_rows: Vec<(usize, Vec<(&'static SignalSpec, Sink)>)>,
    rx: Vec<CommandRx>,
    ctrl_heartbeat_rx: E2eChecker,
    latest: AssemblyCommand,
    controller: Option<ControllerStatus>,
    state: PlantState,
    stats: PlantLinkStats,
}

impl std::fmt::Debug for PlantLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlantLink")
            .field("circuits", &self.port.circuits())
            .field("sockets", &self.port.sockets())
            .field("state", &self.state)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl PlantLink {
    /// A link for the house built from `house_cfg`, reading `signals` (the
    /// registry of that house's engine). Fails naming a missing signal or
    /// contract message, a signal without a row, too many circuits or
    /// sockets, or bad meter options.
    pub fn new(
        house_cfg: &HouseConfig,
        signals: &SignalRegistry,
        opts: PlantLinkOptions,
    ) -> Result<Self, PlantLinkError> {
        let port = PlantPort::new(house_cfg, signals)?;
        check_meter_options(&opts)?;
        let frames = |m: usize| match indexed(m).map(|x| x.by) {
            Some(IndexedBy::Circuit) => port.circuits(),
            Some(IndexedBy::Socket) => port.sockets(),
            None => 1,
        };
        let outgoing_of = |m: usize| -> Result<Outgoing, PlantLinkError> {
            Ok(Outgoing {
                message: m,
                rows: rows_of(m, STATUS_FEEDS, "STATUS_FEEDS")?,
                slots: vec![(Due::default(), E2eSender::new()); frames(m)],
            })
        };
        let mut outgoing = Vec::new();
        for (m, spec) in MESSAGES.iter().enumerate() {
            if spec.sender == Node::Plant && spec.cycle_ms > 0 {
                outgoing.push(outgoing_of(m)?);
            }
        }
        let sync = outgoing_of(e2e_message(index::TIME_SYNC)?)?;
        let checker = E2eChecker::new(opts.e2e_max_delta);
        let mut command_rows = Vec::new();
        let mut rx = Vec::new();
        for m in COMMANDS {
            command_rows.push((m, rows_of(m, COMMAND_SINKS, "COMMAND_SINKS")?));
            if indexed(m).is_none() {
                rx.push(CommandRx {
                    message: e2e_message(m)?,
                    checker,
                    last_valid: None,
                });
            }
        }
        e2e_message(index::CTRL_HEARTBEAT)?;
        Ok(PlantLink {
            latest: AssemblyCommand::all_off(port.circuits(), port.sockets()),
            port,
            calendar: house_cfg.calendar,
            opts,
            outgoing,
            sync,
            tx: VecDeque::new(),
            p1_out: VecDeque::new(),
            p1_queued: 0,
            p1_due: Due::default(),
            command_rows,
            rx,
            ctrl_heartbeat_rx: checker,
            controller: None,
            state: PlantState::Starting,
            stats: PlantLinkStats::default(),
        })
    }

    /// The house's port.
    pub fn port(&self) -> &PlantPort {
        &self.port
    }

    // ------------------------------------------------------------------
    // Transmit

    fn link_state(&self, now: SimTime) -> LinkState {
        LinkState {
            state: self.state as u8,
            command_timeouts: self.stats.command_timeouts_total(),
            e2e_rejects: self.stats.rejects.e2e(),
            now_ms: now.as_micros() / 1000,
            p1_telegrams: self.p1_queued,
        }
    }

    /// Queues the status frames due at `now` and, on whole seconds with the
    /// mains present, a P1 telegram. See the module docs for the order.
    /// `signals` is the registry of the house the link was built for (a
    /// smaller one is refused and counted in
    /// [`PlantLinkStats::foreign_registry_steps`]).
    pub fn on_step(&mut self, now: SimTime, signals: &SignalRegistry) {
        if self.port.measure(signals).is_err() {
            self.stats.foreign_registry_steps += 1;
            return;
        }
        let now_us = now.as_micros();
        let link = self.link_state(now);
        let m = self.port.measurements();
        for out in &mut self.outgoing {
            let spec = out.spec();
            let period = u64::from(spec.cycle_ms) * 1000;
            let mut clamped = 0;
            let mut due_any = false;
            for slot in 0..out.slots.len() {
                if !out.slots[slot].0.take(now_us, period) {
                    continue;
                }
                due_any = true;
                let data = out.payload(slot, m, &link, &mut clamped);
                self.tx
                    .push_back(protect_frame(spec, &mut out.slots[slot].1, data));
            }
            if due_any && out.measures() {
                *self.stats.values_clamped.entry(spec.name).or_default() += clamped;
            }
        }
        if self.p1_due.take(now_us, P1_INTERVAL_US) {
            if self.port.measurements().mains_present {
                self.queue_telegram(now);
            } else {
                self.stats.p1_unpowered_seconds += 1;
            }
        }
    }

    /// The next frame to put on the bus, oldest first.
    pub fn poll_transmit(&mut self) -> Option<CanFrame> {
        let frame = self.tx.pop_front()?;
        self.count_sent(&frame);
        Some(frame)
    }

    /// The next P1 telegram (the bytes of one DSMR 5.0 telegram), oldest
    /// first.
    pub fn poll_p1(&mut self) -> Option<Vec<u8>> {
        self.p1_out.pop_front()
    }

    /// P1 telegrams queued so far (what `TimeSync` reports mod 256).
    pub fn p1_telegrams_sent(&self) -> u32 {
        self.p1_queued
    }

    /// The lockstep `TimeSync` for the step at `now` (E2E-protected; counted
    /// as sent). `SimTimeMs` is `now` in ms mod 2³².
    pub fn sync_frame(&mut self, now: SimTime) -> CanFrame {
        let link = self.link_state(now);
        let mut clamped = 0;
        let data = self
            .sync
            .payload(0, self.port.measurements(), &link, &mut clamped);
        let spec = self.sync.spec();
        let frame = protect_frame(spec, &mut self.sync.slots[0].1, data);
        self.count_sent(&frame);
        frame
    }

    fn count_sent(&mut self, frame: &CanFrame) {
        let name = name_of(frame);
        *self.stats.frames_sent.entry(name).or_default() += 1;
        self.stats.bits_sent += u64::from(bit_length(frame).actual());
    }
    fn queue_telegram(&mut self, now: SimTime) {
        let t = self.telegram(now);
        let mut buf = vec![0u8; p1::MAX_TELEGRAM_LEN];
        match p1::emit(&t, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                self.stats.p1_telegrams += 1;
                self.stats.p1_bytes += n as u64;
                self.p1_queued = self.p1_queued.wrapping_add(1);
                self.p1_out.push_back(buf);
            }
            Err(_) => self.stats.p1_emit_errors += 1,
        }
    }

    /// The telegram the meter shows at `now`.
    fn telegram(&mut self, now: SimTime) -> p1::Telegram {
        let m = self.port.measurements().meter;
        let timestamp = self.local_timestamp(now);
        let mut identification = heapless::String::new();
        // Checked in `new`: fits and is printable.
        let _ = identification.push_str(&self.opts.meter_identification);
        let equipment_id =
            heapless::Vec::from_slice(&self.opts.meter_equipment_id).unwrap_or_default();
        let mut sc = P1Scale {
            clamped: self.stats.values_clamped.entry("P1").or_default(),
        };
        // Registers show the completed watt-hours (never ahead of the meter).
        let mut wh = |kwh: f64| {
            let wh = if kwh.is_finite() {
                (kwh * 1000.0).floor()
            } else {
                f64::NAN
            };
            sc.count(wh, p1::MAX_ENERGY_WH)
        };
        let energy_delivered_wh = m.import_tariff_kwh.map(&mut wh);
        let energy_returned_wh = m.export_tariff_kwh.map(&mut wh);
        p1::Telegram {
            header: p1::Header {
                manufacturer: self.opts.meter_manufacturer,
                identification,
            },
            version: Some(50),
            timestamp,
            equipment_id,
            energy_delivered_wh,
            energy_returned_wh,
            tariff: sc.count(m.tariff, u32::from(p1::MAX_TARIFF)) as u16,
            power_delivered_w: sc.count(m.import_w, p1::MAX_POWER_W),
            power_returned_w: sc.count(m.export_w, p1::MAX_POWER_W),
            power_failures: sc.count(m.short_power_failures, p1::MAX_FAILURE_COUNT),
            long_power_failures: sc.count(m.long_power_failures, p1::MAX_FAILURE_COUNT),
            failure_log: heapless::Vec::new(),
            voltage_dv: [
                Some(sc.raw(m.voltage_l1_v, 0.1, u32::from(p1::MAX_VOLTAGE_DV)) as u16),
                None,
                None,
            ],
            current_a: [
                Some(sc.count(m.current_l1_a, u32::from(p1::MAX_CURRENT_A)) as u16),
                None,
                None,
            ],
        }
    }

    /// Local civil time of the house's calendar at `now` (fixed offset, so
    /// always winter time `W`); years outside 2000..=2099 are clamped and
    /// counted.
    fn local_timestamp(&mut self, now: SimTime) -> p1::Timestamp {
        let local_s =
            (self.calendar.unix_s(now) + self.calendar.utc_offset_h * 3600.0).floor() as i64;
        let (y, mo, d) = civil_from_days(local_s.div_euclid(86_400));
        let sod = local_s.rem_euclid(86_400);
        let year = if (2000..=2099).contains(&y) {
            (y - 2000) as u8
        } else {
            *self.stats.values_clamped.entry("P1").or_default() += 1;
            if y < 2000 {
                0
            } else {
                99
            }
        };
        p1::Timestamp {
            year,
            month: mo as u8,
            day: d as u8,
            hour: (sod / 3600) as u8,
            minute: (sod / 60 % 60) as u8,
            second: (sod % 60) as u8,
            summer: false,
        }
    }

    // ------------------------------------------------------------------
    // Receive

    /// Takes one frame from the controller at `now`. Anything not a valid
    /// controller message of the contract is counted and dropped.
    pub fn handle_frame(&mut self, now: SimTime, frame: &CanFrame) {
        self.stats.bits_received += u64::from(bit_length(frame).actual());
        let CanId::Standard(id) = frame.id() else {
            self.stats.rejects.unknown_id += 1;
            return;
        };
        let Some(message) = MESSAGES.iter().position(|m| m.id == id) else {
            self.stats.rejects.unknown_id += 1;
            return;
        };
        let spec = &MESSAGES[message];
        if spec.sender != Node::Controller {
            self.stats.rejects.not_for_plant += 1;
            return;
        }
        let data = frame.data();
        if frame.is_remote() || data.len() != usize::from(spec.dlc) {
            self.stats.rejects.malformed += 1;
            return;
        }
        let slot = self.rx.iter().position(|r| r.message == message);
        if let Some(data_id) = spec.e2e_data_id {
            let checker = match slot {
                Some(k) => &mut self.rx[k].checker,
                None => &mut self.ctrl_heartbeat_rx,
            };
            match checker.check(data_id, data) {
                st if st.is_valid() => {}
                E2eStatus::Repeated => {
                    self.stats.rejects.repeated += 1;
                    return;
                }
                E2eStatus::WrongSequence => {
                    self.stats.rejects.wrong_sequence += 1;
                    return;
                }
                _ => {
                    self.stats.rejects.wrong_crc += 1;
                    return;
                }
            }
        }
        let decoded = if message == index::CTRL_HEARTBEAT {
            self.decode_ctrl_heartbeat(now, data)
        } else {
            self.decode_command(message, data)
        };
        match decoded {
            Ok(()) => {
                if let Some(k) = slot {
                    self.rx[k].last_valid = Some(now);
                }
                *self.stats.frames_accepted.entry(spec.name).or_default() += 1;
            }
            Err(Reject::Malformed) => self.stats.rejects.malformed += 1,
            Err(Reject::BadIndex) => self.stats.rejects.bad_index += 1,
        }
        if self.command_set_complete() {
            self.state = PlantState::Running;
        }
    }

    /// Applies command message `message`'s signals to the latest command.
    fn decode_command(&mut self, message: usize, data: &[u8]) -> Result<(), Reject> {
        let Some((_, rows)) = self.command_rows.iter().find(|(m, _)| *m == message) else {
            return Err(Reject::Malformed);
        };
        let index = match indexed(message) {
            None => 0,
            Some(_) => {
                let i = usize::from(frame_index(message, data).ok_or(Reject::Malformed)?);
                if i >= self.port.sockets() {
                    return Err(Reject::BadIndex);
                }
                i
            }
        };
        let mut values = Vec::with_capacity(rows.len());
        for (s, sink) in rows {
            values.push((s.decode(data).map_err(|_| Reject::Malformed)?, *sink));
        }
        for (v, sink) in values {
            if let Sink::Set(set) = sink {
                set(&mut self.latest, index, v);
            }
        }
        Ok(())
    }

    fn decode_ctrl_heartbeat(&mut self, now: SimTime, data: &[u8]) -> Result<(), Reject> {
        let m = CtrlHeartbeat::try_from(data).map_err(|_| Reject::Malformed)?;
        self.controller = Some(ControllerStatus {
            state: m.ctrl_state(),
            sync_echo_ms: m.sync_echo_ms(),
            e2e_rejects: m.ctrl_e2e_rejects(),
            meter_stale: m.meter_stale(),
            link_timeout: m.link_timeout(),
            received_at: now,
        });
        Ok(())
    }

    fn command_set_complete(&self) -> bool {
        self.rx.iter().all(|r| r.last_valid.is_some())
    }

    /// Declares a timeout for every command message older than its
    /// deadline at `now`.
    fn check_deadlines(&mut self, now: SimTime) {
        for rx in self.rx.iter_mut() {
            let spec = &MESSAGES[rx.message];
            let Some(at) = rx.last_valid else { continue };
            let age_us = now.as_micros().saturating_sub(at.as_micros());
            if spec.deadline_ms > 0 && age_us > u64::from(spec.deadline_ms) * 1000 {
                rx.last_valid = None;
                rx.checker.reset();
                *self.stats.command_timeouts.entry(spec.name).or_default() += 1;
                self.state = PlantState::CommandTimeout;
            }
        }
    }

    /// What the house should apply from `now`: the latest complete,
    /// fresh command set, or `None` (the house's own policy) before the
    /// first complete set and after a deadline miss until a fresh set has
    /// arrived.
    pub fn commands(&mut self, now: SimTime) -> Option<PlantCommands> {
        self.has_fresh_command(now)
            .then(|| self.port.plant_commands(&self.latest))
    }

    /// Whether a complete, fresh command set is in force at `now` (then
    /// [`PlantLink::assembly_command`] is it): [`PlantLink::commands`]
    /// before the port maps it.
    pub fn has_fresh_command(&mut self, now: SimTime) -> bool {
        self.check_deadlines(now);
        self.command_set_complete()
    }

    /// The latest command as decoded (complete or not).
    pub fn assembly_command(&self) -> &AssemblyCommand {
        &self.latest
    }

    /// `SyncEchoMs` of the last accepted `CtrlHeartbeat`.
    pub fn last_sync_echo_ms(&self) -> Option<u32> {
        self.controller.map(|c| c.sync_echo_ms)
    }

    /// `CtrlState` of the last accepted `CtrlHeartbeat`.
    pub fn ctrl_state(&self) -> Option<CtrlHeartbeatCtrlState> {
        self.controller.map(|c| c.state)
    }

    /// The last accepted `CtrlHeartbeat` in full.
    pub fn controller_status(&self) -> Option<ControllerStatus> {
        self.controller
    }

    /// `InverterExportEnabled` of the last accepted `ConverterCmd` (the
    /// house's inverter honours it through [`PlantCommands`]).
    pub fn inverter_export_enabled(&self) -> Option<bool> {
        let name = MESSAGES[index::CONVERTER_CMD].name;
        self.stats
            .frames_accepted
            .contains_key(name)
            .then_some(self.latest.inverter_export_enabled)
    }

    /// Per socket (bus order), the last `SocketCapCmd` cap, W (not part of
    /// [`PlantCommands`]).
    pub fn socket_caps_w(&self) -> &[Option<f64>] {
        &self.latest.socket_caps_w
    }

    /// What `PlantHeartbeat` reports now.
    pub fn plant_state(&self) -> PlantState {
        self.state
    }

    pub fn stats(&self) -> &PlantLinkStats {
        &self.stats
    }
}

/// Message `m`, which must be E2E-protected.
fn e2e_message(m: usize) -> Result<usize, PlantLinkError> {
    let spec = &MESSAGES[m];
    match spec.e2e_data_id {
        Some(_) => Ok(m),
        None => Err(PlantLinkError::MissingMessage(spec.name)),
    }
}

fn check_meter_options(o: &PlantLinkOptions) -> Result<(), PlantLinkError> {
    let bad = |m: String| Err(PlantLinkError::MeterOptions(m));
    if !o.meter_manufacturer.iter().all(u8::is_ascii_alphabetic) {
        return bad(format!(
            "meter_manufacturer {:?} must be three ASCII letters",
            String::from_utf8_lossy(&o.meter_manufacturer)
        ));
    }
    let id = &o.meter_identification;
    if id.len() > p1::MAX_IDENT_LEN
        || !id
            .bytes()
            .all(|c| (0x20..=0x7E).contains(&c) && c != b'/' && c != b'!')
    {
        return bad(format!(
            "meter_identification {id:?} must be at most {} printable ASCII characters other than '/' and '!'",
            p1::MAX_IDENT_LEN
        ));
    }
    if o.meter_equipment_id.len() > p1::MAX_EQUIPMENT_ID_LEN {
        return bad(format!(
            "meter_equipment_id has {} bytes; at most {}",
            o.meter_equipment_id.len(),
            p1::MAX_EQUIPMENT_ID_LEN
        ));
    }
    if !(1..=firmware::wire::e2e::COUNTER_MAX).contains(&o.e2e_max_delta) {
        return Err(PlantLinkError::MeterOptions(format!(
            "e2e_max_delta {} must be within 1..=14",
            o.e2e_max_delta
        )));
    }
    Ok(())
}

fn name_of(frame: &CanFrame) -> &'static str {
    match frame.id() {
        CanId::Standard(id) => firmware::wire::can::spec(id).map_or("unknown", |s| s.name),
        CanId::Extended(_) => "unknown",
    }
}

fn plain_frame(spec: &MessageSpec, data: [u8; 8]) -> CanFrame {
    let len = usize::from(spec.dlc).min(8);
    // At most 8 bytes under a standard id (build.rs checks every id is
    // within 0x7FF): `CanFrame::new` only refuses more than 8 bytes.
    CanFrame::new(CanId::Standard(spec.id), &data[..len])
        .expect("at most 8 data bytes always make a classic frame")
}

fn protect_frame(spec: &MessageSpec, sender: &mut E2eSender, mut data: [u8; 8]) -> CanFrame {
    if let Some(data_id) = spec.e2e_data_id {
        sender.protect(data_id, &mut data[..usize::from(spec.dlc).min(8)]);
    }
    plain_frame(spec, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::wire::can::messages::*;
    use firmware::wire::e2e;
    use proptest::prelude::*;
    use std::path::Path;
    use twin::engine::Engine;
    use twin::house::House;

    fn terrace() -> HouseConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../twin/params/house/terrace.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        HouseConfig::parse(&path, &text).unwrap()
    }

    /// The terrace house after `secs` seconds of its own policy.
    fn house_at(secs: u64) -> (HouseConfig, SignalRegistry) {
        let cfg = terrace();
        let mut house = House::new(cfg.clone()).unwrap();
        let mut engine = Engine::new(&mut house).unwrap();
        engine.run_until(&mut house, SimTime::from_secs(secs), |_, _| true);
        (cfg, engine.signals().clone())
    }

    fn link(cfg: &HouseConfig, s: &SignalRegistry) -> PlantLink {
        PlantLink::new(cfg, s, PlantLinkOptions::default()).unwrap()
    }

    fn drain(l: &mut PlantLink) -> Vec<CanFrame> {
        std::iter::from_fn(|| l.poll_transmit()).collect()
    }

    fn sig(s: &SignalRegistry, name: &str) -> f64 {
        s.get(s.require(name).unwrap())
    }

    fn decode(f: &CanFrame) -> Messages {
        let CanId::Standard(id) = f.id() else {
            panic!("extended")
        };
        let name = firmware::wire::can::spec(id).unwrap().name;
        let d = f.data();
        match name {
            "PackStatus" => Messages::PackStatus(PackStatus::try_from(d).unwrap()),
            "CellExtremes" => Messages::CellExtremes(CellExtremes::try_from(d).unwrap()),
            "BusStatus" => Messages::BusStatus(BusStatus::try_from(d).unwrap()),
            "CircuitStatus" => Messages::CircuitStatus(CircuitStatus::try_from(d).unwrap()),
            "PvStatus" => Messages::PvStatus(PvStatus::try_from(d).unwrap()),
            "MainsStatus" => Messages::MainsStatus(MainsStatus::try_from(d).unwrap()),
            "SocketStatus" => Messages::SocketStatus(SocketStatus::try_from(d).unwrap()),
            "PlantHeartbeat" => Messages::PlantHeartbeat(PlantHeartbeat::try_from(d).unwrap()),
            "TimeSync" => Messages::TimeSync(TimeSync::try_from(d).unwrap()),
            other => panic!("the plant sent {other}"),
        }
    }

    fn near(decoded: f32, value: f64, factor: f64, what: &str) {
        let tol = factor / 2.0 + 1e-6 * value.abs().max(1.0);
        assert!(
            (f64::from(decoded) - value).abs() <= tol,
            "{what}: decoded {decoded}, signal {value}, resolution {factor}"
        );
    }

    #[test]
    fn status_frames_decode_to_the_published_signals() {
        // Evening: lights on, inverter running, battery discharging.
        let (cfg, s) = house_at(19 * 3600 + 45 * 60);
        let mut l = link(&cfg, &s);
        l.on_step(SimTime::from_secs(70_000), &s);
        let frames = drain(&mut l);
        // Order: ascending id, circuits and sockets by index.
        let ids: Vec<u32> = frames.iter().map(|f| f.id().raw()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(frames.len(), 3 + 4 + 2 + 4 + 1);
        let mut checkers = BTreeMap::new();
        let bus_v = sig(&s, "bus_voltage_v");
        let circuits = [
            "lighting_downstairs",
            "lighting_upstairs",
            "office_sockets",
            "living_sockets",
        ];
        let sockets = ["desk_left", "desk_right", "tv", "sofa"];
        for f in &frames {
            let spec = firmware::wire::can::spec(f.id().raw() as u16).unwrap();
            if let Some(data_id) = spec.e2e_data_id {
                let index = f.data()[1] >> 4;
                let checker = checkers
                    .entry((spec.id, index))
                    .or_insert_with(|| E2eChecker::new(1));
                assert!(checker.check(data_id, f.data()).is_valid(), "{}", spec.name);
                assert_eq!(f.data()[0], e2e::crc(data_id, f.data()));
            }
            match decode(f) {
                Messages::PackStatus(m) => {
                    near(m.pack_voltage(), sig(&s, "pack_voltage_v"), 0.01, "pack V");
                    near(m.pack_current(), sig(&s, "pack_current_a"), 0.1, "pack A");
                    assert!(m.pack_current() > 0.0, "discharging in the evening peak");
                }
                Messages::CellExtremes(m) => {
                    near(
                        m.cell_voltage_min(),
                        sig(&s, "cell_voltage_min_v"),
                        0.001,
                        "cell min",
                    );
                    near(
                        m.cell_voltage_max(),
                        sig(&s, "cell_voltage_max_v"),
                        0.001,
                        "cell max",
                    );
                    near(
                        m.cell_temperature_min(),
                        sig(&s, "pack_temperature_min_c"),
                        0.5,
                        "T min",
                    );
                    near(
                        m.cell_temperature_max(),
                        sig(&s, "pack_temperature_max_c"),
                        0.5,
                        "T max",
                    );
                }
                Messages::BusStatus(m) => {
                    near(m.bus_voltage(), bus_v, 0.01, "bus V");
                    let ch = f64::from(m.charger_ac_power());
                    assert!((ch - sig(&s, "charger_ac_power_w")).abs() <= 0.5);
                    let inv = f64::from(m.inverter_ac_power());
                    assert!((inv - sig(&s, "inverter_ac_power_w")).abs() <= 0.5);
                }
                Messages::CircuitStatus(m) => {
                    let c = circuits[usize::from(m.circuit_index())];
                    let p = sig(&s, &format!("circuit_{c}_power_w"));
                    near(m.circuit_power(), p, 0.1, c);
                    near(m.circuit_current(), p / bus_v, 0.001, c);
                    near(
                        m.circuit_voltage(),
                        sig(&s, &format!("circuit_{c}_voltage_v")),
                        0.25,
                        c,
                    );
                    assert_eq!(
                        m.circuit_tripped(),
                        sig(&s, &format!("circuit_{c}_tripped")) > 0.5
                    );
                }
                Messages::PvStatus(m) => {
                    let a = f64::from(m.pv_available_power());
                    assert!((a - sig(&s, "pv_available_w")).abs() <= 0.5);
                    let d = f64::from(m.pv_delivered_power());
                    assert!((d - sig(&s, "pv_power_w").max(0.0)).abs() <= 0.5);
                }
                Messages::MainsStatus(m) => {
                    assert!(m.mains_present());
                    near(
                        m.mains_voltage(),
                        sig(&s, "mains_voltage_v"),
                        0.1,
                        "mains V",
                    );
                    near(
                        m.mains_frequency(),
                        sig(&s, "mains_frequency_hz"),
                        0.01,
                        "mains Hz",
                    );
                }
                Messages::SocketStatus(m) => {
                    let k = sockets[usize::from(m.socket_index())];
                    let p = sig(&s, &format!("socket_{k}_power_w"));
                    near(m.socket_power(), p, 0.1, k);
                    let plugged = sig(&s, &format!("socket_{k}_plugged"));
                    assert_eq!(m.socket_plugged(), plugged > 0.5, "{k}");
                    let soc = sig(&s, &format!("socket_{k}_device_soc"));
                    if plugged > 0.5 && (0.0..=1.0).contains(&soc) {
                        near(m.socket_device_soc(), soc * 100.0, 0.5, k);
                    } else {
                        assert_eq!(m.socket_device_soc_raw_val(), 255, "unknown: {k}");
                    }
                    assert_eq!(m.socket_contract_power(), 0);
                }
                Messages::PlantHeartbeat(m) => {
                    assert_eq!(m.plant_state(), PlantHeartbeatPlantState::Starting);
                    assert_eq!(m.plant_command_timeouts(), 0);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(l.stats().values_clamped.values().all(|n| *n == 0));
        assert_eq!(l.stats().frames_sent_total(), frames.len() as u64);
        let bits: u64 = frames
            .iter()
            .map(|f| u64::from(bit_length(f).actual()))
            .sum();
        assert_eq!(l.stats().bits_sent, bits);
    }

    #[test]
    fn each_message_follows_its_cycle_once_per_step() {
        let (cfg, s) = house_at(60);
        let mut l = link(&cfg, &s);
        let mut count: BTreeMap<&str, u32> = BTreeMap::new();
        // 10 ms steps for 2 s: 100-ms messages 20 times, circuits (500 ms)
        // 4 times each, PV and sockets (1 s) twice.
        for k in 0..200 {
            l.on_step(SimTime::from_millis(k * 10), &s);
            for f in drain(&mut l) {
                *count.entry(name_of(&f)).or_default() += 1;
            }
        }
        assert_eq!(count["PackStatus"], 20);
        assert_eq!(count["PlantHeartbeat"], 20);
        assert_eq!(count["CircuitStatus"], 4 * 4);
        assert_eq!(count["PvStatus"], 2);
        assert_eq!(count["SocketStatus"], 2 * 4);
        // A step far longer than a cycle sends each message once, not a burst.
        l.on_step(SimTime::from_secs(60), &s);
        assert_eq!(drain(&mut l).len(), 14);
        l.on_step(SimTime::from_secs(60), &s);
        assert!(drain(&mut l).is_empty(), "same instant: nothing new is due");
    }

    #[test]
    fn out_of_range_and_non_finite_values_are_clamped_and_counted() {
        let (cfg, mut s) = house_at(10);
        let mut l = link(&cfg, &s);
        s.set(s.require("pack_voltage_v").unwrap(), 1e6);
        s.set(s.require("pack_current_a").unwrap(), f64::NAN);
        s.set(s.require("pack_temperature_min_c").unwrap(), -100.0);
        s.set(s.require("charger_ac_power_w").unwrap(), -1e9);
        l.on_step(SimTime::ZERO, &s);
        for f in drain(&mut l) {
            match decode(&f) {
                Messages::PackStatus(m) => {
                    assert_eq!(m.pack_voltage(), PackStatus::PACK_VOLTAGE_MAX);
                    assert_eq!(m.pack_current(), 0.0);
                }
                Messages::CellExtremes(m) => {
                    assert_eq!(
                        m.cell_temperature_min(),
                        CellExtremes::CELL_TEMPERATURE_MIN_MIN
                    )
                }
                Messages::BusStatus(m) => {
                    assert_eq!(m.charger_ac_power(), BusStatus::CHARGER_AC_POWER_MIN)
                }
                _ => {}
            }
        }
        let c = &l.stats().values_clamped;
        assert_eq!(c["PackStatus"], 2);
        assert_eq!(c["CellExtremes"], 1);
        assert_eq!(c["BusStatus"], 1);
    }

    /// Encodes and protects a controller frame the way the firmware will.
    struct Ctrl {
        senders: BTreeMap<u16, E2eSender>,
    }

    impl Ctrl {
        fn new() -> Self {
            Ctrl {
                senders: BTreeMap::new(),
            }
        }
        fn frame(&mut self, name: &str, raw: [u8; 8]) -> CanFrame {
            let spec = MESSAGES.iter().find(|m| m.name == name).unwrap();
            let mut data = raw;
            if let Some(id) = spec.e2e_data_id {
                self.senders
                    .entry(spec.id)
                    .or_default()
                    .protect(id, &mut data);
            }
            CanFrame::new(CanId::Standard(spec.id), &data).unwrap()
        }
        fn battery(&mut self, enabled: bool, charge: u16, discharge: u16) -> CanFrame {
            let m = BatteryCmd::new(
                0,
                0,
                enabled,
                false,
                charge,
                discharge,
                BatteryCmdBatteryFunction::PeakReduction,
            )
            .unwrap();
            self.frame("BatteryCmd", *m.raw())
        }
        fn converter(&mut self, boost: bool, request: u16) -> CanFrame {
            let m = ConverterCmd::new(
                0,
                0,
                true,
                boost,
                true,
                true,
                request,
                ConverterCmdChargerFunction::Scheduling,
                ConverterCmdInverterFunction::PeakReduction,
            )
            .unwrap();
            self.frame("ConverterCmd", *m.raw())
        }
        fn pv(&mut self, cap: Option<u16>) -> CanFrame {
            let m = PvCmd::new(
                0,
                0,
                cap.is_some(),
                cap.unwrap_or(0),
                PvCmdPvFunction::ExportControl,
            )
            .unwrap();
            self.frame("PvCmd", *m.raw())
        }
        fn switch(&mut self, circuits: u16, sockets: u16) -> CanFrame {
            let m = SwitchCmd::new(0, 0, circuits, sockets).unwrap();
            self.frame("SwitchCmd", *m.raw())
        }
        fn full_set(&mut self) -> Vec<CanFrame> {
            vec![
                self.battery(true, 2000, 3000),
                self.converter(true, 1500),
                self.pv(Some(1200)),
                self.switch(0b1011, 0b0110),
            ]
        }
    }

    fn expected() -> PlantCommands {
        PlantCommands {
            battery_enabled: true,
            battery_discharge_limit_w: 3000.0,
            battery_charge_limit_w: 2000.0,
            battery_setpoint_v: None,
            charger_enabled: true,
            charger_setpoint_v: Some(CHARGER_BOOST_SETPOINT_V),
            inverter_enabled: true,
            inverter_request_ac_w: 1500.0,
            inverter_export_enabled: Some(true),
            pv_cap_w: Some(1200.0),
            circuits_on: Some(vec![true, true, false, true]),
            sockets_on: Some(vec![false, true, true, false]),
        }
    }

    #[test]
    fn command_frames_become_plant_commands_once_the_set_is_complete() {
        let (cfg, s) = house_at(10);
        let mut l = link(&cfg, &s);
        let mut c = Ctrl::new();
        let t = SimTime::from_millis(1000);
        let set = c.full_set();
        for f in &set[..3] {
            l.handle_frame(t, f);
            assert_eq!(l.commands(t), None, "incomplete set: the plant's policy");
        }
        assert_eq!(l.plant_state(), PlantState::Starting);
        l.handle_frame(t, &set[3]);
        assert_eq!(l.commands(t), Some(expected()));
        assert_eq!(l.plant_state(), PlantState::Running);
        assert_eq!(l.inverter_export_enabled(), Some(true));
        // Later frames replace earlier values.
        l.handle_frame(t, &c.converter(false, 0));
        l.handle_frame(t, &c.pv(None));
        let got = l.commands(t).unwrap();
        assert_eq!(got.charger_setpoint_v, None);
        assert_eq!(got.inverter_request_ac_w, 0.0);
        assert_eq!(got.pv_cap_w, None);
        // Socket caps and the controller's heartbeat.
        let cap =
            SocketCapCmd::new(2, true, 12.5, SocketCapCmdSocketFunction::SelectiveSupply).unwrap();
        l.handle_frame(t, &c.frame("SocketCapCmd", *cap.raw()));
        assert_eq!(l.socket_caps_w()[2], Some(12.5));
        let bad =
            SocketCapCmd::new(9, true, 1.0, SocketCapCmdSocketFunction::SelectiveSupply).unwrap();
        l.handle_frame(t, &c.frame("SocketCapCmd", *bad.raw()));
        assert_eq!(l.stats().rejects.bad_index, 1);
        let hb =
            CtrlHeartbeat::new(0, 0, CtrlHeartbeatCtrlState::Normal, 1000, 3, true, false).unwrap();
        l.handle_frame(t, &c.frame("CtrlHeartbeat", *hb.raw()));
        assert_eq!(l.last_sync_echo_ms(), Some(1000));
        assert_eq!(l.ctrl_state(), Some(CtrlHeartbeatCtrlState::Normal));
        let st = l.controller_status().unwrap();
        assert!(st.meter_stale && !st.link_timeout);
        assert_eq!(st.e2e_rejects, 3);
        assert_eq!(l.stats().rejects.total(), 1);
    }

    #[test]
    fn corrupt_repeated_and_misaddressed_frames_are_counted_never_applied() {
        let (cfg, s) = house_at(10);
        let mut l = link(&cfg, &s);
        let mut c = Ctrl::new();
        let t = SimTime::ZERO;
        for f in c.full_set() {
            l.handle_frame(t, &f);
        }
        let before = l.commands(t).unwrap();
        // A corrupt battery command asking for a full stop.
        let f = c.battery(false, 0, 0);
        let mut data = f.data().to_vec();
        data[3] ^= 0x04;
        l.handle_frame(t, &CanFrame::new(f.id(), &data).unwrap());
        assert_eq!(l.stats().rejects.wrong_crc, 1);
        // The same frame twice: the second is a repeat.
        let f = c.battery(false, 0, 0);
        l.handle_frame(t, &f);
        assert!(
            !l.commands(t).unwrap().battery_enabled,
            "the valid one applies"
        );
        l.handle_frame(t, &f);
        assert_eq!(l.stats().rejects.repeated, 1);
        // Counter jumps beyond the allowed delta.
        for _ in 0..5 {
            c.battery(true, 1, 1);
        }
        l.handle_frame(t, &c.battery(true, 1, 1));
        assert_eq!(l.stats().rejects.wrong_sequence, 1);
        assert!(!l.commands(t).unwrap().battery_enabled);
        // A valid frame under another message's identifier (masquerade).
        let f = c.switch(0, 0);
        let id = CanId::Standard(MESSAGES.iter().find(|m| m.name == "PvCmd").unwrap().id);
        l.handle_frame(t, &CanFrame::new(id, f.data()).unwrap());
        assert_eq!(l.stats().rejects.wrong_crc, 2);
        // Short, remote, unknown, extended and plant-sent frames.
        l.handle_frame(t, &CanFrame::new(f.id(), &f.data()[..7]).unwrap());
        l.handle_frame(t, &CanFrame::remote(f.id(), 8).unwrap());
        l.handle_frame(t, &CanFrame::new(CanId::Standard(0x7FF), &[0; 8]).unwrap());
        l.handle_frame(t, &CanFrame::new(CanId::Extended(0x200), &[0; 8]).unwrap());
        l.handle_frame(t, &CanFrame::new(CanId::Standard(0x100), &[0; 8]).unwrap());
        let r = l.stats().rejects;
        assert_eq!((r.malformed, r.unknown_id, r.not_for_plant), (2, 2, 1));
        assert_eq!(l.commands(t).unwrap().circuits_on, before.circuits_on);
        // The heartbeat reports the E2E rejects.
        l.on_step(t, &s);
        let hb = drain(&mut l)
            .into_iter()
            .find(|f| name_of(f) == "PlantHeartbeat")
            .unwrap();
        let Messages::PlantHeartbeat(m) = decode(&hb) else {
            panic!()
        };
        assert_eq!(u64::from(m.plant_e2e_rejects()), r.e2e());
        assert_eq!(r.e2e(), 4);
    }

    #[test]
    fn a_late_command_hands_control_back_to_the_plant_until_a_fresh_set() {
        let (cfg, s) = house_at(10);
        let mut l = link(&cfg, &s);
        let mut c = Ctrl::new();
        let t0 = SimTime::from_secs(5);
        for f in c.full_set() {
            l.handle_frame(t0, &f);
        }
        let deadline_ms = u64::from(MESSAGES[index::BATTERY_CMD].deadline_ms);
        assert_eq!(deadline_ms, 350);
        // Refresh all but the switch command within the deadline.
        let t1 = t0.saturating_add(300_000);
        for f in &c.full_set()[..3] {
            l.handle_frame(t1, f);
        }
        // Age exactly the deadline: still fresh.
        assert!(l.commands(t0.saturating_add(deadline_ms * 1000)).is_some());
        // One microsecond later the switch command is late.
        let late = t0.saturating_add(deadline_ms * 1000 + 1);
        assert_eq!(l.commands(late), None);
        assert_eq!(l.plant_state(), PlantState::CommandTimeout);
        assert_eq!(l.stats().command_timeouts["SwitchCmd"], 1);
        assert_eq!(l.stats().command_timeouts_total(), 1);
        // Counted once per miss, not per call.
        assert_eq!(l.commands(late.saturating_add(1000)), None);
        assert_eq!(l.stats().command_timeouts_total(), 1);
        l.on_step(late, &s);
        let hb = drain(&mut l)
            .into_iter()
            .find(|f| name_of(f) == "PlantHeartbeat")
            .unwrap();
        let Messages::PlantHeartbeat(m) = decode(&hb) else {
            panic!()
        };
        assert_eq!(m.plant_state(), PlantHeartbeatPlantState::CommandTimeout);
        assert_eq!(m.plant_command_timeouts(), 1);
        // The controller comes back: its switch counter continues with a
        // gap (the checker restarted), the set is complete again.
        let t2 = late.saturating_add(50_000);
        l.handle_frame(t2, &c.switch(0b1011, 0b0110));
        assert_eq!(l.commands(t2), Some(expected()));
        assert_eq!(l.plant_state(), PlantState::Running);
        // Everything silent: all four time out.
        assert_eq!(l.commands(t2.saturating_add(10_000_000)), None);
        assert_eq!(l.stats().command_timeouts_total(), 5);
    }

    #[test]
    fn a_p1_telegram_a_second_from_the_meter_signals() {
        let (cfg, s) = house_at(3 * 3600 + 17);
        let mut l = link(&cfg, &s);
        for ms in (0..3000).step_by(250) {
            l.on_step(SimTime::from_millis(3 * 3600 * 1000 + 17_000 + ms), &s);
        }
        let telegrams: Vec<Vec<u8>> = std::iter::from_fn(|| l.poll_p1()).collect();
        assert_eq!(telegrams.len(), 3);
        assert_eq!(l.p1_telegrams_sent(), 3);
        let bytes: usize = telegrams.iter().map(Vec::len).sum();
        assert_eq!(l.stats().p1_bytes, bytes as u64);
        let t = p1::parse(&telegrams[0]).unwrap();
        assert_eq!(t.version, Some(50));
        assert_eq!(&t.header.manufacturer, b"MSW");
        assert_eq!(t.equipment_id.as_slice(), b"MASLOW0000000001");
        // 2026-06-21 03:00:17 local (the house runs from local midnight).
        let ts = t.timestamp;
        assert_eq!((ts.year, ts.month, ts.day), (26, 6, 21));
        assert_eq!(
            (ts.hour, ts.minute, ts.second, ts.summer),
            (3, 0, 17, false)
        );
        let wh = |n| (sig(&s, n) * 1000.0).floor() as u32;
        assert_eq!(
            t.energy_delivered_wh,
            [wh("grid_import_t1_kwh"), wh("grid_import_t2_kwh")]
        );
        assert_eq!(
            t.energy_returned_wh,
            [wh("grid_export_t1_kwh"), wh("grid_export_t2_kwh")]
        );
        assert!(t.energy_delivered_wh[0] > 0, "night import on tariff 1");
        assert_eq!(t.tariff, 1);
        assert_eq!(t.power_delivered_w, sig(&s, "grid_import_w").round() as u32);
        assert_eq!(t.power_returned_w, sig(&s, "grid_export_w").round() as u32);
        assert_eq!((t.power_failures, t.long_power_failures), (0, 0));
        assert_eq!(
            t.voltage_dv[0],
            Some((sig(&s, "meter_voltage_l1_v") * 10.0).round() as u16)
        );
        assert_eq!(
            t.current_a[0],
            Some(sig(&s, "meter_current_l1_a").round() as u16)
        );
        // The sync frame carries the count.
        let sync = l.sync_frame(SimTime::from_millis(10_817_250));
        let Messages::TimeSync(m) = decode(&sync) else {
            panic!()
        };
        assert_eq!((m.sim_time_ms(), m.p1_telegrams_sent()), (10_817_250, 3));
        assert!(e2e::E2eChecker::new(1)
            .check(0x1080, sync.data())
            .is_valid());
        assert_eq!(l.stats().frames_sent["TimeSync"], 1);
    }

    #[test]
    fn an_unpowered_meter_sends_no_telegrams() {
        let (cfg, mut s) = house_at(10);
        let mut l = link(&cfg, &s);
        let mains = s.require("mains_present").unwrap();
        l.on_step(SimTime::from_secs(1), &s);
        s.set(mains, 0.0);
        for k in 2..=10 {
            l.on_step(SimTime::from_secs(k), &s);
        }
        assert_eq!(l.p1_telegrams_sent(), 1);
        assert_eq!(l.stats().p1_unpowered_seconds, 9);
        // Status frames keep flowing (the assembly runs on its battery).
        assert!(drain(&mut l).iter().any(|f| name_of(f) == "MainsStatus"));
        s.set(mains, 1.0);
        l.on_step(SimTime::from_millis(10_500), &s);
        assert_eq!(l.p1_telegrams_sent(), 1, "not before the next whole second");
        l.on_step(SimTime::from_secs(11), &s);
        assert_eq!(l.p1_telegrams_sent(), 2);
        assert_eq!(std::iter::from_fn(|| l.poll_p1()).count(), 2);
    }

    #[test]
    fn wiring_errors_name_what_to_fix() {
        let cfg = terrace();
        let err = PlantLink::new(&cfg, &SignalRegistry::new(), PlantLinkOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("circuit_lighting_downstairs_power_w"), "{err}");
        let (cfg, s) = house_at(1);
        let opts = PlantLinkOptions {
            meter_identification: "a/b".into(),
            ..Default::default()
        };
        let err = PlantLink::new(&cfg, &s, opts).unwrap_err().to_string();
        assert!(err.contains("meter_identification"), "{err}");
        // Stepped with another registry: refused and counted, no panic.
        let mut l = link(&cfg, &s);
        l.on_step(SimTime::ZERO, &SignalRegistry::new());
        assert_eq!(l.stats().foreign_registry_steps, 1);
        assert!(l.poll_transmit().is_none());
    }

    fn arb_frame() -> impl Strategy<Value = CanFrame> {
        let ids: Vec<u16> = MESSAGES.iter().map(|m| m.id).collect();
        let contract = (
            proptest::sample::select(ids),
            proptest::collection::vec(any::<u8>(), 0..=8),
            any::<bool>(),
        )
            .prop_map(|(id, mut data, fix_crc)| {
                // Often give the frame a valid CRC so decoding is reached.
                if let (true, Some(spec)) = (fix_crc, firmware::wire::can::spec(id)) {
                    if let Some(data_id) = spec.e2e_data_id {
                        if data.len() >= 2 {
                            data[0] = e2e::crc(data_id, &data);
                        }
                    }
                }
                CanFrame::new(CanId::Standard(id), &data).unwrap()
            });
        prop_oneof![
            contract,
            (0u16..=0x7FF, proptest::collection::vec(any::<u8>(), 0..=8))
                .prop_map(|(id, d)| CanFrame::new(CanId::Standard(id), &d).unwrap()),
            (
                0u32..=0x1FFF_FFFF,
                proptest::collection::vec(any::<u8>(), 0..=8)
            )
                .prop_map(|(id, d)| CanFrame::new(CanId::Extended(id), &d).unwrap()),
            (0u16..=0x7FF, 0u8..=8)
                .prop_map(|(id, n)| CanFrame::remote(CanId::Standard(id), n).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever arrives, in whatever order and at whatever time, the
        /// link never panics, counts every frame once, and only ever hands
        /// the house commands after a complete set.
        #[test]
        fn arbitrary_frames_never_panic(frames in proptest::collection::vec((arb_frame(), 0u64..2_000_000), 0..200)) {
            let (cfg, s) = SHARED.with(|h| h.clone());
            let mut l = link(&cfg, &s);
            let mut now = 0u64;
            let n = frames.len() as u64;
            for (f, dt) in frames {
                now += dt;
                let t = SimTime::from_micros(now);
                l.handle_frame(t, &f);
                let _ = l.commands(t);
                l.on_step(t, &s);
                while l.poll_transmit().is_some() {}
                let _ = l.sync_frame(t);
            }
            let st = l.stats();
            let accepted: u64 = st.frames_accepted.values().sum();
            prop_assert_eq!(accepted + st.rejects.total(), n, "every frame counted once");
        }
    }

    thread_local! {
        static SHARED: (HouseConfig, SignalRegistry) = house_at(5);
    }
}
