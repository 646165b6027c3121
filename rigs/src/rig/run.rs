//! Running a rig: the plant loop for both time modes, over any controller
//! end, and the run's summary.

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reports::csv_table::ColumnTable;
use twin::time::SimTime;

use crate::busload::BusLoadReport;
use crate::can::CanFrame;
use crate::pacing::{JitterStats, RealTimePacer};
use crate::plant_link::ControllerStatus;
use crate::rig::config::{ControllerLocation, Rig, TimeMode};
use crate::rig::ends::{ControllerEnd, InProcessEnd, LinkedEnd};
use crate::rig::plant::{AppliedCommands, ControllerFlags, Energies, PlantSide};
use crate::rig::RigError;

/// What to run beyond the rig file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Scenario (a house file) instead of the rig's `twin.scenario`.
    pub scenario: Option<PathBuf>,
    /// Simulated hours.
    pub hours: f64,
    /// Seed instead of the rig's / scenario's.
    pub seed: Option<u64>,
    /// Sample period of the recorded signals, s.
    pub sample_s: f64,
    /// The firmware program instead of the rig's (child-process rigs).
    pub program: Option<PathBuf>,
    /// Where the controller's log and other run files go.
    pub work_dir: PathBuf,
    /// Write every CAN frame (both directions) here in candump `-L` format.
    pub candump: Option<PathBuf>,
}

/// How a run went.
#[derive(Debug)]
pub struct RunSummary {
    pub rig: String,
    pub time: TimeMode,
    pub seed: u64,
    pub plant_step_ms: u64,
    pub steps: u64,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub frames_to_controller: u64,
    pub frames_from_controller: u64,
    pub p1_telegrams: u64,
    pub bus_load: BusLoadReport,
    /// What the plant applied, change by change.
    pub applied: Vec<AppliedCommands>,
    pub energies: Energies,
    /// Real-time step jitter and overruns.
    pub pacing: Option<JitterStats>,
    /// Lockstep: plant-to-command round trip (the step's status frames
    /// and time sync out, the controller's commands and acknowledging
    /// heartbeat back), µs: p50, p99, max.
    pub round_trip_us: Option<[u32; 3]>,
    /// The plant link's counters (rejects, command timeouts...).
    pub plant_link: String,
    /// How the controller ended.
    pub controller: String,
    /// The controller's last heartbeat, as the plant read it.
    pub controller_status: Option<String>,
    /// The same, typed.
    pub last_heartbeat: Option<ControllerStatus>,
    /// The controller's heartbeat flags (state, meter stale, link
    /// timeout), change by change, as the plant received them.
    pub controller_flags: Vec<ControllerFlags>,
    /// Sampled signals.
    pub signals: ColumnTable,
}

impl RunSummary {
    pub fn speedup(&self) -> f64 {
        self.simulated_s / self.wall_s.max(1e-9)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rig {} ({:?}, plant step {} ms, seed {}): {:.3} h simulated in {:.2} s ({:.0}× real time), {} steps",
            self.rig,
            self.time,
            self.plant_step_ms,
            self.seed,
            self.simulated_s / 3600.0,
            self.wall_s,
            self.speedup(),
            self.steps
        )?;
        writeln!(
            f,
            "  CAN: {} frames to the controller, {} from it; bus load {:.2} % average, {:.2} % in the worst second (500 kbit/s, stuffing counted)",
            self.frames_to_controller,
            self.frames_from_controller,
            self.bus_load.average_load_percent,
            self.bus_load.worst_window_load_percent
        )?;
        writeln!(f, "  P1: {} telegrams", self.p1_telegrams)?;
        writeln!(f, "  plant link: {}", self.plant_link)?;
        writeln!(f, "  command changes applied: {}", self.applied.len())?;
        let e: Vec<String> = self
            .energies
            .fields()
            .iter()
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect();
        writeln!(f, "  energy: {}", e.join(", "))?;
        if let Some([p50, p99, max]) = self.round_trip_us {
            writeln!(
                f,
                "  plant-to-command round trip: p50 {p50} µs, p99 {p99} µs, max {max} µs"
            )?;
        }
        if let Some(j) = &self.pacing {
            writeln!(
                f,
                "  real time: jitter p50 {} µs, p99 {} µs, max {} µs; {} overruns in {} steps",
                j.p50_jitter_us(),
                j.p99_jitter_us(),
                j.max_jitter_us(),
                j.overruns(),
                j.steps()
            )?;
        }
        if let Some(c) = &self.controller_status {
            writeln!(f, "  controller's last heartbeat: {c}")?;
        }
        write!(f, "  controller: {}", self.controller)
    }
}

struct Loop<'a> {
    plant: PlantSide,
    end: Box<dyn ControllerEnd + 'a>,
    /// Every frame both ways, candump `-L`, stamped with the run's
    /// virtual time as Unix time (epoch of the scenario).
    trace: Option<(links::CandumpWriter, f64)>,
    inbox: Vec<CanFrame>,
    frames_to: u64,
    frames_from: u64,
    p1_telegrams: u64,
    /// Lockstep: wall time from handing the step's frames to the controller
    /// end until its acknowledging heartbeat arrived, µs.
    round_trips_us: Vec<u32>,
}

impl Loop<'_> {
    fn trace(&mut self, frames: &[CanFrame]) -> Result<(), RigError> {
        if let Some((w, epoch_s)) = self.trace.as_mut() {
            let at =
                links::candump::Timestamp::from_secs_f64(*epoch_s + self.plant.now().as_secs_f64())
                    .unwrap_or_default();
            for f in frames {
                w.write_at(at, "can0", f)
                    .map_err(|e| RigError::Link(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// One plant step and its exchange with the controller.
    fn step(&mut self, time: TimeMode) -> Result<(), RigError> {
        self.plant.step();
        let t_ms = self.plant.now_ms();
        let frames = std::mem::take(&mut self.plant.outbox);
        let telegrams = std::mem::take(&mut self.plant.p1_outbox);
        self.inbox.clear();
        match time {
            TimeMode::Lockstep => {
                let sync = self.plant.sync_frame();
                self.trace(&frames)?;
                self.trace(std::slice::from_ref(&sync))?;
                let sent = Instant::now();
                self.end
                    .exchange_lockstep(t_ms, &frames, &telegrams, &sync, &mut self.inbox)?;
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                self.round_trips_us.push(us);
                self.frames_to += frames.len() as u64 + 1;
            }
            TimeMode::Realtime => {
                self.trace(&frames)?;
                self.end
                    .exchange_realtime(t_ms, &frames, &telegrams, &mut self.inbox)?;
                self.frames_to += frames.len() as u64;
            }
        }
        self.p1_telegrams += telegrams.len() as u64;
        self.frames_from += self.inbox.len() as u64;
        let inbox = std::mem::take(&mut self.inbox);
        self.trace(&inbox)?;
        self.plant.receive(&inbox);
        self.inbox = inbox;
        Ok(())
    }
}

/// Runs `rig` for `opts.hours` of simulated time.
pub fn run(rig: &Rig, opts: &RunOptions) -> Result<RunSummary, RigError> {
    if !(opts.hours.is_finite() && opts.hours > 0.0 && opts.hours <= 24.0 * 366.0) {
        return Err(RigError::Scenario(format!(
            "the run length must be within (0, 8784] hours, found {}",
            opts.hours
        )));
    }
    let scenario = opts.scenario.as_deref().unwrap_or(&rig.scenario);
    let seed = opts.seed.or(rig.seed);
    let plant = PlantSide::new(scenario, rig.plant_step_ms, seed, opts.sample_s)?;
    let seed = plant.house_seed();
    let epoch = plant.epoch_unix_s();
    let end: Box<dyn ControllerEnd> = match rig.controller.runs {
        ControllerLocation::InProcess => Box::new(InProcessEnd::new(rig)?),
        _ => Box::new(LinkedEnd::new(
            rig,
            opts.program.as_deref(),
            &opts.work_dir,
        )?),
    };
    let trace = match &opts.candump {
        Some(p) => Some((
            links::CandumpWriter::create(p).map_err(|e| RigError::Link(e.to_string()))?,
            epoch,
        )),
        None => None,
    };
    let mut lp = Loop {
        plant,
        end,
        trace,
        inbox: Vec::new(),
        frames_to: 0,
        frames_from: 0,
        p1_telegrams: 0,
        round_trips_us: Vec::new(),
    };
    let end_t = SimTime::from_secs_f64(opts.hours * 3600.0);
    let started = Instant::now();
    let mut failure: Option<RigError> = None;
    let pacing = match rig.time {
        TimeMode::Lockstep => {
            while lp.plant.now() < end_t {
                if let Err(e) = lp.step(TimeMode::Lockstep) {
                    failure = Some(e);
                    break;
                }
            }
            None
        }
        TimeMode::Realtime => {
            let pacer = RealTimePacer::new(Duration::from_millis(rig.plant_step_ms));
            let steps = end_t.as_micros().div_ceil(rig.plant_step_ms * 1000);
            let report = pacer.run_for(steps, |tick| {
                for _ in 0..tick.slots.max(1) {
                    if lp.plant.now() >= end_t {
                        return ControlFlow::Break(());
                    }
                    if let Err(e) = lp.step(TimeMode::Realtime) {
                        failure = Some(e);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            });
            Some(report.stats)
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let controller = lp.end.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    let controller = controller?;
    let plant = lp.plant;
    let round_trips_us = lp.round_trips_us;
    let mut signals = ColumnTable::new();
    signals.push("time_s", plant.recorder.time_s().to_vec());
    for ((name, _unit), values) in plant.recorder.columns().iter().zip(plant.recorder.values()) {
        signals.push(name.clone(), values.clone());
    }
    Ok(RunSummary {
        rig: rig.name.clone(),
        time: rig.time,
        seed,
        plant_step_ms: rig.plant_step_ms,
        steps: plant.steps(),
        simulated_s: plant.now().as_secs_f64(),
        wall_s,
        frames_to_controller: lp.frames_to,
        frames_from_controller: lp.frames_from,
        p1_telegrams: lp.p1_telegrams,
        bus_load: plant.bus_load.report(plant.now()),
        plant_link: plant.link.stats().to_string(),
        controller_status: plant.link.controller_status().map(|c| {
            format!(
                "state {:?}, E2E rejects {}, meter stale {}, link timeout {}",
                c.state, c.e2e_rejects, c.meter_stale, c.link_timeout
            )
        }),
        last_heartbeat: plant.link.controller_status(),
        applied: plant.applied,
        controller_flags: plant.controller_flags,
        energies: plant.energies,
        pacing,
        round_trip_us: percentiles(round_trips_us),
        controller,
        signals,
    })
}

/// p50, p99 and max of a sample (nearest rank), if any.
fn percentiles(mut v: Vec<u32>) -> Option<[u32; 3]> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Some([rank(0.50), rank(0.99), v[v.len() - 1]])
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentiles(vec![]), None);
        assert_eq!(percentiles(vec![7]), Some([7, 7, 7]));
        let v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentiles(v), Some([50, 99, 100]));
    }
}
