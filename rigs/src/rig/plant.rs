//! The plant side of a rig run: the twin house, its [`PlantLink`] (status
//! frames out, command frames in, P1 telegrams), and what the run records
//! (signals, the commands the plant actually applied, energies, bus load).
//! Shared by every time mode and every controller location, so the
//! in-process and the SIL runs differ only in how frames travel.

use std::path::Path;

use twin::engine::{Engine, Recorder, SignalId, SignalRegistry};
use twin::house::{House, HouseConfig, HouseEvent, PlantCommands, DEFAULT_RECORDED};
use twin::time::SimTime;

use crate::busload::BusLoadMeter;
use crate::plant_link::{ControllerStatus, PlantLink, PlantLinkOptions};
use crate::rig::RigError;
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

/// The twin and its link, stepped by a rig.
pub struct PlantSide {
    pub house: House,
    pub engine: Engine<HouseEvent>,
    pub link: PlantLink,
    pub recorder: Recorder,
    pub bus_load: BusLoadMeter,
    pub applied: Vec<AppliedCommands>,
    /// The controller's heartbeat flags, change by change.
    pub controller_flags: Vec<ControllerFlags>,
    pub energies: Energies,
    probes: EnergyProbes,
    ticks: u64,
    step_us: u64,
    last_applied: Option<Option<PlantCommands>>,
    seed: u64,
    epoch_unix_s: f64,
    /// Sensors the plant link reports as stuck at a value (a sensor fault):
    /// the link reads these from a copy of the signals.
    held_sensors: Vec<(SignalId, f64)>,
    held_view: Option<SignalRegistry>,
    /// Commands applied instead of the link's (a house without the
    /// assembly, for baselines).
    forced: Option<PlantCommands>,
    /// Frames and telegrams of the current step, waiting to go out.
    pub outbox: Vec<CanFrame>,
    pub p1_outbox: Vec<Vec<u8>>,
}

impl PlantSide {
    /// Loads the scenario, sets the plant step and seed, builds house and link.
    pub fn new(
        scenario: &Path,
        plant_step_ms: u64,
        seed: Option<u64>,
        sample_s: f64,
    ) -> Result<PlantSide, RigError> {
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
        let events = cfg.scheduled_events();
        let seed_used = cfg.seed;
        let epoch_unix_s = cfg.calendar.epoch_unix_s as f64;
        let link_cfg = cfg.clone();
        let mut house = House::new(cfg)
            .map_err(|e| RigError::Scenario(format!("{}: {e}", scenario.display())))?;
        let mut engine = Engine::new(&mut house)?;
        for (at, e) in events {
            engine.schedule(at, e);
        }
        let s = engine.signals();
        let link = PlantLink::new(&link_cfg, s, PlantLinkOptions::default())?;
        let mut names: Vec<String> = DEFAULT_RECORDED.iter().map(|n| n.to_string()).collect();
        names.extend(
            s.iter()
                .map(|(_, n, _, _)| n.to_owned())
                .filter(|n| n.starts_with("circuit_") && n.ends_with("_power_w")),
        );
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut recorder = Recorder::new(s, &refs, sample_us, engine.base_period_us())?;
        recorder.observe(0, SimTime::ZERO, s);
        let probes = EnergyProbes {
            import_kwh: s.require("grid_import_kwh")?,
            export_kwh: s.require("grid_export_kwh")?,
            battery_w: s.require("battery_power_w")?,
            pv_w: s.require("pv_power_w")?,
            dc_load_w: s.require("dc_load_power_w")?,
            unserved_w: s.require("ac_unserved_w")?,
        };
        Ok(PlantSide {
            house,
            engine,
            link,
            recorder,
            bus_load: BusLoadMeter::new(500_000),
            applied: Vec::new(),
            controller_flags: Vec::new(),
            energies: Energies::default(),
            probes,
            ticks: 0,
            step_us,
            last_applied: None,
            seed: seed_used,
            epoch_unix_s,
            held_sensors: Vec::new(),
            held_view: None,
            forced: None,
            outbox: Vec::new(),
            p1_outbox: Vec::new(),
        })
    }

    /// The seed the house runs with.
    pub fn house_seed(&self) -> u64 {
        self.seed
    }

    /// UTC Unix time of the run's t = 0.
    pub fn epoch_unix_s(&self) -> f64 {
        self.epoch_unix_s
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

    pub fn signals(&self) -> &SignalRegistry {
        self.engine.signals()
    }

    pub fn steps(&self) -> u64 {
        self.ticks
    }

    /// Applies what the link says the house should do now, records a change,
    /// advances the house one step, measures, and fills the outboxes with
    /// the step's status frames and telegrams.
    pub fn step(&mut self) {
        let now = self.engine.now();
        let mut commands = self.link.commands(now);
        if let Some(f) = &self.forced {
            commands = Some(f.clone());
        }
        if self.last_applied.as_ref() != Some(&commands) {
            self.applied.push(AppliedCommands {
                at_ms: now.as_micros() / 1000,
                commands: commands.clone(),
            });
            self.last_applied = Some(commands.clone());
        }
        self.house.command(commands);
        self.engine.tick(&mut self.house);
        self.ticks += 1;
        let now = self.engine.now();
        let s = self.engine.signals();
        let dt_h = self.step_us as f64 / 3.6e9;
        let p = &self.probes;
        let battery_w = s.get(p.battery_w);
        let e = &mut self.energies;
        if battery_w >= 0.0 {
            e.battery_discharge_kwh += battery_w * dt_h / 1000.0;
        } else {
            e.battery_charge_kwh += -battery_w * dt_h / 1000.0;
        }
        e.pv_kwh += s.get(p.pv_w) * dt_h / 1000.0;
        e.dc_load_kwh += s.get(p.dc_load_w) * dt_h / 1000.0;
        e.ac_unserved_kwh += s.get(p.unserved_w) * dt_h / 1000.0;
        e.grid_import_kwh = s.get(p.import_kwh);
        e.grid_export_kwh = s.get(p.export_kwh);
        self.recorder.observe(self.ticks, now, s);
        match self.held_view.as_mut() {
            Some(view) if !self.held_sensors.is_empty() => {
                view.copy_values_from(s);
                for &(id, v) in &self.held_sensors {
                    view.set(id, v);
                }
                self.link.on_step(now, view);
            }
            _ => self.link.on_step(now, s),
        }
        while let Some(f) = self.link.poll_transmit() {
            self.bus_load.record(now, &f);
            self.outbox.push(f);
        }
        while let Some(t) = self.link.poll_p1() {
            self.p1_outbox.push(t);
        }
    }

    /// From now on the plant link reports `signal` stuck at its present
    /// value (a stuck sensor); the twin itself goes on. Errors name an
    /// unknown signal.
    pub fn hold_sensor(&mut self, signal: &str) -> Result<f64, RigError> {
        let s = self.engine.signals();
        let id = s.require(signal)?;
        let v = s.get(id);
        if self.held_view.is_none() {
            self.held_view = Some(s.clone());
        }
        self.held_sensors.retain(|(i, _)| *i != id);
        self.held_sensors.push((id, v));
        Ok(v)
    }

    /// Applies `commands` from now on instead of the controller's (`None`:
    /// the controller's again).
    pub fn force_commands(&mut self, commands: Option<PlantCommands>) {
        self.forced = commands;
    }

    /// From now on the plant link reports `signal` at `value` (a sensor
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

    /// Schedules a house event at `at` (now or later).
    pub fn schedule(&mut self, at: SimTime, event: HouseEvent) {
        self.engine.schedule(at.max(self.engine.now()), event);
    }

    /// The lockstep time sync closing the current step (counted on the bus).
    pub fn sync_frame(&mut self) -> CanFrame {
        let now = self.engine.now();
        let f = self.link.sync_frame(now);
        self.bus_load.record(now, &f);
        f
    }

    /// Frames from the controller, as received now.
    pub fn receive(&mut self, frames: &[CanFrame]) {
        let now = self.engine.now();
        for f in frames {
            self.bus_load.record(now, f);
            self.link.handle_frame(now, f);
        }
        if let Some(c) = self.link.controller_status() {
            self.note_flags(now.as_micros() / 1000, &c);
        }
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
