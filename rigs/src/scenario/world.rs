//! The World of a Gherkin scenario: the rig it runs on, the configuration
//! its `Given` steps build, the running session its `When` steps drive,
//! the capture its `Then` steps judge, and a fleet scenario's state
//! ([`FleetState`], which the `@fleet` steps fill in and judge).
//!
//! The steps use this module; it uses none of them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use reports::invariants::{self, InvariantLimits};
use reports::scenario::ScenarioCapture;
use twin::house::HouseEvent;
use twin::time::SimTime;

use crate::fleet::run::RunOutcome;
use crate::fleet::scenario::FleetScenario;
use crate::instrument::probe::VirtualProbe;
use crate::instrument::sigrok::SigrokInstrument;
use crate::instrument::{Instrument, TimeSeries};
use crate::plant_link::ControllerStatus;
use crate::rig::plant::AppliedCommands;
use crate::rig::{LinkFaults, Rig, RunOptions, Session, UplinkMessage, UplinkReply};
use crate::scenario::setup::{HouseView, Setup};

/// What every scenario of a run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rig_path: PathBuf,
    pub rig: Arc<Rig>,
    /// `--seed`: every scenario runs with this seed.
    pub seed: Option<u64>,
    /// Where scenario directories go.
    pub report_dir: PathBuf,
    /// Size cap of each trace file of a scenario (CAN, P1, decisions).
    pub trace_limit_bytes: u64,
    /// Capture rate of the virtual probe, Hz.
    pub probe_rate_hz: f64,
}

static SETTINGS: OnceLock<RwLock<Option<Arc<Settings>>>> = OnceLock::new();

/// Sets the settings for the scenarios that start from now on.
pub fn install_settings(s: Settings) {
    let lock = SETTINGS.get_or_init(|| RwLock::new(None));
    if let Ok(mut g) = lock.write() {
        *g = Some(Arc::new(s));
    }
}

fn settings() -> Option<Arc<Settings>> {
    SETTINGS.get()?.read().ok()?.clone()
}

/// The seed a scenario runs with: `--seed` if given, else a stable hash of
/// its feature file's name and its own name (so adding scenarios elsewhere
/// does not change it).
pub fn scenario_seed(seed: Option<u64>, feature_file: &str, scenario: &str) -> u64 {
    if let Some(s) = seed {
        return s;
    }
    let file = std::path::Path::new(feature_file)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // FNV-1a, 64 bit.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file.bytes().chain([0u8]).chain(scenario.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h % 1_000_000_000
}

/// A file- and URL-safe name.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(80).collect()
}

/// An event of the scenario, for messages and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at_s: f64,
    pub label: String,
}

/// A `When` action, kept so a baseline can replay the scenario.
#[derive(Debug, Clone)]
pub enum Action {
    RunUntil(SimTime),
    House(HouseEvent),
    Uplink(UplinkMessage),
    Faults(LinkFaults),
    HoldSensor(String),
    /// A sensor reported at a value.
    HoldSensorAt(String, f64),
    ReleaseSensors,
}

/// A running scenario: session, probe, and what happened. `Send`, so the
/// simulation runs on a worker thread while other scenarios run.
pub struct Sim {
    pub session: Session,
    pub probe: VirtualProbe,
    pub dir: PathBuf,
    /// Heartbeat flags as measured on the bus (time, status).
    pub heartbeats: Vec<(f64, ControllerStatus)>,
}

impl Sim {
    /// Steps to `until`, sampling the probe and the controller's heartbeat.
    pub fn advance(&mut self, until: SimTime) -> Result<(), String> {
        let probe = &mut self.probe;
        let beats = &mut self.heartbeats;
        self.session
            .run_until(until, |plant| {
                let now_s = plant.now().as_secs_f64();
                probe.observe(now_s, plant.signals());
                if let Some(c) = plant.reported_status() {
                    let changed = beats.last().is_none_or(|(_, l)| {
                        l.state != c.state
                            || l.link_timeout != c.link_timeout
                            || l.meter_stale != c.meter_stale
                            || l.e2e_rejects != c.e2e_rejects
                    });
                    if changed {
                        beats.push((now_s, c));
                    }
                }
            })
            .map_err(|e| e.to_string())
    }

    pub fn apply(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::RunUntil(t) => self.advance(*t),
            Action::House(e) => {
                let now = self.session.now();
                self.session.plant_mut().schedule(now, e.clone());
                Ok(())
            }
            Action::Uplink(m) => self.session.uplink(m).map_err(|e| e.to_string()),
            Action::Faults(f) => {
                self.session.set_link_faults(*f);
                Ok(())
            }
            Action::HoldSensor(s) => self
                .session
                .plant_mut()
                .hold_sensor(s)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Action::HoldSensorAt(s, v) => self
                .session
                .plant_mut()
                .hold_sensor_at(s, *v)
                .map_err(|e| e.to_string()),
            Action::ReleaseSensors => {
                self.session.plant_mut().release_sensors();
                Ok(())
            }
        }
    }
}

/// A fleet scenario being set up by `@fleet` steps, then its run's outcome.
pub struct FleetState {
    /// The scenario (its faults are added by `Given` steps).
    pub scenario: FleetScenario,
    /// The run, once `When the fleet runs until …` ran.
    pub outcome: Option<RunOutcome>,
}

/// What a session's bus, plant and uplink carried, recorded: without a
/// session the `Then` steps judge this (their own tests, beside
/// [`MaslowWorld::recorded_until_s`]), each list as the session keeps it.
#[derive(Debug, Clone, Default)]
pub struct RecordedSession {
    /// The controller's heartbeats as received on the bus ([`Sim::heartbeats`]).
    pub heartbeats: Vec<(f64, ControllerStatus)>,
    /// The controller's replies to the remote server
    /// ([`Session::uplink_replies`]).
    pub uplink_replies: Vec<UplinkReply>,
    /// The commands as the plant applied them, change by change.
    pub applied: Vec<AppliedCommands>,
}

/// The scenario's state.
#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct MaslowWorld {
    pub settings: Option<Arc<Settings>>,
    pub seed: u64,
    pub name: String,
    /// The scenario's tags with their feature's and rule's, without `@`.
    pub tags: Vec<String>,
    pub setup: Option<Setup>,
    pub setup_error: Option<String>,
    pub sim: Option<Box<Sim>>,
    pub actions: Vec<Action>,
    pub markers: Vec<Marker>,
    /// The last `When` event's time, s.
    pub last_event_s: Option<f64>,
    /// The power cut: start and (if it returned) end, s.
    pub cut: Option<(f64, Option<f64>)>,
    pub next_signal_id: u32,
    /// Capture so far (the probe's series, by signal name).
    pub capture: BTreeMap<String, TimeSeries>,
    /// Baselines already run, by kind.
    pub baselines: BTreeMap<String, BTreeMap<String, TimeSeries>>,
    /// The rig's bench instruments (sigrok devices), capturing while time
    /// passes; their series replace the probe's for the signals they map.
    pub bench: Vec<SigrokInstrument>,
    /// What the `Then` steps checked, for the report's plots.
    pub assertions: Vec<reports::scenario::Assertion>,
    /// A fleet scenario (`@fleet` steps) and its run.
    pub fleet: Option<Box<FleetState>>,
    /// Without a session: how far a recorded capture reaches, s (the
    /// `Then` steps judge a recording in their own tests).
    pub recorded_until_s: Option<f64>,
    /// Without a session: what its bus, plant and uplink carried (the
    /// `Then` steps judge a recording in their own tests).
    pub recorded_session: Option<RecordedSession>,
}

impl fmt::Debug for MaslowWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaslowWorld")
            .field("scenario", &self.name)
            .field("seed", &self.seed)
            .field("markers", &self.markers)
            .finish_non_exhaustive()
    }
}

impl MaslowWorld {
    pub fn new() -> Self {
        let settings = settings();
        let (setup, setup_error) = match settings.as_deref() {
            Some(s) => match Setup::from_rig(&s.rig) {
                Ok(x) => (Some(x), None),
                Err(e) => (None, Some(e)),
            },
            None => (
                None,
                Some("no rig: the harness did not install settings".into()),
            ),
        };
        MaslowWorld {
            settings,
            seed: 0,
            name: String::new(),
            tags: Vec::new(),
            setup,
            setup_error,
            sim: None,
            actions: Vec::new(),
            markers: Vec::new(),
            last_event_s: None,
            cut: None,
            next_signal_id: 1,
            capture: BTreeMap::new(),
            baselines: BTreeMap::new(),
            bench: Vec::new(),
            assertions: Vec::new(),
            fleet: None,
            recorded_until_s: None,
            recorded_session: None,
        }
    }

    /// Called before the first step: the scenario's name and seed.
    pub fn begin(&mut self, feature_file: &str, scenario: &str, tags: Vec<String>) {
        let forced = self.settings.as_ref().and_then(|s| s.seed);
        self.seed = scenario_seed(forced, feature_file, scenario);
        self.name = scenario.to_owned();
        self.tags = tags;
    }

    /// The invariants' limits for this scenario's house and controller:
    /// the pack's cell limits and the reserve the controller is configured
    /// to hold ([`InvariantLimits::default`] for the rest).
    fn invariant_limits(&self, dir: &std::path::Path) -> InvariantLimits {
        let mut limits = InvariantLimits::default();
        if let Ok(pack) = twin::battery::params::load_battery_pack_params(&dir.join("pack.toml")) {
            let cell = pack.cell_limits();
            limits.cell_voltage_min_v = cell.voltage_min_v;
            limits.cell_voltage_max_v = cell.voltage_max_v;
            limits.cell_temperature_max_c = cell.temperature_max_c;
        }
        if let Some(setup) = &self.setup {
            if let Ok(cfg) = setup.controller_view::<firmware::ControllerConfig>() {
                limits.reserve_soc = Some(f64::from(cfg.scheduling.reserve_soc));
            }
        }
        limits
    }

    /// Judges the always-on invariants on the capture (a scenario that ran
    /// a house), into `capture`: verdicts, and for each violation its
    /// assertion and derived signal, so the plots show it.
    fn judge_invariants(&self, dir: &std::path::Path, capture: &mut ScenarioCapture) {
        if capture.signals.is_empty() {
            return;
        }
        let allowed: Vec<String> = self
            .tags
            .iter()
            .filter_map(|t| t.strip_prefix("allows-").map(str::to_owned))
            .collect();
        let report = invariants::check(&capture.signals, &self.invariant_limits(dir), &allowed);
        for v in &report.verdicts {
            if v.name == "chatter" {
                capture
                    .figures
                    .insert("max_switches_per_min".into(), v.worst);
            }
        }
        capture.invariants = report.verdicts;
        capture.assertions.extend(report.assertions);
        capture.signals.extend(report.derived);
    }

    pub fn settings(&self) -> Result<&Settings, String> {
        self.settings
            .as_deref()
            .ok_or_else(|| "no rig: the harness did not install settings".into())
    }

    /// The configuration, for `Given` steps (before time starts).
    pub fn setup_mut(&mut self) -> Result<&mut Setup, String> {
        if self.sim.is_some() {
            return Err(
                "the house is already running: put `Given` steps before the first `When`".into(),
            );
        }
        if let Some(e) = &self.setup_error {
            return Err(e.clone());
        }
        self.setup.as_mut().ok_or_else(|| "no setup".into())
    }

    /// The house as the steps read it (from the configuration so far).
    pub fn house(&self) -> Result<HouseView, String> {
        if let Some(e) = &self.setup_error {
            return Err(e.clone());
        }
        self.setup.as_ref().ok_or("no setup")?.house_view()
    }

    pub fn dir(&self) -> Result<PathBuf, String> {
        Ok(self.settings()?.report_dir.join("scenarios").join(format!(
            "{}-{}",
            slug(&self.name),
            self.seed
        )))
    }

    /// Builds a session from the setup (`with_controller: false` runs the
    /// house on its own, the assembly switched off).
    pub fn build(&self, dir: &std::path::Path) -> Result<Sim, String> {
        let settings = self.settings()?;
        let setup = self.setup.as_ref().ok_or("no setup")?;
        let (house, controller) = setup.write(dir)?;
        let mut rig = (*settings.rig).clone();
        rig.scenario = house;
        rig.controller.config = Some(controller);
        let opts = RunOptions {
            scenario: None,
            hours: 24.0,
            seed: Some(self.seed),
            sample_s: 60.0,
            program: None,
            work_dir: dir.to_path_buf(),
            // The candump trace flushes every frame: off in scenarios until
            // the report keeps it (a day is ~9 M frames).
            candump: None,
        };
        let session = Session::start(&rig, &opts)
            .map_err(|e| format!("starting the rig on {}: {e}", setup.sources()))?;
        let mut probe = VirtualProbe::new(
            "probe",
            session.plant().signals(),
            settings.rig.probe.clone(),
            self.seed ^ 0x0070_726f_6265,
        );
        // What `maslow twin house` records, plus every circuit's and socket's.
        let mut names: Vec<String> = twin::house::DEFAULT_RECORDED
            .iter()
            .map(|s| s.to_string())
            .collect();
        for (_, n, _, _) in session.plant().signals().iter() {
            if (n.starts_with("circuit_") || n.starts_with("socket_"))
                && (n.ends_with("_power_w") || n.ends_with("_voltage_v"))
            {
                names.push(n.to_owned());
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        probe
            .start(&refs, settings.probe_rate_hz)
            .map_err(|e| e.to_string())?;
        probe.observe(0.0, session.plant().signals());
        Ok(Sim {
            session,
            probe,
            dir: dir.to_path_buf(),
            heartbeats: Vec::new(),
        })
    }

    /// The running session (started on first use), tapped: its CAN trace
    /// (`can.log`, candump `-L`), P1 telegrams (`p1.log`) and the
    /// controller's decisions (`decisions.csv`) go into the scenario's
    /// directory as it runs.
    pub fn sim(&mut self) -> Result<&mut Sim, String> {
        if self.sim.is_none() {
            let dir = self.dir()?;
            let mut sim = self.build(&dir)?;
            let limit = self.settings()?.trace_limit_bytes;
            sim.session
                .tap(
                    Some(&dir.join("can.log")),
                    Some(&dir.join("p1.log")),
                    Some(&dir.join("decisions.csv")),
                    limit,
                )
                .map_err(|e| format!("opening the scenario's traces: {e}"))?;
            self.sim = Some(Box::new(sim));
        }
        self.sim.as_deref_mut().ok_or_else(|| "no session".into())
    }

    /// A recorded session's, when there is no session (and one was recorded).
    fn recorded(&self) -> Option<&RecordedSession> {
        self.recorded_session
            .as_ref()
            .filter(|_| self.sim.is_none())
    }

    /// The controller's heartbeat flags as measured on the bus so far:
    /// the session's (started on first use), or a recorded session's.
    pub fn heartbeats(&mut self) -> Result<Vec<(f64, ControllerStatus)>, String> {
        if let Some(r) = self.recorded() {
            return Ok(r.heartbeats.clone());
        }
        Ok(self.sim()?.heartbeats.clone())
    }

    /// What the remote server has heard back from the controller so far:
    /// the session's (started on first use), or a recorded session's.
    pub fn uplink_replies(&mut self) -> Result<Vec<UplinkReply>, String> {
        if let Some(r) = self.recorded() {
            return Ok(r.uplink_replies.clone());
        }
        Ok(self.sim()?.session.uplink_replies().to_vec())
    }

    /// The commands the plant applied so far, change by change: the
    /// session's (started on first use), or a recorded session's.
    pub fn applied(&mut self) -> Result<Vec<AppliedCommands>, String> {
        if let Some(r) = self.recorded() {
            return Ok(r.applied.clone());
        }
        Ok(self.sim()?.session.plant().applied.clone())
    }

    pub fn now_s(&self) -> f64 {
        self.sim
            .as_ref()
            .map_or(self.recorded_until_s.unwrap_or(0.0), |s| {
                s.session.now().as_secs_f64()
            })
    }

    /// Applies an action now and remembers it for baselines.
    pub fn act(&mut self, action: Action) -> Result<(), String> {
        self.sim()?.apply(&action)?;
        self.actions.push(action);
        Ok(())
    }

    /// An event in the scenario now: a marker on the plots, the window the
    /// `since then` steps judge from, and a window the traces keep.
    pub fn mark(&mut self, label: impl Into<String>) {
        let at_s = self.now_s();
        let traced = self.sim.as_mut().map(|s| s.session.mark_event());
        self.markers.push(Marker {
            at_s,
            label: label.into(),
        });
        if let Some(Err(e)) = traced {
            self.markers.push(Marker {
                at_s,
                label: format!("traces: {e}"),
            });
        }
        self.last_event_s = Some(at_s);
    }

    /// Opens the rig's bench instruments (once) and starts a capture of
    /// every signal they map.
    fn start_bench(&mut self) -> Result<(), String> {
        let settings = self.settings()?.clone();
        if self.bench.is_empty() {
            for cfg in &settings.rig.instruments {
                self.bench
                    .push(SigrokInstrument::open(cfg.clone()).map_err(|e| e.to_string())?);
            }
        }
        for inst in &mut self.bench {
            let names: Vec<String> = inst.signals().into_iter().map(|s| s.name).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            inst.start(&refs, settings.probe_rate_hz)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Stops the bench captures and puts their series (shifted to the
    /// scenario's clock, `t0_s` = when the capture started) into the capture.
    fn stop_bench(&mut self, t0_s: f64) -> Result<(), String> {
        for inst in &mut self.bench {
            for mut s in inst.stop().map_err(|e| e.to_string())? {
                for t in &mut s.t_s {
                    *t += t0_s;
                }
                let entry = self
                    .capture
                    .entry(s.name.clone())
                    .or_insert_with(|| TimeSeries::new(s.name.clone(), s.unit.clone()));
                // A bench instrument's reading wins over the probe's.
                if entry.unit != s.unit {
                    *entry = TimeSeries::new(s.name.clone(), s.unit.clone());
                }
                entry.t_s.retain(|t| *t < t0_s);
                entry.values.truncate(entry.t_s.len());
                entry.t_s.extend_from_slice(&s.t_s);
                entry.values.extend_from_slice(&s.values);
            }
        }
        Ok(())
    }

    /// Runs the session to `until` on a worker thread.
    pub async fn advance_to(&mut self, until: SimTime) -> Result<(), String> {
        self.sim()?;
        let t0_s = self.now_s();
        self.start_bench()?;
        let mut sim = self.sim.take().ok_or("no session")?;
        let (tx, rx) = futures::channel::oneshot::channel();
        std::thread::Builder::new()
            .name("scenario".into())
            .spawn(move || {
                let r = sim.advance(until);
                let _ = tx.send((sim, r));
            })
            .map_err(|e| format!("cannot start a worker thread: {e}"))?;
        let (sim, r) = rx
            .await
            .map_err(|_| "the simulation thread died (a panic in the rig)".to_string())?;
        self.sim = Some(sim);
        r?;
        self.actions.push(Action::RunUntil(until));
        self.refresh_capture();
        self.stop_bench(t0_s)?;
        // A run killed later still leaves this scenario's signals so far
        // (its traces were flushed at the end of the run above).
        self.write_capture();
        Ok(())
    }

    /// Moves what the probe has captured since the last call into the
    /// capture (the probe keeps capturing).
    pub fn refresh_capture(&mut self) {
        let Some(sim) = self.sim.as_mut() else {
            return;
        };
        for s in sim.probe.drain() {
            match self.capture.get_mut(&s.name) {
                Some(c) => {
                    c.t_s.extend_from_slice(&s.t_s);
                    c.values.extend_from_slice(&s.values);
                }
                None => {
                    self.capture.insert(s.name.clone(), s);
                }
            }
        }
    }

    /// A captured signal (the probe's series so far).
    pub fn series(&self, signal: &str) -> Result<&TimeSeries, String> {
        self.capture.get(signal).ok_or_else(|| {
            format!(
                "`{signal}` was not measured (measured: {})",
                self.capture.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Replays the scenario's actions on a fresh session (same seed) with
    /// `keep` deciding which actions stay, up to the present time; returns
    /// its capture. `no_assembly` switches the assembly off for the whole
    /// run (the house's DC loads then come from the grid via the charger).
    pub fn baseline(
        &mut self,
        kind: &str,
        no_assembly: bool,
        keep: impl Fn(usize, &Action) -> bool,
    ) -> Result<&BTreeMap<String, TimeSeries>, String> {
        if !self.baselines.contains_key(kind) {
            let dir = self.dir()?.join(format!("baseline-{}", slug(kind)));
            let mut sim = self.build(&dir)?;
            if no_assembly {
                let house = self.house()?;
                sim.session
                    .plant_mut()
                    .force_commands(Some(no_assembly_commands(&house)));
            }
            let end = self.sim.as_ref().map_or(SimTime::ZERO, |s| s.session.now());
            for (i, a) in self.actions.iter().enumerate() {
                if matches!(a, Action::RunUntil(_)) || keep(i, a) {
                    sim.apply(a)?;
                }
            }
            sim.advance(end)?;
            let series = sim.probe.stop().map_err(|e| e.to_string())?;
            let _ = sim.session.finish();
            let map = series.into_iter().map(|s| (s.name.clone(), s)).collect();
            self.baselines.insert(kind.to_owned(), map);
        }
        self.baselines
            .get(kind)
            .ok_or_else(|| "baseline missing".into())
    }

    /// Judges a `Then` step's check of `signal` over `[from_s, to_s]`
    /// against `bound` (in the signal's own unit; excursions up to
    /// `grace_s` tolerated) on the capture, records it for the report's
    /// plots and returns it: the step's verdict is this judgement, so a
    /// plot can never show a violation in a passing step.
    pub fn judge(
        &mut self,
        signal: &str,
        from_s: f64,
        to_s: f64,
        bound: reports::scenario::Bound,
        grace_s: f64,
    ) -> Result<reports::scenario::Assertion, String> {
        let sig = to_signal(self.series(signal)?);
        let a = reports::scenario::Assertion::judge_with_grace(&sig, from_s, to_s, bound, grace_s);
        self.assertions.push(a.clone());
        Ok(a)
    }

    /// After the last step: stops the controller end (a child process on
    /// SIL rigs) and writes the scenario's directory: measured signals,
    /// events, assertions, key figures and plots (its traces were written
    /// as it ran).
    pub fn finish(&mut self) {
        let mut capture = ScenarioCapture::default();
        if let Some(sim) = self.sim.take() {
            let truncated = sim.session.truncated_taps();
            let missed = sim.session.decisions_missed();
            if let Ok(sum) = sim.session.finish() {
                let f = &mut capture.figures;
                f.insert(
                    "can_frames_to_controller".into(),
                    sum.frames_to_controller as f64,
                );
                f.insert(
                    "can_frames_from_controller".into(),
                    sum.frames_from_controller as f64,
                );
                f.insert("p1_telegrams".into(), sum.p1_telegrams as f64);
                if let Some(j) = &sum.pacing {
                    f.insert("rt_jitter_p50_us".into(), j.p50_jitter_us() as f64);
                    f.insert("rt_jitter_p99_us".into(), j.p99_jitter_us() as f64);
                    f.insert("rt_jitter_max_us".into(), j.max_jitter_us() as f64);
                    f.insert("rt_overruns".into(), j.overruns() as f64);
                }
            }
            if missed > 0 {
                capture
                    .figures
                    .insert("decisions_missed".into(), missed as f64);
            }
            for (path, at_s) in truncated {
                capture.events.push(reports::scenario::Event {
                    at_s,
                    label: format!(
                        "{} size limit: from here on only the minute before and the 5 minutes after each event",
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                });
            }
        }
        let Ok(dir) = self.dir() else {
            return;
        };
        capture.signals = self.capture.values().map(to_signal).collect();
        let mut events: Vec<reports::scenario::Event> = self
            .markers
            .iter()
            .map(|m| reports::scenario::Event {
                at_s: m.at_s,
                label: m.label.clone(),
            })
            .collect();
        events.append(&mut capture.events);
        capture.events = events;
        capture.assertions = std::mem::take(&mut self.assertions);
        self.judge_invariants(&dir, &mut capture);
        if let Err(e) = capture.write(&dir) {
            eprintln!(
                "scenario `{}`: cannot write its report files: {e}",
                self.name
            );
        }
    }

    /// Writes the capture as CSV into the scenario directory (one column per
    /// signal) and returns its path.
    pub fn write_capture(&self) -> Option<PathBuf> {
        let dir = self.dir().ok()?;
        let capture = ScenarioCapture {
            signals: self.capture.values().map(to_signal).collect(),
            ..Default::default()
        };
        std::fs::create_dir_all(&dir).ok()?;
        capture.write_signals(&dir).ok()?;
        Some(dir.join("signals.csv"))
    }
}

/// A captured series as the report's signal.
fn to_signal(s: &TimeSeries) -> reports::scenario::Signal {
    reports::scenario::Signal {
        name: s.name.clone(),
        unit: s.unit.clone(),
        t_s: s.t_s.clone(),
        values: s.values.clone(),
    }
}

/// What a house without the battery assembly does
/// ([`twin::house::PlantCommands::no_assembly`]) for the house of a
/// scenario's setup.
pub fn no_assembly_commands(house: &HouseView) -> twin::house::PlantCommands {
    twin::house::PlantCommands::no_assembly(house.circuit_names().count(), house.sockets().count())
}

impl Default for MaslowWorld {
    fn default() -> Self {
        Self::new()
    }
}
