//! Sources on the bus in droop control: battery converters, the PV converter
//! and the AC/DC charger from mains.
//!
//! Each source is a bus-side current `I(V)` that does not increase with the
//! bus voltage `V` (droop, clamped by current limits), so the network solver
//! can bracket the bus voltage. Positive current flows into the bus.

use serde::Deserialize;

fn check_pos(who: &str, field: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{who}: {field} must be a positive number, got {v}"))
    }
}

fn check_nonneg(who: &str, field: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{who}: {field} must be a non-negative number, got {v}"
        ))
    }
}

fn check_eff(who: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(())
    } else {
        Err(format!("{who}: efficiency must be in (0, 1], got {v}"))
    }
}

/// A bidirectional battery converter (one per battery assembly).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatteryConverterConfig {
    pub name: String,
    /// No-load voltage setpoint, V (the default for the per-step input).
    pub setpoint_v: f64,
    /// Droop: volts of bus-voltage drop per ampere delivered, V/A (Ω).
    pub droop_v_per_a: f64,
    /// Bus-side discharge (sourcing) current limit, A.
    pub discharge_limit_a: f64,
    /// Bus-side charge (sinking) current limit, A.
    pub charge_limit_a: f64,
    /// Conversion efficiency, same both ways.
    pub efficiency: f64,
}

impl BatteryConverterConfig {
    pub fn validate(&self) -> Result<(), String> {
        let who = format!("battery converter \"{}\"", self.name);
        check_pos(&who, "setpoint_v", self.setpoint_v)?;
        check_pos(&who, "droop_v_per_a", self.droop_v_per_a)?;
        check_nonneg(&who, "discharge_limit_a", self.discharge_limit_a)?;
        check_nonneg(&who, "charge_limit_a", self.charge_limit_a)?;
        check_eff(&who, self.efficiency)
    }
}

/// The PV converter: a current source up to the available PV power, which
/// backs off (droop) above its own setpoint so PV is curtailed when nothing
/// absorbs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvConverterConfig {
    #[serde(default = "default_pv_name")]
    pub name: String,
    /// Voltage above which output backs off, V (default for the input).
    pub setpoint_v: f64,
    /// Back-off slope, V/A.
    pub droop_v_per_a: f64,
    /// Conversion efficiency (PV side → bus side).
    pub efficiency: f64,
    /// Rated bus-side power, W (caps the available PV power).
    pub rated_power_w: f64,
}

fn default_pv_name() -> String {
    "pv".into()
}

impl PvConverterConfig {
    pub fn validate(&self) -> Result<(), String> {
        let who = format!("PV converter \"{}\"", self.name);
        check_pos(&who, "setpoint_v", self.setpoint_v)?;
        check_pos(&who, "droop_v_per_a", self.droop_v_per_a)?;
        check_pos(&who, "rated_power_w", self.rated_power_w)?;
        check_eff(&who, self.efficiency)
    }
}

/// The AC/DC charger from mains: a droop source that only sources.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargerConfig {
    #[serde(default = "default_charger_name")]
    pub name: String,
    pub setpoint_v: f64,
    pub droop_v_per_a: f64,
    /// Bus-side current limit, A.
    pub current_limit_a: f64,
    /// Conversion efficiency (AC side → bus side).
    pub efficiency: f64,
}

fn default_charger_name() -> String {
    "charger".into()
}

impl ChargerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let who = format!("charger \"{}\"", self.name);
        check_pos(&who, "setpoint_v", self.setpoint_v)?;
        check_pos(&who, "droop_v_per_a", self.droop_v_per_a)?;
        check_nonneg(&who, "current_limit_a", self.current_limit_a)?;
        check_eff(&who, self.efficiency)
    }
}

/// A droop source linearised for one step: `I(V) = clamp((v_set − V)/r, lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DroopLaw {
    pub setpoint_v: f64,
    pub r_ohm: f64,
    /// Lowest current (negative = sinking), A.
    pub lo_a: f64,
    /// Highest current, A.
    pub hi_a: f64,
    /// Extra cap: the bus-side power may not exceed this (PV), W.
    pub max_power_w: f64,
}

impl DroopLaw {
    pub const OFF: DroopLaw = DroopLaw {
        setpoint_v: 0.0,
        r_ohm: 1.0,
        lo_a: 0.0,
        hi_a: 0.0,
        max_power_w: f64::INFINITY,
    };

    /// Current into the bus at `v` and its derivative dI/dV.
    #[inline]
    pub fn current(&self, v: f64) -> (f64, f64) {
        if self.hi_a <= 0.0 && self.lo_a >= 0.0 {
            return (0.0, 0.0);
        }
        let raw = (self.setpoint_v - v) / self.r_ohm;
        let (mut i, mut di) = if raw >= self.hi_a {
            (self.hi_a, 0.0)
        } else if raw <= self.lo_a {
            (self.lo_a, 0.0)
        } else {
            (raw, -1.0 / self.r_ohm)
        };
        if self.max_power_w.is_finite() && i > 0.0 {
            let vv = v.max(1e-3);
            let ip = self.max_power_w / vv;
            if ip < i {
                i = ip;
                di = -self.max_power_w / (vv * vv);
            }
        }
        (i, di)
    }

    /// The highest voltage at which this source can still deliver current.
    pub fn zero_current_v(&self) -> f64 {
        if self.lo_a < 0.0 {
            f64::INFINITY
        } else {
            self.setpoint_v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droop_law_clamps() {
        let d = DroopLaw {
            setpoint_v: 50.0,
            r_ohm: 0.1,
            lo_a: -10.0,
            hi_a: 20.0,
            max_power_w: f64::INFINITY,
        };
        assert_eq!(d.current(49.0), (10.0, -10.0));
        assert_eq!(d.current(40.0).0, 20.0);
        assert_eq!(d.current(60.0).0, -10.0);
        let p = DroopLaw {
            max_power_w: 480.0,
            lo_a: 0.0,
            ..d
        };
        assert!((p.current(48.0).0 - 10.0).abs() < 1e-12);
        assert_eq!(p.current(55.0).0, 0.0);
    }

    #[test]
    fn validate_names() {
        let c = BatteryConverterConfig {
            name: "a1".into(),
            setpoint_v: 50.0,
            droop_v_per_a: 0.0,
            discharge_limit_a: 10.0,
            charge_limit_a: 10.0,
            efficiency: 0.97,
        };
        let e = c.validate().unwrap_err();
        assert!(e.contains("a1") && e.contains("droop_v_per_a"), "{e}");
    }
}
