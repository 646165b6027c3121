//! Calendar and cycle ageing → capacity fade and resistance growth.
//!
//! **Calendar** (per cell): `fade = k · a_T(T) · s(SOC) · √t_days`, with
//! Arrhenius `a_T = exp(-Ea/R (1/T - 1/T_ref))` and a tabulated SOC stress
//! `s`. Under varying conditions the √t law is advanced with the
//! equivalent-time method: `t_eq = (fade / k_now)²`, `fade ← k_now √(t_eq + Δt)`.
//! Resistance growth follows the same law with its own coefficient.
//!
//! **Cycle**: half-cycles are delimited by reversals of the current's sign
//! (rests do not end a half-cycle). When a half-cycle closes, its throughput
//! in equivalent full cycles (`Ah / (2 Q_nom)`) ages the cell by
//! `k_cyc · EFC · (DoD/DoD_ref)^β · (1 + κ·max(0, C̄ - C_ref)) · a_T(T̄)`,
//! where `DoD` is the SOC swing of the half-cycle, `C̄` its mean C-rate and
//! `T̄` its throughput-weighted temperature.
//!
//! To keep the step cheap, calendar ageing is updated every
//! `update_interval_s` of simulated time using the mean SOC and temperature
//! over that interval.

use crate::interp::Table1;

const R_GAS: f64 = 8.314_462_618;

/// Ageing coefficients (from the `[ageing]` section of a cell file).
#[derive(Debug, Clone, PartialEq)]
pub struct AgeingParams {
    pub reference_temperature_c: f64,
    pub update_interval_s: f64,
    pub calendar_capacity_fade_per_sqrt_day: f64,
    pub calendar_resistance_growth_per_sqrt_day: f64,
    pub calendar_activation_energy_j_per_mol: f64,
    pub calendar_soc_stress: Table1,
    pub cycle_capacity_fade_per_efc: f64,
    pub cycle_resistance_growth_per_efc: f64,
    pub cycle_activation_energy_j_per_mol: f64,
    pub cycle_dod_reference: f64,
    pub cycle_dod_exponent: f64,
    pub cycle_c_rate_reference: f64,
    pub cycle_c_rate_coefficient: f64,
    /// Precomputed stress factors (built by [`AgeingParams::with_caches`]):
    /// calendar and cycle Arrhenius over −40…120 °C (1 K steps) and the DoD
    /// factor over 0…1 (0.01 steps), linearly interpolated.
    pub caches: Option<Box<AgeingCaches>>,
}

/// Lookup tables for the ageing stress factors.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeingCaches {
    calendar_arrhenius: Table1,
    cycle_arrhenius: Table1,
    dod: Table1,
}

impl AgeingParams {
    /// Builds the stress-factor lookup tables (call after changing the
    /// coefficients); without them the factors are computed directly.
    pub fn with_caches(mut self) -> Self {
        self.caches = None;
        let temps: Vec<f64> = (0..=160).map(|k| -40.0 + k as f64).collect();
        let dods: Vec<f64> = (0..=100).map(|k| k as f64 / 100.0).collect();
        let cal = temps
            .iter()
            .map(|&t| self.arrhenius(self.calendar_activation_energy_j_per_mol, t))
            .collect();
        let cyc = temps
            .iter()
            .map(|&t| self.arrhenius(self.cycle_activation_energy_j_per_mol, t))
            .collect();
        let dod = dods.iter().map(|&d| self.dod_factor(d)).collect();
        self.caches = Some(Box::new(AgeingCaches {
            calendar_arrhenius: Table1::new(temps.clone(), cal).expect("finite"),
            cycle_arrhenius: Table1::new(temps, cyc).expect("finite"),
            dod: Table1::new(dods, dod).expect("finite"),
        }));
        self
    }

    fn dod_factor(&self, dod: f64) -> f64 {
        (dod / self.cycle_dod_reference)
            .powf(self.cycle_dod_exponent)
            .min(1e6)
    }

    fn calendar_arrhenius(&self, t_c: f64) -> f64 {
        match &self.caches {
            Some(c) if (-40.0..=120.0).contains(&t_c) => c.calendar_arrhenius.eval(t_c),
            _ => self.arrhenius(self.calendar_activation_energy_j_per_mol, t_c),
        }
    }

    fn cycle_arrhenius(&self, t_c: f64) -> f64 {
        match &self.caches {
            Some(c) if (-40.0..=120.0).contains(&t_c) => c.cycle_arrhenius.eval(t_c),
            _ => self.arrhenius(self.cycle_activation_energy_j_per_mol, t_c),
        }
    }

    fn dod_stress(&self, dod: f64) -> f64 {
        match &self.caches {
            Some(c) => c.dod.eval(dod),
            None => self.dod_factor(dod),
        }
    }

    fn arrhenius(&self, ea: f64, t_c: f64) -> f64 {
        let t = (t_c + 273.15).max(1.0);
        let tr = self.reference_temperature_c + 273.15;
        // Bounded so that absurd temperatures cannot overflow.
        (-ea / R_GAS * (1.0 / t - 1.0 / tr))
            .clamp(-50.0, 50.0)
            .exp()
    }
}

/// Ageing state of one cell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgeingState {
    pub calendar_fade: f64,
    pub calendar_growth: f64,
    pub cycle_fade: f64,
    pub cycle_growth: f64,
    /// Equivalent full cycles so far (closed half-cycles and the open one).
    pub efc: f64,
    // Calendar accumulator.
    pub(crate) acc_t_s: f64,
    pub(crate) acc_soc_s: f64,
    pub(crate) acc_temp_s: f64,
    // Open half-cycle.
    pub(crate) dir: i8,
    hc_soc_start: f64,
    pub(crate) hc_ah: f64,
    pub(crate) hc_time_s: f64,
    pub(crate) hc_temp_ah: f64,
}

impl AgeingState {
    /// Capacity fade as a fraction of the initial capacity (0 = new).
    pub fn capacity_fade(&self) -> f64 {
        (self.calendar_fade + self.cycle_fade).clamp(0.0, 0.99)
    }
    /// Resistance growth as a fraction (0 = new), capped at 10 (11× the
    /// initial resistance) so that absurd inputs cannot overflow the model.
    pub fn resistance_growth(&self) -> f64 {
        (self.calendar_growth + self.cycle_growth).clamp(0.0, 10.0)
    }

    /// Accounts one step. `soc` is the SOC at the end of the step. Returns
    /// true if fade or growth changed (so derived constants need refreshing).
    #[inline]
    pub fn record(
        &mut self,
        p: &AgeingParams,
        nominal_ah: f64,
        current_a: f64,
        soc: f64,
        temperature_c: f64,
        dt_s: f64,
    ) -> bool {
        let mut changed = false;
        // Cycle: half-cycle bookkeeping.
        let dir: i8 = if current_a > 0.0 {
            1
        } else if current_a < 0.0 {
            -1
        } else {
            0
        };
        if dir != 0 && dir != self.dir {
            // SOC at the start of this step (where the reversal happened).
            let soc_start = (soc + current_a * dt_s / 3600.0 / nominal_ah).clamp(0.0, 1.0);
            if self.dir != 0 {
                self.close_half_cycle(p, nominal_ah, soc_start);
                changed = true;
            }
            self.dir = dir;
            self.hc_soc_start = soc_start;
        }
        let ah = current_a.abs() * dt_s / 3600.0;
        if dir != 0 {
            self.hc_ah += ah;
            self.hc_time_s += dt_s;
            self.hc_temp_ah += temperature_c * ah;
            self.efc += ah / (2.0 * nominal_ah);
        }
        // Calendar accumulator.
        self.acc_t_s += dt_s;
        self.acc_soc_s += soc * dt_s;
        self.acc_temp_s += temperature_c * dt_s;
        if self.acc_t_s >= p.update_interval_s {
            let t = self.acc_t_s;
            let soc_m = self.acc_soc_s / t;
            let temp_m = self.acc_temp_s / t;
            let stress = p.calendar_arrhenius(temp_m) * p.calendar_soc_stress.eval(soc_m);
            let days = t / 86_400.0;
            self.calendar_fade = sqrt_law(
                self.calendar_fade,
                p.calendar_capacity_fade_per_sqrt_day * stress,
                days,
            );
            self.calendar_growth = sqrt_law(
                self.calendar_growth,
                p.calendar_resistance_growth_per_sqrt_day * stress,
                days,
            );
            self.acc_t_s = 0.0;
            self.acc_soc_s = 0.0;
            self.acc_temp_s = 0.0;
            changed = true;
        }
        changed
    }

    fn close_half_cycle(&mut self, p: &AgeingParams, nominal_ah: f64, soc_now: f64) {
        if self.hc_ah > 0.0 && self.hc_time_s > 0.0 {
            let efc = self.hc_ah / (2.0 * nominal_ah);
            let dod = (soc_now - self.hc_soc_start).abs().clamp(1e-6, 1.0);
            let c_rate = self.hc_ah / nominal_ah / (self.hc_time_s / 3600.0);
            let t_mean = self.hc_temp_ah / self.hc_ah;
            let stress = p.dod_stress(dod)
                * (1.0 + p.cycle_c_rate_coefficient * (c_rate - p.cycle_c_rate_reference).max(0.0))
                * p.cycle_arrhenius(t_mean);
            let stress = if stress.is_finite() {
                stress.min(1e6)
            } else {
                1e6
            };
            self.cycle_fade += p.cycle_capacity_fade_per_efc * efc * stress;
            self.cycle_growth += p.cycle_resistance_growth_per_efc * efc * stress;
        }
        self.hc_ah = 0.0;
        self.hc_time_s = 0.0;
        self.hc_temp_ah = 0.0;
    }
}

/// Advances `y = k √t` from `y0` by `dt` with the coefficient `k` now in force.
fn sqrt_law(y0: f64, k: f64, dt_days: f64) -> f64 {
    if k <= 0.0 || !k.is_finite() {
        return y0;
    }
    let t_eq = (y0 / k).powi(2);
    k * (t_eq + dt_days).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn params() -> AgeingParams {
        AgeingParams {
            reference_temperature_c: 25.0,
            update_interval_s: 3600.0,
            calendar_capacity_fade_per_sqrt_day: 0.001,
            calendar_resistance_growth_per_sqrt_day: 0.002,
            calendar_activation_energy_j_per_mol: 50_000.0,
            calendar_soc_stress: Table1::new(vec![0.0, 1.0], vec![0.5, 1.5]).unwrap(),
            cycle_capacity_fade_per_efc: 1e-4,
            cycle_resistance_growth_per_efc: 2e-4,
            cycle_activation_energy_j_per_mol: 30_000.0,
            cycle_dod_reference: 1.0,
            cycle_dod_exponent: 1.0,
            cycle_c_rate_reference: 1.0,
            cycle_c_rate_coefficient: 0.0,
            caches: None,
        }
        .with_caches()
    }

    #[test]
    fn calendar_follows_sqrt_time_and_arrhenius() {
        let p = params();
        let mut a = AgeingState::default();
        for _ in 0..(100 * 24) {
            a.record(&p, 10.0, 0.0, 0.5, 25.0, 3600.0);
        }
        // 100 days at reference: 0.001 * 1.0 * 10
        assert!((a.calendar_fade - 0.01).abs() < 1e-9, "{}", a.calendar_fade);
        let mut hot = AgeingState::default();
        for _ in 0..(100 * 24) {
            hot.record(&p, 10.0, 0.0, 0.5, 45.0, 3600.0);
        }
        assert!(hot.calendar_fade > 3.0 * a.calendar_fade);
        let mut full = AgeingState::default();
        for _ in 0..(100 * 24) {
            full.record(&p, 10.0, 0.0, 1.0, 25.0, 3600.0);
        }
        assert!((full.calendar_fade - 0.015).abs() < 1e-9);
    }

    #[test]
    fn cycle_fade_counts_half_cycles() {
        let mut p = params();
        p.calendar_capacity_fade_per_sqrt_day = 0.0;
        p.calendar_resistance_growth_per_sqrt_day = 0.0;
        let mut a = AgeingState::default();
        let mut soc = 1.0;
        // 10 full cycles at 1C on a 10 Ah cell, 1 s steps.
        for _ in 0..10 {
            for i in [10.0, -10.0] {
                for _ in 0..3600 {
                    soc -= i / 3600.0 / 10.0;
                    a.record(&p, 10.0, i, soc, 25.0, 1.0);
                }
            }
        }
        // 19 half-cycles closed, each 0.5 EFC at full depth.
        assert!(
            (a.cycle_fade - 19.0 * 0.5 * 1e-4).abs() < 1e-8,
            "{}",
            a.cycle_fade
        );
        assert!((a.efc - 10.0).abs() < 1e-6);
    }
}
