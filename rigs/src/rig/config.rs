//! Rig files: which scenario, where the controller runs, which transports
//! link it to the twin, and the time mode. Schema in `rigs/README.md`.
//!
//! Parsing is strict: an unknown key, a wrong type or a missing required
//! key is an error naming the key (and the line, from `toml`); paths are
//! resolved relative to the rig file; combinations that cannot work (a
//! child-process controller on the in-process bus, a board in lockstep
//! without a bus clock...) are refused with the key to change.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A rig file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RigFileError {
    #[error("cannot read rig file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rig file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("rig file {path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// Virtual time (plant and controller advance together, as fast as they
/// can) or wall-clock time (the plant is paced at a fixed step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeMode {
    Lockstep,
    Realtime,
}

/// Where the controller runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControllerLocation {
    /// The firmware core in the rig's own process.
    InProcess,
    /// `maslow-firmware` started by the rig, linked over pseudo-terminals
    /// or real ports.
    ChildProcess,
    /// A real board, already running; the rig only talks to it.
    Board,
}

/// How CAN frames travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanTransport {
    InProcess,
    /// SLCAN over a pseudo-terminal pair the rig creates.
    SlcanPty,
    /// SLCAN over a serial adapter (CANable, USBtin) at `can.device`.
    Slcan,
    /// Linux SocketCAN interface `can.interface`.
    Socketcan,
}

/// How the meter's P1 telegrams travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeterTransport {
    InProcess,
    Pty,
    Serial,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRig {
    rig: RawHeader,
    twin: RawTwin,
    controller: RawController,
    can: RawCan,
    meter: RawMeter,
    #[serde(default)]
    faults: Option<RawFaults>,
    #[serde(default)]
    trace: Option<RawTrace>,
    #[serde(default)]
    probe: Option<RawProbe>,
    #[serde(default)]
    instruments: Vec<RawInstrument>,
    #[serde(default)]
    sabotage: Option<RawSabotage>,
}

/// `[sabotage]`: a saboteur the rig inserts between the controller and
/// the plant (`maslow test --sabotage list`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSabotage {
    saboteur: String,
}

/// `[probe]`: the virtual probe Gherkin steps measure through on a
/// software rig.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[serde(default)]
    rate_hz: Option<f64>,
    #[serde(default)]
    noise_std: Option<f64>,
    #[serde(default)]
    quantum: Option<f64>,
    #[serde(default)]
    signals: std::collections::BTreeMap<String, RawProbeChannel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbeChannel {
    #[serde(default)]
    noise_std: f64,
    #[serde(default)]
    quantum: f64,
}

/// `[[instruments]]`: a measuring device on the bench.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum RawInstrument {
    Sigrok(crate::instrument::sigrok::SigrokDeviceConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: String,
    #[serde(default)]
    description: String,
    time: TimeMode,
    #[serde(default)]
    plant_step_ms: Option<u64>,
    #[serde(default)]
    sync_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTwin {
    scenario: PathBuf,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    runs: ControllerLocation,
    #[serde(default)]
    config: Option<PathBuf>,
    #[serde(default)]
    program: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCan {
    transport: CanTransport,
    #[serde(default)]
    bitrate: Option<u32>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    interface: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeter {
    transport: MeterTransport,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    baud: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFaults {
    seed: u64,
    #[serde(default)]
    drop: f64,
    #[serde(default)]
    duplicate: f64,
    #[serde(default)]
    corrupt: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrace {
    #[serde(default)]
    candump: bool,
}

/// Seeded link faults the rig injects on its side of the CAN link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRates {
    pub seed: u64,
    pub drop: f64,
    pub duplicate: f64,
    pub corrupt: f64,
}

/// The controller end of a rig.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerSpec {
    pub runs: ControllerLocation,
    /// The controller's TOML (in-process and child-process).
    pub config: Option<PathBuf>,
    /// `maslow-firmware` or a path (child-process).
    pub program: String,
    pub args: Vec<String>,
}

/// A validated rig.
#[derive(Debug, Clone, PartialEq)]
pub struct Rig {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub time: TimeMode,
    /// The plant's fixed step: the house's electrical step and, in
    /// real time, the pacing period.
    pub plant_step_ms: u64,
    /// Lockstep: how long to wait for the controller's acknowledgement of
    /// a time sync before giving up.
    pub sync_timeout_ms: u64,
    pub scenario: PathBuf,
    pub seed: Option<u64>,
    pub controller: ControllerSpec,
    pub can: CanTransport,
    pub bitrate: u32,
    pub can_device: Option<String>,
    pub can_interface: Option<String>,
    pub meter: MeterTransport,
    pub meter_device: Option<String>,
    pub meter_baud: u32,
    pub faults: Option<FaultRates>,
    pub candump: bool,
    /// The virtual probe's capture rate, Hz (`[probe] rate_hz`, default 1).
    pub probe_rate_hz: f64,
    /// The virtual probe's noise and resolution per signal.
    pub probe: crate::instrument::probe::ProbeConfig,
    /// Bench instruments (sigrok devices) whose channels map to signals;
    /// their readings replace the probe's for those signals.
    pub instruments: Vec<crate::instrument::sigrok::SigrokDeviceConfig>,
    /// A saboteur between the controller and the plant (`[sabotage]`).
    pub sabotage: Option<crate::sabotage::Saboteur>,
}

/// Default real-time plant step (the HIL step), ms.
pub const DEFAULT_REALTIME_STEP_MS: u64 = 10;
/// Default lockstep plant step, ms: the contract's shortest cycle time, so
/// every cyclic frame is exchanged at its period.
pub const DEFAULT_LOCKSTEP_STEP_MS: u64 = 100;

impl Rig {
    /// Reads and validates a rig file.
    pub fn load(path: &Path) -> Result<Rig, RigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| RigFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Rig::parse(path, &text)
    }

    /// Validates rig text; `path` names it in errors and anchors relative
    /// paths.
    pub fn parse(path: &Path, text: &str) -> Result<Rig, RigFileError> {
        let raw: RawRig = toml::from_str(text).map_err(|e| RigFileError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        let invalid = |key: &'static str, message: String| RigFileError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let time = raw.rig.time;
        let plant_step_ms = raw.rig.plant_step_ms.unwrap_or(match time {
            TimeMode::Lockstep => DEFAULT_LOCKSTEP_STEP_MS,
            TimeMode::Realtime => DEFAULT_REALTIME_STEP_MS,
        });
        if !(1..=1000).contains(&plant_step_ms) {
            return Err(invalid(
                "rig.plant_step_ms",
                format!("must be within 1..=1000 ms, found {plant_step_ms}"),
            ));
        }
        if time == TimeMode::Lockstep && 100 % plant_step_ms != 0 {
            return Err(invalid(
                "rig.plant_step_ms",
                format!(
                    "in lockstep the step must divide the contract's 100 ms cycle (1, 2, 4, 5, 10, 20, 25, 50 or 100), found {plant_step_ms}"
                ),
            ));
        }
        let sync_timeout_ms = raw.rig.sync_timeout_ms.unwrap_or(5000);
        if sync_timeout_ms == 0 {
            return Err(invalid("rig.sync_timeout_ms", "must be positive".into()));
        }

        let c = raw.controller;
        let config = c.config.as_deref().map(resolve);
        if c.runs != ControllerLocation::Board && config.is_none() {
            return Err(invalid(
                "controller.config",
                "the controller's TOML is required unless `runs = \"board\"` (e.g. \"../firmware/config/terrace.toml\")".into(),
            ));
        }
        if c.runs != ControllerLocation::ChildProcess && (c.program.is_some() || !c.args.is_empty())
        {
            return Err(invalid(
                "controller.program",
                "only a `runs = \"child-process\"` controller has a program and args".into(),
            ));
        }
        let controller = ControllerSpec {
            runs: c.runs,
            config,
            program: c.program.unwrap_or_else(|| "maslow-firmware".into()),
            args: c.args,
        };

        let bitrate = raw.can.bitrate.unwrap_or(500_000);
        if bitrate != 500_000 {
            return Err(invalid(
                "can.bitrate",
                format!(
                    "the contract (firmware/can/maslow.dbc) runs at 500000 bit/s, found {bitrate}"
                ),
            ));
        }
        let in_process = controller.runs == ControllerLocation::InProcess;
        match (raw.can.transport, in_process) {
            (CanTransport::InProcess, false) => {
                return Err(invalid(
                    "can.transport",
                    "\"in-process\" needs `controller.runs = \"in-process\"`; a separate controller needs \"slcan-pty\", \"slcan\" or \"socketcan\"".into(),
                ))
            }
            (t, true) if t != CanTransport::InProcess => {
                return Err(invalid(
                    "can.transport",
                    "an in-process controller uses `transport = \"in-process\"`".into(),
                ))
            }
            _ => {}
        }
        if raw.can.transport == CanTransport::Slcan && raw.can.device.is_none() {
            return Err(invalid(
                "can.device",
                "SLCAN needs the adapter's serial device, e.g. \"/dev/ttyACM0\"".into(),
            ));
        }
        if raw.can.transport == CanTransport::Socketcan && raw.can.interface.is_none() {
            return Err(invalid(
                "can.interface",
                "SocketCAN needs an interface name, e.g. \"can0\"".into(),
            ));
        }
        match (raw.meter.transport, in_process) {
            (MeterTransport::InProcess, false) => {
                return Err(invalid(
                    "meter.transport",
                    "\"in-process\" needs an in-process controller; use \"pty\" or \"serial\""
                        .into(),
                ))
            }
            (t, true) if t != MeterTransport::InProcess => {
                return Err(invalid(
                    "meter.transport",
                    "an in-process controller reads the meter in-process".into(),
                ))
            }
            _ => {}
        }
        if raw.meter.transport == MeterTransport::Serial && raw.meter.device.is_none() {
            return Err(invalid(
                "meter.device",
                "a serial meter port needs a device, e.g. \"/dev/ttyUSB0\"".into(),
            ));
        }
        if controller.runs == ControllerLocation::ChildProcess
            && (raw.can.transport != CanTransport::SlcanPty
                && raw.can.transport != CanTransport::Slcan
                && raw.can.transport != CanTransport::Socketcan)
        {
            return Err(invalid(
                "can.transport",
                "a child-process controller needs \"slcan-pty\", \"slcan\" or \"socketcan\"".into(),
            ));
        }
        let faults = match raw.faults {
            None => None,
            Some(f) => {
                for (key, v) in [
                    ("faults.drop", f.drop),
                    ("faults.duplicate", f.duplicate),
                    ("faults.corrupt", f.corrupt),
                ] {
                    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                        return Err(invalid(key, format!("a rate within 0..=1, found {v}")));
                    }
                }
                Some(FaultRates {
                    seed: f.seed,
                    drop: f.drop,
                    duplicate: f.duplicate,
                    corrupt: f.corrupt,
                })
            }
        };
        let (probe_rate_hz, probe) = match raw.probe {
            None => (1.0, crate::instrument::probe::ProbeConfig::default()),
            Some(p) => {
                let rate = p.rate_hz.unwrap_or(1.0);
                if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) {
                    return Err(invalid(
                        "probe.rate_hz",
                        format!("a rate within (0, 1000] Hz, found {rate}"),
                    ));
                }
                let channel = |key: &'static str, noise_std: f64, quantum: f64| {
                    if !(noise_std.is_finite()
                        && noise_std >= 0.0
                        && quantum.is_finite()
                        && quantum >= 0.0)
                    {
                        return Err(invalid(
                            key,
                            format!("noise_std and quantum must be finite and ≥ 0, found {noise_std} and {quantum}"),
                        ));
                    }
                    Ok(crate::instrument::probe::ProbeChannel { noise_std, quantum })
                };
                let mut cfg = crate::instrument::probe::ProbeConfig {
                    default: channel(
                        "probe",
                        p.noise_std.unwrap_or(0.0),
                        p.quantum.unwrap_or(0.0),
                    )?,
                    ..Default::default()
                };
                for (name, c) in p.signals {
                    let ch = channel("probe.signals", c.noise_std, c.quantum)?;
                    cfg.channels.insert(name, ch);
                }
                (rate, cfg)
            }
        };
        let mut instruments = Vec::new();
        for (k, i) in raw.instruments.into_iter().enumerate() {
            match i {
                RawInstrument::Sigrok(c) => {
                    c.validate().map_err(|m| {
                        invalid("instruments", format!("instruments[{k}] ({}): {m}", c.name))
                    })?;
                    instruments.push(c);
                }
            }
        }
        let sabotage = match raw.sabotage {
            Some(s) => Some(s.saboteur.parse().map_err(
                |e: crate::sabotage::UnknownSaboteur| invalid("sabotage.saboteur", e.to_string()),
            )?),
            None => None,
        };
        Ok(Rig {
            path: path.to_path_buf(),
            name: raw.rig.name,
            description: raw.rig.description,
            time,
            plant_step_ms,
            sync_timeout_ms,
            scenario: resolve(&raw.twin.scenario),
            seed: raw.twin.seed,
            controller,
            can: raw.can.transport,
            bitrate,
            can_device: raw.can.device,
            can_interface: raw.can.interface,
            meter: raw.meter.transport,
            meter_device: raw.meter.device,
            meter_baud: raw.meter.baud.unwrap_or(115_200),
            faults,
            candump: raw.trace.map(|t| t.candump).unwrap_or(false),
            probe_rate_hz,
            probe,
            instruments,
            sabotage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIM: &str = r#"
[rig]
name = "sim"
time = "lockstep"
[twin]
scenario = "../twin/params/house/terrace.toml"
seed = 7
[controller]
runs = "in-process"
config = "../firmware/config/terrace.toml"
[can]
transport = "in-process"
[meter]
transport = "in-process"
"#;

    fn parse(text: &str) -> Result<Rig, RigFileError> {
        Rig::parse(Path::new("/repo/rigs/x.toml"), text)
    }

    #[test]
    fn sim_parses_with_defaults_and_relative_paths() {
        let rig = parse(SIM).expect("valid");
        assert_eq!(rig.time, TimeMode::Lockstep);
        assert_eq!(rig.plant_step_ms, 100);
        assert_eq!(
            rig.scenario,
            Path::new("/repo/rigs/../twin/params/house/terrace.toml")
        );
        assert_eq!(rig.seed, Some(7));
        assert_eq!(rig.bitrate, 500_000);
    }

    fn err(text: &str) -> String {
        parse(text).expect_err("must be refused").to_string()
    }

    #[test]
    fn probe_and_instruments() {
        let rig = parse(&format!(
            "{SIM}\n[probe]\nrate_hz = 10.0\nnoise_std = 0.01\n[probe.signals.bus_voltage_v]\nnoise_std = 0.05\nquantum = 0.01\n\n[[instruments]]\nkind = \"sigrok\"\nname = \"scope\"\ndriver = \"demo\"\nsamplerate_hz = 1000\n[[instruments.channels]]\nchannel = \"A0\"\nsignal = \"bus_voltage_v\"\nunit = \"V\"\nscale = 2.0\n"
        ))
        .unwrap();
        assert_eq!(rig.probe_rate_hz, 10.0);
        assert_eq!(rig.probe.default.noise_std, 0.01);
        assert_eq!(rig.probe.channels["bus_voltage_v"].quantum, 0.01);
        assert_eq!(rig.instruments.len(), 1);
        assert_eq!(rig.instruments[0].channels[0].scale, 2.0);
        let defaults = parse(SIM).unwrap();
        assert_eq!(defaults.probe_rate_hz, 1.0);
        assert!(defaults.instruments.is_empty());
        let e = err(&format!("{SIM}\n[probe]\nrate_hz = 0.0\n"));
        assert!(e.contains("`probe.rate_hz`"), "{e}");
        let e = err(&format!("{SIM}\n[probe]\nnoise_std = -1.0\n"));
        assert!(e.contains("`probe`"), "{e}");
        let e = err(&format!(
            "{SIM}\n[[instruments]]\nkind = \"scope\"\nname = \"x\"\n"
        ));
        assert!(e.contains("scope") || e.contains("kind"), "{e}");
        let e = err(&format!(
            "{SIM}\n[[instruments]]\nkind = \"sigrok\"\nname = \"x\"\ndriver = \"demo\"\nsamplerate_hz = 1000\nchannels = []\ncolour = \"red\"\n"
        ));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = err(&SIM.replace("time = \"lockstep\"", "time = \"fast\""));
        assert!(e.contains("time") && e.contains("fast"), "{e}");
        let e = err(&SIM.replace("seed = 7", "seed = 7\nspeed = 3"));
        assert!(e.contains("speed"), "{e}");
        let e = err(&SIM.replace(
            "[can]\ntransport = \"in-process\"",
            "[can]\ntransport = \"slcan-pty\"",
        ));
        assert!(e.contains("`can.transport`"), "{e}");
        let e = err(&SIM.replace("config = \"../firmware/config/terrace.toml\"\n", ""));
        assert!(e.contains("`controller.config`"), "{e}");
        let e = err(&SIM.replace(
            "time = \"lockstep\"",
            "time = \"lockstep\"\nplant_step_ms = 30",
        ));
        assert!(e.contains("`rig.plant_step_ms`"), "{e}");
        let e = err(&SIM.replace("[meter]", "[faults]\nseed = 1\ndrop = 2.0\n[meter]"));
        assert!(e.contains("`faults.drop`"), "{e}");
        let e = err("[rig]\nname = 1");
        assert!(e.contains("rig file /repo/rigs/x.toml"), "{e}");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every rig file the repository ships parses and validates.
    #[test]
    fn shipped_rig_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, time, runs) in [
            (
                "sim.toml",
                TimeMode::Lockstep,
                ControllerLocation::InProcess,
            ),
            (
                "sil.toml",
                TimeMode::Lockstep,
                ControllerLocation::ChildProcess,
            ),
            (
                "bench.example.toml",
                TimeMode::Realtime,
                ControllerLocation::Board,
            ),
        ] {
            let rig = Rig::load(&dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rig.time, time, "{name}");
            assert_eq!(rig.controller.runs, runs, "{name}");
            assert!(
                rig.scenario.exists(),
                "{name}: scenario {:?} missing",
                rig.scenario
            );
            if let Some(c) = &rig.controller.config {
                assert!(c.exists(), "{name}: controller config {c:?} missing");
            }
        }
    }
}
