//! A pack of `series × parallel` cells with a seeded cell-to-cell spread.
//!
//! Cells are indexed `s * parallel + p` (series position `s`, parallel
//! position `p`). Each cell has its own RC, SOC, thermal (cell + its share of
//! the enclosure, to a common ambient) and ageing state; all share one
//! compiled [`CellModel`].
//!
//! **Spread.** From a `ChaCha8Rng` seeded with the scenario seed, each cell
//! draws three standard normals (truncated at ±3 σ) in order: capacity
//! multiplier `1 + σ_Q z₁`, resistance multiplier `1 + σ_R z₂` (applied to R0
//! and every R_i), initial SOC offset `σ_SOC z₃`. Same seed → same pack.
//!
//! **Current split in a parallel group.** Over a step every cell is
//! linearised as `V_k = e_k - r_k I_k` ([`CellModel::prepare`]: `e_k` is the
//! OCV plus the decayed RC voltages, `r_k = R0 + Σ R_i (1 - e^{-dt/τ_i}) +
//! dOCV/dSOC · dt / 3600 Q_k`). The group's cells share one terminal voltage
//! `V = (Σ e_k/r_k - I) / Σ 1/r_k`, so `I_k = (e_k - V)/r_k`. This is the
//! implicit (backward-Euler-like) split: it is stable for any step and
//! converges to the exact split as `dt → 0`; cells with lower SOC or higher
//! resistance take less current, and circulating currents between
//! unbalanced cells appear at zero pack current.
//!
//! The reported cell voltage of a series position is the mean of its
//! parallel cells' terminal voltages (what a BMS measures).
//!
//! **Engines.** When the cell's tables have no current axis and its entropic
//! table (if any) is over SOC/T, the cells are stepped by the
//! structure-of-arrays engine (`lanes.rs`: the same equations, vectorised
//! across cells, with cached interpolation brackets); otherwise each
//! [`CellState`] is stepped by [`CellModel`] directly. Both give the same
//! results to rounding (tested step by step); [`Pack::cells`] is the same
//! either way.

use std::sync::{Arc, OnceLock};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::cell::with_n_rc;
use super::cell::{CellModel, CellOutput, CellState, LimitFlags, Prepared};
use super::lanes::Lanes;
pub use super::pack_stats::PackOutput;
use super::pack_stats::{CellSample, EnergyCounter, MeanSum, PackStats};
use super::params::PackParams;
use super::power::{
    clamp_current, power_step_needed, refine_current, LinearSource, ParallelSources,
    PowerNotDeliverable, Refinement,
};
use super::thermal::{AmbientC, ThermalPropagator};

/// A battery pack.
#[derive(Debug, Clone)]
pub struct Pack {
    model: Arc<CellModel>,
    series: usize,
    parallel: usize,
    /// The cells, when the scalar engine steps them (empty otherwise).
    cells: Vec<CellState>,
    /// The cells in the structure-of-arrays engine, when it supports the
    /// cell model (see `lanes`; boxed: a house holds either this pack or
    /// the much smaller SPMe pack).
    lanes: Option<Box<Lanes>>,
    /// `cells()` materialised from `lanes` on demand (reset by every step).
    view: OnceLock<Vec<CellState>>,
    prep: Vec<Prepared>,
    prop: ThermalPropagator,
    ambient: AmbientC,
    energy: EnergyCounter,
    out: PackOutput,
}

fn truncated_normal(rng: &mut ChaCha8Rng) -> f64 {
    let z: f64 = StandardNormal.sample(rng);
    z.clamp(-3.0, 3.0)
}

impl Pack {
    /// Builds the pack at mean SOC `soc0` and uniform `temperature_c` (also
    /// the ambient), drawing the spread from `seed`.
    pub fn new(params: &PackParams, soc0: f64, temperature_c: f64, seed: u64) -> Self {
        Self::build(params, soc0, temperature_c, seed, true)
    }

    /// [`Pack::new`], optionally forcing the scalar engine (for tests).
    fn build(params: &PackParams, soc0: f64, temperature_c: f64, seed: u64, lanes: bool) -> Self {
        let model = CellModel::new(&params.cell);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sp = params.spread;
        let n = params.series * params.parallel;
        let soc0 = if soc0.is_finite() {
            soc0.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let cells: Vec<CellState> = (0..n)
            .map(|_| {
                let zq = truncated_normal(&mut rng);
                let zr = truncated_normal(&mut rng);
                let zs = truncated_normal(&mut rng);
                let cq = (1.0 + sp.capacity_rel_sd * zq).max(0.05);
                let cr = (1.0 + sp.resistance_rel_sd * zr).max(0.05);
                let soc = (soc0 + sp.initial_soc_sd * zs).clamp(0.0, 1.0);
                model.initial_state(soc, temperature_c, cq, cr)
            })
            .collect();
        let prep = cells.iter().map(|c| model.prepare(c, 1.0)).collect();
        let prop = ThermalPropagator::new(&model.params.thermal, 1.0);
        let ambient = AmbientC::new(cells[0].t_cell_c);
        let (cells, lanes) = if lanes && model.lanes_supported() {
            (
                Vec::new(),
                Some(Box::new(Lanes::new(&model, &cells, params.parallel))),
            )
        } else {
            (cells, None)
        };
        let (series, parallel) = (params.series, params.parallel);
        let stats = match &lanes {
            Some(l) => gather(&l.cells(&model), series, parallel),
            None => gather(&cells, series, parallel),
        };
        // The output at rest, energy counted from zero.
        let mut energy = EnergyCounter::default();
        let mut out = stats.output(n, 0.0, LimitFlags::NONE);
        energy.record(&mut out, 0.0);
        Pack {
            model,
            series,
            parallel,
            cells,
            lanes,
            view: OnceLock::new(),
            prep,
            prop,
            ambient,
            energy,
            out,
        }
    }

    pub fn series(&self) -> usize {
        self.series
    }
    pub fn parallel(&self) -> usize {
        self.parallel
    }
    pub fn model(&self) -> &Arc<CellModel> {
        &self.model
    }
    /// All cell states, index `s * parallel + p`.
    pub fn cells(&self) -> &[CellState] {
        match &self.lanes {
            Some(l) => self.view.get_or_init(|| l.cells(&self.model)),
            None => &self.cells,
        }
    }
    pub fn cell_output(&self, index: usize) -> CellOutput {
        match &self.lanes {
            Some(l) => {
                assert!(index < l.len(), "cell index {index} out of range");
                self.model.output(&l.cell(&self.model, index))
            }
            None => self.model.output(&self.cells[index]),
        }
    }
    fn n_cells(&self) -> usize {
        self.series * self.parallel
    }
    pub fn output(&self) -> PackOutput {
        self.out
    }
    pub fn ambient_c(&self) -> f64 {
        self.ambient.get()
    }
    /// Sets the ambient temperature (non-finite values are ignored).
    pub fn set_ambient_c(&mut self, t: f64) {
        self.ambient.set(t);
    }
    /// Nominal pack capacity (Ah): parallel × the cell's nominal capacity.
    pub fn nominal_capacity_ah(&self) -> f64 {
        self.parallel as f64 * self.model.params.nominal_capacity_ah
    }

    /// Steps `dt_s` at constant pack current (A, positive = discharge). A
    /// non-positive or non-finite `dt_s` changes nothing.
    pub fn step_current(&mut self, current_a: f64, dt_s: f64) -> PackOutput {
        if !(dt_s.is_finite() && dt_s > 0.0) {
            return self.out;
        }
        let (i, clamped) = clamp_current(current_a);
        let prop = self.prop.for_step(&self.model.params.thermal, dt_s);
        let amb = self.ambient.get();
        let extra = LimitFlags::current_clamped_if(clamped);
        let stats = match &mut self.lanes {
            Some(l) => {
                self.view = OnceLock::new();
                l.step(&self.model, &prop, i, dt_s, amb)
            }
            None => advance_all(
                &self.model,
                &mut self.cells,
                &mut self.prep,
                self.parallel,
                &prop,
                i,
                dt_s,
                amb,
            ),
        };
        self.finish(&stats, i, dt_s, extra)
    }

    /// Steps `dt_s` delivering `power_w` at the pack terminals (positive =
    /// discharge): the constant-power solve of [`super::power`] on the
    /// linearised pack (`Σ` of the groups' `e`, `r`), refined by Newton on
    /// trial steps. If no current can deliver the power, returns the error
    /// and leaves the pack unchanged.
    pub fn step_power(
        &mut self,
        power_w: f64,
        dt_s: f64,
    ) -> Result<PackOutput, PowerNotDeliverable> {
        if !power_step_needed(power_w, dt_s)? {
            return Ok(self.out);
        }
        let prop = self.prop.for_step(&self.model.params.thermal, dt_s);
        let amb = self.ambient.get();
        let source = self.linearised(dt_s);
        let start_a = source.current_for_power(power_w)?;
        let how = &Refinement::ECM;
        let i = if let Some(l) = &self.lanes {
            let mut trial = l.clone();
            refine_current(source, power_w, start_a, how, |i| {
                trial.clone_from(l);
                trial.step(&self.model, &prop, i, dt_s, amb).voltage_v
            })
        } else {
            let mut trial = self.cells.clone();
            let mut trial_prep = self.prep.clone();
            refine_current(source, power_w, start_a, how, |i| {
                trial.clone_from(&self.cells);
                let (cells, prep) = (&mut trial, &mut trial_prep);
                advance_all(&self.model, cells, prep, self.parallel, &prop, i, dt_s, amb).voltage_v
            })
        };
        Ok(self.step_current(i, dt_s))
    }

    /// The pack linearised over a step: `V ≈ e - r I`, the series sum of
    /// its parallel groups.
    fn linearised(&self, dt_s: f64) -> LinearSource {
        let mut pack = LinearSource::default();
        for group in self.cells().chunks(self.parallel) {
            let mut sources = ParallelSources::default();
            for c in group {
                sources.add(self.model.prepare(c, dt_s).source());
            }
            pack.add_series(sources.equivalent());
        }
        pack
    }

    /// The output for a step's statistics (energy counted), kept as the
    /// pack's present output.
    #[inline]
    fn finish(&mut self, stats: &PackStats, i: f64, dt_s: f64, extra: LimitFlags) -> PackOutput {
        let mut out = stats.output(self.n_cells(), i, extra);
        self.energy.record(&mut out, dt_s);
        self.out = out;
        out
    }
}

/// The statistics of cell states (index `s * parallel + p`).
fn gather(cells: &[CellState], series: usize, parallel: usize) -> PackStats {
    PackStats::gather(cells, series, parallel, MeanSum::OfValues, |c| {
        CellSample::from(c)
    })
}

/// Advances every cell one step for pack current `i` and gathers the pack
/// statistics on the way.
#[allow(clippy::too_many_arguments)]
fn advance_all(
    model: &CellModel,
    cells: &mut [CellState],
    prep: &mut [Prepared],
    parallel: usize,
    prop: &ThermalPropagator,
    i: f64,
    dt_s: f64,
    t_amb_c: f64,
) -> PackStats {
    with_n_rc!(model.n_rc(), N => advance_all_n::<N>(model, cells, prep, parallel, prop, i, dt_s, t_amb_c))
}

/// [`advance_all`] for cells with `N` RC pairs.
#[allow(clippy::too_many_arguments)]
#[inline]
fn advance_all_n<const N: usize>(
    model: &CellModel,
    cells: &mut [CellState],
    prep: &mut [Prepared],
    parallel: usize,
    prop: &ThermalPropagator,
    i: f64,
    dt_s: f64,
    t_amb_c: f64,
) -> PackStats {
    let mut stats = PackStats::new(MeanSum::OfValues);
    if parallel == 1 {
        // Two passes (integrate all, then look up all): shorter independent
        // loop bodies that the CPU can overlap across cells.
        for c in cells.iter_mut() {
            let p = model.prepare_n::<N>(c, dt_s);
            model.integrate_n::<N>(c, &p, prop, i, dt_s, t_amb_c);
        }
        for (s, c) in cells.iter_mut().enumerate() {
            model.finish_n::<N>(c);
            stats.add_cell(&CellSample::from(&*c));
            stats.add_series_position(s, c.voltage_v);
        }
        return stats;
    }
    let inv_p = 1.0 / parallel as f64;
    for (s, (group, gp)) in cells
        .chunks_mut(parallel)
        .zip(prep.chunks_mut(parallel))
        .enumerate()
    {
        let mut sources = ParallelSources::default();
        for (c, p) in group.iter().zip(gp.iter_mut()) {
            *p = model.prepare_n::<N>(c, dt_s);
            sources.add(p.source());
        }
        let v = sources.voltage_at(i);
        let mut vg = 0.0;
        for (c, p) in group.iter_mut().zip(gp.iter()) {
            let ik = p.source().current_at(v);
            model.integrate_n::<N>(c, p, prop, ik, dt_s, t_amb_c);
        }
        for c in group.iter_mut() {
            model.finish_n::<N>(c);
            stats.add_cell(&CellSample::from(&*c));
            vg += c.voltage_v;
        }
        stats.add_series_position(s, vg * inv_p);
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::battery::params::{
        parse_cell_params, tests_support::minimal_with_entropic_and_ageing, tests_support::MINIMAL,
        PackParams, Spread, MAX_RC,
    };
    use std::path::Path;

    fn pack_params(series: usize, parallel: usize) -> PackParams {
        PackParams {
            name: "t".into(),
            cell: parse_cell_params(Path::new("t.toml"), MINIMAL).unwrap(),
            series,
            parallel,
            spread: Spread {
                capacity_rel_sd: 0.02,
                resistance_rel_sd: 0.05,
                initial_soc_sd: 0.01,
            },
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
    }

    /// The structure-of-arrays engine against the scalar one, step by step:
    /// the same results to rounding (1p with ageing events, parallel split,
    /// power mode, clamped current, long steps).
    fn engines_agree(p: &PackParams, soc0: f64) {
        assert!(CellModel::new(&p.cell).lanes_supported());
        let mut a = Pack::build(p, soc0, 25.0, 11, true);
        let mut b = Pack::build(p, soc0, 25.0, 11, false);
        assert!(a.lanes.is_some() && b.lanes.is_none());
        let cap = a.nominal_capacity_ah();
        for k in 0..4000 {
            let (oa, ob) = match k % 500 {
                _ if k == 3990 => (a.step_current(1e9, 1.0), b.step_current(1e9, 1.0)),
                0..=199 => (
                    a.step_current(0.5 * cap, 1.0),
                    b.step_current(0.5 * cap, 1.0),
                ),
                200..=249 => (a.step_current(0.0, 10.0), b.step_current(0.0, 10.0)),
                250..=449 => (
                    a.step_current(-0.4 * cap, 2.0),
                    b.step_current(-0.4 * cap, 2.0),
                ),
                _ => {
                    let pw = if k % 2 == 0 { 20.0 } else { -15.0 } * cap;
                    match (a.step_power(pw, 1.0), b.step_power(pw, 1.0)) {
                        (Ok(x), Ok(y)) => (x, y),
                        (Err(x), Err(y)) if x == y => continue,
                        (x, y) => panic!("{k}: {x:?} {y:?}"),
                    }
                }
            };
            let t = 1e-9;
            assert!(close(oa.voltage_v, ob.voltage_v, t), "{k}: {oa:?} {ob:?}");
            assert!(close(oa.current_a, ob.current_a, t), "{k}");
            assert!(close(oa.soc_mean, ob.soc_mean, t) && close(oa.soc_min, ob.soc_min, t));
            assert!(close(oa.soc_max, ob.soc_max, t), "{k}");
            assert!(close(oa.temperature_max_c, ob.temperature_max_c, t), "{k}");
            assert!(close(oa.temperature_min_c, ob.temperature_min_c, t), "{k}");
            assert!(
                close(oa.temperature_mean_c, ob.temperature_mean_c, t),
                "{k}"
            );
            assert!(
                close(oa.cell_voltage_min_v, ob.cell_voltage_min_v, t),
                "{k}"
            );
            assert!(
                close(oa.cell_voltage_max_v, ob.cell_voltage_max_v, t),
                "{k}"
            );
            assert!(close(oa.heat_w, ob.heat_w, 1e-7), "{k}: {oa:?} {ob:?}");
            assert!(
                close(oa.soh, ob.soh, t) && close(oa.soh_min, ob.soh_min, t),
                "{k}"
            );
            assert!(close(
                oa.energy_throughput_wh(),
                ob.energy_throughput_wh(),
                t
            ));
            assert_eq!(oa.limits, ob.limits, "{k}");
            if k % 97 == 0 {
                for (x, y) in a.cells().iter().zip(b.cells()) {
                    assert!(close(x.voltage_v, y.voltage_v, t), "{k}: {x:?} {y:?}");
                    assert!(close(x.soc, y.soc, t) && close(x.t_jig_c, y.t_jig_c, t));
                    assert!(close(x.r0, y.r0, t) && close(x.docv, y.docv, 1e-7));
                    for n in 0..MAX_RC {
                        assert!(close(x.v_rc[n], y.v_rc[n], 1e-7), "{k}: {x:?} {y:?}");
                        assert!(close(x.r[n], y.r[n], t) && close(x.c[n], y.c[n], t));
                    }
                    assert!(close(x.dudt, y.dudt, t) && close(x.current_a, y.current_a, t));
                    assert!(close(x.ageing.efc, y.ageing.efc, t));
                    assert!(close(x.ageing.capacity_fade(), y.ageing.capacity_fade(), t));
                    assert!(close(
                        x.ageing.resistance_growth(),
                        y.ageing.resistance_growth(),
                        t
                    ));
                    assert_eq!(x.limits, y.limits);
                }
                for c in [0, a.series() * a.parallel() - 1] {
                    assert_eq!(a.cell_output(c), a.model.output(&a.cells()[c]));
                }
            }
        }
    }

    #[test]
    fn lanes_engine_matches_scalar_engine_lfp_16s() {
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params/lfp_home_16s.toml");
        let p = crate::battery::load_pack_params(&path).unwrap();
        engines_agree(&p, 0.6);
    }

    #[test]
    fn lanes_engine_matches_scalar_engine_parallel_ageing() {
        let mut p = pack_params(3, 5);
        let text = minimal_with_entropic_and_ageing();
        p.cell = parse_cell_params(Path::new("t.toml"), &text).unwrap();
        engines_agree(&p, 0.5);
        let nmc = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params/nmc_pack.toml");
        let mut p = crate::battery::load_pack_params(&nmc).unwrap();
        p.parallel = 3;
        engines_agree(&p, 0.7);
    }

    #[test]
    fn spread_is_reproducible_and_seed_dependent() {
        let p = pack_params(4, 3);
        let a = Pack::new(&p, 0.5, 25.0, 42);
        let b = Pack::new(&p, 0.5, 25.0, 42);
        let c = Pack::new(&p, 0.5, 25.0, 43);
        assert_eq!(a.cells(), b.cells());
        assert_ne!(a.cells(), c.cells());
        let o = a.output();
        assert!(o.cell_voltage_min_v < o.cell_voltage_max_v);
    }

    #[test]
    fn parallel_split_conserves_current_and_favours_low_resistance() {
        let mut p = pack_params(2, 3);
        p.spread = Spread {
            capacity_rel_sd: 0.0,
            resistance_rel_sd: 0.1,
            initial_soc_sd: 0.0,
        };
        let mut pack = Pack::new(&p, 0.5, 25.0, 7);
        let o = pack.step_current(30.0, 1.0);
        for g in 0..2 {
            let cells = &pack.cells()[g * 3..g * 3 + 3];
            let sum: f64 = cells.iter().map(|c| c.current_a).sum();
            assert!((sum - 30.0).abs() < 1e-9, "{sum}");
            let lo_r = cells
                .iter()
                .min_by(|a, b| a.r0.partial_cmp(&b.r0).unwrap())
                .unwrap();
            let hi_r = cells
                .iter()
                .max_by(|a, b| a.r0.partial_cmp(&b.r0).unwrap())
                .unwrap();
            assert!(lo_r.current_a > hi_r.current_a);
            // Same terminal voltage within a group (to the linearisation).
            let vs: Vec<f64> = cells.iter().map(|c| c.voltage_v).collect();
            let spread = vs.iter().cloned().fold(f64::MIN, f64::max)
                - vs.iter().cloned().fold(f64::MAX, f64::min);
            assert!(spread < 1e-4, "{vs:?}");
        }
        assert!(o.voltage_v > 2.0 * 2.8 && o.voltage_v < 2.0 * 3.6);
    }

    #[test]
    fn pack_discharge_energy_and_flags() {
        let p = pack_params(16, 1);
        let mut pack = Pack::new(&p, 1.0, 25.0, 1);
        let mut o = pack.output();
        let mut steps = 0;
        while !o.limits.contains(LimitFlags::UNDER_VOLTAGE) && steps < 10_000 {
            o = pack.step_current(10.0, 10.0);
            steps += 1;
            assert!(o.soc_min <= o.soc_mean && o.soc_mean <= o.soc_max);
            assert!(
                o.temperature_min_c <= o.temperature_mean_c
                    && o.temperature_mean_c <= o.temperature_max_c
            );
        }
        assert!(o.limits.contains(LimitFlags::UNDER_VOLTAGE));
        // The weakest cell hits the cut-off first while the mean SOC is above 0.
        assert!(o.soc_mean > o.soc_min);
        // ~16 * 3.3 V * 10 Ah
        assert!(
            o.energy_discharged_wh > 400.0 && o.energy_discharged_wh < 560.0,
            "{}",
            o.energy_discharged_wh
        );
    }

    #[test]
    fn pack_power_mode() {
        let p = pack_params(4, 2);
        let mut pack = Pack::new(&p, 0.5, 25.0, 3);
        let o = pack.step_power(500.0, 1.0).unwrap();
        assert!((o.power_w - 500.0).abs() < 1e-6, "{o:?}");
        let o = pack.step_power(-500.0, 1.0).unwrap();
        assert!((o.power_w + 500.0).abs() < 1e-6, "{o:?}");
        let before = pack.cells().to_vec();
        assert!(pack.step_power(1e9, 1.0).is_err());
        assert_eq!(pack.cells(), &before[..]);
    }

    #[test]
    fn single_cell_pack_matches_ecm_cell() {
        let mut p = pack_params(1, 1);
        p.spread = Spread::default();
        let mut pack = Pack::new(&p, 0.7, 25.0, 0);
        let mut cell = crate::battery::EcmCell::new(&p.cell, 0.7, 25.0);
        for k in 0..500 {
            let i = if k % 100 < 60 { 12.0 } else { -7.0 };
            let a = pack.step_current(i, 2.0);
            let b = cell.step_current(i, 2.0);
            assert!((a.voltage_v - b.voltage_v).abs() < 1e-12);
            assert!((a.soc_mean - b.soc).abs() < 1e-12);
            assert!((a.temperature_max_c - b.temperature_c).abs() < 1e-12);
        }
    }

    #[test]
    fn lfp_home_pack_delivers_about_its_rated_energy() {
        let path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("params/lfp_home_16s.toml");
        let p = crate::battery::load_pack_params(&path).unwrap();
        let mut pack = Pack::new(&p, 1.0, 25.0, 2026);
        let start = pack.output();
        assert!(start.cell_voltage_max_v > start.cell_voltage_min_v);
        let mut o = start;
        // 0.5C (50 A) until the first series position reaches 2.5 V.
        while !o.limits.contains(LimitFlags::UNDER_VOLTAGE) {
            o = pack.step_current(50.0, 10.0);
        }
        let kwh = o.energy_discharged_wh / 1000.0;
        assert!(kwh > 4.5 && kwh < 5.4, "{kwh} kWh");
        // The spread shows: the weakest cell ends the discharge before the rest.
        assert!(o.soc_max - o.soc_min > 0.005, "{o:?}");
        assert!(o.cell_voltage_max_v - o.cell_voltage_min_v > 0.05);
        assert!(o.temperature_max_c > 25.0);
    }
}
