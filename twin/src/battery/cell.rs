//! The n-RC Thevenin cell, the same equations as PyBaMM's
//! `pybamm.equivalent_circuit.Thevenin`:
//!
//! ```text
//! V      = OCV(SOC, T) - I R0(SOC, T, I) + Σ v_i
//! dv_i/dt = -v_i / (R_i C_i) - I R_i / (R_i C_i)        (v_i ≤ 0 on discharge)
//! dSOC/dt = -I / (3600 Q)                                (I > 0 = discharge)
//! Q_heat = I² R0 + Σ (-I v_i) + Q_rev,  Q_rev = -I (T + 273.15) dOCV/dT
//! ```
//!
//! **Integration.** Over a step the current is constant (zero-order hold).
//! The RC states are advanced with the exact exponential solution for that
//! current, SOC by exact coulomb counting, and the two-mass thermal model
//! with its exact matrix-exponential propagator for the step's mean heat
//! (the mean RC loss over the step is computed analytically). R_i and C_i
//! are taken at the state at the start of the step; OCV and R0 for the
//! reported voltage are looked up at the end-of-step state with the step's
//! current, so the output at a sample time is exact for the state there.
//!
//! **Spread and ageing** multiply R0 and every R_i by the cell's resistance
//! factor and divide every C_i by it (time constants unchanged, as for a
//! loss of active area).
//!
//! **Lookups.** All tables of a cell (OCV, R0, R_i, C_i, dOCV/dSOC and an
//! SOC-based entropic table) are resampled once onto the union of their
//! breakpoints (exact for multilinear tables) and stored interleaved in one
//! [`MultiTable`], so a step does one 3-D lookup (SOC × T × I) for all of
//! them.

use std::sync::Arc;

use super::ageing::AgeingState;
use super::params::{AxisKind, CellParams, ParamTable, MAX_RC};
use super::power::{
    clamp_current, power_step_needed, refine_current, LinearSource, PowerNotDeliverable, Refinement,
};
use super::thermal::{AmbientC, ThermalPropagator};
use crate::interp::{Axis, MultiTable};

/// Limit flags reported by every step (a bit set; several may be raised).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LimitFlags(pub u8);

impl LimitFlags {
    pub const NONE: LimitFlags = LimitFlags(0);
    /// Terminal voltage below the lower cut-off.
    pub const UNDER_VOLTAGE: LimitFlags = LimitFlags(1);
    /// Terminal voltage above the upper cut-off.
    pub const OVER_VOLTAGE: LimitFlags = LimitFlags(2);
    /// SOC at 0 (empty).
    pub const SOC_EMPTY: LimitFlags = LimitFlags(4);
    /// SOC at 1 (full).
    pub const SOC_FULL: LimitFlags = LimitFlags(8);
    /// Cell temperature above `temperature_max_c`.
    pub const OVER_TEMPERATURE: LimitFlags = LimitFlags(16);
    /// Cell temperature below `temperature_min_c`.
    pub const UNDER_TEMPERATURE: LimitFlags = LimitFlags(32);
    /// The requested current exceeded [`MAX_CURRENT_A`] and was clamped.
    pub const CURRENT_CLAMPED: LimitFlags = LimitFlags(64);

    const NAMES: [&'static str; 7] = [
        "under_voltage",
        "over_voltage",
        "soc_empty",
        "soc_full",
        "over_temperature",
        "under_temperature",
        "current_clamped",
    ];

    /// [`LimitFlags::CURRENT_CLAMPED`] if `clamped` (as [`clamp_current`]
    /// says), else none.
    pub fn current_clamped_if(clamped: bool) -> LimitFlags {
        if clamped {
            LimitFlags::CURRENT_CLAMPED
        } else {
            LimitFlags::NONE
        }
    }
    pub fn contains(self, other: LimitFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Names of the raised flags.
    pub fn names(self) -> Vec<&'static str> {
        (0..7)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| Self::NAMES[i])
            .collect()
    }
}

impl std::ops::BitOr for LimitFlags {
    type Output = LimitFlags;
    fn bitor(self, o: LimitFlags) -> LimitFlags {
        LimitFlags(self.0 | o.0)
    }
}
impl std::ops::BitOrAssign for LimitFlags {
    fn bitor_assign(&mut self, o: LimitFlags) {
        self.0 |= o.0;
    }
}
impl std::fmt::Debug for LimitFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LimitFlags({})", self.names().join("|"))
    }
}

/// What one cell reports after a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellOutput {
    pub voltage_v: f64,
    /// Current during the step just taken (A, positive = discharge).
    pub current_a: f64,
    pub soc: f64,
    pub ocv_v: f64,
    pub temperature_c: f64,
    pub jig_temperature_c: f64,
    /// Mean heat generated in the cell over the step (W).
    pub heat_w: f64,
    /// Terminal power (W, positive = discharge).
    pub power_w: f64,
    /// Capacity state of health (1 = as new).
    pub soh: f64,
    pub limits: LimitFlags,
}

// Indices of the interleaved quantities.
const Q_OCV: usize = 0;
const Q_R0: usize = 1;
const Q_DOCV: usize = 2;
const Q_RC: usize = 3;
const LOOKUP_LEN: usize = 3 + 2 * MAX_RC + 1;

/// Runs `$body` with `$N` a `const usize` equal to `$n` (0..=MAX_RC), so the
/// RC loops are unrolled for the cell's actual number of pairs.
macro_rules! with_n_rc {
    ($n:expr, $N:ident => $body:expr) => {
        $crate::battery::cell::with_n_rc!(@arms $n, $N, $body, 0 1 2 3 4 5)
    };
    (@arms $n:expr, $N:ident, $body:expr, $($k:literal)*) => {
        match $n {
            $($k => {
                const $N: usize = $k;
                $body
            })*
            _ => {
                const $N: usize = $crate::battery::params::MAX_RC;
                $body
            }
        }
    };
}
pub(crate) use with_n_rc;

#[derive(Debug, Clone)]
enum Entropic {
    None,
    /// dOCV/dT interleaved in the main table at this index.
    InTable(usize),
    /// dOCV/dT over (OCV, T): a separate lookup.
    OverOcv(Box<ParamTable>),
}

/// A cell's parameters compiled for fast stepping; shared (via `Arc`) by
/// all cells of a pack.
#[derive(Debug, Clone)]
pub struct CellModel {
    pub params: CellParams,
    table: MultiTable,
    n_rc: usize,
    entropic: Entropic,
}

/// Union of the breakpoints of `kind` over the tables (merging points closer
/// than 1e-9 of the span); a single 0 if no table depends on it.
fn union_axis(tables: &[&ParamTable], kind: AxisKind) -> Axis {
    let mut pts: Vec<f64> = tables
        .iter()
        .filter_map(|t| t.axis_points(kind))
        .flat_map(|p| p.iter().copied())
        .collect();
    if pts.is_empty() {
        return Axis::new(vec![0.0]).expect("one point");
    }
    pts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let span = (pts[pts.len() - 1] - pts[0]).abs().max(1e-12);
    let mut out: Vec<f64> = Vec::new();
    for x in pts {
        match out.last() {
            Some(&l) if (x - l).abs() <= 1e-9 * span => {}
            _ => out.push(x),
        }
    }
    Axis::new(out).expect("sorted, distinct, finite")
}

impl CellModel {
    /// Compiles validated parameters.
    pub fn new(params: &CellParams) -> Arc<Self> {
        let n_rc = params.rc.len().min(MAX_RC);
        let mut tables: Vec<&ParamTable> = vec![&params.ocv_v, &params.r0_ohm];
        for rc in &params.rc[..n_rc] {
            tables.push(&rc.r_ohm);
            tables.push(&rc.c_f);
        }
        let entropic = match &params.entropic_v_per_k {
            None => Entropic::None,
            Some(t) if t.kinds.contains(&AxisKind::OcvV) => Entropic::OverOcv(Box::new(t.clone())),
            Some(t) => {
                tables.push(t);
                Entropic::InTable(Q_RC + 2 * n_rc)
            }
        };
        let k = Q_RC + 2 * n_rc + usize::from(matches!(entropic, Entropic::InTable(_)));
        let soc_axis = union_axis(&tables, AxisKind::Soc);
        let t_axis = union_axis(&tables, AxisKind::TemperatureC);
        let i_axis = union_axis(&tables, AxisKind::CurrentA);
        let socs = soc_axis.points().to_vec();
        let p = params;
        let table = MultiTable::from_fn(soc_axis, t_axis, i_axis, k, |s, t, i, o| {
            o[Q_OCV] = p.ocv_v.eval(s, t, i, 0.0);
            o[Q_R0] = p.r0_ohm.eval(s, t, i, 0.0);
            // Slope of OCV at the node (mean of the neighbouring segments).
            let j = socs.iter().position(|&x| x == s).unwrap_or(0);
            let lo = socs[j.saturating_sub(1)];
            let hi = socs[(j + 1).min(socs.len() - 1)];
            o[Q_DOCV] = if hi > lo {
                (p.ocv_v.eval(hi, t, i, 0.0) - p.ocv_v.eval(lo, t, i, 0.0)) / (hi - lo)
            } else {
                0.0
            };
            for (n, rc) in p.rc[..n_rc].iter().enumerate() {
                o[Q_RC + 2 * n] = rc.r_ohm.eval(s, t, i, 0.0);
                o[Q_RC + 2 * n + 1] = rc.c_f.eval(s, t, i, 0.0);
            }
            if let Some(e) = &p.entropic_v_per_k {
                if !e.kinds.contains(&AxisKind::OcvV) {
                    o[Q_RC + 2 * n_rc] = e.eval(s, t, i, 0.0);
                }
            }
        })
        .expect("validated tables are finite");
        Arc::new(CellModel {
            params: params.clone(),
            table,
            n_rc,
            entropic,
        })
    }

    pub fn n_rc(&self) -> usize {
        self.n_rc
    }

    /// The interleaved lookup table (OCV, R0, dOCV/dSOC, R_i, C_i, entropic).
    pub(crate) fn table(&self) -> &MultiTable {
        &self.table
    }

    /// Index of dOCV/dT in the table, if it is tabulated there.
    pub(crate) fn entropic_in_table(&self) -> Option<usize> {
        match self.entropic {
            Entropic::InTable(q) => Some(q),
            _ => None,
        }
    }

    /// Whether the structure-of-arrays pack engine can run this cell: no
    /// current axis in the tables and no OCV-based entropic table.
    pub(crate) fn lanes_supported(&self) -> bool {
        self.table.z.len() == 1 && !matches!(self.entropic, Entropic::OverOcv(_))
    }

    /// A fresh cell state at `soc0` and uniform temperature, RC states from
    /// the parameter file, with capacity and resistance multipliers (1.0 for
    /// a nominal cell).
    pub fn initial_state(
        &self,
        soc0: f64,
        temperature_c: f64,
        capacity_scale: f64,
        resistance_scale: f64,
    ) -> CellState {
        let mut v_rc = [0.0; MAX_RC];
        for (v, rc) in v_rc.iter_mut().zip(&self.params.rc) {
            *v = rc.initial_v;
        }
        let soc = if soc0.is_finite() {
            soc0.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let t = if temperature_c.is_finite() {
            temperature_c
        } else {
            25.0
        };
        let mut st = CellState {
            soc,
            v_rc,
            t_cell_c: t,
            t_jig_c: t,
            current_a: 0.0,
            voltage_v: 0.0,
            heat_w: 0.0,
            ocv: 0.0,
            r0: 0.0,
            docv: 0.0,
            r: [0.0; MAX_RC],
            c: [1.0; MAX_RC],
            dudt: 0.0,
            capacity_scale,
            resistance_scale,
            inv_capacity_as: 0.0,
            r_mult: 1.0,
            inv_r_mult: 1.0,
            ageing: AgeingState::default(),
            limits: LimitFlags::NONE,
        };
        self.refresh_multipliers(&mut st);
        self.lookup(&mut st, 0.0);
        st.voltage_v = st.ocv + st.v_rc[..self.n_rc].iter().sum::<f64>();
        st.limits = self.flags(&st);
        st
    }

    /// Recomputes the per-cell constants from spread and ageing.
    pub fn refresh_multipliers(&self, st: &mut CellState) {
        let fade = st.ageing.capacity_fade();
        let ah = self.params.capacity_ah * st.capacity_scale * (1.0 - fade);
        st.inv_capacity_as = 1.0 / (3600.0 * ah);
        st.r_mult = st.resistance_scale * (1.0 + st.ageing.resistance_growth());
        st.inv_r_mult = 1.0 / st.r_mult;
    }

    /// Looks up all parameters at the cell's state and `current_a`.
    #[inline(always)]
    pub(crate) fn lookup(&self, st: &mut CellState, current_a: f64) {
        with_n_rc!(self.n_rc, N => self.lookup_n::<N>(st, current_a))
    }

    /// First half of a step: the RC decay factors for `dt_s` and the cell's
    /// linearised end-of-step voltage `V ≈ e - r·I` (used to share current
    /// between parallel cells and to solve for power).
    #[inline]
    pub fn prepare(&self, st: &CellState, dt_s: f64) -> Prepared {
        with_n_rc!(self.n_rc, N => self.prepare_n::<N>(st, dt_s))
    }

    /// Second half of a step: advances the state by `dt_s` at constant
    /// `current_a` (already clamped) and ambient `t_amb_c`.
    #[inline]
    pub fn advance(
        &self,
        st: &mut CellState,
        prep: &Prepared,
        prop: &ThermalPropagator,
        current_a: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) {
        with_n_rc!(self.n_rc, N => {
            self.integrate_n::<N>(st, prep, prop, current_a, dt_s, t_amb_c);
            self.finish_n::<N>(st);
        })
    }

    /// The state-integration half of [`CellModel::advance`]: RC states,
    /// heat, temperatures, SOC and ageing over the step. Must be followed by
    /// [`CellModel::finish`] (split so that a pack can run each half over
    /// all its cells in turn, letting the CPU overlap independent cells).
    #[inline]
    pub fn integrate(
        &self,
        st: &mut CellState,
        prep: &Prepared,
        prop: &ThermalPropagator,
        current_a: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) {
        with_n_rc!(self.n_rc, N => self.integrate_n::<N>(st, prep, prop, current_a, dt_s, t_amb_c))
    }

    /// The second half of a step: parameter lookup at the new state, terminal
    /// voltage and limit flags.
    #[inline]
    pub fn finish(&self, st: &mut CellState) {
        with_n_rc!(self.n_rc, N => self.finish_n::<N>(st))
    }

    // ---- the same, monomorphised on the number of RC pairs (hot path) ----

    /// Looks up all parameters at the cell's state and `current_a`.
    #[inline(always)]
    pub(crate) fn lookup_n<const N: usize>(&self, st: &mut CellState, current_a: f64) {
        let mut o = [0.0; LOOKUP_LEN];
        self.table.eval_into(st.soc, st.t_cell_c, current_a, &mut o);
        st.ocv = o[Q_OCV];
        st.r0 = o[Q_R0] * st.r_mult;
        st.docv = o[Q_DOCV];
        for n in 0..N {
            st.r[n] = o[Q_RC + 2 * n] * st.r_mult;
            st.c[n] = o[Q_RC + 2 * n + 1] * st.inv_r_mult;
        }
        st.dudt = match &self.entropic {
            Entropic::None => 0.0,
            Entropic::InTable(q) => o[*q],
            Entropic::OverOcv(t) => t.eval(st.soc, st.t_cell_c, current_a, st.ocv),
        };
    }

    #[inline(always)]
    pub(crate) fn flags(&self, st: &CellState) -> LimitFlags {
        let p = &self.params;
        let mut f = 0u8;
        f |= (st.voltage_v < p.voltage_min_v) as u8;
        f |= ((st.voltage_v > p.voltage_max_v) as u8) << 1;
        f |= ((st.soc <= 0.0) as u8) << 2;
        f |= ((st.soc >= 1.0) as u8) << 3;
        f |= ((st.t_cell_c > p.temperature_max_c) as u8) << 4;
        f |= ((st.t_cell_c < p.temperature_min_c) as u8) << 5;
        LimitFlags(f)
    }

    /// First half of a step: the RC decay factors for `dt_s` and the cell's
    /// linearised end-of-step voltage `V ≈ e - r·I` (used to share current
    /// between parallel cells and to solve for power).
    #[inline(always)]
    pub(crate) fn prepare_n<const N: usize>(&self, st: &CellState, dt_s: f64) -> Prepared {
        let mut p = Prepared {
            one_minus_a: [0.0; MAX_RC],
            g: [0.0; MAX_RC],
            e_v: st.ocv,
            r_ohm: st.r0 + st.docv * dt_s * st.inv_capacity_as,
        };
        for n in 0..N {
            let x = dt_s / (st.r[n] * st.c[n]);
            let (om, g) = decay(x);
            p.one_minus_a[n] = om;
            p.g[n] = g;
            p.e_v += st.v_rc[n] * (1.0 - om);
            p.r_ohm += st.r[n] * om;
        }
        p
    }

    /// The state-integration half of [`CellModel::advance`]: RC states,
    /// heat, temperatures, SOC and ageing over the step. Must be followed by
    /// [`CellModel::finish`] (split so that a pack can run each half over
    /// all its cells in turn, letting the CPU overlap independent cells).
    #[inline(always)]
    pub(crate) fn integrate_n<const N: usize>(
        &self,
        st: &mut CellState,
        prep: &Prepared,
        prop: &ThermalPropagator,
        current_a: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) {
        let i = current_a;
        let mut q = i * i * st.r0;
        for n in 0..N {
            let v_inf = -i * st.r[n];
            let d = st.v_rc[n] - v_inf;
            let v_mean = v_inf + d * prep.g[n];
            q -= i * v_mean;
            st.v_rc[n] = v_inf + d * (1.0 - prep.one_minus_a[n]);
        }
        q -= i * (st.t_cell_c + 273.15) * st.dudt;
        let (tc, tj) = prop.advance(st.t_cell_c, st.t_jig_c, t_amb_c, q);
        st.t_cell_c = tc;
        st.t_jig_c = tj;
        st.soc = (st.soc - i * dt_s * st.inv_capacity_as).clamp(0.0, 1.0);
        st.current_a = i;
        st.heat_w = q;
        if let Some(a) = &self.params.ageing {
            let nominal = self.params.nominal_capacity_ah;
            if st.ageing.record(a, nominal, i, st.soc, st.t_cell_c, dt_s) {
                self.refresh_multipliers(st);
            }
        }
    }

    /// The second half of a step: parameter lookup at the new state, terminal
    /// voltage and limit flags.
    #[inline(always)]
    pub(crate) fn finish_n<const N: usize>(&self, st: &mut CellState) {
        let i = st.current_a;
        self.lookup_n::<N>(st, i);
        let mut v = st.ocv - i * st.r0;
        for n in 0..N {
            v += st.v_rc[n];
        }
        st.voltage_v = v;
        st.limits = self.flags(st);
    }

    /// A full current-mode step of one cell.
    #[inline(always)]
    pub fn step(
        &self,
        st: &mut CellState,
        prop: &ThermalPropagator,
        current_a: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) {
        let (i, clamped) = clamp_current(current_a);
        let prep = self.prepare(st, dt_s);
        self.advance(st, &prep, prop, i, dt_s, t_amb_c);
        st.limits |= LimitFlags::current_clamped_if(clamped);
    }

    /// Sets the present current without advancing time (see
    /// [`EcmCell::set_instant_current`]).
    pub fn set_instant_current(&self, st: &mut CellState, current_a: f64) {
        self.lookup(st, current_a);
        st.current_a = current_a;
        st.voltage_v = st.ocv - current_a * st.r0 + st.v_rc[..self.n_rc].iter().sum::<f64>();
        st.limits = self.flags(st);
    }

    /// The cell's output for its current state.
    pub fn output(&self, st: &CellState) -> CellOutput {
        CellOutput {
            voltage_v: st.voltage_v,
            current_a: st.current_a,
            soc: st.soc,
            ocv_v: st.ocv,
            temperature_c: st.t_cell_c,
            jig_temperature_c: st.t_jig_c,
            heat_w: st.heat_w,
            power_w: st.voltage_v * st.current_a,
            soh: 1.0 - st.ageing.capacity_fade(),
            limits: st.limits,
        }
    }
}

/// For `x = dt/τ`: `(1 - e^{-x}, (1 - e^{-x}) / x)`. Below `x = 1/8` the
/// degree-8 Taylor polynomial of `(1 - e^{-x})/x` in Estrin form (relative
/// error < 3e-15, short dependency chain, no `exp` in the hot path); above
/// it, `exp_m1`.
#[inline(always)]
pub fn decay(x: f64) -> (f64, f64) {
    if x < 0.125 {
        decay_series(x)
    } else {
        decay_exp(x)
    }
}

/// The series branch of [`decay`] (valid for `0 <= x < 1/8`).
#[inline(always)]
pub(crate) fn decay_series(x: f64) -> (f64, f64) {
    {
        const C: [f64; 9] = [
            1.0,
            -1.0 / 2.0,
            1.0 / 6.0,
            -1.0 / 24.0,
            1.0 / 120.0,
            -1.0 / 720.0,
            1.0 / 5040.0,
            -1.0 / 40320.0,
            1.0 / 362880.0,
        ];
        let x2 = x * x;
        let x4 = x2 * x2;
        let x8 = x4 * x4;
        let p01 = C[0] + C[1] * x;
        let p23 = C[2] + C[3] * x;
        let p45 = C[4] + C[5] * x;
        let p67 = C[6] + C[7] * x;
        let q0 = p01 + p23 * x2;
        let q1 = p45 + p67 * x2;
        let g = q0 + q1 * x4 + C[8] * x8;
        (x * g, g)
    }
}

/// The `exp_m1` branch of [`decay`].
#[inline(never)]
pub(crate) fn decay_exp(x: f64) -> (f64, f64) {
    let om = -(-x).exp_m1();
    (om, if x.is_finite() { om / x } else { 0.0 })
}

/// Per-step quantities from [`CellModel::prepare`].
#[derive(Debug, Clone, Copy)]
pub struct Prepared {
    one_minus_a: [f64; MAX_RC],
    /// `(1 - e^{-x}) / x`: weight of the initial offset in the step's mean.
    g: [f64; MAX_RC],
    /// Linearised end-of-step voltage at zero current (V).
    pub e_v: f64,
    /// Linearised resistance over the step (Ω).
    pub r_ohm: f64,
}

impl Prepared {
    /// The cell over the step as a source `V = e − r·I`.
    #[inline(always)]
    pub fn source(&self) -> LinearSource {
        LinearSource {
            e_v: self.e_v,
            r_ohm: self.r_ohm,
        }
    }
}

/// The full state of one cell (plain data; the pack keeps a `Vec` of them).
#[derive(Debug, Clone, PartialEq)]
pub struct CellState {
    pub soc: f64,
    /// RC overpotentials (V), PyBaMM sign convention (negative on discharge).
    pub v_rc: [f64; MAX_RC],
    pub t_cell_c: f64,
    pub t_jig_c: f64,
    pub current_a: f64,
    pub voltage_v: f64,
    pub heat_w: f64,
    // Parameters at the state (from the last lookup, resistances scaled).
    pub ocv: f64,
    pub r0: f64,
    pub docv: f64,
    pub r: [f64; MAX_RC],
    pub c: [f64; MAX_RC],
    pub dudt: f64,
    /// Cell-to-cell spread multipliers.
    pub capacity_scale: f64,
    pub resistance_scale: f64,
    pub(crate) inv_capacity_as: f64,
    pub(crate) r_mult: f64,
    pub(crate) inv_r_mult: f64,
    pub ageing: AgeingState,
    pub limits: LimitFlags,
}

impl CellState {
    /// Present capacity (Ah) after spread and fade.
    pub fn capacity_ah(&self) -> f64 {
        1.0 / (3600.0 * self.inv_capacity_as)
    }
}

/// The accessors every battery cell has, written once for the ECM
/// ([`EcmCell`]) and the SPMe cell: its compiled model, its state, its
/// ambient and its output. The cell struct holds `model: Arc<$model>`,
/// `state: $state` and `ambient: AmbientC`, and `$model` has
/// `output(&$state) -> CellOutput`.
macro_rules! cell_accessors {
    ($model:ty, $state:ty) => {
        /// The compiled model.
        pub fn model(&self) -> &std::sync::Arc<$model> {
            &self.model
        }
        /// The state.
        pub fn state(&self) -> &$state {
            &self.state
        }
        /// The state, mutable (for tests and tools).
        pub fn state_mut(&mut self) -> &mut $state {
            &mut self.state
        }
        /// Ambient temperature (°C).
        pub fn ambient_c(&self) -> f64 {
            self.ambient.get()
        }
        /// Sets the ambient temperature (non-finite values are ignored).
        pub fn set_ambient_c(&mut self, t: f64) {
            self.ambient.set(t);
        }
        /// The present output.
        pub fn output(&self) -> $crate::battery::CellOutput {
            self.model.output(&self.state)
        }
    };
}
pub(crate) use cell_accessors;

/// One equivalent-circuit cell with its thermal model and ageing.
#[derive(Debug, Clone)]
pub struct EcmCell {
    model: Arc<CellModel>,
    state: CellState,
    prop: ThermalPropagator,
    ambient: AmbientC,
}

impl EcmCell {
    /// A nominal cell at `soc0` (clamped to 0..=1) with cell, jig and ambient
    /// at `temperature_c`.
    pub fn new(params: &CellParams, soc0: f64, temperature_c: f64) -> Self {
        Self::from_model(CellModel::new(params), soc0, temperature_c)
    }

    pub fn from_model(model: Arc<CellModel>, soc0: f64, temperature_c: f64) -> Self {
        let state = model.initial_state(soc0, temperature_c, 1.0, 1.0);
        let prop = ThermalPropagator::new(&model.params.thermal, 1.0);
        let ambient = AmbientC::new(state.t_cell_c);
        EcmCell {
            model,
            state,
            prop,
            ambient,
        }
    }

    cell_accessors!(CellModel, CellState);

    /// Sets the current flowing *now* without advancing time: the reported
    /// voltage becomes `OCV - I·R0(I) + Σ v_i` (the instantaneous response,
    /// used for the first sample of a profile).
    pub fn set_instant_current(&mut self, current_a: f64) {
        let (i, clamped) = clamp_current(current_a);
        self.model.set_instant_current(&mut self.state, i);
        self.state.limits |= LimitFlags::current_clamped_if(clamped);
    }

    /// Steps `dt_s` seconds at constant current (A, positive = discharge).
    /// A non-positive or non-finite `dt_s` leaves the state as it is.
    pub fn step_current(&mut self, current_a: f64, dt_s: f64) -> CellOutput {
        if !(dt_s.is_finite() && dt_s > 0.0) {
            return self.output();
        }
        let prop = self.prop.for_step(&self.model.params.thermal, dt_s);
        self.model
            .step(&mut self.state, &prop, current_a, dt_s, self.ambient.get());
        self.output()
    }

    /// Steps `dt_s` seconds delivering `power_w` at the terminals (positive
    /// = discharge) as closely as the step allows: the constant current over
    /// the step is solved so that end-of-step voltage × current equals the
    /// request (the constant-power solve of [`super::power`]: quadratic on
    /// the linearised cell, then Newton on the full step). If no current can
    /// deliver it, returns the error and leaves the state unchanged.
    pub fn step_power(
        &mut self,
        power_w: f64,
        dt_s: f64,
    ) -> Result<CellOutput, PowerNotDeliverable> {
        if !power_step_needed(power_w, dt_s)? {
            return Ok(self.output());
        }
        let prop = self.prop.for_step(&self.model.params.thermal, dt_s);
        let ambient_c = self.ambient.get();
        let prep = self.model.prepare(&self.state, dt_s);
        let source = prep.source();
        let start_a = source.current_for_power(power_w)?;
        let mut trial = self.state.clone();
        let i = refine_current(source, power_w, start_a, &Refinement::ECM, |i| {
            trial.clone_from(&self.state);
            self.model.step(&mut trial, &prop, i, dt_s, ambient_c);
            trial.voltage_v
        });
        self.model.step(&mut self.state, &prop, i, dt_s, ambient_c);
        Ok(self.output())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::battery::params::{parse_cell_params, tests_support::MINIMAL};
    use crate::battery::MAX_CURRENT_A;
    use std::path::Path;

    /// The minimal cell with a 45 °C limit and a second RC pair.
    fn cell_text() -> String {
        MINIMAL
            .replace(
                "voltage_max_v = 3.65\n",
                "voltage_max_v = 3.65\ntemperature_max_c = 45.0\n",
            )
            .replace(
                "[thermal]",
                "[[rc]]\nr = { value = 0.0015 }\nc = { value = 200000.0 }\n[thermal]",
            )
    }

    fn cell(soc: f64) -> EcmCell {
        EcmCell::new(
            &parse_cell_params(Path::new("t.toml"), &cell_text()).unwrap(),
            soc,
            25.0,
        )
    }

    #[test]
    fn decay_series_matches_exp() {
        for &x in &[
            0.0,
            1e-12,
            1e-6,
            1e-3,
            0.05,
            0.1249999,
            0.125,
            0.5,
            3.0,
            700.0,
            f64::INFINITY,
        ] {
            let (om, g) = decay(x);
            let e = -(-x).exp_m1();
            assert!(
                (om - e).abs() <= 2e-12 * e.max(1e-300),
                "x={x}: {om} vs {e}"
            );
            if x > 0.0 && x.is_finite() {
                assert!((g - e / x).abs() <= 2e-12 * (e / x), "x={x}");
            }
        }
        assert_eq!(decay(0.0), (0.0, 1.0));
    }

    #[test]
    fn two_rc_step_response_is_exact() {
        let mut c = cell(0.5);
        let i = 10.0;
        let mut t = 0.0;
        for _ in 0..100 {
            let o = c.step_current(i, 1.0);
            t += 1.0;
            let soc = 0.5 - i * t / 36000.0;
            let ocv = 3.2 + (soc - 0.1) / 0.8 * 0.15;
            let v1 = -i * 0.001 * (1.0 - (-t / 20.0f64).exp());
            let v2 = -i * 0.0015 * (1.0 - (-t / 300.0f64).exp());
            let v = ocv - i * 0.002 + v1 + v2;
            assert!(
                (o.voltage_v - v).abs() < 1e-12,
                "t={t}: {} vs {v}",
                o.voltage_v
            );
            assert!((o.soc - soc).abs() < 1e-12);
        }
        // One 100 s step equals a hundred 1 s steps for constant tables.
        let mut d = cell(0.5);
        let o = d.step_current(i, 100.0);
        assert!((o.voltage_v - c.output().voltage_v).abs() < 1e-12);
        assert!((o.temperature_c - c.output().temperature_c).abs() < 1e-2);
    }

    #[test]
    fn one_rc_and_zero_rc_work() {
        let one = cell_text().replace(
            "[[rc]]\nr = { value = 0.0015 }\nc = { value = 200000.0 }\n",
            "",
        );
        let p = parse_cell_params(Path::new("t.toml"), &one).unwrap();
        assert_eq!(p.rc.len(), 1);
        let mut c = EcmCell::new(&p, 0.5, 25.0);
        let o = c.step_current(10.0, 20.0);
        let expect =
            3.275 - 10.0 * 20.0 / 36000.0 * 0.15 / 0.8 - 0.02 - 0.01 * (1.0 - (-1.0f64).exp());
        assert!((o.voltage_v - expect).abs() < 1e-12);
        let zero = one.replace(
            "[[rc]]\nr = { value = 0.001 }\nc = { value = 20000.0 }\n",
            "",
        );
        let p = parse_cell_params(Path::new("t.toml"), &zero).unwrap();
        let mut c = EcmCell::new(&p, 0.5, 25.0);
        let o = c.step_current(-10.0, 1.0);
        assert!(o.voltage_v > 3.275 + 0.019);
    }

    #[test]
    fn limits_are_flags_and_soc_is_bounded() {
        let mut c = cell(0.02);
        let mut saw_uv = false;
        for _ in 0..100 {
            let o = c.step_current(50.0, 10.0);
            saw_uv |= o.limits.contains(LimitFlags::UNDER_VOLTAGE);
            assert!((0.0..=1.0).contains(&o.soc));
        }
        assert!(saw_uv);
        assert!(c.output().limits.contains(LimitFlags::SOC_EMPTY));
        let mut c = cell(0.99);
        let o = c.step_current(-1e9, 10.0);
        assert!(o.limits.contains(LimitFlags::SOC_FULL));
        assert!(o.limits.contains(LimitFlags::OVER_VOLTAGE));
        assert!(o.limits.contains(LimitFlags::CURRENT_CLAMPED));
        assert!(o.limits.contains(LimitFlags::OVER_TEMPERATURE));
        assert!(o.voltage_v.is_finite() && o.temperature_c.is_finite());
        let o = c.step_current(f64::MAX, f64::MAX);
        assert!(
            o.voltage_v.is_finite() && o.temperature_c.is_finite(),
            "{o:?}"
        );
    }

    #[test]
    fn clamping_raises_only_the_current_flag() {
        assert_eq!(LimitFlags::current_clamped_if(false), LimitFlags::NONE);
        let f = LimitFlags::current_clamped_if(true);
        assert_eq!(f.names(), ["current_clamped"]);
        let (i, clamped) = clamp_current(-2.0 * MAX_CURRENT_A);
        assert_eq!((i, clamped), (-MAX_CURRENT_A, true));
    }

    #[test]
    fn power_mode_delivers_or_says_no() {
        let mut c = cell(0.5);
        for p in [300.0, -300.0, 0.0, 1000.0] {
            let o = c.step_power(p, 1.0).unwrap();
            assert!(
                (o.power_w - p).abs() < 1e-6 * p.abs().max(1.0),
                "{p}: {o:?}"
            );
        }
        let before = c.state().clone();
        let e = c.step_power(1e6, 1.0).unwrap_err();
        assert!(e.max_w > 0.0 && e.max_w < 1e6);
        assert_eq!(c.state(), &before);
        assert!(e.to_string().contains("not deliverable"));
    }

    #[test]
    fn heat_includes_rc_losses_and_warms_the_cell() {
        let mut c = cell(0.5);
        let mut o = c.output();
        for _ in 0..600 {
            o = c.step_current(30.0, 1.0);
        }
        assert!(o.temperature_c > 25.0 && o.jig_temperature_c > 25.0);
        assert!(o.heat_w > 30.0 * 30.0 * 0.002);
    }
}
