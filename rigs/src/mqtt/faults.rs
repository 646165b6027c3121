//! Seeded, deterministic fault injection at the transport edge: each
//! outgoing message is dropped with probability `drop`, else delayed by a
//! draw from `delay` and sent once more with probability `duplicate`.
//!
//! The n-th message a client publishes always meets the same fate for a
//! given seed (one draw sequence per client, in publish order), so a faulty
//! run is reproduced by its seed. Configured from the CLI as
//! `drop=0.01,duplicate=0.001,delay=exp:50ms,seed=7` or from a fleet file's
//! `[faults]` table with the same keys.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// How long a message is held before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DelayDistribution {
    /// Sent at once.
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform { min: Duration, max: Duration },
    /// Exponential with this mean.
    Exponential { mean: Duration },
}

/// The faults one client injects on what it publishes.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, try_from = "FaultsToml")]
pub struct Faults {
    /// Probability in [0, 1] that a message is never sent.
    pub drop: f64,
    /// Probability in [0, 1] that a (not dropped) message is sent twice.
    pub duplicate: f64,
    pub delay: DelayDistribution,
    /// Seed of the fault draws; a client mixes in its client id so two
    /// clients with the same faults do not drop the same messages.
    pub seed: u64,
}

/// The TOML/CLI form: `delay` is a string like `"exp:50ms"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsToml {
    #[serde(default)]
    drop: f64,
    #[serde(default)]
    duplicate: f64,
    #[serde(default)]
    delay: Option<String>,
    #[serde(default)]
    seed: u64,
}

impl TryFrom<FaultsToml> for Faults {
    type Error = FaultsError;
    fn try_from(t: FaultsToml) -> Result<Self, FaultsError> {
        let f = Faults {
            drop: t.drop,
            duplicate: t.duplicate,
            delay: match t.delay {
                Some(d) => parse_delay(&d)?,
                None => DelayDistribution::None,
            },
            seed: t.seed,
        };
        f.validate()?;
        Ok(f)
    }
}

/// Why a fault specification is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("faults: {0} (expected e.g. drop=0.01,duplicate=0.001,delay=exp:50ms,seed=7; delay is fixed:D, uniform:D..D or exp:D with D like 20ms or 1s)")]
pub struct FaultsError(pub String);

fn parse_duration(s: &str) -> Result<Duration, FaultsError> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(FaultsError(format!(
            "duration {s:?} has no unit (ms, us or s)"
        )));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| FaultsError(format!("duration {s:?} is not a number with a unit")))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(FaultsError(format!(
            "duration {s:?} must be finite and >= 0"
        )));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

fn parse_delay(s: &str) -> Result<DelayDistribution, FaultsError> {
    let s = s.trim();
    if s == "none" || s.is_empty() {
        return Ok(DelayDistribution::None);
    }
    let Some((kind, arg)) = s.split_once(':') else {
        return Err(FaultsError(format!("delay {s:?} has no kind")));
    };
    match kind {
        "fixed" => Ok(DelayDistribution::Fixed(parse_duration(arg)?)),
        "exp" => Ok(DelayDistribution::Exponential {
            mean: parse_duration(arg)?,
        }),
        "uniform" => {
            let Some((a, b)) = arg.split_once("..") else {
                return Err(FaultsError(format!(
                    "uniform delay {arg:?} is not MIN..MAX"
                )));
            };
            let (min, max) = (parse_duration(a)?, parse_duration(b)?);
            if min > max {
                return Err(FaultsError(format!("uniform delay {arg:?}: MIN > MAX")));
            }
            Ok(DelayDistribution::Uniform { min, max })
        }
        other => Err(FaultsError(format!("unknown delay kind {other:?}"))),
    }
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Faults::default()
    }

    pub fn is_none(&self) -> bool {
        self.drop == 0.0 && self.duplicate == 0.0 && self.delay == DelayDistribution::None
    }

    fn validate(&self) -> Result<(), FaultsError> {
        for (name, p) in [("drop", self.drop), ("duplicate", self.duplicate)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultsError(format!(
                    "{name}={p} is not a probability in [0, 1]"
                )));
            }
        }
        Ok(())
    }

    /// Parses `drop=P,duplicate=P,delay=KIND:ARG,seed=N` (any subset, any order).
    pub fn parse(spec: &str) -> Result<Self, FaultsError> {
        let mut f = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                return Err(FaultsError(format!("{part:?} is not KEY=VALUE")));
            };
            let prob = |v: &str| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| FaultsError(format!("{k}={v:?} is not a number")))
            };
            match k.trim() {
                "drop" => f.drop = prob(v)?,
                "duplicate" | "dup" => f.duplicate = prob(v)?,
                "delay" => f.delay = parse_delay(v)?,
                "seed" => {
                    f.seed = v.trim().parse().map_err(|_| {
                        FaultsError(format!("seed={v:?} is not an unsigned integer"))
                    })?
                }
                other => return Err(FaultsError(format!("unknown key {other:?}"))),
            }
        }
        f.validate()?;
        Ok(f)
    }

    /// The injector for one client: the seed mixed with the client id.
    pub fn injector(&self, client_id: &str) -> FaultInjector {
        // FNV-1a over the client id: stable across Rust versions.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in client_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        FaultInjector {
            faults: self.clone(),
            rng: ChaCha8Rng::seed_from_u64(self.seed ^ h),
        }
    }
}

impl std::str::FromStr for Faults {
    type Err = FaultsError;
    fn from_str(s: &str) -> Result<Self, FaultsError> {
        Faults::parse(s)
    }
}

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Drop,
    /// Sent `copies` (1 or 2) times after `delay`.
    Send {
        delay: Duration,
        copies: u8,
    },
}

/// Draws the fate of each message in turn, from a seeded RNG.
#[derive(Debug, Clone)]
pub struct FaultInjector {
    faults: Faults,
    rng: ChaCha8Rng,
}

impl FaultInjector {
    /// The fate of the next message. Always draws the same number of values,
    /// so one message's fate does not shift the next one's.
    pub fn next_fate(&mut self) -> Fate {
        let d: f64 = self.rng.gen();
        let dup: f64 = self.rng.gen();
        let u: f64 = self.rng.gen();
        if d < self.faults.drop {
            return Fate::Drop;
        }
        let delay = match self.faults.delay {
            DelayDistribution::None => Duration::ZERO,
            DelayDistribution::Fixed(d) => d,
            DelayDistribution::Uniform { min, max } => min + (max - min).mul_f64(u),
            // Inverse CDF of the exponential on the uniform draw `u` in [0, 1).
            DelayDistribution::Exponential { mean } => mean.mul_f64(-(1.0 - u).ln()),
        };
        let copies = if dup < self.faults.duplicate { 2 } else { 1 };
        Fate::Send { delay, copies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_rejects_bad_ones() {
        let f = Faults::parse("drop=0.1, dup=0.2,delay=uniform:1ms..3ms,seed=9").unwrap();
        assert_eq!(f.drop, 0.1);
        assert_eq!(f.duplicate, 0.2);
        assert_eq!(f.seed, 9);
        assert_eq!(
            f.delay,
            DelayDistribution::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(3)
            }
        );
        assert_eq!(
            Faults::parse("delay=exp:50ms").unwrap().delay,
            DelayDistribution::Exponential {
                mean: Duration::from_millis(50)
            }
        );
        for (bad, says) in [
            ("drop=2", "probability"),
            ("loss=0.1", "unknown key"),
            ("delay=exp:5", "no unit"),
            ("delay=gauss:5ms", "unknown delay kind"),
            ("drop", "KEY=VALUE"),
        ] {
            let e = Faults::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn toml_table_reads_like_the_cli() {
        let f: Faults = toml::from_str("drop = 0.05\ndelay = \"fixed:10ms\"\nseed = 3").unwrap();
        assert_eq!(
            f,
            Faults::parse("drop=0.05,delay=fixed:10ms,seed=3").unwrap()
        );
        assert!(toml::from_str::<Faults>("drop = -1.0").is_err());
    }

    #[test]
    fn same_seed_same_fates_and_rates_match() {
        let f = Faults::parse("drop=0.2,duplicate=0.1,delay=exp:10ms,seed=1").unwrap();
        let a: Vec<Fate> = {
            let mut i = f.injector("c");
            (0..1000).map(|_| i.next_fate()).collect()
        };
        let b: Vec<Fate> = {
            let mut i = f.injector("c");
            (0..1000).map(|_| i.next_fate()).collect()
        };
        assert_eq!(a, b);
        let other: Vec<Fate> = {
            let mut i = f.injector("d");
            (0..1000).map(|_| i.next_fate()).collect()
        };
        assert_ne!(a, other);
        let drops = a.iter().filter(|f| **f == Fate::Drop).count();
        let dups = a
            .iter()
            .filter(|f| matches!(f, Fate::Send { copies: 2, .. }))
            .count();
        assert!((150..250).contains(&drops), "{drops}");
        assert!((50..120).contains(&dups), "{dups}");
    }
}
