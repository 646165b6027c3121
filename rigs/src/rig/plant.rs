//! The plant side of a session: the twin house ([`HousePlant`]: the house
//! and its engine, held sensors, forced commands, and what a run records
//! when asked — sampled signals, the commands the plant applied, energies)
//! and, for a session that links a controller by frames, the house with its
//! [`PlantLink`] ([`PlantSide`]: status frames and P1 telegrams out,
//! command frames in, bus load). Shared by every time mode and controller
//! location, so the in-process and the SIL runs differ only in how frames
//! travel, and a direct or controller-less run differs only in having no
//! link.
//!
//! May use: `twin`, the plant link, the saboteur. Must not use: transports, the wall
//! clock, the firmware's controller.

use std::path::Path;

use reports::csv_table::ColumnTable;
use twin::engine::{Engine, Recorder, SignalId, SignalRegistry};
use twin::house::{House, HouseConfig, HouseEvent, PlantCommands, DEFAULT_RECORDED};
use twin::time::SimTime;

use crate::busload::BusLoadMeter;
use crate::plant_link::{ControllerStatus, PlantLink, PlantLinkOptions};
use crate::rig::error::RigError;
use crate::sabotage::{Moment, Sabotage};
use links::CanFrame;

/// A change of what the plant applied: the controller's commands (or
/// `None`: the plant's own fallback policy) from `at_ms` on.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedCommands {
    pub at_ms: u64,
    pub commands: Option<PlantCommands>,
}

/// A change of the controller's flags, as its heartbeats told the plant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerFlags {
    pub at_ms: u64,
    pub state: firmware::wire::can::messages::CtrlHeartbeatCtrlState,
    pub meter_stale: bool,
    pub link_timeout: bool,
}

/// Energy through the house over the run, kWh.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Energies {
    pub grid_import_kwh: f64,
    pub grid_export_kwh: f64,
    pub battery_discharge_kwh: f64,
    pub battery_charge_kwh: f64,
    pub pv_kwh: f64,
    pub dc_load_kwh: f64,
    pub ac_unserved_kwh: f64,
}

impl Energies {
    /// `(name, value)` pairs, for reports and comparisons.
    pub fn fields(&self) -> [(&'static str, f64); 7] {
        [
            ("grid_import_kwh", self.grid_import_kwh),
            ("grid_export_kwh", self.grid_export_kwh),
            ("battery_discharge_kwh", self.battery_discharge_kwh),
            ("battery_charge_kwh", self.battery_charge_kwh),
            ("pv_kwh", self.pv_kwh),
            ("dc_load_kwh", self.dc_load_kwh),
            ("ac_unserved_kwh", self.ac_unserved_kwh),
        ]
    }
}

struct EnergyProbes {
    import_kwh: SignalId,
    export_kwh: SignalId,
    battery_w: SignalId,
    pv_w: SignalId,
    dc_load_w: SignalId,
    unserved_w: SignalId,
}

impl EnergyProbes {
    fn new(s: &SignalRegistry) -> Result<Self, twin::engine::EngineError> {
        Ok(EnergyProbes {
            import_kwh: s.require("grid_import_kwh")?,
            export_kwh: s.require("grid_export_kwh")?,
            battery_w: s.require("battery_power_w")?,
            pv_w: s.require("pv_power_w")?,
            dc_load_w: s.require("dc_load_power_w")?,
            unserved_w: s.require("ac_unserved_w")?,
        })
    }

    /// Adds one step of `dt_h` hours to `e`.
    fn add(&self, e: &mut Energies, s: &SignalRegistry, dt_h: f64) {
        let battery_w = s.get(self.battery_w);
        if battery_w >= 0.0 {
            e.battery_discharge_kwh += battery_w * dt_h / 1000.0;
        } else {
            e.battery_charge_kwh += -battery_w * dt_h / 1000.0;
        }
        e.pv_kwh += s.get(self.pv_w) * dt_h / 1000.0;
        e.dc_load_kwh += s.get(self.dc_load_w) * dt_h / 1000.0;
        e.ac_unserved_kwh += s.get(self.unserved_w) * dt_h / 1000.0;
        e.grid_import_kwh = s.get(self.import_kwh);
        e.grid_export_kwh = s.get(self.export_kwh);
    }
}

/// What a [`HousePlant`] records as it runs; nothing unless asked (a fleet
/// of thousands of houses records none of it).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recording {
    /// Sample the default signals (plus every circuit's power) every this
    /// many µs (a whole multiple of the plant step).
    pub sample_us: Option<u64>,
    /// Sum the house's energies ([`Energies`]).
    pub energies: bool,
    /// Keep every change of the applied commands ([`AppliedCommands`]).
    pub applied: bool,
}

impl Recording {
    /// Everything, signals every `sample_us`: what a rig run reports.
    pub fn everything(sample_us: u64) -> Self {
        Recording {
            sample_us: Some(sample_us),
            energies: true,
            applied: true,
        }
    }
}

/// The twin house of a session, stepped one plant step at a time.
pub struct HousePlant {
    pub house: House,
    pub engine: Engine<HouseEvent>,
    /// The house's configuration (as built; the seed and step set).
    pub config: HouseConfig,
    /// Sampled signals (when [`Recording::sample_us`] asked for them).
    pub recorder: Option<Recorder>,
    /// What the plant applied, change by change (when
    /// [`Recording::applied`] asked for it).
    pub applied: Vec<AppliedCommands>,
    /// Energy through the house so far (when [`Recording::energies`]
    /// asked for it).
    pub energies: Energies,
    energy_probes: Option<EnergyProbes>,
    log_applied: bool,
    ticks: u64,
    step_us: u64,
    last_applied: Option<Option<PlantCommands>>,
    /// Sensors reported as stuck at a value (a sensor fault): read from a
    /// copy of the signals.
    held_sensors: Vec<(SignalId, f64)>,
    held_view: Option<SignalRegistry>,
    /// Commands applied instead of the controller's (a house without the
    /// assembly, for baselines).
    forced: Option<PlantCommands>,
}

impl HousePlant {
    /// The house of `cfg` (its scheduled events scheduled), at its own
    /// electrical step, recording what `recording` asks for.
    pub fn new(cfg: HouseConfig, recording: Recording) -> Result<HousePlant, RigError> {
        let step_us = cfg.electrical_step_us;
        let events = cfg.scheduled_events();
        let config = cfg.clone();
        let mut house = House::new(cfg).map_err(|e| RigError::Scenario(e.to_string()))?;
        let mut engine = Engine::new(&mut house)?;
        for (at, e) in events {
            engine.schedule(at, e);
        }
        let s = engine.signals();
        let recorder = match recording.sample_us {
            Some(sample_us) => {
                let names = recorded_signals(s);
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut recorder = Recorder::new(s, &refs, sample_us, engine.base_period_us())?;
                recorder.observe(0, SimTime::ZERO, s);
                Some(recorder)
            }
            None => None,
        };
        let energy_probes = match recording.energies {
            true => Some(EnergyProbes::new(s)?),
            false => None,
        };
        Ok(HousePlant {
            house,
            engine,
            config,
            recorder,
            applied: Vec::new(),
            energies: Energies::default(),
            energy_probes,
            log_applied: recording.applied,
            ticks: 0,
            step_us,
            last_applied: None,
            held_sensors: Vec::new(),
            held_view: None,
            forced: None,
        })
    }

    /// The seed the house runs with.
    pub fn house_seed(&self) -> u64 {
        self.config.seed
    }

    /// UTC Unix time of the run's t = 0.
    pub fn epoch_unix_s(&self) -> f64 {
        self.config.calendar.epoch_unix_s as f64
    }

    pub fn now(&self) -> SimTime {
        self.engine.now()
    }

    pub fn now_ms(&self) -> u64 {
        self.engine.now().as_micros() / 1000
    }

    pub fn step_ms(&self) -> u64 {
        self.step_us / 1000
    }

    /// The plant step, µs.
    pub fn step_us(&self) -> u64 {
        self.step_us
    }

    pub fn signals(&self) -> &SignalRegistry {
        self.engine.signals()
    }

    pub fn steps(&self) -> u64 {
        self.ticks
    }

    /// What the sensors report now: the house's signals, with the held
    /// ones at their held values.
    pub fn sensors(&mut self) -> &SignalRegistry {
        let s = self.engine.signals();
        match self.held_view.as_mut() {
            Some(view) if !self.held_sensors.is_empty() => {
                view.copy_values_from(s);
                for &(id, v) in &self.held_sensors {
                    view.set(id, v);
                }
                view
            }
            _ => s,
        }
    }

    /// Applies `commands` (`None`: the house's own policy) from now on,
    /// or the forced ones while there are; records a change when asked to.
    pub fn command(&mut self, commands: Option<PlantCommands>) {
        let commands = match &self.forced {
            Some(f) => Some(f.clone()),
            None => commands,
        };
        if self.log_applied && self.last_applied.as_ref() != Some(&commands) {
            self.applied.push(AppliedCommands {
                at_ms: self.now_ms(),
                commands: commands.clone(),
            });
            self.last_applied = Some(commands.clone());
        }
        self.house.command(commands);
    }

    /// Advances the house one step and records what was asked for.
    pub fn tick(&mut self) {
        self.engine.tick(&mut self.house);
        self.ticks += 1;
        let s = self.engine.signals();
        if let Some(p) = &self.energy_probes {
            p.add(&mut self.energies, s, self.step_us as f64 / 3.6e9);
        }
        if let Some(r) = self.recorder.as_mut() {
            r.observe(self.ticks, self.engine.now(), s);
        }
    }

    /// The sampled signals as a table (`time_s` first), if any were
    /// recorded.
    pub fn signals_table(&self) -> Option<ColumnTable> {
        let r = self.recorder.as_ref()?;
        let mut table = ColumnTable::new();
        table.push("time_s", r.time_s().to_vec());
        for ((name, _unit), values) in r.columns().iter().zip(r.values()) {
            table.push(name.clone(), values.clone());
        }
        Some(table)
    }

    /// From now on the sensors report `signal` stuck at its present value
    /// (a stuck sensor); the twin itself goes on. Errors name an unknown
    /// signal.
    pub fn hold_sensor(&mut self, signal: &str) -> Result<f64, RigError> {
        let v = self.signals().get(self.signals().require(signal)?);
        self.hold_sensor_at(signal, v)?;
        Ok(v)
    }

    /// From now on the sensors report `signal` at `value` (a sensor
    /// reading wrong, or a real excursion the twin does not produce on its
    /// own); the twin itself goes on. Errors name an unknown signal.
    pub fn hold_sensor_at(&mut self, signal: &str, value: f64) -> Result<(), RigError> {
        let s = self.engine.signals();
        let id = s.require(signal)?;
        if self.held_view.is_none() {
            self.held_view = Some(s.clone());
        }
        self.held_sensors.retain(|(i, _)| *i != id);
        self.held_sensors.push((id, value));
        Ok(())
    }

    /// Releases every held sensor.
    pub fn release_sensors(&mut self) {
        self.held_sensors.clear();
    }

    /// Applies `commands` from now on instead of the controller's (`None`:
    /// the controller's again).
    pub fn force_commands(&mut self, commands: Option<PlantCommands>) {
        self.forced = commands;
    }

    /// Schedules a house event at `at` (now or later).
    pub fn schedule(&mut self, at: SimTime, event: HouseEvent) {
        self.engine.schedule(at.max(self.engine.now()), event);
    }
}

impl AsRef<HousePlant> for HousePlant {
    fn as_ref(&self) -> &HousePlant {
        self
    }
}

impl AsMut<HousePlant> for HousePlant {
    fn as_mut(&mut self) -> &mut HousePlant {
        self
    }
}

/// What a house run records by default: the default signals plus every
/// circuit's power.
pub fn recorded_signals(s: &SignalRegistry) -> Vec<String> {
    let mut names: Vec<String> = DEFAULT_RECORDED.iter().map(|n| n.to_string()).collect();
    names.extend(
        s.iter()
            .map(|(_, n, _, _)| n.to_owned())
            .filter(|n| n.starts_with("circuit_") && n.ends_with("_power_w")),
    );
    names
}

/// A house scenario file with a rig's plant step and seed: the config a
/// [`PlantSide`] runs. Errors name the file and what to change.
pub fn scenario_config(
    scenario: &Path,
    plant_step_ms: u64,
    seed: Option<u64>,
    sample_s: f64,
) -> Result<(HouseConfig, u64), RigError> {
    let mut cfg = HouseConfig::load(scenario)?;
    if let Some(seed) = seed {
        cfg.seed = seed;
    }
    let step_us = plant_step_ms * 1000;
    if cfg.environment_step_us % step_us != 0 {
        return Err(RigError::Scenario(format!(
            "{}: the rig's plant step ({plant_step_ms} ms) must divide the scenario's environment_step_ms ({})",
            scenario.display(),
            cfg.environment_step_us / 1000
        )));
    }
    cfg.electrical_step_us = step_us;
    let sample_us = (sample_s * 1e6).round() as u64;
    if sample_us == 0 || !sample_us.is_multiple_of(step_us) {
        return Err(RigError::Scenario(format!(
            "the sample period ({sample_s} s) must be a whole multiple of the plant step ({plant_step_ms} ms)"
        )));
    }
    Ok((cfg, sample_us))
}

/// The twin house with its frame link, stepped by a rig whose controller
/// is reached by frames.
pub struct PlantSide {
    /// The house (also reached through `Deref`).
    pub plant: HousePlant,
    pub link: PlantLink,
    pub bus_load: BusLoadMeter,
    /// The controller's heartbeat flags, change by change.
    pub controller_flags: Vec<ControllerFlags>,
    /// Frames and telegrams of the current step, waiting to go out.
    pub outbox: Vec<CanFrame>,
    pub p1_outbox: Vec<Vec<u8>>,
    /// A saboteur between the link and the house (and the bench's view of
    /// the heartbeat), if the rig inserts one.
    pub sabotage: Option<Sabotage>,
    /// The last heartbeat as the bench reads it.
    reported: Option<ControllerStatus>,
}

impl std::ops::Deref for PlantSide {
    type Target = HousePlant;
    fn deref(&self) -> &HousePlant {
        &self.plant
    }
}

impl std::ops::DerefMut for PlantSide {
    fn deref_mut(&mut self) -> &mut HousePlant {
        &mut self.plant
    }
}

impl AsRef<HousePlant> for PlantSide {
    fn as_ref(&self) -> &HousePlant {
        &self.plant
    }
}

impl AsMut<HousePlant> for PlantSide {
    fn as_mut(&mut self) -> &mut HousePlant {
        &mut self.plant
    }
}

impl PlantSide {
    /// Loads the scenario, sets the plant step and seed, builds house and
    /// link; records everything, signals every `sample_s`.
    pub fn new(
        scenario: &Path,
        plant_step_ms: u64,
        seed: Option<u64>,
        sample_s: f64,
    ) -> Result<PlantSide, RigError> {
        let (cfg, sample_us) = scenario_config(scenario, plant_step_ms, seed, sample_s)?;
        let plant =
            HousePlant::new(cfg, Recording::everything(sample_us)).map_err(|e| match e {
                RigError::Scenario(m) => RigError::Scenario(format!("{}: {m}", scenario.display())),
                other => other,
            })?;
        let link = PlantLink::new(&plant.config, plant.signals(), PlantLinkOptions::default())?;
        Ok(PlantSide {
            plant,
            link,
            bus_load: BusLoadMeter::new(500_000),
            controller_flags: Vec::new(),
            outbox: Vec::new(),
            p1_outbox: Vec::new(),
            sabotage: None,
            reported: None,
        })
    }

    /// Applies what the link says the house should do now, records a change,
    /// advances the house one step, measures, and fills the outboxes with
    /// the step's status frames and telegrams.
    pub fn step(&mut self) {
        let now = self.plant.now();
        let commands = match self.sabotage.as_mut() {
            None => self.link.commands(now),
            Some(s) => self.link.has_fresh_command(now).then(|| {
                let mut c = self.link.assembly_command().clone();
                let at = Moment {
                    now_ms: now.as_micros() / 1000,
                    local_hour: self.plant.config.calendar.local_hour(now),
                    measurements: self.link.port().measurements(),
                };
                s.command(&at, &mut c);
                self.link.port().plant_commands(&c)
            }),
        };
        self.plant.command(commands);
        self.plant.tick();
        let now = self.plant.now();
        self.link.on_step(now, self.plant.sensors());
        while let Some(f) = self.link.poll_transmit() {
            self.bus_load.record(now, &f);
            self.outbox.push(f);
        }
        while let Some(t) = self.link.poll_p1() {
            self.p1_outbox.push(t);
        }
    }

    /// The lockstep time sync closing the current step (counted on the bus).
    pub fn sync_frame(&mut self) -> CanFrame {
        let now = self.plant.now();
        let f = self.link.sync_frame(now);
        self.bus_load.record(now, &f);
        f
    }

    /// Frames from the controller, as received now.
    pub fn receive(&mut self, frames: &[CanFrame]) {
        let now = self.plant.now();
        for f in frames {
            self.bus_load.record(now, f);
            self.link.handle_frame(now, f);
        }
        self.reported = self
            .link
            .controller_status()
            .map(|c| match self.sabotage.as_mut() {
                Some(s) => s.on_heartbeat(c),
                None => c,
            });
        if let Some(c) = self.reported {
            self.note_flags(now.as_micros() / 1000, &c);
        }
    }

    /// The controller's last heartbeat as the bench reads it (through the
    /// saboteur, if any).
    pub fn reported_status(&self) -> Option<ControllerStatus> {
        self.reported
    }

    fn note_flags(&mut self, at_ms: u64, c: &ControllerStatus) {
        let same = self.controller_flags.last().is_some_and(|l| {
            l.state == c.state && l.meter_stale == c.meter_stale && l.link_timeout == c.link_timeout
        });
        if !same {
            self.controller_flags.push(ControllerFlags {
                at_ms,
                state: c.state,
                meter_stale: c.meter_stale,
                link_timeout: c.link_timeout,
            });
        }
    }
}
