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
use crate::battery::cell::LimitFlags;
use crate::battery::pack::PackOutput;
use crate::battery::pack_stats::{CellSample, EnergyCounter, MeanSum, PackStats};
use crate::battery::params::Spread;
use crate::battery::power::clamp_current;
use crate::battery::power::{LinearSource, ParallelSources};

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
    /// Per-cell scratch: the cells linearised over the current step.
    sources: Vec<LinearSource>,
    /// Current step for the trial linearisation (A).
    probe_a: f64,
    energy: EnergyCounter,
    /// The output after the last step (at zero current before the first).
    out: PackOutput,
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
        let (series, parallel) = (params.series, params.parallel);
        let out = gather(&cells, series, parallel).output(n, 0.0, LimitFlags::NONE);
        Ok(SpmePack {
            series,
            parallel,
            cells,
            sources: vec![LinearSource::default(); n],
            probe_a: 0.05 * params.cell.nominal_capacity_ah,
            energy: EnergyCounter::default(),
            out,
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
            let mut sources = ParallelSources::default();
            for k in group.clone() {
                let cell = &mut self.cells[k];
                let base = cell.state().current_a + shift;
                let va = cell.trial_voltage(base, dt_s);
                let vb = cell.trial_voltage(base + delta, dt_s);
                let r = (va - vb) / delta;
                let r = if r.is_finite() { r.max(1e-6) } else { 1e-3 };
                let e = va + r * base;
                self.sources[k] = LinearSource { e_v: e, r_ohm: r };
                sources.add(self.sources[k]);
            }
            let v = sources.voltage_at(i);
            // One Newton refinement of the split (not of a power): each
            // cell's `e` again from a trial at its share, with the same slope
            // (the kinetics curve V(I) over the spread).
            let mut sources = ParallelSources::default();
            for k in group.clone() {
                let ik = self.sources[k].current_at(v);
                let r = self.sources[k].r_ohm;
                self.sources[k].e_v = self.cells[k].trial_voltage(ik, dt_s) + r * ik;
                sources.add(self.sources[k]);
            }
            let v = sources.voltage_at(i);
            for k in group {
                let ik = self.sources[k].current_at(v);
                self.cells[k].step_current(ik, dt_s);
            }
        }
        let extra = LimitFlags::current_clamped_if(clamped);
        let stats = gather(&self.cells, self.series, self.parallel);
        let mut out = stats.output(self.cells.len(), i, extra);
        self.energy.record(&mut out, dt_s);
        self.out = out;
        out
    }

    /// The output after the last step (at zero current before the first).
    pub fn output(&self) -> PackOutput {
        self.out
    }
}

/// The statistics of SPMe cells (index `s * parallel + p`).
fn gather(cells: &[SpmeCell], series: usize, parallel: usize) -> PackStats {
    let means = MeanSum::OfShares {
        cells: cells.len() as f64,
    };
    PackStats::gather(cells, series, parallel, means, |c| {
        CellSample::from(&c.output())
    })
}
