//! Simulated time. Nothing in `twin` reads a clock: a [`SimTime`] is handed
//! to every model that needs to know "when", and a `dt_s` to every `step`.

use std::fmt;

/// Microseconds since the scenario's epoch (its start). Integer so that
/// fixed steps never accumulate rounding error and runs are bit-for-bit
/// reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);

    pub const fn from_micros(us: u64) -> Self {
        SimTime(us)
    }
    pub const fn from_millis(ms: u64) -> Self {
        SimTime(ms * 1_000)
    }
    pub const fn from_secs(s: u64) -> Self {
        SimTime(s * 1_000_000)
    }
    /// Rounds to the nearest microsecond; negative or non-finite input gives zero.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_finite() && s > 0.0 {
            SimTime((s * 1e6).round() as u64)
        } else {
            SimTime(0)
        }
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 * 1e-6
    }
    pub const fn saturating_add(self, us: u64) -> Self {
        SimTime(self.0.saturating_add(us))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6} s", self.as_secs_f64())
    }
}

/// Where a scenario's epoch sits on the calendar, so that solar position and
/// time-of-day demand can be computed from a [`SimTime`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calendar {
    /// UTC Unix time (seconds) of the scenario's epoch.
    pub epoch_unix_s: i64,
    /// Offset of local civil time from UTC, hours (e.g. 1.0 for CET).
    pub utc_offset_h: f64,
}

impl Calendar {
    pub fn new(epoch_unix_s: i64, utc_offset_h: f64) -> Self {
        Self {
            epoch_unix_s,
            utc_offset_h,
        }
    }
    /// UTC Unix time (seconds, fractional) at `now`.
    pub fn unix_s(&self, now: SimTime) -> f64 {
        self.epoch_unix_s as f64 + now.as_secs_f64()
    }
    /// Local clock time of day in hours, `[0, 24)`.
    pub fn local_hour(&self, now: SimTime) -> f64 {
        let local = self.unix_s(now) + self.utc_offset_h * 3600.0;
        local.rem_euclid(86_400.0) / 3600.0
    }
    /// Local day of the week, 0 = Monday.
    pub fn local_weekday(&self, now: SimTime) -> u32 {
        let local = self.unix_s(now) + self.utc_offset_h * 3600.0;
        // 1970-01-01 was a Thursday (3 when Monday = 0).
        ((local.div_euclid(86_400.0) as i64 + 3).rem_euclid(7)) as u32
    }
    /// Day of the year (1..=366) in UTC at `now`.
    pub fn utc_day_of_year(&self, now: SimTime) -> u32 {
        let days = self.unix_s(now).div_euclid(86_400.0) as i64;
        let (y, _, _) = civil_from_days(days);
        (days - days_from_civil(y, 1, 1) + 1) as u32
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-1000i64, 0, 59, 365, 10_957, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn calendar_local_hour_and_weekday() {
        // 2026-06-21 00:00 UTC, a Sunday.
        let epoch = days_from_civil(2026, 6, 21) * 86_400;
        let cal = Calendar::new(epoch, 1.0);
        assert!((cal.local_hour(SimTime::from_secs(3600)) - 2.0).abs() < 1e-9);
        assert_eq!(cal.local_weekday(SimTime::ZERO), 6);
        assert_eq!(cal.utc_day_of_year(SimTime::ZERO), 172);
    }

    #[test]
    fn sim_time_conversions() {
        assert_eq!(SimTime::from_secs_f64(1.5).as_micros(), 1_500_000);
        assert_eq!(SimTime::from_secs_f64(f64::NAN), SimTime::ZERO);
        assert_eq!(SimTime::from_secs_f64(-3.0), SimTime::ZERO);
    }
}
