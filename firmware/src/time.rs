//! Controller time: always passed in by the caller.

/// Milliseconds since the controller started, passed in by the caller (a rig
/// in virtual time, or the board runtime's monotonic clock). Never read from
/// a clock inside the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    /// Milliseconds from `earlier` to `self`, zero if `earlier` is later.
    pub const fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
    pub const fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
    pub fn as_secs_f32(self) -> f32 {
        self.0 as f32 * 1e-3
    }
}

/// Local time of day as the controller knows it (from the meter's clock or
/// the uplink): seconds since local midnight and weekday (0 = Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalTime {
    pub seconds_of_day: u32,
    pub weekday: u8,
}

impl LocalTime {
    pub fn hour_f32(self) -> f32 {
        self.seconds_of_day as f32 / 3600.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_saturates() {
        assert_eq!(Millis(5).since(Millis(10)), 0);
        assert_eq!(Millis(10).since(Millis(4)), 6);
        assert_eq!(Millis(u64::MAX).plus_ms(5), Millis(u64::MAX));
    }
}
