//! The MPPT converter that puts the array's power onto the DC bus.
//!
//! It holds the array at its maximum power point unless the delivered power
//! would exceed the converter's rating or a curtailment setpoint (an output
//! power cap in W), in which case it moves the operating point off the MPP
//! towards open circuit until the delivered power equals the cap. The
//! conversion efficiency is flat or a curve of efficiency against DC input
//! power as a fraction of the rated output (linear interpolation, held
//! constant beyond the end points).

use serde::Deserialize;

use super::array::ArrayIv;
use super::single_diode::brent;

/// Converter parameters as written in the `[converter]` table.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConverterConfig {
    /// Rated (maximum) output power onto the bus, W.
    pub rated_output_w: f64,
    /// Flat conversion efficiency (0, 1]. Give this or `efficiency_curve`.
    pub efficiency: Option<f64>,
    /// `[[input_fraction, efficiency], ...]`: efficiency against DC input
    /// power / rated output power, fractions strictly increasing.
    pub efficiency_curve: Option<Vec<[f64; 2]>>,
    /// MPPT operating window `[min, max]` of array voltage, V (optional;
    /// default unlimited). Outside it the converter holds the nearest edge;
    /// with the array's open-circuit voltage below `min` it stays off.
    pub mppt_voltage_range_v: Option<[f64; 2]>,
    /// Absolute maximum input voltage, V (optional): with the array's
    /// open-circuit voltage above it the converter stays off (protection).
    pub max_input_voltage_v: Option<f64>,
}

/// Conversion efficiency.
#[derive(Debug, Clone, PartialEq)]
pub enum Efficiency {
    Flat(f64),
    /// (input fraction of rating, efficiency), increasing fractions.
    Curve(Vec<(f64, f64)>),
}

/// What limited the delivered power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    /// Operating at the maximum power point.
    #[default]
    None,
    /// Clipped at the converter's rated output.
    Rating,
    /// Held at the curtailment setpoint.
    Curtailment,
    /// The MPP lies outside the MPPT voltage window; held at its edge.
    VoltageWindow,
    /// The converter is off: the array's open-circuit voltage is outside
    /// its input range, or a limit cannot be met inside the window.
    Off,
}

/// The converter's operating point.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ConverterOutput {
    /// Array DC power at the maximum power point, W.
    pub p_mpp_dc_w: f64,
    /// Output the converter could deliver at the MPP with no rating or
    /// curtailment limit (efficiency × MPP power), W.
    pub p_available_w: f64,
    /// Array DC power at the actual operating point, W.
    pub p_dc_w: f64,
    /// Power delivered onto the bus, W (≤ `p_available_w`).
    pub p_output_w: f64,
    /// Array voltage at the operating point, V.
    pub v_array_v: f64,
    /// Array current at the operating point, A.
    pub i_array_a: f64,
    pub limit: Limit,
}

/// An MPPT converter with efficiency, rating and curtailment.
#[derive(Debug, Clone, PartialEq)]
pub struct MpptConverter {
    efficiency: Efficiency,
    rated_output_w: f64,
    window_v: (f64, f64),
    max_input_v: f64,
}

impl MpptConverter {
    /// Validates a `[converter]` table.
    pub fn new(cfg: &ConverterConfig) -> Result<Self, String> {
        if !(cfg.rated_output_w.is_finite() && cfg.rated_output_w > 0.0) {
            return Err(format!(
                "converter.rated_output_w = {}: must be > 0",
                cfg.rated_output_w
            ));
        }
        let eff_ok = |e: f64| e.is_finite() && e > 0.0 && e <= 1.0;
        let efficiency = match (cfg.efficiency, &cfg.efficiency_curve) {
            (Some(e), None) => {
                if !eff_ok(e) {
                    return Err(format!("converter.efficiency = {e}: must be in (0, 1]"));
                }
                Efficiency::Flat(e)
            }
            (None, Some(curve)) => {
                if curve.is_empty() {
                    return Err("converter.efficiency_curve is empty".into());
                }
                let mut prev = -1.0;
                for [x, e] in curve {
                    if !(x.is_finite() && *x >= 0.0 && *x > prev) {
                        return Err(format!(
                            "converter.efficiency_curve: input fractions must be >= 0 and strictly increasing (at {x})"
                        ));
                    }
                    if !eff_ok(*e) {
                        return Err(format!(
                            "converter.efficiency_curve: efficiency {e} at {x} not in (0, 1]"
                        ));
                    }
                    prev = *x;
                }
                Efficiency::Curve(curve.iter().map(|[x, e]| (*x, *e)).collect())
            }
            (Some(_), Some(_)) => {
                return Err("converter: give `efficiency` or `efficiency_curve`, not both".into())
            }
            (None, None) => {
                return Err("converter: missing `efficiency` or `efficiency_curve`".into())
            }
        };
        let window_v = match cfg.mppt_voltage_range_v {
            None => (0.0, f64::INFINITY),
            Some([lo, hi]) => {
                if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && hi > lo) {
                    return Err(format!(
                        "converter.mppt_voltage_range_v = [{lo}, {hi}]: need 0 <= min < max"
                    ));
                }
                (lo, hi)
            }
        };
        let max_input_v = match cfg.max_input_voltage_v {
            None => f64::INFINITY,
            Some(v) => {
                if !(v.is_finite() && v > 0.0) {
                    return Err(format!("converter.max_input_voltage_v = {v}: must be > 0"));
                }
                if window_v.1.is_finite() && v < window_v.1 {
                    return Err(format!(
                        "converter.max_input_voltage_v = {v}: below the MPPT window maximum {}",
                        window_v.1
                    ));
                }
                v
            }
        };
        Ok(MpptConverter {
            efficiency,
            rated_output_w: cfg.rated_output_w,
            window_v,
            max_input_v,
        })
    }

    pub fn efficiency(&self) -> &Efficiency {
        &self.efficiency
    }
    pub fn rated_output_w(&self) -> f64 {
        self.rated_output_w
    }

    /// Efficiency at a DC input power, W.
    pub fn efficiency_at(&self, p_in_w: f64) -> f64 {
        match &self.efficiency {
            Efficiency::Flat(e) => *e,
            Efficiency::Curve(pts) => {
                let x = p_in_w / self.rated_output_w;
                let first = pts[0];
                let last = pts[pts.len() - 1];
                if x.is_nan() || x <= first.0 {
                    return first.1;
                }
                if x >= last.0 {
                    return last.1;
                }
                let k = pts.partition_point(|p| p.0 <= x);
                let (x0, y0) = pts[k - 1];
                let (x1, y1) = pts[k];
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        }
    }

    /// Output power for a DC input power, W.
    pub fn output_for_input(&self, p_in_w: f64) -> f64 {
        let p = p_in_w.max(0.0);
        p * self.efficiency_at(p)
    }

    /// The DC input power in `[0, p_in_max_w]` that gives `p_out_w` output
    /// (bisection; the output is continuous in the input).
    pub fn input_for_output(&self, p_out_w: f64, p_in_max_w: f64) -> f64 {
        if let Efficiency::Flat(e) = self.efficiency {
            return (p_out_w / e).clamp(0.0, p_in_max_w.max(0.0));
        }
        let (mut lo, mut hi) = (0.0, p_in_max_w.max(0.0));
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if self.output_for_input(mid) < p_out_w {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Operates on an array I-V curve with an optional curtailment setpoint
    /// (output cap, W; NaN or negative is taken as 0, i.e. no export).
    ///
    /// The operating point is the MPP, or the nearest edge of the MPPT
    /// voltage window; when the output would exceed the rating or the
    /// setpoint, the point moves towards open circuit (or, if the window
    /// does not reach far enough, back towards its lower edge) until the
    /// output equals the cap. If no point in the window meets the cap, the
    /// converter switches off.
    pub fn operate(&self, iv: &ArrayIv, curtail_w: Option<f64>) -> ConverterOutput {
        let s = iv.summary();
        let off = |limit| ConverterOutput {
            p_mpp_dc_w: s.p_mp,
            p_available_w: 0.0,
            p_dc_w: 0.0,
            p_output_w: 0.0,
            v_array_v: s.v_oc,
            i_array_a: 0.0,
            limit,
        };
        if s.p_mp.is_nan() || s.p_mp <= 0.0 {
            return ConverterOutput {
                v_array_v: s.v_oc,
                ..ConverterOutput::default()
            };
        }
        let (lo, hi) = (self.window_v.0, self.window_v.1.min(s.v_oc));
        if s.v_oc > self.max_input_v || s.v_oc < lo {
            return off(Limit::Off);
        }
        let v_best = s.v_mp.clamp(lo, hi);
        let (p_best, i_best, base_limit) = if v_best == s.v_mp {
            (s.p_mp, s.i_mp, Limit::None)
        } else {
            let i = iv.i_from_v(v_best).max(0.0);
            (v_best * i, i, Limit::VoltageWindow)
        };
        let p_available = self.output_for_input(p_best);
        let mut cap = self.rated_output_w;
        let mut limit = Limit::Rating;
        if let Some(c) = curtail_w {
            let c = if c.is_nan() { 0.0 } else { c.max(0.0) };
            if c < cap {
                cap = c;
                limit = Limit::Curtailment;
            }
        }
        if p_available <= cap {
            return ConverterOutput {
                p_mpp_dc_w: s.p_mp,
                p_available_w: p_available,
                p_dc_w: p_best,
                p_output_w: p_available,
                v_array_v: v_best,
                i_array_a: i_best,
                limit: base_limit,
            };
        }
        let p_in = self.input_for_output(cap, p_best);
        let power = |v: f64| v * iv.i_from_v(v);
        let xtol = 4.0 * f64::EPSILON * s.v_oc;
        // Towards open circuit first (power falls from v_best to hi) ...
        let v = if hi > v_best && power(hi) <= p_in {
            brent(|v| power(v) - p_in, v_best, hi, xtol)
        } else if v_best > lo && power(lo) <= p_in {
            // ... else back towards the window's lower edge.
            brent(|v| power(v) - p_in, lo, v_best, xtol)
        } else {
            return ConverterOutput {
                p_available_w: p_available,
                ..off(limit)
            };
        };
        let i = iv.i_from_v(v).max(0.0);
        let p_dc = (v * i).max(0.0);
        let p_out = self.output_for_input(p_dc).min(cap).min(p_available);
        ConverterOutput {
            p_mpp_dc_w: s.p_mp,
            p_available_w: p_available,
            p_dc_w: p_dc,
            p_output_w: p_out,
            v_array_v: v,
            i_array_a: i,
            limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_interpolates_and_holds_ends() {
        let c = MpptConverter::new(&ConverterConfig {
            rated_output_w: 1000.0,
            efficiency: None,
            efficiency_curve: Some(vec![[0.1, 0.9], [0.5, 0.97], [1.0, 0.96]]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.efficiency_at(0.0), 0.9);
        assert!((c.efficiency_at(300.0) - 0.935).abs() < 1e-12);
        assert_eq!(c.efficiency_at(2000.0), 0.96);
        let p_in = c.input_for_output(500.0, 2000.0);
        assert!((c.output_for_input(p_in) - 500.0).abs() < 1e-9);
    }

    fn array() -> crate::pv::PvArray {
        let m = crate::pv::CecModule::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("params/pv/modules/Canadian_Solar_Inc__CS1U_400MS.toml"),
        )
        .unwrap();
        crate::pv::PvArray::new(m, 4, 2).unwrap()
    }

    fn conv(window: Option<[f64; 2]>, vmax: Option<f64>) -> MpptConverter {
        MpptConverter::new(&ConverterConfig {
            rated_output_w: 5000.0,
            efficiency: Some(0.96),
            mppt_voltage_range_v: window,
            max_input_voltage_v: vmax,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn voltage_window_and_input_limit() {
        let iv = array().iv(900.0, 40.0);
        let s = iv.summary(); // v_mp ~ 165 V, v_oc ~ 203 V
        let free = conv(None, None).operate(&iv, None);
        assert_eq!(free.limit, Limit::None);
        assert!((free.p_output_w - 0.96 * s.p_mp).abs() < 1e-9);
        // Window below the MPP: held at its top edge, less power.
        let w = conv(Some([60.0, 120.0]), None).operate(&iv, None);
        assert_eq!(w.limit, Limit::VoltageWindow);
        assert!((w.v_array_v - 120.0).abs() < 1e-12 && w.p_output_w < free.p_output_w);
        assert!(w.p_output_w <= w.p_available_w);
        // Curtailed inside that window: moves down towards its lower edge.
        let c = conv(Some([60.0, 120.0]), None).operate(&iv, Some(1500.0));
        assert_eq!(c.limit, Limit::Curtailment);
        assert!(
            (c.p_output_w - 1500.0).abs() < 1e-6 && c.v_array_v < 120.0 && c.v_array_v >= 60.0,
            "{c:?}"
        );
        // A cap the window cannot reach: off.
        let c = conv(Some([60.0, 120.0]), None).operate(&iv, Some(10.0));
        assert_eq!((c.limit, c.p_output_w), (Limit::Curtailment, 0.0));
        // Open-circuit voltage below the window or above the input limit: off.
        let o = conv(Some([250.0, 400.0]), None).operate(&iv, None);
        assert_eq!((o.limit, o.p_output_w), (Limit::Off, 0.0));
        let o = conv(None, Some(150.0)).operate(&iv, None);
        assert_eq!((o.limit, o.p_output_w), (Limit::Off, 0.0));
        assert!(MpptConverter::new(&ConverterConfig {
            rated_output_w: 1.0,
            efficiency: Some(0.9),
            mppt_voltage_range_v: Some([100.0, 50.0]),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn bad_configs_are_rejected() {
        let bad = |e: Option<f64>, curve: Option<Vec<[f64; 2]>>| {
            MpptConverter::new(&ConverterConfig {
                rated_output_w: 1000.0,
                efficiency: e,
                efficiency_curve: curve,
                ..Default::default()
            })
            .is_err()
        };
        assert!(bad(None, None));
        assert!(bad(Some(1.2), None));
        assert!(bad(Some(0.9), Some(vec![[0.1, 0.9]])));
        assert!(bad(None, Some(vec![[0.5, 0.9], [0.2, 0.9]])));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn output_is_bounded_and_finite(
            g in -100.0f64..1500.0,
            t in -40.0f64..90.0,
            lo in 0.0f64..150.0,
            width in 1.0f64..300.0,
            windowed in any::<bool>(),
            cap in proptest::option::of(-100.0f64..5000.0),
            rated in 100.0f64..5000.0,
        ) {
            let m = crate::pv::CecModule::load(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("params/pv/modules/First_Solar__Inc__FS_6420.toml"),
            )
            .unwrap();
            let iv = crate::pv::PvArray::new(m, 2, 3).unwrap().iv(g, t);
            let c = MpptConverter::new(&ConverterConfig {
                rated_output_w: rated,
                efficiency_curve: Some(vec![[0.05, 0.9], [0.3, 0.97], [1.0, 0.95]]),
                mppt_voltage_range_v: windowed.then_some([lo, lo + width]),
                ..Default::default()
            })
            .unwrap();
            let o = c.operate(&iv, cap);
            for x in [o.p_mpp_dc_w, o.p_available_w, o.p_dc_w, o.p_output_w, o.v_array_v, o.i_array_a] {
                prop_assert!(x.is_finite() && x >= 0.0, "{o:?}");
            }
            prop_assert!(o.p_output_w <= o.p_available_w * (1.0 + 1e-12), "{o:?}");
            prop_assert!(o.p_output_w <= rated * (1.0 + 1e-12));
            if let Some(cap) = cap {
                prop_assert!(o.p_output_w <= cap.max(0.0) * (1.0 + 1e-9) + 1e-9, "{o:?}");
            }
            prop_assert!(o.p_dc_w <= o.p_mpp_dc_w * (1.0 + 1e-12) + 1e-12);
            if windowed && o.p_output_w > 0.0 {
                prop_assert!(o.v_array_v >= lo * (1.0 - 1e-12) && o.v_array_v <= (lo + width) * (1.0 + 1e-12), "{o:?}");
            }
        }
    }
}
