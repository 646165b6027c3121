//! State estimation (DESIGN function 1): state of charge by an extended
//! Kalman filter on a 2-RC equivalent-circuit model of the pack, and state of
//! health (capacity fade, resistance growth, end of life).
//!
//! # Model
//!
//! The pack is `series_cells` identical cells in series (the Thevenin model
//! of `twin::battery`, PyBaMM's convention):
//!
//! ```text
//! V    = series · OCV(SOC) − I·R0 + v1 + v2          (pack terminal voltage)
//! v_i' = a_i·v_i − (1 − a_i)·R_i·I,   a_i = exp(−dt / (R_i·C_i))
//! SOC' = SOC − I·dt / (3600·Q)
//! ```
//!
//! with `I` the pack current (A, **positive = discharge**), `Q` the estimated
//! capacity (Ah), `R0`, `R_i`, `C_i` the per-cell constants of the config
//! scaled to the pack (`R × series`, `C / series`), and `OCV(SOC)` the
//! per-cell table of the config (piecewise linear, clamped at its ends). The
//! RC overpotentials `v_i` are negative on discharge. Setting `r2_ohm = 0`
//! makes it a 1-RC model.
//!
//! # Filter
//!
//! State `x = [SOC, v1, v2]` (f64). Prediction: coulomb counting with the
//! measured current and the exact RC discretisation above; process noise
//! grows with `dt`. Observation: the measured pack voltage, `H = [series ·
//! dOCV/dSOC, 1, 1]` (slope by central difference over ±0.01 SOC). The
//! covariance update is in Joseph form, then symmetrised with its diagonal
//! clamped to `[1e-12, 1]`; SOC is clamped to `[0, 1]`.
//!
//! **OCV correction at rest — choice: the observation weight is tightened.**
//! Under load the voltage noise `voltage_noise_v` is large, because it must
//! cover model error (RC parameters vary with SOC and temperature) as well as
//! sensor noise. When `|I| < rest_current_a` has held for `rest_time_s`, the
//! RC overpotentials have decayed and the voltage is close to OCV, so the
//! filter uses the much smaller `rest_voltage_noise_v`: the voltage then
//! pulls SOC towards the OCV-consistent value with the weight the local
//! slope of OCV deserves (strong on the steep ends, weak on LFP's plateau).
//! SOC is never reset outright.
//!
//! # State of health
//!
//! * **Capacity**: at the end of every rest of at least `rest_time_s` where
//!   the OCV slope is at least `anchor_min_slope_v_per_soc` (per cell), the
//!   SOC read off the OCV table is an *anchor*, stored with the integrated
//!   Ah throughput. Between two anchors at least `capacity_min_delta_soc`
//!   apart, `Q_meas = ΔAh / ΔSOC`; the estimate is smoothed exponentially
//!   (`capacity_smoothing`) and used by the filter's prediction.
//! * **Resistance**: at current steps (`|ΔI| ≥ resistance_step_min_a`
//!   between consecutive samples at most `resistance_max_dt_s` apart),
//!   `R_meas = −(ΔV − ΔV_model)/ΔI` (pack, Ω; `ΔV_model` is the change the
//!   filter's RC states and OCV make over the interval), smoothed exponentially
//!   (`resistance_smoothing`). The filter's R0 follows the estimate, and
//!   R1, R2 are scaled by the same ratio (temperature and ageing move a
//!   cell's resistances together, to first order).
//! * `SOH = min(Q/Q_nom, 1 − (R/R_nom − 1)/(eol_resistance_factor − 1) ·
//!   (1 − eol_capacity_fraction))`, clamped to [0, 1]: the two criteria map
//!   onto one scale on which end of life is at `eol_capacity_fraction`. The
//!   resistance term counts only after `resistance_min_samples` steps.
//! * **End of life** when `Q/Q_nom < eol_capacity_fraction` or `R/R_nom >
//!   eol_resistance_factor` (resistance after `resistance_min_samples`).
//!
//! # Temperature
//!
//! The config's resistances refer to `reference_temperature_c`; with the
//! measured mean cell temperature they are scaled by an Arrhenius factor
//! (`resistance_activation_energy_j_per_mol`), so the filter's model is
//! right in a cold or warm cabinet, and the resistance estimate (and thus
//! SOH) is referred back to the reference temperature. OCV is taken as
//! temperature-independent (LFP's entropic coefficient is < 0.1 mV/K).
//!
//! # Bad samples
//!
//! A sample with a non-finite or implausible voltage or current (outside
//! `series × [plausible_cell_voltage_min_v, plausible_cell_voltage_max_v]`
//! or `|I| > plausible_current_max_a`) is rejected and counted; the
//! estimate is held (reason [`EstimateReason::RejectedSample`]). A time gap
//! longer than `max_step_s` integrates only `max_step_s` and inflates the
//! SOC uncertainty as for the whole gap.

use crate::config::{check_order, check_range, Order, POSITIVE, POSITIVE_FRACTION};
use crate::{ConfigError, Millis};
use core::ops::Bound;
use nalgebra::{SMatrix, SVector};

/// Capacity of the OCV table (points).
pub const MAX_OCV_POINTS: usize = 64;

type Mat3 = SMatrix<f64, 3, 3>;
type Vec3 = SVector<f64, 3>;

/// The estimator's configuration (TOML table `[estimation]`). Every field
/// has a default: a 16s 100 Ah LFP home pack (`Default`).
///
/// ```toml
/// [estimation]
/// series_cells = 16
/// nominal_capacity_ah = 100.0
/// ocv_table = [[0.0, 2.5], [0.1, 3.205], [0.5, 3.296], [0.9, 3.338], [1.0, 3.48]]
/// r0_ohm = 0.00055
/// r1_ohm = 0.00025
/// c1_f = 60000.0
/// r2_ohm = 0.00035
/// c2_f = 1.15e6
/// rest_current_a = 1.0
/// rest_time_s = 600.0
/// eol_capacity_fraction = 0.7
/// eol_resistance_factor = 2.0
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EstimationConfig {
    /// Cells in series (the pack voltage is `series_cells ×` the cell's).
    pub series_cells: u16,
    /// Nominal pack capacity (Ah) for SOH; also the initial capacity estimate.
    pub nominal_capacity_ah: f32,
    /// Per-cell rest OCV at 25 °C: `(soc, ocv_v)` points, SOC strictly
    /// increasing within [0, 1], OCV non-decreasing; at least 2 points.
    pub ocv_table: heapless::Vec<(f32, f32), MAX_OCV_POINTS>,
    /// Per-cell series resistance R0 (Ω).
    pub r0_ohm: f32,
    /// Per-cell first RC pair (fast): resistance (Ω) and capacitance (F).
    pub r1_ohm: f32,
    pub c1_f: f32,
    /// Per-cell second RC pair (slow); `r2_ohm = 0` disables it (1-RC model).
    pub r2_ohm: f32,
    pub c2_f: f32,
    /// Initial SOC standard deviation (fraction).
    pub initial_soc_std: f32,
    /// SOC process noise: standard deviation growth per √hour (fraction),
    /// covering current-sensor offset and capacity error.
    pub soc_process_std_per_sqrt_h: f32,
    /// RC-state process noise (pack V per √s).
    pub rc_process_std_v_per_sqrt_s: f32,
    /// Pack voltage observation noise under load (V, 1 σ): sensor noise plus
    /// model error.
    pub voltage_noise_v: f32,
    /// Pack voltage observation noise at rest (V, 1 σ).
    pub rest_voltage_noise_v: f32,
    /// |I| below this (A) counts as rest.
    pub rest_current_a: f32,
    /// Rest must last this long (s) before the tightened weight applies.
    pub rest_time_s: f32,
    /// Longest step integrated (s); longer gaps inflate uncertainty.
    pub max_step_s: f32,
    /// Plausible per-cell voltage range (V) for sample rejection.
    pub plausible_cell_voltage_min_v: f32,
    pub plausible_cell_voltage_max_v: f32,
    /// Plausible |pack current| (A) for sample rejection.
    pub plausible_current_max_a: f32,
    /// A rest gives a capacity anchor only where the per-cell OCV slope is at
    /// least this (V per unit SOC).
    pub anchor_min_slope_v_per_soc: f32,
    /// Two anchors must be this far apart in SOC for a capacity update.
    pub capacity_min_delta_soc: f32,
    /// Weight of a new capacity measurement (0..1].
    pub capacity_smoothing: f32,
    /// Minimum |ΔI| (A) between consecutive samples for a resistance sample.
    pub resistance_step_min_a: f32,
    /// Maximum time (s) between the two samples of a current step.
    pub resistance_max_dt_s: f32,
    /// Weight of a new resistance sample (0..1].
    pub resistance_smoothing: f32,
    /// Arrhenius activation energy of the cell resistances (J/mol): the
    /// model's R0/R1/R2 are at `reference_temperature_c` and scaled by
    /// `exp(Ea/R_gas · (1/T − 1/T_ref))` at the measured temperature;
    /// 0 disables temperature compensation.
    pub resistance_activation_energy_j_per_mol: f32,
    /// Temperature (°C) the resistances in this config refer to.
    pub reference_temperature_c: f32,
    /// Resistance samples needed before resistance counts for SOH/EOL.
    pub resistance_min_samples: u32,
    /// End of life when capacity falls below this fraction of nominal.
    pub eol_capacity_fraction: f32,
    /// End of life when resistance exceeds this factor × nominal (> 1).
    pub eol_resistance_factor: f32,
}

/// The twin's LFP 100 Ah cell OCV at 25 °C (every 0.025 SOC).
const LFP_OCV: [f32; 41] = [
    2.5000, 2.9800, 3.1200, 3.1800, 3.2050, 3.2200, 3.2350, 3.2435, 3.2520, 3.2570, 3.2620, 3.2670,
    3.2720, 3.2770, 3.2820, 3.2855, 3.2890, 3.2910, 3.2930, 3.2945, 3.2960, 3.2975, 3.2990, 3.3015,
    3.3040, 3.3100, 3.3160, 3.3210, 3.3260, 3.3275, 3.3290, 3.3300, 3.3310, 3.3325, 3.3340, 3.3360,
    3.3380, 3.3420, 3.3500, 3.3750, 3.4800,
];

impl Default for EstimationConfig {
    fn default() -> Self {
        let mut ocv_table = heapless::Vec::new();
        for (k, v) in LFP_OCV.iter().enumerate() {
            let _ = ocv_table.push((k as f32 * 0.025, *v));
        }
        EstimationConfig {
            series_cells: 16,
            nominal_capacity_ah: 100.0,
            ocv_table,
            r0_ohm: 0.00055,
            r1_ohm: 0.00025,
            c1_f: 60_000.0,
            r2_ohm: 0.00035,
            c2_f: 1.15e6,
            initial_soc_std: 0.1,
            soc_process_std_per_sqrt_h: 0.005,
            rc_process_std_v_per_sqrt_s: 0.001,
            voltage_noise_v: 0.1,
            rest_voltage_noise_v: 0.02,
            rest_current_a: 1.0,
            rest_time_s: 600.0,
            max_step_s: 60.0,
            plausible_cell_voltage_min_v: 1.5,
            plausible_cell_voltage_max_v: 4.5,
            plausible_current_max_a: 1000.0,
            anchor_min_slope_v_per_soc: 0.3,
            capacity_min_delta_soc: 0.4,
            capacity_smoothing: 0.3,
            resistance_step_min_a: 10.0,
            resistance_max_dt_s: 2.0,
            resistance_smoothing: 0.02,
            resistance_activation_energy_j_per_mol: 25_000.0,
            reference_temperature_c: 25.0,
            resistance_min_samples: 20,
            eol_capacity_fraction: 0.7,
            eol_resistance_factor: 2.0,
        }
    }
}

impl EstimationConfig {
    /// Checks ranges and the OCV table's shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("series_cells", self.series_cells, 1..)?;
        check_range("nominal_capacity_ah", self.nominal_capacity_ah, POSITIVE)?;
        self.validate_ocv_table()?;
        self.validate_model()?;
        self.validate_sample_checks()?;
        self.validate_health()
    }

    /// At least 2 points, SOC in [0, 1] and increasing, OCV > 0 and not
    /// decreasing.
    fn validate_ocv_table(&self) -> Result<(), ConfigError> {
        if self.ocv_table.len() < 2 {
            return Err(ConfigError::new(
                "ocv_table",
                format_args!("needs at least 2 points, found {}", self.ocv_table.len()),
            ));
        }
        let mut prev: Option<(f32, f32)> = None;
        for &(s, v) in &self.ocv_table {
            if !(s.is_finite() && (0.0..=1.0).contains(&s) && v.is_finite() && v > 0.0) {
                return Err(ConfigError::new(
                    "ocv_table",
                    format_args!("points need soc in [0, 1] and ocv_v > 0, found ({s}, {v})"),
                ));
            }
            if let Some((ps, pv)) = prev {
                if s <= ps || v < pv {
                    return Err(ConfigError::new(
                        "ocv_table",
                        format_args!(
                            "soc must increase and ocv_v must not decrease, found ({ps}, {pv}) then ({s}, {v})"
                        ),
                    ));
                }
            }
            prev = Some((s, v));
        }
        Ok(())
    }

    /// The equivalent circuit and the filter's noises.
    fn validate_model(&self) -> Result<(), ConfigError> {
        check_range("r0_ohm", self.r0_ohm, POSITIVE)?;
        check_range("r1_ohm", self.r1_ohm, POSITIVE)?;
        check_range("c1_f", self.c1_f, POSITIVE)?;
        check_range("r2_ohm", self.r2_ohm, 0.0..)?;
        check_range("c2_f", self.c2_f, POSITIVE)?;
        check_range("initial_soc_std", self.initial_soc_std, POSITIVE_FRACTION)?;
        for (field, value) in [
            (
                "soc_process_std_per_sqrt_h",
                self.soc_process_std_per_sqrt_h,
            ),
            (
                "rc_process_std_v_per_sqrt_s",
                self.rc_process_std_v_per_sqrt_s,
            ),
            ("voltage_noise_v", self.voltage_noise_v),
            ("rest_voltage_noise_v", self.rest_voltage_noise_v),
            ("rest_current_a", self.rest_current_a),
            ("rest_time_s", self.rest_time_s),
            ("max_step_s", self.max_step_s),
        ] {
            check_range(field, value, POSITIVE)?;
        }
        Ok(())
    }

    /// Sample rejection: the plausible voltage and current ranges.
    fn validate_sample_checks(&self) -> Result<(), ConfigError> {
        check_range(
            "plausible_cell_voltage_min_v",
            self.plausible_cell_voltage_min_v,
            POSITIVE,
        )?;
        check_order(
            "plausible_cell_voltage_max_v",
            self.plausible_cell_voltage_max_v,
            Order::Above,
            "plausible_cell_voltage_min_v",
            self.plausible_cell_voltage_min_v,
        )?;
        check_range(
            "plausible_current_max_a",
            self.plausible_current_max_a,
            POSITIVE,
        )
    }

    /// Capacity and resistance learning, temperature compensation, end of
    /// life.
    fn validate_health(&self) -> Result<(), ConfigError> {
        check_range(
            "anchor_min_slope_v_per_soc",
            self.anchor_min_slope_v_per_soc,
            POSITIVE,
        )?;
        check_range(
            "capacity_min_delta_soc",
            self.capacity_min_delta_soc,
            POSITIVE_FRACTION,
        )?;
        check_range(
            "capacity_smoothing",
            self.capacity_smoothing,
            POSITIVE_FRACTION,
        )?;
        check_range(
            "resistance_step_min_a",
            self.resistance_step_min_a,
            POSITIVE,
        )?;
        check_range("resistance_max_dt_s", self.resistance_max_dt_s, POSITIVE)?;
        check_range(
            "resistance_smoothing",
            self.resistance_smoothing,
            POSITIVE_FRACTION,
        )?;
        check_range(
            "resistance_activation_energy_j_per_mol",
            self.resistance_activation_energy_j_per_mol,
            0.0..=200_000.0,
        )?;
        check_range(
            "reference_temperature_c",
            self.reference_temperature_c,
            -40.0..=80.0,
        )?;
        check_range(
            "eol_capacity_fraction",
            self.eol_capacity_fraction,
            (Bound::Excluded(0.0), Bound::Excluded(1.0)),
        )?;
        check_range(
            "eol_resistance_factor",
            self.eol_resistance_factor,
            (Bound::Excluded(1.0), Bound::Unbounded),
        )
    }

    /// Per-cell OCV (V) at `soc`, piecewise linear, clamped to the table.
    pub fn ocv_cell_v(&self, soc: f64) -> f64 {
        let t = &self.ocv_table;
        let (Some(first), Some(last)) = (t.first(), t.last()) else {
            return 0.0;
        };
        if soc.is_nan() || soc <= first.0 as f64 {
            return first.1 as f64;
        }
        if soc >= last.0 as f64 {
            return last.1 as f64;
        }
        for w in t.windows(2) {
            let (s0, v0) = (w[0].0 as f64, w[0].1 as f64);
            let (s1, v1) = (w[1].0 as f64, w[1].1 as f64);
            if soc <= s1 {
                let span = s1 - s0;
                return if span > 0.0 {
                    v0 + (v1 - v0) * (soc - s0) / span
                } else {
                    v1
                };
            }
        }
        last.1 as f64
    }

    /// Per-cell dOCV/dSOC (V per unit SOC), central difference over ±0.01.
    pub fn ocv_slope_cell(&self, soc: f64) -> f64 {
        let lo = (soc - 0.01).max(0.0);
        let hi = (soc + 0.01).min(1.0);
        if hi > lo {
            (self.ocv_cell_v(hi) - self.ocv_cell_v(lo)) / (hi - lo)
        } else {
            0.0
        }
    }

    /// SOC whose per-cell OCV is `ocv_v` (inverse of the table, clamped;
    /// the middle of a flat segment).
    pub fn soc_from_ocv(&self, ocv_v: f64) -> f64 {
        let t = &self.ocv_table;
        let (Some(first), Some(last)) = (t.first(), t.last()) else {
            return 0.5;
        };
        if ocv_v.is_nan() || ocv_v <= first.1 as f64 {
            return first.0 as f64;
        }
        if ocv_v >= last.1 as f64 {
            return last.0 as f64;
        }
        for w in t.windows(2) {
            let (s0, v0) = (w[0].0 as f64, w[0].1 as f64);
            let (s1, v1) = (w[1].0 as f64, w[1].1 as f64);
            if ocv_v <= v1 {
                let dv = v1 - v0;
                return if dv > 0.0 {
                    s0 + (s1 - s0) * (ocv_v - v0) / dv
                } else {
                    0.5 * (s0 + s1)
                };
            }
        }
        last.0 as f64
    }
}

/// One measurement sample for [`Estimator::update`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimationInputs {
    /// Pack terminal voltage (V).
    pub pack_voltage_v: f32,
    /// Pack current (A), positive = discharge.
    pub current_a: f32,
    /// Mean cell temperature (°C) for the resistances' temperature
    /// compensation. Non-finite or outside -40..=80: counted, and the last
    /// valid temperature (initially the reference) is used; the sample is
    /// not rejected.
    pub temperature_c: f32,
}

/// Why the estimate is what it is after this update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateReason {
    /// No valid sample yet: the initial SOC and its uncertainty.
    Initial,
    /// Coulomb counting corrected by the voltage with the under-load weight.
    Tracking,
    /// At rest long enough: corrected by OCV with the tightened weight.
    RestCorrected,
    /// The sample was non-finite or implausible: rejected, estimate held.
    RejectedSample,
    /// The sample came after a gap longer than `max_step_s` (or time went
    /// backwards): uncertainty inflated, voltage correction applied.
    AfterGap,
}

/// What put the pack at end of life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOfLifeCause {
    CapacityFade,
    ResistanceGrowth,
}

/// The estimator's output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// State of charge, fraction in [0, 1].
    pub soc: f32,
    /// Its standard deviation (fraction).
    pub soc_std: f32,
    /// State of health in [0, 1] (see the module docs).
    pub soh: f32,
    /// Estimated pack capacity (Ah).
    pub capacity_ah: f32,
    /// Estimated pack series resistance R0 (Ω) at the reference temperature.
    pub resistance_ohm: f32,
    /// Capacity or resistance is past its end-of-life limit.
    pub end_of_life: bool,
    /// Which limit, if `end_of_life`.
    pub end_of_life_cause: Option<EndOfLifeCause>,
    /// Why the estimate is what it is.
    pub reason: EstimateReason,
}

/// Counters for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EstimatorStats {
    /// Samples rejected as non-finite or implausible.
    pub rejected_samples: u32,
    /// Samples that came after a gap longer than `max_step_s`.
    pub gaps: u32,
    /// Capacity updates from pairs of OCV anchors.
    pub capacity_updates: u32,
    /// Resistance samples taken at current steps.
    pub resistance_samples: u32,
    /// Samples whose temperature was non-finite or implausible.
    pub invalid_temperatures: u32,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    soc: f64,
    ah: f64,
}

/// SOC/SOH estimator. Construct with [`Estimator::new`], feed every
/// measurement to [`Estimator::update`].
#[derive(Debug, Clone)]
pub struct Estimator {
    cfg: EstimationConfig,
    x: Vec3,
    p: Mat3,
    capacity_ah: f64,
    /// Pack R0 at the reference temperature (Ω).
    r0_pack_ohm: f64,
    /// Arrhenius factor of the resistances at the last valid temperature.
    t_factor: f64,
    last: Option<(Millis, f64, f64)>,
    rest_since: Option<Millis>,
    /// Integrated measured charge (Ah, discharge positive) since start.
    ah: f64,
    anchor: Option<Anchor>,
    pending_anchor: Option<Anchor>,
    stats: EstimatorStats,
    estimate: Estimate,
}

impl Estimator {
    /// A new estimator at `initial_soc` (e.g. restored from non-volatile
    /// storage; non-finite → 0.5), with `initial_soc_std` uncertainty. The
    /// config should have passed [`EstimationConfig::validate`]; a config
    /// that did not still never panics.
    pub fn new(config: EstimationConfig, initial_soc: f32) -> Self {
        let soc = if initial_soc.is_finite() {
            (initial_soc as f64).clamp(0.0, 1.0)
        } else {
            0.5
        };
        let s0 = config.initial_soc_std as f64;
        let s0 = if s0.is_finite() {
            s0.clamp(1e-4, 1.0)
        } else {
            0.1
        };
        let p = Mat3::from_diagonal(&Vec3::new(s0 * s0, 1e-4, 1e-4));
        let capacity_ah = config.nominal_capacity_ah as f64;
        let r0_pack_ohm = config.r0_ohm as f64 * config.series_cells as f64;
        let mut e = Estimator {
            x: Vec3::new(soc, 0.0, 0.0),
            p,
            capacity_ah,
            r0_pack_ohm,
            t_factor: 1.0,
            last: None,
            rest_since: None,
            ah: 0.0,
            anchor: None,
            pending_anchor: None,
            stats: EstimatorStats::default(),
            estimate: Estimate {
                soc: soc as f32,
                soc_std: s0 as f32,
                soh: 1.0,
                capacity_ah: capacity_ah as f32,
                resistance_ohm: r0_pack_ohm as f32,
                end_of_life: false,
                end_of_life_cause: None,
                reason: EstimateReason::Initial,
            },
            cfg: config,
        };
        e.refresh(EstimateReason::Initial);
        e
    }

    /// The latest estimate.
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// Diagnostics counters.
    pub fn stats(&self) -> EstimatorStats {
        self.stats
    }

    /// The configuration in use.
    pub fn config(&self) -> &EstimationConfig {
        &self.cfg
    }

    /// Restores SOH state saved earlier (capacity in Ah and pack R0 in Ω);
    /// non-finite or non-positive values are ignored.
    pub fn restore_health(&mut self, capacity_ah: f32, resistance_ohm: f32) {
        if capacity_ah.is_finite() && capacity_ah > 0.0 {
            self.capacity_ah = self.clamp_capacity(capacity_ah as f64);
        }
        if resistance_ohm.is_finite() && resistance_ohm > 0.0 {
            self.r0_pack_ohm = self.clamp_resistance(resistance_ohm as f64);
        }
        let r = self.estimate.reason;
        self.refresh(r);
    }

    fn series(&self) -> f64 {
        self.cfg.series_cells.max(1) as f64
    }

    fn nominal_r0(&self) -> f64 {
        self.cfg.r0_ohm as f64 * self.series()
    }

    fn clamp_capacity(&self, q: f64) -> f64 {
        let nom = (self.cfg.nominal_capacity_ah as f64).max(1e-3);
        q.clamp(0.3 * nom, 1.5 * nom)
    }

    fn clamp_resistance(&self, r: f64) -> f64 {
        let nom = self.nominal_r0().max(1e-9);
        r.clamp(0.3 * nom, 10.0 * nom)
    }

    fn plausible(&self, v: f32, i: f32) -> bool {
        let n = self.series() as f32;
        v.is_finite()
            && i.is_finite()
            && v >= self.cfg.plausible_cell_voltage_min_v * n
            && v <= self.cfg.plausible_cell_voltage_max_v * n
            && i.abs() <= self.cfg.plausible_current_max_a
    }

    /// Feeds one sample taken at `now`; returns the updated estimate.
    pub fn update(&mut self, now: Millis, inputs: EstimationInputs) -> Estimate {
        if !self.plausible(inputs.pack_voltage_v, inputs.current_a) {
            self.stats.rejected_samples = self.stats.rejected_samples.saturating_add(1);
            self.estimate.reason = EstimateReason::RejectedSample;
            return self.estimate;
        }
        self.update_temperature_factor(inputs.temperature_c);
        let v = inputs.pack_voltage_v as f64;
        let i = inputs.current_a as f64;
        let Some((t_prev, v_prev, i_prev)) = self.last else {
            // First sample: no interval to integrate; correct by voltage.
            self.last = Some((now, v, i));
            self.correct(v, i, self.cfg.voltage_noise_v as f64);
            self.refresh(EstimateReason::Tracking);
            return self.estimate;
        };
        let max_step = self.cfg.max_step_s as f64;
        let dt_real = if now >= t_prev {
            now.since(t_prev) as f64 * 1e-3
        } else {
            f64::INFINITY
        };
        let gap = dt_real.is_nan() || dt_real > max_step;
        let dt = if gap { max_step } else { dt_real };
        self.last = Some((now, v, i));

        // Ah throughput (measured), for capacity.
        self.ah += i * dt / 3600.0;

        let rc_before = self.x[1] + self.x[2];
        let soc_before = self.x[0];
        self.predict(i, dt);
        let di = i - i_prev;
        if !gap
            && dt_real > 0.0
            && dt_real <= self.cfg.resistance_max_dt_s as f64
            && di.abs() >= self.cfg.resistance_step_min_a as f64
        {
            self.learn_resistance(v - v_prev, di, rc_before, soc_before);
        }
        if gap {
            self.stats.gaps = self.stats.gaps.saturating_add(1);
            self.inflate_after_gap(dt_real, dt);
        }

        // Rest tracking.
        let at_rest_now = i.abs() < self.cfg.rest_current_a as f64;
        if at_rest_now {
            let since = *self.rest_since.get_or_insert(now);
            let rested = now.since(since) as f64 * 1e-3 >= self.cfg.rest_time_s as f64;
            if rested && !gap {
                self.correct(v, i, self.cfg.rest_voltage_noise_v as f64);
                self.note_anchor(v, i);
                self.refresh(EstimateReason::RestCorrected);
                return self.estimate;
            }
        } else {
            self.rest_since = None;
            self.commit_anchor();
        }
        self.correct(v, i, self.cfg.voltage_noise_v as f64);
        self.refresh(if gap {
            EstimateReason::AfterGap
        } else {
            EstimateReason::Tracking
        });
        self.estimate
    }

    /// The resistances' Arrhenius factor at the measured temperature `t`
    /// (°C); an implausible temperature keeps the last factor and is
    /// counted.
    fn update_temperature_factor(&mut self, t: f32) {
        if t.is_finite() && (-40.0..=80.0).contains(&t) {
            let ea = self.cfg.resistance_activation_energy_j_per_mol as f64;
            let t_ref = self.cfg.reference_temperature_c as f64 + 273.15;
            let f = libm::exp(ea / 8.314_462 * (1.0 / (t as f64 + 273.15) - 1.0 / t_ref));
            if f.is_finite() && f > 0.0 {
                self.t_factor = f;
            }
        } else {
            self.stats.invalid_temperatures = self.stats.invalid_temperatures.saturating_add(1);
        }
    }

    /// Resistance from a current step `di` (A) that changed the pack
    /// voltage by `dv` (V): the voltage change less what the model (just
    /// predicted from `rc_before` and `soc_before`) attributes to the RC
    /// pairs and OCV over the interval; a plausible sample is smoothed in.
    fn learn_resistance(&mut self, dv: f64, di: f64, rc_before: f64, soc_before: f64) {
        let n = self.series();
        let d_model = (self.x[1] + self.x[2] - rc_before)
            + n * (self.cfg.ocv_cell_v(self.x[0]) - self.cfg.ocv_cell_v(soc_before));
        let r = -(dv - d_model) / di;
        let nom = self.nominal_r0();
        if r.is_finite() && r > 0.0 && r < 10.0 * nom {
            let a = self.cfg.resistance_smoothing as f64;
            let r = r / self.t_factor;
            let r_new = self.r0_pack_ohm + a * (r - self.r0_pack_ohm);
            self.r0_pack_ohm = self.clamp_resistance(r_new);
            self.stats.resistance_samples = self.stats.resistance_samples.saturating_add(1);
        }
    }

    /// Inflates the SOC uncertainty for the part of a gap (`dt_real` s,
    /// infinite when time went backwards) not integrated (`dt` s were).
    fn inflate_after_gap(&mut self, dt_real: f64, dt: f64) {
        let extra_s = if dt_real.is_finite() {
            (dt_real - dt).max(0.0)
        } else {
            3600.0
        };
        let q = self.cfg.soc_process_std_per_sqrt_h as f64;
        self.p[(0, 0)] += q * q * extra_s / 3600.0;
    }

    fn tau_decay(r: f64, c: f64, dt: f64) -> f64 {
        let tau = r * c;
        if tau > 0.0 && tau.is_finite() {
            libm::exp(-dt / tau)
        } else {
            0.0
        }
    }

    fn predict(&mut self, i: f64, dt: f64) {
        let n = self.series();
        // The RC resistances follow the learned R0 (temperature and ageing
        // move all of a cell's resistances together, to first order).
        let scale = self.r0_pack_ohm * self.t_factor / self.nominal_r0().max(1e-12);
        let r1 = self.cfg.r1_ohm as f64 * n * scale;
        let c1 = self.cfg.c1_f as f64 / n;
        let r2 = self.cfg.r2_ohm as f64 * n * scale;
        let c2 = self.cfg.c2_f as f64 / n;
        let a1 = Self::tau_decay(r1, c1, dt);
        let a2 = Self::tau_decay(r2, c2, dt);
        let q = self.capacity_ah.max(1e-3);
        self.x[0] = (self.x[0] - i * dt / (3600.0 * q)).clamp(0.0, 1.0);
        self.x[1] = a1 * self.x[1] - (1.0 - a1) * r1 * i;
        self.x[2] = if r2 > 0.0 {
            a2 * self.x[2] - (1.0 - a2) * r2 * i
        } else {
            0.0
        };
        let f = Mat3::from_diagonal(&Vec3::new(1.0, a1, a2));
        let qs = self.cfg.soc_process_std_per_sqrt_h as f64;
        let qv = self.cfg.rc_process_std_v_per_sqrt_s as f64;
        let qm = Mat3::from_diagonal(&Vec3::new(
            qs * qs * dt / 3600.0,
            qv * qv * dt,
            if r2 > 0.0 { qv * qv * dt } else { 0.0 },
        ));
        self.p = f * self.p * f.transpose() + qm;
        self.condition();
    }

    fn correct(&mut self, v: f64, i: f64, noise_v: f64) {
        let n = self.series();
        let soc = self.x[0];
        let h_soc = n * self.cfg.ocv_slope_cell(soc);
        let v_hat = n * self.cfg.ocv_cell_v(soc) - i * self.r0_pack_ohm * self.t_factor
            + self.x[1]
            + self.x[2];
        let h = SMatrix::<f64, 1, 3>::new(h_soc, 1.0, 1.0);
        let r = noise_v * noise_v;
        let s = (h * self.p * h.transpose())[(0, 0)] + r;
        if !(s.is_finite() && s > 0.0) {
            return;
        }
        let k: Vec3 = self.p * h.transpose() / s;
        let innov = v - v_hat;
        let x_new = self.x + k * innov;
        if !x_new.iter().all(|x| x.is_finite()) {
            return;
        }
        self.x = x_new;
        self.x[0] = self.x[0].clamp(0.0, 1.0);
        let ikh = Mat3::identity() - k * h;
        self.p = ikh * self.p * ikh.transpose() + k * k.transpose() * r;
        self.condition();
    }

    /// Keeps P symmetric with a bounded positive diagonal; resets it if it
    /// ever became non-finite.
    fn condition(&mut self) {
        if !self.p.iter().all(|x| x.is_finite()) {
            let s0 = self.cfg.initial_soc_std as f64;
            self.p = Mat3::from_diagonal(&Vec3::new(s0 * s0, 1e-4, 1e-4));
            return;
        }
        self.p = (self.p + self.p.transpose()) * 0.5;
        for k in 0..3 {
            self.p[(k, k)] = self.p[(k, k)].clamp(1e-12, 1.0);
        }
        // Keep the correlations within ±1 (a cheap positivity guard).
        for r in 0..3 {
            for c in 0..3 {
                if r != c {
                    let lim = libm::sqrt(self.p[(r, r)] * self.p[(c, c)]) * 0.999;
                    self.p[(r, c)] = self.p[(r, c)].clamp(-lim, lim);
                }
            }
        }
    }

    fn note_anchor(&mut self, v: f64, i: f64) {
        let n = self.series();
        let ocv_cell = (v + i * self.r0_pack_ohm * self.t_factor) / n;
        let soc = self.cfg.soc_from_ocv(ocv_cell);
        if self.cfg.ocv_slope_cell(soc) >= self.cfg.anchor_min_slope_v_per_soc as f64 {
            self.pending_anchor = Some(Anchor { soc, ah: self.ah });
        }
    }

    fn commit_anchor(&mut self) {
        let Some(new) = self.pending_anchor.take() else {
            return;
        };
        if let Some(old) = self.anchor {
            let dsoc = old.soc - new.soc;
            if dsoc.abs() >= self.cfg.capacity_min_delta_soc as f64 {
                let q = (new.ah - old.ah) / dsoc;
                if q.is_finite() && q > 0.0 {
                    let a = self.cfg.capacity_smoothing as f64;
                    let q_new = self.capacity_ah + a * (q - self.capacity_ah);
                    self.capacity_ah = self.clamp_capacity(q_new);
                    self.stats.capacity_updates = self.stats.capacity_updates.saturating_add(1);
                }
            }
        }
        self.anchor = Some(new);
    }

    fn refresh(&mut self, reason: EstimateReason) {
        let nom_q = (self.cfg.nominal_capacity_ah as f64).max(1e-3);
        let cap_ratio = self.capacity_ah / nom_q;
        let r_ratio = self.r0_pack_ohm / self.nominal_r0().max(1e-12);
        let eol_q = self.cfg.eol_capacity_fraction as f64;
        let eol_r = (self.cfg.eol_resistance_factor as f64).max(1.0 + 1e-6);
        let r_trusted = self.stats.resistance_samples >= self.cfg.resistance_min_samples;
        let soh_r = 1.0 - (r_ratio - 1.0) / (eol_r - 1.0) * (1.0 - eol_q);
        let mut soh = cap_ratio;
        if r_trusted {
            soh = soh.min(soh_r);
        }
        let cause = if cap_ratio < eol_q {
            Some(EndOfLifeCause::CapacityFade)
        } else if r_trusted && r_ratio > eol_r {
            Some(EndOfLifeCause::ResistanceGrowth)
        } else {
            None
        };
        let std = libm::sqrt(self.p[(0, 0)].max(0.0));
        self.estimate = Estimate {
            soc: self.x[0].clamp(0.0, 1.0) as f32,
            soc_std: std as f32,
            soh: soh.clamp(0.0, 1.0) as f32,
            capacity_ah: self.capacity_ah as f32,
            resistance_ohm: self.r0_pack_ohm as f32,
            end_of_life: cause.is_some(),
            end_of_life_cause: cause,
            reason,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> EstimationConfig {
        EstimationConfig::default()
    }

    /// A tiny noiseless plant with the estimator's own model.
    struct Plant {
        cfg: EstimationConfig,
        soc: f64,
        v1: f64,
        v2: f64,
        q: f64,
        r0: f64,
    }

    impl Plant {
        fn step(&mut self, i: f64, dt: f64) -> f64 {
            let n = self.cfg.series_cells as f64;
            let (r1, c1) = (self.cfg.r1_ohm as f64 * n, self.cfg.c1_f as f64 / n);
            let (r2, c2) = (self.cfg.r2_ohm as f64 * n, self.cfg.c2_f as f64 / n);
            let a1 = libm::exp(-dt / (r1 * c1));
            let a2 = libm::exp(-dt / (r2 * c2));
            self.soc -= i * dt / (3600.0 * self.q);
            self.v1 = a1 * self.v1 - (1.0 - a1) * r1 * i;
            self.v2 = a2 * self.v2 - (1.0 - a2) * r2 * i;
            n * self.cfg.ocv_cell_v(self.soc) - i * self.r0 + self.v1 + self.v2
        }
    }

    fn plant(soc: f64, q: f64, r_factor: f64) -> Plant {
        let c = cfg();
        let r0 = c.r0_ohm as f64 * c.series_cells as f64 * r_factor;
        Plant {
            cfg: c,
            soc,
            v1: 0.0,
            v2: 0.0,
            q,
            r0,
        }
    }

    #[test]
    fn default_config_is_valid_and_table_helpers_work() {
        let c = cfg();
        c.validate().unwrap();
        assert!((c.ocv_cell_v(0.5) - 3.296).abs() < 1e-6);
        assert!((c.ocv_cell_v(-1.0) - 2.5).abs() < 1e-6);
        assert!((c.ocv_cell_v(2.0) - 3.48).abs() < 1e-6);
        assert!((c.soc_from_ocv(c.ocv_cell_v(0.93)) - 0.93).abs() < 1e-4);
        assert!(c.ocv_slope_cell(0.5) > 0.0);
    }

    #[cfg(feature = "std")]
    #[test]
    fn parses_from_toml_with_defaults_and_rejects_unknown_keys() {
        let c: EstimationConfig = toml::from_str(
            "series_cells = 16\nnominal_capacity_ah = 100.0\n\
             ocv_table = [[0.0, 2.5], [0.1, 3.205], [0.5, 3.296], [0.9, 3.338], [1.0, 3.48]]\n\
             r2_ohm = 0.0\nrest_time_s = 900.0\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.ocv_table.len(), 5);
        assert_eq!(c.ocv_table[2], (0.5, 3.296));
        assert_eq!(c.rest_time_s, 900.0);
        assert_eq!(c.r0_ohm, cfg().r0_ohm);
        assert!(toml::from_str::<EstimationConfig>("series_cell = 16").is_err());
    }

    #[test]
    fn validate_rejects_bad_tables_and_values() {
        let mut c = cfg();
        c.ocv_table.clear();
        assert_eq!(c.validate().unwrap_err().field.as_str(), "ocv_table");
        let mut c = cfg();
        c.ocv_table[3].1 = 1.0;
        assert_eq!(c.validate().unwrap_err().field.as_str(), "ocv_table");
        let mut c = cfg();
        c.r0_ohm = f32::NAN;
        assert_eq!(c.validate().unwrap_err().field.as_str(), "r0_ohm");
        let mut c = cfg();
        c.eol_resistance_factor = 1.0;
        assert_eq!(
            c.validate().unwrap_err().field.as_str(),
            "eol_resistance_factor"
        );
    }

    #[test]
    fn converges_from_a_wrong_initial_soc() {
        // Cycle through the steep low end so the voltage is informative.
        let mut p = plant(0.3, 100.0, 1.0);
        let mut e = Estimator::new(cfg(), 0.4);
        let mut t = 0u64;
        for k in 0..30_000 {
            let i = if (k / 3000) % 2 == 0 { 20.0 } else { -20.0 };
            let v = p.step(i, 1.0);
            t += 1000;
            e.update(
                Millis(t),
                EstimationInputs {
                    pack_voltage_v: v as f32,
                    current_a: i as f32,
                    temperature_c: 25.0,
                },
            );
        }
        let est = e.estimate();
        assert!(
            (est.soc as f64 - p.soc).abs() < 0.02,
            "est {} true {}",
            est.soc,
            p.soc
        );
        assert!(est.soc_std < 0.05);
    }

    #[test]
    fn rest_tightens_the_weight() {
        let mut p = plant(0.08, 100.0, 1.0);
        let mut e = Estimator::new(cfg(), 0.2);
        let mut t = 0u64;
        let mut reason = EstimateReason::Initial;
        for _ in 0..1200 {
            let v = p.step(0.0, 1.0);
            t += 1000;
            reason = e
                .update(
                    Millis(t),
                    EstimationInputs {
                        pack_voltage_v: v as f32,
                        current_a: 0.0,
                        temperature_c: 25.0,
                    },
                )
                .reason;
        }
        assert_eq!(reason, EstimateReason::RestCorrected);
        assert!((e.estimate().soc - 0.08).abs() < 0.01);
    }

    #[test]
    fn rejects_bad_samples_and_holds_the_estimate() {
        let mut e = Estimator::new(cfg(), 0.5);
        let before = e.estimate();
        for (k, (v, i)) in [
            (f32::NAN, 0.0),
            (52.0, f32::INFINITY),
            (1.0, 0.0),
            (500.0, 0.0),
            (52.0, 1e6),
        ]
        .into_iter()
        .enumerate()
        {
            let est = e.update(
                Millis(k as u64 * 1000),
                EstimationInputs {
                    pack_voltage_v: v,
                    current_a: i,
                    temperature_c: 25.0,
                },
            );
            assert_eq!(est.reason, EstimateReason::RejectedSample);
            assert_eq!(est.soc, before.soc);
        }
        assert_eq!(e.stats().rejected_samples, 5);
    }

    #[test]
    fn learns_faded_capacity_and_grown_resistance_and_flags_end_of_life() {
        // 65 Ah pack (below 0.7 × 100 Ah), resistance ×2.5; full cycles with
        // long rests at both steep ends.
        let mut p = plant(0.95, 65.0, 2.5);
        let mut e = Estimator::new(cfg(), 0.95);
        let mut t = 0u64;
        for _cycle in 0..8 {
            for (i, secs) in [
                (0.0, 1800),
                (25.0, 7920),
                (0.0, 3600),
                (-25.0, 7920),
                (0.0, 1800),
            ] {
                for k in 0..secs {
                    // ±10 A square wave on the current for resistance steps.
                    let i = if i == 0.0 {
                        0.0
                    } else if (k / 30) % 2 == 0 {
                        i + 10.0
                    } else {
                        i - 10.0
                    };
                    let v = p.step(i, 1.0);
                    t += 1000;
                    e.update(
                        Millis(t),
                        EstimationInputs {
                            pack_voltage_v: v as f32,
                            current_a: i as f32,
                            temperature_c: 25.0,
                        },
                    );
                }
            }
        }
        let est = e.estimate();
        assert!(e.stats().capacity_updates >= 3, "{:?}", e.stats());
        assert!(
            (est.capacity_ah - 65.0).abs() < 5.0,
            "capacity {}",
            est.capacity_ah
        );
        let r_true = 2.5 * 0.00055 * 16.0;
        assert!(
            (est.resistance_ohm as f64 - r_true).abs() < 0.15 * r_true,
            "R {} true {}",
            est.resistance_ohm,
            r_true
        );
        assert!(est.end_of_life);
        assert!(est.soh < 0.7);
    }

    #[test]
    fn gap_inflates_uncertainty() {
        let c = EstimationConfig {
            initial_soc_std: 0.001,
            ..cfg()
        };
        let mut e = Estimator::new(c, 0.5);
        let x = EstimationInputs {
            pack_voltage_v: 52.7,
            current_a: 10.0,
            temperature_c: 25.0,
        };
        e.update(Millis(0), x);
        let s0 = e.update(Millis(1000), x).soc_std;
        let est = e.update(Millis(10 * 3_600_000), x);
        assert_eq!(est.reason, EstimateReason::AfterGap);
        assert!(est.soc_std > s0);
        // Time going backwards is a gap too, never a panic.
        assert_eq!(e.update(Millis(5), x).reason, EstimateReason::AfterGap);
    }

    proptest! {
        #[test]
        fn arbitrary_samples_never_panic_and_stay_bounded(
            samples in proptest::collection::vec(
                (0u64..100_000, prop_oneof![any::<f32>(), 40.0f32..60.0], prop_oneof![any::<f32>(), -200.0f32..200.0], prop_oneof![any::<f32>(), -20.0f32..50.0]),
                1..200)
        ) {
            let mut e = Estimator::new(cfg(), 0.5);
            let mut t = 0u64;
            for (dt, v, i, temp) in samples {
                t = t.saturating_add(dt);
                let est = e.update(Millis(t), EstimationInputs { pack_voltage_v: v, current_a: i, temperature_c: temp });
                prop_assert!((0.0..=1.0).contains(&est.soc));
                prop_assert!(est.soc_std.is_finite() && est.soc_std >= 0.0);
                prop_assert!((0.0..=1.0).contains(&est.soh));
                prop_assert!(est.capacity_ah.is_finite() && est.resistance_ohm.is_finite());
                let p = e.p;
                for r in 0..3 {
                    prop_assert!(p[(r, r)] > 0.0);
                    for c in 0..3 {
                        prop_assert!((p[(r, c)] - p[(c, r)]).abs() <= 1e-12 * (1.0 + p[(r, c)].abs()));
                    }
                }
            }
        }
    }
}
