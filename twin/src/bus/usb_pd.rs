//! USB Power Delivery sockets: source capabilities (fixed PDOs), contract
//! negotiation with the plugged device, re-negotiation when the socket's
//! power budget changes, and the socket's DC-DC converter (bus → device).
//!
//! Negotiation: after attach, the socket supplies Type-C current at 5 V
//! (`typec_current_a`) for `negotiation_s` (attach debounce, capabilities,
//! request, accept, PS_RDY), then the contract holds. The device requests the
//! highest-voltage PDO it accepts that offers all the power it asks for
//! within the budget; if none does, the PDO offering the most power (higher
//! voltage on ties). Offered current at a PDO is `min(I_pdo, budget / V)`.
//! A budget change starts a re-negotiation (`renegotiation_s`), during which
//! the device is held to the smaller of the old contract and the new budget.

use serde::Deserialize;

use super::devices::DeviceConfig;

/// A fixed-supply power data object.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pdo {
    pub voltage_v: f64,
    pub current_a: f64,
}

/// The standard 100 W set: 5 V/3 A, 9 V/3 A, 15 V/3 A, 20 V/5 A.
pub fn standard_pdos_100w() -> Vec<Pdo> {
    vec![
        Pdo {
            voltage_v: 5.0,
            current_a: 3.0,
        },
        Pdo {
            voltage_v: 9.0,
            current_a: 3.0,
        },
        Pdo {
            voltage_v: 15.0,
            current_a: 3.0,
        },
        Pdo {
            voltage_v: 20.0,
            current_a: 5.0,
        },
    ]
}

/// The standard 65 W set: 5 V/3 A, 9 V/3 A, 15 V/3 A, 20 V/3.25 A.
pub fn standard_pdos_65w() -> Vec<Pdo> {
    vec![
        Pdo {
            voltage_v: 5.0,
            current_a: 3.0,
        },
        Pdo {
            voltage_v: 9.0,
            current_a: 3.0,
        },
        Pdo {
            voltage_v: 15.0,
            current_a: 3.0,
        },
        Pdo {
            voltage_v: 20.0,
            current_a: 3.25,
        },
    ]
}

/// One USB-PD socket (a port of a DC socket hub) on a circuit.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbSocketConfig {
    pub name: String,
    /// Source capabilities. Default: the 65 W set.
    #[serde(default = "standard_pdos_65w")]
    pub pdos: Vec<Pdo>,
    /// Socket power budget, W (the default of the per-step input).
    pub budget_w: f64,
    /// Converter efficiency (bus → device) at load.
    #[serde(default = "default_socket_eff")]
    pub efficiency: f64,
    /// Converter no-load loss while powered, W.
    #[serde(default = "default_idle_w")]
    pub idle_w: f64,
    /// Converter under-voltage lockout, V.
    #[serde(default = "default_socket_min_v")]
    pub min_input_v: f64,
    /// Restart voltage after lockout, V. Default `min_input_v + 2`.
    #[serde(default)]
    pub restart_v: Option<f64>,
    /// Attach-to-contract time, s.
    #[serde(default = "default_negotiation_s")]
    pub negotiation_s: f64,
    /// Re-negotiation time after a budget change, s.
    #[serde(default = "default_renegotiation_s")]
    pub renegotiation_s: f64,
    /// Type-C current advertised at 5 V before the PD contract, A.
    #[serde(default = "default_typec_a")]
    pub typec_current_a: f64,
}

fn default_socket_eff() -> f64 {
    0.94
}
fn default_idle_w() -> f64 {
    0.3
}
fn default_socket_min_v() -> f64 {
    30.0
}
fn default_negotiation_s() -> f64 {
    0.3
}
fn default_renegotiation_s() -> f64 {
    0.1
}
fn default_typec_a() -> f64 {
    1.5
}

impl UsbSocketConfig {
    /// A socket with the default converter and the given PDOs and budget.
    pub fn new(name: &str, pdos: Vec<Pdo>, budget_w: f64) -> Self {
        Self {
            name: name.to_owned(),
            pdos,
            budget_w,
            efficiency: default_socket_eff(),
            idle_w: default_idle_w(),
            min_input_v: default_socket_min_v(),
            restart_v: None,
            negotiation_s: default_negotiation_s(),
            renegotiation_s: default_renegotiation_s(),
            typec_current_a: default_typec_a(),
        }
    }

    pub fn restart_v(&self) -> f64 {
        self.restart_v.unwrap_or(self.min_input_v + 2.0)
    }

    pub fn validate(&self, circuit: &str) -> Result<(), String> {
        let who = format!("circuit \"{circuit}\": USB socket \"{}\"", self.name);
        if self.pdos.is_empty() {
            return Err(format!("{who}: pdos must not be empty"));
        }
        if !self.pdos.iter().any(|p| (p.voltage_v - 5.0).abs() < 0.05) {
            return Err(format!("{who}: pdos must include a 5 V PDO"));
        }
        for (k, p) in self.pdos.iter().enumerate() {
            if !(p.voltage_v.is_finite() && p.voltage_v > 0.0 && p.voltage_v <= 48.0) {
                return Err(format!(
                    "{who}: pdos[{k}].voltage_v must be in (0, 48], got {}",
                    p.voltage_v
                ));
            }
            if !(p.current_a.is_finite() && p.current_a > 0.0 && p.current_a <= 5.0) {
                return Err(format!(
                    "{who}: pdos[{k}].current_a must be in (0, 5], got {}",
                    p.current_a
                ));
            }
        }
        let chk = |v: f64, f: &str, ok: bool| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(format!("{who}: {f} is out of range: {v}"))
            }
        };
        chk(self.budget_w, "budget_w", self.budget_w >= 0.0)?;
        chk(
            self.efficiency,
            "efficiency",
            self.efficiency > 0.0 && self.efficiency <= 1.0,
        )?;
        chk(self.idle_w, "idle_w", self.idle_w >= 0.0)?;
        chk(self.min_input_v, "min_input_v", self.min_input_v > 0.0)?;
        chk(
            self.restart_v(),
            "restart_v",
            self.restart_v() >= self.min_input_v,
        )?;
        chk(
            self.negotiation_s,
            "negotiation_s",
            self.negotiation_s >= 0.0,
        )?;
        chk(
            self.renegotiation_s,
            "renegotiation_s",
            self.renegotiation_s >= 0.0,
        )?;
        chk(
            self.typec_current_a,
            "typec_current_a",
            self.typec_current_a >= 0.0 && self.typec_current_a <= 3.0,
        )?;
        Ok(())
    }
}

/// An explicit PD contract.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Contract {
    /// Index of the chosen PDO in the socket's capabilities.
    pub pdo_index: usize,
    pub voltage_v: f64,
    /// Operating (maximum) current the device may draw, A.
    pub max_current_a: f64,
    /// The budget it was negotiated under, W.
    pub budget_w: f64,
}

impl Contract {
    pub fn max_power_w(&self) -> f64 {
        self.voltage_v * self.max_current_a
    }
}

/// The device's request against the socket's capabilities under `budget_w`.
pub fn negotiate(pdos: &[Pdo], budget_w: f64, sink: &DeviceConfig) -> Contract {
    let budget = budget_w.max(0.0);
    let need = sink.max_input_w.max(sink.active_w);
    let offered = |p: &Pdo| p.current_a.min(budget / p.voltage_v);
    let mut best_ok: Option<usize> = None;
    let mut best_any: Option<usize> = None;
    for (k, p) in pdos.iter().enumerate() {
        if !sink.accepts(p.voltage_v) {
            continue;
        }
        let pw = offered(p) * p.voltage_v;
        let higher = match best_ok {
            None => true,
            Some(b) => p.voltage_v > pdos[b].voltage_v,
        };
        if pw >= need - 1e-9 && higher {
            best_ok = Some(k);
        }
        let better = match best_any {
            None => true,
            Some(b) => {
                let pb = offered(&pdos[b]) * pdos[b].voltage_v;
                pw > pb + 1e-9 || ((pw - pb).abs() <= 1e-9 && p.voltage_v > pdos[b].voltage_v)
            }
        };
        if better {
            best_any = Some(k);
        }
    }
    match best_ok.or(best_any) {
        Some(k) => {
            let p = &pdos[k];
            let i = offered(p).min(need / p.voltage_v);
            Contract {
                pdo_index: k,
                voltage_v: p.voltage_v,
                max_current_a: i.max(0.0),
                budget_w: budget,
            }
        }
        // Validation guarantees a 5 V PDO, which every sink accepts.
        None => Contract {
            budget_w: budget,
            ..Contract::default()
        },
    }
}

/// Where a socket is in its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum PdState {
    /// Nothing plugged.
    #[default]
    Detached,
    /// Device attached; contract pending (`remaining_s` to go). 5 V Type-C power.
    Negotiating { remaining_s: f64 },
    /// Contract in force.
    Contract(Contract),
    /// Budget changed; the old contract is capped by the new budget until done.
    Renegotiating { old: Contract, remaining_s: f64 },
}

/// Protocol state of one socket.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PdPort {
    pub state: PdState,
    /// The device attached (index into the bus's device list).
    pub attached: Option<usize>,
}

impl PdPort {
    /// The power the device may draw now under `cfg` and `budget_w`, W.
    pub fn power_limit_w(&self, cfg: &UsbSocketConfig, budget_w: f64) -> f64 {
        match self.state {
            PdState::Detached => 0.0,
            PdState::Negotiating { .. } => (5.0 * cfg.typec_current_a).min(budget_w.max(0.0)),
            PdState::Contract(c) => c.max_power_w(),
            PdState::Renegotiating { old, .. } => old.max_power_w().min(budget_w.max(0.0)),
        }
    }

    /// Handles plug/unplug and budget changes at the start of a step.
    pub fn begin_step(&mut self, cfg: &UsbSocketConfig, device: Option<usize>, budget_w: f64) {
        if device != self.attached {
            self.attached = device;
            self.state = match device {
                None => PdState::Detached,
                Some(_) => PdState::Negotiating {
                    remaining_s: cfg.negotiation_s,
                },
            };
        }
        if let PdState::Contract(c) = self.state {
            if (c.budget_w - budget_w.max(0.0)).abs() > 1e-9 {
                self.state = PdState::Renegotiating {
                    old: c,
                    remaining_s: cfg.renegotiation_s,
                };
            }
        }
    }

    /// Advances the protocol timers at the end of a step. A socket that is
    /// not powered (locked out) loses its contract and starts over.
    pub fn end_step(
        &mut self,
        dt_s: f64,
        cfg: &UsbSocketConfig,
        budget_w: f64,
        sink: Option<&DeviceConfig>,
        powered: bool,
    ) {
        let Some(sink) = sink else {
            self.state = PdState::Detached;
            return;
        };
        if !powered {
            self.state = PdState::Negotiating {
                remaining_s: cfg.negotiation_s,
            };
            return;
        }
        match &mut self.state {
            PdState::Negotiating { remaining_s } | PdState::Renegotiating { remaining_s, .. } => {
                *remaining_s -= dt_s;
                if *remaining_s <= 1e-12 {
                    self.state = PdState::Contract(negotiate(&cfg.pdos, budget_w, sink));
                }
            }
            PdState::Detached | PdState::Contract(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::devices::DeviceKind;
    use super::*;

    #[test]
    fn picks_highest_satisfying_pdo() {
        let pdos = standard_pdos_65w();
        let phone = DeviceConfig::preset(DeviceKind::Phone, "p");
        let c = negotiate(&pdos, 65.0, &phone);
        assert_eq!(c.voltage_v, 9.0);
        assert!((c.max_current_a - 20.0 / 9.0).abs() < 1e-12);
        let laptop = DeviceConfig::preset(DeviceKind::Laptop, "l");
        let c = negotiate(&pdos, 65.0, &laptop);
        assert_eq!((c.voltage_v, c.max_current_a), (20.0, 3.25));
        // 100 W socket: laptop asks only for its 65 W.
        let c = negotiate(&standard_pdos_100w(), 100.0, &laptop);
        assert_eq!((c.voltage_v, c.max_current_a), (20.0, 3.25));
    }

    #[test]
    fn respects_budget() {
        let pdos = standard_pdos_100w();
        let laptop = DeviceConfig::preset(DeviceKind::Laptop, "l");
        let c = negotiate(&pdos, 45.0, &laptop);
        assert_eq!(c.voltage_v, 20.0);
        assert!(c.max_power_w() <= 45.0 + 1e-9);
        assert!((c.max_current_a - 2.25).abs() < 1e-12);
        // A phone that only takes 5/9 V under a 10 W budget.
        let phone = DeviceConfig::preset(DeviceKind::Phone, "p");
        let c = negotiate(&pdos, 10.0, &phone);
        assert!(c.max_power_w() <= 10.0 + 1e-9);
        assert_eq!(c.voltage_v, 9.0);
        // A TV (5 V / 20 V) on a 65 W socket gets 20 V / 3.25 A.
        let tv = DeviceConfig::preset(DeviceKind::Tv, "tv");
        let c = negotiate(&standard_pdos_65w(), 65.0, &tv);
        assert_eq!((c.voltage_v, c.max_current_a), (20.0, 3.25));
    }

    #[test]
    fn negotiation_takes_time_and_renegotiates_on_budget_change() {
        let cfg = UsbSocketConfig::new("desk", standard_pdos_65w(), 65.0);
        let laptop = DeviceConfig::preset(DeviceKind::Laptop, "l");
        let mut port = PdPort::default();
        let dt = 0.01;
        let mut t = 0.0;
        let mut t_contract = None;
        for _ in 0..100 {
            port.begin_step(&cfg, Some(0), 65.0);
            if t_contract.is_none() {
                assert!(port.power_limit_w(&cfg, 65.0) <= 7.5 + 1e-12);
            }
            port.end_step(dt, &cfg, 65.0, Some(&laptop), true);
            t += dt;
            if t_contract.is_none() && matches!(port.state, PdState::Contract(_)) {
                t_contract = Some(t);
            }
        }
        let tc = t_contract.unwrap();
        assert!((tc - 0.3).abs() < 0.011, "{tc}");
        assert_eq!(port.power_limit_w(&cfg, 65.0), 65.0);
        // Budget cut to 30 W: immediately capped, new contract after 0.1 s.
        port.begin_step(&cfg, Some(0), 30.0);
        assert!(matches!(port.state, PdState::Renegotiating { .. }));
        assert_eq!(port.power_limit_w(&cfg, 30.0), 30.0);
        for _ in 0..11 {
            port.end_step(dt, &cfg, 30.0, Some(&laptop), true);
            port.begin_step(&cfg, Some(0), 30.0);
        }
        match port.state {
            PdState::Contract(c) => {
                assert!(c.max_power_w() <= 30.0 + 1e-9);
                assert_eq!(c.budget_w, 30.0);
            }
            s => panic!("{s:?}"),
        }
        // Unplug.
        port.begin_step(&cfg, None, 30.0);
        assert_eq!(port.state, PdState::Detached);
    }
}
