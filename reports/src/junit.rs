//! JUnit XML from a [`RunRecord`], for CI systems (GitLab, Jenkins, GitHub
//! test reporters) that read it.
//!
//! Shape:
//!
//! - `<testsuites name="maslow">` with the run's wall time and the totals
//!   (tests, failures, errors): the attributes Jenkins' `junit-10.xsd`, the
//!   schema most CI readers follow, allows there (quick-junit's `skipped`
//!   and `timestamp` on the root are dropped; each suite carries the start);
//! - one `<testsuite>` per feature (name = the feature's name), with the
//!   run's start as its timestamp (the record keeps no per-feature start), the
//!   sum of its scenarios' times, and properties `rig`, `mode`, `seed` (the
//!   run's base seed);
//! - one `<testcase>` per scenario: name = the scenario's name, classname =
//!   the feature's uri (its name if the uri is empty), time = its duration.
//!   - failed: `<failure message="..." type="failed|undefined">` whose text
//!     is the first failing step as `Keyword text (line N)` and its error;
//!   - skipped (every step skipped): `<skipped/>`;
//!   - retried (`retries > 0`) and then passed: one `<flakyFailure>` per
//!     failed attempt; retried and still failed: one `<rerunFailure>` each.
//!     The record keeps only the last attempt, so those elements say which
//!     attempt failed, not why (their `type` is `failed`, as the JUnit
//!     schema requires one);
//!   - `<system-out>`: `seed N` (the scenario's own seed, for
//!     `maslow test --seed N`) on the first line, then what it printed.

use std::path::Path;

use chrono::{DateTime, FixedOffset};
use quick_junit::{
    FlakyOrRerun, NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite,
};

use crate::error::{duration, write_atomic, ReportError};
use crate::run::{FeatureRecord, RunRecord, ScenarioRecord, ScenarioStatus, StepStatus};

/// The run as a JUnit XML document (UTF-8, with an XML declaration).
pub fn to_junit_xml(run: &RunRecord) -> Result<String, ReportError> {
    let xml = to_report(run)?.to_string()?;
    Ok(strip_root_attributes(&xml, &["skipped", "timestamp"]))
}

/// `xml` with the named attributes removed from its `<testsuites>` element
/// (and nowhere else).
fn strip_root_attributes(xml: &str, names: &[&str]) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml.to_owned();
    };
    let Some(len) = xml[start..].find('>') else {
        return xml.to_owned();
    };
    let mut tag = xml[start..start + len].to_owned();
    for name in names {
        let key = format!(" {name}=\"");
        if let Some(a) = tag.find(&key) {
            if let Some(b) = tag[a + key.len()..].find('"') {
                tag.replace_range(a..a + key.len() + b + 1, "");
            }
        }
    }
    format!("{}{}{}", &xml[..start], tag, &xml[start + len..])
}

/// Writes [`to_junit_xml`] to `path` atomically (temporary file beside it,
/// then rename). The directory must exist.
pub fn write_junit(run: &RunRecord, path: &Path) -> Result<(), ReportError> {
    let xml = to_junit_xml(run)?;
    write_atomic(path, xml.as_bytes())
}

/// The run as a quick-junit [`Report`], for callers that want to add to it.
pub fn to_report(run: &RunRecord) -> Result<Report, ReportError> {
    let started = timestamp(run.started_unix_s)?;
    let mut report = Report::new("maslow");
    report.set_timestamp(started);
    report.set_time(duration(|| "the run's duration_s".into(), run.duration_s)?);
    for feature in &run.features {
        report.add_test_suite(suite(run, feature, started)?);
    }
    Ok(report)
}

fn suite(
    run: &RunRecord,
    feature: &FeatureRecord,
    started: DateTime<FixedOffset>,
) -> Result<TestSuite, ReportError> {
    let mut suite = TestSuite::new(&feature.name);
    suite.set_timestamp(started);
    suite.add_properties([
        ("rig", run.rig.as_str()),
        ("mode", run.mode.as_str()),
        ("seed", run.seed.to_string().as_str()),
    ]);
    let mut total = 0.0;
    for scenario in &feature.scenarios {
        suite.add_test_case(case(feature, scenario)?);
        total += scenario.duration_s;
    }
    suite.set_time(duration(
        || format!("the total duration_s of feature `{}`", feature.name),
        total,
    )?);
    Ok(suite)
}

fn case(feature: &FeatureRecord, scenario: &ScenarioRecord) -> Result<TestCase, ReportError> {
    let attempts = scenario.retries.saturating_add(1);
    let earlier = |kind: &'static str| {
        (1..attempts).map(move |k| {
            let mut rerun = TestRerun::new(NonSuccessKind::Failure);
            rerun.set_message(format!("attempt {k} of {attempts} failed ({kind})"));
            // Surefire's schema requires a type on reruns.
            rerun.set_type("failed");
            rerun
        })
    };
    let status = match scenario.status() {
        ScenarioStatus::Passed => {
            let mut status = TestCaseStatus::success();
            status.add_reruns(earlier("passed on a retry"));
            status
        }
        ScenarioStatus::Skipped => TestCaseStatus::skipped(),
        ScenarioStatus::Failed => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(scenario.failure().unwrap_or("failed"));
            if let Some(step) = scenario
                .steps
                .iter()
                .find(|s| matches!(s.status, StepStatus::Failed | StepStatus::Undefined))
            {
                let (ty, why) = match step.status {
                    StepStatus::Undefined => ("undefined", "no step definition matches this text"),
                    _ => ("failed", step.error.as_deref().unwrap_or("step failed")),
                };
                status.set_type(ty);
                status.set_description(format!(
                    "{} {} (line {})\n{why}",
                    step.keyword.trim_end(),
                    step.text,
                    step.line
                ));
            }
            status.set_rerun_kind(FlakyOrRerun::Rerun);
            status.add_reruns(earlier("retried"));
            status
        }
    };
    let mut case = TestCase::new(&scenario.name, status);
    case.set_classname(if feature.uri.is_empty() {
        &feature.name
    } else {
        &feature.uri
    });
    case.set_time(duration(
        || format!("duration_s of scenario `{}`", scenario.name),
        scenario.duration_s,
    )?);
    let mut out = format!("seed {}", scenario.seed);
    if !scenario.output.is_empty() {
        out.push('\n');
        out.push_str(&scenario.output);
    }
    case.set_system_out(out);
    Ok(case)
}

/// Unix seconds (UTC) as the fixed-offset time quick-junit writes.
fn timestamp(unix_s: f64) -> Result<DateTime<FixedOffset>, ReportError> {
    let bad = || ReportError::BadTime {
        what: "the run's started_unix_s".into(),
        value: unix_s,
    };
    if !unix_s.is_finite() {
        return Err(bad());
    }
    let whole = unix_s.floor();
    // Whole nanoseconds, rounded; a fraction that rounds up to 1 s carries.
    let nanos = ((unix_s - whole) * 1e9).round() as i64;
    let secs = (whole as i64)
        .checked_add(nanos / 1_000_000_000)
        .ok_or_else(bad)?;
    let nanos = (nanos % 1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos)
        .map(|t| t.fixed_offset())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_from_unix_seconds() {
        let t = timestamp(1_700_000_000.25).unwrap();
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.250+00:00");
        assert_eq!(
            timestamp(0.9999999999).unwrap().to_rfc3339(),
            "1970-01-01T00:00:01+00:00"
        );
        assert!(timestamp(f64::NAN).is_err());
        assert!(timestamp(f64::INFINITY).is_err());
        assert!(timestamp(1e30).is_err());
    }
}
