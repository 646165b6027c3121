//! Loads at the far end of a circuit: constant-power LED drivers with an
//! under-voltage dropout (with hysteresis), resistive loads and optional
//! constant-current loads; and the inverter DC port at the bus node.

use serde::Deserialize;

/// A constant-power LED driver.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedDriverConfig {
    pub name: String,
    /// Input power while lit, W.
    pub power_w: f64,
    /// Below this input voltage the driver drops out and draws nothing, V.
    pub min_input_v: f64,
    /// After a dropout it restarts once the input reaches this voltage, V.
    /// Default `min_input_v + 2`.
    #[serde(default)]
    pub restart_v: Option<f64>,
}

impl LedDriverConfig {
    pub fn restart_v(&self) -> f64 {
        self.restart_v.unwrap_or(self.min_input_v + 2.0)
    }

    pub fn validate(&self, circuit: &str) -> Result<(), String> {
        let who = format!("circuit \"{circuit}\": LED driver \"{}\"", self.name);
        if !(self.power_w.is_finite() && self.power_w >= 0.0) {
            return Err(format!("{who}: power_w must be >= 0, got {}", self.power_w));
        }
        if !(self.min_input_v.is_finite() && self.min_input_v > 0.0) {
            return Err(format!(
                "{who}: min_input_v must be > 0, got {}",
                self.min_input_v
            ));
        }
        let r = self.restart_v();
        if !(r.is_finite() && r >= self.min_input_v) {
            return Err(format!("{who}: restart_v must be >= min_input_v, got {r}"));
        }
        Ok(())
    }
}

/// The DC input of the AC inverter, connected directly at the bus node (no
/// circuit wiring, no breaker of its own). Its power is set per step by the
/// house ([`super::network::InverterPortInput`]); it is a constant-power
/// load with an under-voltage lockout (with hysteresis) like the LED drivers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InverterPortConfig {
    /// Below this bus voltage the port locks out and draws nothing, V; also
    /// the knee below which it behaves as a resistor. Default 40.
    #[serde(default = "default_inverter_min_v")]
    pub min_input_v: f64,
    /// After a lockout it restarts once the bus reaches this voltage, V.
    /// Default `min_input_v + 2`.
    #[serde(default)]
    pub restart_v: Option<f64>,
    /// Largest DC input power, W (demand above it is unserved). Default: no limit.
    #[serde(default)]
    pub max_power_w: Option<f64>,
}

fn default_inverter_min_v() -> f64 {
    40.0
}

impl Default for InverterPortConfig {
    fn default() -> Self {
        Self {
            min_input_v: default_inverter_min_v(),
            restart_v: None,
            max_power_w: None,
        }
    }
}

impl InverterPortConfig {
    pub fn restart_v(&self) -> f64 {
        self.restart_v.unwrap_or(self.min_input_v + 2.0)
    }

    /// The power limit, W (infinite when not configured).
    pub fn max_power_w(&self) -> f64 {
        self.max_power_w.unwrap_or(f64::INFINITY)
    }

    pub fn validate(&self) -> Result<(), String> {
        let who = "bus: inverter_port";
        if !(self.min_input_v.is_finite() && self.min_input_v > 0.0) {
            return Err(format!(
                "{who}: min_input_v must be a positive number, got {}",
                self.min_input_v
            ));
        }
        let r = self.restart_v();
        if !(r.is_finite() && r >= self.min_input_v) {
            return Err(format!("{who}: restart_v must be >= min_input_v, got {r}"));
        }
        if let Some(p) = self.max_power_w {
            if !(p.is_finite() && p > 0.0) {
                return Err(format!(
                    "{who}: max_power_w must be a positive number, got {p}"
                ));
            }
        }
        Ok(())
    }
}

/// A resistive load (heater element, incandescent lamp as a first model).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResistiveLoadConfig {
    pub name: String,
    pub resistance_ohm: f64,
}

impl ResistiveLoadConfig {
    pub fn validate(&self, circuit: &str) -> Result<(), String> {
        if self.resistance_ohm.is_finite() && self.resistance_ohm > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "circuit \"{circuit}\": resistive load \"{}\": resistance_ohm must be > 0, got {}",
                self.name, self.resistance_ohm
            ))
        }
    }
}

/// A constant-current load; below `min_input_v` it behaves as a resistor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantCurrentLoadConfig {
    pub name: String,
    pub current_a: f64,
    pub min_input_v: f64,
}

impl ConstantCurrentLoadConfig {
    pub fn validate(&self, circuit: &str) -> Result<(), String> {
        let who = format!(
            "circuit \"{circuit}\": constant-current load \"{}\"",
            self.name
        );
        if !(self.current_a.is_finite() && self.current_a >= 0.0) {
            return Err(format!(
                "{who}: current_a must be >= 0, got {}",
                self.current_a
            ));
        }
        if !(self.min_input_v.is_finite() && self.min_input_v > 0.0) {
            return Err(format!(
                "{who}: min_input_v must be > 0, got {}",
                self.min_input_v
            ));
        }
        Ok(())
    }
}

/// Under-voltage lockout with hysteresis, shared by LED drivers and socket
/// converters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uvlo {
    pub off_below_v: f64,
    pub on_at_v: f64,
    /// `true` while locked out (drawing nothing).
    pub locked_out: bool,
}

impl Uvlo {
    /// Starts locked out: a load powers up once it sees its restart voltage.
    pub fn new(off_below_v: f64, on_at_v: f64) -> Self {
        Self {
            off_below_v,
            on_at_v,
            locked_out: true,
        }
    }

    /// Updates from the voltage the load saw during the step.
    pub fn update(&mut self, v: f64) {
        if self.locked_out {
            if v >= self.on_at_v {
                self.locked_out = false;
            }
        } else if v < self.off_below_v {
            self.locked_out = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvlo_hysteresis() {
        let mut u = Uvlo::new(36.0, 38.0);
        u.update(37.0);
        assert!(u.locked_out);
        u.update(38.0);
        assert!(!u.locked_out);
        u.update(36.5);
        assert!(!u.locked_out);
        u.update(35.9);
        assert!(u.locked_out);
        u.update(37.9);
        assert!(u.locked_out);
    }

    #[test]
    fn led_validate_names_circuit_and_driver() {
        let d = LedDriverConfig {
            name: "landing".into(),
            power_w: 10.0,
            min_input_v: 36.0,
            restart_v: Some(30.0),
        };
        let e = d.validate("upstairs").unwrap_err();
        assert!(e.contains("upstairs") && e.contains("landing") && e.contains("restart_v"));
    }
}
