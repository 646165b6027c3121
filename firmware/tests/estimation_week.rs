//! Accuracy of `firmware::estimation` against the digital twin: a simulated
//! household week on the 16s1p LFP 100 Ah pack (`twin/params/lfp_home_16s.toml`,
//! with its cell-to-cell spread, thermal model and SOC/temperature-dependent
//! resistances), 1 s steps, seeded sensor noise (5 mV per cell × √16 on the
//! pack voltage, 0.2 A on the current plus a 0.05 A offset) and a 5 % initial
//! SOC error, the mean cell temperature measured with 0.5 °C noise. Three
//! weeks: deep daily cycles, shallow cycles on the OCV plateau, and deep
//! cycles in a 0 °C cabinet. Target: SOC RMSE against the twin's true mean
//! SOC < 2 %. Run with `--nocapture` for the figures.
//!
//! The estimator's parameters are what a BMS vendor would ship: the cell's
//! OCV sampled at 25 °C and its resistances/capacitances at 25 °C, 50 % SOC.

use firmware::estimation::{EstimationConfig, EstimationInputs, Estimator};
use firmware::Millis;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use twin::battery::{load_pack_params, Pack};

const SEED: u64 = 20_261_126;
const DAYS: u64 = 7;
const DT_S: f64 = 1.0;

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.gen_range(1e-12..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The household's battery current (A, positive = discharge) at
/// `seconds_of_day`, from segment levels redrawn every few minutes.
struct Household {
    rng: ChaCha8Rng,
    level_a: f64,
    next_change_s: u64,
    charge_target_soc: f64,
    cloudiness: f64,
    /// Discharge stops at this SOC; PV charge stops at `ceiling_soc`.
    floor_soc: f64,
    ceiling_soc: f64,
    /// Off-peak charge target range.
    target_lo: f64,
    target_hi: f64,
}

impl Household {
    /// Deep daily cycles (down to 8 %, up to 97 %): the steep ends of LFP's
    /// OCV are visited every day.
    fn deep(seed: u64) -> Self {
        Household {
            rng: ChaCha8Rng::seed_from_u64(seed),
            level_a: 0.0,
            next_change_s: 0,
            charge_target_soc: 0.9,
            cloudiness: 0.3,
            floor_soc: 0.08,
            ceiling_soc: 0.97,
            target_lo: 0.75,
            target_hi: 0.95,
        }
    }

    /// Shallow cycles kept on the plateau (30 %..85 %): the voltage says
    /// little about SOC all week.
    fn plateau(seed: u64) -> Self {
        Household {
            floor_soc: 0.3,
            ceiling_soc: 0.85,
            target_lo: 0.6,
            target_hi: 0.8,
            ..Self::deep(seed)
        }
    }

    fn current(&mut self, t_s: u64, true_soc: f64) -> f64 {
        let sod = t_s % 86_400;
        let hour = sod / 3600;
        if sod == 0 {
            self.charge_target_soc = self.rng.gen_range(self.target_lo..self.target_hi);
            self.cloudiness = self.rng.gen_range(0.0..0.8);
        }
        if t_s >= self.next_change_s {
            self.next_change_s = t_s + self.rng.gen_range(60..600);
            self.level_a = match hour {
                // Morning load from the battery.
                7..=8 => self.rng.gen_range(5.0..30.0),
                // PV charge, clouds.
                11..=14 => {
                    let clear = self.rng.gen_range(25.0..45.0);
                    if self.rng.gen_bool(self.cloudiness) {
                        -clear * self.rng.gen_range(0.1..0.5)
                    } else {
                        -clear
                    }
                }
                // Evening peak.
                17..=21 => self.rng.gen_range(10.0..45.0),
                _ => 0.0,
            };
        }
        match hour {
            // Off-peak grid charge up to the day's target.
            1..=4 if true_soc < self.charge_target_soc => -25.0,
            7..=8 | 17..=21 if true_soc > self.floor_soc => self.level_a,
            11..=14 if true_soc < self.ceiling_soc => self.level_a,
            _ => 0.0,
        }
    }
}

fn estimator_config(pack: &Pack) -> EstimationConfig {
    let p = &pack.model().params;
    let mut cfg = EstimationConfig {
        series_cells: pack.series() as u16,
        nominal_capacity_ah: pack.nominal_capacity_ah() as f32,
        ..EstimationConfig::default()
    };
    cfg.ocv_table.clear();
    for k in 0..=40 {
        let soc = k as f64 / 40.0;
        cfg.ocv_table
            .push((soc as f32, p.ocv_v.eval(soc, 25.0, 0.0, 0.0) as f32))
            .unwrap();
    }
    cfg.r0_ohm = p.r0_ohm.eval(0.5, 25.0, 0.0, 0.0) as f32;
    cfg.r1_ohm = p.rc[0].r_ohm.eval(0.5, 25.0, 0.0, 0.0) as f32;
    cfg.c1_f = p.rc[0].c_f.eval(0.5, 25.0, 0.0, 0.0) as f32;
    cfg.r2_ohm = p.rc[1].r_ohm.eval(0.5, 25.0, 0.0, 0.0) as f32;
    cfg.c2_f = p.rc[1].c_f.eval(0.5, 25.0, 0.0, 0.0) as f32;
    cfg.validate().unwrap();
    cfg
}

/// Runs the week; returns the SOC RMSE.
fn run_week(name: &str, mut house: Household, ambient_c: f64) -> f64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../twin/params/lfp_home_16s.toml");
    let params = load_pack_params(&path).unwrap();
    let soc0 = 0.5;
    let mut pack = Pack::new(&params, soc0, ambient_c, SEED);
    let cfg = estimator_config(&pack);
    let mut est = Estimator::new(cfg, (soc0 + 0.05) as f32);
    let mut noise = ChaCha8Rng::seed_from_u64(SEED ^ 2);
    let v_sigma = 0.005 * (pack.series() as f64).sqrt();
    let i_sigma = 0.2;
    let i_offset = 0.05;

    let steps = DAYS * 86_400 / DT_S as u64;
    let mut sum_sq = 0.0;
    let mut max_err: f64 = 0.0;
    let mut within_2_sigma = 0u64;
    let mut last_day_sum_sq = 0.0;
    let mut true_soc = pack.output().soc_mean;
    let (mut soc_lo, mut soc_hi) = (1.0f64, 0.0f64);
    for k in 0..steps {
        let t_s = k * DT_S as u64;
        let i = house.current(t_s, true_soc);
        let out = pack.step_current(i, DT_S);
        true_soc = out.soc_mean;
        soc_lo = soc_lo.min(true_soc);
        soc_hi = soc_hi.max(true_soc);
        let v_meas = out.voltage_v + v_sigma * gauss(&mut noise);
        let i_meas = i + i_offset + i_sigma * gauss(&mut noise);
        let e = est.update(
            Millis((t_s + DT_S as u64) * 1000),
            EstimationInputs {
                pack_voltage_v: v_meas as f32,
                current_a: i_meas as f32,
                temperature_c: (out.temperature_mean_c + 0.5 * gauss(&mut noise)) as f32,
            },
        );
        let err = e.soc as f64 - true_soc;
        sum_sq += err * err;
        if k >= steps - 86_400 {
            last_day_sum_sq += err * err;
        }
        max_err = max_err.max(err.abs());
        if err.abs() <= 2.0 * e.soc_std as f64 {
            within_2_sigma += 1;
        }
    }
    let rmse = (sum_sq / steps as f64).sqrt();
    let rmse_last_day = (last_day_sum_sq / 86_400.0).sqrt();
    let e = est.estimate();
    println!(
        "{name} week: SOC RMSE {:.2} %, last day {:.2} %, max |error| {:.2} %, |error| <= 2 soc_std {:.0} % of the time, true SOC range {:.2}..{:.2}; \
         final soc {:.3} (true {:.3}) std {:.3}, capacity {:.1} Ah, R0 {:.2} mOhm, SOH {:.3}, stats {:?}",
        rmse * 100.0,
        rmse_last_day * 100.0,
        max_err * 100.0,
        within_2_sigma as f64 / steps as f64 * 100.0,
        soc_lo,
        soc_hi,
        e.soc,
        true_soc,
        e.soc_std,
        e.capacity_ah,
        e.resistance_ohm * 1e3,
        e.soh,
        est.stats(),
    );
    assert!(soc_hi - soc_lo > 0.4, "the week must exercise the pack");
    assert!(!e.end_of_life);
    rmse
}

#[test]
fn soc_rmse_over_a_household_week_with_deep_cycles_is_below_2_percent() {
    let rmse = run_week("deep", Household::deep(SEED ^ 1), 25.0);
    assert!(rmse < 0.02, "SOC RMSE {:.2} % >= 2 %", rmse * 100.0);
}

#[test]
fn soc_rmse_over_a_household_week_on_the_plateau_is_below_2_percent() {
    let rmse = run_week("plateau", Household::plateau(SEED ^ 1), 25.0);
    assert!(rmse < 0.02, "SOC RMSE {:.2} % >= 2 %", rmse * 100.0);
}

/// A cold cabinet (0 °C ambient): the resistances are about twice their
/// 25 °C values; the estimator compensates them from the measured
/// temperature.
#[test]
fn soc_rmse_over_a_cold_household_week_is_below_2_percent() {
    let rmse = run_week("cold (0 C) deep", Household::deep(SEED ^ 3), 0.0);
    assert!(rmse < 0.02, "SOC RMSE {:.2} % >= 2 %", rmse * 100.0);
}
