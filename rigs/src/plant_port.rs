//! The plant port: the one place where the twin household meets a
//! controller, whatever carries the values between them.
//!
//! A [`PlantPort`] is built once per house from its [`HouseConfig`] and the
//! [`SignalRegistry`] of its engine. It
//! - reads the house's published signals into one typed [`Measurements`]
//!   snapshot — what a virtual probe reads, never the models' fields — the
//!   only measurement map of the crate;
//! - turns a controller's [`AssemblyCommand`] (what the command frames
//!   carry) into the [`PlantCommands`] the house applies (the charger's
//!   boost and the converter's standby setpoints are decided here and
//!   nowhere else);
//! - says what a house without an assembly is told
//!   ([`PlantPort::no_assembly`]).
//!
//! Two paths are built on it: the direct path (`rig::direct`: in-process,
//! no frames: measurements become firmware inputs, firmware commands
//! become [`AssemblyCommand`]s) and the link path (`plant_link`: status
//! frames and P1 telegrams out, command frames in).
//!
//! May use: `twin` (the house's config, signals, commands). Must not use:
//! frames, transports, clocks, the firmware's controller.

use twin::engine::{SignalId, SignalRegistry};
use twin::house::{signal_slug, HouseConfig, PlantCommands};

/// Charger setpoint the controller's "boost" maps to (above the battery
/// converter's droop setpoint, so the battery charges from mains), V.
pub const CHARGER_BOOST_SETPOINT_V: f64 = 51.5;

/// How far below the charger's setpoint a battery converter in standby
/// regulates the bus, V: far enough that the charger carries the DC loads
/// while mains is there, near enough that the bus stays well above the
/// protection's under-voltage threshold when it is not.
pub const STANDBY_BELOW_CHARGER_V: f64 = 1.0;

/// Circuits and sockets an assembly command can address (the controller's
/// and the CAN contract's limit: 4-bit indices, 16-bit masks).
pub const MAX_INDEXED: usize = 16;

/// A house the port cannot serve; each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error(
        "the house publishes no signal `{name}` (the plant port reads it for {purpose}): build the signal registry from this house's config, or add the signal to twin/src/house.rs"
    )]
    MissingSignal { name: String, purpose: &'static str },
    #[error(
        "the house has {count} {what}; an assembly addresses at most {MAX_INDEXED} (4-bit index, 16-bit mask): split the assembly or extend firmware/can/maslow.dbc"
    )]
    TooMany { what: &'static str, count: usize },
}

/// One DC circuit as measured at its breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CircuitMeasurements {
    pub power_w: f64,
    pub voltage_v: f64,
    /// The circuit's breaker is open.
    pub tripped: bool,
}

/// One USB-PD socket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SocketMeasurements {
    pub power_w: f64,
    /// Plug detection where the house publishes it, else drawing more than
    /// 0.5 W (a switched-off socket then reads empty).
    pub plugged: bool,
    /// The plugged device's reported charge (USB-PD Battery_Status), 0..1,
    /// where the house publishes it (any value: readers check the range).
    pub device_soc: Option<f64>,
}

/// The smart meter at the connection point.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeterMeasurements {
    pub import_w: f64,
    pub export_w: f64,
    /// Energy registers, all tariffs.
    pub import_kwh: f64,
    pub export_kwh: f64,
    /// Per tariff (1, 2).
    pub import_tariff_kwh: [f64; 2],
    pub export_tariff_kwh: [f64; 2],
    /// Tariff indicator as published (1 = low, 2 = normal).
    pub tariff: f64,
    pub short_power_failures: f64,
    pub long_power_failures: f64,
    pub voltage_l1_v: f64,
    pub current_l1_a: f64,
}

/// Everything a controller can know about the house at one instant, read
/// from its published signals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurements {
    pub pack_voltage_v: f64,
    /// Positive = discharge.
    pub pack_current_a: f64,
    pub cell_voltage_min_v: f64,
    pub cell_voltage_max_v: f64,
    pub pack_temperature_min_c: f64,
    pub pack_temperature_max_c: f64,
    pub bus_voltage_v: f64,
    pub charger_ac_power_w: f64,
    pub inverter_ac_power_w: f64,
    /// What the PV converter could deliver (its MPP power), as an MPPT
    /// converter reports it.
    pub pv_available_w: f64,
    /// What it delivers (less when curtailed).
    pub pv_delivered_w: f64,
    pub pv_curtailed_w: f64,
    pub mains_present: bool,
    pub mains_voltage_v: f64,
    pub mains_frequency_hz: f64,
    /// Bus order.
    pub circuits: Vec<CircuitMeasurements>,
    /// Bus order.
    pub sockets: Vec<SocketMeasurements>,
    pub meter: MeterMeasurements,
}

/// Current at a circuit's breaker: its power over the bus voltage (none
/// with the bus down). Generic so each path keeps its own precision.
pub fn breaker_current_a<T>(power_w: T, bus_voltage_v: T) -> T
where
    T: Copy + PartialOrd + From<u8> + std::ops::Div<Output = T>,
{
    if bus_voltage_v > T::from(1) {
        power_w / bus_voltage_v
    } else {
        T::from(0)
    }
}

/// What a controller tells the assembly's power stage: what the command
/// frames carry (reasons aside).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssemblyCommand {
    pub battery_enabled: bool,
    /// Hold the charge but back the DC bus from below the charger's setpoint.
    pub battery_standby: bool,
    pub battery_charge_limit_w: f64,
    pub battery_discharge_limit_w: f64,
    pub charger_enabled: bool,
    /// Charge from mains: the charger regulates above the battery converter.
    pub charger_boost: bool,
    pub inverter_enabled: bool,
    pub inverter_request_ac_w: f64,
    pub inverter_export_enabled: bool,
    pub pv_cap_w: Option<f64>,
    /// Per circuit (bus order): supplied.
    pub circuits_on: heapless::Vec<bool, MAX_INDEXED>,
    /// Per socket (bus order): enabled.
    pub sockets_on: heapless::Vec<bool, MAX_INDEXED>,
    /// Per socket (bus order): power cap.
    pub socket_caps_w: heapless::Vec<Option<f64>, MAX_INDEXED>,
}

impl AssemblyCommand {
    /// Everything off, for `circuits` circuits and `sockets` sockets (at
    /// most [`MAX_INDEXED`] each; more are not addressed).
    pub fn all_off(circuits: usize, sockets: usize) -> Self {
        let mut c = AssemblyCommand::default();
        for _ in 0..circuits.min(MAX_INDEXED) {
            let _ = c.circuits_on.push(false);
        }
        for _ in 0..sockets.min(MAX_INDEXED) {
            let _ = c.sockets_on.push(false);
            let _ = c.socket_caps_w.push(None);
        }
        c
    }
}

/// Signal ids of one circuit.
#[derive(Debug, Clone, Copy)]
struct CircuitIds {
    power: SignalId,
    voltage: SignalId,
    tripped: SignalId,
}

/// Signal ids of one socket.
#[derive(Debug, Clone, Copy)]
struct SocketIds {
    power: SignalId,
    plugged: Option<SignalId>,
    device_soc: Option<SignalId>,
}

/// Signal ids read, looked up once.
#[derive(Debug, Clone)]
struct Probes {
    pack_voltage: SignalId,
    pack_current: SignalId,
    cell_min: SignalId,
    cell_max: SignalId,
    temp_min: SignalId,
    temp_max: SignalId,
    bus_voltage: SignalId,
    charger_ac: SignalId,
    inverter_ac: SignalId,
    pv_available: SignalId,
    pv_delivered: SignalId,
    pv_curtailed: SignalId,
    mains_present: SignalId,
    mains_voltage: SignalId,
    mains_frequency: SignalId,
    circuits: Vec<CircuitIds>,
    sockets: Vec<SocketIds>,
    meter: [SignalId; 13],
}

/// The meter's signals, in [`Probes::meter`] order.
const METER_SIGNALS: [&str; 13] = [
    "grid_import_w",
    "grid_export_w",
    "grid_import_kwh",
    "grid_export_kwh",
    "grid_import_t1_kwh",
    "grid_import_t2_kwh",
    "grid_export_t1_kwh",
    "grid_export_t2_kwh",
    "tariff",
    "short_power_failures",
    "long_power_failures",
    "meter_voltage_l1_v",
    "meter_current_l1_a",
];

impl Probes {
    fn new(s: &SignalRegistry, cfg: &HouseConfig) -> Result<Self, PortError> {
        let need = |name: &str, purpose: &'static str| {
            s.lookup(name).ok_or_else(|| PortError::MissingSignal {
                name: name.to_owned(),
                purpose,
            })
        };
        let mut circuits = Vec::new();
        for c in &cfg.bus.circuits {
            let n = signal_slug(&c.name);
            let purpose = "the circuit's measurements";
            circuits.push(CircuitIds {
                power: need(&format!("circuit_{n}_power_w"), purpose)?,
                voltage: need(&format!("circuit_{n}_voltage_v"), purpose)?,
                tripped: need(&format!("circuit_{n}_tripped"), purpose)?,
            });
        }
        let mut sockets = Vec::new();
        for k in cfg.bus.circuits.iter().flat_map(|c| c.usb_sockets.iter()) {
            let n = signal_slug(&k.name);
            sockets.push(SocketIds {
                power: need(&format!("socket_{n}_power_w"), "the socket's measurements")?,
                plugged: s.lookup(&format!("socket_{n}_plugged")),
                device_soc: s.lookup(&format!("socket_{n}_device_soc")),
            });
        }
        let mut meter = Vec::with_capacity(METER_SIGNALS.len());
        for name in METER_SIGNALS {
            meter.push(need(name, "the meter's measurements")?);
        }
        let pack = "the pack's measurements";
        let bus = "the bus's measurements";
        let pv = "the PV converter's measurements";
        let mains = "the mains measurements";
        Ok(Probes {
            pack_voltage: need("pack_voltage_v", pack)?,
            pack_current: need("pack_current_a", pack)?,
            cell_min: need("cell_voltage_min_v", pack)?,
            cell_max: need("cell_voltage_max_v", pack)?,
            temp_min: need("pack_temperature_min_c", pack)?,
            temp_max: need("pack_temperature_max_c", pack)?,
            bus_voltage: need("bus_voltage_v", bus)?,
            charger_ac: need("charger_ac_power_w", bus)?,
            inverter_ac: need("inverter_ac_power_w", bus)?,
            pv_available: need("pv_available_w", pv)?,
            pv_delivered: need("pv_power_w", pv)?,
            pv_curtailed: need("pv_curtailed_w", pv)?,
            mains_present: need("mains_present", mains)?,
            mains_voltage: need("mains_voltage_v", mains)?,
            mains_frequency: need("mains_frequency_hz", mains)?,
            circuits,
            sockets,
            meter: meter
                .try_into()
                .unwrap_or_else(|_| unreachable!("one id per meter signal")),
        })
    }
}

/// A registry other than (smaller than) the one the port was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a signal registry of {got} signals, not the house's ({want}): nothing measured")]
pub struct ForeignRegistry {
    pub want: usize,
    pub got: usize,
}

/// The house's side of every controller link. See the module docs.
#[derive(Debug, Clone)]
pub struct PlantPort {
    probes: Probes,
    /// Signals in the registry the ids were looked up in.
    registry_len: usize,
    /// The battery converter's setpoint in standby (`None` without a
    /// charger: the converter then keeps its own setpoint).
    standby_setpoint_v: Option<f64>,
    measurements: Measurements,
}

impl PlantPort {
    /// The port of the house built from `cfg`, reading `signals` (the
    /// registry of that house's engine). Fails naming a missing signal and
    /// what needs it, or too many circuits or sockets.
    pub fn new(cfg: &HouseConfig, signals: &SignalRegistry) -> Result<Self, PortError> {
        let (circuits, sockets) = counts(cfg);
        for (what, count) in [("DC circuits", circuits), ("USB-PD sockets", sockets)] {
            if count > MAX_INDEXED {
                return Err(PortError::TooMany { what, count });
            }
        }
        let probes = Probes::new(signals, cfg)?;
        Ok(PlantPort {
            measurements: Measurements {
                circuits: vec![CircuitMeasurements::default(); circuits],
                sockets: vec![SocketMeasurements::default(); sockets],
                ..Measurements::default()
            },
            probes,
            registry_len: signals.len(),
            standby_setpoint_v: cfg
                .bus
                .charger
                .as_ref()
                .map(|c| c.setpoint_v - STANDBY_BELOW_CHARGER_V),
        })
    }

    /// DC circuits of the house.
    pub fn circuits(&self) -> usize {
        self.probes.circuits.len()
    }

    /// USB-PD sockets of the house.
    pub fn sockets(&self) -> usize {
        self.probes.sockets.len()
    }

    /// The battery converter's setpoint when a controller asks for standby.
    pub fn standby_setpoint_v(&self) -> Option<f64> {
        self.standby_setpoint_v
    }

    /// Reads `signals` (the registry the port was built for, or a copy of
    /// it with held sensors) into the snapshot, which it returns.
    pub fn measure(&mut self, signals: &SignalRegistry) -> Result<&Measurements, ForeignRegistry> {
        if signals.len() < self.registry_len {
            return Err(ForeignRegistry {
                want: self.registry_len,
                got: signals.len(),
            });
        }
        let p = &self.probes;
        let get = |id: SignalId| signals.get(id);
        let m = &mut self.measurements;
        m.pack_voltage_v = get(p.pack_voltage);
        m.pack_current_a = get(p.pack_current);
        m.cell_voltage_min_v = get(p.cell_min);
        m.cell_voltage_max_v = get(p.cell_max);
        m.pack_temperature_min_c = get(p.temp_min);
        m.pack_temperature_max_c = get(p.temp_max);
        m.bus_voltage_v = get(p.bus_voltage);
        m.charger_ac_power_w = get(p.charger_ac);
        m.inverter_ac_power_w = get(p.inverter_ac);
        m.pv_available_w = get(p.pv_available);
        m.pv_delivered_w = get(p.pv_delivered);
        m.pv_curtailed_w = get(p.pv_curtailed);
        m.mains_present = get(p.mains_present) > 0.5;
        m.mains_voltage_v = get(p.mains_voltage);
        m.mains_frequency_hz = get(p.mains_frequency);
        for (c, ids) in m.circuits.iter_mut().zip(&p.circuits) {
            *c = CircuitMeasurements {
                power_w: get(ids.power),
                voltage_v: get(ids.voltage),
                tripped: get(ids.tripped) > 0.5,
            };
        }
        for (k, ids) in m.sockets.iter_mut().zip(&p.sockets) {
            let power_w = get(ids.power);
            *k = SocketMeasurements {
                power_w,
                plugged: match ids.plugged {
                    Some(id) => get(id) > 0.5,
                    None => power_w > 0.5,
                },
                device_soc: ids.device_soc.map(get),
            };
        }
        let [import_w, export_w, import_kwh, export_kwh, i1, i2, e1, e2, tariff, short, long, v, a] =
            p.meter.map(get);
        m.meter = MeterMeasurements {
            import_w,
            export_w,
            import_kwh,
            export_kwh,
            import_tariff_kwh: [i1, i2],
            export_tariff_kwh: [e1, e2],
            tariff,
            short_power_failures: short,
            long_power_failures: long,
            voltage_l1_v: v,
            current_l1_a: a,
        };
        Ok(&self.measurements)
    }

    /// The snapshot of the last [`PlantPort::measure`].
    pub fn measurements(&self) -> &Measurements {
        &self.measurements
    }

    /// What the house is told for a controller's command. Circuits and
    /// sockets the command does not name stay supplied.
    pub fn plant_commands(&self, c: &AssemblyCommand) -> PlantCommands {
        PlantCommands {
            battery_enabled: c.battery_enabled,
            battery_discharge_limit_w: c.battery_discharge_limit_w,
            battery_charge_limit_w: c.battery_charge_limit_w,
            battery_setpoint_v: if c.battery_standby {
                self.standby_setpoint_v
            } else {
                None
            },
            charger_enabled: c.charger_enabled,
            charger_setpoint_v: c.charger_boost.then_some(CHARGER_BOOST_SETPOINT_V),
            inverter_enabled: c.inverter_enabled,
            inverter_request_ac_w: c.inverter_request_ac_w,
            inverter_export_enabled: Some(c.inverter_export_enabled),
            pv_cap_w: c.pv_cap_w,
            circuits_on: Some(c.circuits_on.to_vec()),
            sockets_on: Some(c.sockets_on.to_vec()),
        }
    }

    /// What a house without the assembly is told: see
    /// [`PlantCommands::no_assembly`].
    pub fn no_assembly(&self) -> PlantCommands {
        PlantCommands::no_assembly(self.circuits(), self.sockets())
    }
}

/// DC circuits and USB-PD sockets of a house.
pub fn counts(cfg: &HouseConfig) -> (usize, usize) {
    let circuits = cfg.bus.circuits.len();
    let sockets = cfg.bus.circuits.iter().map(|c| c.usb_sockets.len()).sum();
    (circuits, sockets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use twin::engine::Engine;
    use twin::house::House;
    use twin::time::SimTime;

    fn terrace() -> HouseConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../twin/params/house/terrace.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        HouseConfig::parse(&path, &text).unwrap()
    }

    fn evening() -> (HouseConfig, SignalRegistry) {
        let cfg = terrace();
        let mut house = House::new(cfg.clone()).unwrap();
        let mut engine = Engine::new(&mut house).unwrap();
        engine.run_until(&mut house, SimTime::from_secs(20 * 3600), |_, _| true);
        (cfg, engine.signals().clone())
    }

    fn sig(s: &SignalRegistry, name: &str) -> f64 {
        s.get(s.require(name).unwrap())
    }

    #[test]
    fn measurements_are_the_published_signals() {
        let (cfg, s) = evening();
        let mut port = PlantPort::new(&cfg, &s).unwrap();
        let m = port.measure(&s).unwrap().clone();
        assert_eq!(m.pack_voltage_v, sig(&s, "pack_voltage_v"));
        assert_eq!(m.pv_delivered_w, sig(&s, "pv_power_w"));
        assert_eq!(m.meter.import_tariff_kwh[1], sig(&s, "grid_import_t2_kwh"));
        assert_eq!(m.meter.tariff, sig(&s, "tariff"));
        assert!(m.mains_present);
        assert_eq!((m.circuits.len(), m.sockets.len()), (4, 4));
        assert_eq!(
            m.circuits[0].power_w,
            sig(&s, "circuit_lighting_downstairs_power_w")
        );
        assert_eq!(
            m.sockets[2].plugged,
            sig(&s, "socket_tv_plugged") > 0.5,
            "plug detection"
        );
        assert_eq!(port.measurements(), &m);
        let err = port.measure(&SignalRegistry::new()).unwrap_err();
        assert_eq!(err.got, 0);
    }

    #[test]
    fn a_missing_signal_is_named_with_what_needs_it() {
        let err = PlantPort::new(&terrace(), &SignalRegistry::new()).unwrap_err();
        assert_eq!(
            err,
            PortError::MissingSignal {
                name: "circuit_lighting_downstairs_power_w".into(),
                purpose: "the circuit's measurements"
            }
        );
        assert!(err.to_string().contains("twin/src/house.rs"), "{err}");
    }

    #[test]
    fn commands_become_plant_commands_with_the_port_s_setpoints() {
        let (cfg, s) = evening();
        let port = PlantPort::new(&cfg, &s).unwrap();
        let mut c = AssemblyCommand::all_off(4, 4);
        c.battery_enabled = true;
        c.battery_charge_limit_w = 2000.0;
        c.charger_boost = true;
        c.pv_cap_w = Some(1200.0);
        c.circuits_on[1] = true;
        let p = port.plant_commands(&c);
        assert_eq!(p.charger_setpoint_v, Some(CHARGER_BOOST_SETPOINT_V));
        assert_eq!(p.battery_setpoint_v, None);
        assert_eq!(p.battery_charge_limit_w, 2000.0);
        assert_eq!(p.pv_cap_w, Some(1200.0));
        assert_eq!(p.circuits_on, Some(vec![false, true, false, false]));
        c.battery_standby = true;
        let standby = port.plant_commands(&c).battery_setpoint_v;
        let charger_v = cfg.bus.charger.as_ref().unwrap().setpoint_v;
        assert_eq!(standby, Some(charger_v - STANDBY_BELOW_CHARGER_V));
        assert_eq!(port.standby_setpoint_v(), standby);
    }

    #[test]
    fn the_house_without_an_assembly_keeps_everything_supplied() {
        let (cfg, s) = evening();
        let port = PlantPort::new(&cfg, &s).unwrap();
        let p = port.no_assembly();
        assert!(!p.battery_enabled && !p.inverter_enabled && p.charger_enabled);
        assert_eq!(p.circuits_on, Some(vec![true; 4]));
        assert_eq!(p.sockets_on, Some(vec![true; 4]));
    }

    #[test]
    fn breaker_current_is_power_over_bus_voltage_with_the_bus_up() {
        assert_eq!(breaker_current_a(96.0f64, 48.0), 2.0);
        assert_eq!(breaker_current_a(96.0f32, 0.5), 0.0);
    }
}
