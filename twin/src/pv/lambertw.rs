//! Lambert's W function, principal branch `W0`, accurate to a few ulp.
//!
//! [`lambert_w0`] takes `x` directly (domain `[-1/e, +inf]`);
//! [`lambert_w0_exp`] takes `ln x` so that arguments far beyond `f64::MAX`
//! (common in the single-diode equations, e.g. `exp(40)` and far more) are
//! handled without overflow: for large `ln x` it solves `w + ln w = ln x`
//! by Newton's method.

const INV_E: f64 = 0.367_879_441_171_442_33;

/// `W0(x)`: the `w >= -1` with `w * exp(w) = x`. NaN below `-1/e` or for NaN.
pub fn lambert_w0(x: f64) -> f64 {
    if x.is_nan() || x < -INV_E {
        return f64::NAN;
    }
    if x == 0.0 {
        return 0.0;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    if x == -INV_E {
        return -1.0;
    }
    // Initial guess.
    let mut w = if x < -0.32 {
        // Series about the branch point.
        let p = (2.0 * (std::f64::consts::E * x + 1.0)).sqrt();
        -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p * p * p
    } else if x < 3.0 {
        let l = x.ln_1p();
        l - l.ln_1p()
    } else {
        let l1 = x.ln();
        let l2 = l1.ln();
        l1 - l2 + l2 / l1
    };
    // Halley's iteration; cubic convergence, so a handful of steps.
    for _ in 0..30 {
        let ew = w.exp();
        let f = w * ew - x;
        let wp1 = w + 1.0;
        if wp1 == 0.0 {
            break;
        }
        let denom = ew * wp1 - (w + 2.0) * f / (2.0 * wp1);
        if denom == 0.0 || !denom.is_finite() {
            break;
        }
        let next = w - f / denom;
        let done = (next - w).abs() <= 4.0 * f64::EPSILON * next.abs().max(f64::MIN_POSITIVE);
        w = next;
        if done {
            break;
        }
    }
    w
}

/// `W0(exp(log_x))`, for any `log_x` including values whose exponential
/// overflows. `log_x = -inf` gives 0.
pub fn lambert_w0_exp(log_x: f64) -> f64 {
    if log_x.is_nan() {
        return f64::NAN;
    }
    if log_x <= 20.0 {
        return lambert_w0(log_x.exp());
    }
    if log_x == f64::INFINITY {
        return f64::INFINITY;
    }
    // Solve f(w) = w + ln w - L = 0 (w > 1 here); f' = 1 + 1/w.
    let l = log_x;
    let mut w = l - l.ln() + l.ln() / l;
    for _ in 0..50 {
        let f = w + w.ln() - l;
        let next = w - f / (1.0 + 1.0 / w);
        let done = (next - w).abs() <= 2.0 * f64::EPSILON * next.abs();
        w = next;
        if done {
            break;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x: f64) {
        let w = lambert_w0(x);
        let back = w * w.exp();
        let tol = 1e-14 * x.abs().max(1e-300);
        assert!(
            (back - x).abs() <= tol.max(1e-15),
            "x={x} w={w} back={back}"
        );
    }

    #[test]
    fn inverts_w_exp_w_across_the_range() {
        for &x in &[
            -INV_E + 1e-12,
            -0.36,
            -0.3,
            -0.1,
            -1e-8,
            1e-300,
            1e-20,
            1e-5,
            0.5,
            1.0,
            2.9,
            3.0,
            10.0,
            100.0,
            1e5,
            1e20,
            1e100,
            1e300,
        ] {
            check(x);
        }
    }

    #[test]
    fn known_values() {
        assert!((lambert_w0(1.0) - 0.567_143_290_409_783_8).abs() < 1e-15);
        assert!((lambert_w0(std::f64::consts::E) - 1.0).abs() < 1e-15);
        assert_eq!(lambert_w0(0.0), 0.0);
        assert_eq!(lambert_w0(-INV_E), -1.0);
        assert!(lambert_w0(-1.0).is_nan());
    }

    #[test]
    fn log_form_matches_direct_form_and_goes_beyond_overflow() {
        for &l in &[-50.0, -1.0, 0.0, 5.0, 19.9, 20.1, 40.0, 300.0, 700.0] {
            let direct = lambert_w0(f64::exp(l));
            let via_log = lambert_w0_exp(l);
            assert!(
                (direct - via_log).abs() <= 4e-15 * direct.abs().max(1e-300),
                "{l}"
            );
        }
        // ln x = 1e4: W satisfies w + ln w = 1e4.
        let w = lambert_w0_exp(1e4);
        assert!((w + w.ln() - 1e4).abs() < 1e-11);
        assert_eq!(lambert_w0_exp(f64::NEG_INFINITY), 0.0);
    }
}
