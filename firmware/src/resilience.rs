//! Resilience in a power cut [claim 6].
//!
//! On loss of mains (debounced) the assembly asks the inverter/converters to
//! **stop exporting** at once (well within 2 s of the loss) and **islands the
//! DC network**: the grid-tie opens and the AC-DC charger switches off, the
//! bus runs from battery and PV. While islanded it keeps circuits on **by
//! priority** in line with the stored energy and the expected PV: the
//! circuits are ranked once, from the configuration, essential circuits first
//! (by `priority`, 0 = most essential, ties by index), then the non-essential
//! ones (by `priority`). The circuits that are on are always a *prefix* of
//! that ranking: shedding removes the least important circuit that is on,
//! restoring adds the most important circuit that is off. So non-essential
//! circuits are shed in reverse priority order before any essential one, and
//! an essential circuit is only shed when the energy cannot carry every
//! essential circuit for its minimum runtime.
//!
//! Energy budget (re-evaluated every `reevaluate_ms` while islanded):
//! `available = remaining_wh + pv_confidence × pv_expected_wh`, and keeping
//! the first *k* ranked circuits on needs
//! `Σ load_i × runtime_i` where `runtime_i` is `min_runtime_h` for an
//! essential circuit and `horizon_h` for a non-essential one, and `load_i` is
//! the larger of the configured expected load and the measured load (when
//! valid). The largest *k* whose need fits is kept; to avoid flapping a shed
//! circuit only comes back when the need fits within
//! `available × (1 − restore_margin)`.
//!
//! On mains return: after mains has been present for `mains_stable_ms`, the
//! grid-tie and charger are re-enabled (`islanded = false`, export allowed
//! again), then the shed circuits are restored one by one, most important
//! first, `restore_gap_ms` apart.
//!
//! The household's AC loads (through the inverter) rank below every
//! essential circuit: in a cut they are served only while every essential
//! circuit is kept and the energy beyond what the kept circuits need covers
//! an hour of their average load (as last seen on the grid, then as
//! served), and come back only with twice that
//! ([`Resilience::ac_loads_served`]).
//!
//! Sans-IO: [`Resilience::update`] takes `now` and [`ResilienceInputs`], and
//! returns a [`ResilienceCommand`] carrying the reasons. Uses only `config`
//! and `time`; it knows no other function.

use crate::config::{check_order, check_range, Order, POSITIVE};
use crate::{ConfigError, Millis};
use serde::Deserialize;

/// Maximum number of switched circuits this module manages.
pub const MAX_CIRCUITS: usize = 16;

/// One switched circuit of the DC network.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitConfig {
    /// Name for logs ("lighting", "office sockets").
    pub name: heapless::String<24>,
    /// Priority, 0 = most essential; larger numbers are shed first.
    #[serde(default)]
    pub priority: u8,
    /// Expected load while on, W (≥ 0).
    pub expected_load_w: f32,
    /// Essential circuits are kept until the energy would otherwise run out.
    #[serde(default)]
    pub essential: bool,
    /// For essential circuits: how long they must last in a power cut, h.
    #[serde(default)]
    pub min_runtime_h: f32,
}

/// Configuration of the resilience function (TOML table `[resilience]`).
///
/// ```toml
/// [resilience]
/// mains_loss_debounce_ms = 100
/// mains_stable_ms = 60000
/// restore_gap_ms = 5000
/// reevaluate_ms = 60000
/// horizon_h = 12.0
/// pv_confidence = 0.7
/// restore_margin = 0.1
/// [[resilience.circuits]]
/// name = "lighting"
/// priority = 0
/// expected_load_w = 40.0
/// essential = true
/// min_runtime_h = 12.0
/// [[resilience.circuits]]
/// name = "office sockets"
/// priority = 5
/// expected_load_w = 120.0
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Mains must be absent this long before it counts as lost, ms
    /// (≤ 1500 so that export stops within 2 s).
    #[serde(default = "default_debounce_ms")]
    pub mains_loss_debounce_ms: u64,
    /// Mains must be present this long before reconnecting, ms.
    #[serde(default = "default_stable_ms")]
    pub mains_stable_ms: u64,
    /// Gap between restoring successive circuits after reconnection, ms.
    #[serde(default = "default_restore_gap_ms")]
    pub restore_gap_ms: u64,
    /// Period of the energy-budget re-evaluation while islanded, ms (> 0).
    #[serde(default = "default_reevaluate_ms")]
    pub reevaluate_ms: u64,
    /// Planning horizon for non-essential circuits (and the PV expectation),
    /// h; must be ≥ every essential circuit's `min_runtime_h`.
    #[serde(default = "default_horizon_h")]
    pub horizon_h: f32,
    /// Fraction of the expected PV energy counted on, 0..=1.
    #[serde(default = "default_pv_confidence")]
    pub pv_confidence: f32,
    /// Hysteresis: a shed circuit comes back only if the need fits within
    /// `available × (1 − restore_margin)`, 0..1.
    #[serde(default = "default_restore_margin")]
    pub restore_margin: f32,
    /// The switched circuits, index = circuit number (bit in the masks).
    #[serde(default)]
    pub circuits: heapless::Vec<CircuitConfig, MAX_CIRCUITS>,
}

fn default_debounce_ms() -> u64 {
    100
}
fn default_stable_ms() -> u64 {
    60_000
}
fn default_restore_gap_ms() -> u64 {
    5_000
}
fn default_reevaluate_ms() -> u64 {
    60_000
}
fn default_horizon_h() -> f32 {
    12.0
}
fn default_pv_confidence() -> f32 {
    0.7
}
fn default_restore_margin() -> f32 {
    0.1
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            mains_loss_debounce_ms: default_debounce_ms(),
            mains_stable_ms: default_stable_ms(),
            restore_gap_ms: default_restore_gap_ms(),
            reevaluate_ms: default_reevaluate_ms(),
            horizon_h: default_horizon_h(),
            pv_confidence: default_pv_confidence(),
            restore_margin: default_restore_margin(),
            circuits: heapless::Vec::new(),
        }
    }
}

impl ResilienceConfig {
    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "mains_loss_debounce_ms",
            self.mains_loss_debounce_ms,
            ..=1500,
        )
        .map_err(|e| e.with_context(format_args!("so that export stops within 2 s")))?;
        check_range("reevaluate_ms", self.reevaluate_ms, 1..)?;
        check_range("horizon_h", self.horizon_h, POSITIVE)?;
        check_range("pv_confidence", self.pv_confidence, 0.0..=1.0)?;
        check_range("restore_margin", self.restore_margin, 0.0..1.0)?;
        for c in &self.circuits {
            let circuit = |e: ConfigError| e.with_context(format_args!("circuit `{}`", c.name));
            check_range("circuits.expected_load_w", c.expected_load_w, 0.0..).map_err(circuit)?;
            check_range("circuits.min_runtime_h", c.min_runtime_h, 0.0..).map_err(circuit)?;
            if c.essential {
                check_order(
                    "circuits.min_runtime_h",
                    c.min_runtime_h,
                    Order::AtMost,
                    "horizon_h",
                    self.horizon_h,
                )
                .map_err(circuit)?;
            }
        }
        Ok(())
    }
}

/// Measurements and estimates for one [`Resilience::update`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResilienceInputs {
    /// Mains present (from the meter / mains sensing).
    pub mains_present: bool,
    /// Usable battery energy above the absolute floor, Wh. NaN = unknown:
    /// the last decision is held.
    pub remaining_wh: f32,
    /// PV energy expected over `horizon_h`, Wh. NaN or negative = none.
    pub pv_expected_wh: f32,
    /// Measured load per circuit, W (NaN = not measured). The budget uses the
    /// larger of this and the configured expected load.
    pub circuit_load_w: [f32; MAX_CIRCUITS],
}

impl ResilienceInputs {
    /// Inputs with no circuit measurements.
    pub fn new(mains_present: bool, remaining_wh: f32, pv_expected_wh: f32) -> Self {
        ResilienceInputs {
            mains_present,
            remaining_wh,
            pv_expected_wh,
            circuit_load_w: [f32::NAN; MAX_CIRCUITS],
        }
    }
}

/// Overall state, and the reason for the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResilienceReason {
    /// Mains present, everything connected and on.
    MainsPresent,
    /// Mains absent but not yet for the debounce time.
    MainsLossDebouncing,
    /// Islanded; circuits kept by the energy budget.
    Islanded,
    /// Islanded; the energy estimate is invalid, the last decision is held.
    IslandedEnergyUnknown,
    /// Mains back but not yet stable long enough; still islanded.
    AwaitingStableMains,
    /// Reconnected; shed circuits are being restored one by one.
    Restoring,
}

/// Why one circuit is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitReason {
    /// On, supplied normally (mains present).
    Normal,
    /// On while islanded: fits the energy budget.
    KeptWithinBudget,
    /// Off: non-essential, shed to keep the energy budget.
    ShedForBudget,
    /// Off: essential, shed because the energy cannot carry every essential
    /// circuit for its minimum runtime (all non-essential ones are off).
    ShedEssentialEnergyShort,
    /// Off: waiting for its turn in the staggered restore.
    AwaitingRestore,
    /// No circuit configured at this index (always off).
    NotConfigured,
}

/// What the resilience function asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResilienceCommand {
    /// DC network islanded: grid-tie open, AC-DC charger off.
    pub islanded: bool,
    /// Inverter/converters must not export. Always true while islanded.
    pub stop_export: bool,
    /// Bit `i` set = circuit `i` on.
    pub circuit_on: u16,
    /// Per-circuit reason (index = circuit number).
    pub circuit_reason: [CircuitReason; MAX_CIRCUITS],
    /// Overall reason.
    pub reason: ResilienceReason,
    /// Energy counted on at the last evaluation, Wh (0 when not islanded).
    pub available_wh: f32,
    /// Energy needed by the circuits kept on at the last evaluation, Wh.
    pub needed_wh: f32,
}

impl ResilienceCommand {
    /// Whether circuit `i` is on.
    pub fn is_on(&self, i: usize) -> bool {
        i < MAX_CIRCUITS && self.circuit_on & (1 << i) != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Grid-connected; `restored` ranked circuits on (all once restore ends).
    Connected {
        restored: usize,
        next_restore: Millis,
    },
    /// Mains absent since `since`, not yet debounced.
    Debouncing { since: Millis, restored: usize },
    /// Islanded; `present_since` = mains present since (awaiting stability).
    Islanded { present_since: Option<Millis> },
}

/// The resilience function's state.
#[derive(Debug, Clone)]
pub struct Resilience {
    config: ResilienceConfig,
    /// Circuit indices, most important first.
    ranking: heapless::Vec<u8, MAX_CIRCUITS>,
    state: State,
    /// Number of ranked circuits kept on while islanded.
    kept: usize,
    last_eval: Option<Millis>,
    island_start: Millis,
    available_wh: f32,
    needed_wh: f32,
    energy_invalid: bool,
    invalid_inputs: u32,
    ac_loads: AcLoads,
}

/// The household's AC loads (through the inverter) in a power cut: they
/// rank below every essential DC circuit. See
/// [`Resilience::ac_loads_served`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct AcLoads {
    /// The AC load's running average, W: as last seen on the grid, then as
    /// last served in the cut.
    average_w: f32,
    /// The AC loads are shed.
    shed: bool,
    /// Control periods the inverter has served the AC loads in this cut.
    served_periods: u32,
}

impl AcLoads {
    /// On the grid: the AC load as last seen is what a cut starting now
    /// would have to carry.
    fn on_grid(self, ac_load_w: f32, dt_s: f32) -> AcLoads {
        AcLoads {
            average_w: ac_average(self.average_w, ac_load_w, dt_s),
            shed: false,
            served_periods: 1,
        }
    }

    /// In a cut, with `spare_wh` beyond what the kept circuits need: served
    /// while every essential circuit is kept and the spare covers an hour
    /// of the average AC load, back only with twice that (hysteresis: a
    /// kettle must not make it flap). While shed the load cannot be
    /// measured, so the average stands; it is refreshed once the inverter
    /// has served a full control period (the first reading after switching
    /// on is still stale).
    fn islanded(self, ac_load_w: f32, dt_s: f32, spare_wh: f32, essentials_kept: bool) -> AcLoads {
        let mut next = self;
        if !self.shed && self.served_periods >= 1 {
            next.average_w = ac_average(self.average_w, ac_load_w, dt_s);
        }
        let hour_of_ac = next.average_w;
        next.shed = if !essentials_kept || !spare_wh.is_finite() {
            true
        } else if self.shed {
            spare_wh <= 2.0 * hour_of_ac
        } else {
            spare_wh <= hour_of_ac
        };
        if next.shed {
            next.served_periods = 0;
        } else if !self.shed {
            next.served_periods = self.served_periods.saturating_add(1);
        }
        next
    }
}

/// The AC load's running average (first-order, 15-minute time constant)
/// updated with a reading taken `dt_s` after the last one, W.
fn ac_average(average_w: f32, reading_w: f32, dt_s: f32) -> f32 {
    const TAU_S: f32 = 900.0;
    if !(reading_w.is_finite() && dt_s.is_finite() && dt_s > 0.0) {
        return average_w;
    }
    average_w + (reading_w - average_w) * (dt_s / (TAU_S + dt_s))
}

impl Resilience {
    /// A new resilience function, grid-connected with every circuit on.
    /// The config should have passed [`ResilienceConfig::validate`].
    pub fn new(config: ResilienceConfig) -> Self {
        let mut ranking: heapless::Vec<u8, MAX_CIRCUITS> = heapless::Vec::new();
        for i in 0..config.circuits.len() {
            let _ = ranking.push(i as u8);
        }
        // Insertion sort (stable): essential first, then by priority, index.
        let key = |i: u8| {
            let c = config.circuits.get(i as usize);
            let (e, p) = c.map(|c| (!c.essential, c.priority)).unwrap_or((true, 255));
            (e, p, i)
        };
        for a in 1..ranking.len() {
            let mut b = a;
            while b > 0 && key(ranking[b - 1]) > key(ranking[b]) {
                ranking.swap(b - 1, b);
                b -= 1;
            }
        }
        let n = ranking.len();
        Resilience {
            config,
            ranking,
            state: State::Connected {
                restored: n,
                next_restore: Millis::ZERO,
            },
            kept: n,
            last_eval: None,
            island_start: Millis::ZERO,
            available_wh: 0.0,
            needed_wh: 0.0,
            energy_invalid: false,
            invalid_inputs: 0,
            ac_loads: AcLoads {
                average_w: 0.0,
                shed: false,
                served_periods: 1,
            },
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ResilienceConfig {
        &self.config
    }

    /// Circuit indices in ranking order, most important (last shed) first.
    pub fn ranking(&self) -> &[u8] {
        &self.ranking
    }

    /// Whether the DC network is islanded.
    pub fn is_islanded(&self) -> bool {
        matches!(self.state, State::Islanded { .. })
    }

    /// Number of updates whose energy estimate was invalid (NaN/inf).
    pub fn invalid_inputs(&self) -> u32 {
        self.invalid_inputs
    }

    /// When the function next needs an `update` even without new inputs.
    pub fn next_wake(&self) -> Option<Millis> {
        match self.state {
            State::Connected {
                restored,
                next_restore,
            } if restored < self.ranking.len() => Some(next_restore),
            State::Connected { .. } => None,
            State::Debouncing { since, .. } => {
                Some(since.plus_ms(self.config.mains_loss_debounce_ms))
            }
            State::Islanded { present_since } => {
                let eval = self
                    .last_eval
                    .map(|t| t.plus_ms(self.config.reevaluate_ms))
                    .unwrap_or(Millis::ZERO);
                match present_since {
                    Some(t) => Some(eval.min(t.plus_ms(self.config.mains_stable_ms))),
                    None => Some(eval),
                }
            }
        }
    }

    /// Advances the state machine to `now` with the latest inputs and
    /// returns the command.
    pub fn update(&mut self, now: Millis, inputs: &ResilienceInputs) -> ResilienceCommand {
        let n = self.ranking.len();
        // Mains state machine.
        match self.state {
            State::Connected { restored, .. } if !inputs.mains_present => {
                self.state = State::Debouncing {
                    since: now,
                    restored,
                };
            }
            State::Connected {
                restored,
                next_restore,
            } => {
                if restored < n && now >= next_restore {
                    self.state = State::Connected {
                        restored: restored + 1,
                        next_restore: now.plus_ms(self.config.restore_gap_ms),
                    };
                }
            }
            State::Debouncing { restored, .. } if inputs.mains_present => {
                self.state = State::Connected {
                    restored,
                    next_restore: now.plus_ms(self.config.restore_gap_ms),
                };
            }
            State::Debouncing { .. } | State::Islanded { .. } => {}
        }
        if let State::Debouncing { since, restored } = self.state {
            if now.since(since) >= self.config.mains_loss_debounce_ms {
                self.state = State::Islanded {
                    present_since: None,
                };
                self.kept = restored.min(n);
                self.last_eval = None;
                self.island_start = now;
            }
        }
        if let State::Islanded { present_since } = self.state {
            if inputs.mains_present {
                let since = present_since.unwrap_or(now);
                if now.since(since) >= self.config.mains_stable_ms {
                    // Reconnect: grid-tie and charger back, then restore.
                    self.state = State::Connected {
                        restored: self.kept,
                        next_restore: now.plus_ms(self.config.restore_gap_ms),
                    };
                    self.available_wh = 0.0;
                    self.needed_wh = 0.0;
                } else {
                    self.state = State::Islanded {
                        present_since: Some(since),
                    };
                }
            } else {
                self.state = State::Islanded {
                    present_since: None,
                };
            }
        }
        if let State::Islanded { .. } = self.state {
            let due = match self.last_eval {
                None => true,
                Some(t) => now.since(t) >= self.config.reevaluate_ms,
            };
            if due {
                self.evaluate(now, inputs);
                self.last_eval = Some(now);
            }
        }
        self.command()
    }

    /// Whether the inverter may serve the household's AC loads this control
    /// period. Always on the grid (where the average AC load is learnt: what
    /// a cut would have to carry). In a cut the AC loads come after the
    /// essential DC circuits: served only while every essential circuit is
    /// kept and the energy beyond what the kept circuits need covers an hour
    /// of the average AC load served, and back only with twice that. Call
    /// once per control period, after [`Resilience::update`], with the AC
    /// load measured now and the seconds since the last call.
    pub fn ac_loads_served(&mut self, ac_load_w: f32, dt_s: f32) -> bool {
        self.ac_loads = if self.is_islanded() {
            let spare_wh = self.available_wh - self.needed_wh;
            self.ac_loads
                .islanded(ac_load_w, dt_s, spare_wh, self.essentials_kept())
        } else {
            self.ac_loads.on_grid(ac_load_w, dt_s)
        };
        !self.ac_loads.shed
    }

    /// Whether every essential circuit is kept on while islanded: they rank
    /// first, so they are the first `kept`.
    fn essentials_kept(&self) -> bool {
        let essential = self.config.circuits.iter().filter(|c| c.essential).count();
        self.kept >= essential
    }

    /// Load used in the budget for circuit `i`, W.
    fn load_w(&self, i: usize, inputs: &ResilienceInputs) -> f32 {
        let expected = self
            .config
            .circuits
            .get(i)
            .map(|c| c.expected_load_w)
            .filter(|w| w.is_finite() && *w >= 0.0)
            .unwrap_or(0.0);
        match inputs.circuit_load_w.get(i) {
            Some(&m) if m.is_finite() && m > expected => m,
            _ => expected,
        }
    }

    /// Energy needed to keep circuit `i` on, Wh.
    fn need_wh(&self, i: usize, elapsed_h: f32, inputs: &ResilienceInputs) -> f32 {
        let runtime = match self.config.circuits.get(i) {
            Some(c) if c.essential => c.min_runtime_h - elapsed_h,
            Some(_) => self.config.horizon_h,
            None => 0.0,
        };
        let runtime = if runtime.is_finite() {
            runtime.max(0.0)
        } else {
            0.0
        };
        self.load_w(i, inputs) * runtime
    }

    fn evaluate(&mut self, now: Millis, inputs: &ResilienceInputs) {
        let elapsed_h = now.since(self.island_start) as f32 / 3_600_000.0;
        if !inputs.remaining_wh.is_finite() {
            self.invalid_inputs = self.invalid_inputs.saturating_add(1);
            self.energy_invalid = true;
            return;
        }
        self.energy_invalid = false;
        let pv = if inputs.pv_expected_wh.is_finite() && inputs.pv_expected_wh > 0.0 {
            inputs.pv_expected_wh * self.config.pv_confidence
        } else {
            0.0
        };
        let available = (inputs.remaining_wh.max(0.0) + pv).max(0.0);
        let grow_limit = available * (1.0 - self.config.restore_margin);
        // Largest prefixes fitting `available` (keep) and `grow_limit`.
        let mut need = 0.0f32;
        let mut k_keep = 0;
        let mut k_grow = 0;
        let mut need_at = [0.0f32; MAX_CIRCUITS + 1];
        for (pos, &i) in self.ranking.iter().enumerate() {
            need += self.need_wh(i as usize, elapsed_h, inputs);
            if let Some(slot) = need_at.get_mut(pos + 1) {
                *slot = need;
            }
            if need <= available && k_keep == pos {
                k_keep = pos + 1;
            }
            if need <= grow_limit && k_grow == pos {
                k_grow = pos + 1;
            }
        }
        self.kept = if k_keep < self.kept {
            k_keep
        } else if k_grow > self.kept {
            k_grow
        } else {
            self.kept
        };
        self.available_wh = available;
        self.needed_wh = need_at.get(self.kept).copied().unwrap_or(0.0);
    }

    fn command(&self) -> ResilienceCommand {
        let mut circuit_reason = [CircuitReason::NotConfigured; MAX_CIRCUITS];
        let mut circuit_on = 0u16;
        let (on_count, islanded, reason) = match self.state {
            State::Connected { restored, .. } => (
                restored,
                false,
                if restored < self.ranking.len() {
                    ResilienceReason::Restoring
                } else {
                    ResilienceReason::MainsPresent
                },
            ),
            State::Debouncing { restored, .. } => {
                (restored, false, ResilienceReason::MainsLossDebouncing)
            }
            State::Islanded { present_since } => (
                self.kept,
                true,
                if present_since.is_some() {
                    ResilienceReason::AwaitingStableMains
                } else if self.energy_invalid {
                    ResilienceReason::IslandedEnergyUnknown
                } else {
                    ResilienceReason::Islanded
                },
            ),
        };
        for (pos, &i) in self.ranking.iter().enumerate() {
            let i = i as usize;
            let essential = self.config.circuits.get(i).map(|c| c.essential) == Some(true);
            let r = if pos < on_count {
                if i < 16 {
                    circuit_on |= 1 << i;
                }
                if islanded {
                    CircuitReason::KeptWithinBudget
                } else {
                    CircuitReason::Normal
                }
            } else if !islanded && !matches!(self.state, State::Debouncing { .. }) {
                CircuitReason::AwaitingRestore
            } else if essential {
                CircuitReason::ShedEssentialEnergyShort
            } else {
                CircuitReason::ShedForBudget
            };
            if let Some(slot) = circuit_reason.get_mut(i) {
                *slot = r;
            }
        }
        ResilienceCommand {
            islanded,
            stop_export: islanded,
            circuit_on,
            circuit_reason,
            reason,
            available_wh: self.available_wh,
            needed_wh: self.needed_wh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn circuit(name: &str, priority: u8, load: f32, essential: bool, min_h: f32) -> CircuitConfig {
        CircuitConfig {
            name: heapless::String::try_from(name).unwrap(),
            priority,
            expected_load_w: load,
            essential,
            min_runtime_h: min_h,
        }
    }

    /// 0 lighting (essential, p0, 40 W, 12 h), 1 fridge (essential, p1, 60 W,
    /// 12 h), 2 office (p5, 100 W), 3 kitchen (p3, 50 W), 4 garage (p9, 20 W).
    fn config() -> ResilienceConfig {
        let mut c = ResilienceConfig {
            pv_confidence: 1.0,
            ..ResilienceConfig::default()
        };
        for cc in [
            circuit("lighting", 0, 40.0, true, 12.0),
            circuit("fridge", 1, 60.0, true, 12.0),
            circuit("office", 5, 100.0, false, 0.0),
            circuit("kitchen", 3, 50.0, false, 0.0),
            circuit("garage", 9, 20.0, false, 0.0),
        ] {
            c.circuits.push(cc).unwrap();
        }
        c.validate().unwrap();
        c
    }
    // Needs over 12 h: lighting 480, fridge 720, kitchen 600, office 1200,
    // garage 240 Wh. Ranking: lighting, fridge, kitchen, office, garage.

    #[test]
    fn ranking_is_essential_first_then_priority() {
        let r = Resilience::new(config());
        assert_eq!(r.ranking(), &[0, 1, 3, 2, 4]);
    }

    #[test]
    fn export_stops_within_2_s_of_mains_loss() {
        let mut r = Resilience::new(config());
        let mut t = Millis(0);
        for _ in 0..10 {
            let c = r.update(t, &ResilienceInputs::new(true, 5000.0, 0.0));
            assert!(!c.stop_export && !c.islanded);
            t = t.plus_ms(100);
        }
        let lost = t;
        let mut stopped_at = None;
        for _ in 0..40 {
            let c = r.update(t, &ResilienceInputs::new(false, 5000.0, 0.0));
            if c.stop_export && stopped_at.is_none() {
                stopped_at = Some(t);
                assert!(c.islanded);
            }
            t = t.plus_ms(100);
        }
        let at = stopped_at.expect("export never stopped");
        assert!(at.since(lost) <= 2000, "took {} ms", at.since(lost));
        assert_eq!(at.since(lost), 100); // the debounce
    }

    #[test]
    fn glitch_shorter_than_debounce_is_ignored() {
        let mut r = Resilience::new(ResilienceConfig {
            mains_loss_debounce_ms: 300,
            ..config()
        });
        r.update(Millis(0), &ResilienceInputs::new(true, 5000.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 5000.0, 0.0));
        assert_eq!(c.reason, ResilienceReason::MainsLossDebouncing);
        let c = r.update(Millis(200), &ResilienceInputs::new(true, 5000.0, 0.0));
        assert!(!c.islanded && !c.stop_export);
        assert_eq!(c.circuit_on, 0b11111);
    }

    #[test]
    fn none_shed_when_energy_allows_all() {
        let mut r = Resilience::new(config());
        let c = r.update(Millis(0), &ResilienceInputs::new(false, 3300.0, 0.0));
        let c2 = r.update(Millis(100), &ResilienceInputs::new(false, 3300.0, 0.0));
        assert!(!c.islanded && c2.islanded);
        assert_eq!(c2.circuit_on, 0b11111);
        assert_eq!(c2.reason, ResilienceReason::Islanded);
    }

    #[test]
    fn shedding_is_reverse_priority_and_stops_when_budget_closes() {
        // 2000 Wh: lighting+fridge+kitchen = 1800 fits, + office = 3000 not.
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 2000.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 2000.0, 0.0));
        // Garage (p9) is shed before office (p5) although office is the one
        // that breaks the budget: the kept set is a prefix of the ranking.
        assert_eq!(c.circuit_on, 0b01011);
        assert_eq!(c.circuit_reason[4], CircuitReason::ShedForBudget);
        assert_eq!(c.circuit_reason[2], CircuitReason::ShedForBudget);
        assert_eq!(c.circuit_reason[3], CircuitReason::KeptWithinBudget);
        assert_eq!(c.needed_wh, 1800.0);
        // Just enough for everything but the garage (240 Wh): only garage off.
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 3100.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 3100.0, 0.0));
        assert_eq!(c.circuit_on, 0b01111);
    }

    #[test]
    fn essentials_kept_to_min_runtime_with_limited_energy() {
        // 1300 Wh: both essentials (1200 Wh) fit, nothing else.
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 1300.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 1300.0, 0.0));
        assert_eq!(c.circuit_on, 0b00011);
        // Simulate 12 h at the essential load (100 W), re-evaluating each
        // minute, energy drawn by what is on: the essentials stay on.
        let mut energy = 1300.0f32;
        let mut t = Millis(100);
        for _ in 0..(12 * 60) {
            t = t.plus_ms(60_000);
            let c = r.update(t, &ResilienceInputs::new(false, energy, 0.0));
            assert!(c.is_on(0) && c.is_on(1));
            energy -= 100.0 / 60.0;
        }
        assert!(energy > 0.0);
        // 600 Wh: not enough for both essentials, the fridge (p1) goes.
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 600.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 600.0, 0.0));
        assert_eq!(c.circuit_on, 0b00001);
        assert_eq!(c.circuit_reason[1], CircuitReason::ShedEssentialEnergyShort);
    }

    #[test]
    fn pv_expectation_reduces_shedding() {
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 1300.0, 0.0));
        let without = r.update(Millis(100), &ResilienceInputs::new(false, 1300.0, 0.0));
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 1300.0, 1000.0));
        let with = r.update(Millis(100), &ResilienceInputs::new(false, 1300.0, 1000.0));
        assert_eq!(without.circuit_on.count_ones(), 2);
        assert_eq!(with.circuit_on, 0b01011); // + kitchen (600 Wh)
    }

    #[test]
    fn hysteresis_prevents_flapping() {
        let mut r = Resilience::new(config()); // restore_margin 0.1
        r.update(Millis(0), &ResilienceInputs::new(false, 1700.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 1700.0, 0.0));
        assert_eq!(c.circuit_on, 0b00011); // kitchen needs 1800
                                           // 1900 Wh: kitchen would fit (1800) but not within the 10 % margin.
        let c = r.update(Millis(60_100), &ResilienceInputs::new(false, 1900.0, 0.0));
        assert_eq!(c.circuit_on, 0b00011);
        // 2000 Wh: 1800 ≤ 1800, back on.
        let c = r.update(Millis(120_100), &ResilienceInputs::new(false, 2000.0, 0.0));
        assert_eq!(c.circuit_on, 0b01011);
        // 1850 Wh: still fits without margin, stays on.
        let c = r.update(Millis(180_100), &ResilienceInputs::new(false, 1850.0, 0.0));
        assert_eq!(c.circuit_on, 0b01011);
        // Between evaluations nothing changes.
        let c = r.update(Millis(190_000), &ResilienceInputs::new(false, 100.0, 0.0));
        assert_eq!(c.circuit_on, 0b01011);
    }

    #[test]
    fn invalid_energy_holds_last_decision() {
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(false, 1300.0, 0.0));
        r.update(Millis(100), &ResilienceInputs::new(false, 1300.0, 0.0));
        let c = r.update(Millis(60_100), &ResilienceInputs::new(false, f32::NAN, 0.0));
        assert_eq!(c.circuit_on, 0b00011);
        assert_eq!(c.reason, ResilienceReason::IslandedEnergyUnknown);
        assert_eq!(r.invalid_inputs(), 1);
    }

    #[test]
    fn measured_load_above_expected_is_used() {
        let mut r = Resilience::new(config());
        let mut i = ResilienceInputs::new(false, 2000.0, 0.0);
        i.circuit_load_w[3] = 100.0; // kitchen draws 100 W → 1200 Wh
        r.update(Millis(0), &i);
        let c = r.update(Millis(100), &i);
        assert_eq!(c.circuit_on, 0b00011);
    }

    #[test]
    fn staggered_restore_on_mains_return() {
        let cfg = ResilienceConfig {
            mains_stable_ms: 10_000,
            restore_gap_ms: 2_000,
            ..config()
        };
        let mut r = Resilience::new(cfg);
        r.update(Millis(0), &ResilienceInputs::new(false, 600.0, 0.0));
        let c = r.update(Millis(100), &ResilienceInputs::new(false, 600.0, 0.0));
        assert_eq!(c.circuit_on, 0b00001);
        // Mains back at t = 1 s; a short drop at 5 s restarts the wait.
        let mut t = Millis(1_000);
        let mut on_changes: heapless::Vec<(u64, u16), 16> = heapless::Vec::new();
        let mut last_on = c.circuit_on;
        let mut reconnected_at = None;
        while t.0 <= 40_000 {
            let present = t.0 != 5_000;
            let c = r.update(t, &ResilienceInputs::new(present, 600.0, 0.0));
            if !c.islanded && reconnected_at.is_none() {
                reconnected_at = Some(t.0);
                assert!(!c.stop_export);
            }
            if c.islanded {
                assert!(c.stop_export);
            }
            if c.circuit_on != last_on {
                on_changes.push((t.0, c.circuit_on)).unwrap();
                last_on = c.circuit_on;
            }
            t = t.plus_ms(100);
        }
        // Stable from 5.1 s → reconnect at 15.1 s.
        assert_eq!(reconnected_at, Some(15_100));
        // Then one circuit per 2 s, most important first.
        assert_eq!(
            on_changes.as_slice(),
            &[
                (17_100, 0b00011),
                (19_100, 0b01011),
                (21_100, 0b01111),
                (23_100, 0b11111)
            ]
        );
        let c = r.update(t, &ResilienceInputs::new(true, 600.0, 0.0));
        assert_eq!(c.reason, ResilienceReason::MainsPresent);
        assert_eq!(r.next_wake(), None);
    }

    #[test]
    fn mains_loss_during_restore_keeps_restored_prefix() {
        let cfg = ResilienceConfig {
            mains_stable_ms: 1_000,
            restore_gap_ms: 1_000,
            ..config()
        };
        let mut r = Resilience::new(cfg);
        r.update(Millis(0), &ResilienceInputs::new(false, 600.0, 0.0));
        r.update(Millis(100), &ResilienceInputs::new(false, 600.0, 0.0));
        r.update(Millis(200), &ResilienceInputs::new(true, 600.0, 0.0));
        let c = r.update(Millis(1_200), &ResilienceInputs::new(true, 600.0, 0.0));
        assert!(!c.islanded);
        assert_eq!(c.circuit_on, 0b00001);
        r.update(Millis(1_300), &ResilienceInputs::new(false, 600.0, 0.0));
        let c = r.update(Millis(1_400), &ResilienceInputs::new(false, 600.0, 0.0));
        assert!(c.islanded && c.stop_export);
        assert_eq!(c.circuit_on, 0b00001);
    }

    /// Islanded at 200 ms with `remaining_wh`, after the AC loads were
    /// served on the grid at `ac_on_grid_w` (learnt as their average).
    fn islanded_after_ac_on_grid(ac_on_grid_w: f32, remaining_wh: f32) -> Resilience {
        let mut r = Resilience::new(config());
        r.update(Millis(0), &ResilienceInputs::new(true, remaining_wh, 0.0));
        assert!(r.ac_loads_served(ac_on_grid_w, 1e9), "always on the grid");
        r.update(
            Millis(100),
            &ResilienceInputs::new(false, remaining_wh, 0.0),
        );
        let c = r.update(
            Millis(200),
            &ResilienceInputs::new(false, remaining_wh, 0.0),
        );
        assert!(c.islanded);
        r
    }

    #[test]
    fn ac_loads_are_served_in_a_cut_while_the_spare_covers_an_hour_of_them() {
        // Every circuit kept needs 3240 Wh: 1760 Wh spare covers an hour of
        // the 1000 W learnt on the grid.
        let mut r = islanded_after_ac_on_grid(1000.0, 5000.0);
        assert!(r.ac_loads_served(1000.0, 1.0));
        // About 760 Wh spare: shed.
        r.update(Millis(60_200), &ResilienceInputs::new(false, 4000.0, 0.0));
        assert!(!r.ac_loads_served(1000.0, 60.0));
        // About 1760 Wh spare: not twice the hour, still shed.
        r.update(Millis(120_200), &ResilienceInputs::new(false, 5000.0, 0.0));
        assert!(!r.ac_loads_served(5000.0, 60.0));
        // About 2760 Wh spare: back; the average (1000 W) did not learn
        // the unserved reading.
        r.update(Millis(180_200), &ResilienceInputs::new(false, 6000.0, 0.0));
        assert!(r.ac_loads_served(1000.0, 60.0));
    }

    #[test]
    fn ac_loads_are_shed_before_any_essential_circuit() {
        // 600 Wh keeps the lighting only: the fridge is shed, so are the
        // AC loads, however small.
        let mut r = islanded_after_ac_on_grid(0.0, 600.0);
        assert!(!r.ac_loads_served(0.0, 1.0));
        // Back on the grid they are served again.
        let mut r = islanded_after_ac_on_grid(0.0, 600.0);
        r.update(Millis(300), &ResilienceInputs::new(true, 600.0, 0.0));
        r.update(Millis(60_300), &ResilienceInputs::new(true, 600.0, 0.0));
        assert!(!r.is_islanded());
        assert!(r.ac_loads_served(0.0, 1.0));
    }

    #[test]
    fn the_ac_average_is_first_order_and_ignores_bad_readings() {
        assert_eq!(ac_average(100.0, 1000.0, 900.0), 550.0);
        assert_eq!(ac_average(100.0, f32::NAN, 900.0), 100.0);
        assert_eq!(ac_average(100.0, 1000.0, 0.0), 100.0);
        assert_eq!(ac_average(100.0, 1000.0, f32::INFINITY), 100.0);
    }

    #[cfg(feature = "std")]
    #[test]
    fn toml_shape() {
        let text = r#"
            mains_loss_debounce_ms = 100
            mains_stable_ms = 60000
            restore_gap_ms = 5000
            reevaluate_ms = 60000
            horizon_h = 12.0
            pv_confidence = 0.7
            restore_margin = 0.1
            [[circuits]]
            name = "lighting"
            priority = 0
            expected_load_w = 40.0
            essential = true
            min_runtime_h = 12.0
            [[circuits]]
            name = "office sockets"
            priority = 5
            expected_load_w = 120.0
        "#;
        let c: ResilienceConfig = toml::from_str(text).unwrap();
        c.validate().unwrap();
        assert_eq!(c.circuits.len(), 2);
        assert!(c.circuits[0].essential && !c.circuits[1].essential);
        let d: ResilienceConfig = toml::from_str("").unwrap();
        assert_eq!(d, ResilienceConfig::default());
        assert!(toml::from_str::<ResilienceConfig>("debounce = 3").is_err());
    }

    #[test]
    fn config_validation() {
        assert!(ResilienceConfig::default().validate().is_ok());
        let bad = ResilienceConfig {
            mains_loss_debounce_ms: 2500,
            ..ResilienceConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "mains_loss_debounce_ms");
        let mut bad = config();
        bad.circuits[0].min_runtime_h = 20.0;
        assert_eq!(bad.validate().unwrap_err().field, "circuits.min_runtime_h");
        let mut bad = config();
        bad.circuits[2].expected_load_w = f32::NAN;
        assert!(bad.validate().is_err());
    }

    proptest! {
        #[test]
        fn essential_last_and_no_export_while_islanded(
            steps in proptest::collection::vec(
                (any::<bool>(), prop_oneof![Just(f32::NAN), -100.0f32..5000.0],
                 prop_oneof![Just(f32::NAN), -10.0f32..2000.0],
                 proptest::collection::vec(prop_oneof![Just(f32::NAN), 0.0f32..500.0], 16),
                 1u64..120_000),
                1..200),
        ) {
            let mut r = Resilience::new(config());
            let mut t = Millis(0);
            for (mains, e, pv, loads, dt) in steps {
                let mut i = ResilienceInputs::new(mains, e, pv);
                for (slot, l) in i.circuit_load_w.iter_mut().zip(loads) {
                    *slot = l;
                }
                t = t.plus_ms(dt);
                let c = r.update(t, &i);
                if c.islanded {
                    prop_assert!(c.stop_export);
                }
                let any_essential_off = (0..2).any(|k| !c.is_on(k));
                if any_essential_off {
                    for k in 2..5 {
                        prop_assert!(!c.is_on(k), "non-essential {} on while essential off", k);
                    }
                }
                prop_assert_eq!(c.circuit_on >> 5, 0);
                prop_assert!(c.available_wh.is_finite() && c.needed_wh.is_finite());
            }
        }

        #[test]
        fn essential_last_for_any_circuit_set(
            circuits in proptest::collection::vec(
                (any::<u8>(), 0.0f32..300.0, any::<bool>(), 0.0f32..12.0), 0..=MAX_CIRCUITS),
            steps in proptest::collection::vec(
                (any::<bool>(), -100.0f32..8000.0, 0.0f32..3000.0, 1u64..200_000), 1..100),
        ) {
            let mut cfg = ResilienceConfig { reevaluate_ms: 30_000, ..ResilienceConfig::default() };
            for (k, (p, l, e, h)) in circuits.iter().enumerate() {
                let name = if k % 2 == 0 { "a" } else { "b" };
                cfg.circuits.push(circuit(name, *p, *l, *e, *h)).unwrap();
            }
            prop_assert!(cfg.validate().is_ok());
            let mut r = Resilience::new(cfg.clone());
            let mut t = Millis(0);
            for (mains, e, pv, dt) in steps {
                t = t.plus_ms(dt);
                let c = r.update(t, &ResilienceInputs::new(mains, e, pv));
                prop_assert!(!c.islanded || c.stop_export);
                let essential_off = cfg.circuits.iter().enumerate().any(|(k, cc)| cc.essential && !c.is_on(k));
                if essential_off {
                    for (k, cc) in cfg.circuits.iter().enumerate() {
                        prop_assert!(cc.essential || !c.is_on(k));
                    }
                }
                // Among non-essential circuits, a more important one (lower
                // priority number) is never off while a less important is on.
                for (a, ca) in cfg.circuits.iter().enumerate() {
                    for (b, cb) in cfg.circuits.iter().enumerate() {
                        if ca.essential == cb.essential && ca.priority < cb.priority && c.is_on(b) {
                            prop_assert!(c.is_on(a));
                        }
                    }
                }
            }
        }
    }
}
