//! Saboteurs: faults injected on the rig between the controller and the
//! plant, the way a HIL bench injects faults on a device's outputs.
//!
//! A [`Sabotage`] sits where the controller's commands reach the plant (the
//! plant link's receiving end on framed rigs, the direct end in fleets) and
//! where its reports reach the remote server and the bench (acknowledgements,
//! dispatch verdicts, the heartbeat). It rewrites what the controller
//! commanded or reported, so a scenario runs against a controller that
//! misbehaves in one named way while the firmware itself is untouched. The
//! frames in a scenario's `can.log` stay what the controller sent: the
//! saboteur acts after the wire.
//!
//! The suite's sensitivity is measured with them: every saboteur must make
//! at least one scenario fail (`maslow sabotage matrix`).
//!
//! Sans-IO: every hook takes the plant time (and what it needs of the
//! plant's measurements) and returns or rewrites values.
//!
//! May use: `plant_port` (commands, measurements), `plant_link`'s
//! controller status, the firmware's message types. Must not use: the
//! controller's state, clocks, files.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use firmware::cluster::{ActiveDispatch, ConfigVerdict, Verdict};
use firmware::demand::{Ack, DemandSignal, SignalKind};
use firmware::peak::PeakReport;
use firmware::wire::config_message::Setting;
use firmware::wire::dispatch::Command;
use firmware::Millis;

use crate::plant_link::ControllerStatus;
use crate::plant_port::{AssemblyCommand, Measurements};

/// Every saboteur a rig can insert. See [`Saboteur::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Saboteur {
    KeepsExportingInCut,
    ShedsEssential,
    NeverSheds,
    IgnoresTariff,
    NoPeakDischarge,
    ChargesInPeak,
    BelowReserve,
    IgnoresDispatch,
    ActsOnRejectedDispatch,
    IgnoresCancel,
    ExceedsExportLimit,
    IgnoresProtection,
    LateReaction,
    NoStandby,
    NoDeferral,
    AcksEverything,
    FrozenHeartbeat,
    ReportsPeakMet,
    IgnoresBranchDispatch,
    IgnoresReserveConfig,
}

/// What a saboteur is: its name, what it breaks, the claim it violates,
/// and the feature files (under `features/`) whose behaviour it touches.
#[derive(Debug, Clone, Copy)]
pub struct SaboteurInfo {
    pub name: &'static str,
    pub breaks: &'static str,
    pub claim: &'static str,
    pub features: &'static [&'static str],
}

/// Start of the evening peak the peak saboteurs act in, local hour.
pub const PEAK_START_H: f64 = 16.0;
/// End of the evening peak, local hour.
pub const PEAK_END_H: f64 = 20.0;
/// How late `late-reaction` applies every command, ms.
pub const LATE_REACTION_MS: u64 = 5_000;
/// A socket drawing less than this when last supplied is idle (standby's
/// business); at or above it, it charges a device (deferral's), W.
pub const IDLE_SOCKET_W: f64 = 12.0;
/// The power a saboteur opens a limit to ("as much as the hardware
/// takes"), W.
pub const UNLIMITED_W: f64 = 20_000.0;

impl Saboteur {
    pub const ALL: [Saboteur; 20] = [
        Saboteur::KeepsExportingInCut,
        Saboteur::ShedsEssential,
        Saboteur::NeverSheds,
        Saboteur::IgnoresTariff,
        Saboteur::NoPeakDischarge,
        Saboteur::ChargesInPeak,
        Saboteur::BelowReserve,
        Saboteur::IgnoresDispatch,
        Saboteur::ActsOnRejectedDispatch,
        Saboteur::IgnoresCancel,
        Saboteur::ExceedsExportLimit,
        Saboteur::IgnoresProtection,
        Saboteur::LateReaction,
        Saboteur::NoStandby,
        Saboteur::NoDeferral,
        Saboteur::AcksEverything,
        Saboteur::FrozenHeartbeat,
        Saboteur::ReportsPeakMet,
        Saboteur::IgnoresBranchDispatch,
        Saboteur::IgnoresReserveConfig,
    ];

    /// Name, behaviour broken, claim, features touched.
    pub fn info(self) -> SaboteurInfo {
        use Saboteur as S;
        let (name, breaks, claim, features): (_, _, _, &'static [&'static str]) = match self {
            S::KeepsExportingInCut => (
                "keeps-exporting-in-cut",
                "with the mains gone the inverter stays on with export enabled at full request (no loss-of-mains reaction)",
                "claim 6 (resilience at network failure); grid codes' anti-islanding",
                &["sim/power_cut.feature"],
            ),
            S::ShedsEssential => (
                "sheds-essential",
                "with the mains gone every DC circuit is switched off, essential ones included",
                "claim 6 (essential DC demand kept online in a failure)",
                &["sim/power_cut.feature", "sim/protection.feature"],
            ),
            S::NeverSheds => (
                "never-sheds",
                "every circuit and socket stays supplied whatever the controller decides",
                "claims 6, 15 (selectively supply a subset of DC loads)",
                &["sim/power_cut.feature", "sim/demand.feature", "sim/demand_cancel.feature"],
            ),
            S::IgnoresTariff => (
                "ignores-tariff",
                "the charger never charges from the mains (off-peak tariff and charge requests ignored)",
                "claims 2, 10 (charging scheduled on time of day and demand)",
                &["sim/tariff.feature", "sim/peak.feature", "sim/charge_now.feature"],
            ),
            S::NoPeakDischarge => (
                "no-peak-discharge",
                "from 16:00 to 20:00 with the mains there the battery does not discharge to the house",
                "claim 4 (assured peak power reduction)",
                &["sim/peak.feature"],
            ),
            S::ChargesInPeak => (
                "charges-in-peak",
                "from 16:00 to 20:00 with the mains there the battery charges from the mains at full rate",
                "claims 2, 4 (charging off the peak; peak reduction)",
                &["sim/peak.feature"],
            ),
            S::BelowReserve => (
                "below-reserve",
                "the battery discharges to serve the house whatever its charge (no reserve, no floor)",
                "claim 6 (energy kept for essential demand in a failure)",
                &["sim/power_cut.feature", "sim/peak.feature"],
            ),
            S::IgnoresDispatch => (
                "ignores-dispatch",
                "an accepted demand signal or dispatch is acknowledged but not followed: the command before it is held",
                "claims 1, 9 (demand signals from the remote server are followed)",
                &["sim/dispatch.feature", "sim/demand.feature", "sim/demand_cancel.feature", "sim/charge_now.feature"],
            ),
            S::ActsOnRejectedDispatch => (
                "acts-on-rejected-dispatch",
                "a rejected demand signal or dispatch (forged, replayed, expired, over a limit) is carried out anyway",
                "claims 1, 20 (only the server's authenticated dispatch is acted on)",
                &["sim/dispatch.feature", "sim/demand.feature"],
            ),
            S::IgnoresCancel => (
                "ignores-cancel",
                "after a cancellation the cancelled signal's effect is held until its original end",
                "claims 1, 9 (the server manages the resource: a cancel stops it)",
                &["sim/demand_cancel.feature", "sim/dispatch.feature"],
            ),
            S::ExceedsExportLimit => (
                "exceeds-export-limit",
                "the inverter is asked for all the PV can give, export enabled, PV never curtailed",
                "claims 5, 13 (PV export managed on the branch)",
                &["sim/export_limit.feature", "sim/export.feature"],
            ),
            S::IgnoresProtection => (
                "ignores-protection",
                "the battery contactor stays closed at full limits, circuits and PV are never cut (protection's commands dropped)",
                "claim 8 (control electronics charge and supply within the storage's limits)",
                &["sim/protection_rows.feature", "sim/protection.feature"],
            ),
            S::LateReaction => (
                "late-reaction",
                "every command reaches the plant 5 s late",
                "claims 6, 8 (protection and resilience react in time)",
                &["sim/protection_rows.feature"],
            ),
            S::NoStandby => (
                "no-standby",
                "a socket whose device idles (under 12 W when last supplied) is never switched off",
                "claim 18 II (switch off or put the end device into standby when not used)",
                &["sim/end_devices.feature"],
            ),
            S::NoDeferral => (
                "no-deferral",
                "a socket charging a device (12 W or more when last supplied) is never switched off or capped",
                "claim 18 III (defer the charging of a battery on the end device)",
                &["sim/end_devices.feature", "sim/demand_cancel.feature"],
            ),
            S::AcksEverything => (
                "acks-everything",
                "every demand signal and dispatch is reported to the server as accepted",
                "claims 9, 20 (the server is told what the assembly does)",
                &["sim/demand.feature", "sim/dispatch.feature"],
            ),
            S::FrozenHeartbeat => (
                "frozen-heartbeat",
                "the controller's heartbeat keeps reporting its first state and flags",
                "claim 7 (the assembly as the hub reporting its DC network)",
                &["sim/protection.feature"],
            ),
            S::ReportsPeakMet => (
                "reports-peak-met",
                "every evening peak is reported to the server as met, whatever reduction the assembly achieved",
                "claim 4 (an assured reduction the server can rely on)",
                &["sim/peak.feature"],
            ),
            S::IgnoresBranchDispatch => (
                "ignores-branch-dispatch",
                "an assembly acknowledges its branch's dispatch but holds the command it had before it",
                "claim 1 (each cluster managed as a collective resource via the server's signal)",
                &["fleet/branch_cap.feature", "fleet/pv_export.feature", "fleet/server_silent.feature"],
            ),
            S::IgnoresReserveConfig => (
                "ignores-reserve-config",
                "after a configuration message sets a reserve, the assembly discharges to serve its household whatever its charge",
                "claims 1, 6 (the server's settings bound the resource; energy kept for failures)",
                &["fleet/remote_config.feature"],
            ),
        };
        SaboteurInfo {
            name,
            breaks,
            claim,
            features,
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }
}

impl fmt::Display for Saboteur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A saboteur name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no saboteur `{given}`; the saboteurs are: {known} (`maslow test --sabotage list` says what each breaks)")]
pub struct UnknownSaboteur {
    pub given: String,
    pub known: String,
}

impl std::str::FromStr for Saboteur {
    type Err = UnknownSaboteur;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Saboteur::ALL
            .into_iter()
            .find(|x| x.name() == s.trim())
            .ok_or_else(|| UnknownSaboteur {
                given: s.to_owned(),
                known: Saboteur::ALL.map(Saboteur::name).join(", "),
            })
    }
}

/// The list `maslow test --sabotage list` prints: one saboteur a line.
pub fn listing() -> String {
    let mut out = String::new();
    for s in Saboteur::ALL {
        let i = s.info();
        out.push_str(&format!("{:<27} {} [{}]\n", i.name, i.breaks, i.claim));
    }
    out
}

/// What the plant looks like when a command is applied.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    /// Plant time, ms.
    pub now_ms: u64,
    /// Local clock hour (0..24).
    pub local_hour: f64,
    pub measurements: &'a Measurements,
}

/// What a held or forced command does, and until when.
#[derive(Debug, Clone)]
struct Window {
    until_ms: u64,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    /// Apply this command (the one in force before a signal, or during it).
    Hold(Box<AssemblyCommand>),
    /// Charge from the mains at this power, W.
    Charge(f64),
    /// Discharge into the house at this power, W.
    Discharge(f64),
    /// Switch these circuits off (bit i = circuit i).
    Shed(u16),
}

/// A saboteur in action, with what it remembers.
#[derive(Debug, Clone)]
pub struct Sabotage {
    saboteur: Saboteur,
    /// Demand signals seen on their way to the controller, by id.
    signals: BTreeMap<u32, DemandSignal>,
    /// Accepted signals' ends, by id (for `ignores-cancel`).
    accepted_until_ms: BTreeMap<u32, u64>,
    /// The dispatch in force as accepted, its end (plant time).
    dispatch_until_ms: Option<u64>,
    /// The last dispatch seen on its way, parsed (not verified).
    last_dispatch: Option<Command>,
    window: Option<Window>,
    /// The last command as the controller meant it (before any window).
    last_clean: Option<AssemblyCommand>,
    /// The last command as the plant got it.
    last_applied: Option<AssemblyCommand>,
    /// `late-reaction`'s delay line.
    delayed: VecDeque<(u64, AssemblyCommand)>,
    /// Per socket: power when last supplied, W.
    socket_w: Vec<f64>,
    /// `frozen-heartbeat`: the first status reported.
    first_status: Option<ControllerStatus>,
    /// `ignores-reserve-config`: a reserve has been set by the server.
    reserve_set: bool,
    /// Commands rewritten so far (a saboteur that never acts is visible).
    pub rewrites: u64,
}

impl Sabotage {
    pub fn new(saboteur: Saboteur) -> Self {
        Sabotage {
            saboteur,
            signals: BTreeMap::new(),
            accepted_until_ms: BTreeMap::new(),
            dispatch_until_ms: None,
            last_dispatch: None,
            window: None,
            last_clean: None,
            last_applied: None,
            delayed: VecDeque::new(),
            socket_w: Vec::new(),
            first_status: None,
            reserve_set: false,
            rewrites: 0,
        }
    }

    pub fn saboteur(&self) -> Saboteur {
        self.saboteur
    }

    // ---------------------------------------------------------------
    // What the server sends, and what it is told

    /// A demand signal on its way to the controller.
    pub fn on_demand(&mut self, signal: &DemandSignal) {
        self.signals.insert(signal.id, *signal);
    }

    /// A signed dispatch on its way to the controller (read, not verified:
    /// the saboteur needs what it asks, not whether it is genuine).
    pub fn on_dispatch(&mut self, bytes: &[u8]) {
        self.last_dispatch = firmware::wire::dispatch::parse(bytes)
            .ok()
            .map(|d| d.content.command);
    }

    /// The controller's acknowledgement of a demand signal, as the server
    /// will receive it.
    pub fn on_ack(&mut self, now_ms: u64, ack: &mut Ack) {
        let id = ack.id();
        let signal = self.signals.get(&id).copied();
        match (*ack, signal) {
            (Ack::Accepted { .. }, Some(s)) => self.signal_accepted(now_ms, &s),
            (Ack::Rejected { .. }, Some(s)) => self.signal_rejected(now_ms, &s),
            _ => {}
        }
        if self.saboteur == Saboteur::AcksEverything && !ack.is_accepted() {
            *ack = Ack::Accepted { id };
            self.rewrites += 1;
        }
    }

    /// The controller's verdict on a dispatch, as the server will receive it.
    pub fn on_verdict(&mut self, now_ms: u64, verdict: &mut Verdict) {
        match *verdict {
            Verdict::Accepted(a) => self.dispatch_accepted(now_ms, &a),
            Verdict::Rejected(_) => self.dispatch_rejected(now_ms),
            Verdict::Ignored(_) => {}
        }
        if self.saboteur == Saboteur::AcksEverything {
            if let (Verdict::Rejected(_), Some(command)) = (*verdict, self.last_dispatch) {
                *verdict = Verdict::Accepted(ActiveDispatch {
                    key_index: 0,
                    sequence: 0,
                    command,
                    requirement: None,
                    accepted_at: Millis(now_ms),
                    start_at: Millis(now_ms),
                    until: Millis(now_ms + duration_ms(command)),
                });
                self.rewrites += 1;
            }
        }
    }

    /// The controller's report of a peak window, as the server will
    /// receive it.
    pub fn on_peak_report(&mut self, report: &mut PeakReport) {
        if self.saboteur == Saboteur::ReportsPeakMet && !report.met {
            report.met = true;
            self.rewrites += 1;
        }
    }

    /// The controller's verdict on a configuration message.
    pub fn on_config_verdict(&mut self, verdict: &ConfigVerdict) {
        if let ConfigVerdict::Accepted(a) = verdict {
            if matches!(a.settings.reserve_soc_permille, Setting::Set(_)) {
                self.reserve_set = true;
            }
        }
    }

    /// The controller's heartbeat as the bench reads it.
    pub fn on_heartbeat(&mut self, status: ControllerStatus) -> ControllerStatus {
        if self.saboteur != Saboteur::FrozenHeartbeat {
            return status;
        }
        let first = *self.first_status.get_or_insert(status);
        ControllerStatus {
            state: first.state,
            e2e_rejects: first.e2e_rejects,
            meter_stale: first.meter_stale,
            link_timeout: first.link_timeout,
            ..status
        }
    }

    fn signal_accepted(&mut self, now_ms: u64, s: &DemandSignal) {
        let until_ms = s.end().0;
        match s.kind {
            SignalKind::Cancel { id } => {
                let until = self.accepted_until_ms.remove(&id);
                if let (Saboteur::IgnoresCancel, Some(until_ms), Some(held)) =
                    (self.saboteur, until, self.last_applied.clone())
                {
                    self.open(until_ms.max(now_ms), Action::Hold(Box::new(held)));
                }
            }
            _ => {
                self.accepted_until_ms.insert(s.id, until_ms);
                let ignores = self.saboteur == Saboteur::IgnoresDispatch;
                if let (true, Some(before)) = (ignores, self.last_clean.clone()) {
                    self.open(until_ms, Action::Hold(Box::new(before)));
                }
            }
        }
    }

    fn signal_rejected(&mut self, now_ms: u64, s: &DemandSignal) {
        if self.saboteur != Saboteur::ActsOnRejectedDispatch {
            return;
        }
        let until_ms = now_ms + s.duration_ms;
        let action = match s.kind {
            SignalKind::Charge { power_w } => Action::Charge(f64::from(power_w)),
            SignalKind::Discharge { power_w } => Action::Discharge(f64::from(power_w)),
            SignalKind::ShedLoads { circuit_mask } => Action::Shed(circuit_mask),
            _ => return,
        };
        self.open(until_ms, action);
    }

    fn dispatch_accepted(&mut self, now_ms: u64, a: &ActiveDispatch) {
        match a.command {
            Command::Sink { .. } | Command::Source { .. } => {
                let until_ms = a.until.0.max(now_ms);
                self.dispatch_until_ms = Some(until_ms);
                let ignores = matches!(
                    self.saboteur,
                    Saboteur::IgnoresDispatch | Saboteur::IgnoresBranchDispatch
                );
                if let (true, Some(before)) = (ignores, self.last_clean.clone()) {
                    self.open(until_ms, Action::Hold(Box::new(before)));
                }
            }
            Command::Cancel => {
                let until = self.dispatch_until_ms.take();
                if let (Saboteur::IgnoresCancel, Some(until_ms), Some(held)) =
                    (self.saboteur, until, self.last_applied.clone())
                {
                    self.open(until_ms.max(now_ms), Action::Hold(Box::new(held)));
                }
            }
            Command::Heartbeat => {}
        }
    }

    fn dispatch_rejected(&mut self, now_ms: u64) {
        if self.saboteur != Saboteur::ActsOnRejectedDispatch {
            return;
        }
        let action = match self.last_dispatch {
            Some(Command::Sink { power_w, .. }) => Action::Charge(f64::from(power_w)),
            Some(Command::Source { power_w, .. }) => Action::Discharge(f64::from(power_w)),
            _ => return,
        };
        let until_ms = now_ms + self.last_dispatch.map_or(0, duration_ms);
        self.open(until_ms, action);
    }

    fn open(&mut self, until_ms: u64, action: Action) {
        self.window = Some(Window { until_ms, action });
    }

    // ---------------------------------------------------------------
    // What the controller commands

    /// Rewrites the controller's command `c` as the plant is to apply it.
    pub fn command(&mut self, at: &Moment<'_>, c: &mut AssemblyCommand) {
        let clean = c.clone();
        self.note_sockets(at.measurements);
        if let Some(w) = self.window.as_ref().filter(|w| at.now_ms < w.until_ms) {
            apply_action(&w.action, c);
        } else {
            self.window = None;
            self.last_clean = Some(clean.clone());
        }
        self.rewrite(at, c);
        if *c != clean {
            self.rewrites += 1;
        }
        self.last_applied = Some(c.clone());
    }

    /// The saboteurs that act on every command.
    fn rewrite(&mut self, at: &Moment<'_>, c: &mut AssemblyCommand) {
        let m = at.measurements;
        let peak = (PEAK_START_H..PEAK_END_H).contains(&at.local_hour) && m.mains_present;
        match self.saboteur {
            Saboteur::KeepsExportingInCut if !m.mains_present => {
                c.inverter_enabled = true;
                c.inverter_export_enabled = true;
                c.inverter_request_ac_w = UNLIMITED_W;
                c.battery_enabled = true;
                c.battery_standby = false;
                c.battery_discharge_limit_w = UNLIMITED_W;
            }
            Saboteur::ShedsEssential if !m.mains_present => {
                c.circuits_on.iter_mut().for_each(|on| *on = false);
            }
            Saboteur::NeverSheds => {
                c.circuits_on.iter_mut().for_each(|on| *on = true);
                c.sockets_on.iter_mut().for_each(|on| *on = true);
            }
            Saboteur::IgnoresTariff => c.charger_boost = false,
            Saboteur::NoPeakDischarge if peak => {
                c.battery_discharge_limit_w = 0.0;
                c.inverter_request_ac_w = 0.0;
                c.inverter_enabled = false;
            }
            Saboteur::ChargesInPeak if peak => force_charge(c, UNLIMITED_W),
            Saboteur::BelowReserve => discharge_anyway(m, c),
            Saboteur::IgnoresReserveConfig if self.reserve_set => discharge_anyway(m, c),
            Saboteur::ExceedsExportLimit if m.mains_present && m.pv_available_w > 0.0 => {
                c.pv_cap_w = None;
                c.inverter_enabled = true;
                c.inverter_export_enabled = true;
                c.inverter_request_ac_w = UNLIMITED_W;
            }
            Saboteur::IgnoresProtection => {
                c.battery_enabled = true;
                c.battery_charge_limit_w = c.battery_charge_limit_w.max(UNLIMITED_W);
                c.battery_discharge_limit_w = c.battery_discharge_limit_w.max(UNLIMITED_W);
                c.pv_cap_w = None;
                c.circuits_on.iter_mut().for_each(|on| *on = true);
            }
            Saboteur::LateReaction => self.delay(at.now_ms, c),
            Saboteur::NoStandby => self.keep_sockets_on(c, |w| w < IDLE_SOCKET_W),
            Saboteur::NoDeferral => {
                self.keep_sockets_on(c, |w| w >= IDLE_SOCKET_W);
                c.socket_caps_w.iter_mut().for_each(|cap| *cap = None);
            }
            _ => {}
        }
    }

    /// `late-reaction`: the command from [`LATE_REACTION_MS`] ago.
    fn delay(&mut self, now_ms: u64, c: &mut AssemblyCommand) {
        self.delayed.push_back((now_ms, c.clone()));
        while self
            .delayed
            .get(1)
            .is_some_and(|(t, _)| now_ms.saturating_sub(*t) >= LATE_REACTION_MS)
        {
            self.delayed.pop_front();
        }
        if let Some((_, old)) = self.delayed.front() {
            *c = old.clone();
        }
    }

    /// Remembers each socket's draw while it was supplied.
    fn note_sockets(&mut self, m: &Measurements) {
        self.socket_w.resize(m.sockets.len(), 0.0);
        let supplied = self.last_applied.as_ref().map(|c| c.sockets_on.clone());
        for (i, k) in m.sockets.iter().enumerate() {
            let on = supplied
                .as_ref()
                .is_none_or(|s| s.get(i).copied().unwrap_or(true));
            if on {
                self.socket_w[i] = k.power_w;
            }
        }
    }

    /// Keeps on every socket the controller switched off whose last draw
    /// while supplied satisfies `kept`.
    fn keep_sockets_on(&self, c: &mut AssemblyCommand, kept: impl Fn(f64) -> bool) {
        for (i, on) in c.sockets_on.iter_mut().enumerate() {
            let w = self.socket_w.get(i).copied().unwrap_or(0.0);
            if !*on && w > 0.5 && kept(w) {
                *on = true;
            }
        }
    }
}

/// A dispatch command's duration, ms.
fn duration_ms(c: Command) -> u64 {
    match c {
        Command::Sink { duration_s, .. } | Command::Source { duration_s, .. } => {
            u64::from(duration_s) * 1000
        }
        Command::Cancel | Command::Heartbeat => 0,
    }
}

fn apply_action(a: &Action, c: &mut AssemblyCommand) {
    match a {
        Action::Hold(held) => *c = (**held).clone(),
        Action::Charge(w) => force_charge(c, *w),
        Action::Discharge(w) => {
            c.battery_enabled = true;
            c.battery_standby = false;
            c.battery_discharge_limit_w = *w;
            c.charger_boost = false;
            c.inverter_enabled = true;
            c.inverter_request_ac_w = *w;
        }
        Action::Shed(mask) => {
            for (i, on) in c.circuits_on.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *on = false;
                }
            }
        }
    }
}

/// Charges the battery from the mains at up to `w`.
fn force_charge(c: &mut AssemblyCommand, w: f64) {
    c.battery_enabled = true;
    c.battery_standby = false;
    c.battery_charge_limit_w = w;
    c.charger_enabled = true;
    c.charger_boost = true;
    c.inverter_request_ac_w = 0.0;
}

/// Discharges the battery to serve the house's whole AC load (what it
/// imports plus what the assembly already puts in, less what it draws).
fn discharge_anyway(m: &Measurements, c: &mut AssemblyCommand) {
    let house_ac_w =
        m.meter.import_w - m.meter.export_w + m.inverter_ac_power_w - m.charger_ac_power_w;
    c.battery_enabled = true;
    c.battery_standby = false;
    c.battery_discharge_limit_w = UNLIMITED_W;
    c.charger_boost = false;
    if m.mains_present {
        c.inverter_enabled = true;
        c.inverter_request_ac_w = house_ac_w.max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurements() -> Measurements {
        Measurements {
            mains_present: true,
            ..Measurements::default()
        }
    }

    fn command() -> AssemblyCommand {
        let mut c = AssemblyCommand::all_off(3, 2);
        c.battery_enabled = true;
        c.battery_discharge_limit_w = 1000.0;
        c.inverter_enabled = true;
        c.inverter_request_ac_w = 400.0;
        c.circuits_on.iter_mut().for_each(|on| *on = true);
        c
    }

    fn at(now_ms: u64, local_hour: f64, m: &Measurements) -> Moment<'_> {
        Moment {
            now_ms,
            local_hour,
            measurements: m,
        }
    }

    #[test]
    fn every_saboteur_has_a_unique_name_that_parses_back() {
        let mut names: Vec<_> = Saboteur::ALL.iter().map(|s| s.name()).collect();
        for s in Saboteur::ALL {
            assert_eq!(s.name().parse::<Saboteur>(), Ok(s));
            assert!(!s.info().features.is_empty(), "{s} touches no feature");
            assert!(s.info().claim.contains("claim"), "{s} names no claim");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Saboteur::ALL.len());
        let e = "exports".parse::<Saboteur>().unwrap_err().to_string();
        assert!(
            e.contains("`exports`") && e.contains("late-reaction"),
            "{e}"
        );
    }

    #[test]
    fn the_listing_names_each_saboteur_once_per_line() {
        let l = listing();
        assert_eq!(l.lines().count(), Saboteur::ALL.len());
        for s in Saboteur::ALL {
            assert!(l.lines().any(|line| line.starts_with(s.name())), "{s}");
        }
    }

    #[test]
    fn no_peak_discharge_acts_only_in_the_peak_with_mains() {
        let m = measurements();
        let mut s = Sabotage::new(Saboteur::NoPeakDischarge);
        let mut c = command();
        s.command(&at(0, 12.0, &m), &mut c);
        assert_eq!(c, command(), "outside the peak the command passes");
        s.command(&at(1000, 17.0, &m), &mut c);
        assert_eq!(c.battery_discharge_limit_w, 0.0);
        assert!(!c.inverter_enabled);
        assert_eq!(s.rewrites, 1);
    }

    #[test]
    fn late_reaction_applies_the_command_of_five_seconds_ago() {
        let m = measurements();
        let mut s = Sabotage::new(Saboteur::LateReaction);
        for t in 0..=10u64 {
            let mut c = command();
            c.inverter_request_ac_w = t as f64;
            s.command(&at(t * 1000, 12.0, &m), &mut c);
            let expect = t.saturating_sub(5) as f64;
            assert_eq!(c.inverter_request_ac_w, expect, "at {t} s");
        }
    }

    #[test]
    fn ignores_dispatch_holds_the_command_from_before_an_accepted_signal() {
        let m = measurements();
        let mut s = Sabotage::new(Saboteur::IgnoresDispatch);
        let mut c = command();
        s.command(&at(0, 12.0, &m), &mut c);
        let signal = DemandSignal {
            id: 7,
            source: firmware::demand::SignalSource::RemoteServer,
            kind: SignalKind::Discharge { power_w: 1500.0 },
            start: Millis(1000),
            duration_ms: 60_000,
        };
        s.on_demand(&signal);
        s.on_ack(1000, &mut Ack::Accepted { id: 7 });
        let mut during = command();
        during.inverter_request_ac_w = 1500.0;
        s.command(&at(2000, 12.0, &m), &mut during);
        assert_eq!(during.inverter_request_ac_w, 400.0, "held");
        let mut after = command();
        after.inverter_request_ac_w = 1500.0;
        s.command(&at(61_000, 12.0, &m), &mut after);
        assert_eq!(after.inverter_request_ac_w, 1500.0, "the window ended");
    }

    #[test]
    fn acks_everything_turns_a_rejection_into_an_acceptance() {
        let mut s = Sabotage::new(Saboteur::AcksEverything);
        let mut ack = Ack::Rejected {
            id: 3,
            reason: firmware::demand::RejectReason::ExceedsPowerLimit,
        };
        s.on_ack(0, &mut ack);
        assert_eq!(ack, Ack::Accepted { id: 3 });
        let mut clean = Sabotage::new(Saboteur::NeverSheds);
        let mut ack = Ack::Rejected {
            id: 3,
            reason: firmware::demand::RejectReason::ExceedsPowerLimit,
        };
        clean.on_ack(0, &mut ack);
        assert!(!ack.is_accepted(), "only acks-everything rewrites acks");
    }

    #[test]
    fn acts_on_a_rejected_discharge_request() {
        let m = measurements();
        let mut s = Sabotage::new(Saboteur::ActsOnRejectedDispatch);
        let signal = DemandSignal {
            id: 1,
            source: firmware::demand::SignalSource::RemoteServer,
            kind: SignalKind::Discharge { power_w: 2000.0 },
            start: Millis(0),
            duration_ms: 10_000,
        };
        s.on_demand(&signal);
        let mut ack = Ack::Rejected {
            id: 1,
            reason: firmware::demand::RejectReason::ExceedsPowerLimit,
        };
        s.on_ack(0, &mut ack);
        assert!(!ack.is_accepted(), "the report is left as it was");
        let mut c = AssemblyCommand::all_off(3, 2);
        s.command(&at(5000, 12.0, &m), &mut c);
        assert!(c.battery_enabled && c.inverter_enabled);
        assert_eq!(c.inverter_request_ac_w, 2000.0);
        let mut c = AssemblyCommand::all_off(3, 2);
        s.command(&at(10_000, 12.0, &m), &mut c);
        assert_eq!(c, AssemblyCommand::all_off(3, 2), "over after its duration");
    }

    #[test]
    fn frozen_heartbeat_keeps_the_first_state() {
        use firmware::wire::can::messages::CtrlHeartbeatCtrlState as S;
        let mut s = Sabotage::new(Saboteur::FrozenHeartbeat);
        let first = ControllerStatus {
            state: S::Normal,
            sync_echo_ms: 0,
            e2e_rejects: 0,
            meter_stale: false,
            link_timeout: false,
            received_at: twin::time::SimTime::ZERO,
        };
        assert_eq!(s.on_heartbeat(first), first);
        let later = ControllerStatus {
            state: S::SafeState,
            sync_echo_ms: 100,
            link_timeout: true,
            ..first
        };
        let seen = s.on_heartbeat(later);
        assert_eq!(seen.state, S::Normal);
        assert!(!seen.link_timeout);
        assert_eq!(seen.sync_echo_ms, 100, "the echo still moves");
    }

    #[test]
    fn reports_peak_met_turns_a_missed_peak_into_a_met_one() {
        let missed = PeakReport {
            window: 0,
            started: Millis(57_600_000),
            duration_s: 14_400.0,
            assured_w: 1500.0,
            avg_reduction_w: 420.0,
            min_1min_reduction_w: 90.0,
            fraction_met: 0.1,
            met: false,
            battery_wh: 1700.0,
            reserve_reached: true,
            invalid_samples: 0,
        };
        let mut clean = Sabotage::new(Saboteur::FrozenHeartbeat);
        let mut r = missed;
        clean.on_peak_report(&mut r);
        assert!(!r.met, "another saboteur leaves the report alone");
        let mut s = Sabotage::new(Saboteur::ReportsPeakMet);
        s.on_peak_report(&mut r);
        assert!(r.met);
        assert_eq!(r.avg_reduction_w, 420.0, "only the verdict is forged");
        assert_eq!(s.rewrites, 1);
    }

    #[test]
    fn no_standby_keeps_an_idle_socket_on_but_not_a_charging_one() {
        let mut m = measurements();
        m.sockets = vec![Default::default(); 2];
        m.sockets[0].power_w = 4.0;
        m.sockets[1].power_w = 40.0;
        let mut s = Sabotage::new(Saboteur::NoStandby);
        let mut on = AssemblyCommand::all_off(3, 2);
        on.sockets_on.iter_mut().for_each(|x| *x = true);
        s.command(&at(0, 12.0, &m), &mut on);
        let mut off = AssemblyCommand::all_off(3, 2);
        s.command(&at(1000, 12.0, &m), &mut off);
        assert_eq!(off.sockets_on.as_slice(), &[true, false]);
    }
}
