//! Module temperature: the Faiman (2008) model adopted by IEC 61853-2,
//! `T_m = T_a + G_poa / (u0 + u1 · wind)`, as `pvlib.temperature.faiman`
//! (defaults u0 = 25.0 W/m²K, u1 = 6.84 W·s/m³K), with an optional
//! first-order thermal lag for use in time-stepped simulation.

use serde::Deserialize;

/// Faiman coefficients, wind speed and thermal time constant.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaimanParams {
    /// Constant heat transfer coefficient, W/(m²·K).
    #[serde(default = "default_u0")]
    pub u0: f64,
    /// Wind-dependent heat transfer coefficient, W·s/(m³·K).
    #[serde(default = "default_u1")]
    pub u1: f64,
    /// Wind speed at module height, m/s (the plant has no wind input).
    #[serde(default = "default_wind")]
    pub wind_speed_m_s: f64,
    /// First-order time constant of the module temperature, s; 0 gives the
    /// steady-state Faiman temperature at every step.
    #[serde(default)]
    pub time_constant_s: f64,
}

fn default_u0() -> f64 {
    25.0
}
fn default_u1() -> f64 {
    6.84
}
fn default_wind() -> f64 {
    1.0
}

impl Default for FaimanParams {
    fn default() -> Self {
        FaimanParams {
            u0: default_u0(),
            u1: default_u1(),
            wind_speed_m_s: default_wind(),
            time_constant_s: 0.0,
        }
    }
}

impl FaimanParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.u0.is_finite() && self.u0 > 0.0) {
            return Err(format!("temperature.u0 = {}: must be > 0", self.u0));
        }
        if !(self.u1.is_finite() && self.u1 >= 0.0) {
            return Err(format!("temperature.u1 = {}: must be >= 0", self.u1));
        }
        if !(self.wind_speed_m_s.is_finite() && self.wind_speed_m_s >= 0.0) {
            return Err(format!(
                "temperature.wind_speed_m_s = {}: must be >= 0",
                self.wind_speed_m_s
            ));
        }
        if !(self.time_constant_s.is_finite() && self.time_constant_s >= 0.0) {
            return Err(format!(
                "temperature.time_constant_s = {}: must be >= 0",
                self.time_constant_s
            ));
        }
        Ok(())
    }
}

/// Steady-state Faiman module temperature, °C.
pub fn faiman(poa_w_m2: f64, temp_air_c: f64, wind_speed_m_s: f64, u0: f64, u1: f64) -> f64 {
    temp_air_c + poa_w_m2 / (u0 + u1 * wind_speed_m_s)
}

/// Module temperature with a first-order lag towards the Faiman
/// steady state.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleTemperature {
    pub params: FaimanParams,
    state_c: Option<f64>,
}

impl ModuleTemperature {
    pub fn new(params: FaimanParams) -> Self {
        ModuleTemperature {
            params,
            state_c: None,
        }
    }

    /// Advances by `dt_s` and returns the module temperature, °C. The first
    /// call (and any call with a zero time constant) returns the steady state.
    pub fn step(&mut self, dt_s: f64, poa_w_m2: f64, temp_air_c: f64) -> f64 {
        let p = &self.params;
        let ss = faiman(poa_w_m2, temp_air_c, p.wind_speed_m_s, p.u0, p.u1);
        let t = match self.state_c {
            Some(prev) if p.time_constant_s > 0.0 && dt_s.is_finite() && dt_s >= 0.0 => {
                prev + (ss - prev) * (1.0 - (-dt_s / p.time_constant_s).exp())
            }
            _ => ss,
        };
        self.state_c = Some(t);
        t
    }

    /// The last temperature returned, if any.
    pub fn current_c(&self) -> Option<f64> {
        self.state_c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_and_lag() {
        assert!((faiman(1000.0, 20.0, 1.0, 25.0, 6.84) - (20.0 + 1000.0 / 31.84)).abs() < 1e-12);
        let mut m = ModuleTemperature::new(FaimanParams {
            time_constant_s: 300.0,
            ..FaimanParams::default()
        });
        let t0 = m.step(1.0, 0.0, 20.0);
        assert_eq!(t0, 20.0);
        let t1 = m.step(300.0, 1000.0, 20.0);
        let ss = faiman(1000.0, 20.0, 1.0, 25.0, 6.84);
        assert!((t1 - (20.0 + (ss - 20.0) * (1.0 - (-1.0f64).exp()))).abs() < 1e-12);
    }
}
