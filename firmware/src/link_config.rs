//! The controller's link-layer configuration (TOML table `[link]`): how
//! [`crate::node::Node`] keeps time, when the meter is stale and how far an
//! E2E alive counter may jump. Its own module so the controller's
//! configuration can carry it without depending on the node.

use crate::ConfigError;

/// Where time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    /// The caller's `now` (the board's monotonic clock, or a real-time rig).
    #[default]
    Local,
    /// Time advances only with `TimeSync` frames (lockstep rigs).
    Bus,
}

fn default_meter_deadline_ms() -> u32 {
    5000
}
fn default_e2e_max_delta() -> u8 {
    2
}

/// The link layer's configuration (TOML table `[link]`, optional).
///
/// ```toml
/// [link]
/// clock = "bus"             # or "local" (default)
/// meter_deadline_ms = 5000  # no valid P1 telegram this long: meter stale
/// utc_offset_min = 60       # the meter's winter time minus UTC
/// e2e_max_delta = 2         # largest alive-counter step still accepted
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    pub clock: ClockMode,
    /// No valid P1 telegram for this long (ms): the meter is stale.
    pub meter_deadline_ms: u32,
    /// The meter's standard (winter) local time minus UTC, minutes; a
    /// telegram marked summer time is one hour further ahead.
    pub utc_offset_min: i32,
    /// Largest E2E alive-counter step accepted (1 = no frame may be lost).
    pub e2e_max_delta: u8,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            clock: ClockMode::Local,
            meter_deadline_ms: default_meter_deadline_ms(),
            utc_offset_min: 0,
            e2e_max_delta: default_e2e_max_delta(),
        }
    }
}

impl LinkConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(100..=3_600_000).contains(&self.meter_deadline_ms) {
            return Err(ConfigError::new(
                "meter_deadline_ms",
                format_args!(
                    "must be within 100..=3600000, found {}",
                    self.meter_deadline_ms
                ),
            ));
        }
        if !(-720..=840).contains(&self.utc_offset_min) {
            return Err(ConfigError::new(
                "utc_offset_min",
                format_args!("must be within -720..=840, found {}", self.utc_offset_min),
            ));
        }
        if !(1..=14).contains(&self.e2e_max_delta) {
            return Err(ConfigError::new(
                "e2e_max_delta",
                format_args!("must be within 1..=14, found {}", self.e2e_max_delta),
            ));
        }
        Ok(())
    }
}
