//! `run.json`: the machine-readable summary of a run (versions, rig, seed,
//! counts, per-scenario verdicts and key figures), what `maslow report`
//! reads, and the comparison of two of them.
//!
//! ```json
//! { "format": "maslow-run/1", "maslow_version": "0.1.0", "commit": "...",
//!   "rig": "sim", "mode": "lockstep", "seed": 0,
//!   "started": "2026-11-26T12:00:00+00:00", "started_unix_s": ..., "duration_s": ...,
//!   "counts": {"passed": 2, "failed": 1, "skipped": 0},
//!   "scenarios": [{"key": "features/x.feature :: Name", "feature": "...",
//!     "uri": "...", "name": "...", "line": 5, "seed": 101,
//!     "status": "passed", "duration_s": 1.2, "retries": 0,
//!     "failure": null, "dir": "scenarios/name-101",
//!     "figures": {"soc_min_pct": 20.5}}] }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{write_atomic, ReportError};
use crate::run::{Counts, RunRecord, ScenarioStatus};
use crate::scenario::{read_text, ReadError};

/// The `format` field this version writes and reads.
pub const FORMAT: &str = "maslow-run/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJson {
    pub format: String,
    pub maslow_version: String,
    #[serde(default)]
    pub commit: String,
    pub rig: String,
    pub mode: String,
    pub seed: u64,
    pub started: String,
    pub started_unix_s: f64,
    pub duration_s: f64,
    pub counts: Counts,
    pub scenarios: Vec<ScenarioJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioJson {
    /// `uri :: name` (`#2`, `#3`... for repeats: outline rows), stable
    /// between runs; what `--compare` matches on.
    pub key: String,
    pub feature: String,
    pub uri: String,
    pub name: String,
    pub line: u32,
    pub seed: u64,
    pub status: ScenarioStatus,
    pub duration_s: f64,
    pub retries: u32,
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub dir: String,
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
}

/// The run as `run.json`'s document.
pub fn to_run_json(run: &RunRecord) -> RunJson {
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut scenarios = Vec::new();
    for f in &run.features {
        for s in &f.scenarios {
            let base = format!("{} :: {}", f.uri, s.name);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            scenarios.push(ScenarioJson {
                key: if *n == 1 {
                    base
                } else {
                    format!("{base} #{n}")
                },
                feature: f.name.clone(),
                uri: f.uri.clone(),
                name: s.name.clone(),
                line: s.line,
                seed: s.seed,
                status: s.status(),
                duration_s: s.duration_s,
                retries: s.retries,
                failure: s.failure().map(str::to_owned),
                dir: s.dir.clone(),
                figures: s.figures.clone(),
            });
        }
    }
    RunJson {
        format: FORMAT.into(),
        maslow_version: if run.version.is_empty() {
            env!("CARGO_PKG_VERSION").into()
        } else {
            run.version.clone()
        },
        commit: run.commit.clone(),
        rig: run.rig.clone(),
        mode: run.mode.clone(),
        seed: run.seed,
        started: crate::html::rfc3339(run.started_unix_s),
        started_unix_s: run.started_unix_s,
        duration_s: run.duration_s,
        counts: run.counts(),
        scenarios,
    }
}

/// `run.json`'s text (pretty, trailing newline).
pub fn to_run_json_string(run: &RunRecord) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(&to_run_json(run))?;
    s.push('\n');
    Ok(s)
}

/// Writes `run.json` atomically.
pub fn write_run_json(run: &RunRecord, path: &Path) -> Result<(), ReportError> {
    write_atomic(path, to_run_json_string(run)?.as_bytes())
}

/// Reads a report dir's `run.json` (or the file itself).
pub fn read_run_json(path: &Path) -> Result<RunJson, ReadError> {
    let path: PathBuf = if path.is_dir() {
        path.join("run.json")
    } else {
        path.to_path_buf()
    };
    if !path.exists() {
        return Err(ReadError::Parse {
            message: "no such file: is this a report dir of `maslow test` (its `--report-dir`)?"
                .into(),
            path,
        });
    }
    let text = read_text(&path)?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| ReadError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    match doc.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        other => {
            return Err(ReadError::Parse {
                path,
                message: format!(
                    "format is {}, this maslow reads {FORMAT}",
                    other.map_or("missing".to_string(), |f| format!("`{f}`"))
                ),
            })
        }
    }
    serde_json::from_value(doc).map_err(|e| ReadError::Parse {
        path,
        message: e.to_string(),
    })
}

/// A terminal summary of a run: header, counts, failed scenarios.
pub fn summary_text(r: &RunJson) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "run of {} ({}), maslow {}{}, seed {}, started {}, {:.1} s",
        r.rig,
        r.mode,
        r.maslow_version,
        if r.commit.is_empty() {
            String::new()
        } else {
            format!(" at {}", r.commit)
        },
        r.seed,
        r.started,
        r.duration_s
    );
    let _ = writeln!(
        s,
        "{} scenarios: {} passed, {} failed, {} skipped",
        r.scenarios.len(),
        r.counts.passed,
        r.counts.failed,
        r.counts.skipped
    );
    for sc in &r.scenarios {
        if sc.status == ScenarioStatus::Failed {
            let _ = writeln!(
                s,
                "FAIL {}:{} {} (seed {})",
                sc.uri, sc.line, sc.name, sc.seed
            );
            if let Some(f) = &sc.failure {
                let _ = writeln!(s, "       {}", f.lines().next().unwrap_or(""));
            }
        }
    }
    s
}

/// What changed for one scenario between two runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Passed (or skipped) before, fails now.
    Regression { key: String, was: ScenarioStatus },
    /// Present only in the old run.
    Missing { key: String, was: ScenarioStatus },
    /// Present only in the new run.
    Added { key: String, now: ScenarioStatus },
    /// Any other verdict change (a fix, a skip).
    Verdict {
        key: String,
        was: ScenarioStatus,
        now: ScenarioStatus,
    },
    /// A key figure moved by more than the tolerance, or appeared/vanished.
    Figure {
        key: String,
        figure: String,
        was: Option<f64>,
        now: Option<f64>,
    },
}

/// Relative change of a key figure that counts as a change.
pub const FIGURE_TOLERANCE: f64 = 0.01;

/// Scenarios whose verdicts or key figures changed, regressions first,
/// then missing, added, other verdicts, figures.
pub fn compare(old: &RunJson, new: &RunJson) -> Vec<Change> {
    let olds: BTreeMap<&str, &ScenarioJson> =
        old.scenarios.iter().map(|s| (s.key.as_str(), s)).collect();
    let news: BTreeMap<&str, &ScenarioJson> =
        new.scenarios.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut out = Vec::new();
    for (k, n) in &news {
        match olds.get(k) {
            None => out.push(Change::Added {
                key: k.to_string(),
                now: n.status,
            }),
            Some(o) if o.status != n.status => {
                if n.status == ScenarioStatus::Failed {
                    out.push(Change::Regression {
                        key: k.to_string(),
                        was: o.status,
                    })
                } else {
                    out.push(Change::Verdict {
                        key: k.to_string(),
                        was: o.status,
                        now: n.status,
                    })
                }
            }
            Some(_) => {}
        }
        if let Some(o) = olds.get(k) {
            let names: std::collections::BTreeSet<&String> =
                o.figures.keys().chain(n.figures.keys()).collect();
            for f in names {
                let (a, b) = (o.figures.get(f).copied(), n.figures.get(f).copied());
                let moved = match (a, b) {
                    (Some(a), Some(b)) => {
                        let scale = a.abs().max(b.abs()).max(1e-9);
                        (a - b).abs() / scale > FIGURE_TOLERANCE
                    }
                    (None, None) => false,
                    _ => true,
                };
                if moved {
                    out.push(Change::Figure {
                        key: k.to_string(),
                        figure: f.clone(),
                        was: a,
                        now: b,
                    });
                }
            }
        }
    }
    for (k, o) in &olds {
        if !news.contains_key(k) {
            out.push(Change::Missing {
                key: k.to_string(),
                was: o.status,
            });
        }
    }
    let rank = |c: &Change| match c {
        Change::Regression { .. } => 0,
        Change::Missing { .. } => 1,
        Change::Added { .. } => 2,
        Change::Verdict { .. } => 3,
        Change::Figure { .. } => 4,
    };
    out.sort_by_key(rank);
    out
}

fn st(s: ScenarioStatus) -> &'static str {
    match s {
        ScenarioStatus::Passed => "passed",
        ScenarioStatus::Failed => "failed",
        ScenarioStatus::Skipped => "skipped",
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = |v: &Option<f64>| v.map_or("absent".to_string(), |v| format!("{v}"));
        match self {
            Change::Regression { key, was } => write!(f, "REGRESSION {key}: {} → failed", st(*was)),
            Change::Missing { key, was } => {
                write!(f, "missing    {key}: was {}, not in the new run", st(*was))
            }
            Change::Added { key, now } => write!(f, "added      {key}: {}", st(*now)),
            Change::Verdict { key, was, now } => {
                write!(f, "verdict    {key}: {} → {}", st(*was), st(*now))
            }
            Change::Figure {
                key,
                figure,
                was,
                now,
            } => write!(f, "figure     {key}: {figure} {} → {}", num(was), num(now)),
        }
    }
}
