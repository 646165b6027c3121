//! The in-process closed loop: the production firmware core drives the twin
//! household in lockstep virtual time.
//!
//! Steps measure, they do not peek: the controller's inputs are built from
//! the house's published signals (what a virtual probe reads), never from
//! the models' fields, and its commands reach the house only through
//! [`PlantCommands`] (what the CAN command frames will carry from issue 4).
//!
//! Timing: the house steps at its electrical step; after each step the
//! measurements are handed to the controller at that instant, then the
//! controller runs every wake-up it asks for (`poll_timeout`, 100 ms for
//! protection) until the next house step, and its latest plant command is
//! applied before that step.

use firmware::cluster::{SignatureCheck, StrictCheck};
use firmware::controller::{
    CircuitMeasurement, Controller, ControllerConfig, Input, MeterMeasurement, Output,
    PackMeasurement, PlantCommand,
};
use firmware::selective::SocketInput;
use firmware::{LocalTime, Millis};
use twin::engine::{Engine, EngineError, SignalId, SignalRegistry};
use twin::house::{signal_slug, House, HouseConfig, HouseEvent, PlantCommands};
use twin::time::SimTime;

/// Charger setpoint the controller's "boost" maps to (above the battery
/// converter's droop setpoint, so the battery charges from mains).
pub const CHARGER_BOOST_SETPOINT_V: f64 = 51.5;

/// Problems wiring a controller to a house.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("house: {0}")]
    House(String),
    #[error("controller config: {0}")]
    Controller(Box<firmware::ConfigError>),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(
        "the controller drives {controller} {what} but the house has {house}: make [assembly] match the house's [bus]"
    )]
    Mismatch {
        what: &'static str,
        controller: usize,
        house: usize,
    },
}

/// Signal ids the loop reads, looked up once.
struct Probes {
    pack_voltage: SignalId,
    pack_current: SignalId,
    cell_min: SignalId,
    cell_max: SignalId,
    temp_max: SignalId,
    bus_voltage: SignalId,
    /// The PV converter's MPP power (what it could deliver), as an MPPT
    /// converter reports it; what it delivers may be less (curtailed).
    pv_power: SignalId,
    charger_ac: SignalId,
    inverter_ac: SignalId,
    grid_import: SignalId,
    grid_export: SignalId,
    import_kwh: SignalId,
    export_kwh: SignalId,
    tariff: SignalId,
    mains: SignalId,
    circuits: Vec<SignalId>,
    sockets: Vec<SignalId>,
    sockets_plugged: Vec<SignalId>,
}

impl Probes {
    fn new(s: &SignalRegistry, cfg: &HouseConfig) -> Result<Self, EngineError> {
        let circuits = cfg
            .bus
            .circuits
            .iter()
            .map(|c| s.require(&format!("circuit_{}_power_w", signal_slug(&c.name))))
            .collect::<Result<_, EngineError>>()?;
        let sockets = cfg
            .bus
            .circuits
            .iter()
            .flat_map(|c| c.usb_sockets.iter())
            .map(|k| s.require(&format!("socket_{}_power_w", signal_slug(&k.name))))
            .collect::<Result<_, EngineError>>()?;
        let sockets_plugged = cfg
            .bus
            .circuits
            .iter()
            .flat_map(|c| c.usb_sockets.iter())
            .map(|k| s.require(&format!("socket_{}_plugged", signal_slug(&k.name))))
            .collect::<Result<_, EngineError>>()?;
        Ok(Probes {
            pack_voltage: s.require("pack_voltage_v")?,
            pack_current: s.require("pack_current_a")?,
            cell_min: s.require("cell_voltage_min_v")?,
            cell_max: s.require("cell_voltage_max_v")?,
            temp_max: s.require("pack_temperature_max_c")?,
            bus_voltage: s.require("bus_voltage_v")?,
            pv_power: s.require("pv_available_w")?,
            charger_ac: s.require("charger_ac_power_w")?,
            inverter_ac: s.require("inverter_ac_power_w")?,
            grid_import: s.require("grid_import_w")?,
            grid_export: s.require("grid_export_w")?,
            import_kwh: s.require("grid_import_kwh")?,
            export_kwh: s.require("grid_export_kwh")?,
            tariff: s.require("tariff")?,
            mains: s.require("mains_present")?,
            circuits,
            sockets,
            sockets_plugged,
        })
    }
}

/// A house and its controller in lockstep.
pub struct ClosedLoop {
    pub house: House,
    pub engine: Engine<HouseEvent>,
    pub controller: Controller,
    probes: Probes,
    calendar: twin::time::Calendar,
    standby_setpoint_v: Option<f64>,
    /// Outputs other than plant commands, oldest first (acks, verdicts,
    /// reports, telemetry), for reports and tests.
    pub events: Vec<Output>,
    /// Plant commands applied so far.
    pub commands_applied: u64,
    /// How the controller's wake-ups are run between house steps.
    pub wake: WakePolicy,
    /// Whether the controller has had its measurements (and clock) yet.
    measured: bool,
}

/// How [`ClosedLoop`] runs the controller's wake-ups between house steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WakePolicy {
    /// Every wake-up the controller asks for (`poll_timeout`, 100 ms for
    /// protection) until the next house step: what a board does.
    #[default]
    EveryTimeout,
    /// One wake-up per house step, right after its measurements (fleet
    /// runs with a coarse plant step: the measurements do not change
    /// between steps, so the skipped wake-ups would repeat the same work).
    /// The controller's deadlines, control period and watchdog must allow
    /// the step (`rigs::fleet::site` sets them).
    OncePerStep,
}

impl ClosedLoop {
    pub fn new(
        house_cfg: HouseConfig,
        controller_cfg: ControllerConfig,
    ) -> Result<Self, LoopError> {
        let calendar = house_cfg.calendar;
        let standby_setpoint_v = standby_setpoint_v(&house_cfg);
        let n_circuits = house_cfg.bus.circuits.len();
        let n_sockets: usize = house_cfg
            .bus
            .circuits
            .iter()
            .map(|c| c.usb_sockets.len())
            .sum();
        if usize::from(controller_cfg.assembly.circuits) != n_circuits {
            return Err(LoopError::Mismatch {
                what: "circuits",
                controller: controller_cfg.assembly.circuits.into(),
                house: n_circuits,
            });
        }
        if usize::from(controller_cfg.assembly.sockets) != n_sockets {
            return Err(LoopError::Mismatch {
                what: "sockets",
                controller: controller_cfg.assembly.sockets.into(),
                house: n_sockets,
            });
        }
        let probes_cfg = house_cfg.clone();
        let events = house_cfg.scheduled_events();
        let mut house = House::new(house_cfg).map_err(|e| LoopError::House(e.to_string()))?;
        let mut engine = Engine::new(&mut house)?;
        for (at, e) in events {
            engine.schedule(at, e);
        }
        let probes = Probes::new(engine.signals(), &probes_cfg)?;
        let controller = Controller::new(controller_cfg, Millis(0))
            .map_err(|e| LoopError::Controller(Box::new(e)))?;
        Ok(ClosedLoop {
            house,
            engine,
            controller,
            probes,
            calendar,
            standby_setpoint_v,
            events: Vec::new(),
            commands_applied: 0,
            measured: false,
            wake: WakePolicy::default(),
        })
    }

    fn now_ms(&self) -> Millis {
        Millis(self.engine.now().as_micros() / 1000)
    }

    /// Hands the house's current signals to the controller.
    fn measure(&mut self) {
        self.measured = true;
        let now = self.now_ms();
        let s = self.engine.signals();
        let p = &self.probes;
        let g = |id| s.get(id) as f32;
        let sim_now = self.engine.now();
        let hour = self.calendar.local_hour(sim_now);
        let local = LocalTime {
            seconds_of_day: (hour * 3600.0).floor().clamp(0.0, 86_399.0) as u32,
            weekday: self.calendar.local_weekday(sim_now) as u8,
        };
        let utc_s = self.calendar.unix_s(sim_now).max(0.0) as u64;
        let pack = Input::Pack(PackMeasurement {
            pack_voltage_v: g(p.pack_voltage),
            pack_current_a: g(p.pack_current),
            cell_voltage_min_v: g(p.cell_min),
            cell_voltage_max_v: g(p.cell_max),
            cell_temperature_min_c: g(p.temp_max),
            cell_temperature_max_c: g(p.temp_max),
        });
        let bus_v = g(p.bus_voltage);
        let mut circuits = heapless::Vec::new();
        for power in &p.circuits {
            let w = g(*power);
            let _ = circuits.push(CircuitMeasurement {
                power_w: w,
                // Current at the breaker: power over the bus voltage.
                current_a: if bus_v > 1.0 { w / bus_v } else { 0.0 },
            });
        }
        let mut sockets = heapless::Vec::new();
        for (id, plugged) in p.sockets.iter().zip(&p.sockets_plugged) {
            let w = g(*id);
            let _ = sockets.push(SocketInput {
                plugged: g(*plugged) > 0.5,
                contract: None,
                sink_max_w: None,
                device_id: None,
                battery_soc: None,
                power_w: w,
                wake: false,
            });
        }
        let meter = Input::Meter(MeterMeasurement {
            grid_power_w: g(p.grid_import) - g(p.grid_export),
            tariff: s.get(p.tariff).clamp(0.0, 9.0) as u8,
            mains_present: s.get(p.mains) > 0.5,
            import_wh: s.get(p.import_kwh) * 1000.0,
            export_wh: s.get(p.export_kwh) * 1000.0,
        });
        let inputs = [
            Input::Clock { utc_s, local },
            pack,
            Input::Bus {
                bus_voltage_v: bus_v,
            },
            Input::Circuits(circuits),
            Input::Sockets(sockets),
            Input::Pv {
                power_w: g(p.pv_power),
            },
            Input::Charger {
                ac_power_w: g(p.charger_ac),
            },
            Input::Inverter {
                ac_power_w: g(p.inverter_ac),
            },
            meter,
        ];
        for input in inputs {
            self.controller.handle(now, input);
        }
    }

    /// Drains the controller's outputs; applies the latest plant command.
    fn actuate(&mut self) {
        let mut latest: Option<PlantCommand> = None;
        while let Some(o) = self.controller.poll_output() {
            match o {
                Output::Plant(c) => latest = Some(c),
                other => self.events.push(other),
            }
        }
        if let Some(c) = latest {
            self.house
                .command(Some(plant_commands(&c, self.standby_setpoint_v)));
            self.commands_applied += 1;
        }
    }

    /// Runs the controller's wake-ups from now until the next house step.
    fn wake_until_next_step(&mut self) {
        let now = self.now_ms();
        if self.wake == WakePolicy::OncePerStep {
            self.controller.handle(now, Input::Tick);
            return;
        }
        let next_step_ms = (self.engine.now().as_micros() + self.engine.base_period_us()) / 1000;
        while let Some(t) = self.controller.poll_timeout() {
            if t.0 >= next_step_ms {
                break;
            }
            // Each tick moves the controller's wake-up past `t`.
            self.controller.handle(t.max(now), Input::Tick);
        }
    }

    /// Delivers a signed dispatch message to the controller now.
    pub fn dispatch(&mut self, bytes: &[u8]) {
        self.dispatch_with(bytes, &mut StrictCheck);
    }

    /// [`ClosedLoop::dispatch`] with the signature checked by `signatures`.
    pub fn dispatch_with(&mut self, bytes: &[u8], signatures: &mut dyn SignatureCheck) {
        self.measure_if_never();
        let now = self.now_ms();
        self.controller
            .handle_with(now, Input::Dispatch(bytes), signatures);
        self.actuate();
    }

    /// Delivers a signed configuration message to the controller now.
    pub fn configure(&mut self, bytes: &[u8]) {
        self.configure_with(bytes, &mut StrictCheck);
    }

    /// [`ClosedLoop::configure`] with the signature checked by `signatures`.
    pub fn configure_with(&mut self, bytes: &[u8], signatures: &mut dyn SignatureCheck) {
        self.measure_if_never();
        let now = self.now_ms();
        self.controller
            .handle_with(now, Input::Config(bytes), signatures);
        self.actuate();
    }

    /// A board has its clock and measurements before it takes a message: a
    /// message delivered before the first step (a fleet's minute 0) finds
    /// the controller measured at the current time, not at UTC 0 (where
    /// every signed message would read as not yet valid).
    fn measure_if_never(&mut self) {
        if !self.measured {
            self.measure();
        }
    }

    /// The controller's clock now (the house's virtual time), ms.
    pub fn now(&self) -> Millis {
        self.now_ms()
    }

    /// One house step, then the controller's measurements, wake-ups and
    /// command for the next step.
    pub fn step(&mut self) {
        if self.commands_applied == 0 {
            self.measure();
            self.wake_until_next_step();
            self.actuate();
        }
        self.engine.tick(&mut self.house);
        self.measure();
        self.wake_until_next_step();
        self.actuate();
    }

    /// Runs until `end` in virtual time. `after_step` sees the signals after
    /// every house step.
    pub fn run_until(
        &mut self,
        end: SimTime,
        mut after_step: impl FnMut(SimTime, &SignalRegistry),
    ) {
        while self.engine.now() < end {
            self.step();
            after_step(self.engine.now(), self.engine.signals());
        }
    }
}

/// How far below the charger's setpoint a battery converter in standby
/// regulates the bus, V: far enough that the charger carries the DC loads
/// while mains is there, near enough that the bus stays well above the
/// protection's under-voltage threshold when it is not.
pub const STANDBY_BELOW_CHARGER_V: f64 = 1.0;

/// The battery converter's setpoint in standby for this house (`None`
/// without a charger: the converter then keeps its own setpoint).
pub fn standby_setpoint_v(cfg: &HouseConfig) -> Option<f64> {
    cfg.bus
        .charger
        .as_ref()
        .map(|c| c.setpoint_v - STANDBY_BELOW_CHARGER_V)
}

/// What the house is told for a controller's plant command;
/// `standby_setpoint_v` from [`standby_setpoint_v`].
pub fn plant_commands(c: &PlantCommand, standby_setpoint_v: Option<f64>) -> PlantCommands {
    PlantCommands {
        battery_enabled: c.battery.enabled,
        battery_discharge_limit_w: f64::from(c.battery.discharge_limit_w),
        battery_charge_limit_w: f64::from(c.battery.charge_limit_w),
        battery_setpoint_v: if c.battery.standby {
            standby_setpoint_v
        } else {
            None
        },
        charger_enabled: c.charger.enabled,
        charger_setpoint_v: c.charger.boost.then_some(CHARGER_BOOST_SETPOINT_V),
        inverter_enabled: c.inverter.enabled,
        inverter_request_ac_w: f64::from(c.inverter.request_ac_w),
        pv_cap_w: c.pv.cap_w.map(f64::from),
        circuits_on: Some(c.circuits.iter().map(|s| s.on).collect()),
        sockets_on: Some(c.sockets.iter().map(|s| s.on).collect()),
    }
}
