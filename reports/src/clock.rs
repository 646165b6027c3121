//! Scenario time in words, the same in every message, plot and report:
//! `HH:MM:SS` on the scenario's first day (which starts at midnight), then
//! `HH:MM:SS on day N` — the form the feature files' steps write.

/// Seconds since the first midnight → `HH:MM:SS`, with ` on day N` after
/// the first day. A non-finite time is written as it is.
pub fn clock(t_s: f64) -> String {
    if !t_s.is_finite() {
        return format!("{t_s}");
    }
    let t = t_s.max(0.0).round() as u64;
    let day = t / 86_400 + 1;
    let t = t % 86_400;
    let hms = format!("{:02}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
    if day == 1 {
        hms
    } else {
        format!("{hms} on day {day}")
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn later_days_are_named() {
        assert_eq!(clock(3661.0), "01:01:01");
        assert_eq!(clock(86_399.6), "00:00:00 on day 2");
        assert_eq!(clock(90_000.0), "01:00:00 on day 2");
        assert_eq!(clock(2.0 * 86_400.0 + 27_000.0), "07:30:00 on day 3");
        assert_eq!(clock(-5.0), "00:00:00");
        assert_eq!(clock(f64::NAN), "NaN");
    }
}
