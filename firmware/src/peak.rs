//! Assured peak reduction [claim 4, FIG 7b].
//!
//! In a configured peak window the assembly runs its DC loads (and, where an
//! inverter is fitted and configured, the AC share it can carry) from the
//! battery, so that grid import falls by at least the **assured reduction**.
//! The discharge is bounded by protection's limit and by an energy budget:
//! the energy above the reserve spread over what is left of the window, so
//! the battery lasts the whole window rather than running empty half way.
//!
//! After each window a [`PeakReport`] says what was delivered against what
//! was assured: the time-weighted average reduction, the lowest 1-minute
//! mean, the fraction of time the assured amount was met, and `met`.
//!
//! Sans-IO: [`PeakShaver::update`] takes the local time and measurements and
//! returns a [`PeakCommand`]. Battery power positive = discharge; grid power
//! positive = import. Powers W, energies Wh, SOC 0..1.

use crate::config::{check_range, POSITIVE_FRACTION};
use crate::num::{clampf, non_negative};
use crate::scheduling::TimeWindow;
use crate::{ConfigError, LocalTime, Millis};

/// How many finished windows' reports are kept.
pub const REPORT_HISTORY: usize = 8;
/// Longest interval (s) one update accounts for; longer gaps are counted.
pub const MAX_STEP_S: f32 = 60.0;

/// How the baseline (grid import without the assembly) is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineMethod {
    /// Measured import plus what the battery delivered to the loads it
    /// serves (those loads would otherwise have been on the grid).
    #[default]
    MeasuredLoad,
    /// The expected import from the learned demand profile, passed in as
    /// [`PeakInputs::profile_baseline_w`].
    Profile,
}

fn default_windows() -> heapless::Vec<TimeWindow, 4> {
    let mut v = heapless::Vec::new();
    let _ = v.push(TimeWindow {
        start_min: 17 * 60,
        end_min: 21 * 60,
        days: 0x1F,
    });
    v
}
fn default_assured_w() -> f32 {
    200.0
}
fn default_reserve_soc() -> f32 {
    0.2
}
fn default_met_fraction() -> f32 {
    0.95
}
fn default_met_tolerance_w() -> f32 {
    5.0
}

/// Peak-reduction configuration (`[peak]`).
///
/// ```toml
/// [peak]
/// windows = [{ start_min = 1020, end_min = 1260, days = 31 }]  # 17–21 h Mon–Fri
/// assured_reduction_w = 200.0
/// include_inverter_ac = false
/// max_inverter_ac_w = 0.0
/// baseline = "measured_load"     # or "profile"
/// reserve_soc = 0.2
/// met_fraction = 0.95            # share of the window the assured amount must be met
/// met_tolerance_w = 5.0
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakConfig {
    /// Peak windows (at most 4; see [`TimeWindow`] for days and midnight).
    #[serde(default = "default_windows")]
    pub windows: heapless::Vec<TimeWindow, 4>,
    /// Reduction of grid import committed during the window, W (≥ 0).
    #[serde(default = "default_assured_w")]
    pub assured_reduction_w: f32,
    /// Also carry AC loads through the inverter.
    #[serde(default)]
    pub include_inverter_ac: bool,
    /// Most AC power the inverter may carry, W (≥ 0).
    #[serde(default)]
    pub max_inverter_ac_w: f32,
    #[serde(default)]
    pub baseline: BaselineMethod,
    /// Never discharge below this SOC, [0, 1).
    #[serde(default = "default_reserve_soc")]
    pub reserve_soc: f32,
    /// Fraction (0, 1] of the window the assured reduction must be met for `met`.
    #[serde(default = "default_met_fraction")]
    pub met_fraction: f32,
    /// Shortfall (W, ≥ 0) still counted as meeting the assured reduction.
    #[serde(default = "default_met_tolerance_w")]
    pub met_tolerance_w: f32,
}

impl Default for PeakConfig {
    fn default() -> Self {
        PeakConfig {
            windows: default_windows(),
            assured_reduction_w: default_assured_w(),
            include_inverter_ac: false,
            max_inverter_ac_w: 0.0,
            baseline: BaselineMethod::MeasuredLoad,
            reserve_soc: default_reserve_soc(),
            met_fraction: default_met_fraction(),
            met_tolerance_w: default_met_tolerance_w(),
        }
    }
}

impl PeakConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for w in &self.windows {
            w.validate("windows")?;
        }
        check_range("assured_reduction_w", self.assured_reduction_w, 0.0..=1e6)?;
        check_range("max_inverter_ac_w", self.max_inverter_ac_w, 0.0..=1e6)?;
        check_range("reserve_soc", self.reserve_soc, 0.0..=0.99)?;
        check_range("met_fraction", self.met_fraction, POSITIVE_FRACTION)?;
        check_range("met_tolerance_w", self.met_tolerance_w, 0.0..=1e5)
    }
}

/// Why the peak function commanded what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeakReason {
    /// Not in a peak window.
    Inactive,
    /// Serving all the DC (and AC share) load from the battery.
    Serving,
    /// Capped by the energy budget (energy above reserve / time left).
    BudgetLimited,
    /// Capped by protection's discharge limit.
    DischargeLimited,
    /// At or below the reserve: no discharge.
    AtReserve,
    /// SOC or capacity invalid: no discharge.
    InvalidInput,
}

/// This step's command.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakCommand {
    /// In a peak window.
    pub active: bool,
    /// Battery discharge to supply the DC loads and the inverter, W (≥ 0).
    pub battery_discharge_w: f32,
    /// Of that, AC power for the inverter to carry, W (≥ 0).
    pub inverter_ac_w: f32,
    pub reason: PeakReason,
}

impl PeakCommand {
    const INACTIVE: PeakCommand = PeakCommand {
        active: false,
        battery_discharge_w: 0.0,
        inverter_ac_w: 0.0,
        reason: PeakReason::Inactive,
    };
}

/// This step's measurements and limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakInputs {
    /// DC load on the assembly's network, W (≥ 0).
    pub dc_load_w: f32,
    /// AC load the inverter could carry, W (≥ 0; 0 without an inverter).
    pub ac_load_w: f32,
    /// Measured grid power, W (+ import).
    pub grid_import_w: f32,
    /// Measured battery power, W (+ discharge).
    pub battery_w: f32,
    /// Expected import without the assembly, W (used by `baseline = "profile"`).
    pub profile_baseline_w: f32,
    /// SOC, 0..1.
    pub soc: f32,
    /// Usable capacity, Wh.
    pub usable_capacity_wh: f32,
    /// Discharge limit from protection, W (≥ 0). Never exceeded.
    pub max_discharge_w: f32,
}

/// What one peak window delivered against what was assured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakReport {
    /// Index of the window in `PeakConfig::windows`.
    pub window: u8,
    /// When the window was first seen active.
    pub started: Millis,
    /// Time accounted, s.
    pub duration_s: f32,
    /// The assured reduction, W.
    pub assured_w: f32,
    /// Time-weighted (energy) average reduction, W.
    pub avg_reduction_w: f32,
    /// Lowest mean reduction over a 1-minute interval, W.
    pub min_1min_reduction_w: f32,
    /// Fraction of the time the reduction was ≥ assured − tolerance.
    pub fraction_met: f32,
    /// `fraction_met ≥ met_fraction` and the average ≥ assured − tolerance.
    pub met: bool,
    /// Energy the battery delivered in the window, Wh.
    pub battery_wh: f32,
    /// The battery reached its reserve before the window ended.
    pub reserve_reached: bool,
    /// Intervals with invalid measurements (counted as zero reduction).
    pub invalid_samples: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    window: u8,
    started: Millis,
    total_s: f64,
    reduction_j: f64,
    met_s: f64,
    battery_j: f64,
    bucket_j: f64,
    bucket_s: f64,
    min_1min_w: f32,
    reserve_reached: bool,
    invalid_samples: u32,
}

/// The peak-reduction function: window tracking, command, report.
#[derive(Debug, Clone)]
pub struct PeakShaver {
    cfg: PeakConfig,
    last: Option<Millis>,
    run: Option<Run>,
    reports: heapless::Deque<PeakReport, REPORT_HISTORY>,
    fresh: Option<PeakReport>,
    /// Updates whose interval exceeded [`MAX_STEP_S`] (accounted as `MAX_STEP_S`).
    pub long_gaps: u32,
}

impl PeakShaver {
    /// `cfg` should have been validated.
    pub fn new(cfg: PeakConfig) -> Self {
        PeakShaver {
            cfg,
            last: None,
            run: None,
            reports: heapless::Deque::new(),
            fresh: None,
            long_gaps: 0,
        }
    }

    pub fn config(&self) -> &PeakConfig {
        &self.cfg
    }

    /// Sets the reserve state of charge (fraction) kept below the peak's
    /// budget, e.g. from a signed remote configuration. Non-finite values
    /// are ignored; others are clamped to `0..=0.99`.
    pub fn set_reserve_soc(&mut self, soc: f32) {
        if soc.is_finite() {
            self.cfg.reserve_soc = soc.clamp(0.0, 0.99);
        }
    }

    /// Index of the peak window containing `t`, if any.
    pub fn window_at(&self, t: LocalTime) -> Option<(u8, u32)> {
        self.cfg
            .windows
            .iter()
            .enumerate()
            .find_map(|(i, w)| w.remaining_s(t).map(|r| (i as u8, r)))
    }

    /// Reports of the last [`REPORT_HISTORY`] windows, oldest first.
    pub fn reports(&self) -> impl Iterator<Item = &PeakReport> {
        self.reports.iter()
    }

    /// The report of a window that has just ended, once.
    pub fn take_finished(&mut self) -> Option<PeakReport> {
        self.fresh.take()
    }

    /// One control step at `now` (monotonic) / `local` (time of day). The
    /// measurements account for the interval since the previous update.
    pub fn update(&mut self, now: Millis, local: LocalTime, inp: &PeakInputs) -> PeakCommand {
        let dt_s = match self.last {
            Some(prev) => {
                let d = now.since(prev) as f32 * 1e-3;
                if d > MAX_STEP_S {
                    self.long_gaps = self.long_gaps.saturating_add(1);
                }
                d.min(MAX_STEP_S)
            }
            None => 0.0,
        };
        self.last = Some(now);
        let current = self.window_at(local);

        // Close a run whose window has ended (or switched).
        if let Some(run) = self.run {
            if current.map(|c| c.0) != Some(run.window) {
                self.finish(run);
                self.run = None;
            }
        }
        let Some((win, remaining_s)) = current else {
            return PeakCommand::INACTIVE;
        };
        match &mut self.run {
            Some(run) => Self::account(&self.cfg, run, dt_s, inp),
            None => {
                self.run = Some(Run {
                    window: win,
                    started: now,
                    total_s: 0.0,
                    reduction_j: 0.0,
                    met_s: 0.0,
                    battery_j: 0.0,
                    bucket_j: 0.0,
                    bucket_s: 0.0,
                    min_1min_w: f32::INFINITY,
                    reserve_reached: false,
                    invalid_samples: 0,
                })
            }
        }

        let cmd = self.command(remaining_s, inp);
        if cmd.reason == PeakReason::AtReserve {
            if let Some(run) = &mut self.run {
                run.reserve_reached = true;
            }
        }
        cmd
    }

    fn command(&self, remaining_s: u32, inp: &PeakInputs) -> PeakCommand {
        let cfg = &self.cfg;
        let mut cmd = PeakCommand {
            active: true,
            battery_discharge_w: 0.0,
            inverter_ac_w: 0.0,
            reason: PeakReason::InvalidInput,
        };
        let cap = inp.usable_capacity_wh;
        if !(inp.soc.is_finite() && cap.is_finite() && cap > 0.0) {
            return cmd;
        }
        let avail_wh = (clampf(inp.soc, 0.0, 1.0) - cfg.reserve_soc) * cap;
        if avail_wh.is_nan() || avail_wh <= 0.0 {
            cmd.reason = PeakReason::AtReserve;
            return cmd;
        }
        let budget_w = avail_wh * 3600.0 / remaining_s.max(1) as f32;
        let limit_w = non_negative(inp.max_discharge_w);
        let dc = non_negative(inp.dc_load_w);
        let ac = if cfg.include_inverter_ac {
            non_negative(inp.ac_load_w).min(cfg.max_inverter_ac_w.max(0.0))
        } else {
            0.0
        };
        let want = dc + ac;
        let mut p = want;
        cmd.reason = PeakReason::Serving;
        if limit_w < p {
            p = limit_w;
            cmd.reason = PeakReason::DischargeLimited;
        }
        if budget_w < p {
            p = budget_w;
            cmd.reason = PeakReason::BudgetLimited;
        }
        let p = clampf(p, 0.0, limit_w);
        cmd.battery_discharge_w = p;
        cmd.inverter_ac_w = clampf(p - dc, 0.0, ac);
        cmd
    }

    fn account(cfg: &PeakConfig, run: &mut Run, dt_s: f32, inp: &PeakInputs) {
        if dt_s <= 0.0 {
            return;
        }
        let discharge = non_negative(inp.battery_w);
        let baseline = match cfg.baseline {
            BaselineMethod::MeasuredLoad => inp.grid_import_w + discharge,
            BaselineMethod::Profile => inp.profile_baseline_w,
        };
        let mut reduction = baseline - inp.grid_import_w;
        if !reduction.is_finite() || !inp.battery_w.is_finite() {
            run.invalid_samples = run.invalid_samples.saturating_add(1);
            reduction = 0.0;
        }
        let dt = f64::from(dt_s);
        run.total_s += dt;
        run.reduction_j += f64::from(reduction) * dt;
        run.battery_j += f64::from(discharge) * dt;
        if reduction >= cfg.assured_reduction_w - cfg.met_tolerance_w {
            run.met_s += dt;
        }
        run.bucket_j += f64::from(reduction) * dt;
        run.bucket_s += dt;
        if run.bucket_s >= 60.0 - 1e-6 {
            let m = (run.bucket_j / run.bucket_s) as f32;
            run.min_1min_w = run.min_1min_w.min(m);
            run.bucket_j = 0.0;
            run.bucket_s = 0.0;
        }
    }

    fn finish(&mut self, mut run: Run) {
        if run.bucket_s >= 30.0 {
            let m = (run.bucket_j / run.bucket_s) as f32;
            run.min_1min_w = run.min_1min_w.min(m);
        }
        let (avg, frac) = if run.total_s > 0.0 {
            (
                (run.reduction_j / run.total_s) as f32,
                (run.met_s / run.total_s) as f32,
            )
        } else {
            (0.0, 0.0)
        };
        let min_1min = if run.min_1min_w.is_finite() {
            run.min_1min_w
        } else {
            avg
        };
        let assured = self.cfg.assured_reduction_w;
        let report = PeakReport {
            window: run.window,
            started: run.started,
            duration_s: run.total_s as f32,
            assured_w: assured,
            avg_reduction_w: avg,
            min_1min_reduction_w: min_1min,
            fraction_met: frac,
            met: run.total_s > 0.0
                && frac >= self.cfg.met_fraction
                && avg >= assured - self.cfg.met_tolerance_w,
            battery_wh: (run.battery_j / 3600.0) as f32,
            reserve_reached: run.reserve_reached,
            invalid_samples: run.invalid_samples,
        };
        if self.reports.is_full() {
            let _ = self.reports.pop_front();
        }
        let _ = self.reports.push_back(report);
        self.fresh = Some(report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lt(sod: u32, weekday: u8) -> LocalTime {
        LocalTime {
            seconds_of_day: sod % 86400,
            weekday: (u32::from(weekday) + sod / 86400) as u8 % 7,
        }
    }

    /// A tiny house: DC load served by the battery, the rest of the house on
    /// the grid. Steps every `dt` s from `start` for `secs`, returns the
    /// final SOC.
    struct House {
        soc: f32,
        cap_wh: f32,
        house_ac_w: f32,
        dc_w: f32,
        limit_w: f32,
        /// At `.0` s into the run the SOC estimate is corrected down to `.1`
        /// (an ageing pack found to hold less than the estimator thought).
        soc_drop: Option<(u32, f32)>,
    }

    fn run_day(p: &mut PeakShaver, h: &mut House, start_sod: u32, secs: u32, dt: u32) {
        let mut last_battery = 0.0;
        let mut last_import = h.house_ac_w + h.dc_w;
        let mut t = 0;
        while t <= secs {
            let inp = PeakInputs {
                dc_load_w: h.dc_w,
                ac_load_w: h.house_ac_w,
                grid_import_w: last_import,
                battery_w: last_battery,
                profile_baseline_w: h.house_ac_w + h.dc_w,
                soc: h.soc,
                usable_capacity_wh: h.cap_wh,
                max_discharge_w: h.limit_w,
            };
            if let Some((at, to)) = h.soc_drop {
                if t >= at {
                    h.soc = h.soc.min(to);
                }
            }
            let c = p.update(Millis(u64::from(t) * 1000), lt(start_sod + t, 0), &inp);
            assert!(c.battery_discharge_w <= h.limit_w + 1e-3);
            // Plant: the battery delivers what is commanded while energy lasts.
            let deliver = if h.soc > 0.0 {
                c.battery_discharge_w
            } else {
                0.0
            };
            h.soc = (h.soc - deliver * dt as f32 / 3600.0 / h.cap_wh).max(0.0);
            last_battery = deliver;
            last_import = h.house_ac_w + h.dc_w - deliver;
            t += dt;
        }
    }

    #[test]
    fn window_detection_including_midnight() {
        let mut cfg = PeakConfig::default();
        cfg.windows.clear();
        let _ = cfg.windows.push(TimeWindow {
            start_min: 17 * 60,
            end_min: 21 * 60,
            days: 0x1F,
        });
        let _ = cfg.windows.push(TimeWindow::daily(23 * 60, 30));
        let p = PeakShaver::new(cfg);
        assert_eq!(p.window_at(lt(18 * 3600, 0)).map(|w| w.0), Some(0));
        assert_eq!(p.window_at(lt(18 * 3600, 5)), None); // Saturday
        assert_eq!(p.window_at(lt(23 * 3600 + 600, 6)), Some((1, 4800)));
        assert_eq!(p.window_at(lt(600, 0)), Some((1, 1200)));
        assert_eq!(p.window_at(lt(1800, 0)), None);
        assert_eq!(p.window_at(lt(12 * 3600, 2)), None);
    }

    #[test]
    fn reduction_is_baseline_minus_import_and_met() {
        // 4 h window, DC 300 W, assured 250 W, plenty of energy.
        let cfg = PeakConfig {
            assured_reduction_w: 250.0,
            ..Default::default()
        };
        let mut p = PeakShaver::new(cfg);
        let mut h = House {
            soc: 0.9,
            cap_wh: 5000.0,
            house_ac_w: 800.0,
            dc_w: 300.0,
            limit_w: 2000.0,
            soc_drop: None,
        };
        run_day(&mut p, &mut h, 16 * 3600, 6 * 3600, 10);
        let r = p.take_finished().expect("report");
        assert!(p.take_finished().is_none());
        assert!((r.duration_s - 4.0 * 3600.0).abs() < 20.0, "{r:?}");
        assert!((r.avg_reduction_w - 300.0).abs() < 1.0, "{r:?}");
        assert!((r.min_1min_reduction_w - 300.0).abs() < 0.5, "{r:?}");
        assert!(r.fraction_met > 0.99 && r.met, "{r:?}");
        assert!((r.battery_wh - 1200.0).abs() < 2.0);
        assert!(!r.reserve_reached);
        // SOC used: 1200 Wh of 5000.
        assert!((h.soc - (0.9 - 0.24)).abs() < 1e-3);

        // Profile baseline: reduction = expected − measured import.
        let cfg = PeakConfig {
            baseline: BaselineMethod::Profile,
            ..Default::default()
        };
        let mut p = PeakShaver::new(cfg);
        let mut h = House {
            soc: 0.9,
            cap_wh: 5000.0,
            house_ac_w: 800.0,
            dc_w: 300.0,
            limit_w: 2000.0,
            soc_drop: None,
        };
        run_day(&mut p, &mut h, 16 * 3600, 6 * 3600, 10);
        let r = p.take_finished().unwrap();
        assert!((r.avg_reduction_w - 300.0).abs() < 1.0, "{r:?}");
    }

    #[test]
    fn budget_makes_the_battery_last_the_window() {
        // 1000 Wh above reserve for a 4 h window, DC load 400 W:
        // budget 250 W, constant; the battery lasts and ends at the reserve.
        let cfg = PeakConfig {
            assured_reduction_w: 200.0,
            ..Default::default()
        };
        let mut p = PeakShaver::new(cfg);
        let mut h = House {
            soc: 0.4,
            cap_wh: 5000.0,
            house_ac_w: 500.0,
            dc_w: 400.0,
            limit_w: 2000.0,
            soc_drop: None,
        };
        run_day(&mut p, &mut h, 17 * 3600, 4 * 3600 + 60, 10);
        let r = p.take_finished().unwrap();
        assert!((r.avg_reduction_w - 250.0).abs() < 2.0, "{r:?}");
        assert!(r.min_1min_reduction_w > 240.0, "{r:?}");
        assert!(r.met, "{r:?}");
        assert!((h.soc - 0.2).abs() < 0.002, "soc {}", h.soc);
        assert!(h.soc >= 0.2 - 1e-4);
    }

    #[test]
    fn not_met_when_the_battery_runs_empty() {
        // At 19:00 the SOC estimate is corrected down to the reserve (the
        // pack held less than thought): the battery is empty half way.
        let cfg = PeakConfig {
            assured_reduction_w: 200.0,
            reserve_soc: 0.1,
            ..Default::default()
        };
        let mut p = PeakShaver::new(cfg);
        let mut h = House {
            soc: 0.5,
            cap_wh: 5000.0,
            house_ac_w: 500.0,
            dc_w: 300.0,
            limit_w: 2000.0,
            soc_drop: Some((2 * 3600, 0.1)),
        };
        run_day(&mut p, &mut h, 17 * 3600, 4 * 3600 + 60, 10);
        let r = p.take_finished().unwrap();
        assert!(r.reserve_reached, "{r:?}");
        assert!(!r.met, "{r:?}");
        assert!(r.min_1min_reduction_w < 1.0, "{r:?}");
        assert!((r.fraction_met - 0.5).abs() < 0.01, "{r:?}");
        assert!((r.avg_reduction_w - 150.0).abs() < 2.0, "{r:?}");
    }

    #[test]
    fn inverter_ac_share_and_limits() {
        let cfg = PeakConfig {
            include_inverter_ac: true,
            max_inverter_ac_w: 500.0,
            ..Default::default()
        };
        let mut p = PeakShaver::new(cfg);
        let mut inp = PeakInputs {
            dc_load_w: 300.0,
            ac_load_w: 900.0,
            grid_import_w: 1200.0,
            battery_w: 0.0,
            profile_baseline_w: 0.0,
            soc: 0.9,
            usable_capacity_wh: 10_000.0,
            max_discharge_w: 3000.0,
        };
        let c = p.update(Millis(0), lt(18 * 3600, 1), &inp);
        assert_eq!(c.reason, PeakReason::Serving);
        assert_eq!(c.battery_discharge_w, 800.0);
        assert_eq!(c.inverter_ac_w, 500.0);
        inp.max_discharge_w = 400.0;
        let c = p.update(Millis(1000), lt(18 * 3600 + 1, 1), &inp);
        assert_eq!(c.reason, PeakReason::DischargeLimited);
        assert_eq!(c.battery_discharge_w, 400.0);
        assert_eq!(c.inverter_ac_w, 100.0);
        inp.soc = 0.2;
        let c = p.update(Millis(2000), lt(18 * 3600 + 2, 1), &inp);
        assert_eq!(c.reason, PeakReason::AtReserve);
        assert_eq!(c.battery_discharge_w, 0.0);
        inp.soc = f32::NAN;
        let c = p.update(Millis(3000), lt(18 * 3600 + 3, 1), &inp);
        assert_eq!(c.reason, PeakReason::InvalidInput);
        assert_eq!(c.battery_discharge_w, 0.0);
        let c = p.update(Millis(4000), lt(22 * 3600, 1), &inp);
        assert_eq!(c, PeakCommand::INACTIVE);
        let r = p.take_finished().unwrap();
        assert!(r.reserve_reached);
        assert_eq!(p.reports().count(), 1);
    }

    #[cfg(feature = "std")]
    #[test]
    fn documented_toml_parses() {
        let c: PeakConfig = toml::from_str(
            "windows = [{ start_min = 1020, end_min = 1260, days = 31 }]\n\
             assured_reduction_w = 200.0\ninclude_inverter_ac = false\nmax_inverter_ac_w = 0.0\n\
             baseline = \"measured_load\"\nreserve_soc = 0.2\nmet_fraction = 0.95\nmet_tolerance_w = 5.0\n",
        )
        .unwrap();
        assert_eq!(c, PeakConfig::default());
        let c: PeakConfig = toml::from_str("baseline = \"profile\"").unwrap();
        assert_eq!(c.baseline, BaselineMethod::Profile);
    }

    #[test]
    fn report_history_is_bounded() {
        let mut p = PeakShaver::new(PeakConfig::default());
        let inp = PeakInputs {
            dc_load_w: 300.0,
            ac_load_w: 0.0,
            grid_import_w: 100.0,
            battery_w: 300.0,
            profile_baseline_w: 0.0,
            soc: 0.9,
            usable_capacity_wh: 10_000.0,
            max_discharge_w: 3000.0,
        };
        for day in 0..12u64 {
            let base = day * 86_400_000;
            let wd = (day % 5) as u8; // weekdays only
            p.update(Millis(base), lt(17 * 3600 + 60, wd), &inp);
            p.update(Millis(base + 60_000), lt(17 * 3600 + 120, wd), &inp);
            p.update(Millis(base + 120_000), lt(22 * 3600, wd), &inp);
        }
        assert_eq!(p.reports().count(), REPORT_HISTORY);
        assert!(p
            .reports()
            .all(|r| (r.avg_reduction_w - 300.0).abs() < 1e-3 && r.met));
        assert!(p.config().validate().is_ok());
        let bad = PeakConfig {
            met_fraction: 0.0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field.as_str(), "met_fraction");
    }

    proptest! {
        /// A whole window on the tiny plant with a random load and random
        /// update intervals: the SOC never goes below the reserve and the
        /// discharge never exceeds the limit.
        #[test]
        fn window_simulation_keeps_the_reserve(
            soc0 in 0.0f32..1.0, reserve in 0.0f32..0.9, limit in 0.0f32..3000.0,
            loads in proptest::collection::vec((0.0f32..2500.0, 1u32..120), 1..400),
        ) {
            let cfg = PeakConfig { reserve_soc: reserve, ..Default::default() };
            let mut p = PeakShaver::new(cfg);
            let cap = 5000.0f32;
            let mut soc = soc0;
            let mut t = 17 * 3600u32;
            let mut i = 0;
            while t < 21 * 3600 {
                let (load, dt) = loads[i % loads.len()];
                i += 1;
                let rem = 21 * 3600 - t;
                let dt = dt.min(rem);
                let inp = PeakInputs { dc_load_w: load, ac_load_w: 0.0, grid_import_w: 0.0, battery_w: 0.0, profile_baseline_w: 0.0, soc, usable_capacity_wh: cap, max_discharge_w: limit };
                let c = p.update(Millis(u64::from(t) * 1000), lt(t, 0), &inp);
                prop_assert!(c.battery_discharge_w <= limit && c.battery_discharge_w >= 0.0);
                prop_assert!(c.battery_discharge_w <= load + 1e-3);
                soc -= c.battery_discharge_w * dt as f32 / 3600.0 / cap;
                prop_assert!(soc >= soc0.min(reserve) - 1e-4, "soc {} reserve {}", soc, reserve);
                t += dt;
            }
        }
    }

    fn any_f32() -> impl Strategy<Value = f32> {
        prop_oneof![
            -1e4f32..1e4f32,
            0.0f32..1.0,
            Just(f32::NAN),
            Just(f32::INFINITY),
            Just(f32::NEG_INFINITY),
        ]
    }

    proptest! {
        #[test]
        fn never_below_reserve_never_over_limit(
            dc in any_f32(), ac in any_f32(), grid in any_f32(), batt in any_f32(),
            base in any_f32(), soc in any_f32(), cap in any_f32(), limit in any_f32(),
            sod in 0u32..86400, wd in 0u8..7, include_ac in any::<bool>(), reserve in 0.0f32..0.9,
        ) {
            let cfg = PeakConfig { include_inverter_ac: include_ac, max_inverter_ac_w: 700.0, reserve_soc: reserve, ..Default::default() };
            let mut p = PeakShaver::new(cfg);
            let inp = PeakInputs { dc_load_w: dc, ac_load_w: ac, grid_import_w: grid, battery_w: batt, profile_baseline_w: base, soc, usable_capacity_wh: cap, max_discharge_w: limit };
            let t = LocalTime { seconds_of_day: sod, weekday: wd };
            let c = p.update(Millis(0), t, &inp);
            let c2 = p.update(Millis(30_000), LocalTime { seconds_of_day: (sod + 30) % 86400, weekday: wd }, &inp);
            for (i, c) in [c, c2].into_iter().enumerate() {
                prop_assert!(c.battery_discharge_w.is_finite() && c.battery_discharge_w >= 0.0);
                prop_assert!(c.inverter_ac_w.is_finite() && c.inverter_ac_w >= 0.0);
                prop_assert!(c.inverter_ac_w <= c.battery_discharge_w + 1e-3);
                let lim = if limit.is_finite() { limit.max(0.0) } else { 0.0 };
                prop_assert!(c.battery_discharge_w <= lim);
                let has_energy = soc.is_finite() && soc > reserve && cap.is_finite() && cap > 0.0;
                if !has_energy {
                    prop_assert_eq!(c.battery_discharge_w, 0.0);
                }
                // Discharging at this rate for the rest of the window never
                // takes the battery below the reserve.
                if let (0, Some((_, rem)), true) = (i, p.window_at(t), c.battery_discharge_w > 0.0) {
                    let used = c.battery_discharge_w * rem as f32 / 3600.0;
                    prop_assert!(used <= (soc.min(1.0) - reserve) * cap * 1.0001 + 1e-3);
                }
            }
            if let Some(r) = p.take_finished() {
                prop_assert!(r.avg_reduction_w.is_finite() && r.min_1min_reduction_w.is_finite());
            }
        }
    }
}
