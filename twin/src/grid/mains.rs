//! The public supply as the house sees it: presence, RMS voltage and
//! frequency, with scheduled outages (from the scenario file or added at run
//! time by the engine and steps), seeded random short interruptions, slow
//! seeded voltage and frequency wander, scheduled voltage dips/swells, and an
//! optional load-dependent sag through a source impedance.
//!
//! [`Mains::state`] is a pure function of `now` (plus what has been
//! scheduled): the random parts are drawn by random access into seeded
//! ChaCha8 streams, so the answer does not depend on step size or on the
//! order of queries.

use std::cell::Cell;

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::{check_positive, check_range, stream_rng, ConfigError};
use crate::time::SimTime;

const PURPOSE_VOLTAGE: u64 = 0x6d61_696e_7356;
const PURPOSE_FREQUENCY: u64 = 0x6d61_696e_7346;
const PURPOSE_INTERRUPTIONS: u64 = 0x6d61_696e_7349;
/// Random interruptions are drawn per bucket of this length.
const INTERRUPTION_BUCKET_S: f64 = 3600.0;
const INTERRUPTION_BUCKET_US: u64 = 3_600_000_000;

/// A scheduled power cut: the mains is absent for `[start_s, start_s + duration_s)`,
/// seconds since the scenario epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageConfig {
    pub start_s: f64,
    pub duration_s: f64,
}

/// A scheduled dip or swell: the RMS voltage is held at `voltage_v` for
/// `[start_s, start_s + duration_s)` (the mains stays present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoltageEventConfig {
    pub start_s: f64,
    pub duration_s: f64,
    pub voltage_v: f64,
}

/// Mains parameters. Every field has a default (230 V / 50 Hz, a little
/// wander, no outages), so `[mains]` may be empty.
///
/// ```toml
/// [mains]
/// nominal_voltage_v = 230.0
/// nominal_frequency_hz = 50.0
/// voltage_wander_v = 2.0            # std-dev of the slow variation
/// voltage_wander_interval_s = 900.0 # correlation time of that variation
/// frequency_wander_hz = 0.02
/// frequency_wander_interval_s = 30.0
/// source_impedance_ohm = 0.3        # load-dependent sag (0 = none)
/// random_interruptions_per_day = 0.0
/// random_interruption_min_s = 0.5
/// random_interruption_max_s = 60.0
/// outages = [ { start_s = 64800.0, duration_s = 21600.0 } ]
/// voltage_events = [ { start_s = 3600.0, duration_s = 2.0, voltage_v = 190.0 } ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MainsConfig {
    pub nominal_voltage_v: f64,
    pub nominal_frequency_hz: f64,
    /// Standard deviation of the slow seeded voltage variation, V (0 = none).
    pub voltage_wander_v: f64,
    /// Spacing of the random knots of the voltage variation, s.
    pub voltage_wander_interval_s: f64,
    /// Standard deviation of the seeded frequency wander, Hz (0 = none).
    pub frequency_wander_hz: f64,
    /// Spacing of the random knots of the frequency wander, s.
    pub frequency_wander_interval_s: f64,
    /// Thevenin source impedance of the supply, Ω: importing `P` lowers the
    /// voltage by `R·P/V`, exporting raises it (see [`Mains::state_under_load`]).
    pub source_impedance_ohm: f64,
    /// Scheduled power cuts.
    pub outages: Vec<OutageConfig>,
    /// Scheduled dips and swells.
    pub voltage_events: Vec<VoltageEventConfig>,
    /// Mean rate of seeded random short interruptions (Poisson), per day.
    pub random_interruptions_per_day: f64,
    /// Shortest random interruption, s (durations are log-uniform).
    pub random_interruption_min_s: f64,
    /// Longest random interruption, s (at most 3600).
    pub random_interruption_max_s: f64,
}

impl Default for MainsConfig {
    fn default() -> Self {
        MainsConfig {
            nominal_voltage_v: 230.0,
            nominal_frequency_hz: 50.0,
            voltage_wander_v: 2.0,
            voltage_wander_interval_s: 900.0,
            frequency_wander_hz: 0.02,
            frequency_wander_interval_s: 30.0,
            source_impedance_ohm: 0.0,
            outages: Vec::new(),
            voltage_events: Vec::new(),
            random_interruptions_per_day: 0.0,
            random_interruption_min_s: 0.5,
            random_interruption_max_s: 60.0,
        }
    }
}

impl MainsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("nominal_voltage_v", self.nominal_voltage_v, 1.0, 1000.0)?;
        check_range(
            "nominal_frequency_hz",
            self.nominal_frequency_hz,
            1.0,
            1000.0,
        )?;
        check_range(
            "voltage_wander_v",
            self.voltage_wander_v,
            0.0,
            0.1 * self.nominal_voltage_v,
        )?;
        check_positive("voltage_wander_interval_s", self.voltage_wander_interval_s)?;
        check_range(
            "frequency_wander_hz",
            self.frequency_wander_hz,
            0.0,
            0.05 * self.nominal_frequency_hz,
        )?;
        check_positive(
            "frequency_wander_interval_s",
            self.frequency_wander_interval_s,
        )?;
        check_range("source_impedance_ohm", self.source_impedance_ohm, 0.0, 10.0)?;
        for (i, o) in self.outages.iter().enumerate() {
            check_range(&format!("outages[{i}].start_s"), o.start_s, 0.0, 1e12)?;
            check_range(&format!("outages[{i}].duration_s"), o.duration_s, 0.0, 1e12)?;
        }
        for (i, e) in self.voltage_events.iter().enumerate() {
            check_range(
                &format!("voltage_events[{i}].start_s"),
                e.start_s,
                0.0,
                1e12,
            )?;
            check_range(
                &format!("voltage_events[{i}].duration_s"),
                e.duration_s,
                0.0,
                1e12,
            )?;
            check_range(
                &format!("voltage_events[{i}].voltage_v"),
                e.voltage_v,
                0.0,
                2.0 * self.nominal_voltage_v,
            )?;
        }
        check_range(
            "random_interruptions_per_day",
            self.random_interruptions_per_day,
            0.0,
            1000.0,
        )?;
        check_positive("random_interruption_min_s", self.random_interruption_min_s)?;
        check_range(
            "random_interruption_max_s",
            self.random_interruption_max_s,
            self.random_interruption_min_s,
            INTERRUPTION_BUCKET_S,
        )?;
        Ok(())
    }
}

/// What the mains offers at one instant. When absent, voltage and frequency
/// are zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MainsState {
    pub present: bool,
    pub voltage_v: f64,
    pub frequency_hz: f64,
}

impl MainsState {
    /// A dead supply.
    pub const ABSENT: MainsState = MainsState {
        present: false,
        voltage_v: 0.0,
        frequency_hz: 0.0,
    };

    /// A healthy 230 V / 50 Hz supply (handy in tests and examples).
    pub const NOMINAL: MainsState = MainsState {
        present: true,
        voltage_v: 230.0,
        frequency_hz: 50.0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start_us: u64,
    end_us: u64,
}

impl Interval {
    fn from_secs(start_s: f64, duration_s: f64) -> Self {
        let start = SimTime::from_secs_f64(start_s).as_micros();
        let dur = SimTime::from_secs_f64(duration_s).as_micros();
        Interval {
            start_us: start,
            end_us: start.saturating_add(dur),
        }
    }
    fn contains(&self, t: u64) -> bool {
        self.start_us <= t && t < self.end_us
    }
}

/// Cached pair of neighbouring random knots of a wander process.
#[derive(Debug, Clone, Copy)]
struct Knots {
    index: u64,
    a: f64,
    b: f64,
}

/// Random interruptions of one bucket (at most this many are kept; a bucket
/// rarely holds more than one or two at any sane rate).
const MAX_PER_BUCKET: usize = 8;

#[derive(Debug, Clone, Copy)]
struct BucketCache {
    bucket: u64,
    n: usize,
    items: [Interval; MAX_PER_BUCKET],
}

/// The mains supply model. See the module docs.
#[derive(Debug, Clone)]
pub struct Mains {
    cfg: MainsConfig,
    seed: u64,
    outages: Vec<Interval>,
    voltage_events: Vec<(Interval, f64)>,
    v_cache: Cell<Option<Knots>>,
    f_cache: Cell<Option<Knots>>,
    int_cache: [Cell<Option<BucketCache>>; 2],
}

impl Mains {
    /// A supply from validated parameters and the scenario's seed.
    pub fn new(cfg: MainsConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let outages = cfg
            .outages
            .iter()
            .map(|o| Interval::from_secs(o.start_s, o.duration_s))
            .collect();
        let voltage_events = cfg
            .voltage_events
            .iter()
            .map(|e| (Interval::from_secs(e.start_s, e.duration_s), e.voltage_v))
            .collect();
        Ok(Mains {
            cfg,
            seed,
            outages,
            voltage_events,
            v_cache: Cell::new(None),
            f_cache: Cell::new(None),
            int_cache: [Cell::new(None), Cell::new(None)],
        })
    }

    pub fn config(&self) -> &MainsConfig {
        &self.cfg
    }

    /// Adds a power cut at run time: absent for `[start, start + duration_s)`.
    pub fn schedule_outage(&mut self, start: SimTime, duration_s: f64) -> Result<(), ConfigError> {
        check_range("duration_s", duration_s, 0.0, 1e12)?;
        let dur = SimTime::from_secs_f64(duration_s).as_micros();
        self.outages.push(Interval {
            start_us: start.as_micros(),
            end_us: start.as_micros().saturating_add(dur),
        });
        Ok(())
    }

    /// Ends, at `now`, every scheduled outage in progress at `now` ("the
    /// mains returns"). Random interruptions are not affected.
    pub fn restore_at(&mut self, now: SimTime) {
        let t = now.as_micros();
        for o in &mut self.outages {
            if o.contains(t) {
                o.end_us = t;
            }
        }
    }

    /// Adds a dip or swell at run time: voltage held at `voltage_v` for
    /// `[start, start + duration_s)`.
    pub fn schedule_voltage_event(
        &mut self,
        start: SimTime,
        duration_s: f64,
        voltage_v: f64,
    ) -> Result<(), ConfigError> {
        check_range("duration_s", duration_s, 0.0, 1e12)?;
        check_range(
            "voltage_v",
            voltage_v,
            0.0,
            2.0 * self.cfg.nominal_voltage_v,
        )?;
        let dur = SimTime::from_secs_f64(duration_s).as_micros();
        self.voltage_events.push((
            Interval {
                start_us: start.as_micros(),
                end_us: start.as_micros().saturating_add(dur),
            },
            voltage_v,
        ));
        Ok(())
    }

    /// Whether the supply is present at `now` (no scheduled outage and no
    /// random interruption covers it).
    pub fn is_present(&self, now: SimTime) -> bool {
        let t = now.as_micros();
        !self.outages.iter().any(|o| o.contains(t)) && !self.in_random_interruption(t)
    }

    /// The supply at `now`, unloaded.
    pub fn state(&self, now: SimTime) -> MainsState {
        if !self.is_present(now) {
            return MainsState::ABSENT;
        }
        let t = now.as_micros();
        let voltage_v = match self
            .voltage_events
            .iter()
            .rev()
            .find(|(i, _)| i.contains(t))
        {
            Some(&(_, v)) => v,
            None => {
                self.cfg.nominal_voltage_v
                    + self.cfg.voltage_wander_v
                        * wander(
                            &self.v_cache,
                            self.seed,
                            PURPOSE_VOLTAGE,
                            now,
                            self.cfg.voltage_wander_interval_s,
                        )
            }
        };
        let frequency_hz = self.cfg.nominal_frequency_hz
            + self.cfg.frequency_wander_hz
                * wander(
                    &self.f_cache,
                    self.seed,
                    PURPOSE_FREQUENCY,
                    now,
                    self.cfg.frequency_wander_interval_s,
                );
        MainsState {
            present: true,
            voltage_v: voltage_v.max(0.0),
            frequency_hz,
        }
    }

    /// The supply at `now` with the house drawing `net_import_w` through the
    /// source impedance (negative = exporting, which raises the voltage).
    /// Non-finite loads count as zero.
    pub fn state_under_load(&self, now: SimTime, net_import_w: f64) -> MainsState {
        let mut s = self.state(now);
        if s.present && s.voltage_v > 0.0 && self.cfg.source_impedance_ohm > 0.0 {
            let p = super::finite_or_zero(net_import_w);
            let drop = self.cfg.source_impedance_ohm * p / s.voltage_v;
            // Keep it physical: never below zero or above twice nominal.
            s.voltage_v = (s.voltage_v - drop).clamp(0.0, 2.0 * self.cfg.nominal_voltage_v);
        }
        s
    }

    /// The next time after `now` at which a *scheduled* outage starts or
    /// ends (random interruptions are not included), so an engine can
    /// schedule an event there.
    pub fn next_transition_after(&self, now: SimTime) -> Option<SimTime> {
        let t = now.as_micros();
        self.outages
            .iter()
            .flat_map(|o| [o.start_us, o.end_us])
            .filter(|&x| x > t)
            .min()
            .map(SimTime)
    }

    fn in_random_interruption(&self, t: u64) -> bool {
        if self.cfg.random_interruptions_per_day <= 0.0 {
            return false;
        }
        let b = t / INTERRUPTION_BUCKET_US;
        // An interruption is at most one bucket long, so only this bucket and
        // the previous one can cover `t`.
        let current = self.bucket(b, 0);
        if current.items[..current.n].iter().any(|i| i.contains(t)) {
            return true;
        }
        if b > 0 {
            let prev = self.bucket(b - 1, 1);
            return prev.items[..prev.n].iter().any(|i| i.contains(t));
        }
        false
    }

    fn bucket(&self, b: u64, slot: usize) -> BucketCache {
        // Look in both slots (a step sequence alternates current/previous).
        for c in &self.int_cache {
            if let Some(cached) = c.get() {
                if cached.bucket == b {
                    return cached;
                }
            }
        }
        let mut rng = stream_rng(self.seed, PURPOSE_INTERRUPTIONS, b);
        let mean = self.cfg.random_interruptions_per_day * INTERRUPTION_BUCKET_S / 86_400.0;
        let n = poisson(&mut rng, mean).min(MAX_PER_BUCKET);
        let mut items = [Interval {
            start_us: 0,
            end_us: 0,
        }; MAX_PER_BUCKET];
        let (lo, hi) = (
            self.cfg.random_interruption_min_s.ln(),
            self.cfg.random_interruption_max_s.ln(),
        );
        for item in items.iter_mut().take(n) {
            let offset_s: f64 = rng.gen::<f64>() * INTERRUPTION_BUCKET_S;
            let dur_s = (lo + (hi - lo) * rng.gen::<f64>()).exp();
            *item = Interval::from_secs(b as f64 * INTERRUPTION_BUCKET_S + offset_s, dur_s);
        }
        let entry = BucketCache {
            bucket: b,
            n,
            items,
        };
        self.int_cache[slot].set(Some(entry));
        entry
    }
}

/// A smooth, zero-mean, unit-variance-at-the-knots random process: standard
/// normal knots every `interval_s`, joined by smoothstep interpolation.
fn wander(
    cache: &Cell<Option<Knots>>,
    seed: u64,
    purpose: u64,
    now: SimTime,
    interval_s: f64,
) -> f64 {
    let x = now.as_secs_f64() / interval_s;
    let index = x.floor() as u64;
    let knots = match cache.get() {
        Some(k) if k.index == index => k,
        _ => {
            let a = match cache.get() {
                Some(k) if k.index + 1 == index => k.b,
                _ => knot(seed, purpose, index),
            };
            let k = Knots {
                index,
                a,
                b: knot(seed, purpose, index + 1),
            };
            cache.set(Some(k));
            k
        }
    };
    let f = x - x.floor();
    let s = f * f * (3.0 - 2.0 * f);
    knots.a + (knots.b - knots.a) * s
}

fn knot(seed: u64, purpose: u64, index: u64) -> f64 {
    let mut rng = stream_rng(seed, purpose, index);
    let z: f64 = rng.sample(StandardNormal);
    z.clamp(-4.0, 4.0)
}

/// Poisson sample by inversion (fine for the small means used here).
pub(crate) fn poisson<R: Rng>(rng: &mut R, mean: f64) -> usize {
    if mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    let l = (-mean).exp();
    let mut k = 0usize;
    let mut p = 1.0;
    loop {
        p *= rng.gen::<f64>();
        if p <= l || k >= 1000 {
            return k;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> MainsConfig {
        MainsConfig::default()
    }

    #[test]
    fn scheduled_outage_makes_mains_absent_exactly_in_the_window() {
        let cfg = MainsConfig {
            outages: vec![OutageConfig {
                start_s: 100.0,
                duration_s: 10.0,
            }],
            ..quiet()
        };
        let m = Mains::new(cfg, 1).unwrap();
        assert!(m.is_present(SimTime::from_micros(99_999_999)));
        assert!(!m.is_present(SimTime::from_secs(100)));
        assert!(!m.is_present(SimTime::from_micros(109_999_999)));
        assert!(m.is_present(SimTime::from_secs(110)));
        let s = m.state(SimTime::from_secs(105));
        assert_eq!(s, MainsState::ABSENT);
        let s = m.state(SimTime::from_secs(120));
        assert!(s.present && (s.voltage_v - 230.0).abs() < 10.0);
        assert!((s.frequency_hz - 50.0).abs() < 0.1);
        assert_eq!(
            m.next_transition_after(SimTime::ZERO),
            Some(SimTime::from_secs(100))
        );
        assert_eq!(
            m.next_transition_after(SimTime::from_secs(100)),
            Some(SimTime::from_secs(110))
        );
        assert_eq!(m.next_transition_after(SimTime::from_secs(110)), None);
    }

    #[test]
    fn outages_can_be_added_and_ended_at_run_time() {
        let mut m = Mains::new(quiet(), 1).unwrap();
        m.schedule_outage(SimTime::from_secs(10), 3600.0).unwrap();
        assert!(m.is_present(SimTime::from_secs(9)));
        assert!(!m.is_present(SimTime::from_secs(500)));
        m.restore_at(SimTime::from_secs(600));
        assert!(m.is_present(SimTime::from_secs(600)));
        assert!(!m.is_present(SimTime::from_secs(599)));
        assert!(m.schedule_outage(SimTime::ZERO, f64::NAN).is_err());
    }

    #[test]
    fn voltage_events_and_sag_under_load() {
        let mut m = Mains::new(
            MainsConfig {
                voltage_wander_v: 0.0,
                source_impedance_ohm: 0.5,
                ..quiet()
            },
            3,
        )
        .unwrap();
        m.schedule_voltage_event(SimTime::from_secs(5), 2.0, 190.0)
            .unwrap();
        assert_eq!(m.state(SimTime::from_secs(6)).voltage_v, 190.0);
        assert_eq!(m.state(SimTime::from_secs(7)).voltage_v, 230.0);
        let loaded = m.state_under_load(SimTime::from_secs(8), 4600.0);
        assert!((loaded.voltage_v - 220.0).abs() < 1e-9, "{loaded:?}");
        let exporting = m.state_under_load(SimTime::from_secs(8), -4600.0);
        assert!((exporting.voltage_v - 240.0).abs() < 1e-9);
    }

    #[test]
    fn wander_is_seeded_bounded_and_order_independent() {
        let a = Mains::new(quiet(), 7).unwrap();
        let b = Mains::new(quiet(), 7).unwrap();
        let c = Mains::new(quiet(), 8).unwrap();
        let times: Vec<SimTime> = (0..500).map(|k| SimTime::from_secs(k * 97)).collect();
        let va: Vec<f64> = times.iter().map(|&t| a.state(t).voltage_v).collect();
        let vb: Vec<f64> = times.iter().rev().map(|&t| b.state(t).voltage_v).collect();
        let vc: Vec<f64> = times.iter().map(|&t| c.state(t).voltage_v).collect();
        let vb: Vec<f64> = vb.into_iter().rev().collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        assert!(va.iter().all(|v| (v - 230.0).abs() <= 8.0 + 1e-9));
        let spread = va.iter().cloned().fold(f64::MIN, f64::max)
            - va.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > 0.5, "the voltage should actually vary: {spread}");
    }

    #[test]
    fn random_interruptions_are_seeded_and_roughly_at_rate() {
        let cfg = MainsConfig {
            random_interruptions_per_day: 4.0,
            random_interruption_min_s: 1.0,
            random_interruption_max_s: 30.0,
            ..quiet()
        };
        let m = Mains::new(cfg.clone(), 11).unwrap();
        let m2 = Mains::new(cfg, 11).unwrap();
        // Count absent->present edges over 30 days at 0.5 s.
        let mut edges = 0;
        let mut absent_s = 0.0;
        let mut was_present = true;
        let step_us = 500_000u64;
        let n = 30 * 86_400 * 2;
        for k in 0..n {
            let t = SimTime(k * step_us);
            let p = m.is_present(t);
            if k % 1000 == 0 {
                assert_eq!(p, m2.is_present(t));
            }
            if !p {
                absent_s += 0.5;
            }
            if was_present && !p {
                edges += 1;
            }
            was_present = p;
        }
        // 120 expected; Poisson sd ≈ 11, and overlaps can merge a few.
        assert!((70..=170).contains(&edges), "{edges} interruptions");
        assert!(absent_s > 100.0 && absent_s < 120.0 * 30.0, "{absent_s}");
    }

    #[test]
    fn validation_names_fields() {
        let mut cfg = quiet();
        cfg.outages.push(OutageConfig {
            start_s: 0.0,
            duration_s: -1.0,
        });
        let e = Mains::new(cfg, 0).unwrap_err();
        assert_eq!(e.field, "outages[0].duration_s");
        let e = MainsConfig {
            random_interruption_max_s: 7200.0,
            ..quiet()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "random_interruption_max_s");
    }

    #[test]
    fn parses_from_toml() {
        let cfg: MainsConfig = toml::from_str(
            "nominal_voltage_v = 240.0\noutages = [ { start_s = 10.0, duration_s = 5.0 } ]\n",
        )
        .unwrap();
        assert_eq!(cfg.nominal_voltage_v, 240.0);
        assert_eq!(cfg.outages.len(), 1);
        cfg.validate().unwrap();
        assert!(toml::from_str::<MainsConfig>("voltage = 1.0\n").is_err());
    }
}
