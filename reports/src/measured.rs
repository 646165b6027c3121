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
            Bound::Between { lo, hi } => format!("between {lo} and {hi} {unit}"),
            Bound::AtMost { limit } => format!("at most {limit} {unit}"),
            Bound::AtLeast { limit } => format!("at least {limit} {unit}"),
        }
    }
}

/// A `Then` step's check of a signal over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assertion {
    pub signal: String,
    pub from_s: f64,
    pub to_s: f64,
    pub bound: Bound,
    /// Every sample in the window within the bound.
    pub held: bool,
    /// The first sample outside it, `(t_s, value)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_violation: Option<(f64, f64)>,
}

impl Assertion {
    /// Judges `signal`'s samples in `[from_s, to_s]` against `bound`.
    pub fn judge(signal: &Signal, from_s: f64, to_s: f64, bound: Bound) -> Assertion {
        let first_violation = signal
            .t_s
            .iter()
            .zip(&signal.values)
            .filter(|(t, v)| **t >= from_s && **t <= to_s && !v.is_nan())
            .find(|(_, v)| !bound.holds(**v))
            .map(|(t, v)| (*t, *v));
        Assertion {
            signal: signal.name.clone(),
            from_s,
            to_s,
            bound,
            held: first_violation.is_none(),
            first_violation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
