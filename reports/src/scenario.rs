//! The files of one scenario's directory in a report dir, written from
//! what it measured and asserted ([`crate::measured`]'s types, re-exported
//! here):
//!
//! - `signals.csv`: every measured signal at full rate, one column each,
//!   the unit in the header (`time_s,soc [1],bus_voltage_v [V],...`); a
//!   signal sampled on a clock of its own (a bench instrument) gets its own
//!   `signal-NAME.csv` (`time_s,NAME [unit]`);
//! - `events.csv`: `time_s,event` (mains fail, demand signal, fault...);
//! - `scenario.json`: the events, the assertions (signal, window, band or
//!   limit, whether it held), the signal names and units, and the key
//!   figures; the HTML report and `run.json` read it;
//! - `plots.html`: the scenario's SVG plots (one per signal, decimated),
//!   inlined into `index.html`.
//!
//! Every file is written atomically (temporary file, then rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::csv_table::{format_value, ColumnTable};
use crate::error::{write_atomic, ReportError};
pub use crate::measured::{Assertion, Bound, Event, Signal};

/// A signal's name and unit, as listed in `scenario.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalInfo {
    pub name: String,
    pub unit: String,
}

/// `scenario.json`: what the scenario directory holds besides raw data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScenarioSummary {
    #[serde(default)]
    pub signals: Vec<SignalInfo>,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub assertions: Vec<Assertion>,
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
    /// The always-on invariants' verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invariants: Vec<crate::invariants::InvariantVerdict>,
}

/// Everything a scenario leaves for the report.
#[derive(Debug, Clone, Default)]
pub struct ScenarioCapture {
    pub signals: Vec<Signal>,
    pub events: Vec<Event>,
    pub assertions: Vec<Assertion>,
    /// Figures the rig counted (CAN frames, telegrams, jitter...), merged
    /// with those computed from the signals.
    pub figures: BTreeMap<String, f64>,
    /// The always-on invariants' verdicts.
    pub invariants: Vec<crate::invariants::InvariantVerdict>,
}

impl ScenarioCapture {
    pub fn summary(&self) -> ScenarioSummary {
        let mut figures = key_figures(&self.signals);
        figures.extend(self.figures.iter().map(|(k, v)| (k.clone(), *v)));
        ScenarioSummary {
            signals: self
                .signals
                .iter()
                .map(|s| SignalInfo {
                    name: s.name.clone(),
                    unit: s.unit.clone(),
                })
                .collect(),
            events: self.events.clone(),
            assertions: self.assertions.clone(),
            figures,
            invariants: self.invariants.clone(),
        }
    }

    /// Writes `signals.csv` (and `signal-NAME.csv` for signals on their own
    /// clock), `events.csv`, `scenario.json` and `plots.html` into `dir`
    /// (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        self.write_signals(dir)?;
        let mut events = String::from("time_s,event\n");
        for e in &self.events {
            events.push_str(&format!(
                "{},\"{}\"\n",
                e.at_s,
                e.label.replace('"', "\"\"")
            ));
        }
        write_atomic(&dir.join("events.csv"), events.as_bytes())?;
        let summary = self.summary();
        let mut json = serde_json::to_string_pretty(&summary)?;
        json.push('\n');
        write_atomic(&dir.join(SUMMARY_FILE), json.as_bytes())?;
        let plots = crate::plot::plots_html(&self.signals, &self.events, &self.assertions);
        write_atomic(&dir.join(PLOTS_FILE), plots.as_bytes())?;
        Ok(())
    }

    /// Writes `signals.csv` (and `signal-NAME.csv` files) only.
    pub fn write_signals(&self, dir: &Path) -> Result<(), ReportError> {
        let Some(first) = self.signals.first() else {
            return Ok(());
        };
        let mut table = ColumnTable::new();
        table.push("time_s", first.t_s.clone());
        for s in &self.signals {
            if s.t_s == first.t_s {
                let values = s.values.iter().map(|v| significant(*v)).collect();
                table.push(format!("{} [{}]", s.name, s.unit), values);
            } else {
                let mut own = String::new();
                own.push_str(&format!("time_s,{} [{}]\n", s.name, s.unit));
                for (t, v) in s.t_s.iter().zip(&s.values) {
                    own.push_str(&format!(
                        "{},{}\n",
                        format_value(*t),
                        format_value(significant(*v))
                    ));
                }
                let path = dir.join(format!("signal-{}.csv", file_safe(&s.name)));
                write_atomic(&path, own.as_bytes())?;
            }
        }
        let path = dir.join("signals.csv");
        table.write_atomic(&path).map_err(|e| ReportError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

/// The scenario summary's file name in a scenario directory.
pub const SUMMARY_FILE: &str = "scenario.json";
/// The plots fragment's file name in a scenario directory.
pub const PLOTS_FILE: &str = "plots.html";

/// Reads a scenario directory's `scenario.json`.
pub fn read_summary(dir: &Path) -> Result<ScenarioSummary, ReadError> {
    let path = dir.join(SUMMARY_FILE);
    let text = read_text(&path)?;
    serde_json::from_str(&text).map_err(|e| ReadError::Parse {
        path,
        message: e.to_string(),
    })
}

/// Failure reading a report dir's file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a maslow report file ({message}); was the run killed while writing it? re-run `maslow test` to regenerate it")]
    Parse { path: PathBuf, message: String },
}

pub(crate) fn read_text(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Key figures from the signals maslow knows by name: state of charge
/// range, grid energy and peak, bus voltage range.
pub fn key_figures(signals: &[Signal]) -> BTreeMap<String, f64> {
    let mut f = BTreeMap::new();
    let get = |name: &str| signals.iter().find(|s| s.name == name);
    let finite =
        |s: &Signal| -> Vec<f64> { s.values.iter().copied().filter(|v| v.is_finite()).collect() };
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if let Some(s) = get("soc") {
        let v = finite(s);
        if !v.is_empty() {
            f.insert("soc_min_pct".into(), round(min(&v) * 100.0));
            f.insert("soc_max_pct".into(), round(max(&v) * 100.0));
        }
    }
    if let Some(s) = get("bus_voltage_v") {
        let v = finite(s);
        if !v.is_empty() {
            f.insert("bus_voltage_min_v".into(), round(min(&v)));
            f.insert("bus_voltage_max_v".into(), round(max(&v)));
        }
    }
    for (name, key) in [
        ("grid_import_w", "grid_import"),
        ("grid_export_w", "grid_export"),
    ] {
        if let Some(s) = get(name) {
            let v = finite(s);
            if !v.is_empty() {
                f.insert(format!("{key}_peak_w"), round(max(&v)));
                f.insert(format!("{key}_kwh"), round(energy_kwh(s)));
            }
        }
    }
    f
}

/// Trapezoidal integral of a power signal (W) over time, kWh; NaN samples
/// are gaps.
fn energy_kwh(s: &Signal) -> f64 {
    let mut j = 0.0;
    for k in 1..s.t_s.len().min(s.values.len()) {
        let (a, b) = (s.values[k - 1], s.values[k]);
        if a.is_finite() && b.is_finite() {
            j += 0.5 * (a + b) * (s.t_s[k] - s.t_s[k - 1]);
        }
    }
    j / 3.6e6
}

/// A measured value to [`SIGNIFICANT_DIGITS`] significant digits: far
/// beyond any probe's or instrument's resolution, and half the CSV of
/// Rust's 17-digit round-trip form (a day of a scenario's signals at 1 Hz
/// was ~40 MB).
pub fn significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = SIGNIFICANT_DIGITS as i32 - 1 - v.abs().log10().floor() as i32;
    if !(0..=300).contains(&digits) {
        return v;
    }
    let mag = 10f64.powi(digits);
    let r = (v * mag).round() / mag;
    if r.is_finite() {
        r
    } else {
        v
    }
}

/// Significant digits kept in `signals.csv`.
pub const SIGNIFICANT_DIGITS: u32 = 9;

/// To 6 significant digits, so figures compare stably between runs.
fn round(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let mag = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * mag).round() / mag
}

/// A name safe as a file name (ASCII alphanumerics, `-`, `_`).
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(name: &str, values: &[f64]) -> Signal {
        Signal {
            name: name.into(),
            unit: "W".into(),
            t_s: (0..values.len()).map(|k| k as f64 * 3600.0).collect(),
            values: values.to_vec(),
        }
    }

    #[test]
    fn key_figures_integrate_grid_energy() {
        let f = key_figures(&[sig("grid_import_w", &[1000.0, 1000.0, 3000.0])]);
        assert_eq!(f["grid_import_kwh"], 3.0);
        assert_eq!(f["grid_import_peak_w"], 3000.0);
        assert_eq!(round(1.234_567_89), 1.234_57);
        assert_eq!(significant(48.992998279896646), 48.9929983);
        assert_eq!(significant(0.29999999999999993), 0.3);
        assert_eq!(significant(-1.5e-12), -1.5e-12);
        // Whole numbers past 9 digits stay as they are.
        assert_eq!(significant(123456789012.0), 123456789012.0);
    }
}
