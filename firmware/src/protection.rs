//! Protection (DESIGN function 9): the supervisor that **wins over every
//! other function**. It watches cell, pack, temperature, bus and circuit
//! measurements, the freshness and integrity of its inputs and the
//! controller's own watchdog, and says which faults are active, which
//! safe-state actions are required now, and the current/power limits every
//! other function must respect.
//!
//! Shape: [`Protection::new`] with a [`ProtectionConfig`]; call
//! [`Protection::update`] every controller cycle (at least every
//! [`MAX_UPDATE_PERIOD_MS`]) with the latest [`ProtectionInputs`] (each
//! group carries its own timestamp); call [`Protection::kick`] when the
//! controller completed a cycle; [`Protection::clear_latched`] on an
//! operator/remote reset.
//!
//! Conventions: pack current positive = discharge; a charge limit is a
//! magnitude (A or W, ≥ 0) of charging allowed, a discharge limit the
//! magnitude of discharging allowed.
//!
//! Semantics of each fault (see [`PROTECTION_TABLE`] for the defaults):
//! * **threshold** and **release** level (hysteresis) from the config;
//! * **debounce**: the condition must hold continuously for `debounce_ms`
//!   before the fault is raised; it is evaluated at every `update`, so the
//!   **reaction time** (onset → safe state commanded) is at most
//!   `debounce_ms + MAX_UPDATE_PERIOD_MS`;
//! * **latched** faults stay until [`Protection::clear_latched`] is called
//!   while the condition is gone (value on the release side, input fresh);
//!   **self-clearing** faults clear as soon as the value is on the release
//!   side;
//! * the **limits** do not wait for debounce: a cell at or above the
//!   over-voltage threshold makes the charge limit 0 at once (likewise under
//!   voltage → discharge 0, temperatures outside the charge/discharge window,
//!   stale or invalid cell data → both 0). Near the limits the currents are
//!   derated linearly over `voltage_derate_band_v` / `temperature_derate_band_c`.
//! * a non-finite measurement makes its group invalid: an
//!   [`FaultKind::InvalidMeasurement`] fault (battery stopped, self-clearing
//!   when a finite value arrives) and the group is treated as unknown;
//! * a group whose timestamp is older than its deadline (or never received,
//!   counted from the first `update`) is **stale**: battery stopped and all
//!   circuits tripped when the circuit data is stale.

use crate::config::{check_order, check_range, Order};
use crate::{ConfigError, Millis};
use core::fmt::Write;

/// Most circuits the supervisor watches.
pub const MAX_CIRCUITS: usize = 16;
/// The controller must call [`Protection::update`] at least this often
/// (ms); reaction times in [`PROTECTION_TABLE`] assume it.
pub const MAX_UPDATE_PERIOD_MS: u32 = 100;
/// Capacity of the active-fault list.
pub const MAX_FAULTS: usize = 48;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    CellOverVoltage,
    CellUnderVoltage,
    ChargeOverCurrent,
    DischargeOverCurrent,
    ChargeOverTemperature,
    ChargeUnderTemperature,
    DischargeOverTemperature,
    DischargeUnderTemperature,
    BusOverVoltage,
    BusUnderVoltage,
    CircuitOverCurrent,
    CircuitShortCircuit,
    StaleInput,
    CorruptInput,
    InvalidMeasurement,
    Watchdog,
}

const N_KINDS: usize = 16;

impl FaultKind {
    /// All kinds, in table order.
    pub const ALL: [FaultKind; N_KINDS] = [
        FaultKind::CellOverVoltage,
        FaultKind::CellUnderVoltage,
        FaultKind::ChargeOverCurrent,
        FaultKind::DischargeOverCurrent,
        FaultKind::ChargeOverTemperature,
        FaultKind::ChargeUnderTemperature,
        FaultKind::DischargeOverTemperature,
        FaultKind::DischargeUnderTemperature,
        FaultKind::BusOverVoltage,
        FaultKind::BusUnderVoltage,
        FaultKind::CircuitOverCurrent,
        FaultKind::CircuitShortCircuit,
        FaultKind::StaleInput,
        FaultKind::CorruptInput,
        FaultKind::InvalidMeasurement,
        FaultKind::Watchdog,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The row of [`PROTECTION_TABLE`] for this kind.
    pub fn row(self) -> &'static ProtectionRow {
        &PROTECTION_TABLE[self.index()]
    }
}

/// The safe state a fault demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafeState {
    /// Converter's charge direction disabled (charge limit 0).
    BlockCharge,
    /// Converter's discharge direction disabled (discharge limit 0).
    BlockDischarge,
    /// Battery contactor open: no battery current either way.
    OpenContactor,
    /// PV disabled and battery discharge blocked: nothing pushes the bus up.
    DisableSources,
    /// The offending circuit's breaker/switch opened.
    TripCircuit,
    /// Every circuit tripped (bus loads disconnected).
    TripAllCircuits,
    /// Contactor open, converter off, PV off, every circuit tripped.
    AllOff,
}

impl SafeState {
    fn name(self) -> &'static str {
        match self {
            SafeState::BlockCharge => "block charge",
            SafeState::BlockDischarge => "block discharge",
            SafeState::OpenContactor => "open battery contactor",
            SafeState::DisableSources => "disable PV, block discharge",
            SafeState::TripCircuit => "trip the circuit",
            SafeState::TripAllCircuits => "trip all circuits",
            SafeState::AllOff => "all off",
        }
    }
}

/// One row of the protection table: the defaults and fixed behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProtectionRow {
    pub kind: FaultKind,
    /// What is compared, in words (for the README).
    pub quantity: &'static str,
    /// Default threshold (unit in `unit`).
    pub threshold: f32,
    /// Default release level (hysteresis), same unit.
    pub release: f32,
    pub unit: &'static str,
    /// Default debounce (ms).
    pub debounce_ms: u32,
    /// Worst-case onset → safe state (ms) = debounce + [`MAX_UPDATE_PERIOD_MS`].
    pub reaction_ms: u32,
    pub safe_state: SafeState,
    /// Latched (needs [`Protection::clear_latched`]) or self-clearing.
    pub latched: bool,
}

#[allow(clippy::too_many_arguments)] // one table row, positional for compactness
const fn row(
    kind: FaultKind,
    quantity: &'static str,
    threshold: f32,
    release: f32,
    unit: &'static str,
    debounce_ms: u32,
    safe_state: SafeState,
    latched: bool,
) -> ProtectionRow {
    ProtectionRow {
        kind,
        quantity,
        threshold,
        release,
        unit,
        debounce_ms,
        reaction_ms: debounce_ms + MAX_UPDATE_PERIOD_MS,
        safe_state,
        latched,
    }
}

/// Defaults for a 16s LFP 100 Ah pack on a 48 V bus, one row per
/// [`FaultKind`] in [`FaultKind::ALL`] order. Threshold/release/debounce are
/// overridable in [`ProtectionConfig`]; safe state and latching are fixed.
/// Stale input: threshold = the default per-group deadline (ms).
/// Corrupt input: threshold = frames within `corrupt_window_ms`.
#[rustfmt::skip]
pub const PROTECTION_TABLE: [ProtectionRow; N_KINDS] = [
    row(FaultKind::CellOverVoltage, "max cell voltage >", 3.65, 3.55, "V", 1000, SafeState::BlockCharge, false),
    row(FaultKind::CellUnderVoltage, "min cell voltage <", 2.5, 2.8, "V", 1000, SafeState::BlockDischarge, false),
    row(FaultKind::ChargeOverCurrent, "charge current >", 110.0, 100.0, "A", 500, SafeState::OpenContactor, true),
    row(FaultKind::DischargeOverCurrent, "discharge current >", 160.0, 150.0, "A", 500, SafeState::OpenContactor, true),
    row(FaultKind::ChargeOverTemperature, "max cell temp. (charging) >", 45.0, 40.0, "°C", 5000, SafeState::BlockCharge, false),
    row(FaultKind::ChargeUnderTemperature, "min cell temp. (charging) <", 0.0, 3.0, "°C", 5000, SafeState::BlockCharge, false),
    row(FaultKind::DischargeOverTemperature, "max cell temp. >", 60.0, 50.0, "°C", 5000, SafeState::OpenContactor, true),
    row(FaultKind::DischargeUnderTemperature, "min cell temp. <", -20.0, -17.0, "°C", 5000, SafeState::BlockDischarge, false),
    row(FaultKind::BusOverVoltage, "bus voltage >", 58.0, 56.0, "V", 50, SafeState::DisableSources, false),
    row(FaultKind::BusUnderVoltage, "bus voltage <", 40.0, 44.0, "V", 200, SafeState::TripAllCircuits, true),
    row(FaultKind::CircuitOverCurrent, "circuit current >", 10.0, 9.0, "A", 1000, SafeState::TripCircuit, true),
    row(FaultKind::CircuitShortCircuit, "circuit current >", 40.0, 9.0, "A", 0, SafeState::TripCircuit, true),
    row(FaultKind::StaleInput, "input age > deadline (cells, pack, circuits; temps 5000 ms, bus 500 ms) or a CAN deadline missed", 1000.0, 1000.0, "ms", 0, SafeState::OpenContactor, false),
    row(FaultKind::CorruptInput, "corrupt frames in window >", 10.0, 10.0, "frames", 0, SafeState::OpenContactor, true),
    row(FaultKind::InvalidMeasurement, "measurement non-finite", 0.0, 0.0, "-", 0, SafeState::OpenContactor, false),
    row(FaultKind::Watchdog, "controller cycle age >", 500.0, 500.0, "ms", 0, SafeState::AllOff, true),
];

/// Writes [`PROTECTION_TABLE`] as a markdown table (for `firmware/README.md`).
pub fn table_markdown(buf: &mut impl Write) -> core::fmt::Result {
    writeln!(
        buf,
        "| fault | condition | threshold | release | debounce | reaction (max) | safe state | latched |"
    )?;
    writeln!(buf, "|---|---|---|---|---|---|---|---|")?;
    for r in &PROTECTION_TABLE {
        writeln!(
            buf,
            "| {:?} | {} | {} {} | {} {} | {} ms | {} ms | {} | {} |",
            r.kind,
            r.quantity,
            r.threshold,
            r.unit,
            r.release,
            r.unit,
            r.debounce_ms,
            r.reaction_ms,
            r.safe_state.name(),
            if r.latched {
                "yes"
            } else {
                "no, self-clearing"
            }
        )?;
    }
    Ok(())
}

/// Threshold, release (hysteresis) and debounce of one fault.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub threshold: f32,
    pub release: f32,
    #[serde(default)]
    pub debounce_ms: u32,
}

impl Limit {
    const fn of(kind: FaultKind) -> Limit {
        let r = &PROTECTION_TABLE[kind as usize];
        Limit {
            threshold: r.threshold,
            release: r.release,
            debounce_ms: r.debounce_ms,
        }
    }
}

/// Input deadlines per group (ms): older data is stale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    pub cell_voltage_ms: u32,
    pub pack_ms: u32,
    pub temperature_ms: u32,
    pub bus_ms: u32,
    pub circuits_ms: u32,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            cell_voltage_ms: 1000,
            pack_ms: 1000,
            temperature_ms: 5000,
            bus_ms: 500,
            circuits_ms: 1000,
        }
    }
}

/// Protection configuration (TOML table `[protection]`); every field has a
/// default from [`PROTECTION_TABLE`].
///
/// ```toml
/// [protection]
/// max_charge_current_a = 100.0
/// max_discharge_current_a = 150.0
/// cell_over_voltage = { threshold = 3.65, release = 3.55, debounce_ms = 1000 }
/// circuit_over_current = { threshold = 10.0, release = 9.0, debounce_ms = 1000 }
/// watchdog_deadline_ms = 500
/// [protection.deadlines]
/// cell_voltage_ms = 1000
/// bus_ms = 500
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectionConfig {
    /// Continuous charge current allowed (A) before derating.
    pub max_charge_current_a: f32,
    /// Continuous discharge current allowed (A) before derating.
    pub max_discharge_current_a: f32,
    /// Current limits ramp to 0 over this band (V per cell) below the
    /// over-voltage threshold (charge) / above the under-voltage one.
    pub voltage_derate_band_v: f32,
    /// Current limits ramp to 0 over this band (°C) inside each temperature
    /// threshold.
    pub temperature_derate_band_c: f32,
    pub cell_over_voltage: Limit,
    pub cell_under_voltage: Limit,
    pub charge_over_current: Limit,
    pub discharge_over_current: Limit,
    pub charge_over_temperature: Limit,
    pub charge_under_temperature: Limit,
    pub discharge_over_temperature: Limit,
    pub discharge_under_temperature: Limit,
    pub bus_over_voltage: Limit,
    pub bus_under_voltage: Limit,
    pub circuit_over_current: Limit,
    pub circuit_short_circuit: Limit,
    pub deadlines: Deadlines,
    /// More than this many corrupt frames within the window trips.
    pub corrupt_max_count: u32,
    pub corrupt_window_ms: u32,
    /// The controller must [`Protection::kick`] at least this often (ms).
    pub watchdog_deadline_ms: u32,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            max_charge_current_a: 100.0,
            max_discharge_current_a: 150.0,
            voltage_derate_band_v: 0.1,
            temperature_derate_band_c: 5.0,
            cell_over_voltage: Limit::of(FaultKind::CellOverVoltage),
            cell_under_voltage: Limit::of(FaultKind::CellUnderVoltage),
            charge_over_current: Limit::of(FaultKind::ChargeOverCurrent),
            discharge_over_current: Limit::of(FaultKind::DischargeOverCurrent),
            charge_over_temperature: Limit::of(FaultKind::ChargeOverTemperature),
            charge_under_temperature: Limit::of(FaultKind::ChargeUnderTemperature),
            discharge_over_temperature: Limit::of(FaultKind::DischargeOverTemperature),
            discharge_under_temperature: Limit::of(FaultKind::DischargeUnderTemperature),
            bus_over_voltage: Limit::of(FaultKind::BusOverVoltage),
            bus_under_voltage: Limit::of(FaultKind::BusUnderVoltage),
            circuit_over_current: Limit::of(FaultKind::CircuitOverCurrent),
            circuit_short_circuit: Limit::of(FaultKind::CircuitShortCircuit),
            deadlines: Deadlines::default(),
            corrupt_max_count: 10,
            corrupt_window_ms: 10_000,
            watchdog_deadline_ms: 500,
        }
    }
}

impl ProtectionConfig {
    fn limit(&self, kind: FaultKind) -> Option<&Limit> {
        Some(match kind {
            FaultKind::CellOverVoltage => &self.cell_over_voltage,
            FaultKind::CellUnderVoltage => &self.cell_under_voltage,
            FaultKind::ChargeOverCurrent => &self.charge_over_current,
            FaultKind::DischargeOverCurrent => &self.discharge_over_current,
            FaultKind::ChargeOverTemperature => &self.charge_over_temperature,
            FaultKind::ChargeUnderTemperature => &self.charge_under_temperature,
            FaultKind::DischargeOverTemperature => &self.discharge_over_temperature,
            FaultKind::DischargeUnderTemperature => &self.discharge_under_temperature,
            FaultKind::BusOverVoltage => &self.bus_over_voltage,
            FaultKind::BusUnderVoltage => &self.bus_under_voltage,
            FaultKind::CircuitOverCurrent => &self.circuit_over_current,
            FaultKind::CircuitShortCircuit => &self.circuit_short_circuit,
            _ => return None,
        })
    }

    /// Checks every value is finite, hysteresis points the right way, and
    /// limits are consistent.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, x) in [
            ("max_charge_current_a", self.max_charge_current_a),
            ("max_discharge_current_a", self.max_discharge_current_a),
            ("voltage_derate_band_v", self.voltage_derate_band_v),
            ("temperature_derate_band_c", self.temperature_derate_band_c),
        ] {
            check_range(name, x, 0.0..)?;
        }
        for kind in FaultKind::ALL {
            if let Some(l) = self.limit(kind) {
                validate_limit(kind_field(kind), l, is_over(kind))?;
            }
        }
        check_order(
            "cell_under_voltage",
            self.cell_under_voltage.threshold,
            Order::Below,
            "cell_over_voltage.threshold",
            self.cell_over_voltage.threshold,
        )
        .map_err(|e| e.with_context(format_args!("threshold")))?;
        let d = &self.deadlines;
        for (name, x) in [
            ("deadlines.cell_voltage_ms", d.cell_voltage_ms),
            ("deadlines.pack_ms", d.pack_ms),
            ("deadlines.temperature_ms", d.temperature_ms),
            ("deadlines.bus_ms", d.bus_ms),
            ("deadlines.circuits_ms", d.circuits_ms),
            ("corrupt_window_ms", self.corrupt_window_ms),
            ("watchdog_deadline_ms", self.watchdog_deadline_ms),
        ] {
            check_range(name, x, 1..)?;
        }
        Ok(())
    }
}

/// A limit's threshold and release are finite, and the release is on the
/// safe side of the threshold (below it for an over-limit, `over`).
fn validate_limit(field: &str, limit: &Limit, over: bool) -> Result<(), ConfigError> {
    check_range(field, limit.threshold, ..)
        .map_err(|e| e.with_context(format_args!("threshold")))?;
    let order = if over { Order::AtMost } else { Order::AtLeast };
    check_order(field, limit.release, order, "threshold", limit.threshold)
        .map_err(|e| e.with_context(format_args!("release")))
}

fn kind_field(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::CellOverVoltage => "cell_over_voltage",
        FaultKind::CellUnderVoltage => "cell_under_voltage",
        FaultKind::ChargeOverCurrent => "charge_over_current",
        FaultKind::DischargeOverCurrent => "discharge_over_current",
        FaultKind::ChargeOverTemperature => "charge_over_temperature",
        FaultKind::ChargeUnderTemperature => "charge_under_temperature",
        FaultKind::DischargeOverTemperature => "discharge_over_temperature",
        FaultKind::DischargeUnderTemperature => "discharge_under_temperature",
        FaultKind::BusOverVoltage => "bus_over_voltage",
        FaultKind::BusUnderVoltage => "bus_under_voltage",
        FaultKind::CircuitOverCurrent => "circuit_over_current",
        FaultKind::CircuitShortCircuit => "circuit_short_circuit",
        FaultKind::StaleInput => "deadlines",
        FaultKind::CorruptInput => "corrupt_max_count",
        FaultKind::InvalidMeasurement => "measurement",
        FaultKind::Watchdog => "watchdog_deadline_ms",
    }
}

/// Over-limit (value > threshold) or under-limit (value < threshold) kind.
fn is_over(kind: FaultKind) -> bool {
    !matches!(
        kind,
        FaultKind::CellUnderVoltage
            | FaultKind::ChargeUnderTemperature
            | FaultKind::DischargeUnderTemperature
            | FaultKind::BusUnderVoltage
    )
}

/// The latest measurements, each group with the time it was measured
/// (`None`: never received).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProtectionInputs {
    /// Lowest and highest cell voltage (V).
    pub cell_voltage_min_v: f32,
    pub cell_voltage_max_v: f32,
    pub cell_voltage_at: Option<Millis>,
    /// Pack voltage (V) and current (A, positive = discharge).
    pub pack_voltage_v: f32,
    pub pack_current_a: f32,
    pub pack_at: Option<Millis>,
    /// Lowest and highest cell temperature (°C).
    pub cell_temperature_min_c: f32,
    pub cell_temperature_max_c: f32,
    pub temperature_at: Option<Millis>,
    /// DC bus voltage (V).
    pub bus_voltage_v: f32,
    pub bus_at: Option<Millis>,
    /// Per-circuit current magnitude (A), index = circuit number.
    pub circuit_current_a: heapless::Vec<f32, MAX_CIRCUITS>,
    pub circuits_at: Option<Millis>,
    /// Cumulative count of corrupt frames seen by the link layer (a
    /// decrease is taken as a counter reset).
    pub corrupt_frames: u32,
    /// The link layer reports a safety-relevant frame past its (DBC)
    /// deadline: treated as a stale input.
    pub link_lost: bool,
}

/// One active fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// When it was raised.
    pub since: Millis,
    /// Whether it waits for [`Protection::clear_latched`].
    pub latched: bool,
    /// The circuit, for circuit faults.
    pub circuit: Option<u8>,
}

/// The safe-state actions required now. Every other function's commands
/// must be filtered through these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions {
    /// Open the battery contactor.
    pub open_contactor: bool,
    /// Disable the converter's charge direction.
    pub block_charge: bool,
    /// Disable the converter's discharge direction.
    pub block_discharge: bool,
    /// Disable (curtail to zero) PV.
    pub disable_pv: bool,
    /// Circuits to trip: bit k = circuit k.
    pub trip_circuits: u16,
    /// Everything off (contactor, converter, PV, all circuits).
    pub all_off: bool,
}

impl Actions {
    /// Adds the actions of a fault's safe state (`circuit`: the circuit a
    /// circuit fault is on).
    fn apply(&mut self, safe_state: SafeState, circuit: Option<usize>) {
        match safe_state {
            SafeState::BlockCharge => self.block_charge = true,
            SafeState::BlockDischarge => self.block_discharge = true,
            SafeState::OpenContactor => {
                self.open_contactor = true;
                self.block_charge = true;
                self.block_discharge = true;
            }
            SafeState::DisableSources => {
                self.disable_pv = true;
                self.block_discharge = true;
            }
            SafeState::TripCircuit => {
                if let Some(k) = circuit {
                    self.trip_circuits |= 1u16 << k;
                }
            }
            SafeState::TripAllCircuits => self.trip_circuits = u16::MAX,
            SafeState::AllOff => {
                self.all_off = true;
                self.open_contactor = true;
                self.block_charge = true;
                self.block_discharge = true;
                self.disable_pv = true;
                self.trip_circuits = u16::MAX;
            }
        }
    }
}

/// Limits every other function must respect (magnitudes, ≥ 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    pub max_charge_current_a: f32,
    pub max_discharge_current_a: f32,
    pub max_charge_power_w: f32,
    pub max_discharge_power_w: f32,
}

/// Why the protection state is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtectionReason {
    /// No fault, full limits.
    Normal,
    /// No fault, but limits derated near a voltage/temperature limit (or a
    /// not-yet-debounced excursion).
    Derated,
    /// At least one fault; the first in [`FaultKind::ALL`] order.
    Fault(FaultKind),
}

/// The supervisor's output.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectionState {
    pub faults: heapless::Vec<Fault, MAX_FAULTS>,
    pub actions: Actions,
    pub limits: Limits,
    pub reason: ProtectionReason,
}

impl ProtectionState {
    /// Whether a fault of `kind` is active.
    pub fn has(&self, kind: FaultKind) -> bool {
        self.faults.iter().any(|f| f.kind == kind)
    }
}

/// Why [`Protection::clear_latched`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearRefused {
    /// No latched fault of that kind is active.
    NotLatched,
    /// The condition still holds (or its input is stale/invalid).
    ConditionPresent,
}

#[derive(Debug, Clone, Copy, Default)]
struct Tracker {
    /// Condition beyond threshold since (for debounce).
    over_since: Option<Millis>,
    /// Condition not yet on the release side (raw, no debounce).
    present: bool,
    active: Option<Millis>,
}

impl Tracker {
    /// `beyond`: past the threshold; `released`: on the release side;
    /// `None`: unknown (stale/invalid input: hold state).
    fn step(
        &mut self,
        now: Millis,
        beyond: Option<bool>,
        released: Option<bool>,
        debounce_ms: u32,
        latched: bool,
    ) {
        match (beyond, released) {
            (Some(b), Some(r)) => {
                self.present = !r;
                if b {
                    let since = *self.over_since.get_or_insert(now);
                    if self.active.is_none() && now.since(since) >= debounce_ms as u64 {
                        self.active = Some(now);
                    }
                } else {
                    self.over_since = None;
                }
                if r && !latched {
                    self.active = None;
                }
            }
            _ => {
                self.present = true;
            }
        }
    }
}

/// Which measurement groups one update can use
/// ([`Protection::update`]'s first step).
#[derive(Debug, Clone, Copy)]
struct InputHealth {
    cell_ok: bool,
    pack_ok: bool,
    temp_ok: bool,
    bus_ok: bool,
    circuits_fresh: bool,
    circuits_ok: bool,
    /// A group is past its deadline (after the start-up grace).
    stale: bool,
    /// A fresh group holds a non-finite value.
    invalid: bool,
}

/// The protection supervisor.
#[derive(Debug, Clone)]
pub struct Protection {
    cfg: ProtectionConfig,
    started: Option<Millis>,
    last_kick: Option<Millis>,
    kinds: [Tracker; N_KINDS],
    circuit_oc: [Tracker; MAX_CIRCUITS],
    circuit_sc: [Tracker; MAX_CIRCUITS],
    corrupt: heapless::Deque<(Millis, u32), 128>,
    state: ProtectionState,
}

fn finite(xs: &[f32]) -> bool {
    xs.iter().all(|x| x.is_finite())
}

/// 1 at `full` and beyond on the safe side, 0 at `zero`, linear between.
fn ramp(x: f32, zero: f32, full: f32) -> f32 {
    if full == zero {
        // No derating band: the hard cut at the threshold is applied apart.
        return 1.0;
    }
    let f = (x - zero) / (full - zero);
    if f.is_finite() {
        f.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

impl Protection {
    /// A supervisor with no faults; the first [`Protection::update`] starts
    /// the stale and watchdog clocks.
    pub fn new(config: ProtectionConfig) -> Self {
        Protection {
            cfg: config,
            started: None,
            last_kick: None,
            kinds: [Tracker::default(); N_KINDS],
            circuit_oc: [Tracker::default(); MAX_CIRCUITS],
            circuit_sc: [Tracker::default(); MAX_CIRCUITS],
            corrupt: heapless::Deque::new(),
            state: ProtectionState {
                faults: heapless::Vec::new(),
                actions: Actions::default(),
                limits: Limits::default(),
                reason: ProtectionReason::Normal,
            },
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProtectionConfig {
        &self.cfg
    }

    /// The latest state (as returned by the last `update`).
    pub fn state(&self) -> &ProtectionState {
        &self.state
    }

    /// The controller reports it completed a cycle at `now`.
    pub fn kick(&mut self, now: Millis) {
        self.last_kick = Some(now);
    }

    /// Clears the latched faults of `kind` whose condition is gone (for
    /// circuit kinds: every circuit whose current is back below release).
    pub fn clear_latched(&mut self, now: Millis, kind: FaultKind) -> Result<(), ClearRefused> {
        if !kind.row().latched {
            return Err(ClearRefused::NotLatched);
        }
        let trackers: &mut [Tracker] = match kind {
            FaultKind::CircuitOverCurrent => &mut self.circuit_oc,
            FaultKind::CircuitShortCircuit => &mut self.circuit_sc,
            _ => core::slice::from_mut(&mut self.kinds[kind.index()]),
        };
        let mut any_active = false;
        let mut refused = false;
        for t in trackers.iter_mut() {
            if t.active.is_some() {
                any_active = true;
                if t.present {
                    refused = true;
                } else {
                    t.active = None;
                    t.over_since = None;
                }
            }
        }
        if !any_active {
            return Err(ClearRefused::NotLatched);
        }
        self.rebuild(now);
        if refused {
            Err(ClearRefused::ConditionPresent)
        } else {
            Ok(())
        }
    }

    fn fresh(now: Millis, at: Option<Millis>, deadline_ms: u32) -> bool {
        at.is_some_and(|t| now.since(t) <= deadline_ms as u64)
    }

    fn step_limit(&mut self, now: Millis, kind: FaultKind, value: Option<f32>) {
        let Some(l) = self.cfg.limit(kind).copied() else {
            return;
        };
        let over = is_over(kind);
        let (beyond, released) = match value {
            Some(v) if over => (Some(v > l.threshold), Some(v <= l.release)),
            Some(v) => (Some(v < l.threshold), Some(v >= l.release)),
            None => (None, None),
        };
        let latched = kind.row().latched;
        self.kinds[kind.index()].step(now, beyond, released, l.debounce_ms, latched);
    }

    /// Evaluates every fault at `now` with the latest `inputs`; returns the
    /// faults, actions and limits (also kept for [`Protection::state`]).
    pub fn update(&mut self, now: Millis, inputs: &ProtectionInputs) -> &ProtectionState {
        let start = *self.started.get_or_insert(now);
        let health = self.input_health(now, start, inputs);
        self.step_thresholds(now, inputs, &health);
        self.step_circuits(now, inputs, health.circuits_ok);

        // Stale and invalid inputs (self-clearing, immediate).
        let stale = health.stale || inputs.link_lost;
        self.kinds[FaultKind::StaleInput.index()].step(now, Some(stale), Some(!stale), 0, false);
        let invalid = health.invalid;
        self.kinds[FaultKind::InvalidMeasurement.index()].step(
            now,
            Some(invalid),
            Some(!invalid),
            0,
            false,
        );
        self.step_corrupt_frames(now, inputs.corrupt_frames);

        // Watchdog (latched).
        let kick = self.last_kick.unwrap_or(start);
        let missed = now.since(kick) > self.cfg.watchdog_deadline_ms as u64;
        self.kinds[FaultKind::Watchdog.index()].step(now, Some(missed), Some(!missed), 0, true);

        self.rebuild_with(
            now,
            inputs,
            health.cell_ok,
            health.pack_ok,
            health.temp_ok,
            health.circuits_fresh && health.circuits_ok,
        );
        &self.state
    }

    /// Which measurement groups are fresh (within their deadline) and
    /// valid (finite) at `now`; a group never received has one deadline of
    /// grace after `start` before it counts as stale.
    fn input_health(&self, now: Millis, start: Millis, inputs: &ProtectionInputs) -> InputHealth {
        let d = self.cfg.deadlines;
        let cell_fresh = Self::fresh(now, inputs.cell_voltage_at, d.cell_voltage_ms);
        let pack_fresh = Self::fresh(now, inputs.pack_at, d.pack_ms);
        let temp_fresh = Self::fresh(now, inputs.temperature_at, d.temperature_ms);
        let bus_fresh = Self::fresh(now, inputs.bus_at, d.bus_ms);
        let circ_fresh = Self::fresh(now, inputs.circuits_at, d.circuits_ms);
        let grace = |at: Option<Millis>, dl: u32| at.is_none() && now.since(start) <= dl as u64;
        let stale_cell = !cell_fresh && !grace(inputs.cell_voltage_at, d.cell_voltage_ms);
        let stale_pack = !pack_fresh && !grace(inputs.pack_at, d.pack_ms);
        let stale_temp = !temp_fresh && !grace(inputs.temperature_at, d.temperature_ms);
        let stale_bus = !bus_fresh && !grace(inputs.bus_at, d.bus_ms);
        let stale_circ = !circ_fresh && !grace(inputs.circuits_at, d.circuits_ms);

        let cell_ok = cell_fresh && finite(&[inputs.cell_voltage_min_v, inputs.cell_voltage_max_v]);
        let pack_ok = pack_fresh && finite(&[inputs.pack_voltage_v, inputs.pack_current_a]);
        let temp_ok =
            temp_fresh && finite(&[inputs.cell_temperature_min_c, inputs.cell_temperature_max_c]);
        let bus_ok = bus_fresh && inputs.bus_voltage_v.is_finite();
        let circ_ok = circ_fresh && finite(&inputs.circuit_current_a);
        InputHealth {
            cell_ok,
            pack_ok,
            temp_ok,
            bus_ok,
            circuits_fresh: circ_fresh,
            circuits_ok: circ_ok,
            stale: stale_cell || stale_pack || stale_temp || stale_bus || stale_circ,
            invalid: (cell_fresh && !cell_ok)
                || (pack_fresh && !pack_ok)
                || (temp_fresh && !temp_ok)
                || (bus_fresh && !bus_ok)
                || (circ_fresh && !circ_ok),
        }
    }

    /// Each threshold fault watches one measurement, when it is valid.
    fn step_thresholds(&mut self, now: Millis, inputs: &ProtectionInputs, health: &InputHealth) {
        let cell = health.cell_ok;
        let pack = health.pack_ok;
        let temp = health.temp_ok;
        let bus = health.bus_ok;
        let watched = [
            (FaultKind::CellOverVoltage, cell, inputs.cell_voltage_max_v),
            (FaultKind::CellUnderVoltage, cell, inputs.cell_voltage_min_v),
            (FaultKind::ChargeOverCurrent, pack, -inputs.pack_current_a),
            (FaultKind::DischargeOverCurrent, pack, inputs.pack_current_a),
            (
                FaultKind::ChargeOverTemperature,
                temp,
                inputs.cell_temperature_max_c,
            ),
            (
                FaultKind::ChargeUnderTemperature,
                temp,
                inputs.cell_temperature_min_c,
            ),
            (
                FaultKind::DischargeOverTemperature,
                temp,
                inputs.cell_temperature_max_c,
            ),
            (
                FaultKind::DischargeUnderTemperature,
                temp,
                inputs.cell_temperature_min_c,
            ),
            (FaultKind::BusOverVoltage, bus, inputs.bus_voltage_v),
            (FaultKind::BusUnderVoltage, bus, inputs.bus_voltage_v),
        ];
        for (kind, ok, value) in watched {
            self.step_limit(now, kind, ok.then_some(value));
        }
    }

    /// Over-current and short circuit per circuit (both latched); a circuit
    /// not reported has no condition, unknown readings hold the state.
    fn step_circuits(&mut self, now: Millis, inputs: &ProtectionInputs, circuits_ok: bool) {
        let oc = self.cfg.circuit_over_current;
        let sc = self.cfg.circuit_short_circuit;
        for k in 0..MAX_CIRCUITS {
            let v = if circuits_ok {
                inputs.circuit_current_a.get(k).map(|x| x.abs())
            } else {
                None
            };
            match v {
                Some(a) => {
                    self.circuit_oc[k].step(
                        now,
                        Some(a > oc.threshold),
                        Some(a <= oc.release),
                        oc.debounce_ms,
                        true,
                    );
                    self.circuit_sc[k].step(
                        now,
                        Some(a > sc.threshold),
                        Some(a <= sc.release),
                        sc.debounce_ms,
                        true,
                    );
                }
                None if circuits_ok => {
                    // Circuit not fitted / not reported: no condition.
                    self.circuit_oc[k].step(now, Some(false), Some(true), 0, true);
                    self.circuit_sc[k].step(now, Some(false), Some(true), 0, true);
                }
                None => {
                    self.circuit_oc[k].step(now, None, None, 0, true);
                    self.circuit_sc[k].step(now, None, None, 0, true);
                }
            }
        }
    }

    /// Corrupt frames within the window (latched): the link layer's
    /// cumulative `count` is kept per update (a decrease is a counter
    /// reset) and compared with the oldest count in the window.
    fn step_corrupt_frames(&mut self, now: Millis, count: u32) {
        if let Some(&(_, last)) = self.corrupt.back() {
            if count < last {
                self.corrupt.clear();
            }
        }
        if self.corrupt.is_full() {
            let _ = self.corrupt.pop_front();
        }
        let _ = self.corrupt.push_back((now, count));
        while let Some(&(t, _)) = self.corrupt.front() {
            if now.since(t) > self.cfg.corrupt_window_ms as u64 && self.corrupt.len() > 1 {
                let _ = self.corrupt.pop_front();
            } else {
                break;
            }
        }
        let base = self.corrupt.front().map(|&(_, c)| c).unwrap_or(count);
        let in_window = count.saturating_sub(base);
        let too_many = in_window > self.cfg.corrupt_max_count;
        self.kinds[FaultKind::CorruptInput.index()].step(
            now,
            Some(too_many),
            Some(!too_many),
            0,
            true,
        );
    }

    fn rebuild(&mut self, _now: Millis) {
        // Recompute faults/actions but keep the last limits' inputs: limits
        // can only get stricter until the next update, so keep them.
        let limits = self.state.limits;
        self.collect();
        let l = &mut self.state.limits;
        l.max_charge_current_a = limits.max_charge_current_a.min(l.max_charge_current_a);
        l.max_discharge_current_a = limits
            .max_discharge_current_a
            .min(l.max_discharge_current_a);
        l.max_charge_power_w = limits.max_charge_power_w.min(l.max_charge_power_w);
        l.max_discharge_power_w = limits.max_discharge_power_w.min(l.max_discharge_power_w);
    }

    /// Faults and actions from the trackers; limits at their configured
    /// maxima gated by the actions (no derating).
    fn collect(&mut self) {
        let mut faults: heapless::Vec<Fault, MAX_FAULTS> = heapless::Vec::new();
        let mut a = Actions::default();
        for kind in FaultKind::ALL {
            let row = kind.row();
            match kind {
                FaultKind::CircuitOverCurrent | FaultKind::CircuitShortCircuit => {
                    let trackers = if kind == FaultKind::CircuitOverCurrent {
                        &self.circuit_oc
                    } else {
                        &self.circuit_sc
                    };
                    for (k, t) in trackers.iter().enumerate() {
                        if let Some(since) = t.active {
                            let _ = faults.push(Fault {
                                kind,
                                since,
                                latched: row.latched,
                                circuit: Some(k as u8),
                            });
                            a.apply(row.safe_state, Some(k));
                        }
                    }
                }
                _ => {
                    if let Some(since) = self.kinds[kind.index()].active {
                        let _ = faults.push(Fault {
                            kind,
                            since,
                            latched: row.latched,
                            circuit: None,
                        });
                        a.apply(row.safe_state, None);
                    }
                }
            }
        }
        // Stale circuit data: trip every circuit (cannot see a short).
        let reason = match faults.first() {
            Some(f) => ProtectionReason::Fault(f.kind),
            None => ProtectionReason::Normal,
        };
        let mut limits = Limits {
            max_charge_current_a: self.cfg.max_charge_current_a,
            max_discharge_current_a: self.cfg.max_discharge_current_a,
            max_charge_power_w: 0.0,
            max_discharge_power_w: 0.0,
        };
        if a.block_charge {
            limits.max_charge_current_a = 0.0;
        }
        if a.block_discharge {
            limits.max_discharge_current_a = 0.0;
        }
        self.state.faults = faults;
        self.state.actions = a;
        self.state.limits = limits;
        self.state.reason = reason;
    }

    fn rebuild_with(
        &mut self,
        now: Millis,
        inputs: &ProtectionInputs,
        cell_ok: bool,
        pack_ok: bool,
        temp_ok: bool,
        circ_ok: bool,
    ) {
        let _ = now;
        self.collect();
        if !circ_ok && self.state.has(FaultKind::StaleInput) {
            self.state.actions.trip_circuits = u16::MAX;
        }
        // Instantaneous limits (no debounce) with derating.
        let c = &self.cfg;
        let mut kc = 1.0f32;
        let mut kd = 1.0f32;
        if cell_ok {
            let vb = c.voltage_derate_band_v;
            let ov = c.cell_over_voltage.threshold;
            let uv = c.cell_under_voltage.threshold;
            kc = kc.min(ramp(inputs.cell_voltage_max_v, ov, ov - vb));
            kd = kd.min(ramp(inputs.cell_voltage_min_v, uv, uv + vb));
            if inputs.cell_voltage_max_v >= ov {
                kc = 0.0;
            }
            if inputs.cell_voltage_min_v <= uv {
                kd = 0.0;
            }
        } else {
            kc = 0.0;
            kd = 0.0;
        }
        if temp_ok {
            let tb = c.temperature_derate_band_c;
            let (tmin, tmax) = (inputs.cell_temperature_min_c, inputs.cell_temperature_max_c);
            let cot = c.charge_over_temperature.threshold;
            let cut = c.charge_under_temperature.threshold;
            let dot = c.discharge_over_temperature.threshold;
            let dut = c.discharge_under_temperature.threshold;
            kc = kc
                .min(ramp(tmax, cot, cot - tb))
                .min(ramp(tmin, cut, cut + tb));
            kd = kd
                .min(ramp(tmax, dot, dot - tb))
                .min(ramp(tmin, dut, dut + tb));
            if tmax >= cot || tmin <= cut {
                kc = 0.0;
            }
            if tmax >= dot || tmin <= dut {
                kd = 0.0;
            }
        } else {
            kc = 0.0;
            kd = 0.0;
        }
        let l = &mut self.state.limits;
        let before = *l;
        l.max_charge_current_a = (l.max_charge_current_a * kc).max(0.0);
        l.max_discharge_current_a = (l.max_discharge_current_a * kd).max(0.0);
        let v = if pack_ok && inputs.pack_voltage_v > 0.0 {
            inputs.pack_voltage_v
        } else {
            0.0
        };
        l.max_charge_power_w = l.max_charge_current_a * v;
        l.max_discharge_power_w = l.max_discharge_current_a * v;
        if !(l.max_charge_current_a.is_finite() && l.max_discharge_current_a.is_finite()) {
            *l = Limits::default();
        }
        if self.state.reason == ProtectionReason::Normal
            && (l.max_charge_current_a < before.max_charge_current_a
                || l.max_discharge_current_a < before.max_discharge_current_a)
        {
            self.state.reason = ProtectionReason::Derated;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn good(now: Millis) -> ProtectionInputs {
        let mut c = heapless::Vec::new();
        for _ in 0..4 {
            c.push(2.0).unwrap();
        }
        ProtectionInputs {
            cell_voltage_min_v: 3.25,
            cell_voltage_max_v: 3.3,
            cell_voltage_at: Some(now),
            pack_voltage_v: 52.5,
            pack_current_a: 10.0,
            pack_at: Some(now),
            cell_temperature_min_c: 20.0,
            cell_temperature_max_c: 22.0,
            temperature_at: Some(now),
            bus_voltage_v: 48.0,
            bus_at: Some(now),
            circuit_current_a: c,
            circuits_at: Some(now),
            corrupt_frames: 0,
            link_lost: false,
        }
    }

    /// Runs `f`-modified inputs every 100 ms from `t0` to `t1` (inclusive),
    /// kicking the watchdog; returns the last state.
    fn run(
        p: &mut Protection,
        t0: u64,
        t1: u64,
        f: impl Fn(&mut ProtectionInputs),
    ) -> ProtectionState {
        let mut t = t0;
        loop {
            let now = Millis(t);
            p.kick(now);
            let mut i = good(now);
            f(&mut i);
            p.update(now, &i);
            if t >= t1 {
                return p.state().clone();
            }
            t += 100;
        }
    }

    #[test]
    fn default_config_is_valid_and_table_prints() {
        ProtectionConfig::default().validate().unwrap();
        let mut s: heapless::String<4096> = heapless::String::new();
        table_markdown(&mut s).unwrap();
        assert!(s.contains("| CellOverVoltage | max cell voltage > | 3.65 V |"));
        assert_eq!(s.lines().count(), 2 + N_KINDS);
        for (k, r) in FaultKind::ALL.iter().zip(PROTECTION_TABLE.iter()) {
            assert_eq!(*k, r.kind);
        }
    }

    /// `firmware/README.md` carries the protection table; it must be the
    /// one the code generates (regenerate it with `table_markdown`).
    #[cfg(feature = "std")]
    #[test]
    fn readme_table_matches_the_code() {
        let mut s = std::string::String::new();
        table_markdown(&mut s).unwrap();
        let readme = include_str!("../README.md");
        for line in s.lines() {
            assert!(
                readme.contains(line),
                "firmware/README.md is missing or has a stale protection row:\n{line}"
            );
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn parses_from_toml_with_defaults_and_rejects_unknown_keys() {
        let c: ProtectionConfig = toml::from_str(
            "max_charge_current_a = 50.0\n\
             cell_over_voltage = { threshold = 3.6, release = 3.5, debounce_ms = 2000 }\n\
             [deadlines]\nbus_ms = 200\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.max_charge_current_a, 50.0);
        assert_eq!(c.cell_over_voltage.debounce_ms, 2000);
        assert_eq!(c.deadlines.bus_ms, 200);
        assert_eq!(c.deadlines.cell_voltage_ms, 1000);
        assert!(toml::from_str::<ProtectionConfig>("max_charge_a = 1.0").is_err());
    }

    #[test]
    fn validate_rejects_inverted_hysteresis() {
        let mut c = ProtectionConfig::default();
        c.cell_over_voltage.release = 3.7;
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "cell_over_voltage"
        );
        let mut c = ProtectionConfig::default();
        c.bus_under_voltage.threshold = f32::NAN;
        assert!(c.validate().is_err());
    }

    #[test]
    fn healthy_inputs_no_faults_full_limits() {
        let mut p = Protection::new(ProtectionConfig::default());
        let s = run(&mut p, 0, 10_000, |_| {});
        assert!(s.faults.is_empty(), "{:?}", s.faults);
        assert_eq!(s.reason, ProtectionReason::Normal);
        assert_eq!(s.limits.max_charge_current_a, 100.0);
        assert_eq!(s.limits.max_discharge_current_a, 150.0);
        assert_eq!(s.limits.max_charge_power_w, 100.0 * 52.5);
    }

    type Setter = fn(&mut ProtectionInputs);

    /// Each threshold fault: trips after its debounce and not before.
    #[test]
    fn each_threshold_fault_trips_after_debounce_not_before() {
        let cases: [(FaultKind, Setter); 11] = [
            (FaultKind::CellOverVoltage, |i| i.cell_voltage_max_v = 3.7),
            (FaultKind::CellUnderVoltage, |i| i.cell_voltage_min_v = 2.4),
            (FaultKind::ChargeOverCurrent, |i| i.pack_current_a = -120.0),
            (FaultKind::DischargeOverCurrent, |i| {
                i.pack_current_a = 170.0
            }),
            (FaultKind::ChargeOverTemperature, |i| {
                i.cell_temperature_max_c = 47.0
            }),
            (FaultKind::ChargeUnderTemperature, |i| {
                i.cell_temperature_min_c = -2.0
            }),
            (FaultKind::DischargeOverTemperature, |i| {
                i.cell_temperature_max_c = 65.0
            }),
            (FaultKind::DischargeUnderTemperature, |i| {
                i.cell_temperature_min_c = -25.0
            }),
            (FaultKind::BusOverVoltage, |i| i.bus_voltage_v = 60.0),
            (FaultKind::BusUnderVoltage, |i| i.bus_voltage_v = 35.0),
            (FaultKind::CircuitOverCurrent, |i| {
                i.circuit_current_a[2] = 12.0
            }),
        ];
        for (kind, set) in cases {
            let mut p = Protection::new(ProtectionConfig::default());
            run(&mut p, 0, 1000, |_| {});
            let deb = kind.row().debounce_ms as u64;
            // Onset at 1100; just before the debounce ends: not tripped.
            if deb >= 100 {
                let s = run(&mut p, 1100, 1100 + deb - 100, set);
                assert!(!s.has(kind), "{kind:?} tripped before debounce");
            }
            let s = run(&mut p, 1100 + deb.saturating_sub(100), 1100 + deb, set);
            assert!(s.has(kind), "{kind:?} not tripped at debounce");
            let f = s.faults.iter().find(|f| f.kind == kind).unwrap();
            assert_eq!(f.latched, kind.row().latched);
            assert!(f.since.0 - 1100 <= kind.row().reaction_ms as u64);
            // The safe state is commanded.
            let a = s.actions;
            match kind.row().safe_state {
                SafeState::BlockCharge => assert!(a.block_charge),
                SafeState::BlockDischarge => assert!(a.block_discharge),
                SafeState::OpenContactor => assert!(a.open_contactor),
                SafeState::DisableSources => assert!(a.disable_pv && a.block_discharge),
                SafeState::TripCircuit => assert_eq!(a.trip_circuits, 1 << 2),
                SafeState::TripAllCircuits => assert_eq!(a.trip_circuits, u16::MAX),
                SafeState::AllOff => assert!(a.all_off),
            }
        }
    }

    #[test]
    fn short_circuit_trips_at_once_and_brief_excursions_do_not_trip() {
        let mut p = Protection::new(ProtectionConfig::default());
        run(&mut p, 0, 500, |_| {});
        // A 0.5 s over-voltage blip (debounce 1 s) does not trip.
        let s = run(&mut p, 600, 1000, |i| i.cell_voltage_max_v = 3.7);
        assert!(!s.has(FaultKind::CellOverVoltage));
        assert_eq!(s.limits.max_charge_current_a, 0.0, "limits act at once");
        let s = run(&mut p, 1100, 1100, |_| {});
        assert!(s.faults.is_empty());
        let s = run(&mut p, 1200, 1200, |i| i.circuit_current_a[0] = 80.0);
        assert!(s.has(FaultKind::CircuitShortCircuit));
        assert_eq!(s.actions.trip_circuits & 1, 1);
    }

    #[test]
    fn self_clearing_fault_clears_only_past_release() {
        let mut p = Protection::new(ProtectionConfig::default());
        let s = run(&mut p, 0, 2000, |i| i.cell_voltage_max_v = 3.7);
        assert!(s.has(FaultKind::CellOverVoltage));
        // Between release and threshold: still active (hysteresis).
        let s = run(&mut p, 2100, 3000, |i| i.cell_voltage_max_v = 3.6);
        assert!(s.has(FaultKind::CellOverVoltage));
        let s = run(&mut p, 3100, 3100, |i| i.cell_voltage_max_v = 3.5);
        assert!(!s.has(FaultKind::CellOverVoltage));
    }

    #[test]
    fn latched_fault_stays_until_cleared_and_not_while_present() {
        let mut p = Protection::new(ProtectionConfig::default());
        let s = run(&mut p, 0, 2000, |i| i.pack_current_a = 200.0);
        assert!(s.has(FaultKind::DischargeOverCurrent));
        assert!(s.actions.open_contactor);
        assert_eq!(
            p.clear_latched(Millis(2000), FaultKind::DischargeOverCurrent),
            Err(ClearRefused::ConditionPresent)
        );
        // Condition gone: still latched.
        let s = run(&mut p, 2100, 5000, |i| i.pack_current_a = 0.0);
        assert!(s.has(FaultKind::DischargeOverCurrent));
        assert_eq!(s.limits.max_discharge_current_a, 0.0);
        assert_eq!(
            p.clear_latched(Millis(5000), FaultKind::DischargeOverCurrent),
            Ok(())
        );
        assert!(!p.state().has(FaultKind::DischargeOverCurrent));
        let s = run(&mut p, 5100, 5100, |i| i.pack_current_a = 0.0);
        assert!(s.faults.is_empty());
        assert_eq!(
            p.clear_latched(Millis(5100), FaultKind::DischargeOverCurrent),
            Err(ClearRefused::NotLatched)
        );
        assert_eq!(
            p.clear_latched(Millis(5100), FaultKind::CellOverVoltage),
            Err(ClearRefused::NotLatched)
        );
    }

    #[test]
    fn circuit_latch_clears_per_circuit() {
        let mut p = Protection::new(ProtectionConfig::default());
        run(&mut p, 0, 1500, |i| {
            i.circuit_current_a[1] = 12.0;
            i.circuit_current_a[3] = 12.0;
        });
        let s = run(&mut p, 1600, 1600, |i| i.circuit_current_a[1] = 12.0);
        assert_eq!(s.actions.trip_circuits, (1 << 1) | (1 << 3));
        assert_eq!(
            p.clear_latched(Millis(1600), FaultKind::CircuitOverCurrent),
            Err(ClearRefused::ConditionPresent)
        );
        assert_eq!(p.state().actions.trip_circuits, 1 << 1);
    }

    #[test]
    fn a_lost_link_is_a_stale_input_until_restored() {
        let mut p = Protection::new(ProtectionConfig::default());
        run(&mut p, 0, 500, |_| {});
        let s = run(&mut p, 600, 600, |i| i.link_lost = true);
        assert!(s.has(FaultKind::StaleInput));
        assert!(s.actions.open_contactor);
        // Circuits are still seen: not all tripped.
        assert_eq!(s.actions.trip_circuits, 0);
        let s = run(&mut p, 700, 700, |_| {});
        assert!(!s.has(FaultKind::StaleInput));
        assert!(!s.actions.open_contactor);
    }

    #[test]
    fn stale_input_trips_at_its_deadline() {
        let mut p = Protection::new(ProtectionConfig::default());
        run(&mut p, 0, 1000, |_| {});
        // Cell voltages stop at 1000; deadline 1000 ms.
        let s = run(&mut p, 1100, 2000, |i| {
            i.cell_voltage_at = Some(Millis(1000))
        });
        assert!(!s.has(FaultKind::StaleInput));
        let s = run(&mut p, 2100, 2100, |i| {
            i.cell_voltage_at = Some(Millis(1000))
        });
        assert!(s.has(FaultKind::StaleInput));
        assert!(s.actions.open_contactor);
        assert_eq!(s.limits.max_charge_current_a, 0.0);
        assert_eq!(s.limits.max_discharge_current_a, 0.0);
        // Fresh data clears it (self-clearing).
        let s = run(&mut p, 2200, 2200, |_| {});
        assert!(!s.has(FaultKind::StaleInput));
    }

    #[test]
    fn never_received_input_is_stale_after_its_deadline_from_start() {
        let mut p = Protection::new(ProtectionConfig::default());
        let s = run(&mut p, 0, 500, |i| i.circuits_at = None);
        assert!(!s.has(FaultKind::StaleInput));
        let s = run(&mut p, 600, 1100, |i| i.circuits_at = None);
        assert!(s.has(FaultKind::StaleInput));
        assert_eq!(s.actions.trip_circuits, u16::MAX);
    }

    #[test]
    fn nan_measurement_drives_the_safe_side() {
        let mut p = Protection::new(ProtectionConfig::default());
        run(&mut p, 0, 500, |_| {});
        let s = run(&mut p, 600, 600, |i| i.cell_voltage_max_v = f32::NAN);
        assert!(s.has(FaultKind::InvalidMeasurement));
        assert_eq!(s.limits.max_charge_current_a, 0.0);
        assert_eq!(s.limits.max_discharge_current_a, 0.0);
        assert!(s.actions.open_contactor);
        let s = run(&mut p, 700, 700, |i| i.bus_voltage_v = f32::INFINITY);
        assert!(s.has(FaultKind::InvalidMeasurement));
        let s = run(&mut p, 800, 800, |_| {});
        assert!(!s.has(FaultKind::InvalidMeasurement));
    }

    #[test]
    fn corrupt_frames_over_threshold_in_window_latch() {
        let mut p = Protection::new(ProtectionConfig::default());
        // 1 frame per second: 10 in a 10 s window is allowed.
        for k in 0..60u64 {
            let s = run(&mut p, k * 1000, k * 1000, |i| i.corrupt_frames = k as u32);
            assert!(!s.has(FaultKind::CorruptInput), "at {k}");
        }
        // A burst of 11 within 1 s.
        let s = run(&mut p, 60_000, 60_000, |i| i.corrupt_frames = 59 + 11);
        assert!(s.has(FaultKind::CorruptInput));
        assert!(s.actions.open_contactor);
        // Stays latched after the window passes; clearable then.
        let s = run(&mut p, 60_100, 75_000, |i| i.corrupt_frames = 70);
        assert!(s.has(FaultKind::CorruptInput));
        assert_eq!(
            p.clear_latched(Millis(75_000), FaultKind::CorruptInput),
            Ok(())
        );
    }

    #[test]
    fn missed_watchdog_enters_all_off() {
        let mut p = Protection::new(ProtectionConfig::default());
        run(&mut p, 0, 1000, |_| {});
        // No kicks from 1000 on.
        p.update(Millis(1400), &good(Millis(1400)));
        assert!(!p.state().has(FaultKind::Watchdog));
        p.update(Millis(1600), &good(Millis(1600)));
        let s = p.state();
        assert!(s.has(FaultKind::Watchdog));
        assert!(s.actions.all_off && s.actions.open_contactor && s.actions.disable_pv);
        assert_eq!(s.actions.trip_circuits, u16::MAX);
        assert_eq!(s.limits.max_charge_current_a, 0.0);
        p.kick(Millis(1700));
        p.update(Millis(1700), &good(Millis(1700)));
        assert!(p.state().has(FaultKind::Watchdog), "latched");
        assert_eq!(p.clear_latched(Millis(1700), FaultKind::Watchdog), Ok(()));
    }

    #[test]
    fn derating_near_limits() {
        let mut p = Protection::new(ProtectionConfig::default());
        let s = run(&mut p, 0, 0, |i| i.cell_voltage_max_v = 3.6);
        assert!((s.limits.max_charge_current_a - 50.0).abs() < 1.0);
        assert_eq!(s.limits.max_discharge_current_a, 150.0);
        assert_eq!(s.reason, ProtectionReason::Derated);
        let s = run(&mut p, 100, 100, |i| i.cell_temperature_max_c = 42.5);
        assert!((s.limits.max_charge_current_a - 50.0).abs() < 1.0);
        let s = run(&mut p, 200, 200, |i| i.cell_voltage_min_v = 2.55);
        assert!((s.limits.max_discharge_current_a - 75.0).abs() < 1.0);
    }

    fn meas() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<f32>(),
            -50.0f32..80.0,
            2.0f32..4.0,
            Just(f32::NAN),
            Just(f32::INFINITY)
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_inputs_never_panic_and_protection_wins(
            steps in proptest::collection::vec(
                (0u64..3000, meas(), meas(), meas(), meas(), meas(), meas(), meas(),
                 proptest::collection::vec(meas(), 0..20), any::<u32>(), any::<bool>(), any::<bool>()),
                1..60)
        ) {
            let cfg = ProtectionConfig::default();
            let ov = cfg.cell_over_voltage.threshold;
            let uv = cfg.cell_under_voltage.threshold;
            let mut p = Protection::new(cfg);
            let mut t = 0u64;
            for (dt, vmin, vmax, pv, pi, tmin, tmax, bus, circ, corrupt, kick, stale) in steps {
                t = t.saturating_add(dt);
                let now = Millis(t);
                if kick { p.kick(now); }
                let mut c = heapless::Vec::new();
                for x in circ.into_iter().take(MAX_CIRCUITS) { let _ = c.push(x); }
                let at = if stale { Some(Millis(t.saturating_sub(5000))) } else { Some(now) };
                // Data 5 s old is stale only once 5 s have passed since start.
                let stale = stale && t >= 5000;
                let inp = ProtectionInputs {
                    cell_voltage_min_v: vmin, cell_voltage_max_v: vmax, cell_voltage_at: at,
                    pack_voltage_v: pv, pack_current_a: pi, pack_at: Some(now),
                    cell_temperature_min_c: tmin, cell_temperature_max_c: tmax, temperature_at: Some(now),
                    bus_voltage_v: bus, bus_at: Some(now),
                    circuit_current_a: c, circuits_at: Some(now),
                    corrupt_frames: corrupt, link_lost: false,
                };
                let s = p.update(now, &inp).clone();
                let l = s.limits;
                for x in [l.max_charge_current_a, l.max_discharge_current_a, l.max_charge_power_w, l.max_discharge_power_w] {
                    prop_assert!(x.is_finite() && x >= 0.0);
                }
                if vmax.is_nan() || vmax >= ov || stale {
                    prop_assert_eq!(l.max_charge_current_a, 0.0);
                    prop_assert_eq!(l.max_charge_power_w, 0.0);
                }
                if vmin.is_nan() || vmin <= uv || stale {
                    prop_assert_eq!(l.max_discharge_current_a, 0.0);
                }
                if s.actions.block_charge { prop_assert_eq!(l.max_charge_current_a, 0.0); }
                if s.actions.block_discharge { prop_assert_eq!(l.max_discharge_current_a, 0.0); }
            }
        }
    }
}
