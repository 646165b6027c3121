//! # Grid side of the house
//!
//! Everything on the AC side of a household's connection point:
//!
//! - [`mains`]: the public supply as the house sees it — presence, RMS
//!   voltage, frequency, scheduled and seeded random outages, voltage dips
//!   and swells.
//! - [`demand`]: household AC demand — seeded, time-of-day and weekday
//!   shaped base load for an archetype household plus stochastic appliance
//!   events (kettle, oven, washing machine, ...).
//! - [`inverter`]: the DC-bus-to-AC inverter that runs AC loads from the
//!   battery (peak window, power cut), with a quadratic loss model, export
//!   permission and anti-islanding.
//! - [`meter`]: the smart meter at the connection point, as a DSMR 5 meter
//!   would see it — import/export power, tariff 1/2 energy registers, tariff
//!   indicator from a schedule, power-failure counters and log, voltage
//!   sag/swell counters.
//!
//! The AC side of the AC/DC charger belongs to the DC bus (`crate::bus`); it
//! only reads the [`MainsState`] offered here, and its AC input power is one
//! of the terms of [`net_import_w`].
//!
//! No IO and no clock: every model takes `now` ([`SimTime`](crate::time::SimTime))
//! and/or `dt_s`; local time of day comes from a
//! [`Calendar`](crate::time::Calendar) given at construction. Random
//! processes draw from [`rand_chacha::ChaCha8Rng`] seeded from a `u64`.
//!
//! Every configuration type deserialises from TOML with
//! `deny_unknown_fields`, has defaults for everything optional, and a
//! `validate()` whose [`ConfigError`] names the offending field.

pub mod demand;
pub mod inverter;
pub mod mains;
pub mod meter;

pub use demand::{Archetype, DemandConfig, HouseholdDemand};
pub use inverter::{Inverter, InverterConfig, InverterInput, InverterMode, InverterStep};
pub use mains::{Mains, MainsConfig, MainsState, OutageConfig, VoltageEventConfig};
pub use meter::{
    DaySet, LongFailure, MeterConfig, MeterReading, SmartMeter, TariffPeriod, TariffSchedule,
};

/// A configuration value out of its physical range or inconsistent.
/// `field` is the dotted path of the key as written in TOML (relative to
/// the model's own table, e.g. `outages[2].duration_s`); the house loader
/// prefixes its table name and the file path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix.` put in front of the field name.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// Net power drawn from the grid at the connection point (W, positive =
/// import, negative = export), from the AC terms behind the meter:
/// household AC demand, the AC/DC charger's AC input, and the inverter's AC
/// output. Non-finite terms count as zero.
pub fn net_import_w(household_ac_w: f64, charger_ac_in_w: f64, inverter_ac_out_w: f64) -> f64 {
    finite_or_zero(household_ac_w) + finite_or_zero(charger_ac_in_w)
        - finite_or_zero(inverter_ac_out_w)
}

pub(crate) fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Checks `lo <= value <= hi` (and finite), naming the field on failure.
pub(crate) fn check_range(field: &str, value: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::new(
            field,
            format!("must be a finite number, got {value}"),
        ));
    }
    if value < lo || value > hi {
        return Err(ConfigError::new(
            field,
            format!("must be between {lo} and {hi}, got {value}"),
        ));
    }
    Ok(())
}

/// Checks `value > 0` (and finite), naming the field on failure.
pub(crate) fn check_positive(field: &str, value: f64) -> Result<(), ConfigError> {
    if !value.is_finite() || value <= 0.0 {
        return Err(ConfigError::new(
            field,
            format!("must be a positive number, got {value}"),
        ));
    }
    Ok(())
}

/// An independent ChaCha8 stream for `(seed, purpose)`, positioned at
/// `index` (a time bucket or a day): random access into a seeded process, so
/// results do not depend on step size or on the order of queries.
pub(crate) fn stream_rng(seed: u64, purpose: u64, index: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(purpose)));
    rng.set_stream(index);
    rng
}

/// SplitMix64 finaliser: decorrelates nearby seeds before they seed ChaCha.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_import_sums_terms_and_ignores_nan() {
        assert_eq!(net_import_w(500.0, 200.0, 300.0), 400.0);
        assert_eq!(net_import_w(f64::NAN, 200.0, f64::INFINITY), 200.0);
    }

    #[test]
    fn config_error_names_field() {
        let e = check_range("a.b", 5.0, 0.0, 1.0)
            .unwrap_err()
            .within("mains");
        assert_eq!(e.field, "mains.a.b");
        assert!(e.to_string().starts_with("`mains.a.b`: must be between"));
        assert!(check_positive("x", f64::NAN).is_err());
    }
}
