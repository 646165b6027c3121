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

pub use demand::{ApplianceUse, Archetype, DemandConfig, HouseholdDemand};
pub use inverter::{
    fit_loss_model, Inverter, InverterConfig, InverterInput, InverterMode, InverterStep,
};
pub use mains::{Mains, MainsConfig, MainsState, OutageConfig, VoltageEventConfig};
pub use meter::{
    DaySet, LongFailure, MeterConfig, MeterReading, SmartMeter, TariffPeriod, TariffSchedule,
};

/// The grid side of one house, as a house TOML embeds it (every table but
/// `demand` may be left out):
///
/// ```toml
/// [mains]
/// outages = [ { start_s = 64800.0, duration_s = 21600.0 } ]
///
/// [demand]
/// archetype = "family"
///
/// [inverter]            # omit for a house without an AC inverter
/// rated_power_w = 3000.0
/// export_enabled = true
/// backup_enabled = true
///
/// [meter]
/// [meter.tariff]
/// default_tariff = 2
/// periods = [ { days = "weekdays", from_h = 23.0, to_h = 7.0, tariff = 1 },
///             { days = "weekend", from_h = 0.0, to_h = 24.0, tariff = 1 } ]
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    #[serde(default)]
    pub mains: MainsConfig,
    pub demand: DemandConfig,
    #[serde(default)]
    pub inverter: Option<InverterConfig>,
    #[serde(default)]
    pub meter: MeterConfig,
}

impl GridConfig {
    /// Validates every table; the error's field is prefixed with its table
    /// (`mains.outages[0].duration_s`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.mains.validate().map_err(|e| e.within("mains"))?;
        self.demand.validate().map_err(|e| e.within("demand"))?;
        if let Some(inv) = &self.inverter {
            inv.validate().map_err(|e| e.within("inverter"))?;
        }
        self.meter.validate().map_err(|e| e.within("meter"))?;
        Ok(())
    }
}

/// Inputs to [`GridSide::step`] from the rest of the house.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridInputs {
    /// AC power the AC/DC charger draws from the mains, W (the bus owns
    /// the charger; it should draw nothing when the mains is absent, and
    /// anything it asks for then is ignored).
    pub charger_ac_in_w: f64,
    /// AC power the controller asks of the inverter, W.
    pub inverter_request_w: f64,
    /// Most DC power the bus can give the inverter, W (`INFINITY` = no limit).
    pub inverter_dc_available_w: f64,
}

impl Default for GridInputs {
    fn default() -> Self {
        GridInputs {
            charger_ac_in_w: 0.0,
            inverter_request_w: 0.0,
            inverter_dc_available_w: f64::INFINITY,
        }
    }
}

/// One step of the grid side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridStep {
    /// The supply at the start of the step (with the sag from the previous
    /// step's net import).
    pub mains: MainsState,
    /// Household AC demand (mean over the step), W.
    pub demand_w: f64,
    /// Household AC demand not served (power cut and no island), W.
    pub demand_unserved_w: f64,
    /// The inverter's step, if the house has one. Its `dc_in_w` is what the
    /// DC bus must supply.
    pub inverter: Option<InverterStep>,
    /// Net power at the connection point, W (negative = export).
    pub net_import_w: f64,
    pub meter: MeterReading,
}

/// Mains, household demand, inverter and meter of one house, stepped in the
/// right order: supply → demand → inverter → connection point → meter.
#[derive(Debug, Clone)]
pub struct GridSide {
    pub mains: Mains,
    pub demand: HouseholdDemand,
    pub inverter: Option<Inverter>,
    pub meter: SmartMeter,
    last_net_w: f64,
}

impl GridSide {
    /// Builds the models from one validated config; each random process gets
    /// its own stream derived from `seed`.
    pub fn new(
        cfg: GridConfig,
        seed: u64,
        calendar: crate::time::Calendar,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(GridSide {
            mains: Mains::new(cfg.mains, splitmix64(seed ^ 0x6d61_696e))
                .map_err(|e| e.within("mains"))?,
            demand: HouseholdDemand::new(cfg.demand, splitmix64(seed ^ 0x6465_6d64), calendar)
                .map_err(|e| e.within("demand"))?,
            inverter: cfg
                .inverter
                .map(Inverter::new)
                .transpose()
                .map_err(|e| e.within("inverter"))?,
            meter: SmartMeter::new(cfg.meter, calendar).map_err(|e| e.within("meter"))?,
            last_net_w: 0.0,
        })
    }

    /// Advances everything by `dt_s` from `now`.
    pub fn step(&mut self, now: crate::time::SimTime, dt_s: f64, inputs: GridInputs) -> GridStep {
        let mains = self.mains.state_under_load(now, self.last_net_w);
        let demand_w = self.demand.step(now, dt_s);
        let inverter = self.inverter.as_mut().map(|inv| {
            inv.step(
                dt_s,
                InverterInput {
                    request_ac_w: inputs.inverter_request_w,
                    local_load_w: demand_w,
                    dc_available_w: inputs.inverter_dc_available_w,
                },
                mains,
            )
        });
        let inv_out = inverter.map_or(0.0, |s| s.ac_out_w);
        let (net, unserved) = if mains.present {
            (net_import_w(demand_w, inputs.charger_ac_in_w, inv_out), 0.0)
        } else {
            // No grid: the inverter (in its anti-islanding window, or as an
            // island) is all that serves the household.
            (0.0, (demand_w - inv_out).max(0.0))
        };
        self.last_net_w = net;
        let meter = self.meter.step(now, dt_s, net, mains);
        GridStep {
            mains,
            demand_w,
            demand_unserved_w: unserved,
            inverter,
            net_import_w: net,
            meter,
        }
    }
}

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
    fn grid_config_parses_validates_and_steps() {
        let text = r#"
            [mains]
            outages = [ { start_s = 60.0, duration_s = 600.0 } ]
            [demand]
            archetype = "family"
            [inverter]
            export_enabled = true
            backup_enabled = true
            [meter.tariff]
            default_tariff = 2
            periods = [ { days = "all", from_h = 0.0, to_h = 7.0, tariff = 1 } ]
        "#;
        let cfg: GridConfig = toml::from_str(text).unwrap();
        let cal = crate::time::Calendar::new(1_782_000_000, 1.0);
        let mut g = GridSide::new(cfg.clone(), 9, cal).unwrap();
        let mut served_in_cut = false;
        for k in 0..900u64 {
            let s = g.step(
                crate::time::SimTime::from_secs(k),
                1.0,
                GridInputs {
                    inverter_request_w: 500.0,
                    ..GridInputs::default()
                },
            );
            assert!(s.net_import_w.is_finite() && s.demand_w >= 0.0);
            if (60..660).contains(&k) {
                assert!(!s.mains.present && s.net_import_w == 0.0);
                served_in_cut |= s.inverter.unwrap().mode == InverterMode::Islanded
                    && s.demand_unserved_w == 0.0;
            }
        }
        assert!(served_in_cut);
        assert_eq!(g.meter.last_reading().unwrap().long_power_failures, 1);

        let mut bad = cfg;
        bad.mains.outages[0].duration_s = -1.0;
        assert_eq!(
            bad.validate().unwrap_err().field,
            "mains.outages[0].duration_s"
        );
        assert!(
            toml::from_str::<GridConfig>("[mains]\n").is_err(),
            "demand is required"
        );
    }

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
