//! Cucumber JSON from a [`RunRecord`]: the format cucumber-jvm and
//! cucumber-js write with their `json` formatter, and that Allure,
//! cucumber-html-reporter and CI plugins read.
//!
//! An array of features, each with its scenarios as `elements` and their
//! steps; a step's `result` has `status` (`passed`, `failed`, `skipped`,
//! `undefined`), `duration` in whole nanoseconds, and `error_message` when
//! it failed.
//!
//! Mapping choices, where the record and the format differ:
//!
//! - ids are cucumber-js style: the name lowercased with each whitespace
//!   character turned into `-`; a scenario's is `feature-id;scenario-id`,
//!   and a repeated one in the same feature (outline rows) gets `;;2`,
//!   `;;3`, ...;
//! - tags get their `@`; the record keeps no tag positions, so a tag's
//!   `line` is the line above the keyword it belongs to (the feature's tags,
//!   also inherited by every scenario, that of the feature);
//! - the scenario's seed is its `description`, `seed N`: shown by reporters,
//!   accepted by every reader, and present even for a scenario with no steps;
//! - what the scenario printed is the last step's `output` (one string per
//!   line), the field cucumber-jvm fills from `scenario.log`;
//! - `match.location` is the step's own place, `uri:line` (the record does
//!   not know step definitions); undefined steps have no `match`, as in
//!   cucumber-js.
//!
//! The structs are public and deserialize too, so a file written here (or by
//! another tool, for the fields modelled) reads back into them.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{nanoseconds, write_atomic, ReportError};
use crate::run::{FeatureRecord, RunRecord, ScenarioRecord, StepRecord, StepStatus};

/// One feature file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub uri: String,
    pub id: String,
    pub keyword: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub line: u32,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub elements: Vec<Element>,
}

/// A tag, with its `@`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub line: u32,
}

/// A scenario (or background, in other tools' files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    pub id: String,
    pub keyword: String,
    /// `scenario` (or `background`).
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub line: u32,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A step and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// As written, with its trailing space (`Given `).
    pub keyword: String,
    /// The step's text.
    pub name: String,
    pub line: u32,
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<Match>,
    pub result: StepResult,
    /// Lines the scenario printed (on its last step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

/// Where the step was matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub status: Status,
    /// Nanoseconds.
    #[serde(default)]
    pub duration: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// A step's status as Cucumber writes it; `pending` and `ambiguous` come
/// only from other tools' files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    Undefined,
    Pending,
    Ambiguous,
}

impl From<StepStatus> for Status {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Passed => Status::Passed,
            StepStatus::Failed => Status::Failed,
            StepStatus::Skipped => Status::Skipped,
            StepStatus::Undefined => Status::Undefined,
        }
    }
}

/// The run as Cucumber JSON (pretty-printed, two-space indent).
pub fn to_cucumber_json(run: &RunRecord) -> Result<String, ReportError> {
    let mut json = serde_json::to_string_pretty(&to_features(run)?)?;
    json.push('\n');
    Ok(json)
}

/// Writes [`to_cucumber_json`] to `path` atomically (temporary file beside
/// it, then rename). The directory must exist.
pub fn write_cucumber_json(run: &RunRecord, path: &Path) -> Result<(), ReportError> {
    let json = to_cucumber_json(run)?;
    write_atomic(path, json.as_bytes())
}

/// The run as the typed Cucumber JSON document.
pub fn to_features(run: &RunRecord) -> Result<Vec<Feature>, ReportError> {
    run.features.iter().map(feature).collect()
}

fn feature(f: &FeatureRecord) -> Result<Feature, ReportError> {
    let id = slug(&f.name);
    let tag_line = f.line.saturating_sub(1).max(1);
    let mut seen: HashMap<String, u32> = HashMap::new();
    let elements = f
        .scenarios
        .iter()
        .map(|s| {
            let own = format!("{id};{}", slug(&s.name));
            let n = seen.entry(own.clone()).or_insert(0);
            *n += 1;
            let element_id = if *n == 1 { own } else { format!("{own};;{n}") };
            element(f, tag_line, element_id, s)
        })
        .collect::<Result<_, _>>()?;
    Ok(Feature {
        uri: f.uri.clone(),
        id,
        keyword: "Feature".into(),
        name: f.name.clone(),
        description: f.description.clone(),
        line: f.line,
        tags: f.tags.iter().map(|t| tag(t, tag_line)).collect(),
        elements,
    })
}

fn element(
    f: &FeatureRecord,
    feature_tag_line: u32,
    id: String,
    s: &ScenarioRecord,
) -> Result<Element, ReportError> {
    let own_tag_line = s.line.saturating_sub(1).max(1);
    let mut steps = s
        .steps
        .iter()
        .map(|st| step(f, s, st))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(last) = steps.last_mut() {
        last.output = s.output.lines().map(str::to_owned).collect();
    }
    Ok(Element {
        id,
        keyword: "Scenario".into(),
        kind: "scenario".into(),
        name: s.name.clone(),
        description: format!("seed {}", s.seed),
        line: s.line,
        tags: s
            .tags
            .iter()
            .map(|t| {
                let inherited = f.tags.iter().any(|ft| ft == t);
                tag(
                    t,
                    if inherited {
                        feature_tag_line
                    } else {
                        own_tag_line
                    },
                )
            })
            .collect(),
        steps,
    })
}

fn step(f: &FeatureRecord, s: &ScenarioRecord, st: &StepRecord) -> Result<Step, ReportError> {
    let duration = nanoseconds(
        || {
            format!(
                "duration_s of step `{}{}` in scenario `{}`",
                st.keyword, st.text, s.name
            )
        },
        st.duration_s,
    )?;
    let error_message = match st.status {
        StepStatus::Failed => Some(st.error.clone().unwrap_or_else(|| "step failed".into())),
        _ => None,
    };
    Ok(Step {
        keyword: st.keyword.clone(),
        name: st.text.clone(),
        line: st.line,
        matched: (st.status != StepStatus::Undefined).then(|| Match {
            location: Some(format!("{}:{}", f.uri, st.line)),
        }),
        result: StepResult {
            status: st.status.into(),
            duration,
            error_message,
        },
        output: Vec::new(),
    })
}

fn tag(name: &str, line: u32) -> Tag {
    Tag {
        name: if name.starts_with('@') {
            name.to_owned()
        } else {
            format!("@{name}")
        },
        line,
    }
}

/// cucumber-js's id of a name: lowercased, each whitespace character a `-`.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_and_dashed() {
        assert_eq!(slug("Battery Standby\tmode"), "battery-standby-mode");
        assert_eq!(slug("Über  Temp"), "über--temp");
        assert_eq!(slug(""), "");
    }

    #[test]
    fn tags_get_one_at_sign() {
        assert_eq!(tag("smoke", 1).name, "@smoke");
        assert_eq!(tag("@smoke", 1).name, "@smoke");
    }
}
