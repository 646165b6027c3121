//! Devices that plug into USB-PD sockets: phone, laptop, monitor, TV.
//!
//! A device has an active and a standby power, may have its own battery
//! (capacity, SOC, a CC-CV-like charge curve whose power tapers linearly in
//! SOC above `taper_start_soc` down to a termination power, after which
//! charging stops until the SOC falls below `recharge_soc`), and sink
//! capabilities (the fixed voltages it accepts and the most power it asks
//! for). Unplugged, a device with a battery runs from it; one without a
//! battery is off.

use serde::Deserialize;

/// The kind of device; selects the preset in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Phone,
    Laptop,
    Monitor,
    Tv,
}

/// A device's parameters (see the module docs). In TOML, `name` and `kind`
/// are required and every other field overrides the kind's preset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "DeviceToml")]
pub struct DeviceConfig {
    pub name: String,
    pub kind: DeviceKind,
    /// Battery capacity, Wh; 0 for a device without a battery.
    pub battery_wh: f64,
    /// State of charge at the start, [0, 1].
    pub initial_soc: f64,
    /// Charging input power in the constant-current phase, W.
    pub max_charge_w: f64,
    /// SOC above which charge power tapers (CV phase).
    pub taper_start_soc: f64,
    /// Charge power at termination as a fraction of `max_charge_w`.
    pub termination_fraction: f64,
    /// After a full charge, charging resumes below this SOC.
    pub recharge_soc: f64,
    /// Efficiency of the device's internal charger (input → battery).
    pub charge_efficiency: f64,
    /// Power while on (in use), W.
    pub active_w: f64,
    /// Power in standby, W.
    pub standby_w: f64,
    /// Fixed voltages the sink accepts, V (5 V is always accepted).
    pub sink_voltages_v: Vec<f64>,
    /// The most input power the sink asks for, W.
    pub max_input_w: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceToml {
    name: String,
    kind: DeviceKind,
    battery_wh: Option<f64>,
    initial_soc: Option<f64>,
    max_charge_w: Option<f64>,
    taper_start_soc: Option<f64>,
    termination_fraction: Option<f64>,
    recharge_soc: Option<f64>,
    charge_efficiency: Option<f64>,
    active_w: Option<f64>,
    standby_w: Option<f64>,
    sink_voltages_v: Option<Vec<f64>>,
    max_input_w: Option<f64>,
}

impl TryFrom<DeviceToml> for DeviceConfig {
    type Error = String;
    fn try_from(t: DeviceToml) -> Result<Self, String> {
        let p = DeviceConfig::preset(t.kind, &t.name);
        let c = DeviceConfig {
            name: t.name,
            kind: t.kind,
            battery_wh: t.battery_wh.unwrap_or(p.battery_wh),
            initial_soc: t.initial_soc.unwrap_or(p.initial_soc),
            max_charge_w: t.max_charge_w.unwrap_or(p.max_charge_w),
            taper_start_soc: t.taper_start_soc.unwrap_or(p.taper_start_soc),
            termination_fraction: t.termination_fraction.unwrap_or(p.termination_fraction),
            recharge_soc: t.recharge_soc.unwrap_or(p.recharge_soc),
            charge_efficiency: t.charge_efficiency.unwrap_or(p.charge_efficiency),
            active_w: t.active_w.unwrap_or(p.active_w),
            standby_w: t.standby_w.unwrap_or(p.standby_w),
            sink_voltages_v: t.sink_voltages_v.unwrap_or(p.sink_voltages_v),
            max_input_w: t.max_input_w.unwrap_or(p.max_input_w),
        };
        Ok(c)
    }
}

impl DeviceConfig {
    /// Typical parameters of each kind.
    pub fn preset(kind: DeviceKind, name: &str) -> Self {
        let base = DeviceConfig {
            name: name.to_owned(),
            kind,
            battery_wh: 0.0,
            initial_soc: 0.5,
            max_charge_w: 0.0,
            taper_start_soc: 0.8,
            termination_fraction: 0.05,
            recharge_soc: 0.97,
            charge_efficiency: 0.9,
            active_w: 0.0,
            standby_w: 0.0,
            sink_voltages_v: vec![5.0],
            max_input_w: 0.0,
        };
        match kind {
            DeviceKind::Phone => DeviceConfig {
                battery_wh: 15.0,
                max_charge_w: 18.0,
                active_w: 2.5,
                standby_w: 0.15,
                sink_voltages_v: vec![5.0, 9.0],
                max_input_w: 20.0,
                ..base
            },
            DeviceKind::Laptop => DeviceConfig {
                battery_wh: 60.0,
                max_charge_w: 45.0,
                active_w: 18.0,
                standby_w: 1.0,
                sink_voltages_v: vec![5.0, 9.0, 15.0, 20.0],
                max_input_w: 65.0,
                ..base
            },
            DeviceKind::Monitor => DeviceConfig {
                active_w: 25.0,
                standby_w: 0.4,
                sink_voltages_v: vec![5.0, 9.0, 15.0, 20.0],
                max_input_w: 30.0,
                ..base
            },
            DeviceKind::Tv => DeviceConfig {
                active_w: 60.0,
                standby_w: 0.5,
                sink_voltages_v: vec![5.0, 20.0],
                max_input_w: 70.0,
                ..base
            },
        }
    }

    pub fn has_battery(&self) -> bool {
        self.battery_wh > 0.0
    }

    pub fn validate(&self) -> Result<(), String> {
        let who = format!("device \"{}\"", self.name);
        let nonneg = |v: f64, f: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{who}: {f} must be a non-negative number, got {v}"))
            }
        };
        let unit = |v: f64, f: &str| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{who}: {f} must be in [0, 1], got {v}"))
            }
        };
        nonneg(self.battery_wh, "battery_wh")?;
        unit(self.initial_soc, "initial_soc")?;
        nonneg(self.max_charge_w, "max_charge_w")?;
        unit(self.taper_start_soc, "taper_start_soc")?;
        if self.taper_start_soc >= 1.0 {
            return Err(format!("{who}: taper_start_soc must be below 1"));
        }
        unit(self.termination_fraction, "termination_fraction")?;
        if self.termination_fraction <= 0.0 {
            return Err(format!("{who}: termination_fraction must be above 0"));
        }
        unit(self.recharge_soc, "recharge_soc")?;
        unit(self.charge_efficiency, "charge_efficiency")?;
        if self.charge_efficiency <= 0.0 {
            return Err(format!("{who}: charge_efficiency must be above 0"));
        }
        nonneg(self.active_w, "active_w")?;
        nonneg(self.standby_w, "standby_w")?;
        nonneg(self.max_input_w, "max_input_w")?;
        if self
            .sink_voltages_v
            .iter()
            .any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(format!("{who}: sink_voltages_v must be positive voltages"));
        }
        Ok(())
    }

    /// Whether the sink accepts a fixed supply of `voltage_v` (5 V always).
    pub fn accepts(&self, voltage_v: f64) -> bool {
        (voltage_v - 5.0).abs() < 0.05
            || self
                .sink_voltages_v
                .iter()
                .any(|v| (v - voltage_v).abs() < 0.05)
    }

    /// CC-CV-like charge input power at `soc`, W.
    pub fn charge_power_w(&self, soc: f64) -> f64 {
        if !self.has_battery() || soc >= 1.0 {
            return 0.0;
        }
        let taper =
            ((1.0 - soc) / (1.0 - self.taper_start_soc)).clamp(self.termination_fraction, 1.0);
        self.max_charge_w * taper
    }
}

/// A device's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub config: DeviceConfig,
    soc: f64,
    full: bool,
    // Power split planned for this step (set by `demand_w`).
    use_w: f64,
    charge_w: f64,
}

/// What a device did during a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DeviceOutput {
    /// SOC at the end of the step (0 without a battery).
    pub soc: f64,
    /// Power taken from the socket, W.
    pub input_w: f64,
    /// Power going into the battery (after charger losses), W; negative when
    /// the battery supplies the device.
    pub battery_w: f64,
    /// Power the device wanted for use but did not get (flat or underpowered), W.
    pub unserved_w: f64,
    /// `true` while its battery is charging.
    pub charging: bool,
    /// `true` once charged to full (until the SOC falls below `recharge_soc`).
    pub full: bool,
    /// Energy taken from the socket this step, J.
    pub input_j: f64,
}

impl Device {
    pub fn new(config: DeviceConfig) -> Self {
        let soc = if config.has_battery() {
            config.initial_soc
        } else {
            0.0
        };
        Self {
            full: soc >= 1.0,
            config,
            soc,
            use_w: 0.0,
            charge_w: 0.0,
        }
    }

    pub fn soc(&self) -> f64 {
        self.soc
    }

    /// Sets the state of charge (clamped to [0, 1]).
    pub fn set_soc(&mut self, soc: f64) {
        if self.config.has_battery() && soc.is_finite() {
            self.soc = soc.clamp(0.0, 1.0);
            self.full = self.soc >= 1.0;
        }
    }

    /// Power the device would draw from the socket this step, given the most
    /// the contract allows (`limit_w`) and whether it is on. Plans the split
    /// between use and charging; call [`Device::commit`] after the bus solve.
    pub fn demand_w(&mut self, dt_s: f64, on: bool, limit_w: f64) -> f64 {
        let c = &self.config;
        let use_w = if on { c.active_w } else { c.standby_w };
        let mut charge_w = 0.0;
        if c.has_battery() && !self.full {
            charge_w = c.charge_power_w(self.soc);
            // Do not overshoot full within this step.
            let room_w = (1.0 - self.soc) * c.battery_wh * 3600.0 / (c.charge_efficiency * dt_s);
            charge_w = charge_w.min(room_w.max(0.0));
        }
        let limit = limit_w.max(0.0).min(c.max_input_w.max(use_w));
        let total = (use_w + charge_w).min(limit);
        self.use_w = use_w;
        self.charge_w = (total - use_w.min(total)).max(0.0);
        total
    }

    /// Advances the device by `dt_s` having received `delivered_w` from the
    /// socket (≤ the demand; less if the socket browned out or is absent).
    pub fn commit(&mut self, dt_s: f64, delivered_w: f64) -> DeviceOutput {
        let c = &self.config;
        let delivered = delivered_w.max(0.0);
        let from_socket_use = self.use_w.min(delivered);
        let charge_in = (delivered - from_socket_use).max(0.0);
        let deficit = self.use_w - from_socket_use;
        let mut unserved = 0.0;
        let mut battery_w = 0.0;
        if c.has_battery() {
            let cap_j = c.battery_wh * 3600.0;
            let mut net_w = charge_in * c.charge_efficiency - deficit;
            // A flat battery cannot cover the deficit.
            let min_net = -self.soc * cap_j / dt_s;
            if net_w < min_net {
                unserved = min_net - net_w;
                net_w = min_net;
            }
            battery_w = net_w;
            self.soc = (self.soc + net_w * dt_s / cap_j).clamp(0.0, 1.0);
            if self.soc >= 1.0 - 1e-12 {
                self.soc = 1.0;
                self.full = true;
            } else if self.soc < c.recharge_soc {
                self.full = false;
            }
        } else {
            unserved = deficit;
        }
        DeviceOutput {
            soc: self.soc,
            input_w: delivered,
            battery_w,
            unserved_w: unserved,
            charging: charge_in > 0.0,
            full: self.full,
            input_j: delivered * dt_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_charges_with_taper_and_stops_at_full() {
        let mut d = Device::new(DeviceConfig {
            initial_soc: 0.2,
            ..DeviceConfig::preset(DeviceKind::Phone, "phone")
        });
        let dt = 1.0;
        let mut t = 0.0;
        let mut p_at_50 = None;
        let mut p_at_90 = None;
        let mut t_full = None;
        while t < 6.0 * 3600.0 {
            let p = d.demand_w(dt, false, 27.0);
            let soc = d.soc();
            if p_at_50.is_none() && soc >= 0.5 {
                p_at_50 = Some(p);
            }
            if p_at_90.is_none() && soc >= 0.9 {
                p_at_90 = Some(p);
            }
            let o = d.commit(dt, p);
            assert!((0.0..=1.0).contains(&o.soc));
            if o.full && t_full.is_none() {
                t_full = Some(t);
            }
            t += dt;
        }
        let (p50, p90) = (p_at_50.unwrap(), p_at_90.unwrap());
        // CC phase: max charge + standby; tapered at 90 %: half of it.
        assert!((p50 - (18.0 + 0.15)).abs() < 1e-9, "{p50}");
        assert!(p90 < 0.55 * p50 && p90 > 0.4 * p50, "{p90}");
        let tf = t_full.expect("reaches full");
        assert!(tf > 1800.0 && tf < 3.0 * 3600.0, "full after {tf} s");
        assert_eq!(d.soc(), 1.0);
        // Once full, only standby is drawn.
        assert!((d.demand_w(dt, false, 27.0) - 0.15).abs() < 1e-12);
    }

    #[test]
    fn unplugged_laptop_drains_and_goes_flat() {
        let mut d = Device::new(DeviceConfig {
            initial_soc: 0.01,
            ..DeviceConfig::preset(DeviceKind::Laptop, "lap")
        });
        for _ in 0..200 {
            d.demand_w(1.0, true, 0.0);
            let o = d.commit(1.0, 0.0);
            assert!(o.soc >= 0.0);
        }
        assert_eq!(d.soc(), 0.0);
        d.demand_w(1.0, true, 0.0);
        let o = d.commit(1.0, 0.0);
        assert!((o.unserved_w - 18.0).abs() < 1e-9);
    }

    #[test]
    fn underpowered_laptop_uses_battery_for_the_gap() {
        let mut d = Device::new(DeviceConfig::preset(DeviceKind::Laptop, "lap"));
        let p = d.demand_w(1.0, true, 10.0);
        assert_eq!(p, 10.0);
        let o = d.commit(1.0, p);
        assert!((o.battery_w + 8.0).abs() < 1e-9);
    }

    #[test]
    fn toml_preset_with_override() {
        let c: DeviceConfig =
            toml::from_str("name = \"tv\"\nkind = \"tv\"\nactive_w = 80.0\n").unwrap();
        assert_eq!(c.active_w, 80.0);
        assert_eq!(c.standby_w, 0.5);
        let e = toml::from_str::<DeviceConfig>("name = \"tv\"\nkind = \"tv\"\nactiv_w = 8.0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("activ_w"), "{e}");
    }
}
