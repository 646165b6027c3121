//! What a scenario measured and judged, as the reports draw and list it:
//! the signals, the events on their time axis, and the assertions (a bound
//! over a window, and whether every sample kept it).
//!
//! Plain data with no output format of its own: [`crate::scenario`] writes
//! it into a scenario directory and [`crate::plot`] draws it; this module
//! uses neither.

use serde::{Deserialize, Serialize};

/// One measured signal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signal {
    pub name: String,
    pub unit: String,
    pub t_s: Vec<f64>,
    pub values: Vec<f64>,
}

/// Something that happened in the scenario, drawn on the time axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_s: f64,
    pub label: String,
}

/// What an assertion allows, in the signal's own unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Between { lo: f64, hi: f64 },
    AtMost { limit: f64 },
    AtLeast { limit: f64 },
}

impl Bound {
    /// `[lo, hi]` (swapped if given the other way round).
    pub fn between(lo: f64, hi: f64) -> Bound {
        Bound::Between {
            lo: lo.min(hi),
            hi: lo.max(hi),
        }
    }

    /// At most `limit` (`at_most`) or at least `limit`.
    pub fn limit(at_most: bool, limit: f64) -> Bound {
        if at_most {
            Bound::AtMost { limit }
        } else {
            Bound::AtLeast { limit }
        }
    }

    pub fn holds(&self, v: f64) -> bool {
        match *self {
            Bound::Between { lo, hi } => v >= lo && v <= hi,
            Bound::AtMost { limit } => v <= limit,
            Bound::AtLeast { limit } => v >= limit,
        }
    }

    /// The bound in words, e.g. `between 47 and 53 V`.
    pub(crate) fn describe(&self, unit: &str) -> String {
        match *self {
            Bound::Between { lo, hi } => {
                format!("between {} and {}", figure(lo, ""), figure(hi, unit))
            }
            Bound::AtMost { limit } => format!("at most {}", figure(limit, unit)),
            Bound::AtLeast { limit } => format!("at least {}", figure(limit, unit)),
        }
    }
}

/// A figure for a message: six significant digits at most, then its unit
/// (none for a dimensionless `1`), e.g. `0.179964`, `3.65 V`.
pub fn figure(v: f64, unit: &str) -> String {
    let digits = if v == 0.0 || !v.is_finite() {
        0
    } else {
        (5 - v.abs().log10().floor() as i64).clamp(0, 12) as usize
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    match unit {
        "" | "1" => s,
        u => format!("{s} {u}"),
    }
}

/// A `Then` step's check of a signal over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    pub signal: String,
    pub from_s: f64,
    pub to_s: f64,
    pub bound: Bound,
    /// How long the signal may stay outside the bound before that counts,
    /// s (0: any sample outside it fails).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grace_s: f64,
    /// The window held: no sample outside the bound (or no excursion
    /// longer than the grace), and at least one sample in it.
    pub held: bool,
    /// The first sample of the excursion that failed it, `(t_s, value)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_violation: Option<(f64, f64)>,
    /// When that excursion outlasted the grace, s (with a grace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violated_until_s: Option<f64>,
    /// Samples judged.
    #[serde(default)]
    pub samples: usize,
    /// The sample farthest outside (or nearest to leaving) the bound in
    /// the window, `(t_s, value)`: for the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extreme: Option<(f64, f64)>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Assertion {
    /// Judges `signal`'s samples in `[from_s, to_s]` against `bound`: the
    /// one judgement both a `Then` step's verdict and the report's plot
    /// use. A missing reading (NaN) is outside every bound; a window
    /// without samples does not hold.
    pub fn judge(signal: &Signal, from_s: f64, to_s: f64, bound: Bound) -> Assertion {
        Assertion::judge_with_grace(signal, from_s, to_s, bound, 0.0)
    }

    /// [`Assertion::judge`] where an excursion outside the bound fails
    /// only once it has lasted `grace_s` (from its first sample outside to
    /// a sample still outside; a limiting scheme's allowed reaction time).
    pub fn judge_with_grace(
        signal: &Signal,
        from_s: f64,
        to_s: f64,
        bound: Bound,
        grace_s: f64,
    ) -> Assertion {
        let grace_s = if grace_s.is_finite() {
            grace_s.max(0.0)
        } else {
            0.0
        };
        let mut a = Assertion {
            signal: signal.name.clone(),
            from_s,
            to_s,
            bound,
            grace_s,
            held: false,
            first_violation: None,
            violated_until_s: None,
            samples: 0,
            extreme: None,
        };
        let mut excursion: Option<(f64, f64)> = None;
        for (&t, &v) in signal.t_s.iter().zip(&signal.values) {
            if t < from_s || t > to_s {
                continue;
            }
            a.samples += 1;
            a.note_extreme(t, v);
            let outside = v.is_nan() || !bound.holds(v);
            match (outside, excursion) {
                (false, _) => excursion = None,
                (true, None) => excursion = Some((t, v)),
                (true, Some(_)) => {}
            }
            if let Some((t0, v0)) = excursion {
                if a.first_violation.is_none() && t - t0 >= grace_s {
                    a.first_violation = Some((t0, v0));
                    a.violated_until_s = (grace_s > 0.0).then_some(t);
                }
            }
        }
        a.held = a.samples > 0 && a.first_violation.is_none();
        a
    }

    /// Keeps the sample farthest along the bound's failing direction
    /// (NaN first of all).
    fn note_extreme(&mut self, t: f64, v: f64) {
        let badness = |v: f64| -> f64 {
            if v.is_nan() {
                return f64::INFINITY;
            }
            match self.bound {
                Bound::AtMost { limit } => v - limit,
                Bound::AtLeast { limit } => limit - v,
                Bound::Between { lo, hi } => (lo - v).max(v - hi),
            }
        };
        if self.extreme.is_none_or(|(_, e)| badness(v) > badness(e)) {
            self.extreme = Some((t, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_six_significant_digits() {
        assert_eq!(figure(0.17996356047621193, "1"), "0.179964");
        assert_eq!(figure(0.18000000298023225, "1"), "0.18");
        assert_eq!(figure(3.65, "V"), "3.65 V");
        assert_eq!(figure(1480.0, "W"), "1480 W");
        assert_eq!(figure(-1234567.8, "W"), "-1234568 W");
        assert_eq!(figure(0.0, "A"), "0 A");
        assert_eq!(figure(f64::NAN, "W"), "NaN W");
    }

    #[test]
    fn assertions_find_the_first_violation_in_the_window() {
        let s = Signal {
            name: "x".into(),
            unit: "W".into(),
            t_s: vec![0.0, 3600.0, 7200.0, 10800.0],
            values: vec![1.0, 5.0, 9.0, 2.0],
        };
        let a = Assertion::judge(&s, 0.0, 3600.0, Bound::AtMost { limit: 6.0 });
        assert!(a.held);
        let a = Assertion::judge(&s, 0.0, 3.0 * 3600.0, Bound::AtMost { limit: 6.0 });
        assert_eq!(a.first_violation, Some((7200.0, 9.0)));
        let a = Assertion::judge(&s, 0.0, 1e9, Bound::Between { lo: 1.5, hi: 10.0 });
        assert_eq!(a.first_violation, Some((0.0, 1.0)));
        assert!(Assertion::judge(&s, 0.0, 1e9, Bound::AtLeast { limit: 1.0 }).held);
    }

    fn signal(values: &[f64]) -> Signal {
        Signal {
            name: "x".into(),
            unit: "W".into(),
            t_s: (0..values.len()).map(|i| i as f64).collect(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn a_missing_reading_fails_and_an_empty_window_does_not_hold() {
        let s = signal(&[1.0, f64::NAN, 1.0]);
        let a = Assertion::judge(&s, 0.0, 2.0, Bound::AtMost { limit: 5.0 });
        assert!(!a.held);
        assert_eq!(a.first_violation.map(|v| v.0), Some(1.0));
        let a = Assertion::judge(&s, 10.0, 20.0, Bound::AtMost { limit: 5.0 });
        assert!(!a.held && a.samples == 0 && a.first_violation.is_none());
    }

    #[test]
    fn an_excursion_fails_only_once_it_outlasts_the_grace() {
        // Outside from 2 to 4 (2 s), then from 6 to 9 (3 s).
        let s = signal(&[0.0, 0.0, 9.0, 9.0, 9.0, 0.0, 9.0, 9.0, 9.0, 9.0, 0.0]);
        let bound = Bound::AtMost { limit: 5.0 };
        let a = Assertion::judge_with_grace(&s, 0.0, 10.0, bound, 3.0);
        assert!(!a.held);
        assert_eq!(a.first_violation, Some((6.0, 9.0)));
        assert_eq!(a.violated_until_s, Some(9.0));
        assert!(Assertion::judge_with_grace(&s, 0.0, 10.0, bound, 4.0).held);
        assert_eq!(
            Assertion::judge(&s, 0.0, 10.0, bound).first_violation,
            Some((2.0, 9.0))
        );
        assert_eq!(a.extreme, Some((2.0, 9.0)));
    }
}
