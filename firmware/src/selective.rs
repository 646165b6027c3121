//! Selective supply and end devices [claims 15–19]: per-socket switching
//! wishes for the USB-PD sockets of the DC network, from what each socket
//! has enumerated and measured.
//!
//! [`Selective::update`] takes, per socket, the plug state, the negotiated
//! USB-PD contract, optional sink capabilities / device identity / battery
//! level, the measured power and a wake request, plus the site-wide
//! `peak_or_event` flag, and returns one [`SocketCommand`] per socket. The
//! controller merges these with other functions' requests (protection and
//! resilience win).
//!
//! ## Device classification (documented rules)
//! With `P` = the larger of the contract power (V × A) and the sink's
//! advertised maximum power, and `V` = the contract voltage:
//! - no contract and no sink capabilities → `Unknown`;
//! - `P < 7.5 W` → `Peripheral` (mice, speakers, hubs, 5 V/≤1.5 A);
//! - `V ≤ 9 V` and `P ≤ 27 W` → `Phone` (5 V/2–3 A, 9 V/2–3 A);
//! - `V ≤ 15 V` and `P ≤ 45 W` → `Tablet`;
//! - `P ≤ 65 W` → `Laptop` (20 V/3–3.25 A);
//! - `P ≤ 100 W` (20 V/5 A) → `Monitor`, and `P > 100 W` or EPR voltage
//!   (> 20 V) → `Tv`, **unless** the power profile has shown a battery
//!   charge taper, in which case → `Laptop` (a 100 W/140 W laptop).
//!
//! A *charge taper* is seen when a device has drawn power for at least
//! `taper_after_ms` since it plugged in and its power has fallen below
//! `taper_fraction` × the session's peak power (while still above the
//! standby threshold): the constant-voltage phase of a Li-ion charge.
//!
//! ## Power profile
//! Per socket, for the device currently plugged: min/max/mean power, energy
//! (Wh, left rule between updates), time plugged and time active (power ≥
//! `standby_threshold_w`). It is kept across unplug/replug when the device
//! reports the same vendor/product id, and restarted otherwise. Separately,
//! min/max load per socket and per circuit (sum of its sockets) over the
//! reporting period, reset by [`Selective::reset_load_period`].
//!
//! ## Standby
//! A plugged socket whose power stays below `standby_threshold_w` for
//! `standby_after_ms` is switched to standby (`standby_cap_w`: 0 = off, else
//! kept on with that power cap), reason `Standby`. It wakes on a `wake`
//! request or a new plug event.
//!
//! ## Deferring end-device charging
//! While `peak_or_event`, a battery device (Phone/Tablet/Laptop, or any
//! device that has shown a charge taper) that is drawing power is capped to
//! `defer_cap_w` (0 = off), reason `ChargeDeferred`, if its charge is above
//! `defer_above_soc`: the reported battery level when known, else the proxy
//! "charge taper seen". Deferral latches until the peak/event ends.
//!
//! ## Clusters of use
//! Configured groups (`groups`) plus learned links. Learning: each socket's
//! active/inactive transitions (power crossing `standby_threshold_w`, only
//! while the socket is in normal supply, so our own switching does not
//! teach) are compared with every other socket's latest transition; a
//! same-direction transition within `cluster_window_ms` counts one
//! co-transition for the pair. A pair is linked when it has at least
//! `cluster_min_events` co-transitions and co-transitions / min(transitions
//! of either) ≥ `cluster_min_ratio`. In a linked pair the host is the
//! Laptop/Tablet socket and the peripheral is the other one if it is a
//! Monitor, Tv, Peripheral or Unknown. When a host's power stays below
//! `host_idle_threshold_w` for `host_idle_after_ms` (or it is unplugged),
//! its peripherals are switched off, reason `HostIdle`; they come back when
//! the host becomes active. A wake request or a plug event on the peripheral
//! overrides until the host's next active period ends. Learned links are kept
//! per socket and forgotten when a device with a different vendor/product id
//! is plugged into either socket.

use crate::config::{check_range, ConfigError};
use crate::time::Millis;

/// Number of sockets handled (inputs beyond this are ignored and counted).
pub const MAX_SOCKETS: usize = 16;
/// Number of circuits for the per-circuit load report.
pub const MAX_CIRCUITS: usize = 16;
/// Number of configured cluster groups.
pub const MAX_GROUPS: usize = 8;
/// Peripherals per configured group.
pub const MAX_GROUP_PERIPHERALS: usize = 8;

/// A configured host + peripherals grouping (sockets by index).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Host socket (e.g. the laptop's).
    pub host: u8,
    /// Peripheral sockets (monitor, speakers, ...).
    pub peripherals: heapless::Vec<u8, MAX_GROUP_PERIPHERALS>,
}

/// Selective-supply configuration (TOML table `[selective]`):
/// ```toml
/// socket_circuits = [0, 0, 1, 1]  # circuit of socket 0, 1, 2, 3 (others: none)
/// standby_threshold_w = 1.0
/// standby_after_ms = 1800000      # 30 min
/// standby_cap_w = 0.0             # 0 = off in standby
/// defer_above_soc = 0.8
/// defer_cap_w = 0.0               # 0 = off while deferred
/// taper_after_ms = 3600000
/// taper_fraction = 0.5
/// cluster_window_ms = 60000
/// cluster_min_events = 3
/// cluster_min_ratio = 0.8
/// host_idle_threshold_w = 12.0
/// host_idle_after_ms = 600000
/// [[selective.groups]]
/// host = 0
/// peripherals = [1, 2]
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectiveConfig {
    /// Circuit index (< 16) of each socket, by socket index. Sockets beyond
    /// the list belong to no circuit.
    #[serde(default)]
    pub socket_circuits: heapless::Vec<u8, MAX_SOCKETS>,
    /// Below this power, W, a device is idle (standby, transitions).
    #[serde(default = "d_standby_threshold_w")]
    pub standby_threshold_w: f32,
    /// Idle time before standby, ms.
    #[serde(default = "d_standby_after_ms")]
    pub standby_after_ms: u64,
    /// Power cap in standby, W (0 = socket off).
    #[serde(default)]
    pub standby_cap_w: f32,
    /// Defer charging only when the device's charge is above this, 0..1.
    #[serde(default = "d_defer_above_soc")]
    pub defer_above_soc: f32,
    /// Power cap while charging is deferred, W (0 = socket off).
    #[serde(default)]
    pub defer_cap_w: f32,
    /// Minimum time since plug-in before a charge taper can be seen, ms.
    #[serde(default = "d_taper_after_ms")]
    pub taper_after_ms: u64,
    /// Taper: power below this fraction of the session peak, 0..1.
    #[serde(default = "d_taper_fraction")]
    pub taper_fraction: f32,
    /// Co-transition window, ms.
    #[serde(default = "d_cluster_window_ms")]
    pub cluster_window_ms: u64,
    /// Co-transitions needed to link two sockets.
    #[serde(default = "d_cluster_min_events")]
    pub cluster_min_events: u16,
    /// Co-transitions / transitions needed to link two sockets, 0..1.
    #[serde(default = "d_cluster_min_ratio")]
    pub cluster_min_ratio: f32,
    /// Below this power, W, a host is idle.
    #[serde(default = "d_host_idle_threshold_w")]
    pub host_idle_threshold_w: f32,
    /// Host idle time before its peripherals go off, ms.
    #[serde(default = "d_host_idle_after_ms")]
    pub host_idle_after_ms: u64,
    /// Configured host + peripheral groups.
    #[serde(default)]
    pub groups: heapless::Vec<GroupConfig, MAX_GROUPS>,
}

fn d_standby_threshold_w() -> f32 {
    1.0
}
fn d_standby_after_ms() -> u64 {
    30 * 60_000
}
fn d_defer_above_soc() -> f32 {
    0.8
}
fn d_taper_after_ms() -> u64 {
    60 * 60_000
}
fn d_taper_fraction() -> f32 {
    0.5
}
fn d_cluster_window_ms() -> u64 {
    60_000
}
fn d_cluster_min_events() -> u16 {
    3
}
fn d_cluster_min_ratio() -> f32 {
    0.8
}
fn d_host_idle_threshold_w() -> f32 {
    12.0
}
fn d_host_idle_after_ms() -> u64 {
    10 * 60_000
}

impl Default for SelectiveConfig {
    fn default() -> Self {
        SelectiveConfig {
            socket_circuits: heapless::Vec::new(),
            standby_threshold_w: d_standby_threshold_w(),
            standby_after_ms: d_standby_after_ms(),
            standby_cap_w: 0.0,
            defer_above_soc: d_defer_above_soc(),
            defer_cap_w: 0.0,
            taper_after_ms: d_taper_after_ms(),
            taper_fraction: d_taper_fraction(),
            cluster_window_ms: d_cluster_window_ms(),
            cluster_min_events: d_cluster_min_events(),
            cluster_min_ratio: d_cluster_min_ratio(),
            host_idle_threshold_w: d_host_idle_threshold_w(),
            host_idle_after_ms: d_host_idle_after_ms(),
            groups: heapless::Vec::new(),
        }
    }
}

impl SelectiveConfig {
    /// Checks ranges and indices.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, power_w) in [
            ("standby_threshold_w", self.standby_threshold_w),
            ("standby_cap_w", self.standby_cap_w),
            ("defer_cap_w", self.defer_cap_w),
            ("host_idle_threshold_w", self.host_idle_threshold_w),
        ] {
            check_range(field, power_w, 0.0..)?;
        }
        for (field, fraction) in [
            ("defer_above_soc", self.defer_above_soc),
            ("taper_fraction", self.taper_fraction),
            ("cluster_min_ratio", self.cluster_min_ratio),
        ] {
            check_range(field, fraction, 0.0..=1.0)?;
        }
        for (field, ms) in [
            ("standby_after_ms", self.standby_after_ms),
            ("taper_after_ms", self.taper_after_ms),
            ("cluster_window_ms", self.cluster_window_ms),
            ("host_idle_after_ms", self.host_idle_after_ms),
        ] {
            check_range(field, ms, 1..)?;
        }
        check_range("cluster_min_events", self.cluster_min_events, 1..)?;
        for &c in &self.socket_circuits {
            check_range("socket_circuits", usize::from(c), ..MAX_CIRCUITS)?;
        }
        for g in &self.groups {
            for &s in core::iter::once(&g.host).chain(g.peripherals.iter()) {
                check_range("groups", usize::from(s), ..MAX_SOCKETS)?;
            }
            if g.peripherals.contains(&g.host) {
                return Err(ConfigError::new(
                    "groups",
                    format_args!("socket {} is both host and peripheral", g.host),
                ));
            }
        }
        Ok(())
    }
}

/// A negotiated USB-PD contract.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PdContract {
    /// Contract voltage, V.
    pub voltage_v: f32,
    /// Contract maximum current, A.
    pub max_current_a: f32,
}

/// Device identity from enumeration (USB-PD Discover Identity VID/PID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId {
    pub vendor_id: u16,
    pub product_id: u16,
}

/// What one socket reports at an update.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SocketInput {
    /// A device is attached.
    pub plugged: bool,
    /// The negotiated contract, if any.
    pub contract: Option<PdContract>,
    /// The sink's advertised maximum power, W, if known.
    pub sink_max_w: Option<f32>,
    /// Device identity, if enumeration gave one.
    pub device_id: Option<DeviceId>,
    /// The device's battery level, 0..1, if PD battery status is available.
    pub battery_soc: Option<f32>,
    /// Measured power delivered by the socket, W.
    pub power_w: f32,
    /// A user/remote request to use this socket now (wakes it).
    pub wake: bool,
}

/// Device class from enumeration and power profile (rules in module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceClass {
    Phone,
    Tablet,
    Laptop,
    Monitor,
    Tv,
    Peripheral,
    #[default]
    Unknown,
}

impl DeviceClass {
    /// Classes that carry a battery being charged.
    pub fn has_battery(self) -> bool {
        matches!(
            self,
            DeviceClass::Phone | DeviceClass::Tablet | DeviceClass::Laptop
        )
    }
    fn is_host(self) -> bool {
        matches!(self, DeviceClass::Laptop | DeviceClass::Tablet)
    }
    fn is_peripheral(self) -> bool {
        matches!(
            self,
            DeviceClass::Monitor | DeviceClass::Tv | DeviceClass::Peripheral | DeviceClass::Unknown
        )
    }
}

/// Classifies from the contract and sink capabilities; `taper_seen` marks a
/// device whose profile showed a battery charge taper. Invalid (NaN,
/// negative) figures are ignored.
pub fn classify(
    contract: Option<PdContract>,
    sink_max_w: Option<f32>,
    taper_seen: bool,
) -> DeviceClass {
    let valid = |x: f32| x.is_finite() && x >= 0.0;
    let contract = contract.filter(|c| valid(c.voltage_v) && valid(c.max_current_a));
    let sink = sink_max_w.filter(|&w| valid(w));
    let contract_w = contract.map(|c| c.voltage_v * c.max_current_a);
    let p = match (contract_w, sink) {
        (None, None) => return DeviceClass::Unknown,
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) => a,
        (None, Some(b)) => b,
    };
    let v = contract.map(|c| c.voltage_v).unwrap_or(5.0);
    if p < 7.5 {
        DeviceClass::Peripheral
    } else if v <= 9.05 && p <= 27.05 {
        DeviceClass::Phone
    } else if v <= 15.05 && p <= 45.05 {
        DeviceClass::Tablet
    } else if p <= 65.05 || taper_seen {
        DeviceClass::Laptop
    } else if p <= 100.05 && v <= 20.05 {
        DeviceClass::Monitor
    } else {
        DeviceClass::Tv
    }
}

/// Why the socket is in the commanded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectiveReason {
    /// Normal supply, no restriction.
    Normal,
    /// Unused device put in standby.
    Standby,
    /// End-device battery charging deferred during a peak/event.
    ChargeDeferred,
    /// Peripheral switched off because its cluster host is idle.
    HostIdle,
}

/// One socket's wish: on/off, optional power cap, and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SocketCommand {
    pub socket: u8,
    pub on: bool,
    /// Power cap, W (e.g. a lower PD contract), None = no cap.
    pub power_cap_w: Option<f32>,
    pub reason: SelectiveReason,
}

/// Per-device power profile (the device currently or last on a socket).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PowerProfile {
    pub device_id: Option<DeviceId>,
    /// Lowest measured power, W (None before the first valid sample).
    pub min_w: Option<f32>,
    /// Highest measured power, W.
    pub max_w: Option<f32>,
    /// Energy delivered, Wh.
    pub energy_wh: f64,
    /// Time plugged with valid measurements, ms.
    pub plugged_ms: u64,
    /// Time with power ≥ standby threshold, ms.
    pub active_ms: u64,
}

impl PowerProfile {
    /// Mean power over the plugged time, W, clamped into [min, max];
    /// None until some time has been integrated.
    pub fn mean_w(&self) -> Option<f32> {
        let (lo, hi) = (self.min_w?, self.max_w?);
        if self.plugged_ms == 0 {
            return None;
        }
        let m = (self.energy_wh * 3_600_000.0 / self.plugged_ms as f64) as f32;
        Some(if m.is_finite() { m.clamp(lo, hi) } else { lo })
    }

    fn add(&mut self, p: f32) {
        self.min_w = Some(self.min_w.map_or(p, |m| m.min(p)));
        self.max_w = Some(self.max_w.map_or(p, |m| m.max(p)));
    }
}

/// Min/max/latest load of a socket or circuit over the reporting period, W.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadStats {
    pub now_w: f32,
    pub min_w: Option<f32>,
    pub max_w: Option<f32>,
}

impl LoadStats {
    fn add(&mut self, p: f32) {
        self.now_w = p;
        self.min_w = Some(self.min_w.map_or(p, |m| m.min(p)));
        self.max_w = Some(self.max_w.map_or(p, |m| m.max(p)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct SocketState {
    plugged: bool,
    class: DeviceClass,
    profile: PowerProfile,
    load: LoadStats,
    last_power_w: Option<f32>,
    plugged_at: Millis,
    /// Last time power was ≥ standby threshold (or woken / plugged).
    last_active: Millis,
    /// Last time power was ≥ host idle threshold (or woken / plugged).
    last_host_active: Millis,
    session_peak_w: f32,
    taper_seen: bool,
    standby: bool,
    deferred: bool,
    host_idle_off: bool,
    wake_override: bool,
    /// Active state for transition learning, and when it last changed.
    active: bool,
    last_transition: Option<(Millis, bool)>,
    transitions: u16,
    /// Last identified device on this socket (for forgetting links).
    profile_prev_id: Option<DeviceId>,
}

/// Selective-supply state for up to [`MAX_SOCKETS`] sockets.
#[derive(Debug, Clone, PartialEq)]
pub struct Selective {
    cfg: SelectiveConfig,
    sockets: [SocketState; MAX_SOCKETS],
    circuits: [LoadStats; MAX_CIRCUITS],
    /// Pairwise co-transition counts (symmetric).
    co: [[u16; MAX_SOCKETS]; MAX_SOCKETS],
    last_update: Option<Millis>,
    rejected: u32,
}

impl Selective {
    /// New state; the config should have been validated.
    pub fn new(cfg: SelectiveConfig) -> Self {
        Selective {
            cfg,
            sockets: [SocketState::default(); MAX_SOCKETS],
            circuits: [LoadStats::default(); MAX_CIRCUITS],
            co: [[0; MAX_SOCKETS]; MAX_SOCKETS],
            last_update: None,
            rejected: 0,
        }
    }

    /// One control step. `inputs[i]` is socket `i` (extra inputs beyond
    /// [`MAX_SOCKETS`] are ignored and counted). Returns one command per
    /// handled socket. Invalid measurements (NaN/inf/negative power) are
    /// counted and leave that socket's timers and profile untouched; an
    /// update with `now` earlier than the previous one integrates nothing.
    /// `peak_or_event`: a peak or demand event is on for every socket.
    pub fn update(
        &mut self,
        now: Millis,
        inputs: &[SocketInput],
        peak_or_event: bool,
    ) -> heapless::Vec<SocketCommand, MAX_SOCKETS> {
        let mask = if peak_or_event { u16::MAX } else { 0 };
        self.update_masked(now, inputs, mask)
    }

    /// Like [`Selective::update`], with the event per socket: bit `i` of
    /// `event_sockets` set means socket `i` is in a peak or demand event
    /// (e.g. a deferral addressed to its circuit only).
    pub fn update_masked(
        &mut self,
        now: Millis,
        inputs: &[SocketInput],
        event_sockets: u16,
    ) -> heapless::Vec<SocketCommand, MAX_SOCKETS> {
        if inputs.len() > MAX_SOCKETS {
            self.rejected = self
                .rejected
                .saturating_add((inputs.len() - MAX_SOCKETS) as u32);
        }
        let dt_ms = match self.last_update {
            Some(prev) if now >= prev => now.since(prev),
            Some(_) => {
                self.rejected = self.rejected.saturating_add(1);
                0
            }
            None => 0,
        };
        if self.last_update.is_none_or(|p| now > p) {
            self.last_update = Some(now);
        }
        let n = inputs.len().min(MAX_SOCKETS);
        let mut circuit_sum = [0.0f32; MAX_CIRCUITS];
        let mut circuit_seen = [false; MAX_CIRCUITS];

        for (i, inp) in inputs.iter().take(n).enumerate() {
            let valid = inp.power_w.is_finite() && inp.power_w >= 0.0;
            if !valid {
                self.rejected = self.rejected.saturating_add(1);
            }
            let in_event = event_sockets & (1u16 << i) != 0;
            self.step_socket(i, now, dt_ms, inp, valid, in_event);
            if let Some(&c) = self.cfg.socket_circuits.get(i) {
                if let (Some(sum), Some(seen)) = (
                    circuit_sum.get_mut(c as usize),
                    circuit_seen.get_mut(c as usize),
                ) {
                    *seen = true;
                    if valid {
                        *sum += inp.power_w;
                    }
                }
            }
        }
        for (c, stats) in self.circuits.iter_mut().enumerate() {
            if circuit_seen[c] {
                stats.add(circuit_sum[c]);
            }
        }
        self.apply_clusters(now, n);

        let mut out = heapless::Vec::new();
        for (i, s) in self.sockets.iter().take(n).enumerate() {
            let _ = out.push(self.socket_command(i, s));
        }
        out
    }

    /// Socket `i`'s command from its state: off while its host is idle; in
    /// standby or deferred at that cap (0 = off); else on.
    fn socket_command(&self, i: usize, s: &SocketState) -> SocketCommand {
        let capped = |cap: f32, reason| (cap > 0.0, (cap > 0.0).then_some(cap), reason);
        let (on, power_cap_w, reason) = if s.host_idle_off {
            (false, None, SelectiveReason::HostIdle)
        } else if s.standby {
            capped(self.cfg.standby_cap_w, SelectiveReason::Standby)
        } else if s.deferred {
            capped(self.cfg.defer_cap_w, SelectiveReason::ChargeDeferred)
        } else {
            (true, None, SelectiveReason::Normal)
        };
        SocketCommand {
            socket: i as u8,
            on,
            power_cap_w,
            reason,
        }
    }

    fn step_socket(
        &mut self,
        i: usize,
        now: Millis,
        dt_ms: u64,
        inp: &SocketInput,
        valid: bool,
        peak: bool,
    ) {
        let cfg = &self.cfg;
        let Some(s) = self.sockets.get_mut(i) else {
            return;
        };
        if on_plug_events(s, now, inp) {
            forget_links(&mut self.co, i);
        }
        s.plugged = inp.plugged;
        if inp.wake {
            s.standby = false;
            s.last_active = now;
            s.wake_override = true;
        }
        if !inp.plugged {
            s.class = DeviceClass::Unknown;
            if valid {
                s.load.add(inp.power_w);
            }
            note_activity(s, now, false, false);
            return;
        }
        if !valid {
            return;
        }
        let p = inp.power_w;
        record_power(s, cfg, now, dt_ms, inp);
        // Standby.
        let active = p >= cfg.standby_threshold_w;
        if active && !s.standby {
            s.last_active = now;
        }
        if p >= cfg.host_idle_threshold_w {
            s.last_host_active = now;
        }
        if !s.standby && !s.deferred && now.since(s.last_active) >= cfg.standby_after_ms {
            s.standby = true;
        }
        update_deferral(s, cfg, now, inp, active, peak);
        let learn = !s.standby && !s.deferred && !s.host_idle_off;
        note_activity(s, now, active, learn);
        if learn {
            self.count_co_transitions(i, now);
        }
    }

    /// Socket `i`'s transition at `now`, if it made one, against every
    /// other socket's latest one: a same-direction transition within the
    /// cluster window counts one co-transition for the pair.
    fn count_co_transitions(&mut self, i: usize, now: Millis) {
        let Some((t, dir)) = self.sockets.get(i).and_then(|s| s.last_transition) else {
            return;
        };
        if t != now {
            return;
        }
        for j in (0..MAX_SOCKETS).filter(|&j| j != i) {
            let Some((tj, dj)) = self.sockets.get(j).and_then(|o| o.last_transition) else {
                continue;
            };
            if dj == dir && now.since(tj) <= self.cfg.cluster_window_ms {
                for (a, b) in [(i, j), (j, i)] {
                    if let Some(c) = self.co.get_mut(a).and_then(|row| row.get_mut(b)) {
                        *c = c.saturating_add(1);
                    }
                }
            }
        }
    }

    /// True if sockets `a` and `b` are linked by learning (rules in the
    /// module docs).
    pub fn learned_link(&self, a: usize, b: usize) -> bool {
        if a == b {
            return false;
        }
        let (Some(sa), Some(sb)) = (self.sockets.get(a), self.sockets.get(b)) else {
            return false;
        };
        let co = self.co.get(a).and_then(|r| r.get(b)).copied().unwrap_or(0);
        let denom = sa.transitions.min(sb.transitions).max(1);
        co >= self.cfg.cluster_min_events && co as f32 / denom as f32 >= self.cfg.cluster_min_ratio
    }

    /// Host socket of peripheral `p`, if any (configured groups first, then
    /// learned links with a Laptop/Tablet host).
    pub fn host_of(&self, p: usize) -> Option<usize> {
        for g in &self.cfg.groups {
            if g.peripherals.iter().any(|&x| x as usize == p) {
                return Some(g.host as usize);
            }
        }
        let ps = self.sockets.get(p)?;
        if !ps.plugged || !ps.class.is_peripheral() {
            return None;
        }
        (0..MAX_SOCKETS).find(|&h| {
            self.sockets
                .get(h)
                .is_some_and(|hs| hs.plugged && hs.class.is_host())
                && self.learned_link(h, p)
        })
    }

    fn apply_clusters(&mut self, now: Millis, n: usize) {
        let after = self.cfg.host_idle_after_ms;
        for p in 0..n {
            let host = self.host_of(p);
            let host_idle = host
                .and_then(|h| self.sockets.get(h))
                .map(|hs| !hs.plugged || now.since(hs.last_host_active) >= after);
            let Some(s) = self.sockets.get_mut(p) else {
                continue;
            };
            match host_idle {
                Some(true) if !s.wake_override => {
                    s.host_idle_off = true;
                }
                Some(true) => {
                    s.host_idle_off = false;
                }
                _ => {
                    if s.host_idle_off {
                        s.host_idle_off = false;
                        s.standby = false;
                        s.last_active = now;
                    }
                    // Host active again: a later idle period applies anew.
                    if host_idle == Some(false) {
                        s.wake_override = false;
                    }
                }
            }
        }
    }

    /// Circuit of socket `i` from the config (for the controller to map
    /// socket wishes and loads onto circuits).
    pub fn circuit_of(&self, i: usize) -> Option<u8> {
        self.cfg.socket_circuits.get(i).copied()
    }
    /// Device class on socket `i` (Unknown if unplugged or out of range).
    pub fn class(&self, i: usize) -> DeviceClass {
        self.sockets
            .get(i)
            .map_or(DeviceClass::Unknown, |s| s.class)
    }
    /// Power profile of the device on socket `i`.
    pub fn profile(&self, i: usize) -> Option<&PowerProfile> {
        self.sockets.get(i).map(|s| &s.profile)
    }
    /// Min/max load of socket `i` over the reporting period.
    pub fn socket_load(&self, i: usize) -> Option<LoadStats> {
        self.sockets.get(i).map(|s| s.load)
    }
    /// Min/max load of circuit `c` (sum of its sockets) over the period.
    pub fn circuit_load(&self, c: usize) -> Option<LoadStats> {
        self.circuits.get(c).copied()
    }
    /// Starts a new min/max reporting period.
    pub fn reset_load_period(&mut self) {
        for s in self.sockets.iter_mut() {
            s.load.min_w = None;
            s.load.max_w = None;
        }
        for c in self.circuits.iter_mut() {
            c.min_w = None;
            c.max_w = None;
        }
    }
    /// Invalid inputs seen (NaN/negative power, time going back, excess
    /// sockets).
    pub fn rejected(&self) -> u32 {
        self.rejected
    }
}

/// Records an active/inactive transition for learning.
/// Plug and unplug events on a socket. A plug-in wakes the socket (also
/// from a host-idle switch-off) and restarts the session; the power profile
/// is kept only for the same identified device. Returns whether a
/// different identified device was plugged in (its learned links are then
/// to be forgotten; the socket's transition counts already are).
fn on_plug_events(s: &mut SocketState, now: Millis, inp: &SocketInput) -> bool {
    if inp.plugged && !s.plugged {
        let same = inp.device_id.is_some() && inp.device_id == s.profile.device_id;
        if !same {
            s.profile = PowerProfile {
                device_id: inp.device_id,
                ..PowerProfile::default()
            };
            s.taper_seen = false;
        }
        let other = matches!((inp.device_id, s.profile_prev_id), (Some(a), Some(b)) if a != b);
        if other {
            s.transitions = 0;
            s.last_transition = None;
        }
        if inp.device_id.is_some() {
            s.profile_prev_id = inp.device_id;
        }
        s.wake_override = true;
        s.host_idle_off = false;
        s.plugged_at = now;
        s.last_active = now;
        s.last_host_active = now;
        s.session_peak_w = 0.0;
        s.standby = false;
        s.last_power_w = None;
        other
    } else {
        if !inp.plugged && s.plugged {
            s.standby = false;
            s.deferred = false;
            s.last_power_w = None;
        }
        false
    }
}

/// Forgets every co-transition of socket `i` (row and column).
fn forget_links(co: &mut [[u16; MAX_SOCKETS]; MAX_SOCKETS], i: usize) {
    for (r, row) in co.iter_mut().enumerate() {
        if let Some(c) = row.get_mut(i) {
            *c = 0;
        }
        if r == i {
            *row = [0; MAX_SOCKETS];
        }
    }
}

/// A valid power reading of a plugged socket: the power profile (left rule
/// with the previous valid power), the load, the charge taper and the
/// device class.
fn record_power(
    s: &mut SocketState,
    cfg: &SelectiveConfig,
    now: Millis,
    dt_ms: u64,
    inp: &SocketInput,
) {
    let p = inp.power_w;
    if let Some(prev) = s.last_power_w {
        s.profile.energy_wh += prev as f64 * dt_ms as f64 / 3_600_000.0;
        s.profile.plugged_ms = s.profile.plugged_ms.saturating_add(dt_ms);
        if prev >= cfg.standby_threshold_w {
            s.profile.active_ms = s.profile.active_ms.saturating_add(dt_ms);
        }
    }
    s.profile.add(p);
    s.load.add(p);
    s.last_power_w = Some(p);
    s.session_peak_w = s.session_peak_w.max(p);
    if now.since(s.plugged_at) >= cfg.taper_after_ms
        && p >= cfg.standby_threshold_w
        && p < cfg.taper_fraction * s.session_peak_w
    {
        s.taper_seen = true;
    }
    s.class = classify(inp.contract, inp.sink_max_w, s.taper_seen);
}

/// Deferral, latched until the peak or event ends: an active battery
/// device whose charge is above `defer_above_soc` (its reported level, else
/// "a charge taper seen").
fn update_deferral(
    s: &mut SocketState,
    cfg: &SelectiveConfig,
    now: Millis,
    inp: &SocketInput,
    active: bool,
    peak: bool,
) {
    if peak {
        // A device that reports its charge (USB-PD Battery_Status) has a
        // battery whatever its contract says.
        let reported_soc = inp.battery_soc.filter(|x| x.is_finite());
        if !s.deferred
            && active
            && (s.class.has_battery() || s.taper_seen || reported_soc.is_some())
        {
            let above = match reported_soc {
                Some(soc) => soc >= cfg.defer_above_soc,
                None => s.taper_seen,
            };
            s.deferred = above;
        }
    } else if s.deferred {
        s.deferred = false;
        s.last_active = now;
    }
}

fn note_activity(s: &mut SocketState, now: Millis, active: bool, learn: bool) {
    if active != s.active {
        s.active = active;
        if learn {
            s.last_transition = Some((now, active));
            s.transitions = s.transitions.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: u64 = 60_000;

    fn pd(v: f32, a: f32) -> Option<PdContract> {
        Some(PdContract {
            voltage_v: v,
            max_current_a: a,
        })
    }

    fn dev(v: f32, a: f32, p: f32) -> SocketInput {
        SocketInput {
            plugged: true,
            contract: pd(v, a),
            power_w: p,
            ..SocketInput::default()
        }
    }

    fn cmd(out: &[SocketCommand], i: usize) -> SocketCommand {
        *out.iter().find(|c| c.socket as usize == i).unwrap()
    }

    #[test]
    fn classifies_typical_contracts() {
        use DeviceClass::*;
        assert_eq!(classify(pd(5.0, 2.0), None, false), Phone);
        assert_eq!(classify(pd(5.0, 3.0), None, false), Phone);
        assert_eq!(classify(pd(9.0, 3.0), None, false), Phone);
        assert_eq!(classify(pd(15.0, 3.0), None, false), Tablet);
        assert_eq!(classify(pd(20.0, 3.25), None, false), Laptop);
        assert_eq!(classify(pd(20.0, 3.0), None, false), Laptop);
        assert_eq!(classify(pd(20.0, 5.0), None, false), Monitor);
        assert_eq!(classify(pd(28.0, 5.0), None, false), Tv);
        assert_eq!(classify(pd(48.0, 5.0), None, false), Tv);
        assert_eq!(classify(pd(20.0, 5.0), None, true), Laptop);
        assert_eq!(classify(pd(5.0, 0.9), None, false), Peripheral);
        assert_eq!(classify(pd(5.0, 0.9), Some(60.0), false), Laptop);
        assert_eq!(classify(None, Some(10.0), false), Phone);
        assert_eq!(classify(None, None, false), Unknown);
        assert_eq!(classify(pd(f32::NAN, 3.0), None, false), Unknown);
    }

    #[test]
    fn config_defaults_validate_and_toml_shape() {
        assert!(SelectiveConfig::default().validate().is_ok());
        let bad = SelectiveConfig {
            defer_above_soc: 1.5,
            ..SelectiveConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field.as_str(),
            "defer_above_soc"
        );
        let mut bad = SelectiveConfig::default();
        bad.socket_circuits.push(16).unwrap();
        assert!(bad.validate().is_err());
        let cfg: SelectiveConfig = toml::from_str(
            "socket_circuits = [0, 0, 1]\nstandby_after_ms = 600000\n\
             [[groups]]\nhost = 0\nperipherals = [1, 2]\n",
        )
        .unwrap();
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.groups[0].peripherals.as_slice(), &[1, 2]);
        assert!(toml::from_str::<SelectiveConfig>("bogus = 1").is_err());
    }

    #[test]
    fn standby_after_idle_time_not_before_and_wake() {
        let mut s = Selective::new(SelectiveConfig::default());
        let idle = dev(5.0, 2.0, 0.3);
        for m in 0..30 {
            let out = s.update(Millis(m * MIN), &[idle], false);
            assert_eq!(cmd(&out, 0).reason, SelectiveReason::Normal, "minute {m}");
            assert!(cmd(&out, 0).on);
        }
        let out = s.update(Millis(30 * MIN), &[idle], false);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Standby);
        assert!(!cmd(&out, 0).on);
        // Stays in standby with zero power.
        let off = dev(5.0, 2.0, 0.0);
        let out = s.update(Millis(40 * MIN), &[off], false);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Standby);
        // Wake on request.
        let out = s.update(
            Millis(41 * MIN),
            &[SocketInput { wake: true, ..off }],
            false,
        );
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Normal);
        // Idle again for 30 min → standby; a replug wakes it.
        let out = s.update(Millis(71 * MIN), &[off], false);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Standby);
        s.update(Millis(72 * MIN), &[SocketInput::default()], false);
        let out = s.update(Millis(73 * MIN), &[off], false);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Normal);
    }

    #[test]
    fn active_device_never_goes_to_standby() {
        let mut s = Selective::new(SelectiveConfig::default());
        for m in 0..600 {
            let out = s.update(Millis(m * MIN), &[dev(20.0, 5.0, 25.0)], false);
            assert_eq!(cmd(&out, 0).reason, SelectiveReason::Normal);
        }
    }

    #[test]
    fn standby_with_cap_keeps_socket_on() {
        let cfg = SelectiveConfig {
            standby_cap_w: 0.5,
            ..SelectiveConfig::default()
        };
        let mut s = Selective::new(cfg);
        let mut out = heapless::Vec::new();
        for m in 0..=30 {
            out = s.update(Millis(m * MIN), &[dev(5.0, 2.0, 0.1)], false);
        }
        assert_eq!(
            cmd(&out, 0),
            SocketCommand {
                socket: 0,
                on: true,
                power_cap_w: Some(0.5),
                reason: SelectiveReason::Standby
            }
        );
    }

    #[test]
    fn a_reported_charge_defers_a_device_without_a_contract() {
        // No USB-PD contract seen (class unknown) and no taper yet: the
        // reported charge alone says it has a battery, and that it is full
        // enough to wait.
        let mut s = Selective::new(SelectiveConfig::default());
        let phone = |soc: f32| SocketInput {
            plugged: true,
            power_w: 20.0,
            battery_soc: Some(soc),
            ..SocketInput::default()
        };
        s.update(Millis(0), &[phone(0.9), phone(0.5)], false);
        let out = s.update(Millis(MIN), &[phone(0.9), phone(0.5)], true);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::ChargeDeferred);
        assert!(!cmd(&out, 0).on);
        assert!(cmd(&out, 1).on);
        assert_eq!(cmd(&out, 1).reason, SelectiveReason::Normal);
    }

    #[test]
    fn deferral_by_reported_battery_level() {
        let mut s = Selective::new(SelectiveConfig::default());
        let high = SocketInput {
            battery_soc: Some(0.9),
            ..dev(9.0, 2.0, 15.0)
        };
        let low = SocketInput {
            battery_soc: Some(0.4),
            ..dev(9.0, 2.0, 15.0)
        };
        s.update(Millis(0), &[high, low], false);
        let out = s.update(Millis(MIN), &[high, low], true);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::ChargeDeferred);
        assert!(!cmd(&out, 0).on);
        assert_eq!(cmd(&out, 1).reason, SelectiveReason::Normal);
        // Latched during the peak even as the device draws nothing.
        let idle = SocketInput {
            power_w: 0.0,
            ..high
        };
        for m in 2..100 {
            let out = s.update(Millis(m * MIN), &[idle, low], true);
            assert_eq!(cmd(&out, 0).reason, SelectiveReason::ChargeDeferred);
        }
        // Resumes after the peak.
        let out = s.update(Millis(100 * MIN), &[high, low], false);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Normal);
        assert!(cmd(&out, 0).on);
    }

    #[test]
    fn deferral_by_taper_proxy_and_not_for_non_battery_devices() {
        let mut s = Selective::new(SelectiveConfig::default());
        // Laptop: 60 W for 50 min then tapering to 20 W after 1 h.
        // Monitor: steady 30 W (no battery, never deferred).
        for m in 0..=70 {
            let p = if m < 50 { 60.0 } else { 20.0 };
            let out = s.update(
                Millis(m * MIN),
                &[dev(20.0, 3.25, p), dev(20.0, 5.0, 30.0)],
                false,
            );
            assert!(out.iter().all(|c| c.reason == SelectiveReason::Normal));
        }
        // During the first hour (before taper_after_ms) a peak does not defer.
        let mut fresh = Selective::new(SelectiveConfig::default());
        fresh.update(Millis(0), &[dev(20.0, 3.25, 60.0)], false);
        let out = fresh.update(Millis(MIN), &[dev(20.0, 3.25, 60.0)], true);
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::Normal);
        // The tapered laptop is deferred, the monitor is not.
        let out = s.update(
            Millis(71 * MIN),
            &[dev(20.0, 3.25, 20.0), dev(20.0, 5.0, 30.0)],
            true,
        );
        assert_eq!(cmd(&out, 0).reason, SelectiveReason::ChargeDeferred);
        assert_eq!(cmd(&out, 1).reason, SelectiveReason::Normal);
    }

    #[test]
    fn deferral_cap_keeps_device_alive() {
        let cfg = SelectiveConfig {
            defer_cap_w: 5.0,
            ..SelectiveConfig::default()
        };
        let mut s = Selective::new(cfg);
        let ph = SocketInput {
            battery_soc: Some(0.95),
            ..dev(5.0, 3.0, 10.0)
        };
        let out = s.update(Millis(0), &[ph], true);
        assert_eq!(
            cmd(&out, 0),
            SocketCommand {
                socket: 0,
                on: true,
                power_cap_w: Some(5.0),
                reason: SelectiveReason::ChargeDeferred
            }
        );
    }

    /// Laptop on socket 0 and monitor on socket 1 used together; a phone on
    /// socket 2 charges at unrelated times.
    fn usage_history(s: &mut Selective, cycles: u64) -> u64 {
        let mut t = 0;
        for c in 0..cycles {
            // 20 min on (monitor 30 s after the laptop), 20 min off.
            for m in 0..40u64 {
                for half in 0..2u64 {
                    let sec = m * 60 + half * 30;
                    let laptop_on = m < 20;
                    let monitor_on = (m < 20 && sec >= 30) || (m == 20 && half == 0);
                    let phone_on = (m + 3 * c) % 20 < 8;
                    let inp = [
                        dev(20.0, 3.0, if laptop_on { 30.0 } else { 0.0 }),
                        dev(20.0, 5.0, if monitor_on { 25.0 } else { 0.2 }),
                        dev(5.0, 2.0, if phone_on { 8.0 } else { 0.0 }),
                    ];
                    let out = s.update(Millis(t), &inp, false);
                    // Nothing is linked before the third co-transition.
                    if c == 0 {
                        assert!(out.iter().all(|c| c.on), "{out:?}");
                    }
                    t += 30_000;
                }
            }
        }
        t
    }

    #[test]
    fn learns_cluster_and_switches_peripherals_with_host() {
        let mut s = Selective::new(SelectiveConfig::default());
        let mut t = usage_history(&mut s, 5);
        assert!(s.learned_link(0, 1));
        assert!(!s.learned_link(0, 2));
        assert!(!s.learned_link(1, 2));
        assert_eq!(s.host_of(1), Some(0));
        assert_eq!(s.host_of(2), None);
        assert_eq!(s.class(0), DeviceClass::Laptop);
        assert_eq!(s.class(1), DeviceClass::Monitor);

        // Host active, then idle at 5 W (below 12 W) with the monitor on.
        let active = [
            dev(20.0, 3.0, 40.0),
            dev(20.0, 5.0, 25.0),
            dev(5.0, 2.0, 0.0),
        ];
        s.update(Millis(t), &active, false);
        let idle = [
            dev(20.0, 3.0, 5.0),
            dev(20.0, 5.0, 25.0),
            dev(5.0, 2.0, 0.0),
        ];
        let start = t;
        loop {
            t += 30_000;
            let out = s.update(Millis(t), &idle, false);
            if t - start < 10 * MIN {
                assert!(cmd(&out, 1).on, "off too early at {} ms", t - start);
            } else {
                assert_eq!(cmd(&out, 1).reason, SelectiveReason::HostIdle);
                assert!(!cmd(&out, 1).on);
                assert!(cmd(&out, 0).on);
                assert!(cmd(&out, 2).on);
                break;
            }
        }
        // Host becomes active: the monitor comes back.
        let out = s.update(Millis(t + 1000), &active, false);
        assert_eq!(cmd(&out, 1).reason, SelectiveReason::Normal);
        assert!(cmd(&out, 1).on);

        // A different identified device on the monitor's socket: the link is
        // forgotten (an unidentified replug keeps it).
        let none = SocketInput::default();
        let with_id = |vid| SocketInput {
            device_id: Some(DeviceId {
                vendor_id: vid,
                product_id: 1,
            }),
            ..dev(20.0, 5.0, 25.0)
        };
        s.update(Millis(t + 2000), &[active[0], none, none], false);
        s.update(Millis(t + 3000), &[active[0], with_id(1), none], false);
        assert!(s.learned_link(0, 1));
        s.update(Millis(t + 4000), &[active[0], none, none], false);
        s.update(Millis(t + 5000), &[active[0], with_id(2), none], false);
        assert!(!s.learned_link(0, 1));
        assert_eq!(s.host_of(1), None);
    }

    #[test]
    fn configured_group_without_learning_and_wake_override() {
        let mut cfg = SelectiveConfig::default();
        let mut per = heapless::Vec::new();
        per.push(2).unwrap();
        cfg.groups
            .push(GroupConfig {
                host: 0,
                peripherals: per,
            })
            .unwrap();
        let mut s = Selective::new(cfg);
        let host_idle = dev(20.0, 3.0, 2.0);
        let speaker = dev(5.0, 1.0, 3.0);
        let mut out = heapless::Vec::new();
        for m in 0..=10 {
            out = s.update(
                Millis(m * MIN),
                &[host_idle, SocketInput::default(), speaker],
                false,
            );
        }
        assert_eq!(cmd(&out, 2).reason, SelectiveReason::HostIdle);
        // A wake request on the speaker overrides while the host stays idle.
        let woke = SocketInput {
            wake: true,
            ..speaker
        };
        let out = s.update(
            Millis(11 * MIN),
            &[host_idle, SocketInput::default(), woke],
            false,
        );
        assert_eq!(cmd(&out, 2).reason, SelectiveReason::Normal);
        let out = s.update(
            Millis(12 * MIN),
            &[host_idle, SocketInput::default(), speaker],
            false,
        );
        assert_eq!(cmd(&out, 2).reason, SelectiveReason::Normal);
        // A plug event on the peripheral while the host idles also wakes it.
        let mut out = heapless::Vec::new();
        for m in 14..30 {
            out = s.update(
                Millis(m * MIN),
                &[dev(20.0, 3.0, 40.0), SocketInput::default(), speaker],
                false,
            );
        }
        assert_eq!(cmd(&out, 2).reason, SelectiveReason::Normal);
        for m in 30..=40 {
            out = s.update(
                Millis(m * MIN),
                &[host_idle, SocketInput::default(), speaker],
                false,
            );
        }
        assert_eq!(cmd(&out, 2).reason, SelectiveReason::HostIdle);
        s.update(
            Millis(41 * MIN),
            &[host_idle, SocketInput::default(), SocketInput::default()],
            false,
        );
        let out = s.update(
            Millis(42 * MIN),
            &[host_idle, SocketInput::default(), speaker],
            false,
        );
        assert_eq!(cmd(&out, 2).reason, SelectiveReason::Normal, "plug wakes");
        // Unplugging the host counts as idle.
        let out = s.update(
            Millis(43 * MIN),
            &[SocketInput::default(), SocketInput::default(), speaker],
            false,
        );
        assert_eq!(
            cmd(&out, 2).reason,
            SelectiveReason::Normal,
            "override holds"
        );
    }

    #[test]
    fn profile_and_min_max_load_per_socket_and_circuit() {
        let mut cfg = SelectiveConfig::default();
        for c in [0u8, 0, 1] {
            cfg.socket_circuits.push(c).unwrap();
        }
        let mut s = Selective::new(cfg);
        let id = DeviceId {
            vendor_id: 0x05ac,
            product_id: 0x1234,
        };
        let steps = [(10.0f32, 5.0f32), (20.0, 5.0), (30.0, 0.0)];
        for (k, (a, b)) in steps.iter().enumerate() {
            let a_in = SocketInput {
                device_id: Some(id),
                ..dev(9.0, 2.0, *a)
            };
            s.update(
                Millis(k as u64 * 3_600_000),
                &[a_in, dev(5.0, 1.0, *b), dev(5.0, 2.0, 7.0)],
                false,
            );
        }
        let p = s.profile(0).unwrap();
        assert_eq!(p.min_w, Some(10.0));
        assert_eq!(p.max_w, Some(30.0));
        assert!((p.energy_wh - 30.0).abs() < 1e-9); // 10 Wh + 20 Wh, left rule
        assert_eq!(p.mean_w(), Some(15.0));
        assert_eq!(p.plugged_ms, 7_200_000);
        assert_eq!(p.device_id, Some(id));
        let c0 = s.circuit_load(0).unwrap();
        assert_eq!(
            (c0.min_w, c0.max_w, c0.now_w),
            (Some(15.0), Some(30.0), 30.0)
        );
        assert_eq!(s.circuit_load(1).unwrap().max_w, Some(7.0));
        assert_eq!(s.socket_load(1).unwrap().min_w, Some(0.0));
        s.reset_load_period();
        assert_eq!(s.circuit_load(0).unwrap().max_w, None);
        // Same device id replugged: profile continues; another device: reset.
        s.update(Millis(3 * 3_600_000), &[SocketInput::default()], false);
        let a_in = SocketInput {
            device_id: Some(id),
            ..dev(9.0, 2.0, 12.0)
        };
        s.update(Millis(4 * 3_600_000), &[a_in], false);
        assert_eq!(s.profile(0).unwrap().max_w, Some(30.0));
        s.update(Millis(5 * 3_600_000), &[SocketInput::default()], false);
        s.update(Millis(6 * 3_600_000), &[dev(9.0, 2.0, 12.0)], false);
        assert_eq!(s.profile(0).unwrap().max_w, Some(12.0));
    }

    #[test]
    fn invalid_inputs_are_counted_not_used() {
        let mut s = Selective::new(SelectiveConfig::default());
        s.update(Millis(1000), &[dev(5.0, 2.0, f32::NAN)], false);
        s.update(Millis(500), &[dev(5.0, 2.0, -3.0)], false);
        let many = [SocketInput::default(); MAX_SOCKETS + 2];
        let out = s.update(Millis(2000), &many, false);
        assert_eq!(out.len(), MAX_SOCKETS);
        assert_eq!(s.rejected(), 1 + 2 + 2);
        assert_eq!(s.profile(0).unwrap().min_w, None);
    }

    fn arb_input() -> impl Strategy<Value = SocketInput> {
        let f = prop_oneof![
            6 => 0.0f32..150.0,
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => -10.0f32..0.0,
        ];
        (
            any::<bool>(),
            proptest::option::of((0.0f32..50.0, 0.0f32..6.0)),
            proptest::option::of(f.clone()),
            proptest::option::of((0u16..3, 0u16..3)),
            proptest::option::of(prop_oneof![Just(f32::NAN), -0.5f32..1.5]),
            f,
            proptest::bool::weighted(0.05),
        )
            .prop_map(|(plugged, c, sink, id, soc, p, wake)| SocketInput {
                plugged,
                contract: c.map(|(v, a)| PdContract {
                    voltage_v: v,
                    max_current_a: a,
                }),
                sink_max_w: sink,
                device_id: id.map(|(v, p)| DeviceId {
                    vendor_id: v,
                    product_id: p,
                }),
                battery_soc: soc,
                power_w: p,
                wake,
            })
    }

    proptest! {
        #[test]
        fn arbitrary_sequences_never_panic_and_profiles_are_ordered(
            steps in proptest::collection::vec(
                (0u64..1_200_000, proptest::collection::vec(arb_input(), 0..20), any::<bool>()),
                1..60,
            ),
            groups in any::<bool>(),
        ) {
            let mut cfg = SelectiveConfig {
                cluster_min_events: 1,
                cluster_min_ratio: 0.1,
                ..SelectiveConfig::default()
            };
            for i in 0..MAX_SOCKETS as u8 {
                cfg.socket_circuits.push(i % 3).unwrap();
            }
            if groups {
                let mut per = heapless::Vec::new();
                per.push(1).unwrap();
                per.push(3).unwrap();
                cfg.groups.push(GroupConfig { host: 0, peripherals: per }).unwrap();
            }
            prop_assert!(cfg.validate().is_ok());
            let mut s = Selective::new(cfg);
            let mut now = 0u64;
            for (adv, inputs, peak) in steps {
                now = now.wrapping_add(adv) % 50_000_000;
                let out = s.update(Millis(now), &inputs, peak);
                prop_assert_eq!(out.len(), inputs.len().min(MAX_SOCKETS));
                for c in out.iter() {
                    if let Some(cap) = c.power_cap_w {
                        prop_assert!(cap.is_finite() && cap > 0.0 && c.on);
                    }
                    if c.reason == SelectiveReason::Normal {
                        prop_assert!(c.on && c.power_cap_w.is_none());
                    }
                }
                for i in 0..MAX_SOCKETS {
                    let p = s.profile(i).unwrap();
                    prop_assert!(p.energy_wh.is_finite() && p.energy_wh >= 0.0);
                    if let (Some(lo), Some(hi)) = (p.min_w, p.max_w) {
                        prop_assert!(lo <= hi);
                        if let Some(m) = p.mean_w() {
                            prop_assert!(lo <= m && m <= hi, "{} {} {}", lo, m, hi);
                        }
                    }
                }
                for c in 0..MAX_CIRCUITS {
                    let l = s.circuit_load(c).unwrap();
                    if let (Some(lo), Some(hi)) = (l.min_w, l.max_w) {
                        prop_assert!(lo <= hi && l.now_w.is_finite());
                    }
                }
            }
        }
    }
}
