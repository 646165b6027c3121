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

/// Converter parameters as written in the `[converter]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConverterConfig {
    /// Rated (maximum) output power onto the bus, W.
    pub rated_output_w: f64,
    /// Flat conversion efficiency (0, 1]. Give this or `efficiency_curve`.
    pub efficiency: Option<f64>,
    /// `[[input_fraction, efficiency], ...]`: efficiency against DC input
    /// power / rated output power, fractions strictly increasing.
    pub efficiency_curve: Option<Vec<[f64; 2]>>,
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
        Ok(MpptConverter {
            efficiency,
            rated_output_w: cfg.rated_output_w,
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
    pub fn operate(&self, iv: &ArrayIv, curtail_w: Option<f64>) -> ConverterOutput {
        let s = iv.summary();
        let p_available = self.output_for_input(s.p_mp);
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
                p_dc_w: s.p_mp,
                p_output_w: p_available,
                v_array_v: s.v_mp,
                i_array_a: s.i_mp,
                limit: Limit::None,
            };
        }
        let p_in = self.input_for_output(cap, s.p_mp);
        let (v, i) = iv.point_at_power(p_in);
        let p_dc = (v * i).max(0.0);
        let p_out = self.output_for_input(p_dc).min(cap).min(p_available);
        ConverterOutput {
            p_mpp_dc_w: s.p_mp,
            p_available_w: p_available,
            p_dc_w: p_dc,
            p_output_w: p_out,
            v_array_v: v,
            i_array_a: i.max(0.0),
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
        })
        .unwrap();
        assert_eq!(c.efficiency_at(0.0), 0.9);
        assert!((c.efficiency_at(300.0) - 0.935).abs() < 1e-12);
        assert_eq!(c.efficiency_at(2000.0), 0.96);
        let p_in = c.input_for_output(500.0, 2000.0);
        assert!((c.output_for_input(p_in) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn bad_configs_are_rejected() {
        let bad = |e: Option<f64>, curve: Option<Vec<[f64; 2]>>| {
            MpptConverter::new(&ConverterConfig {
                rated_output_w: 1000.0,
                efficiency: e,
                efficiency_curve: curve,
            })
            .is_err()
        };
        assert!(bad(None, None));
        assert!(bad(Some(1.2), None));
        assert!(bad(Some(0.9), Some(vec![[0.1, 0.9]])));
        assert!(bad(None, Some(vec![[0.5, 0.9], [0.2, 0.9]])));
    }
}
