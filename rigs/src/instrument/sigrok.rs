//! sigrok devices as [`Instrument`]s: a bench multimeter, scope or logic
//! analyser whose channels a rig file maps to the signal names steps use.
//!
//! ```toml
//! [[instruments]]
//! kind = "sigrok"
//! name = "bench-scope"
//! driver = "demo"                # any libsigrok driver: rigol-ds, fx2lafw...
//! # connection = "/dev/ttyUSB0"  # its SR_CONF_CONN, when it needs one
//! samplerate_hz = 10000
//!
//! [[instruments.channels]]
//! channel = "A0"
//! signal = "bus_voltage_v"
//! unit = "V"
//! scale = 5.0                    # value = raw × scale + offset (a 1:5 divider)
//! offset = 0.0
//! ```
//!
//! libsigrok is loaded at run time (the `sigrok` crate): without it,
//! [`SigrokInstrument::open`] fails with a message saying what to install.
//! A capture runs in a background thread from [`Instrument::start`] to
//! [`Instrument::stop`]; libsigrok allows one capture per process at a
//! time, so two sigrok instruments of one rig cannot capture together (the
//! second `start` fails after waiting [`BUSY_WAIT`]).

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sigrok::{Capture, Context, RunStatus, SigrokError, StopHandle};

use super::{Instrument, InstrumentError, SignalSpec, TimeSeries};

/// How long opening or starting waits for another libsigrok context of the
/// process to go away.
pub const BUSY_WAIT: Duration = Duration::from_secs(10);

/// How long `start` waits for the device to begin capturing.
const START_WAIT: Duration = Duration::from_secs(20);

/// A sigrok device in a rig file (`[[instruments]] kind = "sigrok"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigrokDeviceConfig {
    /// The instrument's name (messages, reports).
    pub name: String,
    /// The libsigrok driver (`demo`, `fx2lafw`, `rigol-ds`, `uni-t-ut61e`...).
    pub driver: String,
    /// The driver's connection option (`SR_CONF_CONN`: a serial port, a USB
    /// bus.address, `tcp-raw/host/port`...), when it needs one.
    #[serde(default)]
    pub connection: Option<String>,
    /// The device's sample rate.
    pub samplerate_hz: u64,
    /// Which device channels measure which signals.
    pub channels: Vec<SigrokChannelMap>,
}

/// One device channel as a named signal: value = raw × `scale` + `offset`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigrokChannelMap {
    /// The device's channel name (`A0`, `CH1`, `D3`, `P1`).
    pub channel: String,
    /// The signal name steps use (`bus_voltage_v`).
    pub signal: String,
    /// The unit of the scaled value (`V`, `A`; "" for a flag or count).
    #[serde(default)]
    pub unit: String,
    /// Multiplies the raw reading (probe ratio, shunt conversion); default 1.
    #[serde(default = "one")]
    pub scale: f64,
    /// Added after scaling; default 0.
    #[serde(default)]
    pub offset: f64,
}

fn one() -> f64 {
    1.0
}

impl SigrokDeviceConfig {
    /// Checks what can be checked without the device.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a sigrok instrument needs a name".to_owned());
        }
        if self.driver.trim().is_empty() {
            return Err(format!("instrument {}: no driver", self.name));
        }
        if self.samplerate_hz == 0 {
            return Err(format!(
                "instrument {}: samplerate_hz must be positive",
                self.name
            ));
        }
        if self.channels.is_empty() {
            return Err(format!("instrument {}: maps no channels", self.name));
        }
        for (i, c) in self.channels.iter().enumerate() {
            if self.channels[..i].iter().any(|o| o.signal == c.signal) {
                return Err(format!(
                    "instrument {}: signal `{}` is mapped twice",
                    self.name, c.signal
                ));
            }
            if !c.scale.is_finite() || c.scale == 0.0 || !c.offset.is_finite() {
                return Err(format!(
                    "instrument {}: signal `{}` needs a finite non-zero scale and a finite offset (scale {}, offset {})",
                    self.name, c.signal, c.scale, c.offset
                ));
            }
        }
        Ok(())
    }

    /// The distinct device channels, in mapping order.
    fn device_channels(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.channels {
            if !out.contains(&c.channel) {
                out.push(c.channel.clone());
            }
        }
        out
    }
}

struct Active {
    /// Indices into the config's channel maps, in the order asked for.
    signals: Vec<usize>,
    /// Keep every n-th device sample (the rate asked for, at least).
    keep_every: usize,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<Capture, SigrokError>>>,
}

/// A sigrok device measuring mapped signals.
pub struct SigrokInstrument {
    config: SigrokDeviceConfig,
    active: Option<Active>,
}

impl std::fmt::Debug for SigrokInstrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigrokInstrument")
            .field("config", &self.config)
            .field("capturing", &self.active.is_some())
            .finish()
    }
}

impl SigrokInstrument {
    /// Checks the config, loads libsigrok, finds the device and checks that
    /// it has the mapped channels (then lets libsigrok go until `start`).
    pub fn open(config: SigrokDeviceConfig) -> Result<SigrokInstrument, InstrumentError> {
        let device_err = |message: String| InstrumentError::Device {
            instrument: config.name.clone(),
            message,
        };
        config.validate().map_err(device_err)?;
        let ctx = Context::load_timeout(BUSY_WAIT).map_err(|e| device_err(e.to_string()))?;
        let dev = ctx
            .first_device(&config.driver, config.connection.as_deref())
            .map_err(|e| device_err(e.to_string()))?;
        let has = dev.channels();
        for c in &config.channels {
            if !has.iter().any(|h| h.name == c.channel) {
                return Err(device_err(format!(
                    "{} device has no channel `{}` (mapped to `{}`; it has: {})",
                    config.driver,
                    c.channel,
                    c.signal,
                    has.iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        drop(dev);
        drop(ctx);
        Ok(SigrokInstrument {
            config,
            active: None,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &SigrokDeviceConfig {
        &self.config
    }

    /// Whether a capture is running.
    pub fn is_capturing(&self) -> bool {
        self.active.is_some()
    }

    fn device_err(&self, message: impl Into<String>) -> InstrumentError {
        InstrumentError::Device {
            instrument: self.config.name.clone(),
            message: message.into(),
        }
    }

    fn spawn_capture(
        &self,
        stop: &StopHandle,
    ) -> Result<JoinHandle<Result<Capture, SigrokError>>, InstrumentError> {
        let driver = self.config.driver.clone();
        let connection = self.config.connection.clone();
        let channels = self.config.device_channels();
        let samplerate_hz = self.config.samplerate_hz;
        let stop = stop.clone();
        thread::Builder::new()
            .name(format!("sigrok {}", self.config.name))
            .spawn(move || {
                let ctx = Context::load_timeout(BUSY_WAIT)?;
                let dev = ctx.first_device(&driver, connection.as_deref())?;
                let names: Vec<&str> = channels.iter().map(String::as_str).collect();
                dev.capture_until_stopped(&names, samplerate_hz, &stop)
            })
            .map_err(|e| self.device_err(format!("cannot start the capture thread: {e}")))
    }

    /// Joins the capture thread (after it was asked to stop).
    fn join(
        &self,
        thread: JoinHandle<Result<Capture, SigrokError>>,
    ) -> Result<Capture, InstrumentError> {
        match thread.join() {
            Ok(Ok(capture)) => Ok(capture),
            Ok(Err(e)) => Err(self.device_err(e.to_string())),
            Err(_) => Err(self.device_err("the capture thread panicked")),
        }
    }
}

impl Instrument for SigrokInstrument {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn signals(&self) -> Vec<SignalSpec> {
        self.config
            .channels
            .iter()
            .map(|c| SignalSpec {
                name: c.signal.clone(),
                unit: c.unit.clone(),
            })
            .collect()
    }

    /// Starts a continuous capture of the device's mapped channels at its
    /// configured sample rate; the series keep every n-th sample so that
    /// their rate is at least `rate_hz` (all of them when `rate_hz` is at
    /// or above the device's rate). Returns once the device is capturing.
    fn start(&mut self, signals: &[&str], rate_hz: f64) -> Result<(), InstrumentError> {
        if self.active.is_some() {
            return Err(InstrumentError::WrongState {
                instrument: self.config.name.clone(),
                what: "start",
                state: "already capturing",
            });
        }
        if !(rate_hz.is_finite() && rate_hz > 0.0) {
            return Err(InstrumentError::BadRate {
                instrument: self.config.name.clone(),
                rate_hz,
            });
        }
        let mut indices = Vec::with_capacity(signals.len());
        for s in signals {
            let Some(i) = self.config.channels.iter().position(|c| c.signal == *s) else {
                return Err(InstrumentError::UnknownSignal {
                    instrument: self.config.name.clone(),
                    signal: (*s).to_owned(),
                    available: self
                        .signals()
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            indices.push(i);
        }
        let ratio = self.config.samplerate_hz as f64 / rate_hz;
        // Truncation intended: a whole number of device samples, >= 1.
        let keep_every = if ratio >= 2.0 {
            ratio.floor().min(usize::MAX as f64) as usize
        } else {
            1
        };

        let stop = StopHandle::new();
        let thread = self.spawn_capture(&stop)?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            match stop.wait_running(Duration::from_millis(20)) {
                RunStatus::Running => break,
                RunStatus::Finished => {
                    return match self.join(thread) {
                        Err(e) => Err(e),
                        Ok(_) => Err(self.device_err("the capture ended as soon as it started")),
                    };
                }
                RunStatus::Waiting => {}
            }
            if thread.is_finished() {
                // Failed before the capture began (load, scan).
                return match self.join(thread) {
                    Err(e) => Err(e),
                    Ok(_) => Err(self.device_err("the capture ended as soon as it started")),
                };
            }
            if Instant::now() >= deadline {
                // The thread ends by itself once it gets libsigrok.
                stop.stop();
                return Err(self.device_err(format!(
                    "the device did not start capturing within {START_WAIT:?}"
                )));
            }
        }
        self.active = Some(Active {
            signals: indices,
            keep_every,
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops the capture and returns one series per started signal: times
    /// in s from the first sample (sample index / sample rate), values
    /// scaled (logic channels read 0 or 1 before scaling).
    fn stop(&mut self) -> Result<Vec<TimeSeries>, InstrumentError> {
        let Some(mut active) = self.active.take() else {
            return Err(InstrumentError::WrongState {
                instrument: self.config.name.clone(),
                what: "stop",
                state: "not capturing",
            });
        };
        active.stop.stop();
        let Some(thread) = active.thread.take() else {
            return Err(self.device_err("the capture thread is gone"));
        };
        let capture = self.join(thread)?;
        let rate = capture.samplerate_hz as f64;
        let mut out = Vec::with_capacity(active.signals.len());
        for &i in &active.signals {
            let map = &self.config.channels[i];
            let Some(raw) = capture.channel(&map.channel) else {
                return Err(self.device_err(format!("channel {} was not captured", map.channel)));
            };
            let mut series = TimeSeries::new(map.signal.clone(), map.unit.clone());
            for (n, v) in raw.samples.iter().enumerate().step_by(active.keep_every) {
                series.push(n as f64 / rate, v * map.scale + map.offset);
            }
            out.push(series);
        }
        Ok(out)
    }
}

impl Drop for SigrokInstrument {
    fn drop(&mut self) {
        if let Some(mut active) = self.active.take() {
            active.stop.stop();
            if let Some(thread) = active.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RIG_TOML: &str = r#"
        [[instruments]]
        kind = "sigrok"
        name = "bench"
        driver = "demo"
        samplerate_hz = 20000

        [[instruments.channels]]
        channel = "A0"
        signal = "bus_voltage_v"
        unit = "V"
        scale = 0.5
        offset = 1.0

        [[instruments.channels]]
        channel = "D0"
        signal = "relay_closed"
    "#;

    /// How a rig file can hold them: an enum tagged by `kind`.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "kind", rename_all = "lowercase")]
    enum InstrumentConfig {
        Sigrok(SigrokDeviceConfig),
    }

    #[derive(Debug, Deserialize)]
    struct Rig {
        instruments: Vec<InstrumentConfig>,
    }

    fn demo_config() -> SigrokDeviceConfig {
        let rig: Rig = toml::from_str(RIG_TOML).expect("rig TOML");
        let Some(InstrumentConfig::Sigrok(cfg)) = rig.instruments.into_iter().next() else {
            panic!("no instrument");
        };
        cfg
    }

    #[test]
    fn a_rig_file_table_parses_with_defaults() {
        let cfg = demo_config();
        assert_eq!(cfg.name, "bench");
        assert_eq!(cfg.driver, "demo");
        assert_eq!(cfg.connection, None);
        assert_eq!(cfg.samplerate_hz, 20_000);
        assert_eq!(
            cfg.channels[0],
            SigrokChannelMap {
                channel: "A0".into(),
                signal: "bus_voltage_v".into(),
                unit: "V".into(),
                scale: 0.5,
                offset: 1.0
            }
        );
        assert_eq!(
            cfg.channels[1],
            SigrokChannelMap {
                channel: "D0".into(),
                signal: "relay_closed".into(),
                unit: String::new(),
                scale: 1.0,
                offset: 0.0
            }
        );
        assert_eq!(cfg.validate(), Ok(()));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let bad = RIG_TOML.replace(
            "samplerate_hz = 20000",
            "samplerate_hz = 20000\nsample_rate = 5",
        );
        let err = toml::from_str::<Rig>(&bad).expect_err("unknown field");
        assert!(err.to_string().contains("sample_rate"), "{err}");
        let bad = RIG_TOML.replace("offset = 1.0", "offset = 1.0\nscael = 2.0");
        let err = toml::from_str::<Rig>(&bad).expect_err("unknown field");
        assert!(err.to_string().contains("scael"), "{err}");
    }

    #[test]
    fn validation_names_the_problem() {
        let mut cfg = demo_config();
        cfg.samplerate_hz = 0;
        assert!(cfg.validate().unwrap_err().contains("samplerate_hz"));
        let mut cfg = demo_config();
        cfg.channels[1].signal = "bus_voltage_v".into();
        assert!(cfg.validate().unwrap_err().contains("mapped twice"));
        let mut cfg = demo_config();
        cfg.channels[0].scale = f64::NAN;
        assert!(cfg.validate().unwrap_err().contains("scale"));
        let mut cfg = demo_config();
        cfg.channels.clear();
        assert!(cfg.validate().unwrap_err().contains("no channels"));
    }

    /// Opens `cfg`, or `None` (skip) when libsigrok is missing and
    /// `MASLOW_REQUIRE_SIGROK` is not `1`.
    fn open_or_skip(test: &str, cfg: SigrokDeviceConfig) -> Option<SigrokInstrument> {
        if let Err(e) = Context::load_from(sigrok::LIBSIGROK).map(drop) {
            sigrok::testing::skip_for(test, &e);
            return None;
        }
        Some(SigrokInstrument::open(cfg).expect("open the demo device"))
    }

    #[test]
    fn the_demo_device_through_the_instrument_trait() {
        let Some(mut inst) = open_or_skip("sigrok instrument", demo_config()) else {
            return;
        };
        let inst: &mut dyn Instrument = &mut inst;
        assert_eq!(inst.name(), "bench");
        assert_eq!(
            inst.signals()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["bus_voltage_v [V]", "relay_closed"]
        );
        for round in 0..2 {
            inst.start(&["relay_closed", "bus_voltage_v"], 20_000.0)
                .expect("start");
            thread::sleep(Duration::from_millis(250));
            let series = inst.stop().expect("stop");
            assert_eq!(series.len(), 2);
            let (relay, bus) = (&series[0], &series[1]);
            eprintln!(
                "round {round}: {} bus_voltage_v and {} relay_closed samples in 250 ms",
                bus.len(),
                relay.len()
            );
            assert_eq!(
                (relay.name.as_str(), bus.name.as_str()),
                ("relay_closed", "bus_voltage_v")
            );
            assert_eq!((relay.unit.as_str(), bus.unit.as_str()), ("", "V"));
            // ~0.25 s at 20 kHz; the demo sends what is due every 100 ms.
            assert!(
                bus.len() >= 2_000 && bus.len() <= 6_000,
                "round {round}: {} samples",
                bus.len()
            );
            for (i, (t, v)) in bus.t_s.iter().zip(&bus.values).enumerate() {
                assert_eq!(*t, i as f64 / 20_000.0, "sample {i}");
                // ±10 V square wave × 0.5 + 1.0.
                let expected = if (i / 5) % 2 == 0 { -4.0 } else { 6.0 };
                assert!(
                    (v - expected).abs() < 1e-6,
                    "round {round}, sample {i}: {v}"
                );
            }
            assert!(relay.values.iter().all(|v| *v == 0.0 || *v == 1.0));
            assert!(relay.values.contains(&0.0) && relay.values.contains(&1.0));
            assert!(relay.len() >= 2_000, "{}", relay.len());
        }
    }

    #[test]
    fn a_lower_rate_keeps_every_nth_sample() {
        let Some(mut inst) = open_or_skip("sigrok decimation", demo_config()) else {
            return;
        };
        inst.start(&["bus_voltage_v"], 4_000.0).expect("start");
        thread::sleep(Duration::from_millis(250));
        let series = inst.stop().expect("stop");
        let bus = &series[0];
        assert!(bus.len() >= 400, "{}", bus.len());
        for (i, (t, v)) in bus.t_s.iter().zip(&bus.values).enumerate() {
            // Every 5th device sample: 0.25 ms apart, and the 10-sample
            // square wave alternates every kept sample.
            assert!((t - i as f64 * 0.00025).abs() < 1e-12, "sample {i}: {t}");
            let expected = if i % 2 == 0 { -4.0 } else { 6.0 };
            assert!((v - expected).abs() < 1e-6, "sample {i}: {v}");
        }
    }

    #[test]
    fn misuse_is_an_error() {
        let Some(mut inst) = open_or_skip("sigrok misuse", demo_config()) else {
            return;
        };
        let err = inst.stop().expect_err("stop before start");
        assert!(matches!(err, InstrumentError::WrongState { .. }), "{err:?}");
        let err = inst
            .start(&["bus_current_a"], 100.0)
            .expect_err("unknown signal");
        match &err {
            InstrumentError::UnknownSignal {
                signal, available, ..
            } => {
                assert_eq!(signal, "bus_current_a");
                assert!(available.contains("bus_voltage_v [V]"), "{available}");
            }
            other => panic!("{other:?}"),
        }
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = inst.start(&["bus_voltage_v"], rate).expect_err("bad rate");
            assert!(matches!(err, InstrumentError::BadRate { .. }), "{err:?}");
        }
        inst.start(&["bus_voltage_v"], 100.0).expect("start");
        let err = inst
            .start(&["bus_voltage_v"], 100.0)
            .expect_err("start twice");
        assert!(matches!(err, InstrumentError::WrongState { .. }), "{err:?}");
        assert_eq!(inst.stop().expect("stop").len(), 1);
        // Dropped while capturing: the thread is stopped and joined.
        inst.start(&["relay_closed"], 100.0).expect("start again");
    }

    #[test]
    fn a_missing_channel_or_driver_fails_at_open() {
        let mut cfg = demo_config();
        cfg.channels[0].channel = "A9".into();
        if let Some(Err(e)) = open_result_or_skip("sigrok bad channel", cfg) {
            let msg = e.to_string();
            assert!(
                msg.contains("`A9`") && msg.contains("bus_voltage_v") && msg.contains("A0"),
                "{msg}"
            );
        }
        let mut cfg = demo_config();
        cfg.driver = "no-such-driver".into();
        if let Some(Err(e)) = open_result_or_skip("sigrok bad driver", cfg) {
            assert!(e.to_string().contains("no driver `no-such-driver`"), "{e}");
        }
    }

    fn open_result_or_skip(
        test: &str,
        cfg: SigrokDeviceConfig,
    ) -> Option<Result<SigrokInstrument, InstrumentError>> {
        if let Err(e) = Context::load_from(sigrok::LIBSIGROK).map(drop) {
            sigrok::testing::skip_for(test, &e);
            return None;
        }
        let result = SigrokInstrument::open(cfg);
        assert!(result.is_err(), "opened a bad config");
        Some(result)
    }
}
