//! Running a house: the [`Session`] (the plant loop for both time modes,
//! over any [`ControllerSide`]), the frame-linked side of rig files
//! ([`FramedEnd`]), and a rig run's summary.

use std::fmt;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reports::csv_table::ColumnTable;
use twin::time::SimTime;

use crate::busload::BusLoadReport;
use crate::pacing::{JitterStats, PacerReport, RealTimePacer};
use crate::plant_link::ControllerStatus;
use crate::rig::config::{ControllerLocation, Rig, TimeMode};
use crate::rig::ends::{
    ControllerEnd, DecisionEntry, DecisionTap, InProcessEnd, LinkedEnd, Reply, UplinkMessage,
};
use crate::rig::error::RigError;
use crate::rig::plant::{AppliedCommands, ControllerFlags, Energies, HousePlant, PlantSide};
use crate::sabotage::Sabotage;
use links::CanFrame;

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

impl RunOptions {
    /// `hours` of the rig's own scenario and seed, signals sampled every
    /// minute, the rig's program, run files in `work_dir`, no candump.
    pub fn new(hours: f64, work_dir: impl Into<PathBuf>) -> Self {
        RunOptions {
            scenario: None,
            hours,
            seed: None,
            sample_s: 60.0,
            program: None,
            work_dir: work_dir.into(),
            candump: None,
        }
    }
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

/// Disturbances the session puts on the plant's side of the links, on any
/// transport: status frames towards the controller lost or corrupted at a
/// rate, a bus-off period (nothing gets through), and P1 telegrams garbled.
/// Seeded; the controller's frames and the lockstep time sync are not
/// touched (a lost sync would stall lockstep by design).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFaults {
    /// Probability that a status frame is lost.
    pub frame_loss: f64,
    /// Probability that a status frame has one payload bit flipped.
    pub frame_corruption: f64,
    /// Until this plant time (ms) the bus is off: every status frame lost.
    pub bus_off_until_ms: u64,
    /// Probability that a P1 telegram has bytes garbled.
    pub telegram_garbling: f64,
}

/// Counts of what [`LinkFaults`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFaultCounts {
    pub frames_lost: u64,
    pub frames_corrupted: u64,
    pub frames_lost_bus_off: u64,
    pub telegrams_garbled: u64,
}

/// What the remote server's side of the rig heard back from the
/// controller, with the plant time (ms) it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkReply {
    pub at_ms: u64,
    pub reply: crate::rig::ends::Reply,
}

/// Where a session's controller is, seen from the plant, and how one plant
/// step exchanges with it: by frames over a link ([`FramedEnd`]), directly
/// in-process ([`DirectEnd`](crate::rig::direct::DirectEnd)), or not at all
/// ([`OwnPolicy`]: the house's fixed policy).
pub trait ControllerSide {
    /// The plant the side steps: the house with its frame link, or alone.
    type Plant: AsRef<HousePlant> + AsMut<HousePlant>;

    /// One plant step and its exchange with the controller.
    fn step(&mut self, plant: &mut Self::Plant) -> Result<(), RigError>;

    /// Writes out what the side keeps in memory (trace files); at the end
    /// of every [`Session::run_until`].
    fn flush(&mut self, plant: &Self::Plant) -> Result<(), RigError> {
        let _ = plant;
        Ok(())
    }
}

/// No controller: the house runs its own fixed policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnPolicy;

impl ControllerSide for OwnPolicy {
    type Plant = HousePlant;

    fn step(&mut self, plant: &mut HousePlant) -> Result<(), RigError> {
        plant.tick();
        Ok(())
    }
}

/// A house run in progress: the plant stepped against a controller side,
/// one plant step at a time, in lockstep or paced against the wall clock.
/// Every house run is one: a rig file's run ([`run`], Gherkin scenarios,
/// frames to a controller end), `maslow twin house` (the house's own
/// policy, or the firmware directly) and each household of a fleet.
pub struct Session<C: ControllerSide = FramedEnd> {
    time: TimeMode,
    plant: C::Plant,
    controller: C,
    pacing: Option<JitterStats>,
    last_pacer_report: Option<PacerReport>,
}

impl<C: ControllerSide> Session<C> {
    /// A session of `plant` against `controller`, in `time` mode.
    pub fn new(plant: C::Plant, controller: C, time: TimeMode) -> Self {
        Session {
            time,
            plant,
            controller,
            pacing: None,
            last_pacer_report: None,
        }
    }

    pub fn now(&self) -> SimTime {
        self.plant.as_ref().now()
    }

    pub fn time_mode(&self) -> TimeMode {
        self.time
    }

    /// The plant (the twin, its link if any, what it recorded).
    pub fn plant(&self) -> &C::Plant {
        &self.plant
    }

    /// The plant, to schedule events or hold a sensor.
    pub fn plant_mut(&mut self) -> &mut C::Plant {
        &mut self.plant
    }

    /// The controller side.
    pub fn controller(&self) -> &C {
        &self.controller
    }

    /// The controller side and the plant, both mutable.
    pub fn parts_mut(&mut self) -> (&mut C, &mut C::Plant) {
        (&mut self.controller, &mut self.plant)
    }

    /// One plant step and its exchange with the controller.
    pub fn step(&mut self) -> Result<(), RigError> {
        self.controller.step(&mut self.plant)
    }

    /// Steps until plant time `until` (as fast as the controller allows in
    /// lockstep, paced against the wall clock in real time), calling
    /// `after_step` after every step.
    pub fn run_until(
        &mut self,
        until: SimTime,
        mut after_step: impl FnMut(&C::Plant),
    ) -> Result<(), RigError> {
        match self.time {
            TimeMode::Lockstep => {
                while self.now() < until {
                    self.step()?;
                    after_step(&self.plant);
                }
                self.controller.flush(&self.plant)
            }
            TimeMode::Realtime => {
                let step_us = self.plant.as_ref().step_us();
                let left_us = until.as_micros().saturating_sub(self.now().as_micros());
                let steps = left_us.div_ceil(step_us.max(1));
                if steps == 0 {
                    return Ok(());
                }
                let pacer = RealTimePacer::new(Duration::from_micros(step_us));
                let mut failure = None;
                let report = pacer.run_for(steps, |tick| {
                    // After an overrun the pacer may ask for several
                    // periods at once (catch-up): the plant advances by all.
                    for _ in 0..tick.slots.max(1) {
                        if self.now() >= until {
                            return ControlFlow::Break(());
                        }
                        if let Err(e) = self.step() {
                            failure = Some(e);
                            return ControlFlow::Break(());
                        }
                        after_step(&self.plant);
                    }
                    ControlFlow::Continue(())
                });
                match self.pacing.as_mut() {
                    Some(p) => p.merge(&report.stats),
                    None => self.pacing = Some(report.stats.clone()),
                }
                self.last_pacer_report = Some(report);
                self.controller.flush(&self.plant)?;
                failure.map_or(Ok(()), Err)
            }
        }
    }

    /// Real-time pacing so far (real-time sessions).
    pub fn pacing(&self) -> Option<&JitterStats> {
        self.pacing.as_ref()
    }

    /// The pacer's report of the last real-time [`Session::run_until`].
    pub fn last_pacer_report(&self) -> Option<&PacerReport> {
        self.last_pacer_report.as_ref()
    }

    /// The plant, once the session is over.
    pub fn into_plant(self) -> C::Plant {
        self.plant
    }
}

/// A controller reached by frames and telegrams: the plant's frame link
/// (in its [`PlantSide`]) to a controller end — the firmware node on the
/// in-process bus, a child process, or a board — with the run's traces,
/// link faults and traffic counts.
pub struct FramedEnd {
    rig_name: String,
    end: Box<dyn ControllerEnd + Send>,
    /// Every frame both ways, candump `-L`, stamped with the run's
    /// virtual time as Unix time (epoch of the scenario).
    trace: Option<TapFile>,
    epoch_s: f64,
    /// The P1 telegrams as sent (after any garbling), back to back as on
    /// the serial line.
    p1_log: Option<TapFile>,
    /// The controller's decision log, CSV.
    decision_log: Option<TapFile>,
    decision_tap: DecisionTap,
    inbox: Vec<CanFrame>,
    frames_to: u64,
    frames_from: u64,
    p1_telegrams: u64,
    /// Lockstep: wall time from handing the step's frames to the controller
    /// end until its acknowledging heartbeat arrived, µs.
    round_trips_us: Vec<u32>,
    started: Instant,
    time: TimeMode,
    faults: LinkFaults,
    fault_counts: LinkFaultCounts,
    fault_rng: rand_chacha::ChaCha8Rng,
    replies: Vec<UplinkReply>,
}

impl Session {
    /// Builds the plant from the scenario and starts the controller end the
    /// rig names.
    pub fn start(rig: &Rig, opts: &RunOptions) -> Result<Session, RigError> {
        use rand::SeedableRng;
        let scenario = opts.scenario.as_deref().unwrap_or(&rig.scenario);
        let seed = opts.seed.or(rig.seed);
        let mut plant = PlantSide::new(scenario, rig.plant_step_ms, seed, opts.sample_s)?;
        plant.sabotage = rig.sabotage.map(Sabotage::new);
        let epoch = plant.epoch_unix_s();
        let fault_seed = plant.house_seed() ^ 0x6c69_6e6b_6661_756c;
        let end: Box<dyn ControllerEnd + Send> = match rig.controller.runs {
            ControllerLocation::InProcess => Box::new(InProcessEnd::new(rig)?),
            _ => Box::new(LinkedEnd::new(
                rig,
                opts.program.as_deref(),
                &opts.work_dir,
            )?),
        };
        let trace = match &opts.candump {
            Some(p) => Some(TapFile::create(p, u64::MAX)?),
            None => None,
        };
        let framed = FramedEnd {
            rig_name: rig.name.clone(),
            end,
            trace,
            epoch_s: epoch,
            p1_log: None,
            decision_log: None,
            decision_tap: DecisionTap::default(),
            inbox: Vec::new(),
            frames_to: 0,
            frames_from: 0,
            p1_telegrams: 0,
            round_trips_us: Vec::new(),
            started: Instant::now(),
            time: rig.time,
            faults: LinkFaults::default(),
            fault_counts: LinkFaultCounts::default(),
            fault_rng: rand_chacha::ChaCha8Rng::seed_from_u64(fault_seed),
            replies: Vec::new(),
        };
        Ok(Session::new(plant, framed, rig.time))
    }

    /// Sets the link faults from now on.
    pub fn set_link_faults(&mut self, faults: LinkFaults) {
        self.controller.faults = faults;
    }

    pub fn link_faults(&self) -> LinkFaults {
        self.controller.faults
    }

    pub fn link_fault_counts(&self) -> LinkFaultCounts {
        self.controller.fault_counts
    }

    /// Sends a message from the remote server to the controller now. Rigs
    /// whose controller end has no server link say so.
    pub fn uplink(&mut self, message: &UplinkMessage) -> Result<(), RigError> {
        let at_ms = self.plant.now_ms();
        if let Some(s) = self.plant.sabotage.as_mut() {
            match message {
                UplinkMessage::Demand(d) => s.on_demand(d),
                UplinkMessage::Dispatch(bytes) => s.on_dispatch(bytes),
                UplinkMessage::ChargeNow(_) => {}
            }
        }
        let replies = self.controller.end.uplink(at_ms, message)?;
        let sabotage = self.plant.sabotage.as_mut();
        self.controller
            .replies
            .extend(as_received(at_ms, replies, sabotage));
        Ok(())
    }

    /// What the controller has answered the server so far.
    pub fn uplink_replies(&self) -> &[UplinkReply] {
        &self.controller.replies
    }

    /// Also writes every CAN frame to `can` (candump `-L`, as
    /// `RunOptions::candump`), the P1 telegrams as sent (after any
    /// garbling) to `p1`, back to back as on the serial line, and the
    /// controller's decision log as CSV (`time_s,what,reason`) to
    /// `decisions` (ends that cannot see the controller's log leave a
    /// header only). `limit_bytes` caps each of them (a long run at full
    /// bus rate writes hundreds of MB): past it the file keeps only the
    /// windows around events ([`Session::mark_event`]), whole lines, and
    /// [`Session::truncated_taps`] names it.
    pub fn tap(
        &mut self,
        can: Option<&std::path::Path>,
        p1: Option<&std::path::Path>,
        decisions: Option<&std::path::Path>,
        limit_bytes: u64,
    ) -> Result<(), RigError> {
        let c = &mut self.controller;
        if let Some(p) = can {
            c.trace = Some(TapFile::create(p, limit_bytes)?);
        }
        if let Some(p) = p1 {
            c.p1_log = Some(TapFile::create(p, limit_bytes)?);
        }
        if let Some(p) = decisions {
            let mut f = TapFile::create(p, limit_bytes)?;
            f.push(b"time_s,what,reason\n")?;
            c.decision_log = Some(f);
        }
        Ok(())
    }

    /// Writes what the taps hold to their files (whole lines). The scenario
    /// harness calls it after every `When`; a run killed later leaves the
    /// files as of this call (or a later automatic flush).
    pub fn flush_taps(&mut self) -> Result<(), RigError> {
        self.controller.flush_taps()
    }

    /// An event in the scenario now (a fault, a power cut, a signal): a
    /// tap past its size limit keeps the [`TAP_BEFORE_EVENT_S`] before it
    /// and the [`TAP_AFTER_EVENT_S`] after it, so the traces show what the
    /// steps judge.
    pub fn mark_event(&mut self) -> Result<(), RigError> {
        let now_s = self.now().as_secs_f64();
        let c = &mut self.controller;
        for tap in [&mut c.trace, &mut c.p1_log, &mut c.decision_log]
            .into_iter()
            .flatten()
        {
            tap.open_event_window(now_s)?;
        }
        Ok(())
    }

    /// Tap files that reached their size limit, with the plant time (s) of
    /// the first thing left out.
    pub fn truncated_taps(&self) -> Vec<(PathBuf, f64)> {
        let c = &self.controller;
        [&c.trace, &c.p1_log, &c.decision_log]
            .into_iter()
            .flatten()
            .filter_map(|t| t.truncated_at_s.map(|at| (t.path.clone(), at)))
            .collect()
    }

    /// Decisions that fell out of the controller's bounded log before the
    /// session read them.
    pub fn decisions_missed(&self) -> u64 {
        self.controller.decision_tap.missed
    }

    /// CAN frames to and from the controller, and P1 telegrams, so far.
    pub fn traffic(&self) -> (u64, u64, u64) {
        let c = &self.controller;
        (c.frames_to, c.frames_from, c.p1_telegrams)
    }

    /// Stops the controller end and sums the run up.
    pub fn finish(mut self) -> Result<RunSummary, RigError> {
        let wall_s = self.controller.started.elapsed().as_secs_f64();
        self.flush_taps()?;
        let controller = self.controller.end.finish()?;
        let c = self.controller;
        let plant = self.plant;
        Ok(RunSummary {
            rig: c.rig_name,
            time: self.time,
            seed: plant.house_seed(),
            plant_step_ms: plant.step_ms(),
            steps: plant.steps(),
            simulated_s: plant.now().as_secs_f64(),
            wall_s,
            frames_to_controller: c.frames_to,
            frames_from_controller: c.frames_from,
            p1_telegrams: c.p1_telegrams,
            bus_load: plant.bus_load.report(plant.now()),
            plant_link: plant.link.stats().to_string(),
            controller_status: plant.link.controller_status().map(|c| {
                format!(
                    "state {:?}, E2E rejects {}, meter stale {}, link timeout {}",
                    c.state, c.e2e_rejects, c.meter_stale, c.link_timeout
                )
            }),
            last_heartbeat: plant.link.controller_status(),
            signals: plant.plant.signals_table().unwrap_or_default(),
            applied: plant.plant.applied,
            controller_flags: plant.controller_flags,
            energies: plant.plant.energies,
            pacing: self.pacing,
            round_trip_us: percentiles(c.round_trips_us),
            controller,
        })
    }
}

impl FramedEnd {
    fn flush_taps(&mut self) -> Result<(), RigError> {
        for t in [&mut self.trace, &mut self.p1_log, &mut self.decision_log]
            .into_iter()
            .flatten()
        {
            t.flush()?;
        }
        Ok(())
    }

    fn trace(&mut self, now: SimTime, frames: &[CanFrame]) -> Result<(), RigError> {
        if let Some(w) = self.trace.as_mut() {
            let now_s = now.as_secs_f64();
            let at =
                links::candump::Timestamp::from_secs_f64(self.epoch_s + now_s).unwrap_or_default();
            for f in frames {
                w.write_frame(at, f, now_s)?;
            }
        }
        Ok(())
    }

    fn tap_step(&mut self, now: SimTime, telegrams: &[Vec<u8>]) -> Result<(), RigError> {
        let now_s = now.as_secs_f64();
        if let Some(w) = self.p1_log.as_mut() {
            for t in telegrams {
                w.write_line(t, now_s)?;
            }
        }
        if let Some(w) = self.decision_log.as_mut() {
            for d in self.end.take_decisions(&mut self.decision_tap) {
                w.write_line(decision_csv(&d).as_bytes(), now_s)?;
            }
        }
        Ok(())
    }
    /// Applies the link faults to the step's outgoing frames and telegrams.
    fn disturb(&mut self, t_ms: u64, frames: &mut Vec<CanFrame>, telegrams: &mut [Vec<u8>]) {
        use rand::Rng;
        let f = self.faults;
        if f == LinkFaults::default() {
            return;
        }
        if t_ms < f.bus_off_until_ms {
            self.fault_counts.frames_lost_bus_off += frames.len() as u64;
            frames.clear();
        }
        let rng = &mut self.fault_rng;
        let counts = &mut self.fault_counts;
        frames.retain_mut(|frame| {
            if f.frame_loss > 0.0 && rng.gen_bool(f.frame_loss.clamp(0.0, 1.0)) {
                counts.frames_lost += 1;
                return false;
            }
            if f.frame_corruption > 0.0
                && rng.gen_bool(f.frame_corruption.clamp(0.0, 1.0))
                && !frame.data().is_empty()
            {
                let mut data = frame.data().to_vec();
                let bit = rng.gen_range(0..data.len() * 8);
                data[bit / 8] ^= 1 << (bit % 8);
                if let Ok(c) = CanFrame::new(frame.id(), &data) {
                    *frame = c;
                    counts.frames_corrupted += 1;
                }
            }
            true
        });
        if f.telegram_garbling > 0.0 {
            for t in telegrams.iter_mut() {
                // Garble the body (between the header line and the `!`
                // before the CRC): the telegram still frames, and fails its
                // CRC, as line noise inside a telegram does.
                let body_start = t.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
                let body_end = t.iter().rposition(|&b| b == b'!').unwrap_or(t.len());
                if body_end > body_start + 1 && rng.gen_bool(f.telegram_garbling.clamp(0.0, 1.0)) {
                    for _ in 0..3 {
                        let k = rng.gen_range(body_start..body_end);
                        if t[k].is_ascii_digit() {
                            t[k] = b'0' + (t[k] - b'0' + 1) % 10;
                        }
                    }
                    counts.telegrams_garbled += 1;
                }
            }
        }
    }
}

impl ControllerSide for FramedEnd {
    type Plant = PlantSide;

    /// One plant step, its frames and telegrams out (through the link
    /// faults), the controller's frames back.
    fn step(&mut self, plant: &mut PlantSide) -> Result<(), RigError> {
        plant.step();
        let now = plant.now();
        let t_ms = plant.now_ms();
        let mut frames = std::mem::take(&mut plant.outbox);
        let mut telegrams = std::mem::take(&mut plant.p1_outbox);
        self.disturb(t_ms, &mut frames, &mut telegrams);
        self.inbox.clear();
        match self.time {
            TimeMode::Lockstep => {
                let sync = plant.sync_frame();
                self.trace(now, &frames)?;
                self.trace(now, std::slice::from_ref(&sync))?;
                let sent = Instant::now();
                self.end
                    .exchange_lockstep(t_ms, &frames, &telegrams, &sync, &mut self.inbox)?;
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                self.round_trips_us.push(us);
                self.frames_to += frames.len() as u64 + 1;
            }
            TimeMode::Realtime => {
                self.trace(now, &frames)?;
                self.end
                    .exchange_realtime(t_ms, &frames, &telegrams, &mut self.inbox)?;
                self.frames_to += frames.len() as u64;
            }
        }
        self.p1_telegrams += telegrams.len() as u64;
        self.tap_step(now, &telegrams)?;
        self.frames_from += self.inbox.len() as u64;
        let inbox = std::mem::take(&mut self.inbox);
        self.trace(now, &inbox)?;
        plant.receive(&inbox);
        self.inbox = inbox;
        let replies = self.end.take_replies();
        let sabotage = plant.sabotage.as_mut();
        self.replies.extend(as_received(t_ms, replies, sabotage));
        Ok(())
    }

    fn flush(&mut self, _plant: &PlantSide) -> Result<(), RigError> {
        self.flush_taps()
    }
}

/// The controller's answers at `at_ms` as the server receives them
/// (through the saboteur, if any).
fn as_received(
    at_ms: u64,
    replies: Vec<Reply>,
    mut sabotage: Option<&mut Sabotage>,
) -> impl Iterator<Item = UplinkReply> + '_ {
    replies.into_iter().map(move |mut reply| {
        if let Some(s) = sabotage.as_deref_mut() {
            match &mut reply {
                Reply::DemandAck(a) => s.on_ack(at_ms, a),
                Reply::DispatchVerdict(v) => s.on_verdict(at_ms, v),
                Reply::PeakReport(p) => s.on_peak_report(p),
            }
        }
        UplinkReply { at_ms, reply }
    })
}

/// A decision as a CSV row (`time_s,what,reason`, quoted).
fn decision_csv(d: &DecisionEntry) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!(
        "{:.3},{},{}\n",
        d.at_ms as f64 / 1000.0,
        q(&d.what),
        q(&d.reason)
    )
}

/// A file a session appends to as it runs: whole lines gathered in memory
/// and written with one `write_all` when [`FLUSH_BYTES`] have gathered (or
/// on [`Session::flush_taps`]), so a kill leaves whole lines; it stops at
/// `limit` bytes.
struct TapFile {
    file: std::fs::File,
    path: PathBuf,
    buf: Vec<u8>,
    written: u64,
    limit: u64,
    truncated_at_s: Option<f64>,
    /// Past the limit: the last [`TAP_BEFORE_EVENT_S`] of lines (plant
    /// time s, line), written out if an event comes.
    recent: std::collections::VecDeque<(f64, HeldLine)>,
    /// Past the limit: an event's window is open until then (plant s).
    window_until_s: Option<f64>,
}

/// A line a full tap holds in case an event comes. A CAN frame is held as
/// the frame and formatted only if it is written: past the limit nearly
/// every frame of a long run is held and dropped a minute later, and
/// formatting them all was a fifth of a scenario's run time.
enum HeldLine {
    Bytes(Vec<u8>),
    Frame(links::candump::Timestamp, CanFrame),
}

impl HeldLine {
    fn render(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            HeldLine::Bytes(b) => b.as_slice().into(),
            HeldLine::Frame(at, f) => candump_line(*at, f).into_bytes().into(),
        }
    }
}

/// A frame's line in the session's CAN trace (candump `-L`, interface
/// `can0`), newline included.
fn candump_line(at: links::candump::Timestamp, frame: &CanFrame) -> String {
    let mut line = links::candump::format_line(at, "can0", frame);
    line.push('\n');
    line
}

/// Bytes gathered before a tap writes them out on its own.
const FLUSH_BYTES: usize = 256 * 1024;

/// Once a tap has reached its size limit it keeps only the windows around
/// the scenario's events ([`Session::mark_event`]): this long before each,
/// s …
pub const TAP_BEFORE_EVENT_S: f64 = 60.0;
/// … and this long after, s.
pub const TAP_AFTER_EVENT_S: f64 = 300.0;
/// The event windows may take a tap to this many times its size limit;
/// past that it stops.
const TAP_EVENT_ALLOWANCE: u64 = 4;

impl TapFile {
    fn create(path: &std::path::Path, limit: u64) -> Result<Self, RigError> {
        let file = std::fs::File::create(path).map_err(|source| RigError::Io {
            what: format!("creating {}", path.display()),
            source,
        })?;
        Ok(TapFile {
            file,
            path: path.to_path_buf(),
            buf: Vec::with_capacity(FLUSH_BYTES),
            written: 0,
            limit,
            truncated_at_s: None,
            recent: std::collections::VecDeque::new(),
            window_until_s: None,
        })
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), RigError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn write_line(&mut self, line: &[u8], now_s: f64) -> Result<(), RigError> {
        if self.truncated_at_s.is_none() {
            if self.fits(line.len(), self.limit) {
                return self.push(line);
            }
            self.truncated_at_s = Some(now_s);
        }
        // Past the limit: only what lies in an event's window.
        if self.in_event_window(now_s) {
            return self.push_within_allowance(line);
        }
        self.hold(now_s, HeldLine::Bytes(line.to_vec()));
        Ok(())
    }

    /// [`TapFile::write_line`] for a CAN frame, formatted only if written.
    fn write_frame(
        &mut self,
        at: links::candump::Timestamp,
        frame: &CanFrame,
        now_s: f64,
    ) -> Result<(), RigError> {
        if self.truncated_at_s.is_some() && !self.in_event_window(now_s) {
            self.hold(now_s, HeldLine::Frame(at, *frame));
            return Ok(());
        }
        self.write_line(candump_line(at, frame).as_bytes(), now_s)
    }

    fn in_event_window(&self, now_s: f64) -> bool {
        self.window_until_s.is_some_and(|until| now_s <= until)
    }

    /// Past the limit, outside an event's window: keeps the line for
    /// [`TAP_BEFORE_EVENT_S`] in case an event comes.
    fn hold(&mut self, now_s: f64, line: HeldLine) {
        self.window_until_s = None;
        self.recent.push_back((now_s, line));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| *t < now_s - TAP_BEFORE_EVENT_S)
        {
            self.recent.pop_front();
        }
    }

    /// Whether `len` more bytes keep the file within `limit`.
    fn fits(&self, len: usize, limit: u64) -> bool {
        self.written + (self.buf.len() + len) as u64 <= limit
    }

    fn push_within_allowance(&mut self, line: &[u8]) -> Result<(), RigError> {
        if self.fits(line.len(), self.limit.saturating_mul(TAP_EVENT_ALLOWANCE)) {
            self.push(line)?;
        }
        Ok(())
    }

    /// An event at `now_s`: past the limit, the minute before it (kept in
    /// `recent`) is written and the next [`TAP_AFTER_EVENT_S`] will be.
    fn open_event_window(&mut self, now_s: f64) -> Result<(), RigError> {
        if self.truncated_at_s.is_none() {
            return Ok(());
        }
        for (t, line) in std::mem::take(&mut self.recent) {
            if t >= now_s - TAP_BEFORE_EVENT_S {
                self.push_within_allowance(&line.render())?;
            }
        }
        self.window_until_s = Some(now_s + TAP_AFTER_EVENT_S);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), RigError> {
        use std::io::Write;
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(|source| RigError::Io {
                what: format!("writing {}", self.path.display()),
                source,
            })?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
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
    let mut session = Session::start(rig, opts)?;
    let end_t = SimTime::from_secs_f64(opts.hours * 3600.0);
    if let Err(e) = session.run_until(end_t, |_| {}) {
        // Stop the controller (a child process) before reporting.
        let _ = session.controller.end.finish();
        return Err(e);
    }
    session.finish()
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
    use super::{percentiles, TapFile, TAP_AFTER_EVENT_S, TAP_BEFORE_EVENT_S};

    /// A tap of 4 KiB fed a line a second for `until_s` s, with events at
    /// `events`; the seconds it kept.
    fn kept_seconds(until_s: u32, events: &[u32]) -> Vec<u32> {
        let dir = std::env::temp_dir().join(format!("maslow-tap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("tap-{until_s}-{}.log", events.len()));
        let mut tap = TapFile::create(&path, 4096).unwrap();
        for t in 0..until_s {
            if events.contains(&t) {
                tap.open_event_window(f64::from(t)).unwrap();
            }
            tap.write_line(format!("{t:07}\n").as_bytes(), f64::from(t))
                .unwrap();
        }
        tap.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        text.lines().map(|l| l.parse().unwrap()).collect()
    }

    /// A full CAN trace holds frames unformatted; what it writes is the
    /// same bytes as formatted lines would have been.
    #[test]
    fn held_frames_are_written_as_their_lines() {
        let dir = std::env::temp_dir().join(format!("maslow-tapf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |as_frames: bool| {
            let path = dir.join(format!("frames-{as_frames}.log"));
            let mut tap = TapFile::create(&path, 2048).unwrap();
            for t in 0..600u32 {
                if t == 400 {
                    tap.open_event_window(f64::from(t)).unwrap();
                }
                let at = links::candump::Timestamp::from_secs_f64(f64::from(t)).unwrap();
                let f = links::CanFrame::standard(0x123, &t.to_be_bytes()).unwrap();
                if as_frames {
                    tap.write_frame(at, &f, f64::from(t)).unwrap();
                } else {
                    tap.write_line(super::candump_line(at, &f).as_bytes(), f64::from(t))
                        .unwrap();
                }
            }
            tap.flush().unwrap();
            std::fs::read_to_string(&path).unwrap()
        };
        let (frames, lines) = (write(true), write(false));
        assert_eq!(frames, lines);
        // The minute before the event, written when it came.
        assert!(frames.contains("(0000000340.000000) can0 123#00000154\n"));
        assert!(!frames.contains("(0000000339.000000)"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_tap_keeps_the_windows_around_events() {
        // 4096 B / 8 B a line: the first 512 s whole.
        let kept = kept_seconds(3000, &[1000, 2000]);
        assert!(kept[..512].iter().copied().eq(0..512));
        let before = TAP_BEFORE_EVENT_S as u32;
        let after = TAP_AFTER_EVENT_S as u32;
        for event in [1000, 2000] {
            assert!(kept.contains(&(event - before)), "{event}");
            assert!(kept.contains(&event) && kept.contains(&(event + after)));
            assert!(!kept.contains(&(event - before - 1)));
            assert!(!kept.contains(&(event + after + 1)));
        }
        assert!(!kept.contains(&700));
        // An event before the limit changes nothing.
        assert_eq!(kept_seconds(100, &[50]), (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn event_windows_stop_at_four_times_the_limit() {
        let events: Vec<u32> = (1..40).map(|k| k * 1000).collect();
        let kept = kept_seconds(40_000, &events);
        assert_eq!(kept.len() * 8, 4 * 4096);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentiles(vec![]), None);
        assert_eq!(percentiles(vec![7]), Some([7, 7, 7]));
        let v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentiles(v), Some([50, 99, 100]));
    }
}
