//! The sabotage matrix: the suite's sensitivity as a measured figure.
//!
//! Each saboteur ([`crate::sabotage`]) runs against the feature files whose
//! behaviour it touches (its `features` list, scenarios tagged neither
//! `@known-gap` nor `@slow`); a scenario that fails has caught it. The clean
//! controller runs the same files once and must pass every scenario. A
//! saboteur nothing catches means a missing or toothless scenario.
//!
//! [`run_matrix`] runs it and writes `matrix.md`, `matrix.json` and
//! `matrix.html` (each saboteur's own report linked) into the output
//! directory; [`Matrix`] renders them.

use std::path::{Path, PathBuf};

use reports::markup::escape;
use reports::run::{RunRecord, ScenarioStatus};
use serde::Serialize;

use crate::sabotage::Saboteur;
use crate::scenario::harness::{run_features, HarnessError, TestOptions};

/// The tag filter every run of the matrix uses.
pub const MATRIX_TAGS: &str = "not @known-gap and not @slow";

/// What to run.
#[derive(Debug, Clone)]
pub struct MatrixOptions {
    /// The directory the saboteurs' feature lists are relative to.
    pub features_dir: PathBuf,
    pub rig: PathBuf,
    /// Where the matrix and each run's report go.
    pub out: PathBuf,
    pub saboteurs: Vec<Saboteur>,
    /// Also run the clean controller on the same files.
    pub clean: bool,
    /// Only scenarios whose name matches this regular expression (a stated
    /// part of the matrix, as CI runs it); `None`: every scenario.
    pub names: Option<String>,
    pub trace_limit_bytes: u64,
    pub progress: bool,
}

/// One scenario, as the matrix names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioRef {
    /// `sim/peak.feature:7`.
    pub at: String,
    pub name: String,
    /// The first failing step's message (for a catch).
    pub failure: Option<String>,
}

/// One saboteur's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub saboteur: String,
    pub breaks: String,
    pub claim: String,
    pub features: Vec<String>,
    pub scenarios_run: usize,
    pub caught_by: Vec<ScenarioRef>,
    /// Its run's report directory, relative to the matrix's.
    pub report: String,
    pub duration_s: f64,
}

/// The clean controller's run on the union of the files.
#[derive(Debug, Clone, Serialize)]
pub struct CleanRun {
    pub passed: usize,
    pub failed: Vec<ScenarioRef>,
    pub report: String,
    pub duration_s: f64,
}

/// The matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    pub tags: String,
    /// The name filter, if the matrix ran only some scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<String>,
    pub rig: String,
    pub clean: Option<CleanRun>,
    pub rows: Vec<Row>,
}

impl Matrix {
    /// Saboteurs at least one scenario caught.
    pub fn caught(&self) -> usize {
        self.rows.iter().filter(|r| !r.caught_by.is_empty()).count()
    }

    /// Every saboteur caught and the clean controller green (if it ran).
    pub fn complete(&self) -> bool {
        self.caught() == self.rows.len() && self.clean.as_ref().is_none_or(|c| c.failed.is_empty())
    }

    /// One line: caught / total, and the clean run.
    pub fn summary(&self) -> String {
        let clean = match &self.clean {
            Some(c) if c.failed.is_empty() => format!("clean controller: {} passed", c.passed),
            Some(c) => format!(
                "clean controller: {} passed, {} FAILED",
                c.passed,
                c.failed.len()
            ),
            None => "clean controller not run".into(),
        };
        format!(
            "saboteurs caught: {} / {}; {clean}",
            self.caught(),
            self.rows.len()
        )
    }

    /// The README's table.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "{}\n\nScenarios: `{}`{} on `{}`.\n\n| saboteur | breaks | caught by |\n|---|---|---|\n",
            self.summary(),
            self.tags,
            self.names
                .as_ref()
                .map(|n| format!(", names matching `{n}`"))
                .unwrap_or_default(),
            self.rig
        );
        for r in &self.rows {
            let caught = if r.caught_by.is_empty() {
                format!("**not caught** ({} scenarios ran)", r.scenarios_run)
            } else {
                let list: Vec<String> = r.caught_by.iter().map(|c| format!("`{}`", c.at)).collect();
                format!(
                    "{} of {}: {}",
                    r.caught_by.len(),
                    r.scenarios_run,
                    list.join(", ")
                )
            };
            s.push_str(&format!("| `{}` | {} | {caught} |\n", r.saboteur, r.breaks));
        }
        s
    }

    /// The report page.
    pub fn to_html(&self) -> String {
        let mut s = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sabotage matrix</title>\
             <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
             td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}\
             .miss{background:#fdd}.hit{background:#dfd}</style></head><body>\
             <h1>Sabotage matrix</h1>",
        );
        s.push_str(&format!(
            "<p>{}</p><p>Scenarios: <code>{}</code>{} on <code>{}</code>.</p>",
            escape(&self.summary()),
            escape(&self.tags),
            self.names
                .as_ref()
                .map(|n| format!(", names matching <code>{}</code>", escape(n)))
                .unwrap_or_default(),
            escape(&self.rig)
        ));
        if let Some(c) = &self.clean {
            s.push_str(&format!(
                "<p><a href=\"{}/index.html\">Clean controller's report</a></p>",
                escape(&c.report)
            ));
        }
        s.push_str(
            "<table><tr><th>saboteur</th><th>breaks</th><th>claim</th><th>caught by</th></tr>",
        );
        for r in &self.rows {
            let class = if r.caught_by.is_empty() {
                "miss"
            } else {
                "hit"
            };
            let mut caught = String::new();
            for c in &r.caught_by {
                caught.push_str(&format!(
                    "<div><code>{}</code> {}<br><small>{}</small></div>",
                    escape(&c.at),
                    escape(&c.name),
                    escape(c.failure.as_deref().unwrap_or(""))
                ));
            }
            if r.caught_by.is_empty() {
                caught = format!("not caught ({} scenarios ran)", r.scenarios_run);
            }
            s.push_str(&format!(
                "<tr class=\"{class}\"><td><a href=\"{}/index.html\"><code>{}</code></a></td><td>{}</td><td>{}</td><td>{caught}</td></tr>",
                escape(&r.report),
                escape(&r.saboteur),
                escape(&r.breaks),
                escape(&r.claim)
            ));
        }
        s.push_str("</table></body></html>\n");
        s
    }
}

/// Failed and passed scenarios of a run.
fn verdicts(record: &RunRecord, features_dir: &Path) -> (usize, Vec<ScenarioRef>) {
    let mut passed = 0;
    let mut failed = Vec::new();
    let root = features_dir
        .canonicalize()
        .unwrap_or_else(|_| features_dir.to_path_buf());
    for f in &record.features {
        let file = Path::new(&f.uri);
        let rel = file
            .strip_prefix(&root)
            .or_else(|_| file.strip_prefix(features_dir))
            .unwrap_or(file);
        for sc in &f.scenarios {
            match sc.status() {
                ScenarioStatus::Passed => passed += 1,
                ScenarioStatus::Failed => failed.push(ScenarioRef {
                    at: format!("{}:{}", rel.display(), sc.line),
                    name: sc.name.clone(),
                    failure: sc.failure().map(str::to_owned),
                }),
                ScenarioStatus::Skipped => {}
            }
        }
    }
    (passed, failed)
}

fn run_once(
    opts: &MatrixOptions,
    files: &[String],
    sabotage: Option<Saboteur>,
    report: &str,
) -> Result<(usize, Vec<ScenarioRef>, f64), HarnessError> {
    let outcome = run_features(&TestOptions {
        paths: files.iter().map(|f| opts.features_dir.join(f)).collect(),
        rig: opts.rig.clone(),
        tags: Some(MATRIX_TAGS.into()),
        name: opts.names.clone(),
        seed: None,
        report_dir: opts.out.join(report),
        probe_rate_hz: None,
        progress: opts.progress,
        trace_limit_bytes: opts.trace_limit_bytes,
        sabotage,
    })?;
    if let Some(e) = outcome.parse_errors.first() {
        return Err(HarnessError::Path {
            path: files.join(", "),
            message: format!("a feature file did not parse: {e}"),
        });
    }
    let (passed, failed) = verdicts(&outcome.record, &opts.features_dir);
    Ok((passed, failed, outcome.record.duration_s))
}

/// Runs the matrix and writes it into `opts.out`.
pub fn run_matrix(opts: &MatrixOptions) -> Result<Matrix, HarnessError> {
    let mut rows = Vec::new();
    for s in &opts.saboteurs {
        let info = s.info();
        let files: Vec<String> = info.features.iter().map(|f| f.to_string()).collect();
        let report = format!("sabotage-{}", info.name);
        if opts.progress {
            eprintln!("sabotage matrix: {} on {}", info.name, files.join(", "));
        }
        let (passed, caught_by, duration_s) = run_once(opts, &files, Some(*s), &report)?;
        rows.push(Row {
            saboteur: info.name.into(),
            breaks: info.breaks.into(),
            claim: info.claim.into(),
            features: files,
            scenarios_run: passed + caught_by.len(),
            caught_by,
            report,
            duration_s,
        });
    }
    let clean = if opts.clean {
        let mut files: Vec<String> = rows.iter().flat_map(|r| r.features.clone()).collect();
        files.sort();
        files.dedup();
        let (passed, failed, duration_s) = run_once(opts, &files, None, "clean")?;
        Some(CleanRun {
            passed,
            failed,
            report: "clean".into(),
            duration_s,
        })
    } else {
        None
    };
    let matrix = Matrix {
        tags: MATRIX_TAGS.into(),
        names: opts.names.clone(),
        rig: opts.rig.display().to_string(),
        clean,
        rows,
    };
    write(&opts.out, &matrix)?;
    Ok(matrix)
}

fn write(out: &Path, m: &Matrix) -> Result<(), HarnessError> {
    let json = serde_json::to_string_pretty(m).map_err(|e| HarnessError::Path {
        path: out.display().to_string(),
        message: format!("the matrix does not serialise: {e}"),
    })?;
    for (name, text) in [
        ("matrix.md", m.to_markdown()),
        ("matrix.json", json),
        ("matrix.html", m.to_html()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| HarnessError::Path {
            path: path.display().to_string(),
            message: format!("cannot write the matrix: {e}"),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, caught: usize) -> Row {
        Row {
            saboteur: name.into(),
            breaks: "breaks <it>".into(),
            claim: "claim 4".into(),
            features: vec!["sim/peak.feature".into()],
            scenarios_run: 3,
            caught_by: (0..caught)
                .map(|i| ScenarioRef {
                    at: format!("sim/peak.feature:{i}"),
                    name: "Evening".into(),
                    failure: Some("expected <".into()),
                })
                .collect(),
            report: format!("sabotage-{name}"),
            duration_s: 1.0,
        }
    }

    #[test]
    fn a_saboteur_nothing_caught_makes_the_matrix_incomplete() {
        let mut m = Matrix {
            tags: MATRIX_TAGS.into(),
            names: None,
            rig: "rigs/sim.toml".into(),
            clean: None,
            rows: vec![row("no-peak-discharge", 2), row("charges-in-peak", 0)],
        };
        assert_eq!(m.caught(), 1);
        assert!(!m.complete());
        let md = m.to_markdown();
        assert!(md.contains("saboteurs caught: 1 / 2"), "{md}");
        assert!(md.contains("**not caught** (3 scenarios ran)"), "{md}");
        assert!(
            md.contains("2 of 3: `sim/peak.feature:0`, `sim/peak.feature:1`"),
            "{md}"
        );
        let html = m.to_html();
        assert!(html.contains("breaks &lt;it&gt;") && html.contains("class=\"miss\""));
        m.rows[1] = row("charges-in-peak", 1);
        assert!(m.complete());
    }

    #[test]
    fn a_failing_clean_run_makes_the_matrix_incomplete() {
        let m = Matrix {
            tags: MATRIX_TAGS.into(),
            names: None,
            rig: "rigs/sim.toml".into(),
            clean: Some(CleanRun {
                passed: 5,
                failed: row("x", 1).caught_by,
                report: "clean".into(),
                duration_s: 1.0,
            }),
            rows: vec![row("no-peak-discharge", 2)],
        };
        assert!(!m.complete());
        assert!(m.summary().contains("1 FAILED"), "{}", m.summary());
    }

    #[test]
    fn a_name_filter_is_stated_with_the_matrix() {
        let mut m = Matrix {
            tags: MATRIX_TAGS.into(),
            names: None,
            rig: "rigs/sim.toml".into(),
            clean: None,
            rows: vec![row("no-peak-discharge", 1)],
        };
        assert!(!m.to_markdown().contains("names matching"));
        m.names = Some("^Evening <import>$".into());
        assert!(m.to_markdown().contains(
            "Scenarios: `not @known-gap and not @slow`, names matching `^Evening <import>$` on"
        ));
        assert!(m
            .to_html()
            .contains("names matching <code>^Evening &lt;import&gt;$</code>"));
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"names\":\"^Evening <import>$\""), "{json}");
    }
}
