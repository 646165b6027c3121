//! Circuit wiring and the solution of one circuit's far end.
//!
//! A circuit is a copper loop (out and back, `2 · length`) from the bus to
//! its loads, which all sit at the far end and share one load-end voltage
//! `V_L`. The loads are aggregated per step into constant power `P`
//! (LED drivers, USB-PD socket converters), constant current `I` and
//! conductance `G` (resistive loads, an injected fault). A constant-power or
//! constant-current load behaves as a resistor below its *knee* (its minimum
//! input voltage), so the load current is continuous and zero at zero volts.
//!
//! Given the bus voltage `V`, the circuit equation
//! `(V − V_L)/R = P/V_L + G·V_L + I` is, in each voltage region between
//! knees, the quadratic `(1/R + G)·V_L² − (V/R − I)·V_L + P = 0`; the circuit
//! settles at the highest root (the stable operating point of constant-power
//! loads). The regions are scanned from the top, so the solution is exact and
//! needs no iteration.

/// Resistivity of annealed copper at 20 °C, Ω·mm²/m (IEC 60028: 1/58).
pub const RHO_CU_20C_OHM_MM2_PER_M: f64 = 1.0 / 58.0;

/// Loop (out-and-back) resistance of a copper circuit, Ω.
pub fn loop_resistance_ohm(length_m: f64, cross_section_mm2: f64) -> f64 {
    2.0 * RHO_CU_20C_OHM_MM2_PER_M * length_m / cross_section_mm2
}

/// The aggregated far-end load of one circuit for one step.
/// Knees are sorted in descending order and distinct; the per-knee vectors
/// are pre-sized at construction and rewritten each step (no allocation).
#[derive(Debug, Clone, Default)]
pub struct FarEnd {
    /// Distinct knee voltages, descending, V.
    pub knees_v: Vec<f64>,
    /// Constant power of the loads at each knee that draw this step, W.
    pub knee_p_w: Vec<f64>,
    /// Constant current of the loads at each knee that draw this step, A.
    pub knee_i_a: Vec<f64>,
    /// Pure conductance (resistive loads and faults), S.
    pub g_s: f64,
    /// Σ `knee_p_w` and Σ `knee_i_a`, set by [`FarEnd::finish`].
    p_sum: f64,
    i_sum: f64,
}

/// The solution of a circuit at a given bus voltage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CircuitSolution {
    /// Load-end voltage, V.
    pub v_load: f64,
    /// Current from the bus into the circuit, A.
    pub current_a: f64,
    /// d(current)/d(bus voltage), S.
    pub di_dv: f64,
}

impl FarEnd {
    /// Builds the knee list (descending, de-duplicated) from every knee a
    /// load of this circuit may have.
    pub fn with_knees(mut knees: Vec<f64>) -> Self {
        knees.sort_by(|a, b| b.total_cmp(a));
        knees.dedup();
        let n = knees.len();
        Self {
            knees_v: knees,
            knee_p_w: vec![0.0; n],
            knee_i_a: vec![0.0; n],
            g_s: 0.0,
            p_sum: 0.0,
            i_sum: 0.0,
        }
    }

    /// Index of a knee voltage in the list.
    pub fn knee_index(&self, knee_v: f64) -> usize {
        self.knees_v
            .iter()
            .position(|&k| k == knee_v)
            .expect("knee registered at construction")
    }

    pub fn clear(&mut self) {
        self.knee_p_w.iter_mut().for_each(|p| *p = 0.0);
        self.knee_i_a.iter_mut().for_each(|i| *i = 0.0);
        self.g_s = 0.0;
        self.p_sum = 0.0;
        self.i_sum = 0.0;
    }

    /// Call after writing the per-knee loads of a step, before solving.
    pub fn finish(&mut self) {
        self.p_sum = self.knee_p_w.iter().sum();
        self.i_sum = self.knee_i_a.iter().sum();
    }

    /// Power a constant-power load of nominal `p_w` with knee `knee_v` draws at `v`.
    #[inline]
    pub fn cp_power(p_w: f64, knee_v: f64, v: f64) -> f64 {
        if v >= knee_v {
            p_w
        } else {
            p_w * (v / knee_v) * (v / knee_v)
        }
    }

    /// Current a constant-current load of nominal `i_a` with knee `knee_v` draws at `v`.
    #[inline]
    pub fn cc_current(i_a: f64, knee_v: f64, v: f64) -> f64 {
        if v >= knee_v {
            i_a
        } else {
            i_a * v / knee_v
        }
    }

    /// Solves the circuit fed at `v_bus` through loop resistance `r_ohm`.
    pub fn solve(&self, v_bus: f64, r_ohm: f64) -> CircuitSolution {
        if v_bus <= 0.0 {
            // The solver never asks below 0 V; be safe anyway.
            return CircuitSolution::default();
        }
        let inv_r = 1.0 / r_ohm;
        let mut p = self.p_sum;
        let mut i = self.i_sum;
        let mut g = self.g_s;
        let n = self.knees_v.len();
        let mut upper = f64::INFINITY;
        for j in 0..=n {
            let lower = if j < n { self.knees_v[j] } else { 0.0 };
            if j == n {
                p = 0.0;
                i = 0.0;
            }
            let a = inv_r + g;
            let b = v_bus * inv_r - i;
            let disc = b * b - 4.0 * a * p;
            if disc >= 0.0 && b > 0.0 {
                let sq = disc.sqrt();
                let x1 = (b + sq) / (2.0 * a);
                let x2 = if p > 0.0 { 2.0 * p / (b + sq) } else { 0.0 };
                let x = if x1 >= lower && x1 < upper {
                    Some(x1)
                } else if x2 >= lower && x2 < upper && x2 > 0.0 {
                    Some(x2)
                } else {
                    None
                };
                if let Some(x) = x {
                    let x = x.min(v_bus);
                    let denom = 2.0 * a * x - b;
                    let dx_dv = if denom.abs() > 1e-12 * b.abs().max(1e-12) {
                        (x * inv_r) / denom
                    } else {
                        // At the fold the slope is unbounded; the solver's
                        // bracket takes over.
                        -1e12
                    };
                    let current = (v_bus - x) * inv_r;
                    return CircuitSolution {
                        v_load: x,
                        current_a: current.max(0.0),
                        di_dv: (1.0 - dx_dv) * inv_r,
                    };
                }
            }
            if j == n {
                break;
            }
            // Step below knee j: its loads become resistive.
            let k = self.knees_v[j];
            let pk = self.knee_p_w[j];
            let ik = self.knee_i_a[j];
            p -= pk;
            i -= ik;
            g += pk / (k * k) + ik / k;
            upper = k;
        }
        // Bottom region always has the root V/(1 + R G); reaching here means
        // rounding placed it outside; fall back to it.
        let a = inv_r + g;
        let x = v_bus * inv_r / a;
        CircuitSolution {
            v_load: x,
            current_a: (v_bus - x) * inv_r,
            di_dv: (1.0 - inv_r / a) * inv_r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copper_loop_resistance() {
        // 20 m of 1.5 mm² out and back: 2 · 20 / 58 / 1.5 = 0.4598 Ω.
        let r = loop_resistance_ohm(20.0, 1.5);
        assert!((r - 0.459_77).abs() < 1e-4, "{r}");
    }

    #[test]
    fn resistive_circuit_is_a_divider() {
        let mut f = FarEnd::with_knees(vec![]);
        f.g_s = 1.0 / 10.0;
        let s = f.solve(48.0, 0.5);
        assert!((s.current_a - 48.0 / 10.5).abs() < 1e-12);
        assert!((s.v_load - 48.0 * 10.0 / 10.5).abs() < 1e-12);
    }

    #[test]
    fn constant_power_upper_root() {
        let mut f = FarEnd::with_knees(vec![36.0]);
        f.knee_p_w[0] = 200.0;
        f.finish();
        let r = 0.5;
        let s = f.solve(48.0, r);
        // Check the circuit equation and that the power is delivered.
        assert!((s.v_load * s.current_a - 200.0).abs() < 1e-9);
        assert!(((48.0 - s.v_load) / r - s.current_a).abs() < 1e-9);
        assert!(s.v_load > 45.0);
        // Numerical derivative matches.
        let h = 1e-6;
        let d = (f.solve(48.0 + h, r).current_a - f.solve(48.0 - h, r).current_a) / (2.0 * h);
        assert!((d - s.di_dv).abs() < 1e-5, "{d} vs {}", s.di_dv);
    }

    #[test]
    fn below_knee_is_resistive_and_continuous() {
        let mut f = FarEnd::with_knees(vec![36.0, 20.0]);
        f.knee_p_w[0] = 100.0;
        f.knee_i_a[1] = 1.0;
        f.finish();
        let r = 0.2;
        let mut last = 0.0;
        let mut v = 0.5;
        while v < 60.0 {
            let s = f.solve(v, r);
            let pl = FarEnd::cp_power(100.0, 36.0, s.v_load)
                + s.v_load * FarEnd::cc_current(1.0, 20.0, s.v_load);
            assert!((pl - s.v_load * s.current_a).abs() < 1e-6, "at {v}");
            assert!((s.current_a - last).abs() < 1.0, "jump at {v}");
            last = s.current_a;
            v += 0.01;
        }
    }
}
