//! Thermal-magnetic circuit breakers.
//!
//! The thermal element is a first-order heating model: a state `x` in A²
//! obeys `τ dx/dt = I² − x` (heating by I², cooling towards ambient), and the
//! breaker trips when `x` reaches `(k_t · I_n)²`. From cold at a constant
//! current `I > k_t I_n` the trip time is `t = −τ ln(1 − (k_t I_n / I)²)`:
//! an inverse-time curve that never trips at or below `k_t I_n` (so never at
//! its rating). The update is the exact solution for a current held constant
//! over the step, so it is stable and step-size independent.
//!
//! The magnetic element trips after `magnetic_trip_time_s` whenever the
//! current exceeds `magnetic_trip_multiple · I_n`. A tripped breaker latches
//! open until it is reset.

use serde::Deserialize;

/// Parameters of one breaker (IEC 60898-like defaults for a type B MCB).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Rated current I_n, A.
    pub rating_a: f64,
    /// Thermal trip threshold as a multiple of the rating (conventional
    /// tripping lies between 1.13 and 1.45 I_n). Default 1.3.
    #[serde(default = "default_thermal_multiple")]
    pub thermal_trip_multiple: f64,
    /// Thermal time constant τ, s. Default 60 s (2.55 I_n trips in ~18 s).
    #[serde(default = "default_thermal_tau")]
    pub thermal_time_constant_s: f64,
    /// Instantaneous (magnetic) trip threshold as a multiple of the rating
    /// (type B 3–5, type C 5–10). Default 5.
    #[serde(default = "default_magnetic_multiple")]
    pub magnetic_trip_multiple: f64,
    /// Opening time of the magnetic trip, s. Default 5 ms.
    #[serde(default = "default_magnetic_time")]
    pub magnetic_trip_time_s: f64,
}

fn default_thermal_multiple() -> f64 {
    1.3
}
fn default_thermal_tau() -> f64 {
    60.0
}
fn default_magnetic_multiple() -> f64 {
    5.0
}
fn default_magnetic_time() -> f64 {
    0.005
}

impl BreakerConfig {
    /// A type-B-like breaker of the given rating with default curve.
    pub fn type_b(rating_a: f64) -> Self {
        Self {
            rating_a,
            thermal_trip_multiple: default_thermal_multiple(),
            thermal_time_constant_s: default_thermal_tau(),
            magnetic_trip_multiple: default_magnetic_multiple(),
            magnetic_trip_time_s: default_magnetic_time(),
        }
    }

    /// Checks physical ranges; `who` names the owner (e.g. `circuit "hall"`).
    pub fn validate(&self, who: &str) -> Result<(), String> {
        let pos = |v: f64, f: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!(
                    "{who}: breaker.{f} must be a positive number, got {v}"
                ))
            }
        };
        pos(self.rating_a, "rating_a")?;
        pos(self.thermal_time_constant_s, "thermal_time_constant_s")?;
        pos(self.magnetic_trip_time_s, "magnetic_trip_time_s")?;
        if !(self.thermal_trip_multiple.is_finite() && self.thermal_trip_multiple >= 1.0) {
            return Err(format!(
                "{who}: breaker.thermal_trip_multiple must be >= 1, got {}",
                self.thermal_trip_multiple
            ));
        }
        if !(self.magnetic_trip_multiple.is_finite()
            && self.magnetic_trip_multiple > self.thermal_trip_multiple)
        {
            return Err(format!(
                "{who}: breaker.magnetic_trip_multiple must exceed thermal_trip_multiple, got {}",
                self.magnetic_trip_multiple
            ));
        }
        Ok(())
    }

    /// Trip time from cold at a constant current, s (`INFINITY` if it never trips).
    pub fn trip_time_from_cold_s(&self, current_a: f64) -> f64 {
        let i = current_a.abs();
        if i > self.magnetic_trip_multiple * self.rating_a {
            return self.magnetic_trip_time_s;
        }
        let th = self.thermal_trip_multiple * self.rating_a;
        if i <= th {
            return f64::INFINITY;
        }
        -self.thermal_time_constant_s * (1.0 - (th / i).powi(2)).ln()
    }
}

/// Why a breaker opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripCause {
    Thermal,
    Magnetic,
}

/// State of one breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Breaker {
    pub config: BreakerConfig,
    /// Thermal state, A² (equivalent steady heating current squared).
    thermal_a2: f64,
    /// Time the current has continuously exceeded the magnetic threshold, s.
    magnetic_elapsed_s: f64,
    tripped: Option<TripCause>,
    /// Cache of `exp(−dt/τ)` for the last step size.
    decay_for: (f64, f64),
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            thermal_a2: 0.0,
            magnetic_elapsed_s: 0.0,
            tripped: None,
            decay_for: (0.0, 1.0),
        }
    }

    /// `None` while closed, the cause once tripped (latched).
    pub fn tripped(&self) -> Option<TripCause> {
        self.tripped
    }

    pub fn is_closed(&self) -> bool {
        self.tripped.is_none()
    }

    /// Thermal state as a fraction of the trip threshold (1.0 = trips).
    pub fn thermal_fraction(&self) -> f64 {
        self.thermal_a2 / (self.config.thermal_trip_multiple * self.config.rating_a).powi(2)
    }

    /// Closes a tripped breaker. The thermal element keeps its heat (a hot
    /// breaker that is reset onto an overload trips again sooner).
    pub fn reset(&mut self) {
        self.tripped = None;
    }

    /// Time, s, after which the breaker would trip if `current_a` flowed
    /// constantly from now; `INFINITY` if it would not.
    pub fn time_to_trip_s(&self, current_a: f64) -> f64 {
        if self.tripped.is_some() {
            return f64::INFINITY;
        }
        let i2 = current_a * current_a;
        if current_a.abs() > self.config.magnetic_trip_multiple * self.config.rating_a {
            return (self.config.magnetic_trip_time_s - self.magnetic_elapsed_s).max(0.0);
        }
        let th2 = (self.config.thermal_trip_multiple * self.config.rating_a).powi(2);
        if i2 <= th2 {
            return f64::INFINITY;
        }
        if self.thermal_a2 >= th2 {
            return 0.0;
        }
        self.config.thermal_time_constant_s * ((i2 - self.thermal_a2) / (i2 - th2)).ln()
    }

    /// Advances both elements by `dt_s` at a constant `current_a` and trips
    /// (latched) if either reached its threshold; returns the cause if it
    /// tripped now. The thermal update is exact for a constant current.
    pub fn advance(&mut self, dt_s: f64, current_a: f64) -> Option<TripCause> {
        let i2 = current_a * current_a;
        if self.decay_for.0 != dt_s {
            self.decay_for = (dt_s, (-dt_s / self.config.thermal_time_constant_s).exp());
        }
        let k = self.decay_for.1;
        self.thermal_a2 = i2 + (self.thermal_a2 - i2) * k;
        if current_a.abs() > self.config.magnetic_trip_multiple * self.config.rating_a {
            self.magnetic_elapsed_s += dt_s;
        } else {
            self.magnetic_elapsed_s = 0.0;
        }
        if self.tripped.is_some() {
            return None;
        }
        let cause = if self.magnetic_elapsed_s >= self.config.magnetic_trip_time_s * (1.0 - 1e-9) {
            Some(TripCause::Magnetic)
        } else if self.thermal_fraction() >= 1.0 - 1e-9 {
            Some(TripCause::Thermal)
        } else {
            None
        };
        if let Some(c) = cause {
            self.trip(c);
        }
        cause
    }

    /// Opens the breaker with a cause (latched until [`Breaker::reset`]).
    pub fn trip(&mut self, cause: TripCause) {
        self.tripped = Some(cause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_until_trip(b: &mut Breaker, i: f64, dt: f64, t_max: f64) -> Option<f64> {
        let mut t = 0.0;
        while t < t_max {
            let ttt = b.time_to_trip_s(i);
            let h = ttt.min(dt);
            let tripped = b.advance(h, i);
            t += h;
            if tripped.is_some() {
                return Some(t);
            }
        }
        None
    }

    #[test]
    fn never_trips_at_or_below_rating() {
        let mut b = Breaker::new(BreakerConfig::type_b(10.0));
        assert_eq!(run_until_trip(&mut b, 10.0, 1.0, 24.0 * 3600.0), None);
        assert_eq!(run_until_trip(&mut b, 12.9, 1.0, 24.0 * 3600.0), None);
        assert!(b.thermal_fraction() < 1.0);
    }

    #[test]
    fn thermal_trip_within_iec_band() {
        // IEC 60898: at 2.55 I_n, trip between 1 s and 60 s (I_n <= 32 A);
        // at 1.45 I_n, trip within 1 h.
        for dt in [0.001, 0.01, 1.0] {
            let mut b = Breaker::new(BreakerConfig::type_b(10.0));
            let t = run_until_trip(&mut b, 25.5, dt, 3600.0).expect("trips");
            assert!((1.0..60.0).contains(&t), "t = {t} at dt {dt}");
            let expect = b.config.trip_time_from_cold_s(25.5);
            assert!((t - expect).abs() < 1e-6 * expect, "{t} vs {expect}");
            assert_eq!(b.tripped(), Some(TripCause::Thermal));
            let mut b = Breaker::new(BreakerConfig::type_b(10.0));
            let t = run_until_trip(&mut b, 14.5, dt, 7200.0).expect("trips");
            assert!(t < 3600.0, "t = {t}");
        }
    }

    #[test]
    fn magnetic_trip_is_instantaneous_and_latches() {
        let mut b = Breaker::new(BreakerConfig::type_b(6.0));
        let t = run_until_trip(&mut b, 60.0, 0.01, 1.0).unwrap();
        assert!(t <= 0.01, "{t}");
        assert_eq!(b.tripped(), Some(TripCause::Magnetic));
        assert_eq!(b.time_to_trip_s(60.0), f64::INFINITY);
        b.reset();
        assert!(b.is_closed());
    }

    #[test]
    fn cools_down() {
        let mut b = Breaker::new(BreakerConfig::type_b(10.0));
        assert_eq!(b.advance(30.0, 20.0), None);
        let hot = b.thermal_fraction();
        b.advance(600.0, 0.0);
        assert!(b.thermal_fraction() < 0.01 * hot);
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = BreakerConfig::type_b(10.0);
        c.magnetic_trip_multiple = 1.0;
        let e = c.validate("circuit \"hall\"").unwrap_err();
        assert!(
            e.contains("hall") && e.contains("magnetic_trip_multiple"),
            "{e}"
        );
    }
}
