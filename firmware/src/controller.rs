//! The controller: composes the control functions into one sans-IO state
//! machine (the quinn-proto shape).
//!
//! ```text
//!   handle(now, Input)  ──▶  measurements, messages  ──▶  functions
//!   poll_output()       ◀──  PlantCommand (every control period), acks,
//!                             verdicts, reports, telemetry
//!   poll_timeout()      ──▶  when to call handle(now, Input::Tick) next
//! ```
//!
//! Two rates: protection every [`protection::MAX_UPDATE_PERIOD_MS`] (100
//! ms), everything else every `control_period_ms` (1 s by default).
//!
//! Each control period runs as a short sequence: gather the measurements,
//! ask every function for its proposal, let
//! [`crate::arbitration`] decide each actuator (protection first, then
//! resilience, remote signals, peak reduction, export control, scheduling,
//! selective supply; the order is documented there), then log the changes
//! and emit the [`PlantCommand`].
//!
//! Uses every function module and `arbitration`; owns the measurements, the
//! timing and the output queue, and decides nothing about an actuator
//! itself.

use crate::arbitration::{
    self, ExportProposal, PeakProposal, Proposals, ProtectionAllowance, RemoteProposal,
    ResilienceProposal, ScheduleProposal, Site, SocketProposal, SurplusProposal,
};
pub use crate::arbitration::{
    BatteryCommand, ChargerCommand, InverterCommand, PvCommand, SwitchCommand,
};
use crate::cluster::{
    self, Cluster, ClusterCommand, ClusterConfig, ClusterReason, ConfigVerdict, DispatchContext,
    PowerLimits, SignatureCheck, StrictCheck, Verdict,
};
use crate::config::{check_order, check_range, ConfigError, Order, POSITIVE};
use crate::decision::{DecisionLog, Function, LoggedReason, Reason};
use crate::demand::{
    self, Ack, ComplianceReport, DemandCommand, DemandConfig, DemandManager, DemandSignal,
};
use crate::estimation::{Estimate, EstimationConfig, EstimationInputs, Estimator};
use crate::export::{ExportConfig, ExportController, ExportInputs, SurplusInputs, SurplusToAc};
use crate::hub::{
    ChannelReading, Hub, HubConfig, HubSample, MeterRegisters, Reading, TelemetrySnapshot,
};
use crate::num::non_negative;
use crate::peak::{PeakConfig, PeakInputs, PeakReport, PeakShaver};
use crate::protection::{self, Protection, ProtectionConfig, ProtectionInputs};
use crate::resilience::{Resilience, ResilienceConfig, ResilienceInputs};
use crate::scheduling::{ChargeNowRequest, ScheduleInputs, Scheduler, SchedulingConfig};
use crate::selective::{Selective, SelectiveConfig, SocketInput};
use crate::time::{LocalTime, Millis};
use crate::wire::cluster_report::ClusterReport;
use crate::wire::dispatch::Command;

/// Most circuits and sockets a controller drives.
pub const MAX_CIRCUITS: usize = 16;
pub const MAX_SOCKETS: usize = 16;
/// Capacity of the output queue; older outputs are kept, new ones beyond it
/// are dropped and counted.
pub const OUTPUT_QUEUE: usize = 16;
/// Capacity of the decision log.
pub const DECISION_LOG: usize = 256;

fn default_control_period_ms() -> u32 {
    1000
}
fn default_telemetry_period_ms() -> u32 {
    60_000
}
fn default_floor_soc() -> f32 {
    0.02
}
fn yes() -> bool {
    true
}

/// The assembly itself: what every function needs to know about the plant.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssemblyConfig {
    /// Site id (also the cluster's own site id when a cluster is configured).
    pub site_id: u32,
    /// Usable battery energy when new, Wh.
    pub usable_capacity_wh: f32,
    /// Converter power limits at the pack terminals, W.
    pub max_charge_w: f32,
    pub max_discharge_w: f32,
    /// SOC below which the battery never discharges, even in a power cut.
    #[serde(default = "default_floor_soc")]
    pub floor_soc: f32,
    /// Whether an inverter is fitted (AC loads can run from the battery).
    #[serde(default = "yes")]
    pub inverter_fitted: bool,
    /// Whether the site may export to the grid at all.
    #[serde(default)]
    pub export_allowed: bool,
    /// Number of DC circuits and USB-PD sockets (≤ 16 each).
    pub circuits: u8,
    #[serde(default)]
    pub sockets: u8,
    /// SOC to start from until the estimator has settled (e.g. restored
    /// from non-volatile memory).
    #[serde(default = "half")]
    pub initial_soc: f32,
}

fn half() -> f32 {
    0.5
}

/// The controller's whole configuration: one table per function.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    pub assembly: AssemblyConfig,
    #[serde(default = "default_control_period_ms")]
    pub control_period_ms: u32,
    #[serde(default = "default_telemetry_period_ms")]
    pub telemetry_period_ms: u32,
    #[serde(default)]
    pub estimation: EstimationConfig,
    #[serde(default)]
    pub protection: ProtectionConfig,
    #[serde(default)]
    pub scheduling: SchedulingConfig,
    #[serde(default)]
    pub peak: PeakConfig,
    #[serde(default)]
    pub export: ExportConfig,
    #[serde(default)]
    pub demand: DemandConfig,
    #[serde(default)]
    pub resilience: ResilienceConfig,
    #[serde(default)]
    pub selective: SelectiveConfig,
    #[serde(default)]
    pub hub: HubConfig,
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    /// The CAN/P1 link layer (`[link]`, used by [`crate::node::Node`]).
    #[serde(default)]
    pub link: Option<crate::link_config::LinkConfig>,
}

impl AssemblyConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("usable_capacity_wh", self.usable_capacity_wh, POSITIVE)?;
        check_range("max_charge_w", self.max_charge_w, POSITIVE)?;
        check_range("max_discharge_w", self.max_discharge_w, POSITIVE)?;
        check_range("floor_soc", self.floor_soc, 0.0..=1.0)?;
        check_range("initial_soc", self.initial_soc, 0.0..=1.0)?;
        check_range("circuits", usize::from(self.circuits), ..=MAX_CIRCUITS)?;
        check_range("sockets", usize::from(self.sockets), ..=MAX_SOCKETS)
    }
}

impl ControllerConfig {
    /// Checks every table; the error names the table and field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.assembly.validate().map_err(|e| e.within("assembly"))?;
        check_range("control_period_ms", self.control_period_ms, 100..=60_000)?;
        check_order(
            "telemetry_period_ms",
            self.telemetry_period_ms,
            Order::AtLeast,
            "control_period_ms",
            self.control_period_ms,
        )?;
        self.validate_functions()?;
        if let Some(c) = &self.cluster {
            c.validate().map_err(|e| e.within("cluster"))?;
            check_order(
                "remote_config.reserve_soc_max",
                c.remote_config.reserve_soc_max,
                Order::Below,
                "scheduling.max_target_soc",
                self.scheduling.max_target_soc,
            )
            .map_err(|e| e.within("cluster"))?;
        }
        if let Some(l) = &self.link {
            l.validate().map_err(|e| e.within("link"))?;
        }
        Ok(())
    }

    /// Each function's table, named in its errors.
    fn validate_functions(&self) -> Result<(), ConfigError> {
        self.estimation
            .validate()
            .map_err(|e| e.within("estimation"))?;
        self.protection
            .validate()
            .map_err(|e| e.within("protection"))?;
        self.scheduling
            .validate()
            .map_err(|e| e.within("scheduling"))?;
        self.peak.validate().map_err(|e| e.within("peak"))?;
        self.export.validate().map_err(|e| e.within("export"))?;
        self.demand.validate().map_err(|e| e.within("demand"))?;
        self.resilience
            .validate()
            .map_err(|e| e.within("resilience"))?;
        self.selective
            .validate()
            .map_err(|e| e.within("selective"))?;
        self.hub.validate().map_err(|e| e.within("hub"))
    }
}

// ---------------------------------------------------------------------------
// Inputs

/// Pack measurements (from the BMS over CAN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackMeasurement {
    pub pack_voltage_v: f32,
    /// Positive = discharge.
    pub pack_current_a: f32,
    pub cell_voltage_min_v: f32,
    pub cell_voltage_max_v: f32,
    pub cell_temperature_min_c: f32,
    pub cell_temperature_max_c: f32,
}

/// One DC circuit's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CircuitMeasurement {
    pub power_w: f32,
    pub current_a: f32,
}

/// The meter's view of the connection point (from the P1 port).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterMeasurement {
    /// Positive = import.
    pub grid_power_w: f32,
    /// Tariff indicator: 1 = low (off-peak), 2 = normal.
    pub tariff: u8,
    pub mains_present: bool,
    pub import_wh: f64,
    pub export_wh: f64,
}

/// Everything the controller can be told.
// Inputs live on the stack (no heap in the core), so variants differ in size.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    Pack(PackMeasurement),
    Bus {
        bus_voltage_v: f32,
    },
    /// All circuits, in circuit order.
    Circuits(heapless::Vec<CircuitMeasurement, MAX_CIRCUITS>),
    /// All sockets, in socket order.
    Sockets(heapless::Vec<SocketInput, MAX_SOCKETS>),
    Pv {
        power_w: f32,
    },
    Charger {
        ac_power_w: f32,
    },
    Inverter {
        ac_power_w: f32,
    },
    Meter(MeterMeasurement),
    /// Wall-clock sync (uplink or meter): UTC seconds and local time.
    Clock {
        utc_s: u64,
        local: LocalTime,
    },
    /// A demand-management signal (meter-derived or from the server).
    Demand(DemandSignal),
    /// A low-carbon "charge now" request.
    ChargeNow(ChargeNowRequest),
    /// A signed dispatch message from the remote server, as received
    /// (`firmware/docs/dispatch.md`: Sink, Source, Cancel, Heartbeat).
    Dispatch(&'a [u8]),
    /// A signed configuration message from the remote server, as received
    /// (`firmware/docs/config-message.md`).
    Config(&'a [u8]),
    /// The remote server asks for the assembly's cluster report: answered
    /// at once with [`Output::ClusterReport`] (only with a `[cluster]`).
    ClusterReportRequest,
    /// The link layer saw a corrupt frame.
    CorruptFrame,
    /// Mains presence from the plant's own mains sensor (CAN `MainsStatus`).
    /// Once received it wins over the meter's `mains_present`: in a power
    /// cut the meter goes dark, the plant keeps reporting.
    Mains {
        present: bool,
    },
    /// The link layer found the meter silent past its deadline: the grid
    /// measurement is forgotten (as before the first telegram), so no
    /// function keeps using an old grid power as if it were fresh. The
    /// meter's last mains flag is kept.
    MeterLost,
    /// A safety-relevant status frame missed its deadline (link layer):
    /// protection holds its stale-input safe state until
    /// [`Input::LinkRestored`].
    LinkLost,
    /// Every safety-relevant status frame is within its deadline again.
    LinkRestored,
    /// Nothing new: time passed (call at `poll_timeout()`).
    Tick,
}

// ---------------------------------------------------------------------------
// Outputs

/// The whole plant's command, sent every control period (like a cyclic CAN
/// frame), each part with its reason.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantCommand {
    pub battery: BatteryCommand,
    pub charger: ChargerCommand,
    pub inverter: InverterCommand,
    pub pv: PvCommand,
    pub circuits: heapless::Vec<SwitchCommand, MAX_CIRCUITS>,
    pub sockets: heapless::Vec<SwitchCommand, MAX_SOCKETS>,
}

/// What the controller hands out.
// Outputs are queued by value (no heap in the core).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Plant(PlantCommand),
    DemandAck(Ack),
    DispatchVerdict(Verdict),
    /// The verdict on an [`Input::Config`] (only with a `[cluster]`).
    ConfigVerdict(ConfigVerdict),
    PeakReport(PeakReport),
    Compliance(ComplianceReport),
    Telemetry(TelemetrySnapshot),
    /// The answer to [`Input::ClusterReportRequest`], for the uplink to
    /// send as [`ClusterReport::emit`]'s bytes.
    ClusterReport(ClusterReport),
}

// ---------------------------------------------------------------------------
// The controller

/// Latest measurements, with when they arrived.
#[derive(Debug, Clone, Default)]
struct Measured {
    pack: Option<(Millis, PackMeasurement)>,
    bus: Option<(Millis, f32)>,
    circuits: Option<(Millis, heapless::Vec<CircuitMeasurement, MAX_CIRCUITS>)>,
    sockets: heapless::Vec<SocketInput, MAX_SOCKETS>,
    pv_w: Option<(Millis, f32)>,
    charger_ac_w: f32,
    inverter_ac_w: f32,
    meter: Option<(Millis, MeterMeasurement)>,
    clock: Option<(Millis, u64, LocalTime)>,
    corrupt_frames: u32,
    /// Mains presence from the plant's sensor (wins over the meter's).
    mains: Option<bool>,
    /// The meter's last word on mains presence (kept when the meter is
    /// lost: a meter going dark is no sign that mains came back).
    meter_mains: Option<bool>,
    /// A safety-relevant link deadline is missed.
    link_lost: bool,
}

/// What one control period works from: the measurements as the functions
/// use them.
#[derive(Debug, Clone, Copy)]
struct Period {
    /// Seconds since the last control period (0 at the first).
    dt_s: f32,
    local: LocalTime,
    /// Estimated SOC, clamped to 0..=1.
    soc: f32,
    /// Usable capacity now (by the estimated health), Wh.
    capacity_wh: f32,
    allowed: ProtectionAllowance,
    /// The DC circuits' load, W.
    dc_load_w: f32,
    /// The household's AC load, W (0 without an inverter).
    ac_load_w: f32,
    /// Grid power, W (+ import; NaN without a meter reading).
    grid_w: f32,
    /// PV power, W (≥ 0).
    pv_w: f32,
    /// Battery power, W (+ discharge; NaN without a pack reading).
    battery_w: f32,
    mains_present: bool,
}

/// The battery assembly's controller.
#[derive(Debug)]
pub struct Controller {
    cfg: ControllerConfig,
    estimator: Estimator,
    estimate: Estimate,
    protection: Protection,
    scheduler: Scheduler,
    peak: PeakShaver,
    export: ExportController,
    surplus: SurplusToAc,
    demand: DemandManager,
    resilience: Resilience,
    selective: Selective,
    hub: Hub,
    cluster: Option<Cluster>,
    /// The cluster's command at the last control cycle.
    last_cluster: Option<ClusterCommand>,
    m: Measured,
    next_protection: Millis,
    next_control: Millis,
    next_telemetry: Millis,
    last_control: Option<Millis>,
    last_command: Option<PlantCommand>,
    outputs: heapless::Deque<Output, OUTPUT_QUEUE>,
    dropped_outputs: u32,
    log: DecisionLog<DECISION_LOG>,
}

impl Controller {
    /// A controller started at `now` with a validated config.
    #[allow(clippy::result_large_err)]
    pub fn new(cfg: ControllerConfig, now: Millis) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let cluster = match &cfg.cluster {
            Some(c) => {
                let mut c = c.clone();
                c.site_id = cfg.assembly.site_id;
                // Unset: the server may only lower the local export limit.
                c.remote_config
                    .export_limit_w_max
                    .get_or_insert(cfg.export.export_limit_w);
                Some(Cluster::new(c).map_err(|e| e.within("cluster"))?)
            }
            None => None,
        };
        let estimator = Estimator::new(cfg.estimation.clone(), cfg.assembly.initial_soc);
        let estimate = estimator.estimate();
        Ok(Controller {
            estimator,
            estimate,
            protection: Protection::new(cfg.protection.clone()),
            scheduler: Scheduler::new(cfg.scheduling.clone()),
            peak: PeakShaver::new(cfg.peak.clone()),
            export: ExportController::new(cfg.export.clone()),
            surplus: SurplusToAc::new(cfg.export.clone()),
            demand: DemandManager::new(cfg.demand.clone()),
            resilience: Resilience::new(cfg.resilience.clone()),
            selective: Selective::new(cfg.selective.clone()),
            hub: Hub::new(cfg.hub.clone(), now),
            cluster,
            last_cluster: None,
            m: Measured::default(),
            next_protection: now,
            next_control: now,
            next_telemetry: now.plus_ms(u64::from(cfg.telemetry_period_ms)),
            last_control: None,
            last_command: None,
            outputs: heapless::Deque::new(),
            dropped_outputs: 0,
            log: DecisionLog::new(),
            cfg,
        })
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }
    /// The latest state estimate.
    pub fn estimate(&self) -> &Estimate {
        &self.estimate
    }
    /// Protection's current state.
    pub fn protection(&self) -> &protection::ProtectionState {
        self.protection.state()
    }
    /// The decision log (bounded ring, oldest first).
    pub fn decisions(&self) -> &DecisionLog<DECISION_LOG> {
        &self.log
    }
    /// Dispatch counters (accepted, ignored, rejected by reason).
    pub fn dispatch_counters(&self) -> Option<&cluster::Counters> {
        self.cluster.as_ref().map(Cluster::counters)
    }
    /// The cluster report the server asked for
    /// ([`Input::ClusterReportRequest`]), taken at `now`; `None` without a
    /// `[cluster]`.
    fn cluster_report(&self, now: Millis) -> Option<ClusterReport> {
        let c = self.cluster.as_ref()?;
        let cfg = self.cfg.cluster.as_ref()?;
        let (max_charge_w, max_discharge_w) = self.cluster_limits_w();
        let dispatch_sequence = c.active().and_then(|a| {
            matches!(a.command, Command::Sink { .. } | Command::Source { .. }).then_some(a.sequence)
        });
        Some(ClusterReport {
            site_id: cfg.site_id,
            branch_id: cfg.branch_id,
            taken_at_ms: now.0,
            soc: self.soc(),
            reserve_soc: self.reserve_soc(),
            max_charge_w,
            max_discharge_w,
            participating: self.participating(),
            server_silent: c.server_silent(now),
            dispatch_sequence,
            dispatch_share_w: self.last_cluster.and_then(|l| l.battery_power_w),
            counters: *c.counters(),
        })
    }
    /// Outputs dropped because the queue was full.
    pub fn dropped_outputs(&self) -> u32 {
        self.dropped_outputs
    }
    /// The last plant command sent.
    pub fn last_command(&self) -> Option<&PlantCommand> {
        self.last_command.as_ref()
    }

    /// When the controller next needs `handle(now, Input::Tick)`.
    pub fn poll_timeout(&self) -> Option<Millis> {
        Some(self.next_protection.min(self.next_control))
    }

    /// The next output, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn emit(&mut self, o: Output) {
        if self.outputs.push_back(o).is_err() {
            self.dropped_outputs = self.dropped_outputs.saturating_add(1);
        }
    }

    /// Takes one input at `now`. Measurements and messages are recorded
    /// (acks and verdicts are queued at once); the control work runs on
    /// [`Input::Tick`], which the caller delivers at [`poll_timeout`]
    /// (after handing over the measurements of that instant).
    ///
    /// [`poll_timeout`]: Controller::poll_timeout
    pub fn handle(&mut self, now: Millis, input: Input<'_>) {
        self.handle_with(now, input, &mut StrictCheck)
    }

    /// [`Controller::handle`] with server signatures (dispatch and
    /// configuration messages) checked by `signatures` rather than by
    /// [`StrictCheck`]; see [`SignatureCheck`].
    pub fn handle_with(
        &mut self,
        now: Millis,
        input: Input<'_>,
        signatures: &mut dyn SignatureCheck,
    ) {
        match input {
            Input::Pack(p) => {
                self.m.pack = Some((now, p));
                self.estimate = self.estimator.update(
                    now,
                    EstimationInputs {
                        pack_voltage_v: p.pack_voltage_v,
                        current_a: p.pack_current_a,
                        temperature_c: 0.5 * (p.cell_temperature_min_c + p.cell_temperature_max_c),
                    },
                );
            }
            Input::Bus { bus_voltage_v } => self.m.bus = Some((now, bus_voltage_v)),
            Input::Circuits(c) => self.m.circuits = Some((now, c)),
            Input::Sockets(s) => self.m.sockets = s,
            Input::Pv { power_w } => self.m.pv_w = Some((now, power_w)),
            Input::Charger { ac_power_w } => self.m.charger_ac_w = ac_power_w,
            Input::Inverter { ac_power_w } => self.m.inverter_ac_w = ac_power_w,
            Input::Meter(meter) => self.on_meter(now, meter),
            Input::Clock { utc_s, local } => self.m.clock = Some((now, utc_s, local)),
            Input::Demand(signal) => self.on_demand_signal(now, signal),
            Input::ChargeNow(request) => {
                let r = self.scheduler.request_charge_now(now, request);
                self.log.record(
                    now,
                    format_args!("charge-now {:.0} W", request.power_w),
                    LoggedReason::new(Function::Scheduling, &r),
                );
            }
            Input::Dispatch(bytes) => self.on_dispatch(now, bytes, signatures),
            Input::Config(bytes) => self.on_remote_config(now, bytes, signatures),
            Input::ClusterReportRequest => {
                if let Some(r) = self.cluster_report(now) {
                    self.emit(Output::ClusterReport(r));
                }
            }
            Input::CorruptFrame => {
                self.m.corrupt_frames = self.m.corrupt_frames.saturating_add(1);
            }
            Input::Mains { present } => self.m.mains = Some(present),
            Input::MeterLost => self.m.meter = None,
            Input::LinkLost => self.m.link_lost = true,
            Input::LinkRestored => self.m.link_lost = false,
            Input::Tick => self.run_due(now),
        }
    }

    /// A meter telegram: the grid measurement, the meter's mains flag, and
    /// the tariff indicator for demand management's tariff rules.
    fn on_meter(&mut self, now: Millis, meter: MeterMeasurement) {
        self.m.meter = Some((now, meter));
        self.m.meter_mains = Some(meter.mains_present);
        if let Some(local) = self.local_time(now) {
            let ctx = self.demand_context();
            if let Some(ack) = self.demand.on_tariff(now, local, meter.tariff, &ctx) {
                self.emit(Output::DemandAck(ack));
            }
        }
    }

    /// A demand signal: acknowledged at once, and logged.
    fn on_demand_signal(&mut self, now: Millis, signal: DemandSignal) {
        let ctx = self.demand_context();
        let ack = self.demand.submit(now, signal, &ctx);
        self.log.record(
            now,
            format_args!("demand signal {}: {:?}", ack.id(), ack.is_accepted()),
            LoggedReason::new(Function::DemandManagement, &ack),
        );
        self.emit(Output::DemandAck(ack));
    }

    /// A signed dispatch message: the cluster's verdict, logged and
    /// queued (nothing without a `[cluster]`).
    fn on_dispatch(&mut self, now: Millis, bytes: &[u8], signatures: &mut dyn SignatureCheck) {
        let utc_s = self.utc_s(now).unwrap_or(0);
        let ctx = DispatchContext {
            participating: self.mains_present(),
        };
        let verdict = self
            .cluster
            .as_mut()
            .map(|c| c.handle_with(now, utc_s, bytes, ctx, signatures));
        if let Some(v) = verdict {
            self.log.record(
                now,
                format_args!("dispatch"),
                LoggedReason::new(Function::Cluster, &v),
            );
            self.emit(Output::DispatchVerdict(v));
        }
    }

    /// A signed configuration message: applied when accepted; the verdict
    /// logged and queued (nothing without a `[cluster]`).
    fn on_remote_config(&mut self, now: Millis, bytes: &[u8], signatures: &mut dyn SignatureCheck) {
        let utc_s = self.utc_s(now).unwrap_or(0);
        let verdict = self
            .cluster
            .as_mut()
            .map(|c| c.handle_config_with(now, utc_s, bytes, signatures));
        if let Some(v) = verdict {
            if matches!(v, ConfigVerdict::Accepted(_)) {
                self.apply_remote_settings();
            }
            self.log.record(
                now,
                format_args!("remote configuration"),
                LoggedReason::new(Function::Cluster, &v),
            );
            self.emit(Output::ConfigVerdict(v));
        }
    }

    fn utc_s(&self, now: Millis) -> Option<u64> {
        self.m
            .clock
            .map(|(at, utc, _)| utc.saturating_add(now.since(at) / 1000))
    }

    /// Local time now, advanced from the last clock sync.
    fn local_time(&self, now: Millis) -> Option<LocalTime> {
        let (at, _, local) = self.m.clock?;
        let elapsed_s = now.since(at) / 1000;
        let secs = (u64::from(local.seconds_of_day) + elapsed_s) % 86_400;
        let days = (u64::from(local.seconds_of_day) + elapsed_s) / 86_400;
        Some(LocalTime {
            seconds_of_day: secs as u32,
            weekday: ((u64::from(local.weekday) + days) % 7) as u8,
        })
    }

    fn capacity_wh(&self) -> f32 {
        let soh = if self.estimate.soh.is_finite() {
            self.estimate.soh.clamp(0.1, 1.0)
        } else {
            1.0
        };
        self.cfg.assembly.usable_capacity_wh * soh
    }

    fn soc(&self) -> f32 {
        let s = self.estimate.soc;
        if s.is_finite() {
            s.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    fn grid_w(&self) -> f32 {
        self.m.meter.map_or(f32::NAN, |(_, m)| m.grid_power_w)
    }

    fn battery_w(&self) -> f32 {
        self.m
            .pack
            .map_or(f32::NAN, |(_, p)| p.pack_voltage_v * p.pack_current_a)
    }

    fn mains_present(&self) -> bool {
        match self.m.mains {
            Some(present) => present,
            None => self.m.meter_mains.unwrap_or(true),
        }
    }

    /// What protection allows now, within the converter's rating.
    fn allowance(&self) -> ProtectionAllowance {
        let a = &self.cfg.assembly;
        ProtectionAllowance::new(self.protection.state(), a.max_charge_w, a.max_discharge_w)
    }

    /// Reserve SOC in force: the server's, if it set one, else the local
    /// `[scheduling] reserve_soc`.
    fn reserve_soc(&self) -> f32 {
        self.cluster
            .as_ref()
            .and_then(|c| c.remote().reserve_soc)
            .unwrap_or(self.cfg.scheduling.reserve_soc)
    }

    /// Export limit in force, W: the server's, if it set one, else the
    /// local `[export] export_limit_w`.
    fn export_limit_w(&self) -> f32 {
        self.cluster
            .as_ref()
            .and_then(|c| c.remote().export_limit_w)
            .unwrap_or(self.cfg.export.export_limit_w)
    }

    /// Whether the assembly takes part in dispatch now: not opted out by
    /// the server, and mains present (an islanded assembly serves its own
    /// house).
    fn participating(&self) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.remote().participating)
            && self.mains_present()
    }

    /// Pushes the remote settings in force (or the local ones they fall
    /// back to) into the functions that use them.
    fn apply_remote_settings(&mut self) {
        let Some(remote) = self.cluster.as_ref().map(|c| *c.remote()) else {
            return;
        };
        self.scheduler.set_reserve_soc(
            remote
                .reserve_soc
                .unwrap_or(self.cfg.scheduling.reserve_soc),
        );
        self.peak
            .set_reserve_soc(remote.reserve_soc.unwrap_or(self.cfg.peak.reserve_soc));
        let limit = self.export_limit_w();
        self.export.set_export_limit_w(limit);
    }

    /// The power limits a dispatch share is bounded by: protection's (and
    /// the converter's), with no discharge at or below the reserve SOC.
    fn cluster_limits_w(&self) -> (f32, f32) {
        let allowed = self.allowance();
        let discharge = if self.soc() <= self.reserve_soc() {
            0.0
        } else {
            allowed.max_discharge_w
        };
        (allowed.max_charge_w, discharge)
    }

    fn demand_context(&self) -> demand::Context {
        let allowed = self.allowance();
        let reserve = self.reserve_soc();
        demand::Context {
            max_charge_w: allowed.max_charge_w,
            max_discharge_w: allowed.max_discharge_w,
            energy_above_reserve_wh: (self.soc() - reserve) * self.capacity_wh(),
            grid_power_w: self.grid_w(),
            battery_power_w: self.battery_w(),
            assembly_ac_w: non_negative(self.m.inverter_ac_w) - non_negative(self.m.charger_ac_w),
            dc_load_w: self.dc_load_w(),
        }
    }

    fn dc_load_w(&self) -> f32 {
        self.m.circuits.as_ref().map_or(0.0, |(_, c)| {
            c.iter().map(|m| non_negative(m.power_w)).sum()
        })
    }

    /// Household AC load: what the meter imports, plus what the inverter
    /// supplies, minus what the charger draws. Without a meter reading (a
    /// stale meter, or a power cut, when the meter is dark) the import
    /// counts as zero, so in a cut the AC load is what the inverter supplies.
    fn ac_load_w(&self) -> f32 {
        let fin = |x: f32| if x.is_finite() { x } else { 0.0 };
        (fin(self.grid_w()) + fin(self.m.inverter_ac_w) - fin(self.m.charger_ac_w)).max(0.0)
    }

    fn run_due(&mut self, now: Millis) {
        if now >= self.next_protection {
            let before = self.protection.state().actions;
            self.run_protection(now);
            self.next_protection = now.plus_ms(u64::from(protection::MAX_UPDATE_PERIOD_MS));
            // A safe state engaged or released acts now, not at the next
            // control period: the reaction is debounce + one protection
            // period, as the protection table states.
            if self.protection.state().actions != before && self.last_control.is_some() {
                self.run_control(now);
                self.next_control = now.plus_ms(u64::from(self.cfg.control_period_ms));
            }
        }
        if now >= self.next_control {
            self.run_control(now);
            self.next_control = now.plus_ms(u64::from(self.cfg.control_period_ms));
        }
    }

    fn run_protection(&mut self, now: Millis) {
        let mut inp = ProtectionInputs::default();
        if let Some((at, p)) = self.m.pack {
            inp.cell_voltage_min_v = p.cell_voltage_min_v;
            inp.cell_voltage_max_v = p.cell_voltage_max_v;
            inp.cell_voltage_at = Some(at);
            inp.pack_voltage_v = p.pack_voltage_v;
            inp.pack_current_a = p.pack_current_a;
            inp.pack_at = Some(at);
            inp.cell_temperature_min_c = p.cell_temperature_min_c;
            inp.cell_temperature_max_c = p.cell_temperature_max_c;
            inp.temperature_at = Some(at);
        }
        if let Some((at, v)) = self.m.bus {
            inp.bus_voltage_v = v;
            inp.bus_at = Some(at);
        }
        if let Some((at, c)) = &self.m.circuits {
            for m in c {
                let _ = inp.circuit_current_a.push(m.current_a.abs());
            }
            inp.circuits_at = Some(*at);
        }
        inp.corrupt_frames = self.m.corrupt_frames;
        inp.link_lost = self.m.link_lost;
        self.protection.kick(now);
        self.protection.update(now, &inp);
    }

    /// One control period: gather the measurements, ask every function for
    /// its proposal, arbitrate each actuator, then log and emit the command
    /// (and the hub's telemetry when due).
    fn run_control(&mut self, now: Millis) {
        let period = self.gather(now);
        self.learn_demand(&period);
        let proposals = self.ask_functions(now, &period);
        let command = self.arbitrate(&period, &proposals);
        self.log_changes(now, &command);
        self.last_command = Some(command.clone());
        self.emit(Output::Plant(command));
        self.run_hub(now);
    }

    /// The measurements as this period's functions use them.
    fn gather(&mut self, now: Millis) -> Period {
        let dt_s = self
            .last_control
            .map_or(0.0, |t| now.since(t) as f32 * 1e-3);
        self.last_control = Some(now);
        Period {
            dt_s,
            local: self.local_time(now).unwrap_or_default(),
            soc: self.soc(),
            capacity_wh: self.capacity_wh(),
            allowed: self.allowance(),
            dc_load_w: self.dc_load_w(),
            ac_load_w: if self.cfg.assembly.inverter_fitted {
                self.ac_load_w()
            } else {
                0.0
            },
            grid_w: self.grid_w(),
            pv_w: self.m.pv_w.map_or(0.0, |(_, p)| non_negative(p)),
            battery_w: self.battery_w(),
            mains_present: self.mains_present(),
        }
    }

    /// Learns the demand the battery would serve in a peak.
    fn learn_demand(&mut self, period: &Period) {
        if period.dt_s > 0.0 {
            let served = if self.cfg.peak.include_inverter_ac {
                period.dc_load_w + period.ac_load_w
            } else {
                period.dc_load_w
            };
            self.scheduler.observe(period.local, period.dt_s, served);
        }
    }

    /// Every function's proposal for this period, the functions run in a
    /// fixed order (resilience, demand management, the cluster, peak,
    /// export, scheduling, selective supply, PV surplus to AC); the reports
    /// they finish are queued as they come.
    fn ask_functions(&mut self, now: Millis, period: &Period) -> Proposals {
        let resilience = self.ask_resilience(now, period);
        let demand = self.ask_demand(now);
        let cluster = self.ask_cluster(now);
        let remote = RemoteProposal::new(cluster.as_ref(), &demand);
        let peak = self.ask_peak(now, period);
        let export = self.export.update(
            now,
            &ExportInputs {
                grid_w: period.grid_w,
                pv_w: period.pv_w,
                soc: period.soc,
                max_charge_w: period.allowed.max_charge_w,
            },
        );
        let plan = self.scheduler.update(
            now,
            period.local,
            &ScheduleInputs {
                soc: period.soc,
                usable_capacity_wh: period.capacity_wh,
                max_charge_w: period.allowed.max_charge_w,
                pv_w: period.pv_w,
                // PV sits on the DC bus: it serves the DC loads first.
                load_w: period.dc_load_w,
                expected_pv_surplus_wh: 0.0,
            },
        );
        let event_sockets = self.socket_events(peak.active, &demand, cluster.as_ref());
        let mut sockets = heapless::Vec::new();
        for s in &self
            .selective
            .update_masked(now, &self.m.sockets, event_sockets)
        {
            let _ = sockets.push(SocketProposal::from(s));
        }
        let surplus = self.ask_surplus(now, period, &resilience, &remote, &peak);
        Proposals {
            resilience,
            remote,
            peak,
            export: ExportProposal::from(&export),
            surplus,
            schedule: ScheduleProposal::from(&plan),
            sockets,
        }
    }

    /// Resilience: islanding and the circuits the energy above the floor
    /// carries; whether the AC loads are served.
    fn ask_resilience(&mut self, now: Millis, period: &Period) -> ResilienceProposal {
        let mut inputs = ResilienceInputs::new(
            period.mains_present,
            (period.soc - self.cfg.assembly.floor_soc) * period.capacity_wh,
            0.0,
        );
        if let Some((_, c)) = &self.m.circuits {
            for (slot, m) in inputs.circuit_load_w.iter_mut().zip(c.iter()) {
                *slot = m.power_w;
            }
        }
        let command = self.resilience.update(now, &inputs);
        let ac_loads_served = !self.cfg.assembly.inverter_fitted
            || self
                .resilience
                .ac_loads_served(period.ac_load_w, period.dt_s);
        ResilienceProposal::new(&command, ac_loads_served)
    }

    /// Demand management: the signals in force; its compliance reports
    /// queued.
    fn ask_demand(&mut self, now: Millis) -> DemandCommand {
        let ctx = self.demand_context();
        let command = self.demand.update(now, &ctx);
        while let Some(r) = self.demand.pop_report() {
            self.emit(Output::Compliance(r));
        }
        command
    }

    /// The cluster: the dispatch share within the limits (withdrawn when
    /// the assembly does not participate); the end of a dispatch is logged.
    fn ask_cluster(&mut self, now: Millis) -> Option<ClusterCommand> {
        let (max_charge_w, max_discharge_w) = self.cluster_limits_w();
        if !self.participating() {
            if let Some(c) = self.cluster.as_mut() {
                c.withdraw();
            }
        }
        let command = self.cluster.as_mut().map(|c| {
            c.update(
                now,
                PowerLimits {
                    max_discharge_w,
                    max_charge_w,
                },
            )
        });
        self.last_cluster = command;
        if let Some(c) = command.filter(|c| {
            matches!(
                c.reason,
                ClusterReason::Expired
                    | ClusterReason::Cancelled
                    | ClusterReason::Withdrawn
                    | ClusterReason::ServerSilent
            )
        }) {
            self.log.record(
                now,
                format_args!("dispatch ended: local operation"),
                Reason::new(Function::Cluster, c.reason),
            );
        }
        command
    }

    /// Peak reduction; the report of a window that ended queued.
    fn ask_peak(&mut self, now: Millis, period: &Period) -> PeakProposal {
        let command = self.peak.update(
            now,
            period.local,
            &PeakInputs {
                dc_load_w: period.dc_load_w,
                ac_load_w: period.ac_load_w,
                grid_import_w: period.grid_w,
                battery_w: period.battery_w,
                profile_baseline_w: self.scheduler.expected_load_w(period.local),
                soc: period.soc,
                usable_capacity_wh: period.capacity_wh,
                max_discharge_w: period.allowed.max_discharge_w,
            },
        );
        while let Some(r) = self.peak.take_finished() {
            self.emit(Output::PeakReport(r));
        }
        PeakProposal::from(&command)
    }

    /// The sockets in a peak or demand event (bit i = socket i): a peak, a
    /// battery or import demand, or a cluster dispatch is an event for
    /// every socket; a deferral only for the sockets on the circuits it
    /// names.
    fn socket_events(
        &self,
        peak_active: bool,
        demand: &DemandCommand,
        cluster: Option<&ClusterCommand>,
    ) -> u16 {
        let event_all = peak_active
            || demand.battery_w.is_some()
            || demand.import_limit_w.is_some()
            || cluster.is_some_and(|c| c.battery_power_w.is_some());
        let mut events = if event_all { u16::MAX } else { 0 };
        for i in 0..self.m.sockets.len().min(MAX_SOCKETS) {
            if let Some(c) = self.selective.circuit_of(i) {
                if c < 16 && demand.defer_mask & (1u16 << c) != 0 {
                    events |= 1u16 << i;
                }
            }
        }
        events
    }

    /// PV surplus to AC, allowed only when nothing else drives the
    /// inverter.
    fn ask_surplus(
        &mut self,
        now: Millis,
        period: &Period,
        resilience: &ResilienceProposal,
        remote: &RemoteProposal,
        peak: &PeakProposal,
    ) -> SurplusProposal {
        let site = self.site(period);
        let allowed =
            arbitration::surplus_to_ac_allowed(&site, &period.allowed, resilience, remote, peak);
        let export_room_w = if site.export_allowed {
            self.export_limit_w()
        } else {
            0.0
        };
        let (request_w, reason) = self.surplus.update(
            now,
            &SurplusInputs {
                allowed,
                bus_voltage_v: self.m.bus.map_or(f32::NAN, |(_, v)| v),
                ac_load_w: period.ac_load_w,
                export_room_w,
                pv_surplus_w: period.pv_w - period.dc_load_w,
            },
        );
        SurplusProposal::new(request_w, reason)
    }

    /// The site's facts and this period's loads.
    fn site(&self, period: &Period) -> Site {
        Site {
            inverter_fitted: self.cfg.assembly.inverter_fitted,
            export_allowed: self.cfg.assembly.export_allowed,
            mains_present: period.mains_present,
            ac_load_w: period.ac_load_w,
            dc_load_w: period.dc_load_w,
        }
    }

    /// Each actuator decided from the proposals and what protection allows
    /// ([`crate::arbitration`]).
    fn arbitrate(&self, period: &Period, proposals: &Proposals) -> PlantCommand {
        let allowed = &period.allowed;
        let discharge = arbitration::battery_discharge(allowed, proposals);
        let charge = arbitration::battery_charge(allowed, proposals);
        let mut circuits = heapless::Vec::new();
        for i in 0..usize::from(self.cfg.assembly.circuits) {
            let _ = circuits.push(arbitration::circuit(
                i,
                allowed,
                &proposals.resilience,
                &proposals.remote,
            ));
        }
        let mut sockets = heapless::Vec::new();
        for i in 0..usize::from(self.cfg.assembly.sockets) {
            let _ = sockets.push(arbitration::socket(allowed, proposals.sockets.get(i)));
        }
        PlantCommand {
            battery: arbitration::battery(allowed, discharge, charge),
            charger: arbitration::charger(proposals, charge),
            inverter: arbitration::inverter(&self.site(period), allowed, proposals, discharge),
            pv: arbitration::pv(allowed, &proposals.export),
            circuits,
            sockets,
        }
    }

    /// The local hub: this period's readings, and a telemetry snapshot
    /// when one is due.
    fn run_hub(&mut self, now: Millis) {
        self.record_hub(now);
        if now >= self.next_telemetry {
            let snap = self.hub.take_snapshot(now);
            self.emit(Output::Telemetry(snap));
            self.next_telemetry = now.plus_ms(u64::from(self.cfg.telemetry_period_ms));
        }
    }

    fn record_hub(&mut self, now: Millis) {
        let mut sample = HubSample::default();
        if let Some((at, p)) = self.m.pack {
            sample.pack = Some(Reading {
                at,
                power_w: p.pack_voltage_v * p.pack_current_a,
            });
        }
        if let Some((at, w)) = self.m.pv_w {
            sample.pv = Some(Reading { at, power_w: w });
        }
        if let Some((at, m)) = self.m.meter {
            sample.grid = Some(Reading {
                at,
                power_w: m.grid_power_w,
            });
            sample.meter = Some(MeterRegisters {
                at,
                import_wh: m.import_wh,
                export_wh: m.export_wh,
            });
        }
        if let Some((at, c)) = &self.m.circuits {
            for (i, m) in c.iter().enumerate() {
                let _ = sample.circuits.push(ChannelReading {
                    index: i as u8,
                    at: *at,
                    power_w: m.power_w,
                });
            }
        }
        for (i, s) in self.m.sockets.iter().enumerate() {
            let _ = sample.sockets.push(ChannelReading {
                index: i as u8,
                at: now,
                power_w: s.power_w,
            });
        }
        self.hub.record(now, &sample);
    }

    /// Records each part of the command that changed since the last one.
    fn log_changes(&mut self, now: Millis, new: &PlantCommand) {
        let old = self.last_command.take();
        let changed = |a: bool| a;
        let o = old.as_ref();
        if o.is_none_or(|o| {
            changed(
                o.battery.enabled != new.battery.enabled
                    || (o.battery.charge_limit_w - new.battery.charge_limit_w).abs() > 50.0
                    || (o.battery.discharge_limit_w - new.battery.discharge_limit_w).abs() > 50.0
                    || o.battery.reason != new.battery.reason,
            )
        }) {
            self.log.record(
                now,
                format_args!(
                    "battery charge ≤ {:.0} W, discharge ≤ {:.0} W",
                    new.battery.charge_limit_w, new.battery.discharge_limit_w
                ),
                new.battery.reason,
            );
        }
        if o.is_none_or(|o| {
            o.charger.enabled != new.charger.enabled || o.charger.boost != new.charger.boost
        }) {
            self.log.record(
                now,
                format_args!(
                    "charger {}, boost {}",
                    new.charger.enabled, new.charger.boost
                ),
                new.charger.reason,
            );
        }
        if o.is_none_or(|o| {
            o.inverter.enabled != new.inverter.enabled
                || o.inverter.export_enabled != new.inverter.export_enabled
                || (o.inverter.request_ac_w > 0.0) != (new.inverter.request_ac_w > 0.0)
        }) {
            self.log.record(
                now,
                format_args!(
                    "inverter {} {:.0} W, export {}",
                    if new.inverter.enabled { "on" } else { "off" },
                    new.inverter.request_ac_w,
                    new.inverter.export_enabled
                ),
                new.inverter.reason,
            );
        }
        if o.is_none_or(|o| o.pv.cap_w.is_some() != new.pv.cap_w.is_some()) {
            self.log.record(
                now,
                format_args!("pv cap {:?}", new.pv.cap_w),
                new.pv.reason,
            );
        }
        for (i, c) in new.circuits.iter().enumerate() {
            if o.is_none_or(|o| o.circuits.get(i).is_none_or(|p| p.on != c.on)) {
                self.log.record(
                    now,
                    format_args!("circuit {i} {}", if c.on { "on" } else { "off" }),
                    c.reason,
                );
            }
        }
        for (i, c) in new.sockets.iter().enumerate() {
            if o.is_none_or(|o| o.sockets.get(i).is_none_or(|p| p.on != c.on)) {
                self.log.record(
                    now,
                    format_args!("socket {i} {}", if c.on { "on" } else { "off" }),
                    c.reason,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ControllerConfig {
        ControllerConfig {
            assembly: AssemblyConfig {
                site_id: 1,
                usable_capacity_wh: 5000.0,
                max_charge_w: 2500.0,
                max_discharge_w: 3500.0,
                floor_soc: 0.05,
                inverter_fitted: true,
                export_allowed: false,
                circuits: 2,
                sockets: 0,
                initial_soc: 0.5,
            },
            control_period_ms: 1000,
            telemetry_period_ms: 60_000,
            estimation: Default::default(),
            protection: Default::default(),
            scheduling: Default::default(),
            peak: Default::default(),
            export: Default::default(),
            demand: Default::default(),
            resilience: Default::default(),
            selective: Default::default(),
            hub: Default::default(),
            cluster: None,
            link: None,
        }
    }

    fn meter(mains_present: bool) -> Input<'static> {
        Input::Meter(MeterMeasurement {
            grid_power_w: 700.0,
            tariff: 2,
            mains_present,
            import_wh: 0.0,
            export_wh: 0.0,
        })
    }

    #[test]
    fn a_lost_meter_is_forgotten_like_before_the_first_telegram() {
        let mut c = Controller::new(config(), Millis(0)).unwrap();
        c.handle(Millis(0), meter(true));
        assert_eq!(c.grid_w(), 700.0);
        c.handle(Millis(10), Input::MeterLost);
        assert!(c.grid_w().is_nan());
        assert_eq!(c.ac_load_w(), 0.0);
        assert!(c.mains_present(), "the meter's last word");
        let mut c = Controller::new(config(), Millis(0)).unwrap();
        c.handle(Millis(0), meter(false));
        c.handle(Millis(10), Input::MeterLost);
        assert!(
            !c.mains_present(),
            "a dark meter is no sign mains came back"
        );
    }

    #[test]
    fn mains_from_the_plant_wins_over_the_meter() {
        let mut c = Controller::new(config(), Millis(0)).unwrap();
        c.handle(Millis(0), meter(true));
        c.handle(Millis(0), Input::Mains { present: false });
        assert!(!c.mains_present());
        // A later telegram (its flag is the link layer's copy) does not
        // override the plant's sensor.
        c.handle(Millis(10), meter(true));
        assert!(!c.mains_present());
        c.handle(Millis(20), Input::Mains { present: true });
        assert!(c.mains_present());
        // The meter going dark keeps the plant's word.
        c.handle(Millis(30), Input::Mains { present: false });
        c.handle(Millis(40), Input::MeterLost);
        assert!(!c.mains_present());
    }
}
