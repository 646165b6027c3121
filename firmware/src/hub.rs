//! Local hub [claim 7]: the assembly as the hub for local DC power-demand
//! monitoring — per-circuit and per-socket power and energy counters,
//! pack-level, PV and grid counters, and a telemetry snapshot for the uplink.
//!
//! Sans-IO: [`Hub::record`] takes a [`HubSample`] whose readings each carry
//! their own timestamp; energy is integrated **by trapezoid** between
//! consecutive accepted readings of the same channel, with `dt` taken from
//! the readings' timestamps (not from `now`). Positive and negative areas
//! are accumulated separately (import/export style; a sign change inside
//! one interval is split at the linear zero crossing), so every energy
//! counter is non-decreasing for the life of the hub.
//!
//! Rejected readings (each counted in [`RejectCounters`], never integrated):
//! NaN/infinite values, timestamps not strictly later than the channel's
//! previous accepted reading, timestamps later than `now`, channel indices
//! ≥ [`MAX_CHANNELS`], and meter registers that go backwards. A gap longer
//! than [`HubConfig::max_gap_ms`] is not integrated (the reading restarts
//! the channel's integration and is counted in `gaps`).
//!
//! Sign conventions: pack power positive = discharge; grid power positive =
//! import; PV power positive = generation; circuit and socket power
//! positive = delivered to the load.

use crate::config::{check_range, ConfigError};
use crate::time::Millis;

/// Capacity of the per-circuit and per-socket tables (and of the snapshot's
/// lists). Readings for an index ≥ this are rejected and counted.
pub const MAX_CHANNELS: usize = 16;

/// Hub configuration (TOML table `[hub]`):
/// ```toml
/// max_gap_ms = 60000          # readings further apart are not integrated
/// runtime_threshold_w = 0.5   # |power| above this counts as running time
/// ```
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Longest interval between two readings of one channel that is still
    /// integrated, ms. Longer gaps are skipped (counted) rather than bridged.
    #[serde(default = "default_max_gap_ms")]
    pub max_gap_ms: u64,
    /// A channel whose |power| exceeds this, W, is counted as running.
    #[serde(default = "default_runtime_threshold_w")]
    pub runtime_threshold_w: f32,
}

fn default_max_gap_ms() -> u64 {
    60_000
}
fn default_runtime_threshold_w() -> f32 {
    0.5
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_gap_ms: default_max_gap_ms(),
            runtime_threshold_w: default_runtime_threshold_w(),
        }
    }
}

impl HubConfig {
    /// Checks ranges: `max_gap_ms` in 1..=86_400_000, `runtime_threshold_w`
    /// finite and ≥ 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("max_gap_ms", self.max_gap_ms, 1..=86_400_000)?;
        check_range("runtime_threshold_w", self.runtime_threshold_w, 0.0..)
    }
}

/// One timestamped power reading, W (sign convention per channel, see the
/// module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// When the value was measured.
    pub at: Millis,
    /// Power, W.
    pub power_w: f32,
}

/// A timestamped reading for one circuit or socket (index < [`MAX_CHANNELS`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelReading {
    /// Circuit or socket index.
    pub index: u8,
    /// When the value was measured.
    pub at: Millis,
    /// Power delivered to the load, W.
    pub power_w: f32,
}

/// The smart meter's cumulative energy registers (e.g. DSMR 1.8.x / 2.8.x
/// summed over tariffs), Wh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterRegisters {
    /// When the registers were read.
    pub at: Millis,
    /// Cumulative grid import, Wh.
    pub import_wh: f64,
    /// Cumulative grid export, Wh.
    pub export_wh: f64,
}

/// Everything measured since the last call; every field is optional so the
/// controller can forward each source as it arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubSample {
    /// Pack power, W, positive = discharge.
    pub pack: Option<Reading>,
    /// PV power, W, positive = generation.
    pub pv: Option<Reading>,
    /// Grid power at the meter, W, positive = import.
    pub grid: Option<Reading>,
    /// Meter energy registers, if the meter sent them.
    pub meter: Option<MeterRegisters>,
    /// Per-circuit readings.
    pub circuits: heapless::Vec<ChannelReading, MAX_CHANNELS>,
    /// Per-socket readings.
    pub sockets: heapless::Vec<ChannelReading, MAX_CHANNELS>,
}

/// Counts of readings the hub refused (saturating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct RejectCounters {
    /// NaN or infinite values.
    pub invalid_value: u32,
    /// Timestamp not later than the channel's previous accepted reading.
    pub non_monotonic: u32,
    /// Timestamp later than `now`.
    pub future: u32,
    /// Circuit/socket index ≥ [`MAX_CHANNELS`].
    pub index_out_of_range: u32,
    /// Meter register lower than its previous value.
    pub register_backwards: u32,
    /// Intervals longer than `max_gap_ms`, not integrated (the reading
    /// itself is kept as the new starting point).
    pub gaps: u32,
}

/// Why a reading was rejected (returned by the per-channel integrator; the
/// hub counts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    InvalidValue,
    NonMonotonic,
    Future,
    IndexOutOfRange,
    RegisterBackwards,
}

/// Energy integrator and period statistics for one power channel.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Channel {
    last: Option<Reading>,
    /// Energy of positive power (delivered / discharge / import / generation), Wh.
    pub positive_wh: f64,
    /// Energy of negative power (returned / charge / export), Wh, ≥ 0.
    pub negative_wh: f64,
    /// Accumulated time with |power| above the runtime threshold, ms.
    pub runtime_ms: u64,
    period_min_w: Option<f32>,
    period_max_w: Option<f32>,
}

impl Channel {
    /// Latest accepted power, W (None before the first reading).
    pub fn power_w(&self) -> Option<f32> {
        self.last.map(|r| r.power_w)
    }
    /// Minimum accepted power in the current reporting period, W.
    pub fn period_min_w(&self) -> Option<f32> {
        self.period_min_w
    }
    /// Maximum accepted power in the current reporting period, W.
    pub fn period_max_w(&self) -> Option<f32> {
        self.period_max_w
    }

    /// Integrates one reading. Returns `Ok(true)` if the interval was a gap
    /// (accepted, not integrated).
    fn record(&mut self, now: Millis, r: Reading, cfg: &HubConfig) -> Result<bool, RejectReason> {
        if !r.power_w.is_finite() {
            return Err(RejectReason::InvalidValue);
        }
        if r.at > now {
            return Err(RejectReason::Future);
        }
        let mut gap = false;
        if let Some(prev) = self.last {
            if r.at <= prev.at {
                return Err(RejectReason::NonMonotonic);
            }
            let dt_ms = r.at.since(prev.at);
            if dt_ms > cfg.max_gap_ms {
                gap = true;
            } else {
                let (pos, neg) = trapezoid_split_wh(prev.power_w, r.power_w, dt_ms);
                self.positive_wh += pos;
                self.negative_wh += neg;
                if libm::fabsf(prev.power_w) > cfg.runtime_threshold_w {
                    self.runtime_ms = self.runtime_ms.saturating_add(dt_ms);
                }
            }
        }
        self.last = Some(r);
        self.period_min_w = Some(match self.period_min_w {
            Some(m) if m <= r.power_w => m,
            _ => r.power_w,
        });
        self.period_max_w = Some(match self.period_max_w {
            Some(m) if m >= r.power_w => m,
            _ => r.power_w,
        });
        Ok(gap)
    }

    fn reset_period(&mut self) {
        self.period_min_w = None;
        self.period_max_w = None;
    }
}

/// Trapezoid area between (0, p0) and (dt, p1), split into its positive and
/// negative parts (both returned ≥ 0), Wh. Exact for a linear ramp.
fn trapezoid_split_wh(p0: f32, p1: f32, dt_ms: u64) -> (f64, f64) {
    let p0 = p0 as f64;
    let p1 = p1 as f64;
    let dt_h = dt_ms as f64 / 3_600_000.0;
    if p0 >= 0.0 && p1 >= 0.0 {
        ((p0 + p1) * 0.5 * dt_h, 0.0)
    } else if p0 <= 0.0 && p1 <= 0.0 {
        (0.0, -(p0 + p1) * 0.5 * dt_h)
    } else {
        // Sign change: zero crossing at fraction f = p0 / (p0 - p1) ∈ (0, 1).
        let f = p0 / (p0 - p1);
        let a = 0.5 * p0 * f * dt_h; // signed area before the crossing
        let b = 0.5 * p1 * (1.0 - f) * dt_h; // signed area after it
        let (pos, neg) = if p0 > 0.0 { (a, -b) } else { (b, -a) };
        (pos.max(0.0), neg.max(0.0))
    }
}

/// Figures for one circuit or socket in a [`TelemetrySnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ChannelFigures {
    /// Circuit or socket index.
    pub index: u8,
    /// Latest power, W.
    pub power_w: f32,
    /// Energy delivered since the hub started, Wh (non-decreasing).
    pub energy_wh: f64,
    /// Energy returned (negative power) since start, Wh (non-decreasing).
    pub returned_wh: f64,
    /// Minimum power in the period since the previous snapshot, W.
    pub min_w: Option<f32>,
    /// Maximum power in the period since the previous snapshot, W.
    pub max_w: Option<f32>,
    /// Time above the runtime threshold since start, s.
    pub runtime_s: f64,
}

/// Site-level figures in a [`TelemetrySnapshot`]. Powers are the latest
/// accepted values (None before the first), energies are counters since the
/// hub started (non-decreasing), min/max are over the period since the
/// previous snapshot.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SiteFigures {
    /// Grid power, W, positive = import.
    pub grid_power_w: Option<f32>,
    pub grid_min_w: Option<f32>,
    pub grid_max_w: Option<f32>,
    /// Grid import integrated from the grid power readings, Wh.
    pub grid_import_wh: f64,
    /// Grid export integrated from the grid power readings, Wh.
    pub grid_export_wh: f64,
    /// Last accepted meter import register, Wh.
    pub meter_import_wh: Option<f64>,
    /// Last accepted meter export register, Wh.
    pub meter_export_wh: Option<f64>,
    /// PV power, W, positive = generation.
    pub pv_power_w: Option<f32>,
    pub pv_max_w: Option<f32>,
    /// PV energy generated, Wh.
    pub pv_energy_wh: f64,
    /// Pack power, W, positive = discharge.
    pub pack_power_w: Option<f32>,
    pub pack_min_w: Option<f32>,
    pub pack_max_w: Option<f32>,
    /// Energy discharged from the pack, Wh.
    pub pack_discharged_wh: f64,
    /// Energy charged into the pack, Wh.
    pub pack_charged_wh: f64,
}

/// What the uplink sends: site, per-circuit and per-socket figures, and the
/// reject counters. Serialisable with serde (no std needed).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TelemetrySnapshot {
    /// When the snapshot was taken, ms since controller start.
    pub taken_at_ms: u64,
    /// Length of the period the min/max figures cover, ms.
    pub period_ms: u64,
    pub site: SiteFigures,
    /// Circuits that have had at least one accepted reading, by index.
    pub circuits: heapless::Vec<ChannelFigures, MAX_CHANNELS>,
    /// Sockets that have had at least one accepted reading, by index.
    pub sockets: heapless::Vec<ChannelFigures, MAX_CHANNELS>,
    pub rejected: RejectCounters,
}

/// The local hub: counters for every channel. Plain struct; construct with
/// [`Hub::new`], feed with [`Hub::record`], report with [`Hub::take_snapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Hub {
    cfg: HubConfig,
    pack: Channel,
    pv: Channel,
    grid: Channel,
    meter: Option<MeterRegisters>,
    circuits: [Channel; MAX_CHANNELS],
    sockets: [Channel; MAX_CHANNELS],
    rejected: RejectCounters,
    period_start: Millis,
}

impl Hub {
    /// A hub with all counters at zero; the first reporting period starts at
    /// `now`. The config should have been validated.
    pub fn new(cfg: HubConfig, now: Millis) -> Self {
        Hub {
            cfg,
            pack: Channel::default(),
            pv: Channel::default(),
            grid: Channel::default(),
            meter: None,
            circuits: [Channel::default(); MAX_CHANNELS],
            sockets: [Channel::default(); MAX_CHANNELS],
            rejected: RejectCounters::default(),
            period_start: now,
        }
    }

    /// Integrates every reading in `sample` (each against its own channel's
    /// previous reading). Invalid readings are counted and skipped; never
    /// panics.
    pub fn record(&mut self, now: Millis, sample: &HubSample) {
        let cfg = &self.cfg;
        let rej = &mut self.rejected;
        if let Some(r) = sample.pack {
            note(rej, self.pack.record(now, r, cfg));
        }
        if let Some(r) = sample.pv {
            note(rej, self.pv.record(now, r, cfg));
        }
        if let Some(r) = sample.grid {
            note(rej, self.grid.record(now, r, cfg));
        }
        for (table, readings) in [
            (&mut self.circuits, &sample.circuits),
            (&mut self.sockets, &sample.sockets),
        ] {
            for cr in readings.iter() {
                match table.get_mut(cr.index as usize) {
                    Some(ch) => {
                        let r = Reading {
                            at: cr.at,
                            power_w: cr.power_w,
                        };
                        note(rej, ch.record(now, r, cfg));
                    }
                    None => note(rej, Err(RejectReason::IndexOutOfRange)),
                }
            }
        }
        if let Some(m) = sample.meter {
            let res = self.check_meter(now, m);
            if res.is_ok() {
                self.meter = Some(m);
            }
            note(&mut self.rejected, res.map(|_| false));
        }
    }

    fn check_meter(&self, now: Millis, m: MeterRegisters) -> Result<(), RejectReason> {
        if !m.import_wh.is_finite()
            || !m.export_wh.is_finite()
            || m.import_wh < 0.0
            || m.export_wh < 0.0
        {
            return Err(RejectReason::InvalidValue);
        }
        if m.at > now {
            return Err(RejectReason::Future);
        }
        if let Some(prev) = self.meter {
            if m.at <= prev.at {
                return Err(RejectReason::NonMonotonic);
            }
            if m.import_wh < prev.import_wh || m.export_wh < prev.export_wh {
                return Err(RejectReason::RegisterBackwards);
            }
        }
        Ok(())
    }

    /// Pack channel (positive = discharge).
    pub fn pack(&self) -> &Channel {
        &self.pack
    }
    /// PV channel (positive = generation).
    pub fn pv(&self) -> &Channel {
        &self.pv
    }
    /// Grid channel (positive = import).
    pub fn grid(&self) -> &Channel {
        &self.grid
    }
    /// Circuit channel `index`, None if out of range.
    pub fn circuit(&self, index: usize) -> Option<&Channel> {
        self.circuits.get(index)
    }
    /// Socket channel `index`, None if out of range.
    pub fn socket(&self, index: usize) -> Option<&Channel> {
        self.sockets.get(index)
    }
    /// Rejected-reading counters.
    pub fn rejected(&self) -> RejectCounters {
        self.rejected
    }

    /// Builds the telemetry snapshot and starts a new reporting period
    /// (resets every channel's period min/max; energy counters continue).
    pub fn take_snapshot(&mut self, now: Millis) -> TelemetrySnapshot {
        let site = SiteFigures {
            grid_power_w: self.grid.power_w(),
            grid_min_w: self.grid.period_min_w,
            grid_max_w: self.grid.period_max_w,
            grid_import_wh: self.grid.positive_wh,
            grid_export_wh: self.grid.negative_wh,
            meter_import_wh: self.meter.map(|m| m.import_wh),
            meter_export_wh: self.meter.map(|m| m.export_wh),
            pv_power_w: self.pv.power_w(),
            pv_max_w: self.pv.period_max_w,
            pv_energy_wh: self.pv.positive_wh,
            pack_power_w: self.pack.power_w(),
            pack_min_w: self.pack.period_min_w,
            pack_max_w: self.pack.period_max_w,
            pack_discharged_wh: self.pack.positive_wh,
            pack_charged_wh: self.pack.negative_wh,
        };
        let snap = TelemetrySnapshot {
            taken_at_ms: now.0,
            period_ms: now.since(self.period_start),
            site,
            circuits: figures(&self.circuits),
            sockets: figures(&self.sockets),
            rejected: self.rejected,
        };
        for ch in [&mut self.pack, &mut self.pv, &mut self.grid]
            .into_iter()
            .chain(self.circuits.iter_mut())
            .chain(self.sockets.iter_mut())
        {
            ch.reset_period();
        }
        self.period_start = now;
        snap
    }
}

fn figures(table: &[Channel; MAX_CHANNELS]) -> heapless::Vec<ChannelFigures, MAX_CHANNELS> {
    let mut out = heapless::Vec::new();
    for (i, ch) in table.iter().enumerate() {
        if let Some(p) = ch.power_w() {
            // Capacity equals the table size, so this cannot fail.
            let _ = out.push(ChannelFigures {
                index: i as u8,
                power_w: p,
                energy_wh: ch.positive_wh,
                returned_wh: ch.negative_wh,
                min_w: ch.period_min_w,
                max_w: ch.period_max_w,
                runtime_s: ch.runtime_ms as f64 * 1e-3,
            });
        }
    }
    out
}

fn note(rej: &mut RejectCounters, res: Result<bool, RejectReason>) {
    let c = match res {
        Ok(false) => return,
        Ok(true) => &mut rej.gaps,
        Err(RejectReason::InvalidValue) => &mut rej.invalid_value,
        Err(RejectReason::NonMonotonic) => &mut rej.non_monotonic,
        Err(RejectReason::Future) => &mut rej.future,
        Err(RejectReason::IndexOutOfRange) => &mut rej.index_out_of_range,
        Err(RejectReason::RegisterBackwards) => &mut rej.register_backwards,
    };
    *c = c.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ms: u64) -> Millis {
        Millis(ms)
    }

    fn sample_socket(index: u8, t: u64, p: f32) -> HubSample {
        let mut s = HubSample::default();
        s.sockets
            .push(ChannelReading {
                index,
                at: at(t),
                power_w: p,
            })
            .unwrap();
        s
    }

    #[test]
    fn config_validates() {
        assert!(HubConfig::default().validate().is_ok());
        let bad = HubConfig {
            max_gap_ms: 0,
            ..HubConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field.as_str(), "max_gap_ms");
        let bad = HubConfig {
            runtime_threshold_w: f32::NAN,
            ..HubConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn linear_ramp_integrates_exactly() {
        // 0 → 100 W over one hour in one-minute steps: 50 Wh exactly.
        let mut hub = Hub::new(HubConfig::default(), at(0));
        for k in 0..=60u64 {
            let t = k * 60_000;
            hub.record(at(t), &sample_socket(3, t, k as f32 * 100.0 / 60.0));
        }
        let e = hub.socket(3).unwrap().positive_wh;
        assert!((e - 50.0).abs() < 1e-4, "{e}");
        assert_eq!(hub.socket(3).unwrap().runtime_ms, 59 * 60_000);
    }

    #[test]
    fn constant_power_and_sign_split() {
        let cfg = HubConfig {
            max_gap_ms: 3_600_000, // 30-minute steps are integrated here
            ..HubConfig::default()
        };
        let mut hub = Hub::new(cfg, at(0));
        // Pack: +1000 W (discharge) for 30 min, then a linear swing from
        // +1000 to -1000 W in 1 min, then -1000 W (charge) for 30 min.
        let mut t = 0;
        let pts = [
            (0u64, 1000.0f32),
            (1_800_000, 1000.0),
            (1_860_000, -1000.0),
            (3_660_000, -1000.0),
        ];
        for (tt, p) in pts {
            t = tt;
            let s = HubSample {
                pack: Some(Reading {
                    at: at(tt),
                    power_w: p,
                }),
                ..HubSample::default()
            };
            hub.record(at(t), &s);
        }
        let swing_each = 1000.0 * 0.5 * 30.0 / 3600.0; // 4.1667 Wh each side
        assert!((hub.pack().positive_wh - (500.0 + swing_each)).abs() < 1e-9);
        assert!((hub.pack().negative_wh - (500.0 + swing_each)).abs() < 1e-9);
        let snap = hub.take_snapshot(at(t));
        assert_eq!(snap.site.pack_min_w, Some(-1000.0));
        assert_eq!(snap.site.pack_max_w, Some(1000.0));
        assert!((snap.site.pack_charged_wh - (500.0 + swing_each)).abs() < 1e-9);
    }

    #[test]
    fn grid_import_export_and_meter_registers() {
        let mut hub = Hub::new(HubConfig::default(), at(0));
        for (t, p) in [
            (0u64, 600.0f32),
            (60_000, 600.0),
            (120_000, -600.0),
            (180_000, -600.0),
        ] {
            let s = HubSample {
                grid: Some(Reading {
                    at: at(t),
                    power_w: p,
                }),
                meter: Some(MeterRegisters {
                    at: at(t),
                    import_wh: 1000.0 + t as f64 / 1000.0,
                    export_wh: 50.0,
                }),
                ..HubSample::default()
            };
            hub.record(at(t), &s);
        }
        // 10 Wh import (1 min), 2.5+2.5 Wh on the swing, 10 Wh export.
        assert!((hub.grid().positive_wh - 12.5).abs() < 1e-9);
        assert!((hub.grid().negative_wh - 12.5).abs() < 1e-9);
        // A backwards register is rejected and the old value kept.
        let s = HubSample {
            meter: Some(MeterRegisters {
                at: at(240_000),
                import_wh: 10.0,
                export_wh: 50.0,
            }),
            ..HubSample::default()
        };
        hub.record(at(240_000), &s);
        assert_eq!(hub.rejected().register_backwards, 1);
        let snap = hub.take_snapshot(at(240_000));
        assert_eq!(snap.site.meter_import_wh, Some(1180.0));
    }

    #[test]
    fn rejects_nan_backwards_future_and_bad_index() {
        let mut hub = Hub::new(HubConfig::default(), at(0));
        hub.record(at(1000), &sample_socket(0, 1000, 10.0));
        hub.record(at(2000), &sample_socket(0, 2000, f32::NAN));
        hub.record(at(3000), &sample_socket(0, 500, 10.0));
        hub.record(at(3000), &sample_socket(0, 2000 + 5000, 10.0));
        hub.record(at(3000), &sample_socket(16, 3000, 10.0));
        hub.record(at(3000), &sample_socket(255, 3000, 10.0));
        let r = hub.rejected();
        assert_eq!(r.invalid_value, 1);
        assert_eq!(r.non_monotonic, 1);
        assert_eq!(r.future, 1);
        assert_eq!(r.index_out_of_range, 2);
        assert_eq!(hub.socket(0).unwrap().positive_wh, 0.0);
        hub.record(at(4600), &sample_socket(0, 4600, 10.0));
        // 3.6 s at 10 W = 0.01 Wh
        assert!((hub.socket(0).unwrap().positive_wh - 0.01).abs() < 1e-12);
    }

    #[test]
    fn gaps_are_not_bridged() {
        let mut hub = Hub::new(HubConfig::default(), at(0));
        hub.record(at(0), &sample_socket(1, 0, 100.0));
        hub.record(at(3_600_000), &sample_socket(1, 3_600_000, 100.0));
        assert_eq!(hub.socket(1).unwrap().positive_wh, 0.0);
        assert_eq!(hub.rejected().gaps, 1);
        hub.record(at(3_636_000), &sample_socket(1, 3_636_000, 100.0));
        assert!((hub.socket(1).unwrap().positive_wh - 1.0).abs() < 1e-9);
    }

    #[test]
    fn snapshot_resets_period_min_max_only() {
        let mut hub = Hub::new(HubConfig::default(), at(0));
        let mut s = HubSample::default();
        for (i, p) in [(0u8, 5.0f32), (15, 20.0)] {
            s.circuits
                .push(ChannelReading {
                    index: i,
                    at: at(0),
                    power_w: p,
                })
                .unwrap();
        }
        hub.record(at(0), &s);
        hub.record(at(1000), &sample_socket(2, 1000, 50.0));
        hub.record(at(2000), &sample_socket(2, 2000, 10.0));
        let snap = hub.take_snapshot(at(2000));
        assert_eq!(snap.period_ms, 2000);
        assert_eq!(snap.circuits.len(), 2);
        assert_eq!(snap.circuits[1].index, 15);
        assert_eq!(snap.sockets.len(), 1);
        assert_eq!(snap.sockets[0].min_w, Some(10.0));
        assert_eq!(snap.sockets[0].max_w, Some(50.0));
        let e = snap.sockets[0].energy_wh;
        let snap2 = hub.take_snapshot(at(3000));
        assert_eq!(snap2.sockets[0].min_w, None);
        assert_eq!(snap2.sockets[0].max_w, None);
        assert_eq!(snap2.sockets[0].power_w, 10.0);
        assert_eq!(snap2.sockets[0].energy_wh, e);
        assert_eq!(snap2.period_ms, 1000);
        hub.record(at(4000), &sample_socket(2, 4000, 30.0));
        let snap3 = hub.take_snapshot(at(4000));
        assert_eq!(snap3.sockets[0].min_w, Some(30.0));
        assert_eq!(snap3.sockets[0].max_w, Some(30.0));
    }

    #[test]
    fn snapshot_is_serialize() {
        fn assert_ser<T: serde::Serialize>(_: &T) {}
        let mut hub = Hub::new(HubConfig::default(), at(0));
        assert_ser(&hub.take_snapshot(at(0)));
    }

    #[test]
    fn full_tables_fit_in_snapshot() {
        let mut hub = Hub::new(HubConfig::default(), at(0));
        let mut s = HubSample::default();
        for i in 0..MAX_CHANNELS as u8 {
            s.circuits
                .push(ChannelReading {
                    index: i,
                    at: at(0),
                    power_w: 1.0,
                })
                .unwrap();
            s.sockets
                .push(ChannelReading {
                    index: i,
                    at: at(0),
                    power_w: 1.0,
                })
                .unwrap();
        }
        hub.record(at(0), &s);
        let snap = hub.take_snapshot(at(0));
        assert_eq!(snap.circuits.len(), MAX_CHANNELS);
        assert_eq!(snap.sockets.len(), MAX_CHANNELS);
    }

    fn arb_power() -> impl Strategy<Value = f32> {
        prop_oneof![
            8 => -5000.0f32..5000.0,
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => Just(f32::NEG_INFINITY),
        ]
    }

    proptest! {
        #[test]
        fn counters_never_decrease(
            steps in proptest::collection::vec(
                (0u64..200_000, -50_000i64..120_000, 0u8..20, arb_power(), any::<bool>()),
                1..120,
            )
        ) {
            let mut hub = Hub::new(HubConfig::default(), at(0));
            let mut now = 0u64;
            let mut prev: Option<TelemetrySnapshot> = None;
            for (adv, skew, idx, p, snap) in steps {
                now += adv;
                let t = (now as i64 + skew).max(0) as u64;
                let mut s = sample_socket(idx, t, p);
                s.circuits.push(ChannelReading { index: idx, at: at(t), power_w: p }).unwrap();
                s.pack = Some(Reading { at: at(t), power_w: p });
                s.grid = Some(Reading { at: at(t), power_w: -p });
                s.pv = Some(Reading { at: at(t), power_w: p });
                s.meter = Some(MeterRegisters { at: at(t), import_wh: p as f64, export_wh: 1.0 });
                hub.record(at(now), &s);
                if snap {
                    let cur = hub.take_snapshot(at(now));
                    if let Some(old) = &prev {
                        prop_assert!(cur.site.grid_import_wh >= old.site.grid_import_wh);
                        prop_assert!(cur.site.grid_export_wh >= old.site.grid_export_wh);
                        prop_assert!(cur.site.pack_charged_wh >= old.site.pack_charged_wh);
                        prop_assert!(cur.site.pack_discharged_wh >= old.site.pack_discharged_wh);
                        prop_assert!(cur.site.pv_energy_wh >= old.site.pv_energy_wh);
                        if let (Some(a), Some(b)) = (cur.site.meter_import_wh, old.site.meter_import_wh) {
                            prop_assert!(a >= b);
                        }
                        for list in [(&cur.circuits, &old.circuits), (&cur.sockets, &old.sockets)] {
                            for o in list.1.iter() {
                                let c = list.0.iter().find(|c| c.index == o.index);
                                prop_assert!(c.is_some());
                                let c = c.unwrap();
                                prop_assert!(c.energy_wh >= o.energy_wh);
                                prop_assert!(c.returned_wh >= o.returned_wh);
                                prop_assert!(c.runtime_s >= o.runtime_s);
                            }
                        }
                    }
                    for c in cur.sockets.iter().chain(cur.circuits.iter()) {
                        prop_assert!(c.energy_wh.is_finite() && c.energy_wh >= 0.0);
                        prop_assert!(c.power_w.is_finite());
                        if let (Some(lo), Some(hi)) = (c.min_w, c.max_w) {
                            prop_assert!(lo <= hi);
                        }
                    }
                    prev = Some(cur);
                }
            }
        }
    }
}
