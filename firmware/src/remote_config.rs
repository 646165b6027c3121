//! Remote settings [claims 1, 20]: what the server's signed configuration
//! messages mean for the assembly. The server may change a few of its
//! cluster settings — participation, the reserve state of charge, the
//! export limit, the sink/source envelope, the start delay — within hard
//! local bounds the installer set.
//!
//! [`RemoteSettings`] holds the values the server has set and what applying
//! an accepted message does to them (a value, "unchanged", or back to the
//! local configuration); [`RemoteConfigBounds`] is the installer's table
//! `[cluster.remote_config]`: which reserve and export limit a message may
//! set. The message's format is [`crate::wire::config_message`]; the
//! checks (signature, sequence space shared with dispatch, time, bounds)
//! and the envelope bounds are `crate::cluster`'s
//! (`Cluster::handle_config`), which holds a [`RemoteSettings`].
//!
//! Uses the wire format and [`ConfigError`]; must not use the cluster or
//! the controller.

use serde::Deserialize;

use crate::wire::config_message::{Setting, Settings};
use crate::ConfigError;

/// Hard local bounds on what a signed configuration message
/// (`firmware/docs/config-message.md`) may set (TOML table
/// `[cluster.remote_config]`). A message outside them is rejected
/// (`OutOfEnvelope`). The sink/source powers and the start delay are bounded
/// by `[cluster.envelope]`: a message may lower them, never raise them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfigBounds {
    /// Lowest reserve SOC the server may set (fraction, 0..=1).
    pub reserve_soc_min: f32,
    /// Highest reserve SOC the server may set (fraction, 0..=1, and below
    /// `[scheduling] max_target_soc`).
    pub reserve_soc_max: f32,
    /// Highest export limit the server may set, W. `None` (the default):
    /// the local `[export] export_limit_w`, so the server may only lower it.
    pub export_limit_w_max: Option<f32>,
}

impl Default for RemoteConfigBounds {
    fn default() -> Self {
        RemoteConfigBounds {
            reserve_soc_min: 0.1,
            reserve_soc_max: 0.8,
            export_limit_w_max: None,
        }
    }
}

impl RemoteConfigBounds {
    /// Checks the bounds themselves: reserves within 0..=1, the lowest not
    /// above the highest, a finite export limit >= 0 W.
    // ConfigError is the crate's shared fixed-capacity (no heap) error.
    #[allow(clippy::result_large_err)]
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("reserve_soc_min", self.reserve_soc_min),
            ("reserve_soc_max", self.reserve_soc_max),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::new(
                    name,
                    format_args!("must be within 0..=1, found {v}"),
                ));
            }
        }
        if self.reserve_soc_min > self.reserve_soc_max {
            return Err(ConfigError::new(
                "reserve_soc_min",
                format_args!(
                    "must not exceed reserve_soc_max ({}), found {}",
                    self.reserve_soc_max, self.reserve_soc_min
                ),
            ));
        }
        if let Some(v) = self.export_limit_w_max {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::new(
                    "export_limit_w_max",
                    format_args!("must be a finite power >= 0 W, found {v}"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the reserve and export limit `settings` set (if they set
    /// them) lie within these bounds: reserve within
    /// `reserve_soc_min..=reserve_soc_max`, export limit at most
    /// `export_limit_w_max` (0 W if that is unresolved).
    pub fn admits(&self, settings: &Settings) -> bool {
        let reserve_ok = settings.reserve_soc_permille.set_value().is_none_or(|p| {
            let soc = f32::from(p) / 1000.0;
            soc >= self.reserve_soc_min && soc <= self.reserve_soc_max
        });
        let export_max = self.export_limit_w_max.unwrap_or(0.0);
        let export_ok = settings
            .export_limit_w
            .set_value()
            .is_none_or(|w| w as f32 <= export_max);
        reserve_ok && export_ok
    }
}

/// The settings the server has set, as held by the assembly (`None`: the
/// local configuration applies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RemoteSettings {
    /// Whether the server has the assembly take part (default `true`).
    pub participating: bool,
    /// Reserve state of charge, fraction 0..=1.
    pub reserve_soc: Option<f32>,
    /// Export limit, W.
    pub export_limit_w: Option<f32>,
    /// Largest sink power a dispatch may ask for, W (never above the local
    /// envelope).
    pub max_sink_w: Option<f32>,
    /// Largest source power a dispatch may ask for, W (never above the
    /// local envelope).
    pub max_source_w: Option<f32>,
    /// Largest randomised start delay, s.
    pub start_delay_max_s: Option<u32>,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            participating: true,
            reserve_soc: None,
            export_limit_w: None,
            max_sink_w: None,
            max_source_w: None,
            start_delay_max_s: None,
        }
    }
}

impl RemoteSettings {
    /// Applies an accepted message's settings.
    pub fn apply(&mut self, s: &Settings) {
        let watts = |w: u32| w as f32;
        self.participating =
            applied(s.participating, Some(self.participating), |p| p).unwrap_or(true);
        self.reserve_soc = applied(s.reserve_soc_permille, self.reserve_soc, |p| {
            f32::from(p) / 1000.0
        });
        self.export_limit_w = applied(s.export_limit_w, self.export_limit_w, watts);
        self.max_sink_w = applied(s.max_sink_w, self.max_sink_w, watts);
        self.max_source_w = applied(s.max_source_w, self.max_source_w, watts);
        self.start_delay_max_s = applied(s.start_delay_max_s, self.start_delay_max_s, |d| d);
    }
}

/// The value to hold after applying `setting` to `current` (`None` = the
/// local configuration), converting a set value with `to_held`.
fn applied<T, U>(setting: Setting<T>, current: Option<U>, to_held: impl Fn(T) -> U) -> Option<U> {
    match setting {
        Setting::Unchanged => current,
        Setting::Local => None,
        Setting::Set(v) => Some(to_held(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applying_sets_keeps_or_goes_back_to_local() {
        let mut r = RemoteSettings::default();
        r.apply(&Settings {
            participating: Setting::Set(false),
            reserve_soc_permille: Setting::Set(300),
            export_limit_w: Setting::Set(1500),
            max_sink_w: Setting::Set(2500),
            max_source_w: Setting::Unchanged,
            start_delay_max_s: Setting::Set(600),
        });
        assert_eq!(
            r,
            RemoteSettings {
                participating: false,
                reserve_soc: Some(0.3),
                export_limit_w: Some(1500.0),
                max_sink_w: Some(2500.0),
                max_source_w: None,
                start_delay_max_s: Some(600),
            }
        );
        // Unchanged keeps the last remote value.
        let before = r;
        r.apply(&Settings::default());
        assert_eq!(r, before);
        // Local goes back to the local configuration (participating).
        r.apply(&Settings {
            participating: Setting::Local,
            reserve_soc_permille: Setting::Local,
            export_limit_w: Setting::Local,
            max_sink_w: Setting::Local,
            max_source_w: Setting::Local,
            start_delay_max_s: Setting::Local,
        });
        assert_eq!(r, RemoteSettings::default());
    }

    #[test]
    fn bounds_admit_reserve_and_export_within_them() {
        let b = RemoteConfigBounds {
            export_limit_w_max: Some(2000.0),
            ..Default::default()
        };
        let with = |reserve: Setting<u16>, export: Setting<u32>| Settings {
            reserve_soc_permille: reserve,
            export_limit_w: export,
            ..Default::default()
        };
        assert!(b.admits(&Settings::default()));
        assert!(b.admits(&with(Setting::Set(100), Setting::Set(2000))));
        assert!(b.admits(&with(Setting::Set(800), Setting::Local)));
        assert!(!b.admits(&with(Setting::Set(50), Setting::Unchanged)));
        assert!(!b.admits(&with(Setting::Set(900), Setting::Unchanged)));
        assert!(!b.admits(&with(Setting::Unchanged, Setting::Set(2001))));
        // Unresolved export bound: only 0 W may be set.
        let unresolved = RemoteConfigBounds::default();
        assert!(unresolved.admits(&with(Setting::Unchanged, Setting::Set(0))));
        assert!(!unresolved.admits(&with(Setting::Unchanged, Setting::Set(1))));
    }

    #[test]
    fn bounds_are_validated() {
        RemoteConfigBounds::default().validate().unwrap();
        let field = |b: RemoteConfigBounds| b.validate().unwrap_err().field;
        let d = RemoteConfigBounds::default;
        assert_eq!(
            field(RemoteConfigBounds {
                reserve_soc_min: 0.9,
                ..d()
            }),
            "reserve_soc_min"
        );
        assert_eq!(
            field(RemoteConfigBounds {
                reserve_soc_max: 1.5,
                ..d()
            }),
            "reserve_soc_max"
        );
        assert_eq!(
            field(RemoteConfigBounds {
                export_limit_w_max: Some(-1.0),
                ..d()
            }),
            "export_limit_w_max"
        );
    }
}
