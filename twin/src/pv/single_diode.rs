//! The single-diode model: CEC/De Soto parameter translation
//! ([`calcparams_cec`], as `pvlib.pvsystem.calcparams_cec`) and an explicit
//! solution of the implicit diode equation
//!
//! `I = I_L - I_0 (exp((V + I R_s)/a) - 1) - (V + I R_s)/R_sh`
//!
//! by Lambert's W (as in `pvlib.singlediode` with `method='lambertw'`):
//! [`DiodeParams::i_from_v`], [`DiodeParams::v_from_i`], `i_sc`, `v_oc`.
//! The maximum power point is found without W: writing the diode voltage
//! `Vd = V + I R_s`, both `I` and `V` are explicit in `Vd`, and
//! `dP/dVd = I (1 + R_s g) - V g` with `g = I_0/a exp(Vd/a) + 1/R_sh`
//! is bracketed on `[I_sc R_s, V_oc]` and solved by Brent's method to
//! machine precision.

use super::lambertw::lambert_w0_exp;
use super::module::CecModule;

/// Band gap at reference temperature, eV (crystalline silicon; CEC default).
pub const EG_REF_EV: f64 = 1.121;
/// Band gap temperature dependence, 1/K.
pub const DEGDT_PER_K: f64 = -0.0002677;
/// Reference irradiance, W/m².
pub const IRRAD_REF_W_M2: f64 = 1000.0;
/// Reference cell temperature, °C.
pub const TEMP_REF_C: f64 = 25.0;
/// Boltzmann constant, eV/K (CODATA 2018, as scipy.constants).
pub const BOLTZMANN_EV_K: f64 = 8.617_333_262_145_179e-5;
/// Cell temperatures are clamped into this range, °C (the model is not
/// meaningful outside it, and it keeps every exponential finite).
pub const TEMP_RANGE_C: (f64, f64) = (-100.0, 150.0);
/// Effective irradiance is clamped to at most this, W/m².
pub const IRRADIANCE_MAX_W_M2: f64 = 10_000.0;

/// The five single-diode parameters at operating conditions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiodeParams {
    /// I_L, A.
    pub photocurrent: f64,
    /// I_0, A.
    pub saturation_current: f64,
    /// R_s, Ω.
    pub resistance_series: f64,
    /// R_sh, Ω (`+inf` at zero irradiance).
    pub resistance_shunt: f64,
    /// a = n N_s k T / q, V.
    pub n_ns_vth: f64,
}

/// The characteristic points of an I-V curve.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IvSummary {
    pub i_sc: f64,
    pub v_oc: f64,
    pub i_mp: f64,
    pub v_mp: f64,
    pub p_mp: f64,
}

/// CEC parameter translation (De Soto et al. 2006 with the CEC `Adjust` on
/// `alpha_sc`), exactly as `pvlib.pvsystem.calcparams_cec` with its
/// defaults (EgRef 1.121 eV, dEgdT −0.0002677, 1000 W/m², 25 °C).
///
/// Irradiance that is not finite or not positive gives zero photocurrent
/// and an infinite shunt resistance (no output). Irradiance is clamped to
/// [`IRRADIANCE_MAX_W_M2`] and temperature to [`TEMP_RANGE_C`]; a
/// non-finite temperature is taken as the reference 25 °C.
pub fn calcparams_cec(m: &CecModule, effective_irradiance: f64, temp_cell_c: f64) -> DiodeParams {
    let g = if effective_irradiance.is_finite() && effective_irradiance > 0.0 {
        effective_irradiance.min(IRRADIANCE_MAX_W_M2)
    } else {
        0.0
    };
    let t = if temp_cell_c.is_finite() {
        temp_cell_c.clamp(TEMP_RANGE_C.0, TEMP_RANGE_C.1)
    } else {
        TEMP_REF_C
    };
    let alpha = m.alpha_sc * (1.0 - m.adjust / 100.0);
    let tref_k = TEMP_REF_C + 273.15;
    let tcell_k = t + 273.15;
    let e_g = EG_REF_EV * (1.0 + DEGDT_PER_K * (tcell_k - tref_k));
    let n_ns_vth = m.a_ref * (tcell_k / tref_k);
    let il = g / IRRAD_REF_W_M2 * (m.i_l_ref + alpha * (tcell_k - tref_k));
    let i0 = m.i_o_ref
        * (tcell_k / tref_k).powi(3)
        * (EG_REF_EV / (BOLTZMANN_EV_K * tref_k) - e_g / (BOLTZMANN_EV_K * tcell_k)).exp();
    let rsh = if g > 0.0 {
        m.r_sh_ref * (IRRAD_REF_W_M2 / g)
    } else {
        f64::INFINITY
    };
    DiodeParams {
        photocurrent: il.max(0.0),
        saturation_current: i0,
        resistance_series: m.r_s,
        resistance_shunt: rsh,
        n_ns_vth,
    }
}

impl DiodeParams {
    fn gsh(&self) -> f64 {
        1.0 / self.resistance_shunt
    }

    /// True when the module can produce power (positive photocurrent).
    pub fn is_lit(&self) -> bool {
        self.photocurrent > 0.0
            && self.saturation_current > 0.0
            && self.n_ns_vth > 0.0
            && self.photocurrent.is_finite()
    }

    /// Current at terminal voltage `v` (Jain & Kapoor 2004, eqn 2).
    pub fn i_from_v(&self, v: f64) -> f64 {
        let (il, i0, rs, gsh, a) = (
            self.photocurrent,
            self.saturation_current,
            self.resistance_series,
            self.gsh(),
            self.n_ns_vth,
        );
        if rs == 0.0 {
            return il - i0 * (v / a).exp_m1() - gsh * v;
        }
        let d = rs * gsh + 1.0;
        let log_arg = (rs * i0 / (a * d)).ln() + (rs * (il + i0) + v) / (a * d);
        let w = lambert_w0_exp(log_arg);
        (il + i0 - v * gsh) / d - (a / rs) * w
    }

    /// Voltage at terminal current `i` (Jain & Kapoor 2004, eqn 3). Where
    /// the shunt is so large that the W form would cancel catastrophically
    /// (irradiance below ~0.1 W/m²), Newton's method on the diode equation
    /// is used instead, started from the no-shunt solution.
    pub fn v_from_i(&self, i: f64) -> f64 {
        let (il, i0, rs, gsh, a) = (
            self.photocurrent,
            self.saturation_current,
            self.resistance_series,
            self.gsh(),
            self.n_ns_vth,
        );
        let no_shunt = a * ((il - i) / i0).ln_1p() - i * rs;
        if gsh == 0.0 {
            return no_shunt;
        }
        let ratio = (il + i0 - i) / (gsh * a);
        if ratio.abs() < 1e6 {
            let log_arg = (i0 / (gsh * a)).ln() + ratio;
            let w = lambert_w0_exp(log_arg);
            return (il + i0 - i) / gsh - i * rs - a * w;
        }
        // f(Vd) = I_L - I_0 expm1(Vd/a) - Vd G_sh - i, decreasing and
        // concave; Newton from the right (the no-shunt root) converges
        // monotonically.
        let mut vd = no_shunt + i * rs;
        for _ in 0..100 {
            let e = (vd / a).exp();
            let f = il - i0 * (vd / a).exp_m1() - vd * gsh - i;
            let fp = -i0 * e / a - gsh;
            let next = vd - f / fp;
            if !next.is_finite() {
                break;
            }
            let done = (next - vd).abs() <= 4.0 * f64::EPSILON * next.abs().max(1e-300);
            vd = next;
            if done {
                break;
            }
        }
        vd - i * rs
    }

    /// Short-circuit current, A.
    pub fn i_sc(&self) -> f64 {
        if !self.is_lit() {
            return 0.0;
        }
        self.i_from_v(0.0)
    }

    /// Open-circuit voltage, V.
    pub fn v_oc(&self) -> f64 {
        if !self.is_lit() {
            return 0.0;
        }
        self.v_from_i(0.0).max(0.0)
    }

    /// Terminal (current, voltage) at diode voltage `vd`.
    fn at_vd(&self, vd: f64) -> (f64, f64) {
        let i = self.photocurrent
            - self.saturation_current * (vd / self.n_ns_vth).exp_m1()
            - vd * self.gsh();
        (i, vd - i * self.resistance_series)
    }

    /// dP/dVd at diode voltage `vd`.
    fn dp_dvd(&self, vd: f64) -> f64 {
        let (i, v) = self.at_vd(vd);
        let g = self.saturation_current / self.n_ns_vth * (vd / self.n_ns_vth).exp() + self.gsh();
        i * (1.0 + self.resistance_series * g) - v * g
    }

    /// Short-circuit current, open-circuit voltage and maximum power point.
    /// All zero when the module is dark.
    pub fn solve(&self) -> IvSummary {
        if !self.is_lit() {
            return IvSummary::default();
        }
        let i_sc = self.i_sc();
        let v_oc = self.v_oc();
        if !(i_sc > 0.0 && v_oc > 0.0) {
            return IvSummary {
                i_sc: i_sc.max(0.0),
                v_oc,
                ..IvSummary::default()
            };
        }
        let lo = i_sc * self.resistance_series;
        let hi = v_oc;
        let vd = brent(|x| self.dp_dvd(x), lo, hi, 4.0 * f64::EPSILON * hi);
        let (i_mp, v_mp) = self.at_vd(vd);
        IvSummary {
            i_sc,
            v_oc,
            i_mp,
            v_mp,
            p_mp: i_mp * v_mp,
        }
    }

    /// The operating point `(v, i)` on the high-voltage side of the maximum
    /// power point (between `v_mp` and `v_oc`) where the power is `p_w`.
    /// `p_w` at or above `p_mp` gives the MPP; at or below zero gives open
    /// circuit.
    pub fn point_at_power(&self, summary: &IvSummary, p_w: f64) -> (f64, f64) {
        if p_w.is_nan() || p_w >= summary.p_mp {
            return (summary.v_mp, summary.i_mp);
        }
        if p_w <= 0.0 {
            return (summary.v_oc, 0.0);
        }
        let lo = summary.v_mp + summary.i_mp * self.resistance_series;
        let hi = summary.v_oc;
        let vd = brent(
            |x| {
                let (i, v) = self.at_vd(x);
                i * v - p_w
            },
            lo,
            hi,
            4.0 * f64::EPSILON * hi,
        );
        let (i, v) = self.at_vd(vd);
        (v, i)
    }
}

/// Brent's root finder on `[a, b]`. If the ends do not bracket a root the
/// end with the smaller |f| is returned. Never returns a value outside
/// `[a, b]`.
pub(crate) fn brent<F: Fn(f64) -> f64>(f: F, a: f64, b: f64, xtol: f64) -> f64 {
    let (mut a, mut b) = (a, b);
    let mut fa = f(a);
    let mut fb = f(b);
    if fa == 0.0 {
        return a;
    }
    if fb == 0.0 {
        return b;
    }
    if !(fa.is_finite() && fb.is_finite()) || fa.signum() == fb.signum() {
        return if fa.abs() <= fb.abs() || !fb.is_finite() {
            a
        } else {
            b
        };
    }
    let mut c = a;
    let mut fc = fa;
    let mut d = b - a;
    let mut e = d;
    for _ in 0..200 {
        if fb.signum() == fc.signum() {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol = 2.0 * f64::EPSILON * b.abs() + 0.5 * xtol;
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return b;
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            let s = fb / fa;
            let (mut p, mut q);
            if a == c {
                p = 2.0 * m * s;
                q = 1.0 - s;
            } else {
                let qq = fa / fc;
                let r = fb / fc;
                p = s * (2.0 * m * qq * (qq - r) - (b - a) * (r - 1.0));
                q = (qq - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = f(b);
        if !fb.is_finite() {
            return a;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> CecModule {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("params/pv/modules/Canadian_Solar_Inc__CS1U_400MS.toml"),
        )
        .unwrap();
        CecModule::parse(std::path::Path::new("m.toml"), &text).unwrap()
    }

    #[test]
    fn stc_matches_datasheet_roughly() {
        let m = module();
        let s = calcparams_cec(&m, 1000.0, 25.0).solve();
        assert!(
            (s.p_mp - m.stc_w.unwrap()).abs() / m.stc_w.unwrap() < 0.01,
            "{s:?}"
        );
        assert!((s.v_oc - m.v_oc_ref.unwrap()).abs() < 0.1, "{s:?}");
        assert!((s.i_sc - m.i_sc_ref.unwrap()).abs() < 0.05, "{s:?}");
    }

    #[test]
    fn i_and_v_are_inverse_and_mpp_is_a_maximum() {
        let m = module();
        let p = calcparams_cec(&m, 600.0, 40.0);
        let s = p.solve();
        for k in 0..=20 {
            let v = s.v_oc * k as f64 / 20.0;
            let i = p.i_from_v(v);
            let v2 = p.v_from_i(i);
            assert!((v2 - v).abs() < 1e-9 * s.v_oc, "{v} {v2}");
            assert!(v * i <= s.p_mp * (1.0 + 1e-15));
        }
        assert!((p.i_from_v(s.v_mp) - s.i_mp).abs() < 1e-12);
        assert!(p.i_from_v(s.v_oc).abs() < 1e-12);
    }

    #[test]
    fn dark_or_negative_irradiance_gives_zero() {
        let m = module();
        for g in [0.0, -10.0, f64::NAN, f64::NEG_INFINITY] {
            let s = calcparams_cec(&m, g, 25.0).solve();
            assert_eq!(s, IvSummary::default());
        }
    }

    #[test]
    fn tiny_irradiance_uses_the_newton_branch_and_stays_sane() {
        let m = module();
        let p = calcparams_cec(&m, 1e-4, 25.0);
        let s = p.solve();
        assert!(
            s.v_oc.is_finite() && s.v_oc >= 0.0 && s.p_mp >= 0.0,
            "{s:?}"
        );
        // The diode equation holds at v_oc.
        let i = p.i_from_v(s.v_oc);
        assert!(i.abs() < 1e-12, "{i}");
    }

    #[test]
    fn point_at_power_sits_above_vmp() {
        let m = module();
        let p = calcparams_cec(&m, 800.0, 30.0);
        let s = p.solve();
        let (v, i) = p.point_at_power(&s, 0.5 * s.p_mp);
        assert!(v > s.v_mp && v < s.v_oc);
        assert!((v * i - 0.5 * s.p_mp).abs() < 1e-9 * s.p_mp);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Over the parameter ranges found in the CEC database and beyond:
        /// finite, consistent solutions, and the MPP is a maximum.
        #[test]
        fn solutions_are_consistent(
            il in 1e-3f64..20.0,
            log_i0 in -40.0f64..-14.0,
            rs in prop_oneof![Just(0.0), 1e-4f64..60.0],
            log_rsh in 0.3f64..7.0,
            a in 0.1f64..15.0,
        ) {
            let p = DiodeParams {
                photocurrent: il,
                saturation_current: log_i0.exp(),
                resistance_series: rs,
                resistance_shunt: 10f64.powf(log_rsh),
                n_ns_vth: a,
            };
            let s = p.solve();
            for x in [s.i_sc, s.v_oc, s.i_mp, s.v_mp, s.p_mp] {
                prop_assert!(x.is_finite() && x >= 0.0, "{s:?} {p:?}");
            }
            prop_assert!(s.i_sc <= il * (1.0 + 1e-12));
            let scale = s.i_sc.max(1e-300);
            prop_assert!(p.i_from_v(s.v_oc).abs() <= 1e-9 * scale, "{s:?} {p:?}");
            prop_assert!((p.i_from_v(s.v_mp) - s.i_mp).abs() <= 1e-9 * scale, "{s:?} {p:?}");
            for f in [0.5, 0.9, 0.99, 1.01, 1.1] {
                let v = (s.v_mp * f).min(s.v_oc);
                prop_assert!(v * p.i_from_v(v) <= s.p_mp * (1.0 + 1e-12), "{s:?} {p:?} at {v}");
            }
        }
    }
}
