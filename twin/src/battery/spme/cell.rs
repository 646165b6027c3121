//! The SPMe cell: compiled model ([`SpmeModel`], shared by the cells of a
//! pack), state ([`SpmeState`]) and a stepping cell ([`SpmeCell`]).
//!
//! **Equations** (PyBaMM's `lithium_ion.SPMe`, composite electrolyte,
//! inverse Butler–Volmer kinetics; `i` = current density on the electrode
//! pair area, positive = discharge):
//!
//! ```text
//! particles   ∂c/∂t = (1/r²) ∂/∂r (r² D(T) ∂c/∂r),  −D ∂c/∂r|_R = j/F
//!             j_n = i / (a_n L_n),  j_p = −i / (a_p L_p),  a = 3 ε_s / R
//! electrolyte ε ∂c_e/∂t = ∂/∂x (ε^b D_e(c_e, T) ∂c_e/∂x) + (1 − t+) a j / F
//! kinetics    η(x) = (2RT/F) asinh(j / (2 j0(c_e(x), c_s,surf, T)))
//! voltage     V = U_p + ⟨η_p⟩ − U_n − ⟨η_n⟩
//!               + χ RT/F (⟨ln(c_e/c̄_e)⟩_p − ⟨ln(c_e/c̄_e)⟩_n)       χ = 2(1 − t+) TDF
//!               − i (L_n/(3κ_n) + L_s/κ_s + L_p/(3κ_p))               κ_k = κ(c̄_e, T) ε_k^b
//!               − i (L_n/(3σ_n) + L_p/(3σ_p)) − I R_contact           σ_k = σ (1 − ε_k)^b_s
//! thermal     C dT/dt = Q − G (T − T_amb),  Q = I (U_p − U_n − V) + I T (dU_n/dT − dU_p/dT)
//! ```
//!
//! ⟨·⟩ is the average over an electrode's finite volumes, c̄_e the average
//! over the whole cell. Arrhenius factors `exp(E/R (1/T_ref − 1/T))` scale
//! the particle diffusivities, the exchange-current densities and the
//! electrolyte diffusivity and conductivity.
//!
//! **Discretisation** (as PyBaMM's defaults): uniform finite volumes in each
//! particle (`particle_shells`, spherical) and in each of the three
//! electrolyte domains (`electrolyte_cells_per_domain`); face coefficients
//! are harmonic means of the node values; the surface concentration is the
//! linear extrapolation of the two outer nodes.
//!
//! **Integration.** Fixed-step backward Euler in both diffusions (stable
//! for any step, lithium conserved exactly): each step is one tridiagonal
//! solve per particle (factorisation cached while `D·dt` is unchanged) and
//! one for the electrolyte with `D_e` taken at the start of the step (its
//! factorisation reused while no node's `ε^b D_e` moved by more than 1e-4
//! relative since it was built). The
//! lumped temperature uses the exact exponential solution for the heat at
//! the start of the step, and the temperature at the start of the step sets
//! the transport properties. A step allocates nothing.
//!
//! **SEI** (optional, PyBaMM's "solvent-diffusion limited" with distributed
//! film resistance): `j_sei = −F D_sol c_sol / L_sei`, so `L_sei²` grows
//! linearly in time (advanced exactly); the lithium it takes leaves the
//! negative particles as an extra surface flux, and the film adds
//! `j L_sei ρ_sei` to the negative overpotential.
//!
//! Concentrations are not clamped: as in PyBaMM, it is the voltage cut-off
//! that keeps the particles within (0, c_max).

use std::sync::Arc;

use super::params::{Electrode, SpmeParams, SpmeThermal};
use super::tridiag::Tridiag;
use crate::battery::cell::{cell_accessors, CellOutput, LimitFlags};
use crate::battery::power::clamp_current;
use crate::battery::power::{
    power_step_needed, refine_current, LinearSource, PowerNotDeliverable, Refinement,
};
use crate::battery::thermal::AmbientC;

/// Faraday constant (C/mol), CODATA 2018 as PyBaMM.
pub const FARADAY: f64 = 96485.33212331001;
/// Gas constant (J/(mol K)), CODATA 2018 as PyBaMM.
pub const GAS_CONSTANT: f64 = 8.31446261815324;
const KELVIN: f64 = 273.15;
/// Stoichiometries are kept within this distance of 0 and 1 when the OCP
/// and the exchange current are evaluated.
const STO_EPS: f64 = 1e-9;
/// Relative change of an electrolyte diffusion coefficient that triggers a
/// new factorisation (below it the step reuses the last one).
const E_REFACTOR: f64 = 1e-4;

/// One particle's mesh and constants.
#[derive(Debug, Clone)]
struct ParticleMesh {
    /// `r_{k}² / (dr · V_i)` for the inner (`lo`) and outer (`hi`) face of
    /// shell `i` (V_i = shell volume / 4π).
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// `R² / V_{N−1}`: outer-face area over the outer shell's volume.
    surf_over_vol: f64,
    /// Shell volumes / total, for the average.
    weight: Vec<f64>,
}

impl ParticleMesh {
    fn new(radius_m: f64, n: usize) -> Self {
        let dr = radius_m / n as f64;
        let mut lo = vec![0.0; n];
        let mut hi = vec![0.0; n];
        let mut weight = vec![0.0; n];
        let total = radius_m.powi(3) / 3.0;
        for i in 0..n {
            let r0 = dr * i as f64;
            let r1 = dr * (i + 1) as f64;
            let vol = (r1.powi(3) - r0.powi(3)) / 3.0;
            lo[i] = if i == 0 { 0.0 } else { r0 * r0 / (dr * vol) };
            hi[i] = if i == n - 1 {
                0.0
            } else {
                r1 * r1 / (dr * vol)
            };
            weight[i] = vol / total;
        }
        let vol_last = (radius_m.powi(3) - (dr * (n - 1) as f64).powi(3)) / 3.0;
        ParticleMesh {
            lo,
            hi,
            surf_over_vol: radius_m * radius_m / vol_last,
            weight,
        }
    }
}

/// Per-electrode constants.
#[derive(Debug, Clone)]
struct ElectrodeConst {
    mesh: ParticleMesh,
    /// `1 / (a L F)`: molar flux at the particle surface per unit current
    /// density (mol/(m² s) per A/m²), sign included (+ negative, − positive).
    flux_per_i: f64,
    /// `1 / (a L)` with the same sign: `j = i · j_per_i` (A/m² per A/m²).
    j_per_i: f64,
    /// Solid-phase ohmic resistance `L / (3 σ_eff)` (Ω m²).
    solid_r: f64,
    /// Electrolyte transport efficiency `ε^b`.
    tor: f64,
    c_max: f64,
}

impl ElectrodeConst {
    fn new(e: &Electrode, sign: f64, n_shells: usize) -> Self {
        let a = e.surface_area_per_volume_1_m();
        let sigma_eff = e.conductivity_s_m * (1.0 - e.porosity).powf(e.bruggeman_electrode);
        ElectrodeConst {
            mesh: ParticleMesh::new(e.particle_radius_m, n_shells),
            flux_per_i: sign / (a * e.thickness_m * FARADAY),
            j_per_i: sign / (a * e.thickness_m),
            solid_r: e.thickness_m / (3.0 * sigma_eff),
            tor: e.porosity.powf(e.bruggeman_electrolyte),
            c_max: e.max_concentration_mol_m3,
        }
    }
}

/// The stoichiometry window of the cell (PyBaMM's electrode SOH with the
/// cyclable lithium of the initial concentrations): SOC 0 and 1 are where
/// the open-circuit voltage equals `voltage_min_v` and `voltage_max_v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoichiometryWindow {
    pub x_0: f64,
    pub x_100: f64,
    pub y_0: f64,
    pub y_100: f64,
}

/// The model could not be compiled from the parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpmeError {
    /// No stoichiometry gives the named open-circuit voltage with the
    /// cyclable lithium of the initial concentrations.
    #[error(
        "no stoichiometry window: the open-circuit voltage {target_v} V is not reached with the \
         cyclable lithium of the initial concentrations (check the OCP functions, the voltage \
         limits and `initial_concentration_mol_m3`)"
    )]
    NoWindow { target_v: f64 },
}

/// SPMe parameters compiled for fast stepping; shared (via `Arc`) by all
/// cells of a pack.
#[derive(Debug, Clone)]
pub struct SpmeModel {
    /// The parameters it was built from.
    pub params: SpmeParams,
    neg: ElectrodeConst,
    pos: ElectrodeConst,
    /// Electrolyte cells: widths (m), porosities, transport efficiencies.
    dx: Vec<f64>,
    eps: Vec<f64>,
    tor: Vec<f64>,
    /// Distances between neighbouring nodes (m), `len − 1`.
    dnode: Vec<f64>,
    /// Harmonic-mean weight `β = dx_i / (dx_i + dx_{i+1})`.
    beta: Vec<f64>,
    /// Electrolyte source per unit current density (mol/(m³ s) per A/m²).
    source_per_i: Vec<f64>,
    /// Electrolyte cells of each domain: [0, m) negative, [m, 2m) separator,
    /// [2m, 3m) positive.
    m: usize,
    total_length_m: f64,
    /// Electrolyte ohmic resistance per 1/κ(c̄_e): `L_n/(3τ_n) + L_s/τ_s + L_p/(3τ_p)` (m).
    electrolyte_r_len: f64,
    window: StoichiometryWindow,
    /// Ah per unit of negative stoichiometry.
    q_n_ah: f64,
}

fn arrhenius(e_j_mol: f64, t_ref_k: f64, t_k: f64) -> f64 {
    if e_j_mol == 0.0 {
        1.0
    } else {
        (e_j_mol / GAS_CONSTANT * (1.0 / t_ref_k - 1.0 / t_k)).exp()
    }
}

/// Root of a monotone-bracketed function on [lo, hi] by bisection.
fn bisect(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> Option<f64> {
    let (mut flo, fhi) = (f(lo), f(hi));
    if !(flo.is_finite() && fhi.is_finite()) || flo * fhi > 0.0 {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        let fm = f(mid);
        if (fm < 0.0) == (flo < 0.0) {
            lo = mid;
            flo = fm;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-15 {
            break;
        }
    }
    Some(0.5 * (lo + hi))
}

impl SpmeModel {
    /// Compiles validated parameters.
    pub fn new(params: &SpmeParams) -> Result<Arc<Self>, SpmeError> {
        let p = params;
        let n = p.particle_shells;
        let m = p.electrolyte_cells_per_domain;
        let neg = ElectrodeConst::new(&p.negative, 1.0, n);
        let pos = ElectrodeConst::new(&p.positive, -1.0, n);
        let (ln, ls, lp) = (
            p.negative.thickness_m,
            p.separator.thickness_m,
            p.positive.thickness_m,
        );
        let tor_s = p.separator.porosity.powf(p.separator.bruggeman_electrolyte);
        let t_plus = p.electrolyte.transference_number;
        let mut dx = Vec::with_capacity(3 * m);
        let mut eps = Vec::with_capacity(3 * m);
        let mut tor = Vec::with_capacity(3 * m);
        let mut source_per_i = Vec::with_capacity(3 * m);
        for (l, e, t, s) in [
            (
                ln,
                p.negative.porosity,
                neg.tor,
                (1.0 - t_plus) / (FARADAY * ln),
            ),
            (ls, p.separator.porosity, tor_s, 0.0),
            (
                lp,
                p.positive.porosity,
                pos.tor,
                -(1.0 - t_plus) / (FARADAY * lp),
            ),
        ] {
            for _ in 0..m {
                dx.push(l / m as f64);
                eps.push(e);
                tor.push(t);
                source_per_i.push(s);
            }
        }
        let dnode: Vec<f64> = dx.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect();
        let beta: Vec<f64> = dx.windows(2).map(|w| w[0] / (w[0] + w[1])).collect();
        let electrolyte_r_len = ln / (3.0 * neg.tor) + ls / tor_s + lp / (3.0 * pos.tor);

        // Stoichiometry window from the cyclable lithium.
        let area = p.electrode_area_m2;
        let q = |e: &Electrode| {
            FARADAY
                * e.max_concentration_mol_m3
                * e.active_material_volume_fraction
                * e.thickness_m
                * area
                / 3600.0
        };
        let (q_n, q_p) = (q(&p.negative), q(&p.positive));
        let q_li = FARADAY
            * area
            * (p.negative.initial_concentration_mol_m3
                * p.negative.active_material_volume_fraction
                * p.negative.thickness_m
                + p.positive.initial_concentration_mol_m3
                    * p.positive.active_material_volume_fraction
                    * p.positive.thickness_m)
            / 3600.0;
        let un = |x: f64| p.negative.ocp_v.eval(x);
        let up = |y: f64| p.positive.ocp_v.eval(y);
        let y_of = |x: f64| (q_li - x * q_n) / q_p;
        let lo = ((q_li - q_p) / q_n).max(0.0) + 1e-12;
        let hi = (q_li / q_n).min(1.0) - 1e-12;
        let solve = |v: f64| {
            bisect(lo, hi, |x| up(y_of(x)) - un(x) - v).ok_or(SpmeError::NoWindow { target_v: v })
        };
        let x_100 = solve(p.voltage_max_v)?;
        let x_0 = solve(p.voltage_min_v)?;
        let window = StoichiometryWindow {
            x_0,
            x_100,
            y_0: y_of(x_0),
            y_100: y_of(x_100),
        };
        Ok(Arc::new(SpmeModel {
            params: params.clone(),
            neg,
            pos,
            dx,
            eps,
            tor,
            dnode,
            beta,
            source_per_i,
            m,
            total_length_m: ln + ls + lp,
            electrolyte_r_len,
            window,
            q_n_ah: q_n,
        }))
    }

    /// The stoichiometry window (SOC 0 and 1).
    pub fn window(&self) -> StoichiometryWindow {
        self.window
    }

    /// Capacity between SOC 0 and 1 (Ah).
    pub fn capacity_ah(&self) -> f64 {
        self.q_n_ah * (self.window.x_100 - self.window.x_0)
    }

    /// Electrode-pair current density (A/m²) for a cell current.
    #[inline]
    fn i_density(&self, current_a: f64) -> f64 {
        current_a / self.params.electrode_area_m2
    }

    /// A fresh state at `soc0` (clamped to 0..=1; PyBaMM's
    /// `set_initial_state`: uniform particles on the stoichiometry window,
    /// electrolyte at its initial concentration) and `temperature_c`.
    pub fn initial_state(&self, soc0: f64, temperature_c: f64) -> SpmeState {
        let soc = if soc0.is_finite() {
            soc0.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let t_c = if temperature_c.is_finite() {
            temperature_c
        } else {
            25.0
        };
        let w = self.window;
        let x = w.x_0 + soc * (w.x_100 - w.x_0);
        let y = w.y_0 + soc * (w.y_100 - w.y_0);
        let n = self.params.particle_shells;
        let mut st = SpmeState {
            c_n: vec![x * self.neg.c_max; n],
            c_p: vec![y * self.pos.c_max; n],
            c_e: vec![self.params.electrolyte.initial_concentration_mol_m3; 3 * self.m],
            temperature_k: t_c + KELVIN,
            sei_thickness_m: self.params.sei.map_or(0.0, |s| s.initial_thickness_m),
            sei_lithium_mol: 0.0,
            current_a: 0.0,
            voltage_v: 0.0,
            ocv_v: 0.0,
            heat_w: 0.0,
            heat_now_w: 0.0,
            limits: LimitFlags::NONE,
        };
        self.evaluate(&mut st, 0.0);
        st
    }

    /// Surface concentration: linear extrapolation of the two outer nodes.
    #[inline]
    fn surface(c: &[f64]) -> f64 {
        let n = c.len();
        c[n - 1] + 0.5 * (c[n - 1] - c[n - 2])
    }

    /// Volume-averaged stoichiometry of the negative particle.
    pub fn negative_mean_stoichiometry(&self, st: &SpmeState) -> f64 {
        st.c_n
            .iter()
            .zip(&self.neg.mesh.weight)
            .map(|(c, w)| c * w)
            .sum::<f64>()
            / self.neg.c_max
    }

    /// State of charge on the stoichiometry window (from the mean negative
    /// stoichiometry), clamped to 0..=1.
    pub fn soc(&self, st: &SpmeState) -> f64 {
        let w = self.window;
        ((self.negative_mean_stoichiometry(st) - w.x_0) / (w.x_100 - w.x_0)).clamp(0.0, 1.0)
    }

    /// Lithium in both particles (mol), for conservation checks.
    pub fn particle_lithium_mol(&self, st: &SpmeState) -> f64 {
        let p = &self.params;
        let amount = |c: &[f64], e: &ElectrodeConst, el: &Electrode| {
            c.iter()
                .zip(&e.mesh.weight)
                .map(|(c, w)| c * w)
                .sum::<f64>()
                * el.active_material_volume_fraction
                * el.thickness_m
                * p.electrode_area_m2
        };
        amount(&st.c_n, &self.neg, &p.negative) + amount(&st.c_p, &self.pos, &p.positive)
    }

    /// Lithium in the electrolyte (mol).
    pub fn electrolyte_lithium_mol(&self, st: &SpmeState) -> f64 {
        st.c_e
            .iter()
            .zip(self.eps.iter().zip(&self.dx))
            .map(|(c, (e, d))| c * e * d)
            .sum::<f64>()
            * self.params.electrode_area_m2
    }

    /// Terminal voltage, OCV and heat for the state with `current_a`
    /// flowing; writes them and the limit flags into `st`.
    pub fn evaluate(&self, st: &mut SpmeState, current_a: f64) {
        let p = &self.params;
        let t = st.temperature_k;
        let t_ref = p.reference_temperature_k;
        let rt_f = GAS_CONSTANT * t / FARADAY;
        let i = self.i_density(current_a);
        let m = self.m;
        let ce = &st.c_e;
        // Mean electrolyte concentration over the cell.
        let ce_av = ce.iter().zip(&self.dx).map(|(c, d)| c * d).sum::<f64>() / self.total_length_m;
        let ce_av = ce_av.max(1e-6);

        let overpotential = |c_s: &[f64], ec: &ElectrodeConst, el: &Electrode, cells: &[f64]| {
            let sto = (Self::surface(c_s) / ec.c_max).clamp(STO_EPS, 1.0 - STO_EPS);
            let c_surf = sto * ec.c_max;
            let u = el.ocp_v.eval(sto) + (t - t_ref) * el.entropic_v_per_k.eval(sto);
            let k = el.exchange_current_ref
                * arrhenius(el.exchange_current_activation_energy_j_mol, t_ref, t)
                * (c_surf * (ec.c_max - c_surf)).sqrt();
            let j = i * ec.j_per_i;
            // Σ asinh(x_k) = sign(j)·ln Π(|x_k| + √(x_k² + 1)) and
            // Σ ln(c_k / c̄) = ln Π(c_k / c̄): two logarithms per electrode
            // instead of one per volume (per-volume sums if a product
            // leaves the floating-point range).
            let half_j = 0.5 * j.abs() / k;
            let inv_av = 1.0 / ce_av;
            let (mut prod_eta, mut prod_c) = (1.0, 1.0);
            for &c in cells {
                let c = c.max(1e-6);
                let x = half_j / c.sqrt();
                prod_eta *= x + (x * x + 1.0).sqrt();
                prod_c *= c * inv_av;
            }
            let mut eta = prod_eta.ln();
            if !eta.is_finite() {
                eta = cells
                    .iter()
                    .map(|&c| (half_j / c.max(1e-6).sqrt()).asinh())
                    .sum();
            }
            let eta = eta.copysign(j);
            let mut ln_sum = prod_c.ln();
            if !(ln_sum.is_finite() && prod_c > 0.0) {
                ln_sum = cells.iter().map(|&c| (c.max(1e-6) * inv_av).ln()).sum();
            }
            let inv = 1.0 / cells.len() as f64;
            (
                u,
                2.0 * rt_f * eta * inv,
                ln_sum * inv,
                el.entropic_v_per_k.eval(sto),
            )
        };
        let (u_n, eta_n, ln_n, dudt_n) = overpotential(&st.c_n, &self.neg, &p.negative, &ce[..m]);
        let (u_p, eta_p, ln_p, dudt_p) =
            overpotential(&st.c_p, &self.pos, &p.positive, &ce[2 * m..]);
        let e = &p.electrolyte;
        let kappa = e.conductivity_s_m.eval(ce_av)
            * arrhenius(e.conductivity_activation_energy_j_mol, t_ref, t);
        let chi = 2.0 * (1.0 - e.transference_number) * e.thermodynamic_factor;
        let ocv = u_p - u_n;
        let v = ocv + eta_p - eta_n + chi * rt_f * (ln_p - ln_n)
            - i * self.electrolyte_r_len / kappa
            - i * (self.neg.solid_r + self.pos.solid_r)
            - current_a * p.contact_resistance_ohm
            - p.sei.map_or(0.0, |s| {
                i * self.neg.j_per_i * st.sei_thickness_m * s.resistivity_ohm_m
            });
        st.current_a = current_a;
        st.voltage_v = v;
        st.ocv_v = ocv;
        st.heat_now_w = current_a * (ocv - v) + current_a * t * (dudt_n - dudt_p);
        st.heat_w = st.heat_now_w;
        st.limits = self.flags(st);
    }

    fn flags(&self, st: &SpmeState) -> LimitFlags {
        let p = &self.params;
        let t_c = st.temperature_k - KELVIN;
        let soc = self.soc(st);
        let mut f = 0u8;
        f |= (st.voltage_v < p.voltage_min_v) as u8;
        f |= ((st.voltage_v > p.voltage_max_v) as u8) << 1;
        f |= ((soc <= 0.0) as u8) << 2;
        f |= ((soc >= 1.0) as u8) << 3;
        f |= ((t_c > p.temperature_max_c) as u8) << 4;
        f |= ((t_c < p.temperature_min_c) as u8) << 5;
        LimitFlags(f)
    }

    /// Advances `st` by `dt_s` at constant `current_a` (already clamped)
    /// with ambient `t_amb_c`, using `ws` for the solves.
    pub fn step(
        &self,
        st: &mut SpmeState,
        ws: &mut Workspace,
        current_a: f64,
        dt_s: f64,
        t_amb_c: f64,
    ) {
        let p = &self.params;
        let t = st.temperature_k;
        let t_ref = p.reference_temperature_k;
        let i = self.i_density(current_a);
        // Heat at the start of the step with this step's current.
        let lumped = matches!(p.thermal, SpmeThermal::Lumped { .. });
        if lumped && st.current_a != current_a {
            self.evaluate(st, current_a);
        }
        let q_start = st.heat_now_w;

        // SEI: L² grows linearly in time (exact over the step); the lithium
        // it takes leaves the negative particles as an extra surface flux.
        let mut sei_flux = 0.0; // mol/(m² s) out of the negative particles
        if let Some(s) = p.sei {
            let k = s.partial_molar_volume_m3_mol
                * s.solvent_diffusivity_m2_s
                * s.bulk_solvent_concentration_mol_m3
                * arrhenius(s.activation_energy_j_mol, t_ref, t)
                / s.lithium_moles_per_sei_mole;
            let l0 = st.sei_thickness_m;
            let l1 = (l0 * l0 + 2.0 * k * dt_s).sqrt();
            let li_per_area =
                s.lithium_moles_per_sei_mole * (l1 - l0) / s.partial_molar_volume_m3_mol;
            sei_flux = li_per_area / dt_s;
            st.sei_thickness_m = l1;
            let area = p.negative.surface_area_per_volume_1_m()
                * p.negative.thickness_m
                * p.electrode_area_m2;
            st.sei_lithium_mol += li_per_area * area;
        }

        // Particles.
        for (c, ec, el, fac, extra) in [
            (&mut st.c_n, &self.neg, &p.negative, &mut ws.neg, sei_flux),
            (&mut st.c_p, &self.pos, &p.positive, &mut ws.pos, 0.0),
        ] {
            let d_dt = el.diffusivity_m2_s
                * arrhenius(el.diffusivity_activation_energy_j_mol, t_ref, t)
                * dt_s;
            if fac.key != d_dt {
                let mesh = &ec.mesh;
                fac.lu.factor(|k| {
                    let (a, cc) = (d_dt * mesh.lo[k], d_dt * mesh.hi[k]);
                    (-a, 1.0 + a + cc, -cc)
                });
                fac.key = d_dt;
            }
            let n = c.len();
            c[n - 1] -= dt_s * ec.mesh.surf_over_vol * (i * ec.flux_per_i + extra);
            fac.lu.solve(c);
        }

        // Electrolyte: coefficients at the start of the step.
        let e = &p.electrolyte;
        let arr_d = arrhenius(e.diffusivity_activation_energy_j_mol, t_ref, t);
        let n = st.c_e.len();
        // The factorisation is kept while every node coefficient is within
        // `E_REFACTOR` (relative) of the one it was built with and the step
        // is the same: in quasi-steady operation the electrolyte barely
        // changes from one step to the next.
        let mut stale = ws.e_dt != dt_s;
        for ((kn, tor), c) in ws.k_node.iter_mut().zip(&self.tor).zip(&st.c_e) {
            *kn = tor * e.diffusivity_m2_s.eval(c.max(0.0)) * arr_d;
        }
        if !stale {
            stale = ws
                .k_node
                .iter()
                .zip(&ws.k_fact)
                .any(|(k, f)| (k - f).abs() > E_REFACTOR * f.abs());
        }
        if stale {
            for (((kf, b), kn), dn) in ws
                .k_face
                .iter_mut()
                .zip(&self.beta)
                .zip(ws.k_node.windows(2))
                .zip(&self.dnode)
            {
                // Harmonic mean k0 k1 / (β k1 + (1 − β) k0), times dt / Δx.
                *kf = dt_s * kn[0] * kn[1] / (dn * (b * kn[1] + (1.0 - b) * kn[0]));
            }
            let (dx, eps, kf) = (&self.dx, &self.eps, &ws.k_face);
            ws.lu_e.factor(|k| {
                let cap = eps[k] * dx[k];
                let lo = if k > 0 { kf[k - 1] } else { 0.0 };
                let hi = if k + 1 < n { kf[k] } else { 0.0 };
                (-lo, cap + lo + hi, -hi)
            });
            ws.k_fact.copy_from_slice(&ws.k_node);
            ws.e_dt = dt_s;
        }
        let (dx, eps) = (&self.dx, &self.eps);
        for (((c, e), d), src) in st.c_e.iter_mut().zip(eps).zip(dx).zip(&self.source_per_i) {
            *c = e * d * *c + dt_s * d * src * i;
        }
        ws.lu_e.solve(&mut st.c_e);

        // Temperature over the step (exact exponential for the heat at the
        // start of the step), then voltage and heat at the end of the step.
        if let SpmeThermal::Lumped {
            heat_capacity_j_per_k: c,
            cooling_conductance_w_per_k: g,
        } = p.thermal
        {
            let t_amb = t_amb_c + KELVIN;
            st.temperature_k = if g > 0.0 {
                let decay = (-dt_s * g / c).exp();
                let t_inf = t_amb + q_start / g;
                t_inf + (t - t_inf) * decay
            } else {
                t + q_start * dt_s / c
            };
        } else {
            st.temperature_k = t_amb_c + KELVIN;
        }
        self.evaluate(st, current_a);
        if lumped {
            st.heat_w = q_start;
        }
    }

    /// The cell's output for a state.
    pub fn output(&self, st: &SpmeState) -> CellOutput {
        let t_c = st.temperature_k - KELVIN;
        CellOutput {
            voltage_v: st.voltage_v,
            current_a: st.current_a,
            soc: self.soc(st),
            ocv_v: st.ocv_v,
            temperature_c: t_c,
            jig_temperature_c: t_c,
            heat_w: st.heat_w,
            power_w: st.voltage_v * st.current_a,
            soh: 1.0 - st.sei_lithium_mol * FARADAY / 3600.0 / self.capacity_ah(),
            limits: st.limits,
        }
    }
}

/// The state of one SPMe cell (plain data).
#[derive(Debug, Clone, PartialEq)]
pub struct SpmeState {
    /// Negative particle concentrations, centre to surface (mol/m³).
    pub c_n: Vec<f64>,
    /// Positive particle concentrations, centre to surface (mol/m³).
    pub c_p: Vec<f64>,
    /// Electrolyte concentrations, negative collector to positive (mol/m³).
    pub c_e: Vec<f64>,
    /// Cell temperature (K).
    pub temperature_k: f64,
    /// SEI thickness on the negative particles (m); 0 without SEI.
    pub sei_thickness_m: f64,
    /// Lithium consumed by SEI growth since the start (mol).
    pub sei_lithium_mol: f64,
    /// Current of the last step or set (A, positive = discharge).
    pub current_a: f64,
    pub voltage_v: f64,
    /// Open-circuit voltage at the particle surfaces (V).
    pub ocv_v: f64,
    /// Heat generated (W): the mean over the last step, or at the present
    /// current after [`SpmeModel::evaluate`].
    pub heat_w: f64,
    /// Heat generated at the present state and current (W).
    pub heat_now_w: f64,
    pub limits: LimitFlags,
}

#[derive(Debug, Clone)]
struct ParticleFactor {
    lu: Tridiag,
    /// `D·dt` the factorisation is for (NaN = none yet).
    key: f64,
}

/// Scratch space for [`SpmeModel::step`] (one per cell; no allocation per
/// step).
#[derive(Debug, Clone)]
pub struct Workspace {
    neg: ParticleFactor,
    pos: ParticleFactor,
    lu_e: Tridiag,
    k_node: Vec<f64>,
    /// Node coefficients and step the electrolyte factorisation is for.
    k_fact: Vec<f64>,
    e_dt: f64,
    k_face: Vec<f64>,
}

impl Workspace {
    /// Scratch sized for `model`.
    pub fn new(model: &SpmeModel) -> Self {
        let n = model.params.particle_shells;
        let ne = 3 * model.m;
        let pf = || ParticleFactor {
            lu: Tridiag::new(n),
            key: f64::NAN,
        };
        Workspace {
            neg: pf(),
            pos: pf(),
            lu_e: Tridiag::new(ne),
            k_node: vec![0.0; ne],
            k_fact: vec![0.0; ne],
            e_dt: f64::NAN,
            k_face: vec![0.0; ne.saturating_sub(1)],
        }
    }
}

/// One SPMe cell with its workspace and ambient temperature.
#[derive(Debug, Clone)]
pub struct SpmeCell {
    model: Arc<SpmeModel>,
    state: SpmeState,
    trial: SpmeState,
    ws: Workspace,
    ambient: AmbientC,
}

impl SpmeCell {
    /// A cell at `soc0` with cell and ambient at `temperature_c`.
    pub fn new(params: &SpmeParams, soc0: f64, temperature_c: f64) -> Result<Self, SpmeError> {
        Ok(Self::from_model(
            SpmeModel::new(params)?,
            soc0,
            temperature_c,
        ))
    }

    /// A cell of a compiled model.
    pub fn from_model(model: Arc<SpmeModel>, soc0: f64, temperature_c: f64) -> Self {
        let state = model.initial_state(soc0, temperature_c);
        let ws = Workspace::new(&model);
        let ambient = AmbientC::new(state.temperature_k - KELVIN);
        SpmeCell {
            trial: state.clone(),
            model,
            state,
            ws,
            ambient,
        }
    }

    cell_accessors!(SpmeModel, SpmeState);

    /// Sets the current flowing now without advancing time.
    pub fn set_instant_current(&mut self, current_a: f64) {
        let (i, clamped) = clamp_current(current_a);
        self.model.evaluate(&mut self.state, i);
        self.state.limits |= LimitFlags::current_clamped_if(clamped);
    }

    /// Steps `dt_s` seconds at constant current (A, positive = discharge).
    /// A non-positive or non-finite `dt_s` leaves the state as it is.
    pub fn step_current(&mut self, current_a: f64, dt_s: f64) -> CellOutput {
        if !(dt_s.is_finite() && dt_s > 0.0) {
            return self.output();
        }
        let (i, clamped) = clamp_current(current_a);
        self.model
            .step(&mut self.state, &mut self.ws, i, dt_s, self.ambient.get());
        self.state.limits |= LimitFlags::current_clamped_if(clamped);
        self.output()
    }

    /// The current that delivers `power_w` now (no time passes): the
    /// constant-power solve of [`crate::battery::power`] on the
    /// instantaneous voltage `V(I)`, or why none does.
    pub fn instant_power_current(&mut self, power_w: f64) -> Result<f64, PowerNotDeliverable> {
        self.solve_power(power_w, Trial::Instant)
    }

    /// End-of-step voltage if `current_a` flowed for `dt_s`; the state is
    /// left as it is.
    pub fn trial_voltage(&mut self, current_a: f64, dt_s: f64) -> f64 {
        self.trial.clone_from(&self.state);
        self.model.step(
            &mut self.trial,
            &mut self.ws,
            current_a,
            dt_s,
            self.ambient.get(),
        );
        self.trial.voltage_v
    }

    /// Steps `dt_s` seconds delivering `power_w` at the terminals (positive
    /// = discharge): the constant current is solved (the constant-power
    /// solve of [`crate::battery::power`] on trial steps) so that
    /// end-of-step voltage × current equals the request. If no current can
    /// deliver it, returns the error and leaves the state unchanged.
    pub fn step_power(
        &mut self,
        power_w: f64,
        dt_s: f64,
    ) -> Result<CellOutput, PowerNotDeliverable> {
        if !power_step_needed(power_w, dt_s)? {
            return Ok(self.output());
        }
        self.solve_power(power_w, Trial::Step { dt_s })?;
        // The last trial was at the solved current: it is the new state.
        std::mem::swap(&mut self.state, &mut self.trial);
        Ok(self.output())
    }

    /// The voltage of a trial at `current_a` (into `self.trial`).
    fn trial_at(&mut self, trial: Trial, current_a: f64) -> f64 {
        match trial {
            Trial::Instant => {
                self.trial.clone_from(&self.state);
                self.model.evaluate(&mut self.trial, current_a);
                self.trial.voltage_v
            }
            Trial::Step { dt_s } => self.trial_voltage(current_a, dt_s),
        }
    }

    /// The constant-power solve on `trial`: linearised from trials at no
    /// current and at 1C, quadratic, Newton; an error unless the last trial
    /// (at the returned current) delivers the request within the trial's
    /// tolerance.
    fn solve_power(&mut self, power_w: f64, trial: Trial) -> Result<f64, PowerNotDeliverable> {
        let probe = self.model.params.nominal_capacity_ah.max(1e-3);
        let v0 = self.trial_at(trial, 0.0);
        let source = LinearSource::from_probe(v0, self.trial_at(trial, probe), probe);
        let start_a = source.current_for_power(power_w)?;
        let how = match trial {
            Trial::Instant => &Refinement::SPME_INSTANT,
            Trial::Step { .. } => &Refinement::SPME_STEP,
        };
        let i = refine_current(source, power_w, start_a, how, |i| self.trial_at(trial, i));
        let miss_w = (self.trial_at(trial, i) * i - power_w).abs();
        let missed = match trial {
            Trial::Instant => miss_w > 1e-6 * power_w.abs().max(1.0),
            Trial::Step { .. } => !miss_w.is_finite() || miss_w > 1e-3 * power_w.abs().max(1.0),
        };
        if missed {
            return Err(PowerNotDeliverable {
                requested_w: power_w,
                max_w: source.max_power_w().copysign(power_w),
            });
        }
        Ok(i)
    }
}

/// What a constant-power trial of an SPMe cell evaluates.
#[derive(Debug, Clone, Copy)]
enum Trial {
    /// The voltage now, at the trial current (no time passes).
    Instant,
    /// The voltage at the end of a step of `dt_s` at the trial current.
    Step { dt_s: f64 },
}
