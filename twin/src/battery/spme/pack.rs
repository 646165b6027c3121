//! A series × parallel pack of SPMe cells ([`SpmePack`]), selected in a pack
//! file with `model = "spme"` (see [`crate::battery::load_battery_pack_params`]).
//!
//! Cell-to-cell spread (seeded): `capacity_rel_sd` scales each cell's
//! electrode area (capacity and conductances together, as for a bigger or
//! smaller cell of the same design) and `initial_soc_sd` its initial SOC;
//! `resistance_rel_sd` adds a contact resistance of that relative size
//! (times the cell's 1C voltage drop scale, `0.1 V / (1C current)`), so a
//! pack file written for the ECM keeps its meaning approximately.
//!
//! Parallel cells share the group current through the cells' linearised
//! end-of-step voltages `V_k ≈ e_k − r_k I_k` (from two trial steps of each
//! cell), so that they end the step at the same voltage; the cells are then
//! stepped with their share (two trial steps, one Newton refinement
//! and the step: four cell steps per parallel cell; a series-only pack
//! steps each cell once). A step allocates nothing.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::cell::{SpmeCell, SpmeError, SpmeModel};
use super::params::SpmeParams;
use crate::battery::cell::{clamp_current, LimitFlags};
use crate::battery::pack::PackOutput;
use crate::battery::params::Spread;

/// Validated parameters of an SPMe pack.
#[derive(Debug, Clone)]
pub struct SpmePackParams {
    pub name: String,
    pub cell: SpmeParams,
    pub series: usize,
    pub parallel: usize,
    pub spread: Spread,
}

/// A pack of SPMe cells.
#[derive(Debug, Clone)]
pub struct SpmePack {
    series: usize,
    parallel: usize,
    /// Cells, series position major: cell `s * parallel + p`.
    cells: Vec<SpmeCell>,
    /// Per-cell scratch: linearised `e` and `r` of the current step.
    e_v: Vec<f64>,
    r_ohm: Vec<f64>,
    /// Current step for the trial linearisation (A).
    probe_a: f64,
    energy_discharged_wh: f64,
    energy_charged_wh: f64,
    last: Option<PackOutput>,
}

impl SpmePack {
    /// A pack at `soc0` and uniform `temperature_c`, spread drawn from `seed`.
    pub fn new(
        params: &SpmePackParams,
        soc0: f64,
        temperature_c: f64,
        seed: u64,
    ) -> Result<Self, SpmeError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = params.series * params.parallel;
        let nominal = SpmeModel::new(&params.cell)?;
        let sd = params.spread;
        let unit: Normal<f64> = Normal::new(0.0, 1.0).expect("unit normal");
        let mut cells = Vec::with_capacity(n);
        for _ in 0..n {
            // Normal draws truncated at ±3σ, as the ECM pack.
            let mut z = || -> f64 {
                let x: f64 = unit.sample(&mut rng);
                x.clamp(-3.0, 3.0)
            };
            let (zc, zr, zs) = (z(), z(), z());
            let model: Arc<SpmeModel> = if sd.capacity_rel_sd == 0.0 && sd.resistance_rel_sd == 0.0
            {
                nominal.clone()
            } else {
                let mut p = params.cell.clone();
                let scale = 1.0 + sd.capacity_rel_sd * zc;
                p.electrode_area_m2 *= scale;
                let one_c = p.nominal_capacity_ah;
                p.contact_resistance_ohm +=
                    (sd.resistance_rel_sd * zr).abs() * 0.1 / one_c.max(1e-9);
                SpmeModel::new(&p)?
            };
            let soc = (soc0 + sd.initial_soc_sd * zs).clamp(0.0, 1.0);
            cells.push(SpmeCell::from_model(model, soc, temperature_c));
        }
        Ok(SpmePack {
            series: params.series,
            parallel: params.parallel,
            cells,
            e_v: vec![0.0; n],
            r_ohm: vec![0.0; n],
            probe_a: 0.05 * params.cell.nominal_capacity_ah,
            energy_discharged_wh: 0.0,
            energy_charged_wh: 0.0,
            last: None,
        })
    }

    /// The cells, series position major.
    pub fn cells(&self) -> &[SpmeCell] {
        &self.cells
    }

    /// Sets the ambient temperature of every cell (°C).
    pub fn set_ambient_c(&mut self, t: f64) {
        for c in &mut self.cells {
            c.set_ambient_c(t);
        }
    }

    /// Steps `dt_s` at pack current `current_a` (positive = discharge). A
    /// non-positive or non-finite `dt_s` leaves the state as it is.
    pub fn step_current(&mut self, current_a: f64, dt_s: f64) -> PackOutput {
        if !(dt_s.is_finite() && dt_s > 0.0) {
            return self.output();
        }
        let (i, clamped) = clamp_current(current_a);
        let np = self.parallel;
        for s in 0..self.series {
            let group = s * np..(s + 1) * np;
            if np == 1 {
                self.cells[s].step_current(i, dt_s);
                continue;
            }
            // Linearise each cell's end-of-step voltage from two trial steps
            // around its last current shifted by an equal share of the change.
            let last: f64 = self.cells[group.clone()]
                .iter()
                .map(|c| c.state().current_a)
                .sum();
            let shift = (i - last) / np as f64;
            let delta = self.probe_a.max(0.01 * (i / np as f64).abs());
            let mut sum_g = 0.0;
            let mut sum_eg = 0.0;
            for k in group.clone() {
                let cell = &mut self.cells[k];
                let base = cell.state().current_a + shift;
                let va = cell.trial_voltage(base, dt_s);
                let vb = cell.trial_voltage(base + delta, dt_s);
                let r = (va - vb) / delta;
                let r = if r.is_finite() { r.max(1e-6) } else { 1e-3 };
                let e = va + r * base;
                self.e_v[k] = e;
                self.r_ohm[k] = r;
                sum_g += 1.0 / r;
                sum_eg += e / r;
            }
            let v = (sum_eg - i) / sum_g;
            // One Newton refinement: the voltage at each cell's share, with
            // the same slope (the kinetics curve V(I) over the spread).
            let (mut sum_g, mut sum_eg) = (0.0, 0.0);
            for k in group.clone() {
                let ik = (self.e_v[k] - v) / self.r_ohm[k];
                let r = self.r_ohm[k];
                let e = self.cells[k].trial_voltage(ik, dt_s) + r * ik;
                self.e_v[k] = e;
                sum_g += 1.0 / r;
                sum_eg += e / r;
            }
            let v = (sum_eg - i) / sum_g;
            for k in group {
                let ik = (self.e_v[k] - v) / self.r_ohm[k];
                self.cells[k].step_current(ik, dt_s);
            }
        }
        let mut out = self.output_with(i);
        if clamped {
            out.limits |= LimitFlags::CURRENT_CLAMPED;
        }
        let e_wh = out.power_w * dt_s / 3600.0;
        if e_wh >= 0.0 {
            self.energy_discharged_wh += e_wh;
        } else {
            self.energy_charged_wh -= e_wh;
        }
        out.energy_discharged_wh = self.energy_discharged_wh;
        out.energy_charged_wh = self.energy_charged_wh;
        self.last = Some(out);
        out
    }

    /// The output after the last step (at zero current before the first).
    pub fn output(&self) -> PackOutput {
        self.last.unwrap_or_else(|| self.output_with(0.0))
    }

    fn output_with(&self, current_a: f64) -> PackOutput {
        let np = self.parallel;
        let n = self.cells.len() as f64;
        let mut o = PackOutput {
            voltage_v: 0.0,
            current_a,
            power_w: 0.0,
            soc_mean: 0.0,
            soc_min: f64::INFINITY,
            soc_max: f64::NEG_INFINITY,
            cell_voltage_min_v: f64::INFINITY,
            cell_voltage_min_index: 0,
            cell_voltage_max_v: f64::NEG_INFINITY,
            cell_voltage_max_index: 0,
            temperature_min_c: f64::INFINITY,
            temperature_max_c: f64::NEG_INFINITY,
            temperature_mean_c: 0.0,
            soh: 0.0,
            soh_min: f64::INFINITY,
            heat_w: 0.0,
            energy_discharged_wh: self.energy_discharged_wh,
            energy_charged_wh: self.energy_charged_wh,
            limits: LimitFlags::NONE,
        };
        for s in 0..self.series {
            let mut v = 0.0;
            for k in s * np..(s + 1) * np {
                let c = self.cells[k].output();
                v += c.voltage_v;
                o.soc_mean += c.soc / n;
                o.soc_min = o.soc_min.min(c.soc);
                o.soc_max = o.soc_max.max(c.soc);
                o.temperature_min_c = o.temperature_min_c.min(c.temperature_c);
                o.temperature_max_c = o.temperature_max_c.max(c.temperature_c);
                o.temperature_mean_c += c.temperature_c / n;
                o.soh += c.soh / n;
                o.soh_min = o.soh_min.min(c.soh);
                o.heat_w += c.heat_w;
                o.limits |= c.limits;
            }
            let v = v / np as f64;
            o.voltage_v += v;
            if v < o.cell_voltage_min_v {
                o.cell_voltage_min_v = v;
                o.cell_voltage_min_index = s;
            }
            if v > o.cell_voltage_max_v {
                o.cell_voltage_max_v = v;
                o.cell_voltage_max_index = s;
            }
        }
        // Keep the documented orderings exact despite rounding in the means.
        o.soc_mean = o.soc_mean.clamp(o.soc_min, o.soc_max);
        o.temperature_mean_c = o
            .temperature_mean_c
            .clamp(o.temperature_min_c, o.temperature_max_c);
        o.soh = o.soh.clamp(o.soh_min, 1.0);
        o.power_w = o.voltage_v * current_a;
        o
    }
}
