//! The controller's link layer: one sans-IO, heap-free [`Node`] that turns
//! received CAN frames and P1 bytes into controller [`Input`]s and the
//! controller's [`PlantCommand`]s into CAN frames, with the CAN contract
//! (`can/maslow.dbc`) as the only source of identifiers, scaling, cycle
//! times, deadlines and E2E data ids.
//!
//! The board runtime (tokio, SocketCAN/SLCAN, serial) and the in-process rig
//! drive the same type, so both make identical decisions (quinn-proto
//! shape):
//!
//! ```text
//!   handle_frame(now, id, data)   every received CAN frame
//!   handle_p1(now, bytes)         raw bytes read from the meter's P1 port
//!   handle_timeout(now)           at poll_timeout() (local clock only)
//!   poll_transmit() -> TxFrame    frames to put on the bus
//!   poll_event()    -> Output     every controller output, for logs
//! ```
//!
//! ## Receive
//! Every frame is classified once and counted in [`LinkStats`]: unknown
//! identifier, a controller-sent identifier, wrong length, E2E failure
//! (CRC, repeated counter, counter jump beyond `e2e_max_delta`), or
//! accepted. Only accepted frames are acted on. A CRC or length failure of
//! a plant message is also reported to the controller as
//! [`Input::CorruptFrame`] (protection's corrupt-input rate). E2E checkers
//! run per message, and per index for `CircuitStatus`.
//!
//! | frame | controller input | fed when |
//! |---|---|---|
//! | `PackStatus` + `CellExtremes` | [`Input::Pack`] | on each accepted half, once both halves were received and neither is past its deadline |
//! | `BusStatus` | [`Input::Bus`], [`Input::Charger`], [`Input::Inverter`] | each frame |
//! | `CircuitStatus` (per index) | [`Input::Circuits`] (all configured circuits) | after each index update, once every configured circuit has reported and none is past its deadline |
//! | `SocketStatus` (per index) | [`Input::Sockets`] (all configured sockets; unseen ones unplugged) | after each index update |
//! | `PvStatus` | [`Input::Pv`] (available power) | each frame |
//! | `MainsStatus` | [`Input::Mains`] | each frame |
//! | P1 telegram | [`Input::Clock`] then [`Input::Meter`] (tariff indicator included: the controller turns it into a demand signal per `[demand] tariff_rules`) | each valid telegram |
//!
//! ## Deadlines
//! Every cyclic plant message has the DBC's `MaslowDeadlineMs` (per index
//! for circuits and sockets, for the configured ones). A message is missed
//! when no valid frame arrived for longer than its deadline (counted from
//! the node's start for a message never received); each miss episode is
//! counted once and resets its E2E checker. A miss of a safety-relevant
//! (E2E) message sends [`Input::LinkLost`]: protection raises its
//! stale-input fault at its next update (≤ 100 ms later: battery contactor
//! open, charge and discharge blocked) and the heartbeat's `LinkTimeout`
//! bit is set. When every one of them is fresh again, [`Input::LinkRestored`]
//! follows and the fault self-clears (protection's release rule). Misses of
//! `PvStatus`/`SocketStatus` (no E2E) are only counted.
//!
//! The meter: no valid telegram for `meter_deadline_ms` starts a counted
//! stale episode, sets `MeterStale` in the heartbeat and sends
//! [`Input::MeterLost`]: the controller forgets the grid measurement, as
//! before the first telegram (keeping the meter's last mains flag). This
//! is not a protection trip: in a power cut
//! the meter goes dark while `MainsStatus` keeps reporting the cut, so the
//! essential circuits stay on.
//!
//! ## Transmit
//! Nothing is commanded before the controller's first [`PlantCommand`];
//! from then on the latest one is sent at the DBC cycle: `BatteryCmd`,
//! `ConverterCmd`, `PvCmd`, `SwitchCmd` (bit masks) and `SocketCapCmd`
//! (one frame per configured socket), E2E-protected where the DBC says,
//! reasons as the DBC's `Function` value table. `CtrlHeartbeat` (state,
//! E2E rejects, `MeterStale`, `LinkTimeout`, `SyncEchoMs`) is sent from the
//! start.
//!
//! ## Clock modes and the lockstep protocol
//! [`ClockMode::Local`]: frames and telegrams are handled at `now` at once;
//! [`Node::handle_timeout`] at [`Node::poll_timeout`] runs the controller's
//! ticks, the deadlines and the cyclic sends.
//!
//! [`ClockMode::Bus`] (lockstep rigs): every `now` argument is ignored and
//! time advances only with `TimeSync(SimTimeMs = t, P1TelegramsSent = k)`,
//! which means "the plant's step at t is complete and all its status frames
//! were sent before this". Frames received since the last sync are queued.
//! On a valid `TimeSync(t)`:
//! 1. if fewer than `k` telegrams (mod 256) have been framed so far, the
//!    sync is held until [`Node::handle_p1`] delivers them;
//! 2. the controller's ticks whose timeout is before `t` run at their own
//!    times (deadlines are checked at each);
//! 3. the queued frames are handed over at `t` in arrival order, then the
//!    first `k` telegrams not yet delivered;
//! 4. deadlines are checked at `t` and the ticks due at `t` run;
//! 5. every cyclic frame due at or before `t` is queued (at most one of
//!    each per sync), and `CtrlHeartbeat` with `SyncEchoMs = t` is queued
//!    last: the lockstep acknowledgement, sent on every sync.
//!
//! A sync older than the last one is counted and dropped (no echo).

use core::fmt;
use embedded_can::{Id, StandardId};

use crate::controller::{
    CircuitMeasurement, Controller, ControllerConfig, Input, MeterMeasurement, Output,
    PlantCommand, MAX_CIRCUITS, MAX_SOCKETS,
};
use crate::decision::Function;
use crate::protection::ProtectionReason;
use crate::selective::{DeviceId, PdContract, SocketInput};
use crate::time::{LocalTime, Millis};
use crate::wire::can::{self, messages as msg, MESSAGES};
use crate::wire::e2e::{E2eChecker, E2eSender, E2eStatus};
use crate::wire::p1::{Framer, FramerStats, Telegram};
use crate::ConfigError;

/// What the remote server's link delivers to the controller.
#[derive(Debug, Clone, Copy)]
pub enum Uplink<'a> {
    Demand(crate::demand::DemandSignal),
    ChargeNow(crate::scheduling::ChargeNowRequest),
    /// A signed dispatch message, verified by the controller's cluster
    /// function (firmware/docs/dispatch.md).
    Dispatch(&'a [u8]),
    /// A signed configuration message, checked by the controller's cluster
    /// function (firmware/docs/config-message.md).
    Config(&'a [u8]),
    /// The server asks for the cluster report (answered with
    /// [`Output::ClusterReport`], `wire::cluster_report`).
    ClusterReportRequest,
}

/// Number of messages in the contract (`wire::can::MESSAGES`).
pub const MESSAGE_COUNT: usize = MESSAGES.len();
/// Frames and syncs queued between syncs in bus-clock mode.
pub const RX_QUEUE: usize = 128;
/// Frames waiting for [`Node::poll_transmit`].
pub const TX_QUEUE: usize = 64;
/// Outputs waiting for [`Node::poll_event`].
pub const EVENT_QUEUE: usize = 16;
/// P1 telegrams framed but not yet handed over (bus-clock mode).
pub const P1_QUEUE: usize = 8;
/// Most controller ticks run to catch up within one sync; beyond it the
/// controller runs once at the sync's time.
pub const MAX_CATCHUP_TICKS: u32 = 1000;

use can::index::{
    BATTERY_CMD, CELL_EXTREMES, CONVERTER_CMD, CTRL_HEARTBEAT, PACK_STATUS, PV_CMD, SWITCH_CMD,
    TIME_SYNC,
};
use can::{IndexedBy, COMMANDS};

/// The DBC's `Function` value table, in raw-value order (0..=10).
pub const FUNCTIONS: [Function; 11] = [
    Function::Protection,
    Function::Estimation,
    Function::Scheduling,
    Function::PeakReduction,
    Function::DemandManagement,
    Function::Resilience,
    Function::SelectiveSupply,
    Function::LocalHub,
    Function::ExportControl,
    Function::Cluster,
    Function::Default,
];

/// A reason's function as the DBC's raw `*Function` value.
pub fn function_code(f: Function) -> u8 {
    FUNCTIONS.iter().position(|&x| x == f).unwrap_or(10) as u8
}

/// The function a raw `*Function` value names (`None`: not in the table).
pub fn function_from_code(code: u8) -> Option<Function> {
    FUNCTIONS.get(usize::from(code)).copied()
}

// ---------------------------------------------------------------------------
// Configuration

pub use crate::link_config::{ClockMode, LinkConfig};

// ---------------------------------------------------------------------------
// Frames and counters

/// A classic CAN frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxFrame {
    /// 11-bit identifier.
    pub id: u16,
    /// Data length, bytes (≤ 8).
    pub len: u8,
    pub data: [u8; 8],
}

impl TxFrame {
    /// The `len` data bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[..usize::from(self.len.min(8))]
    }
}

/// Receive counters of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageCounters {
    /// Valid frames (E2E passed where the DBC asks for it).
    pub accepted: u32,
    /// E2E CRC mismatch.
    pub crc_errors: u32,
    /// Same alive counter as the last accepted frame.
    pub repeated: u32,
    /// Alive counter jumped beyond the allowed delta.
    pub out_of_sequence: u32,
    /// Data length other than the DBC's.
    pub bad_length: u32,
    /// Deadline miss episodes (per index for circuits and sockets).
    pub deadline_misses: u32,
    /// Frames sent (controller messages).
    pub sent: u32,
}

/// Everything the link layer counted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkStats {
    /// Every frame handed to [`Node::handle_frame`].
    pub frames_received: u32,
    /// Per message, indexed like [`wire::can::MESSAGES`](MESSAGES).
    pub messages: [MessageCounters; MESSAGE_COUNT],
    /// Identifiers not in the contract.
    pub unknown_id: u32,
    /// Frames carrying a controller-sent identifier (an echo, or another
    /// controller on the bus): ignored.
    pub controller_ids: u32,
    /// Accepted circuit/socket frames for an index beyond the configured
    /// count: not acted on.
    pub index_out_of_range: u32,
    /// Frames dropped because the bus-clock receive queue was full.
    pub rx_queue_overflows: u32,
    /// Frames dropped because nobody polled the transmit queue.
    pub tx_queue_overflows: u32,
    /// Outputs dropped because nobody polled the event queue.
    pub events_dropped: u32,
    /// The P1 framer's counters (telegrams ok, CRC errors, malformed, …).
    pub p1: FramerStats,
    /// Valid telegrams whose timestamp is out of range (meter data used,
    /// clock not).
    pub p1_bad_timestamp: u32,
    /// Telegrams dropped because the bus-clock P1 queue was full.
    pub p1_queue_overflows: u32,
    /// Meter stale episodes.
    pub meter_stale_episodes: u32,
    /// Link-lost episodes (a safety-relevant deadline missed).
    pub link_lost_episodes: u32,
    /// Syncs fully processed (bus clock).
    pub syncs: u32,
    /// Syncs that had to wait for P1 telegrams.
    pub syncs_held: u32,
    /// Syncs older than the last one, dropped.
    pub syncs_backwards: u32,
    /// The plant's last reported `PlantState` (raw).
    pub plant_state: Option<u8>,
}

impl LinkStats {
    /// Frames classified so far (every counter a received frame ends in).
    pub fn frames_classified(&self) -> u64 {
        let per: u64 = self
            .messages
            .iter()
            .map(|m| {
                u64::from(m.accepted)
                    + u64::from(m.crc_errors)
                    + u64::from(m.repeated)
                    + u64::from(m.out_of_sequence)
                    + u64::from(m.bad_length)
            })
            .sum();
        per + u64::from(self.unknown_id)
            + u64::from(self.controller_ids)
            + u64::from(self.rx_queue_overflows)
    }

    /// Frames the controller rejected for CRC, counter or deadline.
    pub fn e2e_rejects(&self) -> u64 {
        self.messages
            .iter()
            .map(|m| {
                u64::from(m.crc_errors)
                    + u64::from(m.repeated)
                    + u64::from(m.out_of_sequence)
                    + u64::from(m.deadline_misses)
            })
            .sum()
    }
}

impl fmt::Display for LinkStats {
    /// One line for logs and run summaries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum = |g: fn(&MessageCounters) -> u32| -> u64 {
            self.messages.iter().map(|m| u64::from(g(m))).sum()
        };
        write!(
            f,
            "{} frames received ({} accepted; rejected: {} CRC, {} repeated, {} out of sequence, {} bad length, {} unknown id), {} sent, {} deadline misses, {} link-lost and {} meter-stale episodes; P1: {} telegrams ok, {} CRC errors, {} malformed, {} truncated",
            self.frames_received,
            sum(|m| m.accepted),
            sum(|m| m.crc_errors),
            sum(|m| m.repeated),
            sum(|m| m.out_of_sequence),
            sum(|m| m.bad_length),
            self.unknown_id,
            sum(|m| m.sent),
            sum(|m| m.deadline_misses),
            self.link_lost_episodes,
            self.meter_stale_episodes,
            self.p1.telegrams_ok,
            self.p1.crc_errors,
            self.p1.malformed,
            self.p1.truncated,
        )
    }
}

// ---------------------------------------------------------------------------
// The node

/// Deadline and E2E state of one received message (or one index of it).
#[derive(Debug, Clone, Copy)]
struct Watch {
    checker: E2eChecker,
    last_ok: Option<Millis>,
    lost: bool,
}

impl Watch {
    fn new(max_delta: u8) -> Self {
        Watch {
            checker: E2eChecker::new(max_delta),
            last_ok: None,
            lost: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct RxFrame {
    id: u16,
    /// Received length, saturated at 255.
    len: u8,
    data: [u8; 8],
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    Frame(RxFrame),
    Sync { t: u32, telegrams: u8 },
}

/// What one valid telegram says.
#[derive(Debug, Clone, Copy)]
struct MeterUpdate {
    meter: MeterMeasurement,
    clock: Option<(u64, LocalTime)>,
}

#[derive(Debug, Clone, Copy)]
struct TxSlot {
    next_due: Option<Millis>,
    sender: E2eSender,
}

/// The controller's link layer (see the module docs).
#[derive(Debug)]
pub struct Node {
    cfg: LinkConfig,
    controller: Controller,
    n_circuits: usize,
    n_sockets: usize,
    started: Millis,
    bus_time: Option<Millis>,
    stats: LinkStats,
    // receive
    rx: [Watch; MESSAGE_COUNT],
    circuit_rx: [Watch; MAX_CIRCUITS],
    socket_rx: [Watch; MAX_SOCKETS],
    pack: Option<(f32, f32)>,
    cells: Option<[f32; 4]>,
    circuits: [Option<CircuitMeasurement>; MAX_CIRCUITS],
    sockets: [SocketInput; MAX_SOCKETS],
    mains_present: Option<bool>,
    link_lost: bool,
    pending: heapless::Deque<Pending, RX_QUEUE>,
    held_sync: bool,
    // meter
    framer: Framer,
    telegrams_framed: u8,
    telegrams_delivered: u8,
    p1_pending: heapless::Deque<Option<MeterUpdate>, P1_QUEUE>,
    meter_at: Option<Millis>,
    meter_stale: bool,
    // transmit
    command: Option<PlantCommand>,
    tx_slots: [TxSlot; MESSAGE_COUNT],
    tx: heapless::Deque<TxFrame, TX_QUEUE>,
    events: heapless::Deque<Output, EVENT_QUEUE>,
}

impl Node {
    /// A node and its controller, started at `now` (at 0 in bus-clock mode).
    pub fn new(
        controller: ControllerConfig,
        link: LinkConfig,
        now: Millis,
    ) -> Result<Node, ConfigError> {
        link.validate().map_err(|e| e.within("link"))?;
        let start = match link.clock {
            ClockMode::Local => now,
            ClockMode::Bus => Millis::ZERO,
        };
        let n_circuits = usize::from(controller.assembly.circuits).min(MAX_CIRCUITS);
        let n_sockets = usize::from(controller.assembly.sockets).min(MAX_SOCKETS);
        let controller = Controller::new(controller, start)?;
        let w = Watch::new(link.e2e_max_delta);
        let mut tx_slots = [TxSlot {
            next_due: None,
            sender: E2eSender::new(),
        }; MESSAGE_COUNT];
        if link.clock == ClockMode::Local {
            tx_slots[CTRL_HEARTBEAT].next_due = Some(start);
        }
        Ok(Node {
            cfg: link,
            controller,
            n_circuits,
            n_sockets,
            started: start,
            bus_time: None,
            stats: LinkStats::default(),
            rx: [w; MESSAGE_COUNT],
            circuit_rx: [w; MAX_CIRCUITS],
            socket_rx: [w; MAX_SOCKETS],
            pack: None,
            cells: None,
            circuits: [None; MAX_CIRCUITS],
            sockets: [SocketInput::default(); MAX_SOCKETS],
            mains_present: None,
            link_lost: false,
            pending: heapless::Deque::new(),
            held_sync: false,
            framer: Framer::new(),
            telegrams_framed: 0,
            telegrams_delivered: 0,
            p1_pending: heapless::Deque::new(),
            meter_at: None,
            meter_stale: false,
            command: None,
            tx_slots,
            tx: heapless::Deque::new(),
            events: heapless::Deque::new(),
        })
    }

    /// The link configuration in use.
    pub fn link_config(&self) -> &LinkConfig {
        &self.cfg
    }
    /// The counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
    /// The last fully processed `TimeSync` time (bus clock).
    pub fn bus_time(&self) -> Option<Millis> {
        self.bus_time
    }
    /// The controller the node drives.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }
    /// Whether a safety-relevant frame is past its deadline.
    pub fn link_lost(&self) -> bool {
        self.link_lost
    }
    /// Whether the meter is stale.
    pub fn meter_stale(&self) -> bool {
        self.meter_stale
    }
    /// The latest plant command (what the command frames carry).
    pub fn command(&self) -> Option<&PlantCommand> {
        self.command.as_ref()
    }
    /// Frames waiting for the next sync (bus clock).
    pub fn pending_frames(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| matches!(p, Pending::Frame(_)))
            .count()
    }

    /// The next frame to send, oldest first.
    pub fn poll_transmit(&mut self) -> Option<TxFrame> {
        self.tx.pop_front()
    }

    /// The next controller output (plant commands included), oldest first.
    pub fn poll_event(&mut self) -> Option<Output> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] is next due (local clock; `None` in
    /// bus-clock mode, where syncs drive time).
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.cfg.clock == ClockMode::Bus {
            return None;
        }
        let mut t = self.controller.poll_timeout();
        let mut earlier = |x: Millis| {
            t = Some(t.map_or(x, |t: Millis| t.min(x)));
        };
        for slot in &self.tx_slots {
            if let Some(d) = slot.next_due {
                earlier(d);
            }
        }
        self.for_each_watch(|_, deadline, w| {
            if !w.lost {
                earlier(w.last_ok.unwrap_or(self.started).plus_ms(deadline + 1));
            }
        });
        if !self.meter_stale {
            earlier(
                self.meter_at
                    .unwrap_or(self.started)
                    .plus_ms(u64::from(self.cfg.meter_deadline_ms) + 1),
            );
        }
        t
    }

    /// Local clock: runs the deadlines, the controller's due ticks and the
    /// cyclic sends. Ignored in bus-clock mode.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.cfg.clock == ClockMode::Bus {
            return;
        }
        self.supervise(now);
        if self.controller.poll_timeout().is_some_and(|t| t <= now) {
            self.controller.handle(now, Input::Tick);
            self.drain(now);
        }
        self.send_due(now);
        if self.tx_slots[CTRL_HEARTBEAT]
            .next_due
            .is_some_and(|d| d <= now)
        {
            self.send_heartbeat(0);
            bump_due(&mut self.tx_slots[CTRL_HEARTBEAT], CTRL_HEARTBEAT, now);
        }
    }

    /// One received CAN frame (any identifier, any length).
    pub fn handle_frame(&mut self, now: Millis, id: u16, data: &[u8]) {
        self.stats.frames_received = self.stats.frames_received.wrapping_add(1);
        match self.cfg.clock {
            ClockMode::Local => {
                self.receive(now, id, data);
                self.supervise(now);
            }
            ClockMode::Bus => {
                if usize::from(id) == usize::from(MESSAGES[TIME_SYNC].id) {
                    // Checked on arrival: a sync is what moves time.
                    let at = self.bus_time.unwrap_or(self.started);
                    if let Some((t, telegrams)) = self.receive(at, id, data) {
                        self.enqueue(Pending::Sync { t, telegrams });
                    }
                } else {
                    let mut f = RxFrame {
                        id,
                        len: data.len().min(255) as u8,
                        data: [0; 8],
                    };
                    let n = data.len().min(8);
                    f.data[..n].copy_from_slice(&data[..n]);
                    self.enqueue(Pending::Frame(f));
                }
                self.pump_bus();
            }
        }
    }

    /// A message from the remote server's link (the fleet uplink): a
    /// demand signal, a low-carbon charge request, or a signed dispatch or
    /// configuration message as received. Handled at once — at `now` on the
    /// local clock, at the last bus time on the bus clock — and answered
    /// through [`Node::poll_event`] ([`Output::DemandAck`],
    /// [`Output::DispatchVerdict`], [`Output::ConfigVerdict`],
    /// [`Output::ClusterReport`]).
    pub fn handle_uplink(&mut self, now: Millis, message: Uplink<'_>) {
        let at = match self.cfg.clock {
            ClockMode::Local => now,
            ClockMode::Bus => self.bus_time.unwrap_or(self.started),
        };
        let input = match message {
            Uplink::Demand(s) => Input::Demand(s),
            Uplink::ChargeNow(r) => Input::ChargeNow(r),
            Uplink::Dispatch(bytes) => Input::Dispatch(bytes),
            Uplink::Config(bytes) => Input::Config(bytes),
            Uplink::ClusterReportRequest => Input::ClusterReportRequest,
        };
        self.controller.handle(at, input);
        self.drain(at);
    }

    /// Raw bytes read from the P1 serial port.
    pub fn handle_p1(&mut self, now: Millis, bytes: &[u8]) {
        let mut rest = bytes;
        loop {
            let taken = self.framer.push(rest).min(rest.len());
            rest = &rest[taken..];
            let mut framed = false;
            while let Some(result) = self.framer.next_telegram() {
                framed = true;
                self.telegrams_framed = self.telegrams_framed.wrapping_add(1);
                let update = match result {
                    Ok(t) => Some(self.meter_update(&t)),
                    Err(_) => None,
                };
                match self.cfg.clock {
                    ClockMode::Local => {
                        self.telegrams_delivered = self.telegrams_delivered.wrapping_add(1);
                        if let Some(u) = update {
                            self.deliver_meter(now, u);
                        }
                    }
                    ClockMode::Bus => {
                        if self.p1_pending.is_full() {
                            let _ = self.p1_pending.pop_front();
                            self.telegrams_delivered = self.telegrams_delivered.wrapping_add(1);
                            self.stats.p1_queue_overflows += 1;
                        }
                        let _ = self.p1_pending.push_back(update);
                    }
                }
            }
            if rest.is_empty() || (taken == 0 && !framed) {
                break;
            }
        }
        self.stats.p1 = self.framer.stats();
        match self.cfg.clock {
            ClockMode::Local => self.supervise(now),
            ClockMode::Bus => self.pump_bus(),
        }
    }

    // -----------------------------------------------------------------------
    // Bus clock

    fn enqueue(&mut self, p: Pending) {
        if self.pending.push_back(p).is_err() {
            match p {
                Pending::Frame(_) => {
                    self.stats.rx_queue_overflows = self.stats.rx_queue_overflows.wrapping_add(1)
                }
                // Make room for the sync by dropping the oldest frame (a
                // lost sync would stall the lockstep).
                Pending::Sync { .. } => {
                    if let Some(pos) = self
                        .pending
                        .iter()
                        .position(|x| matches!(x, Pending::Frame(_)))
                    {
                        let mut rest: heapless::Deque<Pending, RX_QUEUE> = heapless::Deque::new();
                        let mut i = 0;
                        while let Some(x) = self.pending.pop_front() {
                            if i != pos {
                                let _ = rest.push_back(x);
                            }
                            i += 1;
                        }
                        self.pending = rest;
                        self.stats.rx_queue_overflows =
                            self.stats.rx_queue_overflows.wrapping_add(1);
                        let _ = self.pending.push_back(p);
                    }
                }
            }
        }
    }

    /// Processes every sync whose conditions hold, in order.
    fn pump_bus(&mut self) {
        loop {
            let Some((t, k)) = self.pending.iter().find_map(|p| match p {
                Pending::Sync { t, telegrams } => Some((*t, *telegrams)),
                Pending::Frame(_) => None,
            }) else {
                return;
            };
            let t = Millis(u64::from(t));
            if self.bus_time.is_some_and(|b| t < b) {
                // Drop the stale sync; its frames go with the next one.
                self.stats.syncs_backwards += 1;
                let mut rest: heapless::Deque<Pending, RX_QUEUE> = heapless::Deque::new();
                let mut dropped = false;
                while let Some(x) = self.pending.pop_front() {
                    if !dropped && matches!(x, Pending::Sync { .. }) {
                        dropped = true;
                    } else {
                        let _ = rest.push_back(x);
                    }
                }
                self.pending = rest;
                continue;
            }
            // (1) hold until the plant's telegrams are framed.
            let behind = k.wrapping_sub(self.telegrams_framed) as i8;
            if behind > 0 {
                if !self.held_sync {
                    self.held_sync = true;
                    self.stats.syncs_held += 1;
                }
                return;
            }
            self.held_sync = false;
            // (2) ticks before t at their own times.
            let mut n = 0;
            while let Some(due) = self.controller.poll_timeout() {
                if due >= t || n >= MAX_CATCHUP_TICKS {
                    break;
                }
                self.supervise(due);
                self.controller.handle(due, Input::Tick);
                self.drain(due);
                n += 1;
            }
            // (3) the step's frames at t, in arrival order, then telegrams.
            while let Some(p) = self.pending.pop_front() {
                match p {
                    Pending::Frame(f) => {
                        let len = usize::from(f.len);
                        if len <= 8 {
                            self.receive(t, f.id, &f.data[..len]);
                        } else {
                            // Longer than any classic frame: the length
                            // check rejects it whatever it claims.
                            let mut long = [0u8; 9];
                            long[..8].copy_from_slice(&f.data);
                            self.receive(t, f.id, &long);
                        }
                    }
                    Pending::Sync { .. } => break,
                }
            }
            let want = k.wrapping_sub(self.telegrams_delivered);
            for _ in 0..want {
                let Some(u) = self.p1_pending.pop_front() else {
                    break;
                };
                self.telegrams_delivered = self.telegrams_delivered.wrapping_add(1);
                if let Some(u) = u {
                    self.deliver_meter(t, u);
                }
            }
            // (4) deadlines and the ticks due at t.
            self.supervise(t);
            if self.controller.poll_timeout().is_some_and(|d| d <= t) {
                self.controller.handle(t, Input::Tick);
                self.drain(t);
            }
            // (5) cyclic frames, then the heartbeat echoing t last.
            self.bus_time = Some(t);
            self.send_due(t);
            self.send_heartbeat(t.0.min(u64::from(u32::MAX)) as u32);
            self.stats.syncs += 1;
        }
    }

    // -----------------------------------------------------------------------
    // Receive

    fn watch_mut(&mut self, idx: usize, index: Option<u8>) -> &mut Watch {
        match (can::indexed(idx).map(|m| m.by), index) {
            (Some(IndexedBy::Circuit), Some(i)) => {
                &mut self.circuit_rx[usize::from(i) % MAX_CIRCUITS]
            }
            (Some(IndexedBy::Socket), Some(i)) => &mut self.socket_rx[usize::from(i) % MAX_SOCKETS],
            _ => &mut self.rx[idx % MESSAGE_COUNT],
        }
    }

    /// The watches of message `idx`: one per configured circuit or socket
    /// for a per-index message, else its own.
    fn watches(&self, idx: usize) -> &[Watch] {
        match can::indexed(idx).map(|m| m.by) {
            Some(IndexedBy::Circuit) => &self.circuit_rx[..self.n_circuits],
            Some(IndexedBy::Socket) => &self.socket_rx[..self.n_sockets],
            None => core::slice::from_ref(&self.rx[idx]),
        }
    }

    fn watches_mut(&mut self, idx: usize) -> &mut [Watch] {
        match can::indexed(idx).map(|m| m.by) {
            Some(IndexedBy::Circuit) => &mut self.circuit_rx[..self.n_circuits],
            Some(IndexedBy::Socket) => &mut self.socket_rx[..self.n_sockets],
            None => core::slice::from_mut(&mut self.rx[idx]),
        }
    }

    /// Calls `f(message index, deadline, watch)` for every watched
    /// deadline: each cyclic plant message, per configured index for
    /// circuits and sockets.
    fn for_each_watch(&self, mut f: impl FnMut(usize, u64, &Watch)) {
        for (idx, spec) in MESSAGES.iter().enumerate() {
            if spec.sender != can::Node::Plant || spec.deadline_ms == 0 {
                continue;
            }
            let deadline = u64::from(spec.deadline_ms);
            self.watches(idx).iter().for_each(|w| f(idx, deadline, w));
        }
    }

    /// Classifies and acts on one frame at `now`; returns a valid
    /// TimeSync's (time, telegrams).
    fn receive(&mut self, now: Millis, id: u16, data: &[u8]) -> Option<(u32, u8)> {
        let Some(idx) = MESSAGES.iter().position(|m| m.id == id) else {
            self.stats.unknown_id = self.stats.unknown_id.wrapping_add(1);
            return None;
        };
        let spec = MESSAGES[idx];
        if spec.sender != can::Node::Plant {
            self.stats.controller_ids = self.stats.controller_ids.wrapping_add(1);
            return None;
        }
        let decoded = StandardId::new(id).ok_or(()).and_then(|sid| {
            msg::Messages::from_can_message(Id::Standard(sid), data).map_err(|_| ())
        });
        let decoded = match decoded {
            Ok(m) if data.len() == usize::from(spec.dlc) => m,
            _ => {
                let c = &mut self.stats.messages[idx];
                c.bad_length = c.bad_length.wrapping_add(1);
                self.controller.handle(now, Input::CorruptFrame);
                self.drain(now);
                return None;
            }
        };
        let index = can::frame_index(idx, data);
        if let Some(data_id) = spec.e2e_data_id {
            let status = self.watch_mut(idx, index).checker.check(data_id, data);
            let c = &mut self.stats.messages[idx];
            match status {
                E2eStatus::Initial | E2eStatus::Ok | E2eStatus::OkSomeLost { .. } => {}
                E2eStatus::WrongCrc => {
                    c.crc_errors = c.crc_errors.wrapping_add(1);
                    self.controller.handle(now, Input::CorruptFrame);
                    self.drain(now);
                    return None;
                }
                E2eStatus::Repeated => {
                    c.repeated = c.repeated.wrapping_add(1);
                    return None;
                }
                E2eStatus::WrongSequence => {
                    c.out_of_sequence = c.out_of_sequence.wrapping_add(1);
                    return None;
                }
            }
        }
        let c = &mut self.stats.messages[idx];
        c.accepted = c.accepted.wrapping_add(1);
        let configured = match (can::indexed(idx).map(|m| m.by), index) {
            (Some(IndexedBy::Circuit), Some(i)) => usize::from(i) < self.n_circuits,
            (Some(IndexedBy::Socket), Some(i)) => usize::from(i) < self.n_sockets,
            _ => true,
        };
        if !configured {
            self.stats.index_out_of_range = self.stats.index_out_of_range.wrapping_add(1);
            return None;
        }
        {
            let w = self.watch_mut(idx, index);
            w.last_ok = Some(now);
            w.lost = false;
        }
        self.act(now, decoded)
    }

    fn act(&mut self, now: Millis, m: msg::Messages) -> Option<(u32, u8)> {
        use msg::Messages as M;
        match m {
            M::TimeSync(s) => return Some((s.sim_time_ms(), s.p1_telegrams_sent())),
            M::PackStatus(p) => {
                self.pack = Some((p.pack_voltage(), p.pack_current()));
                self.feed_pack(now);
            }
            M::CellExtremes(c) => {
                self.cells = Some([
                    c.cell_voltage_min(),
                    c.cell_voltage_max(),
                    c.cell_temperature_min(),
                    c.cell_temperature_max(),
                ]);
                self.feed_pack(now);
            }
            M::BusStatus(b) => {
                self.feed(
                    now,
                    Input::Bus {
                        bus_voltage_v: b.bus_voltage(),
                    },
                );
                self.feed(
                    now,
                    Input::Charger {
                        ac_power_w: f32::from(b.charger_ac_power()),
                    },
                );
                self.feed(
                    now,
                    Input::Inverter {
                        ac_power_w: f32::from(b.inverter_ac_power()),
                    },
                );
            }
            M::CircuitStatus(c) => {
                let i = usize::from(c.circuit_index()) % MAX_CIRCUITS;
                self.circuits[i] = Some(CircuitMeasurement {
                    power_w: c.circuit_power(),
                    current_a: c.circuit_current(),
                });
                let n = self.n_circuits;
                let complete = self.circuits[..n].iter().all(Option::is_some)
                    && !self.circuit_rx[..n].iter().any(|w| w.lost);
                if complete {
                    let mut v = heapless::Vec::new();
                    for m in self.circuits[..n].iter().flatten() {
                        let _ = v.push(*m);
                    }
                    self.feed(now, Input::Circuits(v));
                }
            }
            M::PvStatus(p) => self.feed(
                now,
                Input::Pv {
                    power_w: f32::from(p.pv_available_power()),
                },
            ),
            M::MainsStatus(s) => {
                let present = s.mains_present();
                self.mains_present = Some(present);
                self.feed(now, Input::Mains { present });
            }
            M::SocketStatus(s) => {
                let i = usize::from(s.socket_index()) % MAX_SOCKETS;
                self.sockets[i] = socket_input(&s);
                let mut v = heapless::Vec::new();
                for s in &self.sockets[..self.n_sockets] {
                    let _ = v.push(*s);
                }
                self.feed(now, Input::Sockets(v));
            }
            M::PlantHeartbeat(h) => self.stats.plant_state = Some(h.plant_state_raw_val()),
            // Controller messages never reach here (filtered by sender).
            M::BatteryCmd(_)
            | M::ConverterCmd(_)
            | M::PvCmd(_)
            | M::SwitchCmd(_)
            | M::SocketCapCmd(_)
            | M::CtrlHeartbeat(_) => {}
        }
        None
    }

    fn feed(&mut self, now: Millis, input: Input<'_>) {
        self.controller.handle(now, input);
        self.drain(now);
    }

    fn feed_pack(&mut self, now: Millis) {
        let (Some((v, a)), Some([vmin, vmax, tmin, tmax])) = (self.pack, self.cells) else {
            return;
        };
        if self.rx[PACK_STATUS].lost || self.rx[CELL_EXTREMES].lost {
            return;
        }
        self.feed(
            now,
            Input::Pack(crate::controller::PackMeasurement {
                pack_voltage_v: v,
                pack_current_a: a,
                cell_voltage_min_v: vmin,
                cell_voltage_max_v: vmax,
                cell_temperature_min_c: tmin,
                cell_temperature_max_c: tmax,
            }),
        );
    }

    fn meter_update(&mut self, t: &Telegram) -> MeterUpdate {
        let delivered = i64::from(t.power_delivered_w);
        let returned = i64::from(t.power_returned_w);
        let meter = MeterMeasurement {
            grid_power_w: (delivered - returned) as f32,
            tariff: t.tariff.min(u16::from(u8::MAX)) as u8,
            mains_present: true,
            import_wh: t.energy_delivered_wh.iter().map(|&x| f64::from(x)).sum(),
            export_wh: t.energy_returned_wh.iter().map(|&x| f64::from(x)).sum(),
        };
        let clock = if t.timestamp.is_valid() {
            let ts = t.timestamp;
            let days = days_from_civil(2000 + i64::from(ts.year), ts.month, ts.day);
            let local_s = days * 86_400 + i64::from(ts.seconds_of_day());
            let offset_min = i64::from(self.cfg.utc_offset_min) + if ts.summer { 60 } else { 0 };
            let utc_s = (local_s - offset_min * 60).max(0) as u64;
            Some((
                utc_s,
                LocalTime {
                    seconds_of_day: ts.seconds_of_day(),
                    // 1970-01-01 was a Thursday (3 with Monday = 0).
                    weekday: (days + 3).rem_euclid(7) as u8,
                },
            ))
        } else {
            self.stats.p1_bad_timestamp += 1;
            None
        };
        MeterUpdate { meter, clock }
    }

    fn deliver_meter(&mut self, now: Millis, u: MeterUpdate) {
        if let Some((utc_s, local)) = u.clock {
            self.feed(now, Input::Clock { utc_s, local });
        }
        let mut meter = u.meter;
        meter.mains_present = self.mains_present.unwrap_or(true);
        self.feed(now, Input::Meter(meter));
        self.meter_at = Some(now);
        self.meter_stale = false;
    }

    /// Deadlines and meter staleness at `now`.
    fn supervise(&mut self, now: Millis) {
        let started = self.started;
        let mut missed: [u32; MESSAGE_COUNT] = [0; MESSAGE_COUNT];
        let mut check = |idx: usize, w: &mut Watch| {
            let deadline = u64::from(MESSAGES[idx].deadline_ms);
            if !w.lost && now.since(w.last_ok.unwrap_or(started)) > deadline {
                w.lost = true;
                w.checker.reset();
                missed[idx] += 1;
            }
        };
        for (idx, spec) in MESSAGES.iter().enumerate() {
            if spec.sender != can::Node::Plant || spec.deadline_ms == 0 {
                continue;
            }
            self.watches_mut(idx).iter_mut().for_each(|w| check(idx, w));
        }
        for (c, m) in self.stats.messages.iter_mut().zip(missed) {
            c.deadline_misses = c.deadline_misses.wrapping_add(m);
        }
        let mut lost = false;
        self.for_each_watch(|idx, _, w| {
            if w.lost && MESSAGES[idx].e2e_data_id.is_some() {
                lost = true;
            }
        });
        if lost != self.link_lost {
            self.link_lost = lost;
            if lost {
                self.stats.link_lost_episodes += 1;
                self.feed(now, Input::LinkLost);
            } else {
                self.feed(now, Input::LinkRestored);
            }
        }
        let meter_since = self.meter_at.unwrap_or(started);
        if !self.meter_stale && now.since(meter_since) > u64::from(self.cfg.meter_deadline_ms) {
            self.meter_stale = true;
            self.stats.meter_stale_episodes += 1;
            self.feed(now, Input::MeterLost);
        }
    }

    // -----------------------------------------------------------------------
    // Transmit

    /// Moves the controller's outputs to the event queue, keeping the
    /// latest plant command.
    fn drain(&mut self, now: Millis) {
        while let Some(o) = self.controller.poll_output() {
            if let Output::Plant(c) = &o {
                if self.command.is_none() {
                    for idx in COMMANDS {
                        self.tx_slots[idx].next_due = Some(now);
                    }
                }
                self.command = Some(c.clone());
            }
            if self.events.push_back(o).is_err() {
                self.stats.events_dropped = self.stats.events_dropped.wrapping_add(1);
            }
        }
    }

    fn push_tx(&mut self, idx: usize, mut data: [u8; 8]) {
        let spec = MESSAGES[idx];
        if let Some(data_id) = spec.e2e_data_id {
            self.tx_slots[idx].sender.protect(data_id, &mut data);
        }
        let frame = TxFrame {
            id: spec.id,
            len: spec.dlc.min(8),
            data,
        };
        if self.tx.push_back(frame).is_err() {
            self.stats.tx_queue_overflows = self.stats.tx_queue_overflows.wrapping_add(1);
        } else {
            let c = &mut self.stats.messages[idx];
            c.sent = c.sent.wrapping_add(1);
        }
    }

    /// Queues every command frame due at or before `now` (one each).
    fn send_due(&mut self, now: Millis) {
        let Some(cmd) = self.command.clone() else {
            return;
        };
        for idx in COMMANDS {
            if self.tx_slots[idx].next_due.is_none_or(|d| d > now) {
                continue;
            }
            bump_due(&mut self.tx_slots[idx], idx, now);
            match idx {
                BATTERY_CMD => {
                    if let Some(data) = battery_frame(&cmd) {
                        self.push_tx(idx, data);
                    }
                }
                CONVERTER_CMD => {
                    if let Some(data) = converter_frame(&cmd) {
                        self.push_tx(idx, data);
                    }
                }
                PV_CMD => {
                    if let Some(data) = pv_frame(&cmd) {
                        self.push_tx(idx, data);
                    }
                }
                SWITCH_CMD => {
                    if let Some(data) = switch_frame(&cmd) {
                        self.push_tx(idx, data);
                    }
                }
                _ => {
                    for i in 0..self.n_sockets {
                        if let Some(data) = socket_cap_frame(&cmd, i) {
                            self.push_tx(idx, data);
                        }
                    }
                }
            }
        }
    }

    fn send_heartbeat(&mut self, sync_echo_ms: u32) {
        let state = if self.command.is_none() {
            0
        } else {
            match self.controller.protection().reason {
                ProtectionReason::Normal => 1,
                ProtectionReason::Derated => 2,
                ProtectionReason::Fault(_) => 3,
            }
        };
        let Some(mut f) = blank::<msg::CtrlHeartbeat>() else {
            return;
        };
        f.set_ctrl_state_raw_val(state);
        f.set_sync_echo_ms_raw_val(sync_echo_ms);
        f.set_ctrl_e2e_rejects_raw_val(self.stats.e2e_rejects().min(255) as u8);
        f.set_meter_stale_raw_val(u8::from(self.meter_stale));
        f.set_link_timeout_raw_val(u8::from(self.link_lost));
        self.push_tx(CTRL_HEARTBEAT, *f.raw());
    }
}

/// Next due time: one cycle on, or one cycle after `now` if that is past.
fn bump_due(slot: &mut TxSlot, idx: usize, now: Millis) {
    let cycle = u64::from(MESSAGES[idx].cycle_ms.max(1));
    let next = slot.next_due.unwrap_or(now).plus_ms(cycle);
    slot.next_due = Some(if next <= now {
        now.plus_ms(cycle)
    } else {
        next
    });
}

/// An all-zero message of a generated type (8 bytes always decode).
fn blank<T: for<'a> TryFrom<&'a [u8]>>() -> Option<T> {
    T::try_from(&[0u8; 8][..]).ok()
}

/// A power (or other magnitude) in raw units of `per_unit`, clamped to u16.
fn raw_u16(value: f32, per_unit: f32) -> u16 {
    let x = value / per_unit;
    if x.is_finite() {
        libm::roundf(x).clamp(0.0, 65535.0) as u16
    } else {
        0
    }
}

fn battery_frame(c: &PlantCommand) -> Option<[u8; 8]> {
    let mut f = blank::<msg::BatteryCmd>()?;
    f.set_battery_enabled_raw_val(u8::from(c.battery.enabled));
    f.set_battery_standby_raw_val(u8::from(c.battery.standby));
    f.set_battery_charge_limit_raw_val(raw_u16(c.battery.charge_limit_w, 1.0));
    f.set_battery_discharge_limit_raw_val(raw_u16(c.battery.discharge_limit_w, 1.0));
    f.set_battery_function_raw_val(function_code(c.battery.reason.function));
    Some(*f.raw())
}

fn converter_frame(c: &PlantCommand) -> Option<[u8; 8]> {
    let mut f = blank::<msg::ConverterCmd>()?;
    f.set_charger_enabled_raw_val(u8::from(c.charger.enabled));
    f.set_charger_boost_raw_val(u8::from(c.charger.boost));
    f.set_inverter_enabled_raw_val(u8::from(c.inverter.enabled));
    f.set_inverter_export_enabled_raw_val(u8::from(c.inverter.export_enabled));
    f.set_inverter_request_ac_power_raw_val(raw_u16(c.inverter.request_ac_w, 1.0));
    f.set_charger_function_raw_val(function_code(c.charger.reason.function));
    f.set_inverter_function_raw_val(function_code(c.inverter.reason.function));
    Some(*f.raw())
}

fn pv_frame(c: &PlantCommand) -> Option<[u8; 8]> {
    let mut f = blank::<msg::PvCmd>()?;
    f.set_pv_cap_active_raw_val(u8::from(c.pv.cap_w.is_some()));
    f.set_pv_cap_raw_val(c.pv.cap_w.map_or(0, |w| raw_u16(w, 1.0)));
    f.set_pv_function_raw_val(function_code(c.pv.reason.function));
    Some(*f.raw())
}

fn switch_frame(c: &PlantCommand) -> Option<[u8; 8]> {
    let mask = |v: &[crate::controller::SwitchCommand]| {
        v.iter()
            .take(16)
            .enumerate()
            .filter(|(_, s)| s.on)
            .fold(0u16, |m, (i, _)| m | (1 << i))
    };
    let mut f = blank::<msg::SwitchCmd>()?;
    f.set_circuits_on_raw_val(mask(&c.circuits));
    f.set_sockets_on_raw_val(mask(&c.sockets));
    Some(*f.raw())
}

fn socket_cap_frame(c: &PlantCommand, index: usize) -> Option<[u8; 8]> {
    let s = c.sockets.get(index)?;
    let mut f = blank::<msg::SocketCapCmd>()?;
    f.set_cap_socket_index_raw_val((index & 0x0F) as u8);
    f.set_socket_cap_active_raw_val(u8::from(s.power_cap_w.is_some()));
    f.set_socket_cap_raw_val(s.power_cap_w.map_or(0, |w| raw_u16(w, 0.1)));
    f.set_socket_function_raw_val(function_code(s.reason.function));
    Some(*f.raw())
}

/// What a `SocketStatus` frame says, as the selective-supply input. The
/// contract's power maps to the fixed USB-PD voltage it implies (≤ 15 W:
/// 5 V, ≤ 27 W: 9 V, ≤ 45 W: 15 V, ≤ 100 W: 20 V, above: 28 V EPR) and the
/// current that gives that power; the 16-bit device id is the product id
/// (vendor 0); raw 255 device SOC = unknown.
fn socket_input(s: &msg::SocketStatus) -> SocketInput {
    let contract_w = f32::from(s.socket_contract_power());
    let contract = (contract_w > 0.0).then(|| {
        let voltage_v = if contract_w <= 15.0 {
            5.0
        } else if contract_w <= 27.0 {
            9.0
        } else if contract_w <= 45.0 {
            15.0
        } else if contract_w <= 100.0 {
            20.0
        } else {
            28.0
        };
        PdContract {
            voltage_v,
            max_current_a: contract_w / voltage_v,
        }
    });
    let sink = f32::from(s.socket_sink_max_power());
    let id = s.socket_device_id();
    SocketInput {
        plugged: s.socket_plugged(),
        contract,
        sink_max_w: (sink > 0.0).then_some(sink),
        device_id: (id != 0).then_some(DeviceId {
            vendor_id: 0,
            product_id: id,
        }),
        battery_soc: (s.socket_device_soc_raw_val() != 255)
            .then(|| (s.socket_device_soc() / 100.0).clamp(0.0, 1.0)),
        power_w: s.socket_power(),
        wake: s.socket_wake(),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let m = i64::from(month);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::wire::can::index::{
        BUS_STATUS, CIRCUIT_STATUS, MAINS_STATUS, PLANT_HEARTBEAT, PV_STATUS, SOCKET_CAP_CMD,
        SOCKET_STATUS,
    };

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        // 2026-11-26 is a Thursday.
        let d = days_from_civil(2026, 11, 26);
        assert_eq!((d + 3).rem_euclid(7), 3);
    }

    #[test]
    fn message_indices_match_the_generated_ids() {
        let pairs = [
            (TIME_SYNC, msg::TimeSync::MESSAGE_ID),
            (PACK_STATUS, msg::PackStatus::MESSAGE_ID),
            (CELL_EXTREMES, msg::CellExtremes::MESSAGE_ID),
            (BUS_STATUS, msg::BusStatus::MESSAGE_ID),
            (CIRCUIT_STATUS, msg::CircuitStatus::MESSAGE_ID),
            (PV_STATUS, msg::PvStatus::MESSAGE_ID),
            (MAINS_STATUS, msg::MainsStatus::MESSAGE_ID),
            (SOCKET_STATUS, msg::SocketStatus::MESSAGE_ID),
            (PLANT_HEARTBEAT, msg::PlantHeartbeat::MESSAGE_ID),
            (BATTERY_CMD, msg::BatteryCmd::MESSAGE_ID),
            (CONVERTER_CMD, msg::ConverterCmd::MESSAGE_ID),
            (PV_CMD, msg::PvCmd::MESSAGE_ID),
            (SWITCH_CMD, msg::SwitchCmd::MESSAGE_ID),
            (SOCKET_CAP_CMD, msg::SocketCapCmd::MESSAGE_ID),
            (CTRL_HEARTBEAT, msg::CtrlHeartbeat::MESSAGE_ID),
        ];
        for (idx, id) in pairs {
            let Id::Standard(sid) = id else {
                panic!("standard ids only")
            };
            assert_eq!(MESSAGES[idx].id, sid.as_raw(), "{}", MESSAGES[idx].name);
        }
    }

    /// The DBC's `Function` value tables name exactly `Function::name()`
    /// at the raw values the node sends.
    #[test]
    fn dbc_function_value_tables_equal_function_names() {
        let dbc = include_str!("../can/maslow.dbc");
        let mut tables = 0;
        for line in dbc.lines().filter(|l| l.starts_with("VAL_ ")) {
            let mut words = line.split_whitespace();
            let (_, _, signal) = (words.next(), words.next(), words.next());
            let Some(signal) = signal else { continue };
            if !signal.ends_with("Function") {
                continue;
            }
            tables += 1;
            let rest: std::vec::Vec<&str> = line
                .split_once(signal)
                .map(|(_, r)| r)
                .unwrap_or("")
                .trim_end_matches(';')
                .split('"')
                .collect();
            // rest = [" 0 ", "protection", " 1 ", "estimation", ...]
            let mut pairs = 0;
            for pair in rest.chunks(2) {
                let [code, name] = pair else { continue };
                let code: u8 = code.trim().parse().expect("raw value");
                let f = function_from_code(code).expect("code in table");
                assert_eq!(f.name(), *name, "{signal} value {code}");
                assert_eq!(function_code(f), code);
                pairs += 1;
            }
            assert_eq!(pairs, FUNCTIONS.len(), "{signal} lists every function");
        }
        assert_eq!(tables, 5, "Battery, Charger, Inverter, Pv, Socket");
    }

    #[test]
    fn link_config_is_validated() {
        assert!(LinkConfig::default().validate().is_ok());
        let bad = LinkConfig {
            e2e_max_delta: 0,
            ..LinkConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = LinkConfig {
            meter_deadline_ms: 0,
            ..LinkConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = LinkConfig {
            utc_offset_min: 5000,
            ..LinkConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn raw_scaling_saturates_and_rejects_nan() {
        assert_eq!(raw_u16(1234.4, 1.0), 1234);
        assert_eq!(raw_u16(12.34, 0.1), 123);
        assert_eq!(raw_u16(-5.0, 1.0), 0);
        assert_eq!(raw_u16(1e9, 1.0), 65535);
        assert_eq!(raw_u16(f32::NAN, 1.0), 0);
    }
}
