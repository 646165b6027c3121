//! Lumped two-mass thermal model: cell → jig (or enclosure share) → ambient,
//! exactly PyBaMM's `equivalent_circuit_elements.ThermalSubModel`:
//!
//! ```text
//! C_cell dT_cell/dt = Q - k_cj (T_cell - T_jig)
//! C_jig  dT_jig/dt  = k_cj (T_cell - T_jig) - k_ja (T_jig - T_amb)
//! ```
//!
//! with `Q = I² R0 + Σ(-I v_i) + Q_rev`, `Q_rev = -I T_K dOCV/dT` (when the
//! entropic table is given). The linear system is integrated exactly over a
//! step for a constant heat input and ambient: `x' = Φ x + Γ Q`, where `x` is
//! the temperature rise over ambient. `Φ, Γ` come from the matrix
//! exponential of the augmented system and are cached per step length.

/// Thermal parameters of one cell and its jig.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalParams {
    pub cell_heat_capacity_j_per_k: f64,
    pub jig_heat_capacity_j_per_k: f64,
    pub cell_jig_conductance_w_per_k: f64,
    pub jig_air_conductance_w_per_k: f64,
}

/// The ambient (air) temperature around a cell or pack (°C): always
/// finite; setting a non-finite value leaves it as it was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmbientC(f64);

impl AmbientC {
    /// The ambient at `temperature_c` (finite: a cell's starting temperature).
    pub fn new(temperature_c: f64) -> Self {
        AmbientC(temperature_c)
    }
    /// The temperature (°C).
    #[inline(always)]
    pub fn get(self) -> f64 {
        self.0
    }
    /// Sets the temperature; non-finite values are ignored.
    pub fn set(&mut self, temperature_c: f64) {
        if temperature_c.is_finite() {
            self.0 = temperature_c;
        }
    }
}

/// Exact discrete propagator for one step length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalPropagator {
    pub dt_s: f64,
    /// `e^{A dt}` (row-major 2×2).
    pub phi: [[f64; 2]; 2],
    /// `∫ e^{A s} ds · b` for a unit heat input into the cell.
    pub gamma: [f64; 2],
}

impl ThermalPropagator {
    /// Builds the propagator for `dt_s` (> 0) by scaling and squaring a
    /// Taylor series of the 3×3 augmented matrix `[[A, b], [0, 0]]`.
    pub fn new(p: &ThermalParams, dt_s: f64) -> Self {
        let cc = p.cell_heat_capacity_j_per_k;
        let cj = p.jig_heat_capacity_j_per_k;
        let kcj = p.cell_jig_conductance_w_per_k;
        let kja = p.jig_air_conductance_w_per_k;
        let m = [
            [-kcj / cc * dt_s, kcj / cc * dt_s, dt_s / cc],
            [kcj / cj * dt_s, -(kcj + kja) / cj * dt_s, 0.0],
            [0.0, 0.0, 0.0],
        ];
        let e = expm3(m);
        ThermalPropagator {
            dt_s,
            phi: [[e[0][0], e[0][1]], [e[1][0], e[1][1]]],
            gamma: [e[0][2], e[1][2]],
        }
    }

    /// This propagator, first rebuilt for `dt_s` if it is for another step
    /// length (the cached one of a cell or pack).
    #[inline]
    pub fn for_step(&mut self, p: &ThermalParams, dt_s: f64) -> ThermalPropagator {
        if self.dt_s != dt_s {
            *self = ThermalPropagator::new(p, dt_s);
        }
        *self
    }

    /// Advances `(t_cell, t_jig)` by one step with constant heat `q_w` into
    /// the cell and ambient `t_amb`.
    #[inline(always)]
    pub fn advance(&self, t_cell: f64, t_jig: f64, t_amb: f64, q_w: f64) -> (f64, f64) {
        let x0 = t_cell - t_amb;
        let x1 = t_jig - t_amb;
        let n0 = self.phi[0][0] * x0 + self.phi[0][1] * x1 + self.gamma[0] * q_w;
        let n1 = self.phi[1][0] * x0 + self.phi[1][1] * x1 + self.gamma[1] * q_w;
        (t_amb + n0, t_amb + n1)
    }
}

type M3 = [[f64; 3]; 3];

fn mul3(a: &M3, b: &M3) -> M3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    c
}

/// Matrix exponential of a 3×3 matrix (scaling and squaring, 18-term Taylor).
fn expm3(m: M3) -> M3 {
    let norm = m
        .iter()
        .map(|r| r.iter().map(|x| x.abs()).sum::<f64>())
        .fold(0.0, f64::max);
    let mut s = 0u32;
    let mut scale = 1.0;
    while norm * scale > 0.25 && s < 1070 {
        scale *= 0.5;
        s += 1;
    }
    let a: M3 = m.map(|r| r.map(|x| x * scale));
    let mut result: M3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let mut term = result;
    for k in 1..=18 {
        term = mul3(&term, &a).map(|r| r.map(|x| x / k as f64));
        for i in 0..3 {
            for j in 0..3 {
                result[i][j] += term[i][j];
            }
        }
    }
    for _ in 0..s {
        result = mul3(&result, &result);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> ThermalParams {
        ThermalParams {
            cell_heat_capacity_j_per_k: 1000.0,
            jig_heat_capacity_j_per_k: 500.0,
            cell_jig_conductance_w_per_k: 10.0,
            jig_air_conductance_w_per_k: 10.0,
        }
    }

    #[test]
    fn steady_state_and_step_composition() {
        let pr = ThermalPropagator::new(&p(), 1.0);
        let (mut tc, mut tj) = (25.0, 25.0);
        for _ in 0..20_000 {
            (tc, tj) = pr.advance(tc, tj, 25.0, 10.0);
        }
        // Steady state: Q flows through both conductances in series.
        assert!(
            (tj - 26.0).abs() < 1e-6 && (tc - 27.0).abs() < 1e-6,
            "{tc} {tj}"
        );
        // Ten 1 s steps equal one 10 s step (exactness for constant Q).
        let pr10 = ThermalPropagator::new(&p(), 10.0);
        let (a, b) = pr10.advance(40.0, 30.0, 20.0, 5.0);
        let (mut c, mut d) = (40.0, 30.0);
        for _ in 0..10 {
            (c, d) = pr.advance(c, d, 20.0, 5.0);
        }
        assert!((a - c).abs() < 1e-10 && (b - d).abs() < 1e-10);
    }

    #[test]
    fn for_step_rebuilds_only_for_another_step_length() {
        let mut cached = ThermalPropagator::new(&p(), 1.0);
        assert_eq!(
            cached.for_step(&p(), 1.0),
            ThermalPropagator::new(&p(), 1.0)
        );
        let ten = cached.for_step(&p(), 10.0);
        assert_eq!(ten, ThermalPropagator::new(&p(), 10.0));
        assert_eq!(cached, ten);
    }

    #[test]
    fn ambient_ignores_non_finite_temperatures() {
        let mut a = AmbientC::new(20.0);
        a.set(f64::NAN);
        a.set(f64::NEG_INFINITY);
        assert_eq!(a.get(), 20.0);
        a.set(-5.0);
        assert_eq!(a.get(), -5.0);
    }

    #[test]
    fn matches_fine_euler() {
        let q = 7.0;
        let pr = ThermalPropagator::new(&p(), 30.0);
        let (a, b) = pr.advance(25.0, 25.0, 25.0, q);
        let (mut tc, mut tj) = (25.0f64, 25.0f64);
        let h = 1e-3;
        for _ in 0..30_000 {
            let dtc = (q - 10.0 * (tc - tj)) / 1000.0;
            let dtj = (10.0 * (tc - tj) - 10.0 * (tj - 25.0)) / 500.0;
            tc += h * dtc;
            tj += h * dtj;
        }
        assert!(
            (a - tc).abs() < 1e-5 && (b - tj).abs() < 1e-5,
            "{a} {tc} {b} {tj}"
        );
    }
}
