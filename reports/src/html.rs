//! `index.html`: one self-contained page (inline CSS and SVG, no script, no
//! font or network fetch) from a [`RunRecord`] and the scenario
//! directories' plots.
//!
//! - run summary: rig, mode, commit, seed, start, duration, counts
//!   (`#count-passed`, `#count-failed`, `#count-skipped`) and, on real-time
//!   rigs, step jitter and overruns;
//! - a table of features and scenarios with status and duration;
//! - per scenario (`<section class="scenario" data-status=...
//!   data-signals=N>`): steps with their status, the failure (expected vs
//!   measured, as the step reported it), links to its files, and its plots
//!   (`plots.html` of its directory, one `<svg>` per signal).
//!
//! Times are in `<time>` and durations in `<span class="dur">`, so tests
//! can redact them.

use std::path::Path;

use crate::error::{write_atomic, ReportError};
use crate::markup::escape;
use crate::run::{RunRecord, ScenarioRecord, ScenarioStatus, StepStatus};
use crate::scenario::{read_summary, PLOTS_FILE};

/// What the page shows of one scenario's directory.
#[derive(Debug, Clone, Default)]
pub struct ScenarioExtras {
    /// The plots fragment (`plots.html`).
    pub plots: Option<String>,
    /// How many signals the scenario measured (plots expected).
    pub signals: usize,
    /// Files in its directory worth a link, by name.
    pub files: Vec<String>,
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
.passed{color:#1a7f37}.failed{color:#c62828;font-weight:bold}.skipped,.undefined{color:#8a6d00}
tr.failed td{background:#fdecea}
.counts span{display:inline-block;margin-right:1em;font-size:1.2em}
section.scenario{border-top:2px solid #ddd;margin-top:1em;padding-top:.5em}
pre.error{background:#fdecea;padding:.5em;white-space:pre-wrap}
figure.plot{margin:.5em 0}figure.plot svg{max-width:100%;height:auto}
li.violated{color:#c62828}li.held{color:#1a7f37}
.files a{margin-right:1em}";

/// The page, with each scenario's extras from `extras` (by scenario dir).
pub fn to_html(run: &RunRecord, extras: &dyn Fn(&ScenarioRecord) -> ScenarioExtras) -> String {
    let c = run.counts();
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<title>maslow test: {} passed, {} failed, {} skipped</title>",
        c.passed, c.failed, c.skipped
    ));
    h.push_str(&format!("<style>{CSS}</style></head><body>\n"));
    h.push_str("<h1>maslow test report</h1>\n<table class=\"summary\">");
    let row = |h: &mut String, k: &str, v: String| {
        h.push_str(&format!("<tr><th>{k}</th><td>{v}</td></tr>"));
    };
    row(&mut h, "rig", escape(&run.rig));
    if let Some(s) = &run.sabotage {
        row(
            &mut h,
            "sabotage",
            format!(
                "<strong>{}</strong>: the controller was sabotaged on the rig; failures are the suite catching it",
                escape(s)
            ),
        );
    }
    row(&mut h, "mode", escape(&run.mode));
    row(
        &mut h,
        "commit",
        escape(if run.commit.is_empty() {
            "unknown"
        } else {
            &run.commit
        }),
    );
    if !run.version.is_empty() {
        row(&mut h, "maslow", escape(&run.version));
    }
    row(&mut h, "seed", run.seed.to_string());
    row(
        &mut h,
        "started",
        format!("<time>{}</time>", escape(&rfc3339(run.started_unix_s))),
    );
    row(
        &mut h,
        "duration",
        format!("<span class=\"dur\">{:.1} s</span>", run.duration_s),
    );
    if run.mode == "realtime" {
        let scen = run.features.iter().flat_map(|f| &f.scenarios);
        let mut overruns = 0.0;
        let mut p99: f64 = 0.0;
        let mut max: f64 = 0.0;
        for s in scen {
            overruns += s.figures.get("rt_overruns").copied().unwrap_or(0.0);
            p99 = p99.max(s.figures.get("rt_jitter_p99_us").copied().unwrap_or(0.0));
            max = max.max(s.figures.get("rt_jitter_max_us").copied().unwrap_or(0.0));
        }
        row(
            &mut h,
            "real time",
            format!("step jitter p99 {p99} µs (worst scenario), max {max} µs; {overruns} overruns"),
        );
    }
    h.push_str("</table>\n");
    h.push_str(&format!(
        "<p class=\"counts\"><span class=\"passed\">passed <b id=\"count-passed\">{}</b></span><span class=\"failed\">failed <b id=\"count-failed\">{}</b></span><span class=\"skipped\">skipped <b id=\"count-skipped\">{}</b></span></p>\n",
        c.passed, c.failed, c.skipped
    ));

    h.push_str("<h2>Scenarios</h2>\n<table class=\"scenarios\"><tr><th>feature</th><th>scenario</th><th>status</th><th>duration</th><th>seed</th></tr>\n");
    let mut n = 0;
    for f in &run.features {
        for s in &f.scenarios {
            n += 1;
            let st = status_name(s.status());
            h.push_str(&format!(
                "<tr class=\"{st}\"><td>{}</td><td><a href=\"#s{n}\">{}</a></td><td class=\"{st}\">{st}{}</td><td><span class=\"dur\">{:.1} s</span></td><td>{}</td></tr>\n",
                escape(&f.name),
                escape(&s.name),
                if s.retries > 0 {
                    format!(" (after {} retries)", s.retries)
                } else {
                    String::new()
                },
                s.duration_s,
                s.seed
            ));
        }
    }
    h.push_str("</table>\n");

    let mut n = 0;
    for f in &run.features {
        for s in &f.scenarios {
            n += 1;
            let x = extras(s);
            let st = status_name(s.status());
            h.push_str(&format!(
                "<section class=\"scenario\" id=\"s{n}\" data-status=\"{st}\" data-signals=\"{}\">\n<h2><span class=\"{st}\">{st}</span> {}</h2>\n<p>{} — <code>{}:{}</code>, seed {}{}</p>\n",
                x.signals,
                escape(&s.name),
                escape(&f.name),
                escape(&f.uri),
                s.line,
                s.seed,
                if s.tags.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", tags {}",
                        escape(
                            &s.tags
                                .iter()
                                .map(|t| format!("@{t}"))
                                .collect::<Vec<_>>()
                                .join(" ")
                        )
                    )
                }
            ));
            h.push_str("<table class=\"steps\">");
            for st in &s.steps {
                let cls = match st.status {
                    StepStatus::Passed => "passed",
                    StepStatus::Failed => "failed",
                    StepStatus::Skipped => "skipped",
                    StepStatus::Undefined => "undefined",
                };
                h.push_str(&format!(
                    "<tr class=\"{cls}\"><td class=\"{cls}\">{cls}</td><td><b>{}</b>{}</td><td>line {}</td><td><span class=\"dur\">{:.3} s</span></td></tr>",
                    escape(&st.keyword),
                    escape(&st.text),
                    st.line,
                    st.duration_s
                ));
                if let (Some(e), StepStatus::Failed | StepStatus::Undefined) =
                    (&st.error, st.status)
                {
                    h.push_str(&format!(
                        "<tr><td colspan=\"4\"><pre class=\"error\">{}</pre></td></tr>",
                        escape(e)
                    ));
                }
            }
            h.push_str("</table>\n");
            if !s.figures.is_empty() {
                h.push_str("<p class=\"figures\">");
                let figs: Vec<String> = s
                    .figures
                    .iter()
                    .map(|(k, v)| format!("{} <b>{v}</b>", escape(k)))
                    .collect();
                h.push_str(&figs.join(", "));
                h.push_str("</p>\n");
            }
            if !x.files.is_empty() {
                h.push_str("<p class=\"files\">");
                for file in &x.files {
                    let href = format!("{}/{}", s.dir, file);
                    h.push_str(&format!(
                        "<a href=\"{}\">{}</a>",
                        escape(&href),
                        escape(file)
                    ));
                }
                h.push_str("</p>\n");
            }
            if let Some(p) = &x.plots {
                h.push_str(p);
            }
            h.push_str("</section>\n");
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// The extras of a scenario from its directory under `report_dir`: its
/// `plots.html`, its signal count (`scenario.json`) and its files. A
/// missing or unreadable directory gives none (the page still renders).
pub fn extras_from_dir(report_dir: &Path, s: &ScenarioRecord) -> ScenarioExtras {
    if s.dir.is_empty() {
        return ScenarioExtras::default();
    }
    let dir = report_dir.join(&s.dir);
    let plots = std::fs::read_to_string(dir.join(PLOTS_FILE)).ok();
    let signals = read_summary(&dir).map_or(0, |x| x.signals.len());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != PLOTS_FILE)
        .collect();
    files.sort();
    ScenarioExtras {
        plots,
        signals,
        files,
    }
}

/// Writes `index.html` into `report_dir` atomically, with each scenario's
/// extras read from its directory.
pub fn write_html(run: &RunRecord, report_dir: &Path) -> Result<(), ReportError> {
    let page = to_html(run, &|s| extras_from_dir(report_dir, s));
    write_atomic(&report_dir.join("index.html"), page.as_bytes())
}

fn status_name(s: ScenarioStatus) -> &'static str {
    match s {
        ScenarioStatus::Passed => "passed",
        ScenarioStatus::Failed => "failed",
        ScenarioStatus::Skipped => "skipped",
    }
}

/// Unix seconds as RFC 3339 UTC (the number itself if out of range).
pub fn rfc3339(unix_s: f64) -> String {
    if !unix_s.is_finite() {
        return format!("{unix_s}");
    }
    chrono::DateTime::from_timestamp(unix_s.floor() as i64, 0)
        .map_or_else(|| format!("{unix_s}"), |t| t.to_rfc3339())
}
