//! Numeric helpers the control functions share: total (never panicking,
//! NaN-safe) bounds for measurements and commands. Pure `f32` functions of
//! `core` only; no function module's types.

/// `x` limited to `[lo, hi]`; never panics (unlike `f32::clamp`), NaN → `lo`.
pub fn clampf(x: f32, lo: f32, hi: f32) -> f32 {
    x.max(lo).min(hi)
}

/// `x` where it is a finite number ≥ 0; 0 where it is negative or not a
/// finite number (a power that counts only when measured, a limit that
/// grants nothing when unknown).
pub fn non_negative(x: f32) -> f32 {
    if x.is_finite() {
        x.max(0.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clampf_is_total() {
        assert_eq!(clampf(5.0, 0.0, 1.0), 1.0);
        assert_eq!(clampf(-5.0, 0.0, 1.0), 0.0);
        assert_eq!(clampf(0.5, 0.0, 1.0), 0.5);
        assert_eq!(clampf(f32::NAN, 0.0, 1.0), 0.0);
        // An empty range does not panic: the upper bound wins.
        assert_eq!(clampf(0.5, 1.0, 0.0), 0.0);
    }

    #[test]
    fn non_negative_counts_only_finite_non_negative_values() {
        assert_eq!(non_negative(3.5), 3.5);
        assert_eq!(non_negative(-3.5), 0.0);
        assert_eq!(non_negative(f32::NAN), 0.0);
        assert_eq!(non_negative(f32::INFINITY), 0.0);
        assert_eq!(non_negative(f32::NEG_INFINITY), 0.0);
    }
}
