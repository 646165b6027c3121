//! The virtual probe: the software rig's instrument. It samples twin
//! signals the way a meter would — at its own rate, with seeded Gaussian
//! noise and quantisation per signal — so step code cannot tell it from a
//! real instrument, and a step that only passes on exact twin values fails
//! here too.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use twin::engine::{SignalId, SignalRegistry};

use super::{Instrument, InstrumentError, SignalSpec, TimeSeries};

/// How the probe reads one signal.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProbeChannel {
    /// Standard deviation of additive Gaussian noise, in the signal's unit.
    pub noise_std: f64,
    /// Resolution: readings are rounded to a multiple of this (0: none).
    pub quantum: f64,
}

/// Per-signal noise and resolution; signals not listed use `default`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeConfig {
    pub default: ProbeChannel,
    pub channels: BTreeMap<String, ProbeChannel>,
}

struct Active {
    ids: Vec<(SignalId, ProbeChannel)>,
    series: Vec<TimeSeries>,
    period_s: f64,
    next_s: f64,
}

/// Samples named signals of a [`SignalRegistry`] as the rig steps.
pub struct VirtualProbe {
    name: String,
    specs: Vec<(SignalId, SignalSpec)>,
    config: ProbeConfig,
    rng: ChaCha8Rng,
    active: Option<Active>,
}

impl VirtualProbe {
    /// A probe on every signal of `signals`, with noise drawn from `seed`.
    pub fn new(
        name: impl Into<String>,
        signals: &SignalRegistry,
        config: ProbeConfig,
        seed: u64,
    ) -> VirtualProbe {
        let specs = signals
            .iter()
            .map(|(id, n, unit, _)| {
                (
                    id,
                    SignalSpec {
                        name: n.to_owned(),
                        unit: unit.symbol().to_owned(),
                    },
                )
            })
            .collect();
        VirtualProbe {
            name: name.into(),
            specs,
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            active: None,
        }
    }

    /// Whether a capture is running.
    pub fn is_capturing(&self) -> bool {
        self.active.is_some()
    }

    /// The samples taken since the capture started or since the last
    /// drain, one series per signal; the capture goes on.
    pub fn drain(&mut self) -> Vec<TimeSeries> {
        match self.active.as_mut() {
            Some(a) => a
                .series
                .iter_mut()
                .map(|s| {
                    let mut out = TimeSeries::new(s.name.clone(), s.unit.clone());
                    std::mem::swap(&mut out.t_s, &mut s.t_s);
                    std::mem::swap(&mut out.values, &mut s.values);
                    out
                })
                .collect(),
            None => Vec::new(),
        }
    }

    /// Called by the rig after every plant step with the run's time: takes
    /// the samples that are due. Samples fall on whole multiples of the
    /// capture period (the first at the capture's start).
    pub fn observe(&mut self, now_s: f64, signals: &SignalRegistry) {
        let Some(a) = self.active.as_mut() else {
            return;
        };
        // A tolerance of a millionth of a period absorbs float time stamps.
        if now_s + a.period_s * 1e-6 < a.next_s {
            return;
        }
        for ((id, ch), series) in a.ids.iter().zip(a.series.iter_mut()) {
            let mut v = signals.get(*id);
            if ch.noise_std > 0.0 {
                if let Ok(n) = Normal::new(0.0, ch.noise_std) {
                    v += n.sample(&mut self.rng);
                }
            }
            if ch.quantum > 0.0 {
                v = (v / ch.quantum).round() * ch.quantum;
            }
            series.push(now_s, v);
        }
        // Next due time: the next multiple of the period after now.
        let k = (now_s / a.period_s).floor() + 1.0;
        a.next_s = k * a.period_s;
    }
}

impl Instrument for VirtualProbe {
    fn name(&self) -> &str {
        &self.name
    }

    fn signals(&self) -> Vec<SignalSpec> {
        self.specs.iter().map(|(_, s)| s.clone()).collect()
    }

    fn start(&mut self, signals: &[&str], rate_hz: f64) -> Result<(), InstrumentError> {
        if self.active.is_some() {
            return Err(InstrumentError::WrongState {
                instrument: self.name.clone(),
                what: "start",
                state: "capturing",
            });
        }
        if !(rate_hz.is_finite() && rate_hz > 0.0) {
            return Err(InstrumentError::BadRate {
                instrument: self.name.clone(),
                rate_hz,
            });
        }
        let mut ids = Vec::with_capacity(signals.len());
        let mut series = Vec::with_capacity(signals.len());
        for want in signals {
            let Some((id, spec)) = self.specs.iter().find(|(_, s)| s.name == *want) else {
                let mut available: Vec<&str> =
                    self.specs.iter().map(|(_, s)| s.name.as_str()).collect();
                available.sort_unstable();
                return Err(InstrumentError::UnknownSignal {
                    instrument: self.name.clone(),
                    signal: (*want).to_owned(),
                    available: available.join(", "),
                });
            };
            let ch = self
                .config
                .channels
                .get(*want)
                .copied()
                .unwrap_or(self.config.default);
            ids.push((*id, ch));
            series.push(TimeSeries::new(spec.name.clone(), spec.unit.clone()));
        }
        self.active = Some(Active {
            ids,
            series,
            period_s: 1.0 / rate_hz,
            next_s: 0.0,
        });
        Ok(())
    }

    fn stop(&mut self) -> Result<Vec<TimeSeries>, InstrumentError> {
        match self.active.take() {
            Some(a) => Ok(a.series),
            None => Err(InstrumentError::WrongState {
                instrument: self.name.clone(),
                what: "stop",
                state: "not capturing",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin::engine::Unit;

    fn registry() -> (SignalRegistry, SignalId, SignalId) {
        let mut r = SignalRegistry::new();
        let v = r.register("bus_voltage_v", Unit::Volt).unwrap();
        let p = r.register("grid_import_w", Unit::Watt).unwrap();
        (r, v, p)
    }

    #[test]
    fn samples_at_its_rate_with_units() {
        let (mut r, v, _) = registry();
        let mut probe = VirtualProbe::new("probe", &r, ProbeConfig::default(), 1);
        probe.start(&["bus_voltage_v"], 2.0).unwrap();
        for k in 0..=100 {
            r.set(v, 48.0 + k as f64);
            probe.observe(k as f64 * 0.1, &r);
        }
        let s = probe.stop().unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].unit, "V");
        // 0.0, 0.5, ..., 10.0
        assert_eq!(s[0].len(), 21);
        assert_eq!(s[0].t_s[1], 0.5);
        assert_eq!(s[0].values[1], 53.0);
    }

    #[test]
    fn noise_and_quantisation_are_seeded_and_bounded() {
        let (mut r, v, _) = registry();
        r.set(v, 48.0);
        let mut cfg = ProbeConfig::default();
        cfg.channels.insert(
            "bus_voltage_v".into(),
            ProbeChannel {
                noise_std: 0.05,
                quantum: 0.01,
            },
        );
        let capture = |seed| {
            let mut p = VirtualProbe::new("probe", &r, cfg.clone(), seed);
            p.start(&["bus_voltage_v"], 1.0).unwrap();
            for k in 0..2000 {
                p.observe(k as f64, &r);
            }
            p.stop().unwrap().remove(0).values
        };
        let a = capture(7);
        assert_eq!(a, capture(7), "same seed, same readings");
        assert_ne!(a, capture(8));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!((mean - 48.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 0.05).abs() < 0.005, "std {}", var.sqrt());
        for x in &a {
            let steps = x / 0.01;
            assert!(
                (steps - steps.round()).abs() < 1e-6,
                "{x} not on the 10 mV grid"
            );
        }
    }

    #[test]
    fn errors_name_the_signal_and_the_state() {
        let (r, _, _) = registry();
        let mut p = VirtualProbe::new("probe", &r, ProbeConfig::default(), 1);
        let e = p.start(&["bus_votlage_v"], 1.0).unwrap_err().to_string();
        assert!(
            e.contains("bus_votlage_v") && e.contains("bus_voltage_v"),
            "{e}"
        );
        assert!(p.start(&["bus_voltage_v"], 0.0).is_err());
        assert!(p.stop().is_err());
        p.start(&["grid_import_w"], 1.0).unwrap();
        assert!(p.start(&["grid_import_w"], 1.0).is_err());
        assert!(p.stop().unwrap()[0].is_empty());
    }
}
