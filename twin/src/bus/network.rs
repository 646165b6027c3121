//! The bus network: configuration, per-step inputs and outputs, and the
//! implicit solver.
//!
//! One bus node (voltage `V`, capacitance `C`) joins the sources and the
//! circuits. Each step integrates the node equation with backward Euler,
//!
//! `C (V − V_old)/h = Σ I_source(V) − Σ I_circuit(V)`,
//!
//! solved by a bracketed Newton iteration (falling back to bisection). The
//! bracket `[0, V_hi]` always holds a root: at 0 V the loads draw nothing and
//! the sources push, above every setpoint the sources do not push. Each
//! circuit's current at a given `V` is exact (see [`super::wiring`]).
//!
//! Discrete state (breakers, under-voltage lockouts, PD protocol, device
//! batteries) is held for the step and updated after the solve. A step is
//! split at a breaker's trip instant, so trip times do not depend on the step
//! size and a fault's energy stops at the trip.

use serde::Deserialize;

use super::breaker::{Breaker, BreakerConfig, TripCause};
use super::devices::{Device, DeviceConfig, DeviceOutput};
use super::droop::{BatteryConverterConfig, ChargerConfig, DroopLaw, PvConverterConfig};
use super::loads::{
    ConstantCurrentLoadConfig, InverterPortConfig, LedDriverConfig, ResistiveLoadConfig, Uvlo,
};
use super::usb_pd::{Contract, PdPort, PdState, UsbSocketConfig};
use super::wiring::{loop_resistance_ohm, CircuitSolution, FarEnd};

// ---------------------------------------------------------------------------
// Configuration

/// One circuit: re-used lighting wiring from the bus to its loads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    pub name: String,
    /// One-way cable length, m (the loop is twice this).
    pub length_m: f64,
    /// Conductor cross-section, mm² (copper).
    pub cross_section_mm2: f64,
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub led_drivers: Vec<LedDriverConfig>,
    #[serde(default)]
    pub resistive_loads: Vec<ResistiveLoadConfig>,
    #[serde(default)]
    pub constant_current_loads: Vec<ConstantCurrentLoadConfig>,
    #[serde(default)]
    pub usb_sockets: Vec<UsbSocketConfig>,
}

impl CircuitConfig {
    /// Loop resistance of the wiring, Ω.
    pub fn loop_resistance_ohm(&self) -> f64 {
        loop_resistance_ohm(self.length_m, self.cross_section_mm2)
    }

    pub fn validate(&self) -> Result<(), String> {
        let who = format!("circuit \"{}\"", self.name);
        if !(self.length_m.is_finite() && self.length_m > 0.0) {
            return Err(format!(
                "{who}: length_m must be > 0, got {}",
                self.length_m
            ));
        }
        if !(self.cross_section_mm2.is_finite() && self.cross_section_mm2 > 0.0) {
            return Err(format!(
                "{who}: cross_section_mm2 must be > 0, got {}",
                self.cross_section_mm2
            ));
        }
        self.breaker.validate(&who)?;
        for d in &self.led_drivers {
            d.validate(&self.name)?;
        }
        for d in &self.resistive_loads {
            d.validate(&self.name)?;
        }
        for d in &self.constant_current_loads {
            d.validate(&self.name)?;
        }
        for d in &self.usb_sockets {
            d.validate(&self.name)?;
        }
        Ok(())
    }
}

/// The whole DC bus of a house (embed as `[bus]` in a house TOML).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Nominal voltage, V. Default 48.
    #[serde(default = "default_nominal_v")]
    pub nominal_v: f64,
    /// Bus capacitance (all converter output capacitors), F.
    pub capacitance_f: f64,
    /// Voltage at the start; default the nominal voltage.
    #[serde(default)]
    pub initial_v: Option<f64>,
    /// Under-voltage flag threshold, V. Default 42.
    #[serde(default = "default_uv")]
    pub undervoltage_v: f64,
    /// Over-voltage flag threshold, V (SELV: below 60 V). Default 57.
    #[serde(default = "default_ov")]
    pub overvoltage_v: f64,
    #[serde(default)]
    pub battery_converters: Vec<BatteryConverterConfig>,
    #[serde(default)]
    pub pv_converter: Option<PvConverterConfig>,
    #[serde(default)]
    pub charger: Option<ChargerConfig>,
    #[serde(default)]
    pub circuits: Vec<CircuitConfig>,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// The DC input of the AC inverter, at the bus node. `None` = no inverter.
    #[serde(default)]
    pub inverter_port: Option<InverterPortConfig>,
}

fn default_nominal_v() -> f64 {
    48.0
}
fn default_uv() -> f64 {
    42.0
}
fn default_ov() -> f64 {
    57.0
}

fn unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for n in names {
        if seen.contains(&n) {
            return Err(format!("{what} \"{n}\" is defined twice"));
        }
        seen.push(n);
    }
    Ok(())
}

impl BusConfig {
    /// Reads a bus-only TOML file (the fields of `[bus]` at top level) and
    /// validates it; errors name the file. A house file that embeds `[bus]`
    /// deserialises [`BusConfig`] itself and calls [`BusConfig::validate_in`].
    pub fn load(path: &std::path::Path) -> Result<Self, crate::params::ParamError> {
        let cfg: BusConfig = crate::params::load_toml(path)?;
        cfg.validate_in(path)?;
        Ok(cfg)
    }

    /// [`BusConfig::validate`] with the message wrapped as a [`crate::params::ParamError`]
    /// naming the file it came from.
    pub fn validate_in(&self, path: &std::path::Path) -> Result<(), crate::params::ParamError> {
        self.validate()
            .map_err(|m| crate::params::ParamError::invalid(path, format!("[bus] {m}")))
    }

    /// Checks every value; the message names the offending source, circuit,
    /// load, socket or device and the field.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, f: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("bus: {f} must be a positive number, got {v}"))
            }
        };
        pos(self.nominal_v, "nominal_v")?;
        pos(self.capacitance_f, "capacitance_f")?;
        if let Some(v) = self.initial_v {
            if !(v.is_finite() && (0.0..=SELV_MAX_V).contains(&v)) {
                return Err(format!("bus: initial_v must be in [0, 60] V, got {v}"));
            }
        }
        if !(self.undervoltage_v.is_finite()
            && self.overvoltage_v.is_finite()
            && self.undervoltage_v < self.nominal_v
            && self.nominal_v < self.overvoltage_v)
        {
            return Err(format!(
                "bus: need undervoltage_v < nominal_v < overvoltage_v, got {} < {} < {}",
                self.undervoltage_v, self.nominal_v, self.overvoltage_v
            ));
        }
        for c in &self.battery_converters {
            c.validate()?;
        }
        if let Some(p) = &self.pv_converter {
            p.validate()?;
        }
        if let Some(c) = &self.charger {
            c.validate()?;
        }
        for c in &self.circuits {
            c.validate()?;
        }
        for d in &self.devices {
            d.validate()?;
        }
        if let Some(p) = &self.inverter_port {
            p.validate()?;
        }
        unique(
            "battery converter",
            self.battery_converters.iter().map(|c| c.name.as_str()),
        )?;
        unique("circuit", self.circuits.iter().map(|c| c.name.as_str()))?;
        unique(
            "USB socket",
            self.circuits
                .iter()
                .flat_map(|c| c.usb_sockets.iter().map(|s| s.name.as_str())),
        )?;
        unique("device", self.devices.iter().map(|d| d.name.as_str()))?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Inputs

/// Commands to one battery converter for a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatteryConverterInput {
    pub enabled: bool,
    pub setpoint_v: f64,
    /// Bus-side discharge current limit, A (at most the configured limit).
    pub discharge_limit_a: f64,
    /// Bus-side charge current limit, A (at most the configured limit).
    pub charge_limit_a: f64,
    /// Battery-side power limits from the pack (BMS), W; converted to a
    /// bus-side current at the bus voltage at the start of the step.
    pub battery_discharge_limit_w: f64,
    pub battery_charge_limit_w: f64,
}

/// PV converter inputs for a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PvInput {
    pub enabled: bool,
    /// PV power available at the converter input (MPP power), W.
    pub available_w: f64,
    pub setpoint_v: f64,
}

/// Charger inputs for a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChargerInput {
    pub mains_present: bool,
    pub enabled: bool,
    pub setpoint_v: f64,
    /// Bus-side current limit, A (at most the configured limit).
    pub current_limit_a: f64,
}

/// Inputs of one circuit for a step.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitInput {
    /// The circuit's switch.
    pub switch_on: bool,
    /// While `true`, a tripped breaker is closed again at the start of the step.
    pub reset_breaker: bool,
    /// Short circuit at the load end through this resistance, Ω (`None` = no fault).
    pub fault_ohm: Option<f64>,
    /// Per LED driver (config order): lit or not.
    pub led_on: Vec<bool>,
    /// Per resistive load: connected or not.
    pub resistive_on: Vec<bool>,
    /// Per constant-current load: connected or not.
    pub constant_current_on: Vec<bool>,
}

/// Inputs of one USB socket (sockets are numbered across circuits in config order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SocketInput {
    /// The device plugged in (index into the devices), `None` = empty.
    pub device: Option<usize>,
    /// Socket power budget, W; a change triggers re-negotiation.
    pub budget_w: f64,
}

/// Inputs of one device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceInput {
    /// In use (`true`) or standby.
    pub on: bool,
}

/// The inverter DC port for a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InverterPortInput {
    /// DC power the inverter wants from the bus, W (computed by the house
    /// from its AC loads). Non-finite or negative is taken as 0.
    pub demand_w: f64,
}

/// All inputs for one step. Build once with [`DcBus::default_inputs`] and
/// change fields in place (no allocation per step).
#[derive(Debug, Clone, PartialEq)]
pub struct BusInputs {
    pub battery: Vec<BatteryConverterInput>,
    pub pv: PvInput,
    pub charger: ChargerInput,
    pub circuits: Vec<CircuitInput>,
    pub sockets: Vec<SocketInput>,
    pub devices: Vec<DeviceInput>,
    /// Ignored when the bus has no inverter port.
    pub inverter_port: InverterPortInput,
}

// ---------------------------------------------------------------------------
// Outputs

/// One battery converter over the step. Powers are step averages.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatteryConverterOutput {
    /// Bus-side current at the end of the step, A (+ = into the bus).
    pub current_a: f64,
    /// Bus-side power, W (+ = into the bus).
    pub bus_power_w: f64,
    /// Battery-side power, W (+ = discharging the battery). The house draws
    /// this from (or pushes it into) the battery pack.
    pub battery_power_w: f64,
    pub loss_w: f64,
    /// At a current limit at the end of the step.
    pub at_limit: bool,
    pub bus_energy_j: f64,
    pub battery_energy_j: f64,
}

/// A unidirectional source (PV converter, charger) over the step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SourceOutput {
    pub current_a: f64,
    pub bus_power_w: f64,
    /// Input-side power (PV or AC), W.
    pub input_power_w: f64,
    pub loss_w: f64,
    /// PV: available power not used (curtailed), W. Charger: 0.
    pub curtailed_w: f64,
    pub bus_energy_j: f64,
    pub input_energy_j: f64,
}

/// An LED driver over the step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LedOutput {
    pub power_w: f64,
    /// Drawing power (lit) at the end of the step.
    pub lit: bool,
    /// Locked out by under-voltage.
    pub dropped_out: bool,
}

/// One circuit over the step. Powers are step averages; voltages and
/// currents are end-of-step values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CircuitOutput {
    /// Switch on and breaker closed at the end of the step.
    pub closed: bool,
    pub breaker_tripped: Option<TripCause>,
    /// The breaker tripped during this step.
    pub tripped_this_step: bool,
    /// Breaker thermal state (1.0 = trip).
    pub breaker_thermal_fraction: f64,
    pub v_load: f64,
    pub current_a: f64,
    /// Highest current during the step (over sub-steps), A.
    pub peak_current_a: f64,
    /// Power taken from the bus, W.
    pub power_w: f64,
    /// Power delivered at the load end (loads, socket inputs, fault), W.
    pub load_power_w: f64,
    pub wiring_loss_w: f64,
    pub fault_power_w: f64,
    pub energy_j: f64,
    pub load_energy_j: f64,
    pub wiring_loss_j: f64,
    pub fault_energy_j: f64,
    /// Energy taken from the bus since the start, J.
    pub total_energy_j: f64,
    pub leds: Vec<LedOutput>,
    pub resistive_power_w: Vec<f64>,
    pub constant_current_power_w: Vec<f64>,
}

/// One USB-PD socket over the step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SocketOutput {
    pub circuit: usize,
    pub state: PdState,
    pub device: Option<usize>,
    pub contract: Option<Contract>,
    /// The converter is powered (circuit closed, not locked out).
    pub powered: bool,
    /// Input (bus-side) power, W.
    pub input_power_w: f64,
    /// Output power to the device, W.
    pub output_power_w: f64,
    /// Output current at the contract voltage, A.
    pub output_current_a: f64,
    pub loss_w: f64,
    pub input_energy_j: f64,
    pub output_energy_j: f64,
    pub loss_j: f64,
    /// Input energy since the start, J.
    pub total_input_energy_j: f64,
    /// Smallest and largest step-average input power since the start (or
    /// the last [`DcBus::reset_socket_extrema`]), W.
    pub min_input_power_w: f64,
    pub max_input_power_w: f64,
}

/// The inverter DC port over the step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InverterPortOutput {
    /// Power delivered to the port, W (step average).
    pub power_w: f64,
    /// Energy delivered this step, J.
    pub energy_j: f64,
    /// Energy delivered since the start, J.
    pub total_energy_j: f64,
    /// Locked out by under-voltage at the end of the step.
    pub locked_out: bool,
    /// Demand not delivered (over `max_power_w`, locked out, or sagging
    /// below the knee), W (step average). Without a port everything is 0.
    pub unserved_w: f64,
}

/// Energies of one step, J, for the balance
/// `source_input = loads + wiring_loss + converter_loss + cap_delta + integration_loss`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepEnergy {
    /// Σ input-side energy of the sources: battery (+ discharge, − charge),
    /// PV used, mains AC.
    pub source_input_j: f64,
    /// Σ bus-side energy of the sources.
    pub source_bus_j: f64,
    /// Σ energy at load terminals: LED drivers, resistive and
    /// constant-current loads, faults, devices (socket outputs), the
    /// inverter DC port.
    pub load_j: f64,
    pub wiring_loss_j: f64,
    /// Source converters and socket converters.
    pub converter_loss_j: f64,
    /// Δ(½ C V²) over the step.
    pub cap_delta_j: f64,
    /// The numerical dissipation of backward Euler, ½ C (ΔV)² per (sub-)step;
    /// zero in steady state.
    pub integration_loss_j: f64,
    /// Σ |bus-side energy| of every source and circuit: the gross flow
    /// through the bus node (sources may push into each other), the scale
    /// for the balance tolerance.
    pub throughput_j: f64,
}

impl StepEnergy {
    /// Input minus everything accounted for; ~0 up to rounding.
    pub fn imbalance_j(&self) -> f64 {
        self.source_input_j
            - self.load_j
            - self.wiring_loss_j
            - self.converter_loss_j
            - self.cap_delta_j
            - self.integration_loss_j
    }

    /// The largest term (including the throughput), for a relative tolerance.
    pub fn scale_j(&self) -> f64 {
        [
            self.source_input_j.abs(),
            self.load_j,
            self.wiring_loss_j,
            self.converter_loss_j,
            self.cap_delta_j.abs(),
            self.integration_loss_j,
            self.throughput_j,
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }

    fn add(&mut self, o: &StepEnergy) {
        self.source_input_j += o.source_input_j;
        self.source_bus_j += o.source_bus_j;
        self.load_j += o.load_j;
        self.wiring_loss_j += o.wiring_loss_j;
        self.converter_loss_j += o.converter_loss_j;
        self.cap_delta_j += o.cap_delta_j;
        self.integration_loss_j += o.integration_loss_j;
        self.throughput_j += o.throughput_j;
    }
}

/// Everything the bus reports after a step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BusOutputs {
    /// Bus voltage at the end of the step, V.
    pub v_bus: f64,
    /// Lowest and highest bus voltage at the (sub-)step ends, V.
    pub v_bus_min: f64,
    pub v_bus_max: f64,
    pub undervoltage: bool,
    pub overvoltage: bool,
    pub battery: Vec<BatteryConverterOutput>,
    pub pv: SourceOutput,
    pub charger: SourceOutput,
    pub circuits: Vec<CircuitOutput>,
    pub sockets: Vec<SocketOutput>,
    pub devices: Vec<DeviceOutput>,
    pub inverter_port: InverterPortOutput,
    pub energy: StepEnergy,
    /// Sub-steps taken (more than 1 when a breaker tripped inside the step).
    pub substeps: u32,
}

// ---------------------------------------------------------------------------
// State

#[derive(Debug, Clone)]
struct CircuitState {
    r_ohm: f64,
    breaker: Breaker,
    far: FarEnd,
    led_knee: Vec<usize>,
    led_uvlo: Vec<Uvlo>,
    cc_knee: Vec<usize>,
    sockets: std::ops::Range<usize>,
    closed: bool,
    fault_g: f64,
    sol: CircuitSolution,
    total_energy_j: f64,
}

#[derive(Debug, Clone)]
struct SocketState {
    circuit: usize,
    knee: usize,
    cfg: UsbSocketConfig,
    port: PdPort,
    uvlo: Uvlo,
    device: Option<usize>,
    plan_out_w: f64,
    plan_in_w: f64,
    total_in_j: f64,
    min_in_w: f64,
    max_in_w: f64,
}

/// The inverter DC port: a constant-power load at the bus node.
#[derive(Debug, Clone, Copy)]
struct PortState {
    /// Knee (= lockout) voltage, V.
    knee_v: f64,
    max_w: f64,
    uvlo: Uvlo,
    /// Sanitised demand of this step, W.
    demand_w: f64,
    /// Constant power drawn in the current (sub-)step, W (0 when locked out).
    plan_w: f64,
    total_j: f64,
}

impl PortState {
    /// Current drawn at bus voltage `v` and its derivative: `P/V` above the
    /// knee, the resistor `P/knee²` below it (continuous, 0 at 0 V).
    #[inline]
    fn current(&self, v: f64) -> (f64, f64) {
        let p = self.plan_w;
        if p <= 0.0 || v <= 0.0 {
            (
                0.0,
                if p > 0.0 {
                    p / (self.knee_v * self.knee_v)
                } else {
                    0.0
                },
            )
        } else if v >= self.knee_v {
            (p / v, -p / (v * v))
        } else {
            let g = p / (self.knee_v * self.knee_v);
            (g * v, g)
        }
    }
}

/// The DC bus model. See the module docs of [`super`].
#[derive(Debug, Clone)]
pub struct DcBus {
    config: BusConfig,
    v: f64,
    circuits: Vec<CircuitState>,
    sockets: Vec<SocketState>,
    devices: Vec<Device>,
    port: Option<PortState>,
    // Per-step scratch.
    battery_laws: Vec<DroopLaw>,
    pv_law: DroopLaw,
    charger_law: DroopLaw,
    device_socket: Vec<Option<usize>>,
    out: BusOutputs,
}

const MAX_NEWTON: usize = 200;

/// Source setpoints are clamped to the SELV limit, V: no converter on this
/// bus can be commanded above it.
pub const SELV_MAX_V: f64 = 60.0;

impl DcBus {
    /// Builds the bus from a validated configuration.
    pub fn new(config: BusConfig) -> Result<Self, String> {
        config.validate()?;
        let v0 = config.initial_v.unwrap_or(config.nominal_v);
        let mut circuits = Vec::with_capacity(config.circuits.len());
        let mut sockets = Vec::new();
        for (ci, c) in config.circuits.iter().enumerate() {
            let mut knees: Vec<f64> = c.led_drivers.iter().map(|d| d.min_input_v).collect();
            knees.extend(c.constant_current_loads.iter().map(|d| d.min_input_v));
            knees.extend(c.usb_sockets.iter().map(|s| s.min_input_v));
            let far = FarEnd::with_knees(knees);
            let led_knee = c
                .led_drivers
                .iter()
                .map(|d| far.knee_index(d.min_input_v))
                .collect();
            let led_uvlo = c
                .led_drivers
                .iter()
                .map(|d| {
                    let mut u = Uvlo::new(d.min_input_v, d.restart_v());
                    u.locked_out = v0 < d.restart_v();
                    u
                })
                .collect();
            let cc_knee = c
                .constant_current_loads
                .iter()
                .map(|d| far.knee_index(d.min_input_v))
                .collect();
            let start = sockets.len();
            for s in &c.usb_sockets {
                let mut uvlo = Uvlo::new(s.min_input_v, s.restart_v());
                uvlo.locked_out = v0 < s.restart_v();
                sockets.push(SocketState {
                    circuit: ci,
                    knee: far.knee_index(s.min_input_v),
                    cfg: s.clone(),
                    port: PdPort::default(),
                    uvlo,
                    device: None,
                    plan_out_w: 0.0,
                    plan_in_w: 0.0,
                    total_in_j: 0.0,
                    min_in_w: f64::INFINITY,
                    max_in_w: 0.0,
                });
            }
            circuits.push(CircuitState {
                r_ohm: c.loop_resistance_ohm(),
                breaker: Breaker::new(c.breaker.clone()),
                far,
                led_knee,
                led_uvlo,
                cc_knee,
                sockets: start..sockets.len(),
                closed: false,
                fault_g: 0.0,
                sol: CircuitSolution::default(),
                total_energy_j: 0.0,
            });
        }
        let devices: Vec<Device> = config.devices.iter().cloned().map(Device::new).collect();
        let port = config.inverter_port.as_ref().map(|p| {
            let mut uvlo = Uvlo::new(p.min_input_v, p.restart_v());
            uvlo.locked_out = v0 < p.restart_v();
            PortState {
                knee_v: p.min_input_v,
                max_w: p.max_power_w(),
                uvlo,
                demand_w: 0.0,
                plan_w: 0.0,
                total_j: 0.0,
            }
        });
        let out = BusOutputs {
            v_bus: v0,
            v_bus_min: v0,
            v_bus_max: v0,
            battery: vec![BatteryConverterOutput::default(); config.battery_converters.len()],
            pv: SourceOutput::default(),
            charger: SourceOutput::default(),
            circuits: config
                .circuits
                .iter()
                .map(|c| CircuitOutput {
                    leds: vec![LedOutput::default(); c.led_drivers.len()],
                    resistive_power_w: vec![0.0; c.resistive_loads.len()],
                    constant_current_power_w: vec![0.0; c.constant_current_loads.len()],
                    ..CircuitOutput::default()
                })
                .collect(),
            sockets: vec![SocketOutput::default(); sockets.len()],
            devices: vec![DeviceOutput::default(); devices.len()],
            inverter_port: InverterPortOutput {
                locked_out: port.is_some_and(|p| p.uvlo.locked_out),
                ..InverterPortOutput::default()
            },
            energy: StepEnergy::default(),
            substeps: 0,
            undervoltage: false,
            overvoltage: false,
        };
        Ok(Self {
            battery_laws: vec![DroopLaw::OFF; config.battery_converters.len()],
            pv_law: DroopLaw::OFF,
            charger_law: DroopLaw::OFF,
            device_socket: vec![None; devices.len()],
            v: v0,
            circuits,
            sockets,
            devices,
            port,
            out,
            config,
        })
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Bus voltage now, V.
    pub fn v_bus(&self) -> f64 {
        self.v
    }

    /// Energy in the bus capacitance, J.
    pub fn stored_energy_j(&self) -> f64 {
        0.5 * self.config.capacitance_f * self.v * self.v
    }

    /// The outputs of the last step.
    pub fn outputs(&self) -> &BusOutputs {
        &self.out
    }

    pub fn circuit_index(&self, name: &str) -> Option<usize> {
        self.config.circuits.iter().position(|c| c.name == name)
    }

    pub fn socket_index(&self, name: &str) -> Option<usize> {
        self.sockets.iter().position(|s| s.cfg.name == name)
    }

    pub fn device_index(&self, name: &str) -> Option<usize> {
        self.config.devices.iter().position(|d| d.name == name)
    }

    pub fn battery_converter_index(&self, name: &str) -> Option<usize> {
        self.config
            .battery_converters
            .iter()
            .position(|c| c.name == name)
    }

    /// A device's state (SOC etc.).
    pub fn device(&self, index: usize) -> &Device {
        &self.devices[index]
    }

    pub fn device_mut(&mut self, index: usize) -> &mut Device {
        &mut self.devices[index]
    }

    /// A circuit's breaker.
    pub fn breaker(&self, circuit: usize) -> &Breaker {
        &self.circuits[circuit].breaker
    }

    /// Closes a tripped breaker now.
    pub fn reset_breaker(&mut self, circuit: usize) {
        self.circuits[circuit].breaker.reset();
    }

    /// Restarts the per-socket min/max power statistics.
    pub fn reset_socket_extrema(&mut self) {
        for s in &mut self.sockets {
            s.min_in_w = f64::INFINITY;
            s.max_in_w = 0.0;
        }
    }

    /// Inputs at their configured defaults: converters enabled at their
    /// setpoints and limits, charger enabled with mains present, PV enabled
    /// with nothing available, all switches on and all loads on, sockets
    /// empty at their budgets, devices in standby, no inverter demand.
    pub fn default_inputs(&self) -> BusInputs {
        let c = &self.config;
        BusInputs {
            battery: c
                .battery_converters
                .iter()
                .map(|b| BatteryConverterInput {
                    enabled: true,
                    setpoint_v: b.setpoint_v,
                    discharge_limit_a: b.discharge_limit_a,
                    charge_limit_a: b.charge_limit_a,
                    battery_discharge_limit_w: f64::INFINITY,
                    battery_charge_limit_w: f64::INFINITY,
                })
                .collect(),
            pv: PvInput {
                enabled: c.pv_converter.is_some(),
                available_w: 0.0,
                setpoint_v: c.pv_converter.as_ref().map_or(0.0, |p| p.setpoint_v),
            },
            charger: ChargerInput {
                mains_present: true,
                enabled: c.charger.is_some(),
                setpoint_v: c.charger.as_ref().map_or(0.0, |p| p.setpoint_v),
                current_limit_a: c.charger.as_ref().map_or(0.0, |p| p.current_limit_a),
            },
            circuits: c
                .circuits
                .iter()
                .map(|c| CircuitInput {
                    switch_on: true,
                    reset_breaker: false,
                    fault_ohm: None,
                    led_on: vec![true; c.led_drivers.len()],
                    resistive_on: vec![true; c.resistive_loads.len()],
                    constant_current_on: vec![true; c.constant_current_loads.len()],
                })
                .collect(),
            sockets: self
                .sockets
                .iter()
                .map(|s| SocketInput {
                    device: None,
                    budget_w: s.cfg.budget_w,
                })
                .collect(),
            devices: vec![DeviceInput { on: false }; self.devices.len()],
            inverter_port: InverterPortInput { demand_w: 0.0 },
        }
    }

    /// Advances the bus by `dt_s` (any step from 100 µs to 1 s and beyond).
    /// Inputs shorter than the configuration (or non-finite values) are
    /// treated as off; a non-positive or non-finite `dt_s` does nothing.
    pub fn step(&mut self, dt_s: f64, inputs: &BusInputs) -> &BusOutputs {
        self.begin_step();
        if !(dt_s.is_finite() && dt_s > 0.0) {
            self.finish_step(0.0);
            return &self.out;
        }
        self.begin_inputs(inputs);
        let mut remaining = dt_s;
        let max_sub = 4 + 2 * self.circuits.len();
        for k in 0..max_sub {
            let last = k + 1 == max_sub;
            self.prepare(remaining, inputs);
            let v = self.solve(remaining, inputs);
            // Earliest breaker trip at this operating point.
            let mut t_trip = f64::INFINITY;
            if !last {
                for c in &self.circuits {
                    if c.closed {
                        t_trip = t_trip.min(c.breaker.time_to_trip_s(c.sol.current_a));
                    }
                }
            }
            if t_trip < remaining * (1.0 - 1e-9) {
                let h = t_trip;
                if h > 0.0 {
                    self.prepare(h, inputs);
                    let v = self.solve(h, inputs);
                    self.commit(h, v, inputs);
                } else {
                    // Trip before any current flows (e.g. reset onto a hot
                    // overload).
                    for (ci, c) in self.circuits.iter_mut().enumerate() {
                        if c.closed && c.breaker.time_to_trip_s(c.sol.current_a) <= 0.0 {
                            self.out.circuits[ci].tripped_this_step = true;
                            let cause = if c.sol.current_a
                                > c.breaker.config.magnetic_trip_multiple
                                    * c.breaker.config.rating_a
                            {
                                TripCause::Magnetic
                            } else {
                                TripCause::Thermal
                            };
                            c.breaker.trip(cause);
                        }
                    }
                }
                remaining -= h;
                continue;
            }
            self.commit(remaining, v, inputs);
            break;
        }
        self.finish_step(dt_s);
        &self.out
    }

    fn begin_step(&mut self) {
        let o = &mut self.out;
        o.energy = StepEnergy::default();
        o.substeps = 0;
        o.v_bus_min = self.v;
        o.v_bus_max = self.v;
        for b in &mut o.battery {
            b.bus_energy_j = 0.0;
            b.battery_energy_j = 0.0;
        }
        for s in [&mut o.pv, &mut o.charger] {
            s.bus_energy_j = 0.0;
            s.input_energy_j = 0.0;
            s.curtailed_w = 0.0;
        }
        for c in &mut o.circuits {
            c.energy_j = 0.0;
            c.load_energy_j = 0.0;
            c.wiring_loss_j = 0.0;
            c.fault_energy_j = 0.0;
            c.peak_current_a = 0.0;
            c.tripped_this_step = false;
            c.leds.iter_mut().for_each(|l| l.power_w = 0.0);
            c.resistive_power_w.iter_mut().for_each(|p| *p = 0.0);
            c.constant_current_power_w.iter_mut().for_each(|p| *p = 0.0);
        }
        for s in &mut o.sockets {
            s.input_energy_j = 0.0;
            s.output_energy_j = 0.0;
            s.loss_j = 0.0;
        }
        for d in &mut o.devices {
            d.input_j = 0.0;
        }
        o.inverter_port.energy_j = 0.0;
    }

    /// Start-of-step input handling: breaker resets, plugs, budgets.
    fn begin_inputs(&mut self, inputs: &BusInputs) {
        for (ci, c) in self.circuits.iter_mut().enumerate() {
            if inputs.circuits.get(ci).is_some_and(|i| i.reset_breaker) {
                c.breaker.reset();
            }
        }
        self.device_socket.iter_mut().for_each(|d| *d = None);
        let nd = self.devices.len();
        for (si, s) in self.sockets.iter_mut().enumerate() {
            let inp = inputs.sockets.get(si);
            let mut dev = inp.and_then(|i| i.device).filter(|&d| d < nd);
            if let Some(d) = dev {
                if self.device_socket[d].is_some() {
                    dev = None; // already plugged elsewhere
                } else {
                    self.device_socket[d] = Some(si);
                }
            }
            s.device = dev;
            let budget = socket_budget(inp, &s.cfg);
            s.port.begin_step(&s.cfg, dev, budget);
        }
        if let Some(p) = &mut self.port {
            p.demand_w = demand(inputs.inverter_port.demand_w);
        }
    }

    /// Builds the source laws and far-end loads for a (sub-)step of `h`.
    fn prepare(&mut self, h: f64, inputs: &BusInputs) {
        let v_now = self.v.max(1.0);
        for (k, (law, cfg)) in self
            .battery_laws
            .iter_mut()
            .zip(&self.config.battery_converters)
            .enumerate()
        {
            *law = DroopLaw::OFF;
            if let Some(i) = inputs.battery.get(k) {
                if i.enabled && i.setpoint_v.is_finite() {
                    let dis_p = fin_nonneg(i.battery_discharge_limit_w) * cfg.efficiency / v_now;
                    let chg_p = fin_nonneg(i.battery_charge_limit_w) / cfg.efficiency / v_now;
                    let hi = fin_nonneg(i.discharge_limit_a)
                        .min(cfg.discharge_limit_a)
                        .min(dis_p);
                    let lo = fin_nonneg(i.charge_limit_a)
                        .min(cfg.charge_limit_a)
                        .min(chg_p);
                    *law = DroopLaw {
                        setpoint_v: i.setpoint_v.clamp(0.0, SELV_MAX_V),
                        r_ohm: cfg.droop_v_per_a,
                        lo_a: -lo,
                        hi_a: hi,
                        max_power_w: f64::INFINITY,
                    };
                }
            }
        }
        self.pv_law = DroopLaw::OFF;
        if let Some(p) = &self.config.pv_converter {
            let i = &inputs.pv;
            if i.enabled && i.setpoint_v.is_finite() {
                let avail = (fin_nonneg(i.available_w) * p.efficiency).min(p.rated_power_w);
                if avail > 0.0 {
                    // Full power up to the setpoint, then back off with the
                    // droop slope to zero.
                    let sp = i.setpoint_v.clamp(1.0, SELV_MAX_V);
                    self.pv_law = DroopLaw {
                        setpoint_v: (sp + p.droop_v_per_a * avail / sp).min(SELV_MAX_V),
                        r_ohm: p.droop_v_per_a,
                        lo_a: 0.0,
                        hi_a: 1.25 * p.rated_power_w / self.config.nominal_v,
                        max_power_w: avail,
                    };
                }
            }
        }
        self.charger_law = DroopLaw::OFF;
        if let Some(c) = &self.config.charger {
            let i = &inputs.charger;
            if i.enabled && i.mains_present && i.setpoint_v.is_finite() {
                self.charger_law = DroopLaw {
                    setpoint_v: i.setpoint_v.clamp(0.0, SELV_MAX_V),
                    r_ohm: c.droop_v_per_a,
                    lo_a: 0.0,
                    hi_a: fin_nonneg(i.current_limit_a).min(c.current_limit_a),
                    max_power_w: f64::INFINITY,
                };
            }
        }
        // Circuits.
        for (ci, c) in self.circuits.iter_mut().enumerate() {
            let cfg = &self.config.circuits[ci];
            let inp = inputs.circuits.get(ci);
            c.far.clear();
            c.closed = inp.is_some_and(|i| i.switch_on) && c.breaker.is_closed();
            c.fault_g = 0.0;
            if !c.closed {
                continue;
            }
            let inp = inp.expect("closed implies input");
            for (k, d) in cfg.led_drivers.iter().enumerate() {
                if flag(&inp.led_on, k) && !c.led_uvlo[k].locked_out {
                    c.far.knee_p_w[c.led_knee[k]] += d.power_w;
                }
            }
            for (k, d) in cfg.resistive_loads.iter().enumerate() {
                if flag(&inp.resistive_on, k) {
                    c.far.g_s += 1.0 / d.resistance_ohm;
                }
            }
            for (k, d) in cfg.constant_current_loads.iter().enumerate() {
                if flag(&inp.constant_current_on, k) {
                    c.far.knee_i_a[c.cc_knee[k]] += d.current_a;
                }
            }
            if let Some(rf) = inp.fault_ohm {
                if !rf.is_nan() {
                    c.fault_g = 1.0 / rf.max(1e-6);
                    c.far.g_s += c.fault_g;
                }
            }
        }
        // Sockets and their devices.
        for (si, s) in self.sockets.iter_mut().enumerate() {
            let circuit = &mut self.circuits[s.circuit];
            let powered = circuit.closed && !s.uvlo.locked_out;
            s.plan_out_w = 0.0;
            s.plan_in_w = 0.0;
            if !powered {
                continue;
            }
            let budget = socket_budget(inputs.sockets.get(si), &s.cfg);
            if let Some(d) = s.device {
                let limit = s.port.power_limit_w(&s.cfg, budget);
                let on = inputs.devices.get(d).is_some_and(|i| i.on);
                s.plan_out_w = self.devices[d].demand_w(h, on, limit);
            }
            s.plan_in_w = s.cfg.idle_w + s.plan_out_w / s.cfg.efficiency;
            circuit.far.knee_p_w[s.knee] += s.plan_in_w;
        }
        for c in &mut self.circuits {
            c.far.finish();
        }
        if let Some(p) = &mut self.port {
            p.plan_w = if p.uvlo.locked_out {
                0.0
            } else {
                p.demand_w.min(p.max_w)
            };
        }
        for (d, dev) in self.devices.iter_mut().enumerate() {
            let plugged_powered = self.device_socket[d].is_some_and(|si| {
                let s = &self.sockets[si];
                self.circuits[s.circuit].closed && !s.uvlo.locked_out
            });
            if !plugged_powered {
                let on = inputs.devices.get(d).is_some_and(|i| i.on);
                dev.demand_w(h, on, 0.0);
            }
        }
    }

    /// Net current out of the node (circuits − sources) and its derivative.
    fn net_load(&mut self, v: f64, store: bool) -> (f64, f64) {
        let mut i = 0.0;
        let mut di = 0.0;
        for law in self
            .battery_laws
            .iter()
            .chain([&self.pv_law, &self.charger_law])
        {
            let (is, ds) = law.current(v);
            i -= is;
            di -= ds;
        }
        if let Some(p) = &self.port {
            let (ip, dp) = p.current(v);
            i += ip;
            di += dp;
        }
        for c in &mut self.circuits {
            if !c.closed {
                if store {
                    c.sol = CircuitSolution::default();
                }
                continue;
            }
            let s = c.far.solve(v, c.r_ohm);
            i += s.current_a;
            di += s.di_dv;
            if store {
                c.sol = s;
            }
        }
        (i, di)
    }

    /// Solves the node equation for a step of `h`; returns the new voltage
    /// and leaves each circuit's solution in its state.
    fn solve(&mut self, h: f64, inputs: &BusInputs) -> f64 {
        let cap = self.config.capacitance_f / h;
        let v_old = self.v;
        let mut v_hi = v_old;
        for law in self
            .battery_laws
            .iter()
            .chain([&self.pv_law, &self.charger_law])
        {
            if law.hi_a > 0.0 {
                v_hi = v_hi.max(law.setpoint_v);
            }
        }
        v_hi += 1.0;
        let mut lo = 0.0;
        let mut hi = v_hi;
        let mut v = v_old.clamp(lo, hi);
        let mut fv;
        let mut iter = 0;
        loop {
            // Each evaluation stores the circuits' solutions at `v`.
            let (i, di) = self.net_load(v, true);
            fv = cap * (v - v_old) + i;
            let dfv = cap + di;
            iter += 1;
            if fv == 0.0 || iter >= MAX_NEWTON {
                break;
            }
            if fv < 0.0 {
                lo = v;
            } else {
                hi = v;
            }
            let newton = if dfv > 0.0 && dfv.is_finite() {
                v - fv / dfv
            } else {
                f64::NAN
            };
            // Converged: the Newton correction is below rounding.
            if (newton - v).abs() <= 2e-15 * v.abs().max(1.0) {
                break;
            }
            if hi - lo <= 8.0 * f64::EPSILON * hi.max(1.0) {
                // Bracket collapsed on a jump of the node equation.
                if v != lo {
                    v = lo;
                    continue;
                }
                break;
            }
            v = if newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
        }
        // A circuit that lost its constant-power operating point (the fold of
        // P = V_L (V − V_L)/R) makes the node equation jump at `v`: its
        // constant-power loads brown out and lock out; solve again.
        let scale = cap * v.abs() + 1.0;
        if fv.abs() > 1e-9 * scale && self.lock_out_browned(lo) {
            self.refresh_far_ends(h, inputs);
            return self.solve(h, inputs);
        }
        v
    }

    /// Locks out the constant-power loads of circuits that sit below their
    /// knee at bus voltage `v`, and the inverter port if the bus itself is
    /// below its knee; returns whether any changed.
    fn lock_out_browned(&mut self, v: f64) -> bool {
        let mut changed = false;
        if let Some(p) = &mut self.port {
            if !p.uvlo.locked_out && p.plan_w > 0.0 && v < p.knee_v {
                p.uvlo.locked_out = true;
                changed = true;
            }
        }
        for (ci, c) in self.circuits.iter_mut().enumerate() {
            if !c.closed {
                continue;
            }
            let s = c.far.solve(v, c.r_ohm);
            let cfg = &self.config.circuits[ci];
            for (k, d) in cfg.led_drivers.iter().enumerate() {
                if !c.led_uvlo[k].locked_out && s.v_load < d.min_input_v {
                    c.led_uvlo[k].locked_out = true;
                    changed = true;
                }
            }
            for si in c.sockets.clone() {
                let so = &mut self.sockets[si];
                if !so.uvlo.locked_out && s.v_load < so.cfg.min_input_v {
                    so.uvlo.locked_out = true;
                    changed = true;
                }
            }
        }
        changed
    }

    fn refresh_far_ends(&mut self, h: f64, inputs: &BusInputs) {
        self.prepare(h, inputs);
    }

    /// Applies a solved (sub-)step of `h` at bus voltage `v`.
    fn commit(&mut self, h: f64, v: f64, inputs: &BusInputs) {
        let v_old = self.v;
        let c_f = self.config.capacitance_f;
        let mut e = StepEnergy {
            cap_delta_j: 0.5 * c_f * (v * v - v_old * v_old),
            integration_loss_j: 0.5 * c_f * (v - v_old) * (v - v_old),
            ..StepEnergy::default()
        };
        self.v = v;
        let o = &mut self.out;
        // Sources.
        for ((law, cfg), bo) in self
            .battery_laws
            .iter()
            .zip(&self.config.battery_converters)
            .zip(&mut o.battery)
        {
            let (i, _) = law.current(v);
            let p_bus = v * i;
            let p_bat = if p_bus >= 0.0 {
                p_bus / cfg.efficiency
            } else {
                p_bus * cfg.efficiency
            };
            bo.current_a = i;
            bo.at_limit = (law.hi_a > 0.0 && i >= law.hi_a) || (law.lo_a < 0.0 && i <= law.lo_a);
            bo.bus_energy_j += p_bus * h;
            bo.battery_energy_j += p_bat * h;
            e.source_bus_j += p_bus * h;
            e.throughput_j += p_bus.abs() * h;
            e.source_input_j += p_bat * h;
            e.converter_loss_j += (p_bat - p_bus) * h;
        }
        if let Some(p) = &self.config.pv_converter {
            let (i, _) = self.pv_law.current(v);
            let p_bus = v * i;
            let p_in = p_bus / p.efficiency;
            let avail = if inputs.pv.enabled {
                fin_nonneg(inputs.pv.available_w)
            } else {
                0.0
            };
            o.pv.current_a = i;
            o.pv.bus_energy_j += p_bus * h;
            o.pv.input_energy_j += p_in * h;
            o.pv.curtailed_w += (avail - p_in).max(0.0) * h;
            e.source_bus_j += p_bus * h;
            e.throughput_j += p_bus.abs() * h;
            e.source_input_j += p_in * h;
            e.converter_loss_j += (p_in - p_bus) * h;
        }
        if let Some(c) = &self.config.charger {
            let (i, _) = self.charger_law.current(v);
            let p_bus = v * i;
            let p_in = p_bus / c.efficiency;
            o.charger.current_a = i;
            o.charger.bus_energy_j += p_bus * h;
            o.charger.input_energy_j += p_in * h;
            e.source_bus_j += p_bus * h;
            e.throughput_j += p_bus.abs() * h;
            e.source_input_j += p_in * h;
            e.converter_loss_j += (p_in - p_bus) * h;
        }
        // Circuits.
        for (ci, c) in self.circuits.iter_mut().enumerate() {
            let cfg = &self.config.circuits[ci];
            let co = &mut o.circuits[ci];
            let inp = inputs.circuits.get(ci);
            let s = c.sol;
            let vl = s.v_load;
            let i = s.current_a;
            co.v_load = vl;
            co.current_a = i;
            co.peak_current_a = co.peak_current_a.max(i);
            let wl = i * i * c.r_ohm;
            let p_bus = v * i;
            co.energy_j += p_bus * h;
            e.throughput_j += p_bus * h;
            co.wiring_loss_j += wl * h;
            c.total_energy_j += p_bus * h;
            e.wiring_loss_j += wl * h;
            let mut p_load = 0.0; // at the load end, excluding sockets
            if c.closed {
                let inp = inp.expect("closed implies input");
                for (k, d) in cfg.led_drivers.iter().enumerate() {
                    let p = if flag(&inp.led_on, k) && !c.led_uvlo[k].locked_out {
                        FarEnd::cp_power(d.power_w, d.min_input_v, vl)
                    } else {
                        0.0
                    };
                    co.leds[k].power_w += p * h;
                    p_load += p;
                }
                for (k, d) in cfg.resistive_loads.iter().enumerate() {
                    let p = if flag(&inp.resistive_on, k) {
                        vl * vl / d.resistance_ohm
                    } else {
                        0.0
                    };
                    co.resistive_power_w[k] += p * h;
                    p_load += p;
                }
                for (k, d) in cfg.constant_current_loads.iter().enumerate() {
                    let p = if flag(&inp.constant_current_on, k) {
                        vl * FarEnd::cc_current(d.current_a, d.min_input_v, vl)
                    } else {
                        0.0
                    };
                    co.constant_current_power_w[k] += p * h;
                    p_load += p;
                }
                let pf = vl * vl * c.fault_g;
                co.fault_energy_j += pf * h;
                p_load += pf;
            }
            e.load_j += p_load * h;
            // Sockets on this circuit.
            for si in c.sockets.clone() {
                let so = &mut self.sockets[si];
                let sout = &mut o.sockets[si];
                let (p_in, p_out) = if so.plan_in_w > 0.0 {
                    let p_in = FarEnd::cp_power(so.plan_in_w, so.cfg.min_input_v, vl);
                    (p_in, so.plan_out_w * p_in / so.plan_in_w)
                } else {
                    (0.0, 0.0)
                };
                let loss = p_in - p_out;
                e.load_j += p_out * h;
                e.converter_loss_j += loss * h;
                sout.input_energy_j += p_in * h;
                sout.output_energy_j += p_out * h;
                sout.loss_j += loss * h;
                so.total_in_j += p_in * h;
                if let Some(d) = so.device {
                    let dout = self.devices[d].commit(h, p_out);
                    let acc = o.devices[d].input_j + dout.input_j;
                    o.devices[d] = DeviceOutput {
                        input_j: acc,
                        ..dout
                    };
                }
                // Lockout and protocol.
                so.uvlo.update(if c.closed { vl } else { 0.0 });
                let powered = c.closed && !so.uvlo.locked_out;
                let budget = socket_budget(inputs.sockets.get(si), &so.cfg);
                let sink = so.device.map(|d| &self.devices[d].config);
                so.port.end_step(h, &so.cfg, budget, sink, powered);
                sout.output_current_a = match so.port.state {
                    PdState::Contract(k) | PdState::Renegotiating { old: k, .. }
                        if k.voltage_v > 0.0 =>
                    {
                        p_out / k.voltage_v
                    }
                    _ => p_out / 5.0,
                };
            }
            // LED lockouts.
            for (k, u) in c.led_uvlo.iter_mut().enumerate() {
                u.update(if c.closed { vl } else { 0.0 });
                co.leds[k].dropped_out = u.locked_out;
                co.leds[k].lit =
                    c.closed && !u.locked_out && inp.is_some_and(|i| flag(&i.led_on, k));
            }
            // Breaker.
            if c.breaker.is_closed() && c.closed {
                if c.breaker.advance(h, i).is_some() {
                    co.tripped_this_step = true;
                }
            } else {
                c.breaker.advance(h, 0.0);
            }
        }
        // The inverter port, at the node.
        if let Some(p) = &mut self.port {
            let (ip, _) = p.current(v);
            let pp = v * ip;
            o.inverter_port.energy_j += pp * h;
            p.total_j += pp * h;
            e.load_j += pp * h;
            e.throughput_j += pp * h;
            p.uvlo.update(v);
        }
        // Devices not plugged in (they run from their batteries, if any).
        for (d, dev) in self.devices.iter_mut().enumerate() {
            if self.device_socket[d].is_none() {
                let dout = dev.commit(h, 0.0);
                o.devices[d] = DeviceOutput {
                    input_j: o.devices[d].input_j,
                    ..dout
                };
            }
        }
        o.energy.add(&e);
        o.substeps += 1;
        o.v_bus_min = o.v_bus_min.min(v);
        o.v_bus_max = o.v_bus_max.max(v);
    }

    fn finish_step(&mut self, dt_s: f64) {
        let inv = if dt_s > 0.0 { 1.0 / dt_s } else { 0.0 };
        let o = &mut self.out;
        o.v_bus = self.v;
        o.undervoltage = self.v < self.config.undervoltage_v;
        o.overvoltage = self.v > self.config.overvoltage_v;
        for b in &mut o.battery {
            b.bus_power_w = b.bus_energy_j * inv;
            b.battery_power_w = b.battery_energy_j * inv;
            b.loss_w = b.battery_power_w - b.bus_power_w;
        }
        for s in [&mut o.pv, &mut o.charger] {
            s.bus_power_w = s.bus_energy_j * inv;
            s.input_power_w = s.input_energy_j * inv;
            s.loss_w = s.input_power_w - s.bus_power_w;
            s.curtailed_w *= inv;
        }
        for (ci, c) in self.circuits.iter().enumerate() {
            let co = &mut o.circuits[ci];
            co.closed = c.closed && c.breaker.is_closed();
            co.breaker_tripped = c.breaker.tripped();
            co.breaker_thermal_fraction = c.breaker.thermal_fraction();
            co.power_w = co.energy_j * inv;
            co.wiring_loss_w = co.wiring_loss_j * inv;
            co.fault_power_w = co.fault_energy_j * inv;
            co.load_energy_j = co.energy_j - co.wiring_loss_j;
            co.load_power_w = co.load_energy_j * inv;
            co.total_energy_j = c.total_energy_j;
            co.leds.iter_mut().for_each(|l| l.power_w *= inv);
            co.resistive_power_w.iter_mut().for_each(|p| *p *= inv);
            co.constant_current_power_w
                .iter_mut()
                .for_each(|p| *p *= inv);
        }
        for (si, s) in self.sockets.iter_mut().enumerate() {
            let so = &mut o.sockets[si];
            so.circuit = s.circuit;
            so.state = s.port.state;
            so.device = s.device;
            so.contract = match s.port.state {
                PdState::Contract(k) => Some(k),
                _ => None,
            };
            so.powered = self.circuits[s.circuit].closed
                && self.circuits[s.circuit].breaker.is_closed()
                && !s.uvlo.locked_out;
            so.input_power_w = so.input_energy_j * inv;
            so.output_power_w = so.output_energy_j * inv;
            so.loss_w = so.loss_j * inv;
            so.total_input_energy_j = s.total_in_j;
            if dt_s > 0.0 {
                s.min_in_w = s.min_in_w.min(so.input_power_w);
                s.max_in_w = s.max_in_w.max(so.input_power_w);
            }
            so.min_input_power_w = if s.min_in_w.is_finite() {
                s.min_in_w
            } else {
                0.0
            };
            so.max_input_power_w = s.max_in_w;
        }
        let po = &mut o.inverter_port;
        po.power_w = po.energy_j * inv;
        if let Some(p) = &self.port {
            let asked = if dt_s > 0.0 { p.demand_w } else { 0.0 };
            po.total_energy_j = p.total_j;
            po.locked_out = p.uvlo.locked_out;
            po.unserved_w = (asked - po.power_w).max(0.0);
        }
    }
}

#[inline]
fn flag(v: &[bool], k: usize) -> bool {
    v.get(k).copied().unwrap_or(false)
}

#[inline]
fn fin_nonneg(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.max(0.0)
    }
}

/// Inverter demand: non-finite or negative is 0.
#[inline]
fn demand(w: f64) -> f64 {
    if w.is_finite() {
        w.max(0.0)
    } else {
        0.0
    }
}

fn socket_budget(inp: Option<&SocketInput>, cfg: &UsbSocketConfig) -> f64 {
    match inp {
        Some(i) if i.budget_w.is_finite() => i.budget_w.max(0.0),
        Some(_) => 0.0,
        None => cfg.budget_w,
    }
}

#[cfg(test)]
mod tests {
    use super::super::devices::DeviceKind;
    use super::super::usb_pd::standard_pdos_65w;
    use super::*;

    fn converter(name: &str, setpoint_v: f64, droop: f64) -> BatteryConverterConfig {
        BatteryConverterConfig {
            name: name.into(),
            setpoint_v,
            droop_v_per_a: droop,
            discharge_limit_a: 60.0,
            charge_limit_a: 40.0,
            efficiency: 0.97,
        }
    }

    fn circuit(name: &str, length_m: f64, mm2: f64, rating_a: f64) -> CircuitConfig {
        CircuitConfig {
            name: name.into(),
            length_m,
            cross_section_mm2: mm2,
            breaker: BreakerConfig::type_b(rating_a),
            led_drivers: vec![],
            resistive_loads: vec![],
            constant_current_loads: vec![],
            usb_sockets: vec![],
        }
    }

    fn bus(convs: Vec<BatteryConverterConfig>, circuits: Vec<CircuitConfig>) -> BusConfig {
        BusConfig {
            nominal_v: 48.0,
            capacitance_f: 0.01,
            initial_v: None,
            undervoltage_v: 42.0,
            overvoltage_v: 57.0,
            battery_converters: convs,
            pv_converter: None,
            charger: None,
            circuits,
            devices: vec![],
            inverter_port: None,
        }
    }

    fn check_balance(o: &BusOutputs) {
        let e = &o.energy;
        assert!(
            e.imbalance_j().abs() <= 1e-9 * e.scale_j().max(1e-3),
            "imbalance {} of {:?}",
            e.imbalance_j(),
            e
        );
    }

    #[test]
    fn droop_sharing_matches_analytic_split() {
        let mut c = circuit("heater", 10.0, 2.5, 16.0);
        c.resistive_loads.push(ResistiveLoadConfig {
            name: "r".into(),
            resistance_ohm: 4.0,
        });
        let mut b = DcBus::new(bus(
            vec![converter("a", 50.0, 0.05), converter("b", 50.5, 0.1)],
            vec![c.clone()],
        ))
        .unwrap();
        let inp = b.default_inputs();
        for _ in 0..100 {
            b.step(0.01, &inp);
        }
        let o = b.step(0.01, &inp);
        check_balance(o);
        let rl = 4.0 + c.loop_resistance_ohm();
        let v = (50.0 / 0.05 + 50.5 / 0.1) / (1.0 / 0.05 + 1.0 / 0.1 + 1.0 / rl);
        assert!((o.v_bus - v).abs() < 1e-9, "{} vs {v}", o.v_bus);
        let i1 = (50.0 - v) / 0.05;
        let i2 = (50.5 - v) / 0.1;
        assert!((o.battery[0].current_a - i1).abs() < 1e-7);
        assert!((o.battery[1].current_a - i2).abs() < 1e-7);
        // Battery side: more than the bus side when discharging.
        assert!((o.battery[0].battery_power_w - v * i1 / 0.97).abs() < 1e-6);
    }

    #[test]
    fn wiring_loss_is_i2r() {
        let mut c = circuit("hall", 25.0, 1.0, 10.0);
        c.led_drivers.push(LedDriverConfig {
            name: "l".into(),
            power_w: 150.0,
            min_input_v: 36.0,
            restart_v: None,
        });
        let r = c.loop_resistance_ohm();
        let mut b = DcBus::new(bus(vec![converter("a", 48.0, 0.02)], vec![c])).unwrap();
        let inp = b.default_inputs();
        for _ in 0..50 {
            b.step(0.01, &inp);
        }
        let o = b.step(0.01, &inp);
        let co = &o.circuits[0];
        assert!((co.wiring_loss_w - co.current_a.powi(2) * r).abs() < 1e-9);
        assert!((co.leds[0].power_w - 150.0).abs() < 1e-9);
        assert!((co.power_w - co.wiring_loss_w - 150.0).abs() < 1e-6);
        assert!((co.v_load * co.current_a - 150.0).abs() < 1e-6);
        assert!(co.v_load < o.v_bus - 2.0, "drop {}", o.v_bus - co.v_load);
        check_balance(o);
    }

    #[test]
    fn led_driver_drops_out_below_min_voltage_with_hysteresis() {
        let mut c = circuit("hall", 10.0, 1.5, 10.0);
        c.led_drivers.push(LedDriverConfig {
            name: "l".into(),
            power_w: 10.0,
            min_input_v: 36.0,
            restart_v: Some(38.0),
        });
        let mut b = DcBus::new(bus(vec![converter("a", 48.0, 0.02)], vec![c])).unwrap();
        let mut inp = b.default_inputs();
        let mut run = |b: &mut DcBus, sp: f64| {
            inp.battery[0].setpoint_v = sp;
            for _ in 0..20 {
                b.step(0.01, &inp);
            }
            b.outputs().circuits[0].clone()
        };
        assert!(run(&mut b, 48.0).leds[0].lit);
        let o = run(&mut b, 35.0);
        assert!(!o.leds[0].lit && o.leds[0].dropped_out && o.leds[0].power_w == 0.0);
        let o = run(&mut b, 37.0);
        assert!(!o.leds[0].lit, "still out inside the hysteresis band");
        let o = run(&mut b, 39.0);
        assert!(o.leds[0].lit && (o.leds[0].power_w - 10.0).abs() < 1e-9);
    }

    fn socket_bus() -> DcBus {
        let mut c = circuit("desk", 8.0, 1.5, 10.0);
        c.usb_sockets
            .push(UsbSocketConfig::new("desk-a", standard_pdos_65w(), 65.0));
        let mut cfg = bus(vec![converter("a", 48.0, 0.02)], vec![c]);
        cfg.devices.push(DeviceConfig {
            initial_soc: 0.3,
            ..DeviceConfig::preset(DeviceKind::Laptop, "laptop")
        });
        DcBus::new(cfg).unwrap()
    }

    #[test]
    fn plugged_laptop_negotiates_then_charges() {
        let mut b = socket_bus();
        let mut inp = b.default_inputs();
        let o = b.step(0.01, &inp);
        assert!(
            (o.sockets[0].input_power_w - 0.3).abs() < 1e-9,
            "idle loss only"
        );
        inp.sockets[0].device = Some(0);
        inp.devices[0].on = true;
        let o = b.step(0.01, &inp);
        assert!(matches!(o.sockets[0].state, PdState::Negotiating { .. }));
        assert!(o.sockets[0].output_power_w <= 7.5 + 1e-9);
        for _ in 0..30 {
            b.step(0.01, &inp);
        }
        let o = b.step(0.01, &inp).clone();
        let k = o.sockets[0].contract.expect("contract after 0.3 s");
        assert_eq!((k.voltage_v, k.max_current_a), (20.0, 3.25));
        // Use 18 W + charge 45 W = 63 W (< 65 W contract).
        assert!((o.sockets[0].output_power_w - 63.0).abs() < 1e-9);
        assert!((o.sockets[0].input_power_w - (0.3 + 63.0 / 0.94)).abs() < 1e-9);
        assert!(o.devices[0].charging && o.devices[0].battery_w > 0.0);
        check_balance(&o);
        // Budget cut: capped at once, new contract after re-negotiation.
        inp.sockets[0].budget_w = 30.0;
        let o = b.step(0.01, &inp);
        assert!(o.sockets[0].output_power_w <= 30.0 + 1e-9);
        for _ in 0..20 {
            b.step(0.01, &inp);
        }
        let k = b.outputs().sockets[0].contract.unwrap();
        assert!(k.max_power_w() <= 30.0 + 1e-9 && k.budget_w == 30.0);
        // Unplug: the laptop runs from its battery.
        inp.sockets[0].device = None;
        let soc = b.device(0).soc();
        let o = b.step(1.0, &inp);
        assert_eq!(o.sockets[0].output_power_w, 0.0);
        assert!(o.devices[0].battery_w < 0.0 && b.device(0).soc() < soc);
        assert!(b.outputs().sockets[0].max_input_power_w > 60.0);
    }

    fn fault_bus() -> DcBus {
        let mut c = circuit("kitchen", 15.0, 1.5, 10.0);
        c.led_drivers.push(LedDriverConfig {
            name: "l".into(),
            power_w: 60.0,
            min_input_v: 36.0,
            restart_v: None,
        });
        let other = {
            let mut o = circuit("lounge", 12.0, 1.5, 6.0);
            o.led_drivers.push(LedDriverConfig {
                name: "l".into(),
                power_w: 40.0,
                min_input_v: 30.0,
                restart_v: None,
            });
            o
        };
        DcBus::new(bus(
            vec![converter("a", 50.0, 0.02), converter("b", 50.0, 0.02)],
            vec![c, other],
        ))
        .unwrap()
    }

    #[test]
    fn short_circuit_trips_instantly_and_sags_the_bus() {
        for dt in [1e-4, 0.01, 1.0] {
            let mut b = fault_bus();
            let mut inp = b.default_inputs();
            for _ in 0..3 {
                b.step(dt, &inp);
            }
            let v_before = b.v_bus();
            inp.circuits[0].fault_ohm = Some(0.01);
            let mut t = 0.0;
            let mut sag: f64 = f64::INFINITY;
            let mut peak: f64 = 0.0;
            let mut fault_j = 0.0;
            while b.breaker(0).is_closed() && t < 1.0 {
                let o = b.step(dt, &inp);
                t += dt;
                sag = sag.min(o.v_bus_min);
                peak = peak.max(o.circuits[0].peak_current_a);
                fault_j += o.circuits[0].fault_energy_j;
                check_balance(o);
            }
            assert_eq!(b.breaker(0).tripped(), Some(TripCause::Magnetic), "dt {dt}");
            assert!(t <= 0.005 + dt + 1e-9, "tripped after {t} at dt {dt}");
            assert!(peak > 50.0, "fault current {peak}");
            assert!(
                sag < v_before - 3.0,
                "bus sagged only to {sag} from {v_before} at dt {dt}"
            );
            // Fault energy only for ~5 ms whatever the step.
            assert!(
                fault_j < 0.005 * peak * peak * 0.01 * 1.5 + 1e-9,
                "{fault_j}"
            );
            // The other circuit survives; the bus recovers.
            for _ in 0..((0.2 / dt) as usize).max(3) {
                b.step(dt, &inp);
            }
            let o = b.outputs();
            assert!(o.circuits[1].breaker_tripped.is_none());
            assert!(o.v_bus > 48.0 && !o.undervoltage);
            // Reset with the fault still there: trips again; cleared: holds.
            inp.circuits[0].reset_breaker = true;
            b.step(dt, &inp);
            inp.circuits[0].reset_breaker = false;
            for _ in 0..((0.01 / dt) as usize).max(3) {
                b.step(dt, &inp);
            }
            assert!(b.breaker(0).tripped().is_some());
            inp.circuits[0].fault_ohm = None;
            b.reset_breaker(0);
            for _ in 0..((0.1 / dt) as usize).max(3) {
                b.step(dt, &inp);
            }
            assert!(b.breaker(0).is_closed());
            assert!(b.outputs().circuits[0].leds[0].lit);
        }
    }

    #[test]
    fn overload_trips_in_the_thermal_band_whatever_the_step() {
        let mut times = vec![];
        for dt in [0.01, 0.1, 1.0] {
            let mut c = circuit("garage", 5.0, 2.5, 6.0);
            // ~2.55 I_n = 15.3 A at ~48 V.
            c.resistive_loads.push(ResistiveLoadConfig {
                name: "r".into(),
                resistance_ohm: 48.5 / 15.3,
            });
            let mut b = DcBus::new(bus(vec![converter("a", 49.0, 0.02)], vec![c])).unwrap();
            let inp = b.default_inputs();
            let mut t = 0.0;
            while b.breaker(0).is_closed() && t < 120.0 {
                b.step(dt, &inp);
                t += dt;
            }
            assert_eq!(b.breaker(0).tripped(), Some(TripCause::Thermal));
            assert!((1.0..60.0).contains(&t), "{t}");
            times.push(t);
        }
        // Trip instant inside the step is exact: step ends differ by < dt.
        assert!((times[0] - times[2]).abs() <= 1.0 + 1e-9, "{times:?}");
    }

    #[test]
    fn rated_current_never_trips() {
        let mut c = circuit("garage", 5.0, 2.5, 6.0);
        c.constant_current_loads.push(ConstantCurrentLoadConfig {
            name: "cc".into(),
            current_a: 6.0,
            min_input_v: 20.0,
        });
        let mut b = DcBus::new(bus(vec![converter("a", 48.0, 0.02)], vec![c])).unwrap();
        let inp = b.default_inputs();
        for _ in 0..3600 {
            b.step(1.0, &inp);
        }
        assert!(b.breaker(0).is_closed());
        assert!((b.outputs().circuits[0].current_a - 6.0).abs() < 1e-9);
    }

    #[test]
    fn pv_is_curtailed_when_nothing_absorbs_it() {
        let mut cfg = bus(vec![converter("a", 50.0, 0.05)], vec![]);
        cfg.pv_converter = Some(PvConverterConfig {
            name: "pv".into(),
            setpoint_v: 52.0,
            droop_v_per_a: 0.01,
            efficiency: 0.97,
            rated_power_w: 3000.0,
        });
        let mut b = DcBus::new(cfg).unwrap();
        let mut inp = b.default_inputs();
        inp.pv.available_w = 2000.0;
        // Battery absorbs up to its 40 A charge limit: 40 A · ~52 V.
        for _ in 0..100 {
            b.step(0.01, &inp);
        }
        let o = b.step(0.01, &inp).clone();
        check_balance(&o);
        assert!(o.battery[0].current_a < 0.0 && o.battery[0].battery_power_w < 0.0);
        assert!(o.pv.curtailed_w < 1e-6, "{:?}", o.pv);
        // Battery full: disable it; PV backs off at its setpoint.
        inp.battery[0].enabled = false;
        for _ in 0..100 {
            b.step(0.01, &inp);
        }
        let o = b.step(0.01, &inp);
        assert!(
            o.v_bus <= 52.0 + 0.01 * 1940.0 / 52.0 + 1e-9 && o.v_bus > 52.0,
            "{}",
            o.v_bus
        );
        assert!(o.pv.bus_power_w.abs() < 1e-6);
        assert!((o.pv.curtailed_w - 2000.0).abs() < 1e-6);
    }

    #[test]
    fn charger_only_with_mains() {
        let mut cfg = bus(vec![], vec![]);
        let mut c = circuit("hall", 10.0, 1.5, 10.0);
        c.resistive_loads.push(ResistiveLoadConfig {
            name: "r".into(),
            resistance_ohm: 10.0,
        });
        cfg.circuits.push(c);
        cfg.charger = Some(ChargerConfig {
            name: "chg".into(),
            setpoint_v: 50.0,
            droop_v_per_a: 0.1,
            current_limit_a: 20.0,
            efficiency: 0.93,
        });
        let mut b = DcBus::new(cfg).unwrap();
        let mut inp = b.default_inputs();
        for _ in 0..100 {
            b.step(0.01, &inp);
        }
        assert!(b.outputs().charger.bus_power_w > 200.0);
        inp.charger.mains_present = false;
        for _ in 0..100 {
            b.step(0.01, &inp);
        }
        let o = b.outputs();
        assert_eq!(o.charger.bus_power_w, 0.0);
        assert!(
            o.undervoltage && o.v_bus < 1.0,
            "bus collapses: {}",
            o.v_bus
        );
    }

    #[test]
    fn validate_names_offenders() {
        let mut cfg = bus(
            vec![converter("a", 48.0, 0.02)],
            vec![circuit("hall", 10.0, 1.5, 10.0)],
        );
        cfg.circuits[0].cross_section_mm2 = 0.0;
        let e = DcBus::new(cfg.clone()).unwrap_err();
        assert!(e.contains("hall") && e.contains("cross_section_mm2"), "{e}");
        cfg.circuits[0].cross_section_mm2 = 1.5;
        cfg.circuits.push(circuit("hall", 5.0, 1.5, 6.0));
        let e = DcBus::new(cfg).unwrap_err();
        assert!(e.contains("\"hall\" is defined twice"), "{e}");
    }

    #[test]
    fn overloaded_constant_power_circuit_collapses_and_drops_out() {
        // 30 m of 1.0 mm²: R = 1.03 Ω, at most V²/4R ≈ 600 W can reach the
        // far end; 900 W of wide-input LED drivers cannot be served.
        let mut c = circuit("attic", 30.0, 1.0, 32.0);
        c.breaker.magnetic_trip_multiple = 10.0;
        for k in 0..3 {
            c.led_drivers.push(LedDriverConfig {
                name: format!("l{k}"),
                power_w: 300.0,
                min_input_v: 18.0,
                restart_v: Some(30.0),
            });
        }
        let mut b = DcBus::new(bus(vec![converter("a", 50.0, 0.02)], vec![c])).unwrap();
        let inp = b.default_inputs();
        let mut lit_steps = 0;
        let mut dark_steps = 0;
        for _ in 0..200 {
            let o = b.step(0.01, &inp);
            check_balance(o);
            assert!(o.v_bus.is_finite() && o.v_bus > 40.0);
            let co = &o.circuits[0];
            assert!(co.load_power_w <= 600.0 + 1e-6, "{}", co.load_power_w);
            if co.leds.iter().any(|l| l.lit) {
                lit_steps += 1;
            } else {
                dark_steps += 1;
            }
        }
        // Hiccup: drivers restart, collapse the far end, drop out again.
        assert!(lit_steps > 0 && dark_steps > 0, "{lit_steps} {dark_steps}");
    }

    fn port_bus(setpoint_v: f64, droop: f64, port: Option<InverterPortConfig>) -> DcBus {
        let mut cfg = bus(vec![converter("a", setpoint_v, droop)], vec![]);
        cfg.inverter_port = port;
        DcBus::new(cfg).unwrap()
    }

    /// The balance at the property test's tolerance (with its absolute
    /// floor of 1e-9 J/s: an unloaded bus leaves ~1e-12 J of rounding).
    fn check_balance_dt(o: &BusOutputs, dt: f64) {
        let e = &o.energy;
        assert!(
            e.imbalance_j().abs() <= 1e-9 * e.scale_j() + 1e-9 * dt,
            "imbalance {} of {:?}",
            e.imbalance_j(),
            e
        );
    }

    fn settle(b: &mut DcBus, inp: &BusInputs, n: usize) -> BusOutputs {
        for _ in 0..n {
            check_balance_dt(b.step(0.01, inp), 0.01);
        }
        b.outputs().clone()
    }

    #[test]
    fn inverter_port_draws_its_demand_at_the_droop_voltage() {
        let mut b = port_bus(50.0, 0.02, Some(InverterPortConfig::default()));
        let mut inp = b.default_inputs();
        inp.inverter_port.demand_w = 1000.0;
        let o = settle(&mut b, &inp, 200);
        let p = o.inverter_port;
        assert!((p.power_w - 1000.0).abs() < 1e-9, "{p:?}");
        assert!((p.energy_j - 10.0).abs() < 1e-9 && p.unserved_w < 1e-9);
        assert!(!p.locked_out);
        assert!((p.total_energy_j - 2000.0).abs() < 1e-3, "{p:?}");
        // V = Vset − droop·P/V: the upper root of V² − Vset·V + droop·P = 0.
        let v = 0.5 * (50.0 + (50.0f64 * 50.0 - 4.0 * 0.02 * 1000.0).sqrt());
        assert!((o.v_bus - v).abs() < 1e-9, "{} vs {v}", o.v_bus);
        assert!((o.battery[0].current_a - 1000.0 / v).abs() < 1e-7);
        assert!((o.energy.load_j - 10.0).abs() < 1e-9, "{:?}", o.energy);
    }

    #[test]
    fn inverter_port_is_zero_without_demand_or_port() {
        let mut b = port_bus(50.0, 0.02, None);
        let mut inp = b.default_inputs();
        inp.inverter_port.demand_w = 500.0;
        let o = settle(&mut b, &inp, 20);
        assert_eq!(o.inverter_port, InverterPortOutput::default());
        assert!((o.v_bus - 50.0).abs() < 1e-9);
        let mut b = port_bus(50.0, 0.02, Some(InverterPortConfig::default()));
        for d in [0.0, -100.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            inp.inverter_port.demand_w = d;
            let o = settle(&mut b, &inp, 20);
            let p = o.inverter_port;
            assert!(
                p.power_w == 0.0 && p.unserved_w == 0.0 && p.energy_j == 0.0,
                "{d}: {p:?}"
            );
            assert!(!p.locked_out);
        }
        assert_eq!(b.outputs().inverter_port.total_energy_j, 0.0);
    }

    #[test]
    fn inverter_port_power_limit() {
        let port = InverterPortConfig {
            max_power_w: Some(1500.0),
            ..InverterPortConfig::default()
        };
        let mut b = port_bus(50.0, 0.02, Some(port));
        let mut inp = b.default_inputs();
        inp.inverter_port.demand_w = 2000.0;
        let p = settle(&mut b, &inp, 100).inverter_port;
        assert!((p.power_w - 1500.0).abs() < 1e-9 && (p.unserved_w - 500.0).abs() < 1e-9);
    }

    #[test]
    fn inverter_port_locks_out_below_min_and_restarts_above_restart() {
        let mut b = port_bus(50.0, 0.02, Some(InverterPortConfig::default()));
        let mut inp = b.default_inputs();
        inp.inverter_port.demand_w = 500.0;
        let mut run = |b: &mut DcBus, sp: f64| {
            inp.battery[0].setpoint_v = sp;
            settle(b, &inp, 50).inverter_port
        };
        assert!((run(&mut b, 48.0).power_w - 500.0).abs() < 1e-9);
        let p = run(&mut b, 39.0);
        assert!(
            p.locked_out && p.power_w == 0.0 && p.unserved_w == 500.0,
            "{p:?}"
        );
        let p = run(&mut b, 41.0);
        assert!(
            p.locked_out && p.power_w == 0.0,
            "inside the hysteresis band: {p:?}"
        );
        let p = run(&mut b, 42.5);
        assert!(!p.locked_out && (p.power_w - 500.0).abs() < 1e-9, "{p:?}");
        // A configured restart voltage.
        let port = InverterPortConfig {
            min_input_v: 44.0,
            restart_v: Some(47.0),
            max_power_w: None,
        };
        let mut b = port_bus(43.0, 0.02, Some(port));
        let mut inp = b.default_inputs();
        inp.inverter_port.demand_w = 300.0;
        assert!(settle(&mut b, &inp, 50).inverter_port.locked_out);
        inp.battery[0].setpoint_v = 46.0;
        assert!(settle(&mut b, &inp, 50).inverter_port.locked_out);
        inp.battery[0].setpoint_v = 48.0;
        assert!(!settle(&mut b, &inp, 50).inverter_port.locked_out);
    }

    #[test]
    fn inverter_port_beyond_the_source_collapses_and_locks_out() {
        // Vset² < 4·droop·P: no constant-power operating point exists.
        for dt in [1e-3, 0.01, 1.0] {
            let mut b = port_bus(50.0, 0.5, Some(InverterPortConfig::default()));
            let mut inp = b.default_inputs();
            inp.inverter_port.demand_w = 2000.0;
            let (mut on, mut off) = (0, 0);
            for _ in 0..((2.0 / dt) as usize).max(20) {
                let o = b.step(dt, &inp);
                check_balance_dt(o, dt);
                assert!(o.v_bus.is_finite() && o.v_bus >= 0.0 && o.v_bus <= 50.0 + 1e-9);
                let p = o.inverter_port;
                assert!(p.power_w <= 2000.0 + 1e-9 && p.unserved_w >= 0.0);
                if p.locked_out {
                    off += 1;
                } else {
                    on += 1;
                }
            }
            assert!(off > 0, "never locked out at dt {dt} ({on} on)");
        }
    }

    #[test]
    fn inverter_port_validation_names_the_field() {
        let mut cfg = bus(vec![converter("a", 48.0, 0.02)], vec![]);
        for bad in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            cfg.inverter_port = Some(InverterPortConfig {
                max_power_w: Some(bad),
                ..InverterPortConfig::default()
            });
            let e = DcBus::new(cfg.clone()).unwrap_err();
            assert!(
                e.contains("inverter_port") && e.contains("max_power_w"),
                "{e}"
            );
        }
        cfg.inverter_port = Some(InverterPortConfig {
            restart_v: Some(39.0),
            ..InverterPortConfig::default()
        });
        let e = DcBus::new(cfg.clone()).unwrap_err();
        assert!(e.contains("restart_v"), "{e}");
        cfg.inverter_port = Some(InverterPortConfig {
            min_input_v: 0.0,
            ..InverterPortConfig::default()
        });
        let e = DcBus::new(cfg).unwrap_err();
        assert!(e.contains("min_input_v"), "{e}");
    }

    #[test]
    fn same_steady_state_at_any_step_and_no_ringing() {
        let mut c = circuit("hall", 20.0, 1.5, 10.0);
        c.led_drivers.push(LedDriverConfig {
            name: "l".into(),
            power_w: 200.0,
            min_input_v: 36.0,
            restart_v: None,
        });
        let mut finals = vec![];
        for dt in [1e-4, 1e-3, 1e-2, 0.1, 1.0] {
            let mut b = DcBus::new(bus(
                vec![converter("a", 50.0, 0.05), converter("b", 49.0, 0.02)],
                vec![c.clone()],
            ))
            .unwrap();
            let inp = b.default_inputs();
            let n = ((2.0 / dt) as usize).max(6);
            let mut prev = b.v_bus();
            let mut dir_changes = 0;
            let mut last_dir = 0.0;
            for _ in 0..n {
                let v = b.step(dt, &inp).v_bus;
                let d = v - prev;
                if d.abs() > 1e-9 {
                    if last_dir != 0.0 && d.signum() != last_dir {
                        dir_changes += 1;
                    }
                    last_dir = d.signum();
                }
                prev = v;
                assert!((40.0..=50.0).contains(&v), "{v} at dt {dt}");
            }
            assert!(dir_changes <= 2, "ringing at dt {dt}: {dir_changes}");
            finals.push(b.v_bus());
        }
        for v in &finals {
            assert!((v - finals[0]).abs() < 1e-9, "{finals:?}");
        }
    }
}
