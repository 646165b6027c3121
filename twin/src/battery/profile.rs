//! Running a cell through a current or power profile (pure, no IO): used by
//! `maslow twin cell` and by the PyBaMM validation test.
//!
//! **Zero-order hold.** Row `k`'s value is applied from `time_s[k]` up to
//! (not including) `time_s[k+1]`; the last row only marks the end time (its
//! value is not used). Each interval is split into equal steps no longer
//! than `dt_s`, and one [`CellSample`] is recorded at the end of every step
//! (plus one at the start). A sample's `current_a` is the current that
//! flowed during the step that ended there (at the start: row 0's current),
//! and its voltage is the terminal voltage with that current.
//!
//! The run stops cleanly, before the sample that would violate it, when the
//! terminal voltage leaves `[voltage_min_v, voltage_max_v]` (the crossing
//! time is interpolated between the last two steps), when SOC reaches 0 or
//! 1 (like PyBaMM's SoC events), or when a power cannot be delivered.

use std::fmt;

use super::cell::{CellOutput, EcmCell, LimitFlags};
use super::params::CellParams;
use super::power::clamp_current;
use super::power::{LinearSource, PowerNotDeliverable};
use super::spme::{SpmeCell, SpmeParams};
use crate::params::NumericTable;

/// What the profile's values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    /// Current in A, positive = discharge.
    CurrentA,
    /// Terminal power in W, positive = discharge.
    PowerW,
}

/// A validated profile: at least two rows, strictly increasing finite times,
/// finite values.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub time_s: Vec<f64>,
    pub values: Vec<f64>,
    pub kind: ProfileKind,
}

/// A problem with a profile; rows are 0-based indices into the data rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error("a profile needs at least 2 rows, found {rows}")]
    TooFewRows { rows: usize },
    #[error("time and value columns differ in length ({times} vs {values})")]
    LengthMismatch { times: usize, values: usize },
    #[error("row {row}: {column} is not a finite number")]
    NotFinite { row: usize, column: &'static str },
    #[error("row {row}: time {time_s} s does not increase (previous row: {previous_s} s)")]
    NotIncreasing {
        row: usize,
        time_s: f64,
        previous_s: f64,
    },
    #[error(
        "the table needs a `time_s` column and one of `current_a` or `power_w` (found: {found})"
    )]
    MissingColumns { found: String },
    #[error("{0}")]
    BadArgument(String),
}

impl Profile {
    pub fn new(
        time_s: Vec<f64>,
        values: Vec<f64>,
        kind: ProfileKind,
    ) -> Result<Self, ProfileError> {
        if time_s.len() != values.len() {
            return Err(ProfileError::LengthMismatch {
                times: time_s.len(),
                values: values.len(),
            });
        }
        if time_s.len() < 2 {
            return Err(ProfileError::TooFewRows { rows: time_s.len() });
        }
        for (row, (t, v)) in time_s.iter().zip(&values).enumerate() {
            if !t.is_finite() {
                return Err(ProfileError::NotFinite {
                    row,
                    column: "time_s",
                });
            }
            if !v.is_finite() {
                let column = match kind {
                    ProfileKind::CurrentA => "current_a",
                    ProfileKind::PowerW => "power_w",
                };
                return Err(ProfileError::NotFinite { row, column });
            }
            if row > 0 && *t <= time_s[row - 1] {
                return Err(ProfileError::NotIncreasing {
                    row,
                    time_s: *t,
                    previous_s: time_s[row - 1],
                });
            }
        }
        Ok(Profile {
            time_s,
            values,
            kind,
        })
    }

    /// From a numeric table with a `time_s` column and a `current_a` or
    /// `power_w` column (current wins if both are present).
    pub fn from_table(t: &NumericTable) -> Result<Self, ProfileError> {
        let time = t.column("time_s");
        let (kind, values) = match (t.column("current_a"), t.column("power_w")) {
            (Some(v), _) => (ProfileKind::CurrentA, Some(v)),
            (None, Some(v)) => (ProfileKind::PowerW, Some(v)),
            _ => (ProfileKind::CurrentA, None),
        };
        match (time, values) {
            (Some(time), Some(values)) => Profile::new(time, values, kind),
            _ => Err(ProfileError::MissingColumns {
                found: t.columns.join(","),
            }),
        }
    }

    pub fn duration_s(&self) -> f64 {
        self.time_s[self.time_s.len() - 1] - self.time_s[0]
    }
}

/// One recorded point of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSample {
    pub time_s: f64,
    pub current_a: f64,
    pub voltage_v: f64,
    pub power_w: f64,
    pub soc: f64,
    pub ocv_v: f64,
    pub temperature_c: f64,
    pub jig_temperature_c: f64,
    pub heat_w: f64,
    pub limits: LimitFlags,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopReason {
    /// The profile ran to its last row.
    EndOfProfile { time_s: f64 },
    /// Terminal voltage fell to the lower cut-off at `time_s` (interpolated).
    LowerVoltageCutoff { time_s: f64, cutoff_v: f64 },
    /// Terminal voltage rose to the upper cut-off at `time_s` (interpolated).
    UpperVoltageCutoff { time_s: f64, cutoff_v: f64 },
    /// SOC reached 0.
    SocEmpty { time_s: f64 },
    /// SOC reached 1.
    SocFull { time_s: f64 },
    /// A power row could not be delivered.
    PowerNotDeliverable {
        time_s: f64,
        requested_w: f64,
        max_w: f64,
    },
}

impl StopReason {
    pub fn time_s(&self) -> f64 {
        match *self {
            StopReason::EndOfProfile { time_s }
            | StopReason::LowerVoltageCutoff { time_s, .. }
            | StopReason::UpperVoltageCutoff { time_s, .. }
            | StopReason::SocEmpty { time_s }
            | StopReason::SocFull { time_s }
            | StopReason::PowerNotDeliverable { time_s, .. } => time_s,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StopReason::EndOfProfile { time_s } => write!(f, "end of profile at {time_s:.3} s"),
            StopReason::LowerVoltageCutoff { time_s, cutoff_v } => {
                write!(f, "lower voltage cut-off ({cutoff_v} V) at {time_s:.3} s")
            }
            StopReason::UpperVoltageCutoff { time_s, cutoff_v } => {
                write!(f, "upper voltage cut-off ({cutoff_v} V) at {time_s:.3} s")
            }
            StopReason::SocEmpty { time_s } => write!(f, "SOC reached 0 at {time_s:.3} s"),
            StopReason::SocFull { time_s } => write!(f, "SOC reached 1 at {time_s:.3} s"),
            StopReason::PowerNotDeliverable {
                time_s,
                requested_w,
                max_w,
            } => write!(
                f,
                "power {requested_w} W not deliverable at {time_s:.3} s (at most {max_w:.3} W)"
            ),
        }
    }
}

/// The result of [`run_cell_profile`].
#[derive(Debug, Clone, PartialEq)]
pub struct CellRun {
    pub samples: Vec<CellSample>,
    pub stop: StopReason,
}

fn sample<C: ProfileCell>(time_s: f64, cell: &C) -> CellSample {
    let o = cell.output();
    CellSample {
        time_s,
        current_a: o.current_a,
        voltage_v: o.voltage_v,
        power_w: o.power_w,
        soc: o.soc,
        ocv_v: o.ocv_v,
        temperature_c: o.temperature_c,
        jig_temperature_c: o.jig_temperature_c,
        heat_w: o.heat_w,
        limits: o.limits,
    }
}

/// A cell the profile runner can drive: the ECM [`EcmCell`] and the SPMe
/// [`SpmeCell`].
pub trait ProfileCell {
    /// The present output.
    fn output(&self) -> CellOutput;
    /// Sets the current flowing now without advancing time.
    fn set_instant_current(&mut self, current_a: f64);
    /// The current that delivers `power_w` at the terminals now (no time
    /// passes), or why none does.
    fn instant_power_current(&mut self, power_w: f64) -> Result<f64, PowerNotDeliverable>;
    /// Steps at constant current.
    fn step_current(&mut self, current_a: f64, dt_s: f64) -> CellOutput;
    /// Steps at constant terminal power.
    fn step_power(&mut self, power_w: f64, dt_s: f64) -> Result<CellOutput, PowerNotDeliverable>;
}

impl ProfileCell for EcmCell {
    fn output(&self) -> CellOutput {
        EcmCell::output(self)
    }
    fn set_instant_current(&mut self, current_a: f64) {
        EcmCell::set_instant_current(self, current_a)
    }
    fn instant_power_current(&mut self, power_w: f64) -> Result<f64, PowerNotDeliverable> {
        // Now, the cell is its OCV and RC voltages behind R0.
        let st = self.state();
        let source = LinearSource {
            e_v: st.ocv + st.v_rc.iter().sum::<f64>(),
            r_ohm: st.r0,
        };
        source.current_for_power(power_w)
    }
    fn step_current(&mut self, current_a: f64, dt_s: f64) -> CellOutput {
        EcmCell::step_current(self, current_a, dt_s)
    }
    fn step_power(&mut self, power_w: f64, dt_s: f64) -> Result<CellOutput, PowerNotDeliverable> {
        EcmCell::step_power(self, power_w, dt_s)
    }
}

impl ProfileCell for SpmeCell {
    fn output(&self) -> CellOutput {
        SpmeCell::output(self)
    }
    fn set_instant_current(&mut self, current_a: f64) {
        SpmeCell::set_instant_current(self, current_a)
    }
    fn instant_power_current(&mut self, power_w: f64) -> Result<f64, PowerNotDeliverable> {
        SpmeCell::instant_power_current(self, power_w)
    }
    fn step_current(&mut self, current_a: f64, dt_s: f64) -> CellOutput {
        SpmeCell::step_current(self, current_a, dt_s)
    }
    fn step_power(&mut self, power_w: f64, dt_s: f64) -> Result<CellOutput, PowerNotDeliverable> {
        SpmeCell::step_power(self, power_w, dt_s)
    }
}

fn check_args(soc0: f64, temperature_c: f64, dt_s: f64) -> Result<(), ProfileError> {
    if !(dt_s.is_finite() && dt_s > 0.0) {
        return Err(ProfileError::BadArgument(format!(
            "dt_s must be > 0, found {dt_s}"
        )));
    }
    if !(soc0.is_finite() && (0.0..=1.0).contains(&soc0)) {
        return Err(ProfileError::BadArgument(format!(
            "soc0 must be in [0, 1], found {soc0}"
        )));
    }
    if !temperature_c.is_finite() {
        return Err(ProfileError::BadArgument(
            "temperature_c must be finite".into(),
        ));
    }
    Ok(())
}

/// Runs one nominal cell from `soc0`, with cell, jig and ambient at
/// `temperature_c`, through `profile` with steps of at most `dt_s`.
pub fn run_cell_profile(
    params: &CellParams,
    profile: &Profile,
    soc0: f64,
    temperature_c: f64,
    dt_s: f64,
) -> Result<CellRun, ProfileError> {
    check_args(soc0, temperature_c, dt_s)?;
    let mut cell = EcmCell::new(params, soc0, temperature_c);
    run_profile(
        &mut cell,
        params.voltage_min_v,
        params.voltage_max_v,
        profile,
        dt_s,
    )
}

/// Runs one SPMe cell from `soc0` (on its stoichiometry window), with cell
/// and ambient at `temperature_c`, through `profile` with steps of at most
/// `dt_s`: the same sampling and stop rules as [`run_cell_profile`].
pub fn run_spme_profile(
    params: &SpmeParams,
    profile: &Profile,
    soc0: f64,
    temperature_c: f64,
    dt_s: f64,
) -> Result<CellRun, ProfileError> {
    check_args(soc0, temperature_c, dt_s)?;
    let mut cell = SpmeCell::new(params, soc0, temperature_c)
        .map_err(|e| ProfileError::BadArgument(e.to_string()))?;
    run_profile(
        &mut cell,
        params.voltage_min_v,
        params.voltage_max_v,
        profile,
        dt_s,
    )
}

/// Runs `cell` through `profile` (see the module documentation), stopping
/// at the voltage limits `[vmin, vmax]`.
pub fn run_profile<C: ProfileCell>(
    cell: &mut C,
    vmin: f64,
    vmax: f64,
    profile: &Profile,
    dt_s: f64,
) -> Result<CellRun, ProfileError> {
    if !(dt_s.is_finite() && dt_s > 0.0) {
        return Err(ProfileError::BadArgument(format!(
            "dt_s must be > 0, found {dt_s}"
        )));
    }
    let t0 = profile.time_s[0];
    // Initial sample: the state at t0 with row 0's current flowing.
    let i0 = match profile.kind {
        ProfileKind::CurrentA => clamp_current(profile.values[0]).0,
        ProfileKind::PowerW => match cell.instant_power_current(profile.values[0]) {
            Ok(i) => i,
            Err(err) => {
                return Ok(CellRun {
                    samples: vec![],
                    stop: StopReason::PowerNotDeliverable {
                        time_s: t0,
                        requested_w: err.requested_w,
                        max_w: err.max_w,
                    },
                })
            }
        },
    };
    cell.set_instant_current(i0);
    let first = sample(t0, &*cell);
    if first.voltage_v < vmin {
        return Ok(CellRun {
            samples: vec![],
            stop: StopReason::LowerVoltageCutoff {
                time_s: t0,
                cutoff_v: vmin,
            },
        });
    }
    if first.voltage_v > vmax {
        return Ok(CellRun {
            samples: vec![],
            stop: StopReason::UpperVoltageCutoff {
                time_s: t0,
                cutoff_v: vmax,
            },
        });
    }
    let mut samples = Vec::with_capacity((profile.duration_s() / dt_s).ceil() as usize + 2);
    samples.push(first);
    for k in 0..profile.time_s.len() - 1 {
        let (ta, tb) = (profile.time_s[k], profile.time_s[k + 1]);
        let n = ((tb - ta) / dt_s - 1e-9).ceil().max(1.0) as usize;
        let h = (tb - ta) / n as f64;
        let value = profile.values[k];
        for j in 1..=n {
            let t = if j == n { tb } else { ta + h * j as f64 };
            let prev = *samples.last().expect("at least the first sample");
            match profile.kind {
                ProfileKind::CurrentA => {
                    cell.step_current(value, h);
                }
                ProfileKind::PowerW => {
                    if let Err(e) = cell.step_power(value, h) {
                        return Ok(CellRun {
                            samples,
                            stop: StopReason::PowerNotDeliverable {
                                time_s: t - h,
                                requested_w: e.requested_w,
                                max_w: e.max_w,
                            },
                        });
                    }
                }
            }
            let s = sample(t, &*cell);
            let cross = |lim: f64| {
                let dv = s.voltage_v - prev.voltage_v;
                if dv.abs() > 0.0 {
                    (prev.time_s + (lim - prev.voltage_v) / dv * (t - prev.time_s))
                        .clamp(prev.time_s, t)
                } else {
                    t
                }
            };
            if s.voltage_v < vmin {
                let time_s = cross(vmin);
                return Ok(CellRun {
                    samples,
                    stop: StopReason::LowerVoltageCutoff {
                        time_s,
                        cutoff_v: vmin,
                    },
                });
            }
            if s.voltage_v > vmax {
                let time_s = cross(vmax);
                return Ok(CellRun {
                    samples,
                    stop: StopReason::UpperVoltageCutoff {
                        time_s,
                        cutoff_v: vmax,
                    },
                });
            }
            samples.push(s);
            if s.soc <= 0.0 {
                return Ok(CellRun {
                    samples,
                    stop: StopReason::SocEmpty { time_s: t },
                });
            }
            if s.soc >= 1.0 && value < 0.0 {
                return Ok(CellRun {
                    samples,
                    stop: StopReason::SocFull { time_s: t },
                });
            }
        }
    }
    let time_s = profile.time_s[profile.time_s.len() - 1];
    Ok(CellRun {
        samples,
        stop: StopReason::EndOfProfile { time_s },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::battery::params::parse_cell_params;
    use std::path::Path;

    fn params() -> CellParams {
        parse_cell_params(
            Path::new("t.toml"),
            crate::battery::params::tests_support::MINIMAL,
        )
        .unwrap()
    }

    #[test]
    fn profile_validation_names_rows() {
        use ProfileKind::CurrentA as C;
        assert_eq!(
            Profile::new(vec![0.0], vec![1.0], C),
            Err(ProfileError::TooFewRows { rows: 1 })
        );
        let e = Profile::new(vec![0.0, 1.0, 1.0], vec![1.0; 3], C).unwrap_err();
        assert!(e.to_string().starts_with("row 2:"), "{e}");
        let e = Profile::new(vec![0.0, 1.0], vec![1.0, f64::NAN], C).unwrap_err();
        assert_eq!(e.to_string(), "row 1: current_a is not a finite number");
        let e = Profile::new(vec![0.0, f64::INFINITY], vec![1.0, 1.0], C).unwrap_err();
        assert!(e.to_string().contains("time_s"));
    }

    #[test]
    fn zero_order_hold_and_sampling() {
        let p = Profile::new(
            vec![0.0, 10.0, 25.0],
            vec![5.0, -5.0, 99.0],
            ProfileKind::CurrentA,
        )
        .unwrap();
        let run = run_cell_profile(&params(), &p, 0.5, 25.0, 2.0).unwrap();
        assert_eq!(run.stop, StopReason::EndOfProfile { time_s: 25.0 });
        let times: Vec<f64> = run.samples.iter().map(|s| s.time_s).collect();
        assert_eq!(times[..7], [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 11.875]);
        assert_eq!(*times.last().unwrap(), 25.0);
        assert_eq!(run.samples[5].current_a, 5.0);
        assert_eq!(run.samples[6].current_a, -5.0);
        // Net charge zero over 10 s at +5 and 15 s at -5 → SOC up.
        assert!(run.samples.last().unwrap().soc > 0.5);
    }

    #[test]
    fn stops_at_lower_cutoff_and_says_when() {
        let p = Profile::new(vec![0.0, 7200.0], vec![10.0, 0.0], ProfileKind::CurrentA).unwrap();
        let run = run_cell_profile(&params(), &p, 1.0, 25.0, 1.0).unwrap();
        match run.stop {
            StopReason::LowerVoltageCutoff { time_s, cutoff_v } => {
                assert_eq!(cutoff_v, 2.5);
                assert!(time_s > 3000.0 && time_s < 3600.0, "{time_s}");
            }
            other => panic!("{other:?}"),
        }
        assert!(run.samples.iter().all(|s| s.voltage_v >= 2.5));
        assert!(run.stop.to_string().contains("lower voltage cut-off"));
    }

    #[test]
    fn power_profile_runs() {
        let p = Profile::new(
            vec![0.0, 60.0, 120.0],
            vec![30.0, -30.0, 0.0],
            ProfileKind::PowerW,
        )
        .unwrap();
        let run = run_cell_profile(&params(), &p, 0.5, 25.0, 1.0).unwrap();
        assert_eq!(run.stop, StopReason::EndOfProfile { time_s: 120.0 });
        for s in &run.samples[1..] {
            assert!((s.power_w.abs() - 30.0).abs() < 1e-6, "{s:?}");
        }
        let p = Profile::new(vec![0.0, 60.0], vec![1e7, 0.0], ProfileKind::PowerW).unwrap();
        let run = run_cell_profile(&params(), &p, 0.5, 25.0, 1.0).unwrap();
        assert!(matches!(run.stop, StopReason::PowerNotDeliverable { .. }));
    }
}
