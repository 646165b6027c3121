//! Instruments: how `Then` steps measure.
//!
//! Steps never read the twin's or the firmware's variables ("steps
//! measure, they do not peek"); they read time series captured by an
//! [`Instrument`]. On the software rig that is a [`probe::VirtualProbe`]
//! sampling twin signals with a configured rate, noise and quantisation;
//! on a bench it is a sigrok device (multimeter, scope, logic analyser,
//! power supply) whose channels a rig file maps to the same signal names.
//!
//! One trait: [`Instrument::start`] a capture of named signals at a rate,
//! [`Instrument::stop`] it and get the [`TimeSeries`] back, with units.

use std::fmt;

pub mod probe;
pub mod sigrok;

/// A named measurement an instrument can take.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSpec {
    /// The domain name steps use (`bus_voltage_v`, `circuit_0_power_w`).
    pub name: String,
    /// Unit symbol (`V`, `A`, `W`, `%`, `°C`, `` for a count or a flag).
    pub unit: String,
}

/// Samples of one signal: times (s since the capture's start on the run's
/// clock: virtual time on a lockstep rig, wall time on a real-time one)
/// and values, in `unit`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeSeries {
    pub name: String,
    pub unit: String,
    pub t_s: Vec<f64>,
    pub values: Vec<f64>,
}

impl TimeSeries {
    pub fn new(name: impl Into<String>, unit: impl Into<String>) -> Self {
        TimeSeries {
            name: name.into(),
            unit: unit.into(),
            t_s: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, t_s: f64, value: f64) {
        self.t_s.push(t_s);
        self.values.push(value);
    }

    pub fn len(&self) -> usize {
        self.t_s.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t_s.is_empty()
    }

    /// The samples with `from_s <= t <= to_s`.
    pub fn window(&self, from_s: f64, to_s: f64) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.t_s
            .iter()
            .copied()
            .zip(self.values.iter().copied())
            .filter(move |(t, _)| *t >= from_s && *t <= to_s)
    }
}

/// Why an instrument could not start, capture or stop.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentError {
    #[error("instrument {instrument}: no signal named `{signal}` (it measures: {available})")]
    UnknownSignal {
        instrument: String,
        signal: String,
        available: String,
    },
    #[error(
        "instrument {instrument}: the capture rate must be positive and finite, found {rate_hz} Hz"
    )]
    BadRate { instrument: String, rate_hz: f64 },
    #[error("instrument {instrument}: {what} while {state}")]
    WrongState {
        instrument: String,
        what: &'static str,
        state: &'static str,
    },
    /// The instrument's driver or library failed (libsigrok missing, device
    /// not found, USB error...).
    #[error("instrument {instrument}: {message}")]
    Device { instrument: String, message: String },
}

/// A measuring instrument.
pub trait Instrument: Send {
    /// Its name in the rig file (for messages and reports).
    fn name(&self) -> &str;

    /// What it can measure.
    fn signals(&self) -> Vec<SignalSpec>;

    /// Starts capturing `signals` at `rate_hz`. Errors name the signal that
    /// the instrument does not have; starting twice is an error.
    fn start(&mut self, signals: &[&str], rate_hz: f64) -> Result<(), InstrumentError>;

    /// Stops the capture and returns one series per started signal, in the
    /// order they were asked for. Stopping when not started is an error.
    fn stop(&mut self) -> Result<Vec<TimeSeries>, InstrumentError>;
}

impl fmt::Display for SignalSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unit.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{} [{}]", self.name, self.unit)
        }
    }
}
