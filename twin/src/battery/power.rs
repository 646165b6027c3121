//! The constant-power solve shared by every battery model: the ECM cell and
//! pack and the SPMe cell find the constant current that delivers a
//! requested terminal power in the same three moves.
//!
//! 1. **Linearise.** The model's voltage over the step (or now) is taken as
//!    a source `V = e − r·I` ([`LinearSource`]): the ECM from its exact
//!    per-step linearisation, the SPMe from two trial evaluations
//!    ([`LinearSource::from_probe`]); parallel cells combine through
//!    [`ParallelSources`], series positions add.
//! 2. **Quadratic.** `P = I·(e − r·I)` is solved for the smaller-magnitude
//!    root ([`LinearSource::current_for_power`]); when there is none, the
//!    power is beyond the maximum-power point: [`PowerNotDeliverable`].
//! 3. **Newton.** The current is refined on trial evaluations of the full
//!    model ([`refine_current`], the trial behind a closure), with the
//!    model's [`Refinement`] settings.
//!
//! Plain arithmetic on numbers the caller passes in: no cell model, no
//! state, no allocation. Each model's settings reproduce its own solve to
//! the bit (iteration count, slope, stopping rule), so the order of the
//! floating-point operations here must not change.

/// Largest current magnitude the model accepts (A); larger requests are
/// clamped to it and flagged with [`LimitFlags::CURRENT_CLAMPED`](super::LimitFlags::CURRENT_CLAMPED).
pub const MAX_CURRENT_A: f64 = 1.0e6;

/// Clamps a requested current to ±[`MAX_CURRENT_A`] (NaN → 0).
#[inline(always)]
pub fn clamp_current(i: f64) -> (f64, bool) {
    if i.is_nan() {
        return (0.0, true);
    }
    let c = i.clamp(-MAX_CURRENT_A, MAX_CURRENT_A);
    (c, c != i)
}

/// The power asked of a cell or pack cannot be delivered (no current gives
/// it: beyond the maximum-power point). The state is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("power {requested_w:.3} W is not deliverable; at most {max_w:.3} W in this direction")]
pub struct PowerNotDeliverable {
    /// The power asked for (W, positive = discharge).
    pub requested_w: f64,
    /// Largest deliverable magnitude for this step, with the sign of the request.
    pub max_w: f64,
}

/// Whether a constant-power step of `dt_s` asking `power_w` has anything to
/// do: an error for a non-finite power, `false` for a step that is not a
/// positive finite length (the model stays as it is), `true` otherwise.
pub fn power_step_needed(power_w: f64, dt_s: f64) -> Result<bool, PowerNotDeliverable> {
    if !power_w.is_finite() {
        return Err(PowerNotDeliverable {
            requested_w: power_w,
            max_w: 0.0,
        });
    }
    Ok(dt_s.is_finite() && dt_s > 0.0)
}

/// A source linearised as `V = e − r·I` (positive current = discharge);
/// the default, all zero, is the start of a series sum.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinearSource {
    /// Voltage at zero current (V).
    pub e_v: f64,
    /// Resistance (Ω).
    pub r_ohm: f64,
}

impl LinearSource {
    /// The source through the voltage `v_zero_v` at no current and
    /// `v_probe_v` at `probe_a` (> 0); the resistance is kept ≥ 1 nΩ so
    /// that the quadratic has a maximum-power point.
    pub fn from_probe(v_zero_v: f64, v_probe_v: f64, probe_a: f64) -> Self {
        LinearSource {
            e_v: v_zero_v,
            r_ohm: ((v_zero_v - v_probe_v) / probe_a).max(1e-9),
        }
    }

    /// The most power the source delivers (W, at `I = e / 2r`); 0 unless
    /// both `e` and `r` are positive.
    pub fn max_power_w(self) -> f64 {
        if self.e_v > 0.0 && self.r_ohm > 0.0 {
            self.e_v * self.e_v / (4.0 * self.r_ohm)
        } else {
            0.0
        }
    }

    /// The current that gives `power_w` (W) at the terminals: the
    /// smaller-magnitude root of `r I² − e I + P = 0`, within
    /// ±[`MAX_CURRENT_A`]. An error when there is no
    /// root or it needs more than the largest current.
    #[inline]
    pub fn current_for_power(self, power_w: f64) -> Result<f64, PowerNotDeliverable> {
        let (e_v, r_ohm) = (self.e_v, self.r_ohm);
        let max_w = self.max_power_w();
        let disc = e_v * e_v - 4.0 * r_ohm * power_w;
        if !(e_v > 0.0 && r_ohm > 0.0) || disc < 0.0 || !disc.is_finite() {
            return Err(PowerNotDeliverable {
                requested_w: power_w,
                max_w: max_w.copysign(power_w),
            });
        }
        let i = 2.0 * power_w / (e_v + disc.sqrt());
        let (c, clamped) = clamp_current(i);
        if clamped {
            return Err(PowerNotDeliverable {
                requested_w: power_w,
                max_w: (c * (e_v - r_ohm * c)).abs().copysign(power_w),
            });
        }
        Ok(c)
    }

    /// The current the source carries at terminal voltage `voltage_v`.
    #[inline(always)]
    pub fn current_at(self, voltage_v: f64) -> f64 {
        (self.e_v - voltage_v) / self.r_ohm
    }

    /// Adds a source in series (the voltages and resistances add).
    #[inline]
    pub fn add_series(&mut self, other: LinearSource) {
        self.e_v += other.e_v;
        self.r_ohm += other.r_ohm;
    }
}

/// Linearised sources connected in parallel, added one by one: they share
/// one terminal voltage `V = (Σ e_k/r_k − I) / Σ 1/r_k`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ParallelSources {
    /// `Σ e_k / r_k` (A).
    short_circuit_a: f64,
    /// `Σ 1 / r_k` (S).
    conductance_s: f64,
}

impl ParallelSources {
    /// Adds one source.
    #[inline(always)]
    pub fn add(&mut self, source: LinearSource) {
        self.short_circuit_a += source.e_v / source.r_ohm;
        self.conductance_s += 1.0 / source.r_ohm;
    }

    /// The shared terminal voltage when the group carries `current_a`.
    #[inline(always)]
    pub fn voltage_at(&self, current_a: f64) -> f64 {
        (self.short_circuit_a - current_a) / self.conductance_s
    }

    /// The group as one source.
    #[inline]
    pub fn equivalent(&self) -> LinearSource {
        LinearSource {
            e_v: self.short_circuit_a / self.conductance_s,
            r_ohm: 1.0 / self.conductance_s,
        }
    }
}

/// Which slope of `P(I) = I·V(I)` a Newton step divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerSlope {
    /// `e − 2 r I`, the linearised source's.
    Linearised,
    /// `V(I) − 2 r I`, with the trial voltage in place of `e − r I`.
    TrialVoltage,
}

/// How a model refines the current of the quadratic on its full trials.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refinement {
    /// Newton steps at most.
    pub max_steps: usize,
    /// The slope each step divides by.
    pub slope: PowerSlope,
    /// Stop once within 1e-9 (relative, of at least 1 mW) of the request
    /// or where the slope is flatter than 1e-12; otherwise every step is
    /// taken.
    pub stop_when_converged: bool,
    /// On a non-finite step: go back to the quadratic's current (`true`)
    /// or keep the last finite one (`false`).
    pub restart_on_overflow: bool,
}

impl Refinement {
    /// The ECM cell and pack: four steps on the linearisation's slope.
    pub const ECM: Refinement = Refinement {
        max_steps: 4,
        slope: PowerSlope::Linearised,
        stop_when_converged: true,
        restart_on_overflow: true,
    };
    /// The SPMe cell over a step: eight steps on the trial voltage's slope.
    pub const SPME_STEP: Refinement = Refinement {
        max_steps: 8,
        slope: PowerSlope::TrialVoltage,
        stop_when_converged: true,
        restart_on_overflow: false,
    };
    /// The SPMe cell now (no time passes): all eight steps.
    pub const SPME_INSTANT: Refinement = Refinement {
        stop_when_converged: false,
        ..Refinement::SPME_STEP
    };
}

/// Refines `start_a` (the quadratic's current on `source`) by Newton steps
/// on `P(I) = I·V(I) = power_w`, where `voltage_at(I)` is a trial of the
/// full model at current `I`; returns the refined current.
#[inline]
pub fn refine_current(
    source: LinearSource,
    power_w: f64,
    start_a: f64,
    how: &Refinement,
    mut voltage_at: impl FnMut(f64) -> f64,
) -> f64 {
    let mut i = start_a;
    for _ in 0..how.max_steps {
        let v = voltage_at(i);
        let err = power_w - v * i;
        if how.stop_when_converged && err.abs() <= 1e-9 * power_w.abs().max(1e-3) {
            break;
        }
        let slope = match how.slope {
            PowerSlope::Linearised => source.e_v - 2.0 * source.r_ohm * i,
            PowerSlope::TrialVoltage => v - 2.0 * source.r_ohm * i,
        };
        if how.stop_when_converged && slope.abs() < 1e-12 {
            break;
        }
        let next = i + err / slope;
        if !next.is_finite() {
            if how.restart_on_overflow {
                i = start_a;
            }
            break;
        }
        i = next;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::battery::MAX_CURRENT_A;

    const SOURCE: LinearSource = LinearSource {
        e_v: 50.0,
        r_ohm: 0.1,
    };

    #[test]
    fn quadratic_gives_the_smaller_root_both_ways() {
        for p in [0.0, 100.0, -100.0, 6000.0, -20_000.0] {
            let i = SOURCE.current_for_power(p).unwrap();
            let delivered = i * (SOURCE.e_v - SOURCE.r_ohm * i);
            assert!((delivered - p).abs() < 1e-9 * p.abs().max(1.0), "{p}: {i}");
            // The smaller root: below the maximum-power current e / 2r.
            assert!(i < SOURCE.e_v / (2.0 * SOURCE.r_ohm));
        }
    }

    #[test]
    fn beyond_the_maximum_power_point_says_how_much_is_possible() {
        assert_eq!(SOURCE.max_power_w(), 6250.0);
        let e = SOURCE.current_for_power(7000.0).unwrap_err();
        assert_eq!((e.requested_w, e.max_w), (7000.0, 6250.0));
        // Charging has no maximum-power point but a current limit.
        let e = SOURCE.current_for_power(-1e12).unwrap_err();
        assert!(e.max_w < 0.0 && e.max_w > -1e12, "{e:?}");
        let dead = LinearSource {
            e_v: -1.0,
            r_ohm: 0.1,
        };
        assert_eq!(dead.max_power_w(), 0.0);
        assert_eq!(dead.current_for_power(-5.0).unwrap_err().max_w, -0.0);
        let huge = LinearSource {
            e_v: 1e9,
            r_ohm: 1e-9,
        };
        let e = huge.current_for_power(1e16).unwrap_err();
        assert_eq!(e.max_w, MAX_CURRENT_A * (1e9 - 1e-9 * MAX_CURRENT_A));
    }

    #[test]
    fn step_needed_only_for_a_finite_power_over_a_positive_step() {
        assert_eq!(power_step_needed(10.0, 1.0), Ok(true));
        assert_eq!(power_step_needed(10.0, 0.0), Ok(false));
        assert_eq!(power_step_needed(10.0, f64::NAN), Ok(false));
        let e = power_step_needed(f64::INFINITY, 1.0).unwrap_err();
        assert_eq!((e.requested_w, e.max_w), (f64::INFINITY, 0.0));
        assert!(power_step_needed(f64::NAN, -1.0).is_err());
    }

    #[test]
    fn probe_linearisation_keeps_a_positive_resistance() {
        let s = LinearSource::from_probe(4.0, 3.9, 5.0);
        assert_eq!(s.e_v, 4.0);
        assert!((s.r_ohm - 0.02).abs() < 1e-15);
        assert_eq!(LinearSource::from_probe(4.0, 4.1, 5.0).r_ohm, 1e-9);
    }

    #[test]
    fn parallel_sources_share_a_voltage_and_the_current() {
        let a = LinearSource {
            e_v: 3.3,
            r_ohm: 0.01,
        };
        let b = LinearSource {
            e_v: 3.2,
            r_ohm: 0.02,
        };
        let mut group = ParallelSources::default();
        group.add(a);
        group.add(b);
        let v = group.voltage_at(30.0);
        assert!((a.current_at(v) + b.current_at(v) - 30.0).abs() < 1e-9);
        let eq = group.equivalent();
        assert!((eq.e_v - eq.r_ohm * 30.0 - v).abs() < 1e-12);
        let mut series = eq;
        series.add_series(eq);
        assert_eq!((series.e_v, series.r_ohm), (2.0 * eq.e_v, 2.0 * eq.r_ohm));
    }

    #[test]
    fn newton_closes_in_on_a_curved_source() {
        // V(I) = e − r I − k I²: the quadratic alone misses the request.
        let curved = |i: f64| SOURCE.e_v - SOURCE.r_ohm * i - 1e-3 * i * i;
        let p = 2000.0;
        let miss_w = |i: f64| (curved(i) * i - p).abs();
        let start = SOURCE.current_for_power(p).unwrap();
        assert!(miss_w(start) > 80.0);
        for how in [
            Refinement::ECM,
            Refinement::SPME_STEP,
            Refinement::SPME_INSTANT,
        ] {
            let mut trials = 0;
            let i = refine_current(SOURCE, p, start, &how, |i| {
                trials += 1;
                curved(i)
            });
            // The linearisation's slope ignores the curvature: it closes in
            // more slowly than the trial voltage's.
            let within_w = match how.slope {
                PowerSlope::Linearised => 0.1,
                PowerSlope::TrialVoltage => 1e-6,
            };
            assert!(miss_w(i) < within_w, "{how:?}: {i}");
            assert!(trials <= how.max_steps);
            if !how.stop_when_converged {
                assert_eq!(trials, how.max_steps);
            }
        }
    }

    #[test]
    fn a_non_finite_trial_restarts_or_keeps_the_last_current() {
        // The first trial is finite, the next one NaN.
        let nan_after_first = |i: f64| if i == 40.0 { 49.0 } else { f64::NAN };
        let ecm = refine_current(SOURCE, 2000.0, 40.0, &Refinement::ECM, nan_after_first);
        assert_eq!(ecm, 40.0);
        let spme = refine_current(
            SOURCE,
            2000.0,
            40.0,
            &Refinement::SPME_STEP,
            nan_after_first,
        );
        // One finite step taken, then the NaN trial stops it there.
        assert!(spme != 40.0 && spme.is_finite(), "{spme}");
    }
}
