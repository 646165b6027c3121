//! The inverter that runs AC loads from the DC bus (the battery): in the
//! peak window, grid-tied in parallel with the supply; in a power cut,
//! optionally forming an island for backed-up circuits.
//!
//! Losses follow the usual three-term model
//! `P_loss = p0 + k1·P + k2·P²/P_rated` (no-load, linear and resistive
//! terms; `k1`, `k2` dimensionless), so the efficiency rises steeply at low
//! load and falls slightly towards full load. A sleeping inverter (no
//! output) draws only its standby power.
//!
//! Export: grid-tied, the output is limited to the local AC load unless
//! export is enabled, and then to the load plus `export_limit_w`.
//! Anti-islanding: when the mains is lost, a grid-tied inverter keeps its
//! output for at most `anti_islanding_trip_s` (≤ 2 s by grid codes; a
//! scenario may degrade it, or fail it with `anti_islanding_failed`, so the
//! controller's own loss-of-mains reaction is what is judged), then disconnects; it
//! reconnects only after the mains has been back for `reconnect_delay_s`.
//! With `backup_enabled`, after disconnecting it waits `transfer_s` and
//! forms an island serving the local load (never exporting).
//!
//! Timers run on the `dt_s` passed to [`Inverter::step`]; the step in which
//! the trip falls delivers only the part of the step before the trip, so
//! the energy pushed into a dead grid is exact whatever the step size.

use serde::{Deserialize, Serialize};

use super::mains::MainsState;
use super::{check_positive, check_range, finite_or_zero, ConfigError};

/// Inverter parameters.
///
/// ```toml
/// [inverter]
/// rated_power_w = 3000.0
/// loss_no_load_w = 15.0     # p0
/// loss_linear = 0.01        # k1 (fraction of P)
/// loss_quadratic = 0.02     # k2 (fraction of P at rated power)
/// standby_w = 3.0
/// export_enabled = false
/// export_limit_w = 3680.0
/// anti_islanding_trip_s = 0.5
/// anti_islanding_failed = false
/// reconnect_delay_s = 60.0
/// backup_enabled = true
/// transfer_s = 1.0
/// start_enabled = true
/// # Or give a datasheet curve (load fraction, efficiency) and the three
/// # loss coefficients above are fitted to it (least squares, non-negative):
/// # efficiency_curve = [[0.1, 0.935], [0.2, 0.955], [0.3, 0.962], [0.5, 0.966], [0.75, 0.965], [1.0, 0.962]]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InverterConfig {
    /// Continuous AC output rating, W.
    pub rated_power_w: f64,
    /// Loss at zero output while running (p0), W.
    pub loss_no_load_w: f64,
    /// Loss proportional to output power (k1), dimensionless.
    pub loss_linear: f64,
    /// Resistive loss coefficient (k2): loss `k2·P²/P_rated`, dimensionless.
    pub loss_quadratic: f64,
    /// DC draw when not delivering power (off, sleeping, disconnected), W.
    pub standby_w: f64,
    /// Whether export to the grid is permitted at start (changeable at run
    /// time with [`Inverter::set_export_enabled`]).
    pub export_enabled: bool,
    /// Most power it may push past the local load into the grid, W.
    pub export_limit_w: f64,
    /// Longest time it keeps its output after the mains is lost, s. Grid
    /// codes ask for at most 2 s; longer models a degraded relay (up to
    /// 3600 s).
    pub anti_islanding_trip_s: f64,
    /// Its own loss-of-mains protection has failed: it never disconnects
    /// by itself, so only the controller's reaction stops it feeding a
    /// dead network.
    pub anti_islanding_failed: bool,
    /// Time the mains must be back and healthy before reconnecting, s.
    pub reconnect_delay_s: f64,
    /// Whether it forms an island (backup supply) after a mains loss.
    pub backup_enabled: bool,
    /// Delay between disconnecting and forming the island, s.
    pub transfer_s: f64,
    /// Whether it starts enabled and connected (otherwise off).
    pub start_enabled: bool,
    /// Optional measured efficiency curve, `[load fraction, efficiency]`
    /// pairs (at least 3). When given, [`Inverter::new`] replaces
    /// `loss_no_load_w`, `loss_linear` and `loss_quadratic` by the
    /// non-negative least-squares fit of the loss model to it.
    pub efficiency_curve: Option<Vec<[f64; 2]>>,
}

impl Default for InverterConfig {
    fn default() -> Self {
        InverterConfig {
            rated_power_w: 3000.0,
            loss_no_load_w: 15.0,
            loss_linear: 0.01,
            loss_quadratic: 0.02,
            standby_w: 3.0,
            export_enabled: false,
            export_limit_w: 3680.0,
            anti_islanding_trip_s: 0.5,
            anti_islanding_failed: false,
            reconnect_delay_s: 60.0,
            backup_enabled: false,
            transfer_s: 1.0,
            start_enabled: true,
            efficiency_curve: None,
        }
    }
}

impl InverterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_positive("rated_power_w", self.rated_power_w)?;
        check_range("rated_power_w", self.rated_power_w, 1.0, 1e6)?;
        check_range(
            "loss_no_load_w",
            self.loss_no_load_w,
            0.0,
            0.2 * self.rated_power_w,
        )?;
        check_range("loss_linear", self.loss_linear, 0.0, 0.5)?;
        check_range("loss_quadratic", self.loss_quadratic, 0.0, 0.5)?;
        check_range("standby_w", self.standby_w, 0.0, 0.2 * self.rated_power_w)?;
        check_range("export_limit_w", self.export_limit_w, 0.0, 1e6)?;
        check_range(
            "anti_islanding_trip_s",
            self.anti_islanding_trip_s,
            0.0,
            3600.0,
        )?;
        check_range("reconnect_delay_s", self.reconnect_delay_s, 0.0, 3600.0)?;
        check_range("transfer_s", self.transfer_s, 0.0, 600.0)?;
        if let Some(curve) = &self.efficiency_curve {
            if curve.len() < 3 {
                return Err(ConfigError::new(
                    "efficiency_curve",
                    format!("needs at least 3 points, got {}", curve.len()),
                ));
            }
            for (i, [f, e]) in curve.iter().enumerate() {
                check_range(&format!("efficiency_curve[{i}][0]"), *f, 0.001, 1.5)?;
                check_range(&format!("efficiency_curve[{i}][1]"), *e, 0.01, 0.9999)?;
            }
        }
        Ok(())
    }

    /// The same config with the loss coefficients fitted to
    /// `efficiency_curve` (unchanged if there is none).
    pub fn with_fitted_losses(mut self) -> Self {
        if let Some(curve) = &self.efficiency_curve {
            let [p0, k1, k2] = fit_loss_model(self.rated_power_w, curve);
            self.loss_no_load_w = p0;
            self.loss_linear = k1;
            self.loss_quadratic = k2;
        }
        self
    }

    /// Loss at AC output `p_ac_w`, W (running).
    pub fn loss_at_w(&self, p_ac_w: f64) -> f64 {
        let p = p_ac_w.max(0.0);
        self.loss_no_load_w
            + self.loss_linear * p
            + self.loss_quadratic * p * p / self.rated_power_w
    }

    /// Conversion efficiency at AC output `p_ac_w` (0 at zero output).
    pub fn efficiency_at(&self, p_ac_w: f64) -> f64 {
        let p = p_ac_w.max(0.0);
        if p <= 0.0 {
            return 0.0;
        }
        p / (p + self.loss_at_w(p))
    }

    /// European weighted efficiency (5, 10, 20, 30, 50, 100 % of rating).
    pub fn euro_efficiency(&self) -> f64 {
        const W: [(f64, f64); 6] = [
            (0.05, 0.03),
            (0.10, 0.06),
            (0.20, 0.13),
            (0.30, 0.10),
            (0.50, 0.48),
            (1.00, 0.20),
        ];
        W.iter()
            .map(|(f, w)| w * self.efficiency_at(f * self.rated_power_w))
            .sum()
    }

    /// CEC weighted efficiency (10, 20, 30, 50, 75, 100 % of rating).
    pub fn cec_efficiency(&self) -> f64 {
        const W: [(f64, f64); 6] = [
            (0.10, 0.04),
            (0.20, 0.05),
            (0.30, 0.12),
            (0.50, 0.21),
            (0.75, 0.53),
            (1.00, 0.05),
        ];
        W.iter()
            .map(|(f, w)| w * self.efficiency_at(f * self.rated_power_w))
            .sum()
    }

    /// Largest AC output a DC input of `dc_w` can sustain, W.
    pub fn max_ac_for_dc_w(&self, dc_w: f64) -> f64 {
        if dc_w.is_nan() {
            return 0.0;
        }
        if dc_w == f64::INFINITY {
            return f64::INFINITY;
        }
        let d = dc_w - self.loss_no_load_w;
        if d <= 0.0 {
            return 0.0;
        }
        let a = self.loss_quadratic / self.rated_power_w;
        let b = 1.0 + self.loss_linear;
        if a <= 1e-15 {
            return d / b;
        }
        // a·P² + b·P − d = 0, positive root in the cancellation-free form.
        2.0 * d / (b + (b * b + 4.0 * a * d).sqrt())
    }
}

/// What the inverter is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InverterMode {
    /// Disabled by command.
    Off,
    /// Synchronised with the mains, delivering up to the request.
    GridTied,
    /// Disconnected from the grid (after a mains loss, or waiting for the
    /// mains to be healthy for the reconnect delay).
    Disconnected,
    /// Forming an island for the local load (mains absent, backup enabled).
    Islanded,
}

/// Inputs for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InverterInput {
    /// AC power the controller asks for, W (grid-tied). Clamped to
    /// `[0, rated]`.
    pub request_ac_w: f64,
    /// AC load on the inverter's side of the meter (what it may serve
    /// without exporting; all it serves when islanded), W.
    pub local_load_w: f64,
    /// Most DC power the bus can give this step, W (`f64::INFINITY` =
    /// unlimited).
    pub dc_available_w: f64,
}

impl InverterInput {
    pub fn new(request_ac_w: f64, local_load_w: f64) -> Self {
        InverterInput {
            request_ac_w,
            local_load_w,
            dc_available_w: f64::INFINITY,
        }
    }
}

/// Result of one step: mean powers over the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InverterStep {
    /// Mode at the end of the step.
    pub mode: InverterMode,
    /// AC output, W (≥ 0).
    pub ac_out_w: f64,
    /// DC input drawn from the bus, W (≥ 0).
    pub dc_in_w: f64,
    /// Conversion and standby loss, W (`dc_in_w − ac_out_w`).
    pub loss_w: f64,
    /// `ac_out_w / dc_in_w` (0 when idle).
    pub efficiency: f64,
    /// Whether it pushed power past the local load during this step.
    pub exporting: bool,
    /// Mean power pushed past the local load, W (≥ 0).
    pub export_w: f64,
    /// Whether it delivered power while the mains was absent without
    /// forming an island (the anti-islanding window).
    pub islanding: bool,
    /// Local load it could not serve when islanded, W.
    pub unserved_w: f64,
}

/// The inverter model. See the module docs.
#[derive(Debug, Clone)]
pub struct Inverter {
    cfg: InverterConfig,
    mode: InverterMode,
    enabled: bool,
    export_enabled: bool,
    /// Timers in whole microseconds, so thresholds are met exactly.
    absent_for_us: u64,
    present_for_us: u64,
    trips: u64,
}

impl Inverter {
    pub fn new(cfg: InverterConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let cfg = cfg.with_fitted_losses();
        let enabled = cfg.start_enabled;
        Ok(Inverter {
            mode: if enabled {
                InverterMode::GridTied
            } else {
                InverterMode::Off
            },
            enabled,
            export_enabled: cfg.export_enabled,
            absent_for_us: 0,
            present_for_us: secs_to_us(cfg.reconnect_delay_s),
            trips: 0,
            cfg,
        })
    }

    pub fn config(&self) -> &InverterConfig {
        &self.cfg
    }
    pub fn mode(&self) -> InverterMode {
        self.mode
    }
    /// Number of anti-islanding disconnections so far.
    pub fn anti_islanding_trips(&self) -> u64 {
        self.trips
    }
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if !on {
            self.mode = InverterMode::Off;
        } else if self.mode == InverterMode::Off {
            // Comes up disconnected and connects once the mains has been
            // healthy for the reconnect delay (the timer keeps running while
            // off, so a healthy grid allows an immediate connection).
            self.mode = InverterMode::Disconnected;
        }
    }
    pub fn set_export_enabled(&mut self, on: bool) {
        self.export_enabled = on;
    }
    pub fn export_enabled(&self) -> bool {
        self.export_enabled
    }

    /// Advances by `dt_s` seconds with the mains as it is at the start of
    /// the step. Non-finite or negative inputs count as zero (an infinite
    /// `dc_available_w` means unlimited).
    pub fn step(&mut self, dt_s: f64, input: InverterInput, mains: MainsState) -> InverterStep {
        let dt = finite_or_zero(dt_s).max(0.0);
        let dt_us = secs_to_us(dt);
        let trip_us = if self.cfg.anti_islanding_failed {
            u64::MAX
        } else {
            secs_to_us(self.cfg.anti_islanding_trip_s)
        };
        let island_after_us = trip_us.saturating_add(secs_to_us(self.cfg.transfer_s));
        let reconnect_us = secs_to_us(self.cfg.reconnect_delay_s);
        let request = finite_or_zero(input.request_ac_w).clamp(0.0, self.cfg.rated_power_w);
        let load = finite_or_zero(input.local_load_w).max(0.0);
        let dc_avail = if input.dc_available_w.is_nan() {
            0.0
        } else {
            input.dc_available_w.max(0.0)
        };

        // Transitions at the start of the step.
        if mains.present {
            self.absent_for_us = 0;
        } else {
            self.present_for_us = 0;
        }
        if !self.enabled {
            self.mode = InverterMode::Off;
        }
        match self.mode {
            InverterMode::Off => {}
            InverterMode::GridTied => {
                if !mains.present && self.absent_for_us >= trip_us {
                    self.disconnect();
                }
            }
            InverterMode::Disconnected | InverterMode::Islanded => {
                if mains.present && self.present_for_us >= reconnect_us {
                    self.mode = InverterMode::GridTied;
                } else if !mains.present
                    && self.cfg.backup_enabled
                    && self.absent_for_us >= island_after_us
                {
                    self.mode = InverterMode::Islanded;
                }
            }
        }
        if self.mode == InverterMode::Disconnected
            && !mains.present
            && self.cfg.backup_enabled
            && self.absent_for_us >= island_after_us
        {
            self.mode = InverterMode::Islanded;
        }

        // Output for the step.
        let mut out = InverterStep {
            mode: self.mode,
            ac_out_w: 0.0,
            dc_in_w: 0.0,
            loss_w: 0.0,
            efficiency: 0.0,
            exporting: false,
            export_w: 0.0,
            islanding: false,
            unserved_w: 0.0,
        };
        let (target, fraction, forming) = match self.mode {
            InverterMode::Off | InverterMode::Disconnected => (0.0, 1.0, false),
            InverterMode::GridTied => {
                let mut t = request;
                if self.export_enabled {
                    t = t.min(load + self.cfg.export_limit_w);
                } else {
                    t = t.min(load);
                }
                let fraction = if mains.present {
                    1.0
                } else if dt_us > 0 {
                    (trip_us.saturating_sub(self.absent_for_us) as f64 / dt_us as f64)
                        .clamp(0.0, 1.0)
                } else {
                    1.0
                };
                (t, fraction, false)
            }
            InverterMode::Islanded => {
                let t = load.min(self.cfg.rated_power_w);
                (t, 1.0, true)
            }
        };
        let target = target.min(self.cfg.max_ac_for_dc_w(dc_avail));
        let running = target > 0.0 || forming;
        if running {
            let loss = self.cfg.loss_at_w(target);
            out.ac_out_w = target * fraction;
            out.loss_w = loss * fraction + self.cfg.standby_w * (1.0 - fraction);
        } else {
            out.loss_w = self.cfg.standby_w;
        }
        out.dc_in_w = out.ac_out_w + out.loss_w;
        out.efficiency = if out.dc_in_w > 0.0 {
            out.ac_out_w / out.dc_in_w
        } else {
            0.0
        };
        if self.mode == InverterMode::Islanded {
            out.unserved_w = (load - out.ac_out_w).max(0.0);
        } else {
            out.export_w = (out.ac_out_w - load * fraction).max(0.0);
            out.exporting = out.export_w > 1e-9;
            out.islanding = !mains.present && out.ac_out_w > 0.0;
        }

        // End of step: timers and the trip that falls inside the step.
        if mains.present {
            self.present_for_us = self.present_for_us.saturating_add(dt_us);
        } else {
            self.absent_for_us = self.absent_for_us.saturating_add(dt_us);
            if self.mode == InverterMode::GridTied && self.absent_for_us >= trip_us {
                self.disconnect();
            }
        }
        out.mode = self.mode;
        out
    }

    fn disconnect(&mut self) {
        self.mode = InverterMode::Disconnected;
        self.trips += 1;
    }
}

/// Non-negative least-squares fit of `[p0, k1, k2]` in
/// `loss = p0 + k1·P + k2·P²/P_rated` to `(load fraction, efficiency)`
/// points, where each point's loss is `P·(1/η − 1)`. Solved exactly by
/// trying every subset of free coefficients (there are only 8) and keeping
/// the best one whose coefficients are all non-negative.
pub fn fit_loss_model(rated_power_w: f64, curve: &[[f64; 2]]) -> [f64; 3] {
    let rows: Vec<([f64; 3], f64)> = curve
        .iter()
        .map(|&[f, e]| {
            let p = f * rated_power_w;
            ([1.0, p, p * p / rated_power_w], p * (1.0 / e - 1.0))
        })
        .collect();
    let sse = |c: &[f64; 3]| -> f64 {
        rows.iter()
            .map(|(x, y)| {
                let r = x[0] * c[0] + x[1] * c[1] + x[2] * c[2] - y;
                r * r
            })
            .sum()
    };
    let mut best = ([0.0; 3], f64::INFINITY);
    for mask in 1u8..8 {
        let idx: Vec<usize> = (0..3).filter(|i| mask & (1 << i) != 0).collect();
        let n = idx.len();
        // Normal equations restricted to the free coefficients.
        let mut a = [[0.0f64; 4]; 3];
        for (x, y) in &rows {
            for (r, &i) in idx.iter().enumerate() {
                for (c, &j) in idx.iter().enumerate() {
                    a[r][c] += x[i] * x[j];
                }
                a[r][n] += x[i] * y;
            }
        }
        let Some(sol) = solve(&mut a, n) else {
            continue;
        };
        let mut c = [0.0; 3];
        for (r, &i) in idx.iter().enumerate() {
            c[i] = sol[r];
        }
        if c.iter().all(|v| *v >= 0.0 && v.is_finite()) {
            let e = sse(&c);
            if e < best.1 {
                best = (c, e);
            }
        }
    }
    best.0
}

/// Gaussian elimination with partial pivoting on an `n×(n+1)` augmented
/// matrix; `None` if singular.
fn solve(a: &mut [[f64; 4]; 3], n: usize) -> Option<[f64; 3]> {
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, piv);
        let pivot_row = a[col];
        for (r, row) in a.iter_mut().enumerate().take(n) {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(&pivot_row).take(n + 1).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    let mut x = [0.0; 3];
    for (i, xi) in x.iter_mut().enumerate().take(n) {
        *xi = a[i][n] / a[i][i];
    }
    Some(x)
}

fn secs_to_us(s: f64) -> u64 {
    crate::time::SimTime::from_secs_f64(s).as_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(cfg: InverterConfig) -> Inverter {
        Inverter::new(cfg).unwrap()
    }

    #[test]
    fn efficiency_curve_has_the_expected_shape() {
        let c = InverterConfig::default();
        let e = |f: f64| c.efficiency_at(f * c.rated_power_w);
        assert_eq!(c.efficiency_at(0.0), 0.0);
        assert!(e(0.02) < 0.85);
        assert!(e(0.1) > 0.93 && e(0.1) < e(0.3));
        let peak = (1..=100).map(|k| e(k as f64 / 100.0)).fold(0.0, f64::max);
        assert!(peak > 0.96 && peak < 0.98, "{peak}");
        assert!(e(1.0) < peak);
        assert!((c.loss_at_w(3000.0) - 105.0).abs() < 1e-9);
        let (eu, cec) = (c.euro_efficiency(), c.cec_efficiency());
        assert!(
            eu > 0.95 && eu < peak && cec > 0.95 && cec < peak,
            "{eu} {cec}"
        );
        // max_ac_for_dc inverts the loss model.
        let p = c.max_ac_for_dc_w(2000.0);
        assert!((p + c.loss_at_w(p) - 2000.0).abs() < 1e-6);
    }

    #[test]
    fn serves_local_load_without_export_unless_enabled() {
        let mut i = inv(InverterConfig::default());
        let s = i.step(1.0, InverterInput::new(2000.0, 800.0), MainsState::NOMINAL);
        assert_eq!(s.ac_out_w, 800.0);
        assert!(!s.exporting && s.export_w == 0.0);
        assert!((s.dc_in_w - 800.0 - i.config().loss_at_w(800.0)).abs() < 1e-9);
        i.set_export_enabled(true);
        let s = i.step(1.0, InverterInput::new(2000.0, 800.0), MainsState::NOMINAL);
        assert_eq!(s.ac_out_w, 2000.0);
        assert!(s.exporting && (s.export_w - 1200.0).abs() < 1e-9);
        // Rating and the DC limit cap the output.
        let s = i.step(1.0, InverterInput::new(9000.0, 5000.0), MainsState::NOMINAL);
        assert_eq!(s.ac_out_w, 3000.0);
        let s = i.step(
            1.0,
            InverterInput {
                dc_available_w: 1000.0,
                ..InverterInput::new(3000.0, 5000.0)
            },
            MainsState::NOMINAL,
        );
        assert!((s.dc_in_w - 1000.0).abs() < 1e-6, "{s:?}");
        // Idle: standby only.
        let s = i.step(1.0, InverterInput::new(0.0, 500.0), MainsState::NOMINAL);
        assert_eq!((s.ac_out_w, s.dc_in_w), (0.0, 3.0));
    }

    #[test]
    fn stops_exporting_within_the_anti_islanding_time() {
        for (dt, trip) in [(0.1, 0.5), (0.02, 2.0), (1.0, 0.5), (0.5, 0.0)] {
            let mut i = inv(InverterConfig {
                export_enabled: true,
                anti_islanding_trip_s: trip,
                ..InverterConfig::default()
            });
            let loss_at = 10.0;
            let mut island_energy_j = 0.0;
            for k in 0..(20.0_f64 / dt).round() as u64 {
                // Step start, rounded to 1 µs like SimTime.
                let t = (k as f64 * dt * 1e6).round() / 1e6;
                let mains = if t < loss_at {
                    MainsState::NOMINAL
                } else {
                    MainsState::ABSENT
                };
                let s = i.step(dt, InverterInput::new(2500.0, 500.0), mains);
                if t >= loss_at {
                    island_energy_j += s.ac_out_w * dt;
                    if t >= loss_at + trip {
                        assert!(!s.exporting && s.ac_out_w == 0.0, "dt {dt} t {t}: {s:?}");
                        assert_eq!(s.mode, InverterMode::Disconnected);
                    }
                } else {
                    assert!(s.exporting);
                }
            }
            // It pushed 2500 W into the dead grid for exactly `trip` seconds.
            assert!(
                (island_energy_j - 2500.0 * trip).abs() < 1e-6,
                "dt {dt}: {island_energy_j}"
            );
            assert_eq!(i.anti_islanding_trips(), 1);
        }
    }

    #[test]
    fn reconnects_after_the_delay_and_islands_with_backup() {
        let mut i = inv(InverterConfig {
            backup_enabled: true,
            transfer_s: 1.0,
            anti_islanding_trip_s: 0.5,
            reconnect_delay_s: 10.0,
            ..InverterConfig::default()
        });
        let dt = 0.1;
        let mut modes = Vec::new();
        for k in 0..400 {
            let t = k as f64 * dt;
            let mains = if (5.0..15.0).contains(&t) {
                MainsState::ABSENT
            } else {
                MainsState::NOMINAL
            };
            let s = i.step(dt, InverterInput::new(1000.0, 700.0), mains);
            modes.push((t, s.mode, s.ac_out_w));
            assert!(!s.exporting);
        }
        let mode_at = |t: f64| modes.iter().find(|m| (m.0 - t).abs() < 1e-6).unwrap().1;
        assert_eq!(mode_at(4.9), InverterMode::GridTied);
        assert_eq!(mode_at(5.6), InverterMode::Disconnected);
        assert_eq!(mode_at(7.0), InverterMode::Islanded);
        // Island serves the local load.
        let island = modes.iter().find(|m| (m.0 - 10.0).abs() < 1e-6).unwrap();
        assert_eq!(island.2, 700.0);
        // Mains back at 15 s: island continues until 25 s, then grid-tied.
        assert_eq!(mode_at(20.0), InverterMode::Islanded);
        assert_eq!(mode_at(25.5), InverterMode::GridTied);
    }

    #[test]
    fn off_draws_standby_and_enabling_connects_on_a_healthy_grid() {
        let mut i = inv(InverterConfig {
            start_enabled: false,
            ..InverterConfig::default()
        });
        let s = i.step(1.0, InverterInput::new(1000.0, 1000.0), MainsState::NOMINAL);
        assert_eq!(
            (s.mode, s.ac_out_w, s.dc_in_w),
            (InverterMode::Off, 0.0, 3.0)
        );
        i.set_enabled(true);
        let s = i.step(1.0, InverterInput::new(1000.0, 1000.0), MainsState::NOMINAL);
        assert_eq!(s.mode, InverterMode::GridTied);
        assert_eq!(s.ac_out_w, 1000.0);
    }

    #[test]
    fn loss_model_is_fitted_to_a_datasheet_curve() {
        // Points generated from known coefficients are recovered.
        let truth = InverterConfig {
            loss_no_load_w: 20.0,
            loss_linear: 0.008,
            loss_quadratic: 0.025,
            ..InverterConfig::default()
        };
        let curve: Vec<[f64; 2]> = [0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
            .iter()
            .map(|&f| [f, truth.efficiency_at(f * truth.rated_power_w)])
            .collect();
        let [p0, k1, k2] = fit_loss_model(truth.rated_power_w, &curve);
        assert!((p0 - 20.0).abs() < 1e-6 && (k1 - 0.008).abs() < 1e-9 && (k2 - 0.025).abs() < 1e-9);
        // A curve that would need a negative coefficient gets a clamped,
        // non-negative fit, and the inverter uses it.
        let cfg = InverterConfig {
            efficiency_curve: Some(vec![[0.1, 0.95], [0.5, 0.97], [1.0, 0.98]]),
            ..InverterConfig::default()
        };
        let inv = Inverter::new(cfg).unwrap();
        let c = inv.config();
        assert!(c.loss_no_load_w >= 0.0 && c.loss_linear >= 0.0 && c.loss_quadratic >= 0.0);
        let e = c.efficiency_at(1500.0);
        assert!((e - 0.97).abs() < 0.01, "{e} from {c:?}");
        let e = InverterConfig {
            efficiency_curve: Some(vec![[0.1, 0.95]]),
            ..InverterConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "efficiency_curve");
    }

    #[test]
    fn a_failed_loss_of_mains_protection_never_disconnects() {
        let mut inv = Inverter::new(InverterConfig {
            anti_islanding_failed: true,
            export_enabled: true,
            backup_enabled: true,
            ..InverterConfig::default()
        })
        .unwrap();
        let dead = MainsState::ABSENT;
        for _ in 0..3600 {
            let s = inv.step(1.0, InverterInput::new(2000.0, 500.0), dead);
            assert_eq!(s.mode, InverterMode::GridTied);
            assert!((s.export_w - 1500.0).abs() < 1e-9, "{s:?}");
        }
        assert_eq!(inv.anti_islanding_trips(), 0);
        inv.set_export_enabled(false);
        let s = inv.step(1.0, InverterInput::new(2000.0, 500.0), dead);
        assert_eq!(s.export_w, 0.0, "export off: only the local load");
    }

    #[test]
    fn validation_names_fields() {
        let e = InverterConfig {
            anti_islanding_trip_s: 3601.0,
            ..InverterConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "anti_islanding_trip_s");
        let degraded = InverterConfig {
            anti_islanding_trip_s: 30.0,
            ..InverterConfig::default()
        };
        assert!(
            degraded.validate().is_ok(),
            "a degraded relay is a plant property"
        );
        let c: InverterConfig =
            toml::from_str("rated_power_w = 5000.0\nbackup_enabled = true\n").unwrap();
        assert_eq!(c.rated_power_w, 5000.0);
        assert!(toml::from_str::<InverterConfig>("rating = 1.0\n").is_err());
    }
}
