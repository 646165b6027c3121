//! The direct controller end: the production firmware core in this process,
//! no frames. The house's [`Measurements`] (through its [`PlantPort`])
//! become the controller's inputs; its [`PlantCommand`]s become
//! [`AssemblyCommand`]s, which the port turns into the house's commands.
//! What `maslow twin house --controller` and every fleet household run.
//!
//! Timing: the house steps at its electrical step; after each step the
//! measurements are handed to the controller at that instant, then the
//! controller runs the wake-ups the [`WakePolicy`] allows until the next
//! house step, and its latest plant command is applied before that step.
//!
//! May use: the plant port, the firmware's controller, the saboteur. Must
//! not use:
//! frames, transports, the wall clock.

use firmware::cluster::{SignatureCheck, StrictCheck};
use firmware::controller::{
    CircuitMeasurement, Controller, ControllerConfig, Input, MeterMeasurement, Output,
    PackMeasurement, PlantCommand,
};
use firmware::selective::SocketInput;
use firmware::{LocalTime, Millis};
use twin::time::Calendar;

use crate::plant_port::{breaker_current_a, AssemblyCommand, Measurements, PlantPort};
use crate::rig::config::TimeMode;
pub use crate::rig::error::DirectError;
use crate::rig::error::RigError;
use crate::rig::plant::{HousePlant, Recording};
use crate::rig::run::{ControllerSide, Session};
use crate::sabotage::{Moment, Sabotage};
use twin::house::HouseConfig;

/// How the direct end runs the controller's wake-ups between house steps.
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

/// A session of the house of `house` driven directly by the controller of
/// `controller`, waking as `wake` says, recording what `recording` asks
/// for, in `time` mode.
pub fn session(
    house: HouseConfig,
    controller: ControllerConfig,
    wake: WakePolicy,
    recording: Recording,
    time: TimeMode,
) -> Result<Session<DirectEnd>, RigError> {
    let plant = HousePlant::new(house, recording)?;
    let mut end = DirectEnd::new(&plant, controller)?;
    end.wake = wake;
    Ok(Session::new(plant, end, time))
}

/// The firmware core driving a house in lockstep, without frames.
pub struct DirectEnd {
    pub controller: Controller,
    port: PlantPort,
    calendar: Calendar,
    /// Outputs other than plant commands, oldest first (acks, verdicts,
    /// reports, telemetry), for reports and tests.
    pub events: Vec<Output>,
    /// Plant commands applied so far.
    pub commands_applied: u64,
    /// How the controller's wake-ups are run between house steps.
    pub wake: WakePolicy,
    /// Whether the controller has had its measurements (and clock) yet.
    measured: bool,
    /// Powered down (a fleet household's dropout): the house runs on alone.
    powered_down: bool,
    /// A saboteur between the controller and the house, if any: with one,
    /// the last command is rewritten and applied at every step.
    pub sabotage: Option<Sabotage>,
    last_command: Option<AssemblyCommand>,
}

impl DirectEnd {
    /// The controller of `controller_cfg` for `plant`'s house. Fails if the
    /// controller's circuits or sockets do not match the house's.
    pub fn new(plant: &HousePlant, controller_cfg: ControllerConfig) -> Result<Self, DirectError> {
        let port = PlantPort::new(&plant.config, plant.signals())?;
        for (what, controller, house) in [
            (
                "circuits",
                controller_cfg.assembly.circuits,
                port.circuits(),
            ),
            ("sockets", controller_cfg.assembly.sockets, port.sockets()),
        ] {
            if usize::from(controller) != house {
                return Err(DirectError::Mismatch {
                    what,
                    controller: controller.into(),
                    house,
                });
            }
        }
        let controller = Controller::new(controller_cfg, Millis(0))
            .map_err(|e| DirectError::Controller(Box::new(e)))?;
        Ok(DirectEnd {
            controller,
            port,
            calendar: plant.config.calendar,
            events: Vec::new(),
            commands_applied: 0,
            wake: WakePolicy::default(),
            measured: false,
            powered_down: false,
            sabotage: None,
            last_command: None,
        })
    }

    /// The house's port.
    pub fn port(&self) -> &PlantPort {
        &self.port
    }

    /// Powers the controller down for good: from now on the house runs
    /// without it on `commands` (a fleet household's dropout).
    pub fn power_down(&mut self, plant: &mut HousePlant) {
        self.powered_down = true;
        plant.command(Some(self.port.no_assembly()));
    }

    /// Whether the controller still runs.
    pub fn is_powered(&self) -> bool {
        !self.powered_down
    }

    /// Hands the house's current measurements to the controller.
    fn measure(&mut self, plant: &mut HousePlant) {
        self.measured = true;
        let sim_now = plant.now();
        let now = Millis(sim_now.as_micros() / 1000);
        let hour = self.calendar.local_hour(sim_now);
        let local = LocalTime {
            seconds_of_day: (hour * 3600.0).floor().clamp(0.0, 86_399.0) as u32,
            weekday: self.calendar.local_weekday(sim_now) as u8,
        };
        let utc_s = self.calendar.unix_s(sim_now).max(0.0) as u64;
        let Ok(m) = self.port.measure(plant.sensors()) else {
            return;
        };
        for input in controller_inputs(m, utc_s, local) {
            self.controller.handle(now, input);
        }
    }

    /// Drains the controller's outputs; applies the latest plant command.
    fn actuate(&mut self, plant: &mut HousePlant) {
        let mut latest: Option<PlantCommand> = None;
        let now_ms = plant.now_ms();
        while let Some(mut o) = self.controller.poll_output() {
            if let Some(s) = self.sabotage.as_mut() {
                match &mut o {
                    Output::DemandAck(a) => s.on_ack(now_ms, a),
                    Output::DispatchVerdict(v) => s.on_verdict(now_ms, v),
                    Output::ConfigVerdict(v) => s.on_config_verdict(v),
                    Output::PeakReport(p) => s.on_peak_report(p),
                    _ => {}
                }
            }
            match o {
                Output::Plant(c) => latest = Some(c),
                other => self.events.push(other),
            }
        }
        let Some(s) = self.sabotage.as_mut() else {
            if let Some(c) = latest {
                plant.command(Some(self.port.plant_commands(&assembly_command(&c))));
                self.commands_applied += 1;
            }
            return;
        };
        if let Some(c) = latest {
            self.last_command = Some(assembly_command(&c));
            self.commands_applied += 1;
        }
        if let Some(mut c) = self.last_command.clone() {
            let now = plant.now();
            let at = Moment {
                now_ms,
                local_hour: self.calendar.local_hour(now),
                measurements: self.port.measurements(),
            };
            s.command(&at, &mut c);
            plant.command(Some(self.port.plant_commands(&c)));
        }
    }

    /// Runs the controller's wake-ups from now until the next house step.
    fn wake_until_next_step(&mut self, plant: &HousePlant) {
        let now = Millis(plant.now_ms());
        if self.wake == WakePolicy::OncePerStep {
            self.controller.handle(now, Input::Tick);
            return;
        }
        let next_step_ms = (plant.now().as_micros() + plant.engine.base_period_us()) / 1000;
        while let Some(t) = self.controller.poll_timeout() {
            if t.0 >= next_step_ms {
                break;
            }
            // Each tick moves the controller's wake-up past `t`.
            self.controller.handle(t.max(now), Input::Tick);
        }
    }

    /// Delivers a signed dispatch message to the controller now.
    pub fn dispatch(&mut self, plant: &mut HousePlant, bytes: &[u8]) {
        self.dispatch_with(plant, bytes, &mut StrictCheck);
    }

    /// [`DirectEnd::dispatch`] with the signature checked by `signatures`.
    pub fn dispatch_with(
        &mut self,
        plant: &mut HousePlant,
        bytes: &[u8],
        signatures: &mut dyn SignatureCheck,
    ) {
        self.deliver(plant, Input::Dispatch(bytes), signatures);
    }

    /// Delivers a signed configuration message to the controller now.
    pub fn configure(&mut self, plant: &mut HousePlant, bytes: &[u8]) {
        self.configure_with(plant, bytes, &mut StrictCheck);
    }

    /// [`DirectEnd::configure`] with the signature checked by `signatures`.
    pub fn configure_with(
        &mut self,
        plant: &mut HousePlant,
        bytes: &[u8],
        signatures: &mut dyn SignatureCheck,
    ) {
        self.deliver(plant, Input::Config(bytes), signatures);
    }

    /// Asks the controller for its cluster report now (as the remote
    /// server does) and returns the report as its uplink sends it: the
    /// firmware's `wire::cluster_report` bytes. `None` when it sent none (no
    /// `[cluster]`, powered down).
    pub fn request_cluster_report(&mut self, plant: &mut HousePlant) -> Option<Vec<u8>> {
        if self.powered_down {
            return None;
        }
        self.deliver(plant, Input::ClusterReportRequest, &mut StrictCheck);
        let at = self
            .events
            .iter()
            .rposition(|o| matches!(o, Output::ClusterReport(_)))?;
        match self.events.remove(at) {
            Output::ClusterReport(r) => Some(r.emit().to_vec()),
            _ => None,
        }
    }

    /// A board has its clock and measurements before it takes a message: a
    /// message delivered before the first step (a fleet's minute 0) finds
    /// the controller measured at the current time, not at UTC 0 (where
    /// every signed message would read as not yet valid).
    fn deliver(
        &mut self,
        plant: &mut HousePlant,
        input: Input<'_>,
        signatures: &mut dyn SignatureCheck,
    ) {
        if !self.measured {
            self.measure(plant);
        }
        if let (Some(s), Input::Dispatch(bytes)) = (self.sabotage.as_mut(), &input) {
            s.on_dispatch(bytes);
        }
        self.controller
            .handle_with(Millis(plant.now_ms()), input, signatures);
        self.actuate(plant);
    }
}

impl ControllerSide for DirectEnd {
    type Plant = HousePlant;

    /// One house step, then the controller's measurements, wake-ups and
    /// command for the next step (before the first command, also before
    /// the step).
    fn step(&mut self, plant: &mut HousePlant) -> Result<(), RigError> {
        if self.powered_down {
            plant.tick();
            return Ok(());
        }
        if self.commands_applied == 0 {
            self.measure(plant);
            self.wake_until_next_step(plant);
            self.actuate(plant);
        }
        plant.tick();
        self.measure(plant);
        self.wake_until_next_step(plant);
        self.actuate(plant);
        Ok(())
    }
}

/// The controller's inputs for one measurement, in the order a board's
/// runtime hands them over: clock, pack, bus, circuits, sockets, PV,
/// charger, inverter, meter. Values as the controller takes them (`f32`).
///
/// The pack's minimum cell temperature is given as its maximum (both from
/// `pack_temperature_max_c`), as this path always has; the link path sends
/// the true minimum.
fn controller_inputs(m: &Measurements, utc_s: u64, local: LocalTime) -> [Input<'static>; 9] {
    let f = |x: f64| x as f32;
    let bus_v = f(m.bus_voltage_v);
    let mut circuits = heapless::Vec::new();
    for c in &m.circuits {
        let w = f(c.power_w);
        let _ = circuits.push(CircuitMeasurement {
            power_w: w,
            current_a: breaker_current_a(w, bus_v),
        });
    }
    let mut sockets = heapless::Vec::new();
    for k in &m.sockets {
        let _ = sockets.push(SocketInput {
            plugged: k.plugged,
            contract: None,
            sink_max_w: None,
            device_id: None,
            battery_soc: None,
            power_w: f(k.power_w),
            wake: false,
        });
    }
    let meter = &m.meter;
    [
        Input::Clock { utc_s, local },
        Input::Pack(PackMeasurement {
            pack_voltage_v: f(m.pack_voltage_v),
            pack_current_a: f(m.pack_current_a),
            cell_voltage_min_v: f(m.cell_voltage_min_v),
            cell_voltage_max_v: f(m.cell_voltage_max_v),
            cell_temperature_min_c: f(m.pack_temperature_max_c),
            cell_temperature_max_c: f(m.pack_temperature_max_c),
        }),
        Input::Bus {
            bus_voltage_v: bus_v,
        },
        Input::Circuits(circuits),
        Input::Sockets(sockets),
        Input::Pv {
            power_w: f(m.pv_available_w),
        },
        Input::Charger {
            ac_power_w: f(m.charger_ac_power_w),
        },
        Input::Inverter {
            ac_power_w: f(m.inverter_ac_power_w),
        },
        Input::Meter(MeterMeasurement {
            grid_power_w: f(meter.import_w) - f(meter.export_w),
            tariff: meter.tariff.clamp(0.0, 9.0) as u8,
            mains_present: m.mains_present,
            import_wh: meter.import_kwh * 1000.0,
            export_wh: meter.export_kwh * 1000.0,
        }),
    ]
}

/// What a firmware plant command tells the assembly's power stage.
pub fn assembly_command(c: &PlantCommand) -> AssemblyCommand {
    let mut a = AssemblyCommand {
        battery_enabled: c.battery.enabled,
        battery_standby: c.battery.standby,
        battery_charge_limit_w: f64::from(c.battery.charge_limit_w),
        battery_discharge_limit_w: f64::from(c.battery.discharge_limit_w),
        charger_enabled: c.charger.enabled,
        charger_boost: c.charger.boost,
        inverter_enabled: c.inverter.enabled,
        inverter_request_ac_w: f64::from(c.inverter.request_ac_w),
        inverter_export_enabled: c.inverter.export_enabled,
        pv_cap_w: c.pv.cap_w.map(f64::from),
        ..AssemblyCommand::default()
    };
    for s in &c.circuits {
        let _ = a.circuits_on.push(s.on);
    }
    for s in &c.sockets {
        let _ = a.sockets_on.push(s.on);
        let _ = a.socket_caps_w.push(s.power_cap_w.map(f64::from));
    }
    a
}
