//! Structure-of-arrays pack engine: the cells of a [`Pack`](super::Pack)
//! stored in blocks of [`W`] lanes (every per-cell quantity an array of `W`),
//! so that the per-cell arithmetic of a step runs as short fixed-length loops
//! the compiler vectorises across cells (SSE2 on the baseline target).
//!
//! The equations and their order are exactly those of
//! [`CellModel`]'s scalar step (`prepare` → `integrate` → `finish`); only
//! the evaluation is reorganised:
//!
//! - **Bracket cache.** Each lane keeps the grid cell (SOC × T segment) its
//!   state is in and that cell's bilinear coefficients for every tabulated
//!   quantity ([`MultiTable::bilinear_coeffs`]), so a lookup is
//!   `(a + b·fs) + (c + d·fs)·ft` with no search and no gathers. Only lanes
//!   whose SOC or temperature left their segment are re-located (scalar).
//!   The result is the same bilinear interpolant (to rounding).
//! - **Ageing** accumulates the per-step sums lane-wise; a step that closes
//!   a half-cycle or reaches the calendar update interval on a lane runs the
//!   exact scalar [`AgeingState::record`] for that lane instead.
//! - **Limit flags** of the pack are derived from the min/max statistics
//!   (the OR of the per-cell flags); per-cell flags are computed when a
//!   cell's state is read.
//!
//! Used when the tables have no current axis and the entropic table (if any)
//! is over SOC/T; otherwise the pack steps its `CellState`s directly.

// The lane loops index several arrays with the lane number on purpose
// (that is what vectorises); `!(x < c)` is used where NaN must take a branch.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::ageing::AgeingState;
use super::cell::{decay_exp, decay_series, CellModel, CellState, LimitFlags};
use super::pack_stats::{MeanSum, PackStats};
use super::params::MAX_RC;
use super::power::{LinearSource, ParallelSources};
use super::thermal::ThermalPropagator;
use crate::interp::MultiTable;

/// Lanes per block.
pub(crate) const W: usize = 4;
const KMAX: usize = 3 + 2 * MAX_RC + 1;
type L = [f64; W];

const Q_OCV: usize = 0;
const Q_R0: usize = 1;
const Q_DOCV: usize = 2;
const Q_RC: usize = 3;

/// `W` cells, structure of arrays.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Block {
    soc: L,
    v: [L; MAX_RC],
    tc: L,
    tj: L,
    cur: L,
    volt: L,
    heat: L,
    ocv: L,
    r0: L,
    r: [L; MAX_RC],
    c: [L; MAX_RC],
    dudt: L,
    inv_cap: L,
    r_mult: L,
    inv_r_mult: L,
    soh: L,
    // Ageing accumulators (mirrors of the `AgeingState` fields).
    dir: L,
    hc_ah: L,
    hc_time: L,
    hc_temp_ah: L,
    efc: L,
    acc_t: L,
    acc_soc: L,
    acc_temp: L,
    // Bracket cache: fractions are `(clamp(x) - lo) * iw`.
    seg_s: [u32; W],
    seg_t: [u32; W],
    lo_s: L,
    iw_s: L,
    lo_t: L,
    iw_t: L,
    /// Fractions of the last lookup (dOCV/dSOC is evaluated from them only
    /// when needed: parallel split, linearisation, reading a cell).
    fs: L,
    ft: L,
    coef: [[L; 4]; KMAX],
    // Decay factors of the step being taken.
    om: [L; MAX_RC],
    g: [L; MAX_RC],
}

impl Block {
    /// Loads lane `j`'s ageing accumulators from `a`.
    fn load_ageing(&mut self, j: usize, a: &AgeingState) {
        self.dir[j] = a.dir as f64;
        self.hc_ah[j] = a.hc_ah;
        self.hc_time[j] = a.hc_time_s;
        self.hc_temp_ah[j] = a.hc_temp_ah;
        self.efc[j] = a.efc;
        self.acc_t[j] = a.acc_t_s;
        self.acc_soc[j] = a.acc_soc_s;
        self.acc_temp[j] = a.acc_temp_s;
    }

    /// Stores lane `j`'s ageing accumulators into `a`.
    fn store_ageing(&self, j: usize, a: &mut AgeingState) {
        a.dir = self.dir[j] as i8;
        a.hc_ah = self.hc_ah[j];
        a.hc_time_s = self.hc_time[j];
        a.hc_temp_ah = self.hc_temp_ah[j];
        a.efc = self.efc[j];
        a.acc_t_s = self.acc_t[j];
        a.acc_soc_s = self.acc_soc[j];
        a.acc_temp_s = self.acc_temp[j];
    }

    /// dOCV/dSOC of lane `j` at its last lookup.
    #[inline]
    fn docv(&self, j: usize) -> f64 {
        let c = &self.coef[Q_DOCV];
        let (fs, ft) = (self.fs[j], self.ft[j]);
        (c[0][j] + c[1][j] * fs) + (c[2][j] + c[3][j] * fs) * ft
    }
}

/// All cells of a pack.
#[derive(Debug)]
pub(crate) struct Lanes {
    n: usize,
    parallel: usize,
    blocks: Vec<Block>,
    ages: Vec<AgeingState>,
    capacity_scale: Vec<f64>,
    resistance_scale: Vec<f64>,
    /// Per-cell scratch for the parallel split: the linearised cells.
    split: Vec<LinearSource>,
}

impl Clone for Lanes {
    fn clone(&self) -> Self {
        Lanes {
            n: self.n,
            parallel: self.parallel,
            blocks: self.blocks.clone(),
            ages: self.ages.clone(),
            capacity_scale: self.capacity_scale.clone(),
            resistance_scale: self.resistance_scale.clone(),
            split: self.split.clone(),
        }
    }
    fn clone_from(&mut self, s: &Self) {
        self.n = s.n;
        self.parallel = s.parallel;
        self.blocks.clone_from(&s.blocks);
        self.ages.clone_from(&s.ages);
        self.capacity_scale.clone_from(&s.capacity_scale);
        self.resistance_scale.clone_from(&s.resistance_scale);
        self.split.clone_from(&s.split);
    }
}

#[inline(always)]
fn at(k: usize) -> (usize, usize) {
    (k / W, k % W)
}

impl Lanes {
    /// Takes the cells over (padding the last block with copies of cell 0,
    /// which are stepped but never reported).
    pub fn new(model: &CellModel, cells: &[CellState], parallel: usize) -> Self {
        let n = cells.len();
        let nb = n.div_ceil(W);
        let mut l = Lanes {
            n,
            parallel,
            blocks: vec![Block::default(); nb],
            ages: Vec::with_capacity(nb * W),
            capacity_scale: Vec::with_capacity(nb * W),
            resistance_scale: Vec::with_capacity(nb * W),
            split: vec![LinearSource::default(); nb * W],
        };
        for k in 0..nb * W {
            let c = if k < n { &cells[k] } else { &cells[0] };
            let (b, j) = at(k);
            let bl = &mut l.blocks[b];
            bl.soc[j] = c.soc;
            for m in 0..MAX_RC {
                bl.v[m][j] = c.v_rc[m];
                bl.r[m][j] = c.r[m];
                bl.c[m][j] = c.c[m];
            }
            bl.tc[j] = c.t_cell_c;
            bl.tj[j] = c.t_jig_c;
            bl.cur[j] = c.current_a;
            bl.volt[j] = c.voltage_v;
            bl.heat[j] = c.heat_w;
            bl.ocv[j] = c.ocv;
            bl.r0[j] = c.r0;
            bl.dudt[j] = c.dudt;
            bl.inv_cap[j] = c.inv_capacity_as;
            bl.r_mult[j] = c.r_mult;
            bl.inv_r_mult[j] = c.inv_r_mult;
            bl.soh[j] = 1.0 - c.ageing.capacity_fade();
            bl.load_ageing(j, &c.ageing);
            l.ages.push(c.ageing.clone());
            l.capacity_scale.push(c.capacity_scale);
            l.resistance_scale.push(c.resistance_scale);
            (bl.fs[j], bl.ft[j]) = relocate(model.table(), bl, j);
        }
        l
    }

    pub fn len(&self) -> usize {
        self.n
    }

    /// The full state of cell `k` (as the scalar model would hold it).
    pub fn cell(&self, model: &CellModel, k: usize) -> CellState {
        let (b, j) = at(k);
        let bl = &self.blocks[b];
        let mut ageing = self.ages[k].clone();
        bl.store_ageing(j, &mut ageing);
        let mut st = CellState {
            soc: bl.soc[j],
            v_rc: std::array::from_fn(|m| bl.v[m][j]),
            t_cell_c: bl.tc[j],
            t_jig_c: bl.tj[j],
            current_a: bl.cur[j],
            voltage_v: bl.volt[j],
            heat_w: bl.heat[j],
            ocv: bl.ocv[j],
            r0: bl.r0[j],
            docv: bl.docv(j),
            r: std::array::from_fn(|m| bl.r[m][j]),
            c: std::array::from_fn(|m| bl.c[m][j]),
            dudt: bl.dudt[j],
            capacity_scale: self.capacity_scale[k],
            resistance_scale: self.resistance_scale[k],
            inv_capacity_as: bl.inv_cap[j],
            r_mult: bl.r_mult[j],
            inv_r_mult: bl.inv_r_mult[j],
            ageing,
            limits: LimitFlags::NONE,
        };
        st.limits = model.flags(&st);
        st
    }

    /// All cells' states.
    pub fn cells(&self, model: &CellModel) -> Vec<CellState> {
        (0..self.n).map(|k| self.cell(model, k)).collect()
    }

    /// Advances every cell by `dt_s` at pack current `i` (already clamped).
    pub fn step(
        &mut self,
        model: &CellModel,
        prop: &ThermalPropagator,
        i: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) -> PackStats {
        let ent = model.entropic_in_table();
        let age = model.params.ageing.is_some();
        super::cell::with_n_rc!(model.n_rc(), N => match (ent.is_some(), age) {
            (true, true) => self.step_n::<N, true, true>(model, prop, i, dt_s, t_amb_c),
            (true, false) => self.step_n::<N, true, false>(model, prop, i, dt_s, t_amb_c),
            (false, true) => self.step_n::<N, false, true>(model, prop, i, dt_s, t_amb_c),
            (false, false) => self.step_n::<N, false, false>(model, prop, i, dt_s, t_amb_c),
        })
    }

    #[inline(never)]
    fn step_n<const N: usize, const ENT: bool, const AGE: bool>(
        &mut self,
        model: &CellModel,
        prop: &ThermalPropagator,
        i: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) -> PackStats {
        let table = model.table();
        let q_ent = model.entropic_in_table().unwrap_or(0);
        let (s_first, s_last) = (table.x.first(), table.x.last());
        let (t_first, t_last) = (table.y.first(), table.y.last());
        let soc_covered = s_first <= 0.0 && s_last >= 1.0;
        // Decay factors for every lane.
        for bl in self.blocks.iter_mut() {
            decay_block::<N>(bl, dt_s);
        }
        // Currents.
        if self.parallel == 1 {
            for bl in self.blocks.iter_mut() {
                bl.cur = [i; W];
            }
        } else {
            self.split_current::<N>(i, dt_s);
        }
        let nominal = model.params.nominal_capacity_ah;
        let interval = model
            .params
            .ageing
            .as_ref()
            .map_or(f64::INFINITY, |a| a.update_interval_s);
        let n = self.n;
        let p1 = self.parallel == 1;
        let age_1 = AgeIn::new(&[i; W], dt_s, nominal);
        let mut acc = LaneAcc::new();
        let (ages, cq, cr) = (&mut self.ages, &self.capacity_scale, &self.resistance_scale);
        for (b, bl) in self.blocks.iter_mut().enumerate() {
            integrate_block::<N>(bl, prop, dt_s, t_amb_c);
            if AGE {
                // With one cell per series position all lanes carry the
                // pack current: the inputs are the same for every block.
                let ev = if p1 {
                    ageing_block(bl, dt_s, &age_1, interval)
                } else {
                    ageing_block(bl, dt_s, &AgeIn::new(&bl.cur, dt_s, nominal), interval)
                };
                if ev != 0 {
                    for j in 0..W {
                        if ev & (1 << j) != 0 {
                            let k = b * W + j;
                            ageing_event(model, bl, &mut ages[k], cq[k], cr[k], j, dt_s);
                        }
                    }
                }
            }
            // Brackets: the fractions, re-locating lanes that left theirs.
            let mut fs = [0.0; W];
            let mut ft = [0.0; W];
            let inside = |f: f64| (0.0..=1.0).contains(&f);
            let mut out = false;
            for j in 0..W {
                let soc = bl.soc[j];
                // SOC is kept in [0, 1]: no clamp needed if the axis covers it.
                let soc = if soc_covered {
                    soc
                } else {
                    clamp(soc, s_first, s_last)
                };
                fs[j] = (soc - bl.lo_s[j]) * bl.iw_s[j];
                ft[j] = (clamp(bl.tc[j], t_first, t_last) - bl.lo_t[j]) * bl.iw_t[j];
                out |= !(inside(fs[j]) & inside(ft[j]));
            }
            if out {
                for j in 0..W {
                    if !(inside(fs[j]) & inside(ft[j])) {
                        (fs[j], ft[j]) = relocate(table, bl, j);
                    }
                }
            }
            eval_block::<N, ENT>(bl, &fs, &ft, q_ent);
            if (b + 1) * W <= n {
                acc.block(bl, [true; W]);
            } else {
                acc.block(bl, std::array::from_fn(|j| b * W + j < n));
            }
        }
        self.stats(model, &acc)
    }

    /// The implicit parallel split (see the `pack` module docs): per-cell
    /// linearisation, group voltage, per-cell currents.
    fn split_current<const N: usize>(&mut self, i: f64, dt_s: f64) {
        for (b, bl) in self.blocks.iter().enumerate() {
            for j in 0..W {
                let mut e = bl.ocv[j];
                let mut r = bl.r0[j] + bl.docv(j) * dt_s * bl.inv_cap[j];
                for m in 0..N {
                    e += bl.v[m][j] * (1.0 - bl.om[m][j]);
                    r += bl.r[m][j] * bl.om[m][j];
                }
                self.split[b * W + j] = LinearSource { e_v: e, r_ohm: r };
            }
        }
        let p = self.parallel;
        for s in 0..self.n / p {
            let group = &self.split[s * p..(s + 1) * p];
            let mut sources = ParallelSources::default();
            for &source in group {
                sources.add(source);
            }
            let v = sources.voltage_at(i);
            for k in s * p..(s + 1) * p {
                let (b, j) = at(k);
                self.blocks[b].cur[j] = self.split[k].current_at(v);
            }
        }
        for k in self.n..self.blocks.len() * W {
            let (b, j) = at(k);
            self.blocks[b].cur[j] = 0.0;
        }
    }

    /// The pack statistics from the lane-wise sums and extremes.
    fn stats(&self, model: &CellModel, a: &LaneAcc) -> PackStats {
        let inf = f64::INFINITY;
        let sum = |a: L| a.iter().sum::<f64>();
        let min = |a: L| a.iter().copied().fold(inf, f64::min);
        let max = |a: L| a.iter().copied().fold(-inf, f64::max);
        let mut st = PackStats::new(MeanSum::OfValues);
        st.soc_sum = sum(a.soc_sum);
        st.soc_min = min(a.soc_min);
        st.soc_max = max(a.soc_max);
        st.temperature_sum_c = sum(a.t_sum);
        st.temperature_min_c = min(a.t_min);
        st.temperature_max_c = max(a.t_max);
        st.soh_sum = sum(a.soh_sum);
        st.soh_min = min(a.soh_min);
        st.heat_w = sum(a.heat);
        // Series positions, in order (first index wins ties).
        let p = self.parallel;
        if p == 1 {
            // Each cell is a series position: the extremes are the cells'.
            st.voltage_v = sum(a.v_sum);
            st.cell_voltage_min_v = min(a.v_min);
            st.cell_voltage_max_v = max(a.v_max);
            let first = |x: f64| {
                self.blocks
                    .iter()
                    .flat_map(|bl| bl.volt.iter())
                    .take(self.n)
                    .position(|&v| v == x)
                    .unwrap_or(0)
            };
            st.cell_voltage_min_index = first(st.cell_voltage_min_v);
            st.cell_voltage_max_index = first(st.cell_voltage_max_v);
        }
        let inv_p = 1.0 / p as f64;
        for s in (0..self.n / p).filter(|_| p > 1) {
            let mut vg = 0.0;
            for k in s * p..(s + 1) * p {
                let (b, j) = at(k);
                vg += self.blocks[b].volt[j];
            }
            st.add_series_position(s, vg * inv_p);
        }
        // The OR of the cells' limit flags, from the extremes.
        let pr = &model.params;
        let mut f = 0u8;
        f |= (min(a.v_min) < pr.voltage_min_v) as u8;
        f |= ((max(a.v_max) > pr.voltage_max_v) as u8) << 1;
        f |= ((st.soc_min <= 0.0) as u8) << 2;
        f |= ((st.soc_max >= 1.0) as u8) << 3;
        f |= ((st.temperature_max_c > pr.temperature_max_c) as u8) << 4;
        f |= ((st.temperature_min_c < pr.temperature_min_c) as u8) << 5;
        st.limits = LimitFlags(f);
        st
    }
}

/// Runs the exact scalar ageing step for lane `j` (cell `a`).
#[cold]
#[inline(never)]
fn ageing_event(
    model: &CellModel,
    bl: &mut Block,
    a: &mut AgeingState,
    capacity_scale: f64,
    resistance_scale: f64,
    j: usize,
    dt_s: f64,
) {
    let ap = model.params.ageing.as_ref().expect("ageing");
    bl.store_ageing(j, a);
    let changed = a.record(
        ap,
        model.params.nominal_capacity_ah,
        bl.cur[j],
        bl.soc[j],
        bl.tc[j],
        dt_s,
    );
    bl.load_ageing(j, a);
    if changed {
        // As `CellModel::refresh_multipliers`.
        let fade = a.capacity_fade();
        let ah = model.params.capacity_ah * capacity_scale * (1.0 - fade);
        bl.inv_cap[j] = 1.0 / (3600.0 * ah);
        bl.r_mult[j] = resistance_scale * (1.0 + a.resistance_growth());
        bl.inv_r_mult[j] = 1.0 / bl.r_mult[j];
        bl.soh[j] = 1.0 - fade;
    }
}

/// Lane-wise running statistics (sums, extremes) over the blocks.
struct LaneAcc {
    soc_sum: L,
    soc_min: L,
    soc_max: L,
    t_sum: L,
    t_min: L,
    t_max: L,
    soh_sum: L,
    soh_min: L,
    heat: L,
    v_sum: L,
    v_min: L,
    v_max: L,
}

impl LaneAcc {
    fn new() -> Self {
        let inf = f64::INFINITY;
        LaneAcc {
            soc_sum: [0.0; W],
            soc_min: [inf; W],
            soc_max: [-inf; W],
            t_sum: [0.0; W],
            t_min: [inf; W],
            t_max: [-inf; W],
            soh_sum: [0.0; W],
            soh_min: [inf; W],
            heat: [0.0; W],
            v_sum: [0.0; W],
            v_min: [inf; W],
            v_max: [-inf; W],
        }
    }

    /// Adds the lanes of `bl` marked `valid`. Extremes use `<`/`>` selects
    /// (NaN never replaces a value, as with `f64::min`/`max`).
    #[inline(always)]
    fn block(&mut self, bl: &Block, valid: [bool; W]) {
        let inf = f64::INFINITY;
        let lo = |m: f64, x: f64| if x < m { x } else { m };
        let hi = |m: f64, x: f64| if x > m { x } else { m };
        for j in 0..W {
            let ok = valid[j];
            let z = |x: f64| if ok { x } else { 0.0 };
            let up = |x: f64| if ok { x } else { inf };
            let dn = |x: f64| if ok { x } else { -inf };
            self.soc_sum[j] += z(bl.soc[j]);
            self.soc_min[j] = lo(self.soc_min[j], up(bl.soc[j]));
            self.soc_max[j] = hi(self.soc_max[j], dn(bl.soc[j]));
            self.t_sum[j] += z(bl.tc[j]);
            self.t_min[j] = lo(self.t_min[j], up(bl.tc[j]));
            self.t_max[j] = hi(self.t_max[j], dn(bl.tc[j]));
            self.soh_sum[j] += z(bl.soh[j]);
            self.soh_min[j] = lo(self.soh_min[j], up(bl.soh[j]));
            self.heat[j] += z(bl.heat[j]);
            self.v_sum[j] += z(bl.volt[j]);
            self.v_min[j] = lo(self.v_min[j], up(bl.volt[j]));
            self.v_max[j] = hi(self.v_max[j], dn(bl.volt[j]));
        }
    }
}

/// Locates lane `j` on the table and loads its bracket; returns the
/// fractions at its present state.
#[inline(never)]
fn relocate(table: &MultiTable, bl: &mut Block, j: usize) -> (f64, f64) {
    let ls = table.x.locate(bl.soc[j]);
    let lt = table.y.locate(bl.tc[j]);
    let span = |pts: &[f64], i: usize| {
        if pts.len() > 1 {
            (pts[i], 1.0 / (pts[i + 1] - pts[i]))
        } else {
            (pts[0], 0.0)
        }
    };
    (bl.lo_s[j], bl.iw_s[j]) = span(table.x.points(), ls.i);
    (bl.lo_t[j], bl.iw_t[j]) = span(table.y.points(), lt.i);
    bl.seg_s[j] = ls.i as u32;
    bl.seg_t[j] = lt.i as u32;
    let mut c = [[0.0; 4]; KMAX];
    table.bilinear_coeffs(ls.i, lt.i, 0, &mut c);
    for (q, cq) in c.iter().enumerate().take(table.quantities()) {
        for m in 0..4 {
            bl.coef[q][m][j] = cq[m];
        }
    }
    (ls.frac, lt.frac)
}

/// RC decay factors `(1 - e^{-x}, (1 - e^{-x})/x)`, `x = dt/(R C)`, for
/// every lane (the series form, patched by `exp_m1` where `x ≥ 1/8`).
#[inline(always)]
fn decay_block<const N: usize>(bl: &mut Block, dt_s: f64) {
    for m in 0..N {
        let mut x = [0.0; W];
        let mut big = false;
        for j in 0..W {
            x[j] = dt_s / (bl.r[m][j] * bl.c[m][j]);
            big |= !(x[j] < 0.125);
            let (om, g) = decay_series(x[j]);
            bl.om[m][j] = om;
            bl.g[m][j] = g;
        }
        if big {
            for j in 0..W {
                if !(x[j] < 0.125) {
                    (bl.om[m][j], bl.g[m][j]) = decay_exp(x[j]);
                }
            }
        }
    }
}

/// RC states, heat, temperatures and SOC over the step (as
/// `CellModel::integrate`).
#[inline(always)]
fn integrate_block<const N: usize>(
    bl: &mut Block,
    prop: &ThermalPropagator,
    dt_s: f64,
    t_amb_c: f64,
) {
    for j in 0..W {
        let i = bl.cur[j];
        let mut q = i * i * bl.r0[j];
        for m in 0..N {
            let v_inf = -i * bl.r[m][j];
            let d = bl.v[m][j] - v_inf;
            let v_mean = v_inf + d * bl.g[m][j];
            q -= i * v_mean;
            bl.v[m][j] = v_inf + d * (1.0 - bl.om[m][j]);
        }
        q -= i * (bl.tc[j] + 273.15) * bl.dudt[j];
        let (tc, tj) = prop.advance(bl.tc[j], bl.tj[j], t_amb_c, q);
        bl.tc[j] = tc;
        bl.tj[j] = tj;
        bl.soc[j] = (bl.soc[j] - i * dt_s * bl.inv_cap[j]).clamp(0.0, 1.0);
        bl.heat[j] = q;
    }
}

/// Per-step ageing inputs of a block's lanes (as `AgeingState::record`
/// computes them): charge throughput (Ah), its equivalent full cycles, the
/// current's direction (−1, 0, 1) and the step length where the current is
/// non-zero (else 0).
struct AgeIn {
    ah: L,
    de: L,
    dir: L,
    dtn: L,
}

impl AgeIn {
    #[inline(always)]
    fn new(i: &L, dt_s: f64, nominal_ah: f64) -> Self {
        let ah: L = std::array::from_fn(|j| i[j].abs() * dt_s / 3600.0);
        AgeIn {
            ah,
            de: std::array::from_fn(|j| ah[j] / (2.0 * nominal_ah)),
            dir: std::array::from_fn(|j| sign(i[j])),
            dtn: std::array::from_fn(|j| if i[j] != 0.0 { dt_s } else { 0.0 }),
        }
    }
}

/// `x` limited to `[lo, hi]` (`lo <= hi`; NaN stays NaN).
#[inline(always)]
fn clamp(x: f64, lo: f64, hi: f64) -> f64 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

#[inline(always)]
fn sign(i: f64) -> f64 {
    if i > 0.0 {
        1.0
    } else if i < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// The per-step ageing sums of `AgeingState::record`, when no lane of the
/// block has an event (a current reversal or the calendar update). Returns
/// 0 then, else a mask of all lanes (left untouched for the scalar record).
#[inline(always)]
fn ageing_block(bl: &mut Block, dt_s: f64, a: &AgeIn, interval_s: f64) -> u32 {
    let mut ev = false;
    for j in 0..W {
        let nz = a.dir[j] != 0.0;
        ev |= (nz & (a.dir[j] != bl.dir[j])) | (bl.acc_t[j] + dt_s >= interval_s);
    }
    if ev {
        return (1 << W) - 1;
    }
    // Adding the zeros of a rest step leaves the half-cycle sums unchanged.
    for j in 0..W {
        let t = bl.tc[j];
        bl.hc_ah[j] += a.ah[j];
        bl.hc_time[j] += a.dtn[j];
        bl.hc_temp_ah[j] += if a.dir[j] != 0.0 { t * a.ah[j] } else { 0.0 };
        bl.efc[j] += a.de[j];
        bl.acc_t[j] += dt_s;
        bl.acc_soc[j] += bl.soc[j] * dt_s;
        bl.acc_temp[j] += t * dt_s;
    }
    0
}

/// Parameters at the new state from the lanes' brackets, and the terminal
/// voltage (as `CellModel::finish`).
#[inline(always)]
fn eval_block<const N: usize, const ENT: bool>(bl: &mut Block, fs: &L, ft: &L, q_ent: usize) {
    let ev = |bl: &Block, q: usize| -> L {
        let c = &bl.coef[q];
        let mut o = [0.0; W];
        for j in 0..W {
            o[j] = (c[0][j] + c[1][j] * fs[j]) + (c[2][j] + c[3][j] * fs[j]) * ft[j];
        }
        o
    };
    let ocv = ev(bl, Q_OCV);
    let r0 = ev(bl, Q_R0);
    bl.fs = *fs;
    bl.ft = *ft;
    let mut v = [0.0; W];
    for j in 0..W {
        bl.ocv[j] = ocv[j];
        bl.r0[j] = r0[j] * bl.r_mult[j];
        v[j] = ocv[j] - bl.cur[j] * bl.r0[j];
    }
    for m in 0..N {
        let r = ev(bl, Q_RC + 2 * m);
        let c = ev(bl, Q_RC + 2 * m + 1);
        for j in 0..W {
            bl.r[m][j] = r[j] * bl.r_mult[j];
            bl.c[m][j] = c[j] * bl.inv_r_mult[j];
            v[j] += bl.v[m][j];
        }
    }
    bl.dudt = if ENT { ev(bl, q_ent) } else { [0.0; W] };
    bl.volt = v;
}
