//! Demand management [claims 1, 9, 20].
//!
//! Demand signals arrive from the remote server (dispatch) or are derived
//! from the smart meter's tariff indicator (P1 telegram: 1 = low, 2 =
//! normal/high) by configured [`TariffRule`]s. Each signal is **acknowledged
//! or rejected with a reason** ([`Ack`]); accepted signals sit in a bounded
//! table until they end, when a [`ComplianceReport`] (requested vs delivered)
//! goes into a bounded ring.
//!
//! [`DemandManager::update`] yields the active [`DemandCommand`]. Precedence,
//! per category:
//! - **Battery** (Charge/Discharge): among the active signals, a
//!   `RemoteServer` signal wins over any `SmartMeter` one; within one source
//!   the most recently submitted wins. The winner is clipped to the
//!   protection limits in the [`Context`], a discharge to zero when no energy
//!   is left above the resilience reserve, and a charge to the headroom
//!   under an active import limit; each clip is named in [`BatteryReason`].
//! - **Import limit** (LimitImport): same rule (server over meter, newest
//!   first). With no battery winner, or a discharge too small, the battery
//!   is asked to discharge `house AC load − limit` plus the DC circuits
//!   (within limits and reserve). The house AC load is import plus what the
//!   assembly puts into the AC wiring, so PV feeding the inverter counts:
//!   the target does not fall away once the limit is met.
//! - **Loads** (ShedLoads / DeferLoads): the circuit masks of all active
//!   signals are OR-ed (asking for more shedding is always allowed).
//! - **Cancel** removes the target at once (its report ends `Cancelled`); a
//!   meter-derived Cancel cannot cancel a server signal.
//!
//! Sign conventions: battery power positive = discharge; grid power positive
//! = import. Sans-IO: time arrives as [`Millis`].

use crate::config::{check_range, POSITIVE};
use crate::num::non_negative;
use crate::{ConfigError, LocalTime, Millis};
use serde::Deserialize;

/// Capacity of the table of pending/active signals.
pub const MAX_SIGNALS: usize = 16;
/// Capacity of the compliance report ring (oldest dropped when full).
pub const MAX_REPORTS: usize = 16;
/// Capacity of the tariff rule list.
pub const MAX_TARIFF_RULES: usize = 8;
/// Signal ids generated for tariff-derived signals have this bit set.
pub const METER_ID_BIT: u32 = 0x8000_0000;

/// Where a demand signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalSource {
    /// Derived from the smart meter's tariff indicator.
    SmartMeter,
    /// Sent by the remote server (verified upstream).
    RemoteServer,
}

/// What a demand signal asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalKind {
    /// Charge the battery at `power_w` (W, > 0).
    Charge { power_w: f32 },
    /// Discharge the battery at `power_w` (W, > 0).
    Discharge { power_w: f32 },
    /// Keep grid import at or below `max_import_w` (W, ≥ 0).
    LimitImport { max_import_w: f32 },
    /// Switch off the circuits in `circuit_mask` (bit i = circuit i).
    ShedLoads { circuit_mask: u16 },
    /// Defer (postpone starting / end-device charging on) the circuits in
    /// `circuit_mask`.
    DeferLoads { circuit_mask: u16 },
    /// Cancel the signal with id `id` (takes effect on submit; the Cancel's
    /// own `start`/`duration_ms` are ignored).
    Cancel { id: u32 },
}

/// A demand signal: a request valid over `[start, start + duration_ms)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandSignal {
    /// Sender-chosen id, echoed in the [`Ack`] and the report.
    pub id: u32,
    pub source: SignalSource,
    pub kind: SignalKind,
    /// When it takes effect (controller time).
    pub start: Millis,
    /// How long it lasts, ms (> 0, ≤ `max_duration_ms`).
    pub duration_ms: u64,
}

impl DemandSignal {
    /// End of validity (exclusive).
    pub fn end(&self) -> Millis {
        self.start.plus_ms(self.duration_ms)
    }
}

/// Why a signal was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// It would have ended already.
    Expired,
    /// It starts more than `max_lead_ms` ahead.
    StartsTooFarAhead,
    /// The power asked for exceeds the protection limit in the context.
    ExceedsPowerLimit,
    /// A discharge with no energy left above the resilience reserve.
    WouldBreachReserve,
    /// The id is in use by a different live signal, or a meter signal tried
    /// to cancel a server signal.
    Conflicting,
    /// Cancel of an id that is not live.
    UnknownId,
    /// The signal table is full.
    TableFull,
    /// NaN/inf/negative power, zero power for charge/discharge, zero or
    /// over-long duration.
    InvalidValue,
}

/// The answer to every submitted signal: exactly one per submit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    Accepted { id: u32 },
    Rejected { id: u32, reason: RejectReason },
}

impl Ack {
    pub fn id(&self) -> u32 {
        match *self {
            Ack::Accepted { id } | Ack::Rejected { id, .. } => id,
        }
    }
    pub fn is_accepted(&self) -> bool {
        matches!(self, Ack::Accepted { .. })
    }
}

/// Limits and measurements the manager is bounded by, from protection,
/// resilience, estimation and the meter. NaN in a limit counts as zero (the
/// safe side); NaN in a measurement counts as "not measured".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    /// Protection's present charge power limit, W (≥ 0).
    pub max_charge_w: f32,
    /// Protection's present discharge power limit, W (≥ 0).
    pub max_discharge_w: f32,
    /// Battery energy above the resilience reserve, Wh.
    pub energy_above_reserve_wh: f32,
    /// Measured grid power, W (positive = import).
    pub grid_power_w: f32,
    /// Measured battery power, W (positive = discharge).
    pub battery_power_w: f32,
    /// What the assembly puts into the house's AC wiring, W: the
    /// inverter's output less the charger's draw.
    pub assembly_ac_w: f32,
    /// What the assembly's DC circuits draw, W (NaN counts as nothing).
    pub dc_load_w: f32,
}

impl Context {
    fn limit(x: f32) -> f32 {
        if x.is_finite() && x > 0.0 {
            x
        } else {
            0.0
        }
    }
    fn max_charge(&self) -> f32 {
        Self::limit(self.max_charge_w)
    }
    fn max_discharge(&self) -> f32 {
        Self::limit(self.max_discharge_w)
    }
    fn reserve_left(&self) -> bool {
        self.energy_above_reserve_wh.is_finite() && self.energy_above_reserve_wh > 0.0
    }
    /// The household's AC load, W: import plus what the assembly puts
    /// into the AC wiring. Unknown while the import is. This is the load
    /// whatever feeds the inverter (battery or PV), so a limit reached
    /// with PV's help stays reached when the PV is counted.
    fn house_ac_load_w(&self) -> Option<f32> {
        let l = self.grid_power_w + self.assembly_ac_w;
        l.is_finite().then_some(l)
    }

    /// The assembly's output that keeps import within `limit_w`, W, in the
    /// terms of a discharge target (AC share plus the DC circuits): none
    /// while the house is within the limit; unknown while the load is.
    fn needed_for_import_limit(&self, limit_w: f32) -> Option<f32> {
        let ac_w = (self.house_ac_load_w()? - limit_w).max(0.0);
        Some(if ac_w > 0.0 {
            ac_w + non_negative(self.dc_load_w)
        } else {
            0.0
        })
    }
}

/// Action a tariff rule maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TariffAction {
    /// Charge at `power_w`.
    Charge,
    /// Discharge at `power_w`.
    Discharge,
    /// Limit import to `power_w`.
    LimitImport,
    /// Shed the circuits in `circuit_mask`.
    ShedLoads,
    /// Defer the circuits in `circuit_mask`.
    DeferLoads,
}

/// Maps a tariff indicator within a local-time window to a signal.
/// The window is `[start_s, end_s)` in seconds of day; `start_s > end_s`
/// wraps midnight; `start_s == end_s` means all day.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffRule {
    /// Tariff indicator value (1 = low, 2 = normal/high).
    pub tariff: u8,
    #[serde(default)]
    pub start_s: u32,
    #[serde(default)]
    pub end_s: u32,
    pub action: TariffAction,
    /// Power for `charge`/`discharge`, import limit for `limit_import`, W.
    #[serde(default)]
    pub power_w: f32,
    /// Circuits for `shed_loads`/`defer_loads`.
    #[serde(default)]
    pub circuit_mask: u16,
}

impl TariffRule {
    fn kind(&self) -> SignalKind {
        let power_w = self.power_w;
        let circuit_mask = self.circuit_mask;
        match self.action {
            TariffAction::Charge => SignalKind::Charge { power_w },
            TariffAction::Discharge => SignalKind::Discharge { power_w },
            TariffAction::LimitImport => SignalKind::LimitImport {
                max_import_w: power_w,
            },
            TariffAction::ShedLoads => SignalKind::ShedLoads { circuit_mask },
            TariffAction::DeferLoads => SignalKind::DeferLoads { circuit_mask },
        }
    }

    /// Seconds from `s` until the window ends, if `s` is inside it.
    fn remaining_s(&self, s: u32) -> Option<u32> {
        let (a, b) = (self.start_s, self.end_s);
        if a == b {
            return Some(86_400u32.saturating_sub(s).max(1));
        }
        let inside = if a < b {
            s >= a && s < b
        } else {
            s >= a || s < b
        };
        if !inside {
            return None;
        }
        Some(
            if s < b {
                b - s
            } else {
                86_400u32.saturating_sub(s) + b
            }
            .max(1),
        )
    }
}

/// Configuration of demand management (TOML table `[demand]`).
///
/// ```toml
/// [demand]
/// max_lead_ms = 86400000
/// max_duration_ms = 86400000
/// import_tolerance_w = 50.0
/// tariff_retry_ms = 60000
/// [[demand.tariff_rules]]
/// tariff = 2
/// start_s = 61200   # 17:00
/// end_s = 75600     # 21:00
/// action = "limit_import"
/// power_w = 1500.0
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemandConfig {
    /// A signal may start at most this far ahead, ms.
    #[serde(default = "default_day_ms")]
    pub max_lead_ms: u64,
    /// A signal may last at most this long, ms.
    #[serde(default = "default_day_ms")]
    pub max_duration_ms: u64,
    /// Import within `limit + import_tolerance_w` counts as compliant, W.
    #[serde(default = "default_tolerance_w")]
    pub import_tolerance_w: f32,
    /// After a tariff-derived signal is rejected (e.g. no energy above the
    /// reserve), the same rule is retried at most this often, ms.
    #[serde(default = "default_tariff_retry_ms")]
    pub tariff_retry_ms: u64,
    /// Tariff indicator → signal rules; the first matching rule applies.
    #[serde(default)]
    pub tariff_rules: heapless::Vec<TariffRule, MAX_TARIFF_RULES>,
}

fn default_day_ms() -> u64 {
    86_400_000
}
fn default_tariff_retry_ms() -> u64 {
    60_000
}
fn default_tolerance_w() -> f32 {
    50.0
}

impl Default for DemandConfig {
    fn default() -> Self {
        DemandConfig {
            max_lead_ms: default_day_ms(),
            max_duration_ms: default_day_ms(),
            import_tolerance_w: default_tolerance_w(),
            tariff_retry_ms: default_tariff_retry_ms(),
            tariff_rules: heapless::Vec::new(),
        }
    }
}

impl DemandConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("max_duration_ms", self.max_duration_ms, 1..)?;
        check_range("import_tolerance_w", self.import_tolerance_w, 0.0..)?;
        for r in &self.tariff_rules {
            let rule =
                |e: ConfigError| e.with_context(format_args!("rule for tariff {}", r.tariff));
            check_range("tariff_rules.start_s", r.start_s, ..=86_400).map_err(rule)?;
            check_range("tariff_rules.end_s", r.end_s, ..=86_400).map_err(rule)?;
            match r.action {
                TariffAction::Charge | TariffAction::Discharge => {
                    check_range("tariff_rules.power_w", r.power_w, POSITIVE).map_err(rule)?
                }
                TariffAction::LimitImport => {
                    check_range("tariff_rules.power_w", r.power_w, 0.0..).map_err(rule)?
                }
                TariffAction::ShedLoads | TariffAction::DeferLoads => {}
            }
        }
        Ok(())
    }
}

/// Why the battery target is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatteryReason {
    /// No demand signal concerns the battery.
    Idle,
    /// The winning Charge/Discharge as requested.
    AsRequested,
    /// Clipped to protection's power limit.
    ClippedByPowerLimit,
    /// Discharge stopped: no energy left above the resilience reserve.
    ClippedByReserve,
    /// Charge clipped to the headroom under the active import limit.
    ClippedByImportLimit,
    /// Discharging to keep import within the active limit.
    ToMeetImportLimit,
    /// An import limit is active but the load cannot be measured: no charge.
    ImportLimitUnmeasured,
}

/// The active demand command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandCommand {
    /// Battery power target, W (positive = discharge, negative = charge);
    /// `None` = no demand signal concerns the battery. Always finite, within
    /// the context's limits, and never positive without energy above the
    /// reserve.
    pub battery_w: Option<f32>,
    pub battery_reason: BatteryReason,
    /// Id of the signal the battery target comes from.
    pub battery_signal: Option<u32>,
    /// Grid import limit to respect, W (≥ 0): other functions cap charging
    /// to stay within it.
    pub import_limit_w: Option<f32>,
    pub import_limit_signal: Option<u32>,
    /// Circuits to switch off (bit i = circuit i).
    pub shed_mask: u16,
    /// Circuits to defer.
    pub defer_mask: u16,
    /// Number of signals in the table (pending or active).
    pub live_signals: u8,
}

/// How a signal ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Ran its full duration.
    Completed,
    /// Removed by a Cancel (or a tariff change for meter signals).
    Cancelled,
}

/// Requested vs delivered for one signal, produced when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComplianceReport {
    pub id: u32,
    pub source: SignalSource,
    pub kind: SignalKind,
    pub end: EndReason,
    /// When it ended (controller time).
    pub ended_at: Millis,
    /// Time it was active, ms.
    pub active_ms: u64,
    /// Time it was the winning battery/import-limit signal, ms.
    pub in_control_ms: u64,
    /// Time its battery target was clipped (limits, reserve, import limit).
    pub clipped_ms: u64,
    /// Charge/Discharge: requested energy over the active time, Wh.
    pub requested_wh: f64,
    /// Charge/Discharge: measured battery energy in the requested direction
    /// while it was in control, Wh.
    pub delivered_wh: f64,
    /// LimitImport: fraction of the measured active time with import ≤
    /// limit + tolerance (1.0 when never measured).
    pub within_limit_fraction: f32,
    /// LimitImport: largest measured import above the limit, W.
    pub max_excess_w: f32,
    /// Active time without a valid measurement, ms.
    pub unmeasured_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    signal: DemandSignal,
    seq: u32,
    active_ms: u64,
    in_control_ms: u64,
    clipped_ms: u64,
    requested_wh: f64,
    delivered_wh: f64,
    measured_ms: u64,
    within_ms: u64,
    max_excess_w: f32,
    unmeasured_ms: u64,
}

impl Entry {
    fn report(&self, end: EndReason, at: Millis) -> ComplianceReport {
        ComplianceReport {
            id: self.signal.id,
            source: self.signal.source,
            kind: self.signal.kind,
            end,
            ended_at: at,
            active_ms: self.active_ms,
            in_control_ms: self.in_control_ms,
            clipped_ms: self.clipped_ms,
            requested_wh: self.requested_wh,
            delivered_wh: self.delivered_wh,
            within_limit_fraction: if self.measured_ms == 0 {
                1.0
            } else {
                (self.within_ms as f64 / self.measured_ms as f64) as f32
            },
            max_excess_w: self.max_excess_w,
            unmeasured_ms: self.unmeasured_ms,
        }
    }
}

/// The demand manager's state.
#[derive(Debug, Clone)]
pub struct DemandManager {
    config: DemandConfig,
    table: heapless::Vec<Entry, MAX_SIGNALS>,
    reports: heapless::Deque<ComplianceReport, MAX_REPORTS>,
    dropped_reports: u32,
    next_seq: u32,
    last_update: Option<Millis>,
    last_command: Option<DemandCommand>,
    meter_rule: Option<(usize, u32)>,
    meter_rejected: Option<(usize, Millis)>,
    next_meter_id: u32,
}

fn power_ok(p: f32) -> bool {
    p.is_finite() && p > 0.0
}

fn ms_to_h(ms: u64) -> f64 {
    ms as f64 / 3_600_000.0
}

impl DemandManager {
    /// A new manager with an empty table. The config should have passed
    /// [`DemandConfig::validate`].
    pub fn new(config: DemandConfig) -> Self {
        DemandManager {
            config,
            table: heapless::Vec::new(),
            reports: heapless::Deque::new(),
            dropped_reports: 0,
            next_seq: 0,
            last_update: None,
            last_command: None,
            meter_rule: None,
            meter_rejected: None,
            next_meter_id: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DemandConfig {
        &self.config
    }

    /// Signals in the table (pending or active), in submission order.
    pub fn live(&self) -> impl Iterator<Item = &DemandSignal> {
        self.table.iter().map(|e| &e.signal)
    }

    /// Takes the oldest compliance report.
    pub fn pop_report(&mut self) -> Option<ComplianceReport> {
        self.reports.pop_front()
    }

    /// Reports dropped because the ring was full.
    pub fn dropped_reports(&self) -> u32 {
        self.dropped_reports
    }

    fn push_report(&mut self, r: ComplianceReport) {
        if self.reports.is_full() {
            let _ = self.reports.pop_front();
            self.dropped_reports = self.dropped_reports.saturating_add(1);
        }
        let _ = self.reports.push_back(r);
    }

    fn retire_ended(&mut self, now: Millis) {
        let mut k = 0;
        while k < self.table.len() {
            if self.table[k].signal.end() <= now {
                let e = self.table.remove(k);
                let at = e.signal.end();
                self.push_report(e.report(EndReason::Completed, at));
            } else {
                k += 1;
            }
        }
    }

    /// Validates a signal and, if accepted, adds it to the table (a Cancel
    /// removes its target). Returns exactly one [`Ack`], echoing `signal.id`.
    pub fn submit(&mut self, now: Millis, signal: DemandSignal, ctx: &Context) -> Ack {
        let id = signal.id;
        let reject = |reason| Ack::Rejected { id, reason };
        self.advance(now, ctx);
        if let SignalKind::Cancel { id: target } = signal.kind {
            let Some(pos) = self.table.iter().position(|e| e.signal.id == target) else {
                return reject(RejectReason::UnknownId);
            };
            let target_src = self.table[pos].signal.source;
            if signal.source == SignalSource::SmartMeter && target_src == SignalSource::RemoteServer
            {
                return reject(RejectReason::Conflicting);
            }
            let e = self.table.remove(pos);
            self.push_report(e.report(EndReason::Cancelled, now));
            return Ack::Accepted { id };
        }
        let valid = match signal.kind {
            SignalKind::Charge { power_w } | SignalKind::Discharge { power_w } => power_ok(power_w),
            SignalKind::LimitImport { max_import_w } => {
                max_import_w.is_finite() && max_import_w >= 0.0
            }
            _ => true,
        };
        if !valid || signal.duration_ms == 0 || signal.duration_ms > self.config.max_duration_ms {
            return reject(RejectReason::InvalidValue);
        }
        if signal.end() <= now {
            return reject(RejectReason::Expired);
        }
        if signal.start.since(now) > self.config.max_lead_ms {
            return reject(RejectReason::StartsTooFarAhead);
        }
        match signal.kind {
            SignalKind::Charge { power_w } if power_w > ctx.max_charge() => {
                return reject(RejectReason::ExceedsPowerLimit)
            }
            SignalKind::Discharge { power_w } if power_w > ctx.max_discharge() => {
                return reject(RejectReason::ExceedsPowerLimit)
            }
            SignalKind::Discharge { .. } if !ctx.reserve_left() => {
                return reject(RejectReason::WouldBreachReserve)
            }
            _ => {}
        }
        if let Some(e) = self.table.iter().find(|e| e.signal.id == id) {
            return if e.signal == signal {
                Ack::Accepted { id } // an identical retransmission
            } else {
                reject(RejectReason::Conflicting)
            };
        }
        let entry = Entry {
            signal,
            seq: self.next_seq,
            active_ms: 0,
            in_control_ms: 0,
            clipped_ms: 0,
            requested_wh: 0.0,
            delivered_wh: 0.0,
            measured_ms: 0,
            within_ms: 0,
            max_excess_w: 0.0,
            unmeasured_ms: 0,
        };
        if self.table.push(entry).is_err() {
            return reject(RejectReason::TableFull);
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        Ack::Accepted { id }
    }

    /// Feeds the meter's tariff indicator (on each P1 telegram) with the
    /// local time. When the matching [`TariffRule`] changes, the previous
    /// meter signal is cancelled and a new one submitted (lasting until the
    /// rule's window ends), and its [`Ack`] returned; otherwise `None`.
    /// Generated ids have [`METER_ID_BIT`] set. A rejected tariff signal is
    /// retried at most every `tariff_retry_ms` while its rule still matches.
    pub fn on_tariff(
        &mut self,
        now: Millis,
        local: LocalTime,
        tariff: u8,
        ctx: &Context,
    ) -> Option<Ack> {
        self.advance(now, ctx);
        let s = local.seconds_of_day.min(86_399);
        let rule = self
            .config
            .tariff_rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.tariff == tariff)
            .find_map(|(i, r)| r.remaining_s(s).map(|rem| (i, r.kind(), rem)));
        if let Some((idx, id)) = self.meter_rule {
            let still_live = self.table.iter().any(|e| e.signal.id == id);
            if still_live && rule.map(|r| r.0) == Some(idx) {
                return None;
            }
            if still_live {
                let cancel = DemandSignal {
                    id: id ^ 0x4000_0000,
                    source: SignalSource::SmartMeter,
                    kind: SignalKind::Cancel { id },
                    start: now,
                    duration_ms: 1,
                };
                let _ = self.submit(now, cancel, ctx);
            }
            self.meter_rule = None;
        }
        let (idx, kind, rem_s) = rule?;
        if let Some((r, at)) = self.meter_rejected {
            if r == idx && now.since(at) < self.config.tariff_retry_ms {
                return None;
            }
        }
        let id = METER_ID_BIT | (self.next_meter_id & 0x3FFF_FFFF);
        self.next_meter_id = self.next_meter_id.wrapping_add(1);
        let signal = DemandSignal {
            id,
            source: SignalSource::SmartMeter,
            kind,
            start: now,
            duration_ms: (rem_s as u64 * 1000).min(self.config.max_duration_ms),
        };
        let ack = self.submit(now, signal, ctx);
        if ack.is_accepted() {
            self.meter_rule = Some((idx, id));
            self.meter_rejected = None;
        } else {
            self.meter_rejected = Some((idx, now));
        }
        Some(ack)
    }

    /// Accounts compliance for the interval since the previous call (the
    /// measurements in `ctx` are taken to describe that interval, under the
    /// command returned by the previous `update`), retires ended signals
    /// into reports, and returns the command now in force. Call it on every
    /// control tick; `submit`/`on_tariff` also account up to their `now`.
    pub fn update(&mut self, now: Millis, ctx: &Context) -> DemandCommand {
        self.advance(now, ctx);
        let cmd = self.command(now, ctx);
        self.last_command = Some(cmd);
        cmd
    }

    /// Accounts compliance up to `now` under the command in force, then
    /// retires the signals that have ended.
    fn advance(&mut self, now: Millis, ctx: &Context) {
        if let (Some(prev), Some(cmd)) = (self.last_update, self.last_command) {
            if now > prev {
                self.account(prev, now, &cmd, ctx);
            }
        }
        self.last_update = Some(self.last_update.map_or(now, |p| p.max(now)));
        self.retire_ended(now);
    }

    fn account(&mut self, prev: Millis, now: Millis, cmd: &DemandCommand, ctx: &Context) {
        let tol = self.config.import_tolerance_w;
        let battery = ctx.battery_power_w;
        let grid = ctx.grid_power_w;
        let clipped = !matches!(
            cmd.battery_reason,
            BatteryReason::AsRequested | BatteryReason::Idle | BatteryReason::ToMeetImportLimit
        );
        for e in self.table.iter_mut() {
            let a = e.signal.start.max(prev);
            let b = e.signal.end().min(now);
            let dt = b.since(a);
            if dt == 0 {
                continue;
            }
            e.active_ms += dt;
            let h = ms_to_h(dt);
            match e.signal.kind {
                SignalKind::Charge { power_w } | SignalKind::Discharge { power_w } => {
                    e.requested_wh += power_w as f64 * h;
                    if cmd.battery_signal == Some(e.signal.id) {
                        e.in_control_ms += dt;
                        if clipped {
                            e.clipped_ms += dt;
                        }
                        if battery.is_finite() {
                            let dir = if matches!(e.signal.kind, SignalKind::Charge { .. }) {
                                -battery
                            } else {
                                battery
                            };
                            e.delivered_wh += dir.max(0.0) as f64 * h;
                        } else {
                            e.unmeasured_ms += dt;
                        }
                    }
                }
                SignalKind::LimitImport { max_import_w } => {
                    if cmd.import_limit_signal == Some(e.signal.id) {
                        e.in_control_ms += dt;
                    }
                    if grid.is_finite() {
                        e.measured_ms += dt;
                        if grid <= max_import_w + tol {
                            e.within_ms += dt;
                        }
                        e.max_excess_w = e.max_excess_w.max(grid - max_import_w);
                    } else {
                        e.unmeasured_ms += dt;
                    }
                }
                _ => {}
            }
        }
    }

    /// Winner among active signals matching `pred`: server over meter, then
    /// newest submitted.
    fn winner(&self, now: Millis, pred: impl Fn(&SignalKind) -> bool) -> Option<&Entry> {
        self.table
            .iter()
            .filter(|e| e.signal.start <= now && now < e.signal.end() && pred(&e.signal.kind))
            .max_by_key(|e| {
                (
                    e.signal.source == SignalSource::RemoteServer,
                    e.seq.wrapping_sub(self.next_seq),
                )
            })
    }

    fn command(&self, now: Millis, ctx: &Context) -> DemandCommand {
        let limit = self.winner(now, |k| matches!(k, SignalKind::LimitImport { .. }));
        let (import_limit_w, import_limit_signal) = match limit.map(|e| e.signal.kind) {
            Some(SignalKind::LimitImport { max_import_w }) => {
                (Some(max_import_w), limit.map(|e| e.signal.id))
            }
            _ => (None, None),
        };
        let (shed_mask, defer_mask) = self.circuit_masks(now);
        let bat = self.winner(now, |k| {
            matches!(k, SignalKind::Charge { .. } | SignalKind::Discharge { .. })
        });
        let max_dis = if ctx.reserve_left() {
            ctx.max_discharge()
        } else {
            0.0
        };
        // Discharge needed to keep import within the limit, if any.
        let needed_for_limit = import_limit_w.and_then(|l| ctx.needed_for_import_limit(l));
        let mut battery_signal = bat.map(|e| e.signal.id);
        let (battery_w, battery_reason) = match bat.map(|e| e.signal.kind) {
            Some(SignalKind::Charge { power_w }) => charge_target(power_w, import_limit_w, ctx),
            Some(SignalKind::Discharge { power_w }) => {
                discharge_target(power_w, needed_for_limit, max_dis, ctx)
            }
            _ => {
                let target = import_limit_target(import_limit_w, needed_for_limit, max_dis, ctx);
                if target.0.is_some() {
                    battery_signal = import_limit_signal;
                }
                target
            }
        };
        let battery_w = battery_w.map(|p| if p.is_finite() { p } else { 0.0 });
        DemandCommand {
            battery_w,
            battery_reason,
            battery_signal,
            import_limit_w,
            import_limit_signal,
            shed_mask,
            defer_mask,
            live_signals: self.table.len() as u8,
        }
    }

    /// The circuits the active signals shed and defer (bit i = circuit i).
    fn circuit_masks(&self, now: Millis) -> (u16, u16) {
        let mut shed_mask = 0;
        let mut defer_mask = 0;
        for e in self
            .table
            .iter()
            .filter(|e| e.signal.start <= now && now < e.signal.end())
        {
            match e.signal.kind {
                SignalKind::ShedLoads { circuit_mask } => shed_mask |= circuit_mask,
                SignalKind::DeferLoads { circuit_mask } => defer_mask |= circuit_mask,
                _ => {}
            }
        }
        (shed_mask, defer_mask)
    }
}

/// A charge signal's battery target (negative W): its power, clipped to
/// the charge limit and to what the import limit leaves above the house's
/// load (none when that load is unknown).
fn charge_target(
    power_w: f32,
    import_limit_w: Option<f32>,
    ctx: &Context,
) -> (Option<f32>, BatteryReason) {
    let mut p = power_w;
    let mut r = BatteryReason::AsRequested;
    if p > ctx.max_charge() {
        p = ctx.max_charge();
        r = BatteryReason::ClippedByPowerLimit;
    }
    if let Some(l) = import_limit_w {
        match ctx.house_ac_load_w() {
            Some(load) => {
                let head = (l - load).max(0.0);
                if p > head {
                    p = head;
                    r = BatteryReason::ClippedByImportLimit;
                }
            }
            None => {
                p = 0.0;
                r = BatteryReason::ImportLimitUnmeasured;
            }
        }
    }
    (Some(-p), r)
}

/// A discharge signal's battery target (W): its power, raised to what
/// keeps import within a limit, clipped to `max_dis_w` (0 at the reserve).
fn discharge_target(
    power_w: f32,
    needed_for_limit: Option<f32>,
    max_dis_w: f32,
    ctx: &Context,
) -> (Option<f32>, BatteryReason) {
    let mut p = power_w;
    let mut r = BatteryReason::AsRequested;
    if let Some(need) = needed_for_limit {
        if need > p {
            p = need;
            r = BatteryReason::ToMeetImportLimit;
        }
    }
    if p > max_dis_w {
        p = max_dis_w;
        r = if ctx.reserve_left() {
            BatteryReason::ClippedByPowerLimit
        } else {
            BatteryReason::ClippedByReserve
        };
    }
    (Some(p), r)
}

/// With only an import limit: the discharge that keeps import within it
/// (clipped to `max_dis_w`), none while the house is within it; no
/// discharge while the house's load is unknown.
fn import_limit_target(
    import_limit_w: Option<f32>,
    needed_for_limit: Option<f32>,
    max_dis_w: f32,
    ctx: &Context,
) -> (Option<f32>, BatteryReason) {
    match (import_limit_w, needed_for_limit) {
        (None, _) => (None, BatteryReason::Idle),
        (Some(_), None) => (Some(0.0), BatteryReason::ImportLimitUnmeasured),
        (Some(_), Some(need)) if need > 0.0 => {
            let p = need.min(max_dis_w);
            let r = if p < need && !ctx.reserve_left() {
                BatteryReason::ClippedByReserve
            } else if p < need {
                BatteryReason::ClippedByPowerLimit
            } else {
                BatteryReason::ToMeetImportLimit
            };
            (Some(p), r)
        }
        (Some(_), Some(_)) => (None, BatteryReason::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> Context {
        Context {
            max_charge_w: 3000.0,
            max_discharge_w: 3000.0,
            energy_above_reserve_wh: 2000.0,
            grid_power_w: 500.0,
            battery_power_w: 0.0,
            assembly_ac_w: 0.0,
            dc_load_w: 0.0,
        }
    }

    fn sig(id: u32, source: SignalSource, kind: SignalKind, start: u64, dur: u64) -> DemandSignal {
        DemandSignal {
            id,
            source,
            kind,
            start: Millis(start),
            duration_ms: dur,
        }
    }

    fn server(id: u32, kind: SignalKind, start: u64, dur: u64) -> DemandSignal {
        sig(id, SignalSource::RemoteServer, kind, start, dur)
    }

    const H: u64 = 3_600_000;

    /// Submits each signal at 10 h, in order, to one manager and checks its
    /// acknowledgement (`None` = accepted).
    fn assert_acks(cases: &[(DemandSignal, Context, Option<RejectReason>)]) {
        let now = Millis(10 * H);
        let mut m = DemandManager::new(DemandConfig::default());
        for (s, c, want) in cases {
            let ack = m.submit(now, *s, c);
            assert_eq!(ack.id(), s.id);
            match want {
                None => assert_eq!(ack, Ack::Accepted { id: s.id }, "{s:?}"),
                Some(r) => assert_eq!(
                    ack,
                    Ack::Rejected {
                        id: s.id,
                        reason: *r
                    },
                    "{s:?}"
                ),
            }
        }
    }

    fn discharge(power_w: f32) -> SignalKind {
        SignalKind::Discharge { power_w }
    }

    #[test]
    fn signals_with_invalid_values_are_rejected() {
        use RejectReason::*;
        let limit = SignalKind::LimitImport { max_import_w: -1.0 };
        assert_acks(&[
            (server(1, discharge(1000.0), 10 * H, H), ctx(), None),
            (
                server(2, discharge(f32::NAN), 10 * H, H),
                ctx(),
                Some(InvalidValue),
            ),
            (
                server(3, discharge(-5.0), 10 * H, H),
                ctx(),
                Some(InvalidValue),
            ),
            (
                server(4, discharge(100.0), 10 * H, 0),
                ctx(),
                Some(InvalidValue),
            ),
            (
                server(5, discharge(100.0), 10 * H, 2 * 86_400_000),
                ctx(),
                Some(InvalidValue),
            ),
            (server(6, limit, 10 * H, H), ctx(), Some(InvalidValue)),
        ]);
    }

    #[test]
    fn signals_ended_or_starting_too_far_ahead_are_rejected() {
        use RejectReason::*;
        assert_acks(&[
            (server(7, discharge(100.0), 8 * H, H), ctx(), Some(Expired)),
            (server(8, discharge(100.0), 9 * H, H), ctx(), Some(Expired)),
            (
                server(9, discharge(100.0), 40 * H, H),
                ctx(),
                Some(StartsTooFarAhead),
            ),
        ]);
    }

    #[test]
    fn signals_beyond_the_power_limits_or_the_reserve_are_rejected() {
        use RejectReason::*;
        let no_charge_limit = Context {
            max_charge_w: f32::NAN,
            ..ctx()
        };
        let at_reserve = Context {
            energy_above_reserve_wh: 0.0,
            ..ctx()
        };
        let charge = SignalKind::Charge { power_w: 100.0 };
        assert_acks(&[
            (
                server(10, discharge(3500.0), 10 * H, H),
                ctx(),
                Some(ExceedsPowerLimit),
            ),
            (
                server(11, charge, 10 * H, H),
                no_charge_limit,
                Some(ExceedsPowerLimit),
            ),
            (
                server(12, discharge(100.0), 10 * H, H),
                at_reserve,
                Some(WouldBreachReserve),
            ),
        ]);
    }

    #[test]
    fn ids_are_checked_for_conflicts_and_cancels_for_their_signal() {
        use RejectReason::*;
        let shed = SignalKind::ShedLoads {
            circuit_mask: 0b100,
        };
        let cancel_14 = SignalKind::Cancel { id: 14 };
        assert_acks(&[
            (server(1, discharge(1000.0), 10 * H, H), ctx(), None),
            // id 1 reused with different content
            (
                server(1, discharge(900.0), 10 * H, H),
                ctx(),
                Some(Conflicting),
            ),
            // identical retransmission is accepted again
            (server(1, discharge(1000.0), 10 * H, H), ctx(), None),
            (
                server(13, SignalKind::Cancel { id: 99 }, 0, 0),
                ctx(),
                Some(UnknownId),
            ),
            (server(14, shed, 11 * H, H), ctx(), None),
            (
                sig(15, SignalSource::SmartMeter, cancel_14, 0, 0),
                ctx(),
                Some(Conflicting),
            ),
            (server(16, cancel_14, 0, 0), ctx(), None),
        ]);
    }

    #[test]
    fn a_full_table_rejects_until_signals_end() {
        let now = Millis(10 * H);
        let mut m = DemandManager::new(DemandConfig::default());
        for id in 0..MAX_SIGNALS as u32 {
            assert!(m
                .submit(now, server(id, discharge(10.0), 11 * H, H), &ctx())
                .is_accepted());
        }
        assert_eq!(
            m.submit(now, server(100, discharge(10.0), 11 * H, H), &ctx()),
            Ack::Rejected {
                id: 100,
                reason: RejectReason::TableFull
            }
        );
        // Once they have ended there is room again.
        assert!(m
            .submit(
                Millis(12 * H),
                server(100, discharge(10.0), 12 * H, H),
                &ctx()
            )
            .is_accepted());
    }

    #[test]
    fn server_wins_over_meter_and_newest_wins() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = ctx();
        let meter = sig(
            1,
            SignalSource::SmartMeter,
            SignalKind::Discharge { power_w: 500.0 },
            0,
            H,
        );
        assert!(m.submit(Millis(0), meter, &c).is_accepted());
        assert_eq!(m.update(Millis(0), &c).battery_w, Some(500.0));
        m.submit(
            Millis(1),
            server(2, SignalKind::Charge { power_w: 1000.0 }, 0, H),
            &c,
        );
        let cmd = m.update(Millis(1), &c);
        assert_eq!(cmd.battery_w, Some(-1000.0));
        assert_eq!(cmd.battery_signal, Some(2));
        // A newer meter signal does not beat the server.
        let meter2 = sig(
            3,
            SignalSource::SmartMeter,
            SignalKind::Discharge { power_w: 700.0 },
            0,
            H,
        );
        m.submit(Millis(2), meter2, &c);
        assert_eq!(m.update(Millis(2), &c).battery_signal, Some(2));
        // A newer server signal does.
        m.submit(
            Millis(3),
            server(4, SignalKind::Discharge { power_w: 800.0 }, 0, H),
            &c,
        );
        assert_eq!(m.update(Millis(3), &c).battery_w, Some(800.0));
        // Cancel it: back to the older server signal.
        m.submit(Millis(4), server(5, SignalKind::Cancel { id: 4 }, 0, 0), &c);
        assert_eq!(m.update(Millis(4), &c).battery_w, Some(-1000.0));
        let r = m.pop_report().unwrap();
        assert_eq!((r.id, r.end), (4, EndReason::Cancelled));
        // Cancel the server charge: the newest meter signal (3) wins.
        m.submit(Millis(5), server(6, SignalKind::Cancel { id: 2 }, 0, 0), &c);
        assert_eq!(m.update(Millis(5), &c).battery_w, Some(700.0));
    }

    #[test]
    fn pending_then_active_then_expired() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = ctx();
        m.submit(
            Millis(0),
            server(1, SignalKind::Discharge { power_w: 500.0 }, 1000, 2000),
            &c,
        );
        assert_eq!(m.update(Millis(999), &c).battery_w, None);
        assert_eq!(m.update(Millis(1000), &c).battery_w, Some(500.0));
        assert_eq!(m.update(Millis(2999), &c).battery_w, Some(500.0));
        let cmd = m.update(Millis(3000), &c);
        assert_eq!(cmd.battery_w, None);
        assert_eq!(cmd.battery_reason, BatteryReason::Idle);
        assert_eq!(cmd.live_signals, 0);
        let r = m.pop_report().unwrap();
        assert_eq!(r.end, EndReason::Completed);
        assert_eq!(r.ended_at, Millis(3000));
        assert_eq!(r.active_ms, 2000);
    }

    #[test]
    fn clipped_by_limits_and_reserve() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = ctx();
        m.submit(
            Millis(0),
            server(1, SignalKind::Discharge { power_w: 2500.0 }, 0, H),
            &c,
        );
        let lower = Context {
            max_discharge_w: 1000.0,
            ..c
        };
        let cmd = m.update(Millis(10), &lower);
        assert_eq!(cmd.battery_w, Some(1000.0));
        assert_eq!(cmd.battery_reason, BatteryReason::ClippedByPowerLimit);
        let empty = Context {
            energy_above_reserve_wh: -1.0,
            ..c
        };
        let cmd = m.update(Millis(20), &empty);
        assert_eq!(cmd.battery_w, Some(0.0));
        assert_eq!(cmd.battery_reason, BatteryReason::ClippedByReserve);
    }

    #[test]
    fn import_limit_drives_discharge_and_caps_charge() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = Context {
            grid_power_w: 2500.0,
            battery_power_w: 0.0,
            ..ctx()
        };
        m.submit(
            Millis(0),
            server(
                1,
                SignalKind::LimitImport {
                    max_import_w: 1000.0,
                },
                0,
                H,
            ),
            &c,
        );
        let cmd = m.update(Millis(0), &c);
        assert_eq!(cmd.import_limit_w, Some(1000.0));
        assert_eq!(cmd.battery_w, Some(1500.0));
        assert_eq!(cmd.battery_reason, BatteryReason::ToMeetImportLimit);
        // Charge request under the limit: only the headroom.
        m.submit(
            Millis(1),
            server(2, SignalKind::Charge { power_w: 2000.0 }, 0, H),
            &c,
        );
        let light = Context {
            grid_power_w: 300.0,
            ..c
        };
        let cmd = m.update(Millis(1), &light);
        assert_eq!(cmd.battery_w, Some(-700.0));
        assert_eq!(cmd.battery_reason, BatteryReason::ClippedByImportLimit);
        // Load unmeasured: no charge at all.
        let unknown = Context {
            grid_power_w: f32::NAN,
            ..c
        };
        let cmd = m.update(Millis(2), &unknown);
        assert_eq!(cmd.battery_w, Some(0.0));
        assert_eq!(cmd.battery_reason, BatteryReason::ImportLimitUnmeasured);
    }

    /// A limit met with the PV's help stays met: the target counts what
    /// the inverter already supplies, whatever feeds it, so it does not
    /// fall away (and come back a second later) once import is under the
    /// limit. Counting only the battery's power made the inverter switch
    /// on and off every second with the PV behind it.
    #[test]
    fn an_import_limit_met_with_pv_keeps_its_target() {
        let mut m = DemandManager::new(DemandConfig::default());
        let limit = SignalKind::LimitImport {
            max_import_w: 100.0,
        };
        let before = Context {
            grid_power_w: 280.0,
            battery_power_w: 0.0,
            assembly_ac_w: 0.0,
            dc_load_w: 1.2,
            ..ctx()
        };
        m.submit(Millis(0), server(1, limit, 0, H), &before);
        let cmd = m.update(Millis(0), &before);
        assert_eq!(
            cmd.battery_w,
            Some(181.2),
            "AC share 180 W plus the DC circuits"
        );
        assert_eq!(cmd.battery_reason, BatteryReason::ToMeetImportLimit);
        // The inverter now supplies 180 W, all of it from the PV: the
        // battery's power is still 0 and import is at the limit.
        let met = Context {
            grid_power_w: 100.0,
            assembly_ac_w: 180.0,
            ..before
        };
        for t in 1..10 {
            let cmd = m.update(Millis(t * 1000), &met);
            assert_eq!(cmd.battery_w, Some(181.2), "at {t} s");
            assert_eq!(cmd.battery_reason, BatteryReason::ToMeetImportLimit);
        }
        // The charger's draw is not house load.
        let charging = Context {
            grid_power_w: 600.0,
            assembly_ac_w: -500.0,
            ..before
        };
        let cmd = m.update(Millis(20_000), &charging);
        assert_eq!(cmd.battery_w, None, "house load 100 W is within the limit");
    }

    #[test]
    fn load_masks_are_ored() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = ctx();
        m.submit(
            Millis(0),
            server(
                1,
                SignalKind::ShedLoads {
                    circuit_mask: 0b0011,
                },
                0,
                H,
            ),
            &c,
        );
        let meter = sig(
            2,
            SignalSource::SmartMeter,
            SignalKind::ShedLoads {
                circuit_mask: 0b1000,
            },
            0,
            H,
        );
        m.submit(Millis(0), meter, &c);
        m.submit(
            Millis(0),
            server(
                3,
                SignalKind::DeferLoads {
                    circuit_mask: 0b10000,
                },
                0,
                H,
            ),
            &c,
        );
        let cmd = m.update(Millis(0), &c);
        assert_eq!(cmd.shed_mask, 0b1011);
        assert_eq!(cmd.defer_mask, 0b10000);
        assert_eq!(cmd.battery_w, None);
    }

    #[test]
    fn compliance_on_synthetic_measurements() {
        let mut m = DemandManager::new(DemandConfig::default()); // tolerance 50 W
        let c = ctx();
        m.submit(
            Millis(0),
            server(
                1,
                SignalKind::LimitImport {
                    max_import_w: 1000.0,
                },
                0,
                10_000,
            ),
            &c,
        );
        m.submit(
            Millis(0),
            server(2, SignalKind::Discharge { power_w: 1000.0 }, 0, H),
            &c,
        );
        // Import per second: 8 s within, 2 s over (1030 within tolerance,
        // 1400 and 1200 over).
        let imports = [
            900.0, 1030.0, 1400.0, 950.0, 1200.0, 800.0, 0.0, 100.0, 999.0, 1000.0,
        ];
        m.update(Millis(0), &c);
        for (k, g) in imports.iter().enumerate() {
            let t = Millis((k as u64 + 1) * 1000);
            // The battery delivers 800 W of the 1000 W asked, except one
            // unmeasured second.
            let b = if k == 5 { f32::NAN } else { 800.0 };
            m.update(
                t,
                &Context {
                    grid_power_w: *g,
                    battery_power_w: b,
                    ..c
                },
            );
        }
        let r = m.pop_report().expect("limit report");
        assert_eq!(r.id, 1);
        assert_eq!(r.end, EndReason::Completed);
        assert_eq!(r.active_ms, 10_000);
        assert!((r.within_limit_fraction - 0.8).abs() < 1e-6, "{r:?}");
        assert_eq!(r.max_excess_w, 400.0);
        // End the discharge early by cancelling: 10 s in.
        m.submit(
            Millis(10_000),
            server(3, SignalKind::Cancel { id: 2 }, 0, 0),
            &c,
        );
        let r = m.pop_report().expect("discharge report");
        assert_eq!((r.id, r.end), (2, EndReason::Cancelled));
        assert!((r.requested_wh - 1000.0 * 10.0 / 3600.0).abs() < 1e-9);
        assert!((r.delivered_wh - 800.0 * 9.0 / 3600.0).abs() < 1e-9);
        assert_eq!(r.unmeasured_ms, 1000);
        assert_eq!(r.in_control_ms, 10_000);
    }

    #[test]
    fn tariff_maps_to_signals_by_window() {
        let mut cfg = DemandConfig::default();
        cfg.tariff_rules
            .push(TariffRule {
                tariff: 2,
                start_s: 17 * 3600,
                end_s: 21 * 3600,
                action: TariffAction::LimitImport,
                power_w: 1500.0,
                circuit_mask: 0,
            })
            .unwrap();
        cfg.tariff_rules
            .push(TariffRule {
                tariff: 1,
                start_s: 23 * 3600,
                end_s: 7 * 3600,
                action: TariffAction::Charge,
                power_w: 2000.0,
                circuit_mask: 0,
            })
            .unwrap();
        cfg.validate().unwrap();
        let mut m = DemandManager::new(cfg);
        let c = ctx();
        let at = |h: u32| LocalTime {
            seconds_of_day: h * 3600,
            weekday: 0,
        };
        // 16:00, tariff 2: outside window, nothing.
        assert_eq!(m.on_tariff(Millis(0), at(16), 2, &c), None);
        // 18:00, tariff 2: a limit until 21:00 (3 h).
        let ack = m.on_tariff(Millis(2 * H), at(18), 2, &c).unwrap();
        assert!(ack.is_accepted());
        assert!(ack.id() & METER_ID_BIT != 0);
        assert_eq!(m.on_tariff(Millis(2 * H + 10), at(18), 2, &c), None);
        let cmd = m.update(Millis(2 * H + 10), &c);
        assert_eq!(cmd.import_limit_w, Some(1500.0));
        let live = *m.live().next().unwrap();
        assert_eq!(live.end(), Millis(5 * H));
        // 20:00 the tariff drops to 1: the limit is cancelled.
        assert_eq!(m.on_tariff(Millis(4 * H), at(20), 1, &c), None);
        assert_eq!(m.update(Millis(4 * H), &c).import_limit_w, None);
        assert_eq!(m.pop_report().unwrap().end, EndReason::Cancelled);
        // 23:30 tariff 1: charge until 07:00 across midnight (7.5 h).
        let local = LocalTime {
            seconds_of_day: 23 * 3600 + 1800,
            weekday: 0,
        };
        assert!(m
            .on_tariff(Millis(8 * H), local, 1, &c)
            .unwrap()
            .is_accepted());
        assert_eq!(m.live().next().unwrap().duration_ms, 7 * H + H / 2);
        assert_eq!(m.update(Millis(8 * H), &c).battery_w, Some(-2000.0));
        // A server discharge overrides the meter's charge.
        m.submit(
            Millis(8 * H),
            server(7, SignalKind::Discharge { power_w: 400.0 }, 8 * H, H),
            &c,
        );
        assert_eq!(m.update(Millis(8 * H), &c).battery_w, Some(400.0));
    }

    #[test]
    fn accounting_runs_up_to_a_submit() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = Context {
            battery_power_w: 1000.0,
            ..ctx()
        };
        m.submit(
            Millis(0),
            server(1, SignalKind::Discharge { power_w: 1000.0 }, 0, 5000),
            &c,
        );
        m.update(Millis(0), &c);
        m.update(Millis(3000), &c);
        // No update at the end (5 s); a submit at 6 s closes the report.
        m.submit(
            Millis(6000),
            server(2, SignalKind::ShedLoads { circuit_mask: 1 }, 6000, H),
            &c,
        );
        let r = m.pop_report().unwrap();
        assert_eq!(
            (r.id, r.end, r.ended_at),
            (1, EndReason::Completed, Millis(5000))
        );
        assert_eq!(r.active_ms, 5000);
        assert_eq!(r.in_control_ms, 5000);
        assert!((r.delivered_wh - r.requested_wh).abs() < 1e-9);
    }

    #[test]
    fn rejected_tariff_signal_is_retried_slowly() {
        let mut cfg = DemandConfig::default();
        cfg.tariff_rules
            .push(TariffRule {
                tariff: 2,
                start_s: 0,
                end_s: 0,
                action: TariffAction::Discharge,
                power_w: 500.0,
                circuit_mask: 0,
            })
            .unwrap();
        let mut m = DemandManager::new(cfg);
        let empty = Context {
            energy_above_reserve_wh: 0.0,
            ..ctx()
        };
        let noon = LocalTime {
            seconds_of_day: 12 * 3600,
            weekday: 0,
        };
        let ack = m.on_tariff(Millis(0), noon, 2, &empty).unwrap();
        assert_eq!(
            ack,
            Ack::Rejected {
                id: ack.id(),
                reason: RejectReason::WouldBreachReserve
            }
        );
        assert_eq!(m.on_tariff(Millis(1000), noon, 2, &empty), None);
        let ack = m.on_tariff(Millis(60_000), noon, 2, &ctx()).unwrap();
        assert!(ack.is_accepted());
        assert_eq!(m.update(Millis(60_000), &ctx()).battery_w, Some(500.0));
    }

    #[test]
    fn report_ring_drops_oldest() {
        let mut m = DemandManager::new(DemandConfig::default());
        let c = ctx();
        for id in 0..(MAX_REPORTS as u32 + 3) {
            m.submit(
                Millis(0),
                server(id, SignalKind::ShedLoads { circuit_mask: 1 }, 0, H),
                &c,
            );
            m.submit(
                Millis(0),
                server(1000 + id, SignalKind::Cancel { id }, 0, 0),
                &c,
            );
        }
        assert_eq!(m.dropped_reports(), 3);
        assert_eq!(m.pop_report().unwrap().id, 3);
    }

    #[cfg(feature = "std")]
    #[test]
    fn toml_shape() {
        let text = r#"
            max_lead_ms = 86400000
            max_duration_ms = 86400000
            import_tolerance_w = 50.0
            tariff_retry_ms = 60000
            [[tariff_rules]]
            tariff = 2
            start_s = 61200
            end_s = 75600
            action = "limit_import"
            power_w = 1500.0
            [[tariff_rules]]
            tariff = 1
            action = "shed_loads"
            circuit_mask = 12
        "#;
        let c: DemandConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.tariff_rules[0].action, TariffAction::LimitImport);
        assert_eq!(
            c.tariff_rules[1].kind(),
            SignalKind::ShedLoads { circuit_mask: 12 }
        );
        let d: DemandConfig = toml::from_str("").unwrap();
        assert_eq!(d, DemandConfig::default());
        assert!(toml::from_str::<DemandConfig>("lead_ms = 3").is_err());
    }

    #[test]
    fn config_validation() {
        assert!(DemandConfig::default().validate().is_ok());
        let bad = DemandConfig {
            max_duration_ms: 0,
            ..DemandConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "max_duration_ms");
        let mut bad = DemandConfig::default();
        bad.tariff_rules
            .push(TariffRule {
                tariff: 2,
                start_s: 0,
                end_s: 0,
                action: TariffAction::Discharge,
                power_w: f32::NAN,
                circuit_mask: 0,
            })
            .unwrap();
        assert!(bad.validate().is_err());
    }

    fn arb_f32() -> impl Strategy<Value = f32> {
        prop_oneof![
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
            -5000.0f32..5000.0,
        ]
    }

    fn arb_kind() -> impl Strategy<Value = SignalKind> {
        prop_oneof![
            arb_f32().prop_map(|p| SignalKind::Charge { power_w: p }),
            arb_f32().prop_map(|p| SignalKind::Discharge { power_w: p }),
            arb_f32().prop_map(|p| SignalKind::LimitImport { max_import_w: p }),
            any::<u16>().prop_map(|m| SignalKind::ShedLoads { circuit_mask: m }),
            any::<u16>().prop_map(|m| SignalKind::DeferLoads { circuit_mask: m }),
            (0u32..40).prop_map(|id| SignalKind::Cancel { id }),
        ]
    }

    fn arb_ctx() -> impl Strategy<Value = Context> {
        let measured = (arb_f32(), arb_f32(), arb_f32(), arb_f32());
        (arb_f32(), arb_f32(), arb_f32(), measured).prop_map(|(a, b, c, (d, e, f, g))| Context {
            max_charge_w: a,
            max_discharge_w: b,
            energy_above_reserve_wh: c,
            grid_power_w: d,
            battery_power_w: e,
            assembly_ac_w: f,
            dc_load_w: g,
        })
    }

    proptest! {
        #[test]
        fn never_panics_never_breaches(
            steps in proptest::collection::vec(
                (0u64..600_000, 0u32..40, any::<bool>(), arb_kind(), 0u64..2 * H, 0u64..3 * H,
                 arb_ctx(), any::<bool>(), 0u8..4, 0u32..86_400),
                1..120),
        ) {
            let mut cfg = DemandConfig::default();
            cfg.tariff_rules.push(TariffRule {
                tariff: 2, start_s: 60_000, end_s: 80_000,
                action: TariffAction::Discharge, power_w: 800.0, circuit_mask: 0,
            }).unwrap();
            let mut m = DemandManager::new(cfg);
            let mut now = Millis(0);
            for (dt, id, from_server, kind, lead, dur, c, tariff_step, tariff, sod) in steps {
                now = now.plus_ms(dt);
                if tariff_step {
                    let local = LocalTime { seconds_of_day: sod, weekday: 0 };
                    if let Some(ack) = m.on_tariff(now, local, tariff, &c) {
                        prop_assert!(ack.id() & METER_ID_BIT != 0);
                    }
                } else {
                    let source = if from_server { SignalSource::RemoteServer } else { SignalSource::SmartMeter };
                    let s = DemandSignal { id, source, kind, start: now.plus_ms(lead).plus_ms(0), duration_ms: dur };
                    let ack = m.submit(now, s, &c);
                    prop_assert_eq!(ack.id(), id);
                }
                let cmd = m.update(now, &c);
                if let Some(p) = cmd.battery_w {
                    prop_assert!(p.is_finite());
                    let maxc = if c.max_charge_w.is_finite() { c.max_charge_w.max(0.0) } else { 0.0 };
                    let maxd = if c.max_discharge_w.is_finite() { c.max_discharge_w.max(0.0) } else { 0.0 };
                    prop_assert!(p >= -maxc, "charge {} beyond {}", p, maxc);
                    prop_assert!(p <= maxd, "discharge {} beyond {}", p, maxd);
                    if !(c.energy_above_reserve_wh.is_finite() && c.energy_above_reserve_wh > 0.0) {
                        prop_assert!(p <= 0.0, "discharge {} with no energy above reserve", p);
                    }
                }
                if let Some(l) = cmd.import_limit_w {
                    prop_assert!(l.is_finite() && l >= 0.0);
                }
                prop_assert!(cmd.live_signals as usize <= MAX_SIGNALS);
                while let Some(r) = m.pop_report() {
                    prop_assert!(r.requested_wh.is_finite() && r.delivered_wh.is_finite());
                    prop_assert!((0.0..=1.0).contains(&r.within_limit_fraction));
                }
            }
        }
    }
}
