//! The smart meter at the house's grid connection point, as a DSMR 5 meter
//! would see it (the P1 telegram itself is formatted elsewhere; this is the
//! meter's state):
//!
//! | here | DSMR 5 / OBIS |
//! | --- | --- |
//! | `import_t1_kwh`, `import_t2_kwh` | 1-0:1.8.1, 1-0:1.8.2 (delivered to client) |
//! | `export_t1_kwh`, `export_t2_kwh` | 1-0:2.8.1, 1-0:2.8.2 (delivered by client) |
//! | `tariff` | 0-0:96.14.0 (1 = low/off-peak, 2 = normal/peak) |
//! | `import_w`, `export_w` | 1-0:1.7.0, 1-0:2.7.0 |
//! | `short_power_failures` | 0-0:96.7.21 |
//! | `long_power_failures` | 0-0:96.7.9 (and the 1-0:99.97.0 log) |
//! | `voltage_sags[L]`, `voltage_swells[L]` | 1-0:32.32.0 / 1-0:32.36.0 (and L2, L3) |
//! | `voltage_v[L]`, `current_a[L]` | 1-0:32.7.0 / 1-0:31.7.0 (and L2, L3) |
//! | `import_w_by_phase[L]`, `export_w_by_phase[L]` | 1-0:21.7.0 / 1-0:22.7.0 (and L2, L3) |
//!
//! Energy registers integrate the net of all phases (the common DSMR
//! "saldering" over phases) and never go backwards: non-finite power counts
//! as zero, and nothing flows while the mains is absent. A power failure is
//! counted when the supply returns, as a meter does on power-up: one lasting
//! at least `long_failure_threshold_s` (DSMR: 180 s) is a long failure and
//! is logged with its end time (UTC Unix seconds) and duration; a shorter one
//! is a short failure.

use serde::{Deserialize, Serialize};

use super::mains::MainsState;
use super::{check_range, finite_or_zero, ConfigError};
use crate::time::{Calendar, SimTime};

/// A set of local weekdays. In TOML a string: `"all"`, `"weekdays"`,
/// `"weekend"`, or a comma-separated list of `mon`..`sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DaySet {
    /// Bit `d` set = weekday `d` (0 = Monday) is in the set.
    pub mask: u8,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl DaySet {
    pub const ALL: DaySet = DaySet { mask: 0x7f };
    pub const WEEKDAYS: DaySet = DaySet { mask: 0x1f };
    pub const WEEKEND: DaySet = DaySet { mask: 0x60 };

    pub fn contains(self, weekday: u32) -> bool {
        weekday < 7 && self.mask & (1 << weekday) != 0
    }
}

impl TryFrom<String> for DaySet {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.trim() {
            "all" => return Ok(DaySet::ALL),
            "weekdays" => return Ok(DaySet::WEEKDAYS),
            "weekend" => return Ok(DaySet::WEEKEND),
            _ => {}
        }
        let mut mask = 0u8;
        for part in s.split(',') {
            let p = part.trim().to_ascii_lowercase();
            match DAY_NAMES.iter().position(|d| *d == p) {
                Some(i) => mask |= 1 << i,
                None => {
                    return Err(format!(
                        "`{part}` is not a day: use \"all\", \"weekdays\", \"weekend\" or a list like \"mon,tue\""
                    ))
                }
            }
        }
        Ok(DaySet { mask })
    }
}

impl From<DaySet> for String {
    fn from(d: DaySet) -> String {
        match d {
            DaySet::ALL => "all".into(),
            DaySet::WEEKDAYS => "weekdays".into(),
            DaySet::WEEKEND => "weekend".into(),
            _ => (0..7)
                .filter(|&i| d.contains(i))
                .map(|i| DAY_NAMES[i as usize])
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// One rule of a tariff schedule: on `days`, local clock time in
/// `[from_h, to_h)` is tariff `tariff`. A window with `from_h > to_h` wraps
/// past midnight (it covers `[from_h, 24) ∪ [0, to_h)` of each day in
/// `days`; the day is that of the current local time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffPeriod {
    pub days: DaySet,
    pub from_h: f64,
    pub to_h: f64,
    pub tariff: u8,
}

/// Which tariff (1 = low/off-peak, 2 = normal/peak) applies when: the first
/// matching period wins, else `default_tariff`.
///
/// ```toml
/// [meter.tariff]            # Dutch-style: low at night and all weekend
/// default_tariff = 2
/// periods = [
///   { days = "weekdays", from_h = 23.0, to_h = 7.0, tariff = 1 },
///   { days = "weekend", from_h = 0.0, to_h = 24.0, tariff = 1 },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TariffSchedule {
    pub default_tariff: u8,
    pub periods: Vec<TariffPeriod>,
}

impl Default for TariffSchedule {
    /// Low tariff 23:00–07:00 on weekdays and all weekend; normal otherwise.
    fn default() -> Self {
        TariffSchedule {
            default_tariff: 2,
            periods: vec![
                TariffPeriod {
                    days: DaySet::WEEKDAYS,
                    from_h: 23.0,
                    to_h: 7.0,
                    tariff: 1,
                },
                TariffPeriod {
                    days: DaySet::WEEKEND,
                    from_h: 0.0,
                    to_h: 24.0,
                    tariff: 1,
                },
            ],
        }
    }
}

impl TariffSchedule {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_tariff("default_tariff", self.default_tariff)?;
        for (i, p) in self.periods.iter().enumerate() {
            check_range(&format!("periods[{i}].from_h"), p.from_h, 0.0, 24.0)?;
            check_range(&format!("periods[{i}].to_h"), p.to_h, 0.0, 24.0)?;
            check_tariff(&format!("periods[{i}].tariff"), p.tariff)?;
        }
        Ok(())
    }

    /// The tariff at local hour `hour` ∈ [0, 24) on local weekday `weekday`
    /// (0 = Monday).
    pub fn tariff_at(&self, hour: f64, weekday: u32) -> u8 {
        for p in &self.periods {
            if !p.days.contains(weekday) {
                continue;
            }
            let inside = if p.from_h <= p.to_h {
                hour >= p.from_h && hour < p.to_h
            } else {
                hour >= p.from_h || hour < p.to_h
            };
            if inside {
                return p.tariff;
            }
        }
        self.default_tariff
    }

    /// The tariff at `now` on `calendar`'s local time.
    pub fn tariff_at_time(&self, calendar: &Calendar, now: SimTime) -> u8 {
        self.tariff_at(calendar.local_hour(now), calendar.local_weekday(now))
    }
}

fn check_tariff(field: &str, t: u8) -> Result<(), ConfigError> {
    if t == 1 || t == 2 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be 1 (low) or 2 (normal), got {t}"),
        ))
    }
}

/// Smart meter parameters.
///
/// ```toml
/// [meter]
/// phases = 1
/// long_failure_threshold_s = 180.0
/// failure_log_len = 10
/// sag_threshold_v = 207.0
/// swell_threshold_v = 253.0
/// sag_swell_min_duration_s = 1.0
/// initial_import_t1_kwh = 0.0   # and _t2, export _t1/_t2
/// [meter.tariff]
/// default_tariff = 2
/// periods = [ { days = "all", from_h = 0.5, to_h = 7.5, tariff = 1 } ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeterConfig {
    /// 1 (single-phase, default) or 3.
    pub phases: u8,
    pub tariff: TariffSchedule,
    /// A failure at least this long is a long power failure, s.
    pub long_failure_threshold_s: f64,
    /// How many long failures the log keeps (oldest dropped first).
    pub failure_log_len: usize,
    /// RMS voltage below which (mains present) a phase is in a sag, V.
    pub sag_threshold_v: f64,
    /// RMS voltage above which a phase is in a swell, V.
    pub swell_threshold_v: f64,
    /// A sag or swell counts once it has lasted this long, s.
    pub sag_swell_min_duration_s: f64,
    pub initial_import_t1_kwh: f64,
    pub initial_import_t2_kwh: f64,
    pub initial_export_t1_kwh: f64,
    pub initial_export_t2_kwh: f64,
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig {
            phases: 1,
            tariff: TariffSchedule::default(),
            long_failure_threshold_s: 180.0,
            failure_log_len: 10,
            sag_threshold_v: 207.0,
            swell_threshold_v: 253.0,
            sag_swell_min_duration_s: 1.0,
            initial_import_t1_kwh: 0.0,
            initial_import_t2_kwh: 0.0,
            initial_export_t1_kwh: 0.0,
            initial_export_t2_kwh: 0.0,
        }
    }
}

impl MeterConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.phases != 1 && self.phases != 3 {
            return Err(ConfigError::new(
                "phases",
                format!("must be 1 or 3, got {}", self.phases),
            ));
        }
        self.tariff.validate().map_err(|e| e.within("tariff"))?;
        check_range(
            "long_failure_threshold_s",
            self.long_failure_threshold_s,
            0.0,
            1e6,
        )?;
        if self.failure_log_len > 1000 {
            return Err(ConfigError::new("failure_log_len", "must be at most 1000"));
        }
        check_range("sag_threshold_v", self.sag_threshold_v, 0.0, 1000.0)?;
        check_range(
            "swell_threshold_v",
            self.swell_threshold_v,
            self.sag_threshold_v,
            2000.0,
        )?;
        check_range(
            "sag_swell_min_duration_s",
            self.sag_swell_min_duration_s,
            0.0,
            3600.0,
        )?;
        for (f, v) in [
            ("initial_import_t1_kwh", self.initial_import_t1_kwh),
            ("initial_import_t2_kwh", self.initial_import_t2_kwh),
            ("initial_export_t1_kwh", self.initial_export_t1_kwh),
            ("initial_export_t2_kwh", self.initial_export_t2_kwh),
        ] {
            check_range(f, v, 0.0, 1e9)?;
        }
        Ok(())
    }
}

/// One entry of the long power failure log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongFailure {
    /// When the supply returned, UTC Unix seconds.
    pub end_unix_s: f64,
    /// When the supply returned, simulated time.
    pub end: SimTime,
    pub duration_s: f64,
}

/// What the meter shows after a step. Powers are for the step just taken;
/// registers and counters are as at its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterReading {
    /// End of the step.
    pub time: SimTime,
    /// Tariff indicator in force during the step (1 = low, 2 = normal).
    pub tariff: u8,
    /// Whether the supply was present.
    pub mains_present: bool,
    /// Total import power (net over phases, ≥ 0), W.
    pub import_w: f64,
    /// Total export power (net over phases, ≥ 0), W.
    pub export_w: f64,
    pub import_w_by_phase: [f64; 3],
    pub export_w_by_phase: [f64; 3],
    /// RMS voltage per phase, V (unused phases 0).
    pub voltage_v: [f64; 3],
    /// RMS current per phase, A.
    pub current_a: [f64; 3],
    pub import_t1_kwh: f64,
    pub import_t2_kwh: f64,
    pub export_t1_kwh: f64,
    pub export_t2_kwh: f64,
    pub short_power_failures: u32,
    pub long_power_failures: u32,
    /// Seconds the current failure has lasted (0 when the supply is present).
    pub failure_in_progress_s: f64,
    pub voltage_sags: [u32; 3],
    pub voltage_swells: [u32; 3],
}

impl MeterReading {
    pub fn import_total_kwh(&self) -> f64 {
        self.import_t1_kwh + self.import_t2_kwh
    }
    pub fn export_total_kwh(&self) -> f64 {
        self.export_t1_kwh + self.export_t2_kwh
    }
    /// Net import power, W (negative = exporting).
    pub fn net_import_w(&self) -> f64 {
        self.import_w - self.export_w
    }
}

/// The smart meter model. See the module docs.
#[derive(Debug, Clone)]
pub struct SmartMeter {
    cfg: MeterConfig,
    calendar: Calendar,
    /// Registers in Wh (kWh in readings) — accumulated in Wh for resolution.
    import_wh: [f64; 2],
    export_wh: [f64; 2],
    short_failures: u32,
    long_failures: u32,
    log: Vec<LongFailure>,
    /// Start of the current failure, if the supply is absent.
    failure_start: Option<SimTime>,
    sag_s: [f64; 3],
    swell_s: [f64; 3],
    sag_counted: [bool; 3],
    swell_counted: [bool; 3],
    sags: [u32; 3],
    /// The utility's tariff indicator, when it overrides the schedule.
    tariff_override: Option<u8>,
    swells: [u32; 3],
    last: Option<MeterReading>,
}

impl SmartMeter {
    pub fn new(cfg: MeterConfig, calendar: Calendar) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(SmartMeter {
            import_wh: [
                cfg.initial_import_t1_kwh * 1e3,
                cfg.initial_import_t2_kwh * 1e3,
            ],
            export_wh: [
                cfg.initial_export_t1_kwh * 1e3,
                cfg.initial_export_t2_kwh * 1e3,
            ],
            cfg,
            calendar,
            short_failures: 0,
            long_failures: 0,
            log: Vec::new(),
            failure_start: None,
            sag_s: [0.0; 3],
            swell_s: [0.0; 3],
            sag_counted: [false; 3],
            swell_counted: [false; 3],
            sags: [0; 3],
            tariff_override: None,
            swells: [0; 3],
            last: None,
        })
    }

    pub fn config(&self) -> &MeterConfig {
        &self.cfg
    }

    /// The long power failure log, oldest first.
    pub fn long_failure_log(&self) -> &[LongFailure] {
        &self.log
    }

    /// The reading after the last step, if any.
    pub fn last_reading(&self) -> Option<&MeterReading> {
        self.last.as_ref()
    }

    /// Tariff indicator at `now`.
    pub fn tariff_at(&self, now: SimTime) -> u8 {
        self.tariff_override
            .unwrap_or_else(|| self.cfg.tariff.tariff_at_time(&self.calendar, now))
    }

    /// The utility sets the tariff indicator (1 or 2) regardless of the
    /// schedule, or (`None`) hands it back to the schedule. Other values
    /// are refused.
    pub fn set_tariff_override(&mut self, tariff: Option<u8>) -> Result<(), ConfigError> {
        if let Some(t) = tariff {
            check_tariff("tariff override", t)?;
        }
        self.tariff_override = tariff;
        Ok(())
    }

    /// One step of `dt_s` (clamped to `[0, MAX_DT_S]`) from `now` with the
    /// house's net import (W, negative = export; clamped to ±`MAX_POWER_W`) on L1 — or, on a three-phase meter, spread
    /// evenly over the three phases.
    pub fn step(
        &mut self,
        now: SimTime,
        dt_s: f64,
        net_import_w: f64,
        mains: MainsState,
    ) -> MeterReading {
        let p = finite_or_zero(net_import_w);
        let by_phase = if self.cfg.phases == 3 {
            [p / 3.0; 3]
        } else {
            [p, 0.0, 0.0]
        };
        self.step_per_phase(now, dt_s, by_phase, mains)
    }

    /// One step with the net import given per phase (W, negative = export;
    /// a single-phase meter uses L1 only). The same [`MainsState`] voltage
    /// applies to every phase.
    pub fn step_per_phase(
        &mut self,
        now: SimTime,
        dt_s: f64,
        net_import_w: [f64; 3],
        mains: MainsState,
    ) -> MeterReading {
        // Physical bounds keep the registers finite whatever comes in.
        let dt = finite_or_zero(dt_s).clamp(0.0, MAX_DT_S);
        let end = now.saturating_add(SimTime::from_secs_f64(dt).as_micros());
        let tariff = self.tariff_at(now);
        let ti = usize::from(tariff == 2);
        let n = usize::from(self.cfg.phases);

        // Power failures: counted when the supply returns.
        if mains.present {
            if let Some(start) = self.failure_start.take() {
                let duration_s = (now.as_micros().saturating_sub(start.as_micros())) as f64 * 1e-6;
                if duration_s >= self.cfg.long_failure_threshold_s {
                    self.long_failures = self.long_failures.saturating_add(1);
                    if self.cfg.failure_log_len > 0 {
                        if self.log.len() == self.cfg.failure_log_len {
                            self.log.remove(0);
                        }
                        self.log.push(LongFailure {
                            end_unix_s: self.calendar.unix_s(now),
                            end: now,
                            duration_s,
                        });
                    }
                } else {
                    self.short_failures = self.short_failures.saturating_add(1);
                }
            }
        } else if self.failure_start.is_none() {
            self.failure_start = Some(now);
        }

        let mut imp = [0.0; 3];
        let mut exp = [0.0; 3];
        let mut volts = [0.0; 3];
        let mut amps = [0.0; 3];
        let mut net_total = 0.0;
        if mains.present {
            let v = finite_or_zero(mains.voltage_v).max(0.0);
            for ph in 0..n {
                let p = finite_or_zero(net_import_w[ph]).clamp(-MAX_POWER_W, MAX_POWER_W);
                imp[ph] = p.max(0.0);
                exp[ph] = (-p).max(0.0);
                volts[ph] = v;
                amps[ph] = if v > 1.0 { p.abs() / v } else { 0.0 };
                net_total += p;
            }
            // Sags and swells, per phase.
            for ph in 0..n {
                track(
                    v < self.cfg.sag_threshold_v,
                    dt,
                    self.cfg.sag_swell_min_duration_s,
                    &mut self.sag_s[ph],
                    &mut self.sag_counted[ph],
                    &mut self.sags[ph],
                );
                track(
                    v > self.cfg.swell_threshold_v,
                    dt,
                    self.cfg.sag_swell_min_duration_s,
                    &mut self.swell_s[ph],
                    &mut self.swell_counted[ph],
                    &mut self.swells[ph],
                );
            }
        } else {
            // No supply: no voltage, and a dip into a failure is not a sag.
            self.sag_s = [0.0; 3];
            self.swell_s = [0.0; 3];
            self.sag_counted = [false; 3];
            self.swell_counted = [false; 3];
        }
        let import_w = net_total.max(0.0);
        let export_w = (-net_total).max(0.0);
        self.import_wh[ti] += import_w * dt / 3600.0;
        self.export_wh[ti] += export_w * dt / 3600.0;

        let reading = MeterReading {
            time: end,
            tariff,
            mains_present: mains.present,
            import_w,
            export_w,
            import_w_by_phase: imp,
            export_w_by_phase: exp,
            voltage_v: volts,
            current_a: amps,
            import_t1_kwh: self.import_wh[0] * 1e-3,
            import_t2_kwh: self.import_wh[1] * 1e-3,
            export_t1_kwh: self.export_wh[0] * 1e-3,
            export_t2_kwh: self.export_wh[1] * 1e-3,
            short_power_failures: self.short_failures,
            long_power_failures: self.long_failures,
            failure_in_progress_s: match self.failure_start {
                Some(s) => end.as_micros().saturating_sub(s.as_micros()) as f64 * 1e-6,
                None => 0.0,
            },
            voltage_sags: self.sags,
            voltage_swells: self.swells,
        };
        self.last = Some(reading);
        reading
    }
}

/// Largest power per phase the meter registers, W (larger values are
/// clamped: they can only come from a bug upstream).
pub const MAX_POWER_W: f64 = 1e9;
/// Longest step the meter accepts, s (longer steps are clamped).
pub const MAX_DT_S: f64 = 1e7;

/// Tracks one excursion (sag or swell) on one phase; counts it once it has
/// lasted `min_s` (including this step).
fn track(inside: bool, dt: f64, min_s: f64, time_s: &mut f64, counted: &mut bool, count: &mut u32) {
    if inside {
        *time_s += dt;
        if !*counted && *time_s >= min_s {
            *counted = true;
            *count = count.saturating_add(1);
        }
    } else {
        *time_s = 0.0;
        *counted = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    /// Local Monday 2026-03-02 00:00 at UTC+1.
    fn calendar() -> Calendar {
        Calendar::new(days_from_civil(2026, 3, 2) * 86_400 - 3600, 1.0)
    }

    fn volts(v: f64) -> MainsState {
        MainsState {
            present: true,
            voltage_v: v,
            frequency_hz: 50.0,
        }
    }

    #[test]
    fn tariff_schedule_by_local_time_and_weekday() {
        let s = TariffSchedule::default();
        assert_eq!(s.tariff_at(6.9, 0), 1);
        assert_eq!(s.tariff_at(7.0, 0), 2);
        assert_eq!(s.tariff_at(22.99, 4), 2);
        assert_eq!(s.tariff_at(23.0, 4), 1);
        assert_eq!(s.tariff_at(12.0, 5), 1);
        assert_eq!(s.tariff_at(12.0, 6), 1);
        let cal = calendar();
        assert_eq!(s.tariff_at_time(&cal, SimTime::from_secs(12 * 3600)), 2);
        assert_eq!(
            s.tariff_at_time(&cal, SimTime::from_secs(5 * 86_400 + 12 * 3600)),
            1
        );
    }

    #[test]
    fn registers_split_by_tariff_and_only_grow() {
        let mut m = SmartMeter::new(MeterConfig::default(), calendar()).unwrap();
        // Monday: 1 kW import all day at 60 s steps, then 500 W export 12:00–13:00.
        let mut last = (0.0, 0.0, 0.0, 0.0);
        for k in 0..1440u64 {
            let t = SimTime::from_secs(k * 60);
            let hour = k as f64 / 60.0;
            let p = if (12.0..13.0).contains(&hour) {
                -500.0
            } else {
                1000.0
            };
            let r = m.step(t, 60.0, p, MainsState::NOMINAL);
            let now = (
                r.import_t1_kwh,
                r.import_t2_kwh,
                r.export_t1_kwh,
                r.export_t2_kwh,
            );
            assert!(now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2 && now.3 >= last.3);
            last = now;
        }
        let r = *m.last_reading().unwrap();
        // Low: 00–07 and 23–24 = 8 h; normal: 07–23 minus the export hour = 15 h.
        assert!((r.import_t1_kwh - 8.0).abs() < 1e-9, "{r:?}");
        assert!((r.import_t2_kwh - 15.0).abs() < 1e-9, "{r:?}");
        assert!((r.export_t2_kwh - 0.5).abs() < 1e-9 && r.export_t1_kwh == 0.0);
        assert_eq!(r.tariff, 1);
    }

    #[test]
    fn long_and_short_failures_are_counted_and_logged() {
        let mut m = SmartMeter::new(MeterConfig::default(), calendar()).unwrap();
        let dt = 1.0;
        // Short failure 100..160 s (60 s), long failure 1000..1200 s (200 s),
        // another of exactly 180 s at 2000..2180 (long, at the threshold).
        let absent = |t: u64| {
            (100..160).contains(&t) || (1000..1200).contains(&t) || (2000..2180).contains(&t)
        };
        let mut before = (0.0, 0.0);
        for t in 0..3000u64 {
            let mains = if absent(t) {
                MainsState::ABSENT
            } else {
                MainsState::NOMINAL
            };
            let r = m.step(SimTime::from_secs(t), dt, 2000.0, mains);
            if absent(t) {
                assert_eq!(
                    (r.import_t1_kwh, r.import_t2_kwh),
                    before,
                    "nothing flows in a cut"
                );
                assert_eq!(r.import_w, 0.0);
                assert!(r.failure_in_progress_s > 0.0);
            }
            before = (r.import_t1_kwh, r.import_t2_kwh);
        }
        let r = m.last_reading().unwrap();
        assert_eq!(r.short_power_failures, 1);
        assert_eq!(r.long_power_failures, 2);
        let log = m.long_failure_log();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].end, SimTime::from_secs(1200));
        assert!((log[0].duration_s - 200.0).abs() < 1e-9);
        assert!((log[0].end_unix_s - (calendar().epoch_unix_s as f64 + 1200.0)).abs() < 1e-6);
        assert!((log[1].duration_s - 180.0).abs() < 1e-9);
    }

    #[test]
    fn failure_log_keeps_the_latest() {
        let cfg = MeterConfig {
            failure_log_len: 2,
            long_failure_threshold_s: 10.0,
            ..MeterConfig::default()
        };
        let mut m = SmartMeter::new(cfg, calendar()).unwrap();
        for k in 0..4u64 {
            let base = k * 100;
            m.step(SimTime::from_secs(base), 20.0, 0.0, MainsState::ABSENT);
            m.step(
                SimTime::from_secs(base + 20 + k),
                1.0,
                0.0,
                MainsState::NOMINAL,
            );
        }
        let log = m.long_failure_log();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].end, SimTime::from_secs(222));
        assert_eq!(log[1].end, SimTime::from_secs(323));
        assert_eq!(m.last_reading().unwrap().long_power_failures, 4);
    }

    #[test]
    fn sags_and_swells_count_once_per_excursion() {
        let mut m = SmartMeter::new(MeterConfig::default(), calendar()).unwrap();
        let seq = [
            230.0, 200.0, 200.0, 200.0, 230.0, 205.0, 230.0, 260.0, 260.0, 230.0,
        ];
        // 0.5 s steps; the sag threshold is 1 s: 200 V for 1.5 s counts,
        // 205 V for 0.5 s does not, 260 V for 1.0 s counts as a swell.
        let mut r = None;
        for (k, v) in seq.iter().enumerate() {
            r = Some(m.step(SimTime::from_millis(k as u64 * 500), 0.5, 100.0, volts(*v)));
        }
        let r = r.unwrap();
        assert_eq!(r.voltage_sags, [1, 0, 0]);
        assert_eq!(r.voltage_swells, [1, 0, 0]);
        assert_eq!(r.voltage_v, [230.0, 0.0, 0.0]);
        assert!((r.current_a[0] - 100.0 / 230.0).abs() < 1e-12);
    }

    #[test]
    fn three_phase_meter_nets_over_phases() {
        let cfg = MeterConfig {
            phases: 3,
            ..MeterConfig::default()
        };
        let mut m = SmartMeter::new(cfg, calendar()).unwrap();
        let r = m.step_per_phase(
            SimTime::from_secs(12 * 3600),
            3600.0,
            [1000.0, -400.0, 200.0],
            MainsState::NOMINAL,
        );
        assert_eq!(r.import_w_by_phase, [1000.0, 0.0, 200.0]);
        assert_eq!(r.export_w_by_phase, [0.0, 400.0, 0.0]);
        assert!((r.import_t2_kwh - 0.8).abs() < 1e-12);
        assert_eq!(r.export_total_kwh(), 0.0);
        assert_eq!(r.voltage_v, [230.0; 3]);
    }

    #[test]
    fn config_from_toml_and_validation() {
        let c: MeterConfig = toml::from_str(
            "phases = 1\n[tariff]\ndefault_tariff = 2\nperiods = [ { days = \"mon,tue\", from_h = 0.5, to_h = 7.5, tariff = 1 } ]\n",
        )
        .unwrap();
        assert_eq!(c.tariff.periods[0].days.mask, 0b11);
        c.validate().unwrap();
        assert!(toml::from_str::<MeterConfig>(
            "[tariff]\nperiods = [ { days = \"funday\", from_h = 0.0, to_h = 1.0, tariff = 1 } ]\n"
        )
        .is_err());
        let e = MeterConfig {
            tariff: TariffSchedule {
                default_tariff: 3,
                periods: vec![],
            },
            ..MeterConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.field, "tariff.default_tariff");
        // Round trip of DaySet through its string form.
        for d in [DaySet::ALL, DaySet::WEEKEND, DaySet { mask: 0b101 }] {
            assert_eq!(DaySet::try_from(String::from(d)).unwrap(), d);
        }
    }
}
